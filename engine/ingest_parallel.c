/*
 * ingest_parallel.c - one large file decoded and applied on several
 * threads, in bounded memory, with exactly the single-thread result; see
 * pr_ingest_file_parallel in pareto/ingest.h.
 *
 * The file is cut into chunks of about 1 MiB (at line ends for CSV, record
 * boundaries for binary records). N workers each decode chunks k, k + N,
 * k + 2N, ... and each owns the shards s with s % N == k. A decoder hands
 * every record, as a staged record (staged.h), to the owner of its shard
 * through the record ring of that (decoder, owner) pair (record_ring.h):
 * N x N single-producer single-consumer rings, no lock anywhere. An owner
 * stages what it receives per shard and applies a shard's buffer when it
 * fills, with the engine's look-ahead, so the tables of one shard are in
 * cache while its records are applied.
 *
 * Exactness. An owner takes chunks in file order (chunk c from ring
 * (c % N, owner)), so every shard receives its records in file order, the
 * order one thread applies them in: the engine ends in the very state a
 * single thread reaches. What one thread decides in file order is decided
 * at a chunk's *merge*: chunks merge one after another, in order (chunk c
 * waits until chunk c - 1 has merged), on the thread that decoded them:
 * stores are numbered (first seen first), counters and watermark added,
 * rejects told with their line numbers (counted from the file's start),
 * statistics summed. A chunk's records stay pending in the owners' buffers
 * until its merge is known (the END record that follows them in each
 * ring), so a chunk that must not count as decoded is dropped whole:
 *   - the volume bound: the chunk's volume would take the total past
 *     INT64_MAX, so some record of it may be an overflow reject;
 *   - a cut inside a quoted field: the chunk before did not end idle;
 *   - out of memory while decoding (a store table, a saved reject).
 * Then every chunk from that one on is dropped and, once the threads are
 * done, read again on this thread with a plain decoder and pr_engine_add
 * from the chunk's start, its line count and the engine state of every
 * chunk before it: what one thread would do from there.
 *
 * Bounded memory (pr_engine_options.memory_limit_bytes, default 128 MiB):
 * half in the owners' shard buffers (limit / 2 / 256 a shard), at most a
 * quarter in the rings (each at most 256 KiB, small enough to stay in
 * cache), the rest headroom. When an owner falls behind its rings fill,
 * and a decoder that finds a ring full does its own owner's work
 * meanwhile or waits: backpressure, never a buffer that grows with the
 * file. What the limit does not cover: pending records of the chunk in
 * progress when they outgrow their shard's buffer (at most a chunk's
 * records: chunks are 4 rings, 1 MiB by default), the saved rejects of a
 * chunk, the read buffers (4 x 256 KiB per worker), the aggregates.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "decoder.h"
#include "engine_internal.h"
#include "id_table.h"
#include "pareto/ingest.h"
#include "record_ring.h"
#include "staged.h"
#include "uring_reader.h"

#define PARALLEL_MIN_BYTES (8u << 20) /* below this one thread is as quick */
#define PROBE_BYTES (4u << 10) /* a line end is looked for in this much at a time */
#define CHUNK_MIN_BYTES 256u
#define CHUNK_MAX_BYTES (64u << 20)
#define RING_MIN_BYTES (4u << 10)
/* Rings that stay in L2: the decoder's writes and the owner's reads then
 * hit the cache (8 MiB rings cost a third more CPU at 10M rows). */
#define RING_MAX_BYTES (256u << 10)
#define SHARD_STAGE_MIN_BYTES (1u << 10)
#define OWNER_BATCH 256 /* ring records an owner takes before it looks elsewhere */
_Static_assert(PR_LANES_MAX <= 256, "a worker's number fits run.owner_of's bytes");

/* Tags in the first word of a ring record (staged.h leaves the upper bits
 * of customer_len to the carrier): a record of shard (tag >> SHARD_SHIFT)
 * & 0xff, or a chunk's end. */
#define TAG_RECORD (1u << 31)
#define TAG_END (1u << 30)
#define SHARD_SHIFT PR_STAGED_LEN_BITS

/*
 * Engine store numbers of one chunk's stores (by the chunk's own numbers),
 * for owners that keep stores. Written by the chunk's merge before its END
 * records are published (the ring's release/acquire makes it visible to
 * each owner); freed by the last owner to finish with it (the acq_rel
 * decrement orders every owner's reads before the free).
 */
struct store_map {
	_Atomic unsigned owners_left;
	uint32_t count;
	uint32_t to_engine[];
};

/* A chunk's end, in every ring of its decoder. */
struct ring_end {
	uint32_t tag;      /* TAG_END */
	uint32_t keep;     /* 1: apply the chunk's records; 0: drop them, and stop */
	struct store_map *map; /* NULL unless stores are kept */
	uint64_t chunk;
};

struct saved_reject {
	struct pr_reject r;
	char *text; /* detail, NUL, raw: owned */
};

/* One owned shard's staged records: [0, applied) are applied, [applied,
 * validated) belong to merged chunks and may be applied, [validated, used)
 * to the chunk being received. */
struct shard_stage {
	unsigned char *bytes; /* owned */
	size_t applied, validated, used, capacity;
};

struct run;

/*
 * A worker: one thread, decoder of its chunks and owner of its shards.
 * Everything here is written by that thread only, except `thread`; the
 * caller reads rc, err and the owner's results after joining it.
 */
struct worker {
	pthread_t thread;
	struct run *run;
	unsigned index;
	/* decoding */
	struct pr_decoder *decoder;
	struct pr_range_reader *reader;
	char *probe;                 /* PROBE_BYTES; owned */
	struct pr_id_table stores;   /* the chunk's stores, first seen first */
	bool stores_ready;
	uint64_t records, volume_minor; /* the chunk's */
	int64_t latest_ms;
	bool has_latest;
	bool chunk_failed;           /* out of memory or past the volume bound */
	struct saved_reject *rejects; /* the chunk's, in order; owned */
	size_t reject_count, reject_cap;
	/* owning */
	uint64_t owner_chunk; /* the chunk whose records it takes next */
	bool owner_done;
	bool unapplied; /* a buffer may hold validated records not applied */
	struct shard_stage stage[PR_SHARDS]; /* only shards s % N == index */
	int rc;
	struct pr_error err;
};

/*
 * What the workers share. Set before the threads start and read-only
 * after, except the atomics and the merge state below. Of the engine, a
 * shard's tables are written only by its owner (pr_engine_apply_runs);
 * its store table, counters and watermark only by merges, which `merged`
 * orders; nothing else of it is read while the workers run.
 */
struct run {
	struct pr_engine *engine;
	const char *path;
	const struct pr_feed_options *opt;
	const char *header;
	size_t header_len;
	bool binary;
	uint32_t record_bytes;    /* binary: the header's record size */
	uint64_t size;
	uint64_t chunk_bytes, chunk_count;
	unsigned workers;
	uint8_t owner_of[PR_SHARDS]; /* shard % workers, without a division per record */
	size_t shard_stage_bytes;
	bool keep_stores;
	uint64_t base_volume; /* the engine's volume before this file */
	pr_reject_fn on_reject;
	void *ctx;
	struct pr_record_ring *rings; /* workers x workers: [decoder * workers + owner]; owned */
	struct worker *worker;        /* workers; owned */
	/* 1 once every thread started, 2 if one could not (all go home):
	 * written once by the caller with release, polled with acquire. */
	_Atomic int go;
	/* Chunks merged so far: the merge of chunk c stores c + 1 with release
	 * after its merge state changes; the merger of c + 1 loads it with
	 * acquire, so it sees them (the merge state is passed along in order). */
	_Atomic uint64_t merged;
	/* The first chunk dropped (chunk_count: none). Written once, by that
	 * chunk's merge, before its END records; decoders and waiters poll it
	 * relaxed: it only tells them to give up, and what they give up is
	 * dropped whatever they saw. Owners learn of it from the END record. */
	_Atomic uint64_t stop;
	/* A worker failed (I/O error, out of memory applying, a reject that
	 * stops the feed): everyone gives up. Relaxed, like stop; the failure
	 * itself is read from the worker after joining. */
	_Atomic bool failed;
	/* Merge state: written by one merge at a time, in chunk order. */
	uint64_t line_base;          /* lines before the next chunk to merge */
	struct pr_feed_stats stats;  /* of the merged chunks */
};

static bool giving_up(struct run *run)
{
	return atomic_load_explicit(&run->stop, memory_order_relaxed) < run->chunk_count ||
	       atomic_load_explicit(&run->failed, memory_order_relaxed);
}

static void fail_run(struct worker *w, int rc)
{
	if (w->rc == 0)
		w->rc = rc;
	atomic_store_explicit(&w->run->failed, true, memory_order_relaxed);
}

/* Waiting without a lock: spin a little, then yield, then sleep briefly
 * (the machine may have fewer cores than threads). */
static void pause_a_little(unsigned *idle)
{
	++*idle;
	if (*idle < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else if (*idle < 256) {
		sched_yield();
	} else {
		struct timespec nap = { 0, 50000 };
		nanosleep(&nap, NULL);
	}
}

/* ---- owning ---------------------------------------------------------------- */

static struct pr_record_ring *ring_of(struct run *run, unsigned decoder, unsigned owner)
{
	return &run->rings[decoder * run->workers + owner];
}

/*
 * Applies the validated records of shard `only`, or with PR_SHARDS of
 * every shard the worker owns, all with one look-ahead
 * (pr_engine_apply_runs). Nothing moves here: a buffer moves its pending
 * records to its front only once it is full (make_room). 0 or -ENOMEM.
 */
static int apply_validated(struct worker *w, uint32_t only)
{
	struct run *run = w->run;
	struct pr_staged_run runs[64];
	size_t n = 0;
	int rc = 0;
	uint32_t first = only < PR_SHARDS ? only : w->index;
	uint32_t step = only < PR_SHARDS ? PR_SHARDS : run->workers;
	if (only == PR_SHARDS)
		w->unapplied = false;
	for (uint32_t s = first; s < PR_SHARDS; s += step) {
		struct shard_stage *st = &w->stage[s];
		if (st->validated > st->applied)
			runs[n++] = (struct pr_staged_run){ st->bytes + st->applied,
							    st->bytes + st->validated, NULL };
		st->applied = st->validated;
		if (n == sizeof runs / sizeof runs[0] || s + step >= PR_SHARDS) {
			if (rc == 0)
				rc = pr_engine_apply_runs(run->engine, runs, n);
			n = 0;
		}
	}
	return rc;
}

/* An owner that could not apply a record (out of memory): the run fails. */
static void owner_failed(struct worker *w, int rc)
{
	pr_error_set(&w->err, rc, "%s: out of memory applying records", w->run->path);
	fail_run(w, rc);
	w->owner_done = true;
}

/*
 * What a worker does when it would otherwise wait (its rings empty or
 * full), and once at its end: apply what its buffers hold validated, all
 * with one look-ahead.
 * A full buffer is applied alone (stage_record), which keeps the worker
 * at its rings; applying every buffer whenever one filled kept it away so
 * long that the other worker's decoder waited (the CSV report, 10M rows
 * on 2 threads, 0.50 -> 0.57 s), while a look-ahead started afresh for
 * each buffer of a few hundred records left its first records waiting on
 * their misses. Returns whether it applied anything.
 */
static bool apply_held(struct worker *w)
{
	if (!w->unapplied || w->rc < 0)
		return false;
	int rc = apply_validated(w, PR_SHARDS);
	if (rc < 0)
		owner_failed(w, rc);
	return true;
}

/* Moves what a buffer holds unapplied to its front. */
static void make_room(struct shard_stage *st)
{
	if (!st->applied)
		return;
	memmove(st->bytes, st->bytes + st->applied, st->used - st->applied);
	st->validated -= st->applied;
	st->used -= st->applied;
	st->applied = 0;
}

/* Copies a received record into its shard's buffer, first making room if
 * it is full: moving out what is applied, else applying what is validated
 * (that buffer alone, apply_held says why). 0 or -ENOMEM. */
static int stage_record(struct worker *w, uint32_t shard, const unsigned char *rec, size_t bytes)
{
	struct shard_stage *st = &w->stage[shard];
	if (st->used + bytes > st->capacity)
		make_room(st);
	if (st->used + bytes > st->capacity) {
		int rc = apply_validated(w, shard);
		if (rc < 0)
			return rc;
		make_room(st);
		if (st->used + bytes > st->capacity) {
			/* Pending records of one chunk outgrow the buffer:
			 * bounded by the chunk's size. */
			size_t cap = st->capacity ? st->capacity : w->run->shard_stage_bytes;
			while (cap < st->used + bytes)
				cap *= 2;
			unsigned char *bigger = realloc(st->bytes, cap);
			if (!bigger)
				return -ENOMEM;
			st->bytes = bigger;
			st->capacity = cap;
		}
	}
	unsigned char *dst = st->bytes + st->used;
	pr_staged_copy(dst, rec, bytes);
	((struct pr_staged_record *)dst)->customer_len &= PR_STAGED_LEN_MASK;
	st->used += bytes;
	return 0;
}

/* A chunk's END: its pending records become appliable (with engine store
 * numbers) or are dropped. */
static void end_chunk(struct worker *w, const struct ring_end *end)
{
	struct run *run = w->run;
	for (uint32_t s = w->index; s < PR_SHARDS; s += run->workers) {
		struct shard_stage *st = &w->stage[s];
		if (!end->keep) {
			st->used = st->validated;
			continue;
		}
		if (end->map) {
			for (unsigned char *at = st->bytes + st->validated; at < st->bytes + st->used;) {
				struct pr_staged_record *r = (struct pr_staged_record *)at;
				r->store = end->map->to_engine[r->store];
				at += pr_staged_size(r->customer_len);
			}
		}
		st->validated = st->used;
	}
	if (end->keep)
		w->unapplied = true;
	if (end->map &&
	    atomic_fetch_sub_explicit(&end->map->owners_left, 1, memory_order_acq_rel) == 1)
		free(end->map);
	w->owner_chunk++;
	if (!end->keep || w->owner_chunk == run->chunk_count)
		w->owner_done = true;
}

/* The ring an owner takes its next chunk's records from. */
static struct pr_record_ring *owner_ring(struct worker *w)
{
	return ring_of(w->run, (unsigned)(w->owner_chunk % w->run->workers), w->index);
}

/* Takes what its rings hold, in chunk order. Returns whether it did anything. */
static bool serve_owner(struct worker *w)
{
	struct run *run = w->run;
	bool busy = false;
	/* (Found again only at a chunk's end: a division per record showed.) */
	struct pr_record_ring *ring = owner_ring(w);
	for (unsigned n = 0; n < OWNER_BATCH && !w->owner_done; n++) {
		if (atomic_load_explicit(&run->failed, memory_order_relaxed)) {
			w->owner_done = true;
			break;
		}
		const unsigned char *rec = pr_record_ring_front(ring);
		if (!rec)
			break;
		busy = true;
		uint32_t tag = *(const uint32_t *)rec;
		if (tag & TAG_END) {
			struct ring_end end;
			memcpy(&end, rec, sizeof end);
			pr_record_ring_pop(ring, sizeof end);
			pr_record_ring_release(ring); /* the next chunk comes from another */
			end_chunk(w, &end);
			ring = owner_ring(w);
			continue;
		}
		size_t bytes = pr_staged_size(tag & PR_STAGED_LEN_MASK);
		int rc = stage_record(w, (tag >> SHARD_SHIFT) & (PR_SHARDS - 1), rec, bytes);
		pr_record_ring_pop(ring, bytes);
		if (rc < 0)
			owner_failed(w, rc);
	}
	if (busy)
		pr_record_ring_release(ring);
	return busy;
}

/* Makes every record this worker's decoder committed visible to the owners:
 * before it waits for anything, and at the end of each block it decoded. */
static void publish_all(struct worker *w)
{
	for (unsigned o = 0; o < w->run->workers; o++)
		pr_record_ring_publish(ring_of(w->run, w->index, o));
}

/* Space for `bytes` in a ring, doing owner work while it is full. NULL if
 * the run is given up meanwhile (unless must: a chunk's END is delivered
 * whatever happens, as long as nothing failed). */
static void *reserve(struct worker *w, struct pr_record_ring *ring, size_t bytes, bool must)
{
	unsigned idle = 0;
	void *dst;
	while (!(dst = pr_record_ring_reserve(ring, bytes))) {
		publish_all(w);
		if (must ? atomic_load_explicit(&w->run->failed, memory_order_relaxed)
			 : giving_up(w->run))
			return NULL;
		if (serve_owner(w) || apply_held(w))
			idle = 0;
		else
			pause_a_little(&idle);
	}
	return dst;
}

/* ---- decoding -------------------------------------------------------------- */

static int chunk_record(void *ctx, const struct pr_record *r)
{
	struct worker *w = ctx;
	struct run *run = w->run;
	if (!pr_engine_time_ok(r->ts_ms))
		return -ERANGE; /* a reject wherever it is, as pr_engine_add makes it */
	uint64_t magnitude = r->amount_minor < 0 ? -(uint64_t)r->amount_minor
						 : (uint64_t)r->amount_minor;
	if (w->chunk_failed ||
	    magnitude > (uint64_t)INT64_MAX - run->base_volume - w->volume_minor) {
		/* This chunk alone reaches the bound: whether this record
		 * is refused depends on every chunk before it. */
		w->chunk_failed = true;
		return -ERANGE;
	}
	bool created;
	uint32_t store = pr_id_table_upsert(&w->stores, r->store, r->store_len,
					    pr_id_hash(&w->stores, r->store, r->store_len), &created);
	if (store == PR_ID_NONE) {
		w->chunk_failed = true;
		return -ENOMEM;
	}
	uint32_t shard = pr_engine_shard_of(run->engine, r->customer, r->customer_len);
	size_t bytes = pr_staged_size(r->customer_len);
	struct pr_record_ring *ring = ring_of(run, w->index, run->owner_of[shard]);
	unsigned char *dst = reserve(w, ring, bytes, false);
	if (!dst)
		return -ECANCELED; /* given up: nothing of this chunk counts */
	pr_staged_write(dst, r, store);
	((struct pr_staged_record *)dst)->customer_len |= TAG_RECORD | shard << SHARD_SHIFT;
	pr_record_ring_commit(ring, bytes);
	w->volume_minor += magnitude;
	w->records++;
	if (!w->has_latest || r->ts_ms > w->latest_ms) {
		w->latest_ms = r->ts_ms;
		w->has_latest = true;
	}
	return 0;
}

/* Rejects wait for the chunk's merge: only then is its first line known. */
static int chunk_reject(void *ctx, const struct pr_reject *r)
{
	struct worker *w = ctx;
	if (w->chunk_failed || giving_up(w->run))
		return 0; /* the chunk will not count */
	if (w->reject_count == w->reject_cap) {
		size_t cap = w->reject_cap ? w->reject_cap * 2 : 16;
		struct saved_reject *bigger = realloc(w->rejects, cap * sizeof *bigger);
		if (!bigger) {
			w->chunk_failed = true;
			return 0;
		}
		w->rejects = bigger;
		w->reject_cap = cap;
	}
	size_t detail = strlen(r->detail);
	char *text = malloc(detail + 1 + r->raw_len + 1);
	if (!text) {
		w->chunk_failed = true;
		return 0;
	}
	memcpy(text, r->detail, detail + 1);
	memcpy(text + detail + 1, r->raw, r->raw_len);
	struct saved_reject *s = &w->rejects[w->reject_count++];
	s->r = *r;
	s->r.detail = text;
	s->r.raw = text + detail + 1;
	s->text = text;
	return 0;
}

static void drop_rejects(struct worker *w)
{
	for (size_t i = 0; i < w->reject_count; i++)
		free(w->rejects[i].text);
	w->reject_count = 0;
}

#define GIVEN_UP (-ECHILD) /* a consumer's code: stop reading, nothing failed */

static int chunk_push(void *ctx, const char *bytes, size_t len)
{
	struct worker *w = ctx;
	if (w->chunk_failed || giving_up(w->run))
		return GIVEN_UP;
	int rc = pr_decoder_push(w->decoder, bytes, len, &w->err);
	publish_all(w);
	/* Take what the rings hold for this owner now, while it may still be
	 * in cache, rather than only when a ring is full. */
	while (serve_owner(w))
		;
	return w->chunk_failed || giving_up(w->run) ? GIVEN_UP : rc;
}

struct probe {
	char *bytes;
	size_t len;
};

static int probe_collect(void *ctx, const char *bytes, size_t len)
{
	struct probe *pb = ctx;
	size_t take = len < PROBE_BYTES - pb->len ? len : PROBE_BYTES - pb->len;
	memcpy(pb->bytes + pb->len, bytes, take);
	pb->len += take;
	return 0;
}

/* Where chunk c starts (c == chunk_count: the file's end). CSV: just after
 * the first line end at or after its nominal start - 1, so a line belongs
 * to the chunk its first byte is nominally in; both neighbours of a cut
 * find the same one. */
static int chunk_start(struct worker *w, uint64_t c, uint64_t *at)
{
	struct run *run = w->run;
	if (c == 0) {
		*at = run->header_len;
		return 0;
	}
	if (c >= run->chunk_count) {
		*at = run->size;
		return 0;
	}
	if (run->binary) {
		*at = run->header_len + c * run->chunk_bytes; /* chunk_bytes: whole records */
		return 0;
	}
	uint64_t from = run->header_len + c * run->chunk_bytes - 1;
	while (from < run->size) {
		struct probe pb = { w->probe, 0 };
		int rc = pr_range_reader_read(w->reader, from, PROBE_BYTES, probe_collect, &pb,
					      &w->err);
		if (rc < 0)
			return rc;
		const char *nl = memchr(pb.bytes, '\n', pb.len);
		if (nl) {
			*at = from + (uint64_t)(nl - pb.bytes) + 1;
			return 0;
		}
		if (pb.len < PROBE_BYTES)
			break;
		from += pb.len;
	}
	*at = run->size;
	return 0;
}

/* Merges chunk c, decoded by w (in chunk order), and sends its END to
 * every owner. */
static void merge_chunk(struct worker *w, uint64_t c, bool decoded)
{
	struct run *run = w->run;
	unsigned idle = 0;
	publish_all(w);
	for (;;) {
		/* merged first: its acquire makes a stop of the chunk before visible. */
		bool turn = atomic_load_explicit(&run->merged, memory_order_acquire) == c;
		if (giving_up(run))
			return; /* an earlier chunk stopped the run: its END ends the owners */
		if (turn)
			break;
		if (serve_owner(w) || apply_held(w))
			idle = 0;
		else
			pause_a_little(&idle);
	}
	struct pr_engine *e = run->engine;
	bool keep = decoded && !w->chunk_failed &&
		    (c + 1 == run->chunk_count || pr_decoder_idle(w->decoder)) &&
		    w->volume_minor <= (uint64_t)INT64_MAX - pr_engine_volume(e);
	struct store_map *map = NULL;
	if (keep && run->keep_stores) {
		map = malloc(sizeof *map + (w->stores.count + 1) * sizeof map->to_engine[0]);
		if (!map)
			keep = false;
		else {
			atomic_init(&map->owners_left, run->workers);
			map->count = w->stores.count;
		}
	}
	/* Stores are numbered only once the chunk is known to count (a chunk
	 * read again may refuse the record that would add one). */
	for (uint32_t s = 0; keep && s < w->stores.count; s++) {
		const struct pr_id_entry *id = pr_id_table_entry(&w->stores, s);
		uint32_t engine_store = pr_engine_store_intern(e, pr_id_entry_bytes(id), id->len);
		if (engine_store == PR_ID_NONE)
			keep = false; /* read again: it will say what it can */
		else if (map)
			map->to_engine[s] = engine_store;
	}
	if (keep) {
		pr_engine_merge_counts(e, w->records, w->volume_minor, w->has_latest, w->latest_ms);
		for (size_t i = 0; i < w->reject_count; i++) {
			struct pr_reject r = w->rejects[i].r;
			r.line += run->line_base;
			if (run->on_reject && run->on_reject(run->ctx, &r) < 0) {
				pr_error_set(&w->err, -ECANCELED, "%s: line %llu: %s", run->path,
					     (unsigned long long)r.line, r.detail);
				fail_run(w, -ECANCELED);
				break;
			}
		}
		uint64_t lines, offset;
		pr_decoder_position(w->decoder, &lines, &offset);
		run->line_base += lines;
		pr_feed_stats_add(&run->stats, pr_decoder_stats(w->decoder));
	} else {
		free(map);
		map = NULL;
		atomic_store_explicit(&run->stop, c, memory_order_relaxed);
	}
	drop_rejects(w);
	atomic_store_explicit(&run->merged, c + 1, memory_order_release);

	struct ring_end end = { TAG_END, keep, map, c };
	for (unsigned o = 0; o < run->workers; o++) {
		struct pr_record_ring *ring = ring_of(run, w->index, o);
		void *dst = reserve(w, ring, sizeof end, true);
		if (!dst)
			return; /* failed: owners stop on their own */
		memcpy(dst, &end, sizeof end);
		pr_record_ring_commit(ring, sizeof end);
		pr_record_ring_publish(ring);
	}
}

/* Decodes chunk c into the rings. False if the run is given up or failed. */
static bool decode_chunk(struct worker *w, uint64_t c)
{
	struct run *run = w->run;
	uint64_t start, end;
	int rc = chunk_start(w, c, &start);
	if (rc == 0)
		rc = chunk_start(w, c + 1, &end);
	if (rc < 0) {
		fail_run(w, rc);
		return false;
	}
	w->records = w->volume_minor = 0;
	w->has_latest = w->chunk_failed = false;
	if (w->stores_ready)
		pr_id_table_destroy(&w->stores);
	w->stores_ready = pr_id_table_init(&w->stores, 64, 8, NULL) == 0;
	if (!w->stores_ready) {
		w->chunk_failed = true;
		return true; /* merged as failed: read again on one thread */
	}
	pr_decoder_seek(w->decoder, 0, start);
	if (end > start)
		rc = pr_range_reader_read(w->reader, start, end - start, chunk_push, w, &w->err);
	if (rc == 0 && c + 1 == run->chunk_count)
		rc = pr_decoder_finish(w->decoder, &w->err);
	if (rc == GIVEN_UP || (rc < 0 && w->chunk_failed))
		return !giving_up(run);
	if (rc < 0) {
		fail_run(w, rc);
		return false;
	}
	return true;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	unsigned idle = 0;
	int go;
	while ((go = atomic_load_explicit(&run->go, memory_order_acquire)) == 0)
		pause_a_little(&idle);
	if (go != 1)
		return NULL;
	for (uint64_t c = w->index; c < run->chunk_count && !giving_up(run); c += run->workers) {
		bool decoded = decode_chunk(w, c);
		if (atomic_load_explicit(&run->failed, memory_order_relaxed))
			break;
		merge_chunk(w, c, decoded && !giving_up(run));
	}
	idle = 0;
	while (!w->owner_done) {
		if (serve_owner(w) || apply_held(w))
			idle = 0;
		else
			pause_a_little(&idle);
	}
	/* What is left of the merged chunks, applied on every worker at once. */
	if (!atomic_load_explicit(&run->failed, memory_order_relaxed))
		apply_held(w);
	return NULL;
}

/* ---- setting up -------------------------------------------------------------- */

static size_t floor_pow2(size_t n)
{
	size_t p = 1;
	while (p * 2 <= n)
		p *= 2;
	return p;
}

static void run_destroy(struct run *run)
{
	for (unsigned k = 0; run->worker && k < run->workers; k++) {
		struct worker *w = &run->worker[k];
		pr_decoder_destroy(w->decoder);
		pr_range_reader_close(w->reader);
		free(w->probe);
		if (w->stores_ready)
			pr_id_table_destroy(&w->stores);
		drop_rejects(w);
		free(w->rejects);
		for (uint32_t s = 0; s < PR_SHARDS; s++)
			free(w->stage[s].bytes);
	}
	/* Maps of chunks whose END an owner never took (the run failed). */
	for (unsigned k = 0; run->rings && k < run->workers * run->workers; k++) {
		struct pr_record_ring *ring = &run->rings[k];
		if (!ring->bytes)
			continue;
		const unsigned char *rec;
		while ((rec = pr_record_ring_front(ring))) {
			uint32_t tag = *(const uint32_t *)rec;
			if (tag & TAG_END) {
				struct ring_end end;
				memcpy(&end, rec, sizeof end);
				if (end.map && atomic_fetch_sub_explicit(&end.map->owners_left, 1,
									 memory_order_acq_rel) == 1)
					free(end.map);
				pr_record_ring_pop(ring, sizeof end);
			} else {
				pr_record_ring_pop(ring, pr_staged_size(tag & PR_STAGED_LEN_MASK));
			}
		}
		pr_record_ring_destroy(ring);
	}
	free(run->rings);
	free(run->worker);
	/* The shard buffers (half the memory limit) came from malloc's heaps
	 * once its mapping threshold rose past their size, and heaps keep
	 * freed memory: give it back before the rankings that follow a load
	 * (70 MB of the lean report's peak at 10M customers). */
	malloc_trim(0);
}

static int ignore_record(void *ctx, const struct pr_record *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

/* The sequential reading of the file from `start` (0: all of it). */
struct tail {
	struct pr_engine *engine;
	pr_reject_fn on_reject;
	void *ctx;
	struct pr_decoder *decoder;
	struct pr_error *err;
};

static int tail_record(void *ctx, const struct pr_record *r)
{
	return pr_engine_add(((struct tail *)ctx)->engine, r);
}

static int tail_reject(void *ctx, const struct pr_reject *r)
{
	struct tail *t = ctx;
	return t->on_reject ? t->on_reject(t->ctx, r) : 0;
}

static int tail_push(void *ctx, const char *bytes, size_t len)
{
	struct tail *t = ctx;
	return pr_decoder_push(t->decoder, bytes, len, t->err);
}

/* Reads the file from chunk `start` (at `line`) on this thread, after the
 * header: what one thread does from there. */
static int read_tail(struct run *run, uint64_t start, uint64_t line, struct pr_feed_stats *stats,
		     struct pr_error *err)
{
	struct tail t = { run->engine, run->on_reject, run->ctx, NULL, err };
	struct pr_feed_sink sink = { &t, tail_record, tail_reject };
	int rc = pr_decoder_create(&t.decoder, run->path, run->opt, &sink, err);
	if (rc < 0)
		return rc;
	pr_engine_bulk_begin(run->engine);
	rc = pr_decoder_push(t.decoder, run->header, run->header_len, err);
	if (rc == 0) {
		pr_decoder_seek(t.decoder, line, start);
		rc = pr_read_range(run->path, start, UINT64_MAX, NULL, tail_push, &t, err);
	}
	if (rc == 0)
		rc = pr_decoder_finish(t.decoder, err);
	pr_feed_stats_add(stats, pr_decoder_stats(t.decoder));
	pr_decoder_destroy(t.decoder);
	int end = pr_engine_bulk_end(run->engine);
	if (rc == 0 && end < 0)
		rc = pr_error_set(err, end, "%s: out of memory applying records", run->path);
	return rc;
}

static int setup(struct run *run, struct pr_error *err)
{
	size_t limit = pr_engine_options(run->engine)->memory_limit_bytes;
	if (!limit)
		limit = PR_BULK_MEMORY_DEFAULT;
	unsigned n = run->workers;
	size_t ring_bytes = floor_pow2(limit / 4 / ((size_t)n * n));
	ring_bytes = ring_bytes < RING_MIN_BYTES ? RING_MIN_BYTES
		   : ring_bytes > RING_MAX_BYTES ? RING_MAX_BYTES : ring_bytes;
	/* Half the limit over the shards, and what an owner stages for all its
	 * shards at most about its L2 (staged.h). */
	size_t owned = (PR_SHARDS + n - 1) / n;
	run->shard_stage_bytes = limit / 2 / PR_SHARDS;
	if (run->shard_stage_bytes > PR_STAGE_BYTES_PER_THREAD / owned)
		run->shard_stage_bytes = PR_STAGE_BYTES_PER_THREAD / owned;
	if (run->shard_stage_bytes < SHARD_STAGE_MIN_BYTES)
		run->shard_stage_bytes = SHARD_STAGE_MIN_BYTES;
	/* Chunks of four rings: measured best at 10M rows (a chunk is a merge,
	 * two probes and a store table; a smaller one costs more of those, a
	 * larger one makes the next chunk's decoder wait longer). */
	uint64_t chunk = (uint64_t)ring_bytes * 4;
	uint64_t data = run->size - run->header_len;
	/* At least two chunks per worker, so that a small file (tests split
	 * them) is not read by one of them. */
	if (chunk > data / (2 * n))
		chunk = data / (2 * n);
	chunk = chunk < CHUNK_MIN_BYTES ? CHUNK_MIN_BYTES : chunk > CHUNK_MAX_BYTES ? CHUNK_MAX_BYTES : chunk;
	if (run->binary) {
		uint64_t size = run->record_bytes;
		chunk = chunk / size * size;
		if (!chunk)
			chunk = size;
		uint64_t records = data / size;
		run->chunk_count = records ? (records * size + chunk - 1) / chunk : 1;
	} else {
		run->chunk_count = data ? (data + chunk - 1) / chunk : 1;
	}
	run->chunk_bytes = chunk;
	if (run->chunk_count < n)
		run->workers = n = (unsigned)run->chunk_count;
	if (n < 2)
		return 1; /* not worth threads */
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		run->owner_of[s] = (uint8_t)(s % n);
	atomic_init(&run->go, 0);
	atomic_init(&run->merged, 0);
	atomic_init(&run->stop, run->chunk_count);
	atomic_init(&run->failed, false);
	run->rings = calloc((size_t)n * n, sizeof *run->rings);
	run->worker = calloc(n, sizeof *run->worker);
	if (!run->rings || !run->worker)
		return pr_error_set(err, -ENOMEM, "%s: out of memory", run->path);
	for (unsigned k = 0; k < n * n; k++)
		if (pr_record_ring_init(&run->rings[k], ring_bytes) < 0)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", run->path);
	/* Read buffers: 4 blocks of a quarter chunk, 64 KiB to 1 MiB. */
	size_t block = chunk / 4 < (64u << 10) ? (64u << 10) : chunk / 4 > (1u << 20) ? (1u << 20) : chunk / 4;
	struct pr_reader_options ropt = { .block_bytes = block, .depth = 4 };
	for (unsigned k = 0; k < n; k++) {
		struct worker *w = &run->worker[k];
		w->run = run;
		w->index = k;
		struct pr_feed_sink sink = { w, chunk_record, chunk_reject };
		int rc = pr_decoder_create(&w->decoder, run->path, run->opt, &sink, err);
		if (rc == 0)
			rc = pr_decoder_push(w->decoder, run->header, run->header_len, err);
		if (rc == 0)
			rc = pr_range_reader_open(&w->reader, run->path, &ropt, err);
		if (rc < 0)
			return rc;
		if (!(w->probe = malloc(PROBE_BYTES)))
			return pr_error_set(err, -ENOMEM, "%s: out of memory", run->path);
		for (uint32_t s = k; s < PR_SHARDS; s += n) {
			w->stage[s].capacity = run->shard_stage_bytes;
			if (!(w->stage[s].bytes = malloc(run->shard_stage_bytes)))
				return pr_error_set(err, -ENOMEM, "%s: out of memory", run->path);
		}
	}
	return 0;
}

static int ignore_reject(void *ctx, const struct pr_reject *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

/* The bytes a CSV file's header ends after (blank lines, a byte order mark
 * and the header line), if they lie in its first `len` bytes; else 0. */
static size_t csv_header_end(const struct run *run, const char *buf, size_t len)
{
	struct pr_decoder *d;
	struct pr_feed_sink quiet = { NULL, ignore_record, ignore_reject };
	struct pr_error err;
	if (pr_decoder_create(&d, run->path, run->opt, &quiet, &err) < 0)
		return 0;
	uint64_t end = pr_decoder_push(d, buf, len, &err) == 0 ? pr_decoder_header_end(d) : 0;
	pr_decoder_destroy(d);
	return end <= len ? (size_t)end : 0;
}

/* The file's first bytes: binary or CSV, and the header to give each
 * decoder. 0, 1 (not splittable: read it on one thread) or negative. */
static int read_header(struct run *run, char **header, struct pr_error *err, uint64_t *base)
{
	char *buf = malloc(PROBE_BYTES);
	if (!buf)
		return 1;
	struct probe head = { buf, 0 };
	if (pr_read_range(run->path, 0, PROBE_BYTES, NULL, probe_collect, &head, NULL) < 0 ||
	    head.len < 8) {
		free(buf);
		return 1;
	}
	/* Binary records split on record boundaries; CSV at line ends after
	 * a header without quotes. The header ends where the decoder says:
	 * blank lines and a byte order mark may come before it (the fuzz
	 * target found a blank first line taken for the header). */
	run->binary = pr_bin_magic_prefix(buf, 8);
	run->header_len = run->binary ? PR_BIN_HEADER_BYTES : csv_header_end(run, buf, head.len);
	if (!run->binary && (!run->header_len || memchr(buf, '"', run->header_len))) {
		free(buf);
		return 1;
	}
	struct pr_bin_layout layout;
	if (head.len < run->header_len ||
	    (run->binary && pr_bin_header_decode((const unsigned char *)buf, &layout) < 0)) {
		free(buf); /* one thread says what is wrong */
		return 1;
	}
	if (run->binary)
		run->record_bytes = layout.record_bytes; /* chunks end on records */
	*header = buf; /* its first header_len bytes */
	/* The header decides errors once (a missing column, another scale),
	 * before threads, and where line numbers start. */
	struct pr_decoder *check;
	struct pr_feed_sink quiet = { NULL, ignore_record, NULL };
	uint64_t offset;
	int rc = pr_decoder_create(&check, run->path, run->opt, &quiet, err);
	if (rc == 0) {
		rc = pr_decoder_push(check, buf, run->header_len, err);
		pr_decoder_position(check, base, &offset);
		pr_decoder_destroy(check);
	}
	return rc;
}

int pr_ingest_file_parallel(struct pr_engine *e, const char *path,
			    const struct pr_feed_options *opt, unsigned threads,
			    pr_reject_fn on_reject, void *ctx, struct pr_feed_stats *stats,
			    struct pr_error *err)
{
	struct stat st;
	if (threads > PR_LANES_MAX)
		threads = PR_LANES_MAX;
	/* Tests set a small threshold to split small files. */
	const char *min = getenv("PARETO_PARALLEL_MIN_BYTES");
	uint64_t min_bytes = min ? strtoull(min, NULL, 10) : PARALLEL_MIN_BYTES;
	if (threads < 2 || strcmp(path, "-") == 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < min_bytes)
		return pr_ingest_file(e, path, opt, on_reject, ctx, stats, err);
	int rc = pr_engine_drain(e);
	if (rc < 0)
		return pr_error_set(err, rc, "%s: out of memory applying records", path);

	struct run run = {
		.engine = e, .path = path, .opt = opt, .size = (uint64_t)st.st_size,
		.workers = threads, .keep_stores = pr_engine_options(e)->keep_stores,
		.base_volume = pr_engine_volume(e), .on_reject = on_reject, .ctx = ctx,
	};
	char *header = NULL;
	rc = read_header(&run, &header, err, &run.line_base);
	run.header = header;
	if (rc == 0)
		rc = setup(&run, err);
	if (rc != 0) {
		run_destroy(&run);
		free(header);
		if (rc < 0)
			return rc;
		return pr_ingest_file(e, path, opt, on_reject, ctx, stats, err);
	}

	unsigned started = 1;
	for (; started < run.workers; started++)
		if (pthread_create(&run.worker[started].thread, NULL, worker_run,
				   &run.worker[started]) != 0)
			break;
	bool all = started == run.workers;
	atomic_store_explicit(&run.go, all ? 1 : 2, memory_order_release);
	if (all)
		worker_run(&run.worker[0]);
	for (unsigned k = 1; k < started; k++)
		pthread_join(run.worker[k].thread, NULL);

	rc = 0;
	for (unsigned k = 0; k < run.workers && rc == 0; k++) {
		if (run.worker[k].rc < 0) {
			rc = run.worker[k].rc;
			*err = run.worker[k].err;
		}
	}
	uint64_t stop = atomic_load_explicit(&run.stop, memory_order_relaxed);
	if (rc == 0 && all) {
		struct pr_feed_stats sum = { .bytes = run.header_len };
		pr_feed_stats_add(&sum, &run.stats);
		if (stop < run.chunk_count) {
			/* A chunk had to be read as one thread reads it: from there on. */
			uint64_t start;
			rc = chunk_start(&run.worker[0], stop, &start);
			if (rc == 0)
				rc = read_tail(&run, start, run.line_base, &sum, err);
			else
				*err = run.worker[0].err;
		}
		if (rc == 0)
			pr_feed_stats_add(stats, &sum);
	}
	run_destroy(&run);
	free(header);
	if (rc == 0 && !all)
		return pr_ingest_file(e, path, opt, on_reject, ctx, stats, err);
	return rc;
}
