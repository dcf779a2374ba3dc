/* test_engine_queue.c - records queued (pr_engine_enqueue) and applied in
 * batches give exactly what one add at a time gives, rejects included. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"
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
