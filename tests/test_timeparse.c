/* test_timeparse.c - ISO-8601, epoch and pattern times; the calendar. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

Test(timeparse, epoch_seconds_and_milliseconds)
{
	cr_assert_eq(parse("1700000000", NULL, 0), 1700000000000LL);
	cr_assert_eq(parse("1700000000123", NULL, 0), 1700000000123LL);
	cr_assert_eq(parse("0", NULL, 0), 0);
	cr_assert_eq(parse("-86400", NULL, 0), -DAY);
	cr_assert_eq(parse("99999999999", NULL, 0), 99999999999000LL);
	cr_assert_eq(parse("100000000000", NULL, 0), 100000000000LL);
	parse("99999999999999999999", NULL, -ERANGE);
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
