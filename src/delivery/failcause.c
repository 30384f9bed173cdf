/*
 * failcause.c - the one table of SMTP failure causes and their fixes
 * (see failcause.h), and the classifiers from what smtp_client reports
 * to a cause.
 *
 * Public: failcause_name, failcause_fix, failcause_from_reply,
 * failcause_from_verify, failcause_from_tls_error, failcause_from_result.
 *
 * Templates use {host} {port} {hostport} {fetch} {trust_add} {issuer}
 * {address} {user} {detail}; {fetch} is the `postern cert fetch` command
 * that saves the server's chain (with --starttls unless the connection
 * was implicit TLS).  Reply texts are matched with fixed substrings of
 * the replies Postern sends (SPEC) and those of common relays (AWS SES:
 * "Email address is not verified", "Authentication Credentials
 * Invalid"); the code and enhanced code decide first.
 *
 * Limits: the text after a placeholder is the caller's (already printable:
 * smtp_reply sanitises replies, certificate names are printed with
 * strbuf_printable by the caller).  Threats: none (no I/O, bounded work).
 */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "failcause.h"
#include "util.h"

static const struct {
	enum failcause	 cause;
	const char	*name;
	const char	*fix;
} table[] = {
	{ FC_NONE, "none", "" },
	{ FC_NAME_NOT_FOUND, "name-not-found",
	    "the host name {host} does not resolve: check its spelling "
	    "(SMTP_HOST or --host) and this machine's DNS" },
	{ FC_CONN_REFUSED, "connection-refused",
	    "nothing listens on {host} port {port}: check the port (587 is "
	    "submission with STARTTLS, 465 implicit TLS with --tls, 25 "
	    "server to server) and that the mail service runs" },
	{ FC_CONN_TIMEOUT, "connection-timeout",
	    "no answer from {host} port {port}: a firewall drops the "
	    "traffic or the host is down; many networks block outgoing "
	    "port 25 - try 587 (STARTTLS) or 465 (--tls)" },
	{ FC_NET_UNREACHABLE, "network-unreachable",
	    "no route to {host}: check the address and this machine's "
	    "network ({detail})" },
	{ FC_CLOSED, "connection-closed",
	    "{host} closed the connection without a reply: it may limit "
	    "connections or refuse this client; ask its admin to look at "
	    "its log" },
	{ FC_NOT_SMTP, "not-smtp",
	    "{host} port {port} does not answer like an SMTP server "
	    "({detail}): check the port; port 465 needs --tls" },
	{ FC_NO_STARTTLS, "no-starttls",
	    "{host} does not offer STARTTLS on port {port}: use its "
	    "submission port (587) or implicit TLS (465 with --tls); "
	    "--plain sends in clear, never do that over a network you do "
	    "not control" },
	{ FC_STARTTLS_454, "starttls-unavailable",
	    "{host} offers STARTTLS but cannot start TLS now (454): its "
	    "certificate or TLS set-up is broken, or it is overloaded; "
	    "retry later and tell its admin" },
	{ FC_STARTTLS_REFUSED, "starttls-refused",
	    "{host} refused STARTTLS: use its submission port (587) or "
	    "implicit TLS (465 with --tls)" },
	{ FC_TLS_NOT_TLS, "tls-not-tls",
	    "{host} port {port} does not speak TLS at once: it is a plain "
	    "SMTP port - drop --tls (STARTTLS is used when offered) or use "
	    "port 465 for implicit TLS" },
	{ FC_TLS_UNTRUSTED, "tls-untrusted",
	    "the certificate of {host} was issued by \"{issuer}\", which is "
	    "not in the trust store: see what it presents with `{fetch}`, "
	    "then, if that CA is the one you expect, {trust_add} (or pass "
	    "--trust FILE with that CA)" },
	{ FC_TLS_MISSING_INTERMEDIATE, "tls-missing-intermediate",
	    "{host} sends its certificate without the intermediate CA "
	    "certificate of \"{issuer}\": its admin must configure the full "
	    "chain (certificate, then intermediates); meanwhile `postern "
	    "trust add INTERMEDIATE.pem --name NAME` with that intermediate "
	    "from the CA" },
	{ FC_TLS_SELF_SIGNED, "tls-self-signed",
	    "{host} presents a self-signed certificate (\"{issuer}\"): if "
	    "it is the server you mean, save it with `{fetch}` and trust it "
	    "with {trust_add} (or pass --trust FILE)" },
	{ FC_TLS_EXPIRED, "tls-expired",
	    "the certificate of {host} has expired ({detail}): its admin "
	    "must renew it; --insecure skips the check (tests only)" },
	{ FC_TLS_NOT_YET_VALID, "tls-not-yet-valid",
	    "the certificate of {host} is not valid yet ({detail}): check "
	    "this machine's clock, then the server's certificate" },
	{ FC_TLS_HOST_MISMATCH, "tls-host-mismatch",
	    "the certificate of the server does not name {host}: connect "
	    "with a name it carries (--host NAME, or --servername NAME when "
	    "you connect by address), or have it reissued with {host} in "
	    "its subjectAltName" },
	{ FC_TLS_DH_TOO_SMALL, "tls-dh-too-small",
	    "{host} offers a Diffie-Hellman key that is too small "
	    "({detail}): its admin must prefer ECDHE or use DH groups of "
	    "2048 bits or more (a cipher list without DHE)" },
	{ FC_TLS_PROTOCOL, "tls-protocol",
	    "{host} and this client share no TLS protocol version or "
	    "cipher ({detail}): the server needs TLS 1.2 or newer with ECDHE "
	    "ciphers; if you must talk to it, relax tls.min_protocol or "
	    "tls.ciphers in the file given with -c" },
	{ FC_TLS_HANDSHAKE, "tls-handshake",
	    "the TLS handshake with {host} failed ({detail}): `postern cert "
	    "fetch` shows what the server presents; its log says why" },
	{ FC_TLS_REQUIRED, "tls-required",
	    "{host} requires TLS before this command: drop --plain "
	    "(STARTTLS is used when offered), or use --tls on port 465" },
	{ FC_AUTH_REQUIRED, "auth-required",
	    "{host} wants authentication: set SMTP_USER and SMTP_PASSWORD "
	    "(or --user NAME with --password-env VAR or --password-file F)" },
	{ FC_AUTH_FAILED, "auth-failed",
	    "{host} refused the credentials of \"{user}\": check SMTP_USER "
	    "and SMTP_PASSWORD (for a cloud relay the SMTP credentials, not "
	    "the console login; for Postern `postern user passwd {user}` "
	    "makes a new password)" },
	{ FC_AUTH_TEMP, "auth-blocked",
	    "{host} blocks AUTH from this address for a while after failed "
	    "logins: wait, and fix SMTP_USER / SMTP_PASSWORD first" },
	{ FC_AUTH_NOT_OFFERED, "auth-not-offered",
	    "credentials were given but {host} offers no AUTH on port "
	    "{port}: use its submission port (587, STARTTLS) or 465 (--tls), "
	    "or unset SMTP_USER if it relays for this address" },
	{ FC_AUTH_NO_MECH, "auth-no-mechanism",
	    "{host} offers no AUTH mechanism this client has (PLAIN, LOGIN; "
	    "it offers {detail}): ask its admin to enable PLAIN or LOGIN "
	    "under TLS" },
	{ FC_AUTH_PLAINTEXT, "auth-needs-tls",
	    "credentials are never sent without TLS: let STARTTLS run (drop "
	    "--plain), use --tls on port 465, or give --plain explicitly to "
	    "send them in clear" },
	{ FC_ACCESS_DENIED, "access-denied",
	    "{host} refuses connections from this address: ask its admin to "
	    "allow this client (or use its submission port with "
	    "credentials)" },
	{ FC_RELAY_DENIED, "relay-denied",
	    "{host} does not relay for this client: authenticate (SMTP_USER "
	    "and SMTP_PASSWORD) or have this client's address added to its "
	    "relay list; for mail it hosts, check the recipient domain "
	    "{address}" },
	{ FC_SENDER_NOT_VERIFIED, "sender-not-verified",
	    "the sender {address} is not a verified identity of this "
	    "account: verify that domain or address with the relay (for a "
	    "cloud relay, in the same region), or send from one that is; "
	    "for Postern `postern user modify {user} --add-identity "
	    "{address}`" },
	{ FC_RCPT_UNKNOWN, "recipient-unknown",
	    "{host} has no mailbox {address}: check the recipient address" },
	{ FC_TOO_MANY_RCPTS, "too-many-recipients",
	    "{host} takes fewer recipients per message: split the list "
	    "over several messages" },
	{ FC_SIZE, "message-too-big",
	    "the message is bigger than {host} accepts{detail}: send smaller "
	    "attachments (a link instead) or have its limit raised" },
	{ FC_THROTTLED, "throttled",
	    "the sending quota of this account is reached: slow down "
	    "(fewer --concurrency, spread the sending) or have the quota "
	    "raised" },
	{ FC_NEEDS_8BITMIME, "needs-8bitmime",
	    "{host} takes 7-bit data only (no 8BITMIME): send the message "
	    "MIME-encoded (quoted-printable or base64; `postern send "
	    "--body-file` builds it so)" },
	{ FC_NEEDS_SMTPUTF8, "needs-smtputf8",
	    "{host} does not take non-ASCII addresses (no SMTPUTF8): use "
	    "an ASCII address (an alias) for this recipient or sender" },
	{ FC_TOO_MANY_CONNECTIONS, "too-many-connections",
	    "{host} allows fewer connections from this address: lower "
	    "--concurrency" },
	{ FC_SHUTDOWN, "service-unavailable",
	    "{host} is shutting down or not available (421): retry later" },
	{ FC_TEMPFAIL, "temporary-failure",
	    "a temporary refusal: retry later; the reply above says why" },
	{ FC_REJECTED, "rejected",
	    "{host} refused the message: the reply above says why; give it "
	    "to the server's admin if it is not clear" },
};

const char *
failcause_name(enum failcause fc)
{
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].cause == fc)
			return table[i].name;
	return "?";
}

/* The value of one placeholder, or NULL for an unknown name. */
static void
put_var(const char *name, size_t n, const struct failcause_ctx *x,
    struct strbuf *out)
{
#define IS(s)	(n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
#define OR(v, dflt)	((v) != NULL && (v)[0] != '\0' ? (v) : (dflt))
	const char *host = OR(x->host, "HOST");

	if (IS("host"))
		strbuf_puts(out, host);
	else if (IS("port")) {
		if (x->port > 0)
			strbuf_printf(out, "%d", x->port);
		else
			strbuf_puts(out, "PORT");
	} else if (IS("hostport")) {
		if (strchr(host, ':') != NULL)
			strbuf_printf(out, "[%s]", host);
		else
			strbuf_puts(out, host);
		if (x->port > 0)
			strbuf_printf(out, ":%d", x->port);
	} else if (IS("fetch")) {
		strbuf_puts(out, "postern cert fetch ");
		put_var("hostport", 8, x, out);
		strbuf_puts(out, x->implicit_tls ? " --out certs" :
		    " --starttls --out certs");
	} else if (IS("trust_add")) {
		if (x->trust_file != NULL && x->trust_file[0] != '\0')
			strbuf_printf(out, "`postern trust add certs/%s.pem "
			    "--name %s`", x->trust_file, x->trust_file);
		else
			strbuf_printf(out, "`postern trust add CA.pem --name "
			    "NAME` with CA.pem the certificate of \"%s\" as "
			    "published by that CA", OR(x->issuer,
			    "the issuer"));
	}
	else if (IS("issuer"))
		strbuf_puts(out, OR(x->issuer, "an unknown CA"));
	else if (IS("address"))
		strbuf_puts(out, OR(x->address, "ADDRESS"));
	else if (IS("user"))
		strbuf_puts(out, OR(x->user, "NAME"));
	else if (IS("detail")) {
		/* {detail} right after a word reads " (...)" in FC_SIZE */
		if (x->detail != NULL && x->detail[0] != '\0')
			strbuf_puts(out, x->detail);
		else if (out->len > 0 && out->s[out->len - 1] == '(')
			strbuf_puts(out, "no details");
	} else
		strbuf_add(out, name - 1, n + 2);	/* not ours: as is */
#undef IS
#undef OR
}

void
failcause_fix(enum failcause fc, const struct failcause_ctx *ctx,
    struct strbuf *out)
{
	static const struct failcause_ctx none;
	const char *t = NULL, *p, *q;
	size_t i;

	if (ctx == NULL)
		ctx = &none;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].cause == fc)
			t = table[i].fix;
	if (t == NULL)
		return;
	for (p = t; *p != '\0'; p = q + 1) {
		q = strchr(p, '{');
		if (q == NULL) {
			strbuf_puts(out, p);
			return;
		}
		strbuf_add(out, p, (size_t)(q - p));
		p = q + 1;
		if ((q = strchr(p, '}')) == NULL) {
			strbuf_puts(out, p - 1);
			return;
		}
		put_var(p, (size_t)(q - p), ctx, out);
	}
}

/* Case-insensitive substring (ASCII). */
static int
has(const char *text, const char *needle)
{
	size_t n = strlen(needle);

	for (; text != NULL && *text != '\0'; text++)
		if (ascii_ncasecmp(text, needle, n) == 0)
			return 1;
	return 0;
}

static int
step_is(const char *step, const char *name)
{
	return step != NULL && strcmp(step, name) == 0;
}

/* 5xx refusals that name a policy (RFC 3463 X.7.Y, and the texts). */
static enum failcause
from_policy(const char *step, int code, const char *enh, const char *text)
{
	if (code == 538 || strcmp(enh, "5.7.11") == 0 ||
	    has(text, "STARTTLS first") || has(text, "Must issue a STARTTLS") ||
	    has(text, "Encryption required"))
		return FC_TLS_REQUIRED;
	if (has(text, "not verified") || has(text, "identities failed"))
		return FC_SENDER_NOT_VERIFIED;
	if (has(text, "Throttling") || has(text, "quota") ||
	    has(text, "sending rate"))
		return FC_THROTTLED;
	if (code == 535 || strcmp(enh, "5.7.8") == 0 ||
	    has(text, "credentials invalid"))
		return FC_AUTH_FAILED;
	if (code == 530 || has(text, "Authentication required"))
		return FC_AUTH_REQUIRED;
	if (has(text, "relay") || (strcmp(enh, "5.7.1") == 0 &&
	    step_is(step, "RCPT")))
		return FC_RELAY_DENIED;
	if (step_is(step, "greeting"))
		return FC_ACCESS_DENIED;
	return FC_REJECTED;
}

enum failcause
failcause_from_reply(const char *step, int code, const char *enhanced,
    const char *text)
{
	const char *enh = enhanced != NULL ? enhanced : "";

	if (code < 400)
		return FC_NONE;
	if (step_is(step, "STARTTLS"))
		return code == 454 ? FC_STARTTLS_454 : FC_STARTTLS_REFUSED;
	if (code == 421)
		return has(text, "Too many connections") ||
		    strcmp(enh, "4.7.0") == 0 ? FC_TOO_MANY_CONNECTIONS :
		    FC_SHUTDOWN;
	if (code == 552 || strcmp(enh, "5.3.4") == 0 ||
	    strcmp(enh, "4.3.1") == 0 || has(text, "size exceeds"))
		return FC_SIZE;
	if (strcmp(enh, "4.5.3") == 0 || strcmp(enh, "5.5.3") == 0 ||
	    has(text, "Too many recipients"))
		return FC_TOO_MANY_RCPTS;
	if (code == 454 && step_is(step, "AUTH"))
		return has(text, "Throttling") ? FC_THROTTLED : FC_AUTH_TEMP;
	if (has(text, "Throttling") || has(text, "sending rate"))
		return FC_THROTTLED;
	if (code == 504 && step_is(step, "AUTH"))
		return FC_AUTH_NO_MECH;
	if (strcmp(enh, "5.1.1") == 0 || strcmp(enh, "5.1.0") == 0)
		return FC_RCPT_UNKNOWN;
	if (code / 100 == 5 && (strncmp(enh, "5.7.", 4) == 0 ||
	    code == 530 || code == 535 || code == 538 ||
	    step_is(step, "greeting") || has(text, "relay") ||
	    has(text, "not verified")))
		return from_policy(step, code, enh, text);
	if (code == 550 && has(text, "User unknown"))
		return FC_RCPT_UNKNOWN;
	return code / 100 == 4 ? FC_TEMPFAIL : FC_REJECTED;
}

enum failcause
failcause_from_verify(long vr)
{
	switch (vr) {
	case X509_V_OK:
		return FC_NONE;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return FC_TLS_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return FC_TLS_NOT_YET_VALID;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return FC_TLS_HOST_MISMATCH;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return FC_TLS_SELF_SIGNED;
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_CERT_UNTRUSTED:
		return FC_TLS_UNTRUSTED;
	default:
		return FC_TLS_HANDSHAKE;
	}
}

enum failcause
failcause_from_tls_error(unsigned long err, int implicit)
{
	if (ERR_GET_LIB(err) != ERR_LIB_SSL)
		return FC_TLS_HANDSHAKE;
	switch (ERR_GET_REASON(err)) {
	case SSL_R_DH_KEY_TOO_SMALL:
		return FC_TLS_DH_TOO_SMALL;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_NO_CIPHERS_AVAILABLE:
		return FC_TLS_PROTOCOL;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_HTTP_REQUEST:
		return implicit ? FC_TLS_NOT_TLS : FC_TLS_HANDSHAKE;
	default:
		return FC_TLS_HANDSHAKE;
	}
}

enum failcause
failcause_from_result(const struct smtp_client_result *r, int implicit)
{
	struct strbuf sb = STRBUF_INIT;
	enum failcause fc;
	size_t i;

	switch (r->err) {
	case SMTP_CLIENT_OK:
		return FC_NONE;
	case SMTP_CLIENT_EREPLY:
		if (r->reply == NULL)
			return FC_REJECTED;
		for (i = 0; i < r->reply->nlines; i++) {
			strbuf_puts(&sb, r->reply->lines[i]);
			strbuf_putc(&sb, ' ');
		}
		fc = failcause_from_reply(r->step, r->reply->code,
		    r->reply->enhanced, sb.s);
		strbuf_free(&sb);
		return fc;
	case SMTP_CLIENT_ECONNREFUSED:
		return FC_CONN_REFUSED;
	case SMTP_CLIENT_ECONNECT:
		return r->sys_errno == ETIMEDOUT ? FC_CONN_TIMEOUT :
		    FC_NET_UNREACHABLE;
	case SMTP_CLIENT_ETIMEOUT:
		return step_is(r->step, "connect") ? FC_CONN_TIMEOUT :
		    step_is(r->step, "TLS handshake") && implicit ?
		    FC_TLS_NOT_TLS : FC_CONN_TIMEOUT;
	case SMTP_CLIENT_ETLS:
		return failcause_from_tls_error(r->tls_error, implicit);
	case SMTP_CLIENT_EPROTO:
		return FC_NOT_SMTP;
	case SMTP_CLIENT_ECLOSED:
	case SMTP_CLIENT_EIO:
		return FC_CLOSED;
	case SMTP_CLIENT_EUSAGE:
		return FC_NONE;
	}
	return FC_NONE;
}
