/* purchase_days.c - see purchase_days.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "purchase_days.h"
#include "varint.h"

#define BLOCK_BYTES 32768u /* malloc's pools, no page of its own */
#define BLOCK_HEADER 4u     /* the block's length in bytes, once it is full */
#define ENTRY_MAX_BYTES 10u /* a customer (< 2^32) and a zigzagged difference
			       of two int32 days (< 2^33): 5 bytes each at most */
#define DECODED_RUN 512     /* keys decoded at a time for each() */
#define MAP_DAYS 64

static uint64_t key_of(uint32_t customer, int32_t day)
{
	return (uint64_t)customer << 32 | (uint32_t)day;
}

static uint32_t block_bytes(const struct pr_day_history *h, uint32_t b)
{
	uint32_t len = h->used;
	if (b + 1 < h->block_count)
		memcpy(&len, h->blocks[b], sizeof len);
	return len;
}

/* The log's keys in order, to each() in runs of up to DECODED_RUN. */
static void log_each(const struct pr_day_history *h,
		     void (*each)(void *ctx, const uint64_t *keys, size_t count), void *ctx)
{
	uint64_t keys[DECODED_RUN];
	size_t n = 0;
	int64_t day = 0;
	for (uint32_t b = 0; b < h->block_count; b++) {
		const unsigned char *p = h->blocks[b] + BLOCK_HEADER;
		const unsigned char *end = h->blocks[b] + block_bytes(h, b);
		uint64_t customer, difference;
		/* The engine's own bytes: every entry is whole. */
		while (get_varint(&p, end, &customer) && get_varint(&p, end, &difference)) {
			day += unzigzag(difference);
			keys[n++] = key_of((uint32_t)customer, (int32_t)day);
			if (n == DECODED_RUN) {
				each(ctx, keys, n);
				n = 0;
			}
		}
	}
	if (n)
		each(ctx, keys, n);
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
	h->last_day = 0;
	h->entries = 0;
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
	if (h->block_count && h->used + ENTRY_MAX_BYTES <= BLOCK_BYTES)
		return 0;
	if (h->block_count == h->block_capacity) {
		uint32_t cap = h->block_capacity ? h->block_capacity * 2 : 8;
		unsigned char **bigger = realloc(h->blocks, cap * sizeof *bigger);
		if (!bigger)
			return -ENOMEM;
		h->blocks = bigger;
		h->block_capacity = cap;
	}
	if (!(h->blocks[h->block_count] = malloc(BLOCK_BYTES)))
		return -ENOMEM;
	if (h->block_count)
		memcpy(h->blocks[h->block_count - 1], &h->used, sizeof h->used);
	h->block_count++;
	h->used = BLOCK_HEADER;
	return 0;
}

/* Appends an entry to the log, whose room reserve_log made. */
static void append_log(struct pr_day_history *h, uint32_t customer, int32_t day)
{
	int64_t difference = (int64_t)day - h->last_day;
	unsigned char *start = h->blocks[h->block_count - 1] + h->used;
	unsigned char *p = put_varint(start, customer);
	p = put_varint(p, zigzag(difference));
	h->used += (uint32_t)(p - start);
	h->last_day = day;
	h->entries++;
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
	append_log(h, customer, day);
	return 0;
}

static void insert_keys(void *set, const uint64_t *keys, size_t count)
{
	/* Sized for all of them: inserting cannot need to grow. */
	for (size_t i = 0; i < count; i++)
		pr_day_set_insert(set, (uint32_t)(keys[i] >> 32), (int32_t)(uint32_t)keys[i]);
}

/* Turns the log into the set. Every logged pair is distinct. */
static int log_to_set(struct pr_day_history *h)
{
	if (pr_day_set_init(&h->set, h->entries) < 0)
		return -ENOMEM;
	log_each(h, insert_keys, &h->set);
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
	return h->as_set ? h->set.count : h->entries;
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
	log_each(h, each, ctx);
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
	for (uint64_t i = 0; i < count; i++) {
		if (reserve_log(h) < 0)
			goto fail;
		append_log(h, (uint32_t)(keys[i] >> 32), (int32_t)(uint32_t)keys[i]);
	}
	return 0;
fail:
	pr_day_history_destroy(h);
	pr_day_history_init(h);
	return -ENOMEM;
}
