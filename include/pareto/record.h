/*
 * pareto/record.h - the purchase record, in memory and on disk.
 *
 * A record is one purchase line: event time, customer id, store id, amount.
 * Money is integer minor units (cents at scale 2); it is never a float.
 *
 * In memory (struct pr_record) the ids point into the decoder's buffers and
 * are valid only for the duration of the call that hands the record over.
 *
 * On disk (the binary feed format) a file is a 16-byte header followed by
 * fixed-size 128-byte records, all integers little-endian:
 *
 *   header   offset  size  field
 *            0       8     magic "PRTREC01"
 *            8       4     record size in bytes (128)
 *            12      4     scale: decimal digits of the minor unit (2 = cents)
 *
 *   record   offset  size  field
 *            0       8     ts_ms         int64, event time, ms since 1970 UTC
 *            8       8     amount_minor  int64, negative for refunds
 *            16      1     customer_len  1..64
 *            17      1     store_len     0..32 (0: the feed has no store)
 *            18      6     reserved, zero
 *            24      64    customer id bytes, zero padded
 *            88      32    store id bytes, zero padded
 *            120     8     reserved, zero
 *
 * A record whose lengths are out of range or whose reserved bytes are not
 * zero is rejected like a malformed CSV line; a file that ends inside a
 * record has its last partial record rejected as truncated.
 */
#ifndef PARETO_RECORD_H
#define PARETO_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PR_CUSTOMER_MAX_BYTES 64
#define PR_STORE_MAX_BYTES 32

#define PR_BIN_MAGIC "PRTREC01"
#define PR_BIN_HEADER_BYTES 16
#define PR_BIN_RECORD_BYTES 128

struct pr_record {
	int64_t ts_ms;
	int64_t amount_minor;
	const char *customer; /* borrowed; customer_len bytes, not terminated */
	const char *store;    /* borrowed; store_len bytes, may be empty */
	uint8_t customer_len;
	uint8_t store_len;
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

/* Writes the 16-byte file header. */
static inline void pr_bin_header_encode(unsigned char out[PR_BIN_HEADER_BYTES],
					uint32_t scale)
{
	memcpy(out, PR_BIN_MAGIC, 8);
	pr_put_le32(out + 8, PR_BIN_RECORD_BYTES);
	pr_put_le32(out + 12, scale);
}

/* Returns 0 and the scale if the header is ours, -1 otherwise. */
static inline int pr_bin_header_decode(const unsigned char in[PR_BIN_HEADER_BYTES],
				       uint32_t *scale)
{
	if (memcmp(in, PR_BIN_MAGIC, 8) != 0 ||
	    pr_get_le32(in + 8) != PR_BIN_RECORD_BYTES)
		return -1;
	*scale = pr_get_le32(in + 12);
	return 0;
}

/* Encodes a valid record (ids within their limits) into 128 bytes. */
static inline void pr_bin_record_encode(unsigned char out[PR_BIN_RECORD_BYTES],
					const struct pr_record *r)
{
	memset(out, 0, PR_BIN_RECORD_BYTES);
	pr_put_le64(out, (uint64_t)r->ts_ms);
	pr_put_le64(out + 8, (uint64_t)r->amount_minor);
	out[16] = r->customer_len;
	out[17] = r->store_len;
	memcpy(out + 24, r->customer, r->customer_len);
	if (r->store_len)
		memcpy(out + 88, r->store, r->store_len);
}

/*
 * Decodes 128 bytes into *r, whose ids then point into `in`.
 * Returns 0, or -1 if the lengths or reserved bytes are invalid.
 */
static inline int pr_bin_record_decode(const unsigned char in[PR_BIN_RECORD_BYTES],
				       struct pr_record *r)
{
	uint8_t clen = in[16], slen = in[17];
	if (clen < 1 || clen > PR_CUSTOMER_MAX_BYTES || slen > PR_STORE_MAX_BYTES)
		return -1;
	if (pr_get_le32(in + 18) != 0 || in[22] != 0 || in[23] != 0 ||
	    pr_get_le64(in + 120) != 0)
		return -1;
	r->ts_ms = (int64_t)pr_get_le64(in);
	r->amount_minor = (int64_t)pr_get_le64(in + 8);
	r->customer = (const char *)in + 24;
	r->customer_len = clen;
	r->store = (const char *)in + 88;
	r->store_len = slen;
	return 0;
}

#endif
