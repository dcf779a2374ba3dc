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
 * with release after the records' bytes; the consumer loads it with
 * acquire, so the bytes it then reads are those written before. `head`
 * (bytes freed) is written only by the consumer, with release after it has
 * read those records; the producer loads it with acquire before reusing
 * that space, so its new bytes cannot overtake the consumer's reads. Each
 * side reads its own index relaxed (it is the only writer) and keeps a
 * cached copy of the other's, refreshed only when the cached one says
 * full or empty; and each publishes its index every `batch` bytes (or
 * when asked, before waiting), not every record, so the two cache lines
 * move between cores rarely.
 *
 * Cost: O(1) per record, one release store per side per batch.
 */
#ifndef PARETO_RECORD_RING_H
#define PARETO_RECORD_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct pr_record_ring {
	/* Consumer's line: head (bytes consumed, published) written by it
	 * with release, read by the producer with acquire; head_local is how
	 * far it has really read, tail_seen its cache of tail. */
	alignas(64) _Atomic uint64_t head;
	uint64_t head_local;
	uint64_t tail_seen;
	/* Producer's line: tail (bytes published) written by it with release,
	 * read by the consumer with acquire; tail_local is how far it has
	 * really written, head_seen its cache of head. */
	alignas(64) _Atomic uint64_t tail;
	uint64_t tail_local;
	uint64_t head_seen;
	/* Set at init, read-only while threads run. */
	alignas(64) unsigned char *bytes; /* owned; capacity bytes, 8-aligned */
	uint64_t capacity;                /* a power of two */
	uint64_t batch;                   /* bytes published or freed at a time */
};

/* capacity_bytes is rounded up to a power of two, at least 256. 0 or -ENOMEM. */
int pr_record_ring_init(struct pr_record_ring *r, size_t capacity_bytes);
void pr_record_ring_destroy(struct pr_record_ring *r);

/* The largest record a ring of this capacity takes. */
static inline size_t pr_record_ring_max_record(const struct pr_record_ring *r)
{
	return (size_t)r->capacity / 2;
}

/* Producer only: makes every committed record visible. A producer about
 * to wait (for this ring or anything else) publishes first. */
static inline void pr_record_ring_publish(struct pr_record_ring *r)
{
	atomic_store_explicit(&r->tail, r->tail_local, memory_order_release);
}

/* Consumer only: hands the space of every popped record back. The
 * consumer releases before it stops reading for a while. */
static inline void pr_record_ring_release(struct pr_record_ring *r)
{
	atomic_store_explicit(&r->head, r->head_local, memory_order_release);
}

/*
 * Producer only. Room for a record of `bytes` (a multiple of 8, at most
 * pr_record_ring_max_record), or NULL if the ring is too full now. The
 * record is committed by commit and becomes visible by the next publish
 * (commit publishes every `batch` bytes); reserve again before committing
 * and the first reservation is forgotten.
 */
static inline void *pr_record_ring_reserve(struct pr_record_ring *r, size_t bytes)
{
	uint64_t tail = r->tail_local;
	uint64_t to_end = r->capacity - (tail & (r->capacity - 1));
	if (bytes > to_end) {
		/* A skip mark, published at once: the consumer must be able to
		 * pass it and free the end even if the front is not free yet. */
		if (tail + to_end - r->head_seen > r->capacity) {
			r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
			if (tail + to_end - r->head_seen > r->capacity)
				return NULL;
		}
		*(uint32_t *)(r->bytes + (tail & (r->capacity - 1))) = 0;
		r->tail_local = tail += to_end;
		pr_record_ring_publish(r);
	}
	if (tail + bytes - r->head_seen > r->capacity) {
		r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tail + bytes - r->head_seen > r->capacity)
			return NULL;
	}
	return r->bytes + (tail & (r->capacity - 1));
}

/* Producer only: commits the record reserved last, of `bytes`. */
static inline void pr_record_ring_commit(struct pr_record_ring *r, size_t bytes)
{
	r->tail_local += bytes;
	/* Publishing every record would move the tail's line to the
	 * consumer's core and back once a record. */
	if (r->tail_local - atomic_load_explicit(&r->tail, memory_order_relaxed) >= r->batch)
		pr_record_ring_publish(r);
}

/* Consumer only: the oldest published record, or NULL if none (having
 * released what it popped). */
static inline const void *pr_record_ring_front(struct pr_record_ring *r)
{
	uint64_t head = r->head_local;
	for (;;) {
		if (head == r->tail_seen) {
			r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (head == r->tail_seen) {
				pr_record_ring_release(r);
				return NULL;
			}
		}
		const unsigned char *at = r->bytes + (head & (r->capacity - 1));
		if (*(const uint32_t *)at != 0)
			return at;
		/* A skip mark: the next record is at the front. */
		r->head_local = head += r->capacity - (head & (r->capacity - 1));
		pr_record_ring_release(r);
	}
}

/* Consumer only: pops the record front returned, of `bytes`; its space is
 * handed back by the next release (pop releases every `batch` bytes). */
static inline void pr_record_ring_pop(struct pr_record_ring *r, size_t bytes)
{
	r->head_local += bytes;
	if (r->head_local - atomic_load_explicit(&r->head, memory_order_relaxed) >= r->batch)
		pr_record_ring_release(r);
}

#endif
