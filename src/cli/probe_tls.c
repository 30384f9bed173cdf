/*
 * probe_tls.c - what `postern probe` reads from a TLS session (see
 * probe.h): the steps "tls" (protocol, cipher, the server's temporary
 * key; warn on DH below 2048 bits), "certificate" (each link as sent:
 * subject, issuer, validity with days left, key, signature algorithm;
 * warn on a link expiring within 30 days, an RSA key below 2048 bits, a
 * SHA-1 signature, a chain sent out of order), "verify" (against the
 * trust store and system CAs of the client context: untrusted root,
 * missing intermediate, self-signed, expired or not yet valid link) and
 * "hostname" (every CN and SAN, which one matched and how); and the
 * "tls" step of a handshake that failed, explained by what a diagnostic
 * handshake got the server to speak.
 *
 * Public: probe_tls_steps, probe_tls_failed.
 *
 * The chain comes from an untrusted server: names are printed through
 * certstore_cn/certstore_name (control characters replaced); nothing
 * here does I/O.
 */
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "certchain.h"
#include "certstore.h"
#include "probe.h"
#include "tls_ctx.h"
#include "util.h"

#define EXPIRY_WARN_DAYS	30
#define DH_MIN_BITS		2048

/* ---- "tls" ----------------------------------------------------------- */

static void
tls_step(struct probe_report *r, const struct failcause_ctx *fx, SSL *ssl,
    double ms)
{
	struct probe_step *s = probe_step_add(r, "tls");
	struct failcause_ctx x = *fx;
	char kind[64], det[128];
	int bits;

	s->ms = ms;
	probe_detail(s, "%s, cipher %s", tls_protocol(ssl), tls_cipher(ssl));
	bits = tls_peer_tmp_key(ssl, kind, sizeof(kind));
	if (bits < 0) {
		probe_detail(s, "key exchange: no temporary key (RSA key "
		    "transport: no forward secrecy)");
		return;
	}
	probe_detail(s, "key exchange: %s (%d bits)", kind, bits);
	if (strcmp(kind, "DH") == 0 && bits < DH_MIN_BITS) {
		bsnprintf(det, sizeof(det), "DH %d bits", bits);
		x.detail = det;
		probe_detail(s, "a DH group below %d bits can be broken by a "
		    "well-funded attacker (Logjam)", DH_MIN_BITS);
		probe_problem(s, PROBE_WARN, FC_TLS_DH_TOO_SMALL, &x);
	}
}

/* ---- "certificate" --------------------------------------------------- */

/* Problems of the links, one list per kind, so each gets one fix. */
struct link_notes {
	struct strbuf	expiring, weak, sha1;
};

static void
one_link(struct probe_step *s, X509 *x, int i, struct link_notes *n)
{
	char subj[512], iss[512], nb[32], na[32], key[64], cn[256];
	int days = certstore_days_until(X509_get0_notAfter(x));
	int expired = X509_cmp_current_time(X509_get0_notAfter(x)) < 0;
	int early = X509_cmp_current_time(X509_get0_notBefore(x)) > 0;

	certstore_name(X509_get_subject_name(x), subj, sizeof(subj));
	certstore_name(X509_get_issuer_name(x), iss, sizeof(iss));
	certstore_cn(X509_get_subject_name(x), cn, sizeof(cn));
	certstore_date(X509_get0_notBefore(x), 0, nb, sizeof(nb));
	certstore_date(X509_get0_notAfter(x), 0, na, sizeof(na));
	certstore_key_desc(X509_get0_pubkey(x), key, sizeof(key));
	probe_detail(s, "#%d %s", i, subj);
	probe_detail(s, "   issuer %s%s", iss, certstore_is_self_signed(x) ?
	    " (self-signed)" : "");
	probe_detail(s, "   valid %s to %s (%s%d day%s%s), key %s, signed %s",
	    nb, na, expired ? "expired " : early ? "not yet valid, " : "",
	    expired ? -days : days, (expired ? -days : days) == 1 ? "" : "s",
	    expired ? " ago" : early ? "" : " left", key,
	    certchain_sig_name(x));
	if (!expired && !early && days < EXPIRY_WARN_DAYS)
		strbuf_printf(&n->expiring, "%s%s on %s, in %d day%s",
		    n->expiring.len ? "; " : "", cn, na, days,
		    days == 1 ? "" : "s");
	if (certchain_weak_key(x))
		strbuf_printf(&n->weak, "%s%s: %s", n->weak.len ? "; " : "",
		    cn, key);
	if (certchain_sig_weak(x) && !certstore_is_self_signed(x))
		strbuf_printf(&n->sha1, "%s%s: %s", n->sha1.len ? "; " : "",
		    cn, certchain_sig_name(x));
}

/* CNs of a stack of certificates, ", " between (from index `from`). */
static void
cn_list(STACK_OF(X509) *sk, int from, struct strbuf *sb)
{
	char cn[256];
	int i;

	for (i = from; i < sk_X509_num(sk); i++) {
		certstore_cn(X509_get_subject_name(sk_X509_value(sk, i)), cn,
		    sizeof(cn));
		strbuf_printf(sb, "%s%s", i > from ? ", " : "", cn);
	}
}

/* Sent in issuer order, without duplicates?  (Verifiers that do not
 * sort refuse other orders.) */
static void
chain_order(struct probe_step *s, const struct failcause_ctx *fx,
    STACK_OF(X509) *chain)
{
	struct certstore_chainfix fix;
	struct failcause_ctx x = *fx;
	struct strbuf det = STRBUF_INIT;
	STACK_OF(X509) *rest, *ordered;
	int i;

	if ((rest = sk_X509_new_null()) == NULL)
		fatalx("out of memory");
	for (i = 1; i < sk_X509_num(chain); i++)
		sk_X509_push(rest, sk_X509_value(chain, i));
	ordered = certstore_order_chain(sk_X509_value(chain, 0), rest, &fix);
	if (fix.reordered) {
		strbuf_puts(&det, "sent: ");
		cn_list(rest, 0, &det);
		strbuf_puts(&det, "; in issuer order: ");
		cn_list(ordered, 0, &det);
	}
	if (fix.duplicates)
		strbuf_printf(&det, "%s%d duplicate%s", det.len ? "; " : "",
		    fix.duplicates, fix.duplicates == 1 ? "" : "s");
	if (det.len > 0) {
		probe_detail(s, "order: %s", det.s);
		x.detail = det.s;
		probe_problem(s, PROBE_WARN, FC_TLS_CHAIN_ORDER, &x);
	} else if (sk_X509_num(chain) > 1)
		probe_detail(s, "order: each certificate is followed by its "
		    "issuer");
	if (fix.unrelated)
		probe_detail(s, "%d certificate%s sent that do%s not belong to "
		    "this chain", fix.unrelated, fix.unrelated == 1 ? "" : "s",
		    fix.unrelated == 1 ? "es" : "");
	sk_X509_pop_free(ordered, X509_free);
	sk_X509_free(rest);
	strbuf_free(&det);
}

static void
cert_step(struct probe_report *r, const struct failcause_ctx *fx,
    STACK_OF(X509) *chain)
{
	struct probe_step *s = probe_step_add(r, "certificate");
	struct link_notes n;
	struct failcause_ctx x = *fx;
	int i;

	strbuf_init(&n.expiring);
	strbuf_init(&n.weak);
	strbuf_init(&n.sha1);
	probe_detail(s, "%d certificate%s sent", sk_X509_num(chain),
	    sk_X509_num(chain) == 1 ? "" : "s");
	for (i = 0; i < sk_X509_num(chain); i++)
		one_link(s, sk_X509_value(chain, i), i, &n);
	chain_order(s, fx, chain);
	if (n.expiring.len > 0) {
		x.detail = n.expiring.s;
		probe_problem(s, PROBE_WARN, FC_TLS_EXPIRING, &x);
	}
	if (n.weak.len > 0) {
		x.detail = n.weak.s;
		probe_problem(s, PROBE_WARN, FC_TLS_WEAK_KEY, &x);
	}
	if (n.sha1.len > 0) {
		x.detail = n.sha1.s;
		probe_problem(s, PROBE_WARN, FC_TLS_SHA1, &x);
	}
	strbuf_free(&n.expiring);
	strbuf_free(&n.weak);
	strbuf_free(&n.sha1);
}

/* ---- "verify" -------------------------------------------------------- */

static const struct {
	enum certchain_problem	 p;
	enum failcause		 fc;
	const char		*what;
} problems[] = {
	{ CERTCHAIN_UNTRUSTED_ROOT, FC_TLS_UNTRUSTED, "untrusted root: the "
	    "chain ends at \"%s\", which is in neither the trust store nor "
	    "the system CAs" },
	{ CERTCHAIN_MISSING_INTERMEDIATE, FC_TLS_MISSING_INTERMEDIATE,
	    "missing intermediate: the server sent its certificate without "
	    "the CA certificate of \"%s\" (the certificate names where its "
	    "issuer is published, as CAs with intermediates do)" },
	{ CERTCHAIN_SELF_SIGNED, FC_TLS_SELF_SIGNED, "self-signed: \"%s\" "
	    "is its own issuer" },
	{ CERTCHAIN_EXPIRED, FC_TLS_EXPIRED, "expired: \"%s\"" },
	{ CERTCHAIN_NOT_YET_VALID, FC_TLS_NOT_YET_VALID, "not yet valid: "
	    "\"%s\"" },
};

static void
verify_step(struct probe_report *r, const struct failcause_ctx *fx,
    X509_STORE *store, X509 *leaf, STACK_OF(X509) *chain)
{
	struct probe_step *s = probe_step_add(r, "verify");
	struct failcause_ctx x = *fx;
	struct certchain_facts f;
	enum certchain_problem p;
	char issuer[512], stem[160], when[64], cn[256], det[700];
	size_t i;

	if (certchain_verify(store, leaf, chain, 1, &f)) {
		probe_detail(s, "trusted: the chain leads to \"%s\" (trust "
		    "store or system CAs)", f.anchor);
		r->found.chain_ok = 1;
		return;
	}
	r->found.chain_ok = 0;
	certstore_cn(X509_get_subject_name(f.at != NULL ? f.at : leaf), cn,
	    sizeof(cn));
	probe_detail(s, "not trusted: %s (at #%d, %s)",
	    X509_verify_cert_error_string(f.error), f.depth, cn);
	bsnprintf(r->found.why_tls, sizeof(r->found.why_tls), "certificate "
	    "not verified: %s", X509_verify_cert_error_string(f.error));
	p = certchain_server_problem(&f, issuer, sizeof(issuer), stem,
	    sizeof(stem), when, sizeof(when));
	x.issuer = issuer;
	x.trust_file = stem;
	x.detail = X509_verify_cert_error_string(f.error);
	for (i = 0; i < sizeof(problems) / sizeof(problems[0]); i++)
		if (problems[i].p == p)
			break;
	if (i == sizeof(problems) / sizeof(problems[0])) {
		probe_problem(s, PROBE_FAIL, FC_TLS_HANDSHAKE, &x);
		return;
	}
	probe_detail(s, problems[i].what, issuer);
	if (when[0] != '\0') {
		bsnprintf(det, sizeof(det), "%s %s, %s", p ==
		    CERTCHAIN_EXPIRED ? "expired" : "valid from", when, issuer);
		x.detail = det;
	}
	probe_problem(s, PROBE_FAIL, problems[i].fc, &x);
}

/* ---- "hostname" ------------------------------------------------------ */

static void
host_step(struct probe_report *r, const struct failcause_ctx *fx, X509 *leaf,
    const char *name)
{
	static const char *const how[] = {
		"", "a DNS name of its subjectAltName",
		"a wildcard of its subjectAltName (one label)",
		("its CN only: it has no DNS subjectAltName, which RFC 6125 "
		"clients prefer"),
		"an IP address of its subjectAltName" };
	struct probe_step *s = probe_step_add(r, "hostname");
	struct failcause_ctx x = *fx;
	struct strbuf names = STRBUF_INIT, det = STRBUF_INIT;
	enum certchain_match m;
	char matched[256];

	m = certchain_match_host(leaf, name, &names, matched,
	    sizeof(matched));
	probe_detail(s, "name used: %s", name);
	probe_detail(s, "the certificate names: %s", names.s);
	r->found.name_ok = m != CERTCHAIN_NO_MATCH;
	if (m != CERTCHAIN_NO_MATCH) {
		probe_detail(s, "matched \"%s\": %s", matched, how[m]);
		strbuf_free(&names);
		return;
	}
	probe_detail(s, "no name of the certificate matches %s", name);
	bsnprintf(r->found.why_tls, sizeof(r->found.why_tls), "the "
	    "certificate does not name %s", name);
	strbuf_printf(&det, "it names %s", names.s);
	x.host = name;
	x.detail = det.s;
	probe_problem(s, PROBE_FAIL, FC_TLS_HOST_MISMATCH, &x);
	strbuf_free(&names);
	strbuf_free(&det);
}

/* "certificate", "verify", "hostname" of the chain the SSL got; the
 * trust store is the configuration's (the SSL may be a diagnostic one). */
static void
chain_steps(struct probe_report *r, const struct probe_settings *set,
    const struct failcause_ctx *fx, SSL *ssl, const char *name)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	struct failcause_ctx x = *fx;
	struct probe_step *s;

	if (chain == NULL || sk_X509_num(chain) == 0) {
		s = probe_step_add(r, "certificate");
		probe_detail(s, "the server sent no certificate");
		x.detail = "no certificate";
		probe_problem(s, PROBE_FAIL, FC_TLS_HANDSHAKE, &x);
		return;
	}
	cert_step(r, fx, chain);
	verify_step(r, fx, SSL_CTX_get_cert_store(set->ctx),
	    sk_X509_value(chain, 0), chain);
	host_step(r, fx, sk_X509_value(chain, 0), name);
}

/* The steps of an established TLS session. */
void
probe_tls_steps(struct probe_report *r, const struct probe_settings *set,
    SSL *ssl, const char *name, double handshake_ms)
{
	struct failcause_ctx fx;

	probe_fctx(r, set, &fx);
	tls_step(r, &fx, ssl, handshake_ms);
	chain_steps(r, set, &fx, ssl, name);
}

/* ---- a handshake that failed ------------------------------------------ */

/* Why the diagnostic handshake worked where ours did not. */
static void
diag_cause(struct probe_step *s, struct failcause_ctx *x,
    enum failcause cause, SSL *diag)
{
	char kind[64], det[300];
	int bits = tls_peer_tmp_key(diag, kind, sizeof(kind));

	if (bits > 0)
		probe_detail(s, "with every protocol and cipher allowed, the "
		    "server chose %s, cipher %s, key exchange %s (%d bits)",
		    tls_protocol(diag), tls_cipher(diag), kind, bits);
	else
		probe_detail(s, "with every protocol and cipher allowed, the "
		    "server chose %s, cipher %s", tls_protocol(diag),
		    tls_cipher(diag));
	if (cause == FC_TLS_WEAK_KEY || cause == FC_TLS_SHA1) {
		/* our security level refused its certificate: the
		 * "certificate" step below says which link */
		probe_problem(s, PROBE_FAIL, cause, x);
	} else if (bits > 0 && strcmp(kind, "DH") == 0 && bits < DH_MIN_BITS) {
		bsnprintf(det, sizeof(det), "DH %d bits, with %s", bits,
		    tls_cipher(diag));
		x->detail = det;
		probe_detail(s, "its DH group has %d bits; this side wants %d "
		    "or more", bits, DH_MIN_BITS);
		probe_problem(s, PROBE_FAIL, FC_TLS_DH_TOO_SMALL, x);
	} else if (SSL_version(diag) < TLS1_2_VERSION) {
		bsnprintf(det, sizeof(det), "it speaks %s at best; this side "
		    "wants TLSv1.2 or newer", tls_protocol(diag));
		x->detail = det;
		probe_detail(s, "%s", det);
		probe_problem(s, PROBE_FAIL, FC_TLS_PROTOCOL, x);
	} else {
		bsnprintf(det, sizeof(det), "it offers %s with %s, which "
		    "tls.ciphers / tls.ciphersuites do not allow",
		    tls_protocol(diag), tls_cipher(diag));
		x->detail = det;
		probe_problem(s, PROBE_FAIL, cause == FC_TLS_HANDSHAKE ?
		    FC_TLS_PROTOCOL : cause, x);
	}
}

/* Explain a failed handshake by the diagnostic one. */
void
probe_tls_failed(struct probe_report *r, const struct probe_settings *set,
    size_t step, enum failcause cause, const char *reason, SSL *diag,
    const char *name)
{
	struct probe_step *s = &r->steps[step];
	struct failcause_ctx x;

	probe_fctx(r, set, &x);
	probe_detail(s, "handshake failed: %s", reason);
	x.detail = reason;
	if (diag == NULL) {
		probe_detail(s, "a handshake allowing every protocol and cipher "
		    "failed too");
		probe_problem(s, PROBE_FAIL, cause, &x);
		return;
	}
	diag_cause(s, &x, cause, diag);
	/* what the server presents, seen through the diagnostic session */
	probe_fctx(r, set, &x);
	chain_steps(r, set, &x, diag, name);
}
