/*
 * runas.h - the one place that changes user ids.  The daemon (serve.c)
 * drops to the configuration's `user` for good after binding; commands
 * that write into data_dir (cert, trust, user, queue) run as root act as
 * that user while they write, so the files they create stay owned by
 * (and readable for) the daemon's user.
 */
#ifndef POSTERN_RUNAS_H
#define POSTERN_RUNAS_H

/*
 * As root (and `user` is not root): switch to `user` for good (groups,
 * gid, uid, in that order; then checks root cannot be regained).  A
 * user that does not exist is not an error here (a command: the daemon
 * never ran as it either; serve checks it first).  Not root: nothing.
 * 0, or -1 after printing the reason on stderr.
 */
int	runas_become_user(const char *user);

/*
 * The same, but only the effective ids (root stays the saved id), so that
 * runas_restore() can come back: for writing into the store between
 * reading the admin's input files and writing the admin's output files as
 * root.  0, or -1 after printing the reason.
 */
int	runas_act_as(const char *user);

/*
 * For commands run as root that work in data_dir (the stores of
 * certificates, trust, users and DKIM keys; the queue; the status): data_dir is made first when missing (0700, given to
 * `user`, as serve makes it); then files are created and written as
 * `user` (file ids and its group), while directories above data_dir that
 * `user` may not enter can still be passed (CAP_DAC_READ_SEARCH) and the
 * daemon can still be signalled (CAP_KILL); no other capability stays
 * effective.  Not root, or `user` root or unknown: only the making of
 * data_dir.  0, or -1 after printing the reason.
 */
int	runas_act_as_in(const char *user, const char *data_dir);

/* Back to root after runas_act_as or runas_act_as_in. */
void	runas_restore(void);

#endif
