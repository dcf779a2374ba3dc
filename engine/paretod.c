/*
 * paretod.c - the daemon: ingests feeds continuously and answers queries in
 * the Redis protocol on a Unix socket (see server.h and commands.h).
 *
 * Options come from the command line and from an optional config file
 * (--config FILE, lines "key = value" with the long option names as keys,
 * '#' comments); the command line wins: a scalar given on both takes the
 * command line's value, and any --feed on the command line replaces the
 * file's feeds. Exit status: 0 after a clean stop, 2 bad usage or config,
 * 1 when the server cannot start (socket held by a live server, io_uring
 * unavailable, unreadable feed).
 *
 * SIGHUP (server.c calls reload below) reopens --log-file and reads the
 * config file again: the options that can change while running take their
 * new values, the others are logged as waiting for the next start, and a
 * flag still wins over the file. A file that does not parse changes
 * nothing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pareto/options.h"
#include "server.h"

#define EXIT_USAGE 2

static const char usage[] =
	"Usage: paretod --socket PATH [--feed SOURCE]... [options]\n"
	"\n"
	"Ingests purchase feeds and answers Pareto queries while they stream in, over\n"
	"a Unix socket in the Redis protocol (redis-cli -s PATH, any Redis client):\n"
	"PARETO, RANK, TOP, CUSTOMER, RISK, KEYCLIENTS, STORES, LAPSED, SCORE, INGEST,\n"
	"SUBSCRIBE alerts, SAVE, INFO, HELP.\n"
	"\n"
	"Server options:\n"
	"  --socket PATH            Unix socket to listen on (default\n"
	"                           $RUNTIME_DIRECTORY/paretod.sock under systemd)\n"
	"  --socket-mode MODE       octal file mode of the socket (default 0660)\n"
	"  --feed SOURCE            a CSV or binary feed; repeatable. SOURCE is a file\n"
	"                           read to its end, - (standard input),\n"
	"                           follow:PATH (a growing file, followed like tail -F:\n"
	"                           appended lines, rotation by rename, truncation),\n"
	"                           or unix:PATH or tcp:HOST:PORT (a socket producers\n"
	"                           connect to, each connection CSV with a header line\n"
	"                           or binary records; HOST may be empty for all)\n"
	"  --metrics-socket PATH    Unix socket serving the Prometheus metrics over\n"
	"                           HTTP (GET /metrics), e.g. for\n"
	"                           curl --unix-socket PATH http://localhost/metrics\n"
	"  --checkpoint PATH        keep the state and each file feed's position in\n"
	"                           PATH: read at start (files resume where it\n"
	"                           stopped), written on SAVE, every interval and at\n"
	"                           stop (SIGTERM, SIGINT, SHUTDOWN)\n"
	"  --checkpoint-interval S  seconds between checkpoints while anything\n"
	"                           changes (default 60; 0: only SAVE and at stop)\n"
	"  --config FILE            key = value lines with these option names;\n"
	"                           command-line options win; reread on SIGHUP\n"
	"                           (limits, intervals, tier benefits, error\n"
	"                           reporting; the rest at the next start)\n"
	"  --log-file PATH          log there instead of stderr; reopened on SIGHUP\n"
	"                           (after a rotation)\n"
	"  --max-request-bytes N    largest request (default 1M)\n"
	"  --max-output-bytes N     unread replies held per client before it is\n"
	"                           disconnected (default 64M)\n"
	"  --max-clients N          connections at once (default 10000)\n"
	"  --rank-interval-ms N     while ingesting, rankings are published at most\n"
	"                           every N ms; 'auto' (the default): every 1 to 10\n"
	"                           ms, less often as each costs the ranker more\n"
	"  --ingest-batch-bytes N   feed bytes decoded between serving clients\n"
	"                           (default 64K)\n"
	"  --busy-poll-us N         after answering, while no feed is ingesting,\n"
	"                           poll N microseconds for the next request before\n"
	"                           sleeping: one request at a time is answered\n"
	"                           sooner, for a core's time meanwhile (default 50;\n"
	"                           0: never)\n"
	"  --threads N              threads applying records, each owning a share of\n"
	"                           the customers, while the server thread decodes\n"
	"                           (default: the cores online; 1: the server thread\n"
	"                           applies them itself)\n"
	"  --alert-window W         window the alerts watch (default all)\n"
	"  --tier-benefits SPEC     loyalty benefit per tier as discount%:cashback%\n"
	"                           (default A=20:0,B=10:0,C=5:0)\n"
	"  --show-errors N          bad lines described on stderr per feed (default 10)\n"
	"  --quiet                  no per-line reject details\n"
	"  -h, --help               this help\n"
	"  --version                the version\n"
	"\n"
	"Feed options (as pareto report):\n"
	"  --delimiter D            comma (default), semicolon, tab, pipe, whitespace or\n"
	"                           one character\n"
	"  --map FIELD=COLUMN       header column of ts, customer, store, amount,\n"
	"                           quantity or price\n"
	"  --ts-format FMT          strftime-style time pattern (default ISO-8601 or epoch)\n"
	"  --scale N                decimal digits of the minor unit (default 2)\n"
	"\n"
	"Analysis options (as pareto report):\n"
	"  --top-fraction F, --tiers A,B, --pareto-target F, --key-share F,\n"
	"  --lapsed-min-days N, --lapsed-gap-factor F, --lapsed-min-idle-days N,\n"
	"  --customers N (expected customers, to size tables)\n"
	"\n"
	"Sizes take K, M or G suffixes (powers of 1024).\n";

enum {
	OPT_SOCKET = PR_OPT_LAST, /* after the shared options of pareto/options.h */
	OPT_SOCKET_MODE,
	OPT_FEED,
	OPT_CONFIG,
	OPT_METRICS_SOCKET,
	OPT_CHECKPOINT,
	OPT_CHECKPOINT_INTERVAL,
	OPT_MAX_REQUEST,
	OPT_MAX_OUTPUT,
	OPT_MAX_CLIENTS,
	OPT_RANK_INTERVAL,
	OPT_INGEST_BATCH,
	OPT_BUSY_POLL,
	OPT_THREADS,
	OPT_ALERT_WINDOW,
	OPT_TIER_BENEFITS,
	OPT_SHOW_ERRORS,
	OPT_QUIET,
	OPT_LOG_FILE,
	OPT_VERSION,
	OPT_HELP,
	OPT_END
};

static const struct option options[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "feed", required_argument, NULL, OPT_FEED },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "metrics-socket", required_argument, NULL, OPT_METRICS_SOCKET },
	{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
	{ "checkpoint-interval", required_argument, NULL, OPT_CHECKPOINT_INTERVAL },
	{ "max-request-bytes", required_argument, NULL, OPT_MAX_REQUEST },
	{ "max-output-bytes", required_argument, NULL, OPT_MAX_OUTPUT },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "rank-interval-ms", required_argument, NULL, OPT_RANK_INTERVAL },
	{ "ingest-batch-bytes", required_argument, NULL, OPT_INGEST_BATCH },
	{ "busy-poll-us", required_argument, NULL, OPT_BUSY_POLL },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "alert-window", required_argument, NULL, OPT_ALERT_WINDOW },
	{ "tier-benefits", required_argument, NULL, OPT_TIER_BENEFITS },
	{ "show-errors", required_argument, NULL, OPT_SHOW_ERRORS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	PR_FEED_LONG_OPTIONS,
	PR_ENGINE_LONG_OPTIONS,
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ 0 },
};

/* A "key = value" line of the config file (value NULL for a bare key). */
struct config_entry {
	int id;
	unsigned line;
	const char *key, *value;
	size_t key_at, value_at; /* in the text, while it grows */
};

/* The entries of one reading of the config file, and the strings they own. */
struct config {
	struct config_entry *entries;
	size_t count;
	char *text; /* the keys and values, back to back */
};

struct settings {
	struct pr_server_options opt;
	bool cli_feeds; /* a --feed came from the command line */
	bool cli[OPT_END]; /* options given on the command line */
	const char *where; /* "" or "config.conf:12: " for messages */
	struct config first; /* the file as read at start: options point into it */
	struct config last;  /* the file as last reread, if reread */
	bool reread;
};

/* While running (a reload), messages go to the log; before, to stderr. */
static bool running;

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (running)
		pr_log("%s", text);
	else
		fprintf(stderr, "paretod: %s\n", text);
}

static int bad(const struct settings *st, const char *name, const char *expected,
	       const char *value)
{
	complain("%s--%s: expected %s, not '%s'", st->where, name, expected, value);
	return EXIT_USAGE;
}

/* A count or size: digits with an optional K, M or G (powers of 1024). */
static bool parse_size(const char *text, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*text))
		return false;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno)
		return false;
	unsigned shift = 0;
	if (*end) {
		char u = (char)toupper((unsigned char)*end);
		shift = u == 'K' ? 10 : u == 'M' ? 20 : u == 'G' ? 30 : 99;
		if (shift == 99)
			return false;
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return false;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return false;
	v <<= shift;
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* "12.5" -> 1250 hundredths; 0..100 percent. */
static bool parse_percent(const char *text, size_t len, uint32_t *centi)
{
	uint64_t whole = 0, frac = 0;
	size_t i = 0, digits = 0;
	for (; i < len && isdigit((unsigned char)text[i]); i++, digits++)
		whole = whole * 10 + (uint64_t)(text[i] - '0');
	if (!digits || whole > 100)
		return false;
	if (i < len && text[i] == '.') {
		size_t f = 0;
		for (i++; i < len && isdigit((unsigned char)text[i]); i++, f++)
			if (f < 2)
				frac = frac * 10 + (uint64_t)(text[i] - '0');
		if (f == 0)
			return false;
		if (f == 1)
			frac *= 10;
	}
	if (i != len || whole * 100 + frac > 10000)
		return false;
	*centi = (uint32_t)(whole * 100 + frac);
	return true;
}

/* "A=20:5,B=10:3,C=5:1"; tiers not named keep their values; ":cashback" optional. */
static bool parse_benefits(const char *text, struct pr_tier_benefit out[3])
{
	const char *p = text;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len < 3 || (p[0] != 'A' && p[0] != 'B' && p[0] != 'C' && p[0] != 'a' &&
				p[0] != 'b' && p[0] != 'c') || p[1] != '=')
			return false;
		struct pr_tier_benefit *b = &out[toupper((unsigned char)p[0]) - 'A'];
		const char *colon = memchr(p + 2, ':', len - 2);
		size_t dlen = colon ? (size_t)(colon - (p + 2)) : len - 2;
		if (!parse_percent(p + 2, dlen, &b->discount_centi))
			return false;
		b->cashback_centi = 0;
		if (colon && !parse_percent(colon + 1, (size_t)(p + len - colon - 1), &b->cashback_centi))
			return false;
		p += len;
		if (*p == ',')
			p++;
	}
	return true;
}

static int apply(struct settings *st, int id, const char *name, const char *value, bool cli)
{
	struct pr_server_options *o = &st->opt;
	uint64_t v;
	switch (id) {
	case OPT_SOCKET:
		o->socket_path = value;
		return 0;
	case OPT_SOCKET_MODE: {
		char *end;
		unsigned long mode = strtoul(value, &end, 8);
		if (!*value || *end || mode > 0777)
			return bad(st, name, "an octal mode like 0660", value);
		o->socket_mode = (mode_t)mode;
		return 0;
	}
	case OPT_FEED:
		if (cli && !st->cli_feeds) {
			st->cli_feeds = true;
			o->feed_count = 0; /* the command line's feeds replace the file's */
		}
		if (o->feed_count == PR_SERVER_MAX_FEEDS) {
			fprintf(stderr, "paretod: %sat most %d feeds\n", st->where, PR_SERVER_MAX_FEEDS);
			return EXIT_USAGE;
		}
		o->feeds[o->feed_count++] = value;
		return 0;
	case OPT_CONFIG:
		return 0; /* read before everything else */
	case OPT_METRICS_SOCKET:
		o->metrics_socket_path = value;
		return 0;
	case OPT_CHECKPOINT:
		if (!*value)
			return bad(st, name, "a file path", value);
		o->checkpoint_path = value;
		return 0;
	case OPT_CHECKPOINT_INTERVAL:
		if (!parse_size(value, 31u * 24 * 3600, &v))
			return bad(st, name, "seconds (0: only SAVE and at stop)", value);
		o->checkpoint_interval_s = (unsigned)v;
		return 0;
	case OPT_MAX_REQUEST:
		if (!parse_size(value, 1u << 30, &v) || v < 1024)
			return bad(st, name, "a size from 1K to 1G", value);
		o->max_request_bytes = v;
		return 0;
	case OPT_MAX_OUTPUT:
		if (!parse_size(value, 1ull << 40, &v) || v < 1024)
			return bad(st, name, "a size of at least 1K", value);
		o->max_output_bytes = v;
		return 0;
	case OPT_MAX_CLIENTS:
		if (!parse_size(value, 1000000, &v) || v < 1)
			return bad(st, name, "a count from 1 to 1000000", value);
		o->max_clients = (unsigned)v;
		return 0;
	case OPT_RANK_INTERVAL:
		if (strcmp(value, "auto") == 0) {
			o->rank_interval_auto = true;
			o->rank_interval_ms = PR_RANK_INTERVAL_AUTO_MOST_MS;
			return 0;
		}
		if (!parse_size(value, 3600000, &v))
			return bad(st, name, "milliseconds or 'auto'", value);
		o->rank_interval_auto = false;
		o->rank_interval_ms = (unsigned)v;
		return 0;
	case OPT_INGEST_BATCH:
		if (!parse_size(value, 1u << 30, &v) || v < 1)
			return bad(st, name, "a size of at least 1 byte", value);
		o->ingest_batch_bytes = v;
		return 0;
	case OPT_BUSY_POLL:
		if (!parse_size(value, PR_BUSY_POLL_MAX_US, &v))
			return bad(st, name, "microseconds from 0 to 1000000", value);
		o->busy_poll_us = (unsigned)v;
		return 0;
	case OPT_THREADS:
		if (!parse_size(value, PR_SERVER_APPLY_THREADS_MAX, &v) || v < 1)
			return bad(st, name, "a count from 1 to 64", value);
		o->engine.apply_threads = (unsigned)v;
		return 0;
	case OPT_ALERT_WINDOW:
		if (pr_window_parse(value, &o->alert_window) < 0)
			return bad(st, name, "all, month, quarter, year, prev-month, prev-quarter "
				   "or prev-year", value);
		return 0;
	case OPT_TIER_BENEFITS:
		if (!parse_benefits(value, o->benefits))
			return bad(st, name, "TIER=DISCOUNT[:CASHBACK],... like A=20:5,B=10:3,C=5:1",
				   value);
		return 0;
	case OPT_SHOW_ERRORS:
		if (!parse_size(value, 1000000, &v))
			return bad(st, name, "a count", value);
		o->show_errors = (unsigned)v;
		return 0;
	case OPT_QUIET:
		if (value && (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
			      strcmp(value, "0") == 0))
			o->quiet = false;
		else
			o->quiet = true;
		return 0;
	case OPT_LOG_FILE:
		if (!*value)
			return bad(st, name, "a file path", value);
		o->log_path = value;
		return 0;
	default:
		if (id >= PR_OPT_DELIMITER && id < PR_OPT_LAST) {
			struct pr_error err = { 0 };
			if (pr_option_apply(id, value, &o->feed, &o->engine, &err) == 0)
				return 0;
			complain("%s%s", st->where, err.message);
			return EXIT_USAGE;
		}
	}
	complain("%sunknown option '%s'", st->where, name);
	return EXIT_USAGE;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

static void config_free(struct config *c)
{
	free(c->entries);
	free(c->text);
	*c = (struct config){ 0 };
}

/* Reads the config file's entries into *out, checking each key and that
 * options with a value have one. EXIT_USAGE, with the line said, if not. */
static int read_config(const char *path, struct config *out)
{
	*out = (struct config){ 0 };
	FILE *f = fopen(path, "r");
	if (!f) {
		complain("--config %s: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	char line[4096];
	size_t capacity = 0, text_used = 0, text_capacity = 0;
	int rc = 0;
	for (unsigned number = 1; rc == 0 && fgets(line, sizeof line, f); number++) {
		char *text = trim(line);
		if (!*text || *text == '#')
			continue;
		char *eq = strchr(text, '=');
		char *k = text, *value = NULL;
		if (eq) {
			*eq = 0;
			value = trim(eq + 1);
		}
		k = trim(k);
		const struct option *opt = NULL;
		for (const struct option *o = options; o->name; o++)
			if (strcmp(o->name, k) == 0)
				opt = o;
		rc = EXIT_USAGE;
		if (!opt || opt->val == OPT_CONFIG || opt->val == OPT_HELP || opt->val == OPT_VERSION) {
			complain("%s:%u: unknown key '%s'", path, number, k);
			break;
		}
		if (opt->has_arg == required_argument && (!value || !*value)) {
			complain("%s:%u: '%s' needs a value (key = value)", path, number, k);
			break;
		}
		/* Entries and text grow in copies; pointers into the text are
		 * made once it stops moving. */
		size_t need = strlen(k) + 1 + (value ? strlen(value) + 1 : 0);
		if (out->count == capacity) {
			capacity = capacity ? 2 * capacity : 16;
			void *p = realloc(out->entries, capacity * sizeof *out->entries);
			if (!p)
				goto nomem;
			out->entries = p;
		}
		if (text_used + need > text_capacity) {
			text_capacity = 2 * (text_capacity + need);
			char *p = realloc(out->text, text_capacity);
			if (!p)
				goto nomem;
			out->text = p;
		}
		struct config_entry *e = &out->entries[out->count++];
		*e = (struct config_entry){ .id = opt->val, .line = number, .key_at = text_used };
		strcpy(out->text + text_used, k);
		text_used += strlen(k) + 1;
		if (value) {
			e->value = value; /* for "has a value"; pointed into the text below */
			e->value_at = text_used;
			strcpy(out->text + text_used, value);
			text_used += strlen(value) + 1;
		}
		rc = 0;
	}
	fclose(f);
	if (rc) {
		config_free(out);
		return rc;
	}
	for (size_t i = 0; i < out->count; i++) {
		struct config_entry *e = &out->entries[i];
		e->key = out->text + e->key_at;
		if (e->value)
			e->value = out->text + e->value_at;
	}
	return 0;
nomem:
	fclose(f);
	config_free(out);
	complain("--config %s: out of memory", path);
	return EXIT_USAGE;
}

/* Applies every entry of the file in order (later lines win). */
static int apply_config(struct settings *st, const char *path, const struct config *c)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < c->count; i++) {
		char where[600];
		snprintf(where, sizeof where, "%s:%u: ", path, c->entries[i].line);
		st->where = where;
		rc = apply(st, c->entries[i].id, c->entries[i].key, c->entries[i].value, false);
	}
	st->where = "";
	return rc;
}

/* ---- SIGHUP: the config file again --------------------------------------- */

/* Whether the file gives option id the same values in a and b (in order:
 * feed is repeatable). */
static bool same_values(const struct config *a, const struct config *b, int id)
{
	size_t i = 0, j = 0;
	for (;;) {
		while (i < a->count && a->entries[i].id != id)
			i++;
		while (j < b->count && b->entries[j].id != id)
			j++;
		if (i == a->count || j == b->count)
			return i == a->count && j == b->count;
		const char *x = a->entries[i].value, *y = b->entries[j].value;
		if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
			return false;
		i++;
		j++;
	}
}

/* The value the file gives option id last, and whether it gives one. */
static const struct config_entry *last_entry(const struct config *c, int id)
{
	for (size_t i = c->count; i-- > 0;)
		if (c->entries[i].id == id)
			return &c->entries[i];
	return NULL;
}

/*
 * Copies option id from src to dst if a running server can take it (every
 * use reads it afresh; server.c passes rank-interval-ms on to the ranker
 * and max-output-bytes to the connections open); false, copying nothing,
 * for the options that wait for the next start. The one list of them.
 */
static bool copy_runtime_option(int id, struct pr_server_options *dst,
				const struct pr_server_options *src)
{
	switch (id) {
	case OPT_MAX_OUTPUT: dst->max_output_bytes = src->max_output_bytes; return true;
	case OPT_MAX_CLIENTS: dst->max_clients = src->max_clients; return true;
	case OPT_RANK_INTERVAL:
		dst->rank_interval_ms = src->rank_interval_ms;
		dst->rank_interval_auto = src->rank_interval_auto;
		return true;
	case OPT_INGEST_BATCH: dst->ingest_batch_bytes = src->ingest_batch_bytes; return true;
	case OPT_BUSY_POLL: dst->busy_poll_us = src->busy_poll_us; return true;
	case OPT_CHECKPOINT_INTERVAL:
		dst->checkpoint_interval_s = src->checkpoint_interval_s;
		return true;
	case OPT_TIER_BENEFITS:
		memcpy(dst->benefits, src->benefits, sizeof src->benefits);
		return true;
	case OPT_SHOW_ERRORS: dst->show_errors = src->show_errors; return true;
	case OPT_QUIET: dst->quiet = src->quiet; return true;
	default: return false;
	}
}

/* The server's reload callback (pr_server_options.reload). */
static int reload(void *ctx, struct pr_server_options *o)
{
	struct settings *st = ctx;
	const char *path = st->opt.config_path;
	struct config fresh;
	if (read_config(path, &fresh) != 0) {
		pr_log("SIGHUP: %s not reread: the running configuration stays", path);
		return -1;
	}
	const struct config *was = st->reread ? &st->last : &st->first;
	struct settings scratch = { .opt = *o };
	struct pr_server_options defaults;
	pr_server_options_init(&defaults);
	char where[600], changed[512] = "";
	for (const struct option *opt = options; opt->name; opt++) {
		int id = opt->val;
		if (id == OPT_CONFIG || same_values(was, &fresh, id))
			continue;
		if (st->cli[id]) {
			pr_log("SIGHUP: %s: %s changed; the command line's value stays", path,
			       opt->name);
			continue;
		}
		/* From its default, then the file's value if it still gives
		 * one: what the file leaves out (a key, a tier) is the default. */
		if (!copy_runtime_option(id, &scratch.opt, &defaults)) {
			pr_log("SIGHUP: %s: %s changed; it takes effect at the next start", path,
			       opt->name);
			continue;
		}
		const struct config_entry *e = last_entry(&fresh, id);
		if (e) {
			snprintf(where, sizeof where, "SIGHUP: %s:%u: ", path, e->line);
			scratch.where = where;
			if (apply(&scratch, id, opt->name, e->value, false) != 0) {
				config_free(&fresh);
				pr_log("SIGHUP: %s not applied: the running configuration stays",
				       path);
				return -1;
			}
		}
		size_t used = strlen(changed);
		snprintf(changed + used, sizeof changed - used, "%s%s", used ? ", " : "", opt->name);
	}
	/* The options of the first reading keep pointing into it: only a
	 * later reading is freed. */
	config_free(&st->last);
	st->last = fresh;
	st->reread = true;
	*o = scratch.opt;
	pr_log("SIGHUP: %s reread; %s%s", path, *changed ? "now in effect: " : "",
	       *changed ? changed : "nothing a running server takes changed");
	return 0;
}

static int parse_args(struct settings *st, int argc, char **argv)
{
	/* The config file first, so that the command line overrides it. */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path && st->opt.config_path) {
			complain("--config given twice: one file holds every option");
			return EXIT_USAGE;
		}
		if (path) {
			st->opt.config_path = path;
			int rc = read_config(path, &st->first);
			if (rc == 0)
				rc = apply_config(st, path, &st->first);
			if (rc)
				return rc;
		}
	}
	int id, rc = 0;
	int index;
	while (rc == 0 && (id = getopt_long(argc, argv, "h", options, &index)) != -1) {
		switch (id) {
		case 'h':
		case OPT_HELP:
			fputs(usage, stdout);
			return -1;
		case OPT_VERSION:
			puts("paretod 0.1.0");
			return -1;
		case '?':
			fputs("Try 'paretod --help'.\n", stderr);
			return EXIT_USAGE;
		default: {
			const char *name = "option";
			for (const struct option *o = options; o->name; o++)
				if (o->val == id)
					name = o->name;
			if (id >= 0 && id < OPT_END)
				st->cli[id] = true;
			rc = apply(st, id, name, optarg, true);
		}
		}
	}
	if (rc == 0 && optind < argc) {
		fprintf(stderr, "paretod: unexpected argument '%s' (feeds are given with --feed)\n"
				"Try 'paretod --help'.\n", argv[optind]);
		rc = EXIT_USAGE;
	}
	return rc;
}

/*
 * The ranker thread allocates and frees a ranking's arrays (megabytes at a
 * million customers) every batch. By default glibc maps each one afresh and
 * unmaps it at free, so every batch faults its pages in again (the kernel
 * zeroing pages was 15% of the ranker's samples under full ingest). Kept in
 * the heap instead (up to 32 MiB an allocation, about what a thread's arena
 * takes), with up to 256 MiB of free space not handed back, they are
 * reused: the ranker's CPU a batch fell from 0.8-0.94 to 0.66-0.68 ticks
 * (2M producer records beside 5000 RANKs a second, 3 runs each), which its
 * interval turns into more batches, so fresher rankings, for the same CPU;
 * resident memory +10 MB at 700K customers.
 */
static void keep_freed_memory(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int main(int argc, char **argv)
{
	keep_freed_memory();
	static struct settings st;
	st.where = "";
	pr_server_options_init(&st.opt);
	int rc = parse_args(&st, argc, argv);
	char default_socket[512];
	if (rc == 0 && !st.opt.socket_path) {
		const char *dir = getenv("RUNTIME_DIRECTORY");
		if (dir && *dir) {
			/* systemd may list several directories, colon-separated. */
			snprintf(default_socket, sizeof default_socket, "%.*s/paretod.sock",
				 (int)strcspn(dir, ":"), dir);
			st.opt.socket_path = default_socket;
		} else {
			fputs("paretod: no socket: give --socket PATH\nTry 'paretod --help'.\n", stderr);
			rc = EXIT_USAGE;
		}
	}
	if (rc == 0 && st.opt.log_path) {
		/* stderr becomes the log file; the server reopens it on SIGHUP. */
		int fd = open(st.opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "paretod: --log-file %s: %s\n", st.opt.log_path, strerror(errno));
			rc = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0 && st.opt.config_path) {
		st.opt.reload = reload;
		st.opt.reload_ctx = &st;
	}
	if (rc == 0) {
		struct pr_server *server;
		struct pr_error err = { 0 };
		running = true;
		pr_log("paretod 0.1.0 starting (pid %ld)", (long)getpid());
		if (pr_server_create(&server, &st.opt, &err) < 0) {
			pr_log("cannot start: %s", err.message);
			rc = 1;
		} else {
			if (pr_server_run(server, &err) < 0) {
				pr_log("%s", err.message);
				rc = 1;
			}
			pr_server_destroy(server);
		}
	}
	config_free(&st.first);
	config_free(&st.last);
	return rc < 0 ? 0 : rc;
}
