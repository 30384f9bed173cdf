/*
 * test_certstore.c - the certificate store (certstore.c) and the trust
 * store loader (truststore.c): ID and SAN validation, selfsign/load round
 * trip in a temp dir, key mismatch, requests and finding their keys,
 * chain ordering, PEM/DER reading.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "truststore.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX "test_certstore"
#include "test_tmpdir.h"

static void
test_valid_id(void **state)
{
	(void)state;
	assert_true(certstore_valid_id("default"));
	assert_true(certstore_valid_id("mx-2025.example_a"));
	assert_false(certstore_valid_id(""));
	assert_false(certstore_valid_id(".hidden"));
	assert_false(certstore_valid_id("a/b"));
	assert_false(certstore_valid_id("../x"));
	assert_false(certstore_valid_id("a b"));
	assert_false(certstore_valid_id(NULL));
}

static void
test_valid_san(void **state)
{
	(void)state;
	assert_true(certstore_valid_san("mx.example.com"));
	assert_true(certstore_valid_san("*.example.com"));
	assert_true(certstore_valid_san("localhost"));
	assert_true(certstore_valid_san("192.0.2.1"));
	assert_true(certstore_valid_san("2001:db8::1"));
	assert_false(certstore_valid_san(""));
	assert_false(certstore_valid_san("a b.example"));
	assert_false(certstore_valid_san("foo..bar"));
	assert_false(certstore_valid_san("*"));
	assert_false(certstore_valid_san("x,DNS:evil"));
}

static void
test_selfsign_roundtrip(void **state)
{
	const char *sans[] = { "alt.example.com", "192.0.2.1",
	    "MX.example.com" };
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	char why[512], path[4096], desc[64], cn[256];
	struct stat st;
	int days;

	(void)state;
	assert_false(certstore_exists(tmpdir, "t"));
	assert_int_equal(certstore_selfsign(tmpdir, "t", "mx.example.com",
	    sans, 3, 30, "ec256", why, sizeof(why)), 0);
	assert_true(certstore_exists(tmpdir, "t"));
	assert_int_equal(certstore_load(tmpdir, "t", &leaf, &key, &chain,
	    why, sizeof(why)), 0);
	assert_non_null(leaf);
	assert_non_null(key);
	assert_int_equal(sk_X509_num(chain), 0);
	assert_true(certstore_key_matches(leaf, key));
	assert_int_equal(X509_check_host(leaf, "mx.example.com", 0, 0, NULL),
	    1);
	assert_int_equal(X509_check_host(leaf, "alt.example.com", 0, 0,
	    NULL), 1);
	assert_int_equal(X509_check_host(leaf, "other.example.com", 0, 0,
	    NULL), 0);
	assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.1", 0), 1);
	certstore_key_desc(key, desc, sizeof(desc));
	assert_string_equal(desc, "EC P-256");
	certstore_cn(X509_get_subject_name(leaf), cn, sizeof(cn));
	assert_string_equal(cn, "mx.example.com");
	days = certstore_days_until(X509_get0_notAfter(leaf));
	assert_true(days >= 29 && days <= 30);
	/* serial: random, positive, 128 bits */
	assert_true(ASN1_INTEGER_get_int64(NULL,
	    X509_get0_serialNumber(leaf)) == 0);	/* too big for int64 */
	/* self-signed, SHA-256 */
	assert_int_equal(X509_self_signed(leaf, 1), 1);
	assert_int_equal(X509_get_signature_nid(leaf),
	    NID_ecdsa_with_SHA256);
	/* the SAN list holds mx (from the CN) once, not twice */
	{
		GENERAL_NAMES *g = X509_get_ext_d2i(leaf, NID_subject_alt_name,
		    NULL, NULL);
		assert_non_null(g);
		assert_int_equal(sk_GENERAL_NAME_num(g), 3);
		GENERAL_NAMES_free(g);
	}
	assert_int_equal(certstore_path(tmpdir, "t", ".key", path,
	    sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
}

static void
test_selfsign_rsa_and_errors(void **state)
{
	const char *bad[] = { "not a name" };
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	char why[512], desc[64];
	int crit = -1;
	ASN1_BIT_STRING *ku;

	(void)state;
	assert_int_equal(certstore_selfsign(tmpdir, "r", "mx.example.com",
	    NULL, 0, 365, NULL, why, sizeof(why)), 0);
	assert_int_equal(certstore_load(tmpdir, "r", &leaf, &key, &chain,
	    why, sizeof(why)), 0);
	certstore_key_desc(key, desc, sizeof(desc));
	assert_string_equal(desc, "RSA 2048");
	ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
	assert_non_null(ku);
	assert_int_equal(crit, 1);
	assert_true(X509_get_key_usage(leaf) & KU_KEY_ENCIPHERMENT);
	assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
	assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
	assert_int_equal(X509_check_ca(leaf), 0);
	ASN1_BIT_STRING_free(ku);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);

	assert_int_equal(certstore_selfsign(tmpdir, "../evil", "x", NULL, 0,
	    1, NULL, why, sizeof(why)), -1);
	assert_int_equal(certstore_selfsign(tmpdir, "b", "x", bad, 1, 1,
	    NULL, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a name"));
	assert_int_equal(certstore_selfsign(tmpdir, "b", "x", NULL, 0, 1,
	    "dsa1024", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "dsa1024"));
	assert_false(certstore_exists(tmpdir, "b"));

	assert_int_equal(certstore_load(tmpdir, "missing", &leaf, &key,
	    &chain, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "postern cert selfsign"));
}

static void
test_key_mismatch(void **state)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	char why[512], pa[4096], kb[4096];

	(void)state;
	assert_int_equal(certstore_selfsign(tmpdir, "a", "a.example", NULL, 0,
	    10, "ec256", why, sizeof(why)), 0);
	assert_int_equal(certstore_selfsign(tmpdir, "b", "b.example", NULL, 0,
	    10, "ec256", why, sizeof(why)), 0);
	certstore_path(tmpdir, "a", ".pem", pa, sizeof(pa));
	certstore_path(tmpdir, "b", ".key", kb, sizeof(kb));
	assert_int_equal(certstore_load_files(pa, kb, NULL, &leaf, &key,
	    &chain, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "does not match"));
	assert_null(leaf);
	assert_null(key);
	/* a certificate file without a key and no key file */
	assert_int_equal(certstore_load_files(pa, NULL, NULL, &leaf, &key,
	    &chain, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "no private key"));
}

/* ---- a small CA made in memory ---- */

static EVP_PKEY *
eckey(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k);
	return k;
}

static X509 *
mkcert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *ikey, int ca)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	static long serial = 1;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 100);
	X509_set_pubkey(x, pub);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (ca) {
		e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, ikey, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static void
test_order_chain(void **state)
{
	EVP_PKEY *rk = eckey(), *k1 = eckey(), *k2 = eckey(), *lk = eckey();
	EVP_PKEY *ok = eckey();
	X509 *root = mkcert("Root", rk, NULL, rk, 1);
	X509 *i1 = mkcert("Int1", k1, root, rk, 1);
	X509 *i2 = mkcert("Int2", k2, i1, k1, 1);
	X509 *leaf = mkcert("leaf.example", lk, i2, k2, 0);
	X509 *other = mkcert("Other", ok, NULL, ok, 0);
	X509 *stray = mkcert("Stray", lk, other, ok, 0);
	STACK_OF(X509) *in = sk_X509_new_null(), *out;
	struct certstore_chainfix fix;

	(void)state;
	/* wrong order, duplicate, root, copy of the leaf, a stray cert */
	sk_X509_push(in, i1);
	sk_X509_push(in, root);
	sk_X509_push(in, i2);
	sk_X509_push(in, i2);
	sk_X509_push(in, leaf);
	sk_X509_push(in, stray);
	out = certstore_order_chain(leaf, in, &fix);
	assert_int_equal(sk_X509_num(out), 2);
	assert_int_equal(X509_cmp(sk_X509_value(out, 0), i2), 0);
	assert_int_equal(X509_cmp(sk_X509_value(out, 1), i1), 0);
	assert_int_equal(fix.reordered, 1);
	assert_int_equal(fix.duplicates, 2);
	assert_int_equal(fix.roots, 1);
	assert_int_equal(fix.unrelated, 1);
	sk_X509_pop_free(out, X509_free);

	/* already right: nothing to report */
	sk_X509_zero(in);
	sk_X509_push(in, i2);
	sk_X509_push(in, i1);
	out = certstore_order_chain(leaf, in, &fix);
	assert_int_equal(sk_X509_num(out), 2);
	assert_int_equal(X509_cmp(sk_X509_value(out, 0), i2), 0);
	assert_int_equal(fix.reordered + fix.duplicates + fix.roots +
	    fix.unrelated, 0);
	sk_X509_pop_free(out, X509_free);

	/* missing link: only the upper intermediate is given */
	sk_X509_zero(in);
	sk_X509_push(in, i1);
	out = certstore_order_chain(leaf, in, &fix);
	assert_int_equal(sk_X509_num(out), 0);
	assert_int_equal(fix.unrelated, 1);
	sk_X509_pop_free(out, X509_free);

	sk_X509_free(in);
	X509_free(root);
	X509_free(i1);
	X509_free(i2);
	X509_free(leaf);
	X509_free(other);
	X509_free(stray);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(lk);
	EVP_PKEY_free(ok);
}

static void
test_csr_and_find_key(void **state)
{
	struct certstore_subject subj = { "mail.example.org", "Example",
	    NULL, "DE", NULL, NULL, NULL };
	const char *sans[] = { "smtp.example.org" };
	EVP_PKEY *cak = eckey(), *found_key = NULL;
	X509 *ca = mkcert("CA", cak, NULL, cak, 1), *signed_leaf;
	X509_REQ *req = NULL;
	char why[512], found[64], path[4096];
	struct stat st;

	(void)state;
	assert_int_equal(certstore_make_csr(tmpdir, "pend", &subj, sans, 1,
	    "ec256", &req, why, sizeof(why)), 0);
	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
	certstore_path(tmpdir, "pend", ".key", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	certstore_path(tmpdir, "pend", ".csr", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_false(certstore_exists(tmpdir, "pend"));	/* no .pem yet */

	/* the CA signs it; the store finds the key by itself */
	signed_leaf = mkcert("mail.example.org", X509_REQ_get0_pubkey(req),
	    ca, cak, 0);
	assert_int_equal(certstore_find_key(tmpdir, signed_leaf, "other",
	    &found_key, found, sizeof(found), why, sizeof(why)), 1);
	assert_string_equal(found, "pend");
	assert_true(certstore_key_matches(signed_leaf, found_key));
	EVP_PKEY_free(found_key);
	/* a certificate for a foreign key: nothing found */
	assert_int_equal(certstore_find_key(tmpdir, ca, NULL, &found_key,
	    found, sizeof(found), why, sizeof(why)), 0);
	assert_null(found_key);

	X509_REQ_free(req);
	X509_free(signed_leaf);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

static void
test_read_certs_formats(void **state)
{
	EVP_PKEY *k = eckey();
	X509 *x = mkcert("der.example", k, NULL, k, 1);
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	unsigned char *der = NULL;
	char path[4096], why[512];
	int len;

	(void)state;
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	snprintf(path, sizeof(path), "%s/c.der", tmpdir);
	assert_int_equal(write_file_atomic(path, der, (size_t)len, 0644), 0);
	assert_int_equal(certstore_read_certs(path, &certs, why,
	    sizeof(why)), 0);
	assert_int_equal(sk_X509_num(certs), 1);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), x), 0);
	sk_X509_pop_free(certs, X509_free);
	assert_int_equal(certstore_read_key(path, &key, why, sizeof(why)), 0);

	snprintf(path, sizeof(path), "%s/junk.pem", tmpdir);
	assert_int_equal(write_file_atomic(path, "hello\n", 6, 0644), 0);
	assert_int_equal(certstore_read_certs(path, &certs, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "holds no certificate"));

	snprintf(path, sizeof(path), "%s/broken.pem", tmpdir);
	assert_int_equal(write_file_atomic(path, "-----BEGIN CERTIFICATE-----"
	    "\nAAAA!!!\n-----END CERTIFICATE-----\n", 62, 0644), 0);
	assert_int_equal(certstore_read_certs(path, &certs, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "damaged"));

	snprintf(path, sizeof(path), "%s/none.pem", tmpdir);
	assert_int_equal(certstore_read_certs(path, &certs, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot read"));

	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
test_truststore_load(void **state)
{
	EVP_PKEY *k = eckey();
	X509 *ca = mkcert("Trusted CA", k, NULL, k, 1);
	X509 *ca2 = mkcert("Second CA", k, NULL, k, 1);
	X509_STORE *store = X509_STORE_new();
	char dir[4096], path[4096], why[512], **names;
	size_t n;
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	(void)state;
	/* no trust directory: an empty store */
	assert_int_equal(truststore_load(store, tmpdir, 0, why, sizeof(why)),
	    0);
	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, TRUSTSTORE_SUBDIR);
	assert_int_equal(mkdir(dir, 0755), 0);
	PEM_write_bio_X509(bio, ca);
	PEM_write_bio_X509(bio, ca2);
	len = BIO_get_mem_data(bio, &data);
	assert_int_equal(truststore_path(tmpdir, "corp", path, sizeof(path)),
	    0);
	assert_int_equal(write_file_atomic(path, data, (size_t)len, 0644), 0);
	assert_int_equal(truststore_load(store, tmpdir, 0, why, sizeof(why)),
	    2);
	assert_int_equal(truststore_list(tmpdir, &names, &n, why,
	    sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "corp");
	strv_free(names, n);
	/* a broken file is an error that names it */
	assert_int_equal(truststore_path(tmpdir, "bad", path, sizeof(path)),
	    0);
	assert_int_equal(write_file_atomic(path, "junk", 4, 0644), 0);
	assert_int_equal(truststore_load(store, tmpdir, 0, why, sizeof(why)),
	    -1);
	assert_non_null(strstr(why, "bad.pem"));
	BIO_free(bio);
	X509_STORE_free(store);
	X509_free(ca);
	X509_free(ca2);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_id),
		cmocka_unit_test(test_valid_san),
		cmocka_unit_test_setup_teardown(test_selfsign_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_selfsign_rsa_and_errors,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_mismatch, setup,
		    teardown),
		cmocka_unit_test(test_order_chain),
		cmocka_unit_test_setup_teardown(test_csr_and_find_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_certs_formats, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truststore_load, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
