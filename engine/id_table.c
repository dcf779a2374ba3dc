/* id_table.c - see id_table.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Inlined: the hash runs once per record and a library call costs as much. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "huge_alloc.h"
#include "id_table.h"

#define CHUNK_IDS (1u << PR_ID_CHUNK_SHIFT)
#define FIRST_CHUNKS 16    /* chunk pointers a new table has room for */
#define ARENA_BLOCK_BYTES (1u << 20)
#define ARENA_LINK_BYTES 8 /* each block starts with the pointer to the previous */

static uint64_t xxh3_hash(const void *bytes, size_t len)
{
	return XXH3_64bits(bytes, len);
}

/* Slots fill up to 3/4: with 16 four-byte slots to a cache line, the
 * longer probe runs of linear probing stay mostly in the line the
 * look-ahead fetched, and a table of n ids with P/2 < n <= 3P/4 (P a
 * power of two) takes P slots instead of 2P (67 MB less in the report at
 * 10M customers); ingest measured no slower. */
static bool over_load(uint64_t ids, uint64_t slots)
{
	return ids * 4 > slots * 3;
}

static uint64_t slot_count_for(uint64_t ids)
{
	uint64_t n = 16;
	while (over_load(ids, n))
		n <<= 1;
	return n;
}

static struct pr_id_slots *slots_new(uint64_t n)
{
	struct pr_id_slots *v = malloc(sizeof *v);
	uint32_t *slots = pr_huge_alloc(n * sizeof *slots);
	if (!v || !slots) {
		free(v);
		pr_huge_free(slots, n * sizeof *slots);
		return NULL;
	}
	*v = (struct pr_id_slots){ .slots = slots, .mask = n - 1 };
	return v;
}

static void slots_free(struct pr_id_slots *v)
{
	pr_huge_free(v->slots, (v->mask + 1) * sizeof *v->slots);
	free(v);
}

/* The writer's side of a published array replaced: freed, or kept for
 * pr_id_table_reclaim while readers may be in it. */
static void retire_slots(struct pr_id_table *t, struct pr_id_slots *v)
{
	if (!t->retired) {
		slots_free(v);
		return;
	}
	v->retired_next = t->retired_slots;
	t->retired_slots = v;
	atomic_fetch_add_explicit(t->retired, 1, memory_order_relaxed);
}

static void retire_chunks(struct pr_id_table *t, struct pr_id_chunks *c)
{
	if (!t->retired) {
		free(c);
		return;
	}
	c->retired_next = t->retired_chunks;
	t->retired_chunks = c;
	atomic_fetch_add_explicit(t->retired, 1, memory_order_relaxed);
}

int pr_id_table_init(struct pr_id_table *t, uint64_t capacity_hint,
		     uint32_t value_bytes, pr_hash_fn hash)
{
	memset(t, 0, sizeof *t);
	t->hash = hash ? hash : xxh3_hash;
	t->value_bytes = value_bytes;
	t->shared = slots_new(slot_count_for(capacity_hint));
	t->chunks = malloc(sizeof *t->chunks + FIRST_CHUNKS * sizeof t->chunks->chunk[0]);
	if (t->chunks)
		*t->chunks = (struct pr_id_chunks){ .capacity = FIRST_CHUNKS };
	if (!t->shared || !t->chunks) {
		pr_id_table_destroy(t);
		return -ENOMEM;
	}
	t->slots = t->shared->slots;
	t->mask = t->shared->mask;
	return 0;
}

void pr_id_table_reclaim(struct pr_id_table *t)
{
	while (t->retired_slots) {
		struct pr_id_slots *next = t->retired_slots->retired_next;
		slots_free(t->retired_slots);
		t->retired_slots = next;
	}
	while (t->retired_chunks) {
		struct pr_id_chunks *next = t->retired_chunks->retired_next;
		free(t->retired_chunks);
		t->retired_chunks = next;
	}
}

void pr_id_table_share(struct pr_id_table *t, _Atomic uint64_t *retired)
{
	t->retired = retired;
}

void pr_id_table_destroy(struct pr_id_table *t)
{
	pr_id_table_reclaim(t);
	if (t->shared)
		slots_free(t->shared);
	for (uint32_t c = 0; t->chunks && c < t->chunk_count; c++) {
		free(t->chunks->chunk[c].entries);
		pr_huge_free(t->chunks->chunk[c].values, (size_t)CHUNK_IDS * t->value_bytes);
	}
	free(t->chunks);
	char *block = t->arena;
	while (block) {
		char *prev;
		memcpy(&prev, block, sizeof prev);
		free(block);
		block = prev;
	}
	memset(t, 0, sizeof *t);
}

int pr_id_table_reset(struct pr_id_table *t, uint64_t capacity_hint)
{
	pr_hash_fn hash = t->hash;
	uint32_t value_bytes = t->value_bytes;
	_Atomic uint64_t *retired = t->retired;
	pr_id_table_destroy(t);
	int rc = pr_id_table_init(t, capacity_hint, value_bytes, hash);
	if (rc < 0 && pr_id_table_init(t, 0, value_bytes, hash) < 0)
		return rc;
	pr_id_table_share(t, retired);
	return rc;
}

uint64_t pr_id_hash(const struct pr_id_table *t, const void *id, size_t len)
{
	return t->hash(id, len);
}

static inline uint32_t slot_of(uint64_t hash, uint32_t index)
{
	return pr_id_slot_tag(hash) | (index + 1);
}

static int grow_slots(struct pr_id_table *t)
{
	uint64_t n = (t->mask + 1) * 2;
	struct pr_id_slots *v = slots_new(n);
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->count; i++) {
		const struct pr_id_entry *e = pr_id_table_entry(t, i);
		uint64_t h = t->hash(pr_id_entry_bytes(e), e->len);
		uint64_t s = h & (n - 1);
		while (v->slots[s])
			s = (s + 1) & (n - 1);
		v->slots[s] = slot_of(h, i);
	}
	struct pr_id_slots *old = t->shared;
	__atomic_store_n(&t->shared, v, __ATOMIC_RELEASE);
	retire_slots(t, old);
	t->slots = v->slots;
	t->mask = v->mask;
	return 0;
}

static const char *arena_copy(struct pr_id_table *t, const void *id, size_t len)
{
	if (t->arena_used + len > t->arena_size) {
		size_t size = ARENA_LINK_BYTES + (len > ARENA_BLOCK_BYTES ? len : ARENA_BLOCK_BYTES);
		char *block = malloc(size);
		if (!block)
			return NULL;
		memcpy(block, &t->arena, sizeof t->arena);
		t->arena = block;
		t->arena_used = ARENA_LINK_BYTES;
		t->arena_size = size;
	}
	char *dst = t->arena + t->arena_used;
	memcpy(dst, id, len);
	t->arena_used += len;
	return dst;
}

static int add_chunk(struct pr_id_table *t)
{
	struct pr_id_chunks *chunks = t->chunks;
	if (t->chunk_count == chunks->capacity) {
		uint32_t cap = chunks->capacity * 2;
		struct pr_id_chunks *larger = malloc(sizeof *larger + cap * sizeof larger->chunk[0]);
		if (!larger)
			return -ENOMEM;
		larger->capacity = cap;
		larger->retired_next = NULL;
		memcpy(larger->chunk, chunks->chunk, t->chunk_count * sizeof chunks->chunk[0]);
		__atomic_store_n(&t->chunks, larger, __ATOMIC_RELEASE);
		retire_chunks(t, chunks);
		chunks = larger;
	}
	struct pr_id_entry *entries = malloc(CHUNK_IDS * sizeof *entries);
	unsigned char *values = pr_huge_alloc((size_t)CHUNK_IDS * t->value_bytes);
	if (!entries || !values) {
		free(entries);
		pr_huge_free(values, (size_t)CHUNK_IDS * t->value_bytes);
		return -ENOMEM;
	}
	/* A reader reaches this pointer only through a slot or a ref handed
	 * over after it (release), so a plain store. */
	chunks->chunk[t->chunk_count] = (struct pr_id_chunk){ entries, values };
	t->chunk_count++;
	return 0;
}

/* Equal bytes, for the short ids of most feeds without a library call:
 * two overlapping loads cover 8..16 bytes, two more 4..7. */
static inline bool same_bytes(const char *a, const char *b, size_t len)
{
	uint64_t x, y, u, v;
	if (len >= 8 && len <= 16) {
		memcpy(&x, a, 8), memcpy(&y, b, 8);
		memcpy(&u, a + len - 8, 8), memcpy(&v, b + len - 8, 8);
		return ((x ^ y) | (u ^ v)) == 0;
	}
	if (len >= 4 && len < 8) {
		uint32_t p, q, r, s;
		memcpy(&p, a, 4), memcpy(&q, b, 4);
		memcpy(&r, a + len - 4, 4), memcpy(&s, b + len - 4, 4);
		return ((p ^ q) | (r ^ s)) == 0;
	}
	return memcmp(a, b, len) == 0;
}

/* The index of id if the slot holds it (tag, then the bytes), else PR_ID_NONE. */
static inline uint32_t slot_holds(const struct pr_id_table *t, uint32_t slot, uint32_t tag,
				  const void *id, size_t len)
{
	uint32_t index = pr_id_slot_index(slot, tag);
	if (index == PR_ID_NONE)
		return PR_ID_NONE;
	const struct pr_id_entry *e = pr_id_table_entry(t, index);
	return e->len == len && same_bytes(pr_id_entry_bytes(e), id, len) ? index : PR_ID_NONE;
}

uint32_t pr_id_table_find(const struct pr_id_table *t, const void *id, size_t len)
{
	uint64_t hash = t->hash(id, len);
	uint32_t tag = pr_id_slot_tag(hash);
	const struct pr_id_slots *v = __atomic_load_n(&t->shared, __ATOMIC_ACQUIRE);
	uint32_t slot;
	for (uint64_t s = hash & v->mask; (slot = __atomic_load_n(&v->slots[s], __ATOMIC_ACQUIRE));
	     s = (s + 1) & v->mask) {
		uint32_t index = slot_holds(t, slot, tag, id, len);
		if (index != PR_ID_NONE)
			return index;
	}
	return PR_ID_NONE;
}

uint32_t pr_id_table_upsert(struct pr_id_table *t, const void *id, size_t len,
			    uint64_t hash, bool *created)
{
	uint32_t tag = pr_id_slot_tag(hash);
	uint64_t s = hash & t->mask;
	for (; t->slots[s]; s = (s + 1) & t->mask) {
		uint32_t index = slot_holds(t, t->slots[s], tag, id, len);
		if (index != PR_ID_NONE) {
			*created = false;
			return index;
		}
	}
	/* Not present: the empty slot s is where it goes, unless we grow. */
	if (t->count >= PR_ID_MAX || len > PR_ID_MAX_LEN)
		return PR_ID_NONE;
	uint32_t index = t->count;
	if ((index >> PR_ID_CHUNK_SHIFT) >= t->chunk_count && add_chunk(t) < 0)
		return PR_ID_NONE;
	struct pr_id_entry *e = &t->chunks->chunk[index >> PR_ID_CHUNK_SHIFT]
					 .entries[index & PR_ID_CHUNK_MASK];
	const char *stored = e->bytes;
	if (len > PR_ID_INLINE_BYTES)
		stored = arena_copy(t, id, len);
	if (!stored)
		return PR_ID_NONE;
	if (over_load((uint64_t)t->count + 1, t->mask + 1)) {
		if (grow_slots(t) < 0)
			return PR_ID_NONE;
		for (s = hash & t->mask; t->slots[s]; s = (s + 1) & t->mask)
			;
	}
	if (len > PR_ID_INLINE_BYTES)
		memcpy(e->bytes, &stored, sizeof stored);
	else if (len)
		memcpy(e->bytes, id, len);
	e->len = (uint8_t)len;
	/* Release: a finder on another thread that sees the slot sees the
	 * entry (and its chunk pointer) written above. */
	__atomic_store_n(&t->slots[s], slot_of(hash, index), __ATOMIC_RELEASE);
	t->count++;
	*created = true;
	return index;
}
