/*
 * store_build.c - store rankings built beside ingest (store_build.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "ranking_internal.h"
#include "shard_owners.h"
#include "shard_scan.h"
#include "store_build.h"
#include "test_hooks.h"

/* One apply thread's list. */
struct part {
	struct store_pair *pairs; /* count */
	size_t count, capacity;
	int rc;
};

struct pr_store_build {
	struct pr_shard_scan *scan;
	const struct pr_engine *engine;
	enum pr_window window;
	/* As of the start, on the server thread. */
	struct pr_periods periods;
	uint64_t epoch;
	uint32_t stores;
	unsigned owners;
	struct part *parts; /* owners */
	struct pr_store_rankings result;
	int rc;
};

/* On apply thread `owner`: lists the pairs of its shards with revenue in
 * the window. */
static void list_pairs(void *arg, unsigned owner, unsigned owners)
{
	struct pr_store_build *b = arg;
	struct part *p = &b->parts[owner];
	const struct pr_engine *e = b->engine;
	for (uint32_t shard = owner; shard < PR_SHARDS && p->rc == 0; shard += owners) {
		const struct pr_stable_array *t = &e->shards[shard].pairs;
		for (uint32_t i = 0; i < t->count; i++) {
			const struct pair_aggregate *x = pr_stable_array_at(t, i);
			int64_t revenue = pr_period_sums_in(&x->sums, b->window, &b->periods);
			if (revenue == 0)
				continue;
			if (p->count == p->capacity) {
				size_t capacity = p->capacity ? 2 * p->capacity : 4096;
				struct store_pair *bigger = realloc(p->pairs, capacity * sizeof *bigger);
				if (!bigger) {
					p->rc = -ENOMEM;
					break;
				}
				p->pairs = bigger;
				p->capacity = capacity;
			}
			p->pairs[p->count++] = (struct store_pair){ revenue, x->customer, x->store };
		}
	}
}

/* On the scan's thread: the lists sorted into rankings. */
static void build(void *arg)
{
	struct pr_store_build *b = arg;
	pr_test_hook_pause("PARETO_BUILD_DELAY_MS"); /* a slow build, for a test */
	const struct store_pair *lists[PR_SHARD_OWNERS_MAX];
	size_t counts[PR_SHARD_OWNERS_MAX];
	int rc = 0;
	for (unsigned k = 0; k < b->owners; k++) {
		if (b->parts[k].rc < 0)
			rc = b->parts[k].rc;
		lists[k] = b->parts[k].pairs;
		counts[k] = b->parts[k].count;
	}
	if (rc == 0)
		rc = ranking_build_stores_from_pairs(b->engine, b->window, &b->periods, b->epoch,
						     b->stores, lists, counts, b->owners,
						     &b->result.rankings);
	for (unsigned k = 0; k < b->owners; k++) {
		free(b->parts[k].pairs);
		b->parts[k].pairs = NULL;
	}
	b->result.count = rc == 0 ? b->stores : 0;
	b->rc = rc;
}

int pr_store_build_start(struct pr_engine *e, enum pr_window w, struct pr_store_build **out)
{
	unsigned owners = pr_shard_scan_owners(e);
	if (!owners || engine_can_rank(e, w, true) < 0)
		return -ENOTSUP;
	struct pr_store_build *b = calloc(1, sizeof *b);
	if (!b || !(b->parts = calloc(owners, sizeof *b->parts))) {
		free(b);
		return -ENOMEM;
	}
	b->engine = e;
	b->window = w;
	b->periods = e->watermark_periods;
	b->epoch = e->changes_epoch;
	b->stores = e->stores.count;
	b->owners = owners;
	b->result.records = e->records;
	b->result.has_watermark = e->has_watermark;
	b->result.watermark_ms = e->watermark_ms;
	int rc = pr_shard_scan_start(e, list_pairs, build, b, &b->scan);
	if (rc < 0) {
		free(b->parts);
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

bool pr_store_build_done(const struct pr_store_build *b)
{
	return pr_shard_scan_done(b->scan);
}

int pr_store_build_finish(struct pr_store_build *b, struct pr_store_rankings *out)
{
	pr_shard_scan_end(b->scan);
	int rc = b->rc;
	if (rc == 0)
		*out = b->result;
	free(b->parts);
	free(b);
	return rc;
}
