/*
 * certstore.c - the certificate store in <data_dir>/certs (see
 * certstore.h): key generation, self-signed certificates, requests,
 * reading certificates and keys from PEM/DER files, chain ordering and
 * atomic storage.  Everything X.509 goes through OpenSSL 3 APIs.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "conf.h"
#include "util.h"

#define MAX_CERT_FILE	(4 * 1024 * 1024)
#define MAX_KEY_FILE	(1024 * 1024)

const char *
certstore_ssl_error(char *buf, size_t len)
{
	unsigned long e, first = 0;
	const char *r;

	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	if (first == 0) {
		bstrlcpy(buf, "no detail from OpenSSL", len);
		return buf;
	}
	r = ERR_reason_error_string(first);
	if (r != NULL)
		bstrlcpy(buf, r, len);
	else
		ERR_error_string_n(first, buf, len);
	return buf;
}

int
certstore_valid_id(const char *id)
{
	const char *p;

	if (id == NULL || id[0] == '\0' || id[0] == '.' || strlen(id) > 128)
		return 0;
	for (p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' &&
		    *p != '-')
			return 0;
	return 1;
}

int
certstore_path(const char *data_dir, const char *id, const char *ext,
    char *buf, size_t len)
{
	return bsnprintf(buf, len, "%s/%s/%s%s", data_dir, CERTSTORE_SUBDIR,
	    id, ext);
}

static int
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
entry_has(const char *data_dir, const char *id, const char *ext)
{
	char path[4096];

	return certstore_path(data_dir, id, ext, path, sizeof(path)) == 0 &&
	    file_exists(path);
}

int
certstore_exists(const char *data_dir, const char *id)
{
	return certstore_valid_id(id) && entry_has(data_dir, id, ".pem") &&
	    entry_has(data_dir, id, ".key");
}

int
certstore_valid_keytype(const char *t)
{
	return t != NULL && (strcmp(t, "rsa2048") == 0 ||
	    strcmp(t, "rsa3072") == 0 || strcmp(t, "ec256") == 0);
}

EVP_PKEY *
certstore_keygen(const char *keytype, char *why, size_t whylen)
{
	EVP_PKEY *k = NULL;
	char e[256];

	if (keytype == NULL || strcmp(keytype, "rsa2048") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (strcmp(keytype, "rsa3072") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	else if (strcmp(keytype, "ec256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else {
		snprintf(why, whylen, "unknown key type '%s' (use rsa2048, "
		    "rsa3072 or ec256)", keytype);
		return NULL;
	}
	if (k == NULL)
		snprintf(why, whylen, "cannot generate a %s key: %s",
		    keytype ? keytype : "rsa2048",
		    certstore_ssl_error(e, sizeof(e)));
	return k;
}

static int
is_ip(const char *s)
{
	ASN1_OCTET_STRING *o;

	ERR_set_mark();
	o = a2i_IPADDRESS(s);
	ERR_pop_to_mark();
	if (o == NULL)
		return 0;
	ASN1_OCTET_STRING_free(o);
	return 1;
}

static int
valid_dns(const char *s)
{
	const char *p = s;
	size_t label = 0;

	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	if (*p == '\0' || strlen(s) > 253)
		return 0;
	for (; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

int
certstore_valid_san(const char *name)
{
	return name != NULL && (is_ip(name) || valid_dns(name));
}

int
certstore_key_matches(const X509 *x, const EVP_PKEY *k)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	int r;

	if (pub == NULL || k == NULL)
		return 0;
	ERR_set_mark();
	r = EVP_PKEY_eq(pub, k);
	ERR_pop_to_mark();
	return r == 1;
}

void
certstore_key_desc(const EVP_PKEY *k, char *buf, size_t len)
{
	char group[64];
	size_t glen = 0;
	int nid;

	if (k == NULL) {
		bstrlcpy(buf, "none", len);
		return;
	}
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		snprintf(buf, len, "RSA %d", EVP_PKEY_get_bits(k));
		return;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(k,
		    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
		    &glen) == 1) {
			const char *nist = NULL;
			nid = OBJ_sn2nid(group);
			if (nid == NID_undef)
				nid = OBJ_ln2nid(group);
			if (nid != NID_undef)
				nist = EC_curve_nid2nist(nid);
			snprintf(buf, len, "EC %s", nist ? nist : group);
		} else
			snprintf(buf, len, "EC %d", EVP_PKEY_get_bits(k));
		return;
	case EVP_PKEY_ED25519:
		bstrlcpy(buf, "ED25519", len);
		return;
	case EVP_PKEY_ED448:
		bstrlcpy(buf, "ED448", len);
		return;
	default:
		snprintf(buf, len, "%s %d", OBJ_nid2sn(EVP_PKEY_get_base_id(k)),
		    EVP_PKEY_get_bits(k));
	}
}

/* PEM password callback: never prompt; remember that one was wanted. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u != NULL)
		*(int *)u = 1;
	return -1;
}

static int
has_pem(const char *buf, size_t len)
{
	return memmem(buf, len, "-----BEGIN ", 11) != NULL;
}

int
certstore_read_certs(const char *file, STACK_OF(X509) **certs, char *why,
    size_t whylen)
{
	STACK_OF(X509) *sk;
	char *buf, e[256];
	size_t len;
	X509 *x;
	BIO *bio;

	*certs = NULL;
	if ((buf = read_file(file, &len, MAX_CERT_FILE)) == NULL) {
		snprintf(why, whylen, "cannot read %s: %s", file,
		    errno == EFBIG ? "file too large" : strerror(errno));
		return -1;
	}
	sk = sk_X509_new_null();
	if (sk == NULL)
		fatalx("out of memory");
	if (has_pem(buf, len)) {
		unsigned long err;

		bio = BIO_new_mem_buf(buf, (int)len);
		if (bio == NULL)
			fatalx("out of memory");
		ERR_set_mark();
		while ((x = PEM_read_bio_X509_AUX(bio, NULL, no_password,
		    NULL)) != NULL)
			sk_X509_push(sk, x);
		err = ERR_peek_last_error();
		BIO_free(bio);
		if (ERR_GET_LIB(err) == ERR_LIB_PEM &&
		    ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
			ERR_pop_to_mark();
		else {
			ERR_clear_last_mark();
			snprintf(why, whylen, "%s: certificate %d is damaged: %s "
			    "(get a fresh copy of the file)", file,
			    sk_X509_num(sk) + 1, certstore_ssl_error(e,
			    sizeof(e)));
			goto fail;
		}
	} else {
		const unsigned char *p = (const unsigned char *)buf;

		ERR_set_mark();
		x = d2i_X509(NULL, &p, (long)len);
		ERR_pop_to_mark();
		if (x != NULL)
			sk_X509_push(sk, x);
	}
	if (sk_X509_num(sk) == 0) {
		snprintf(why, whylen, "%s holds no certificate (expected PEM "
		    "\"-----BEGIN CERTIFICATE-----\" blocks or one DER "
		    "certificate)", file);
		goto fail;
	}
	free(buf);
	*certs = sk;
	return 0;
fail:
	sk_X509_pop_free(sk, X509_free);
	free(buf);
	return -1;
}

int
certstore_read_key(const char *file, EVP_PKEY **key, char *why,
    size_t whylen)
{
	EVP_PKEY *k = NULL;
	char *buf, e[256];
	size_t len;
	int asked = 0, pem;
	BIO *bio;

	*key = NULL;
	if ((buf = read_file(file, &len, MAX_KEY_FILE * 4)) == NULL) {
		snprintf(why, whylen, "cannot read %s: %s", file,
		    errno == EFBIG ? "file too large" : strerror(errno));
		return -1;
	}
	pem = has_pem(buf, len);
	ERR_set_mark();
	if (pem) {
		bio = BIO_new_mem_buf(buf, (int)len);
		if (bio == NULL)
			fatalx("out of memory");
		k = PEM_read_bio_PrivateKey(bio, NULL, no_password, &asked);
		BIO_free(bio);
	} else {
		const unsigned char *p = (const unsigned char *)buf;
		k = d2i_AutoPrivateKey(NULL, &p, (long)len);
	}
	if (k != NULL) {
		ERR_pop_to_mark();
		secure_free(buf, len);
		*key = k;
		return 1;
	}
	if (asked) {
		ERR_pop_to_mark();
		snprintf(why, whylen, "the private key in %s is encrypted "
		    "(decrypt it first: openssl pkey -in %s -out PLAIN.key)",
		    file, file);
		secure_free(buf, len);
		return -1;
	}
	if (pem && memmem(buf, len, "PRIVATE KEY-----", 16) != NULL) {
		ERR_clear_last_mark();
		snprintf(why, whylen, "the private key in %s is damaged or of "
		    "an unsupported type: %s", file,
		    certstore_ssl_error(e, sizeof(e)));
		secure_free(buf, len);
		return -1;
	}
	ERR_pop_to_mark();
	secure_free(buf, len);
	return 0;
}

int
certstore_load_files(const char *certfile, const char *keyfile,
    const char *chainfile, X509 **leaf, EVP_PKEY **key,
    STACK_OF(X509) **chain, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = NULL, *more = NULL;
	EVP_PKEY *k = NULL;
	const char *kf = keyfile ? keyfile : certfile;
	int r;

	*leaf = NULL;
	*key = NULL;
	*chain = NULL;
	if (certstore_read_certs(certfile, &certs, why, whylen) == -1)
		return -1;
	if (chainfile != NULL) {
		if (certstore_read_certs(chainfile, &more, why, whylen) == -1)
			goto fail;
		while (sk_X509_num(more) > 0)
			sk_X509_push(certs, sk_X509_shift(more));
		sk_X509_free(more);
	}
	r = certstore_read_key(kf, &k, why, whylen);
	if (r == -1)
		goto fail;
	if (r == 0) {
		if (keyfile != NULL)
			snprintf(why, whylen, "%s holds no private key (name "
			    "the key file of certificate %s)", keyfile,
			    certfile);
		else
			snprintf(why, whylen, "%s holds no private key (give "
			    "the key file as well)", certfile);
		goto fail;
	}
	if (!certstore_key_matches(sk_X509_value(certs, 0), k)) {
		snprintf(why, whylen, "key %s does not match certificate %s "
		    "(use the key the certificate request was made with)", kf,
		    certfile);
		goto fail;
	}
	*leaf = sk_X509_shift(certs);
	*key = k;
	*chain = certs;
	return 0;
fail:
	EVP_PKEY_free(k);
	sk_X509_pop_free(certs, X509_free);
	return -1;
}

int
certstore_load(const char *data_dir, const char *id, X509 **leaf,
    EVP_PKEY **key, STACK_OF(X509) **chain, char *why, size_t whylen)
{
	char pem[4096], keyf[4096];

	*leaf = NULL;
	*key = NULL;
	*chain = NULL;
	if (!certstore_valid_id(id)) {
		snprintf(why, whylen, "'%s' is not a certificate ID (letters, "
		    "digits, '.', '_' and '-', not starting with '.')", id);
		return -1;
	}
	if (certstore_path(data_dir, id, ".pem", pem, sizeof(pem)) == -1 ||
	    certstore_path(data_dir, id, ".key", keyf, sizeof(keyf)) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	if (!file_exists(pem)) {
		if (entry_has(data_dir, id, ".csr"))
			snprintf(why, whylen, "certificate '%s' is still a "
			    "pending request (import the CA-signed certificate "
			    "with `postern cert import --name %s --cert FILE`)",
			    id, id);
		else
			snprintf(why, whylen, "no certificate '%s' in %s/%s "
			    "(create it with `postern cert selfsign --name %s "
			    "--cn HOSTNAME` or import one with `postern cert "
			    "import --name %s --cert FILE`)", id, data_dir,
			    CERTSTORE_SUBDIR, id, id);
		return -1;
	}
	if (!file_exists(keyf)) {
		snprintf(why, whylen, "certificate '%s' has no key %s (import "
		    "it again with its key: `postern cert import --name %s "
		    "--cert FILE --key FILE`)", id, keyf, id);
		return -1;
	}
	return certstore_load_files(pem, keyf, NULL, leaf, key, chain, why,
	    whylen);
}

int
certstore_load_ref(const char *data_dir, const struct conf_certref *cr,
    X509 **leaf, EVP_PKEY **key, STACK_OF(X509) **chain, char *why,
    size_t whylen)
{
	if (cr->id != NULL)
		return certstore_load(data_dir, cr->id, leaf, key, chain, why,
		    whylen);
	return certstore_load_files(cr->cert, cr->key, cr->chain, leaf, key,
	    chain, why, whylen);
}

int
certstore_mkdir(const char *dir, int mode, char *why, size_t whylen)
{
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		snprintf(why, whylen, "%s exists but is not a directory "
		    "(move it away)", dir);
		return -1;
	}
	if (mkdir_p(dir, mode) == -1 || chmod(dir, (mode_t)mode) == -1) {
		snprintf(why, whylen, "cannot create directory %s: %s (check "
		    "data_dir and its permissions)", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
store_dir(const char *data_dir, char *why, size_t whylen)
{
	char dir[4096];

	if (bsnprintf(dir, sizeof(dir), "%s/%s", data_dir,
	    CERTSTORE_SUBDIR) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	if (certstore_mkdir(data_dir, 0700, why, whylen) == -1)
		return -1;
	return certstore_mkdir(dir, 0700, why, whylen);
}

/* Write a memory BIO's contents to `path` atomically. */
static int
write_bio(BIO *bio, const char *path, int mode, char *why, size_t whylen)
{
	char *data;
	long len;

	len = BIO_get_mem_data(bio, &data);
	if (len < 0 || write_file_atomic(path, data, (size_t)len, mode) == -1) {
		snprintf(why, whylen, "cannot write %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
write_key(const char *path, EVP_PKEY *key, char *why, size_t whylen)
{
	char e[256];
	BIO *bio;
	int r;

	/* secure heap for the serialized key, wiped when freed */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		fatalx("out of memory");
	if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		snprintf(why, whylen, "cannot encode the private key: %s",
		    certstore_ssl_error(e, sizeof(e)));
		BIO_free(bio);
		return -1;
	}
	r = write_bio(bio, path, 0600, why, whylen);
	BIO_free(bio);
	return r;
}

static int
write_certs(const char *path, X509 *leaf, STACK_OF(X509) *chain, char *why,
    size_t whylen)
{
	char e[256];
	BIO *bio;
	int i, r;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		fatalx("out of memory");
	r = leaf == NULL || PEM_write_bio_X509(bio, leaf);
	for (i = 0; r && i < sk_X509_num(chain); i++)
		r = PEM_write_bio_X509(bio, sk_X509_value(chain, i));
	if (!r) {
		snprintf(why, whylen, "cannot encode a certificate: %s",
		    certstore_ssl_error(e, sizeof(e)));
		BIO_free(bio);
		return -1;
	}
	r = write_bio(bio, path, 0644, why, whylen);
	BIO_free(bio);
	return r;
}

int
certstore_save(const char *data_dir, const char *id, X509 *leaf,
    EVP_PKEY *key, STACK_OF(X509) *chain, char *why, size_t whylen)
{
	char pem[4096], keyf[4096];

	if (!certstore_valid_id(id)) {
		snprintf(why, whylen, "'%s' is not a valid certificate ID "
		    "(letters, digits, '.', '_' and '-')", id);
		return -1;
	}
	if (certstore_path(data_dir, id, ".pem", pem, sizeof(pem)) == -1 ||
	    certstore_path(data_dir, id, ".key", keyf, sizeof(keyf)) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	if (store_dir(data_dir, why, whylen) == -1)
		return -1;
	if (write_key(keyf, key, why, whylen) == -1)
		return -1;
	return write_certs(pem, leaf, chain, why, whylen);
}

/* The subjectAltName extension value for cn (when a host name or
 * address) followed by sans, without duplicates. */
static GENERAL_NAMES *
make_sans(const char *cn, const char *const *sans, size_t nsans, char *why,
    size_t whylen)
{
	GENERAL_NAMES *gens;
	const char *name;
	size_t i, j;

	if ((gens = GENERAL_NAMES_new()) == NULL)
		fatalx("out of memory");
	for (i = 0; i <= nsans; i++) {
		GENERAL_NAME *gn;
		ASN1_OCTET_STRING *ip;
		int dup = 0;

		name = i == 0 ? cn : sans[i - 1];
		if (name == NULL)
			continue;
		if (!certstore_valid_san(name)) {
			if (i == 0)
				continue;	/* a CN need not be a host */
			snprintf(why, whylen, "'%s' is neither a DNS name nor "
			    "an IP address", name);
			GENERAL_NAMES_free(gens);
			return NULL;
		}
		for (j = 0; j < i && !dup; j++) {
			const char *o = j == 0 ? cn : sans[j - 1];
			dup = o != NULL && ascii_casecmp(o, name) == 0;
		}
		if (dup)
			continue;
		if ((gn = GENERAL_NAME_new()) == NULL)
			fatalx("out of memory");
		ERR_set_mark();
		ip = a2i_IPADDRESS(name);
		ERR_pop_to_mark();
		if (ip != NULL)
			GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		else {
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			if (s == NULL || !ASN1_STRING_set(s, name, -1))
				fatalx("out of memory");
			GENERAL_NAME_set0_value(gn, GEN_DNS, s);
		}
		sk_GENERAL_NAME_push(gens, gn);
	}
	return gens;
}

static int
add_name_entry(X509_NAME *n, const char *field, const char *value,
    char *why, size_t whylen)
{
	char e[256];

	if (value == NULL || value[0] == '\0')
		return 0;
	if (!X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
	    (const unsigned char *)value, -1, -1, 0)) {
		snprintf(why, whylen, "cannot use '%s' as %s: %s", value, field,
		    certstore_ssl_error(e, sizeof(e)));
		return -1;
	}
	return 0;
}

static X509_NAME *
make_name(const struct certstore_subject *s, char *why, size_t whylen)
{
	X509_NAME *n = X509_NAME_new();

	if (n == NULL)
		fatalx("out of memory");
	if (add_name_entry(n, "C", s->country, why, whylen) == -1 ||
	    add_name_entry(n, "ST", s->state, why, whylen) == -1 ||
	    add_name_entry(n, "L", s->locality, why, whylen) == -1 ||
	    add_name_entry(n, "O", s->org, why, whylen) == -1 ||
	    add_name_entry(n, "OU", s->ou, why, whylen) == -1 ||
	    add_name_entry(n, "CN", s->cn, why, whylen) == -1 ||
	    add_name_entry(n, "emailAddress", s->email, why, whylen) == -1) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

static int
add_ext(X509 *x, int nid, const char *value, char *why, size_t whylen)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char e[256];

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || !X509_add_ext(x, ext, -1)) {
		snprintf(why, whylen, "cannot add extension %s: %s",
		    OBJ_nid2sn(nid), certstore_ssl_error(e, sizeof(e)));
		X509_EXTENSION_free(ext);
		return -1;
	}
	X509_EXTENSION_free(ext);
	return 0;
}

static int
random_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int r;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] &= 0x7f;		/* positive, at most 16 octets */
	b[0] |= 0x40;		/* and never small */
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL)
		return -1;
	r = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ? 0 : -1;
	BN_free(bn);
	return r;
}

static void
remove_entry_file(const char *data_dir, const char *id, const char *ext)
{
	char path[4096];

	if (certstore_path(data_dir, id, ext, path, sizeof(path)) == 0)
		unlink(path);
}

int
certstore_selfsign(const char *data_dir, const char *id, const char *cn,
    const char *const *sans, size_t nsans, int days, const char *keytype,
    char *why, size_t whylen)
{
	struct certstore_subject subj = { cn, NULL, NULL, NULL, NULL, NULL,
	    NULL };
	GENERAL_NAMES *gens = NULL;
	X509_NAME *name = NULL;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char e[256];
	int rc = -1, ec;

	if (!certstore_valid_id(id)) {
		snprintf(why, whylen, "'%s' is not a valid certificate ID "
		    "(letters, digits, '.', '_' and '-', not starting with "
		    "'.')", id);
		return -1;
	}
	if (cn == NULL || cn[0] == '\0') {
		snprintf(why, whylen, "a certificate needs a common name");
		return -1;
	}
	if (days < 1 || days > 36500) {
		snprintf(why, whylen, "validity of %d days is out of range "
		    "(1..36500)", days);
		return -1;
	}
	if ((gens = make_sans(cn, sans, nsans, why, whylen)) == NULL)
		return -1;
	if ((name = make_name(&subj, why, whylen)) == NULL)
		goto out;
	if ((key = certstore_keygen(keytype, why, whylen)) == NULL)
		goto out;
	ec = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC;
	if ((x = X509_new()) == NULL)
		fatalx("out of memory");
	if (!X509_set_version(x, 2) || random_serial(x) == -1 ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) == NULL ||
	    !X509_set_pubkey(x, key)) {
		snprintf(why, whylen, "cannot build the certificate: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE", why,
	    whylen) == -1 ||
	    add_ext(x, NID_key_usage, ec ? "critical,digitalSignature" :
	    "critical,digitalSignature,keyEncipherment", why, whylen) == -1 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth", why,
	    whylen) == -1 ||
	    add_ext(x, NID_subject_key_identifier, "hash", why, whylen) == -1)
		goto out;
	if (sk_GENERAL_NAME_num(gens) > 0 &&
	    !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0)) {
		snprintf(why, whylen, "cannot add the subjectAltName: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (!X509_sign(x, key, EVP_sha256())) {
		snprintf(why, whylen, "cannot sign the certificate: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (certstore_save(data_dir, id, x, key, NULL, why, whylen) == -1)
		goto out;
	remove_entry_file(data_dir, id, ".csr");
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	X509_NAME_free(name);
	GENERAL_NAMES_free(gens);
	return rc;
}

int
certstore_make_csr(const char *data_dir, const char *id,
    const struct certstore_subject *subj, const char *const *sans,
    size_t nsans, const char *keytype, X509_REQ **reqp, char *why,
    size_t whylen)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	X509_EXTENSION *ext;
	X509_NAME *name = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	char path[4096], e[256];
	BIO *bio = NULL;
	int rc = -1;

	*reqp = NULL;
	if (!certstore_valid_id(id)) {
		snprintf(why, whylen, "'%s' is not a valid certificate ID "
		    "(letters, digits, '.', '_' and '-', not starting with "
		    "'.')", id);
		return -1;
	}
	if (subj->cn == NULL || subj->cn[0] == '\0') {
		snprintf(why, whylen, "a certificate request needs a common "
		    "name");
		return -1;
	}
	if ((gens = make_sans(subj->cn, sans, nsans, why, whylen)) == NULL)
		return -1;
	if ((name = make_name(subj, why, whylen)) == NULL)
		goto out;
	if ((key = certstore_keygen(keytype, why, whylen)) == NULL)
		goto out;
	if ((req = X509_REQ_new()) == NULL)
		fatalx("out of memory");
	if (!X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, key)) {
		snprintf(why, whylen, "cannot build the request: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (sk_GENERAL_NAME_num(gens) > 0) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL)
			fatalx("out of memory");
		ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
		if (ext == NULL || !sk_X509_EXTENSION_push(exts, ext) ||
		    !X509_REQ_add_extensions(req, exts)) {
			X509_EXTENSION_free(ext);
			snprintf(why, whylen, "cannot add the subjectAltName: "
			    "%s", certstore_ssl_error(e, sizeof(e)));
			goto out;
		}
	}
	if (!X509_REQ_sign(req, key, EVP_sha256())) {
		snprintf(why, whylen, "cannot sign the request: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (store_dir(data_dir, why, whylen) == -1)
		goto out;
	if (certstore_path(data_dir, id, ".key", path, sizeof(path)) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		goto out;
	}
	if (write_key(path, key, why, whylen) == -1)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		fatalx("out of memory");
	if (!PEM_write_bio_X509_REQ(bio, req)) {
		snprintf(why, whylen, "cannot encode the request: %s",
		    certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (certstore_path(data_dir, id, ".csr", path, sizeof(path)) == -1 ||
	    write_bio(bio, path, 0644, why, whylen) == -1)
		goto out;
	/* the entry is a pending request now, not an old certificate */
	remove_entry_file(data_dir, id, ".pem");
	*reqp = req;
	req = NULL;
	rc = 0;
out:
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	X509_NAME_free(name);
	GENERAL_NAMES_free(gens);
	return rc;
}

/* `issuer` issued `x`: names/key identifiers fit and the signature
 * verifies with issuer's key. */
static int
issued_by(X509 *x, X509 *issuer)
{
	EVP_PKEY *pk;
	int r;

	ERR_set_mark();
	r = X509_check_issued(issuer, x) == X509_V_OK &&
	    (pk = X509_get0_pubkey(issuer)) != NULL && X509_verify(x, pk) == 1;
	ERR_pop_to_mark();
	return r;
}

int
certstore_is_self_signed(X509 *x)
{
	int r;

	ERR_set_mark();
	r = X509_self_signed(x, 1) == 1;
	ERR_pop_to_mark();
	return r;
}

STACK_OF(X509) *
certstore_order_chain(X509 *leaf, STACK_OF(X509) *in,
    struct certstore_chainfix *fix)
{
	STACK_OF(X509) *uniq, *out;
	X509 *cur = leaf, *c;
	int i, j, n, pos, last = -1, *used;

	memset(fix, 0, sizeof(*fix));
	if ((uniq = sk_X509_new_null()) == NULL ||
	    (out = sk_X509_new_null()) == NULL)
		fatalx("out of memory");
	for (i = 0; i < sk_X509_num(in); i++) {
		int dup;

		c = sk_X509_value(in, i);
		dup = X509_cmp(c, leaf) == 0;
		for (j = 0; !dup && j < sk_X509_num(uniq); j++)
			dup = X509_cmp(c, sk_X509_value(uniq, j)) == 0;
		if (dup)
			fix->duplicates++;
		else
			sk_X509_push(uniq, c);
	}
	n = sk_X509_num(uniq);
	used = xcalloc((size_t)n + 1, sizeof(*used));
	for (;;) {
		pos = -1;
		for (i = 0; i < n && pos == -1; i++)
			if (!used[i] && issued_by(cur, sk_X509_value(uniq, i)))
				pos = i;
		if (pos == -1 || certstore_is_self_signed(cur))
			break;
		used[pos] = 1;
		c = sk_X509_value(uniq, pos);
		if (certstore_is_self_signed(c)) {
			fix->roots++;
			break;
		}
		if (pos < last)
			fix->reordered = 1;
		last = pos;
		X509_up_ref(c);
		sk_X509_push(out, c);
		cur = c;
	}
	for (i = 0; i < n; i++) {
		if (used[i])
			continue;
		if (certstore_is_self_signed(sk_X509_value(uniq, i)))
			fix->roots++;
		else
			fix->unrelated++;
	}
	/* a root in the middle of the input also counts as disorder only
	 * if the kept ones moved; `last` tracking covers that */
	free(used);
	sk_X509_free(uniq);
	return out;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
certstore_list_ids(const char *data_dir, char ***idsp, size_t *np,
    char *why, size_t whylen)
{
	char dir[4096], **ids = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;

	*idsp = NULL;
	*np = 0;
	if (bsnprintf(dir, sizeof(dir), "%s/%s", data_dir,
	    CERTSTORE_SUBDIR) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "cannot read %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *id;
		int dup = 0;

		if (len < 5 || (strcmp(de->d_name + len - 4, ".pem") != 0 &&
		    strcmp(de->d_name + len - 4, ".key") != 0 &&
		    strcmp(de->d_name + len - 4, ".csr") != 0))
			continue;
		id = xstrndup(de->d_name, len - 4);
		if (!certstore_valid_id(id)) {
			free(id);
			continue;
		}
		for (i = 0; i < n && !dup; i++)
			dup = strcmp(ids[i], id) == 0;
		if (dup) {
			free(id);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), cmp_str);
	*idsp = ids;
	*np = n;
	return 0;
}

/* 1 and *key when <id>.key exists and matches cert; 0 otherwise. */
static int
try_key(const char *data_dir, const char *id, X509 *cert, EVP_PKEY **key)
{
	char path[4096], why[512];
	EVP_PKEY *k = NULL;

	if (certstore_path(data_dir, id, ".key", path, sizeof(path)) == -1 ||
	    !file_exists(path))
		return 0;
	if (certstore_read_key(path, &k, why, sizeof(why)) != 1)
		return 0;
	if (!certstore_key_matches(cert, k)) {
		EVP_PKEY_free(k);
		return 0;
	}
	*key = k;
	return 1;
}

int
certstore_find_key(const char *data_dir, X509 *cert, const char *prefer_id,
    EVP_PKEY **key, char *found_id, size_t found_len, char *why,
    size_t whylen)
{
	char **ids;
	size_t n, i;
	int pass;

	*key = NULL;
	if (prefer_id != NULL && certstore_valid_id(prefer_id) &&
	    try_key(data_dir, prefer_id, cert, key)) {
		bstrlcpy(found_id, prefer_id, found_len);
		return 1;
	}
	if (certstore_list_ids(data_dir, &ids, &n, why, whylen) == -1)
		return -1;
	/* pass 0: pending requests (key, no certificate); pass 1: the rest */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			int pending = !entry_has(data_dir, ids[i], ".pem");

			if (pending != (pass == 0) ||
			    (prefer_id && strcmp(ids[i], prefer_id) == 0))
				continue;
			if (try_key(data_dir, ids[i], cert, key)) {
				bstrlcpy(found_id, ids[i], found_len);
				strv_free(ids, n);
				return 1;
			}
		}
	strv_free(ids, n);
	return 0;
}

static void
sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void
certstore_name(const X509_NAME *n, char *buf, size_t len)
{
	unsigned long flags = (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) |
	    XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN | XN_FLAG_DUMP_UNKNOWN_FIELDS;
	BIO *bio;
	char *data;
	long dlen;

	buf[0] = '\0';
	if (n == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(bio, n, 0, flags) >= 0) {
		dlen = BIO_get_mem_data(bio, &data);
		if (dlen >= 0) {
			size_t k = (size_t)dlen < len ? (size_t)dlen : len - 1;
			memcpy(buf, data, k);
			buf[k] = '\0';
		}
	}
	BIO_free(bio);
	sanitize(buf);
	if (buf[0] == '\0')
		bstrlcpy(buf, "(empty name)", len);
}

void
certstore_cn(const X509_NAME *n, char *buf, size_t len)
{
	const X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	int i;

	i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	if (i < 0 || (e = X509_NAME_get_entry(n, i)) == NULL ||
	    ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) < 0) {
		certstore_name(n, buf, len);
		return;
	}
	bstrlcpy(buf, (char *)utf8, len);
	OPENSSL_free(utf8);
	sanitize(buf);
}

void
certstore_date(const ASN1_TIME *t, int with_time, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		bstrlcpy(buf, "?", len);
		return;
	}
	strftime(buf, len, with_time ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d",
	    &tm);
}

int
certstore_days_until(const ASN1_TIME *t)
{
	int day = 0, sec = 0;

	if (t == NULL || !ASN1_TIME_diff(&day, &sec, NULL, t))
		return 0;
	if (day == 0 && sec < 0)
		return -1;
	return day;
}
