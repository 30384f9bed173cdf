/*
 * identity.h - the sender identity check of authenticated submission
 * (SPEC "sender not a verified identity of the authenticated user"),
 * shared by every way mail comes in with a credential: the SMTP session
 * (smtp_server.c, at MAIL and at the end of data) and the HTTPS API
 * (http_api.c).  One function decides, one text answers: `554 5.7.1
 * Message rejected: Email address is not verified. The following
 * identities failed the check: <addr>`.
 *
 * The question "may this user send as this address?" is the caller's
 * (a callback: auth_check.c's credential store in the daemon, a table in
 * unit tests).  Pure otherwise: no I/O.
 */
#ifndef POSTERN_IDENTITY_H
#define POSTERN_IDENTITY_H

#include <stddef.h>

/* 1 the user may send as addr, 0 not a verified identity, -1 the
 * credential no longer exists. */
typedef int (*identity_allowed_fn)(void *arg, const char *addr);

#define IDENTITY_FROM_ADDRS_MAX	16	/* header From: mailboxes checked */
#define IDENTITY_REPLY_MAX	500	/* a reply fits one SMTP line */

enum identity_result {
	IDENTITY_OK,		/* every address is verified */
	IDENTITY_REFUSED,	/* reply in buf */
	IDENTITY_USER_GONE	/* the credential was removed meanwhile */
};

/* The envelope sender `addr` ("" = null sender, left to the header
 * check).  REFUSED: buf holds the 554 5.7.1 reply. */
enum identity_result identity_check_sender(const char *addr,
	    identity_allowed_fn, void *arg, char *buf, size_t len);

/*
 * The header From: of the message: `from` holds the unfolded values of
 * every From: field joined with ", " (msg_header_scan), `count` how many
 * fields there were, `truncated` whether some octets did not fit.  Every
 * mailbox must be a verified identity; a message without From: passes
 * only when its envelope sender `env_from` is not null (it was checked at
 * MAIL).  REFUSED: buf holds the reply (554 5.6.0 for a missing or
 * unreadable From:, 554 5.7.1 for an unverified address).
 */
enum identity_result identity_check_header_from(const char *from, int count,
	    int truncated, const char *env_from, identity_allowed_fn,
	    void *arg, char *buf, size_t len);

#endif
