/*
 * engine_internal.h - the engine's state, shared by engine.c (the writer)
 * and ranking.c (which reads it between writes).
 *
 * Customers are split by the top PR_SHARD_BITS of their id hash into
 * shards, each with its own tables, so that a bulk load can apply records
 * shard by shard while that shard's tables sit in cache (see engine.c), and
 * so that shards can later be owned by different threads.
 *
 * Per shard:
 *   customers: customer id -> struct customer_aggregate (local index)
 *   pairs:     struct pair_aggregate per (store, customer); a customer's
 *              first PR_PAIR_INLINE are named in its aggregate (a customer
 *              mostly buys in one or two stores: 9 records in 10 of the
 *              bench feed find their pair there, in cache lines the record
 *              needs anyway), the rest through
 *   pair_index: (store, customer) -> pair, for pairs past the inline ones
 *   days:      the (local customer index, day) history behind each
 *              customer's distinct purchase days (purchase_days.h)
 * Engine-wide: stores (store id -> dense store index), counters, watermark.
 *
 * A customer ref is local index << PR_SHARD_BITS | shard: 32 bits that name
 * a customer engine-wide (at most 2^24 customers per shard, 2^32 in all).
 */
#ifndef PARETO_ENGINE_INTERNAL_H
#define PARETO_ENGINE_INTERNAL_H

#include "id_table.h"
#include "pair_index.h"
#include "pareto/engine.h"
#include "period_sums.h"
#include "purchase_days.h"
#include "stable_array.h"

#define PR_SHARD_BITS 8
#define PR_SHARDS (1u << PR_SHARD_BITS)
#define PR_SHARD_LOCAL_MAX (1u << (32 - PR_SHARD_BITS))
#define PR_PAIR_INLINE 2

struct lane;
struct pr_shard_owners;

/*
 * A customer's value, in one of two layouts chosen when the engine is
 * created. An engine that keeps windows, stores or purchase days holds struct
 * customer_aggregate (128 bytes, two cache lines); one that keeps none of
 * them (the default report) holds only what it can answer, each customer's
 * all-time revenue: struct customer_total, 8 bytes. Both begin with the
 * all-time sum, so customer_revenue reads window all from either.
 */
struct customer_total {
	int64_t all_minor;
};

struct customer_aggregate {
	struct pr_period_sums sums;
	int64_t first_ms, last_ms;
	uint64_t purchases;
	struct pr_recent_days days;
	uint32_t pair_store[PR_PAIR_INLINE]; /* its first stores and their pairs */
	uint32_t pair_at[PR_PAIR_INLINE];
	uint32_t stores; /* pairs it has: those past PR_PAIR_INLINE are in the pair index */
};

struct pair_aggregate {
	struct pr_period_sums sums;
	uint32_t store, customer; /* customer: engine-wide ref */
};

struct shard {
	struct pr_id_table customers;
	struct pr_stable_array pairs; /* of struct pair_aggregate */
	struct pr_pair_index pair_index;
	struct pr_day_history days;
	/* Customers changed since the journal was last reset (keep_changes):
	 * their local indexes, each once, and a bit per local index. */
	uint32_t *changed;
	uint32_t changed_count, changed_capacity;
	uint64_t *changed_bits;
	uint32_t changed_words;
	bool changes_lost; /* a change could not be noted (out of memory) */
	struct pr_periods periods; /* of periods_day: a cache for ordered feeds */
	int32_t periods_day;
	bool periods_valid;
};

struct pr_engine {
	struct pr_engine_options opt;
	bool lean; /* customer values are struct customer_total (no periods, stores, days) */
	struct shard shards[PR_SHARDS];
	struct pr_id_table stores;
	bool bulk;
	struct lane *lanes[PR_LANES_MAX]; /* bulk mode: staged records; owned */
	unsigned char *queue; /* pr_engine_enqueue's staged records; owned */
	struct pr_shard_owners *owners; /* apply threads (opt.apply_threads > 1); owned */
	/* With apply threads the customer tables are shared (id_table.h):
	 * this thread finds ids in them while the owners add more. Arrays
	 * they outgrew, counted here by the owners, are freed at a drain
	 * once the count moved (ids_reclaimed: the count then). */
	_Atomic uint64_t ids_retired;
	uint64_t ids_reclaimed;
	/* Builds reading the ids on threads of their own (store_build.h):
	 * no array is freed while one runs. This thread's alone. */
	unsigned ids_holds;
	size_t queue_bytes;
	unsigned lane_count;
	uint64_t records;
	uint64_t volume_minor; /* sum of |amount| of all records: <= INT64_MAX */
	int64_t watermark_ms;
	bool has_watermark;
	struct pr_periods watermark_periods;
	uint64_t changes_epoch; /* how many times the change journal was reset */
};

static inline uint32_t shard_of_hash(uint64_t hash)
{
	return (uint32_t)(hash >> (64 - PR_SHARD_BITS));
}

static inline uint32_t customer_ref(uint32_t shard, uint32_t local)
{
	return local << PR_SHARD_BITS | shard;
}

static inline const struct pr_id_table *ref_table(const struct pr_engine *e, uint32_t ref)
{
	return &e->shards[ref & (PR_SHARDS - 1)].customers;
}

/* A customer's value by ref: a struct customer_aggregate unless the engine
 * is lean (then read it through customer_revenue only). */
static inline const struct customer_aggregate *engine_customer(const struct pr_engine *e,
							       uint32_t ref)
{
	return pr_id_table_value(ref_table(e, ref), ref >> PR_SHARD_BITS);
}

/* A customer's revenue in `window` (one the engine keeps, engine_can_rank)
 * from his value in either layout, with the watermark in `periods`. */
static inline int64_t customer_revenue_in(const void *value, enum pr_window window,
					  const struct pr_periods *periods)
{
	if (window == PR_WINDOW_ALL) /* the first 8 bytes of both layouts */
		return *(const int64_t *)value;
	return pr_period_sums_in(&((const struct customer_aggregate *)value)->sums, window,
				 periods);
}

/* The same as of the engine's watermark now (its writer's thread). */
static inline int64_t customer_revenue(const struct pr_engine *e, const void *value,
				       enum pr_window window)
{
	return customer_revenue_in(value, window, &e->watermark_periods);
}

static inline const struct pr_id_entry *engine_customer_id(const struct pr_engine *e,
							   uint32_t ref)
{
	return pr_id_table_entry(ref_table(e, ref), ref >> PR_SHARD_BITS);
}

/*
 * Whether every record accepted is applied: nothing queued, nothing staged
 * for an apply thread (pr_engine_drain makes it so). Only then may this
 * thread read the shards; the readers assert it, so a reader that forgot
 * to drain fails in the Debug build instead of racing with the owners.
 */
bool engine_applied(const struct pr_engine *e);

static inline uint64_t engine_customer_count(const struct pr_engine *e)
{
	uint64_t n = 0;
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		n += e->shards[s].customers.count;
	return n;
}

/* 0 if the engine keeps what a ranking of `window` (of every store if
 * `stores`) needs, else -ENOTSUP. */
int engine_can_rank(const struct pr_engine *e, enum pr_window window, bool stores);

/* Whether customer `local` of shard sh changed since the journal's reset. */
static inline bool engine_changed(const struct shard *sh, uint32_t local)
{
	uint32_t word = local >> 6;
	return word < sh->changed_words && (sh->changed_bits[word] >> (local & 63) & 1);
}

/* Empties every shard's change journal and starts a new epoch. */
void engine_changes_reset(struct pr_engine *e);
/* Empties one shard's journal, on the thread that writes the shard (its
 * apply thread's cut, shard_owners.h); the epoch is the caller's. */
void engine_shard_changes_reset(struct shard *sh);

/* The ref of a customer id, or PR_ID_NONE. */
uint32_t engine_find_customer(const struct pr_engine *e, const char *id, size_t len);

/* The index of a customer's pair for `store`, or PR_STABLE_NONE. */
static inline uint32_t engine_pair_of(const struct shard *sh, const struct customer_aggregate *c,
				      uint32_t local, uint32_t store)
{
	for (uint32_t i = 0; i < PR_PAIR_INLINE && i < c->stores; i++)
		if (c->pair_store[i] == store)
			return c->pair_at[i];
	if (c->stores <= PR_PAIR_INLINE)
		return PR_STABLE_NONE;
	uint32_t at = pr_pair_index_find(&sh->pair_index, pr_pair_index_key(store, local));
	return at == PR_PAIR_INDEX_NONE ? PR_STABLE_NONE : at;
}

/* The sums of a customer (by ref) in a store, or NULL if it never bought there. */
static inline const struct pair_aggregate *engine_find_pair(const struct pr_engine *e,
							    uint32_t ref, uint32_t store)
{
	const struct shard *sh = &e->shards[ref & (PR_SHARDS - 1)];
	uint32_t at = engine_pair_of(sh, engine_customer(e, ref), ref >> PR_SHARD_BITS, store);
	return at == PR_STABLE_NONE ? NULL : pr_stable_array_at(&sh->pairs, at);
}

#endif
