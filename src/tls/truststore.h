/*
 * truststore.h - the trust store in <data_dir>/trust: CA certificates an
 * admin added with `postern trust add FILE --name NAME`, one PEM file per
 * NAME (<data_dir>/trust/<NAME>.pem, which may hold several certificates).
 * Everything in Postern that verifies a peer builds its X509_STORE here,
 * plus the system CA bundle when tls.system_cas is true.
 */
#ifndef POSTERN_TRUSTSTORE_H
#define POSTERN_TRUSTSTORE_H

#include <stddef.h>
#include <openssl/x509.h>

#define TRUSTSTORE_SUBDIR	"trust"

/*
 * Add every certificate of the trust store (and the system CAs when
 * `system_cas`) to `store`.  A missing trust directory is an empty store.
 * Returns the number of trust-store certificates added (system CAs not
 * counted), or -1 with why (an unreadable or broken file, named).
 */
int	truststore_load(X509_STORE *store, const char *data_dir, int system_cas,
	    char *why, size_t whylen);

/* 1 when `name` is a valid entry name (the rules of certificate IDs). */
int	truststore_valid_name(const char *name);
/* <data_dir>/trust/<name>.pem; -1 if too long. */
int	truststore_path(const char *data_dir, const char *name, char *buf,
	    size_t len);
/* Sorted names of every entry (malloc'd strings; a missing directory is
 * empty).  0 or -1 with why.  Free with strv_free(). */
int	truststore_list(const char *data_dir, char ***names, size_t *n,
	    char *why, size_t whylen);

#endif
