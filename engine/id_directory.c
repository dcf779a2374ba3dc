/* id_directory.c - see id_directory.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id_directory.h"

void pr_id_directory_init(struct pr_id_directory *d)
{
	memset(d, 0, sizeof *d);
}

void pr_id_directory_destroy(struct pr_id_directory *d)
{
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		free(d->chunks[s]);
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
