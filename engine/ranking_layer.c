/*
 * ranking_layer.c - a layered ranking: a flat base ranking with the changes
 * of K customers on top, so that paretod's ranker publishes in O(K + k log N)
 * instead of copying N entries for every batch.
 *
 * The merged order is the base's entries less those of changed customers
 * ("removed", by base position) plus the changed customers' entries now
 * ("added", sorted, each with the number of base entries before it). With
 *   rb(p) = removed positions < p      ab(p) = added with base position <= p
 * a surviving base entry p has index p - rb(p) + ab(p), and added entry j
 * has index j + pos_j - rb(pos_j): both increasing, so select, rank and
 * top-m revenue are binary searches over the K-sized arrays plus one base
 * lookup. The sums behind HHI and Gini follow from the base's by O(K)
 * corrections (layer_sums says how). Every answer equals that of a flat
 * ranking of the same records (test_ranker checks it).
 *
 * Immutable once built, like a flat ranking; the base must outlive it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_internal.h"

struct ranking_layer {
	const struct pr_ranking *base; /* borrowed: flat, indexed, with places */
	/* Every customer changed since the base, by ref, with his revenue now. */
	uint64_t changed_count;
	uint32_t *changed_ref;
	int64_t *changed_revenue;
	uint64_t *changed_seq;        /* the batch of his last change */
	/* The base entries of changed customers, by base position. */
	uint64_t removed_count;
	uint64_t *removed;            /* base positions, ascending */
	int64_t *removed_revenue;
	int64_t *removed_after;       /* base revenue after each position */
	int64_t *removed_sum;         /* removed_count + 1 prefix sums */
	/* Changed customers with revenue > 0, in rank order. */
	uint64_t added_count;
	struct rank_entry *added;     /* tie: place in its run among the added */
	uint64_t *added_pos;          /* base entries before each */
	int64_t *added_from;          /* base revenue at and after added_pos */
	int64_t *added_sum;           /* added_count + 1 prefix sums */
};

void layer_free(struct ranking_layer *l)
{
	if (!l)
		return;
	free(l->changed_ref);
	free(l->changed_revenue);
	free(l->changed_seq);
	free(l->removed);
	free(l->removed_revenue);
	free(l->removed_after);
	free(l->removed_sum);
	free(l->added);
	free(l->added_pos);
	free(l->added_from);
	free(l->added_sum);
	free(l);
}

/* ---- answers --------------------------------------------------------------- */

/* Removed positions before base position p. */
static uint64_t removed_before(const struct ranking_layer *l, uint64_t p)
{
	uint64_t lo = 0, hi = l->removed_count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->removed[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Added entries that come before base entry p (base position <= p). */
static uint64_t added_upto(const struct ranking_layer *l, uint64_t p)
{
	uint64_t lo = 0, hi = l->added_count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->added_pos[mid] <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t added_index(const struct ranking_layer *l, uint64_t j)
{
	return j + l->added_pos[j] - removed_before(l, l->added_pos[j]);
}

/* Added entries with a merged index below i. */
static uint64_t added_below(const struct ranking_layer *l, uint64_t i)
{
	uint64_t lo = 0, hi = l->added_count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (added_index(l, mid) < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Removed entries with fewer than (strict) or at most t surviving base
 * entries before them: removed[q] - q counts those, and never decreases. */
static uint64_t removed_with_survivors_before(const struct ranking_layer *l, uint64_t t,
					      bool at_most)
{
	uint64_t lo = 0, hi = l->removed_count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		uint64_t before = l->removed[mid] - mid;
		if (before < t || (at_most && before == t))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Entries of a sorted array with revenue > v (the base's or the added). */
static uint64_t count_above(const struct rank_entry *a, uint64_t n, int64_t v)
{
	uint64_t lo = 0, hi = n;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (a[mid].revenue_minor > v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void layer_element(const struct pr_ranking *r, uint64_t i, struct ranking_element *out)
{
	const struct ranking_layer *l = r->layer;
	const struct pr_ranking *base = l->base;
	uint64_t c = added_below(l, i);
	uint64_t base_above, added_above;
	if (c < l->added_count && added_index(l, c) == i) {
		const struct rank_entry *x = &l->added[c];
		out->revenue_minor = x->revenue_minor;
		out->customer = x->customer;
		base_above = count_above(base->entries, base->n, x->revenue_minor);
		added_above = c - x->tie;
	} else {
		/* The (i - c)-th surviving base entry. */
		uint64_t t = i - c;
		uint64_t p = t + removed_with_survivors_before(l, t, true);
		const struct rank_entry *x = &base->entries[p];
		out->revenue_minor = x->revenue_minor;
		out->customer = x->customer;
		base_above = p - x->tie;
		added_above = count_above(l->added, l->added_count, x->revenue_minor);
	}
	/* Removed entries with more revenue are the base's first base_above. */
	out->competition_rank = 1 + base_above - removed_before(l, base_above) + added_above;
}

int64_t layer_top_revenue(const struct pr_ranking *r, uint64_t m)
{
	const struct ranking_layer *l = r->layer;
	uint64_t c = added_below(l, m);
	uint64_t t = m - c;
	/* The first t survivors end where t + (removed before them) does. */
	uint64_t q = removed_with_survivors_before(l, t, false);
	return l->base->prefix[t + q] - l->removed_sum[q] + l->added_sum[c];
}

int layer_find(const struct pr_ranking *r, uint32_t customer, int64_t *revenue, uint64_t *index)
{
	const struct ranking_layer *l = r->layer;
	const struct pr_ranking *base = l->base;
	uint64_t lo = 0, hi = l->changed_count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (l->changed_ref[mid] < customer)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->changed_count && l->changed_ref[lo] == customer) {
		*revenue = l->changed_revenue[lo];
		if (*revenue <= 0)
			return -ENOENT;
		struct rank_entry x = { *revenue, customer, 0 };
		struct id_source src = { r->engine, NULL };
		uint64_t a = 0, b = l->added_count;
		while (a < b) {
			uint64_t mid = a + (b - a) / 2;
			if (entry_before(src, &l->added[mid], &x))
				a = mid + 1;
			else
				b = mid;
		}
		*index = added_index(l, a);
		return 0;
	}
	/* Unchanged since the base: his base revenue and place. A customer
	 * first seen after the base is changed, or was seen after this layer. */
	uint32_t shard = customer & (PR_SHARDS - 1), local = customer >> PR_SHARD_BITS;
	if (local >= base->shard_start[shard + 1] - base->shard_start[shard]) {
		*revenue = 0;
		return -ENOENT;
	}
	uint64_t at = base->shard_start[shard] + local;
	*revenue = base->revenue_of[at];
	if (base->place_of[at] == 0)
		return -ENOENT;
	uint64_t p = base->place_of[at] - 1;
	*index = p - removed_before(l, p) + added_upto(l, p);
	return 0;
}

/* ---- building -------------------------------------------------------------- */

/* A customer ref (or base position) with a revenue, sorted by the key. */
struct keyed {
	uint32_t key;
	int64_t revenue;
};

/* LSD radix sort on the 32-bit key, 4 passes of 8 bits. 0 or -ENOMEM. */
static int sort_keyed(struct keyed *a, uint64_t n)
{
	if (n < 2)
		return 0;
	struct keyed *tmp = malloc(n * sizeof *tmp);
	if (!tmp)
		return -ENOMEM;
	struct keyed *src = a, *dst = tmp;
	for (int shift = 0; shift < 32; shift += 8) {
		uint64_t count[256] = { 0 };
		for (uint64_t i = 0; i < n; i++)
			count[src[i].key >> shift & 0xff]++;
		uint64_t at = 0;
		for (int b = 0; b < 256; b++) {
			uint64_t c = count[b];
			count[b] = at;
			at += c;
		}
		for (uint64_t i = 0; i < n; i++)
			dst[count[src[i].key >> shift & 0xff]++] = src[i];
		struct keyed *t = src;
		src = dst;
		dst = t;
	}
	/* Four passes: the result is back in a. */
	free(tmp);
	return 0;
}

/* The refs of a batch, to ask in O(1) whether a customer is in it. */
struct ref_set {
	uint32_t *slots; /* ref + 1; 0 empty */
	uint64_t mask;
};

static int ref_set_init(struct ref_set *s, const struct keyed *refs, uint64_t n)
{
	uint64_t size = 16;
	while (size < 2 * n)
		size *= 2;
	s->slots = calloc(size, sizeof *s->slots);
	if (!s->slots)
		return -ENOMEM;
	s->mask = size - 1;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t at = (refs[i].key * 0x9e3779b97f4a7c15ull) >> 20 & s->mask;
		while (s->slots[at])
			at = (at + 1) & s->mask;
		s->slots[at] = refs[i].key + 1;
	}
	return 0;
}

static bool ref_set_has(const struct ref_set *s, uint32_t ref)
{
	for (uint64_t at = (ref * 0x9e3779b97f4a7c15ull) >> 20 & s->mask; s->slots[at];
	     at = (at + 1) & s->mask)
		if (s->slots[at] == ref + 1)
			return true;
	return false;
}

struct build {
	const struct pr_ranking *base;
	const struct ranking_layer *prev; /* the layer so far (may be empty) */
	struct ranking_layer *l;          /* the new one */
	struct id_source src;
	uint64_t seq;              /* the batch's */
	struct keyed *batch;       /* the changes, by ref */
	uint64_t batch_count;
	struct keyed *gone;        /* base entries of customers new to the layer */
	uint64_t gone_count;
	struct rank_entry *fresh;  /* changed entries with revenue > 0, sorted */
	uint64_t fresh_count;
};

/* The changed list: prev's merged with the batch (both by ref); customers
 * new to the layer whose base entry must go are collected in gone. */
static int merge_changed(struct build *b)
{
	const struct ranking_layer *p = b->prev;
	struct ranking_layer *l = b->l;
	uint64_t most = p->changed_count + b->batch_count;
	l->changed_ref = malloc((most ? most : 1) * sizeof *l->changed_ref);
	l->changed_revenue = malloc((most ? most : 1) * sizeof *l->changed_revenue);
	l->changed_seq = malloc((most ? most : 1) * sizeof *l->changed_seq);
	b->gone = malloc((b->batch_count ? b->batch_count : 1) * sizeof *b->gone);
	if (!l->changed_ref || !l->changed_revenue || !l->changed_seq || !b->gone)
		return -ENOMEM;
	const struct pr_ranking *base = b->base;
	uint64_t i = 0, j = 0, n = 0;
	while (i < p->changed_count || j < b->batch_count) {
		if (j == b->batch_count ||
		    (i < p->changed_count && p->changed_ref[i] < b->batch[j].key)) {
			l->changed_ref[n] = p->changed_ref[i];
			l->changed_seq[n] = p->changed_seq[i];
			l->changed_revenue[n++] = p->changed_revenue[i++];
			continue;
		}
		uint32_t ref = b->batch[j].key;
		if (i < p->changed_count && p->changed_ref[i] == ref) {
			i++; /* changed again: its added entry is replaced below */
		} else {
			/* New to the layer: its base entry, if any, goes. */
			uint32_t shard = ref & (PR_SHARDS - 1), local = ref >> PR_SHARD_BITS;
			if (local < base->shard_start[shard + 1] - base->shard_start[shard]) {
				uint32_t place = base->place_of[base->shard_start[shard] + local];
				if (place)
					b->gone[b->gone_count++] = (struct keyed){
						place - 1, base->entries[place - 1].revenue_minor
					};
			}
		}
		l->changed_ref[n] = ref;
		l->changed_seq[n] = b->seq;
		l->changed_revenue[n++] = b->batch[j++].revenue;
	}
	l->changed_count = n;
	return 0;
}

/* The removed positions: prev's merged with the new ones (both ascending). */
static int merge_removed(struct build *b)
{
	const struct ranking_layer *p = b->prev;
	struct ranking_layer *l = b->l;
	const struct pr_ranking *base = b->base;
	if (sort_keyed(b->gone, b->gone_count) < 0)
		return -ENOMEM;
	uint64_t most = p->removed_count + b->gone_count;
	l->removed = malloc((most ? most : 1) * sizeof *l->removed);
	l->removed_revenue = malloc((most ? most : 1) * sizeof *l->removed_revenue);
	l->removed_after = malloc((most ? most : 1) * sizeof *l->removed_after);
	l->removed_sum = malloc((most + 1) * sizeof *l->removed_sum);
	if (!l->removed || !l->removed_revenue || !l->removed_after || !l->removed_sum)
		return -ENOMEM;
	uint64_t i = 0, j = 0, n = 0;
	l->removed_sum[0] = 0;
	while (i < p->removed_count || j < b->gone_count) {
		if (j == b->gone_count || (i < p->removed_count && p->removed[i] < b->gone[j].key)) {
			l->removed[n] = p->removed[i];
			l->removed_revenue[n] = p->removed_revenue[i];
			l->removed_after[n] = p->removed_after[i++];
		} else {
			uint64_t pos = b->gone[j].key;
			l->removed[n] = pos;
			l->removed_revenue[n] = b->gone[j++].revenue;
			l->removed_after[n] = base->total - base->prefix[pos + 1];
		}
		l->removed_sum[n + 1] = l->removed_sum[n] + l->removed_revenue[n];
		n++;
	}
	l->removed_count = n;
	return 0;
}

/* The added entries: prev's (less those changed again) merged with the
 * batch's entries with revenue > 0, each placed in the base by galloping. */
static int merge_added(struct build *b)
{
	const struct ranking_layer *p = b->prev;
	struct ranking_layer *l = b->l;
	const struct pr_ranking *base = b->base;
	b->fresh = malloc((b->batch_count ? b->batch_count : 1) * sizeof *b->fresh);
	uint64_t *fresh_pos = malloc((b->batch_count ? b->batch_count : 1) * sizeof *fresh_pos);
	struct ref_set in_batch = { 0 };
	uint64_t most = p->added_count + b->batch_count;
	l->added = malloc((most ? most : 1) * sizeof *l->added);
	l->added_pos = malloc((most ? most : 1) * sizeof *l->added_pos);
	l->added_from = malloc((most ? most : 1) * sizeof *l->added_from);
	l->added_sum = malloc((most + 1) * sizeof *l->added_sum);
	if (!b->fresh || !fresh_pos || !l->added || !l->added_pos || !l->added_from ||
	    !l->added_sum || ref_set_init(&in_batch, b->batch, b->batch_count) < 0) {
		free(fresh_pos);
		return -ENOMEM;
	}
	for (uint64_t j = 0; j < b->batch_count; j++)
		if (b->batch[j].revenue > 0)
			b->fresh[b->fresh_count++] =
				(struct rank_entry){ b->batch[j].revenue, b->batch[j].key, 0 };
	if (ranking_sort_entries(b->src, b->fresh, b->fresh_count) < 0) {
		free(fresh_pos);
		free(in_batch.slots);
		return -ENOMEM;
	}
	for (uint64_t j = 0, at = 0; j < b->fresh_count; j++)
		at = fresh_pos[j] = ranking_position_from(base, b->src, at, &b->fresh[j]);
	uint64_t i = 0, j = 0, n = 0;
	while (i < p->added_count || j < b->fresh_count) {
		if (i < p->added_count && ref_set_has(&in_batch, p->added[i].customer)) {
			i++; /* replaced by the batch's entry */
			continue;
		}
		if (j == b->fresh_count ||
		    (i < p->added_count && entry_before(b->src, &p->added[i], &b->fresh[j]))) {
			l->added[n] = p->added[i];
			l->added_pos[n] = p->added_pos[i];
			l->added_from[n] = p->added_from[i++];
		} else {
			l->added[n] = b->fresh[j];
			l->added_pos[n] = fresh_pos[j];
			l->added_from[n] = base->total - base->prefix[fresh_pos[j++]];
		}
		n++;
	}
	free(fresh_pos);
	free(in_batch.slots);
	l->added_count = n;
	l->added_sum[0] = 0;
	for (uint64_t k = 0; k < n; k++) {
		struct rank_entry *x = &l->added[k];
		x->tie = k && x[-1].revenue_minor == x->revenue_minor ? x[-1].tie + 1 : 0;
		l->added_sum[k + 1] = l->added_sum[k] + x->revenue_minor;
	}
	return 0;
}

/*
 * N, the total and the sums behind HHI and Gini, from the base's:
 *   squares  = base's - removed x^2 + added x^2
 *   weighted = sum over survivors p of x_p (p + 1 - rb(p) + ab(p))
 *            + sum over added j of a_j (j + 1 + pos_j - rb(pos_j)), where
 *     sum_survivors x_p (p + 1) = base's weighted - sum_removed x_q (q + 1)
 *     sum_survivors x_p rb(p)   = sum over removed q of the survivors after q
 *     sum_survivors x_p ab(p)   = sum over added j of the survivors at or
 *                                 after pos_j
 * and "survivors after" is the base revenue after a place less the removed
 * revenue after it: O(K) with the per-entry base sums kept.
 */
static void layer_sums(struct pr_ranking *r)
{
	const struct ranking_layer *l = r->layer;
	const struct pr_ranking *base = l->base;
	int64_t removed_total = l->removed_sum[l->removed_count];
	r->n = base->n - l->removed_count + l->added_count;
	r->total = base->total - removed_total + l->added_sum[l->added_count];
	__int128 squares = (__int128)base->squares, weighted = (__int128)base->weighted;
	for (uint64_t q = 0; q < l->removed_count; q++) {
		__int128 x = l->removed_revenue[q];
		squares -= x * x;
		weighted -= x * (__int128)(l->removed[q] + 1);
		weighted -= l->removed_after[q] - (removed_total - l->removed_sum[q + 1]);
	}
	for (uint64_t j = 0, q = 0; j < l->added_count; j++) {
		while (q < l->removed_count && l->removed[q] < l->added_pos[j])
			q++; /* q = rb(pos_j): both ascending */
		__int128 a = l->added[j].revenue_minor;
		squares += a * a;
		weighted += l->added_from[j] - (removed_total - l->removed_sum[q]);
		weighted += a * (__int128)(j + 1 + l->added_pos[j] - q);
	}
	r->squares = (unsigned __int128)squares;
	r->weighted = (unsigned __int128)weighted;
}

int pr_ranking_layer(const struct pr_engine *e, const struct pr_id_directory *ids,
		     const struct pr_ranking *base, const struct pr_ranking *prev,
		     const struct pr_ranking_changes *ch, struct pr_ranking **out)
{
	static const int64_t zero;
	struct ranking_layer empty = { .removed_sum = (int64_t *)&zero,
				       .added_sum = (int64_t *)&zero };
	if (!base->place_of || base->layer || ch->whole || (prev && prev->layer->base != base))
		return -EINVAL;
	struct build b = { .base = base, .prev = prev ? prev->layer : &empty,
			   .src = { e, ids }, .seq = ch->seq };
	struct pr_ranking *r = calloc(1, sizeof *r);
	b.l = calloc(1, sizeof *b.l);
	b.batch = malloc((ch->count ? ch->count : 1) * sizeof *b.batch);
	int rc = -ENOMEM;
	if (!r || !b.l || !b.batch)
		goto fail;
	b.l->base = base;
	for (uint64_t i = 0; i < ch->count; i++)
		b.batch[i] = (struct keyed){ ch->refs[i], ch->revenue[i * ch->stride] };
	b.batch_count = ch->count;
	if (sort_keyed(b.batch, b.batch_count) < 0 || merge_changed(&b) < 0 ||
	    merge_removed(&b) < 0 || merge_added(&b) < 0)
		goto fail;
	*r = (struct pr_ranking){ .engine = e, .window = ch->window, .store = -1,
				  .epoch = ch->epoch, .periods = ch->periods, .layer = b.l };
	b.l = NULL;
	layer_sums(r);
	*out = r;
	rc = 0;
fail:
	free(b.batch);
	free(b.gone);
	free(b.fresh);
	layer_free(b.l);
	if (rc < 0)
		free(r);
	return rc;
}

uint64_t pr_ranking_layer_size(const struct pr_ranking *r)
{
	return r->layer ? r->layer->changed_count : 0;
}

void pr_ranking_layer_changes(const struct pr_ranking *r, struct pr_ranking_changes *ch)
{
	const struct ranking_layer *l = r->layer;
	ch->count = l->changed_count;
	ch->refs = l->changed_ref;
	ch->revenue = l->changed_revenue;
	ch->stride = 1;
}

int pr_ranking_layer_since(const struct pr_ranking *r, uint64_t seq, struct pr_ranking_changes *ch)
{
	const struct ranking_layer *l = r->layer;
	uint64_t n = 0;
	for (uint64_t i = 0; i < l->changed_count; i++)
		n += l->changed_seq[i] > seq;
	uint32_t *refs = malloc((n ? n : 1) * sizeof *refs);
	int64_t *revenue = malloc((n ? n : 1) * sizeof *revenue);
	if (!refs || !revenue) {
		free(refs);
		free(revenue);
		return -ENOMEM;
	}
	n = 0;
	for (uint64_t i = 0; i < l->changed_count; i++)
		if (l->changed_seq[i] > seq) {
			refs[n] = l->changed_ref[i];
			revenue[n++] = l->changed_revenue[i];
		}
	ch->count = n;
	ch->refs = refs;
	ch->revenue = revenue;
	ch->stride = 1;
	return 0;
}

int pr_ranking_layer_union(const struct pr_ranking *r, const struct pr_ranking_changes *ch,
			   struct pr_ranking_changes *out)
{
	const struct ranking_layer *l = r->layer;
	uint64_t most = l->changed_count + ch->count;
	struct keyed *batch = malloc((ch->count ? ch->count : 1) * sizeof *batch);
	uint32_t *refs = malloc((most ? most : 1) * sizeof *refs);
	int64_t *revenue = malloc((most ? most : 1) * sizeof *revenue);
	if (!batch || !refs || !revenue)
		goto nomem;
	for (uint64_t i = 0; i < ch->count; i++)
		batch[i] = (struct keyed){ ch->refs[i], ch->revenue[i * ch->stride] };
	if (sort_keyed(batch, ch->count) < 0)
		goto nomem;
	uint64_t i = 0, j = 0, n = 0;
	while (i < l->changed_count || j < ch->count) {
		if (j == ch->count || (i < l->changed_count && l->changed_ref[i] < batch[j].key)) {
			refs[n] = l->changed_ref[i];
			revenue[n++] = l->changed_revenue[i++];
			continue;
		}
		if (i < l->changed_count && l->changed_ref[i] == batch[j].key)
			i++; /* the batch's revenue is the later */
		refs[n] = batch[j].key;
		revenue[n++] = batch[j++].revenue;
	}
	free(batch);
	*out = *ch;
	out->count = n;
	out->refs = refs;
	out->revenue = revenue;
	out->stride = 1;
	return 0;
nomem:
	free(batch);
	free(refs);
	free(revenue);
	return -ENOMEM;
}
