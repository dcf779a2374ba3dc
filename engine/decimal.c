/*
 * decimal.c - exact decimal text to integer minor units; see decimal.h.
 *
 * A decimal is read as sign x digits x 10^-frac, the digits held exactly in
 * 128 bits (38 significant digits; an integer part beyond that is out of
 * int64 range anyway). Trailing fraction zeros are not stored, so
 * "1.000000000000000000000000000000000000000000" is exact, and a plain
 * parse keeps only the digits that decide its rounding (one past the scale)
 * plus a sticky bit for the rest, so a fraction of any length rounds
 * exactly. A product multiplies the two digit strings exactly and rounds
 * once; one beyond 128 bits is refused (-ERANGE) rather than approximated.
 * Never a float. Cost: O(length); the usual amount of at most 18 digits
 * takes a 64-bit path, and 128-bit division happens only when rounding.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>

#include "decimal.h"

typedef unsigned __int128 u128;

struct decimal {
	bool negative;
	bool sticky;     /* non-zero digits were dropped beyond frac */
	u128 digits;
	unsigned frac;   /* digits x 10^-frac */
};

#define DIGITS_MAX 38 /* 10^38 < 2^128 */
#define FRAC_ALL ((unsigned)-1)

static const uint64_t pow10_u64[20] = {
	1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
	100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
	10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
	100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

static u128 power_of_ten(unsigned n)
{
	if (n < 20)
		return pow10_u64[n];
	u128 v = 1;
	while (n--)
		v *= 10;
	return v;
}

/*
 * Parses text; fraction digits past `keep_frac` only set the sticky bit.
 * Returns 0, -EINVAL (not a decimal) or -ERANGE (a decimal of more than 38
 * significant digits kept).
 */
static int parse(const char *s, size_t len, unsigned keep_frac, struct decimal *d)
{
	const char *p = s, *end = s + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*d = (struct decimal){ 0 };
	if (p < end && (*p == '+' || *p == '-'))
		d->negative = *p++ == '-';

	/* Fast path: at most 18 digits, none of them dropped (all amounts of
	 * a usual feed): one 64-bit accumulator, no 128-bit arithmetic. */
	const char *q = p;
	uint64_t v = 0;
	unsigned n = 0, frac = 0;
	for (; q < end && (unsigned)(*q - '0') < 10 && n < 18; q++, n++)
		v = v * 10 + (unsigned)(*q - '0');
	bool fast = !(q < end && (unsigned)(*q - '0') < 10);
	if (fast && q < end && *q == '.') {
		for (q++; q < end && (unsigned)(*q - '0') < 10 && n < 18 && frac < keep_frac; q++) {
			v = v * 10 + (unsigned)(*q - '0');
			n++;
			frac++;
		}
		fast = !(q < end && (unsigned)(*q - '0') < 10);
	}
	if (fast) {
		if (n == 0 || q != end)
			return -EINVAL;
		d->digits = v;
		d->frac = frac;
		return 0;
	}
	/* Any length: leading zeros and trailing fraction zeros cost no digits,
	 * and more than 38 significant digits are out of range. */
	const char *start = p;
	unsigned significant = 0;
	for (; p < end && (unsigned)(*p - '0') < 10; p++) {
		significant += d->digits || *p != '0';
		if (significant <= DIGITS_MAX)
			d->digits = d->digits * 10 + (unsigned)(*p - '0');
	}
	bool any = p > start;
	if (p < end && *p == '.') {
		unsigned position = 0, zeros = 0; /* zeros not yet appended */
		for (p++; p < end && (unsigned)(*p - '0') < 10; p++) {
			any = true;
			position++;
			if (*p == '0') {
				zeros++;
			} else if (position > keep_frac) {
				d->sticky = true;
			} else {
				significant += d->digits ? zeros + 1 : 1;
				if (significant <= DIGITS_MAX)
					d->digits = d->digits * power_of_ten(zeros + 1) +
						    (unsigned)(*p - '0');
				d->frac = position;
				zeros = 0;
			}
		}
	}
	if (!any || p != end)
		return -EINVAL;
	return significant > DIGITS_MAX ? -ERANGE : 0;
}

/* digits x 10^-frac (+ sticky) to the scale, half to even; 1 if rounded. */
static int to_minor(const struct decimal *d, unsigned scale, int64_t *out)
{
	assert(scale <= PR_SCALE_MAX); /* so digits x 10^scale fits 128 bits */
	const u128 limit = (u128)INT64_MAX + d->negative;
	int rounded = d->sticky;
	u128 v;
	if (d->frac <= scale) {
		/* Sticky digits here follow a zero in the first dropped place:
		 * below half a unit, they round down. */
		if (d->digits > limit)
			return -ERANGE;
		v = (u128)(uint64_t)d->digits * pow10_u64[scale - d->frac]; /* < 2^93 */
	} else {
		unsigned drop = d->frac - scale;
		u128 rest, half;
		if (drop > DIGITS_MAX) { /* all kept digits lie below half a unit */
			v = 0;
			rest = d->digits;
			half = rest + 1;
		} else if (drop <= 19 && d->digits <= UINT64_MAX) {
			uint64_t unit = (uint64_t)power_of_ten(drop);
			v = (uint64_t)d->digits / unit;
			rest = (uint64_t)d->digits % unit;
			half = unit / 2;
		} else {
			u128 unit = power_of_ten(drop);
			v = d->digits / unit;
			rest = d->digits % unit;
			half = unit / 2;
		}
		if (rest || d->sticky) {
			rounded = 1;
			if (rest > half || (rest == half && (d->sticky || (v & 1))))
				v++;
		}
	}
	if (v > limit)
		return -ERANGE;
	*out = d->negative ? (int64_t)(0 - (uint64_t)v) : (int64_t)v;
	return rounded;
}

int pr_decimal_parse(const char *text, size_t len, unsigned scale, int64_t *out_minor)
{
	struct decimal d;
	/* One digit past the scale decides the rounding; the rest is sticky. */
	int rc = parse(text, len, scale + 1, &d);
	if (rc < 0)
		return rc;
	return to_minor(&d, scale, out_minor);
}

static void drop_trailing_zeros(struct decimal *d)
{
	while (d->frac && d->digits % 10 == 0) {
		d->digits /= 10;
		d->frac--;
	}
}

int pr_decimal_product(const char *quantity, size_t quantity_len, const char *price,
		       size_t price_len, unsigned scale, int64_t *out_minor)
{
	struct decimal q, p;
	int rq = parse(quantity, quantity_len, FRAC_ALL, &q);
	int rp = parse(price, price_len, FRAC_ALL, &p);
	/* Not a decimal outranks out of range, whichever factor is which. */
	if (rq == -EINVAL || rp == -EINVAL)
		return -EINVAL;
	if (rq < 0 || rp < 0)
		return -ERANGE;
	/* The fast path keeps trailing fraction zeros ("40.20"): dropped, so
	 * that the product fits 128 bits whenever the same values written
	 * without them would. */
	drop_trailing_zeros(&q);
	drop_trailing_zeros(&p);
	struct decimal product = {
		.negative = q.negative != p.negative,
		.frac = q.frac + p.frac,
	};
	/* Beyond 38 digits the product is out of range unless nearly all of
	 * it is fraction; such inputs are refused rather than approximated. */
	if (__builtin_mul_overflow(q.digits, p.digits, &product.digits))
		return -ERANGE;
	return to_minor(&product, scale, out_minor);
}
