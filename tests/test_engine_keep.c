/* test_engine_keep.c - an engine told to keep less answers what it keeps,
 * exactly as a full one, and refuses the rest. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "timeparse.h"

#define DAY PR_MS_PER_DAY

static struct pr_engine *engine_keeping(bool periods, bool stores, bool days)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.keep_periods = periods;
	opt.keep_stores = stores;
	opt.keep_days = days;
	struct pr_engine *e;
	cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
	static const char *const customers[] = { "a", "b", "c", "d" };
	static const char *const stores_of[] = { "S1", "S2", "S3" };
	int64_t t0 = pr_days_from_civil(2024, 1, 10) * DAY;
	for (int i = 0; i < 40; i++) {
		const char *c = customers[i * 7 % 4], *s = stores_of[i % 3];
		struct pr_record r = {
			.ts_ms = t0 + (int64_t)(i * 37 % 90) * DAY, .amount_minor = 100 * (i % 9) - 150,
			.customer = c, .customer_len = 1, .store = s, .store_len = 2,
		};
		cr_assert_eq(pr_engine_add(e, &r), 0);
	}
	for (int d = 0; d <= 4; d += 2) { /* a regular who stopped: lapsed */
		struct pr_record r = { .ts_ms = t0 + d * DAY, .amount_minor = 500,
				       .customer = "e", .customer_len = 1, .store = "S1", .store_len = 2 };
		cr_assert_eq(pr_engine_add(e, &r), 0);
	}
	return e;
}

static int64_t top_revenue(struct pr_engine *e, enum pr_window w, int64_t store)
{
	struct pr_ranking *r;
	struct pr_error err;
	cr_assert_eq(pr_ranking_build(e, w, store, &r, &err), 0);
	struct pr_ranked top;
	int64_t revenue = pr_ranking_at(r, 1, &top) == 0 ? top.revenue_minor : -1;
	pr_ranking_destroy(r);
	return revenue;
}

Test(engine_keep, keeping_less_answers_the_same_and_refuses_the_rest)
{
	struct pr_engine *full = engine_keeping(true, true, true);
	struct pr_engine *lean = engine_keeping(false, false, false);
	cr_assert_eq(top_revenue(lean, PR_WINDOW_ALL, -1), top_revenue(full, PR_WINDOW_ALL, -1));

	struct pr_ranking *r;
	struct pr_error err;
	cr_assert_eq(pr_ranking_build(lean, PR_WINDOW_MONTH, -1, &r, &err), -ENOTSUP);
	cr_assert_eq(pr_ranking_build(lean, PR_WINDOW_ALL, 0, &r, &err), -ENOTSUP);
	struct pr_ranking **all;
	uint32_t count;
	cr_assert_eq(pr_ranking_build_stores(lean, PR_WINDOW_ALL, &all, &count, &err), -ENOTSUP);
	struct pr_lapsed *lapsed;
	size_t listed, total;
	cr_assert_eq(pr_engine_lapsed(lean, 10, &lapsed, &listed, &total), -ENOTSUP);
	struct pr_customer_info info;
	cr_assert_eq(pr_engine_customer(lean, "a", 1, &info), -ENOTSUP);
	pr_engine_destroy(lean);

	/* Each kept part alone answers as the full engine does. */
	struct pr_engine *periods = engine_keeping(true, false, false);
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		cr_assert_eq(top_revenue(periods, (enum pr_window)w, -1),
			     top_revenue(full, (enum pr_window)w, -1), "window %d", w);
	pr_engine_destroy(periods);
	struct pr_engine *stores = engine_keeping(false, true, false);
	for (int64_t s = 0; s < 3; s++)
		cr_assert_eq(top_revenue(stores, PR_WINDOW_ALL, s), top_revenue(full, PR_WINDOW_ALL, s),
			     "store %lld", (long long)s);
	pr_engine_destroy(stores);
	struct pr_engine *days = engine_keeping(false, false, true);
	struct pr_lapsed *a, *b;
	size_t an, at, bn, bt;
	cr_assert_eq(pr_engine_lapsed(days, 10, &a, &an, &at), 0);
	cr_assert_eq(pr_engine_lapsed(full, 10, &b, &bn, &bt), 0);
	cr_assert_eq(at, bt);
	cr_assert_geq(at, 1, "customer e is lapsed");
	for (size_t i = 0; i < an; i++)
		cr_assert(a[i].purchase_days == b[i].purchase_days && a[i].revenue_minor == b[i].revenue_minor);
	free(a);
	free(b);
	pr_engine_destroy(days);
	pr_engine_destroy(full);
}
