/*
 * ranking.c - exact rankings over one window and scope; see pareto/ranking.h.
 *
 * Entries are (revenue, customer index) sorted by revenue descending with a
 * radix sort (8 passes of 8 bits at most, skipping passes where every key
 * shares the byte), then each run of equal revenues is sorted by id; each
 * entry keeps its place in its run, so the competition rank of any rank is
 * O(1). Prefix sums make every top-m figure O(1). The optional customer
 * index maps (shard, local index) to revenue as of the build. All sums fit
 * in int64 because the engine bounds the total absolute volume; squared
 * sums use 128 bits.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_internal.h"

static const char *const risk_names[] = {
	"none", "key", "elevated", "high", "critical", "mono",
};

const char *pr_risk_name(enum pr_risk risk)
{
	return risk <= PR_RISK_MONO ? risk_names[risk] : "?";
}

uint64_t pr_fraction_ceil(struct pr_fraction f, uint64_t n)
{
	unsigned __int128 x = (unsigned __int128)f.num * n;
	return (uint64_t)((x + f.den - 1) / f.den);
}

/*
 * Runs of equal revenue are sorted by id. Comparing entries directly would
 * fetch two ids from the engine per comparison (cache misses, n log n of
 * them); instead each entry's id is fetched once, with its first 8 bytes
 * as a big-endian integer that decides most comparisons alone.
 */
struct tie_item {
	uint64_t prefix; /* the id's first 8 bytes, big-endian, zero-padded, or its
			  * directory key (id_directory.h): ordered like the ids */
	const struct pr_id_entry *id;
	struct rank_entry entry;
};

static int compare_tie_items(const void *a, const void *b)
{
	const struct tie_item *x = a, *y = b;
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	/* Equal first bytes (or padding that looks like zero bytes): the
	 * whole ids decide. */
	return pr_id_compare(pr_id_entry_bytes(x->id), x->id->len, pr_id_entry_bytes(y->id),
			     y->id->len);
}

static uint64_t id_prefix(const struct pr_id_entry *id)
{
	unsigned char bytes[8] = { 0 };
	memcpy(bytes, pr_id_entry_bytes(id), id->len < 8 ? id->len : 8);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | bytes[i];
	return v;
}

/* Prefetches what comparing ref's id reads: its order key, or without
 * keys its id entry (first call) or the bytes of a long id it points to
 * (second call, a little later, when the entry has arrived). */
static inline void prefetch_id(struct id_source src, uint32_t ref, bool bytes)
{
	if (src.ids && src.ids->keys_on) {
		if (!bytes)
			__builtin_prefetch(&src.ids->keys[ref & (PR_SHARDS - 1)][ref >> PR_SHARD_BITS]);
		return;
	}
	const struct pr_id_entry *x = id_of(src, ref);
	if (!bytes)
		__builtin_prefetch(x);
	else if (x->len > PR_ID_INLINE_BYTES)
		__builtin_prefetch(pr_id_entry_bytes(x));
}

/* How far ahead the id of a later entry is fetched while ties are sorted. */
#define ID_AHEAD 16

/* Sorts a[0..n) (equal revenues) by id; items has room for n; a[n..end)
 * follow, for fetching ahead. */
static void sort_tie_run(struct id_source src, struct rank_entry *a, uint64_t n,
			 const struct rank_entry *end, struct tie_item *items)
{
	bool keys = src.ids && src.ids->keys_on;
	for (uint64_t i = 0; i < n; i++) {
		if (a + i + ID_AHEAD < end)
			prefetch_id(src, a[i + ID_AHEAD].customer, false);
		const struct pr_id_entry *id = id_of(src, a[i].customer);
		/* A directory's key orders as the prefix does: where they
		 * differ, the ids do (id_directory.h). */
		uint64_t prefix = keys ? pr_id_directory_key_of(src.ids, a[i].customer) : id_prefix(id);
		items[i] = (struct tie_item){ prefix, id, a[i] };
	}
	qsort(items, n, sizeof *items, compare_tie_items);
	for (uint64_t i = 0; i < n; i++)
		a[i] = items[i].entry;
}

/*
 * Sorts a[0..n) by revenue descending inside the entries' own memory, when
 * every revenue is below 2^32 (42.9 million in cents: any retail customer;
 * false, with a unchanged, otherwise). Each entry becomes an 8-byte key,
 * (2^32 - 1 - revenue) << 32 | customer, in the first half of the array;
 * the radix passes use the second half as their other buffer, and the keys
 * are spread back into entries from whichever half holds them last. So a
 * ranking needs no buffer beside its entries, whose copy was half of the
 * report's peak memory at 10M customers. Only the revenue bytes are sorted
 * on: equal revenues are put in id order afterwards anyway. Entries and
 * keys go through memcpy, as the same bytes are read as both types.
 */
static bool sort_packed(struct rank_entry *a, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if ((uint64_t)a[i].revenue_minor > UINT32_MAX)
			return false;
	unsigned char *bytes = (unsigned char *)a;
	for (uint64_t i = 0; i < n; i++) { /* key i overwrites entries before i only */
		struct rank_entry x;
		memcpy(&x, bytes + i * sizeof x, sizeof x);
		uint64_t key = (uint64_t)(UINT32_MAX - (uint64_t)x.revenue_minor) << 32 | x.customer;
		memcpy(bytes + i * sizeof key, &key, sizeof key);
	}
	uint64_t *src = (uint64_t *)a, *dst = src + n;
	for (int shift = 32; shift < 64; shift += 8) {
		uint64_t count[256] = { 0 };
		for (uint64_t i = 0; i < n; i++)
			count[src[i] >> shift & 0xff]++;
		if (count[src[0] >> shift & 0xff] == n)
			continue; /* every key has this byte: the pass would not move anything */
		uint64_t at = 0;
		for (int b = 0; b < 256; b++) {
			uint64_t c = count[b];
			count[b] = at;
			at += c;
		}
		for (uint64_t i = 0; i < n; i++)
			dst[count[src[i] >> shift & 0xff]++] = src[i];
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	/* Entry i covers keys 2i and 2i + 1 of the first half, and keys 2i - n
	 * and 2i - n + 1 of the second: from the first half, backwards, from
	 * the second, forwards, every key is read before its bytes are written. */
	bool first_half = src == (uint64_t *)a;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = first_half ? n - 1 - k : k, key;
		memcpy(&key, (const unsigned char *)src + i * sizeof key, sizeof key);
		struct rank_entry x = { .revenue_minor = (int64_t)(UINT32_MAX - (key >> 32)),
					.customer = (uint32_t)key };
		memcpy(bytes + i * sizeof x, &x, sizeof x);
	}
	return true;
}

/* The same for any revenues, through a buffer as large as the entries. */
static int sort_wide(struct rank_entry *a, uint64_t n)
{
	struct rank_entry *tmp = malloc(n * sizeof *tmp);
	if (!tmp)
		return -ENOMEM;
	struct rank_entry *src = a, *dst = tmp;
	for (int pass = 0; pass < 8; pass++) {
		int shift = pass * 8;
		uint64_t count[256] = { 0 };
		for (uint64_t i = 0; i < n; i++)
			count[(~(uint64_t)src[i].revenue_minor >> shift) & 0xff]++;
		if (count[(~(uint64_t)src[0].revenue_minor >> shift) & 0xff] == n)
			continue; /* every key has this byte: the pass would not move anything */
		uint64_t at = 0;
		for (int b = 0; b < 256; b++) {
			uint64_t c = count[b];
			count[b] = at;
			at += c;
		}
		for (uint64_t i = 0; i < n; i++)
			dst[count[(~(uint64_t)src[i].revenue_minor >> shift) & 0xff]++] = src[i];
		struct rank_entry *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof *a);
	free(tmp);
	return 0;
}

int ranking_sort_entries(struct id_source ids, struct rank_entry *a, uint64_t n)
{
	if (n < 2)
		return 0;
	if (!sort_packed(a, n) && sort_wide(a, n) < 0)
		return -ENOMEM;
	uint64_t longest = 1;
	for (uint64_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].revenue_minor == a[i].revenue_minor; j++)
			;
		if (j - i > longest)
			longest = j - i;
	}
	if (longest < 2)
		return 0;
	struct tie_item *items = malloc(longest * sizeof *items);
	if (!items)
		return -ENOMEM;
	for (uint64_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].revenue_minor == a[i].revenue_minor; j++)
			;
		if (j - i > 1)
			sort_tie_run(ids, a + i, j - i, a + n, items);
	}
	free(items);
	return 0;
}

/* A ranking with room for `capacity` entries; it reads nothing of the
 * engine (it may be built off the writer's thread). */
struct pr_ranking *ranking_alloc(const struct pr_engine *e, enum pr_window window, int64_t store,
				 uint64_t capacity)
{
	struct pr_ranking *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->engine = e;
	r->window = window;
	r->store = store;
	r->entries = malloc((capacity ? capacity : 1) * sizeof *r->entries);
	r->prefix = malloc((capacity + 1) * sizeof *r->prefix);
	if (!r->entries || !r->prefix) {
		pr_ranking_destroy(r);
		return NULL;
	}
	return r;
}

/* The same, as of the engine now (on the writer's thread). */
static struct pr_ranking *ranking_new(const struct pr_engine *e, enum pr_window window,
				      int64_t store, uint64_t capacity)
{
	struct pr_ranking *r = ranking_alloc(e, window, store, capacity);
	if (r) {
		r->epoch = e->changes_epoch;
		r->periods = e->watermark_periods;
	}
	return r;
}

/* Prefix sums, each entry's place in its tie run, and the sums behind HHI
 * and Gini, of sorted entries. */
static void ranking_sums(struct pr_ranking *r)
{
	unsigned __int128 squares = 0, weighted = 0;
	r->prefix[0] = 0;
	for (uint64_t i = 0; i < r->n; i++) {
		struct rank_entry *x = &r->entries[i];
		r->prefix[i + 1] = r->prefix[i] + x->revenue_minor;
		x->tie = i && x[-1].revenue_minor == x->revenue_minor ? x[-1].tie + 1 : 0;
		unsigned __int128 v = (uint64_t)x->revenue_minor;
		squares += v * v;
		weighted += v * (i + 1);
	}
	r->total = r->prefix[r->n];
	r->squares = squares;
	r->weighted = weighted;
}

/* Sorts the n entries already in r and computes the prefix sums. */
static int ranking_finish(struct pr_ranking *r)
{
	int rc = ranking_sort_entries((struct id_source){ r->engine, NULL }, r->entries, r->n);
	if (rc < 0)
		return rc;
	ranking_sums(r);
	return 0;
}

int pr_ranking_build(const struct pr_engine *e, enum pr_window window,
		     int64_t store, struct pr_ranking **out, struct pr_error *err)
{
	assert(engine_applied(e));
	if (engine_can_rank(e, window, store >= 0) < 0)
		return pr_error_set(err, -ENOTSUP, "the engine does not keep what this ranking needs");
	if (store >= 0) {
		struct pr_ranking **all;
		uint32_t count;
		int rc = pr_ranking_build_stores(e, window, &all, &count, err);
		if (rc < 0)
			return rc;
		if ((uint64_t)store >= count) {
			for (uint32_t s = 0; s < count; s++)
				pr_ranking_destroy(all[s]);
			free(all);
			return pr_error_set(err, -ENOENT, "no such store");
		}
		*out = all[store];
		for (uint32_t s = 0; s < count; s++)
			if (s != store)
				pr_ranking_destroy(all[s]);
		free(all);
		return 0;
	}
	uint64_t customers = engine_customer_count(e);
	struct pr_ranking *r = ranking_new(e, window, -1, customers);
	if (!r)
		return pr_error_set(err, -ENOMEM, "out of memory ranking %llu customers",
				    (unsigned long long)customers);
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		const struct pr_id_table *t = &e->shards[shard].customers;
		for (uint32_t i = 0; i < t->count; i++) {
			int64_t revenue = customer_revenue(e, pr_id_table_value(t, i), window);
			if (revenue > 0)
				r->entries[r->n++] = (struct rank_entry){ revenue, customer_ref(shard, i), 0 };
		}
	}
	if (ranking_finish(r) < 0) {
		pr_ranking_destroy(r);
		return pr_error_set(err, -ENOMEM, "out of memory sorting %llu customers",
				    (unsigned long long)customers);
	}
	*out = r;
	return 0;
}

/* The first index in r->entries[lo..hi) that x does not come after (hi
 * if none): where x is, or would go, if it is not before lo. */
static uint64_t position_in(const struct pr_ranking *r, struct id_source src, uint64_t lo,
			    uint64_t hi, const struct rank_entry *x)
{
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (entry_before(src, &r->entries[mid], x))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t ranking_position_of(const struct pr_ranking *r, struct id_source src, uint64_t lo,
			     const struct rank_entry *x)
{
	return position_in(r, src, lo, r->n, x);
}

/*
 * The same, galloping from lo (steps 1, 2, 4, ... before a binary search):
 * O(log d) comparisons for a place d entries on, all near lo in memory. A
 * merge of k sorted changes into N entries then costs O(k log(N/k)), where
 * a binary search over the rest each time cost k log N cache misses.
 */
uint64_t ranking_position_from(const struct pr_ranking *r, struct id_source src, uint64_t lo,
			       const struct rank_entry *x)
{
	uint64_t probe = lo, step = 1;
	while (probe < r->n && entry_before(src, &r->entries[probe], x)) {
		lo = probe + 1;
		probe += step;
		step *= 2;
	}
	return position_in(r, src, lo, probe < r->n ? probe : r->n, x);
}

/*
 * The customer index's layout: customer (shard, local) sits at
 * start[shard] + local, for customers[shard] customers per shard. Allocates
 * r's index array (not filled) and fills start.
 */
static int index_alloc(struct pr_ranking *r, const uint32_t *customers)
{
	uint64_t *start = malloc((PR_SHARDS + 1) * sizeof *start);
	if (!start)
		return -ENOMEM;
	start[0] = 0;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++)
		start[shard + 1] = start[shard] + customers[shard];
	int64_t *revenue_of = malloc((start[PR_SHARDS] + 1) * sizeof *revenue_of);
	if (!revenue_of) {
		free(start);
		return -ENOMEM;
	}
	free(r->shard_start);
	free(r->revenue_of);
	r->shard_start = start;
	r->revenue_of = revenue_of;
	return 0;
}

/* The index from the old ranking's index (if not whole) and the changes. */
static int index_from_changes(struct pr_ranking *r, const struct pr_ranking *old,
			      const struct pr_ranking_changes *ch)
{
	if (index_alloc(r, ch->customers) < 0)
		return -ENOMEM;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		uint64_t at = r->shard_start[shard], known = 0;
		if (old) {
			/* Unchanged customers kept their revenue. */
			known = old->shard_start[shard + 1] - old->shard_start[shard];
			memcpy(r->revenue_of + at, old->revenue_of + old->shard_start[shard],
			       known * sizeof *r->revenue_of);
		}
		memset(r->revenue_of + at + known, 0,
		       (r->shard_start[shard + 1] - at - known) * sizeof *r->revenue_of);
	}
	for (uint64_t i = 0; i < ch->count; i++) {
		uint32_t ref = ch->refs[i];
		r->revenue_of[r->shard_start[ref & (PR_SHARDS - 1)] + (ref >> PR_SHARD_BITS)] =
			ch->revenue[i * ch->stride];
	}
	return 0;
}

/* ---- the merge of changes into a flat ranking ------------------------------ */

/* What merge_changes reads and writes. */
struct merge {
	struct id_source src;
	const struct pr_ranking *old;
	const uint64_t *changed; /* a bit per customer, by index layout */
	const uint64_t *start;   /* the index layout's shard offsets */
	struct pr_ranking *r;    /* entries appended */
};

static bool merge_changed(const struct merge *m, uint32_t ref)
{
	uint64_t bit = m->start[ref & (PR_SHARDS - 1)] + (ref >> PR_SHARD_BITS);
	return m->changed[bit >> 6] >> (bit & 63) & 1;
}

/* Appends old entries [from, to) of unchanged customers. */
static void merge_keep(struct merge *m, uint64_t from, uint64_t to)
{
	for (uint64_t at = from; at < to; at++)
		if (!merge_changed(m, m->old->entries[at].customer))
			m->r->entries[m->r->n++] = m->old->entries[at];
}

/* The first index from lo on whose revenue is below v (strictly, or at
 * most v unless strict): galloping, on revenues alone (no id is read). */
static uint64_t revenue_position(const struct pr_ranking *r, uint64_t lo, int64_t v, bool strict)
{
#define AFTER(i) (strict ? r->entries[i].revenue_minor >= v : r->entries[i].revenue_minor > v)
	uint64_t probe = lo, step = 1;
	while (probe < r->n && AFTER(probe)) {
		lo = probe + 1;
		probe += step;
		step *= 2;
	}
	uint64_t hi = probe < r->n ? probe : r->n;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (AFTER(mid))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
#undef AFTER
}

/* Ids (or keys) are prefetched this many entries ahead (long ids' bytes
 * half as far). */
#define MERGE_AHEAD 16
/* A run of equal revenues longer than this many times the changes placed
 * into it is searched (log of it ids read each) rather than walked. */
#define MERGE_WALK_FACTOR 16

/* Appends side[*i] and moves on, prefetching the ids of those ahead. */
static void merge_take(struct merge *m, const struct rank_entry *side, uint64_t *i, uint64_t end)
{
	m->r->entries[m->r->n++] = side[*i];
	if (*i + MERGE_AHEAD < end)
		prefetch_id(m->src, side[*i + MERGE_AHEAD].customer, false);
	if (*i + MERGE_AHEAD / 2 < end)
		prefetch_id(m->src, side[*i + MERGE_AHEAD / 2].customer, true);
	++*i;
}

/*
 * Merges the old run [p, q) of entries of one revenue with the changes
 * fresh[0..count) of that revenue, in id order. Every id (or order
 * key) is a cache miss (customers are in no order in memory), and ties are
 * common, so the run is walked with its ids and the changes' prefetched
 * ahead; a long run with few changes is searched instead.
 */
static void merge_run(struct merge *m, uint64_t p, uint64_t q, const struct rank_entry *fresh,
		      uint64_t count)
{
	const struct rank_entry *e = m->old->entries;
	struct pr_ranking *r = m->r;
	if (q - p > MERGE_WALK_FACTOR * count) {
		for (uint64_t b = 0; b < count; b++) {
			uint64_t until = ranking_position_from(m->old, m->src, p, &fresh[b]);
			merge_keep(m, p, until);
			r->entries[r->n++] = fresh[b];
			p = until;
		}
		merge_keep(m, p, q);
		return;
	}
	for (uint64_t i = 0; i < MERGE_AHEAD && p + i < q; i++)
		prefetch_id(m->src, e[p + i].customer, false);
	for (uint64_t i = 0; i < MERGE_AHEAD && i < count; i++)
		prefetch_id(m->src, fresh[i].customer, false);
	uint64_t a = p, b = 0;
	for (;;) {
		while (a < q && merge_changed(m, e[a].customer))
			a++;
		if (a == q || b == count)
			break;
		if (id_before(m->src, e[a].customer, fresh[b].customer))
			merge_take(m, e, &a, q);
		else
			merge_take(m, fresh, &b, count);
	}
	merge_keep(m, a, q);
	for (; b < count; b++)
		r->entries[r->n++] = fresh[b];
}

/* Appends the old entries of unchanged customers and the changed ones'
 * entries fresh[0..k) (sorted) in rank order: revenue by revenue, the run
 * of each revenue with the changes of that revenue. */
static void merge_changes(struct merge *m, const struct rank_entry *fresh, uint64_t k)
{
	uint64_t at = 0;
	for (uint64_t j = 0; j < k;) {
		int64_t v = fresh[j].revenue_minor;
		uint64_t g = j + 1;
		while (g < k && fresh[g].revenue_minor == v)
			g++;
		uint64_t p = revenue_position(m->old, at, v, false);
		uint64_t q = revenue_position(m->old, p, v, true);
		merge_keep(m, at, p);
		merge_run(m, p, q, fresh + j, g - j);
		at = q;
		j = g;
	}
	merge_keep(m, at, m->old->n);
}

/*
 * The merge: the old entries of unchanged customers keep their order (in
 * window all their revenue cannot have moved; in another window neither,
 * while the watermark stays in the same periods), so only the changed
 * customers are sorted and merged in (merge_changes).
 */
int pr_ranking_from_changes(const struct pr_engine *e, const struct pr_id_directory *ids,
			    const struct pr_ranking *old, const struct pr_ranking_changes *ch,
			    struct pr_ranking **out)
{
	struct id_source src = { e, ids };
	uint64_t customers = 0;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++)
		customers += ch->customers[shard];
	if (!ch->whole && (!old || (ch->index && !old->revenue_of)))
		return -EINVAL;
	struct rank_entry *fresh = malloc((ch->count ? ch->count : 1) * sizeof *fresh);
	/* Changed customers, by their place in the index layout. */
	uint64_t *changed = ch->whole ? NULL : calloc(customers / 64 + 1, sizeof *changed);
	uint64_t *start = malloc((PR_SHARDS + 1) * sizeof *start);
	struct pr_ranking *r = ranking_alloc(e, ch->window, -1, (ch->whole ? 0 : old->n) + ch->count);
	if (!fresh || (!ch->whole && !changed) || !start || !r)
		goto nomem;
	start[0] = 0;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++)
		start[shard + 1] = start[shard] + ch->customers[shard];
	uint64_t k = 0;
	for (uint64_t i = 0; i < ch->count; i++) {
		uint32_t ref = ch->refs[i];
		if (changed) {
			uint64_t at = start[ref & (PR_SHARDS - 1)] + (ref >> PR_SHARD_BITS);
			changed[at >> 6] |= (uint64_t)1 << (at & 63);
		}
		int64_t revenue = ch->revenue[i * ch->stride];
		if (revenue > 0)
			fresh[k++] = (struct rank_entry){ revenue, ref, 0 };
	}
	if (ranking_sort_entries(src, fresh, k) < 0)
		goto nomem;
	if (ch->whole) {
		memcpy(r->entries, fresh, k * sizeof *fresh);
		r->n = k;
	} else {
		struct merge m = { src, old, changed, start, r };
		merge_changes(&m, fresh, k);
	}
	free(fresh);
	free(changed);
	free(start);
	fresh = NULL, changed = NULL, start = NULL;
	ranking_sums(r);
	r->epoch = ch->epoch;
	r->periods = ch->periods;
	if (ch->index && index_from_changes(r, ch->whole ? NULL : old, ch) < 0)
		goto nomem;
	*out = r;
	return 0;
nomem:
	free(fresh);
	free(changed);
	free(start);
	pr_ranking_destroy(r);
	return -ENOMEM;
}

/* The engine's journal as changes of `window`: every changed customer with
 * his revenue in it now. */
static int journal_changes(const struct pr_engine *e, enum pr_window window, uint64_t changed,
			   struct pr_ranking_changes *ch, uint32_t *customers)
{
	uint32_t *refs = malloc((changed ? changed : 1) * sizeof *refs);
	int64_t *revenue = malloc((changed ? changed : 1) * sizeof *revenue);
	if (!refs || !revenue) {
		free(refs);
		free(revenue);
		return -ENOMEM;
	}
	uint64_t k = 0;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		const struct shard *sh = &e->shards[shard];
		customers[shard] = sh->customers.count;
		for (uint32_t i = 0; i < sh->changed_count; i++) {
			uint32_t local = sh->changed[i];
			refs[k] = customer_ref(shard, local);
			revenue[k++] = customer_revenue(e, pr_id_table_value(&sh->customers, local),
							window);
		}
	}
	*ch = (struct pr_ranking_changes){ .window = window, .periods = e->watermark_periods,
					   .epoch = e->changes_epoch, .count = k, .refs = refs,
					   .revenue = revenue, .stride = 1, .customers = customers };
	return 0;
}

int pr_ranking_refresh(struct pr_engine *e, const struct pr_ranking *old, enum pr_window window,
		       struct pr_ranking **out, struct pr_error *err)
{
	assert(engine_applied(e));
	uint64_t changed = 0;
	bool lost = false;
	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		changed += e->shards[s].changed_count;
		lost |= e->shards[s].changes_lost;
	}
	/* Past an eighth of the customers, sorting them all costs about as
	 * much; the journal then starts again with the new ranking. */
	bool can = e->opt.keep_changes && old && old->engine == e && old->store < 0 &&
		   old->window == window && old->epoch == e->changes_epoch && !lost &&
		   changed <= engine_customer_count(e) / 8 &&
		   (window == PR_WINDOW_ALL ||
		    memcmp(&old->periods, &e->watermark_periods, sizeof old->periods) == 0);
	if (!can) {
		engine_changes_reset(e);
		return pr_ranking_build(e, window, -1, out, err);
	}
	struct pr_ranking_changes ch;
	uint32_t customers[PR_SHARDS];
	int rc = journal_changes(e, window, changed, &ch, customers);
	if (rc == 0) {
		/* An indexed ranking refreshes into an indexed one. */
		ch.index = old->revenue_of != NULL;
		rc = pr_ranking_from_changes(e, NULL, old, &ch, out);
		free((void *)ch.refs);
		free((void *)ch.revenue);
	}
	if (rc < 0)
		return pr_error_set(err, -ENOMEM, "out of memory refreshing a ranking");
	return 0;
}

/*
 * The (store, customer) pairs a set of store rankings is built from, with
 * their revenue in the window (pairs with none skipped): read from the
 * engine's shards, or from lists the apply threads made (store_build.h).
 */
struct pair_cursor {
	/* The engine's shards (lists NULL): */
	const struct pr_engine *engine;
	enum pr_window window;
	const struct pr_periods *periods;
	uint32_t shard, index;
	/* Or lists: */
	const struct store_pair *const *lists;
	const size_t *list_counts;
	unsigned list_count, list;
	size_t at;
};

static bool pair_next(struct pair_cursor *c, struct store_pair *out)
{
	if (c->lists) {
		for (; c->list < c->list_count; c->list++, c->at = 0) {
			if (c->at < c->list_counts[c->list]) {
				*out = c->lists[c->list][c->at++];
				return true;
			}
		}
		return false;
	}
	for (; c->shard < PR_SHARDS; c->shard++, c->index = 0) {
		const struct pr_stable_array *t = &c->engine->shards[c->shard].pairs;
		while (c->index < t->count) {
			const struct pair_aggregate *p = pr_stable_array_at(t, c->index++);
			int64_t revenue = pr_period_sums_in(&p->sums, c->window, c->periods);
			if (revenue != 0) {
				*out = (struct store_pair){ revenue, p->customer, p->store };
				return true;
			}
		}
	}
	return false;
}

static int compare_customers(const void *a, const void *b)
{
	uint32_t x = ((const struct rank_entry *)a)->customer;
	uint32_t y = ((const struct rank_entry *)b)->customer;
	return (x > y) - (x < y);
}

/*
 * Every store's ranking from the pairs a cursor gives (two passes): the
 * pairs with revenue as entries, those with a negative one (refunds past
 * the purchases) kept aside by customer for lookups (pr_ranking_index).
 * Reads the engine's ids and options only. 0 or -ENOMEM.
 */
/* Every store's ranking, or with `only` those it marks (the others NULL). */
static int build_stores(const struct pr_engine *e, enum pr_window window,
			const struct pr_periods *periods, uint64_t epoch, uint32_t stores,
			const uint8_t *only, struct pair_cursor cursor, struct pr_ranking ***out)
{
	uint64_t *sizes = calloc(2 * (size_t)stores + 1, sizeof *sizes);
	uint64_t *negatives = sizes ? sizes + stores : NULL;
	struct pr_ranking **all = calloc(stores + 1, sizeof *all);
	struct store_pair p;
	int rc = -ENOMEM;
	if (!sizes || !all)
		goto out;
	for (struct pair_cursor c = cursor; pair_next(&c, &p);)
		(p.revenue_minor > 0 ? sizes : negatives)[p.store]++;
	for (uint32_t s = 0; s < stores; s++) {
		if (only && !only[s])
			continue;
		if (!(all[s] = ranking_alloc(e, window, s, sizes[s])))
			goto out;
		all[s]->epoch = epoch;
		all[s]->periods = *periods;
		if (negatives[s] &&
		    !(all[s]->negative = malloc(negatives[s] * sizeof *all[s]->negative)))
			goto out;
	}
	for (struct pair_cursor c = cursor; pair_next(&c, &p);) {
		struct pr_ranking *r = all[p.store];
		if (!r)
			continue; /* not asked for */
		struct rank_entry x = { p.revenue_minor, p.customer, 0 };
		if (p.revenue_minor > 0)
			r->entries[r->n++] = x;
		else
			r->negative[r->negative_count++] = x;
	}
	for (uint32_t s = 0; s < stores; s++) {
		if (!all[s])
			continue;
		if (ranking_finish(all[s]) < 0)
			goto out;
		if (all[s]->negative_count > 1)
			qsort(all[s]->negative, all[s]->negative_count, sizeof *all[s]->negative,
			      compare_customers);
	}
	*out = all;
	all = NULL;
	rc = 0;
out:
	for (uint32_t s = 0; all && s < stores; s++)
		pr_ranking_destroy(all[s]);
	free(all);
	free(sizes);
	return rc;
}

int pr_ranking_build_some_stores(const struct pr_engine *e, enum pr_window window,
				 const uint8_t *only, struct pr_ranking ***out, uint32_t *count,
				 struct pr_error *err)
{
	assert(engine_applied(e));
	if (engine_can_rank(e, window, true) < 0)
		return pr_error_set(err, -ENOTSUP, "the engine does not keep what this ranking needs");
	uint32_t stores = e->stores.count;
	struct pair_cursor shards = { .engine = e, .window = window,
				      .periods = &e->watermark_periods };
	if (build_stores(e, window, &e->watermark_periods, e->changes_epoch, stores, only, shards,
			 out) < 0)
		return pr_error_set(err, -ENOMEM, "out of memory ranking %u stores", stores);
	*count = stores;
	return 0;
}

int pr_ranking_build_stores(const struct pr_engine *e, enum pr_window window,
			    struct pr_ranking ***out, uint32_t *count,
			    struct pr_error *err)
{
	return pr_ranking_build_some_stores(e, window, NULL, out, count, err);
}

int ranking_build_stores_from_pairs(const struct pr_engine *e, enum pr_window window,
				    const struct pr_periods *periods, uint64_t epoch,
				    uint32_t stores, const struct store_pair *const *parts,
				    const size_t *part_counts, unsigned part_count,
				    struct pr_ranking ***out)
{
	struct pair_cursor lists = { .lists = parts, .list_counts = part_counts,
				     .list_count = part_count };
	return build_stores(e, window, periods, epoch, stores, NULL, lists, out);
}

void pr_ranking_destroy(struct pr_ranking *r)
{
	if (!r)
		return;
	free(r->entries);
	free(r->prefix);
	free(r->shard_start);
	free(r->revenue_of);
	free(r->place_of);
	free(r->by_customer);
	free(r->negative);
	layer_free(r->layer);
	free(r);
}

int pr_ranking_place(struct pr_ranking *base)
{
	if (!base->revenue_of || base->layer)
		return -EINVAL;
	uint32_t *place = calloc(base->shard_start[PR_SHARDS] + 1, sizeof *place);
	if (!place)
		return -ENOMEM;
	for (uint64_t i = 0; i < base->n; i++) {
		uint32_t ref = base->entries[i].customer;
		place[base->shard_start[ref & (PR_SHARDS - 1)] + (ref >> PR_SHARD_BITS)] =
			(uint32_t)(i + 1);
	}
	free(base->place_of);
	base->place_of = place;
	return 0;
}

/* The index from the engine now (on the writer's thread). */
static int index_from_engine(struct pr_ranking *r)
{
	const struct pr_engine *e = r->engine;
	uint32_t customers[PR_SHARDS];
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++)
		customers[shard] = e->shards[shard].customers.count;
	if (index_alloc(r, customers) < 0)
		return -ENOMEM;
	for (uint32_t shard = 0; shard < PR_SHARDS; shard++) {
		const struct pr_id_table *t = &e->shards[shard].customers;
		int64_t *revenue_of = r->revenue_of + r->shard_start[shard];
		for (uint32_t i = 0; i < t->count; i++)
			revenue_of[i] = customer_revenue(e, pr_id_table_value(t, i), r->window);
	}
	return 0;
}

/* A store ranking's entries by customer ref (struct pr_ranking): keys ref
 * << 32 | index sorted on the ref's 4 bytes, least first (radix). */
static int index_store(struct pr_ranking *r)
{
	uint64_t *keys = malloc((2 * r->n + 1) * sizeof *keys), *src = keys, *dst = keys + r->n;
	uint32_t *by_customer = malloc((r->n + 1) * sizeof *by_customer);
	if (!keys || !by_customer) {
		free(keys);
		free(by_customer);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < r->n; i++)
		src[i] = (uint64_t)r->entries[i].customer << 32 | i;
	for (int shift = 32; shift < 64; shift += 8) {
		uint64_t count[256] = { 0 };
		for (uint64_t i = 0; i < r->n; i++)
			count[src[i] >> shift & 0xff]++;
		uint64_t at = 0;
		for (int b = 0; b < 256; b++) {
			uint64_t c = count[b];
			count[b] = at;
			at += c;
		}
		for (uint64_t i = 0; i < r->n; i++)
			dst[count[src[i] >> shift & 0xff]++] = src[i];
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	for (uint64_t i = 0; i < r->n; i++)
		by_customer[i] = (uint32_t)src[i];
	free(keys);
	r->by_customer = by_customer;
	return 0;
}

int pr_ranking_index(struct pr_ranking *r, struct pr_error *err)
{
	if (r->store >= 0) {
		if (r->by_customer || index_store(r) == 0)
			return 0;
		return pr_error_set(err, -ENOMEM, "out of memory indexing %llu customers",
				    (unsigned long long)r->n);
	}
	if (r->revenue_of || r->layer)
		return 0; /* a refresh of an indexed ranking comes indexed, and a layer is */
	if (index_from_engine(r) < 0)
		return pr_error_set(err, -ENOMEM, "out of memory indexing %llu customers",
				    (unsigned long long)engine_customer_count(r->engine));
	return 0;
}

uint64_t pr_ranking_customers(const struct pr_ranking *r)
{
	return r->n;
}

int64_t pr_ranking_revenue(const struct pr_ranking *r)
{
	return r->total;
}

int64_t pr_ranking_top_revenue(const struct pr_ranking *r, uint64_t m)
{
	if (m > r->n)
		m = r->n;
	return r->layer ? layer_top_revenue(r, m) : r->prefix[m];
}

static void element(const struct pr_ranking *r, uint64_t index, struct ranking_element *out)
{
	if (r->layer) {
		layer_element(r, index, out);
		return;
	}
	const struct rank_entry *x = &r->entries[index];
	*out = (struct ranking_element){ x->revenue_minor, x->customer, index + 1 - x->tie };
}

static double ratio(int64_t part, int64_t whole)
{
	return whole > 0 ? (double)((long double)part / (long double)whole) : 0.0;
}

/* Fills *out for the element at a rank; the id from the engine unless
 * out->customer is set (a lookup by id: one cache miss less). */
static void describe(const struct pr_ranking *r, uint64_t rank, const struct ranking_element *x,
		     struct pr_ranked *out)
{
	const struct pr_engine *e = r->engine;
	if (!out->customer) {
		const struct pr_id_entry *id = engine_customer_id(e, x->customer);
		out->customer = pr_id_entry_bytes(id);
		out->customer_len = id->len;
	}
	out->rank = rank;
	out->competition_rank = x->competition_rank;
	out->revenue_minor = x->revenue_minor;
	out->share = ratio(x->revenue_minor, r->total);
	out->cumulative_share = ratio(pr_ranking_top_revenue(r, rank), r->total);
	out->percentile = (double)rank / (double)r->n;
	out->tier = rank <= pr_fraction_ceil(e->opt.tier_a, r->n)   ? 'A'
		    : rank <= pr_fraction_ceil(e->opt.tier_b, r->n) ? 'B'
								     : 'C';
}

int pr_ranking_at(const struct pr_ranking *r, uint64_t rank, struct pr_ranked *out)
{
	if (rank < 1 || rank > r->n)
		return -ERANGE;
	struct ranking_element x;
	element(r, rank - 1, &x);
	out->customer = NULL;
	describe(r, rank, &x, out);
	return 0;
}

bool pr_ranking_find_reads_only_ids(const struct pr_ranking *r)
{
	return r->layer || r->revenue_of || r->by_customer;
}

int pr_ranking_find(const struct pr_ranking *r, const char *id, size_t len,
		    struct pr_ranked *out)
{
	const struct pr_engine *e = r->engine;
	memset(out, 0, sizeof *out);
	out->customer = id;
	out->customer_len = (uint32_t)len;
	uint32_t customer = engine_find_customer(e, id, len);
	if (customer == PR_ID_NONE)
		return -ENOENT;
	struct ranking_element x;
	if (r->by_customer) {
		/* A store ranking indexed by customer: as of its build. */
		uint64_t lo = 0, hi = r->n;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			if (r->entries[r->by_customer[mid]].customer < customer)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == r->n || r->entries[r->by_customer[lo]].customer != customer) {
			const struct rank_entry key = { 0, customer, 0 };
			const struct rank_entry *neg = bsearch(&key, r->negative, r->negative_count,
							       sizeof *r->negative, compare_customers);
			out->revenue_minor = neg ? neg->revenue_minor : 0;
			return -ENOENT;
		}
		uint64_t at = r->by_customer[lo];
		element(r, at, &x);
		describe(r, at + 1, &x, out);
		return 0;
	}
	if (r->layer) {
		uint64_t index;
		int rc = layer_find(r, customer, &out->revenue_minor, &index);
		if (rc < 0)
			return rc;
		element(r, index, &x);
		describe(r, index + 1, &x, out);
		return 0;
	}
	int64_t revenue;
	if (r->revenue_of) {
		/* His revenue as of the ranking, whatever he did since. */
		uint32_t shard = customer & (PR_SHARDS - 1), local = customer >> PR_SHARD_BITS;
		if (local >= r->shard_start[shard + 1] - r->shard_start[shard])
			return -ENOENT; /* first seen after the ranking was built */
		uint64_t at = r->shard_start[shard] + local;
		revenue = r->revenue_of[at];
		if (r->place_of) {
			/* A base keeps his place: no search through a run of
			 * equal revenues, whose ids are a cache miss each. */
			out->revenue_minor = revenue;
			if (r->place_of[at] == 0)
				return -ENOENT;
			element(r, r->place_of[at] - 1, &x);
			describe(r, r->place_of[at], &x, out);
			return 0;
		}
	} else {
		/* His revenue now: only in a drained engine (the apply threads
		 * write it), pr_ranking_find_reads_only_ids. */
		assert(engine_applied(e));
		if (r->store >= 0) {
			const struct pair_aggregate *pair =
				engine_find_pair(e, customer, (uint32_t)r->store);
			if (!pair)
				return -ENOENT;
			revenue = pr_period_sums_in(&pair->sums, r->window, &e->watermark_periods);
		} else {
			revenue = customer_revenue(e, engine_customer(e, customer), r->window);
		}
	}
	out->revenue_minor = revenue;
	if (revenue <= 0)
		return -ENOENT;
	/* Rank = 1 + entries ordered before (revenue, id). */
	uint64_t lo = ranking_position_of(r, (struct id_source){ e, NULL }, 0,
					  &(struct rank_entry){ revenue, customer, 0 });
	/* On a ranking built before his revenue changed, the place found is
	 * another's, or past the end: never describe someone else. */
	if (lo == r->n || r->entries[lo].customer != customer)
		return -ESTALE;
	element(r, lo, &x);
	describe(r, lo + 1, &x, out);
	return 0;
}

/* Whether part / whole >= f, exactly. */
static bool share_at_least(int64_t part, int64_t whole, struct pr_fraction f)
{
	return (unsigned __int128)part * f.den >= (unsigned __int128)whole * f.num;
}

static void tier(const struct pr_ranking *r, uint64_t from, uint64_t to,
		 struct pr_tier_figures *out)
{
	out->customers = to - from;
	out->revenue_minor = pr_ranking_top_revenue(r, to) - pr_ranking_top_revenue(r, from);
	out->share = ratio(out->revenue_minor, r->total);
}

static int64_t revenue_at(const struct pr_ranking *r, uint64_t index)
{
	struct ranking_element x;
	element(r, index, &x);
	return x.revenue_minor;
}

void pr_ranking_summarize(const struct pr_ranking *r, struct pr_summary *out)
{
	const struct pr_engine_options *o = &r->engine->opt;
	uint64_t n = r->n;
	int64_t total = r->total;
	memset(out, 0, sizeof *out);
	out->customers = n;
	out->revenue_minor = total;
	if (n == 0)
		return;

	tier(r, 0, pr_fraction_ceil(o->top, n), &out->top);
	uint64_t a = pr_fraction_ceil(o->tier_a, n);
	uint64_t b = pr_fraction_ceil(o->tier_b, n);
	if (b < a)
		b = a;
	tier(r, 0, a, &out->tiers[0]);
	tier(r, a, b, &out->tiers[1]);
	tier(r, b, n, &out->tiers[2]);

	/* Pareto point: smallest m with top-m revenue >= target x total. */
	uint64_t lo = 1, hi = n;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (share_at_least(pr_ranking_top_revenue(r, mid), total, o->pareto_target))
			hi = mid;
		else
			lo = mid + 1;
	}
	out->pareto_customers = lo;
	out->pareto_point = (double)lo / (double)n;

	out->cr1 = ratio(pr_ranking_top_revenue(r, 1), total);
	out->cr5 = ratio(pr_ranking_top_revenue(r, 5), total);
	out->cr10 = ratio(pr_ranking_top_revenue(r, 10), total);

	out->hhi = (double)((long double)r->squares * 10000.0L /
			    ((long double)total * (long double)total));
	/* Gini with x ascending equals ((N + 1) T - 2 sum p x_p) / (N T) with
	 * p the descending position: the sum over ascending i of i x_i is
	 * (N + 1) T - sum p x_p. */
	__int128 numerator = (__int128)(n + 1) * total - 2 * (__int128)r->weighted;
	out->gini = (double)((long double)numerator /
			     ((long double)n * (long double)total));

	int64_t top1 = revenue_at(r, 0);
	out->risk = n == 1 ? PR_RISK_MONO
		  : share_at_least(top1, total, (struct pr_fraction){ 1, 2 }) ? PR_RISK_CRITICAL
		  : share_at_least(top1, total, (struct pr_fraction){ 2, 5 }) ? PR_RISK_HIGH
		  : share_at_least(top1, total, (struct pr_fraction){ 1, 5 }) ? PR_RISK_ELEVATED
		  : share_at_least(top1, total, o->key_share) ? PR_RISK_KEY
		  : PR_RISK_NONE;
	lo = 0, hi = n;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (share_at_least(revenue_at(r, mid), total, o->key_share))
			lo = mid + 1;
		else
			hi = mid;
	}
	out->key_clients = lo;
}
