/* support_json.c - a strict JSON reader for tests; see support_json.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_json.h"

#define MAX_DEPTH 64

struct reader {
	const char *p, *start, *end;
	char *error;
	size_t error_size;
	bool failed;
};

static void fail(struct reader *r, const char *what)
{
	if (!r->failed && r->error && r->error_size)
		snprintf(r->error, r->error_size, "offset %zu: %s", (size_t)(r->p - r->start), what);
	r->failed = true;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort(); /* a test helper: out of memory is not a case to handle */
	return p;
}

static void skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* Growing byte buffer for decoded strings and member lists. */
struct bytes {
	char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void put_utf8(struct bytes *b, uint32_t c)
{
	unsigned char u[4];
	size_t n;
	if (c < 0x80) {
		u[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (unsigned char)(0xc0 | c >> 6);
		u[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (unsigned char)(0xe0 | c >> 12);
		u[1] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
		u[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | c >> 18);
		u[1] = (unsigned char)(0x80 | (c >> 12 & 0x3f));
		u[2] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
		u[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	put(b, u, n);
}

static int hex4(struct reader *r, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++, r->p++) {
		if (r->p >= r->end) {
			fail(r, "\\u escape cut short");
			return -1;
		}
		char c = *r->p;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0) {
			fail(r, "bad hex digit in \\u escape");
			return -1;
		}
		v = v * 16 + (uint32_t)d;
	}
	*out = v;
	return 0;
}

/* Reads a string at r->p (at its opening quote) into b. */
static int read_string(struct reader *r, struct bytes *b)
{
	put(b, "", 0);
	if (r->p >= r->end || *r->p != '"') {
		fail(r, "expected a string");
		return -1;
	}
	r->p++;
	for (;;) {
		if (r->p >= r->end) {
			fail(r, "unterminated string");
			return -1;
		}
		unsigned char c = (unsigned char)*r->p;
		if (c == '"') {
			r->p++;
			return 0;
		}
		if (c < 0x20) {
			fail(r, "raw control byte in a string");
			return -1;
		}
		if (c != '\\') {
			put(b, r->p++, 1);
			continue;
		}
		if (++r->p >= r->end) {
			fail(r, "escape cut short");
			return -1;
		}
		char e = *r->p++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e && simple) {
			static const char decoded[] = "\"\\/\b\f\n\r\t";
			put(b, &decoded[simple - "\"\\/bfnrt"], 1);
			continue;
		}
		if (e != 'u') {
			fail(r, "unknown escape");
			return -1;
		}
		uint32_t cp;
		if (hex4(r, &cp) < 0)
			return -1;
		if (cp >= 0xd800 && cp < 0xdc00) {
			uint32_t low;
			if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
				fail(r, "high surrogate without its low half");
				return -1;
			}
			r->p += 2;
			if (hex4(r, &low) < 0)
				return -1;
			if (low < 0xdc00 || low > 0xdfff) {
				fail(r, "bad low surrogate");
				return -1;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
		} else if (cp >= 0xdc00 && cp < 0xe000) {
			fail(r, "lone low surrogate");
			return -1;
		}
		put_utf8(b, cp);
	}
}

static int read_number(struct reader *r, struct tj *v)
{
	const char *s = r->p;
	const char *p = s;
	if (p < r->end && *p == '-')
		p++;
	if (p >= r->end || *p < '0' || *p > '9') {
		fail(r, "expected a value");
		return -1;
	}
	if (*p == '0') {
		p++;
		if (p < r->end && *p >= '0' && *p <= '9') {
			fail(r, "leading zero in a number");
			return -1;
		}
	} else {
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	bool integer = true;
	if (p < r->end && *p == '.') {
		integer = false;
		p++;
		if (p >= r->end || *p < '0' || *p > '9') {
			r->p = p;
			fail(r, "no digit after the decimal point");
			return -1;
		}
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < r->end && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		if (p < r->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= r->end || *p < '0' || *p > '9') {
			r->p = p;
			fail(r, "no digit in the exponent");
			return -1;
		}
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	v->type = TJ_NUMBER;
	v->len = (size_t)(p - s);
	v->text = xcalloc(v->len + 1, 1);
	memcpy(v->text, s, v->len);
	v->number = strtod(v->text, NULL);
	if (integer) {
		errno = 0;
		long long i = strtoll(v->text, NULL, 10);
		v->is_int = errno == 0;
		v->integer = i;
	}
	r->p = p;
	return 0;
}

static bool literal(struct reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) >= n && memcmp(r->p, word, n) == 0) {
		r->p += n;
		return true;
	}
	return false;
}

static void add_member(struct tj *v, size_t *cap, struct tj *item, char *key, size_t key_len)
{
	if (v->count == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		v->items = realloc(v->items, *cap * sizeof *v->items);
		if (v->type == TJ_OBJECT) {
			v->keys = realloc(v->keys, *cap * sizeof *v->keys);
			v->key_lens = realloc(v->key_lens, *cap * sizeof *v->key_lens);
		}
		if (!v->items || (v->type == TJ_OBJECT && (!v->keys || !v->key_lens)))
			abort();
	}
	v->items[v->count] = item;
	if (v->type == TJ_OBJECT) {
		v->keys[v->count] = key;
		v->key_lens[v->count] = key_len;
	}
	v->count++;
}

static struct tj *read_value(struct reader *r, int depth)
{
	struct tj *v = xcalloc(1, sizeof *v);
	skip_ws(r);
	if (depth > MAX_DEPTH) {
		fail(r, "nested too deeply");
		return v;
	}
	if (r->p >= r->end) {
		fail(r, "expected a value, found the end");
		return v;
	}
	char c = *r->p;
	if (c == '{' || c == '[') {
		bool object = c == '{';
		char close = object ? '}' : ']';
		size_t cap = 0;
		v->type = object ? TJ_OBJECT : TJ_ARRAY;
		r->p++;
		skip_ws(r);
		if (r->p < r->end && *r->p == close) {
			r->p++;
			return v;
		}
		for (;;) {
			char *key = NULL;
			size_t key_len = 0;
			skip_ws(r);
			if (object) {
				struct bytes k = { 0 };
				if (read_string(r, &k) < 0) {
					free(k.p);
					return v;
				}
				for (size_t i = 0; i < v->count; i++) {
					if (v->key_lens[i] == k.len && memcmp(v->keys[i], k.p, k.len) == 0) {
						fail(r, "duplicate key in an object");
						free(k.p);
						return v;
					}
				}
				key = k.p;
				key_len = k.len;
				skip_ws(r);
				if (r->p >= r->end || *r->p != ':') {
					fail(r, "expected ':' after a key");
					free(key);
					return v;
				}
				r->p++;
			}
			struct tj *item = read_value(r, depth + 1);
			add_member(v, &cap, item, key, key_len);
			if (r->failed)
				return v;
			skip_ws(r);
			if (r->p < r->end && *r->p == ',') {
				r->p++;
				continue;
			}
			if (r->p < r->end && *r->p == close) {
				r->p++;
				return v;
			}
			fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
			return v;
		}
	}
	if (c == '"') {
		struct bytes b = { 0 };
		v->type = TJ_STRING;
		int rc = read_string(r, &b);
		v->text = b.p;
		v->len = b.len;
		if (rc < 0 && !v->text)
			v->text = xcalloc(1, 1);
		return v;
	}
	if (literal(r, "null")) {
		v->type = TJ_NULL;
	} else if (literal(r, "true")) {
		v->type = TJ_BOOL;
		v->boolean = true;
	} else if (literal(r, "false")) {
		v->type = TJ_BOOL;
	} else {
		read_number(r, v);
	}
	return v;
}

struct tj *tj_parse(const char *text, size_t len, char *error, size_t error_size)
{
	struct reader r = { text, text, text + len, error, error_size, false };
	struct tj *v = read_value(&r, 0);
	skip_ws(&r);
	if (!r.failed && r.p != r.end)
		fail(&r, "text after the value");
	if (r.failed) {
		tj_free(v);
		return NULL;
	}
	return v;
}

void tj_free(struct tj *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->count; i++) {
		tj_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->key_lens);
	free(v->text);
	free(v);
}

static const struct tj *key_n(const struct tj *v, const char *key, size_t n)
{
	if (!v || v->type != TJ_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->count; i++)
		if (v->key_lens[i] == n && memcmp(v->keys[i], key, n) == 0)
			return v->items[i];
	return NULL;
}

const struct tj *tj_key(const struct tj *v, const char *key)
{
	return key_n(v, key, strlen(key));
}

const struct tj *tj_at(const struct tj *v, size_t i)
{
	if (!v || v->type != TJ_ARRAY || i >= v->count)
		return NULL;
	return v->items[i];
}

const struct tj *tj_get(const struct tj *v, const char *path_fmt, ...)
{
	char path[512];
	va_list ap;
	va_start(ap, path_fmt);
	vsnprintf(path, sizeof path, path_fmt, ap);
	va_end(ap);
	const char *p = path;
	while (v && *p) {
		if (*p == '.') {
			p++;
			continue;
		}
		if (*p == '[') {
			char *end;
			unsigned long long i = strtoull(p + 1, &end, 10);
			if (*end != ']')
				return NULL;
			v = tj_at(v, (size_t)i);
			p = end + 1;
			continue;
		}
		size_t n = strcspn(p, ".[");
		v = key_n(v, p, n);
		p += n;
	}
	return v;
}

const char *tj_type_name(enum tj_type t)
{
	static const char *const names[] = { "null", "bool", "number", "string", "array", "object" };
	return t <= TJ_OBJECT ? names[t] : "?";
}

bool tj_string_is(const struct tj *v, const char *s, size_t len)
{
	return v && v->type == TJ_STRING && v->len == len && memcmp(v->text, s, len) == 0;
}

bool tj_has_exactly_keys(const struct tj *v, const char *keys, char *why, size_t why_size)
{
	if (!v || v->type != TJ_OBJECT) {
		snprintf(why, why_size, "not an object");
		return false;
	}
	size_t listed = 0;
	for (const char *k = keys; *k;) {
		size_t n = strcspn(k, ",");
		if (!key_n(v, k, n)) {
			snprintf(why, why_size, "key '%.*s' missing", (int)n, k);
			return false;
		}
		listed++;
		k += n;
		if (*k == ',')
			k++;
	}
	if (listed != v->count) {
		for (size_t i = 0; i < v->count; i++) {
			const char *k = keys;
			bool found = false;
			while (*k && !found) {
				size_t n = strcspn(k, ",");
				found = n == v->key_lens[i] && memcmp(k, v->keys[i], n) == 0;
				k += n;
				if (*k == ',')
					k++;
			}
			if (!found) {
				snprintf(why, why_size, "unexpected key '%s'", v->keys[i]);
				return false;
			}
		}
		snprintf(why, why_size, "%zu keys, expected %zu", v->count, listed);
		return false;
	}
	return true;
}

bool tj_equal(const struct tj *a, const struct tj *b)
{
	if (!a || !b)
		return a == b;
	if (a->type != b->type || a->count != b->count)
		return false;
	switch (a->type) {
	case TJ_NULL:
		return true;
	case TJ_BOOL:
		return a->boolean == b->boolean;
	case TJ_NUMBER:
	case TJ_STRING:
		return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
	case TJ_ARRAY:
		for (size_t i = 0; i < a->count; i++)
			if (!tj_equal(a->items[i], b->items[i]))
				return false;
		return true;
	case TJ_OBJECT:
		for (size_t i = 0; i < a->count; i++) {
			if (a->key_lens[i] != b->key_lens[i] ||
			    memcmp(a->keys[i], b->keys[i], a->key_lens[i]) != 0 ||
			    !tj_equal(a->items[i], b->items[i]))
				return false;
		}
		return true;
	}
	return false;
}
