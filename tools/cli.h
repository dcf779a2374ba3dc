/*
 * cli.h - the pareto command's pieces: subcommands, shared feed options,
 * money formatting. Exit codes: 0 success, 2 bad usage or a bad feed under
 * --strict (or a feed that does not match its options), 1 other failures.
 */
#ifndef PARETO_CLI_H
#define PARETO_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pareto/feed.h"
#include "pareto/options.h"

#define EXIT_USAGE 2

/* Feed options of report and convert: the shared format options of
 * pareto/options.h, then the command line's own. */
enum {
	OPT_STRICT = PR_OPT_LAST,
	OPT_REJECTS,
	OPT_SHOW_ERRORS,
	OPT_QUIET,
	OPT_FEED_LAST
};

#define CLI_FEED_LONG_OPTIONS                                                 \
	PR_FEED_LONG_OPTIONS,                                                 \
	{ "strict", no_argument, NULL, OPT_STRICT },                          \
	{ "rejects", required_argument, NULL, OPT_REJECTS },                  \
	{ "show-errors", required_argument, NULL, OPT_SHOW_ERRORS },          \
	{ "quiet", no_argument, NULL, OPT_QUIET }

#define CLI_FEED_HELP                                                                     \
	"Feed options:\n"                                                                 \
	"  --delimiter D       comma (default), semicolon, tab, pipe, whitespace (runs of\n" \
	"                      spaces and tabs) or any single character\n"                 \
	"  --map FIELD=COLUMN  header column of a field: ts, customer, store, amount,\n"   \
	"                      quantity, price (defaults: ts, customer_id, store_id,\n"    \
	"                      amount; with quantity and price, amount = quantity x price)\n" \
	"  --ts-format FMT     strftime-style time pattern, e.g. %%Y%%m%%d or\n"          \
	"                      \"%%m/%%d/%%Y %%H:%%M\" (default: ISO-8601 or epoch s/ms)\n" \
	"  --scale N           decimal digits of the minor unit, 0..9 (default 2)\n"      \
	"  --strict            the first bad line is an error (exit code 2)\n"            \
	"  --rejects FILE      write every rejected line to FILE as CSV (file, line,\n"   \
	"                      byte offset, column, reason, detail, raw line)\n"          \
	"  --show-errors N     bad lines described on stderr (default 10)\n"             \
	"  --quiet             no progress line, warnings or reject details on stderr\n"

struct cli_feed {
	struct pr_feed_options opt;
	bool strict, quiet;
	bool progress_line; /* a progress line is on stderr: clear it first */
	unsigned show_errors;
	const char *rejects_path;
	FILE *rejects;
	uint64_t shown;
	struct pr_feed_stats stats; /* summed over every input */
};

void cli_feed_init(struct cli_feed *f);
/*
 * Handles one feed option, or a shared engine option (pareto/options.h)
 * when `engine` is not NULL; returns 0, or EXIT_USAGE after printing why.
 */
int cli_feed_option(struct cli_feed *f, struct pr_engine_options *engine, int id,
		    const char *arg);
/*
 * Reads one input, handing each good record to record(ctx, r) (a negative
 * return rejects that line as overflow) and each bad line to the reject
 * report. Returns 0 or an exit code after printing a one-line message.
 */
int cli_feed_run(struct cli_feed *f, const char *path,
		 int (*record)(void *ctx, const struct pr_record *r), void *ctx);
/*
 * Reads every input into the engine as a bulk load, on the engine's
 * threads (paths; "-" is stdin). Returns 0 or an
 * exit code after printing a one-line message naming the file and cause.
 */
struct pr_engine;
int cli_feed_ingest(struct cli_feed *f, struct pr_engine *e, char **paths, int count);
/* Prints the totals of rejected and rounded lines to stderr (unless quiet). */
void cli_feed_summary(const struct cli_feed *f);
void cli_feed_close(struct cli_feed *f);

/* "1,234.56" (grouped) or "1234.56"; buf of 48 bytes is enough. */
char *cli_money(char *buf, size_t size, int64_t minor, unsigned scale, bool grouped);

int cli_report(int argc, char **argv);
int cli_convert(int argc, char **argv);

#endif
