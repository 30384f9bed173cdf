/*
 * smime.h - S/MIME (RFC 8551) signing and encryption of a whole message,
 * through OpenSSL's CMS API: the one module used by `postern send
 * --sign/--encrypt` and by the gateway (the queue manager applying
 * S/MIME by policy).
 *
 * smime_apply() takes an RFC 5322 message (CRLF) and returns the whole
 * transformed message.  The header fields that are not MIME content
 * fields (From, To, Cc, Subject, Date, Message-ID, Received, ...) stay
 * outside and readable; the content (Content-* fields and body) is what
 * gets signed and/or encrypted:
 *   sign     multipart/signed; protocol="application/pkcs7-signature";
 *            micalg=sha-256 with a detached SignedData (smime.p7s) that
 *            carries the signer certificate and its chain; RSA or ECDSA.
 *   encrypt  application/pkcs7-mime; smime-type=enveloped-data
 *            (AES-256-CBC) or smime-type=authEnveloped-data (AES-256-GCM,
 *            RFC 5083), one RecipientInfo per recipient (RSA key
 *            transport or ECDH key agreement).
 *   both     signed first, then the signed entity is encrypted.
 *
 * Keys live in one directory (SPEC `--keys DIR`): <address>.pem holds a
 * private key, its certificate and optionally the chain; <address>.crt a
 * recipient's certificate.  For the gateway, <domain>.pem is a domain key
 * that signs for every address of that domain (SMIME_DOMAIN_KEY).
 *
 * Every certificate is checked before use and each failure is one
 * sentence naming the file and the fix: file missing or unreadable, no
 * key or no certificate in it, key not matching the certificate,
 * expired or not yet valid, extended key usage without emailProtection,
 * address (or domain) not in the certificate.
 *
 * Threats: the message may come from anyone (gateway): it is only split
 * at its header end (msg_field_next, fuzzed) and otherwise treated as
 * opaque bytes.  Private keys are read here and freed with
 * EVP_PKEY_free (OpenSSL wipes key material).
 */
#ifndef POSTERN_SMIME_H
#define POSTERN_SMIME_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "strbuf.h"

#define SMIME_SIGN		0x1
#define SMIME_ENCRYPT		0x2
#define SMIME_DOMAIN_KEY	0x4	/* signer may be <domain>.pem */

enum smime_cipher {
	SMIME_AES256_CBC = 0,	/* widest client support (default) */
	SMIME_AES256_GCM	/* AuthEnvelopedData, RFC 5083 */
};

/* A signing identity: key, matching certificate, chain (may be empty). */
struct smime_signer {
	EVP_PKEY	*key;
	X509		*cert;
	STACK_OF(X509)	*chain;
	char		 path[1024];	/* the file it came from */
};

/*
 * Load and check the signer for `address` from `dir`: <address>.pem, or
 * with SMIME_DOMAIN_KEY in flags and that file missing, <domain>.pem.
 * With SMIME_DOMAIN_KEY, an `address` without '@' names a domain: its
 * <domain>.pem is checked as a domain key (`postern config check`).
 * `now` is the time certificates must be valid at.  NULL with why.
 */
struct smime_signer *smime_signer_load(const char *dir, const char *address,
	    unsigned flags, time_t now, char *why, size_t whylen);
void	smime_signer_free(struct smime_signer *);
/* Load and check the certificate of recipient `address` from
 * <dir>/<address>.crt.  NULL with why. */
X509	*smime_recipient_load(const char *dir, const char *address, time_t now,
	    char *why, size_t whylen);
/*
 * Check a certificate for S/MIME use by `address` (or, when `domain`, by
 * any address of that domain): valid at `now`, extended key usage (when
 * present) with emailProtection, the address in its subjectAltName or
 * subject emailAddress.  `path` names it in why.  0 or -1.
 */
int	smime_check_cert(X509 *cert, const char *path, const char *address,
	    int domain, time_t now, char *why, size_t whylen);

struct smime_request {
	unsigned		 ops;		/* SMIME_SIGN | SMIME_ENCRYPT
						 * | SMIME_DOMAIN_KEY */
	enum smime_cipher	 cipher;
	const char		*keys_dir;
	const char		*signer;	/* address (envelope or From) */
	const char *const	*rcpts;		/* recipient addresses */
	size_t			 nrcpts;
	/* Or the recipients' certificates, loaded and checked already
	 * (the gateway, which looked them up to decide): used instead of
	 * rcpts when not NULL; borrowed. */
	STACK_OF(X509)		*rcpt_certs;
	time_t			 now;		/* 0 = time(NULL) */
};

/*
 * Transform msg[0..len) (CRLF line ends) as asked; the result is
 * appended to out.  Loads and checks every key and certificate first, so
 * nothing is produced when one is missing or unusable.  0, or -1 with
 * why (a key problem as above, a message without a header section, an
 * OpenSSL failure).
 */
int	smime_apply(const struct smime_request *, const char *msg, size_t len,
	    struct strbuf *out, char *why, size_t whylen);

#endif
