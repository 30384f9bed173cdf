/*
 * alert.c - the mail an administrator gets when delivery to a destination
 * that requires TLS fails for a TLS reason (see alert.h).  The text names
 * the domain, host, reason and policy (the destinations entry the router
 * finds for the domain), and the commands that find and fix the cause
 * (queue list, cert fetch + trust add, probe).
 *
 * Public: alert_build.  Remote text (the reason) is folded and cleaned of
 * control characters before it enters the mail.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "mailfmt.h"
#include "route.h"
#include "util.h"

int
alert_build(struct strbuf *out, const struct conf *conf,
    const char *domain, const char *host, const char *reason, int64_t now,
    char *why, size_t whylen)
{
	const struct conf_destination *dest;
	struct strbuf s = STRBUF_INIT, body = STRBUF_INIT;
	char date[64], iso[32], *dom, *hst;
	struct tm tm;
	time_t tt = (time_t)now;
	size_t i, start = out->len;
	int r = -1;

	if (conf->nalert_recipients == 0) {
		bsnprintf(why, whylen, "no alert recipients configured "
		    "(alerts.recipients)");
		return -1;
	}
	dom = mailfmt_cleaned(domain != NULL ? domain : "", 0);
	/* Without a host name the commands below name the domain. */
	hst = mailfmt_cleaned(host != NULL && host[0] != '\0' ? host : dom, 0);
	mailfmt_date(now, date, sizeof(date));
	gmtime_r(&tt, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);

	strbuf_puts(&s, "Postern <");
	mailfmt_clean(&s, conf->alert_from, strlen(conf->alert_from), 1);
	strbuf_puts(&s, ">");
	mailfmt_header(out, "From", s.s, 1);
	strbuf_reset(&s);
	for (i = 0; i < conf->nalert_recipients; i++) {
		strbuf_puts(&s, i ? ", <" : "<");
		mailfmt_clean(&s, conf->alert_recipients[i],
		    strlen(conf->alert_recipients[i]), 1);
		strbuf_puts(&s, ">");
	}
	mailfmt_header(out, "To", s.s, 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "Postern alert: TLS delivery to %s failed", dom);
	mailfmt_header(out, "Subject", s.s, 0);
	strbuf_printf(out, "Date: %s\r\n", date);
	if (mailfmt_message_id(out, conf->hostname) == -1) {
		bsnprintf(why, whylen, "no random numbers for the Message-ID");
		strbuf_truncate(out, start);
		goto done;
	}
	strbuf_puts(out, "Auto-Submitted: auto-generated\r\n");
	strbuf_puts(out, "MIME-Version: 1.0\r\n");
	strbuf_puts(out, "Content-Type: text/plain; charset=utf-8\r\n");

	strbuf_reset(&s);
	strbuf_printf(&s, "Postern on %s could not deliver mail for %s over "
	    "TLS.", conf->hostname, dom);
	mailfmt_para(&body, s.s);
	strbuf_puts(&body, "\r\n");
	mailfmt_item(&body, "Domain:", dom, 0);
	mailfmt_item(&body, "Host:", host != NULL && host[0] != '\0' ? hst :
	    "(not known)", 0);
	mailfmt_item(&body, "Reason:", reason != NULL && reason[0] != '\0' ?
	    reason : "(none given)", 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "%s (%s)", date, iso);
	mailfmt_item(&body, "Time:", s.s, 0);
	dest = route_destination(conf, dom);
	strbuf_reset(&s);
	if (dest != NULL)
		strbuf_printf(&s, "tls = \"%s\" (destinations entry \"%s\")",
		    conf_dest_tls_name(dest->tls), dest->domain);
	else
		strbuf_printf(&s, "no entry in destinations (neither \"%s\" "
		    "nor \"*\")", dom);
	mailfmt_item(&body, "TLS policy:", s.s, 0);
	strbuf_puts(&body, "\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "Messages for %s stay in the queue and are retried "
	    "until delivery.max_queue_lifetime (%d seconds) runs out.  To see "
	    "them with each recipient's last error:", dom,
	    conf->max_queue_lifetime);
	mailfmt_para(&body, s.s);
	mailfmt_folded(&body, "       ", "       ", "postern queue list",
	    MAILFMT_LINE_MAX);
	strbuf_puts(&body, "\r\nWhat to check:\r\n\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "1. The TLS policy for the domain: the tls setting "
	    "of its entry in destinations (or of the \"*\" entry) in %s.  "
	    "required-verify and preferred-verify need a certificate chain "
	    "that verifies against the trust store and names the host; "
	    "required needs the host to offer STARTTLS.", conf->path);
	mailfmt_folded(&body, "", "   ", s.s, 72);
	strbuf_puts(&body, "\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "2. The trust store: if %s has a certificate from a "
	    "private or corporate CA, save the certificates it presents and "
	    "add its root (`postern trust list` shows what is trusted):", hst);
	mailfmt_folded(&body, "", "   ", s.s, 72);
	strbuf_reset(&s);
	strbuf_printf(&s, "postern cert fetch %s --starttls --out DIR", hst);
	mailfmt_folded(&body, "       ", "       ", s.s, MAILFMT_LINE_MAX);
	mailfmt_folded(&body, "       ", "       ",
	    "postern trust add DIR/ROOT.pem --name NAME", MAILFMT_LINE_MAX);
	strbuf_puts(&body, "\r\n");
	mailfmt_folded(&body, "", "   ", "3. The connection itself, step by step "
	    "(STARTTLS, protocol and cipher, certificate chain, verification, "
	    "host name), with what to fix:", 72);
	strbuf_reset(&s);
	strbuf_printf(&s, "postern probe %s --starttls", hst);
	mailfmt_folded(&body, "       ", "       ", s.s, MAILFMT_LINE_MAX);
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	    mem_has_8bit(body.s, body.len) ? "8bit" : "7bit");
	strbuf_add(out, body.s, body.len);
	r = 0;
done:
	free(dom);
	free(hst);
	strbuf_free(&s);
	strbuf_free(&body);
	return r;
}
