/*
 * pareto/record.h - the purchase record, in memory and on disk.
 *
 * A record is one purchase line: event time, customer id, store id, amount.
 * Money is integer minor units (cents at scale 2); it is never a float.
 *
 * In memory (struct pr_record) the ids point into the decoder's buffers and
 * are valid only for the duration of the call that hands the record over.
 *
 * On disk (the binary feed formats) a file is a 16-byte header followed by
 * fixed-size records, all integers little-endian. Two layouts:
 *
 *   PRTREC02 (what pareto convert and pareto-gen write): the header says how
 *   wide the id fields are, so records are as small as the ids allow (32
 *   bytes for 9-byte customer and 5-byte store ids, against 128).
 *
 *   header   offset  size  field
 *            0       8     magic "PRTREC02"
 *            8       2     record size in bytes: 18 + C + S rounded up to 8
 *            10      1     C, the customer id field's width, 1..64
 *            11      1     S, the store id field's width, 0..32
 *            12      4     scale: decimal digits of the minor unit (2 = cents)
 *
 *   record   offset  size  field
 *            0       8     ts_ms         int64, event time, ms since 1970 UTC
 *            8       8     amount_minor  int64, negative for refunds
 *            16      1     customer_len  1..C
 *            17      1     store_len     0..S (0: the feed has no store)
 *            18      C     customer id bytes, zero padded
 *            18 + C  S     store id bytes, zero padded
 *            ...           zero up to the record size
 *
 *   PRTREC01 (read, no longer written): record size 128 at offset 8, the
 *   scale at 12; records as above with C = 64 and S = 32, but six reserved
 *   zero bytes at 18, the customer id at 24, the store id at 88, eight
 *   reserved zero bytes at 120.
 *
 * A record whose lengths are out of range or whose reserved or padding bytes
 * are not zero is rejected like a malformed CSV line; a file that ends
 * inside a record has its last partial record rejected as truncated.
 */
#ifndef PARETO_RECORD_H
#define PARETO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PR_CUSTOMER_MAX_BYTES 64
#define PR_STORE_MAX_BYTES 32

#define PR_BIN_MAGIC_V1 "PRTREC01"
#define PR_BIN_MAGIC_V2 "PRTREC02"
#define PR_BIN_HEADER_BYTES 16
#define PR_BIN_V1_RECORD_BYTES 128
/* The largest record of either layout. */
#define PR_BIN_RECORD_MAX_BYTES 128

struct pr_record {
	int64_t ts_ms;
	int64_t amount_minor;
	const char *customer; /* borrowed; customer_len bytes, not terminated */
	const char *store;    /* borrowed; store_len bytes, may be empty */
	uint8_t customer_len;
	uint8_t store_len;
	bool rounded;         /* decoders: the amount had more decimals than the scale */
};

static inline void pr_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t pr_get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void pr_put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline uint16_t pr_get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline void pr_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t pr_get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Whether the first n bytes (n <= 8) of a feed can be a binary magic. */
static inline bool pr_bin_magic_prefix(const void *p, size_t n)
{
	if (n > 8)
		n = 8;
	return memcmp(p, PR_BIN_MAGIC_V1, n) == 0 || memcmp(p, PR_BIN_MAGIC_V2, n) == 0;
}

/* Where a layout keeps what: from the header, or made for a writer. */
struct pr_bin_layout {
	uint32_t record_bytes;
	uint32_t scale;
	uint8_t version;          /* 1 or 2 */
	uint8_t customer_width;   /* 1..64 */
	uint8_t store_width;      /* 0..32 */
	uint8_t customer_at, store_at;
	/* Bytes that must be zero: [zero_at[i], zero_at[i] + zero_len[i]). */
	uint8_t zero_at[2], zero_len[2];
};

/* The PRTREC02 layout for ids up to these widths (clamped to 1..64, 0..32). */
static inline struct pr_bin_layout pr_bin_layout_v2(unsigned customer_width,
						    unsigned store_width, uint32_t scale)
{
	if (customer_width < 1)
		customer_width = 1;
	if (customer_width > PR_CUSTOMER_MAX_BYTES)
		customer_width = PR_CUSTOMER_MAX_BYTES;
	if (store_width > PR_STORE_MAX_BYTES)
		store_width = PR_STORE_MAX_BYTES;
	unsigned used = 18 + customer_width + store_width;
	unsigned bytes = (used + 7) & ~7u;
	return (struct pr_bin_layout){
		.record_bytes = bytes, .scale = scale, .version = 2,
		.customer_width = (uint8_t)customer_width, .store_width = (uint8_t)store_width,
		.customer_at = 18, .store_at = (uint8_t)(18 + customer_width),
		.zero_at = { (uint8_t)used, 0 }, .zero_len = { (uint8_t)(bytes - used), 0 },
	};
}

static inline struct pr_bin_layout pr_bin_layout_v1(uint32_t scale)
{
	return (struct pr_bin_layout){
		.record_bytes = PR_BIN_V1_RECORD_BYTES, .scale = scale, .version = 1,
		.customer_width = PR_CUSTOMER_MAX_BYTES, .store_width = PR_STORE_MAX_BYTES,
		.customer_at = 24, .store_at = 88,
		.zero_at = { 18, 120 }, .zero_len = { 6, 8 },
	};
}

/* Writes the 16-byte file header of the layout. */
static inline void pr_bin_header_encode(unsigned char out[PR_BIN_HEADER_BYTES],
					const struct pr_bin_layout *l)
{
	if (l->version == 1) {
		memcpy(out, PR_BIN_MAGIC_V1, 8);
		pr_put_le32(out + 8, PR_BIN_V1_RECORD_BYTES);
	} else {
		memcpy(out, PR_BIN_MAGIC_V2, 8);
		pr_put_le16(out + 8, (uint16_t)l->record_bytes);
		out[10] = l->customer_width;
		out[11] = l->store_width;
	}
	pr_put_le32(out + 12, l->scale);
}

/* The layout a header declares: 0, or -1 if it is not one of ours (another
 * magic, or widths and record size that do not agree). */
static inline int pr_bin_header_decode(const unsigned char in[PR_BIN_HEADER_BYTES],
				       struct pr_bin_layout *l)
{
	uint32_t scale = pr_get_le32(in + 12);
	if (memcmp(in, PR_BIN_MAGIC_V1, 8) == 0) {
		if (pr_get_le32(in + 8) != PR_BIN_V1_RECORD_BYTES)
			return -1;
		*l = pr_bin_layout_v1(scale);
		return 0;
	}
	if (memcmp(in, PR_BIN_MAGIC_V2, 8) != 0 || in[10] < 1 ||
	    in[10] > PR_CUSTOMER_MAX_BYTES || in[11] > PR_STORE_MAX_BYTES)
		return -1;
	*l = pr_bin_layout_v2(in[10], in[11], scale);
	return pr_get_le16(in + 8) == l->record_bytes ? 0 : -1;
}

/* Encodes a record whose ids fit the layout's widths into
 * l->record_bytes bytes. */
static inline void pr_bin_record_encode(unsigned char *out, const struct pr_bin_layout *l,
					const struct pr_record *r)
{
	memset(out, 0, l->record_bytes);
	pr_put_le64(out, (uint64_t)r->ts_ms);
	pr_put_le64(out + 8, (uint64_t)r->amount_minor);
	out[16] = r->customer_len;
	out[17] = r->store_len;
	memcpy(out + l->customer_at, r->customer, r->customer_len);
	if (r->store_len)
		memcpy(out + l->store_at, r->store, r->store_len);
}

/* Whether `len` bytes at p are all zero (len <= 8). */
static inline bool pr_bin_zero(const unsigned char *p, unsigned len)
{
	unsigned char any = 0;
	for (unsigned i = 0; i < len; i++)
		any |= p[i];
	return any == 0;
}

/*
 * Decodes l->record_bytes bytes into *r, whose ids then point into `in`.
 * Returns 0, or -1 if the lengths or reserved bytes are invalid.
 */
static inline int pr_bin_record_decode(const unsigned char *in, const struct pr_bin_layout *l,
				       struct pr_record *r)
{
	uint8_t clen = in[16], slen = in[17];
	if (clen < 1 || clen > l->customer_width || slen > l->store_width)
		return -1;
	if (!pr_bin_zero(in + l->zero_at[0], l->zero_len[0]) ||
	    !pr_bin_zero(in + l->zero_at[1], l->zero_len[1]))
		return -1;
	r->ts_ms = (int64_t)pr_get_le64(in);
	r->amount_minor = (int64_t)pr_get_le64(in + 8);
	r->customer = (const char *)in + l->customer_at;
	r->customer_len = clen;
	r->store = (const char *)in + l->store_at;
	r->store_len = slen;
	r->rounded = false;
	return 0;
}

#endif
