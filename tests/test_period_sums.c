/* test_period_sums.c - calendar windows against a brute-force reference. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "period_sums.h"
#include "timeparse.h"

static int64_t ts(int64_t y, unsigned m, unsigned d)
{
	return pr_days_from_civil(y, m, d) * PR_MS_PER_DAY + 3600000;
}

Test(period_sums, window_names_round_trip)
{
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		enum pr_window parsed;
		cr_assert_eq(pr_window_parse(pr_window_name((enum pr_window)w), &parsed), 0);
		cr_assert_eq(parsed, (enum pr_window)w);
	}
	enum pr_window x;
	cr_assert_eq(pr_window_parse("week", &x), -EINVAL);
}

Test(period_sums, periods_of_a_time)
{
	struct pr_periods p;
	pr_periods_of(ts(2024, 5, 31), &p);
	cr_assert_eq(p.index[PR_GRAN_MONTH], 2024 * 12 + 4);
	cr_assert_eq(p.index[PR_GRAN_QUARTER], 2024 * 4 + 1);
	cr_assert_eq(p.index[PR_GRAN_YEAR], 2024);
	pr_periods_of(-1, &p); /* 1969-12-31T23:59:59.999Z */
	cr_assert_eq(p.index[PR_GRAN_MONTH], 1969 * 12 + 11);
}

Test(period_sums, hand_checked_quarters)
{
	struct pr_period_sums s;
	struct pr_periods at, wm;
	pr_period_sums_init(&s);
	pr_periods_of(ts(2023, 12, 31), &at);
	pr_period_sums_add(&s, &at, 500); /* 2023Q4 */
	pr_periods_of(ts(2024, 2, 1), &at);
	pr_period_sums_add(&s, &at, 100); /* 2024Q1 */
	pr_periods_of(ts(2024, 1, 2), &at);
	pr_period_sums_add(&s, &at, -30); /* 2024Q1, a refund */
	pr_periods_of(ts(2023, 6, 1), &at);
	pr_period_sums_add(&s, &at, 7);   /* 2023Q2: all time only */

	pr_periods_of(ts(2024, 3, 31), &wm); /* watermark in 2024Q1 */
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_ALL, &wm), 577);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_QUARTER, &wm), 70);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_PREV_QUARTER, &wm), 500);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_MONTH, &wm), 0);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_PREV_MONTH, &wm), 100);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_YEAR, &wm), 70);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_PREV_YEAR, &wm), 507);

	pr_periods_of(ts(2024, 4, 1), &wm); /* the watermark moves on: 2024Q2 */
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_QUARTER, &wm), 0);
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_PREV_QUARTER, &wm), 70);
	pr_periods_of(ts(2024, 7, 1), &wm); /* 2024Q3: nothing in either */
	cr_assert_eq(pr_period_sums_in(&s, PR_WINDOW_PREV_QUARTER, &wm), 0);
}

/* Random records, out of order, over 4 years: every window equals the sum
 * computed from scratch over the records of its calendar period. */
Test(period_sums, matches_brute_force_on_random_streams)
{
	for (unsigned seed = 1; seed <= 200; seed++) {
		srand(seed);
		enum { N = 60 };
		int64_t when[N], amount[N];
		struct pr_period_sums s;
		pr_period_sums_init(&s);
		int64_t base = ts(2021, 1, 1), watermark = INT64_MIN;
		for (int i = 0; i < N; i++) {
			when[i] = base + (int64_t)(rand() % (4 * 366)) * PR_MS_PER_DAY +
				  rand() % PR_MS_PER_DAY;
			amount[i] = rand() % 2001 - 300;
			struct pr_periods at;
			pr_periods_of(when[i], &at);
			pr_period_sums_add(&s, &at, amount[i]);
			if (when[i] > watermark)
				watermark = when[i];

			struct pr_periods wm;
			pr_periods_of(watermark, &wm);
			for (int w = 0; w < PR_WINDOW_COUNT; w++) {
				int64_t expect = 0;
				for (int k = 0; k <= i; k++) {
					struct pr_periods pk;
					pr_periods_of(when[k], &pk);
					bool in = w == PR_WINDOW_ALL;
					if (w >= PR_WINDOW_MONTH && w <= PR_WINDOW_YEAR)
						in = pk.index[w - 1] == wm.index[w - 1];
					if (w >= PR_WINDOW_PREV_MONTH)
						in = pk.index[w - 4] == wm.index[w - 4] - 1;
					if (in)
						expect += amount[k];
				}
				cr_assert_eq(pr_period_sums_in(&s, (enum pr_window)w, &wm), expect,
					     "seed %u record %d window %s", seed, i,
					     pr_window_name((enum pr_window)w));
			}
		}
	}
}
