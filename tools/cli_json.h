/*
 * cli_json.h - a small streaming JSON writer for the report.
 *
 * Tracks nesting so that commas and colons come out right; strings are
 * escaped (quotes, backslashes, control bytes; bytes that are not valid
 * UTF-8 become \u00XX so the output always parses). Doubles print with 15
 * significant digits, integers exactly.
 */
#ifndef PARETO_CLI_JSON_H
#define PARETO_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *out;
	int depth;
	bool first[JSON_MAX_DEPTH]; /* no element written yet at this depth */
};

void json_init(struct json *j, FILE *out);
/* Each value function takes an optional key: pass NULL inside arrays. */
void json_object(struct json *j, const char *key);
void json_array(struct json *j, const char *key);
void json_end(struct json *j, char close); /* '}' or ']' */
void json_string(struct json *j, const char *key, const char *s, size_t len);
void json_cstring(struct json *j, const char *key, const char *s);
void json_int(struct json *j, const char *key, int64_t v);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_double(struct json *j, const char *key, double v);
void json_null(struct json *j, const char *key);
void json_bool(struct json *j, const char *key, bool v);

#endif
