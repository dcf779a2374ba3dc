/*
 * fuzz_resp.c - any bytes as what clients send (resp.h): commands parsed one
 * after another, as paretod does, and each answer checked against the
 * answers for shorter inputs. A connection's bytes arrive in arbitrary
 * pieces, so a parse must not depend on where they stop: every prefix of a
 * command is "more" (or an error, if the command is one), the whole command
 * parses to the same arguments however much follows it, and the
 * arguments lie inside the bytes it consumed, within the limits.
 *
 * The first 2 bytes set the limits: [0] the request bytes (16..1036), [1]
 * the arguments (1..16), so that the limits' edges are reached.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "resp.h"

#define MAX_ARGS 16

struct parsed {
	int rc;
	size_t consumed, argc;
	const char *argv[MAX_ARGS];
	size_t argv_len[MAX_ARGS];
};

static void parse(const char *buf, size_t len, const struct pr_resp_limits *limits,
		  struct parsed *out)
{
	struct pr_resp_command cmd = { 0, out->argv, out->argv_len };
	struct pr_error err = { 0 };
	out->consumed = 0;
	out->rc = pr_resp_parse(buf, len, limits, &cmd, &out->consumed, &err);
	out->argc = cmd.argc;
	FUZZ_CHECK(out->rc == 0 || out->rc == PR_RESP_MORE || out->rc == -EPROTO ||
			   out->rc == -E2BIG, "rc %d", out->rc);
	if (out->rc < 0)
		FUZZ_CHECK(strncmp(err.message, "Protocol error", 14) == 0, "error \"%s\"",
			   err.message);
}

/* A prefix of n bytes of the command at buf, whose whole answer is *whole. */
static void check_prefix(const char *buf, size_t n, const struct pr_resp_limits *limits,
			 const struct parsed *whole)
{
	struct parsed p;
	parse(buf, n, limits, &p);
	if (whole->rc == 0 && n >= whole->consumed) {
		FUZZ_CHECK(p.rc == 0 && p.consumed == whole->consumed && p.argc == whole->argc,
			   "the command parses to rc %d, %zu bytes with %zu more after it, but "
			   "to rc %d, %zu bytes, alone", whole->rc, whole->consumed,
			   n - whole->consumed, p.rc, p.consumed);
		for (size_t i = 0; i < p.argc; i++)
			FUZZ_CHECK(p.argv[i] == whole->argv[i] && p.argv_len[i] == whole->argv_len[i],
				   "argument %zu differs", i);
		return;
	}
	/* An error may show before the bytes that would show another: the
	 * connection is closed either way. */
	FUZZ_CHECK(p.rc == PR_RESP_MORE || (whole->rc < 0 && p.rc < 0),
		   "%zu bytes parse to rc %d, more of them to rc %d", n, p.rc, whole->rc);
}

int fuzz_resp(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct pr_resp_limits limits = {
		.max_request_bytes = 16 + (size_t)data[0] * 4,
		.max_args = 1 + data[1] % MAX_ARGS,
	};
	const char *buf = (const char *)data + 2;
	size_t len = size - 2;
	for (size_t at = 0; at <= len;) {
		struct parsed whole;
		parse(buf + at, len - at, &limits, &whole);
		/* Prefixes: all of the short ones, a sample of the rest. */
		size_t upto = whole.rc == 0 ? whole.consumed : len - at;
		for (size_t n = 0; n < upto; n += n < 64 ? 1 : 1 + n / 16)
			check_prefix(buf + at, n, &limits, &whole);
		if (whole.rc != 0)
			break;
		FUZZ_CHECK(whole.consumed >= 1 && whole.consumed <= len - at,
			   "consumed %zu of %zu", whole.consumed, len - at);
		FUZZ_CHECK(whole.consumed <= limits.max_request_bytes,
			   "a command of %zu bytes passed a limit of %zu", whole.consumed,
			   limits.max_request_bytes);
		FUZZ_CHECK(whole.argc <= limits.max_args, "%zu arguments", whole.argc);
		for (size_t i = 0; i < whole.argc; i++)
			FUZZ_CHECK(whole.argv[i] >= buf + at &&
					   whole.argv[i] + whole.argv_len[i] <= buf + at + whole.consumed,
				   "argument %zu outside the command", i);
		check_prefix(buf + at, whole.consumed, &limits, &whole);
		at += whole.consumed;
	}
	return 0;
}

FUZZ_ENTRY(fuzz_resp)
