/*
 * pareto/feed.h - feed decoding: options, rejects and the record sink.
 *
 * A feed is a byte stream of CSV (header row, RFC 4180 quoting, CRLF or LF)
 * or of binary records (see record.h; recognised by its magic). Decoders turn
 * it into struct pr_record values handed to a sink, one call per record.
 * A bad line never reaches the sink as a record: it is counted per reason and
 * handed to the sink's reject callback with its location, so totals built
 * from records never change because of it.
 */
#ifndef PARETO_FEED_H
#define PARETO_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "pareto/record.h"

enum pr_field {
	PR_FIELD_TS,
	PR_FIELD_CUSTOMER,
	PR_FIELD_STORE,
	PR_FIELD_AMOUNT,
	PR_FIELD_QUANTITY, /* with PRICE: amount = quantity x price */
	PR_FIELD_PRICE,
	PR_FIELD_COUNT
};

enum pr_delimiter_kind {
	PR_DELIM_CHAR,       /* one byte, e.g. ',' ';' '\t' '|' */
	PR_DELIM_WHITESPACE, /* runs of spaces and tabs; leading ones ignored */
};

#define PR_MAX_LINE_BYTES_DEFAULT (64u * 1024)

/*
 * Progress of a long read, for a display on another thread: decoders add
 * the bytes and records of every push with relaxed atomic adds (a reader
 * wants a recent value, not an ordering with other memory). Optional.
 */
struct pr_feed_progress {
	_Atomic uint64_t bytes;
	_Atomic uint64_t records;
};

struct pr_feed_options {
	enum pr_delimiter_kind delimiter_kind;
	char delimiter;
	/*
	 * Header name of each field's column. NULL means the default name
	 * (ts, customer_id, store_id, amount) for the first four and "not used"
	 * for quantity and price. A feed whose header lacks the store column
	 * and that did not map it explicitly counts as one store (store_len 0).
	 */
	const char *column[PR_FIELD_COUNT];
	const char *ts_format; /* strftime-style pattern; NULL: ISO-8601 or epoch */
	uint32_t scale;        /* decimal digits of the minor unit; 0..9 */
	size_t max_line_bytes; /* longer lines are rejected; 0: the default */
	struct pr_feed_progress *progress; /* borrowed; NULL: none kept */
};

/* Fills in defaults: comma, default column names, scale 2, 64 KiB lines. */
void pr_feed_options_init(struct pr_feed_options *opt);

enum pr_reject_reason {
	PR_REJECT_FIELD_COUNT,   /* wrong number of fields */
	PR_REJECT_TIME,          /* unparsable date or time */
	PR_REJECT_AMOUNT,        /* unparsable amount, quantity or price */
	PR_REJECT_CUSTOMER,      /* customer id empty or longer than 64 bytes */
	PR_REJECT_STORE,         /* store id longer than 32 bytes */
	PR_REJECT_OVERFLOW,      /* a number outside the int64 range */
	PR_REJECT_LINE_TOO_LONG, /* longer than max_line_bytes */
	PR_REJECT_QUOTE,         /* unterminated or misplaced quote */
	PR_REJECT_BINARY,        /* binary record with invalid lengths */
	PR_REJECT_TRUNCATED,     /* input ended inside a record */
	PR_REJECT_REASON_COUNT
};

/* A short lowercase name: "field-count", "time", ... */
const char *pr_reject_reason_name(enum pr_reject_reason reason);

struct pr_reject {
	const char *source;    /* file name as given, "-" for stdin */
	uint64_t line;         /* 1-based physical line (record index for binary) */
	uint64_t byte_offset;  /* offset of the line's first byte in the feed */
	unsigned column;       /* 1-based field, 0 when not about one field */
	enum pr_reject_reason reason;
	const char *detail;    /* human words: "amount: not a number" */
	const char *raw;       /* the raw line, borrowed, possibly cut short */
	size_t raw_len;
};

struct pr_feed_stats {
	uint64_t bytes;
	uint64_t lines;    /* data lines seen (header excluded) */
	uint64_t records;  /* handed to the sink */
	uint64_t rejected; /* sum of by_reason */
	uint64_t rounded;  /* amounts with more decimals than the scale */
	uint64_t by_reason[PR_REJECT_REASON_COUNT];
};

/* Adds the counts of `from` to `to`. */
void pr_feed_stats_add(struct pr_feed_stats *to, const struct pr_feed_stats *from);

struct pr_feed_sink {
	void *ctx;
	/*
	 * Called per good record; ids are borrowed for the call only. Returns
	 * 0 if the record was applied, or negative if the receiver refused it
	 * without changing anything (-ERANGE: a time or sum out of range; any
	 * other code: out of memory): the decoder then rejects that line as
	 * PR_REJECT_OVERFLOW, with its location, like any bad line.
	 */
	int (*record)(void *ctx, const struct pr_record *record);
	/* Called per bad line; return 0 to go on, negative to stop the feed. */
	int (*reject)(void *ctx, const struct pr_reject *reject);
};

#endif
