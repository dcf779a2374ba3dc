/* cli_json.c - see cli_json.h. */
#include <assert.h>
#include <math.h>

#include "cli_json.h"

void json_init(struct json *j, FILE *out)
{
	j->out = out;
	j->depth = 0;
	j->first[0] = true;
}

static void raw_string(FILE *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned c = p[i];
		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc((int)c, out);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
		} else if (c < 0x80) {
			fputc((int)c, out);
		} else {
			/* Copy a well-formed UTF-8 sequence; escape a stray byte. */
			size_t need = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
				    : (c & 0xf8) == 0xf0 ? 3 : 0;
			size_t k = 0;
			while (need && k < need && i + 1 + k < len && (p[i + 1 + k] & 0xc0) == 0x80)
				k++;
			if (need && k == need && c >= 0xc2) {
				fwrite(p + i, 1, need + 1, out);
				i += need;
			} else {
				fprintf(out, "\\u%04x", c);
			}
		}
	}
	fputc('"', out);
}

static void begin_value(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->out);
	j->first[j->depth] = false;
	if (key) {
		raw_string(j->out, key, __builtin_strlen(key));
		fputc(':', j->out);
	}
}

static void open(struct json *j, const char *key, char c)
{
	begin_value(j, key);
	fputc(c, j->out);
	assert(j->depth + 1 < JSON_MAX_DEPTH);
	j->first[++j->depth] = true;
}

void json_object(struct json *j, const char *key) { open(j, key, '{'); }
void json_array(struct json *j, const char *key) { open(j, key, '['); }

void json_end(struct json *j, char close)
{
	assert(j->depth > 0);
	j->depth--;
	fputc(close, j->out);
	if (j->depth == 0)
		fputc('\n', j->out);
}

void json_string(struct json *j, const char *key, const char *s, size_t len)
{
	begin_value(j, key);
	raw_string(j->out, s, len);
}

void json_cstring(struct json *j, const char *key, const char *s)
{
	json_string(j, key, s, __builtin_strlen(s));
}

void json_int(struct json *j, const char *key, int64_t v)
{
	begin_value(j, key);
	fprintf(j->out, "%lld", (long long)v);
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
	begin_value(j, key);
	fprintf(j->out, "%llu", (unsigned long long)v);
}

void json_double(struct json *j, const char *key, double v)
{
	begin_value(j, key);
	if (isfinite(v))
		fprintf(j->out, "%.15g", v);
	else
		fputs("null", j->out);
}

void json_null(struct json *j, const char *key)
{
	begin_value(j, key);
	fputs("null", j->out);
}

void json_bool(struct json *j, const char *key, bool v)
{
	begin_value(j, key);
	fputs(v ? "true" : "false", j->out);
}
