/* id_directory.c - see id_directory.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id_directory.h"

void pr_id_directory_init(struct pr_id_directory *d)
{
	memset(d, 0, sizeof *d);
}

static void keys_free(struct pr_id_directory *d)
{
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		free(d->keys[s]);
		d->keys[s] = NULL;
		d->keyed[s] = d->key_capacity[s] = 0;
	}
	d->keys_on = false;
}

void pr_id_directory_destroy(struct pr_id_directory *d)
{
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		free(d->chunks[s]);
	keys_free(d);
	memset(d, 0, sizeof *d);
}

int pr_id_directory_copy(struct pr_id_directory *dst, const struct pr_id_directory *src)
{
	pr_id_directory_init(dst);
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		if (!src->count[s])
			continue;
		dst->chunks[s] = malloc(src->count[s] * sizeof *dst->chunks[s]);
		if (!dst->chunks[s]) {
			pr_id_directory_destroy(dst);
			return -ENOMEM;
		}
		memcpy(dst->chunks[s], src->chunks[s], src->count[s] * sizeof *dst->chunks[s]);
		dst->count[s] = dst->capacity[s] = src->count[s];
	}
	return 0;
}

int pr_id_directory_add(struct pr_id_directory *d, uint32_t shard,
			const struct pr_id_entry *chunk)
{
	if (d->count[shard] == d->capacity[shard]) {
		uint32_t cap = d->capacity[shard] ? d->capacity[shard] * 2 : 8;
		const struct pr_id_entry **bigger = realloc(d->chunks[shard], cap * sizeof *bigger);
		if (!bigger)
			return -ENOMEM;
		d->chunks[shard] = bigger;
		d->capacity[shard] = cap;
	}
	d->chunks[shard][d->count[shard]++] = chunk;
	return 0;
}

/* 8 id bytes from `from` on, big-endian, zero past the id's end. */
static uint64_t key_from(const struct pr_id_entry *e, uint32_t from)
{
	const unsigned char *b = (const unsigned char *)pr_id_entry_bytes(e);
	uint64_t v = 0;
	for (uint32_t i = from; i < from + 8; i++)
		v = v << 8 | (i < e->len ? b[i] : 0);
	return v;
}

static uint32_t shared_prefix(const unsigned char *a, uint32_t alen, const struct pr_id_entry *e)
{
	const unsigned char *b = (const unsigned char *)pr_id_entry_bytes(e);
	uint32_t n = alen < e->len ? alen : e->len, i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

void pr_id_directory_key(struct pr_id_directory *d, const uint32_t *customers)
{
	if (d->keys_failed)
		return;
	uint32_t shared = d->shared;
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		for (uint32_t local = d->keyed[s]; local < customers[s]; local++) {
			const struct pr_id_entry *e = pr_id_directory_at(d, local << PR_SHARD_BITS | s);
			if (d->first_len == 0) {
				d->first_len = e->len < sizeof d->first ? e->len : sizeof d->first;
				memcpy(d->first, pr_id_entry_bytes(e), d->first_len);
				shared = d->first_len;
			}
			uint32_t n = shared_prefix(d->first, d->first_len, e);
			if (n < shared)
				shared = n;
		}
		if (customers[s] > d->key_capacity[s]) {
			uint32_t cap = d->key_capacity[s] ? d->key_capacity[s] : 64;
			while (cap < customers[s])
				cap *= 2;
			uint64_t *bigger = realloc(d->keys[s], (size_t)cap * sizeof *bigger);
			if (!bigger) {
				keys_free(d);
				d->keys_failed = true;
				return;
			}
			d->keys[s] = bigger;
			d->key_capacity[s] = cap;
		}
	}
	bool again = shared != d->shared;
	d->shared = shared;
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		for (uint32_t local = again ? 0 : d->keyed[s]; local < customers[s]; local++)
			d->keys[s][local] = key_from(pr_id_directory_at(d, local << PR_SHARD_BITS | s),
						     shared);
		d->keyed[s] = customers[s];
	}
	d->keys_on = true;
}
