/* test_spsc_ring.c - the ring keeps order, refuses when full, and hands
 * every item over exactly once between two threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

#include "spsc_ring.h"

Test(spsc_ring, holds_its_capacity_in_order)
{
	struct pr_spsc_ring r;
	cr_assert_eq(pr_spsc_ring_init(&r, 3), 0); /* rounded up to 4 */
	cr_assert(pr_spsc_ring_empty(&r));
	cr_assert_null(pr_spsc_ring_pop(&r));
	for (uintptr_t round = 0; round < 5; round++) {
		for (uintptr_t i = 1; i <= 4; i++)
			cr_assert(pr_spsc_ring_push(&r, (void *)(round * 10 + i)));
		cr_assert_not(pr_spsc_ring_push(&r, (void *)99), "a fifth item in a ring of four");
		cr_assert_not(pr_spsc_ring_empty(&r));
		for (uintptr_t i = 1; i <= 4; i++)
			cr_assert_eq((uintptr_t)pr_spsc_ring_pop(&r), round * 10 + i);
		cr_assert_null(pr_spsc_ring_pop(&r));
		cr_assert(pr_spsc_ring_empty(&r));
	}
	pr_spsc_ring_destroy(&r);
}

#define ITEMS 2000000u

static void *consume(void *arg)
{
	struct pr_spsc_ring *r = arg;
	uintptr_t expect = 1;
	while (expect <= ITEMS) {
		void *item = pr_spsc_ring_pop(r);
		if (!item)
			continue;
		if ((uintptr_t)item != expect)
			return (void *)expect; /* the first item out of order */
		expect++;
	}
	return NULL;
}

Test(spsc_ring, hands_every_item_over_once_in_order_between_threads)
{
	struct pr_spsc_ring r;
	cr_assert_eq(pr_spsc_ring_init(&r, 64), 0);
	pthread_t consumer;
	cr_assert_eq(pthread_create(&consumer, NULL, consume, &r), 0);
	uint64_t refused = 0;
	for (uintptr_t i = 1; i <= ITEMS;)
		if (pr_spsc_ring_push(&r, (void *)i))
			i++;
		else
			refused++;
	void *bad;
	pthread_join(consumer, &bad);
	cr_assert_null(bad, "item %zu arrived out of order or twice", (size_t)(uintptr_t)bad);
	cr_assert(pr_spsc_ring_empty(&r));
	cr_log_info("%llu pushes found the ring full", (unsigned long long)refused);
	pr_spsc_ring_destroy(&r);
}
