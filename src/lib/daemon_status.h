/*
 * daemon_status.h - what a running `postern serve` says about itself in
 * <data_dir>/postern.status, for `postern status` and the metrics
 * endpoint: its pid, version, start and reload times, configuration,
 * listeners, processes, listener certificates, and a ring of the last
 * DSTATUS_TLS_FAILURES delivery TLS failures.
 *
 * The file is a small shared mapping (about 50 KiB) that the master
 * creates at start (after dropping privileges: it belongs to `user`,
 * mode 0600, so root and that user can read it) and updates when
 * something changes: at start, at a reload, when a child starts.  The
 * queue manager adds TLS failures to the ring.  Nothing is written per
 * message.  Readers copy it under a sequence lock, so they never see a
 * half-written update and never block a writer.
 *
 * Callers: serve.c (create, set_*, stopped), smtp_conn.c (tls_failure,
 * in the queue manager), cmd_status.c and metrics_http.c (read, copy),
 * cmd_queue.c (daemon_status_pid).
 */
#ifndef POSTERN_DAEMON_STATUS_H
#define POSTERN_DAEMON_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define DSTATUS_FILE		"postern.status"
#define DSTATUS_MAX_LISTENERS	32
#define DSTATUS_MAX_CERTS	64
#define DSTATUS_MAX_CHILDREN	132	/* 2 generations, 64 workers */
#define DSTATUS_TLS_FAILURES	20

/* Child roles; workers are their index (>= 0). */
#define DSTATUS_ROLE_QMGR	(-1)
#define DSTATUS_ROLE_METRICS	(-2)

struct dstatus_listener {
	char	name[64];
	char	address[64];
	int	port;
	char	tls[16];	/* off | preferred | required | implicit */
	char	auth[16];	/* off | optional | required */
	int	proxy_protocol;
};

struct dstatus_cert {
	char	listener[64];
	char	certificate[256];	/* store ID or certificate file */
	char	subject[128];		/* CN */
	int64_t	not_after;		/* Unix time; 0 = unreadable */
	int	self_signed;
};

struct dstatus_child {
	int64_t	pid;
	int	role;
	int	generation;
	int64_t	started;		/* Unix time */
};

struct dstatus_tls_failure {
	int64_t	when;			/* Unix time */
	char	domain[256];		/* destination */
	char	host[256];		/* next hop */
	char	reason[512];
};

/* The part the master writes (under the sequence lock). */
struct dstatus_block {
	int64_t	pid;			/* the master */
	int64_t	started;		/* Unix time */
	int64_t	reloaded;		/* last reload (0: none) */
	int	generation;
	int	reload_refused;		/* the last SIGHUP failed */
	char	version[32];
	char	conf_path[1024];
	char	metrics_address[64];
	int	metrics_port;		/* 0: no metrics listener */
	int	workers;
	size_t	nlisteners;
	struct dstatus_listener listeners[DSTATUS_MAX_LISTENERS];
	size_t	ncerts;
	struct dstatus_cert certs[DSTATUS_MAX_CERTS];
	size_t	nchildren;
	struct dstatus_child children[DSTATUS_MAX_CHILDREN];
};

/* A reader's copy. */
struct dstatus {
	struct dstatus_block	b;
	int			running;	/* 0 after a clean stop */
	size_t			ntls;		/* newest first */
	struct dstatus_tls_failure tls[DSTATUS_TLS_FAILURES];
};

/* ---- the master ---- */
/* Create <data_dir>/postern.status afresh (the old one, if any, is
 * replaced whole) and map it; pid, start time and version are set.
 * 0, or -1 with why. */
int	daemon_status_create(const char *data_dir, char *why, size_t whylen);
/* Configuration facts of the running generation; `certs` are the
 * listener certificates (the caller reads them, see cert_expiry.h). */
void	daemon_status_set_config(const struct conf *, int workers,
	    int generation, const struct dstatus_cert *certs, size_t ncerts);
/* The last SIGHUP was refused (1) or applied (0, with the time). */
void	daemon_status_set_reload(int refused, int64_t when);
void	daemon_status_set_children(const struct dstatus_child *, size_t n);
/* A clean stop: `postern status` says "not running" from now on. */
void	daemon_status_stopped(void);

/* ---- the queue manager ---- */
/* Remember a delivery TLS failure (ring of the last 20). */
void	daemon_status_tls_failure(const char *domain, const char *host,
	    const char *reason);

/* ---- readers ---- */
/* Copy this process's mapping (children of serve).  0 or -1. */
int	daemon_status_copy(struct dstatus *out);
/* Map <data_dir>/postern.status read-only and copy it.  0; -1 with why
 * (errno ENOENT: no such file: the daemon never ran there). */
int	daemon_status_read(const char *data_dir, struct dstatus *out,
	    char *why, size_t whylen);
/* The pid of the `postern serve` running on data_dir (its postern.pid,
 * checked against /proc: a stale file or a reused pid is 0), or 0. */
long	daemon_status_pid(const char *data_dir);

#endif
