/* spsc_ring.c - see spsc_ring.h. */
#include <errno.h>
#include <stdlib.h>

#include "spsc_ring.h"

int pr_spsc_ring_init(struct pr_spsc_ring *r, uint32_t capacity)
{
	uint64_t size = 2;
	while (size < capacity)
		size *= 2;
	r->slots = calloc(size, sizeof *r->slots);
	if (!r->slots)
		return -ENOMEM;
	r->mask = size - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return 0;
}

void pr_spsc_ring_destroy(struct pr_spsc_ring *r)
{
	free(r->slots);
	r->slots = NULL;
}
