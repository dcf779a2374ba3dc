/* persistence.c - paretod's checkpoints; see persistence.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "persistence.h"
#include "producers.h"
#include "test_hooks.h"
#include "timeparse.h"

/* 2: the producers' next record after the positions (1: none). */
#define BLOB_VERSION 2

/* What a checkpoint reflects, taken when it starts. */
struct snapshot {
	const char *why;            /* for the log */
	char *blob;                 /* owned: scale, counters, positions */
	size_t len, positions;
	uint64_t records, customers;
	uint64_t lines, bytes;      /* the feeds' counters then, for changed() */
	size_t producers;           /* s->producers' first ones then, and */
	uint64_t *next;             /* owned: their next record then */
};

/*
 * A checkpoint written on a thread of its own (pr_persist_start). Until it
 * has read the engine nothing writes it: the server thread stops decoding
 * feeds and cutting the ranker's batches (pr_persist_writing), and
 * whatever else would write it waits (pr_persist_wait_engine). The thread
 * sets released (release) once the engine's bytes are written, before the
 * fsync, and the server goes on (acquire). It writes rc, st and err, then
 * sets done (release); the server reads them after loading done (acquire)
 * or after the join.
 */
struct background {
	pthread_t thread;
	struct pr_engine *engine;
	const char *path;
	struct snapshot snap;
	int rc;
	struct pr_checkpoint_stats st;
	struct pr_error err;
	_Atomic bool released, done;
};

struct pr_persistence {
	struct background *writing; /* the checkpoint being written, or NULL */
	int64_t next_ms;            /* monotonic: the next periodic checkpoint */
	bool skip_final;            /* SHUTDOWN NOSAVE */
	/* the last checkpoint written */
	uint64_t saves, failures;
	bool attempted, last_ok;
	int64_t last_wall_ms;       /* of the last success */
	int64_t last_us, last_sync_us;
	uint64_t last_bytes;
	char last_error[sizeof ((struct pr_error *)0)->message];
	uint64_t saved_records, saved_lines, saved_bytes; /* what it reflected */
	/* the checkpoint read at start */
	bool loaded;
	int64_t load_us;
	uint64_t load_bytes, loaded_records;
	char *blob;                 /* owned: positions point into it */
	struct pr_feed_position *positions; /* owned */
	bool *used;                 /* owned: a feed took the position */
	size_t position_count;
	bool unused_told;
};

/* ---- the blob: scale, counters, positions ---------------------------------- */

struct out {
	char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct out *o, const void *bytes, size_t n)
{
	if (o->failed || !n)
		return;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 1024;
		while (cap < o->len + n)
			cap *= 2;
		char *bigger = realloc(o->p, cap);
		if (!bigger) {
			o->failed = true;
			return;
		}
		o->p = bigger;
		o->cap = cap;
	}
	memcpy(o->p + o->len, bytes, n);
	o->len += n;
}

static void put_u32(struct out *o, uint32_t v)
{
	put(o, &v, sizeof v);
}

static void put_u64(struct out *o, uint64_t v)
{
	put(o, &v, sizeof v);
}

struct in {
	const char *p, *end;
	bool bad;
};

static const char *take(struct in *in, size_t n)
{
	if (in->bad || n > (size_t)(in->end - in->p)) {
		in->bad = true;
		return NULL;
	}
	const char *at = in->p;
	in->p += n;
	return at;
}

static uint32_t take_u32(struct in *in)
{
	uint32_t v = 0;
	const char *p = take(in, sizeof v);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t take_u64(struct in *in)
{
	uint64_t v = 0;
	const char *p = take(in, sizeof v);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

static void put_stats(struct out *o, const struct pr_feed_stats *st)
{
	put_u32(o, PR_REJECT_REASON_COUNT);
	put_u64(o, st->bytes);
	put_u64(o, st->lines);
	put_u64(o, st->records);
	put_u64(o, st->rejected);
	put_u64(o, st->rounded);
	for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
		put_u64(o, st->by_reason[r]);
}

static void take_stats(struct in *in, struct pr_feed_stats *st)
{
	uint32_t reasons = take_u32(in);
	if (reasons != PR_REJECT_REASON_COUNT) {
		in->bad = true; /* reasons are only ever added with a new BLOB_VERSION */
		return;
	}
	memset(st, 0, sizeof *st);
	st->bytes = take_u64(in);
	st->lines = take_u64(in);
	st->records = take_u64(in);
	st->rejected = take_u64(in);
	st->rounded = take_u64(in);
	for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
		st->by_reason[r] = take_u64(in);
}

/* ---- life ----------------------------------------------------------------- */

static int decode_blob(struct pr_server *s, struct pr_persistence *p, size_t len,
		       struct pr_error *err)
{
	const char *path = s->opt.checkpoint_path;
	struct in in = { p->blob, p->blob + len, false };
	uint32_t version = take_u32(&in);
	uint32_t scale = take_u32(&in);
	if (!in.bad && (version < 1 || version > BLOB_VERSION))
		return pr_error_set(err, -EINVAL, "%s: the daemon's part is of version %u, this "
				    "build reads 1 to %u", path, version, BLOB_VERSION);
	if (!in.bad && scale != s->opt.feed.scale)
		return pr_error_set(err, -EINVAL, "%s: written with --scale %u, and this start has "
				    "--scale %u: amounts in minor units would not add up", path,
				    scale, s->opt.feed.scale);
	struct pr_feed_stats stats;
	take_stats(&in, &stats);
	uint64_t truncated = take_u64(&in);
	uint32_t n = take_u32(&in);
	if (!in.bad && n > len / 16)
		in.bad = true;
	if (!in.bad && n) {
		p->positions = calloc(n, sizeof *p->positions);
		p->used = calloc(n, sizeof *p->used);
		if (!p->positions || !p->used)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", path);
	}
	for (uint32_t i = 0; i < n && !in.bad; i++) {
		struct pr_feed_position *fp = &p->positions[i];
		uint32_t source_len = take_u32(&in);
		fp->source = take(&in, source_len);
		if (!in.bad && (source_len == 0 || fp->source[source_len - 1] != 0))
			in.bad = true; /* stored with its NUL */
		fp->header_len = take_u32(&in);
		fp->header = take(&in, fp->header_len);
		fp->offset = take_u64(&in);
		fp->line = take_u64(&in);
		fp->dev = take_u64(&in);
		fp->ino = take_u64(&in);
		fp->head_hash = take_u64(&in);
		fp->tail_hash = take_u64(&in);
	}
	uint32_t producers = version >= 2 ? take_u32(&in) : 0;
	if (!in.bad && producers > len / 16)
		in.bad = true;
	for (uint32_t i = 0; i < producers && !in.bad; i++) {
		uint32_t name_len = take_u32(&in);
		const char *name = take(&in, name_len);
		uint64_t next = take_u64(&in);
		if (in.bad || name_len < 2 || name_len > PR_PRODUCER_NAME_MAX + 1 ||
		    name[name_len - 1] != 0 || strlen(name) != name_len - 1 || next == 0 ||
		    pr_producers_find(&s->producers, name)) {
			in.bad = true;
			break;
		}
		struct pr_producer *pp = pr_producers_add(&s->producers, name, next);
		if (!pp)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", path);
		pp->saved = next;
	}
	if (in.bad || in.p != in.end)
		return pr_error_set(err, -EINVAL, "%s: corrupt checkpoint: the daemon's part "
				    "(counters and feed positions) does not parse", path);
	p->position_count = n;
	s->stats = stats;
	s->truncated_disconnects = truncated;
	return 0;
}

int pr_persist_open(struct pr_server *s, struct pr_error *err)
{
	const char *path = s->opt.checkpoint_path;
	if (!path)
		return 0;
	struct pr_persistence *p = calloc(1, sizeof *p);
	if (!p)
		return pr_error_set(err, -ENOMEM, "out of memory");
	s->persist = p;
	p->next_ms = pr_server_now_ms() + (int64_t)s->opt.checkpoint_interval_s * 1000;
	struct pr_engine *e;
	void *blob;
	size_t len;
	struct pr_checkpoint_stats st;
	int rc = pr_checkpoint_read(path, &s->opt.engine, &e, &blob, &len, &st, err);
	if (rc == -ENOENT) {
		/* Saves write PATH.tmp beside it: find out now if they cannot. */
		char *copy = strdup(path);
		const char *dir = copy ? dirname(copy) : ".";
		int ok = access(dir, W_OK | X_OK);
		int why = errno;
		if (ok < 0) {
			rc = pr_error_set(err, -why, "%s: cannot write checkpoints in %s: %s", path, dir,
					  strerror(why));
			free(copy);
			return rc;
		}
		free(copy);
		pr_log("checkpoint %s: none yet; starting empty", path);
		return 0;
	}
	if (rc < 0) {
		char why[sizeof err->message];
		snprintf(why, sizeof why, "%s", err->message);
		return pr_error_set(err, rc, "%s (move it away to start without it)", why);
	}
	p->blob = blob;
	if ((rc = decode_blob(s, p, len, err)) < 0) {
		pr_engine_destroy(e);
		return rc;
	}
	pr_engine_destroy(s->engine);
	s->engine = e;
	struct pr_engine_state es;
	pr_engine_state(e, &es);
	p->loaded = true;
	p->load_us = st.write_us;
	p->load_bytes = st.bytes;
	p->loaded_records = es.records;
	p->saved_records = es.records;
	p->saved_lines = s->stats.lines;
	p->saved_bytes = s->stats.bytes;
	char when[32];
	pr_time_format(st.written_ms, when);
	pr_log("checkpoint %s: loaded %llu records, %llu customers, %zu feed positions "
	       "(%llu bytes written %s) in %.1f ms", path, (unsigned long long)es.records,
	       (unsigned long long)es.customers, p->position_count,
	       (unsigned long long)st.bytes, when, (double)st.write_us / 1000.0);
	for (size_t i = 0; i < s->opt.feed_count; i++) {
		const char *f = s->opt.feeds[i];
		if (strcmp(f, "-") == 0 || strncmp(f, "unix:", 5) == 0 || strncmp(f, "tcp:", 4) == 0)
			pr_log("%s: a stream has no position to resume: what it sends now is added to "
			       "the checkpoint's totals (producers that name themselves, "
			       "#pareto-producer, have theirs skipped up to INFO producers' saved)", f);
	}
	return 0;
}

const struct pr_feed_position *pr_persist_position(struct pr_server *s, const char *source)
{
	struct pr_persistence *p = s->persist;
	for (size_t i = 0; p && i < p->position_count; i++) {
		if (!p->used[i] && strcmp(p->positions[i].source, source) == 0) {
			p->used[i] = true;
			return &p->positions[i];
		}
	}
	return NULL;
}

/*
 * What a checkpoint of now holds besides the engine: the queued records
 * applied, every feed's position and the counters as of them. 0, or
 * -ENOMEM with *err.
 */
static int snapshot_take(struct pr_server *s, const char *why, struct snapshot *snap,
			 struct pr_error *err)
{
	pr_server_drain(s);
	struct pr_feed_position positions[PR_SERVER_MAX_FEEDS];
	size_t n = pr_feeds_positions(s, positions, PR_SERVER_MAX_FEEDS);
	if (n > PR_SERVER_MAX_FEEDS)
		n = PR_SERVER_MAX_FEEDS; /* cannot happen: one position per --feed */
	/* The counters as of the positions: bytes decoded past them are read
	 * again after a restart, and counted then. */
	struct pr_feed_stats stats;
	pr_server_stats(s, &stats);
	uint64_t bytes_now = stats.bytes; /* for changed() */
	for (size_t i = 0; i < n; i++)
		stats.bytes -= positions[i].pending_bytes < stats.bytes ? positions[i].pending_bytes
									: stats.bytes;
	struct out o = { 0 };
	put_u32(&o, BLOB_VERSION);
	put_u32(&o, s->opt.feed.scale);
	put_stats(&o, &stats);
	put_u64(&o, s->truncated_disconnects);
	put_u32(&o, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const struct pr_feed_position *fp = &positions[i];
		put_u32(&o, (uint32_t)strlen(fp->source) + 1);
		put(&o, fp->source, strlen(fp->source) + 1);
		put_u32(&o, fp->header_len);
		put(&o, fp->header, fp->header_len);
		put_u64(&o, fp->offset);
		put_u64(&o, fp->line);
		put_u64(&o, fp->dev);
		put_u64(&o, fp->ino);
		put_u64(&o, fp->head_hash);
		put_u64(&o, fp->tail_hash);
	}
	const struct pr_producers *t = &s->producers;
	uint64_t *next = malloc((t->count ? t->count : 1) * sizeof *next);
	put_u32(&o, (uint32_t)t->count);
	for (size_t i = 0; i < t->count; i++) {
		put_u32(&o, (uint32_t)strlen(t->items[i].name) + 1);
		put(&o, t->items[i].name, strlen(t->items[i].name) + 1);
		put_u64(&o, t->items[i].next);
		if (next)
			next[i] = t->items[i].next;
	}
	struct pr_engine_state es;
	pr_engine_state(s->engine, &es);
	*snap = (struct snapshot){ .why = why, .blob = o.p, .len = o.len, .positions = n,
				   .records = es.records, .customers = es.customers,
				   .lines = stats.lines, .bytes = bytes_now,
				   .producers = t->count, .next = next };
	if (o.failed || !next) {
		free(o.p);
		free(next);
		snap->blob = NULL;
		snap->next = NULL;
		return pr_error_set(err, -ENOMEM, "%s: out of memory", s->opt.checkpoint_path);
	}
	return 0;
}

/* Notes how the checkpoint of snap went, and logs it; frees its blob. */
static int snapshot_done(struct pr_server *s, struct snapshot *snap, int rc,
			 const struct pr_checkpoint_stats *st, const struct pr_error *err)
{
	struct pr_persistence *p = s->persist;
	const char *path = s->opt.checkpoint_path;
	free(snap->blob);
	snap->blob = NULL;
	if (rc == 0) /* what producers may now forget: the checkpoint holds it */
		for (size_t i = 0; i < snap->producers; i++)
			s->producers.items[i].saved = snap->next[i];
	free(snap->next);
	snap->next = NULL;
	if (rc < 0) {
		p->failures++;
		p->last_ok = false;
		snprintf(p->last_error, sizeof p->last_error, "%s", err->message);
		pr_log("checkpoint (%s) failed: %s", snap->why, err->message);
		return rc;
	}
	p->saves++;
	p->last_ok = true;
	p->last_error[0] = 0;
	p->last_wall_ms = st->written_ms;
	p->last_us = st->write_us;
	p->last_sync_us = st->sync_us;
	p->last_bytes = st->bytes;
	p->saved_records = snap->records;
	p->saved_lines = snap->lines;
	p->saved_bytes = snap->bytes;
	pr_log("checkpoint (%s): %s: %llu records, %llu customers, %zu feed positions, %llu bytes "
	       "in %.1f ms (fsync %.1f ms)", snap->why, path, (unsigned long long)snap->records,
	       (unsigned long long)snap->customers, snap->positions, (unsigned long long)st->bytes,
	       (double)st->write_us / 1000.0, (double)st->sync_us / 1000.0);
	return 0;
}

/* Joins the checkpoint thread and notes its result. */
static void background_finish(struct pr_server *s)
{
	struct pr_persistence *p = s->persist;
	struct background *b = p->writing;
	pthread_join(b->thread, NULL);
	p->writing = NULL;
	snapshot_done(s, &b->snap, b->rc, &b->st, &b->err);
	free(b);
}

void pr_persist_wait(struct pr_server *s)
{
	if (s->persist && s->persist->writing)
		background_finish(s);
}

bool pr_persist_writing(const struct pr_server *s)
{
	const struct background *b = s->persist ? s->persist->writing : NULL;
	return b && !atomic_load_explicit(&b->released, memory_order_acquire);
}

void pr_persist_wait_engine(struct pr_server *s)
{
	/* The thread is writing the engine's bytes: about a second per GB. */
	while (pr_persist_writing(s)) {
		if (atomic_load_explicit(&s->persist->writing->done, memory_order_acquire)) {
			background_finish(s);
			return;
		}
		nanosleep(&(struct timespec){ 0, 200000 }, NULL);
	}
}

static int checkpoint_path_missing(struct pr_error *err)
{
	return pr_error_set(err, -ENOENT, "no checkpoint file: start paretod with "
			    "--checkpoint PATH");
}

/* A checkpoint begins: the next periodic one is an interval away, and
 * snap gets what this one holds (or the failure is noted). */
static int checkpoint_begin(struct pr_server *s, const char *why, struct snapshot *snap,
			    struct pr_error *err)
{
	struct pr_persistence *p = s->persist;
	p->attempted = true;
	p->next_ms = pr_server_now_ms() + (int64_t)s->opt.checkpoint_interval_s * 1000;
	int rc = snapshot_take(s, why, snap, err);
	if (rc < 0)
		snapshot_done(s, snap, rc, NULL, err);
	return rc;
}

/* Writes snap's checkpoint on the server thread and notes how it went. */
static int write_here(struct pr_server *s, struct snapshot *snap, struct pr_error *err)
{
	struct pr_checkpoint_stats st = { 0 };
	int rc = pr_checkpoint_write(s->engine, s->opt.checkpoint_path, snap->blob, snap->len,
				     &st, err);
	return snapshot_done(s, snap, rc, &st, err);
}

int pr_persist_save(struct pr_server *s, const char *why, struct pr_error *err)
{
	struct pr_persistence *p = s->persist;
	const char *path = s->opt.checkpoint_path;
	if (!p || !path)
		return checkpoint_path_missing(err);
	pr_persist_wait(s);
	struct snapshot snap;
	int rc = checkpoint_begin(s, why, &snap, err);
	return rc < 0 ? rc : write_here(s, &snap, err);
}

static void *background_run(void *arg)
{
	struct background *b = arg;
	/* A write that takes longer, so that a test sees the server answer
	 * and hold its feeds meanwhile. */
	pr_test_hook_pause("PARETO_CHECKPOINT_DELAY_MS");
	b->rc = pr_checkpoint_write_releasing(b->engine, b->path, b->snap.blob, b->snap.len,
					      &b->st, &b->err, &b->released);
	/* A file that takes longer after the engine is released (a slow
	 * fsync), so that a test sees ingest go on meanwhile. */
	pr_test_hook_pause("PARETO_CHECKPOINT_DONE_DELAY_MS");
	atomic_store_explicit(&b->done, true, memory_order_release);
	return NULL;
}

int pr_persist_start(struct pr_server *s, const char *why, struct pr_error *err)
{
	struct pr_persistence *p = s->persist;
	const char *path = s->opt.checkpoint_path;
	if (!p || !path)
		return checkpoint_path_missing(err);
	if (p->writing)
		return pr_error_set(err, -EBUSY, "a checkpoint is being written already");
	struct background *b = calloc(1, sizeof *b);
	if (!b)
		return pr_error_set(err, -ENOMEM, "%s: out of memory", path);
	int rc = checkpoint_begin(s, why, &b->snap, err);
	if (rc < 0) {
		free(b);
		return rc;
	}
	b->engine = s->engine;
	b->path = path;
	atomic_init(&b->released, false);
	atomic_init(&b->done, false);
	/* The thread inherits the server thread's mask: every signal blocked
	 * (paretod reads them through its signalfd). */
	int e = pthread_create(&b->thread, NULL, background_run, b);
	if (e != 0) {
		rc = write_here(s, &b->snap, err); /* no thread: as SAVE does */
		free(b);
		return rc;
	}
	pthread_setname_np(b->thread, "pareto-ckpt");
	p->writing = b;
	return 0;
}

/* Anything to write: records applied, or feed lines or bytes read. */
static bool changed(struct pr_server *s)
{
	const struct pr_persistence *p = s->persist;
	struct pr_engine_state es;
	pr_engine_state(s->engine, &es);
	struct pr_feed_stats fs;
	pr_server_stats(s, &fs);
	return es.records != p->saved_records || fs.lines != p->saved_lines ||
	       fs.bytes != p->saved_bytes;
}

void pr_persist_tick(struct pr_server *s, int64_t now_ms)
{
	struct pr_persistence *p = s->persist;
	if (!p)
		return;
	if (!p->unused_told) {
		p->unused_told = true; /* every feed is open by the first turn */
		for (size_t i = 0; i < p->position_count; i++)
			if (!p->used[i])
				pr_log("checkpoint: %s had a position, but is not a --feed now: "
				       "dropped at the next checkpoint", p->positions[i].source);
	}
	if (p->writing) {
		if (atomic_load_explicit(&p->writing->done, memory_order_acquire))
			background_finish(s);
		return;
	}
	if (!s->opt.checkpoint_interval_s || now_ms < p->next_ms)
		return;
	pr_server_drain(s); /* changed() reads the engine */
	if (!changed(s)) {
		p->next_ms = now_ms + (int64_t)s->opt.checkpoint_interval_s * 1000;
		return;
	}
	struct pr_error err = { 0 };
	pr_persist_start(s, "periodic", &err);
}

int pr_persist_final(struct pr_server *s, struct pr_error *err)
{
	pr_persist_wait(s);
	if (!s->persist || s->persist->skip_final)
		return 0;
	return pr_persist_save(s, "at stop", err);
}

void pr_persist_skip_final(struct pr_server *s)
{
	if (s->persist)
		s->persist->skip_final = true;
}

void pr_persist_command_bgsave(struct pr_server *s, struct pr_client *c,
			       const struct pr_resp_command *cmd)
{
	(void)cmd;
	struct pr_error err = { 0 };
	pr_log("client %llu: BGSAVE", (unsigned long long)c->id);
	if (pr_persist_start(s, "BGSAVE", &err) < 0)
		pr_resp_error(&c->out, "ERR %s", err.message);
	else
		pr_resp_simple(&c->out, "Background saving started");
}

void pr_persist_command_save(struct pr_server *s, struct pr_client *c,
			     const struct pr_resp_command *cmd)
{
	(void)cmd;
	struct pr_error err = { 0 };
	pr_log("client %llu: SAVE", (unsigned long long)c->id);
	if (pr_persist_save(s, "SAVE", &err) < 0)
		pr_resp_error(&c->out, "ERR %s", err.message);
	else
		pr_resp_simple(&c->out, "OK");
}

size_t pr_persist_info(const struct pr_server *s, char *out, size_t size)
{
	const struct pr_persistence *p = s->persist;
	int n;
	if (!p) {
		n = snprintf(out, size, "# Persistence\r\ncheckpoint_path:\r\n\r\n");
	} else {
		struct pr_engine_state es;
		pr_engine_state(s->engine, &es);
		n = snprintf(out, size,
			     "# Persistence\r\ncheckpoint_path:%s\r\ncheckpoint_interval_s:%u\r\n"
			     "checkpoint_loaded:%d\r\ncheckpoint_loaded_records:%llu\r\n"
			     "checkpoint_load_ms:%.1f\r\ncheckpoint_load_bytes:%llu\r\n"
			     "checkpoint_in_progress:%d\r\n"
			     "checkpoints_saved:%llu\r\ncheckpoint_failures:%llu\r\n"
			     "last_checkpoint_status:%s\r\nlast_checkpoint_time:%lld\r\n"
			     "last_checkpoint_ms:%.1f\r\nlast_checkpoint_fsync_ms:%.1f\r\n"
			     "last_checkpoint_bytes:%llu\r\nrecords_since_last_checkpoint:%llu\r\n"
			     "last_checkpoint_error:%s\r\n\r\n",
			     s->opt.checkpoint_path, s->opt.checkpoint_interval_s, p->loaded ? 1 : 0,
			     (unsigned long long)p->loaded_records, (double)p->load_us / 1000.0,
			     (unsigned long long)p->load_bytes, p->writing ? 1 : 0,
			     (unsigned long long)p->saves,
			     (unsigned long long)p->failures,
			     !p->attempted ? "none" : p->last_ok ? "ok" : "err",
			     (long long)(p->last_wall_ms / 1000), (double)p->last_us / 1000.0,
			     (double)p->last_sync_us / 1000.0, (unsigned long long)p->last_bytes,
			     (unsigned long long)(es.records - p->saved_records), p->last_error);
	}
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

size_t pr_persist_metrics(const struct pr_server *s, char *out, size_t size)
{
	const struct pr_persistence *p = s->persist;
	if (!p || !size) {
		if (size)
			*out = 0;
		return 0;
	}
	int n = snprintf(out, size,
			 "# HELP pareto_checkpoints_total Checkpoints written.\n"
			 "# TYPE pareto_checkpoints_total counter\npareto_checkpoints_total %llu\n"
			 "# HELP pareto_checkpoint_failures_total Checkpoints that could not be written.\n"
			 "# TYPE pareto_checkpoint_failures_total counter\n"
			 "pareto_checkpoint_failures_total %llu\n"
			 "# HELP pareto_checkpoint_last_success_timestamp_seconds When the last "
			 "checkpoint was written, seconds since 1970 UTC (0: never).\n"
			 "# TYPE pareto_checkpoint_last_success_timestamp_seconds gauge\n"
			 "pareto_checkpoint_last_success_timestamp_seconds %.3f\n"
			 "# HELP pareto_checkpoint_last_duration_seconds How long the last checkpoint "
			 "took to write, fsync included (ingest waits meanwhile).\n"
			 "# TYPE pareto_checkpoint_last_duration_seconds gauge\n"
			 "pareto_checkpoint_last_duration_seconds %.6f\n"
			 "# HELP pareto_checkpoint_last_size_bytes Size of the last checkpoint.\n"
			 "# TYPE pareto_checkpoint_last_size_bytes gauge\n"
			 "pareto_checkpoint_last_size_bytes %llu\n",
			 (unsigned long long)p->saves, (unsigned long long)p->failures,
			 (double)p->last_wall_ms / 1000.0, (double)p->last_us / 1e6,
			 (unsigned long long)p->last_bytes);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

void pr_persist_destroy(struct pr_server *s)
{
	struct pr_persistence *p = s->persist;
	if (!p)
		return;
	pr_persist_wait(s);
	free(p->blob);
	free(p->positions);
	free(p->used);
	free(p);
	s->persist = NULL;
}
