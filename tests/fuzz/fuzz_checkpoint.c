/*
 * fuzz_checkpoint.c - any bytes as a checkpoint's payload (checkpoint.h),
 * behind a header made valid for them (this build's magic, version and
 * layout, their size and checksums), as a forger would. The file must be
 * refused with -EINVAL, or load into an engine that answers without fault
 * and agrees with itself: every ranked customer is found again at his own
 * rank, and a ranking's revenue is the sum of its entries.
 *
 * The seeds are payloads of small engines this build writes
 * (fuzz_checkpoint_seed): a full one (windows, 40 stores, days out of
 * order), one that keeps totals only, an empty one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "checkpoint.h"
#include "fuzz.h"
#include "pareto/ranking.h"
#include "timeparse.h"

enum { HEADER = PR_CHECKPOINT_HEADER_BYTES };

static bool put(const char *path, const void *a, size_t alen, const void *b, size_t blen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	bool ok = write(fd, a, alen) == (ssize_t)alen && (!blen || write(fd, b, blen) == (ssize_t)blen);
	close(fd);
	return ok;
}

static void customer_id(unsigned k, char *out, size_t size, size_t *len)
{
	*len = (size_t)snprintf(out, size, "c%u%.*s", k, (int)(k * 7 % 23),
				"~~~~~~~~~~~~~~~~~~~~~~~");
}

/* A small engine's checkpoint, whole (header and payload); NULL on failure. */
static uint8_t *engine_file(unsigned kind, size_t *len)
{
	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	opt.customers_hint = 16;
	if (kind == 1)
		opt.keep_periods = opt.keep_stores = opt.keep_days = false;
	struct pr_engine *e;
	FUZZ_CHECK(pr_engine_create(&e, &opt, NULL) == 0, "engine");
	uint64_t x = 20261208;
	for (int i = 0; kind != 2 && i < 400; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t u = x >> 11;
		char customer[64], store[8];
		size_t clen;
		unsigned k = (unsigned)(u % 10 == 0 ? u % 7 : u % 90);
		customer_id(k, customer, sizeof customer, &clen);
		snprintf(store, sizeof store, "S%d", (int)((u >> 20) % (k % 30 == 0 ? 40 : 3)));
		struct pr_record r = {
			.ts_ms = 1700000000000LL + (int64_t)i * 1800000LL -
				 (int64_t)((u >> 8) % 90) * PR_MS_PER_DAY,
			.amount_minor = (int64_t)((u >> 16) % 100000) - 8000,
			.customer = customer, .customer_len = (uint8_t)clen,
			.store = store, .store_len = (uint8_t)strlen(store),
		};
		FUZZ_CHECK(pr_engine_add(e, &r) == 0, "record %d", i);
	}
	struct pr_error err;
	const char *path = fuzz_scratch_path("ckpt");
	FUZZ_CHECK(pr_checkpoint_write(e, path, "blob", 4, NULL, &err) == 0, "write: %s",
		   err.message);
	pr_engine_destroy(e);
	uint8_t *bytes = NULL;
	int fd = open(path, O_RDONLY);
	off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
	if (size >= HEADER && (bytes = malloc((size_t)size)) &&
	    pread(fd, bytes, (size_t)size, 0) == size)
		*len = (size_t)size;
	else
		free(bytes), bytes = NULL;
	if (fd >= 0)
		close(fd);
	unlink(path);
	return bytes;
}

size_t fuzz_checkpoint_seed(unsigned index, uint8_t **out)
{
	size_t len;
	uint8_t *file = index < 3 ? engine_file(index, &len) : NULL;
	if (!file)
		return 0;
	memmove(file, file + HEADER, len - HEADER);
	*out = file;
	return len - HEADER;
}

/* This build's header: magic, version, header size; the layout at 32. */
static const uint8_t *header_template(void)
{
	static uint8_t header[HEADER];
	static bool made;
	if (!made) {
		size_t len;
		uint8_t *file = engine_file(2, &len);
		FUZZ_CHECK(file, "no checkpoint to copy a header from");
		memcpy(header, file, HEADER);
		free(file);
		made = true;
	}
	return header;
}

/* Answers must agree with themselves, whatever the engine holds. */
static void check_ranking(const struct pr_ranking *r, const char *what, unsigned which)
{
	struct pr_summary sum;
	pr_ranking_summarize(r, &sum);
	uint64_t n = pr_ranking_customers(r);
	FUZZ_CHECK(sum.customers == n, "summary of %llu customers, ranking of %llu",
		   (unsigned long long)sum.customers, (unsigned long long)n);
	__int128 total = 0;
	for (uint64_t k = 1; k <= n; k++) {
		struct pr_ranked x, again;
		FUZZ_CHECK(pr_ranking_at(r, k, &x) == 0, "rank %llu missing", (unsigned long long)k);
		FUZZ_CHECK(x.revenue_minor > 0, "rank %llu has revenue %lld", (unsigned long long)k,
			   (long long)x.revenue_minor);
		total += x.revenue_minor;
		if (k <= 64) {
			int rc = pr_ranking_find(r, x.customer, x.customer_len, &again);
			FUZZ_CHECK(rc == 0 && again.rank == k,
				   "%s %u: rank %llu ('%.*s') found at %llu (rc %d)", what, which,
				   (unsigned long long)k, (int)x.customer_len, x.customer,
				   (unsigned long long)again.rank, rc);
		}
	}
	FUZZ_CHECK(total == pr_ranking_revenue(r), "entries sum to %lld, the ranking says %lld",
		   (long long)total, (long long)pr_ranking_revenue(r));
}

void fuzz_checkpoint_exercise(struct pr_engine *e)
{
	struct pr_engine_state st;
	pr_engine_state(e, &st);
	for (int w = 0; w < PR_WINDOW_COUNT; w++) {
		struct pr_ranking *r;
		if (pr_ranking_build(e, (enum pr_window)w, -1, &r, NULL) == 0) {
			check_ranking(r, "window", (unsigned)w);
			pr_ranking_destroy(r);
		}
	}
	struct pr_ranking **stores;
	uint32_t count;
	if (pr_ranking_build_stores(e, PR_WINDOW_ALL, &stores, &count, NULL) == 0) {
		for (uint32_t i = 0; i < count; i++) {
			check_ranking(stores[i], "store", i);
			pr_ranking_destroy(stores[i]);
		}
		free(stores);
	}
	for (unsigned k = 0; k < 100; k++) {
		char id[64];
		size_t len;
		customer_id(k, id, sizeof id, &len);
		struct pr_customer_info info;
		pr_engine_customer(e, id, len, &info);
	}
	struct pr_lapsed *lapsed;
	size_t n, total;
	if (pr_engine_lapsed(e, 10, &lapsed, &n, &total) == 0)
		free(lapsed);
}

int fuzz_checkpoint(const uint8_t *data, size_t size)
{
	uint8_t header[HEADER];
	memcpy(header, header_template(), HEADER);
	uint64_t payload = size, hash = XXH3_64bits(data, size);
	memcpy(header + 16, &payload, 8);
	memcpy(header + 24, &hash, 8);
	hash = XXH3_64bits(header, 56);
	memcpy(header + 56, &hash, 8);
	const char *path = fuzz_scratch_path("ckpt");
	FUZZ_CHECK(put(path, header, HEADER, data, size), "cannot write %s", path);

	struct pr_engine_options opt;
	pr_engine_options_init(&opt);
	struct pr_engine *e = NULL;
	void *blob = NULL;
	size_t blob_len = 0;
	struct pr_error err = { 0 };
	int rc = pr_checkpoint_read(path, &opt, &e, &blob, &blob_len, NULL, &err);
	unlink(path);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL && !e, "rc %d: %s", rc, err.message);
		FUZZ_CHECK(strstr(err.message, path), "the error does not name the file: %s",
			   err.message);
		return 0;
	}
	fuzz_checkpoint_exercise(e);
	pr_engine_destroy(e);
	free(blob);
	return 0;
}

FUZZ_ENTRY(fuzz_checkpoint)

#ifdef PARETO_LIBFUZZER
/* tools/fuzz: PARETO_FUZZ_SEEDS=DIR writes this build's seeds into the
 * working corpus before the run. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *dir = getenv("PARETO_FUZZ_SEEDS");
	uint8_t *seed;
	for (unsigned i = 0; dir; i++) {
		size_t len = fuzz_checkpoint_seed(i, &seed);
		if (!len)
			break;
		char path[512];
		snprintf(path, sizeof path, "%s/seed-%u", dir, i);
		FUZZ_CHECK(put(path, seed, len, NULL, 0), "cannot write %s", path);
		free(seed);
	}
	return 0;
}
#endif
