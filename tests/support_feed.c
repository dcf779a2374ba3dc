/* support_feed.c - feeds, the brute-force reference, processes; see support_feed.h. */
#define _GNU_SOURCE /* pipe2, timegm */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support_feed.h"

extern char **environ;

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort(); /* test helper: out of memory is not a case to handle */
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

/* ---- seeded randomness: splitmix64 ------------------------------------------ */

void feed_rng_seed(struct feed_rng *r, uint64_t seed)
{
	/* Mixed first, so that seeds s and s + 1 give unrelated streams. */
	uint64_t z = seed + 0x2545f4914f6cdd1dull;
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
	r->state = z ^ (z >> 33);
}

uint64_t feed_rng_next(struct feed_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t feed_rng_below(struct feed_rng *r, uint64_t n)
{
	return n ? feed_rng_next(r) % n : 0;
}

bool feed_rng_chance(struct feed_rng *r, unsigned percent)
{
	return feed_rng_below(r, 100) < percent;
}

/* ---- feeds ---------------------------------------------------------------------- */

void feed_init(struct feed *f)
{
	memset(f, 0, sizeof *f);
}

void feed_free(struct feed *f)
{
	free(f->customers);
	free(f->stores);
	free(f->records);
	free(f->customer_slots);
	memset(f, 0, sizeof *f);
}

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static bool id_is(const struct feed_id *id, const char *bytes, size_t len)
{
	return id->len == len && memcmp(id->bytes, bytes, len) == 0;
}

static void slots_insert(struct feed *f, uint32_t index)
{
	const struct feed_id *id = &f->customers[index];
	size_t mask = f->slot_count - 1;
	for (size_t s = fnv1a(id->bytes, id->len) & mask;; s = (s + 1) & mask) {
		if (!f->customer_slots[s]) {
			f->customer_slots[s] = index + 1;
			return;
		}
	}
}

uint32_t feed_customer(struct feed *f, const char *bytes, size_t len)
{
	if (len < 1 || len > FEED_ID_MAX)
		abort();
	if (f->slot_count) {
		size_t mask = f->slot_count - 1;
		for (size_t s = fnv1a(bytes, len) & mask; f->customer_slots[s]; s = (s + 1) & mask)
			if (id_is(&f->customers[f->customer_slots[s] - 1], bytes, len))
				return f->customer_slots[s] - 1;
	}
	if (f->customer_count == f->customer_cap) {
		f->customer_cap = f->customer_cap ? f->customer_cap * 2 : 64;
		f->customers = xrealloc(f->customers, f->customer_cap * sizeof *f->customers);
	}
	struct feed_id *id = &f->customers[f->customer_count];
	id->len = (uint8_t)len;
	memcpy(id->bytes, bytes, len);
	id->bytes[len] = 0;
	uint32_t index = (uint32_t)f->customer_count++;
	if (f->customer_count * 2 > f->slot_count) {
		free(f->customer_slots);
		f->slot_count = f->slot_count ? f->slot_count * 4 : 256;
		f->customer_slots = xcalloc(f->slot_count, sizeof *f->customer_slots);
		for (uint32_t i = 0; i < f->customer_count; i++)
			slots_insert(f, i);
	} else {
		slots_insert(f, index);
	}
	return index;
}

uint32_t feed_store(struct feed *f, const char *bytes, size_t len)
{
	if (len > FEED_STORE_MAX)
		abort();
	for (size_t i = 0; i < f->store_count; i++)
		if (id_is(&f->stores[i], bytes, len))
			return (uint32_t)i;
	if (f->store_count == f->store_cap) {
		f->store_cap = f->store_cap ? f->store_cap * 2 : 8;
		f->stores = xrealloc(f->stores, f->store_cap * sizeof *f->stores);
	}
	struct feed_id *id = &f->stores[f->store_count];
	id->len = (uint8_t)len;
	memcpy(id->bytes, bytes, len);
	id->bytes[len] = 0;
	return (uint32_t)f->store_count++;
}

void feed_add(struct feed *f, int64_t ts_ms, uint32_t customer, uint32_t store,
	      int64_t amount_minor)
{
	if (f->count == f->record_cap) {
		f->record_cap = f->record_cap ? f->record_cap * 2 : 256;
		f->records = xrealloc(f->records, f->record_cap * sizeof *f->records);
	}
	f->records[f->count++] = (struct feed_record){ ts_ms, amount_minor, customer, store };
}

bool feed_watermark(const struct feed *f, int64_t *ts_ms)
{
	if (!f->count)
		return false;
	int64_t w = f->records[0].ts_ms;
	for (size_t i = 1; i < f->count; i++)
		if (f->records[i].ts_ms > w)
			w = f->records[i].ts_ms;
	*ts_ms = w;
	return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a % b < 0) != (b < 0)) ? q - 1 : q;
}

int64_t feed_utc_ms(int year, int month, int day, int hour, int minute, int second, int ms)
{
	struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
			 .tm_hour = hour, .tm_min = minute, .tm_sec = second };
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void utc_tm(int64_t ts_ms, struct tm *tm)
{
	time_t t = (time_t)floor_div(ts_ms, 1000);
	gmtime_r(&t, tm);
}

void feed_iso_ms(int64_t ts_ms, char out[32])
{
	struct tm tm;
	char buf[96]; /* room for any int the compiler imagines */
	utc_tm(ts_ms, &tm);
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(ts_ms - floor_div(ts_ms, 1000) * 1000));
	snprintf(out, 32, "%.31s", buf);
}

/* ---- random ids --------------------------------------------------------------- */

static const char alphabet64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Pieces of "special" ids: CSV and JSON metacharacters, UTF-8. */
static const char *const pieces[] = {
	"a", "Z", "0", "7", ",", "\"", "\\", " ", "'", ";", "|", "#", "/", "{", "}",
	"\xc3\xa9" /* é */, "\xc3\x9f" /* ß */, "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */,
	"\xe2\x82\xac" /* € */, "\xf0\x9f\x98\x80" /* an emoji, 4 bytes */, "\t", "\n",
};

static void random_id(struct feed_rng *r, struct feed_id *out)
{
	char buf[FEED_ID_MAX + 8];
	size_t len = 0;
	switch (feed_rng_below(r, 10)) {
	case 0:
	case 1:
	case 2:
		len = (size_t)snprintf(buf, sizeof buf, "C%llu",
				       (unsigned long long)feed_rng_below(r, 100000));
		break;
	case 3:
	case 4: { /* prefixes of one another: A, AB, ABC, ..., up to 64 bytes */
		static const size_t lens[] = { 1, 2, 3, 4, 5, 8, 63, 64 };
		len = feed_rng_chance(r, 50) ? lens[feed_rng_below(r, 8)] : 1 + feed_rng_below(r, 64);
		memcpy(buf, alphabet64, len);
		break;
	}
	case 5:
		len = (size_t)snprintf(buf, sizeof buf, "%05llu",
				       (unsigned long long)feed_rng_below(r, 1000));
		break;
	case 6: /* 64 bytes differing in the last one only */
		buf[0] = 'L';
		memset(buf + 1, 'x', 62);
		buf[63] = (char)('a' + feed_rng_below(r, 26));
		len = 64;
		break;
	default: { /* special bytes; never starting or ending in white space */
		size_t want = 1 + feed_rng_below(r, 12);
		buf[len++] = (char)('a' + feed_rng_below(r, 26));
		for (size_t i = 0; i < want; i++) {
			const char *p = pieces[feed_rng_below(r, sizeof pieces / sizeof pieces[0])];
			size_t n = strlen(p);
			if (len + n + 1 > FEED_ID_MAX)
				break;
			memcpy(buf + len, p, n);
			len += n;
		}
		buf[len++] = (char)('a' + feed_rng_below(r, 26));
		break;
	}
	}
	out->len = (uint8_t)len;
	memcpy(out->bytes, buf, len);
	out->bytes[len] = 0;
}

static uint32_t random_customer_id(struct feed *f, struct feed_rng *r)
{
	struct feed_id id;
	random_id(r, &id);
	return feed_customer(f, id.bytes, id.len);
}

/* ---- random feeds ------------------------------------------------------------------ */

static int64_t random_amount(struct feed_rng *r, int style)
{
	switch (style) {
	case 0: /* coarse: many exact ties */
		return (int64_t)(1 + feed_rng_below(r, 10)) * 500;
	case 1: /* cents */
		return (int64_t)(1 + feed_rng_below(r, 50000));
	default: /* a few big spenders */
		return feed_rng_chance(r, 3) ? (int64_t)(1 + feed_rng_below(r, 5000000))
					     : (int64_t)(1 + feed_rng_below(r, 20000));
	}
}

/* Inserts a record at a random position (late arrival or early). */
static void add_anywhere(struct feed *f, struct feed_rng *r, int64_t ts, uint32_t customer,
			 uint32_t store, int64_t amount)
{
	feed_add(f, ts, customer, store, amount);
	size_t at = feed_rng_below(r, f->count);
	struct feed_record t = f->records[at];
	f->records[at] = f->records[f->count - 1];
	f->records[f->count - 1] = t;
}

static int64_t month_start(int64_t ts_ms, int back, int months_per_period)
{
	struct tm tm;
	utc_tm(ts_ms, &tm);
	int m = tm.tm_year * 12 + tm.tm_mon;
	m -= m % months_per_period;
	m -= back * months_per_period;
	return feed_utc_ms(1900 + m / 12, m % 12 + 1, 1, 0, 0, 0, 0);
}

static int64_t random_watermark(struct feed_rng *r)
{
	switch (feed_rng_below(r, 6)) {
	case 0: /* exactly a month start */
		return feed_utc_ms(2025, 1 + (int)feed_rng_below(r, 12), 1, 0, 0, 0, 0);
	case 1: /* a year start */
		return feed_utc_ms(2025, 1, 1, 0, 0, 0, 0);
	case 2: /* the last millisecond of a month */
		return feed_utc_ms(2025, 2 + (int)feed_rng_below(r, 11), 1, 0, 0, 0, 0) - 1;
	case 3: /* a leap day */
		return feed_utc_ms(2024, 2, 29, 12, 34, 56, 789);
	default:
		return feed_utc_ms(2025, 1, 1, 0, 0, 0, 0) +
		       (int64_t)feed_rng_below(r, 364 * (uint64_t)FEED_MS_PER_DAY);
	}
}

static void random_stores(struct feed *f, struct feed_rng *r, size_t count)
{
	static const char *const special[] = { "North, 5", "S\"q", "\xc3\x9cnter", "S\\1",
					       "store-with-a-32-byte-long-name!!" };
	for (size_t s = 0; f->store_count < count && s < 64; s++) {
		char name[40];
		if (feed_rng_chance(r, 25))
			snprintf(name, sizeof name, "%s", special[feed_rng_below(r, 5)]);
		else
			snprintf(name, sizeof name, "S%zu", s + 1);
		feed_store(f, name, strlen(name));
	}
}

/*
 * Customers whose lapsed status sits exactly on a threshold (the factor
 * and the idle days of the defaults), relative to the watermark w.
 */
static void lapsed_edges(struct feed *f, struct feed_rng *r, int64_t w)
{
	const int64_t day = FEED_MS_PER_DAY;
	struct {
		const char *id;
		int64_t last, gap;
	} edges[] = {
		{ "lapse-factor-eq", w - 30 * day, 10 * day },     /* idle = 3 gaps: not */
		{ "lapse-factor-gt", w - 30 * day - 1, 10 * day }, /* one ms more: lapsed */
		{ "lapse-idle-eq", w - 30 * day, 5 * day },        /* idle = 30 days: lapsed */
		{ "lapse-idle-lt", w - 30 * day + 1, 5 * day },    /* one ms less: not */
	};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
		uint32_t c = feed_customer(f, edges[i].id, strlen(edges[i].id));
		for (int k = 2; k >= 0; k--)
			add_anywhere(f, r, edges[i].last - k * edges[i].gap, c,
				     (uint32_t)feed_rng_below(r, f->store_count), 1234);
	}
	/* Four records on two days, idle long: only two purchase days. */
	uint32_t c = feed_customer(f, "lapse-two-days", 14);
	for (int k = 0; k < 4; k++)
		add_anywhere(f, r, w - 100 * day - (k / 2) * 3 * day - k * 1000, c, 0, 999);
	/* Two purchase days and a refund on a third, idle long: every record is
	 * a purchase day to the engine (its aggregates count records). */
	c = feed_customer(f, "lapse-refund-day", 16);
	add_anywhere(f, r, w - 200 * day, c, 0, 5000);
	add_anywhere(f, r, w - 190 * day, c, 0, 5000);
	add_anywhere(f, r, w - 180 * day, c, 0, -1000);
	/* Day edges: the last ms of a day and the first of the next are two days. */
	c = feed_customer(f, "day-edge", 8);
	int64_t d = floor_div(w, day) * day - 90 * day;
	add_anywhere(f, r, d - 1, c, 0, 100);
	add_anywhere(f, r, d, c, 0, 100);
	add_anywhere(f, r, d + day - 1, c, 0, 100);
}

void feed_random(struct feed *f, unsigned seed, char *what, size_t what_size)
{
	struct feed_rng r;
	feed_rng_seed(&r, seed);
	feed_init(f);
	int shape = (int)(seed % 15);
	int64_t w = random_watermark(&r);
	const int64_t day = FEED_MS_PER_DAY, span = 1100 * day;
	int64_t start = w - span;
	bool whole_seconds = feed_rng_chance(&r, 40);

	f->has_store_column = shape == 0 ? feed_rng_chance(&r, 50) : feed_rng_chance(&r, 80);
	size_t stores = f->has_store_column ? 1 + feed_rng_below(&r, 8) : 1;
	/* Sometimes many stores, so that busy customers have many pairs (the
	 * engine names a customer's first PR_PAIR_INLINE in its aggregate and
	 * finds the rest through an index). */
	if (f->has_store_column && feed_rng_chance(&r, 25))
		stores += 8 + feed_rng_below(&r, 24);
	if (f->has_store_column)
		random_stores(f, &r, stores);
	else
		feed_store(f, "", 0);
	stores = f->store_count;

	size_t customers = 0, records = 0;
	int amount_style = (int)feed_rng_below(&r, 3);
	unsigned refund_percent = (unsigned[]){ 0, 8, 25 }[feed_rng_below(&r, 3)];
	unsigned skew = 1 + (unsigned)feed_rng_below(&r, 3);
	switch (shape) {
	case 0: /* header only */
		snprintf(what, what_size, "header only");
		return;
	case 1: /* one customer */
		random_customer_id(f, &r);
		records = 1 + feed_rng_below(&r, 40);
		break;
	case 2: /* every net revenue cancelled or negative (handled below) */
	case 3: /* exact ties (handled below) */
		customers = 2 + feed_rng_below(&r, 12);
		records = customers * (1 + feed_rng_below(&r, 6));
		break;
	default: {
		static const size_t sizes[] = { 2, 3, 5, 8, 13, 40, 100, 300, 700, 1500 };
		customers = sizes[feed_rng_below(&r, 10)];
		records = customers * (1 + feed_rng_below(&r, 6));
		if (records > 6000)
			records = 6000;
		break;
	}
	}
	for (size_t tries = 0; f->customer_count < customers && tries < customers * 4; tries++)
		random_customer_id(f, &r);
	customers = f->customer_count;

	/* Each customer mostly buys in a home store. */
	uint32_t *home = xcalloc(customers, sizeof *home);
	for (size_t c = 0; c < customers; c++)
		home[c] = (uint32_t)feed_rng_below(&r, stores);

	for (size_t i = 0; i < records; i++) {
		uint32_t c;
		if (shape == 3) {
			c = (uint32_t)(i % customers);
		} else {
			/* Skewed popularity: index = customers x u^skew. */
			double u = (double)(feed_rng_next(&r) >> 11) / 9007199254740992.0, p = u;
			for (unsigned k = 1; k < skew; k++)
				p *= u;
			c = (uint32_t)(p * (double)customers);
			if (c >= customers)
				c = (uint32_t)customers - 1;
		}
		uint32_t s = feed_rng_chance(&r, 70) ? home[c] : (uint32_t)feed_rng_below(&r, stores);
		int64_t ts = start + (int64_t)((__int128)span * (int64_t)i / (int64_t)records) +
			     (int64_t)feed_rng_below(&r, 4 * (uint64_t)day) - 2 * day;
		if (feed_rng_chance(&r, 10)) /* a late arrival */
			ts -= (int64_t)feed_rng_below(&r, 400 * (uint64_t)day);
		/* The last store only sells long ago: empty in recent windows. */
		if (stores >= 3 && s == stores - 1 && ts > w - 400 * day)
			ts -= 500 * day;
		if (ts < start)
			ts = start;
		if (ts >= w)
			ts = w - 1 - (int64_t)feed_rng_below(&r, day);
		if (whole_seconds)
			ts = floor_div(ts, 1000) * 1000;
		int64_t amount = shape == 3 ? 1000 * (int64_t)(1 + i / customers)
					    : random_amount(&r, amount_style);
		if (shape != 3 && feed_rng_chance(&r, refund_percent))
			amount = -amount;
		if (shape != 3 && feed_rng_chance(&r, 3))
			amount = 0;
		feed_add(f, ts, c, s, amount);
	}
	free(home);

	/* The watermark itself, at a random place in the feed. */
	if (customers)
		add_anywhere(f, &r, w, (uint32_t)feed_rng_below(&r, customers),
			     (uint32_t)feed_rng_below(&r, stores), shape == 2 ? 0 : 777);

	if (shape >= 4) {
		/* Records on every window edge and one ms before it. */
		for (int back = 0; back <= 1; back++) {
			int64_t edges[] = { month_start(w, back, 1), month_start(w, back, 3),
					    month_start(w, back, 12) };
			for (int k = 0; k < 3; k++) {
				for (int64_t d = -1; d <= 0; d++) {
					if (edges[k] + d > w)
						continue;
					add_anywhere(f, &r, edges[k] + d,
						     (uint32_t)feed_rng_below(&r, customers),
						     (uint32_t)feed_rng_below(&r, stores),
						     random_amount(&r, amount_style));
				}
			}
		}
		if (feed_rng_chance(&r, 60))
			lapsed_edges(f, &r, w);
		/* Some customers refund everything they bought (net 0), some more. */
		int64_t *net = xcalloc(f->customer_count, sizeof *net);
		for (size_t i = 0; i < f->count; i++)
			net[f->records[i].customer] += f->records[i].amount_minor;
		for (size_t c = 0; c < f->customer_count; c++) {
			if (net[c] > 0 && feed_rng_chance(&r, 6))
				add_anywhere(f, &r, w - (int64_t)feed_rng_below(&r, 200 * (uint64_t)day),
					     (uint32_t)c, 0, -net[c] - (feed_rng_chance(&r, 50) ? 0 : 100));
		}
		free(net);
	}
	if (shape == 2) {
		/* Cancel every customer's purchases, late, and some by more. */
		int64_t *net = xcalloc(f->customer_count, sizeof *net);
		for (size_t i = 0; i < f->count; i++)
			net[f->records[i].customer] += f->records[i].amount_minor;
		for (size_t c = 0; c < f->customer_count; c++)
			if (net[c] > 0)
				feed_add(f, w - (int64_t)feed_rng_below(&r, 40 * (uint64_t)day), (uint32_t)c,
					 0, -net[c] - (feed_rng_chance(&r, 50) ? 0 : 1));
		free(net);
	}
	snprintf(what, what_size, "shape %d: %zu customers, %zu stores%s, %zu records, watermark %lld",
		 shape, f->customer_count, f->store_count, f->has_store_column ? "" : " (no column)",
		 f->count, (long long)w);
}

/* ---- CSV ------------------------------------------------------------------------------ */

struct text {
	char *p;
	size_t len, cap;
};

static void text_put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = xrealloc(t->p, t->cap);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = 0;
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	text_put(t, buf, (size_t)n);
}

/* RFC 4180: quotes when needed (and sometimes when not), inner quotes doubled. */
static void csv_field(struct text *t, struct feed_rng *r, const char *s, size_t len)
{
	bool need = len && (s[0] == ' ' || s[len - 1] == ' ' || s[0] == '\t' || s[len - 1] == '\t');
	for (size_t i = 0; i < len && !need; i++)
		need = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!need && !feed_rng_chance(r, 10)) {
		text_put(t, s, len);
		return;
	}
	text_put(t, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			text_put(t, "\"", 1);
		text_put(t, s + i, 1);
	}
	text_put(t, "\"", 1);
}

static void csv_time(struct text *t, struct feed_rng *r, int64_t ts, int mode)
{
	struct tm tm;
	utc_tm(ts, &tm);
	int ms = (int)(ts - floor_div(ts, 1000) * 1000);
	int form = mode == 0 ? 1 : mode == 1 ? 0 : (int)feed_rng_below(r, 8);
	/* Forms without milliseconds only for whole seconds, and so on. */
	if ((form >= 2 && ms) || (form == 6 && (tm.tm_hour || tm.tm_min || tm.tm_sec)) ||
	    (form == 7 && tm.tm_sec))
		form = form % 2;
	char date[48];
	snprintf(date, sizeof date, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	switch (form) {
	case 0: /* epoch ms */
		text_printf(t, "%lld", (long long)ts);
		break;
	case 1:
		text_printf(t, "%sT%02d:%02d:%02d.%03dZ", date, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
		break;
	case 2:
		text_printf(t, "%sT%02d:%02d:%02dZ", date, tm.tm_hour, tm.tm_min, tm.tm_sec);
		break;
	case 3: /* no zone: UTC */
		text_printf(t, "%s %02d:%02d:%02d", date, tm.tm_hour, tm.tm_min, tm.tm_sec);
		break;
	case 4: /* epoch seconds */
		text_printf(t, "%lld", (long long)floor_div(ts, 1000));
		break;
	case 5: { /* a zone offset: local time = UTC + offset */
		static const int offsets[] = { 330, -180, 60, -600, 840 };
		int off = offsets[feed_rng_below(r, 5)];
		struct tm local;
		utc_tm(ts + (int64_t)off * 60000, &local);
		int a = off < 0 ? -off : off;
		text_printf(t, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", local.tm_year + 1900,
			    local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
			    off < 0 ? '-' : '+', a / 60, a % 60);
		break;
	}
	case 6: /* a date alone: midnight */
		text_put(t, date, strlen(date));
		break;
	default: /* no seconds */
		text_printf(t, "%sT%02d:%02d", date, tm.tm_hour, tm.tm_min);
		break;
	}
}

enum { COL_TS, COL_CUSTOMER, COL_STORE, COL_AMOUNT, COL_NOTE };

void feed_csv_write(const struct feed *f, uint64_t style_seed, struct feed_csv *out)
{
	struct feed_rng r;
	feed_rng_seed(&r, style_seed ^ 0x5eedc5full);
	memset(out, 0, sizeof *out);
	static const char *const default_names[] = { "ts", "customer_id", "store_id", "amount", "note" };
	static const char *const other_names[] = { "when", "card", "shop", "total", "note" };
	static const char *const maps[] = { "ts=when", "customer=card", "store=shop", "amount=total" };
	bool renamed = feed_rng_chance(&r, 30);
	int cols[5], ncols = 0;
	cols[ncols++] = COL_TS;
	cols[ncols++] = COL_CUSTOMER;
	if (f->has_store_column)
		cols[ncols++] = COL_STORE;
	cols[ncols++] = COL_AMOUNT;
	if (feed_rng_chance(&r, 30))
		cols[ncols++] = COL_NOTE;
	for (int i = ncols - 1; i > 0; i--) {
		int j = (int)feed_rng_below(&r, (uint64_t)i + 1), t = cols[i];
		cols[i] = cols[j];
		cols[j] = t;
	}
	if (renamed) {
		for (int i = 0; i < 4; i++)
			if (i != COL_STORE || f->has_store_column)
				out->map_args[out->map_count++] = maps[i];
	}
	const char *eol = feed_rng_chance(&r, 30) ? "\r\n" : "\n";
	int ts_mode = (int)feed_rng_below(&r, 3); /* 0 ISO with ms, 1 epoch ms, 2 mixed */
	struct text t = { 0 };
	text_put(&t, "", 0);
	for (int i = 0; i < ncols; i++) {
		const char *name = (renamed ? other_names : default_names)[cols[i]];
		if (i)
			text_put(&t, ",", 1);
		csv_field(&t, &r, name, strlen(name));
	}
	text_put(&t, eol, strlen(eol));
	static const char *const notes[] = { "", "gift", "a, b", "say \"hi\"", "x" };
	for (size_t k = 0; k < f->count; k++) {
		const struct feed_record *rec = &f->records[k];
		for (int i = 0; i < ncols; i++) {
			if (i)
				text_put(&t, ",", 1);
			switch (cols[i]) {
			case COL_TS:
				csv_time(&t, &r, rec->ts_ms, ts_mode);
				break;
			case COL_CUSTOMER: {
				const struct feed_id *id = &f->customers[rec->customer];
				csv_field(&t, &r, id->bytes, id->len);
				break;
			}
			case COL_STORE: {
				const struct feed_id *id = &f->stores[rec->store];
				csv_field(&t, &r, id->bytes, id->len);
				break;
			}
			case COL_AMOUNT: {
				int64_t a = rec->amount_minor;
				uint64_t m = a < 0 ? -(uint64_t)a : (uint64_t)a;
				if (m % 100 == 0 && feed_rng_chance(&r, 30))
					text_printf(&t, "%s%llu", a < 0 ? "-" : "",
						    (unsigned long long)(m / 100));
				else
					text_printf(&t, "%s%llu.%02llu", a < 0 ? "-" : "",
						    (unsigned long long)(m / 100),
						    (unsigned long long)(m % 100));
				break;
			}
			default: {
				const char *note = notes[feed_rng_below(&r, 5)];
				csv_field(&t, &r, note, strlen(note));
				break;
			}
			}
		}
		if (k + 1 < f->count || feed_rng_chance(&r, 80))
			text_put(&t, eol, strlen(eol));
	}
	out->text = t.p;
	out->len = t.len;
}

void feed_csv_free(struct feed_csv *c)
{
	free(c->text);
	memset(c, 0, sizeof *c);
}

/* ---- the reference ------------------------------------------------------------------ */

void ref_options_default(struct ref_options *o)
{
	*o = (struct ref_options){
		.top = { 1, 5 },
		.tier_a = { 1, 5 },
		.tier_b = { 1, 2 },
		.pareto_target = { 4, 5 },
		.key_share = { 1, 10 },
		.lapsed_min_days = 3,
		.lapsed_gap_factor = { 3, 1 },
		.lapsed_min_idle_days = 30,
	};
}

static const char *const window_names[REF_WINDOW_COUNT] = {
	"all", "month", "quarter", "year", "prev-month", "prev-quarter", "prev-year",
};

const char *ref_window_name(int window)
{
	return window >= 0 && window < REF_WINDOW_COUNT ? window_names[window] : "?";
}

static const char *const risk_names[] = { "none", "key", "elevated", "high", "critical", "mono" };

const char *ref_risk_name(int risk)
{
	return risk >= 0 && risk <= 5 ? risk_names[risk] : "?";
}

/* Calendar period number of a time: 0 month, 1 quarter, 2 year. */
static int64_t period_of(int64_t ts_ms, int kind)
{
	struct tm tm;
	utc_tm(ts_ms, &tm);
	int64_t year = tm.tm_year + 1900;
	return kind == 0 ? year * 12 + tm.tm_mon : kind == 1 ? year * 4 + tm.tm_mon / 3 : year;
}

static bool in_window(int window, int64_t ts_ms, int64_t watermark_ms)
{
	if (window == 0)
		return true;
	int kind = (window - 1) % 3;
	int64_t back = window >= 4 ? 1 : 0;
	return period_of(ts_ms, kind) == period_of(watermark_ms, kind) - back;
}

/* Byte order of ids: memcmp, then the shorter first. */
static int id_order(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int by_id(const void *x, const void *y)
{
	const struct ref_customer *a = x, *b = y;
	return id_order(a->id, a->len, b->id, b->len);
}

static int by_revenue_then_id(const void *x, const void *y)
{
	const struct ref_customer *a = x, *b = y;
	if (a->revenue != b->revenue)
		return a->revenue > b->revenue ? -1 : 1;
	return id_order(a->id, a->len, b->id, b->len);
}

static uint64_t ceil_fraction(struct ref_fraction f, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)f.num * n + f.den - 1) / f.den);
}

/* part / whole >= f, exactly. */
static bool at_least(__int128 part, __int128 whole, struct ref_fraction f)
{
	return part * (__int128)f.den >= whole * (__int128)f.num;
}

static double ratio(__int128 part, __int128 whole)
{
	return whole > 0 ? (double)((long double)part / (long double)whole) : 0.0;
}

static void scope_compute(const struct feed *f, int window, int64_t wm, long store,
			  const struct ref_options *o, struct ref_scope *s)
{
	memset(s, 0, sizeof *s);
	/* Group the scope's records by exact id bytes: sort, then sum runs. */
	struct ref_customer *rows = xcalloc(f->count, sizeof *rows);
	size_t n_rows = 0;
	for (size_t i = 0; i < f->count; i++) {
		const struct feed_record *rec = &f->records[i];
		if (store >= 0 && !id_is(&f->stores[store], f->stores[rec->store].bytes,
					 f->stores[rec->store].len))
			continue;
		if (!in_window(window, rec->ts_ms, wm))
			continue;
		const struct feed_id *id = &f->customers[rec->customer];
		rows[n_rows++] = (struct ref_customer){ id->bytes, id->len, rec->amount_minor };
	}
	qsort(rows, n_rows, sizeof *rows, by_id);
	s->all = xcalloc(n_rows, sizeof *s->all);
	for (size_t i = 0; i < n_rows;) {
		size_t j = i;
		__int128 sum = 0;
		while (j < n_rows && by_id(&rows[i], &rows[j]) == 0)
			sum += rows[j++].revenue;
		if (sum > INT64_MAX || sum < INT64_MIN)
			abort(); /* the test feeds stay far inside int64 */
		s->all[s->all_count++] = (struct ref_customer){ rows[i].id, rows[i].len, (int64_t)sum };
		i = j;
	}
	free(rows);

	s->ranked = xcalloc(s->all_count, sizeof *s->ranked);
	for (size_t i = 0; i < s->all_count; i++)
		if (s->all[i].revenue > 0)
			s->ranked[s->n++] = s->all[i];
	qsort(s->ranked, s->n, sizeof *s->ranked, by_revenue_then_id);
	uint64_t n = s->n;
	s->competition_rank = xcalloc(n, sizeof *s->competition_rank);
	for (uint64_t i = 0; i < n; i++) {
		s->total += s->ranked[i].revenue;
		/* 1 + customers with strictly greater revenue: in descending order
		 * that is every entry before the first of an equal run. */
		bool tied = i > 0 && s->ranked[i - 1].revenue == s->ranked[i].revenue;
		s->competition_rank[i] = tied ? s->competition_rank[i - 1] : 1 + i;
	}
	if (n == 0)
		return;

	__int128 *prefix = xcalloc(n + 1, sizeof *prefix);
	for (uint64_t i = 0; i < n; i++)
		prefix[i + 1] = prefix[i] + s->ranked[i].revenue;
	s->top_customers = ceil_fraction(o->top, n);
	s->top_revenue = prefix[s->top_customers];
	uint64_t a = ceil_fraction(o->tier_a, n), b = ceil_fraction(o->tier_b, n);
	s->tier_customers[0] = a;
	s->tier_customers[1] = b - a;
	s->tier_customers[2] = n - b;
	s->tier_revenue[0] = prefix[a];
	s->tier_revenue[1] = prefix[b] - prefix[a];
	s->tier_revenue[2] = prefix[n] - prefix[b];
	for (uint64_t m = 1; m <= n; m++) {
		if (at_least(prefix[m], s->total, o->pareto_target)) {
			s->pareto_m = m;
			break;
		}
	}
	s->cr1 = ratio(prefix[1], s->total);
	s->cr5 = ratio(prefix[n < 5 ? n : 5], s->total);
	s->cr10 = ratio(prefix[n < 10 ? n : 10], s->total);

	/* HHI and Gini from their definitions, with exact integer sums. */
	__int128 squares = 0, weighted = 0;
	for (uint64_t i = 1; i <= n; i++) {
		__int128 x = s->ranked[n - i].revenue; /* x_1 <= ... <= x_N */
		squares += x * x;
		weighted += (__int128)i * x;
	}
	long double t = (long double)s->total;
	s->hhi = (double)((long double)squares * 10000.0L / (t * t));
	/* 2 sum(i x_i) / (N T) - (N + 1) / N = (2 sum(i x_i) - (N + 1) T) / (N T). */
	s->gini = (double)((long double)(2 * weighted - (__int128)(n + 1) * s->total) /
			   ((long double)n * t));

	__int128 top1 = s->ranked[0].revenue;
	s->risk = n == 1 ? 5
		: at_least(top1, s->total, (struct ref_fraction){ 1, 2 }) ? 4
		: at_least(top1, s->total, (struct ref_fraction){ 2, 5 }) ? 3
		: at_least(top1, s->total, (struct ref_fraction){ 1, 5 }) ? 2
		: at_least(top1, s->total, o->key_share) ? 1 : 0;
	for (uint64_t i = 0; i < n; i++)
		if (at_least(s->ranked[i].revenue, s->total, o->key_share))
			s->key_clients++;
	free(prefix);
}

static void scope_free(struct ref_scope *s)
{
	free(s->ranked);
	free(s->all);
	free(s->competition_rank);
}

/* Stores: risk level desc, then largest share desc (exactly), then first seen. */
static int store_order(const void *x, const void *y)
{
	const struct ref_scope *a = x, *b = y;
	if (a->risk != b->risk)
		return a->risk > b->risk ? -1 : 1;
	__int128 top_a = a->n ? a->ranked[0].revenue : 0, top_b = b->n ? b->ranked[0].revenue : 0;
	/* cr1 of an empty scope is 0; compare top_a/total_a with top_b/total_b. */
	__int128 lhs = top_a * (b->n ? b->total : 1), rhs = top_b * (a->n ? a->total : 1);
	if (lhs != rhs)
		return lhs > rhs ? -1 : 1;
	return a->first_seen < b->first_seen ? -1 : a->first_seen > b->first_seen;
}

struct timed {
	const char *id;
	size_t len;
	int64_t ts, amount;
};

static int by_id_then_time(const void *x, const void *y)
{
	const struct timed *a = x, *b = y;
	int c = id_order(a->id, a->len, b->id, b->len);
	if (c)
		return c;
	return a->ts < b->ts ? -1 : a->ts > b->ts;
}

static int lapsed_order(const void *x, const void *y)
{
	const struct ref_lapsed *a = x, *b = y;
	if (a->revenue != b->revenue)
		return a->revenue > b->revenue ? -1 : 1;
	return id_order(a->id, a->len, b->id, b->len);
}

static void lapsed_compute(const struct feed *f, int64_t wm, const struct ref_options *o,
			   struct ref_report *out)
{
	struct timed *rows = xcalloc(f->count, sizeof *rows);
	for (size_t i = 0; i < f->count; i++) {
		const struct feed_id *id = &f->customers[f->records[i].customer];
		rows[i] = (struct timed){ id->bytes, id->len, f->records[i].ts_ms,
					  f->records[i].amount_minor };
	}
	qsort(rows, f->count, sizeof *rows, by_id_then_time);
	out->lapsed = xcalloc(f->count, sizeof *out->lapsed);
	for (size_t i = 0; i < f->count;) {
		struct ref_lapsed c = { rows[i].id, rows[i].len, 0, 0, 0, rows[i].ts, rows[i].ts };
		int64_t last_day = 0;
		size_t j = i;
		for (; j < f->count && id_order(rows[j].id, rows[j].len, c.id, c.len) == 0; j++) {
			int64_t d = floor_div(rows[j].ts, FEED_MS_PER_DAY);
			if (j == i || d != last_day)
				c.days++;
			last_day = d;
			c.revenue += rows[j].amount;
			c.purchases++;
			c.last_ms = rows[j].ts;
		}
		i = j;
		/* At least N purchase days, idle > factor x mean gap, idle >= M days;
		 * mean gap = (last - first) / (days - 1), cross-multiplied. */
		__int128 idle = (__int128)wm - c.last_ms, spanned = (__int128)c.last_ms - c.first_ms;
		if (c.days >= o->lapsed_min_days && c.days >= 2 &&
		    idle >= (__int128)o->lapsed_min_idle_days * FEED_MS_PER_DAY &&
		    idle * (__int128)(c.days - 1) * o->lapsed_gap_factor.den >
			    spanned * o->lapsed_gap_factor.num)
			out->lapsed[out->lapsed_count++] = c;
	}
	qsort(out->lapsed, out->lapsed_count, sizeof *out->lapsed, lapsed_order);
	free(rows);
}

void ref_compute(const struct feed *f, int window, const struct ref_options *opt,
		 struct ref_report *out)
{
	memset(out, 0, sizeof *out);
	out->window = window;
	out->opt = *opt;
	out->records = f->count;
	out->has_watermark = feed_watermark(f, &out->watermark_ms);
	int64_t wm = out->watermark_ms;
	scope_compute(f, window, wm, -1, opt, &out->company);

	/* Stores the records name, each with its first record's position. */
	out->stores = xcalloc(f->store_count, sizeof *out->stores);
	for (size_t s = 0; s < f->store_count; s++) {
		size_t first = SIZE_MAX;
		for (size_t i = 0; i < f->count && first == SIZE_MAX; i++)
			if (id_is(&f->stores[s], f->stores[f->records[i].store].bytes,
				  f->stores[f->records[i].store].len))
				first = i;
		if (first == SIZE_MAX)
			continue;
		struct ref_scope *sc = &out->stores[out->store_count++];
		scope_compute(f, window, wm, (long)s, opt, sc);
		sc->store = f->stores[s].bytes;
		sc->store_len = f->stores[s].len;
		sc->first_seen = first;
	}
	qsort(out->stores, out->store_count, sizeof *out->stores, store_order);
	if (out->has_watermark)
		lapsed_compute(f, wm, opt, out);
}

void ref_free(struct ref_report *r)
{
	scope_free(&r->company);
	for (size_t s = 0; s < r->store_count; s++)
		scope_free(&r->stores[s]);
	free(r->stores);
	free(r->lapsed);
	memset(r, 0, sizeof *r);
}

/* ---- checking a report -------------------------------------------------------------- */

bool ref_close(double got, double want)
{
	double d = got > want ? got - want : want - got;
	double m = want < 0 ? -want : want;
	return d <= 1e-12 || d <= 1e-9 * m;
}

struct checker {
	const struct tj *root;
	char *why;
	size_t size;
	bool failed;
};

static void failf(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct checker *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, c->size, fmt, ap);
	va_end(ap);
}

static const struct tj *at_path(struct checker *c, const char *path, enum tj_type type)
{
	const struct tj *v = tj_get(c->root, "%s", path);
	if (!v)
		failf(c, "%s: missing", path);
	else if (v->type != type)
		failf(c, "%s: a %s, want a %s", path, tj_type_name(v->type), tj_type_name(type));
	return c->failed ? NULL : v;
}

static void want_int(struct checker *c, const char *path, __int128 want)
{
	if (c->failed)
		return;
	const struct tj *v = at_path(c, path, TJ_NUMBER);
	if (!v)
		return;
	if (!v->is_int || v->integer != (int64_t)want || want > INT64_MAX || want < INT64_MIN)
		failf(c, "%s: got %s, want %lld", path, v->text, (long long)want);
}

static void want_double(struct checker *c, const char *path, double want)
{
	if (c->failed)
		return;
	const struct tj *v = at_path(c, path, TJ_NUMBER);
	if (v && !ref_close(v->number, want))
		failf(c, "%s: got %s, want %.17g", path, v->text, want);
}

/* A printable rendering of id bytes for messages. */
static const char *show(const char *s, size_t len, char *buf, size_t size)
{
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len && o + 6 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

static void want_string(struct checker *c, const char *path, const char *want, size_t len)
{
	if (c->failed)
		return;
	const struct tj *v = at_path(c, path, TJ_STRING);
	if (v && !tj_string_is(v, want, len)) {
		char a[160], b[160];
		failf(c, "%s: got %s, want %s", path, show(v->text, v->len, a, sizeof a),
		      show(want, len, b, sizeof b));
	}
}

static void want_cstring(struct checker *c, const char *path, const char *want)
{
	want_string(c, path, want, strlen(want));
}

static void want_null(struct checker *c, const char *path)
{
	if (!c->failed)
		at_path(c, path, TJ_NULL);
}

static void want_keys(struct checker *c, const char *path, const char *keys)
{
	if (c->failed)
		return;
	const struct tj *v = path[0] ? tj_get(c->root, "%s", path) : c->root;
	char why[128];
	if (!tj_has_exactly_keys(v, keys, why, sizeof why))
		failf(c, "%s: %s", path[0] ? path : "report", why);
}

static void want_count(struct checker *c, const char *path, size_t want)
{
	if (c->failed)
		return;
	const struct tj *v = at_path(c, path, TJ_ARRAY);
	if (v && v->count != want)
		failf(c, "%s: %zu entries, want %zu", path, v->count, want);
}

#define P(...) (snprintf(path, sizeof path, __VA_ARGS__), path)

static void check_key_clients(struct checker *c, const char *prefix, const struct ref_scope *s)
{
	char path[256];
	want_count(c, P("%skey_clients", prefix), s->key_clients);
	for (uint64_t i = 0; i < s->key_clients && !c->failed; i++) {
		const struct ref_customer *k = &s->ranked[i];
		want_keys(c, P("%skey_clients[%llu]", prefix, (unsigned long long)i),
			  "customer,revenue_minor,share");
		want_string(c, P("%skey_clients[%llu].customer", prefix, (unsigned long long)i), k->id,
			    k->len);
		want_int(c, P("%skey_clients[%llu].revenue_minor", prefix, (unsigned long long)i),
			 k->revenue);
		want_double(c, P("%skey_clients[%llu].share", prefix, (unsigned long long)i),
			    ratio(k->revenue, s->total));
	}
}

static void check_tier(struct checker *c, const char *name, uint64_t customers, __int128 revenue,
		       __int128 total)
{
	char path[64];
	want_keys(c, P("tiers.%s", name), "customers,revenue_minor,share");
	want_int(c, P("tiers.%s.customers", name), customers);
	want_int(c, P("tiers.%s.revenue_minor", name), revenue);
	want_double(c, P("tiers.%s.share", name), ratio(revenue, total));
}

static const struct ref_customer *find_all(const struct ref_scope *s, const char *id, size_t len)
{
	struct ref_customer key = { id, len, 0 };
	return bsearch(&key, s->all, s->all_count, sizeof *s->all, by_id);
}

bool ref_check(const struct tj *report, const struct ref_report *want, const struct ref_query *q,
	       char *why, size_t why_size)
{
	struct checker c = { report, why, why_size, false };
	char path[256], iso[32];
	const struct ref_scope *s = &want->company;
	const struct ref_options *o = &want->opt;

	char keys[512] = "records,rejected,watermark,watermark_ms,window,scale,customers,"
			 "revenue_minor,top_tier,pareto_point,tiers,cr1,cr5,cr10,hhi,gini,risk,"
			 "key_clients,top";
	if (q->by_store)
		strcat(keys, ",stores");
	if (q->customer_count)
		strcat(keys, ",customer_detail");
	if (q->lapsed)
		strcat(keys, ",lapsed,lapsed_total");
	want_keys(&c, "", keys);
	want_int(&c, "records", want->records);
	want_int(&c, "rejected", q->rejected);
	if (want->has_watermark) {
		feed_iso_ms(want->watermark_ms, iso);
		want_cstring(&c, "watermark", iso);
		want_int(&c, "watermark_ms", want->watermark_ms);
	} else {
		want_null(&c, "watermark");
		want_null(&c, "watermark_ms");
	}
	want_cstring(&c, "window", ref_window_name(want->window));
	want_int(&c, "scale", q->scale);
	want_int(&c, "customers", s->n);
	want_int(&c, "revenue_minor", s->total);
	want_keys(&c, "top_tier", "fraction,customers,revenue_minor,share");
	want_double(&c, "top_tier.fraction", (double)o->top.num / (double)o->top.den);
	want_int(&c, "top_tier.customers", s->top_customers);
	want_int(&c, "top_tier.revenue_minor", s->top_revenue);
	want_double(&c, "top_tier.share", ratio(s->top_revenue, s->total));
	want_double(&c, "pareto_point", s->n ? (double)s->pareto_m / (double)s->n : 0.0);
	want_keys(&c, "tiers", "A,B,C");
	check_tier(&c, "A", s->tier_customers[0], s->tier_revenue[0], s->total);
	check_tier(&c, "B", s->tier_customers[1], s->tier_revenue[1], s->total);
	check_tier(&c, "C", s->tier_customers[2], s->tier_revenue[2], s->total);
	want_double(&c, "cr1", s->cr1);
	want_double(&c, "cr5", s->cr5);
	want_double(&c, "cr10", s->cr10);
	want_double(&c, "hhi", s->hhi);
	want_double(&c, "gini", s->gini);
	want_cstring(&c, "risk", ref_risk_name(s->risk));
	check_key_clients(&c, "", s);

	uint64_t listed = s->n < q->top ? s->n : q->top;
	want_count(&c, "top", listed);
	__int128 cumulative = 0;
	for (uint64_t i = 0; i < listed && !c.failed; i++) {
		const struct ref_customer *r = &s->ranked[i];
		unsigned long long k = (unsigned long long)i;
		cumulative += r->revenue;
		want_keys(&c, P("top[%llu]", k),
			  "rank,competition_rank,customer,revenue_minor,share,cumulative_share");
		want_int(&c, P("top[%llu].rank", k), i + 1);
		want_int(&c, P("top[%llu].competition_rank", k), s->competition_rank[i]);
		want_string(&c, P("top[%llu].customer", k), r->id, r->len);
		want_int(&c, P("top[%llu].revenue_minor", k), r->revenue);
		want_double(&c, P("top[%llu].share", k), ratio(r->revenue, s->total));
		want_double(&c, P("top[%llu].cumulative_share", k), ratio(cumulative, s->total));
	}

	if (q->by_store) {
		want_count(&c, "stores", want->store_count);
		for (size_t i = 0; i < want->store_count && !c.failed; i++) {
			const struct ref_scope *st = &want->stores[i];
			char prefix[32];
			snprintf(prefix, sizeof prefix, "stores[%zu].", i);
			want_keys(&c, P("stores[%zu]", i),
				  "store,customers,revenue_minor,cr1,hhi,gini,risk,key_clients");
			want_string(&c, P("%sstore", prefix), st->store, st->store_len);
			want_int(&c, P("%scustomers", prefix), st->n);
			want_int(&c, P("%srevenue_minor", prefix), st->total);
			want_double(&c, P("%scr1", prefix), st->cr1);
			want_double(&c, P("%shhi", prefix), st->hhi);
			want_double(&c, P("%sgini", prefix), st->gini);
			want_cstring(&c, P("%srisk", prefix), ref_risk_name(st->risk));
			check_key_clients(&c, prefix, st);
		}
	}

	if (q->customer_count) {
		want_count(&c, "customer_detail", q->customer_count);
		for (size_t i = 0; i < q->customer_count && !c.failed; i++) {
			const char *id = q->customers[i];
			size_t len = strlen(id);
			char prefix[40];
			snprintf(prefix, sizeof prefix, "customer_detail[%zu].", i);
			want_keys(&c, P("customer_detail[%zu]", i),
				  "customer,rank,competition_rank,percentile,tier,revenue_minor,share");
			want_string(&c, P("%scustomer", prefix), id, len);
			const struct ref_customer *seen = find_all(s, id, len);
			int64_t revenue = seen ? seen->revenue : 0;
			want_int(&c, P("%srevenue_minor", prefix), revenue);
			uint64_t rank = 0;
			for (uint64_t k = 0; k < s->n && !rank; k++)
				if (id_order(s->ranked[k].id, s->ranked[k].len, id, len) == 0)
					rank = k + 1;
			if (!rank) {
				want_null(&c, P("%srank", prefix));
				want_null(&c, P("%scompetition_rank", prefix));
				want_null(&c, P("%spercentile", prefix));
				want_null(&c, P("%stier", prefix));
				want_double(&c, P("%sshare", prefix), 0.0);
				continue;
			}
			want_int(&c, P("%srank", prefix), rank);
			want_int(&c, P("%scompetition_rank", prefix), s->competition_rank[rank - 1]);
			want_double(&c, P("%spercentile", prefix), (double)rank / (double)s->n);
			const char *tier = rank <= s->tier_customers[0]				  ? "A"
					 : rank <= s->tier_customers[0] + s->tier_customers[1] ? "B"
											  : "C";
			want_cstring(&c, P("%stier", prefix), tier);
			want_double(&c, P("%sshare", prefix), ratio(revenue, s->total));
		}
	}

	if (q->lapsed) {
		size_t listed_lapsed = want->lapsed_count < q->lapsed_limit ? want->lapsed_count
									   : (size_t)q->lapsed_limit;
		want_int(&c, "lapsed_total", want->lapsed_count);
		want_count(&c, "lapsed", listed_lapsed);
		for (size_t i = 0; i < listed_lapsed && !c.failed; i++) {
			const struct ref_lapsed *l = &want->lapsed[i];
			char prefix[32];
			snprintf(prefix, sizeof prefix, "lapsed[%zu].", i);
			want_keys(&c, P("lapsed[%zu]", i),
				  "customer,revenue_minor,purchases,purchase_days,last,mean_gap_days");
			want_string(&c, P("%scustomer", prefix), l->id, l->len);
			want_int(&c, P("%srevenue_minor", prefix), l->revenue);
			want_int(&c, P("%spurchases", prefix), l->purchases);
			want_int(&c, P("%spurchase_days", prefix), l->days);
			feed_iso_ms(l->last_ms, iso);
			want_cstring(&c, P("%slast", prefix), iso);
			want_double(&c, P("%smean_gap_days", prefix),
				    (double)(l->last_ms - l->first_ms) / (double)(l->days - 1) /
					    (double)FEED_MS_PER_DAY);
		}
	}
	return !c.failed;
}

#undef P

/* ---- processes ---------------------------------------------------------------------- */

static char **environment_with(const char *const extra[])
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	size_t extras = 0;
	while (extra && extra[extras])
		extras++;
	char **env = xcalloc(n + extras + 1, sizeof *env);
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t e = 0; e < extras && !replaced; e++) {
			size_t name = strcspn(extra[e], "=");
			replaced = strncmp(environ[i], extra[e], name + 1) == 0;
		}
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t e = 0; e < extras; e++)
		env[k++] = (char *)extra[e];
	env[k] = NULL;
	return env;
}

static int spawn_and_run(const char *const argv[], const char *const env_extra[],
			 const void *input, size_t in_len, uint64_t piece_seed,
			 struct proc_result *r);

int proc_run(const char *const argv[], const char *const env_extra[], const void *input,
	     size_t in_len, struct proc_result *r)
{
	return spawn_and_run(argv, env_extra, input, in_len, 0, r);
}

int proc_run_pieces(const char *const argv[], const char *const env_extra[], const void *input,
		    size_t in_len, uint64_t seed, struct proc_result *r)
{
	return spawn_and_run(argv, env_extra, input, in_len, seed | 1, r);
}

/* piece_seed 0: write as much as the pipe takes. */
static int spawn_and_run(const char *const argv[], const char *const env_extra[],
			 const void *input, size_t in_len, uint64_t piece_seed,
			 struct proc_result *r)
{
	memset(r, 0, sizeof *r);
	signal(SIGPIPE, SIG_IGN); /* a child that stops reading must not kill the test */
	int in[2], out[2], err[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	char **env = environment_with(env_extra);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(in[1]);
		close(out[0]);
		close(err[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	struct text bufs[2] = { { 0 }, { 0 } };
	text_put(&bufs[0], "", 0);
	text_put(&bufs[1], "", 0);
	size_t written = 0;
	int in_fd = in[1];
	if (!input || in_len == 0) {
		close(in_fd);
		in_fd = -1;
	}
	int fds[2] = { out[0], err[0] };
	while (fds[0] >= 0 || fds[1] >= 0 || in_fd >= 0) {
		struct pollfd p[3] = { { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 }, { in_fd, POLLOUT, 0 } };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char chunk[65536];
			ssize_t n = read(fds[i], chunk, sizeof chunk);
			if (n > 0) {
				text_put(&bufs[i], chunk, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
		if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			size_t piece = in_len - written;
			if (piece_seed) {
				piece_seed ^= piece_seed << 13;
				piece_seed ^= piece_seed >> 7;
				piece_seed ^= piece_seed << 17;
				size_t most = 1 + (size_t)(piece_seed % 8192);
				if (piece > most)
					piece = most;
			}
			ssize_t n = write(in_fd, (const char *)input + written, piece);
			if (n > 0)
				written += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == in_len) {
				close(in_fd);
				in_fd = -1;
			}
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = bufs[0].p;
	r->out_len = bufs[0].len;
	r->err = bufs[1].p;
	r->err_len = bufs[1].len;
	return 0;
}

void proc_result_free(struct proc_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

/* ---- files -------------------------------------------------------------------------- */

char *tmpdir_create(void)
{
	const char *base = getenv("TMPDIR");
	char *path = NULL;
	if (asprintf(&path, "%s/pareto-test-XXXXXX", base && *base ? base : "/tmp") < 0)
		abort();
	if (!mkdtemp(path))
		abort();
	return path;
}

char *tmpdir_path(const char *dir, const char *name)
{
	char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	return path;
}

void tmpdir_remove(char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char *p = tmpdir_path(dir, e->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(dir);
	free(dir);
}

void file_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		abort();
}

char *file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		abort();
	struct text t = { 0 };
	text_put(&t, "", 0);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		text_put(&t, chunk, n);
	fclose(f);
	if (len)
		*len = t.len;
	return t.p;
}
