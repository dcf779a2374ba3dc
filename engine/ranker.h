/*
 * ranker.h - paretod's ranker: a thread beside ingest that keeps the
 * company rankings up to date and publishes them for queries.
 *
 * Data flow. The engine's writer (paretod's server thread) notes which
 * customers changed (the engine's change journal). pr_ranker_feed, on the
 * writer's thread, cuts the journal into a batch: the record count and
 * watermark it reflects, every changed customer with his revenue in each
 * window the ranker keeps, the chunks of new customer ids. The batch goes
 * to the ranker thread through a single-producer single-consumer ring.
 * With apply threads (shard_owners.h) the writer only writes the batch's
 * header: each apply thread cuts its shards' journals into its part once
 * it has applied every record before the cut (pr_shard_owners_cut), and
 * the ranker joins the parts; the writer goes on decoding meanwhile. The
 * ranker puts it on top of its rankings and publishes each as an immutable
 * snapshot: a layer of every change since a flat base (O(K + k log N) for
 * k changes and K since the base; ranking_layer.c). A layer grown past
 * 1/64 of the customers goes to a second thread, the rebaser, which merges
 * it into a new flat base (O(N); pr_ranking_from_changes) while the ranker
 * keeps publishing layers on the old one; the ranker then moves the
 * changes made meanwhile onto the new base.
 * The reader takes the newest with pr_ranker_take. So a published ranking
 * is always exactly the engine's state after some record, the one it cites,
 * and no answer mixes two rankings.
 *
 * Backpressure without loss or unbounded buffering: the writer hands over
 * a batch only when the ranker has finished the previous one; until then
 * the changes coalesce in the journal (a bit and an entry per customer, at
 * most one per customer), so a ranker that falls behind publishes less
 * often and never slows ingest or holds more than one batch.
 *
 * Threads and ownership:
 *   writer's side (pr_ranker_want, pr_ranker_feed, pr_ranker_wait): the
 *     engine, the journal, what was sent; one thread, the engine's writer,
 *     but for a shard's journal and chunks sent while its apply thread
 *     holds it (that thread's cut).
 *   ranker thread: its current rankings, its id directory (id_directory.h);
 *     reads nothing of the engine but its options (written before the
 *     thread starts, never after).
 *   reader (pr_ranker_take, pr_published_release): any one thread at a
 *     time; in paretod the writer's thread.
 * A snapshot is shared by reference count: the ranker holds its latest as
 * the base of the next merge, the reader holds what it answers from, and
 * whichever lets go last frees it.
 */
#ifndef PARETO_RANKER_H
#define PARETO_RANKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pareto/engine.h"
#include "pareto/error.h"
#include "pareto/ranking.h"

/* A published company ranking and what it reflects. Immutable once
 * published, but for refs. */
struct pr_published {
	struct pr_ranking *ranking;  /* owned; indexed (pr_ranking_index) */
	struct pr_published *base;   /* a reference: the flat ranking a layered
				      * one sits on (NULL if flat) */
	struct pr_summary summary;
	uint64_t records;            /* engine records it reflects */
	int64_t watermark_ms;
	bool has_watermark;
	int64_t cut_ms;              /* monotonic: when the writer cut its batch */
	int64_t built_ms;            /* monotonic: when it was published */
	int64_t build_ms;            /* how long the ranker took for it */
	_Atomic uint32_t refs;       /* holders; the last to release frees it */
};

/* Drops one reference (NULL is ignored). */
void pr_published_release(struct pr_published *p);

struct pr_ranker;

/*
 * Starts the ranker thread for engine e (whose change journal it then
 * consumes: nothing else may reset it). least_ms, most_ms: the bounds of
 * the least time between two batches while changes keep coming, which is
 * a few times the ranker's last step: batches follow each other closely
 * while they are cheap and come less often (fewer, larger merges) as they
 * grow. Equal bounds: a fixed interval. 0 or a negative code with *err
 * saying why.
 */
int pr_ranker_create(struct pr_ranker **out, struct pr_engine *e, unsigned least_ms,
		     unsigned most_ms, struct pr_error *err);
/* Stops and joins the thread, releases its snapshots. Writer's thread
 * (it drains the engine: the apply threads finish any cut they hold). */
void pr_ranker_destroy(struct pr_ranker *r);

/* Lowers the calling thread's priority as the ranker lowers its own
 * (niceness +5): for other threads that work in the background, like the
 * ranker, behind ingest and answers. */
void pr_ranker_lower_priority(void);

/* Writer: the bounds of the time between two batches from now on. */
void pr_ranker_set_interval(struct pr_ranker *r, unsigned least_ms, unsigned most_ms);

/* Writer: keep the ranking of window w from the next batch on. */
void pr_ranker_want(struct pr_ranker *r, enum pr_window w);

/*
 * Writer: whether pr_ranker_feed would hand over a batch: 0 if it would
 * look at the changes now (the ranker has taken the last batch and
 * the interval has passed since), else the milliseconds after which to
 * ask again, or -1 if no window is wanted. Reads nothing of the engine, so
 * apply threads need no drain for it.
 */
int pr_ranker_due(const struct pr_ranker *r);

/*
 * Writer: whether the next batch can be cut by the engine's apply threads
 * (shard_owners.h) where the records enqueued so far end, so that
 * pr_ranker_feed needs no drain: with apply threads, unless the batch
 * must be whole. Reads nothing of the shards.
 */
bool pr_ranker_cuts_staged(const struct pr_ranker *r);
/*
 * Writer: hands the ranker the changes since the last batch if it has
 * taken that one and (unless now) the interval has passed since. Call it
 * when pr_ranker_due says 0 or now is true, with every record applied
 * (pr_engine_drain; it then reads the shards' journals itself) or when
 * pr_ranker_cuts_staged says so (the apply threads then cut the batch
 * after the records they hold, and this returns without waiting for
 * them). Returns -1 when nothing waits to be handed over, else the
 * milliseconds after which to call again (0: at once; with records
 * still staged, after a drain).
 */
int pr_ranker_feed(struct pr_ranker *r, bool now);

/* Reader: the newest snapshot of w published since the last take, with a
 * reference for the caller; NULL if none. */
struct pr_published *pr_ranker_take(struct pr_ranker *r, enum pr_window w);

/*
 * Writer and reader at once (paretod's server thread), with every record
 * applied (pr_engine_drain): hands over everything and waits until the
 * ranker publishes w as of every record applied so far. Returns that
 * snapshot (a reference for the caller) or NULL if the ranker ran out of
 * memory for it.
 */
struct pr_published *pr_ranker_wait(struct pr_ranker *r, enum pr_window w);

struct pr_ranker_stats {
	uint64_t batches;      /* handed over */
	uint64_t staged_cuts;  /* of them, cut by the apply threads (no drain) */
	uint64_t steps;        /* rankings published */
	uint64_t failures;     /* rankings the ranker could not build (out of memory) */
	uint64_t whole;        /* rankings built whole rather than merged */
	uint64_t rebases;      /* layers merged into a new flat base */
	int64_t last_step_us;  /* how long the last batch took the ranker */
	int64_t gap_us;        /* the least time between two batches now */
};

void pr_ranker_stats(const struct pr_ranker *r, struct pr_ranker_stats *out);

#endif
