/* purchase_days.c - see purchase_days.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "purchase_days.h"

#define BLOCK_ENTRIES 4096u /* 32 KiB: malloc's pools, no page of its own */
#define MAP_DAYS 64

static uint64_t key_of(uint32_t customer, int32_t day)
{
	return (uint64_t)customer << 32 | (uint32_t)day;
}

void pr_day_history_init(struct pr_day_history *h)
{
	memset(h, 0, sizeof *h);
}

static void free_log(struct pr_day_history *h)
{
	for (uint32_t b = 0; b < h->block_count; b++)
		free(h->blocks[b]);
	free(h->blocks);
	h->blocks = NULL;
	h->block_count = h->block_capacity = h->used = 0;
}

void pr_day_history_destroy(struct pr_day_history *h)
{
	free_log(h);
	if (h->as_set)
		pr_day_set_destroy(&h->set);
	memset(h, 0, sizeof *h);
}

/* Makes room for one more log entry, so that appending cannot fail. */
static int reserve_log(struct pr_day_history *h)
{
	if (h->block_count && h->used < BLOCK_ENTRIES)
		return 0;
	if (h->block_count == h->block_capacity) {
		uint32_t cap = h->block_capacity ? h->block_capacity * 2 : 8;
		uint64_t **bigger = realloc(h->blocks, cap * sizeof *bigger);
		if (!bigger)
			return -ENOMEM;
		h->blocks = bigger;
		h->block_capacity = cap;
	}
	if (!(h->blocks[h->block_count] = malloc(BLOCK_ENTRIES * sizeof **h->blocks)))
		return -ENOMEM;
	h->block_count++;
	h->used = 0;
	return 0;
}

/* Records a day known to be new for its customer. 0 or -ENOMEM. */
static int record_new(struct pr_day_history *h, uint32_t customer, int32_t day)
{
	if (h->as_set) {
		int fresh = pr_day_set_insert(&h->set, customer, day);
		return fresh < 0 ? fresh : 0;
	}
	if (reserve_log(h) < 0)
		return -ENOMEM;
	h->blocks[h->block_count - 1][h->used++] = key_of(customer, day);
	return 0;
}

/* Turns the log into the set. Every logged pair is distinct. */
static int log_to_set(struct pr_day_history *h)
{
	uint64_t entries = h->block_count ? (uint64_t)(h->block_count - 1) * BLOCK_ENTRIES + h->used
					  : 0;
	if (pr_day_set_init(&h->set, entries) < 0)
		return -ENOMEM;
	for (uint32_t b = 0; b < h->block_count; b++) {
		uint32_t n = b + 1 == h->block_count ? h->used : BLOCK_ENTRIES;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t key = h->blocks[b][i];
			/* Sized for all of them: inserting cannot need to grow. */
			pr_day_set_insert(&h->set, (uint32_t)(key >> 32), (int32_t)(uint32_t)key);
		}
	}
	free_log(h);
	h->as_set = true;
	return 0;
}

int pr_recent_days_start(struct pr_day_history *h, uint32_t customer,
			 struct pr_recent_days *r, int32_t day)
{
	if (record_new(h, customer, day) < 0)
		return -ENOMEM;
	*r = (struct pr_recent_days){ .seen = 1, .latest = day, .count = 1 };
	return 0;
}

int pr_recent_days_note(struct pr_day_history *h, uint32_t customer,
			struct pr_recent_days *r, int32_t day)
{
	if (day > r->latest) {
		if (record_new(h, customer, day) < 0)
			return -ENOMEM;
		int64_t shift = (int64_t)day - r->latest;
		r->seen = shift >= MAP_DAYS ? 1 : r->seen << shift | 1;
		r->latest = day;
		r->count++;
		return 0;
	}
	int64_t age = (int64_t)r->latest - day;
	if (age < MAP_DAYS) {
		uint64_t bit = (uint64_t)1 << age;
		if (r->seen & bit)
			return 0;
		if (record_new(h, customer, day) < 0)
			return -ENOMEM;
		r->seen |= bit;
		r->count++;
		return 0;
	}
	/* Older than the map: only the whole history can tell. */
	if (!h->as_set && log_to_set(h) < 0)
		return -ENOMEM;
	int fresh = pr_day_set_insert(&h->set, customer, day);
	if (fresh < 0)
		return -ENOMEM;
	r->count += (uint32_t)fresh;
	return 0;
}

uint64_t pr_day_history_count(const struct pr_day_history *h)
{
	if (h->as_set)
		return h->set.count;
	return h->block_count ? (uint64_t)(h->block_count - 1) * BLOCK_ENTRIES + h->used : 0;
}

void pr_day_history_each(const struct pr_day_history *h,
			 void (*each)(void *ctx, const uint64_t *keys, size_t count), void *ctx)
{
	if (h->as_set) {
		/* Runs of occupied slots; UINT64_MAX marks an empty one. */
		const uint64_t *keys = h->set.keys;
		for (uint64_t i = 0, start = 0; i <= h->set.mask + 1; i++) {
			if (i == h->set.mask + 1 || keys[i] == UINT64_MAX) {
				if (i > start)
					each(ctx, keys + start, (size_t)(i - start));
				start = i + 1;
			}
		}
		return;
	}
	for (uint32_t b = 0; b < h->block_count; b++)
		each(ctx, h->blocks[b], b + 1 == h->block_count ? h->used : BLOCK_ENTRIES);
}

int pr_day_history_restore(struct pr_day_history *h, bool as_set, const uint64_t *keys,
			   uint64_t count)
{
	if (as_set) {
		if (pr_day_set_init(&h->set, count) < 0)
			return -ENOMEM;
		h->as_set = true;
		for (uint64_t i = 0; i < count; i++)
			if (pr_day_set_insert(&h->set, (uint32_t)(keys[i] >> 32),
					      (int32_t)(uint32_t)keys[i]) < 0)
				goto fail;
		return 0;
	}
	for (uint64_t i = 0; i < count;) {
		if (reserve_log(h) < 0)
			goto fail;
		uint64_t n = BLOCK_ENTRIES - h->used;
		if (n > count - i)
			n = count - i;
		memcpy(h->blocks[h->block_count - 1] + h->used, keys + i, n * sizeof *keys);
		h->used += (uint32_t)n;
		i += n;
	}
	return 0;
fail:
	pr_day_history_destroy(h);
	pr_day_history_init(h);
	return -ENOMEM;
}
