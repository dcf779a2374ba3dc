/*
 * stable_array.h - a growing array of fixed-size values that never move.
 *
 * Values live in chunks of 2^PR_STABLE_CHUNK_SHIFT, so growing adds a chunk
 * instead of copying: a pointer to a value stays valid for the array's life
 * (readers on other threads may hold one), and no growth costs a copy of
 * everything before it. New values are zero. Single writer.
 */
#ifndef PARETO_STABLE_ARRAY_H
#define PARETO_STABLE_ARRAY_H

#include <stdint.h>

#define PR_STABLE_CHUNK_SHIFT 12
#define PR_STABLE_NONE UINT32_MAX

struct pr_stable_array {
	unsigned char **chunks; /* owned */
	uint32_t count;
	uint32_t value_bytes;
	uint32_t chunk_count, chunk_capacity;
};

void pr_stable_array_init(struct pr_stable_array *a, uint32_t value_bytes);
void pr_stable_array_destroy(struct pr_stable_array *a);

/* Appends a zeroed value: its index, or PR_STABLE_NONE if memory or the
 * index space ran out. */
uint32_t pr_stable_array_push(struct pr_stable_array *a);

static inline void *pr_stable_array_at(const struct pr_stable_array *a, uint32_t index)
{
	return a->chunks[index >> PR_STABLE_CHUNK_SHIFT] +
	       (size_t)(index & ((1u << PR_STABLE_CHUNK_SHIFT) - 1)) * a->value_bytes;
}

#endif
