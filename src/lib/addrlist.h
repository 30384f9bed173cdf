/*
 * addrlist.h - RFC 5322 3.4 address-list parser for header fields such as
 * From: (untrusted input).  Extracts the addr-spec of every mailbox,
 * skipping display names, quoted strings, comments (nested, RFC 5322
 * 3.2.2), groups ("name: a, b;") and obsolete forms (RFC 5322 4.4: route
 * "<@a,@b:x@y>", empty list elements), plus RFC 6532 UTF-8.
 *
 * Callers: smtp_server.c (identity check of the header From:).
 * Borrowed nothing; output is copied into the caller's array.
 */
#ifndef POSTERN_ADDRLIST_H
#define POSTERN_ADDRLIST_H

#include <stddef.h>

#define ADDRLIST_ADDR_MAX	320	/* local 64 + @ + domain 255 */

struct addrlist_addr {
	/* "local@domain" with the local part as written (quotes kept when
	 * needed) and the domain lower-cased; group members included. */
	char	addr[ADDRLIST_ADDR_MAX + 1];
};

/*
 * Parse `len` bytes of an unfolded header field value.  Stores up to
 * `max` addresses in `out` and returns how many mailboxes there are
 * (may exceed `max`: the caller decides), or -1 when the value is not a
 * valid address list (then `*why` names the problem, static text).
 * A mailbox without a domain ("<user>") is invalid.
 */
int	addrlist_parse(const char *s, size_t len, struct addrlist_addr *out,
	    size_t max, const char **why);

#endif
