/*
 * fuzz_time.c - times as any text (timeparse.h), without a pattern, against
 * a reference: the grammar timeparse.h states, read character by character,
 * and the calendar of the C library (timegm), not ours. Both must agree:
 * not a time, out of range, or the same millisecond. With a pattern (byte
 * [0] odd: one of a few --ts-format patterns) there is no reference; an
 * accepted time must lie in the years a written date may have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "timeparse.h"

#define MAX_TEXT 64

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits at *p. */
static bool fixed(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (*p >= end || !digit(**p))
			return false;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return true;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int ref_iso(const char *p, const char *end, int64_t *out)
{
	int year, month, day, hour = 0, minute = 0, second = 0, ms = 0, zh = 0, zm = 0, sign = 1;
	if (!fixed(&p, end, 4, &year) || p == end || *p++ != '-' || !fixed(&p, end, 2, &month) ||
	    p == end || *p++ != '-' || !fixed(&p, end, 2, &day))
		return -EINVAL;
	if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
		p++;
		if (!fixed(&p, end, 2, &hour) || p == end || *p++ != ':' ||
		    !fixed(&p, end, 2, &minute))
			return -EINVAL;
		if (p < end && *p == ':') {
			p++;
			if (!fixed(&p, end, 2, &second))
				return -EINVAL;
			if (p < end && (*p == '.' || *p == ',')) {
				p++;
				int n = 0;
				for (; p < end && digit(*p); p++, n++)
					if (n < 3)
						ms = ms * 10 + (*p - '0');
				if (n == 0)
					return -EINVAL;
				for (; n < 3; n++)
					ms *= 10;
			}
		}
		if (p < end && (*p == 'Z' || *p == 'z')) {
			p++;
		} else if (p < end && (*p == '+' || *p == '-')) {
			sign = *p++ == '-' ? -1 : 1;
			if (!fixed(&p, end, 2, &zh))
				return -EINVAL;
			if (p < end && *p == ':') {
				p++;
				if (!fixed(&p, end, 2, &zm))
					return -EINVAL;
			} else if (p < end && digit(*p) && !fixed(&p, end, 2, &zm)) {
				return -EINVAL;
			}
		}
	}
	if (p != end)
		return -EINVAL;
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (month < 1 || month > 12 || day < 1 ||
	    day > dim[month - 1] + (month == 2 && leap(year)) || hour > 23 || minute > 59 ||
	    second > 59 || zh > 23 || zm > 59)
		return -EINVAL;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
			 .tm_hour = hour, .tm_min = minute, .tm_sec = second };
	time_t t = timegm(&tm);
	*out = (int64_t)t * 1000 + ms - sign * (int64_t)(zh * 60 + zm) * 60000;
	return 0;
}

static int ref_epoch(const char *p, const char *end, int64_t *out)
{
	bool negative = p < end && *p == '-';
	p += negative;
	if (p == end)
		return -EINVAL;
	unsigned __int128 v = 0;
	for (; p < end; p++) {
		if (!digit(*p))
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > (unsigned __int128)1 << 64)
			v = (unsigned __int128)1 << 64; /* past every answer */
	}
	if (v >= 100000000000u) { /* milliseconds */
		if (v > INT64_MAX)
			return -ERANGE;
		*out = negative ? -(int64_t)v : (int64_t)v;
	} else {
		*out = (negative ? -1 : 1) * (int64_t)v * 1000;
	}
	return 0;
}

static int ref_parse(const char *s, size_t len, int64_t *out)
{
	const char *p = s, *end = s + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (p == end)
		return -EINVAL;
	if (end - p >= 10 && p[4] == '-')
		return ref_iso(p, end, out);
	return ref_epoch(p, end, out);
}

int fuzz_time(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_TEXT)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	if (data[0] & 1) {
		static const char *const patterns[] = {
			"%d/%m/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%Y%m%d", "%e %b %Y %T", "%F %T%z",
			"%y-%m-%d %H:%M:%S.%f", "%B %d, %Y", "%d.%m.%Y %%",
		};
		const char *fmt = patterns[(data[0] >> 1) % (sizeof patterns / sizeof *patterns)];
		int64_t ts = 0;
		int rc = pr_time_parse(text, len, fmt, &ts);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE, "rc %d", rc);
		/* Years 0..9999, shifted by a zone of at most a day. */
		if (rc == 0)
			FUZZ_CHECK(ts >= -62167219200000LL - PR_MS_PER_DAY &&
					   ts < 253402300800000LL + PR_MS_PER_DAY,
				   "%lld from '%.*s' with %s", (long long)ts, (int)len, text, fmt);
		return 0;
	}
	int64_t got = 0, want = 0;
	int rc = pr_time_parse(text, len, NULL, &got);
	int ref = ref_parse(text, len, &want);
	FUZZ_CHECK(rc == ref, "rc %d, the reference %d: '%.*s'", rc, ref, (int)len, text);
	if (rc == 0)
		FUZZ_CHECK(got == want, "%lld, the reference %lld: '%.*s'", (long long)got,
			   (long long)want, (int)len, text);
	return 0;
}

FUZZ_ENTRY(fuzz_time)
