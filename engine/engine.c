/*
 * engine.c - applying records to the aggregates; see pareto/engine.h and
 * engine_internal.h.
 *
 * Why bulk mode: the tables of a million customers span hundreds of
 * megabytes, and a record applied at once costs several cache and TLB
 * misses (about 150 ns each on a VM). Staged per shard and applied shard by
 * shard, the same records find that shard's few megabytes of tables in
 * cache, and the staging itself is sequential writes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "timeparse.h"

/* Event times must lie in years 0..9999 so that days and periods fit. */
#define TS_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999Z */

/* Staged bytes past which a bulk load applies what it holds. */
#define STAGED_LIMIT_BYTES ((size_t)1 << 30)

/* A record waiting in a shard's staging buffer; the id follows, padded to 8. */
struct staged_record {
	uint64_t hash;
	int64_t ts_ms;
	int64_t amount_minor;
	uint32_t store;
	uint32_t customer_len;
};

void pr_engine_options_init(struct pr_engine_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->customers_hint = 1 << 16;
	opt->top = (struct pr_fraction){ 1, 5 };
	opt->tier_a = (struct pr_fraction){ 1, 5 };
	opt->tier_b = (struct pr_fraction){ 1, 2 };
	opt->pareto_target = (struct pr_fraction){ 4, 5 };
	opt->key_share = (struct pr_fraction){ 1, 10 };
	opt->lapsed_min_days = 3;
	opt->lapsed_gap_factor = (struct pr_fraction){ 3, 1 };
	opt->lapsed_min_idle_days = 30;
	opt->threads = 1;
}

int pr_engine_create(struct pr_engine **out, const struct pr_engine_options *opt,
		     struct pr_error *err)
{
	struct pr_engine *e = calloc(1, sizeof *e);
	if (!e)
		return pr_error_set(err, -ENOMEM, "out of memory creating the engine");
	e->opt = *opt;
	uint64_t per_shard = opt->customers_hint / PR_SHARDS + 1;
	int rc = pr_id_table_init(&e->stores, 64, 8, NULL);
	for (uint32_t s = 0; s < PR_SHARDS && rc == 0; s++) {
		struct shard *sh = &e->shards[s];
		rc = pr_id_table_init(&sh->customers, per_shard,
				      sizeof(struct customer_aggregate), opt->hash);
		if (rc == 0)
			rc = pr_pair_table_init(&sh->pairs, per_shard,
						sizeof(struct pair_aggregate));
		if (rc == 0)
			rc = pr_day_set_init(&sh->days, per_shard * 8);
	}
	if (rc < 0) {
		pr_engine_destroy(e);
		return pr_error_set(err, rc, "out of memory sizing tables for %llu customers",
				    (unsigned long long)opt->customers_hint);
	}
	*out = e;
	return 0;
}

void pr_engine_destroy(struct pr_engine *e)
{
	if (!e)
		return;
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		struct shard *sh = &e->shards[s];
		pr_id_table_destroy(&sh->customers);
		pr_pair_table_destroy(&sh->pairs);
		if (sh->days.keys)
			pr_day_set_destroy(&sh->days);
		free(sh->staged);
	}
	pr_id_table_destroy(&e->stores);
	free(e);
}

uint32_t engine_find_customer(const struct pr_engine *e, const char *id, size_t len)
{
	uint64_t hash = pr_id_hash(&e->shards[0].customers, id, len);
	uint32_t shard = shard_of_hash(hash);
	uint32_t local = pr_id_table_find(&e->shards[shard].customers, id, len);
	return local == PR_ID_NONE ? PR_ID_NONE : customer_ref(shard, local);
}

/* Applies one validated record to its shard. 0 or -ENOMEM. */
static int apply(struct pr_engine *e, uint64_t hash, const char *customer_id,
		 size_t customer_len, uint32_t store, int64_t ts_ms, int64_t amount_minor)
{
	uint32_t shard = shard_of_hash(hash);
	struct shard *sh = &e->shards[shard];
	bool created;
	if (sh->customers.count >= PR_SHARD_LOCAL_MAX - 1)
		return -ENOMEM;
	uint32_t local = pr_id_table_upsert(&sh->customers, customer_id, customer_len,
					    hash, &created);
	if (local == PR_ID_NONE)
		return -ENOMEM;
	struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
	int32_t day = (int32_t)pr_day_of(ts_ms);
	if (created) {
		pr_period_sums_init(&c->sums);
		c->first_ms = c->last_ms = ts_ms;
		c->latest_day = day;
		if (pr_day_set_insert(&sh->days, local, day) < 0)
			return -ENOMEM;
		c->purchase_days = 1;
	} else if (day != c->latest_day) {
		int fresh = pr_day_set_insert(&sh->days, local, day);
		if (fresh < 0)
			return -ENOMEM;
		c->purchase_days += (uint32_t)fresh;
		c->latest_day = day;
	}

	uint32_t pair = pr_pair_table_upsert(&sh->pairs, pr_pair_key(store, local), &created);
	if (pair == PR_PAIR_NONE)
		return -ENOMEM;
	struct pair_aggregate *p = pr_pair_table_value(&sh->pairs, pair);
	if (created) {
		pr_period_sums_init(&p->sums);
		p->store = store;
		p->customer = customer_ref(shard, local);
	}

	/* Feeds come roughly in time order: most records share the day of the
	 * shard's previous one, and with it the calendar periods. */
	if (day != sh->periods_day || !sh->periods_valid) {
		pr_periods_of(ts_ms, &sh->periods);
		sh->periods_day = day;
		sh->periods_valid = true;
	}
	pr_period_sums_add(&c->sums, &sh->periods, amount_minor);
	pr_period_sums_add(&p->sums, &sh->periods, amount_minor);
	c->purchases++;
	if (ts_ms < c->first_ms)
		c->first_ms = ts_ms;
	if (ts_ms > c->last_ms)
		c->last_ms = ts_ms;
	return 0;
}

static int stage(struct pr_engine *e, uint64_t hash, const struct pr_record *r, uint32_t store)
{
	struct shard *sh = &e->shards[shard_of_hash(hash)];
	size_t bytes = sizeof(struct staged_record) + ((r->customer_len + 7u) & ~7u);
	if (sh->staged_bytes + bytes > sh->staged_capacity) {
		size_t cap = sh->staged_capacity ? sh->staged_capacity * 2 : 1 << 16;
		unsigned char *bigger = realloc(sh->staged, cap);
		if (!bigger)
			return -ENOMEM;
		sh->staged = bigger;
		sh->staged_capacity = cap;
	}
	struct staged_record *s = (struct staged_record *)(sh->staged + sh->staged_bytes);
	*s = (struct staged_record){ hash, r->ts_ms, r->amount_minor, store, r->customer_len };
	memcpy(s + 1, r->customer, r->customer_len);
	sh->staged_bytes += bytes;
	e->staged_total += bytes;
	return 0;
}

/* Applies the records staged in one shard, in their arrival order. */
static int flush_shard(struct pr_engine *e, uint32_t shard)
{
	struct shard *sh = &e->shards[shard];
	int rc = 0;
	for (size_t at = 0; at < sh->staged_bytes && rc == 0;) {
		const struct staged_record *s = (const void *)(sh->staged + at);
		rc = apply(e, s->hash, (const char *)(s + 1), s->customer_len, s->store,
			   s->ts_ms, s->amount_minor);
		at += sizeof *s + ((s->customer_len + 7u) & ~7u);
	}
	sh->staged_bytes = 0;
	return rc;
}

struct flush_worker {
	pthread_t thread;
	struct pr_engine *engine;
	uint32_t first, step;
	int rc;
};

/* Shards share nothing but the read-only store table, so threads can
 * apply disjoint sets of them at once: worker t takes t, t + step, ... */
static void *flush_worker_run(void *arg)
{
	struct flush_worker *w = arg;
	for (uint32_t shard = w->first; shard < PR_SHARDS; shard += w->step) {
		int rc = flush_shard(w->engine, shard);
		if (rc < 0 && w->rc == 0)
			w->rc = rc;
	}
	return NULL;
}

static int flush_staged(struct pr_engine *e)
{
	unsigned threads = e->opt.threads < 1 ? 1 : e->opt.threads > 64 ? 64 : e->opt.threads;
	struct flush_worker workers[64];
	unsigned started = 1;
	for (unsigned t = 0; t < threads; t++)
		workers[t] = (struct flush_worker){ .engine = e, .first = t, .step = threads };
	for (unsigned t = 1; t < threads; t++, started++)
		if (pthread_create(&workers[t].thread, NULL, flush_worker_run, &workers[t]) != 0)
			break;
	/* Shards of workers that could not start are applied here. */
	for (unsigned t = started; t < threads; t++)
		flush_worker_run(&workers[t]);
	flush_worker_run(&workers[0]);
	int rc = workers[0].rc;
	for (unsigned t = 1; t < threads; t++) {
		if (t < started)
			pthread_join(workers[t].thread, NULL);
		if (rc == 0)
			rc = workers[t].rc;
	}
	e->staged_total = 0;
	return rc;
}

void pr_engine_bulk_begin(struct pr_engine *e)
{
	e->bulk = true;
}

int pr_engine_bulk_end(struct pr_engine *e)
{
	e->bulk = false;
	int rc = flush_staged(e);
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		free(e->shards[shard].staged);
		e->shards[shard].staged = NULL;
		e->shards[shard].staged_capacity = 0;
	}
	return rc;
}

int pr_engine_add(struct pr_engine *e, const struct pr_record *r)
{
	if (r->ts_ms < TS_MIN_MS || r->ts_ms > TS_MAX_MS)
		return -ERANGE;
	uint64_t magnitude = r->amount_minor < 0 ? -(uint64_t)r->amount_minor
						 : (uint64_t)r->amount_minor;
	if (magnitude > (uint64_t)INT64_MAX - e->volume_minor)
		return -ERANGE;

	bool created;
	uint32_t store = pr_id_table_upsert(&e->stores, r->store, r->store_len,
					    pr_id_hash(&e->stores, r->store, r->store_len),
					    &created);
	if (store == PR_ID_NONE)
		return -ENOMEM;
	uint64_t hash = pr_id_hash(&e->shards[0].customers, r->customer, r->customer_len);
	int rc;
	if (e->bulk) {
		if (e->staged_total >= STAGED_LIMIT_BYTES && (rc = flush_staged(e)) < 0)
			return rc;
		rc = stage(e, hash, r, store);
	} else {
		rc = apply(e, hash, r->customer, r->customer_len, store, r->ts_ms, r->amount_minor);
	}
	if (rc < 0)
		return rc;

	if (!e->has_watermark || r->ts_ms > e->watermark_ms) {
		e->watermark_ms = r->ts_ms;
		e->has_watermark = true;
		pr_periods_of(r->ts_ms, &e->watermark_periods);
	}
	e->volume_minor += magnitude;
	e->records++;
	return 0;
}

void pr_engine_state(const struct pr_engine *e, struct pr_engine_state *out)
{
	out->records = e->records;
	out->watermark_ms = e->watermark_ms;
	out->has_watermark = e->has_watermark;
	out->customers = engine_customer_count(e);
	out->stores = e->stores.count;
}

const struct pr_engine_options *pr_engine_options(const struct pr_engine *e)
{
	return &e->opt;
}

const char *pr_engine_store_id(const struct pr_engine *e, uint32_t store,
			       uint32_t *len)
{
	const struct pr_id_entry *entry = pr_id_table_entry(&e->stores, store);
	*len = entry->len;
	return entry->id;
}

int64_t pr_engine_store_find(const struct pr_engine *e, const char *id, size_t len)
{
	uint32_t store = pr_id_table_find(&e->stores, id, len);
	return store == PR_ID_NONE ? -ENOENT : (int64_t)store;
}

/* The lapsed predicate of DESIGN.md in exact integer arithmetic. */
static bool is_lapsed(const struct pr_engine *e, const struct customer_aggregate *c)
{
	const struct pr_engine_options *o = &e->opt;
	if (!e->has_watermark || c->purchase_days < o->lapsed_min_days ||
	    c->purchase_days < 2)
		return false;
	unsigned __int128 idle = (unsigned __int128)(e->watermark_ms - c->last_ms);
	if (idle < (unsigned __int128)o->lapsed_min_idle_days * PR_MS_PER_DAY)
		return false;
	/* idle > factor x (last - first) / (days - 1), cross-multiplied. */
	unsigned __int128 span = (unsigned __int128)(c->last_ms - c->first_ms);
	return idle * (c->purchase_days - 1) * o->lapsed_gap_factor.den >
	       span * o->lapsed_gap_factor.num;
}

static double mean_gap_days(const struct customer_aggregate *c)
{
	if (c->purchase_days < 2)
		return 0;
	return (double)(c->last_ms - c->first_ms) / (double)(c->purchase_days - 1) /
	       (double)PR_MS_PER_DAY;
}

int pr_engine_customer(const struct pr_engine *e, const char *id, size_t len,
		       struct pr_customer_info *out)
{
	uint32_t ref = engine_find_customer(e, id, len);
	if (ref == PR_ID_NONE)
		return -ENOENT;
	const struct customer_aggregate *c = engine_customer(e, ref);
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		out->revenue_minor[w] = pr_period_sums_in(&c->sums, (enum pr_window)w,
							  &e->watermark_periods);
	out->purchases = c->purchases;
	out->purchase_days = c->purchase_days;
	out->first_ms = c->first_ms;
	out->last_ms = c->last_ms;
	out->mean_gap_days = mean_gap_days(c);
	out->lapsed = is_lapsed(e, c);
	return 0;
}

static int compare_lapsed(const void *a, const void *b)
{
	const struct pr_lapsed *x = a, *y = b;
	if (x->revenue_minor != y->revenue_minor)
		return x->revenue_minor > y->revenue_minor ? -1 : 1;
	return pr_id_compare(x->customer, x->customer_len, y->customer, y->customer_len);
}

int pr_engine_lapsed(const struct pr_engine *e, size_t limit,
		     struct pr_lapsed **out, size_t *count, size_t *total)
{
	size_t n = 0, cap = 0;
	struct pr_lapsed *list = NULL;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		const struct pr_id_table *customers = &e->shards[shard].customers;
		for (uint32_t i = 0; i < customers->count; i++) {
			const struct customer_aggregate *c = pr_id_table_value(customers, i);
			if (!is_lapsed(e, c))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				struct pr_lapsed *bigger = realloc(list, cap * sizeof *list);
				if (!bigger) {
					free(list);
					return -ENOMEM;
				}
				list = bigger;
			}
			const struct pr_id_entry *id = pr_id_table_entry(customers, i);
			list[n++] = (struct pr_lapsed){
				.customer = id->id,
				.customer_len = id->len,
				.revenue_minor = c->sums.all_minor,
				.purchases = c->purchases,
				.purchase_days = c->purchase_days,
				.last_ms = c->last_ms,
				.mean_gap_days = mean_gap_days(c),
			};
		}
	}
	if (n)
		qsort(list, n, sizeof *list, compare_lapsed);
	*total = n;
	*count = n < limit ? n : limit;
	*out = list;
	return 0;
}
