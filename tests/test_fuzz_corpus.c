/*
 * test_fuzz_corpus.c - the fuzz targets (tests/fuzz/) in every build: each
 * replays its committed corpus (the seeds, and every input libFuzzer found
 * that broke a promise once: tools/fuzz), then mutations of it drawn from a
 * fixed seed, so that a build without clang, and the sanitized builds,
 * still try inputs nobody wrote. libFuzzer itself explores far more
 * (tools/fuzz); this keeps what it found fixed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "support_run.h"

#ifndef PARETO_SOURCE_DIR
#define PARETO_SOURCE_DIR "."
#endif

typedef int (*fuzz_target)(const uint8_t *, size_t);

struct input {
	uint8_t *bytes;
	size_t len;
};

struct inputs {
	struct input *v;
	size_t n;
};

static void add(struct inputs *in, uint8_t *bytes, size_t len)
{
	in->v = realloc(in->v, (in->n + 1) * sizeof *in->v);
	cr_assert_not_null(in->v);
	in->v[in->n++] = (struct input){ bytes, len };
}

/* Every file of tests/fuzz/corpus/NAME; the corpus must not be empty. */
static void load_corpus(const char *name, struct inputs *in)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", PARETO_SOURCE_DIR, name);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "no corpus at %s", dir);
	size_t before = in->n;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		size_t len;
		char *bytes = read_file(path, &len);
		add(in, (uint8_t *)bytes, len);
	}
	closedir(d);
	cr_assert_gt(in->n, before, "the corpus at %s is empty", dir);
}

static uint64_t next(uint64_t *x) /* splitmix64 */
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Bytes the formats give meaning to, for mutations to insert. */
static const char *const TOKENS[] = {
	"\r\n", "\n", ",", "\"", "\"\"", "*", "$", "-1", "0", "9999999999999999999",
	"-", ".", "1e5", "2026-12-08T10:00:00Z", "29/02/2024 10:00", "PRTREC02", "\t", " ",
	"\xff\xff\xff\xff", "\0\0\0\0\0\0\0\0",
};

/*
 * One mutation of src into a fresh buffer: a few byte flips, overwrites,
 * deletions, insertions of a token, duplications of a slice or cuts.
 */
static struct input mutate(const struct input *src, uint64_t *x)
{
	size_t cap = src->len * 2 + 64, len = src->len;
	uint8_t *b = malloc(cap);
	cr_assert_not_null(b);
	memcpy(b, src->bytes, len);
	for (int k = 0, edits = 1 + (int)(next(x) % 4); k < edits; k++) {
		size_t at = len ? (size_t)(next(x) % len) : 0;
		switch (next(x) % 6) {
		case 0: /* flip a bit */
			if (len)
				b[at] ^= (uint8_t)(1u << next(x) % 8);
			break;
		case 1: /* a random byte */
			if (len)
				b[at] = (uint8_t)next(x);
			break;
		case 2: { /* delete a slice */
			size_t n = (size_t)(next(x) % 16);
			n = n < len - at ? n : len - at;
			memmove(b + at, b + at + n, len - at - n);
			len -= n;
			break;
		}
		case 3: { /* insert a token */
			size_t t = (size_t)(next(x) % (sizeof TOKENS / sizeof *TOKENS));
			size_t n = t == sizeof TOKENS / sizeof *TOKENS - 1 ? 8 : strlen(TOKENS[t]);
			if (len + n > cap)
				break;
			memmove(b + at + n, b + at, len - at);
			memcpy(b + at, TOKENS[t], n);
			len += n;
			break;
		}
		case 4: { /* repeat a slice */
			size_t n = (size_t)(next(x) % 64);
			n = n < len - at ? n : len - at;
			if (len + n > cap)
				break;
			memmove(b + at + n, b + at, len - at);
			len += n;
			break;
		}
		default: /* cut the end off */
			len = at;
			break;
		}
	}
	return (struct input){ b, len };
}

static void run(fuzz_target target, struct inputs *in, int mutations, uint64_t seed)
{
	for (size_t i = 0; i < in->n; i++)
		target(in->v[i].bytes, in->v[i].len);
	uint64_t x = seed;
	for (int m = 0; m < mutations; m++) {
		struct input mutant = mutate(&in->v[next(&x) % in->n], &x);
		target(mutant.bytes, mutant.len);
		free(mutant.bytes);
	}
	for (size_t i = 0; i < in->n; i++)
		free(in->v[i].bytes);
	free(in->v);
}

/* Replays target's corpus (and `more` inputs), then `mutations` of them. */
static void replay(const char *name, fuzz_target target, struct inputs *more, int mutations,
		   uint64_t seed)
{
	struct inputs in = { 0 };
	load_corpus(name, &in);
	for (size_t i = 0; more && i < more->n; i++)
		add(&in, more->v[i].bytes, more->v[i].len);
	if (more)
		free(more->v);
	run(target, &in, mutations, seed);
}

Test(fuzz_corpus, decoder) { replay("decoder", fuzz_decoder, NULL, 20000, 1); }
Test(fuzz_corpus, resp) { replay("resp", fuzz_resp, NULL, 20000, 2); }
Test(fuzz_corpus, decimal) { replay("decimal", fuzz_decimal, NULL, 50000, 4); }
Test(fuzz_corpus, time) { replay("time", fuzz_time, NULL, 50000, 5); }
Test(fuzz_corpus, parallel) { replay("parallel", fuzz_parallel, NULL, 300, 6); }

Test(fuzz_corpus, checkpoint)
{
	struct inputs fresh = { 0 };
	uint8_t *seed;
	for (size_t i = 0, len; (len = fuzz_checkpoint_seed((unsigned)i, &seed)); i++)
		add(&fresh, seed, len);
	replay("checkpoint", fuzz_checkpoint, &fresh, 600, 3);
}
