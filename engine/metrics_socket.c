/*
 * metrics_socket.c - the Prometheus endpoint; see metrics_socket.h.
 *
 * Per connection one operation is in flight at a time: a receive (linked
 * to a timeout, whose own completion is nobody's and ignored) or a send.
 * A connection is freed when its last operation completes, or after the
 * ring is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "metrics_socket.h"
#include "server.h"

#define METRICS_CONNECTIONS_MAX 64
#define METRICS_REQUEST_MAX 8192
#define METRICS_RECV_TIMEOUT_MS 5000

struct metrics_conn {
	struct pr_server_op op;     /* the receive or send in flight */
	struct metrics_conn *prev, *next;
	int fd;
	bool inflight;
	char request[METRICS_REQUEST_MAX + 1];
	size_t request_len;
	char *response;             /* owned */
	size_t response_len, sent;
	struct __kernel_timespec timeout;
};

struct pr_metrics_socket {
	struct pr_server_op accept_op;
	int fd;
	char *path;                 /* owned */
	bool created;               /* the file is ours: remove it at exit ... */
	dev_t dev;                  /* ... if it is still the one we bound */
	ino_t ino;
	bool accept_inflight;
	struct pr_server_op pause_op; /* out of descriptors: accept again later */
	struct __kernel_timespec pause;
	bool pause_inflight;
	struct metrics_conn *conns;
	unsigned count;
};

static void on_accept(struct pr_server *s, struct pr_server_op *op, int res);
static void on_conn(struct pr_server *s, struct pr_server_op *op, int res);

static void arm_accept(struct pr_server *s, struct pr_metrics_socket *m)
{
	if (m->accept_inflight || s->stopping)
		return;
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	io_uring_prep_accept(sqe, m->fd, NULL, NULL, SOCK_CLOEXEC);
	pr_server_sqe_owner(sqe, &m->accept_op);
	m->accept_inflight = true;
}

static void conn_free(struct pr_metrics_socket *m, struct metrics_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->count--;
	close(c->fd);
	free(c->response);
	free(c);
}

static void arm_recv(struct pr_server *s, struct metrics_conn *c)
{
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	io_uring_prep_recv(sqe, c->fd, c->request + c->request_len,
			   METRICS_REQUEST_MAX - c->request_len, 0);
	sqe->flags |= IOSQE_IO_LINK;
	pr_server_sqe_owner(sqe, &c->op);
	c->timeout.tv_sec = METRICS_RECV_TIMEOUT_MS / 1000;
	c->timeout.tv_nsec = (long long)(METRICS_RECV_TIMEOUT_MS % 1000) * 1000000;
	sqe = pr_server_sqe(s);
	io_uring_prep_link_timeout(sqe, &c->timeout, 0);
	pr_server_sqe_owner(sqe, NULL);
	c->inflight = true;
}

static void arm_send(struct pr_server *s, struct metrics_conn *c)
{
	struct io_uring_sqe *sqe = pr_server_sqe(s);
	io_uring_prep_send(sqe, c->fd, c->response + c->sent, c->response_len - c->sent,
			   MSG_NOSIGNAL);
	pr_server_sqe_owner(sqe, &c->op);
	c->inflight = true;
}

/* The end of the request head: a blank line. */
static bool head_complete(const struct metrics_conn *c)
{
	return strstr(c->request, "\r\n\r\n") || strstr(c->request, "\n\n");
}

static bool word_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(p, word, n) == 0;
}

/* Builds the response to the request head in c->request. */
static int respond(struct pr_server *s, struct metrics_conn *c, bool too_large)
{
	const char *status = "200 OK", *extra = "";
	const char *method = c->request;
	size_t method_len = strcspn(method, " \r\n");
	const char *target = method + method_len;
	target += strspn(target, " ");
	size_t target_len = strcspn(target, " ?\r\n");
	bool head = word_is(method, method_len, "HEAD");
	char *body = NULL;
	size_t body_len = 0;
	if (too_large) {
		status = "431 Request Header Fields Too Large";
	} else if (!head && !word_is(method, method_len, "GET")) {
		status = "405 Method Not Allowed";
		extra = "Allow: GET, HEAD\r\n";
	} else if (!word_is(target, target_len, "/metrics") && !word_is(target, target_len, "/")) {
		status = "404 Not Found";
	} else if (!(body = pr_commands_metrics(s, &body_len))) {
		status = "500 Internal Server Error";
	}
	static const char not_found[] = "Not found: the metrics are at /metrics\n";
	const char *text = body;
	if (!body) {
		text = strncmp(status, "404", 3) == 0 ? not_found : "";
		body_len = strlen(text);
	}
	char header[300];
	int n = snprintf(header, sizeof header,
			 "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			 status, body_len, extra);
	size_t total = (size_t)n + (head ? 0 : body_len);
	c->response = malloc(total);
	if (!c->response) {
		free(body);
		return -ENOMEM;
	}
	memcpy(c->response, header, (size_t)n);
	if (!head)
		memcpy(c->response + n, text, body_len);
	c->response_len = total;
	c->sent = 0;
	free(body);
	return 0;
}

static void on_conn(struct pr_server *s, struct pr_server_op *op, int res)
{
	struct metrics_conn *c = (struct metrics_conn *)(void *)op;
	struct pr_metrics_socket *m = s->metrics;
	c->inflight = false;
	if (s->stopping) {
		conn_free(m, c);
		return;
	}
	if (c->response) { /* a send completed */
		if (res == -EINTR || res == -EAGAIN)
			res = 0;
		if (res < 0) {
			conn_free(m, c);
			return;
		}
		c->sent += (size_t)res;
		if (c->sent < c->response_len)
			arm_send(s, c);
		else
			conn_free(m, c); /* the close ends the response */
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		arm_recv(s, c);
		return;
	}
	if (res < 0 || (res == 0 && c->request_len == 0)) {
		conn_free(m, c); /* timed out (-ECANCELED), reset, or closed unasked */
		return;
	}
	c->request_len += (size_t)res;
	c->request[c->request_len] = 0;
	bool full = c->request_len == METRICS_REQUEST_MAX;
	/* A peer that shut its side after the request line is answered too. */
	if (!head_complete(c) && !full && res > 0) {
		arm_recv(s, c);
		return;
	}
	if (respond(s, c, full && !head_complete(c)) < 0) {
		conn_free(m, c);
		return;
	}
	arm_send(s, c);
}

static void on_pause(struct pr_server *s, struct pr_server_op *op, int res)
{
	(void)res;
	struct pr_metrics_socket *m = s->metrics;
	(void)op;
	m->pause_inflight = false;
	arm_accept(s, m);
}

static void on_accept(struct pr_server *s, struct pr_server_op *op, int res)
{
	struct pr_metrics_socket *m = (struct pr_metrics_socket *)(void *)op;
	m->accept_inflight = false;
	if (res == -ECANCELED || s->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res < 0) {
		if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
			pr_log("%s: accept: %s", m->path, strerror(-res));
		if ((res == -EMFILE || res == -ENFILE) && !m->pause_inflight) {
			m->pause.tv_sec = 0;
			m->pause.tv_nsec = 50 * 1000000;
			struct io_uring_sqe *sqe = pr_server_sqe(s);
			io_uring_prep_timeout(sqe, &m->pause, 0, 0);
			pr_server_sqe_owner(sqe, &m->pause_op);
			m->pause_inflight = true;
		} else {
			arm_accept(s, m);
		}
		return;
	}
	struct metrics_conn *c = NULL;
	if (m->count >= METRICS_CONNECTIONS_MAX || !(c = calloc(1, sizeof *c))) {
		close(res);
	} else {
		c->op.complete = on_conn;
		c->fd = res;
		c->next = m->conns;
		if (m->conns)
			m->conns->prev = c;
		m->conns = c;
		m->count++;
		arm_recv(s, c);
	}
	arm_accept(s, m);
}

int pr_metrics_socket_open(struct pr_server *s, const char *path, struct pr_error *err)
{
	struct pr_metrics_socket *m = calloc(1, sizeof *m);
	if (!m || !(m->path = strdup(path))) {
		free(m);
		return pr_error_set(err, -ENOMEM, "out of memory");
	}
	m->fd = -1;
	m->accept_op.complete = on_accept;
	m->pause_op.complete = on_pause;
	s->metrics = m;
	int rc = pr_server_bind_unix(path, s->opt.socket_mode, &m->fd, &m->created, err);
	if (rc < 0)
		return rc;
	struct stat st;
	if (lstat(path, &st) == 0) {
		m->dev = st.st_dev;
		m->ino = st.st_ino;
	}
	pr_log("%s: serving Prometheus metrics (HTTP GET /metrics)", path);
	return 0;
}

void pr_metrics_socket_start(struct pr_server *s)
{
	if (s->metrics && s->metrics->fd >= 0)
		arm_accept(s, s->metrics);
}

void pr_metrics_socket_destroy(struct pr_server *s)
{
	struct pr_metrics_socket *m = s->metrics;
	if (!m)
		return;
	while (m->conns)
		conn_free(m, m->conns);
	if (m->fd >= 0)
		close(m->fd);
	struct stat st;
	if (m->created && lstat(m->path, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino)
		unlink(m->path);
	free(m->path);
	free(m);
	s->metrics = NULL;
}
