/* decimal.c - exact decimal text to integer minor units; see decimal.h. */
#include <errno.h>
#include <stdbool.h>

#include "decimal.h"

/* A parsed decimal: sign x digits x 10^-frac_digits, digits exact in 128 bits. */
struct decimal {
	bool negative;
	unsigned __int128 digits;
	unsigned frac_digits;
};

#define DIGITS_MAX 38 /* 10^38 < 2^128 */

static int parse(const char *s, size_t len, struct decimal *d)
{
	const char *p = s, *end = s + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	d->negative = false;
	d->digits = 0;
	d->frac_digits = 0;
	if (p < end && (*p == '+' || *p == '-'))
		d->negative = *p++ == '-';
	unsigned count = 0, significant = 0;
	bool dot = false;
	for (; p < end; p++) {
		if (*p == '.' && !dot) {
			dot = true;
			continue;
		}
		if (*p < '0' || *p > '9')
			return -EINVAL;
		count++;
		if (significant || *p != '0')
			significant++;
		if (significant > DIGITS_MAX)
			return -ERANGE;
		d->digits = d->digits * 10 + (unsigned)(*p - '0');
		d->frac_digits += dot;
	}
	return count ? 0 : -EINVAL;
}

static unsigned __int128 power_of_ten(unsigned n)
{
	unsigned __int128 v = 1;
	while (n--)
		v *= 10;
	return v;
}

/* digits x 10^-frac to the scale, half to even; 1 if rounded. */
static int to_minor(bool negative, unsigned __int128 digits, unsigned frac, unsigned scale,
		    int64_t *out)
{
	int rounded = 0;
	unsigned __int128 v;
	if (frac <= scale) {
		unsigned shift = scale - frac;
		if (shift > DIGITS_MAX || (digits && digits > ((unsigned __int128)-1) / power_of_ten(shift)))
			return -ERANGE;
		v = digits * power_of_ten(shift);
	} else {
		unsigned drop = frac - scale;
		if (drop > DIGITS_MAX) { /* everything is below half a unit */
			v = 0;
			rounded = digits != 0;
		} else {
			unsigned __int128 unit = power_of_ten(drop), rest;
			v = digits / unit;
			rest = digits % unit;
			if (rest) {
				rounded = 1;
				unsigned __int128 half = unit / 2;
				if (rest > half || (rest == half && (v & 1)))
					v++;
			}
		}
	}
	if (v > (unsigned __int128)INT64_MAX + negative)
		return -ERANGE;
	*out = negative ? (int64_t)(0 - (uint64_t)v) : (int64_t)v;
	return rounded;
}

int pr_decimal_parse(const char *text, size_t len, unsigned scale, int64_t *out_minor)
{
	struct decimal d;
	int rc = parse(text, len, &d);
	if (rc < 0)
		return rc;
	return to_minor(d.negative && d.digits, d.digits, d.frac_digits, scale, out_minor);
}

int pr_decimal_product(const char *quantity, size_t quantity_len, const char *price,
		       size_t price_len, unsigned scale, int64_t *out_minor)
{
	struct decimal q, p;
	int rc = parse(quantity, quantity_len, &q);
	if (rc < 0)
		return rc;
	if ((rc = parse(price, price_len, &p)) < 0)
		return rc;
	if (q.digits && p.digits > ((unsigned __int128)-1) / q.digits)
		return -ERANGE;
	unsigned __int128 product = q.digits * p.digits;
	return to_minor((q.negative != p.negative) && product, product,
			q.frac_digits + p.frac_digits, scale, out_minor);
}
