/*
 * test_ranker.c - what the ranker thread publishes (flat rankings, layers of
 * changes on them, layers grown into new flat ones) equals a ranking built
 * whole on the writer's thread at the record count it cites, entry for
 * entry, customer for customer and in every summary figure, while the
 * writer keeps adding; windows wanted late, months crossed, long and short
 * ids, ties.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "ranker.h"
#include "support_ranking.h"
#include "timeparse.h"

#define CUSTOMERS 3000

/* Card numbers: ids with a long common prefix (the ranker's order keys
 * start past it), but for the last CARD_OUTLIERS customers, whose ids
 * begin otherwise. */
static bool card_ids;
#define CARD_OUTLIERS 50
/* Records name customers [0, customer_span) only. */
static int customer_span = CUSTOMERS;

/* Customer c's id: short ids inline in their entry, long ones in the arena. */
static int customer_id(int c, char *id, size_t size)
{
	if (card_ids)
		return snprintf(id, size, "%s-0000-%08d", c < CUSTOMERS - CARD_OUTLIERS ? "4000" : "3999",
				c);
	return c % 3 ? snprintf(id, size, "customer%d", c)
		     : snprintf(id, size, "a-loyalty-card-with-a-long-number-%d", c);
}

/* The next random record, its id in id[64]. */
static struct pr_record next_record(uint64_t *x, int64_t *ts, char *id)
{
	uint64_t u = support_next(x);
	int len = customer_id((int)(u % (uint64_t)customer_span), id, 64);
	*ts += (int64_t)((u >> 12) % 4000000);
	/* Few distinct amounts: many ties; some refunds. */
	return (struct pr_record){
		.ts_ms = *ts, .amount_minor = (int64_t)((u >> 24) % 7) * 500 - 1000,
		.customer = id, .customer_len = (uint32_t)len, .store = "S", .store_len = 1,
	};
}

static void add_records(struct pr_engine *e, uint64_t *x, int64_t *ts, int count)
{
	for (int i = 0; i < count; i++) {
		char id[64];
		struct pr_record r = next_record(x, ts, id);
		cr_assert_eq(pr_engine_add(e, &r), 0);
	}
}

static void assert_same(const struct pr_published *p, struct pr_engine *e, enum pr_window w,
			const char *where)
{
	struct pr_engine_state st;
	pr_engine_state(e, &st);
	cr_assert_eq(p->records, st.records, "%s: cites %llu records of %llu", where,
		     (unsigned long long)p->records, (unsigned long long)st.records);
	cr_assert_eq(p->watermark_ms, st.watermark_ms, "%s: watermark", where);
	struct pr_ranking *whole;
	cr_assert_eq(pr_ranking_build(e, w, -1, &whole, NULL), 0);
	cr_assert_eq(pr_ranking_index(whole, NULL), 0);
	support_assert_same_entries(p->ranking, whole, where);
	for (int c = 0; c <= CUSTOMERS; c++) {
		char id[64];
		int len = customer_id(c, id, sizeof id);
		struct pr_ranked a = { 0 }, b = { 0 };
		int ca = pr_ranking_find(p->ranking, id, (size_t)len, &a);
		int cb = pr_ranking_find(whole, id, (size_t)len, &b);
		cr_assert(ca == cb && a.revenue_minor == b.revenue_minor && (ca < 0 || a.rank == b.rank),
			  "%s: %s: %d rank %llu revenue %lld, want %d rank %llu revenue %lld", where, id,
			  ca, (unsigned long long)a.rank, (long long)a.revenue_minor, cb,
			  (unsigned long long)b.rank, (long long)b.revenue_minor);
	}
	struct pr_summary s;
	pr_ranking_summarize(whole, &s);
	cr_assert(memcmp(&s, &p->summary, sizeof s) == 0, "%s: summary differs", where);
	pr_ranking_destroy(whole);
}

/* An engine with default options and its ranker, with a fixed interval. */
static void start(struct pr_engine **e, struct pr_ranker **r, unsigned interval_ms)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	cr_assert_eq(pr_engine_create(e, &opt, NULL), 0);
	cr_assert_eq(pr_ranker_create(r, *e, interval_ms, interval_ms, NULL), 0);
}

/* pr_ranker_due after waiting up to 2 s for it to say "now" (0): the
 * ranker may still be merging the batch before. */
static int wait_due(const struct pr_ranker *r)
{
	int due = pr_ranker_due(r);
	for (int i = 0; i < 2000 && due != 0; i++) {
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		due = pr_ranker_due(r);
	}
	return due;
}

Test(ranker, publishes_what_a_whole_build_gives_while_the_writer_adds)
{
	int64_t t0 = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	for (uint64_t seed = 1; seed <= 4; seed++) {
		struct pr_engine *e;
		struct pr_ranker *r;
		start(&e, &r, seed % 2 ? 0 : 1);
		uint64_t x = seed * 0x9e3779b97f4a7c15ull;
		int64_t ts = t0;
		/* A snapshot held across rounds must stay whole (ASan checks). */
		struct pr_published *held = NULL;
		unsigned layered = 0;
		for (int round = 0; round < 30; round++) {
			/* Adds in slices, handing each over without waiting, so
			 * that the ranker merges while the writer goes on. */
			int slices = 1 + (int)(support_next(&x) % 4);
			for (int k = 0; k < slices; k++) {
				add_records(e, &x, &ts, round % 7 == 6 ? 4000 : 1 + (int)(support_next(&x) % 80));
				pr_ranker_want(r, PR_WINDOW_ALL);
				pr_ranker_feed(r, false);
			}
			enum pr_window windows[] = { PR_WINDOW_ALL, PR_WINDOW_MONTH, PR_WINDOW_PREV_QUARTER };
			/* The calendar windows are wanted from round 5 and 12 on. */
			int wanted = round < 5 ? 1 : round < 12 ? 2 : 3;
			for (int i = 0; i < wanted; i++) {
				struct pr_published *p = pr_ranker_wait(r, windows[i]);
				cr_assert_not_null(p);
				char where[80];
				snprintf(where, sizeof where, "seed %llu round %d window %s",
					 (unsigned long long)seed, round, pr_window_name(windows[i]));
				assert_same(p, e, windows[i], where);
				layered += p->base != NULL;
				if (round % 10 == 0) {
					pr_published_release(held);
					held = p;
				} else {
					pr_published_release(p);
				}
			}
			if (held)
				cr_assert_geq(pr_ranking_customers(held->ranking), 1);
		}
		struct pr_ranker_stats st;
		pr_ranker_stats(r, &st);
		cr_assert_gt(st.steps, st.whole, "seed %llu: every step was a whole build",
			     (unsigned long long)seed);
		cr_assert_eq(st.failures, 0);
		/* Layers on a flat base, and layers grown into a new base. */
		cr_assert_gt(layered, 10, "seed %llu: %u layered snapshots", (unsigned long long)seed,
			     layered);
		cr_assert_gt(st.rebases, 0, "seed %llu: no layer grew into a new base",
			     (unsigned long long)seed);
		pr_ranker_destroy(r);
		/* Outlives the ranker: the reader's reference keeps it. */
		cr_assert_geq(pr_ranking_customers(held->ranking), 1);
		pr_published_release(held);
		pr_engine_destroy(e);
	}
}

/*
 * With apply threads, a batch is cut by them behind the records each holds,
 * while the writer goes on enqueueing (no drain): every snapshot must still
 * be exactly the records it cites, as an engine of its own fed just those
 * gives them, on 2 and 3 threads, in window all and in the month (whose
 * revenues are as of the batch's watermark, not the writer's by then; a
 * new month makes the batch whole, cut after a drain as paretod does).
 */
Test(ranker, apply_threads_cut_batches_exactly_where_the_records_end)
{
	enum { RECORDS = 30000 };
	struct logged {
		char id[64];
		struct pr_record r;
	} *log = malloc(RECORDS * sizeof *log);
	cr_assert_not_null(log);
	for (unsigned threads = 2; threads <= 3; threads++) {
		uint64_t x = threads * 0x9e3779b97f4a7c15ull;
		int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
		int64_t t0 = ts;
		for (int i = 0; i < RECORDS; i++) {
			log[i].r = next_record(&x, &ts, log[i].id);
			/* Months of about 10K records: a few whole batches. */
			log[i].r.ts_ms = t0 + (log[i].r.ts_ms - t0) / 8;
		}
		struct pr_engine_options opt;
		pr_engine_options_init(&opt);
		opt.apply_threads = threads;
		struct pr_engine *e;
		struct pr_ranker *r;
		cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
		cr_assert_eq(pr_ranker_create(&r, e, 0, 0, NULL), 0);
		/* The first batches: whole. */
		pr_published_release(pr_ranker_wait(r, PR_WINDOW_ALL));
		pr_published_release(pr_ranker_wait(r, PR_WINDOW_MONTH));
		unsigned verified = 0;
		for (int at = 0; at < RECORDS;) {
			int slices = 1 + (int)(support_next(&x) % 4);
			for (int k = 0; k < slices; k++) {
				for (int n = 1 + (int)(support_next(&x) % 900); n > 0 && at < RECORDS; n--)
					cr_assert_eq(pr_engine_enqueue(e, &log[at++].r), 0);
				if (!pr_ranker_cuts_staged(r))
					cr_assert_eq(pr_engine_drain(e), 0);
				pr_ranker_feed(r, false);
			}
			cr_assert_eq(wait_due(r), 0, "the ranker took the last batch");
			struct pr_published *p[2] = { pr_ranker_take(r, PR_WINDOW_ALL),
						      pr_ranker_take(r, PR_WINDOW_MONTH) };
			cr_assert_eq(pr_engine_drain(e), 0); /* p reads ids from e */
			for (int w = 0; w < 2; w++) {
				if (!p[w])
					continue;
				struct pr_engine *replay;
				pr_engine_options_init(&opt);
				cr_assert_eq(pr_engine_create(&replay, &opt, NULL), 0);
				cr_assert_leq(p[w]->records, (uint64_t)at);
				for (uint64_t i = 0; i < p[w]->records; i++)
					cr_assert_eq(pr_engine_add(replay, &log[i].r), 0);
				char where[80];
				snprintf(where, sizeof where, "%u threads, %s, %llu of %d records",
					 threads, w ? "month" : "all",
					 (unsigned long long)p[w]->records, at);
				assert_same(p[w], replay, w ? PR_WINDOW_MONTH : PR_WINDOW_ALL, where);
				verified++;
				pr_published_release(p[w]);
				pr_engine_destroy(replay);
			}
		}
		struct pr_ranker_stats st;
		pr_ranker_stats(r, &st);
		cr_assert_eq(st.failures, 0);
		cr_assert_gt(st.staged_cuts, 8, "%llu batches cut by the apply threads",
			     (unsigned long long)st.staged_cuts);
		cr_assert_gt(verified, 20, "%u snapshots compared", verified);
		pr_ranker_destroy(r);
		pr_engine_destroy(e);
	}
	free(log);
}

Test(ranker, merges_batches_too_large_to_layer)
{
	/* Window all only (no whole rebuilds when months pass): small batches
	 * make a layer, then a batch of most customers goes into one merge
	 * with the layer's changes, customers in both taking the later. */
	int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	struct pr_engine *e;
	struct pr_ranker *r;
	start(&e, &r, 0);
	uint64_t x = 42;
	for (int round = 0; round < 24; round++) {
		add_records(e, &x, &ts, round % 3 == 2 ? 6000 : 40);
		struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
		cr_assert_not_null(p);
		char where[40];
		snprintf(where, sizeof where, "round %d", round);
		assert_same(p, e, PR_WINDOW_ALL, where);
		pr_published_release(p);
	}
	pr_ranker_destroy(r);
	pr_engine_destroy(e);
}

Test(ranker, flattens_a_layer_when_idle)
{
	int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	struct pr_engine *e;
	struct pr_ranker *r;
	start(&e, &r, 0);
	uint64_t x = 7;
	add_records(e, &x, &ts, 5000);
	pr_published_release(pr_ranker_wait(r, PR_WINDOW_ALL)); /* flat: built whole */
	add_records(e, &x, &ts, 20);
	struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
	cr_assert_not_null(p);
	cr_assert_not_null(p->base, "a few changes are published as a layer");
	pr_published_release(p);
	/* Quiet for longer than FLATTEN_IDLE_MS: the same records come flat. */
	struct pr_published *flat = NULL;
	for (int i = 0; i < 200 && !flat; i++) {
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
		flat = pr_ranker_take(r, PR_WINDOW_ALL);
	}
	cr_assert_not_null(flat, "nothing published after 2 s idle");
	cr_assert_null(flat->base, "still layered");
	assert_same(flat, e, PR_WINDOW_ALL, "flattened");
	pr_published_release(flat);
	pr_ranker_destroy(r);
	pr_engine_destroy(e);
}

Test(ranker, waits_for_nothing_when_nothing_changed)
{
	struct pr_engine *e;
	struct pr_ranker *r;
	start(&e, &r, 10);
	cr_assert_eq(pr_ranker_due(r), -1, "no window is wanted yet");
	/* An empty engine still gets a ranking: empty, citing 0 records. */
	struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
	cr_assert_not_null(p);
	cr_assert_eq(p->records, 0);
	cr_assert_eq(pr_ranking_customers(p->ranking), 0);
	cr_assert_eq(pr_ranker_feed(r, true), -1, "nothing to hand over");
	cr_assert_null(pr_ranker_take(r, PR_WINDOW_ALL), "nothing new published");
	pr_published_release(p);
	pr_ranker_destroy(r);
	pr_engine_destroy(e);
}

/* pr_ranker_due, which paretod asks before it drains its apply threads,
 * says "not yet" within the interval and "now" after it once the ranker
 * is idle. (Intervals of a minute and of nothing: no timing assumed.) */
Test(ranker, is_due_after_the_interval_and_once_the_ranker_is_idle)
{
	int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	uint64_t x = 7;
	struct pr_engine *e;
	struct pr_ranker *r;
	start(&e, &r, 60000);
	pr_published_release(pr_ranker_wait(r, PR_WINDOW_ALL));
	int wait = pr_ranker_due(r);
	cr_assert(wait > 0 && wait <= 60000, "just fed: %d ms to wait", wait);
	add_records(e, &x, &ts, 100);
	cr_assert_gt(pr_ranker_feed(r, false), 0, "a batch within the interval");
	pr_ranker_set_interval(r, 0, 0);
	cr_assert_eq(wait_due(r), 0, "idle and past the interval");
	cr_assert_eq(pr_ranker_feed(r, false), -1, "handed over");
	pr_ranker_set_interval(r, 60000, 60000);
	wait = pr_ranker_due(r);
	cr_assert(wait > 0 && wait <= 60000, "fed again: %d ms to wait", wait);
	struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
	cr_assert_eq(p->records, 100);
	pr_published_release(p);
	pr_ranker_destroy(r);
	pr_engine_destroy(e);
}

/* Ties ordered through the ranker's order keys equal the whole build's:
 * card numbers with a long common prefix (the keys tell them apart past
 * it), first 100 customers (a longer prefix), then more (a shorter one:
 * every key made again), then a few whose ids begin otherwise (keyed by
 * their class, before every other). */
Test(ranker, ties_ordered_by_keys_past_a_common_prefix)
{
	int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	card_ids = true;
	for (uint64_t seed = 1; seed <= 2; seed++) {
		struct pr_engine *e;
		struct pr_ranker *r;
		start(&e, &r, 0);
		uint64_t x = seed * 0x2545f4914f6cdd1dull;
		for (int round = 0; round < 24; round++) {
			customer_span = round < 6 ? 100 : round < 12 ? CUSTOMERS - CARD_OUTLIERS : CUSTOMERS;
			add_records(e, &x, &ts, round % 5 == 4 ? 3000 : 1 + (int)(support_next(&x) % 200));
			struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
			cr_assert_not_null(p);
			char where[80];
			snprintf(where, sizeof where, "seed %llu round %d", (unsigned long long)seed, round);
			assert_same(p, e, PR_WINDOW_ALL, where);
			pr_published_release(p);
		}
		pr_ranker_destroy(r);
		pr_engine_destroy(e);
	}
	card_ids = false;
	customer_span = CUSTOMERS;
}

/* Between bounds, the interval follows the ranker's steps: a few times
 * the last one, so a cheap batch is followed by the next long before the
 * upper bound (a minute here), and never sooner than the lower one. */
Test(ranker, interval_between_bounds_follows_the_last_step)
{
	int64_t ts = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	uint64_t x = 11;
	struct pr_engine *e;
	struct pr_ranker *r;
	start(&e, &r, 0);
	pr_ranker_set_interval(r, 0, 60000);
	pr_published_release(pr_ranker_wait(r, PR_WINDOW_ALL));
	add_records(e, &x, &ts, 100);
	struct pr_ranker_stats st;
	int due = wait_due(r);
	pr_ranker_stats(r, &st);
	cr_assert_eq(due, 0, "not due within 2 s: last step %lld us, gap %lld us",
		     (long long)st.last_step_us, (long long)st.gap_us);
	cr_assert(st.gap_us < 60000000 && st.gap_us >= st.last_step_us,
		  "gap %lld us after a step of %lld us", (long long)st.gap_us,
		  (long long)st.last_step_us);
	cr_assert_eq(pr_ranker_feed(r, false), -1, "handed over");

	pr_ranker_set_interval(r, 60000, 120000);
	pr_ranker_stats(r, &st);
	cr_assert_eq(st.gap_us, 60000000, "the lower bound holds");
	int wait = pr_ranker_due(r);
	cr_assert(wait > 59000 && wait <= 60000, "fed: %d ms to wait", wait);
	struct pr_published *p = pr_ranker_wait(r, PR_WINDOW_ALL);
	cr_assert_eq(p->records, 100);
	pr_published_release(p);
	pr_ranker_destroy(r);
	pr_engine_destroy(e);
}
