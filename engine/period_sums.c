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

void pr_period_sums_init(struct pr_period_sums *s)
{
	memset(s, 0, sizeof *s);
	for (int g = 0; g < PR_GRAN_COUNT; g++)
		s->period[g] = INT32_MIN;
}

void pr_period_sums_add(struct pr_period_sums *s, const struct pr_periods *at,
			int64_t amount_minor)
{
	s->all_minor += amount_minor;
	for (int g = 0; g < PR_GRAN_COUNT; g++) {
		int32_t p = at->index[g];
		if (p > s->period[g]) {
			/* Roll forward: the old current becomes previous only if
			 * it is the period just before. */
			s->previous_minor[g] = p - 1 == s->period[g] ? s->current_minor[g] : 0;
			s->current_minor[g] = 0;
			s->period[g] = p;
		}
		if (p == s->period[g])
			s->current_minor[g] += amount_minor;
		else if (p == s->period[g] - 1)
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
	int32_t w = watermark->index[g];
	if (s->period[g] == w)
		return previous ? s->previous_minor[g] : s->current_minor[g];
	if (previous && s->period[g] == w - 1)
		return s->current_minor[g];
	return 0;
}
