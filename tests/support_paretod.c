/* support_paretod.c - see support_paretod.h. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pareto/record.h"
#include "support_json.h"
#include "support_paretod.h"
#include "support_run.h"

/* ---- the daemon ----------------------------------------------------------- */

void daemon_dir(struct daemon *d)
{
	snprintf(d->dir, sizeof d->dir, "/tmp/paretod-test-XXXXXX");
	cr_assert_not_null(mkdtemp(d->dir));
	snprintf(d->socket, sizeof d->socket, "%s/p.sock", d->dir);
	snprintf(d->feed, sizeof d->feed, "%s/feed.csv", d->dir);
	snprintf(d->log, sizeof d->log, "%s/paretod.log", d->dir);
}

pid_t daemon_spawn_argv(struct daemon *d, char *const *extra)
{
	return daemon_spawn_stdin(d, extra, -1);
}

pid_t daemon_spawn_stdin(struct daemon *d, char *const *extra, int stdin_fd)
{
	char *argv[64];
	int n = 0;
	argv[n++] = PARETOD_BIN;
	argv[n++] = "--socket";
	argv[n++] = d->socket;
	for (; *extra && n < 62; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* A failed or timed-out test's process exits at once: take the
		 * daemon along. SIGKILL, not SIGTERM: a daemon the test caught
		 * hanging would not stop on SIGTERM, and went on spinning beside
		 * every later run (five of them, found after a broken build's
		 * tests timed out). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		dup2(stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY), 0);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static pid_t spawn_va(struct daemon *d, const char *first, va_list ap)
{
	char *extra[40];
	int n = 0;
	for (const char *a = first; a && n < 39; a = va_arg(ap, const char *))
		extra[n++] = (char *)a;
	extra[n] = NULL;
	return daemon_spawn_argv(d, extra);
}

pid_t daemon_spawn(struct daemon *d, const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	pid_t pid = spawn_va(d, first, ap);
	va_end(ap);
	return pid;
}

void daemon_wait_listening(struct daemon *d)
{
	for (int i = 0; i < 500; i++) {
		int fd = connect_unix(d->socket);
		if (fd >= 0) {
			close(fd);
			return;
		}
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			char *log = read_text(d->log);
			cr_assert_fail("paretod exited (%d): %s", status, log);
		}
		sleep_ms(10);
	}
	cr_assert_fail("paretod did not listen on %s", d->socket);
}

void daemon_start(struct daemon *d, const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	d->pid = spawn_va(d, first, ap);
	va_end(ap);
	daemon_wait_listening(d);
}

void daemon_shutdown(struct daemon *d, redisContext *c)
{
	if (c && !c->err) {
		redisReply *r = redisCommand(c, "SHUTDOWN");
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	daemon_wait_exit(d);
}

void daemon_wait_exit(struct daemon *d)
{
	int status = 0;
	for (int i = 0; i < 500 && waitpid(d->pid, &status, WNOHANG) == 0; i++)
		sleep_ms(10);
	char *log = read_text(d->log);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d; log:\n%s",
		  status, log);
	free(log);
}

void daemon_remove_dir(const struct daemon *d)
{
	char command[200];
	snprintf(command, sizeof command, "rm -rf %s", d->dir);
	cr_assert_eq(system(command), 0);
}

/* ---- clients -------------------------------------------------------------- */

int connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

redisContext *client(const struct daemon *d)
{
	redisContext *c = redisConnectUnix(d->socket);
	cr_assert(c && !c->err, "connect: %s", c ? c->errstr : "?");
	struct timeval tv = { 10, 0 };
	redisSetTimeout(c, tv);
	return c;
}

static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
	redisReply *r = redisvCommand(c, fmt, ap);
	cr_assert_not_null(r, "%s: %s", fmt, c->errstr);
	return r;
}

redisReply *cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcmd(c, fmt, ap);
	va_end(ap);
	return r;
}

const redisReply *field(const redisReply *r, const char *name)
{
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "not an array (type %d: %s)", r->type,
		     r->type == REDIS_REPLY_ERROR ? r->str : "");
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (strcmp(r->element[i]->str, name) == 0)
			return r->element[i + 1];
	cr_assert_fail("no field %s", name);
	return NULL;
}

long long int_field(const redisReply *r, const char *name)
{
	const redisReply *v = field(r, name);
	cr_assert_eq(v->type, REDIS_REPLY_INTEGER, "%s is not an integer", name);
	return v->integer;
}

long long info_number(redisContext *c, const char *name)
{
	redisReply *r = cmd(c, "INFO everything");
	cr_assert_eq(r->type, REDIS_REPLY_STRING);
	char key[96];
	snprintf(key, sizeof key, "\n%s:", name);
	const char *p = strstr(r->str, key);
	cr_assert_not_null(p, "INFO lacks %s", name);
	long long v = atoll(p + strlen(key));
	freeReplyObject(r);
	return v;
}

bool log_has(const struct daemon *d, const char *text)
{
	char *log = read_text(d->log);
	bool has = strstr(log, text) != NULL;
	free(log);
	return has;
}

void wait_log(const struct daemon *d, const char *text, int ms)
{
	for (int64_t t0 = now_ms(); !log_has(d, text) && now_ms() - t0 < ms;)
		sleep_ms(10);
	cr_assert(log_has(d, text), "no '%s' in the log:\n%s", text, read_text(d->log));
}

char *binary_of(const struct daemon *d, const char *csv, size_t csv_len, size_t *len)
{
	char in[160], out[160];
	snprintf(in, sizeof in, "%s/part.csv", d->dir);
	snprintf(out, sizeof out, "%s/part.prb", d->dir);
	write_bytes(in, "w", csv, csv_len);
	char *argv[] = { PARETO_BIN, "convert", in, out, NULL };
	struct run_result rr;
	run_command(argv, NULL, &rr);
	cr_assert_eq(rr.exit_code, 0, "pareto convert: %s", rr.err);
	run_result_free(&rr);
	char *bytes = read_file(out, len);
	cr_assert_eq(memcmp(bytes, "PRTREC02", 8), 0);
	return bytes;
}

size_t binary_record_bytes(const char *bin)
{
	struct pr_bin_layout l = { 0 };
	cr_assert_eq(pr_bin_header_decode((const unsigned char *)bin, &l), 0);
	return l.record_bytes;
}

/* ---- a RESP2/RESP3 reader ------------------------------------------------- */

static int conn_byte(struct conn *c)
{
	if (c->pos == c->len) {
		ssize_t n = read(c->fd, c->buf, sizeof c->buf);
		if (n <= 0)
			return -1;
		c->pos = 0;
		c->len = (size_t)n;
	}
	return (unsigned char)c->buf[c->pos++];
}

static bool conn_line(struct conn *c, char *line, size_t cap)
{
	size_t n = 0;
	for (;;) {
		int ch = conn_byte(c);
		if (ch < 0)
			return false;
		if (ch == '\n' && n && line[n - 1] == '\r') {
			line[n - 1] = 0;
			return true;
		}
		if (n + 1 < cap)
			line[n++] = (char)ch;
	}
}

void rv_free(struct rv *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		rv_free(v->el[i]);
	free(v->el);
	free(v->str);
	free(v);
}

/* Reads one reply; NULL at end of stream or on a timeout. */
struct rv *rv_read(struct conn *c)
{
	char line[4096];
	if (!conn_line(c, line, sizeof line))
		return NULL;
	struct rv *v = calloc(1, sizeof *v);
	long long n = atoll(line + 1);
	switch (line[0]) {
	case '+':
	case '-':
		v->type = line[0] == '+' ? RV_STRING : RV_ERROR;
		v->str = strdup(line + 1);
		v->len = strlen(v->str);
		break;
	case ':':
		v->type = RV_INT;
		v->integer = n;
		break;
	case ',':
		v->type = RV_DOUBLE;
		v->dval = strtod(line + 1, NULL);
		v->str = strdup(line + 1);
		break;
	case '_':
		v->type = RV_NULL;
		break;
	case '#':
		v->type = RV_BOOL;
		v->integer = line[1] == 't';
		break;
	case '$':
	case '=':
		if (n < 0) {
			v->type = RV_NULL;
			break;
		}
		v->type = RV_STRING;
		v->str = malloc((size_t)n + 1);
		for (long long i = 0; i < n + 2; i++) {
			int ch = conn_byte(c);
			if (ch < 0) {
				rv_free(v);
				return NULL;
			}
			if (i < n)
				v->str[i] = (char)ch;
		}
		v->str[n] = 0;
		v->len = (size_t)n;
		break;
	case '*':
	case '%':
	case '>':
	case '~':
		if (n < 0) {
			v->type = RV_NULL;
			break;
		}
		v->type = line[0] == '%' ? RV_MAP : line[0] == '>' ? RV_PUSH : RV_ARRAY;
		v->n = (size_t)(line[0] == '%' ? 2 * n : n);
		v->el = calloc(v->n + 1, sizeof *v->el);
		for (size_t i = 0; i < v->n; i++) {
			if (!(v->el[i] = rv_read(c))) {
				v->n = i;
				rv_free(v);
				return NULL;
			}
		}
		break;
	default:
		cr_assert_fail("bad reply line '%s'", line);
	}
	return v;
}

void conn_send(struct conn *c, const char *text)
{
	size_t len = strlen(text);
	cr_assert_eq(write(c->fd, text, len), (ssize_t)len);
}

/* A RESP array of bulk strings from a space-separated command. */
void conn_command(struct conn *c, const char *fmt, ...)
{
	char text[4096], out[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	char *words[64];
	int n = 0;
	for (char *save, *w = strtok_r(text, " ", &save); w && n < 64; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	size_t len = (size_t)snprintf(out, sizeof out, "*%d\r\n", n);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, sizeof out - len, "$%zu\r\n%s\r\n", strlen(words[i]),
					words[i]);
	cr_assert_eq(write(c->fd, out, len), (ssize_t)len);
}

struct conn *conn_open(const struct daemon *d)
{
	struct conn *c = calloc(1, sizeof *c);
	c->fd = connect_unix(d->socket);
	cr_assert_geq(c->fd, 0);
	return c;
}

void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

const struct rv *rv_field(const struct rv *m, const char *name)
{
	cr_assert(m->type == RV_MAP || m->type == RV_ARRAY, "not a map (type %d %s)", m->type,
		  m->type == RV_ERROR ? m->str : "");
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (m->el[i]->type == RV_STRING && strcmp(m->el[i]->str, name) == 0)
			return m->el[i + 1];
	return NULL;
}

/* ---- replies compared with the report's JSON ------------------------------ */

void compare(const struct rv *r, const struct tj *j, const char *path, const char *const *skip)
{
	char sub[512];
	cr_assert_not_null(r, "%s: missing in the reply", path);
	switch (j->type) {
	case TJ_OBJECT:
		cr_assert(r->type == RV_MAP || (r->type == RV_ARRAY && r->n % 2 == 0),
			  "%s: want a map, reply type %d", path, r->type);
		for (size_t i = 0; i < j->count; i++) {
			bool skipped = false;
			for (const char *const *s = skip; s && *s; s++)
				skipped |= strcmp(*s, j->keys[i]) == 0;
			if (skipped)
				continue;
			snprintf(sub, sizeof sub, "%s.%s", path, j->keys[i]);
			compare(rv_field(r, j->keys[i]), j->items[i], sub, NULL);
		}
		break;
	case TJ_ARRAY:
		cr_assert_eq(r->type, RV_ARRAY, "%s: want an array", path);
		cr_assert_eq(r->n, j->count, "%s: %zu entries, report has %zu", path, r->n, j->count);
		for (size_t i = 0; i < j->count; i++) {
			snprintf(sub, sizeof sub, "%s[%zu]", path, i);
			compare(r->el[i], j->items[i], sub, NULL);
		}
		break;
	case TJ_STRING:
		cr_assert(r->type == RV_STRING && r->len == j->len && memcmp(r->str, j->text, j->len) == 0,
			  "%s: reply '%s', report '%s'", path, r->str ? r->str : "(not a string)", j->text);
		break;
	case TJ_NUMBER:
		if (r->type == RV_INT) {
			cr_assert(j->is_int && j->integer == r->integer, "%s: reply %lld, report %s", path,
				  r->integer, j->text);
		} else {
			/* A double: the report prints %.15g. */
			cr_assert(r->type == RV_DOUBLE || r->type == RV_STRING, "%s: not a number", path);
			double v = strtod(r->str, NULL);
			char text[64];
			snprintf(text, sizeof text, "%.15g", v);
			cr_assert_str_eq(text, j->text, "%s: reply %s, report %s", path, r->str, j->text);
		}
		break;
	case TJ_NULL:
		cr_assert_eq(r->type, RV_NULL, "%s: want null, type %d", path, r->type);
		break;
	case TJ_BOOL:
		cr_assert((r->type == RV_BOOL || r->type == RV_INT) && r->integer == j->boolean,
			  "%s: bool differs", path);
		break;
	}
}

/* A hiredis RESP2 reply as rv_read would have read it. */
static struct rv *rv_of_reply(const redisReply *r)
{
	struct rv *v = calloc(1, sizeof *v);
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR:
		v->type = r->type == REDIS_REPLY_ERROR ? RV_ERROR : RV_STRING;
		v->str = malloc(r->len + 1);
		memcpy(v->str, r->str, r->len);
		v->str[r->len] = 0;
		v->len = r->len;
		break;
	case REDIS_REPLY_INTEGER:
		v->type = RV_INT;
		v->integer = r->integer;
		break;
	case REDIS_REPLY_NIL:
		v->type = RV_NULL;
		break;
	case REDIS_REPLY_ARRAY:
		v->type = RV_ARRAY;
		v->n = r->elements;
		v->el = calloc(v->n + 1, sizeof *v->el);
		for (size_t i = 0; i < v->n; i++)
			v->el[i] = rv_of_reply(r->element[i]);
		break;
	default:
		cr_assert_fail("reply type %d is not RESP2", r->type);
	}
	return v;
}

struct rv *cmd_rv(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcmd(c, fmt, ap);
	va_end(ap);
	struct rv *v = rv_of_reply(r);
	freeReplyObject(r);
	return v;
}

/* ---- the report to compare with ------------------------------------------- */

struct tj *report_json(const char *feed, const char *window, const char *top,
		       const char *lapsed, char **customers, int ncust)
{
	char *argv[64];
	int n = 0;
	argv[n++] = PARETO_BIN;
	argv[n++] = "report";
	argv[n++] = "--json";
	argv[n++] = "--top";
	argv[n++] = (char *)top;
	argv[n++] = "--by-store";
	if (lapsed) {
		argv[n++] = "--lapsed";
		argv[n++] = (char *)lapsed;
	}
	argv[n++] = "--window";
	argv[n++] = (char *)window;
	for (int i = 0; i < ncust; i++) {
		argv[n++] = "--customer";
		argv[n++] = customers[i];
	}
	argv[n++] = "--quiet";
	argv[n++] = (char *)feed;
	argv[n] = NULL;
	struct run_result rr;
	run_command(argv, NULL, &rr);
	cr_assert_eq(rr.exit_code, 0, "pareto report: %s", rr.err);
	char error[128];
	struct tj *j = tj_parse(rr.out, strlen(rr.out), error, sizeof error);
	cr_assert_not_null(j, "report JSON: %s", error);
	run_result_free(&rr);
	return j;
}

static const char header[] = "ts,customer_id,store_id,amount\n";

char **random_lines(unsigned seed, int records, int customers)
{
	char **lines = malloc((size_t)records * sizeof *lines);
	srand(seed);
	for (int i = 0; i < records; i++) {
		int c = rand() % customers;
		if (rand() % 3 == 0)
			c = c % (customers / 10 + 1); /* a few customers buy much more */
		int day = rand() % 700, store = 1 + rand() % 5;
		long amount = rand() % 3 == 0 ? 1000 : 1 + rand() % 50000;
		if (rand() % 20 == 0)
			amount = -amount / 4;
		long long ts = 1672531200LL + (long long)day * 86400 + rand() % 86400;
		cr_assert_geq(asprintf(&lines[i], "%lld,C%04d,S%d,%s%ld.%02ld\n", ts, c, store,
				       amount < 0 ? "-" : "", labs(amount) / 100, labs(amount) % 100),
			      0);
	}
	return lines;
}

void free_lines(char **lines, int records)
{
	for (int i = 0; i < records; i++)
		free(lines[i]);
	free(lines);
}

char *csv_of(char **lines, int count, int at, int step, size_t *len)
{
	size_t cap = strlen(header) + 1;
	for (int i = at; i < count; i += step)
		cap += strlen(lines[i]);
	char *text = malloc(cap);
	size_t n = (size_t)sprintf(text, "%s", header);
	for (int i = at; i < count; i += step)
		n += (size_t)sprintf(text + n, "%s", lines[i]);
	*len = n;
	return text;
}

/* ---- files and time ------------------------------------------------------- */

char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)n + 1);
	size_t got = fread(p, 1, (size_t)n, f);
	p[got] = 0;
	fclose(f);
	return p;
}

void write_bytes(const char *path, const char *mode, const char *bytes, size_t len)
{
	FILE *f = fopen(path, mode);
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
