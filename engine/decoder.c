/*
 * decoder.c - CSV and binary feeds to records; see decoder.h.
 *
 * CSV lines are decoded in place inside the pushed buffer; only a record
 * that straddles two pushes is copied into the carry buffer. A line without
 * quotes is split in one pass that finds its line end and its delimiters
 * 16 bytes at a time (SSE2; a byte loop elsewhere); quoted records (which
 * may hold delimiters, doubled quotes and newlines) take a byte-by-byte
 * scan. A record longer than max_line_bytes is rejected and skipped to its
 * end with at most max_line_bytes + 1 bytes ever held, whatever its size;
 * its end honours quotes like any record's, so where the pushes split
 * changes nothing. Nothing is allocated per record: the fields array and
 * the scratch for unquoted text grow to the longest record and stay.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "decimal.h"
#include "decoder.h"
#include "timeparse.h"

enum format { FORMAT_UNKNOWN, FORMAT_CSV, FORMAT_BINARY };

#define RAW_MAX_BYTES 256

struct field {
	const char *p;
	size_t len;
	bool quoted;
};

static const char *const default_names[PR_FIELD_COUNT] = {
	"ts", "customer_id", "store_id", "amount", NULL, NULL,
};

/* Quote state of a record scanned so far; see record_end(). */
enum scan_state { FIELD_START, IN_FIELD, IN_QUOTES, AFTER_QUOTE };

struct pr_decoder {
	char *source;                   /* owned copy */
	struct pr_feed_options opt;     /* column names point into names_storage */
	char *names_storage;            /* owned */
	struct pr_feed_sink sink;
	struct pr_feed_stats stats;
	enum format format;
	unsigned char probe[8];
	size_t probe_len;

	/* CSV */
	bool header_done;
	unsigned header_columns;
	int column_of[PR_FIELD_COUNT];  /* header index of each field, -1 unused */
	bool product;                   /* amount = quantity x price */
	char *carry;                    /* a record split between pushes; owned */
	size_t carry_len, carry_cap;
	enum scan_state carry_state; /* of the carried bytes */
	bool skipping;                  /* discarding the rest of a too-long record */
	enum scan_state skip_state;     /* of the bytes skipped so far */
	uint64_t line;                  /* physical lines consumed */
	uint64_t offset;                /* feed bytes consumed (at record starts) */
	uint64_t header_end;            /* offset after the header; 0 before it */
	struct field *fields;           /* owned; header_columns + 1 */
	size_t fields_cap;
	char *unquoted;                 /* scratch for fields with doubled quotes */
	size_t unquoted_cap;
	char detail[320];

	/* binary */
	bool bin_header_done;
	struct pr_bin_layout bin;       /* from the header */
	unsigned char bin_carry[PR_BIN_RECORD_MAX_BYTES];
	size_t bin_carry_len;
};

/* ---- rejects -------------------------------------------------------------- */

static int reject(struct pr_decoder *d, enum pr_reject_reason reason, uint64_t line,
		  uint64_t offset, unsigned column, const char *raw, size_t raw_len,
		  struct pr_error *err)
{
	d->stats.rejected++;
	d->stats.by_reason[reason]++;
	struct pr_reject r = {
		.source = d->source, .line = line, .byte_offset = offset, .column = column,
		.reason = reason, .detail = d->detail, .raw = raw,
		.raw_len = raw_len < RAW_MAX_BYTES ? raw_len : RAW_MAX_BYTES,
	};
	if (d->sink.reject && d->sink.reject(d->sink.ctx, &r) < 0)
		return pr_error_set(err, -ECANCELED, "%s: line %llu: %s", d->source,
				    (unsigned long long)line, d->detail);
	return 0;
}

#define DETAIL(d, ...) snprintf((d)->detail, sizeof (d)->detail, __VA_ARGS__)

/* A field's text for a message: cut short, quotes kept out. */
static int shown(const struct field *f)
{
	return f->len > 40 ? 40 : (int)f->len;
}

/* ---- CSV fields ----------------------------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static int ensure_fields(struct pr_decoder *d, size_t n)
{
	if (n <= d->fields_cap)
		return 0;
	size_t cap = n < 16 ? 16 : n * 2;
	struct field *f = realloc(d->fields, cap * sizeof *f);
	if (!f)
		return -ENOMEM;
	d->fields = f;
	d->fields_cap = cap;
	return 0;
}

static int ensure_unquoted(struct pr_decoder *d, size_t n)
{
	if (n <= d->unquoted_cap)
		return 0;
	char *u = realloc(d->unquoted, n);
	if (!u)
		return -ENOMEM;
	d->unquoted = u;
	d->unquoted_cap = n;
	return 0;
}

/*
 * Splits one record (no line end) into d->fields. Returns the number of
 * fields, or -1 with d->detail set for a quoting error, or -ENOMEM.
 * Stops counting (but keeps scanning) past the fields array's room.
 */
static long split(struct pr_decoder *d, const char *p, size_t len)
{
	const char *end = p + len;
	bool whitespace = d->opt.delimiter_kind == PR_DELIM_WHITESPACE;
	char delim = d->opt.delimiter;
	size_t n = 0;
	char *out = d->unquoted;
	if (whitespace) {
		while (p < end && is_space(*p))
			p++;
		if (p == end)
			return 0;
	}
	for (;;) {
		struct field f = { p, 0, false };
		const char *q = p;
		while (q < end && is_space(*q) && !(whitespace || *q == delim))
			q++;
		if (q < end && *q == '"') {
			/* Quoted: copy into the scratch, turning "" into ". */
			f.quoted = true;
			f.p = out;
			for (q++;; q++) {
				if (q >= end) {
					DETAIL(d, "unterminated quoted field %zu", n + 1);
					return -1;
				}
				if (*q == '"') {
					if (q + 1 < end && q[1] == '"') {
						*out++ = '"';
						q++;
						continue;
					}
					q++;
					break;
				}
				*out++ = *q;
			}
			f.len = (size_t)(out - f.p);
			while (q < end && is_space(*q) && !(whitespace || *q == delim))
				q++;
			p = q;
			if (p < end && !(whitespace ? is_space(*p) : *p == delim)) {
				DETAIL(d, "characters after the closing quote of field %zu", n + 1);
				return -1;
			}
		} else {
			while (p < end && !(whitespace ? is_space(*p) : *p == delim)) {
				if (*p == '"') {
					DETAIL(d, "quote inside unquoted field %zu", n + 1);
					return -1;
				}
				p++;
			}
			f.len = (size_t)(p - f.p);
		}
		if (n < d->fields_cap)
			d->fields[n] = f;
		n++;
		if (p >= end)
			break;
		if (whitespace) {
			while (p < end && is_space(*p))
				p++;
			if (p == end)
				break;
		} else {
			p++; /* the delimiter */
		}
	}
	return (long)n;
}

/* split() for a record known to hold no quote, with a one-byte delimiter:
 * the common case, one memchr per field. */
static long split_plain(struct pr_decoder *d, const char *p, size_t len)
{
	const char *end = p + len;
	size_t n = 0;
	for (;;) {
		const char *q = memchr(p, d->opt.delimiter, (size_t)(end - p));
		const char *field_end = q ? q : end;
		if (n < d->fields_cap)
			d->fields[n] = (struct field){ p, (size_t)(field_end - p), false };
		n++;
		if (!q)
			return (long)n;
		p = q + 1;
	}
}

static void trim(struct field *f)
{
	if (f->quoted)
		return;
	while (f->len && is_space(f->p[0])) {
		f->p++;
		f->len--;
	}
	while (f->len && is_space(f->p[f->len - 1]))
		f->len--;
}

static int parse_header(struct pr_decoder *d, const char *p, size_t len, struct pr_error *err)
{
	if (ensure_unquoted(d, len + 1) < 0 || ensure_fields(d, 64) < 0)
		return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
	long n = split(d, p, len);
	if (n > 0 && (size_t)n > d->fields_cap) {
		if (ensure_fields(d, (size_t)n) < 0)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
		n = split(d, p, len);
	}
	if (n < 0)
		return pr_error_set(err, -EINVAL, "%s: line %llu: header: %s", d->source,
				    (unsigned long long)d->line, d->detail);
	d->header_columns = (unsigned)n;
	for (long i = 0; i < n; i++)
		trim(&d->fields[i]);
	bool quantity = d->opt.column[PR_FIELD_QUANTITY], price = d->opt.column[PR_FIELD_PRICE];
	if (quantity != price)
		return pr_error_set(err, -EINVAL, "%s: map both quantity and price, or neither",
				    d->source);
	d->product = quantity && price;
	for (int f = 0; f < PR_FIELD_COUNT; f++) {
		const char *name = d->opt.column[f] ? d->opt.column[f] : default_names[f];
		d->column_of[f] = -1;
		if (!name || (f == PR_FIELD_AMOUNT && d->product))
			continue;
		size_t name_len = strlen(name);
		for (long i = 0; i < n && d->column_of[f] < 0; i++)
			if (d->fields[i].len == name_len && memcmp(d->fields[i].p, name, name_len) == 0)
				d->column_of[f] = (int)i;
		bool optional = f == PR_FIELD_STORE && !d->opt.column[f];
		if (d->column_of[f] < 0 && !optional) {
			char columns[256] = "";
			size_t at = 0;
			for (long i = 0; i < n && at < sizeof columns - 1; i++)
				at += (size_t)snprintf(columns + at, sizeof columns - at, "%s%.*s",
						       i ? ", " : "", (int)d->fields[i].len,
						       d->fields[i].p);
			return pr_error_set(err, -EINVAL, "%s: header has no column '%s' (columns: %s)",
					    d->source, name, columns);
		}
	}
	if (ensure_fields(d, d->header_columns + 1) < 0)
		return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
	d->header_done = true;
	d->header_end = d->offset;
	return 0;
}

static int decode_fields(struct pr_decoder *d, const char *p, size_t len, long n, uint64_t line,
			 uint64_t offset, struct pr_error *err);

/* Decodes one complete record of `len` bytes that began at line/offset. */
static int decode_record(struct pr_decoder *d, const char *p, size_t len, bool quoted,
			 uint64_t line, uint64_t offset, struct pr_error *err)
{
	if (len && p[len - 1] == '\r')
		len--;
	/* Checked first, as csv_push() does for a record that spans pushes,
	 * so that the verdict does not depend on where the pushes split. */
	if (len > d->opt.max_line_bytes) {
		if (!d->header_done)
			return pr_error_set(err, -EINVAL, "%s: header line longer than %zu bytes",
					    d->source, d->opt.max_line_bytes);
		d->stats.lines++;
		DETAIL(d, "line of %zu bytes, longer than %zu", len, d->opt.max_line_bytes);
		return reject(d, PR_REJECT_LINE_TOO_LONG, line, offset, 0, p, len, err);
	}
	if (offset == 0 && len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3; /* a UTF-8 byte order mark opens the feed, not the header */
		len -= 3;
	}
	size_t blank = 0;
	while (blank < len && is_space(p[blank]))
		blank++;
	if (blank == len)
		return 0; /* blank lines are layout, not data */
	if (!d->header_done)
		return parse_header(d, p, len, err);
	d->stats.lines++;
	long n;
	if (!quoted && d->opt.delimiter_kind == PR_DELIM_CHAR) {
		n = split_plain(d, p, len);
	} else {
		if (ensure_unquoted(d, len + 1) < 0)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
		if ((n = split(d, p, len)) < 0)
			return reject(d, PR_REJECT_QUOTE, line, offset, 0, p, len, err);
	}
	return decode_fields(d, p, len, n, line, offset, err);
}

/* The rest of a record split into n fields (d->fields): its values. */
static int decode_fields(struct pr_decoder *d, const char *p, size_t len, long n, uint64_t line,
			 uint64_t offset, struct pr_error *err)
{
	if ((unsigned long)n != d->header_columns) {
		DETAIL(d, "%ld fields, the header has %u", n, d->header_columns);
		return reject(d, PR_REJECT_FIELD_COUNT, line, offset, 0, p, len, err);
	}

	struct pr_record r = { 0 };
	struct field *f = &d->fields[d->column_of[PR_FIELD_CUSTOMER]];
	trim(f);
	if (f->len < 1 || f->len > PR_CUSTOMER_MAX_BYTES) {
		DETAIL(d, "customer: id of %zu bytes, expected 1..%d", f->len, PR_CUSTOMER_MAX_BYTES);
		return reject(d, PR_REJECT_CUSTOMER, line, offset,
			      (unsigned)d->column_of[PR_FIELD_CUSTOMER] + 1, p, len, err);
	}
	r.customer = f->p;
	r.customer_len = (uint8_t)f->len;
	if (d->column_of[PR_FIELD_STORE] >= 0) {
		f = &d->fields[d->column_of[PR_FIELD_STORE]];
		trim(f);
		if (f->len > PR_STORE_MAX_BYTES) {
			DETAIL(d, "store: id of %zu bytes, expected at most %d", f->len,
			       PR_STORE_MAX_BYTES);
			return reject(d, PR_REJECT_STORE, line, offset,
				      (unsigned)d->column_of[PR_FIELD_STORE] + 1, p, len, err);
		}
		r.store = f->p;
		r.store_len = (uint8_t)f->len;
	} else {
		r.store = "";
	}

	f = &d->fields[d->column_of[PR_FIELD_TS]];
	int rc = pr_time_parse(f->p, f->len, d->opt.ts_format, &r.ts_ms);
	if (rc < 0) {
		DETAIL(d, "ts: %s '%.*s'%s%s", rc == -ERANGE ? "out of range" : "not a time",
		       shown(f), f->p, d->opt.ts_format ? " for format " : "",
		       d->opt.ts_format ? d->opt.ts_format : "");
		return reject(d, rc == -ERANGE ? PR_REJECT_OVERFLOW : PR_REJECT_TIME, line, offset,
			      (unsigned)d->column_of[PR_FIELD_TS] + 1, p, len, err);
	}

	unsigned column;
	if (d->product) {
		struct field *q = &d->fields[d->column_of[PR_FIELD_QUANTITY]];
		f = &d->fields[d->column_of[PR_FIELD_PRICE]];
		rc = pr_decimal_product(q->p, q->len, f->p, f->len, d->opt.scale, &r.amount_minor);
		column = (unsigned)d->column_of[PR_FIELD_PRICE] + 1;
		if (rc == -EINVAL && pr_decimal_parse(q->p, q->len, 0, &(int64_t){ 0 }) == -EINVAL) {
			f = q;
			column = (unsigned)d->column_of[PR_FIELD_QUANTITY] + 1;
		}
	} else {
		f = &d->fields[d->column_of[PR_FIELD_AMOUNT]];
		rc = pr_decimal_parse(f->p, f->len, d->opt.scale, &r.amount_minor);
		column = (unsigned)d->column_of[PR_FIELD_AMOUNT] + 1;
	}
	if (rc < 0) {
		DETAIL(d, "amount: %s '%.*s'",
		       rc == -ERANGE ? "outside the int64 range of minor units"
				     : "not a decimal number",
		       shown(f), f->p);
		return reject(d, rc == -ERANGE ? PR_REJECT_OVERFLOW : PR_REJECT_AMOUNT, line, offset,
			      column, p, len, err);
	}
	r.rounded = rc == 1;
	if (d->sink.record(d->sink.ctx, &r) < 0) {
		DETAIL(d, "refused: the time is outside years 0..9999 or the total volume "
			  "would pass the int64 range");
		return reject(d, PR_REJECT_OVERFLOW, line, offset, 0, p, len, err);
	}
	d->stats.rounded += rc == 1;
	d->stats.records++;
	return 0;
}

static void put_field(struct pr_decoder *d, size_t n, const char *from, const char *to)
{
	if (n < d->fields_cap)
		d->fields[n] = (struct field){ from, (size_t)(to - from), false };
}

/*
 * The fast path of a record without quotes (one-byte delimiter): finds its
 * line end and its fields in one pass, 16 bytes at a time. Returns the
 * '\n', with *count fields in d->fields (counted beyond the room, not
 * stored); or NULL when a quote comes first or the buffer ends, and the
 * caller takes the quote-aware path.
 */
static const char *scan_plain(struct pr_decoder *d, const char *p, const char *end, long *count)
{
	const char delim = d->opt.delimiter;
	const char *field = p, *at = p;
	size_t n = 0;
#ifdef __SSE2__
	const __m128i newline = _mm_set1_epi8('\n'), quote = _mm_set1_epi8('"'),
		      delimiter = _mm_set1_epi8(delim);
	for (; end - at >= 16; at += 16) {
		__m128i block = _mm_loadu_si128((const __m128i *)(const void *)at);
		unsigned nl = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, newline));
		unsigned qt = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, quote));
		unsigned dl = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, delimiter));
		unsigned before = nl ? (nl & -nl) - 1 : 0xffffu; /* bytes before the line end */
		if (qt & before)
			return NULL;
		for (dl &= before; dl; dl &= dl - 1) {
			const char *at_delim = at + __builtin_ctz(dl);
			put_field(d, n++, field, at_delim);
			field = at_delim + 1;
		}
		if (nl) {
			const char *eol = at + __builtin_ctz(nl);
			put_field(d, n++, field, eol);
			*count = (long)n;
			return eol;
		}
	}
#endif
	for (; at < end; at++) {
		if (*at == '\n') {
			put_field(d, n++, field, at);
			*count = (long)n;
			return at;
		}
		if (*at == '"')
			return NULL;
		if (*at == delim) {
			put_field(d, n++, field, at);
			field = at + 1;
		}
	}
	return NULL;
}

/* Counts newlines in [p, end). */
static uint64_t count_lines(const char *p, const char *end)
{
	uint64_t n = 0;
	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		n++;
		p++;
	}
	return n;
}

/*
 * Where a record ends: the first newline outside a quoted field. A quote
 * opens a quoted field only at the start of a field (RFC 4180), so a stray
 * quote inside an unquoted field cannot swallow the lines after it; split()
 * rejects that line instead.
 */
static const char *record_end(const struct pr_decoder *d, const char *p, const char *end,
			      enum scan_state *state)
{
	bool whitespace = d->opt.delimiter_kind == PR_DELIM_WHITESPACE;
	char delim = d->opt.delimiter;
	enum scan_state st = *state;
	for (; p < end; p++) {
		char c = *p;
		if (st == IN_QUOTES) {
			if (c == '"')
				st = AFTER_QUOTE;
			continue;
		}
		if (c == '\n')
			break;
		if (whitespace ? is_space(c) : c == delim)
			st = FIELD_START;
		else if (c == '"')
			st = st == IN_FIELD ? IN_FIELD : IN_QUOTES; /* "" after a quote reopens */
		else if (!(st == FIELD_START && is_space(c)))
			st = IN_FIELD;
	}
	*state = st;
	return p < end ? p : NULL;
}

static int carry_append(struct pr_decoder *d, const char *p, size_t n)
{
	if (d->carry_len + n > d->carry_cap) {
		size_t cap = d->carry_cap ? d->carry_cap : 4096;
		while (cap < d->carry_len + n)
			cap *= 2;
		char *c = realloc(d->carry, cap);
		if (!c)
			return -ENOMEM;
		d->carry = c;
		d->carry_cap = cap;
	}
	memcpy(d->carry + d->carry_len, p, n);
	d->carry_len += n;
	return 0;
}

/* Completes a record of `len` bytes starting at d->line + 1 / d->offset. */
static int finish_record(struct pr_decoder *d, const char *p, size_t len, bool quoted,
			 bool newline, struct pr_error *err)
{
	uint64_t line = d->line + 1, offset = d->offset;
	d->line += (quoted ? count_lines(p, p + len) : 0) + newline;
	d->offset += len + newline;
	return decode_record(d, p, len, quoted, line, offset, err);
}

static int too_long(struct pr_decoder *d, const char *raw, size_t raw_len, struct pr_error *err)
{
	if (!d->header_done)
		return pr_error_set(err, -EINVAL, "%s: header line longer than %zu bytes",
				    d->source, d->opt.max_line_bytes);
	d->stats.lines++;
	DETAIL(d, "line longer than %zu bytes", d->opt.max_line_bytes);
	return reject(d, PR_REJECT_LINE_TOO_LONG, d->line + 1, d->offset, 0, raw, raw_len, err);
}

static int csv_push(struct pr_decoder *d, const char *p, size_t n, struct pr_error *err)
{
	const char *end = p + n;
	size_t max = d->opt.max_line_bytes;
	int rc = 0;
	while (p < end && rc == 0) {
		if (d->skipping) {
			/* The rest of a too-long record, skipped in constant memory.
			 * Its end honours quotes like any record's, so it does not
			 * depend on where the pushes split. */
			const char *nl;
			if (d->skip_state == IN_QUOTES || !(nl = memchr(p, '\n', (size_t)(end - p))) ||
			    memchr(p, '"', (size_t)(nl - p)))
				nl = record_end(d, p, end, &d->skip_state);
			d->line += count_lines(p, nl ? nl : end);
			if (!nl) {
				d->offset += (size_t)(end - p);
				return 0;
			}
			d->line++;
			d->offset += (size_t)(nl + 1 - p);
			d->skipping = false;
			p = nl + 1;
			continue;
		}
		if (d->carry_len) {
			enum scan_state before = d->carry_state;
			const char *nl = record_end(d, p, end, &d->carry_state);
			size_t take = (size_t)((nl ? nl : end) - p);
			if (d->carry_len + take > max + 1) {
				rc = too_long(d, d->carry, d->carry_len, err);
				d->offset += d->carry_len;
				d->line += count_lines(d->carry, d->carry + d->carry_len);
				d->carry_len = 0;
				d->skipping = true;
				d->skip_state = before; /* p is scanned again as skipped */
				continue;
			}
			if (carry_append(d, p, take) < 0)
				return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
			if (!nl)
				return 0;
			p = nl + 1;
			size_t len = d->carry_len;
			d->carry_len = 0;
			rc = finish_record(d, d->carry, len, true, true, err);
			continue;
		}
		const char *nl;
		long fields;
		if (d->header_done && d->opt.delimiter_kind == PR_DELIM_CHAR &&
		    (nl = scan_plain(d, p, end, &fields))) {
			size_t len = (size_t)(nl - p);
			if (fields < 2 || len > max) {
				/* Maybe blank or too long: the general path sorts it out. */
				rc = finish_record(d, p, len, false, true, err);
			} else {
				uint64_t line = ++d->line, offset = d->offset;
				d->offset += len + 1;
				if (p[len - 1] == '\r') {
					len--;
					if ((size_t)(fields - 1) < d->fields_cap)
						d->fields[fields - 1].len--; /* the CR ends the last field */
				}
				d->stats.lines++;
				rc = decode_fields(d, p, len, fields, line, offset, err);
			}
			p = nl + 1;
			continue;
		}
		enum scan_state state = FIELD_START;
		nl = record_end(d, p, end, &state);
		if (nl) {
			rc = finish_record(d, p, (size_t)(nl - p), true, true, err);
			p = nl + 1;
			continue;
		}
		/* The record goes on in the next push. */
		if ((size_t)(end - p) > max + 1) {
			rc = too_long(d, p, (size_t)(end - p), err);
			d->line += count_lines(p, end);
			d->offset += (size_t)(end - p);
			d->skipping = true;
			d->skip_state = state;
			return rc;
		}
		if (carry_append(d, p, (size_t)(end - p)) < 0)
			return pr_error_set(err, -ENOMEM, "%s: out of memory", d->source);
		d->carry_state = state;
		return 0;
	}
	return rc;
}

static int csv_finish(struct pr_decoder *d, struct pr_error *err)
{
	if (!d->carry_len || d->skipping)
		return 0;
	size_t len = d->carry_len;
	d->carry_len = 0;
	if (d->carry_state == IN_QUOTES) {
		uint64_t line = d->line + 1;
		d->stats.lines += d->header_done;
		DETAIL(d, "the feed ends inside a quoted field");
		if (!d->header_done)
			return pr_error_set(err, -EINVAL, "%s: line %llu: header: %s", d->source,
					    (unsigned long long)line, d->detail);
		return reject(d, PR_REJECT_QUOTE, line, d->offset, 0, d->carry, len, err);
	}
	return finish_record(d, d->carry, len, true, false, err);
}

/* ---- binary --------------------------------------------------------------- */

static int bin_record(struct pr_decoder *d, const unsigned char *bytes, struct pr_error *err)
{
	struct pr_record r;
	/* For binary feeds "line" is the record's index, offset its first byte. */
	uint64_t index = ++d->line, offset = d->offset;
	size_t size = d->bin.record_bytes;
	d->offset += size;
	d->stats.lines++;
	if (pr_bin_record_decode(bytes, &d->bin, &r) < 0) {
		/* No index in the words: a part of a file split across threads
		 * knows only its own; the reject's line carries the real one. */
		DETAIL(d, "binary record: invalid id lengths (%u, %u) or reserved bytes not zero",
		       bytes[16], bytes[17]);
		return reject(d, PR_REJECT_BINARY, index, offset, 0, (const char *)bytes, size,
			      err);
	}
	if (d->sink.record(d->sink.ctx, &r) < 0) {
		DETAIL(d, "refused: the time is outside years 0..9999 or the total volume "
			  "would pass the int64 range");
		return reject(d, PR_REJECT_OVERFLOW, index, offset, 0, (const char *)bytes, size,
			      err);
	}
	d->stats.records++;
	return 0;
}

static int bin_push(struct pr_decoder *d, const unsigned char *p, size_t n, struct pr_error *err)
{
	const unsigned char *end = p + n;
	if (!d->bin_header_done) {
		size_t take = PR_BIN_HEADER_BYTES - d->bin_carry_len;
		if (take > n)
			take = n;
		memcpy(d->bin_carry + d->bin_carry_len, p, take);
		d->bin_carry_len += take;
		p += take;
		if (d->bin_carry_len < PR_BIN_HEADER_BYTES)
			return 0;
		if (pr_bin_header_decode(d->bin_carry, &d->bin) < 0)
			return pr_error_set(err, -EINVAL,
					    "%s: binary header with a record size or id widths "
					    "this version does not read",
					    d->source);
		if (d->bin.scale != d->opt.scale)
			return pr_error_set(err, -EINVAL, "%s: binary feed has scale %u, expected %u",
					    d->source, d->bin.scale, d->opt.scale);
		d->bin_header_done = true;
		d->bin_carry_len = 0;
		d->offset = d->header_end = PR_BIN_HEADER_BYTES;
	}
	int rc = 0;
	size_t size = d->bin.record_bytes;
	if (d->bin_carry_len) {
		size_t take = size - d->bin_carry_len;
		if (take > (size_t)(end - p))
			take = (size_t)(end - p);
		memcpy(d->bin_carry + d->bin_carry_len, p, take);
		d->bin_carry_len += take;
		p += take;
		if (d->bin_carry_len < size)
			return 0;
		d->bin_carry_len = 0;
		rc = bin_record(d, d->bin_carry, err);
	}
	for (; rc == 0 && (size_t)(end - p) >= size; p += size)
		rc = bin_record(d, p, err);
	if (rc == 0 && p < end) {
		memcpy(d->bin_carry, p, (size_t)(end - p));
		d->bin_carry_len = (size_t)(end - p);
	}
	return rc;
}

static int bin_finish(struct pr_decoder *d, struct pr_error *err)
{
	if (!d->bin_carry_len)
		return 0;
	if (!d->bin_header_done)
		return pr_error_set(err, -EINVAL, "%s: binary feed ends inside its header",
				    d->source);
	uint64_t index = d->line + 1;
	d->stats.lines++;
	DETAIL(d, "the feed ends %zu bytes into a binary record", d->bin_carry_len);
	size_t len = d->bin_carry_len;
	d->bin_carry_len = 0;
	return reject(d, PR_REJECT_TRUNCATED, index, d->offset, 0,
		      (const char *)d->bin_carry, len, err);
}

/* ---- dispatch ------------------------------------------------------------- */

int pr_decoder_create(struct pr_decoder **out, const char *source,
		      const struct pr_feed_options *opt, const struct pr_feed_sink *sink,
		      struct pr_error *err)
{
	*out = NULL;
	if (opt->scale > PR_SCALE_MAX)
		return pr_error_set(err, -EINVAL, "%s: scale %u is above %d", source, opt->scale,
				    PR_SCALE_MAX);
	char delim = opt->delimiter;
	if (opt->delimiter_kind == PR_DELIM_CHAR && (delim == '"' || delim == '\n' || delim == '\r'))
		return pr_error_set(err, -EINVAL, "%s: the delimiter cannot be a quote or a line end",
				    source);
	struct pr_decoder *d = calloc(1, sizeof *d);
	size_t names = 0;
	for (int f = 0; f < PR_FIELD_COUNT; f++)
		names += opt->column[f] ? strlen(opt->column[f]) + 1 : 0;
	names += opt->ts_format ? strlen(opt->ts_format) + 1 : 0;
	if (!d || !(d->source = strdup(source)) || !(d->names_storage = malloc(names + 1))) {
		if (d)
			free(d->source);
		free(d);
		return pr_error_set(err, -ENOMEM, "%s: out of memory", source);
	}
	d->opt = *opt;
	char *at = d->names_storage;
	for (int f = 0; f < PR_FIELD_COUNT; f++) {
		if (opt->column[f]) {
			d->opt.column[f] = strcpy(at, opt->column[f]);
			at += strlen(at) + 1;
		}
	}
	if (opt->ts_format)
		d->opt.ts_format = strcpy(at, opt->ts_format);
	if (!d->opt.max_line_bytes)
		d->opt.max_line_bytes = PR_MAX_LINE_BYTES_DEFAULT;
	d->sink = *sink;
	*out = d;
	return 0;
}

static int push_known(struct pr_decoder *d, const char *bytes, size_t len, struct pr_error *err)
{
	return d->format == FORMAT_BINARY ? bin_push(d, (const unsigned char *)bytes, len, err)
					  : csv_push(d, bytes, len, err);
}

static int push_counted(struct pr_decoder *d, const char *bytes, size_t len,
			struct pr_error *err);

int pr_decoder_push(struct pr_decoder *d, const char *bytes, size_t len, struct pr_error *err)
{
	if (!d->opt.progress)
		return push_counted(d, bytes, len, err);
	uint64_t records = d->stats.records;
	int rc = push_counted(d, bytes, len, err);
	atomic_fetch_add_explicit(&d->opt.progress->bytes, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->opt.progress->records, d->stats.records - records,
				  memory_order_relaxed);
	return rc;
}

static int push_counted(struct pr_decoder *d, const char *bytes, size_t len,
			struct pr_error *err)
{
	d->stats.bytes += len;
	if (d->format == FORMAT_UNKNOWN) {
		/* Decide on the first 8 bytes: the binary magic, or CSV. */
		size_t take = sizeof d->probe - d->probe_len;
		if (take > len)
			take = len;
		memcpy(d->probe + d->probe_len, bytes, take);
		d->probe_len += take;
		if (pr_bin_magic_prefix(d->probe, d->probe_len) && d->probe_len < sizeof d->probe)
			return 0;
		d->format = d->probe_len == sizeof d->probe &&
					    pr_bin_magic_prefix(d->probe, sizeof d->probe)
				    ? FORMAT_BINARY
				    : FORMAT_CSV;
		int rc = push_known(d, (const char *)d->probe, d->probe_len, err);
		if (rc < 0)
			return rc;
		bytes += take;
		len -= take;
	}
	return len ? push_known(d, bytes, len, err) : 0;
}

int pr_decoder_finish(struct pr_decoder *d, struct pr_error *err)
{
	if (d->format == FORMAT_UNKNOWN) {
		d->format = FORMAT_CSV; /* fewer than 8 bytes: too short to be binary */
		int rc = csv_push(d, (const char *)d->probe, d->probe_len, err);
		if (rc < 0)
			return rc;
	}
	return d->format == FORMAT_BINARY ? bin_finish(d, err) : csv_finish(d, err);
}

const struct pr_feed_stats *pr_decoder_stats(const struct pr_decoder *d)
{
	return &d->stats;
}

void pr_decoder_seek(struct pr_decoder *d, uint64_t line, uint64_t offset)
{
	d->line = line;
	d->offset = offset;
	memset(&d->stats, 0, sizeof d->stats);
}

void pr_decoder_position(const struct pr_decoder *d, uint64_t *line, uint64_t *offset)
{
	*line = d->line;
	*offset = d->offset;
}

uint64_t pr_decoder_header_end(const struct pr_decoder *d)
{
	return d->header_end;
}

bool pr_decoder_idle(const struct pr_decoder *d)
{
	return d->format == FORMAT_CSV ? !d->carry_len && !d->skipping
	     : d->format == FORMAT_BINARY ? !d->bin_carry_len
	     : d->probe_len == 0;
}

void pr_decoder_destroy(struct pr_decoder *d)
{
	if (!d)
		return;
	free(d->source);
	free(d->names_storage);
	free(d->carry);
	free(d->fields);
	free(d->unquoted);
	free(d);
}
