/*
 * test_property.c - `pareto report --json` on seeded random feeds, every
 * field checked against a brute-force reference written here from
 * DESIGN.md alone: windows from gmtime_r, everything sorted from scratch,
 * sums in 128 bits. The seed is in every failure message.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support_run.h"

#define MAX_RECORDS 400
#define MAX_IDS 64
#define MAX_STORES 5

struct rec {
	int64_t ts_ms, amount;
	int customer, store;
};

struct feed {
	char ids[MAX_IDS][24];
	int n_ids;
	char stores[MAX_STORES][16];
	int n_stores;
	bool has_store_column;
	struct rec recs[MAX_RECORDS];
	int n;
};

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void make_feed(struct feed *f, unsigned seed)
{
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	memset(f, 0, sizeof *f);
	f->n_ids = 1 + (int)(rnd() % (seed % 5 == 0 ? 1 : MAX_IDS));
	static const char *const shapes[] = { "C%d", "A", "AB", "x,%d", "q\"%d", "%d", "C%d0" };
	for (int i = 0; i < f->n_ids; i++) {
		/* Ids of several lengths, prefixes of one another, some needing quotes;
		 * duplicates merge into one customer as in any feed. */
		snprintf(f->ids[i], sizeof f->ids[i], shapes[rnd() % 7], (int)(rnd() % 40));
	}
	f->has_store_column = seed % 3 != 0;
	f->n_stores = f->has_store_column ? 1 + (int)(rnd() % MAX_STORES) : 1;
	for (int s = 0; s < f->n_stores; s++)
		snprintf(f->stores[s], sizeof f->stores[s], f->has_store_column ? "S%d" : "", s);
	f->n = seed % 7 == 0 ? 0 : (int)(rnd() % MAX_RECORDS);
	int64_t start = 1672531200000LL; /* 2023-01-01 */
	for (int i = 0; i < f->n; i++) {
		struct rec *r = &f->recs[i];
		r->customer = (int)(rnd() % (uint64_t)f->n_ids);
		r->store = (int)(rnd() % (uint64_t)f->n_stores);
		/* Roughly ordered over three years, some late arrivals. */
		int64_t day = (int64_t)i * 1000 / (f->n + 1) + (rnd() % 8 == 0 ? -(int64_t)(rnd() % 200) : 0);
		r->ts_ms = start + (day < 0 ? 0 : day) * 86400000LL + (int64_t)(rnd() % 86400) * 1000;
		/* Coarse amounts make ties; some refunds. */
		r->amount = (int64_t)(rnd() % 20) * 250 - (rnd() % 6 == 0 ? 2500 : 0);
	}
}

static void csv_field(char **p, const char *s)
{
	if (strpbrk(s, ",\"")) {
		*(*p)++ = '"';
		for (; *s; s++) {
			if (*s == '"')
				*(*p)++ = '"';
			*(*p)++ = *s;
		}
		*(*p)++ = '"';
	} else {
		*p += sprintf(*p, "%s", s);
	}
}

static void write_csv(const struct feed *f, const char *path, unsigned seed)
{
	static char text[MAX_RECORDS * 128 + 128];
	char *p = text;
	p += sprintf(p, f->has_store_column ? "amount,customer_id,ts,store_id\n"
					    : "amount,customer_id,ts\n");
	for (int i = 0; i < f->n; i++) {
		const struct rec *r = &f->recs[i];
		int64_t a = r->amount < 0 ? -r->amount : r->amount;
		p += sprintf(p, "%s%lld.%02lld,", r->amount < 0 ? "-" : "", (long long)(a / 100),
			     (long long)(a % 100));
		csv_field(&p, f->ids[r->customer]);
		if (seed % 2) {
			p += sprintf(p, ",%lld", (long long)r->ts_ms);
		} else {
			time_t t = (time_t)(r->ts_ms / 1000);
			struct tm tm;
			gmtime_r(&t, &tm);
			p += strftime(p, 32, ",%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		if (f->has_store_column)
			p += sprintf(p, ",%s", f->stores[r->store]);
		*p++ = '\n';
	}
	write_file(path, text, (size_t)(p - text));
}

/* ---- the reference ------------------------------------------------------ */

/* Calendar period of a time: month, quarter and year indexes. */
static void periods(int64_t ts_ms, int out[3])
{
	time_t t = (time_t)(ts_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	int year = tm.tm_year + 1900;
	out[0] = year * 12 + tm.tm_mon;
	out[1] = year * 4 + tm.tm_mon / 3;
	out[2] = year;
}

static const char *const windows[] = { "all", "month", "quarter", "year", "prev-month",
				       "prev-quarter", "prev-year" };

static bool in_window(int w, int64_t ts, int64_t watermark)
{
	if (w == 0)
		return true;
	int p[3], wm[3];
	periods(ts, p);
	periods(watermark, wm);
	int g = (w - 1) % 3;
	return w <= 3 ? p[g] == wm[g] : p[g] == wm[g] - 1;
}

struct ranked {
	const char *id;
	int64_t revenue;
};

static int by_revenue_then_id(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->revenue != y->revenue)
		return x->revenue > y->revenue ? -1 : 1;
	return strcmp(x->id, y->id); /* ids here have no NUL bytes: memcmp order */
}

/* Distinct customers (ids merged by text), revenue in window w, store s (-1: all). */
static int rank_scope(const struct feed *f, int w, int s, int64_t watermark, struct ranked *out)
{
	int n = 0;
	for (int i = 0; i < f->n; i++) {
		const struct rec *r = &f->recs[i];
		if ((s >= 0 && strcmp(f->stores[r->store], f->stores[s]) != 0) ||
		    !in_window(w, r->ts_ms, watermark))
			continue;
		int k = 0;
		while (k < n && strcmp(out[k].id, f->ids[r->customer]) != 0)
			k++;
		if (k == n)
			out[n++] = (struct ranked){ f->ids[r->customer], 0 };
		out[k].revenue += r->amount;
	}
	int m = 0;
	for (int k = 0; k < n; k++)
		if (out[k].revenue > 0)
			out[m++] = out[k];
	qsort(out, (size_t)m, sizeof *out, by_revenue_then_id);
	return m;
}

static char flat_buf[256];
static unsigned current_seed;
static const char *current_window;

static const char *get(const char *flat, const char *fmt, ...)
{
	char path[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path, sizeof path, fmt, ap);
	va_end(ap);
	const char *v = json_get(flat, path, flat_buf, sizeof flat_buf);
	cr_assert_not_null(v, "seed %u window %s: %s missing", current_seed, current_window, path);
	return v;
}

static void eq_int(const char *flat, __int128 want, const char *path)
{
	const char *v = get(flat, "%s", path);
	cr_assert_eq(strtoll(v, NULL, 10), (long long)want, "seed %u window %s: %s = %s, want %lld",
		     current_seed, current_window, path, v, (long long)want);
}

static void eq_num(const char *flat, double want, const char *path)
{
	const char *v = get(flat, "%s", path);
	double got = strtod(v, NULL);
	cr_assert(fabs(got - want) <= 1e-12 + 1e-9 * fabs(want),
		  "seed %u window %s: %s = %s, want %.17g", current_seed, current_window, path, v,
		  want);
}

static const char *risk_of(const struct ranked *r, int n, __int128 total)
{
	if (n == 0)
		return "none";
	if (n == 1)
		return "mono";
	__int128 top = r[0].revenue;
	return top * 2 >= total ? "critical" : top * 5 >= total * 2 ? "high"
	     : top * 5 >= total ? "elevated" : top * 10 >= total ? "key" : "none";
}

/* Checks the concentration block of a scope at `prefix` ("" or "stores[i]."). */
static void check_scope(const char *flat, const char *prefix, const struct ranked *r, int n,
			bool full)
{
	char path[160];
	__int128 total = 0, squares = 0, weighted = 0;
	for (int i = 0; i < n; i++) {
		total += r[i].revenue;
		squares += (__int128)r[i].revenue * r[i].revenue;
		weighted += (__int128)(n - i) * r[i].revenue; /* ascending index n - i */
	}
	snprintf(path, sizeof path, "%scustomers", prefix);
	eq_int(flat, n, path);
	snprintf(path, sizeof path, "%srevenue_minor", prefix);
	eq_int(flat, total, path);
	snprintf(path, sizeof path, "%srisk", prefix);
	cr_assert_str_eq(get(flat, "%s", path), risk_of(r, n, total), "seed %u %s", current_seed, path);
	double t = (double)total;
	snprintf(path, sizeof path, "%scr1", prefix);
	eq_num(flat, n ? (double)r[0].revenue / t : 0, path);
	snprintf(path, sizeof path, "%shhi", prefix);
	eq_num(flat, n ? (double)squares * 10000 / (t * t) : 0, path);
	snprintf(path, sizeof path, "%sgini", prefix);
	eq_num(flat, n ? 2 * (double)weighted / (n * t) - (double)(n + 1) / n : 0, path);
	int keys = 0;
	while (keys < n && (__int128)r[keys].revenue * 10 >= total) {
		snprintf(path, sizeof path, "%skey_clients[%d].customer", prefix, keys);
		cr_assert_str_eq(get(flat, "%s", path), r[keys].id, "seed %u %s", current_seed, path);
		keys++;
	}
	snprintf(path, sizeof path, "%skey_clients[%d].customer", prefix, keys);
	cr_assert_null(json_get(flat, path, flat_buf, sizeof flat_buf), "seed %u: %s", current_seed,
		       path);
	if (!full)
		return;

	int top = (n * 2 + 9) / 10, b = (n + 1) / 2, pareto = 0;
	__int128 acc = 0, top_rev = 0, b_rev = 0;
	for (int i = 0; i < n; i++) {
		acc += r[i].revenue;
		if (!pareto && acc * 5 >= total * 4)
			pareto = i + 1;
		if (i < top)
			top_rev += r[i].revenue;
		else if (i < b)
			b_rev += r[i].revenue;
	}
	eq_int(flat, top, "top_tier.customers");
	eq_int(flat, top_rev, "top_tier.revenue_minor");
	eq_num(flat, n ? (double)top_rev / t : 0, "top_tier.share");
	eq_num(flat, n ? (double)pareto / n : 0, "pareto_point");
	eq_int(flat, top, "tiers.A.customers");
	eq_int(flat, b - top, "tiers.B.customers");
	eq_int(flat, b_rev, "tiers.B.revenue_minor");
	eq_int(flat, n - b, "tiers.C.customers");
	eq_int(flat, total - top_rev - b_rev, "tiers.C.revenue_minor");
	__int128 cum = 0;
	for (int i = 0; i < n; i++) {
		cum += r[i].revenue;
		cr_assert_str_eq(get(flat, "top[%d].customer", i), r[i].id, "seed %u window %s rank %d",
				 current_seed, current_window, i + 1);
		snprintf(path, sizeof path, "top[%d].revenue_minor", i);
		eq_int(flat, r[i].revenue, path);
		snprintf(path, sizeof path, "top[%d].rank", i);
		eq_int(flat, i + 1, path);
		int above = 0;
		while (r[above].revenue > r[i].revenue)
			above++;
		snprintf(path, sizeof path, "top[%d].competition_rank", i);
		eq_int(flat, above + 1, path);
		snprintf(path, sizeof path, "top[%d].cumulative_share", i);
		eq_num(flat, (double)cum / t, path);
	}
	cr_assert_null(json_get(flat, "top[0].customer", flat_buf, sizeof flat_buf) && n == 0 ? "x" : NULL);
}

static void check_lapsed(const char *flat, const struct feed *f, int64_t watermark)
{
	/* Per distinct id: revenue, records, distinct UTC days, first and last. */
	struct { const char *id; int64_t revenue, first, last; int purchases, days; } c[MAX_IDS];
	int n = 0;
	for (int i = 0; i < f->n; i++) {
		const struct rec *r = &f->recs[i];
		int k = 0;
		while (k < n && strcmp(c[k].id, f->ids[r->customer]) != 0)
			k++;
		if (k == n)
			c[n++] = (typeof(c[0])){ f->ids[r->customer], 0, r->ts_ms, r->ts_ms, 0, 0 };
		c[k].revenue += r->amount;
		c[k].purchases++;
		c[k].first = r->ts_ms < c[k].first ? r->ts_ms : c[k].first;
		c[k].last = r->ts_ms > c[k].last ? r->ts_ms : c[k].last;
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(f->ids[f->recs[j].customer], c[k].id) == 0 &&
			       f->recs[j].ts_ms / 86400000 == r->ts_ms / 86400000;
		c[k].days += !seen;
	}
	struct ranked lapsed[MAX_IDS];
	int m = 0;
	for (int k = 0; k < n; k++) {
		__int128 idle = watermark - c[k].last;
		if (c[k].days >= 3 && idle >= 30 * 86400000LL &&
		    idle * (c[k].days - 1) > (__int128)3 * (c[k].last - c[k].first))
			lapsed[m++] = (struct ranked){ c[k].id, c[k].revenue };
	}
	qsort(lapsed, (size_t)m, sizeof *lapsed, by_revenue_then_id);
	eq_int(flat, m, "lapsed_total");
	for (int i = 0; i < m; i++) {
		cr_assert_str_eq(get(flat, "lapsed[%d].customer", i), lapsed[i].id, "seed %u", current_seed);
		char path[64];
		snprintf(path, sizeof path, "lapsed[%d].revenue_minor", i);
		eq_int(flat, lapsed[i].revenue, path);
		int k = 0;
		while (strcmp(c[k].id, lapsed[i].id) != 0)
			k++;
		snprintf(path, sizeof path, "lapsed[%d].purchases", i);
		eq_int(flat, c[k].purchases, path);
		snprintf(path, sizeof path, "lapsed[%d].purchase_days", i);
		eq_int(flat, c[k].days, path);
		snprintf(path, sizeof path, "lapsed[%d].mean_gap_days", i);
		eq_num(flat, (double)(c[k].last - c[k].first) / (c[k].days - 1) / 86400000.0, path);
	}
}

Test(property, report_matches_brute_force_on_random_feeds, .timeout = 600)
{
	static struct feed f;
	const char *path = temp_path(2, ".csv");
	for (unsigned seed = 1; seed <= 36; seed++) {
		current_seed = seed;
		make_feed(&f, seed);
		write_csv(&f, path, seed);
		int64_t watermark = INT64_MIN;
		for (int i = 0; i < f.n; i++)
			watermark = f.recs[i].ts_ms > watermark ? f.recs[i].ts_ms : watermark;
		for (int w = 0; w < 7; w++) {
			current_window = windows[w];
			struct run_result run;
			char *argv[] = { PARETO_BIN, "report", "--json", "--top", "100000", "--by-store",
					 "--lapsed", "100000", "--window", (char *)windows[w],
					 "--customer", f.ids[0], (char *)path, NULL };
			run_command(argv, NULL, &run);
			cr_assert_eq(run.exit_code, 0, "seed %u: %s", seed, run.err);
			char *flat = json_flatten(run.out);
			cr_assert_not_null(flat, "seed %u: bad JSON %s", seed, run.out);
			eq_int(flat, f.n, "records");
			eq_int(flat, 0, "rejected");

			static struct ranked company[MAX_IDS], store[MAX_IDS];
			int n = rank_scope(&f, w, -1, watermark, company);
			check_scope(flat, "", company, n, true);

			/* Customer detail of f.ids[0]. */
			int at = 0;
			while (at < n && strcmp(company[at].id, f.ids[0]) != 0)
				at++;
			if (at < n) {
				eq_int(flat, at + 1, "customer_detail[0].rank");
				eq_num(flat, (double)(at + 1) / n, "customer_detail[0].percentile");
				int a = (n * 2 + 9) / 10, b = (n + 1) / 2;
				const char *tier = at < a ? "A" : at < b ? "B" : "C";
				cr_assert_str_eq(get(flat, "customer_detail[0].tier"), tier, "seed %u", seed);
			} else {
				cr_assert_str_eq(get(flat, "customer_detail[0].rank"), "null", "seed %u", seed);
			}

			/* Stores: riskiest first; each checked wherever it is listed. */
			int listed = 0;
			for (int s = 0; s < f.n_stores; s++) {
				bool used = false;
				for (int i = 0; i < f.n && !used; i++)
					used = f.recs[i].store == s;
				if (!used)
					continue;
				listed++;
				int pos = 0;
				char key[32];
				while (json_get(flat, (snprintf(key, sizeof key, "stores[%d].store", pos), key),
						flat_buf, sizeof flat_buf) &&
				       strcmp(flat_buf, f.stores[s]) != 0)
					pos++;
				cr_assert_str_eq(get(flat, "stores[%d].store", pos), f.stores[s],
						 "seed %u: store %s not listed", seed, f.stores[s]);
				char prefix[32];
				snprintf(prefix, sizeof prefix, "stores[%d].", pos);
				int m = rank_scope(&f, w, s, watermark, store);
				check_scope(flat, prefix, store, m, false);
			}
			char key[32];
			snprintf(key, sizeof key, "stores[%d].store", listed);
			cr_assert_null(json_get(flat, key, flat_buf, sizeof flat_buf), "seed %u", seed);
			if (w == 0)
				check_lapsed(flat, &f, watermark);
			free(flat);
			run_result_free(&run);
		}
	}
	unlink(path);
}
