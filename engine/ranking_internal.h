/*
 * ranking_internal.h - a ranking's representation, shared by ranking.c
 * (flat rankings: every entry in one sorted array) and ranking_layer.c
 * (layered rankings: a flat base with some customers' changes on top), and
 * the entry points paretod's ranker builds them with.
 */
#ifndef PARETO_RANKING_INTERNAL_H
#define PARETO_RANKING_INTERNAL_H

#include "engine_internal.h"
#include "id_directory.h"
#include "pareto/ranking.h"

struct rank_entry {
	int64_t revenue_minor; /* > 0 */
	uint32_t customer;
	/* Position within its run of equal revenues (0 for the first): the
	 * competition rank is rank - tie. Fits: N < 2^32 (customer refs are
	 * 32-bit). */
	uint32_t tie;
};

struct ranking_layer;

struct pr_ranking {
	const struct pr_engine *engine; /* borrowed */
	enum pr_window window;
	int64_t store;                  /* < 0: the company */
	uint64_t epoch;                 /* the engine's change epoch at the build */
	struct pr_periods periods;      /* the watermark's periods at the build */
	uint64_t n;
	int64_t total;                  /* revenue of all n */
	/* Sums over the entries in rank order p = 1..n of x^2 and of p x (HHI
	 * and Gini, exactly: below 2^126 and 2^96). */
	unsigned __int128 squares, weighted;
	/* A flat ranking: */
	struct rank_entry *entries;     /* owned; n, best first */
	int64_t *prefix;                /* owned; n + 1: prefix[m] = top-m revenue */
	/* The customer index (pr_ranking_index), by shard_start[shard] + local
	 * index for the customers the engine knew when it was built: each one's
	 * revenue then, from which his place is found by binary search. (Not
	 * his rank: ranks below a change all move, so keeping them would cost
	 * a refresh N scattered writes.) */
	uint64_t *shard_start;          /* owned; PR_SHARDS + 1 offsets, or NULL */
	int64_t *revenue_of;            /* owned; revenue in the window and scope */
	/* A base of layers also keeps each customer's place (ranking_place):
	 * 1-based rank by the same index, 0 if unranked. */
	uint32_t *place_of;             /* owned, or NULL */
	/* A store ranking's lookups without the engine (pr_ranking_index):
	 * its entries' indexes by customer ref, ascending, and apart from
	 * them the customers whose revenue in the store is negative, by ref
	 * (kept by every build): one in neither has none there. */
	uint32_t *by_customer;          /* owned; n, or NULL */
	struct rank_entry *negative;    /* owned; negative_count, tie 0 */
	uint64_t negative_count;
	/* A layered ranking (entries, prefix and the index NULL): */
	struct ranking_layer *layer;    /* owned, or NULL */
};

/* Where a build finds customer ids: the engine's tables on the writer's
 * thread, or a directory of their chunks on another (paretod's ranker,
 * which must not walk the writer's growing tables). */
struct id_source {
	const struct pr_engine *engine;
	const struct pr_id_directory *ids; /* NULL: the engine's tables */
};

static inline const struct pr_id_entry *id_of(struct id_source src, uint32_t ref)
{
	return src.ids ? pr_id_directory_at(src.ids, ref) : engine_customer_id(src.engine, ref);
}

/* Whether customer a's id comes before b's: by their order keys where the
 * source has them and they differ (id_directory.h), else by the ids. */
static inline bool id_before(struct id_source src, uint32_t a, uint32_t b)
{
	if (src.ids && src.ids->keys_on) {
		uint64_t ka = pr_id_directory_key_of(src.ids, a), kb = pr_id_directory_key_of(src.ids, b);
		if (ka != kb)
			return ka < kb;
	}
	const struct pr_id_entry *x = id_of(src, a), *y = id_of(src, b);
	return pr_id_compare(pr_id_entry_bytes(x), x->len, pr_id_entry_bytes(y), y->len) < 0;
}

/* Whether entry a comes before b: revenue descending, then id. */
static inline bool entry_before(struct id_source src, const struct rank_entry *a,
				const struct rank_entry *b)
{
	if (a->revenue_minor != b->revenue_minor)
		return a->revenue_minor > b->revenue_minor;
	return id_before(src, a->customer, b->customer);
}

/* ranking.c */
struct pr_ranking *ranking_alloc(const struct pr_engine *e, enum pr_window window, int64_t store,
				 uint64_t capacity);
/* Sorts entries by revenue descending, then id. 0 or -ENOMEM. */
int ranking_sort_entries(struct id_source ids, struct rank_entry *a, uint64_t n);
/* The first index of a flat ranking at or after lo that x does not come
 * after (where x is, or would go): binary search, or galloping from lo. */
uint64_t ranking_position_of(const struct pr_ranking *r, struct id_source src, uint64_t lo,
			     const struct rank_entry *x);
uint64_t ranking_position_from(const struct pr_ranking *r, struct id_source src, uint64_t lo,
			       const struct rank_entry *x);

/* An entry of a ranking, flat or layered, by 0-based index. */
struct ranking_element {
	int64_t revenue_minor;
	uint32_t customer;
	uint64_t competition_rank;
};

/* ranking_layer.c: the same operations on a layered ranking. */
void layer_element(const struct pr_ranking *r, uint64_t index, struct ranking_element *out);
int64_t layer_top_revenue(const struct pr_ranking *r, uint64_t m);
/* A customer's revenue in the layered ranking and, if ranked (0), his
 * 0-based index; -ENOENT if not ranked (or not seen by then). Writer's
 * thread (ids from the engine). */
int layer_find(const struct pr_ranking *r, uint32_t customer, int64_t *revenue, uint64_t *index);
void layer_free(struct ranking_layer *l);

/* ---- store rankings built beside ingest (store_build.h) ------------------- */

/* One (store, customer) revenue of a window, as an apply thread lists it. */
struct store_pair {
	int64_t revenue_minor; /* not 0 */
	uint32_t customer;
	uint32_t store;
};

/*
 * Every store's ranking of `window` (stores 0..stores-1) from the lists of
 * pairs parts[0..part_count) (each pair once, with revenue not 0), as of the
 * watermark's `periods` and change epoch `epoch` they were listed at:
 * equal to pr_ranking_build_stores then. Reads the engine's customer ids
 * only (shared tables: from any thread, while nothing frees what they
 * outgrew) and its options. 0 or -ENOMEM.
 */
int ranking_build_stores_from_pairs(const struct pr_engine *e, enum pr_window window,
				    const struct pr_periods *periods, uint64_t epoch,
				    uint32_t stores, const struct store_pair *const *parts,
				    const size_t *part_counts, unsigned part_count,
				    struct pr_ranking ***out);

/* ---- for paretod's ranker ------------------------------------------------ */

/*
 * Rankings from changes handed over: the changed customers of a window,
 * each once, with their revenue in it.
 */
struct pr_ranking_changes {
	enum pr_window window;
	struct pr_periods periods;   /* the watermark's, that the revenues are of */
	uint64_t epoch;              /* the change journal's epoch they come from */
	bool whole;                  /* refs name every customer: a build from scratch */
	bool index;                  /* index the result (as pr_ranking_index) */
	uint64_t count;
	const uint32_t *refs;        /* borrowed; count customer refs */
	const int64_t *revenue;      /* borrowed; refs[i]'s is revenue[i * stride] */
	size_t stride;
	const uint32_t *customers;   /* borrowed; PR_SHARDS: customers per shard now */
	uint64_t seq;                /* the batch they come in: a layer keeps each
					customer's, for pr_ranking_layer_since */
};

/*
 * The flat ranking `old` becomes with these changes (or, whole, the ranking
 * they describe), equal in every entry to a build at the time they were
 * taken: O(N + k log(N/k)) for k changes. Reads ids through `ids` (NULL:
 * the engine's tables, on the writer's thread only) and nothing else of
 * the engine, which the result only borrows for later answers. Indexing a
 * refresh needs an indexed `old`. 0, -EINVAL (no old and not whole) or
 * -ENOMEM.
 */
int pr_ranking_from_changes(const struct pr_engine *e, const struct pr_id_directory *ids,
			    const struct pr_ranking *old, const struct pr_ranking_changes *ch,
			    struct pr_ranking **out);

/* Makes an indexed flat ranking a base for layers: keeps each customer's
 * place (O(N)). 0 or -ENOMEM. */
int pr_ranking_place(struct pr_ranking *base);

/*
 * A layered ranking: `base` (a flat ranking with places, which must outlive
 * the result) with every change since it on top: those of `prev` (a layer
 * on the same base, or NULL) and then `ch` (not whole). Costs O(K + k log N)
 * for k changes and K customers changed since the base, and answers rank,
 * select and top-m revenue in O(log^2 K) plus a base lookup, equal to a
 * flat ranking of the same records. 0 or -ENOMEM.
 */
int pr_ranking_layer(const struct pr_engine *e, const struct pr_id_directory *ids,
		     const struct pr_ranking *base, const struct pr_ranking *prev,
		     const struct pr_ranking_changes *ch, struct pr_ranking **out);

/* Customers changed since the base of a layered ranking (0 if flat), and
 * them as changes (every one with his revenue now, borrowed from r), for a
 * rebase by pr_ranking_from_changes on the base. */
uint64_t pr_ranking_layer_size(const struct pr_ranking *r);
void pr_ranking_layer_changes(const struct pr_ranking *r, struct pr_ranking_changes *ch);
/* The same for those last changed in a batch after `seq`, in arrays the
 * caller frees (refs and revenue). 0 or -ENOMEM. */
int pr_ranking_layer_since(const struct pr_ranking *r, uint64_t seq, struct pr_ranking_changes *ch);
/* The layer's changes and then ch's, as one set of changes since the base
 * (the later revenue of a customer in both), in arrays the caller frees:
 * for one flat merge when a batch is too large to layer. 0 or -ENOMEM. */
int pr_ranking_layer_union(const struct pr_ranking *r, const struct pr_ranking_changes *ch,
			   struct pr_ranking_changes *out);

#endif
