/* period_sums.c - calendar windows; see period_sums.h for why it is exact. */
#include <errno.h>
#include <string.h>

#include "period_sums.h"
#include "timeparse.h"

static const char *const window_names[PR_WINDOW_COUNT] = {
	"all", "month", "quarter", "year", "prev-month", "prev-quarter", "prev-year",
};

const char *pr_window_name(enum pr_window window)
{
	return window < PR_WINDOW_COUNT ? window_names[window] : "?";
}

int pr_window_parse(const char *name, enum pr_window *window)
{
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		if (strcmp(name, window_names[w]) == 0) {
			*window = (enum pr_window)w;
			return 0;
		}
	}
	return -EINVAL;
}

void pr_periods_of(int64_t ts_ms, struct pr_periods *out)
{
	int64_t year;
	unsigned month, day;
	pr_civil_from_days(pr_day_of(ts_ms), &year, &month, &day);
	/* int64 ms spans +-292 million years, so year * 12 fits in int32. */
	out->index[PR_GRAN_MONTH] = (int32_t)(year * 12 + (month - 1));
	out->index[PR_GRAN_QUARTER] = (int32_t)(year * 4 + (month - 1) / 3);
	out->index[PR_GRAN_YEAR] = (int32_t)year;
}

_Static_assert(sizeof(struct pr_period_sums) == 64, "one cache line per entry's windows");

void pr_period_sums_init(struct pr_period_sums *s)
{
	memset(s, 0, sizeof *s);
	s->month = INT32_MIN;
}

/* The latest period of granularity g: that of the latest month. Month
 * indexes of years 0..9999 are >= 0; none seen stays below all of them. */
static int32_t latest(const struct pr_period_sums *s, int g)
{
	static const int32_t months_per[PR_GRAN_COUNT] = { 1, 3, 12 };
	return s->month == INT32_MIN ? INT32_MIN : s->month / months_per[g];
}

void pr_period_sums_add(struct pr_period_sums *s, const struct pr_periods *at,
			int64_t amount_minor)
{
	s->all_minor += amount_minor;
	if (at->index[PR_GRAN_MONTH] == s->month && s->month >= 0) {
		/* The latest month again (most records): it is the latest
		 * period of every granularity, no division needed to say so. */
		for (int g = 0; g < PR_GRAN_COUNT; g++)
			s->current_minor[g] += amount_minor;
		return;
	}
	if (at->index[PR_GRAN_MONTH] > s->month) {
		for (int g = 0; g < PR_GRAN_COUNT; g++) {
			int32_t p = at->index[g], was = latest(s, g);
			if (p > was) {
				/* Roll forward: the old current becomes previous
				 * only if it is the period just before. */
				s->previous_minor[g] = p - 1 == was ? s->current_minor[g] : 0;
				s->current_minor[g] = 0;
			}
		}
		s->month = at->index[PR_GRAN_MONTH];
	}
	for (int g = 0; g < PR_GRAN_COUNT; g++) {
		int32_t p = at->index[g], now = latest(s, g);
		if (p == now)
			s->current_minor[g] += amount_minor;
		else if (p == now - 1)
			s->previous_minor[g] += amount_minor;
	}
}

int64_t pr_period_sums_in(const struct pr_period_sums *s, enum pr_window window,
			  const struct pr_periods *watermark)
{
	if (window == PR_WINDOW_ALL)
		return s->all_minor;
	bool previous = window >= PR_WINDOW_PREV_MONTH;
	int g = (int)window - (previous ? PR_WINDOW_PREV_MONTH : PR_WINDOW_MONTH);
	int32_t w = watermark->index[g], now = latest(s, g);
	if (now == w)
		return previous ? s->previous_minor[g] : s->current_minor[g];
	if (previous && now == w - 1)
		return s->current_minor[g];
	return 0;
}
