/* test_ranking_refresh.c - a ranking refreshed from an older one and the
 * customers changed since equals a ranking built whole, entry for entry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "support_ranking.h"
#include "timeparse.h"

Test(ranking_refresh, equals_a_whole_build_round_after_round)
{
	int64_t t0 = pr_days_from_civil(2024, 1, 1) * PR_MS_PER_DAY;
	for (uint64_t seed = 1; seed <= 6; seed++) {
		struct pr_engine_options opt;
		pr_engine_options_init(&opt);
		struct pr_engine *e;
		cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
		enum pr_window window = seed % 2 ? PR_WINDOW_ALL : PR_WINDOW_MONTH;
		struct pr_ranking *kept = NULL;
		uint64_t x = seed * 0x9e3779b97f4a7c15ull;
		int64_t ts = t0;
		for (int round = 0; round < 40; round++) {
			/* Few records per round (a refresh), sometimes many (a
			 * rebuild); the clock sometimes crosses into a new month. */
			int records = round % 9 == 8 ? 3000 : 1 + (int)(support_next(&x) % 60);
			for (int i = 0; i < records; i++) {
				uint64_t u = support_next(&x);
				char id[24];
				/* Ids equal in their first 8 bytes, and many equal amounts: ties. */
				int len = snprintf(id, sizeof id, "customer%llu", (unsigned long long)(u % 2000));
				ts += (int64_t)((u >> 12) % 3000000);
				struct pr_record r = {
					.ts_ms = ts, .amount_minor = (int64_t)((u >> 24) % 7) * 500 - 1000,
					.customer = id, .customer_len = (uint8_t)len, .store = "S", .store_len = 1,
				};
				cr_assert_eq(pr_engine_add(e, &r), 0);
			}
			struct pr_ranking *refreshed, *whole;
			cr_assert_eq(pr_ranking_refresh(e, kept, window, &refreshed, NULL), 0);
			cr_assert_eq(pr_ranking_build(e, window, -1, &whole, NULL), 0);
			/* Indexed as paretod does (a refresh of an indexed ranking
			 * comes indexed, its revenues copied but for the changed). */
			cr_assert_eq(pr_ranking_index(refreshed, NULL), 0);
			cr_assert_eq(pr_ranking_index(whole, NULL), 0);
			char where[64];
			snprintf(where, sizeof where, "seed %llu round %d", (unsigned long long)seed, round);
			support_assert_same_entries(refreshed, whole, where);
			for (int c = 0; c < 2001; c++) {
				char id[24];
				int len = snprintf(id, sizeof id, "customer%d", c);
				struct pr_ranked fx = { 0 }, fy = { 0 };
				int ca = pr_ranking_find(refreshed, id, (size_t)len, &fx);
				int cb = pr_ranking_find(whole, id, (size_t)len, &fy);
				cr_assert(ca == cb && fx.revenue_minor == fy.revenue_minor &&
					  (ca < 0 || fx.rank == fy.rank),
					  "%s: customer%d: %d rank %llu revenue %lld, want %d rank %llu revenue %lld",
					  where, c, ca, (unsigned long long)fx.rank, (long long)fx.revenue_minor,
					  cb, (unsigned long long)fy.rank, (long long)fy.revenue_minor);
			}
			pr_ranking_destroy(whole);
			pr_ranking_destroy(kept);
			kept = refreshed;
		}
		pr_ranking_destroy(kept);
		pr_engine_destroy(e);
	}
}
