/*
 * record_ring.h - a bounded lock-free ring of variable-size records from one
 * producer thread to one consumer thread (parallel ingest: one decoder to
 * one shard owner).
 *
 * Owns its byte buffer. A record is written in place (reserve, fill,
 * commit) and read in place (front, use, pop), so it is copied once on
 * each side of the ring at most. Records are multiples of 8 bytes and never
 * wrap: when one does not fit before the end of the buffer, the producer
 * publishes a zero word there, a skip mark (which is why a record's first
 * 32 bits must not be zero), and starts again at the front. Neither side ever waits inside
 * the ring: a full ring makes reserve return NULL, an empty one makes front
 * return NULL, and the caller decides what to do meanwhile (the ingest
 * producer then does its own owner's work: that is the backpressure).
 *
 * Memory order: `tail` (bytes published) is written only by the producer,
 * with release after the record's bytes; the consumer loads it with acquire,
 * so the bytes it then reads are those written before the commit. `head`
 * (bytes consumed) is written only by the consumer, with release after it
 * has read a record; the producer loads it with acquire before reusing
 * that space, so its new bytes cannot overtake the consumer's reads. Each
 * side reads its own index relaxed (it is the only writer) and keeps a
 * cached copy of the other's, refreshed only when the cached one says
 * full or empty, so the two cache lines move between cores rarely.
 *
 * Cost: O(1) per record, one release store per side per record.
 */
#ifndef PARETO_RECORD_RING_H
#define PARETO_RECORD_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct pr_record_ring {
	/* Consumer's line: head written by it (release), read by the producer
	 * (acquire); tail_seen is its private cache of tail. */
	alignas(64) _Atomic uint64_t head;
	uint64_t tail_seen;
	/* Producer's line: tail written by it (release), read by the consumer
	 * (acquire); head_seen is its private cache of head. */
	alignas(64) _Atomic uint64_t tail;
	uint64_t head_seen;
	/* Set at init, read-only while threads run. */
	alignas(64) unsigned char *bytes; /* owned; capacity bytes, 8-aligned */
	uint64_t capacity;                /* a power of two */
};

/* capacity_bytes is rounded up to a power of two, at least 256. 0 or -ENOMEM. */
int pr_record_ring_init(struct pr_record_ring *r, size_t capacity_bytes);
void pr_record_ring_destroy(struct pr_record_ring *r);

/* The largest record a ring of this capacity takes. */
static inline size_t pr_record_ring_max_record(const struct pr_record_ring *r)
{
	return (size_t)r->capacity / 2;
}

/*
 * Producer only. Room for a record of `bytes` (a multiple of 8, at most
 * pr_record_ring_max_record), or NULL if the ring is too full now. The
 * record becomes visible at commit; reserve again before committing and the
 * first reservation is forgotten.
 */
static inline void *pr_record_ring_reserve(struct pr_record_ring *r, size_t bytes)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t to_end = r->capacity - (tail & (r->capacity - 1));
	if (bytes > to_end) {
		/* Publish a skip mark on its own, so that the consumer frees the
		 * end of the buffer even if the front is not free yet. */
		if (tail + to_end - r->head_seen > r->capacity) {
			r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
			if (tail + to_end - r->head_seen > r->capacity)
				return NULL;
		}
		*(uint32_t *)(r->bytes + (tail & (r->capacity - 1))) = 0;
		tail += to_end;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	if (tail + bytes - r->head_seen > r->capacity) {
		r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tail + bytes - r->head_seen > r->capacity)
			return NULL;
	}
	return r->bytes + (tail & (r->capacity - 1));
}

/* Producer only: publishes the record reserved last, of `bytes`. */
static inline void pr_record_ring_commit(struct pr_record_ring *r, size_t bytes)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	atomic_store_explicit(&r->tail, tail + bytes, memory_order_release);
}

/* Consumer only: the oldest record, or NULL if none is published. */
static inline const void *pr_record_ring_front(struct pr_record_ring *r)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	for (;;) {
		if (head == r->tail_seen) {
			r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (head == r->tail_seen)
				return NULL;
		}
		const unsigned char *at = r->bytes + (head & (r->capacity - 1));
		if (*(const uint32_t *)at != 0)
			return at;
		/* A skip mark: the next record is at the front. */
		head += r->capacity - (head & (r->capacity - 1));
		atomic_store_explicit(&r->head, head, memory_order_release);
	}
}

/* Consumer only: frees the record front returned, of `bytes`. */
static inline void pr_record_ring_pop(struct pr_record_ring *r, size_t bytes)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	atomic_store_explicit(&r->head, head + bytes, memory_order_release);
}

#endif
