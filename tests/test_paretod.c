/* test_paretod.c - the daemon end to end: start paretod on a temporary
 * socket, feed it, talk to it through hiredis (RESP2) and a small RESP3
 * reader (support_paretod), and compare its answers with `pareto report
 * --json` on the same feed; pipelining, many clients, slow readers,
 * garbage, half-closed connections, INGEST, alerts, the socket file's life
 * cycle, redis-cli. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support_json.h"
#include "support_paretod.h"
#include "support_run.h"

/* ---- the daemon ----------------------------------------------------------- */

static char *info_value(redisContext *c, const char *section, const char *name, char *buf,
			size_t size)
{
	redisReply *r = cmd(c, "INFO %s", section);
	cr_assert_eq(r->type, REDIS_REPLY_STRING);
	char key[96];
	snprintf(key, sizeof key, "\n%s:", name);
	const char *p = strstr(r->str, key);
	cr_assert_not_null(p, "INFO %s lacks %s:\n%s", section, name, r->str);
	p += strlen(key);
	size_t n = strcspn(p, "\r\n");
	snprintf(buf, size, "%.*s", (int)n, p);
	freeReplyObject(r);
	return buf;
}

/* Waits until every file feed has been read to its end. */
static void wait_feeds(struct daemon *d)
{
	redisContext *c = client(d);
	char v[64];
	for (int i = 0; i < 1000; i++) {
		if (strcmp(info_value(c, "ingest", "feeds_open", v, sizeof v), "0") == 0) {
			redisFree(c);
			return;
		}
		sleep_ms(10);
	}
	cr_assert_fail("feeds did not finish");
}

static void start(struct daemon *d, const char *feed_text, const char *extra, ...)
{
	daemon_dir(d);
	char *argv[40];
	int n = 0;
	if (feed_text) {
		write_bytes(d->feed, "w", feed_text, strlen(feed_text));
		argv[n++] = "--feed";
		argv[n++] = d->feed;
	}
	va_list ap;
	va_start(ap, extra);
	for (const char *a = extra; a && n < 38; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	d->pid = daemon_spawn_argv(d, argv);
	daemon_wait_listening(d);
	wait_feeds(d);
}

/* Stops it with SHUTDOWN; it must exit 0 and remove its socket. */
static void stop(struct daemon *d)
{
	daemon_shutdown(d, client(d));
	struct stat st;
	cr_assert_neq(stat(d->socket, &st), 0, "socket file left behind");
	daemon_remove_dir(d);
}

/* A seed from the clock, logged (a failure can be replayed with it). */
static unsigned seeded(void)
{
	unsigned seed = (unsigned)time(NULL);
	cr_log_info("seed %u", seed);
	srand(seed);
	return seed;
}

/* A random feed (seeded): skewed customers, several stores, refunds, ties. */
static char *random_feed(unsigned seed, int records, int customers)
{
	char **lines = random_lines(seed, records, customers);
	size_t len;
	char *text = csv_of(lines, records, 0, 1, &len);
	free_lines(lines, records);
	return text;
}

static void compare_with_report(struct daemon *d, const char *window, bool resp3)
{
	char *ids[] = { "C0000", "C0001", "C0007", "C0042", "C0100", "C0299", "NOBODY" };
	int nids = sizeof ids / sizeof ids[0];
	struct tj *j = report_json(d->feed, window, "25", "10", ids, nids);
	struct conn *c = conn_open(d);
	if (resp3) {
		conn_command(c, "HELLO 3");
		struct rv *hello = rv_read(c);
		cr_assert_eq(hello->type, RV_MAP);
		rv_free(hello);
	}
	char path[64];
	snprintf(path, sizeof path, "PARETO(%s,resp%d)", window, resp3 ? 3 : 2);
	static const char *const not_summary[] = { "top", "stores", "customer_detail", "lapsed",
						   "lapsed_total", NULL };
	conn_command(c, "PARETO WINDOW %s", window);
	struct rv *r = rv_read(c);
	compare(r, j, path, not_summary);
	rv_free(r);

	conn_command(c, "TOP 25 WINDOW %s", window);
	r = rv_read(c);
	compare(rv_field(r, "top"), tj_key(j, "top"), "TOP", NULL);
	compare(rv_field(r, "records"), tj_key(j, "records"), "TOP.records", NULL);
	compare(rv_field(r, "watermark"), tj_key(j, "watermark"), "TOP.watermark", NULL);
	rv_free(r);

	conn_command(c, "STORES WINDOW %s", window);
	r = rv_read(c);
	compare(rv_field(r, "stores"), tj_key(j, "stores"), "STORES", NULL);
	rv_free(r);

	const struct tj *detail = tj_key(j, "customer_detail");
	for (int i = 0; i < nids; i++) {
		conn_command(c, "CUSTOMER %s WINDOW %s", ids[i], window);
		r = rv_read(c);
		snprintf(path, sizeof path, "CUSTOMER %s", ids[i]);
		compare(r, tj_at(detail, (size_t)i), path, NULL);
		rv_free(r);
		conn_command(c, "RANK %s WINDOW %s", ids[i], window);
		r = rv_read(c);
		snprintf(path, sizeof path, "RANK %s", ids[i]);
		compare(r, tj_at(detail, (size_t)i), path, NULL);
		compare(rv_field(r, "records"), tj_key(j, "records"), path, NULL);
		rv_free(r);
	}
	if (strcmp(window, "all") == 0) {
		conn_command(c, "LAPSED 10");
		r = rv_read(c);
		compare(rv_field(r, "lapsed"), tj_key(j, "lapsed"), "LAPSED", NULL);
		compare(rv_field(r, "lapsed_total"), tj_key(j, "lapsed_total"), "LAPSED", NULL);
		rv_free(r);
	}
	conn_close(c);
	tj_free(j);
}

Test(paretod, answers_equal_the_report)
{
	unsigned seed = (unsigned)time(NULL);
	cr_log_info("seed %u", seed);
	struct daemon d;
	char *feed = random_feed(seed, 5000, 300);
	start(&d, feed, NULL);
	const char *windows[] = { "all", "quarter", "prev-year", "month" };
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		compare_with_report(&d, windows[i], false);
		compare_with_report(&d, windows[i], true);
	}
	free(feed);
	stop(&d);
}

/*
 * Revenues drawn from five values, so that nearly every customer ties with
 * others: TOP lists them by id within a tie and gives tied customers one
 * competition rank, entry for entry as the report does, in RESP2 and RESP3,
 * for the whole list and for one that ends inside a run of ties; RANK of
 * tied customers agrees.
 */
Test(paretod, top_with_ties_equals_the_report)
{
	size_t cap = 1 << 16, len = 0;
	char *feed = malloc(cap);
	len += (size_t)sprintf(feed, "ts,customer_id,store_id,amount\n");
	unsigned seed = (unsigned)time(NULL);
	cr_log_info("seed %u", seed);
	srand(seed);
	for (int i = 0; i < 120; i++) /* one purchase each, then a few more */
		len += (size_t)sprintf(feed + len, "%d,T%03d,S1,%d.00\n", 1700000000 + i,
				       rand() % 120, 10 * (1 + rand() % 5));
	struct daemon d;
	start(&d, feed, NULL);
	char *ids[] = { "T000", "T001", "T002", "T050", "T119" };
	struct tj *j = report_json(d.feed, "all", "200", "10", ids, 5);
	for (int resp3 = 0; resp3 <= 1; resp3++) {
		struct conn *c = conn_open(&d);
		if (resp3) {
			conn_command(c, "HELLO 3");
			rv_free(rv_read(c));
		}
		conn_command(c, "TOP 200");
		struct rv *r = rv_read(c);
		compare(rv_field(r, "top"), tj_key(j, "top"), "TOP 200", NULL);
		/* And by definition, not only as the report (which shares the ranking code). */
		const struct rv *all = rv_field(r, "top");
		cr_assert_gt(all->n, 40);
		for (size_t i = 0; i < all->n; i++) {
			const struct rv *x = all->el[i];
			long long revenue = rv_field(x, "revenue_minor")->integer;
			size_t above = 0;
			while (rv_field(all->el[above], "revenue_minor")->integer > revenue)
				above++;
			cr_assert_eq(rv_field(x, "rank")->integer, (long long)i + 1);
			cr_assert_eq(rv_field(x, "competition_rank")->integer, (long long)above + 1,
				     "seed %u entry %zu", seed, i);
			if (i && rv_field(all->el[i - 1], "revenue_minor")->integer == revenue)
				cr_assert_lt(strcmp(rv_field(all->el[i - 1], "customer")->str,
						    rv_field(x, "customer")->str), 0);
		}
		rv_free(r);
		/* A shorter list: its first entries, the same ranks. */
		conn_command(c, "TOP 37");
		r = rv_read(c);
		const struct rv *top = rv_field(r, "top");
		cr_assert_eq(top->type, RV_ARRAY);
		cr_assert_eq(top->n, 37);
		for (size_t i = 0; i < top->n; i++)
			compare(top->el[i], tj_at(tj_key(j, "top"), i), "TOP 37", NULL);
		rv_free(r);
		for (int i = 0; i < 5; i++) {
			conn_command(c, "RANK %s", ids[i]);
			r = rv_read(c);
			compare(r, tj_at(tj_key(j, "customer_detail"), (size_t)i), "RANK", NULL);
			rv_free(r);
		}
		conn_close(c);
	}
	tj_free(j);
	free(feed);
	stop(&d);
}

static const char small_feed[] =
	"ts,customer_id,store_id,amount\n"
	"2024-01-05,C1,S1,100.00\n"
	"2024-01-06,C2,S1,50.00\n"
	"2024-02-01,C3,S2,25.50\n"
	"2024-02-03,C1,S2,10.00\n"
	"2024-03-01,C4,S1,5.00\n"
	"2024-03-01,C5,S2,5.00\n"
	"2024-03-03,C2,S2,-10.00\n"
	"not a line\n";

/* SCORE id answers this tier and benefit (NULL: not checked). */
static void assert_score(redisContext *c, const char *id, const char *tier, const char *discount,
			 const char *cashback)
{
	redisReply *r = cmd(c, "SCORE %s", id);
	const char *want[][2] = { { "tier", tier }, { "discount_percent", discount },
				  { "cashback_percent", cashback } };
	for (size_t i = 0; i < 3; i++)
		if (want[i][1])
			cr_assert_str_eq(field(r, want[i][0])->str, want[i][1], "SCORE %s: %s", id,
					 want[i][0]);
	freeReplyObject(r);
}

Test(paretod, hand_computed_answers)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "RANK C2");
	/* C1 110.00, C2 40.00, C3 25.50, C4 5.00, C5 5.00 */
	cr_assert_eq(int_field(r, "rank"), 2);
	cr_assert_eq(int_field(r, "revenue_minor"), 4000);
	cr_assert_eq(int_field(r, "records"), 7);
	cr_assert_str_eq(field(r, "tier")->str, "B");
	freeReplyObject(r);
	r = cmd(c, "RANK C5");
	cr_assert_eq(int_field(r, "rank"), 5);
	cr_assert_eq(int_field(r, "competition_rank"), 4);
	freeReplyObject(r);
	r = cmd(c, "RANK nobody");
	cr_assert_eq(field(r, "rank")->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	r = cmd(c, "PARETO");
	cr_assert_eq(int_field(r, "customers"), 5);
	cr_assert_eq(int_field(r, "revenue_minor"), 18550);
	cr_assert_eq(int_field(r, "rejected"), 1);
	cr_assert_str_eq(field(r, "risk")->str, "critical");
	cr_assert_str_eq(field(r, "watermark")->str, "2024-03-03T00:00:00.000Z");
	freeReplyObject(r);
	r = cmd(c, "SCORE C1");
	cr_assert_str_eq(field(r, "tier")->str, "A");
	cr_assert_str_eq(field(r, "discount_percent")->str, "20");
	const redisReply *flags = field(r, "risk_flags");
	cr_assert_eq(flags->elements, 3);
	cr_assert_str_eq(flags->element[0]->str, "key_client");
	cr_assert_str_eq(flags->element[1]->str, "critical_dependency");
	cr_assert_str_eq(flags->element[2]->str, "store_key_client");
	cr_assert_eq(int_field(r, "stores_records"), 7, "the store flags' records");
	cr_assert_eq(int_field(r, "records"), 7);
	freeReplyObject(r);
	r = cmd(c, "SCORE nobody");
	cr_assert_eq(field(r, "stores_records")->type, REDIS_REPLY_NIL, "no store flags looked for");
	freeReplyObject(r);
	assert_score(c, "C4", "C", "5", NULL);
	r = cmd(c, "KEYCLIENTS STORE S2");
	const redisReply *keys = field(r, "key_clients");
	cr_assert_eq(keys->elements, 3); /* C3 25.50, C1 10.00, C2 -10.00 -> out; C5 5.00 */
	freeReplyObject(r);
	r = cmd(c, "RISK STORE S1");
	cr_assert_str_eq(field(r, "risk")->str, "critical");
	freeReplyObject(r);
	r = cmd(c, "STORES 1");
	cr_assert_eq(field(r, "stores")->elements, 1);
	freeReplyObject(r);
	r = cmd(c, "PARETO STORE nowhere");
	cr_assert_eq(r->type, REDIS_REPLY_ERROR);
	cr_assert_str_eq(r->str, "ERR unknown store 'nowhere'");
	freeReplyObject(r);
	redisFree(c);
	stop(&d);
}

Test(paretod, errors_in_redis_wording)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "FOO bar baz");
	cr_assert_eq(r->type, REDIS_REPLY_ERROR);
	cr_assert_str_eq(r->str, "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ");
	freeReplyObject(r);
	r = cmd(c, "RANK");
	cr_assert_str_eq(r->str, "ERR wrong number of arguments for 'rank' command");
	freeReplyObject(r);
	r = cmd(c, "TOP x");
	cr_assert_eq(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	r = cmd(c, "TOP 3 WINDOW decade");
	cr_assert_eq(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	r = cmd(c, "HELLO 4");
	cr_assert_str_eq(r->str, "NOPROTO unsupported protocol version");
	freeReplyObject(r);
	r = cmd(c, "PING");
	cr_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	r = cmd(c, "COMMAND COUNT");
	long long count = r->integer;
	freeReplyObject(r);
	r = cmd(c, "HELP");
	cr_assert_eq((long long)r->elements, count);
	const char *want[] = { "PING", "HELLO", "INFO", "CUSTOMER", "RANK", "TOP", "PARETO", "RISK",
			       "KEYCLIENTS", "STORES", "LAPSED", "SCORE", "INGEST", "SUBSCRIBE",
			       "SHUTDOWN", "CLIENT", "COMMAND", "CONFIG", "ECHO", "RESET", "QUIT" };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		bool found = false;
		for (size_t k = 0; k < r->elements; k++)
			found |= strncmp(r->element[k]->str, want[i], strlen(want[i])) == 0 &&
				 r->element[k]->str[strlen(want[i])] == ' ';
		cr_assert(found, "HELP lacks %s", want[i]);
	}
	freeReplyObject(r);
	r = cmd(c, "CONFIG GET save");
	cr_assert_eq(r->elements, 2);
	cr_assert_str_eq(r->element[0]->str, "save");
	freeReplyObject(r);
	r = cmd(c, "CONFIG GET appendonly");
	cr_assert_str_eq(r->element[1]->str, "no");
	freeReplyObject(r);
	r = cmd(c, "CLIENT SETNAME tester");
	cr_assert_str_eq(r->str, "OK");
	freeReplyObject(r);
	r = cmd(c, "CLIENT LIST");
	cr_assert_not_null(strstr(r->str, "name=tester"));
	freeReplyObject(r);
	r = cmd(c, "INFO metrics");
	cr_assert_not_null(strstr(r->str, "\npareto_records_total 7\n"), "%s", r->str);
	cr_assert_null(strstr(r->str, "C1"));
	freeReplyObject(r);
	r = cmd(c, "INFO");
	for (const char *const *s = (const char *const[]){ "# Server", "# Ingest", "# Memory",
							     "# Clients", "# Ranking", NULL };
	     *s; s++)
		cr_assert_not_null(strstr(r->str, *s), "INFO lacks %s", *s);
	freeReplyObject(r);
	redisFree(c);
	stop(&d);
}

Test(paretod, pipelining)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	redisContext *c = client(&d);
	for (int i = 0; i < 1000; i++) {
		redisAppendCommand(c, "PING");
		redisAppendCommand(c, "RANK C%d", 1 + i % 5);
	}
	for (int i = 0; i < 1000; i++) {
		redisReply *r;
		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
		cr_assert_str_eq(r->str, "PONG");
		freeReplyObject(r);
		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
		static const int ranks[] = { 1, 2, 3, 4, 5 };
		cr_assert_eq(int_field(r, "rank"), ranks[i % 5]);
		freeReplyObject(r);
	}
	redisFree(c);
	/* The same through one raw write, inline commands included. */
	struct conn *raw = conn_open(&d);
	size_t cap = 1000 * 40, len = 0;
	char *burst = malloc(cap);
	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(burst + len, i % 2 ? "PING\r\n" : "*2\r\n$4\r\nRANK\r\n$2\r\nC3\r\n");
	cr_assert_eq(write(raw->fd, burst, len), (ssize_t)len);
	for (int i = 0; i < 1000; i++) {
		struct rv *r = rv_read(raw);
		cr_assert_not_null(r);
		if (i % 2)
			cr_assert_str_eq(r->str, "PONG");
		else
			cr_assert_eq(rv_field(r, "rank")->integer, 3);
		rv_free(r);
	}
	free(burst);
	conn_close(raw);
	stop(&d);
}

Test(paretod, two_hundred_clients)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	enum { N = 200 };
	redisContext *cs[N];
	for (int i = 0; i < N; i++) {
		cs[i] = client(&d);
		redisAppendCommand(cs[i], "PING");
		redisAppendCommand(cs[i], "RANK C%d", 1 + i % 5);
		/* Send now, read later: all 200 are in flight at once. */
		int done = 0;
		while (!done)
			cr_assert_eq(redisBufferWrite(cs[i], &done), REDIS_OK);
	}
	char v[32];
	redisContext *watcher = client(&d);
	cr_assert_geq(atoi(info_value(watcher, "clients", "connected_clients", v, sizeof v)), N + 1);
	redisFree(watcher);
	for (int i = 0; i < N; i++) {
		redisReply *r;
		cr_assert_eq(redisGetReply(cs[i], (void **)&r), REDIS_OK);
		cr_assert_str_eq(r->str, "PONG");
		freeReplyObject(r);
		cr_assert_eq(redisGetReply(cs[i], (void **)&r), REDIS_OK);
		cr_assert_eq(int_field(r, "rank"), 1 + i % 5);
		freeReplyObject(r);
		redisFree(cs[i]);
	}
	stop(&d);
}

/* A daemon on a random feed (seeded) with --max-output-bytes bound. */
static void start_output_bound(struct daemon *d, unsigned seed, const char *bound)
{
	char *feed = random_feed(seed, 3000, 500);
	start(d, feed, "--max-output-bytes", bound, NULL);
	free(feed);
}

Test(paretod, a_client_that_never_reads)
{
	struct daemon d;
	start_output_bound(&d, 7, "1M");
	/* It asks for ~40 KB replies and reads none of them. */
	int slow = connect_unix(d.socket);
	fcntl(slow, F_SETFL, O_NONBLOCK);
	const char ask[] = "TOP 300\r\n";
	size_t sent = 0;
	redisContext *c = client(&d);
	for (int i = 0; i < 400; i++) {
		ssize_t w = send(slow, ask, sizeof ask - 1, MSG_NOSIGNAL);
		if (w > 0)
			sent += (size_t)w;
		/* Others are served meanwhile. */
		redisReply *r = cmd(c, "RANK C0001");
		cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
		freeReplyObject(r);
	}
	cr_assert_gt(sent, 0);
	char v[32];
	for (int i = 0; i < 200 && strcmp(info_value(c, "clients", "output_limit_disconnects", v,
						     sizeof v), "1") != 0; i++)
		sleep_ms(10);
	cr_assert_str_eq(v, "1", "the slow reader was not disconnected");
	redisReply *r = cmd(c, "PING");
	cr_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	close(slow);
	redisFree(c);
	stop(&d);
}

/* Writes until the server closes; returns what it replied before closing. */
static char *flood(const char *socket, const char *first, char fill, size_t total)
{
	int fd = connect_unix(socket);
	cr_assert_geq(fd, 0);
	char chunk[65536];
	memset(chunk, fill, sizeof chunk);
	size_t sent = 0;
	if (first) {
		cr_assert_eq(send(fd, first, strlen(first), MSG_NOSIGNAL), (ssize_t)strlen(first));
		sent = strlen(first);
	}
	while (sent < total) {
		ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* closed by the server */
		sent += (size_t)w;
	}
	char *reply = calloc(1, 4096);
	size_t len = 0;
	ssize_t n;
	while (len < 4095 && (n = read(fd, reply + len, 4095 - len)) > 0)
		len += (size_t)n;
	close(fd);
	return reply;
}

/* One reply past the bound with nothing in flight yet: the client is closed
 * while its request is handled, and freed only once that is over (ASan sees
 * the server read it after freeing it otherwise). */
Test(paretod, one_reply_past_the_output_bound)
{
	struct daemon d;
	start_output_bound(&d, 11, "16K");
	int fd = connect_unix(d.socket);
	cr_assert_geq(fd, 0);
	const char ask[] = "TOP 1000\r\n";
	cr_assert_eq(send(fd, ask, sizeof ask - 1, MSG_NOSIGNAL), (ssize_t)sizeof ask - 1);
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		;
	cr_assert_leq(n, 0, "the connection should be closed");
	close(fd);
	redisContext *c = client(&d);
	cr_assert_eq(info_number(c, "output_limit_disconnects"), 1);
	redisReply *r = cmd(c, "PING");
	cr_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	redisFree(c);
	stop(&d);
}

Test(paretod, garbage_gets_an_error_and_is_closed)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	char *reply = flood(d.socket, NULL, 'x', 10u << 20);
	cr_assert_str_eq(reply, "-ERR request too large\r\n");
	free(reply);
	reply = flood(d.socket, "*1\r\n$4\r\nPING\r\n*zz\r\n", 'y', 1u << 20);
	cr_assert_str_eq(reply, "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n");
	free(reply);
	reply = flood(d.socket, "PING\r\n\x01\x02\x03\r\n", 0, 1u << 16);
	cr_assert_eq(strncmp(reply, "+PONG\r\n-ERR Protocol error", 26), 0, "%s", reply);
	free(reply);
	reply = flood(d.socket, "*1\r\n$2000000\r\n", 'z', 3u << 20);
	cr_assert_str_eq(reply, "-ERR request too large\r\n");
	free(reply);
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "RANK C1");
	cr_assert_eq(int_field(r, "rank"), 1);
	freeReplyObject(r);
	char v[32];
	cr_assert_str_eq(info_value(c, "clients", "protocol_errors", v, sizeof v), "4");
	redisFree(c);
	stop(&d);
}

Test(paretod, half_closed_connection_gets_its_answers)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	struct conn *c = conn_open(&d);
	conn_send(c, "PING\r\nRANK C1\r\nECHO hello\r\n");
	shutdown(c->fd, SHUT_WR);
	struct rv *r = rv_read(c);
	cr_assert_str_eq(r->str, "PONG");
	rv_free(r);
	r = rv_read(c);
	cr_assert_eq(rv_field(r, "rank")->integer, 1);
	rv_free(r);
	r = rv_read(c);
	cr_assert_str_eq(r->str, "hello");
	rv_free(r);
	cr_assert_null(rv_read(c), "the server should close after answering");
	conn_close(c);
	stop(&d);
}

Test(paretod, ingest_changes_the_answers)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "RANK NEW");
	cr_assert_eq(field(r, "rank")->type, REDIS_REPLY_NIL);
	cr_assert_eq(int_field(r, "records"), 7);
	freeReplyObject(r);
	r = cmd(c, "INGEST %s %s %s", "2024-03-04,NEW,S1,1000.00", "2024-03-05,C5,S2,1.50",
		"bad,line");
	cr_assert_eq(int_field(r, "accepted"), 2);
	cr_assert_eq(int_field(r, "rejected"), 1);
	cr_assert_eq(int_field(r, "records"), 9);
	freeReplyObject(r);
	r = cmd(c, "RANK NEW");
	cr_assert_eq(int_field(r, "rank"), 1);
	cr_assert_eq(int_field(r, "revenue_minor"), 100000);
	cr_assert_eq(int_field(r, "records"), 9);
	cr_assert_str_eq(field(r, "watermark")->str, "2024-03-05T00:00:00.000Z");
	freeReplyObject(r);
	r = cmd(c, "RANK C5");
	cr_assert_eq(int_field(r, "rank"), 5); /* 6.50 now beats C4's 5.00 */
	freeReplyObject(r);
	r = cmd(c, "PARETO");
	cr_assert_eq(int_field(r, "customers"), 6);
	cr_assert_eq(int_field(r, "rejected"), 2);
	freeReplyObject(r);
	redisFree(c);
	stop(&d);
}

/*
 * Store S: BIG 300.00 and ten customers of 60.00 (BIG 33%: elevated, the
 * others 6.7%); store T: twenty customers of 500.00 (5% each, risk none).
 * X buys 100.00 in S (10.0% of 1000.00: a key client; BIG 30%, still
 * elevated), then gets 50.00 back (50/950 = 5.3%: no longer key). The
 * company's shares stay far below 10%. Exactly two pushes.
 */
static char *alert_feed(void)
{
	char *text = malloc(8192);
	size_t len = (size_t)sprintf(text, "ts,customer_id,store_id,amount\n2024-01-01,BIG,S,300.00\n");
	for (int i = 0; i < 10; i++)
		len += (size_t)sprintf(text + len, "2024-01-02,s%d,S,60.00\n", i);
	for (int i = 0; i < 20; i++)
		len += (size_t)sprintf(text + len, "2024-01-03,t%d,T,500.00\n", i);
	return text;
}

static struct rv *read_push(struct conn *c)
{
	struct rv *r = rv_read(c);
	cr_assert_not_null(r, "no push");
	cr_assert(r->type == RV_PUSH || r->type == RV_ARRAY);
	cr_assert_eq(r->n, 3);
	cr_assert_str_eq(r->el[0]->str, "message");
	cr_assert_str_eq(r->el[1]->str, "alerts");
	return r;
}

Test(paretod, alerts_key_client_on_and_off)
{
	struct daemon d;
	char *feed = alert_feed();
	start(&d, feed, NULL);
	free(feed);
	struct conn *sub3 = conn_open(&d), *sub2 = conn_open(&d);
	conn_command(sub3, "HELLO 3");
	rv_free(rv_read(sub3));
	conn_command(sub3, "SUBSCRIBE alerts");
	struct rv *r = rv_read(sub3);
	cr_assert_eq(r->type, RV_PUSH);
	cr_assert_str_eq(r->el[0]->str, "subscribe");
	rv_free(r);
	conn_command(sub2, "SUBSCRIBE alerts");
	r = rv_read(sub2);
	cr_assert_eq(r->type, RV_ARRAY);
	cr_assert_eq(r->el[2]->integer, 1);
	rv_free(r);
	/* RESP2 subscribed mode allows only a few commands. */
	conn_command(sub2, "RANK BIG");
	r = rv_read(sub2);
	cr_assert_eq(r->type, RV_ERROR);
	cr_assert_not_null(strstr(r->str, "only (P|S)SUBSCRIBE"));
	rv_free(r);
	conn_command(sub2, "PING");
	r = rv_read(sub2);
	cr_assert_eq(r->type, RV_ARRAY);
	cr_assert_str_eq(r->el[0]->str, "pong");
	rv_free(r);

	redisContext *c = client(&d);
	redisReply *ok = cmd(c, "INGEST 2024-01-04,X,S,100.00");
	cr_assert_eq(int_field(ok, "accepted"), 1);
	freeReplyObject(ok);
	ok = cmd(c, "INGEST 2024-01-05,X,S,-50.00");
	freeReplyObject(ok);
	/* Something that changes no key client and no risk level. */
	ok = cmd(c, "INGEST 2024-01-06,t0,T,0.01");
	freeReplyObject(ok);

	struct conn *subs[] = { sub3, sub2 };
	for (int k = 0; k < 2; k++) {
		r = read_push(subs[k]);
		const char *event = r->el[2]->str;
		cr_assert_not_null(strstr(event, "\"event\":\"key_client_added\""), "%s", event);
		cr_assert_not_null(strstr(event, "\"store\":\"S\""), "%s", event);
		cr_assert_not_null(strstr(event, "\"customer\":\"X\""), "%s", event);
		cr_assert_not_null(strstr(event, "\"revenue_minor\":10000"), "%s", event);
		rv_free(r);
		r = read_push(subs[k]);
		event = r->el[2]->str;
		cr_assert_not_null(strstr(event, "\"event\":\"key_client_removed\""), "%s", event);
		cr_assert_not_null(strstr(event, "\"customer\":\"X\""), "%s", event);
		rv_free(r);
		/* Nothing more: a PING's answer comes next. */
		conn_command(subs[k], "PING");
		r = rv_read(subs[k]);
		cr_assert(r->type == RV_STRING || r->type == RV_ARRAY, "a third push arrived");
		rv_free(r);
	}
	char v[32];
	cr_assert_str_eq(info_value(c, "ranking", "alert_pushes", v, sizeof v), "2");
	conn_command(sub2, "UNSUBSCRIBE");
	r = rv_read(sub2);
	cr_assert_str_eq(r->el[0]->str, "unsubscribe");
	cr_assert_eq(r->el[2]->integer, 0);
	rv_free(r);
	conn_command(sub2, "RANK X");
	r = rv_read(sub2);
	cr_assert_eq(rv_field(r, "revenue_minor")->integer, 5000);
	rv_free(r);
	conn_close(sub2);
	conn_close(sub3);
	redisFree(c);
	stop(&d);
}

/* The key clients of one scope, brute force: customers with revenue > 0
 * whose share of the scope's positive revenue is at least 10%, as a bit
 * set over the test's customers. */
static uint64_t key_set(const long long *revenue, int customers)
{
	long long total = 0;
	for (int k = 0; k < customers; k++)
		total += revenue[k] > 0 ? revenue[k] : 0;
	uint64_t set = 0;
	for (int k = 0; total > 0 && k < customers; k++)
		if (revenue[k] > 0 && 10 * revenue[k] >= total)
			set |= 1ull << k;
	return set;
}

/* The JSON string field `name` of an alert event, copied into buf. */
static const char *event_field(const char *event, const char *name, char *buf, size_t size)
{
	char key[32];
	snprintf(key, sizeof key, "\"%s\":", name);
	const char *p = strstr(event, key);
	cr_assert_not_null(p, "no %s in %s", name, event);
	p += strlen(key);
	size_t n = *p == '"' ? strcspn(++p, "\"") : strcspn(p, ",}");
	snprintf(buf, size, "%.*s", (int)n, p);
	return buf;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * After each INGEST (one line: 600 of them, 30 customers, 4 stores, some
 * refunds), subscribers are told of exactly the key clients it added or
 * removed, of the company and of its store, against brute force: each
 * event with the records it reflects is compared, as a set, with those
 * that brute force finds after the INGEST that made them (only the store
 * an INGEST names is evaluated after it; the others cannot have moved).
 */
Test(paretod, alerts_after_each_ingest_equal_brute_force)
{
	enum { CUSTOMERS = 30, STORES = 4, ROUNDS = 600 };
	seeded();
	struct daemon d;
	start(&d, NULL, NULL);
	struct conn *sub = conn_open(&d);
	conn_command(sub, "SUBSCRIBE alerts");
	rv_free(rv_read(sub));
	redisContext *c = client(&d);
	static long long revenue[STORES + 1][CUSTOMERS]; /* [STORES]: the company */
	uint64_t keys[STORES + 1] = { 0 };
	size_t cap = 4096, n_want = 0;
	char **want = malloc(cap * sizeof *want);
	for (int i = 0; i < ROUNDS; i++) {
		int k = rand() % 3 ? rand() % 8 : rand() % CUSTOMERS, st = rand() % STORES;
		long long cents = (rand() % 7 ? 1 : -1) * (1 + rand() % 5000);
		redisReply *r = cmd(c, "INGEST 2024-01-01T00:%02d:%02dZ,K%02d,S%d,%s%lld.%02lld",
				    i / 60 % 60, i % 60, k, st, cents < 0 ? "-" : "", llabs(cents) / 100,
				    llabs(cents) % 100);
		cr_assert_eq(int_field(r, "accepted"), 1, "round %d", i);
		freeReplyObject(r);
		revenue[st][k] += cents;
		revenue[STORES][k] += cents;
		for (int sc = 0; sc <= STORES; sc++) {
			uint64_t now = key_set(revenue[sc], CUSTOMERS);
			for (int x = 0; x < CUSTOMERS; x++) {
				if (((now ^ keys[sc]) >> x & 1) == 0)
					continue;
				if (n_want == cap)
					want = realloc(want, (cap *= 2) * sizeof *want);
				char *e = malloc(96);
				snprintf(e, 96, "%d %s %s%c K%02d", i + 1,
					 now >> x & 1 ? "key_client_added" : "key_client_removed",
					 sc == STORES ? "company" : "store S", sc == STORES ? ' ' : '0' + sc,
					 x);
				want[n_want++] = e;
			}
			keys[sc] = now;
		}
	}
	/* Every push came before the last INGEST's reply: a PING's reply
	 * comes after them all. */
	conn_command(sub, "PING");
	size_t n_got = 0;
	char **got = malloc((n_want + 64) * sizeof *got);
	for (;;) {
		struct rv *r = rv_read(sub);
		cr_assert_not_null(r);
		if (strcmp(r->el[0]->str, "pong") == 0) {
			rv_free(r);
			break;
		}
		const char *event = r->el[2]->str;
		char kind[32], scope[16], store[16] = "", customer[16], records[24];
		event_field(event, "event", kind, sizeof kind);
		if (strcmp(kind, "risk_changed") != 0) {
			event_field(event, "scope", scope, sizeof scope);
			if (strcmp(scope, "store") == 0)
				event_field(event, "store", store, sizeof store);
			event_field(event, "customer", customer, sizeof customer);
			event_field(event, "records", records, sizeof records);
			cr_assert_lt(n_got, n_want + 64, "more pushes than brute force finds");
			char *e = malloc(96);
			if (strcmp(scope, "store") == 0)
				snprintf(e, 96, "%s %s store %s %s", records, kind, store, customer);
			else
				snprintf(e, 96, "%s %s company  %s", records, kind, customer);
			got[n_got++] = e;
		}
		rv_free(r);
	}
	cr_log_info("%zu key-client events in %d INGESTs", n_want, ROUNDS);
	cr_assert_gt(n_want, 50, "too few events: the test proves little");
	qsort(want, n_want, sizeof *want, compare_strings);
	qsort(got, n_got, sizeof *got, compare_strings);
	for (size_t i = 0; i < n_want && i < n_got; i++)
		cr_assert_str_eq(got[i], want[i], "event %zu of %zu: got \"%s\", brute force \"%s\"", i, n_want, got[i], want[i]);
	cr_assert_eq(n_got, n_want);
	for (size_t i = 0; i < n_want; i++)
		free(want[i]);
	for (size_t i = 0; i < n_got; i++)
		free(got[i]);
	free(want);
	free(got);
	conn_close(sub);
	redisFree(c);
	stop(&d);
}

Test(paretod, hello_3_maps_and_doubles)
{
	struct daemon d;
	start(&d, small_feed, NULL);
	struct conn *c = conn_open(&d);
	conn_command(c, "HELLO 3 SETNAME three");
	struct rv *r = rv_read(c);
	cr_assert_eq(r->type, RV_MAP);
	cr_assert_eq(rv_field(r, "proto")->integer, 3);
	cr_assert_str_eq(rv_field(r, "server")->str, "pareto");
	rv_free(r);
	conn_command(c, "PARETO");
	r = rv_read(c);
	cr_assert_eq(r->type, RV_MAP);
	cr_assert_eq(rv_field(r, "cr1")->type, RV_DOUBLE);
	cr_assert_eq(rv_field(r, "revenue_minor")->type, RV_INT);
	cr_assert_eq(rv_field(rv_field(r, "top_tier"), "share")->type, RV_DOUBLE);
	cr_assert_str_eq(rv_field(rv_field(r, "top_tier"), "fraction")->str, "0.2");
	rv_free(r);
	conn_command(c, "CUSTOMER C1");
	r = rv_read(c);
	cr_assert_eq(rv_field(r, "lapsed")->type, RV_BOOL);
	cr_assert_eq(rv_field(r, "purchases")->integer, 2);
	rv_free(r);
	conn_command(c, "RANK nobody");
	r = rv_read(c);
	cr_assert_eq(rv_field(r, "rank")->type, RV_NULL);
	rv_free(r);
	conn_command(c, "HELLO 2");
	rv_free(rv_read(c));
	conn_command(c, "PARETO");
	r = rv_read(c);
	cr_assert_eq(r->type, RV_ARRAY);
	rv_free(r);
	conn_close(c);
	stop(&d);
}

Test(paretod, unix_feed_producers)
{
	struct daemon d;
	daemon_dir(&d);
	char feed_socket[160], source[170];
	snprintf(feed_socket, sizeof feed_socket, "%s/feed.sock", d.dir);
	snprintf(source, sizeof source, "unix:%s", feed_socket);
	daemon_start(&d, "--feed", source, NULL);
	for (int i = 0; i < 100 && access(feed_socket, F_OK) != 0; i++)
		sleep_ms(10);
	int p1 = connect_unix(feed_socket), p2 = connect_unix(feed_socket);
	cr_assert(p1 >= 0 && p2 >= 0);
	const char a[] = "ts,customer_id,store_id,amount\n2024-01-01,A,S1,10.00\n2024-01-02,B,S1,5";
	const char b[] = "customer_id,amount,ts\nC,7.00,2024-01-03\n";
	cr_assert_eq(write(p1, a, sizeof a - 1), (ssize_t)sizeof a - 1);
	cr_assert_eq(write(p2, b, sizeof b - 1), (ssize_t)sizeof b - 1);
	close(p2);
	sleep_ms(50);
	close(p1); /* mid-line: "2024-01-02,B,S1,5" is lost, not read as 0.05 */
	redisContext *c = client(&d);
	char v[32];
	for (int i = 0; i < 200 && strcmp(info_value(c, "ingest", "feeds_open", v, sizeof v), "0"); i++)
		sleep_ms(10);
	cr_assert_str_eq(info_value(c, "ingest", "records", v, sizeof v), "2");
	cr_assert_str_eq(info_value(c, "ingest", "rejected_truncated", v, sizeof v), "1");
	redisReply *r = cmd(c, "RANK B");
	cr_assert_eq(field(r, "rank")->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	r = cmd(c, "RANK A");
	cr_assert_eq(int_field(r, "rank"), 1);
	freeReplyObject(r);
	redisFree(c);
	stop(&d);
	cr_assert_neq(access(feed_socket, F_OK), 0, "the feed socket is left behind");
}

Test(paretod, socket_file_life_cycle)
{
	struct daemon d;
	daemon_dir(&d);
	/* A stale socket file: bound, then its listener went away. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	memcpy(addr.sun_path, d.socket, strlen(d.socket) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
	close(fd);
	daemon_start(&d, NULL);
	struct stat st;
	cr_assert_eq(stat(d.socket, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660);
	/* A second server refuses the live one's path. */
	struct daemon other = d;
	pid_t second = daemon_spawn(&other, NULL);
	int status;
	waitpid(second, &status, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	char *log = read_text(d.log);
	cr_assert_not_null(strstr(log, "a server is already listening there"), "%s", log);
	cr_assert_not_null(strstr(log, "replaced a stale socket file"), "%s", log);
	free(log);
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "PING");
	cr_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	redisFree(c);
	/* SIGTERM stops it cleanly and removes the socket. */
	kill(d.pid, SIGTERM);
	waitpid(d.pid, &status, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_neq(stat(d.socket, &st), 0);
	daemon_remove_dir(&d);
}

Test(paretod, config_file_and_flags)
{
	struct daemon d;
	daemon_dir(&d);
	char conf[160], text[600];
	snprintf(conf, sizeof conf, "%s/paretod.conf", d.dir);
	write_bytes(d.feed, "w", small_feed, strlen(small_feed));
	snprintf(text, sizeof text, "# a comment\nsocket-mode = 0600\nfeed = %s\n"
		 "tier-benefits = A=30:5\nmax-clients = 7\nthreads = 3\n", d.feed);
	write_bytes(conf, "w", text, strlen(text));
	daemon_start(&d, "--config", conf, "--socket-mode", "0640", NULL);
	wait_feeds(&d);
	struct stat st;
	cr_assert_eq(stat(d.socket, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640, "the flag wins over the file");
	redisContext *c = client(&d);
	redisReply *r = cmd(c, "SCORE C1");
	cr_assert_str_eq(field(r, "discount_percent")->str, "30");
	cr_assert_str_eq(field(r, "cashback_percent")->str, "5");
	freeReplyObject(r);
	r = cmd(c, "CONFIG GET maxclients");
	cr_assert_str_eq(r->element[1]->str, "7");
	freeReplyObject(r);
	cr_assert_eq(info_number(c, "apply_threads"), 3);
	redisFree(c);
	stop(&d);

	/* --threads takes 1 to 64; anything else is bad usage. */
	const char *bad[] = { "0", "65", "two" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct daemon other;
		daemon_dir(&other);
		pid_t pid = daemon_spawn(&other, "--threads", bad[i], NULL);
		int status;
		waitpid(pid, &status, 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "--threads %s", bad[i]);
		cr_assert(log_has(&other, "--threads: expected a count from 1 to 64"), "--threads %s",
			  bad[i]);
		daemon_remove_dir(&other);
	}
}

static const char *config_get(redisContext *c, const char *name, char *out, size_t size)
{
	redisReply *r = cmd(c, "CONFIG GET %s", name);
	cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "CONFIG GET %s", name);
	snprintf(out, size, "%s", r->element[1]->str);
	freeReplyObject(r);
	return out;
}

/* --busy-poll-us: after answering, the server thread polls (INFO counts
 * the polls); a request that comes meanwhile, on the same connection or
 * another, is answered at once, not when the poll runs out; 0 never polls. */
Test(paretod, busy_poll_answers_what_comes_during_the_poll)
{
	struct daemon d;
	daemon_dir(&d);
	daemon_start(&d, "--busy-poll-us", "1000000", NULL);
	redisContext *c = client(&d), *other = client(&d);
	char v[64];
	cr_assert_str_eq(config_get(c, "busy-poll-us", v, sizeof v), "1000000");
	for (int i = 0; i < 6; i++) {
		int64_t t0 = now_ms();
		redisReply *r = cmd(i % 2 ? other : c, "PING");
		cr_assert(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0);
		freeReplyObject(r);
		cr_assert_lt(now_ms() - t0, 500, "request %d waited for the poll to run out", i);
	}
	cr_assert_str_eq(info_value(c, "clients", "busy_poll_us", v, sizeof v), "1000000");
	cr_assert_gt(atoll(info_value(c, "clients", "busy_polls", v, sizeof v)), 0);
	cr_assert_gt(atoll(info_value(c, "clients", "busy_poll_hits", v, sizeof v)), 0);
	redisReply *m = cmd(c, "INFO metrics");
	const char *polls = strstr(m->str, "\npareto_busy_polls_total ");
	cr_assert(polls && atof(polls + strlen("\npareto_busy_polls_total ")) > 0, "%s", m->str);
	freeReplyObject(m);
	redisFree(other);
	daemon_shutdown(&d, c);
	daemon_remove_dir(&d);

	daemon_dir(&d);
	daemon_start(&d, "--busy-poll-us", "0", NULL);
	c = client(&d);
	for (int i = 0; i < 6; i++)
		freeReplyObject(cmd(c, "PING"));
	cr_assert_str_eq(info_value(c, "clients", "busy_polls", v, sizeof v), "0");
	daemon_shutdown(&d, c);
	daemon_remove_dir(&d);

	/* While a feed ingests (bytes decoded within the last
	 * rank-interval-ms, here a second) the thread does not poll: the
	 * apply threads want the cores. */
	daemon_dir(&d);
	char producer[128], source[140];
	snprintf(producer, sizeof producer, "%s/producer.sock", d.dir);
	snprintf(source, sizeof source, "unix:%s", producer);
	daemon_start(&d, "--busy-poll-us", "1000000", "--rank-interval-ms", "1000", "--feed", source,
		     NULL);
	int fd = connect_unix(producer);
	cr_assert_geq(fd, 0);
	const char header[] = "ts,customer_id,store_id,amount\n";
	cr_assert_eq(write(fd, header, sizeof header - 1), (ssize_t)(sizeof header - 1));
	c = client(&d);
	for (int i = 0; i < 10; i++) {
		char line[64];
		int n = snprintf(line, sizeof line, "2024-01-%02d,C%d,S1,1.00\n", 1 + i, i);
		cr_assert_eq(write(fd, line, (size_t)n), n);
		for (int k = 0; k < 100 && atoll(info_value(c, "ingest", "records", v, sizeof v)) <= i; k++)
			sleep_ms(5);
		freeReplyObject(cmd(c, "PING"));
	}
	cr_assert_eq(atoll(info_value(c, "ingest", "records", v, sizeof v)), 10);
	cr_assert_str_eq(info_value(c, "clients", "busy_polls", v, sizeof v), "0",
			 "polled while a feed was ingesting");
	close(fd);
	daemon_shutdown(&d, c);
	daemon_remove_dir(&d);
}

/* SIGHUP: the log file reopened after a rotation; the config file reread,
 * its runtime options in effect, the others waiting for a restart, flags
 * still winning, and a file that does not parse changing nothing. */
Test(paretod, sighup_rereads_the_config_and_reopens_the_log)
{
	struct daemon d;
	daemon_dir(&d);
	char conf[160], text[600], rotated[200], v[64];
	snprintf(conf, sizeof conf, "%s/paretod.conf", d.dir);
	snprintf(rotated, sizeof rotated, "%s.1", d.log);
	write_bytes(d.feed, "w", small_feed, strlen(small_feed));
	snprintf(text, sizeof text, "feed = %s\ntier-benefits = A=30:5\nrank-interval-ms = 40\n"
		 "max-clients = 7\n", d.feed);
	write_bytes(conf, "w", text, strlen(text));
	daemon_start(&d, "--config", conf, "--log-file", d.log, "--max-clients", "9", NULL);
	wait_feeds(&d);
	redisContext *c = client(&d);
	assert_score(c, "C1", "A", "30", "5");
	cr_assert_str_eq(config_get(c, "rank-interval-ms", v, sizeof v), "40");

	/* Rotated, then a new file: B named (A back to its default), another
	 * interval, a max-clients the flag overrides, a start-only option. */
	cr_assert_eq(rename(d.log, rotated), 0);
	snprintf(text, sizeof text, "feed = %s\ntier-benefits = B=12\nrank-interval-ms = 25\n"
		 "max-clients = 3\nsocket-mode = 0600\n", d.feed);
	write_bytes(conf, "w", text, strlen(text));
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	wait_log(&d, "reread; now in effect: rank-interval-ms, tier-benefits", 3000);
	cr_assert(log_has(&d, "SIGHUP: log reopened"));
	cr_assert(log_has(&d, "socket-mode changed; it takes effect at the next start"));
	cr_assert(log_has(&d, "max-clients changed; the command line's value stays"));
	char *old = read_text(rotated);
	cr_assert_not_null(strstr(old, "listening on"), "the rotated log lost its lines");
	cr_assert_null(strstr(old, "SIGHUP"), "logged into the rotated file");
	free(old);
	assert_score(c, "C1", "A", "20", "0");
	assert_score(c, "C2", "B", "12", NULL);
	cr_assert_str_eq(config_get(c, "rank-interval-ms", v, sizeof v), "25");
	cr_assert_str_eq(config_get(c, "maxclients", v, sizeof v), "9");
	struct stat st;
	cr_assert_eq(stat(d.socket, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660, "the socket's mode changed without a restart");

	/* A bad value, then an unknown key: nothing changes. */
	const char *bad[][2] = { { "rank-interval-ms = soon\n", "expected milliseconds or 'auto', not 'soon'" },
				 { "rank-interval-ms = 60\nbogus = 1\n", "unknown key 'bogus'" } };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_bytes(conf, "w", bad[i][0], strlen(bad[i][0]));
		cr_assert_eq(kill(d.pid, SIGHUP), 0);
		wait_log(&d, bad[i][1], 3000);
		cr_assert_str_eq(config_get(c, "rank-interval-ms", v, sizeof v), "25");
		assert_score(c, "C2", "B", "12", NULL);
	}
	cr_assert(log_has(&d, "the running configuration stays"));

	/* An empty file: every option back to its default; the same empty
	 * file again: nothing changed since the last reading. */
	write_bytes(conf, "w", "", 0);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	for (int i = 0; i < 300 && strcmp(config_get(c, "rank-interval-ms", v, sizeof v), "auto"); i++)
		sleep_ms(10);
	cr_assert_str_eq(v, "auto", "the empty file's default rank-interval-ms");
	assert_score(c, "C2", "B", "10", NULL);
	cr_assert_eq(kill(d.pid, SIGHUP), 0);
	wait_log(&d, "reread; nothing a running server takes changed", 3000);
	redisFree(c);
	stop(&d);
}

Test(paretod, redis_cli_script)
{
	char command[512];
	snprintf(command, sizeof command, "PARETOD=%s sh %s/tests/test_paretod_cli.sh", PARETOD_BIN,
		 PARETO_SOURCE_DIR);
	int status = system(command);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "test_paretod_cli.sh failed (%d)",
		  status);
}

/* paretod on 2 apply threads with a producer socket, feed_socket (160
 * bytes), and the ranking interval given. */
static void start_fed_by_producers(struct daemon *d, char *feed_socket, const char *rank_interval_ms)
{
	daemon_dir(d);
	char source[170];
	snprintf(feed_socket, 160, "%s/feed.sock", d->dir);
	snprintf(source, sizeof source, "unix:%s", feed_socket);
	daemon_start(d, "--feed", source, "--rank-interval-ms", rank_interval_ms, "--threads", "2",
		     NULL);
	for (int i = 0; i < 100 && access(feed_socket, F_OK) != 0; i++)
		sleep_ms(10);
}

/* paretod fed by producers (start_fed_by_producers), and one producer
 * connected that has sent the CSV header. */
static int start_with_producer(struct daemon *d, const char *rank_interval_ms)
{
	char feed_socket[160];
	start_fed_by_producers(d, feed_socket, rank_interval_ms);
	int producer = connect_unix(feed_socket);
	cr_assert_geq(producer, 0);
	const char header[] = "ts,customer_id,store_id,amount\n";
	cr_assert_eq(write(producer, header, sizeof header - 1), (ssize_t)sizeof header - 1);
	return producer;
}

/* Sends records from..from+1000 (at most total) of a test's stream: record
 * i is customer K%05d who[i] (L%05d if `lapsed`) in store S<store[i]> (S1
 * without stores) at 1700000000 + i * step seconds, amount[i] cents.
 * Returns the records sent so far. */
static int send_records(int producer, int from, int total, const int *who, const int *store,
			const long *amount, int step, bool lapsed)
{
	char chunk[64 * 1000];
	size_t len = 0;
	int sent = from;
	for (; sent < from + 1000 && sent < total; sent++)
		len += (size_t)sprintf(chunk + len, "%d,%c%05d,S%d,%s%ld.%02ld\n", 1700000000 + sent * step,
				       lapsed ? 'L' : 'K', who[sent], store ? store[sent] : 1,
				       amount[sent] < 0 ? "-" : "", labs(amount[sent]) / 100,
				       labs(amount[sent]) % 100);
	cr_assert_eq(write(producer, chunk, len), (ssize_t)len);
	return sent;
}

/* A stream into `stores` stores of which the last two have only `few`
 * customers (who cross 10% of them back and forth), one record in
 * `refund_one_in` a refund. */
static void store_stream(int total, int customers, int stores, int few, int refund_one_in,
			 int *who, int *store, long *amount)
{
	for (int i = 0; i < total; i++) {
		store[i] = rand() % stores;
		who[i] = store[i] >= stores - 2 ? rand() % few : rand() % customers;
		amount[i] = (rand() % refund_one_in == 0 ? -1 : 1) * (1 + rand() % 5000);
	}
}

/*
 * While a producer streams records in, rankings are rebuilt at most every
 * --rank-interval-ms, so most answers come from an older ranking. Each must
 * still be exact for the records it cites: checked against a brute-force
 * ranking of the first `records` records sent (seeded; the seed is logged).
 * Every record is in store S1, so that the store's ranking is the company's:
 * half the questions ask it, answered through its index by customer (an
 * unindexed one would read the customers' pairs now, after a drain: the
 * Debug build asserts it). A customer not ranked has his revenue then,
 * negative if his refunds passed his purchases.
 */
Test(paretod, answers_while_ingesting_are_exact_for_their_records)
{
	enum { CUSTOMERS = 2000, TOTAL = 60000 };
	seeded();
	struct daemon d;
	int producer = start_with_producer(&d, "200");
	static int who[TOTAL];
	static long amount[TOTAL];
	for (int i = 0; i < TOTAL; i++) {
		who[i] = rand() % CUSTOMERS;
		amount[i] = (rand() % 10 == 0 ? -1 : 1) * (1 + rand() % 5000);
	}
	redisContext *c = client(&d);
	int sent = 0, stale = 0, checked = 0;
	static long long sums[CUSTOMERS];
	while (sent < TOTAL) {
		sent = send_records(producer, sent, TOTAL, who, NULL, amount, 1, false);
		sleep_ms(2);
		for (int q = 0; q < 5; q++) {
			int me = rand() % CUSTOMERS;
			redisReply *r = q % 2 ? cmd(c, "RANK K%05d STORE S1", me) : cmd(c, "RANK K%05d", me);
			long long records = int_field(r, "records");
			cr_assert_leq(records, sent);
			stale += records < sent;
			memset(sums, 0, sizeof sums);
			for (long long i = 0; i < records; i++)
				sums[who[i]] += amount[i];
			if (sums[me] <= 0) {
				cr_assert_eq(field(r, "rank")->type, REDIS_REPLY_NIL,
					     "K%05d at %lld records: not ranked", me, records);
				cr_assert_eq(int_field(r, "revenue_minor"), sums[me],
					     "K%05d at %lld records (%s)", me, records,
					     q % 2 ? "store" : "company");
			} else {
				long long above = 0, before = 0, n = 0;
				for (int o = 0; o < CUSTOMERS; o++) {
					if (sums[o] <= 0)
						continue;
					n++;
					above += sums[o] > sums[me];
					before += sums[o] > sums[me] || (sums[o] == sums[me] && o < me);
				}
				cr_assert_eq(int_field(r, "rank"), before + 1, "K%05d at %lld records", me,
					     records);
				cr_assert_eq(int_field(r, "competition_rank"), above + 1);
				cr_assert_eq(int_field(r, "customers"), n);
				cr_assert_eq(int_field(r, "revenue_minor"), sums[me]);
			}
			checked++;
			freeReplyObject(r);
		}
	}
	char v[32];
	long builds = atol(info_value(c, "ranking", "ranking_builds", v, sizeof v));
	cr_log_info("%d answers checked, %d behind the records sent, %ld rankings built", checked,
		    stale, builds);
	cr_assert_gt(stale, 0, "no answer came from an older ranking: the test proves nothing");
	cr_assert_lt(builds, checked / 2, "most answers should come from older rankings");
	close(producer);
	redisFree(c);
	stop(&d);
}

/* Revenue of every (store, customer) over the first `records` records. */
static void store_sums(long long *sums, int stores, int customers, const int *who,
		       const int *store, const long *amount, long long records)
{
	memset(sums, 0, (size_t)stores * (size_t)customers * sizeof *sums);
	for (long long i = 0; i < records; i++)
		sums[store[i] * customers + who[i]] += amount[i];
}

/*
 * Store rankings while a producer streams records into several stores:
 * stale ones are rebuilt beside ingest (each apply thread lists its pairs
 * at a point in the record stream, the scan's thread sorts them;
 * store_build.h), and answers cite the records of the set published. Each
 * must be exact for those: TOP of a store, RANK in a store (its index by
 * customer), and SCORE's key-client stores (stores S2 and S3 have 12
 * customers, who cross 10% of them back and forth), against brute force
 * over the first `records` records sent (seeded). Some builds must have
 * been beside ingest (INFO), and some answers behind.
 */
Test(paretod, store_rankings_beside_ingest_are_exact_for_their_records)
{
	enum { CUSTOMERS = 300, STORES = 4, FEW = 12, TOTAL = 60000 };
	seeded();
	struct daemon d;
	int producer = start_with_producer(&d, "5");
	static int who[TOTAL], store[TOTAL];
	static long amount[TOTAL];
	store_stream(TOTAL, CUSTOMERS, STORES, FEW, 10, who, store, amount);
	redisContext *c = client(&d);
	static long long sums[STORES * CUSTOMERS];
	int sent = 0, behind = 0, tops = 0, ranks = 0, scores = 0;
	while (sent < TOTAL) {
		sent = send_records(producer, sent, TOTAL, who, store, amount, 1, false);
		sleep_ms(2);

		/* TOP 5 of a store: customers with revenue there, by revenue
		 * then id (K%05d: by number). */
		int st = rand() % STORES;
		redisReply *r = cmd(c, "TOP 5 STORE S%d", st);
		long long records = int_field(r, "records");
		cr_assert_leq(records, sent);
		behind += records < sent;
		store_sums(sums, STORES, CUSTOMERS, who, store, amount, records);
		const long long *in = sums + st * CUSTOMERS;
		long long n = 0;
		for (int o = 0; o < CUSTOMERS; o++)
			n += in[o] > 0;
		cr_assert_eq(int_field(r, "customers"), n, "S%d at %lld records", st, records);
		const redisReply *top = field(r, "top");
		cr_assert_eq(top->elements, (size_t)(n < 5 ? n : 5));
		bool taken[CUSTOMERS] = { false };
		for (size_t i = 0; i < top->elements; i++) {
			int best = -1;
			for (int o = 0; o < CUSTOMERS; o++)
				if (in[o] > 0 && !taken[o] && (best < 0 || in[o] > in[best]))
					best = o;
			taken[best] = true;
			char id[16];
			snprintf(id, sizeof id, "K%05d", best);
			cr_assert_str_eq(field(top->element[i], "customer")->str, id,
					 "S%d at %lld records, entry %zu", st, records, i);
			cr_assert_eq(int_field(top->element[i], "revenue_minor"), in[best]);
			cr_assert_eq(int_field(top->element[i], "rank"), (long long)i + 1);
		}
		freeReplyObject(r);
		tops++;

		/* RANK in a store, through its index: his place and revenue
		 * then (negative, unranked, if his refunds passed his
		 * purchases there). */
		st = rand() % STORES;
		int who_asked = st >= STORES - 2 ? rand() % FEW : rand() % CUSTOMERS;
		r = cmd(c, "RANK K%05d STORE S%d", who_asked, st);
		records = int_field(r, "records");
		cr_assert_leq(records, sent);
		behind += records < sent;
		store_sums(sums, STORES, CUSTOMERS, who, store, amount, records);
		in = sums + st * CUSTOMERS;
		cr_assert_eq(int_field(r, "revenue_minor"), in[who_asked], "K%05d in S%d at %lld records",
			     who_asked, st, records);
		if (in[who_asked] <= 0) {
			cr_assert_eq(field(r, "rank")->type, REDIS_REPLY_NIL);
		} else {
			long long before = 0;
			for (int o = 0; o < CUSTOMERS; o++)
				before += in[o] > in[who_asked] || (in[o] == in[who_asked] && o < who_asked);
			cr_assert_eq(int_field(r, "rank"), before + 1, "K%05d in S%d at %lld records",
				     who_asked, st, records);
		}
		freeReplyObject(r);
		ranks++;

		/* SCORE of one of stores S2 and S3's few: the stores where he has at
		 * least 10% of the ranked revenue. */
		int me = rand() % FEW;
		r = cmd(c, "SCORE K%05d", me);
		const redisReply *at = field(r, "stores_records");
		if (at->type == REDIS_REPLY_INTEGER) {
			records = at->integer;
			cr_assert_leq(records, sent);
			behind += records < sent;
			store_sums(sums, STORES, CUSTOMERS, who, store, amount, records);
			/* (Listed in the order the stores were first seen.) */
			bool expected[STORES] = { false }, got[STORES] = { false };
			for (int s2 = 0; s2 < STORES; s2++) {
				long long total = 0, mine = sums[s2 * CUSTOMERS + me];
				for (int o = 0; o < CUSTOMERS; o++)
					total += sums[s2 * CUSTOMERS + o] > 0 ? sums[s2 * CUSTOMERS + o] : 0;
				expected[s2] = mine > 0 && mine * 10 >= total;
			}
			const redisReply *key = field(r, "key_client_stores");
			for (size_t i = 0; i < key->elements; i++) {
				int s2 = atoi(key->element[i]->str + 1);
				cr_assert(s2 >= 0 && s2 < STORES && !got[s2], "%s", key->element[i]->str);
				got[s2] = true;
			}
			for (int s2 = 0; s2 < STORES; s2++)
				cr_assert_eq(got[s2], expected[s2], "K%05d in S%d at %lld records", me, s2,
					     records);
			scores++;
		}
		freeReplyObject(r);
	}
	char v[32];
	long beside = atol(info_value(c, "ranking", "store_builds_beside_ingest", v, sizeof v));
	cr_log_info("%d TOP, %d RANK and %d SCORE answers checked, %d behind the records sent, "
		    "%ld store builds beside ingest", tops, ranks, scores, behind, beside);
	/* INFO says what the store rankings answers use reflect. */
	char line[256];
	info_value(c, "ranking", "stores_all", line, sizeof line);
	cr_assert(strstr(line, "stores=4,records="), "%s", line);
	cr_assert_leq(atoll(strstr(line, "records=") + 8), TOTAL, "%s", line);
	cr_assert_not_null(strstr(line, ",behind="), "%s", line);
	cr_assert_gt(beside, 0, "no store ranking was built beside ingest");
	cr_assert_gt(behind, 0, "no answer came from an older ranking: the test proves nothing");
	close(producer);
	redisFree(c);
	stop(&d);
}

/*
 * LAPSED while a producer streams 400 days of purchases, some customers
 * stopping for good along the way: a stale list is made again beside
 * ingest (each apply thread lists its shards' lapsed regulars at a point
 * of its stream, a thread of its own sorts them), and answers cite the
 * records of the list published. Each must be exact for those: every
 * lapsed regular (at least 3 purchase days, idle at least 30 days and
 * more than 3 times his mean gap, at the watermark of the first `records`
 * records), by revenue then id, against brute force (seeded). Some lists
 * must have been made beside ingest (INFO), and some answers behind.
 */
Test(paretod, lapsed_beside_ingest_is_exact_for_its_records)
{
	enum { CUSTOMERS = 200, TOTAL = 40000, STEP_S = 900, DAY_S = 86400 };
	seeded();
	struct daemon d;
	int producer = start_with_producer(&d, "5");
	static int who[TOTAL], stops_at[CUSTOMERS];
	static long amount[TOTAL];
	for (int k = 0; k < CUSTOMERS; k++) /* half stop buying somewhere */
		stops_at[k] = k % 2 ? TOTAL : rand() % TOTAL;
	for (int i = 0; i < TOTAL; i++) {
		do
			who[i] = rand() % CUSTOMERS;
		while (stops_at[who[i]] <= i && i < TOTAL - 1 && rand() % 50);
		amount[i] = 1 + rand() % 5000;
	}
	redisContext *c = client(&d);
	int sent = 0, behind = 0, checked = 0, seen_lapsed = 0;
	/* Then on until an answer holds every record: a stale list waits 9
	 * times its last build, which the first one's wait for the apply
	 * threads may have made long (most lapse late in the stream). */
	long long records = 0;
	for (int after = 0; sent < TOTAL || (records < TOTAL && after++ < 2000);) {
		sent = send_records(producer, sent, TOTAL, who, NULL, amount, STEP_S, true);
		sleep_ms(2);
		redisReply *r = cmd(c, "LAPSED 1000");
		records = int_field(r, "records");
		cr_assert_leq(records, sent);
		behind += records < sent;
		/* Brute force at `records`: per customer revenue, purchases,
		 * distinct days, first and last time. */
		static long long revenue[CUSTOMERS], purchases[CUSTOMERS], first[CUSTOMERS],
			last[CUSTOMERS], days[CUSTOMERS], last_day[CUSTOMERS];
		memset(purchases, 0, sizeof purchases);
		long long watermark = 0;
		for (long long i = 0; i < records; i++) {
			int k = who[i];
			long long ts = 1700000000LL + i * STEP_S, day = ts / DAY_S;
			if (!purchases[k]) {
				revenue[k] = days[k] = 0;
				first[k] = ts;
				last_day[k] = -1;
			}
			revenue[k] += amount[i];
			purchases[k]++;
			last[k] = ts;
			days[k] += day != last_day[k]; /* times only grow */
			last_day[k] = day;
			watermark = ts;
		}
		int expected[CUSTOMERS], n = 0;
		for (int k = 0; k < CUSTOMERS; k++) {
			if (!purchases[k] || days[k] < 3)
				continue;
			long long idle = watermark - last[k];
			if (idle >= 30LL * DAY_S && idle * (days[k] - 1) > 3 * (last[k] - first[k]))
				expected[n++] = k;
		}
		for (int i = 1; i < n; i++) /* revenue descending, then id */
			for (int j = i; j > 0 && revenue[expected[j]] > revenue[expected[j - 1]]; j--) {
				int t = expected[j];
				expected[j] = expected[j - 1];
				expected[j - 1] = t;
			}
		cr_assert_eq(int_field(r, "lapsed_total"), n, "at %lld records", records);
		const redisReply *list = field(r, "lapsed");
		cr_assert_eq(list->elements, (size_t)n);
		for (int i = 0; i < n; i++) {
			char id[16];
			snprintf(id, sizeof id, "L%05d", expected[i]);
			const redisReply *x = list->element[i];
			cr_assert_str_eq(field(x, "customer")->str, id, "at %lld records, entry %d", records, i);
			cr_assert_eq(int_field(x, "revenue_minor"), revenue[expected[i]]);
			cr_assert_eq(int_field(x, "purchases"), purchases[expected[i]]);
			cr_assert_eq(int_field(x, "purchase_days"), days[expected[i]]);
		}
		seen_lapsed += n > 0;
		checked++;
		freeReplyObject(r);
	}
	char v[32];
	long beside = atol(info_value(c, "ranking", "lapsed_lists_beside_ingest", v, sizeof v));
	cr_log_info("%d LAPSED answers checked (%d with some lapsed), %d behind the records sent, "
		    "%ld lists made beside ingest", checked, seen_lapsed, behind, beside);
	char line[256];
	info_value(c, "ranking", "lapsed", line, sizeof line);
	cr_assert(strncmp(line, "count=", 6) == 0 && strstr(line, ",records="), "%s", line);
	cr_assert_leq(atoll(strstr(line, "records=") + 8), TOTAL, "%s", line);
	cr_assert_gt(seen_lapsed, 0, "nobody lapsed: the test proves little");
	cr_assert_gt(beside, 0, "no list was made beside ingest");
	cr_assert_gt(behind, 0, "no answer came from an older list: the test proves nothing");
	close(producer);
	redisFree(c);
	stop(&d);
}

/* A number after `"name":` in a JSON event, or -1. */
static long long event_number(const char *event, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\":", name);
	const char *at = strstr(event, key);
	return at ? atoll(at + strlen(key)) : -1;
}

/* A string after `"name":"` in a JSON event, into out ("" if absent). */
static void event_string(const char *event, const char *name, char *out, size_t size)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\":\"", name);
	const char *at = strstr(event, key);
	out[0] = 0;
	if (at)
		sscanf(at + strlen(key), "%31[^\"]", out);
	(void)size;
}

/*
 * Alerts while a producer streams records into several stores (stores S2
 * and S3 have 9 customers, who cross 10% of them back and forth; a fifth
 * of the records are refunds): evaluated from the
 * rankings published meanwhile (the ranker's, and store rankings made
 * again beside ingest), each push cites the records of the rankings it
 * comes from and must be true for them, against brute force over the
 * first `records` records sent (seeded): a key client added holds at
 * least 10% of the store's ranked revenue then, one removed less, and a
 * risk level is the store's then. Some pushes must come while records
 * are still streaming, from store rankings made beside ingest.
 */
Test(paretod, alerts_beside_ingest_are_true_for_their_records)
{
	enum { CUSTOMERS = 300, STORES = 4, FEW = 9, TOTAL = 60000 };
	seeded();
	struct daemon d;
	int producer = start_with_producer(&d, "5");
	static int who[TOTAL], store[TOTAL];
	static long amount[TOTAL];
	store_stream(TOTAL, CUSTOMERS, STORES, FEW, 5, who, store, amount);
	struct conn *sub = conn_open(&d);
	conn_command(sub, "HELLO 3");
	rv_free(rv_read(sub));
	conn_command(sub, "SUBSCRIBE alerts");
	rv_free(rv_read(sub));
	for (int sent = 0; sent < TOTAL;) {
		sent = send_records(producer, sent, TOTAL, who, store, amount, 1, false);
		sleep_ms(10);
	}
	close(producer);
	/* Every push before PING's answer. */
	conn_command(sub, "PING");
	static long long sums[STORES * CUSTOMERS];
	int pushes = 0, streaming = 0;
	for (;;) {
		struct rv *r = rv_read(sub);
		cr_assert_not_null(r);
		if (r->type != RV_PUSH) {
			rv_free(r);
			break;
		}
		const char *event = r->el[2]->str;
		long long records = event_number(event, "records");
		cr_assert(records > 0 && records <= TOTAL, "%s", event);
		streaming += records < TOTAL;
		char kind[32], scope[32], st_name[32], who_name[32];
		event_string(event, "event", kind, sizeof kind);
		event_string(event, "scope", scope, sizeof scope);
		event_string(event, "store", st_name, sizeof st_name);
		event_string(event, "customer", who_name, sizeof who_name);
		store_sums(sums, STORES, CUSTOMERS, who, store, amount, records);
		/* The scope's revenues then: a store's, or the company's. */
		long long revenue[CUSTOMERS] = { 0 };
		for (int st = 0; st < STORES; st++) {
			if (strcmp(scope, "store") == 0 && atoi(st_name + 1) != st)
				continue;
			for (int o = 0; o < CUSTOMERS; o++)
				revenue[o] += sums[st * CUSTOMERS + o];
		}
		long long total = 0, top = 0, n = 0;
		for (int o = 0; o < CUSTOMERS; o++) {
			if (revenue[o] <= 0)
				continue;
			total += revenue[o];
			top = revenue[o] > top ? revenue[o] : top;
			n++;
		}
		if (strcmp(kind, "risk_changed") == 0) {
			char to[32];
			event_string(event, "to", to, sizeof to);
			const char *risk = n == 1		 ? "mono"
					   : 2 * top >= total	 ? "critical"
					   : 5 * top >= 2 * total ? "high"
					   : 5 * top >= total	 ? "elevated"
					   : 10 * top >= total	 ? "key"
								 : "none";
			cr_assert_str_eq(to, risk, "%s", event);
		} else {
			int me = atoi(who_name + 1);
			bool key = revenue[me] > 0 && 10 * revenue[me] >= total;
			cr_assert_eq(key, strcmp(kind, "key_client_added") == 0, "%s", event);
		}
		pushes++;
		rv_free(r);
	}
	char v[32];
	redisContext *c = client(&d);
	long beside = atol(info_value(c, "ranking", "store_builds_beside_ingest", v, sizeof v));
	cr_log_info("%d pushes checked, %d while records streamed, %ld store builds beside ingest",
		    pushes, streaming, beside);
	cr_assert_gt(streaming, 0, "no push came while records streamed");
	cr_assert_gt(beside, 0, "no store ranking was built beside ingest");
	conn_close(sub);
	redisFree(c);
	stop(&d);
}

/* A producer streaming records of customers P000000.. into a feed socket,
 * made before the first is sent so that they come faster than paretod
 * takes them (it is ingesting the whole time). */
struct stream {
	const char *socket;
	int records, times; /* records made, sent `times` over */
};

/* Writes all of text to fd (a producer socket: writes may be short). */
static void write_all(int fd, const char *text, size_t len)
{
	for (size_t at = 0; at < len;) {
		ssize_t n = write(fd, text + at, len - at);
		cr_assert_gt(n, 0);
		at += (size_t)n;
	}
}

static void *stream_records(void *arg)
{
	const struct stream *st = arg;
	size_t cap = 64 + (size_t)st->records * 40, len = 0;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	len += (size_t)sprintf(text, "ts,customer_id,store_id,amount\n");
	for (int i = 0; i < st->records; i++)
		len += (size_t)sprintf(text + len, "%d,P%06d,S%d,%d.%02d\n", 1700000000 + i,
				       i % 50000, i % 7, 1 + i % 90, i % 100);
	int fd = connect_unix(st->socket);
	cr_assert_geq(fd, 0);
	size_t header = strlen("ts,customer_id,store_id,amount\n");
	for (int t = 0; t < st->times; t++)
		write_all(fd, text + (t ? header : 0), len - (t ? header : 0));
	close(fd);
	free(text);
	return NULL;
}

/*
 * CUSTOMER and SCORE beside heavy ingest on 2 apply threads (small buffers:
 * many handoffs): each reads the customer's history on the thread that owns
 * him while the server goes on, and must see every record accepted before
 * it (INGEST on the same connection just before, pipelined with PINGs whose
 * replies must stay in order). Some must have waited (INFO), and a client
 * that half-closes while its request waits still gets every answer.
 */
Test(paretod, history_read_beside_ingest_sees_every_record_before_it)
{
	enum { CUSTOMERS = 40, ROUNDS = 400 };
	/* The server pauses after parking a client, so that most histories
	 * are read by the time it looks: still the client waits its turn. */
	setenv("PARETO_HISTORY_WAIT_DELAY_US", "300", 1);
	struct daemon d;
	char feed_socket[160];
	start_fed_by_producers(&d, feed_socket, "1");
	struct stream st = { feed_socket, 1000000, 4 };
	pthread_t producer;
	cr_assert_eq(pthread_create(&producer, NULL, stream_records, &st), 0);
	redisContext *c = client(&d);
	for (int i = 0; i < 1000 && info_number(c, "records") < 20000; i++)
		sleep_ms(2); /* until the stream is under way */
	/* New customers through a second producer, each asked for until he is
	 * ranked: an answer that ranks him knows him (its history holds every
	 * record of the ranking it cites, taken again once the history is
	 * read), as rtprobe fresh counts on. */
	int probe_fd = connect_unix(feed_socket);
	cr_assert_geq(probe_fd, 0);
	static const char probe_header[] = "ts,customer_id,store_id,amount\n";
	cr_assert_eq(write(probe_fd, probe_header, sizeof probe_header - 1),
		     (ssize_t)sizeof probe_header - 1);
	for (int p = 0; p < 40; p++) {
		char line[64];
		int n = sprintf(line, "1700000000,N%05d,S1,2.00\n", p);
		cr_assert_eq(write(probe_fd, line, (size_t)n), n);
		for (bool ranked = false; !ranked;) {
			redisReply *r = cmd(c, "CUSTOMER N%05d", p);
			ranked = field(r, "rank")->type == REDIS_REPLY_INTEGER;
			if (ranked)
				cr_assert(field(r, "known")->integer == 1 && int_field(r, "purchases") == 1,
					  "N%05d ranked but not known", p);
			freeReplyObject(r);
		}
	}
	close(probe_fd);
	int bought[CUSTOMERS] = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int z = i % CUSTOMERS;
		bought[z]++;
		redisAppendCommand(c, "INGEST %d,Z%03d,S1,1.25", 1600000000 + i, z);
		redisAppendCommand(c, i % 4 ? "CUSTOMER Z%03d" : "SCORE Z%03d", z);
		redisAppendCommand(c, "PING");
		redisReply *r;
		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
		cr_assert_eq(int_field(r, "accepted"), 1);
		freeReplyObject(r);
		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
		cr_assert_eq(field(r, "known")->integer, 1, "Z%03d, round %d", z, i);
		if (i % 4)
			cr_assert_eq(int_field(r, "purchases"), bought[z], "Z%03d, round %d", z, i);
		freeReplyObject(r);
		cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
		cr_assert_str_eq(r->str, "PONG", "replies out of order");
		freeReplyObject(r);
	}
	/* Half-closed with a history request in the input. */
	struct conn *h = conn_open(&d);
	conn_send(h, "CUSTOMER Z001\r\nPING\r\n");
	shutdown(h->fd, SHUT_WR);
	struct rv *v = rv_read(h);
	cr_assert_eq(rv_field(v, "purchases")->integer, bought[1]);
	rv_free(v);
	v = rv_read(h);
	cr_assert_str_eq(v->str, "PONG");
	rv_free(v);
	cr_assert_null(rv_read(h), "the server should close after answering");
	conn_close(h);
	long long waited = info_number(c, "history_reads_waited");
	cr_log_info("%lld history reads waited for an apply thread", waited);
	cr_assert_gt(waited, 0, "no read waited: the test proves nothing");
	pthread_join(producer, NULL);
	redisFree(c);
	stop(&d);
}

/* ---- first rankings made beside ingest ------------------------------------ */

/* A producer that sends the same block of records until told to stop. */
struct endless {
	const char *socket;
	atomic_bool stop;
};

static void *stream_until_stopped(void *arg)
{
	struct endless *st = arg;
	enum { RECORDS = 20000 };
	char *text = malloc((size_t)RECORDS * 40 + 64);
	cr_assert_not_null(text);
	size_t len = 0;
	for (int i = 0; i < RECORDS; i++)
		len += (size_t)sprintf(text + len, "%d,Q%05d,S%d,%d.%02d\n", 1700000000 + i * 600,
				       i % 5000, i % 7, 1 + i % 90, i % 100);
	int fd = connect_unix(st->socket);
	cr_assert_geq(fd, 0);
	static const char header[] = "ts,customer_id,store_id,amount\n";
	cr_assert_eq(write(fd, header, sizeof header - 1), (ssize_t)sizeof header - 1);
	while (!atomic_load(&st->stop))
		write_all(fd, text, len);
	close(fd);
	free(text);
	return NULL;
}

/*
 * The first company ranking of a window, the first store rankings and the
 * first LAPSED list, asked for while a feed streams, are made beside ingest
 * and only their client waits for them. Every such build is made 400 ms
 * slower (PARETO_BUILD_DELAY_MS): the asking client's answer comes after
 * that, while PINGs on another connection are each answered within 200 ms
 * and records go on being ingested; INFO counts the waits. (Made on the
 * server thread, or waited for there, as they were, each PING waited the
 * 400 ms.)
 */
Test(paretod, first_rankings_are_made_beside_ingest)
{
	setenv("PARETO_BUILD_DELAY_MS", "400", 1);
	struct daemon d;
	char feed_socket[160];
	start_fed_by_producers(&d, feed_socket, "50");
	unsetenv("PARETO_BUILD_DELAY_MS");
	struct endless st = { feed_socket, false };
	pthread_t producer;
	cr_assert_eq(pthread_create(&producer, NULL, stream_until_stopped, &st), 0);
	redisContext *c = client(&d);
	for (int i = 0; i < 1000 && info_number(c, "records") < 20000; i++)
		sleep_ms(2);
	/* A client that leaves while it waits: freed once its wait is over
	 * (under ASan, a use after free or a leak otherwise). */
	struct conn *leaver = conn_open(&d);
	conn_send(leaver, "KEYCLIENTS STORE S2 WINDOW quarter\r\n");
	sleep_ms(20);
	conn_close(leaver);
	struct conn *asker = conn_open(&d);
	static const char *const firsts[] = {
		"RANK Q00001", "TOP 3 STORE S1", "LAPSED 5", "PARETO WINDOW month", "STORES 2 WINDOW year",
	};
	for (size_t q = 0; q < sizeof firsts / sizeof *firsts; q++) {
		long long before = info_number(c, "records");
		/* A PING pipelined behind it is answered after it, in order. */
		conn_send(asker, firsts[q]);
		conn_send(asker, "\r\nPING\r\n");
		int64_t asked = now_ms(), worst = 0;
		int pings = 0;
		for (struct pollfd pfd = { asker->fd, POLLIN, 0 }; poll(&pfd, 1, 0) == 0;) {
			cr_assert_lt(now_ms() - asked, 10000, "%s: no answer", firsts[q]);
			int64_t t = now_ms();
			redisReply *r = cmd(c, "PING");
			cr_assert_str_eq(r->str, "PONG");
			freeReplyObject(r);
			worst = now_ms() - t > worst ? now_ms() - t : worst;
			pings++;
			sleep_ms(10);
		}
		struct rv *r = rv_read(asker);
		int64_t took = now_ms() - asked;
		cr_assert_not_null(r);
		cr_assert_neq(r->type, RV_ERROR, "%s: %s", firsts[q], r->str);
		cr_assert_not_null(rv_field(r, "records"), "%s: no records", firsts[q]);
		rv_free(r);
		r = rv_read(asker);
		cr_assert(r && r->type == RV_STRING && strcmp(r->str, "PONG") == 0,
			  "%s: the PING after it", firsts[q]);
		rv_free(r);
		long long after = info_number(c, "records");
		cr_log_info("%s: answered in %lld ms, %d PINGs meanwhile, the slowest %lld ms; "
			    "%lld records ingested", firsts[q], (long long)took, pings,
			    (long long)worst, after - before);
		cr_assert_geq(took, 350, "%s: answered before its build could be made", firsts[q]);
		cr_assert_lt(worst, 200, "%s: a PING waited %lld ms", firsts[q], (long long)worst);
		cr_assert_gt(after, before, "%s: nothing ingested meanwhile", firsts[q]);
	}
	cr_assert_geq(info_number(c, "first_builds_waited"), 6);
	atomic_store(&st.stop, true);
	conn_close(asker);
	pthread_join(producer, NULL);
	redisFree(c);
	stop(&d);
}

/* ---- random commands ------------------------------------------------------ */

/* Writes one command of argc arguments (any bytes) as a RESP array. */
static void send_args(struct conn *c, int argc, char *const *argv, const size_t *len)
{
	size_t cap = 64, n = 0;
	for (int i = 0; i < argc; i++)
		cap += len[i] + 32;
	char *buf = malloc(cap);
	n += (size_t)sprintf(buf, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		n += (size_t)sprintf(buf + n, "$%zu\r\n", len[i]);
		memcpy(buf + n, argv[i], len[i]);
		n += len[i];
		memcpy(buf + n, "\r\n", 2);
		n += 2;
	}
	cr_assert_eq(write(c->fd, buf, n), (ssize_t)n);
	free(buf);
}

/* A random argument: ids, stores, numbers at their edges, keywords, bytes;
 * with `streamed`, also ids and stores of the producer tests' streams. */
static size_t random_arg(char *out, size_t cap, bool streamed)
{
	if (streamed && rand() % 3 == 0)
		return (size_t)snprintf(out, cap, rand() % 2 ? "K%05d" : "S%d", rand() % 40);
	static const char *const words[] = {
		"C1", "C2", "C5", "NOBODY", "S1", "S2", "S9", "0", "1", "-1", "10", "20",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"99999999999999999999999", "1e3", "0x10", "", " ", "WINDOW", "STORE", "all",
		"month", "quarter", "year", "prev_month", "prev_quarter", "decade", "ingest",
		"ranking", "metrics", "everything", "server", "GET", "SET", "save", "SETNAME",
		"LIST", "COUNT", "DOCS", "INFO", "alerts", "2", "3", "AUTH", "SETNAME", "x",
	};
	int kind = rand() % 10;
	if (kind < 7) {
		const char *w = words[rand() % (sizeof words / sizeof *words)];
		return (size_t)snprintf(out, cap, "%s", w);
	}
	size_t n = kind < 9 ? (size_t)(rand() % 40) : (size_t)(rand() % 20000);
	n = n < cap ? n : cap;
	for (size_t i = 0; i < n; i++)
		out[i] = kind == 7 ? (char)(' ' + rand() % 95) : (char)rand();
	return n;
}

/* What bursts of random commands got back. */
struct tally {
	int errors, answers;
	long long accepted; /* records INGEST accepted */
};

/*
 * Sends n commands named from names[0..count) with up to max_args random
 * arguments (for INGEST, half the time a record line of time ts), pipelined,
 * then reads their replies: exactly one each, an error in Redis' form (an
 * upper case word first) or an answer.
 */
static void random_burst(struct conn *raw, const char *const *names, size_t count, int n,
			 int max_args, bool streamed, int ts, struct tally *t)
{
	static char arg_bytes[6][20000];
	char *argv[7];
	size_t len[7];
	for (int k = 0; k < n; k++) {
		const char *name = names[rand() % count];
		argv[0] = (char *)name;
		len[0] = strlen(name);
		int argc = 1 + rand() % max_args;
		for (int i = 1; i < argc; i++) {
			argv[i] = arg_bytes[i - 1];
			if (strcmp(name, "INGEST") == 0 && rand() % 2)
				len[i] = (size_t)snprintf(arg_bytes[i - 1], sizeof arg_bytes[0],
							  "%d,K%05d,S%d,%d.%02d", ts, rand() % 40,
							  rand() % 20, rand() % 100, rand() % 100);
			else
				len[i] = random_arg(arg_bytes[i - 1], sizeof arg_bytes[0], streamed);
		}
		send_args(raw, argc, argv, len);
	}
	for (int k = 0; k < n; k++) {
		struct rv *r = rv_read(raw);
		cr_assert_not_null(r, "no reply %d of %d", k + 1, n);
		cr_assert_neq(r->type, RV_PUSH, "a push nobody asked for");
		if (r->type == RV_ERROR) {
			size_t word = strspn(r->str, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
			cr_assert(word > 0 && r->str[word] == ' ', "error \"%s\"", r->str);
			t->errors++;
		} else {
			const struct rv *a = r->type == RV_ARRAY || r->type == RV_MAP
						     ? rv_field(r, "accepted") : NULL;
			if (a)
				t->accepted += a->integer;
			t->answers++;
		}
		rv_free(r);
	}
}

/*
 * Thousands of random commands (every command name but those that end the
 * connection or the server, or answer more than once, and unknown ones)
 * with random arguments, pipelined, under RESP2 and RESP3 by turns: each
 * gets exactly one well-formed reply, and nothing they do changes the
 * totals.
 */
Test(paretod, random_commands_get_one_well_formed_reply_each)
{
	seeded();
	struct daemon d;
	start(&d, small_feed, NULL);
	redisContext *c = client(&d);
	redisReply *before = cmd(c, "PARETO");
	struct conn *raw = conn_open(&d);
	static const char *const names[] = {
		"PING", "HELLO", "INFO", "CUSTOMER", "RANK", "TOP", "PARETO", "RISK", "KEYCLIENTS",
		"STORES", "LAPSED", "SCORE", "CLIENT", "COMMAND", "CONFIG", "ECHO", "RESET",
		"rank", "Top", "FROB", "HELP", "",
	};
	struct tally t = { 0 };
	for (int burst = 0; burst < 200; burst++)
		random_burst(raw, names, sizeof names / sizeof *names, 1 + rand() % 50, 6, false, 0,
			     &t);
	cr_log_info("%d errors, %d answers", t.errors, t.answers);
	cr_assert_gt(t.errors, 100);
	cr_assert_gt(t.answers, 100);
	conn_close(raw);
	redisReply *after = cmd(c, "PARETO");
	cr_assert_eq(int_field(after, "records"), 7);
	cr_assert_eq(int_field(after, "revenue_minor"), int_field(before, "revenue_minor"));
	cr_assert_eq(int_field(after, "customers"), int_field(before, "customers"));
	freeReplyObject(before);
	freeReplyObject(after);
	redisFree(c);
	stop(&d);
}

/*
 * The same while a producer streams 60,000 records into 20 stores (ranker,
 * store rankings and LAPSED's list made beside ingest, alerts evaluated),
 * with INGEST among the commands (its lines random, most of them refused):
 * one well-formed reply each, and at the end the engine holds exactly the
 * records streamed plus those INGEST accepted.
 */
Test(paretod, random_commands_while_ingesting)
{
	enum { TOTAL = 60000 };
	seeded();
	struct daemon d;
	int producer = start_with_producer(&d, "1");
	static int who[TOTAL], store[TOTAL];
	static long amount[TOTAL];
	store_stream(TOTAL, 40, 20, 5, 9, who, store, amount);
	struct conn *raw = conn_open(&d);
	static const char *const names[] = {
		"CUSTOMER", "RANK", "TOP", "PARETO", "RISK", "KEYCLIENTS", "STORES", "LAPSED",
		"SCORE", "INFO", "INGEST", "HELLO", "PING", "RESET",
	};
	struct tally t = { 0 };
	for (int sent = 0; sent < TOTAL;) {
		sent = send_records(producer, sent, TOTAL, who, store, amount, 60, false);
		random_burst(raw, names, sizeof names / sizeof *names, 1 + rand() % 40, 5, true,
			     1700000000 + sent * 60, &t);
	}
	close(producer);
	conn_close(raw);
	cr_log_info("%d errors, %d answers, %lld lines ingested", t.errors, t.answers, t.accepted);
	cr_assert_gt(t.answers, 200);
	cr_assert_gt(t.accepted, 0);
	redisContext *c = client(&d);
	long long records = 0;
	for (int i = 0; i < 500 && records != TOTAL + t.accepted; i++, sleep_ms(10))
		records = info_number(c, "records");
	cr_assert_eq(records, TOTAL + t.accepted);
	cr_log_info("%lld store builds and %lld LAPSED lists beside ingest",
		    info_number(c, "store_builds_beside_ingest"),
		    info_number(c, "lapsed_lists_beside_ingest"));
	redisFree(c);
	stop(&d);
}
