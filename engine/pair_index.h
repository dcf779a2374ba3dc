/*
 * pair_index.h - (store, customer) to pair index, for the few customers who
 * buy in many stores.
 *
 * Pairs are found through each customer's short list (engine_internal.h);
 * a customer seen in more than a handful of stores (a shared "guest" card,
 * a company account) would make that list long, so its pairs go here too.
 * Keys are the two dense indexes packed in 64 bits and kept in the slot, so
 * a lookup touches one slot. Open addressing, linear probing, load <= 1/2,
 * doubled when full. Single writer.
 */
#ifndef PARETO_PAIR_INDEX_H
#define PARETO_PAIR_INDEX_H

#include <stdint.h>

#define PR_PAIR_INDEX_NONE UINT32_MAX

struct pr_pair_slot {
	uint64_t key;   /* store << 32 | local customer index */
	uint32_t value; /* pair index + 1; 0 is empty */
	uint32_t unused;
};

struct pr_pair_index {
	struct pr_pair_slot *slots; /* owned; NULL until the first insert */
	uint64_t mask;
	uint64_t count;
};

static inline uint64_t pr_pair_index_key(uint32_t store, uint32_t customer)
{
	return (uint64_t)store << 32 | customer;
}

void pr_pair_index_destroy(struct pr_pair_index *x);

/* Makes room for `more` inserts that then cannot fail. 0 or -ENOMEM. */
int pr_pair_index_reserve(struct pr_pair_index *x, uint64_t more);

/* Adds a key not yet present; room must have been reserved. */
void pr_pair_index_insert(struct pr_pair_index *x, uint64_t key, uint32_t value);

/* Hints the CPU to fetch the slot a lookup of key starts at. */
void pr_pair_index_prefetch(const struct pr_pair_index *x, uint64_t key);

/* The value of key, or PR_PAIR_INDEX_NONE. */
uint32_t pr_pair_index_find(const struct pr_pair_index *x, uint64_t key);

#endif
