/* support_ranking.h - shared by the ranking suites: a seeded generator and
 * an entry-by-entry comparison of two rankings. */
#ifndef PARETO_SUPPORT_RANKING_H
#define PARETO_SUPPORT_RANKING_H

#include <stdint.h>

#include "pareto/ranking.h"

/* xorshift64: the next value of a nonzero state. */
uint64_t support_next(uint64_t *state);

/* Fails the test (naming `where` and the rank) unless a and b hold the same
 * customers at every rank with the same revenue, competition rank and
 * cumulative share. */
void support_assert_same_entries(const struct pr_ranking *a, const struct pr_ranking *b,
				 const char *where);

#endif
