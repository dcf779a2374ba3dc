/*
 * metrics_socket.h - paretod's optional Prometheus endpoint: a Unix socket
 * (--metrics-socket PATH) that answers HTTP/1.0-style requests with the
 * text of `INFO metrics`.
 *
 * Prometheus scrapes HTTP over TCP; a socket-capable proxy bridges the two,
 * e.g. nginx `proxy_pass http://unix:/run/pareto/metrics.sock:/metrics;` or
 * `socat TCP-LISTEN:9464,fork,reuseaddr UNIX-CONNECT:/run/pareto/metrics.sock`,
 * and `curl --unix-socket PATH http://localhost/metrics` reads it by hand.
 *
 * Protocol: one request per connection. `GET /metrics` (or `GET /`) gets
 * 200 with `Content-Type: text/plain; version=0.0.4` and the metrics; HEAD
 * the same headers; another path 404, another method 405, a request head
 * over 8 KiB 431. The response ends with the connection closed
 * (`Connection: close`, Content-Length given). A connection that sends no
 * complete request head within 5 s is closed. At most 64 connections at
 * once; more are closed at accept. Scrapes are not logged.
 *
 * Owns the listening socket and its file (mode socket_mode; a live
 * server's path is refused, a stale file replaced, the file removed at
 * exit if still ours) and every metrics connection. Everything goes
 * through the server's ring; the metrics text is built on the loop thread
 * between feed batches, so it is one consistent snapshot.
 */
#ifndef PARETO_METRICS_SOCKET_H
#define PARETO_METRICS_SOCKET_H

#include "pareto/error.h"

struct pr_server;

/* Binds and listens at path (server.c calls this at create). */
int pr_metrics_socket_open(struct pr_server *s, const char *path, struct pr_error *err);
/* Arms the first accept (no-op without a metrics socket). */
void pr_metrics_socket_start(struct pr_server *s);
/* Closes everything after the ring is gone; removes the socket file. */
void pr_metrics_socket_destroy(struct pr_server *s);

#endif
