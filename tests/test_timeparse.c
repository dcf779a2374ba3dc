/*
 * test_timeparse.c - ISO-8601, epoch and pattern times; the calendar.
 * Hand-worked values, then seeded random times against the C library
 * (timegm, gmtime_r, strftime in the C locale) and a day-by-day calendar.
 * PARETO_TEST_SEED=S runs one seed; failures name theirs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeparse.h"

static int64_t parse(const char *text, const char *format, int want_rc)
{
	int64_t ts = 0;
	int rc = pr_time_parse(text, strlen(text), format, &ts);
	cr_assert_eq(rc, want_rc, "'%s' (%s): rc %d, want %d", text, format ? format : "auto",
		     rc, want_rc);
	return ts;
}

#define DAY PR_MS_PER_DAY

Test(timeparse, iso_8601)
{
	int64_t d = pr_days_from_civil(2024, 3, 5) * DAY;
	cr_assert_eq(parse("2024-03-05", NULL, 0), d);
	cr_assert_eq(parse("2024-03-05T14:07:31Z", NULL, 0), d + 50851000);
	cr_assert_eq(parse("2024-03-05 14:07:31", NULL, 0), d + 50851000);
	cr_assert_eq(parse("2024-03-05T14:07", NULL, 0), d + 50820000);
	cr_assert_eq(parse("2024-03-05T14:07:31.250Z", NULL, 0), d + 50851250);
	cr_assert_eq(parse("2024-03-05T14:07:31.2509Z", NULL, 0), d + 50851250);
	cr_assert_eq(parse("2024-03-05T14:07:31+02:00", NULL, 0), d + 50851000 - 7200000);
	cr_assert_eq(parse("2024-03-05T14:07:31-0130", NULL, 0), d + 50851000 + 5400000);
	cr_assert_eq(parse("2024-03-05T14:07:31+05", NULL, 0), d + 50851000 - 18000000);
	cr_assert_eq(parse(" 2024-03-05 ", NULL, 0), d);
	cr_assert_eq(parse("1970-01-01T00:00:00Z", NULL, 0), 0);
	cr_assert_eq(parse("1969-12-31T23:59:59.999Z", NULL, 0), -1);
}

Test(timeparse, invalid_dates_and_times)
{
	const char *bad[] = { "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31",
			      "2024-01-01T24:00:00", "2024-01-01T12:60", "2024-01-01T12:00:60",
			      "2024-1-01", "2024-01-01X", "2024-01-01T12", "2024-01-01T12:00+25:00",
			      "yesterday", "", "12.5" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		parse(bad[i], NULL, -EINVAL);
	cr_assert_eq(parse("2024-02-29", NULL, 0), pr_days_from_civil(2024, 2, 29) * DAY);
	cr_assert_eq(parse("2000-02-29", NULL, 0), pr_days_from_civil(2000, 2, 29) * DAY);
	parse("1900-02-29", NULL, -EINVAL);
}

/* The fast path keeps the last date it read: times of that date, other
 * dates, a bad time or a bad date after a good one with the same start. */
Test(timeparse, repeated_dates_in_time_order)
{
	int64_t d = pr_days_from_civil(2024, 2, 29) * DAY;
	cr_assert_eq(parse("2024-02-29T00:00:00Z", NULL, 0), d);
	cr_assert_eq(parse("2024-02-29T23:59:59Z", NULL, 0), d + DAY - 1000);
	cr_assert_eq(parse("2024-02-29 12:00:01", NULL, 0), d + 43201000);
	parse("2024-02-29T24:00:00Z", NULL, -EINVAL);
	parse("2023-02-29T12:00:00Z", NULL, -EINVAL);
	parse("2024-02-29X12:00:00Z", NULL, -EINVAL);
	cr_assert_eq(parse("2024-02-28T12:00:00Z", NULL, 0), d - DAY + 43200000);
	cr_assert_eq(parse("2024-02-29T00:00:01", NULL, 0), d + 1000);
	cr_assert_eq(parse("2024-03-01T00:00:00Z", NULL, 0), d + DAY);
}

Test(timeparse, epoch_seconds_and_milliseconds)
{
	cr_assert_eq(parse("1700000000", NULL, 0), 1700000000000LL);
	cr_assert_eq(parse("1700000000123", NULL, 0), 1700000000123LL);
	cr_assert_eq(parse("0", NULL, 0), 0);
	cr_assert_eq(parse("-86400", NULL, 0), -DAY);
	cr_assert_eq(parse("99999999999", NULL, 0), 99999999999000LL);
	cr_assert_eq(parse("100000000000", NULL, 0), 100000000000LL);
	parse("99999999999999999999", NULL, -ERANGE);
	/* Found by tools/fuzz: garbage after the digits that overflow is not a
	 * time, as it is after fewer digits. */
	parse("-100000000000000000000000000 000000000000", NULL, -EINVAL);
	parse("99999999999999999999x", NULL, -EINVAL);
	parse("17e8", NULL, -EINVAL);
}

Test(timeparse, patterns)
{
	cr_assert_eq(parse("12/1/2010 8:26", "%m/%d/%Y %H:%M", 0),
		     pr_days_from_civil(2010, 12, 1) * DAY + (8 * 60 + 26) * 60000LL);
	cr_assert_eq(parse("19970101", "%Y%m%d", 0), pr_days_from_civil(1997, 1, 1) * DAY);
	cr_assert_eq(parse("05-Mar-24 02:07:31 PM", "%d-%b-%y %I:%M:%S %p", 0),
		     pr_days_from_civil(2024, 3, 5) * DAY + 50851000);
	cr_assert_eq(parse("March 5 2024", "%B %d %Y", 0), pr_days_from_civil(2024, 3, 5) * DAY);
	cr_assert_eq(parse("2024-03-05T14:07:31.5+0100", "%FT%T.%f%z", 0),
		     pr_days_from_civil(2024, 3, 5) * DAY + 50851500 - 3600000);
	/* Without a date in the pattern the day is 1970-01-01. */
	cr_assert_eq(parse("12 AM", "%I %p", 0), 0);
	cr_assert_eq(parse("12:30 pm", "%I:%M %p", 0), 45000000);
	parse("19970132", "%Y%m%d", -EINVAL);
	parse("1997-01-01", "%Y%m%d", -EINVAL);
	parse("12/1/2010 8:26 extra", "%m/%d/%Y %H:%M", -EINVAL);
	parse("13 PM", "%I %p", -EINVAL);
}

Test(timeparse, calendar_round_trip)
{
	srand(7);
	for (int i = 0; i < 200000; i++) {
		int64_t days = (int64_t)(rand() % 7300000) - 3650000; /* +-10,000 years */
		int64_t y;
		unsigned m, d;
		pr_civil_from_days(days, &y, &m, &d);
		cr_assert(m >= 1 && m <= 12 && d >= 1 && d <= 31);
		cr_assert_eq(pr_days_from_civil(y, m, d), days, "day %lld", (long long)days);
	}
	cr_assert_eq(pr_days_from_civil(1970, 1, 1), 0);
	cr_assert_eq(pr_days_from_civil(2000, 3, 1), 11017);
	cr_assert_eq(pr_day_of(-1), -1);
	cr_assert_eq(pr_day_of(DAY), 1);
	char iso[32];
	pr_time_format(1709647651250LL, iso);
	cr_assert_str_eq(iso, "2024-03-05T14:07:31.250Z");
	pr_time_format(-1, iso);
	cr_assert_str_eq(iso, "1969-12-31T23:59:59.999Z");
}

Test(timeparse, zones_and_edges)
{
	int64_t d = pr_days_from_civil(2024, 3, 5) * DAY + 50851000;
	cr_assert_eq(parse("2024-03-05T14:07:31+0530", NULL, 0), d - 19800000);
	cr_assert_eq(parse("2024-03-05T14:07:31-05:30", NULL, 0), d + 19800000);
	cr_assert_eq(parse("2024-03-05t14:07:31z", NULL, 0), d);
	cr_assert_eq(parse("2024-03-05T14:07:31,5Z", NULL, 0), d + 500);
	cr_assert_eq(parse("2024-03-05T14:07Z", NULL, 0), d - 31000);
	cr_assert_eq(parse("2024-03-05T14:07:31.123456789Z", NULL, 0), d + 123);
	cr_assert_eq(parse("\t2024-03-05T14:07:31Z  ", NULL, 0), d);
	const char *bad[] = { "2024-03-05T14:07:31+05:", "2024-03-05T14:07:31+05:3",
			      "2024-03-05T14:07:31+5", "2024-03-05T14:07:31+2400",
			      "2024-03-05T14:07:31+05:60", "2024-03-05T14:07:31 Z",
			      "2024-03-05T14:07:31.", "2024-03-05T14:07:31.Z", "2024-03-05T",
			      "2024-03-05T14:7", "24-03-05", "2024/03/05", "2024-03-05T14:07:31ZZ",
			      "+1700000000", "1700000000.5", "-", "--1", "1 700" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		parse(bad[i], NULL, -EINVAL);
	cr_assert_eq(parse("0000-01-01", NULL, 0), pr_days_from_civil(0, 1, 1) * DAY);
	cr_assert_eq(parse("9999-12-31T23:59:59.999Z", NULL, 0),
		     pr_days_from_civil(10000, 1, 1) * DAY - 1);
	/* Epoch auto mode: the switch from seconds to milliseconds at 1e11. */
	cr_assert_eq(parse("-1", NULL, 0), -1000);
	cr_assert_eq(parse("-99999999999", NULL, 0), -99999999999000LL);
	cr_assert_eq(parse("-100000000000", NULL, 0), -100000000000LL);
	cr_assert_eq(parse(" 0001700000000 ", NULL, 0), 1700000000000LL);
	cr_assert_eq(parse("9223372036854775807", NULL, 0), INT64_MAX);
	parse("9223372036854775808", NULL, -ERANGE);
	cr_assert_eq(parse("-9223372036854775807", NULL, 0), -INT64_MAX);
}

Test(timeparse, pattern_details)
{
	int64_t day = pr_days_from_civil(2024, 3, 5) * DAY;
	cr_assert_eq(parse("05/03/69", "%d/%m/%y", 0), pr_days_from_civil(1969, 3, 5) * DAY);
	cr_assert_eq(parse("05/03/68", "%d/%m/%y", 0), pr_days_from_civil(2068, 3, 5) * DAY);
	cr_assert_eq(parse("mar  5 2024", "%b %e %Y", 0), day);
	cr_assert_eq(parse("MARCH 5 2024", "%B %d %Y", 0), day);
	cr_assert_eq(parse("Sep 5 2024", "%b %d %Y", 0), pr_days_from_civil(2024, 9, 5) * DAY);
	cr_assert_eq(parse("september 5 2024", "%b %d %Y", 0), pr_days_from_civil(2024, 9, 5) * DAY);
	cr_assert_eq(parse("100% 2024-03-05", "100%% %F", 0), day);
	cr_assert_eq(parse("2024-03-05 14:07:31.25", "%F %T.%f", 0), day + 50851250);
	cr_assert_eq(parse("2024-03-05 14:07:31.123456789", "%F %T.%f", 0), day + 50851123);
	cr_assert_eq(parse("2024-03-05 14:07 +01:00", "%F %H:%M %z", 0), day + 50820000 - 3600000);
	cr_assert_eq(parse("12:00 AM", "%I:%M %p", 0), 0);
	cr_assert_eq(parse("12:00 PM", "%I:%M %p", 0), 12 * 3600000LL);
	cr_assert_eq(parse("11:59 pm", "%I:%M %p", 0), (23 * 60 + 59) * 60000LL);
	cr_assert_eq(parse("2024", "%Y", 0), pr_days_from_civil(2024, 1, 1) * DAY);
	const char *bad[][2] = {
		{ "2024-03-05", "%Y/%m/%d" },  { "Foo 5 2024", "%b %d %Y" },
		{ "0 AM", "%I %p" },           { "2024-02-30", "%F" },
		{ "24:00", "%H:%M" },          { "10:60", "%H:%M" },
		{ "10:00:60", "%T" },          { "2024", "%Q" },
		{ "2024-03-05", "%F %T" },     { "xx", "%p" },
		{ "2024-03-05 1", "%F %H:%M" }, { "5", "%%" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		parse(bad[i][0], bad[i][1], -EINVAL);
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t between(uint64_t *s, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

static unsigned first_seed(unsigned *count)
{
	const char *env = getenv("PARETO_TEST_SEED");
	*count = env && *env ? 1 : 10;
	return env && *env ? (unsigned)strtoul(env, NULL, 10) : 1;
}

/* Random ISO-8601 texts (any separator, fraction and zone) against timegm. */
Test(timeparse, random_iso_times_against_timegm)
{
	unsigned count, seed0 = first_seed(&count);
	for (unsigned seed = seed0; seed < seed0 + count; seed++) {
		uint64_t rng = seed;
		for (int i = 0; i < 20000; i++) {
			time_t t = (time_t)between(&rng, -62167219200LL, 253402300799LL); /* 0000..9999 */
			struct tm tm;
			gmtime_r(&t, &tm);
			char text[80];
			int n = snprintf(text, sizeof text, "%04d-%02d-%02d", tm.tm_year + 1900,
					 tm.tm_mon + 1, tm.tm_mday);
			int64_t want = (int64_t)t * 1000;
			unsigned form = (unsigned)between(&rng, 0, 3);
			if (form == 0) {
				want -= (int64_t)(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) * 1000;
			} else {
				n += snprintf(text + n, sizeof text - (size_t)n, "%c%02d:%02d", "T t"[between(&rng, 0, 2)],
					      tm.tm_hour, tm.tm_min);
				if (form == 1) {
					want -= tm.tm_sec * 1000;
				} else {
					n += snprintf(text + n, sizeof text - (size_t)n, ":%02d", tm.tm_sec);
					if (form == 3) {
						int digits = (int)between(&rng, 1, 9);
						int64_t frac = between(&rng, 0, 999999999);
						char f[16];
						snprintf(f, sizeof f, "%09lld", (long long)frac);
						n += snprintf(text + n, sizeof text - (size_t)n, ".%.*s", digits, f);
						/* Milliseconds: the first three digits written,
						 * the rest truncated. */
						char ms[4] = "000";
						memcpy(ms, f, (size_t)(digits < 3 ? digits : 3));
						want += atoi(ms);
					}
				}
				int64_t offset_min = 0;
				switch (between(&rng, 0, 4)) {
				case 0:
					break;
				case 1:
					n += snprintf(text + n, sizeof text - (size_t)n, "Z");
					break;
				default: {
					int hours = (int)between(&rng, 0, 23), minutes = (int)between(&rng, 0, 59);
					bool negative = between(&rng, 0, 1);
					unsigned style = (unsigned)between(&rng, 0, 2);
					if (style == 0)
						minutes = 0;
					n += snprintf(text + n, sizeof text - (size_t)n,
						      style == 0 ? "%c%02d" : style == 1 ? "%c%02d:%02d" : "%c%02d%02d",
						      negative ? '-' : '+', hours, minutes);
					offset_min = (negative ? -1 : 1) * (hours * 60 + minutes);
				}
				}
				want -= offset_min * 60000;
			}
			int64_t got = 0;
			int rc = pr_time_parse(text, strlen(text), NULL, &got);
			cr_assert_eq(rc, 0, "seed %u: '%s': rc %d", seed, text, rc);
			cr_assert_eq(got, want, "seed %u: '%s': %lld, want %lld", seed, text,
				     (long long)got, (long long)want);
		}
	}
}

/* Random times written by strftime with a pattern, read back with it. */
Test(timeparse, random_patterns_against_strftime)
{
	static const struct {
		const char *format;
		int64_t unit_s; /* the pattern's precision */
		bool two_digit_year;
	} patterns[] = {
		{ "%d/%m/%Y %H:%M:%S", 1, false }, { "%Y%m%d", 86400, false },
		{ "%m/%d/%Y %H:%M", 60, false },  { "%b %d %Y %I:%M:%S %p", 1, false },
		{ "%d-%b-%y %H:%M", 60, true },   { "%FT%T%z", 1, false },
		{ "%B %d, %Y", 86400, false },     { "%Y-%m-%d %Hh%M", 60, false },
	};
	unsigned count, seed0 = first_seed(&count);
	for (unsigned seed = seed0; seed < seed0 + count; seed++) {
		uint64_t rng = seed;
		for (int i = 0; i < 20000; i++) {
			size_t k = (size_t)between(&rng, 0, sizeof patterns / sizeof patterns[0] - 1);
			/* Years of four digits: %Y reads up to four, so "%Y%m%d" needs them. */
			int64_t lo = patterns[k].two_digit_year ? -31536000 : -30610224000LL;
			int64_t hi = patterns[k].two_digit_year ? 3124137599LL : 253402300799LL;
			time_t t = (time_t)between(&rng, lo, hi);
			struct tm tm;
			gmtime_r(&t, &tm);
			char text[80];
			cr_assert_gt(strftime(text, sizeof text, patterns[k].format, &tm), 0);
			int64_t unit = patterns[k].unit_s;
			int64_t floor_s = (int64_t)t - (((int64_t)t % unit) + unit) % unit;
			int64_t got = 0;
			int rc = pr_time_parse(text, strlen(text), patterns[k].format, &got);
			cr_assert_eq(rc, 0, "seed %u: '%s' as %s: rc %d", seed, text, patterns[k].format, rc);
			cr_assert_eq(got, floor_s * 1000, "seed %u: '%s' as %s: %lld, want %lld", seed,
				     text, patterns[k].format, (long long)got, (long long)floor_s * 1000);
		}
	}
}

/* pr_time_format against gmtime_r over years 0..9999. */
Test(timeparse, random_formats_against_gmtime)
{
	unsigned count, seed0 = first_seed(&count);
	for (unsigned seed = seed0; seed < seed0 + count; seed++) {
		uint64_t rng = seed;
		for (int i = 0; i < 20000; i++) {
			int64_t ms = between(&rng, -62167219200000LL, 253402300799999LL);
			time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
			struct tm tm;
			gmtime_r(&t, &tm);
			char want[64], got[32];
			snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
				 (int)(ms - (int64_t)t * 1000));
			pr_time_format(ms, got);
			cr_assert_str_eq(got, want, "seed %u: %lld", seed, (long long)ms);
			int64_t back = 0;
			cr_assert_eq(pr_time_parse(got, strlen(got), NULL, &back), 0);
			cr_assert_eq(back, ms, "seed %u: '%s' read back", seed, got);
		}
	}
}

/* Day numbers against a calendar walked one day at a time, 1600..2400. */
Test(timeparse, calendar_against_a_day_walk)
{
	static const unsigned dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t days = pr_days_from_civil(1600, 1, 1);
	for (int64_t y = 1600; y < 2400; y++) {
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		for (unsigned m = 1; m <= 12; m++) {
			unsigned n = dim[m - 1] + (m == 2 && leap);
			for (unsigned d = 1; d <= n; d++, days++) {
				cr_assert_eq(pr_days_from_civil(y, m, d), days, "%lld-%u-%u", (long long)y, m, d);
				int64_t yy;
				unsigned mm, dd;
				pr_civil_from_days(days, &yy, &mm, &dd);
				cr_assert(yy == y && mm == m && dd == d, "day %lld", (long long)days);
			}
		}
	}
	cr_assert_eq(days, pr_days_from_civil(2400, 1, 1));
	/* Far outside the engine's years the arithmetic still inverts. */
	uint64_t rng = 99;
	for (int i = 0; i < 100000; i++) {
		int64_t z = between(&rng, -1000000000000LL, 1000000000000LL);
		int64_t y;
		unsigned m, d;
		pr_civil_from_days(z, &y, &m, &d);
		cr_assert(m >= 1 && m <= 12 && d >= 1 && d <= 31);
		cr_assert_eq(pr_days_from_civil(y, m, d), z, "day %lld", (long long)z);
	}
}
