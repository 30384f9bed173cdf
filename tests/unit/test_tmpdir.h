/*
 * test_tmpdir.h - a scratch directory for unit tests that touch files:
 * `setup` makes /tmp/<TEST_TMPDIR_PREFIX>.XXXXXX, `teardown` removes it
 * with everything in it (cmocka group fixtures).  Define
 * TEST_TMPDIR_PREFIX before including.  Used by test_certstore.c and
 * test_userdb.c.
 */
#ifndef POSTERN_TEST_TMPDIR_H
#define POSTERN_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char tmpdir[256];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", TEST_TMPDIR_PREFIX);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
