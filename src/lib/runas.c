/*
 * runas.c - switch to the configuration's unprivileged `user`: for good
 * (the daemon after binding, in serve.c), only for a while (checks of what
 * that user may read) or as the owner of what a command writes into
 * data_dir's stores.  See runas.h.
 *
 * Why file ids and one capability for the stores: a command run as root
 * must leave its files owned by `user` (the daemon reads them), yet
 * data_dir may lie below a directory `user` cannot enter (a checkout
 * under /root, mode 0700), which serve reaches by entering data_dir
 * before it drops privileges.  setfsuid/setfsgid make every file created
 * the user's and every write permission the user's; CAP_DAC_READ_SEARCH
 * lets the lookup pass the directories above, and CAP_KILL lets `queue`
 * signal the daemon (which runs as the user); no other capability stays
 * effective.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include "runas.h"
#include "util.h"

static int acting;		/* 1: effective ids; 2: file ids (stores) */
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

/* Only the capabilities of mask `keep` (CAP_ numbers below 32) effective,
 * or every permitted one when all is set. */
static int
caps_effective(uint32_t keep, int all)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) == -1)
		return -1;
	d[0].effective = all ? d[0].permitted : keep;
	d[1].effective = all ? d[1].permitted : 0;
	return (int)syscall(SYS_capset, &h, d);
}

int
runas_act_as_in(const char *user, const char *data_dir)
{
	struct passwd *pw;
	struct stat st;

	if (acting)
		return 0;
	pw = target(user);
	if (geteuid() == 0 && stat(data_dir, &st) == -1 && errno == ENOENT) {
		/* as serve does: made by root, given to the user */
		if (mkdir_p(data_dir, 0700) == -1 || (pw != NULL &&
		    chown(data_dir, pw->pw_uid, pw->pw_gid) == -1)) {
			fprintf(stderr, "postern: cannot create data_dir %s: "
			    "%s (check the directory above it)\n", data_dir,
			    strerror(errno));
			return -1;
		}
	}
	if (pw == NULL)
		return 0;
	nsaved_groups = getgroups(256, saved_groups);
	if (nsaved_groups < 0)
		nsaved_groups = 0;
	if (setgroups(1, &pw->pw_gid) == -1) {
		fprintf(stderr, "postern: cannot act as user %s: %s (run as %s "
		    "or fix the configuration's user)\n", user, strerror(errno),
		    user);
		return -1;
	}
	(void)setfsgid(pw->pw_gid);
	(void)setfsuid(pw->pw_uid);
	acting = 2;
	if ((uid_t)setfsuid((uid_t)-1) != pw->pw_uid ||
	    (gid_t)setfsgid((gid_t)-1) != pw->pw_gid ||
	    caps_effective((uint32_t)1 << CAP_DAC_READ_SEARCH |
	    (uint32_t)1 << CAP_KILL, 0) == -1) {
		fprintf(stderr, "postern: cannot act as user %s: %s (run as %s "
		    "or fix the configuration's user)\n", user, strerror(errno),
		    user);
		runas_restore();
		return -1;
	}
	return 0;
}

void
runas_restore(void)
{
	if (getuid() != 0)
		return;
	if (acting == 2) {
		(void)setfsuid(0);
		(void)setfsgid(getegid());
		if ((uid_t)setfsuid((uid_t)-1) != 0 || caps_effective(0, 1) == -1 ||
		    setgroups((size_t)nsaved_groups, saved_groups) == -1)
			fatal("cannot return to root after writing the store");
		acting = 0;
		return;
	}
	if (seteuid(0) == -1 || setegid(getgid()) == -1 ||
	    setgroups((size_t)nsaved_groups, saved_groups) == -1)
		fatal("cannot return to root after writing the store");
	acting = 0;
}
