/*
 * cli_report.c - `pareto report`: read feeds, print the exact report.
 *
 * Everything printed comes from the engine's rankings (pareto/ranking.h);
 * this file only gathers the pieces asked for and renders them as aligned
 * text or as JSON with the field names the daemon uses too.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_json.h"
#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "timeparse.h"

enum {
	OPT_WINDOW = OPT_FEED_LAST,
	OPT_TOP,
	OPT_BY_STORE,
	OPT_CUSTOMER,
	OPT_LAPSED,
	OPT_JSON,
	OPT_THREADS,
	OPT_MEMORY_LIMIT,
	OPT_HELP,
};

static const char report_usage[] =
	"Usage: pareto report [options] FILE...\n"
	"\n"
	"Reads purchase feeds (CSV with a header row, or binary records from\n"
	"`pareto convert`; - is standard input) and prints the exact Pareto report:\n"
	"customers, revenue, the top tier and its share, the Pareto point, ABC tiers,\n"
	"concentration (CR1/CR5/CR10, HHI, Gini, risk level, key clients), the top\n"
	"customers, and on request per-store figures, customer details and lapsed\n"
	"regulars.\n"
	"\n"
	"Report options:\n"
	"  --window W          all (default), month, quarter, year, prev-month,\n"
	"                      prev-quarter, prev-year: calendar periods of the\n"
	"                      watermark (the latest event time, UTC)\n"
	"  --top N             top customers listed (default 10)\n"
	"  --by-store          concentration per store as well\n"
	"  --customer ID       rank, percentile, tier and share of one customer\n"
	"                      (repeatable)\n"
	"  --lapsed N          the N largest lapsed regulars\n"
	"  --json              JSON instead of text (money in integer minor units)\n"
	"  --top-fraction F    size of the top tier (default 0.2; also 20% or 1/5)\n"
	"  --tiers A,B         ABC cut points (default 0.2,0.5)\n"
	"  --pareto-target F   revenue share of the Pareto point (default 0.8)\n"
	"  --key-share F       share that makes a key client (default 0.1)\n"
	"  --lapsed-min-days N       distinct purchase days of a regular (default 3)\n"
	"  --lapsed-gap-factor F     idle longer than F x his mean gap (default 3)\n"
	"  --lapsed-min-idle-days N  and at least N days (default 30)\n"
	"  --customers N       expected customers, to size tables (default 65536)\n"
	"  --threads N         threads decoding and applying a large file (default:\n"
	"                      the cores online, at most 64)\n"
	"  --memory-limit B    bytes a load may hold staged and between threads,\n"
	"                      besides the aggregates (default 128M; K, M, G)\n"
	"  -h, --help          this help\n"
	"\n" CLI_FEED_HELP
	"\n"
	"Exit status: 0 success, 2 bad usage or a bad feed under --strict, 1 other\n"
	"failures (missing or unreadable file, io_uring unavailable).\n";

#define MAX_CUSTOMERS_ASKED 1024

struct report_request {
	enum pr_window window;
	uint64_t top;
	bool by_store, json;
	size_t lapsed;
	bool want_lapsed;
	const char *customers[MAX_CUSTOMERS_ASKED];
	size_t customer_count;
};

/* The computed report: everything rendered comes from here. */
struct report {
	const struct pr_engine *engine;
	struct pr_engine_state state;
	const struct cli_feed *feed;
	const struct pr_engine_options *opt;
	struct pr_ranking *company;
	struct pr_summary summary;
	struct pr_ranking **stores; /* NULL unless by_store */
	struct pr_summary *store_summaries;
	uint32_t *store_order;
	uint32_t store_count;
	struct pr_lapsed *lapsed;
	size_t lapsed_count, lapsed_total;
};

static int parse_count(const char *name, const char *arg, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-') {
		fprintf(stderr, "pareto report: %s: expected a count, not '%s'\n", name, arg);
		return EXIT_USAGE;
	}
	*out = v;
	return 0;
}

/* A byte count with an optional K, M or G (powers of 1024), at least 64K. */
static int parse_bytes(const char *name, const char *arg, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == arg || *end || arg[0] == '-' || v > (UINT64_MAX >> 30) ||
	    (v << shift) < (64u << 10)) {
		fprintf(stderr, "pareto report: %s: expected bytes of at least 64K "
				"(a count with K, M or G), not '%s'\n", name, arg);
		return EXIT_USAGE;
	}
	*out = v << shift;
	return 0;
}

static int parse_args(int argc, char **argv, struct report_request *req,
		      struct cli_feed *feed, struct pr_engine_options *opt)
{
	static const struct option options[] = {
		CLI_FEED_LONG_OPTIONS,
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "by-store", no_argument, NULL, OPT_BY_STORE },
		{ "customer", required_argument, NULL, OPT_CUSTOMER },
		{ "lapsed", required_argument, NULL, OPT_LAPSED },
		{ "json", no_argument, NULL, OPT_JSON },
		PR_ENGINE_LONG_OPTIONS,
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "memory-limit", required_argument, NULL, OPT_MEMORY_LIMIT },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	uint64_t v;
	int id, rc = 0;
	optind = 1;
	while (rc == 0 && (id = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (id) {
		case OPT_WINDOW:
			if (pr_window_parse(optarg, &req->window) < 0) {
				fprintf(stderr, "pareto report: --window: expected all, month, "
						"quarter, year, prev-month, prev-quarter or "
						"prev-year, not '%s'\n", optarg);
				rc = EXIT_USAGE;
			}
			break;
		case OPT_TOP:
			rc = parse_count("--top", optarg, &req->top);
			break;
		case OPT_BY_STORE:
			req->by_store = true;
			break;
		case OPT_CUSTOMER:
			if (req->customer_count == MAX_CUSTOMERS_ASKED) {
				fprintf(stderr, "pareto report: --customer: at most %d\n",
					MAX_CUSTOMERS_ASKED);
				rc = EXIT_USAGE;
			} else {
				req->customers[req->customer_count++] = optarg;
			}
			break;
		case OPT_LAPSED:
			rc = parse_count("--lapsed", optarg, &v);
			req->lapsed = (size_t)v;
			req->want_lapsed = true;
			break;
		case OPT_JSON:
			req->json = true;
			break;
		case OPT_THREADS:
			rc = parse_count("--threads", optarg, &v);
			if (rc == 0 && (v < 1 || v > PR_LANES_MAX)) {
				fprintf(stderr, "pareto report: --threads: expected 1..%d\n", PR_LANES_MAX);
				rc = EXIT_USAGE;
			}
			opt->threads = (unsigned)v;
			break;
		case OPT_MEMORY_LIMIT:
			rc = parse_bytes("--memory-limit", optarg, &v);
			opt->memory_limit_bytes = (size_t)v;
			break;
		case 'h':
		case OPT_HELP:
			fputs(report_usage, stdout);
			return -1;
		case '?':
			fputs("Try 'pareto report --help'.\n", stderr);
			rc = EXIT_USAGE;
			break;
		default:
			rc = cli_feed_option(feed, opt, id, optarg);
		}
	}
	if (rc == 0 && optind >= argc) {
		fputs("pareto report: no input files (use - for standard input)\n"
		      "Try 'pareto report --help'.\n", stderr);
		rc = EXIT_USAGE;
	}
	return rc;
}

/* Stores by risk level, then largest share, then index: the riskiest first. */
static int compare_stores(const void *a, const void *b, void *report)
{
	const struct report *r = report;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct pr_summary *sx = &r->store_summaries[x], *sy = &r->store_summaries[y];
	if (sx->risk != sy->risk)
		return sx->risk > sy->risk ? -1 : 1;
	/* Largest share first, compared exactly: top_x / total_x vs top_y / total_y.
	 * A store with no revenue in the window has share 0 (its total counts
	 * as 1, or every store would tie with it). */
	__int128 lhs = (__int128)pr_ranking_top_revenue(r->stores[x], 1) *
		       (sy->revenue_minor ? sy->revenue_minor : 1);
	__int128 rhs = (__int128)pr_ranking_top_revenue(r->stores[y], 1) *
		       (sx->revenue_minor ? sx->revenue_minor : 1);
	if (lhs != rhs)
		return lhs > rhs ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int compute(struct report *rep, const struct report_request *req,
		   const struct pr_engine *e)
{
	struct pr_error err = { 0 };
	rep->engine = e;
	pr_engine_state(e, &rep->state);
	rep->opt = pr_engine_options(e);
	if (pr_ranking_build(e, req->window, -1, &rep->company, &err) < 0)
		goto fail;
	pr_ranking_summarize(rep->company, &rep->summary);
	if (req->by_store) {
		if (pr_ranking_build_stores(e, req->window, &rep->stores, &rep->store_count,
					    &err) < 0)
			goto fail;
		rep->store_summaries = calloc(rep->store_count + 1, sizeof *rep->store_summaries);
		rep->store_order = calloc(rep->store_count + 1, sizeof *rep->store_order);
		if (!rep->store_summaries || !rep->store_order) {
			pr_error_set(&err, -ENOMEM, "out of memory");
			goto fail;
		}
		for (uint32_t s = 0; s < rep->store_count; s++) {
			pr_ranking_summarize(rep->stores[s], &rep->store_summaries[s]);
			rep->store_order[s] = s;
		}
		qsort_r(rep->store_order, rep->store_count, sizeof *rep->store_order,
			compare_stores, rep);
	}
	if (req->want_lapsed &&
	    pr_engine_lapsed(e, req->lapsed, &rep->lapsed, &rep->lapsed_count,
			     &rep->lapsed_total) < 0) {
		pr_error_set(&err, -ENOMEM, "out of memory listing lapsed customers");
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "pareto report: %s\n", err.message);
	return 1;
}

static void free_report(struct report *rep)
{
	pr_ranking_destroy(rep->company);
	for (uint32_t s = 0; rep->stores && s < rep->store_count; s++)
		pr_ranking_destroy(rep->stores[s]);
	free(rep->stores);
	free(rep->store_summaries);
	free(rep->store_order);
	free(rep->lapsed);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_tier(struct json *j, const char *key, const struct pr_tier_figures *t)
{
	json_object(j, key);
	json_uint(j, "customers", t->customers);
	json_int(j, "revenue_minor", t->revenue_minor);
	json_double(j, "share", t->share);
	json_end(j, '}');
}

static void json_key_clients(struct json *j, const struct pr_ranking *r,
			     const struct pr_summary *s)
{
	json_array(j, "key_clients");
	for (uint64_t k = 1; k <= s->key_clients; k++) {
		struct pr_ranked c;
		pr_ranking_at(r, k, &c);
		json_object(j, NULL);
		json_string(j, "customer", c.customer, c.customer_len);
		json_int(j, "revenue_minor", c.revenue_minor);
		json_double(j, "share", c.share);
		json_end(j, '}');
	}
	json_end(j, ']');
}

static void json_ms(struct json *j, const char *key, int64_t ms)
{
	char iso[32];
	pr_time_format(ms, iso);
	json_cstring(j, key, iso);
}

static void render_json(const struct report *rep, const struct report_request *req, FILE *out)
{
	const struct pr_summary *s = &rep->summary;
	struct json j;
	json_init(&j, out);
	json_object(&j, NULL);
	json_uint(&j, "records", rep->state.records);
	json_uint(&j, "rejected", rep->feed->stats.rejected);
	if (rep->state.has_watermark) {
		json_ms(&j, "watermark", rep->state.watermark_ms);
		json_int(&j, "watermark_ms", rep->state.watermark_ms);
	} else {
		json_null(&j, "watermark");
		json_null(&j, "watermark_ms");
	}
	json_cstring(&j, "window", pr_window_name(req->window));
	json_uint(&j, "scale", rep->feed->opt.scale);
	json_uint(&j, "customers", s->customers);
	json_int(&j, "revenue_minor", s->revenue_minor);
	json_object(&j, "top_tier");
	json_double(&j, "fraction", pr_fraction_value(rep->opt->top));
	json_uint(&j, "customers", s->top.customers);
	json_int(&j, "revenue_minor", s->top.revenue_minor);
	json_double(&j, "share", s->top.share);
	json_end(&j, '}');
	json_double(&j, "pareto_point", s->pareto_point);
	json_object(&j, "tiers");
	json_tier(&j, "A", &s->tiers[0]);
	json_tier(&j, "B", &s->tiers[1]);
	json_tier(&j, "C", &s->tiers[2]);
	json_end(&j, '}');
	json_double(&j, "cr1", s->cr1);
	json_double(&j, "cr5", s->cr5);
	json_double(&j, "cr10", s->cr10);
	json_double(&j, "hhi", s->hhi);
	json_double(&j, "gini", s->gini);
	json_cstring(&j, "risk", pr_risk_name(s->risk));
	json_key_clients(&j, rep->company, s);

	json_array(&j, "top");
	for (uint64_t k = 1; k <= req->top && k <= s->customers; k++) {
		struct pr_ranked c;
		pr_ranking_at(rep->company, k, &c);
		json_object(&j, NULL);
		json_uint(&j, "rank", c.rank);
		json_uint(&j, "competition_rank", c.competition_rank);
		json_string(&j, "customer", c.customer, c.customer_len);
		json_int(&j, "revenue_minor", c.revenue_minor);
		json_double(&j, "share", c.share);
		json_double(&j, "cumulative_share", c.cumulative_share);
		json_end(&j, '}');
	}
	json_end(&j, ']');

	if (req->by_store) {
		json_array(&j, "stores");
		for (uint32_t i = 0; i < rep->store_count; i++) {
			uint32_t st = rep->store_order[i], len;
			const struct pr_summary *ss = &rep->store_summaries[st];
			json_object(&j, NULL);
			const char *store = pr_engine_store_id(rep->engine, st, &len);
			json_string(&j, "store", store, len);
			json_uint(&j, "customers", ss->customers);
			json_int(&j, "revenue_minor", ss->revenue_minor);
			json_double(&j, "cr1", ss->cr1);
			json_double(&j, "hhi", ss->hhi);
			json_double(&j, "gini", ss->gini);
			json_cstring(&j, "risk", pr_risk_name(ss->risk));
			json_key_clients(&j, rep->stores[st], ss);
			json_end(&j, '}');
		}
		json_end(&j, ']');
	}

	if (req->customer_count) {
		json_array(&j, "customer_detail");
		for (size_t i = 0; i < req->customer_count; i++) {
			struct pr_ranked c;
			const char *id = req->customers[i];
			bool ranked = pr_ranking_find(rep->company, id, strlen(id), &c) == 0;
			json_object(&j, NULL);
			json_cstring(&j, "customer", id);
			if (ranked) {
				json_uint(&j, "rank", c.rank);
				json_uint(&j, "competition_rank", c.competition_rank);
				json_double(&j, "percentile", c.percentile);
				json_string(&j, "tier", &c.tier, 1);
			} else {
				json_null(&j, "rank");
				json_null(&j, "competition_rank");
				json_null(&j, "percentile");
				json_null(&j, "tier");
			}
			json_int(&j, "revenue_minor", c.revenue_minor);
			json_double(&j, "share", ranked ? c.share : 0.0);
			json_end(&j, '}');
		}
		json_end(&j, ']');
	}

	if (req->want_lapsed) {
		json_array(&j, "lapsed");
		for (size_t i = 0; i < rep->lapsed_count; i++) {
			const struct pr_lapsed *l = &rep->lapsed[i];
			json_object(&j, NULL);
			json_string(&j, "customer", l->customer, l->customer_len);
			json_int(&j, "revenue_minor", l->revenue_minor);
			json_uint(&j, "purchases", l->purchases);
			json_uint(&j, "purchase_days", l->purchase_days);
			json_ms(&j, "last", l->last_ms);
			json_double(&j, "mean_gap_days", l->mean_gap_days);
			json_end(&j, '}');
		}
		json_end(&j, ']');
		json_uint(&j, "lapsed_total", rep->lapsed_total);
	}
	json_end(&j, '}');
}

/* ---- text ---------------------------------------------------------------- */

static const char *percent(char *buf, size_t size, double share)
{
	snprintf(buf, size, "%.2f%%", share * 100.0);
	return buf;
}

/* An id for a table cell: printable bytes as they are, others as '?'. */
static const char *printable(char *buf, size_t size, const char *id, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (id[i] >= 0x20 && id[i] < 0x7f) ? id[i] : '?';
	buf[n] = 0;
	return buf;
}

static void text_key_clients(FILE *out, const struct pr_ranking *r,
			     const struct pr_summary *s, unsigned scale, const char *indent)
{
	char money[64], pct[32], id[80];
	for (uint64_t k = 1; k <= s->key_clients; k++) {
		struct pr_ranked c;
		pr_ranking_at(r, k, &c);
		fprintf(out, "%s%-20s %18s %9s\n", indent,
			printable(id, sizeof id, c.customer, c.customer_len),
			cli_money(money, sizeof money, c.revenue_minor, scale, true),
			percent(pct, sizeof pct, c.share));
	}
}

static void render_text(const struct report *rep, const struct report_request *req, FILE *out)
{
	const struct pr_summary *s = &rep->summary;
	unsigned scale = rep->feed->opt.scale;
	char money[64], pct[32], id[80], when[32] = "none";
	if (rep->state.has_watermark)
		pr_time_format(rep->state.watermark_ms, when);

	fprintf(out, "Pareto report: window %s, watermark %s\n", pr_window_name(req->window), when);
	fprintf(out, "  records %llu, rejected %llu\n\n",
		(unsigned long long)rep->state.records,
		(unsigned long long)rep->feed->stats.rejected);
	fprintf(out, "Customers with revenue   %llu\n", (unsigned long long)s->customers);
	fprintf(out, "Revenue                  %s\n",
		cli_money(money, sizeof money, s->revenue_minor, scale, true));
	char label[48];
	snprintf(label, sizeof label, "Top %s tier",
		 percent(pct, sizeof pct, pr_fraction_value(rep->opt->top)));
	fprintf(out, "%-25s%llu customers, %s, %s of revenue\n", label,
		(unsigned long long)s->top.customers,
		cli_money(money, sizeof money, s->top.revenue_minor, scale, true),
		percent(id, sizeof id, s->top.share));
	fprintf(out, "%-25s%s of customers bring %s of revenue (%llu)\n", "Pareto point",
		percent(pct, sizeof pct, s->pareto_point),
		percent(id, sizeof id, pr_fraction_value(rep->opt->pareto_target)),
		(unsigned long long)s->pareto_customers);
	fprintf(out, "\nABC tiers   customers            revenue     share\n");
	for (int t = 0; t < 3; t++)
		fprintf(out, "  %c      %13llu %18s %9s\n", "ABC"[t],
			(unsigned long long)s->tiers[t].customers,
			cli_money(money, sizeof money, s->tiers[t].revenue_minor, scale, true),
			percent(pct, sizeof pct, s->tiers[t].share));

	fprintf(out, "\nConcentration\n");
	fprintf(out, "  CR1 %.2f%%   CR5 %.2f%%   CR10 %.2f%%\n", s->cr1 * 100, s->cr5 * 100,
		s->cr10 * 100);
	fprintf(out, "  HHI %.2f   Gini %.4f   risk %s\n", s->hhi, s->gini, pr_risk_name(s->risk));
	fprintf(out, "  key clients (share >= %s): %llu\n",
		percent(pct, sizeof pct, pr_fraction_value(rep->opt->key_share)),
		(unsigned long long)s->key_clients);
	text_key_clients(out, rep->company, s, scale, "    ");

	if (req->top && s->customers) {
		fprintf(out, "\nTop customers\n  %6s  %-20s %18s %9s %11s\n", "rank", "customer",
			"revenue", "share", "cumulative");
		for (uint64_t k = 1; k <= req->top && k <= s->customers; k++) {
			struct pr_ranked c;
			char cum[32];
			pr_ranking_at(rep->company, k, &c);
			fprintf(out, "  %6llu  %-20s %18s %9s %11s\n", (unsigned long long)c.rank,
				printable(id, sizeof id, c.customer, c.customer_len),
				cli_money(money, sizeof money, c.revenue_minor, scale, true),
				percent(pct, sizeof pct, c.share),
				percent(cum, sizeof cum, c.cumulative_share));
		}
	}

	if (req->by_store) {
		fprintf(out, "\nStores, riskiest first\n  %-20s %10s %18s %8s %9s %7s  %s\n",
			"store", "customers", "revenue", "CR1", "HHI", "Gini", "risk");
		for (uint32_t i = 0; i < rep->store_count; i++) {
			uint32_t st = rep->store_order[i], len;
			const struct pr_summary *ss = &rep->store_summaries[st];
			const char *sid = pr_engine_store_id(rep->engine, st, &len);
			fprintf(out, "  %-20s %10llu %18s %8s %9.2f %7.4f  %s\n",
				len ? printable(id, sizeof id, sid, len) : "(no store)",
				(unsigned long long)ss->customers,
				cli_money(money, sizeof money, ss->revenue_minor, scale, true),
				percent(pct, sizeof pct, ss->cr1), ss->hhi, ss->gini,
				pr_risk_name(ss->risk));
			text_key_clients(out, rep->stores[st], ss, scale, "      key client ");
		}
	}

	if (req->customer_count) {
		fprintf(out, "\nCustomers\n  %-20s %8s %10s %4s %18s %9s\n", "customer", "rank",
			"percentile", "tier", "revenue", "share");
		for (size_t i = 0; i < req->customer_count; i++) {
			struct pr_ranked c;
			const char *cid = req->customers[i];
			char rank[24] = "-", pctl[32] = "-";
			char tier[2] = "-";
			if (pr_ranking_find(rep->company, cid, strlen(cid), &c) == 0) {
				snprintf(rank, sizeof rank, "%llu", (unsigned long long)c.rank);
				snprintf(pctl, sizeof pctl, "%.2f%%", c.percentile * 100);
				tier[0] = c.tier;
			} else {
				c.share = 0;
			}
			fprintf(out, "  %-20s %8s %10s %4s %18s %9s\n",
				printable(id, sizeof id, cid, strlen(cid)), rank, pctl, tier,
				cli_money(money, sizeof money, c.revenue_minor, scale, true),
				percent(pct, sizeof pct, c.share));
		}
	}

	if (req->want_lapsed) {
		fprintf(out, "\nLapsed regulars (%llu in all)\n  %-20s %18s %9s %5s %-10s %9s\n",
			(unsigned long long)rep->lapsed_total, "customer", "revenue",
			"purchases", "days", "last", "mean gap");
		for (size_t i = 0; i < rep->lapsed_count; i++) {
			const struct pr_lapsed *l = &rep->lapsed[i];
			char last[32];
			pr_time_format(l->last_ms, last);
			last[10] = 0;
			fprintf(out, "  %-20s %18s %9llu %5u %-10s %8.1fd\n",
				printable(id, sizeof id, l->customer, l->customer_len),
				cli_money(money, sizeof money, l->revenue_minor, scale, true),
				(unsigned long long)l->purchases, l->purchase_days, last,
				l->mean_gap_days);
		}
	}
}

int cli_report(int argc, char **argv)
{
	struct report_request req = { .window = PR_WINDOW_ALL, .top = 10 };
	struct cli_feed feed;
	struct pr_engine_options opt;
	cli_feed_init(&feed);
	pr_engine_options_init(&opt);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	opt.threads = cores < 1 ? 1 : cores > PR_LANES_MAX ? PR_LANES_MAX : (unsigned)cores;
	int rc = parse_args(argc, argv, &req, &feed, &opt);
	if (rc)
		return rc < 0 ? 0 : rc;
	/* One report, known in advance: keep only what it reads. */
	opt.keep_periods = req.window != PR_WINDOW_ALL;
	opt.keep_stores = req.by_store;
	opt.keep_days = req.want_lapsed;
	opt.keep_changes = false; /* ranked once */

	struct pr_engine *engine;
	struct pr_error err = { 0 };
	if (pr_engine_create(&engine, &opt, &err) < 0) {
		fprintf(stderr, "pareto report: %s\n", err.message);
		return 1;
	}
	rc = cli_feed_ingest(&feed, engine, argv + optind, argc - optind);
	cli_feed_summary(&feed);
	struct report rep = { .feed = &feed };
	if (rc == 0)
		rc = compute(&rep, &req, engine);
	if (rc == 0) {
		if (req.json)
			render_json(&rep, &req, stdout);
		else
			render_text(&rep, &req, stdout);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "pareto report: writing the report: %s\n", strerror(errno));
			rc = 1;
		}
	}
	free_report(&rep);
	cli_feed_close(&feed);
	pr_engine_destroy(engine);
	return rc;
}
