/*
 * pareto/error.h - how failures are reported.
 *
 * Functions that can fail return 0 or a negative errno-style code and, when
 * the caller passes a struct pr_error, leave a one-line message in it that
 * names the file and the cause ("feed.csv: line 7: amount: not a number").
 */
#ifndef PARETO_ERROR_H
#define PARETO_ERROR_H

struct pr_error {
	int code;          /* the negative errno-style code returned */
	char message[512]; /* one line, no trailing newline */
};

/* Fills *err (if not NULL) with code and a printf-style message; returns code. */
int pr_error_set(struct pr_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
