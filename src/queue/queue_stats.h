/*
 * queue_stats.h - the queue by destination, read from the spool: how
 * many messages are active (not yet tried, or being tried), deferred
 * (tried, waiting for their retry) and held, per recipient domain, and
 * when the oldest waiting one was received.  A message with recipients
 * in several domains counts once in each.
 *
 * It reads the spool only (daemon running or not): queue/ and hold/
 * listings, each message's envelope once (a cache keeps what envelopes
 * say, which never changes), and its delivery state file at every scan.
 *
 * Callers: metrics_http.c (every scrape, with a cache kept between
 * them), cmd_status.c (one scan); tests/unit/test_queue_stats.c.
 */
#ifndef POSTERN_QUEUE_STATS_H
#define POSTERN_QUEUE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

#define QUEUE_STATS_NO_DOMAIN	"(none)"	/* RCPT without a domain */

struct queue_dest {
	char		domain[256];	/* lower case */
	uint64_t	active, deferred, held;
	int64_t		oldest;		/* received: oldest active or
					 * deferred message; 0: none */
};

struct queue_stats {
	uint64_t		 active, deferred, held;	/* messages */
	int64_t			 oldest;		/* as above */
	uint64_t		 unreadable;	/* envelopes that failed */
	struct queue_dest	*dests;	/* most messages first */
	size_t			 ndests;
};

struct queue_stats_cache;

struct queue_stats_cache *queue_stats_cache_new(void);
void	queue_stats_cache_free(struct queue_stats_cache *);
/* Count the spool now into *out (cleared first; free it with
 * queue_stats_clear).  0, or -1 with why when the spool cannot be
 * listed. */
int	queue_stats_scan(const struct spool *, struct queue_stats_cache *,
	    struct queue_stats *out, char *why, size_t whylen);
void	queue_stats_clear(struct queue_stats *);

#endif
