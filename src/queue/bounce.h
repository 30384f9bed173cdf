/*
 * bounce.h - bounces: delivery status notifications (RFC 3464, as an
 * RFC 6522 multipart/report) to the envelope sender of a message that
 * could not be delivered.  (Alerts to the administrators: alert.h.)
 *
 * The builder only produces the bytes of a complete RFC 5322 message
 * (CRLF line ends, no line longer than 998 octets, no raw control
 * characters from remote replies in any header).  To queue one, the queue
 * manager takes a MID (ids_next(ID_MID)), fills an envelope with
 * envelope_generated() (envelope.h) and writes both with spool_inject() (spool.h).
 *
 * Bounce layout (report-type=delivery-status, random boundary):
 *   1. text/plain; charset=utf-8: what happened, per recipient, in words
 *      for a user or an admin, with the remote reply and what to do.
 *   2. message/delivery-status; when an address is non-ASCII or the
 *      original used SMTPUTF8, message/global-delivery-status (RFC 6533)
 *      and report-type=global-delivery-status (RFC 6522: the subtype of
 *      the second part).  Per recipient: Original-Recipient (from ORCPT,
 *      xtext decoded), Final-Recipient, Action: failed, Status,
 *      Remote-MTA, Diagnostic-Code, Last-Attempt-Date.
 *   3. text/rfc822-headers (message/global-headers) with the original
 *      header section (at most BOUNCE_HEADERS_MAX octets), or, when the
 *      sender asked for RET=FULL, message/rfc822 (message/global) with
 *      the whole original if it is at most BOUNCE_FULL_MAX octets and fit to
 *      be forwarded as is (CRLF lines of at most 998 octets, not
 *      BINARYMIME); otherwise the header section and a sentence saying so.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include "conf.h"
#include "delivery.h"
#include "envelope.h"
#include "strbuf.h"

#define BOUNCE_HEADERS_MAX	(64 * 1024)		/* original header section */
#define BOUNCE_FULL_MAX	(10 * 1024 * 1024)	/* RET=FULL: whole original */

/*
 * Does a recipient with these RCPT NOTIFY flags (struct env_rcpt.notify)
 * want a failure notice?  Unset (0) means yes (RFC 3461 4.1); NEVER no.
 */
int	bounce_notify_failure(int notify);

/*
 * Append the whole bounce message (header section and body) for the n
 * failed recipients of `orig` to `out`, one delivery result each (the
 * driver's result as the scheduler recorded it, delivery.h): per
 * recipient, rid names the address and ORCPT in orig->rcpts; status
 * ("5.1.1", "4.4.7", ...; anything not of the form c.d.d with c 4 or 5
 * becomes 5.0.0), remote (the host that answered, "" = none), text (with
 * smtp_diag: the remote reply, e.g. "550 5.1.1 <bob@x>: no such user",
 * line breaks of a multi-line reply allowed, as Diagnostic-Code: smtp;
 * else a local reason as Diagnostic-Code: X-Postern; "" = none) and when
 * (the Last-Attempt-Date, 0 = unknown).  `fd` is the original's spool file
 * (content = the first orig->msg_size octets from offset 0; read with
 * pread, the offset is not used).  `now` is the Date.
 * 0, or -1 with why (and out unchanged): orig has the null sender (a bounce
 * is never sent to <>, RFC 3464 2 / RFC 5321 4.5.5), n == 0, a rid that
 * is not one of orig's recipients, or the spool file cannot be read.
 */
int	bounce_build_bounce(struct strbuf *out, const struct conf *,
	    const struct envelope *orig, int fd, const struct delivery_result *,
	    size_t n, int64_t now, char *why, size_t whylen);

#endif
