/*
 * pair_table.h - (store, customer) pairs to dense indexes with stable values.
 *
 * The per-store figures need each customer's revenue in each store. Keys
 * are the two dense indexes packed in 64 bits and stored in the slot itself,
 * so a lookup touches one slot (no id bytes to compare), then the value.
 * Open addressing, linear probing, load <= 1/2, doubled when full; values
 * in chunks that never move. Single writer.
 */
#ifndef PARETO_PAIR_TABLE_H
#define PARETO_PAIR_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#define PR_PAIR_CHUNK_SHIFT 12
#define PR_PAIR_NONE UINT32_MAX

struct pr_pair_slot {
	uint64_t key;   /* store << 32 | customer */
	uint32_t index; /* dense index + 1; 0 is empty */
	uint32_t unused;
};

struct pr_pair_table {
	struct pr_pair_slot *slots; /* owned */
	uint64_t mask;
	uint32_t count;
	uint32_t value_bytes;
	unsigned char **chunks; /* owned; zero-initialised values */
	uint32_t chunk_count, chunk_capacity;
};

int pr_pair_table_init(struct pr_pair_table *t, uint64_t capacity_hint,
		       uint32_t value_bytes);
void pr_pair_table_destroy(struct pr_pair_table *t);

static inline uint64_t pr_pair_key(uint32_t store, uint32_t customer)
{
	return (uint64_t)store << 32 | customer;
}

/* Finds or inserts; PR_PAIR_NONE when memory ran out. */
uint32_t pr_pair_table_upsert(struct pr_pair_table *t, uint64_t key, bool *created);
uint32_t pr_pair_table_find(const struct pr_pair_table *t, uint64_t key);

static inline void *pr_pair_table_value(const struct pr_pair_table *t, uint32_t index)
{
	return t->chunks[index >> PR_PAIR_CHUNK_SHIFT] +
	       (size_t)(index & ((1u << PR_PAIR_CHUNK_SHIFT) - 1)) * t->value_bytes;
}

#endif
