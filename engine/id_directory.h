/*
 * id_directory.h - customer id entries by customer ref, for a thread other
 * than the engine's writer.
 *
 * The writer's id tables keep each id in a 16-byte entry inside chunks that
 * never move (id_table.h), but the arrays of chunk pointers are realloc'ed
 * as the tables grow, so another thread must not walk them. This directory
 * is that thread's own copy of the chunk pointers: the writer hands over
 * each new chunk's pointer (paretod's ranker receives them in its change
 * batches, through a ring whose release/acquire pair makes the entries the
 * writer filled before the hand-over visible), and the entries themselves
 * are never written again once their customer exists.
 *
 * Owns the per-shard pointer arrays, not the chunks (the engine's).
 * Single-threaded: used by its owner thread only.
 *
 * Order keys (pr_id_directory_key): ranking ties are ordered by id, and an
 * id is a cache miss or two away (its entry, and the arena for a long one).
 * A key is 8 bytes by ref in a dense array, ordered like the ids where keys
 * differ (equal keys: the ids decide), so a comparison reads ids only on
 * equal keys. Card numbers and padded ids share long prefixes, where an
 * id's first bytes tell little; so the directory picks a prefix P that
 * most ids begin with (from a sample, again each time the customers
 * double), and a key is a class in its top 2 bits, then 7 id bytes:
 *   class 1: the id begins with P; the 7 bytes after P
 *   class 0 or 2: it does not, and comes before (0) or after (2) every id
 *     that does (it differs from P at a smaller or larger byte, or is a
 *     proper prefix of P: 0); its first 7 bytes
 * always big-endian, zero past the id's end. An id that does not begin
 * with P is in order with those that do by its class, and two ids of a
 * class compare like their 7 bytes where those differ. Another P makes
 * every key again.
 */
#ifndef PARETO_ID_DIRECTORY_H
#define PARETO_ID_DIRECTORY_H

#include "engine_internal.h"

struct pr_id_directory {
	const struct pr_id_entry **chunks[PR_SHARDS]; /* owned arrays of borrowed chunks */
	uint32_t count[PR_SHARDS], capacity[PR_SHARDS];
	/* Order keys by local index, for keyed[shard] customers; keys_on once
	 * every customer handed over has one (false in a copy, and for good
	 * after an allocation failed: comparisons then read the ids). */
	uint64_t *keys[PR_SHARDS];
	uint32_t keyed[PR_SHARDS], key_capacity[PR_SHARDS];
	bool keys_on, keys_failed;
	uint64_t chosen_at;  /* customers when P was chosen (0: not yet) */
	uint32_t prefix_len; /* P */
	unsigned char prefix[PR_CUSTOMER_MAX_BYTES];
};

void pr_id_directory_init(struct pr_id_directory *d);
void pr_id_directory_destroy(struct pr_id_directory *d);

/* A copy of src's chunk pointers (for a thread that must not see src grow),
 * without keys. 0 or -ENOMEM (nothing to destroy). */
int pr_id_directory_copy(struct pr_id_directory *dst, const struct pr_id_directory *src);

/* Appends chunk number count[shard] of a shard. 0 or -ENOMEM. */
int pr_id_directory_add(struct pr_id_directory *d, uint32_t shard,
			const struct pr_id_entry *chunk);

/* Keys the customers [keyed[s], customers[s]) of each shard s, whose
 * chunks were added (and every one again when P changes). Turns keys off
 * for good when memory runs out. */
void pr_id_directory_key(struct pr_id_directory *d, const uint32_t *customers);

/* The order key of a keyed customer (keys_on). */
static inline uint64_t pr_id_directory_key_of(const struct pr_id_directory *d, uint32_t ref)
{
	return d->keys[ref & (PR_SHARDS - 1)][ref >> PR_SHARD_BITS];
}

/* The id entry of a customer ref whose chunk was added. */
static inline const struct pr_id_entry *pr_id_directory_at(const struct pr_id_directory *d,
							   uint32_t ref)
{
	uint32_t local = ref >> PR_SHARD_BITS;
	return &d->chunks[ref & (PR_SHARDS - 1)][local >> PR_ID_CHUNK_SHIFT]
			 [local & ((1u << PR_ID_CHUNK_SHIFT) - 1)];
}

#endif
