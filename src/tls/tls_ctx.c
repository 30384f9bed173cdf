/*
 * tls_ctx.c - OpenSSL contexts for both sides (see tls_ctx.h).
 *
 * Server: one SSL_CTX per listener holding the default certificate; each
 * further certificate of the listener gets its own SSL_CTX and the
 * servername callback switches to the one whose names match the client's
 * SNI (X509_check_host, so wildcards work as in RFC 6125).  Contexts are
 * made by the master process before it forks the workers, so every worker
 * shares the same session-ticket keys: a client resumes its session
 * whichever worker the kernel hands its next connection to.
 *
 * Client: settings of the `tls` block; with verification, the trust store
 * and (tls.system_cas) the system bundle; per connection the caller names
 * the host to check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "log.h"
#include "tls_ctx.h"
#include "truststore.h"
#include "util.h"

/* Ciphers that pass the configured list but must never be offered:
 * anonymous, null, export, RC4, 3DES, MD5.  DHE needs no exclusion: no DH
 * parameters are loaded unless an admin lists DHE, and then OpenSSL's
 * automatic parameters match the key size (>= 2048 bits). */
#define TLS_CIPHER_EXCLUDE ":!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!MD5"

struct sni_entry {
	SSL_CTX	*ctx;
	X509	*leaf;
};

struct sni_table {
	struct sni_entry *e;
	size_t		  n;
};

static int sni_index = -1;

static void
ssl_errors(char *buf, size_t len)
{
	unsigned long e;
	char one[256];
	size_t used = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, one, sizeof(one));
		if (used == 0)
			used = bstrlcpy(buf, one, len);
	}
	if (buf[0] == '\0')
		bstrlcpy(buf, "no detail from OpenSSL", len);
}

static int
min_version(const char *name)
{
	if (strcmp(name, "TLSv1") == 0)
		return TLS1_VERSION;
	if (strcmp(name, "TLSv1.1") == 0)
		return TLS1_1_VERSION;
	if (strcmp(name, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	return TLS1_2_VERSION;
}

/* The `tls` block, for either side. */
static int
apply_settings(SSL_CTX *ctx, const struct conf *conf, char *why,
    size_t whylen)
{
	const struct conf_tls *t = &conf->tls;
	char err[256], list[1024];
	int minv = min_version(t->min_protocol);

	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (minv < TLS1_2_VERSION) {
		/* Old peers only: TLS 1.0/1.1 need SHA-1 signatures, which
		 * security level 1 still allows. */
		SSL_CTX_set_security_level(ctx, 1);
	}
	if (!SSL_CTX_set_min_proto_version(ctx, minv)) {
		ssl_errors(err, sizeof(err));
		bsnprintf(why, whylen, "tls.min_protocol %s refused by OpenSSL: "
		    "%s", t->min_protocol, err);
		return -1;
	}
	if (bsnprintf(list, sizeof(list), "%s%s", t->ciphers,
	    TLS_CIPHER_EXCLUDE) == -1 || !SSL_CTX_set_cipher_list(ctx, list)) {
		ERR_clear_error();
		bsnprintf(why, whylen, "tls.ciphers '%s' selects no cipher "
		    "OpenSSL knows (use OpenSSL cipher list syntax, e.g. "
		    "\"ECDHE+AESGCM:ECDHE+CHACHA20\")", t->ciphers);
		return -1;
	}
	if (!SSL_CTX_set_ciphersuites(ctx, t->ciphersuites)) {
		ERR_clear_error();
		bsnprintf(why, whylen, "tls.ciphersuites '%s' is not a list of "
		    "TLS 1.3 suites (e.g. \"TLS_AES_256_GCM_SHA384:"
		    "TLS_AES_128_GCM_SHA256\")", t->ciphersuites);
		return -1;
	}
	if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256:X448:P-384:P-521")) {
		ssl_errors(err, sizeof(err));
		bsnprintf(why, whylen, "cannot set key exchange groups: %s", err);
		return -1;
	}
	return 0;
}

/* A context of either side with the `tls` block applied; idle
 * connections give their buffers back. */
static SSL_CTX *
ctx_new(const SSL_METHOD *method, const struct conf *conf, char *why,
    size_t whylen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(method)) == NULL) {
		bsnprintf(why, whylen, "out of memory for a TLS context");
		return NULL;
	}
	if (apply_settings(ctx, conf, why, whylen) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* One certificate (store ID or files) into ctx; *leafp keeps a reference. */
static int
load_certref(SSL_CTX *ctx, const struct conf *conf,
    const struct conf_certref *cr, X509 **leafp, char *why, size_t whylen)
{
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	char err[256], what[600];

	if (certstore_load_ref(conf->data_dir, cr, &leaf, &key, &chain, why,
	    whylen) == -1)
		return -1;
	bsnprintf(what, sizeof(what), "certificate %s",
	    cr->id != NULL ? cr->id : cr->cert);
	if (!SSL_CTX_use_certificate(ctx, leaf) ||
	    !SSL_CTX_use_PrivateKey(ctx, key) ||
	    !SSL_CTX_check_private_key(ctx) ||
	    !SSL_CTX_set1_chain(ctx, chain)) {
		ssl_errors(err, sizeof(err));
		bsnprintf(why, whylen, "%s cannot be used: %s (check it with "
		    "`postern cert check`)", what, err);
		X509_free(leaf);
		EVP_PKEY_free(key);
		sk_X509_pop_free(chain, X509_free);
		return -1;
	}
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	*leafp = leaf;
	return 0;
}

static SSL_CTX *
server_ctx_base(const struct conf *conf, char *why, size_t whylen)
{
	static const unsigned char sid[] = "postern";
	SSL_CTX *ctx;

	if ((ctx = ctx_new(TLS_server_method(), conf, why, whylen)) == NULL)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* The same for every context, SNI ones included: a session resumes
	 * whichever context the client's server name picks. */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	/* One ticket per full handshake is enough for SMTP clients. */
	SSL_CTX_set_num_tickets(ctx, 1);
	/* Only when an admin lists DHE suites: parameters as strong as the
	 * certificate's key, never below 2048 bits. */
	SSL_CTX_set_dh_auto(ctx, 1);
	return ctx;
}

static void
sni_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct sni_table *t = ptr;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		SSL_CTX_free(t->e[i].ctx);
		X509_free(t->e[i].leaf);
	}
	free(t->e);
	free(t);
}

/* Client hello: switch to the certificate whose names match its SNI. */
static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct sni_table *t;
	const char *name;
	size_t i;

	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL || *name == '\0')
		return SSL_TLSEXT_ERR_NOACK;
	t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sni_index);
	if (t == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 0; i < t->n; i++)
		if (X509_check_host(t->e[i].leaf, name, 0, 0, NULL) == 1) {
			SSL_set_SSL_CTX(ssl, t->e[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;	/* keep the default certificate */
}

SSL_CTX *
tls_server_ctx_new(const struct conf *conf, const struct conf_listener *l,
    char *why, size_t whylen)
{
	SSL_CTX *ctx;
	struct sni_table *t;
	X509 *leaf = NULL;
	size_t i;

	if (sni_index == -1)
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    sni_table_free);
	if ((ctx = server_ctx_base(conf, why, whylen)) == NULL)
		return NULL;
	if (load_certref(ctx, conf, &l->certificate, &leaf, why, whylen) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	X509_free(leaf);
	if (l->nsni_certs == 0)
		return ctx;
	t = xcalloc(1, sizeof(*t));
	t->e = xcalloc(l->nsni_certs, sizeof(*t->e));
	SSL_CTX_set_ex_data(ctx, sni_index, t);
	for (i = 0; i < l->nsni_certs; i++) {
		if ((t->e[i].ctx = server_ctx_base(conf, why, whylen)) == NULL ||
		    load_certref(t->e[i].ctx, conf, &l->sni_certs[i],
		    &t->e[i].leaf, why, whylen) == -1) {
			SSL_CTX_free(t->e[i].ctx);
			t->e[i].ctx = NULL;
			SSL_CTX_free(ctx);	/* frees the table */
			return NULL;
		}
		t->n++;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	return ctx;
}

SSL_CTX *
tls_client_ctx_new(const struct conf *conf, int verify, char *why,
    size_t whylen)
{
	SSL_CTX *ctx;
	int n;

	if ((ctx = ctx_new(TLS_client_method(), conf, why, whylen)) == NULL)
		return NULL;
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	n = truststore_load(SSL_CTX_get_cert_store(ctx), conf->data_dir,
	    conf->tls.system_cas, why, whylen);
	if (n == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

int
tls_client_ctx_add_trust(SSL_CTX *ctx, const char *file, char *why,
    size_t whylen)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) *infos;
	unsigned long e;
	int i, n = 0;
	BIO *b;

	if ((b = BIO_new_file(file, "r")) == NULL) {
		(void)bsnprintf(why, whylen, "cannot read %s: %s", file,
		    strerror(errno));
		ERR_clear_error();
		return -1;
	}
	infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	for (i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);

		if (xi->x509 != NULL && X509_STORE_add_cert(st, xi->x509))
			n++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (n == 0) {
		e = ERR_peek_last_error();
		(void)bsnprintf(why, whylen, "%s holds no PEM certificate%s%s",
		    file, e != 0 ? ": " : "", e != 0 ?
		    ERR_reason_error_string(e) : "");
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static int
verify_after_cb(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;	/* recorded in the SSL; the caller decides */
}

void
tls_client_verify_after(SSL_CTX *ctx)
{
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_after_cb);
}

static int
is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

int
tls_client_expect_host(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *vp;
	int ip = is_ip_literal(host);

	/* SNI carries host names only, never IP literals (RFC 6066 3). */
	if (!ip && !SSL_set_tlsext_host_name(ssl, host))
		return -1;
	if (SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE)
		return 0;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(vp, host) ? 0 : -1;
	return X509_VERIFY_PARAM_set1_host(vp, host, 0) ? 0 : -1;
}

int
tls_demo_cert_missing(const struct conf *conf, const struct conf_listener *l)
{
	return l->certificate.id != NULL &&
	    strcmp(l->certificate.id, TLS_DEMO_CERT_ID) == 0 &&
	    !certstore_exists(conf->data_dir, TLS_DEMO_CERT_ID);
}

const char *
tls_error_reason(unsigned long err, char *buf, size_t len)
{
	return tls_handshake_reason(err, TLS_START_STARTTLS, buf, len);
}

const char *
tls_handshake_reason(unsigned long err, enum tls_start how, char *buf,
    size_t len)
{
	const char *r;

	if (err == 0) {
		bstrlcpy(buf, "connection closed during the handshake", len);
		return buf;
	}
	if (ERR_GET_LIB(err) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(err)) {
		case SSL_R_NO_SHARED_CIPHER:
			bstrlcpy(buf, "no shared cipher", len);
			return buf;
		case SSL_R_UNSUPPORTED_PROTOCOL:
		case SSL_R_VERSION_TOO_LOW:
		case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		case SSL_R_NO_PROTOCOLS_AVAILABLE:
			bstrlcpy(buf, "unsupported protocol", len);
			return buf;
		case SSL_R_UNEXPECTED_EOF_WHILE_READING:
			bstrlcpy(buf, "connection closed during the handshake",
			    len);
			return buf;
		case SSL_R_CERTIFICATE_VERIFY_FAILED:
			bstrlcpy(buf, "certificate verify failed", len);
			return buf;
		/* The first record's major version is not 3: the bytes are
		 * not TLS at all (an old TLS version fails in the hello, as
		 * UNSUPPORTED_PROTOCOL, not here). */
		case SSL_R_WRONG_VERSION_NUMBER:
		case SSL_R_HTTP_REQUEST:
		case SSL_R_HTTPS_PROXY_REQUEST:
		case SSL_R_PACKET_LENGTH_TOO_LONG:
		case SSL_R_RECORD_LENGTH_MISMATCH:
			bstrlcpy(buf, how == TLS_START_IMPLICIT ?
			    "not a TLS handshake (plaintext sent to an "
			    "implicit-TLS port?)" : "not a TLS handshake "
			    "(plaintext after STARTTLS?)", len);
			return buf;
		}
	}
	r = ERR_reason_error_string(err);
	bstrlcpy(buf, r != NULL ? r : "handshake failed", len);
	return buf;
}

const char *
tls_protocol(const SSL *ssl)
{
	return SSL_get_version(ssl);
}

const char *
tls_cipher(const SSL *ssl)
{
	return SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
}
