/*
 * test_dkimkey.h - a DKIM key file for unit tests that need one on disk
 * (test_conf.c: `config check` loads it; test_transform.c: the DKIM
 * step signs with it): made by dkim.c as `postern dkim keygen` makes it,
 * PKCS#8 PEM, mode 0600.  Include after cmocka.h, in one .c file each.
 */
#ifndef POSTERN_TEST_DKIMKEY_H
#define POSTERN_TEST_DKIMKEY_H

#include "dkim.h"
#include "strbuf.h"
#include "util.h"

/* A new key of `alg` (RSA: 2048 bits) written to `path`. */
static void
test_dkim_key_file(const char *path, enum dkim_alg alg)
{
	struct strbuf pem = STRBUF_INIT;
	struct dkim_key *k;
	char why[256];

	k = dkim_key_generate(alg, 2048, why, sizeof(why));
	assert_non_null(k);
	assert_int_equal(dkim_key_pem(k, &pem), 0);
	assert_int_equal(write_file_atomic(path, pem.s, pem.len, 0600), 0);
	strbuf_free(&pem);
	dkim_key_free(k);
}

#endif
