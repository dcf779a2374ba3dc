/*
 * uring_reader.c - whole files, byte ranges and streams through io_uring; see
 * uring_reader.h.
 *
 * Owns, for the length of one call: the file descriptor (unless it is stdin),
 * one io_uring, and one 4096-aligned allocation cut into `depth` blocks of
 * `block_bytes`, registered with the ring when RLIMIT_MEMLOCK allows.
 *
 * Positional sources (regular files, block devices) keep up to `depth` reads
 * in flight, one per block, at increasing offsets. The blocks form a ring in
 * file order: the head block is delivered as soon as it is full (or holds the
 * end of the file) and is then restarted `depth` blocks further on. Reads may
 * complete in any order and short; a short read is resubmitted for the rest of
 * its block. The end of the file is where a read returns 0, not what fstat
 * said, so a file that grows or shrinks while it is read is read to the end
 * seen.
 *
 * Streams (pipes, FIFOs, sockets, terminals) have no offsets and concurrent
 * reads would race for the bytes, so they keep one read in flight at the
 * current position.
 *
 * Every exit waits for the completion of every read the kernel has seen
 * before the buffers are freed: the kernel writes into them until then.
 *
 * Cost: one io_uring_enter per batch of completions, which submits the
 * refills and waits in the same call; memory depth x block_bytes.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uring_reader.h"

#define BLOCK_DEFAULT (1u << 20)
#define BLOCK_MAX (1u << 30) /* a read returns an int; the kernel caps registered buffers at 1 GiB */
#define DEPTH_DEFAULT 8u
#define DEPTH_MAX 64u        /* beyond this more reads in flight buy nothing */
#define PAGE_BYTES 4096u
#define CANCEL_TAG UINT64_MAX /* user_data of the cancel request; reads carry their block index */

struct block {
	char *bytes;     /* into reader.memory */
	uint64_t offset; /* file offset of bytes[0] */
	size_t want;     /* bytes this block should hold; 0 past the end of a range */
	size_t filled;   /* bytes read so far */
	bool busy;       /* a read is queued or in flight */
	bool eof;        /* a read returned 0: the data ends in this block */
	bool eof_stale;  /* ...while an earlier block was still being read: the
			  * file may have grown since, so ask again before ending */
};

struct reader {
	struct io_uring ring;
	const char *name; /* for messages */
	int fd;
	bool own_fd;      /* false for stdin: the caller's descriptor stays open */
	bool fixed;       /* buffers registered: read_fixed */
	size_t block_bytes;
	unsigned depth;
	unsigned outstanding; /* SQEs prepared whose completion is not reaped yet */
	uint64_t end;         /* read up to here; UINT64_MAX: to the end of the file */
	uint64_t next_offset; /* where the next block to start begins */
	uint64_t delivered;   /* the offset the consumer expects next */
	unsigned head;        /* the block to deliver next */
	char *memory;         /* owned: the one buffer allocation */
	struct block blocks[DEPTH_MAX];
};

static int fail(struct reader *r, struct pr_error *err, const char *what, int code)
{
	return pr_error_set(err, code, "%s: %s%s", r->name, what, strerror(-code));
}

static struct io_uring_sqe *get_sqe(struct reader *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	/* The SQ holds at least depth + 1 entries, and at most depth reads
	 * plus one cancel are ever outstanding. */
	assert(sqe);
	r->outstanding++;
	return sqe;
}

/* Queues a read of the rest of block i. */
static void queue_read(struct reader *r, unsigned i)
{
	struct block *b = &r->blocks[i];
	assert(!b->busy && b->filled < b->want);
	struct io_uring_sqe *sqe = get_sqe(r);
	char *into = b->bytes + b->filled;
	unsigned len = (unsigned)(b->want - b->filled);
	uint64_t at = b->offset + b->filled;
	if (r->fixed)
		io_uring_prep_read_fixed(sqe, r->fd, into, len, at, (int)i);
	else
		io_uring_prep_read(sqe, r->fd, into, len, at);
	io_uring_sqe_set_data64(sqe, i);
	b->busy = true;
}

/* Makes block i the block at r->next_offset and queues its read. */
static void start_block(struct reader *r, unsigned i)
{
	struct block *b = &r->blocks[i];
	uint64_t at = r->next_offset;
	uint64_t left = at < r->end ? r->end - at : 0;
	*b = (struct block){ .bytes = b->bytes, .offset = at,
			     .want = left < r->block_bytes ? (size_t)left : r->block_bytes };
	r->next_offset = at + r->block_bytes < at ? UINT64_MAX : at + r->block_bytes;
	if (b->want)
		queue_read(r, i);
	else
		b->eof = true; /* past the end of the range: nothing to read */
}

/* Waits for one completion; false only if the ring itself fails. */
static bool wait_one(struct reader *r, struct io_uring_cqe **cqe)
{
	int rc;
	while ((rc = io_uring_wait_cqe(&r->ring, cqe)) == -EINTR)
		;
	/* Our own ring, sized for everything outstanding: nothing else
	 * should ever fail here. */
	assert(rc == 0);
	return rc == 0;
}

static void forget_cqe(struct reader *r, struct io_uring_cqe *cqe)
{
	uint64_t tag = io_uring_cqe_get_data64(cqe);
	if (tag != CANCEL_TAG) {
		assert(tag < r->depth);
		r->blocks[tag].busy = false;
	}
	io_uring_cqe_seen(&r->ring, cqe);
	r->outstanding--;
}

/*
 * Waits until the kernel holds no read of ours, so that the buffers can be
 * freed; false if that cannot be known (then they must not be). Reads still
 * queued are sent first (their completions would never come otherwise), and
 * what is not done yet is cancelled where the kernel can.
 */
static bool drain(struct reader *r)
{
	bool cancel_sent = false, can_submit = true;
	while (r->outstanding) {
		unsigned unsent = io_uring_sq_ready(&r->ring);
		if (unsent && can_submit) {
			int rc = io_uring_submit(&r->ring);
			if (rc == -EINTR)
				continue;
			if (rc < 0) {
				/* The kernel never took them, so it will never
				 * complete them nor touch their buffers. */
				r->outstanding -= unsent;
				can_submit = false;
				continue;
			}
		}
		struct io_uring_cqe *cqe;
		while (r->outstanding && io_uring_peek_cqe(&r->ring, &cqe) == 0)
			forget_cqe(r, cqe);
		if (r->outstanding && !cancel_sent && can_submit) {
			/* Buffered file reads are rarely cancellable; reads
			 * still queued for a worker are, and a kernel older than
			 * 5.19 answers -EINVAL: either way we then just wait. */
			struct io_uring_sqe *sqe = get_sqe(r);
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data64(sqe, CANCEL_TAG);
			cancel_sent = true;
		} else if (r->outstanding) {
			if (!wait_one(r, &cqe))
				return false;
			forget_cqe(r, cqe);
		}
	}
	return true;
}

/* True when some block before b (in file order) is still being read. */
static bool earlier_block_busy(const struct reader *r, const struct block *b)
{
	for (unsigned i = 0; i < r->depth; i++)
		if (r->blocks[i].busy && r->blocks[i].offset < b->offset)
			return true;
	return false;
}

/* Accounts for one read's result; 0, or a negative code for a hard error. */
static int complete_read(struct reader *r, unsigned i, int res)
{
	struct block *b = &r->blocks[i];
	assert(i < r->depth && b->busy);
	b->busy = false;
	if (res == -EINTR || res == -EAGAIN) {
		queue_read(r, i);
	} else if (res < 0) {
		return res;
	} else if (res == 0) {
		b->eof = true;
		b->eof_stale = earlier_block_busy(r, b);
	} else {
		assert((size_t)res <= b->want - b->filled);
		b->filled += (size_t)res;
		if (b->filled < b->want) /* short, not the end: ask for the rest */
			queue_read(r, i);
	}
	return 0;
}

/*
 * Hands complete blocks to the consumer in file order and restarts them
 * further on. Returns 1 at the end of the data, 0 to go on, or the
 * consumer's negative code.
 */
static int deliver_ready(struct reader *r, pr_reader_consume_fn consume, void *ctx)
{
	for (;;) {
		struct block *b = &r->blocks[r->head];
		assert(b->offset == r->delivered);
		if (b->busy)
			return 0;
		if (b->eof && b->eof_stale) {
			/* The 0 may predate bytes appended since: look again. */
			b->eof = b->eof_stale = false;
			queue_read(r, r->head);
			return 0;
		}
		assert(b->eof || b->filled == b->want);
		if (b->filled) {
			int rc = consume(ctx, b->bytes, b->filled);
			if (rc < 0)
				return rc;
			r->delivered += b->filled;
		}
		if (b->eof || r->delivered == r->end)
			return 1;
		start_block(r, r->head);
		r->head = (r->head + 1) % r->depth;
	}
}

/* Regular files and block devices: depth reads in flight, delivered in order. */
static int read_positional(struct reader *r, uint64_t start, pr_reader_consume_fn consume,
			   void *ctx, struct pr_error *err)
{
	r->next_offset = r->delivered = start;
	for (unsigned i = 0; i < r->depth; i++)
		start_block(r, i);
	int rc = deliver_ready(r, consume, ctx); /* an empty range ends here */
	while (rc == 0) {
		assert(r->outstanding > 0); /* the head block waits for a read */
		/* One syscall sends the refills and waits for a completion. */
		rc = io_uring_submit_and_wait(&r->ring, 1);
		if (rc == -EINTR)
			rc = 0;
		if (rc < 0) {
			rc = fail(r, err, "read: ", rc);
			break;
		}
		unsigned seen = 0, cq_head;
		struct io_uring_cqe *cqe;
		rc = 0;
		io_uring_for_each_cqe(&r->ring, cq_head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			seen++;
			r->outstanding--;
			if (rc < 0) /* after an error, only account */
				r->blocks[tag].busy = false;
			else
				rc = complete_read(r, (unsigned)tag, cqe->res);
		}
		io_uring_cq_advance(&r->ring, seen);
		if (rc < 0) {
			rc = fail(r, err, "read: ", rc);
			break;
		}
		rc = deliver_ready(r, consume, ctx);
	}
	return rc < 0 ? rc : 0; /* the caller drains */
}

/* Pipes, FIFOs, sockets, terminals: one read at a time at the current position. */
static int read_stream(struct reader *r, pr_reader_consume_fn consume, void *ctx,
		       struct pr_error *err)
{
	char *bytes = r->blocks[0].bytes;
	bool poll_first = false;
	for (;;) {
		struct io_uring_sqe *sqe = get_sqe(r);
		if (poll_first)
			/* The descriptor is non-blocking (someone set O_NONBLOCK
			 * on our stdin): wait for bytes instead of spinning. */
			io_uring_prep_poll_add(sqe, r->fd, POLLIN);
		else
			io_uring_prep_read(sqe, r->fd, bytes, (unsigned)r->block_bytes, (uint64_t)-1);
		io_uring_sqe_set_data64(sqe, 0);
		int rc;
		do
			rc = io_uring_submit_and_wait(&r->ring, 1);
		while (rc == -EINTR && io_uring_sq_ready(&r->ring) > 0);
		if (rc < 0 && rc != -EINTR)
			return fail(r, err, "read: ", rc); /* the caller drains */
		struct io_uring_cqe *cqe;
		if (!wait_one(r, &cqe))
			return fail(r, err, "read: ", -EIO);
		int res = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
		r->outstanding--;
		if (poll_first) {
			poll_first = false;
			if (res < 0 && res != -EINTR)
				return fail(r, err, "poll: ", res);
			continue;
		}
		if (res == -EINTR)
			continue;
		if (res == -EAGAIN) {
			poll_first = true;
			continue;
		}
		if (res < 0)
			return fail(r, err, "read: ", res);
		if (res == 0)
			return 0;
		if ((rc = consume(ctx, bytes, (size_t)res)) < 0)
			return rc;
	}
}

static void close_source(struct reader *r)
{
	if (r->own_fd)
		close(r->fd);
}

/*
 * Opens `path` ("-": stdin) and sets up r's ring and buffers. A stream with
 * `range` is -ESPIPE; from_current moves *start to where a positional
 * descriptor stands (stdin). Returns 0 or a negative code with *err set,
 * r then holding nothing.
 */
static int reader_open(struct reader *r, const char *path, uint64_t *start, bool range,
		       bool from_current, const struct pr_reader_options *opt, bool *positional,
		       struct pr_error *err)
{
	bool is_stdin = strcmp(path, "-") == 0;
	r->fd = -1;
	r->name = is_stdin ? "standard input" : path;
	r->block_bytes = opt && opt->block_bytes ? opt->block_bytes : BLOCK_DEFAULT;
	r->depth = opt && opt->depth ? opt->depth : DEPTH_DEFAULT;
	if (r->block_bytes > BLOCK_MAX)
		return pr_error_set(err, -EINVAL, "%s: block of %zu bytes is above the %u-byte limit",
				    r->name, r->block_bytes, BLOCK_MAX);
	if (r->depth > DEPTH_MAX)
		r->depth = DEPTH_MAX;

	if (is_stdin) {
		r->fd = STDIN_FILENO;
	} else {
		r->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (r->fd < 0)
			return pr_error_set(err, -errno, "%s: %s", path, strerror(errno));
		r->own_fd = true;
	}
	struct stat st;
	int rc = fstat(r->fd, &st) < 0 ? -errno : 0;
	*positional = rc == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
	if (rc < 0)
		rc = fail(r, err, "", rc);
	else if (S_ISDIR(st.st_mode))
		rc = fail(r, err, "", -EISDIR);
	else if (!*positional && range)
		rc = fail(r, err, "a byte range of a stream: ", -ESPIPE);
	else if (*positional && from_current) {
		/* `prog - < file` after something else read part of it:
		 * go on from where the descriptor stands, as cat does. */
		off_t at = lseek(r->fd, 0, SEEK_CUR);
		if (at < 0)
			rc = fail(r, err, "", -errno);
		else
			*start = (uint64_t)at;
	}
	if (rc < 0) {
		close_source(r);
		return rc;
	}
	if (!*positional)
		r->depth = 1;

	/* depth + 1 entries: the reads and one cancel when stopping early. */
	rc = io_uring_queue_init(r->depth + 1, &r->ring, 0);
	if (rc < 0) {
		close_source(r);
		/* Recent kernels charge the ring itself to RLIMIT_MEMLOCK
		 * (without CAP_IPC_LOCK): ENOMEM is then a limit to raise. */
		return pr_error_set(err, rc, "io_uring unavailable: %s (%s)", strerror(-rc),
				    rc == -ENOMEM ? "RLIMIT_MEMLOCK too low? see ulimit -l"
						  : "kernel too old or disabled by seccomp/sysctl "
						    "kernel.io_uring_disabled");
	}
	/* Page-aligned blocks: the kernel copies whole pages, and registration
	 * pins pages, so blocks should not share them. */
	size_t stride = (r->block_bytes + PAGE_BYTES - 1) / PAGE_BYTES * PAGE_BYTES;
	if (posix_memalign((void **)&r->memory, PAGE_BYTES, stride * r->depth) != 0) {
		io_uring_queue_exit(&r->ring);
		close_source(r);
		return pr_error_set(err, -ENOMEM, "%s: no memory for %u read buffers of %zu bytes",
				    r->name, r->depth, r->block_bytes);
	}
	struct iovec iov[DEPTH_MAX];
	for (unsigned i = 0; i < r->depth; i++) {
		r->blocks[i].bytes = r->memory + i * stride;
		iov[i] = (struct iovec){ r->blocks[i].bytes, r->block_bytes };
	}
	/* Registered buffers spare the kernel a page walk per read; without
	 * CAP_IPC_LOCK they count against RLIMIT_MEMLOCK, which may refuse. */
	r->fixed = *positional && io_uring_register_buffers(&r->ring, iov, r->depth) == 0;
	return 0;
}

static void reader_close(struct reader *r, bool drained)
{
	if (drained)
		free(r->memory);
	/* else the kernel may still write into it: leaking is the safe choice */
	io_uring_queue_exit(&r->ring); /* also unregisters the buffers */
	close_source(r);
}

/*
 * Reads [start, end) of a positional source, or a whole stream. A range of a
 * stream is -ESPIPE; from_current starts a positional source where its
 * descriptor stands (stdin) instead of at `start`.
 */
static int read_any(const char *path, uint64_t start, uint64_t end, bool range,
		    bool from_current, const struct pr_reader_options *opt,
		    pr_reader_consume_fn consume, void *ctx, struct pr_error *err)
{
	struct reader r = { .fd = -1, .end = end };
	bool positional;
	int rc = reader_open(&r, path, &start, range, from_current, opt, &positional, err);
	if (rc < 0)
		return rc;
	if (positional) {
		rc = read_positional(&r, start, consume, ctx, err);
		/* Leave stdin positioned after what was consumed, as cat does. */
		if (from_current)
			lseek(r.fd, (off_t)r.delivered, SEEK_SET);
	} else {
		rc = read_stream(&r, consume, ctx, err);
	}
	reader_close(&r, drain(&r));
	return rc;
}

struct pr_range_reader {
	struct reader r;
	bool broken; /* a drain failed: the buffers may still be written */
};

int pr_range_reader_open(struct pr_range_reader **out, const char *path,
			 const struct pr_reader_options *opt, struct pr_error *err)
{
	struct pr_range_reader *rr = calloc(1, sizeof *rr);
	if (!rr)
		return pr_error_set(err, -ENOMEM, "%s: out of memory", path);
	uint64_t start = 0;
	bool positional;
	int rc = reader_open(&rr->r, path, &start, true, false, opt, &positional, err);
	if (rc < 0) {
		free(rr);
		return rc;
	}
	*out = rr;
	return 0;
}

int pr_range_reader_read(struct pr_range_reader *rr, uint64_t offset, uint64_t length,
			 pr_reader_consume_fn consume, void *ctx, struct pr_error *err)
{
	if (rr->broken)
		return pr_error_set(err, -EIO, "%s: read: reader unusable", rr->r.name);
	rr->r.end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
	rr->r.head = 0;
	int rc = read_positional(&rr->r, offset, consume, ctx, err);
	rr->broken = !drain(&rr->r);
	return rc;
}

void pr_range_reader_close(struct pr_range_reader *rr)
{
	if (!rr)
		return;
	reader_close(&rr->r, !rr->broken);
	free(rr);
}

int pr_read_file(const char *path, const struct pr_reader_options *opt,
		 pr_reader_consume_fn consume, void *ctx, struct pr_error *err)
{
	return read_any(path, 0, UINT64_MAX, false, strcmp(path, "-") == 0, opt, consume, ctx,
			err);
}

int pr_read_range(const char *path, uint64_t offset, uint64_t length,
		  const struct pr_reader_options *opt, pr_reader_consume_fn consume, void *ctx,
		  struct pr_error *err)
{
	uint64_t end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
	return read_any(path, offset, end, true, false, opt, consume, ctx, err);
}
