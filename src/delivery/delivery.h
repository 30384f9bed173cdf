/*
 * delivery.h - the interface between the queue manager (the scheduler,
 * qmgr.c) and the delivery drivers, and the one per-recipient result type
 * that travels from a driver through the scheduler to the bounce builder
 * (bounce.h) and the delivery log (delivery_log.h).
 *
 * Drivers (struct delivery_driver, chosen by the router's decision):
 *   delivery_local   deliver_local.c  maildir copies, flushed in groups
 *   delivery_remote  dest_queue.c     SMTP and LMTP next hops: destination
 *                                     queues and their connections
 *
 * A round of the scheduler: for every due message, one request per
 * destination (all maildir recipients of a message form one request; the
 * network recipients of one destination queue form one), then flush() on
 * every driver.  Every request ends with exactly one call of its `done`
 * callback carrying one result per recipient; it may run from inside
 * submit(), from flush() or later from the event loop.  Drivers write the
 * delivery lines of the mail log themselves (delivery_log.h); the
 * scheduler turns results into spool state, retries and bounces.
 */
#ifndef POSTERN_DELIVERY_H
#define POSTERN_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "envelope.h"
#include "failcause.h"
#include "route.h"

struct event_base;

enum delivery_outcome {
	DELIVERY_DELIVERED,
	DELIVERY_DEFERRED,	/* try again later */
	DELIVERY_BOUNCED	/* permanent failure: DSN to the sender */
};

/* What happened to one recipient in one attempt. */
struct delivery_result {
	size_t			rid;		/* index in env->rcpts */
	enum delivery_outcome	outcome;
	char			text[512];	/* reply or reason (log, queue
						 * list, DSN diagnostic) */
	char			status[16];	/* RFC 3463 code, "5.1.1" */
	char			remote[256];	/* host that answered, "" */
	int			smtp_diag;	/* text is a remote reply */
	int64_t			when;		/* wall clock of the attempt */
	/* why it failed, from the table of causes (its fix reaches the
	 * log and `postern queue show`); FC_NONE when not known */
	enum failcause		cause;
	char			cause_host[256];	/* the server it is about */
	int			cause_port;		/* its port, 0 unknown */
};

/* One request ends: n results, borrowed for the call. */
typedef void (*delivery_done_cb)(void *arg, const struct delivery_result *,
	    size_t n);
/* A delivery that requires TLS failed on TLS (for the alert mail). */
typedef void (*delivery_alert_cb)(const char *domain, const char *host,
	    const char *reason);

/*
 * Recipients `rids` of one message for one driver.  env, fd (the locked
 * spool file: content = its first env->msg_size octets) and routes (the
 * router's decision for every recipient, indexed by rid) are borrowed
 * until `done` has run; rids is copied during submit().
 */
struct delivery_request {
	uint64_t			 mid;
	const struct envelope		*env;
	int				 fd;
	const struct route_decision	*routes;
	const size_t			*rids;
	size_t				 nrids;
	delivery_done_cb		 done;
	void				*arg;
};

struct delivery_driver {
	const char	*name;
	/* Once per queue manager, before any submit.  0, or -1 with why
	 * (the driver still takes requests and defers them). */
	int	(*init)(struct event_base *, const struct conf *,
		    delivery_alert_cb, char *why, size_t whylen);
	/* Take a request (see above). */
	void	(*submit)(const struct delivery_request *);
	/* End of a scheduler round: finish what submit() began (NULL for a
	 * driver that works from the event loop). */
	void	(*flush)(void);
	/* Stop: close everything without calling back (NULL when nothing
	 * outlives a round). */
	void	(*shutdown)(void);
};

extern const struct delivery_driver delivery_local;
extern const struct delivery_driver delivery_remote;

/* Fill one result (text, status and remote may be NULL); no cause. */
void	delivery_result_set(struct delivery_result *, enum delivery_outcome,
	    const char *text, const char *status, const char *remote,
	    int smtp_diag);
/* Name the cause of a failed result and the server it is about. */
void	delivery_result_cause(struct delivery_result *, enum failcause,
	    const char *host, int port);

#endif
