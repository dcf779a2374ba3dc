/*
 * test_e2e.c - `pareto report` as a user runs it: small feeds whose answers
 * are worked out by hand in the comments, bad lines, exit codes and
 * messages, standard input, binary records, several files, several
 * threads, and the real CDNOW data checked in full against the brute-force
 * reference of support_feed.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pareto/record.h"
#include "support_feed.h"
#include "support_json.h"

/* ---- helpers ----------------------------------------------------------------- */

static char *dir; /* this test's temporary directory */

static void setup(void)
{
	dir = tmpdir_create();
}

static void teardown(void)
{
	tmpdir_remove(dir);
	dir = NULL;
}

TestSuite(e2e, .init = setup, .fini = teardown, .timeout = 300);

/* Writes text to a file of the test directory; returns its path (malloc'ed). */
static char *put_file(const char *name, const char *text, size_t len)
{
	char *path = tmpdir_path(dir, name);
	file_write(path, text, len);
	return path;
}

/* Runs PARETO_BIN with args (NULL-terminated) and optional stdin text. */
static void run(struct proc_result *r, const char *input, const char *const *args)
{
	const char *argv[64] = { PARETO_BIN };
	int n = 1;
	for (; *args; args++) {
		cr_assert_lt(n, 63);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	cr_assert_eq(proc_run(argv, NULL, input, input ? strlen(input) : 0, r), 0, "spawn %s",
		     PARETO_BIN);
}

/* `pareto report --json OPTIONS FILE` on feed text; the parsed report. */
static struct tj *report(const char *feed_text, const char *const *options, struct proc_result *r)
{
	char *path = put_file("feed.csv", feed_text, strlen(feed_text));
	const char *args[48] = { "report", "--json" };
	int n = 2;
	for (; options && *options; options++)
		args[n++] = *options;
	args[n++] = path;
	args[n] = NULL;
	run(r, NULL, args);
	free(path);
	cr_assert_eq(r->status, 0, "exit %d: %s", r->status, r->err);
	char error[128];
	struct tj *json = tj_parse(r->out, r->out_len, error, sizeof error);
	cr_assert_not_null(json, "bad JSON (%s): %s", error, r->out);
	return json;
}

static const struct tj *field(const struct tj *root, const char *path, enum tj_type type)
{
	const struct tj *v = tj_get(root, "%s", path);
	cr_assert_not_null(v, "%s missing", path);
	cr_assert_eq(v->type, type, "%s is a %s, want a %s", path, tj_type_name(v->type),
		     tj_type_name(type));
	return v;
}

static void expect_int(const struct tj *root, const char *path, long long want)
{
	const struct tj *v = field(root, path, TJ_NUMBER);
	cr_assert(v->is_int && v->integer == want, "%s: got %s, want %lld", path, v->text, want);
}

static void expect_num(const struct tj *root, const char *path, double want)
{
	const struct tj *v = field(root, path, TJ_NUMBER);
	cr_assert(ref_close(v->number, want), "%s: got %s, want %.17g", path, v->text, want);
}

static void expect_str(const struct tj *root, const char *path, const char *want)
{
	const struct tj *v = field(root, path, TJ_STRING);
	cr_assert(tj_string_is(v, want, strlen(want)), "%s: got \"%s\", want \"%s\"", path, v->text,
		  want);
}

static void expect_null(const struct tj *root, const char *path)
{
	field(root, path, TJ_NULL);
}

static void expect_count(const struct tj *root, const char *path, size_t want)
{
	const struct tj *v = field(root, path, TJ_ARRAY);
	cr_assert_eq(v->count, want, "%s: %zu entries, want %zu", path, v->count, want);
}

/* Every top-level member of a and b equal, except the one named `except`. */
static void expect_same_report(const struct tj *a, const struct tj *b, const char *except)
{
	cr_assert_eq(a->type, TJ_OBJECT);
	cr_assert_eq(a->count, b->count, "%zu keys vs %zu", a->count, b->count);
	for (size_t i = 0; i < a->count; i++) {
		if (except && strcmp(a->keys[i], except) == 0)
			continue;
		cr_assert(tj_equal(a->items[i], tj_key(b, a->keys[i])), "'%s' differs", a->keys[i]);
	}
}

/* Checks a parsed report against the reference of the same feed. */
static void expect_reference(const struct tj *json, const struct feed *f, int window,
			     const struct ref_query *q)
{
	struct ref_options o;
	ref_options_default(&o);
	struct ref_report want;
	ref_compute(f, window, &o, &want);
	char why[512];
	bool ok = ref_check(json, &want, q, why, sizeof why);
	ref_free(&want);
	cr_assert(ok, "window %s: %s", ref_window_name(window), why);
}

/* ---- five customers, by hand --------------------------------------------------- */

/*
 * Five customers, revenues 50, 30, 10, 5, 5 (of 100.00):
 *   a 40.00 (S1) + 10.00 (S2) = 50.00; b 30.00 (S1); c 10.00 (S2);
 *   e 7.50 - 2.50 = 5.00 (S2, a refund); d 5.00 (S1).
 *   N = 5, revenue 10000 minor.
 *   Top tier: ceil(0.2 x 5) = 1 customer, a: 5000, share 0.5.
 *   Pareto point: top-1 = 50% < 80%, top-2 = 80% >= 80%: m = 2, 2/5 = 0.4.
 *   Tiers: A = rank 1 (a, 5000, 0.5); B = ranks 2..ceil(2.5) = 3 (b, c:
 *   4000, 0.4); C = ranks 4..5 (d, e: 1000, 0.1).
 *   CR1 0.5, CR5 = CR10 = 1.
 *   HHI = (0.25 + 0.09 + 0.01 + 0.0025 + 0.0025) x 10,000 = 3550.
 *   Gini, ascending 5 5 10 30 50: sum i x_i = 5 + 10 + 30 + 120 + 250 = 415;
 *        2 x 415 / (5 x 100) - 6/5 = 1.66 - 1.2 = 0.46.
 *   Largest share 50% >= 50%: critical. Key clients (share >= 10%, 10%
 *   counts): a 0.5, b 0.3, c 0.1.
 *   d and e tie at 5.00: rank 4 (d, "d" < "e") and 5 (e), competition
 *   rank 4 for both. Cumulative shares 0.5, 0.8, 0.9, 0.95, 1.
 *   Watermark 2024-02-04T10:00:00.000Z = 1707040800000 ms.
 * Stores, riskiest first:
 *   S1: a 40, b 30, d 5 of 75: a holds 53.3%: critical, first.
 *       HHI = (1600 + 900 + 25) / 5625 x 10,000 = 4488.888...;
 *       Gini, ascending 5 30 40: (5 + 60 + 120) = 185; 370 / 225 - 4/3 = 0.31111...;
 *       key clients a (0.5333), b (0.4); d is 6.7%.
 *   S2: a 10, c 10, e 5 of 25: 40%, 40%, 20%: high.
 *       HHI = (100 + 100 + 25) / 625 x 10,000 = 3600;
 *       Gini, ascending 5 10 10: 5 + 20 + 30 = 55; 110 / 75 - 4/3 = 0.13333...;
 *       key clients a, c (tied at 10.00: byte order), e (20%).
 * Customer e: rank 5, competition rank 4, percentile 5/5 = 1, tier C,
 * share 0.05. Customer zz: never seen: nulls, revenue 0, share 0.
 * Lapsed: nobody has 3 purchase days (a: Jan 5 and 7; e: Feb 2 and 3).
 */
static const char five[] =
	"ts,customer_id,store_id,amount\n"
	"2024-01-05T10:00:00Z,a,S1,40.00\n"
	"2024-01-06T10:00:00Z,b,S1,30.00\n"
	"2024-01-07T10:00:00Z,a,S2,10.00\n"
	"2024-02-01T10:00:00Z,c,S2,10.00\n"
	"2024-02-02T10:00:00Z,e,S2,7.50\n"
	"2024-02-03T10:00:00Z,e,S2,-2.50\n"
	"2024-02-04T10:00:00Z,d,S1,5.00\n";

static void five_feed(struct feed *f)
{
	static const struct { const char *ts, *id, *store; int64_t amount; } rows[] = {
		{ "2024-01-05", "a", "S1", 4000 }, { "2024-01-06", "b", "S1", 3000 },
		{ "2024-01-07", "a", "S2", 1000 }, { "2024-02-01", "c", "S2", 1000 },
		{ "2024-02-02", "e", "S2", 750 },  { "2024-02-03", "e", "S2", -250 },
		{ "2024-02-04", "d", "S1", 500 },
	};
	feed_init(f);
	f->has_store_column = true;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int y, m, d;
		sscanf(rows[i].ts, "%d-%d-%d", &y, &m, &d);
		feed_add(f, feed_utc_ms(y, m, d, 10, 0, 0, 0), feed_customer(f, rows[i].id, 1),
			 feed_store(f, rows[i].store, 2), rows[i].amount);
	}
}

Test(e2e, five_customers_by_hand)
{
	struct proc_result r;
	const char *opts[] = { "--customer", "e", "--customer", "zz", "--by-store", "--lapsed", "10",
			       NULL };
	struct tj *j = report(five, opts, &r);
	cr_assert_str_empty(r.err);
	expect_int(j, "records", 7);
	expect_int(j, "rejected", 0);
	expect_str(j, "watermark", "2024-02-04T10:00:00.000Z");
	expect_int(j, "watermark_ms", 1707040800000LL);
	expect_str(j, "window", "all");
	expect_int(j, "scale", 2);
	expect_int(j, "customers", 5);
	expect_int(j, "revenue_minor", 10000);
	expect_num(j, "top_tier.fraction", 0.2);
	expect_int(j, "top_tier.customers", 1);
	expect_int(j, "top_tier.revenue_minor", 5000);
	expect_num(j, "top_tier.share", 0.5);
	expect_num(j, "pareto_point", 0.4);
	expect_int(j, "tiers.A.customers", 1);
	expect_int(j, "tiers.A.revenue_minor", 5000);
	expect_num(j, "tiers.A.share", 0.5);
	expect_int(j, "tiers.B.customers", 2);
	expect_int(j, "tiers.B.revenue_minor", 4000);
	expect_num(j, "tiers.B.share", 0.4);
	expect_int(j, "tiers.C.customers", 2);
	expect_int(j, "tiers.C.revenue_minor", 1000);
	expect_num(j, "tiers.C.share", 0.1);
	expect_num(j, "cr1", 0.5);
	expect_num(j, "cr5", 1.0);
	expect_num(j, "cr10", 1.0);
	expect_num(j, "hhi", 3550);
	expect_num(j, "gini", 0.46);
	expect_str(j, "risk", "critical");
	expect_count(j, "key_clients", 3);
	const char *keys[] = { "a", "b", "c" };
	const long long key_revenue[] = { 5000, 3000, 1000 };
	for (int i = 0; i < 3; i++) {
		char p[64];
		snprintf(p, sizeof p, "key_clients[%d].customer", i);
		expect_str(j, p, keys[i]);
		snprintf(p, sizeof p, "key_clients[%d].revenue_minor", i);
		expect_int(j, p, key_revenue[i]);
		snprintf(p, sizeof p, "key_clients[%d].share", i);
		expect_num(j, p, key_revenue[i] / 10000.0);
	}
	expect_count(j, "top", 5);
	const char *ids[] = { "a", "b", "c", "d", "e" };
	const long long revenue[] = { 5000, 3000, 1000, 500, 500 };
	const long long competition[] = { 1, 2, 3, 4, 4 };
	const double cumulative[] = { 0.5, 0.8, 0.9, 0.95, 1.0 };
	for (int i = 0; i < 5; i++) {
		char p[64];
		snprintf(p, sizeof p, "top[%d].rank", i);
		expect_int(j, p, i + 1);
		snprintf(p, sizeof p, "top[%d].competition_rank", i);
		expect_int(j, p, competition[i]);
		snprintf(p, sizeof p, "top[%d].customer", i);
		expect_str(j, p, ids[i]);
		snprintf(p, sizeof p, "top[%d].revenue_minor", i);
		expect_int(j, p, revenue[i]);
		snprintf(p, sizeof p, "top[%d].share", i);
		expect_num(j, p, revenue[i] / 10000.0);
		snprintf(p, sizeof p, "top[%d].cumulative_share", i);
		expect_num(j, p, cumulative[i]);
	}

	expect_count(j, "stores", 2);
	expect_str(j, "stores[0].store", "S1");
	expect_int(j, "stores[0].customers", 3);
	expect_int(j, "stores[0].revenue_minor", 7500);
	expect_num(j, "stores[0].cr1", 40.0 / 75);
	expect_num(j, "stores[0].hhi", 2525.0 / 5625 * 10000);
	expect_num(j, "stores[0].gini", 370.0 / 225 - 4.0 / 3);
	expect_str(j, "stores[0].risk", "critical");
	expect_count(j, "stores[0].key_clients", 2);
	expect_str(j, "stores[0].key_clients[1].customer", "b");
	expect_num(j, "stores[0].key_clients[1].share", 0.4);
	expect_str(j, "stores[1].store", "S2");
	expect_int(j, "stores[1].customers", 3);
	expect_int(j, "stores[1].revenue_minor", 2500);
	expect_num(j, "stores[1].cr1", 0.4);
	expect_num(j, "stores[1].hhi", 3600);
	expect_num(j, "stores[1].gini", 110.0 / 75 - 4.0 / 3);
	expect_str(j, "stores[1].risk", "high");
	expect_count(j, "stores[1].key_clients", 3);
	expect_str(j, "stores[1].key_clients[0].customer", "a");
	expect_str(j, "stores[1].key_clients[1].customer", "c");
	expect_str(j, "stores[1].key_clients[2].customer", "e");
	expect_int(j, "stores[1].key_clients[2].revenue_minor", 500);
	expect_num(j, "stores[1].key_clients[2].share", 0.2);

	expect_count(j, "customer_detail", 2);
	expect_str(j, "customer_detail[0].customer", "e");
	expect_int(j, "customer_detail[0].rank", 5);
	expect_int(j, "customer_detail[0].competition_rank", 4);
	expect_num(j, "customer_detail[0].percentile", 1.0);
	expect_str(j, "customer_detail[0].tier", "C");
	expect_int(j, "customer_detail[0].revenue_minor", 500);
	expect_num(j, "customer_detail[0].share", 0.05);
	expect_str(j, "customer_detail[1].customer", "zz");
	expect_null(j, "customer_detail[1].rank");
	expect_null(j, "customer_detail[1].competition_rank");
	expect_null(j, "customer_detail[1].percentile");
	expect_null(j, "customer_detail[1].tier");
	expect_int(j, "customer_detail[1].revenue_minor", 0);
	expect_num(j, "customer_detail[1].share", 0.0);
	expect_count(j, "lapsed", 0);
	expect_int(j, "lapsed_total", 0);

	/* The reference agrees with the hand, and so with the report in full. */
	struct feed f;
	five_feed(&f);
	const char *asked[] = { "e", "zz" };
	struct ref_query q = { .top = 10, .by_store = true, .customers = asked, .customer_count = 2,
			       .lapsed = true, .lapsed_limit = 10, .scale = 2 };
	expect_reference(j, &f, 0, &q);
	feed_free(&f);
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Windows of the same feed; watermark 2024-02-04 (February, Q1 2024):
 *   month (Feb): c 10, e 5 (7.50 - 2.50), d 5: N 3, 2000, c first; top tier
 *     ceil(0.6) = 1: c, 0.5; d and e tie at 5.00: ranks 2 and 3.
 *   prev-month (Jan): a 50, b 30: N 2, 8000; a 62.5%: critical.
 *   quarter, year: the whole feed, as `all`.
 *   prev-quarter (Q4 2023), prev-year (2023): nothing: N 0, risk none.
 */
Test(e2e, windows_by_hand)
{
	struct proc_result r;
	const char *month[] = { "--window", "month", NULL };
	struct tj *j = report(five, month, &r);
	expect_str(j, "window", "month");
	expect_int(j, "records", 7);
	expect_int(j, "customers", 3);
	expect_int(j, "revenue_minor", 2000);
	expect_str(j, "top[0].customer", "c");
	expect_str(j, "top[1].customer", "d");
	expect_str(j, "top[2].customer", "e");
	expect_int(j, "top[2].competition_rank", 2);
	expect_num(j, "top_tier.share", 0.5);
	expect_str(j, "risk", "critical");
	tj_free(j);
	proc_result_free(&r);

	const char *prev_month[] = { "--window", "prev-month", NULL };
	j = report(five, prev_month, &r);
	expect_int(j, "customers", 2);
	expect_int(j, "revenue_minor", 8000);
	expect_str(j, "top[0].customer", "a");
	expect_num(j, "cr1", 0.625);
	expect_str(j, "risk", "critical");
	tj_free(j);
	proc_result_free(&r);

	const char *quarter[] = { "--window", "quarter", NULL };
	j = report(five, quarter, &r);
	expect_int(j, "customers", 5);
	expect_int(j, "revenue_minor", 10000);
	tj_free(j);
	proc_result_free(&r);

	const char *prev_year[] = { "--window", "prev-year", "--by-store", NULL };
	j = report(five, prev_year, &r);
	expect_int(j, "records", 7);
	expect_str(j, "watermark", "2024-02-04T10:00:00.000Z");
	expect_int(j, "customers", 0);
	expect_int(j, "revenue_minor", 0);
	expect_int(j, "top_tier.customers", 0);
	expect_num(j, "pareto_point", 0);
	expect_str(j, "risk", "none");
	expect_count(j, "top", 0);
	expect_count(j, "key_clients", 0);
	/* Both stores are listed, empty in this window, in first-seen order. */
	expect_count(j, "stores", 2);
	expect_str(j, "stores[0].store", "S1");
	expect_int(j, "stores[0].customers", 0);
	expect_str(j, "stores[1].store", "S2");
	tj_free(j);
	proc_result_free(&r);
}

/* ---- mono, refunds, empty ----------------------------------------------------------- */

/*
 * One customer "solo" (3 purchases, 60.00) in S1; "other" 1.00 in S2
 * refunded in full (net 0, never ranked):
 *   N = 1: risk mono; CR1 = CR5 = CR10 = 1; HHI = 1 x 10,000 = 10000;
 *   Gini = 2 x (1 x 6000) / (1 x 6000) - 2/1 = 0; top tier ceil(0.2) = 1:
 *   share 1; Pareto point 1/1 = 1; tiers A = ceil(0.2) = 1, B = up to
 *   ceil(0.5) = 1: none, C none. Key clients: solo (share 1).
 *   Stores: S1 mono (solo); S2 has no customer with revenue > 0: none.
 */
Test(e2e, mono_client)
{
	const char feed[] = "customer_id,amount,ts,store_id\n"
			    "solo,10.00,2024-03-01,S1\n"
			    "other,1.00,2024-03-02,S2\n"
			    "solo,20.00,2024-03-05,S1\n"
			    "other,-1.00,2024-03-06,S2\n"
			    "solo,30.00,2024-03-09,S1\n";
	struct proc_result r;
	const char *opts[] = { "--by-store", "--customer", "other", NULL };
	struct tj *j = report(feed, opts, &r);
	expect_int(j, "customers", 1);
	expect_int(j, "revenue_minor", 6000);
	expect_str(j, "risk", "mono");
	expect_num(j, "cr1", 1);
	expect_num(j, "cr5", 1);
	expect_num(j, "cr10", 1);
	expect_num(j, "hhi", 10000);
	expect_num(j, "gini", 0);
	expect_int(j, "top_tier.customers", 1);
	expect_num(j, "top_tier.share", 1);
	expect_num(j, "pareto_point", 1);
	expect_int(j, "tiers.A.customers", 1);
	expect_int(j, "tiers.B.customers", 0);
	expect_int(j, "tiers.C.customers", 0);
	expect_int(j, "tiers.C.revenue_minor", 0);
	expect_count(j, "key_clients", 1);
	expect_str(j, "key_clients[0].customer", "solo");
	expect_num(j, "key_clients[0].share", 1);
	expect_str(j, "stores[0].store", "S1");
	expect_str(j, "stores[0].risk", "mono");
	expect_str(j, "stores[1].store", "S2");
	expect_int(j, "stores[1].customers", 0);
	expect_str(j, "stores[1].risk", "none");
	expect_count(j, "stores[1].key_clients", 0);
	expect_null(j, "customer_detail[0].rank");
	expect_int(j, "customer_detail[0].revenue_minor", 0);
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Refunds: p buys 20.00 in January and refunds it all in February (net 0);
 * n buys 5.00 and refunds 8.00 (net -3.00); k 12.00 and q 8.00 stay.
 *   all: N = 2 (k 1200, q 800), revenue 2000 (negative nets are not
 *   subtracted): k 60%, critical. p: unranked, revenue 0; n: -300.
 *   prev-month (January): p 2000, k 1200, n 500: N 3, 3700, p first.
 *   month (February): p -2000, n -800, q 800: N 1 (q), mono.
 */
Test(e2e, refunds_remove_customers)
{
	const char feed[] = "ts,customer_id,amount\n"
			    "2024-01-10T00:00:00Z,p,20.00\n"
			    "2024-01-11T00:00:00Z,k,12.00\n"
			    "2024-01-12T00:00:00Z,n,5.00\n"
			    "2024-02-01T00:00:00Z,p,-20.00\n"
			    "2024-02-02T00:00:00Z,n,-8.00\n"
			    "2024-02-03T00:00:00Z,q,8.00\n";
	struct proc_result r;
	const char *all[] = { "--customer", "p", "--customer", "n", NULL };
	struct tj *j = report(feed, all, &r);
	expect_int(j, "customers", 2);
	expect_int(j, "revenue_minor", 2000);
	expect_str(j, "top[0].customer", "k");
	expect_num(j, "cr1", 0.6);
	expect_str(j, "risk", "critical");
	expect_null(j, "customer_detail[0].rank");
	expect_int(j, "customer_detail[0].revenue_minor", 0);
	expect_null(j, "customer_detail[1].rank");
	expect_int(j, "customer_detail[1].revenue_minor", -300);
	expect_num(j, "customer_detail[1].share", 0);
	tj_free(j);
	proc_result_free(&r);

	const char *prev[] = { "--window", "prev-month", "--customer", "p", NULL };
	j = report(feed, prev, &r);
	expect_int(j, "customers", 3);
	expect_int(j, "revenue_minor", 3700);
	expect_str(j, "top[0].customer", "p");
	expect_int(j, "customer_detail[0].rank", 1);
	expect_str(j, "customer_detail[0].tier", "A");
	tj_free(j);
	proc_result_free(&r);

	const char *month[] = { "--window", "month", "--customer", "p", NULL };
	j = report(feed, month, &r);
	expect_int(j, "customers", 1);
	expect_str(j, "risk", "mono");
	expect_str(j, "top[0].customer", "q");
	expect_int(j, "customer_detail[0].revenue_minor", -2000);
	tj_free(j);
	proc_result_free(&r);
}

/* A header and no record: nothing to rank, no watermark. */
Test(e2e, header_only)
{
	struct proc_result r;
	const char *opts[] = { "--by-store", "--lapsed", "5", "--customer", "x", NULL };
	struct tj *j = report("ts,customer_id,store_id,amount\n", opts, &r);
	expect_int(j, "records", 0);
	expect_null(j, "watermark");
	expect_null(j, "watermark_ms");
	expect_int(j, "customers", 0);
	expect_int(j, "revenue_minor", 0);
	expect_str(j, "risk", "none");
	expect_count(j, "top", 0);
	expect_count(j, "stores", 0);
	expect_count(j, "lapsed", 0);
	expect_int(j, "lapsed_total", 0);
	expect_null(j, "customer_detail[0].rank");
	struct feed f;
	feed_init(&f);
	const char *asked[] = { "x" };
	struct ref_query q = { .top = 10, .by_store = true, .customers = asked, .customer_count = 1,
			       .lapsed = true, .lapsed_limit = 5, .scale = 2 };
	expect_reference(j, &f, 0, &q);
	feed_free(&f);
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Lapsed regulars by hand; watermark 2024-06-30T00:00:00Z (w):
 *   r1: 2024-01-01, 01-11, 01-21 (3 days, mean gap 10 days), idle 161
 *       days > 30 and >= 30: lapsed; revenue 30.00.
 *   r2: 05-01, 05-11, 05-31: gap 15 days, idle 30 days: 30 > 45? no.
 *   r3: 2024-05-21, 05-26, 05-31: gap 5 days, idle exactly 30 days:
 *       30 > 15 and 30 >= 30: lapsed; revenue 90.00 (listed first).
 *   r4: two purchases on 01-01 and one on 01-02: 2 days: not a regular.
 *   w: 06-30, the watermark's own record.
 * Order: r3 (9000), r1 (3000). mean_gap_days 5 and 10.
 */
Test(e2e, lapsed_by_hand)
{
	const char feed[] = "ts,customer_id,amount\n"
			    "2024-01-01,r1,10.00\n2024-01-11,r1,10.00\n2024-01-21,r1,10.00\n"
			    "2024-05-01,r2,10.00\n2024-05-11,r2,10.00\n2024-05-31,r2,10.00\n"
			    "2024-05-21,r3,30.00\n2024-05-26,r3,30.00\n2024-05-31,r3,30.00\n"
			    "2024-01-01T08:00,r4,1.00\n2024-01-01T09:00,r4,1.00\n2024-01-02,r4,1.00\n"
			    "2024-06-30,w,1.00\n";
	struct proc_result r;
	const char *opts[] = { "--lapsed", "10", NULL };
	struct tj *j = report(feed, opts, &r);
	expect_int(j, "lapsed_total", 2);
	expect_count(j, "lapsed", 2);
	expect_str(j, "lapsed[0].customer", "r3");
	expect_int(j, "lapsed[0].revenue_minor", 9000);
	expect_int(j, "lapsed[0].purchases", 3);
	expect_int(j, "lapsed[0].purchase_days", 3);
	expect_str(j, "lapsed[0].last", "2024-05-31T00:00:00.000Z");
	expect_num(j, "lapsed[0].mean_gap_days", 5);
	expect_str(j, "lapsed[1].customer", "r1");
	expect_num(j, "lapsed[1].mean_gap_days", 10);
	tj_free(j);
	proc_result_free(&r);

	/* --lapsed 1 lists the first and still counts both. */
	const char *one[] = { "--lapsed", "1", NULL };
	j = report(feed, one, &r);
	expect_int(j, "lapsed_total", 2);
	expect_count(j, "lapsed", 1);
	expect_str(j, "lapsed[0].customer", "r3");
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Ranks across ids of different lengths and bytes: equal revenue 5.00 for
 * "A", "AB", "B", "a", "é" (0xc3 0xa9); byte order, shorter first on a
 * common prefix: A < AB < B < a < é (a byte >= 0x80 sorts last, unsigned).
 * Quoted ids with a comma and a quote: "x,1" and "q""1" -> q"1, 10.00 each,
 * ranks 1 and 2 (q"1 < x,1). Competition ranks: 1, 1, 3, 3, 3, 3, 3.
 */
Test(e2e, id_byte_order_and_quoting)
{
	const char feed[] = "ts,customer_id,amount\n"
			    "2024-01-01,\xc3\xa9,5.00\n"
			    "2024-01-01,a,5.00\n"
			    "2024-01-01,B,5.00\n"
			    "2024-01-01,AB,5.00\n"
			    "2024-01-01,A,5.00\n"
			    "2024-01-01,\"x,1\",10.00\n"
			    "2024-01-01,\"q\"\"1\",10.00\n";
	struct proc_result r;
	const char *opts[] = { "--customer", "x,1", NULL };
	struct tj *j = report(feed, opts, &r);
	const char *order[] = { "q\"1", "x,1", "A", "AB", "B", "a", "\xc3\xa9" };
	const long long competition[] = { 1, 1, 3, 3, 3, 3, 3 };
	expect_count(j, "top", 7);
	for (int i = 0; i < 7; i++) {
		char p[64];
		snprintf(p, sizeof p, "top[%d].customer", i);
		expect_str(j, p, order[i]);
		snprintf(p, sizeof p, "top[%d].competition_rank", i);
		expect_int(j, p, competition[i]);
	}
	expect_int(j, "customer_detail[0].rank", 2);
	expect_int(j, "customer_detail[0].competition_rank", 1);
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Quantity x price, a semicolon, a day-first time pattern and the scale:
 *   a: 3 x 1.25 = 3.75 -> 375; b: 2 x 0.125 = 0.250 -> 25;
 *   c: 1 x 0.005 = 0.005 -> 0.00 (half to even: 0 is even) and
 *      1 x 0.015 = 0.015 -> 0.02 (2 is even): 2. Two amounts rounded.
 *   N 3, total 402; a 375/402 = 93.3% >= 80%: Pareto point 1/3; critical.
 *   Watermark 08/01/2024 00:00 = 2024-01-08T00:00:00.000Z.
 * At --scale 3 nothing rounds: 3750, 250, 5 + 15 = 20; total 4020.
 */
Test(e2e, quantity_price_scale_and_formats)
{
	const char feed[] = "ts;card;qty;unit\n"
			    "05/01/2024 10:00;a;3;1.25\n"
			    "06/01/2024 11:30;b;2;0.125\n"
			    "07/01/2024 00:00;c;1;0.005\n"
			    "08/01/2024 00:00;c;1;0.015\n";
	struct proc_result r;
	const char *opts[] = { "--delimiter", "semicolon", "--map", "customer=card", "--map",
			       "quantity=qty", "--map", "price=unit", "--ts-format",
			       "%d/%m/%Y %H:%M", "--top", "0", NULL };
	struct tj *j = report(feed, opts, &r);
	cr_assert(strstr(r.err, "2 amounts had more than 2 decimals"), "%s", r.err);
	expect_str(j, "watermark", "2024-01-08T00:00:00.000Z");
	expect_int(j, "scale", 2);
	expect_int(j, "customers", 3);
	expect_int(j, "revenue_minor", 402);
	expect_int(j, "top_tier.revenue_minor", 375);
	expect_int(j, "tiers.B.revenue_minor", 25);
	expect_int(j, "tiers.C.revenue_minor", 2);
	expect_num(j, "pareto_point", 1.0 / 3);
	expect_num(j, "cr1", 375.0 / 402);
	expect_str(j, "risk", "critical");
	expect_count(j, "top", 0);
	tj_free(j);
	proc_result_free(&r);

	const char *scale3[] = { "--delimiter", "semicolon", "--map", "customer=card", "--map",
				 "quantity=qty", "--map", "price=unit", "--ts-format",
				 "%d/%m/%Y %H:%M", "--scale", "3", NULL };
	j = report(feed, scale3, &r);
	cr_assert_str_empty(r.err);
	expect_int(j, "scale", 3);
	expect_int(j, "revenue_minor", 4020);
	expect_int(j, "top[2].revenue_minor", 20);
	tj_free(j);
	proc_result_free(&r);
}

/*
 * Money at the int64 bound, exact: a and b 46116860184273879.03 each
 * (x = 2^62 - 1 minor), c 0.01, d 0.00. Total 2x + 1 = 2^63 - 1 =
 * 9223372036854775807 = INT64_MAX. a and b tie (ranks 1, 2; competition 1,
 * 1), 50% each: high, not critical (x / (2x + 1) < 1/2). Pareto point: 2/3.
 * A further 0.01 on top of INT64_MAX of volume is refused and counted.
 */
Test(e2e, money_at_the_int64_bound)
{
	const char feed[] = "ts,customer_id,amount\n"
			    "2024-01-01,a,46116860184273879.03\n"
			    "2024-01-02,b,46116860184273879.03\n"
			    "2024-01-03,c,0.01\n"
			    "2024-01-04,d,0.00\n";
	struct proc_result r;
	const char *opts[] = { "--by-store", NULL };
	struct tj *j = report(feed, opts, &r);
	expect_int(j, "revenue_minor", INT64_MAX);
	expect_int(j, "top[0].revenue_minor", 4611686018427387903LL);
	expect_int(j, "top[1].competition_rank", 1);
	expect_str(j, "risk", "high");
	expect_num(j, "pareto_point", 2.0 / 3);
	struct feed f;
	feed_init(&f);
	uint32_t s = feed_store(&f, "", 0);
	feed_add(&f, feed_utc_ms(2024, 1, 1, 0, 0, 0, 0), feed_customer(&f, "a", 1), s,
		 4611686018427387903LL);
	feed_add(&f, feed_utc_ms(2024, 1, 2, 0, 0, 0, 0), feed_customer(&f, "b", 1), s,
		 4611686018427387903LL);
	feed_add(&f, feed_utc_ms(2024, 1, 3, 0, 0, 0, 0), feed_customer(&f, "c", 1), s, 1);
	feed_add(&f, feed_utc_ms(2024, 1, 4, 0, 0, 0, 0), feed_customer(&f, "d", 1), s, 0);
	struct ref_query q = { .top = 10, .by_store = true, .scale = 2 };
	expect_reference(j, &f, 0, &q);
	feed_free(&f);
	tj_free(j);
	proc_result_free(&r);

	char more[256];
	snprintf(more, sizeof more, "%s2024-01-05,e,0.01\n", feed);
	j = report(more, NULL, &r);
	expect_int(j, "records", 4);
	expect_int(j, "rejected", 1);
	expect_int(j, "revenue_minor", INT64_MAX);
	cr_assert(strstr(r.err, "feed.csv:6: "), "%s", r.err);
	tj_free(j);
	proc_result_free(&r);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* The five feed and 8 bad lines (lines 9..16), all in a store S9 that no
 * good line names. */
static const char bad_lines[] =
	"2024-02-05T10:00:00Z,x,S9\n"                 /* 9: 3 fields */
	"2024-13-05T10:00:00Z,x,S9,1.00\n"            /* 10: month 13 */
	"2024-02-05T10:00:00Z,x,S9,ten\n"             /* 11: not a decimal */
	"2024-02-05T10:00:00Z,"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" /* 12: 65 bytes */
	",S9,1.00\n"
	"2024-02-05T10:00:00Z,,S9,1.00\n"             /* 13: empty id */
	"9000000000000000,x,S9,1.00\n"                /* 14: year 287,000 */
	"2024-02-05T10:00:00Z,x,S9,99999999999999999999\n" /* 15: past int64 */
	"2024-02-05T10:00:00Z,\"x,S9,1.00\n";         /* 16: unterminated quote */

Test(e2e, bad_lines_are_counted_and_change_no_total)
{
	struct proc_result clean, dirty;
	const char *opts[] = { "--by-store", "--lapsed", "10", "--customer", "x", NULL };
	struct tj *a = report(five, opts, &clean);
	char feed[4096];
	snprintf(feed, sizeof feed, "%s%s", five, bad_lines);
	char *rejects = tmpdir_path(dir, "rejects.csv");
	const char *with_rejects[] = { "--by-store", "--lapsed", "10", "--customer", "x",
				       "--rejects", rejects, NULL };
	struct tj *b = report(feed, with_rejects, &dirty);
	expect_int(b, "rejected", 8);
	expect_int(b, "records", 7);
	expect_same_report(a, b, "rejected");
	/* Each bad line named with its file and line number on stderr. */
	for (int line = 9; line <= 16; line++) {
		char where[32];
		snprintf(where, sizeof where, "feed.csv:%d: ", line);
		cr_assert(strstr(dirty.err, where), "no message for line %d in:\n%s", line, dirty.err);
	}
	cr_assert(strstr(dirty.err, "8 bad lines skipped"), "%s", dirty.err);
	/* The rejects file: a header and one row per bad line. */
	size_t len;
	char *text = file_read(rejects, &len);
	int rows = 0;
	for (char *p = text; (p = strstr(p, "feed.csv\",")); p++)
		rows++;
	cr_assert_eq(rows, 8, "%s", text);
	cr_assert(strstr(text, "\",12,") && strstr(text, "customer"), "%s", text);
	free(text);
	free(rejects);
	tj_free(a);
	tj_free(b);
	proc_result_free(&clean);
	proc_result_free(&dirty);
}

Test(e2e, strict_stops_at_the_first_bad_line)
{
	char feed[4096];
	snprintf(feed, sizeof feed, "%s%s", five, bad_lines);
	char *path = put_file("strict.csv", feed, strlen(feed));
	struct proc_result r;
	const char *args[] = { "report", "--json", "--strict", path, NULL };
	run(&r, NULL, args);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert_eq(r.out_len, 0, "a report was printed: %s", r.out);
	cr_assert(strstr(r.err, path), "the file is not named: %s", r.err);
	cr_assert(strstr(r.err, "line 9"), "the line is not named: %s", r.err);
	cr_assert_null(strstr(r.err, "line 10"), "%s", r.err);
	proc_result_free(&r);
	free(path);
}

Test(e2e, exit_codes_and_messages)
{
	struct proc_result r;
	const char *missing[] = { "report", "--json", "/nonexistent/feed.csv", NULL };
	run(&r, NULL, missing);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "/nonexistent/feed.csv"), "%s", r.err);
	cr_assert_eq(r.out_len, 0);
	proc_result_free(&r);

	char *path = put_file("ok.csv", five, strlen(five));
	const char *unknown[] = { "report", "--frobnicate", path, NULL };
	run(&r, NULL, unknown);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "frobnicate"), "%s", r.err);
	cr_assert_eq(r.out_len, 0);
	proc_result_free(&r);

	const char *bad_window[] = { "report", "--window", "week", path, NULL };
	run(&r, NULL, bad_window);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--window"), "%s", r.err);
	proc_result_free(&r);

	const char *bad_tiers[] = { "report", "--tiers", "0.6,0.2", path, NULL };
	run(&r, NULL, bad_tiers);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--tiers"), "%s", r.err);
	proc_result_free(&r);

	const char *no_input[] = { "report", "--json", NULL };
	run(&r, NULL, no_input);
	cr_assert_eq(r.status, 2);
	proc_result_free(&r);

	const char *no_column[] = { "report", "--map", "amount=price", "-", NULL };
	run(&r, five, no_column);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "price"), "%s", r.err);
	proc_result_free(&r);

	const char *help[] = { "report", "--help", NULL };
	run(&r, NULL, help);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "--window") && strstr(r.out, "--strict"));
	proc_result_free(&r);

	/* A missing second file: exit 1, named, no report. */
	const char *second[] = { "report", "--json", path, "/nonexistent/two.csv", NULL };
	run(&r, NULL, second);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "/nonexistent/two.csv"), "%s", r.err);
	cr_assert_eq(r.out_len, 0);
	proc_result_free(&r);
	free(path);
}

/* ---- other ways in: stdin, binary records, several files -------------------------------- */

/* A whole file: its bytes (owned) and their count. */
static char *file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	cr_assert_geq(size, 0);
	rewind(f);
	char *bytes = malloc((size_t)size + 1);
	cr_assert_not_null(bytes);
	cr_assert_eq(fread(bytes, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return bytes;
}

/* wide: records converted from standard input (room for the longest ids).
 * The same records in the 128-byte PRTREC01 layout, and each file
 * converted again from a file (read twice: as narrow as its ids), give
 * the report `want`. */
static void binary_layouts_agree(const char *wide, const char *want)
{
	size_t len;
	char *bytes = file_bytes(wide, &len);
	struct pr_bin_layout in, old = pr_bin_layout_v1(2);
	cr_assert_eq(pr_bin_header_decode((const unsigned char *)bytes, &in), 0);
	cr_assert_eq(in.record_bytes, 120);
	char *v1 = tmpdir_path(dir, "five-v1.prb");
	FILE *f = fopen(v1, "wb");
	cr_assert_not_null(f);
	unsigned char rec[PR_BIN_RECORD_MAX_BYTES];
	pr_bin_header_encode(rec, &old);
	fwrite(rec, 1, PR_BIN_HEADER_BYTES, f);
	for (size_t at = PR_BIN_HEADER_BYTES; at + in.record_bytes <= len; at += in.record_bytes) {
		struct pr_record r = { 0 };
		cr_assert_eq(pr_bin_record_decode((const unsigned char *)bytes + at, &in, &r), 0);
		pr_bin_record_encode(rec, &old, &r);
		fwrite(rec, 1, old.record_bytes, f);
	}
	fclose(f);
	const char *sources[] = { wide, v1 };
	for (int i = 0; i < 2; i++) {
		char *narrow = tmpdir_path(dir, i ? "five-narrow-1.prb" : "five-narrow-0.prb");
		const char *convert[] = { "convert", "--quiet", sources[i], narrow, NULL };
		struct proc_result r;
		run(&r, NULL, convert);
		cr_assert_eq(r.status, 0, "%s", r.err);
		proc_result_free(&r);
		size_t narrow_len;
		char *out = file_bytes(narrow, &narrow_len);
		struct pr_bin_layout l;
		cr_assert_eq(pr_bin_header_decode((const unsigned char *)out, &l), 0);
		cr_assert_lt(l.record_bytes, in.record_bytes, "%s: not narrower", sources[i]);
		cr_assert_eq((narrow_len - PR_BIN_HEADER_BYTES) / l.record_bytes,
			     (len - PR_BIN_HEADER_BYTES) / in.record_bytes);
		free(out);
		const char *args[] = { "report", "--json", "--by-store", "--lapsed", "10",
				       "--customer", "e", i ? v1 : narrow, NULL };
		for (int k = 0; k < 2; k++) {
			args[7] = k ? narrow : sources[i];
			run(&r, NULL, args);
			cr_assert_eq(r.status, 0, "%s", r.err);
			cr_assert_str_eq(r.out, want, "%s", args[7]);
			proc_result_free(&r);
		}
		free(narrow);
	}
	free(v1);
	free(bytes);
}

Test(e2e, standard_input_binary_records_and_several_files_agree)
{
	struct proc_result from_file, from_stdin, converted, from_binary, from_parts;
	const char *opts[] = { "--by-store", "--lapsed", "10", "--customer", "e", NULL };
	struct tj *a = report(five, opts, &from_file);

	const char *stdin_args[] = { "report", "--json", "--by-store", "--lapsed", "10",
				     "--customer", "e", "-", NULL };
	run(&from_stdin, five, stdin_args);
	cr_assert_eq(from_stdin.status, 0, "%s", from_stdin.err);
	cr_assert_str_eq(from_stdin.out, from_file.out);

	char *bin = tmpdir_path(dir, "five.prb");
	const char *convert[] = { "convert", "--quiet", "-", bin, NULL };
	run(&converted, five, convert);
	cr_assert_eq(converted.status, 0, "%s", converted.err);
	const char *binary[] = { "report", "--json", "--by-store", "--lapsed", "10",
				 "--customer", "e", bin, NULL };
	run(&from_binary, NULL, binary);
	cr_assert_eq(from_binary.status, 0, "%s", from_binary.err);
	cr_assert_str_eq(from_binary.out, from_file.out);
	binary_layouts_agree(bin, from_file.out);

	/* The same records in two files (the second with its own header). */
	const char *split = strstr(five, "2024-02-01");
	char *first = put_file("part1.csv", five, (size_t)(split - five));
	char second_text[1024];
	snprintf(second_text, sizeof second_text, "ts,customer_id,store_id,amount\n%s", split);
	char *second = put_file("part2.csv", second_text, strlen(second_text));
	const char *parts[] = { "report", "--json", "--by-store", "--lapsed", "10", "--customer",
				"e", first, second, NULL };
	run(&from_parts, NULL, parts);
	cr_assert_eq(from_parts.status, 0, "%s", from_parts.err);
	cr_assert_str_eq(from_parts.out, from_file.out);

	free(bin);
	free(first);
	free(second);
	tj_free(a);
	proc_result_free(&from_file);
	proc_result_free(&from_stdin);
	proc_result_free(&converted);
	proc_result_free(&from_binary);
	proc_result_free(&from_parts);
}

/* ---- CDNOW: real data, every figure against the reference -------------------------------- */

static const char *cdnow_path(void)
{
	static const char *const candidates[] = {
		PARETO_SOURCE_DIR "/tests/data/CDNOW_master.txt",
		"/work/shared/data/CDNOW_master.txt",
	};
	for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return NULL;
}

/* Reads CDNOW (whitespace columns customer_id date number_of_cds
 * dollar_value) into a feed, independently of the engine's decoder. */
static void load_cdnow(const char *path, struct feed *f, __int128 *sum)
{
	size_t len;
	char *text = file_read(path, &len);
	feed_init(f);
	uint32_t store = feed_store(f, "", 0);
	*sum = 0;
	char *line = strchr(text, '\n') + 1; /* past the header */
	while (line < text + len) {
		char id[16], date[16], amount[32];
		int cds;
		cr_assert_eq(sscanf(line, "%15s %15s %d %31s", id, date, &cds, amount), 4, "%.40s", line);
		int y, m, d;
		cr_assert_eq(sscanf(date, "%4d%2d%2d", &y, &m, &d), 3);
		/* Exact cents from "dollars.cents" (every value has 2 decimals or none). */
		char *dot = strchr(amount, '.');
		int64_t cents = strtoll(amount, NULL, 10) * 100;
		if (dot) {
			cr_assert_eq(strlen(dot + 1), 2, "%s", amount);
			cents += (amount[0] == '-' ? -1 : 1) * strtoll(dot + 1, NULL, 10);
		}
		*sum += cents;
		feed_add(f, feed_utc_ms(y, m, d, 0, 0, 0, 0), feed_customer(f, id, strlen(id)), store,
			 cents);
		char *next = strchr(line, '\n');
		line = next ? next + 1 : text + len;
	}
	free(text);
}

Test(e2e, cdnow_against_the_reference, .timeout = 600)
{
	const char *path = cdnow_path();
	if (!path)
		cr_skip_test("CDNOW_master.txt not found");
	struct feed f;
	__int128 sum;
	load_cdnow(path, &f, &sum);
	cr_assert_eq(f.count, 69659);
	cr_assert_eq((long long)sum, 250031563LL, "the file's total");

	const char *customers[] = { "07592", "00001", "99999" };
	char *bin = tmpdir_path(dir, "cdnow.prb");
	const char *convert[] = { "convert", "--quiet", "--delimiter", "whitespace", "--map",
				  "customer=customer_id", "--map", "ts=date", "--ts-format", "%Y%m%d",
				  "--map", "amount=dollar_value", path, bin, NULL };
	struct proc_result conv;
	run(&conv, NULL, convert);
	cr_assert_eq(conv.status, 0, "%s", conv.err);
	proc_result_free(&conv);

	for (int w = 0; w < REF_WINDOW_COUNT; w++) {
		const char *args[] = { "report", "--json", "--delimiter", "whitespace", "--map",
				       "customer=customer_id", "--map", "ts=date", "--ts-format",
				       "%Y%m%d", "--map", "amount=dollar_value", "--top", "1000000",
				       "--by-store", "--lapsed", "1000000", "--customer", customers[0],
				       "--customer", customers[1], "--customer", customers[2],
				       "--window", ref_window_name(w), path, NULL };
		struct proc_result r;
		run(&r, NULL, args);
		cr_assert_eq(r.status, 0, "window %s: %s", ref_window_name(w), r.err);
		char error[128];
		struct tj *j = tj_parse(r.out, r.out_len, error, sizeof error);
		cr_assert_not_null(j, "window %s: bad JSON: %s", ref_window_name(w), error);
		expect_int(j, "records", 69659);
		expect_int(j, "rejected", 0);
		expect_str(j, "watermark", "1998-06-30T00:00:00.000Z");
		if (w == 0) {
			/* Every amount is >= 0, so the positive revenue is the file's total. */
			expect_int(j, "revenue_minor", 250031563);
			expect_str(j, "top[0].customer", "07592");
			expect_int(j, "top[0].revenue_minor", 1399093);
			expect_str(j, "stores[0].store", "");
		}
		struct ref_query q = { .top = 1000000, .by_store = true, .customers = customers,
				       .customer_count = 3, .lapsed = true, .lapsed_limit = 1000000,
				       .scale = 2 };
		expect_reference(j, &f, w, &q);

		if (w == 0 || w == 5) {
			/* The binary records of the same file answer the same, byte for byte. */
			const char *bargs[] = { "report", "--json", "--top", "1000000", "--by-store",
						"--lapsed", "1000000", "--customer", customers[0],
						"--customer", customers[1], "--customer", customers[2],
						"--window", ref_window_name(w), bin, NULL };
			struct proc_result b;
			run(&b, NULL, bargs);
			cr_assert_eq(b.status, 0, "%s", b.err);
			cr_assert_eq(b.out_len, r.out_len, "binary report differs in length");
			cr_assert(memcmp(b.out, r.out, r.out_len) == 0, "binary report differs");
			proc_result_free(&b);
		}
		tj_free(j);
		proc_result_free(&r);
	}
	free(bin);
	feed_free(&f);
}

/* ---- threads ------------------------------------------------------------------------------- */

/* A file split across threads gives the report, the rejects (with their
 * line numbers) and the messages of one thread, byte for byte, also when a
 * split falls inside a quoted field with a line break (then it reads again
 * on one thread). */
Test(e2e, threads_give_identical_results, .timeout = 300)
{
	static char feed[1 << 20];
	const char *const env[] = { "PARETO_PARALLEL_MIN_BYTES=1", NULL };
	for (unsigned seed = 1; seed <= 12; seed++) {
		struct feed_rng rng;
		feed_rng_seed(&rng, seed);
#define RND(n) ((int)feed_rng_below(&rng, (n)))
		size_t n = (size_t)sprintf(feed, "ts,customer_id,store_id,amount\n");
		for (int i = 0; i < 3000; i++) {
			int kind = RND(40);
			if (kind == 0)
				n += (size_t)sprintf(feed + n, "2024-01-01,bad\n");
			else if (kind == 1)
				n += (size_t)sprintf(feed + n, "2024-13-01,C%d,S1,1.00\n", RND(99));
			else if ((kind == 2 && seed % 3 == 0) || (seed == 12 && kind < 30))
				n += (size_t)sprintf(feed + n, "2024-02-01,\"multi\nline %d\",S2,3.00\n",
						     RND(5));
			else if (kind == 3)
				n += (size_t)sprintf(feed + n, "\n");
			else
				n += (size_t)sprintf(feed + n, "%d,\"C%d\",S%d,%d.%02d\r\n",
						     1700000000 + i * 1000 + RND(5000), RND(300), RND(4),
						     RND(300) - 20, RND(100));
		}
#undef RND
		char *path = put_file("threads.csv", feed, n);
		char *rejects = tmpdir_path(dir, "threads.rejects");
		struct proc_result first;
		char *first_rejects = NULL;
		for (int threads = 1; threads <= 4; threads++) {
			char t[8];
			snprintf(t, sizeof t, "%d", threads);
			const char *argv[] = { PARETO_BIN, "report", "--json", "--by-store", "--lapsed",
					       "50", "--top", "100", "--threads", t, "--rejects",
					       rejects, "--show-errors", "1000", path, NULL };
			struct proc_result r;
			cr_assert_eq(proc_run(argv, env, NULL, 0, &r), 0);
			cr_assert_eq(r.status, 0, "seed %u threads %d: %s", seed, threads, r.err);
			char *text = file_read(rejects, NULL);
			if (threads == 1) {
				first = r;
				first_rejects = text;
				cr_assert(strstr(first_rejects, "field-count"), "seed %u: no rejects?", seed);
				struct tj *j = tj_parse(r.out, r.out_len, NULL, 0);
				cr_assert_not_null(j, "seed %u", seed);
				tj_free(j);
				continue;
			}
			cr_assert_str_eq(r.out, first.out, "seed %u threads %d: report differs", seed, threads);
			cr_assert_str_eq(r.err, first.err, "seed %u threads %d: messages differ", seed, threads);
			cr_assert_str_eq(text, first_rejects, "seed %u threads %d: rejects differ", seed,
					 threads);
			free(text);
			proc_result_free(&r);
		}
		proc_result_free(&first);
		free(first_rejects);

		/* --strict stops at the same first bad line, on any thread count. */
		struct proc_result one, many;
		const char *strict1[] = { PARETO_BIN, "report", "--strict", "--threads", "1", path, NULL };
		const char *strict3[] = { PARETO_BIN, "report", "--strict", "--threads", "3", path, NULL };
		cr_assert_eq(proc_run(strict1, env, NULL, 0, &one), 0);
		cr_assert_eq(proc_run(strict3, env, NULL, 0, &many), 0);
		cr_assert_eq(one.status, 2, "seed %u", seed);
		cr_assert_eq(many.status, 2, "seed %u", seed);
		cr_assert_str_eq(many.err, one.err, "seed %u", seed);
		proc_result_free(&one);
		proc_result_free(&many);
		free(path);
		free(rejects);
	}
}

Test(e2e, threads_on_binary_records, .timeout = 120)
{
	static char feed[1 << 20];
	const char *const env[] = { "PARETO_PARALLEL_MIN_BYTES=1", NULL };
	struct feed_rng rng;
	feed_rng_seed(&rng, 3);
	size_t n = (size_t)sprintf(feed, "ts,customer_id,store_id,amount\n");
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(feed + n, "%d,C%d,S%d,%d.%02d\n", 1700000000 + i * 600,
				     (int)feed_rng_below(&rng, 500), (int)feed_rng_below(&rng, 3),
				     (int)feed_rng_below(&rng, 200), (int)feed_rng_below(&rng, 100));
	feed[n] = 0;
	char *bin = tmpdir_path(dir, "threads.prb");
	const char *convert[] = { "convert", "--quiet", "-", bin, NULL };
	struct proc_result r;
	run(&r, feed, convert);
	cr_assert_eq(r.status, 0, "%s", r.err);
	proc_result_free(&r);
	/* Spoil records 5 and 3001 (customer length 0) and cut the last one
	 * short. From standard input convert cannot read twice: its records
	 * have room for the longest ids (the header says how long they are). */
	FILE *f = fopen(bin, "r+b");
	cr_assert_not_null(f);
	unsigned char header[PR_BIN_HEADER_BYTES];
	cr_assert_eq(fread(header, 1, sizeof header, f), sizeof header);
	cr_assert(memcmp(header, PR_BIN_MAGIC_V2, 8) == 0);
	struct pr_bin_layout layout = { 0 };
	cr_assert_eq(pr_bin_header_decode(header, &layout), 0);
	long size = layout.record_bytes;
	cr_assert_eq(size, 120);
	for (long rec = 5; rec <= 3001; rec += 2996) {
		fseek(f, 16 + (rec - 1) * size + 16, SEEK_SET);
		fputc(0, f);
	}
	fclose(f);
	cr_assert_eq(truncate(bin, 16 + 5000 * size - 50), 0);
	char *first = NULL;
	for (int threads = 1; threads <= 4; threads++) {
		char t[8];
		snprintf(t, sizeof t, "%d", threads);
		const char *argv[] = { PARETO_BIN, "report", "--json", "--by-store", "--threads", t,
				       bin, NULL };
		cr_assert_eq(proc_run(argv, env, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert(strstr(r.err, ":5: binary record: invalid id lengths"), "%s", r.err);
		cr_assert(strstr(r.err, ":3001: binary record: invalid"), "%s", r.err);
		cr_assert(strstr(r.err, ":5000: the feed ends 70 bytes into a binary record"), "%s", r.err);
		struct tj *j = tj_parse(r.out, r.out_len, NULL, 0);
		cr_assert_not_null(j);
		expect_int(j, "records", 4997);
		expect_int(j, "rejected", 3);
		tj_free(j);
		if (threads == 1)
			first = strdup(r.out);
		else
			cr_assert_str_eq(r.out, first, "threads %d", threads);
		proc_result_free(&r);
	}
	free(first);
	free(bin);
}

/* ---- the JSON reader itself ---------------------------------------------------------------- */

Test(e2e, json_reader_is_strict)
{
	const char *good = "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\\n\"],\"b\":{\"c\":null,\"d\":true}}";
	struct tj *j = tj_parse(good, strlen(good), NULL, 0);
	cr_assert_not_null(j);
	cr_assert(tj_get(j, "a[0]")->is_int && tj_get(j, "a[0]")->integer == 1);
	cr_assert(!tj_get(j, "a[1]")->is_int && tj_get(j, "a[1]")->number == -2500.0);
	cr_assert(tj_string_is(tj_get(j, "a[2]"), "x\xc3\xa9\xf0\x9f\x98\x80\n", 8));
	cr_assert_eq(tj_get(j, "b.c")->type, TJ_NULL);
	cr_assert(tj_get(j, "b.d")->boolean);
	cr_assert_null(tj_get(j, "a[3]"));
	tj_free(j);
	const char *bad[] = { "{\"a\":1,}", "[01]", "{\"a\":1,\"a\":2}", "\"\x01\"", "[1] x",
			      "{\"a\" 1}", "[1.]", "", "[\"\\ud800\"]", "nul" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char error[128];
		cr_assert_null(tj_parse(bad[i], strlen(bad[i]), error, sizeof error), "accepted %s",
			       bad[i]);
	}
}
