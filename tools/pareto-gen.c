/*
 * pareto-gen - a synthetic, deterministic purchase feed: what a retail
 * chain's point-of-sale export looks like, at any size, for tests and
 * benchmarks.
 *
 *   pareto-gen --rows N --customers M [--stores S] [--seed X] [--start DATE]
 *              [--days D] [--refunds F] [--skew SIGMA] [--format csv|binary]
 *              [--stats] [-o FILE]
 *
 * What it guarantees:
 * - The same options give the same bytes (own PRNG, xoshiro256** seeded by
 *   splitmix64; no libc randomness; libm's exp, log and sqrt are used
 *   only to build the tables at set-up).
 * - Exactly N records in non-decreasing event time over D days from DATE,
 *   second resolution, UTC: an ordered stream, as a POS export would be.
 * - CSV (header `ts,customer_id,store_id,amount`, ISO-8601 `...Z` times,
 *   amounts with 2 decimals) and binary (include/pareto/record.h) carry the
 *   very same records for the same options, so both paths can be compared.
 *
 * The model, and why:
 * - Customers (C + zero-padded number, width >= 8) buy with a frequency
 *   drawn once from a log-normal law and with a personal typical basket,
 *   also log-normal. The spread of frequency (--skew, a log-sd) is by
 *   default calibrated for the rows per customer asked, so that about 20%
 *   of the customers bring about 80% of the revenue (--stats prints the
 *   share achieved). A log-normal rather than a power law keeps the largest
 *   customer near a few tenths of a percent of revenue (for 1M customers),
 *   as in retail, instead of a single giant key client.
 * - Some customers join late and some stop buying (the lapsed regulars of
 *   the design); each has a home store and sometimes shops elsewhere.
 * - Traffic follows the week, the season (December peak, stores nearly
 *   closed on Jan 1 and Dec 25), a slow growth, and opening hours.
 * - About --refunds of the lines are refunds: the negative of a customer's
 *   previous basket (or of part of it) at the same store, so no customer's
 *   revenue goes below zero but some end at exactly zero.
 *
 * Complexity: O(M + S) memory (24 bytes per customer, 48 while setting up,
 * 9 more with --stats), O(N + D x 86400) time. Customers are picked through
 * a prefetching pipeline and rows formatted by hand into a 4 MiB buffer
 * written with write(2): 10M rows take about a second.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Relative so that the generator builds with nothing but a C compiler. */
#include "pareto/record.h"
#include "timeparse.h"

#define EXIT_USAGE 2
#define SECONDS_PER_DAY 86400
#define OUT_BUFFER_BYTES (4u << 20)
#define ROW_MAX_BYTES 160            /* a CSV row or a binary record, with room */
#define MAX_CUSTOMERS 4000000000ull  /* fits uint32 indexes, 10-digit ids */
#define MAX_STORES 65535u            /* uint16 store indexes */
#define MAX_DAYS 65535u              /* uint16 join and leave days */
#define NORMAL_TABLE_BITS 16

/* Model constants; see the header comment. */
#define BASKET_MEDIAN_CENTS 3000.0   /* a typical basket: 30.00 */
#define BASKET_CUSTOMER_SIGMA 0.55   /* spread of customers' typical baskets */
#define BASKET_NOISE_SIGMA 0.70      /* spread of one customer's baskets */
#define BASKET_MIN_CENTS 50
#define BASKET_MAX_CENTS 500000
#define AWAY_PERCENT 12              /* purchases outside the home store */
#define LATE_JOIN_PERCENT 15
#define CHURN_PERCENT 15
#define YEARLY_GROWTH 0.05

static const char usage[] =
	"Usage: pareto-gen --rows N --customers M [options]\n"
	"\n"
	"Writes a synthetic purchase feed in event-time order: about 20% of the\n"
	"customers bring about 80% of the revenue, with home stores, weekly and\n"
	"seasonal traffic, opening hours, late joiners, lapsed customers and\n"
	"refunds. Deterministic for a seed.\n"
	"\n"
	"Options:\n"
	"  --rows N            records to write (required)\n"
	"  --customers M       customers, ids C00000001.. (required)\n"
	"  --stores S          stores, ids S0001.. (default 300)\n"
	"  --seed X            random seed (default 1)\n"
	"  --start YYYY-MM-DD  first day, UTC (default 2024-01-01)\n"
	"  --days D            days covered (default 730)\n"
	"  --refunds F         fraction of lines that are refunds (default 0.01)\n"
	"  --skew SIGMA        log-sd of customers' purchase frequency; larger\n"
	"                      concentrates revenue more (default: calibrated for\n"
	"                      a top-20% share near 0.80 at this rows/customers)\n"
	"  --format csv|binary CSV with a header row (default) or binary records\n"
	"                      (include/pareto/record.h)\n"
	"  -o, --output FILE   write FILE instead of standard output\n"
	"  --stats             print the revenue figures achieved to stderr\n"
	"  -h, --help          this help\n";

struct options {
	uint64_t rows;
	uint64_t customers;
	uint32_t stores;
	uint64_t seed;
	int64_t start_day; /* days since 1970-01-01 */
	uint32_t days;
	double refunds;
	double skew;
	bool binary;
	bool stats;
	const char *output;
};

/* ---------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s[4];
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t sm = seed ^ (stream * 0xd1342543de82ef95ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&sm);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** 1.0 (Blackman and Vigna). */
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n) by Lemire's multiply-shift; the bias is < n / 2^64. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in (0, 1). */
static inline double rng_open01(struct rng *r)
{
	return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

/* Acklam's rational approximation of the inverse normal CDF (|err| < 1.2e-9). */
static double normal_quantile(double p)
{
	static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02,
				    -2.759285104469687e+02, 1.383577518672690e+02,
				    -3.066479806614716e+01, 2.506628277459239e+00 };
	static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02,
				    -1.556989798598866e+02, 6.680131188771972e+01,
				    -1.328068155288572e+01 };
	static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01,
				    -2.400758277161838e+00, -2.549671010432019e+00,
				    4.374664141464968e+00, 2.938163982698783e+00 };
	static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01,
				    2.445134137142996e+00, 3.754408661907416e+00 };
	const double lo = 0.02425;
	if (p < lo) {
		double q = sqrt(-2 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	if (p > 1 - lo)
		return -normal_quantile(1 - p);
	double q = p - 0.5, t = q * q;
	return (((((a[0] * t + a[1]) * t + a[2]) * t + a[3]) * t + a[4]) * t + a[5]) * q /
	       (((((b[0] * t + b[1]) * t + b[2]) * t + b[3]) * t + b[4]) * t + 1);
}

static inline double rng_normal(struct rng *r)
{
	return normal_quantile(rng_open01(r));
}

/*
 * Walker/Vose alias table: O(1) weighted choice among n items, one 64-bit
 * draw per choice (high half picks the slot, low half the coin).
 */
struct alias_slot {
	uint32_t threshold; /* keep this slot if the coin < threshold */
	uint32_t other;     /* else take this one */
};

struct alias {
	uint32_t n;
	struct alias_slot *slot; /* owned, n entries: one cache miss per pick */
};

static int alias_build(struct alias *t, const double *weight, uint32_t n)
{
	t->n = n;
	t->slot = malloc((size_t)n * sizeof *t->slot);
	double *scaled = malloc((size_t)n * sizeof *scaled);
	uint32_t *small = malloc((size_t)n * sizeof *small);
	uint32_t *large = malloc((size_t)n * sizeof *large);
	if (!t->slot || !scaled || !small || !large) {
		free(scaled), free(small), free(large);
		return -ENOMEM;
	}
	double sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum += weight[i];
	uint32_t ns = 0, nl = 0;
	for (uint32_t i = 0; i < n; i++) {
		scaled[i] = weight[i] * n / sum;
		if (scaled[i] < 1)
			small[ns++] = i;
		else
			large[nl++] = i;
	}
	while (ns && nl) {
		uint32_t s = small[--ns], l = large[nl - 1];
		t->slot[s].threshold = (uint32_t)fmin(scaled[s] * 4294967296.0, 4294967295.0);
		t->slot[s].other = l;
		scaled[l] -= 1 - scaled[s];
		if (scaled[l] < 1) {
			nl--;
			small[ns++] = l;
		}
	}
	/* Left-overs are 1 up to rounding: always keep them. */
	while (nl) {
		uint32_t l = large[--nl];
		t->slot[l] = (struct alias_slot){ UINT32_MAX, l };
	}
	while (ns) {
		uint32_t s = small[--ns];
		t->slot[s] = (struct alias_slot){ UINT32_MAX, s };
	}
	free(scaled), free(small), free(large);
	return 0;
}

static inline uint32_t alias_slot_of(const struct alias *t, uint64_t x)
{
	return (uint32_t)(((x >> 32) * t->n) >> 32);
}

static inline uint32_t alias_resolve(const struct alias *t, uint64_t x)
{
	uint32_t i = alias_slot_of(t, x);
	return (uint32_t)x < t->slot[i].threshold ? i : t->slot[i].other;
}

static inline uint32_t alias_pick(const struct alias *t, struct rng *r)
{
	return alias_resolve(t, rng_next(r));
}

static void alias_free(struct alias *t)
{
	free(t->slot);
}

/* ------------------------------------------------------------ calendar */

/* Relative traffic of one day: week, season, holidays, growth. */
static double day_weight(int64_t epoch_day, uint32_t index)
{
	/* Sunday..Saturday; 1970-01-01 was a Thursday. */
	static const double weekday[7] = { 0.75, 0.85, 0.90, 0.95, 1.00, 1.20, 1.40 };
	static const double month[13] = { 0, 0.85, 0.88, 0.95, 0.97, 1.00, 1.00,
					  0.98, 1.00, 0.97, 1.00, 1.10, 1.35 };
	int64_t y;
	unsigned m, d;
	pr_civil_from_days(epoch_day, &y, &m, &d);
	double w = weekday[((epoch_day % 7) + 11) % 7] * month[m];
	if ((m == 1 && d == 1) || (m == 12 && d == 25))
		w *= 0.1;
	else if (m == 12 && d >= 18 && d <= 23)
		w *= 1.3; /* the last shopping days before Christmas */
	return w * (1 + YEARLY_GROWTH * index / 365.0);
}

/* Share of a day's purchases by hour: stores open 7:00 to 23:00. */
static const double hour_weight[24] = {
	0, 0, 0, 0, 0, 0, 0, 0.3, 0.6, 0.8, 1.0, 1.2,
	1.5, 1.4, 1.1, 1.0, 1.2, 1.6, 1.8, 1.5, 1.0, 0.6, 0.2, 0,
};

static int parse_date(const char *s, int64_t *out)
{
	unsigned y, m, d;
	int n = 0;
	if (sscanf(s, "%4u-%2u-%2u%n", &y, &m, &d, &n) != 3 || s[n] || n != 10 ||
	    m < 1 || m > 12 || d < 1 || d > 31 || y < 1970)
		return -EINVAL;
	int64_t day = pr_days_from_civil(y, m, d);
	int64_t yy;
	unsigned mm, dd;
	pr_civil_from_days(day, &yy, &mm, &dd);
	if (mm != m || dd != d) /* 2023-02-30 */
		return -EINVAL;
	*out = day;
	return 0;
}

/* ------------------------------------------------------------- output */

struct out {
	int fd;
	unsigned char *buf; /* owned, OUT_BUFFER_BYTES */
	size_t len;
	uint64_t written;
	int error; /* first write error, as errno */
};

static void out_flush(struct out *o)
{
	size_t done = 0;
	while (done < o->len && !o->error) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			o->error = n < 0 ? errno : EIO;
		else
			done += (size_t)n;
	}
	o->written += done;
	o->len = 0;
}

static inline unsigned char *out_reserve(struct out *o)
{
	if (o->len > OUT_BUFFER_BYTES - ROW_MAX_BYTES)
		out_flush(o);
	return o->buf + o->len;
}

static const char digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* Writes v in exactly `width` digits (v < 10^width). */
static inline char *put_fixed(char *p, uint64_t v, unsigned width)
{
	char *q = p + width;
	while (q - p >= 2) {
		q -= 2;
		memcpy(q, digits2 + 2 * (v % 100), 2);
		v /= 100;
	}
	if (q > p)
		*--q = (char)('0' + v % 10);
	return p + width;
}

static inline char *put_uint(char *p, uint64_t v)
{
	unsigned width = 1;
	for (uint64_t t = v; t >= 10; t /= 10)
		width++;
	return put_fixed(p, v, width);
}

static unsigned digits_of(uint64_t v)
{
	unsigned n = 1;
	while (v >= 10)
		v /= 10, n++;
	return n;
}

/* -------------------------------------------------------------- model */

/* 16 bytes, so that one purchase touches one cache line of its customer. */
struct customer {
	float basket_cents;  /* his typical basket */
	int32_t last_cents;  /* refundable basket, 0 if none */
	uint16_t home;       /* home store */
	uint16_t join_day;   /* first day he may buy */
	uint16_t leave_day;  /* he buys before this day only */
	uint16_t last_store; /* where the refundable basket was bought */
};

/*
 * Candidate customers come from their own random stream through a two-stage
 * pipeline: a draw's alias slot is prefetched PICK_SLOT_AHEAD picks before
 * use and the customer it resolves to PICK_CUSTOMER_AHEAD picks before use.
 * The tables are far larger than the caches and the picks are random, so
 * without it nearly all the time goes to two cache misses per record. The
 * sequence of candidates is the stream's, whatever the prefetch distance.
 */
#define PICK_SLOT_AHEAD 32
#define PICK_CUSTOMER_AHEAD 16

struct customer_table {
	struct alias pick;    /* by purchase frequency */
	struct customer *at;  /* owned, one per customer */
	int64_t *revenue;     /* owned, only with --stats */
	uint8_t *seen;        /* owned, only with --stats: has a record */
	struct rng pick_rng;
	uint64_t draw[PICK_SLOT_AHEAD];         /* raw draws, slots prefetched */
	uint32_t resolved[PICK_CUSTOMER_AHEAD]; /* customers, prefetched */
	unsigned draw_head, resolved_head;
};

static inline uint64_t pick_draw(struct customer_table *c)
{
	uint64_t x = rng_next(&c->pick_rng);
	__builtin_prefetch(&c->pick.slot[alias_slot_of(&c->pick, x)]);
	return x;
}

static inline uint32_t pick_resolve(struct customer_table *c)
{
	uint64_t x = c->draw[c->draw_head];
	c->draw[c->draw_head] = pick_draw(c);
	c->draw_head = (c->draw_head + 1) % PICK_SLOT_AHEAD;
	uint32_t i = alias_resolve(&c->pick, x);
	__builtin_prefetch(&c->at[i], 1);
	if (c->revenue) {
		__builtin_prefetch(&c->revenue[i], 1);
		__builtin_prefetch(&c->seen[i], 1);
	}
	return i;
}

static void pick_start(struct customer_table *c, uint64_t seed)
{
	rng_seed(&c->pick_rng, seed, 3);
	for (unsigned k = 0; k < PICK_SLOT_AHEAD; k++)
		c->draw[k] = pick_draw(c);
	for (unsigned k = 0; k < PICK_CUSTOMER_AHEAD; k++)
		c->resolved[k] = pick_resolve(c);
}

/* The next candidate customer. */
static inline uint32_t pick_next(struct customer_table *c)
{
	uint32_t i = c->resolved[c->resolved_head];
	c->resolved[c->resolved_head] = pick_resolve(c);
	c->resolved_head = (c->resolved_head + 1) % PICK_CUSTOMER_AHEAD;
	return i;
}

struct generator {
	struct options opt;
	struct rng rng;
	struct customer_table c;
	struct alias store_pick;
	float noise[1u << NORMAL_TABLE_BITS]; /* basket multipliers by quantile */
	uint8_t hour_of[4096];                /* a uniform 12-bit draw -> hour */
	unsigned customer_width, store_width;
	struct pr_bin_layout layout; /* of --format binary */
	uint64_t refunds; /* refund lines written */
	uint64_t retries; /* candidates redrawn: not yet joined or already gone */
};

static int model_build(struct generator *g)
{
	const struct options *o = &g->opt;
	uint32_t m = (uint32_t)o->customers;
	struct customer_table *c = &g->c;
	struct rng setup;
	rng_seed(&setup, o->seed, 1);

	double *w = malloc((size_t)(m > o->stores ? m : o->stores) * sizeof *w);
	c->at = calloc(m, sizeof *c->at);
	c->revenue = o->stats ? calloc(m, sizeof *c->revenue) : NULL;
	c->seen = o->stats ? calloc(m, sizeof *c->seen) : NULL;
	if (!w || !c->at || (o->stats && (!c->revenue || !c->seen))) {
		free(w);
		return -ENOMEM;
	}

	/* Stores differ in size, mildly. */
	for (uint32_t s = 0; s < o->stores; s++)
		w[s] = exp(0.5 * rng_normal(&setup));
	if (alias_build(&g->store_pick, w, o->stores) < 0) {
		free(w);
		return -ENOMEM;
	}

	for (uint32_t i = 0; i < m; i++) {
		w[i] = exp(o->skew * rng_normal(&setup));
		struct customer *x = &c->at[i];
		x->basket_cents = (float)(BASKET_MEDIAN_CENTS *
					  exp(BASKET_CUSTOMER_SIGMA * rng_normal(&setup)));
		x->home = (uint16_t)alias_pick(&g->store_pick, &setup);
		uint64_t kind = rng_below(&setup, 100);
		x->join_day = 0;
		x->leave_day = (uint16_t)o->days;
		if (kind < LATE_JOIN_PERCENT)
			x->join_day = (uint16_t)rng_below(&setup, o->days);
		else if (kind < LATE_JOIN_PERCENT + CHURN_PERCENT)
			x->leave_day = (uint16_t)(1 + rng_below(&setup, o->days));
	}
	int rc = alias_build(&c->pick, w, m);
	free(w);
	if (rc < 0)
		return rc;
	pick_start(c, o->seed);

	for (uint32_t k = 0; k < (1u << NORMAL_TABLE_BITS); k++) {
		double p = (k + 0.5) / (double)(1u << NORMAL_TABLE_BITS);
		g->noise[k] = (float)exp(BASKET_NOISE_SIGMA * normal_quantile(p));
	}

	double hour_sum = 0, acc = 0;
	for (int h = 0; h < 24; h++)
		hour_sum += hour_weight[h];
	int h = 0;
	for (unsigned k = 0; k < 4096; k++) {
		double p = (k + 0.5) / 4096.0;
		while (h < 23 && acc + hour_weight[h] / hour_sum <= p)
			acc += hour_weight[h++] / hour_sum;
		g->hour_of[k] = (uint8_t)h;
	}

	g->customer_width = digits_of(o->customers) > 8 ? digits_of(o->customers) : 8;
	g->store_width = digits_of(o->stores) > 4 ? digits_of(o->stores) : 4;
	/* Binary records as narrow as the ids ("C" or "S" and the digits). */
	g->layout = pr_bin_layout_v2(1 + g->customer_width, 1 + g->store_width, 2);
	return 0;
}

static void model_free(struct generator *g)
{
	struct customer_table *c = &g->c;
	alias_free(&c->pick);
	alias_free(&g->store_pick);
	free(c->at);
	free(c->revenue);
	free(c->seen);
}

/* One purchase or refund on day `day` (0-based): who, where, how much. */
static inline void next_purchase(struct generator *g, uint32_t day, uint32_t *customer,
				 uint32_t *store, int64_t *cents)
{
	struct customer_table *c = &g->c;
	struct rng *r = &g->rng;
	uint32_t i;
	struct customer *x;
	/*
	 * Rejection keeps the frequency law among the customers active today;
	 * at least 70% of the weight is always active, so 64 failures do not
	 * happen in practice, and the bound keeps the loop finite regardless.
	 */
	for (int tries = 0;; tries++) {
		i = pick_next(c);
		x = &c->at[i];
		if ((day >= x->join_day && day < x->leave_day) || tries == 63)
			break;
		g->retries++;
	}
	uint64_t u = rng_next(r);
	double refund_coin = (double)(u >> 11) * 0x1.0p-53;
	if (refund_coin < g->opt.refunds && x->last_cents > 0) {
		int64_t last = x->last_cents;
		/* Mostly the whole basket back (3 in 4), else 10% to 80% of it. */
		int64_t back = (u & 3) ? last : last * (int64_t)(((u >> 2) & 7) + 1) / 10;
		if (back < 1)
			back = 1;
		x->last_cents = 0;
		*customer = i;
		*store = x->last_store;
		*cents = -back;
		g->refunds++;
		return;
	}
	uint64_t y = rng_next(r);
	uint32_t s = x->home;
	if ((y >> 57) < AWAY_PERCENT * 128 / 100)
		s = alias_pick(&g->store_pick, r);
	double amount = x->basket_cents * g->noise[y & ((1u << NORMAL_TABLE_BITS) - 1)];
	int64_t v = (int64_t)(amount + 0.5);
	v = v < BASKET_MIN_CENTS ? BASKET_MIN_CENTS : v > BASKET_MAX_CENTS ? BASKET_MAX_CENTS : v;
	x->last_cents = (int32_t)v;
	x->last_store = (uint16_t)s;
	*customer = i;
	*store = s;
	*cents = v;
}

static inline void emit_csv(struct generator *g, struct out *o, const char *date,
			    const char *clock, uint32_t customer, uint32_t store, int64_t cents)
{
	char *p = (char *)out_reserve(o), *start = p;
	memcpy(p, date, 11); /* YYYY-MM-DDT */
	memcpy(p + 11, clock, 9); /* HH:MM:SSZ */
	p += 20;
	*p++ = ',';
	*p++ = 'C';
	p = put_fixed(p, (uint64_t)customer + 1, g->customer_width);
	*p++ = ',';
	*p++ = 'S';
	p = put_fixed(p, (uint64_t)store + 1, g->store_width);
	*p++ = ',';
	uint64_t mag = cents < 0 ? (uint64_t)-cents : (uint64_t)cents;
	if (cents < 0)
		*p++ = '-';
	p = put_uint(p, mag / 100);
	*p++ = '.';
	memcpy(p, digits2 + 2 * (mag % 100), 2);
	p += 2;
	*p++ = '\n';
	o->len += (size_t)(p - start);
}

static inline void emit_binary(struct generator *g, struct out *o, int64_t ts_ms,
			       uint32_t customer, uint32_t store, int64_t cents)
{
	char cid[24], sid[24];
	cid[0] = 'C';
	sid[0] = 'S';
	put_fixed(cid + 1, (uint64_t)customer + 1, g->customer_width);
	put_fixed(sid + 1, (uint64_t)store + 1, g->store_width);
	struct pr_record rec = {
		.ts_ms = ts_ms,
		.amount_minor = cents,
		.customer = cid,
		.store = sid,
		.customer_len = (uint8_t)(1 + g->customer_width),
		.store_len = (uint8_t)(1 + g->store_width),
	};
	pr_bin_record_encode(out_reserve(o), &g->layout, &rec);
	o->len += g->layout.record_bytes;
}

static int generate(struct generator *g, struct out *o)
{
	const struct options *opt = &g->opt;
	uint32_t *per_second = malloc(SECONDS_PER_DAY * sizeof *per_second);
	double *cumulative = malloc((size_t)opt->days * sizeof *cumulative);
	if (!per_second || !cumulative) {
		free(per_second), free(cumulative);
		return -ENOMEM;
	}
	double total = 0;
	for (uint32_t d = 0; d < opt->days; d++)
		cumulative[d] = (total += day_weight(opt->start_day + d, d));

	if (opt->binary) {
		pr_bin_header_encode(out_reserve(o), &g->layout);
		o->len += PR_BIN_HEADER_BYTES;
	} else {
		static const char header[] = "ts,customer_id,store_id,amount\n";
		memcpy(out_reserve(o), header, sizeof header - 1);
		o->len += sizeof header - 1;
	}

	uint64_t done = 0;
	for (uint32_t d = 0; d < opt->days && !o->error; d++) {
		/* Rows through day d, rounded on the cumulative curve: exact total. */
		uint64_t through = d + 1 == opt->days
					   ? opt->rows
					   : (uint64_t)((long double)opt->rows * cumulative[d] / total);
		uint64_t today = through > done ? through - done : 0;
		done += today;
		memset(per_second, 0, SECONDS_PER_DAY * sizeof *per_second);
		for (uint64_t k = 0; k < today; k++) {
			uint64_t x = rng_next(&g->rng);
			unsigned hour = g->hour_of[x >> 52];
			uint32_t sec = (uint32_t)((((x & 0xffffffffu) * 3600) >> 32));
			per_second[hour * 3600 + sec]++;
		}
		int64_t y;
		unsigned mon, mday;
		int64_t epoch_day = opt->start_day + d;
		pr_civil_from_days(epoch_day, &y, &mon, &mday);
		char date[11];
		put_fixed(date, (uint64_t)y, 4);
		date[4] = '-';
		put_fixed(date + 5, mon, 2);
		date[7] = '-';
		put_fixed(date + 8, mday, 2);
		date[10] = 'T';
		for (uint32_t s = 0; s < SECONDS_PER_DAY && !o->error; s++) {
			if (!per_second[s])
				continue;
			char clock[9];
			put_fixed(clock, s / 3600, 2);
			clock[2] = ':';
			put_fixed(clock + 3, s / 60 % 60, 2);
			clock[5] = ':';
			put_fixed(clock + 6, s % 60, 2);
			clock[8] = 'Z';
			int64_t ts_ms = (epoch_day * SECONDS_PER_DAY + s) * 1000;
			for (uint32_t k = per_second[s]; k; k--) {
				uint32_t customer, store;
				int64_t cents;
				next_purchase(g, d, &customer, &store, &cents);
				if (g->c.revenue) {
					g->c.revenue[customer] += cents;
					g->c.seen[customer] = 1;
				}
				if (opt->binary)
					emit_binary(g, o, ts_ms, customer, store, cents);
				else
					emit_csv(g, o, date, clock, customer, store, cents);
			}
		}
	}
	out_flush(o);
	free(per_second);
	free(cumulative);
	return o->error ? -o->error : 0;
}

/* -------------------------------------------------------------- stats */

static int by_revenue_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

/* The figures the report will show for window `all`, from our own sums. */
static void print_stats(struct generator *g, const struct out *o, double seconds)
{
	uint64_t m = g->opt.customers, n = 0, seen = 0;
	int64_t *rev = g->c.revenue;
	for (uint64_t i = 0; i < m; i++) {
		seen += g->c.seen[i];
		if (rev[i] > 0)
			rev[n++] = rev[i]; /* compacts in place: stats come last */
	}
	qsort(rev, n, sizeof *rev, by_revenue_desc);
	int64_t total = 0;
	for (uint64_t i = 0; i < n; i++)
		total += rev[i];
	uint64_t top_n = (n * 2 + 9) / 10, pareto_m = 0;
	int64_t top = 0, acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		acc += rev[i];
		if (i + 1 == top_n)
			top = acc;
		if (!pareto_m && (__int128)acc * 10 >= (__int128)total * 8)
			pareto_m = i + 1;
	}
	fprintf(stderr,
		"pareto-gen: %llu rows (%llu refunds, %llu redraws) in %.2f s, %.1f M rows/s, "
		"%llu bytes\n"
		"pareto-gen: customers with a record %llu, with revenue > 0 N = %llu\n"
		"pareto-gen: skew %.3f, revenue %lld.%02lld, top 20%% (%llu) hold %.4f, "
		"pareto point %.4f, largest customer %.5f\n",
		(unsigned long long)g->opt.rows, (unsigned long long)g->refunds,
		(unsigned long long)g->retries, seconds,
		seconds > 0 ? g->opt.rows / seconds / 1e6 : 0.0,
		(unsigned long long)o->written, (unsigned long long)seen,
		(unsigned long long)n, g->opt.skew, (long long)(total / 100), (long long)(total % 100),
		(unsigned long long)top_n, total ? (double)top / (double)total : 0.0,
		n ? (double)pareto_m / (double)n : 0.0,
		n ? (double)rev[0] / (double)total : 0.0);
}

/* ------------------------------------------------------------ options */

/*
 * The frequency spread that gives a top-20% share of about 0.80 (+-0.01)
 * for a given number of rows per customer, found by bisection with --stats
 * (100,000 customers, seed 1). Few rows per customer need more spread: a
 * customer's few purchases say little about his frequency, and those
 * without any purchase drop out of N. Interpolated in log(rows/customer).
 */
static double default_skew(uint64_t rows, uint64_t customers)
{
	static const struct { double ratio, skew; } calibrated[] = {
		{ 1, 2.557 },  { 2, 2.274 },  { 5, 1.956 },   { 10, 1.784 },
		{ 20, 1.681 }, { 50, 1.604 }, { 100, 1.578 }, { 300, 1.561 },
	};
	const size_t n = sizeof calibrated / sizeof calibrated[0];
	double ratio = (double)rows / (double)customers;
	if (ratio <= calibrated[0].ratio)
		return calibrated[0].skew;
	for (size_t k = 1; k < n; k++) {
		if (ratio <= calibrated[k].ratio) {
			double t = log(ratio / calibrated[k - 1].ratio) /
				   log(calibrated[k].ratio / calibrated[k - 1].ratio);
			return calibrated[k - 1].skew + t * (calibrated[k].skew - calibrated[k - 1].skew);
		}
	}
	return calibrated[n - 1].skew;
}

static int parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "pareto-gen: %s: expected an integer in %llu..%llu, not '%s'\n",
			name, (unsigned long long)lo, (unsigned long long)hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_real(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "pareto-gen: %s: expected a number in %g..%g, not '%s'\n",
			name, lo, hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_ROWS = 1000, OPT_CUSTOMERS, OPT_STORES, OPT_SEED, OPT_START,
	       OPT_DAYS, OPT_REFUNDS, OPT_SKEW, OPT_FORMAT, OPT_STATS };
	static const struct option options[] = {
		{ "rows", required_argument, NULL, OPT_ROWS },
		{ "customers", required_argument, NULL, OPT_CUSTOMERS },
		{ "stores", required_argument, NULL, OPT_STORES },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "start", required_argument, NULL, OPT_START },
		{ "days", required_argument, NULL, OPT_DAYS },
		{ "refunds", required_argument, NULL, OPT_REFUNDS },
		{ "skew", required_argument, NULL, OPT_SKEW },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct options){ .stores = 300, .seed = 1, .days = 730, .refunds = 0.01,
			       .skew = -1 };
	parse_date("2024-01-01", &o->start_day);
	bool have_rows = false, have_customers = false;
	uint64_t v;
	int id, rc = 0;
	while (rc == 0 && (id = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
		switch (id) {
		case OPT_ROWS:
			rc = parse_u64("--rows", optarg, 0, INT64_MAX, &o->rows);
			have_rows = true;
			break;
		case OPT_CUSTOMERS:
			rc = parse_u64("--customers", optarg, 1, MAX_CUSTOMERS, &o->customers);
			have_customers = true;
			break;
		case OPT_STORES:
			rc = parse_u64("--stores", optarg, 1, MAX_STORES, &v);
			o->stores = (uint32_t)v;
			break;
		case OPT_SEED:
			rc = parse_u64("--seed", optarg, 0, UINT64_MAX, &o->seed);
			break;
		case OPT_START:
			rc = parse_date(optarg, &o->start_day);
			if (rc < 0)
				fprintf(stderr, "pareto-gen: --start: expected a date "
						"YYYY-MM-DD from 1970, not '%s'\n", optarg);
			break;
		case OPT_DAYS:
			rc = parse_u64("--days", optarg, 1, MAX_DAYS, &v);
			o->days = (uint32_t)v;
			break;
		case OPT_REFUNDS:
			rc = parse_real("--refunds", optarg, 0, 1, &o->refunds);
			break;
		case OPT_SKEW:
			rc = parse_real("--skew", optarg, 0, 4, &o->skew);
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "csv") == 0) {
				o->binary = false;
			} else if (strcmp(optarg, "binary") == 0) {
				o->binary = true;
			} else {
				fprintf(stderr, "pareto-gen: --format: expected csv or binary, "
						"not '%s'\n", optarg);
				rc = -EINVAL;
			}
			break;
		case OPT_STATS:
			o->stats = true;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			rc = -EINVAL;
		}
	}
	if (rc == 0 && optind < argc) {
		fprintf(stderr, "pareto-gen: unexpected argument '%s'\n", argv[optind]);
		rc = -EINVAL;
	}
	if (rc == 0 && (!have_rows || !have_customers)) {
		fputs("pareto-gen: --rows and --customers are required\n", stderr);
		rc = -EINVAL;
	}
	/* Keeps every day inside year 9999 so dates stay four digits. */
	if (rc == 0 && o->start_day + o->days > pr_days_from_civil(10000, 1, 1)) {
		fputs("pareto-gen: --start plus --days goes past year 9999\n", stderr);
		rc = -EINVAL;
	}
	if (rc < 0)
		fputs("Try 'pareto-gen --help'.\n", stderr);
	else if (o->skew < 0)
		o->skew = default_skew(o->rows, o->customers);
	return rc;
}

int main(int argc, char **argv)
{
	static struct generator g; /* large (the noise table); zeroed */
	if (parse_options(argc, argv, &g.opt) < 0)
		return EXIT_USAGE;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	struct out o = { .fd = STDOUT_FILENO };
	if (g.opt.output) {
		o.fd = open(g.opt.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (o.fd < 0) {
			fprintf(stderr, "pareto-gen: %s: %s\n", g.opt.output, strerror(errno));
			return 1;
		}
	}
	o.buf = malloc(OUT_BUFFER_BYTES);
	rng_seed(&g.rng, g.opt.seed, 2);
	int rc = o.buf ? model_build(&g) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "pareto-gen: out of memory for %llu customers (about %llu MB)\n",
			(unsigned long long)g.opt.customers,
			(unsigned long long)(g.opt.customers * (g.opt.stats ? 57 : 48) >> 20));
		model_free(&g);
		free(o.buf);
		return 1;
	}
	rc = generate(&g, &o);
	if (rc == 0 && g.opt.output && close(o.fd) < 0)
		rc = -errno;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0) {
		fprintf(stderr, "pareto-gen: %s: %s\n", g.opt.output ? g.opt.output : "stdout",
			strerror(-rc));
	} else if (g.opt.stats) {
		print_stats(&g, &o, (double)(t1.tv_sec - t0.tv_sec) +
					    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	model_free(&g);
	free(o.buf);
	return rc < 0 ? 1 : 0;
}
