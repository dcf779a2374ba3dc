/*
 * support_paretod.h - the harness the paretod end-to-end suites share
 * (test_paretod, test_paretod_feeds): a daemon in a fresh directory of its
 * own, started on a Unix socket and stopped with SHUTDOWN; hiredis clients
 * and RESP2 field lookups; a small RESP2/RESP3 reader; replies compared
 * with `pareto report --json`; a seeded random feed; small file and time
 * helpers.
 *
 * Every helper asserts (Criterion) instead of returning an error: a failure
 * ends the test with a message. The daemon runs with PR_SET_PDEATHSIG, so a
 * test that fails before stopping it takes it along.
 *
 * Linked only into the test_paretod* programs (it needs hiredis and their
 * PARETOD_BIN); see CMakeLists.txt.
 */
#ifndef PARETO_SUPPORT_PARETOD_H
#define PARETO_SUPPORT_PARETOD_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tj;

/* ---- the daemon ----------------------------------------------------------- */

/* Paths under its own directory; the log is the daemon's stderr. */
struct daemon {
	char dir[64];     /* /tmp/paretod-test-XXXXXX */
	char socket[100]; /* dir/p.sock, the query socket */
	char feed[128];   /* dir/feed.csv, for a suite that writes one */
	char log[128];    /* dir/paretod.log */
	pid_t pid;
};

/* Makes a fresh directory and fills in d's paths (not d->pid). */
void daemon_dir(struct daemon *d);

/* Spawns paretod --socket d->socket with the extra arguments (NULL-ended
 * array, or a NULL-ended list); returns its pid without waiting for it. */
pid_t daemon_spawn_argv(struct daemon *d, char *const *extra);
/* The same with standard input from stdin_fd (-1: /dev/null); give it a
 * pipe's read end made with O_CLOEXEC, so that the daemon does not hold
 * the write end open. */
pid_t daemon_spawn_stdin(struct daemon *d, char *const *extra, int stdin_fd);
pid_t daemon_spawn(struct daemon *d, const char *first, ...);

/* Waits (at most 5 s) until d's socket accepts a connection; fails with the
 * log if the daemon exits meanwhile. */
void daemon_wait_listening(struct daemon *d);

/* daemon_spawn into d->pid, then daemon_wait_listening. */
void daemon_start(struct daemon *d, const char *first, ...);

/*
 * Sends SHUTDOWN on c (when c is connected; then frees it), waits at most
 * 5 s and asserts that the daemon exited with status 0 (the log in the
 * message otherwise).
 */
void daemon_shutdown(struct daemon *d, redisContext *c);

/* Waits at most 5 s for the daemon to exit and asserts status 0 (the log
 * in the message otherwise). */
void daemon_wait_exit(struct daemon *d);

/* rm -rf d->dir. */
void daemon_remove_dir(const struct daemon *d);

/* ---- clients -------------------------------------------------------------- */

/* A connected stream socket with 10 s send and receive timeouts, or -1. */
int connect_unix(const char *path);

/* A hiredis client on d's socket with a 10 s timeout. */
redisContext *client(const struct daemon *d);

/* A command's reply (printf-style, as redisCommand); NULL fails the test. */
redisReply *cmd(redisContext *c, const char *fmt, ...);

/* A field of a RESP2 flat field/value array; absent fails the test. */
const redisReply *field(const redisReply *r, const char *name);
/* A field that must be an integer. */
long long int_field(const redisReply *r, const char *name);

/* A field:value line of INFO (every section), as a number; absent fails. */
long long info_number(redisContext *c, const char *name);

/* Whether the daemon's log holds text. */
bool log_has(const struct daemon *d, const char *text);
/* Waits up to ms for the log to have text; fails the test (with the log)
 * if it does not. */
void wait_log(const struct daemon *d, const char *text, int ms);

/* The CSV text converted to binary records by `pareto convert` (through
 * d->dir/part.csv and part.prb): malloc'ed, *len bytes. */
char *binary_of(const struct daemon *d, const char *csv, size_t csv_len, size_t *len);
/* The record size a binary feed's header declares (asserting it is ours). */
size_t binary_record_bytes(const char *bin);

/* ---- a RESP2/RESP3 reader ------------------------------------------------- */

/*
 * A reply as read off the wire by rv_read, in either protocol: simple and
 * bulk strings are RV_STRING (a double keeps its text in str too), a RESP2
 * field/value array stays an RV_ARRAY, a RESP3 map is an RV_MAP of 2 x
 * pairs elements. Each element, str and el are malloc'ed; rv_free frees the
 * whole tree.
 */
enum rv_type { RV_STRING, RV_ERROR, RV_INT, RV_DOUBLE, RV_NULL, RV_BOOL, RV_ARRAY, RV_MAP,
	       RV_PUSH };

struct rv {
	enum rv_type type;
	char *str;
	size_t len;
	long long integer;
	double dval;
	size_t n; /* elements (a map: 2 x pairs) */
	struct rv **el;
};

struct conn {
	int fd;
	char buf[1 << 16];
	size_t pos, len;
};

/* A raw client connection on d's socket (connect_unix's timeouts). */
struct conn *conn_open(const struct daemon *d);
void conn_close(struct conn *c);
/* Writes text as it is (inline commands, pipelines, broken requests). */
void conn_send(struct conn *c, const char *text);
/* A RESP array of bulk strings from a space-separated command (printf-style). */
void conn_command(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one reply; NULL at end of stream or on a timeout. */
struct rv *rv_read(struct conn *c);
void rv_free(struct rv *v);
/* A field of a map or flat field/value array; NULL if absent. */
const struct rv *rv_field(const struct rv *m, const char *name);

/* cmd's reply as a struct rv (RESP2, as rv_read reads it); rv_free it. */
struct rv *cmd_rv(redisContext *c, const char *fmt, ...);

/*
 * Asserts that a reply equals the report's JSON value j, recursively: an
 * object as a map or field/value array (its keys listed in skip, a
 * NULL-ended array or NULL, left out at this level only), an array entry
 * for entry, numbers as integers or as doubles printed %.15g, a bool as
 * RESP3 bool or integer. path names the place in failure messages.
 */
void compare(const struct rv *r, const struct tj *j, const char *path, const char *const *skip);

/* ---- the report to compare with ------------------------------------------- */

/*
 * `pareto report --json --top TOP --by-store [--lapsed LAPSED] --window W
 * [--customer ID]... --quiet FEED`, parsed; the caller frees it with
 * tj_free. lapsed may be NULL (no --lapsed).
 */
struct tj *report_json(const char *feed, const char *window, const char *top,
		       const char *lapsed, char **customers, int ncust);

/*
 * A random feed's data lines (seeded with srand): skewed customers (a tenth
 * of them buy much more), 5 stores, 700 days from 2023-01-01, refunds. Each
 * line is malloc'ed, as is the array.
 */
char **random_lines(unsigned seed, int records, int customers);
void free_lines(char **lines, int records);

/* The CSV header and the lines i with i % step == at, as one malloc'ed
 * text of *len bytes. */
char *csv_of(char **lines, int count, int at, int step, size_t *len);

/* ---- files and time ------------------------------------------------------- */

/* A file's whole text (malloc'ed); "" if it cannot be opened. */
char *read_text(const char *path);
/* fopen(path, mode) and write len bytes. */
void write_bytes(const char *path, const char *mode, const char *bytes, size_t len);

void sleep_ms(int ms);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t now_ms(void);

#endif
