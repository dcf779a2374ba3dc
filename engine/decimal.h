/*
 * decimal.h - exact decimal text to integer minor units.
 *
 * "12.345" at scale 2 is 1234 (half to even: .345 -> .34, .355 -> .36).
 * Accepted: optional sign, digits, optional '.' and digits (at least one
 * digit in all), surrounding spaces. No exponents, no thousands separators.
 * Never a float on the way.
 */
#ifndef PARETO_DECIMAL_H
#define PARETO_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define PR_SCALE_MAX 9

/*
 * Returns 0 (exact), 1 (rounded half to even to the scale), -EINVAL (not a
 * decimal) or -ERANGE (the result does not fit in int64).
 */
int pr_decimal_parse(const char *text, size_t len, unsigned scale,
		     int64_t *out_minor);

/*
 * The product quantity x price, both decimals, rounded once (half to even)
 * to the scale. Same returns as pr_decimal_parse.
 */
int pr_decimal_product(const char *quantity, size_t quantity_len,
		       const char *price, size_t price_len, unsigned scale,
		       int64_t *out_minor);

#endif
