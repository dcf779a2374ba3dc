/*
 * pareto/window.h - the calendar windows answers are computed over.
 *
 * `all` is all time; the others are the calendar month, quarter or year that
 * holds the watermark (the largest event time seen, UTC), or the one before.
 * Event time, not wall time: replaying a feed gives the same answers.
 */
#ifndef PARETO_WINDOW_H
#define PARETO_WINDOW_H

enum pr_window {
	PR_WINDOW_ALL,
	PR_WINDOW_MONTH,
	PR_WINDOW_QUARTER,
	PR_WINDOW_YEAR,
	PR_WINDOW_PREV_MONTH,
	PR_WINDOW_PREV_QUARTER,
	PR_WINDOW_PREV_YEAR,
	PR_WINDOW_COUNT
};

/* "all", "month", "quarter", "year", "prev-month", "prev-quarter", "prev-year". */
const char *pr_window_name(enum pr_window window);

/* Parses a name as above; returns 0 or -EINVAL. */
int pr_window_parse(const char *name, enum pr_window *window);

#endif
