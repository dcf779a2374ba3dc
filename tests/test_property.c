/*
 * test_property.c - `pareto report --json` on seeded random feeds, every
 * field of the report checked against the brute-force reference of
 * support_feed.c (written from DESIGN.md alone), in every window, with
 * stores, customer details and lapsed regulars; once with the default cut
 * points and once with others. The seed is in every failure message.
 *
 * PARETO_PROPERTY_SEED=S runs seed S alone; PARETO_PROPERTY_SEEDS=N runs
 * seeds 1..N (default 60), PARETO_PROPERTY_SEEDS=A-B seeds A..B;
 * PARETO_PROPERTY_VERBOSE=1 describes each feed on stderr. Each seed runs on
 * one thread and on 2, 3 or 4 (every file split into small chunks).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_feed.h"
#include "support_json.h"

#define MAX_ARGS 64

struct run_context {
	unsigned seed;
	const char *what; /* the feed's description */
	const struct feed *feed;
	const char *csv_path;
	const struct feed_csv *csv;
	const char *const *customers;
	size_t customer_count;
	bool piped; /* the feed on standard input, written in random-size pieces */
};

static const char *const variant_args[] = {
	"--top-fraction", "0.3", "--tiers", "0.1,0.6", "--pareto-target", "0.5",
	"--key-share", "0.05", "--lapsed-min-days", "2", "--lapsed-gap-factor", "1.5",
	"--lapsed-min-idle-days", "10",
};

static void variant_options(struct ref_options *o)
{
	ref_options_default(o);
	o->top = (struct ref_fraction){ 3, 10 };
	o->tier_a = (struct ref_fraction){ 1, 10 };
	o->tier_b = (struct ref_fraction){ 3, 5 };
	o->pareto_target = (struct ref_fraction){ 1, 2 };
	o->key_share = (struct ref_fraction){ 1, 20 };
	o->lapsed_min_days = 2;
	o->lapsed_gap_factor = (struct ref_fraction){ 3, 2 };
	o->lapsed_min_idle_days = 10;
}

/* Failures are gathered so that one run shows every failing seed. */
struct failures {
	unsigned count;
	char first[8][1024];
};

static void failed(struct failures *fails, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failed(struct failures *fails, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cr_log_error("%s", msg);
	if (fails->count < 8)
		memcpy(fails->first[fails->count], msg, sizeof msg);
	fails->count++;
}

/* Runs one report and checks all of it against the reference; false (and
 * a failure noted) on the first difference. */
/* What a run asks for beyond the company summary; the engine keeps only that. */
enum { ASK_STORES = 1, ASK_LAPSED = 2, ASK_ALL = 3 };

static bool check_run(const struct run_context *ctx, int window, bool variant, unsigned threads,
		      uint64_t top, uint64_t lapsed_limit, unsigned ask, struct failures *fails)
{
	const char *argv[MAX_ARGS];
	int n = 0;
	char top_text[24], lapsed_text[24], threads_text[8];
	snprintf(top_text, sizeof top_text, "%llu", (unsigned long long)top);
	snprintf(lapsed_text, sizeof lapsed_text, "%llu", (unsigned long long)lapsed_limit);
	snprintf(threads_text, sizeof threads_text, "%u", threads);
	argv[n++] = PARETO_BIN;
	argv[n++] = "report";
	argv[n++] = "--json";
	argv[n++] = "--top";
	argv[n++] = top_text;
	if (ask & ASK_STORES)
		argv[n++] = "--by-store";
	if (ask & ASK_LAPSED) {
		argv[n++] = "--lapsed";
		argv[n++] = lapsed_text;
	}
	argv[n++] = "--window";
	argv[n++] = ref_window_name(window);
	argv[n++] = "--threads";
	argv[n++] = threads_text;
	if (threads > 1 && ctx->seed % 4 != 3) {
		/* Small chunks, rings and buffers: many chunks even in a small
		 * file, owners that fall behind, decoders that wait. */
		argv[n++] = "--memory-limit";
		argv[n++] = "64K";
	}
	if (ctx->seed % 3) {
		/* Small tables that must grow (and start quicker than the default). */
		argv[n++] = "--customers";
		argv[n++] = "16";
	}
	for (size_t i = 0; i < ctx->customer_count; i++) {
		argv[n++] = "--customer";
		argv[n++] = ctx->customers[i];
	}
	for (int i = 0; i < ctx->csv->map_count; i++) {
		argv[n++] = "--map";
		argv[n++] = ctx->csv->map_args[i];
	}
	if (variant)
		for (size_t i = 0; i < sizeof variant_args / sizeof variant_args[0]; i++)
			argv[n++] = variant_args[i];
	argv[n++] = ctx->piped ? "-" : ctx->csv_path;
	argv[n] = NULL;
	cr_assert_lt(n, MAX_ARGS);

	/* Several threads split even a small file when told the minimum is 1 byte. */
	const char *const env[] = { "PARETO_PARALLEL_MIN_BYTES=1", NULL };
	struct proc_result r;
	int spawned = ctx->piped ? proc_run_pieces(argv, threads > 1 ? env : NULL, ctx->csv->text,
						   ctx->csv->len, ctx->seed, &r)
				 : proc_run(argv, threads > 1 ? env : NULL, NULL, 0, &r);
	cr_assert_eq(spawned, 0, "seed %u: spawn %s", ctx->seed, PARETO_BIN);
	char where[400];
	snprintf(where, sizeof where, "seed %u [%s] window %s%s threads %u%s%s%s", ctx->seed,
		 ctx->what, ref_window_name(window), variant ? " (other cut points)" : "", threads,
		 ask & ASK_STORES ? " by store" : "", ask & ASK_LAPSED ? " lapsed" : "",
		 ctx->piped ? " through a pipe" : "");
	bool ok = false;
	struct tj *report = NULL;
	char error[128], why[512];
	if (r.status != 0) {
		failed(fails, "%s: exit %d: %.300s", where, r.status, r.err);
	} else if (r.err_len != 0) {
		failed(fails, "%s: unexpected stderr: %.300s", where, r.err);
	} else if (!(report = tj_parse(r.out, r.out_len, error, sizeof error))) {
		failed(fails, "%s: bad JSON (%s): %.300s", where, error, r.out);
	} else {
		struct ref_options opt;
		if (variant)
			variant_options(&opt);
		else
			ref_options_default(&opt);
		struct ref_report want;
		ref_compute(ctx->feed, window, &opt, &want);
		struct ref_query q = {
			.top = top,
			.by_store = ask & ASK_STORES,
			.customers = ctx->customers,
			.customer_count = ctx->customer_count,
			.lapsed = ask & ASK_LAPSED,
			.lapsed_limit = lapsed_limit,
			.rejected = 0,
			.scale = 2,
		};
		ok = ref_check(report, &want, &q, why, sizeof why);
		if (!ok)
			failed(fails, "%s: %s (reproduce: PARETO_PROPERTY_SEED=%u)", where, why, ctx->seed);
		ref_free(&want);
	}
	tj_free(report);
	proc_result_free(&r);
	return ok;
}

/* Customers to ask about: seen ones (ranked, refunded to <= 0, prefixes
 * of others) and one never seen. */
static size_t pick_customers(const struct feed *f, unsigned seed, const char **out, size_t max)
{
	struct feed_rng rng;
	feed_rng_seed(&rng, seed + 1000);
	size_t n = 0;
	out[n++] = "no-such-customer";
	out[n++] = "A"; /* a prefix of "AB..." ids, present or not */
	for (size_t k = 0; k < 4 && f->customer_count && n < max; k++)
		out[n++] = f->customers[feed_rng_below(&rng, f->customer_count)].bytes;
	/* Someone whose all-time net is <= 0, if any. */
	struct ref_options o;
	ref_options_default(&o);
	struct ref_report all;
	ref_compute(f, 0, &o, &all);
	for (size_t i = 0; i < all.company.all_count && n < max; i++) {
		if (all.company.all[i].revenue <= 0) {
			for (size_t c = 0; c < f->customer_count; c++) {
				if (f->customers[c].len == all.company.all[i].len &&
				    memcmp(f->customers[c].bytes, all.company.all[i].id,
					   all.company.all[i].len) == 0) {
					out[n++] = f->customers[c].bytes;
					break;
				}
			}
			break;
		}
	}
	ref_free(&all);
	return n;
}

static void run_seed(unsigned seed, const char *dir, struct failures *fails)
{
	struct feed f;
	char what[200];
	feed_random(&f, seed, what, sizeof what);
	struct feed_csv csv;
	feed_csv_write(&f, seed, &csv);
	char name[32];
	snprintf(name, sizeof name, "feed-%u.csv", seed);
	char *path = tmpdir_path(dir, name);
	file_write(path, csv.text, csv.len);

	if (getenv("PARETO_PROPERTY_VERBOSE"))
		fprintf(stderr, "seed %u: %s, %zu bytes of CSV\n", seed, what, csv.len);
	const char *customers[8];
	size_t customer_count = pick_customers(&f, seed, customers, 8);
	struct run_context ctx = { seed, what, &f, path, &csv, customers, customer_count, false };
	/* Each seed runs on one thread and on 2, 3 or 4. */
	unsigned many = 2 + (seed / 2) % 3;
	unsigned threads = seed % 2 ? 1 : many, other = seed % 2 ? many : 1;
	/* The first failing run of a seed is enough to see; go on to the next. */
	bool ok = true;
	for (int w = 0; w < REF_WINDOW_COUNT && ok; w++)
		ok = check_run(&ctx, w, false, threads, 1000000, 1000000, ASK_ALL, fails);
	/* Asking for less (the engine then keeps less); other cut points;
	 * short lists (the first 3 ranks, 2 lapsed). */
	ok = ok && check_run(&ctx, 0, false, threads, 1000000, 1000000, 0, fails);
	ok = ok && check_run(&ctx, 1 + (int)(seed % 6), false, other, 1000000, 1000000,
			     1 + seed % 2, fails);
	ok = ok && check_run(&ctx, 0, true, other, 1000000, 1000000, ASK_ALL, fails);
	ok = ok && check_run(&ctx, 1 + (int)(seed % 6), true, threads, 3, 2, ASK_ALL, fails);
	/* The same feed through a pipe, in pieces of random sizes. */
	struct run_context piped = ctx;
	piped.piped = true;
	ok = ok && check_run(&piped, (int)(seed % REF_WINDOW_COUNT), false, other, 1000000, 1000000,
			     ASK_ALL, fails);

	unlink(path);
	free(path);
	feed_csv_free(&csv);
	feed_free(&f);
}

Test(property, report_matches_brute_force_on_random_feeds, .timeout = 600)
{
	char *dir = tmpdir_create();
	const char *one = getenv("PARETO_PROPERTY_SEED");
	const char *count = getenv("PARETO_PROPERTY_SEEDS");
	unsigned first = 1, last = 60;
	if (count) {
		/* "N" (seeds 1..N) or "A-B". */
		char *dash;
		last = (unsigned)strtoul(count, &dash, 10);
		if (*dash == '-') {
			first = last;
			last = (unsigned)strtoul(dash + 1, NULL, 10);
		}
	}
	if (one)
		first = last = (unsigned)strtoul(one, NULL, 10);
	static struct failures fails;
	for (unsigned seed = first; seed <= last; seed++)
		run_seed(seed, dir, &fails);
	tmpdir_remove(dir);
	cr_assert_eq(fails.count, 0, "%u failing runs of seeds %u..%u; the first:\n%s\n%s\n%s",
		     fails.count, first, last, fails.first[0], fails.count > 1 ? fails.first[1] : "",
		     fails.count > 2 ? fails.first[2] : "");
}

/* The reference must be able to fail: a report of one feed checked
 * against the reference of a slightly different feed is caught. */
Test(property, reference_catches_a_changed_record)
{
	char *dir = tmpdir_create();
	struct feed f;
	char what[200];
	feed_random(&f, 7, what, sizeof what);
	cr_assert_gt(f.count, 3);
	struct feed_csv csv;
	feed_csv_write(&f, 7, &csv);
	char *path = tmpdir_path(dir, "feed.csv");
	file_write(path, csv.text, csv.len);
	const char *argv[24] = { PARETO_BIN, "report", "--json", "--top", "1000000", "--by-store",
				 "--lapsed", "1000000" };
	int n = 8;
	for (int i = 0; i < csv.map_count; i++) {
		argv[n++] = "--map";
		argv[n++] = csv.map_args[i];
	}
	argv[n++] = path;
	argv[n] = NULL;
	struct proc_result r;
	cr_assert_eq(proc_run(argv, NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	struct tj *report = tj_parse(r.out, r.out_len, NULL, 0);
	cr_assert_not_null(report);
	struct ref_options o;
	ref_options_default(&o);
	struct ref_query q = { .top = 1000000, .by_store = true, .lapsed = true,
			       .lapsed_limit = 1000000, .scale = 2 };
	char why[512];
	struct ref_report want;
	ref_compute(&f, 0, &o, &want);
	cr_assert(ref_check(report, &want, &q, why, sizeof why), "%s", why);
	ref_free(&want);

	/* One cent more on the largest positive record. */
	size_t big = 0;
	for (size_t i = 1; i < f.count; i++)
		if (f.records[i].amount_minor > f.records[big].amount_minor)
			big = i;
	f.records[big].amount_minor += 1;
	ref_compute(&f, 0, &o, &want);
	cr_assert_not(ref_check(report, &want, &q, why, sizeof why), "a changed cent went unnoticed");
	ref_free(&want);

	tj_free(report);
	proc_result_free(&r);
	feed_csv_free(&csv);
	feed_free(&f);
	free(path);
	tmpdir_remove(dir);
}
