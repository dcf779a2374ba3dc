/*
 * uring_reader.h - reads a whole file or stream through io_uring.
 *
 * Owns one io_uring and a set of preallocated buffers. For a regular file it
 * keeps `depth` reads of `block_bytes` in flight at increasing offsets and
 * hands the blocks to the consumer strictly in file order (completions may
 * arrive out of order; short reads are resubmitted for the rest). For a pipe,
 * a terminal or stdin ("-") it reads sequentially, one read in flight, since
 * concurrent reads of a stream have no defined order.
 * No blocking read(): every read is an io_uring operation.
 */
#ifndef PARETO_URING_READER_H
#define PARETO_URING_READER_H

#include <stddef.h>
#include <stdint.h>

#include "pareto/error.h"

struct pr_reader_options {
	size_t block_bytes; /* default 1 MiB */
	unsigned depth;     /* reads in flight for files; default 8 */
};

/* Consumer: returns 0 to go on, negative to stop (that code is returned). */
typedef int (*pr_reader_consume_fn)(void *ctx, const char *bytes, size_t len);

/*
 * Reads `path` ("-" is standard input) to its end. Returns 0 or a negative
 * errno-style code with a one-line message naming the file and the cause:
 * "feed.csv: No such file or directory", "io_uring unavailable: ...".
 * opt may be NULL for the defaults.
 */
int pr_read_file(const char *path, const struct pr_reader_options *opt,
		 pr_reader_consume_fn consume, void *ctx, struct pr_error *err);

/*
 * Reads `length` bytes of a regular file from `offset` (fewer if the file
 * ends first), in order, as pr_read_file does. Streams cannot: -ESPIPE.
 */
int pr_read_range(const char *path, uint64_t offset, uint64_t length,
		  const struct pr_reader_options *opt, pr_reader_consume_fn consume, void *ctx,
		  struct pr_error *err);

/*
 * Many byte ranges of one regular file through one ring and one set of
 * buffers (parallel ingest reads its chunks, about 1 MiB each, one after
 * another). open: the file, its ring and buffers, or a negative code with
 * *err set (a stream: -ESPIPE). read: as pr_read_range. One thread at a time.
 */
struct pr_range_reader;
int pr_range_reader_open(struct pr_range_reader **out, const char *path,
			 const struct pr_reader_options *opt, struct pr_error *err);
int pr_range_reader_read(struct pr_range_reader *rr, uint64_t offset, uint64_t length,
			 pr_reader_consume_fn consume, void *ctx, struct pr_error *err);
void pr_range_reader_close(struct pr_range_reader *rr);

#endif
