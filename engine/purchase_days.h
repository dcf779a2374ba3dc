/*
 * purchase_days.h - counting each customer's distinct purchase days
 * exactly, at the cost of a counter for feeds that arrive in time order.
 *
 * The lapsed-regulars answer needs, per customer, how many distinct days
 * it bought on. A set of every (customer, day) would give that in any
 * order, but it is the largest structure the engine would hold (about 28
 * bytes per customer-day at its load) and a cache miss per new day. Feeds
 * arrive nearly in time order, so most of that work is wasted:
 *
 *  - Per customer, struct pr_recent_days keeps the latest day seen and a
 *    64-bit map of which of the 64 days up to it were seen. A record on a
 *    later day is new; one within the map is looked up in the map. This is
 *    exact: a day enters the map when seen, and leaves it only when the
 *    latest day moves 64 past it, after which no day in the map's range can
 *    be that old again.
 *  - Per shard, struct pr_day_history appends every new (customer, day) to
 *    a log: sequential writes of two varints, the customer and the day's
 *    difference from the entry before (mostly 0 in a feed in time order),
 *    about 4 bytes instead of 8 (the raw log was 361 MB of the full state
 *    at 10M customers, 45M customer-days). Only a record older than its
 *    customer's map (more than 63 days before that customer's latest day)
 *    needs the whole history: the first one turns the shard's log into a
 *    pr_day_set, which from then on records every new day instead.
 *
 * Single writer per shard; readers of the counts run between writes.
 */
#ifndef PARETO_PURCHASE_DAYS_H
#define PARETO_PURCHASE_DAYS_H

#include <stdbool.h>
#include <stdint.h>

#include "day_set.h"

struct pr_recent_days {
	uint64_t seen;   /* bit i: day latest - i was seen */
	int32_t latest;  /* the latest day seen */
	uint32_t count;  /* distinct days seen, the answer */
};

struct pr_day_history {
	/* Owned; the log, in blocks that begin with their byte length (4
	 * bytes, written when the next block starts): per entry LEB128
	 * varints of the customer and of the day minus the day of the entry
	 * before (zigzagged; 0 before the first). */
	unsigned char **blocks;
	uint32_t block_count, block_capacity;
	uint32_t used;     /* bytes of the last block used, its length too */
	int32_t last_day;  /* the day of the log's last entry */
	uint64_t entries;  /* in the log */
	bool as_set;       /* the log became `set` */
	struct pr_day_set set;
};

void pr_day_history_init(struct pr_day_history *h);
void pr_day_history_destroy(struct pr_day_history *h);

/* The first day of a new customer: its map holds just that day. -ENOMEM
 * (with nothing changed) if the history could not grow. */
int pr_recent_days_start(struct pr_day_history *h, uint32_t customer,
			 struct pr_recent_days *r, int32_t day);

/* Notes a purchase on `day` by customer (its index in the shard). 0 or
 * -ENOMEM, with nothing changed. */
int pr_recent_days_note(struct pr_day_history *h, uint32_t customer,
			struct pr_recent_days *r, int32_t day);

/*
 * For checkpoints (checkpoint.h): the history's (customer << 32 | day)
 * keys, each once, in runs handed to each(); how many there are; and a
 * history rebuilt from them (into an empty, initialised one), as the log or
 * as the set. restore returns 0 or -ENOMEM (h is then emptied).
 */
uint64_t pr_day_history_count(const struct pr_day_history *h);
void pr_day_history_each(const struct pr_day_history *h,
			 void (*each)(void *ctx, const uint64_t *keys, size_t count), void *ctx);
int pr_day_history_restore(struct pr_day_history *h, bool as_set, const uint64_t *keys,
			   uint64_t count);

#endif
