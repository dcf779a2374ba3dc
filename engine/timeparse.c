/*
 * timeparse.c - event times to milliseconds; see timeparse.h.
 *
 * Stateless and thread-safe. ISO-8601 fields have fixed widths and are
 * read in place; patterns are interpreted as they are read. Dates are
 * validated (month lengths, leap years) before they become day numbers.
 * The calendar is Howard Hinnant's days_from_civil / civil_from_days,
 * exact far beyond the engine's years (tested to +-10^12 days).
 * Cost: O(length of text + pattern).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "timeparse.h"

/* Howard Hinnant's days_from_civil / civil_from_days (public domain). */
int64_t pr_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void pr_civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*day = doy - (153 * mp + 2) / 5 + 1;
	*month = mp < 10 ? mp + 3 : mp - 9;
	*year = (int64_t)yoe + era * 400 + (*month <= 2);
}

static char *put_digits(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

void pr_time_format(int64_t ts_ms, char out[32])
{
	int64_t days = pr_day_of(ts_ms), year;
	int64_t ms = ts_ms - days * PR_MS_PER_DAY;
	unsigned month, day;
	pr_civil_from_days(days, &year, &month, &day);
	/* Engine times lie in years 0..9999; others print their last 4 digits
	 * of the year behind a '?' rather than overflow the 32 bytes. */
	char *p = out;
	if (year < 0 || year > 9999) {
		*p++ = '?';
		year = (year < 0 ? -year : year) % 10000;
	}
	p = put_digits(p, (uint64_t)year, 4);
	*p++ = '-';
	p = put_digits(p, month, 2);
	*p++ = '-';
	p = put_digits(p, day, 2);
	*p++ = 'T';
	p = put_digits(p, (uint64_t)(ms / 3600000), 2);
	*p++ = ':';
	p = put_digits(p, (uint64_t)(ms / 60000 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (uint64_t)(ms / 1000 % 60), 2);
	*p++ = '.';
	p = put_digits(p, (uint64_t)(ms % 1000), 3);
	*p++ = 'Z';
	*p = 0;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/*
 * pr_days_from_civil() for years 0..9999 in unsigned 32-bit arithmetic,
 * whose divisions by constants are cheap: the year is shifted by one
 * 400-year era (146097 days) so that it stays positive, and then
 * era x 146097 + the era's days = 365y + y/4 - y/100 + y/400 exactly.
 */
static int64_t days_from_civil_0_9999(unsigned y, unsigned m, unsigned d)
{
	unsigned shifted = y + 400 - (m <= 2);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned days = shifted * 365 + shifted / 4 - shifted / 100 + shifted / 400 + doy;
	return (int64_t)days - 146097 - 719468;
}

struct fields {
	int64_t year;
	unsigned month, day, hour, minute, second, ms;
	int64_t offset_minutes; /* local = UTC + offset */
	int pm;                 /* -1 none, 0 am, 1 pm */
};

static int compose(const struct fields *f, int64_t *ts_ms)
{
	unsigned hour = f->hour;
	if (f->pm >= 0) {
		if (hour < 1 || hour > 12)
			return -EINVAL;
		hour = hour % 12 + (f->pm ? 12 : 0);
	}
	if (f->year < 0 || f->year > 9999 || f->month < 1 || f->month > 12 || f->day < 1 ||
	    f->day > days_in_month(f->year, f->month) || hour > 23 || f->minute > 59 ||
	    f->second > 59)
		return -EINVAL;
	int64_t days = days_from_civil_0_9999((unsigned)f->year, f->month, f->day);
	*ts_ms = days * PR_MS_PER_DAY + (int64_t)hour * 3600000 + (int64_t)f->minute * 60000 +
		 (int64_t)f->second * 1000 + f->ms - f->offset_minutes * 60000;
	return 0;
}

/* Reads 1..max digits; returns digits read (0: none). */
static int digits(const char **p, const char *end, int max, unsigned *out)
{
	unsigned v = 0;
	int n = 0;
	while (*p < end && n < max && **p >= '0' && **p <= '9') {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n;
}

/* ".fff..." after seconds: milliseconds, further digits truncated. */
static int fraction(const char **p, const char *end, unsigned *ms)
{
	if (*p >= end || (**p != '.' && **p != ','))
		return 0;
	(*p)++;
	unsigned v = 0;
	int n = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		if (n < 3)
			v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	while (n < 3) {
		v *= 10;
		n++;
	}
	*ms = v;
	return 0;
}

/* Z, +HH, +HH:MM, +HHMM, -... */
static int zone(const char **p, const char *end, int64_t *offset)
{
	if (*p >= end)
		return 0;
	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		return 0;
	}
	if (**p != '+' && **p != '-')
		return -EINVAL;
	int sign = **p == '-' ? -1 : 1;
	(*p)++;
	unsigned h, m = 0;
	if (digits(p, end, 2, &h) != 2 || h > 23)
		return -EINVAL;
	bool colon = *p < end && **p == ':';
	*p += colon;
	if ((colon || (*p < end && **p >= '0' && **p <= '9')) && digits(p, end, 2, &m) != 2)
		return -EINVAL;
	if (m > 59)
		return -EINVAL;
	*offset = sign * (int64_t)(h * 60 + m);
	return 0;
}

/* Two digits at p (the caller checked they are there), or -1. */
static int two_digits(const char *p)
{
	unsigned a = (unsigned)(p[0] - '0'), b = (unsigned)(p[1] - '0');
	return a < 10 && b < 10 ? (int)(a * 10 + b) : -1;
}

/*
 * The last date the fast path below read on this thread, and its first
 * millisecond: records mostly come in time order, so most repeat the date
 * of the one before, and its checks and calendar arithmetic need not be
 * done again (a third of the fast path). Per thread: decoders run on
 * several.
 */
static _Thread_local struct {
	bool valid;
	char text[10];
	int64_t day_ms;
} last_date;

/* ISO-8601: every field has its fixed width, so it is read in place. */
static int parse_iso(const char *p, const char *end, int64_t *ts_ms)
{
	/* The usual shape, YYYY-MM-DDTHH:MM:SS with a Z or nothing after, read
	 * at fixed places (in such a feed the general path below was a sixth
	 * of paretod's server thread). Anything else, and anything out of
	 * range, takes the general path. */
	if ((end - p == 19 || (end - p == 20 && (p[19] == 'Z' || p[19] == 'z'))) &&
	    (p[10] == 'T' || p[10] == 't' || p[10] == ' ') && p[13] == ':' && p[16] == ':') {
		int hour = two_digits(p + 11), minute = two_digits(p + 14), second = two_digits(p + 17);
		if (hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 &&
		    second <= 59) {
			int64_t time_ms = (int64_t)hour * 3600000 + (int64_t)minute * 60000 +
					  (int64_t)second * 1000;
			if (last_date.valid && memcmp(p, last_date.text, 10) == 0) {
				*ts_ms = last_date.day_ms + time_ms;
				return 0;
			}
			int hi = two_digits(p), lo = two_digits(p + 2), month = two_digits(p + 5),
			    day = two_digits(p + 8);
			unsigned year = (unsigned)(hi * 100 + lo);
			if (hi >= 0 && lo >= 0 && p[4] == '-' && p[7] == '-' && month >= 1 &&
			    month <= 12 && day >= 1 &&
			    (unsigned)day <= days_in_month(year, (unsigned)month)) {
				memcpy(last_date.text, p, 10);
				last_date.day_ms = days_from_civil_0_9999(year, (unsigned)month,
									  (unsigned)day) *
						   PR_MS_PER_DAY;
				last_date.valid = true;
				*ts_ms = last_date.day_ms + time_ms;
				return 0;
			}
		}
	}
	struct fields f = { .pm = -1 };
	int hi = two_digits(p), lo = two_digits(p + 2), month = two_digits(p + 5),
	    day = two_digits(p + 8); /* the caller checked 10 bytes */
	if (hi < 0 || lo < 0 || month < 0 || day < 0 || p[4] != '-' || p[7] != '-')
		return -EINVAL;
	f.year = hi * 100 + lo;
	f.month = (unsigned)month;
	f.day = (unsigned)day;
	p += 10;
	if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
		int hour, minute;
		if (end - p < 6 || (hour = two_digits(p + 1)) < 0 || p[3] != ':' ||
		    (minute = two_digits(p + 4)) < 0)
			return -EINVAL;
		f.hour = (unsigned)hour;
		f.minute = (unsigned)minute;
		p += 6;
		if (p < end && *p == ':') {
			int second;
			if (end - p < 3 || (second = two_digits(p + 1)) < 0)
				return -EINVAL;
			f.second = (unsigned)second;
			p += 3;
			if (fraction(&p, end, &f.ms) < 0)
				return -EINVAL;
		}
		if (zone(&p, end, &f.offset_minutes) < 0)
			return -EINVAL;
	}
	if (p != end)
		return -EINVAL;
	return compose(&f, ts_ms);
}

static int parse_epoch(const char *p, const char *end, int64_t *ts_ms)
{
	bool negative = p < end && *p == '-';
	p += negative;
	if (p == end)
		return -EINVAL;
	uint64_t v = 0;
	bool over = false; /* told only once every byte is a digit: not a time outranks it */
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			over = true;
		else
			v = v * 10 + (uint64_t)(*p - '0');
	}
	if (over)
		return -ERANGE;
	/* Magnitudes from 1e11 up are milliseconds (1e11 s is the year 5138). */
	if (v < 100000000000ull) {
		*ts_ms = (negative ? -1 : 1) * (int64_t)v * 1000;
		return 0;
	}
	if (v > (uint64_t)INT64_MAX)
		return -ERANGE;
	*ts_ms = negative ? -(int64_t)v : (int64_t)v;
	return 0;
}

static const char *const month_names[12] = {
	"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december",
};

/* An English month name, full or its first three letters, any case. */
static int month_name(const char **p, const char *end, unsigned *month)
{
	size_t avail = (size_t)(end - *p);
	for (unsigned m = 0; m < 12; m++) {
		size_t full = strlen(month_names[m]);
		size_t len = avail >= full && strncasecmp(*p, month_names[m], full) == 0 ? full
			   : avail >= 3 && strncasecmp(*p, month_names[m], 3) == 0  ? 3
										   : 0;
		if (len) {
			*p += len;
			*month = m + 1;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_pattern(const char *p, const char *end, const char *fmt, int64_t *ts_ms)
{
	struct fields f = { .year = 1970, .month = 1, .day = 1, .pm = -1 };
	unsigned v;
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			if (*fmt == ' ') { /* a space matches any run of spaces */
				if (p >= end || *p != ' ')
					return -EINVAL;
				while (p < end && *p == ' ')
					p++;
				continue;
			}
			if (p >= end || *p != *fmt)
				return -EINVAL;
			p++;
			continue;
		}
		switch (*++fmt) {
		case 'Y':
			if (!digits(&p, end, 4, &v))
				return -EINVAL;
			f.year = v;
			break;
		case 'y':
			if (!digits(&p, end, 2, &v))
				return -EINVAL;
			f.year = v < 69 ? 2000 + v : 1900 + v; /* POSIX's pivot */
			break;
		case 'm':
			if (!digits(&p, end, 2, &f.month))
				return -EINVAL;
			break;
		case 'd':
		case 'e':
			while (*fmt == 'e' && p < end && *p == ' ')
				p++;
			if (!digits(&p, end, 2, &f.day))
				return -EINVAL;
			break;
		case 'H':
		case 'I':
			if (!digits(&p, end, 2, &f.hour))
				return -EINVAL;
			break;
		case 'M':
			if (!digits(&p, end, 2, &f.minute))
				return -EINVAL;
			break;
		case 'S':
			if (!digits(&p, end, 2, &f.second))
				return -EINVAL;
			break;
		case 'f': {
			const char *start = p;
			if (!digits(&p, end, 9, &v))
				return -EINVAL;
			for (long n = p - start; n > 3; n--)
				v /= 10;
			for (long n = p - start; n < 3; n++)
				v *= 10;
			f.ms = v;
			break;
		}
		case 'b':
		case 'B':
		case 'h':
			if (month_name(&p, end, &f.month) < 0)
				return -EINVAL;
			break;
		case 'p':
			if (end - p < 2)
				return -EINVAL;
			if (strncasecmp(p, "AM", 2) == 0)
				f.pm = 0;
			else if (strncasecmp(p, "PM", 2) == 0)
				f.pm = 1;
			else
				return -EINVAL;
			p += 2;
			break;
		case 'z':
			if (zone(&p, end, &f.offset_minutes) < 0)
				return -EINVAL;
			break;
		case 'T':
			if (!digits(&p, end, 2, &f.hour) || p >= end || *p++ != ':' ||
			    !digits(&p, end, 2, &f.minute) || p >= end || *p++ != ':' ||
			    !digits(&p, end, 2, &f.second))
				return -EINVAL;
			break;
		case 'F':
			if (!digits(&p, end, 4, &v) || p >= end || *p++ != '-' ||
			    !digits(&p, end, 2, &f.month) || p >= end || *p++ != '-' ||
			    !digits(&p, end, 2, &f.day))
				return -EINVAL;
			f.year = v;
			break;
		case '%':
			if (p >= end || *p++ != '%')
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	if (p != end)
		return -EINVAL;
	return compose(&f, ts_ms);
}

int pr_time_parse(const char *text, size_t len, const char *format, int64_t *ts_ms)
{
	const char *p = text, *end = text + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (p == end)
		return -EINVAL;
	if (format)
		return parse_pattern(p, end, format, ts_ms);
	if (end - p >= 10 && p[4] == '-')
		return parse_iso(p, end, ts_ms);
	return parse_epoch(p, end, ts_ms);
}
