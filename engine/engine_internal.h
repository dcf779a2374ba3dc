/*
 * engine_internal.h - the engine's state, shared by engine.c (the writer)
 * and ranking.c (which reads it between writes).
 *
 * Tables:
 *   customers: customer id -> struct customer_aggregate
 *   stores:    store id    -> (nothing; the dense index is the store)
 *   pairs:     (store index, customer index) -> struct pair_aggregate
 *   days:      (customer index, day) pairs seen
 */
#ifndef PARETO_ENGINE_INTERNAL_H
#define PARETO_ENGINE_INTERNAL_H

#include "day_set.h"
#include "id_table.h"
#include "pair_table.h"
#include "pareto/engine.h"
#include "period_sums.h"

struct customer_aggregate {
	struct pr_period_sums sums;
	int64_t first_ms, last_ms;
	uint64_t purchases;
	uint32_t purchase_days;
	int32_t latest_day; /* the day of the last record that was a new day */
};

struct pair_aggregate {
	struct pr_period_sums sums;
	uint32_t store, customer;
};

struct pr_engine {
	struct pr_engine_options opt;
	struct pr_id_table customers;
	struct pr_id_table stores;
	struct pr_pair_table pairs;
	struct pr_day_set days;
	uint64_t records;
	uint64_t volume_minor; /* sum of |amount| of all records: <= INT64_MAX */
	int64_t watermark_ms;
	bool has_watermark;
	struct pr_periods watermark_periods;
};

static inline const struct customer_aggregate *
engine_customer(const struct pr_engine *e, uint32_t index)
{
	return pr_id_table_value(&e->customers, index);
}

#endif
