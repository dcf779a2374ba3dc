/* test_producers.c - the opening line a producer names itself with, read
 * from its first bytes however they arrive, and the table of names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "producers.h"

static enum pr_producer_line parse(const char *text, char *name, uint64_t *first,
				   size_t *consumed)
{
	return pr_producer_line_parse(text, strlen(text), name, first, consumed);
}

Test(producers, opening_lines_that_parse)
{
	char name[PR_PRODUCER_NAME_MAX + 1];
	uint64_t first;
	size_t consumed;
	cr_assert_eq(parse("#pareto-producer till-7 1\nts,customer", name, &first, &consumed),
		     PR_PRODUCER_LINE_OK);
	cr_assert_str_eq(name, "till-7");
	cr_assert_eq(first, 1);
	cr_assert_eq(consumed, 26);
	cr_assert_eq(parse("#pareto-producer Shop_12.east 18446744073\r\n", name, &first, &consumed),
		     PR_PRODUCER_LINE_OK);
	cr_assert_str_eq(name, "Shop_12.east");
	cr_assert_eq(first, 18446744073ull);
	cr_assert_eq(consumed, 43, "the CR and LF are the line's");
	char longest[200];
	snprintf(longest, sizeof longest, "#pareto-producer %.*s 9\n", PR_PRODUCER_NAME_MAX,
		 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
	cr_assert_eq(parse(longest, name, &first, &consumed), PR_PRODUCER_LINE_OK);
	cr_assert_eq(strlen(name), PR_PRODUCER_NAME_MAX);
}

/* Every prefix of an opening line says "more"; data that is not one says
 * "none" from its first differing byte on. */
Test(producers, first_bytes_in_pieces)
{
	const char *line = "#pareto-producer p 12\n";
	char name[PR_PRODUCER_NAME_MAX + 1];
	uint64_t first;
	size_t consumed;
	for (size_t n = 1; n < strlen(line); n++)
		cr_assert_eq(pr_producer_line_parse(line, n, name, &first, &consumed),
			     PR_PRODUCER_LINE_MORE, "%zu bytes", n);
	cr_assert_eq(pr_producer_line_parse(line, strlen(line), name, &first, &consumed),
		     PR_PRODUCER_LINE_OK);
	cr_assert_eq(parse("ts,customer_id,store_id,amount\n", name, &first, &consumed),
		     PR_PRODUCER_LINE_NONE);
	cr_assert_eq(parse("#", name, &first, &consumed), PR_PRODUCER_LINE_MORE);
	cr_assert_eq(parse("#pareto-p", name, &first, &consumed), PR_PRODUCER_LINE_MORE);
	cr_assert_eq(parse("#pareto-x", name, &first, &consumed), PR_PRODUCER_LINE_NONE);
	cr_assert_eq(pr_producer_line_parse("PRTREC02\x20\0", 10, name, &first, &consumed),
		     PR_PRODUCER_LINE_NONE, "a binary header");
}

Test(producers, opening_lines_refused)
{
	const char *bad[] = {
		"#pareto-producer \n",              /* no name */
		"#pareto-producer till7\n",         /* no number */
		"#pareto-producer till7 \n",        /* an empty number */
		"#pareto-producer till7 0\n",       /* records are numbered from 1 */
		"#pareto-producer till7 -3\n",
		"#pareto-producer till7 12a\n",
		"#pareto-producer till 7 12\n",     /* a space in the name */
		"#pareto-producer till:7 12\n",     /* ':' would split INFO's line */
		"#pareto-producer till7  12\n",
		"#pareto-producer till7 99999999999999999999\n", /* past 64 bits */
	};
	char name[PR_PRODUCER_NAME_MAX + 1];
	uint64_t first;
	size_t consumed;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(parse(bad[i], name, &first, &consumed), PR_PRODUCER_LINE_BAD, "%s",
			     bad[i]);
	char toolong[200];
	snprintf(toolong, sizeof toolong, "#pareto-producer %.*s 9\n", PR_PRODUCER_NAME_MAX + 1,
		 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
	cr_assert_eq(parse(toolong, name, &first, &consumed), PR_PRODUCER_LINE_BAD);
	/* No line end within PR_PRODUCER_LINE_MAX bytes. */
	char endless[PR_PRODUCER_LINE_MAX + 10];
	memset(endless, '1', sizeof endless);
	memcpy(endless, "#pareto-producer x ", 19);
	cr_assert_eq(pr_producer_line_parse(endless, sizeof endless, name, &first, &consumed),
		     PR_PRODUCER_LINE_BAD);
	cr_assert_eq(pr_producer_line_parse(endless, PR_PRODUCER_LINE_MAX - 1, name, &first,
					    &consumed),
		     PR_PRODUCER_LINE_MORE);
}

Test(producers, table_of_names)
{
	struct pr_producers t = { 0 };
	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof name, "p%d", i);
		struct pr_producer *p = pr_producers_add(&t, name, (uint64_t)i + 1);
		cr_assert_not_null(p);
		p->duplicates = (uint64_t)i;
		p->missing = 1;
	}
	cr_assert_eq(t.count, 40);
	struct pr_producer *p = pr_producers_add(&t, "p7", 1000);
	cr_assert_eq(p->next, 8, "an existing name keeps its next record");
	cr_assert_eq(pr_producers_find(&t, "p39")->next, 40);
	cr_assert_null(pr_producers_find(&t, "p40"));
	uint64_t duplicates, missing;
	pr_producers_totals(&t, &duplicates, &missing);
	cr_assert_eq(duplicates, 39 * 40 / 2);
	cr_assert_eq(missing, 40);
	pr_producers_free(&t);
	cr_assert_eq(t.count, 0);
}
