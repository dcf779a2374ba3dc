/* pair_table.c - see pair_table.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash_mix.h"
#include "huge_alloc.h"
#include "pair_table.h"

#define CHUNK_BYTES(t) (((size_t)1 << PR_PAIR_CHUNK_SHIFT) * (t)->value_bytes)

int pr_pair_table_init(struct pr_pair_table *t, uint64_t capacity_hint,
		       uint32_t value_bytes)
{
	memset(t, 0, sizeof *t);
	uint64_t n = 16;
	while (n < capacity_hint * 2)
		n <<= 1;
	t->slots = pr_huge_alloc(n * sizeof *t->slots);
	if (!t->slots)
		return -ENOMEM;
	t->mask = n - 1;
	t->value_bytes = value_bytes;
	return 0;
}

void pr_pair_table_destroy(struct pr_pair_table *t)
{
	pr_huge_free(t->slots, (t->mask + 1) * sizeof *t->slots);
	for (uint32_t c = 0; c < t->chunk_count; c++)
		pr_huge_free(t->chunks[c], CHUNK_BYTES(t));
	free(t->chunks);
	memset(t, 0, sizeof *t);
}

static struct pr_pair_slot *probe(struct pr_pair_slot *slots, uint64_t mask, uint64_t key)
{
	uint64_t i = pr_hash_mix(key) & mask;
	while (slots[i].index && slots[i].key != key)
		i = (i + 1) & mask;
	return &slots[i];
}

uint32_t pr_pair_table_find(const struct pr_pair_table *t, uint64_t key)
{
	const struct pr_pair_slot *s = probe(t->slots, t->mask, key);
	return s->index ? s->index - 1 : PR_PAIR_NONE;
}

static int grow(struct pr_pair_table *t)
{
	uint64_t n = (t->mask + 1) * 2;
	struct pr_pair_slot *slots = pr_huge_alloc(n * sizeof *slots);
	if (!slots)
		return -ENOMEM;
	for (uint64_t i = 0; i <= t->mask; i++)
		if (t->slots[i].index)
			*probe(slots, n - 1, t->slots[i].key) = t->slots[i];
	pr_huge_free(t->slots, (t->mask + 1) * sizeof *t->slots);
	t->slots = slots;
	t->mask = n - 1;
	return 0;
}

static int add_chunk(struct pr_pair_table *t)
{
	if (t->chunk_count == t->chunk_capacity) {
		uint32_t cap = t->chunk_capacity ? t->chunk_capacity * 2 : 16;
		unsigned char **c = realloc(t->chunks, cap * sizeof *c);
		if (!c)
			return -ENOMEM;
		t->chunks = c;
		t->chunk_capacity = cap;
	}
	unsigned char *values = pr_huge_alloc(CHUNK_BYTES(t));
	if (!values)
		return -ENOMEM;
	t->chunks[t->chunk_count++] = values;
	return 0;
}

uint32_t pr_pair_table_upsert(struct pr_pair_table *t, uint64_t key, bool *created)
{
	struct pr_pair_slot *s = probe(t->slots, t->mask, key);
	if (s->index) {
		*created = false;
		return s->index - 1;
	}
	if (t->count >= PR_PAIR_NONE - 1)
		return PR_PAIR_NONE;
	if ((t->count >> PR_PAIR_CHUNK_SHIFT) >= t->chunk_count && add_chunk(t) < 0)
		return PR_PAIR_NONE;
	if ((uint64_t)(t->count + 1) * 2 > t->mask + 1) {
		if (grow(t) < 0)
			return PR_PAIR_NONE;
		s = probe(t->slots, t->mask, key);
	}
	s->key = key;
	s->index = ++t->count;
	*created = true;
	return s->index - 1;
}
