/* ingest.c - file -> io_uring reader -> decoder -> sink; see pareto/ingest.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "decoder.h"
#include "pareto/ingest.h"
#include "uring_reader.h"

struct feed_read {
	struct pr_decoder *decoder;
	struct pr_error *err;
};

static int push_bytes(void *ctx, const char *bytes, size_t len)
{
	struct feed_read *fr = ctx;
	return pr_decoder_push(fr->decoder, bytes, len, fr->err);
}

int pr_feed_read(const char *path, const struct pr_feed_options *opt,
		 const struct pr_feed_sink *sink, struct pr_feed_stats *stats,
		 struct pr_error *err)
{
	struct feed_read fr = { .err = err };
	int rc = pr_decoder_create(&fr.decoder, path, opt, sink, err);
	if (rc < 0)
		return rc;
	rc = pr_read_file(path, NULL, push_bytes, &fr, err);
	if (rc == 0)
		rc = pr_decoder_finish(fr.decoder, err);
	pr_feed_stats_add(stats, pr_decoder_stats(fr.decoder));
	pr_decoder_destroy(fr.decoder);
	return rc;
}

struct ingest {
	struct pr_engine *engine;
	pr_reject_fn on_reject;
	void *ctx;
};

static int apply_record(void *ctx, const struct pr_record *record)
{
	struct ingest *in = ctx;
	return pr_engine_add(in->engine, record);
}

static int forward_reject(void *ctx, const struct pr_reject *reject)
{
	struct ingest *in = ctx;
	return in->on_reject ? in->on_reject(in->ctx, reject) : 0;
}

int pr_ingest_file(struct pr_engine *e, const char *path,
		   const struct pr_feed_options *opt, pr_reject_fn on_reject,
		   void *ctx, struct pr_feed_stats *stats, struct pr_error *err)
{
	struct ingest in = { .engine = e, .on_reject = on_reject, .ctx = ctx };
	struct pr_feed_sink sink = { .ctx = &in, .record = apply_record,
				     .reject = forward_reject };
	return pr_feed_read(path, opt, &sink, stats, err);
}

/* ---- parallel ingest ----------------------------------------------------- */

#define PARALLEL_MIN_BYTES (8u << 20) /* below this one thread is as quick */
#define PROBE_BYTES (64u << 10)       /* header or line end looked for in this */

struct saved_reject {
	struct pr_reject r;
	char *text; /* detail, NUL, raw: owned */
};

struct part {
	pthread_t thread;
	struct pr_engine *engine;
	const char *path;
	const struct pr_feed_options *opt;
	const char *header;
	size_t header_len;
	unsigned lane;
	uint64_t start, end;
	bool last;
	struct pr_decoder *decoder;
	struct saved_reject *rejects;
	size_t reject_count, reject_cap;
	bool out_of_memory;
	int rc;
	struct pr_error err;
};

static int part_record(void *ctx, const struct pr_record *r)
{
	struct part *p = ctx;
	return pr_engine_lane_add(p->engine, p->lane, r);
}

/* Rejects wait until every part is done: only then are line numbers known
 * and can they be told in file order. */
static int part_reject(void *ctx, const struct pr_reject *r)
{
	struct part *p = ctx;
	if (p->reject_count == p->reject_cap) {
		size_t cap = p->reject_cap ? p->reject_cap * 2 : 16;
		struct saved_reject *bigger = realloc(p->rejects, cap * sizeof *bigger);
		if (!bigger) {
			p->out_of_memory = true;
			return -ENOMEM;
		}
		p->rejects = bigger;
		p->reject_cap = cap;
	}
	size_t detail = strlen(r->detail);
	char *text = malloc(detail + 1 + r->raw_len + 1);
	if (!text) {
		p->out_of_memory = true;
		return -ENOMEM;
	}
	memcpy(text, r->detail, detail + 1);
	memcpy(text + detail + 1, r->raw, r->raw_len);
	struct saved_reject *s = &p->rejects[p->reject_count++];
	s->r = *r;
	s->r.detail = text;
	s->r.raw = text + detail + 1;
	s->text = text;
	return 0;
}

static int part_push(void *ctx, const char *bytes, size_t len)
{
	struct part *p = ctx;
	return pr_decoder_push(p->decoder, bytes, len, &p->err);
}

static void *part_run(void *arg)
{
	struct part *p = arg;
	struct pr_feed_sink sink = { p, part_record, part_reject };
	p->rc = pr_decoder_create(&p->decoder, p->path, p->opt, &sink, &p->err);
	if (p->rc == 0)
		p->rc = pr_decoder_push(p->decoder, p->header, p->header_len, &p->err);
	if (p->rc == 0) {
		pr_decoder_seek(p->decoder, 0, p->start);
		p->rc = pr_read_range(p->path, p->start, p->end - p->start, NULL, part_push, p,
				      &p->err);
	}
	if (p->rc == 0 && p->last)
		p->rc = pr_decoder_finish(p->decoder, &p->err);
	return NULL;
}

struct probe {
	char *bytes;
	size_t len;
};

static int probe_collect(void *ctx, const char *bytes, size_t len)
{
	struct probe *pb = ctx;
	size_t take = len < PROBE_BYTES - pb->len ? len : PROBE_BYTES - pb->len;
	memcpy(pb->bytes + pb->len, bytes, take);
	pb->len += take;
	return 0;
}

/* The offset just after the first line end at or after `from`, or 0. */
static uint64_t line_end_after(const char *path, uint64_t from, char *buf)
{
	struct probe pb = { buf, 0 };
	if (pr_read_range(path, from, PROBE_BYTES, NULL, probe_collect, &pb, NULL) < 0)
		return 0;
	const char *nl = memchr(buf, '\n', pb.len);
	return nl ? from + (uint64_t)(nl - buf) + 1 : 0;
}

static int ignore_record(void *ctx, const struct pr_record *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

int pr_ingest_file_parallel(struct pr_engine *e, const char *path,
			    const struct pr_feed_options *opt, unsigned threads,
			    pr_reject_fn on_reject, void *ctx, struct pr_feed_stats *stats,
			    struct pr_error *err)
{
	struct stat st;
	if (threads > PR_LANES_MAX)
		threads = PR_LANES_MAX;
	/* Tests set a small threshold to split small files. */
	const char *min = getenv("PARETO_PARALLEL_MIN_BYTES");
	uint64_t min_bytes = min ? strtoull(min, NULL, 10) : PARALLEL_MIN_BYTES;
	if (threads < 2 || strcmp(path, "-") == 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < min_bytes)
		goto sequential;
	uint64_t size = (uint64_t)st.st_size;
	char *buf = malloc(PROBE_BYTES);
	if (!buf)
		goto sequential;
	struct probe head = { buf, 0 };
	if (pr_read_range(path, 0, PROBE_BYTES, NULL, probe_collect, &head, NULL) < 0 ||
	    head.len < 8) {
		free(buf);
		goto sequential;
	}
	/* Binary records split anywhere on a record boundary; CSV at a line
	 * end after a header without quotes. */
	bool binary = memcmp(buf, PR_BIN_MAGIC, 8) == 0;
	const char *nl = binary ? NULL : memchr(buf, '\n', head.len);
	if (!binary && (!nl || memchr(buf, '"', (size_t)(nl - buf)))) {
		free(buf);
		goto sequential;
	}
	size_t header_len = binary ? PR_BIN_HEADER_BYTES : (size_t)(nl - buf) + 1;
	char *header = malloc(header_len);
	if (!header || head.len < header_len) {
		free(buf);
		free(header);
		goto sequential;
	}
	memcpy(header, buf, header_len);

	/* The header decides errors once (a missing column, another scale),
	 * before threads, and where line numbers start. */
	struct pr_decoder *check;
	struct pr_feed_sink quiet = { NULL, ignore_record, NULL };
	uint64_t base = 0, header_offset;
	int rc = pr_decoder_create(&check, path, opt, &quiet, err);
	if (rc == 0) {
		rc = pr_decoder_push(check, header, header_len, err);
		pr_decoder_position(check, &base, &header_offset);
		pr_decoder_destroy(check);
	}
	if (rc < 0) {
		free(buf);
		free(header);
		return rc;
	}

	struct part parts[PR_LANES_MAX];
	uint64_t cut[PR_LANES_MAX + 1];
	cut[0] = header_len;
	unsigned n = 0;
	for (unsigned k = 1; k < threads; k++) {
		uint64_t records = (size - header_len) / PR_BIN_RECORD_BYTES;
		uint64_t at = binary ? header_len + records * k / threads * PR_BIN_RECORD_BYTES
				     : line_end_after(path, header_len + (size - header_len) * k / threads, buf);
		if (at > cut[n] && at < size)
			cut[++n] = at;
	}
	cut[++n] = size;
	free(buf);
	if (pr_engine_bulk_begin_lanes(e, n) < 0) {
		free(header);
		goto sequential;
	}
	for (unsigned k = 0; k < n; k++)
		parts[k] = (struct part){ .engine = e, .path = path, .opt = opt, .header = header,
					  .header_len = header_len, .lane = k, .start = cut[k],
					  .end = cut[k + 1], .last = k + 1 == n };
	unsigned started = 0;
	for (unsigned k = 1; k < n; k++, started++)
		if (pthread_create(&parts[k].thread, NULL, part_run, &parts[k]) != 0)
			break;
	for (unsigned k = started + 1; k < n; k++)
		part_run(&parts[k]); /* threads that could not start: run here */
	part_run(&parts[0]);
	for (unsigned k = 1; k <= started; k++)
		pthread_join(parts[k].thread, NULL);

	/* A part that does not end idle began inside a quoted field: the split
	 * was wrong for this file, so read it again on one thread. */
	bool split_ok = true, oom = false;
	rc = 0;
	for (unsigned k = 0; k < n; k++) {
		oom |= parts[k].out_of_memory;
		if (k + 1 < n && parts[k].rc == 0 && !pr_decoder_idle(parts[k].decoder))
			split_ok = false;
		if (rc == 0 && parts[k].rc < 0 && !parts[k].out_of_memory) {
			rc = parts[k].rc;
			*err = parts[k].err;
		}
	}
	/* Rejects in file order, with lines counted from the file's start. */
	struct pr_feed_stats sum = { .bytes = header_len };
	for (unsigned k = 0; k < n && rc == 0 && split_ok && !oom; k++) {
		for (size_t i = 0; i < parts[k].reject_count && rc == 0; i++) {
			struct pr_reject r = parts[k].rejects[i].r;
			r.line += base;
			if (on_reject && on_reject(ctx, &r) < 0)
				rc = pr_error_set(err, -ECANCELED, "%s: line %llu: %s", path,
						  (unsigned long long)r.line, r.detail);
		}
		uint64_t lines, offset;
		pr_decoder_position(parts[k].decoder, &lines, &offset);
		base += lines;
		pr_feed_stats_add(&sum, pr_decoder_stats(parts[k].decoder));
	}
	for (unsigned k = 0; k < n; k++) {
		for (size_t i = 0; i < parts[k].reject_count; i++)
			free(parts[k].rejects[i].text);
		free(parts[k].rejects);
		pr_decoder_destroy(parts[k].decoder);
	}
	free(header);
	if (rc < 0 || !split_ok || oom) {
		pr_engine_bulk_abort(e);
		if (rc < 0)
			return rc;
		goto sequential;
	}
	if ((rc = pr_engine_bulk_end(e)) == -ERANGE)
		goto sequential; /* past the volume bound: find the exact record */
	if (rc < 0)
		return pr_error_set(err, rc, "%s: out of memory applying records", path);
	pr_feed_stats_add(stats, &sum);
	return 0;

sequential:
	pr_engine_bulk_begin(e);
	rc = pr_ingest_file(e, path, opt, on_reject, ctx, stats, err);
	int end = pr_engine_bulk_end(e);
	if (rc == 0 && end < 0)
		rc = pr_error_set(err, end, "%s: out of memory applying records", path);
	return rc;
}
