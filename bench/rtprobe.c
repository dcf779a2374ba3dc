/*
 * rtprobe.c - the real-time side of bench/run: feeds paretod's producer
 * socket, and measures query latency and freshness with sorted samples, for
 * paretod and Redis alike, over Unix sockets (hiredis).
 *
 *   rtprobe prepare IN.csv OUT.csv OUT.proto [ROWS PREFIX.proto]
 *       The workload for both servers: ids widened to a letter and 12 digits
 *       (C00444736 -> C000000444736, what redis-benchmark's __rand_int__
 *       makes, so that it can query the workload's customers), and the same
 *       records as Redis commands "ZINCRBY z CENTS ID" (integer minor
 *       units: double scores stay exact below 2^53). A prefix of ROWS
 *       commands goes to PREFIX.proto.
 *   rtprobe ingest --socket S --producer P --file F [--rows N] [--years-later Y]
 *       Writes the header and N records of F to paretod's producer socket P
 *       and polls INFO on S until paretod counts them: prints records/s.
 *       With Y, each record is dated Y years later than F says (new
 *       records for a server that holds F's already).
 *   rtprobe stream --producer P --file F --seconds T [--rate R]
 *       Writes F's records to P over and over for T seconds (load): as fast
 *       as P takes them, or R records a second, a millisecond's worth at a
 *       time.
 *   rtprobe latency --socket S --clients C --cmd "RANK C__rand_int__"
 *                   --keys K [--seconds T] [--rate R]
 *       C connections, each one request at a time (as fast as replies come,
 *       or R requests a second in all), __rand_int__ replaced by a random
 *       12-digit number below K; every latency kept; stops after T seconds
 *       or at SIGTERM/SIGINT and prints percentiles of the sorted samples
 *       (nearest rank).
 *   rtprobe floor [--rows N]
 *       The round trip this machine allows before any server work: N (50000)
 *       requests of "PING" over a socketpair, one at a time, the client
 *       blocking in read, answered by a thread that polls (as paretod's
 *       --busy-poll-us does) and by one that blocks in recv (as Redis
 *       does); percentiles of each.
 *   rtprobe fresh --socket S (--producer P | --redis) [--seconds T]
 *       Freshness: writes one record of a brand-new customer (a line on the
 *       producer socket; ZINCRBY on a connection of its own for Redis) and
 *       polls another connection (CUSTOMER id; ZREVRANK for Redis) until the
 *       customer is known (applied) and ranked (in the published ranking);
 *       repeats after a random pause of 0-10 ms; stops like latency.
 *
 * Output: one JSON object on stdout. Errors: a message on stderr, exit 1.
 * Clients run on the machine that runs the server; their cost is in the
 * figures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ID_DIGITS 12

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rtprobe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- options -------------------------------------------------------------- */

struct opts {
	const char *socket, *producer, *file, *cmd, *ts;
	uint64_t rows, keys;
	unsigned clients, years_later;
	double seconds;
	double rate; /* records (stream) or requests (latency) a second; 0: as fast as possible */
	bool redis;
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--redis")) {
			o->redis = true;
			continue;
		}
		if (!v)
			die("%s needs a value", a);
		i++;
		if (!strcmp(a, "--socket"))
			o->socket = v;
		else if (!strcmp(a, "--producer"))
			o->producer = v;
		else if (!strcmp(a, "--file"))
			o->file = v;
		else if (!strcmp(a, "--cmd"))
			o->cmd = v;
		else if (!strcmp(a, "--ts"))
			o->ts = v;
		else if (!strcmp(a, "--rows"))
			o->rows = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--keys"))
			o->keys = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--clients"))
			o->clients = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--seconds"))
			o->seconds = strtod(v, NULL);
		else if (!strcmp(a, "--rate"))
			o->rate = strtod(v, NULL);
		else if (!strcmp(a, "--years-later"))
			o->years_later = (unsigned)strtoul(v, NULL, 10);
		else
			die("unknown option %s", a);
	}
}

/* ---- prepare -------------------------------------------------------------- */

/* "C00444736" -> "C000000444736": the letters, then the digits on 12. */
static size_t widen_id(const char *id, size_t len, char *out)
{
	size_t p = 0;
	while (p < len && (id[p] < '0' || id[p] > '9'))
		p++;
	size_t digits = len - p;
	if (p == 0 || digits == 0 || digits > ID_DIGITS)
		return 0;
	for (size_t i = p; i < len; i++)
		if (id[i] < '0' || id[i] > '9')
			return 0;
	memcpy(out, id, p);
	memset(out + p, '0', ID_DIGITS - digits);
	memcpy(out + p + ID_DIGITS - digits, id + p, digits);
	return p + ID_DIGITS;
}

/* "-27.98" -> "-2798", "0.05" -> "5": exact minor units (two decimals). */
static size_t cents(const char *amount, size_t len, char *out)
{
	size_t n = 0, i = 0;
	if (i < len && amount[i] == '-')
		out[n++] = amount[i++];
	size_t start = n;
	const char *dot = memchr(amount, '.', len);
	if (!dot || amount + len - dot != 3)
		return 0;
	for (; i < len; i++) {
		if (amount[i] == '.')
			continue;
		if (amount[i] < '0' || amount[i] > '9')
			return 0;
		if (n == start && amount[i] == '0')
			continue; /* leading zero */
		out[n++] = amount[i];
	}
	if (n == start) { /* zero */
		n = 0;
		out[n++] = '0';
	}
	return n;
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("%s: %s", path, strerror(errno));
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static int cmd_prepare(int argc, char **argv)
{
	if (argc != 3 && argc != 5)
		die("usage: rtprobe prepare IN.csv OUT.csv OUT.proto [ROWS PREFIX.proto]");
	FILE *in = fopen(argv[0], "r");
	if (!in)
		die("%s: %s", argv[0], strerror(errno));
	setvbuf(in, NULL, _IOFBF, 1 << 20);
	FILE *csv = open_out(argv[1]), *proto = open_out(argv[2]);
	uint64_t prefix_rows = argc == 5 ? strtoull(argv[3], NULL, 10) : 0;
	FILE *prefix = argc == 5 ? open_out(argv[4]) : NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	uint64_t rows = 0, lineno = 0;
	while ((len = getline(&line, &cap, in)) > 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (lineno == 1) {
			if (strcmp(line, "ts,customer_id,store_id,amount") != 0)
				die("%s: expected the header ts,customer_id,store_id,amount", argv[0]);
			fprintf(csv, "%s\n", line);
			continue;
		}
		char *f[4];
		size_t fl[4];
		char *p = line;
		for (int i = 0; i < 4; i++) {
			char *comma = i < 3 ? strchr(p, ',') : NULL;
			if (i < 3 && !comma)
				die("%s:%llu: expected 4 fields", argv[0], (unsigned long long)lineno);
			f[i] = p;
			fl[i] = comma ? (size_t)(comma - p) : strlen(p);
			p = comma ? comma + 1 : p;
		}
		char id[64], amount[32];
		size_t idl = fl[1] < 40 ? widen_id(f[1], fl[1], id) : 0;
		size_t al = fl[3] < 24 ? cents(f[3], fl[3], amount) : 0;
		if (!idl || !al)
			die("%s:%llu: id or amount not of the generator's form", argv[0],
			    (unsigned long long)lineno);
		fprintf(csv, "%.*s,%.*s,%.*s,%.*s\n", (int)fl[0], f[0], (int)idl, id, (int)fl[2], f[2],
			(int)fl[3], f[3]);
		char cmd[160];
		int n = snprintf(cmd, sizeof cmd, "*4\r\n$7\r\nZINCRBY\r\n$1\r\nz\r\n$%zu\r\n%.*s\r\n$%zu\r\n%.*s\r\n",
				 al, (int)al, amount, idl, (int)idl, id);
		fwrite(cmd, 1, (size_t)n, proto);
		if (prefix && rows < prefix_rows)
			fwrite(cmd, 1, (size_t)n, prefix);
		rows++;
	}
	if (ferror(in) || fclose(csv) || fclose(proto) || (prefix && fclose(prefix)))
		die("prepare: %s", strerror(errno));
	fclose(in);
	free(line);
	printf("{\"rows\":%llu}\n", (unsigned long long)rows);
	return 0;
}

/* ---- producer socket and INFO -------------------------------------------- */

static int connect_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path)
		die("%s: path too long", path);
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("%s: %s", path, strerror(errno));
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("producer write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static redisContext *connect_server(const char *path)
{
	redisContext *c = redisConnectUnix(path);
	if (!c || c->err)
		die("%s: %s", path, c ? c->errstr : "out of memory");
	return c;
}

/* paretod's lines done: records applied plus lines rejected (INFO ingest). */
static uint64_t info_records(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO ingest");
	if (!r || r->type != REDIS_REPLY_STRING)
		die("INFO: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	const char *p = strstr(r->str, "\nrecords:"), *q = strstr(r->str, "\nrejected:");
	if (!p || !q)
		die("INFO ingest has no records or rejected field");
	uint64_t n = strtoull(p + 9, NULL, 10) + strtoull(q + 10, NULL, 10);
	freeReplyObject(r);
	return n;
}

/*
 * Sends the header and records of a file to a producer socket: `rows`
 * records (0: all), or, with `seconds` > 0, all of them over and over
 * until that much time has passed; each record `years` later than the
 * file says (its time's first 4 characters, the year: a multiple of 4
 * keeps February 29th a date). Returns the records sent.
 */
/* Paced at `rate` things a second from `start`: sleeps until the time the
 * next one after `done` is due (not at all when behind, or rate is 0). */
static void pace(int64_t start, uint64_t done, double rate)
{
	if (rate <= 0)
		return;
	int64_t due = start + (int64_t)((double)done / rate * 1e9), now = now_ns();
	if (due > now)
		nanosleep(&(struct timespec){ (due - now) / 1000000000, (due - now) % 1000000000 },
			  NULL);
}

/* The line at p (4 digits first) dated `years` later. */
static void later(char *p, unsigned years)
{
	unsigned y = 0;
	for (int i = 0; i < 4; i++) {
		if (p[i] < '0' || p[i] > '9')
			die("a record whose time does not begin with a 4-digit year");
		y = y * 10 + (unsigned)(p[i] - '0');
	}
	if ((y += years) > 9999)
		die("--years-later: a record would be dated after 9999");
	for (int i = 3; i >= 0; i--, y /= 10)
		p[i] = (char)('0' + y % 10);
}

static uint64_t send_records(int fd, const char *path, uint64_t rows, double seconds,
			     double rate, unsigned years)
{
	/* Paced: a millisecond's worth of lines per write. */
	uint64_t per_write = rate > 0 ? (uint64_t)(rate / 1000) + 1 : 0;
	FILE *in = fopen(path, "r");
	if (!in)
		die("%s: %s", path, strerror(errno));
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, in);
	char *nl = memchr(buf, '\n', n);
	if (!nl)
		die("%s: no header line", path);
	size_t header = (size_t)(nl + 1 - buf);
	write_all(fd, buf, header);
	memmove(buf, buf + header, n - header);
	n -= header;
	uint64_t sent = 0;
	int64_t start = now_ns(), until = start + (int64_t)(seconds * 1e9);
	for (;;) {
		if (n == 0) {
			if (seconds <= 0 || now_ns() >= until)
				break;
			if (fseek(in, (long)header, SEEK_SET) < 0)
				die("%s: %s", path, strerror(errno));
		}
		size_t got = n ? n : fread(buf, 1, sizeof buf, in);
		n = 0;
		if (got == 0)
			continue; /* end of file: rewind or stop above */
		/* Whole lines only, and no more than the rows asked for. */
		size_t end = 0, lines = 0;
		for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))); p++) {
			if (years)
				later(buf + end, years);
			end = (size_t)(p + 1 - buf);
			lines++;
			if ((rows && sent + lines == rows) || (per_write && lines == per_write))
				break;
		}
		if (end == 0)
			die("%s: a line longer than %zu bytes", path, sizeof buf);
		write_all(fd, buf, end);
		sent += lines;
		pace(start, sent, rate);
		if (rows && sent >= rows)
			break;
		if (seconds > 0 && now_ns() >= until)
			break;
		/* Keep the partial line for the next read. */
		memmove(buf, buf + end, got - end);
		size_t more = fread(buf + got - end, 1, sizeof buf - (got - end), in);
		n = got - end + more;
		if (n && more == 0 && buf[n - 1] != '\n')
			die("%s: the last line has no line end", path);
	}
	fclose(in);
	return sent;
}

static int cmd_ingest(const struct opts *o)
{
	if (!o->socket || !o->producer || !o->file)
		die("usage: rtprobe ingest --socket S --producer P --file F [--rows N] [--years-later Y]");
	redisContext *q = connect_server(o->socket);
	uint64_t base = info_records(q);
	int64_t t0 = now_ns();
	int fd = connect_unix(o->producer);
	uint64_t sent = send_records(fd, o->file, o->rows, 0, 0, o->years_later);
	int64_t t_sent = now_ns();
	close(fd);
	/* Polled only once every byte is written, so that polls do not slow
	 * the ingest they time. */
	uint64_t done, last = 0;
	int64_t progress_ns = now_ns();
	while ((done = info_records(q)) < base + sent) {
		if (done != last) {
			last = done;
			progress_ns = now_ns();
		} else if (now_ns() - progress_ns > 30 * 1000000000ll) {
			die("paretod counts %llu of %llu lines and has not moved for 30 s",
			    (unsigned long long)(done - base), (unsigned long long)sent);
		}
		struct timespec pause = { 0, 1000000 };
		nanosleep(&pause, NULL);
	}
	int64_t t1 = now_ns();
	double s = (double)(t1 - t0) / 1e9;
	printf("{\"records\":%llu,\"seconds\":%.6f,\"records_per_s\":%.0f,\"send_seconds\":%.6f}\n",
	       (unsigned long long)sent, s, (double)sent / s, (double)(t_sent - t0) / 1e9);
	redisFree(q);
	return 0;
}

static int cmd_stream(const struct opts *o)
{
	if (!o->producer || !o->file || o->seconds <= 0)
		die("usage: rtprobe stream --producer P --file F --seconds T");
	int64_t t0 = now_ns();
	int fd = connect_unix(o->producer);
	uint64_t sent = send_records(fd, o->file, 0, o->seconds, o->rate, 0);
	close(fd);
	printf("{\"records_sent\":%llu,\"seconds\":%.6f}\n", (unsigned long long)sent,
	       (double)(now_ns() - t0) / 1e9);
	return 0;
}

/* ---- stopping: SIGTERM, SIGINT or --seconds ------------------------------- */

static atomic_bool stopping;

/* Blocks the stop signals in every thread; the main thread waits for them. */
static void block_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

static void wait_stop(const sigset_t *set, double seconds)
{
	if (seconds > 0) {
		struct timespec t = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
		sigtimedwait(set, NULL, &t);
	} else {
		int sig;
		sigwait(set, &sig);
	}
	atomic_store(&stopping, true);
}

/* ---- samples -------------------------------------------------------------- */

struct samples {
	int64_t *ns;
	size_t n, cap;
};

static void sample_add(struct samples *s, int64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 65536;
		s->ns = realloc(s->ns, s->cap * sizeof *s->ns);
		if (!s->ns)
			die("out of memory");
	}
	s->ns[s->n++] = ns;
}

static int compare_ns(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p of all at or below it. */
static double percentile_us(const struct samples *s, double p)
{
	if (!s->n)
		return 0;
	size_t k = (size_t)(p * (double)s->n + 0.999999999);
	if (k < 1)
		k = 1;
	if (k > s->n)
		k = s->n;
	return (double)s->ns[k - 1] / 1e3;
}

/* "name":{"n":..,"p50_us":..,...,"max_us":..}; sorts the samples. */
static void print_stats(const char *name, struct samples *s)
{
	qsort(s->ns, s->n, sizeof *s->ns, compare_ns);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->ns[i];
	printf("\"%s\":{\"n\":%zu,\"mean_us\":%.3f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,"
	       "\"p999_us\":%.3f,\"max_us\":%.3f}",
	       name, s->n, s->n ? sum / (double)s->n / 1e3 : 0.0, percentile_us(s, 0.50),
	       percentile_us(s, 0.90), percentile_us(s, 0.99), percentile_us(s, 0.999),
	       s->n ? (double)s->ns[s->n - 1] / 1e3 : 0.0);
}

/* ---- latency -------------------------------------------------------------- */

struct client {
	pthread_t thread;
	const struct opts *o;
	unsigned index;
	struct samples lat;
	uint64_t errors, nils;
	char first_error[128];
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	redisContext *ctx = connect_server(c->o->socket);
	char *argv[16], keybuf[24];
	size_t lens[16];
	int argc = 0, key_arg = -1;
	char *tmpl = strdup(c->o->cmd), *save = NULL;
	for (char *t = strtok_r(tmpl, " ", &save); t && argc < 16; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	char *key_word = NULL, *key_at = NULL;
	for (int i = 0; i < argc; i++)
		if ((key_at = strstr(argv[i], "__rand_int__"))) {
			key_arg = i;
			key_word = malloc(strlen(argv[i]) + 1);
			break;
		}
	uint64_t seed = 0x9e3779b97f4a7c15ull * (c->index + 1);
	/* Each client's share of --rate; its requests keep their schedule (a
	 * late one is sent at once, not dropped). */
	double rate = c->o->rate / c->o->clients;
	int64_t start = now_ns();
	for (uint64_t sent = 0; !atomic_load_explicit(&stopping, memory_order_relaxed); sent++) {
		pace(start, sent, rate);
		if (key_arg >= 0) {
			snprintf(keybuf, sizeof keybuf, "%0*llu", ID_DIGITS,
				 (unsigned long long)(xorshift(&seed) % c->o->keys));
			size_t pre = (size_t)(key_at - argv[key_arg]);
			memcpy(key_word, argv[key_arg], pre);
			memcpy(key_word + pre, keybuf, ID_DIGITS);
			strcpy(key_word + pre + ID_DIGITS, key_at + 12);
		}
		const char *args[16];
		for (int i = 0; i < argc; i++) {
			args[i] = i == key_arg ? key_word : argv[i];
			lens[i] = strlen(args[i]);
		}
		int64_t t0 = now_ns();
		redisReply *r = redisCommandArgv(ctx, argc, args, lens);
		int64_t t1 = now_ns();
		if (!r)
			die("%s: %s", c->o->socket, ctx->errstr);
		if (r->type == REDIS_REPLY_ERROR) {
			if (!c->errors++)
				snprintf(c->first_error, sizeof c->first_error, "%s", r->str);
		} else if (r->type == REDIS_REPLY_NIL) {
			c->nils++;
		}
		freeReplyObject(r);
		sample_add(&c->lat, t1 - t0);
	}
	free(key_word);
	free(tmpl);
	redisFree(ctx);
	return NULL;
}

static int cmd_latency(const struct opts *o)
{
	if (!o->socket || !o->cmd || !o->clients || (strstr(o->cmd, "__rand_int__") && !o->keys))
		die("usage: rtprobe latency --socket S --clients C --cmd CMD --keys K [--seconds T] [--rate R]");
	sigset_t set;
	block_stop_signals(&set);
	struct client *cl = calloc(o->clients, sizeof *cl);
	int64_t t0 = now_ns();
	for (unsigned i = 0; i < o->clients; i++) {
		cl[i].o = o;
		cl[i].index = i;
		if (pthread_create(&cl[i].thread, NULL, client_main, &cl[i]))
			die("pthread_create failed");
	}
	wait_stop(&set, o->seconds);
	struct samples all = { 0 };
	uint64_t errors = 0, nils = 0;
	const char *first_error = "";
	for (unsigned i = 0; i < o->clients; i++) {
		pthread_join(cl[i].thread, NULL);
		for (size_t k = 0; k < cl[i].lat.n; k++)
			sample_add(&all, cl[i].lat.ns[k]);
		errors += cl[i].errors;
		nils += cl[i].nils;
		if (cl[i].errors && !*first_error)
			first_error = cl[i].first_error;
	}
	double s = (double)(now_ns() - t0) / 1e9;
	printf("{\"clients\":%u,\"seconds\":%.6f,\"requests\":%zu,\"rps\":%.0f,\"errors\":%llu,"
	       "\"nil_replies\":%llu,",
	       o->clients, s, all.n, (double)all.n / s, (unsigned long long)errors,
	       (unsigned long long)nils);
	print_stats("latency", &all);
	printf(",\"first_error\":\"%s\"}\n", first_error);
	return errors ? 1 : 0;
}

/* ---- freshness ------------------------------------------------------------ */

/* From paretod's CUSTOMER reply (field/value pairs under RESP2; Debian's hiredis 0.14 speaks RESP2 only): whether the
 * customer is known to the engine and ranked in the published ranking. */
static void customer_state(const redisReply *r, bool *known, bool *ranked)
{
	*known = *ranked = false;
	if (r->type != REDIS_REPLY_ARRAY)
		die("CUSTOMER: unexpected reply type %d%s%s", r->type,
		    r->type == REDIS_REPLY_ERROR ? ": " : "", r->type == REDIS_REPLY_ERROR ? r->str : "");
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
			continue;
		if (!strcmp(k->str, "known"))
			*known = v->type == REDIS_REPLY_INTEGER && v->integer;
		else if (!strcmp(k->str, "rank"))
			*ranked = v->type == REDIS_REPLY_INTEGER;
	}
}

struct fresh {
	const struct opts *o;
	struct samples applied, ranked;
	uint64_t timeouts;
};

/* Sleeps about us microseconds. */
static void pause_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&t, NULL);
}

static void *fresh_main(void *arg)
{
	struct fresh *f = arg;
	const struct opts *o = f->o;
	redisContext *q = connect_server(o->socket), *w = NULL;
	int producer = -1;
	if (o->redis) {
		w = connect_server(o->socket);
	} else {
		producer = connect_unix(o->producer);
		const char header[] = "ts,customer_id,store_id,amount\n";
		write_all(producer, header, sizeof header - 1);
	}
	uint64_t seed = (uint64_t)now_ns() | 1;
	char id[32], line[128];
	for (unsigned probe = 0; !atomic_load_explicit(&stopping, memory_order_relaxed); probe++) {
		/* A customer no feed has: F, the pid and the probe number. */
		snprintf(id, sizeof id, "F%06u%06u", (unsigned)getpid() % 1000000, probe);
		int64_t t0 = now_ns(), t_applied = 0, t_ranked = 0;
		if (o->redis) {
			redisAppendCommand(w, "ZINCRBY z 100 %s", id);
			int done = 0;
			while (!done)
				if (redisBufferWrite(w, &done) != REDIS_OK)
					die("ZINCRBY: %s", w->errstr);
		} else {
			int n = snprintf(line, sizeof line, "%s,%s,S0001,1.00\n", o->ts, id);
			write_all(producer, line, (size_t)n);
		}
		while (!t_ranked) {
			redisReply *r = o->redis ? redisCommand(q, "ZREVRANK z %s", id)
						 : redisCommand(q, "CUSTOMER %s", id);
			int64_t t = now_ns();
			if (!r)
				die("%s: %s", o->socket, q->errstr);
			bool known, ranked;
			if (o->redis)
				known = ranked = r->type == REDIS_REPLY_INTEGER;
			else
				customer_state(r, &known, &ranked);
			freeReplyObject(r);
			if (known && !t_applied)
				t_applied = t;
			if (ranked)
				t_ranked = t;
			else if (t - t0 > 60 * 1000000000ll) {
				f->timeouts++;
				break;
			} else if (atomic_load_explicit(&stopping, memory_order_relaxed)) {
				break; /* unfinished: not a sample */
			} else {
				pause_us(100);
			}
		}
		if (o->redis) {
			redisReply *r;
			if (redisGetReply(w, (void **)&r) != REDIS_OK)
				die("ZINCRBY: %s", w->errstr);
			freeReplyObject(r);
		}
		if (!t_ranked)
			break;
		sample_add(&f->applied, t_applied - t0);
		sample_add(&f->ranked, t_ranked - t0);
		pause_us((long)(xorshift(&seed) % 10000));
	}
	if (producer >= 0)
		close(producer);
	if (w)
		redisFree(w);
	redisFree(q);
	return NULL;
}

static int cmd_fresh(const struct opts *o)
{
	if (!o->socket || (!o->producer && !o->redis))
		die("usage: rtprobe fresh --socket S (--producer P | --redis) [--seconds T] [--ts TS]");
	sigset_t set;
	block_stop_signals(&set);
	struct fresh f = { .o = o };
	pthread_t thread;
	int64_t t0 = now_ns();
	if (pthread_create(&thread, NULL, fresh_main, &f))
		die("pthread_create failed");
	wait_stop(&set, o->seconds);
	pthread_join(thread, NULL);
	printf("{\"seconds\":%.6f,\"probes\":%zu,\"timeouts\":%llu,", (double)(now_ns() - t0) / 1e9,
	       f.ranked.n, (unsigned long long)f.timeouts);
	print_stats("applied", &f.applied);
	printf(",");
	print_stats("visible", &f.ranked);
	printf("}\n");
	return f.timeouts ? 1 : 0;
}

/* ---- the round-trip floor ------------------------------------------------- */

struct echo {
	int fd;
	bool poll; /* poll with MSG_DONTWAIT instead of blocking in recv */
};

static void *echo_main(void *arg)
{
	const struct echo *e = arg;
	char buf[64];
	for (;;) {
		ssize_t n = recv(e->fd, buf, sizeof buf, e->poll ? MSG_DONTWAIT : 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return NULL; /* the client closed its end */
		if (n > 0 && send(e->fd, "+PONG\r\n", 7, MSG_NOSIGNAL) != 7)
			return NULL;
	}
}

/* "name":{...}: round trips of `requests` PINGs to an echo thread. */
static void floor_run(const char *name, bool poll, uint64_t requests)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	struct echo e = { sv[1], poll };
	pthread_t thread;
	if (pthread_create(&thread, NULL, echo_main, &e))
		die("pthread_create failed");
	struct samples lat = { 0 };
	char buf[64];
	for (uint64_t i = 0; i < requests; i++) {
		int64_t t0 = now_ns();
		write_all(sv[0], "PING\r\n", 6);
		size_t got = 0;
		while (got < 7) {
			ssize_t n = read(sv[0], buf + got, sizeof buf - got);
			if (n <= 0)
				die("floor: read: %s", n ? strerror(errno) : "end of stream");
			got += (size_t)n;
		}
		sample_add(&lat, now_ns() - t0);
	}
	close(sv[0]);
	pthread_join(thread, NULL);
	close(sv[1]);
	print_stats(name, &lat);
	free(lat.ns);
}

static int cmd_floor(const struct opts *o)
{
	uint64_t requests = o->rows ? o->rows : 50000;
	printf("{\"requests\":%llu,", (unsigned long long)requests);
	floor_run("polling", true, requests);
	printf(",");
	floor_run("blocking", false, requests);
	printf("}\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: rtprobe prepare|ingest|stream|latency|fresh|floor ... (see rtprobe.c)");
	struct opts o = { .ts = "2024-06-01T00:00:00Z" };
	const char *mode = argv[1];
	if (!strcmp(mode, "prepare"))
		return cmd_prepare(argc - 2, argv + 2);
	parse_opts(argc - 2, argv + 2, &o);
	if (!strcmp(mode, "ingest"))
		return cmd_ingest(&o);
	if (!strcmp(mode, "stream"))
		return cmd_stream(&o);
	if (!strcmp(mode, "latency"))
		return cmd_latency(&o);
	if (!strcmp(mode, "fresh"))
		return cmd_fresh(&o);
	if (!strcmp(mode, "floor"))
		return cmd_floor(&o);
	die("unknown mode %s", mode);
}
