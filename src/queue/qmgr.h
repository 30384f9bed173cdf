/*
 * qmgr.h - the queue manager process: knows every message in spool/queue,
 * schedules delivery attempts with backoff, and runs local (maildir)
 * delivery in groups so one flush covers many messages.  Remote delivery
 * (SMTP client, MX) plugs in here with the outbound delivery work.
 *
 * Callers: serve.c (one qmgr process).
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include "conf.h"

struct event_base;
struct spool;

/* Run until SIGTERM.  notify_fd: datagram socket carrying committed MIDs. */
int	qmgr_run(struct event_base *, const struct conf *, struct spool *,
	    int notify_fd);

/* Backoff for the n-th failed attempt (1-based): retry_min doubling up to
 * retry_max, with +-10% jitter from `rnd` in [0,1). */
int	qmgr_backoff(const struct conf *, int attempts, double rnd);

#endif
