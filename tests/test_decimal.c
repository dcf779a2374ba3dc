/* test_decimal.c - exact decimals to minor units, half to even. */
#include <criterion/criterion.h>
#include <errno.h>
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
}

Test(decimal, exact_values)
{
	check("12.34", 2, 0, 1234);
	check("12.3", 2, 0, 1230);
	check("12", 2, 0, 1200);
	check("-5", 2, 0, -500);
	check("+3.5", 2, 0, 350);
	check(".5", 2, 0, 50);
	check("5.", 2, 0, 500);
	check("-0.00", 2, 0, 0);
	check("  7.25 ", 2, 0, 725);
	check("0007.10", 2, 0, 710);
	check("42", 0, 0, 42);
	check("1.234567891", 9, 0, 1234567891);
}

Test(decimal, rounds_half_to_even)
{
	check("12.345", 2, 1, 1234); /* tie, 4 is even */
	check("12.355", 2, 1, 1236); /* tie, 5 is odd: up */
	check("12.3451", 2, 1, 1235); /* above the tie */
	check("12.3449", 2, 1, 1234);
	check("-12.345", 2, 1, -1234);
	check("-12.355", 2, 1, -1236);
	check("0.5", 0, 1, 0);
	check("1.5", 0, 1, 2);
	check("2.5", 0, 1, 2);
	check("0.005", 2, 1, 0);
	check("0.0051", 2, 1, 1);
	check("12.340", 2, 0, 1234); /* trailing zeros are exact */
	check("0.0000000000000000000000000000000000000000000001", 2, 1, 0);
}

Test(decimal, int64_edges)
{
	check("92233720368547758.07", 2, 0, INT64_MAX);
	check("92233720368547758.08", 2, -ERANGE, 0);
	check("-92233720368547758.08", 2, 0, INT64_MIN);
	check("-92233720368547758.09", 2, -ERANGE, 0);
	check("99999999999999999999999999999999999999999", 2, -ERANGE, 0);
}

Test(decimal, not_decimals)
{
	const char *bad[] = { "", " ", ".", "-", "+", "1e3", "1,000", "--1", "1.2.3", "abc",
			      "12a", "0x10", "1 2", "NaN" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(bad[i], 2, -EINVAL, 0);
}

Test(decimal, products_round_once)
{
	int64_t out;
	cr_assert_eq(pr_decimal_product("6", 1, "2.55", 4, 2, &out), 0);
	cr_assert_eq(out, 1530);
	cr_assert_eq(pr_decimal_product("-2", 2, "1.25", 4, 2, &out), 0);
	cr_assert_eq(out, -250);
	/* 3 x 0.335 = 1.005 -> 1.00 (tie, even); rounding each factor would differ. */
	cr_assert_eq(pr_decimal_product("3", 1, "0.335", 5, 2, &out), 1);
	cr_assert_eq(out, 100);
	cr_assert_eq(pr_decimal_product("1.5", 3, "1.5", 3, 2, &out), 0);
	cr_assert_eq(out, 225);
	cr_assert_eq(pr_decimal_product("x", 1, "1", 1, 2, &out), -EINVAL);
	cr_assert_eq(pr_decimal_product("100000000000", 12, "100000000000", 12, 2, &out), -ERANGE);
}
