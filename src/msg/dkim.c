/*
 * dkim.c - DKIM signing (RFC 6376, RFC 8463) and DKIM key records (see
 * dkim.h for what a signature covers and who calls this).
 *
 * Public: dkim_key_load, dkim_key_generate, dkim_key_free, dkim_key_pem,
 * dkim_key_public, dkim_alg_name, dkim_key_kind, dkim_key_describe,
 * dkim_record_text, dkim_record_zone, dkim_record_parse,
 * dkim_record_matches, dkim_msg_new, dkim_msg_free,
 * dkim_msg_from_domain, dkim_msg_body_hash, dkim_sign, dkim_sign_fields,
 * dkim_canon_header, dkim_canon_body.
 *
 * Signing data (RFC 6376 3.7): the relaxed canonical form of each field
 * h= names, then of the DKIM-Signature field itself with an empty b= and
 * without its final CRLF.  RSA-SHA256 signs that data with PKCS#1 v1.5;
 * Ed25519-SHA256 (RFC 8463 3) signs its SHA-256 digest with PureEdDSA.
 * The body hash is computed once per message and shared by every key
 * (dual signing).
 *
 * Limits: the message is in memory (the spool maps it); at most
 * DKIM_FIELDS_MAX header fields, DKIM_INSTANCES_MAX instances of one
 * name signed, DKIM_H_MAX names in h=.  Threats: see dkim.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "addrlist.h"
#include "base64.h"
#include "dkim.h"
#include "msg_prep.h"
#include "util.h"

#define DKIM_KEYFILE_MAX	(64 * 1024)
#define DKIM_H_MAX		256	/* names in one h= */
#define DKIM_FOLD_AT		76	/* fold the field before this column */
#define DKIM_LIST_NAME_MAX	64	/* longest List-* name put in h= */

struct dkim_msg {
	const char		*m;		/* borrowed */
	size_t			 len;
	struct msg_field	*f;		/* header fields, in order */
	size_t			 nf;
	char			 from_domain[256];	/* "" = none */
	char			 bh[64];
};

/* The fields dkim_sign covers, in h= order; the first four over-signed. */
static const char *const sign_names[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding"
};
#define OVERSIGNED	4

static void
ossl_why(char *why, size_t whylen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char r[200];

	if (e == 0)
		bstrlcpy(r, "no details", sizeof(r));
	else
		ERR_error_string_n(e, r, sizeof(r));
	ERR_clear_error();
	(void)bsnprintf(why, whylen, "DKIM: %s: %s", what, r);
}

/* ---- keys ------------------------------------------------------------ */

/* A passphrase would have to be typed: refuse, so the load fails. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* An Ed25519 key given as the base64 of its 32-octet seed (one line). */
static EVP_PKEY *
raw_ed25519(const char *data, size_t len)
{
	unsigned char seed[33];
	EVP_PKEY *k = NULL;
	size_t a = 0, b = len;

	while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r' ||
	    data[a] == '\n'))
		a++;
	while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' ||
	    data[b - 1] == '\r' || data[b - 1] == '\n'))
		b--;
	if (b - a > 0 && b - a <= 44 &&
	    base64_decode(data + a, b - a, seed, sizeof(seed)) == 32)
		k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
		    32);
	OPENSSL_cleanse(seed, sizeof(seed));
	ERR_clear_error();
	return k;
}

/* Type and size: fill key->alg and bits, or -1 with why. */
static int
key_check(struct dkim_key *key, const char *path, char *why, size_t whylen)
{
	int id = EVP_PKEY_get_base_id(key->pkey);

	if (id == EVP_PKEY_ED25519) {
		key->alg = DKIM_ED25519_SHA256;
		key->bits = 256;
		return 0;
	}
	if (id != EVP_PKEY_RSA) {
		(void)bsnprintf(why, whylen, "DKIM key %s is of type %s; DKIM "
		    "signs with RSA or Ed25519 (make one with `postern dkim "
		    "keygen`)", path, EVP_PKEY_get0_type_name(key->pkey) !=
		    NULL ? EVP_PKEY_get0_type_name(key->pkey) : "unknown");
		return -1;
	}
	key->alg = DKIM_RSA_SHA256;
	key->bits = EVP_PKEY_get_bits(key->pkey);
	if (key->bits < DKIM_RSA_MIN_BITS) {
		(void)bsnprintf(why, whylen, "DKIM key %s is RSA with %d bits; "
		    "verifiers ignore keys under %d bits (RFC 8301): make a "
		    "new one with `postern dkim keygen` and a new selector",
		    path, key->bits, DKIM_RSA_MIN_BITS);
		return -1;
	}
	return 0;
}

/* Load and check a private key file (see dkim.h). */
struct dkim_key *
dkim_key_load(const char *path, char *why, size_t whylen)
{
	struct dkim_key *key;
	size_t len = 0;
	char *data;
	BIO *b;

	if ((data = read_file(path, &len, DKIM_KEYFILE_MAX)) == NULL) {
		(void)bsnprintf(why, whylen, "cannot read DKIM key %s: %s (%s)",
		    path, strerror(errno), errno == ENOENT ? "make it with "
		    "`postern dkim keygen`, or fix `key` in the dkim entry" :
		    "it must be readable by the user postern runs as");
		return NULL;
	}
	key = xcalloc(1, sizeof(*key));
	if ((b = BIO_new_mem_buf(data, (int)len)) != NULL) {
		key->pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase,
		    NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	if (key->pkey == NULL)
		key->pkey = raw_ed25519(data, len);
	if (key->pkey == NULL)
		(void)bsnprintf(why, whylen, "DKIM key %s holds no usable "
		    "private key (PEM, without a passphrase; or an Ed25519 "
		    "seed in base64): make one with `postern dkim keygen`",
		    path);
	secure_free(data, len);
	if (key->pkey == NULL || key_check(key, path, why, whylen) == -1) {
		dkim_key_free(key);
		return NULL;
	}
	return key;
}

/* A new key pair (see dkim.h). */
struct dkim_key *
dkim_key_generate(enum dkim_alg alg, int bits, char *why, size_t whylen)
{
	struct dkim_key *key = xcalloc(1, sizeof(*key));

	if (alg == DKIM_RSA_SHA256)
		key->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	else
		key->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (key->pkey == NULL) {
		ossl_why(why, whylen, "cannot make a key");
		dkim_key_free(key);
		return NULL;
	}
	key->alg = alg;
	key->bits = alg == DKIM_RSA_SHA256 ? EVP_PKEY_get_bits(key->pkey) :
	    256;
	return key;
}

void
dkim_key_free(struct dkim_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* PKCS#8 PEM of the private key; the caller wipes `out` after use. */
int
dkim_key_pem(const struct dkim_key *key, struct strbuf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rc = -1;

	if (b != NULL && PEM_write_bio_PrivateKey(b, key->pkey, NULL, NULL, 0,
	    NULL, NULL) == 1 && (n = BIO_get_mem_data(b, &p)) > 0) {
		strbuf_add(out, p, (size_t)n);
		OPENSSL_cleanse(p, (size_t)n);
		rc = 0;
	}
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

/* p= value: base64 SubjectPublicKeyInfo (RSA) or raw key (Ed25519). */
int
dkim_key_public(const struct dkim_key *key, struct strbuf *out)
{
	unsigned char raw[32], *der = NULL;
	size_t rl = sizeof(raw);
	int n;

	if (key->alg == DKIM_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rl) != 1 ||
		    rl != sizeof(raw))
			return -1;
		base64_append(raw, rl, out);
		return 0;
	}
	if ((n = i2d_PUBKEY(key->pkey, &der)) <= 0)
		return -1;
	base64_append(der, (size_t)n, out);
	OPENSSL_free(der);
	return 0;
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

const char *
dkim_key_kind(enum dkim_alg alg)
{
	return alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519";
}

void
dkim_key_describe(const struct dkim_key *key, char *buf, size_t len)
{
	if (key->alg == DKIM_RSA_SHA256)
		(void)bsnprintf(buf, len, "RSA %d bits", key->bits);
	else
		bstrlcpy(buf, "Ed25519", len);
}

/* ---- records --------------------------------------------------------- */

/* "v=DKIM1; k=...; p=..." */
int
dkim_record_text(const struct dkim_key *key, struct strbuf *out)
{
	strbuf_printf(out, "v=DKIM1; k=%s; p=", dkim_key_kind(key->alg));
	return dkim_key_public(key, out);
}

/* The record for a zone file, strings of at most 255 octets. */
int
dkim_record_zone(const char *selector, const char *domain,
    const struct dkim_key *key, struct strbuf *out)
{
	struct strbuf p = STRBUF_INIT;
	size_t i, k;

	strbuf_puts(&p, "p=");
	if (dkim_key_public(key, &p) == -1) {
		strbuf_free(&p);
		return -1;
	}
	strbuf_printf(out, "%s._domainkey.%s. IN TXT ( \"v=DKIM1; k=%s; \"",
	    selector, domain, dkim_key_kind(key->alg));
	/* base64 has no '"' or '\\': nothing to escape */
	for (i = 0; i < p.len; i += k) {
		k = p.len - i > 250 ? 250 : p.len - i;
		strbuf_puts(out, "\n\t\"");
		strbuf_add(out, p.s + i, k);
		strbuf_puts(out, "\"");
	}
	strbuf_puts(out, " )\n");
	strbuf_free(&p);
	return 0;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Is `name` among the ':'-separated elements of v[0..n)? */
static int
list_has(const char *v, size_t n, const char *name)
{
	size_t i = 0, a, b, nl = strlen(name);

	while (i <= n) {
		a = i;
		while (i < n && v[i] != ':')
			i++;
		b = i;
		while (a < b && is_wsp(v[a]))
			a++;
		while (b > a && is_wsp(v[b - 1]))
			b--;
		if (b - a == nl && ascii_ncasecmp(v + a, name, nl) == 0)
			return 1;
		i++;
	}
	return 0;
}

/* p=: base64 with whitespace allowed anywhere; empty = revoked. */
static int
record_key(struct dkim_record *r, const char *v, size_t n, char *why,
    size_t whylen)
{
	char b64[4 * DKIM_RECORD_KEY_MAX / 3 + 8];
	size_t i, o = 0;
	int got;

	for (i = 0; i < n; i++) {
		if (is_wsp(v[i]))
			continue;
		if (o + 1 >= sizeof(b64)) {
			(void)bsnprintf(why, whylen, "the key in p= is too "
			    "long");
			return -1;
		}
		b64[o++] = v[i];
	}
	if (o == 0) {
		r->revoked = 1;
		return 0;
	}
	if ((got = base64_decode(b64, o, r->p, sizeof(r->p))) <= 0) {
		(void)bsnprintf(why, whylen, "p= is not valid base64");
		return -1;
	}
	r->plen = (size_t)got;
	return 0;
}

/* One tag of a key record.  0, or -1 with why. */
static int
record_tag(struct dkim_record *r, const char *t, size_t tn, const char *v,
    size_t vn, int first, char *why, size_t whylen)
{
	if (tn == 1 && t[0] == 'v') {
		if (!first || vn != 5 || memcmp(v, "DKIM1", 5) != 0) {
			(void)bsnprintf(why, whylen, "v= must come first and "
			    "be DKIM1");
			return -1;
		}
	} else if (tn == 1 && t[0] == 'k') {
		bstrlcpy(r->k, "?", sizeof(r->k));
		if (vn < sizeof(r->k)) {
			memcpy(r->k, v, vn);
			r->k[vn] = '\0';
			ascii_lower(r->k, vn);
		}
	} else if (tn == 1 && t[0] == 'p')
		return record_key(r, v, vn, why, whylen);
	else if (tn == 1 && t[0] == 't')
		r->testing = list_has(v, vn, "y");
	else if (tn == 1 && t[0] == 'h')
		r->sha256 = list_has(v, vn, "sha256");
	else if (tn == 1 && t[0] == 's')
		r->email = list_has(v, vn, "*") || list_has(v, vn, "email");
	return 0;
}

static int
tag_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (!first && ((c >= '0' && c <= '9') || c == '_'));
}

/* A tag name seen in a record (it points into the record). */
struct tag_name {
	const char	*s;
	size_t		 n;
};

/* Has tag t[0..tn) been seen among the recorded names?  Records it. */
static int
tag_seen(struct tag_name *seen, size_t *ns, const char *t, size_t tn)
{
	size_t i;

	for (i = 0; i < *ns; i++)
		if (seen[i].n == tn && memcmp(seen[i].s, t, tn) == 0)
			return 1;
	if (*ns < 32) {
		seen[*ns].s = t;
		seen[(*ns)++].n = tn;
	}
	return 0;
}

/* Parse a key record (RFC 6376 3.2 tag list, 3.6.1 tags). */
int
dkim_record_parse(const char *txt, size_t len, struct dkim_record *r,
    char *why, size_t whylen)
{
	struct tag_name seen[32];
	size_t i = 0, t, tn, v, vn, ns = 0;
	int got_p = 0;

	memset(r, 0, sizeof(*r));
	bstrlcpy(r->k, "rsa", sizeof(r->k));
	r->sha256 = r->email = 1;
	for (;;) {
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i >= len)
			break;
		for (t = i; i < len && tag_char(txt[i], i == t); i++)
			;
		tn = i - t;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (tn == 0 || i >= len || txt[i] != '=') {
			(void)bsnprintf(why, whylen, "not a DKIM tag list "
			    "(\"tag=value; ...\") at octet %zu", t + 1);
			return -1;
		}
		if (tag_seen(seen, &ns, txt + t, tn)) {
			(void)bsnprintf(why, whylen, "tag %.*s= appears twice",
			    (int)tn, txt + t);
			return -1;
		}
		for (v = ++i; i < len && txt[i] != ';'; i++)
			;
		while (v < i && is_wsp(txt[v]))
			v++;
		for (vn = i - v; vn > 0 && is_wsp(txt[v + vn - 1]); vn--)
			;
		if (record_tag(r, txt + t, tn, txt + v, vn, ns == 1, why,
		    whylen) == -1)
			return -1;
		got_p |= tn == 1 && txt[t] == 'p';
		if (i < len)
			i++;	/* the ';' */
	}
	if (!got_p) {
		(void)bsnprintf(why, whylen, "the record has no p= tag");
		return -1;
	}
	return 0;
}

/* Does the record publish the public half of `key`? */
int
dkim_record_matches(const struct dkim_record *r, const struct dkim_key *key)
{
	unsigned char raw[32];
	const unsigned char *pp = r->p;
	size_t rl = sizeof(raw);
	EVP_PKEY *pub;
	int eq;

	if (r->revoked || strcmp(r->k, dkim_key_kind(key->alg)) != 0)
		return 0;
	if (key->alg == DKIM_ED25519_SHA256)
		return r->plen == 32 && EVP_PKEY_get_raw_public_key(key->pkey,
		    raw, &rl) == 1 && rl == 32 && memcmp(raw, r->p, 32) == 0;
	/* SubjectPublicKeyInfo, or a bare RSAPublicKey (RFC 6376 3.6.1) */
	if ((pub = d2i_PUBKEY(NULL, &pp, (long)r->plen)) == NULL) {
		pp = r->p;
		pub = d2i_PublicKey(EVP_PKEY_RSA, NULL, &pp, (long)r->plen);
	}
	ERR_clear_error();
	eq = pub != NULL && EVP_PKEY_eq(pub, key->pkey) == 1;
	EVP_PKEY_free(pub);
	return eq;
}

/* ---- canonicalisation ------------------------------------------------ */

/* Relaxed header canonicalisation (RFC 6376 3.4.2). */
void
dkim_canon_header(const char *name, size_t nlen, const char *value,
    size_t vlen, struct strbuf *out)
{
	size_t i, start;
	int sp = 0, any = 0;
	char c;

	start = out->len;
	strbuf_add(out, name, nlen);
	ascii_lower(out->s + start, nlen);
	strbuf_putc(out, ':');
	for (i = 0; i < vlen; i++) {
		c = value[i];
		if (c == '\r' && i + 1 < vlen && value[i + 1] == '\n')
			continue;	/* unfold: the LF is dropped next */
		if (c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			sp = 1;
			continue;
		}
		if (sp && any)
			strbuf_putc(out, ' ');
		sp = 0;
		any = 1;
		strbuf_putc(out, c);
	}
	strbuf_puts(out, "\r\n");
}

/* Canonical body text goes to a sink through a small staging buffer. */
struct sink {
	void	(*fn)(void *, const void *, size_t);
	void	 *arg;
	char	  buf[8192];
	size_t	  n;
};

static void
sink_put(struct sink *s, const char *p, size_t n)
{
	if (s->n + n > sizeof(s->buf)) {
		s->fn(s->arg, s->buf, s->n);
		s->n = 0;
		if (n > sizeof(s->buf)) {
			s->fn(s->arg, p, n);
			return;
		}
	}
	memcpy(s->buf + s->n, p, n);
	s->n += n;
}

/* End of the line starting at i: *e before its CRLF (or len). */
static size_t
line_end(const char *b, size_t len, size_t i, int *crlf)
{
	const char *nl;

	*crlf = 0;
	while (i < len && (nl = memchr(b + i, '\n', len - i)) != NULL) {
		i = (size_t)(nl - b);
		if (i > 0 && b[i - 1] == '\r') {
			*crlf = 1;
			return i - 1;
		}
		i++;	/* a bare LF is part of the line */
	}
	return len;
}

/* One line b[i..e) relaxed: WSP runs as one SP, none at the end. */
static void
canon_line(struct sink *s, const char *b, size_t i, size_t e)
{
	size_t r;
	int sp = 0;

	while (i < e) {
		if (b[i] == ' ' || b[i] == '\t') {
			sp = 1;
			i++;
			continue;
		}
		if (sp)
			sink_put(s, " ", 1);
		sp = 0;
		for (r = i; r < e && b[r] != ' ' && b[r] != '\t'; r++)
			;
		sink_put(s, b + i, r - i);
		i = r;
	}
}

/* Relaxed body canonicalisation (RFC 6376 3.4.4) into a sink. */
static void
canon_body(const char *b, size_t len, struct sink *s)
{
	size_t i = 0, e, k, empty = 0;
	int crlf;

	while (i < len) {
		e = line_end(b, len, i, &crlf);
		for (k = i; k < e && (b[k] == ' ' || b[k] == '\t'); k++)
			;
		if (k == e) {
			empty += crlf;	/* maybe trailing: kept back */
		} else {
			for (; empty > 0; empty--)
				sink_put(s, "\r\n", 2);
			canon_line(s, b, i, e);
			sink_put(s, "\r\n", 2);	/* also after a last line
						 * without CRLF */
		}
		i = crlf ? e + 2 : len;
	}
	if (s->n > 0)
		s->fn(s->arg, s->buf, s->n);
	s->n = 0;
}

static void
to_strbuf(void *arg, const void *p, size_t n)
{
	strbuf_add(arg, p, n);
}

static void
to_digest(void *arg, const void *p, size_t n)
{
	(void)EVP_DigestUpdate(arg, p, n);
}

void
dkim_canon_body(const char *body, size_t len, struct strbuf *out)
{
	struct sink *s = xcalloc(1, sizeof(*s));

	s->fn = to_strbuf;
	s->arg = out;
	canon_body(body, len, s);
	free(s);
}

/* ---- the message ----------------------------------------------------- */

/* bh= of the body at m->m + off. */
static int
body_hash(struct dkim_msg *dm, size_t off, char *why, size_t whylen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[EVP_MAX_MD_SIZE];
	struct strbuf b = STRBUF_INIT;
	unsigned int hl = 0;
	struct sink *s;
	int ok;

	s = xcalloc(1, sizeof(*s));
	s->fn = to_digest;
	s->arg = md;
	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	if (ok) {
		canon_body(dm->m + off, dm->len - off, s);
		ok = EVP_DigestFinal_ex(md, h, &hl) == 1;
	}
	if (ok) {
		base64_append(h, hl, &b);
		bstrlcpy(dm->bh, b.s, sizeof(dm->bh));
	} else
		ossl_why(why, whylen, "cannot hash the body");
	strbuf_free(&b);
	free(s);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* The domain of the first From: address, if it parses. */
static void
find_from(struct dkim_msg *dm)
{
	char addr[ADDRLIST_ADDR_MAX + 1];
	const char *at;

	if (msg_from_address(dm->m, dm->len, addr, sizeof(addr)) == 0 &&
	    (at = strrchr(addr, '@')) != NULL)
		bstrlcpy(dm->from_domain, at + 1, sizeof(dm->from_domain));
}

/* Split the message and hash its body (see dkim.h). */
struct dkim_msg *
dkim_msg_new(const char *msg, size_t len, char *why, size_t whylen)
{
	struct dkim_msg *dm = xcalloc(1, sizeof(*dm));
	struct msg_field f;
	size_t pos = 0, cap = 0, body;
	int r;

	dm->m = msg;
	dm->len = len;
	while ((r = msg_field_next(msg, len, &pos, &f)) == 1) {
		if (dm->nf == DKIM_FIELDS_MAX) {
			(void)bsnprintf(why, whylen, "DKIM: the message has "
			    "more than %d header fields", DKIM_FIELDS_MAX);
			goto fail;
		}
		if (dm->nf == cap) {
			cap = cap ? cap * 2 : 32;
			dm->f = xrealloc(dm->f, cap * sizeof(*dm->f));
		}
		dm->f[dm->nf++] = f;
	}
	if (r == -1) {
		(void)bsnprintf(why, whylen, "DKIM: line %zu of the header "
		    "section is not a header field",
		    msg_count_lines(msg, pos) + 1);
		goto fail;
	}
	body = pos;
	if (pos + 1 < len && msg[pos] == '\r' && msg[pos + 1] == '\n')
		body = pos + 2;
	else if (pos < len && msg[pos] == '\n')
		body = pos + 1;
	if (body_hash(dm, body, why, whylen) == -1)
		goto fail;
	find_from(dm);
	return dm;
fail:
	dkim_msg_free(dm);
	return NULL;
}

void
dkim_msg_free(struct dkim_msg *dm)
{
	if (dm == NULL)
		return;
	free(dm->f);
	free(dm);
}

const char *
dkim_msg_from_domain(const struct dkim_msg *dm)
{
	return dm->from_domain[0] != '\0' ? dm->from_domain : NULL;
}

const char *
dkim_msg_body_hash(const struct dkim_msg *dm)
{
	return dm->bh;
}

/* ---- signing --------------------------------------------------------- */

/* The `nth` instance (0 = last) of name n[0..nl); NULL when none. */
static const struct msg_field *
field_from_bottom(const struct dkim_msg *dm, const char *n, size_t nl,
    size_t nth)
{
	size_t i;

	for (i = dm->nf; i > 0; i--) {
		const struct msg_field *f = &dm->f[i - 1];

		if (f->name_len == nl && ascii_ncasecmp(dm->m + f->off, n,
		    nl) == 0 && nth-- == 0)
			return f;
	}
	return NULL;
}

struct hname {
	const char	*s;
	size_t		 n;
};

/* Split an h= value into names.  Count, or -1 (empty name, too many). */
static int
h_split(const char *h, struct hname *out, size_t max)
{
	size_t i = 0, a, b, n = 0, len = strlen(h);

	while (i <= len) {
		for (a = i; i < len && h[i] != ':'; i++)
			;
		b = i++;
		while (a < b && is_wsp(h[a]))
			a++;
		while (b > a && is_wsp(h[b - 1]))
			b--;
		if (a == b || n == max)
			return -1;
		out[n].s = h + a;
		out[n++].n = b - a;
	}
	return (int)n;
}

/* The signing data: canonical fields of h=, then the signature field. */
static int
signing_data(const struct dkim_msg *dm, const char *h, const char *sig,
    size_t siglen, struct strbuf *data, char *why, size_t whylen)
{
	struct hname *names = xcalloc(DKIM_H_MAX, sizeof(*names));
	const struct msg_field *f;
	struct msg_field sf;
	size_t i, j, nth, pos = 0;
	int n, rc = -1;

	if ((n = h_split(h, names, DKIM_H_MAX)) < 1) {
		(void)bsnprintf(why, whylen, "DKIM: bad h= list");
		goto done;
	}
	for (i = 0; i < (size_t)n; i++) {
		for (j = nth = 0; j < i; j++)
			nth += names[j].n == names[i].n && ascii_ncasecmp(
			    names[j].s, names[i].s, names[i].n) == 0;
		if ((f = field_from_bottom(dm, names[i].s, names[i].n,
		    nth)) != NULL)
			dkim_canon_header(dm->m + f->off, f->name_len,
			    dm->m + f->value_off, f->value_len, data);
	}
	if (msg_field_next(sig, siglen, &pos, &sf) != 1 || pos != siglen) {
		(void)bsnprintf(why, whylen, "DKIM: bad signature field");
		goto done;
	}
	dkim_canon_header(sig + sf.off, sf.name_len, sig + sf.value_off,
	    sf.value_len, data);
	strbuf_truncate(data, data->len - 2);	/* without its CRLF */
	rc = 0;
done:
	free(names);
	return rc;
}

/* Sign data: RSA over the data, Ed25519 over its SHA-256 (RFC 8463). */
static int
sign_data(const struct dkim_key *key, const struct strbuf *data,
    struct strbuf *b64, char *why, size_t whylen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char hash[32], sig[1024];
	const unsigned char *in = (const unsigned char *)data->s;
	size_t sl = sizeof(sig), inl = data->len;
	int ok;

	if (key->alg == DKIM_ED25519_SHA256) {
		ok = EVP_Digest(data->s, data->len, hash, NULL, EVP_sha256(),
		    NULL) == 1;
		in = hash;
		inl = sizeof(hash);
		ok = ok && md != NULL && EVP_DigestSignInit(md, NULL, NULL,
		    NULL, key->pkey) == 1;
	} else
		ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(),
		    NULL, key->pkey) == 1;
	/* sizes first: an RSA key of up to 8192 bits fits sig */
	ok = ok && EVP_DigestSign(md, NULL, &sl, in, inl) == 1 &&
	    sl <= sizeof(sig) && EVP_DigestSign(md, sig, &sl, in, inl) == 1;
	if (ok)
		base64_append(sig, sl, b64);
	else
		ossl_why(why, whylen, "signing failed");
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* The base64 signature over h= fields and the signature field. */
int
dkim_sign_fields(const struct dkim_msg *dm, const struct dkim_key *key,
    const char *h, const char *sig, size_t siglen, struct strbuf *b64,
    char *why, size_t whylen)
{
	struct strbuf data = STRBUF_INIT;
	int rc;

	rc = signing_data(dm, h, sig, siglen, &data, why, whylen);
	if (rc == 0)
		rc = sign_data(key, &data, b64, why, whylen);
	strbuf_free(&data);
	return rc;
}

/* A field being folded: the column where the current line is. */
struct fold {
	struct strbuf	*sb;
	size_t		 col;
};

/* Append w[0..n), after `sep` (" " or ""), folding before it when the
 * line would pass DKIM_FOLD_AT. */
static void
fold_add(struct fold *fo, const char *sep, const char *w, size_t n)
{
	size_t sl = strlen(sep);

	if (fo->col + sl + n > DKIM_FOLD_AT && fo->col > 8) {
		strbuf_puts(fo->sb, "\r\n\t");
		fo->col = 8;
	} else {
		strbuf_puts(fo->sb, sep);
		fo->col += sl;
	}
	strbuf_add(fo->sb, w, n);
	fo->col += n;
}

static void
fold_tag(struct fold *fo, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fold_tag(struct fold *fo, const char *fmt, ...)
{
	struct strbuf t = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(&t, fmt, ap);
	va_end(ap);
	fold_add(fo, " ", t.s, t.len);
	strbuf_free(&t);
}

/* Add `name` times times to the h= list being built. */
static void
h_add(struct strbuf *h, const char *name, size_t nl, size_t times)
{
	for (; times > 0; times--) {
		if (h->len > 0)
			strbuf_putc(h, ':');
		strbuf_add(h, name, nl);
	}
}

static size_t
count_instances(const struct dkim_msg *dm, const char *n, size_t nl)
{
	size_t i, c = 0;

	for (i = 0; i < dm->nf; i++)
		c += dm->f[i].name_len == nl && ascii_ncasecmp(dm->m +
		    dm->f[i].off, n, nl) == 0;
	return c < DKIM_INSTANCES_MAX ? c : DKIM_INSTANCES_MAX;
}

/*
 * A List-* name we may put in h= (letters, digits, '-', '_', '.'; at most
 * DKIM_LIST_NAME_MAX octets, so that every folded line of the signature
 * stays within 78 octets; the RFC 2369/2919 names are far shorter).
 */
static int
list_name(const char *s, size_t n)
{
	size_t i;

	if (n <= 5 || n > DKIM_LIST_NAME_MAX ||
	    ascii_ncasecmp(s, "List-", 5) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!tag_char(s[i], 0) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* The h= list for this message (see dkim.h). */
static void
h_list(const struct dkim_msg *dm, struct strbuf *h)
{
	const struct msg_field *f;
	size_t i, j, n;

	for (i = 0; i < sizeof(sign_names) / sizeof(sign_names[0]); i++) {
		n = count_instances(dm, sign_names[i], strlen(sign_names[i]));
		h_add(h, sign_names[i], strlen(sign_names[i]),
		    n + (i < OVERSIGNED ? 1 : 0));
	}
	for (i = 0; i < dm->nf; i++) {
		f = &dm->f[i];
		if (!list_name(dm->m + f->off, f->name_len))
			continue;
		for (j = 0; j < i; j++)		/* first instance only */
			if (dm->f[j].name_len == f->name_len &&
			    ascii_ncasecmp(dm->m + dm->f[j].off, dm->m + f->off,
			    f->name_len) == 0)
				break;
		if (j == i)
			h_add(h, dm->m + f->off, f->name_len,
			    count_instances(dm, dm->m + f->off, f->name_len));
	}
}

/* Append b64 to the field, folded; then the final CRLF. */
static void
fold_b64(struct fold *fo, const struct strbuf *b64)
{
	size_t i = 0, k;

	while (i < b64->len) {
		if (fo->col >= DKIM_FOLD_AT) {
			strbuf_puts(fo->sb, "\r\n\t");
			fo->col = 8;
		}
		k = DKIM_FOLD_AT - fo->col;
		if (k > b64->len - i)
			k = b64->len - i;
		strbuf_add(fo->sb, b64->s + i, k);
		fo->col += k;
		i += k;
	}
	strbuf_puts(fo->sb, "\r\n");
}

/* One whole DKIM-Signature field for `key` (see dkim.h). */
int
dkim_sign(const struct dkim_msg *dm, const struct dkim_key *key,
    const char *domain, const char *selector, int64_t t, int64_t expire,
    struct strbuf *out, char *why, size_t whylen)
{
	struct strbuf field = STRBUF_INIT, h = STRBUF_INIT, b64 = STRBUF_INIT;
	struct fold fo = { &field, 0 };
	size_t i, a;
	int rc;

	strbuf_puts(&field, "DKIM-Signature:");
	fo.col = field.len;
	fold_tag(&fo, "v=1;");
	fold_tag(&fo, "a=%s;", dkim_alg_name(key->alg));
	fold_tag(&fo, "c=relaxed/relaxed;");
	fold_tag(&fo, "d=%s;", domain);
	fold_tag(&fo, "s=%s;", selector);
	fold_tag(&fo, "t=%lld;", (long long)t);
	if (expire > 0)
		fold_tag(&fo, "x=%lld;", (long long)(t + expire));
	h_list(dm, &h);
	/* h= may fold around any ':' (RFC 6376 3.5 sig-h-tag) */
	for (i = a = 0; i <= h.len; i++) {
		if (i < h.len && h.s[i] != ':')
			continue;
		if (a == 0)
			fold_tag(&fo, "h=%.*s", (int)i, h.s);
		else
			fold_add(&fo, "", h.s + a - 1, i - a + 1);
		a = i + 1;
	}
	strbuf_putc(&field, ';');
	fo.col++;
	fold_tag(&fo, "bh=%s;", dm->bh);
	fold_tag(&fo, "b=");
	rc = dkim_sign_fields(dm, key, h.s, field.s, field.len, &b64, why,
	    whylen);
	if (rc == 0) {
		fold_b64(&fo, &b64);
		strbuf_add(out, field.s, field.len);
	}
	strbuf_free(&field);
	strbuf_free(&h);
	strbuf_free(&b64);
	return rc;
}
