/*
 * shard_owners.h - the threads that apply a stream's records (paretod's
 * --threads): owner k of N applies every shard s with s % N == k, while the
 * thread that enqueues (paretod's server thread, "the server" below) goes
 * on decoding.
 *
 * The engine uses it from pr_engine_enqueue and pr_engine_drain when its
 * apply_threads option is 2 or more (engine.c); nothing else calls it.
 *
 * The server validates and counts each record itself (stores, counters,
 * watermark stay on its thread), then stages it in the buffer its shard's
 * owner is filling. A full buffer is handed to the owner through an SPSC
 * ring (spsc_ring.h) and comes back through another once applied, with the
 * records that failed for memory counted in it. An owner has BUFFERS
 * buffers of BUFFER_BYTES (shard_owners.c): when every one is handed over,
 * the server waits for one to come back, so a slow owner slows ingest and
 * nothing is dropped or grows. Drain hands the buffers in progress over
 * and waits until every buffer is back: then every staged record is
 * applied, the owners' writes are visible to the server (it took each
 * buffer back through the ring's acquire), and no owner touches the engine
 * until the next handoff. Between a handoff and the next drain only the
 * owners touch the shards' tables, so nothing may read the engine's shards
 * there: the engine's readers drain first (pr_engine_drain), as they
 * already had to for the queue of one thread.
 *
 * Exactness: a shard's records are applied by one owner in the order they
 * were staged (buffers are FIFO, a buffer's records in order): the order
 * one thread applies them in. Owners share nothing they write (each shard
 * has its own tables, engine_internal.h), so the engine ends in the state
 * one thread reaches.
 *
 * Idle threads sleep on a futex word, after a short spin; a handoff makes
 * the futex call only when the other side sleeps (otherwise a fence and a
 * load).
 *
 * A cut (pr_shard_owners_cut) rides in the stream: each owner's buffer
 * is handed over marked, and the owner calls the cut once it has applied
 * that buffer, so every owner's cut sees exactly the records staged before
 * it (the ranker's batch without a drain; ranker.h).
 *
 * Cost: O(1) per record (its copy into a buffer); one handoff per
 * BUFFER_BYTES of an owner's records; a drain with nothing staged since
 * the last one tests a flag.
 */
#ifndef PARETO_SHARD_OWNERS_H
#define PARETO_SHARD_OWNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pareto/engine.h"

#define PR_SHARD_OWNERS_MAX 64

struct pr_shard_owners;

/* Starts `threads` (2..PR_SHARD_OWNERS_MAX) owner threads applying to e.
 * 0, -EINVAL, -ENOMEM, or pthread_create's error (negated), with nothing
 * left running. */
int pr_shard_owners_start(struct pr_shard_owners **out, struct pr_engine *e, unsigned threads);

/* Waits for the buffers handed over, stops and joins the threads, frees
 * everything. Records staged and not handed over are dropped: call it when
 * the engine goes away (NULL: nothing). */
void pr_shard_owners_stop(struct pr_shard_owners *o);

/*
 * Server only. Where to write a staged record of `bytes` (at most
 * pr_staged_size(255)) of `shard`: the record is the owner's from then on
 * and is applied after everything staged for that owner before it. Waits
 * while every buffer of that owner is handed over (backpressure).
 */
unsigned char *pr_shard_owners_stage(struct pr_shard_owners *o, uint32_t shard, size_t bytes);

/*
 * Server only. Hands every staged record over and waits until all are
 * applied. *dropped and *dropped_volume_minor get the records that could
 * not be applied (out of memory) since the last drain, and their total
 * absolute amount, for the caller to uncount. 0, or -ENOMEM if any failed.
 */
int pr_shard_owners_drain(struct pr_shard_owners *o, uint64_t *dropped,
			  uint64_t *dropped_volume_minor);

/*
 * A cut of the record stream, for paretod's ranker: called on the thread of
 * owner `owner` (of `owners`) when every record staged before the cut is
 * applied to its shards and none staged after it is, with whether it
 * failed to apply any record (out of memory) since its previous cut. It may
 * read and reset what the owner's shards hold (s % owners == owner); when
 * it returns the owner goes on.
 */
typedef void pr_shard_owners_cut_fn(void *arg, unsigned owner, unsigned owners, bool dropped);
/*
 * Server only. Cuts the stream here: hands every owner's staged records
 * over with cut(arg, ...) to be called after them (an owner with nothing
 * staged calls it at once), and returns without waiting, as the records
 * after the cut go on being staged. Every owner calls it exactly once, in
 * the order of their cuts; a drain waits for it as for the records. Waits
 * only while an owner has every buffer handed over (backpressure).
 */
void pr_shard_owners_cut(struct pr_shard_owners *o, pr_shard_owners_cut_fn *cut, void *arg);
/*
 * A call for one owner's shards (pr_shard_owners_call), made on that
 * owner's thread once every record staged for it before the call is
 * applied and none staged after. It may read the owner's shards (s %
 * owners == owner), not write them; when it returns the owner goes on.
 */
typedef void pr_shard_owners_call_fn(void *arg);
/*
 * Server only. Hands the records staged for the owner of `shard` over with
 * fn(arg) to be called after them (at once if none are), and returns
 * without waiting; the other owners are not disturbed. A drain waits for
 * it as for the records. Waits only while that owner has every buffer
 * handed over (backpressure).
 */
void pr_shard_owners_call(struct pr_shard_owners *o, uint32_t shard, pr_shard_owners_call_fn *fn,
			  void *arg);
/* Server only. Whether records were staged (or a cut made) since the last
 * drain (then the shards may be in an owner's hands). */
bool pr_shard_owners_staged(const struct pr_shard_owners *o);

/* The number of owner threads. */
unsigned pr_shard_owners_count(const struct pr_shard_owners *o);

#endif
