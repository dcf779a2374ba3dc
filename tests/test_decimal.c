/*
 * test_decimal.c - exact decimals to minor units, half to even: hand-worked
 * tables, int64 edges, and seeded random decimals and products against a
 * reference that rounds the digit string itself (schoolbook products).
 * PARETO_TEST_SEED=S runs one seed; failures name theirs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

static void check(const char *text, unsigned scale, int want_rc, int64_t want)
{
	int64_t got = 12345;
	int rc = pr_decimal_parse(text, strlen(text), scale, &got);
	cr_assert_eq(rc, want_rc, "'%s' at scale %u: rc %d, want %d", text, scale, rc, want_rc);
	if (rc >= 0)
		cr_assert_eq(got, want, "'%s' at scale %u: %lld, want %lld", text, scale,
			     (long long)got, (long long)want);
	else
		cr_assert_eq(got, 12345, "'%s': output written on failure", text);
}

static void check_product(const char *q, const char *p, unsigned scale, int want_rc, int64_t want)
{
	int64_t got = 12345;
	int rc = pr_decimal_product(q, strlen(q), p, strlen(p), scale, &got);
	cr_assert_eq(rc, want_rc, "'%s' x '%s' at scale %u: rc %d, want %d", q, p, scale, rc,
		     want_rc);
	if (rc >= 0)
		cr_assert_eq(got, want, "'%s' x '%s' at scale %u: %lld, want %lld", q, p, scale,
			     (long long)got, (long long)want);
}

Test(decimal, exact_values)
{
	check("12.34", 2, 0, 1234);
	check("12.3", 2, 0, 1230);
	check("12", 2, 0, 1200);
	check("-5", 2, 0, -500);
	check("+3.5", 2, 0, 350);
	check(".5", 2, 0, 50);
	check("-.5", 2, 0, -50);
	check("5.", 2, 0, 500);
	check("-0.00", 2, 0, 0);
	check("-0", 0, 0, 0);
	check("  7.25 ", 2, 0, 725);
	check("\t7.25\t", 2, 0, 725);
	check("0007.10", 2, 0, 710);
	check("42", 0, 0, 42);
	check("1.234567891", 9, 0, 1234567891);
	check("0.000000001", 9, 0, 1);
	check("1.000000000000000000000000000000000000000000000000", 2, 0, 100);
	check("000000000000000000000000000000000000000000000000012.5", 1, 0, 125);
}

Test(decimal, rounds_half_to_even)
{
	check("12.345", 2, 1, 1234); /* tie, 4 is even */
	check("12.355", 2, 1, 1236); /* tie, 5 is odd: up */
	check("12.3451", 2, 1, 1235); /* above the tie */
	check("12.3449", 2, 1, 1234);
	check("-12.345", 2, 1, -1234);
	check("-12.355", 2, 1, -1236);
	check("-12.3451", 2, 1, -1235);
	check("0.5", 0, 1, 0);
	check("1.5", 0, 1, 2);
	check("2.5", 0, 1, 2);
	check("-0.5", 0, 1, 0);
	check("-1.5", 0, 1, -2);
	check("0.005", 2, 1, 0);
	check("0.0051", 2, 1, 1);
	check("0.004999999", 2, 1, 0);
	check("12.340", 2, 0, 1234); /* trailing zeros are exact */
	check("9.995", 2, 1, 1000);  /* the carry runs into the integer part */
	check("0.0000000000000000000000000000000000000000000001", 2, 1, 0);
	/* A tie decided by a digit 40 places further on. */
	check("2.50000000000000000000000000000000000000001", 0, 1, 3);
	check("2.50000000000000000000000000000000000000000", 0, 1, 2);
	check("0.1234567894", 9, 1, 123456789);
	check("0.1234567895", 9, 1, 123456790);
	check("0.1234567885", 9, 1, 123456788);
}

/* The tie at every scale, with each last kept digit: even stays, odd goes up. */
Test(decimal, half_even_at_every_position)
{
	for (unsigned scale = 0; scale <= PR_SCALE_MAX; scale++) {
		for (int last = 0; last <= 9; last++) {
			char text[32];
			int64_t kept = 7; /* "7.33..3<last>" */
			int n = sprintf(text, "7");
			if (scale > 0) {
				n += sprintf(text + n, ".");
				for (unsigned i = 1; i < scale; i++) {
					n += sprintf(text + n, "3");
					kept = kept * 10 + 3;
				}
				n += sprintf(text + n, "%d", last);
				kept = kept * 10 + last;
			} else {
				n = sprintf(text, "%d.", last);
				kept = last;
			}
			sprintf(text + n, "5");
			int64_t want = kept + (kept % 2);
			check(text, scale, 1, want);
			char negative[40];
			snprintf(negative, sizeof negative, "-%s", text);
			check(negative, scale, 1, -want);
		}
	}
}

Test(decimal, int64_edges)
{
	check("92233720368547758.07", 2, 0, INT64_MAX);
	check("92233720368547758.08", 2, -ERANGE, 0);
	check("-92233720368547758.08", 2, 0, INT64_MIN);
	check("-92233720368547758.09", 2, -ERANGE, 0);
	check("92233720368547758.074", 2, 1, INT64_MAX);
	check("92233720368547758.075", 2, -ERANGE, 0); /* rounds up past the edge */
	check("-92233720368547758.085", 2, 1, INT64_MIN); /* tie, 8 is even */
	check("9223372036854775807", 0, 0, INT64_MAX);
	check("9223372036854775808", 0, -ERANGE, 0);
	check("-9223372036854775808", 0, 0, INT64_MIN);
	check("-9223372036854775809", 0, -ERANGE, 0);
	check("9223372036.854775807", 9, 0, INT64_MAX);
	check("9223372036.8547758075", 9, -ERANGE, 0);
	check("9223372036.8547758065", 9, 1, INT64_MAX - 1);
	check("-9223372036.854775808", 9, 0, INT64_MIN);
	check("9223372037", 9, -ERANGE, 0);
	check("99999999999999999999999999999999999999999", 2, -ERANGE, 0);
	check("99999999999999999999999999999999999999999.5", 0, -ERANGE, 0);
	check("18446744073709551616", 0, -ERANGE, 0);
}

Test(decimal, not_decimals)
{
	const char *bad[] = { "", " ", ".", "-", "+", "-.", "+.", "1e3", "1E3", "1,000", "--1",
			      "+-1", "1.2.3", "abc", "12a", "0x10", "1 2", "NaN", "inf", "- 5",
			      "5-", "1..2", "..5", "٣",
			      "99999999999999999999999999999999999999999999x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(bad[i], 2, -EINVAL, 0);
	/* Length is what counts, not a terminating NUL. */
	int64_t out;
	cr_assert_eq(pr_decimal_parse("12.345", 4, 2, &out), 0);
	cr_assert_eq(out, 1230);
	cr_assert_eq(pr_decimal_parse("1\0" "2", 3, 2, &out), -EINVAL);
}

Test(decimal, products_round_once)
{
	check_product("6", "2.55", 2, 0, 1530);
	check_product("-2", "1.25", 2, 0, -250);
	check_product("-2", "-1.25", 2, 0, 250);
	check_product(" 2 ", " -1.25 ", 2, 0, -250);
	/* 3 x 0.335 = 1.005 -> 1.00 (tie, even); rounding each factor would differ. */
	check_product("3", "0.335", 2, 1, 100);
	check_product("3", "0.345", 2, 1, 104); /* 1.035: tie, 3 is odd */
	check_product("1.5", "1.5", 2, 0, 225);
	check_product("1.5", "1.5", 0, 1, 2);   /* 2.25 */
	check_product("0.5", "0.5", 1, 1, 2);   /* 0.25: tie, 2 even */
	check_product("0.5", "0.7", 1, 1, 4);   /* 0.35: tie, 3 odd */
	check_product("2.5000000000000000000000000000000000000", "4", 2, 0, 1000);
	check_product("0", "-5", 2, 0, 0);
	check_product("1000000", "9223372036854.77", 0, 0, 9223372036854770000LL);
	check_product("x", "1", 2, -EINVAL, 0);
	check_product("1", "", 2, -EINVAL, 0);
	check_product("100000000000", "100000000000", 2, -ERANGE, 0);
	check_product("-92233720368547758.08", "1", 2, 0, INT64_MIN);
	check_product("-92233720368547758.08", "-1", 2, -ERANGE, 0);
	check_product("3037000500", "3037000500", 0, -ERANGE, 0); /* just above 2^63 */
	check_product("3037000499", "3037000499", 0, 0, 9223372030926249001LL);
	/* Found by tools/fuzz: a price's trailing fraction zero ("40.20") was
	 * kept as a digit, so 36 + 4 digits passed 128 bits where 36 + 3 of
	 * "40.2" do not; and a factor past 38 digits hid the other's garbage. */
	check_product("209768.8000209036854068036106803685410", "0000040.20", 8, 1,
		      843270576084033LL);
	check_product("209768.8000209036854068036106803685410", "40.2", 8, 1, 843270576084033LL);
	check_product("2292223730368568590368547500000004775908", "0'25", 7, -EINVAL, 0);
	check_product("0'25", "2292223730368568590368547500000004775908", 7, -EINVAL, 0);
}

/* ---- the reference ---------------------------------------------------------- */

/*
 * Rounds sign x digits x 10^-frac_len (digits: a decimal digit string) to
 * the scale by looking at the digits themselves: the kept prefix, the first
 * dropped digit, whether any later one is non-zero.
 */
static int reference_round(bool negative, const char *digits, size_t frac_len, unsigned scale,
			   int64_t *out)
{
	size_t n = strlen(digits), int_len = n - frac_len;
	char kept[512];
	size_t k = 0;
	for (size_t i = 0; i < int_len; i++)
		kept[k++] = digits[i];
	for (unsigned i = 0; i < scale; i++)
		kept[k++] = i < frac_len ? digits[int_len + i] : '0';
	kept[k] = 0;
	int dropped = scale < frac_len ? digits[int_len + scale] - '0' : 0;
	bool sticky = false;
	for (size_t i = int_len + scale + 1; i < n; i++)
		sticky |= digits[i] != '0';
	const char *p = kept;
	while (*p == '0')
		p++;
	if (strlen(p) > 19)
		return -ERANGE;
	unsigned __int128 v = 0;
	for (; *p; p++)
		v = v * 10 + (unsigned)(*p - '0');
	if (dropped > 5 || (dropped == 5 && (sticky || (v & 1))))
		v++;
	if (v > (unsigned __int128)INT64_MAX + negative)
		return -ERANGE;
	*out = negative ? (int64_t)(0 - (uint64_t)v) : (int64_t)v;
	return dropped || sticky;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned below(uint64_t *s, unsigned n)
{
	return (unsigned)(rng_next(s) % n);
}

/* Random digits biased toward ties, zero runs and nines. */
static void random_digits(uint64_t *rng, char *out, size_t n)
{
	unsigned style = below(rng, 4);
	for (size_t i = 0; i < n; i++) {
		switch (style) {
		case 0:
			out[i] = (char)('0' + below(rng, 10));
			break;
		case 1: /* a tie somewhere, zeros after it */
			out[i] = i == 0 ? '5' : below(rng, 8) ? '0' : (char)('0' + below(rng, 10));
			break;
		case 2:
			out[i] = below(rng, 3) ? '9' : (char)('0' + below(rng, 10));
			break;
		default:
			out[i] = below(rng, 3) ? '0' : (char)('0' + below(rng, 10));
		}
	}
	out[n] = 0;
}

struct random_decimal {
	bool negative;
	char int_part[64], frac_part[64];
	char text[160];
};

static void random_decimal(uint64_t *rng, struct random_decimal *d, size_t max_int,
			   size_t max_frac)
{
	size_t int_len, frac_len;
	do {
		int_len = below(rng, (unsigned)max_int + 1);
		frac_len = below(rng, (unsigned)max_frac + 1);
	} while (int_len + frac_len == 0);
	random_digits(rng, d->int_part, int_len);
	random_digits(rng, d->frac_part, frac_len);
	if (frac_len && below(rng, 2)) { /* an exact tie after a random prefix */
		size_t at = below(rng, (unsigned)frac_len);
		d->frac_part[at] = '5';
		memset(d->frac_part + at + 1, '0', frac_len - at - 1);
	}
	unsigned sign = below(rng, 3);
	d->negative = sign == 2;
	snprintf(d->text, sizeof d->text, "%s%s%s%s%s%s", below(rng, 4) ? "" : "  ",
		 sign == 0 ? "" : sign == 1 ? "+" : "-", d->int_part,
		 frac_len || below(rng, 4) == 0 ? "." : "", d->frac_part, below(rng, 4) ? "" : " \t");
}

static unsigned first_seed(unsigned *count)
{
	const char *env = getenv("PARETO_TEST_SEED");
	*count = env && *env ? 1 : 20;
	return env && *env ? (unsigned)strtoul(env, NULL, 10) : 1;
}

Test(decimal, random_decimals_against_the_reference)
{
	unsigned count, seed0 = first_seed(&count);
	for (unsigned seed = seed0; seed < seed0 + count; seed++) {
		uint64_t rng = seed;
		for (int i = 0; i < 20000; i++) {
			struct random_decimal d;
			random_decimal(&rng, &d, i % 5 ? 12 : 24, i % 7 ? 12 : 45);
			unsigned scale = below(&rng, PR_SCALE_MAX + 1);
			char digits[160];
			snprintf(digits, sizeof digits, "%s%s", d.int_part, d.frac_part);
			int64_t want = 0, got = 0;
			int want_rc = reference_round(d.negative, digits, strlen(d.frac_part), scale,
						      &want);
			int rc = pr_decimal_parse(d.text, strlen(d.text), scale, &got);
			cr_assert_eq(rc, want_rc, "seed %u: '%s' at scale %u: rc %d, want %d", seed,
				     d.text, scale, rc, want_rc);
			if (rc >= 0)
				cr_assert_eq(got, want, "seed %u: '%s' at scale %u: %lld, want %lld",
					     seed, d.text, scale, (long long)got, (long long)want);
		}
	}
}

/* Schoolbook product of two digit strings. */
static void multiply(const char *a, const char *b, char *out)
{
	size_t na = strlen(a), nb = strlen(b);
	int acc[256] = { 0 };
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			acc[i + j + 1] += (a[i] - '0') * (b[j] - '0');
	for (size_t k = na + nb - 1; k > 0; k--) {
		acc[k - 1] += acc[k] / 10;
		acc[k] %= 10;
	}
	for (size_t k = 0; k < na + nb; k++)
		out[k] = (char)('0' + acc[k]);
	out[na + nb] = 0;
}

Test(decimal, random_products_against_the_reference)
{
	unsigned count, seed0 = first_seed(&count);
	for (unsigned seed = seed0; seed < seed0 + count; seed++) {
		uint64_t rng = seed * 1000003u;
		for (int i = 0; i < 20000; i++) {
			struct random_decimal q, p;
			random_decimal(&rng, &q, 8, 8);
			random_decimal(&rng, &p, 8, 10);
			unsigned scale = below(&rng, PR_SCALE_MAX + 1);
			char qd[128], pd[128], product[260];
			snprintf(qd, sizeof qd, "%s%s", q.int_part, q.frac_part);
			snprintf(pd, sizeof pd, "%s%s", p.int_part, p.frac_part);
			multiply(qd, pd, product);
			int64_t want = 0, got = 0;
			int want_rc = reference_round(q.negative != p.negative, product,
						      strlen(q.frac_part) + strlen(p.frac_part), scale,
						      &want);
			int rc = pr_decimal_product(q.text, strlen(q.text), p.text, strlen(p.text),
						    scale, &got);
			cr_assert_eq(rc, want_rc, "seed %u: '%s' x '%s' at scale %u: rc %d, want %d",
				     seed, q.text, p.text, scale, rc, want_rc);
			if (rc >= 0)
				cr_assert_eq(got, want, "seed %u: '%s' x '%s' at scale %u: %lld, want %lld",
					     seed, q.text, p.text, scale, (long long)got, (long long)want);
		}
	}
}
