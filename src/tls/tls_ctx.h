/*
 * tls_ctx.h - the one place where OpenSSL contexts are made, for the
 * server side (listeners: certificates, SNI, settings of the `tls` block)
 * and the client side (cert fetch, delivery, send, probe: settings of the
 * `tls` block, trust store + system CAs).  Safe defaults whatever the
 * configuration says: no SSLv3/TLS 1.0/1.1 unless min_protocol asks, no
 * compression, no renegotiation, ECDHE only for TLS 1.2 (no DHE params are
 * ever loaded), server cipher preference, session resumption on.
 */
#ifndef POSTERN_TLS_CTX_H
#define POSTERN_TLS_CTX_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "conf.h"

/*
 * Server context for a listener: its certificate(s) (store IDs or inline
 * paths; the first is the default, the others are chosen by SNI) with
 * the `tls` block's settings.  NULL with why when a certificate cannot be
 * loaded or a setting is refused by OpenSSL.
 */
SSL_CTX	*tls_server_ctx_new(const struct conf *, const struct conf_listener *,
	    char *why, size_t whylen);

/*
 * Client context with the `tls` block's settings.  With `verify`, peers
 * are checked against the trust store (+ system CAs when configured);
 * callers then set the expected host name per connection with
 * tls_client_expect_host().  `data_dir` may be NULL (no trust store).
 */
SSL_CTX	*tls_client_ctx_new(const struct conf *, int verify, char *why,
	    size_t whylen);
/* Also trust the CA certificate(s) of a PEM file (`postern send --trust
 * FILE`, `postern probe --trust FILE`).  0, or -1 with why. */
int	tls_client_ctx_add_trust(SSL_CTX *, const char *file, char *why,
	    size_t whylen);
/* Verify, but let the handshake finish whatever the result: the caller
 * decides with SSL_get_verify_result() before it sends anything (and can
 * then say why, with the chain at hand). */
void	tls_client_verify_after(SSL_CTX *);
/* For a client SSL: send SNI `host` and, if the context verifies, require
 * the certificate to match it (SAN, then CN).  0 or -1. */
int	tls_client_expect_host(SSL *, const char *host);

/* The store entry a listener gets a self-signed demo certificate in when
 * it names it and it does not exist (postern.conf(5), EMBEDDED DEFAULT). */
#define TLS_DEMO_CERT_ID	"default"
int	tls_demo_cert_missing(const struct conf *,
	    const struct conf_listener *);

/* How the handshake that failed was started: after STARTTLS (RFC 3207)
 * or at once on an implicit-TLS port (RFC 8314).  It only changes how a
 * peer that speaks plaintext is described. */
enum tls_start { TLS_START_STARTTLS, TLS_START_IMPLICIT };

/* Why a handshake failed, in words an admin can act on ("no shared
 * cipher", "unsupported protocol", "not a TLS handshake (plaintext sent
 * to an implicit-TLS port?)", ...), from the OpenSSL error queue / an
 * error code.  Writes into buf and returns it. */
const char *tls_handshake_reason(unsigned long err, enum tls_start,
	    char *buf, size_t len);
/* The same, worded for a handshake after STARTTLS. */
const char *tls_error_reason(unsigned long err, char *buf, size_t len);

/* "TLSv1.3" and the cipher name of an established SSL. */
const char *tls_protocol(const SSL *);
const char *tls_cipher(const SSL *);

/*
 * The server's temporary key of an established SSL (the key exchange:
 * SSL_get_peer_tmp_key): its kind in buf ("X25519", "ECDH P-256", "DH",
 * ...) and its size in bits as the result; -1 when there is none (RSA
 * key transport, or not known).
 */
int	tls_peer_tmp_key(SSL *, char *buf, size_t len);

/*
 * A client context for diagnosis only, never for mail: every protocol
 * from TLS 1.0 up to `max_version` (0 = the newest; TLS1_1_VERSION to
 * see whether a server still accepts old versions), every cipher OpenSSL
 * has (security level 0, DHE of any size), no verification.  `postern
 * probe` uses it to find out what a server speaks after a handshake with
 * the real settings failed, and whether it accepts TLS 1.0 / 1.1.
 */
SSL_CTX	*tls_client_ctx_diag(int max_version, char *why, size_t whylen);

#endif
