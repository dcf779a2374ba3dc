/*
 * decoder.h - turns a feed's bytes into records, whatever their format.
 *
 * Owns the decoding state of one feed: the CSV column mapping (from the
 * header row) or the binary header, the partial line carried between pushes,
 * line numbers and the feed's statistics. The format is chosen by the first
 * bytes: a binary magic ("PRTREC02", or the older "PRTREC01"), otherwise
 * CSV.
 *
 * Bytes may be pushed in pieces of any size (a quoted field, a CRLF or a
 * binary record may straddle two pushes); the records handed to the sink are
 * the same whatever the split. Cost: O(bytes), no allocation per record.
 */
#ifndef PARETO_DECODER_H
#define PARETO_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pareto/error.h"
#include "pareto/feed.h"

struct pr_decoder;

/*
 * Creates a decoder for one feed named `source` (used in rejects and error
 * messages; copied). The options and the sink are copied too.
 */
int pr_decoder_create(struct pr_decoder **out, const char *source,
		      const struct pr_feed_options *opt,
		      const struct pr_feed_sink *sink, struct pr_error *err);

/*
 * Consumes len bytes. Returns 0, or negative with *err filled when the feed
 * cannot go on: the header lacks a mapped column (-EINVAL), a binary header
 * has another scale than the options (-EINVAL), or the sink's reject callback
 * asked to stop (-ECANCELED).
 */
int pr_decoder_push(struct pr_decoder *d, const char *bytes, size_t len,
		    struct pr_error *err);

/*
 * End of input: decodes a last line that has no line end, or rejects a
 * truncated binary record or an unterminated quoted field. An empty feed or
 * one with only a header is fine. Same returns as push.
 */
int pr_decoder_finish(struct pr_decoder *d, struct pr_error *err);

const struct pr_feed_stats *pr_decoder_stats(const struct pr_decoder *d);

/*
 * Decoding a later part of a file (parallel ingest): push the header line,
 * then seek to where the part starts: `line` physical lines and `offset`
 * bytes into the feed. Statistics restart from zero for the part.
 */
void pr_decoder_seek(struct pr_decoder *d, uint64_t line, uint64_t offset);

/* Physical lines and bytes of the complete records decoded so far. */
void pr_decoder_position(const struct pr_decoder *d, uint64_t *line, uint64_t *offset);

/*
 * Where the header ended: the bytes before it (blank lines, a byte order
 * mark and the header line, or the 16-byte binary header) are what a
 * decoder must be given before pr_decoder_seek to resume the feed later
 * (paretod's checkpoints). 0 until the header is complete.
 */
uint64_t pr_decoder_header_end(const struct pr_decoder *d);

/* True if nothing is pending: no partial record, no line being skipped.
 * A part that ends on a record boundary leaves its decoder idle. */
bool pr_decoder_idle(const struct pr_decoder *d);

void pr_decoder_destroy(struct pr_decoder *d);

#endif
