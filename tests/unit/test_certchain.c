/*
 * test_certchain.c - chain verification with its failures told apart,
 * against certificates made in memory (root -> intermediate -> leaf):
 * a good chain, a leaf sent without its intermediate (with and without a
 * caIssuers URL), an untrusted root (sent, and not sent), a self-signed
 * leaf, an expired leaf (and the same with time not checked); host name
 * matching (SAN, wildcard of one label, CN only, IP address, none) with
 * the names listed; weak keys and SHA-1 signatures; file stems.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certchain.h"

struct made {
	X509		*x;
	EVP_PKEY	*k;
};

/* "ec" or "rsa1024" keys */
static EVP_PKEY *
key(const char *kind)
{
	EVP_PKEY *k = strcmp(kind, "ec") == 0 ?
	    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	assert_non_null(k);
	return k;
}

static void
ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/*
 * A certificate for `cn` (NULL: no CN) signed by `by` (NULL: itself),
 * valid from `nb` to `na` days from now; `sans` a subjectAltName value
 * or NULL; `ca` a CA; `aia` with a caIssuers URL; `md` the digest.
 */
static struct made
make(const char *cn, const struct made *by, int nb, int na, const char *sans,
    int ca, int aia, const EVP_MD *md, const char *kind)
{
	static long serial = 1;
	struct made m;
	X509_NAME *n;

	m.k = key(kind);
	m.x = X509_new();
	assert_non_null(m.x);
	X509_set_version(m.x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(m.x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(m.x), (long)nb * 86400);
	X509_gmtime_adj(X509_getm_notAfter(m.x), (long)na * 86400);
	X509_set_pubkey(m.x, m.k);
	n = X509_get_subject_name(m.x);
	if (cn != NULL)
		X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
		    (const unsigned char *)cn, -1, -1, 0);
	else
		X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
		    (const unsigned char *)"No CN", -1, -1, 0);
	X509_set_issuer_name(m.x, by != NULL ? X509_get_subject_name(by->x) :
	    n);
	ext(m.x, by != NULL ? by->x : m.x, NID_basic_constraints, ca ?
	    "critical,CA:TRUE" : "critical,CA:FALSE");
	if (ca)
		ext(m.x, m.x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (sans != NULL)
		ext(m.x, NULL, NID_subject_alt_name, sans);
	if (aia)
		ext(m.x, NULL, NID_info_access,
		    "caIssuers;URI:http://ca.example/int.der");
	assert_true(X509_sign(m.x, by != NULL ? by->k : m.k,
	    md != NULL ? md : EVP_sha256()) > 0);
	return m;
}

static void
unmake(struct made *m)
{
	X509_free(m->x);
	EVP_PKEY_free(m->k);
}

static STACK_OF(X509) *
stack(X509 *a, X509 *b, X509 *c)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	assert_non_null(sk);
	if (a != NULL)
		sk_X509_push(sk, a);
	if (b != NULL)
		sk_X509_push(sk, b);
	if (c != NULL)
		sk_X509_push(sk, c);
	return sk;
}

struct pki {
	struct made root, inter, leaf, bare, self, old;
	X509_STORE *trusting, *empty;
};

static int
setup(void **state)
{
	struct pki *p = calloc(1, sizeof(*p));

	p->root = make("Root CA", NULL, -1, 400, NULL, 1, 0, NULL, "ec");
	p->inter = make("Int CA", &p->root, -1, 400, NULL, 1, 0, NULL, "ec");
	p->leaf = make("mx.example", &p->inter, -1, 400,
	    "DNS:mx.example,DNS:*.wild.example,IP:192.0.2.1", 0, 1, NULL,
	    "ec");
	p->bare = make("bare.example", &p->inter, -1, 400,
	    "DNS:bare.example", 0, 0, NULL, "ec");
	p->self = make("*.self.example", NULL, -1, 400, NULL, 0, 0, NULL,
	    "ec");
	p->old = make("old.example", &p->inter, -30, -2, "DNS:old.example", 0,
	    1, NULL, "ec");
	p->trusting = X509_STORE_new();
	p->empty = X509_STORE_new();
	assert_int_equal(X509_STORE_add_cert(p->trusting, p->root.x), 1);
	*state = p;
	return 0;
}

static int
teardown(void **state)
{
	struct pki *p = *state;

	unmake(&p->root);
	unmake(&p->inter);
	unmake(&p->leaf);
	unmake(&p->bare);
	unmake(&p->self);
	unmake(&p->old);
	X509_STORE_free(p->trusting);
	X509_STORE_free(p->empty);
	free(p);
	return 0;
}

struct vcase {
	const char	*what;
	int		 store_trusts;	/* the root is in the store */
	int		 leaf;		/* 0 leaf, 1 bare, 2 self, 3 old */
	int		 send_inter, send_root, check_time;
	enum certchain_problem want;
	const char	*want_issuer;	/* "" = any */
	const char	*want_stem;
};

static const struct vcase vcases[] = {
	{ "good chain", 1, 0, 1, 0, 1, CERTCHAIN_OK, "", "" },
	{ "leaf alone, caIssuers", 1, 0, 0, 0, 1,
	    CERTCHAIN_MISSING_INTERMEDIATE, "CN=Int CA", "" },
	{ "leaf alone, no caIssuers", 1, 1, 0, 0, 1,
	    CERTCHAIN_UNTRUSTED_ROOT, "CN=Int CA", "" },
	{ "root not trusted, not sent", 0, 0, 1, 0, 1,
	    CERTCHAIN_UNTRUSTED_ROOT, "CN=Root CA", "" },
	{ "root not trusted, sent", 0, 0, 1, 1, 1, CERTCHAIN_UNTRUSTED_ROOT,
	    "CN=Root CA", "Root_CA" },
	{ "self-signed", 1, 2, 0, 0, 1, CERTCHAIN_SELF_SIGNED,
	    "CN=*.self.example", "_wildcard.self.example" },
	{ "expired", 1, 3, 1, 0, 1, CERTCHAIN_EXPIRED, "old.example", "" },
	{ "expired, time not checked", 1, 3, 1, 0, 0, CERTCHAIN_OK, "", "" },
};

static void
test_verify(void **state)
{
	struct pki *p = *state;
	X509 *leaves[] = { p->leaf.x, p->bare.x, p->self.x, p->old.x };
	struct certchain_facts f;
	enum certchain_problem got;
	char issuer[256], stem[160], when[64];
	STACK_OF(X509) *sent;
	size_t i;
	int ok;

	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		const struct vcase *c = &vcases[i];

		sent = stack(leaves[c->leaf], c->send_inter ? p->inter.x :
		    NULL, c->send_root ? p->root.x : NULL);
		ok = certchain_verify(c->store_trusts ? p->trusting : p->empty,
		    leaves[c->leaf], sent, c->check_time, &f);
		got = certchain_server_problem(&f, issuer, sizeof(issuer),
		    stem, sizeof(stem), when, sizeof(when));
		if (got != c->want || ok != (c->want == CERTCHAIN_OK))
			fail_msg("%s: got problem %d (error %ld), want %d",
			    c->what, (int)got, f.error, (int)c->want);
		if (c->want_issuer[0] != '\0')
			assert_string_equal(issuer, c->want_issuer);
		assert_string_equal(stem, c->want_stem);
		if (got == CERTCHAIN_EXPIRED)
			assert_true(strlen(when) >= 10);
		if (got == CERTCHAIN_OK)
			assert_string_equal(f.anchor, "Root CA");
		sk_X509_free(sent);
	}
}

static void
test_match_host(void **state)
{
	static const struct {
		const char		*host;
		enum certchain_match	 want;
		const char		*matched;
	} c[] = {
		{ "mx.example", CERTCHAIN_MATCH_SAN, "mx.example" },
		{ "MX.Example", CERTCHAIN_MATCH_SAN, "mx.example" },
		{ "a.wild.example", CERTCHAIN_MATCH_WILDCARD,
		    "*.wild.example" },
		{ "b.a.wild.example", CERTCHAIN_NO_MATCH, "" },
		{ "wild.example", CERTCHAIN_NO_MATCH, "" },
		{ "192.0.2.1", CERTCHAIN_MATCH_IP, "192.0.2.1" },
		{ "192.0.2.2", CERTCHAIN_NO_MATCH, "" },
		{ "other.example", CERTCHAIN_NO_MATCH, "" },
	};
	struct pki *p = *state;
	struct strbuf names = STRBUF_INIT;
	struct made cnonly;
	char matched[256];
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		strbuf_reset(&names);
		assert_int_equal(certchain_match_host(p->leaf.x, c[i].host,
		    &names, matched, sizeof(matched)), c[i].want);
		assert_string_equal(matched, c[i].matched);
		assert_string_equal(names.s, "CN mx.example; SAN mx.example, "
		    "*.wild.example, 192.0.2.1");
	}
	/* no DNS SAN: the CN counts, and says so */
	cnonly = make("cn.example", &p->inter, -1, 400, NULL, 0, 0, NULL,
	    "ec");
	strbuf_reset(&names);
	assert_int_equal(certchain_match_host(cnonly.x, "cn.example", &names,
	    matched, sizeof(matched)), CERTCHAIN_MATCH_CN);
	assert_string_equal(matched, "cn.example");
	assert_string_equal(names.s, "CN cn.example; SAN -");
	unmake(&cnonly);
	strbuf_free(&names);
}

static void
test_link_checks(void **state)
{
	struct pki *p = *state;
	struct made weak, sha1;

	weak = make("weak.example", &p->inter, -1, 400, NULL, 0, 0, NULL,
	    "rsa1024");
	sha1 = make("sha1.example", &p->inter, -1, 400, NULL, 0, 0,
	    EVP_sha1(), "ec");
	assert_int_equal(certchain_weak_key(weak.x), 1);
	assert_int_equal(certchain_weak_key(p->leaf.x), 0);
	assert_int_equal(certchain_sig_weak(sha1.x), 1);
	assert_int_equal(certchain_sig_weak(p->leaf.x), 0);
	assert_string_equal(certchain_sig_name(sha1.x), "ecdsa-with-SHA1");
	assert_string_equal(certchain_sig_name(p->leaf.x),
	    "ecdsa-with-SHA256");
	unmake(&weak);
	unmake(&sha1);
}

static void
test_file_stem(void **state)
{
	static const struct { const char *cn, *want; } c[] = {
		{ "mx.example", "mx.example" },
		{ "*.example.com", "_wildcard.example.com" },
		{ ".hidden", "_hidden" },
		{ "a b/c", "a_b_c" },
		{ "..", "_." },
	};
	struct pki *p = *state;
	struct made m;
	char stem[160];
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		m = make(c[i].cn, &p->inter, -1, 1, NULL, 0, 0, NULL, "ec");
		certchain_file_stem(m.x, stem, sizeof(stem));
		assert_string_equal(stem, c[i].want);
		unmake(&m);
	}
	m = make(NULL, &p->inter, -1, 1, NULL, 0, 0, NULL, "ec");
	certchain_file_stem(m.x, stem, sizeof(stem));
	assert_int_equal(strlen(stem), 8);		/* the subject hash */
	assert_int_equal(strspn(stem, "0123456789abcdef"), 8);
	unmake(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_match_host),
		cmocka_unit_test(test_link_checks),
		cmocka_unit_test(test_file_stem),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
