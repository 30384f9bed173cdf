/*
 * qmgr.h - the queue manager process: a scheduler.  It knows every
 * message in spool/queue and when each is due, asks the router where each
 * recipient goes (route.h), hands the recipients to the delivery drivers
 * (delivery.h: local maildir, remote SMTP/LMTP) and turns their results
 * into spool state, retries with backoff, expiry and bounces.
 *
 * Callers: serve.c (one qmgr process, qmgr_run); tests (qmgr_new with
 * their own drivers, qmgr_rescan, qmgr_round, qmgr_committed).
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stdint.h>

#include "conf.h"
#include "delivery.h"

struct event_base;
struct spool;
struct qmgr;

/* Run until SIGTERM with the real drivers.  notify_fd: datagram socket
 * carrying committed MIDs.  0, or -1 when the events cannot be set up. */
int	qmgr_run(struct event_base *, const struct conf *, struct spool *,
	    int notify_fd);

/* A scheduler on `base` delivering through `local` (maildir recipients)
 * and `remote` (LMTP, route hosts, MX); it calls their init.  The drivers
 * must outlive it. */
struct qmgr *qmgr_new(struct event_base *, const struct conf *,
	    struct spool *, const struct delivery_driver *local,
	    const struct delivery_driver *remote);
/* Shut the drivers down and free; messages still in delivery stay in the
 * spool as they were.  NULL is fine. */
void	qmgr_free(struct qmgr *);
/* Read the spool afresh: every queued message and its next attempt. */
void	qmgr_rescan(struct qmgr *);
/* One delivery round now: every due message (up to a batch) goes to the
 * drivers, which are flushed at the end. */
void	qmgr_round(struct qmgr *);
/* A worker committed `mid`: due now, unless the table knows it already (a
 * rescan found it before this notice came; its due time stands, so a late
 * notice never repeats an attempt that was just made). */
void	qmgr_committed(struct qmgr *, uint64_t mid);

/* Backoff for the n-th failed attempt (1-based): retry_min doubling up to
 * retry_max, with +-10% jitter from `rnd` in [0,1). */
int	qmgr_backoff(const struct conf *, int attempts, double rnd);

#endif
