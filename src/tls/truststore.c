/*
 * truststore.c - the trust store in <data_dir>/trust (see truststore.h).
 * Files are read with certstore_read_certs (PEM with any number of
 * certificates, or one DER certificate).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "certstore.h"
#include "truststore.h"
#include "util.h"

int
truststore_valid_name(const char *name)
{
	return certstore_valid_id(name);
}

int
truststore_path(const char *data_dir, const char *name, char *buf,
    size_t len)
{
	return bsnprintf(buf, len, "%s/%s/%s.pem", data_dir, TRUSTSTORE_SUBDIR,
	    name);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
truststore_list(const char *data_dir, char ***namesp, size_t *np, char *why,
    size_t whylen)
{
	char dir[4096], **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	*namesp = NULL;
	*np = 0;
	if (bsnprintf(dir, sizeof(dir), "%s/%s", data_dir,
	    TRUSTSTORE_SUBDIR) == -1) {
		snprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "cannot read the trust store %s: %s",
		    dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *name;

		if (len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		name = xstrndup(de->d_name, len - 4);
		if (!truststore_valid_name(name)) {
			free(name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = name;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*namesp = names;
	*np = n;
	return 0;
}

int
truststore_load(X509_STORE *store, const char *data_dir, int system_cas,
    char *why, size_t whylen)
{
	STACK_OF(X509) *certs;
	char **names, path[4096], e[256];
	size_t n, i;
	int added = 0, k;

	if (system_cas) {
		/* a missing system bundle is not an error: nothing to add */
		ERR_set_mark();
		X509_STORE_set_default_paths(store);
		ERR_pop_to_mark();
	}
	if (data_dir == NULL)
		return 0;
	if (truststore_list(data_dir, &names, &n, why, whylen) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (truststore_path(data_dir, names[i], path,
		    sizeof(path)) == -1)
			continue;
		if (certstore_read_certs(path, &certs, why, whylen) == -1) {
			strv_free(names, n);
			return -1;
		}
		for (k = 0; k < sk_X509_num(certs); k++) {
			if (!X509_STORE_add_cert(store, sk_X509_value(certs,
			    k))) {
				snprintf(why, whylen, "cannot use a certificate "
				    "of %s: %s", path,
				    certstore_ssl_error(e, sizeof(e)));
				sk_X509_pop_free(certs, X509_free);
				strv_free(names, n);
				return -1;
			}
			added++;
		}
		sk_X509_pop_free(certs, X509_free);
	}
	strv_free(names, n);
	return added;
}
