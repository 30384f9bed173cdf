/*
 * metrics.h - the counters behind the Prometheus endpoint (`metrics`
 * block, postern.conf(5)): connections, messages, AUTH, TLS, deliveries
 * and two latency histograms, kept in memory shared by every process of
 * one `postern serve`.
 *
 * The master makes the shared region before it forks (metrics_init), so
 * the counts outlive any child: a worker or queue manager that dies and
 * is restarted keeps adding to the same numbers.  Each process counts in
 * its own slab (metrics_set_slot) with relaxed atomic additions: no lock,
 * no system call, no cache line shared with another worker on the hot
 * path.  Readers add the slabs up (metrics_snapshot).  Without a metrics
 * block nothing is counted (every call returns at its first test).
 *
 * Label values are bounded: listeners by their index in the
 * configuration, status codes, AUTH and TLS failure reasons from fixed
 * tables (anything else is "other"), TLS ciphers and destinations in
 * shared tables of METRICS_MAX_CIPHERS / METRICS_MAX_DESTINATIONS names
 * taken first come, first served; later names fold into "other".
 *
 * Callers: serve.c (init, slots), listener.c, proxy_accept.c and
 * smtp_server.c (SMTP workers), qmgr.c and smtp_conn.c (queue manager),
 * metrics_http.c (snapshot, labels), metrics_text.c (names of the
 * tables); tests/unit/test_metrics.c.
 */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define METRICS_MAX_LISTENERS	32	/* more: the last slot is "other" */
#define METRICS_MAX_CIPHERS	32
#define METRICS_MAX_DESTINATIONS 50
#define METRICS_LABEL_MAX	96	/* octets of a shared label name */
#define METRICS_OTHER		"other"

/* Slabs: the queue manager, then one per worker index. */
#define METRICS_SLOT_QMGR	0
#define METRICS_SLOT_WORKER(i)	(1 + (i))

enum metrics_conn {
	METRICS_CONN_ACCEPTED,		/* admitted: a session starts */
	METRICS_CONN_TCPREFUSE,		/* sender group policy tcprefuse */
	METRICS_CONN_MAX_CONNECTIONS,	/* limits.max_connections */
	METRICS_CONN_MAX_PER_CLIENT,	/* max_connections_per_client */
	METRICS_CONN_PROXY_REFUSED,	/* peer outside proxy_from */
	METRICS_CONN_PROXY_FAILED,	/* bad, late or missing header */
	METRICS_NCONN
};

/* Where a message (or one of its recipients) was refused. */
enum metrics_stage { METRICS_STAGE_MAIL, METRICS_STAGE_RCPT,
	METRICS_STAGE_DATA, METRICS_NSTAGES };

enum metrics_auth_fail {
	METRICS_AUTH_INVALID_CREDENTIALS,	/* 535 after the check */
	METRICS_AUTH_MALFORMED,		/* undecodable or bad response */
	METRICS_AUTH_ABORTED,		/* the client sent "*" */
	METRICS_AUTH_BLOCKED,		/* too many failures (454, close) */
	METRICS_AUTH_TEMPORARY,		/* could not be checked (454) */
	METRICS_AUTH_ENCRYPTION_REQUIRED,	/* 538 before TLS */
	METRICS_AUTH_UNSUPPORTED_MECHANISM,	/* 504 / 501 */
	METRICS_AUTH_BAD_SEQUENCE,	/* 503: not enabled, no EHLO, ... */
	METRICS_NAUTH_FAIL
};

enum metrics_mech { METRICS_MECH_PLAIN, METRICS_MECH_LOGIN, METRICS_NMECH };

enum metrics_dir { METRICS_INBOUND, METRICS_OUTBOUND, METRICS_NDIR };

#define METRICS_NPROTOCOLS	5	/* TLSv1, 1.1, 1.2, 1.3, other */
#define METRICS_NTLS_FAIL	11	/* see metrics_tls_reason_names */

enum metrics_delivery { METRICS_DELIVERED, METRICS_DEFERRED,
	METRICS_BOUNCED, METRICS_NDELIVERY };

#define METRICS_NCODES		20	/* fixed status codes + "other" */
#define METRICS_COMMIT_BUCKETS	13
#define METRICS_DELIVERY_BUCKETS 10

/* A histogram as counted: one count per bucket (not cumulative), the
 * number and the sum of observations (microseconds). */
struct metrics_hist_view {
	uint64_t	bucket[METRICS_COMMIT_BUCKETS + 1];	/* + Inf */
	uint64_t	count;
	uint64_t	sum_us;
};

/* Every counter, added up over the slabs. */
struct metrics_counts {
	uint64_t	conn[METRICS_MAX_LISTENERS][METRICS_NCONN];
	uint64_t	accepted;
	uint64_t	rejected[METRICS_NSTAGES][METRICS_NCODES];
	uint64_t	auth_ok[METRICS_NMECH];
	uint64_t	auth_fail[METRICS_NAUTH_FAIL];
	uint64_t	tls_ok[METRICS_NDIR][METRICS_NPROTOCOLS]
			    [METRICS_MAX_CIPHERS + 1];
	uint64_t	tls_fail[METRICS_NDIR][METRICS_NTLS_FAIL];
	uint64_t	deliveries[METRICS_MAX_DESTINATIONS + 1]
			    [METRICS_NDELIVERY];
	struct metrics_hist_view commit, delivery;
};

/* Fixed label tables (the index is the counter's), for the formatter. */
extern const char *const metrics_conn_names[METRICS_NCONN];
extern const char *const metrics_stage_names[METRICS_NSTAGES];
extern const char *const metrics_code_names[METRICS_NCODES];
extern const char *const metrics_auth_fail_names[METRICS_NAUTH_FAIL];
extern const char *const metrics_mech_names[METRICS_NMECH];
extern const char *const metrics_dir_names[METRICS_NDIR];
extern const char *const metrics_protocol_names[METRICS_NPROTOCOLS];
extern const char *const metrics_tls_reason_names[METRICS_NTLS_FAIL];
extern const char *const metrics_delivery_names[METRICS_NDELIVERY];
/* Upper bounds in seconds (the last bucket, +Inf, is implied). */
extern const double metrics_commit_le[METRICS_COMMIT_BUCKETS];
extern const double metrics_delivery_le[METRICS_DELIVERY_BUCKETS];

/* ---- set-up (serve.c) ---- */
/* The master, before fork, when `metrics` is configured: the shared
 * region for the queue manager and `nworkers` workers.  0 or -1. */
int	metrics_init(int nworkers);
/* In a child: count into slab `slot` (METRICS_SLOT_*); `conf` names the
 * listeners whose counters this process adds to.  No-op without init. */
void	metrics_set_slot(int slot, const struct conf *conf);
/* Is counting on in this process? */
int	metrics_enabled(void);

/* ---- counting (hot paths: atomic additions only) ---- */
void	metrics_connection(const struct conf_listener *, enum metrics_conn);
void	metrics_message_accepted(void);
/* A 4xx/5xx reply at `stage`; its enhanced status code picks the label. */
void	metrics_message_rejected(enum metrics_stage, const char *reply);
void	metrics_auth_success(const char *mechanism);
void	metrics_auth_failure(enum metrics_auth_fail);
/* A TLS session: protocol ("TLSv1.3") and cipher name. */
void	metrics_tls_session(enum metrics_dir, const char *protocol,
	    const char *cipher);
/* A TLS failure; `reason` is the log line's text, classified. */
void	metrics_tls_failure(enum metrics_dir, const char *reason);
/* A recipient's delivery attempt ended (destination = its domain). */
void	metrics_delivery(const char *destination, enum metrics_delivery);
/* Observations in seconds. */
void	metrics_observe_commit(double seconds);
void	metrics_observe_delivery(double seconds);

/* ---- reading (metrics_http.c) ---- */
/* Add every slab up into *out.  0, or -1 without init. */
int	metrics_snapshot(struct metrics_counts *out);
/* Shared label tables: the name at index i, "" for an unused slot (a
 * name a race took twice is in two slots: the formatter merges them). */
const char *metrics_cipher_name(size_t i);
const char *metrics_destination_name(size_t i);
/* Index of a destination's label (taken now if there is room), or
 * METRICS_MAX_DESTINATIONS for "other". */
size_t	metrics_destination_label(const char *destination);

/* ---- pure helpers (unit tests) ---- */
/* Index in metrics_code_names of the reply's enhanced status code. */
size_t	metrics_code_index(const char *reply);
size_t	metrics_protocol_index(const char *protocol);
size_t	metrics_tls_reason_index(const char *reason);
/* Bucket of a value in a table of n upper bounds (n = +Inf). */
size_t	metrics_bucket(const double *le, size_t n, double v);

#endif
