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
 * Writing blocks the server thread (no fork: it would double the memory at
 * the worst time); INFO persistence says how long the last one took.
 * Owns struct pr_persistence (s->persist) and the positions read at start.
 */
#ifndef PARETO_PERSISTENCE_H
#define PARETO_PERSISTENCE_H

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

/* From the loop: a checkpoint when the interval has passed and anything
 * changed since the last. */
void pr_persist_tick(struct pr_server *s, int64_t now_ms);

/* After the loop: the final checkpoint, unless SHUTDOWN NOSAVE. 0 or a
 * negative code with *err (paretod then exits with status 1). */
int pr_persist_final(struct pr_server *s, struct pr_error *err);
void pr_persist_skip_final(struct pr_server *s);

/* SAVE: +OK once the file is renamed into place. */
void pr_persist_command_save(struct pr_server *s, struct pr_client *c,
			     const struct pr_resp_command *cmd);

/* INFO's "# Persistence" section and the Prometheus metrics, appended to
 * out (NUL-terminated; cut short at size). Return the length written. */
size_t pr_persist_info(const struct pr_server *s, char *out, size_t size);
size_t pr_persist_metrics(const struct pr_server *s, char *out, size_t size);

void pr_persist_destroy(struct pr_server *s);

#endif
