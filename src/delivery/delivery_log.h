/*
 * delivery_log.h - the delivery lines of the mail log (postern-log(7)):
 * every line about a delivery attempt, its connection and its outcome is
 * written here and nowhere else, so their layout (an API that admins grep
 * and scripts parse) lives in one file.  Text and JSON carry the same
 * fields (log.h).
 *
 * Callers: the delivery drivers (deliver_local.c, dest_queue.c,
 * smtp_conn.c) and the scheduler (qmgr.c: expiry, bounces, alerts, the
 * end of a message).  `dcid` is the connection's DCID in decimal, or NULL
 * where no connection was made (local delivery, DNS failures, expiry).
 */
#ifndef POSTERN_DELIVERY_LOG_H
#define POSTERN_DELIVERY_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "strbuf.h"

/* Append a RID list, "[0, 1, 2]". */
void	delivery_log_rids(struct strbuf *, const size_t *rids, size_t n);

/* "Delivery start [DCID d ]MID m to RID [..][ local]" (NULL dcid: local). */
void	delivery_log_start(uint64_t mid, const char *dcid, const size_t *rids,
	    size_t n);
/* Results of one attempt, one line per outcome and text: "Message done
 * DCID d MID m to RID [..] response '...'" (local: "Message done MID m
 * to RID [..] local response '...'"), "Delayed: [DCID d ]MID m to RID
 * [..] - why", "Bounced: ...". */
void	delivery_log_results(uint64_t mid, const char *dcid,
	    const struct delivery_result *, size_t n);
/* "Message finished MID m done" */
void	delivery_log_finished(uint64_t mid);
/* "Bounce MID b for MID m to <sender>" */
void	delivery_log_bounce_sent(uint64_t bounce_mid, uint64_t mid,
	    const char *sender);
/* "Alert MID a TLS failure domain D host H: why"; alert_mid 0: the
 * "Alert not sent (no alerts.recipients)" line. */
void	delivery_log_alert(uint64_t alert_mid, const char *domain,
	    const char *host, const char *reason);

/* "New SMTP DCID d interface L address A port P" */
void	delivery_log_connected(const char *dcid, const char *local,
	    const char *address, const char *port);
/* "Connection Error: DCID d domain: D IP: A port: P details: S reason: R" */
void	delivery_log_conn_error(const char *dcid, const char *domain,
	    const char *address, const char *port, const char *details,
	    const char *reason);
/* "DCID d TLS success protocol P cipher C" */
void	delivery_log_tls_success(const char *dcid, const char *protocol,
	    const char *cipher);
/* "DCID d TLS failed: why" */
void	delivery_log_tls_failed(const char *dcid, const char *reason);
/* "DCID d TLS failed: why; delivering in clear (destination D tls M)":
 * STARTTLS refused before its 220 under a preferred mode. */
void	delivery_log_tls_clear(const char *dcid, const char *reason,
	    const char *domain, const char *mode);
/* "DCID d TLS failed: why; possible active attack: ..." (Warning): a
 * failure after the server's 220 to STARTTLS under a preferred mode. */
void	delivery_log_tls_attack(const char *dcid, const char *reason,
	    const char *domain, const char *mode);
/* "DCID d TLS certificate of H not verified: why; delivering anyway
 * (destination D tls preferred-verify)" */
void	delivery_log_tls_unverified(const char *dcid, const char *host,
	    const char *reason, const char *domain);

#endif
