/* test_uring_reader.c - whole files and streams through io_uring, in order. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uring_reader.h"

struct sink {
	char *bytes;
	size_t len, cap;
	size_t calls;
	size_t stop_after; /* calls; 0: never */
};

static int collect(void *ctx, const char *bytes, size_t len)
{
	struct sink *s = ctx;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->bytes = realloc(s->bytes, s->cap);
	}
	memcpy(s->bytes + s->len, bytes, len);
	s->len += len;
	if (s->stop_after && ++s->calls >= s->stop_after)
		return -ECANCELED;
	return 0;
}

static char *temp_file(const char *content, size_t len)
{
	static char path[64];
	strcpy(path, "/tmp/pareto-reader-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Every size around block boundaries, every depth: the bytes arrive whole
 * and in order (completions come back out of order; short reads and the
 * reads past the end must all be accounted for, or the reader hangs). */
Test(uring_reader, files_arrive_whole_and_in_order, .timeout = 120)
{
	const size_t block = 4096;
	size_t max = block * 10 + 7;
	char *content = malloc(max);
	srand(11);
	for (size_t i = 0; i < max; i++)
		content[i] = (char)rand();
	size_t sizes[] = { 0, 1, block - 1, block, block + 1, 2 * block + 5, 3 * block,
			   7 * block + 3, 8 * block, 9 * block - 1, max };
	unsigned depths[] = { 1, 2, 3, 8, 16 };
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		char *path = temp_file(content, sizes[s]);
		for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
			for (int repeat = 0; repeat < 20; repeat++) {
				struct sink sink = { 0 };
				struct pr_reader_options opt = { block, depths[d] };
				struct pr_error err = { 0 };
				cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s",
					     err.message);
				cr_assert_eq(sink.len, sizes[s], "size %zu depth %u", sizes[s], depths[d]);
				cr_assert(sizes[s] == 0 || memcmp(sink.bytes, content, sizes[s]) == 0,
					  "size %zu depth %u: bytes differ", sizes[s], depths[d]);
				free(sink.bytes);
			}
		}
		unlink(path);
	}
	free(content);
}

struct writer_arg {
	int fd;
	const char *bytes;
	size_t len;
};

static void *write_in_pieces(void *arg)
{
	struct writer_arg *w = arg;
	for (size_t at = 0; at < w->len;) {
		size_t n = 1 + (size_t)rand() % 3000;
		if (n > w->len - at)
			n = w->len - at;
		ssize_t k = write(w->fd, w->bytes + at, n);
		if (k <= 0)
			break;
		at += (size_t)k;
	}
	close(w->fd);
	return NULL;
}

Test(uring_reader, pipes_are_read_as_streams)
{
	size_t len = 300000;
	char *content = malloc(len);
	for (size_t i = 0; i < len; i++)
		content[i] = (char)(i * 31 + 7);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct writer_arg w = { fds[1], content, len };
	pthread_t t;
	pthread_create(&t, NULL, write_in_pieces, &w);
	char path[32];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	struct pr_reader_options opt = { 8192, 4 };
	cr_assert_eq(pr_read_file(path, &opt, collect, &sink, &err), 0, "%s", err.message);
	pthread_join(t, NULL);
	close(fds[0]);
	cr_assert_eq(sink.len, len);
	cr_assert_eq(memcmp(sink.bytes, content, len), 0);
	free(sink.bytes);
	free(content);
}

Test(uring_reader, errors_name_the_file)
{
	struct sink sink = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_read_file("/nonexistent/feed.csv", NULL, collect, &sink, &err), -ENOENT);
	cr_assert_str_eq(err.message, "/nonexistent/feed.csv: No such file or directory");
	cr_assert_eq(pr_read_file("/tmp", NULL, collect, &sink, &err), -EISDIR);
	cr_assert_str_eq(err.message, "/tmp: Is a directory");
}

Test(uring_reader, a_consumer_can_stop_the_read)
{
	size_t len = 100000;
	char *content = calloc(1, len);
	char *path = temp_file(content, len);
	struct sink sink = { .stop_after = 2 };
	struct pr_reader_options opt = { 4096, 8 };
	cr_assert_eq(pr_read_file(path, &opt, collect, &sink, NULL), -ECANCELED);
	cr_assert_eq(sink.len, 8192);
	unlink(path);
	free(sink.bytes);
	free(content);
}

Test(uring_reader, byte_ranges)
{
	const size_t block = 4096, len = block * 9 + 123;
	char *content = malloc(len);
	for (size_t i = 0; i < len; i++)
		content[i] = (char)(i * 7 + i / 4096);
	char *path = temp_file(content, len);
	srand(5);
	for (int trial = 0; trial < 300; trial++) {
		uint64_t offset = (uint64_t)rand() % (len + 10);
		uint64_t length = trial % 10 == 0 ? UINT64_MAX : (uint64_t)rand() % (len + 10);
		struct sink sink = { 0 };
		struct pr_reader_options opt = { block, 1 + (unsigned)trial % 9 };
		struct pr_error err = { 0 };
		cr_assert_eq(pr_read_range(path, offset, length, &opt, collect, &sink, &err), 0, "%s",
			     err.message);
		size_t want = offset >= len ? 0 : length < len - offset ? (size_t)length : len - (size_t)offset;
		cr_assert_eq(sink.len, want, "offset %llu length %llu", (unsigned long long)offset,
			     (unsigned long long)length);
		cr_assert(want == 0 || memcmp(sink.bytes, content + offset, want) == 0);
		free(sink.bytes);
	}
	unlink(path);
	free(content);
}
