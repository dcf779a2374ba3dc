/*
 * varint.h - LEB128 varints and zigzag for signed values: small numbers in
 * few bytes. Used where most numbers are small: the checkpoint's pairs and
 * days, and the purchase-day log (purchase_days.c).
 */
#ifndef PARETO_VARINT_H
#define PARETO_VARINT_H

#include <stdbool.h>
#include <stdint.h>

/* At most 10 bytes at p; returns the byte after. */
static inline unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static inline uint64_t zigzag(int64_t v)
{
	return (uint64_t)v << 1 ^ (uint64_t)(v >> 63);
}

static inline int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A varint in [*p, end); false (p unchanged) if it runs past end or 64 bits. */
static inline bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
	const unsigned char *at = *p;
	if (at < end && *at < 0x80) { /* most: one byte */
		*out = *at;
		*p = at + 1;
		return true;
	}
	uint64_t v = 0;
	for (unsigned shift = 0; at < end && shift < 64; shift += 7) {
		unsigned char b = *at++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*p = at;
			*out = v;
			return true;
		}
	}
	return false;
}

#endif
