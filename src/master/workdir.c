/*
 * workdir.c - the daemon works inside data_dir (see workdir.h): chdir as
 * root, configuration paths under data_dir made relative, and a check
 * that the daemon user can reach every path outside it.
 *
 * Public: workdir_rebase, workdir_enter, workdir_check_reach.
 *
 * Why: after the privilege drop the kernel no longer checks data_dir's
 * ancestors for a process whose cwd is inside it, so "./spool" works
 * where "/root/src/postern/postern-data/spool" would not.  Limits: a
 * configuration file the daemon user cannot read cannot be reloaded
 * (SIGHUP says so in the log); the running configuration stays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "runas.h"
#include "util.h"
#include "workdir.h"

/* "<dd>/x" -> "./x", "<dd>" -> "."; anything else stays. */
static void
rebase_path(char **p, const char *dd)
{
	size_t n = strlen(dd), len;
	char *r;

	if (*p == NULL || (*p)[0] != '/' || strncmp(*p, dd, n) != 0 ||
	    ((*p)[n] != '/' && (*p)[n] != '\0'))
		return;
	len = strlen(*p + n) + 2;
	r = xmalloc(len);
	(void)bsnprintf(r, len, ".%s", *p + n);
	free(*p);
	*p = r;
}

static void
rebase_certref(struct conf_certref *cr, const char *dd)
{
	rebase_path(&cr->cert, dd);
	rebase_path(&cr->key, dd);
	rebase_path(&cr->chain, dd);
}

void
workdir_rebase(struct conf *c)
{
	char *dd;
	size_t i, j;

	if (c->data_dir[0] != '/')
		return;		/* done already */
	dd = xstrdup(c->data_dir);
	rebase_path(&c->log_file, dd);
	for (i = 0; i < c->nroutes; i++) {
		rebase_path(&c->routes[i].maildir, dd);
		rebase_path(&c->routes[i].auth_password_file, dd);
	}
	for (i = 0; i < c->nlisteners; i++) {
		rebase_certref(&c->listeners[i].certificate, dd);
		for (j = 0; j < c->listeners[i].nsni_certs; j++)
			rebase_certref(&c->listeners[i].sni_certs[j], dd);
	}
	for (i = 0; i < c->ndkim; i++)
		rebase_path(&c->dkim[i].key, dd);
	rebase_path(&c->smime_keys, dd);
	rebase_path(&c->data_dir, dd);
	free(dd);
}

int
workdir_enter(const struct conf *c, char *why, size_t whylen)
{
	if (chdir(c->data_dir) == 0)
		return 0;
	(void)bsnprintf(why, whylen, "cannot enter data_dir %s: %s",
	    c->data_dir, strerror(errno));
	return -1;
}

/* The deepest existing directory of path's directory part (for a
 * maildir template: the part before the first '%'). */
static void
existing_dir(const char *path, int is_dir, char *out, size_t len)
{
	struct stat st;
	char *slash;

	bstrlcpy(out, path, len);
	out[strcspn(out, "%")] = '\0';
	if (!is_dir && (slash = strrchr(out, '/')) != NULL)
		*slash = '\0';
	while (out[0] != '\0' && stat(out, &st) == -1) {
		if ((slash = strrchr(out, '/')) == NULL)
			break;
		*slash = '\0';
	}
	if (out[0] == '\0')
		bstrlcpy(out, "/", len);
}

/* One path: -1 with why when the user cannot reach it.  Acting as the
 * user already (effective ids). */
static int
check_one(const char *path, const char *what, int is_dir, int write,
    const char *user, char *why, size_t whylen)
{
	char dir[4096];
	int mode = X_OK | (write ? W_OK : 0);

	if (path == NULL || path[0] != '/')
		return 0;	/* relative: inside data_dir */
	existing_dir(path, is_dir, dir, sizeof(dir));
	if (faccessat(AT_FDCWD, dir, mode, AT_EACCESS) == 0)
		return 0;
	(void)bsnprintf(why, whylen, "user %s cannot reach %s, where %s %s "
	    "is (%s): move it under data_dir, or let %s through every "
	    "directory on the way (chmod o+x on each parent, or a group)",
	    user, dir, what, path, strerror(errno), user);
	return -1;
}

int
workdir_check_reach(const struct conf *c, char *why, size_t whylen)
{
	size_t i;
	int rc = 0;

	if (geteuid() != 0 || strcmp(c->user, "root") == 0)
		return 0;
	if (runas_act_as(c->user) == -1) {
		(void)bsnprintf(why, whylen, "cannot act as user %s to check "
		    "the paths it needs", c->user);
		return -1;
	}
	if (strcmp(c->log_file, "-") != 0 &&
	    strcmp(c->log_file, "syslog") != 0)
		rc = check_one(c->log_file, "the log", 0, 0, c->user, why,
		    whylen);	/* opened as root; reopened by path */
	for (i = 0; rc == 0 && i < c->nroutes; i++) {
		rc = check_one(c->routes[i].maildir, "the maildir", 1, 1,
		    c->user, why, whylen);
		if (rc == 0)
			rc = check_one(c->routes[i].auth_password_file,
			    "auth_password_file", 0, 0, c->user, why, whylen);
	}
	for (i = 0; rc == 0 && i < c->nlisteners; i++) {
		const struct conf_certref *cr = &c->listeners[i].certificate;

		if ((rc = check_one(cr->cert, "the certificate", 0, 0,
		    c->user, why, whylen)) == 0)
			rc = check_one(cr->key, "the key", 0, 0, c->user, why,
			    whylen);
	}
	for (i = 0; rc == 0 && i < c->ndkim; i++)
		rc = check_one(c->dkim[i].key, "the DKIM key", 0, 0, c->user,
		    why, whylen);
	runas_restore();
	return rc;
}
