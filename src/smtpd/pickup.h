/*
 * pickup.h - the pickup directory (`pickup = { dir; group; }`,
 * docs/http-api.md "Pickup directory"): files local programs rename into
 * it (`postern sendmail` does) are taken by the first SMTP worker,
 * spooled durably through inject.c with a MID, and removed only after
 * that; malformed or unauthorised files go to bad/ with a log line
 * saying why.
 *
 * pickup_prepare() runs in the master before the privilege drop: it
 * creates the directory (mode 1730, owner `user`, group `group`) and
 * bad/ (0700).  pickup_attach() runs in worker 0.
 */
#ifndef POSTERN_PICKUP_H
#define POSTERN_PICKUP_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

struct event_base;

#define PICKUP_SCAN_INTERVAL	5	/* seconds between full scans */
#define PICKUP_INFLIGHT_MAX	32	/* files being spooled at once */

/* Master, as root or as `user`: make dir and bad/ with their modes and
 * owners.  0, or -1 with why. */
int	pickup_prepare(const struct conf *, char *why, size_t whylen);
/* Worker: watch the directory (inotify plus a scan every
 * PICKUP_SCAN_INTERVAL s).  0 or -1 (logged). */
int	pickup_attach(struct event_base *, const struct conf *);
/* Stop taking files; `done` when none is in flight. */
void	pickup_shutdown(void (*done)(void));
/* May a file owned by `uid` be taken?  root, the daemon's own user, or
 * a user whose primary or supplementary group is `gid`. */
int	pickup_owner_allowed(uid_t uid, gid_t gid);

#endif
