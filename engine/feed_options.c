/* feed_options.c - feed option defaults, reject reason names, counts. */
#include <string.h>

#include "pareto/feed.h"

void pr_feed_options_init(struct pr_feed_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->delimiter_kind = PR_DELIM_CHAR;
	opt->delimiter = ',';
	opt->scale = 2;
	opt->max_line_bytes = PR_MAX_LINE_BYTES_DEFAULT;
}

void pr_feed_stats_add(struct pr_feed_stats *to, const struct pr_feed_stats *from)
{
	to->bytes += from->bytes;
	to->lines += from->lines;
	to->records += from->records;
	to->rejected += from->rejected;
	to->rounded += from->rounded;
	for (int i = 0; i < PR_REJECT_REASON_COUNT; i++)
		to->by_reason[i] += from->by_reason[i];
}

const char *pr_reject_reason_name(enum pr_reject_reason reason)
{
	static const char *const names[PR_REJECT_REASON_COUNT] = {
		"field-count", "time", "amount", "customer", "store",
		"overflow", "line-too-long", "quote", "binary", "truncated",
	};
	return reason < PR_REJECT_REASON_COUNT ? names[reason] : "?";
}
