/* test_resp.c - the Redis protocol: requests split anywhere, pipelined,
 * inline; malformed and oversized input; replies in RESP2 and RESP3. */
#include <criterion/criterion.h>
#include <errno.h>
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
