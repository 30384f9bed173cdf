/*
 * deliver_local.h - local delivery into maildirs (routes with `maildir`),
 * and the local delivery driver (delivery_local, delivery.h).
 *
 * deliver_local_check() is the RCPT-time check of a recipient the router
 * sent to a maildir (safe mailbox name, unknown users); the SMTP worker
 * calls it (listener.c).  Delivery is two-phase so the queue manager can
 * group the expensive flushes of many messages: the driver's submit()
 * writes each copy into the maildir's tmp/ (deliver_local_write), its
 * flush() at the end of the scheduler's round makes the batch durable
 * (one syncfs per file system), moves each copy into new/
 * (deliver_local_publish), makes that durable, and only then reports the
 * recipients delivered, so the scheduler removes the spool copy only
 * after the maildir copy is on disk.
 */
#ifndef POSTERN_DELIVER_LOCAL_H
#define POSTERN_DELIVER_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include "conf.h"
#include "delivery.h"
#include "route.h"

/* A recipient the router sent to a maildir (d->kind ROUTE_TO_MAILDIR):
 * NULL = acceptable, else a reply line (without CRLF). */
const char *deliver_local_check(const struct route_decision *d,
	    const char *addr);

/* Expand the maildir template for an address into buf.  0 or -1 (unsafe
 * mailbox name). */
int	deliver_local_maildir(const struct conf_route *, const char *addr,
	    char *buf, size_t len);

struct local_copy {
	char	tmp_path[4096];
	char	new_path[4096];
};

/*
 * Write one copy: Return-Path, then the spool content from fd (first
 * `size` octets), CRLF turned into LF as maildir readers expect.
 * 0 ok, -1 with why (temporary: disk full, permissions).
 */
int	deliver_local_write(const char *maildir, const char *hostname,
	    uint64_t mid, size_t rid, const char *return_path, int fd,
	    uint64_t size, struct local_copy *, char *why, size_t whylen);
/* tmp/ -> new/.  0 or -1 with why. */
int	deliver_local_publish(const struct local_copy *, char *why,
	    size_t whylen);
/* Remove a tmp copy after a failure. */
void	deliver_local_discard(const struct local_copy *);

#endif
