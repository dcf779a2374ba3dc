/*
 * test_uring_reader.c - files, ranges and streams through io_uring: every
 * byte arrives once and in file order, whatever the block size, the depth,
 * the order of completions (half the file evicted from the page cache), a
 * file growing or shrinking under the reader, or a writer feeding a pipe in
 * random pieces; stdin as a pipe, a non-blocking pipe and a regular file;
 * errors that name the file; a consumer that stops; the fallback to plain
 * reads when buffers cannot be registered. Descriptors are counted before
 * and after, ASan counts the memory.
 *
 * Contents and piece sizes come from seeded generators; every failure
 * message names its seed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "uring_reader.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t next_random(uint64_t *state) /* splitmix64 */
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static char *random_bytes(size_t len, uint64_t seed)
{
	char *bytes = malloc(len ? len : 1);
	uint64_t state = seed;
	for (size_t i = 0; i < len; i++)
		bytes[i] = (char)next_random(&state);
	return bytes;
}

/* Every consume() call, in order, and what it carried. */
struct sink {
	char *bytes;
	size_t len, cap;
	size_t calls;
	size_t *call_len; /* length of each call */
	size_t call_cap;
	size_t stop_at_call; /* return -ECANCELED from this call (1-based); 0: never */
	int (*also)(struct sink *s); /* run after each call; for files changed mid-read */
	int append_fd;
	size_t appends_left;
	size_t truncate_to;
};

static int collect(void *ctx, const char *bytes, size_t len)
{
	struct sink *s = ctx;
	cr_assert_gt(len, 0, "consume() called with no bytes");
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->bytes = realloc(s->bytes, s->cap);
	}
	memcpy(s->bytes + s->len, bytes, len);
	s->len += len;
	if (s->calls == s->call_cap) {
		s->call_cap = s->call_cap ? 2 * s->call_cap : 64;
		s->call_len = realloc(s->call_len, s->call_cap * sizeof *s->call_len);
	}
	s->call_len[s->calls++] = len;
	if (s->also)
		s->also(s);
	return s->stop_at_call && s->calls >= s->stop_at_call ? -ECANCELED : 0;
}

static void sink_free(struct sink *s)
{
	free(s->bytes);
	free(s->call_len);
}

static void temp_path(char *path, size_t size)
{
	static unsigned serial;
	snprintf(path, size, "/tmp/pareto-reader-%d-%u", (int)getpid(), serial++);
}

static void write_file(const char *path, const char *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

/* The lowest free descriptor: equal before and after means nothing leaked. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd);
	return fd;
}

/*
 * Reads `path` and checks that the bytes are `content` exactly, in calls of
 * exactly block bytes but the last (a regular file is delivered block by
 * block in file order), one call per block.
 */
static void check_file_read(const char *path, const char *content, size_t len, size_t block,
			    unsigned depth, const char *what)
{
	struct sink sink = { 0 };
	struct pr_reader_options opt = { block, depth };
	struct pr_error err = { 0 };
	int rc = pr_read_file(path, &opt, collect, &sink, &err);
	cr_assert_eq(rc, 0, "%s: size %zu block %zu depth %u: rc %d: %s", what, len, block, depth,
		     rc, err.message);
	cr_assert_eq(sink.len, len, "%s: size %zu block %zu depth %u: got %zu bytes", what, len,
		     block, depth, sink.len);
	cr_assert(len == 0 || memcmp(sink.bytes, content, len) == 0,
		  "%s: size %zu block %zu depth %u: bytes differ", what, len, block, depth);
	cr_assert_eq(sink.calls, (len + block - 1) / block, "%s: size %zu block %zu depth %u: %zu calls",
		     what, len, block, depth, sink.calls);
	for (size_t c = 0; c + 1 < sink.calls; c++)
		cr_assert_eq(sink.call_len[c], block, "%s: size %zu depth %u: call %zu has %zu bytes",
			     what, len, depth, c, sink.call_len[c]);
	sink_free(&sink);
}

/* ---- regular files -------------------------------------------------------------- */

Test(uring_reader, files_arrive_whole_and_in_order, .timeout = 120)
{
	const size_t blocks[] = { 4096, 1000, 1 };
	const unsigned depths[] = { 1, 2, 3, 8, 16, 200 /* clamped */ };
	int fds_before = lowest_free_fd();
	for (uint64_t seed = 1; seed <= 3; seed++) {
		for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
			size_t block = blocks[bi];
			size_t sizes[] = { 0,	  1,	     block - 1,	    block,
					   block + 1, 2 * block + 5, 8 * block, 10 * block + 7 };
			char *content = random_bytes(10 * block + 7, seed);
			for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
				if (block == 1 && sizes[si] > 20)
					continue; /* one byte per read: keep it short */
				char path[64], what[64];
				temp_path(path, sizeof path);
				write_file(path, content, sizes[si]);
				snprintf(what, sizeof what, "seed %llu", (unsigned long long)seed);
				for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
					check_file_read(path, content, sizes[si], block, depths[d], what);
				unlink(path);
			}
			free(content);
		}
	}
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}

/* The default options: 1 MiB blocks, 8 in flight. */
Test(uring_reader, default_options)
{
	size_t len = (9u << 20) + 12345;
	char *content = random_bytes(len, 42);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, len);
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file(path, NULL, collect, &sink, &err), 0, "%s", err.message);
	cr_assert_eq(sink.len, len);
	cr_assert_eq(memcmp(sink.bytes, content, len), 0);
	cr_assert_eq(sink.calls, 10);
	unlink(path);
	sink_free(&sink);
	free(content);
}

/*
 * Blocks read from the disk complete long after the cached ones submitted
 * with them, so completions come back out of order; delivery must not. The
 * file is evicted from the page cache, then seeded blocks are read back in.
 * (On tmpfs everything stays cached and completes in order.)
 */
Test(uring_reader, out_of_order_completions_are_delivered_in_order, .timeout = 120)
{
	const size_t block = 64 * 1024, n_blocks = 64, len = n_blocks * block + 333;
	char path[64];
	snprintf(path, sizeof path, "/var/tmp/pareto-reader-%d", (int)getpid());
	for (uint64_t seed = 1; seed <= 12; seed++) {
		char *content = random_bytes(len, seed);
		write_file(path, content, len);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_eq(fdatasync(fd), 0);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		uint64_t state = seed;
		char *warm = malloc(block);
		for (size_t b = 0; b < n_blocks; b++)
			if (next_random(&state) % 3 == 0)
				cr_assert_eq(pread(fd, warm, block, (off_t)(b * block)), (ssize_t)block);
		free(warm);
		close(fd);
		char what[64];
		snprintf(what, sizeof what, "seed %llu", (unsigned long long)seed);
		check_file_read(path, content, len, block, seed % 2 ? 8 : 5, what);
		free(content);
	}
	unlink(path);
}

static int append_some(struct sink *s)
{
	if (s->appends_left) {
		s->appends_left--;
		char more[1000];
		for (size_t i = 0; i < sizeof more; i++)
			more[i] = (char)(s->calls * 7 + i);
		cr_assert_eq(write(s->append_fd, more, sizeof more), (ssize_t)sizeof more);
	}
	return 0;
}

/*
 * The end is where a read returns 0, not the size fstat gave: bytes
 * appended while the file is read are read, up to the end seen. With one
 * read in flight the schedule is exact: blocks 0 and 1 are full and each
 * appends 1000 bytes; block 2 then finds 100 + 2000 bytes (a short read,
 * then 0) and its delivery appends the last 1000, which come too late.
 */
Test(uring_reader, a_growing_file_is_read_to_the_end_seen)
{
	const size_t block = 4096, first_len = 2 * block + 100;
	char *content = random_bytes(first_len, 9);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, first_len);
	struct sink sink = { .also = append_some, .appends_left = 3 };
	sink.append_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	struct pr_reader_options opt = { block, 1 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s", err.message);
	close(sink.append_fd);

	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq((size_t)st.st_size, first_len + 3000);
	cr_assert_eq(sink.len, first_len + 2000);
	char *final = malloc(sink.len);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_eq(read(fd, final, sink.len), (ssize_t)sink.len);
	close(fd);
	cr_assert_eq(memcmp(sink.bytes, final, sink.len), 0);
	unlink(path);
	sink_free(&sink);
	free(final);
	free(content);
}

/* With several reads in flight the schedule is not fixed: whatever was
 * delivered must be a prefix of the final file, and at least the original. */
Test(uring_reader, a_growing_file_with_reads_in_flight_gives_a_prefix)
{
	const size_t block = 4096, first_len = 3 * block + 100;
	for (unsigned depth = 2; depth <= 8; depth++) {
		char *content = random_bytes(first_len, depth);
		char path[64];
		temp_path(path, sizeof path);
		write_file(path, content, first_len);
		struct sink sink = { .also = append_some, .appends_left = 20 };
		sink.append_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		struct pr_reader_options opt = { block, depth };
		struct pr_error err = { 0 };
		cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s", err.message);
		close(sink.append_fd);
		struct stat st;
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_geq(sink.len, first_len, "depth %u", depth);
		cr_assert_leq(sink.len, (size_t)st.st_size, "depth %u", depth);
		char *final = malloc((size_t)st.st_size);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_eq(read(fd, final, (size_t)st.st_size), st.st_size);
		close(fd);
		cr_assert_eq(memcmp(sink.bytes, final, sink.len), 0, "depth %u", depth);
		unlink(path);
		sink_free(&sink);
		free(final);
		free(content);
	}
}

static int append_blocks(struct sink *s)
{
	if (s->appends_left) {
		s->appends_left = 0;
		char *more = random_bytes(s->truncate_to, 99);
		cr_assert_eq(write(s->append_fd, more, s->truncate_to), (ssize_t)s->truncate_to);
		free(more);
	}
	return 0;
}

/*
 * A 0 that came back while an earlier block was still being read may be
 * older than bytes appended since: the reader asks again before it ends.
 * Block 0 comes from the disk, block 1 (the last 100 bytes) from the cache,
 * so block 1 sees the end first; delivering block 0 appends two blocks,
 * which must then be read. Timing decides whether block 1 finished first,
 * so a few tries must show it at least once; every try gives a prefix.
 */
Test(uring_reader, an_end_seen_early_is_checked_again, .timeout = 60)
{
	const size_t block = 1u << 20, first_len = block + 100;
	char path[64];
	snprintf(path, sizeof path, "/var/tmp/pareto-reader-%d", (int)getpid());
	bool reread = false;
	for (int attempt = 0; attempt < 5 && !reread; attempt++) {
		char *content = random_bytes(first_len, 17);
		write_file(path, content, first_len);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_eq(fdatasync(fd), 0);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		char tail[100];
		cr_assert_eq(pread(fd, tail, 100, (off_t)block), 100);
		close(fd);
		struct sink sink = { .also = append_blocks, .appends_left = 1, .truncate_to = 2 * block };
		sink.append_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		struct pr_reader_options opt = { block, 2 };
		struct pr_error err = { 0 };
		cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s", err.message);
		close(sink.append_fd);
		size_t final_len = first_len + 2 * block;
		char *final = malloc(final_len);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert_eq(read(fd, final, final_len), (ssize_t)final_len);
		close(fd);
		cr_assert(sink.len == first_len || sink.len == final_len, "attempt %d: %zu bytes",
			  attempt, sink.len);
		cr_assert_eq(memcmp(sink.bytes, final, sink.len), 0);
		reread = sink.len == final_len;
		sink_free(&sink);
		free(final);
		free(content);
	}
	unlink(path);
	cr_assert(reread, "the end seen before block 0 arrived was never checked again");
}

static int truncate_file(struct sink *s)
{
	if (s->calls == 1)
		cr_assert_eq(ftruncate(s->append_fd, (off_t)s->truncate_to), 0);
	return 0;
}

/* A file cut short while it is read ends where it was cut. */
Test(uring_reader, a_shrinking_file_ends_where_it_was_cut)
{
	const size_t block = 4096, len = 6 * block;
	char *content = random_bytes(len, 77);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, len);
	struct sink sink = { .also = truncate_file, .truncate_to = block + 1000 };
	sink.append_fd = open(path, O_WRONLY | O_CLOEXEC);
	struct pr_reader_options opt = { block, 1 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s", err.message);
	close(sink.append_fd);
	cr_assert_eq(sink.len, block + 1000);
	cr_assert_eq(memcmp(sink.bytes, content, sink.len), 0);
	unlink(path);
	sink_free(&sink);
	free(content);
}

Test(uring_reader, byte_ranges)
{
	const size_t block = 4096, len = block * 9 + 123;
	char *content = random_bytes(len, 5);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, len);
	uint64_t state = 5;
	for (int trial = 0; trial < 300; trial++) {
		uint64_t offset = next_random(&state) % (len + 10);
		uint64_t length = trial % 10 == 0 ? UINT64_MAX : next_random(&state) % (len + 10);
		struct sink sink = { 0 };
		struct pr_reader_options opt = { block, 1 + (unsigned)trial % 9 };
		struct pr_error err = { 0 };
		cr_assert_eq(pr_read_range(path, offset, length, &opt, collect, &sink, &err), 0, "%s",
			     err.message);
		size_t want = offset >= len ? 0 : length < len - offset ? (size_t)length : len - (size_t)offset;
		cr_assert_eq(sink.len, want, "trial %d: offset %llu length %llu: %zu bytes", trial,
			     (unsigned long long)offset, (unsigned long long)length, sink.len);
		cr_assert(want == 0 || memcmp(sink.bytes, content + offset, want) == 0, "trial %d", trial);
		sink_free(&sink);
	}
	unlink(path);
	free(content);
}

/* ---- streams -------------------------------------------------------------------- */

struct writer {
	int fd;
	const char *bytes;
	size_t len;
	uint64_t seed;
	bool pauses; /* sleep now and then, so reads find the pipe empty */
	bool keep_open;
};

static void *write_in_pieces(void *arg)
{
	struct writer *w = arg;
	uint64_t state = w->seed;
	for (size_t at = 0; at < w->len;) {
		uint64_t r = next_random(&state);
		size_t n = 1 + (size_t)(r % 5000);
		if (n > w->len - at)
			n = w->len - at;
		ssize_t k = write(w->fd, w->bytes + at, n);
		if (k <= 0)
			break; /* the reader stopped and closed its end */
		at += (size_t)k;
		if (w->pauses && r % 7 == 0)
			nanosleep(&(struct timespec){ 0, 200000 }, NULL);
	}
	if (!w->keep_open)
		close(w->fd);
	return NULL;
}

/* "/dev/fd/N" of a pipe opens a FIFO: the stream path, one read at a time. */
static void check_pipe(size_t len, size_t block, uint64_t seed, bool pauses, bool nonblocking)
{
	char *content = random_bytes(len, seed);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	if (nonblocking)
		cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	struct writer w = { fds[1], content, len, seed, pauses, false };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, write_in_pieces, &w), 0);
	char path[32];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	struct pr_reader_options opt = { block, 4 };
	int rc = pr_read_file(path, &opt, collect, &sink, &err);
	pthread_join(t, NULL);
	close(fds[0]);
	cr_assert_eq(rc, 0, "seed %llu: %s", (unsigned long long)seed, err.message);
	cr_assert_eq(sink.len, len, "seed %llu block %zu: %zu bytes", (unsigned long long)seed, block,
		     sink.len);
	cr_assert(len == 0 || memcmp(sink.bytes, content, len) == 0, "seed %llu block %zu",
		     (unsigned long long)seed, block);
	for (size_t c = 0; c < sink.calls; c++)
		cr_assert_leq(sink.call_len[c], block);
	sink_free(&sink);
	free(content);
}

Test(uring_reader, pipes_are_read_as_streams, .timeout = 60)
{
	int fds_before = lowest_free_fd();
	for (uint64_t seed = 1; seed <= 6; seed++) {
		check_pipe(300000, seed % 2 ? 8192 : 1u << 20, seed, seed % 3 == 0, false);
		check_pipe(3000, 7, seed, false, false);
		check_pipe(0, 4096, seed, false, false);
	}
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}

/* A non-blocking pipe answers reads with EAGAIN when empty: the reader
 * waits for it with a poll instead of failing or spinning. */
Test(uring_reader, non_blocking_pipes_are_polled, .timeout = 60)
{
	for (uint64_t seed = 1; seed <= 4; seed++)
		check_pipe(200000, 4096, seed, true, true);
}

/* "-" is descriptor 0, read and left open. */
Test(uring_reader, stdin_as_a_pipe, .timeout = 60)
{
	size_t len = 250000;
	char *content = random_bytes(len, 31);
	int saved = dup(STDIN_FILENO);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	struct writer w = { fds[1], content, len, 31, true, false };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, write_in_pieces, &w), 0);
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	int rc = pr_read_file("-", NULL, collect, &sink, &err);
	pthread_join(t, NULL);
	struct stat st;
	cr_assert_eq(fstat(STDIN_FILENO, &st), 0, "stdin was closed");
	cr_assert(S_ISFIFO(st.st_mode));
	dup2(saved, STDIN_FILENO);
	close(saved);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(sink.len, len);
	cr_assert_eq(memcmp(sink.bytes, content, len), 0);
	sink_free(&sink);
	free(content);
}

/* `prog - < file` where something already read part of it: the reader goes
 * on from the descriptor's position and leaves it after what it read. */
Test(uring_reader, stdin_as_a_regular_file)
{
	size_t len = 50000, skip = 1234;
	char *content = random_bytes(len, 8);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, len);
	int saved = dup(STDIN_FILENO);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_eq(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	cr_assert_eq(lseek(STDIN_FILENO, (off_t)skip, SEEK_SET), (off_t)skip);
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	struct pr_reader_options opt = { 4096, 4 };
	int rc = pr_read_file("-", &opt, collect, &sink, &err);
	off_t after = lseek(STDIN_FILENO, 0, SEEK_CUR);
	dup2(saved, STDIN_FILENO);
	close(saved);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(after, (off_t)len);
	cr_assert_eq(sink.len, len - skip);
	cr_assert_eq(memcmp(sink.bytes, content + skip, len - skip), 0);
	unlink(path);
	sink_free(&sink);
	free(content);
}

/* ---- errors and stopping -------------------------------------------------------- */

Test(uring_reader, errors_name_the_file)
{
	int fds_before = lowest_free_fd();
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file("missing.csv", NULL, collect, &sink, &err), -ENOENT);
	cr_assert_str_eq(err.message, "missing.csv: No such file or directory");
	cr_assert_eq(err.code, -ENOENT);
	cr_assert_eq(pr_read_file("/tmp", NULL, collect, &sink, &err), -EISDIR);
	cr_assert_str_eq(err.message, "/tmp: Is a directory");
	cr_assert_eq(pr_read_file("/etc/passwd/x", NULL, collect, &sink, &err), -ENOTDIR);
	cr_assert_str_eq(err.message, "/etc/passwd/x: Not a directory");

	struct pr_reader_options huge = { (size_t)1 << 31, 1 };
	cr_assert_eq(pr_read_file("/etc/passwd", &huge, collect, &sink, &err), -EINVAL);
	cr_assert_str_eq(err.message, "/etc/passwd: block of 2147483648 bytes is above the "
				      "1073741824-byte limit");

	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	char path[32];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	cr_assert_eq(pr_read_range(path, 0, 10, NULL, collect, &sink, &err), -ESPIPE);
	char want[128];
	snprintf(want, sizeof want, "%s: a byte range of a stream: Illegal seek", path);
	cr_assert_str_eq(err.message, want);

	/* Reads that fail: our own memory at address 0 (a regular file whose
	 * reads say EIO), and stdin open for writing only. */
	cr_assert_eq(pr_read_file("/proc/self/mem", NULL, collect, &sink, &err), -EIO);
	cr_assert_str_eq(err.message, "/proc/self/mem: read: Input/output error");
	int saved = dup(STDIN_FILENO);
	cr_assert_eq(dup2(fds[1], STDIN_FILENO), STDIN_FILENO);
	int rc = pr_read_file("-", NULL, collect, &sink, &err);
	dup2(saved, STDIN_FILENO);
	close(saved);
	cr_assert_eq(rc, -EBADF, "%s", err.message);
	cr_assert_str_eq(err.message, "standard input: read: Bad file descriptor");

	close(fds[0]);
	close(fds[1]);
	cr_assert_eq(sink.calls, 0);
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}

/* A consumer's negative code stops the read at once and is returned; the
 * reads still in flight are waited for before the buffers go (ASan would
 * see the kernel write into freed memory otherwise, or a leak). */
Test(uring_reader, a_consumer_can_stop_the_read)
{
	int fds_before = lowest_free_fd();
	const size_t block = 4096, len = 40 * block + 5;
	char *content = random_bytes(len, 3);
	char path[64];
	temp_path(path, sizeof path);
	write_file(path, content, len);
	for (unsigned depth = 1; depth <= 8; depth++) {
		for (size_t stop = 1; stop <= 41; stop += 4) {
			struct sink sink = { .stop_at_call = stop };
			struct pr_reader_options opt = { block, depth };
			struct pr_error err = { 0 };
			cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), -ECANCELED,
				     "depth %u stop %zu", depth, stop);
			cr_assert_eq(sink.calls, stop, "depth %u stop %zu", depth, stop);
			size_t want = stop * block < len ? stop * block : len;
			cr_assert_eq(sink.len, want, "depth %u stop %zu", depth, stop);
			cr_assert_eq(memcmp(sink.bytes, content, want), 0);
			sink_free(&sink);
		}
	}
	/* Large blocks, evicted from the cache: reads are really in flight. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	struct sink sink = { .stop_at_call = 1 };
	cr_assert_eq(pr_read_file(path, &(struct pr_reader_options){ 8192, 16 }, collect, &sink, NULL),
		     -ECANCELED);
	sink_free(&sink);
	unlink(path);
	free(content);
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}

Test(uring_reader, a_consumer_can_stop_a_stream)
{
	signal(SIGPIPE, SIG_IGN); /* the writer finds the pipe closed */
	size_t len = 1u << 20;
	char *content = random_bytes(len, 4);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct writer w = { fds[1], content, len, 4, false, false };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, write_in_pieces, &w), 0);
	char path[32];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	struct sink sink = { .stop_at_call = 3 };
	cr_assert_eq(pr_read_file(path, NULL, collect, &sink, NULL), -ECANCELED);
	close(fds[0]);
	pthread_join(t, NULL);
	cr_assert_eq(sink.calls, 3);
	cr_assert_eq(memcmp(sink.bytes, content, sink.len), 0);
	sink_free(&sink);
	free(content);
}

/* ---- plain reads when registration is refused ------------------------------------ */

#define UNREGISTERED_BLOCK (2u << 20)

static void drop_ipc_lock(rlim_t memlock_bytes)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[2];
	if (syscall(SYS_capget, &header, caps) == 0) {
		caps[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
		syscall(SYS_capset, &header, caps);
	}
	struct rlimit limit = { memlock_bytes, memlock_bytes };
	setrlimit(RLIMIT_MEMLOCK, &limit);
}

static bool registration_refused(void)
{
	struct io_uring ring;
	if (io_uring_queue_init(2, &ring, 0) < 0)
		return false;
	static char buffer[UNREGISTERED_BLOCK];
	struct iovec iov = { buffer, sizeof buffer };
	int rc = io_uring_register_buffers(&ring, &iov, 1);
	io_uring_queue_exit(&ring);
	return rc < 0;
}

/*
 * Without CAP_IPC_LOCK, registered buffers count against RLIMIT_MEMLOCK; at
 * 1 MiB the rings fit (a closed ring is freed a little later: there is room
 * for dozens) but no 2 MiB block does, and the reader must fall back to
 * plain reads. Criterion runs each test in its own process, so the lowered
 * limits end with it.
 */
Test(uring_reader, plain_reads_when_buffers_cannot_be_registered, .timeout = 60)
{
	drop_ipc_lock(1u << 20);
	if (!registration_refused())
		cr_skip_test("cannot make buffer registration fail here");
	const size_t block = UNREGISTERED_BLOCK;
	size_t sizes[] = { 0, 1, block - 1, block, block + 1, 3 * block + 7 };
	char *content = random_bytes(3 * block + 7, 12);
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		char path[64];
		temp_path(path, sizeof path);
		write_file(path, content, sizes[si]);
		for (unsigned depth = 1; depth <= 8; depth *= 2)
			check_file_read(path, content, sizes[si], block, depth, "unregistered");
		unlink(path);
	}
	free(content);
}

/* ---- no io_uring ---------------------------------------------------------------- */

/* With the ring's memory refused, the message says which limit to raise. */
Test(uring_reader, a_memlock_limit_too_low_for_the_ring_is_named)
{
	drop_ipc_lock(0);
	struct io_uring ring;
	int rc = io_uring_queue_init(2, &ring, 0);
	if (rc == 0) {
		io_uring_queue_exit(&ring);
		cr_skip_test("this kernel does not charge rings to RLIMIT_MEMLOCK");
	}
	int fds_before = lowest_free_fd();
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file("/etc/passwd", NULL, collect, &sink, &err), -ENOMEM);
	cr_assert_str_eq(err.message, "io_uring unavailable: Cannot allocate memory "
				      "(RLIMIT_MEMLOCK too low? see ulimit -l)");
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}

/* A seccomp filter that answers io_uring_setup with ENOSYS, as container
 * runtimes do, gives the message that says so. */
Test(uring_reader, io_uring_refused_by_seccomp_is_named)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog program = { sizeof filter / sizeof filter[0], filter };
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program), 0, "%s", strerror(errno));
	int fds_before = lowest_free_fd();
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file("/etc/passwd", NULL, collect, &sink, &err), -ENOSYS);
	cr_assert_str_eq(err.message, "io_uring unavailable: Function not implemented (kernel too "
				      "old or disabled by seccomp/sysctl kernel.io_uring_disabled)");
	cr_assert_eq(sink.calls, 0);
	cr_assert_eq(lowest_free_fd(), fds_before, "a descriptor leaked");
}
