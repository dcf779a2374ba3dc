/* pair_index.c - see pair_index.h. */
#include <errno.h>
#include <stddef.h>

#include "hash_mix.h"
#include "huge_alloc.h"
#include "pair_index.h"

void pr_pair_index_destroy(struct pr_pair_index *x)
{
	if (x->slots)
		pr_huge_free(x->slots, (x->mask + 1) * sizeof *x->slots);
	*x = (struct pr_pair_index){ 0 };
}

static struct pr_pair_slot *probe(struct pr_pair_slot *slots, uint64_t mask, uint64_t key)
{
	uint64_t i = pr_hash_mix(key) & mask;
	while (slots[i].value && slots[i].key != key)
		i = (i + 1) & mask;
	return &slots[i];
}

int pr_pair_index_reserve(struct pr_pair_index *x, uint64_t more)
{
	uint64_t n = x->slots ? x->mask + 1 : 0;
	if ((x->count + more) * 2 <= n)
		return 0;
	if (n == 0)
		n = 64;
	while ((x->count + more) * 2 > n)
		n *= 2;
	struct pr_pair_slot *slots = pr_huge_alloc(n * sizeof *slots);
	if (!slots)
		return -ENOMEM;
	for (uint64_t i = 0; x->slots && i <= x->mask; i++)
		if (x->slots[i].value)
			*probe(slots, n - 1, x->slots[i].key) = x->slots[i];
	if (x->slots)
		pr_huge_free(x->slots, (x->mask + 1) * sizeof *x->slots);
	x->slots = slots;
	x->mask = n - 1;
	return 0;
}

void pr_pair_index_insert(struct pr_pair_index *x, uint64_t key, uint32_t value)
{
	struct pr_pair_slot *s = probe(x->slots, x->mask, key);
	s->key = key;
	s->value = value + 1;
	x->count++;
}

void pr_pair_index_prefetch(const struct pr_pair_index *x, uint64_t key)
{
	if (x->slots)
		__builtin_prefetch(&x->slots[pr_hash_mix(key) & x->mask]);
}

uint32_t pr_pair_index_find(const struct pr_pair_index *x, uint64_t key)
{
	if (!x->slots)
		return PR_PAIR_INDEX_NONE;
	const struct pr_pair_slot *s = probe(x->slots, x->mask, key);
	return s->value ? s->value - 1 : PR_PAIR_INDEX_NONE;
}
