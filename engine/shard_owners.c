/*
 * shard_owners.c - owner threads applying a stream's records; see
 * shard_owners.h.
 *
 * Sleeping and waking. Each side that may sleep (the owner waiting for a
 * buffer, the server waiting for one back) has a futex word: 1 while it
 * sleeps or is about to. The sleeper exchanges 1 into it, then looks at
 * its ring again, and sleeps only while the word is still 1. The other
 * side, after each push, exchanges 0 into it and wakes the sleeper if it
 * read 1. Both exchanges are seq_cst read-modify-writes of one word, so
 * they are ordered: if the pusher's comes first, the sleeper's exchange
 * reads it and synchronizes with it (release, acquire), so the sleeper's
 * look at the ring sees the push; if the sleeper's comes first, the pusher
 * reads its 1 and wakes it (a wake before the futex call is not lost: the
 * call returns at once when the word is no longer 1). The sleeper puts
 * 0 back by an exchange too: with only read-modify-writes on the word,
 * every exchange after a push's is in that push's release sequence, so
 * "reads it and synchronizes with it" holds however many come between. No
 * fence is needed (ThreadSanitizer could not follow one).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_internal.h"
#include "shard_owners.h"
#include "spsc_ring.h"
#include "staged.h"

/* Staged bytes handed over at a time: a couple of hundred records, enough
 * for the engine's look-ahead, small enough that an owner starts on them
 * soon after the server starts a batch of feed bytes. */
#define BUFFER_BYTES ((size_t)8 << 10)
/* Buffers per owner: the server stays this far ahead at most (256 KiB).
 * Fewer stall every owner whenever one is behind: the server waits for
 * that one while the others run dry (10M records from a file on 2 threads:
 * 3.2-3.8 s with 8 buffers, 2.3-3.5 s with 32, no better with 64). */
#define BUFFERS 32
/* Before sleeping, a waiting thread looks again this many times, a pause
 * between (a microsecond or two). Not longer, and no sched_yield: the
 * server and N owners are more threads than cores on a small machine, and
 * a spinning thread takes the core the one it waits for needs (on this
 * 2-core VM, 256 spins and 16 yields took about a fifth more CPU at 10M
 * records). */
#define SPINS 32

/* The largest staged record (an id of 255 bytes) fits the smallest buffer. */
#define BUFFER_MIN_BYTES ((size_t)512)
_Static_assert(sizeof(struct pr_staged_record) + 256 <= BUFFER_MIN_BYTES,
	       "the largest staged record fits a buffer");

struct buffer {
	/* Written by the server before the handoff; the full ring's
	 * release/acquire makes it, and the records, visible to the owner. */
	size_t used;
	/* Written by the owner before it hands the buffer back; the done
	 * ring's release/acquire makes them visible to the server. */
	uint64_t dropped, dropped_volume_minor;
	int rc;
	/* A cut (pr_shard_owners_cut), or NULL: called by the owner once the
	 * buffer's records are applied. Written by the server before the
	 * handoff, like used. */
	pr_shard_owners_cut_fn *cut;
	void *cut_arg;
	/* A call (pr_shard_owners_call), or NULL: made after the cut, if
	 * any. Written like cut. */
	pr_shard_owners_call_fn *call;
	void *call_arg;
	alignas(64) unsigned char bytes[BUFFER_BYTES];
};

struct owner {
	/* Set before the thread starts, read-only after (thread: joined by
	 * the server). */
	struct pr_shard_owners *pool;
	pthread_t thread;
	bool started;
	struct pr_spsc_ring full; /* server -> owner: buffers to apply */
	struct pr_spsc_ring done; /* owner -> server: buffers applied */
	struct buffer *buffers[BUFFERS]; /* owned */
	unsigned index;           /* k: owner of the shards s % count == k */
	/* The owner's alone: whether it failed to apply a record (out of
	 * memory) since its last cut, for the next cut to say. */
	bool dropped_since_cut;

	/* The server's: read and written by the server only. */
	alignas(64) struct buffer *filling;  /* being staged into: never NULL between calls */
	struct buffer *spare[BUFFERS];       /* back from the owner, not filling */
	unsigned spare_count;
	unsigned out;                        /* handed over, not back yet */

	/* Futex words (see the top), each on its own line: 1 while the owner
	 * (owner_asleep) or the server waiting for this owner (server_asleep)
	 * sleeps or is about to. Set to 1 only by the sleeper, to 0 by either
	 * side, always by a seq_cst exchange. */
	alignas(64) _Atomic uint32_t owner_asleep;
	alignas(64) _Atomic uint32_t server_asleep;
};

struct pr_shard_owners {
	/* Set at start, read-only after. */
	struct pr_engine *engine;
	unsigned count;
	size_t buffer_bytes; /* BUFFER_BYTES, or less for tests (below) */
	struct owner *of_shard[PR_SHARDS];
	struct owner *owners; /* count of them; owned */
	/* Written once by the server, at stop, before it exchanges 0 into
	 * every owner_asleep; an owner loads it after its own exchange, which
	 * then reads the server's and synchronizes with it (or else the
	 * server wakes it), so relaxed would do; acquire costs nothing. */
	_Atomic bool stop;
	/* The server's alone. */
	bool staged;              /* anything staged since the last drain */
	uint64_t dropped, dropped_volume_minor;
	int rc;
};

/* Sleeps while *word is 1 (returns at once if it is not; EINTR and
 * spurious wakes are fine: callers look again). */
static void futex_sleep(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
}

/* Wakes the thread sleeping on *word, if it sleeps or is about to. */
static void wake(_Atomic uint32_t *word)
{
	if (atomic_exchange_explicit(word, 0, memory_order_seq_cst) == 1)
		syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- the owner's side ----------------------------------------------------- */

/* The next buffer to apply, sleeping while there is none; NULL at stop. */
static struct buffer *owner_next(struct owner *w)
{
	struct pr_shard_owners *pool = w->pool;
	for (unsigned idle = 0;; idle++) {
		struct buffer *b = pr_spsc_ring_pop(&w->full);
		if (b)
			return b;
		if (atomic_load_explicit(&pool->stop, memory_order_acquire))
			return NULL;
		if (idle < SPINS) {
			cpu_relax();
			continue;
		}
		atomic_exchange_explicit(&w->owner_asleep, 1, memory_order_seq_cst);
		if (pr_spsc_ring_empty(&w->full) && !atomic_load_explicit(&pool->stop, memory_order_acquire))
			futex_sleep(&w->owner_asleep);
		atomic_exchange_explicit(&w->owner_asleep, 0, memory_order_seq_cst);
		idle = 0;
	}
}

/* Buffers applied together at most, with one look-ahead that starts once
 * instead of once a buffer (RUN_BUFFERS x 8 KiB stays in the L2 cache).
 * paretod's ingest measured neither a gain nor a loss from it
 * (docs/ARCHITECTURE.md, "Apply threads in paretod"). */
#define RUN_BUFFERS 8

/* To the first buffer, the next ones already handed over, up to one that
 * carries a cut or a call (which must follow its records at once). */
static unsigned owner_take_run(struct owner *w, struct buffer **run)
{
	unsigned n = 1;
	while (n < RUN_BUFFERS && !run[n - 1]->cut && !run[n - 1]->call &&
	       (run[n] = pr_spsc_ring_pop(&w->full)))
		n++;
	return n;
}

static void *owner_run(void *arg)
{
	struct owner *w = arg;
	struct pr_engine *e = w->pool->engine;
	struct buffer *run[RUN_BUFFERS];
	while ((run[0] = owner_next(w))) {
		unsigned n = owner_take_run(w, run);
		struct pr_staged_run records[RUN_BUFFERS];
		for (unsigned i = 0; i < n; i++) {
			run[i]->dropped = run[i]->dropped_volume_minor = 0;
			run[i]->rc = 0;
			records[i] = (struct pr_staged_run){ run[i]->bytes, run[i]->bytes + run[i]->used, NULL };
		}
		/* What failed counts in the last buffer: the server sums them
		 * all, and a cut can only be in the last. */
		struct buffer *b = run[n - 1];
		b->rc = pr_engine_apply_queued(e, records, n, &b->dropped, &b->dropped_volume_minor);
		w->dropped_since_cut |= b->dropped > 0 || b->rc < 0;
		if (b->cut) {
			b->cut(b->cut_arg, w->index, w->pool->count, w->dropped_since_cut);
			w->dropped_since_cut = false;
		}
		if (b->call)
			b->call(b->call_arg);
		/* Cannot fail: the ring has a slot for every buffer. */
		for (unsigned i = 0; i < n; i++)
			pr_spsc_ring_push(&w->done, run[i]);
		wake(&w->server_asleep);
	}
	return NULL;
}

/* ---- the server's side ---------------------------------------------------- */

static void hand_over(struct owner *w, struct buffer *b)
{
	/* Cannot fail: the ring has a slot for every buffer. */
	pr_spsc_ring_push(&w->full, b);
	w->out++;
	wake(&w->owner_asleep);
}

/* A buffer the owner has applied, waiting for one if none is back yet. */
static struct buffer *wait_back(struct owner *w)
{
	for (unsigned idle = 0;; idle++) {
		struct buffer *b = pr_spsc_ring_pop(&w->done);
		if (b)
			return b;
		if (idle < SPINS) {
			cpu_relax();
			continue;
		}
		atomic_exchange_explicit(&w->server_asleep, 1, memory_order_seq_cst);
		if (pr_spsc_ring_empty(&w->done))
			futex_sleep(&w->server_asleep);
		atomic_exchange_explicit(&w->server_asleep, 0, memory_order_seq_cst);
		idle = 0;
	}
}

/* Takes an applied buffer back: its failures noted, the buffer spare. */
static void take_back(struct pr_shard_owners *o, struct owner *w, struct buffer *b)
{
	assert(w->out > 0 && w->spare_count < BUFFERS);
	o->dropped += b->dropped;
	o->dropped_volume_minor += b->dropped_volume_minor;
	if (b->rc < 0)
		o->rc = b->rc;
	b->used = 0;
	b->cut = NULL;
	b->call = NULL;
	w->spare[w->spare_count++] = b;
	w->out--;
}

/* Hands the buffer being filled over and makes another the one filled:
 * those already back first; waits only when none is. */
static struct buffer *next_filling(struct pr_shard_owners *o, struct owner *w)
{
	hand_over(w, w->filling);
	struct buffer *back;
	while ((back = pr_spsc_ring_pop(&w->done)))
		take_back(o, w, back);
	if (!w->spare_count)
		take_back(o, w, wait_back(w));
	return w->filling = w->spare[--w->spare_count];
}

unsigned char *pr_shard_owners_stage(struct pr_shard_owners *o, uint32_t shard, size_t bytes)
{
	struct owner *w = o->of_shard[shard];
	struct buffer *b = w->filling;
	assert(bytes <= o->buffer_bytes && bytes % 8 == 0);
	if (b->used + bytes > o->buffer_bytes)
		b = next_filling(o, w);
	o->staged = true;
	unsigned char *at = b->bytes + b->used;
	b->used += bytes;
	return at;
}

int pr_shard_owners_drain(struct pr_shard_owners *o, uint64_t *dropped,
			  uint64_t *dropped_volume_minor)
{
	*dropped = *dropped_volume_minor = 0;
	if (!o->staged)
		return 0;
	/* Every owner gets its last buffer before any is waited for, so
	 * they finish together. */
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		if (w->filling->used) {
			hand_over(w, w->filling);
			w->filling = NULL;
		}
	}
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		while (w->out)
			take_back(o, w, wait_back(w));
		if (!w->filling)
			w->filling = w->spare[--w->spare_count];
	}
	*dropped = o->dropped;
	*dropped_volume_minor = o->dropped_volume_minor;
	int rc = o->rc;
	o->dropped = o->dropped_volume_minor = 0;
	o->rc = 0;
	o->staged = false;
	return rc;
}

void pr_shard_owners_call(struct pr_shard_owners *o, uint32_t shard, pr_shard_owners_call_fn *fn,
			  void *arg)
{
	struct owner *w = o->of_shard[shard];
	w->filling->call = fn;
	w->filling->call_arg = arg;
	next_filling(o, w);
	o->staged = true; /* the call is in the owner's hands until a drain */
}

void pr_shard_owners_cut(struct pr_shard_owners *o, pr_shard_owners_cut_fn *cut, void *arg)
{
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		struct buffer *b = w->filling;
		b->cut = cut;
		b->cut_arg = arg;
		next_filling(o, w);
	}
	o->staged = true; /* the shards are in the owners' hands until a drain */
}

bool pr_shard_owners_staged(const struct pr_shard_owners *o)
{
	return o->staged;
}

unsigned pr_shard_owners_count(const struct pr_shard_owners *o)
{
	return o->count;
}

/* ---- start and stop ------------------------------------------------------- */

void pr_shard_owners_stop(struct pr_shard_owners *o)
{
	if (!o)
		return;
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		while (w->started && w->out)
			take_back(o, w, wait_back(w));
	}
	atomic_store_explicit(&o->stop, true, memory_order_release);
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		if (!w->started)
			continue;
		wake(&w->owner_asleep); /* if it sleeps; else it finds stop set */
		pthread_join(w->thread, NULL);
	}
	for (unsigned k = 0; k < o->count; k++) {
		struct owner *w = &o->owners[k];
		for (unsigned i = 0; i < BUFFERS; i++)
			free(w->buffers[i]);
		pr_spsc_ring_destroy(&w->full);
		pr_spsc_ring_destroy(&w->done);
	}
	free(o->owners);
	free(o);
}

int pr_shard_owners_start(struct pr_shard_owners **out, struct pr_engine *e, unsigned threads)
{
	if (threads < 2 || threads > PR_SHARD_OWNERS_MAX)
		return -EINVAL;
	struct pr_shard_owners *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->engine = e;
	o->count = threads;
	/* Test hook: smaller buffers, so that a small feed fills buffers,
	 * hands them over and waits for owners as a large one does. */
	o->buffer_bytes = BUFFER_BYTES;
	const char *hook = getenv("PARETO_APPLY_BUFFER_BYTES");
	if (hook && *hook) {
		unsigned long v = strtoul(hook, NULL, 10);
		o->buffer_bytes = v < BUFFER_MIN_BYTES ? BUFFER_MIN_BYTES : v < BUFFER_BYTES ? v : BUFFER_BYTES;
	}
	atomic_init(&o->stop, false);
	if (posix_memalign((void **)&o->owners, 64, threads * sizeof *o->owners) != 0) {
		free(o);
		return -ENOMEM;
	}
	memset(o->owners, 0, threads * sizeof *o->owners);
	int rc = 0;
	for (unsigned k = 0; k < threads && rc == 0; k++) {
		struct owner *w = &o->owners[k];
		w->pool = o;
		w->index = k;
		atomic_init(&w->owner_asleep, 0);
		atomic_init(&w->server_asleep, 0);
		if (pr_spsc_ring_init(&w->full, BUFFERS) < 0 || pr_spsc_ring_init(&w->done, BUFFERS) < 0)
			rc = -ENOMEM;
		for (unsigned i = 0; i < BUFFERS && rc == 0; i++) {
			if (posix_memalign((void **)&w->buffers[i], 64, sizeof *w->buffers[i]) != 0) {
				w->buffers[i] = NULL;
				rc = -ENOMEM;
			} else {
				w->buffers[i]->used = 0;
				w->buffers[i]->cut = NULL;
				w->buffers[i]->call = NULL;
			}
		}
		if (rc == 0) {
			w->filling = w->buffers[0];
			for (unsigned i = 1; i < BUFFERS; i++)
				w->spare[w->spare_count++] = w->buffers[i];
		}
	}
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		o->of_shard[s] = &o->owners[s % threads];
	/* Owners take no signals (a new thread inherits the creator's mask):
	 * paretod reads its signals through a signalfd on the server thread,
	 * and blocks them only after the engine is made. */
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	for (unsigned k = 0; k < threads && rc == 0; k++) {
		struct owner *w = &o->owners[k];
		int err = pthread_create(&w->thread, NULL, owner_run, w);
		if (err) {
			rc = -err;
			break;
		}
		w->started = true;
		char name[16];
		snprintf(name, sizeof name, "pareto-apply%u", k);
		pthread_setname_np(w->thread, name);
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rc < 0) {
		pr_shard_owners_stop(o);
		return rc;
	}
	*out = o;
	return 0;
}
