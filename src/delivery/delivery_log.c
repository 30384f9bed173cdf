/*
 * delivery_log.c - the delivery lines of the mail log (see
 * delivery_log.h), in the shape of Postfix's log_adhoc.c: callers hand
 * over what happened, this file alone decides how it reads.
 *
 * Public: delivery_log_rids, delivery_log_start, delivery_log_results,
 * delivery_log_finished, delivery_log_bounce_sent, delivery_log_alert,
 * delivery_log_connected, delivery_log_conn_error,
 * delivery_log_tls_success, delivery_log_tls_failed,
 * delivery_log_tls_clear, delivery_log_tls_attack,
 * delivery_log_tls_unverified.
 *
 * A deferred or bounced result whose cause is in the table of causes
 * (failcause.h) gets a "Fix:" line after its Delayed/Bounced line, with
 * the fix as delivery words it (the Delayed/Bounced line itself is as it
 * always was).
 *
 * Remote text (replies, host names) reaches mlog() as values, which it
 * cleans of control characters; no value is ever used as a template.
 */
#include <stdlib.h>
#include <string.h>

#include "delivery_log.h"
#include "failcause.h"
#include "log.h"
#include "util.h"

void
delivery_log_rids(struct strbuf *sb, const size_t *rids, size_t n)
{
	size_t i;

	strbuf_putc(sb, '[');
	for (i = 0; i < n; i++)
		strbuf_printf(sb, "%s%zu", i ? ", " : "", rids[i]);
	strbuf_putc(sb, ']');
}

static void
mid_text(uint64_t mid, char *buf, size_t len)
{
	bsnprintf(buf, len, "%llu", (unsigned long long)mid);
}

void
delivery_log_start(uint64_t mid, const char *dcid, const size_t *rids,
    size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	char m[32];

	mid_text(mid, m, sizeof(m));
	delivery_log_rids(&sb, rids, n);
	if (dcid != NULL)
		mlog(LOG_LVL_INFO, "delivery_start", "Delivery start DCID "
		    "{dcid} MID {mid} to RID {rids}", "dcid", dcid, "mid", m,
		    "rids", sb.s, NULL);
	else
		mlog(LOG_LVL_INFO, "delivery_start", "Delivery start MID {mid} "
		    "to RID {rids} local", "mid", m, "rids", sb.s, NULL);
	strbuf_free(&sb);
}

/* "Fix: [DCID d ]MID m to RID [..] - <cause>: <fix>" */
static void
log_fix(const char *m, const char *dcid, const struct delivery_result *r,
    const char *rids)
{
	struct failcause_ctx x;
	struct strbuf fix = STRBUF_INIT;

	memset(&x, 0, sizeof(x));
	x.host = r->cause_host[0] != '\0' ? r->cause_host : NULL;
	x.port = r->cause_port;
	x.who = FC_FOR_DELIVERY;
	failcause_fix(r->cause, &x, &fix);
	if (fix.len > 0)
		mlog(LOG_LVL_INFO, "fix", dcid != NULL ? "Fix: DCID {dcid} MID "
		    "{mid} to RID {rids} - {cause}: {fix}" : "Fix: MID {mid} to "
		    "RID {rids} - {cause}: {fix}", "mid", m, "rids", rids,
		    "cause", failcause_name(r->cause), "fix", fix.s,
		    dcid ? "dcid" : NULL, dcid, NULL);
	strbuf_free(&fix);
}

/* One line for the recipients in `rids` that share one outcome and text. */
static void
log_outcome(const char *m, const char *dcid, const struct delivery_result *r,
    const char *rids)
{
	static const char *const tmpl[2][2] = {
		{ "Delayed: MID {mid} to RID {rids} - {text}",
		  "Delayed: DCID {dcid} MID {mid} to RID {rids} - {text}" },
		{ "Bounced: MID {mid} to RID {rids} - {text}",
		  "Bounced: DCID {dcid} MID {mid} to RID {rids} - {text}" },
	};
	int b = r->outcome == DELIVERY_BOUNCED;

	if (r->outcome == DELIVERY_DELIVERED && dcid != NULL)
		mlog(LOG_LVL_INFO, "message_done", "Message done DCID {dcid} "
		    "MID {mid} to RID {rids} response '{text}'", "dcid", dcid,
		    "mid", m, "rids", rids, "text", r->text, NULL);
	else if (r->outcome == DELIVERY_DELIVERED)
		mlog(LOG_LVL_INFO, "message_done", "Message done MID {mid} to "
		    "RID {rids} local response '{text}'", "mid", m, "rids",
		    rids, "text", r->text, NULL);
	else {
		/* without a connection the list of pairs ends early */
		mlog(LOG_LVL_WARNING, b ? "bounced" : "delayed",
		    tmpl[b][dcid != NULL], "mid", m, "rids", rids, "text",
		    r->text, dcid ? "dcid" : NULL, dcid, NULL);
		if (r->cause != FC_NONE)
			log_fix(m, dcid, r, rids);
	}
}

void
delivery_log_results(uint64_t mid, const char *dcid,
    const struct delivery_result *res, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	char m[32];
	char *done = xcalloc(n ? n : 1, 1);
	size_t i, j;

	mid_text(mid, m, sizeof(m));
	for (i = 0; i < n; i++) {
		if (done[i])
			continue;
		strbuf_reset(&sb);
		strbuf_putc(&sb, '[');
		for (j = i; j < n; j++)
			if (!done[j] && res[j].outcome == res[i].outcome &&
			    strcmp(res[j].text, res[i].text) == 0) {
				strbuf_printf(&sb, "%s%zu", j == i ? "" : ", ",
				    res[j].rid);
				done[j] = 1;
			}
		strbuf_putc(&sb, ']');
		log_outcome(m, dcid, &res[i], sb.s);
	}
	free(done);
	strbuf_free(&sb);
}

void
delivery_log_finished(uint64_t mid)
{
	char m[32];

	mid_text(mid, m, sizeof(m));
	mlog(LOG_LVL_INFO, "message_finished", "Message finished MID {mid} "
	    "done", "mid", m, NULL);
}

void
delivery_log_bounce_sent(uint64_t bounce_mid, uint64_t mid,
    const char *sender)
{
	char m[32], b[32];

	mid_text(mid, m, sizeof(m));
	mid_text(bounce_mid, b, sizeof(b));
	mlog(LOG_LVL_INFO, "bounce", "Bounce MID {bmid} for MID {mid} to "
	    "<{to}>", "bmid", b, "mid", m, "to", sender, NULL);
}

void
delivery_log_alert(uint64_t alert_mid, const char *domain, const char *host,
    const char *reason)
{
	char a[32];

	if (alert_mid == 0) {
		mlog(LOG_LVL_WARNING, "alert", "Alert not sent (no "
		    "alerts.recipients): TLS failure domain {domain} host "
		    "{host}: {reason}", "domain", domain, "host", host,
		    "reason", reason, NULL);
		return;
	}
	mid_text(alert_mid, a, sizeof(a));
	mlog(LOG_LVL_WARNING, "alert", "Alert MID {mid} TLS failure domain "
	    "{domain} host {host}: {reason}", "mid", a, "domain", domain,
	    "host", host, "reason", reason, NULL);
}

void
delivery_log_connected(const char *dcid, const char *local,
    const char *address, const char *port)
{
	mlog(LOG_LVL_INFO, "new_dcid", "New SMTP DCID {dcid} interface "
	    "{interface} address {address} port {port}", "dcid", dcid,
	    "interface", local, "address", address, "port", port, NULL);
}

void
delivery_log_conn_error(const char *dcid, const char *domain,
    const char *address, const char *port, const char *details,
    const char *reason)
{
	mlog(LOG_LVL_WARNING, "connection_error", "Connection Error: DCID "
	    "{dcid} domain: {domain} IP: {ip} port: {port} details: {details} "
	    "reason: {reason}", "dcid", dcid, "domain", domain, "ip", address,
	    "port", port, "details", details, "reason", reason, NULL);
}

void
delivery_log_tls_success(const char *dcid, const char *protocol,
    const char *cipher)
{
	mlog(LOG_LVL_INFO, "tls_success", "DCID {dcid} TLS success protocol "
	    "{protocol} cipher {cipher}", "dcid", dcid, "protocol", protocol,
	    "cipher", cipher, NULL);
}

void
delivery_log_tls_failed(const char *dcid, const char *reason)
{
	mlog(LOG_LVL_WARNING, "tls_failed", "DCID {dcid} TLS failed: {reason}",
	    "dcid", dcid, "reason", reason, NULL);
}

void
delivery_log_tls_clear(const char *dcid, const char *reason,
    const char *domain, const char *mode)
{
	mlog(LOG_LVL_WARNING, "tls_failed", "DCID {dcid} TLS failed: "
	    "{reason}; delivering in clear (destination {domain} tls {mode})",
	    "dcid", dcid, "reason", reason, "domain", domain, "mode", mode,
	    NULL);
}

void
delivery_log_tls_attack(const char *dcid, const char *reason,
    const char *domain, const char *mode)
{
	mlog(LOG_LVL_WARNING, "tls_attack", "DCID {dcid} TLS failed: "
	    "{reason}; possible active attack: the failure came after the "
	    "server's 220 to STARTTLS, so the message is deferred and never "
	    "sent in clear (destination {domain} tls {mode})", "dcid", dcid,
	    "reason", reason, "domain", domain, "mode", mode, NULL);
}

void
delivery_log_tls_unverified(const char *dcid, const char *host,
    const char *reason, const char *domain)
{
	mlog(LOG_LVL_WARNING, "tls_unverified", "DCID {dcid} TLS certificate "
	    "of {host} not verified: {reason}; delivering anyway (destination "
	    "{domain} tls preferred-verify)", "dcid", dcid, "host", host,
	    "reason", reason, "domain", domain, NULL);
}
