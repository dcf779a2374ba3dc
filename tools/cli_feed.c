/* cli_feed.c - feed options, reject reporting and ingest for the commands. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pareto/ingest.h"

void cli_feed_init(struct cli_feed *f)
{
	memset(f, 0, sizeof *f);
	pr_feed_options_init(&f->opt);
	f->show_errors = 10;
}

static int parse_uint(const char *arg, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_feed_option(struct cli_feed *f, struct pr_engine_options *engine, int id,
		    const char *arg)
{
	unsigned long v;
	switch (id) {
	case OPT_STRICT:
		f->strict = true;
		return 0;
	case OPT_REJECTS:
		f->rejects_path = arg;
		return 0;
	case OPT_SHOW_ERRORS:
		if (parse_uint(arg, 1000000, &v) < 0) {
			fprintf(stderr, "pareto: --show-errors: expected a count, not '%s'\n", arg);
			return EXIT_USAGE;
		}
		f->show_errors = (unsigned)v;
		return 0;
	case OPT_QUIET:
		f->quiet = true;
		return 0;
	}
	if (id < PR_OPT_DELIMITER || id >= PR_OPT_LAST || (id > PR_OPT_SCALE && !engine))
		return EXIT_USAGE;
	struct pr_error err = { 0 };
	if (pr_option_apply(id, arg, &f->opt, engine, &err) < 0) {
		fprintf(stderr, "pareto: %s\n", err.message);
		return EXIT_USAGE;
	}
	return 0;
}

static void csv_field(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			fputc('"', out);
		fputc(s[i], out);
	}
	fputc('"', out);
}

static int on_reject(void *ctx, const struct pr_reject *r)
{
	struct cli_feed *f = ctx;
	if (f->rejects) {
		csv_field(f->rejects, r->source, strlen(r->source));
		fprintf(f->rejects, ",%llu,%llu,%u,%s,", (unsigned long long)r->line,
			(unsigned long long)r->byte_offset, r->column,
			pr_reject_reason_name(r->reason));
		csv_field(f->rejects, r->detail, strlen(r->detail));
		fputc(',', f->rejects);
		csv_field(f->rejects, r->raw, r->raw_len);
		fputc('\n', f->rejects);
	}
	if (f->strict)
		return -ECANCELED;
	if (!f->quiet && f->shown < f->show_errors) {
		if (f->progress_line)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "pareto: %s:%llu: %s\n", r->source,
			(unsigned long long)r->line, r->detail);
		f->shown++;
	}
	return 0;
}

struct run {
	struct cli_feed *feed;
	int (*record)(void *ctx, const struct pr_record *r);
	void *ctx;
};

static int run_record(void *ctx, const struct pr_record *r)
{
	struct run *run = ctx;
	return run->record(run->ctx, r);
}

static int run_reject(void *ctx, const struct pr_reject *r)
{
	return on_reject(((struct run *)ctx)->feed, r);
}

static int open_rejects(struct cli_feed *f)
{
	if (f->rejects_path && !f->rejects) {
		if (!(f->rejects = fopen(f->rejects_path, "w"))) {
			fprintf(stderr, "pareto: %s: %s\n", f->rejects_path, strerror(errno));
			return 1;
		}
		fputs("file,line,byte_offset,column,reason,detail,raw\n", f->rejects);
	}
	return 0;
}

int cli_feed_run(struct cli_feed *f, const char *path,
		 int (*record)(void *ctx, const struct pr_record *r), void *ctx)
{
	if (open_rejects(f))
		return 1;
	struct run run = { .feed = f, .record = record, .ctx = ctx };
	struct pr_feed_sink sink = { .ctx = &run, .record = run_record, .reject = run_reject };
	struct pr_error err = { 0 };
	int rc = pr_feed_read(path, &f->opt, &sink, &f->stats, &err);
	if (rc < 0) {
		fprintf(stderr, "pareto: %s\n", err.message);
		return rc == -ECANCELED || rc == -EINVAL ? EXIT_USAGE : 1;
	}
	return 0;
}

static int add_to_engine(void *engine, const struct pr_record *r)
{
	return pr_engine_add(engine, r);
}

/* ---- progress -------------------------------------------------------------- */

struct progress {
	struct pr_feed_progress counts;
	uint64_t total_bytes; /* of the regular files; 0: unknown (a stream) */
	_Atomic bool done;
	pthread_t thread;
	struct timespec start;
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* One line, redrawn four times a second: bytes, records/s, ETA. */
static void *show_progress(void *arg)
{
	struct progress *p = arg;
	const struct timespec tick = { 0, 250000000 };
	while (!atomic_load_explicit(&p->done, memory_order_relaxed)) {
		nanosleep(&tick, NULL);
		double elapsed = seconds_since(&p->start);
		uint64_t bytes = atomic_load_explicit(&p->counts.bytes, memory_order_relaxed);
		uint64_t records = atomic_load_explicit(&p->counts.records, memory_order_relaxed);
		char eta[32] = "";
		if (p->total_bytes && bytes && bytes < p->total_bytes) {
			double left = elapsed * (double)(p->total_bytes - bytes) / (double)bytes;
			snprintf(eta, sizeof eta, ", ETA %d:%02d", (int)left / 60, (int)left % 60);
		}
		char of[32] = "";
		if (p->total_bytes)
			snprintf(of, sizeof of, " of %.1f", (double)p->total_bytes / 1e6);
		fprintf(stderr, "\r\033[Kpareto: %.1f%s MB read, %.2f M records, %.2f M records/s%s",
			(double)bytes / 1e6, of, (double)records / 1e6,
			elapsed > 0 ? (double)records / elapsed / 1e6 : 0.0, eta);
		fflush(stderr);
	}
	fputs("\r\033[K", stderr);
	return NULL;
}

static bool progress_start(struct progress *p, struct cli_feed *f, char **paths, int count)
{
	if (f->quiet || !isatty(STDERR_FILENO))
		return false;
	memset(p, 0, sizeof *p);
	for (int i = 0; i < count; i++) {
		struct stat st;
		if (strcmp(paths[i], "-") != 0 && stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
			p->total_bytes += (uint64_t)st.st_size;
	}
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	if (pthread_create(&p->thread, NULL, show_progress, p) != 0)
		return false;
	f->opt.progress = &p->counts;
	f->progress_line = true;
	return true;
}

static void progress_stop(struct progress *p, struct cli_feed *f)
{
	atomic_store_explicit(&p->done, true, memory_order_relaxed);
	pthread_join(p->thread, NULL);
	f->opt.progress = NULL;
	f->progress_line = false;
}

static int ingest_all(struct cli_feed *f, struct pr_engine *e, char **paths, int count);

int cli_feed_ingest(struct cli_feed *f, struct pr_engine *e, char **paths, int count)
{
	struct progress progress;
	bool shown = progress_start(&progress, f, paths, count);
	int rc = ingest_all(f, e, paths, count);
	if (shown)
		progress_stop(&progress, f);
	return rc;
}

static int ingest_all(struct cli_feed *f, struct pr_engine *e, char **paths, int count)
{
	unsigned threads = pr_engine_options(e)->threads;
	if (threads > 1) {
		if (open_rejects(f))
			return 1;
		for (int i = 0; i < count; i++) {
			struct pr_error err = { 0 };
			int rc = pr_ingest_file_parallel(e, paths[i], &f->opt, threads, on_reject, f,
							 &f->stats, &err);
			if (rc < 0) {
				fprintf(stderr, "pareto: %s\n", err.message);
				return rc == -ECANCELED || rc == -EINVAL ? EXIT_USAGE : 1;
			}
		}
		return 0;
	}
	pr_engine_bulk_begin(e);
	for (int i = 0; i < count; i++) {
		int rc = cli_feed_run(f, paths[i], add_to_engine, e);
		if (rc) {
			pr_engine_bulk_abort(e);
			return rc;
		}
	}
	if (pr_engine_bulk_end(e) < 0) {
		fprintf(stderr, "pareto: out of memory applying the records\n");
		return 1;
	}
	return 0;
}

void cli_feed_summary(const struct cli_feed *f)
{
	if (f->quiet)
		return;
	if (f->stats.rejected && !f->strict) {
		fprintf(stderr, "pareto: %llu bad lines skipped (",
			(unsigned long long)f->stats.rejected);
		const char *sep = "";
		for (int r = 0; r < PR_REJECT_REASON_COUNT; r++) {
			if (f->stats.by_reason[r]) {
				fprintf(stderr, "%s%s: %llu", sep,
					pr_reject_reason_name((enum pr_reject_reason)r),
					(unsigned long long)f->stats.by_reason[r]);
				sep = ", ";
			}
		}
		fprintf(stderr, ")%s\n", f->rejects ? "" : "; --rejects FILE lists them all");
	}
	if (f->stats.rounded)
		fprintf(stderr, "pareto: warning: %llu amounts had more than %u decimals "
				"and were rounded half to even\n",
			(unsigned long long)f->stats.rounded, f->opt.scale);
}

void cli_feed_close(struct cli_feed *f)
{
	if (f->rejects)
		fclose(f->rejects);
	f->rejects = NULL;
}

char *cli_money(char *buf, size_t size, int64_t minor, unsigned scale, bool grouped)
{
	uint64_t mag = minor < 0 ? -(uint64_t)minor : (uint64_t)minor;
	uint64_t unit = 1;
	for (unsigned i = 0; i < scale; i++)
		unit *= 10;
	char digits[32];
	int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(mag / unit));
	char *p = buf, *end = buf + size - 1;
	if (minor < 0 && p < end)
		*p++ = '-';
	for (int i = 0; i < n && p < end; i++) {
		*p++ = digits[i];
		if (grouped && (n - i - 1) % 3 == 0 && i != n - 1 && p < end)
			*p++ = ',';
	}
	if (scale && p < end) {
		*p++ = '.';
		uint64_t frac = mag % unit;
		for (unsigned i = scale; i-- > 0 && p < end;) {
			uint64_t d = frac;
			for (unsigned k = 0; k < i; k++)
				d /= 10;
			*p++ = (char)('0' + d % 10);
		}
	}
	*p = 0;
	return buf;
}
