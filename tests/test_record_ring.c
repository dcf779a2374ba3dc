/*
 * test_record_ring.c - the SPSC record ring: order, content, full and
 * empty, records that do not fit before the end, and two threads passing a
 * million records of random sizes through a ring a few records wide.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "record_ring.h"

/* A record: its size in bytes, its sequence number, then bytes derived from both. */
static void fill(unsigned char *at, uint32_t bytes, uint32_t seq)
{
	memcpy(at, &bytes, 4);
	memcpy(at + 4, &seq, 4);
	for (uint32_t i = 8; i < bytes; i++)
		at[i] = (unsigned char)(seq * 31u + i);
}

static bool check(const unsigned char *at, uint32_t want_bytes, uint32_t want_seq)
{
	uint32_t bytes, seq;
	memcpy(&bytes, at, 4);
	memcpy(&seq, at + 4, 4);
	if (bytes != want_bytes || seq != want_seq)
		return false;
	for (uint32_t i = 8; i < bytes; i++)
		if (at[i] != (unsigned char)(seq * 31u + i))
			return false;
	return true;
}

Test(record_ring, full_empty_and_skip_to_the_front)
{
	struct pr_record_ring r;
	cr_assert_eq(pr_record_ring_init(&r, 256), 0);
	cr_assert_eq(r.capacity, 256);
	cr_assert_null(pr_record_ring_front(&r));
	/* 3 x 80 bytes fit, a fourth does not. */
	for (uint32_t k = 0; k < 3; k++) {
		unsigned char *at = pr_record_ring_reserve(&r, 80);
		cr_assert_not_null(at);
		fill(at, 80, k);
		pr_record_ring_commit(&r, 80);
	}
	cr_assert_null(pr_record_ring_reserve(&r, 80));
	/* Two popped: 96 bytes left at the end, and 160 free at the front. A
	 * record of 120 goes to the front behind a skip mark. */
	for (uint32_t k = 0; k < 2; k++) {
		const unsigned char *at = pr_record_ring_front(&r);
		cr_assert(check(at, 80, k));
		pr_record_ring_pop(&r, 80);
	}
	unsigned char *at = pr_record_ring_reserve(&r, 120);
	cr_assert_not_null(at);
	cr_assert_eq(at, r.bytes, "a record that does not fit before the end starts at the front");
	fill(at, 120, 3);
	pr_record_ring_commit(&r, 120);
	const unsigned char *got = pr_record_ring_front(&r);
	cr_assert(check(got, 80, 2));
	pr_record_ring_pop(&r, 80);
	got = pr_record_ring_front(&r);
	cr_assert_not_null(got);
	cr_assert(check(got, 120, 3), "the record after the skip mark");
	pr_record_ring_pop(&r, 120);
	cr_assert_null(pr_record_ring_front(&r));
	pr_record_ring_destroy(&r);
}

/* An empty ring whose position is near the end takes a large record at
 * its front. */
Test(record_ring, large_record_after_wrapping_an_empty_ring)
{
	struct pr_record_ring r;
	cr_assert_eq(pr_record_ring_init(&r, 256), 0);
	unsigned char *at = pr_record_ring_reserve(&r, 248);
	fill(at, 248, 0);
	pr_record_ring_commit(&r, 248);
	cr_assert_not_null(pr_record_ring_front(&r));
	pr_record_ring_pop(&r, 248);
	/* 8 bytes before the end, the ring empty: a record of 128 bytes goes
	 * to the front at once. */
	at = pr_record_ring_reserve(&r, 128);
	cr_assert_eq(at, r.bytes);
	fill(at, 128, 1);
	pr_record_ring_commit(&r, 128);
	cr_assert(check(pr_record_ring_front(&r), 128, 1));
	pr_record_ring_destroy(&r);
}

#define RECORDS 1000000u

struct producer {
	struct pr_record_ring *ring;
	uint64_t seed;
};

static uint32_t record_size(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return 8 + (uint32_t)((*state >> 33) % 15) * 8; /* 8..120 bytes */
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	uint64_t state = p->seed;
	for (uint32_t seq = 0; seq < RECORDS; seq++) {
		uint32_t bytes = record_size(&state);
		unsigned char *at;
		while (!(at = pr_record_ring_reserve(p->ring, bytes)))
			sched_yield();
		fill(at, bytes, seq);
		pr_record_ring_commit(p->ring, bytes);
	}
	return NULL;
}

Test(record_ring, two_threads_pass_every_record_in_order, .timeout = 120)
{
	struct pr_record_ring r;
	cr_assert_eq(pr_record_ring_init(&r, 512), 0);
	struct producer p = { &r, 42 };
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, produce, &p), 0);
	uint64_t state = p.seed;
	uint32_t bad = 0;
	for (uint32_t seq = 0; seq < RECORDS; seq++) {
		uint32_t bytes = record_size(&state);
		const unsigned char *at;
		while (!(at = pr_record_ring_front(&r)))
			sched_yield();
		if (!check(at, bytes, seq) && bad++ == 0)
			cr_log_error("record %u (%u bytes) arrived wrong", seq, bytes);
		pr_record_ring_pop(&r, bytes);
	}
	pthread_join(thread, NULL);
	cr_assert_eq(bad, 0, "%u records arrived wrong", bad);
	cr_assert_null(pr_record_ring_front(&r));
	pr_record_ring_destroy(&r);
}
