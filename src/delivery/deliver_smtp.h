/*
 * deliver_smtp.h - remote delivery: per-destination queues of messages,
 * the outbound connections that drain them, and the destination TLS
 * policy.  Runs inside the queue manager's event loop; the protocol itself
 * is the shared client (smtp_client.h), next hops come from routes
 * (nexthop_parse.h) or MX (dns.h).
 *
 * The queue manager hands over "items": one message's pending recipients
 * of one recipient domain.  Items for the same destination wait in one
 * queue; up to the destination's max_connections connections take them
 * one after another (several messages per connection).  Every item ends
 * with exactly one callback carrying a result per recipient: delivered,
 * deferred (try again later) or bounced (permanent failure), with the
 * text for the log, `postern queue list` and the DSN.
 *
 * Destination TLS policy (SPEC `destinations.tls`, Cisco ESA meanings):
 *   none              never STARTTLS
 *   preferred         STARTTLS when offered, else clear; a handshake that
 *                     fails closes that connection and a new one goes in
 *                     clear (never plaintext on the failed connection)
 *   required          TLS or nothing (any certificate)
 *   preferred-verify  as preferred; the chain is checked against the trust
 *                     store (+ system CAs) and the host name (SAN, then CN)
 *                     against the MX / route host; failure is logged and
 *                     delivery goes on over the unverified TLS
 *   required-verify   TLS with a verified certificate, or nothing
 * A route's own `tls` (starttls / implicit / none) is honoured; credentials
 * (auth_user) are never sent without TLS.  TLS failures on required
 * destinations are reported through the alert callback.
 */
#ifndef POSTERN_DELIVER_SMTP_H
#define POSTERN_DELIVER_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "envelope.h"

struct event_base;

enum dsmtp_outcome { DSMTP_DELIVERED, DSMTP_DEFERRED, DSMTP_BOUNCED };

struct dsmtp_result {
	size_t			rid;
	enum dsmtp_outcome	outcome;
	char			text[512];	/* reply or reason */
	char			status[16];	/* RFC 3463 code, "5.1.1" */
	char			remote[256];	/* host that answered or "" */
	int			smtp_diag;	/* text is a remote reply */
};

/* Called once per item, from the event loop. */
typedef void (*dsmtp_done_cb)(void *arg, const struct dsmtp_result *,
	    size_t n);
/* A required-TLS delivery failed on TLS (for the alert mail). */
typedef void (*dsmtp_alert_cb)(const char *domain, const char *host,
	    const char *reason);

/* Set up (client TLS contexts, trust store).  0 or -1 with why; without
 * a trust store the -verify modes fail verification (logged). */
int	deliver_smtp_init(struct event_base *, const struct conf *,
	    dsmtp_alert_cb, char *why, size_t whylen);
/* Close every connection (no callbacks) and free everything. */
void	deliver_smtp_shutdown(void);

/*
 * Deliver recipients `rids` of a message to `domain` (the recipients'
 * domain; lower case).  env and data (the spool content, len octets) are
 * borrowed until the callback has run.  The callback may run from inside
 * this call (a destination with no usable next hop).
 */
void	deliver_smtp_submit(const char *domain, uint64_t mid,
	    const struct envelope *env, const char *data, size_t len,
	    const size_t *rids, size_t nrids, dsmtp_done_cb, void *arg);

/* Items submitted and not yet finished. */
size_t	deliver_smtp_pending(void);

#endif
