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
		return q - p > 24 ? -2 : -1; /* no number is that long */
	if (*q != '\r' || q[1] != '\n' || q == p || q - p > 24)
		return -2; /* the same answer, whether the CRLF came or not yet */
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
	/* The limit holds however the line arrives: a line that fits only
	 * because its end came in the same read is as big as one that did not. */
	size_t line = nl ? (size_t)(nl + 1 - buf) : len;
	if (line > limits->max_request_bytes)
		return pr_error_set(err, -E2BIG, "Protocol error: too big inline request");
	if (!nl)
		return PR_RESP_MORE;
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
		goto more;
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
	if ((size_t)(p - buf) > limits->max_request_bytes) /* "*000...0\r\n" */
		return pr_error_set(err, -E2BIG, "Protocol error: request too large");
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

/* Makes room for n more bytes: NULL (and overflow set) past the limit. */
static __attribute__((noinline)) char *grow(struct pr_resp_out *o, size_t n)
{
	if (o->overflow)
		return NULL;
	if (o->len + n > o->limit) {
		o->overflow = true;
		return NULL;
	}
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n)
		cap *= 2;
	if (cap > o->limit)
		cap = o->limit;
	char *bigger = realloc(o->buf, cap);
	if (!bigger) {
		o->overflow = true;
		return NULL;
	}
	o->buf = bigger;
	o->cap = cap;
	return o->buf + o->len;
}

/* Where the next n bytes go; the caller then adds n to o->len. */
static inline char *reserve(struct pr_resp_out *o, size_t n)
{
	if (!o->overflow && n <= o->cap - o->len)
		return o->buf + o->len;
	return grow(o, n);
}

static inline void put(struct pr_resp_out *o, const char *p, size_t n)
{
	char *d = reserve(o, n);
	if (d) {
		memcpy(d, p, n);
		o->len += n;
	}
}

static inline unsigned decimal_digits(uint64_t v)
{
	unsigned n = 1;
	while (v >= 10000) {
		v /= 10000;
		n += 4;
	}
	return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

/* Decimal digits of v, right-aligned to end, two at a time; returns where
 * they start. The quotient by 100 is spelled as its exact reciprocal
 * multiplication: GCC otherwise emits a 40-cycle div in some inlining
 * contexts. */
static inline char *digits_u64(char *end, uint64_t v)
{
	static const char pairs[201] =
		"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
		"8081828384858687888990919293949596979899";
	while (v >= 100) {
		uint64_t q = (uint64_t)(((unsigned __int128)v * 0x47ae147ae147ae15ull) >> 64);
		q = (q + ((v - q) >> 1)) >> 6; /* v / 100, exactly */
		unsigned r = (unsigned)(v - q * 100);
		end -= 2;
		end[0] = pairs[2 * r];
		end[1] = pairs[2 * r + 1];
		v = q;
	}
	if (v >= 10) {
		end -= 2;
		end[0] = pairs[2 * v];
		end[1] = pairs[2 * v + 1];
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

/* "<type><n>\r\n" then `extra` more bytes reserved; returns where they go,
 * and the whole length in *total. */
static char *header_then(struct pr_resp_out *o, char type, long long n, size_t extra,
			 size_t *total)
{
	if (n >= 0 && n < 10) { /* most field names, counts and small numbers */
		char *d = reserve(o, 4 + extra);
		if (!d)
			return NULL;
		d[0] = type;
		d[1] = (char)('0' + n);
		d[2] = '\r';
		d[3] = '\n';
		*total = 4 + extra;
		return d + 4;
	}
	unsigned long long v = n < 0 ? 0 - (unsigned long long)n : (unsigned long long)n;
	size_t h = 1 + (n < 0) + decimal_digits(v) + 2;
	char *d = reserve(o, h + extra);
	if (!d)
		return NULL;
	d[0] = type;
	if (n < 0)
		d[1] = '-';
	digits_u64(d + h - 2, v);
	d[h - 2] = '\r';
	d[h - 1] = '\n';
	*total = h + extra;
	return d + h;
}

static void header(struct pr_resp_out *o, char type, long long n)
{
	size_t total;
	if (header_then(o, type, n, 0, &total))
		o->len += total;
}

void pr_resp_simple(struct pr_resp_out *o, const char *text)
{
	size_t n = strlen(text);
	char *d = reserve(o, n + 3);
	if (!d)
		return;
	d[0] = '+';
	memcpy(d + 1, text, n);
	d[n + 1] = '\r';
	d[n + 2] = '\n';
	o->len += n + 3;
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
	size_t total;
	char *d = header_then(o, '$', (long long)n, n + 2, &total);
	if (!d)
		return;
	memcpy(d, p, n);
	d[n] = '\r';
	d[n + 1] = '\n';
	o->len += total;
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

/*
 * The text of %.{p}g for the smallest p in 15..17 whose text reads back as
 * v (0.2, not 0.20000000000000001), without printf for the doubles replies
 * carry (shares, percentiles, HHI: |v| from about 1e-16 to 1e14): with v =
 * m 2^e, v 10^k = m 5^k / 2^s is exact in 128 bits, so its rounding to p
 * digits and whether that decimal reads back as v (it lies within half an
 * ulp of v) are integer comparisons. Other values go through snprintf and
 * strtod. Returns the length written to text (at least 32 bytes).
 */
/* v 10^k = n / 2^s with n = m 5^k, split into q = floor and r = rest. */
struct scaled {
	unsigned __int128 five, one, r;
	uint64_t q;
};

static const unsigned __int128 pow5[32] = {
	((unsigned __int128)0x0ull << 64) | 0x1ull, /* 5^0 */
	((unsigned __int128)0x0ull << 64) | 0x5ull, /* 5^1 */
	((unsigned __int128)0x0ull << 64) | 0x19ull, /* 5^2 */
	((unsigned __int128)0x0ull << 64) | 0x7dull, /* 5^3 */
	((unsigned __int128)0x0ull << 64) | 0x271ull, /* 5^4 */
	((unsigned __int128)0x0ull << 64) | 0xc35ull, /* 5^5 */
	((unsigned __int128)0x0ull << 64) | 0x3d09ull, /* 5^6 */
	((unsigned __int128)0x0ull << 64) | 0x1312dull, /* 5^7 */
	((unsigned __int128)0x0ull << 64) | 0x5f5e1ull, /* 5^8 */
	((unsigned __int128)0x0ull << 64) | 0x1dcd65ull, /* 5^9 */
	((unsigned __int128)0x0ull << 64) | 0x9502f9ull, /* 5^10 */
	((unsigned __int128)0x0ull << 64) | 0x2e90eddull, /* 5^11 */
	((unsigned __int128)0x0ull << 64) | 0xe8d4a51ull, /* 5^12 */
	((unsigned __int128)0x0ull << 64) | 0x48c27395ull, /* 5^13 */
	((unsigned __int128)0x0ull << 64) | 0x16bcc41e9ull, /* 5^14 */
	((unsigned __int128)0x0ull << 64) | 0x71afd498dull, /* 5^15 */
	((unsigned __int128)0x0ull << 64) | 0x2386f26fc1ull, /* 5^16 */
	((unsigned __int128)0x0ull << 64) | 0xb1a2bc2ec5ull, /* 5^17 */
	((unsigned __int128)0x0ull << 64) | 0x3782dace9d9ull, /* 5^18 */
	((unsigned __int128)0x0ull << 64) | 0x1158e460913dull, /* 5^19 */
	((unsigned __int128)0x0ull << 64) | 0x56bc75e2d631ull, /* 5^20 */
	((unsigned __int128)0x0ull << 64) | 0x1b1ae4d6e2ef5ull, /* 5^21 */
	((unsigned __int128)0x0ull << 64) | 0x878678326eac9ull, /* 5^22 */
	((unsigned __int128)0x0ull << 64) | 0x2a5a058fc295edull, /* 5^23 */
	((unsigned __int128)0x0ull << 64) | 0xd3c21bcecceda1ull, /* 5^24 */
	((unsigned __int128)0x0ull << 64) | 0x422ca8b0a00a425ull, /* 5^25 */
	((unsigned __int128)0x0ull << 64) | 0x14adf4b7320334b9ull, /* 5^26 */
	((unsigned __int128)0x0ull << 64) | 0x6765c793fa10079dull, /* 5^27 */
	((unsigned __int128)0x2ull << 64) | 0x4fce5e3e2502611ull, /* 5^28 */
	((unsigned __int128)0xaull << 64) | 0x18f07d736b90be55ull, /* 5^29 */
	((unsigned __int128)0x32ull << 64) | 0x7cb2734119d3b7a9ull, /* 5^30 */
	((unsigned __int128)0xfcull << 64) | 0x6f7c40458122964dull, /* 5^31 */
};

static bool scale(uint64_t m, int e, int k, struct scaled *x)
{
	int s = -(e + k);
	if (k < 0 || k > 31 || s < 1 || s > 126)
		return false;
	x->five = pow5[k];
	unsigned __int128 n = (unsigned __int128)m * x->five; /* < 2^53 5^31 < 2^126 */
	x->one = (unsigned __int128)1 << s;
	x->q = (uint64_t)(n >> s); /* < 2^64: k is chosen for at most 17 digits */
	x->r = n & (x->one - 1);
	return (n >> s) >> 64 == 0;
}

size_t pr_resp_format_double(char *text, double v)
{
	static const uint64_t pow10[18] = {
		1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
		100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
		1000000000000ull, 10000000000000ull, 100000000000000ull,
		1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
	};
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	bool negative = bits >> 63;
	int biased = (int)(bits >> 52 & 0x7ff);
	uint64_t m = (bits & ((1ull << 52) - 1)) | 1ull << 52;
	int e = biased - 1075; /* |v| = m 2^e */
	if (biased == 0 || biased == 0x7ff || e >= 0)
		goto slow; /* zero, subnormal, infinite, NaN, or an integer >= 2^52 */
	/* exp10 = floor(log10 |v|), the exponent of the first digit: that of
	 * 2^floor(log2 |v|) (78913 / 2^18 is just under log10 2) or one more,
	 * which the 15-digit quotient says. */
	int exp10 = (int)(((int64_t)(e + 52) * 78913) >> 18);
	struct scaled x;
	for (int fixed = 0;; fixed++) {
		if (!scale(m, e, 14 - exp10, &x))
			goto slow;
		if (x.q >= pow10[14] && x.q < pow10[15])
			break;
		if (fixed)
			goto slow;
		exp10 += x.q < pow10[14] ? -1 : 1;
	}
	uint64_t digits = 0;
	int p = 15;
	for (;; p++) {
		if (p > 17 || (p > 15 && !scale(m, e, p - 1 - exp10, &x)))
			goto slow;
		/* Round half to even, as printf does. */
		unsigned __int128 half = x.one >> 1;
		bool up = x.r > half || (x.r == half && (x.q & 1));
		digits = x.q + up;
		/* It reads back as v if within half an ulp of v: 5^k / 2 in units
		 * of 2^-s, or 5^k / 4 below a power of two; a tie reads back as
		 * the even mantissa. */
		unsigned __int128 dist = up ? x.one - x.r : x.r;
		unsigned __int128 scaled_dist = !up && m == 1ull << 52 ? dist << 2 : dist << 1;
		if (scaled_dist < x.five || (scaled_dist == x.five && (m & 1) == 0))
			break;
	}
	if (digits == pow10[p]) { /* 9.99... rounded up to 10.0... */
		digits = pow10[p - 1];
		exp10++;
	}
	char buf[24];
	char *end = buf + sizeof buf;
	char *d = digits_u64(end, digits);
	while (end[-1] == '0' && end - d > 1)
		end--;
	size_t nd = (size_t)(end - d);
	char *t = text;
	if (negative)
		*t++ = '-';
	if (exp10 < -4 || exp10 >= p) {
		*t++ = d[0];
		if (nd > 1) {
			*t++ = '.';
			memcpy(t, d + 1, nd - 1);
			t += nd - 1;
		}
		*t++ = 'e';
		*t++ = exp10 < 0 ? '-' : '+';
		unsigned ex = (unsigned)(exp10 < 0 ? -exp10 : exp10);
		if (ex >= 100)
			*t++ = (char)('0' + ex / 100);
		*t++ = (char)('0' + ex / 10 % 10);
		*t++ = (char)('0' + ex % 10);
	} else if (exp10 >= 0) {
		size_t whole = (size_t)exp10 + 1;
		if (nd <= whole) {
			memcpy(t, d, nd);
			memset(t + nd, '0', whole - nd);
			t += whole;
		} else {
			memcpy(t, d, whole);
			t += whole;
			*t++ = '.';
			memcpy(t, d + whole, nd - whole);
			t += nd - whole;
		}
	} else {
		*t++ = '0';
		*t++ = '.';
		memset(t, '0', (size_t)(-exp10 - 1));
		t += -exp10 - 1;
		memcpy(t, d, nd);
		t += nd;
	}
	return (size_t)(t - text);
slow:;
	int k = 0;
	for (int prec = 15; prec <= 17; prec++) {
		k = snprintf(text, 32, "%.*g", prec, v);
		if (strtod(text, NULL) == v || v != v)
			break;
	}
	return (size_t)k;
}

void pr_resp_double(struct pr_resp_out *o, double v)
{
	char text[40];
	size_t k = pr_resp_format_double(text, v);
	if (o->protocol == 3) {
		put(o, ",", 1);
		put(o, text, k);
		put(o, "\r\n", 2);
	} else {
		pr_resp_bulk(o, text, k);
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
