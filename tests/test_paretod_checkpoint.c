/* test_paretod_checkpoint.c - paretod's checkpoints end to end: a file feed
 * stopped (SHUTDOWN, SIGTERM) and resumed with more lines appended counts
 * every record once, as `pareto report --json` over the whole file; a
 * followed file stopped inside a line; SAVE and INFO persistence; a file
 * replaced while the daemon was down is read from its start; a corrupt
 * checkpoint or another --scale stops the start, naming the file. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_json.h"
#include "support_paretod.h"
#include "support_run.h"

#define RECORDS 6000
#define CUSTOMERS 900

/* Waits (at most 10 s) until INFO's records reaches want. */
static void wait_records(redisContext *c, long long want)
{
	long long v = -1;
	for (int64_t t0 = now_ms(); now_ms() - t0 < 10000; sleep_ms(2))
		if ((v = info_number(c, "records")) == want)
			return;
	cr_assert_fail("records is %lld after 10 s, expected %lld", v, want);
}

static void checkpoint_path(const struct daemon *d, char *out, size_t size)
{
	snprintf(out, size, "%s/state.ckpt", d->dir);
}

/* PARETO, TOP 25, STORES, LAPSED and CUSTOMER of some ids equal the
 * report's over `feed`, and INFO's counters its records and rejects. */
static void compare_with_report(redisContext *c, const char *feed)
{
	char *ids[] = { "C0000", "C0001", "C0007", "C0042", "C0100", "C0299", "NOBODY" };
	int nids = sizeof ids / sizeof ids[0];
	struct tj *j = report_json(feed, "all", "25", "10", ids, nids);
	static const char *const not_summary[] = { "top", "stores", "customer_detail", "lapsed",
						   "lapsed_total", NULL };
	struct rv *r = cmd_rv(c, "PARETO");
	compare(r, j, "PARETO", not_summary);
	rv_free(r);
	r = cmd_rv(c, "TOP 25");
	compare(rv_field(r, "top"), tj_key(j, "top"), "TOP", NULL);
	rv_free(r);
	r = cmd_rv(c, "STORES");
	compare(rv_field(r, "stores"), tj_key(j, "stores"), "STORES", NULL);
	rv_free(r);
	r = cmd_rv(c, "LAPSED 10");
	compare(rv_field(r, "lapsed"), tj_key(j, "lapsed"), "LAPSED", NULL);
	rv_free(r);
	const struct tj *detail = tj_key(j, "customer_detail");
	for (int i = 0; i < nids; i++) {
		char path[64];
		r = cmd_rv(c, "CUSTOMER %s", ids[i]);
		snprintf(path, sizeof path, "CUSTOMER %s", ids[i]);
		compare(r, tj_at(detail, (size_t)i), path, NULL);
		rv_free(r);
	}
	cr_assert_eq(info_number(c, "records"), (long long)tj_key(j, "records")->integer);
	cr_assert_eq(info_number(c, "rejected"), (long long)tj_key(j, "rejected")->integer);
	tj_free(j);
}

/* The feed's lines: a header, random records, and a few bad lines. */
static char *feed_text(unsigned seed, size_t *len)
{
	char **lines = random_lines(seed, RECORDS, CUSTOMERS);
	/* Bad lines counted as rejects, before and after where the files are cut. */
	free(lines[100]);
	lines[100] = strdup("not,a,valid,line,at,all\n");
	free(lines[RECORDS - 100]);
	lines[RECORDS - 100] = strdup("2024-01-01,C0001,S1,twelve\n");
	char *text = csv_of(lines, RECORDS, 0, 1, len);
	free_lines(lines, RECORDS);
	return text;
}

/* Where the text's line `n` (0: the header) starts. */
static size_t line_start(const char *text, int n)
{
	const char *p = text;
	for (int i = 0; i < n; i++)
		p = strchr(p, '\n') + 1;
	return (size_t)(p - text);
}

static void start(struct daemon *d, const char *feed, const char *ckpt, const char *interval)
{
	daemon_start(d, "--feed", feed, "--checkpoint", ckpt, "--checkpoint-interval", interval,
		     "--quiet", NULL);
}

/* Starts the daemon again on the whole feed (len bytes): its answers must
 * be the report's, its byte count the file's; then stops it for good. */
static void restart_and_compare(struct daemon *d, const char *source, const char *ckpt,
				const char *interval, size_t len)
{
	start(d, source, ckpt, interval);
	redisContext *c = client(d);
	wait_records(c, RECORDS - 2);
	compare_with_report(c, d->feed);
	cr_assert_eq(info_number(c, "feed_bytes"), (long long)len);
	daemon_shutdown(d, c);
	daemon_remove_dir(d);
}

/* A daemon in a fresh directory (checkpoint ckpt there) that has read the
 * whole feed of `seed` (its text in *text, *len bytes): a client on it. */
static redisContext *start_fed(struct daemon *d, char *ckpt, size_t size, unsigned seed,
			       const char *interval, char **text, size_t *len)
{
	daemon_dir(d);
	checkpoint_path(d, ckpt, size);
	*text = feed_text(seed, len);
	write_bytes(d->feed, "w", *text, *len);
	start(d, d->feed, ckpt, interval);
	redisContext *c = client(d);
	wait_records(c, RECORDS - 2);
	return c;
}

/* The daemon stopped by a signal must exit 0. */
static void stop_with(struct daemon *d, int signo)
{
	cr_assert_eq(kill(d->pid, signo), 0);
	daemon_wait_exit(d);
}

/*
 * A file in three parts: the daemon reads the first, stops (stop_signal 0:
 * SHUTDOWN), the second is appended and it starts again, and so on; at the
 * end its answers are the report's over the whole file.
 */
static void resume_file(int stop_signal, unsigned seed)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160];
	checkpoint_path(&d, ckpt, sizeof ckpt);
	size_t len;
	char *text = feed_text(seed, &len);
	size_t cut[] = { line_start(text, 2000), line_start(text, 4500), len };
	int records_at[] = { 1999 - 1, 4499 - 1, RECORDS - 2 }; /* one bad line before 2000, one after 4500 */
	size_t written = 0;
	for (int part = 0; part < 3; part++) {
		write_bytes(d.feed, part ? "a" : "w", text + written, cut[part] - written);
		written = cut[part];
		start(&d, d.feed, ckpt, "60");
		redisContext *c = client(&d);
		wait_records(c, records_at[part]);
		cr_assert_eq(info_number(c, "feed_bytes"), (long long)written);
		if (part == 2)
			compare_with_report(c, d.feed);
		if (stop_signal) {
			redisFree(c);
			stop_with(&d, stop_signal);
		} else {
			daemon_shutdown(&d, c);
		}
		struct stat st;
		cr_assert_eq(stat(ckpt, &st), 0, "no checkpoint after part %d", part);
		if (part)
			cr_assert(log_has(&d, "resuming at byte"), "part %d did not resume", part);
	}
	cr_assert(!log_has(&d, "reading it from its start"));
	free(text);
	daemon_remove_dir(&d);
}

Test(paretod_checkpoint, shutdown_and_resume_with_lines_appended)
{
	resume_file(0, 11);
}

Test(paretod_checkpoint, sigterm_writes_the_final_checkpoint)
{
	resume_file(SIGTERM, 12);
}

/* A daemon directory with its checkpoint path (ckpt[160]), its feed file
 * followed (source[200]: follow:PATH), and the text of feed `seed` (*len
 * bytes; not written yet). */
static char *followed_feed(struct daemon *d, char *ckpt, char *source, unsigned seed,
			   size_t *len)
{
	daemon_dir(d);
	checkpoint_path(d, ckpt, 160);
	snprintf(source, 200, "follow:%s", d->feed);
	return feed_text(seed, len);
}

/* A followed file stopped inside a line: the restart reads that line whole. */
Test(paretod_checkpoint, followed_file_stopped_inside_a_line)
{
	struct daemon d;
	char ckpt[160], source[200];
	size_t len;
	char *text = followed_feed(&d, ckpt, source, 13, &len);
	size_t half = line_start(text, 3000) + 9; /* 9 bytes into a record */
	write_bytes(d.feed, "w", text, half);
	start(&d, source, ckpt, "60");
	redisContext *c = client(&d);
	wait_records(c, 2998); /* the bad line 100 is not a record */
	stop_with(&d, SIGINT);
	redisFree(c);
	write_bytes(d.feed, "a", text + half, len - half);
	restart_and_compare(&d, source, ckpt, "60", len);
	free(text);
}

/* SAVE replies +OK with the file in place; INFO persistence tells of it;
 * the periodic checkpoint runs while records change; NOSAVE writes none. */
Test(paretod_checkpoint, save_info_interval_and_nosave)
{
	struct daemon d;
	char ckpt[160], *text;
	size_t len;
	redisContext *c = start_fed(&d, ckpt, sizeof ckpt, 14, "1", &text, &len);
	redisReply *r = cmd(c, "SAVE");
	cr_assert(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0, "SAVE: %s", r->str);
	freeReplyObject(r);
	struct stat st;
	cr_assert_eq(stat(ckpt, &st), 0);
	cr_assert_geq(info_number(c, "checkpoints_saved"), 1);
	cr_assert_eq(info_number(c, "last_checkpoint_bytes"), (long long)st.st_size);
	cr_assert_eq(info_number(c, "records_since_last_checkpoint"), 0);
	r = cmd(c, "INFO persistence");
	cr_assert_not_null(strstr(r->str, "last_checkpoint_status:ok"), "%s", r->str);
	cr_assert_not_null(strstr(r->str, ckpt), "%s", r->str);
	freeReplyObject(r);
	r = cmd(c, "INFO metrics");
	cr_assert_not_null(strstr(r->str, "\npareto_checkpoints_total "), "%s", r->str);
	cr_assert_not_null(strstr(r->str, "\npareto_checkpoint_last_duration_seconds "));
	freeReplyObject(r);
	/* New records through INGEST: the interval (1 s) writes them. */
	long long saved = info_number(c, "checkpoints_saved");
	r = cmd(c, "INGEST 2024-05-01,C0001,S1,10.00");
	freeReplyObject(r);
	for (int64_t t0 = now_ms(); info_number(c, "checkpoints_saved") == saved; sleep_ms(20))
		cr_assert_lt(now_ms() - t0, 5000, "no periodic checkpoint");
	cr_assert_eq(info_number(c, "records_since_last_checkpoint"), 0);
	/* Nothing changed: no more checkpoints. */
	saved = info_number(c, "checkpoints_saved");
	sleep_ms(2200);
	cr_assert_eq(info_number(c, "checkpoints_saved"), saved);
	/* More records, then SHUTDOWN NOSAVE: the file keeps the earlier state. */
	r = cmd(c, "INGEST 2024-05-02,C0002,S1,10.00");
	freeReplyObject(r);
	r = redisCommand(c, "SHUTDOWN NOSAVE");
	if (r)
		freeReplyObject(r);
	daemon_shutdown(&d, c);
	start(&d, d.feed, ckpt, "0");
	c = client(&d);
	cr_assert_eq(info_number(c, "records"), RECORDS - 2 + 1);
	cr_assert_eq(info_number(c, "checkpoint_loaded"), 1);
	daemon_shutdown(&d, c);
	free(text);
	daemon_remove_dir(&d);
}

/*
 * BGSAVE writes on a thread of its own (held 1.5 s longer by a test hook
 * before the engine's bytes, and 1.5 s after them): meanwhile the server
 * answers at once, from published rankings and from the engine, and holds
 * its feeds (lines appended to a followed file are read only after the
 * engine's bytes); INGEST waits for those; a second BGSAVE is refused; the
 * rest of the file comes in while the checkpoint file is finished. The file
 * holds exactly the records of its start.
 */
Test(paretod_checkpoint, bgsave_answers_while_it_writes_and_holds_the_feeds)
{
	struct daemon d;
	char ckpt[160], source[200];
	size_t len;
	char *text = followed_feed(&d, ckpt, source, 15, &len);
	size_t first = line_start(text, 4000);
	write_bytes(d.feed, "w", text, first);
	setenv("PARETO_CHECKPOINT_DELAY_MS", "1500", 1);
	setenv("PARETO_CHECKPOINT_DONE_DELAY_MS", "1500", 1);
	start(&d, source, ckpt, "0");
	unsetenv("PARETO_CHECKPOINT_DELAY_MS");
	unsetenv("PARETO_CHECKPOINT_DONE_DELAY_MS");
	redisContext *c = client(&d);
	wait_records(c, 3998); /* the bad line 100 is not a record */
	redisReply *r = cmd(c, "PARETO"); /* a published ranking of every record */
	freeReplyObject(r);
	int64_t t0 = now_ms();
	r = cmd(c, "BGSAVE");
	cr_assert(r->type == REDIS_REPLY_STATUS && strstr(r->str, "started"), "BGSAVE: %s", r->str);
	freeReplyObject(r);
	write_bytes(d.feed, "a", text + first, len - first);
	for (int i = 0; i < 20; i++) {
		int64_t asked = now_ms();
		r = cmd(c, i % 2 ? "CUSTOMER C0007" : "RANK C0042");
		cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "query %d: %s", i, r->type == REDIS_REPLY_ERROR ? r->str : "");
		freeReplyObject(r);
		cr_assert_lt(now_ms() - asked, 500, "query %d took %lld ms during BGSAVE", i,
			     (long long)(now_ms() - asked));
		sleep_ms(20);
	}
	cr_assert_lt(now_ms() - t0, 1400, "the queries outlasted the held write");
	cr_assert_eq(info_number(c, "checkpoint_in_progress"), 1);
	cr_assert_eq(info_number(c, "records"), 3998, "feed lines decoded during the write");
	r = cmd(c, "BGSAVE");
	cr_assert(r->type == REDIS_REPLY_ERROR && strstr(r->str, "already"), "%s", r->str);
	freeReplyObject(r);
	r = cmd(c, "INGEST 2024-05-01,C0001,S1,10.00");
	freeReplyObject(r);
	cr_assert_geq(now_ms() - t0, 1500, "INGEST did not wait for the engine's bytes");
	/* The file's last 1.5 s (its fsync, held by the other hook) do not
	 * hold ingest: the rest of the file comes in meanwhile. */
	wait_records(c, RECORDS - 2 + 1);
	cr_assert_eq(info_number(c, "checkpoint_in_progress"), 1, "the fsync did not wait");
	for (int64_t t1 = now_ms(); info_number(c, "checkpoint_in_progress"); sleep_ms(20))
		cr_assert_lt(now_ms() - t1, 5000, "the checkpoint never ended");
	cr_assert_eq(info_number(c, "checkpoints_saved"), 1);
	r = redisCommand(c, "SHUTDOWN NOSAVE");
	if (r)
		freeReplyObject(r);
	daemon_shutdown(&d, c);
	daemon_start(&d, "--checkpoint", ckpt, "--quiet", NULL);
	c = client(&d);
	cr_assert_eq(info_number(c, "records"), 3998, "the checkpoint holds other records");
	daemon_shutdown(&d, c);
	free(text);
	daemon_remove_dir(&d);
}

/* The kernel closes the ring's sockets a moment after a killed daemon is
 * gone (io_uring's teardown runs later): waits until no one listens. */
static void wait_unanswered(const struct daemon *d)
{
	for (int fd, i = 0; (fd = connect_unix(d->socket)) >= 0; i++) {
		close(fd);
		cr_assert_lt(i, 500, "the killed daemon's socket still answers");
		sleep_ms(10);
	}
}

/* Sends a producer connection: the opening line naming it (if name),
 * the feed's header, then its records first..last (1-based, inclusive);
 * closes it unless keep. Returns the socket. */
static int send_records(const struct daemon *d, const char *name, const char *text, int first,
			int last, bool keep)
{
	char sock[200], opening[120];
	snprintf(sock, sizeof sock, "%s/prod.sock", d->dir);
	int fd = connect_unix(sock);
	cr_assert_geq(fd, 0, "connect %s", sock);
	int n = name ? snprintf(opening, sizeof opening, "#pareto-producer %s %d\n", name, first) : 0;
	size_t header = line_start(text, 1), from = line_start(text, first),
	       to = line_start(text, last + 1);
	cr_assert(write(fd, opening, (size_t)n) == n && write(fd, text, header) == (ssize_t)header &&
		  write(fd, text + from, to - from) == (ssize_t)(to - from));
	if (!keep)
		close(fd);
	return fd;
}

/* INFO producers' next record of producer `name`, waiting (at most 10 s)
 * until it is `want`. */
static void wait_next(redisContext *c, const char *name, long long want)
{
	char field[100];
	snprintf(field, sizeof field, "producer_%s:next=", name);
	long long v = -1;
	for (int64_t t0 = now_ms(); now_ms() - t0 < 10000; sleep_ms(5)) {
		redisReply *r = cmd(c, "INFO producers");
		const char *at = strstr(r->str, field);
		v = at ? atoll(at + strlen(field)) : -1;
		freeReplyObject(r);
		if (v == want)
			return;
	}
	cr_assert_fail("%snext is %lld after 10 s, expected %lld", field, v, want);
}

/*
 * A producer that names itself is counted exactly once across a
 * reconnection and a crash. It sends records 1-4000 and a checkpoint is
 * written; it reconnects resending from 1 and goes on to 5000; paretod
 * is killed (no checkpoint at stop). Started again from the checkpoint, it
 * says saved=4001; the producer resends from 3500 to the end. Every
 * answer then is the report's over the whole feed, the bad lines 101 and
 * 5901 counted once each. A second connection under a name already
 * connected is refused; a malformed opening line closes its connection.
 */
Test(paretod_checkpoint, named_producer_counted_once_across_reconnections_and_a_crash)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160], source[200];
	checkpoint_path(&d, ckpt, sizeof ckpt);
	snprintf(source, sizeof source, "unix:%s/prod.sock", d.dir);
	size_t len;
	char *text = feed_text(16, &len);
	write_bytes(d.feed, "w", text, len); /* for the report to compare with */
	const char *args[] = { "--feed", source, "--checkpoint", ckpt, "--checkpoint-interval",
			       "0", "--quiet", NULL };
	daemon_start(&d, args[0], args[1], args[2], args[3], args[4], args[5], args[6], NULL);
	redisContext *c = client(&d);
	send_records(&d, "shop-7", text, 1, 4000, false);
	wait_next(c, "shop-7", 4001);
	wait_records(c, 3999);
	redisReply *r = cmd(c, "SAVE");
	freeReplyObject(r);
	send_records(&d, "shop-7", text, 1, 5000, false);
	wait_next(c, "shop-7", 5001);
	wait_records(c, 4999);
	cr_assert_eq(info_number(c, "producer_duplicates"), 4000);
	cr_assert_eq(info_number(c, "rejected"), 1, "a bad line resent was counted again");
	/* One connection per name; an opening line that does not parse. */
	int held = send_records(&d, "shop-7", text, 5001, 5001, true);
	wait_next(c, "shop-7", 5002);
	/* (Only the opening line: paretod closes these after it.) */
	int again = connect_unix(source + 5);
	cr_assert(write(again, "#pareto-producer shop-7 5002\n", 29) == 29);
	char byte;
	cr_assert_eq(read(again, &byte, 1), 0, "a second connection as shop-7 stays open");
	close(again);
	close(held);
	int bad = connect_unix(source + 5);
	cr_assert(write(bad, "#pareto-producer two words 1\n", 29) == 29);
	cr_assert_eq(read(bad, &byte, 1), 0, "a bad opening line's connection stays open");
	close(bad);
	wait_log(&d, "connected already", 5000);
	wait_log(&d, "the opening line is not", 5000);
	redisFree(c);
	int status;
	cr_assert_eq(kill(d.pid, SIGKILL), 0); /* a crash: no checkpoint at stop */
	cr_assert_eq(waitpid(d.pid, &status, 0), d.pid);
	wait_unanswered(&d);
	daemon_start(&d, args[0], args[1], args[2], args[3], args[4], args[5], args[6], NULL);
	c = client(&d);
	r = cmd(c, "INFO producers");
	cr_assert_not_null(strstr(r->str, "producer_shop-7:next=4001,saved=4001,connected=0"), "%s",
			   r->str);
	freeReplyObject(r);
	wait_records(c, 3999);
	send_records(&d, "shop-7", text, 3500, RECORDS, false);
	wait_next(c, "shop-7", RECORDS + 1);
	wait_records(c, RECORDS - 2);
	compare_with_report(c, d.feed);
	cr_assert_eq(info_number(c, "producer_duplicates"), 501);
	daemon_shutdown(&d, c);
	free(text);
	daemon_remove_dir(&d);
}

/* Without --checkpoint, SAVE, BGSAVE and SHUTDOWN SAVE are errors. */
Test(paretod_checkpoint, save_without_a_checkpoint_path)
{
	struct daemon d;
	daemon_dir(&d);
	daemon_start(&d, NULL);
	redisContext *c = client(&d);
	for (int i = 0; i < 2; i++) {
		redisReply *r = cmd(c, i ? "BGSAVE" : "SAVE");
		cr_assert_eq(r->type, REDIS_REPLY_ERROR);
		cr_assert_not_null(strstr(r->str, "--checkpoint"), "%s", r->str);
		freeReplyObject(r);
	}
	redisReply *r;
	/* SHUTDOWN SAVE cannot save: it refuses, and the server goes on. */
	r = cmd(c, "SHUTDOWN SAVE");
	cr_assert_eq(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	r = cmd(c, "PING");
	cr_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	daemon_shutdown(&d, c);
	daemon_remove_dir(&d);
}

/* A file replaced while the daemon was down is not resumed: it is read
 * from its start, and its records add to the checkpoint's. */
Test(paretod_checkpoint, replaced_file_read_from_its_start)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160];
	checkpoint_path(&d, ckpt, sizeof ckpt);
	size_t len;
	char *text = feed_text(15, &len);
	size_t cut = line_start(text, 3000);
	write_bytes(d.feed, "w", text, cut);
	start(&d, d.feed, ckpt, "60");
	redisContext *c = client(&d);
	wait_records(c, 2998);
	daemon_shutdown(&d, c);
	/* Another file under the name: the header and the rest of the lines. */
	unlink(d.feed);
	write_bytes(d.feed, "w", text, line_start(text, 1));
	write_bytes(d.feed, "a", text + cut, len - cut);
	start(&d, d.feed, ckpt, "60");
	c = client(&d);
	wait_records(c, RECORDS - 2);
	cr_assert(log_has(&d, "not the file the checkpoint read"));
	daemon_shutdown(&d, c);
	free(text);
	daemon_remove_dir(&d);
}

/* paretod must refuse to start (exit 1) with the file and the reason in the log. */
static void assert_start_refused(struct daemon *d, const char *ckpt, const char *scale,
				 const char *why)
{
	pid_t pid = daemon_spawn(d, "--checkpoint", ckpt, "--scale", scale, NULL);
	int status = 0;
	for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++)
		sleep_ms(10);
	char *log = read_text(d->log);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, log);
	cr_assert_not_null(strstr(log, ckpt), "%s", log);
	cr_assert_not_null(strstr(log, why), "expected '%s' in:\n%s", why, log);
	free(log);
	struct stat st;
	cr_assert_neq(stat(d->socket, &st), 0, "the socket was left behind");
}

Test(paretod_checkpoint, corrupt_checkpoint_or_other_scale_refused)
{
	struct daemon d;
	char ckpt[160], *text;
	size_t len;
	daemon_shutdown(&d, start_fed(&d, ckpt, sizeof ckpt, 16, "60", &text, &len));
	assert_start_refused(&d, ckpt, "3", "--scale 2");
	size_t size;
	char *bytes = read_file(ckpt, &size);
	bytes[size / 2] ^= 4;
	write_bytes(ckpt, "w", bytes, size);
	assert_start_refused(&d, ckpt, "2", "checksum");
	write_bytes(ckpt, "w", bytes, size / 3);
	assert_start_refused(&d, ckpt, "2", "truncated");
	free(bytes);
	free(text);
	daemon_remove_dir(&d);
}

/* A checkpoint path whose directory cannot be written stops the start. */
Test(paretod_checkpoint, unwritable_checkpoint_directory_refused)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160];
	snprintf(ckpt, sizeof ckpt, "%s/missing/state.ckpt", d.dir);
	assert_start_refused(&d, ckpt, "2", "cannot write checkpoints in");
	daemon_remove_dir(&d);
}

/*
 * A crash (SIGKILL: no final checkpoint) after the periodic checkpoint:
 * the restart goes back to the checkpoint's state and positions and reads
 * on from there, so the records read after it are counted once, not lost
 * and not twice.
 */
Test(paretod_checkpoint, crash_after_a_periodic_checkpoint)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160], source[200];
	checkpoint_path(&d, ckpt, sizeof ckpt);
	snprintf(source, sizeof source, "follow:%s", d.feed);
	size_t len;
	char *text = feed_text(17, &len);
	size_t cut[] = { line_start(text, 2000) + 5, line_start(text, 4000) + 3 };
	write_bytes(d.feed, "w", text, cut[0]);
	start(&d, source, ckpt, "1");
	redisContext *c = client(&d);
	wait_records(c, 1998);
	for (int64_t t0 = now_ms(); info_number(c, "records_since_last_checkpoint") ||
				    info_number(c, "checkpoints_saved") == 0; sleep_ms(20))
		cr_assert_lt(now_ms() - t0, 5000, "no periodic checkpoint");
	/* An unfinished line waiting is no change: no more checkpoints. */
	long long saved = info_number(c, "checkpoints_saved");
	sleep_ms(2200);
	cr_assert_eq(info_number(c, "checkpoints_saved"), saved, "checkpoints of nothing new");
	write_bytes(d.feed, "a", text + cut[0], cut[1] - cut[0]);
	wait_records(c, 3998);
	redisFree(c);
	cr_assert_eq(kill(d.pid, SIGKILL), 0);
	int status;
	cr_assert_eq(waitpid(d.pid, &status, 0), d.pid);
	wait_unanswered(&d);
	write_bytes(d.feed, "a", text + cut[1], len - cut[1]);
	restart_and_compare(&d, source, ckpt, "1", len);
	free(text);
}

/* A binary feed (pareto convert) resumes at its record boundary too. */
Test(paretod_checkpoint, binary_file_resumes)
{
	struct daemon d;
	daemon_dir(&d);
	char ckpt[160];
	checkpoint_path(&d, ckpt, sizeof ckpt);
	size_t csv_len, len;
	char *csv = feed_text(18, &csv_len);
	char *bin = binary_of(&d, csv, csv_len, &len); /* the two bad lines left out */
	size_t size = binary_record_bytes(bin);
	cr_assert_eq(len, 16 + (size_t)(RECORDS - 2) * size);
	size_t cut = 16 + 2500 * size;
	write_bytes(d.feed, "w", bin, cut);
	start(&d, d.feed, ckpt, "60");
	redisContext *c = client(&d);
	wait_records(c, 2500);
	daemon_shutdown(&d, c);
	write_bytes(d.feed, "a", bin + cut, len - cut);
	start(&d, d.feed, ckpt, "60");
	c = client(&d);
	wait_records(c, RECORDS - 2);
	char resume[64];
	snprintf(resume, sizeof resume, "resuming at byte %zu (line 2500)", cut);
	cr_assert(log_has(&d, resume), "expected '%s' in the log", resume);
	compare_with_report(c, d.feed);
	daemon_shutdown(&d, c);
	free(bin);
	free(csv);
	daemon_remove_dir(&d);
}
