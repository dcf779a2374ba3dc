/*
 * server.c - paretod's io_uring event loop; see server.h.
 *
 * Every operation in flight carries its owner and kind in the submission's
 * user_data (a pointer with the kind in its three low bits), and an owner is
 * freed only when none of its operations is in flight, so a completion
 * never finds a freed owner. A client has at most one receive and one send
 * in flight; its replies are written into c->out while the kernel sends
 * c->wbuf, and the two buffers swap when a send completes, so a buffer is
 * never moved while the kernel reads it.
 *
 * Feeds (feeds.c) and the metrics socket (metrics_socket.c) submit to the
 * same ring; their completions come back through the struct pr_server_op
 * they embed (OP_MODULE), so this loop knows nothing of their states.
 *
 * A loop turn: decode at most ingest_batch_bytes of waiting feed bytes,
 * submit, then reap completions (waiting only when no feed bytes wait).
 * Requests are handled as their bytes arrive, between feed batches.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "feeds.h"
#include "metrics_socket.h"
#include "persistence.h"
#include "server.h"
#include "timeparse.h"

enum op {
	OP_ACCEPT = 1,   /* owner: server */
	OP_SIGNAL,       /* owner: server */
	OP_RECV,         /* owner: client */
	OP_SEND,         /* owner: client */
	OP_MODULE = 7,   /* owner: a struct pr_server_op (feeds, metrics socket) */
};

#define CLIENT_IN_INITIAL (16u * 1024)
#define CLIENT_RECV_MIN (4u * 1024)
#define BUFFER_KEEP_MAX (1u << 20) /* larger idle buffers are released */
#define HISTORY_POLL_NS 100000     /* how often an idle loop looks at histories being read */

static struct signalfd_siginfo siginfo; /* the signal read in flight */

/* ---- time and logging ----------------------------------------------------- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pr_server_now_ms(void)
{
	return now_us() / 1000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pr_log(const char *fmt, ...)
{
	char when[32], line[1024];
	pr_time_format(wall_ms(), when);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One write per line so that lines from a crash handler or a pipe reader
	 * never interleave mid-line. */
	char out[1100];
	int n = snprintf(out, sizeof out, "%s paretod: %s\n", when, line);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
		(void)w;
	}
}

/* ---- options -------------------------------------------------------------- */

void pr_server_options_init(struct pr_server_options *o)
{
	memset(o, 0, sizeof *o);
	o->socket_mode = 0660;
	pr_feed_options_init(&o->feed);
	pr_engine_options_init(&o->engine);
	o->engine.threads = 1;
	/* One apply thread per core online, as pareto report's threads. */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	o->engine.apply_threads = cores < 1 ? 1 : cores > PR_SERVER_APPLY_THREADS_MAX
							 ? PR_SERVER_APPLY_THREADS_MAX : (unsigned)cores;
	o->max_request_bytes = 1u << 20;
	o->max_output_bytes = 64u << 20;
	o->max_clients = 10000;
	o->rank_interval_ms = PR_RANK_INTERVAL_AUTO_MOST_MS;
	o->rank_interval_auto = true;
	o->ingest_batch_bytes = 64u * 1024;
	o->busy_poll_us = PR_BUSY_POLL_DEFAULT_US;
	o->alert_window = PR_WINDOW_ALL;
	o->benefits[0] = (struct pr_tier_benefit){ 2000, 0 };
	o->benefits[1] = (struct pr_tier_benefit){ 1000, 0 };
	o->benefits[2] = (struct pr_tier_benefit){ 500, 0 };
	o->show_errors = 10;
	o->checkpoint_interval_s = 60;
}

/* ---- systemd notification ------------------------------------------------- */

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void notify(const char *text)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof addr.sun_path)
		return;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = 0; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	ssize_t w = sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&addr,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	(void)w;
	close(fd);
}

/* ---- submissions ---------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(struct pr_server *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	while (!sqe) {
		/* The submission queue is full: hand it to the kernel and retry. */
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static void set_data(struct io_uring_sqe *sqe, void *owner, enum op op)
{
	_Static_assert(_Alignof(max_align_t) >= 8, "owners leave three low bits free");
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)owner | (uint64_t)op);
}

struct io_uring_sqe *pr_server_sqe(struct pr_server *s)
{
	return get_sqe(s);
}

void pr_server_sqe_owner(struct io_uring_sqe *sqe, struct pr_server_op *op)
{
	if (op)
		set_data(sqe, op, OP_MODULE);
	else
		io_uring_sqe_set_data64(sqe, 0); /* op 0: nobody's, ignored */
}

static void arm_accept(struct pr_server *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);
	io_uring_prep_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	set_data(sqe, s, OP_ACCEPT);
}

static void arm_signal(struct pr_server *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);
	io_uring_prep_read(sqe, s->signal_fd, &siginfo, sizeof siginfo, 0);
	set_data(sqe, s, OP_SIGNAL);
}

/* ---- clients -------------------------------------------------------------- */

static void client_free(struct pr_client *c)
{
	pr_customer_request_free(c->history); /* done: the loop or a drain saw to it */
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	pr_resp_out_free(&c->out);
	free(c->wbuf);
	for (unsigned i = 0; i < c->channels; i++)
		free(c->channel[i]);
	free(c);
}

static void client_maybe_free(struct pr_server *s, struct pr_client *c)
{
	/* A waiting client is in the waiting list, and may have a history
	 * out (c->history): waiting_turn frees it once that is over. */
	if (!c->closing || c->recv_inflight || c->send_inflight || c->history || c->waiting ||
	    c->serving)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->zombies = c->next;
	if (c->next)
		c->next->prev = c->prev;
	client_free(c);
}

/* Unlinks the client and shuts its socket, which completes any receive or
 * send in flight; it is freed when the last of them is reaped. */
static void client_close(struct pr_server *s, struct pr_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	pr_commands_unsubscribe_all(s, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->client_count--;
	c->prev = NULL;
	c->next = s->zombies;
	if (s->zombies)
		s->zombies->prev = c;
	s->zombies = c;
	shutdown(c->fd, SHUT_RDWR);
	client_maybe_free(s, c);
}

void pr_server_disconnect(struct pr_server *s, struct pr_client *c)
{
	client_close(s, c);
}

static void arm_recv(struct pr_server *s, struct pr_client *c)
{
	if (c->recv_inflight || c->closing || c->close_after_write || c->eof)
		return;
	if (c->in_cap - c->in_len < CLIENT_RECV_MIN) {
		size_t cap = c->in_cap * 2;
		size_t most = s->opt.max_request_bytes + 2 * CLIENT_RECV_MIN;
		if (cap > most)
			cap = most;
		if (cap <= c->in_cap) {
			/* Cannot happen: the parser refuses a request before the
			 * buffer holds more than max_request_bytes of it. */
			client_close(s, c);
			return;
		}
		char *bigger = realloc(c->in, cap);
		if (!bigger) {
			pr_log("client %llu: out of memory for its request, closing",
			       (unsigned long long)c->id);
			client_close(s, c);
			return;
		}
		c->in = bigger;
		c->in_cap = cap;
	}
	struct io_uring_sqe *sqe = get_sqe(s);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	set_data(sqe, c, OP_RECV);
	c->recv_inflight = true;
}

void pr_server_flush(struct pr_server *s, struct pr_client *c)
{
	if (c->send_inflight || c->closing)
		return;
	if (c->woff == c->wlen) {
		if (c->out.len == 0) {
			if (c->close_after_write)
				client_close(s, c);
			return;
		}
		/* Swap: the replies written so far go to the kernel, and the
		 * drained send buffer collects the next ones. */
		char *spare = c->wbuf;
		size_t spare_cap = c->wcap;
		c->wbuf = c->out.buf;
		c->wcap = c->out.cap;
		c->wlen = c->out.len;
		c->woff = 0;
		if (spare_cap > BUFFER_KEEP_MAX) {
			free(spare);
			spare = NULL;
			spare_cap = 0;
		}
		c->out.buf = spare;
		c->out.cap = spare_cap;
		c->out.len = 0;
	}
	struct io_uring_sqe *sqe = get_sqe(s);
	io_uring_prep_send(sqe, c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
	set_data(sqe, c, OP_SEND);
	c->send_inflight = true;
}

static bool printable_inline(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if ((ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') || ch == 0x7f)
			return false;
	}
	return true;
}

static void client_protocol_error(struct pr_server *s, struct pr_client *c, int code,
				  const char *message)
{
	s->protocol_errors++;
	if (code == -E2BIG) {
		pr_resp_error(&c->out, "ERR request too large");
		pr_log("client %llu: request larger than %zu bytes, closing",
		       (unsigned long long)c->id, s->opt.max_request_bytes);
	} else {
		pr_resp_error(&c->out, "ERR %s", message);
		pr_log("client %llu: %s, closing", (unsigned long long)c->id, message);
	}
	c->close_after_write = true;
}

void pr_server_drain(struct pr_server *s)
{
	if (pr_engine_drain(s->engine) < 0)
		pr_log("out of memory: records dropped from the totals");
}

/* Handles every complete request in the client's input buffer, up to one
 * that waits (pr_server_wait). */
static void client_process(struct pr_server *s, struct pr_client *c)
{
	if (c->waiting)
		return;
	size_t off = 0;
	bool answered = false;
	while (off < c->in_len && !c->closing && !c->close_after_write) {
		struct pr_resp_command cmd = { 0, s->argv, s->argv_len };
		struct pr_error err = { 0 };
		size_t used = 0;
		const char *p = c->in + off;
		int rc = pr_resp_parse(p, c->in_len - off, &s->limits, &cmd, &used, &err);
		if (rc == PR_RESP_MORE)
			break;
		if (rc < 0) {
			client_protocol_error(s, c, rc, err.message);
			break;
		}
		if (p[0] != '*' && !printable_inline(p, used)) {
			client_protocol_error(s, c, -EPROTO,
					      "Protocol error: invalid bytes in inline request");
			break;
		}
		if (cmd.argc == 0) {
			off += used;
			continue;
		}
		pr_command_execute(s, c, &cmd);
		/* Waiting: handled again once it is read (waiting_turn), even if
		 * it has been read already (an apply thread may be that quick). */
		if (c->waiting)
			break;
		if (c->history) { /* answered without it (an error the second time) */
			pr_customer_request_free(c->history);
			c->history = NULL;
			c->history_tries = 0;
		}
		c->wait_tries = 0;
		off += used;
		c->commands++;
		s->commands_total++;
		answered = true;
	}
	if (answered)
		s->last_command_us = now_us();
	if (off == c->in_len) {
		c->in_len = 0;
		if (c->in_cap > BUFFER_KEEP_MAX) {
			char *smaller = realloc(c->in, CLIENT_IN_INITIAL);
			if (smaller) {
				c->in = smaller;
				c->in_cap = CLIENT_IN_INITIAL;
			}
		}
	} else if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->closing)
		return;
	size_t unsent = c->out.len + (c->wlen - c->woff);
	if (c->out.overflow || unsent > s->opt.max_output_bytes) {
		s->output_disconnects++;
		pr_log("client %llu: more than %zu bytes of replies unread, disconnecting",
		       (unsigned long long)c->id, s->opt.max_output_bytes);
		client_close(s, c);
		return;
	}
	pr_server_flush(s, c);
}

/* client_process, after which the client is read on unless it waits for a
 * history or was closed meanwhile (then freed if nothing is in flight: a
 * close while its requests are handled, a slow reader's, must not free it
 * under the caller). */
static void client_serve(struct pr_server *s, struct pr_client *c)
{
	c->serving = true;
	client_process(s, c);
	c->serving = false;
	if (c->closing)
		client_maybe_free(s, c);
	else if (!c->waiting)
		arm_recv(s, c);
}

static void on_accept(struct pr_server *s, int res)
{
	if (!s->stopping)
		arm_accept(s);
	if (res < 0) {
		if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
			pr_log("accept: %s", strerror(-res));
		if (res == -EMFILE || res == -ENFILE) {
			/* Out of descriptors: the next accept would fail at once
			 * again; give the others a moment to close. */
			struct timespec pause = { 0, 50 * 1000000 };
			nanosleep(&pause, NULL);
		}
		return;
	}
	int fd = res;
	s->connections_total++;
	if (s->client_count >= s->opt.max_clients) {
		static const char full[] = "-ERR max number of clients reached\r\n";
		ssize_t w = send(fd, full, sizeof full - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w;
		close(fd);
		s->rejected_connections++;
		return;
	}
	struct pr_client *c = calloc(1, sizeof *c);
	char *in = malloc(CLIENT_IN_INITIAL);
	if (!c || !in) {
		free(c);
		free(in);
		close(fd);
		pr_log("accept: out of memory for a client");
		return;
	}
	c->id = ++s->next_client_id;
	c->fd = fd;
	c->in = in;
	c->in_cap = CLIENT_IN_INITIAL;
	pr_resp_out_init(&c->out, s->opt.max_output_bytes + 1);
	c->created_ms = c->active_ms = pr_server_now_ms();
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->client_count++;
	arm_recv(s, c);
}

static void on_recv(struct pr_server *s, struct pr_client *c, int res)
{
	c->recv_inflight = false;
	if (c->closing) {
		client_maybe_free(s, c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		arm_recv(s, c);
		return;
	}
	if (res < 0) {
		if (res != -ECONNRESET)
			pr_log("client %llu: receive: %s", (unsigned long long)c->id, strerror(-res));
		client_close(s, c);
		return;
	}
	if (res == 0) {
		/* Half-closed: answer what was asked, then close. */
		c->eof = true;
		c->close_after_write = true;
		pr_server_flush(s, c);
		return;
	}
	c->in_len += (size_t)res;
	c->active_ms = pr_server_now_ms();
	client_serve(s, c); /* a waiting client reads on once answered */
}

void pr_server_wait(struct pr_server *s, struct pr_client *c, enum pr_wait_for what,
		    enum pr_window w, uint64_t mark)
{
	assert(!c->waiting && (what != PR_WAIT_HISTORY || c->history));
	c->wait_for = what;
	c->wait_window = w;
	c->wait_mark = mark;
	c->waiting = true;
	c->waiting_next = s->waiting;
	s->waiting = c;
	s->waiting_count++;
	if (what == PR_WAIT_HISTORY) {
		s->history_waits++;
	} else {
		s->build_waits++;
		c->wait_tries++;
	}
}

/* Clients whose wait is over: their requests handled again, and their
 * input read on (or, closed meanwhile, freed). */
static void waiting_turn(struct pr_server *s)
{
	for (struct pr_client **at = &s->waiting, *c; (c = *at);) {
		if (!pr_commands_wait_over(s, c)) {
			at = &c->waiting_next;
			continue;
		}
		*at = c->waiting_next;
		c->waiting = false;
		s->waiting_count--;
		if (c->closing) {
			pr_customer_request_free(c->history);
			c->history = NULL;
			client_maybe_free(s, c);
			continue;
		}
		client_serve(s, c);
	}
}

static void on_send(struct pr_server *s, struct pr_client *c, int res)
{
	c->send_inflight = false;
	if (c->closing) {
		client_maybe_free(s, c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN)
		res = 0;
	if (res < 0) {
		if (res != -EPIPE && res != -ECONNRESET)
			pr_log("client %llu: send: %s", (unsigned long long)c->id, strerror(-res));
		client_close(s, c);
		return;
	}
	c->woff += (size_t)res;
	if (c->woff == c->wlen) {
		c->woff = c->wlen = 0;
		if (c->wcap > BUFFER_KEEP_MAX) {
			free(c->wbuf);
			c->wbuf = NULL;
			c->wcap = 0;
		}
	}
	pr_server_flush(s, c);
}

/* ---- INGEST -------------------------------------------------------------- */

struct ingest_ctx {
	struct pr_server *s;
	uint64_t shown;
	struct pr_stores_touched *stores; /* or NULL */
};

/* Marks the store a record was staged with (interned by the enqueue). */
static void mark_store(struct pr_server *s, struct pr_stores_touched *t, const struct pr_record *r)
{
	int64_t store = pr_engine_store_find(s->engine, r->store, r->store_len);
	if (store < 0 || t->failed)
		return;
	if ((uint64_t)store >= t->count) {
		uint32_t count = (uint32_t)store + 64;
		uint8_t *bigger = realloc(t->touched, count);
		if (!bigger) {
			t->failed = true;
			return;
		}
		memset(bigger + t->count, 0, count - t->count);
		t->touched = bigger;
		t->count = count;
	}
	t->touched[store] = 1;
}

/* Staged like a feed's records (no drain: the apply threads go on); a
 * record an apply thread then fails to apply (out of memory) is uncounted
 * at the next drain, as a feed's is. */
static int ingest_record(void *ctx, const struct pr_record *r)
{
	struct ingest_ctx *x = ctx;
	int rc = pr_engine_enqueue(x->s->engine, r);
	if (rc == 0 && x->stores)
		mark_store(x->s, x->stores, r);
	return rc;
}

static int ingest_reject(void *ctx, const struct pr_reject *r)
{
	struct ingest_ctx *x = ctx;
	if (!x->s->opt.quiet && x->shown++ < 3)
		pr_feed_describe_reject("INGEST", r);
	return 0;
}

int pr_server_ingest_lines(struct pr_server *s, const char *const *lines,
			   const size_t *lens, size_t count, uint64_t *accepted,
			   uint64_t *rejected, struct pr_stores_touched *stores,
			   struct pr_error *err)
{
	pr_persist_wait_engine(s); /* nothing writes the engine while a checkpoint reads it */
	struct ingest_ctx ctx = { s, 0, stores };
	struct pr_feed_sink sink = { &ctx, ingest_record, ingest_reject };
	struct pr_decoder *d;
	int rc = pr_decoder_create(&d, "INGEST", &s->opt.feed, &sink, err);
	if (rc < 0)
		return rc;
	rc = pr_decoder_push(d, s->ingest_header, s->ingest_header_len, err);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		rc = pr_decoder_push(d, lines[i], lens[i], err);
		if (rc == 0 && (lens[i] == 0 || lines[i][lens[i] - 1] != '\n'))
			rc = pr_decoder_push(d, "\n", 1, err);
	}
	if (rc == 0)
		rc = pr_decoder_finish(d, err);
	struct pr_feed_stats st = *pr_decoder_stats(d);
	/* The synthetic header is not the client's: do not count its bytes. */
	st.bytes = st.bytes > s->ingest_header_len ? st.bytes - s->ingest_header_len : 0;
	pr_feed_stats_add(&s->stats, &st);
	*accepted += st.records;
	*rejected += st.rejected;
	pr_decoder_destroy(d);
	return rc;
}

/* ---- the socket ----------------------------------------------------------- */

/* See server.h; a stale socket file is one nobody answers on. */
int pr_server_bind_unix(const char *path, mode_t mode, int *out_fd, bool *created,
			struct pr_error *err)
{
	const int type = SOCK_STREAM;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (!*path)
		return pr_error_set(err, -EINVAL, "empty socket path");
	if (strlen(path) >= sizeof addr.sun_path)
		return pr_error_set(err, -ENAMETOOLONG, "%s: socket path longer than %zu bytes",
				    path, sizeof addr.sun_path - 1);
	strcpy(addr.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return pr_error_set(err, -EEXIST, "%s: exists and is not a socket", path);
		int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return pr_error_set(err, -errno, "socket: %s", strerror(errno));
		int rc = connect(probe, (struct sockaddr *)&addr, sizeof addr);
		int e = errno;
		close(probe);
		if (rc == 0)
			return pr_error_set(err, -EADDRINUSE,
					    "%s: a server is already listening there", path);
		if (e != ECONNREFUSED && e != ENOENT)
			return pr_error_set(err, -e, "%s: %s", path, strerror(e));
		if (unlink(path) < 0 && errno != ENOENT)
			return pr_error_set(err, -errno, "%s: removing the stale socket: %s", path,
					    strerror(errno));
		pr_log("%s: replaced a stale socket file", path);
	}
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pr_error_set(err, -errno, "socket: %s", strerror(errno));
	/* The file gets its mode at bind, so no one connects through a wider
	 * mode in between: umask does that, chmod then makes it exact. */
	mode_t old = umask((mode_t)(~mode & 0777));
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
	int e = errno;
	umask(old);
	if (rc < 0) {
		close(fd);
		return pr_error_set(err, -e, "%s: bind: %s", path, strerror(e));
	}
	*created = true;
	if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		e = errno;
		close(fd);
		unlink(path);
		*created = false;
		return pr_error_set(err, -e, "%s: %s", path, strerror(e));
	}
	*out_fd = fd;
	return 0;
}

/* ---- life cycle ----------------------------------------------------------- */

static void build_ingest_header(struct pr_server *s)
{
	static const char *const defaults[] = { "ts", "customer_id", "store_id", "amount" };
	const struct pr_feed_options *o = &s->opt.feed;
	char sep = o->delimiter_kind == PR_DELIM_WHITESPACE ? ' ' : o->delimiter;
	int fields[5], n = 0;
	fields[n++] = PR_FIELD_TS;
	fields[n++] = PR_FIELD_CUSTOMER;
	fields[n++] = PR_FIELD_STORE;
	if (o->column[PR_FIELD_QUANTITY] && o->column[PR_FIELD_PRICE]) {
		fields[n++] = PR_FIELD_QUANTITY;
		fields[n++] = PR_FIELD_PRICE;
	} else {
		fields[n++] = PR_FIELD_AMOUNT;
	}
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		const char *name = o->column[fields[i]] ? o->column[fields[i]] : defaults[fields[i]];
		len += (size_t)snprintf(s->ingest_header + len, sizeof s->ingest_header - len,
					"%s%s", i ? (char[]){ sep, 0 } : "", name);
		if (len >= sizeof s->ingest_header - 2)
			len = sizeof s->ingest_header - 2;
	}
	s->ingest_header[len++] = '\n';
	s->ingest_header[len] = 0;
	s->ingest_header_len = len;
}

int pr_server_create(struct pr_server **out, const struct pr_server_options *opt,
		     struct pr_error *err)
{
	struct pr_server *s = calloc(1, sizeof *s);
	if (!s)
		return pr_error_set(err, -ENOMEM, "out of memory");
	s->opt = *opt;
	s->listen_fd = s->signal_fd = -1;
	s->started_ms = pr_server_now_ms();
	s->started_wall_ms = wall_ms();
	s->notify = getenv("NOTIFY_SOCKET") != NULL;
	s->limits.max_request_bytes = opt->max_request_bytes;
	/* Enough for any request under the byte limit ("a " per inline word). */
	s->limits.max_args = opt->max_request_bytes / 2 + 16;
	s->argv = malloc(s->limits.max_args * sizeof *s->argv);
	s->argv_len = malloc(s->limits.max_args * sizeof *s->argv_len);
	int rc;
	if (!s->argv || !s->argv_len) {
		rc = pr_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (!opt->socket_path || !(s->socket_path = strdup(opt->socket_path))) {
		rc = pr_error_set(err, -EINVAL, "no socket path (--socket PATH)");
		goto fail;
	}
	build_ingest_header(s);
	/* Only this thread submits, and completions are reaped only when it
	 * asks (io_uring_submit_and_get_events or a wait), so the kernel keeps
	 * them as deferred work instead of interrupting the thread for each:
	 * pipelined RANK 0.55M -> 0.72M req/s (redis-benchmark 4 x 32).
	 * Kernels before 6.1 lack these flags and get a plain ring. */
	rc = io_uring_queue_init(4096, &s->ring,
				 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(4096, &s->ring, 0);
	if (rc < 0) {
		pr_error_set(err, rc, "io_uring unavailable: %s", strerror(-rc));
		goto fail_noring;
	}
	if ((rc = pr_engine_create(&s->engine, &opt->engine, err)) < 0)
		goto fail;
	/* The checkpoint before the feeds: they resume at its positions. */
	if ((rc = pr_persist_open(s, err)) < 0)
		goto fail;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (s->signal_fd < 0) {
		rc = pr_error_set(err, -errno, "signalfd: %s", strerror(errno));
		goto fail;
	}
	/* Feeds first: once the query socket answers, every producer socket
	 * listens too. */
	for (size_t i = 0; i < opt->feed_count; i++)
		if ((rc = pr_feeds_open(s, opt->feeds[i], err)) < 0)
			goto fail;
	if (opt->metrics_socket_path &&
	    (rc = pr_metrics_socket_open(s, opt->metrics_socket_path, err)) < 0)
		goto fail;
	if ((rc = pr_server_bind_unix(s->socket_path, opt->socket_mode, &s->listen_fd,
				      &s->socket_created, err)) < 0)
		goto fail;
	struct stat st;
	if (lstat(s->socket_path, &st) == 0) {
		s->socket_ino = st.st_ino;
		s->socket_dev = st.st_dev;
	}
	*out = s;
	return 0;
fail:
	pr_server_destroy(s);
	return rc;
fail_noring:
	free(s->argv);
	free(s->argv_len);
	free(s->socket_path);
	free(s);
	return rc;
}

void pr_server_stop(struct pr_server *s)
{
	s->stopping = true;
}

/* SIGHUP: the log file reopened (a rotation renamed it), the config file
 * reread; the new limits reach the ranker and the open connections. */
static void hang_up(struct pr_server *s)
{
	if (s->opt.log_path) {
		int fd = open(s->opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			pr_log("SIGHUP: cannot reopen %s (%s): the log goes on where it was",
			       s->opt.log_path, strerror(errno));
		else
			pr_log("SIGHUP: log reopened");
		if (fd >= 0)
			close(fd);
	}
	if (!s->opt.reload) {
		pr_log("SIGHUP: no --config file to reread");
		return;
	}
	struct pr_server_options o = s->opt;
	if (s->opt.reload(s->opt.reload_ctx, &o) < 0)
		return;
	s->opt = o;
	if (s->ranker)
		pr_ranker_set_interval(s->ranker, pr_server_rank_interval_least(&o),
				       o.rank_interval_ms);
	for (struct pr_client *c = s->clients; c; c = c->next)
		c->out.limit = o.max_output_bytes + 1;
}

static void on_signal(struct pr_server *s, int res)
{
	if (res != (int)sizeof siginfo) {
		if (res != -EINTR && res != -EAGAIN)
			pr_log("signalfd read: %s", res < 0 ? strerror(-res) : "short read");
		arm_signal(s);
		return;
	}
	if (siginfo.ssi_signo == SIGHUP) {
		hang_up(s);
		arm_signal(s);
		return;
	}
	pr_log("%s: stopping", strsignal((int)siginfo.ssi_signo));
	s->stopping = true;
}

static void handle_cqe(struct pr_server *s, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	if (data == LIBURING_UDATA_TIMEOUT)
		return; /* liburing's own wait timeout on kernels before 5.11 */
	enum op op = (enum op)(data & 7);
	void *owner = (void *)(uintptr_t)(data & ~(uint64_t)7);
	switch (op) {
	case OP_ACCEPT:
		on_accept(s, cqe->res);
		break;
	case OP_SIGNAL:
		on_signal(s, cqe->res);
		break;
	case OP_RECV:
		on_recv(s, owner, cqe->res);
		break;
	case OP_SEND:
		on_send(s, owner, cqe->res);
		break;
	case OP_MODULE: {
		struct pr_server_op *mop = owner;
		mop->complete(s, mop, cqe->res);
		break;
	}
	}
}

/* Whether records are applied by threads of their own (--threads 2 or
 * more; shard_owners.h): then the engine is drained only before something
 * reads it, not after every feed turn. */
static bool apply_threads(const struct pr_server *s)
{
	return pr_engine_options(s->engine)->apply_threads > 1;
}

void pr_server_feed_turn_done(struct pr_server *s)
{
	/* One thread: the turn's records are applied now, as between every
	 * two turns. Apply threads go on while this thread waits for bytes or
	 * serves clients: a drain after every turn (thousands a second at full
	 * ingest) would make every turn wait for the slowest owner. */
	if (!apply_threads(s))
		pr_server_drain(s);
}

/* The sooner of two "call again in" times (-1: never). */
static int sooner(int a, int b)
{
	return b >= 0 && (a < 0 || b < a) ? b : a;
}

/*
 * The ranker's batch: the changes handed over as soon as it can take them.
 * With apply threads, they cut it behind the records they hold, and this
 * thread goes on decoding: a drain here would stop ingest until the
 * slowest of them is done. Only a whole batch, rare, waits for a drain.
 */
static int ranker_turn(struct pr_server *s)
{
	int wait = pr_ranker_due(s->ranker);
	if (wait)
		return wait;
	if (!pr_ranker_cuts_staged(s->ranker))
		pr_server_drain(s);
	return pr_ranker_feed(s->ranker, false);
}

/* The readers of a loop turn, each draining only once it is due: the
 * alerts and the ranker. Returns the least wait in ms, or -1. */
static int readers_turn(struct pr_server *s)
{
	return sooner(pr_commands_alerts(s, false), s->ranker ? ranker_turn(s) : -1);
}

/* Once a second: the ingest rate, and systemd's status line. */
static void tick(struct pr_server *s, int64_t now)
{
	if (now - s->rate_ms < 1000)
		return;
	pr_server_drain(s); /* the customer count reads the shards */
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	if (s->rate_ms)
		s->records_per_sec = (double)(st.records - s->rate_records) * 1000.0 /
				     (double)(now - s->rate_ms);
	s->rate_ms = now;
	s->rate_records = st.records;
	if (s->notify) {
		char status[200];
		snprintf(status, sizeof status, "STATUS=%s: %llu records, %llu customers, %.0f records/s, %u clients",
			 pr_server_ingesting(s) ? "ingesting" : "serving", (unsigned long long)st.records,
			 (unsigned long long)st.customers, s->records_per_sec, s->client_count);
		notify(status);
	}
}

/*
 * Instead of sleeping right after answering: a client asking one request at
 * a time sends its next within tens of microseconds, and waking a sleeping
 * thread costs about as much again (an interrupt to its core, a context
 * switch). Polls until a completion arrives, busy_poll_us has passed
 * since the last answer or due_ms (the next timed work; -1: none) has;
 * never while feeds ingest, whose apply threads want the cores. Returns
 * whether a completion arrived.
 */
static bool busy_poll(struct pr_server *s, int due_ms)
{
	if (!s->opt.busy_poll_us || pr_server_ingesting(s))
		return false;
	int64_t now = now_us(), until = s->last_command_us + s->opt.busy_poll_us;
	if (due_ms >= 0 && now + (int64_t)due_ms * 1000 < until)
		until = now + (int64_t)due_ms * 1000;
	if (now >= until || io_uring_submit(&s->ring) < 0)
		return false;
	s->busy_polls++;
	do {
		if (io_uring_get_events(&s->ring) < 0)
			return false;
		if (io_uring_cq_ready(&s->ring)) {
			s->busy_poll_hits++;
			return true;
		}
	} while (now_us() < until);
	return false;
}

int pr_server_run(struct pr_server *s, struct pr_error *err)
{
	arm_accept(s);
	arm_signal(s);
	pr_feeds_start(s);
	pr_metrics_socket_start(s);
	pr_log("listening on %s (mode %04o), %zu feed%s", s->socket_path,
	       (unsigned)s->opt.socket_mode, s->opt.feed_count, s->opt.feed_count == 1 ? "" : "s");
	notify("READY=1\nSTATUS=listening");
	while (!s->stopping) {
		/* While a checkpoint is written nothing writes the engine
		 * (persistence.h): no feed is decoded, no batch cut, and the
		 * loop looks every millisecond whether it is done. */
		bool writing = pr_persist_writing(s);
		if (!writing)
			pr_feeds_turn(s);
		waiting_turn(s);
		int due = writing ? 1 : readers_turn(s);
		int64_t now = pr_server_now_ms();
		tick(s, now);
		pr_persist_tick(s, now);
		int rc;
		if (s->ready && !writing) {
			/* Not io_uring_submit: deferred completions run only when
			 * the thread asks for events. */
			rc = io_uring_submit_and_get_events(&s->ring);
		} else if (busy_poll(s, due)) {
			rc = 0;
		} else {
			long wait_ms = 1000 - (now - s->rate_ms);
			if (due >= 0 && due < wait_ms)
				wait_ms = due;
			if (wait_ms < 1)
				wait_ms = 1;
			struct __kernel_timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000 };
			/* An apply thread reading a customer's history tells no one
			 * when it is done: look again soon. */
			if (s->waiting)
				ts = (struct __kernel_timespec){ 0, HISTORY_POLL_NS };
			struct io_uring_cqe *cqe;
			rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
			if (rc == -ETIME || rc == -EINTR)
				rc = 0;
		}
		if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) {
			pr_error_set(err, rc, "io_uring: %s", strerror(-rc));
			return rc;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&s->ring, head, cqe) {
			handle_cqe(s, cqe);
			seen++;
		}
		io_uring_cq_advance(&s->ring, seen);
	}
	notify("STOPPING=1");
	/* What completions enqueued since the last feed turn. */
	pr_server_drain(s);
	/* Before the socket is removed (pr_server_destroy). */
	int final = pr_persist_final(s, err);
	struct pr_engine_state st;
	pr_engine_state(s->engine, &st);
	pr_log("stopped: %llu records, %llu customers, %llu commands served",
	       (unsigned long long)st.records, (unsigned long long)st.customers,
	       (unsigned long long)s->commands_total);
	return final;
}

void pr_server_destroy(struct pr_server *s)
{
	if (!s)
		return;
	/* A client's history request may still be in an apply thread's
	 * hands (a loop that stopped on an error): finished before the
	 * clients go. */
	if (s->engine)
		pr_engine_drain(s->engine);
	/* Leaving the ring cancels every operation in flight, so the buffers
	 * they point at may be freed afterwards. */
	io_uring_queue_exit(&s->ring);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	/* Only our own socket file: if someone removed it and another server
	 * bound the path since, that one's file stays. */
	struct stat st;
	if (s->socket_created && s->socket_path && lstat(s->socket_path, &st) == 0 &&
	    st.st_ino == s->socket_ino && st.st_dev == s->socket_dev)
		unlink(s->socket_path);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	for (struct pr_client **list = &s->clients; list; list = list == &s->clients ? &s->zombies : NULL) {
		while (*list) {
			struct pr_client *c = *list;
			*list = c->next;
			client_free(c);
		}
	}
	pr_feeds_destroy(s);
	pr_producers_free(&s->producers);
	pr_metrics_socket_destroy(s);
	pr_persist_destroy(s);
	pr_commands_free(s);
	pr_engine_destroy(s->engine);
	free(s->argv);
	free(s->argv_len);
	free(s->socket_path);
	free(s);
}
