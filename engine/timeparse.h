/*
 * timeparse.h - event times: text to milliseconds since 1970 UTC, and the
 * proleptic Gregorian calendar arithmetic behind windows.
 *
 * Accepted without a pattern:
 *   ISO-8601: YYYY-MM-DD, YYYY-MM-DD[T ]HH:MM[:SS[.fff...]] with an optional
 *   zone (Z, +HH, +HH:MM, +HHMM); no zone means UTC.
 *   Epoch: an optional '-' and digits; values of magnitude >= 1e11 are
 *   milliseconds, smaller ones seconds (1e11 s is the year 5138).
 * With a pattern (strftime-style, as --ts-format): %Y %m %d %e %H %M %S %y
 * (69..99: 19xx, else 20xx) %b %B %h (English month names, full or their
 * first three letters, any case) %p %I %f %z %T %F %%; a space matches a
 * run of spaces, other characters themselves; numeric fields take 1 or
 * more digits up to their width, so "%m/%d/%Y %H:%M" reads "12/1/2010 8:26".
 * Surrounding spaces and tabs are ignored. Written dates (ISO, patterns)
 * lie in years 0..9999, hours 0..23, seconds 0..59 (no leap second).
 * Fractions beyond milliseconds are truncated toward the earlier instant;
 * parts a pattern lacks default to 1970-01-01T00:00:00Z.
 */
#ifndef PARETO_TIMEPARSE_H
#define PARETO_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

#define PR_MS_PER_DAY 86400000LL

/* Returns 0 and *ts_ms, or -EINVAL (not a time) / -ERANGE (out of range). */
int pr_time_parse(const char *text, size_t len, const char *format,
		  int64_t *ts_ms);

/* Days since 1970-01-01 of a civil date (month 1..12, day 1..31). */
int64_t pr_days_from_civil(int64_t year, unsigned month, unsigned day);

/* The civil date of a day number; inverse of pr_days_from_civil. */
void pr_civil_from_days(int64_t days, int64_t *year, unsigned *month,
			unsigned *day);

/* Floor division of a time by a day: the UTC day number of ts_ms. */
static inline int64_t pr_day_of(int64_t ts_ms)
{
	int64_t d = ts_ms / PR_MS_PER_DAY;
	return (ts_ms % PR_MS_PER_DAY < 0) ? d - 1 : d;
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes + NUL) into out[32]. */
void pr_time_format(int64_t ts_ms, char out[32]);

#endif
