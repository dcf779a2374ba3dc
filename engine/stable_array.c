/* stable_array.c - see stable_array.h. */
#include <stdlib.h>
#include <string.h>

#include "huge_alloc.h"
#include "stable_array.h"

#define CHUNK_BYTES(a) (((size_t)1 << PR_STABLE_CHUNK_SHIFT) * (a)->value_bytes)

void pr_stable_array_init(struct pr_stable_array *a, uint32_t value_bytes)
{
	memset(a, 0, sizeof *a);
	a->value_bytes = value_bytes;
}

void pr_stable_array_destroy(struct pr_stable_array *a)
{
	for (uint32_t c = 0; c < a->chunk_count; c++)
		pr_huge_free(a->chunks[c], CHUNK_BYTES(a));
	free(a->chunks);
	memset(a, 0, sizeof *a);
}

static int add_chunk(struct pr_stable_array *a)
{
	if (a->chunk_count == a->chunk_capacity) {
		uint32_t cap = a->chunk_capacity ? a->chunk_capacity * 2 : 16;
		unsigned char **bigger = realloc(a->chunks, cap * sizeof *bigger);
		if (!bigger)
			return -1;
		a->chunks = bigger;
		a->chunk_capacity = cap;
	}
	unsigned char *values = pr_huge_alloc(CHUNK_BYTES(a));
	if (!values)
		return -1;
	a->chunks[a->chunk_count++] = values;
	return 0;
}

uint32_t pr_stable_array_push(struct pr_stable_array *a)
{
	if (a->count >= PR_STABLE_NONE - 1)
		return PR_STABLE_NONE;
	if ((a->count >> PR_STABLE_CHUNK_SHIFT) >= a->chunk_count && add_chunk(a) < 0)
		return PR_STABLE_NONE;
	return a->count++;
}
