/*
 * producers.h - producers that name themselves, so that what they send
 * through a producer socket is counted once however often they reconnect
 * and however often paretod restarts (DESIGN.md: a checkpoint records each
 * input's stream sequence beside the state).
 *
 * A producer connection may open with one line before its data:
 *
 *     #pareto-producer NAME FIRST
 *
 * NAME: 1 to PR_PRODUCER_NAME_MAX bytes of A-Z a-z 0-9 . _ - ; FIRST: the
 * sequence number (1 or more) of the first record that follows. Records are
 * numbered one by one: every data line of CSV (the header is not one), good
 * or bad, and every binary record. paretod keeps, per name, the number of
 * the next record it expects (`next`); on a connection, records numbered
 * below it were counted before and are skipped (duplicates, counted as
 * such and nowhere else), and a FIRST above it leaves a gap (records never
 * received: logged and counted). A record cut short by a disconnection is
 * not counted, so `next` still names it. Checkpoints keep every name's
 * `next`; INFO producers tells it and the one of the last checkpoint
 * (`saved`), below which a producer may forget what it sent. So a producer
 * that resends from any number at or below `saved` after a restart, or at
 * or below `next` after a reconnection, has every record counted exactly
 * once. One connection per name at a time: a second is refused.
 *
 * Owned by the server (s->producers); the server thread only.
 */
#ifndef PARETO_PRODUCERS_H
#define PARETO_PRODUCERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PR_PRODUCER_NAME_MAX 64
/* The longest opening line read: the prefix, a name, a 20-digit number. */
#define PR_PRODUCER_LINE_MAX 128
#define PR_PRODUCER_PREFIX "#pareto-producer "

struct pr_producer {
	char name[PR_PRODUCER_NAME_MAX + 1];
	uint64_t next;       /* the number of the next record expected */
	uint64_t saved;      /* next as of the last checkpoint written (0: none) */
	uint64_t duplicates; /* records skipped: counted before */
	uint64_t missing;    /* records a FIRST past next skipped over */
	bool connected;
};

struct pr_producers {
	struct pr_producer *items; /* owned; count of them, in order of arrival */
	size_t count, cap;
};

enum pr_producer_line {
	PR_PRODUCER_LINE_NONE, /* the bytes do not open with PR_PRODUCER_PREFIX */
	PR_PRODUCER_LINE_MORE, /* they may: the line is not complete yet */
	PR_PRODUCER_LINE_OK,   /* a valid opening line of *consumed bytes */
	PR_PRODUCER_LINE_BAD,  /* an opening line that does not parse (or too long) */
};

/* Reads the opening line from the first n bytes of a connection: on OK,
 * fills name (NUL-terminated) and *first, and *consumed with the line's
 * length, its line end included. */
enum pr_producer_line pr_producer_line_parse(const char *p, size_t n,
					     char name[PR_PRODUCER_NAME_MAX + 1],
					     uint64_t *first, size_t *consumed);

/* The producer of that name, or NULL. */
struct pr_producer *pr_producers_find(struct pr_producers *t, const char *name);

/* The producer of that name, added with next = first if new; NULL if
 * memory is short. The pointer holds until the next add. */
struct pr_producer *pr_producers_add(struct pr_producers *t, const char *name, uint64_t first);

/* Duplicates and missing records over every producer. */
void pr_producers_totals(const struct pr_producers *t, uint64_t *duplicates, uint64_t *missing);

void pr_producers_free(struct pr_producers *t);

#endif
