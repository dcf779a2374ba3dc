/*
 * test_ingest_parallel.c - `pareto report --threads N` against one thread,
 * byte for byte (the JSON report, stderr, the --rejects file, the exit
 * code), on files split into many small chunks (PARETO_PARALLEL_MIN_BYTES=1
 * and a tiny --memory-limit): 2, 3 and 4 threads, binary records, and each
 * case where a chunk must be read again as one thread reads it (a cut
 * inside a quoted field, the volume bound), and --strict.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_feed.h"

#define MAX_ARGS 32

struct outcome {
	struct proc_result r;
	char *rejects; /* the --rejects file */
};

static void outcome_free(struct outcome *o)
{
	proc_result_free(&o->r);
	free(o->rejects);
}

/* pareto report --json [extra...] --threads T [--memory-limit L] --rejects R FEED */
static void report(const char *dir, const char *feed, const char *const *extra, unsigned threads,
		   const char *limit, struct outcome *o)
{
	const char *argv[MAX_ARGS];
	int n = 0;
	char threads_text[8];
	snprintf(threads_text, sizeof threads_text, "%u", threads);
	char *rejects = tmpdir_path(dir, "rejects.csv");
	argv[n++] = PARETO_BIN;
	argv[n++] = "report";
	argv[n++] = "--json";
	for (; extra && *extra; extra++)
		argv[n++] = *extra;
	argv[n++] = "--threads";
	argv[n++] = threads_text;
	if (limit) {
		argv[n++] = "--memory-limit";
		argv[n++] = limit;
	}
	argv[n++] = "--rejects";
	argv[n++] = rejects;
	argv[n++] = feed;
	argv[n] = NULL;
	cr_assert_lt(n, MAX_ARGS);
	const char *const env[] = { "PARETO_PARALLEL_MIN_BYTES=1", NULL };
	cr_assert_eq(proc_run(argv, env, NULL, 0, &o->r), 0, "spawn %s", PARETO_BIN);
	size_t len;
	o->rejects = file_read(rejects, &len);
	free(rejects);
}

/* Every thread count and limit gives what one thread gives. */
static void expect_same_as_one_thread(const char *dir, const char *feed,
				      const char *const *extra, int want_status)
{
	struct outcome one;
	report(dir, feed, extra, 1, NULL, &one);
	cr_assert_eq(one.r.status, want_status, "one thread: exit %d: %s", one.r.status, one.r.err);
	static const char *const limits[] = { "64K", "200K", NULL };
	for (unsigned threads = 2; threads <= 4; threads++) {
		for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
			struct outcome many;
			report(dir, feed, extra, threads, limits[l], &many);
			const char *lim = limits[l] ? limits[l] : "default";
			cr_assert_eq(many.r.status, one.r.status, "%u threads, limit %s: exit %d: %s",
				     threads, lim, many.r.status, many.r.err);
			cr_assert_str_eq(many.r.out, one.r.out, "%u threads, limit %s: report differs",
					 threads, lim);
			cr_assert_str_eq(many.r.err, one.r.err, "%u threads, limit %s: stderr differs",
					 threads, lim);
			cr_assert_str_eq(many.rejects, one.rejects,
					 "%u threads, limit %s: rejects file differs", threads, lim);
			outcome_free(&many);
		}
	}
	outcome_free(&one);
}

/* A feed of `lines` purchases: `customers` ids, 30 stores, a year of days;
 * each line passed to `shape` (may be NULL) to change its fields. */
struct line {
	char ts[32], customer[32], store[32], amount[48];
};

typedef void (*shape_fn)(unsigned i, struct feed_rng *rng, struct line *l);

static char *write_feed(const char *dir, const char *name, unsigned lines, unsigned customers,
			shape_fn shape, unsigned seed)
{
	struct feed_rng rng;
	feed_rng_seed(&rng, seed);
	size_t cap = 64 + (size_t)lines * 160, len = 0;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	len += (size_t)snprintf(text, cap, "ts,customer_id,store_id,amount\n");
	for (unsigned i = 0; i < lines; i++) {
		struct line l;
		snprintf(l.ts, sizeof l.ts, "2024-%02u-%02uT%02u:00:00Z",
			 1 + (unsigned)feed_rng_below(&rng, 12), 1 + (unsigned)feed_rng_below(&rng, 28),
			 (unsigned)feed_rng_below(&rng, 24));
		snprintf(l.customer, sizeof l.customer, "C%u",
			 (unsigned)feed_rng_below(&rng, customers));
		snprintf(l.store, sizeof l.store, "S%u", (unsigned)feed_rng_below(&rng, 30));
		snprintf(l.amount, sizeof l.amount, "%d.%02u",
			 (int)feed_rng_below(&rng, 2000) - 200, (unsigned)feed_rng_below(&rng, 100));
		if (feed_rng_chance(&rng, 1))
			snprintf(l.amount, sizeof l.amount, "bad");
		if (shape)
			shape(i, &rng, &l);
		len += (size_t)snprintf(text + len, cap - len, "%s,%s,%s,%s\n", l.ts, l.customer,
					l.store, l.amount);
		cr_assert_lt(len, cap);
	}
	char *path = tmpdir_path(dir, name);
	file_write(path, text, len);
	free(text);
	return path;
}

static const char *const full_state[] = { "--window", "quarter", "--by-store", "--lapsed", "50",
					  "--top", "100", NULL };
static const char *const lean[] = { "--top", "100", NULL };

Test(ingest_parallel, many_threads_and_tiny_limits_equal_one_thread, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "plain.csv", 40000, 3000, NULL, 1);
	expect_same_as_one_thread(dir, feed, full_state, 0);
	expect_same_as_one_thread(dir, feed, lean, 0);
	free(feed);
	tmpdir_remove(dir);
}

/* Blank lines and a byte order mark before the header: the header ends
 * where the decoder says, not at the first line end (found by the parallel
 * fuzz target: a blank first line was given to every decoder as the
 * header, and each took its chunk's first line for it). */
Test(ingest_parallel, blank_lines_before_the_header, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "plain.csv", 20000, 2000, NULL, 4);
	size_t len;
	char *text = file_read(feed, &len);
	static const char *const openings[] = { "\n", "\r\n\n", "\xef\xbb\xbf\n\n" };
	for (size_t k = 0; k < sizeof openings / sizeof *openings; k++) {
		size_t n = strlen(openings[k]);
		char *blank = malloc(n + len);
		memcpy(blank, openings[k], n);
		memcpy(blank + n, text, len);
		char *path = tmpdir_path(dir, "blank.csv");
		file_write(path, blank, n + len);
		expect_same_as_one_thread(dir, path, lean, 0);
		free(path);
		free(blank);
	}
	free(text);
	free(feed);
	tmpdir_remove(dir);
}

/* One customer buys everything: every record goes to one owner, whose
 * rings and buffers fill while the other decoders wait. */
static void one_customer(unsigned i, struct feed_rng *rng, struct line *l)
{
	(void)i;
	(void)rng;
	snprintf(l->customer, sizeof l->customer, "the-only-one");
}

Test(ingest_parallel, one_owner_takes_everything, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "skewed.csv", 30000, 1, one_customer, 2);
	expect_same_as_one_thread(dir, feed, full_state, 0);
	free(feed);
	tmpdir_remove(dir);
}

/* Some store ids quoted with a line break inside: chunk cuts land inside
 * them, so a chunk does not end on a record boundary. */
static void quoted_breaks(unsigned i, struct feed_rng *rng, struct line *l)
{
	(void)i;
	if (feed_rng_chance(rng, 3))
		snprintf(l->store, sizeof l->store, "\"S\n%u\"", (unsigned)feed_rng_below(rng, 4));
}

Test(ingest_parallel, cut_inside_a_quoted_field_reads_on_as_one_thread, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "quoted.csv", 20000, 2000, quoted_breaks, 3);
	expect_same_as_one_thread(dir, feed, full_state, 0);
	expect_same_as_one_thread(dir, feed, lean, 0);
	free(feed);
	tmpdir_remove(dir);
}

/* Amounts of 10^16 units (10^18 minor) every 997 lines and large ones
 * elsewhere: the total passes INT64_MAX a few thousand lines in, and from
 * there huge records are refused while small ones still count. */
static void huge_amounts(unsigned i, struct feed_rng *rng, struct line *l)
{
	if (i % 997 == 500)
		snprintf(l->amount, sizeof l->amount, "%llu",
			 10000000000000000ull + (unsigned long long)feed_rng_below(rng, 1000000));
	else if (feed_rng_chance(rng, 50))
		snprintf(l->amount, sizeof l->amount, "%llu.00",
			 (unsigned long long)feed_rng_below(rng, 100000000000ull));
}

/* Three huge amounts in a row: one chunk alone passes the bound. */
static void huge_together(unsigned i, struct feed_rng *rng, struct line *l)
{
	(void)rng;
	if (i >= 12000 && i < 12003)
		snprintf(l->amount, sizeof l->amount, "40000000000000000.00");
}

Test(ingest_parallel, volume_bound_refuses_the_records_one_thread_refuses, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "volume.csv", 20000, 2000, huge_amounts, 4);
	expect_same_as_one_thread(dir, feed, full_state, 0);
	expect_same_as_one_thread(dir, feed, lean, 0);
	/* The case is meant: some records were refused as overflow, and
	 * some after the first refusal still count. */
	struct outcome one;
	report(dir, feed, lean, 1, NULL, &one);
	cr_assert_not_null(strstr(one.rejects, ",overflow,"), "no overflow reject: %s", one.r.err);
	free(feed);
	outcome_free(&one);

	feed = write_feed(dir, "together.csv", 20000, 2000, huge_together, 5);
	expect_same_as_one_thread(dir, feed, full_state, 0);
	report(dir, feed, lean, 1, NULL, &one);
	cr_assert_not_null(strstr(one.rejects, ",overflow,"), "no overflow reject");
	outcome_free(&one);
	free(feed);
	tmpdir_remove(dir);
}

Test(ingest_parallel, strict_stops_at_the_first_bad_line, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "strict.csv", 20000, 2000, NULL, 6);
	static const char *const strict[] = { "--strict", NULL };
	expect_same_as_one_thread(dir, feed, strict, 2);
	free(feed);
	tmpdir_remove(dir);
}

Test(ingest_parallel, binary_records_split_on_record_boundaries, .timeout = 300)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "binary.csv", 30000, 3000, NULL, 7);
	char *bin = tmpdir_path(dir, "feed.prb");
	const char *argv[] = { PARETO_BIN, "convert", "--quiet", feed, bin, NULL };
	struct proc_result r;
	cr_assert_eq(proc_run(argv, NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	proc_result_free(&r);
	expect_same_as_one_thread(dir, bin, full_state, 0);
	free(bin);
	free(feed);
	tmpdir_remove(dir);
}

Test(ingest_parallel, memory_limit_option, .timeout = 120)
{
	char *dir = tmpdir_create();
	char *feed = write_feed(dir, "limit.csv", 5000, 500, NULL, 8);
	/* One thread stages within the limit too: the same report. */
	struct outcome plain, limited;
	report(dir, feed, full_state, 1, NULL, &plain);
	report(dir, feed, full_state, 1, "64K", &limited);
	cr_assert_eq(limited.r.status, 0, "%s", limited.r.err);
	cr_assert_str_eq(limited.r.out, plain.r.out);
	outcome_free(&plain);
	outcome_free(&limited);
	/* Below 64K, or not a byte count: a usage error naming the option. */
	static const char *const bad[] = { "1K", "65535", "12X", "-1M", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct outcome o;
		report(dir, feed, NULL, 2, bad[i], &o);
		cr_assert_eq(o.r.status, 2, "--memory-limit '%s': exit %d", bad[i], o.r.status);
		cr_assert_not_null(strstr(o.r.err, "--memory-limit"), "%s", o.r.err);
		outcome_free(&o);
	}
	free(feed);
	tmpdir_remove(dir);
}
