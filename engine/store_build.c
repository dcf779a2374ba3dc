/*
 * store_build.c - store rankings built beside ingest (store_build.h).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "ranker.h"
#include "ranking_internal.h"
#include "shard_owners.h"
#include "store_build.h"

/* One apply thread's list. */
struct part {
	struct pr_store_build *build;
	unsigned owner;
	struct store_pair *pairs; /* count */
	size_t count, capacity;
	int rc;
	/* Stored with release by the apply thread once the list is whole;
	 * the build's thread loads it with acquire before reading it. */
	_Atomic bool done;
};

struct pr_store_build {
	struct pr_engine *engine;
	enum pr_window window;
	/* As of the start, on the server thread. */
	struct pr_periods periods;
	uint64_t epoch;
	uint32_t stores;
	unsigned owners;
	struct part *parts; /* owners */
	struct pr_store_rankings result;
	pthread_t thread;
	int rc;
	/* Stored with release by the build's thread after result and rc;
	 * loaded with acquire by the server. */
	_Atomic bool done;
};

/* On apply thread `owner`, at the start's place in its stream: lists the
 * pairs of its shards with revenue in the window. */
static void list_pairs(void *arg)
{
	struct part *p = arg;
	const struct pr_store_build *b = p->build;
	const struct pr_engine *e = b->engine;
	for (uint32_t shard = p->owner; shard < PR_SHARDS && p->rc == 0; shard += b->owners) {
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
	atomic_store_explicit(&p->done, true, memory_order_release);
}

/* The build's thread: waits for every list, then sorts them into rankings. */
static void *build_run(void *arg)
{
	struct pr_store_build *b = arg;
	pr_ranker_lower_priority();
	/* The lists come within the time the apply threads take for what was
	 * staged before the start: milliseconds. */
	const struct timespec nap = { 0, 100 * 1000 };
	const struct store_pair *lists[PR_SHARD_OWNERS_MAX];
	size_t counts[PR_SHARD_OWNERS_MAX];
	int rc = 0;
	for (unsigned k = 0; k < b->owners; k++) {
		struct part *p = &b->parts[k];
		while (!atomic_load_explicit(&p->done, memory_order_acquire))
			nanosleep(&nap, NULL);
		if (p->rc < 0)
			rc = p->rc;
		lists[k] = p->pairs;
		counts[k] = p->count;
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
	atomic_store_explicit(&b->done, true, memory_order_release);
	return NULL;
}

int pr_store_build_start(struct pr_engine *e, enum pr_window w, struct pr_store_build **out)
{
	if (!e->owners || engine_can_rank(e, w, true) < 0)
		return -ENOTSUP;
	struct pr_store_build *b = calloc(1, sizeof *b);
	unsigned owners = pr_shard_owners_count(e->owners);
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
	atomic_init(&b->done, false);
	for (unsigned k = 0; k < owners; k++) {
		b->parts[k].build = b;
		b->parts[k].owner = k;
		atomic_init(&b->parts[k].done, false);
	}
	int rc = pthread_create(&b->thread, NULL, build_run, b);
	if (rc != 0) {
		free(b->parts);
		free(b);
		return -rc;
	}
	pthread_setname_np(b->thread, "pareto-stores"); /* for top -H and /proc */
	e->ids_holds++; /* before any list, which is what the thread waits for */
	/* Shard k < owners is owner k's (shard_owners.h): one call each. */
	for (unsigned k = 0; k < owners; k++)
		pr_shard_owners_call(e->owners, k, list_pairs, &b->parts[k]);
	*out = b;
	return 0;
}

bool pr_store_build_done(const struct pr_store_build *b)
{
	return atomic_load_explicit(&b->done, memory_order_acquire);
}

int pr_store_build_finish(struct pr_store_build *b, struct pr_store_rankings *out)
{
	pthread_join(b->thread, NULL);
	b->engine->ids_holds--;
	int rc = b->rc;
	if (rc == 0)
		*out = b->result;
	free(b->parts);
	free(b);
	return rc;
}
