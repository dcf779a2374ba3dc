/* huge_alloc.c - see huge_alloc.h. */
#define _GNU_SOURCE
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
		 * customer aggregate across three lines in three cases of four. */
		void *p;
		if (posix_memalign(&p, CACHE_LINE_BYTES, bytes ? bytes : 1) != 0)
			return NULL;
		return memset(p, 0, bytes);
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
	if (bytes < MAPPING_MIN_BYTES)
		free(p);
	else
		munmap(p, bytes);
}
