/* day_set.c - see day_set.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "day_set.h"
#include "hash_mix.h"
#include "huge_alloc.h"

#define EMPTY UINT64_MAX

static int alloc_keys(struct pr_day_set *s, uint64_t n)
{
	s->keys = pr_huge_alloc(n * sizeof *s->keys);
	if (!s->keys)
		return -ENOMEM;
	memset(s->keys, 0xff, n * sizeof *s->keys);
	s->mask = n - 1;
	return 0;
}

int pr_day_set_init(struct pr_day_set *s, uint64_t capacity_hint)
{
	uint64_t n = 64;
	while (n < capacity_hint * 2)
		n <<= 1;
	s->count = 0;
	return alloc_keys(s, n);
}

void pr_day_set_destroy(struct pr_day_set *s)
{
	pr_huge_free(s->keys, (s->mask + 1) * sizeof *s->keys);
	s->keys = NULL;
}

static void put(struct pr_day_set *s, uint64_t key)
{
	uint64_t i = pr_hash_mix(key) & s->mask;
	while (s->keys[i] != EMPTY)
		i = (i + 1) & s->mask;
	s->keys[i] = key;
}

static int grow(struct pr_day_set *s)
{
	struct pr_day_set bigger = { .count = s->count };
	if (alloc_keys(&bigger, (s->mask + 1) * 2) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i <= s->mask; i++)
		if (s->keys[i] != EMPTY)
			put(&bigger, s->keys[i]);
	pr_huge_free(s->keys, (s->mask + 1) * sizeof *s->keys);
	*s = bigger;
	return 0;
}

int pr_day_set_insert(struct pr_day_set *s, uint32_t customer, int32_t day)
{
	uint64_t key = (uint64_t)customer << 32 | (uint32_t)day;
	uint64_t i = pr_hash_mix(key) & s->mask;
	for (; s->keys[i] != EMPTY; i = (i + 1) & s->mask)
		if (s->keys[i] == key)
			return 0;
	if ((s->count + 1) * 2 > s->mask + 1) {
		if (grow(s) < 0)
			return -ENOMEM;
		put(s, key);
	} else {
		s->keys[i] = key;
	}
	s->count++;
	return 1;
}
