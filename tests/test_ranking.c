/* test_ranking.c - rankings and concentration figures: hand-checked cases
 * and a brute-force reference on seeded random engines. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id_table.h"
#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "timeparse.h"

#define DAY PR_MS_PER_DAY
#define T0 (pr_days_from_civil(2024, 1, 10) * DAY)

static struct pr_engine *new_engine(void)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 4;
	struct pr_engine *e;
	cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
	return e;
}

static void add(struct pr_engine *e, const char *customer, const char *store,
		int64_t ts_ms, int64_t amount)
{
	struct pr_record r = {
		.ts_ms = ts_ms, .amount_minor = amount,
		.customer = customer, .customer_len = (uint8_t)strlen(customer),
		.store = store, .store_len = (uint8_t)strlen(store),
	};
	cr_assert_eq(pr_engine_add(e, &r), 0);
}

static void assert_close(double got, double want, const char *what)
{
	cr_assert(fabs(got - want) <= 1e-12 + 1e-9 * fabs(want), "%s: got %.17g want %.17g",
		  what, got, want);
}

Test(ranking, five_customers_by_hand)
{
	struct pr_engine *e = new_engine();
	add(e, "a", "S1", T0, 5000);
	add(e, "b", "S1", T0, 3000);
	add(e, "c", "S2", T0, 1000);
	add(e, "d", "S2", T0, 500);
	add(e, "e", "S2", T0, 700);
	add(e, "e", "S2", T0 + DAY, -200); /* a refund: e ties with d at 500 */
	add(e, "z", "S1", T0, 100);
	add(e, "z", "S1", T0, -100);       /* net zero: not ranked */

	struct pr_ranking *r;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
	struct pr_summary s;
	pr_ranking_summarize(r, &s);
	cr_assert_eq(s.customers, 5);
	cr_assert_eq(s.revenue_minor, 10000);
	cr_assert_eq(s.top.customers, 1); /* ceil(0.2 x 5) */
	cr_assert_eq(s.top.revenue_minor, 5000);
	assert_close(s.top.share, 0.5, "top share");
	cr_assert_eq(s.pareto_customers, 2); /* 5000 + 3000 = 80% */
	assert_close(s.pareto_point, 0.4, "pareto point");
	cr_assert_eq(s.tiers[0].customers, 1);
	cr_assert_eq(s.tiers[1].customers, 2); /* ranks 2..ceil(2.5)=3 */
	cr_assert_eq(s.tiers[1].revenue_minor, 4000);
	cr_assert_eq(s.tiers[2].customers, 2);
	cr_assert_eq(s.tiers[2].revenue_minor, 1000);
	assert_close(s.cr1, 0.5, "cr1");
	assert_close(s.cr5, 1.0, "cr5");
	assert_close(s.hhi, (0.25 + 0.09 + 0.01 + 0.0025 + 0.0025) * 10000, "hhi");
	/* ascending 500 500 1000 3000 5000: sum i x_i = 500+1000+3000+12000+25000 */
	assert_close(s.gini, 2.0 * 41500 / (5 * 10000.0) - 6.0 / 5, "gini");
	cr_assert_eq(s.risk, PR_RISK_CRITICAL);
	cr_assert_eq(s.key_clients, 3, "50%%, 30%% and exactly 10%% are key");

	struct pr_ranked x;
	cr_assert_eq(pr_ranking_find(r, "d", 1, &x), 0);
	cr_assert_eq(x.rank, 4, "tie broken by id: d before e");
	cr_assert_eq(x.competition_rank, 4);
	cr_assert_eq(x.tier, 'C');
	cr_assert_eq(pr_ranking_find(r, "e", 1, &x), 0);
	cr_assert_eq(x.rank, 5);
	cr_assert_eq(x.competition_rank, 4, "equal revenue shares the competition rank");
	assert_close(x.percentile, 1.0, "percentile");
	assert_close(x.cumulative_share, 1.0, "cumulative");
	cr_assert_eq(pr_ranking_find(r, "z", 1, &x), -ENOENT);
	cr_assert_eq(x.revenue_minor, 0);
	cr_assert_eq(pr_ranking_find(r, "nobody", 6, &x), -ENOENT);
	cr_assert_eq(pr_ranking_at(r, 2, &x), 0);
	cr_assert_eq(x.customer_len, 1);
	cr_assert_eq(x.customer[0], 'b');
	cr_assert_eq(x.tier, 'B');
	cr_assert_eq(pr_ranking_at(r, 6, &x), -ERANGE);
	pr_ranking_destroy(r);

	int64_t s2 = pr_engine_store_find(e, "S2", 2);
	cr_assert_geq(s2, 0);
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, s2, &r, NULL), 0);
	pr_ranking_summarize(r, &s);
	cr_assert_eq(s.customers, 3);
	cr_assert_eq(s.revenue_minor, 2000);
	cr_assert_eq(s.risk, PR_RISK_CRITICAL, "c holds exactly 50%% of S2");
	cr_assert_eq(s.key_clients, 3);
	pr_ranking_destroy(r);
	cr_assert_eq(pr_engine_store_find(e, "S9", 2), -ENOENT);
	pr_engine_destroy(e);
}

Test(ranking, mono_empty_and_risk_levels)
{
	struct pr_engine *e = new_engine();
	struct pr_ranking *r;
	struct pr_summary s;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
	pr_ranking_summarize(r, &s);
	cr_assert_eq(s.customers, 0);
	cr_assert_eq(s.revenue_minor, 0);
	cr_assert_eq(s.risk, PR_RISK_NONE);
	pr_ranking_destroy(r);

	add(e, "only", "", T0, 123);
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
	pr_ranking_summarize(r, &s);
	cr_assert_eq(s.risk, PR_RISK_MONO);
	assert_close(s.gini, 0, "gini of one");
	assert_close(s.hhi, 10000, "hhi of one");
	cr_assert_eq(s.pareto_customers, 1);
	pr_ranking_destroy(r);

	/* 40 / 60 split: largest 60% -> critical; 40/30/30 -> high; ... */
	struct { int64_t top, rest_each; int rest; enum pr_risk want; } cases[] = {
		{ 399, 100, 6, PR_RISK_ELEVATED }, /* 39.9% */
		{ 400, 100, 6, PR_RISK_HIGH },     /* exactly 40% */
		{ 200, 100, 8, PR_RISK_ELEVATED }, /* exactly 20% */
		{ 100, 100, 9, PR_RISK_KEY },      /* ten at 10% */
		{ 90, 91, 10, PR_RISK_NONE },      /* all below 10% */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pr_engine *f = new_engine();
		char id[16];
		add(f, "top", "", T0, cases[i].top);
		for (int k = 0; k < cases[i].rest; k++) {
			snprintf(id, sizeof id, "r%d", k);
			add(f, id, "", T0, cases[i].rest_each);
		}
		cr_assert_eq(pr_ranking_build(f, PR_WINDOW_ALL, -1, &r, NULL), 0);
		pr_ranking_summarize(r, &s);
		cr_assert_eq(s.risk, cases[i].want, "case %zu: got %s", i, pr_risk_name(s.risk));
		pr_ranking_destroy(r);
		pr_engine_destroy(f);
	}
	pr_engine_destroy(e);
}

Test(ranking, lapsed_regulars_by_hand)
{
	struct pr_engine *e = new_engine();
	/* reg: days 0, 10, 20 (mean gap 10 d), then silent; watermark day 60:
	 * idle 40 d > 3 x 10 d and >= 30 d: lapsed. */
	add(e, "reg", "", T0, 100);
	add(e, "reg", "", T0 + 10 * DAY, 100);
	add(e, "reg", "", T0 + 20 * DAY, 100);
	add(e, "reg", "", T0 + 20 * DAY, 100); /* same day: still 3 days */
	/* two: only 2 distinct days: never a regular. */
	add(e, "two", "", T0, 900);
	add(e, "two", "", T0 + DAY, 900);
	/* slow: days 0, 20, 40 (gap 20); idle 20 d < 60: not lapsed. */
	add(e, "slow", "", T0, 5);
	add(e, "slow", "", T0 + 40 * DAY, 5);
	add(e, "slow", "", T0 + 20 * DAY, 5); /* out of order */
	/* fast: days 0, 1, 2, 3 (gap 1 d); idle 25 d > 3 d but < 30 d. */
	for (int d = 0; d < 4; d++)
		add(e, "fast", "", T0 + 35 * DAY + d * DAY, 1);
	add(e, "clock", "", T0 + 60 * DAY, 1);

	struct pr_lapsed *list;
	size_t count, total;
	cr_assert_eq(pr_engine_lapsed(e, 10, &list, &count, &total), 0);
	cr_assert_eq(total, 1);
	cr_assert_eq(count, 1);
	cr_assert_eq(memcmp(list[0].customer, "reg", 3), 0);
	cr_assert_eq(list[0].revenue_minor, 400);
	cr_assert_eq(list[0].purchases, 4);
	cr_assert_eq(list[0].purchase_days, 3);
	assert_close(list[0].mean_gap_days, 10, "mean gap");
	free(list);

	struct pr_customer_info info;
	cr_assert_eq(pr_engine_customer(e, "slow", 4, &info), 0);
	cr_assert_eq(info.purchase_days, 3);
	cr_assert_eq(info.first_ms, T0);
	cr_assert_eq(info.last_ms, T0 + 40 * DAY);
	cr_assert_not(info.lapsed);
	cr_assert_eq(pr_engine_customer(e, "reg", 3, &info), 0);
	cr_assert(info.lapsed);
	cr_assert_eq(pr_engine_customer(e, "none", 4, &info), -ENOENT);
	pr_engine_destroy(e);
}

Test(ranking, refuses_records_that_could_overflow)
{
	struct pr_engine *e = new_engine();
	struct pr_record r = { .ts_ms = T0, .amount_minor = INT64_MAX - 5,
			       .customer = "a", .customer_len = 1, .store = "", .store_len = 0 };
	cr_assert_eq(pr_engine_add(e, &r), 0);
	r.amount_minor = 6;
	cr_assert_eq(pr_engine_add(e, &r), -ERANGE);
	r.amount_minor = -6;
	cr_assert_eq(pr_engine_add(e, &r), -ERANGE, "refunds count in the volume too");
	r.amount_minor = 5;
	cr_assert_eq(pr_engine_add(e, &r), 0);
	r.amount_minor = 1;
	r.ts_ms = 253402300800000LL; /* year 10000 */
	cr_assert_eq(pr_engine_add(e, &r), -ERANGE);
	struct pr_engine_state st;
	pr_engine_state(e, &st);
	cr_assert_eq(st.records, 2);
	struct pr_ranking *rk;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &rk, NULL), 0);
	cr_assert_eq(pr_ranking_revenue(rk), INT64_MAX);
	pr_ranking_destroy(rk);
	pr_engine_destroy(e);
}

Test(ranking, fractions_parse_exactly)
{
	struct pr_fraction f;
	cr_assert_eq(pr_fraction_parse("0.2", &f), 0);
	cr_assert_eq(pr_fraction_ceil(f, 5), 1);
	cr_assert_eq(pr_fraction_ceil(f, 6), 2);
	cr_assert_eq(pr_fraction_ceil(f, 10), 2);
	cr_assert_eq(pr_fraction_ceil(f, 0), 0);
	cr_assert_eq(pr_fraction_parse("20%", &f), 0);
	cr_assert_eq(pr_fraction_ceil(f, 11), 3);
	cr_assert_eq(pr_fraction_parse("1/3", &f), 0);
	cr_assert_eq(pr_fraction_ceil(f, 3), 1);
	cr_assert_eq(pr_fraction_parse("3", &f), 0);
	cr_assert_eq(f.num, 3);
	cr_assert_eq(f.den, 1);
	const char *bad[] = { "", ".", "x", "0.2x", "1/0", "/3", "-0.2", "1e-3" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(pr_fraction_parse(bad[i], &f), -EINVAL, "'%s'", bad[i]);
}

/* ---- brute force -------------------------------------------------------- */

struct ref {
	char id[8];
	int64_t revenue;
};

static int ref_order(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	if (x->revenue != y->revenue)
		return x->revenue > y->revenue ? -1 : 1;
	return strcmp(x->id, y->id);
}

Test(ranking, matches_brute_force_on_random_engines)
{
	for (unsigned seed = 1; seed <= 300; seed++) {
		srand(seed);
		int customers = 1 + rand() % 60, records = rand() % 400;
		/* Every third seed, revenues past 2^32: rankings sort them through
		 * a buffer instead of as packed keys (ranking_sort_entries). */
		int64_t scale = seed % 3 ? 1 : ((int64_t)1 << 34) + 1;
		struct ref *ref = calloc((size_t)customers, sizeof *ref);
		struct pr_engine *e = new_engine();
		for (int c = 0; c < customers; c++)
			snprintf(ref[c].id, sizeof ref[c].id, "%c%d", 'A' + rand() % 3, rand() % 40);
		for (int i = 0; i < records; i++) {
			int c = rand() % customers;
			/* Small amounts so that ties are frequent. */
			int64_t amount = (rand() % 10 == 0) ? -(rand() % 50) : rand() % 60;
			add(e, ref[c].id, "", T0 + (rand() % 30) * DAY, amount * scale);
		}
		/* Duplicate ids in ref share one customer: merge them. */
		int n = 0;
		struct ref *pos = calloc((size_t)customers, sizeof *pos);
		for (int c = 0; c < customers; c++) {
			struct pr_customer_info info;
			bool dup = false;
			for (int k = 0; k < c; k++)
				dup |= strcmp(ref[k].id, ref[c].id) == 0;
			if (dup || pr_engine_customer(e, ref[c].id, strlen(ref[c].id), &info) < 0)
				continue;
			if (info.revenue_minor[PR_WINDOW_ALL] > 0) {
				pos[n] = ref[c];
				pos[n++].revenue = info.revenue_minor[PR_WINDOW_ALL];
			}
		}
		qsort(pos, (size_t)n, sizeof *pos, ref_order);
		__int128 total = 0, squares = 0, weighted = 0;
		for (int i = 0; i < n; i++) {
			total += pos[i].revenue;
			squares += (__int128)pos[i].revenue * pos[i].revenue;
			weighted += (__int128)(n - i) * pos[i].revenue; /* ascending index */
		}
		struct pr_ranking *r;
		struct pr_summary s;
		cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
		pr_ranking_summarize(r, &s);
		cr_assert_eq(s.customers, (uint64_t)n, "seed %u", seed);
		cr_assert_eq(s.revenue_minor, (int64_t)total, "seed %u", seed);
		if (n) {
			int top = (n * 2 + 9) / 10, pareto = 0;
			__int128 acc = 0;
			for (int i = 0; i < n && !pareto; i++) {
				acc += pos[i].revenue;
				if (acc * 5 >= total * 4)
					pareto = i + 1;
			}
			cr_assert_eq(s.top.customers, (uint64_t)top, "seed %u", seed);
			cr_assert_eq(s.pareto_customers, (uint64_t)pareto, "seed %u", seed);
			assert_close(s.hhi, (double)squares * 10000.0 / ((double)total * (double)total), "hhi");
			assert_close(s.gini, 2.0 * (double)weighted / ((double)n * (double)total) -
						     (double)(n + 1) / n, "gini");
		}
		for (int i = 0; i < n; i++) {
			struct pr_ranked x;
			cr_assert_eq(pr_ranking_find(r, pos[i].id, strlen(pos[i].id), &x), 0);
			cr_assert_eq(x.rank, (uint64_t)i + 1, "seed %u id %s", seed, pos[i].id);
			int above = 0;
			while (above < n && pos[above].revenue > pos[i].revenue)
				above++;
			cr_assert_eq(x.competition_rank, (uint64_t)above + 1, "seed %u", seed);
			cr_assert_eq(pr_ranking_at(r, (uint64_t)i + 1, &x), 0);
			cr_assert_eq(x.revenue_minor, pos[i].revenue);
			cr_assert_eq(x.customer_len, strlen(pos[i].id));
			cr_assert_eq(memcmp(x.customer, pos[i].id, x.customer_len), 0);
			cr_assert_eq(x.competition_rank, (uint64_t)above + 1, "seed %u rank %d", seed, i + 1);
		}
		/* Indexed, then the engine moves on: lookups answer as of the build. */
		cr_assert_eq(pr_ranking_index(r, NULL), 0);
		for (int i = 0; i < records / 4; i++)
			add(e, ref[rand() % customers].id, "", T0 + (rand() % 30) * DAY,
			    rand() % 60 * scale);
		add(e, "new-customer", "", T0, 100);
		for (int c = 0; c < customers; c++) {
			struct pr_ranked x;
			int rc = pr_ranking_find(r, ref[c].id, strlen(ref[c].id), &x);
			int i = 0;
			while (i < n && strcmp(pos[i].id, ref[c].id) != 0)
				i++;
			if (i == n) {
				cr_assert_eq(rc, -ENOENT, "seed %u id %s", seed, ref[c].id);
				cr_assert_leq(x.revenue_minor, 0, "seed %u id %s", seed, ref[c].id);
				continue;
			}
			cr_assert_eq(rc, 0, "seed %u id %s", seed, ref[c].id);
			cr_assert_eq(x.rank, (uint64_t)i + 1, "seed %u id %s", seed, ref[c].id);
			cr_assert_eq(x.revenue_minor, pos[i].revenue, "seed %u id %s", seed, ref[c].id);
		}
		struct pr_ranked x;
		cr_assert_eq(pr_ranking_find(r, "new-customer", 12, &x), -ENOENT);
		pr_ranking_destroy(r);
		pr_engine_destroy(e);
		free(ref);
		free(pos);
	}
}

/* Revenues up to 2^32 - 1 sort as packed keys, one more through a buffer:
 * the order is revenue descending, then id, either way, at the limit. */
Test(ranking, revenues_at_the_packed_sort_limit)
{
	const int64_t limit = UINT32_MAX;
	for (int wide = 0; wide < 2; wide++) {
		struct pr_engine *e = new_engine();
		add(e, "m", "", T0, 1);
		add(e, "b", "", T0, limit);
		add(e, "a", "", T0, limit - 1);
		add(e, "a", "", T0, 1);          /* ties with b at the limit */
		add(e, "c", "", T0, limit - 1);
		add(e, "d", "", T0, 256);
		add(e, "e", "", T0, 255);
		add(e, "f", "", T0, (int64_t)1 << 24);
		if (wide)
			add(e, "w", "", T0, limit + 1);
		struct pr_ranking *r;
		cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
		const char *order[] = { "w", "a", "b", "c", "f", "d", "e", "m" };
		const int64_t revenue[] = { limit + 1, limit, limit, limit - 1, 1 << 24, 256, 255, 1 };
		const uint64_t competition[] = { 1, 2, 2, 4, 5, 6, 7, 8 };
		cr_assert_eq(pr_ranking_customers(r), (uint64_t)(7 + wide));
		for (int k = !wide; k < 8; k++) {
			struct pr_ranked x;
			uint64_t rank = (uint64_t)(k + wide);
			cr_assert_eq(pr_ranking_at(r, rank, &x), 0);
			cr_assert(x.customer_len == 1 && x.customer[0] == order[k][0],
				  "wide %d rank %llu: %.*s", wide, (unsigned long long)rank,
				  (int)x.customer_len, x.customer);
			cr_assert_eq(x.revenue_minor, revenue[k], "wide %d rank %llu", wide,
				     (unsigned long long)rank);
			cr_assert_eq(x.competition_rank, competition[k] - !wide);
		}
		pr_ranking_destroy(r);
		pr_engine_destroy(e);
	}
}

/* An unindexed ranking looked up after the engine moved on never describes
 * another customer, nor reads past its end. */
Test(ranking, lookups_on_an_older_ranking_say_it_is_stale)
{
	struct pr_engine *e = new_engine();
	add(e, "A", "S", T0, 100);
	add(e, "B", "S", T0, 50);
	add(e, "C", "S", T0, 10);
	struct pr_ranking *company, *store;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &company, NULL), 0);
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, 0, &store, NULL), 0);
	add(e, "A", "S", T0, -95); /* A: 5, below everyone ranked */
	add(e, "C", "S", T0, 100); /* C: 110, above everyone ranked */
	struct pr_ranked x;
	for (int scope = 0; scope < 2; scope++) {
		struct pr_ranking *r = scope ? store : company;
		cr_assert_eq(pr_ranking_find(r, "A", 1, &x), -ESTALE);
		cr_assert_eq(pr_ranking_find(r, "C", 1, &x), -ESTALE);
		cr_assert_eq(pr_ranking_find(r, "B", 1, &x), 0);
		cr_assert_eq(x.rank, 2);
		cr_assert_eq(pr_ranking_find(r, "D", 1, &x), -ENOENT);
	}
	pr_ranking_destroy(company);
	pr_ranking_destroy(store);
	pr_engine_destroy(e);
}

/* An indexed store ranking answers as of its build, whatever the engine
 * did since: ranks and revenues then, a customer whose refunds passed his
 * purchases there with his negative revenue then, one first seen after it
 * nowhere; and it reads no revenue now (pr_ranking_find_reads_only_ids). */
Test(ranking, an_indexed_store_ranking_answers_as_of_its_build)
{
	struct pr_engine *e = new_engine();
	add(e, "A", "S", T0, 100);
	add(e, "B", "S", T0, 50);
	add(e, "C", "S", T0, 10);
	add(e, "R", "S", T0, 20);
	add(e, "R", "S", T0, -70); /* R: -50 in S */
	add(e, "O", "T", T0, 30);  /* O: never in S */
	struct pr_ranking *store;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, 0, &store, NULL), 0);
	cr_assert(!pr_ranking_find_reads_only_ids(store));
	cr_assert_eq(pr_ranking_index(store, NULL), 0);
	cr_assert(pr_ranking_find_reads_only_ids(store));
	add(e, "A", "S", T0, -95); /* A: 5 now */
	add(e, "C", "S", T0, 100); /* C: 110 now */
	add(e, "R", "S", T0, 500); /* R: 450 now */
	add(e, "N", "S", T0, 999); /* N: first seen after the build */
	struct pr_ranked x;
	static const char *const order[] = { "A", "B", "C" };
	static const int64_t revenue[] = { 100, 50, 10 };
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(pr_ranking_find(store, order[k], 1, &x), 0, "%s", order[k]);
		cr_assert_eq(x.rank, (uint64_t)k + 1);
		cr_assert_eq(x.revenue_minor, revenue[k]);
	}
	cr_assert_eq(pr_ranking_find(store, "R", 1, &x), -ENOENT);
	cr_assert_eq(x.revenue_minor, -50);
	cr_assert_eq(pr_ranking_find(store, "O", 1, &x), -ENOENT);
	cr_assert_eq(x.revenue_minor, 0);
	cr_assert_eq(pr_ranking_find(store, "N", 1, &x), -ENOENT);
	cr_assert_eq(x.revenue_minor, 0);
	pr_ranking_destroy(store);
	pr_engine_destroy(e);
}

Test(ranking, competition_ranks_of_long_tie_runs)
{
	/* Runs of 1, 3, 1 and 5 equal revenues: 1; 2, 2, 2; 5; 6 x 5. */
	struct pr_engine *e = new_engine();
	static const int64_t amounts[] = { 90, 50, 50, 50, 40, 7, 7, 7, 7, 7 };
	for (int i = 0; i < 10; i++) {
		char id[8];
		snprintf(id, sizeof id, "c%d", 9 - i); /* ids against revenue order */
		add(e, id, "S", T0, amounts[i]);
	}
	static const uint64_t competition[] = { 1, 2, 2, 2, 5, 6, 6, 6, 6, 6 };
	for (int scope = -1; scope <= 0; scope++) {
		struct pr_ranking *r;
		cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, scope, &r, NULL), 0);
		for (uint64_t k = 1; k <= 10; k++) {
			struct pr_ranked x, y;
			cr_assert_eq(pr_ranking_at(r, k, &x), 0);
			cr_assert_eq(x.competition_rank, competition[k - 1], "scope %d rank %llu",
				     scope, (unsigned long long)k);
			cr_assert_eq(pr_ranking_find(r, x.customer, x.customer_len, &y), 0);
			cr_assert_eq(y.rank, k);
			cr_assert_eq(y.competition_rank, competition[k - 1]);
		}
		cr_assert_eq(pr_ranking_index(r, NULL), 0);
		for (uint64_t k = 1; k <= 10; k++) { /* the same through the index */
			struct pr_ranked x, y;
			cr_assert_eq(pr_ranking_at(r, k, &x), 0);
			cr_assert_eq(pr_ranking_find(r, x.customer, x.customer_len, &y), 0);
			cr_assert_eq(y.rank, k, "scope %d rank %llu", scope, (unsigned long long)k);
			cr_assert_eq(y.competition_rank, competition[k - 1]);
		}
		pr_ranking_destroy(r);
	}
	pr_engine_destroy(e);
}

/* A bulk load (staged per shard, applied shard by shard) gives exactly the
 * answers of applying the same records one by one, in every window, for the
 * company and every store; the test hash crowds all ids into one shard for
 * some seeds and spreads them for others. */
static uint64_t crowding_hash(const void *bytes, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ ((const unsigned char *)bytes)[i]) * 1099511628211ull;
	return h & 0x00ffffffffffff0full; /* shard 0, few distinct low bits */
}

static void assert_same_rankings(struct pr_ranking *a, struct pr_ranking *b, unsigned seed)
{
	struct pr_summary x, y;
	pr_ranking_summarize(a, &x);
	pr_ranking_summarize(b, &y);
	cr_assert_eq(memcmp(&x, &y, sizeof x), 0, "seed %u: summaries differ", seed);
	for (uint64_t k = 1; k <= x.customers; k++) {
		struct pr_ranked p, q;
		pr_ranking_at(a, k, &p);
		pr_ranking_at(b, k, &q);
		cr_assert_eq(p.revenue_minor, q.revenue_minor, "seed %u rank %llu", seed,
			     (unsigned long long)k);
		cr_assert_eq(pr_id_compare(p.customer, p.customer_len, q.customer, q.customer_len),
			     0, "seed %u rank %llu", seed, (unsigned long long)k);
	}
}

Test(ranking, bulk_load_equals_one_by_one)
{
	for (unsigned seed = 1; seed <= 60; seed++) {
		srand(seed);
		struct pr_engine_options opt;
		pr_engine_options_init(&opt);
		opt.customers_hint = 8;
		opt.hash = seed % 2 ? crowding_hash : NULL;
		opt.threads = 1 + seed % 3;
		struct pr_engine *direct, *bulk;
		cr_assert_eq(pr_engine_create(&direct, &opt, NULL), 0);
		cr_assert_eq(pr_engine_create(&bulk, &opt, NULL), 0);
		/* Odd seeds: one lane through pr_engine_add; even seeds: several
		 * lanes, lane k taking the k-th slice of the records. */
		unsigned lanes = seed % 2 ? 1 : 2 + seed % 3;
		cr_assert_eq(pr_engine_bulk_begin_lanes(bulk, lanes), 0);
		int records = rand() % 3000;
		for (int i = 0; i < records; i++) {
			char id[16], store[8];
			snprintf(id, sizeof id, "c%d", rand() % 500);
			snprintf(store, sizeof store, "s%d", rand() % 7);
			struct pr_record r = {
				.ts_ms = T0 + (int64_t)(rand() % 800) * DAY + rand() % DAY,
				.amount_minor = rand() % 5000 - 500,
				.customer = id, .customer_len = (uint8_t)strlen(id),
				.store = store, .store_len = (uint8_t)strlen(store),
			};
			cr_assert_eq(pr_engine_add(direct, &r), 0);
			if (lanes == 1)
				cr_assert_eq(pr_engine_add(bulk, &r), 0);
			else
				cr_assert_eq(pr_engine_lane_add(bulk, (unsigned)(i * (int)lanes / records), &r), 0);
		}
		cr_assert_eq(pr_engine_bulk_end(bulk), 0);
		for (int w = 0; w < PR_WINDOW_COUNT; w++) {
			struct pr_ranking *a, *b;
			cr_assert_eq(pr_ranking_build(direct, (enum pr_window)w, -1, &a, NULL), 0);
			cr_assert_eq(pr_ranking_build(bulk, (enum pr_window)w, -1, &b, NULL), 0);
			assert_same_rankings(a, b, seed);
			pr_ranking_destroy(a);
			pr_ranking_destroy(b);
			struct pr_engine_state sa_, sb_;
			pr_engine_state(direct, &sa_);
			pr_engine_state(bulk, &sb_);
			cr_assert(sa_.records == sb_.records && sa_.watermark_ms == sb_.watermark_ms &&
					  sa_.customers == sb_.customers && sa_.stores == sb_.stores,
				  "seed %u: state differs", seed);
			struct pr_ranking **sa, **sb;
			uint32_t na, nb;
			cr_assert_eq(pr_ranking_build_stores(direct, (enum pr_window)w, &sa, &na, NULL), 0);
			cr_assert_eq(pr_ranking_build_stores(bulk, (enum pr_window)w, &sb, &nb, NULL), 0);
			cr_assert_eq(na, nb);
			for (uint32_t st = 0; st < na; st++) {
				uint32_t la_, lb_;
				const char *ia = pr_engine_store_id(direct, st, &la_);
				const char *ib = pr_engine_store_id(bulk, st, &lb_);
				cr_assert(la_ == lb_ && memcmp(ia, ib, la_) == 0, "seed %u: store %u", seed, st);
				assert_same_rankings(sa[st], sb[st], seed);
				pr_ranking_destroy(sa[st]);
				pr_ranking_destroy(sb[st]);
			}
			free(sa);
			free(sb);
		}
		struct pr_lapsed *la, *lb;
		size_t ca, cb, ta, tb;
		cr_assert_eq(pr_engine_lapsed(direct, 1000, &la, &ca, &ta), 0);
		cr_assert_eq(pr_engine_lapsed(bulk, 1000, &lb, &cb, &tb), 0);
		cr_assert_eq(ta, tb, "seed %u", seed);
		for (size_t i = 0; i < ca; i++) {
			cr_assert_eq(la[i].revenue_minor, lb[i].revenue_minor);
			cr_assert_eq(la[i].purchase_days, lb[i].purchase_days);
		}
		free(la);
		free(lb);
		pr_engine_destroy(direct);
		pr_engine_destroy(bulk);
	}
}

/* Ties are ordered by id through an 8-byte prefix first: ids equal in
 * their first 8 bytes, ids with zero bytes against shorter ones (zero
 * padding), and long ids must still come out in pr_id_compare order. */
Test(ranking, tie_runs_in_exact_id_order)
{
	static const struct {
		const char *bytes;
		uint8_t len;
	} ids[] = {
		{ "A", 1 }, { "A\0", 2 }, { "A\0\0", 3 }, { "A\0\1", 3 }, { "AB", 2 },
		{ "ABCDEFGH", 8 }, { "ABCDEFGH\0", 9 }, { "ABCDEFGHI", 9 }, { "ABCDEFGHH", 9 },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26 }, { "ABCDEFGHIJKLMNOPQRSTUVWXYY", 26 },
		{ "\xff", 1 }, { "\xff\xff\xff\xff\xff\xff\xff\xff\x01", 9 }, { "", 0 }, { "B", 1 },
	};
	size_t n = sizeof ids / sizeof ids[0];
	struct pr_engine *e = new_engine();
	for (size_t i = 0; i < n; i++) {
		struct pr_record r = { .ts_ms = T0, .amount_minor = 700, .customer = ids[i].bytes,
				       .customer_len = ids[i].len, .store = "S", .store_len = 1 };
		cr_assert_eq(pr_engine_add(e, &r), 0);
	}
	struct pr_ranking *r;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &r, NULL), 0);
	struct pr_ranked prev = { 0 };
	for (uint64_t k = 1; k <= n; k++) {
		struct pr_ranked x;
		cr_assert_eq(pr_ranking_at(r, k, &x), 0);
		cr_assert_eq(x.competition_rank, 1);
		if (k > 1)
			cr_assert_lt(pr_id_compare(prev.customer, prev.customer_len, x.customer,
						   x.customer_len), 0, "rank %llu out of id order",
				     (unsigned long long)k);
		prev = x;
	}
	pr_ranking_destroy(r);
	pr_engine_destroy(e);
}
