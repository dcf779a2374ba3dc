/*
 * pareto/ranking.h - exact rankings and the figures built on them.
 *
 * A ranking is an immutable snapshot of one window over one scope (the
 * company or one store): the customers with revenue > 0 in that window and
 * scope, ordered by revenue descending and then by id in byte order (so
 * ranks are a total order), with prefix sums of revenue. It answers rank of
 * a customer in O(log N), customer at a rank with his
 * competition rank and top-m revenue in O(1).
 * Building is O(N) plus a radix sort of the revenues. It borrows the
 * engine's ids: destroy it before the engine, and rebuild after adds.
 */
#ifndef PARETO_RANKING_H
#define PARETO_RANKING_H

#include <stddef.h>
#include <stdint.h>

#include "pareto/engine.h"

enum pr_risk {
	PR_RISK_NONE,
	PR_RISK_KEY,      /* largest share >= 10% */
	PR_RISK_ELEVATED, /* >= 20% */
	PR_RISK_HIGH,     /* >= 40% */
	PR_RISK_CRITICAL, /* >= 50% */
	PR_RISK_MONO,     /* N = 1 */
};

const char *pr_risk_name(enum pr_risk risk);

struct pr_ranking;

/* store < 0: the company; else a store index from pr_engine_store_find. */
int pr_ranking_build(const struct pr_engine *e, enum pr_window window,
		     int64_t store, struct pr_ranking **out, struct pr_error *err);

/*
 * The company ranking of `window` as of now, from `old` (a company ranking
 * of the same window from this engine, or NULL) and the customers that
 * changed since (keep_changes): O(N + k log N) for k changed customers
 * instead of a build's full sort. Builds it whole when it cannot refresh
 * (no old ranking, another window, the watermark moved to other periods,
 * too many changes), and then starts the engine's change journal again,
 * which makes other rankings of it build whole next time. Equal to
 * pr_ranking_build in every entry.
 */
int pr_ranking_refresh(struct pr_engine *e, const struct pr_ranking *old, enum pr_window window,
		       struct pr_ranking **out, struct pr_error *err);

/* One ranking per store, built in one pass: out[store] for every store. */
int pr_ranking_build_stores(const struct pr_engine *e, enum pr_window window,
			    struct pr_ranking ***out, uint32_t *count,
			    struct pr_error *err);

/* The same for the stores only[store] marks (one entry for each of the
 * engine's stores); out[store] is NULL for the others. One pass over
 * every pair still, but nothing of the others is sorted or summed: the
 * stores an INGEST touched, for its alerts. */
int pr_ranking_build_some_stores(const struct pr_engine *e, enum pr_window window,
				 const uint8_t *only, struct pr_ranking ***out, uint32_t *count,
				 struct pr_error *err);

void pr_ranking_destroy(struct pr_ranking *r);

struct pr_ranked {
	uint64_t rank;             /* 1..N, ties broken by id */
	uint64_t competition_rank; /* 1 + customers with strictly more */
	const char *customer;      /* borrowed */
	uint32_t customer_len;
	int64_t revenue_minor;
	double share;              /* revenue / total positive revenue */
	double cumulative_share;   /* top-rank revenue / total */
	double percentile;         /* rank / N */
	char tier;                 /* 'A', 'B' or 'C' */
};

uint64_t pr_ranking_customers(const struct pr_ranking *r);
int64_t pr_ranking_revenue(const struct pr_ranking *r);
/* Revenue of ranks 1..m (m <= N). */
int64_t pr_ranking_top_revenue(const struct pr_ranking *r, uint64_t m);
/* Fills *out for rank 1..N; -ERANGE otherwise. */
int pr_ranking_at(const struct pr_ranking *r, uint64_t rank, struct pr_ranked *out);
/*
 * Fills *out for a customer id. -ENOENT if the customer has no revenue > 0
 * in this window and scope (out->revenue_minor still says what he has,
 * 0 if he was never seen). Without an index the lookup uses his revenue
 * now: -ESTALE if the ranking was built before it changed (rebuild).
 */
int pr_ranking_find(const struct pr_ranking *r, const char *id, size_t len,
		    struct pr_ranked *out);

/*
 * What answers read of the engine: pr_ranking_at only its customer ids;
 * pr_ranking_find also the customers' revenues now, unless this is true (an
 * indexed ranking, or a layered one). Ids may be read while an engine with
 * apply threads goes on applying (its id tables are shared, id_table.h);
 * revenues only once it is drained.
 */
bool pr_ranking_find_reads_only_ids(const struct pr_ranking *r);

/*
 * Indexes a ranking by customer: pr_ranking_find then answers as of the
 * build (each customer's revenue and rank then), however far the engine
 * has moved on since; a customer first seen after the build is not found.
 * A company ranking: 8 bytes per customer the engine knows and one pass
 * over them, on a drained engine. A store ranking: 4 bytes per entry,
 * sorted by customer in 4 passes; it reads nothing of the engine (any
 * time, on the thread that owns the ranking). 0 or -ENOMEM.
 */
int pr_ranking_index(struct pr_ranking *r, struct pr_error *err);

struct pr_tier_figures {
	uint64_t customers;
	int64_t revenue_minor;
	double share;
};

struct pr_summary {
	uint64_t customers;          /* N */
	int64_t revenue_minor;       /* total positive revenue */
	struct pr_tier_figures top;  /* the first ceil(top x N) */
	uint64_t pareto_customers;   /* smallest m with top-m >= target x total */
	double pareto_point;         /* m / N */
	struct pr_tier_figures tiers[3]; /* A, B, C */
	double cr1, cr5, cr10;
	double hhi;                  /* sum of squared shares x 10,000 */
	double gini;
	enum pr_risk risk;
	uint64_t key_clients;        /* ranks 1..key_clients have share >= 10% */
};

void pr_ranking_summarize(const struct pr_ranking *r, struct pr_summary *out);

/* ceil(f x n), exactly. */
uint64_t pr_fraction_ceil(struct pr_fraction f, uint64_t n);

#endif
