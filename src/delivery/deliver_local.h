/*
 * deliver_local.h - local delivery into maildirs (routes with `maildir`).
 *
 * deliver_local_check() is the RCPT-time decision (safe mailbox name,
 * unknown users).  Delivery is two-phase so the queue manager can group
 * the expensive flushes of many messages: write each copy into the
 * maildir's tmp/ (deliver_local_write), make the batch durable, move each
 * into new/ (deliver_local_publish), make that durable, and only then
 * remove the spool copies.
 */
#ifndef POSTERN_DELIVER_LOCAL_H
#define POSTERN_DELIVER_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include "conf.h"
#include "envelope.h"
#include "smtp_proto.h"

/* NULL = acceptable recipient, else a reply line (without CRLF). */
const char *deliver_local_check(const struct conf *,
	    const struct smtp_path *);

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
