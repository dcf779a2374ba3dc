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

/* Bytes a and b (of alen and blen) begin with alike. */
static uint32_t common_prefix(const unsigned char *a, uint32_t alen, const unsigned char *b,
			      uint32_t blen)
{
	uint32_t n = alen < blen ? alen : blen, i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* The key of an id (id_directory.h). */
static uint64_t key_of_id(const struct pr_id_directory *d, const struct pr_id_entry *e)
{
	const unsigned char *b = (const unsigned char *)pr_id_entry_bytes(e);
	uint32_t len = e->len;
	uint32_t l = common_prefix(d->prefix, d->prefix_len, b, len);
	uint64_t cls = 1, from = d->prefix_len;
	if (l < d->prefix_len) {
		cls = l == len || b[l] < d->prefix[l] ? 0 : 2;
		from = 0;
	}
	uint64_t v = 0;
	for (uint32_t i = (uint32_t)from; i < from + 7; i++)
		v = v << 8 | (i < len ? b[i] : 0);
	return cls << 62 | v << 6;
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

#define PREFIX_SAMPLE 256
#define PREFIX_REFERENCES 3

/* P: of a few sampled ids, the longest prefix that nine in ten of a sample
 * of `total` customers begin with. */
static void choose_prefix(struct pr_id_directory *d, const uint32_t *customers, uint64_t total)
{
	const struct pr_id_entry *sample[PREFIX_SAMPLE];
	uint32_t n = 0;
	uint64_t step = total / PREFIX_SAMPLE + 1, base = 0, next = 0;
	for (uint32_t s = 0; s < PR_SHARDS && n < PREFIX_SAMPLE; s++) {
		for (; next < base + customers[s] && n < PREFIX_SAMPLE; next += step)
			sample[n++] = pr_id_directory_at(d, (uint32_t)(next - base) << PR_SHARD_BITS | s);
		base += customers[s];
	}
	uint32_t best = 0;
	const struct pr_id_entry *best_ref = sample[0];
	for (uint32_t r = 0; r < PREFIX_REFERENCES && r < n; r++) {
		const struct pr_id_entry *ref = sample[r * (n - 1) / (PREFIX_REFERENCES - 1)];
		const unsigned char *rb = (const unsigned char *)pr_id_entry_bytes(ref);
		uint32_t lcp[PREFIX_SAMPLE];
		for (uint32_t i = 0; i < n; i++)
			lcp[i] = common_prefix(rb, ref->len,
					       (const unsigned char *)pr_id_entry_bytes(sample[i]),
					       sample[i]->len);
		qsort(lcp, n, sizeof *lcp, compare_u32);
		if (lcp[n / 10] > best || r == 0) {
			best = lcp[n / 10];
			best_ref = ref;
		}
	}
	if (best > sizeof d->prefix)
		best = sizeof d->prefix;
	d->prefix_len = best;
	memcpy(d->prefix, pr_id_entry_bytes(best_ref), best);
}

void pr_id_directory_key(struct pr_id_directory *d, const uint32_t *customers)
{
	if (d->keys_failed)
		return;
	uint64_t total = 0;
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		total += customers[s];
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
	bool again = false;
	if (total && total >= 2 * d->chosen_at) {
		uint32_t was_len = d->prefix_len;
		unsigned char was[sizeof d->prefix];
		memcpy(was, d->prefix, was_len);
		choose_prefix(d, customers, total);
		again = d->chosen_at == 0 || d->prefix_len != was_len ||
			memcmp(was, d->prefix, was_len) != 0;
		d->chosen_at = total;
	}
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		for (uint32_t local = again ? 0 : d->keyed[s]; local < customers[s]; local++)
			d->keys[s][local] = key_of_id(d, pr_id_directory_at(d, local << PR_SHARD_BITS | s));
		d->keyed[s] = customers[s];
	}
	d->keys_on = true;
}
