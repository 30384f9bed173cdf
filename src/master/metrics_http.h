/*
 * metrics_http.h - the metrics process: Prometheus text on GET /metrics
 * over plain HTTP (libevent's evhttp), on the socket the master bound
 * for the `metrics` block.
 *
 * Why a process of its own (forked by the master like the queue manager,
 * restarted when it dies, one per configuration generation): the master
 * has no event loop and stays a bare supervisor; the queue manager is
 * busy scheduling deliveries, and a scrape (which lists the spool) or a
 * slow HTTP client must not delay that; the SMTP workers face untrusted
 * SMTP input and there are N of them.  This process only reads: the
 * shared counters (metrics.h), the status file (daemon_status.h), the
 * spool and the certificate store.  It never holds a counter itself, so
 * its restart loses nothing.
 *
 * Callers: serve.c.
 */
#ifndef POSTERN_METRICS_HTTP_H
#define POSTERN_METRICS_HTTP_H

#include "conf.h"

struct event_base;
struct spool;

/* Serve on the listening socket `fd` until SIGTERM.  0, or -1 when the
 * server cannot be set up. */
int	metrics_http_run(struct event_base *, const struct conf *,
	    const struct spool *, int fd);

#endif
