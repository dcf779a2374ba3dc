/*
 * fuzz_decoder.c - any bytes as a feed (decoder.h): decoded whole, then
 * again in pieces whose sizes the input itself decides, the two must hand
 * the sink the same records and rejects in the same order, with the same
 * statistics. Every record must keep feed.h's bounds (ids of 1..64 bytes,
 * stores of at most 32), every reject its location.
 *
 * The first 3 bytes choose the options, so the fuzzer explores them too:
 *   [0] bits 0-2 the delimiter (, ; tab | or whitespace), bit 3 amounts as
 *       quantity x price, bit 4 a strftime time format, bit 5 a sink that
 *       refuses some records (they become overflow rejects), bit 6 a sink
 *       that stops the feed at its k-th reject, bit 7 short lines only;
 *   [1] the scale (mod 10), k and the line limit;
 *   [2] the largest piece of the second decoding, less one.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#include "decoder.h"
#include "fuzz.h"

struct trace {
	uint64_t hash;     /* of every record and reject, in order */
	uint64_t records, rejects;
	bool refuse;       /* refuse records whose amount is 13 mod 97 */
	unsigned stop_at;  /* stop the feed at this reject (1-based); 0: never */
	size_t max_line;
};

static void mix(struct trace *t, const void *p, size_t n)
{
	t->hash = XXH3_64bits_withSeed(p, n, t->hash);
}

static int on_record(void *ctx, const struct pr_record *r)
{
	struct trace *t = ctx;
	FUZZ_CHECK(r->customer_len >= 1 && r->customer_len <= 64, "customer of %u bytes",
		   r->customer_len);
	FUZZ_CHECK(r->store_len <= 32, "store of %u bytes", r->store_len);
	FUZZ_CHECK(r->store_len == 0 || r->store, "a store without bytes");
	if (t->refuse && r->amount_minor % 97 == 13)
		return -ERANGE;
	t->records++;
	int64_t nums[2] = { r->ts_ms, r->amount_minor };
	uint8_t lens[3] = { r->customer_len, r->store_len, r->rounded };
	mix(t, nums, sizeof nums);
	mix(t, lens, sizeof lens);
	mix(t, r->customer, r->customer_len);
	if (r->store_len)
		mix(t, r->store, r->store_len);
	return 0;
}

static int on_reject(void *ctx, const struct pr_reject *j)
{
	struct trace *t = ctx;
	FUZZ_CHECK(j->reason < PR_REJECT_REASON_COUNT, "reason %d", (int)j->reason);
	FUZZ_CHECK(j->line >= 1, "a reject on line %llu", (unsigned long long)j->line);
	FUZZ_CHECK(j->detail && j->source, "a reject without its detail or source");
	FUZZ_CHECK(j->raw || j->raw_len == 0, "raw bytes missing");
	t->rejects++;
	uint64_t where[3] = { j->line, j->byte_offset, j->column };
	mix(t, where, sizeof where);
	mix(t, &j->reason, sizeof j->reason);
	/* A too-long line is cut short wherever the pushes split it, and its
	 * length is told only when it came in one piece. */
	if (j->reason != PR_REJECT_LINE_TOO_LONG) {
		mix(t, j->detail, strlen(j->detail));
		if (j->raw_len)
			mix(t, j->raw, j->raw_len);
	}
	if (t->stop_at && t->rejects == t->stop_at)
		return -1;
	return 0;
}

struct outcome {
	struct trace trace;
	struct pr_feed_stats stats;
	uint64_t line, offset;
	int rc;
};

/* Decodes feed in pieces of at most max_piece bytes (0: whole), their
 * sizes drawn from seed. */
static void decode(const struct pr_feed_options *opt, const struct trace *init,
		   const uint8_t *feed, size_t len, size_t max_piece, uint64_t seed,
		   struct outcome *out)
{
	memset(out, 0, sizeof *out);
	out->trace = *init;
	struct pr_feed_sink sink = { &out->trace, on_record, on_reject };
	struct pr_decoder *d;
	struct pr_error err;
	int rc = pr_decoder_create(&d, "fuzz", opt, &sink, &err);
	FUZZ_CHECK(rc == 0, "create: %s", err.message);
	size_t at = 0;
	while (rc == 0 && at < len) {
		size_t n = len - at;
		if (max_piece) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			size_t piece = 1 + (size_t)((seed >> 33) % max_piece);
			n = piece < n ? piece : n;
		}
		rc = pr_decoder_push(d, (const char *)feed + at, n, &err);
		at += n;
	}
	if (rc == 0)
		rc = pr_decoder_finish(d, &err);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ECANCELED, "rc %d", rc);
	FUZZ_CHECK(rc != -ECANCELED || init->stop_at, "canceled with a sink that never stops");
	out->rc = rc;
	out->stats = *pr_decoder_stats(d);
	pr_decoder_position(d, &out->line, &out->offset);
	pr_decoder_destroy(d);
}

int fuzz_decoder(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint8_t c0 = data[0], c1 = data[1], c2 = data[2];
	data += 3, size -= 3;

	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	static const char delims[8] = { ',', ';', '\t', '|', 0, ',', ',', ',' };
	if ((c0 & 7) == 4)
		opt.delimiter_kind = PR_DELIM_WHITESPACE;
	else
		opt.delimiter = delims[c0 & 7];
	if (c0 & 8) {
		opt.column[PR_FIELD_AMOUNT] = NULL;
		opt.column[PR_FIELD_QUANTITY] = "qty";
		opt.column[PR_FIELD_PRICE] = "price";
	}
	if (c0 & 16)
		opt.ts_format = "%d/%m/%Y %H:%M";
	opt.scale = c1 % 10;
	struct trace init = { .hash = 0, .refuse = c0 & 32 };
	if (c0 & 64)
		init.stop_at = 1 + (c1 >> 5);
	if (c0 & 128)
		opt.max_line_bytes = 8 + (c1 >> 2);

	struct outcome whole, pieces;
	decode(&opt, &init, data, size, 0, 0, &whole);
	decode(&opt, &init, data, size, 1 + (size_t)c2, XXH3_64bits(data, size), &pieces);

	FUZZ_CHECK(whole.rc == pieces.rc, "rc %d whole, %d in pieces", whole.rc, pieces.rc);
	FUZZ_CHECK(whole.trace.records == pieces.trace.records,
		   "%llu records whole, %llu in pieces",
		   (unsigned long long)whole.trace.records, (unsigned long long)pieces.trace.records);
	FUZZ_CHECK(whole.trace.rejects == pieces.trace.rejects,
		   "%llu rejects whole, %llu in pieces",
		   (unsigned long long)whole.trace.rejects, (unsigned long long)pieces.trace.rejects);
	FUZZ_CHECK(whole.trace.hash == pieces.trace.hash, "records or rejects differ");
	const struct pr_feed_stats *a = &whole.stats, *b = &pieces.stats;
	uint64_t reasons = 0;
	for (int i = 0; i < PR_REJECT_REASON_COUNT; i++)
		reasons += a->by_reason[i];
	FUZZ_CHECK(a->rejected == reasons, "rejected %llu, by reason %llu",
		   (unsigned long long)a->rejected, (unsigned long long)reasons);
	FUZZ_CHECK(a->records == whole.trace.records, "stats count %llu records, the sink %llu",
		   (unsigned long long)a->records, (unsigned long long)whole.trace.records);
	if (whole.rc == 0) {
		/* A feed that stopped early stopped inside a push, whose bytes
		 * and lines depend on where the push ended. */
		FUZZ_CHECK(a->rejected == whole.trace.rejects, "stats count %llu rejects, the sink %llu",
			   (unsigned long long)a->rejected, (unsigned long long)whole.trace.rejects);
		FUZZ_CHECK(memcmp(a, b, sizeof *a) == 0, "statistics differ (lines %llu and %llu)",
			   (unsigned long long)a->lines, (unsigned long long)b->lines);
		FUZZ_CHECK(whole.line == pieces.line && whole.offset == pieces.offset,
			   "position %llu/%llu whole, %llu/%llu in pieces",
			   (unsigned long long)whole.line, (unsigned long long)whole.offset,
			   (unsigned long long)pieces.line, (unsigned long long)pieces.offset);
		FUZZ_CHECK(a->bytes == size, "%llu bytes counted of %zu",
			   (unsigned long long)a->bytes, size);
	}
	return 0;
}

FUZZ_ENTRY(fuzz_decoder)
