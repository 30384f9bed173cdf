/*
 * certchain.c - verification of a certificate chain with its failures
 * told apart, host name matching with the name that matched, and small
 * link checks (see certchain.h).
 *
 * Public: certchain_verify, certchain_server_problem,
 * certchain_match_host, certchain_sans, certchain_sig_weak,
 * certchain_sig_name, certchain_weak_key, certchain_file_stem.
 *
 * Threats: certificates come from untrusted servers.  Every name goes
 * out through certstore_cn / certstore_name / strbuf_printable (control
 * characters replaced); lengths are bounded by the callers' buffers.
 * OpenSSL errors raised while looking are popped (ERR_set_mark).
 */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "certchain.h"
#include "certstore.h"
#include "util.h"

/* Does the certificate name where its issuer is published (RFC 5280
 * 4.2.2.1 caIssuers)? */
static int
has_ca_issuers(X509 *x)
{
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access,
	    NULL, NULL);
	int i, found = 0;

	for (i = 0; aia != NULL && i < sk_ACCESS_DESCRIPTION_num(aia); i++)
		if (OBJ_obj2nid(sk_ACCESS_DESCRIPTION_value(aia,
		    i)->method) == NID_ad_ca_issuers)
			found = 1;
	AUTHORITY_INFO_ACCESS_free(aia);
	return found;
}

/* A self-signed certificate of `sent` that issued `x`, or NULL. */
static X509 *
sent_root_of(STACK_OF(X509) *sent, X509 *x)
{
	X509 *c;
	int i;

	for (i = 0; i < sk_X509_num(sent); i++) {
		c = sk_X509_value(sent, i);
		if (c != x && certstore_is_self_signed(c) &&
		    X509_check_issued(c, x) == X509_V_OK)
			return c;
	}
	return NULL;
}

/* Verify a chain and keep the facts of a failure. */
int
certchain_verify(X509_STORE *store, X509 *leaf, STACK_OF(X509) *sent,
    int check_time, struct certchain_facts *f)
{
	X509_STORE_CTX *ctx;
	STACK_OF(X509) *built;
	int ok;

	memset(f, 0, sizeof(*f));
	f->depth = -1;
	ERR_set_mark();
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, store, leaf, sent))
		fatalx("out of memory verifying a certificate chain");
	if (!check_time)
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	ok = X509_verify_cert(ctx) == 1;
	f->error = X509_STORE_CTX_get_error(ctx);
	built = X509_STORE_CTX_get0_chain(ctx);
	f->top = sk_X509_num(built) > 0 ?
	    sk_X509_value(built, sk_X509_num(built) - 1) : leaf;
	if (ok) {
		certstore_cn(X509_get_subject_name(f->top), f->anchor,
		    sizeof(f->anchor));
		f->error = X509_V_OK;
	} else {
		f->depth = X509_STORE_CTX_get_error_depth(ctx);
		f->at = X509_STORE_CTX_get_current_cert(ctx);
		if (certstore_is_self_signed(f->top) && f->top != leaf)
			f->root_sent = f->top;
		else
			f->root_sent = sent_root_of(sent, f->top);
		f->top_is_ca = X509_check_ca(f->top) > 0;
		f->top_aia = has_ca_issuers(f->top);
	}
	X509_STORE_CTX_free(ctx);
	ERR_pop_to_mark();
	return ok;
}

/* Read the facts as a server's problem. */
enum certchain_problem
certchain_server_problem(const struct certchain_facts *f, char *issuer,
    size_t ilen, char *stem, size_t slen, char *when, size_t wlen)
{
	X509 *at = f->at != NULL ? f->at : f->top;

	issuer[0] = stem[0] = when[0] = '\0';
	switch (f->error) {
	case X509_V_OK:
		return CERTCHAIN_OK;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		certstore_name(X509_get_subject_name(f->top), issuer, ilen);
		certchain_file_stem(f->top, stem, slen);
		return CERTCHAIN_SELF_SIGNED;
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		if (f->root_sent != NULL) {
			certstore_name(X509_get_subject_name(f->root_sent),
			    issuer, ilen);
			certchain_file_stem(f->root_sent, stem, slen);
			return CERTCHAIN_UNTRUSTED_ROOT;
		}
		certstore_name(X509_get_issuer_name(f->top), issuer, ilen);
		return !f->top_is_ca && f->top_aia ?
		    CERTCHAIN_MISSING_INTERMEDIATE : CERTCHAIN_UNTRUSTED_ROOT;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		certstore_date(X509_get0_notAfter(at), 1, when, wlen);
		certstore_cn(X509_get_subject_name(at), issuer, ilen);
		return CERTCHAIN_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		certstore_date(X509_get0_notBefore(at), 1, when, wlen);
		certstore_cn(X509_get_subject_name(at), issuer, ilen);
		return CERTCHAIN_NOT_YET_VALID;
	default:
		return CERTCHAIN_OTHER;
	}
}

/* ---- names ----------------------------------------------------------- */

/* The names of a SAN extension as text. */
void
certchain_sans(GENERAL_NAMES *gens, const char *sep, struct strbuf *sb)
{
	char ip[INET6_ADDRSTRLEN];
	size_t start = sb->len;
	int i;

	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s;
		int type;

		s = GENERAL_NAME_get0_value(gn, &type);
		if (type != GEN_DNS && type != GEN_IPADD && type != GEN_EMAIL &&
		    type != GEN_URI)
			continue;
		if (sb->len > start)
			strbuf_puts(sb, sep);
		if (type == GEN_IPADD) {
			int len = ASN1_STRING_length(s);
			const unsigned char *d = ASN1_STRING_get0_data(s);
			if ((len == 4 && inet_ntop(AF_INET, d, ip,
			    sizeof(ip))) || (len == 16 && inet_ntop(AF_INET6, d,
			    ip, sizeof(ip))))
				strbuf_puts(sb, ip);
			else
				strbuf_puts(sb, "(bad IP)");
			continue;
		}
		if (type == GEN_EMAIL)
			strbuf_puts(sb, "email:");
		else if (type == GEN_URI)
			strbuf_puts(sb, "URI:");
		strbuf_printable(sb, (const char *)ASN1_STRING_get0_data(s),
		    (size_t)ASN1_STRING_length(s));
	}
	if (sb->len == start)
		strbuf_puts(sb, "-");
	GENERAL_NAMES_free(gens);
}

/* Does the certificate carry a DNS name in a SAN? */
static int
has_dns_san(X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
	    NULL);
	int i, found = 0;

	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++)
		if (sk_GENERAL_NAME_value(gens, i)->type == GEN_DNS)
			found = 1;
	GENERAL_NAMES_free(gens);
	return found;
}

/* Match a host name; list every name; say which matched. */
enum certchain_match
certchain_match_host(X509 *x, const char *host, struct strbuf *names,
    char *matched, size_t mlen)
{
	ASN1_OCTET_STRING *ip;
	char cn[256], *peer = NULL;
	enum certchain_match m = CERTCHAIN_NO_MATCH;

	certstore_cn(X509_get_subject_name(x), cn, sizeof(cn));
	strbuf_printf(names, "CN %s; SAN ", cn);
	certchain_sans(X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL),
	    ", ", names);
	if (matched != NULL && mlen > 0)
		matched[0] = '\0';
	ERR_set_mark();
	if ((ip = a2i_IPADDRESS(host)) != NULL) {
		ASN1_OCTET_STRING_free(ip);
		if (X509_check_ip_asc(x, host, 0) == 1) {
			m = CERTCHAIN_MATCH_IP;
			if (matched != NULL)
				bstrlcpy(matched, host, mlen);
		}
	} else if (X509_check_host(x, host, 0,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, &peer) == 1) {
		if (!has_dns_san(x))
			m = CERTCHAIN_MATCH_CN;
		else if (peer != NULL && strncmp(peer, "*.", 2) == 0)
			m = CERTCHAIN_MATCH_WILDCARD;
		else
			m = CERTCHAIN_MATCH_SAN;
		if (matched != NULL) {
			struct strbuf p = STRBUF_INIT;

			strbuf_printable(&p, peer ? peer : host,
			    strlen(peer ? peer : host));
			bstrlcpy(matched, p.s, mlen);
			strbuf_free(&p);
		}
	}
	OPENSSL_free(peer);
	ERR_pop_to_mark();
	return m;
}

/* ---- link checks ----------------------------------------------------- */

/* Signed with SHA-1 or MD5? */
int
certchain_sig_weak(const X509 *x)
{
	int md = NID_undef, pk = NID_undef;

	if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), &md, &pk))
		return 0;
	return md == NID_sha1 || md == NID_md5 || md == NID_md4 ||
	    md == NID_md2;
}

/* The signature algorithm's name. */
const char *
certchain_sig_name(const X509 *x)
{
	const char *n = OBJ_nid2ln(X509_get_signature_nid(x));

	return n != NULL ? n : "unknown";
}

/* An RSA or DSA key below 2048 bits? */
int
certchain_weak_key(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	int id;

	if (k == NULL)
		return 0;
	id = EVP_PKEY_get_base_id(k);
	return (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS ||
	    id == EVP_PKEY_DSA) && EVP_PKEY_get_bits(k) < 2048;
}

/* The file stem `postern cert fetch` saves a certificate under. */
void
certchain_file_stem(X509 *x, char *out, size_t outlen)
{
	X509_NAME *subj = X509_get_subject_name(x);
	unsigned char *cn = NULL;
	struct strbuf sb = STRBUF_INIT;
	int i, n = -1;
	size_t k;

	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i >= 0)
		n = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, i)));
	for (k = 0; n > 0 && k < (size_t)n && sb.len < 100; k++) {
		unsigned char ch = cn[k];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-')
			strbuf_putc(&sb, (char)ch);
		else if (ch == '*')
			strbuf_puts(&sb, "_wildcard");
		else
			strbuf_putc(&sb, '_');
	}
	OPENSSL_free(cn);
	if (sb.len > 0 && sb.s[0] == '.')
		sb.s[0] = '_';		/* no hidden files, no ".." */
	if (sb.len == 0)
		(void)bsnprintf(out, outlen, "%08lx",
		    X509_NAME_hash_ex(subj, NULL, NULL, NULL));
	else
		bstrlcpy(out, sb.s, outlen);
	strbuf_free(&sb);
}
