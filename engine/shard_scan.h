/*
 * shard_scan.h - reading every shard at one point of paretod's record
 * stream, beside ingest, and finishing the work on a thread of its own:
 * how store rankings are rebuilt (store_build.h) and lapsed customers
 * listed while feeds stream, without draining the apply threads or
 * stopping the server thread.
 *
 * pr_shard_scan_start, on the server thread, hands each apply thread a
 * call after the records staged for it (pr_shard_owners_call): the scan
 * function runs there once every record staged before the start is
 * applied and none after, so the owners together read the shards as a
 * drained engine would have been at the start. Each stores that it is
 * done with release; the scan's thread waits for all of them (acquire),
 * runs the finish function and says done with release; the server polls
 * pr_shard_scan_done (acquire) and ends the scan with pr_shard_scan_end.
 *
 * The finish may read customer ids from the engine's tables, shared with
 * the apply threads that add more (id_table.h): from start to end the
 * scan holds the engine's ids (engine_internal.h), so that no drain frees
 * an array they outgrew meanwhile. It must read nothing else of the engine
 * but its options.
 *
 * No scan may start while a checkpoint reads the engine: nothing may be
 * handed to the apply threads then (persistence.h).
 */
#ifndef PARETO_SHARD_SCAN_H
#define PARETO_SHARD_SCAN_H

#include <stdbool.h>

#include "pareto/engine.h"

struct pr_shard_scan;

/* On apply thread `owner` of `owners`: reads its shards (s % owners ==
 * owner) and writes only what is its own in arg. */
typedef void pr_shard_scan_fn(void *arg, unsigned owner, unsigned owners);
/* On the scan's thread, once every owner has scanned. */
typedef void pr_shard_scan_finish_fn(void *arg);

/* The number of owners a scan of e would call (0: e has no apply
 * threads). */
unsigned pr_shard_scan_owners(const struct pr_engine *e);

/*
 * Server thread. Starts a scan of e as of every record counted so far. 0;
 * -ENOTSUP without apply threads; -ENOMEM or pthread_create's error
 * negated (nothing started then).
 */
int pr_shard_scan_start(struct pr_engine *e, pr_shard_scan_fn *scan, pr_shard_scan_finish_fn *finish,
			void *arg, struct pr_shard_scan **out);

/* Whether the scan and its finish are over: pr_shard_scan_end will not
 * wait. */
bool pr_shard_scan_done(const struct pr_shard_scan *s);

/* Server thread. Waits for the scan if it is not over, joins its thread
 * and frees it (not arg). */
void pr_shard_scan_end(struct pr_shard_scan *s);

#endif
