/* test_checkpoint.c - an engine written to a checkpoint and read back
 * answers exactly as the engine that never stopped, now and after more
 * records; a truncated, corrupt or foreign file is refused, naming it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "checkpoint.h"
#include "fuzz.h"
#include "pareto/engine.h"
#include "pareto/ranking.h"
#include "support_ranking.h"
#include "support_run.h"
#include "timeparse.h"

#define CUSTOMER_IDS 3000


/* Customer k's id: short ones inline in the table entry, long ones (over
 * 12 bytes) in its arena. */
static int customer_id(unsigned k, char *out, size_t size)
{
	return snprintf(out, size, "c%u%.*s", k, (int)(k * 7 % 23), "~~~~~~~~~~~~~~~~~~~~~~~");
}

static struct pr_engine *new_engine(bool keep_all)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 16;
	if (!keep_all)
		opt.keep_periods = opt.keep_stores = opt.keep_days = false;
	struct pr_engine *e;
	cr_assert_eq(pr_engine_create(&e, &opt, NULL), 0);
	return e;
}

/*
 * Adds `count` random records to every engine of es (n of them) alike:
 * skewed customers, 40 stores (some customers in many, so the pair index
 * is used), refunds, and with `disorder` records up to 90 days older than
 * the time line (past a customer's 64-day map: the day set).
 */
static void feed(struct pr_engine **es, int n, uint64_t seed, int count, int64_t t0,
		 bool disorder)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull | 1;
	for (int i = 0; i < count; i++) {
		uint64_t u = support_next(&x);
		char customer[64], store[8];
		unsigned k = (unsigned)(u % 10 == 0 ? u % 30 : u % CUSTOMER_IDS);
		int len = customer_id(k, customer, sizeof customer);
		snprintf(store, sizeof store, "S%d", (int)((u >> 20) % (k % 50 == 0 ? 40 : 3)));
		int64_t back = disorder ? (int64_t)((u >> 8) % 90) * PR_MS_PER_DAY : 0;
		struct pr_record r = {
			.ts_ms = t0 + (int64_t)i * 1800000LL - back,
			.amount_minor = (int64_t)((u >> 16) % 100000) - 8000,
			.customer = customer, .customer_len = (uint8_t)len,
			.store = store, .store_len = (uint8_t)strlen(store),
		};
		for (int j = 0; j < n; j++)
			cr_assert_eq(j % 2 ? pr_engine_enqueue(es[j], &r) : pr_engine_add(es[j], &r), 0);
	}
	for (int j = 0; j < n; j++)
		cr_assert_eq(pr_engine_drain(es[j]), 0);
}

static void assert_same_ranking(const struct pr_ranking *ra, const struct pr_ranking *rb,
				const char *what)
{
	cr_assert_eq(pr_ranking_customers(ra), pr_ranking_customers(rb), "%s", what);
	cr_assert_eq(pr_ranking_revenue(ra), pr_ranking_revenue(rb), "%s", what);
	support_assert_same_entries(ra, rb, what);
	struct pr_summary sa, sb;
	pr_ranking_summarize(ra, &sa);
	pr_ranking_summarize(rb, &sb);
	cr_assert(sa.customers == sb.customers && sa.revenue_minor == sb.revenue_minor &&
		  sa.pareto_customers == sb.pareto_customers && sa.hhi == sb.hhi &&
		  sa.gini == sb.gini && sa.risk == sb.risk && sa.key_clients == sb.key_clients,
		  "%s summary", what);
}

/* Every answer: state, stores in index order, every customer, rankings of
 * every window (company and each store), lapsed regulars. */
static void assert_same(struct pr_engine *a, struct pr_engine *b, bool keep_all)
{
	struct pr_engine_state sa, sb;
	pr_engine_state(a, &sa);
	pr_engine_state(b, &sb);
	cr_assert(sa.records == sb.records && sa.customers == sb.customers &&
		  sa.stores == sb.stores && sa.watermark_ms == sb.watermark_ms &&
		  sa.has_watermark == sb.has_watermark,
		  "state: records %llu/%llu customers %llu/%llu", (unsigned long long)sa.records,
		  (unsigned long long)sb.records, (unsigned long long)sa.customers,
		  (unsigned long long)sb.customers);
	for (uint32_t s = 0; s < sa.stores; s++) {
		uint32_t la, lb;
		const char *ia = pr_engine_store_id(a, s, &la), *ib = pr_engine_store_id(b, s, &lb);
		cr_assert(la == lb && memcmp(ia, ib, la) == 0, "store %u", s);
		cr_assert_eq(pr_engine_store_find(b, ia, la), (int64_t)s);
	}
	for (unsigned k = 0; k < CUSTOMER_IDS + 10; k++) {
		char id[64];
		int len = customer_id(k, id, sizeof id);
		struct pr_customer_info x, y;
		memset(&x, 0, sizeof x);
		memset(&y, 0, sizeof y);
		int ca = pr_engine_customer(a, id, (size_t)len, &x);
		int cb = pr_engine_customer(b, id, (size_t)len, &y);
		cr_assert_eq(ca, cb, "customer %s", id);
		cr_assert(memcmp(&x, &y, sizeof x) == 0, "customer %s", id);
	}
	int windows = keep_all ? PR_WINDOW_COUNT : 1;
	for (int w = 0; w < windows; w++) {
		for (int64_t store = -1; store < (keep_all ? (int64_t)sa.stores : 0); store++) {
			struct pr_ranking *ra, *rb;
			cr_assert_eq(pr_ranking_build(a, (enum pr_window)w, store, &ra, NULL), 0);
			cr_assert_eq(pr_ranking_build(b, (enum pr_window)w, store, &rb, NULL), 0);
			char what[64];
			snprintf(what, sizeof what, "window %s store %lld", pr_window_name(w),
				 (long long)store);
			assert_same_ranking(ra, rb, what);
			pr_ranking_destroy(ra);
			pr_ranking_destroy(rb);
		}
	}
	struct pr_lapsed *la, *lb;
	size_t na, nb, ta, tb;
	int ca = pr_engine_lapsed(a, SIZE_MAX, &la, &na, &ta);
	int cb = pr_engine_lapsed(b, SIZE_MAX, &lb, &nb, &tb);
	cr_assert_eq(ca, cb);
	if (ca == 0) {
		cr_assert(na == nb && ta == tb, "lapsed %zu/%zu", na, nb);
		for (size_t i = 0; i < na; i++)
			cr_assert(la[i].customer_len == lb[i].customer_len &&
				  memcmp(la[i].customer, lb[i].customer, la[i].customer_len) == 0 &&
				  la[i].revenue_minor == lb[i].revenue_minor &&
				  la[i].purchase_days == lb[i].purchase_days &&
				  la[i].last_ms == lb[i].last_ms, "lapsed %zu", i);
		free(la);
		free(lb);
	}
}

static void temp_dir_path(char *out, size_t size, const char *name)
{
	char dir[] = "/tmp/pareto-ckpt-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, size, "%s/%s", dir, name);
}

static void remove_path(const char *path)
{
	char dir[256];
	snprintf(dir, sizeof dir, "%s", path);
	unlink(path);
	*strrchr(dir, '/') = 0;
	rmdir(dir);
}

static struct pr_engine *read_back(const char *path, bool keep_all, void **blob, size_t *len)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	struct pr_engine *e = NULL;
	struct pr_error err = { 0 };
	int rc = pr_checkpoint_read(path, &opt, &e, blob, len, NULL, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	const struct pr_engine_options *o = pr_engine_options(e);
	cr_assert(o->keep_periods == keep_all && o->keep_stores == keep_all &&
		  o->keep_days == keep_all);
	return e;
}

static void round_trip(uint64_t seed, bool disorder, bool keep_all)
{
	int64_t t0 = pr_days_from_civil(2023, 1, 1) * PR_MS_PER_DAY;
	struct pr_engine *original = new_engine(keep_all), *twin = new_engine(keep_all);
	struct pr_engine *both[] = { original, twin };
	feed(both, 2, seed, 30000, t0, disorder);
	/* twin holds queued records when it is written: the write drains them. */
	char path[256];
	temp_dir_path(path, sizeof path, "state.ckpt");
	static const char blob[] = "feed positions";
	struct pr_checkpoint_stats st = { 0 };
	struct pr_error err = { 0 };
	cr_assert_eq(pr_checkpoint_write(twin, path, blob, sizeof blob, &st, &err), 0, "%s",
		     err.message);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_size, st.bytes);
	pr_engine_destroy(twin);

	void *got;
	size_t got_len;
	struct pr_engine *loaded = read_back(path, keep_all, &got, &got_len);
	cr_assert(got_len == sizeof blob && memcmp(got, blob, sizeof blob) == 0);
	free(got);
	assert_same(original, loaded, keep_all);

	/* The loaded engine goes on exactly as the original: new customers,
	 * known ones, old days, a ranking refreshed from one built before. */
	struct pr_ranking *old = NULL;
	if (keep_all)
		cr_assert_eq(pr_ranking_build(loaded, PR_WINDOW_ALL, -1, &old, NULL), 0);
	struct pr_engine *again[] = { original, loaded };
	feed(again, 2, seed + 100, 5000, t0 + 30000 * 1800000LL, disorder);
	assert_same(original, loaded, keep_all);
	if (keep_all) {
		struct pr_ranking *fresh, *whole;
		cr_assert_eq(pr_ranking_refresh(loaded, old, PR_WINDOW_ALL, &fresh, NULL), 0);
		cr_assert_eq(pr_ranking_build(original, PR_WINDOW_ALL, -1, &whole, NULL), 0);
		assert_same_ranking(whole, fresh, "refreshed after load");
		pr_ranking_destroy(fresh);
		pr_ranking_destroy(whole);
		pr_ranking_destroy(old);
	}

	/* A checkpoint of the loaded engine reads back the same again. */
	cr_assert_eq(pr_checkpoint_write(loaded, path, NULL, 0, NULL, &err), 0, "%s", err.message);
	struct pr_engine *third = read_back(path, keep_all, &got, &got_len);
	cr_assert(got == NULL && got_len == 0);
	assert_same(original, third, keep_all);
	pr_engine_destroy(third);
	pr_engine_destroy(loaded);
	pr_engine_destroy(original);
	remove_path(path);
}

Test(checkpoint, round_trip_in_time_order)
{
	round_trip(1, false, true);
}

Test(checkpoint, round_trip_out_of_order_days)
{
	round_trip(2, true, true);
	round_trip(3, true, true);
}

Test(checkpoint, round_trip_keeping_totals_only)
{
	round_trip(4, true, false);
}

Test(checkpoint, empty_engine)
{
	struct pr_engine *e = new_engine(true);
	char path[256];
	temp_dir_path(path, sizeof path, "empty.ckpt");
	cr_assert_eq(pr_checkpoint_write(e, path, NULL, 0, NULL, NULL), 0);
	void *blob;
	size_t len;
	struct pr_engine *loaded = read_back(path, true, &blob, &len);
	assert_same(e, loaded, true);
	pr_engine_destroy(loaded);
	pr_engine_destroy(e);
	remove_path(path);
}

/* Writes e's checkpoint (with blob, if not NULL) to a file named into
 * path, destroys e, and returns the file's bytes. */
static char *checkpoint_bytes(struct pr_engine *e, const char *blob, char *path, size_t size,
			      size_t *len)
{
	temp_dir_path(path, size, "small.ckpt");
	cr_assert_eq(pr_checkpoint_write(e, path, blob, blob ? strlen(blob) : 0, NULL, NULL), 0);
	pr_engine_destroy(e);
	return read_file(path, len);
}

/* A checkpoint of a small engine, and its bytes. */
static char *small_checkpoint(char *path, size_t size, size_t *len, bool keep_all)
{
	struct pr_engine *e = new_engine(keep_all);
	struct pr_engine *es[] = { e };
	feed(es, 1, 9, 2000, pr_days_from_civil(2024, 3, 1) * PR_MS_PER_DAY, true);
	return checkpoint_bytes(e, "x", path, size, len);
}

static void put(const char *path, const char *bytes, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

/* Reading must fail with -EINVAL, a message naming the file and `what`,
 * and no engine. */
static void assert_refused(const char *path, const char *what)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	struct pr_engine *e = NULL;
	void *blob = NULL;
	size_t len = 0;
	struct pr_error err = { 0 };
	int rc = pr_checkpoint_read(path, &opt, &e, &blob, &len, NULL, &err);
	cr_assert_eq(rc, -EINVAL, "%s: rc %d (%s)", what, rc, err.message);
	cr_assert_null(e);
	cr_assert_null(blob);
	cr_assert_not_null(strstr(err.message, path), "%s", err.message);
	cr_assert_not_null(strstr(err.message, what), "expected '%s' in: %s", what, err.message);
}

Test(checkpoint, truncated_file_refused)
{
	char path[256];
	size_t len;
	char *bytes = small_checkpoint(path, sizeof path, &len, true);
	put(path, bytes, len - 1);
	assert_refused(path, "truncated");
	put(path, bytes, len / 2);
	assert_refused(path, "truncated");
	put(path, bytes, 40);
	assert_refused(path, "truncated");
	put(path, bytes, 0);
	assert_refused(path, "truncated");
	put(path, bytes, len); /* whole again: it reads */
	void *blob;
	size_t blob_len;
	pr_engine_destroy(read_back(path, true, &blob, &blob_len));
	free(blob);
	free(bytes);
	remove_path(path);
}

Test(checkpoint, flipped_byte_refused)
{
	char path[256];
	size_t len;
	char *bytes = small_checkpoint(path, sizeof path, &len, true);
	/* Anywhere in the payload: the start, the middle, the last byte. */
	size_t at[] = { 64, 100, len / 3, len / 2, len - 1 };
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		bytes[at[i]] ^= 0x10;
		put(path, bytes, len);
		assert_refused(path, "checksum");
		bytes[at[i]] ^= 0x10;
	}
	/* In the header: its size field, its checksum. */
	bytes[20] ^= 1;
	put(path, bytes, len);
	assert_refused(path, "header");
	bytes[20] ^= 1;
	bytes[60] ^= 1;
	put(path, bytes, len);
	assert_refused(path, "header");
	bytes[60] ^= 1;
	bytes[0] = 'X';
	put(path, bytes, len);
	assert_refused(path, "not a paretod checkpoint");
	free(bytes);
	remove_path(path);
}

Test(checkpoint, missing_file_and_failed_write)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	struct pr_engine *e = NULL;
	void *blob;
	size_t len;
	struct pr_error err = { 0 };
	cr_assert_eq(pr_checkpoint_read("/nonexistent/state.ckpt", &opt, &e, &blob, &len, NULL, &err),
		     -ENOENT);
	cr_assert_null(e);
	e = new_engine(true);
	cr_assert_lt(pr_checkpoint_write(e, "/nonexistent/dir/state.ckpt", NULL, 0, NULL, &err), 0);
	cr_assert_not_null(strstr(err.message, "/nonexistent/dir/state.ckpt.tmp"), "%s", err.message);
	pr_engine_destroy(e);
}

static uint64_t other_hash(const void *bytes, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ ((const unsigned char *)bytes)[i]) * 1099511628211ull;
	return h;
}

Test(checkpoint, another_hash_refused)
{
	char path[256];
	size_t len;
	char *bytes = small_checkpoint(path, sizeof path, &len, true);
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.hash = other_hash;
	struct pr_engine *e = NULL;
	void *blob = NULL;
	size_t blob_len;
	struct pr_error err = { 0 };
	cr_assert_eq(pr_checkpoint_read(path, &opt, &e, &blob, &blob_len, NULL, &err), -EINVAL);
	cr_assert_null(e);
	cr_assert_not_null(strstr(err.message, "hash"), "%s", err.message);
	free(bytes);
	remove_path(path);
}

/* The checksums of a file whose payload was changed, made to match again. */
static void fix_checksums(char *bytes, size_t len)
{
	uint64_t hash = XXH3_64bits(bytes + 64, len - 64);
	memcpy(bytes + 24, &hash, sizeof hash);
	hash = XXH3_64bits(bytes, 56);
	memcpy(bytes + 56, &hash, sizeof hash);
}

/*
 * Bytes changed and the checksums made to match again, as no accident
 * does: the file is refused, or it loads into an engine that answers
 * without fault, never anything in between. Both layouts of customers.
 */
static void alter_files(bool keep_all)
{
	char path[256];
	size_t len;
	char *bytes = small_checkpoint(path, sizeof path, &len, keep_all);
	char *copy = malloc(len);
	uint64_t x = 20261123;
	int refused = 0;
	for (int round = 0; round < 200; round++) {
		memcpy(copy, bytes, len);
		for (int i = 0, flips = 1 + (int)(support_next(&x) % 3); i < flips; i++)
			copy[64 + support_next(&x) % (len - 64)] ^= (char)(1u << support_next(&x) % 8);
		fix_checksums(copy, len);
		put(path, copy, len);
		struct pr_engine_options opt;
		pr_engine_options_init(&opt);
		struct pr_engine *e = NULL;
		void *blob = NULL;
		size_t blob_len;
		struct pr_error err = { 0 };
		int rc = pr_checkpoint_read(path, &opt, &e, &blob, &blob_len, NULL, &err);
		if (rc == 0) {
			/* Without fault (ASan, UBSan) and agreeing with itself
			 * (tests/fuzz: the checkpoint target's own checks). */
			fuzz_checkpoint_exercise(e);
			pr_engine_destroy(e);
			free(blob);
		} else {
			cr_assert_eq(rc, -EINVAL, "round %d: %d %s", round, rc, err.message);
			cr_assert_null(e);
			refused++;
		}
	}
	cr_assert_gt(refused, 50, "only %d of 200 refused", refused);
	free(copy);
	free(bytes);
	remove_path(path);
}

Test(checkpoint, altered_files_with_matching_checksums)
{
	alter_files(true);
}

Test(checkpoint, altered_files_keeping_totals_only)
{
	alter_files(false);
}

/* The keep flags of the "ENGN" section (payload offset 8) say which layout
 * the customers' values have: a file whose flags were changed is refused
 * for its value size, not read as the other layout. */
Test(checkpoint, other_layout_refused)
{
	for (int keep_all = 0; keep_all < 2; keep_all++) {
		char path[256];
		size_t len;
		char *bytes = small_checkpoint(path, sizeof path, &len, keep_all);
		uint32_t keep;
		memcpy(&keep, bytes + 64 + 8, sizeof keep);
		cr_assert_eq(keep, keep_all ? 7u : 0u);
		keep = keep_all ? 0 : 4; /* totals only; purchase days only */
		memcpy(bytes + 64 + 8, &keep, sizeof keep);
		fix_checksums(bytes, len);
		put(path, bytes, len);
		assert_refused(path, keep_all ? "values of 128 bytes, expected 8"
					      : "values of 8 bytes, expected 128");
		free(bytes);
		remove_path(path);
	}
}

/* An id whose bytes were changed is no longer under its stored hash: the
 * table (which keeps no hashes, and hashes ids again as it grows) would
 * lose it, so the file is refused. */
Test(checkpoint, id_not_under_its_hash_refused)
{
	struct pr_engine *e = new_engine(true);
	struct pr_engine *es[] = { e };
	feed(es, 1, 6, 300, pr_days_from_civil(2024, 3, 1) * PR_MS_PER_DAY, false);
	struct pr_record r = { .ts_ms = pr_days_from_civil(2024, 6, 1) * PR_MS_PER_DAY,
			       .amount_minor = 100, .customer = "unique-card-77", .customer_len = 14,
			       .store = "S0", .store_len = 2 };
	cr_assert_eq(pr_engine_add(e, &r), 0);
	char path[256];
	size_t len;
	char *bytes = checkpoint_bytes(e, NULL, path, sizeof path, &len);
	size_t at = 0;
	while (at + 14 <= len && memcmp(bytes + at, "unique-card-77", 14) != 0)
		at++;
	cr_assert_leq(at + 14, len, "the id is in the file");
	bytes[at + 13] = '8';
	fix_checksums(bytes, len);
	put(path, bytes, len);
	assert_refused(path, "is not stored under its hash");
	free(bytes);
	remove_path(path);
}

/* A customer total past the volume of every record (which bounds every
 * sum a ranking adds up) is refused in the 8-byte layout as in the full. */
Test(checkpoint, total_beyond_volume_refused)
{
	struct pr_engine *e = new_engine(false);
	struct pr_engine *es[] = { e };
	feed(es, 1, 5, 500, pr_days_from_civil(2024, 3, 1) * PR_MS_PER_DAY, false);
	const int64_t marked = 987654321012345; /* a total no counter or id shares */
	struct pr_record r = { .ts_ms = pr_days_from_civil(2024, 6, 1) * PR_MS_PER_DAY,
			       .amount_minor = marked, .customer = "marked", .customer_len = 6,
			       .store = "S0", .store_len = 2 };
	cr_assert_eq(pr_engine_add(e, &r), 0);
	char path[256];
	size_t len;
	char *bytes = checkpoint_bytes(e, NULL, path, sizeof path, &len);
	size_t at = 0, found = 0;
	for (size_t i = 64; i + 8 <= len; i++) {
		int64_t v;
		memcpy(&v, bytes + i, sizeof v);
		if (v == marked)
			at = i, found++;
	}
	cr_assert_eq(found, 1, "the marked total appears %zu times", found);
	/* Within the volume it loads and ranks first; past it, refused. */
	int64_t lower = marked - 1;
	memcpy(bytes + at, &lower, sizeof lower);
	fix_checksums(bytes, len);
	put(path, bytes, len);
	void *blob;
	size_t blob_len;
	e = read_back(path, false, &blob, &blob_len);
	struct pr_ranking *ranking;
	cr_assert_eq(pr_ranking_build(e, PR_WINDOW_ALL, -1, &ranking, NULL), 0);
	struct pr_ranked top;
	cr_assert_eq(pr_ranking_at(ranking, 1, &top), 0);
	cr_assert(top.customer_len == 6 && memcmp(top.customer, "marked", 6) == 0 &&
		  top.revenue_minor == lower);
	pr_ranking_destroy(ranking);
	pr_engine_destroy(e);
	free(blob);
	int64_t beyond = INT64_MAX / 2;
	memcpy(bytes + at, &beyond, sizeof beyond);
	fix_checksums(bytes, len);
	put(path, bytes, len);
	assert_refused(path, "customer sums beyond the volume");
	free(bytes);
	remove_path(path);
}
