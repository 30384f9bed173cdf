/*
 * throttle.h - counters every worker process shares for authenticated
 * submission: failed AUTHs per client address (postern.conf(5) limits auth_failures,
 * auth_failure_window) and each credential's sending quota (messages per
 * second and per rolling 24 hours, `postern user ... --max-send-rate /
 * --max-24-hour-send`).  Shared memory made by the master before fork,
 * under one process-shared robust mutex (as connlimit.c).
 *
 * Client addresses are counted per IPv4 address and per IPv6 /64 (one
 * host usually owns a whole /64).  Counts live in memory: a restart of
 * the daemon starts them afresh.
 */
#ifndef POSTERN_THROTTLE_H
#define POSTERN_THROTTLE_H

#include <stdint.h>
#include <sys/socket.h>

#define THROTTLE_MAX_FAILURES	64	/* largest auth_failures */

/* Create the tables (master, before fork). 0 or -1. */
int	throttle_init(void);

enum throttle_gate {
	THROTTLE_OPEN,		/* go on */
	THROTTLE_BLOCKED_NEW,	/* blocked, first refusal of this episode */
	THROTTLE_BLOCKED	/* blocked, already logged */
};
/* May this client try AUTH now?  `now` in monotonic seconds. */
enum throttle_gate throttle_gate(const struct sockaddr *, int max_failures,
	    int window, double now);
/* Count one failed AUTH; returns the failures within the window. */
int	throttle_failed(const struct sockaddr *, int window, double now);

enum throttle_quota { QUOTA_OK, QUOTA_RATE, QUOTA_DAY };
/* One more message for `user`?  Counts it when allowed (limits of 0 mean
 * none).  `now` in wall-clock seconds. */
enum throttle_quota throttle_send(const char *user, long max_rate,
	    long max_day, int64_t now);

#endif
