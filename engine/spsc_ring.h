/*
 * spsc_ring.h - a bounded lock-free ring of pointers from one producer
 * thread to one consumer thread.
 *
 * Owns only its slot array; the pointers in flight belong to whoever the
 * caller says (paretod's change batches belong to the consumer once
 * pushed). Push and pop are wait-free: a full ring makes push return false
 * and the producer decides what to do (keep the work and retry later, which
 * is the backpressure), an empty ring makes pop return NULL.
 *
 * Memory order: the producer writes a slot, then publishes it by storing
 * `tail` with release; the consumer loads `tail` with acquire, so the slot
 * and everything the pointer leads to, written before the push, are
 * visible to it. Symmetrically the consumer frees a slot by storing `head`
 * with release after reading it, and the producer loads `head` with acquire
 * before reusing the slot. Each side reads its own index relaxed (it is
 * the only writer). head and tail sit on their own cache lines so the two
 * threads do not bounce one line between them.
 */
#ifndef PARETO_SPSC_RING_H
#define PARETO_SPSC_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct pr_spsc_ring {
	alignas(64) _Atomic uint64_t head; /* next slot to pop: written by the consumer */
	alignas(64) _Atomic uint64_t tail; /* next slot to push: written by the producer */
	alignas(64) void **slots;          /* owned; capacity, a power of two */
	uint64_t mask;
};

/* capacity is rounded up to a power of two (at least 2). 0 or -ENOMEM. */
int pr_spsc_ring_init(struct pr_spsc_ring *r, uint32_t capacity);
void pr_spsc_ring_destroy(struct pr_spsc_ring *r);

/* Producer only. false if the ring is full (nothing pushed). */
static inline bool pr_spsc_ring_push(struct pr_spsc_ring *r, void *item)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (tail - atomic_load_explicit(&r->head, memory_order_acquire) > r->mask)
		return false;
	r->slots[tail & r->mask] = item;
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	return true;
}

/* Consumer only. The oldest item, or NULL if the ring is empty. */
static inline void *pr_spsc_ring_pop(struct pr_spsc_ring *r)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (head == atomic_load_explicit(&r->tail, memory_order_acquire))
		return NULL;
	void *item = r->slots[head & r->mask];
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return item;
}

/* Either side: whether the ring holds nothing. From the producer it may
 * be briefly pessimistic (a pop in progress), never optimistic. */
static inline bool pr_spsc_ring_empty(struct pr_spsc_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) ==
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
