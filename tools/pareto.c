/*
 * pareto.c - the pareto command: exact Pareto reports from purchase feeds.
 *
 *   pareto report [options] FILE...    the one-shot report (no server)
 *   pareto convert [options] IN OUT    CSV to binary records
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"Usage: pareto COMMAND [options] ...\n"
	"\n"
	"Exact customer-revenue analytics for retail purchase feeds: Pareto ranks,\n"
	"the top-20% tier and its share of revenue, ABC tiers, concentration risk\n"
	"(key clients, HHI, Gini) and lapsed regulars, per calendar window.\n"
	"\n"
	"Commands:\n"
	"  report    read feeds and print the report (pareto report --help)\n"
	"  convert   convert a CSV feed to binary records (pareto convert --help)\n"
	"\n"
	"Options:\n"
	"  -h, --help     this help\n"
	"  --version      the version\n"
	"\n"
	"Example (the CDNOW data set, whitespace-separated, no store column):\n"
	"  pareto report --delimiter whitespace --map customer=customer_id \\\n"
	"      --map ts=date --ts-format %Y%m%d --map amount=dollar_value \\\n"
	"      CDNOW_master.txt\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *command = argv[1];
	/* getopt names the program by argv[0] in its messages. */
	if (strcmp(command, "report") == 0) {
		argv[1] = "pareto report";
		return cli_report(argc - 1, argv + 1);
	}
	if (strcmp(command, "convert") == 0) {
		argv[1] = "pareto convert";
		return cli_convert(argc - 1, argv + 1);
	}
	if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
	    strcmp(command, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(command, "--version") == 0) {
		puts("pareto " PARETO_VERSION);
		return 0;
	}
	fprintf(stderr, "pareto: unknown command '%s'\nTry 'pareto --help'.\n", command);
	return EXIT_USAGE;
}
