/* test_e2e.c - `pareto report` as a user runs it, checked against answers
 * worked out by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_run.h"

#define CDNOW PARETO_SOURCE_DIR "/tests/data/CDNOW_master.txt"

static char *report(const char *feed_text, const char *const *options, struct run_result *r)
{
	const char *path = temp_path(0, ".csv");
	write_file(path, feed_text, strlen(feed_text));
	char *argv[32] = { PARETO_BIN, "report", "--json" };
	int n = 3;
	for (; options && *options; options++)
		argv[n++] = (char *)*options;
	argv[n++] = (char *)path;
	argv[n] = NULL;
	run_command(argv, NULL, r);
	return r->exit_code == 0 ? json_flatten(r->out) : NULL;
}

static void expect(const char *flat, const char *path, const char *want)
{
	char buf[256];
	const char *got = json_get(flat, path, buf, sizeof buf);
	cr_assert_not_null(got, "%s missing in\n%s", path, flat);
	cr_assert_str_eq(got, want, "%s", path);
}

static void expect_number(const char *flat, const char *path, double want)
{
	char buf[256];
	const char *got = json_get(flat, path, buf, sizeof buf);
	cr_assert_not_null(got, "%s missing", path);
	double v = strtod(got, NULL);
	cr_assert(fabs(v - want) <= 1e-12 + 1e-9 * fabs(want), "%s: got %s want %.17g", path, got,
		  want);
}

/*
 * Five customers, revenues 50, 30, 10, 5, 5 (out of 100.00):
 *   N = 5; top tier ceil(0.2 x 5) = 1 customer: a, 50.00, share 0.5;
 *   Pareto point: 50 + 30 = 80% reached at m = 2: 2/5 = 0.4;
 *   A = rank 1; B = ranks 2..ceil(2.5) = 3: 40.00; C = ranks 4..5: 10.00;
 *   HHI = (0.25 + 0.09 + 0.01 + 0.0025 + 0.0025) x 10,000 = 3550;
 *   Gini, ascending 5 5 10 30 50: 2 x (5 + 10 + 30 + 120 + 250) / (5 x 100) - 6/5
 *        = 830 / 500 - 1.2 = 0.46;
 *   largest share 50%: critical; key clients (>= 10%): a, b, c;
 *   d and e tie at 5.00: ranks 4 and 5 by id, competition rank 4 for both.
 */
static const char five[] =
	"ts,customer_id,store_id,amount\n"
	"2024-01-05T10:00:00Z,a,S1,40.00\n"
	"2024-01-06T10:00:00Z,b,S1,30.00\n"
	"2024-01-07T10:00:00Z,a,S2,10.00\n"
	"2024-02-01T10:00:00Z,c,S2,10.00\n"
	"2024-02-02T10:00:00Z,e,S2,7.50\n"
	"2024-02-03T10:00:00Z,e,S2,-2.50\n"
	"2024-02-04T10:00:00Z,d,S1,5.00\n";

Test(e2e, five_customers_by_hand)
{
	struct run_result r;
	const char *opts[] = { "--customer", "e", "--customer", "zz", "--by-store", NULL };
	char *flat = report(five, opts, &r);
	cr_assert_not_null(flat, "exit %d: %s", r.exit_code, r.err);
	expect(flat, "records", "7");
	expect(flat, "rejected", "0");
	expect(flat, "watermark", "2024-02-04T10:00:00.000Z");
	expect(flat, "customers", "5");
	expect(flat, "revenue_minor", "10000");
	expect(flat, "top_tier.customers", "1");
	expect(flat, "top_tier.revenue_minor", "5000");
	expect_number(flat, "top_tier.share", 0.5);
	expect_number(flat, "pareto_point", 0.4);
	expect(flat, "tiers.B.customers", "2");
	expect(flat, "tiers.B.revenue_minor", "4000");
	expect(flat, "tiers.C.revenue_minor", "1000");
	expect_number(flat, "hhi", 3550);
	expect_number(flat, "gini", 0.46);
	expect(flat, "risk", "critical");
	expect(flat, "key_clients[2].customer", "c");
	cr_assert_null(json_get(flat, "key_clients[3].customer", (char[8]){ 0 }, 8));
	expect(flat, "top[3].customer", "d");
	expect(flat, "top[3].competition_rank", "4");
	expect(flat, "top[4].customer", "e");
	expect(flat, "top[4].rank", "5");
	expect(flat, "top[4].competition_rank", "4");
	expect_number(flat, "top[4].cumulative_share", 1.0);
	expect(flat, "customer_detail[0].rank", "5");
	expect(flat, "customer_detail[0].tier", "C");
	expect_number(flat, "customer_detail[0].percentile", 1.0);
	expect(flat, "customer_detail[1].rank", "null");
	expect(flat, "customer_detail[1].revenue_minor", "0");
	/* Stores, riskiest first. S1: a 40, b 30, d 5 of 75: a holds 53.3%,
	 * critical. S2: a 10, c 10, e 5 of 25: 40%, 40%, 20%: high. */
	expect(flat, "stores[0].store", "S1");
	expect(flat, "stores[0].risk", "critical");
	expect(flat, "stores[0].customers", "3");
	expect_number(flat, "stores[0].cr1", 40.0 / 75);
	expect(flat, "stores[1].store", "S2");
	expect(flat, "stores[1].risk", "high");
	expect(flat, "stores[1].revenue_minor", "2500");
	expect_number(flat, "stores[1].hhi", (0.16 + 0.16 + 0.04) * 10000);
	expect(flat, "stores[1].key_clients[2].customer", "e");
	free(flat);
	run_result_free(&r);
}

Test(e2e, previous_month_window)
{
	/* Watermark in February 2024: prev-month is January: a 50, b 30. */
	struct run_result r;
	const char *opts[] = { "--window", "prev-month", NULL };
	char *flat = report(five, opts, &r);
	cr_assert_not_null(flat);
	expect(flat, "window", "prev-month");
	expect(flat, "customers", "2");
	expect(flat, "revenue_minor", "8000");
	expect(flat, "top[0].customer", "a");
	free(flat);
	run_result_free(&r);
	const char *month[] = { "--window", "month", NULL };
	flat = report(five, month, &r);
	expect(flat, "customers", "3"); /* c 10, e 5, d 5 */
	expect(flat, "revenue_minor", "2000");
	free(flat);
	run_result_free(&r);
}

Test(e2e, bad_lines_change_no_total)
{
	struct run_result clean, dirty;
	char *a = report(five, NULL, &clean);
	char feed[4096];
	snprintf(feed, sizeof feed, "%s%s", five,
		 "2024-02-05T10:00:00Z,x,S1\n"
		 "2024-13-05T10:00:00Z,x,S1,1.00\n"
		 "2024-02-05T10:00:00Z,x,S1,ten\n"
		 "2024-02-05T10:00:00Z,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,S1,1\n");
	char *b = report(feed, NULL, &dirty);
	cr_assert_not_null(b, "%s", dirty.err);
	expect(b, "rejected", "4");
	expect(b, "records", "7");
	cr_assert(strstr(dirty.err, ":9: 3 fields, the header has 4"), "%s", dirty.err);
	cr_assert(strstr(dirty.err, ":12: customer: id of 65 bytes"), "%s", dirty.err);
	const char *same[] = { "customers", "revenue_minor", "hhi", "gini", "top[0].customer",
			       "watermark" };
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		char x[128], y[128];
		cr_assert_str_eq(json_get(a, same[i], x, sizeof x), json_get(b, same[i], y, sizeof y),
				 "%s", same[i]);
	}
	free(a);
	free(b);
	run_result_free(&clean);
	run_result_free(&dirty);
}

Test(e2e, exit_codes_and_messages)
{
	struct run_result r;
	const char *strict[] = { "--strict", NULL };
	char feed[512];
	snprintf(feed, sizeof feed, "%s2024-02-05,x,S1,ten\n", five);
	cr_assert_null(report(feed, strict, &r));
	cr_assert_eq(r.exit_code, 2);
	cr_assert(strstr(r.err, "pareto-test-") && strstr(r.err, ": line 9: amount: not a decimal"),
		  "%s", r.err);
	run_result_free(&r);

	char *missing[] = { PARETO_BIN, "report", "/nonexistent/feed.csv", NULL };
	run_command(missing, NULL, &r);
	cr_assert_eq(r.exit_code, 1);
	cr_assert_str_eq(r.err, "pareto: /nonexistent/feed.csv: No such file or directory\n");
	run_result_free(&r);

	char *bad_option[] = { PARETO_BIN, "report", "--window", "week", "x.csv", NULL };
	run_command(bad_option, NULL, &r);
	cr_assert_eq(r.exit_code, 2);
	cr_assert(strstr(r.err, "--window"), "%s", r.err);
	run_result_free(&r);

	char *no_column[] = { PARETO_BIN, "report", "--map", "amount=price", "-", NULL };
	run_command(no_column, five, &r);
	cr_assert_eq(r.exit_code, 2);
	cr_assert(strstr(r.err, "header has no column 'price'"), "%s", r.err);
	run_result_free(&r);

	char *help[] = { PARETO_BIN, "report", "--help", NULL };
	run_command(help, NULL, &r);
	cr_assert_eq(r.exit_code, 0);
	cr_assert(strstr(r.out, "--window") && strstr(r.out, "--strict"));
	run_result_free(&r);
}

Test(e2e, standard_input_and_binary_records_give_the_same_report)
{
	struct run_result from_file, from_stdin, converted, from_binary;
	char *a = report(five, NULL, &from_file);
	char *stdin_argv[] = { PARETO_BIN, "report", "--json", "-", NULL };
	run_command(stdin_argv, five, &from_stdin);
	cr_assert_str_eq(from_stdin.out, from_file.out);

	const char *bin = temp_path(1, ".prb");
	char *convert[] = { PARETO_BIN, "convert", "--quiet", "-", (char *)bin, NULL };
	run_command(convert, five, &converted);
	cr_assert_eq(converted.exit_code, 0, "%s", converted.err);
	char *binary[] = { PARETO_BIN, "report", "--json", (char *)bin, NULL };
	run_command(binary, NULL, &from_binary);
	cr_assert_str_eq(from_binary.out, from_file.out);
	unlink(bin);
	free(a);
	run_result_free(&from_file);
	run_result_free(&from_stdin);
	run_result_free(&converted);
	run_result_free(&from_binary);
}

Test(e2e, cdnow_real_data)
{
	struct run_result r;
	char *argv[] = { PARETO_BIN, "report", "--json", "--delimiter", "whitespace", "--map",
			 "customer=customer_id", "--map", "ts=date", "--ts-format", "%Y%m%d",
			 "--map", "amount=dollar_value", "--lapsed", "3", CDNOW, NULL };
	run_command(argv, NULL, &r);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	char *flat = json_flatten(r.out);
	cr_assert_not_null(flat);
	expect(flat, "records", "69659");
	expect(flat, "rejected", "0");
	/* Every CDNOW amount is >= 0, so the positive revenue is the file's
	 * total of 2,500,315.63 less the customers who spent exactly 0. */
	expect(flat, "revenue_minor", "250031563");
	expect(flat, "watermark", "1998-06-30T00:00:00.000Z");
	expect(flat, "top[0].customer", "07592");
	expect(flat, "top[0].revenue_minor", "1399093");
	free(flat);
	run_result_free(&r);
}

/* A file split across threads gives the report, the rejects (with their
 * line numbers) and the messages of one thread, byte for byte, also when a
 * split falls inside a quoted field with a line break (then it reads again
 * on one thread). */
Test(e2e, threads_give_identical_results, .timeout = 300)
{
	setenv("PARETO_PARALLEL_MIN_BYTES", "1", 1);
	static char feed[1 << 20];
	for (unsigned seed = 1; seed <= 12; seed++) {
		srand(seed);
		size_t n = (size_t)sprintf(feed, "ts,customer_id,store_id,amount\n");
		for (int i = 0; i < 3000; i++) {
			int kind = rand() % 40;
			if (kind == 0)
				n += (size_t)sprintf(feed + n, "2024-01-01,bad\n");
			else if (kind == 1)
				n += (size_t)sprintf(feed + n, "2024-13-01,C%d,S1,1.00\n", rand() % 99);
			else if ((kind == 2 && seed % 3 == 0) || (seed == 12 && kind < 30))
				n += (size_t)sprintf(feed + n, "2024-02-01,\"multi\nline %d\",S2,3.00\n",
						     rand() % 5);
			else if (kind == 3)
				n += (size_t)sprintf(feed + n, "\n");
			else
				n += (size_t)sprintf(feed + n, "%d,\"C%d\",S%d,%d.%02d\r\n",
						     1700000000 + i * 1000 + rand() % 5000, rand() % 300,
						     rand() % 4, rand() % 300 - 20, rand() % 100);
		}
		const char *path = temp_path(3, ".csv");
		write_file(path, feed, n);
		char *first_out = NULL, *first_err = NULL, *first_rejects = NULL;
		for (int threads = 1; threads <= 4; threads++) {
			char t[8];
			snprintf(t, sizeof t, "%d", threads);
			const char *rejects = temp_path(4, ".rejects");
			char *argv[] = { PARETO_BIN, "report", "--json", "--by-store", "--lapsed", "50",
					 "--top", "100", "--threads", t, "--rejects", (char *)rejects,
					 "--show-errors", "1000", (char *)path, NULL };
			struct run_result r;
			run_command(argv, NULL, &r);
			cr_assert_eq(r.exit_code, 0, "seed %u threads %d: %s", seed, threads, r.err);
			FILE *f = fopen(rejects, "rb");
			char *text = calloc(1, 1 << 20);
			size_t got = fread(text, 1, (1 << 20) - 1, f);
			fclose(f);
			text[got] = 0;
			if (threads == 1) {
				first_out = r.out;
				first_err = r.err;
				first_rejects = text;
				cr_assert(strstr(first_rejects, "field-count"), "seed %u: no rejects?", seed);
				continue;
			}
			cr_assert_str_eq(r.out, first_out, "seed %u threads %d: report differs", seed, threads);
			cr_assert_str_eq(r.err, first_err, "seed %u threads %d: messages differ", seed, threads);
			cr_assert_str_eq(text, first_rejects, "seed %u threads %d: rejects differ", seed, threads);
			free(text);
			run_result_free(&r);
		}
		free(first_out);
		free(first_err);
		free(first_rejects);

		/* --strict stops at the same first bad line, on any thread count. */
		struct run_result one, many;
		char *strict1[] = { PARETO_BIN, "report", "--strict", "--threads", "1", (char *)path, NULL };
		char *strict3[] = { PARETO_BIN, "report", "--strict", "--threads", "3", (char *)path, NULL };
		run_command(strict1, NULL, &one);
		run_command(strict3, NULL, &many);
		cr_assert_eq(one.exit_code, 2, "seed %u", seed);
		cr_assert_eq(many.exit_code, 2, "seed %u", seed);
		cr_assert_str_eq(many.err, one.err, "seed %u", seed);
		run_result_free(&one);
		run_result_free(&many);
	}
	unsetenv("PARETO_PARALLEL_MIN_BYTES");
}

Test(e2e, threads_on_binary_records, .timeout = 120)
{
	setenv("PARETO_PARALLEL_MIN_BYTES", "1", 1);
	static char feed[1 << 20];
	size_t n = (size_t)sprintf(feed, "ts,customer_id,store_id,amount\n");
	srand(3);
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(feed + n, "%d,C%d,S%d,%d.%02d\n", 1700000000 + i * 600,
				     rand() % 500, rand() % 3, rand() % 200, rand() % 100);
	const char *bin = temp_path(5, ".prb");
	char *convert[] = { PARETO_BIN, "convert", "--quiet", "-", (char *)bin, NULL };
	struct run_result r;
	run_command(convert, feed, &r);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	run_result_free(&r);
	/* Spoil records 5 and 3001 (customer length 0) and cut the last one short. */
	FILE *f = fopen(bin, "r+b");
	for (long rec = 5; rec <= 3001; rec += 2996) {
		fseek(f, 16 + (rec - 1) * 128 + 16, SEEK_SET);
		fputc(0, f);
	}
	fclose(f);
	cr_assert_eq(truncate(bin, 16 + 5000 * 128 - 50), 0);
	char *first = NULL;
	for (int threads = 1; threads <= 4; threads++) {
		char t[8];
		snprintf(t, sizeof t, "%d", threads);
		char *argv[] = { PARETO_BIN, "report", "--json", "--by-store", "--threads", t,
				 (char *)bin, NULL };
		run_command(argv, NULL, &r);
		cr_assert_eq(r.exit_code, 0, "%s", r.err);
		cr_assert(strstr(r.err, ":5: binary record: invalid id lengths"), "%s", r.err);
		cr_assert(strstr(r.err, ":3001: binary record: invalid"), "%s", r.err);
		cr_assert(strstr(r.err, ":5000: the feed ends 78 bytes into a binary record"), "%s", r.err);
		char *flat = json_flatten(r.out);
		expect(flat, "records", "4997");
		expect(flat, "rejected", "3");
		free(flat);
		if (threads == 1)
			first = strdup(r.out);
		else
			cr_assert_str_eq(r.out, first, "threads %d", threads);
		run_result_free(&r);
	}
	free(first);
	unlink(bin);
	unsetenv("PARETO_PARALLEL_MIN_BYTES");
}
