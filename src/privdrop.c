/* privdrop.c - act as the daemon's user (see privdrop.h). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "privdrop.h"
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
privdrop_become_user(const char *user)
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
	return 0;
}

int
privdrop_act_as(const char *user)
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
		privdrop_restore();
		return -1;
	}
	acting = 1;
	return 0;
}

void
privdrop_restore(void)
{
	if (getuid() != 0)
		return;
	if (seteuid(0) == -1 || setegid(getgid()) == -1 ||
	    setgroups((size_t)nsaved_groups, saved_groups) == -1)
		fatal("cannot return to root after writing the store");
	acting = 0;
}
