/*
 * cli_convert.c - `pareto convert`: a CSV feed to binary records.
 *
 * The output is the fixed-size little-endian format of pareto/record.h
 * (PRTREC02), which decodes without parsing; rejected lines are reported as
 * by `report` and left out, so converting never changes a total. A regular
 * input file is read twice: first for its longest ids, so that the records
 * are no wider than they need to be; standard input or a pipe is read once,
 * into records with room for the longest ids a feed may have.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "pareto/ingest.h"

static const char convert_usage[] =
	"Usage: pareto convert [feed options] INPUT OUTPUT\n"
	"\n"
	"Converts a CSV feed (- is standard input), or binary records of an older\n"
	"layout, into binary records (include/pareto/record.h) that `pareto\n"
	"report` reads directly; OUTPUT - is standard output. A regular INPUT\n"
	"file is read twice, the first time for its longest ids: the records are\n"
	"as narrow as they allow.\n"
	"\n" CLI_FEED_HELP;

struct writer {
	FILE *out;
	struct cli_feed *feed;
	struct pr_bin_layout layout;
	uint64_t written;
	bool too_long; /* an id longer than the first reading found */
};

static int write_record(void *ctx, const struct pr_record *r)
{
	struct writer *w = ctx;
	if (r->customer_len > w->layout.customer_width || r->store_len > w->layout.store_width) {
		w->too_long = true; /* the file grew between the readings */
		return -1;
	}
	unsigned char bytes[PR_BIN_RECORD_MAX_BYTES];
	pr_bin_record_encode(bytes, &w->layout, r);
	fwrite(bytes, 1, w->layout.record_bytes, w->out);
	w->written++;
	return 0;
}

/* The first reading: the longest ids of the records (rejects are left to
 * the second). */
struct widths {
	unsigned customer, store;
};

static int measure_record(void *ctx, const struct pr_record *r)
{
	struct widths *m = ctx;
	if (r->customer_len > m->customer)
		m->customer = r->customer_len;
	if (r->store_len > m->store)
		m->store = r->store_len;
	return 0;
}

static int ignore_reject(void *ctx, const struct pr_reject *r)
{
	(void)ctx, (void)r;
	return 0;
}

/* The narrowest layout for a regular file's ids; the widest for a stream
 * (or a file the first reading could not finish: the second one says why). */
static struct pr_bin_layout layout_for(const char *input, const struct pr_feed_options *opt)
{
	struct stat st;
	struct widths m = { 1, 0 };
	struct pr_feed_options quiet = *opt;
	quiet.progress = NULL;
	struct pr_feed_sink sink = { &m, measure_record, ignore_reject };
	struct pr_feed_stats stats = { 0 };
	struct pr_error err = { 0 };
	if (strcmp(input, "-") == 0 || stat(input, &st) != 0 || !S_ISREG(st.st_mode) ||
	    pr_feed_read(input, &quiet, &sink, &stats, &err) < 0)
		m = (struct widths){ PR_CUSTOMER_MAX_BYTES, PR_STORE_MAX_BYTES };
	return pr_bin_layout_v2(m.customer, m.store, opt->scale);
}

int cli_convert(int argc, char **argv)
{
	static const struct option options[] = {
		CLI_FEED_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cli_feed feed;
	cli_feed_init(&feed);
	int id, rc = 0;
	optind = 1;
	while (rc == 0 && (id = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (id == 'h') {
			fputs(convert_usage, stdout);
			return 0;
		}
		rc = id == '?' ? EXIT_USAGE : cli_feed_option(&feed, NULL, id, optarg);
	}
	if (rc == 0 && argc - optind != 2) {
		fputs("pareto convert: expected INPUT and OUTPUT\n"
		      "Try 'pareto convert --help'.\n", stderr);
		rc = EXIT_USAGE;
	}
	if (rc)
		return rc;
	const char *input = argv[optind], *output = argv[optind + 1];
	FILE *out = strcmp(output, "-") == 0 ? stdout : fopen(output, "wb");
	if (!out) {
		fprintf(stderr, "pareto convert: %s: %s\n", output, strerror(errno));
		return 1;
	}
	static char buffer[1 << 20];
	setvbuf(out, buffer, _IOFBF, sizeof buffer);
	struct writer w = { .out = out, .feed = &feed, .layout = layout_for(input, &feed.opt) };
	unsigned char header[PR_BIN_HEADER_BYTES];
	pr_bin_header_encode(header, &w.layout);
	fwrite(header, 1, sizeof header, out);

	rc = cli_feed_run(&feed, input, write_record, &w);
	cli_feed_summary(&feed);
	if (w.too_long) {
		fprintf(stderr, "pareto convert: %s: an id longer than at the first reading "
				"(did the file change?); %s is incomplete\n", input, output);
		rc = 1;
	}
	if ((fflush(out) != 0 || ferror(out)) && rc == 0) {
		fprintf(stderr, "pareto convert: %s: %s\n", output, strerror(errno));
		rc = 1;
	}
	if (out != stdout)
		fclose(out);
	if (rc == 0 && !feed.quiet)
		fprintf(stderr, "pareto convert: %llu records of %u bytes written to %s\n",
			(unsigned long long)w.written, w.layout.record_bytes, output);
	cli_feed_close(&feed);
	return rc;
}
