/*
 * dkim.h - DKIM signatures (RFC 6376) with RSA-SHA256 and Ed25519-SHA256
 * (RFC 8463): the keys, the relaxed/relaxed canonicalisation, signing a
 * whole message, and the key record published in DNS (written by
 * `postern dkim keygen`, compared with the private key by `postern dkim
 * check`).  OpenSSL does the cryptography (EVP_DigestSign).
 *
 * What a signature covers (dkim_sign): From, To, Cc, Subject, Date,
 * Message-ID, Reply-To, In-Reply-To, References, MIME-Version,
 * Content-Type, Content-Transfer-Encoding and every List-* field (name of
 * at most 64 octets), each instance present; From, To, Cc and Subject
 * once more ("over-signed": a copy added later breaks the signature,
 * RFC 6376 8.15).  The whole
 * body (no l=), t= and optionally x=.  c=relaxed/relaxed.
 *
 * Callers: the queue manager's DKIM step (transform_dkim.c), `postern
 * dkim` and `postern config check` (cmd_dkim.c, cmd_config.c).
 *
 * Threats: messages and DNS records are untrusted.  The message is split
 * by msg_field_next (msg_prep.h) and otherwise read as bytes, in one
 * forward pass each, never past its length; at most DKIM_FIELDS_MAX
 * header fields.  Records are parsed by dkim_record_parse, bounded.
 * Both are fuzzed (tests/fuzz/fuzz_dkim_canon.c).  Private keys are freed
 * with EVP_PKEY_free (OpenSSL wipes them).
 */
#ifndef POSTERN_DKIM_H
#define POSTERN_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "strbuf.h"

#define DKIM_RSA_MIN_BITS	1024	/* refused below (RFC 8301 3.2) */
#define DKIM_RSA_GOOD_BITS	2048	/* warned below */
#define DKIM_FIELDS_MAX		1000	/* header fields of a message */
#define DKIM_INSTANCES_MAX	16	/* instances of one name signed */
#define DKIM_RECORD_KEY_MAX	2048	/* decoded p= octets kept */

enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

struct dkim_key {
	EVP_PKEY	*pkey;
	enum dkim_alg	 alg;
	int		 bits;		/* RSA modulus; 256 for Ed25519 */
};

/*
 * Load a private key: PEM (PKCS#8 "PRIVATE KEY" or "RSA PRIVATE KEY"),
 * or an Ed25519 key as the base64 of its 32-octet seed on one line (the
 * form of RFC 8463 appendix A and of dkimpy's dknewkey).  Refused, NULL
 * with why (naming the file and what to do): unreadable, not a key, not
 * RSA or Ed25519, RSA under DKIM_RSA_MIN_BITS.
 */
struct dkim_key *dkim_key_load(const char *path, char *why, size_t whylen);
/* A new key: DKIM_RSA_SHA256 with `bits` (>= 2048) or Ed25519. */
struct dkim_key *dkim_key_generate(enum dkim_alg, int bits, char *why,
	    size_t whylen);
void	dkim_key_free(struct dkim_key *);
/* The private key as PKCS#8 PEM, appended.  0 or -1. */
int	dkim_key_pem(const struct dkim_key *, struct strbuf *out);
/* The public key as it goes into p= (RFC 6376 3.6.1: base64 of the
 * SubjectPublicKeyInfo for RSA; RFC 8463 4.2: of the raw 32 octets for
 * Ed25519), appended.  0 or -1. */
int	dkim_key_public(const struct dkim_key *, struct strbuf *out);
/* "rsa-sha256" / "ed25519-sha256" (a=). */
const char *dkim_alg_name(enum dkim_alg);
/* "rsa" / "ed25519" (k=). */
const char *dkim_key_kind(enum dkim_alg);
/* "RSA 2048 bits" / "Ed25519", for people. */
void	dkim_key_describe(const struct dkim_key *, char *buf, size_t len);

/* The record text, "v=DKIM1; k=rsa; p=...", appended.  0 or -1. */
int	dkim_record_text(const struct dkim_key *, struct strbuf *out);
/*
 * The record for a zone file, appended: `S._domainkey.D. IN TXT (
 * "v=DKIM1; k=rsa; " "p=..." )` on several lines, no string longer than
 * 255 octets (RFC 1035 3.3).  0 or -1.
 */
int	dkim_record_zone(const char *selector, const char *domain,
	    const struct dkim_key *, struct strbuf *out);

/* A key record from DNS (RFC 6376 3.6.1), parsed. */
struct dkim_record {
	char		k[16];		/* key type; "rsa" when absent */
	int		testing;	/* t=y */
	int		revoked;	/* p= is empty */
	int		sha256;		/* h= absent or listing sha256 */
	int		email;		/* s= absent, "*" or "email" */
	unsigned char	p[DKIM_RECORD_KEY_MAX];
	size_t		plen;
};

/* Parse txt[0..len) (the record's strings joined).  0, or -1 with why:
 * not a tag list, duplicate tag, v= not first or not DKIM1, no p=, p=
 * not base64 or too long. */
int	dkim_record_parse(const char *txt, size_t len, struct dkim_record *,
	    char *why, size_t whylen);
/* Is the record's key (k= and p=) the public half of `key`?  1 or 0. */
int	dkim_record_matches(const struct dkim_record *,
	    const struct dkim_key *);

/* A message split once for signing; shared by every signature of it. */
struct dkim_msg;

/*
 * Split msg[0..len) (CRLF line ends) into its header fields and hash its
 * body (relaxed).  msg is borrowed for the life of the result.  NULL
 * with why when the header section is malformed (a line that is not a
 * field before the empty line) or has more than DKIM_FIELDS_MAX fields.
 */
struct dkim_msg *dkim_msg_new(const char *msg, size_t len, char *why,
	    size_t whylen);
void	dkim_msg_free(struct dkim_msg *);
/* The domain of the first address of the first From: field, lower
 * case; NULL when there is none or it does not parse.  Borrowed. */
const char *dkim_msg_from_domain(const struct dkim_msg *);
/* bh=: base64 of the SHA-256 of the relaxed body.  Borrowed. */
const char *dkim_msg_body_hash(const struct dkim_msg *);

/*
 * Append one DKIM-Signature field (folded, CRLF) signing the message
 * with `key` for domain d= and selector s=, t = `t` (the message's
 * arrival, so a repeat gives the same bytes) and x = t + expire unless
 * expire is 0.  0, or -1 with why (an OpenSSL failure).
 */
int	dkim_sign(const struct dkim_msg *, const struct dkim_key *,
	    const char *domain, const char *selector, int64_t t,
	    int64_t expire, struct strbuf *out, char *why, size_t whylen);

/*
 * The step under dkim_sign, exposed for tests (RFC 8463 appendix A):
 * the base64 signature, appended to b64, over the fields `h` names (an
 * h= value: names separated by ':', whitespace allowed; repeated names
 * take instances from the bottom, missing ones sign nothing) and the
 * DKIM-Signature field sig[0..siglen), written exactly as it will be
 * sent and ending in "b=".  0, or -1 with why.
 */
int	dkim_sign_fields(const struct dkim_msg *, const struct dkim_key *,
	    const char *h, const char *sig, size_t siglen, struct strbuf *b64,
	    char *why, size_t whylen);

/* Relaxed canonical forms (RFC 6376 3.4.2, 3.4.4), appended: one header
 * field (name, value as in the message, folded or not) with its CRLF;
 * a whole body. */
void	dkim_canon_header(const char *name, size_t nlen, const char *value,
	    size_t vlen, struct strbuf *out);
void	dkim_canon_body(const char *body, size_t len, struct strbuf *out);

#endif
