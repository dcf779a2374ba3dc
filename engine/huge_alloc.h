/*
 * huge_alloc.h - zeroed memory for the big tables, backed by huge pages
 * where the kernel allows.
 *
 * The customer, pair and day tables are probed at random over hundreds of
 * megabytes; with 4 KiB pages nearly every probe also misses the TLB. Asking
 * for transparent huge pages (madvise MADV_HUGEPAGE) cuts those misses; where
 * THP is off the memory is simply ordinary pages.
 */
#ifndef PARETO_HUGE_ALLOC_H
#define PARETO_HUGE_ALLOC_H

#include <stddef.h>

/* Zeroed memory of at least `bytes`, aligned to a cache line (a page when
 * mapped), or NULL. Free with pr_huge_free. */
void *pr_huge_alloc(size_t bytes);
void pr_huge_free(void *p, size_t bytes);

#endif
