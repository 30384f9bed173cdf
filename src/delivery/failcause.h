/*
 * failcause.h - THE table of failure causes and their fixes: why talking
 * to an SMTP server failed (name, TCP, TLS, STARTTLS, AUTH, refusals by
 * reply code) and what an admin does about it.  One row per cause: id,
 * short name, fix text template.  Shared by `postern send` (the `fix:`
 * line after a refusal), `postern probe` (the `fix:` line of a FAIL step)
 * and delivery (the fix of a deferred or bounced recipient in the log and
 * `postern queue show`): a new diagnosis is one new row here, and every
 * caller gets it.
 *
 * Classifiers map what the one SMTP client (smtp_client.h) reports - a
 * step result, a reply (code + enhanced code + text + step), a TLS
 * verification result (X509_V_ERR_*), an OpenSSL handshake error - to a
 * cause.  failcause_fix() then writes the fix text with the caller's
 * context (host, port, issuer, address, ...).  Pure functions: no I/O.
 */
#ifndef POSTERN_FAILCAUSE_H
#define POSTERN_FAILCAUSE_H

#include <stddef.h>

#include "smtp_client.h"
#include "strbuf.h"

enum failcause {
	FC_NONE = 0,		/* nothing known: no fix line */
	/* name and TCP */
	FC_NAME_NOT_FOUND,
	FC_CONN_REFUSED,
	FC_CONN_TIMEOUT,
	FC_NET_UNREACHABLE,
	FC_CLOSED,
	FC_NOT_SMTP,
	/* TLS and STARTTLS */
	FC_NO_STARTTLS,
	FC_STARTTLS_454,
	FC_STARTTLS_REFUSED,
	FC_TLS_NOT_TLS,		/* implicit TLS against a plain SMTP port */
	FC_TLS_UNTRUSTED,
	FC_TLS_MISSING_INTERMEDIATE,
	FC_TLS_SELF_SIGNED,
	FC_TLS_EXPIRED,
	FC_TLS_NOT_YET_VALID,
	FC_TLS_HOST_MISMATCH,
	FC_TLS_DH_TOO_SMALL,
	FC_TLS_PROTOCOL,	/* no common protocol version or cipher */
	FC_TLS_HANDSHAKE,	/* any other handshake failure */
	FC_TLS_REQUIRED,	/* 538 / 530 5.7.0 STARTTLS first */
	/* authentication */
	FC_AUTH_REQUIRED,	/* 530 */
	FC_AUTH_FAILED,		/* 535 */
	FC_AUTH_TEMP,		/* 454 4.7.0 too many failures */
	FC_AUTH_NOT_OFFERED,	/* credentials given, no AUTH offered */
	FC_AUTH_NO_MECH,	/* no mechanism we can use */
	FC_AUTH_PLAINTEXT,	/* we refuse to send credentials in clear */
	/* refusals of the mail */
	FC_ACCESS_DENIED,	/* 554 at the greeting */
	FC_RELAY_DENIED,	/* 550 5.7.1 relaying denied */
	FC_SENDER_NOT_VERIFIED,	/* 554 identity not verified (Postern, SES) */
	FC_RCPT_UNKNOWN,	/* 550 5.1.1 */
	FC_TOO_MANY_RCPTS,	/* 452 4.5.3 */
	FC_SIZE,		/* 552 */
	FC_THROTTLED,		/* sending rate or daily quota */
	FC_NEEDS_8BITMIME,	/* 8-bit message, server without 8BITMIME */
	FC_NEEDS_SMTPUTF8,	/* UTF-8 address, server without SMTPUTF8 */
	FC_TOO_MANY_CONNECTIONS, /* 421 4.7.0 at the greeting */
	FC_SHUTDOWN,		/* 421 */
	FC_TEMPFAIL,		/* any other 4xx */
	FC_REJECTED,		/* any other 5xx */
	FC_COUNT
};

/* What the fix text may name; every field may be NULL / 0. */
struct failcause_ctx {
	const char	*host;		/* the server as the user named it */
	int		 port;
	int		 implicit_tls;	/* connection was implicit TLS (465) */
	const char	*issuer;	/* TLS: issuer (or subject) of the top
					 * certificate the server presented */
	const char	*trust_file;	/* TLS: file stem `postern cert fetch`
					 * gives that certificate (<CN>) */
	const char	*address;	/* the sender / recipient concerned */
	const char	*user;		/* AUTH user */
	const char	*detail;	/* e.g. "expired 2026-01-01" */
};

/* Short stable name ("tls-untrusted", "auth-failed", ...): log field,
 * JSON value, test key.  "none" for FC_NONE, "?" out of range. */
const char *failcause_name(enum failcause);
/* Append the fix for `cause` (without "fix: ", no newline); nothing for
 * FC_NONE.  Placeholders of the table are filled from ctx; a missing
 * value is written as an upper-case word (HOST, ADDRESS, NAME). */
void	failcause_fix(enum failcause, const struct failcause_ctx *,
	    struct strbuf *out);

/*
 * The cause of a refusal: `step` as in smtp_client_result ("greeting",
 * "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "end of data", ...;
 * NULL = unknown), `code` the reply code, `enhanced` its RFC 3463 code ("" or
 * NULL when none), `text` the reply text (the first line, or all lines
 * joined; matched case-insensitively).  FC_NONE for a 2xx/3xx.
 */
enum failcause failcause_from_reply(const char *step, int code,
	    const char *enhanced, const char *text);
/* The cause of a failed certificate verification (X509_V_ERR_*);
 * FC_NONE for X509_V_OK.  "Unable to get (local) issuer" is
 * FC_TLS_UNTRUSTED: the missing issuer may be a root or an intermediate,
 * the caller who sees the chain may know better (a lone leaf that names
 * its CA issuer URL lacks its intermediate). */
enum failcause failcause_from_verify(long verify_result);
/* The cause of a failed TLS handshake from the OpenSSL error code
 * (ERR_get_error(); 0 = the peer closed); `implicit` when it was implicit
 * TLS rather than STARTTLS. */
enum failcause failcause_from_tls_error(unsigned long err, int implicit);
/*
 * The cause of a failed smtp_client step (any err but OK): a reply goes
 * to failcause_from_reply, a TLS failure to failcause_from_tls_error, the
 * rest by kind.  `implicit` as above.
 */
enum failcause failcause_from_result(const struct smtp_client_result *,
	    int implicit);

#endif
