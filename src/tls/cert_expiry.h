/*
 * cert_expiry.h - when certificates expire, for `postern status` and the
 * metrics endpoint: the listener certificates of a configuration (store
 * IDs or inline files) and every certificate in the store.  Only the
 * certificate files are read, never a key.
 *
 * Callers: serve.c (listener certificates, at start and reload, into
 * daemon_status), metrics_http.c and cmd_status.c (the store).
 */
#ifndef POSTERN_CERT_EXPIRY_H
#define POSTERN_CERT_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>

#include "conf.h"
#include "daemon_status.h"

/* An ASN1_TIME as Unix time (0 when it cannot be read). */
int64_t	cert_expiry_time(const ASN1_TIME *);
/* The leaf of a PEM file into *out (certificate = `name`). 0 or -1. */
int	cert_expiry_file(const char *file, const char *name,
	    struct dstatus_cert *out);
/* Every TLS listener's certificates (default first, then SNI ones), at
 * most `max`; unreadable ones have not_after 0.  Returns the count. */
size_t	cert_expiry_listeners(const struct conf *, struct dstatus_cert *out,
	    size_t max);
/* Every certificate (.pem) of the store, soonest first, at most `max`.
 * Returns the count, or -1 with why when the store cannot be listed. */
int	cert_expiry_store(const char *data_dir, struct dstatus_cert *out,
	    size_t max, char *why, size_t whylen);

#endif
