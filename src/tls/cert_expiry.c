/*
 * cert_expiry.c - expiry of listener and store certificates (see
 * cert_expiry.h).
 *
 * Public: cert_expiry_time, cert_expiry_file, cert_expiry_listeners,
 * cert_expiry_store.
 *
 * Limits: the callers' arrays bound the counts (DSTATUS_MAX_CERTS); a
 * file that cannot be read is listed with not_after 0 rather than left
 * out, so an admin sees it.  Names printed come from certstore_cn (control
 * characters replaced).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "cert_expiry.h"
#include "certstore.h"
#include "conf.h"
#include "util.h"

/* An ASN1_TIME as Unix time, 0 when unreadable. */
int64_t
cert_expiry_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* The leaf of a PEM file: expiry, subject, self-signed. */
int
cert_expiry_file(const char *file, const char *name, struct dstatus_cert *out)
{
	STACK_OF(X509) *certs = NULL;
	char why[256];
	X509 *leaf;

	bstrlcpy(out->certificate, name, sizeof(out->certificate));
	out->not_after = 0;
	out->subject[0] = '\0';
	out->self_signed = 0;
	if (certstore_read_certs(file, &certs, why, sizeof(why)) == -1) {
		ERR_clear_error();
		return -1;
	}
	leaf = sk_X509_value(certs, 0);
	out->not_after = cert_expiry_time(X509_get0_notAfter(leaf));
	certstore_cn(X509_get_subject_name(leaf), out->subject,
	    sizeof(out->subject));
	out->self_signed = certstore_is_self_signed(leaf);
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return 0;
}

/* One configured certificate of listener l. */
static void
one_ref(const struct conf *c, const struct conf_listener *l,
    const struct conf_certref *r, struct dstatus_cert *out)
{
	char path[4096];

	memset(out, 0, sizeof(*out));
	bstrlcpy(out->listener, l->name, sizeof(out->listener));
	if (r->id != NULL) {
		if (certstore_path(c->data_dir, r->id, ".pem", path,
		    sizeof(path)) == -1)
			path[0] = '\0';
		(void)cert_expiry_file(path, r->id, out);
	} else
		(void)cert_expiry_file(r->cert, r->cert, out);
	bstrlcpy(out->listener, l->name, sizeof(out->listener));
}

/* Every TLS listener's configured certificates. */
size_t
cert_expiry_listeners(const struct conf *c, struct dstatus_cert *out,
    size_t max)
{
	const struct conf_listener *l;
	size_t i, j, n = 0;

	for (i = 0; i < c->nlisteners; i++) {
		l = &c->listeners[i];
		if (!conf_listener_needs_tls(c, l))
			continue;
		if (n < max)
			one_ref(c, l, &l->certificate, &out[n++]);
		for (j = 0; j < l->nsni_certs && n < max; j++)
			one_ref(c, l, &l->sni_certs[j], &out[n++]);
	}
	return n;
}

static int
by_expiry(const void *a, const void *b)
{
	const struct dstatus_cert *x = a, *y = b;

	if (x->not_after != y->not_after)
		return x->not_after < y->not_after ? -1 : 1;
	return strcmp(x->certificate, y->certificate);
}

/* Every certificate of the store, soonest expiry first. */
int
cert_expiry_store(const char *data_dir, struct dstatus_cert *out, size_t max,
    char *why, size_t whylen)
{
	char **ids, path[4096];
	size_t nids, i, n = 0;

	if (certstore_list_ids(data_dir, &ids, &nids, why, whylen) == -1)
		return -1;
	for (i = 0; i < nids && n < max; i++) {
		if (certstore_path(data_dir, ids[i], ".pem", path,
		    sizeof(path)) == -1 || access(path, F_OK) == -1)
			continue;	/* a key or request without certificate */
		memset(&out[n], 0, sizeof(out[n]));
		(void)cert_expiry_file(path, ids[i], &out[n]);
		n++;
	}
	strv_free(ids, nids);
	qsort(out, n, sizeof(*out), by_expiry);
	return (int)n;
}
