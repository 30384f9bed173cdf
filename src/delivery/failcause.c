/*
 * failcause.c - the one table of SMTP failure causes and their fixes
 * (see failcause.h), and the classifiers from what smtp_client reports
 * to a cause.
 *
 * Public: failcause_name, failcause_by_name, failcause_fix,
 * failcause_from_reply, failcause_of_reply, failcause_from_verify,
 * failcause_from_tls_error, failcause_from_result.
 *
 * Templates use {host} {port} {hostport} {fetch} {trust_add} {issuer}
 * {issued_by} {issuer_q} {issuer_paren} {address} {user} {user_of}
 * {detail}, and
 * {v_...} words of the vocabulary table,
 * whose text depends on ctx->who (send, probe, delivery: an option there,
 * a configuration key here); {fetch} is the `postern cert fetch` command
 * that saves the server's chain (with --starttls unless the connection
 * was implicit TLS).  Reply texts are matched with fixed substrings of
 * the replies Postern sends (postern-log(7)) and those of common relays (AWS SES:
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
	    "the name {host} does not resolve: check its spelling "
	    "({v_name}) and this machine's DNS" },
	{ FC_CONN_REFUSED, "connection-refused",
	    "nothing listens on {host} port {port}: check the port "
	    "({v_ports}) and that the mail service runs" },
	{ FC_CONN_TIMEOUT, "connection-timeout",
	    "no answer from {host} port {port}: a firewall drops the "
	    "traffic or the host is down; {v_port25}" },
	{ FC_NET_UNREACHABLE, "network-unreachable",
	    "no route to {host}: check the address and this machine's "
	    "network ({detail})" },
	{ FC_CLOSED, "connection-closed",
	    "{host} closed the connection without a reply: it may limit "
	    "connections or refuse this client; ask its admin to look at "
	    "its log" },
	{ FC_NOT_SMTP, "not-smtp",
	    "{host} port {port} does not answer like an SMTP server "
	    "({detail}): check the port; {v_465}" },
	{ FC_NO_STARTTLS, "no-starttls",
	    "{host} does not offer STARTTLS on port {port}: {v_nostarttls}" },
	{ FC_STARTTLS_454, "starttls-unavailable",
	    "{host} offers STARTTLS but cannot start TLS now (454): its "
	    "certificate or TLS set-up is broken, or it is overloaded; "
	    "retry later and tell its admin" },
	{ FC_STARTTLS_REFUSED, "starttls-refused",
	    "{host} refused STARTTLS: {v_starttls_refused}" },
	{ FC_TLS_NOT_TLS, "tls-not-tls",
	    "{host} port {port} does not speak TLS at once: it is a plain "
	    "SMTP port - {v_not_tls}" },
	{ FC_TLS_UNTRUSTED, "tls-untrusted",
	    "the certificate of {host} was issued by {issued_by} not in the "
	    "trust store: see what it presents with `{fetch}`, "
	    "then, if that CA is the one you expect, {trust_add}{v_trust}" },
	{ FC_TLS_MISSING_INTERMEDIATE, "tls-missing-intermediate",
	    "{host} sends its certificate without the intermediate CA "
	    "certificate of {issuer_q}: its admin must configure the full "
	    "chain (certificate, then intermediates); meanwhile `postern "
	    "trust add INTERMEDIATE.pem --name NAME` with that intermediate "
	    "from the CA" },
	{ FC_TLS_SELF_SIGNED, "tls-self-signed",
	    "{host} presents a self-signed certificate{issuer_paren}: if "
	    "it is the server you mean, save it with `{fetch}` and trust it "
	    "with {trust_add}{v_trust}" },
	{ FC_TLS_EXPIRED, "tls-expired",
	    "the certificate of {host} has expired ({detail}): its admin "
	    "must renew it{v_insecure}" },
	{ FC_TLS_NOT_YET_VALID, "tls-not-yet-valid",
	    "the certificate of {host} is not valid yet ({detail}): check "
	    "this machine's clock, then the server's certificate" },
	{ FC_TLS_HOST_MISMATCH, "tls-host-mismatch",
	    "the certificate of the server does not name {host} ({detail}): "
	    "{v_mismatch}, or have it reissued with {host} in its "
	    "subjectAltName" },
	{ FC_TLS_DH_TOO_SMALL, "tls-dh-too-small",
	    "{host} offers a Diffie-Hellman key that is too small "
	    "({detail}): on its side, a cipher list without DHE (ECDHE "
	    "only) or DH parameters of 2048 bits or more; on this side, "
	    "tls.ciphers without DHE (the default "
	    "\"ECDHE+AESGCM:ECDHE+CHACHA20\") {v_conf}, so that ECDHE is "
	    "chosen where the server has it" },
	{ FC_TLS_PROTOCOL, "tls-protocol",
	    "{host} and this client share no TLS protocol version or "
	    "cipher ({detail}): the server needs TLS 1.2 or newer with ECDHE "
	    "ciphers; if you must talk to it, relax tls.min_protocol or "
	    "tls.ciphers {v_conf}" },
	{ FC_TLS_HANDSHAKE, "tls-handshake",
	    "the TLS handshake with {host} failed ({detail}): `postern cert "
	    "fetch` shows what the server presents; its log says why" },
	{ FC_TLS_REQUIRED, "tls-required",
	    "{host} requires TLS before this command: {v_tls_first}" },
	{ FC_AUTH_REQUIRED, "auth-required",
	    "{host} wants authentication: {v_creds_give}" },
	{ FC_AUTH_FAILED, "auth-failed",
	    "{host} refused the credentials{user_of}: check {v_creds} "
	    "(for a cloud relay the SMTP credentials, not the console login; "
	    "AWS-style relays issue them per region, so credentials of "
	    "another region's endpoint fail; for Postern `postern user "
	    "passwd {user}` makes a new password)" },
	{ FC_AUTH_TEMP, "auth-blocked",
	    "{host} blocks AUTH from this address for a while after failed "
	    "logins: wait, and fix {v_creds} first" },
	{ FC_AUTH_NOT_OFFERED, "auth-not-offered",
	    "credentials were given but {host} offers no AUTH on port "
	    "{port}: {v_no_auth}" },
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
	    "{host} does not relay for this client: authenticate "
	    "({v_creds}) or have this client's address added to its relay "
	    "list; for mail it hosts, check the recipient domain "
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
	    "{host} takes fewer recipients per message: {v_split}" },
	{ FC_SIZE, "message-too-big",
	    "the message is bigger than {host} accepts{detail}: send smaller "
	    "attachments (a link instead) or have its limit raised" },
	{ FC_THROTTLED, "throttled",
	    "the sending quota of this account is reached: {v_slow} or have "
	    "the quota raised" },
	{ FC_NEEDS_8BITMIME, "needs-8bitmime",
	    "{host} takes 7-bit data only (no 8BITMIME): send the message "
	    "MIME-encoded (quoted-printable or base64; `postern send "
	    "--body-file` builds it so)" },
	{ FC_NEEDS_SMTPUTF8, "needs-smtputf8",
	    "{host} does not take non-ASCII addresses (no SMTPUTF8): use "
	    "an ASCII address (an alias) for this recipient or sender" },
	{ FC_TOO_MANY_CONNECTIONS, "too-many-connections",
	    "{host} allows fewer connections from this address: "
	    "{v_fewer_conns}" },
	{ FC_SHUTDOWN, "service-unavailable",
	    "{host} is shutting down or not available (421): {v_later}" },
	{ FC_TEMPFAIL, "temporary-failure",
	    "a temporary refusal: {v_later}; {v_why}" },
	{ FC_REJECTED, "rejected",
	    "{host} refused the message: {v_why}; give it to the server's "
	    "admin if it is not clear" },
	{ FC_NO_BANNER, "no-banner",
	    "{host} port {port} took the connection but sent no banner "
	    "({detail}): an implicit-TLS port ({v_465}), a firewall or "
	    "proxy that accepts and stalls, or an overloaded server" },
	{ FC_SLOW_BANNER, "slow-banner",
	    "{host} sent its banner after {detail}: clients that give up "
	    "sooner lose mail; if the delay is deliberate (a greeting "
	    "delay against spam bots) keep it under 30 s, else check the "
	    "server's reverse DNS lookups and load" },
	{ FC_NO_ESMTP, "no-esmtp",
	    "{host} refuses EHLO and speaks old SMTP (HELO) only: no "
	    "STARTTLS, AUTH, SIZE or 8BITMIME is possible; ask its admin to "
	    "enable ESMTP" },
	{ FC_AUTH_BEFORE_TLS, "auth-before-tls",
	    "{host} offers AUTH before TLS, so a client may send its "
	    "password in clear: its admin should offer AUTH only after "
	    "STARTTLS (Postfix smtpd_tls_auth_only = yes; Postern does so "
	    "unless a policy sets allow_plaintext_auth)" },
	{ FC_TLS_OLD_PROTOCOL, "tls-old-protocol",
	    "{host} still accepts {detail}, which RFC 8996 retires: its "
	    "admin should accept TLS 1.2 and newer only (Postfix "
	    "smtpd_tls_protocols = >=TLSv1.2, Postern tls.min_protocol = "
	    "\"TLSv1.2\", the default)" },
	{ FC_TLS_WEAK_KEY, "tls-weak-key",
	    "the certificate of {host} has a weak key ({detail}): its admin "
	    "must replace it with one of an RSA key of 2048 bits or more or "
	    "an EC key" },
	{ FC_TLS_SHA1, "tls-sha1",
	    "a certificate {host} sends is signed with SHA-1 ({detail}), "
	    "which verifiers refuse more and more: its admin must have it "
	    "reissued with SHA-256" },
	{ FC_TLS_EXPIRING, "tls-expiring",
	    "a certificate {host} sends expires soon ({detail}): its admin "
	    "must renew it before then (automatic renewal, e.g. ACME, "
	    "avoids this)" },
	{ FC_TLS_CHAIN_ORDER, "tls-chain-order",
	    "{host} sends its certificate chain in the wrong order "
	    "({detail}): its admin must put the server certificate first, "
	    "then each intermediate followed by the one that issued it "
	    "(strict clients refuse other orders)" },
	{ FC_STARTTLS_INJECTION, "starttls-injection",
	    "{host} runs commands pipelined after STARTTLS as if they came "
	    "through TLS (CVE-2011-0411 class: a man in the middle can "
	    "inject commands into the encrypted session): its admin must "
	    "update the MTA so that it discards plaintext buffered with "
	    "STARTTLS" },
	{ FC_POLICY_CLEAR, "policy-clear",
	    "mail for {address} would go in clear ({detail}): have the "
	    "server offer STARTTLS, or set the destination's tls to "
	    "\"required\" if clear text is not acceptable (mail then waits "
	    "instead)" },
	{ FC_POLICY_DEFER, "policy-defer",
	    "Postern would defer mail for {address} ({detail}): fix what "
	    "failed above on the server's side, or relax the tls of its "
	    "destinations entry in the configuration if you accept the "
	    "risk" },
};

/*
 * Words that depend on the reader (enum failcause_for): what an option
 * of `postern send`, of `postern probe`, or a setting of the delivery is
 * called.  {v_...} in a fix names one of these.
 */
static const struct {
	const char	*name;
	const char	*text[3];	/* send, probe, delivery */
} vocab[] = {
	{ "v_name", { "SMTP_HOST or --host", "HOST or --mx DOMAIN",
	    "the recipient domain, or the route's hosts" } },
	{ "v_ports", { "587 is submission with STARTTLS, 465 implicit TLS "
	    "with --tls, 25 server to server", "587 is submission with "
	    "STARTTLS, 465 implicit TLS with --tls, 25 server to server",
	    "25 for MX hosts; a route names its own as \"[host]:port\", 465 "
	    "with tls = \"implicit\"" } },
	{ "v_port25", { "many networks block outgoing port 25 - try 587 "
	    "(STARTTLS) or 465 (--tls)", "many providers block outgoing "
	    "port 25 - ask yours, or try 587 (STARTTLS) or 465 (--tls)",
	    "many providers block outgoing port 25: ask yours to open it, "
	    "or relay through a smart host (a \"*\" route with hosts and "
	    "auth_user)" } },
	{ "v_465", { "port 465 needs --tls", "port 465 needs --tls",
	    "port 465 needs tls = \"implicit\" in the route" } },
	{ "v_nostarttls", { "use its submission port (587) or implicit TLS "
	    "(465 with --tls); --plain sends in clear, never do that over a "
	    "network you do not control", "mail to it goes in clear, or not "
	    "at all where TLS is required; its admin should enable STARTTLS "
	    "(for submission, use port 587, or 465 with --tls)", "its admin "
	    "must enable STARTTLS; until then mail for this destination "
	    "waits (tls required) unless its destinations entry allows "
	    "clear text (preferred)" } },
	{ "v_starttls_refused", { "use its submission port (587) or "
	    "implicit TLS (465 with --tls)", "its TLS set-up is broken: tell "
	    "its admin (for submission, try 587, or 465 with --tls)", "its "
	    "TLS set-up is broken: tell its admin; mail waits where TLS is "
	    "required" } },
	{ "v_not_tls", { "drop --tls (STARTTLS is used when offered) or use "
	    "port 465 for implicit TLS", "drop --tls (STARTTLS is used when "
	    "offered) or use port 465 for implicit TLS", "set the route's "
	    "tls to \"starttls\", or use its implicit-TLS port (465)" } },
	{ "v_trust", { " (or pass --trust FILE with that CA)", " (or pass "
	    "--trust FILE with that CA)", "" } },
	{ "v_insecure", { "; --insecure skips the check (tests only)", "",
	    "" } },
	{ "v_mismatch", { "connect with a name it carries (--host NAME, or "
	    "--servername NAME when you connect by address)", "probe a name "
	    "it carries (or give one with --servername NAME when you "
	    "connect by address)", "the MX record (or the route's host) must "
	    "name a host the certificate carries" } },
	{ "v_conf", { "in the file given with -c", "in the file given with "
	    "-c", "in the configuration (then reload)" } },
	{ "v_tls_first", { "drop --plain (STARTTLS is used when offered), "
	    "or use --tls on port 465", "drop --plain (STARTTLS is used when "
	    "offered), or use --tls on port 465", "the destination's tls "
	    "(or the route's) must not be \"none\"" } },
	{ "v_creds_give", { "set SMTP_USER and SMTP_PASSWORD (or --user "
	    "NAME with --password-env VAR or --password-file F)", "give "
	    "--user NAME with --password-env VAR or --password-file F",
	    "give the route auth_user and auth_password_file" } },
	{ "v_creds", { "SMTP_USER and SMTP_PASSWORD", "--user and the "
	    "password", "the route's auth_user and auth_password_file" } },
	{ "v_no_auth", { "use its submission port (587, STARTTLS) or 465 "
	    "(--tls), or unset SMTP_USER if it relays for this address",
	    "use its submission port (587, STARTTLS) or 465 (--tls), or drop "
	    "--user if it relays for this address", "drop auth_user from "
	    "the route if it relays for this address, or route to its "
	    "submission port" } },
	{ "v_split", { "split the list over several messages", "split the "
	    "list over several messages", "Postern sends the rest in "
	    "further transactions by itself" } },
	{ "v_slow", { "slow down (fewer --concurrency, spread the sending)",
	    "slow down (spread the sending)", "slow down (a lower "
	    "max_connections in its destinations entry)" } },
	{ "v_fewer_conns", { "lower --concurrency", "wait until other "
	    "connections from this address have ended", "lower "
	    "max_connections in its destinations entry" } },
	{ "v_later", { "retry later", "retry later", "Postern retries by "
	    "itself (delivery.retry_min up to retry_max)" } },
	{ "v_why", { "the reply above says why", "the reply above says why",
	    "the last error says why" } },
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

/* The cause of a name. */
enum failcause
failcause_by_name(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].name, name) == 0)
			return table[i].cause;
	return FC_NONE;
}

/* A word of the vocabulary for this reader; 0, or -1 if not one. */
static int
put_word(const char *name, size_t n, enum failcause_for who,
    struct strbuf *out)
{
	size_t i;

	if ((unsigned)who > FC_FOR_DELIVERY)
		who = FC_FOR_SEND;
	for (i = 0; i < sizeof(vocab) / sizeof(vocab[0]); i++)
		if (strlen(vocab[i].name) == n &&
		    memcmp(vocab[i].name, name, n) == 0) {
			strbuf_puts(out, vocab[i].text[who]);
			return 0;
		}
	return -1;
}

/* The issuer, when known, quoted in the words around it:
 * {issued_by}    "X", which is  |  a CA that is
 * {issuer_q}     "X"            |  its issuer
 * {issuer_paren}  ("X")         |  (nothing) */
static void
put_issuer(const char *name, size_t n, const struct failcause_ctx *x,
    struct strbuf *out)
{
	int known = x->issuer != NULL && x->issuer[0] != '\0';

	if (n == 9 && memcmp(name, "issued_by", 9) == 0)
		strbuf_printf(out, known ? "\"%s\", which is" : "a CA that is",
		    x->issuer);
	else if (n == 8 && memcmp(name, "issuer_q", 8) == 0)
		strbuf_printf(out, known ? "\"%s\"" : "its issuer", x->issuer);
	else if (known)
		strbuf_printf(out, " (\"%s\")", x->issuer);
}

/* The value of one placeholder; an unknown name is copied as it is. */
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
		else if (x->issuer != NULL && x->issuer[0] != '\0')
			strbuf_printf(out, "`postern trust add CA.pem --name "
			    "NAME` with CA.pem the certificate of \"%s\" as "
			    "published by that CA", x->issuer);
		else
			strbuf_puts(out, "`postern trust add CA.pem --name "
			    "NAME` with CA.pem the certificate of that CA");
	}
	else if (IS("issuer"))
		strbuf_puts(out, OR(x->issuer, "an unknown CA"));
	else if (IS("issued_by") || IS("issuer_q") || IS("issuer_paren"))
		put_issuer(name, n, x, out);
	else if (IS("user_of")) {
		if (x->user != NULL && x->user[0] != '\0')
			strbuf_printf(out, " of \"%s\"", x->user);
	}
	else if (IS("address"))
		strbuf_puts(out, OR(x->address, x->who == FC_FOR_DELIVERY ?
		    "the recipient" : "ADDRESS"));
	else if (IS("user"))
		strbuf_puts(out, OR(x->user, "NAME"));
	else if (IS("detail")) {
		/* {detail} right after a word reads " (...)" in FC_SIZE */
		if (x->detail != NULL && x->detail[0] != '\0')
			strbuf_puts(out, x->detail);
		else if (out->len > 0 && out->s[out->len - 1] == '(')
			strbuf_puts(out, "no details");
	} else if (put_word(name, n, x->who, out) == -1)
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
	case SSL_R_EE_KEY_TOO_SMALL:
	case SSL_R_CA_KEY_TOO_SMALL:
		return FC_TLS_WEAK_KEY;
	case SSL_R_CA_MD_TOO_WEAK:
		return FC_TLS_SHA1;
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

/* The cause of a whole reply. */
enum failcause
failcause_of_reply(const char *step, const struct smtp_reply *r)
{
	struct strbuf sb = STRBUF_INIT;
	enum failcause fc;
	size_t i;

	if (r == NULL)
		return FC_NONE;
	for (i = 0; i < r->nlines; i++) {
		strbuf_puts(&sb, r->lines[i]);
		strbuf_putc(&sb, ' ');
	}
	fc = failcause_from_reply(step, r->code, r->enhanced, sb.s);
	strbuf_free(&sb);
	return fc;
}

enum failcause
failcause_from_result(const struct smtp_client_result *r, int implicit)
{
	switch (r->err) {
	case SMTP_CLIENT_OK:
		return FC_NONE;
	case SMTP_CLIENT_EREPLY:
		if (r->reply == NULL)
			return FC_REJECTED;
		return failcause_of_reply(r->step, r->reply);
	case SMTP_CLIENT_ECONNREFUSED:
		return FC_CONN_REFUSED;
	case SMTP_CLIENT_ECONNECT:
		return r->sys_errno == ETIMEDOUT ? FC_CONN_TIMEOUT :
		    FC_NET_UNREACHABLE;
	case SMTP_CLIENT_ETIMEOUT:
		if (step_is(r->step, "greeting"))
			return FC_NO_BANNER;
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
