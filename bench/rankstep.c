/*
 * rankstep.c - what one step of paretod's ranker costs, by batch size,
 * without sockets or a producer in the way.
 *
 *   pareto-rankstep LOAD.csv MORE.csv [BATCH...]
 *
 * Loads LOAD.csv into an engine that keeps what paretod keeps, starts the
 * ranker on the company's all-time ranking and waits for its first build.
 * Then, for each batch size k (default 1000 10000 100000), it applies the
 * next k records of MORE.csv (read into memory first, reused from the start
 * when used up) and times pr_ranker_wait: the cut on the writer's side, the
 * ranker's step and the publication, the part of freshness the ranker owns.
 * Wall time moves with whatever else runs on the machine; so it also
 * prints the CPU time of the ranker's threads (the ranker and the rebaser,
 * from /proc's schedstat) per step, which moves much less. Prints, per k,
 * the median and the 90th percentile of 15 steps in ms and the ranker
 * threads' CPU ms per step, and one JSON line per k on stdout.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pareto/engine.h"
#include "pareto/ingest.h"
#include "ranker.h"

#define STEPS 15

/* MORE.csv in memory: records whose ids point into `bytes` once all are
 * read (the buffer moves while it grows; `at` says where each record's
 * customer id starts, its store id right after). */
struct stored {
	struct pr_record *records;
	size_t *at;
	char *bytes;
	size_t count, capacity, bytes_used, bytes_capacity;
};

static int keep_record(void *ctx, const struct pr_record *r)
{
	struct stored *s = ctx;
	if (s->count == s->capacity) {
		s->capacity = s->capacity ? 2 * s->capacity : 1 << 16;
		void *p = realloc(s->records, s->capacity * sizeof *s->records);
		void *q = p ? realloc(s->at, s->capacity * sizeof *s->at) : NULL;
		if (p)
			s->records = p;
		if (!q)
			return -ENOMEM;
		s->at = q;
	}
	size_t need = r->customer_len + r->store_len;
	if (s->bytes_used + need > s->bytes_capacity) {
		s->bytes_capacity = 2 * (s->bytes_capacity + need);
		char *p = realloc(s->bytes, s->bytes_capacity);
		if (!p)
			return -ENOMEM;
		s->bytes = p;
	}
	s->at[s->count] = s->bytes_used;
	s->records[s->count++] = *r;
	memcpy(s->bytes + s->bytes_used, r->customer, r->customer_len);
	memcpy(s->bytes + s->bytes_used + r->customer_len, r->store, r->store_len);
	s->bytes_used += need;
	return 0;
}

static int skip_reject(void *ctx, const struct pr_reject *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* CPU time of every thread of this process but the main one (the
 * ranker's threads), in ms. */
static double helper_threads_cpu_ms(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	double ms = 0;
	long self = (long)getpid();
	for (struct dirent *t; (t = readdir(d));) {
		long tid = strtol(t->d_name, NULL, 10);
		if (tid <= 0 || tid == self)
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
		FILE *f = fopen(path, "r");
		unsigned long long ns = 0;
		if (f) {
			if (fscanf(f, "%llu", &ns) != 1)
				ns = 0;
			fclose(f);
		}
		ms += (double)ns / 1e6;
	}
	closedir(d);
	return ms;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void die(const char *what, const struct pr_error *err)
{
	fprintf(stderr, "pareto-rankstep: %s: %s\n", what, err && err->message[0] ? err->message : "failed");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pareto-rankstep LOAD.csv MORE.csv [BATCH...]\n");
		return 2;
	}
	struct pr_error err = { 0 };
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 1 << 20;
	struct pr_engine *e;
	if (pr_engine_create(&e, &opt, &err) < 0)
		die("engine", &err);
	struct pr_feed_options fo;
	pr_feed_options_init(&fo);
	struct pr_feed_stats stats = { 0 };
	if (pr_ingest_file(e, argv[1], &fo, skip_reject, NULL, &stats, &err) < 0)
		die(argv[1], &err);
	struct stored more = { 0 };
	struct pr_feed_sink sink = { &more, keep_record, skip_reject };
	if (pr_feed_read(argv[2], &fo, &sink, &stats, &err) < 0 || !more.count)
		die(argv[2], &err);
	for (size_t i = 0; i < more.count; i++) {
		more.records[i].customer = more.bytes + more.at[i];
		more.records[i].store = more.records[i].customer + more.records[i].customer_len;
	}

	struct pr_ranker *ranker;
	if (pr_ranker_create(&ranker, e, 0, 0, &err) < 0)
		die("ranker", &err);
	pr_ranker_want(ranker, PR_WINDOW_ALL);
	double t0 = now_ms();
	struct pr_published *p = pr_ranker_wait(ranker, PR_WINDOW_ALL);
	if (!p)
		die("first ranking", NULL);
	fprintf(stderr, "%llu customers ranked in %.0f ms\n",
		(unsigned long long)pr_ranking_customers(p->ranking), now_ms() - t0);
	pr_published_release(p);

	static const unsigned long defaults[] = { 1000, 10000, 100000 };
	int sizes = argc > 3 ? argc - 3 : 3;
	size_t next = 0;
	for (int s = 0; s < sizes; s++) {
		unsigned long k = argc > 3 ? strtoul(argv[3 + s], NULL, 10) : defaults[s];
		double ms[STEPS];
		double cpu0 = helper_threads_cpu_ms();
		for (int step = 0; step < STEPS; step++) {
			for (unsigned long i = 0; i < k; i++, next = (next + 1) % more.count)
				if (pr_engine_add(e, &more.records[next]) < 0)
					die("add", NULL);
			double a = now_ms();
			p = pr_ranker_wait(ranker, PR_WINDOW_ALL);
			ms[step] = now_ms() - a;
			if (!p)
				die("ranking", NULL);
			pr_published_release(p);
		}
		double cpu = (helper_threads_cpu_ms() - cpu0) / STEPS;
		qsort(ms, STEPS, sizeof *ms, compare_doubles);
		struct pr_ranker_stats st;
		pr_ranker_stats(ranker, &st);
		fprintf(stderr, "batch %7lu records: step p50 %7.2f ms, p90 %7.2f ms; ranker CPU "
			"%7.2f ms a step, %.2f us a record; %llu rebases so far\n",
			k, ms[STEPS / 2], ms[STEPS * 9 / 10], cpu, cpu * 1e3 / (double)k,
			(unsigned long long)st.rebases);
		printf("{\"batch\":%lu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"cpu_ms\":%.3f}\n", k,
		       ms[STEPS / 2], ms[STEPS * 9 / 10], cpu);
	}
	pr_ranker_destroy(ranker);
	pr_engine_destroy(e);
	free(more.records);
	free(more.at);
	free(more.bytes);
	return 0;
}
