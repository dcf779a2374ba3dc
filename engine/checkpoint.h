/*
 * checkpoint.h - the engine's whole state in one file, written atomically
 * and read back into an engine that answers exactly as the original.
 *
 * What is kept: the counters (records, volume, watermark), the store table
 * in index order, and per shard its customers (ids exactly, with their
 * hashes, and their aggregates), its pairs and its purchase-day history
 * (the log, or the set it became). The pair index, the id tables' slots and
 * the day set's slots are rebuilt on load from what they index; the change
 * journal is not kept (the loaded engine starts a new epoch with nothing
 * noted, so rankings are built whole). Beside the state the file carries a
 * caller's blob (paretod: each feed's position), written and read in the
 * same file so that state and positions can never disagree.
 *
 * The file (little-endian, 8-byte aligned sections):
 *
 *   header, 64 bytes: magic "PRCKPT\r\n", format version, header size,
 *     payload size, XXH3-64 of the payload, a layout signature (the sizes
 *     of the raw structs below, so a build with another layout refuses the
 *     file), the wall time written, XXH3-64 of the header's first 56 bytes.
 *   payload: sections, each opened by a 4-byte tag and 4 bytes of its own:
 *     "ENGN" what the engine keeps, a probe of its id hash, the counters;
 *     "BLOB" the caller's bytes;
 *     "STOR" the store table: count, hashes, id lengths, id bytes;
 *     "SHRD" x 256: the shard's customers (count, value size, hashes, id
 *       lengths, id bytes, then their values raw: struct customer_aggregate,
 *       128 bytes each, or for an engine that keeps nothing but totals
 *       struct customer_total, 8), its
 *       pairs (count, byte length, then per pair LEB128 varints: customer,
 *       store, the seven sums and the month zigzagged; about 25 bytes
 *       instead of 72) and its days (log or set; count, byte length, per
 *       day the customer and the difference from the day before, about 3
 *       bytes instead of 8).
 *   "END!" closes the payload.
 *
 * Writing: PATH.tmp is written in large sequential writes (the aggregates
 * straight from their chunks, no copy), fsync'ed, renamed over PATH, and
 * the directory fsync'ed: a crash leaves the old checkpoint or the new one,
 * never a mix. Reading maps the file, checks the header, the size and the
 * payload's checksum before it builds anything, then builds a new engine
 * and checks every index it holds (pairs of customers, stores of pairs,
 * days of customers) and the bound its sums keep (summed magnitudes within
 * the volume of all records, times within years 0..9999) as it goes, so
 * that even a file altered with matching checksums cannot make the engine
 * read out of bounds or overflow: a truncated, corrupt or foreign file is
 * refused with an error naming the file and the fault, and no engine is
 * returned.
 *
 * Cost: O(state) both ways, sequential; see docs/ARCHITECTURE.md for the
 * figures at 1M customers. Bump PR_CHECKPOINT_VERSION whenever
 * struct customer_aggregate, pair_aggregate, pr_period_sums or
 * pr_recent_days change meaning (their sizes are checked, not their
 * meaning).
 */
#ifndef PARETO_CHECKPOINT_H
#define PARETO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>
#include <stdbool.h>

#include "pareto/engine.h"
#include "pareto/error.h"

#define PR_CHECKPOINT_VERSION 1
#define PR_CHECKPOINT_HEADER_BYTES 64

struct pr_checkpoint_stats {
	uint64_t bytes;       /* the file's size */
	int64_t write_us;     /* writing, syncing and renaming; or reading and building */
	int64_t sync_us;      /* of which fsync (writes only) */
	int64_t written_ms;   /* wall time of the write (read: as recorded) */
};

/*
 * Writes the engine's state and `blob` (blob_len bytes, may be 0) to path,
 * atomically (path.tmp, fsync, rename, fsync of the directory). Drains the
 * engine's queued records first; the engine must not be in a bulk load.
 * Returns 0 or a negative errno code with *err naming the file and the
 * cause; on failure path is untouched and path.tmp removed. *st may be NULL.
 */
int pr_checkpoint_write(struct pr_engine *e, const char *path, const void *blob,
			size_t blob_len, struct pr_checkpoint_stats *st, struct pr_error *err);

/* The same, on a thread beside the engine's writer: sets *released
 * (release) as soon as it reads the engine no more, before the fsync, so
 * that the writer may go on (acquire) meanwhile; at the latest on return. */
int pr_checkpoint_write_releasing(struct pr_engine *e, const char *path, const void *blob,
				  size_t blob_len, struct pr_checkpoint_stats *st,
				  struct pr_error *err, _Atomic bool *released);

/*
 * Reads path into a new engine. The engine takes `opt` for everything but
 * what the state is made of: keep_periods, keep_stores and keep_days come
 * from the file (customers_hint is raised to the customers held). *blob
 * gets a malloc'ed copy of the caller's bytes (free it; NULL if none) and
 * *blob_len their length. Returns 0, -ENOENT if there is no file, -EINVAL
 * for a file that is not a checkpoint, is truncated, corrupt, of another
 * version or layout, or was written with another id hash, -ENOMEM; *err
 * says which, naming the file.
 */
int pr_checkpoint_read(const char *path, const struct pr_engine_options *opt,
		       struct pr_engine **out, void **blob, size_t *blob_len,
		       struct pr_checkpoint_stats *st, struct pr_error *err);

#endif
