/*
 * runas.c - switch to the configuration's unprivileged `user`: for good
 * (the daemon after binding, in serve.c) or only for a while (commands
 * writing into the stores).  See runas.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runas.h"
#include "util.h"

static int acting;
static gid_t saved_groups[256];
static int nsaved_groups;

static struct passwd *
target(const char *user)
{
	if (geteuid() != 0 || user == NULL || strcmp(user, "root") == 0)
		return NULL;
	return getpwnam(user);		/* unknown: the daemon never ran as it */
}

int
runas_become_user(const char *user)
{
	struct passwd *pw;

	if ((pw = target(user)) == NULL)
		return 0;
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		fprintf(stderr, "postern: cannot switch to user %s: %s (run as "
		    "%s or fix the configuration's user)\n", user,
		    strerror(errno), user);
		return -1;
	}
	if (setuid(0) != -1) {
		fprintf(stderr, "postern: privileges were not dropped\n");
		return -1;
	}
	return 0;
}

int
runas_act_as(const char *user)
{
	struct passwd *pw;

	if (acting || (pw = target(user)) == NULL)
		return 0;
	nsaved_groups = getgroups(256, saved_groups);
	if (nsaved_groups < 0)
		nsaved_groups = 0;
	if (setgroups(1, &pw->pw_gid) == -1 || setegid(pw->pw_gid) == -1 ||
	    seteuid(pw->pw_uid) == -1) {
		fprintf(stderr, "postern: cannot act as user %s: %s (run as %s "
		    "or fix the configuration's user)\n", user, strerror(errno),
		    user);
		runas_restore();
		return -1;
	}
	acting = 1;
	return 0;
}

void
runas_restore(void)
{
	if (getuid() != 0)
		return;
	if (seteuid(0) == -1 || setegid(getgid()) == -1 ||
	    setgroups((size_t)nsaved_groups, saved_groups) == -1)
		fatal("cannot return to root after writing the store");
	acting = 0;
}
