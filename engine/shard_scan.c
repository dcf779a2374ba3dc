/*
 * shard_scan.c - every shard read at one point of the record stream, the
 * work finished on a thread of its own (shard_scan.h).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "engine_internal.h"
#include "ranker.h"
#include "shard_owners.h"
#include "shard_scan.h"

/* One apply thread's call. */
struct part {
	struct pr_shard_scan *scan;
	unsigned owner;
	/* Stored with release by the apply thread after its scan; the
	 * scan's thread loads it with acquire before the finish. */
	_Atomic bool done;
};

struct pr_shard_scan {
	struct pr_engine *engine;
	pr_shard_scan_fn *fn;
	pr_shard_scan_finish_fn *finish;
	void *arg;
	unsigned owners;
	struct part *parts; /* owners */
	pthread_t thread;
	/* Stored with release by the scan's thread after the finish; loaded
	 * with acquire by the server. */
	_Atomic bool done;
};

static void scan_part(void *arg)
{
	struct part *p = arg;
	p->scan->fn(p->scan->arg, p->owner, p->scan->owners);
	atomic_store_explicit(&p->done, true, memory_order_release);
}

static void *scan_run(void *arg)
{
	struct pr_shard_scan *s = arg;
	pr_ranker_lower_priority(); /* background work, behind ingest and answers */
	/* The calls come once the apply threads have applied what was
	 * staged before the start: milliseconds. */
	const struct timespec nap = { 0, 100 * 1000 };
	for (unsigned k = 0; k < s->owners; k++)
		while (!atomic_load_explicit(&s->parts[k].done, memory_order_acquire))
			nanosleep(&nap, NULL);
	s->finish(s->arg);
	atomic_store_explicit(&s->done, true, memory_order_release);
	return NULL;
}

unsigned pr_shard_scan_owners(const struct pr_engine *e)
{
	return e->owners ? pr_shard_owners_count(e->owners) : 0;
}

int pr_shard_scan_start(struct pr_engine *e, pr_shard_scan_fn *fn, pr_shard_scan_finish_fn *finish,
			void *arg, struct pr_shard_scan **out)
{
	if (!e->owners)
		return -ENOTSUP;
	struct pr_shard_scan *s = calloc(1, sizeof *s);
	unsigned owners = pr_shard_owners_count(e->owners);
	if (!s || !(s->parts = calloc(owners, sizeof *s->parts))) {
		free(s);
		return -ENOMEM;
	}
	s->engine = e;
	s->fn = fn;
	s->finish = finish;
	s->arg = arg;
	s->owners = owners;
	atomic_init(&s->done, false);
	for (unsigned k = 0; k < owners; k++) {
		s->parts[k].scan = s;
		s->parts[k].owner = k;
		atomic_init(&s->parts[k].done, false);
	}
	int rc = pthread_create(&s->thread, NULL, scan_run, s);
	if (rc != 0) {
		free(s->parts);
		free(s);
		return -rc;
	}
	pthread_setname_np(s->thread, "pareto-scan"); /* for top -H and /proc */
	e->ids_holds++; /* before any call, which is what the thread waits for */
	/* Shard k < owners is owner k's (shard_owners.h): one call each. */
	for (unsigned k = 0; k < owners; k++)
		pr_shard_owners_call(e->owners, k, scan_part, &s->parts[k]);
	*out = s;
	return 0;
}

bool pr_shard_scan_done(const struct pr_shard_scan *s)
{
	return atomic_load_explicit(&s->done, memory_order_acquire);
}

void pr_shard_scan_end(struct pr_shard_scan *s)
{
	pthread_join(s->thread, NULL);
	s->engine->ids_holds--;
	free(s->parts);
	free(s);
}
