/* record_ring.c - allocation of a record ring; see record_ring.h. */
#include <errno.h>
#include <stdlib.h>

#include "record_ring.h"

int pr_record_ring_init(struct pr_record_ring *r, size_t capacity_bytes)
{
	uint64_t capacity = 256;
	while (capacity < capacity_bytes)
		capacity *= 2;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->tail_seen = r->head_seen = r->head_local = r->tail_local = 0;
	r->capacity = capacity;
	r->batch = capacity / 8 < 4096 ? capacity / 8 : 4096;
	/* 64-aligned: records are 8-aligned, and the first line is shared with nothing. */
	if (posix_memalign((void **)&r->bytes, 64, (size_t)capacity) != 0) {
		r->bytes = NULL;
		return -ENOMEM;
	}
	return 0;
}

void pr_record_ring_destroy(struct pr_record_ring *r)
{
	free(r->bytes);
	r->bytes = NULL;
}
