/*
 * test_smime.c - S/MIME through the module's API and back through
 * OpenSSL's: signatures verify against the CA (SMIME_read_CMS +
 * CMS_verify), enveloped data (AES-256-CBC) and authenticated enveloped
 * data (AES-256-GCM) decrypt with the recipient's key, sign-then-encrypt
 * nests, outer header fields stay outside; key lookup (address file,
 * domain key for the gateway) and every certificate check with its
 * message.  Keys are made here (EC P-256) in a scratch directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define TEST_TMPDIR_PREFIX "postern-smime"
#include "test_tmpdir.h"

#include "smime.h"
#include "util.h"

static EVP_PKEY *ca_key, *bob_key;
static X509 *ca_cert, *bob_cert;

static const char MSG[] = "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\nSubject: s\r\nDate: Thu, 01 Jan 2026 00:00:00 "
    "+0000\r\nMessage-ID: <1@example.org>\r\n\r\nsecret body\r\n";

static void
ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, ca_cert != NULL ? ca_cert : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate for `san` signed by the CA (self-signed when ca_cert is
 * NULL), valid from now + from_days to now + to_days. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, const char *san, const char *eku,
    long from_days, long to_days)
{
	static long serial = 1000;	/* unique per issuer */
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, ca_cert != NULL ?
	    X509_get_subject_name(ca_cert) : n);
	X509_set_pubkey(x, key);
	X509_set_version(x, 2);
	if (ca_cert == NULL) {
		ext(x, NID_basic_constraints, "critical,CA:TRUE");
		ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		ext(x, NID_subject_alt_name, san);
		ext(x, NID_ext_key_usage, eku);
	}
	assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static void
write_pem(const char *name, EVP_PKEY *key, X509 *cert, X509 *chain)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	if (key != NULL)
		PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
	PEM_write_X509(fp, cert);
	if (chain != NULL)
		PEM_write_X509(fp, chain);
	fclose(fp);
}

static void
signer(const char *file, const char *san, const char *eku, long from,
    long to, int mismatch)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	X509 *c = make_cert(k, "signer", san, eku, from, to);

	write_pem(file, mismatch ? other : k, c, ca_cert);
	X509_free(c);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static int
group_setup(void **state)
{
	EVP_PKEY *k;
	X509 *c;

	if (setup(state) == -1)
		return -1;
	ca_key = EVP_EC_gen("P-256");
	ca_cert = make_cert(ca_key, "Unit CA", NULL, NULL, -1, 30);
	signer("alice@example.org.pem", "email:alice@example.org",
	    "emailProtection", -1, 30, 0);
	signer("example.com.pem", "email:postmaster@example.com",
	    "emailProtection", -1, 30, 0);
	signer("old@example.org.pem", "email:old@example.org",
	    "emailProtection", -20, -2, 0);
	signer("future@example.org.pem", "email:future@example.org",
	    "emailProtection", 2, 20, 0);
	signer("tls@example.org.pem", "email:tls@example.org",
	    "serverAuth", -1, 30, 0);
	signer("wrong@example.org.pem", "email:right@example.org",
	    "emailProtection", -1, 30, 0);
	signer("mismatch@example.org.pem", "email:mismatch@example.org",
	    "emailProtection", -1, 30, 1);
	bob_key = EVP_EC_gen("P-256");
	bob_cert = make_cert(bob_key, "bob", "email:bob@example.net",
	    "emailProtection", -1, 30);
	write_pem("bob@example.net.crt", NULL, bob_cert, NULL);
	k = EVP_EC_gen("P-256");
	c = make_cert(k, "nokey", "email:nokey@example.org",
	    "emailProtection", -1, 30);
	write_pem("nokey@example.org.pem", NULL, c, NULL);
	X509_free(c);
	EVP_PKEY_free(k);
	return 0;
}

static int
group_teardown(void **state)
{

	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(bob_key);
	X509_free(ca_cert);
	X509_free(bob_cert);
	return teardown(state);
}

static int
apply(unsigned ops, enum smime_cipher cipher, const char *from,
    const char *rcpt, struct strbuf *out, char *why, size_t whylen)
{
	const char *rcpts[] = { rcpt };
	struct smime_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.ops = ops;
	rq.cipher = cipher;
	rq.keys_dir = tmpdir;
	rq.signer = from;
	rq.rcpts = rcpts;
	rq.nrcpts = 1;
	return smime_apply(&rq, MSG, strlen(MSG), out, why, whylen);
}

/* Verify a signed message; returns the signed content. */
static char *
verify(const char *m, size_t len, size_t *clen)
{
	BIO *in = BIO_new_mem_buf(m, (int)len), *dcont = NULL;
	BIO *out = BIO_new(BIO_s_mem());
	X509_STORE *st = X509_STORE_new();
	CMS_ContentInfo *cms;
	char *p, *copy;
	long n;

	X509_STORE_add_cert(st, ca_cert);
	cms = SMIME_read_CMS(in, &dcont);
	assert_non_null(cms);
	if (CMS_verify(cms, NULL, st, dcont, out, CMS_BINARY) != 1) {
		ERR_print_errors_fp(stderr);
		fail_msg("CMS_verify failed");
	}
	n = BIO_get_mem_data(out, &p);
	copy = xstrndup(p, (size_t)n);
	*clen = (size_t)n;
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(dcont);
	BIO_free(out);
	X509_STORE_free(st);
	return copy;
}

static char *
decrypt(const char *m, size_t len)
{
	BIO *in = BIO_new_mem_buf(m, (int)len), *out = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms = SMIME_read_CMS(in, NULL);
	char *p, *copy;
	long n;

	assert_non_null(cms);
	assert_int_equal(CMS_decrypt(cms, bob_key, bob_cert, NULL, out, 0), 1);
	n = BIO_get_mem_data(out, &p);
	copy = xstrndup(p, (size_t)n);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(out);
	return copy;
}

static void
assert_outer(const char *m)
{
	const char *mime = strstr(m, "MIME-Version: 1.0\r\n");

	assert_non_null(mime);
	assert_true(strstr(m, "From: Alice <alice@example.org>\r\n") < mime);
	assert_true(strstr(m, "Subject: s\r\n") < mime);
	assert_true(strstr(m, "Message-ID: <1@example.org>\r\n") < mime);
	assert_true(strstr(m, "Date: ") < mime);
	assert_true(strstr(m, "To: bob@example.net\r\n") < mime);
}

static void
test_sign(void **state)
{
	struct strbuf out = STRBUF_INIT;
	char why[512], *content;
	size_t clen;

	(void)state;
	assert_int_equal(apply(SMIME_SIGN, SMIME_AES256_CBC,
	    "alice@example.org", "bob@example.net", &out, why, sizeof(why)),
	    0);
	assert_outer(out.s);
	assert_non_null(strstr(out.s, "micalg=sha-256"));
	content = verify(out.s, out.len, &clen);
	assert_string_equal(content, "Content-Type: text/plain; "
	    "charset=us-ascii\r\n\r\nsecret body\r\n");
	free(content);
	strbuf_free(&out);
}

static void
test_encrypt(void **state)
{
	static const enum smime_cipher c[] = { SMIME_AES256_CBC,
	    SMIME_AES256_GCM };
	static const char *type[] = { "smime-type=enveloped-data",
	    "smime-type=authEnveloped-data" };
	struct strbuf out = STRBUF_INIT;
	char why[512], *plain;
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		strbuf_reset(&out);
		assert_int_equal(apply(SMIME_ENCRYPT, c[i], NULL,
		    "bob@example.net", &out, why, sizeof(why)), 0);
		assert_outer(out.s);
		assert_non_null(strstr(out.s, type[i]));
		assert_null(strstr(out.s, "secret body"));
		plain = decrypt(out.s, out.len);
		assert_non_null(strstr(plain, "\r\n\r\nsecret body\r\n"));
		free(plain);
	}
	strbuf_free(&out);
}

static void
test_sign_encrypt(void **state)
{
	struct strbuf out = STRBUF_INIT;
	char why[512], *inner, *content;
	size_t clen;

	(void)state;
	assert_int_equal(apply(SMIME_SIGN | SMIME_ENCRYPT, SMIME_AES256_CBC,
	    "alice@example.org", "bob@example.net", &out, why, sizeof(why)),
	    0);
	inner = decrypt(out.s, out.len);
	assert_non_null(strstr(inner, "multipart/signed"));
	content = verify(inner, strlen(inner), &clen);
	assert_non_null(strstr(content, "secret body"));
	free(inner);
	free(content);
	strbuf_free(&out);
}

static void
test_domain_key(void **state)
{
	struct smime_signer *s;
	char why[512];

	(void)state;
	s = smime_signer_load(tmpdir, "anyone@example.com", 0, time(NULL),
	    why, sizeof(why));
	assert_null(s);
	assert_non_null(strstr(why, "anyone@example.com.pem"));
	s = smime_signer_load(tmpdir, "anyone@example.com", SMIME_DOMAIN_KEY,
	    time(NULL), why, sizeof(why));
	assert_non_null(s);
	assert_non_null(strstr(s->path, "/example.com.pem"));
	smime_signer_free(s);
	/* an address file wins over the domain key */
	s = smime_signer_load(tmpdir, "alice@example.org", SMIME_DOMAIN_KEY,
	    time(NULL), why, sizeof(why));
	assert_non_null(s);
	assert_non_null(strstr(s->path, "/alice@example.org.pem"));
	smime_signer_free(s);
}

static void
test_key_problems(void **state)
{
	static const struct { const char *addr, *want[2]; } c[] = {
		{ "none@example.org", { "none@example.org.pem: No such file",
		    "put the sender's private key" } },
		{ "nokey@example.org", { "nokey@example.org.pem holds no "
		    "private key", "" } },
		{ "old@example.org", { "old@example.org.pem expired on ",
		    "get a new one" } },
		{ "future@example.org", { "is valid only from", "clock" } },
		{ "tls@example.org", { "lacks emailProtection", "S/MIME "
		    "certificate" } },
		{ "wrong@example.org", { "does not carry wrong@example.org",
		    "it names right@example.org" } },
		{ "mismatch@example.org", { "does not belong to its "
		    "certificate", "mismatch@example.org.pem" } },
		{ "../x", { "cannot name a key file", "" } },
	};
	struct strbuf out = STRBUF_INIT;
	char why[512];
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		assert_int_equal(apply(SMIME_SIGN, SMIME_AES256_CBC, c[i].addr,
		    "bob@example.net", &out, why, sizeof(why)), -1);
		for (j = 0; j < 2; j++)
			if (strstr(why, c[i].want[j]) == NULL)
				fail_msg("%s: %s", c[i].addr, why);
		assert_int_equal(out.len, 0);
	}
	assert_int_equal(apply(SMIME_ENCRYPT, SMIME_AES256_CBC, NULL,
	    "carl@example.net", &out, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "carl@example.net.crt"));
	assert_non_null(strstr(why, "recipient's certificate"));
	strbuf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_encrypt),
		cmocka_unit_test(test_sign_encrypt),
		cmocka_unit_test(test_domain_key),
		cmocka_unit_test(test_key_problems),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
