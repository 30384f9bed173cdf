/*
 * workdir.h - `postern serve` works inside data_dir.  The master, still
 * root, enters data_dir (chdir) before it drops privileges, and every
 * path under data_dir in the configuration becomes relative to it
 * ("./spool", "./mail/%d/%u"): the daemon user then needs no search
 * permission on data_dir's parents (a checkout under /root, mode 0700,
 * works).  Paths outside data_dir that the daemon user cannot reach (a
 * log file, a maildir, a key) stop the start before anything is bound,
 * with one line naming the directory and the fix.
 *
 * Callers: serve.c at start and at every reload.
 */
#ifndef POSTERN_WORKDIR_H
#define POSTERN_WORKDIR_H

#include <stddef.h>

#include "conf.h"

/* Make paths under c->data_dir (absolute) relative to it; data_dir
 * itself becomes ".".  Call after the chdir (or on a reloaded conf). */
void	workdir_rebase(struct conf *c);
/* chdir into c->data_dir (created already).  0, or -1 with why. */
int	workdir_enter(const struct conf *c, char *why, size_t whylen);
/*
 * As root with an unprivileged `user`: check, acting as that user, that
 * every path outside data_dir the daemon needs is reachable (its
 * deepest existing directory searchable, and writable where the daemon
 * makes directories: maildirs).  0, or -1 with why (one sentence with the fix).
 * Not root, or user "root": 0.
 */
int	workdir_check_reach(const struct conf *c, char *why, size_t whylen);

#endif
