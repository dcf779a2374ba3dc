/* ingest.c - file -> io_uring reader -> decoder -> sink; see pareto/ingest.h.
 * Several threads on one file: ingest_parallel.c. */
#include <errno.h>

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
