/*
 * commands.h - paretod's command table and handlers, Redis style: a name,
 * an arity, flags, a handler and a help line per command; the published
 * rankings the queries read; the alerts pushed to subscribers.
 *
 * Owns the rankings in struct pr_server (company[] and stores[] per window)
 * and the alert state. A query that needs a ranking builds it when the
 * engine has changed since the published one, but while feeds are being
 * ingested at most once per rank_interval_ms; every summary reply carries
 * the `records` and `watermark` of the ranking it was computed from.
 *
 * Replies use the field names of `pareto report --json`; summaries are
 * RESP3 maps (flat field/value arrays under RESP2), money is integer minor
 * units, shares are doubles (RESP3 doubles, bulk strings under RESP2).
 *
 * Cost: RANK, CUSTOMER, SCORE O(1) on a published company ranking (its
 * customer index), O(log N) on a store's; TOP n O(n); PARETO O(N) for the
 * summary of a fresh ranking, O(1) after; a ranking build O(N) plus a radix
 * sort and the index.
 */
#ifndef PARETO_COMMANDS_H
#define PARETO_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "resp.h"

struct pr_server;
struct pr_client;

enum {
	PR_CMD_PUBSUB = 1 << 0,  /* allowed in RESP2 subscribed mode */
	PR_CMD_WRITE = 1 << 1,   /* changes the engine */
	PR_CMD_ADMIN = 1 << 2,   /* SHUTDOWN */
	PR_CMD_FAST = 1 << 3,    /* O(1) or O(log N) */
};

struct pr_command {
	const char *name;   /* upper case */
	int arity;          /* Redis: n exactly, -n at least n (name included) */
	unsigned flags;
	void (*handler)(struct pr_server *s, struct pr_client *c,
			const struct pr_resp_command *cmd);
	const char *syntax; /* arguments, for HELP and COMMAND DOCS */
	const char *help;   /* one line */
};

/* The table, in HELP order. */
const struct pr_command *pr_command_table(size_t *count);
/* Case-insensitive lookup; NULL if unknown. */
const struct pr_command *pr_command_find(const char *name, size_t len);

/*
 * Runs one parsed command for a client: checks the name, the arity and the
 * subscribed mode, then calls the handler, which writes the reply into
 * c->out. argc may be 0 (an empty inline line): nothing is replied.
 */
void pr_command_execute(struct pr_server *s, struct pr_client *c,
			const struct pr_resp_command *cmd);

/*
 * After records were applied: evaluates alerts for subscribers (key clients
 * and risk levels of the company and of every store) and pushes the
 * changes. `now` forces an evaluation; otherwise it runs at most once per
 * rank_interval_ms. Returns the milliseconds until an evaluation is due, or
 * -1 if none is pending.
 */
int pr_commands_alerts(struct pr_server *s, bool now);

/* Whether what a parked client waits for (c->wait_for) is over: its
 * request is then handled again (pr_server_wait). */
bool pr_commands_wait_over(struct pr_server *s, struct pr_client *c);

/* Forgets a client's subscriptions (it is closing or RESET). */
void pr_commands_unsubscribe_all(struct pr_server *s, struct pr_client *c);

/* The text of INFO metrics (Prometheus text format), malloc'ed; NULL when
 * out of memory. For the metrics socket. */
char *pr_commands_metrics(struct pr_server *s, size_t *len);

/* Frees the published rankings and alert state. */
void pr_commands_free(struct pr_server *s);

#endif
