/*
 * store_build.h - every store's ranking of a window, built beside ingest:
 * paretod's store queries (STORES, SCORE's store flags, TOP, PARETO, RISK
 * and KEYCLIENTS of a store) then neither drain the apply threads nor stop
 * the server thread while the rankings are sorted.
 *
 * A shard scan (shard_scan.h): each apply thread lists the (store,
 * customer) revenues of its shards at the start's point of its stream, so
 * the lists hold exactly the records counted at the start, as a build on
 * a drained engine then would; the scan's thread sorts them into rankings
 * (ranking_build_stores_from_pairs); the server polls pr_store_build_done
 * and takes them with pr_store_build_finish.
 */
#ifndef PARETO_STORE_BUILD_H
#define PARETO_STORE_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "pareto/engine.h"
#include "pareto/ranking.h"

struct pr_store_build;

/* What a build yields: every store's ranking, and the records it reflects. */
struct pr_store_rankings {
	struct pr_ranking **rankings; /* count; the caller's to destroy */
	uint32_t count;
	uint64_t records;
	bool has_watermark;
	int64_t watermark_ms;
};

/*
 * Server thread. Starts a build of window w's store rankings as of every
 * record counted so far. 0; -ENOTSUP without apply threads (the server
 * thread applies, so nothing may read beside it) or if the engine does not
 * keep what the rankings need; -ENOMEM, or pthread_create's error negated.
 * Nothing is left running on failure.
 */
int pr_store_build_start(struct pr_engine *e, enum pr_window w, struct pr_store_build **out);

/* Whether the build is over: pr_store_build_finish will not wait. */
bool pr_store_build_done(const struct pr_store_build *b);

/* Server thread. Waits for the build if it is not over, and frees it: 0
 * with *out filled, or -ENOMEM. */
int pr_store_build_finish(struct pr_store_build *b, struct pr_store_rankings *out);

#endif
