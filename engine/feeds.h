/*
 * feeds.h - paretod's feed sources: where records come from, read through
 * the server's io_uring (see server.h) and decoded into its engine.
 *
 * A --feed SOURCE is one of
 *   PATH           a file read to its end (a pipe or FIFO: to its EOF);
 *   -              standard input, to its end;
 *   follow:PATH    a growing file followed like `tail -F`: read to its end,
 *                  then appended bytes are picked up as they arrive (inotify
 *                  read through the ring; a 5 ms poll timer where inotify is
 *                  unavailable). Rotation by rename (PATH names a new file):
 *                  the old file is read to its end, its last line decoded
 *                  even without a line end, and the new file read from its
 *                  start with its own header. Truncation (the file is
 *                  shorter than what was read): read again from its start;
 *                  a first line equal to the file's header is taken as the
 *                  header, anything else as data under the old header. An
 *                  unfinished last line waits for its line end; it is not a
 *                  bad line unless the file is truncated under it;
 *   unix:PATH      a Unix stream socket producers connect to;
 *   tcp:HOST:PORT  the same over TCP (HOST may be empty for every address,
 *                  [v6] in brackets; PORT 0 picks a free port, logged).
 *
 * Each producer connection is a feed of its own: CSV with a header line, or
 * binary records after their 16-byte header (include/pareto/record.h),
 * recognised by the first bytes as for files. Producers come and go; a
 * producer that disconnects inside a line or a binary record loses only
 * that unfinished record, counted as a `truncated` reject and logged, so
 * the totals count exactly the complete records received. A producer may
 * name itself and number its records in an opening line (producers.h):
 * records it sent before, on an earlier connection or before a restart
 * from a checkpoint, are then skipped, so each counts once.
 *
 * Owns every struct pr_feed (in s->feeds), their decoders and buffers, the
 * ready queue (s->ready: feeds with bytes waiting to be decoded) and the
 * inotify watch. Per feed at most one read (or accept) and one poll timer
 * are in flight; a feed's buffer is read again only once it has been
 * decoded, so memory per feed is bounded (256 KiB per file, 64 KiB per
 * producer) and a fast producer waits for the decoder (TCP backpressure).
 *
 * Cost: O(bytes); ingest is bounded per loop turn by ingest_batch_bytes and
 * shared round robin between feeds with bytes waiting.
 */
#ifndef PARETO_FEEDS_H
#define PARETO_FEEDS_H

#include "pareto/error.h"
#include "pareto/feed.h"
#include "server.h"

/* Opens one source (files are opened, sockets bound and listening). */
int pr_feeds_open(struct pr_server *s, const char *source, struct pr_error *err);

/* Arms the first reads and accepts; once, when the loop starts. */
void pr_feeds_start(struct pr_server *s);

/* Decodes at most ingest_batch_bytes of waiting feed bytes. */
void pr_feeds_turn(struct pr_server *s);

/* Frees every feed (after the ring is gone) and removes socket files. */
void pr_feeds_destroy(struct pr_server *s);

/*
 * Checkpoints (persistence.h). A file or followed file stands at its
 * decoder's position: the bytes up to the end of the last complete record
 * (what the engine holds), with the header the decoder was given. A restart
 * whose --feed names the same file (same device and inode, at least that
 * long, the same 4 KiB at its start and before the position) resumes it
 * there: no record is read twice or skipped. Standard input and producer
 * sockets have no position: producers resend, and a producer that named
 * itself has its next record number kept instead (producers.h).
 */
struct pr_feed_position {
	const char *source;       /* the --feed SOURCE as given */
	const char *header;       /* the bytes a resuming decoder is given first */
	uint32_t header_len;
	uint64_t offset, line;    /* after the last complete record */
	uint64_t dev, ino;        /* the file */
	uint64_t head_hash, tail_hash; /* XXH3 of its 4 KiB at 0 and before offset */
	uint64_t pending_bytes;   /* decoded past offset (an unfinished record):
	                           * read again after a restart */
};

/* Fills out[0..max) with the positions of the feeds that have one and
 * returns how many there are; pointers hold until the next feed turn.
 * The engine must have no queued records (pr_server_drain). */
size_t pr_feeds_positions(struct pr_server *s, struct pr_feed_position *out, size_t max);

/* Shared with INGEST (server.c). */
void pr_feed_describe_reject(const char *source, const struct pr_reject *r);

#endif
