/*
 * day_set.h - the set of (customer, day) pairs seen, so that "purchases on
 * distinct days" stays exact when records arrive out of time order.
 *
 * Owns an open-addressing set of 64-bit keys (customer index << 32 | day),
 * linear probing, load <= 1/2, doubled when full. Memory: 16 bytes per
 * pair at worst, so purchase_days.h builds one only for a shard that sees a
 * record too old for its customer's map of recent days. Single writer.
 */
#ifndef PARETO_DAY_SET_H
#define PARETO_DAY_SET_H

#include <stdint.h>

struct pr_day_set {
	uint64_t *keys; /* owned; UINT64_MAX marks an empty slot */
	uint64_t mask;
	uint64_t count;
};

int pr_day_set_init(struct pr_day_set *s, uint64_t capacity_hint);
void pr_day_set_destroy(struct pr_day_set *s);

/* Returns 1 if (customer, day) was new and is now in, 0 if it was there,
 * -ENOMEM if it could not grow (the set is then unchanged). */
int pr_day_set_insert(struct pr_day_set *s, uint32_t customer, int32_t day);

#endif
