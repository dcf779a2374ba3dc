/* ranker.c - paretod's ranker and rebaser threads; see ranker.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ranker.h"
#include "ranking_internal.h"
#include "shard_owners.h"
#include "spsc_ring.h"
#include "test_hooks.h"

#define WINDOW_BIT(w) (1u << (w))
/* In the failed mask: the ranker lost track of the id chunks (out of
 * memory growing its directory); the writer sends them all again. */
#define FAILED_DIRECTORY (1u << 31)

/* A chunk of a shard's id entries, handed over once. */
struct chunk_grant {
	uint32_t shard;
	const struct pr_id_entry *chunk;
};

/* Changed customers and new id chunks of some shards: a batch's, or an
 * apply thread's share of one. */
struct part {
	uint64_t count;
	uint32_t *refs;             /* count */
	int64_t *revenue;           /* count x popcount(windows) */
	struct chunk_grant *grants; /* grant_count */
	uint32_t grant_count;
	bool failed;                /* out of memory, or changes the journal lost */
};

/*
 * What the writer hands over: written entirely before the push, read-only
 * for the ranker after its pop (the ring's release/acquire pair orders it),
 * freed by the ranker.
 *
 * Or, when the apply threads cut it (pr_shard_owners_cut), its header is
 * and the rest is theirs: owner k writes parts[k] and customers[s] of its
 * shards s, then counts `pending` down (release); the ranker reads them
 * only once it loads 0 (acquire: the count's release sequence carries
 * every owner's writes), and joins the parts into refs, revenue, grants.
 */
struct batch {
	struct pr_ranker *ranker;
	struct part *parts;         /* part_count, or NULL: cut by the writer */
	unsigned part_count;
	_Atomic unsigned pending;   /* parts not filled yet */
	uint64_t records;
	int64_t watermark_ms;
	bool has_watermark;
	struct pr_periods periods;
	uint64_t epoch;
	uint64_t seq;               /* 1, 2, ...: which batch */
	int64_t cut_ms;
	uint32_t windows;           /* the windows the revenues are for, ascending */
	bool whole;                 /* refs are every customer: build, not merge */
	bool chunks_reset;          /* the grants start again from each shard's first */
	uint64_t count;
	uint32_t *refs;             /* count */
	int64_t *revenue;           /* count x popcount(windows) */
	struct chunk_grant *grants; /* grant_count */
	uint32_t grant_count;
	uint32_t customers[PR_SHARDS];
	uint64_t customer_count;    /* their sum */
};

/*
 * A rebase: the layer of `layered` merged into `base`, a new flat ranking,
 * on the rebaser thread. Filled by the ranker, pushed through rebase_jobs;
 * `result` filled by the rebaser, pushed back through rebase_done.
 */
struct rebase_job {
	int window;
	uint64_t generation;          /* the ranker's generation[window] at the start */
	uint64_t seq;                 /* the last batch in the layer */
	struct pr_published *base;    /* references */
	struct pr_published *layered;
	struct pr_id_directory ids;   /* the ranker's, copied: it keeps growing */
	uint32_t customers[PR_SHARDS];
	struct pr_ranking *result;    /* flat, with places; NULL: out of memory */
};

struct pr_ranker {
	struct pr_engine *engine; /* the writer's; the ranker reads only its options */
	unsigned least_ms, most_ms; /* the writer's: the time between batches */
	pthread_t thread;
	bool started;
	int wake_fd;              /* eventfd: the writer's pushes and stop wake the ranker */
	struct pr_spsc_ring inbox; /* batches, writer -> ranker */
	/* The rebaser thread: merges a layer grown past 1/64 of the
	 * customers into a new flat base while the ranker goes on publishing
	 * layers on the old one, so that no publication waits for an O(N)
	 * merge. At most one job per window is out. */
	pthread_t rebaser;
	bool rebaser_started;
	int rebase_fd;             /* eventfd: jobs and stop wake the rebaser */
	struct pr_spsc_ring rebase_jobs, rebase_done;
	/*
	 * The newest snapshot per window not yet taken. The ranker swaps a new
	 * one in and the reader swaps NULL in, both with acq_rel exchanges: the
	 * snapshot's contents, written before, are visible to the taker, and
	 * each snapshot leaves the slot exactly once (taken or replaced).
	 */
	_Atomic(struct pr_published *) latest[PR_WINDOW_COUNT];
	_Atomic bool stop;
	/* Windows the ranker has no base for (set by the ranker, release; the
	 * writer exchanges it to 0, acquire, and sends them whole). */
	_Atomic uint32_t failed;
	/* Counters the ranker writes and the writer reads for INFO: relaxed,
	 * as they order nothing. On their own line, away from the writer's. */
	alignas(64) _Atomic uint64_t done; /* batches merged: compared by pr_ranker_feed */
	_Atomic uint64_t steps;
	_Atomic uint64_t failures, whole_steps, rebases;
	_Atomic int64_t last_step_us;

	/* The writer's side. */
	alignas(64) uint32_t wanted;   /* windows kept */
	uint32_t sent;                 /* windows sent whole since they were wanted */
	/* Id chunks of each shard handed over: written by whoever cuts that
	 * shard, the writer or (cut_part) its apply thread, which take turns
	 * as they do with the shard itself (shard_owners.h). */
	uint32_t sent_chunks[PR_SHARDS];
	struct pr_periods sent_periods;
	uint64_t sent_epoch;
	uint64_t cut_records;          /* the engine's records at the last cut */
	int64_t fed_us;                /* when the last batch was cut */
	uint64_t batches, staged_cuts;

	/* The ranker's side. */
	alignas(64) struct pr_id_directory ids;
	struct pr_published *current[PR_WINDOW_COUNT]; /* the newest: what the next batch goes on */
	struct pr_published *base[PR_WINDOW_COUNT];    /* the flat one current's layer sits on */
	uint64_t generation[PR_WINDOW_COUNT]; /* bumped when base[w] is replaced */
	bool rebasing[PR_WINDOW_COUNT];       /* a job for w is out */
	uint64_t last_seq;
	uint32_t last_customers[PR_SHARDS];   /* of the last batch */
};

/* After this long without a batch, a layered ranking is merged flat: a
 * flat one answers lookups with fewer searches. */
#define FLATTEN_IDLE_MS 100

/* A layer grown past customers / REBASE_DIVISOR goes to the rebaser: past
 * that its O(K) copies per batch cost more than an O(N) merge now and then
 * (measured: 30% of a core at 1/8 for 50K records/s over 1M customers).
 * With batches every millisecond or two (auto interval), 1/64 against
 * 1/32: paretod's CPU 2.6 against 3.0 s in 10 s, freshness p50 0.7
 * against 1.2 ms; under full load no difference (2 runs each). */
#define REBASE_DIVISOR 64

/* A batch that would grow the layer past customers / LAYER_DIVISOR is
 * merged into the base at once, on the ranker thread. Four times the
 * rebase threshold: room for changes to keep coming while the rebaser
 * works.
 * Measured with pareto-rankstep (693K customers, CPU of both threads per
 * step), against customers / 2 before: 30K-record batches 27-35 ms
 * against 37-49, 100K-record batches 31-35 against 84-98; freshness under
 * full ingest load p99 0.39-0.40 s against 0.99-1.09 s; the paced 50K
 * records/s case unchanged (the same 24 rebases). */
#define LAYER_DIVISOR 16

/* The time between two batches is GAP_PER_STEP times the ranker's last
 * step (within the interval's bounds): the ranker then works at most a
 * fraction 1 / GAP_PER_STEP of the time, publishing every millisecond when
 * few records arrive and less often as batches grow. */
#define GAP_PER_STEP 4

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
	return now_us() / 1000;
}

/*
 * The ranker's threads run at a lower priority than the rest (niceness +5;
 * Linux applies it per thread): on a busy machine, applying records and
 * answering queries come first and rankings are published less often,
 * rather than the other way round. Failing to lower it changes nothing
 * else.
 */
void pr_ranker_lower_priority(void)
{
	id_t self = (id_t)syscall(SYS_gettid);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, self);
	if (errno == 0)
		(void)setpriority(PRIO_PROCESS, self, nice + 5);
}

void pr_published_release(struct pr_published *p)
{
	/* acq_rel: the last holder must see every other holder's reads done
	 * before it frees. */
	if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
		pr_ranking_destroy(p->ranking); /* before the base it may sit on */
		pr_published_release(p->base);
		free(p);
	}
}

static void part_free(struct part *p)
{
	free(p->refs);
	free(p->revenue);
	free(p->grants);
}

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	for (unsigned k = 0; k < b->part_count; k++)
		part_free(&b->parts[k]);
	free(b->parts);
	free(b->refs);
	free(b->revenue);
	free(b->grants);
	free(b);
}

/* ---- the ranker thread ---------------------------------------------------- */

static void fail(struct pr_ranker *r, uint32_t bits)
{
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		if (bits & WINDOW_BIT(w)) {
			pr_published_release(r->current[w]);
			pr_published_release(r->base[w]);
			r->current[w] = r->base[w] = NULL;
			r->generation[w]++;
		}
	atomic_fetch_add_explicit(&r->failures, 1, memory_order_relaxed);
	atomic_fetch_or_explicit(&r->failed, bits, memory_order_release);
}

/*
 * The ranking of window w after batch b: a layer on the flat base with
 * every change since it, or a new flat one when the batch is whole, or
 * when the layer would pass half the customers (a large batch, or a
 * rebaser, below, that has not kept up): layering would then cost more
 * than one merge.
 */
static int next_ranking(struct pr_ranker *r, int w, const struct batch *b,
			const struct pr_ranking_changes *ch, struct pr_ranking **out, bool *flat)
{
	struct pr_ranking *next = NULL;
	*flat = true;
	if (b->whole) {
		pr_test_hook_pause("PARETO_BUILD_DELAY_MS"); /* a slow build, for a test */
		if (pr_ranking_from_changes(r->engine, &r->ids, NULL, ch, &next) < 0)
			return -ENOMEM;
	} else {
		const struct pr_published *base = r->base[w], *old = r->current[w];
		const struct pr_ranking *prev = old == base ? NULL : old->ranking;
		if ((prev ? pr_ranking_layer_size(prev) : 0) + ch->count <=
		    b->customer_count / LAYER_DIVISOR) {
			*flat = false;
			return pr_ranking_layer(r->engine, &r->ids, base->ranking, prev, ch, out);
		}
		/* Too many changes to layer (a backfill, a rebaser behind): one
		 * merge of all of them into the base. */
		struct pr_ranking_changes all = *ch;
		if (prev && pr_ranking_layer_union(prev, ch, &all) < 0)
			return -ENOMEM;
		int rc = pr_ranking_from_changes(r->engine, &r->ids, base->ranking, &all, &next);
		if (prev) {
			free((void *)all.refs);
			free((void *)all.revenue);
		}
		if (rc < 0)
			return -ENOMEM;
		atomic_fetch_add_explicit(&r->rebases, 1, memory_order_relaxed);
	}
	if (pr_ranking_place(next) < 0) {
		pr_ranking_destroy(next);
		return -ENOMEM;
	}
	r->generation[w]++; /* a rebase still out is for the old base */
	*out = next;
	return 0;
}

/*
 * The next item of a thread's inbox, blocking on its eventfd while there is
 * none; NULL once the ranker stops. The eventfd keeps a count, so a push
 * between the pop and the read is not lost.
 */
static void *next_item(struct pr_ranker *r, struct pr_spsc_ring *inbox, int fd)
{
	for (;;) {
		void *item = pr_spsc_ring_pop(inbox);
		if (item)
			return item;
		if (atomic_load_explicit(&r->stop, memory_order_acquire))
			return NULL;
		uint64_t wakes;
		if (read(fd, &wakes, sizeof wakes) < 0 && errno != EINTR)
			return NULL;
	}
}

/* ---- rebases -------------------------------------------------------------- */

/* Copies what a snapshot reflects (not its ranking, base or references:
 * another thread may be changing the references). */
static void describe_like(struct pr_published *dst, const struct pr_published *src)
{
	dst->summary = src->summary;
	dst->records = src->records;
	dst->watermark_ms = src->watermark_ms;
	dst->has_watermark = src->has_watermark;
	dst->cut_ms = src->cut_ms;
	dst->built_ms = src->built_ms;
	dst->build_ms = src->build_ms;
}

static void job_free(struct rebase_job *j)
{
	pr_published_release(j->base);
	pr_published_release(j->layered);
	pr_id_directory_destroy(&j->ids);
	pr_ranking_destroy(j->result);
	free(j);
}

/* On the rebaser thread. */
static void rebase(const struct pr_ranker *r, struct rebase_job *j)
{
	const struct pr_ranking *layered = j->layered->ranking;
	struct pr_ranking_changes ch = { .window = (enum pr_window)j->window,
					 .periods = layered->periods, .epoch = layered->epoch,
					 .index = true, .customers = j->customers };
	pr_ranking_layer_changes(layered, &ch);
	if (pr_ranking_from_changes(r->engine, &j->ids, j->base->ranking, &ch, &j->result) < 0)
		j->result = NULL;
	else if (pr_ranking_place(j->result) < 0) {
		pr_ranking_destroy(j->result);
		j->result = NULL;
	}
}

static void *rebaser_run(void *arg)
{
	struct pr_ranker *r = arg;
	pr_ranker_lower_priority();
	struct rebase_job *j;
	while ((j = next_item(r, &r->rebase_jobs, r->rebase_fd))) {
		rebase(r, j);
		/* Cannot fail: one job per window is ever out. */
		pr_spsc_ring_push(&r->rebase_done, j);
		uint64_t one = 1;
		(void)!write(r->wake_fd, &one, sizeof one); /* an idle ranker adopts it */
	}
	return NULL;
}

/* Hands the layer of p (the newest of window w, after batch seq with
 * the customers per shard then) to the rebaser; nothing happens if memory
 * is short (the layer just grows). */
static void rebase_start(struct pr_ranker *r, int w, struct pr_published *p, uint64_t seq,
			 const uint32_t *customers)
{
	struct rebase_job *j = calloc(1, sizeof *j);
	if (!j || pr_id_directory_copy(&j->ids, &r->ids) < 0) {
		free(j);
		return;
	}
	j->window = w;
	j->generation = r->generation[w];
	j->seq = seq;
	j->base = r->base[w];
	j->layered = p;
	atomic_fetch_add_explicit(&j->base->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	memcpy(j->customers, customers, sizeof j->customers);
	pr_spsc_ring_push(&r->rebase_jobs, j);
	r->rebasing[w] = true;
	uint64_t one = 1;
	(void)!write(r->rebase_fd, &one, sizeof one);
}

/*
 * Takes a finished rebase: its result becomes window w's base, and the
 * changes since the batch it went up to become a layer on it (usually a
 * few batches' worth). A result for a base replaced meanwhile is dropped.
 */
static void rebase_adopt(struct pr_ranker *r, struct rebase_job *j)
{
	int w = j->window;
	r->rebasing[w] = false;
	struct pr_published *old = r->current[w];
	if (!j->result || j->generation != r->generation[w] || !old || !old->base)
		return;
	struct pr_published *base = calloc(1, sizeof *base);
	struct pr_published *next = calloc(1, sizeof *next);
	struct pr_ranking_changes ch = { .window = (enum pr_window)w,
					 .periods = old->ranking->periods,
					 .epoch = old->ranking->epoch, .seq = r->last_seq };
	if (!base || !next || pr_ranking_layer_since(old->ranking, j->seq, &ch) < 0) {
		free(base);
		free(next);
		return;
	}
	if (ch.count == 0) {
		/* Nothing changed since: the flat ranking is the newest, and is
		 * published in place of the layered one. */
		free((void *)ch.refs);
		free((void *)ch.revenue);
		free(next);
		describe_like(base, old);
		base->ranking = j->result;
		j->result = NULL;
		atomic_init(&base->refs, 3); /* base[w], current[w] and the slot */
		pr_published_release(r->base[w]);
		pr_published_release(old);
		r->base[w] = r->current[w] = base;
		r->generation[w]++;
		pr_published_release(
			atomic_exchange_explicit(&r->latest[w], base, memory_order_acq_rel));
		atomic_fetch_add_explicit(&r->rebases, 1, memory_order_relaxed);
		return;
	}
	struct pr_ranking *layer;
	int rc = pr_ranking_layer(r->engine, &r->ids, j->result, NULL, &ch, &layer);
	free((void *)ch.refs);
	free((void *)ch.revenue);
	if (rc < 0) {
		free(base);
		free(next);
		return;
	}
	/* The base is not published itself: it stands for the records of the
	 * rebased layer; the new layer for those of the newest. */
	describe_like(base, j->layered);
	base->ranking = j->result;
	j->result = NULL;
	atomic_init(&base->refs, 2); /* base[w] and next's */
	describe_like(next, old);
	next->ranking = layer;
	next->base = base;
	atomic_init(&next->refs, 1); /* current[w] */
	pr_published_release(r->base[w]);
	pr_published_release(old);
	r->base[w] = base;
	r->current[w] = next;
	r->generation[w]++;
	atomic_fetch_add_explicit(&r->rebases, 1, memory_order_relaxed);
}

static void adopt_finished(struct pr_ranker *r)
{
	struct rebase_job *done;
	while ((done = pr_spsc_ring_pop(&r->rebase_done))) {
		rebase_adopt(r, done);
		job_free(done);
	}
}

/*
 * The ranker's side of a batch the apply threads cut: waits until every
 * part is in, then joins them. 0; 1 if a part failed (the batch then only
 * brings the other parts' id chunks); -1 if memory is short (and it brings
 * nothing).
 */
static int batch_join(struct pr_ranker *r, struct batch *b)
{
	if (!b->parts)
		return 0;
	while (atomic_load_explicit(&b->pending, memory_order_acquire)) {
		uint64_t wakes; /* (another's wake, if it takes one: the loop looks again) */
		if (read(r->wake_fd, &wakes, sizeof wakes) < 0 && errno != EINTR)
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
	}
	size_t stride = (size_t)__builtin_popcount(b->windows);
	bool failed = false;
	uint64_t count = 0, grants = 0;
	for (unsigned k = 0; k < b->part_count; k++) {
		failed |= b->parts[k].failed;
		count += b->parts[k].count;
		grants += b->parts[k].grant_count;
	}
	b->refs = malloc((count ? count : 1) * sizeof *b->refs);
	b->revenue = malloc((count ? count : 1) * stride * sizeof *b->revenue);
	b->grants = malloc((grants ? grants : 1) * sizeof *b->grants);
	if (!b->refs || !b->revenue || !b->grants)
		return -1;
	for (unsigned k = 0; k < b->part_count; k++) {
		const struct part *p = &b->parts[k];
		memcpy(b->refs + b->count, p->refs, p->count * sizeof *p->refs);
		memcpy(b->revenue + b->count * stride, p->revenue,
		       p->count * stride * sizeof *p->revenue);
		memcpy(b->grants + b->grant_count, p->grants, p->grant_count * sizeof *p->grants);
		b->count += p->count;
		b->grant_count += p->grant_count;
	}
	return failed;
}

static void step(struct pr_ranker *r, struct batch *b)
{
	int64_t began_us = now_us(), began = began_us / 1000;
	adopt_finished(r);
	int joined = batch_join(r, b);
	if (joined < 0) {
		fail(r, b->windows | FAILED_DIRECTORY);
		return;
	}
	if (b->chunks_reset)
		for (uint32_t s = 0; s < PR_SHARDS; s++)
			r->ids.count[s] = 0;
	for (uint32_t i = 0; i < b->grant_count; i++)
		if (pr_id_directory_add(&r->ids, b->grants[i].shard, b->grants[i].chunk) < 0) {
			fail(r, b->windows | FAILED_DIRECTORY);
			return;
		}
	if (joined > 0) {
		fail(r, b->windows);
		return;
	}
	r->last_seq = b->seq;
	memcpy(r->last_customers, b->customers, sizeof r->last_customers);
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		b->customer_count += b->customers[s];
	pr_id_directory_key(&r->ids, b->customers); /* ties compare keys first */
	size_t stride = (size_t)__builtin_popcount(b->windows);
	size_t column = 0;
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		if (!(b->windows & WINDOW_BIT(w)))
			continue;
		struct pr_published *old = r->current[w];
		struct pr_ranking_changes ch = {
			.window = (enum pr_window)w, .periods = b->periods, .epoch = b->epoch,
			.whole = b->whole, .index = true, .count = b->count, .refs = b->refs,
			.revenue = b->revenue + column++, .stride = stride, .customers = b->customers,
			.seq = b->seq,
		};
		if (!b->whole && !old)
			continue; /* failed before: waits for a whole batch */
		struct pr_published *p = calloc(1, sizeof *p);
		bool flat;
		if (!p || next_ranking(r, w, b, &ch, &p->ranking, &flat) < 0) {
			free(p);
			fail(r, WINDOW_BIT(w));
			continue;
		}
		pr_ranking_summarize(p->ranking, &p->summary);
		p->records = b->records;
		p->watermark_ms = b->watermark_ms;
		p->has_watermark = b->has_watermark;
		p->cut_ms = b->cut_ms;
		p->built_ms = now_ms();
		p->build_ms = p->built_ms - began;
		/* Held by current[w] and the slot, and by base[w] if flat. */
		atomic_init(&p->refs, flat ? 3 : 2);
		if (flat) {
			pr_published_release(r->base[w]);
			r->base[w] = p;
		} else {
			p->base = r->base[w];
			atomic_fetch_add_explicit(&p->base->refs, 1, memory_order_relaxed);
		}
		pr_published_release(old);
		r->current[w] = p;
		if (!flat && !r->rebasing[w] &&
		    pr_ranking_layer_size(p->ranking) > b->customer_count / REBASE_DIVISOR)
			rebase_start(r, w, p, b->seq, b->customers);
		pr_published_release(atomic_exchange_explicit(&r->latest[w], p, memory_order_acq_rel));
		atomic_fetch_add_explicit(&r->steps, 1, memory_order_relaxed);
		if (b->whole)
			atomic_fetch_add_explicit(&r->whole_steps, 1, memory_order_relaxed);
	}
	atomic_store_explicit(&r->last_step_us, now_us() - began_us, memory_order_relaxed);
}

static void *ranker_run(void *arg)
{
	struct pr_ranker *r = arg;
	pr_ranker_lower_priority();
	for (;;) {
		adopt_finished(r);
		struct batch *b = pr_spsc_ring_pop(&r->inbox);
		if (b) {
			step(r, b);
			batch_free(b);
			atomic_fetch_add_explicit(&r->done, 1, memory_order_relaxed);
			continue;
		}
		if (atomic_load_explicit(&r->stop, memory_order_acquire))
			break;
		/* Idle: wait for a batch or a finished rebase, and after a
		 * quiet spell merge what is still layered. */
		bool layered = false;
		for (int w = 0; w < PR_WINDOW_COUNT; w++)
			layered |= r->current[w] && r->current[w]->base && !r->rebasing[w];
		struct pollfd pfd = { .fd = r->wake_fd, .events = POLLIN };
		int n = poll(&pfd, 1, layered ? FLATTEN_IDLE_MS : -1);
		if (n == 0) {
			for (int w = 0; w < PR_WINDOW_COUNT; w++)
				if (r->current[w] && r->current[w]->base && !r->rebasing[w])
					rebase_start(r, w, r->current[w], r->last_seq,
						     r->last_customers);
			continue;
		}
		uint64_t wakes;
		if ((n < 0 && errno != EINTR) ||
		    (n > 0 && read(r->wake_fd, &wakes, sizeof wakes) < 0 && errno != EINTR))
			break;
	}
	return NULL;
}

/* ---- the writer's side ---------------------------------------------------- */

int pr_ranker_create(struct pr_ranker **out, struct pr_engine *e, unsigned least_ms,
		     unsigned most_ms, struct pr_error *err)
{
	if (!e->opt.keep_changes)
		return pr_error_set(err, -EINVAL, "the ranker needs an engine that keeps changes");
	struct pr_ranker *r = calloc(1, sizeof *r);
	if (!r)
		return pr_error_set(err, -ENOMEM, "out of memory starting the ranker");
	r->engine = e;
	pr_ranker_set_interval(r, least_ms, most_ms);
	r->wake_fd = eventfd(0, EFD_CLOEXEC);
	r->rebase_fd = eventfd(0, EFD_CLOEXEC);
	pr_id_directory_init(&r->ids);
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		atomic_init(&r->latest[w], NULL);
	atomic_init(&r->stop, false);
	atomic_init(&r->failed, 0);
	/* One batch at a time is ever in flight (pr_ranker_feed waits for the
	 * ranker to be idle); more would only hold changes the journal
	 * coalesces better. */
	if (r->wake_fd < 0 || r->rebase_fd < 0) {
		int rc = -errno;
		pr_ranker_destroy(r);
		return pr_error_set(err, rc, "starting the ranker: %s", strerror(-rc));
	}
	if (pr_spsc_ring_init(&r->inbox, 2) < 0 ||
	    pr_spsc_ring_init(&r->rebase_jobs, PR_WINDOW_COUNT) < 0 ||
	    pr_spsc_ring_init(&r->rebase_done, PR_WINDOW_COUNT) < 0) {
		pr_ranker_destroy(r);
		return pr_error_set(err, -ENOMEM, "out of memory starting the ranker");
	}
	int rc = pthread_create(&r->thread, NULL, ranker_run, r);
	if (rc == 0) {
		r->started = true;
		pthread_setname_np(r->thread, "pareto-ranker"); /* for top -H and /proc */
		rc = pthread_create(&r->rebaser, NULL, rebaser_run, r);
		r->rebaser_started = rc == 0;
		if (rc == 0)
			pthread_setname_np(r->rebaser, "pareto-rebase");
	}
	if (rc != 0) {
		pr_ranker_destroy(r);
		return pr_error_set(err, -rc, "starting the ranker threads: %s", strerror(rc));
	}
	*out = r;
	return 0;
}

static void wake(struct pr_ranker *r)
{
	uint64_t one = 1;
	/* Fails only if the count would overflow: it is awake then. */
	(void)!write(r->wake_fd, &one, sizeof one);
}

void pr_ranker_destroy(struct pr_ranker *r)
{
	if (!r)
		return;
	/* Every cut the apply threads were given is made (they write into
	 * its batch and wake the ranker through wake_fd). */
	if (r->engine->owners)
		pr_engine_drain(r->engine);
	atomic_store_explicit(&r->stop, true, memory_order_release);
	if (r->started) {
		wake(r);
		pthread_join(r->thread, NULL);
	}
	if (r->rebaser_started) {
		uint64_t one = 1;
		(void)!write(r->rebase_fd, &one, sizeof one);
		pthread_join(r->rebaser, NULL);
	}
	if (r->inbox.slots) {
		struct batch *b;
		while ((b = pr_spsc_ring_pop(&r->inbox)))
			batch_free(b);
		pr_spsc_ring_destroy(&r->inbox);
	}
	for (struct pr_spsc_ring *ring = &r->rebase_jobs; ring;
	     ring = ring == &r->rebase_jobs ? &r->rebase_done : NULL) {
		if (!ring->slots)
			continue;
		struct rebase_job *j;
		while ((j = pr_spsc_ring_pop(ring)))
			job_free(j);
		pr_spsc_ring_destroy(ring);
	}
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		pr_published_release(r->current[w]);
		pr_published_release(r->base[w]);
		pr_published_release(atomic_load_explicit(&r->latest[w], memory_order_acquire));
	}
	pr_id_directory_destroy(&r->ids);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	if (r->rebase_fd >= 0)
		close(r->rebase_fd);
	free(r);
}

void pr_ranker_set_interval(struct pr_ranker *r, unsigned least_ms, unsigned most_ms)
{
	r->least_ms = least_ms < most_ms ? least_ms : most_ms;
	r->most_ms = most_ms;
}

void pr_ranker_want(struct pr_ranker *r, enum pr_window w)
{
	r->wanted |= WINDOW_BIT(w);
}

/* How far ahead batch_cut fetches the aggregate of a changed customer. */
#define CUT_AHEAD 8

/* Copies a customer's revenue in every window of the batch to out, as of
 * its watermark: not the engine's, which the writer moves on meanwhile when
 * an apply thread cuts. */
static void revenues(const struct batch *b, const struct customer_aggregate *c, int64_t *out)
{
	for (int w = 0; w < PR_WINDOW_COUNT; w++)
		if (b->windows & WINDOW_BIT(w))
			*out++ = customer_revenue_in(c, (enum pr_window)w, &b->periods);
}

/*
 * Fills p with the changes (or, whole, every customer) and the new id
 * chunks of shards first, first + step, ...: on the thread that writes
 * them, with every record before the cut applied. Sets their customer
 * counts in b and, unless p failed, what was sent of their chunks.
 */
static void part_fill(struct pr_ranker *r, struct batch *b, struct part *p, uint32_t first,
		      uint32_t step)
{
	const struct pr_engine *e = r->engine;
	size_t stride = (size_t)__builtin_popcount(b->windows);
	uint64_t items = 0;
	uint32_t grants = 0;
	for (uint32_t s = first; s < PR_SHARDS; s += step) {
		const struct shard *sh = &e->shards[s];
		items += b->whole ? sh->customers.count : sh->changed_count;
		grants += sh->customers.chunk_count - (b->chunks_reset ? 0 : r->sent_chunks[s]);
		p->failed |= !b->whole && sh->changes_lost;
	}
	p->refs = malloc((items ? items : 1) * sizeof *p->refs);
	p->revenue = malloc((items ? items : 1) * stride * sizeof *p->revenue);
	p->grants = malloc((grants ? grants : 1) * sizeof *p->grants);
	if (!p->refs || !p->revenue || !p->grants)
		p->failed = true;
	if (p->failed)
		return;
	for (uint32_t s = first; s < PR_SHARDS; s += step) {
		const struct shard *sh = &e->shards[s];
		const struct pr_id_table *t = &sh->customers;
		b->customers[s] = t->count;
		for (uint32_t c = b->chunks_reset ? 0 : r->sent_chunks[s]; c < t->chunk_count; c++)
			p->grants[p->grant_count++] = (struct chunk_grant){ s, t->chunks->chunk[c].entries };
		r->sent_chunks[s] = t->chunk_count;
		uint32_t n = b->whole ? t->count : sh->changed_count;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t local = b->whole ? i : sh->changed[i];
			/* The journal is in change order, the aggregates all over:
			 * fetch ahead so that their misses overlap. */
			if (!b->whole && i + CUT_AHEAD < n)
				__builtin_prefetch(pr_id_table_value(t, sh->changed[i + CUT_AHEAD]));
			p->refs[p->count] = customer_ref(s, local);
			revenues(b, pr_id_table_value(t, local), p->revenue + p->count * stride);
			p->count++;
		}
	}
}

/* A batch as of the engine's last record (its header), or NULL. */
static struct batch *batch_new(struct pr_ranker *r, bool whole, bool chunks_reset)
{
	const struct pr_engine *e = r->engine;
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	*b = (struct batch){ .ranker = r, .records = e->records, .watermark_ms = e->watermark_ms,
			     .has_watermark = e->has_watermark, .periods = e->watermark_periods,
			     .epoch = e->changes_epoch, .seq = r->batches + 1, .cut_ms = now_ms(),
			     .windows = r->wanted, .whole = whole, .chunks_reset = chunks_reset };
	atomic_init(&b->pending, 0);
	return b;
}

/* The batch of what changed (or, whole, of every customer), cut on the
 * writer's thread with every record applied; or NULL. */
static struct batch *batch_cut(struct pr_ranker *r, bool whole, bool chunks_reset)
{
	struct batch *b = batch_new(r, whole, chunks_reset);
	if (!b)
		return NULL;
	struct part p = { 0 };
	part_fill(r, b, &p, 0, 1);
	if (p.failed) { /* out of memory: lost changes make the batch whole */
		part_free(&p);
		batch_free(b);
		return NULL;
	}
	b->refs = p.refs;
	b->revenue = p.revenue;
	b->grants = p.grants;
	b->count = p.count;
	b->grant_count = p.grant_count;
	return b;
}

/* On apply thread `owner`'s thread, at its cut (shard_owners.h): its part
 * of batch arg, its shards' journals emptied. */
static void cut_part(void *arg, unsigned owner, unsigned owners, bool dropped)
{
	struct batch *b = arg;
	struct pr_ranker *r = b->ranker;
	struct part *p = &b->parts[owner];
	/* A record it could not apply is counted in b->records: the batch
	 * cannot be exact, and fails (the next one is whole). */
	p->failed = dropped;
	part_fill(r, b, p, owner, owners);
	for (uint32_t s = owner; s < PR_SHARDS; s += owners)
		engine_shard_changes_reset(&r->engine->shards[s]);
	/* r outlives every cut: pr_ranker_destroy drains first. */
	int fd = r->wake_fd;
	atomic_fetch_sub_explicit(&b->pending, 1, memory_order_release);
	uint64_t one = 1;
	(void)!write(fd, &one, sizeof one);
}

/* The batch the apply threads cut where the records staged so far end,
 * handed to them (not waiting for it), or NULL. */
static struct batch *batch_mark(struct pr_ranker *r, bool chunks_reset)
{
	struct pr_engine *e = r->engine;
	unsigned owners = pr_shard_owners_count(e->owners);
	struct batch *b = batch_new(r, false, chunks_reset);
	if (!b || !(b->parts = calloc(owners, sizeof *b->parts))) {
		free(b);
		return NULL;
	}
	b->part_count = owners;
	atomic_init(&b->pending, owners);
	pr_shard_owners_cut(e->owners, cut_part, b);
	return b;
}

/* The least time from one batch to the next, in us. (The step time is
 * relaxed: it is only a measure.) */
static int64_t gap_us(const struct pr_ranker *r)
{
	int64_t least = (int64_t)r->least_ms * 1000, most = (int64_t)r->most_ms * 1000;
	int64_t gap = GAP_PER_STEP * atomic_load_explicit(&r->last_step_us, memory_order_relaxed);
	return gap < least ? least : gap > most ? most : gap;
}

/* When the interval allows the next batch: -1 nothing is wanted, 0 now,
 * else in ms (rounded up). */
static int interval_wait(const struct pr_ranker *r, bool now)
{
	if (!r->wanted)
		return -1;
	int64_t left = gap_us(r) - (now_us() - r->fed_us);
	return !now && left > 0 ? (int)((left + 999) / 1000) : 0;
}

/* Cut only when the ranker is idle: a batch cut while it merges would
 * wait, and miss the records that arrive meanwhile; the changes keep
 * coalescing in the journal. (Relaxed: the count is only compared; the
 * ring orders the batch itself.) */
static bool busy(const struct pr_ranker *r)
{
	return atomic_load_explicit(&r->done, memory_order_relaxed) != r->batches;
}

int pr_ranker_due(const struct pr_ranker *r)
{
	int wait = interval_wait(r, false);
	return wait ? wait : busy(r);
}

/* Whether the next batch must be whole (every customer): a window not sent
 * yet (or failed since: `failed`), a journal reset by someone else, or
 * other periods for the calendar windows (every customer's sums there
 * move at once). Reads nothing of the shards. */
static bool whole_due(const struct pr_ranker *r, uint32_t failed)
{
	const struct pr_engine *e = r->engine;
	return (r->wanted & ~(r->sent & ~failed)) || e->changes_epoch != r->sent_epoch ||
	       ((r->wanted & ~WINDOW_BIT(PR_WINDOW_ALL)) &&
		memcmp(&r->sent_periods, &e->watermark_periods, sizeof r->sent_periods) != 0);
}

bool pr_ranker_cuts_staged(const struct pr_ranker *r)
{
	return r->engine->owners &&
	       !whole_due(r, atomic_load_explicit(&r->failed, memory_order_acquire));
}

/* No batch this time: the failed windows taken for it wait for the next
 * (relaxed: the ranker only ever adds bits). Returns rc. */
static int give_back(struct pr_ranker *r, uint32_t failed, int rc)
{
	atomic_fetch_or_explicit(&r->failed, failed, memory_order_relaxed);
	return rc;
}

int pr_ranker_feed(struct pr_ranker *r, bool now)
{
	struct pr_engine *e = r->engine;
	int wait = interval_wait(r, now);
	if (wait)
		return wait;
	/* Records still with the apply threads: they cut the batch (below). */
	bool applied = engine_applied(e);
	assert(applied || e->owners);
	uint32_t failed = atomic_exchange_explicit(&r->failed, 0, memory_order_acquire);
	bool chunks_reset = failed & FAILED_DIRECTORY;
	bool whole = whole_due(r, failed), changed = false;
	if (applied) {
		for (uint32_t s = 0; s < PR_SHARDS; s++) {
			changed |= e->shards[s].changed_count > 0;
			whole |= e->shards[s].changes_lost; /* a change not noted */
		}
	} else {
		/* Every record counted reaches its shard's journal (or fails
		 * the batch, cut_part). */
		changed = e->records != r->cut_records;
	}
	if (!whole && !changed && !chunks_reset)
		return give_back(r, failed, -1);
	if (busy(r))
		return give_back(r, failed, 1);
	if (whole && !applied) /* a whole batch reads every shard: after a drain */
		return give_back(r, failed, 0);
	struct batch *b = applied ? batch_cut(r, whole, chunks_reset) : batch_mark(r, chunks_reset);
	if (!b) /* out of memory: the journal keeps the changes */
		return give_back(r, failed, 1);
	if (applied) {
		engine_changes_reset(e);
	} else {
		e->changes_epoch++; /* the journals: each apply thread at its cut */
		r->staged_cuts++;
	}
	r->sent_epoch = e->changes_epoch;
	r->sent_periods = e->watermark_periods;
	r->sent = r->wanted;
	r->cut_records = e->records;
	r->fed_us = now_us();
	r->batches++;
	/* Cannot fail: the ranker took every batch before, and only this
	 * thread pushes. */
	pr_spsc_ring_push(&r->inbox, b);
	wake(r);
	return -1;
}

struct pr_published *pr_ranker_take(struct pr_ranker *r, enum pr_window w)
{
	return atomic_exchange_explicit(&r->latest[w], NULL, memory_order_acq_rel);
}

struct pr_published *pr_ranker_wait(struct pr_ranker *r, enum pr_window w)
{
	pr_ranker_want(r, w);
	uint64_t target = r->engine->records;
	uint64_t failures = atomic_load_explicit(&r->failures, memory_order_relaxed);
	for (;;) {
		pr_ranker_feed(r, true);
		struct pr_published *p = pr_ranker_take(r, w);
		if (p && p->records >= target)
			return p;
		pr_published_release(p); /* older: a newer one is on its way */
		if (atomic_load_explicit(&r->failures, memory_order_relaxed) != failures)
			return NULL;
		nanosleep(&(struct timespec){ 0, 20000 }, NULL);
	}
}

void pr_ranker_stats(const struct pr_ranker *r, struct pr_ranker_stats *out)
{
	out->batches = r->batches;
	out->staged_cuts = r->staged_cuts;
	out->steps = atomic_load_explicit(&r->steps, memory_order_relaxed);
	out->failures = atomic_load_explicit(&r->failures, memory_order_relaxed);
	out->whole = atomic_load_explicit(&r->whole_steps, memory_order_relaxed);
	out->rebases = atomic_load_explicit(&r->rebases, memory_order_relaxed);
	out->last_step_us = atomic_load_explicit(&r->last_step_us, memory_order_relaxed);
	out->gap_us = gap_us(r);
}
