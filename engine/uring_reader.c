/* uring_reader.c - whole files and streams through io_uring; see uring_reader.h. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uring_reader.h"

#define BLOCK_DEFAULT (1u << 20)
#define DEPTH_DEFAULT 8u
#define DEPTH_MAX 64u

struct block {
	char *bytes;
	uint64_t offset;  /* file offset of bytes[0] */
	size_t filled;    /* bytes read so far */
	size_t want;      /* bytes asked for */
	bool busy;        /* a read is in flight */
	bool eof;         /* a read returned 0: the file ends in this block */
};

struct reader {
	struct io_uring ring;
	int fd;
	bool fixed;       /* buffers registered: read_fixed */
	size_t block_bytes;
	unsigned depth;
	struct block blocks[DEPTH_MAX];
	char *memory;
	unsigned in_flight;
	uint64_t start, end; /* the byte range to read; end UINT64_MAX: to EOF */
};

static void queue_read(struct reader *r, unsigned i, int64_t offset)
{
	struct block *b = &r->blocks[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	/* The ring has depth entries and at most depth reads are in flight. */
	if (r->fixed)
		io_uring_prep_read_fixed(sqe, r->fd, b->bytes + b->filled, (unsigned)(b->want - b->filled),
					 (uint64_t)offset, (int)i);
	else
		io_uring_prep_read(sqe, r->fd, b->bytes + b->filled, (unsigned)(b->want - b->filled),
				   (uint64_t)offset);
	io_uring_sqe_set_data64(sqe, i);
	b->busy = true;
	r->in_flight++;
}

/* Waits for every read in flight, so buffers can be freed safely. */
static void drain(struct reader *r)
{
	/* Reads queued since the last submit count as in flight: send them
	 * first, or their completions would never come. */
	io_uring_submit(&r->ring);
	while (r->in_flight) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&r->ring, &cqe) < 0)
			break;
		r->blocks[io_uring_cqe_get_data64(cqe)].busy = false;
		io_uring_cqe_seen(&r->ring, cqe);
		r->in_flight--;
	}
}

static int fail(struct pr_error *err, const char *path, const char *what, int code)
{
	return pr_error_set(err, code, "%s: %s%s", path, what, strerror(-code));
}

/* Starts block i at `offset`: a read, or at the end of the range, none. */
static void start_block(struct reader *r, unsigned i, uint64_t offset)
{
	struct block *b = &r->blocks[i];
	uint64_t left = offset < r->end ? r->end - offset : 0;
	*b = (struct block){ .bytes = b->bytes, .offset = offset,
			     .want = left < r->block_bytes ? (size_t)left : r->block_bytes };
	if (b->want)
		queue_read(r, i, (int64_t)offset);
	else
		b->eof = true;
}

/* Regular file: depth reads at increasing offsets, delivered in order. */
static int read_regular(struct reader *r, const char *path, pr_reader_consume_fn consume,
			void *ctx, struct pr_error *err)
{
	uint64_t next_offset = r->start; /* the next block to start */
	uint64_t deliver = r->start;     /* the offset the consumer expects next */
	unsigned next_block = 0;
	for (unsigned i = 0; i < r->depth; i++) {
		start_block(r, i, next_offset);
		next_offset += r->block_bytes;
	}
	int rc = io_uring_submit(&r->ring);
	if (rc < 0)
		return fail(err, path, "read: ", rc);
	if (r->blocks[0].eof && !r->blocks[0].busy)
		return 0; /* an empty range */
	while (r->in_flight) {
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&r->ring, &cqe);
		if (rc < 0)
			return fail(err, path, "read: ", rc);
		unsigned done = 0, head;
		io_uring_for_each_cqe(&r->ring, head, cqe) {
			unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
			struct block *b = &r->blocks[i];
			int res = cqe->res;
			b->busy = false;
			r->in_flight--;
			done++;
			if (res == -EINTR || res == -EAGAIN) {
				queue_read(r, i, (int64_t)(b->offset + b->filled));
			} else if (res < 0) {
				io_uring_cq_advance(&r->ring, done);
				drain(r);
				return fail(err, path, "read: ", res);
			} else if (res == 0) {
				b->eof = true;
			} else {
				b->filled += (size_t)res;
				if (b->filled < b->want) /* short read: ask for the rest */
					queue_read(r, i, (int64_t)(b->offset + b->filled));
			}
		}
		io_uring_cq_advance(&r->ring, done);

		/* Deliver complete blocks in file order; refill them further on. */
		for (;;) {
			struct block *b = &r->blocks[next_block];
			if (b->busy || b->offset != deliver || (b->filled < b->want && !b->eof))
				break;
			if (b->filled && (rc = consume(ctx, b->bytes, b->filled)) < 0) {
				drain(r);
				return rc;
			}
			deliver += b->filled;
			if (b->eof) {
				/* Blocks after the end may still be in flight: their
				 * reads return 0 and are drained. */
				drain(r);
				return 0;
			}
			start_block(r, next_block, next_offset);
			next_offset += r->block_bytes;
			next_block = (next_block + 1) % r->depth;
		}
		if ((rc = io_uring_submit(&r->ring)) < 0) {
			drain(r);
			return fail(err, path, "read: ", rc);
		}
	}
	return 0;
}

/* Pipes, sockets, terminals: one read at a time at the current position. */
static int read_stream(struct reader *r, const char *path, pr_reader_consume_fn consume,
		       void *ctx, struct pr_error *err)
{
	struct block *b = &r->blocks[0];
	for (;;) {
		b->filled = 0;
		b->want = r->block_bytes;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		io_uring_prep_read(sqe, r->fd, b->bytes, (unsigned)b->want, (uint64_t)-1);
		int rc = io_uring_submit(&r->ring);
		if (rc < 0)
			return fail(err, path, "read: ", rc);
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&r->ring, &cqe);
		if (rc < 0)
			return fail(err, path, "read: ", rc);
		int res = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res < 0)
			return fail(err, path, "read: ", res);
		if (res == 0)
			return 0;
		if ((rc = consume(ctx, b->bytes, (size_t)res)) < 0)
			return rc;
	}
}

static int read_any(const char *path, uint64_t start, uint64_t end,
		    const struct pr_reader_options *opt, pr_reader_consume_fn consume, void *ctx,
		    struct pr_error *err)
{
	struct reader r = { .fd = -1, .start = start, .end = end };
	r.block_bytes = opt && opt->block_bytes ? opt->block_bytes : BLOCK_DEFAULT;
	r.depth = opt && opt->depth ? opt->depth : DEPTH_DEFAULT;
	if (r.depth > DEPTH_MAX)
		r.depth = DEPTH_MAX;
	bool is_stdin = strcmp(path, "-") == 0;
	r.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0)
		return pr_error_set(err, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(r.fd, &st) < 0) {
		int code = -errno;
		if (!is_stdin)
			close(r.fd);
		return fail(err, path, "", code);
	}
	if (S_ISDIR(st.st_mode)) {
		if (!is_stdin)
			close(r.fd);
		return fail(err, path, "", -EISDIR);
	}
	bool regular = S_ISREG(st.st_mode);
	if (!regular && (start != 0 || end != UINT64_MAX)) {
		if (!is_stdin)
			close(r.fd);
		return fail(err, path, "a byte range of a stream: ", -ESPIPE);
	}
	if (!regular)
		r.depth = 1;
	int rc = io_uring_queue_init(r.depth, &r.ring, 0);
	if (rc < 0) {
		if (!is_stdin)
			close(r.fd);
		return pr_error_set(err, rc, "io_uring unavailable: %s (kernel too old, or "
				    "disabled by seccomp or sysctl kernel.io_uring_disabled)",
				    strerror(-rc));
	}
	if (posix_memalign((void **)&r.memory, 4096, r.block_bytes * r.depth) != 0) {
		io_uring_queue_exit(&r.ring);
		if (!is_stdin)
			close(r.fd);
		return pr_error_set(err, -ENOMEM, "%s: out of memory for read buffers", path);
	}
	struct iovec iov[DEPTH_MAX];
	for (unsigned i = 0; i < r.depth; i++) {
		r.blocks[i].bytes = r.memory + i * r.block_bytes;
		iov[i] = (struct iovec){ r.blocks[i].bytes, r.block_bytes };
	}
	/* Registered buffers save a page walk per read; RLIMIT_MEMLOCK may say no. */
	r.fixed = regular && io_uring_register_buffers(&r.ring, iov, r.depth) == 0;
	rc = regular ? read_regular(&r, path, consume, ctx, err)
		     : read_stream(&r, path, consume, ctx, err);
	io_uring_queue_exit(&r.ring);
	free(r.memory);
	if (!is_stdin)
		close(r.fd);
	return rc;
}

int pr_read_file(const char *path, const struct pr_reader_options *opt,
		 pr_reader_consume_fn consume, void *ctx, struct pr_error *err)
{
	return read_any(path, 0, UINT64_MAX, opt, consume, ctx, err);
}

int pr_read_range(const char *path, uint64_t offset, uint64_t length,
		  const struct pr_reader_options *opt, pr_reader_consume_fn consume, void *ctx,
		  struct pr_error *err)
{
	return read_any(path, offset, length > UINT64_MAX - offset ? UINT64_MAX : offset + length,
			opt, consume, ctx, err);
}
