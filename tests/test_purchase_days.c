/* Distinct purchase days per customer against a brute-force count. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "purchase_days.h"

/* A reference: has customer c bought on day d? Days span [base, base + span). */
struct reference {
	unsigned char *seen; /* customers x span */
	uint32_t *count;
	int32_t base;
	uint32_t span;
};

static uint64_t next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Feeds `records` purchases over `customers` customers, each day drawn by
 * `style`, and checks every count after every record. */
static void run(uint64_t seed, uint32_t customers, uint32_t records, int style)
{
	const uint32_t span = 2000;
	const int32_t base = -1000; /* days before 1970 too */
	struct reference ref = { calloc((size_t)customers * span, 1),
				 calloc(customers, sizeof(uint32_t)), base, span };
	struct pr_recent_days *days = calloc(customers, sizeof *days);
	bool *started = calloc(customers, sizeof *started);
	struct pr_day_history h;
	pr_day_history_init(&h);
	uint64_t state = seed * 2654435761u + 1;
	int32_t clock = base + 300;

	for (uint32_t i = 0; i < records; i++) {
		uint32_t c = (uint32_t)(next(&state) % customers);
		int32_t day;
		uint64_t u = next(&state);
		switch (style) {
		case 0: /* in order, some days repeated */
			clock += (int32_t)(u % 3 == 0);
			day = clock;
			break;
		case 1: /* a jitter of a few days around the clock */
			clock += (int32_t)(u % 4 == 0);
			day = clock - (int32_t)(u >> 8) % 5;
			break;
		case 2: /* ages 62..66 behind the clock: the map's edge */
			clock += (int32_t)(u % 2);
			day = clock - (u % 3 ? 0 : 62 + (int32_t)((u >> 8) % 5));
			break;
		default: /* anywhere */
			day = base + (int32_t)((u >> 8) % span);
			break;
		}
		if (day < base)
			day = base;
		if (day >= base + (int32_t)span)
			day = base + (int32_t)span - 1;
		unsigned char *cell = &ref.seen[(size_t)c * span + (uint32_t)(day - base)];
		ref.count[c] += !*cell;
		*cell = 1;
		int rc = started[c] ? pr_recent_days_note(&h, c, &days[c], day)
				    : pr_recent_days_start(&h, c, &days[c], day);
		started[c] = true;
		cr_assert_eq(rc, 0);
		cr_assert_eq(days[c].count, ref.count[c],
			     "seed %llu style %d record %u: customer %u day %d: %u days, want %u",
			     (unsigned long long)seed, style, i, c, day, days[c].count, ref.count[c]);
	}
	pr_day_history_destroy(&h);
	free(started);
	free(days);
	free(ref.count);
	free(ref.seen);
}

Test(purchase_days, ordered_feeds_never_build_the_set)
{
	for (uint64_t seed = 1; seed <= 5; seed++)
		run(seed, 50, 20000, 0);
	struct pr_day_history h;
	pr_day_history_init(&h);
	struct pr_recent_days r;
	cr_assert_eq(pr_recent_days_start(&h, 7, &r, 100), 0);
	for (int32_t d = 100; d < 1000; d += 3)
		cr_assert_eq(pr_recent_days_note(&h, 7, &r, d), 0);
	cr_assert_eq(r.count, 300);
	cr_assert(!h.as_set, "an ordered feed needs no set");
	pr_day_history_destroy(&h);
}

Test(purchase_days, late_records_within_the_map)
{
	for (uint64_t seed = 1; seed <= 5; seed++)
		run(seed, 30, 20000, 1);
}

Test(purchase_days, the_edge_of_the_map)
{
	struct pr_day_history h;
	pr_day_history_init(&h);
	struct pr_recent_days r;
	cr_assert_eq(pr_recent_days_start(&h, 0, &r, 10), 0);
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 73), 0); /* day 10 is now 63 back */
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 10), 0);
	cr_assert_eq(r.count, 2, "63 days back is still in the map");
	cr_assert(!h.as_set);
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 74), 0); /* 10 now 64 back */
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 10), 0);
	cr_assert_eq(r.count, 3);
	cr_assert(h.as_set, "64 days back needs the history");
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 9), 0);
	cr_assert_eq(r.count, 4, "a day never seen, found through the set");
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 500), 0); /* a jump past the map */
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 73), 0);
	cr_assert_eq(pr_recent_days_note(&h, 0, &r, 74), 0);
	cr_assert_eq(r.count, 5, "days recorded before the set are in it");
	pr_day_history_destroy(&h);
	for (uint64_t seed = 1; seed <= 5; seed++)
		run(seed, 20, 20000, 2);
}

Test(purchase_days, any_order)
{
	for (uint64_t seed = 1; seed <= 5; seed++)
		run(seed, 40, 30000, 3);
}

static void collect(void *ctx, const uint64_t *keys, size_t count)
{
	uint64_t **at = ctx;
	memcpy(*at, keys, count * sizeof *keys);
	*at += count;
}

static int compare_keys(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The log is kept as varints in blocks: a long one, with days far apart
 * in both directions and customers of every width, reads back key for
 * key, in order, and becomes a set with the same keys. */
Test(purchase_days, a_long_log_reads_back_in_order)
{
	const uint64_t n = 200000; /* about 30 blocks */
	uint64_t *keys = malloc(n * sizeof *keys), *got = malloc(n * sizeof *got);
	uint64_t state = 42;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t u = next(&state);
		uint32_t customer = u % 7 == 0 ? UINT32_MAX - (uint32_t)(u >> 40 & 3)
						: (uint32_t)(u >> 8) & ((1u << (u % 25 + 1)) - 1);
		int32_t day = u % 11 == 0 ? (u & 64 ? INT32_MAX - (int32_t)(i % 2)
						    : INT32_MIN + (int32_t)(i % 2))
					  : (int32_t)(i / 4) - 1000;
		keys[i] = (uint64_t)customer << 32 | (uint32_t)day;
	}
	/* Distinct, as a history's keys are. */
	qsort(keys, n, sizeof *keys, compare_keys);
	uint64_t distinct = 0;
	for (uint64_t i = 0; i < n; i++)
		if (i == 0 || keys[i] != keys[i - 1])
			keys[distinct++] = keys[i];
	/* In an order of their own, not sorted. */
	for (uint64_t i = distinct - 1; i > 0; i--) {
		uint64_t j = next(&state) % (i + 1), t = keys[i];
		keys[i] = keys[j];
		keys[j] = t;
	}
	struct pr_day_history h;
	pr_day_history_init(&h);
	cr_assert_eq(pr_day_history_restore(&h, false, keys, distinct), 0);
	cr_assert(!h.as_set);
	cr_assert_gt(h.block_count, 10);
	cr_assert_eq(pr_day_history_count(&h), distinct);
	uint64_t *at = got;
	pr_day_history_each(&h, collect, &at);
	cr_assert_eq((uint64_t)(at - got), distinct);
	for (uint64_t i = 0; i < distinct; i++)
		cr_assert_eq(got[i], keys[i], "key %llu", (unsigned long long)i);
	/* A record 100 days behind its customer's map needs the set. */
	struct pr_recent_days r;
	cr_assert_eq(pr_recent_days_start(&h, 5, &r, 2000000), 0);
	cr_assert_eq(pr_recent_days_note(&h, 5, &r, 2000000 - 100), 0);
	cr_assert(h.as_set);
	cr_assert_eq(pr_day_history_count(&h), distinct + 2);
	at = got = realloc(got, (distinct + 2) * sizeof *got);
	pr_day_history_each(&h, collect, &at);
	keys = realloc(keys, (distinct + 2) * sizeof *keys);
	keys[distinct] = (uint64_t)5 << 32 | 2000000;
	keys[distinct + 1] = (uint64_t)5 << 32 | (2000000 - 100);
	qsort(keys, distinct + 2, sizeof *keys, compare_keys);
	qsort(got, distinct + 2, sizeof *got, compare_keys);
	cr_assert_eq(memcmp(keys, got, (distinct + 2) * sizeof *keys), 0);
	pr_day_history_destroy(&h);
	free(keys);
	free(got);
}
