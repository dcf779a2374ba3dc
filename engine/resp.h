/*
 * resp.h - the Redis protocol (RESP2, and RESP3 after HELLO 3): requests in,
 * replies out, so that redis-cli and every Redis client can talk to paretod.
 *
 * Requests are parsed in place: a command's arguments point into the
 * caller's input buffer, which must stay unchanged until the command has been
 * handled; `consumed` says how many bytes to drop afterwards. Both forms
 * clients send are accepted: arrays of bulk strings ("*2\r\n$4\r\nPING...")
 * and inline commands ("PING\r\n"). Every length is checked against the
 * limits before it is trusted. Cost: O(bytes) per command, no allocation.
 *
 * Replies go into a growable buffer with a hard bound: past it the buffer
 * stops growing and says so (a client that does not read is cut off rather
 * than allowed to hold unbounded memory).
 */
#ifndef PARETO_RESP_H
#define PARETO_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pareto/error.h"

struct pr_resp_limits {
	size_t max_request_bytes; /* one command, all of it; default 1 MiB */
	size_t max_args;          /* arguments of one command; <= the caller's arrays */
};

struct pr_resp_command {
	size_t argc;
	const char **argv;  /* caller's array of max_args pointers into the input */
	size_t *argv_len;   /* caller's array of max_args lengths */
};

enum {
	PR_RESP_MORE = 1, /* no complete command yet: read more bytes */
};

/*
 * Parses one command from buf[0..len). Returns 0 with *out filled and
 * *consumed set; PR_RESP_MORE when the command is not complete yet (and
 * within the limits); or -EPROTO / -E2BIG with a Redis-style message in
 * *err ("Protocol error: ..."), after which the connection should be closed.
 * An empty inline line is consumed with argc 0.
 */
int pr_resp_parse(const char *buf, size_t len, const struct pr_resp_limits *limits,
		  struct pr_resp_command *out, size_t *consumed, struct pr_error *err);

struct pr_resp_out {
	char *buf;      /* owned */
	size_t len, cap;
	size_t limit;   /* hard bound on len */
	int protocol;   /* 2 or 3 */
	bool overflow;  /* a reply did not fit under the limit: drop the client */
};

void pr_resp_out_init(struct pr_resp_out *o, size_t limit);
void pr_resp_out_free(struct pr_resp_out *o);
/* Drops the first n bytes (they were sent). */
void pr_resp_out_consume(struct pr_resp_out *o, size_t n);

void pr_resp_simple(struct pr_resp_out *o, const char *text);    /* +text */
void pr_resp_error(struct pr_resp_out *o, const char *fmt, ...)  /* -fmt */
	__attribute__((format(printf, 2, 3)));
void pr_resp_integer(struct pr_resp_out *o, int64_t v);          /* :v */
void pr_resp_bulk(struct pr_resp_out *o, const char *p, size_t n);
void pr_resp_cstring(struct pr_resp_out *o, const char *s);      /* bulk of s */
void pr_resp_null(struct pr_resp_out *o);                        /* _ or $-1 */
void pr_resp_double(struct pr_resp_out *o, double v);            /* , or bulk */
/* The text of a double in replies: %.{p}g for the smallest p in 15..17 that
 * reads back as v. text holds at least 32 bytes; returns the length. */
size_t pr_resp_format_double(char *text, double v);
void pr_resp_bool(struct pr_resp_out *o, bool v);                /* #t/#f or :1/:0 */
void pr_resp_array(struct pr_resp_out *o, size_t n);
/* A map of n pairs: %n under RESP3, a flat array of 2n under RESP2. */
void pr_resp_map(struct pr_resp_out *o, size_t n);
/* An out-of-band push of n elements: >n under RESP3, an array under RESP2. */
void pr_resp_push(struct pr_resp_out *o, size_t n);

#endif
