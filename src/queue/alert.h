/*
 * alert.h - administrator alert mails (queue manager: TLS failures on
 * destinations that require TLS).
 */
#ifndef POSTERN_ALERT_H
#define POSTERN_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "strbuf.h"

/*
 * Append a whole alert message (header and body, CRLF line ends) from
 * alerts.from to alerts.recipients about a TLS failure delivering to
 * `domain` (host may be NULL or "" when not known) for `reason`, dated
 * `now`.  0, or -1 with why (no alerts.recipients; no random numbers) and
 * nothing appended.
 */
int	alert_build(struct strbuf *out, const struct conf *,
	    const char *domain, const char *host, const char *reason,
	    int64_t now, char *why, size_t whylen);

#endif
