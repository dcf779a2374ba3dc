/*
 * support_feed.h - what the report suites need besides JSON: purchase feeds
 * held as plain arrays (built by hand or at random from a seed) and written
 * as CSV; a brute-force reference that computes every figure of
 * `pareto report --json` from the definitions in DESIGN.md and checks a
 * parsed report against them; running a program with pipes; temporary
 * directories.
 *
 * The reference shares no code with the engine: windows come from
 * gmtime_r/timegm, customers are grouped by sorting their id bytes, ranks by
 * qsort, sums are 128-bit, every cut point is exact integer arithmetic. It is
 * O(R log R) per scope for R records, slow and obvious on purpose.
 *
 * Memory: a feed owns its arrays (feed_free); a reference owns its arrays
 * but borrows ids from the feed it was computed from, so free it first.
 */
#ifndef PARETO_SUPPORT_FEED_H
#define PARETO_SUPPORT_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support_json.h"

#define FEED_ID_MAX 64    /* customer id bytes, DESIGN.md */
#define FEED_STORE_MAX 32 /* store id bytes, pareto/feed.h */
#define FEED_MS_PER_DAY 86400000LL

/* ---- seeded randomness ---------------------------------------------------- */

struct feed_rng {
	uint64_t state;
};

void feed_rng_seed(struct feed_rng *r, uint64_t seed);
uint64_t feed_rng_next(struct feed_rng *r);
/* Uniform in 0..n-1 (n > 0). */
uint64_t feed_rng_below(struct feed_rng *r, uint64_t n);
/* True with probability percent / 100. */
bool feed_rng_chance(struct feed_rng *r, unsigned percent);

/* ---- feeds ------------------------------------------------------------------ */

struct feed_id {
	uint8_t len;
	char bytes[FEED_ID_MAX + 1]; /* NUL after len bytes, ids hold no NUL */
};

struct feed_record {
	int64_t ts_ms;
	int64_t amount_minor;
	uint32_t customer; /* index in feed.customers */
	uint32_t store;    /* index in feed.stores */
};

struct feed {
	struct feed_id *customers; /* distinct ids (interned by exact bytes) */
	size_t customer_count;
	struct feed_id *stores;    /* distinct store ids; "" when no store column */
	size_t store_count;
	bool has_store_column;
	struct feed_record *records; /* in feed (line) order */
	size_t count;
	/* private: capacities and the customer hash index */
	size_t customer_cap, store_cap, record_cap;
	uint32_t *customer_slots;
	size_t slot_count;
};

void feed_init(struct feed *f);
void feed_free(struct feed *f);
/* The index of an id, added if new. len must be 1..FEED_ID_MAX (store: 0..32). */
uint32_t feed_customer(struct feed *f, const char *bytes, size_t len);
uint32_t feed_store(struct feed *f, const char *bytes, size_t len);
void feed_add(struct feed *f, int64_t ts_ms, uint32_t customer, uint32_t store,
	      int64_t amount_minor);
/* Largest event time; false if the feed has no record. */
bool feed_watermark(const struct feed *f, int64_t *ts_ms);

/*
 * A random feed for a seed. Shapes cycle with the seed: header only; one
 * customer; every customer's net revenue <= 0; exact ties; and general
 * feeds of up to ~1500 customers, 1..8 stores (or no store column), times
 * over ~3 years with late arrivals and records on window edges, refunds,
 * ids of 1..64 bytes sharing prefixes, with commas, quotes, backslashes,
 * line breaks and UTF-8. `what` gets a one-line description.
 */
void feed_random(struct feed *f, unsigned seed, char *what, size_t what_size);

/* CSV text of a feed, its look varied by `style_seed` (column order and
 * names, an extra column, time formats, quoting, CRLF). */
struct feed_csv {
	char *text; /* malloc'ed */
	size_t len;
	const char *map_args[8]; /* --map options the header needs (static strings) */
	int map_count;
};

void feed_csv_write(const struct feed *f, uint64_t style_seed, struct feed_csv *out);
void feed_csv_free(struct feed_csv *c);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of a time (years 0..9999). */
void feed_iso_ms(int64_t ts_ms, char out[32]);
/* Milliseconds of a UTC civil time. */
int64_t feed_utc_ms(int year, int month, int day, int hour, int minute, int second, int ms);

/* ---- the reference ------------------------------------------------------------ */

struct ref_fraction {
	uint64_t num, den;
};

struct ref_options {
	struct ref_fraction top, tier_a, tier_b, pareto_target, key_share;
	uint32_t lapsed_min_days;
	struct ref_fraction lapsed_gap_factor;
	uint32_t lapsed_min_idle_days;
};

/* DESIGN.md's defaults: 1/5, 1/5, 1/2, 4/5, 1/10, 3 days, 3x, 30 days. */
void ref_options_default(struct ref_options *o);

enum { REF_WINDOW_COUNT = 7 };
/* "all", "month", "quarter", "year", "prev-month", "prev-quarter", "prev-year". */
const char *ref_window_name(int window);

/* One customer of a scope and window. */
struct ref_customer {
	const char *id; /* borrowed from the feed */
	size_t len;
	int64_t revenue;
};

/* The figures of one scope (the company or one store) in one window. */
struct ref_scope {
	const char *store; /* store id for a store scope */
	size_t store_len;
	size_t first_seen; /* index of the store's first record */
	struct ref_customer *ranked; /* revenue > 0, by revenue desc then id bytes */
	uint64_t n;
	__int128 total;
	uint64_t *competition_rank; /* per ranked entry */
	struct ref_customer *all;    /* every customer with a record in scope, by id */
	size_t all_count;
	uint64_t top_customers;
	__int128 top_revenue;
	uint64_t tier_customers[3];
	__int128 tier_revenue[3];
	uint64_t pareto_m; /* 0 when n == 0 */
	double cr1, cr5, cr10, hhi, gini;
	int risk; /* 0 none, 1 key, 2 elevated, 3 high, 4 critical, 5 mono */
	uint64_t key_clients;
};

struct ref_lapsed {
	const char *id;
	size_t len;
	int64_t revenue; /* all time */
	uint64_t purchases;
	uint64_t days;
	int64_t first_ms, last_ms;
};

struct ref_report {
	int window;
	struct ref_options opt;
	uint64_t records;
	bool has_watermark;
	int64_t watermark_ms;
	struct ref_scope company;
	struct ref_scope *stores; /* in the report's order: risk, cr1, first seen */
	size_t store_count;
	struct ref_lapsed *lapsed; /* by all-time revenue desc, then id */
	size_t lapsed_count;
};

void ref_compute(const struct feed *f, int window, const struct ref_options *opt,
		 struct ref_report *out);
void ref_free(struct ref_report *r);
const char *ref_risk_name(int risk);

/* What a report run asked for, to know which parts to expect. */
struct ref_query {
	uint64_t top;            /* --top */
	bool by_store;
	const char *const *customers; /* --customer values */
	size_t customer_count;
	bool lapsed;
	uint64_t lapsed_limit;
	uint64_t rejected;       /* lines the feed had that are not records */
	unsigned scale;          /* 2 unless --scale */
};

/*
 * Checks every field of a parsed report against the reference: exact keys
 * of every object, integers exactly, doubles within 1e-9 relative (1e-12
 * absolute near 0), ids byte for byte, list lengths and orders. Returns
 * true, or false with the first difference ("top[3].customer: got ...,
 * want ...") in why.
 */
bool ref_check(const struct tj *report, const struct ref_report *want, const struct ref_query *q,
	       char *why, size_t why_size);

/* Whether two doubles agree within the tolerance above. */
bool ref_close(double got, double want);

/* ---- processes and files ----------------------------------------------------- */

struct proc_result {
	int status; /* exit code, or 128 + signal */
	char *out;  /* NUL-terminated, malloc'ed */
	size_t out_len;
	char *err;
	size_t err_len;
};

/*
 * Runs argv[0] (a path) with argv, extra environment "NAME=value" strings
 * (env_extra may be NULL, NULL-terminated), and `input` on its standard
 * input (in_len bytes; NULL: empty). Pipes on all three; one poll loop, so
 * no side can block the other. Returns 0 or -1 if the spawn failed.
 */
int proc_run(const char *const argv[], const char *const env_extra[], const void *input,
	     size_t in_len, struct proc_result *r);
/* The same, writing the input in pieces of 1 byte to 8 KiB, their sizes
 * drawn from `seed`, as a producer that writes what it has would. */
int proc_run_pieces(const char *const argv[], const char *const env_extra[], const void *input,
		    size_t in_len, uint64_t seed, struct proc_result *r);
void proc_result_free(struct proc_result *r);

/* A fresh mkdtemp directory under $TMPDIR or /tmp (malloc'ed path). */
char *tmpdir_create(void);
/* dir/name in a malloc'ed string. */
char *tmpdir_path(const char *dir, const char *name);
/* Removes the directory's files and the directory, and frees dir. */
void tmpdir_remove(char *dir);

/* Whole-file helpers; both abort on failure (test setup, not the subject). */
void file_write(const char *path, const void *data, size_t len);
char *file_read(const char *path, size_t *len);

#endif
