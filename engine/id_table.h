/*
 * id_table.h - exact byte-string ids to dense indexes, with stable storage.
 *
 * Owns an open-addressing hash index (linear probing, power-of-two size,
 * load <= 3/4) over ids stored exactly in an arena, and a chunked array of
 * fixed-size values, one per id, that never moves once allocated (so a
 * pointer to a value stays valid while the table grows, which later lets
 * readers on other threads hold on to it).
 *
 * Keys are hashed with XXH3-64 unless a test installs another hash. Two
 * different ids are never merged: a 4-byte slot holds an 8-bit hash tag
 * and the dense index, and a tag match is confirmed by comparing the id
 * bytes, which for short ids sit in the 16-byte entry itself. (An 8-byte
 * slot with a 32-bit tag cost 52 bytes a customer at 10M customers in
 * slots alone; an 8-bit tag sends one probe in 256 past a foreign slot to
 * the entry: at load 3/4, under 1% of the lookups of a known id and about
 * 3% of those of a new one.) A table holds at most
 * PR_ID_MAX ids: the 2^24 - 1 an engine shard holds, and stores.
 *
 * Cost: insert and find O(1) expected; growth doubles the slot array and
 * re-inserts indexes, hashing the ids again (ids and values do not move;
 * an entry keeps no hash: 8 bytes a customer that only growth would read).
 *
 * Threads: one writer (upsert, values). Other threads may look ids up
 * meanwhile (pr_id_table_find, pr_id_table_entry), without locks, in a
 * table shared with pr_id_table_share (paretod's server thread beside its
 * apply threads). What they read is only ever replaced whole or filled in,
 * never changed in place:
 *  - a slot goes once from empty to full, stored with release after the
 *    entry it names was written; a finder loads slots with acquire, so an
 *    id it finds has its bytes;
 *  - growth fills a new slot array and publishes it with its mask (struct
 *    pr_id_slots) by one release store; finders load that with acquire,
 *    and a finder still in the old array misses only ids added since;
 *  - the chunk pointers (struct pr_id_chunks) are copied into a larger
 *    array, published the same way, when they fill;
 *  - entries are written once, before their slot, and chunks never move.
 * A replaced array is kept, not freed, while the table is shared: a reader
 * may still be in it. pr_id_table_reclaim frees them once no reader can be
 * (paretod: when its apply threads are drained, on the reading thread). So
 * at most one copy of each array's earlier sizes (under its own size) is
 * held between two reclaims.
 */
#ifndef PARETO_ID_TABLE_H
#define PARETO_ID_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t (*pr_hash_fn)(const void *bytes, size_t len);

#define PR_ID_NONE UINT32_MAX

/* The most ids a table holds: indexes + 1 fill a slot's low 24 bits. */
#define PR_ID_INDEX_BITS 24
#define PR_ID_MAX ((1u << PR_ID_INDEX_BITS) - 1)

/* Entries and values live in chunks of 2^PR_ID_CHUNK_SHIFT. */
#define PR_ID_CHUNK_SHIFT 12
#define PR_ID_CHUNK_MASK ((1u << PR_ID_CHUNK_SHIFT) - 1)

/* Ids up to this long live in their entry: a lookup that finds the entry
 * has the bytes to compare in the same cache line. 15 holds EAN-13 loyalty
 * cards and 13-character ids, which at 12 cost a lookup a third cache miss
 * (the arena): paretod's RANK on 13-byte ids spent 41% of its CPU in
 * pr_id_table_find. */
#define PR_ID_INLINE_BYTES 15

/* The longest id a table holds: its length fits the entry's byte (records
 * hold customers up to 64 bytes and stores up to 32). */
#define PR_ID_MAX_LEN 255

/* 16 bytes: the id itself if it fits, else where it is in the table's arena. */
struct pr_id_entry {
	uint8_t len;
	/* The id (len <= PR_ID_INLINE_BYTES), or a pointer to it in its first
	 * 8 bytes: read through pr_id_entry_bytes. */
	char bytes[PR_ID_INLINE_BYTES];
};
_Static_assert(sizeof(struct pr_id_entry) == 16, "four entries to a cache line");

/* An entry's id bytes (len of them), valid while its table lives. */
static inline const char *pr_id_entry_bytes(const struct pr_id_entry *e)
{
	if (e->len <= PR_ID_INLINE_BYTES)
		return e->bytes;
	const char *arena;
	memcpy(&arena, e->bytes, sizeof arena);
	return arena;
}

/* The slot array as a finder sees it: the slots with their mask, replaced
 * whole when the table grows. */
struct pr_id_slots {
	uint32_t *slots;   /* tag << 24 | (index + 1); 0 is empty */
	uint64_t mask;     /* slot count - 1 */
	struct pr_id_slots *retired_next;
};

/* Where each chunk of ids keeps its entries and values. */
struct pr_id_chunk {
	struct pr_id_entry *entries;
	unsigned char *values; /* zero-initialised */
};

struct pr_id_chunks {
	uint32_t capacity;
	struct pr_id_chunks *retired_next;
	struct pr_id_chunk chunk[];
};

struct pr_id_table {
	/* The writer's copy of the current slot array (shared->slots and
	 * ->mask): its probes need not go through the published pointer. */
	uint32_t *slots;
	uint64_t mask;
	uint32_t count;
	uint32_t value_bytes;
	pr_hash_fn hash;
	/* Written by the writer with release, read by finders with acquire
	 * (id_table.h's header comment). Owned. */
	struct pr_id_slots *shared;
	struct pr_id_chunks *chunks;
	uint32_t chunk_count;
	char *arena;        /* current arena block; blocks linked through their
			       first 8 bytes, freed at destroy */
	size_t arena_used, arena_size;
	/* Sharing (pr_id_table_share): replaced arrays wait here for
	 * pr_id_table_reclaim, and each one counts in *retired; NULL when
	 * not shared (they are freed at once). */
	struct pr_id_slots *retired_slots;
	struct pr_id_chunks *retired_chunks;
	_Atomic uint64_t *retired;
};

/*
 * capacity_hint: expected ids (the table grows past it). hash: NULL for
 * XXH3-64. value_bytes: size of the per-id value, a multiple of 8.
 */
int pr_id_table_init(struct pr_id_table *t, uint64_t capacity_hint,
		     uint32_t value_bytes, pr_hash_fn hash);
void pr_id_table_destroy(struct pr_id_table *t);

/* Emptied and sized for capacity_hint ids, keeping its hash, value size and
 * sharing; with no reader on other threads. 0 or -ENOMEM (then empty and
 * as small as a new table, or destroyed if even that failed). */
int pr_id_table_reset(struct pr_id_table *t, uint64_t capacity_hint);

/* Lets other threads find ids while the writer adds them (see the header
 * comment): arrays the table outgrows are kept until pr_id_table_reclaim,
 * each one counted in *retired (relaxed: a hint for whoever reclaims). */
void pr_id_table_share(struct pr_id_table *t, _Atomic uint64_t *retired);

/* Frees the arrays the table outgrew; only while neither its writer nor
 * any reader is in it (and the writer's last writes are visible here). */
void pr_id_table_reclaim(struct pr_id_table *t);

uint64_t pr_id_hash(const struct pr_id_table *t, const void *id, size_t len);

/*
 * Finds or inserts id (1..PR_ID_MAX_LEN bytes) with its precomputed hash.
 * Returns the dense index and sets *created, or PR_ID_NONE if memory ran
 * out, the table holds PR_ID_MAX ids or the id is longer.
 */
uint32_t pr_id_table_upsert(struct pr_id_table *t, const void *id, size_t len,
			    uint64_t hash, bool *created);

/* The index of id, or PR_ID_NONE; in a shared table, on any thread while
 * the writer adds ids (the header comment). */
uint32_t pr_id_table_find(const struct pr_id_table *t, const void *id, size_t len);

/*
 * A lookup of `hash` in two steps ahead of it, so that its cache misses
 * overlap other work: first the slot it starts at; later, once that slot
 * has arrived, the entry and value it names if its tag matches.
 */
static inline void pr_id_table_prefetch(const struct pr_id_table *t, uint64_t hash)
{
	__builtin_prefetch(&t->slots[hash & t->mask]);
}

/* A slot's tag: hash bits 32..39, which neither the slot's position (the
 * low bits) nor the shard (the top 8, engine_internal.h) depend on. */
static inline uint32_t pr_id_slot_tag(uint64_t hash)
{
	return (uint32_t)(hash >> 8) & ~PR_ID_MAX;
}

/* The index a slot names if it is not empty and its tag is `tag`, else
 * PR_ID_NONE. */
static inline uint32_t pr_id_slot_index(uint32_t slot, uint32_t tag)
{
	return !slot || (slot & ~PR_ID_MAX) != tag ? PR_ID_NONE : (slot & PR_ID_MAX) - 1;
}

/* The index the first slot of `hash` with a matching tag names, among the
 * first PR_ID_GUESS_SLOTS up to an empty one, else PR_ID_NONE: a guess for
 * prefetching (no id bytes compared). At 3/4 load many ids sit a slot or
 * two past their first (linear probing), and looking at the first only
 * left their entries unfetched. */
#define PR_ID_GUESS_SLOTS 4
static inline uint32_t pr_id_table_guess(const struct pr_id_table *t, uint64_t hash)
{
	uint32_t tag = pr_id_slot_tag(hash);
	uint64_t s = hash & t->mask;
	for (int i = 0; i < PR_ID_GUESS_SLOTS && t->slots[s]; i++, s = (s + 1) & t->mask) {
		uint32_t index = pr_id_slot_index(t->slots[s], tag);
		if (index != PR_ID_NONE)
			return index;
	}
	return PR_ID_NONE;
}

/* Chunk c of ids: on the writer's thread, or on any for a chunk that held
 * an id when this thread learnt of it (the pointer array is copied as it
 * grows: acquire pairs with the writer's release). */
static inline const struct pr_id_chunk *pr_id_table_chunk(const struct pr_id_table *t, uint32_t c)
{
	return &__atomic_load_n(&t->chunks, __ATOMIC_ACQUIRE)->chunk[c];
}

/* A value, on the writer's thread, or on another while the writer is idle
 * and its writes visible there (values are written without atomics). */
static inline void *pr_id_table_value(const struct pr_id_table *t, uint32_t index)
{
	return t->chunks->chunk[index >> PR_ID_CHUNK_SHIFT].values +
	       (size_t)(index & PR_ID_CHUNK_MASK) * t->value_bytes;
}

static inline void pr_id_table_prefetch_value(const struct pr_id_table *t, uint64_t hash)
{
	uint32_t index = pr_id_table_guess(t, hash);
	if (index == PR_ID_NONE)
		return;
	const unsigned char *value = pr_id_table_value(t, index);
	__builtin_prefetch(&t->chunks->chunk[index >> PR_ID_CHUNK_SHIFT].entries[index & PR_ID_CHUNK_MASK]);
	for (uint32_t at = 0; at < t->value_bytes; at += 64)
		__builtin_prefetch(value + at, 1);
	__builtin_prefetch(value + t->value_bytes - 1, 1);
}

/* The entry of an index: on any thread that learnt of the index after its
 * id was added (found it, or was handed it through a release/acquire). */
static inline const struct pr_id_entry *pr_id_table_entry(const struct pr_id_table *t,
							  uint32_t index)
{
	return &pr_id_table_chunk(t, index >> PR_ID_CHUNK_SHIFT)->entries[index & PR_ID_CHUNK_MASK];
}

/* Byte order of ids, then shorter first: the tie-break of every ranking. */
static inline int pr_id_compare(const char *a, uint32_t alen, const char *b,
				uint32_t blen)
{
	int c = __builtin_memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

#endif
