/*
 * period_sums.h - one customer's (or one store-customer pair's) revenue in
 * every window, kept exactly and updated in O(1) per record.
 *
 * For each granularity (month, quarter, year) the struct keeps the sums of
 * the latest period this entry has seen and of the one before. The latest
 * quarter and year are those of the latest month, so only that month is
 * stored (64 bytes in all). A record of a newer period rolls the pair
 * forward; a record of an older period lands in `previous` or nowhere (it
 * still counts in `all`).
 *
 * Why this is exact without a global roll: an entry's latest period is never
 * later than the watermark's period W. Reading for W: if the entry's period
 * is W, its pair is (current, previous) of W; if it is W-1, its current sum
 * is W's previous; anything older contributes nothing to either window. A
 * record two or more periods behind the entry's latest is behind W too, so
 * dropping it from the pair loses nothing.
 */
#ifndef PARETO_PERIOD_SUMS_H
#define PARETO_PERIOD_SUMS_H

#include <stdbool.h>
#include <stdint.h>

#include "pareto/window.h"

enum pr_granularity { PR_GRAN_MONTH, PR_GRAN_QUARTER, PR_GRAN_YEAR, PR_GRAN_COUNT };

/* The month, quarter and year index of an event time (months since year 0...). */
struct pr_periods {
	int32_t index[PR_GRAN_COUNT];
};

struct pr_period_sums {
	int64_t all_minor;
	int64_t current_minor[PR_GRAN_COUNT];
	int64_t previous_minor[PR_GRAN_COUNT];
	int32_t month; /* the latest month index seen; INT32_MIN: no record yet */
};

void pr_periods_of(int64_t ts_ms, struct pr_periods *out);

void pr_period_sums_init(struct pr_period_sums *s);

/*
 * Adds amount_minor at the given periods. The caller guarantees that no sum
 * leaves the int64 range (the engine bounds the total absolute volume).
 */
void pr_period_sums_add(struct pr_period_sums *s, const struct pr_periods *at,
			int64_t amount_minor);

/* Revenue in `window` as seen from the watermark's periods. */
int64_t pr_period_sums_in(const struct pr_period_sums *s, enum pr_window window,
			  const struct pr_periods *watermark);

#endif
