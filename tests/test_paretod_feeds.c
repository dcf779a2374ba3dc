/* test_paretod_feeds.c - paretod's live sources end to end: tcp: producers
 * (several at once, random-size writes, CSV and binary) against `pareto
 * report --json` on the same records, on one apply thread and several; a
 * file, a pipe and unix: producers at once on 2, 3 and 4 apply threads;
 * producers that disconnect inside a line or a binary record; followed
 * files (appends, an unfinished last line, rotation by rename,
 * truncation); the --metrics-socket endpoint. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support_json.h"
#include "support_paretod.h"
#include "support_run.h"

/* ---- the daemon ----------------------------------------------------------- */

static void append_text(const char *path, const char *text)
{
	write_bytes(path, "a", text, strlen(text));
}

static int connect_tcp(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		cr_assert_gt(w, 0, "write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* SHUTDOWN: it must exit 0; the directory goes. */
static void stop(struct daemon *d)
{
	daemon_shutdown(d, redisConnectUnix(d->socket));
	daemon_remove_dir(d);
}

/* Waits (at most ms) until INFO's field reaches want; returns the time it took. */
static int64_t wait_info(redisContext *c, const char *name, long long want, int ms)
{
	int64_t t0 = now_ms();
	long long v = -1;
	while (now_ms() - t0 <= ms) {
		if ((v = info_number(c, name)) == want)
			return now_ms() - t0;
		sleep_ms(1);
	}
	cr_assert_fail("%s is %lld after %d ms, expected %lld", name, v, ms, want);
	return -1;
}

/*
 * Waits (at most ms) until the company ranking answers cite `records`
 * (PARETO's "records"). While a feed delivers, answers come from the
 * newest published ranking, which may be up to about --rank-interval-ms
 * behind INFO's count: a customer's revenue in CUSTOMER is his revenue
 * there.
 */
static void wait_ranked(redisContext *c, long long records, int ms)
{
	int64_t t0 = now_ms();
	long long cited = -1;
	while (now_ms() - t0 <= ms) {
		redisReply *r = cmd(c, "PARETO");
		cited = int_field(r, "records");
		freeReplyObject(r);
		if (cited == records)
			return;
		sleep_ms(1);
	}
	cr_assert_fail("the ranking cites %lld records after %d ms, expected %lld", cited, ms,
		       records);
}

/* The port a tcp: feed listens on, from its log line. */
static int tcp_port(const struct daemon *d)
{
	for (int i = 0; i < 200; i++) {
		char *log = read_text(d->log);
		const char *p = strstr(log, "listening for producers on 127.0.0.1:");
		int port = p ? atoi(p + strlen("listening for producers on 127.0.0.1:")) : 0;
		free(log);
		if (port)
			return port;
		sleep_ms(10);
	}
	cr_assert_fail("no tcp listener in the log");
	return 0;
}

/* ---- replies compared with the report's JSON (RESP2) ---------------------- */

/* PARETO, TOP 25, STORES and CUSTOMER of some ids equal the report's. */
static void compare_with_report(redisContext *c, const char *feed, const char *window)
{
	char *ids[] = { "C0000", "C0001", "C0007", "C0042", "C0100", "C0299", "NOBODY" };
	int nids = sizeof ids / sizeof ids[0];
	struct tj *j = report_json(feed, window, "25", NULL, ids, nids);
	static const char *const not_summary[] = { "top", "stores", "customer_detail", "lapsed",
						   "lapsed_total", NULL };
	char path[64];
	snprintf(path, sizeof path, "PARETO(%s)", window);
	struct rv *r = cmd_rv(c, "PARETO WINDOW %s", window);
	compare(r, j, path, not_summary);
	rv_free(r);
	r = cmd_rv(c, "TOP 25 WINDOW %s", window);
	compare(rv_field(r, "top"), tj_key(j, "top"), "TOP", NULL);
	rv_free(r);
	r = cmd_rv(c, "STORES WINDOW %s", window);
	compare(rv_field(r, "stores"), tj_key(j, "stores"), "STORES", NULL);
	rv_free(r);
	const struct tj *detail = tj_key(j, "customer_detail");
	for (int i = 0; i < nids; i++) {
		r = cmd_rv(c, "CUSTOMER %s WINDOW %s", ids[i], window);
		snprintf(path, sizeof path, "CUSTOMER %s", ids[i]);
		compare(r, tj_at(detail, (size_t)i), path, NULL);
		rv_free(r);
	}
	tj_free(j);
}

static const char header[] = "ts,customer_id,store_id,amount\n";

/* ---- tcp: producers ------------------------------------------------------- */

/* Writes the parts to their descriptors interleaved, in pieces of 1 byte
 * to 8 KiB picked at random (so lines, fields and binary records straddle
 * writes), closing each descriptor after its last byte. */
static void send_interleaved(int count, const int *fd, char *const *data, const size_t *len)
{
	size_t sent[8] = { 0 };
	cr_assert_leq(count, 8);
	for (int left = count; left;) {
		int p = rand() % count;
		if (sent[p] == len[p])
			continue;
		size_t n = 1 + (size_t)rand() % 8192;
		if (n > len[p] - sent[p])
			n = len[p] - sent[p];
		send_all(fd[p], data[p] + sent[p], n);
		sent[p] += n;
		if (sent[p] == len[p]) {
			close(fd[p]);
			left--;
		}
	}
}

/*
 * Five producers at once, three CSV and two binary, each with a share of a
 * random feed, written interleaved in random-size pieces: every answer
 * equals the report on the whole feed, with `threads` apply threads.
 */
static void tcp_producers(unsigned threads, const char *batch)
{
	enum { RECORDS = 6000, CUSTOMERS = 300, PRODUCERS = 5, BINARY = 2 };
	unsigned seed = (unsigned)time(NULL) + threads;
	cr_log_info("seed %u, %u apply threads", seed, threads);
	struct daemon d;
	daemon_dir(&d);
	char threads_text[8];
	snprintf(threads_text, sizeof threads_text, "%u", threads);
	daemon_start(&d, "--feed", "tcp:127.0.0.1:0", "--ingest-batch-bytes", batch, "--threads",
		     threads_text, NULL);
	int port = tcp_port(&d);
	char **lines = random_lines(seed, RECORDS, CUSTOMERS);
	char feed[160];
	snprintf(feed, sizeof feed, "%s/feed.csv", d.dir);
	size_t whole_len;
	char *whole = csv_of(lines, RECORDS, 0, 1, &whole_len);
	write_bytes(feed, "w", whole, whole_len);
	free(whole);

	char *data[PRODUCERS];
	size_t len[PRODUCERS];
	int fd[PRODUCERS];
	for (int p = 0; p < PRODUCERS; p++) {
		data[p] = csv_of(lines, RECORDS, p, PRODUCERS, &len[p]);
		if (p < BINARY) {
			char *csv = data[p];
			data[p] = binary_of(&d, csv, len[p], &len[p]);
			free(csv);
		}
		fd[p] = connect_tcp(port);
	}
	srand(seed);
	send_interleaved(PRODUCERS, fd, data, len);
	redisContext *c = client(&d);
	wait_info(c, "records", RECORDS, 10000);
	wait_info(c, "feeds_open", 0, 10000);
	cr_assert_eq(info_number(c, "apply_threads"), threads);
	cr_assert_eq(info_number(c, "rejected"), 0);
	cr_assert_eq(info_number(c, "truncated_disconnects"), 0);
	cr_assert_eq(info_number(c, "producers"), 0, "disconnected producers are dropped");
	const char *windows[] = { "all", "quarter", "prev-year" };
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++)
		compare_with_report(c, feed, windows[i]);
	cr_assert(log_has(&d, "tcp:127.0.0.1:0#5: producer connected from 127.0.0.1:"));
	cr_assert(log_has(&d, "producer disconnected: "));
	redisFree(c);
	for (int p = 0; p < PRODUCERS; p++)
		free(data[p]);
	free_lines(lines, RECORDS);
	stop(&d);
}

Test(paretod_feeds, tcp_producers_equal_the_report)
{
	tcp_producers(1, "4K");
}

Test(paretod_feeds, tcp_producers_on_three_apply_threads)
{
	tcp_producers(3, "1M");
}

/*
 * On `threads` apply threads, a random feed split four ways arrives at
 * once: a file feed, a pipe on standard input, and two unix: producers
 * (CSV and binary records), the last three written interleaved in
 * random-size pieces. Every answer equals the report on the whole feed.
 * The seed picks the bytes decoded per loop turn (4K to 1M) and, when odd,
 * buffers of 512 bytes (PARETO_APPLY_BUFFER_BYTES), so that owners get
 * many buffers and the server thread waits for them.
 */
static void sources_on_threads(unsigned threads)
{
	enum { RECORDS = 8000, CUSTOMERS = 400, PARTS = 4 };
	unsigned seed = (unsigned)time(NULL) + threads;
	static const char *const batches[] = { "4K", "64K", "1M" };
	const char *batch = batches[seed % 3];
	bool tiny = seed % 2;
	cr_log_info("seed %u, %u apply threads, ingest batch %s%s", seed, threads, batch,
		    tiny ? ", 512-byte buffers" : "");
	if (tiny)
		setenv("PARETO_APPLY_BUFFER_BYTES", "512", 1);
	struct daemon d;
	daemon_dir(&d);
	char **lines = random_lines(seed, RECORDS, CUSTOMERS);
	char feed[160], part[160], unix_path[160], unix_source[170], threads_text[8];
	snprintf(feed, sizeof feed, "%s/feed.csv", d.dir);
	snprintf(part, sizeof part, "%s/file-part.csv", d.dir); /* binary_of writes part.csv */
	snprintf(unix_path, sizeof unix_path, "%s/feed.sock", d.dir);
	snprintf(unix_source, sizeof unix_source, "unix:%s", unix_path);
	snprintf(threads_text, sizeof threads_text, "%u", threads);
	size_t whole_len, len[PARTS];
	char *whole = csv_of(lines, RECORDS, 0, 1, &whole_len);
	write_bytes(feed, "w", whole, whole_len);
	free(whole);
	char *data[PARTS];
	for (int p = 0; p < PARTS; p++)
		data[p] = csv_of(lines, RECORDS, p, PARTS, &len[p]);
	write_bytes(part, "w", data[0], len[0]);
	char *csv = data[3];
	data[3] = binary_of(&d, csv, len[3], &len[3]);
	free(csv);

	int pipe_fd[2];
	cr_assert_eq(pipe2(pipe_fd, O_CLOEXEC), 0);
	char *argv[] = { "--threads", threads_text, "--ingest-batch-bytes", (char *)batch,
			 "--feed", part, "--feed", "-", "--feed", unix_source, NULL };
	d.pid = daemon_spawn_stdin(&d, argv, pipe_fd[0]);
	close(pipe_fd[0]);
	daemon_wait_listening(&d);
	int fd[PARTS - 1] = { pipe_fd[1], connect_unix(unix_path), connect_unix(unix_path) };
	cr_assert(fd[1] >= 0 && fd[2] >= 0);
	srand(seed);
	send_interleaved(PARTS - 1, fd, data + 1, len + 1);
	redisContext *c = client(&d);
	wait_info(c, "records", RECORDS, 20000);
	wait_info(c, "feeds_open", 0, 10000);
	cr_assert_eq(info_number(c, "apply_threads"), threads);
	cr_assert_eq(info_number(c, "rejected"), 0);
	const char *windows[] = { "all", "quarter", "prev-year" };
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++)
		compare_with_report(c, feed, windows[i]);
	redisFree(c);
	for (int p = 0; p < PARTS; p++)
		free(data[p]);
	free_lines(lines, RECORDS);
	stop(&d);
	unsetenv("PARETO_APPLY_BUFFER_BYTES");
}

Test(paretod_feeds, file_pipe_and_producers_on_2_apply_threads)
{
	sources_on_threads(2);
}

Test(paretod_feeds, file_pipe_and_producers_on_3_apply_threads)
{
	sources_on_threads(3);
}

Test(paretod_feeds, file_pipe_and_producers_on_4_apply_threads)
{
	sources_on_threads(4);
}

/*
 * A CSV producer that goes away inside a line (over TCP) and a binary
 * producer that goes away inside a record (over a Unix socket, the same
 * code) each lose only that record: it is counted as truncated, logged, and
 * no total includes any part of it.
 */
Test(paretod_feeds, producers_disconnecting_mid_record)
{
	struct daemon d;
	daemon_dir(&d);
	char unix_path[160], unix_source[170];
	snprintf(unix_path, sizeof unix_path, "%s/feed.sock", d.dir);
	snprintf(unix_source, sizeof unix_source, "unix:%s", unix_path);
	daemon_start(&d, "--feed", "tcp:127.0.0.1:0", "--feed", unix_source, NULL);
	int port = tcp_port(&d);
	const char csv[] = "ts,customer_id,store_id,amount\n"
			   "2024-01-01,A,S1,10.00\n2024-01-02,B,S1,20.00\n2024-01-03,CUT,S1,5";
	int p1 = connect_tcp(port);
	send_all(p1, csv, sizeof csv - 1);
	const char bin_csv[] = "ts,customer_id,store_id,amount\n"
			       "2024-01-04,D,S2,1.00\n2024-01-05,E,S2,2.00\n2024-01-06,HALF,S2,4.00\n";
	size_t bin_len;
	char *bin = binary_of(&d, bin_csv, sizeof bin_csv - 1, &bin_len);
	size_t size = binary_record_bytes(bin);
	cr_assert_eq(size, 24, "ids up to 4 and 2 bytes: 18 + 4 + 2");
	cr_assert_eq(bin_len, 16 + 3 * size);
	int p2 = connect_unix(unix_path);
	cr_assert_geq(p2, 0);
	send_all(p2, bin, 16 + 2 * size + 10); /* 10 bytes into the third record */
	redisContext *c = client(&d);
	wait_info(c, "records", 4, 5000);
	close(p1);
	close(p2);
	wait_info(c, "feeds_open", 0, 5000);
	cr_assert_eq(info_number(c, "records"), 4);
	cr_assert_eq(info_number(c, "rejected"), 2);
	cr_assert_eq(info_number(c, "rejected_truncated"), 2);
	cr_assert_eq(info_number(c, "truncated_disconnects"), 2);
	redisReply *r = cmd(c, "PARETO");
	cr_assert_eq(int_field(r, "revenue_minor"), 1000 + 2000 + 100 + 200);
	cr_assert_eq(int_field(r, "records"), 4);
	freeReplyObject(r);
	const char *lost[] = { "CUT", "HALF" };
	for (int i = 0; i < 2; i++) {
		r = cmd(c, "CUSTOMER %s", lost[i]);
		cr_assert_eq(int_field(r, "revenue_minor"), 0, "%s was counted", lost[i]);
		freeReplyObject(r);
	}
	redisFree(c);
	free(bin);
	cr_assert(log_has(&d, "disconnected in the middle of a record; that record is counted "
			      "as truncated"));
	stop(&d);
}

/*
 * Feeds that wait stall nothing: with a producer connected but silent, one
 * stopped in the middle of a line, and a followed file with nothing new,
 * another producer's records are all counted and clients are answered
 * promptly while it streams.
 */
Test(paretod_feeds, waiting_feeds_stall_nothing)
{
	struct daemon d;
	daemon_dir(&d);
	char path[160], source[170];
	snprintf(path, sizeof path, "%s/quiet.csv", d.dir);
	snprintf(source, sizeof source, "follow:%s", path);
	write_bytes(path, "w", header, strlen(header));
	daemon_start(&d, "--feed", "tcp:127.0.0.1:0", "--feed", source, NULL);
	int port = tcp_port(&d);
	int silent = connect_tcp(port), stuck = connect_tcp(port);
	const char partial[] = "ts,customer_id,store_id,amount\n2024-01-01,STUCK,S1,";
	send_all(stuck, partial, sizeof partial - 1);
	int busy = connect_tcp(port);
	send_all(busy, header, strlen(header));
	redisContext *c = client(&d);
	int64_t slowest = 0;
	enum { CHUNKS = 50, PER_CHUNK = 200 };
	for (int k = 0; k < CHUNKS; k++) {
		char chunk[PER_CHUNK * 40];
		size_t len = 0;
		for (int i = 0; i < PER_CHUNK; i++)
			len += (size_t)sprintf(chunk + len, "2024-01-02,B%05d,S1,1.00\n", k * PER_CHUNK + i);
		send_all(busy, chunk, len);
		int64_t t0 = now_ms();
		redisReply *r = cmd(c, "PING");
		cr_assert_str_eq(r->str, "PONG");
		freeReplyObject(r);
		if (now_ms() - t0 > slowest)
			slowest = now_ms() - t0;
	}
	close(busy);
	wait_info(c, "records", CHUNKS * PER_CHUNK, 10000);
	cr_log_info("slowest PING while a producer streamed: %lld ms", (long long)slowest);
	cr_assert_lt(slowest, 500);
	cr_assert_eq(info_number(c, "feeds_open"), 3, "the silent, the stuck and the followed feed");
	cr_assert_eq(info_number(c, "rejected"), 0);
	close(silent);
	close(stuck);
	wait_info(c, "feeds_open", 1, 5000);
	cr_assert_eq(info_number(c, "rejected_truncated"), 1, "the stuck producer's line");
	redisFree(c);
	stop(&d);
}

/* tcp: specs that cannot work are refused at start with exit code 1. */
Test(paretod_feeds, bad_tcp_source_is_refused)
{
	const char *bad[] = { "tcp:127.0.0.1", "tcp:127.0.0.1:99999", "tcp:[::1:5",
			      "tcp:no-such-host.invalid:5000" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *argv[] = { PARETOD_BIN, "--socket", "/tmp/paretod-feeds-never.sock", "--feed",
				 (char *)bad[i], NULL };
		struct run_result rr;
		run_command(argv, NULL, &rr);
		cr_assert_eq(rr.exit_code, 1, "%s: exit %d: %s", bad[i], rr.exit_code, rr.err);
		cr_assert_not_null(strstr(rr.err, "cannot start"), "%s", rr.err);
		run_result_free(&rr);
	}
}

/* ---- followed files ------------------------------------------------------- */

/*
 * Appended lines are counted within a bounded wait (the promise is 10 ms;
 * the test allows 1 s on a loaded machine and logs what it saw); a last
 * line without its line end waits for it and is not a bad line.
 */
Test(paretod_feeds, followed_file_picks_up_appends)
{
	struct daemon d;
	char path[160], source[170];
	daemon_dir(&d);
	snprintf(path, sizeof path, "%s/followed.csv", d.dir);
	snprintf(source, sizeof source, "follow:%s", path);
	write_bytes(path, "w", header, strlen(header));
	append_text(path, "2024-01-01,A,S1,10.00\n2024-01-02,B,S1,20.00\n");
	daemon_start(&d, "--feed", source, NULL);
	redisContext *c = client(&d);
	wait_info(c, "records", 2, 5000);
	int64_t took[20];
	for (int i = 0; i < 20; i++) {
		char line[64];
		snprintf(line, sizeof line, "2024-01-03,N%02d,S1,1.00\n", i);
		append_text(path, line);
		took[i] = wait_info(c, "records", 3 + i, 1000);
	}
	/* Sorted: the median must be well within the promise even here. */
	for (int i = 1; i < 20; i++)
		for (int j = i; j > 0 && took[j - 1] > took[j]; j--) {
			int64_t t = took[j];
			took[j] = took[j - 1];
			took[j - 1] = t;
		}
	cr_log_info("appended lines counted within %lld ms (median), %lld ms (worst)",
		    (long long)took[10], (long long)took[19]);
	/* The promise is 10 ms; a shared 2-core CI machine under load gets twice that. */
	cr_assert_leq(took[10], 20, "median %lld ms", (long long)took[10]);
	/* An unfinished line waits: neither a record nor a reject. */
	append_text(path, "2024-01-04,C,S1,7");
	sleep_ms(100);
	cr_assert_eq(info_number(c, "records"), 22);
	cr_assert_eq(info_number(c, "rejected"), 0);
	append_text(path, "0.00\n");
	wait_info(c, "records", 23, 1000);
	wait_ranked(c, 23, 2000);
	redisReply *r = cmd(c, "CUSTOMER C");
	cr_assert_eq(int_field(r, "revenue_minor"), 7000, "the line was decoded before its end");
	freeReplyObject(r);
	cr_assert_eq(info_number(c, "feeds_open"), 1, "a followed file stays open");
	redisFree(c);
	stop(&d);
}

/*
 * Rotation by rename: the old file is read to its end (a last line without
 * its line end counts then), the new file from its start with its header.
 * Truncation: the file is read again from its start, with or without the
 * header written again.
 */
Test(paretod_feeds, followed_file_rotation_and_truncation)
{
	struct daemon d;
	char path[160], rotated[170], source[170];
	daemon_dir(&d);
	snprintf(path, sizeof path, "%s/followed.csv", d.dir);
	snprintf(rotated, sizeof rotated, "%s.1", path);
	snprintf(source, sizeof source, "follow:%s", path);
	write_bytes(path, "w", header, strlen(header));
	append_text(path, "2024-01-01,A,S1,10.00\n");
	daemon_start(&d, "--feed", source, NULL);
	redisContext *c = client(&d);
	wait_info(c, "records", 1, 5000);
	append_text(path, "2024-01-02,B,S1,20.00\n2024-01-03,LAST,S1,3.00");
	cr_assert_eq(rename(path, rotated), 0);
	/* The new file maps its columns in another order: its own header counts. */
	write_bytes(path, "w", "customer_id,amount,ts\nNEW,4.00,2024-01-04\n", 42);
	wait_info(c, "records", 4, 2000);
	wait_ranked(c, 4, 2000);
	redisReply *r = cmd(c, "CUSTOMER LAST");
	cr_assert_eq(int_field(r, "revenue_minor"), 300);
	freeReplyObject(r);
	r = cmd(c, "CUSTOMER NEW");
	cr_assert_eq(int_field(r, "revenue_minor"), 400);
	freeReplyObject(r);
	for (int i = 0; i < 100 && !log_has(&d, "rotated: the old file ended at"); i++)
		sleep_ms(10);
	cr_assert(log_has(&d, "rotated: the old file ended at"));
	/* Truncated, then written again without its header (copytruncate).
	 * Each time only once paretod has seen the truncation: a file cut
	 * and written longer than before in between looks like an append
	 * (to tail -F as well), and a loaded machine can delay the look. */
	write_bytes(path, "w", "", 0);
	wait_log(&d, "truncated to 0 bytes after 42 were read", 5000);
	append_text(path, "T1,1.00,2024-01-05\n");
	wait_info(c, "records", 5, 2000);
	/* Truncated, then written again with its header. */
	write_bytes(path, "w", "", 0);
	wait_log(&d, "truncated to 0 bytes after 19 were read", 5000);
	append_text(path, "customer_id,amount,ts\nT2,2.00,2024-01-06\n");
	wait_info(c, "records", 6, 2000);
	cr_assert_eq(info_number(c, "rejected"), 0);
	wait_ranked(c, 6, 2000);
	r = cmd(c, "CUSTOMER T1");
	cr_assert_eq(int_field(r, "revenue_minor"), 100);
	freeReplyObject(r);
	r = cmd(c, "CUSTOMER T2");
	cr_assert_eq(int_field(r, "revenue_minor"), 200);
	freeReplyObject(r);
	/* Truncated under an unfinished line (read first): that line is
	 * lost and counted. */
	long long bytes = info_number(c, "feed_bytes");
	append_text(path, "T3,3.0");
	wait_info(c, "feed_bytes", bytes + 6, 2000);
	write_bytes(path, "w", "", 0);
	wait_log(&d, "truncated to 0 bytes after 47 were read", 5000);
	append_text(path, "T4,4.00,2024-01-07\n");
	wait_info(c, "records", 7, 2000);
	cr_assert_eq(info_number(c, "rejected_truncated"), 1);
	cr_assert(log_has(&d, "truncated to 0 bytes"));
	redisFree(c);
	stop(&d);
}

/*
 * A followed file of binary records: a record written in two pieces is
 * decoded once, whole; after a truncation, records written without the
 * header are read under the old one.
 */
Test(paretod_feeds, followed_binary_file)
{
	struct daemon d;
	daemon_dir(&d);
	const char csv[] = "ts,customer_id,store_id,amount\n"
			   "2024-01-01,A,S1,1.00\n2024-01-02,B,S1,2.00\n2024-01-03,C,S1,4.00\n";
	size_t len;
	char *bin = binary_of(&d, csv, sizeof csv - 1, &len);
	size_t size = binary_record_bytes(bin);
	cr_assert_eq(size, 24, "ids up to 1 and 2 bytes: 18 + 1 + 2, padded");
	cr_assert_eq(len, 16 + 3 * size);
	char path[160], source[170];
	snprintf(path, sizeof path, "%s/followed.prb", d.dir);
	snprintf(source, sizeof source, "follow:%s", path);
	write_bytes(path, "w", bin, 16 + size);
	daemon_start(&d, "--feed", source, NULL);
	redisContext *c = client(&d);
	wait_info(c, "records", 1, 5000);
	write_bytes(path, "a", bin + 16 + size, 17);
	sleep_ms(100);
	cr_assert_eq(info_number(c, "records"), 1);
	cr_assert_eq(info_number(c, "rejected"), 0);
	write_bytes(path, "a", bin + 16 + size + 17, size - 17);
	wait_info(c, "records", 2, 1000);
	/* Truncated, then records only: the old header applies. */
	write_bytes(path, "w", "", 0);
	sleep_ms(100);
	write_bytes(path, "a", bin + 16 + 2 * size, size);
	wait_info(c, "records", 3, 2000);
	cr_assert_eq(info_number(c, "rejected"), 0);
	wait_ranked(c, 3, 2000);
	redisReply *r = cmd(c, "PARETO");
	cr_assert_eq(int_field(r, "revenue_minor"), 700);
	freeReplyObject(r);
	free(bin);
	redisFree(c);
	stop(&d);
}

/* A followed file that does not exist yet is picked up when it appears. */
Test(paretod_feeds, followed_file_created_later)
{
	struct daemon d;
	char path[160], source[170];
	daemon_dir(&d);
	snprintf(path, sizeof path, "%s/later.csv", d.dir);
	snprintf(source, sizeof source, "follow:%s", path);
	daemon_start(&d, "--feed", source, NULL);
	redisContext *c = client(&d);
	sleep_ms(50);
	cr_assert_eq(info_number(c, "records"), 0);
	write_bytes(path, "w", header, strlen(header));
	append_text(path, "2024-01-01,A,S1,10.00\n");
	wait_info(c, "records", 1, 2000);
	redisFree(c);
	stop(&d);
}

/* ---- the metrics socket --------------------------------------------------- */

/* Sends a request, reads the whole response (the server closes). */
static char *http(const char *socket_path, const char *request)
{
	int fd = connect_unix(socket_path);
	cr_assert_geq(fd, 0, "connect %s: %s", socket_path, strerror(errno));
	send_all(fd, request, strlen(request));
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + len, cap - len - 1);
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	return buf;
}

Test(paretod_feeds, metrics_socket_serves_prometheus_text)
{
	struct daemon d;
	daemon_dir(&d);
	const char *dir = d.dir;
	char conf[160], metrics[160], feed[160], text[400];
	snprintf(conf, sizeof conf, "%s/paretod.conf", dir);
	snprintf(metrics, sizeof metrics, "%s/metrics.sock", dir);
	snprintf(feed, sizeof feed, "%s/feed.csv", dir);
	write_bytes(feed, "w", header, strlen(header));
	append_text(feed, "2024-01-01,A,S1,10.00\n2024-01-02,B,S1,20.00\nbad line\n");
	/* From the config file, as every option. */
	snprintf(text, sizeof text, "metrics-socket = %s\nfeed = %s\n", metrics, feed);
	write_bytes(conf, "w", text, strlen(text));
	daemon_start(&d, "--config", conf, NULL);
	redisContext *c = client(&d);
	wait_info(c, "feeds_open", 0, 5000);
	redisFree(c);
	struct stat st;
	cr_assert_eq(stat(metrics, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660);

	char *r = http(metrics, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
	cr_assert_eq(strncmp(r, "HTTP/1.0 200 OK\r\n", 17), 0, "%s", r);
	cr_assert_not_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4"), "%s", r);
	const char *body = strstr(r, "\r\n\r\n");
	cr_assert_not_null(body);
	body += 4;
	const char *cl = strstr(r, "Content-Length: ");
	cr_assert_not_null(cl);
	cr_assert_eq((size_t)atol(cl + 16), strlen(body), "Content-Length");
	cr_assert_not_null(strstr(body, "\npareto_records_total 2\n"), "%s", body);
	cr_assert_not_null(strstr(body, "pareto_rejected_lines_total{reason=\"field-count\"} 1\n"),
			   "%s", body);
	cr_assert_not_null(strstr(body, "# TYPE pareto_records_total counter\n"));
	free(r);

	r = http(metrics, "HEAD /metrics HTTP/1.0\r\n\r\n");
	cr_assert_eq(strncmp(r, "HTTP/1.0 200 OK\r\n", 17), 0, "%s", r);
	cr_assert_str_eq(strstr(r, "\r\n\r\n"), "\r\n\r\n", "HEAD has no body");
	free(r);
	r = http(metrics, "GET /other HTTP/1.0\r\n\r\n");
	cr_assert_eq(strncmp(r, "HTTP/1.0 404 ", 13), 0, "%s", r);
	free(r);
	r = http(metrics, "POST /metrics HTTP/1.0\r\n\r\n");
	cr_assert_eq(strncmp(r, "HTTP/1.0 405 ", 13), 0, "%s", r);
	free(r);
	/* Several scrapes at once, one of them slow to send its request. */
	int slow = connect_unix(metrics);
	send_all(slow, "GET /met", 8);
	r = http(metrics, "GET / HTTP/1.0\n\n");
	cr_assert_eq(strncmp(r, "HTTP/1.0 200 OK\r\n", 17), 0, "%s", r);
	free(r);
	send_all(slow, "rics HTTP/1.0\r\n\r\n", 17);
	char buf[64] = "";
	cr_assert_gt(read(slow, buf, sizeof buf - 1), 0);
	cr_assert_eq(strncmp(buf, "HTTP/1.0 200 OK", 15), 0, "%s", buf);
	close(slow);

	stop(&d);
	cr_assert_neq(stat(metrics, &st), 0, "the metrics socket file is left behind");
}
