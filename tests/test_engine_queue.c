/* test_engine_queue.c - records queued (pr_engine_enqueue) and applied in
 * batches give exactly what one add at a time gives, rejects included; so
 * do staged records applied as runs (pr_engine_apply_runs), and records
 * applied by 2, 3 or 4 apply threads (apply_threads). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "staged.h"
#include "timeparse.h"

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static struct pr_engine *new_engine(void)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 16; /* tables grow while records are queued */
	struct pr_engine *e;
	cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
	return e;
}

/* Every figure of every ranking, every window, company and stores. */
static void assert_same(struct pr_engine *a, struct pr_engine *b)
{
	struct pr_engine_state sa, sb;
	pr_engine_state(a, &sa);
	pr_engine_state(b, &sb);
	cr_assert(sa.records == sb.records && sa.customers == sb.customers &&
		  sa.stores == sb.stores && sa.watermark_ms == sb.watermark_ms);
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		for (int64_t store = -1; store < (int64_t)sa.stores; store++) {
			struct pr_ranking *ra, *rb;
			cr_assert_eq(pr_ranking_build(a, (enum pr_window)w, store, &ra, NULL), 0);
			cr_assert_eq(pr_ranking_build(b, (enum pr_window)w, store, &rb, NULL), 0);
			for (uint64_t rank = 1;; rank++) {
				struct pr_ranked x, y;
				int ca = pr_ranking_at(ra, rank, &x), cb = pr_ranking_at(rb, rank, &y);
				cr_assert_eq(ca, cb);
				if (ca < 0)
					break;
				cr_assert(x.revenue_minor == y.revenue_minor && x.customer_len == y.customer_len &&
					  memcmp(x.customer, y.customer, x.customer_len) == 0,
					  "window %d store %lld rank %llu", w, (long long)store,
					  (unsigned long long)rank);
			}
			pr_ranking_destroy(ra);
			pr_ranking_destroy(rb);
		}
	}
}

Test(engine_queue, batches_equal_single_adds)
{
	int64_t t0 = pr_days_from_civil(2023, 1, 1) * PR_MS_PER_DAY;
	for (uint64_t seed = 1; seed <= 4; seed++) {
		struct pr_engine *one = new_engine(), *queued = new_engine();
		uint64_t x = seed * 0x9e3779b97f4a7c15ull;
		for (int i = 0; i < 20000; i++) {
			char customer[40], store[8];
			uint64_t u = next(&x);
			/* Ids of many lengths; some beyond a queue's worth of bytes apart. */
			int len = snprintf(customer, sizeof customer, "c%llu%.*s",
					   (unsigned long long)(u % 3000), (int)(u >> 40) % 30,
					   "-----------------------------");
			snprintf(store, sizeof store, "S%d", (int)((u >> 20) % 12));
			struct pr_record r = {
				.ts_ms = t0 + (int64_t)(i * 3600000LL) - (int64_t)((u >> 8) % 90) * PR_MS_PER_DAY,
				.amount_minor = (int64_t)((u >> 16) % 100000) - 5000,
				.customer = customer, .customer_len = (uint8_t)len,
				.store = store, .store_len = (uint8_t)strlen(store),
			};
			if (u % 997 == 0)
				r.amount_minor = INT64_MAX; /* past the volume bound: rejected */
			if (u % 991 == 0)
				r.ts_ms = INT64_MIN / 2; /* outside years 0..9999: rejected */
			int want = pr_engine_add(one, &r);
			/* Mostly queued; now and then a direct add or a drain between. */
			int got = u % 101 == 0 ? pr_engine_add(queued, &r) : pr_engine_enqueue(queued, &r);
			cr_assert_eq(got, want, "seed %llu record %d", (unsigned long long)seed, i);
			if (u % 211 == 0)
				cr_assert_eq(pr_engine_drain(queued), 0);
		}
		cr_assert_eq(pr_engine_drain(queued), 0);
		assert_same(one, queued);
		pr_engine_destroy(one);
		pr_engine_destroy(queued);
	}
}

/*
 * Staged records cut into runs anywhere (empty runs, runs of one record,
 * long ones), every other run numbering its stores through a store map,
 * apply as the same records added one at a time: the look-ahead carries
 * on from run to run with each record's own run (and map). Customers
 * buy in up to 12 stores, so pairs are also found through the pair index.
 */
Test(engine_queue, runs_apply_as_single_adds)
{
	int64_t t0 = pr_days_from_civil(2023, 1, 1) * PR_MS_PER_DAY;
	enum { RECORDS = 4000, STORES = 12 };
	uint32_t to_engine[STORES], to_local[STORES];
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct pr_engine *one = new_engine(), *runs = new_engine();
		uint64_t x = seed * 0x9e3779b97f4a7c15ull;
		unsigned char *staged = malloc((size_t)RECORDS * pr_staged_size(64));
		size_t *at = malloc((RECORDS + 1) * sizeof *at); /* where record i begins */
		cr_assert(staged && at);
		uint64_t volume = 0;
		int64_t latest = INT64_MIN;
		at[0] = 0;
		for (int i = 0; i < RECORDS; i++) {
			char customer[40], store[8];
			uint64_t u = next(&x);
			int len = snprintf(customer, sizeof customer, "c%llu%.*s",
					   (unsigned long long)(u % 500), (int)((u >> 40) % 20),
					   "--------------------");
			unsigned k = (unsigned)((u >> 20) % STORES);
			snprintf(store, sizeof store, "S%u", k);
			struct pr_record r = {
				.ts_ms = t0 + (int64_t)i * 600000 - (int64_t)((u >> 8) % 40) * PR_MS_PER_DAY,
				.amount_minor = (int64_t)((u >> 16) % 100000) - 5000,
				.customer = customer, .customer_len = (uint8_t)len,
				.store = store, .store_len = (uint8_t)strlen(store),
			};
			cr_assert_eq(pr_engine_add(one, &r), 0);
			/* The engine numbers stores first seen first, as `one` does;
			 * a lane numbers them k (its own order). */
			uint32_t number = pr_engine_store_intern(runs, store, strlen(store));
			to_engine[k] = number;
			to_local[number] = k;
			pr_staged_write(staged + at[i], &r, number);
			at[i + 1] = at[i] + pr_staged_size(r.customer_len);
			volume += r.amount_minor < 0 ? -(uint64_t)r.amount_minor : (uint64_t)r.amount_minor;
			if (r.ts_ms > latest)
				latest = r.ts_ms;
		}
		struct pr_staged_run list[RECORDS + RECORDS / 4];
		size_t n = 0;
		for (int i = 0; i < RECORDS;) {
			uint64_t u = next(&x);
			int take = u % 5 == 0 ? 0 : u % 5 == 1 ? 1 : (int)((u >> 8) % 40);
			if (take > RECORDS - i)
				take = RECORDS - i;
			bool mapped = n % 2 == 1;
			for (int j = i; mapped && j < i + take; j++) {
				struct pr_staged_record *rec = (void *)(staged + at[j]);
				rec->store = to_local[rec->store];
			}
			cr_assert_lt(n, sizeof list / sizeof list[0]);
			list[n++] = (struct pr_staged_run){ staged + at[i], staged + at[i + take],
							    mapped ? to_engine : NULL };
			i += take;
		}
		cr_assert_eq(pr_engine_apply_runs(runs, list, n), 0);
		cr_assert_eq(pr_engine_merge_counts(runs, RECORDS, volume, true, latest), 0);
		assert_same(one, runs);
		free(staged);
		free(at);
		pr_engine_destroy(one);
		pr_engine_destroy(runs);
	}
}

/* ---- apply threads -------------------------------------------------------- */

static struct pr_engine *engine_with_threads(unsigned threads)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 16;
	opt.apply_threads = threads;
	struct pr_engine *e;
	cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
	return e;
}

/* The id of customer k: its number, then letters up to k % 64 + 1 bytes
 * (1 to 64 bytes; distinct, since a letter never follows a number's end
 * where a digit does in another). */
static int customer_id(char *out, unsigned k)
{
	char digits[16];
	int n = snprintf(digits, sizeof digits, "%u", k);
	int len = (int)(k % 64) + 1 < n ? n : (int)(k % 64) + 1;
	for (int i = 0; i < len; i++)
		out[i] = i < n ? digits[i] : (char)('a' + (k + (unsigned)i) % 26);
	return len;
}

/* Every customer's details (every window, purchases, days, first and
 * last, lapsed) and the lapsed list agree. */
static void assert_same_customers(struct pr_engine *a, struct pr_engine *b, unsigned customers,
				  const char *where)
{
	for (unsigned k = 0; k < customers; k++) {
		char id[64];
		int len = customer_id(id, k);
		struct pr_customer_info x, y;
		int ca = pr_engine_customer(a, id, (size_t)len, &x);
		int cb = pr_engine_customer(b, id, (size_t)len, &y);
		cr_assert_eq(ca, cb, "%s: customer %u", where, k);
		if (ca < 0)
			continue;
		for (int w = 0; w < PR_WINDOW_COUNT; w++)
			cr_assert_eq(x.revenue_minor[w], y.revenue_minor[w], "%s: customer %u window %d",
				     where, k, w);
		cr_assert(x.purchases == y.purchases && x.purchase_days == y.purchase_days &&
			  x.first_ms == y.first_ms && x.last_ms == y.last_ms && x.lapsed == y.lapsed,
			  "%s: customer %u", where, k);
	}
	struct pr_lapsed *la, *lb;
	size_t na, nb, ta, tb;
	cr_assert_eq(pr_engine_lapsed(a, 1000000, &la, &na, &ta), 0);
	cr_assert_eq(pr_engine_lapsed(b, 1000000, &lb, &nb, &tb), 0);
	cr_assert(na == nb && ta == tb, "%s: lapsed %zu vs %zu", where, na, nb);
	for (size_t i = 0; i < na; i++)
		cr_assert(la[i].customer_len == lb[i].customer_len &&
			  memcmp(la[i].customer, lb[i].customer, la[i].customer_len) == 0 &&
			  la[i].revenue_minor == lb[i].revenue_minor, "%s: lapsed %zu", where, i);
	free(la);
	free(lb);
}

/*
 * Random records (customers skewed, ids of 1 to 64 bytes, 12 stores, times
 * mostly forward with stragglers up to 400 days back, refunds, rejects
 * past the volume bound and outside years 0..9999) go to an engine with
 * 2, 3 or 4 apply threads through enqueue, now and then a direct add or a
 * drain between, and one at a time to an engine without: every result of
 * every record, and then every customer in every window, every ranking of
 * the company and every store, agree. Half the seeds use tiny buffers, so
 * the owners get many handoffs and the enqueuing thread waits for them.
 */
Test(engine_queue, apply_threads_equal_one_thread, .timeout = 120)
{
	int64_t t0 = pr_days_from_civil(2023, 1, 1) * PR_MS_PER_DAY;
	unsigned seed0 = (unsigned)time(NULL);
	for (unsigned round = 0; round < 6; round++) {
		unsigned seed = seed0 + round, threads = 2 + round % 3;
		bool tiny = round % 2 == 0;
		if (tiny)
			setenv("PARETO_APPLY_BUFFER_BYTES", "512", 1);
		else
			unsetenv("PARETO_APPLY_BUFFER_BYTES");
		char where[96];
		snprintf(where, sizeof where, "seed %u, %u threads%s", seed, threads,
			 tiny ? ", tiny buffers" : "");
		cr_log_info("%s", where);
		struct pr_engine *one = engine_with_threads(1), *many = engine_with_threads(threads);
		unsigned customers = 500 + seed % 4000;
		uint64_t x = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
		int64_t clock = t0;
		for (int i = 0; i < 60000; i++) {
			uint64_t u = next(&x), v = next(&x);
			unsigned k = (unsigned)(u % customers);
			if (u % 3 == 0)
				k %= customers / 20 + 1; /* a few buy much more */
			char customer[64], store[8];
			int len = customer_id(customer, k);
			snprintf(store, sizeof store, "S%d", (int)(v % 12));
			clock += (int64_t)(v >> 40) % 600000;
			struct pr_record r = {
				.ts_ms = v % 50 == 0 ? clock - (int64_t)((v >> 8) % 400) * PR_MS_PER_DAY : clock,
				.amount_minor = (int64_t)((u >> 16) % 100000) - (v % 10 == 0 ? 60000 : 0),
				.customer = customer, .customer_len = (uint8_t)len,
				.store = store, .store_len = (uint8_t)strlen(store),
			};
			if (u % 997 == 0)
				r.amount_minor = INT64_MAX; /* past the volume bound: rejected */
			if (u % 991 == 0)
				r.ts_ms = INT64_MIN / 2; /* outside years 0..9999: rejected */
			int want = pr_engine_add(one, &r);
			int got = v % 499 == 0 ? pr_engine_add(many, &r) : pr_engine_enqueue(many, &r);
			cr_assert_eq(got, want, "%s: record %d", where, i);
			if (v % 4999 == 0) {
				cr_assert_eq(pr_engine_drain(many), 0);
				struct pr_engine_state sa, sb;
				pr_engine_state(one, &sa);
				pr_engine_state(many, &sb);
				cr_assert(sa.records == sb.records && sa.customers == sb.customers,
					  "%s: record %d", where, i);
			}
		}
		cr_assert_eq(pr_engine_drain(many), 0);
		cr_assert_eq(pr_engine_drain(many), 0, "a second drain has nothing to do");
		assert_same(one, many);
		assert_same_customers(one, many, customers, where);
		pr_engine_destroy(one);
		pr_engine_destroy(many);
	}
}

/* An engine with apply threads goes away cleanly with records staged and
 * not drained, and with nothing ever enqueued (ASan: no leak). */
Test(engine_queue, apply_threads_stop_with_records_held)
{
	setenv("PARETO_APPLY_BUFFER_BYTES", "512", 1);
	for (unsigned threads = 2; threads <= 4; threads++) {
		struct pr_engine *idle = engine_with_threads(threads);
		pr_engine_destroy(idle);
		struct pr_engine *e = engine_with_threads(threads);
		for (unsigned i = 0; i < 5000; i++) {
			char id[64];
			int len = customer_id(id, i % 700);
			struct pr_record r = { .ts_ms = 1700000000000LL + i, .amount_minor = 100,
					       .customer = id, .customer_len = (uint8_t)len,
					       .store = "S", .store_len = 1 };
			cr_assert_eq(pr_engine_enqueue(e, &r), 0);
		}
		pr_engine_destroy(e);
	}
}

/* More threads than the engine takes is refused, with a message. */
Test(engine_queue, apply_threads_bounded)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.apply_threads = 65;
	struct pr_engine *e = NULL;
	struct pr_error err = { 0 };
	cr_assert_eq(pr_engine_create(&e, &opt, &err), -EINVAL);
	cr_assert_null(e);
	cr_assert_not_null(strstr(err.message, "apply threads"), "%s", err.message);
}

/*
 * Out of memory on the apply threads (the address space limited below
 * what the growing tables need): the records they cannot apply come back
 * with their buffers and are taken out of the counts at drain, so the
 * record count equals the purchases applied and the volume their amounts,
 * and drain says -ENOMEM. (Not under AddressSanitizer, whose shadow memory
 * needs the address space.)
 */
Test(engine_queue, apply_threads_out_of_memory_uncounts_the_records, .timeout = 120)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("the address space limit does not work under AddressSanitizer");
#else
	struct pr_engine *e = engine_with_threads(2);
	struct rlimit old, tight;
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	FILE *statm = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	cr_assert(statm && fscanf(statm, "%lu", &pages) == 1);
	fclose(statm);
	tight = old;
	tight.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
	cr_assert_eq(setrlimit(RLIMIT_AS, &tight), 0);
	int failed = 0;
	unsigned k = 0;
	for (; k < 4000000 && failed < 3; k++) {
		char id[64];
		int len = customer_id(id, k);
		struct pr_record r = { .ts_ms = 1700000000000LL + (int64_t)k * 60000,
				       .amount_minor = 1 + k % 1000, .customer = id,
				       .customer_len = (uint8_t)len, .store = "S", .store_len = 1 };
		int rc = pr_engine_enqueue(e, &r);
		cr_assert(rc == 0 || rc == -ENOMEM, "record %u: %d", k, rc);
		if (k % 10000 == 9999) {
			rc = pr_engine_drain(e);
			cr_assert(rc == 0 || rc == -ENOMEM);
			failed += rc == -ENOMEM;
		}
	}
	int rc = pr_engine_drain(e);
	failed += rc == -ENOMEM;
	cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
	cr_assert_gt(failed, 0, "%u records and memory never ran out: the test proves nothing", k);
	struct pr_engine_state st;
	pr_engine_state(e, &st);
	uint64_t purchases = 0, volume = 0;
	for (unsigned i = 0; i < k; i++) {
		char id[64];
		int len = customer_id(id, i);
		struct pr_customer_info info;
		if (pr_engine_customer(e, id, (size_t)len, &info) == 0) {
			purchases += info.purchases;
			volume += (uint64_t)info.revenue_minor[PR_WINDOW_ALL];
		}
	}
	cr_log_info("%u records enqueued, %llu counted, %d drains out of memory", k,
		    (unsigned long long)st.records, failed);
	cr_assert_lt(st.records, k, "every record counted though memory ran out");
	cr_assert_eq(st.records, purchases, "counted records and applied purchases differ");
	cr_assert_eq(pr_engine_volume(e), volume, "the volume and the applied amounts differ");
	pr_engine_destroy(e);
#endif
}
