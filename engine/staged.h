/*
 * staged.h - records staged for a bulk load, and the engine's entry points
 * for loads decoded on several threads (engine.c implements them; the
 * parallel file ingest, ingest_parallel.c, uses them).
 *
 * A staged record is a validated record packed for a later apply: fixed
 * fields, then the customer id padded to 8 bytes. Bulk loads write them
 * sequentially (per shard) and apply them with the engine's look-ahead.
 * The store is a number whose meaning the stager and applier agree on (the
 * engine's dense store index when applied).
 */
#ifndef PARETO_STAGED_H
#define PARETO_STAGED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pareto/engine.h"

/* Why customer_len comes first: a carrier (the record ring) needs a first
 * word that is never zero, and keeps tags in its upper bits. */
struct pr_staged_record {
	uint32_t customer_len; /* bytes of the id; only the low PR_STAGED_LEN_BITS count */
	uint32_t store;
	int64_t ts_ms;
	int64_t amount_minor;
	/* the id follows, padded to a multiple of 8 */
};

#define PR_STAGED_LEN_BITS 16
#define PR_STAGED_LEN_MASK ((1u << PR_STAGED_LEN_BITS) - 1)

static inline size_t pr_staged_size(uint32_t customer_len)
{
	return sizeof(struct pr_staged_record) + ((customer_len + 7u) & ~(size_t)7u);
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the last word of an id is assembled low byte first");

/*
 * Copies an id of len bytes to dst in 8-byte words, the last one padded
 * with zeros. Why not memcpy: with a length it cannot know, the compiler
 * may pick `rep movs`, whose start-up costs more than these short ids. The
 * last word is assembled in a register: written byte by byte into memory
 * and read back as a word, it could not be forwarded from the store buffer
 * and stalled every record (a third of the decoders' time in chunk_record
 * sat on the store after it).
 */
static inline void pr_staged_copy_id(unsigned char *dst, const char *id, size_t len)
{
	for (; len >= 8; len -= 8, dst += 8, id += 8)
		memcpy(dst, id, 8);
	if (len) {
		uint64_t word = 0;
		size_t i = 0;
		if (len >= 4) {
			uint32_t low;
			memcpy(&low, id, 4);
			word = low;
			i = 4;
		}
		for (; i < len; i++)
			word |= (uint64_t)(unsigned char)id[i] << (8 * i);
		memcpy(dst, &word, 8);
	}
}

static inline void pr_staged_write(unsigned char *dst, const struct pr_record *r, uint32_t store)
{
	struct pr_staged_record *s = (struct pr_staged_record *)dst;
	*s = (struct pr_staged_record){ r->customer_len, store, r->ts_ms, r->amount_minor };
	pr_staged_copy_id((unsigned char *)(s + 1), r->customer, r->customer_len);
}

/* Copies a staged record (bytes: a multiple of 8) in words, for the same reason. */
static inline void pr_staged_copy(unsigned char *dst, const unsigned char *src, size_t bytes)
{
	for (size_t i = 0; i < bytes; i += 8)
		memcpy(dst + i, src + i, 8);
}

/* Default bytes a bulk load may stage (and, on several threads, hold in
 * its rings): the memory limit when pr_engine_options leaves it 0. */
#define PR_BULK_MEMORY_DEFAULT ((size_t)128 << 20)

/*
 * What one thread of a bulk load stages before it applies, for all the
 * shards it applies together (the memory limit may make it less): about a
 * core's L2 cache, so that records are written and read back in cache.
 * Batches of up to half the memory limit were meant to keep a shard's
 * tables in cache while it is applied, but the records' writes into 256
 * buffers that do not fit missed the cache instead (two thirds of the time
 * of pr_engine_lane_add on one store); the look-ahead hides the tables'
 * misses either way. docs/ARCHITECTURE.md has the figures.
 */
#define PR_STAGE_BYTES_PER_THREAD ((size_t)1 << 20)

/* The shard (0..PR_SHARDS-1) a customer id belongs to. Any thread. */
uint32_t pr_engine_shard_of(const struct pr_engine *e, const char *id, size_t len);

/* Whether an event time is one the engine takes (years 0..9999). */
bool pr_engine_time_ok(int64_t ts_ms);

/* The total absolute volume of the records applied so far. */
uint64_t pr_engine_volume(const struct pr_engine *e);

/* Staged records [begin, end) (whole records) to apply, whose store
 * numbers map to the engine's through store_map (NULL: they are the
 * engine's). */
struct pr_staged_run {
	const unsigned char *begin, *end;
	const uint32_t *store_map;
};

/*
 * Applies the records of runs[0..count) in order, with the look-ahead of
 * a bulk load running on from each run into the next. The counters
 * (records, volume, watermark) are not touched: pr_engine_merge_counts
 * does that. Threads may apply at once if no two touch the same shard. 0,
 * or -ENOMEM with the records before the failing one applied.
 */
int pr_engine_apply_runs(struct pr_engine *e, const struct pr_staged_run *runs, size_t count);

/*
 * Applies runs[0..count) as pr_engine_apply_runs does, but a record that
 * fails for memory is skipped and the rest applied: *dropped and
 * *dropped_volume_minor are increased by the records skipped and their
 * total absolute amount, for the caller to take out of the counters. 0, or
 * -ENOMEM if any was skipped. Same thread rules as pr_engine_apply_runs
 * (the drain of enqueued records and paretod's apply threads use it).
 */
int pr_engine_apply_queued(struct pr_engine *e, const struct pr_staged_run *runs, size_t count,
			   uint64_t *dropped, uint64_t *dropped_volume_minor);

/*
 * Counts `records` records of total absolute volume `volume_minor` and
 * latest time `latest_ms` (if has_latest) as applied. -ERANGE, changing
 * nothing, if the volume bound would be passed. Not concurrent with
 * anything that reads the counters.
 */
int pr_engine_merge_counts(struct pr_engine *e, uint64_t records, uint64_t volume_minor,
			   bool has_latest, int64_t latest_ms);

/* The engine's dense index of a store id, added if new; PR_ID_NONE (out
 * of memory). Same thread rules as pr_engine_merge_counts. */
uint32_t pr_engine_store_intern(struct pr_engine *e, const char *id, size_t len);

#endif
