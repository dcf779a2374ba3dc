/* support_ranking.c - see support_ranking.h. */
#include <criterion/criterion.h>
#include <string.h>

#include "support_ranking.h"

uint64_t support_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

void support_assert_same_entries(const struct pr_ranking *a, const struct pr_ranking *b,
				 const char *where)
{
	for (uint64_t rank = 1;; rank++) {
		struct pr_ranked x, y;
		int ca = pr_ranking_at(a, rank, &x), cb = pr_ranking_at(b, rank, &y);
		cr_assert_eq(ca, cb, "%s: rank %llu exists in one only", where, (unsigned long long)rank);
		if (ca < 0)
			return;
		cr_assert(x.revenue_minor == y.revenue_minor && x.competition_rank == y.competition_rank &&
			  x.cumulative_share == y.cumulative_share && x.customer_len == y.customer_len &&
			  memcmp(x.customer, y.customer, x.customer_len) == 0,
			  "%s: rank %llu differs", where, (unsigned long long)rank);
	}
}
