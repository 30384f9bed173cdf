/*
 * certchain.h - what a certificate chain says, for the commands that
 * judge one: `postern probe` and `postern send` (a server's chain as it
 * sent it) and `postern cert check` (a chain of our own store).
 *
 *   certchain_verify      verification against a trust store, and the
 *                         facts that tell its failures apart: which link
 *                         failed, whose certificate is missing, whether
 *                         the chain carried its (untrusted) root, whether
 *                         the top link is a CA or names where its issuer
 *                         is published (RFC 5280 4.2.2.1 caIssuers)
 *   certchain_server_problem   those facts read for a server's chain:
 *                         untrusted root, missing intermediate,
 *                         self-signed, expired, not yet valid
 *   certchain_match_host  every CN and SAN, and which one matched a host
 *                         name (exact, wildcard, CN only, IP address)
 *   certchain_sans        the SAN list as text
 *   certchain_file_stem   the file name `postern cert fetch` saves a
 *                         certificate under
 *   certchain_sig_weak, certchain_sig_name, certchain_weak_key
 *                         what a link is signed with, and its key
 *
 * Pure functions over OpenSSL objects: no I/O (the trust store is the
 * caller's X509_STORE).  Names are made printable (certstore_cn).
 */
#ifndef POSTERN_CERTCHAIN_H
#define POSTERN_CERTCHAIN_H

#include <stddef.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "strbuf.h"

struct certchain_facts {
	long	 error;		/* X509_V_OK or X509_V_ERR_* */
	int	 depth;		/* of the failing link (0 = leaf), -1 */
	X509	*at;		/* the failing link (borrowed from the
				 * input), or NULL */
	X509	*top;		/* the last link the chain got to: whose
				 * issuer is missing or untrusted (borrowed) */
	X509	*root_sent;	/* a self-signed certificate in `sent` that
				 * issued `top` (borrowed), or NULL */
	int	 top_is_ca;	/* basicConstraints CA:TRUE */
	int	 top_aia;	/* names its issuer's URL (caIssuers) */
	char	 anchor[256];	/* OK: CN of the trusted root */
};

/*
 * Verify `leaf` with `sent` (the other certificates as a server sent
 * them, or a store's intermediates; may include the leaf; NULL = none)
 * against `store` for TLS server use.  check_time = 0 ignores validity
 * dates (the caller reports them).  Fills *f; returns 1 when the chain
 * verifies, else 0.  Leaves the OpenSSL error queue as it was.
 */
int	certchain_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *sent,
	    int check_time, struct certchain_facts *f);

enum certchain_problem {
	CERTCHAIN_OK,
	CERTCHAIN_UNTRUSTED_ROOT,	/* ends at a root not trusted */
	CERTCHAIN_MISSING_INTERMEDIATE,	/* a CA certificate between the leaf
					 * and a root was not sent */
	CERTCHAIN_SELF_SIGNED,		/* the leaf is its own issuer */
	CERTCHAIN_EXPIRED,		/* a link has expired */
	CERTCHAIN_NOT_YET_VALID,	/* a link is not valid yet */
	CERTCHAIN_OTHER			/* anything else: see error */
};

/*
 * A server's chain: what failed and, in `issuer`, the CA to trust (or
 * the one missing), as a one-line name; in `stem` the file name `postern
 * cert fetch` gives the certificate to trust when the server sent it
 * (else ""); in `when` the date of an expired / not yet valid link.
 * A lone leaf whose issuer is unknown lacks its intermediate when it
 * names where its issuer is published (public CAs always do); else its
 * issuer is taken for an untrusted (private) root.
 */
enum certchain_problem certchain_server_problem(const struct certchain_facts *,
	    char *issuer, size_t ilen, char *stem, size_t slen, char *when,
	    size_t wlen);

/* How a host name matched a certificate. */
enum certchain_match {
	CERTCHAIN_NO_MATCH,
	CERTCHAIN_MATCH_SAN,		/* a DNS name of the SAN, exactly */
	CERTCHAIN_MATCH_WILDCARD,	/* a "*.domain" DNS name of the SAN */
	CERTCHAIN_MATCH_CN,		/* the CN: no DNS name in a SAN */
	CERTCHAIN_MATCH_IP		/* an IP address of the SAN */
};

/*
 * Match `host` (a name or an IP address) the way the TLS client does
 * (RFC 6125: SAN first, the CN only without DNS SANs, no partial
 * wildcards).  `names` gets every name the certificate carries ("CN
 * mx.example; SAN DNS mx.example, DNS *.example; IP 192.0.2.1") and
 * `matched` (may be NULL) the one that matched.
 */
enum certchain_match certchain_match_host(X509 *, const char *host,
	    struct strbuf *names, char *matched, size_t mlen);
/* The names of a SAN extension joined by sep ("-" when none); frees
 * gens (which may be NULL). */
void	certchain_sans(GENERAL_NAMES *gens, const char *sep, struct strbuf *);
/* 1 when x is signed with SHA-1 (or MD5). */
int	certchain_sig_weak(const X509 *x);
/* The signature algorithm's name ("sha256WithRSAEncryption"). */
const char *certchain_sig_name(const X509 *x);
/* 1 when x carries an RSA (or DSA) key below 2048 bits. */
int	certchain_weak_key(X509 *x);
/* Safe file stem for a certificate: its CN with letters, digits and
 * ". _ -" kept, '*' as "_wildcard", anything else as '_' (no leading
 * '.'); else the subject hash.  `postern cert fetch` saves it as
 * <stem>.pem, so the fix lines of other commands can name that file. */
void	certchain_file_stem(X509 *x, char *out, size_t outlen);

#endif
