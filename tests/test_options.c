/* test_options.c - the feed and engine options every front end shares
 * (pareto/options.h): values, ranges and the messages for bad ones. */
#include <criterion/criterion.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "pareto/options.h"

static int apply(int id, const char *value, struct pr_feed_options *f,
		 struct pr_engine_options *e, struct pr_error *err)
{
	memset(err, 0, sizeof *err);
	return pr_option_apply(id, value, f, e, err);
}

Test(options, good_values)
{
	struct pr_feed_options f;
	struct pr_engine_options e;
	struct pr_error err;
	pr_feed_options_init(&f);
	pr_engine_options_init(&e);
	cr_assert_eq(apply(PR_OPT_DELIMITER, "whitespace", &f, &e, &err), 0);
	cr_assert_eq(f.delimiter_kind, PR_DELIM_WHITESPACE);
	cr_assert_eq(apply(PR_OPT_DELIMITER, "tab", &f, &e, &err), 0);
	cr_assert(f.delimiter_kind == PR_DELIM_CHAR && f.delimiter == '\t');
	cr_assert_eq(apply(PR_OPT_MAP, "customer=card", &f, &e, &err), 0);
	cr_assert_str_eq(f.column[PR_FIELD_CUSTOMER], "card");
	cr_assert_eq(apply(PR_OPT_SCALE, "3", &f, &e, &err), 0);
	cr_assert_eq(f.scale, 3);
	cr_assert_eq(apply(PR_OPT_TOP_FRACTION, "30%", &f, &e, &err), 0);
	cr_assert(e.top.num * 10 == e.top.den * 3);
	cr_assert_eq(apply(PR_OPT_TIERS, "0.1,1/2", &f, &e, &err), 0);
	cr_assert(e.tier_a.num * 10 == e.tier_a.den && e.tier_b.num * 2 == e.tier_b.den);
	cr_assert_eq(apply(PR_OPT_LAPSED_GAP_FACTOR, "2.5", &f, &e, &err), 0);
	cr_assert_eq(apply(PR_OPT_LAPSED_MIN_IDLE_DAYS, "1000000", &f, &e, &err), 0);
	cr_assert_eq(apply(PR_OPT_CUSTOMERS, "2M", &f, &e, &err), 0);
	cr_assert_eq(e.customers_hint, 2u << 20);
}

Test(options, bad_values_say_what_was_expected)
{
	static const struct {
		int id;
		const char *value, *message;
	} cases[] = {
		{ PR_OPT_DELIMITER, "ab", "--delimiter: expected comma, semicolon, tab, pipe, "
					  "whitespace or one character, not 'ab'" },
		{ PR_OPT_DELIMITER, "\"", NULL },
		{ PR_OPT_MAP, "colour=c", NULL },
		{ PR_OPT_MAP, "customer=", NULL },
		{ PR_OPT_SCALE, "10", "--scale: expected 0..9, not '10'" },
		{ PR_OPT_SCALE, "-1", NULL },
		{ PR_OPT_TOP_FRACTION, "1.5", NULL },
		{ PR_OPT_TIERS, "0.6,0.2", "--tiers: expected A,B with 0 <= A <= B <= 1, like "
					   "0.2,0.5, not '0.6,0.2'" },
		{ PR_OPT_TIERS, "0.2", NULL },
		{ PR_OPT_KEY_SHARE, "x", NULL },
		{ PR_OPT_LAPSED_MIN_DAYS, "4294967296", NULL },
		{ PR_OPT_LAPSED_MIN_IDLE_DAYS, "1000001", NULL },
		{ PR_OPT_CUSTOMERS, "5G", NULL },
		{ PR_OPT_CUSTOMERS, "12x", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pr_feed_options f, f0;
		struct pr_engine_options e, e0;
		struct pr_error err;
		pr_feed_options_init(&f);
		pr_engine_options_init(&e);
		f0 = f;
		e0 = e;
		cr_assert_eq(apply(cases[i].id, cases[i].value, &f, &e, &err), -EINVAL, "%s",
			     cases[i].value);
		if (cases[i].message)
			cr_assert_str_eq(err.message, cases[i].message);
		else
			cr_assert_not_null(strstr(err.message, "expected"), "%s", err.message);
		cr_assert(memcmp(&f, &f0, sizeof f) == 0 && memcmp(&e, &e0, sizeof e) == 0,
			  "a bad value changes nothing (%s)", cases[i].value);
	}
}

Test(options, every_shared_option_is_in_the_tables)
{
	static const struct option table[] = { PR_FEED_LONG_OPTIONS, PR_ENGINE_LONG_OPTIONS };
	cr_assert_eq(sizeof table / sizeof table[0], PR_OPT_LAST - PR_OPT_DELIMITER);
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		cr_assert_eq(table[i].val, PR_OPT_DELIMITER + (int)i, "%s", table[i].name);
}
