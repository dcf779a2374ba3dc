/* huge_alloc.c - see huge_alloc.h. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "huge_alloc.h"

/* Below this, malloc's pools serve better than a mapping of its own. */
#define MAPPING_MIN_BYTES (1u << 20)

#define CACHE_LINE_BYTES 64

void *pr_huge_alloc(size_t bytes)
{
	if (bytes < MAPPING_MIN_BYTES) {
		/* Cache-line aligned: malloc's 16-byte alignment put a 128-byte
		 * customer aggregate across three lines in three cases of four.
		 * From calloc, with room to move up to a line, not
		 * posix_memalign and memset: calloc leaves the pages of a large
		 * block untouched until used, and a memset made every shard's
		 * first chunks resident (a report of 50K records 15 -> 220 MB).
		 * The block's own address sits in the word before. */
		unsigned char *block = calloc(1, bytes + CACHE_LINE_BYTES + sizeof block);
		if (!block)
			return NULL;
		uintptr_t at = ((uintptr_t)(block + sizeof block) + CACHE_LINE_BYTES - 1) &
			       ~(uintptr_t)(CACHE_LINE_BYTES - 1);
		memcpy((unsigned char *)at - sizeof block, &block, sizeof block);
		return (void *)at;
	}
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failure just means small pages */
	return p;
}

void pr_huge_free(void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes < MAPPING_MIN_BYTES) {
		void *block;
		memcpy(&block, (unsigned char *)p - sizeof block, sizeof block);
		free(block);
	} else {
		munmap(p, bytes);
	}
}
