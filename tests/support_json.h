/*
 * support_json.h - a small, strict JSON reader for the tests: parses the
 * output of `pareto report --json` into a tree that a test walks by key and
 * index.
 *
 * Strict on purpose, since it checks an emitter: RFC 8259 grammar only (no
 * trailing commas, no leading zeros, no raw control bytes in strings),
 * duplicate keys in one object are an error, and one value must fill the
 * whole text (trailing white space allowed). Strings are decoded (\uXXXX
 * with surrogate pairs to UTF-8; \u0000 kept as a byte, so a string carries
 * its length). Numbers keep their exact text, their value as a double, and
 * as an int64 when the text is an integer that fits.
 *
 * Memory: tj_parse returns one malloc'ed tree; tj_free releases all of it.
 * Lookups return pointers into the tree (valid until tj_free) or NULL.
 * Parsing is O(size of the text) plus, per object, O(keys^2) for the
 * duplicate check; a key lookup is linear in the object's key count. Both
 * are small in a report, whose objects have at most 21 keys.
 */
#ifndef PARETO_SUPPORT_JSON_H
#define PARETO_SUPPORT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tj_type { TJ_NULL, TJ_BOOL, TJ_NUMBER, TJ_STRING, TJ_ARRAY, TJ_OBJECT };

struct tj {
	enum tj_type type;
	bool boolean;        /* TJ_BOOL */
	char *text;          /* TJ_STRING: decoded bytes; TJ_NUMBER: the literal; NUL-terminated */
	size_t len;          /* bytes in text */
	double number;       /* TJ_NUMBER */
	bool is_int;         /* TJ_NUMBER: an integer literal that fits int64 */
	int64_t integer;     /* valid if is_int */
	size_t count;        /* TJ_ARRAY, TJ_OBJECT: members */
	struct tj **items;   /* members in document order */
	char **keys;         /* TJ_OBJECT: decoded keys, parallel to items */
	size_t *key_lens;
};

/* Parses len bytes of text. On error returns NULL and, if error != NULL,
 * writes "offset N: what" into error[error_size]. */
struct tj *tj_parse(const char *text, size_t len, char *error, size_t error_size);
void tj_free(struct tj *v);

/* Member of an object by key (NULL if v is not an object or lacks it). */
const struct tj *tj_key(const struct tj *v, const char *key);
/* Element of an array (NULL if v is not an array or i >= count). */
const struct tj *tj_at(const struct tj *v, size_t i);
/*
 * Follows a path like "stores[2].key_clients[0].customer" from v (keys
 * may not contain '.' or '['). printf-style. NULL if any step is missing.
 */
const struct tj *tj_get(const struct tj *v, const char *path_fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Type name for messages: "null", "bool", "number", ... */
const char *tj_type_name(enum tj_type t);

/* Whether v is a string equal to the len bytes at s. */
bool tj_string_is(const struct tj *v, const char *s, size_t len);

/*
 * Whether an object has exactly the keys listed in `keys` (comma-separated,
 * any order). On a mismatch writes what differs into why[why_size].
 */
bool tj_has_exactly_keys(const struct tj *v, const char *keys, char *why, size_t why_size);

/* Deep equality of two trees (numbers compared by their literal text). */
bool tj_equal(const struct tj *a, const struct tj *b);

#endif
