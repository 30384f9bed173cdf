/*
 * smime.c - S/MIME signing and encryption of whole messages (RFC 8551)
 * with OpenSSL's CMS API, key and certificate lookup in a keys directory,
 * and the checks that make every key problem one actionable sentence.
 * See smime.h for the model.
 *
 * Public: smime_signer_load, smime_signer_free, smime_recipient_load,
 * smime_check_cert, smime_apply.
 *
 * The entity that is signed is written by us in canonical form (CRLF,
 * RFC 8551 3.1.1) and signed as binary (CMS_BINARY: no second
 * translation), so what is signed is byte for byte what goes into the
 * multipart/signed.  A message whose body is not MIME gets a text/plain
 * Content-Type, and quoted-printable when its body is 8-bit or has long
 * lines (RFC 8551 3.1.2: signed content should be 7-bit safe).
 *
 * Limits: the message is in memory (the caller bounds it); at most
 * MSG_PREP_RCPTS_MAX recipients.  Threats: see smime.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base64.h"
#include "mime_enc.h"
#include "msg_prep.h"
#include "smime.h"
#include "util.h"

/* "<dir>/<name><ext>", refusing names that could leave dir. */
static int
key_path(char *buf, size_t len, const char *dir, const char *name,
    const char *ext, char *why, size_t whylen)
{
	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL ||
	    bsnprintf(buf, len, "%s/%s%s", dir, name, ext) == -1) {
		(void)bsnprintf(why, whylen, "S/MIME: '%s' cannot name a key "
		    "file (an address without '/' and not starting with '.')",
		    name);
		return -1;
	}
	return 0;
}

static void
ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		bstrlcpy(buf, "no details", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static void
asn1_day(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		bstrlcpy(buf, "?", len);
}

/* The e-mail addresses a certificate names (SAN rfc822Name), for
 * messages. */
static void
cert_emails(X509 *cert, struct strbuf *out)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name,
	    NULL, NULL);
	STACK_OF(OPENSSL_STRING) *em;
	int i;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_EMAIL)
			continue;
		if (out->len > 0)
			strbuf_puts(out, ", ");
		strbuf_printable(out, (const char *)ASN1_STRING_get0_data(
		    g->d.rfc822Name), (size_t)ASN1_STRING_length(
		    g->d.rfc822Name));
	}
	GENERAL_NAMES_free(gens);
	if (out->len > 0)
		return;
	em = X509_get1_email(cert);	/* subject emailAddress too */
	for (i = 0; em != NULL && i < sk_OPENSSL_STRING_num(em); i++) {
		if (out->len > 0)
			strbuf_puts(out, ", ");
		strbuf_puts(out, sk_OPENSSL_STRING_value(em, i));
	}
	X509_email_free(em);
}

/* Does the certificate name an address of `domain`, or the domain? */
static int
cert_has_domain(X509 *cert, const char *domain)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name,
	    NULL, NULL);
	size_t dl = strlen(domain);
	int i, found = 0;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !found;
	    i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;
		const char *v, *at;
		size_t n;

		if (g->type != GEN_EMAIL && g->type != GEN_DNS)
			continue;
		s = g->type == GEN_EMAIL ? g->d.rfc822Name : g->d.dNSName;
		v = (const char *)ASN1_STRING_get0_data(s);
		n = (size_t)ASN1_STRING_length(s);
		at = memchr(v, '@', n);
		if (at != NULL) {
			n -= (size_t)(at + 1 - v);
			v = at + 1;
		}
		found = n == dl && ascii_ncasecmp(v, domain, dl) == 0;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

int
smime_check_cert(X509 *cert, const char *path, const char *address,
    int domain, time_t now, char *why, size_t whylen)
{
	struct strbuf names = STRBUF_INIT;
	char day[32];
	int ok;

	if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
		asn1_day(X509_get0_notAfter(cert), day, sizeof(day));
		(void)bsnprintf(why, whylen, "S/MIME: the certificate in %s "
		    "expired on %s (get a new one from its CA and replace the "
		    "file)", path, day);
		return -1;
	}
	if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
		asn1_day(X509_get0_notBefore(cert), day, sizeof(day));
		(void)bsnprintf(why, whylen, "S/MIME: the certificate in %s "
		    "is valid only from %s (check this machine's clock)",
		    path, day);
		return -1;
	}
	if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(cert) & (XKU_SMIME | XKU_ANYEKU))) {
		(void)bsnprintf(why, whylen, "S/MIME: the certificate in %s "
		    "is not for e-mail: its extended key usage lacks "
		    "emailProtection (ask the CA for an S/MIME certificate)",
		    path);
		return -1;
	}
	if (domain) {
		const char *at = strrchr(address, '@');

		ok = cert_has_domain(cert, at != NULL ? at + 1 : address);
	} else
		ok = X509_check_email(cert, address, strlen(address), 0) == 1;
	if (!ok) {
		cert_emails(cert, &names);
		(void)bsnprintf(why, whylen, "S/MIME: the certificate in %s "
		    "does not carry %s (it names %s; use the certificate "
		    "issued for that address)", path, address,
		    names.len > 0 ? names.s : "no e-mail address");
		strbuf_free(&names);
		return -1;
	}
	return 0;
}

/* Every certificate of a PEM file (NULL with why when none / unreadable). */
static STACK_OF(X509) *
read_certs(const char *path, EVP_PKEY **keyp, char *why, size_t whylen)
{
	STACK_OF(X509_INFO) *infos;
	STACK_OF(X509) *certs;
	char r[200];
	BIO *b;
	int i;

	if ((b = BIO_new_file(path, "r")) == NULL) {
		int e = errno;

		ERR_clear_error();
		(void)bsnprintf(why, whylen, "S/MIME: cannot read %s: %s (%s)",
		    path, strerror(e), keyp != NULL ? "put the sender's "
		    "private key and certificate, chain optional, in that "
		    "file as PEM" : "put the recipient's certificate in that "
		    "file as PEM");
		return NULL;
	}
	infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	if (infos == NULL) {
		ossl_reason(r, sizeof(r));
		(void)bsnprintf(why, whylen, "S/MIME: %s is not PEM (%s)",
		    path, r);
		return NULL;
	}
	certs = sk_X509_new_null();
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);

		if (xi->x509 != NULL && sk_X509_push(certs, xi->x509) > 0)
			xi->x509 = NULL;
		if (keyp != NULL && *keyp == NULL && xi->x_pkey != NULL &&
		    xi->x_pkey->dec_pkey != NULL) {
			*keyp = xi->x_pkey->dec_pkey;
			xi->x_pkey->dec_pkey = NULL;
		}
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (sk_X509_num(certs) == 0) {
		sk_X509_free(certs);
		(void)bsnprintf(why, whylen, "S/MIME: %s holds no certificate "
		    "(add the PEM certificate%s)", path, keyp != NULL ?
		    " issued for this key, then its chain" : "");
		return NULL;
	}
	return certs;
}

/* Split the file's certificates: the one matching the key, the rest. */
static int
pick_cert(struct smime_signer *s, STACK_OF(X509) *certs, char *why,
    size_t whylen)
{
	int i;

	for (i = 0; i < sk_X509_num(certs); i++)
		if (X509_check_private_key(sk_X509_value(certs, i), s->key))
			break;
	ERR_clear_error();
	if (i == sk_X509_num(certs)) {
		(void)bsnprintf(why, whylen, "S/MIME: the private key in %s "
		    "does not belong to its certificate (put the key and the "
		    "certificate issued for it in that file)", s->path);
		return -1;
	}
	s->cert = sk_X509_delete(certs, i);
	s->chain = certs;
	return 0;
}

struct smime_signer *
smime_signer_load(const char *dir, const char *address, unsigned flags,
    time_t now, char *why, size_t whylen)
{
	struct smime_signer *s = xcalloc(1, sizeof(*s));
	STACK_OF(X509) *certs;
	const char *at = strrchr(address, '@');
	int domain = 0;

	if (key_path(s->path, sizeof(s->path), dir, address, ".pem", why,
	    whylen) == -1)
		goto fail;
	if ((flags & SMIME_DOMAIN_KEY) && at == NULL)
		domain = 1;	/* a domain named directly */
	else if ((flags & SMIME_DOMAIN_KEY) && at != NULL &&
	    access(s->path, F_OK) == -1) {
		if (key_path(s->path, sizeof(s->path), dir, at + 1, ".pem",
		    why, whylen) == -1)
			goto fail;
		domain = 1;
	}
	if ((certs = read_certs(s->path, &s->key, why, whylen)) == NULL)
		goto fail;
	if (s->key == NULL) {
		sk_X509_pop_free(certs, X509_free);
		(void)bsnprintf(why, whylen, "S/MIME: %s holds no private key "
		    "(put the sender's unencrypted PEM private key in it, "
		    "with its certificate)", s->path);
		goto fail;
	}
	if (pick_cert(s, certs, why, whylen) == -1) {
		sk_X509_pop_free(certs, X509_free);
		goto fail;
	}
	if (smime_check_cert(s->cert, s->path, address, domain, now, why,
	    whylen) == -1)
		goto fail;
	return s;
fail:
	smime_signer_free(s);
	return NULL;
}

void
smime_signer_free(struct smime_signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	X509_free(s->cert);
	sk_X509_pop_free(s->chain, X509_free);
	free(s);
}

X509 *
smime_recipient_load(const char *dir, const char *address, time_t now,
    char *why, size_t whylen)
{
	STACK_OF(X509) *certs;
	char path[1024];
	X509 *x = NULL;
	int i;

	if (key_path(path, sizeof(path), dir, address, ".crt", why,
	    whylen) == -1 ||
	    (certs = read_certs(path, NULL, why, whylen)) == NULL)
		return NULL;
	/* the first certificate for that address (a file may carry its
	 * chain after it) */
	for (i = 0; i < sk_X509_num(certs) && x == NULL; i++)
		if (X509_check_email(sk_X509_value(certs, i), address,
		    strlen(address), 0) == 1)
			x = sk_X509_value(certs, i);
	if (x == NULL)
		x = sk_X509_value(certs, 0);
	if (smime_check_cert(x, path, address, 0, now, why, whylen) == -1)
		x = NULL;
	else
		X509_up_ref(x);
	sk_X509_pop_free(certs, X509_free);
	return x;
}

/* ---- the message ----------------------------------------------------- */

/* MIME content fields go inside the S/MIME entity, the rest stays out. */
static int
is_content_field(const char *m, const struct msg_field *f)
{
	return (f->name_len > 8 && ascii_ncasecmp(m + f->off, "Content-",
	    8) == 0) || msg_field_is(m, f, "MIME-Version");
}

/*
 * Split msg into the outer header (appended to outer) and the inner
 * entity (appended to inner): its content fields and body, canonical.
 */
static int
split_message(const char *m, size_t len, struct strbuf *outer,
    struct strbuf *inner, char *why, size_t whylen)
{
	struct msg_field f;
	size_t pos = 0, body;
	int r, has_type = 0;
	const char *cs;

	while ((r = msg_field_next(m, len, &pos, &f)) == 1) {
		if (!is_content_field(m, &f))
			strbuf_add(outer, m + f.off, f.len);
		else if (!msg_field_is(m, &f, "MIME-Version")) {
			strbuf_add(inner, m + f.off, f.len);
			has_type |= msg_field_is(m, &f, "Content-Type");
		}
	}
	if (r == -1 || pos == 0) {
		(void)bsnprintf(why, whylen, "S/MIME: the message has no "
		    "header section");
		return -1;
	}
	body = pos + 2 <= len ? pos + 2 : len;	/* after the empty line */
	if (has_type || mime_enc_pick(m + body, len - body, 1) == MIME_7BIT) {
		if (!has_type)
			strbuf_puts(inner, "Content-Type: text/plain; "
			    "charset=us-ascii\r\n");
		strbuf_puts(inner, "\r\n");
		strbuf_add(inner, m + body, len - body);
		if (inner->len < 2 || memcmp(inner->s + inner->len - 2, "\r\n",
		    2) != 0)
			strbuf_puts(inner, "\r\n");
		return 0;
	}
	/* plain 8-bit text: made 7-bit safe before it is signed */
	cs = utf8_valid((const unsigned char *)m + body, len - body) ?
	    "utf-8" : "unknown-8bit";
	strbuf_printf(inner, "Content-Type: text/plain; charset=%s\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", cs);
	mime_enc_qp(m + body, len - body, inner);
	return 0;
}

/* DER of a CMS structure, base64 in lines, appended. */
static int
cms_b64(CMS_ContentInfo *cms, struct strbuf *out)
{
	unsigned char *der = NULL;
	int n = i2d_CMS_ContentInfo(cms, &der);

	if (n <= 0)
		return -1;
	base64_mime(der, (size_t)n, out);
	OPENSSL_free(der);
	return 0;
}

/* Replace *entity by a multipart/signed entity over it. */
static int
sign_entity(struct smime_signer *s, struct strbuf *entity, char *why,
    size_t whylen)
{
	unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	struct strbuf out = STRBUF_INIT;
	CMS_ContentInfo *cms = NULL;
	BIO *data = NULL;
	char bd[64], r[200];
	int i, rc = -1;

	if (mime_enc_boundary(bd, sizeof(bd)) == -1)
		goto done;
	if ((data = BIO_new_mem_buf(entity->s, (int)entity->len)) == NULL ||
	    (cms = CMS_sign(NULL, NULL, NULL, NULL, flags)) == NULL ||
	    CMS_add1_signer(cms, s->cert, s->key, EVP_sha256(),
	    CMS_BINARY) == NULL)
		goto done;
	for (i = 0; i < sk_X509_num(s->chain); i++)
		if (!CMS_add1_cert(cms, sk_X509_value(s->chain, i)))
			goto done;
	if (!CMS_final(cms, data, NULL, flags))
		goto done;
	strbuf_printf(&out, "Content-Type: multipart/signed;\r\n"
	    "\tprotocol=\"application/pkcs7-signature\";\r\n"
	    "\tmicalg=sha-256;\r\n\tboundary=\"%s\"\r\n\r\n"
	    "This is an S/MIME signed message.\r\n\r\n--%s\r\n", bd, bd);
	/* the part's content is the entity including its last CRLF: the
	 * CRLF before the delimiter belongs to the delimiter (RFC 2046) */
	strbuf_add(&out, entity->s, entity->len);
	strbuf_printf(&out, "\r\n--%s\r\n"
	    "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
	    "\r\n", bd);
	if (cms_b64(cms, &out) == -1)
		goto done;
	strbuf_printf(&out, "\r\n--%s--\r\n", bd);
	strbuf_free(entity);
	*entity = out;
	strbuf_init(&out);
	rc = 0;
done:
	if (rc == -1) {
		ossl_reason(r, sizeof(r));
		(void)bsnprintf(why, whylen, "S/MIME: signing with %s failed: "
		    "%s", s->path, r);
	}
	strbuf_free(&out);
	CMS_ContentInfo_free(cms);
	BIO_free(data);
	return rc;
}

/* Replace *entity by an application/pkcs7-mime entity encrypting it. */
static int
encrypt_entity(STACK_OF(X509) *rcpts, enum smime_cipher cipher,
    struct strbuf *entity, char *why, size_t whylen)
{
	struct strbuf out = STRBUF_INIT;
	CMS_ContentInfo *cms = NULL;
	BIO *data = NULL;
	char r[200];
	int gcm = cipher == SMIME_AES256_GCM, rc = -1;

	if ((data = BIO_new_mem_buf(entity->s, (int)entity->len)) == NULL ||
	    (cms = CMS_encrypt(rcpts, data, gcm ? EVP_aes_256_gcm() :
	    EVP_aes_256_cbc(), CMS_BINARY)) == NULL)
		goto done;
	strbuf_printf(&out, "Content-Type: application/pkcs7-mime;\r\n"
	    "\tsmime-type=%s; name=\"smime.p7m\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
	    "\r\n", gcm ? "authEnveloped-data" : "enveloped-data");
	if (cms_b64(cms, &out) == -1)
		goto done;
	strbuf_free(entity);
	*entity = out;
	strbuf_init(&out);
	rc = 0;
done:
	if (rc == -1) {
		ossl_reason(r, sizeof(r));
		(void)bsnprintf(why, whylen, "S/MIME: encryption failed: %s",
		    r);
	}
	strbuf_free(&out);
	CMS_ContentInfo_free(cms);
	BIO_free(data);
	return rc;
}

/* Every recipient certificate, checked; NULL with why. */
static STACK_OF(X509) *
load_recipients(const struct smime_request *rq, time_t now, char *why,
    size_t whylen)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;
	size_t i;

	if (rq->nrcpts == 0) {
		(void)bsnprintf(why, whylen, "S/MIME: no recipient to encrypt "
		    "for");
		sk_X509_free(sk);
		return NULL;
	}
	for (i = 0; i < rq->nrcpts; i++) {
		if ((x = smime_recipient_load(rq->keys_dir, rq->rcpts[i], now,
		    why, whylen)) == NULL || !sk_X509_push(sk, x)) {
			X509_free(x);
			sk_X509_pop_free(sk, X509_free);
			return NULL;
		}
	}
	return sk;
}

int
smime_apply(const struct smime_request *rq, const char *msg, size_t len,
    struct strbuf *out, char *why, size_t whylen)
{
	struct strbuf outer = STRBUF_INIT, inner = STRBUF_INIT;
	struct smime_signer *signer = NULL;
	STACK_OF(X509) *rcpts = NULL;
	time_t now = rq->now != 0 ? rq->now : time(NULL);
	int rc = -1;

	if ((rq->ops & SMIME_SIGN) && (rq->signer == NULL ||
	    (signer = smime_signer_load(rq->keys_dir, rq->signer, rq->ops,
	    now, why, whylen)) == NULL)) {
		if (rq->signer == NULL)
			(void)bsnprintf(why, whylen, "S/MIME: no sender "
			    "address to sign for (give From: or --from)");
		goto done;
	}
	if ((rq->ops & SMIME_ENCRYPT) && rq->rcpt_certs != NULL &&
	    (rcpts = X509_chain_up_ref(rq->rcpt_certs)) == NULL) {
		(void)bsnprintf(why, whylen, "S/MIME: out of memory");
		goto done;
	}
	if ((rq->ops & SMIME_ENCRYPT) && rcpts == NULL &&
	    (rcpts = load_recipients(rq, now, why, whylen)) == NULL)
		goto done;
	if (split_message(msg, len, &outer, &inner, why, whylen) == -1)
		goto done;
	if (signer != NULL && sign_entity(signer, &inner, why, whylen) == -1)
		goto done;
	if (rcpts != NULL && encrypt_entity(rcpts, rq->cipher, &inner, why,
	    whylen) == -1)
		goto done;
	strbuf_add(out, outer.s, outer.len);
	strbuf_puts(out, "MIME-Version: 1.0\r\n");
	strbuf_add(out, inner.s, inner.len);
	rc = 0;
done:
	smime_signer_free(signer);
	sk_X509_pop_free(rcpts, X509_free);
	strbuf_free(&outer);
	strbuf_free(&inner);
	return rc;
}
