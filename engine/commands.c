/*
 * commands.c - paretod's commands, the published rankings and the alerts;
 * see commands.h.
 *
 * A published ranking may be older than the engine: while feeds stream
 * in, the company rankings come from the ranker thread (ranker.h): a new
 * one every rank_interval_ms while a batch takes less (with the auto
 * interval, every 1 ms to rank_interval_ms, by the batches' cost), else as
 * soon as the last is done. Store rankings are rebuilt here at most every
 * rank_interval_ms and at most one tenth of the time (a build waits 9 x
 * its last duration). Figures read from a ranking's entries (TOP,
 * PARETO, RISK, ...) are exact for the records it cites. Looking up one
 * customer (RANK, CUSTOMER, SCORE) on a company ranking goes through its
 * customer index (his revenue as of the ranking, then O(log N)), so the
 * answer is exact for the records it cites however old the ranking. On an
 * older store ranking a customer whose revenue changed since forces a
 * rebuild. When no feed is streaming, every answer is as of the last
 * record: a query waits for the ranker to catch up.
 *
 * This module is part of the engine library and runs on the writer's
 * thread.
 */
#define _GNU_SOURCE /* qsort_r, strcasecmp */
#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "engine_internal.h" /* the record count, see engine_records */
#include "persistence.h"
#include "server.h"
#include "store_build.h"
#include "test_hooks.h"
#include "timeparse.h"

#define PARETO_DAEMON_VERSION "0.1.0"
#define ALERT_KEYS_MAX 64 /* key clients tracked per scope */

typedef struct pr_resp_command args_t;

/* ---- replies -------------------------------------------------------------- */

/* A map whose declared size is checked against the fields written. */
struct map {
	struct pr_resp_out *o;
	size_t declared, written;
};

static void map_begin(struct map *m, struct pr_resp_out *o, size_t n)
{
	m->o = o;
	m->declared = n;
	m->written = 0;
	pr_resp_map(o, n);
}

static void map_end(const struct map *m)
{
	assert(m->written == m->declared);
	(void)m;
}

static struct pr_resp_out *key(struct map *m, const char *name)
{
	m->written++;
	pr_resp_cstring(m->o, name);
	return m->o;
}

static void f_uint(struct map *m, const char *name, uint64_t v)
{
	pr_resp_integer(key(m, name), (int64_t)v);
}

static void f_int(struct map *m, const char *name, int64_t v)
{
	pr_resp_integer(key(m, name), v);
}

static void f_double(struct map *m, const char *name, double v)
{
	pr_resp_double(key(m, name), v);
}

static void f_str(struct map *m, const char *name, const char *v)
{
	pr_resp_cstring(key(m, name), v);
}

static void f_bytes(struct map *m, const char *name, const char *v, size_t n)
{
	pr_resp_bulk(key(m, name), v, n);
}

static void f_bool(struct map *m, const char *name, bool v)
{
	pr_resp_bool(key(m, name), v);
}

static void f_null(struct map *m, const char *name)
{
	pr_resp_null(key(m, name));
}

static void f_time(struct map *m, const char *name, int64_t ms)
{
	char iso[32];
	pr_time_format(ms, iso);
	f_str(m, name, iso);
}

/* "records", "watermark", "watermark_ms": what an answer reflects (3 fields). */
static void f_meta(struct map *m, uint64_t records, bool has_watermark, int64_t watermark_ms)
{
	f_uint(m, "records", records);
	if (has_watermark) {
		f_time(m, "watermark", watermark_ms);
		f_int(m, "watermark_ms", watermark_ms);
	} else {
		f_null(m, "watermark");
		f_null(m, "watermark_ms");
	}
}

struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

static void addf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = t->failed ? 0 : vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (t->failed || n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap ? t->cap : 1024) * 2 + (size_t)n;
		char *bigger = realloc(t->p, cap);
		if (!bigger) {
			t->failed = true;
			return;
		}
		t->p = bigger;
		t->cap = cap;
	}
}

/* ---- arguments ------------------------------------------------------------ */

static bool arg_is(const args_t *a, size_t i, const char *word)
{
	size_t n = strlen(word);
	return i < a->argc && a->argv_len[i] == n && strncasecmp(a->argv[i], word, n) == 0;
}

/* A non-negative decimal count. */
static bool arg_count(const args_t *a, size_t i, uint64_t *out)
{
	if (i >= a->argc || a->argv_len[i] == 0 || a->argv_len[i] > 19)
		return false;
	uint64_t v = 0;
	for (size_t k = 0; k < a->argv_len[i]; k++) {
		char ch = a->argv[i][k];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (uint64_t)(ch - '0');
	}
	*out = v;
	return true;
}

/* Copies an argument into a NUL-terminated buffer (cut to fit). */
static const char *arg_text(const args_t *a, size_t i, char *buf, size_t size)
{
	size_t n = a->argv_len[i] < size - 1 ? a->argv_len[i] : size - 1;
	memcpy(buf, a->argv[i], n);
	buf[n] = 0;
	return buf;
}

struct scope {
	enum pr_window window;
	bool has_store;
	const char *store;
	size_t store_len;
	int64_t store_index; /* valid if has_store and found */
};

/*
 * Parses [WINDOW w] [STORE s] from argument `from` on. Replies an error and
 * returns false on a bad option.
 */
static bool parse_scope(struct pr_server *s, struct pr_client *c, const args_t *a, size_t from,
			bool allow_store, struct scope *out)
{
	out->window = PR_WINDOW_ALL;
	out->has_store = false;
	out->store_index = -1;
	for (size_t i = from; i < a->argc; i += 2) {
		if (arg_is(a, i, "WINDOW") && i + 1 < a->argc) {
			char name[32];
			if (pr_window_parse(arg_text(a, i + 1, name, sizeof name), &out->window) < 0 ||
			    a->argv_len[i + 1] >= sizeof name) {
				pr_resp_error(&c->out, "ERR unknown window '%.*s' (expected all, month, "
					      "quarter, year, prev-month, prev-quarter or prev-year)",
					      (int)(a->argv_len[i + 1] > 64 ? 64 : a->argv_len[i + 1]),
					      a->argv[i + 1]);
				return false;
			}
		} else if (allow_store && arg_is(a, i, "STORE") && i + 1 < a->argc) {
			out->has_store = true;
			out->store = a->argv[i + 1];
			out->store_len = a->argv_len[i + 1];
		} else {
			pr_resp_error(&c->out, "ERR syntax error");
			return false;
		}
	}
	if (out->has_store) {
		out->store_index = pr_engine_store_find(s->engine, out->store, out->store_len);
		if (out->store_index < 0) {
			pr_resp_error(&c->out, "ERR unknown store '%.*s'",
				      (int)(out->store_len > 64 ? 64 : out->store_len), out->store);
			return false;
		}
	}
	return true;
}

/* ---- published rankings --------------------------------------------------- */

/*
 * Records counted so far, what every query compares its published ranking
 * with. This thread counts them as it accepts them; apply threads may not
 * have applied them all yet (and a drain uncounts any they could not apply
 * for memory). Read directly: pr_engine_state also counts the customers of
 * every shard, which needs a drain first.
 */
static uint64_t engine_records(const struct pr_server *s)
{
	return s->engine->records;
}

/* Whether a ranking built at built_ms (taking build_ms) should be rebuilt. */
static bool stale(const struct pr_server *s, uint64_t built_records, int64_t built_ms,
		  int64_t build_ms)
{
	if (built_records == engine_records(s))
		return false;
	if (!pr_server_ingesting(s))
		return true;
	int64_t wait = 9 * build_ms;
	if (wait < (int64_t)s->opt.rank_interval_ms)
		wait = s->opt.rank_interval_ms;
	return pr_server_now_ms() - built_ms >= wait;
}

/*
 * Whether a published set that answers can use (of `records`, built at
 * built_ms in build_ms) will do for now: it holds every record counted, or
 * it is not stale (unless forced), or it is stale while feeds stream and a
 * new one is being made beside ingest: one is out already, or start makes
 * one (not while a checkpoint reads the engine: nothing may be handed to
 * the apply threads then, persistence.h). false: make one here, on a
 * drained engine. (Store rankings and LAPSED's list.)
 */
static bool published_will_do(struct pr_server *s, bool force, uint64_t records, int64_t built_ms,
			      int64_t build_ms, bool out,
			      bool (*start)(struct pr_server *s, enum pr_window w), enum pr_window w)
{
	if (records == engine_records(s))
		return true;
	if (force)
		return false;
	if (!stale(s, records, built_ms, build_ms))
		return true;
	return pr_server_ingesting(s) && (out || pr_persist_writing(s) || start(s, w));
}

/*
 * Whether client c's request may wait (pr_server_wait) for the first
 * ranking or list it needs to be made beside ingest, rather than have it
 * made here, on a drained engine, while every other client and every feed
 * waits: only while feeds stream (idle, a drain costs nothing), and once
 * for a request (if what it waited for did not come, it is made here).
 */
static bool may_wait(const struct pr_server *s, const struct pr_client *c)
{
	return c && c->wait_tries == 0 && pr_server_ingesting(s);
}

/*
 * None published yet (store rankings, LAPSED's list): client c waits
 * (may_wait) for the one being made beside ingest, `out` already or
 * started now (not while a checkpoint reads the engine); whether it does.
 */
static bool wait_for_first(struct pr_server *s, struct pr_client *c, bool out,
			   bool (*start)(struct pr_server *s, enum pr_window w), enum pr_window w,
			   enum pr_wait_for what)
{
	if (!may_wait(s, c) || !(out || (!pr_persist_writing(s) && start(s, w))))
		return false;
	pr_server_wait(s, c, what, w, 0);
	return true;
}

static uint64_t ranker_failures(const struct pr_ranker *r)
{
	struct pr_ranker_stats rs;
	pr_ranker_stats(r, &rs);
	return rs.failures;
}

/* The ranker, started at the first query that needs a company ranking. */
static struct pr_ranker *ranker_get(struct pr_server *s)
{
	struct pr_error err = { 0 };
	if (!s->ranker && pr_ranker_create(&s->ranker, s->engine,
					   pr_server_rank_interval_least(&s->opt),
					   s->opt.rank_interval_ms, &err) < 0)
		pr_log("ranker: %s", err.message);
	return s->ranker;
}

/* Holds p (a reference) as the company ranking of w that answers use. */
static void company_hold(struct pr_server *s, enum pr_window w, struct pr_published *p)
{
	if (!p)
		return;
	pr_published_release(s->company[w]);
	s->company[w] = p;
}

/* Takes the newest published company rankings, for INFO and metrics. */
static void company_take_all(struct pr_server *s)
{
	for (int w = 0; s->ranker && w < PR_WINDOW_COUNT; w++)
		company_hold(s, (enum pr_window)w, pr_ranker_take(s->ranker, (enum pr_window)w));
}

/*
 * The company ranking of w: the newest the ranker published; while feeds
 * stream in that may be up to about rank_interval_ms behind, otherwise
 * (or if forced) it is waited for until it covers every record applied.
 * The first of a window, while feeds stream, client c waits for
 * (may_wait): NULL then, with c parked, and the loop goes on cutting the
 * ranker its batches. NULL also if the ranker ran out of memory.
 */
static const struct pr_published *company_get(struct pr_server *s, enum pr_window w,
					      bool force, struct pr_client *c)
{
	struct pr_ranker *r = ranker_get(s);
	if (!r)
		return NULL;
	pr_ranker_want(r, w);
	company_hold(s, w, pr_ranker_take(r, w));
	const struct pr_published *p = s->company[w];
	if (p && (p->records == engine_records(s) || (!force && pr_server_ingesting(s))))
		return p;
	if (!p && !force && may_wait(s, c)) {
		pr_server_wait(s, c, PR_WAIT_COMPANY, w, ranker_failures(r));
		return NULL;
	}
	pr_persist_wait_engine(s); /* the batch resets the engine's change journal */
	pr_server_drain(s);
	company_hold(s, w, pr_ranker_wait(r, w));
	return s->company[w];
}

static void stores_clear(struct pr_published_stores *p)
{
	for (uint32_t i = 0; p->rankings && i < p->count; i++)
		pr_ranking_destroy(p->rankings[i]);
	free(p->rankings);
	free(p->summaries);
	free(p->order);
	memset(p, 0, sizeof *p);
}

/* Stores by risk level, then largest share (compared exactly), then index:
 * the order of the report's "stores". */
static int compare_stores(const void *a, const void *b, void *ctx)
{
	const struct pr_published_stores *p = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct pr_summary *sx = &p->summaries[x], *sy = &p->summaries[y];
	if (sx->risk != sy->risk)
		return sx->risk > sy->risk ? -1 : 1;
	__int128 lhs = (__int128)pr_ranking_top_revenue(p->rankings[x], 1) * sy->revenue_minor;
	__int128 rhs = (__int128)pr_ranking_top_revenue(p->rankings[y], 1) * sx->revenue_minor;
	if (lhs != rhs)
		return lhs > rhs ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Makes rankings the published store rankings p (their summaries and
 * risk order added), built in build_ms; frees them if that fails. */
static void stores_publish(struct pr_server *s, struct pr_published_stores *p,
			   const struct pr_store_rankings *r, int64_t build_ms)
{
	struct pr_published_stores fresh = { .rankings = r->rankings, .count = r->count };
	fresh.summaries = calloc(fresh.count + 1, sizeof *fresh.summaries);
	fresh.order = calloc(fresh.count + 1, sizeof *fresh.order);
	if (!fresh.summaries || !fresh.order) {
		stores_clear(&fresh);
		pr_log("store rankings: out of memory");
		return;
	}
	for (uint32_t i = 0; i < fresh.count; i++) {
		pr_ranking_summarize(fresh.rankings[i], &fresh.summaries[i]);
		fresh.order[i] = i;
	}
	qsort_r(fresh.order, fresh.count, sizeof *fresh.order, compare_stores, &fresh);
	fresh.records = r->records;
	fresh.has_watermark = r->has_watermark;
	fresh.watermark_ms = r->watermark_ms;
	fresh.built_ms = pr_server_now_ms();
	fresh.build_ms = build_ms;
	fresh.valid = true;
	stores_clear(p);
	*p = fresh;
	s->ranking_builds++;
}

/* Frees store rankings nobody will answer from. */
static void stores_drop(const struct pr_store_rankings *r)
{
	struct pr_published_stores unused = { .rankings = r->rankings, .count = r->count };
	stores_clear(&unused);
}

/* Starts window w's store rankings beside ingest; whether it did. */
static bool stores_start(struct pr_server *s, enum pr_window w)
{
	int rc = pr_store_build_start(s->engine, w, &s->store_build[w]);
	if (rc == 0)
		s->store_build_began_ms[w] = pr_server_now_ms();
	else if (rc != -ENOTSUP)
		pr_log("store rankings %s: %s", pr_window_name(w), strerror(-rc));
	return rc == 0;
}

/* A build beside ingest of window w's store rankings, if one is out and
 * over: published unless those published already reflect more records. */
static void stores_collect(struct pr_server *s, enum pr_window w)
{
	struct pr_store_build *b = s->store_build[w];
	if (!b || !pr_store_build_done(b))
		return;
	s->store_build[w] = NULL;
	struct pr_store_rankings r;
	if (pr_store_build_finish(b, &r) < 0) {
		pr_log("store rankings %s: out of memory", pr_window_name(w));
		return;
	}
	struct pr_published_stores *p = &s->stores[w];
	if (p->valid && p->records > r.records) {
		stores_drop(&r);
		return;
	}
	stores_publish(s, p, &r, pr_server_now_ms() - s->store_build_began_ms[w]);
	s->store_builds_beside++;
}

/*
 * The store rankings of a window; `need` stores at least (a store seen
 * after the published set forces a rebuild). While feeds stream, stale
 * ones are rebuilt beside ingest (store_build.h) and answers go on citing
 * those published until the new ones are; none to cite yet, client c
 * waits for them (may_wait: NULL, c parked). Otherwise (or forced) they
 * are built here, on a drained engine. NULL also when out of memory.
 */
static const struct pr_published_stores *stores_get(struct pr_server *s, enum pr_window w,
						    bool force, int64_t need, struct pr_client *c)
{
	struct pr_published_stores *p = &s->stores[w];
	stores_collect(s, w);
	bool usable = p->valid && need < (int64_t)p->count;
	if (usable && published_will_do(s, force, p->records, p->built_ms, p->build_ms,
					s->store_build[w] != NULL, stores_start, w))
		return p;
	if (!usable && !force &&
	    wait_for_first(s, c, s->store_build[w] != NULL, stores_start, w, PR_WAIT_STORES))
		return NULL;
	pr_server_drain(s);
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	int64_t began = pr_server_now_ms();
	struct pr_store_rankings r = { .records = st.records,
				       .has_watermark = st.has_watermark,
				       .watermark_ms = st.watermark_ms };
	struct pr_error err = { 0 };
	pr_test_hook_pause("PARETO_BUILD_DELAY_MS"); /* a slow build, for a test */
	if (pr_ranking_build_stores(s->engine, w, &r.rankings, &r.count, &err) < 0) {
		pr_log("store rankings %s: %s", pr_window_name(w), err.message);
		return usable ? p : NULL;
	}
	stores_publish(s, p, &r, pr_server_now_ms() - began);
	return p->valid && need < (int64_t)p->count ? p : NULL;
}

/* Makes l LAPSED's list, made in build_ms. */
static void lapsed_publish(struct pr_server *s, struct pr_lapsed_list *l, int64_t build_ms)
{
	free(s->lapsed.list);
	s->lapsed = *l;
	s->lapsed_valid = true;
	s->lapsed_built_ms = pr_server_now_ms();
	s->lapsed_build_ms = build_ms;
	s->lapsed_lists++;
}

/* Starts LAPSED's list beside ingest (one for every window: w is not
 * used); whether it did. */
static bool lapsed_start(struct pr_server *s, enum pr_window w)
{
	(void)w;
	int rc = pr_lapsed_request_start(s->engine, &s->lapsed_request);
	if (rc == 0)
		s->lapsed_began_ms = pr_server_now_ms();
	else if (rc != -ENOTSUP)
		pr_log("lapsed customers: %s", strerror(-rc));
	return rc == 0;
}

/* A list made beside ingest, if one is out and over: published unless the
 * one published reflects more records. */
static void lapsed_collect(struct pr_server *s)
{
	struct pr_lapsed_request *q = s->lapsed_request;
	if (!q || !pr_lapsed_request_done(q))
		return;
	s->lapsed_request = NULL;
	struct pr_lapsed_list l;
	if (pr_lapsed_request_finish(q, &l) < 0) {
		pr_log("lapsed customers: out of memory");
		return;
	}
	if (s->lapsed_valid && s->lapsed.records > l.records) {
		free(l.list);
		return;
	}
	lapsed_publish(s, &l, pr_server_now_ms() - s->lapsed_began_ms);
	s->lapsed_lists_beside++;
}

/*
 * LAPSED's list, as store rankings are kept (stores_get): while feeds
 * stream, a stale one is made again beside ingest (pr_lapsed_request_*)
 * and answers cite the one published until then, and the first one
 * client c waits for (NULL, c parked); otherwise it is made here on a
 * drained engine. NULL also if out of memory. Kept whole: any LAPSED n
 * takes its first n.
 */
static const struct pr_lapsed_list *lapsed_get(struct pr_server *s, struct pr_client *c)
{
	lapsed_collect(s);
	struct pr_lapsed_list *l = &s->lapsed;
	if (s->lapsed_valid &&
	    published_will_do(s, false, l->records, s->lapsed_built_ms, s->lapsed_build_ms,
			      s->lapsed_request != NULL, lapsed_start, PR_WINDOW_ALL))
		return l;
	if (!s->lapsed_valid && wait_for_first(s, c, s->lapsed_request != NULL, lapsed_start,
					       PR_WINDOW_ALL, PR_WAIT_LAPSED))
		return NULL;
	pr_server_drain(s);
	int64_t began = pr_server_now_ms();
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	struct pr_lapsed_list fresh = { .records = st.records, .has_watermark = st.has_watermark,
					.watermark_ms = st.watermark_ms };
	size_t total;
	pr_test_hook_pause("PARETO_BUILD_DELAY_MS"); /* a slow list, for a test */
	if (pr_engine_lapsed(s->engine, SIZE_MAX, &fresh.list, &fresh.count, &total) < 0)
		return s->lapsed_valid ? l : NULL;
	lapsed_publish(s, &fresh, pr_server_now_ms() - began);
	return l;
}

bool pr_commands_wait_over(struct pr_server *s, struct pr_client *c)
{
	enum pr_window w = c->wait_window;
	switch (c->wait_for) {
	case PR_WAIT_HISTORY:
		return pr_customer_request_done(c->history);
	case PR_WAIT_COMPANY:
		if (!s->ranker)
			return true;
		company_hold(s, w, pr_ranker_take(s->ranker, w));
		return s->company[w] || ranker_failures(s->ranker) != c->wait_mark;
	case PR_WAIT_STORES:
		return !s->store_build[w] || pr_store_build_done(s->store_build[w]);
	case PR_WAIT_LAPSED:
		return !s->lapsed_request || pr_lapsed_request_done(s->lapsed_request);
	}
	return true;
}

/* A ranking, summary and what they reflect, for one window and scope. */
struct view {
	const struct pr_published *company; /* NULL for a store */
	const struct pr_ranking *ranking;
	const struct pr_summary *summary;
	uint64_t records;
	bool has_watermark;
	int64_t watermark_ms;
};

static bool view_get(struct pr_server *s, struct pr_client *c, const struct scope *sc,
		     bool force, struct view *v)
{
	/* No drain: answers read the engine's customer ids, which this thread
	 * may beside the apply threads (the tables are shared); a lookup that
	 * reads more drains (view_find). */
	if (sc->has_store) {
		const struct pr_published_stores *p =
			stores_get(s, sc->window, force, sc->store_index, c);
		if (!p) {
			if (!c->waiting)
				pr_resp_error(&c->out, "ERR out of memory building the store rankings");
			return false;
		}
		v->company = NULL;
		v->ranking = p->rankings[sc->store_index];
		v->summary = &p->summaries[sc->store_index];
		v->records = p->records;
		v->has_watermark = p->has_watermark;
		v->watermark_ms = p->watermark_ms;
	} else {
		const struct pr_published *p = company_get(s, sc->window, force, c);
		if (!p) {
			if (!c->waiting)
				pr_resp_error(&c->out, "ERR out of memory building the ranking");
			return false;
		}
		v->company = p;
		v->ranking = p->ranking;
		v->summary = &p->summary;
		v->records = p->records;
		v->has_watermark = p->has_watermark;
		v->watermark_ms = p->watermark_ms;
	}
	return true;
}

/*
 * Finds a customer in the view's ranking, exactly as of that ranking: a
 * company ranking is indexed as of its build, and a store ranking at its
 * first lookup. Unindexed (out of memory), a store ranking is searched
 * with his revenue now; if it is older, the entry found must be him, else
 * the store rankings are rebuilt. Returns 0 (ranked), -ENOENT (not
 * ranked) or -ENOMEM (reply written).
 */
static int view_find(struct pr_server *s, struct pr_client *c, const struct scope *sc,
		     struct view *v, const char *id, size_t len, struct pr_ranked *out)
{
	if (len == 0 || len > PR_CUSTOMER_MAX_BYTES) {
		memset(out, 0, sizeof *out);
		return -ENOENT;
	}
	if (!v->company) {
		/* A store ranking is indexed by customer at its first lookup:
		 * it then answers as of its records without the engine. Out
		 * of memory, the lookup reads the store's pairs now. */
		struct pr_ranking *r = s->stores[sc->window].rankings[sc->store_index];
		if (r == v->ranking)
			(void)pr_ranking_index(r, NULL);
	}
	bool reads_only_ids = pr_ranking_find_reads_only_ids(v->ranking);
	if (!reads_only_ids)
		pr_server_drain(s); /* it reads revenues now (a store's pairs) */
	if (v->company || reads_only_ids)
		return pr_ranking_find(v->ranking, id, len, out);
	for (int attempt = 0;; attempt++) {
		int rc = pr_ranking_find(v->ranking, id, len, out);
		if (v->records == engine_records(s))
			return rc;
		if (rc == 0 && out->customer_len == len && memcmp(out->customer, id, len) == 0)
			return 0;
		if (rc == -ENOENT) {
			struct pr_customer_info info;
			pr_server_drain(s);
			if (pr_engine_customer(s->engine, id, len, &info) == -ENOENT)
				return -ENOENT; /* never seen: in no ranking, old or new */
		}
		if (attempt)
			return rc == -ESTALE ? -ENOENT : rc; /* cannot happen: a fresh ranking is exact */
		if (!view_get(s, c, sc, true, v))
			return -ENOMEM;
	}
}

/* Parses [WINDOW w] [STORE s] from argument `from` on and gets the view
 * they name; false when an error reply was written. */
static bool scoped_view(struct pr_server *s, struct pr_client *c, const args_t *a, size_t from,
			bool allow_store, struct scope *sc, struct view *v)
{
	return parse_scope(s, c, a, from, allow_store, sc) && view_get(s, c, sc, false, v);
}

/* A customer looked up by RANK, CUSTOMER and SCORE: "id [options]". */
struct lookup {
	struct scope sc;
	struct view v;
	const char *id;
	size_t len;
	struct pr_ranked x;          /* valid if ranked; x.revenue_minor always */
	bool ranked;
	bool known;                  /* the engine has seen him (with_history) */
	struct pr_customer_info info;/* if known: his history now */
};

/* Times a history is read on an apply thread for one request before it is
 * read after a drain instead (history_get). */
#define HISTORY_TRIES 3

/* A test hook: microseconds the server thread sleeps after it parks a
 * client, so that the apply thread has read the history by the time the
 * server looks (PARETO_HISTORY_WAIT_DELAY_US, read once). */
static void history_wait_hook(void)
{
	static long us = -1;
	if (us < 0) {
		const char *hook = getenv("PARETO_HISTORY_WAIT_DELAY_US");
		us = hook && *hook ? strtol(hook, NULL, 10) : 0;
		if (us < 0 || us > 999999)
			us = 0;
	}
	if (us > 0)
		nanosleep(&(struct timespec){ 0, us * 1000 }, NULL);
}

/*
 * The customer's purchase history as of every record accepted before this
 * request. With apply threads it is read on the one that owns him, after
 * those records, while this thread goes on decoding and answering: false
 * then, and the server handles the request again once it is read
 * (pr_server_wait), which finds it in c->history. The ranking the
 * request is answered from is taken again then, and may have moved past
 * the records the history holds: the history is then read again, so that
 * it holds every record of the ranking too (a customer ranked is known);
 * after HISTORY_TRIES, once more after a drain, here.
 */
static bool history_get(struct pr_server *s, struct pr_client *c, struct lookup *l)
{
	if (c->history && pr_customer_request_records(c->history) < l->v.records) {
		pr_customer_request_free(c->history);
		c->history = NULL;
		if (++c->history_tries >= HISTORY_TRIES)
			pr_server_drain(s); /* then the next one is read at once */
	}
	if (!c->history) {
		if (pr_engine_options(s->engine)->apply_threads <= 1)
			pr_server_drain(s); /* its queue is applied on this thread */
		c->history = pr_customer_request_start(s->engine, l->id, l->len);
		if (!c->history) { /* out of memory for the request: read it here */
			pr_server_drain(s);
			c->history_tries = 0;
			l->known = l->len >= 1 && l->len <= PR_CUSTOMER_MAX_BYTES &&
				   pr_engine_customer(s->engine, l->id, l->len, &l->info) == 0;
			return true;
		}
		if (!pr_customer_request_done(c->history)) {
			pr_server_wait(s, c, PR_WAIT_HISTORY, PR_WINDOW_ALL, 0);
			history_wait_hook();
			return false;
		}
	}
	l->known = pr_customer_request_result(c->history, &l->info) == 0;
	pr_customer_request_free(c->history);
	c->history = NULL;
	c->history_tries = 0;
	return true;
}

/* Finds argument 1 in the scope of the options after it, with his history
 * if asked; false when an error reply was written or the history is being
 * read (history_get). */
static bool lookup_customer(struct pr_server *s, struct pr_client *c, const args_t *a,
			    bool allow_store, bool with_history, struct lookup *l)
{
	if (!scoped_view(s, c, a, 2, allow_store, &l->sc, &l->v))
		return false;
	l->id = a->argv[1];
	l->len = a->argv_len[1];
	int rc = view_find(s, c, &l->sc, &l->v, l->id, l->len, &l->x);
	if (rc == -ENOMEM)
		return false;
	l->ranked = rc == 0;
	l->known = false;
	return !with_history || history_get(s, c, l);
}

/* "window" and, for a store, "store" (1 or 2 fields). */
static void f_scope(struct map *m, const struct scope *sc)
{
	f_str(m, "window", pr_window_name(sc->window));
	if (sc->has_store)
		f_bytes(m, "store", sc->store, sc->store_len);
}

static void reply_ranked_list(struct pr_resp_out *o, const struct pr_ranking *r, uint64_t from,
			      uint64_t count)
{
	pr_resp_array(o, count);
	for (uint64_t k = from; k < from + count; k++) {
		struct pr_ranked x;
		pr_ranking_at(r, k, &x);
		struct map m;
		map_begin(&m, o, 6);
		f_uint(&m, "rank", x.rank);
		f_uint(&m, "competition_rank", x.competition_rank);
		f_bytes(&m, "customer", x.customer, x.customer_len);
		f_int(&m, "revenue_minor", x.revenue_minor);
		f_double(&m, "share", x.share);
		f_double(&m, "cumulative_share", x.cumulative_share);
		map_end(&m);
	}
}

static void reply_key_clients(struct pr_resp_out *o, const struct pr_ranking *r,
			      const struct pr_summary *sum)
{
	pr_resp_array(o, sum->key_clients);
	for (uint64_t k = 1; k <= sum->key_clients; k++) {
		struct pr_ranked x;
		pr_ranking_at(r, k, &x);
		struct map m;
		map_begin(&m, o, 3);
		f_bytes(&m, "customer", x.customer, x.customer_len);
		f_int(&m, "revenue_minor", x.revenue_minor);
		f_double(&m, "share", x.share);
		map_end(&m);
	}
}

static void tier_map(struct map *parent, const char *name, const struct pr_tier_figures *t)
{
	struct map m;
	map_begin(&m, key(parent, name), 3);
	f_uint(&m, "customers", t->customers);
	f_int(&m, "revenue_minor", t->revenue_minor);
	f_double(&m, "share", t->share);
	map_end(&m);
}

/* ---- connection commands -------------------------------------------------- */

static void cmd_ping(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	if (a->argc > 2) {
		pr_resp_error(&c->out, "ERR wrong number of arguments for 'ping' command");
		return;
	}
	if (c->channels && c->out.protocol == 2) {
		pr_resp_array(&c->out, 2);
		pr_resp_cstring(&c->out, "pong");
		if (a->argc == 2)
			pr_resp_bulk(&c->out, a->argv[1], a->argv_len[1]);
		else
			pr_resp_cstring(&c->out, "");
	} else if (a->argc == 2) {
		pr_resp_bulk(&c->out, a->argv[1], a->argv_len[1]);
	} else {
		pr_resp_simple(&c->out, "PONG");
	}
}

static void cmd_echo(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	pr_resp_bulk(&c->out, a->argv[1], a->argv_len[1]);
}

static bool valid_client_name(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '!' || p[i] > '~')
			return false;
	return n <= PR_CLIENT_NAME_MAX;
}

static void set_text(char *dst, const char *p, size_t n)
{
	n = n > PR_CLIENT_NAME_MAX ? PR_CLIENT_NAME_MAX : n;
	memcpy(dst, p, n);
	dst[n] = 0;
}

static void cmd_hello(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	int protocol = c->out.protocol;
	size_t i = 1;
	if (a->argc > 1) {
		uint64_t v;
		if (!arg_count(a, 1, &v) || v < 2 || v > 3) {
			pr_resp_error(&c->out, "NOPROTO unsupported protocol version");
			return;
		}
		protocol = (int)v;
		i = 2;
	}
	for (; i < a->argc; i++) {
		if (arg_is(a, i, "AUTH") && i + 2 < a->argc) {
			i += 2; /* no users or passwords: the socket's mode is the access control */
		} else if (arg_is(a, i, "SETNAME") && i + 1 < a->argc) {
			if (!valid_client_name(a->argv[i + 1], a->argv_len[i + 1])) {
				pr_resp_error(&c->out, "ERR Client names cannot contain spaces, "
					      "newlines or special characters.");
				return;
			}
			set_text(c->name, a->argv[i + 1], a->argv_len[i + 1]);
			i++;
		} else {
			pr_resp_error(&c->out, "ERR Syntax error in HELLO option '%.*s'",
				      (int)(a->argv_len[i] > 64 ? 64 : a->argv_len[i]), a->argv[i]);
			return;
		}
	}
	c->out.protocol = protocol;
	struct map m;
	map_begin(&m, &c->out, 7);
	f_str(&m, "server", "pareto");
	f_str(&m, "version", PARETO_DAEMON_VERSION);
	f_int(&m, "proto", protocol);
	f_uint(&m, "id", c->id);
	f_str(&m, "mode", "standalone");
	f_str(&m, "role", "master");
	pr_resp_array(key(&m, "modules"), 0);
	map_end(&m);
	(void)s;
}

static void lower(char *dst, const char *src, size_t size);

static void client_line(struct pr_server *s, const struct pr_client *x, struct text *t)
{
	int64_t now = pr_server_now_ms();
	char cmd[24] = "NULL";
	if (x->last_command)
		lower(cmd, x->last_command->name, sizeof cmd);
	addf(t, "id=%llu addr=%s:0 fd=%d name=%s age=%lld idle=%lld sub=%u cmd=%s resp=%d "
		"qbuf=%zu omem=%zu tot-cmds=%llu lib-name=%s lib-ver=%s\n",
	     (unsigned long long)x->id, s->socket_path, x->fd, x->name,
	     (long long)((now - x->created_ms) / 1000), (long long)((now - x->active_ms) / 1000),
	     x->channels, cmd, x->out.protocol,
	     x->in_len, x->out.len + (x->wlen - x->woff), (unsigned long long)x->commands,
	     x->lib_name, x->lib_ver);
}

static void cmd_client(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	if (arg_is(a, 1, "SETNAME") && a->argc == 3) {
		if (!valid_client_name(a->argv[2], a->argv_len[2])) {
			pr_resp_error(&c->out, "ERR Client names cannot contain spaces, newlines "
				      "or special characters.");
			return;
		}
		set_text(c->name, a->argv[2], a->argv_len[2]);
		pr_resp_simple(&c->out, "OK");
	} else if (arg_is(a, 1, "GETNAME") && a->argc == 2) {
		if (c->name[0])
			pr_resp_cstring(&c->out, c->name);
		else
			pr_resp_null(&c->out);
	} else if (arg_is(a, 1, "SETINFO") && a->argc == 4) {
		if (arg_is(a, 2, "LIB-NAME"))
			set_text(c->lib_name, a->argv[3], a->argv_len[3]);
		else if (arg_is(a, 2, "LIB-VER"))
			set_text(c->lib_ver, a->argv[3], a->argv_len[3]);
		else {
			pr_resp_error(&c->out, "ERR Unrecognized option '%.*s'",
				      (int)(a->argv_len[2] > 64 ? 64 : a->argv_len[2]), a->argv[2]);
			return;
		}
		pr_resp_simple(&c->out, "OK");
	} else if (arg_is(a, 1, "ID") && a->argc == 2) {
		pr_resp_integer(&c->out, (int64_t)c->id);
	} else if ((arg_is(a, 1, "LIST") || arg_is(a, 1, "INFO")) ) {
		bool all = arg_is(a, 1, "LIST");
		struct text t = { 0 };
		for (struct pr_client *x = all ? s->clients : c; x; x = all ? x->next : NULL)
			client_line(s, x, &t);
		if (t.failed)
			pr_resp_error(&c->out, "ERR out of memory");
		else
			pr_resp_bulk(&c->out, t.p ? t.p : "", t.len);
		free(t.p);
	} else if ((arg_is(a, 1, "NO-EVICT") || arg_is(a, 1, "NO-TOUCH")) && a->argc == 3) {
		pr_resp_simple(&c->out, "OK");
	} else {
		pr_resp_error(&c->out, "ERR unknown subcommand or wrong number of arguments for "
			      "'%.*s'. Try CLIENT HELP.",
			      (int)(a->argc > 1 ? (a->argv_len[1] > 64 ? 64 : a->argv_len[1]) : 0),
			      a->argc > 1 ? a->argv[1] : "");
	}
}

static void lower(char *dst, const char *src, size_t size)
{
	size_t i = 0;
	for (; src[i] && i + 1 < size; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[i] = 0;
}

static void command_info(struct pr_resp_out *o, const struct pr_command *cmd)
{
	char name[32];
	lower(name, cmd->name, sizeof name);
	pr_resp_array(o, 10);
	pr_resp_cstring(o, name);
	pr_resp_integer(o, cmd->arity);
	unsigned nflags = 0;
	const char *flags[4];
	flags[nflags++] = cmd->flags & PR_CMD_WRITE ? "write" : "readonly";
	if (cmd->flags & PR_CMD_PUBSUB)
		flags[nflags++] = "pubsub";
	if (cmd->flags & PR_CMD_FAST)
		flags[nflags++] = "fast";
	if (cmd->flags & PR_CMD_ADMIN)
		flags[nflags++] = "admin";
	pr_resp_array(o, nflags);
	for (unsigned i = 0; i < nflags; i++)
		pr_resp_simple(o, flags[i]);
	pr_resp_integer(o, 0);
	pr_resp_integer(o, 0);
	pr_resp_integer(o, 0);
	pr_resp_array(o, 0);
	pr_resp_array(o, 0);
	pr_resp_array(o, 0);
	pr_resp_array(o, 0);
}

static void command_doc(struct pr_resp_out *o, const struct pr_command *cmd)
{
	char summary[256];
	snprintf(summary, sizeof summary, "%s%s%s", cmd->help, cmd->syntax[0] ? " Arguments: " : "",
		 cmd->syntax);
	struct map m;
	map_begin(&m, o, 3);
	f_str(&m, "summary", summary);
	f_str(&m, "since", PARETO_DAEMON_VERSION);
	f_str(&m, "group", "pareto");
	map_end(&m);
}

static void cmd_command(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	size_t count;
	const struct pr_command *table = pr_command_table(&count);
	if (a->argc == 1) {
		pr_resp_array(&c->out, count);
		for (size_t i = 0; i < count; i++)
			command_info(&c->out, &table[i]);
	} else if (arg_is(a, 1, "COUNT") && a->argc == 2) {
		pr_resp_integer(&c->out, (int64_t)count);
	} else if (arg_is(a, 1, "LIST")) {
		pr_resp_array(&c->out, count);
		for (size_t i = 0; i < count; i++) {
			char name[32];
			lower(name, table[i].name, sizeof name);
			pr_resp_cstring(&c->out, name);
		}
	} else if (arg_is(a, 1, "INFO")) {
		if (a->argc == 2) {
			pr_resp_array(&c->out, count);
			for (size_t i = 0; i < count; i++)
				command_info(&c->out, &table[i]);
			return;
		}
		pr_resp_array(&c->out, a->argc - 2);
		for (size_t i = 2; i < a->argc; i++) {
			const struct pr_command *cmd = pr_command_find(a->argv[i], a->argv_len[i]);
			if (cmd)
				command_info(&c->out, cmd);
			else
				pr_resp_null(&c->out);
		}
	} else if (arg_is(a, 1, "DOCS")) {
		size_t n = 0;
		if (a->argc == 2)
			n = count;
		else
			for (size_t i = 2; i < a->argc; i++)
				n += pr_command_find(a->argv[i], a->argv_len[i]) != NULL;
		pr_resp_map(&c->out, n);
		for (size_t i = 0; i < (a->argc == 2 ? count : a->argc - 2); i++) {
			const struct pr_command *cmd =
				a->argc == 2 ? &table[i] : pr_command_find(a->argv[i + 2], a->argv_len[i + 2]);
			if (!cmd)
				continue;
			char name[32];
			lower(name, cmd->name, sizeof name);
			pr_resp_cstring(&c->out, name);
			command_doc(&c->out, cmd);
		}
	} else {
		pr_resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
			      (int)(a->argv_len[1] > 64 ? 64 : a->argv_len[1]), a->argv[1]);
	}
}

static void cmd_config(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	if (arg_is(a, 1, "GET") && a->argc >= 3) {
		char maxclients[24], rank_interval[24], busy_poll[24];
		snprintf(maxclients, sizeof maxclients, "%u", s->opt.max_clients);
		snprintf(busy_poll, sizeof busy_poll, "%u", s->opt.busy_poll_us);
		if (s->opt.rank_interval_auto)
			snprintf(rank_interval, sizeof rank_interval, "auto");
		else
			snprintf(rank_interval, sizeof rank_interval, "%u", s->opt.rank_interval_ms);
		/* What redis-benchmark and friends ask about, and our own limits. */
		const char *const params[][2] = {
			{ "save", "" },
			{ "appendonly", "no" },
			{ "maxclients", maxclients },
			{ "rank-interval-ms", rank_interval },
			{ "busy-poll-us", busy_poll },
			{ "unixsocket", s->socket_path },
		};
		size_t nparams = sizeof params / sizeof params[0];
		bool match[sizeof params / sizeof params[0]] = { 0 };
		size_t n = 0;
		for (size_t i = 2; i < a->argc; i++) {
			char pattern[128];
			arg_text(a, i, pattern, sizeof pattern);
			for (size_t p = 0; p < nparams; p++)
				if (!match[p] && fnmatch(pattern, params[p][0], FNM_CASEFOLD) == 0) {
					match[p] = true;
					n++;
				}
		}
		pr_resp_map(&c->out, n);
		for (size_t p = 0; p < nparams; p++) {
			if (match[p]) {
				pr_resp_cstring(&c->out, params[p][0]);
				pr_resp_cstring(&c->out, params[p][1]);
			}
		}
	} else if (arg_is(a, 1, "RESETSTAT") && a->argc == 2) {
		pr_resp_simple(&c->out, "OK");
	} else if (arg_is(a, 1, "SET")) {
		pr_resp_error(&c->out, "ERR CONFIG SET is not supported: paretod reads its "
			      "configuration at start");
	} else {
		pr_resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
			      (int)(a->argv_len[1] > 64 ? 64 : a->argv_len[1]), a->argv[1]);
	}
}

/* ---- INFO ----------------------------------------------------------------- */

static uint64_t resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool want_section(const args_t *a, const char *name, bool default_on)
{
	if (a->argc < 2)
		return default_on;
	for (size_t i = 1; i < a->argc; i++)
		if (arg_is(a, i, name) || (default_on && (arg_is(a, i, "all") ||
							  arg_is(a, i, "everything") ||
							  arg_is(a, i, "default"))))
			return true;
	return false;
}

static void info_text(struct pr_server *s, const args_t *a, struct text *t)
{
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	struct pr_feed_stats fs;
	pr_server_stats(s, &fs);
	int64_t now = pr_server_now_ms();
	char when[32] = "none";
	if (st.has_watermark)
		pr_time_format(st.watermark_ms, when);
	if (want_section(a, "server", true)) {
		addf(t, "# Server\r\npareto_version:%s\r\nredis_version:7.0.0\r\nprocess_id:%ld\r\n"
			"uptime_in_seconds:%lld\r\nunix_socket:%s\r\nconfig_file:%s\r\n"
			"multiplexing_api:io_uring\r\n\r\n",
		     PARETO_DAEMON_VERSION, (long)getpid(), (long long)((now - s->started_ms) / 1000),
		     s->socket_path, s->opt.config_path ? s->opt.config_path : "");
	}
	if (want_section(a, "ingest", true)) {
		unsigned sources, producers, open;
		pr_server_feed_counts(s, &sources, &producers, &open);
		addf(t, "# Ingest\r\nrecords:%llu\r\nrejected:%llu\r\nrounded:%llu\r\n"
			"watermark:%s\r\nwatermark_ms:%lld\r\ncustomers:%llu\r\nstores:%u\r\n"
			"records_per_sec:%.0f\r\nfeed_bytes:%llu\r\nfeeds:%u\r\nproducers:%u\r\n"
			"feeds_open:%u\r\ningesting:%d\r\ntruncated_disconnects:%llu\r\n"
			"apply_threads:%u\r\n",
		     (unsigned long long)st.records, (unsigned long long)fs.rejected,
		     (unsigned long long)fs.rounded, when,
		     (long long)(st.has_watermark ? st.watermark_ms : 0),
		     (unsigned long long)st.customers, st.stores, s->records_per_sec,
		     (unsigned long long)fs.bytes, sources, producers, open,
		     pr_server_ingesting(s) ? 1 : 0, (unsigned long long)s->truncated_disconnects,
		     pr_engine_options(s->engine)->apply_threads > 1
			     ? pr_engine_options(s->engine)->apply_threads : 1);
		for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
			addf(t, "rejected_%s:%llu\r\n", pr_reject_reason_name(r),
			     (unsigned long long)fs.by_reason[r]);
		addf(t, "\r\n");
	}
	if (want_section(a, "memory", true)) {
		uint64_t rss = resident_bytes();
		addf(t, "# Memory\r\nused_memory_rss:%llu\r\nused_memory_rss_human:%.2fM\r\n\r\n",
		     (unsigned long long)rss, (double)rss / 1048576.0);
	}
	if (want_section(a, "clients", true)) {
		addf(t, "# Clients\r\nconnected_clients:%u\r\nmaxclients:%u\r\npubsub_clients:%u\r\n"
			"total_connections_received:%llu\r\nrejected_connections:%llu\r\n"
			"output_limit_disconnects:%llu\r\nprotocol_errors:%llu\r\n"
			"total_commands_processed:%llu\r\nbusy_poll_us:%u\r\nbusy_polls:%llu\r\n"
			"busy_poll_hits:%llu\r\nblocked_clients:%u\r\nhistory_reads_waited:%llu\r\n"
			"first_builds_waited:%llu\r\n\r\n",
		     s->client_count, s->opt.max_clients, s->subscribers,
		     (unsigned long long)s->connections_total,
		     (unsigned long long)s->rejected_connections,
		     (unsigned long long)s->output_disconnects,
		     (unsigned long long)s->protocol_errors, (unsigned long long)s->commands_total,
		     s->opt.busy_poll_us, (unsigned long long)s->busy_polls,
		     (unsigned long long)s->busy_poll_hits, s->waiting_count,
		     (unsigned long long)s->history_waits, (unsigned long long)s->build_waits);
	}
	if (want_section(a, "ranking", true)) {
		struct pr_ranker_stats rs = { 0 };
		if (s->ranker)
			pr_ranker_stats(s->ranker, &rs);
		company_take_all(s);
		for (int w = 0; w < PR_WINDOW_COUNT; w++)
			stores_collect(s, w);
		lapsed_collect(s);
		/* rank_gap_us: the least time between two batches now, from
		 * PR_RANK_INTERVAL_LEAST_MS to rank_interval_ms if auto. */
		addf(t, "# Ranking\r\nrank_interval_ms:%u\r\nrank_interval_auto:%d\r\n"
			"rank_gap_us:%lld\r\nranking_builds:%llu\r\n"
			"ranker_batches:%llu\r\nranker_staged_cuts:%llu\r\n"
			"ranker_whole_builds:%llu\r\nranker_rebases:%llu\r\n"
			"ranker_failures:%llu\r\nranker_last_step_ms:%lld\r\n"
			"ranker_last_step_us:%lld\r\nstore_builds_beside_ingest:%llu\r\n"
			"lapsed_lists:%llu\r\nlapsed_lists_beside_ingest:%llu\r\n"
			"alert_pushes:%llu\r\n",
		     s->opt.rank_interval_ms, s->opt.rank_interval_auto,
		     (long long)rs.gap_us,
		     (unsigned long long)(s->ranking_builds + rs.steps),
		     (unsigned long long)rs.batches, (unsigned long long)rs.staged_cuts,
		     (unsigned long long)rs.whole,
		     (unsigned long long)rs.rebases, (unsigned long long)rs.failures,
		     (long long)(rs.last_step_us / 1000), (long long)rs.last_step_us,
		     (unsigned long long)s->store_builds_beside,
		     (unsigned long long)s->lapsed_lists,
		     (unsigned long long)s->lapsed_lists_beside,
		     (unsigned long long)s->alerts.pushes);
		/* lag_ms: from the ranker's batch being cut to its publication. */
		for (int w = 0; w < PR_WINDOW_COUNT; w++) {
			const struct pr_published *p = s->company[w];
			if (!p)
				continue;
			addf(t, "ranking_%s:customers=%llu,records=%llu,behind=%llu,age_ms=%lld,lag_ms=%lld\r\n",
			     pr_window_name(w), (unsigned long long)p->summary.customers,
			     (unsigned long long)p->records,
			     (unsigned long long)(st.records - p->records),
			     (long long)(now - p->built_ms), (long long)(p->built_ms - p->cut_ms));
		}
		/* Store rankings and LAPSED's list, made again beside ingest
		 * while feeds stream: how far behind the ones answers use are,
		 * and how long the last took (build_ms). */
		for (int w = 0; w < PR_WINDOW_COUNT; w++) {
			const struct pr_published_stores *p = &s->stores[w];
			if (!p->valid)
				continue;
			addf(t, "stores_%s:stores=%u,records=%llu,behind=%llu,age_ms=%lld,build_ms=%lld\r\n",
			     pr_window_name(w), p->count, (unsigned long long)p->records,
			     (unsigned long long)(st.records - p->records),
			     (long long)(now - p->built_ms), (long long)p->build_ms);
		}
		if (s->lapsed_valid)
			addf(t, "lapsed:count=%zu,records=%llu,behind=%llu,age_ms=%lld,build_ms=%lld\r\n",
			     s->lapsed.count, (unsigned long long)s->lapsed.records,
			     (unsigned long long)(st.records - s->lapsed.records),
			     (long long)(now - s->lapsed_built_ms), (long long)s->lapsed_build_ms);
		addf(t, "\r\n");
	}
	if (want_section(a, "persistence", true)) {
		char text[2048];
		pr_persist_info(s, text, sizeof text);
		addf(t, "%s", text);
	}
	if (want_section(a, "producers", true)) {
		/* Producers that named themselves (producers.h): the record each
		 * is expected to send next, and below which it may forget what
		 * it sent (saved: in the last checkpoint). */
		const struct pr_producers *pt = &s->producers;
		uint64_t duplicates, missing;
		pr_producers_totals(pt, &duplicates, &missing);
		addf(t, "# Producers\r\nnamed_producers:%zu\r\nproducer_duplicates:%llu\r\n"
			"producer_missing:%llu\r\n",
		     pt->count, (unsigned long long)duplicates, (unsigned long long)missing);
		for (size_t i = 0; i < pt->count; i++) {
			const struct pr_producer *p = &pt->items[i];
			addf(t, "producer_%s:next=%llu,saved=%llu,connected=%d,duplicates=%llu,"
				"missing=%llu\r\n",
			     p->name, (unsigned long long)p->next, (unsigned long long)p->saved,
			     p->connected ? 1 : 0, (unsigned long long)p->duplicates,
			     (unsigned long long)p->missing);
		}
		addf(t, "\r\n");
	}
}

static void metric(struct text *t, const char *name, const char *type, const char *help,
		   double value)
{
	addf(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

/* Prometheus text format: base units, counters end in _total, no ids. */
static void metrics_text(struct pr_server *s, struct text *t)
{
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	struct pr_feed_stats fs;
	pr_server_stats(s, &fs);
	unsigned sources, producers, open;
	pr_server_feed_counts(s, &sources, &producers, &open);
	int64_t now = pr_server_now_ms();
	metric(t, "pareto_records_total", "counter", "Records applied to the engine.",
	       (double)st.records);
	addf(t, "# HELP pareto_rejected_lines_total Feed lines rejected, by reason.\n"
		"# TYPE pareto_rejected_lines_total counter\n");
	for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
		addf(t, "pareto_rejected_lines_total{reason=\"%s\"} %llu\n", pr_reject_reason_name(r),
		     (unsigned long long)fs.by_reason[r]);
	metric(t, "pareto_feed_bytes_total", "counter", "Feed bytes decoded.", (double)fs.bytes);
	metric(t, "pareto_customers", "gauge", "Customer ids seen.", (double)st.customers);
	metric(t, "pareto_stores", "gauge", "Store ids seen.", (double)st.stores);
	if (st.has_watermark)
		metric(t, "pareto_watermark_seconds", "gauge",
		       "Largest event time seen, seconds since 1970 UTC.",
		       (double)st.watermark_ms / 1000.0);
	metric(t, "pareto_ingest_records_per_second", "gauge",
	       "Records applied per second over the last second.", s->records_per_sec);
	metric(t, "pareto_feeds_open", "gauge", "Feeds and producers not yet at their end.",
	       (double)open);
	metric(t, "pareto_connected_clients", "gauge", "Client connections.",
	       (double)s->client_count);
	metric(t, "pareto_blocked_clients", "gauge",
	       "Clients waiting for a customer's history or a first ranking made beside ingest.",
	       (double)s->waiting_count);
	metric(t, "pareto_connections_total", "counter", "Client connections accepted.",
	       (double)s->connections_total);
	metric(t, "pareto_rejected_connections_total", "counter",
	       "Connections refused past max-clients.", (double)s->rejected_connections);
	metric(t, "pareto_commands_total", "counter", "Commands processed.",
	       (double)s->commands_total);
	metric(t, "pareto_busy_polls_total", "counter",
	       "Polls for the next request after answering (--busy-poll-us).",
	       (double)s->busy_polls);
	metric(t, "pareto_busy_poll_hits_total", "counter",
	       "Polls that a completion ended before their time ran out.",
	       (double)s->busy_poll_hits);
	metric(t, "pareto_protocol_errors_total", "counter",
	       "Connections closed for malformed or oversized requests.",
	       (double)s->protocol_errors);
	metric(t, "pareto_output_limit_disconnects_total", "counter",
	       "Clients disconnected for not reading their replies.",
	       (double)s->output_disconnects);
	struct pr_ranker_stats rs = { 0 };
	if (s->ranker)
		pr_ranker_stats(s->ranker, &rs);
	company_take_all(s);
	metric(t, "pareto_ranking_builds_total", "counter", "Rankings built or refreshed.",
	       (double)(s->ranking_builds + rs.steps));
	metric(t, "pareto_alert_pushes_total", "counter", "Alert events published.",
	       (double)s->alerts.pushes);
	addf(t, "# HELP pareto_ranking_age_seconds Age of the published company ranking.\n"
		"# TYPE pareto_ranking_age_seconds gauge\n");
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		if (s->company[w])
			addf(t, "pareto_ranking_age_seconds{window=\"%s\"} %.3f\n", pr_window_name(w),
			     (double)(now - s->company[w]->built_ms) / 1000.0);
	metric(t, "pareto_uptime_seconds", "gauge", "Seconds since start.",
	       (double)(now - s->started_ms) / 1000.0);
	metric(t, "pareto_resident_memory_bytes", "gauge", "Resident set size.",
	       (double)resident_bytes());
	char persistence[2048];
	if (pr_persist_metrics(s, persistence, sizeof persistence))
		addf(t, "%s", persistence);
}

char *pr_commands_metrics(struct pr_server *s, size_t *len)
{
	struct text t = { 0 };
	pr_server_drain(s); /* the metrics socket's requests come between feed turns */
	metrics_text(s, &t);
	if (t.failed || !t.p) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}

static void cmd_info(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct text t = { 0 };
	pr_server_drain(s);
	if (a->argc == 2 && arg_is(a, 1, "metrics"))
		metrics_text(s, &t);
	else
		info_text(s, a, &t);
	if (t.failed)
		pr_resp_error(&c->out, "ERR out of memory");
	else
		pr_resp_bulk(&c->out, t.p ? t.p : "", t.len);
	free(t.p);
}

/* ---- queries -------------------------------------------------------------- */

static void cmd_pareto(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct scope sc;
	struct view v;
	if (!scoped_view(s, c, a, 1, true, &sc, &v))
		return;
	const struct pr_summary *sum = v.summary;
	const struct pr_engine_options *eo = pr_engine_options(s->engine);
	struct pr_feed_stats fs;
	pr_server_stats(s, &fs);
	struct map m;
	map_begin(&m, &c->out, 18 + sc.has_store);
	f_meta(&m, v.records, v.has_watermark, v.watermark_ms);
	f_uint(&m, "rejected", fs.rejected);
	f_scope(&m, &sc);
	f_uint(&m, "scale", s->opt.feed.scale);
	f_uint(&m, "customers", sum->customers);
	f_int(&m, "revenue_minor", sum->revenue_minor);
	struct map top;
	map_begin(&top, key(&m, "top_tier"), 4);
	f_double(&top, "fraction", pr_fraction_value(eo->top));
	f_uint(&top, "customers", sum->top.customers);
	f_int(&top, "revenue_minor", sum->top.revenue_minor);
	f_double(&top, "share", sum->top.share);
	map_end(&top);
	f_double(&m, "pareto_point", sum->pareto_point);
	struct map tiers;
	map_begin(&tiers, key(&m, "tiers"), 3);
	tier_map(&tiers, "A", &sum->tiers[0]);
	tier_map(&tiers, "B", &sum->tiers[1]);
	tier_map(&tiers, "C", &sum->tiers[2]);
	map_end(&tiers);
	f_double(&m, "cr1", sum->cr1);
	f_double(&m, "cr5", sum->cr5);
	f_double(&m, "cr10", sum->cr10);
	f_double(&m, "hhi", sum->hhi);
	f_double(&m, "gini", sum->gini);
	f_str(&m, "risk", pr_risk_name(sum->risk));
	reply_key_clients(key(&m, "key_clients"), v.ranking, sum);
	map_end(&m);
}

static void cmd_top(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	uint64_t n;
	struct scope sc;
	struct view v;
	if (!arg_count(a, 1, &n)) {
		pr_resp_error(&c->out, "ERR value is not an integer or out of range");
		return;
	}
	if (!scoped_view(s, c, a, 2, true, &sc, &v))
		return;
	uint64_t count = n < v.summary->customers ? n : v.summary->customers;
	struct map m;
	map_begin(&m, &c->out, 7 + sc.has_store);
	f_meta(&m, v.records, v.has_watermark, v.watermark_ms);
	f_scope(&m, &sc);
	f_uint(&m, "customers", v.summary->customers);
	f_int(&m, "revenue_minor", v.summary->revenue_minor);
	reply_ranked_list(key(&m, "top"), v.ranking, 1, count);
	map_end(&m);
}

/* rank, competition_rank, percentile, tier, revenue_minor, share (6 fields). */
static void ranked_fields(struct map *m, bool ranked, const struct pr_ranked *x)
{
	if (ranked) {
		f_uint(m, "rank", x->rank);
		f_uint(m, "competition_rank", x->competition_rank);
		f_double(m, "percentile", x->percentile);
		f_bytes(m, "tier", &x->tier, 1);
	} else {
		f_null(m, "rank");
		f_null(m, "competition_rank");
		f_null(m, "percentile");
		f_null(m, "tier");
	}
	f_int(m, "revenue_minor", x->revenue_minor);
	f_double(m, "share", ranked ? x->share : 0.0);
}

static void cmd_rank(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct lookup l;
	if (!lookup_customer(s, c, a, true, false, &l))
		return;
	struct map m;
	map_begin(&m, &c->out, 12 + l.sc.has_store);
	f_bytes(&m, "customer", l.id, l.len);
	ranked_fields(&m, l.ranked, &l.x);
	f_uint(&m, "customers", l.v.summary->customers);
	f_scope(&m, &l.sc);
	f_meta(&m, l.v.records, l.v.has_watermark, l.v.watermark_ms);
	map_end(&m);
}

static void cmd_customer(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct lookup l;
	if (!lookup_customer(s, c, a, false, true, &l))
		return;
	const struct pr_customer_info *info = &l.info;
	struct map m;
	map_begin(&m, &c->out, 19);
	f_bytes(&m, "customer", l.id, l.len);
	f_bool(&m, "known", l.known);
	ranked_fields(&m, l.ranked, &l.x);
	f_uint(&m, "customers", l.v.summary->customers);
	f_scope(&m, &l.sc);
	f_meta(&m, l.v.records, l.v.has_watermark, l.v.watermark_ms);
	/* Purchase history: the engine now (it only grows). */
	f_uint(&m, "purchases", l.known ? info->purchases : 0);
	f_uint(&m, "purchase_days", l.known ? info->purchase_days : 0);
	if (l.known) {
		f_time(&m, "first", info->first_ms);
		f_time(&m, "last", info->last_ms);
	} else {
		f_null(&m, "first");
		f_null(&m, "last");
	}
	f_double(&m, "mean_gap_days", l.known ? info->mean_gap_days : 0.0);
	f_bool(&m, "lapsed", l.known && info->lapsed);
	map_end(&m);
}

static void cmd_risk(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct scope sc;
	struct view v;
	if (!scoped_view(s, c, a, 1, true, &sc, &v))
		return;
	const struct pr_summary *sum = v.summary;
	struct map m;
	map_begin(&m, &c->out, 14 + sc.has_store);
	f_meta(&m, v.records, v.has_watermark, v.watermark_ms);
	f_scope(&m, &sc);
	f_uint(&m, "customers", sum->customers);
	f_int(&m, "revenue_minor", sum->revenue_minor);
	f_str(&m, "risk", pr_risk_name(sum->risk));
	f_double(&m, "cr1", sum->cr1);
	f_double(&m, "cr5", sum->cr5);
	f_double(&m, "cr10", sum->cr10);
	f_double(&m, "hhi", sum->hhi);
	f_double(&m, "gini", sum->gini);
	f_uint(&m, "key_client_count", sum->key_clients);
	reply_key_clients(key(&m, "key_clients"), v.ranking, sum);
	map_end(&m);
}

static void cmd_keyclients(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct scope sc;
	struct view v;
	if (!scoped_view(s, c, a, 1, true, &sc, &v))
		return;
	struct map m;
	map_begin(&m, &c->out, 6 + sc.has_store);
	f_meta(&m, v.records, v.has_watermark, v.watermark_ms);
	f_scope(&m, &sc);
	f_double(&m, "key_share", pr_fraction_value(pr_engine_options(s->engine)->key_share));
	reply_key_clients(key(&m, "key_clients"), v.ranking, v.summary);
	map_end(&m);
}

static void cmd_stores(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	uint64_t n = UINT64_MAX;
	size_t from = 1;
	if (a->argc > 1 && arg_count(a, 1, &n))
		from = 2;
	struct scope sc;
	if (!parse_scope(s, c, a, from, false, &sc))
		return;
	const struct pr_published_stores *p = stores_get(s, sc.window, false, -1, c);
	if (!p) {
		if (!c->waiting)
			pr_resp_error(&c->out, "ERR out of memory building the store rankings");
		return;
	}
	uint64_t count = n < p->count ? n : p->count;
	struct map m;
	map_begin(&m, &c->out, 6);
	f_meta(&m, p->records, p->has_watermark, p->watermark_ms);
	f_str(&m, "window", pr_window_name(sc.window));
	f_uint(&m, "store_count", p->count);
	struct pr_resp_out *o = key(&m, "stores");
	pr_resp_array(o, count);
	for (uint64_t i = 0; i < count; i++) {
		uint32_t st = p->order[i], len;
		const struct pr_summary *ss = &p->summaries[st];
		const char *id = pr_engine_store_id(s->engine, st, &len);
		struct map sm;
		map_begin(&sm, o, 8);
		f_bytes(&sm, "store", id, len);
		f_uint(&sm, "customers", ss->customers);
		f_int(&sm, "revenue_minor", ss->revenue_minor);
		f_double(&sm, "cr1", ss->cr1);
		f_double(&sm, "hhi", ss->hhi);
		f_double(&sm, "gini", ss->gini);
		f_str(&sm, "risk", pr_risk_name(ss->risk));
		reply_key_clients(key(&sm, "key_clients"), p->rankings[st], ss);
		map_end(&sm);
	}
	map_end(&m);
}

static void cmd_lapsed(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	uint64_t n;
	if (!arg_count(a, 1, &n)) {
		pr_resp_error(&c->out, "ERR value is not an integer or out of range");
		return;
	}
	const struct pr_lapsed_list *l = lapsed_get(s, c);
	if (!l) {
		if (!c->waiting)
			pr_resp_error(&c->out, "ERR out of memory listing lapsed customers");
		return;
	}
	size_t count = l->count < n ? l->count : (size_t)n;
	struct map m;
	map_begin(&m, &c->out, 5);
	f_meta(&m, l->records, l->has_watermark, l->watermark_ms);
	struct pr_resp_out *o = key(&m, "lapsed");
	pr_resp_array(o, count);
	for (size_t i = 0; i < count; i++) {
		const struct pr_lapsed *x = &l->list[i];
		struct map lm;
		map_begin(&lm, o, 6);
		f_bytes(&lm, "customer", x->customer, x->customer_len);
		f_int(&lm, "revenue_minor", x->revenue_minor);
		f_uint(&lm, "purchases", x->purchases);
		f_uint(&lm, "purchase_days", x->purchase_days);
		f_time(&lm, "last", x->last_ms);
		f_double(&lm, "mean_gap_days", x->mean_gap_days);
		map_end(&lm);
	}
	f_uint(&m, "lapsed_total", l->count);
	map_end(&m);
}

/* Whether ranks 1..key_clients of a ranking hold this id (at most a few). */
static bool is_key_client(const struct pr_ranking *r, const struct pr_summary *sum,
			  const char *id, size_t len)
{
	for (uint64_t k = 1; k <= sum->key_clients; k++) {
		struct pr_ranked x;
		pr_ranking_at(r, k, &x);
		if (x.customer_len == len && memcmp(x.customer, id, len) == 0)
			return true;
	}
	return false;
}

static void cmd_score(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	struct lookup l;
	if (!lookup_customer(s, c, a, false, true, &l))
		return;
	const char *id = l.id;
	size_t len = l.len;
	bool ranked = l.ranked, known = l.known;
	const struct pr_ranked *x = &l.x;
	const struct pr_summary *sum = l.v.summary;
	const struct pr_engine_options *eo = pr_engine_options(s->engine);

	/* Risk flags: what losing this customer would cost. */
	const char *flags[8];
	size_t nflags = 0;
	if (ranked && x->rank <= sum->key_clients)
		flags[nflags++] = "key_client";
	if (ranked && x->rank == 1 && sum->risk >= PR_RISK_ELEVATED)
		flags[nflags++] = sum->risk == PR_RISK_MONO ? "mono_client"
				: sum->risk == PR_RISK_CRITICAL ? "critical_dependency"
				: sum->risk == PR_RISK_HIGH ? "high_dependency"
								  : "elevated_dependency";
	/* Stores where he is a key client: the few top ranks of each store. */
	const struct pr_published_stores *p =
		known ? stores_get(s, l.sc.window, false, -1, c) : NULL;
	if (c->waiting)
		return; /* for the first store rankings: SCORE is asked again then */
	uint32_t key_stores = 0;
	for (uint32_t st = 0; p && st < p->count; st++)
		key_stores += is_key_client(p->rankings[st], &p->summaries[st], id, len);
	if (key_stores)
		flags[nflags++] = "store_key_client";
	if (known && l.info.lapsed)
		flags[nflags++] = "lapsed";

	const struct pr_tier_benefit *b = ranked ? &s->opt.benefits[x->tier - 'A'] : NULL;
	struct map m;
	map_begin(&m, &c->out, 18);
	f_bytes(&m, "customer", id, len);
	f_bool(&m, "known", known);
	ranked_fields(&m, ranked, x);
	f_double(&m, "discount_percent", b ? b->discount_centi / 100.0 : 0.0);
	f_double(&m, "cashback_percent", b ? b->cashback_centi / 100.0 : 0.0);
	f_double(&m, "key_share", pr_fraction_value(eo->key_share));
	struct pr_resp_out *o = key(&m, "risk_flags");
	pr_resp_array(o, nflags);
	for (size_t i = 0; i < nflags; i++)
		pr_resp_cstring(o, flags[i]);
	o = key(&m, "key_client_stores");
	pr_resp_array(o, key_stores);
	for (uint32_t st = 0; p && st < p->count; st++) {
		if (is_key_client(p->rankings[st], &p->summaries[st], id, len)) {
			uint32_t slen;
			const char *sid = pr_engine_store_id(s->engine, st, &slen);
			pr_resp_bulk(o, sid, slen);
		}
	}
	/* The store flags come from the store rankings, which may cite other
	 * records than the company's while feeds stream: they say which. */
	if (p)
		f_uint(&m, "stores_records", p->records);
	else
		f_null(&m, "stores_records");
	f_scope(&m, &l.sc);
	f_meta(&m, l.v.records, l.v.has_watermark, l.v.watermark_ms);
	map_end(&m);
}

static void alerts_after_ingest(struct pr_server *s, uint64_t before,
				const struct pr_stores_touched *t);

static void cmd_ingest(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	uint64_t accepted = 0, rejected = 0, before = engine_records(s);
	struct pr_error err = { 0 };
	struct pr_stores_touched touched = { 0 };
	int rc = pr_server_ingest_lines(s, a->argv + 1, a->argv_len + 1, a->argc - 1, &accepted,
					&rejected, s->subscribers ? &touched : NULL, &err);
	if (rc < 0) {
		free(touched.touched);
		pr_resp_error(&c->out, "ERR %s", err.message);
		return;
	}
	/* Counted as they were accepted (applied or not yet). */
	const struct pr_engine *e = s->engine;
	struct map m;
	map_begin(&m, &c->out, 5);
	f_uint(&m, "accepted", accepted);
	f_uint(&m, "rejected", rejected);
	f_meta(&m, e->records, e->has_watermark, e->watermark_ms);
	map_end(&m);
	/* Subscribers hear about what this INGEST changed before its sender
	 * can ask anything else. */
	if (accepted)
		alerts_after_ingest(s, before, &touched);
	free(touched.touched);
}

/* ---- pub/sub and alerts --------------------------------------------------- */

static int channel_index(const struct pr_client *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < c->channels; i++)
		if (strlen(c->channel[i]) == len && memcmp(c->channel[i], name, len) == 0)
			return (int)i;
	return -1;
}

static void subscription_reply(struct pr_client *c, const char *kind, const char *name,
			       size_t len, bool null_name)
{
	pr_resp_push(&c->out, 3);
	pr_resp_cstring(&c->out, kind);
	if (null_name)
		pr_resp_null(&c->out);
	else
		pr_resp_bulk(&c->out, name, len);
	pr_resp_integer(&c->out, c->channels);
}

static void cmd_subscribe(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	for (size_t i = 1; i < a->argc; i++) {
		const char *name = a->argv[i];
		size_t len = a->argv_len[i];
		if (channel_index(c, name, len) < 0) {
			char *copy;
			if (c->channels == PR_CLIENT_CHANNELS_MAX || !(copy = strndup(name, len))) {
				pr_resp_error(&c->out, "ERR too many channels (at most %d)",
					      PR_CLIENT_CHANNELS_MAX);
				return;
			}
			c->channel[c->channels++] = copy;
			if (len == 6 && memcmp(name, "alerts", 6) == 0 && s->subscribers++ == 0) {
				/* The first subscriber: start from what holds now, so
				 * that only changes from here on are pushed. */
				s->alerts.baseline = false;
				pr_commands_alerts(s, true);
			}
		}
		subscription_reply(c, "subscribe", name, len, false);
	}
}

static void unsubscribe_one(struct pr_server *s, struct pr_client *c, unsigned i)
{
	if (strcmp(c->channel[i], "alerts") == 0)
		s->subscribers--;
	free(c->channel[i]);
	c->channel[i] = c->channel[--c->channels];
}

static void cmd_unsubscribe(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	if (a->argc == 1) {
		if (c->channels == 0)
			subscription_reply(c, "unsubscribe", NULL, 0, true);
		while (c->channels) {
			char name[256];
			snprintf(name, sizeof name, "%s", c->channel[c->channels - 1]);
			unsubscribe_one(s, c, c->channels - 1);
			subscription_reply(c, "unsubscribe", name, strlen(name), false);
		}
		return;
	}
	for (size_t i = 1; i < a->argc; i++) {
		int k = channel_index(c, a->argv[i], a->argv_len[i]);
		if (k >= 0)
			unsubscribe_one(s, c, (unsigned)k);
		subscription_reply(c, "unsubscribe", a->argv[i], a->argv_len[i], false);
	}
}

void pr_commands_unsubscribe_all(struct pr_server *s, struct pr_client *c)
{
	while (c->channels)
		unsubscribe_one(s, c, c->channels - 1);
}

static void json_string(struct text *t, const char *p, size_t n)
{
	addf(t, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '"' || ch == '\\')
			addf(t, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			addf(t, "\\u%04x", ch);
		else
			addf(t, "%c", ch);
	}
	addf(t, "\"");
}

/* Publishes one alert event (a JSON object) on the "alerts" channel. */
static void publish(struct pr_server *s, const struct text *event)
{
	s->alerts.pushes++;
	for (struct pr_client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (channel_index(c, "alerts", 6) < 0)
			continue;
		pr_resp_push(&c->out, 3);
		pr_resp_cstring(&c->out, "message");
		pr_resp_cstring(&c->out, "alerts");
		pr_resp_bulk(&c->out, event->p, event->len);
		pr_server_flush(s, c);
	}
}

/* What a scope's rankings reflect: the records and watermark they cite. */
struct alert_basis {
	uint64_t records;
	bool has_watermark;
	int64_t watermark_ms;
};

static void event_head(struct pr_server *s, struct text *t, const char *event,
		       const char *store, uint32_t store_len, const struct alert_basis *st)
{
	addf(t, "{\"event\":\"%s\",\"scope\":\"%s\",", event, store ? "store" : "company");
	if (store) {
		addf(t, "\"store\":");
		json_string(t, store, store_len);
		addf(t, ",");
	}
	char when[32] = "";
	if (st->has_watermark)
		pr_time_format(st->watermark_ms, when);
	addf(t, "\"window\":\"%s\",\"records\":%llu,\"watermark\":\"%s\"",
	     pr_window_name(s->opt.alert_window), (unsigned long long)st->records, when);
}

static void scope_free(struct pr_alert_scope *sc)
{
	for (uint32_t i = 0; i < sc->key_count; i++)
		free(sc->key_ids[i]);
	free(sc->key_ids);
	free(sc->key_lens);
	memset(sc, 0, sizeof *sc);
}

static bool scope_has(const struct pr_alert_scope *sc, const char *id, uint32_t len)
{
	for (uint32_t i = 0; i < sc->key_count; i++)
		if (sc->key_lens[i] == len && memcmp(sc->key_ids[i], id, len) == 0)
			return true;
	return false;
}

/* Compares a scope's key clients and risk with what was last told, pushes
 * the differences (if `push`), and remembers the new state. A store
 * ranking comes as `own` too, to be indexed if a client it no longer
 * holds as key must be looked up (view_find). */
static void scope_update(struct pr_server *s, struct pr_alert_scope *sc,
			 const struct pr_ranking *r, struct pr_ranking *own,
			 const struct pr_summary *sum, const char *store, uint32_t store_len,
			 const struct alert_basis *basis, bool push)
{
	struct pr_alert_scope now = { 0 };
	uint32_t n = sum->key_clients < ALERT_KEYS_MAX ? (uint32_t)sum->key_clients : ALERT_KEYS_MAX;
	now.risk = sum->risk;
	now.key_ids = calloc(n + 1, sizeof *now.key_ids);
	now.key_lens = calloc(n + 1, sizeof *now.key_lens);
	if (!now.key_ids || !now.key_lens) {
		scope_free(&now);
		return;
	}
	for (uint32_t k = 0; k < n; k++) {
		struct pr_ranked x;
		pr_ranking_at(r, k + 1, &x);
		if (!(now.key_ids[k] = malloc(x.customer_len ? x.customer_len : 1)))
			break;
		memcpy(now.key_ids[k], x.customer, x.customer_len);
		now.key_lens[k] = x.customer_len;
		now.key_count++;
		if (push && !scope_has(sc, x.customer, x.customer_len)) {
			struct text t = { 0 };
			event_head(s, &t, "key_client_added", store, store_len, basis);
			addf(&t, ",\"customer\":");
			json_string(&t, x.customer, x.customer_len);
			addf(&t, ",\"revenue_minor\":%lld,\"share\":%.15g}",
			     (long long)x.revenue_minor, x.share);
			if (!t.failed)
				publish(s, &t);
			free(t.p);
		}
	}
	for (uint32_t i = 0; push && i < sc->key_count; i++) {
		if (scope_has(&now, sc->key_ids[i], sc->key_lens[i]))
			continue;
		struct pr_ranked x = { 0 };
		struct text t = { 0 };
		event_head(s, &t, "key_client_removed", store, store_len, basis);
		addf(&t, ",\"customer\":");
		json_string(&t, sc->key_ids[i], sc->key_lens[i]);
		if (own)
			(void)pr_ranking_index(own, NULL);
		/* (Unindexed, out of memory: no lookup, which would read the
		 * shards beside the apply threads.) */
		bool ranked = pr_ranking_find_reads_only_ids(r) &&
			      pr_ranking_find(r, sc->key_ids[i], sc->key_lens[i], &x) == 0;
		addf(&t, ",\"revenue_minor\":%lld,\"share\":%.15g}", (long long)x.revenue_minor,
		     ranked ? x.share : 0.0);
		if (!t.failed)
			publish(s, &t);
		free(t.p);
	}
	if (push && sc->risk != now.risk) {
		struct text t = { 0 };
		event_head(s, &t, "risk_changed", store, store_len, basis);
		addf(&t, ",\"from\":\"%s\",\"to\":\"%s\",\"cr1\":%.15g}", pr_risk_name(sc->risk),
		     pr_risk_name(now.risk), sum->cr1);
		if (!t.failed)
			publish(s, &t);
		free(t.p);
	}
	scope_free(sc);
	now.records = basis->records;
	*sc = now;
}

/* The company's scope from its published ranking p. */
static void alerts_company(struct pr_server *s, const struct pr_published *p, bool push)
{
	struct alert_basis basis = { p->records, p->has_watermark, p->watermark_ms };
	scope_update(s, &s->alerts.company, p->ranking, NULL, &p->summary, NULL, 0, &basis, push);
	s->alerts.company_records = p->records;
}

/* A subscriber that does not read is cut off like any slow reader. */
static void drop_slow_subscribers(struct pr_server *s)
{
	for (struct pr_client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (c->out.overflow || c->out.len + (c->wlen - c->woff) > s->opt.max_output_bytes) {
			s->output_disconnects++;
			pr_log("client %llu: more than %zu bytes of pushes unread, disconnecting",
			       (unsigned long long)c->id, s->opt.max_output_bytes);
			pr_server_disconnect(s, c);
		}
	}
}

/* Room for the scopes of `count` stores. 0 or -ENOMEM. */
static int alerts_grow(struct pr_alerts *al, uint32_t count)
{
	struct pr_alert_scope *bigger = realloc(al->stores, count * sizeof *bigger);
	if (!bigger)
		return -ENOMEM;
	memset(bigger + al->store_count, 0, (count - al->store_count) * sizeof *bigger);
	al->stores = bigger;
	al->store_count = count;
	return 0;
}

/* Every store's scope from the published store rankings p (but those told
 * of newer records already). 0 or -ENOMEM. */
static int alerts_stores(struct pr_server *s, const struct pr_published_stores *p, bool push)
{
	struct pr_alerts *al = &s->alerts;
	if (p->count > al->store_count && alerts_grow(al, p->count) < 0)
		return -ENOMEM;
	struct alert_basis basis = { p->records, p->has_watermark, p->watermark_ms };
	for (uint32_t i = 0; i < p->count; i++) {
		/* Told of newer records already (after an INGEST, below): these
		 * would take it back. */
		if (al->stores[i].records > p->records)
			continue;
		uint32_t len;
		const char *id = pr_engine_store_id(s->engine, i, &len);
		scope_update(s, &al->stores[i], p->rankings[i], p->rankings[i], &p->summaries[i], id,
			     len, &basis, push);
	}
	al->stores_records = p->records;
	return 0;
}

/*
 * The alerts an INGEST's records may cause, told before its reply goes
 * out (its sender must not hear of a change after its subscribers do), so
 * exactly, after a drain. Only the company and the stores its records
 * named can have changed by them: those are evaluated, the stores' from
 * rankings of just them (pr_ranking_build_some_stores: a pass over the
 * pairs, nothing else sorted). Before, every store's ranking was built
 * for every INGEST: 83 ms each at 693K customers. When everything before
 * the INGEST had been evaluated, everything is now. The first subscriber,
 * a calendar window (an INGEST may move its periods for every store) or a
 * marking that ran out of memory evaluate every store, as before.
 */
static void alerts_after_ingest(struct pr_server *s, uint64_t before,
				const struct pr_stores_touched *t)
{
	struct pr_alerts *al = &s->alerts;
	enum pr_window w = s->opt.alert_window;
	if (!s->subscribers || !al->baseline || w != PR_WINDOW_ALL || t->failed) {
		pr_commands_alerts(s, true);
		return;
	}
	pr_server_drain(s); /* (it may uncount records it could not apply) */
	const struct pr_engine *e = s->engine;
	bool covered = al->stores_records == before;
	const struct pr_published *company = company_get(s, w, false, NULL);
	if (company)
		alerts_company(s, company, true);
	uint32_t stores = e->stores.count;
	uint8_t *only = calloc(stores + 1, 1);
	struct pr_ranking **rankings = NULL;
	uint32_t count = 0;
	for (uint32_t i = 0; only && i < stores && i < t->count; i++)
		only[i] = t->touched[i];
	if (!only || pr_ranking_build_some_stores(e, w, only, &rankings, &count, NULL) < 0 ||
	    (count > al->store_count && alerts_grow(al, count) < 0)) {
		free(only);
		if (rankings)
			for (uint32_t i = 0; i < count; i++)
				pr_ranking_destroy(rankings[i]);
		free(rankings);
		pr_commands_alerts(s, true);
		return;
	}
	struct alert_basis basis = { e->records, e->has_watermark, e->watermark_ms };
	for (uint32_t i = 0; i < count; i++) {
		if (!rankings[i])
			continue;
		struct pr_summary sum;
		pr_ranking_summarize(rankings[i], &sum);
		uint32_t len;
		const char *id = pr_engine_store_id(e, i, &len);
		scope_update(s, &al->stores[i], rankings[i], rankings[i], &sum, id, len, &basis, true);
		pr_ranking_destroy(rankings[i]);
	}
	free(rankings);
	free(only);
	if (covered)
		al->stores_records = e->records;
	drop_slow_subscribers(s);
}

/*
 * Pushes what changed since the subscribers were last told. With `now`
 * (after INGEST, for a first subscriber) or when no feed streams, from
 * rankings of every record counted (a drain, store rankings built here;
 * the company's as company_get gives it).
 * While feeds stream, every rank interval at most, from the rankings
 * published since: the ranker's, and the store rankings made again beside
 * ingest (stores_get), each scope when its rankings cite more records;
 * every push cites the records of the rankings it comes from. So alerts
 * do not stop ingest, and a change that is undone before a ranking shows
 * it is not told (as between two evaluations before).
 */
int pr_commands_alerts(struct pr_server *s, bool now)
{
	struct pr_alerts *al = &s->alerts;
	if (!s->subscribers) {
		al->baseline = false;
		return -1;
	}
	uint64_t records = engine_records(s);
	if (al->baseline && al->company_records == records && al->stores_records == records)
		return -1;
	int64_t t = pr_server_now_ms();
	enum pr_window w = s->opt.alert_window;
	if (!now && al->baseline && pr_server_ingesting(s)) {
		if (t - al->evaluated_ms < (int64_t)s->opt.rank_interval_ms)
			return (int)(s->opt.rank_interval_ms - (t - al->evaluated_ms));
		al->evaluated_ms = t;
		const struct pr_published *company = company_get(s, w, false, NULL);
		if (company && company->records > al->company_records)
			alerts_company(s, company, true);
		const struct pr_published_stores *stores = stores_get(s, w, false, -1, NULL);
		if (stores && stores->records > al->stores_records)
			(void)alerts_stores(s, stores, true);
	} else {
		pr_server_drain(s); /* (it may uncount records it could not apply) */
		const struct pr_published *company = company_get(s, w, false, NULL);
		const struct pr_published_stores *stores = stores_get(s, w, true, -1, NULL);
		if (!company || !stores)
			return -1;
		bool push = al->baseline;
		alerts_company(s, company, push);
		if (alerts_stores(s, stores, push) < 0)
			return -1;
		al->baseline = true;
		al->evaluated_ms = t;
	}
	drop_slow_subscribers(s);
	return -1;
}

void pr_commands_free(struct pr_server *s)
{
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		pr_published_release(s->company[w]);
		s->company[w] = NULL;
		/* A build still out is waited for (its thread joined), not
		 * published. */
		struct pr_store_rankings r;
		if (s->store_build[w] && pr_store_build_finish(s->store_build[w], &r) == 0)
			stores_drop(&r);
		s->store_build[w] = NULL;
		stores_clear(&s->stores[w]);
	}
	struct pr_lapsed_list unused;
	if (s->lapsed_request && pr_lapsed_request_finish(s->lapsed_request, &unused) == 0)
		free(unused.list);
	s->lapsed_request = NULL;
	free(s->lapsed.list);
	s->lapsed = (struct pr_lapsed_list){ 0 };
	s->lapsed_valid = false;
	pr_ranker_destroy(s->ranker);
	s->ranker = NULL;
	scope_free(&s->alerts.company);
	for (uint32_t i = 0; i < s->alerts.store_count; i++)
		scope_free(&s->alerts.stores[i]);
	free(s->alerts.stores);
	s->alerts.stores = NULL;
	s->alerts.store_count = 0;
}

/* ---- session -------------------------------------------------------------- */

static void cmd_reset(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)a;
	pr_commands_unsubscribe_all(s, c);
	c->out.protocol = 2;
	c->name[0] = 0;
	pr_resp_simple(&c->out, "RESET");
}

static void cmd_quit(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	(void)a;
	pr_resp_simple(&c->out, "OK");
	c->close_after_write = true;
}

static void cmd_shutdown(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	if (a->argc > 1 && arg_is(a, 1, "SAVE") && !s->opt.checkpoint_path) {
		pr_resp_error(&c->out, "ERR SHUTDOWN SAVE: no checkpoint file (start paretod with "
			      "--checkpoint PATH); not stopping");
		return;
	}
	pr_log("client %llu: SHUTDOWN", (unsigned long long)c->id);
	if (a->argc > 1 && arg_is(a, 1, "NOSAVE"))
		pr_persist_skip_final(s); /* else the checkpoint at stop, as Redis' SAVE */
	pr_server_stop(s);
	/* Like Redis: no reply; the connection closes when the server does. */
}

static void cmd_select(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	if (a->argv_len[1] == 1 && a->argv[1][0] == '0')
		pr_resp_simple(&c->out, "OK");
	else
		pr_resp_error(&c->out, "ERR DB index is out of range");
}

static void cmd_help(struct pr_server *s, struct pr_client *c, const args_t *a)
{
	(void)s;
	(void)a;
	size_t count;
	const struct pr_command *table = pr_command_table(&count);
	pr_resp_array(&c->out, count);
	for (size_t i = 0; i < count; i++) {
		char line[320];
		snprintf(line, sizeof line, "%s%s%s - %s", table[i].name, table[i].syntax[0] ? " " : "",
			 table[i].syntax, table[i].help);
		pr_resp_cstring(&c->out, line);
	}
}

/* ---- the table ------------------------------------------------------------ */

static const struct pr_command commands[] = {
	{ "PING", -1, PR_CMD_PUBSUB | PR_CMD_FAST, cmd_ping, "[message]",
	  "Replies PONG, or the message." },
	{ "ECHO", 2, PR_CMD_FAST, cmd_echo, "message", "Replies the message." },
	{ "HELLO", -1, PR_CMD_FAST, cmd_hello, "[2|3 [AUTH user pass] [SETNAME name]]",
	  "Chooses RESP2 or RESP3; replies server information." },
	{ "CLIENT", -2, 0, cmd_client, "SETNAME name|GETNAME|SETINFO attr value|ID|LIST|INFO",
	  "Connection names and the list of connections." },
	{ "COMMAND", -1, 0, cmd_command, "[COUNT|LIST|INFO [name...]|DOCS [name...]]",
	  "Describes the commands." },
	{ "CONFIG", -2, 0, cmd_config, "GET pattern...|RESETSTAT",
	  "Reads configuration values (save and appendonly for Redis tools)." },
	{ "INFO", -1, 0, cmd_info, "[server|ingest|memory|clients|ranking|persistence|metrics]",
	  "Server state as field:value lines; 'metrics' in Prometheus text format." },
	{ "CUSTOMER", -2, PR_CMD_FAST, cmd_customer, "id [WINDOW w]",
	  "Revenue, purchases, first/last purchase, rank, percentile, tier, share and lapsed flag of a customer." },
	{ "RANK", -2, PR_CMD_FAST, cmd_rank, "id [WINDOW w] [STORE s]",
	  "Rank (ties by id) and competition rank of a customer." },
	{ "TOP", -2, 0, cmd_top, "n [WINDOW w] [STORE s]", "The n best customers by revenue." },
	{ "PARETO", -1, 0, cmd_pareto, "[WINDOW w] [STORE s]",
	  "The report's summary: customers, revenue, top tier, Pareto point, ABC tiers, CR1/5/10, HHI, Gini, risk, key clients." },
	{ "RISK", -1, 0, cmd_risk, "[WINDOW w] [STORE s]",
	  "Concentration risk of the company or of one store." },
	{ "KEYCLIENTS", -1, 0, cmd_keyclients, "[WINDOW w] [STORE s]",
	  "Customers with a share of at least the key share (10%)." },
	{ "STORES", -1, 0, cmd_stores, "[n] [WINDOW w]", "Stores, riskiest first." },
	{ "LAPSED", 2, 0, cmd_lapsed, "n", "The n largest lapsed regulars." },
	{ "SCORE", -2, PR_CMD_FAST, cmd_score, "id [WINDOW w]",
	  "Checkout scoring: tier, percentile, risk flags and the tier's loyalty benefit." },
	{ "INGEST", -2, PR_CMD_WRITE, cmd_ingest, "line [line...]",
	  "Appends CSV records (ts,customer_id,store_id,amount; no header)." },
	{ "SUBSCRIBE", -2, PR_CMD_PUBSUB, cmd_subscribe, "alerts",
	  "Pushes key-client and risk-level changes." },
	{ "UNSUBSCRIBE", -1, PR_CMD_PUBSUB, cmd_unsubscribe, "[channel...]",
	  "Stops the pushes." },
	{ "RESET", 1, PR_CMD_PUBSUB | PR_CMD_FAST, cmd_reset, "",
	  "Back to RESP2, no subscriptions, no name." },
	{ "QUIT", -1, PR_CMD_PUBSUB | PR_CMD_FAST, cmd_quit, "", "Closes the connection." },
	{ "SELECT", 2, PR_CMD_FAST, cmd_select, "0", "Database 0 is the only one." },
	{ "SAVE", 1, PR_CMD_ADMIN, pr_persist_command_save, "",
	  "Writes a checkpoint (--checkpoint) now; +OK once it is in place." },
	{ "BGSAVE", 1, PR_CMD_ADMIN, pr_persist_command_bgsave, "",
	  "Starts writing a checkpoint beside the answers; INFO persistence tells when it is done." },
	{ "SHUTDOWN", -1, PR_CMD_ADMIN, cmd_shutdown, "[NOSAVE|SAVE]",
	  "Stops the server after a checkpoint (none with NOSAVE) and removes its socket." },
	{ "HELP", 1, 0, cmd_help, "", "This list." },
};

const struct pr_command *pr_command_table(size_t *count)
{
	*count = sizeof commands / sizeof commands[0];
	return commands;
}

const struct pr_command *pr_command_find(const char *name, size_t len)
{
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].name[0] == (name[0] & ~0x20) && /* names are upper case letters */
		    strlen(commands[i].name) == len && strncasecmp(commands[i].name, name, len) == 0)
			return &commands[i];
	return NULL;
}

void pr_command_execute(struct pr_server *s, struct pr_client *c, const struct pr_resp_command *cmd)
{
	if (cmd->argc == 0)
		return;
	const struct pr_command *command = pr_command_find(cmd->argv[0], cmd->argv_len[0]);
	if (!command) {
		char args[200];
		size_t n = 0;
		args[0] = 0;
		for (size_t i = 1; i < cmd->argc && n < sizeof args - 1; i++)
			n += (size_t)snprintf(args + n, sizeof args - n, "'%.*s' ",
					      (int)(cmd->argv_len[i] > 64 ? 64 : cmd->argv_len[i]),
					      cmd->argv[i]);
		pr_resp_error(&c->out, "ERR unknown command '%.*s', with args beginning with: %s",
			      (int)(cmd->argv_len[0] > 64 ? 64 : cmd->argv_len[0]), cmd->argv[0], args);
		return;
	}
	c->last_command = command;
	bool bad_arity = command->arity > 0 ? cmd->argc != (size_t)command->arity
					    : cmd->argc < (size_t)-command->arity;
	bool not_subscribed_mode = c->channels && c->out.protocol == 2 &&
				   !(command->flags & PR_CMD_PUBSUB);
	if (bad_arity || not_subscribed_mode) {
		char name[24];
		lower(name, command->name, sizeof name);
		if (bad_arity)
			pr_resp_error(&c->out, "ERR wrong number of arguments for '%s' command", name);
		else
			pr_resp_error(&c->out, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
				      "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
				      "context", name);
		return;
	}
	command->handler(s, c, cmd);
}
