/*
 * privdrop.h - commands that write into data_dir (cert, trust) run as root
 * act as the configuration's `user` while they write, so the files they
 * create stay owned by (and readable for) the daemon's user.
 */
#ifndef POSTERN_PRIVDROP_H
#define POSTERN_PRIVDROP_H

/*
 * As root (and `user` is not root): switch to `user` for good (groups,
 * gid, uid).  A user that does not exist is not an error: the daemon never
 * ran as it either.  Not root: nothing.  0, or -1 after printing the
 * reason on stderr.
 */
int	privdrop_become_user(const char *user);

/*
 * The same, but only the effective ids (root stays the saved id), so that
 * privdrop_restore() can come back: for writing into the store between
 * reading the admin's input files and writing the admin's output files as
 * root.  0, or -1 after printing the reason.
 */
int	privdrop_act_as(const char *user);
void	privdrop_restore(void);

#endif
