/*
 * persistence.h - paretod's checkpoints: the engine's state and each feed's
 * position in one file (checkpoint.h), written on SAVE, every
 * --checkpoint-interval seconds when anything changed, and at stop (SIGTERM,
 * SIGINT, SHUTDOWN; not SHUTDOWN NOSAVE) before the socket is removed;
 * read at start, before the feeds open, so that each file feed resumes
 * where the checkpoint stopped (feeds.h) and the counters (records,
 * rejected lines by reason, feed bytes) go on from theirs.
 *
 * Beside the engine's state the checkpoint holds the daemon's blob: the
 * scale the amounts were read with (a restart with another --scale is
 * refused: its minor units would differ), the feed counters as of the
 * positions, and the positions. A checkpoint that cannot be read stops the
 * start with the reason: starting empty would overwrite it at the next save.
 *
 * Periodic checkpoints and BGSAVE are written by a thread of their own
 * while the server thread goes on answering: from a consistent engine,
 * since meanwhile nothing writes it. The server thread stops decoding
 * feeds (their reads wait, producers feel TCP backpressure) and cutting
 * the ranker's batches, and whatever else would write the engine (INGEST,
 * a query that must wait for a new ranking) first waits for the thread to
 * have read it (pr_persist_wait_engine; SAVE and the stop wait for the
 * whole checkpoint). So queries answered from what is published or from
 * the engine's state (CUSTOMER) go on; ingest pauses while the engine is
 * read and written out, and goes on during the fsync and rename. No
 * fork: a copy-on-write child would double the memory under ingest. SAVE
 * writes on the server thread, as Redis' does. INFO persistence says how
 * long the last one took. Owns struct pr_persistence (s->persist) and the
 * positions read at start.
 */
#ifndef PARETO_PERSISTENCE_H
#define PARETO_PERSISTENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "feeds.h"
#include "resp.h"
#include "server.h"

/* At start, after the engine is created and before the feeds open: loads
 * opt.checkpoint_path if it exists. 0 or a negative code with *err. */
int pr_persist_open(struct pr_server *s, struct pr_error *err);

/* The checkpoint's position of the feed named source (as given), or NULL. */
const struct pr_feed_position *pr_persist_position(struct pr_server *s, const char *source);

/* Writes a checkpoint now (why: for the log). 0 or a negative code with
 * *err; -ENOENT without a checkpoint path. */
int pr_persist_save(struct pr_server *s, const char *why, struct pr_error *err);

/* Starts writing a checkpoint on a thread of its own (why: for the log).
 * 0 once started; -EBUSY while one is being written; -ENOENT without a
 * checkpoint path; -ENOMEM. */
int pr_persist_start(struct pr_server *s, const char *why, struct pr_error *err);

/* Whether a checkpoint is reading the engine: nothing may write it. */
bool pr_persist_writing(const struct pr_server *s);

/* Waits until no checkpoint reads the engine (its file may still be
 * synced and renamed). */
void pr_persist_wait_engine(struct pr_server *s);

/* Waits until the checkpoint being written, if any, is done. */
void pr_persist_wait(struct pr_server *s);

/* From the loop: takes a finished checkpoint's result; starts one when the
 * interval has passed and anything changed since the last. */
void pr_persist_tick(struct pr_server *s, int64_t now_ms);

/* After the loop: the final checkpoint, unless SHUTDOWN NOSAVE. 0 or a
 * negative code with *err (paretod then exits with status 1). */
int pr_persist_final(struct pr_server *s, struct pr_error *err);
void pr_persist_skip_final(struct pr_server *s);

/* SAVE: +OK once the file is renamed into place. BGSAVE: starts one on
 * its thread. */
void pr_persist_command_save(struct pr_server *s, struct pr_client *c,
			     const struct pr_resp_command *cmd);
void pr_persist_command_bgsave(struct pr_server *s, struct pr_client *c,
			       const struct pr_resp_command *cmd);

/* INFO's "# Persistence" section and the Prometheus metrics, appended to
 * out (NUL-terminated; cut short at size). Return the length written. */
size_t pr_persist_info(const struct pr_server *s, char *out, size_t size);
size_t pr_persist_metrics(const struct pr_server *s, char *out, size_t size);

void pr_persist_destroy(struct pr_server *s);

#endif
