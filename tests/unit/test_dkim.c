/*
 * test_dkim.c - DKIM (dkim.c): the RFC 8463 appendix A example through
 * our Ed25519 path (its key, its message: the same body hash and, Ed25519
 * being deterministic, the very same signature; and that signature
 * verified with OpenSSL over our canonical form); relaxed header and
 * body canonicalisation (RFC 6376 3.4.5 and edge cases); what dkim_sign
 * writes (h= with over-signing and List-*, folding, t= and x=, the same
 * bytes twice); key loading and its refusals; key records (parse,
 * match, zone-file form with strings of at most 255 octets).
 *
 * Independent verifiers (dkimpy, mailauth) check our signatures in the
 * end-to-end tests (tests/e2e/test_dkim.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#define TEST_TMPDIR_PREFIX "postern-dkim"
#include "test_tmpdir.h"

#include "base64.h"
#include "dkim.h"
#include "strbuf.h"
#include "util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- RFC 8463 appendix A --------------------------------------------- */

/* A.1: the Ed25519 private key (seed) and public key. */
#define RFC_SEED	"nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
#define RFC_PUB		"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

/* A.3: the message (without its signatures) */
static const char rfc_msg[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

/* ... and its Ed25519 DKIM-Signature field, up to "b=". */
static const char rfc_sig[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=";
static const char rfc_h[] = "from : to :\r\n subject : date : message-id : "
    "from : subject : date";
static const char rfc_b[] = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwh"
    "EIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";

static void
write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *fp;

	snprintf(path, len, "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct dkim_key *
load_text(const char *name, const char *text)
{
	char path[512], why[512];
	struct dkim_key *k;

	write_file(name, text, path, sizeof(path));
	k = dkim_key_load(path, why, sizeof(why));
	if (k == NULL)
		fail_msg("%s", why);
	return k;
}

static void
test_rfc8463_signature(void **state)
{
	struct strbuf b = STRBUF_INIT, pub = STRBUF_INIT;
	struct dkim_key *k = load_text("rfc8463.key", RFC_SEED "\n");
	struct dkim_msg *dm;
	char why[512];

	assert_int_equal(k->alg, DKIM_ED25519_SHA256);
	assert_int_equal(dkim_key_public(k, &pub), 0);
	assert_string_equal(pub.s, RFC_PUB);
	dm = dkim_msg_new(rfc_msg, strlen(rfc_msg), why, sizeof(why));
	assert_non_null(dm);
	assert_string_equal(dkim_msg_body_hash(dm),
	    "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	assert_string_equal(dkim_msg_from_domain(dm), "football.example.com");
	assert_int_equal(dkim_sign_fields(dm, k, rfc_h, rfc_sig,
	    strlen(rfc_sig), &b, why, sizeof(why)), 0);
	assert_string_equal(b.s, rfc_b);
	strbuf_free(&b);
	strbuf_free(&pub);
	dkim_msg_free(dm);
	dkim_key_free(k);
}

/* The RFC's signature verifies, with OpenSSL and the RFC's public key,
 * over the data our canonicalisation makes (RFC 8463 3: Ed25519 over the
 * SHA-256 of the canonical header fields). */
static void
test_rfc8463_verifies(void **state)
{
	static const char *const hs[][2] = {
		{ "From", " Joe SixPack <joe@football.example.com>" },
		{ "To", " Suzie Q <suzie@shopping.example.net>" },
		{ "Subject", " Is dinner ready?" },
		{ "Date", " Fri, 11 Jul 2003 21:00:37 -0700 (PDT)" },
		{ "Message-ID",
		    " <20030712040037.46341.5F8J@football.example.com>" },
	};
	struct strbuf data = STRBUF_INIT;
	unsigned char pub[32], sig[64], hash[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pk;
	size_t i;

	for (i = 0; i < NELEM(hs); i++)	/* h=from:to:subject:date:message-id */
		dkim_canon_header(hs[i][0], strlen(hs[i][0]), hs[i][1],
		    strlen(hs[i][1]), &data);
	dkim_canon_header("DKIM-Signature", 14, rfc_sig + 15,
	    strlen(rfc_sig) - 15, &data);
	strbuf_truncate(&data, data.len - 2);
	assert_int_equal(base64_decode(RFC_PUB, strlen(RFC_PUB), pub,
	    sizeof(pub)), 32);
	assert_int_equal(base64_decode(rfc_b, strlen(rfc_b), sig, sizeof(sig)),
	    64);
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	assert_non_null(pk);
	assert_int_equal(EVP_Digest(data.s, data.len, hash, NULL,
	    EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, 64, hash, 32), 1);
	/* and not over the data itself (that would be plain Ed25519) */
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
	assert_int_not_equal(EVP_DigestVerify(md, sig, 64,
	    (unsigned char *)data.s, data.len), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	strbuf_free(&data);
}

/* ---- canonicalisation -------------------------------------------------- */

static void
test_canon_header(void **state)
{
	static const struct {
		const char *name, *value, *want;
	} t[] = {
		/* RFC 6376 3.4.5 */
		{ "A", " X", "a:X\r\n" },
		{ "B", " Y\t\r\n\tZ  ", "b:Y Z\r\n" },
		{ "Subject", "  hello \t  there  ", "subject:hello there\r\n" },
		{ "To", " a@b,\r\n   c@d", "to:a@b, c@d\r\n" },
		{ "X-Empty", "", "x-empty:\r\n" },
		{ "X-Ws", " \t ", "x-ws:\r\n" },
		{ "X-8bit", " caf\xc3\xa9", "x-8bit:caf\xc3\xa9\r\n" },
		{ "X-Cr", " a\rb", "x-cr:a\rb\r\n" },
	};
	struct strbuf got = STRBUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		strbuf_reset(&got);
		dkim_canon_header(t[i].name, strlen(t[i].name), t[i].value,
		    strlen(t[i].value), &got);
		assert_string_equal(got.s, t[i].want);
	}
	strbuf_free(&got);
}

static void
test_canon_body(void **state)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		/* RFC 6376 3.4.5 */
		{ " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		{ "", "" },
		{ "\r\n", "" },
		{ "\r\n\r\n \t \r\n", "" },
		{ "no end", "no end\r\n" },
		{ "a\r\n\r\nb", "a\r\n\r\nb\r\n" },
		{ "a  \r\n \r\n\r\nb\r\n \r\n", "a\r\n\r\n\r\nb\r\n" },
		{ "bare\nlf  x\r\n", "bare\nlf x\r\n" },
		{ "\t\tlead\r\n", " lead\r\n" },
		{ "x\r\r\n", "x\r\r\n" },
		{ "trailing ws only   ", "trailing ws only\r\n" },
	};
	struct strbuf got = STRBUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		strbuf_reset(&got);
		dkim_canon_body(t[i].in, strlen(t[i].in), &got);
		strbuf_puts(&got, "");
		assert_string_equal(got.s, t[i].want);
	}
	strbuf_free(&got);
}

/* A body bigger than the canonicaliser's staging buffer. */
static void
test_canon_body_large(void **state)
{
	struct strbuf in = STRBUF_INIT, got = STRBUF_INIT, want = STRBUF_INIT;
	size_t i;

	for (i = 0; i < 5000; i++) {
		strbuf_printf(&in, "line  %zu \t\r\n", i);
		strbuf_printf(&want, "line %zu\r\n", i);
	}
	strbuf_puts(&in, "\r\n\r\n");
	dkim_canon_body(in.s, in.len, &got);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.s, want.s, want.len);
	strbuf_free(&in);
	strbuf_free(&got);
	strbuf_free(&want);
}

/* ---- signing ----------------------------------------------------------- */

static const char msg2[] =
    "Received: by mx.test.example\r\n"
    "From: Alice <alice@Example.COM>\r\n"
    "To: a@x.example\r\n"
    "Subject: hello\r\n"
    "To: b@x.example\r\n"
    "List-Id: <list.example.com>\r\n"
    "List-Unsubscribe: <mailto:u@example.com>\r\n"
    "List-Id: <second.example.com>\r\n"
    /* a List-* name too long for one folded line of h=: not signed */
    "List-Iddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
    "dddddddddd: <x.example>\r\n"
    "X-Other: not signed\r\n"
    "\r\n"
    "body\r\n";

/* The value of tag `t` in a field (unfolded), into out. */
static void
tag_value(const char *field, const char *t, char *out, size_t len)
{
	struct strbuf u = STRBUF_INIT;
	const char *p, *e;
	size_t i;

	for (i = 0; field[i] != '\0'; i++)
		if (field[i] != '\r' && field[i] != '\n' && field[i] != '\t')
			strbuf_putc(&u, field[i]);
	p = strstr(u.s, t);
	assert_non_null(p);
	p += strlen(t);
	e = strchr(p, ';');
	snprintf(out, len, "%.*s", (int)(e != NULL ? (size_t)(e - p) :
	    strlen(p)), p);
	strbuf_free(&u);
}

static void
test_sign_fields_and_folding(void **state)
{
	struct dkim_key *k;
	struct dkim_msg *dm;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	char why[512], h[512], v[64];
	const char *line, *nl;

	k = dkim_key_generate(DKIM_ED25519_SHA256, 256, why, sizeof(why));
	assert_non_null(k);
	dm = dkim_msg_new(msg2, strlen(msg2), why, sizeof(why));
	assert_non_null(dm);
	assert_string_equal(dkim_msg_from_domain(dm), "example.com");
	assert_int_equal(dkim_sign(dm, k, "example.com", "e2026", 1763880000,
	    604800, &a, why, sizeof(why)), 0);
	/* Ed25519 is deterministic: the same message, the same bytes */
	assert_int_equal(dkim_sign(dm, k, "example.com", "e2026", 1763880000,
	    604800, &b, why, sizeof(why)), 0);
	assert_string_equal(a.s, b.s);
	assert_true(strncmp(a.s, "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "c=relaxed/relaxed; d=example.com;", 72) == 0);
	tag_value(a.s, " h=", h, sizeof(h));
	assert_string_equal(h, "From:From:To:To:To:Cc:Subject:Subject:"
	    "List-Id:List-Id:List-Unsubscribe");
	tag_value(a.s, " t=", v, sizeof(v));
	assert_string_equal(v, "1763880000");
	tag_value(a.s, " x=", v, sizeof(v));
	assert_string_equal(v, "1764484800");
	assert_null(strstr(a.s, " l="));
	/* folded: no line over 78 octets, continuation lines start with a
	 * tab, one CRLF at the end */
	for (line = a.s; *line != '\0'; line = nl + 2) {
		nl = strstr(line, "\r\n");
		assert_non_null(nl);
		assert_true(nl - line <= 78);
		assert_true(line == a.s || line[0] == '\t');
	}
	strbuf_free(&a);
	strbuf_free(&b);
	dkim_msg_free(dm);
	dkim_key_free(k);
}

static void
test_sign_no_x_and_rsa(void **state)
{
	struct dkim_key *k;
	struct dkim_msg *dm;
	struct strbuf a = STRBUF_INIT;
	char why[512], v[512];

	k = dkim_key_generate(DKIM_RSA_SHA256, 2048, why, sizeof(why));
	assert_non_null(k);
	assert_int_equal(k->bits, 2048);
	dm = dkim_msg_new(rfc_msg, strlen(rfc_msg), why, sizeof(why));
	assert_non_null(dm);
	assert_int_equal(dkim_sign(dm, k, "football.example.com", "s", 5, 0,
	    &a, why, sizeof(why)), 0);
	assert_null(strstr(a.s, " x="));
	tag_value(a.s, " a=", v, sizeof(v));
	assert_string_equal(v, "rsa-sha256");
	tag_value(a.s, " b=", v, sizeof(v));
	assert_int_equal(strlen(v), 344);	/* 256 octets in base64 */
	strbuf_free(&a);
	dkim_msg_free(dm);
	dkim_key_free(k);
}

static void
test_msg_errors(void **state)
{
	static const struct {
		const char *msg, *want_why, *want_from;
	} t[] = {
		{ "From: a@b.example\r\nnot a field\r\n\r\nx\r\n",
		    "line 2 of the header section", NULL },
		{ " leading continuation\r\n\r\n", "line 1", NULL },
		{ "Subject: x\r\n\r\nbody", NULL, NULL },
		{ "From: broken <<\r\n\r\n", NULL, NULL },
		{ "From: \"Q\" <Q@Sub.Example.ORG>, b@c.example\r\n", NULL,
		    "sub.example.org" },
		{ "", NULL, NULL },
	};
	struct dkim_msg *dm;
	char why[512];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		why[0] = '\0';
		dm = dkim_msg_new(t[i].msg, strlen(t[i].msg), why, sizeof(why));
		if (t[i].want_why != NULL) {
			assert_null(dm);
			assert_non_null(strstr(why, t[i].want_why));
			continue;
		}
		assert_non_null(dm);
		if (t[i].want_from == NULL)
			assert_null(dkim_msg_from_domain(dm));
		else
			assert_string_equal(dkim_msg_from_domain(dm),
			    t[i].want_from);
		dkim_msg_free(dm);
	}
}

static void
test_msg_too_many_fields(void **state)
{
	struct strbuf m = STRBUF_INIT;
	char why[512];
	size_t i;

	for (i = 0; i <= DKIM_FIELDS_MAX; i++)
		strbuf_puts(&m, "X-A: b\r\n");
	strbuf_puts(&m, "\r\nbody\r\n");
	assert_null(dkim_msg_new(m.s, m.len, why, sizeof(why)));
	assert_non_null(strstr(why, "more than"));
	strbuf_free(&m);
}

/* ---- keys ------------------------------------------------------------- */

static void
write_key(const char *name, EVP_PKEY *pk, const char *pass)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, pk, pass != NULL ?
	    EVP_aes_256_cbc() : NULL, (unsigned char *)pass, pass != NULL ?
	    (int)strlen(pass) : 0, NULL, NULL), 1);
	fclose(fp);
	EVP_PKEY_free(pk);
}

static void
test_key_load_refusals(void **state)
{
	static const struct {
		const char *file, *want;
	} t[] = {
		{ "missing.key", "cannot read DKIM key" },
		{ "garbage.key", "holds no usable private key" },
		{ "ec.key", "is of type EC" },
		{ "rsa512.key", "RSA with 512 bits" },
		{ "locked.key", "holds no usable private key" },
	};
	char path[512], why[512];
	size_t i;

	write_file("garbage.key", "not a key\n", path, sizeof(path));
	write_key("ec.key", EVP_EC_gen("P-256"), NULL);
	write_key("rsa512.key", EVP_RSA_gen(512), NULL);
	write_key("locked.key", EVP_RSA_gen(1024), "secret");
	for (i = 0; i < NELEM(t); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, t[i].file);
		assert_null(dkim_key_load(path, why, sizeof(why)));
		if (strstr(why, t[i].want) == NULL)
			fail_msg("%s: %s", t[i].file, why);
		assert_non_null(strstr(why, path));
	}
}

static void
test_key_load_accepts(void **state)
{
	struct dkim_key *k, *g;
	struct strbuf pem = STRBUF_INIT;
	char path[512], why[512];

	write_key("rsa1024.key", EVP_RSA_gen(1024), NULL);
	snprintf(path, sizeof(path), "%s/rsa1024.key", tmpdir);
	k = dkim_key_load(path, why, sizeof(why));
	assert_non_null(k);
	assert_int_equal(k->alg, DKIM_RSA_SHA256);
	assert_int_equal(k->bits, 1024);
	dkim_key_free(k);
	/* what keygen writes loads back as the same key */
	g = dkim_key_generate(DKIM_ED25519_SHA256, 256, why, sizeof(why));
	assert_int_equal(dkim_key_pem(g, &pem), 0);
	assert_non_null(strstr(pem.s, "BEGIN PRIVATE KEY"));
	k = load_text("ed.key", pem.s);
	assert_int_equal(k->alg, DKIM_ED25519_SHA256);
	assert_int_equal(EVP_PKEY_eq(k->pkey, g->pkey), 1);
	dkim_key_free(k);
	dkim_key_free(g);
	strbuf_free(&pem);
}

/* ---- records ---------------------------------------------------------- */

static void
test_record_parse(void **state)
{
	static const struct {
		const char *txt;
		int ok, testing, revoked, sha256, email;
		const char *k, *why;
	} t[] = {
		{ "v=DKIM1; k=rsa; p=" RFC_PUB, 1, 0, 0, 1, 1, "rsa", NULL },
		{ "v=DKIM1; k=ed25519; t=y; p=" RFC_PUB, 1, 1, 0, 1, 1,
		    "ed25519", NULL },
		{ "p=" RFC_PUB, 1, 0, 0, 1, 1, "rsa", NULL },
		{ " v = DKIM1 ;\tk=ED25519 ; p = 11qYAYKxCrfVS/7TyWQHOg7hcvPap"
		    "iMlrwI aaPcHURo= ;", 1, 0, 0, 1, 1, "ed25519", NULL },
		{ "v=DKIM1; p=", 1, 0, 1, 1, 1, "rsa", NULL },
		{ "v=DKIM1; h=sha1; p=" RFC_PUB, 1, 0, 0, 0, 1, "rsa", NULL },
		{ "v=DKIM1; h=sha1:sha256; s=email; t=s:y; p=" RFC_PUB, 1, 1, 0,
		    1, 1, "rsa", NULL },
		{ "v=DKIM1; s=other; p=" RFC_PUB, 1, 0, 0, 1, 0, "rsa", NULL },
		{ "v=DKIM1; k=rsa", 0, 0, 0, 0, 0, NULL, "no p= tag" },
		{ "k=rsa; v=DKIM1; p=" RFC_PUB, 0, 0, 0, 0, 0, NULL,
		    "v= must come first" },
		{ "v=DKIM2; p=" RFC_PUB, 0, 0, 0, 0, 0, NULL, "DKIM1" },
		{ "v=DKIM1; p=abc; p=def", 0, 0, 0, 0, 0, NULL, "twice" },
		{ "v=DKIM1; p=not*base64", 0, 0, 0, 0, 0, NULL, "base64" },
		{ "v=spf1 -all", 0, 0, 0, 0, 0, NULL, "v= must come first" },
		{ "hello world", 0, 0, 0, 0, 0, NULL, "not a DKIM tag list" },
		{ "", 0, 0, 0, 0, 0, NULL, "no p= tag" },
	};
	struct dkim_record r;
	char why[256];
	size_t i;
	int got;

	for (i = 0; i < NELEM(t); i++) {
		why[0] = '\0';
		got = dkim_record_parse(t[i].txt, strlen(t[i].txt), &r, why,
		    sizeof(why));
		if (!t[i].ok) {
			assert_int_equal(got, -1);
			if (strstr(why, t[i].why) == NULL)
				fail_msg("row %zu: %s", i, why);
			continue;
		}
		if (got != 0)
			fail_msg("row %zu: %s", i, why);
		assert_int_equal(r.testing, t[i].testing);
		assert_int_equal(r.revoked, t[i].revoked);
		assert_int_equal(r.sha256, t[i].sha256);
		assert_int_equal(r.email, t[i].email);
		assert_string_equal(r.k, t[i].k);
		assert_int_equal(r.plen, r.revoked ? 0 : 32);
	}
}

static void
test_record_matches(void **state)
{
	struct dkim_key *rsa, *rsa2, *ed;
	struct strbuf txt = STRBUF_INIT;
	struct dkim_record r;
	char why[256];

	rsa = dkim_key_generate(DKIM_RSA_SHA256, 2048, why, sizeof(why));
	rsa2 = dkim_key_generate(DKIM_RSA_SHA256, 2048, why, sizeof(why));
	ed = dkim_key_generate(DKIM_ED25519_SHA256, 256, why, sizeof(why));
	assert_int_equal(dkim_record_text(rsa, &txt), 0);
	assert_int_equal(dkim_record_parse(txt.s, txt.len, &r, why,
	    sizeof(why)), 0);
	assert_int_equal(dkim_record_matches(&r, rsa), 1);
	assert_int_equal(dkim_record_matches(&r, rsa2), 0);
	assert_int_equal(dkim_record_matches(&r, ed), 0);
	strbuf_reset(&txt);
	assert_int_equal(dkim_record_text(ed, &txt), 0);
	assert_int_equal(dkim_record_parse(txt.s, txt.len, &r, why,
	    sizeof(why)), 0);
	assert_int_equal(dkim_record_matches(&r, ed), 1);
	bstrlcpy(r.k, "rsa", sizeof(r.k));	/* right key, wrong k= */
	assert_int_equal(dkim_record_matches(&r, ed), 0);
	strbuf_free(&txt);
	dkim_key_free(rsa);
	dkim_key_free(rsa2);
	dkim_key_free(ed);
}

/* The zone-file form: quoted strings of at most 255 octets that join to
 * the record text. */
static void
test_record_zone(void **state)
{
	static const int bits[] = { 2048, 3072, 256 };
	struct strbuf z = STRBUF_INIT, joined = STRBUF_INIT, txt = STRBUF_INIT;
	struct dkim_key *k;
	const char *p, *q;
	char why[256];
	size_t i;

	for (i = 0; i < NELEM(bits); i++) {
		k = dkim_key_generate(bits[i] == 256 ? DKIM_ED25519_SHA256 :
		    DKIM_RSA_SHA256, bits[i], why, sizeof(why));
		strbuf_reset(&z);
		strbuf_reset(&joined);
		strbuf_reset(&txt);
		assert_int_equal(dkim_record_zone("s1", "example.com", k, &z), 0);
		assert_true(strncmp(z.s, "s1._domainkey.example.com. IN TXT ( ",
		    36) == 0);
		assert_non_null(strstr(z.s, " )\n"));
		for (p = strchr(z.s, '"'); p != NULL; p = strchr(q + 1, '"')) {
			q = strchr(p + 1, '"');
			assert_non_null(q);
			assert_true(q - p - 1 <= 255);
			strbuf_add(&joined, p + 1, (size_t)(q - p - 1));
		}
		assert_int_equal(dkim_record_text(k, &txt), 0);
		assert_string_equal(joined.s, txt.s);
		dkim_key_free(k);
	}
	strbuf_free(&z);
	strbuf_free(&joined);
	strbuf_free(&txt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8463_signature),
		cmocka_unit_test(test_rfc8463_verifies),
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_canon_body),
		cmocka_unit_test(test_canon_body_large),
		cmocka_unit_test(test_sign_fields_and_folding),
		cmocka_unit_test(test_sign_no_x_and_rsa),
		cmocka_unit_test(test_msg_errors),
		cmocka_unit_test(test_msg_too_many_fields),
		cmocka_unit_test(test_key_load_refusals),
		cmocka_unit_test(test_key_load_accepts),
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_record_matches),
		cmocka_unit_test(test_record_zone),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
