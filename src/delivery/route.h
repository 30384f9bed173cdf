/*
 * route.h - the router: the one place that decides where a recipient's
 * mail goes (SPEC "routes" and "destinations").
 *
 * route_decide() maps a recipient address to one of: a local maildir, a
 * route's LMTP next hops, a route's next hops (SMTP, possibly with LMTP
 * among them), or the MX hosts of the recipient domain; and, for mail that
 * leaves by network, the destination control that applies (tls,
 * max_connections) and which destination queue (connection pool) it
 * joins.  Nothing else in Postern makes these decisions.
 *
 * Callers: the SMTP worker at RCPT time (listener.c, through
 * deliver_local_check for maildir recipients), the queue manager for
 * every pending recipient of a due message (qmgr.c: it hands the
 * recipient to the delivery driver the decision names), and the alert
 * mail (alert.c, the destinations entry it quotes).
 *
 * The route depends on the recipient's domain only; no property of the
 * message (sender, size, body type) changes it today.  Should one ever
 * matter (sender-dependent routes), it becomes a parameter here and
 * nowhere else.
 *
 * Pure: no I/O, no allocation, no global state; pointers in a decision
 * borrow from the configuration and stay valid as long as it does.
 */
#ifndef POSTERN_ROUTE_H
#define POSTERN_ROUTE_H

#include <stddef.h>

#include "conf.h"

#define ROUTE_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define ROUTE_MAX_CONNECTIONS	20	/* without a destinations entry */

enum route_kind {
	ROUTE_TO_NOWHERE,	/* cannot be routed: bounce with why/status */
	ROUTE_TO_MAILDIR,	/* route with maildir: local delivery */
	ROUTE_TO_LMTP,		/* route whose next hops are all LMTP */
	ROUTE_TO_HOSTS,		/* route with hosts (SMTP, maybe LMTP) */
	ROUTE_TO_MX		/* no route: MX of the recipient domain */
};

struct route_decision {
	enum route_kind			 kind;
	const struct conf_route		*route;	/* MAILDIR, LMTP, HOSTS */
	const struct conf_destination	*dest;	/* entry that applies, or
						 * NULL (built-in default) */
	enum dest_tls			 tls;	/* dest's tls or PREFERRED */
	int				 max_connections;	/* >= 1 */
	int				 queue_per_route;	/* 1: one queue
					 * for every domain of the route (the
					 * route has its own tls); 0: one
					 * queue per recipient domain */
	const char			*why;	/* NOWHERE: reason (static) */
	const char			*status;	/* NOWHERE: 5.x.x */
	char				 domain[ROUTE_DOMAIN_MAX + 1];
					/* recipient domain, lower case */
};

/* The recipient domain of `rcpt` as the router keys it (lower case) into
 * buf (ROUTE_DOMAIN_MAX + 1 octets fit any).  0, or -1 when the address
 * has no domain or it is too long (buf is then ""). */
int	route_domain_of(const char *rcpt, char *buf, size_t len);
/* Decide for recipient address `rcpt` ("local@domain"); fills *d and
 * returns d->kind. */
enum route_kind route_decide(const struct conf *, const char *rcpt,
	    struct route_decision *d);
/* The destinations entry for a domain: exact match (any case), else "*",
 * else NULL. */
const struct conf_destination *route_destination(const struct conf *,
	    const char *domain);
/* Do two network decisions share one destination queue? */
int	route_same_queue(const struct route_decision *,
	    const struct route_decision *);
/* "maildir", "lmtp", "hosts", "mx", "nowhere" (for logs and tests). */
const char *route_kind_name(enum route_kind);

#endif
