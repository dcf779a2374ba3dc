/*
 * test_decoder.c - CSV and binary feeds: quoting, line ends, mapping,
 * rejects with their locations, strict mode, long lines in constant memory,
 * the CDNOW file, and property tests: random feeds whose every record and
 * reject is known in advance, decoded whole and in random-size pieces.
 *
 * Property seeds are 1..N; PARETO_TEST_SEED=S runs seed S alone. Every
 * failure message names its seed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "decoder.h"
#include "timeparse.h"

#ifndef PARETO_SOURCE_DIR
#define PARETO_SOURCE_DIR "."
#endif
#define CDNOW_PATH PARETO_SOURCE_DIR "/tests/data/CDNOW_master.txt"

/* ---- a sink that keeps everything ------------------------------------------ */

struct seen_record {
	int64_t ts_ms, amount_minor;
	uint8_t customer_len, store_len;
	char customer[PR_CUSTOMER_MAX_BYTES + 1], store[PR_STORE_MAX_BYTES + 1];
};

struct seen_reject {
	uint64_t line, offset;
	unsigned column;
	enum pr_reject_reason reason;
	char detail[200];
	char raw[260];
	size_t raw_len;
};

struct collector {
	struct seen_record *records;
	size_t n_records, cap_records;
	struct seen_reject *rejects;
	size_t n_rejects, cap_rejects;
	bool stop_on_reject;
	int64_t refuse_amount; /* record() refuses this amount (if nonzero) */
};

static void collector_reset(struct collector *c)
{
	free(c->records);
	free(c->rejects);
	memset(c, 0, sizeof *c);
}

static struct seen_record *add_record(struct collector *c)
{
	if (c->n_records == c->cap_records) {
		c->cap_records = c->cap_records ? 2 * c->cap_records : 64;
		c->records = realloc(c->records, c->cap_records * sizeof *c->records);
		cr_assert_not_null(c->records);
	}
	struct seen_record *s = &c->records[c->n_records++];
	memset(s, 0, sizeof *s);
	return s;
}

static struct seen_reject *add_reject(struct collector *c)
{
	if (c->n_rejects == c->cap_rejects) {
		c->cap_rejects = c->cap_rejects ? 2 * c->cap_rejects : 64;
		c->rejects = realloc(c->rejects, c->cap_rejects * sizeof *c->rejects);
		cr_assert_not_null(c->rejects);
	}
	struct seen_reject *s = &c->rejects[c->n_rejects++];
	memset(s, 0, sizeof *s);
	return s;
}

static int on_record(void *ctx, const struct pr_record *r)
{
	struct collector *c = ctx;
	if (c->refuse_amount && r->amount_minor == c->refuse_amount)
		return -ERANGE;
	cr_assert(r->customer_len >= 1 && r->customer_len <= PR_CUSTOMER_MAX_BYTES);
	cr_assert(r->store_len <= PR_STORE_MAX_BYTES);
	struct seen_record *s = add_record(c);
	s->ts_ms = r->ts_ms;
	s->amount_minor = r->amount_minor;
	s->customer_len = r->customer_len;
	s->store_len = r->store_len;
	memcpy(s->customer, r->customer, r->customer_len);
	memcpy(s->store, r->store, r->store_len);
	return 0;
}

static int on_reject(void *ctx, const struct pr_reject *r)
{
	struct collector *c = ctx;
	struct seen_reject *s = add_reject(c);
	cr_assert_str_eq(r->source, "feed.csv");
	cr_assert_leq(r->raw_len, 256);
	s->line = r->line;
	s->offset = r->byte_offset;
	s->column = r->column;
	s->reason = r->reason;
	snprintf(s->detail, sizeof s->detail, "%s", r->detail);
	memcpy(s->raw, r->raw, r->raw_len);
	s->raw_len = r->raw_len;
	return c->stop_on_reject ? -1 : 0;
}

/* ---- pushing a feed in pieces ---------------------------------------------- */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return rng_next(s) % n;
}

/* How a feed is cut: fixed pieces of `fixed` bytes (0: one push), or, with
 * max_random set, pieces of 1..max_random bytes drawn from rng. */
struct splitter {
	size_t fixed;
	size_t max_random;
	uint64_t rng;
};

static const struct splitter WHOLE = { 0, 0, 0 };

static int decode_split(struct collector *c, const struct pr_feed_options *opt, const char *feed,
			size_t len, struct splitter sp, struct pr_error *err,
			struct pr_feed_stats *stats)
{
	struct pr_decoder *d;
	struct pr_feed_sink sink = { c, on_record, on_reject };
	int rc = pr_decoder_create(&d, "feed.csv", opt, &sink, err);
	cr_assert_eq(rc, 0, "%s", err->message);
	for (size_t at = 0; at < len && rc == 0;) {
		size_t n = len - at;
		if (sp.max_random)
			n = 1 + (size_t)rng_below(&sp.rng, sp.max_random);
		else if (sp.fixed)
			n = sp.fixed;
		if (n > len - at)
			n = len - at;
		rc = pr_decoder_push(d, feed + at, n, err);
		at += n;
	}
	if (rc == 0)
		rc = pr_decoder_finish(d, err);
	if (stats)
		*stats = *pr_decoder_stats(d);
	pr_decoder_destroy(d);
	return rc;
}

static int decode(struct collector *c, const struct pr_feed_options *opt, const char *feed,
		  size_t len, size_t piece, struct pr_error *err, struct pr_feed_stats *stats)
{
	return decode_split(c, opt, feed, len, (struct splitter){ piece, 0, 0 }, err, stats);
}

static struct collector the_collector;

/* Decodes a NUL-terminated feed at once; the feed must be accepted. */
static struct collector *run(const char *feed, const struct pr_feed_options *opt_or_null)
{
	collector_reset(&the_collector);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	int rc = decode(&the_collector, opt_or_null ? opt_or_null : &opt, feed, strlen(feed), 0,
			&err, NULL);
	cr_assert_eq(rc, 0, "decode failed: %s", err.message);
	return &the_collector;
}

static void expect_reject(const struct collector *c, size_t i, uint64_t line, uint64_t offset,
			  unsigned column, enum pr_reject_reason reason)
{
	cr_assert_lt(i, c->n_rejects, "reject %zu missing", i);
	const struct seen_reject *r = &c->rejects[i];
	cr_assert_eq(r->reason, reason, "reject %zu: %s, want %s (%s)", i,
		     pr_reject_reason_name(r->reason), pr_reject_reason_name(reason), r->detail);
	cr_assert_eq(r->line, line, "reject %zu: line %llu, want %llu", i,
		     (unsigned long long)r->line, (unsigned long long)line);
	cr_assert_eq(r->offset, offset, "reject %zu: offset %llu, want %llu", i,
		     (unsigned long long)r->offset, (unsigned long long)offset);
	cr_assert_eq(r->column, column, "reject %zu: column %u, want %u", i, r->column, column);
}

/* Offset of the n-th occurrence (1-based) of `needle` in `feed`. */
static uint64_t offset_of(const char *feed, const char *needle)
{
	const char *at = strstr(feed, needle);
	cr_assert_not_null(at, "'%s' not in the feed", needle);
	return (uint64_t)(at - feed);
}

/* ---- CSV basics ------------------------------------------------------------- */

Test(decoder, plain_csv_with_defaults)
{
	struct collector *c = run("ts,customer_id,store_id,amount\n"
				  "2024-01-02T03:04:05Z,C1,S1,12.34\n"
				  "1704164645,C2,S2,-1\n", NULL);
	cr_assert_eq(c->n_records, 2);
	cr_assert_eq(c->records[0].ts_ms, 1704164645000LL);
	cr_assert_eq(c->records[1].ts_ms, 1704164645000LL);
	cr_assert_str_eq(c->records[0].customer, "C1");
	cr_assert_str_eq(c->records[0].store, "S1");
	cr_assert_eq(c->records[0].amount_minor, 1234);
	cr_assert_eq(c->records[1].amount_minor, -100);
	cr_assert_eq(c->n_rejects, 0);
}

Test(decoder, rfc4180_quoting_crlf_bom_and_blank_lines)
{
	const char *feed = "\xef\xbb\xbf" "amount,\"customer_id\",ts\r\n" /* 1 */
			   "\"1,5\",\"a \"\"quoted\"\", id\",2024-01-01\r\n"  /* 2 */
			   "\r\n"                                           /* 3 */
			   "  \r\n"                                         /* 4 */
			   "2, \"multi\nline\" ,2024-01-02\r\n"             /* 5-6 */
			   "\"3\",plain,2024-01-03\r\n"                     /* 7 */
			   "\t\n"                                           /* 8 */
			   "x,y,2024-01-04\r\n"                             /* 9 */
			   "4,last,2024-01-05";                             /* 10 */
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_rejects, 2);
	expect_reject(c, 0, 2, offset_of(feed, "\"1,5\""), 1, PR_REJECT_AMOUNT);
	cr_assert_str_eq(c->rejects[0].detail, "amount: not a decimal number '1,5'");
	expect_reject(c, 1, 9, offset_of(feed, "x,y"), 1, PR_REJECT_AMOUNT);
	cr_assert_eq(c->rejects[1].raw_len, 14, "the raw line has no CR or LF");
	cr_assert_eq(memcmp(c->rejects[1].raw, "x,y,2024-01-04", 14), 0);
	cr_assert_eq(c->n_records, 3);
	cr_assert_str_eq(c->records[0].customer, "multi\nline", "quoted: kept as is");
	cr_assert_str_eq(c->records[0].store, "", "no store column: one store");
	cr_assert_eq(c->records[0].amount_minor, 200);
	cr_assert_str_eq(c->records[1].customer, "plain");
	cr_assert_eq(c->records[1].amount_minor, 300);
	cr_assert_str_eq(c->records[2].customer, "last", "a last line without a line end");
	cr_assert_eq(c->records[2].ts_ms, pr_days_from_civil(2024, 1, 5) * PR_MS_PER_DAY);
}

Test(decoder, quoted_fields_with_delimiters_quotes_and_newlines)
{
	const char *feed = "ts,customer_id,store_id,amount\n"
			   "2024-01-01,\"x,\"\"y\"\"\",\"S\"\"1\",1\n"
			   "2024-01-01,\"a\r\nb\nc\",\"\",\"2.50\"\n"
			   "2024-01-01,\"\"\"\",  \"  spaced  \"  ,3\n"
			   "2024-01-01,unquoted id with spaces ,  S 2 ,4\n";
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_rejects, 0, "%s", c->n_rejects ? c->rejects[0].detail : "");
	cr_assert_eq(c->n_records, 4);
	cr_assert_str_eq(c->records[0].customer, "x,\"y\"");
	cr_assert_str_eq(c->records[0].store, "S\"1");
	cr_assert_str_eq(c->records[1].customer, "a\r\nb\nc");
	cr_assert_eq(c->records[1].store_len, 0);
	cr_assert_eq(c->records[1].amount_minor, 250);
	cr_assert_str_eq(c->records[2].customer, "\"");
	cr_assert_str_eq(c->records[2].store, "  spaced  ", "spaces inside quotes are kept");
	cr_assert_str_eq(c->records[3].customer, "unquoted id with spaces");
	cr_assert_str_eq(c->records[3].store, "S 2");
}

Test(decoder, a_record_over_several_lines_counts_each_line)
{
	/* The record on lines 3-5 spans three physical lines; the bad record
	 * after it is on line 6, its offset counts the CRLFs. */
	const char *feed = "ts,customer_id,amount\r\n"      /* 1 */
			   "2024-01-01,A,1\r\n"             /* 2 */
			   "2024-01-01,\"B\r\nB\r\nB\",2\r\n" /* 3-5 */
			   "2024-01-01,C\r\n"               /* 6: 2 fields */
			   "2024-01-01,\"D\nD\",oops\r\n"   /* 7-8 */
			   "2024-01-01,E,5\r\n";            /* 9 */
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_records, 3);
	cr_assert_str_eq(c->records[1].customer, "B\r\nB\r\nB");
	cr_assert_str_eq(c->records[2].customer, "E");
	cr_assert_eq(c->n_rejects, 2);
	expect_reject(c, 0, 6, offset_of(feed, "2024-01-01,C"), 0, PR_REJECT_FIELD_COUNT);
	cr_assert_str_eq(c->rejects[0].detail, "2 fields, the header has 3");
	expect_reject(c, 1, 7, offset_of(feed, "2024-01-01,\"D"), 3, PR_REJECT_AMOUNT);
	cr_assert_eq(c->rejects[1].raw_len, strlen("2024-01-01,\"D\nD\",oops"));
}

Test(decoder, quote_errors)
{
	const char *feed = "ts,customer_id,amount\n"        /* 1 */
			   "2024-01-01,A\"B,1\n"            /* 2: quote inside a field */
			   "2024-01-01,\"AB\"x,1\n"         /* 3: text after the quote */
			   "2024-01-01,\"AB\" \"C\",1\n"    /* 4: the same */
			   "2024-01-01,ok,1\n"              /* 5 */
			   "2024-01-01,\"open,1\n"          /* 6: open to the end */
			   "2024-01-01,never,2\n";          /* 7 */
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_records, 1);
	cr_assert_str_eq(c->records[0].customer, "ok");
	cr_assert_eq(c->n_rejects, 4);
	expect_reject(c, 0, 2, offset_of(feed, "2024-01-01,A\""), 0, PR_REJECT_QUOTE);
	cr_assert_str_eq(c->rejects[0].detail, "quote inside unquoted field 2");
	expect_reject(c, 1, 3, offset_of(feed, "2024-01-01,\"AB\"x"), 0, PR_REJECT_QUOTE);
	cr_assert_str_eq(c->rejects[1].detail, "characters after the closing quote of field 2");
	expect_reject(c, 2, 4, offset_of(feed, "2024-01-01,\"AB\" "), 0, PR_REJECT_QUOTE);
	/* RFC 4180: the quote opened on line 6 runs to the end of the feed. */
	expect_reject(c, 3, 6, offset_of(feed, "2024-01-01,\"open"), 0, PR_REJECT_QUOTE);
	cr_assert_str_eq(c->rejects[3].detail, "the feed ends inside a quoted field");

	struct pr_feed_stats stats;
	collector_reset(&the_collector);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	for (size_t piece = 1; piece < 8; piece++) {
		collector_reset(&the_collector);
		cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), piece, &err, &stats), 0);
		cr_assert_eq(the_collector.n_rejects, 4);
		expect_reject(&the_collector, 3, 6, offset_of(feed, "2024-01-01,\"open"), 0,
			      PR_REJECT_QUOTE);
	}
	cr_assert_eq(stats.lines, 5);
	cr_assert_eq(stats.by_reason[PR_REJECT_QUOTE], 4);

	/* A header that never closes its quote is an error, not a reject. */
	collector_reset(&the_collector);
	feed = "ts,\"customer_id,amount\n";
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: line 1: header: the feed ends inside a quoted field");
}

Test(decoder, every_reject_reason_with_its_location)
{
	char long_id[70], longer_id[80];
	memset(long_id, 'x', 65);
	long_id[65] = 0;
	memset(longer_id, 'y', 72);
	longer_id[72] = 0;
	char feed[2048];
	snprintf(feed, sizeof feed,
		 "ts,customer_id,store_id,amount\n"     /* line 1 */
		 "2024-01-01,A,S,1\n"                   /* 2 ok */
		 "2024-01-01,A,S\n"                     /* 3 field count */
		 "2024-02-30,A,S,1\n"                   /* 4 time */
		 "2024-01-01,A,S,1.2.3\n"               /* 5 amount */
		 "2024-01-01,%s,S,1\n"                  /* 6 customer too long */
		 "2024-01-01, ,S,1\n"                   /* 7 customer empty */
		 "2024-01-01,A,%.33s,1\n"               /* 8 store too long */
		 "2024-01-01,A,S,99999999999999999999\n" /* 9 overflow */
		 "2024-01-01,A\"B,S,1\n"                /* 10 quote */
		 "99999999999999999999,A,S,1\n"         /* 11 overflow (time) */
		 "2024-01-01,A,S,1,\n"                  /* 12 a trailing empty field */
		 "2024-01-01,%s,S,1\n"                  /* 13 line too long */
		 "2024-01-01,B,S,2\n",                  /* 14 ok */
		 long_id, long_id, longer_id);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.max_line_bytes = 80;
	/* Line 6 is 80 bytes, within the limit; line 13 is 87. */
	struct collector *c = run(feed, &opt);
	cr_assert_eq(c->n_records, 2);
	cr_assert_str_eq(c->records[1].customer, "B");
	struct {
		uint64_t line;
		enum pr_reject_reason reason;
		unsigned column;
		const char *start;
		const char *detail;
	} want[] = {
		{ 3, PR_REJECT_FIELD_COUNT, 0, "2024-01-01,A,S\n", "3 fields, the header has 4" },
		{ 4, PR_REJECT_TIME, 1, "2024-02-30", "ts: not a time '2024-02-30'" },
		{ 5, PR_REJECT_AMOUNT, 4, "2024-01-01,A,S,1.2.3",
		  "amount: not a decimal number '1.2.3'" },
		{ 6, PR_REJECT_CUSTOMER, 2, "2024-01-01,x", "customer: id of 65 bytes, expected 1..64" },
		{ 7, PR_REJECT_CUSTOMER, 2, "2024-01-01, ,", "customer: id of 0 bytes, expected 1..64" },
		{ 8, PR_REJECT_STORE, 3, "2024-01-01,A,x", "store: id of 33 bytes, expected at most 32" },
		{ 9, PR_REJECT_OVERFLOW, 4, "2024-01-01,A,S,9999",
		  "amount: outside the int64 range of minor units '99999999999999999999'" },
		{ 10, PR_REJECT_QUOTE, 0, "2024-01-01,A\"B", "quote inside unquoted field 2" },
		{ 11, PR_REJECT_OVERFLOW, 1, "99999999999999999999,",
		  "ts: out of range '99999999999999999999'" },
		{ 12, PR_REJECT_FIELD_COUNT, 0, "2024-01-01,A,S,1,\n", "5 fields, the header has 4" },
		{ 13, PR_REJECT_LINE_TOO_LONG, 0, "2024-01-01,y", "line of 87 bytes, longer than 80" },
	};
	size_t n_want = sizeof want / sizeof want[0];
	cr_assert_eq(c->n_rejects, n_want);
	for (size_t i = 0; i < n_want; i++) {
		expect_reject(c, i, want[i].line, offset_of(feed, want[i].start), want[i].column,
			      want[i].reason);
		cr_assert_str_eq(c->rejects[i].detail, want[i].detail, "reject %zu", i);
		cr_assert_eq(memcmp(c->rejects[i].raw, want[i].start, strcspn(want[i].start, "\n")), 0,
			     "reject %zu: the raw line", i);
	}
	cr_assert_eq(c->rejects[0].raw_len, 14);

	/* The statistics add up; and the same rejects arrive in any pieces. */
	struct pr_feed_stats stats;
	struct pr_error err = { 0 };
	for (size_t piece = 1; piece <= strlen(feed); piece += 9) {
		collector_reset(&the_collector);
		cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), piece, &err, &stats), 0);
		cr_assert_eq(the_collector.n_rejects, n_want);
		for (size_t i = 0; i < n_want; i++)
			expect_reject(&the_collector, i, want[i].line, offset_of(feed, want[i].start),
				      want[i].column, want[i].reason);
	}
	cr_assert_eq(stats.bytes, strlen(feed));
	cr_assert_eq(stats.lines, 13);
	cr_assert_eq(stats.records, 2);
	cr_assert_eq(stats.rejected, 11);
	cr_assert_eq(stats.rounded, 0);
	uint64_t by[PR_REJECT_REASON_COUNT] = {
		[PR_REJECT_FIELD_COUNT] = 2, [PR_REJECT_TIME] = 1, [PR_REJECT_AMOUNT] = 1,
		[PR_REJECT_CUSTOMER] = 2, [PR_REJECT_STORE] = 1, [PR_REJECT_OVERFLOW] = 2,
		[PR_REJECT_QUOTE] = 1, [PR_REJECT_LINE_TOO_LONG] = 1,
	};
	for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
		cr_assert_eq(stats.by_reason[r], by[r], "%s", pr_reject_reason_name(r));
}

Test(decoder, reason_names)
{
	const char *names[] = { "field-count", "time", "amount", "customer", "store", "overflow",
				"line-too-long", "quote", "binary", "truncated" };
	cr_assert_eq(sizeof names / sizeof names[0], PR_REJECT_REASON_COUNT);
	for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
		cr_assert_str_eq(pr_reject_reason_name(r), names[r]);
}

/* ---- long lines ------------------------------------------------------------- */

Test(decoder, line_too_long_is_skipped_in_constant_memory)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.max_line_bytes = 64;
	size_t big = 5u << 20;
	char *feed = malloc(big + 200);
	size_t n = (size_t)sprintf(feed, "ts,customer_id,amount\n2024-01-01,A,1\n2024-01-01,");
	memset(feed + n, 'z', big);
	n += big;
	n += (size_t)sprintf(feed + n, ",1\n2024-01-01,B,2\n");
	for (size_t piece = 1000; piece <= big * 2; piece *= 1000) {
		collector_reset(&the_collector);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&the_collector, &opt, feed, n, piece, &err, NULL), 0, "%s",
			     err.message);
		cr_assert_eq(the_collector.n_records, 2);
		cr_assert_str_eq(the_collector.records[1].customer, "B");
		cr_assert_eq(the_collector.n_rejects, 1);
		expect_reject(&the_collector, 0, 3, 37, 0, PR_REJECT_LINE_TOO_LONG);
		cr_assert_eq(the_collector.rejects[0].raw_len, 256, "raw cut at 256 bytes");
	}
	free(feed);
}

static long max_rss_kib(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_maxrss;
}

/* A 100 MB line pushed 64 KiB at a time costs no more memory than a short
 * one: the decoder keeps at most max_line_bytes of it. */
Test(decoder, a_100_mb_line_does_not_grow_memory)
{
	static char chunk[64 * 1024];
	memset(chunk, 'z', sizeof chunk);
	collector_reset(&the_collector);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_feed_sink sink = { &the_collector, on_record, on_reject };
	struct pr_decoder *d;
	struct pr_error err = { 0 };
	cr_assert_eq(pr_decoder_create(&d, "feed.csv", &opt, &sink, &err), 0);
	const char *head = "ts,customer_id,amount\n2024-01-01,";
	cr_assert_eq(pr_decoder_push(d, head, strlen(head), &err), 0);
	long before = max_rss_kib();
	size_t total = 0;
	while (total < 100u << 20) {
		cr_assert_eq(pr_decoder_push(d, chunk, sizeof chunk, &err), 0);
		total += sizeof chunk;
	}
	const char *tail = ",1\n2024-01-01,B,2\n";
	cr_assert_eq(pr_decoder_push(d, tail, strlen(tail), &err), 0);
	cr_assert_eq(pr_decoder_finish(d, &err), 0);
	long grown = max_rss_kib() - before;
	cr_assert_lt(grown, 8 * 1024, "resident memory grew by %ld KiB", grown);
	cr_assert_eq(the_collector.n_records, 1);
	cr_assert_str_eq(the_collector.records[0].customer, "B");
	cr_assert_eq(the_collector.n_rejects, 1);
	expect_reject(&the_collector, 0, 2, 22, 0, PR_REJECT_LINE_TOO_LONG);
	cr_assert_eq(pr_decoder_stats(d)->lines, 2);
	pr_decoder_destroy(d);
}

Test(decoder, line_length_limit_is_exact_and_split_independent)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.max_line_bytes = 20;
	opt.column[PR_FIELD_CUSTOMER] = "c";
	opt.column[PR_FIELD_AMOUNT] = "a";
	/* 20 bytes pass (with or without a CR), 21 do not; a quoted record
	 * over several lines is measured whole and skipped whole. */
	const char *feed = "ts,c,a\n"                          /* 1 */
			   "2024-01-01,ABCDEFG,1\n"             /* 2: 20 bytes */
			   "2024-01-01,ABCDEFG,1\r\n"           /* 3: 20 + CR */
			   "2024-01-01,ABCDEFGH,1\n"            /* 4: 21 */
			   "2024-01-01,\"AB\nCD\nEFGHIJKL\",1\n" /* 5-7: 30 */
			   "2024-01-01,\"A\nB\",1\n"            /* 8-9: 18 */
			   "                         \n"        /* 10: blank, long */
			   "2024-01-01,C,1";                    /* 11 */
	for (size_t piece = 0; piece < 40; piece++) {
		collector_reset(&the_collector);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), piece, &err, NULL), 0);
		struct collector *c = &the_collector;
		cr_assert_eq(c->n_records, 4, "piece %zu", piece);
		cr_assert_str_eq(c->records[2].customer, "A\nB");
		cr_assert_str_eq(c->records[3].customer, "C");
		cr_assert_eq(c->n_rejects, 3, "piece %zu", piece);
		expect_reject(c, 0, 4, offset_of(feed, "2024-01-01,ABCDEFGH"), 0,
			      PR_REJECT_LINE_TOO_LONG);
		expect_reject(c, 1, 5, offset_of(feed, "2024-01-01,\"AB"), 0, PR_REJECT_LINE_TOO_LONG);
		expect_reject(c, 2, 10, offset_of(feed, "     "), 0, PR_REJECT_LINE_TOO_LONG);
	}
}

Test(decoder, a_too_long_header_is_an_error)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.max_line_bytes = 16;
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1\n";
	for (size_t piece = 0; piece < 30; piece += 3) {
		collector_reset(&the_collector);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), piece, &err, NULL),
			     -EINVAL, "piece %zu", piece);
		cr_assert_str_eq(err.message, "feed.csv: header line longer than 16 bytes");
	}
}

/* ---- delimiters --------------------------------------------------------------- */

Test(decoder, other_delimiters)
{
	const char delims[] = { ';', '\t', '|', ' ' };
	for (size_t i = 0; i < sizeof delims; i++) {
		char d = delims[i];
		char feed[256];
		snprintf(feed, sizeof feed, "ts%ccustomer_id%camount\n2024-01-01%c\"A%cB\"%c1.5\n"
			 "2024-01-02%cC%c-2\n", d, d, d, d, d, d, d);
		struct pr_feed_options opt;
		pr_feed_options_init(&opt);
		opt.delimiter = d;
		struct collector *c = run(feed, &opt);
		cr_assert_eq(c->n_rejects, 0, "delimiter %d: %s", d, c->n_rejects ? c->rejects[0].detail : "");
		cr_assert_eq(c->n_records, 2);
		char want[4] = { 'A', d, 'B', 0 };
		cr_assert_str_eq(c->records[0].customer, want);
		cr_assert_eq(c->records[0].amount_minor, 150);
		cr_assert_eq(c->records[1].amount_minor, -200);
	}
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	struct pr_decoder *d = (struct pr_decoder *)&err; /* must be overwritten */
	struct pr_feed_sink sink = { NULL, on_record, on_reject };
	opt.delimiter = '"';
	cr_assert_eq(pr_decoder_create(&d, "feed.csv", &opt, &sink, &err), -EINVAL);
	cr_assert_null(d);
	opt.delimiter = ',';
	opt.scale = 10;
	cr_assert_eq(pr_decoder_create(&d, "feed.csv", &opt, &sink, &err), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: scale 10 is above 9");
}

Test(decoder, whitespace_delimiter)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.delimiter_kind = PR_DELIM_WHITESPACE;
	const char *feed = "  ts\tcustomer_id   amount  \r\n"
			   "2024-01-01 A 1\r\n"
			   "\t 2024-01-02 \t B\t\t2.5 \t\r\n"
			   "   \r\n"
			   "2024-01-03 \"C D\" 3\n"
			   "2024-01-04 E\n"
			   "2024-01-05 F 6 extra\n";
	struct collector *c = run(feed, &opt);
	cr_assert_eq(c->n_records, 3);
	cr_assert_str_eq(c->records[0].customer, "A");
	cr_assert_str_eq(c->records[1].customer, "B");
	cr_assert_eq(c->records[1].amount_minor, 250);
	cr_assert_eq(c->records[1].ts_ms, pr_days_from_civil(2024, 1, 2) * PR_MS_PER_DAY);
	cr_assert_str_eq(c->records[2].customer, "C D");
	cr_assert_eq(c->n_rejects, 2);
	expect_reject(c, 0, 6, offset_of(feed, "2024-01-04"), 0, PR_REJECT_FIELD_COUNT);
	expect_reject(c, 1, 7, offset_of(feed, "2024-01-05"), 0, PR_REJECT_FIELD_COUNT);
}

/* ---- CDNOW ------------------------------------------------------------------ */

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	char *buf = malloc(*len + 1);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	buf[*len] = 0;
	fclose(f);
	return buf;
}

static void cdnow_options(struct pr_feed_options *opt)
{
	pr_feed_options_init(opt);
	opt->delimiter_kind = PR_DELIM_WHITESPACE;
	opt->column[PR_FIELD_CUSTOMER] = "customer_id";
	opt->column[PR_FIELD_TS] = "date";
	opt->column[PR_FIELD_AMOUNT] = "dollar_value";
	opt->ts_format = "%Y%m%d";
}

/* The first 50 records against sscanf's reading of the same lines. */
Test(decoder, cdnow_first_50_lines)
{
	size_t len;
	char *feed = read_all(CDNOW_PATH, &len);
	const char *cut = feed;
	for (int i = 0; i < 51; i++)
		cut = strchr(cut, '\n') + 1;
	struct pr_feed_options opt;
	cdnow_options(&opt);
	for (size_t piece = 0; piece < 12; piece += 5) {
		collector_reset(&the_collector);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&the_collector, &opt, feed, (size_t)(cut - feed), piece, &err, NULL),
			     0, "%s", err.message);
		cr_assert_eq(the_collector.n_records, 50);
		cr_assert_eq(the_collector.n_rejects, 0);
		const char *line = strchr(feed, '\n') + 1;
		for (int i = 0; i < 50; i++, line = strchr(line, '\n') + 1) {
			char id[16];
			int y, m, d, cds, dollars, cents;
			cr_assert_eq(sscanf(line, "%15s %4d%2d%2d %d %d.%2d", id, &y, &m, &d, &cds,
					    &dollars, &cents), 7);
			const struct seen_record *r = &the_collector.records[i];
			cr_assert_str_eq(r->customer, id, "record %d", i);
			cr_assert_eq(r->store_len, 0);
			cr_assert_eq(r->amount_minor, dollars * 100 + cents, "record %d", i);
			struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
			cr_assert_eq(r->ts_ms, (int64_t)timegm(&tm) * 1000, "record %d", i);
		}
	}
	cr_assert_str_eq(the_collector.records[0].customer, "00001");
	cr_assert_eq(the_collector.records[0].amount_minor, 1177);
	cr_assert_eq(the_collector.records[0].ts_ms, 852076800000LL); /* 1997-01-01 */
	free(feed);
}

static int sum_amounts(void *ctx, const struct pr_record *r)
{
	*(int64_t *)ctx += r->amount_minor;
	return 0;
}

Test(decoder, cdnow_whole_file)
{
	size_t len;
	char *feed = read_all(CDNOW_PATH, &len);
	struct pr_feed_options opt;
	cdnow_options(&opt);
	for (size_t piece = 4096; piece <= len; piece *= 1024) {
		struct pr_decoder *d;
		int64_t total = 0;
		struct pr_error err = { 0 };
		struct pr_feed_sink sink = { &total, sum_amounts, NULL };
		cr_assert_eq(pr_decoder_create(&d, "CDNOW_master.txt", &opt, &sink, &err), 0);
		for (size_t at = 0; at < len; at += piece)
			cr_assert_eq(pr_decoder_push(d, feed + at, len - at < piece ? len - at : piece,
						     &err), 0, "%s", err.message);
		cr_assert_eq(pr_decoder_finish(d, &err), 0);
		const struct pr_feed_stats *s = pr_decoder_stats(d);
		cr_assert_eq(s->records, 69659);
		cr_assert_eq(s->lines, 69659);
		cr_assert_eq(s->rejected, 0);
		cr_assert_eq(s->rounded, 0);
		cr_assert_eq(s->bytes, len);
		cr_assert_eq(total, 250031563);
		pr_decoder_destroy(d);
	}
	free(feed);
}

/* ---- header mapping ----------------------------------------------------------- */

Test(decoder, mapping_product_and_header_errors)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.delimiter = ';';
	opt.column[PR_FIELD_CUSTOMER] = "CustomerID";
	opt.column[PR_FIELD_TS] = "InvoiceDate";
	opt.column[PR_FIELD_QUANTITY] = "Quantity";
	opt.column[PR_FIELD_PRICE] = "UnitPrice";
	opt.column[PR_FIELD_STORE] = "Country";
	opt.ts_format = "%m/%d/%Y %H:%M";
	const char *feed = "InvoiceNo;Quantity;InvoiceDate;UnitPrice;CustomerID;Country\n"
			   "536365;6;12/1/2010 8:26;2.55;17850;United Kingdom\n"
			   "C536379;-1;12/1/2010 9:41;27.50;14527;France\n"
			   "536370;3;12/1/2010 9:45;0.335;12583;France\n"
			   "536371;x;12/1/2010 9:45;1;12583;France\n"
			   "536372;2;12/1/2010 9:45;1,5;12583;France\n";
	struct pr_feed_stats stats;
	collector_reset(&the_collector);
	struct pr_error err = { 0 };
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	struct collector *c = &the_collector;
	cr_assert_eq(c->n_records, 3);
	cr_assert_eq(c->records[0].amount_minor, 1530);
	cr_assert_eq(c->records[0].ts_ms,
		     pr_days_from_civil(2010, 12, 1) * PR_MS_PER_DAY + (8 * 60 + 26) * 60000LL);
	cr_assert_str_eq(c->records[0].store, "United Kingdom");
	cr_assert_eq(c->records[1].amount_minor, -2750);
	cr_assert_str_eq(c->records[1].store, "France");
	cr_assert_eq(c->records[2].amount_minor, 100, "3 x 0.335 = 1.005: one rounding, to even");
	cr_assert_eq(stats.rounded, 1);
	cr_assert_eq(c->n_rejects, 2);
	expect_reject(c, 0, 5, offset_of(feed, "536371"), 2, PR_REJECT_AMOUNT);
	expect_reject(c, 1, 6, offset_of(feed, "536372"), 4, PR_REJECT_AMOUNT);

	struct collector dummy = { 0 };
	pr_feed_options_init(&opt);
	feed = "time,customer_id,amount\n";
	cr_assert_eq(decode(&dummy, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message,
			 "feed.csv: header has no column 'ts' (columns: time, customer_id, amount)");
	opt.column[PR_FIELD_STORE] = "shop";
	feed = "ts,customer_id,amount\n";
	cr_assert_eq(decode(&dummy, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL,
		     "an explicitly mapped store column must exist");
	cr_assert_str_eq(err.message,
			 "feed.csv: header has no column 'shop' (columns: ts, customer_id, amount)");
	pr_feed_options_init(&opt);
	opt.column[PR_FIELD_QUANTITY] = "qty";
	feed = "ts,customer_id,amount,qty\n";
	cr_assert_eq(decode(&dummy, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL,
		     "quantity without price");
	collector_reset(&dummy);
}

Test(decoder, header_names_trimmed_unquoted_first_wins)
{
	/* Quoted and padded names; "amount" twice: the first is used. The
	 * product mapping needs no amount column. */
	const char *feed = " \"ts\" ,  customer_id\t,amount,amount,store_id\n"
			   "2024-01-01,A,1,2,S\n";
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_records, 1);
	cr_assert_eq(c->records[0].amount_minor, 100);
	cr_assert_str_eq(c->records[0].store, "S");

	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.column[PR_FIELD_QUANTITY] = "q";
	opt.column[PR_FIELD_PRICE] = "p";
	c = run("p,customer_id,q,ts\n1.25,A,4,1700000000\n", &opt);
	cr_assert_eq(c->n_records, 1);
	cr_assert_eq(c->records[0].amount_minor, 500);
	cr_assert_eq(c->records[0].ts_ms, 1700000000000LL);
}

/* ---- strict mode, refusals, rounding ------------------------------------------ */

Test(decoder, strict_stops_at_the_first_bad_line)
{
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1\n2024-01-01,B,x\n2024-01-01,C,1\n";
	for (size_t piece = 0; piece < 10; piece++) {
		collector_reset(&the_collector);
		the_collector.stop_on_reject = true;
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), piece, &err, NULL),
			     -ECANCELED);
		cr_assert_eq(err.code, -ECANCELED);
		cr_assert_eq(the_collector.n_records, 1, "nothing after the bad line");
		cr_assert_str_eq(err.message, "feed.csv: line 3: amount: not a decimal number 'x'");
	}
	collector_reset(&the_collector);
	the_collector.stop_on_reject = true;
	struct pr_error err = { 0 };
	feed = "ts,customer_id,amount\n\n2024-01-01,A\n";
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, NULL), -ECANCELED);
	cr_assert_str_eq(err.message, "feed.csv: line 3: 2 fields, the header has 3");
}

Test(decoder, refused_records_become_overflow_rejects)
{
	collector_reset(&the_collector);
	the_collector.refuse_amount = 700;
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	struct pr_feed_stats stats;
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1\n2024-01-01,B,7\n";
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	cr_assert_eq(the_collector.n_records, 1);
	expect_reject(&the_collector, 0, 3, 37, 0, PR_REJECT_OVERFLOW);
	cr_assert_eq(stats.records, 1);
	cr_assert_eq(stats.rejected, 1);
	cr_assert_eq(stats.lines, 2);
}

Test(decoder, rounding_is_counted)
{
	struct pr_feed_stats stats;
	collector_reset(&the_collector);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1.005\n2024-01-01,B,1.015\n"
			   "2024-01-01,C,1.010\n";
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	cr_assert_eq(stats.rounded, 2);
	cr_assert_eq(the_collector.records[0].amount_minor, 100);
	cr_assert_eq(the_collector.records[1].amount_minor, 102);
	cr_assert_eq(the_collector.records[2].amount_minor, 101);
	opt.scale = 3;
	collector_reset(&the_collector);
	cr_assert_eq(decode(&the_collector, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	cr_assert_eq(stats.rounded, 0);
	cr_assert_eq(the_collector.records[0].amount_minor, 1005);
}

/* ---- short feeds and format detection ----------------------------------------- */

Test(decoder, empty_and_short_feeds)
{
	const char *feeds[] = { "", "\n", "ts", "ts,customer_id,amount", "ts,customer_id,amount\n",
				"\r\n\r\nts,customer_id,amount\r\n\r\n" };
	for (size_t i = 0; i < sizeof feeds / sizeof feeds[0]; i++) {
		for (size_t piece = 0; piece < 3; piece++) {
			collector_reset(&the_collector);
			struct pr_error err = { 0 };
			struct pr_feed_stats stats;
			struct pr_feed_options opt;
			pr_feed_options_init(&opt);
			int rc = decode(&the_collector, &opt, feeds[i], strlen(feeds[i]), piece, &err,
					&stats);
			cr_assert_eq(rc, i == 2 ? -EINVAL : 0, "feed %zu: %s", i, err.message);
			cr_assert_eq(stats.lines, 0);
			cr_assert_eq(the_collector.n_rejects, 0);
		}
	}
	/* Seven bytes of the magic and nothing else: too short to be binary,
	 * a CSV header then (with none of the needed columns). */
	struct pr_error err = { 0 };
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	collector_reset(&the_collector);
	cr_assert_eq(decode(&the_collector, &opt, "PRTREC0", 7, 1, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: header has no column 'ts' (columns: PRTREC0)");
}

/* ---- binary ------------------------------------------------------------------- */

static size_t binary_feed(char *out, int records, const struct pr_bin_layout *l)
{
	pr_bin_header_encode((unsigned char *)out, l);
	size_t n = PR_BIN_HEADER_BYTES;
	for (int i = 0; i < records; i++) {
		char id[16], store[8];
		snprintf(id, sizeof id, "cust-%d", i % 7);
		snprintf(store, sizeof store, "S%d", i % 3);
		struct pr_record r = { .ts_ms = 1700000000000LL + i, .amount_minor = i * 10 - 50,
				       .customer = id, .customer_len = (uint8_t)strlen(id),
				       .store = store, .store_len = (uint8_t)(i % 4 ? strlen(store) : 0) };
		pr_bin_record_encode((unsigned char *)out + n, l, &r);
		n += l->record_bytes;
	}
	return n;
}

static void binary_round_trip(const struct pr_bin_layout *l);

/* Both layouts: the old 128-byte records, and records as narrow as these
 * ids ("cust-6", "S2": 18 + 6 + 2 bytes, 32 with the padding). */
Test(decoder, binary_records_round_trip_and_truncation)
{
	const struct pr_bin_layout layouts[] = { pr_bin_layout_v1(2), pr_bin_layout_v2(6, 2, 2) };
	cr_assert_eq(layouts[1].record_bytes, 32);
	for (size_t k = 0; k < 2; k++)
		binary_round_trip(&layouts[k]);
}

static void binary_round_trip(const struct pr_bin_layout *l)
{
	static char feed[PR_BIN_HEADER_BYTES + 100 * PR_BIN_RECORD_MAX_BYTES];
	const size_t size = l->record_bytes;
	size_t n = binary_feed(feed, 100, l);
	feed[PR_BIN_HEADER_BYTES + 5 * size + 16] = 0; /* record 6: empty id */
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	for (size_t piece = 1; piece <= n; piece = piece * 3 + 1) {
		collector_reset(&the_collector);
		struct collector *c = &the_collector;
		struct pr_error err = { 0 };
		struct pr_feed_stats stats;
		cr_assert_eq(decode(c, &opt, feed, n - 5, piece, &err, &stats), 0, "%s", err.message);
		cr_assert_eq(c->n_records, 98, "piece %zu", piece);
		cr_assert_eq(c->n_rejects, 2);
		expect_reject(c, 0, 6, PR_BIN_HEADER_BYTES + 5 * size, 0, PR_REJECT_BINARY);
		cr_assert_eq(c->rejects[0].raw_len, size);
		expect_reject(c, 1, 100, PR_BIN_HEADER_BYTES + 99 * size, 0, PR_REJECT_TRUNCATED);
		cr_assert_eq(c->rejects[1].raw_len, size - 5);
		cr_assert_eq(c->records[0].amount_minor, -50);
		cr_assert_eq(c->records[0].ts_ms, 1700000000000LL);
		cr_assert_str_eq(c->records[0].customer, "cust-0");
		cr_assert_str_eq(c->records[0].store, "");
		cr_assert_str_eq(c->records[1].store, "S1");
		cr_assert_eq(c->records[97].amount_minor, 98 * 10 - 50);
		cr_assert_eq(stats.lines, 100);
		cr_assert_eq(stats.records, 98);
		cr_assert_eq(stats.by_reason[PR_REJECT_BINARY], 1);
		cr_assert_eq(stats.by_reason[PR_REJECT_TRUNCATED], 1);
		cr_assert_eq(stats.bytes, n - 5);
	}
	collector_reset(&the_collector);
	struct pr_error err = { 0 };
	opt.scale = 3;
	cr_assert_eq(decode(&the_collector, &opt, feed, n, 0, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: binary feed has scale 2, expected 3");
	opt.scale = 2;
	cr_assert_eq(decode(&the_collector, &opt, feed, 12, 5, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: binary feed ends inside its header");
	/* Headers that do not agree with themselves: another record size, or
	 * (PRTREC02) id widths out of range. */
	unsigned char header[PR_BIN_HEADER_BYTES];
	memcpy(header, feed, sizeof header);
	const int bad[][2] = { { 8, 64 }, { 8, 0 }, { 10, 0 }, { 10, 65 }, { 11, 33 } };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (l->version == 1 && bad[i][0] != 8)
			continue;
		feed[bad[i][0]] = (char)bad[i][1];
		cr_assert_eq(decode(&the_collector, &opt, feed, n, 0, &err, NULL), -EINVAL);
		cr_assert_str_eq(err.message, "feed.csv: binary header with a record size or id "
					      "widths this version does not read");
		memcpy(feed, header, sizeof header);
	}
	/* Strict mode stops at the bad record. */
	collector_reset(&the_collector);
	the_collector.stop_on_reject = true;
	cr_assert_eq(decode(&the_collector, &opt, feed, n, 0, &err, NULL), -ECANCELED);
	cr_assert_eq(the_collector.n_records, 5);
	collector_reset(&the_collector);
}

/* ---- property tests ------------------------------------------------------------ */

static unsigned seeds_to_run(unsigned *first)
{
	const char *env = getenv("PARETO_TEST_SEED");
	if (env && *env) {
		*first = (unsigned)strtoul(env, NULL, 10);
		return 1;
	}
	*first = 1;
	return 150;
}

/* A feed under construction with what decoding it must give. */
struct gen {
	char *buf;
	size_t len, cap;
	uint64_t line; /* physical lines written */
	uint64_t rng;
	struct collector want;
	struct pr_feed_stats stats;
};

static void gen_put(struct gen *g, const char *bytes, size_t n)
{
	if (g->len + n > g->cap) {
		g->cap = (g->len + n) * 2 + 4096;
		g->buf = realloc(g->buf, g->cap);
		cr_assert_not_null(g->buf);
	}
	memcpy(g->buf + g->len, bytes, n);
	g->len += n;
}

static uint64_t count_newlines(const char *p, size_t n)
{
	uint64_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += p[i] == '\n';
	return lines;
}

/* Appends one record (text without its line end) and what it must give. */
static void gen_line(struct gen *g, const char *text, size_t n, const char *eol)
{
	gen_put(g, text, n);
	gen_put(g, eol, strlen(eol));
	g->line += count_newlines(text, n) + (eol[0] != 0);
}

static void want_reject(struct gen *g, enum pr_reject_reason reason, unsigned column)
{
	struct seen_reject *r = add_reject(&g->want);
	r->line = g->line + 1;
	r->offset = g->len;
	r->column = column;
	r->reason = reason;
	g->stats.lines++;
	g->stats.rejected++;
	g->stats.by_reason[reason]++;
}

static void want_record(struct gen *g, int64_t ts_ms, int64_t amount, const char *customer,
			size_t customer_len, const char *store, size_t store_len)
{
	struct seen_record *r = add_record(&g->want);
	r->ts_ms = ts_ms;
	r->amount_minor = amount;
	r->customer_len = (uint8_t)customer_len;
	r->store_len = (uint8_t)store_len;
	memcpy(r->customer, customer, customer_len);
	memcpy(r->store, store, store_len);
	g->stats.lines++;
	g->stats.records++;
}

/* A random time as text, ISO-8601 or epoch seconds, and its value. */
static int64_t gen_time(struct gen *g, char *out, size_t size)
{
	time_t t = (time_t)(1500000000 + rng_below(&g->rng, 400000000));
	struct tm tm;
	gmtime_r(&t, &tm);
	switch (rng_below(&g->rng, 3)) {
	case 0:
		snprintf(out, size, "%lld", (long long)t);
		break;
	case 1:
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
		break;
	default:
		strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
	}
	return (int64_t)t * 1000;
}

/* A random exact amount as text and its value in cents. */
static int64_t gen_amount(struct gen *g, char *out, size_t size)
{
	int64_t cents = (int64_t)rng_below(&g->rng, 2000000) - 100000;
	uint64_t mag = (uint64_t)(cents < 0 ? -cents : cents);
	snprintf(out, size, "%s%llu.%02llu%s", cents < 0 ? "-" : "",
		 (unsigned long long)(mag / 100), (unsigned long long)(mag % 100),
		 rng_below(&g->rng, 4) ? "" : "0");
	return cents;
}

/* A quoted field's text ("" doubled) from raw content. */
static size_t quote(char *out, const char *content, size_t n)
{
	size_t k = 0;
	out[k++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (content[i] == '"')
			out[k++] = '"';
		out[k++] = content[i];
	}
	out[k++] = '"';
	return k;
}

#define PROPERTY_MAX_LINE 100

/*
 * One random CSV feed: good records plain and quoted (delimiters, doubled
 * quotes, CR and LF inside quotes), blank lines, and one line of each kind
 * of fault, CRLF or LF, with or without a last line end, sometimes ending
 * inside quotes. Lines are under PROPERTY_MAX_LINE bytes (94 at most)
 * unless meant to be too long.
 */
static void gen_csv(struct gen *g)
{
	const char *eols[] = { "\n", "\r\n" };
	const char *header = "ts,customer_id,store_id,amount";
	gen_line(g, header, strlen(header), eols[rng_below(&g->rng, 2)]);
	int lines = 20 + (int)rng_below(&g->rng, 300);
	char text[512], ts[40], amount[40], customer[80], store[40];
	for (int i = 0; i < lines; i++) {
		const char *eol = eols[rng_below(&g->rng, 2)];
		if (i == lines - 1 && rng_below(&g->rng, 3) == 0)
			eol = "";
		size_t n = 0;
		int64_t t = gen_time(g, ts, sizeof ts);
		int64_t a = gen_amount(g, amount, sizeof amount);
		unsigned kind = (unsigned)rng_below(&g->rng, 24);
		if (kind < 8) { /* plain, maybe padded */
			size_t cl = (size_t)snprintf(customer, sizeof customer, "C%llu",
						     (unsigned long long)rng_below(&g->rng, 1000));
			size_t sl = rng_below(&g->rng, 5) ? (size_t)snprintf(store, sizeof store, "S%u",
								   (unsigned)rng_below(&g->rng, 9)) : 0;
			store[sl] = 0;
			const char *pad = kind == 0 ? " " : "";
			n = (size_t)snprintf(text, sizeof text, "%s%s%s,%s%s%s,%s,%s%s", pad, ts, pad, pad,
					     customer, pad, store, pad, amount);
			want_record(g, t, a, customer, cl, store, sl);
		} else if (kind < 12) { /* quoted */
			const char alphabet[] = "ab,\"\n\r x;";
			size_t cl = 1 + (size_t)rng_below(&g->rng, 20), sl = (size_t)rng_below(&g->rng, 8);
			for (size_t k = 0; k < cl; k++)
				customer[k] = alphabet[rng_below(&g->rng, sizeof alphabet - 1)];
			for (size_t k = 0; k < sl; k++)
				store[k] = alphabet[rng_below(&g->rng, sizeof alphabet - 1)];
			n = (size_t)sprintf(text, "%s,%s", ts, rng_below(&g->rng, 2) ? "  " : "");
			n += quote(text + n, customer, cl);
			n += (size_t)sprintf(text + n, "%s,", rng_below(&g->rng, 2) ? " " : "");
			n += quote(text + n, store, sl);
			n += (size_t)sprintf(text + n, ",\"%s\"", amount);
			want_record(g, t, a, customer, cl, store, sl);
		} else if (kind < 14) { /* blank */
			const char *blanks[] = { "", "  ", "\t", " \t " };
			const char *b = blanks[rng_below(&g->rng, 4)];
			if (!*eol)
				eol = "\n";
			gen_line(g, b, strlen(b), eol);
			continue;
		} else {
			unsigned column = 0;
			enum pr_reject_reason reason = PR_REJECT_FIELD_COUNT;
			switch (kind) {
			case 14:
				n = (size_t)sprintf(text, "%s,C1,%s", ts, amount);
				break;
			case 15:
				n = (size_t)sprintf(text, "%s,C1,S1,%s,", ts, amount);
				break;
			case 16:
				n = (size_t)sprintf(text, "2023-02-29,C1,S1,%s", amount);
				reason = PR_REJECT_TIME, column = 1;
				break;
			case 17:
				n = (size_t)sprintf(text, "%s,C1,S1,%s", ts, rng_below(&g->rng, 2) ? "1e3" : "x");
				reason = PR_REJECT_AMOUNT, column = 4;
				break;
			case 18:
				n = (size_t)sprintf(text, "%s,%s,S1,%s", ts,
						    rng_below(&g->rng, 2) ? "\"\"" :
						    "12345678901234567890123456789012345678901234567890123456789012345",
						    amount);
				reason = PR_REJECT_CUSTOMER, column = 2;
				break;
			case 19:
				n = (size_t)sprintf(text, "%s,C1,\"123456789012345678901234567890123\",%s", ts,
						    amount);
				reason = PR_REJECT_STORE, column = 3;
				break;
			case 20:
				n = (size_t)sprintf(text, "%s,C1,S1,-92233720368547758.09", ts);
				reason = PR_REJECT_OVERFLOW, column = 4;
				break;
			case 21:
				n = (size_t)sprintf(text, rng_below(&g->rng, 2) ? "%s,C\"1,S1,%s"
									 : "%s,\"C1\"x,S1,%s", ts, amount);
				reason = PR_REJECT_QUOTE;
				break;
			default: /* too long: one line, or several inside quotes */
				n = (size_t)sprintf(text, "%s,", ts);
				if (rng_below(&g->rng, 2)) {
					memset(text + n, 'L', 150);
					n += 150;
				} else {
					text[n++] = '"';
					for (int k = 0; k < 150; k++)
						text[n++] = k % 40 == 39 ? '\n' : k % 7 ? 'M' : ',';
					text[n++] = '"';
				}
				n += (size_t)sprintf(text + n, ",S1,%s", amount);
				reason = PR_REJECT_LINE_TOO_LONG;
			}
			want_reject(g, reason, column);
		}
		gen_line(g, text, n, eol);
		if (!*eol)
			break;
	}
	if (g->len && g->buf[g->len - 1] == '\n' && rng_below(&g->rng, 4) == 0) {
		/* The feed ends inside a quoted field. */
		want_reject(g, PR_REJECT_QUOTE, 0);
		const char *open = "1700000000,\"never\nclosed,S1,1\n";
		gen_line(g, open, strlen(open), "");
	}
	g->stats.bytes = g->len;
}

static void compare(const struct collector *want, const struct collector *got, bool details,
		    const char *what, unsigned seed)
{
	cr_assert_eq(got->n_records, want->n_records, "seed %u %s: %zu records, want %zu", seed,
		     what, got->n_records, want->n_records);
	for (size_t i = 0; i < want->n_records; i++) {
		const struct seen_record *a = &got->records[i], *b = &want->records[i];
		cr_assert(a->ts_ms == b->ts_ms && a->amount_minor == b->amount_minor &&
			  a->customer_len == b->customer_len && a->store_len == b->store_len &&
			  memcmp(a->customer, b->customer, b->customer_len) == 0 &&
			  memcmp(a->store, b->store, b->store_len) == 0,
			  "seed %u %s: record %zu differs (customer '%s' want '%s', amount %lld want "
			  "%lld)", seed, what, i, a->customer, b->customer, (long long)a->amount_minor,
			  (long long)b->amount_minor);
	}
	cr_assert_eq(got->n_rejects, want->n_rejects, "seed %u %s: %zu rejects, want %zu", seed,
		     what, got->n_rejects, want->n_rejects);
	for (size_t i = 0; i < want->n_rejects; i++) {
		const struct seen_reject *a = &got->rejects[i], *b = &want->rejects[i];
		cr_assert(a->line == b->line && a->offset == b->offset && a->column == b->column &&
			  a->reason == b->reason,
			  "seed %u %s: reject %zu is %s line %llu offset %llu column %u, want %s line "
			  "%llu offset %llu column %u (%s)", seed, what, i,
			  pr_reject_reason_name(a->reason), (unsigned long long)a->line,
			  (unsigned long long)a->offset, a->column, pr_reject_reason_name(b->reason),
			  (unsigned long long)b->line, (unsigned long long)b->offset, b->column,
			  a->detail);
		/* Details and raw text: the same wherever the pushes split, except
		 * for a too-long record, of which a split keeps only a prefix. */
		if (details && b->reason != PR_REJECT_LINE_TOO_LONG)
			cr_assert(strcmp(a->detail, b->detail) == 0 && a->raw_len == b->raw_len &&
				  memcmp(a->raw, b->raw, b->raw_len) == 0,
				  "seed %u %s: reject %zu: '%s' vs '%s'", seed, what, i, a->detail,
				  b->detail);
	}
}

static void compare_stats(const struct pr_feed_stats *got, const struct pr_feed_stats *want,
			  const char *what, unsigned seed)
{
	cr_assert(memcmp(got, want, sizeof *got) == 0,
		  "seed %u %s: stats bytes %llu lines %llu records %llu rejected %llu, want "
		  "%llu %llu %llu %llu", seed, what, (unsigned long long)got->bytes,
		  (unsigned long long)got->lines, (unsigned long long)got->records,
		  (unsigned long long)got->rejected, (unsigned long long)want->bytes,
		  (unsigned long long)want->lines, (unsigned long long)want->records,
		  (unsigned long long)want->rejected);
}

/* Decodes g's feed at once, then in random pieces, against g's answers. */
static void check_feed(struct gen *g, const struct pr_feed_options *opt, unsigned seed)
{
	static struct collector whole, split;
	collector_reset(&whole);
	struct pr_error err = { 0 };
	struct pr_feed_stats stats;
	cr_assert_eq(decode_split(&whole, opt, g->buf, g->len, WHOLE, &err, &stats), 0,
		     "seed %u: %s", seed, err.message);
	compare(&g->want, &whole, false, "whole", seed);
	compare_stats(&stats, &g->stats, "whole", seed);
	size_t maxima[] = { 1, 8, 200, g->len };
	for (size_t m = 0; m < sizeof maxima / sizeof maxima[0]; m++) {
		char what[64];
		snprintf(what, sizeof what, "pieces of 1..%zu", maxima[m]);
		struct splitter sp = { 0, maxima[m], seed * 7919u + m };
		collector_reset(&split);
		cr_assert_eq(decode_split(&split, opt, g->buf, g->len, sp, &err, &stats), 0,
			     "seed %u %s: %s", seed, what, err.message);
		compare(&whole, &split, true, what, seed);
		compare_stats(&stats, &g->stats, what, seed);
	}
	collector_reset(&whole);
	collector_reset(&split);
}

Test(decoder, property_csv_any_split_gives_the_known_records)
{
	unsigned first, count = seeds_to_run(&first);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.max_line_bytes = PROPERTY_MAX_LINE;
	for (unsigned seed = first; seed < first + count; seed++) {
		struct gen g = { .rng = seed };
		gen_csv(&g);
		check_feed(&g, &opt, seed);
		free(g.buf);
		collector_reset(&g.want);
	}
}

/* Random binary feeds: valid records with ids of every length and any
 * bytes, invalid lengths or reserved bytes, sometimes a truncated tail. */
static void gen_binary(struct gen *g)
{
	/* Either layout; PRTREC02 with any widths. */
	struct pr_bin_layout l = rng_below(&g->rng, 4) == 0
		? pr_bin_layout_v1(2)
		: pr_bin_layout_v2(1 + (unsigned)rng_below(&g->rng, PR_CUSTOMER_MAX_BYTES),
				   (unsigned)rng_below(&g->rng, PR_STORE_MAX_BYTES + 1), 2);
	const size_t size = l.record_bytes;
	unsigned char rec[PR_BIN_RECORD_MAX_BYTES];
	pr_bin_header_encode(rec, &l);
	gen_put(g, (const char *)rec, PR_BIN_HEADER_BYTES);
	int records = (int)rng_below(&g->rng, 300);
	for (int i = 0; i < records; i++) {
		char customer[PR_CUSTOMER_MAX_BYTES], store[PR_STORE_MAX_BYTES];
		struct pr_record r = {
			.ts_ms = (int64_t)rng_next(&g->rng),
			.amount_minor = (int64_t)rng_next(&g->rng),
			.customer = customer,
			.customer_len = (uint8_t)(1 + rng_below(&g->rng, l.customer_width)),
			.store = store,
			.store_len = (uint8_t)rng_below(&g->rng, l.store_width + 1u),
		};
		for (int k = 0; k < PR_CUSTOMER_MAX_BYTES; k++)
			customer[k] = (char)rng_next(&g->rng);
		for (int k = 0; k < PR_STORE_MAX_BYTES; k++)
			store[k] = (char)rng_next(&g->rng);
		pr_bin_record_encode(rec, &l, &r);
		unsigned zero_bytes = l.zero_len[0] + l.zero_len[1];
		switch (rng_below(&g->rng, 12)) {
		case 0: /* no customer id, or one longer than its field */
			rec[16] = (uint8_t)(rng_below(&g->rng, 2)
						    ? 0
						    : l.customer_width + 1 +
							      rng_below(&g->rng, 255u - l.customer_width));
			want_reject(g, PR_REJECT_BINARY, 0);
			break;
		case 1:
			rec[17] = (uint8_t)(l.store_width + 1 + rng_below(&g->rng, 255u - l.store_width));
			want_reject(g, PR_REJECT_BINARY, 0);
			break;
		case 2:
			if (zero_bytes) { /* a reserved or padding byte not zero */
				unsigned k = (unsigned)rng_below(&g->rng, zero_bytes);
				unsigned at = k < l.zero_len[0] ? l.zero_at[0] + k
								 : l.zero_at[1] + k - l.zero_len[0];
				rec[at] = (unsigned char)(1 + rng_below(&g->rng, 255));
				want_reject(g, PR_REJECT_BINARY, 0);
				break;
			}
			/* Nothing of this layout must be zero: a good record. */
			__attribute__((fallthrough));
		default:
			want_record(g, r.ts_ms, r.amount_minor, r.customer, r.customer_len, r.store,
				    r.store_len);
		}
		g->line++;
		gen_put(g, (const char *)rec, size);
	}
	if (rng_below(&g->rng, 2)) {
		want_reject(g, PR_REJECT_TRUNCATED, 0);
		size_t tail = 1 + (size_t)rng_below(&g->rng, size - 1);
		for (size_t k = 0; k < tail; k++)
			rec[k] = (unsigned char)rng_next(&g->rng);
		gen_put(g, (const char *)rec, tail);
	}
	g->stats.bytes = g->len;
}

Test(decoder, property_binary_any_split_gives_the_known_records)
{
	unsigned first, count = seeds_to_run(&first);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	for (unsigned seed = first; seed < first + count; seed++) {
		struct gen g = { .rng = seed };
		gen_binary(&g);
		check_feed(&g, &opt, seed);
		free(g.buf);
		collector_reset(&g.want);
	}
}

/* Noise made of the bytes that matter (delimiters, quotes, CR, LF, spaces)
 * under a small line limit, in both delimiter modes: whatever it decodes
 * to, pieces of any size decode to the same. */
Test(decoder, property_noise_any_split_decodes_the_same)
{
	unsigned first, count = seeds_to_run(&first);
	static const char alphabet[] = "a1,\"\n\r \t.-";
	uint64_t records = 0, by_reason[PR_REJECT_REASON_COUNT] = { 0 };
	for (unsigned seed = first; seed < first + count; seed++) {
		uint64_t rng = seed;
		struct pr_feed_options opt;
		pr_feed_options_init(&opt);
		opt.column[PR_FIELD_TS] = "a";
		opt.column[PR_FIELD_CUSTOMER] = "b";
		opt.column[PR_FIELD_AMOUNT] = "c";
		opt.max_line_bytes = 8 + (size_t)rng_below(&rng, 40);
		opt.ts_format = "%Y";
		opt.delimiter_kind = rng_below(&rng, 2) ? PR_DELIM_CHAR : PR_DELIM_WHITESPACE;
		struct gen g = { .rng = seed };
		const char *header = opt.delimiter_kind == PR_DELIM_CHAR ? "a,b,c\n" : "a b c\n";
		gen_put(&g, header, strlen(header));
		/* Lines of tokens, good and bad, and now and then raw noise. */
		static const char *const tokens[] = {
			"1", "11", "2024", "a", "ab", "1.5", "-2", "\"a\"", "\"1,\n1\"", "\"a\"\"b\"",
			"", " ", "\"\"", "a\"", "\"a\"b", " \"a\" ", "\"a\r\nb\"", "\"unclosed",
		};
		const char *sep = opt.delimiter_kind == PR_DELIM_CHAR ? "," : " \t";
		int lines = 20 + (int)rng_below(&rng, 200);
		for (int i = 0; i < lines; i++) {
			static const char *const good[3][3] = {
				{ "1", "2024", "\"11\"" }, { "a", "\"a,\nb\"", "x" }, { "1.5", "-2", "\"3\"" },
			};
			bool plausible = rng_below(&rng, 2);
			int fields = plausible ? 3 : 1 + (int)rng_below(&rng, 4);
			for (int f = 0; f < fields; f++) {
				if (f)
					gen_put(&g, sep, 1 + (opt.delimiter_kind == PR_DELIM_WHITESPACE &&
							      rng_below(&rng, 2)));
				const char *t = plausible && rng_below(&rng, 8)
							? good[f][rng_below(&rng, 3)]
							: tokens[rng_below(&rng, sizeof tokens / sizeof tokens[0])];
				if (strcmp(t, "\"unclosed") != 0 || rng_below(&rng, 4) == 0)
					gen_put(&g, t, strlen(t));
			}
			for (int k = (int)rng_below(&rng, 4) == 0 ? (int)rng_below(&rng, 6) : 0; k > 0; k--)
				gen_put(&g, &alphabet[rng_below(&rng, sizeof alphabet - 1)], 1);
			const char *eols[] = { "\n", "\r\n", "\n", "\r\n", "", "\r" };
			const char *eol = eols[rng_below(&rng, 6)];
			gen_put(&g, eol, strlen(eol));
		}
		static struct collector whole, split;
		collector_reset(&whole);
		struct pr_error err = { 0 };
		struct pr_feed_stats want, got;
		cr_assert_eq(decode_split(&whole, &opt, g.buf, g.len, WHOLE, &err, &want), 0,
			     "seed %u: %s", seed, err.message);
		cr_assert_eq(want.lines, want.records + want.rejected, "seed %u", seed);
		records += want.records;
		for (int r = 0; r < PR_REJECT_REASON_COUNT; r++)
			by_reason[r] += want.by_reason[r];
		size_t maxima[] = { 1, 5, 64 };
		for (size_t m = 0; m < sizeof maxima / sizeof maxima[0]; m++) {
			char what[64];
			snprintf(what, sizeof what, "noise in pieces of 1..%zu", maxima[m]);
			struct splitter sp = { 0, maxima[m], seed * 31u + m };
			collector_reset(&split);
			cr_assert_eq(decode_split(&split, &opt, g.buf, g.len, sp, &err, &got), 0,
				     "seed %u %s: %s", seed, what, err.message);
			compare(&whole, &split, true, what, seed);
			compare_stats(&got, &want, what, seed);
		}
		collector_reset(&whole);
		collector_reset(&split);
		free(g.buf);
	}
	if (count > 1) { /* the noise reaches every path it is meant to */
		cr_assert_gt(records, 0);
		enum pr_reject_reason reached[] = { PR_REJECT_FIELD_COUNT, PR_REJECT_TIME,
						    PR_REJECT_AMOUNT, PR_REJECT_LINE_TOO_LONG,
						    PR_REJECT_QUOTE };
		for (size_t i = 0; i < sizeof reached / sizeof reached[0]; i++)
			cr_assert_gt(by_reason[reached[i]], 0, "%s",
				     pr_reject_reason_name(reached[i]));
	}
	cr_log_info("noise: %llu records, %llu field-count, %llu quote, %llu too long",
		    (unsigned long long)records,
		    (unsigned long long)by_reason[PR_REJECT_FIELD_COUNT],
		    (unsigned long long)by_reason[PR_REJECT_QUOTE],
		    (unsigned long long)by_reason[PR_REJECT_LINE_TOO_LONG]);
}
