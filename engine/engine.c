/*
 * engine.c - applying records to the aggregates; see pareto/engine.h and
 * engine_internal.h.
 *
 * Why bulk mode: the tables of a million customers span tens to hundreds
 * of megabytes, and a record applied at once costs several cache and TLB
 * misses (about 150 ns each on a VM). Staged per shard (about 1 MiB at a
 * time, which stays in cache: staged.h) and applied shard by shard with a
 * look-ahead, the misses of different records overlap, and one shard's
 * tables are few pages.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "shard_owners.h"
#include "shard_scan.h"
#include "staged.h"
#include "test_hooks.h"
#include "timeparse.h"

/* Event times must lie in years 0..9999 so that days and periods fit. */
#define TS_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999Z */

/* Bytes of records pr_engine_enqueue holds before it applies them: enough
 * for the look-ahead to pay, little enough to stay in L1 and L2. */
#define QUEUE_BYTES ((size_t)32 << 10)

/* Staged bytes past which a one-lane bulk load applies what it holds
 * (staged.h). */
static size_t staged_limit(const struct pr_engine *e)
{
	size_t limit = e->opt.memory_limit_bytes ? e->opt.memory_limit_bytes : PR_BULK_MEMORY_DEFAULT;
	return limit < PR_STAGE_BYTES_PER_THREAD ? limit : PR_STAGE_BYTES_PER_THREAD;
}

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
	opt->keep_periods = opt->keep_stores = opt->keep_days = opt->keep_changes = true;
}

int pr_engine_create(struct pr_engine **out, const struct pr_engine_options *opt,
		     struct pr_error *err)
{
	struct pr_engine *e = calloc(1, sizeof *e);
	if (!e || !(e->queue = malloc(QUEUE_BYTES))) {
		free(e);
		return pr_error_set(err, -ENOMEM, "out of memory creating the engine");
	}
	e->opt = *opt;
	e->lean = !opt->keep_periods && !opt->keep_stores && !opt->keep_days;
	uint32_t value_bytes = e->lean ? sizeof(struct customer_total)
				       : sizeof(struct customer_aggregate);
	uint64_t per_shard = opt->customers_hint / PR_SHARDS + 1;
	int rc = pr_id_table_init(&e->stores, 64, 8, NULL);
	for (uint32_t s = 0; s < PR_SHARDS && rc == 0; s++) {
		struct shard *sh = &e->shards[s];
		rc = pr_id_table_init(&sh->customers, per_shard, value_bytes, opt->hash);
		pr_stable_array_init(&sh->pairs, sizeof(struct pair_aggregate));
		pr_day_history_init(&sh->days);
	}
	if (rc < 0) {
		pr_engine_destroy(e);
		return pr_error_set(err, rc, "out of memory sizing tables for %llu customers",
				    (unsigned long long)opt->customers_hint);
	}
	for (uint32_t s = 0; s < PR_SHARDS && opt->apply_threads > 1; s++)
		pr_id_table_share(&e->shards[s].customers, &e->ids_retired);
	if (opt->apply_threads > 1 &&
	    (rc = pr_shard_owners_start(&e->owners, e, opt->apply_threads)) < 0) {
		pr_engine_destroy(e);
		return pr_error_set(err, rc, "cannot start %u apply threads: %s", opt->apply_threads,
				    strerror(-rc));
	}
	*out = e;
	return 0;
}

static void drop_lanes(struct pr_engine *e);

void pr_engine_destroy(struct pr_engine *e)
{
	if (!e)
		return;
	pr_shard_owners_stop(e->owners); /* before the tables they write go */
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		struct shard *sh = &e->shards[s];
		pr_id_table_destroy(&sh->customers);
		pr_stable_array_destroy(&sh->pairs);
		pr_pair_index_destroy(&sh->pair_index);
		pr_day_history_destroy(&sh->days);
		free(sh->changed);
		free(sh->changed_bits);
	}
	drop_lanes(e);
	pr_id_table_destroy(&e->stores);
	free(e->queue);
	free(e);
}

int engine_can_rank(const struct pr_engine *e, enum pr_window window, bool stores)
{
	if (window != PR_WINDOW_ALL && !e->opt.keep_periods)
		return -ENOTSUP;
	return stores && !e->opt.keep_stores ? -ENOTSUP : 0;
}

uint32_t engine_find_customer(const struct pr_engine *e, const char *id, size_t len)
{
	uint64_t hash = pr_id_hash(&e->shards[0].customers, id, len);
	uint32_t shard = shard_of_hash(hash);
	uint32_t local = pr_id_table_find(&e->shards[shard].customers, id, len);
	return local == PR_ID_NONE ? PR_ID_NONE : customer_ref(shard, local);
}

_Static_assert(sizeof(struct customer_aggregate) == 128, "a customer is two cache lines");
_Static_assert(offsetof(struct customer_aggregate, sums.all_minor) == 0 &&
		       offsetof(struct customer_total, all_minor) == 0,
	       "both layouts begin with the all-time revenue (customer_revenue)");
_Static_assert(PR_SHARD_LOCAL_MAX - 1 <= PR_ID_MAX, "a shard's id table holds its customers");

/* A new pair for the customer in `store`; NULL, with nothing changed, when
 * memory ran out. */
static struct pair_aggregate *add_pair(struct shard *sh, struct customer_aggregate *c,
				       uint32_t ref, uint32_t local, uint32_t store)
{
	bool inline_room = c->stores < PR_PAIR_INLINE;
	if (!inline_room && pr_pair_index_reserve(&sh->pair_index, 1) < 0)
		return NULL;
	uint32_t at = pr_stable_array_push(&sh->pairs);
	if (at == PR_STABLE_NONE)
		return NULL;
	struct pair_aggregate *p = pr_stable_array_at(&sh->pairs, at);
	pr_period_sums_init(&p->sums);
	p->store = store;
	p->customer = ref;
	if (inline_room) {
		c->pair_store[c->stores] = store;
		c->pair_at[c->stores] = at;
	} else {
		pr_pair_index_insert(&sh->pair_index, pr_pair_index_key(store, local), at);
	}
	c->stores++;
	return p;
}

/* Notes that customer `local` changed, once per journal epoch. Out of
 * memory, the shard's journal is marked lost (rankings are then built
 * whole) instead of failing the record. */
static void note_change(struct shard *sh, uint32_t local)
{
	uint32_t word = local >> 6;
	uint64_t bit = (uint64_t)1 << (local & 63);
	if (word >= sh->changed_words) {
		uint32_t words = sh->changed_words ? sh->changed_words * 2 : 64;
		while (words <= word)
			words *= 2;
		uint64_t *bits = realloc(sh->changed_bits, words * sizeof *bits);
		if (!bits) {
			sh->changes_lost = true;
			return;
		}
		memset(bits + sh->changed_words, 0, (words - sh->changed_words) * sizeof *bits);
		sh->changed_bits = bits;
		sh->changed_words = words;
	}
	if (sh->changed_bits[word] & bit)
		return;
	if (sh->changed_count == sh->changed_capacity) {
		uint32_t cap = sh->changed_capacity ? sh->changed_capacity * 2 : 256;
		uint32_t *list = realloc(sh->changed, cap * sizeof *list);
		if (!list) {
			sh->changes_lost = true;
			return;
		}
		sh->changed = list;
		sh->changed_capacity = cap;
	}
	sh->changed_bits[word] |= bit;
	sh->changed[sh->changed_count++] = local;
}

void engine_shard_changes_reset(struct shard *sh)
{
	for (uint32_t i = 0; i < sh->changed_count; i++)
		sh->changed_bits[sh->changed[i] >> 6] &= ~((uint64_t)1 << (sh->changed[i] & 63));
	sh->changed_count = 0;
	sh->changes_lost = false;
}

void engine_changes_reset(struct pr_engine *e)
{
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		engine_shard_changes_reset(&e->shards[s]);
	e->changes_epoch++;
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
	const struct pr_engine_options *o = &e->opt;
	if (e->lean) {
		struct customer_total *t = pr_id_table_value(&sh->customers, local);
		t->all_minor += amount_minor; /* zero when created */
		if (o->keep_changes)
			note_change(sh, local);
		return 0;
	}
	struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
	int32_t day = (int32_t)pr_day_of(ts_ms);
	if (created) {
		pr_period_sums_init(&c->sums);
		c->first_ms = c->last_ms = ts_ms;
		c->stores = 0;
		if (o->keep_days && pr_recent_days_start(&sh->days, local, &c->days, day) < 0)
			return -ENOMEM;
	} else if (o->keep_days && day != c->days.latest &&
		   pr_recent_days_note(&sh->days, local, &c->days, day) < 0) {
		return -ENOMEM;
	}

	struct pair_aggregate *p = NULL;
	if (o->keep_stores) {
		uint32_t at = engine_pair_of(sh, c, local, store);
		if (at != PR_STABLE_NONE)
			p = pr_stable_array_at(&sh->pairs, at);
		else if (!(p = add_pair(sh, c, customer_ref(shard, local), local, store)))
			return -ENOMEM;
	}

	if (!o->keep_periods) {
		c->sums.all_minor += amount_minor;
		if (p)
			p->sums.all_minor += amount_minor;
	} else {
		/* Feeds come roughly in time order: most records share the day
		 * of the shard's previous one, and with it the calendar periods. */
		if (day != sh->periods_day || !sh->periods_valid) {
			pr_periods_of(ts_ms, &sh->periods);
			sh->periods_day = day;
			sh->periods_valid = true;
		}
		pr_period_sums_add(&c->sums, &sh->periods, amount_minor);
		if (p)
			pr_period_sums_add(&p->sums, &sh->periods, amount_minor);
	}
	if (o->keep_changes)
		note_change(sh, local);
	c->purchases++;
	if (ts_ms < c->first_ms)
		c->first_ms = ts_ms;
	if (ts_ms > c->last_ms)
		c->last_ms = ts_ms;
	return 0;
}

/*
 * A lane stages the records of one decoding thread: per shard a buffer of
 * staged records, and its own store table (so lanes never share a writer).
 * Lanes merge in their order, which callers make the order of the input,
 * so stores are numbered and records applied exactly as one thread would.
 */
struct lane {
	struct pr_id_table stores;       /* lane-local store ids, first seen first */
	uint32_t *store_map;             /* lane store -> engine store, at merge; owned */
	unsigned char *staged[PR_SHARDS];
	size_t staged_bytes[PR_SHARDS], staged_capacity[PR_SHARDS];
	size_t staged_total;
	uint64_t records;
	uint64_t volume_minor;
	int64_t watermark_ms;
	bool has_watermark;
};

static void lane_destroy(struct lane *l)
{
	if (!l)
		return;
	pr_id_table_destroy(&l->stores);
	free(l->store_map);
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		free(l->staged[s]);
	free(l);
}

static struct lane *lane_create(void)
{
	struct lane *l = calloc(1, sizeof *l);
	if (l && pr_id_table_init(&l->stores, 64, 8, NULL) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

static int lane_stage(struct lane *l, uint64_t hash, const struct pr_record *r, uint32_t store)
{
	uint32_t shard = shard_of_hash(hash);
	size_t bytes = pr_staged_size(r->customer_len);
	if (l->staged_bytes[shard] + bytes > l->staged_capacity[shard]) {
		size_t cap = l->staged_capacity[shard] ? l->staged_capacity[shard] * 2 : 1 << 14;
		unsigned char *bigger = realloc(l->staged[shard], cap);
		if (!bigger)
			return -ENOMEM;
		l->staged[shard] = bigger;
		l->staged_capacity[shard] = cap;
	}
	/* The hash picked the shard; applying recomputes it from the id (cheaper
	 * than 8 more bytes per record to write, keep and read back). */
	pr_staged_write(l->staged[shard] + l->staged_bytes[shard], r, store);
	l->staged_bytes[shard] += bytes;
	l->staged_total += bytes;
	return 0;
}

/* Records in flight in apply_staged: each is hashed and its slot fetched
 * 2 x AHEAD records before it is applied, its entry and value AHEAD before,
 * and the pair its customer most likely needs AHEAD / 2 before (a pair
 * found through the pair index: the index's slot then, the pair AHEAD / 4
 * before). 16 rather
 * than 8 once the look-ahead ran on across runs (below): 100M binary
 * records over 10M customers, one thread, 3 alternating runs, 7.2 -> 6.9 s
 * (32: no better). */
#define AHEAD 16
#define RING (2 * AHEAD)

/* Hints the CPU to fetch pair `at` of a shard (both ends: 72 bytes may
 * straddle two cache lines). */
static void prefetch_pair_at(const struct shard *sh, uint32_t at)
{
	const unsigned char *p = pr_stable_array_at(&sh->pairs, at);
	__builtin_prefetch(p, 1);
	__builtin_prefetch(p + sizeof(struct pair_aggregate) - 1, 1);
}

/*
 * Hints the CPU to fetch the pair a record of (hash, store) will update,
 * once its customer's value has arrived. One of the customer's first
 * stores names its pair inline: that pair is fetched at step 0. A later
 * one is found through the pair index, a miss of its own: step 0 fetches
 * the index's slot, and step 1, once that has arrived, the pair (with
 * only the slot fetched, the pair's miss fell on the apply: a third of
 * paretod's apply threads' time, 2026-12-08, where customers of the
 * generated feeds buy in 2.6 stores on average).
 */
static void prefetch_pair(const struct pr_engine *e, uint64_t hash, uint32_t store, int step)
{
	if (!e->opt.keep_stores)
		return;
	const struct shard *sh = &e->shards[shard_of_hash(hash)];
	uint32_t local = pr_id_table_guess(&sh->customers, hash);
	if (local == PR_ID_NONE)
		return;
	const struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
	for (uint32_t i = 0; i < PR_PAIR_INLINE && i < c->stores; i++) {
		if (c->pair_store[i] == store) {
			if (step == 0)
				prefetch_pair_at(sh, c->pair_at[i]);
			return;
		}
	}
	if (c->stores <= PR_PAIR_INLINE)
		return;
	uint64_t key = pr_pair_index_key(store, local);
	if (step == 0) {
		pr_pair_index_prefetch(&sh->pair_index, key);
		return;
	}
	uint32_t at = pr_pair_index_find(&sh->pair_index, key);
	if (at != PR_PAIR_INDEX_NONE)
		prefetch_pair_at(sh, at);
}

/* Where apply_staged reads: the run it is in, one past the last run, and
 * the next record of the run (its end once the runs are done). */
struct staged_cursor {
	const struct pr_staged_run *run, *last;
	const unsigned char *at;
};

static struct staged_cursor cursor_over(const struct pr_staged_run *runs, size_t count)
{
	struct staged_cursor c = { runs, runs + count, count ? runs->begin : NULL };
	return c;
}

/* Moves past runs read to their end; whether a record is left. */
static bool cursor_settle(struct staged_cursor *c)
{
	while (c->run != c->last && c->at == c->run->end)
		if (++c->run != c->last)
			c->at = c->run->begin;
	return c->run != c->last;
}

/* The store number of a staged record as the engine knows it. */
static uint32_t engine_store(const struct pr_staged_run *run, const struct pr_staged_record *s)
{
	return run->store_map ? run->store_map[s->store] : s->store;
}

/*
 * Applies staged records from the cursor on, in order, stopping at the
 * first that fails (the cursor is then at it). The tables outgrow the
 * cache, so each record would wait on several misses in turn (slot, then
 * entry and value); looking ahead overlaps those of different records.
 * The look-ahead runs on from one run into the next: a bulk load applies
 * about 130 records of a shard at a time, and starting it afresh for each
 * left the first records of every run waiting on their misses one by one
 * (a tenth of a thread's time at 10M customers).
 */
static int apply_staged(struct pr_engine *e, struct staged_cursor *c)
{
	const struct pr_id_table *hasher = &e->shards[0].customers;
	struct {
		const struct pr_staged_record *s;
		const struct pr_staged_run *run;
		uint64_t hash;
	} ring[RING];
	unsigned head = 0, tail = 0; /* ring[head..tail) await applying */
	for (;;) {
		for (; tail - head < RING && cursor_settle(c); tail++) {
			const struct pr_staged_record *next = (const void *)c->at;
			uint64_t hash = pr_id_hash(hasher, next + 1, next->customer_len);
			pr_id_table_prefetch(&e->shards[shard_of_hash(hash)].customers, hash);
			ring[tail % RING].s = next;
			ring[tail % RING].run = c->run;
			ring[tail % RING].hash = hash;
			c->at += pr_staged_size(next->customer_len);
		}
		if (head == tail)
			return 0;
		if (tail - head > AHEAD) {
			uint64_t hash = ring[(head + AHEAD) % RING].hash;
			pr_id_table_prefetch_value(&e->shards[shard_of_hash(hash)].customers, hash);
		}
		if (tail - head > AHEAD / 2) {
			unsigned k = (head + AHEAD / 2) % RING;
			prefetch_pair(e, ring[k].hash, engine_store(ring[k].run, ring[k].s), 0);
		}
		if (tail - head > AHEAD / 4) {
			unsigned k = (head + AHEAD / 4) % RING;
			prefetch_pair(e, ring[k].hash, engine_store(ring[k].run, ring[k].s), 1);
		}
		unsigned k = head % RING;
		const struct pr_staged_record *s = ring[k].s;
		int rc = apply(e, ring[k].hash, (const char *)(s + 1), s->customer_len,
			       engine_store(ring[k].run, s), s->ts_ms, s->amount_minor);
		if (rc < 0) {
			c->run = ring[k].run;
			c->at = (const unsigned char *)s;
			return rc;
		}
		head++;
	}
}

struct flush_worker {
	pthread_t thread;
	struct pr_engine *engine;
	uint32_t first, step;
	int rc;
};

/* Shards share nothing but the read-only store table, so threads can
 * apply disjoint sets of them at once: worker t takes t, t + step, ...,
 * each shard's records lane after lane (arrival order), many runs to one
 * look-ahead. The first failure stops the worker. */
#define FLUSH_RUNS 64

static void *flush_worker_run(void *arg)
{
	struct flush_worker *w = arg;
	struct pr_engine *e = w->engine;
	struct pr_staged_run runs[FLUSH_RUNS];
	size_t n = 0;
	for (uint32_t shard = w->first; shard < PR_SHARDS; shard += w->step) {
		for (unsigned k = 0; k < e->lane_count; k++) {
			struct lane *l = e->lanes[k];
			if (l->staged_bytes[shard])
				runs[n++] = (struct pr_staged_run){
					l->staged[shard], l->staged[shard] + l->staged_bytes[shard],
					l->store_map
				};
			l->staged_bytes[shard] = 0; /* the buffer stays as it is until applied below */
			if (n == FLUSH_RUNS) {
				if (w->rc == 0)
					w->rc = pr_engine_apply_runs(e, runs, n);
				n = 0;
			}
		}
	}
	if (w->rc == 0)
		w->rc = pr_engine_apply_runs(e, runs, n);
	return NULL;
}

/*
 * Merges the lanes into the engine: stores numbered lane after lane,
 * counters and watermark summed, then every shard's records applied.
 * -ERANGE, applying nothing, if the lanes together pass the volume bound.
 */
static int flush_lanes(struct pr_engine *e)
{
	uint64_t volume = e->volume_minor;
	for (unsigned k = 0; k < e->lane_count; k++) {
		if (e->lanes[k]->volume_minor > (uint64_t)INT64_MAX - volume)
			return -ERANGE;
		volume += e->lanes[k]->volume_minor;
	}
	for (unsigned k = 0; k < e->lane_count; k++) {
		struct lane *l = e->lanes[k];
		free(l->store_map);
		if (!(l->store_map = malloc((l->stores.count + 1) * sizeof *l->store_map)))
			return -ENOMEM;
		for (uint32_t s = 0; s < l->stores.count; s++) {
			const struct pr_id_entry *id = pr_id_table_entry(&l->stores, s);
			bool created;
			const char *bytes = pr_id_entry_bytes(id);
			l->store_map[s] = pr_id_table_upsert(&e->stores, bytes, id->len,
							     pr_id_hash(&e->stores, bytes, id->len),
							     &created);
			if (l->store_map[s] == PR_ID_NONE)
				return -ENOMEM;
		}
	}
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
	for (unsigned k = 0; k < e->lane_count; k++) {
		struct lane *l = e->lanes[k];
		if (l->has_watermark && (!e->has_watermark || l->watermark_ms > e->watermark_ms)) {
			e->watermark_ms = l->watermark_ms;
			e->has_watermark = true;
			pr_periods_of(l->watermark_ms, &e->watermark_periods);
		}
		e->records += l->records;
		l->records = 0;
		l->volume_minor = 0;
		l->staged_total = 0;
	}
	e->volume_minor = volume;
	return rc;
}

static void drop_lanes(struct pr_engine *e)
{
	for (unsigned k = 0; k < e->lane_count; k++)
		lane_destroy(e->lanes[k]);
	e->lane_count = 0;
	e->bulk = false;
}

int pr_engine_bulk_begin_lanes(struct pr_engine *e, unsigned lanes)
{
	if (lanes < 1 || lanes > PR_LANES_MAX)
		return -EINVAL;
	int rc = pr_engine_drain(e);
	if (rc < 0)
		return rc;
	for (unsigned k = 0; k < lanes; k++) {
		if (!(e->lanes[k] = lane_create())) {
			e->lane_count = k;
			drop_lanes(e);
			return -ENOMEM;
		}
	}
	e->lane_count = lanes;
	e->bulk = true;
	return 0;
}

void pr_engine_bulk_begin(struct pr_engine *e)
{
	/* Without a lane (out of memory) adds simply apply at once. */
	pr_engine_bulk_begin_lanes(e, 1);
}

int pr_engine_bulk_end(struct pr_engine *e)
{
	if (!e->bulk)
		return 0;
	int rc = flush_lanes(e);
	drop_lanes(e);
	return rc;
}

void pr_engine_bulk_abort(struct pr_engine *e)
{
	drop_lanes(e);
}

static int check_record(uint64_t volume, const struct pr_record *r, uint64_t *magnitude)
{
	if (r->ts_ms < TS_MIN_MS || r->ts_ms > TS_MAX_MS)
		return -ERANGE;
	*magnitude = r->amount_minor < 0 ? -(uint64_t)r->amount_minor : (uint64_t)r->amount_minor;
	return *magnitude > (uint64_t)INT64_MAX - volume ? -ERANGE : 0;
}

int pr_engine_lane_add(struct pr_engine *e, unsigned lane, const struct pr_record *r)
{
	struct lane *l = e->lanes[lane];
	uint64_t magnitude;
	/* Each lane checks the bound alone; the merge checks their sum. */
	int rc = check_record(e->volume_minor + l->volume_minor, r, &magnitude);
	if (rc < 0)
		return rc;
	bool created;
	uint32_t store = pr_id_table_upsert(&l->stores, r->store, r->store_len,
					    pr_id_hash(&l->stores, r->store, r->store_len), &created);
	if (store == PR_ID_NONE)
		return -ENOMEM;
	uint64_t hash = pr_id_hash(&e->shards[0].customers, r->customer, r->customer_len);
	if ((rc = lane_stage(l, hash, r, store)) < 0)
		return rc;
	if (!l->has_watermark || r->ts_ms > l->watermark_ms) {
		l->watermark_ms = r->ts_ms;
		l->has_watermark = true;
	}
	l->volume_minor += magnitude;
	l->records++;
	return 0;
}

/* Validates r and takes it into the counters and the store table: 0, or
 * -ERANGE / -ENOMEM with nothing changed. *store gets its store number. */
static int accept_record(struct pr_engine *e, const struct pr_record *r, uint32_t *store)
{
	uint64_t magnitude;
	int rc = check_record(e->volume_minor, r, &magnitude);
	if (rc < 0)
		return rc;
	bool created;
	*store = pr_id_table_upsert(&e->stores, r->store, r->store_len,
				    pr_id_hash(&e->stores, r->store, r->store_len), &created);
	if (*store == PR_ID_NONE)
		return -ENOMEM;
	if (!e->has_watermark || r->ts_ms > e->watermark_ms) {
		/* In a feed in time order nearly every record moves the
		 * watermark, mostly within its day, and so within its periods. */
		if (!e->has_watermark || pr_day_of(r->ts_ms) != pr_day_of(e->watermark_ms))
			pr_periods_of(r->ts_ms, &e->watermark_periods);
		e->watermark_ms = r->ts_ms;
		e->has_watermark = true;
	}
	e->volume_minor += magnitude;
	e->records++;
	return 0;
}

/* Takes a record that could not be applied back out of the counters (the
 * watermark stays: it only ever moves forward). */
static void unaccept(struct pr_engine *e, int64_t amount_minor)
{
	e->volume_minor -= amount_minor < 0 ? -(uint64_t)amount_minor : (uint64_t)amount_minor;
	e->records--;
}

int pr_engine_add(struct pr_engine *e, const struct pr_record *r)
{
	if (e->bulk && e->lane_count == 1) {
		/* One lane merges on its own past the staging limit; its records
		 * are in input order, so the result is unchanged. */
		int rc;
		if (e->lanes[0]->staged_total >= staged_limit(e) && (rc = flush_lanes(e)) < 0)
			return rc;
		return pr_engine_lane_add(e, 0, r);
	}
	int rc = pr_engine_drain(e); /* the queued records come first */
	if (rc < 0)
		return rc;
	uint32_t store;
	if ((rc = accept_record(e, r, &store)) < 0)
		return rc;
	uint64_t hash = pr_id_hash(&e->shards[0].customers, r->customer, r->customer_len);
	if ((rc = apply(e, hash, r->customer, r->customer_len, store, r->ts_ms, r->amount_minor)) < 0)
		unaccept(e, r->amount_minor);
	return rc;
}

int pr_engine_enqueue(struct pr_engine *e, const struct pr_record *r)
{
	if (e->bulk)
		return pr_engine_add(e, r);
	size_t bytes = pr_staged_size(r->customer_len);
	if (e->owners) {
		/* Counted here, on the caller's thread; applied by the owner of
		 * its shard (shard_owners.h). */
		uint32_t store;
		int rc = accept_record(e, r, &store);
		if (rc < 0)
			return rc;
		uint32_t shard = pr_engine_shard_of(e, r->customer, r->customer_len);
		pr_staged_write(pr_shard_owners_stage(e->owners, shard, bytes), r, store);
		return 0;
	}
	if (e->queue_bytes + bytes > QUEUE_BYTES) {
		int rc = pr_engine_drain(e);
		if (rc < 0)
			return rc;
	}
	uint32_t store;
	int rc = accept_record(e, r, &store);
	if (rc < 0)
		return rc;
	pr_staged_write(e->queue + e->queue_bytes, r, store);
	e->queue_bytes += bytes;
	return 0;
}

/* Frees the arrays the owners' customer tables outgrew. Only right after
 * a drain on the thread that finds ids (the server's): the owners are idle
 * and their writes visible, and that thread is in no table. */
static void reclaim_ids(struct pr_engine *e)
{
	uint64_t retired = atomic_load_explicit(&e->ids_retired, memory_order_relaxed);
	if (retired == e->ids_reclaimed || e->ids_holds)
		return;
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		pr_id_table_reclaim(&e->shards[s].customers);
	e->ids_reclaimed = retired;
}

int pr_engine_drain(struct pr_engine *e)
{
	/* Nothing held: no write at all, so that threads that only read the
	 * engine (a checkpoint's, persistence.h) may drain beside each other. */
	if (engine_applied(e))
		return 0;
	uint64_t dropped = 0, dropped_volume = 0;
	int rc;
	if (e->owners) {
		rc = pr_shard_owners_drain(e->owners, &dropped, &dropped_volume);
		reclaim_ids(e);
	} else {
		struct pr_staged_run queue = { e->queue, e->queue + e->queue_bytes, NULL };
		rc = pr_engine_apply_queued(e, &queue, 1, &dropped, &dropped_volume);
		e->queue_bytes = 0;
	}
	/* Records that could not be applied (out of memory) are dropped, and
	 * so uncounted (the watermark stays: it only ever moves forward). */
	e->records -= dropped;
	e->volume_minor -= dropped_volume;
	return rc;
}

bool engine_applied(const struct pr_engine *e)
{
	return e->queue_bytes == 0 && (!e->owners || !pr_shard_owners_staged(e->owners));
}

void pr_engine_state(const struct pr_engine *e, struct pr_engine_state *out)
{
	assert(engine_applied(e));
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
	return pr_id_entry_bytes(entry);
}

int64_t pr_engine_store_find(const struct pr_engine *e, const char *id, size_t len)
{
	uint32_t store = pr_id_table_find(&e->stores, id, len);
	return store == PR_ID_NONE ? -ENOENT : (int64_t)store;
}

/* The watermark a customer is judged by: the engine's now, or a request's
 * copy of it (read on an apply thread while the writer moves it on). */
struct as_of {
	bool has_watermark;
	int64_t watermark_ms;
	struct pr_periods periods;
};

static struct as_of engine_now(const struct pr_engine *e)
{
	return (struct as_of){ e->has_watermark, e->watermark_ms, e->watermark_periods };
}

/* The lapsed predicate of DESIGN.md in exact integer arithmetic. */
static bool is_lapsed(const struct pr_engine *e, const struct as_of *t,
		      const struct customer_aggregate *c)
{
	const struct pr_engine_options *o = &e->opt;
	if (!t->has_watermark || c->days.count < o->lapsed_min_days ||
	    c->days.count < 2)
		return false;
	unsigned __int128 idle = (unsigned __int128)(t->watermark_ms - c->last_ms);
	if (idle < (unsigned __int128)o->lapsed_min_idle_days * PR_MS_PER_DAY)
		return false;
	/* idle > factor x (last - first) / (days - 1), cross-multiplied. */
	unsigned __int128 span = (unsigned __int128)(c->last_ms - c->first_ms);
	return idle * (c->days.count - 1) * o->lapsed_gap_factor.den >
	       span * o->lapsed_gap_factor.num;
}

static double mean_gap_days(const struct customer_aggregate *c)
{
	if (c->days.count < 2)
		return 0;
	return (double)(c->last_ms - c->first_ms) / (double)(c->days.count - 1) /
	       (double)PR_MS_PER_DAY;
}

/* pr_engine_customer as of t: reads only his shard (and the options). */
static int customer_info(const struct pr_engine *e, const struct as_of *t, const char *id,
			 size_t len, struct pr_customer_info *out)
{
	if (!e->opt.keep_periods || !e->opt.keep_days)
		return -ENOTSUP;
	uint32_t ref = engine_find_customer(e, id, len);
	if (ref == PR_ID_NONE)
		return -ENOENT;
	const struct customer_aggregate *c = engine_customer(e, ref);
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		out->revenue_minor[w] = pr_period_sums_in(&c->sums, (enum pr_window)w, &t->periods);
	out->purchases = c->purchases;
	out->purchase_days = c->days.count;
	out->first_ms = c->first_ms;
	out->last_ms = c->last_ms;
	out->mean_gap_days = mean_gap_days(c);
	out->lapsed = is_lapsed(e, t, c);
	return 0;
}

int pr_engine_customer(const struct pr_engine *e, const char *id, size_t len,
		       struct pr_customer_info *out)
{
	assert(engine_applied(e));
	struct as_of now = engine_now(e);
	return customer_info(e, &now, id, len, out);
}

/*
 * The writer fills it before the handoff to an owner (the ring's
 * release/acquire publishes it); whoever answers writes rc and info, then
 * stores done with release, which the writer loads with acquire.
 */
struct pr_customer_request {
	const struct pr_engine *engine;
	struct as_of as_of;
	uint64_t records;
	char id[PR_CUSTOMER_MAX_BYTES];
	size_t len;
	int rc;
	struct pr_customer_info info;
	_Atomic bool done;
};

static bool customer_id_ok(size_t len)
{
	return len >= 1 && len <= PR_CUSTOMER_MAX_BYTES;
}

static void customer_request_answer(void *arg)
{
	struct pr_customer_request *q = arg;
	q->rc = customer_id_ok(q->len) ? customer_info(q->engine, &q->as_of, q->id, q->len, &q->info)
				       : -ENOENT;
	atomic_store_explicit(&q->done, true, memory_order_release);
}

struct pr_customer_request *pr_customer_request_start(struct pr_engine *e, const char *id,
						      size_t len)
{
	assert(e->owners || engine_applied(e));
	struct pr_customer_request *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->engine = e;
	q->as_of = engine_now(e);
	q->records = e->records;
	q->len = len;
	if (customer_id_ok(len))
		memcpy(q->id, id, len);
	atomic_init(&q->done, false);
	if (engine_applied(e) || !customer_id_ok(len))
		customer_request_answer(q);
	else
		pr_shard_owners_call(e->owners, pr_engine_shard_of(e, id, len),
				     customer_request_answer, q);
	return q;
}

bool pr_customer_request_done(const struct pr_customer_request *q)
{
	return atomic_load_explicit(&q->done, memory_order_acquire);
}

uint64_t pr_customer_request_records(const struct pr_customer_request *q)
{
	return q->records;
}

int pr_customer_request_result(const struct pr_customer_request *q, struct pr_customer_info *out)
{
	assert(pr_customer_request_done(q));
	if (q->rc == 0)
		*out = q->info;
	return q->rc;
}

void pr_customer_request_free(struct pr_customer_request *q)
{
	assert(!q || pr_customer_request_done(q));
	free(q);
}

static int compare_lapsed(const void *a, const void *b)
{
	const struct pr_lapsed *x = a, *y = b;
	if (x->revenue_minor != y->revenue_minor)
		return x->revenue_minor > y->revenue_minor ? -1 : 1;
	return pr_id_compare(x->customer, x->customer_len, y->customer, y->customer_len);
}

/* Appends the lapsed customers of shards first, first + step, ... as of
 * `now` to *list (n of cap). 0 or -ENOMEM (what was listed kept). */
static int lapsed_of_shards(const struct pr_engine *e, const struct as_of *now, uint32_t first,
			    uint32_t step, struct pr_lapsed **list, size_t *n, size_t *cap)
{
	for (uint32_t shard = first; shard < PR_SHARDS; shard += step) {
		const struct pr_id_table *customers = &e->shards[shard].customers;
		for (uint32_t i = 0; i < customers->count; i++) {
			const struct customer_aggregate *c = pr_id_table_value(customers, i);
			if (!is_lapsed(e, now, c))
				continue;
			if (*n == *cap) {
				size_t bigger_cap = *cap ? *cap * 2 : 64;
				struct pr_lapsed *bigger = realloc(*list, bigger_cap * sizeof *bigger);
				if (!bigger)
					return -ENOMEM;
				*list = bigger;
				*cap = bigger_cap;
			}
			const struct pr_id_entry *id = pr_id_table_entry(customers, i);
			(*list)[(*n)++] = (struct pr_lapsed){
				.customer = pr_id_entry_bytes(id),
				.customer_len = id->len,
				.revenue_minor = c->sums.all_minor,
				.purchases = c->purchases,
				.purchase_days = c->days.count,
				.last_ms = c->last_ms,
				.mean_gap_days = mean_gap_days(c),
			};
		}
	}
	return 0;
}

int pr_engine_lapsed(const struct pr_engine *e, size_t limit,
		     struct pr_lapsed **out, size_t *count, size_t *total)
{
	assert(engine_applied(e));
	if (!e->opt.keep_days)
		return -ENOTSUP;
	struct as_of now = engine_now(e);
	size_t n = 0, cap = 0;
	struct pr_lapsed *list = NULL;
	if (lapsed_of_shards(e, &now, 0, 1, &list, &n, &cap) < 0) {
		free(list);
		return -ENOMEM;
	}
	if (n)
		qsort(list, n, sizeof *list, compare_lapsed);
	*total = n;
	*count = n < limit ? n : limit;
	*out = list;
	return 0;
}

/* ---- lapsed regulars listed beside ingest ---------------------------------- */

struct lapsed_part {
	struct pr_lapsed *list; /* n of cap */
	size_t n, cap;
	int rc;
};

struct pr_lapsed_request {
	struct pr_shard_scan *scan;
	const struct pr_engine *engine;
	struct as_of now; /* the engine's when it started */
	unsigned owners;
	struct pr_lapsed_list result;
	struct lapsed_part parts[PR_SHARD_OWNERS_MAX];
	int rc;
};

/* On apply thread `owner`: its shards' lapsed customers. */
static void lapsed_scan(void *arg, unsigned owner, unsigned owners)
{
	struct pr_lapsed_request *q = arg;
	struct lapsed_part *p = &q->parts[owner];
	p->rc = lapsed_of_shards(q->engine, &q->now, owner, owners, &p->list, &p->n, &p->cap);
}

/* On the scan's thread: the parts in one list, sorted. */
static void lapsed_merge(void *arg)
{
	struct pr_lapsed_request *q = arg;
	pr_test_hook_pause("PARETO_BUILD_DELAY_MS"); /* a slow list, for a test */
	unsigned owners = q->owners;
	size_t n = 0;
	for (unsigned k = 0; k < owners; k++) {
		n += q->parts[k].n;
		if (q->parts[k].rc < 0)
			q->rc = q->parts[k].rc;
	}
	struct pr_lapsed *list = q->rc == 0 ? malloc((n + 1) * sizeof *list) : NULL;
	if (!list)
		q->rc = -ENOMEM;
	size_t at = 0;
	for (unsigned k = 0; k < owners; k++) {
		if (list && q->parts[k].n)
			memcpy(list + at, q->parts[k].list, q->parts[k].n * sizeof *list);
		at += q->parts[k].n;
		free(q->parts[k].list);
		q->parts[k].list = NULL;
	}
	if (!list)
		return;
	if (n)
		qsort(list, n, sizeof *list, compare_lapsed);
	q->result.list = list;
	q->result.count = n;
}

int pr_lapsed_request_start(struct pr_engine *e, struct pr_lapsed_request **out)
{
	if (!e->opt.keep_days || !pr_shard_scan_owners(e))
		return -ENOTSUP;
	struct pr_lapsed_request *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->engine = e;
	q->now = engine_now(e);
	q->owners = pr_shard_scan_owners(e);
	q->result.records = e->records;
	q->result.has_watermark = e->has_watermark;
	q->result.watermark_ms = e->watermark_ms;
	int rc = pr_shard_scan_start(e, lapsed_scan, lapsed_merge, q, &q->scan);
	if (rc < 0) {
		free(q);
		return rc;
	}
	*out = q;
	return 0;
}

bool pr_lapsed_request_done(const struct pr_lapsed_request *q)
{
	return pr_shard_scan_done(q->scan);
}

int pr_lapsed_request_finish(struct pr_lapsed_request *q, struct pr_lapsed_list *out)
{
	pr_shard_scan_end(q->scan);
	int rc = q->rc;
	if (rc == 0)
		*out = q->result;
	free(q);
	return rc;
}

/* ---- loads decoded on several threads (staged.h) ------------------------- */

uint32_t pr_engine_shard_of(const struct pr_engine *e, const char *id, size_t len)
{
	return shard_of_hash(pr_id_hash(&e->shards[0].customers, id, len));
}

bool pr_engine_time_ok(int64_t ts_ms)
{
	return ts_ms >= TS_MIN_MS && ts_ms <= TS_MAX_MS;
}

uint64_t pr_engine_volume(const struct pr_engine *e)
{
	return e->volume_minor;
}

int pr_engine_apply_runs(struct pr_engine *e, const struct pr_staged_run *runs, size_t count)
{
	struct staged_cursor c = cursor_over(runs, count);
	return apply_staged(e, &c);
}

int pr_engine_apply_queued(struct pr_engine *e, const struct pr_staged_run *runs, size_t count,
			   uint64_t *dropped, uint64_t *dropped_volume_minor)
{
	int result = 0;
	struct staged_cursor c = cursor_over(runs, count);
	int rc;
	while ((rc = apply_staged(e, &c)) < 0) {
		/* Out of memory for this record: skipped, for the caller to uncount. */
		const struct pr_staged_record *s = (const void *)c.at;
		++*dropped;
		*dropped_volume_minor += s->amount_minor < 0 ? -(uint64_t)s->amount_minor
							     : (uint64_t)s->amount_minor;
		c.at += pr_staged_size(s->customer_len);
		result = rc;
	}
	return result;
}

int pr_engine_merge_counts(struct pr_engine *e, uint64_t records, uint64_t volume_minor,
			   bool has_latest, int64_t latest_ms)
{
	if (volume_minor > (uint64_t)INT64_MAX - e->volume_minor)
		return -ERANGE;
	e->volume_minor += volume_minor;
	e->records += records;
	if (has_latest && (!e->has_watermark || latest_ms > e->watermark_ms)) {
		e->watermark_ms = latest_ms;
		e->has_watermark = true;
		pr_periods_of(latest_ms, &e->watermark_periods);
	}
	return 0;
}

uint32_t pr_engine_store_intern(struct pr_engine *e, const char *id, size_t len)
{
	bool created;
	return pr_id_table_upsert(&e->stores, id, len, pr_id_hash(&e->stores, id, len), &created);
}
