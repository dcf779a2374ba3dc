/* test_decoder.c - CSV and binary feeds: quoting, line ends, mapping,
 * rejects with their locations, strict mode, and splits of any size. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"

#define MAX_SEEN 4096

struct seen_record {
	int64_t ts_ms, amount_minor;
	char customer[80], store[40];
};

struct seen_reject {
	uint64_t line, offset;
	unsigned column;
	enum pr_reject_reason reason;
	char detail[128], raw[300];
};

struct collector {
	struct seen_record records[MAX_SEEN];
	size_t n_records;
	struct seen_reject rejects[64];
	size_t n_rejects;
	bool stop_on_reject;
	int refuse_amount; /* record() refuses amounts equal to this (if nonzero) */
};

static int on_record(void *ctx, const struct pr_record *r)
{
	struct collector *c = ctx;
	if (c->refuse_amount && r->amount_minor == c->refuse_amount)
		return -ERANGE;
	cr_assert_lt(c->n_records, MAX_SEEN);
	struct seen_record *s = &c->records[c->n_records++];
	s->ts_ms = r->ts_ms;
	s->amount_minor = r->amount_minor;
	memcpy(s->customer, r->customer, r->customer_len);
	s->customer[r->customer_len] = 0;
	memcpy(s->store, r->store, r->store_len);
	s->store[r->store_len] = 0;
	return 0;
}

static int on_reject(void *ctx, const struct pr_reject *r)
{
	struct collector *c = ctx;
	if (c->n_rejects < 64) {
		struct seen_reject *s = &c->rejects[c->n_rejects++];
		s->line = r->line;
		s->offset = r->byte_offset;
		s->column = r->column;
		s->reason = r->reason;
		snprintf(s->detail, sizeof s->detail, "%s", r->detail);
		snprintf(s->raw, sizeof s->raw, "%.*s", (int)r->raw_len, r->raw);
	}
	return c->stop_on_reject ? -1 : 0;
}

/* Decodes `feed` pushed in pieces of `piece` bytes (0: all at once). */
static int decode(struct collector *c, const struct pr_feed_options *opt, const char *feed,
		  size_t len, size_t piece, struct pr_error *err, struct pr_feed_stats *stats)
{
	struct pr_decoder *d;
	struct pr_feed_sink sink = { c, on_record, on_reject };
	cr_assert_eq(pr_decoder_create(&d, "feed.csv", opt, &sink, err), 0);
	int rc = 0;
	for (size_t at = 0; at < len && rc == 0;) {
		size_t n = piece && piece < len - at ? piece : len - at;
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

static struct collector *run(const char *feed, const struct pr_feed_options *opt_or_null)
{
	static struct collector c;
	memset(&c, 0, sizeof c);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	int rc = decode(&c, opt_or_null ? opt_or_null : &opt, feed, strlen(feed), 0, &err, NULL);
	cr_assert_eq(rc, 0, "decode failed: %s", err.message);
	return &c;
}

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
	struct collector *c = run("\xef\xbb\xbf" "amount,\"customer_id\",ts\r\n"
				  "\"1,5\",\"a \"\"quoted\"\", id\",2024-01-01\r\n"
				  "\r\n"
				  "  \r\n"
				  "2, \"multi\nline\" ,2024-01-02\r\n"
				  "\"3\",plain,2024-01-03", NULL);
	cr_assert_eq(c->n_rejects, 1, "1,5 is not a decimal");
	cr_assert_eq(c->rejects[0].reason, PR_REJECT_AMOUNT);
	cr_assert_eq(c->rejects[0].line, 2);
	cr_assert_eq(c->rejects[0].column, 1);
	cr_assert_eq(c->n_records, 2);
	cr_assert_str_eq(c->records[0].customer, "multi\nline");
	cr_assert_str_eq(c->records[0].store, "", "no store column: one store");
	cr_assert_eq(c->records[0].amount_minor, 200);
	cr_assert_str_eq(c->records[1].customer, "plain");
	cr_assert_eq(c->records[1].amount_minor, 300);
}

Test(decoder, quoted_id_with_delimiter_and_quote)
{
	struct collector *c = run("ts,customer_id,amount\n2024-01-01,\"x,\"\"y\"\"\",1\n", NULL);
	cr_assert_eq(c->n_records, 1);
	cr_assert_str_eq(c->records[0].customer, "x,\"y\"");
}

Test(decoder, every_reject_reason_with_its_location)
{
	char long_id[70];
	memset(long_id, 'x', 65);
	long_id[65] = 0;
	char feed[2048];
	snprintf(feed, sizeof feed,
		 "ts,customer_id,store_id,amount\n"     /* line 1 */
		 "2024-01-01,A,S,1\n"                   /* 2 ok */
		 "2024-01-01,A,S\n"                     /* 3 field count */
		 "2024-02-30,A,S,1\n"                   /* 4 time */
		 "2024-01-01,A,S,1.2.3\n"               /* 5 amount */
		 "2024-01-01,%s,S,1\n"                  /* 6 customer too long */
		 "2024-01-01,,S,1\n"                    /* 7 customer empty */
		 "2024-01-01,A,%s,1\n"                  /* 8 store too long */
		 "2024-01-01,A,S,99999999999999999999\n" /* 9 overflow */
		 "2024-01-01,A\"B,S,1\n"                /* 10 quote */
		 "2024-01-01,B,S,2\n",                  /* 11 ok */
		 long_id, long_id);
	struct collector *c = run(feed, NULL);
	cr_assert_eq(c->n_records, 2);
	cr_assert_str_eq(c->records[1].customer, "B");
	struct { uint64_t line; enum pr_reject_reason reason; unsigned column; } want[] = {
		{ 3, PR_REJECT_FIELD_COUNT, 0 }, { 4, PR_REJECT_TIME, 1 },
		{ 5, PR_REJECT_AMOUNT, 4 },      { 6, PR_REJECT_CUSTOMER, 2 },
		{ 7, PR_REJECT_CUSTOMER, 2 },    { 8, PR_REJECT_STORE, 3 },
		{ 9, PR_REJECT_OVERFLOW, 4 },    { 10, PR_REJECT_QUOTE, 0 },
	};
	cr_assert_eq(c->n_rejects, 8);
	for (size_t i = 0; i < 8; i++) {
		cr_assert_eq(c->rejects[i].line, want[i].line, "reject %zu", i);
		cr_assert_eq(c->rejects[i].reason, want[i].reason, "reject %zu: %s", i,
			     pr_reject_reason_name(c->rejects[i].reason));
		cr_assert_eq(c->rejects[i].column, want[i].column, "reject %zu", i);
	}
	/* Line 3 starts after the header (31 bytes) and line 2 (17 bytes). */
	cr_assert_eq(c->rejects[0].offset, 48);
	cr_assert_str_eq(c->rejects[0].raw, "2024-01-01,A,S");
}

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
		static struct collector c;
		memset(&c, 0, sizeof c);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&c, &opt, feed, n, piece, &err, NULL), 0, "%s", err.message);
		cr_assert_eq(c.n_records, 2);
		cr_assert_str_eq(c.records[1].customer, "B");
		cr_assert_eq(c.n_rejects, 1);
		cr_assert_eq(c.rejects[0].reason, PR_REJECT_LINE_TOO_LONG);
		cr_assert_eq(c.rejects[0].line, 3);
	}
	free(feed);
}

static int sum(void *ctx, const struct pr_record *r)
{
	*(int64_t *)ctx += r->amount_minor;
	return 0;
}

Test(decoder, whitespace_delimiter_on_cdnow)
{
	FILE *f = fopen(PARETO_SOURCE_DIR "/tests/data/CDNOW_master.txt", "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	size_t len = (size_t)ftell(f);
	rewind(f);
	char *feed = malloc(len);
	cr_assert_eq(fread(feed, 1, len, f), len);
	fclose(f);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	opt.delimiter_kind = PR_DELIM_WHITESPACE;
	opt.column[PR_FIELD_CUSTOMER] = "customer_id";
	opt.column[PR_FIELD_TS] = "date";
	opt.column[PR_FIELD_AMOUNT] = "dollar_value";
	opt.ts_format = "%Y%m%d";
	static struct collector c;
	memset(&c, 0, sizeof c);
	struct pr_error err = { 0 };
	struct pr_feed_stats stats;
	/* Only the first 50 lines are kept by the collector; count the rest. */
	const char *cut = feed;
	for (int i = 0; i < 51; i++)
		cut = strchr(cut, '\n') + 1;
	cr_assert_eq(decode(&c, &opt, feed, (size_t)(cut - feed), 7, &err, &stats), 0, "%s",
		     err.message);
	cr_assert_eq(c.n_records, 50);
	cr_assert_str_eq(c.records[0].customer, "00001");
	cr_assert_eq(c.records[0].amount_minor, 1177);
	cr_assert_eq(c.records[0].ts_ms, 852076800000LL); /* 1997-01-01 */

	struct pr_decoder *d;
	int64_t total = 0;
	struct pr_feed_sink sink = { &total, sum, NULL };
	cr_assert_eq(pr_decoder_create(&d, "CDNOW_master.txt", &opt, &sink, &err), 0);
	cr_assert_eq(pr_decoder_push(d, feed, len, &err), 0);
	cr_assert_eq(pr_decoder_finish(d, &err), 0);
	cr_assert_eq(pr_decoder_stats(d)->records, 69659);
	cr_assert_eq(pr_decoder_stats(d)->rejected, 0);
	cr_assert_eq(total, 250031563);
	pr_decoder_destroy(d);
	free(feed);
}

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
	struct collector *c = run("InvoiceNo;Quantity;InvoiceDate;UnitPrice;CustomerID;Country\n"
				  "536365;6;12/1/2010 8:26;2.55;17850;United Kingdom\n"
				  "C536379;-1;12/1/2010 9:41;27.50;14527;France\n", &opt);
	cr_assert_eq(c->n_records, 2);
	cr_assert_eq(c->records[0].amount_minor, 1530);
	cr_assert_eq(c->records[1].amount_minor, -2750);
	cr_assert_str_eq(c->records[1].store, "France");

	struct collector dummy = { 0 };
	struct pr_error err = { 0 };
	pr_feed_options_init(&opt);
	const char *feed = "time,customer_id,amount\n";
	cr_assert_eq(decode(&dummy, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message,
			 "feed.csv: header has no column 'ts' (columns: time, customer_id, amount)");
	opt.column[PR_FIELD_STORE] = "shop";
	feed = "ts,customer_id,amount\n";
	cr_assert_eq(decode(&dummy, &opt, feed, strlen(feed), 0, &err, NULL), -EINVAL,
		     "an explicitly mapped store column must exist");
}

Test(decoder, strict_stops_at_the_first_bad_line)
{
	static struct collector c;
	memset(&c, 0, sizeof c);
	c.stop_on_reject = true;
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1\n2024-01-01,B,x\n2024-01-01,C,1\n";
	cr_assert_eq(decode(&c, &opt, feed, strlen(feed), 0, &err, NULL), -ECANCELED);
	cr_assert_eq(c.n_records, 1);
	cr_assert_str_eq(err.message, "feed.csv: line 3: amount: not a decimal number 'x'");
}

Test(decoder, refused_records_become_overflow_rejects)
{
	static struct collector c;
	memset(&c, 0, sizeof c);
	c.refuse_amount = 700;
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	struct pr_feed_stats stats;
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1\n2024-01-01,B,7\n";
	cr_assert_eq(decode(&c, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	cr_assert_eq(c.n_records, 1);
	cr_assert_eq(c.rejects[0].reason, PR_REJECT_OVERFLOW);
	cr_assert_eq(c.rejects[0].line, 3);
	cr_assert_eq(stats.records, 1);
	cr_assert_eq(stats.rejected, 1);
	cr_assert_eq(stats.lines, 2);
}

Test(decoder, rounding_is_counted)
{
	struct pr_feed_stats stats;
	static struct collector c;
	memset(&c, 0, sizeof c);
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	struct pr_error err = { 0 };
	const char *feed = "ts,customer_id,amount\n2024-01-01,A,1.005\n2024-01-01,B,1.015\n";
	cr_assert_eq(decode(&c, &opt, feed, strlen(feed), 0, &err, &stats), 0);
	cr_assert_eq(stats.rounded, 2);
	cr_assert_eq(c.records[0].amount_minor, 100);
	cr_assert_eq(c.records[1].amount_minor, 102);
}

/* ---- binary and splits ---------------------------------------------------- */

static size_t binary_feed(char *out, int records, uint32_t scale)
{
	pr_bin_header_encode((unsigned char *)out, scale);
	size_t n = PR_BIN_HEADER_BYTES;
	for (int i = 0; i < records; i++) {
		char id[16], store[8];
		snprintf(id, sizeof id, "cust-%d", i % 7);
		snprintf(store, sizeof store, "S%d", i % 3);
		struct pr_record r = { .ts_ms = 1700000000000LL + i, .amount_minor = i * 10 - 50,
				       .customer = id, .customer_len = (uint8_t)strlen(id),
				       .store = store, .store_len = (uint8_t)(i % 4 ? strlen(store) : 0) };
		pr_bin_record_encode((unsigned char *)out + n, &r);
		n += PR_BIN_RECORD_BYTES;
	}
	return n;
}

Test(decoder, binary_records_round_trip_and_truncation)
{
	static char feed[PR_BIN_HEADER_BYTES + 100 * PR_BIN_RECORD_BYTES];
	size_t n = binary_feed(feed, 100, 2);
	feed[PR_BIN_HEADER_BYTES + 5 * PR_BIN_RECORD_BYTES + 16] = 0; /* record 6: empty id */
	struct pr_feed_options opt;
	pr_feed_options_init(&opt);
	for (size_t piece = 1; piece <= n; piece = piece * 3 + 1) {
		static struct collector c;
		memset(&c, 0, sizeof c);
		struct pr_error err = { 0 };
		struct pr_feed_stats stats;
		cr_assert_eq(decode(&c, &opt, feed, n - 5, piece, &err, &stats), 0, "%s", err.message);
		cr_assert_eq(c.n_records, 98, "piece %zu", piece);
		cr_assert_eq(c.n_rejects, 2);
		cr_assert_eq(c.rejects[0].reason, PR_REJECT_BINARY);
		cr_assert_eq(c.rejects[0].line, 6);
		cr_assert_eq(c.rejects[1].reason, PR_REJECT_TRUNCATED);
		cr_assert_eq(c.rejects[1].line, 100);
		cr_assert_eq(c.records[0].amount_minor, -50);
		cr_assert_str_eq(c.records[0].customer, "cust-0");
		cr_assert_str_eq(c.records[0].store, "");
		cr_assert_str_eq(c.records[1].store, "S1");
	}
	struct collector c2 = { 0 };
	struct pr_error err = { 0 };
	opt.scale = 3;
	cr_assert_eq(decode(&c2, &opt, feed, n, 0, &err, NULL), -EINVAL);
	cr_assert_str_eq(err.message, "feed.csv: binary feed has scale 2, expected 3");
}

/* Random CSV feeds (quotes, CRLF, blank lines, bad lines) give the same
 * records and rejects whatever the size of the pieces they arrive in. */
Test(decoder, any_split_gives_the_same_records)
{
	static char feed[1 << 16];
	for (unsigned seed = 1; seed <= 30; seed++) {
		srand(seed);
		size_t n = (size_t)sprintf(feed, "ts,customer_id,store_id,amount%s",
					   seed % 2 ? "\r\n" : "\n");
		for (int i = 0; i < 300 && n < sizeof feed - 200; i++) {
			const char *eol = rand() % 2 ? "\r\n" : "\n";
			switch (rand() % 6) {
			case 0:
				n += (size_t)sprintf(feed + n, "2024-01-%02d,\"q\"\"%d\nx\",S,%d.%02d%s",
						     1 + rand() % 28, rand() % 50, rand() % 100,
						     rand() % 100, eol);
				break;
			case 1:
				n += (size_t)sprintf(feed + n, "%s", eol);
				break;
			case 2:
				n += (size_t)sprintf(feed + n, "bad,line%s", eol);
				break;
			default:
				n += (size_t)sprintf(feed + n, "%d,C%d,\"S,%d\",%d%s",
						     1700000000 + rand() % 1000000, rand() % 50,
						     rand() % 3, rand() % 10000 - 100, eol);
			}
		}
		static struct collector whole, split;
		memset(&whole, 0, sizeof whole);
		struct pr_feed_options opt;
		pr_feed_options_init(&opt);
		struct pr_error err = { 0 };
		cr_assert_eq(decode(&whole, &opt, feed, n, 0, &err, NULL), 0, "seed %u: %s", seed,
			     err.message);
		for (int trial = 0; trial < 5; trial++) {
			memset(&split, 0, sizeof split);
			size_t piece = 1 + (size_t)rand() % 97;
			cr_assert_eq(decode(&split, &opt, feed, n, piece, &err, NULL), 0);
			cr_assert_eq(split.n_records, whole.n_records, "seed %u piece %zu", seed, piece);
			cr_assert_eq(memcmp(split.records, whole.records,
					    whole.n_records * sizeof whole.records[0]), 0,
				     "seed %u piece %zu", seed, piece);
			cr_assert_eq(split.n_rejects, whole.n_rejects, "seed %u", seed);
			for (size_t i = 0; i < whole.n_rejects; i++) {
				cr_assert_eq(split.rejects[i].line, whole.rejects[i].line);
				cr_assert_eq(split.rejects[i].offset, whole.rejects[i].offset);
			}
		}
	}
}
