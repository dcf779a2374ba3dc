/* test_id_table.c - the exact id table: growth, collisions, stable values,
 * finds on another thread while it grows. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "id_table.h"

static uint64_t constant_hash(const void *bytes, size_t len)
{
	(void)bytes;
	(void)len;
	return 0x4242424242424242ull; /* every id collides */
}

static uint64_t two_bucket_hash(const void *bytes, size_t len)
{
	(void)bytes;
	/* Same tag for all, two start slots: collisions on tag and on slot. */
	return 0x1234567800000000ull | (len & 1);
}

static void fill_and_check(pr_hash_fn hash, uint32_t ids, uint64_t hint)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, hint, 16, hash), 0);
	char id[32];
	uint64_t *first_value = NULL;
	for (uint32_t i = 0; i < ids; i++) {
		int len = snprintf(id, sizeof id, "C%u", i);
		bool created;
		uint32_t index = pr_id_table_upsert(&t, id, (size_t)len,
						    pr_id_hash(&t, id, (size_t)len), &created);
		cr_assert(created, "id %s reported as existing", id);
		cr_assert_eq(index, i, "indexes are dense in insertion order");
		uint64_t *value = pr_id_table_value(&t, index);
		cr_assert_eq(value[0], 0, "values start zeroed");
		value[0] = i * 7 + 1;
		value[1] = i;
		if (i == 0)
			first_value = value;
	}
	cr_assert_eq(t.count, ids);
	cr_assert_eq(first_value[0], 1, "values never move while the table grows");
	for (uint32_t i = 0; i < ids; i++) {
		int len = snprintf(id, sizeof id, "C%u", i);
		uint32_t index = pr_id_table_find(&t, id, (size_t)len);
		cr_assert_eq(index, i, "find C%u", i);
		const struct pr_id_entry *e = pr_id_table_entry(&t, index);
		cr_assert_eq(e->len, (uint32_t)len);
		cr_assert_eq(memcmp(pr_id_entry_bytes(e), id, (size_t)len), 0);
		cr_assert_eq(((uint64_t *)pr_id_table_value(&t, index))[0], i * 7 + 1ull);
		bool created;
		cr_assert_eq(pr_id_table_upsert(&t, id, (size_t)len, pr_id_hash(&t, id, (size_t)len),
						&created), i);
		cr_assert_not(created);
	}
	cr_assert_eq(pr_id_table_find(&t, "C", 1), PR_ID_NONE);
	cr_assert_eq(pr_id_table_find(&t, "nobody", 6), PR_ID_NONE);
	pr_id_table_destroy(&t);
}

Test(id_table, grows_from_a_tiny_hint_past_chunk_boundaries)
{
	fill_and_check(NULL, 100000, 1);
}

Test(id_table, never_merges_ids_whose_hashes_are_equal)
{
	fill_and_check(constant_hash, 3000, 4);
}

Test(id_table, tag_and_slot_collisions)
{
	fill_and_check(two_bucket_hash, 3000, 4);
}

Test(id_table, prefixes_empty_and_binary_ids_are_distinct)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, 4, 8, constant_hash), 0);
	const char *ids[] = { "", "A", "AB", "ABC", "B", "A\0B", "A\0C" };
	size_t lens[] = { 0, 1, 2, 3, 1, 3, 3 };
	for (size_t i = 0; i < 7; i++) {
		bool created;
		cr_assert_eq(pr_id_table_upsert(&t, ids[i], lens[i], pr_id_hash(&t, ids[i], lens[i]), &created), i);
		cr_assert(created);
	}
	for (size_t i = 0; i < 7; i++)
		cr_assert_eq(pr_id_table_find(&t, ids[i], lens[i]), i);
	pr_id_table_destroy(&t);
}

/* Every length on both sides of the inline and word-compare boundaries,
 * ids differing in one byte at every position: never merged, each found. */
Test(id_table, ids_differing_in_one_byte_at_any_length)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, 4, 8, constant_hash), 0);
	uint32_t expect = 0;
	for (size_t len = 1; len <= 40; len++) {
		char base[40];
		memset(base, 'x', len);
		for (size_t at = 0; at <= len; at++) {
			char id[40];
			memcpy(id, base, len);
			if (at < len)
				id[at] = 'y'; /* at == len: the base itself */
			bool created;
			uint32_t i = pr_id_table_upsert(&t, id, len, pr_id_hash(&t, id, len), &created);
			cr_assert(created, "length %zu, byte %zu merged with another id", len, at);
			cr_assert_eq(i, expect++);
		}
	}
	expect = 0;
	for (size_t len = 1; len <= 40; len++) {
		for (size_t at = 0; at <= len; at++) {
			char id[40];
			memset(id, 'x', len);
			if (at < len)
				id[at] = 'y';
			cr_assert_eq(pr_id_table_find(&t, id, len), expect++, "length %zu, byte %zu", len, at);
			const struct pr_id_entry *e = pr_id_table_entry(&t, expect - 1);
			cr_assert(e->len == len && memcmp(pr_id_entry_bytes(e), id, len) == 0);
		}
	}
	pr_id_table_destroy(&t);
}

/* An entry keeps its id's length in a byte: the longest id fits, and a
 * longer one is refused without a trace in the table. */
Test(id_table, longest_id_kept_longer_refused)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, 4, 8, NULL), 0);
	char id[PR_ID_MAX_LEN + 1];
	memset(id, 'k', sizeof id);
	bool created = false;
	uint32_t i = pr_id_table_upsert(&t, id, PR_ID_MAX_LEN, pr_id_hash(&t, id, PR_ID_MAX_LEN),
					&created);
	cr_assert(created && i == 0);
	cr_assert_eq(pr_id_table_entry(&t, 0)->len, PR_ID_MAX_LEN);
	cr_assert_eq(pr_id_table_upsert(&t, id, sizeof id, pr_id_hash(&t, id, sizeof id), &created),
		     PR_ID_NONE);
	cr_assert_eq(t.count, 1);
	cr_assert_eq(pr_id_table_find(&t, id, sizeof id), PR_ID_NONE);
	cr_assert_eq(pr_id_table_find(&t, id, PR_ID_MAX_LEN), 0);
	pr_id_table_destroy(&t);
}

Test(id_table, order_of_ids)
{
	cr_assert_lt(pr_id_compare("A", 1, "AB", 2), 0);
	cr_assert_gt(pr_id_compare("B", 1, "AB", 2), 0);
	cr_assert_eq(pr_id_compare("AB", 2, "AB", 2), 0);
	cr_assert_lt(pr_id_compare("\x01", 1, "\xff", 1), 0, "bytes compare unsigned");
}

/* A table shared with a finder thread (pr_id_table_share): the writer adds
 * ids and says how many with a release store, the finder looks up ids below
 * that count (and their entries) the whole time. */
struct finder {
	struct pr_id_table *t;
	atomic_uint added;
	atomic_bool done;
	atomic_ulong lookups;
	uint64_t wrong;
};

static void *find_while_growing(void *arg)
{
	struct finder *f = arg;
	uint64_t x = 88172645463325252ull;
	char id[32];
	while (!atomic_load(&f->done)) {
		uint32_t n = atomic_load_explicit(&f->added, memory_order_acquire);
		if (n == 0)
			continue;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t want = (uint32_t)(x % n);
		int len = snprintf(id, sizeof id, "customer-%u", want);
		uint32_t got = pr_id_table_find(f->t, id, (size_t)len);
		const struct pr_id_entry *e = got == want ? pr_id_table_entry(f->t, got) : NULL;
		f->wrong += !e || e->len != (uint32_t)len ||
			    memcmp(pr_id_entry_bytes(e), id, (size_t)len) != 0;
		atomic_fetch_add_explicit(&f->lookups, 1, memory_order_relaxed);
	}
	return NULL;
}

static void share_and_grow(bool shared)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, 1, 16, NULL), 0);
	_Atomic uint64_t retired = 0;
	if (shared)
		pr_id_table_share(&t, &retired);
	/* Unshared, a finder on another thread would be in freed arrays. */
	/* The first slot array, as a finder that loaded it and was then
	 * descheduled holds it: it must stay readable until reclaimed. */
	const struct pr_id_slots *first = t.shared;
	struct finder f = { .t = &t };
	pthread_t reader;
	if (shared)
		cr_assert_eq(pthread_create(&reader, NULL, find_while_growing, &f), 0);
	/* 100K ids: the slots double 14 times (16 to 2^18), the chunk
	 * pointers once (16 to 32). The arrays outgrown are in malloc's pools,
	 * where ASan reports a finder in one freed under it if the timing
	 * ever puts one there (ThreadSanitizer's paretod check sees it
	 * whatever the timing). */
	char id[32];
	for (uint32_t i = 0; i < 100000; i++) {
		int len = snprintf(id, sizeof id, "customer-%u", i);
		bool created;
		cr_assert_eq(pr_id_table_upsert(&t, id, (size_t)len, pr_id_hash(&t, id, (size_t)len),
						&created), i);
		atomic_store_explicit(&f.added, i + 1, memory_order_release);
		/* The finder runs beside the writer even on a busy machine. */
		if (shared && i % 4096 == 0)
			for (unsigned long seen = atomic_load(&f.lookups); seen == atomic_load(&f.lookups);)
				sched_yield();
	}
	if (shared) {
		atomic_store(&f.done, true);
		pthread_join(reader, NULL);
		unsigned long lookups = atomic_load(&f.lookups);
		cr_assert_eq(f.wrong, 0, "%llu of %lu lookups wrong", (unsigned long long)f.wrong,
			     lookups);
		uint64_t held = 0;
		for (uint64_t i = 0; i <= first->mask; i++)
			held += __atomic_load_n(&first->slots[i], __ATOMIC_ACQUIRE) != 0;
		cr_assert_eq(held, 12, "the first 16 slots, outgrown at 3/4, still hold their 12 ids");
		cr_assert_eq(atomic_load(&retired), 15, "14 slot arrays and 1 chunk array outgrown");
		cr_assert(t.retired_slots && t.retired_chunks, "kept until reclaimed");
		pr_id_table_reclaim(&t);
		cr_assert(!t.retired_slots && !t.retired_chunks);
	} else {
		cr_assert(!t.retired_slots && !t.retired_chunks, "not shared: freed at once");
	}
	for (uint32_t i = 0; i < 100000; i += 997) {
		int len = snprintf(id, sizeof id, "customer-%u", i);
		cr_assert_eq(pr_id_table_find(&t, id, (size_t)len), i);
	}
	pr_id_table_destroy(&t);
}

Test(id_table, a_shared_table_is_found_in_on_another_thread_while_it_grows)
{
	share_and_grow(true);
}

Test(id_table, an_unshared_table_frees_what_it_outgrows_at_once)
{
	share_and_grow(false);
}

/* Reset keeps the hash, the value size and the sharing. */
Test(id_table, reset_empties_and_keeps_its_settings)
{
	struct pr_id_table t;
	cr_assert_eq(pr_id_table_init(&t, 4, 24, constant_hash), 0);
	_Atomic uint64_t retired = 0;
	pr_id_table_share(&t, &retired);
	bool created;
	cr_assert_eq(pr_id_table_upsert(&t, "A", 1, pr_id_hash(&t, "A", 1), &created), 0);
	cr_assert_eq(pr_id_table_reset(&t, 1000), 0);
	cr_assert_eq(t.count, 0);
	cr_assert_eq(pr_id_table_find(&t, "A", 1), PR_ID_NONE);
	cr_assert(t.hash == constant_hash && t.value_bytes == 24 && t.retired == &retired);
	cr_assert_geq(t.mask + 1, 1024, "sized for 1000 ids");
	pr_id_table_destroy(&t);
}
