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
 */
#ifndef PARETO_ID_DIRECTORY_H
#define PARETO_ID_DIRECTORY_H

#include "engine_internal.h"

struct pr_id_directory {
	const struct pr_id_entry **chunks[PR_SHARDS]; /* owned arrays of borrowed chunks */
	uint32_t count[PR_SHARDS], capacity[PR_SHARDS];
};

void pr_id_directory_init(struct pr_id_directory *d);
void pr_id_directory_destroy(struct pr_id_directory *d);

/* A copy of src's chunk pointers (for a thread that must not see src grow).
 * 0 or -ENOMEM (nothing to destroy). */
int pr_id_directory_copy(struct pr_id_directory *dst, const struct pr_id_directory *src);

/* Appends chunk number count[shard] of a shard. 0 or -ENOMEM. */
int pr_id_directory_add(struct pr_id_directory *d, uint32_t shard,
			const struct pr_id_entry *chunk);

/* The id entry of a customer ref whose chunk was added. */
static inline const struct pr_id_entry *pr_id_directory_at(const struct pr_id_directory *d,
							   uint32_t ref)
{
	uint32_t local = ref >> PR_SHARD_BITS;
	return &d->chunks[ref & (PR_SHARDS - 1)][local >> PR_ID_CHUNK_SHIFT]
			 [local & ((1u << PR_ID_CHUNK_SHIFT) - 1)];
}

#endif
