/*
 * pareto/options.h - the options that say how to read a feed and what to
 * compute, shared by every front end (pareto report and convert, paretod):
 * one table of long option names and one parser, so that they accept the
 * same names, spellings and ranges and say the same thing when a value is
 * wrong.
 *
 *   static const struct option options[] = {
 *           PR_FEED_LONG_OPTIONS, PR_ENGINE_LONG_OPTIONS,
 *           { "json", no_argument, NULL, MY_OPT_JSON }, // numbered from PR_OPT_LAST
 *           { 0 },
 *   };
 *   ...
 *   default:
 *           if (pr_option_apply(id, optarg, &feed, &engine, &err) < 0)
 *                   fprintf(stderr, "me: %s\n", err.message);
 */
#ifndef PARETO_OPTIONS_H
#define PARETO_OPTIONS_H

#include "pareto/engine.h"
#include "pareto/error.h"
#include "pareto/feed.h"

/* getopt ids, above any short option's character. */
enum {
	PR_OPT_DELIMITER = 1000,
	PR_OPT_MAP,
	PR_OPT_TS_FORMAT,
	PR_OPT_SCALE,
	PR_OPT_TOP_FRACTION,
	PR_OPT_TIERS,
	PR_OPT_PARETO_TARGET,
	PR_OPT_KEY_SHARE,
	PR_OPT_LAPSED_MIN_DAYS,
	PR_OPT_LAPSED_GAP_FACTOR,
	PR_OPT_LAPSED_MIN_IDLE_DAYS,
	PR_OPT_CUSTOMERS,
	PR_OPT_LAST /* front ends number their own options from here */
};

/* Entries of a getopt_long table (<getopt.h>): the feed's format. */
#define PR_FEED_LONG_OPTIONS                                                  \
	{ "delimiter", required_argument, NULL, PR_OPT_DELIMITER },           \
	{ "map", required_argument, NULL, PR_OPT_MAP },                       \
	{ "ts-format", required_argument, NULL, PR_OPT_TS_FORMAT },           \
	{ "scale", required_argument, NULL, PR_OPT_SCALE }

/* ... and the engine's cut points, thresholds and size hint. */
#define PR_ENGINE_LONG_OPTIONS                                                        \
	{ "top-fraction", required_argument, NULL, PR_OPT_TOP_FRACTION },             \
	{ "tiers", required_argument, NULL, PR_OPT_TIERS },                           \
	{ "pareto-target", required_argument, NULL, PR_OPT_PARETO_TARGET },           \
	{ "key-share", required_argument, NULL, PR_OPT_KEY_SHARE },                   \
	{ "lapsed-min-days", required_argument, NULL, PR_OPT_LAPSED_MIN_DAYS },       \
	{ "lapsed-gap-factor", required_argument, NULL, PR_OPT_LAPSED_GAP_FACTOR },   \
	{ "lapsed-min-idle-days", required_argument, NULL, PR_OPT_LAPSED_MIN_IDLE_DAYS }, \
	{ "customers", required_argument, NULL, PR_OPT_CUSTOMERS }

/*
 * Applies option `id` (one of the PR_OPT_ above) with its value to *feed or
 * *engine. Returns 0, or -EINVAL with err->message naming the option and
 * what it expects ("--scale: expected 0..9, not '12'"). Strings (map
 * columns, the time format) are borrowed from value.
 */
int pr_option_apply(int id, const char *value, struct pr_feed_options *feed,
		    struct pr_engine_options *engine, struct pr_error *err);

#endif
