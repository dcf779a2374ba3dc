/* producers.c - producers that name themselves; see producers.h. */
#include <stdlib.h>
#include <string.h>

#include "producers.h"

static bool name_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

enum pr_producer_line pr_producer_line_parse(const char *p, size_t n,
					     char name[PR_PRODUCER_NAME_MAX + 1],
					     uint64_t *first, size_t *consumed)
{
	size_t prefix = sizeof PR_PRODUCER_PREFIX - 1;
	if (memcmp(p, PR_PRODUCER_PREFIX, n < prefix ? n : prefix) != 0)
		return PR_PRODUCER_LINE_NONE;
	const char *end = memchr(p, '\n', n < PR_PRODUCER_LINE_MAX ? n : PR_PRODUCER_LINE_MAX);
	if (!end)
		return n < PR_PRODUCER_LINE_MAX ? PR_PRODUCER_LINE_MORE : PR_PRODUCER_LINE_BAD;
	*consumed = (size_t)(end - p) + 1;
	if (end > p && end[-1] == '\r')
		end--;
	const char *at = p + prefix, *name_end = at;
	while (name_end < end && name_byte(*name_end))
		name_end++;
	size_t len = (size_t)(name_end - at);
	if (len == 0 || len > PR_PRODUCER_NAME_MAX || name_end == end || *name_end != ' ')
		return PR_PRODUCER_LINE_BAD;
	memcpy(name, at, len);
	name[len] = 0;
	uint64_t v = 0;
	const char *digit = name_end + 1;
	if (digit == end)
		return PR_PRODUCER_LINE_BAD;
	for (; digit < end; digit++) {
		if (*digit < '0' || *digit > '9' || v > (UINT64_MAX - 9) / 10)
			return PR_PRODUCER_LINE_BAD; /* past 2^64 / 10: no feed gets there */
		v = v * 10 + (uint64_t)(*digit - '0');
	}
	if (v == 0)
		return PR_PRODUCER_LINE_BAD;
	*first = v;
	return PR_PRODUCER_LINE_OK;
}

struct pr_producer *pr_producers_find(struct pr_producers *t, const char *name)
{
	/* Linear: a chain has a producer per store or till system, tens to
	 * thousands, looked up once per connection. */
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->items[i].name, name) == 0)
			return &t->items[i];
	return NULL;
}

struct pr_producer *pr_producers_add(struct pr_producers *t, const char *name, uint64_t first)
{
	struct pr_producer *p = pr_producers_find(t, name);
	if (p)
		return p;
	if (strlen(name) > PR_PRODUCER_NAME_MAX)
		return NULL;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct pr_producer *items = realloc(t->items, cap * sizeof *items);
		if (!items)
			return NULL;
		t->items = items;
		t->cap = cap;
	}
	p = &t->items[t->count++];
	memset(p, 0, sizeof *p);
	strcpy(p->name, name);
	p->next = first;
	return p;
}

void pr_producers_totals(const struct pr_producers *t, uint64_t *duplicates, uint64_t *missing)
{
	*duplicates = *missing = 0;
	for (size_t i = 0; i < t->count; i++) {
		*duplicates += t->items[i].duplicates;
		*missing += t->items[i].missing;
	}
}

void pr_producers_free(struct pr_producers *t)
{
	free(t->items);
	*t = (struct pr_producers){ 0 };
}
