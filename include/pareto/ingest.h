/*
 * pareto/ingest.h - feeds into an engine: read (io_uring), decode, apply.
 *
 * The one call the report command and the daemon's file feeds share. A bad
 * line, or a record the engine refuses (-ERANGE: time out of range or the
 * volume bound), is handed to on_reject with its location and changes no
 * total; on_reject returning negative stops the feed (--strict).
 */
#ifndef PARETO_INGEST_H
#define PARETO_INGEST_H

#include "pareto/engine.h"
#include "pareto/error.h"
#include "pareto/feed.h"

/*
 * Reads and decodes the file at path ("-": standard input) to its end,
 * handing every record and reject to the sink, and adds the feed's counts
 * to *stats. Returns as pr_ingest_file below.
 */
int pr_feed_read(const char *path, const struct pr_feed_options *opt,
		 const struct pr_feed_sink *sink, struct pr_feed_stats *stats,
		 struct pr_error *err);

typedef int (*pr_reject_fn)(void *ctx, const struct pr_reject *reject);

/*
 * Ingests the file at path ("-": standard input) to its end, adding the
 * feed's counts to *stats. Returns 0, -ECANCELED if on_reject stopped it,
 * -EINVAL for a feed that cannot be read as configured (missing column,
 * binary scale mismatch), or another negative code for I/O failures, with
 * *err naming the file and the cause.
 */
int pr_ingest_file(struct pr_engine *e, const char *path,
		   const struct pr_feed_options *opt, pr_reject_fn on_reject,
		   void *ctx, struct pr_feed_stats *stats, struct pr_error *err);

/*
 * pr_ingest_file on `threads` threads: a regular file is cut (CSV at line
 * ends, binary records on record boundaries) into chunks of about 1 MiB that
 * the threads decode, each through its own io_uring, and hand record by
 * record to the thread that owns the record's shard, which applies them as
 * they come. Memory stays within the engine's memory_limit_bytes (besides
 * the aggregates). Rejects are reported in file order with their exact line
 * numbers. The result equals pr_ingest_file's byte for byte; where it
 * could not be decided in parallel (a cut inside a quoted field, the volume
 * bound), the rest of the file is read on this thread. Reads small files
 * and streams on this thread. The engine must not be in bulk mode.
 */
int pr_ingest_file_parallel(struct pr_engine *e, const char *path,
			    const struct pr_feed_options *opt, unsigned threads,
			    pr_reject_fn on_reject, void *ctx, struct pr_feed_stats *stats,
			    struct pr_error *err);

#endif
