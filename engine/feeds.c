/*
 * feeds.c - paretod's feed sources; see feeds.h.
 *
 * Every read, accept and timer goes through the server's ring with a
 * struct pr_server_op embedded in the feed. A feed is in one of these
 * states: reading (one read or accept in flight), ready (its buffer holds
 * bytes not yet decoded, in s->ready), waiting (a followed file at its end:
 * an inotify event or the poll timer starts the next read), or ended. A
 * buffer is refilled only after it is decoded, so the kernel never writes
 * into bytes the decoder is reading.
 *
 * Followed files: inotify watches the file's directory (not the file), so
 * the same watch reports appends to the file, truncation, and a new file
 * created or renamed under the name. Metadata checks (stat of the path,
 * fstat of the open file) run only when a read finds the end, a few
 * microseconds on a local file system.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "decoder.h"
#include "feeds.h"
#include "pareto/record.h"
#include "persistence.h"
#include "producers.h"

enum feed_kind { FEED_FILE, FEED_FOLLOW, FEED_LISTENER, FEED_PRODUCER };

#define FEED_FILE_BUFFER (256u * 1024)
#define FEED_PRODUCER_BUFFER (64u * 1024)
#define FOLLOW_HEADER_MAX 4096
/* Without inotify a followed file is polled: well inside the promised 10 ms. */
#define FOLLOW_POLL_MS 5
/* With inotify, a slow poll still runs for writers inotify does not see
 * (another machine writing to a network file system). */
#define FOLLOW_SAFETY_POLL_MS 1000

struct pr_feed {
	struct pr_server_op read_op;  /* read, recv or accept */
	struct pr_server_op timer_op; /* followed file: the poll timer; listener:
	                               * the pause after running out of descriptors */
	enum feed_kind kind;
	struct pr_feed *next;       /* the server's list */
	struct pr_feed *next_ready; /* the ready queue */
	bool queued;
	char *name;                 /* owned: as given, or "unix:PATH#n" */
	char *socket_path;          /* owned: listener's socket file (removed at exit) */
	int fd;                     /* -1: closed, or a followed file not there yet */
	bool seekable, tcp;
	uint64_t offset;
	struct pr_decoder *decoder; /* owned; NULL for a listener */
	char *buf;                  /* owned */
	size_t cap, len, pos;       /* bytes [pos, len) wait to be decoded */
	bool read_inflight, ended, dead;
	uint64_t shown;             /* rejects described on stderr */
	uint64_t producers;         /* listener: connections accepted */
	struct sockaddr_storage peer; /* listener: the accept in flight writes here */
	socklen_t peer_len;
	int64_t opened_ms;
	struct pr_server *server;

	/* producers: the opening line (producers.h) */
	bool opened;                /* past it: named, or not */
	char line[PR_PRODUCER_LINE_MAX]; /* the first bytes, until they tell */
	size_t line_len;
	size_t producer;            /* 1 + its index in s->producers; 0: unnamed */
	uint64_t skip;              /* records still to skip: counted before */
	struct pr_feed_stats skipped; /* what the decoder counted of them */

	/* followed files */
	char *follow_path;          /* owned */
	const char *base;           /* its last component, in follow_path */
	dev_t dev;                  /* the file open now */
	ino_t ino;
	int watch;                  /* inotify watch of the directory; -1: polled */
	bool waiting;               /* at the end, no read in flight */
	bool timer_inflight;
	bool rotating;              /* the name is another file's: reading this one to its end */
	struct __kernel_timespec timer_ts;
	char *header;               /* owned, FOLLOW_HEADER_MAX bytes: the file's
	                             * first line, or its binary header */
	size_t header_len;
	bool header_done;           /* captured (header_len 0: too long to keep) */
	bool matching;              /* after a truncation: is the header written again? */
	size_t match;               /* ... its bytes seen so far */

	/* checkpoints: the position last taken (an ended file keeps the one
	 * it ended at) */
	struct pr_feed_position position;
	bool has_position;
	char *position_header;      /* owned: position.header */
};

struct pr_feed_watch {
	struct pr_server_op op;
	int fd;
	bool inflight;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
};

#define FEED_OF(op, member) ((struct pr_feed *)(void *)((char *)(op) - offsetof(struct pr_feed, member)))

static void on_feed_read(struct pr_server *s, struct pr_server_op *op, int res);
static void on_feed_accept(struct pr_server *s, struct pr_server_op *op, int res);
static void on_feed_timer(struct pr_server *s, struct pr_server_op *op, int res);
static void follow_at_end(struct pr_server *s, struct pr_feed *f);

/* ---- records, rejects and counts ------------------------------------------ */

static struct pr_producer *producer_of(const struct pr_feed *f)
{
	return f->producer ? &f->server->producers.items[f->producer - 1] : NULL;
}

/* A record a named producer sent before (f->skip > 0): skipped, and left
 * out of every count but its producer's duplicates. */
static void skip_record(struct pr_feed *f, const struct pr_record *r,
			const struct pr_reject *bad)
{
	f->skip--;
	f->skipped.lines++;
	if (bad) {
		f->skipped.rejected++;
		f->skipped.by_reason[bad->reason]++;
	} else {
		f->skipped.records++;
		f->skipped.rounded += r->rounded;
	}
	producer_of(f)->duplicates++;
}

static int feed_record(void *ctx, const struct pr_record *r)
{
	struct pr_feed *f = ctx;
	if (f->skip) {
		skip_record(f, r, NULL);
		return 0;
	}
	int rc = pr_engine_enqueue(f->server->engine, r);
	if (rc == 0 && f->producer)
		producer_of(f)->next++; /* (refused, it comes back as a reject) */
	return rc;
}

void pr_feed_describe_reject(const char *source, const struct pr_reject *r)
{
	char raw[120];
	size_t n = r->raw_len < sizeof raw - 1 ? r->raw_len : sizeof raw - 1;
	for (size_t i = 0; i < n; i++)
		raw[i] = (r->raw[i] >= 0x20 && r->raw[i] < 0x7f) ? r->raw[i] : '?';
	raw[n] = 0;
	pr_log("%s: line %llu: %s: %s: \"%s\"", source, (unsigned long long)r->line,
	       pr_reject_reason_name(r->reason), r->detail ? r->detail : "", raw);
}

static int feed_reject(void *ctx, const struct pr_reject *r)
{
	struct pr_feed *f = ctx;
	if (f->skip) {
		skip_record(f, NULL, r);
		return 0;
	}
	if (f->producer)
		producer_of(f)->next++;
	const struct pr_server *s = f->server;
	if (!s->opt.quiet && f->shown < s->opt.show_errors)
		pr_feed_describe_reject(f->name, r);
	f->shown++;
	return 0;
}

/* A decoder's counts without the records its feed skipped. */
static void decoder_counts(const struct pr_feed *f, struct pr_feed_stats *to)
{
	struct pr_feed_stats st = *pr_decoder_stats(f->decoder);
	st.lines -= f->skipped.lines;
	st.records -= f->skipped.records;
	st.rejected -= f->skipped.rejected;
	st.rounded -= f->skipped.rounded;
	for (int i = 0; i < PR_REJECT_REASON_COUNT; i++)
		st.by_reason[i] -= f->skipped.by_reason[i];
	pr_feed_stats_add(to, &st);
}

void pr_server_stats(const struct pr_server *s, struct pr_feed_stats *out)
{
	*out = s->stats;
	for (const struct pr_feed *f = s->feeds; f; f = f->next)
		if (f->decoder)
			decoder_counts(f, out);
}

void pr_server_feed_counts(const struct pr_server *s, unsigned *sources,
			   unsigned *producers, unsigned *open)
{
	*sources = *producers = 0;
	for (const struct pr_feed *f = s->feeds; f; f = f->next) {
		if (f->kind == FEED_PRODUCER)
			++*producers;
		else
			++*sources;
	}
	*open = s->feeds_open;
}

bool pr_server_ingesting(const struct pr_server *s)
{
	return s->ready || (s->feeds_open && pr_server_now_ms() - s->last_feed_ms <
						    (int64_t)s->opt.rank_interval_ms);
}

/*
 * A record cut short for good (a producer gone, a file truncated under its
 * last line): one truncated reject, so totals hold only complete records.
 */
static void count_lost_record(struct pr_server *s, struct pr_feed *f, const char *what)
{
	s->stats.lines++;
	s->stats.rejected++;
	s->stats.by_reason[PR_REJECT_TRUNCATED]++;
	if (f->kind == FEED_PRODUCER)
		s->truncated_disconnects++;
	pr_log("%s: %s in the middle of a record; that record is counted as truncated",
	       f->name, what);
}

static int decoder_new(struct pr_server *s, struct pr_feed *f, struct pr_error *err)
{
	struct pr_feed_sink sink = { f, feed_record, feed_reject };
	return pr_decoder_create(&f->decoder, f->name, &s->opt.feed, &sink, err);
}

/* Folds a decoder's counts into the server's and frees it. */
static void decoder_retire(struct pr_server *s, struct pr_feed *f)
{
	decoder_counts(f, &s->stats);
	pr_decoder_destroy(f->decoder);
	f->decoder = NULL;
}

/* ---- the ready queue and reads -------------------------------------------- */

static void ready_push(struct pr_server *s, struct pr_feed *f)
{
	if (f->queued)
		return;
	f->queued = true;
	f->next_ready = NULL;
	if (s->ready_tail)
		s->ready_tail->next_ready = f;
	else
		s->ready = f;
	s->ready_tail = f;
}

static struct pr_feed *ready_pop(struct pr_server *s)
{
	struct pr_feed *f = s->ready;
	if (!f)
		return NULL;
	s->ready = f->next_ready;
	if (!s->ready)
		s->ready_tail = NULL;
	f->queued = false;
	return f;
}

static void arm_feed_read(struct pr_server *s, struct pr_feed *f)
{
	if (f->read_inflight || f->ended || f->dead || s->stopping || f->fd < 0)
		return;
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	if (f->kind == FEED_LISTENER) {
		f->peer_len = sizeof f->peer;
		io_uring_prep_accept(sqe, f->fd, (struct sockaddr *)&f->peer, &f->peer_len,
				     SOCK_CLOEXEC);
	} else if (f->kind == FEED_PRODUCER) {
		io_uring_prep_recv(sqe, f->fd, f->buf, f->cap, 0);
	} else {
		io_uring_prep_read(sqe, f->fd, f->buf, (unsigned)f->cap,
				   f->seekable ? f->offset : (uint64_t)-1);
	}
	pr_server_sqe_owner(sqe, &f->read_op);
	f->read_inflight = true;
	f->waiting = false;
}

/* ---- positions for checkpoints -------------------------------------------- */

#define POSITION_HASH_BYTES 4096

/* XXH3 of the file's bytes [from, to) (at most 4 KiB); 0 if unreadable. */
static uint64_t hash_range(int fd, uint64_t from, uint64_t to)
{
	char buf[POSITION_HASH_BYTES];
	size_t n = (size_t)(to - from), got = 0;
	while (got < n) {
		ssize_t k = pread(fd, buf + got, n - got, (off_t)(from + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return 0;
		got += (size_t)k;
	}
	return XXH3_64bits(buf, n);
}

static void position_hashes(int fd, uint64_t offset, uint64_t *head, uint64_t *tail)
{
	uint64_t span = offset < POSITION_HASH_BYTES ? offset : POSITION_HASH_BYTES;
	*head = hash_range(fd, 0, span);
	*tail = hash_range(fd, offset - span, offset);
}

/*
 * Takes the feed's position from its decoder: where its last complete
 * record ended, and the header bytes before the first (the followed file's
 * kept header, which may be one replayed after a truncation, or the file's
 * own bytes). A decoder still before the end of its header has none to
 * give: the file is then read again from that point, header first.
 */
static void position_take(struct pr_feed *f)
{
	f->has_position = false;
	if (!f->decoder || f->fd < 0 || !f->seekable)
		return;
	uint64_t header_end = pr_decoder_header_end(f->decoder), line, offset;
	pr_decoder_position(f->decoder, &line, &offset);
	/* Bytes decoded but not yet part of a record are read again. */
	uint64_t pushed = f->offset - (f->len - f->pos);
	f->position.pending_bytes = pushed > offset ? pushed - offset : 0;
	if (header_end > UINT32_MAX)
		return;
	char *header = realloc(f->position_header, header_end + 1);
	if (!header)
		return;
	f->position_header = header;
	if (header_end == 0) {
		/* Before the header: nothing but blank lines was decoded. */
	} else if (f->kind == FEED_FOLLOW && f->header_done && f->header_len == header_end) {
		memcpy(header, f->header, header_end);
	} else {
		for (size_t got = 0; got < header_end;) {
			ssize_t k = pread(f->fd, header + got, header_end - got, (off_t)got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return;
			got += (size_t)k;
		}
	}
	f->position.source = f->name;
	f->position.header = header;
	f->position.header_len = (uint32_t)header_end;
	f->position.offset = offset;
	f->position.line = line;
	f->position.dev = (uint64_t)f->dev;
	f->position.ino = (uint64_t)f->ino;
	position_hashes(f->fd, offset, &f->position.head_hash, &f->position.tail_hash);
	f->has_position = true;
}

size_t pr_feeds_positions(struct pr_server *s, struct pr_feed_position *out, size_t max)
{
	size_t n = 0;
	for (struct pr_feed *f = s->feeds; f; f = f->next) {
		if (f->kind != FEED_FILE && f->kind != FEED_FOLLOW)
			continue;
		if (!f->ended)
			position_take(f);
		if (!f->has_position)
			continue;
		if (n < max)
			out[n] = f->position;
		n++;
	}
	return n;
}

/*
 * A file the checkpoint read: if it is the same file, its decoder is given
 * the header and goes on at the position, and reading starts there;
 * otherwise it is read from its start, and the log says why.
 */
static void position_resume(struct pr_server *s, struct pr_feed *f, const struct stat *st)
{
	const struct pr_feed_position *p = pr_persist_position(s, f->name);
	if (!p)
		return;
	uint64_t head, tail;
	const char *why = NULL;
	if ((uint64_t)st->st_dev != p->dev || (uint64_t)st->st_ino != p->ino)
		why = "another file: its device or inode differs";
	else if ((uint64_t)st->st_size < p->offset)
		why = "shorter than the position";
	else if (position_hashes(f->fd, p->offset, &head, &tail), head != p->head_hash ||
		 tail != p->tail_hash)
		why = "its bytes before the position differ";
	if (why) {
		pr_log("%s: not the file the checkpoint read (%s): reading it from its start",
		       f->name, why);
		return;
	}
	struct pr_error err = { 0 };
	if (pr_decoder_push(f->decoder, p->header, p->header_len, &err) < 0) {
		pr_log("%s: the checkpoint's header: %s; reading the file from its start", f->name,
		       err.message);
		pr_decoder_destroy(f->decoder);
		f->decoder = NULL;
		if (decoder_new(s, f, &err) < 0) {
			pr_log("%s", err.message);
			f->dead = true;
		}
		return;
	}
	pr_decoder_seek(f->decoder, p->line, p->offset);
	f->offset = p->offset;
	if (f->kind == FEED_FOLLOW && p->header_len) {
		/* The header a truncation compares with; too long: not kept. */
		bool fits = p->header_len <= FOLLOW_HEADER_MAX;
		if (fits)
			memcpy(f->header, p->header, p->header_len);
		f->header_len = fits ? p->header_len : 0;
		f->header_done = true;
	}
	pr_log("%s: resuming at byte %llu (line %llu) where the checkpoint stopped; %lld bytes "
	       "to read", f->name, (unsigned long long)p->offset, (unsigned long long)p->line,
	       (long long)((uint64_t)st->st_size - p->offset));
}

/* ---- life of a feed ------------------------------------------------------- */

static void feed_unlink(struct pr_server *s, struct pr_feed *f)
{
	for (struct pr_feed **p = &s->feeds; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			return;
		}
	}
}

static void feed_free(struct pr_feed *f)
{
	if (f->fd >= 0)
		close(f->fd);
	pr_decoder_destroy(f->decoder);
	free(f->buf);
	free(f->name);
	free(f->socket_path);
	free(f->follow_path);
	free(f->header);
	free(f->position_header);
	free(f);
}

/* The feed reached its end (or failed): fold its counts in, log them. */
static void feed_end(struct pr_server *s, struct pr_feed *f, bool failed)
{
	if (f->ended)
		return;
	f->ended = true;
	if (f->decoder) {
		struct pr_error err = { 0 };
		if (!failed) {
			if (f->kind == FEED_PRODUCER &&
			    (!pr_decoder_idle(f->decoder) || (!f->opened && f->line_len))) {
				/* The producer went away mid-record (or while its
				 * first bytes could still have been an opening
				 * line): that record is lost, not decoded from its
				 * first half (and not counted at all if it was one
				 * sent before). */
				if (!f->skip)
					count_lost_record(s, f, "disconnected");
			} else if (pr_decoder_finish(f->decoder, &err) < 0) {
				pr_log("%s: %s", f->name, err.message);
			}
		}
		if (f->seekable && !failed)
			position_take(f); /* a file read again after a restart goes on from here */
		struct pr_feed_stats counts = { 0 }, *st = &counts;
		decoder_counts(f, st);
		char skipped[64] = "";
		if (f->skipped.lines)
			snprintf(skipped, sizeof skipped, ", %llu sent before and skipped",
				 (unsigned long long)f->skipped.lines);
		double secs = (double)(pr_server_now_ms() - f->opened_ms) / 1000.0;
		pr_log("%s: %s: %llu records, %llu rejected%s, %llu bytes in %.3f s", f->name,
		       failed ? "stopped" : f->kind == FEED_PRODUCER ? "producer disconnected" : "finished",
		       (unsigned long long)st->records, (unsigned long long)st->rejected, skipped,
		       (unsigned long long)st->bytes, secs);
		if (st->rejected && !s->opt.quiet) {
			char line[512];
			size_t n = 0;
			for (int i = 0; i < PR_REJECT_REASON_COUNT && n < sizeof line; i++)
				if (st->by_reason[i])
					n += (size_t)snprintf(line + n, sizeof line - n, " %s=%llu",
							      pr_reject_reason_name(i),
							      (unsigned long long)st->by_reason[i]);
			pr_log("%s: bad lines by reason:%s", f->name, line);
		}
		decoder_retire(s, f);
	}
	if (f->producer) {
		struct pr_producer *p = producer_of(f);
		p->connected = false;
		pr_log("%s: producer %s: the next record expected is %llu", f->name, p->name,
		       (unsigned long long)p->next);
		f->producer = 0;
	}
	if (f->kind != FEED_LISTENER && s->feeds_open)
		s->feeds_open--;
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
	free(f->buf);
	f->buf = NULL;
	f->len = f->pos = 0;
	/* Producers come and go: drop them once nothing refers to them. */
	if (f->kind == FEED_PRODUCER && !f->read_inflight && !f->queued) {
		feed_unlink(s, f);
		feed_free(f);
	}
}

static struct pr_feed *feed_new(struct pr_server *s, enum feed_kind kind, const char *name,
				size_t buffer, struct pr_error *err)
{
	struct pr_feed *f = calloc(1, sizeof *f);
	if (!f || !(f->name = strdup(name)) || (buffer && !(f->buf = malloc(buffer)))) {
		if (f)
			free(f->name);
		free(f);
		pr_error_set(err, -ENOMEM, "out of memory opening %s", name);
		return NULL;
	}
	f->kind = kind;
	f->read_op.complete = kind == FEED_LISTENER ? on_feed_accept : on_feed_read;
	f->timer_op.complete = on_feed_timer;
	f->fd = -1;
	f->watch = -1;
	f->cap = buffer;
	f->server = s;
	f->opened_ms = pr_server_now_ms();
	if (kind != FEED_LISTENER && decoder_new(s, f, err) < 0) {
		free(f->buf);
		free(f->name);
		free(f);
		return NULL;
	}
	f->next = s->feeds;
	s->feeds = f;
	return f;
}

/* ---- files ---------------------------------------------------------------- */

static int open_file(struct pr_server *s, const char *source, struct pr_error *err)
{
	int fd = strcmp(source, "-") == 0 ? dup(STDIN_FILENO)
					  : open(source, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_error_set(err, -errno, "%s: %s", source, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int code = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
		close(fd);
		return pr_error_set(err, code, "%s: %s", source, strerror(-code));
	}
	struct pr_feed *f = feed_new(s, FEED_FILE, source, FEED_FILE_BUFFER, err);
	if (!f) {
		close(fd);
		return err->code;
	}
	f->fd = fd;
	f->seekable = S_ISREG(st.st_mode) && strcmp(source, "-") != 0;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	s->feeds_open++;
	if (f->seekable)
		pr_log("%s: opened (%lld bytes)", source, (long long)st.st_size);
	else
		pr_log("%s: opened (a stream)", source);
	if (f->seekable)
		position_resume(s, f, &st);
	return 0;
}

/* ---- followed files ------------------------------------------------------- */

/* Opens the followed path; returns 0, or a negative code (-ENOENT: not there). */
static int follow_open(struct pr_feed *f, int *out_fd, struct stat *st)
{
	int fd = open(f->follow_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int code = S_ISREG(st->st_mode) ? -errno : -EINVAL;
		close(fd);
		return code;
	}
	*out_fd = fd;
	return 0;
}

/* Starts reading a (new) file from its start. */
static void follow_install(struct pr_feed *f, int fd, const struct stat *st)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->offset = 0;
	f->seekable = true;
	f->rotating = false;
	f->header_len = 0;
	f->header_done = false;
	f->matching = false;
	f->match = 0;
}

static bool watch_live(const struct pr_server *s)
{
	return s->feed_watch && s->feed_watch->fd >= 0;
}

static void arm_timer(struct pr_server *s, struct pr_feed *f, unsigned ms)
{
	if (f->timer_inflight || s->stopping || f->ended)
		return;
	f->timer_ts.tv_sec = ms / 1000;
	f->timer_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	io_uring_prep_timeout(sqe, &f->timer_ts, 0, 0);
	pr_server_sqe_owner(sqe, &f->timer_op);
	f->timer_inflight = true;
}

/* At the end: wait for inotify or the poll timer. */
static void follow_wait(struct pr_server *s, struct pr_feed *f)
{
	f->waiting = true;
	arm_timer(s, f, f->watch >= 0 && watch_live(s) ? FOLLOW_SAFETY_POLL_MS : FOLLOW_POLL_MS);
}

static void follow_wake(struct pr_server *s, struct pr_feed *f)
{
	if (!f->waiting || f->ended)
		return;
	f->waiting = false;
	if (f->fd < 0)
		follow_at_end(s, f);
	else
		arm_feed_read(s, f);
}

static void on_feed_timer(struct pr_server *s, struct pr_server_op *op, int res)
{
	(void)res; /* -ETIME when it expires */
	struct pr_feed *f = FEED_OF(op, timer_op);
	f->timer_inflight = false;
	if (s->stopping)
		return;
	if (f->kind == FEED_LISTENER)
		arm_feed_read(s, f); /* accept again after the pause */
	else
		follow_wake(s, f);
}

/* The path names another file: the old one was read to its end. */
static void follow_rotate(struct pr_server *s, struct pr_feed *f)
{
	int fd = -1;
	struct stat st;
	int rc = follow_open(f, &fd, &st);
	if (rc < 0) {
		/* Gone again, or not readable: keep waiting for a file there. */
		if (rc != -ENOENT)
			pr_log("%s: the new file: %s", f->name, strerror(-rc));
		follow_wait(s, f);
		return;
	}
	/* The old file is complete: a last line without its line end counts. */
	struct pr_error err = { 0 };
	if (pr_decoder_finish(f->decoder, &err) < 0)
		pr_log("%s: %s", f->name, err.message);
	const struct pr_feed_stats *old = pr_decoder_stats(f->decoder);
	pr_log("%s: rotated: the old file ended at %llu bytes (%llu records, %llu rejected); "
	       "reading the new one (%lld bytes) from its start", f->name,
	       (unsigned long long)f->offset, (unsigned long long)old->records,
	       (unsigned long long)old->rejected, (long long)st.st_size);
	decoder_retire(s, f);
	follow_install(f, fd, &st);
	if (decoder_new(s, f, &err) < 0) {
		pr_log("%s", err.message);
		feed_end(s, f, true);
		return;
	}
	arm_feed_read(s, f);
}

/* The file is shorter than what was read: it was truncated and restarts. */
static void follow_truncated(struct pr_server *s, struct pr_feed *f, long long size)
{
	pr_log("%s: truncated to %lld bytes after %llu were read: reading it again from its start",
	       f->name, size, (unsigned long long)f->offset);
	if (!pr_decoder_idle(f->decoder))
		count_lost_record(s, f, "truncated");
	decoder_retire(s, f);
	struct pr_error err = { 0 };
	if (decoder_new(s, f, &err) < 0) {
		pr_log("%s", err.message);
		feed_end(s, f, true);
		return;
	}
	f->offset = 0;
	f->rotating = false;
	/* Whether the writer starts again with the header shows in the first
	 * bytes; a header too long to keep is expected in the file. */
	f->matching = f->header_done && f->header_len > 0;
	f->match = 0;
	arm_feed_read(s, f);
}

/* A read found the end: rotated, truncated, or nothing new yet. */
static void follow_at_end(struct pr_server *s, struct pr_feed *f)
{
	struct stat st;
	bool named = stat(f->follow_path, &st) == 0;
	if (f->fd < 0) {
		int fd = -1, rc = named ? follow_open(f, &fd, &st) : -ENOENT;
		if (rc == 0) {
			follow_install(f, fd, &st);
			pr_log("%s: opened (%lld bytes)", f->name, (long long)st.st_size);
			arm_feed_read(s, f);
			return;
		}
		follow_wait(s, f);
		return;
	}
	if (named && (st.st_ino != f->ino || st.st_dev != f->dev)) {
		if (!f->rotating) {
			/* Bytes written just before the rename may have landed
			 * after the read that found the end: read once more. */
			f->rotating = true;
			arm_feed_read(s, f);
			return;
		}
		follow_rotate(s, f);
		return;
	}
	f->rotating = false;
	struct stat cur;
	if (fstat(f->fd, &cur) == 0 && (uint64_t)cur.st_size < f->offset) {
		follow_truncated(s, f, (long long)cur.st_size);
		return;
	}
	follow_wait(s, f);
}

/* Keeps the first line (CSV) or the 16-byte header (binary) of the file. */
static void header_capture(struct pr_feed *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !f->header_done; i++) {
		if (f->header_len == FOLLOW_HEADER_MAX) {
			f->header_len = 0; /* too long to keep: not replayed */
			f->header_done = true;
			break;
		}
		f->header[f->header_len++] = p[i];
		size_t probe = f->header_len < 8 ? f->header_len : 8;
		bool binary = pr_bin_magic_prefix(f->header, probe);
		if (binary ? f->header_len == PR_BIN_HEADER_BYTES : p[i] == '\n')
			f->header_done = true;
	}
}

/*
 * Pushes a followed file's bytes. After a truncation the first bytes are
 * compared with the header: equal, they are the header again; different,
 * the old header is given to the new decoder, which then restarts its
 * counts and positions at the file's start (pr_decoder_seek), and the bytes
 * that matched so far are decoded as data.
 */
static int follow_push(struct pr_feed *f, const char *p, size_t n, struct pr_error *err)
{
	int rc;
	while (n && f->matching) {
		size_t want = f->header_len - f->match, k = n < want ? n : want, eq = 0;
		while (eq < k && p[eq] == f->header[f->match + eq])
			eq++;
		if (eq == k) {
			f->match += k;
			p += k;
			n -= k;
			if (f->match == f->header_len) {
				f->matching = false;
				if ((rc = pr_decoder_push(f->decoder, f->header, f->header_len, err)) < 0)
					return rc;
			}
			continue;
		}
		f->matching = false;
		if ((rc = pr_decoder_push(f->decoder, f->header, f->header_len, err)) < 0)
			return rc;
		pr_decoder_seek(f->decoder, 0, 0);
		if (f->match && (rc = pr_decoder_push(f->decoder, f->header, f->match, err)) < 0)
			return rc;
	}
	if (!f->header_done)
		header_capture(f, p, n);
	return n ? pr_decoder_push(f->decoder, p, n, err) : 0;
}

/* inotify: one descriptor for every followed file, read through the ring. */
static void watch_arm(struct pr_server *s)
{
	struct pr_feed_watch *w = s->feed_watch;
	if (!w || w->inflight || w->fd < 0 || s->stopping)
		return;
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	io_uring_prep_read(sqe, w->fd, w->buf, sizeof w->buf, 0);
	pr_server_sqe_owner(sqe, &w->op);
	w->inflight = true;
}

static void on_watch_read(struct pr_server *s, struct pr_server_op *op, int res)
{
	struct pr_feed_watch *w = (struct pr_feed_watch *)(void *)op;
	w->inflight = false;
	if (res == -EINTR || res == -EAGAIN) {
		watch_arm(s);
		return;
	}
	if (res <= 0) {
		if (res == -ECANCELED || s->stopping)
			return;
		pr_log("inotify: %s; followed files are polled every %d ms",
		       res < 0 ? strerror(-res) : "end of events", FOLLOW_POLL_MS);
		close(w->fd);
		w->fd = -1;
		for (struct pr_feed *f = s->feeds; f; f = f->next)
			follow_wake(s, f);
		return;
	}
	for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)res;) {
		const struct inotify_event *ev = (const struct inotify_event *)(void *)(w->buf + off);
		off += sizeof *ev + ev->len;
		for (struct pr_feed *f = s->feeds; f; f = f->next)
			if (f->kind == FEED_FOLLOW &&
			    ((ev->mask & IN_Q_OVERFLOW) ||
			     (ev->wd == f->watch && ev->len && strcmp(ev->name, f->base) == 0)))
				follow_wake(s, f);
	}
	watch_arm(s);
}

/* Watches the directory of a followed file; without inotify it is polled. */
static void follow_watch(struct pr_server *s, struct pr_feed *f)
{
	if (!s->feed_watch) {
		struct pr_feed_watch *w = calloc(1, sizeof *w);
		if (!w)
			return;
		w->op.complete = on_watch_read;
		/* Blocking, like the signalfd: the ring polls it rather than
		 * failing reads with EAGAIN. */
		w->fd = inotify_init1(IN_CLOEXEC);
		if (w->fd < 0)
			pr_log("inotify: %s; followed files are polled every %d ms", strerror(errno),
			       FOLLOW_POLL_MS);
		s->feed_watch = w;
	}
	if (!watch_live(s))
		return;
	char dir[4096];
	const char *slash = strrchr(f->follow_path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", slash == f->follow_path ? 1 : (int)(slash - f->follow_path),
			 f->follow_path);
	f->watch = inotify_add_watch(s->feed_watch->fd, dir,
				     IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB);
	if (f->watch < 0)
		pr_log("%s: cannot watch %s (%s): polled every %d ms", f->name, dir, strerror(errno),
		       FOLLOW_POLL_MS);
}

static int open_follow(struct pr_server *s, const char *source, const char *path,
		       struct pr_error *err)
{
	if (!*path)
		return pr_error_set(err, -EINVAL, "%s: follow: needs a file path", source);
	struct pr_feed *f = feed_new(s, FEED_FOLLOW, source, FEED_FILE_BUFFER, err);
	if (!f)
		return err->code;
	if (!(f->follow_path = strdup(path)) || !(f->header = malloc(FOLLOW_HEADER_MAX)))
		return pr_error_set(err, -ENOMEM, "out of memory opening %s", source);
	const char *slash = strrchr(f->follow_path, '/');
	f->base = slash ? slash + 1 : f->follow_path;
	if (!*f->base)
		return pr_error_set(err, -EINVAL, "%s: follow: needs a file, not a directory", source);
	s->feeds_open++;
	int fd = -1;
	struct stat st;
	int rc = follow_open(f, &fd, &st);
	if (rc < 0 && rc != -ENOENT)
		return pr_error_set(err, rc, "%s: %s", path,
				    rc == -EINVAL ? "follow: needs a regular file" : strerror(-rc));
	follow_watch(s, f);
	const char *how = f->watch >= 0 ? "" : "; polled";
	if (rc == -ENOENT) {
		pr_log("%s: following; the file does not exist yet%s", source, how);
		return 0;
	}
	follow_install(f, fd, &st);
	pr_log("%s: following (%lld bytes now%s)", source, (long long)st.st_size, how);
	position_resume(s, f, &st);
	return 0;
}

/* ---- producer sockets ----------------------------------------------------- */

/* "ADDRESS:PORT" of a socket address; "" for a Unix one. */
static void format_address(const struct sockaddr_storage *a, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "";
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)(const void *)a;
		if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr)) { /* an IPv4 peer on a dual-stack socket */
			inet_ntop(AF_INET, &in->sin6_addr.s6_addr[12], host, sizeof host);
			snprintf(out, size, "%s:%u", host, ntohs(in->sin6_port));
		} else {
			inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
			snprintf(out, size, "[%s]:%u", host, ntohs(in->sin6_port));
		}
	} else {
		*out = 0;
	}
}

/*
 * Listens on "HOST:PORT" ("[V6]:PORT"; an empty HOST or * is every
 * address, IPv6 and IPv4 on one socket where the system allows).
 */
static int listen_tcp(const char *source, const char *spec, int *out_fd, char *bound,
		      size_t bound_size, struct pr_error *err)
{
	char host[256];
	const char *port;
	if (spec[0] == '[') {
		const char *close_bracket = strchr(spec, ']');
		if (!close_bracket || close_bracket[1] != ':' ||
		    (size_t)(close_bracket - spec - 1) >= sizeof host)
			return pr_error_set(err, -EINVAL, "%s: expected tcp:[ADDRESS]:PORT", source);
		snprintf(host, sizeof host, "%.*s", (int)(close_bracket - spec - 1), spec + 1);
		port = close_bracket + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= sizeof host)
			return pr_error_set(err, -EINVAL, "%s: expected tcp:HOST:PORT", source);
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
		port = colon + 1;
	}
	char *end;
	unsigned long number = strtoul(port, &end, 10);
	if (!*port || *end || number > 65535 || port[0] == '-' || port[0] == '+')
		return pr_error_set(err, -EINVAL, "%s: the port must be a number 0..65535", source);
	bool any = !*host || strcmp(host, "*") == 0;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *list;
	int rc = getaddrinfo(any ? NULL : host, port, &hints, &list);
	if (rc != 0)
		return pr_error_set(err, -EINVAL, "%s: %s", source, gai_strerror(rc));
	int fd = -1, last = EADDRNOTAVAIL;
	/* Every address: the IPv6 wildcard first, for both families at once. */
	for (int pass = 0; pass < 2 && fd < 0; pass++) {
		for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
			if (pass == 0 && !(any && ai->ai_family == AF_INET6))
				continue;
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				last = errno;
				continue;
			}
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (any && ai->ai_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
				last = errno;
				close(fd);
				fd = -1;
			}
		}
	}
	freeaddrinfo(list);
	if (fd < 0)
		return pr_error_set(err, -last, "%s: %s", source, strerror(last));
	struct sockaddr_storage addr;
	socklen_t len = sizeof addr;
	if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		format_address(&addr, bound, bound_size);
	else
		snprintf(bound, bound_size, "%s", spec);
	*out_fd = fd;
	return 0;
}

static int open_listener(struct pr_server *s, const char *source, struct pr_error *err)
{
	bool tcp = strncmp(source, "tcp:", 4) == 0;
	struct pr_feed *f = feed_new(s, FEED_LISTENER, source, 0, err);
	if (!f)
		return err->code;
	f->tcp = tcp;
	int rc;
	char bound[128] = "";
	if (tcp) {
		rc = listen_tcp(source, source + 4, &f->fd, bound, sizeof bound, err);
	} else {
		bool created = false;
		rc = pr_server_bind_unix(source + 5, s->opt.socket_mode, &f->fd, &created, err);
		if (created)
			f->socket_path = strdup(source + 5);
	}
	if (rc < 0)
		return rc;
	if (tcp)
		pr_log("%s: listening for producers on %s (CSV with a header line, or binary "
		       "records, per connection)", source, bound);
	else
		pr_log("%s: listening for producers (CSV with a header line, or binary records, "
		       "per connection)", source);
	return 0;
}

static void on_feed_accept(struct pr_server *s, struct pr_server_op *op, int res)
{
	struct pr_feed *l = FEED_OF(op, read_op);
	l->read_inflight = false;
	if (res < 0) {
		if (res == -ECANCELED)
			return;
		if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
			pr_log("%s: accept: %s", l->name, strerror(-res));
		if (res == -EMFILE || res == -ENFILE)
			arm_timer(s, l, 50); /* out of descriptors: let some close first */
		else
			arm_feed_read(s, l);
		return;
	}
	char name[600], from[160] = "";
	snprintf(name, sizeof name, "%s#%llu", l->name, (unsigned long long)++l->producers);
	if (l->tcp) {
		char peer[128];
		format_address(&l->peer, peer, sizeof peer);
		snprintf(from, sizeof from, " from %s", peer);
		/* A producer whose machine vanished would hold its feed open for
		 * ever: let TCP probe it. */
		int one = 1;
		setsockopt(res, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	}
	struct pr_error err = { 0 };
	struct pr_feed *f = feed_new(s, FEED_PRODUCER, name, FEED_PRODUCER_BUFFER, &err);
	if (!f) {
		pr_log("%s", err.message);
		close(res);
	} else {
		f->fd = res;
		s->feeds_open++;
		pr_log("%s: producer connected%s", name, from);
		arm_feed_read(s, f);
	}
	arm_feed_read(s, l);
}

/* ---- completions and the ingest turn -------------------------------------- */

static void on_feed_read(struct pr_server *s, struct pr_server_op *op, int res)
{
	struct pr_feed *f = FEED_OF(op, read_op);
	f->read_inflight = false;
	if (f->ended) {
		if (f->kind == FEED_PRODUCER) {
			feed_unlink(s, f);
			feed_free(f);
		}
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		arm_feed_read(s, f);
		return;
	}
	if (res == -ECANCELED && s->stopping)
		return;
	if (res < 0) {
		pr_log("%s: read: %s", f->name, strerror(-res));
		feed_end(s, f, f->kind != FEED_PRODUCER);
		return;
	}
	if (res == 0) {
		if (f->kind == FEED_FOLLOW)
			follow_at_end(s, f);
		else
			feed_end(s, f, false);
		return;
	}
	f->offset += (uint64_t)res;
	f->pos = 0;
	f->len = (size_t)res;
	ready_push(s, f);
}

/* A named producer's connection begins (producers.h). 0, or -EBUSY or
 * -ENOMEM with *err. */
static int producer_start(struct pr_server *s, struct pr_feed *f, const char *name,
			  uint64_t first, struct pr_error *err)
{
	struct pr_producer *p = pr_producers_find(&s->producers, name);
	if (p && p->connected)
		return pr_error_set(err, -EBUSY, "producer %s is connected already (one "
				    "connection per name): closing", name);
	if (!p && !(p = pr_producers_add(&s->producers, name, first)))
		return pr_error_set(err, -ENOMEM, "out of memory for producer %s: closing", name);
	p->connected = true;
	f->producer = (size_t)(p - s->producers.items) + 1;
	if (first < p->next) {
		f->skip = p->next - first;
		pr_log("%s: producer %s from record %llu: the %llu before %llu were counted "
		       "already and are skipped", f->name, name, (unsigned long long)first,
		       (unsigned long long)f->skip, (unsigned long long)p->next);
	} else if (first > p->next) {
		p->missing += first - p->next;
		pr_log("%s: producer %s from record %llu: records %llu to %llu never arrived",
		       f->name, name, (unsigned long long)first, (unsigned long long)p->next,
		       (unsigned long long)(first - 1));
		p->next = first;
	} else {
		pr_log("%s: producer %s from record %llu", f->name, name, (unsigned long long)first);
	}
	return 0;
}

/*
 * A producer's first bytes: they may open with the line that names it
 * (producers.h). Holds up to PR_PRODUCER_LINE_MAX bytes until they tell,
 * then decodes what of them is data. Returns how many of the n bytes at p
 * it took, or -1 with *err if the connection must go.
 */
static long producer_opening(struct pr_server *s, struct pr_feed *f, const char *p, size_t n,
			     struct pr_error *err)
{
	size_t take = sizeof f->line - f->line_len;
	if (take > n)
		take = n;
	memcpy(f->line + f->line_len, p, take);
	f->line_len += take;
	char name[PR_PRODUCER_NAME_MAX + 1];
	uint64_t first = 0;
	size_t consumed = 0;
	switch (pr_producer_line_parse(f->line, f->line_len, name, &first, &consumed)) {
	case PR_PRODUCER_LINE_MORE:
		return (long)take;
	case PR_PRODUCER_LINE_BAD:
		pr_error_set(err, -EINVAL, "the opening line is not \"" PR_PRODUCER_PREFIX
			     "NAME FIRST\" (a name of at most %d letters, digits or ._- and a "
			     "record number of 1 or more): closing", PR_PRODUCER_NAME_MAX);
		return -1;
	case PR_PRODUCER_LINE_OK:
		if (producer_start(s, f, name, first, err) < 0)
			return -1;
		break;
	case PR_PRODUCER_LINE_NONE:
		consumed = 0;
		break;
	}
	f->opened = true;
	if (f->line_len > consumed &&
	    pr_decoder_push(f->decoder, f->line + consumed, f->line_len - consumed, err) < 0)
		return -1;
	return (long)take;
}

void pr_feeds_turn(struct pr_server *s)
{
	size_t budget = s->opt.ingest_batch_bytes;
	bool applied = false;
	while (budget && s->ready) {
		struct pr_feed *f = ready_pop(s);
		size_t n = f->len - f->pos;
		if (n > budget)
			n = budget;
		struct pr_error err = { 0 };
		int rc;
		if (f->kind == FEED_PRODUCER && !f->opened) {
			long took = producer_opening(s, f, f->buf + f->pos, n, &err);
			rc = took < 0 ? -1 : 0;
			n = took < 0 ? n : (size_t)took;
		} else {
			rc = f->kind == FEED_FOLLOW
				     ? follow_push(f, f->buf + f->pos, n, &err)
				     : pr_decoder_push(f->decoder, f->buf + f->pos, n, &err);
		}
		applied = true;
		budget -= n;
		f->pos += n;
		if (rc < 0) {
			pr_log("%s: %s", f->name, err.message);
			f->dead = true;
			if (!f->read_inflight)
				feed_end(s, f, true);
			continue;
		}
		if (f->pos < f->len)
			ready_push(s, f); /* round robin: the rest waits for the next turn */
		else
			arm_feed_read(s, f);
	}
	if (applied)
		s->last_feed_ms = pr_server_now_ms();
	pr_server_feed_turn_done(s);
}

/* ---- the module ----------------------------------------------------------- */

int pr_feeds_open(struct pr_server *s, const char *source, struct pr_error *err)
{
	if (strncmp(source, "unix:", 5) == 0 || strncmp(source, "tcp:", 4) == 0)
		return open_listener(s, source, err);
	if (strncmp(source, "follow:", 7) == 0)
		return open_follow(s, source, source + 7, err);
	return open_file(s, source, err);
}

void pr_feeds_start(struct pr_server *s)
{
	for (struct pr_feed *f = s->feeds; f; f = f->next) {
		if (f->kind == FEED_FOLLOW && f->fd < 0)
			follow_wait(s, f);
		else
			arm_feed_read(s, f);
	}
	watch_arm(s);
}

void pr_feeds_destroy(struct pr_server *s)
{
	while (s->feeds) {
		struct pr_feed *f = s->feeds;
		s->feeds = f->next;
		if (f->kind == FEED_FOLLOW && f->decoder && !pr_decoder_idle(f->decoder))
			pr_log("%s: stopped before its last line ended; that line is not counted",
			       f->name);
		if (f->socket_path)
			unlink(f->socket_path);
		feed_free(f);
	}
	s->ready = s->ready_tail = NULL;
	if (s->feed_watch) {
		if (s->feed_watch->fd >= 0)
			close(s->feed_watch->fd);
		free(s->feed_watch);
		s->feed_watch = NULL;
	}
}
