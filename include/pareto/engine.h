/*
 * pareto/engine.h - the engine handle: records in, exact aggregates kept.
 *
 * An engine holds, for every customer id ever seen (ids compared exactly),
 * revenue in every window (see window.h), purchase count, first and last
 * purchase time and the number of distinct purchase days; the same window
 * sums per (store, customer) pair; the record count and the watermark.
 * Answers over it are built as rankings (ranking.h).
 *
 * One thread adds records (the single writer) and answers are built between
 * adds on that thread; a bulk load may stage from several threads (lanes,
 * below) and applies its shards on `threads` threads, and a stream of
 * enqueued records is applied by `apply_threads` threads, each the only
 * writer of its shards, until the next drain. Memory grows with
 * customers, pairs and customer-days (8 bytes each, in a log); no
 * allocation per record once the tables have grown.
 */
#ifndef PARETO_ENGINE_H
#define PARETO_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pareto/error.h"
#include "pareto/record.h"
#include "pareto/window.h"

/* An exact fraction num/den, den > 0: cut points are never floats. */
struct pr_fraction {
	uint64_t num, den;
};

/* Parses "0.2", "20%", "1/5" or "3" into a fraction >= 0; 0 or -EINVAL. */
int pr_fraction_parse(const char *text, struct pr_fraction *out);
double pr_fraction_value(struct pr_fraction f);

struct pr_engine_options {
	uint64_t customers_hint;        /* expected customers; tables grow past it */
	struct pr_fraction top;         /* golden tier: 1/5 */
	struct pr_fraction tier_a;      /* A: ranks <= ceil(tier_a x N): 1/5 */
	struct pr_fraction tier_b;      /* B: ranks <= ceil(tier_b x N): 1/2 */
	struct pr_fraction pareto_target; /* Pareto point revenue share: 4/5 */
	struct pr_fraction key_share;   /* key client: share >= 1/10 */
	uint32_t lapsed_min_days;       /* distinct purchase days: 3 */
	struct pr_fraction lapsed_gap_factor; /* idle > factor x mean gap: 3/1 */
	uint32_t lapsed_min_idle_days;  /* and idle >= 30 days */
	unsigned threads;               /* threads applying a bulk load's shards */
	/* Threads applying enqueued records (pr_engine_enqueue), each owning
	 * the shards s % apply_threads == k; 0 or 1: none, drain applies them
	 * on the caller's thread. */
	unsigned apply_threads;
	/* Bytes a bulk load may hold staged and in flight between threads
	 * (not the aggregates themselves); 0: 128 MiB. */
	size_t memory_limit_bytes;
	/*
	 * What to keep beyond each customer's all-time revenue, purchases and
	 * first and last times (default: everything). A one-shot report that
	 * asks for less skips the work and memory of the rest; asking for what
	 * was not kept fails with -ENOTSUP rather than answering wrongly.
	 */
	bool keep_periods; /* the calendar windows other than all */
	bool keep_stores;  /* per (store, customer) sums: rankings by store */
	bool keep_days;    /* distinct purchase days: lapsed regulars */
	bool keep_changes; /* which customers changed: pr_ranking_refresh */
	/* Test hook: the customer id hash (NULL: XXH3-64). */
	uint64_t (*hash)(const void *bytes, size_t len);
};

void pr_engine_options_init(struct pr_engine_options *opt);

struct pr_engine;

int pr_engine_create(struct pr_engine **out, const struct pr_engine_options *opt,
		     struct pr_error *err);
void pr_engine_destroy(struct pr_engine *e);

/*
 * Applies one record. Returns 0; -ERANGE, changing nothing, if its time is
 * outside years 0..9999 or if it would take the total absolute volume of
 * all records past INT64_MAX (the bound that keeps every sum exact in
 * int64); -ENOMEM if a table could not grow.
 */
int pr_engine_add(struct pr_engine *e, const struct pr_record *r);

/*
 * A stream of adds (a daemon's feeds): enqueue validates and counts a record
 * at once, with the result pr_engine_add would give, but may hold it with a
 * few hundred others to apply them together, overlapping their cache misses
 * (several times the rate of one add at a time). drain applies what is
 * held; queries must not run while anything is held. drain returns 0 or
 * -ENOMEM (records it could not apply are dropped from the counts).
 * pr_engine_add drains first, so the order of records is kept. With
 * apply_threads > 1, enqueued records are applied by those threads while
 * the caller goes on (one thread enqueues); drain waits until every one
 * is applied and visible to the caller, and nothing may read the engine
 * between an enqueue and the next drain.
 */
int pr_engine_enqueue(struct pr_engine *e, const struct pr_record *r);
int pr_engine_drain(struct pr_engine *e);

/*
 * Bulk loading (a backfill, the one-shot report): between begin and end,
 * adds are validated and counted at once but applied later, shard by shard,
 * so each shard's tables are in cache while its records are applied. The
 * result equals applying them one by one. Queries (rankings, customers,
 * lapsed) must not run in between. end returns 0 or -ENOMEM.
 */
void pr_engine_bulk_begin(struct pr_engine *e);
int pr_engine_bulk_end(struct pr_engine *e);

/*
 * Bulk loading from several threads: `lanes` staging lanes, each fed by one
 * thread with pr_engine_lane_add (0 <= lane < lanes; different lanes may be
 * fed at the same time, one lane by one thread only). The lanes merge in
 * lane order at bulk_end, so give lane k the k-th part of the input and the
 * result equals a single-threaded load. bulk_end returns -ERANGE, applying
 * nothing, if the lanes together pass the volume bound (a sequential load
 * then finds the exact record that does); bulk_abort drops everything staged.
 */
#define PR_LANES_MAX 64
int pr_engine_bulk_begin_lanes(struct pr_engine *e, unsigned lanes);
int pr_engine_lane_add(struct pr_engine *e, unsigned lane, const struct pr_record *r);
void pr_engine_bulk_abort(struct pr_engine *e);

struct pr_engine_state {
	uint64_t records;      /* applied */
	int64_t watermark_ms;  /* largest event time; valid if has_watermark */
	bool has_watermark;
	uint64_t customers;    /* every id seen, whatever its revenue */
	uint32_t stores;
};

void pr_engine_state(const struct pr_engine *e, struct pr_engine_state *out);
const struct pr_engine_options *pr_engine_options(const struct pr_engine *e);

/* Store ids by dense index 0..stores-1 (the empty id: a feed with no store). */
const char *pr_engine_store_id(const struct pr_engine *e, uint32_t store,
			       uint32_t *len);
/* The dense index of a store id, or -ENOENT. */
int64_t pr_engine_store_find(const struct pr_engine *e, const char *id, size_t len);

struct pr_customer_info {
	int64_t revenue_minor[PR_WINDOW_COUNT];
	uint64_t purchases;      /* records */
	uint32_t purchase_days;  /* distinct UTC days with a purchase */
	int64_t first_ms, last_ms;
	double mean_gap_days;    /* (last - first) / (purchase_days - 1); 0 if < 2 */
	bool lapsed;
};

/* Fills *out for a customer id; -ENOENT if never seen, -ENOTSUP unless the
 * engine keeps periods and days. */
int pr_engine_customer(const struct pr_engine *e, const char *id, size_t len,
		       struct pr_customer_info *out);

/*
 * A customer's history read where it is written, for a caller that must not
 * wait for the apply threads (paretod's server thread): it is read as of
 * every record accepted so far, on the apply thread that owns him once that
 * thread has applied them, while the others go on; at once when nothing is
 * staged. Without apply threads the caller applies its queue first
 * (pr_engine_drain). Poll pr_customer_request_done (it may say true at
 * once); then pr_customer_request_result gives what pr_engine_customer
 * would have given then. Free only once done (a drain finishes every one).
 * The engine's writer thread only. NULL if out of memory.
 */
struct pr_customer_request;
struct pr_customer_request *pr_customer_request_start(struct pr_engine *e, const char *id,
						      size_t len);
bool pr_customer_request_done(const struct pr_customer_request *q);
/* The records accepted when it started: the history holds them all. */
uint64_t pr_customer_request_records(const struct pr_customer_request *q);
int pr_customer_request_result(const struct pr_customer_request *q, struct pr_customer_info *out);
void pr_customer_request_free(struct pr_customer_request *q);

struct pr_lapsed {
	const char *customer; /* borrowed from the engine */
	uint32_t customer_len;
	int64_t revenue_minor; /* all time */
	uint64_t purchases;
	uint32_t purchase_days;
	int64_t last_ms;
	double mean_gap_days;
};

/*
 * Lapsed regulars (DESIGN.md), by all-time revenue descending, then id;
 * at most `limit`. *out is malloc'ed (free it); *total gets how many there
 * are in all. Returns 0, -ENOMEM, or -ENOTSUP if days are not kept.
 */
int pr_engine_lapsed(const struct pr_engine *e, size_t limit,
		     struct pr_lapsed **out, size_t *count, size_t *total);

/* Every lapsed regular as of some records, sorted as pr_engine_lapsed's. */
struct pr_lapsed_list {
	struct pr_lapsed *list; /* count; malloc'ed (free it) */
	size_t count;
	uint64_t records;       /* the records counted when it was asked for */
	bool has_watermark;
	int64_t watermark_ms;
};

/*
 * The lapsed regulars listed beside ingest, for a caller that must not
 * wait for the apply threads (paretod's server thread): as of every record
 * counted so far, each apply thread lists those of its shards once it has
 * applied them, and a thread of the request's own sorts the lists (a shard
 * scan, engine/shard_scan.h). Poll pr_lapsed_request_done; then
 * pr_lapsed_request_finish (which waits if it is not done) gives the list
 * and frees the request. The engine's writer thread only, never while a
 * checkpoint reads the engine. Start: 0, -ENOTSUP (no apply threads or no
 * days kept), -ENOMEM or pthread_create's error negated. Finish: 0 or
 * -ENOMEM.
 */
struct pr_lapsed_request;
int pr_lapsed_request_start(struct pr_engine *e, struct pr_lapsed_request **out);
bool pr_lapsed_request_done(const struct pr_lapsed_request *q);
int pr_lapsed_request_finish(struct pr_lapsed_request *q, struct pr_lapsed_list *out);

#endif
