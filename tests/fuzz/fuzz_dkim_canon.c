/*
 * fuzz_dkim_canon.c - libFuzzer target for what DKIM (dkim.c) reads of
 * untrusted input: a message (header split, relaxed header and body
 * canonicalisation, the From: domain, the h= list and the signing data,
 * signed with a fixed Ed25519 key) and a DNS key record (tag list).
 *
 * Checks: the relaxed body is empty or ends in CRLF, has no WSP before a
 * CRLF, no two WSP in a row and no empty line at its end, and
 * canonicalising it again changes nothing; every relaxed header field is
 * one line "name:value" + CRLF, lower-case name, no WSP at the value's
 * ends and no WSP run; a signature is one DKIM-Signature field ending in
 * CRLF with lines of at most 78 octets, and signing the same message
 * again gives the same bytes; a record that parses has p= decoded
 * within its bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dkim.h"
#include "fuzz_check.h"
#include "msg_prep.h"
#include "strbuf.h"
#include "util.h"

static struct dkim_key *key;

/* A fixed Ed25519 key (the seed of RFC 8463 appendix A). */
static struct dkim_key *
fixed_key(void)
{
	static const unsigned char seed[32] = {
		0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84,
		0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69,
		0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
		0x7f, 0x60
	};
	struct dkim_key *k = xcalloc(1, sizeof(*k));

	k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    sizeof(seed));
	CHECK(k->pkey != NULL);
	k->alg = DKIM_ED25519_SHA256;
	k->bits = 256;
	return k;
}

static int
wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void
check_body(const char *b, size_t len)
{
	struct strbuf c = STRBUF_INIT, again = STRBUF_INIT;
	size_t i;

	dkim_canon_body(b, len, &c);
	CHECK(c.len == 0 || (c.len >= 2 && memcmp(c.s + c.len - 2, "\r\n",
	    2) == 0));
	CHECK(c.len < 4 || memcmp(c.s + c.len - 4, "\r\n\r\n", 4) != 0 ||
	    c.len == 2);
	for (i = 0; i + 1 < c.len; i++) {
		CHECK(!(wsp(c.s[i]) && c.s[i + 1] == '\r' && i + 2 < c.len &&
		    c.s[i + 2] == '\n'));
		CHECK(!(wsp(c.s[i]) && wsp(c.s[i + 1])));
		CHECK(c.s[i] != '\t');
	}
	dkim_canon_body(c.s, c.len, &again);
	CHECK(again.len == c.len && (c.len == 0 || memcmp(again.s, c.s,
	    c.len) == 0));
	strbuf_free(&c);
	strbuf_free(&again);
}

static void
check_fields(const char *m, size_t len)
{
	struct strbuf c = STRBUF_INIT;
	struct msg_field f;
	size_t pos = 0, i, colon;

	while (msg_field_next(m, len, &pos, &f) == 1) {
		strbuf_reset(&c);
		dkim_canon_header(m + f.off, f.name_len, m + f.value_off,
		    f.value_len, &c);
		colon = f.name_len;
		CHECK(c.len >= colon + 3 && c.s[colon] == ':');
		CHECK(memcmp(c.s + c.len - 2, "\r\n", 2) == 0);
		for (i = 0; i < colon; i++)
			CHECK(!(c.s[i] >= 'A' && c.s[i] <= 'Z'));
		CHECK(c.len == colon + 3 || (!wsp(c.s[colon + 1]) &&
		    !wsp(c.s[c.len - 3])));
		for (i = colon; i + 3 < c.len; i++) {
			CHECK(c.s[i] != '\n' && c.s[i] != '\t');
			CHECK(!(c.s[i] == ' ' && c.s[i + 1] == ' '));
		}
	}
	strbuf_free(&c);
}

static void
check_sign(const char *m, size_t len)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	struct dkim_msg *dm;
	const char *line, *nl;
	char why[512];

	why[0] = '\0';
	if ((dm = dkim_msg_new(m, len, why, sizeof(why))) == NULL) {
		CHECK(why[0] != '\0');
		return;
	}
	CHECK(strlen(dkim_msg_body_hash(dm)) == 44);
	CHECK(dkim_msg_from_domain(dm) == NULL ||
	    strpbrk(dkim_msg_from_domain(dm), "\r\n@") == NULL);
	CHECK(dkim_sign(dm, key, "example.com", "s", 1763880000, 3600, &a,
	    why, sizeof(why)) == 0);
	CHECK(dkim_sign(dm, key, "example.com", "s", 1763880000, 3600, &b,
	    why, sizeof(why)) == 0);
	CHECK(a.len == b.len && memcmp(a.s, b.s, a.len) == 0);
	CHECK(strncmp(a.s, "DKIM-Signature: v=1;", 20) == 0);
	for (line = a.s; line < a.s + a.len; line = nl + 2) {
		nl = strstr(line, "\r\n");
		CHECK(nl != NULL && nl - line <= 78);
		CHECK(line == a.s || line[0] == '\t');
	}
	strbuf_free(&a);
	strbuf_free(&b);
	dkim_msg_free(dm);
}

static void
check_record(const char *t, size_t len)
{
	struct dkim_record r;
	char why[256];

	why[0] = '\0';
	if (dkim_record_parse(t, len, &r, why, sizeof(why)) == 0) {
		CHECK(r.plen <= sizeof(r.p));
		CHECK(r.revoked == (r.plen == 0));
		CHECK(strlen(r.k) < sizeof(r.k));
		(void)dkim_record_matches(&r, key);
	} else
		CHECK(why[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *m = (const char *)data;

	if (key == NULL)
		key = fixed_key();
	check_body(m, size);
	check_fields(m, size);
	check_sign(m, size);
	check_record(m, size);
	return 0;
}
