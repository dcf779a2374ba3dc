/*
 * fuzz.h - fuzz targets: each takes arbitrary bytes, drives one module the
 * way a hostile input would, and aborts (with the reason on stderr) when the
 * module breaks a promise its header makes. Crashes and out-of-bounds reads
 * are for the sanitizers to find; the checks here find wrong answers.
 *
 * The same functions serve two drivers: libFuzzer (tools/fuzz, built with
 * clang and PARETO_FUZZ=ON: each target gets LLVMFuzzerTestOneInput), and
 * test_fuzz_corpus, which replays the committed corpus (tests/fuzz/corpus/
 * TARGET/) and mutations of it in every build, sanitized ones included.
 */
#ifndef PARETO_FUZZ_H
#define PARETO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Stops the run with the input's target and the broken promise. */
#define FUZZ_CHECK(cond, ...)                                                       \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: fuzz check failed: %s: ", __FILE__, \
				__LINE__, #cond);                                   \
			fprintf(stderr, __VA_ARGS__);                               \
			fputc('\n', stderr);                                        \
			abort();                                                    \
		}                                                                   \
	} while (0)

/* Returns 0, as libFuzzer asks of LLVMFuzzerTestOneInput. */
int fuzz_decoder(const uint8_t *data, size_t size);
int fuzz_decimal(const uint8_t *data, size_t size);
int fuzz_time(const uint8_t *data, size_t size);
int fuzz_resp(const uint8_t *data, size_t size);
int fuzz_parallel(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);

struct pr_engine;

/*
 * Everything an engine answers, for an engine loaded from a file that may
 * hold nonsense: it must answer without fault and agree with itself (each
 * ranked customer found at his rank, revenues summing to the ranking's),
 * or the run stops. Also test_checkpoint's altered files.
 */
void fuzz_checkpoint_exercise(struct pr_engine *e);

/* A file of this process's own for a target's input, named by suffix
 * ("ckpt", "feed": one per target), in /dev/shm where it can be written,
 * else /tmp. */
static inline const char *fuzz_scratch_path(const char *suffix)
{
	static char path[64];
	if (!path[0]) {
		const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(path, sizeof path, "%s/pareto-fuzz-%d.%s", dir, (int)getpid(), suffix);
	}
	return path;
}

/*
 * Checkpoint payloads (the file past its header) of small engines, made
 * afresh by this build: the seeds worth mutating, since a committed one
 * goes stale when the format changes. *out is malloc'ed; index 0.. until
 * it returns 0.
 */
size_t fuzz_checkpoint_seed(unsigned index, uint8_t **out);

#ifdef PARETO_LIBFUZZER
#define FUZZ_ENTRY(target)                                                        \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);             \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)              \
	{                                                                         \
		return target(data, size);                                        \
	}
#else
#define FUZZ_ENTRY(target)
#endif

#endif
