/*
 * certstore.h - the certificate store in <data_dir>/certs, shared by
 * `postern cert` and by the server (listener certificates, demo
 * certificate).  One entry per ID:
 *
 *   <ID>.key   private key, PEM (PKCS#8, unencrypted), mode 0600
 *   <ID>.pem   certificate followed by its intermediates in chain order
 *              (leaf first, as SSL_CTX_use_certificate_chain_file reads)
 *   <ID>.csr   a certificate request made here, kept until the CA-signed
 *              certificate is imported (then the entry has .pem + .key)
 *
 * Every file is written atomically (tmp, fsync, rename, dir fsync).  IDs
 * are letters, digits, '.', '_' and '-', not starting with '.'.
 * Errors come back as one actionable line in `why`.
 */
#ifndef POSTERN_CERTSTORE_H
#define POSTERN_CERTSTORE_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define CERTSTORE_SUBDIR	"certs"

/* 1 when x is self-signed (issuer = subject, its own key verifies it);
 * leaves the OpenSSL error queue as it was. */
int	certstore_is_self_signed(X509 *x);

/* 1 when `id` is a valid entry name. */
int	certstore_valid_id(const char *id);
/* <data_dir>/certs/<id><ext> (ext ".pem", ".key", ".csr"); -1 if too long. */
int	certstore_path(const char *data_dir, const char *id, const char *ext,
	    char *buf, size_t len);
/* 1 when the entry has both a certificate and a key. */
int	certstore_exists(const char *data_dir, const char *id);

/*
 * New key (keytype "rsa2048" | "rsa3072" | "ec256"; NULL = "rsa2048") and a
 * self-signed certificate for `cn` (also put first among the SANs) plus
 * `sans`, valid `days` days, stored as `id` (replacing an entry of that
 * name).  0 or -1 with why.
 */
int	certstore_selfsign(const char *data_dir, const char *id, const char *cn,
	    const char *const *sans, size_t nsans, int days,
	    const char *keytype, char *why, size_t whylen);

/*
 * Load certificate, key and chain from files: `certfile` holds the leaf,
 * possibly followed by intermediates; `chainfile` (may be NULL) more
 * intermediates; `keyfile` (may be NULL when certfile also holds the key)
 * the private key.  Checks that the key matches the certificate.
 * On success *leaf, *key and *chain (intermediates in file order, possibly
 * empty) belong to the caller.  0 or -1 with why (names the file and what
 * to do, e.g. "key /x/mx.key does not match certificate /x/mx.pem").
 */
int	certstore_load_files(const char *certfile, const char *keyfile,
	    const char *chainfile, X509 **leaf, EVP_PKEY **key,
	    STACK_OF(X509) **chain, char *why, size_t whylen);
/* The same for a store entry. */
int	certstore_load(const char *data_dir, const char *id, X509 **leaf,
	    EVP_PKEY **key, STACK_OF(X509) **chain, char *why, size_t whylen);
/* The same for a configured `certificate`: a store ID or inline files. */
struct conf_certref;
int	certstore_load_ref(const char *data_dir, const struct conf_certref *,
	    X509 **leaf, EVP_PKEY **key, STACK_OF(X509) **chain, char *why,
	    size_t whylen);

/* ---- helpers shared by `postern cert`, `postern trust` and the tests ---- */

/* Readable text of the OpenSSL error queue (its first error's reason, e.g.
 * "bad decrypt"), which is then cleared.  Writes into buf, returns it. */
const char *certstore_ssl_error(char *buf, size_t len);

/* 1 for "rsa2048", "rsa3072", "ec256". */
int	certstore_valid_keytype(const char *keytype);
/* A new key of that type (NULL = rsa2048), or NULL with why. */
EVP_PKEY *certstore_keygen(const char *keytype, char *why, size_t whylen);
/* 1 when `name` may go into a SAN: a DNS name (letters, digits, '-', '.',
 * '_', a leading "*.") or an IPv4/IPv6 address. */
int	certstore_valid_san(const char *name);
/* 1 when the key is the certificate's (public keys equal). */
int	certstore_key_matches(const X509 *, const EVP_PKEY *);
/* "RSA 2048", "EC P-256", "ED25519", ... */
void	certstore_key_desc(const EVP_PKEY *, char *buf, size_t len);

/* Every certificate in a PEM (any number) or DER (one) file, in file
 * order; at least one, else -1 with why. */
int	certstore_read_certs(const char *file, STACK_OF(X509) **certs,
	    char *why, size_t whylen);
/* The (first) private key in a PEM or DER file: 1 found, 0 the file holds
 * none, -1 error with why (unreadable, damaged, encrypted). */
int	certstore_read_key(const char *file, EVP_PKEY **key, char *why,
	    size_t whylen);

/* Create a directory (and its parents) with exactly `mode` if missing. */
int	certstore_mkdir(const char *dir, int mode, char *why, size_t whylen);
/* Store leaf + key + chain (in the given order) as `id`: <id>.key 0600,
 * <id>.pem 0644, both atomically.  0 or -1 with why. */
int	certstore_save(const char *data_dir, const char *id, X509 *leaf,
	    EVP_PKEY *key, STACK_OF(X509) *chain, char *why, size_t whylen);

struct certstore_subject {
	const char	*cn, *org, *ou, *country, *state, *locality, *email;
};
/* New key (stored as <id>.key, 0600) and a SHA-256 signed request for
 * `subj` with cn + sans as requested subjectAltName (stored as <id>.csr).
 * On success *req belongs to the caller.  0 or -1 with why. */
int	certstore_make_csr(const char *data_dir, const char *id,
	    const struct certstore_subject *subj, const char *const *sans,
	    size_t nsans, const char *keytype, X509_REQ **req, char *why,
	    size_t whylen);

/* What certstore_order_chain changed. */
struct certstore_chainfix {
	int	reordered;	/* intermediates were not in issuer order */
	int	duplicates;	/* copies (of the leaf or of an intermediate) dropped */
	int	roots;		/* self-signed roots dropped */
	int	unrelated;	/* certificates outside the leaf's path dropped */
};
/*
 * The intermediates of `in` that lead from `leaf` towards a root, in chain
 * order (leaf's issuer first); duplicates, self-signed roots and
 * certificates that are not on the path are left out and counted in *fix.
 * Returns a new stack holding new references (free with
 * sk_X509_pop_free(..., X509_free)).
 */
STACK_OF(X509) *certstore_order_chain(X509 *leaf, STACK_OF(X509) *in,
	    struct certstore_chainfix *fix);

/* Names of every entry (anything with a .pem, .key or .csr), sorted;
 * *ids is an array of malloc'd strings (strv_free).  A missing directory
 * is empty.  0 or -1 with why. */
int	certstore_list_ids(const char *data_dir, char ***ids, size_t *n,
	    char *why, size_t whylen);

/*
 * A stored private key for `cert`: <prefer_id>.key first (when given), then
 * keys of pending requests, then any other stored key.  1 found (*key and
 * the entry's name in found_id), 0 none, -1 error with why.
 */
int	certstore_find_key(const char *data_dir, X509 *cert,
	    const char *prefer_id, EVP_PKEY **key, char *found_id,
	    size_t found_len, char *why, size_t whylen);

/* Display helpers.  Control characters in names come out as '?'. */
/* The name's CN (else its one-line form), e.g. "mx.example.com". */
void	certstore_cn(const X509_NAME *, char *buf, size_t len);
/* The whole name on one line, e.g. "C=DE, O=Example, CN=mx.example.com". */
void	certstore_name(const X509_NAME *, char *buf, size_t len);
/* "YYYY-MM-DD" (with_time: "YYYY-MM-DD HH:MM:SS UTC"). */
void	certstore_date(const ASN1_TIME *, int with_time, char *buf, size_t len);
/* Whole days from now until `t` (negative once past). */
int	certstore_days_until(const ASN1_TIME *t);

#endif
