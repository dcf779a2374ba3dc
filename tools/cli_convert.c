/*
 * cli_convert.c - `pareto convert`: a CSV feed to binary records.
 *
 * The output is the fixed-size little-endian format of pareto/record.h, which
 * decodes without parsing; rejected lines are reported as by `report` and
 * left out, so converting never changes a total.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pareto/ingest.h"

static const char convert_usage[] =
	"Usage: pareto convert [feed options] INPUT OUTPUT\n"
	"\n"
	"Converts a CSV feed (- is standard input) into binary records\n"
	"(include/pareto/record.h) that `pareto report` reads directly;\n"
	"OUTPUT - is standard output.\n"
	"\n" CLI_FEED_HELP;

struct writer {
	FILE *out;
	struct cli_feed *feed;
	uint64_t written;
};

static int write_record(void *ctx, const struct pr_record *r)
{
	struct writer *w = ctx;
	unsigned char bytes[PR_BIN_RECORD_BYTES];
	pr_bin_record_encode(bytes, r);
	fwrite(bytes, 1, sizeof bytes, w->out);
	w->written++;
	return 0;
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
	unsigned char header[PR_BIN_HEADER_BYTES];
	pr_bin_header_encode(header, feed.opt.scale);
	fwrite(header, 1, sizeof header, out);

	struct writer w = { .out = out, .feed = &feed };
	rc = cli_feed_run(&feed, input, write_record, &w);
	cli_feed_summary(&feed);
	if ((fflush(out) != 0 || ferror(out)) && rc == 0) {
		fprintf(stderr, "pareto convert: %s: %s\n", output, strerror(errno));
		rc = 1;
	}
	if (out != stdout)
		fclose(out);
	if (rc == 0 && !feed.quiet)
		fprintf(stderr, "pareto convert: %llu records written to %s\n",
			(unsigned long long)w.written, output);
	cli_feed_close(&feed);
	return rc;
}
