/*
 * fuzz_parallel.c - any bytes as a file read on several threads
 * (pr_ingest_file_parallel, cut into chunks of 256 bytes or more) against
 * the same file read on one (pr_ingest_file): ingest.h promises the same
 * result byte for byte. Compared: the return, the statistics, every reject
 * in order, the engine's counters, every ranking of every window kept and
 * every store's (ids, revenues, ranks), and each ranked customer's history.
 *
 * Byte [0]: bit 0 the lean engine of a default report (totals only), bit 1
 * three threads instead of two, bit 2 a 64 KiB memory limit (small rings,
 * decoders waiting for owners); byte [1]: the scale (mod 10).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fuzz.h"
#include "pareto/ingest.h"
#include "pareto/ranking.h"

struct rejects {
	uint64_t hash, count;
};

static int on_reject(void *ctx, const struct pr_reject *j)
{
	struct rejects *r = ctx;
	uint64_t where[4] = { j->line, j->byte_offset, j->column, (uint64_t)j->reason };
	r->hash = XXH3_64bits_withSeed(where, sizeof where, r->hash);
	if (j->reason != PR_REJECT_LINE_TOO_LONG) { /* its detail depends on the reads */
		r->hash = XXH3_64bits_withSeed(j->detail, strlen(j->detail), r->hash);
		r->hash = XXH3_64bits_withSeed(j->raw, j->raw_len, r->hash);
	}
	r->count++;
	return 0;
}

struct outcome {
	struct pr_engine *engine;
	struct pr_feed_stats stats;
	struct rejects rejects;
	int rc;
};

static void ingest(const char *path, const struct pr_engine_options *eo,
		   const struct pr_feed_options *fo, unsigned threads, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	struct pr_error err;
	FUZZ_CHECK(pr_engine_create(&o->engine, eo, &err) == 0, "engine: %s", err.message);
	o->rc = threads > 1 ? pr_ingest_file_parallel(o->engine, path, fo, threads, on_reject,
						     &o->rejects, &o->stats, &err)
			    : pr_ingest_file(o->engine, path, fo, on_reject, &o->rejects, &o->stats,
					     &err);
	if (o->rc == 0)
		FUZZ_CHECK(pr_engine_drain(o->engine) == 0, "drain");
}

static void same_customer(const struct pr_engine *a, const struct pr_engine *b,
			  const struct pr_ranked *x)
{
	struct pr_customer_info ia, ib;
	int ra = pr_engine_customer(a, x->customer, x->customer_len, &ia);
	int rb = pr_engine_customer(b, x->customer, x->customer_len, &ib);
	FUZZ_CHECK(ra == rb, "customer lookups %d and %d", ra, rb);
	if (ra == 0)
		FUZZ_CHECK(memcmp(ia.revenue_minor, ib.revenue_minor, sizeof ia.revenue_minor) == 0 &&
				   ia.purchases == ib.purchases &&
				   ia.purchase_days == ib.purchase_days &&
				   ia.first_ms == ib.first_ms && ia.last_ms == ib.last_ms &&
				   ia.lapsed == ib.lapsed,
			   "customer '%.*s' differs", (int)x->customer_len, x->customer);
}

static void same_ranking(const struct pr_engine *ea, const struct pr_engine *eb,
			 const struct pr_ranking *a, const struct pr_ranking *b, const char *what)
{
	uint64_t n = pr_ranking_customers(a);
	FUZZ_CHECK(n == pr_ranking_customers(b), "%s: %llu and %llu customers", what,
		   (unsigned long long)n, (unsigned long long)pr_ranking_customers(b));
	FUZZ_CHECK(pr_ranking_revenue(a) == pr_ranking_revenue(b), "%s: revenue", what);
	for (uint64_t k = 1; k <= n; k++) {
		struct pr_ranked x, y;
		FUZZ_CHECK(pr_ranking_at(a, k, &x) == 0 && pr_ranking_at(b, k, &y) == 0, "rank");
		FUZZ_CHECK(x.customer_len == y.customer_len &&
				   memcmp(x.customer, y.customer, x.customer_len) == 0 &&
				   x.revenue_minor == y.revenue_minor &&
				   x.competition_rank == y.competition_rank,
			   "%s: rank %llu differs", what, (unsigned long long)k);
		if (ea)
			same_customer(ea, eb, &x);
	}
}

static void same_engines(const struct pr_engine *a, const struct pr_engine *b, bool lean)
{
	struct pr_engine_state sa, sb;
	pr_engine_state(a, &sa);
	pr_engine_state(b, &sb);
	FUZZ_CHECK(sa.records == sb.records && sa.customers == sb.customers &&
			   sa.stores == sb.stores && sa.has_watermark == sb.has_watermark &&
			   (!sa.has_watermark || sa.watermark_ms == sb.watermark_ms),
		   "engine counters differ: %llu and %llu records",
		   (unsigned long long)sa.records, (unsigned long long)sb.records);
	for (int w = 0; w < (lean ? 1 : PR_WINDOW_COUNT); w++) {
		struct pr_ranking *ra, *rb;
		int ca = pr_ranking_build(a, (enum pr_window)w, -1, &ra, NULL);
		int cb = pr_ranking_build(b, (enum pr_window)w, -1, &rb, NULL);
		FUZZ_CHECK(ca == 0 && cb == 0, "rankings %d and %d", ca, cb);
		same_ranking(lean || w ? NULL : a, b, ra, rb, pr_window_name((enum pr_window)w));
		pr_ranking_destroy(ra);
		pr_ranking_destroy(rb);
	}
	if (lean)
		return;
	for (uint32_t s = 0; s < sa.stores; s++) {
		uint32_t la, lb;
		const char *ia = pr_engine_store_id(a, s, &la), *ib = pr_engine_store_id(b, s, &lb);
		FUZZ_CHECK(la == lb && memcmp(ia, ib, la) == 0, "store %u differs", s);
	}
	struct pr_ranking **sta, **stb;
	uint32_t na, nb;
	FUZZ_CHECK(pr_ranking_build_stores(a, PR_WINDOW_ALL, &sta, &na, NULL) == 0 &&
			   pr_ranking_build_stores(b, PR_WINDOW_ALL, &stb, &nb, NULL) == 0 && na == nb,
		   "store rankings");
	for (uint32_t s = 0; s < na; s++) {
		same_ranking(NULL, NULL, sta[s], stb[s], "store");
		pr_ranking_destroy(sta[s]);
		pr_ranking_destroy(stb[s]);
	}
	free(sta);
	free(stb);
}

int fuzz_parallel(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t c0 = data[0], c1 = data[1];
	data += 2, size -= 2;
	const char *path = fuzz_scratch_path("feed");
	setenv("PARETO_PARALLEL_MIN_BYTES", "1", 1); /* split even small files */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0 && (!size || write(fd, data, size) == (ssize_t)size), "write %s", path);
	close(fd);

	bool lean = c0 & 1;
	struct pr_engine_options eo;
	pr_engine_options_init(&eo);
	eo.customers_hint = 64;
	if (lean)
		eo.keep_periods = eo.keep_stores = eo.keep_days = false;
	if (c0 & 4)
		eo.memory_limit_bytes = 64 << 10;
	struct pr_feed_options fo;
	pr_feed_options_init(&fo);
	fo.scale = c1 % 10;

	struct outcome one, many;
	ingest(path, &eo, &fo, 1, &one);
	ingest(path, &eo, &fo, c0 & 2 ? 3 : 2, &many);
	unlink(path);
	FUZZ_CHECK(one.rc == many.rc, "rc %d on one thread, %d on several", one.rc, many.rc);
	FUZZ_CHECK(one.rejects.count == many.rejects.count, "%llu rejects on one thread, %llu on several",
		   (unsigned long long)one.rejects.count, (unsigned long long)many.rejects.count);
	FUZZ_CHECK(one.rejects.hash == many.rejects.hash, "rejects differ");
	if (one.rc == 0) {
		FUZZ_CHECK(memcmp(&one.stats, &many.stats, sizeof one.stats) == 0,
			   "statistics differ: %llu and %llu records",
			   (unsigned long long)one.stats.records, (unsigned long long)many.stats.records);
		same_engines(one.engine, many.engine, lean);
	}
	pr_engine_destroy(one.engine);
	pr_engine_destroy(many.engine);
	return 0;
}

FUZZ_ENTRY(fuzz_parallel)
