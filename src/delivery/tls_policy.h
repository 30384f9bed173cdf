/*
 * tls_policy.h - the outbound TLS ladder: what a delivery connection does
 * at each TLS event, as one table indexed by the destination control's
 * tls (postern.conf(5) destinations: none, preferred, required, preferred-verify,
 * required-verify), with the route's own tls (starttls, implicit, none)
 * applied on top.  The connection driver (smtp_conn.c) asks this table and
 * decides nothing about TLS by itself.
 *
 * Cisco's meaning of "preferred" (postern.conf(5)): STARTTLS when offered; only
 * "STARTTLS not offered" and "STARTTLS refused before its 220" continue
 * in clear.  A failure after the server's 220 to STARTTLS (handshake
 * failure, data injected after the 220) never falls back to clear text,
 * on that connection or a new one: the message is deferred and, being a
 * possible active attack (someone between us and the server letting the
 * STARTTLS through and breaking what follows), logged as such.
 */
#ifndef POSTERN_TLS_POLICY_H
#define POSTERN_TLS_POLICY_H

#include "conf.h"

/* What the connection does when an event happens. */
enum tls_action {
	TLS_GO,		/* nothing to do: carry on */
	TLS_CLEAR,	/* carry on in clear on this connection */
	TLS_FAIL,	/* TLS failure on a destination that needs TLS: log,
			 * alert the admin, try the next host */
	TLS_WARN,	/* unverified certificate: Warning, deliver anyway */
	TLS_LOST,	/* the connection is gone: a connection error like
			 * any other, try the next host */
	TLS_ATTACK	/* possible active attack: Warning, defer the
			 * destination's messages, no clear text */
};

struct tls_policy {
	const char	*mode;		/* name for logs: the route's tls
					 * ("starttls"...) or the destination's */
	int		 of_route;	/* mode is the route's own tls */
	int		 implicit;	/* TLS before the greeting (RFC 8314) */
	int		 starttls;	/* send STARTTLS when offered */
	int		 verify;	/* check the chain and the host name */
	int		 required;	/* never clear; failures alert */
	enum tls_action	 not_offered;	/* EHLO without STARTTLS */
	enum tls_action	 refused;	/* STARTTLS answered, not 220 */
	enum tls_action	 no_reply;	/* closed or timed out before any
					 * reply to STARTTLS */
	enum tls_action	 after_220;	/* handshake failed or data injected
					 * after the 220 */
	enum tls_action	 unverified;	/* chain or host name check failed */
};

/* The policy for a destination tls mode and a route tls (ROUTE_TLS_UNSET
 * when the route has none, or for MX delivery). */
void	tls_policy_get(enum dest_tls, enum route_tls, struct tls_policy *);

#endif
