/*
 * server.h - paretod's event loop: one io_uring that accepts and serves
 * clients on a Unix socket (RESP2/RESP3, see resp.h), reads feeds into the
 * engine, and watches signals and timers.
 *
 * Owns the engine (it is the single writer), the listening socket and its
 * file, every client connection and its buffers, every feed source and its
 * decoder, and the published rankings (commands.c builds them). One thread:
 * requests are handled between feed batches, and a feed batch is bounded
 * (ingest_batch_bytes per loop turn) so that a long backfill never holds a
 * client for more than about a millisecond.
 *
 * Guarantees: a client's replies come in request order; a request over
 * max_request_bytes or a malformed frame gets one -ERR and the connection
 * is closed after it is sent; a client whose unsent output passes
 * max_output_bytes is disconnected; none of these affects other clients or
 * ingest. The socket file is created with socket_mode, never replaces a
 * live server's socket, replaces a stale one, and is removed on SHUTDOWN,
 * SIGTERM or SIGINT.
 *
 * Cost: O(bytes) per request and per feed byte; no allocation per record;
 * buffers grow per client up to the limits and are kept for reuse.
 *
 * The structures below are internal to the daemon (server.c, commands.c);
 * the embeddable API is include/pareto/.
 */
#ifndef PARETO_SERVER_H
#define PARETO_SERVER_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "decoder.h"
#include "pareto/engine.h"
#include "pareto/error.h"
#include "pareto/feed.h"
#include "pareto/ranking.h"
#include "producers.h"
#include "ranker.h"
#include "resp.h"

#define PR_SERVER_MAX_FEEDS 64
#define PR_SERVER_APPLY_THREADS_MAX 64 /* --threads (shard_owners.h) */
#define PR_RANK_INTERVAL_LEAST_MS 1 /* --rank-interval-ms auto: from this */
#define PR_RANK_INTERVAL_AUTO_MOST_MS 10 /* to this */

/* A loyalty benefit of a tier, in hundredths of a percent (2000 = 20%). */
struct pr_tier_benefit {
	uint32_t discount_centi, cashback_centi;
};

struct pr_server_options {
	const char *socket_path;   /* borrowed */
	mode_t socket_mode;        /* 0660 */
	/* "PATH", "-", "follow:PATH", "unix:PATH" or "tcp:HOST:PORT" (see feeds.h);
	 * borrowed */
	const char *feeds[PR_SERVER_MAX_FEEDS];
	size_t feed_count;
	struct pr_feed_options feed;     /* as the report command's */
	/* engine.apply_threads: --threads, threads applying the records
	 * (default: the cores online; 1: the server thread applies them) */
	struct pr_engine_options engine;
	size_t max_request_bytes;  /* 1 MiB */
	size_t max_output_bytes;   /* 64 MiB */
	unsigned max_clients;      /* 10000 */
	/* While ingesting, rankings are published at most every
	 * rank_interval_ms (10), or, if rank_interval_auto (the default), as
	 * often as every PR_RANK_INTERVAL_LEAST_MS while the ranker's steps are
	 * cheap, and every rank_interval_ms as they grow (ranker.h). */
	unsigned rank_interval_ms;
	bool rank_interval_auto;
	size_t ingest_batch_bytes; /* 64 KiB of feed bytes decoded per loop turn */
	/* After answering, while no feed is ingesting, the server thread
	 * polls for the next request this long before it sleeps (0: never):
	 * a client that asks again meanwhile is served without waking it. */
	unsigned busy_poll_us;     /* PR_BUSY_POLL_DEFAULT_US */
	enum pr_window alert_window; /* all */
	struct pr_tier_benefit benefits[3]; /* A, B, C */
	unsigned show_errors;      /* bad lines described on stderr per feed: 10 */
	const char *config_path;   /* for INFO; may be NULL */
	const char *metrics_socket_path; /* Prometheus over HTTP; NULL: none; borrowed */
	const char *checkpoint_path; /* NULL: no checkpoints; borrowed (persistence.h) */
	unsigned checkpoint_interval_s; /* 60; 0: only SAVE and the one at stop */
	bool quiet;                /* no per-line reject details */
	const char *log_path;      /* stderr's file, reopened on SIGHUP; NULL: none */
	/* SIGHUP: the options as the config file gives them now (paretod.c),
	 * written into *o, which holds the running ones; only options the
	 * server reads afresh at each use may change. 0, or -1 (logged) with
	 * *o untouched. NULL: nothing to reread. */
	int (*reload)(void *ctx, struct pr_server_options *o);
	void *reload_ctx;
};

#define PR_BUSY_POLL_DEFAULT_US 50
#define PR_BUSY_POLL_MAX_US 1000000

void pr_server_options_init(struct pr_server_options *o);

/* The least time between two rankings published while ingesting: the
 * lower bound for the ranker (ranker.h), rank_interval_ms its upper one. */
static inline unsigned pr_server_rank_interval_least(const struct pr_server_options *o)
{
	return o->rank_interval_auto ? PR_RANK_INTERVAL_LEAST_MS : o->rank_interval_ms;
}

struct pr_server;

/*
 * Creates the engine, opens the feeds, binds and listens (refusing a live
 * server's path), blocks SIGTERM/SIGINT/SIGHUP into a signalfd. Returns 0
 * or a negative code with *err saying why ("/run/pareto/p.sock: a server is
 * already listening there").
 */
int pr_server_create(struct pr_server **out, const struct pr_server_options *opt,
		     struct pr_error *err);
/* Serves until SHUTDOWN or a stop signal. Returns 0 or a fatal error code. */
int pr_server_run(struct pr_server *s, struct pr_error *err);
/* Closes everything and removes the socket file. */
void pr_server_destroy(struct pr_server *s);

/* One line to stderr: "2026-11-23T07:05:00.000Z paretod: ...". */
void pr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- internal: shared with commands.c ------------------------------------ */

#define PR_CLIENT_NAME_MAX 64
#define PR_CLIENT_CHANNELS_MAX 16

/* What a parked client waits for (pr_server_wait). */
enum pr_wait_for {
	PR_WAIT_HISTORY, /* its customer's history, read on an apply thread */
	PR_WAIT_COMPANY, /* the ranker's first ranking of a window */
	PR_WAIT_STORES,  /* store rankings of a window, built beside ingest */
	PR_WAIT_LAPSED,  /* LAPSED's list, made beside ingest */
};

struct pr_client {
	uint64_t id;
	int fd;
	struct pr_client *prev, *next; /* the server's list of live clients */
	char *in;                      /* owned; requests not yet handled */
	size_t in_len, in_cap;
	struct pr_resp_out out;        /* replies being written */
	char *wbuf;                    /* owned; bytes handed to the kernel */
	size_t wlen, woff, wcap;
	bool recv_inflight, send_inflight;
	bool closing;          /* shut down; freed when no operation is in flight */
	bool close_after_write;/* stop reading; close once the output is sent */
	bool eof;              /* the peer shut its side down */
	bool serving;          /* its requests are being handled: not freed meanwhile */
	unsigned channels;     /* subscribed channels */
	char *channel[PR_CLIENT_CHANNELS_MAX]; /* owned names */
	char name[PR_CLIENT_NAME_MAX + 1];
	char lib_name[PR_CLIENT_NAME_MAX + 1], lib_ver[PR_CLIENT_NAME_MAX + 1];
	const struct pr_command *last_command; /* NULL before the first */
	int64_t created_ms, active_ms;
	uint64_t commands;
	/* A customer's history being read for the request at the head of
	 * `in`, or NULL. While the client waits for it (waiting,
	 * pr_server_wait), nothing else of the client is read or handled;
	 * once read, the request is handled again and finds it here. Owned. */
	struct pr_customer_request *history;
	unsigned history_tries;         /* reads for this request so far (commands.c) */
	/* While waiting: what for (commands.c's pr_commands_wait_over tells
	 * when it is over), the window, and a mark taken when it began. */
	enum pr_wait_for wait_for;
	enum pr_window wait_window;
	uint64_t wait_mark;
	unsigned wait_tries;            /* waits for a build for this request (reset when answered) */
	bool waiting;                   /* in the server's waiting list, through: */
	struct pr_client *waiting_next;
};

struct pr_published_stores {
	struct pr_ranking **rankings; /* owned; count */
	struct pr_summary *summaries; /* owned; count */
	uint32_t *order;              /* owned; riskiest first */
	uint32_t count;
	uint64_t records;
	int64_t watermark_ms;
	bool has_watermark;
	int64_t built_ms;
	int64_t build_ms;
	bool valid;
};

/* What the alert subscribers were last told about one scope. */
struct pr_alert_scope {
	uint64_t records;  /* what the state below reflects (a store's may be ahead of the set's) */
	enum pr_risk risk;
	uint32_t key_count;
	char **key_ids;    /* owned; key_count malloc'ed ids */
	uint32_t *key_lens;
};

struct pr_alerts {
	bool baseline;               /* the scopes below were told once */
	uint64_t company_records;    /* the records the company's scope reflects */
	uint64_t stores_records;     /* and the stores' */
	int64_t evaluated_ms;
	struct pr_alert_scope company;
	struct pr_alert_scope *stores; /* owned; store_count */
	uint32_t store_count;
	uint64_t pushes;
};

struct pr_feed;
struct pr_feed_watch;
struct pr_metrics_socket;
struct pr_persistence;

struct pr_server {
	struct pr_server_options opt;
	struct pr_engine *engine;
	struct io_uring ring;
	int listen_fd, signal_fd;
	bool socket_created; /* we own the socket file: remove it at the end */
	ino_t socket_ino;    /* ... if it is still the file we bound */
	dev_t socket_dev;
	bool stopping;
	char *socket_path;   /* owned copy */
	int64_t started_ms, started_wall_ms;
	uint64_t next_client_id;

	struct pr_client *clients; /* live list */
	struct pr_client *zombies; /* closed, operations still in flight */
	struct pr_client *waiting; /* clients whose history is being read (live or closed) */
	unsigned client_count, waiting_count;
	unsigned subscribers;      /* clients subscribed to "alerts" */

	struct pr_feed *feeds;     /* every source and producer connection */
	unsigned feeds_open;       /* not yet at their end */
	struct pr_feed *ready, *ready_tail; /* feeds with bytes waiting to be decoded */
	int64_t last_feed_ms;      /* when feed bytes were last decoded */
	struct pr_feed_watch *feed_watch; /* inotify for followed files; owned by feeds.c */
	struct pr_metrics_socket *metrics; /* --metrics-socket; owned by metrics_socket.c */
	struct pr_persistence *persist; /* checkpoints; owned by persistence.c */

	/* INGEST through the socket */
	char ingest_header[256];
	size_t ingest_header_len;

	/* parser scratch: argument arrays of max_args */
	struct pr_resp_limits limits;
	const char **argv;
	size_t *argv_len;

	/* rankings: the company's come from the ranker thread (created at the
	 * first query); company[w] holds a reference to the one answers use */
	struct pr_ranker *ranker;
	struct pr_published *company[PR_WINDOW_COUNT];
	struct pr_published_stores stores[PR_WINDOW_COUNT];
	/* store rankings being built beside ingest (store_build.h), or NULL,
	 * and since when (monotonic ms) */
	struct pr_store_build *store_build[PR_WINDOW_COUNT];
	int64_t store_build_began_ms[PR_WINDOW_COUNT];
	/* LAPSED's list: the one answers use (if lapsed_valid), when it was
	 * published and how long it took, and one being made beside ingest
	 * (pr_lapsed_request_start) or NULL, since when */
	struct pr_lapsed_list lapsed;
	bool lapsed_valid;
	int64_t lapsed_built_ms, lapsed_build_ms;
	struct pr_lapsed_request *lapsed_request;
	int64_t lapsed_began_ms;
	struct pr_alerts alerts;

	/* producers that named themselves (producers.h), kept in checkpoints */
	struct pr_producers producers;

	/* counters */
	struct pr_feed_stats stats;  /* feeds that ended, and INGEST */
	uint64_t truncated_disconnects;
	uint64_t connections_total, rejected_connections, output_disconnects;
	uint64_t protocol_errors, commands_total, ranking_builds;
	uint64_t store_builds_beside; /* of ranking_builds: beside ingest */
	uint64_t lapsed_lists, lapsed_lists_beside; /* LAPSED's lists made; beside ingest */
	int64_t last_command_us;     /* monotonic; when requests were last answered */
	uint64_t busy_polls, busy_poll_hits; /* polls begun; those a completion ended */
	uint64_t history_waits;      /* requests that waited for a customer's history */
	uint64_t build_waits;        /* requests that waited for a first ranking or list */
	uint64_t rate_records;       /* records at rate_ms */
	int64_t rate_ms;
	double records_per_sec;
	int64_t last_status_ms;
	bool notify;                 /* NOTIFY_SOCKET is set */
};

/*
 * An io_uring operation of another module (feeds.c, metrics_socket.c): its
 * completion calls complete(s, op, res). The module embeds the op in the
 * owner of the operation's buffers and frees that owner only when no
 * operation of it is in flight, or after pr_server_destroy left the ring.
 */
struct pr_server_op {
	void (*complete)(struct pr_server *s, struct pr_server_op *op, int res);
};

/* A submission entry (submitting the queue first if it is full). Prepare
 * it, then name its owner with pr_server_sqe_owner (NULL: a completion to
 * ignore, such as a linked timeout's). */
struct io_uring_sqe *pr_server_sqe(struct pr_server *s);
void pr_server_sqe_owner(struct io_uring_sqe *sqe, struct pr_server_op *op);

/*
 * Binds and listens on a Unix stream socket at path with the given mode. A
 * live listener there is an error; a stale socket file is replaced;
 * anything that is not a socket is an error. *created: the file is ours.
 */
int pr_server_bind_unix(const char *path, mode_t mode, int *out_fd, bool *created,
			struct pr_error *err);

/* Monotonic milliseconds. */
int64_t pr_server_now_ms(void);

/* Hands a client's pending output to the kernel if no send is in flight. */
void pr_server_flush(struct pr_server *s, struct pr_client *c);

/* Drops a client now, unsent output included (a reader past its bound). */
void pr_server_disconnect(struct pr_server *s, struct pr_client *c);

/*
 * Parks the client until what its request waits for is there
 * (pr_commands_wait_over): its request stays unhandled and is handled
 * again then, in order with the rest of its input, while the server goes
 * on decoding feeds and answering others.
 */
void pr_server_wait(struct pr_server *s, struct pr_client *c, enum pr_wait_for what,
		    enum pr_window w, uint64_t mark);

/* Stops the loop after this turn (SHUTDOWN). */
void pr_server_stop(struct pr_server *s);

/*
 * True while feed bytes are waiting to be decoded: rankings are then
 * rebuilt at most every rank_interval_ms instead of on every change.
 */
bool pr_server_ingesting(const struct pr_server *s);

/*
 * Applies the records feeds have queued in the engine (pr_engine_enqueue),
 * and with apply threads waits until they have. Called before anything
 * reads the shards (a request for a customer's history, a store ranking
 * rebuilt, a wait for the ranker, LAPSED, INFO; the alerts and the
 * ranker's batch once due; a checkpoint; the metrics), so that what it
 * reads covers every record counted; the engine's readers assert it.
 * Answers from a published ranking need none: they cite what it reflects.
 * With apply threads a drain waits for them, so it is kept off the paths
 * that do not read the shards.
 */
void pr_server_drain(struct pr_server *s);

/* After a feed turn: with one thread, drains (the engine is applied
 * between turns); with apply threads, lets them go on. */
void pr_server_feed_turn_done(struct pr_server *s);

/* The stores an INGEST's records named: touched[store] for the first
 * `count` stores (malloc'ed; a store past count was not named). */
struct pr_stores_touched {
	uint8_t *touched;
	uint32_t count;
	bool failed; /* out of memory: which ones is not known */
};

/*
 * Appends CSV data lines (no header; the configured column order) to the
 * engine. Adds what was accepted and rejected to *accepted / *rejected,
 * and marks the stores of the records accepted in *stores (may be NULL).
 */
int pr_server_ingest_lines(struct pr_server *s, const char *const *lines,
			   const size_t *lens, size_t count, uint64_t *accepted,
			   uint64_t *rejected, struct pr_stores_touched *stores,
			   struct pr_error *err);

/* Counts of every feed (ended or not) and INGEST, summed. */
void pr_server_stats(const struct pr_server *s, struct pr_feed_stats *out);

/* Feeds and their totals, for INFO. */
void pr_server_feed_counts(const struct pr_server *s, unsigned *sources,
			   unsigned *producers, unsigned *open);

#endif
