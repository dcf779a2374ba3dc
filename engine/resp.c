/* resp.c - RESP2/RESP3 requests and replies; see resp.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

/* A decimal length after a type byte, up to CRLF. -1 incomplete, -2 bad. */
static long long read_length(const char *p, const char *end, const char **next)
{
	const char *q = p;
	while (q < end && *q != '\r' && *q != '\n')
		q++;
	if (q == end || (*q == '\r' && q + 1 == end))
		return (end - p) > 24 ? -2 : -1; /* no number is that long */
	if (*q != '\r' || q[1] != '\n' || q == p)
		return -2;
	long long v = 0;
	bool negative = *p == '-';
	for (const char *d = p + negative; d < q; d++) {
		if (*d < '0' || *d > '9' || v > (1LL << 40))
			return -2;
		v = v * 10 + (*d - '0');
	}
	if (negative && !(v == 1 && q == p + 2))
		return -2; /* only "-1" (a null) is negative in a request */
	*next = q + 2;
	return negative ? -3 : v;
}

static int inline_command(const char *buf, size_t len, const struct pr_resp_limits *limits,
			  struct pr_resp_command *out, size_t *consumed, struct pr_error *err)
{
	const char *nl = memchr(buf, '\n', len);
	if (!nl) {
		if (len > limits->max_request_bytes)
			return pr_error_set(err, -E2BIG, "Protocol error: too big inline request");
		return PR_RESP_MORE;
	}
	const char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl;
	out->argc = 0;
	for (const char *p = buf; p < end;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		const char *word = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		if (out->argc == limits->max_args)
			return pr_error_set(err, -E2BIG, "Protocol error: too many arguments");
		out->argv[out->argc] = word;
		out->argv_len[out->argc++] = (size_t)(p - word);
	}
	*consumed = (size_t)(nl + 1 - buf);
	return 0;
}

int pr_resp_parse(const char *buf, size_t len, const struct pr_resp_limits *limits,
		  struct pr_resp_command *out, size_t *consumed, struct pr_error *err)
{
	if (len == 0)
		return PR_RESP_MORE;
	if (buf[0] != '*')
		return inline_command(buf, len, limits, out, consumed, err);
	const char *end = buf + len, *p;
	long long n = read_length(buf + 1, end, &p);
	if (n == -1)
		return PR_RESP_MORE;
	if (n < -1 || n == -3)
		return pr_error_set(err, -EPROTO, "Protocol error: invalid multibulk length");
	if ((unsigned long long)n > limits->max_args)
		return pr_error_set(err, -E2BIG, "Protocol error: too many arguments (%lld)", n);
	out->argc = 0;
	for (long long i = 0; i < n; i++) {
		if (p >= end)
			goto more;
		if (*p != '$')
			return pr_error_set(err, -EPROTO, "Protocol error: expected '$', got '%c'", *p);
		long long size = read_length(p + 1, end, &p);
		if (size == -1)
			goto more;
		if (size < 0)
			return pr_error_set(err, -EPROTO, "Protocol error: invalid bulk length");
		/* The whole command must fit the limit: refuse as soon as the
		 * announced sizes say it will not, before its bytes arrive. */
		size_t used = (size_t)(p - buf);
		if (used > limits->max_request_bytes ||
		    (unsigned long long)size + 2 > limits->max_request_bytes - used)
			return pr_error_set(err, -E2BIG, "Protocol error: request too large");
		if ((size_t)(end - p) < (size_t)size + 2)
			goto more;
		if (p[size] != '\r' || p[size + 1] != '\n')
			return pr_error_set(err, -EPROTO, "Protocol error: bulk string not followed by CRLF");
		out->argv[out->argc] = p;
		out->argv_len[out->argc++] = (size_t)size;
		p += size + 2;
	}
	*consumed = (size_t)(p - buf);
	return 0;
more:
	if (len > limits->max_request_bytes)
		return pr_error_set(err, -E2BIG, "Protocol error: request too large");
	return PR_RESP_MORE;
}

/* ---- replies -------------------------------------------------------------- */

void pr_resp_out_init(struct pr_resp_out *o, size_t limit)
{
	memset(o, 0, sizeof *o);
	o->limit = limit;
	o->protocol = 2;
}

void pr_resp_out_free(struct pr_resp_out *o)
{
	free(o->buf);
	o->buf = NULL;
	o->len = o->cap = 0;
}

void pr_resp_out_consume(struct pr_resp_out *o, size_t n)
{
	memmove(o->buf, o->buf + n, o->len - n);
	o->len -= n;
}

static void put(struct pr_resp_out *o, const char *p, size_t n)
{
	if (o->overflow)
		return;
	if (o->len + n > o->limit) {
		o->overflow = true;
		return;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		if (cap > o->limit)
			cap = o->limit;
		char *bigger = realloc(o->buf, cap);
		if (!bigger) {
			o->overflow = true;
			return;
		}
		o->buf = bigger;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void header(struct pr_resp_out *o, char type, long long n)
{
	char line[32];
	int k = snprintf(line, sizeof line, "%c%lld\r\n", type, n);
	put(o, line, (size_t)k);
}

void pr_resp_simple(struct pr_resp_out *o, const char *text)
{
	put(o, "+", 1);
	put(o, text, strlen(text));
	put(o, "\r\n", 2);
}

void pr_resp_error(struct pr_resp_out *o, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	size_t n = k < 0 ? 0 : (size_t)k < sizeof text ? (size_t)k : sizeof text - 1;
	for (size_t i = 0; i < n; i++) /* an error is one line */
		if (text[i] == '\r' || text[i] == '\n')
			text[i] = ' ';
	put(o, "-", 1);
	put(o, text, n);
	put(o, "\r\n", 2);
}

void pr_resp_integer(struct pr_resp_out *o, int64_t v)
{
	header(o, ':', v);
}

void pr_resp_bulk(struct pr_resp_out *o, const char *p, size_t n)
{
	header(o, '$', (long long)n);
	put(o, p, n);
	put(o, "\r\n", 2);
}

void pr_resp_cstring(struct pr_resp_out *o, const char *s)
{
	pr_resp_bulk(o, s, strlen(s));
}

void pr_resp_null(struct pr_resp_out *o)
{
	if (o->protocol == 3)
		put(o, "_\r\n", 3);
	else
		put(o, "$-1\r\n", 5);
}

void pr_resp_double(struct pr_resp_out *o, double v)
{
	/* The shortest text that reads back as the same double: 0.2, not
	 * 0.20000000000000001. */
	char text[40];
	int k = 0;
	for (int digits = 15; digits <= 17; digits++) {
		k = snprintf(text, sizeof text, "%.*g", digits, v);
		if (strtod(text, NULL) == v || v != v)
			break;
	}
	if (o->protocol == 3) {
		put(o, ",", 1);
		put(o, text, (size_t)k);
		put(o, "\r\n", 2);
	} else {
		pr_resp_bulk(o, text, (size_t)k);
	}
}

void pr_resp_bool(struct pr_resp_out *o, bool v)
{
	if (o->protocol == 3)
		put(o, v ? "#t\r\n" : "#f\r\n", 4);
	else
		put(o, v ? ":1\r\n" : ":0\r\n", 4);
}

void pr_resp_array(struct pr_resp_out *o, size_t n)
{
	header(o, '*', (long long)n);
}

void pr_resp_map(struct pr_resp_out *o, size_t n)
{
	if (o->protocol == 3)
		header(o, '%', (long long)n);
	else
		header(o, '*', (long long)n * 2);
}

void pr_resp_push(struct pr_resp_out *o, size_t n)
{
	header(o, o->protocol == 3 ? '>' : '*', (long long)n);
}
