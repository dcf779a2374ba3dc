/* test_resp.c - the Redis protocol: requests split anywhere, pipelined,
 * inline; malformed and oversized input; replies in RESP2 and RESP3. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define MAX_ARGS 16

static const struct pr_resp_limits limits = { 1024, MAX_ARGS };

struct parsed {
	const char *argv[MAX_ARGS];
	size_t argv_len[MAX_ARGS];
	struct pr_resp_command cmd;
};

static int parse(struct parsed *p, const char *buf, size_t len, size_t *consumed,
		 struct pr_error *err)
{
	p->cmd = (struct pr_resp_command){ 0, p->argv, p->argv_len };
	return pr_resp_parse(buf, len, &limits, &p->cmd, consumed, err);
}

static void expect_args(const struct parsed *p, size_t argc, const char *const *want)
{
	cr_assert_eq(p->cmd.argc, argc);
	for (size_t i = 0; i < argc; i++) {
		cr_assert_eq(p->argv_len[i], strlen(want[i]), "arg %zu", i);
		cr_assert_eq(memcmp(p->argv[i], want[i], p->argv_len[i]), 0, "arg %zu", i);
	}
}

Test(resp, multibulk_pipelined_and_split_anywhere)
{
	const char stream[] = "*2\r\n$4\r\nRANK\r\n$3\r\nC17\r\n"
			      "*1\r\n$4\r\nPING\r\n"
			      "*3\r\n$3\r\nTOP\r\n$2\r\n10\r\n$0\r\n\r\n";
	const char *first[] = { "RANK", "C17" }, *second[] = { "PING" }, *third[] = { "TOP", "10", "" };
	size_t total = sizeof stream - 1;
	/* Every prefix shorter than the first command asks for more. */
	for (size_t cut = 0; cut < 23; cut++) {
		struct parsed p;
		size_t used = 0;
		cr_assert_eq(parse(&p, stream, cut, &used, NULL), PR_RESP_MORE, "cut %zu", cut);
	}
	struct parsed p;
	size_t at = 0, used;
	cr_assert_eq(parse(&p, stream, total, &used, NULL), 0);
	expect_args(&p, 2, first);
	at += used;
	cr_assert_eq(parse(&p, stream + at, total - at, &used, NULL), 0);
	expect_args(&p, 1, second);
	at += used;
	cr_assert_eq(parse(&p, stream + at, total - at, &used, NULL), 0);
	expect_args(&p, 3, third);
	at += used;
	cr_assert_eq(at, total);
}

Test(resp, inline_commands)
{
	struct parsed p;
	size_t used;
	const char *want[] = { "RANK", "C17", "WINDOW", "prev-quarter" };
	const char line[] = "  RANK C17\tWINDOW prev-quarter\r\nPING\n";
	cr_assert_eq(parse(&p, line, sizeof line - 1, &used, NULL), 0);
	expect_args(&p, 4, want);
	cr_assert_eq(used, 32);
	cr_assert_eq(parse(&p, line + used, sizeof line - 1 - used, &used, NULL), 0);
	cr_assert_eq(p.cmd.argc, 1);
	cr_assert_eq(parse(&p, "\r\n", 2, &used, NULL), 0);
	cr_assert_eq(p.cmd.argc, 0, "an empty line is no command");
	cr_assert_eq(parse(&p, "PIN", 3, &used, NULL), PR_RESP_MORE);
}

Test(resp, malformed_and_oversized_requests)
{
	struct { const char *in; int rc; const char *message; } cases[] = {
		{ "*x\r\n", -EPROTO, "Protocol error: invalid multibulk length" },
		{ "*-5\r\n", -EPROTO, "Protocol error: invalid multibulk length" },
		{ "*1\r\n+PING\r\n", -EPROTO, "Protocol error: expected '$', got '+'" },
		{ "*1\r\n$-3\r\n", -EPROTO, "Protocol error: invalid bulk length" },
		{ "*1\r\n$4\r\nPINGxx", -EPROTO, "Protocol error: bulk string not followed by CRLF" },
		{ "*17\r\n", -E2BIG, "Protocol error: too many arguments (17)" },
		{ "*1\r\n$5000\r\n", -E2BIG, "Protocol error: request too large" },
		{ "*1\r\n$4\n", -EPROTO, "Protocol error: invalid bulk length" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct parsed p;
		size_t used;
		struct pr_error err = { 0 };
		cr_assert_eq(parse(&p, cases[i].in, strlen(cases[i].in), &used, &err), cases[i].rc,
			     "case %zu", i);
		cr_assert_str_eq(err.message, cases[i].message, "case %zu", i);
	}
	/* Garbage without a line end is cut off at the request limit. */
	static char garbage[2000];
	memset(garbage, 'g', sizeof garbage);
	struct parsed p;
	size_t used;
	struct pr_error err = { 0 };
	cr_assert_eq(parse(&p, garbage, 1000, &used, &err), PR_RESP_MORE);
	cr_assert_eq(parse(&p, garbage, sizeof garbage, &used, &err), -E2BIG);
	/* A command whose announced sizes pass the limit is refused before its
	 * bytes arrive; one that fits exactly (1024 bytes) is not. */
	const char *over = "*2\r\n$4\r\nECHO\r\n$1002\r\n";
	cr_assert_eq(parse(&p, over, strlen(over), &used, &err), -E2BIG);
	const char *fits = "*2\r\n$4\r\nECHO\r\n$1001\r\n";
	cr_assert_eq(parse(&p, fits, strlen(fits), &used, &err), PR_RESP_MORE);
}

/* Found by tools/fuzz: answers that depended on where a read ended. */
Test(resp, the_answer_does_not_depend_on_where_the_bytes_stop)
{
	struct parsed p;
	size_t used;
	struct pr_error err = { 0 };
	/* An inline line over the limit was refused while its end was still
	 * to come, and accepted when it came in the same read. */
	static char line[1100];
	memset(line, 'g', sizeof line);
	line[sizeof line - 1] = '\n';
	cr_assert_eq(parse(&p, line, sizeof line - 1, &used, &err), -E2BIG);
	cr_assert_eq(parse(&p, line, sizeof line, &used, &err), -E2BIG);
	line[1023] = '\n'; /* 1024 bytes with its line end: fits */
	cr_assert_eq(parse(&p, line, sizeof line, &used, &err), 0);
	cr_assert_eq(used, 1024);
	/* 24 zeros then CR was "no number is that long" before the LF came,
	 * and a length of 0 after. */
	const char *zeros = "*000000000000000000000000\r\n";
	cr_assert_eq(parse(&p, zeros, strlen(zeros) - 1, &used, &err), PR_RESP_MORE);
	cr_assert_eq(parse(&p, zeros, strlen(zeros), &used, &err), 0);
	cr_assert_eq(p.cmd.argc, 0);
	const char *more = "*0000000000000000000000000\r\n";
	cr_assert_eq(parse(&p, more, strlen(more) - 2, &used, &err), -EPROTO);
	cr_assert_eq(parse(&p, more, strlen(more), &used, &err), -EPROTO);
	/* A header of zeros alone may pass the request limit too. */
	static const struct pr_resp_limits small = { 16, MAX_ARGS };
	p.cmd = (struct pr_resp_command){ 0, p.argv, p.argv_len };
	cr_assert_eq(pr_resp_parse(zeros, strlen(zeros), &small, &p.cmd, &used, &err), -E2BIG);
	cr_assert_eq(pr_resp_parse(zeros, 17, &small, &p.cmd, &used, &err), -E2BIG);
}

Test(resp, replies_in_resp2_and_resp3)
{
	struct pr_resp_out o;
	pr_resp_out_init(&o, 1 << 20);
	pr_resp_simple(&o, "OK");
	pr_resp_error(&o, "ERR unknown command '%s'", "FOO\r\n");
	pr_resp_integer(&o, -42);
	pr_resp_cstring(&o, "C17");
	pr_resp_null(&o);
	pr_resp_double(&o, 0.25);
	pr_resp_map(&o, 2);
	pr_resp_push(&o, 3);
	const char want2[] = "+OK\r\n-ERR unknown command 'FOO  '\r\n:-42\r\n$3\r\nC17\r\n$-1\r\n"
			     "$4\r\n0.25\r\n*4\r\n*3\r\n";
	cr_assert_eq(o.len, sizeof want2 - 1);
	cr_assert_eq(memcmp(o.buf, want2, o.len), 0, "%.*s", (int)o.len, o.buf);
	pr_resp_out_consume(&o, o.len);
	o.protocol = 3;
	pr_resp_null(&o);
	pr_resp_double(&o, 0.25);
	pr_resp_map(&o, 2);
	pr_resp_push(&o, 3);
	const char want3[] = "_\r\n,0.25\r\n%2\r\n>3\r\n";
	cr_assert_eq(o.len, sizeof want3 - 1);
	cr_assert_eq(memcmp(o.buf, want3, o.len), 0);
	cr_assert_not(o.overflow);
	pr_resp_out_free(&o);
}

Test(resp, output_is_bounded)
{
	struct pr_resp_out o;
	pr_resp_out_init(&o, 100);
	for (int i = 0; i < 50; i++)
		pr_resp_cstring(&o, "0123456789");
	cr_assert(o.overflow, "a reader that never reads cannot grow the buffer past its bound");
	cr_assert_leq(o.len, 100);
	pr_resp_out_free(&o);
}

/* What pr_resp_format_double must print: the smallest of %.15g, %.16g and
 * %.17g that reads back as v. */
static size_t reference_double(char *text, double v)
{
	int k = 0;
	for (int prec = 15; prec <= 17; prec++) {
		k = snprintf(text, 40, "%.*g", prec, v);
		if (strtod(text, NULL) == v || v != v)
			break;
	}
	return (size_t)k;
}

static void check_double(double v, unsigned long seed)
{
	char got[40], want[40];
	size_t n = pr_resp_format_double(got, v);
	size_t w = reference_double(want, v);
	got[n] = 0;
	cr_assert(n == w && memcmp(got, want, n) == 0,
		  "%a (seed %lu): got '%s', want '%s'", v, seed, got, want);
}

static uint64_t next64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

Test(resp, doubles_print_like_the_shortest_of_15_to_17_digits)
{
	static const double fixed[] = {
		0.0, -0.0, 1.0, -1.0, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 0.5, 0.25, 1e-5, 1e-4,
		9.999999999999999e-5, 0.0001, 0.00011, 1e14, 1e15, 1e16, 1e17, 123456789012345.6,
		99999999999999.99, 999999999999999.9, 0.9999999999999999, 0.99999999999999994,
		20.0, 10.0, 5.0, 3456.789, 10000.0, 9999.999999999998, 1e-16, 1e-300, 1e300,
		5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1 + 0.2,
		4503599627370496.0, 4503599627370495.5, 9007199254740993.0, 1e-7, 1.5e-6,
		0.000123456789012345678, 1.0000000000000002, 0.30000000000000004,
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		check_double(fixed[i], 0);
		check_double(-fixed[i], 0);
	}
	check_double(1.0 / 0.0, 0);
	check_double(-1.0 / 0.0, 0);
	check_double(0.0 / 0.0, 0);
	uint64_t state = 0x9e3779b97f4a7c15ull;
	for (unsigned long seed = 0; seed < 300000; seed++) {
		uint64_t r = next64(&state);
		double v;
		switch (seed % 5) {
		case 0: /* any bits */
			memcpy(&v, &r, sizeof v);
			break;
		case 1: /* shares: a ratio of two integers */
			v = (double)(r % 1000000007 + 1) / (double)(next64(&state) % 10000000019ull + 1);
			break;
		case 2: /* exponents where replies live, any mantissa */
			r = (r & 0x800fffffffffffffull) | (uint64_t)(1023 - 60 + (int)(r >> 52 & 127)) << 52;
			memcpy(&v, &r, sizeof v);
			break;
		case 3: /* short decimals and their neighbours */
			v = (double)(r % 100000) / 1000.0;
			v = (r >> 40 & 1) ? nextafter(v, 1e300) : (r >> 41 & 1) ? nextafter(v, -1e300) : v;
			break;
		default: /* powers of two and ten, and their neighbours */
			v = (r & 1) ? ldexp(1.0, (int)(r >> 8 % 200) % 200 - 120)
				    : pow(10.0, (double)((int)(r >> 8 & 63) - 40));
			v = (r >> 40 & 1) ? nextafter(v, 0.0) : (r >> 41 & 1) ? nextafter(v, 1e300) : v;
			break;
		}
		check_double(v, seed);
	}
}

Test(resp, integers_and_bulk_headers_print_like_printf)
{
	uint64_t state = 0x2545f4914f6cdd1dull;
	struct pr_resp_out o;
	pr_resp_out_init(&o, 1u << 20);
	static const int64_t fixed[] = { 0, 1, -1, 9, 10, 99, 100, 101, 999, 1000, 9999, 10000,
					 INT64_MAX, INT64_MIN, INT64_MIN + 1, -10, -100 };
	for (int i = 0; i < 200000; i++) {
		uint64_t r = next64(&state);
		int64_t v = i < (int)(sizeof fixed / sizeof fixed[0]) ? fixed[i]
			  : (int64_t)(r >> (r & 63)) * ((r >> 7 & 1) ? -1 : 1);
		char want[64];
		int n = snprintf(want, sizeof want, ":%lld\r\n", (long long)v);
		o.len = 0;
		pr_resp_integer(&o, v);
		cr_assert(o.len == (size_t)n && memcmp(o.buf, want, o.len) == 0, "%lld", (long long)v);
		size_t len = (size_t)(r >> 40) % 300;
		static char payload[300];
		n = snprintf(want, sizeof want, "$%zu\r\n", len);
		o.len = 0;
		pr_resp_bulk(&o, payload, len);
		cr_assert(o.len == (size_t)n + len + 2 && memcmp(o.buf, want, (size_t)n) == 0, "%zu", len);
	}
	pr_resp_out_free(&o);
}
