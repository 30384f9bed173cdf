/*
 * smtp_client.h - THE SMTP client protocol engine: one connection to one
 * server, driven asynchronously on a libevent event_base.  Used by
 * delivery (smtp_conn.c), `postern cert fetch` and `postern send`
 * (send_driver.c); `postern probe` is to use it too.  It knows the
 * protocol (RFC 5321, 3207 STARTTLS, 8314
 * implicit TLS, 2033 LMTP) and nothing of delivery policy: which TLS is
 * required, what to do on a 4xx, whether to verify certificates - the
 * caller decides, step by step.
 *
 * Model: a step machine the caller composes.  Each step function starts
 * one step and returns at once; its callback runs exactly once, later,
 * from the event loop (never from inside the call that started it), with
 * a result.  One step at a time: starting a step while another runs is a
 * programming error (fatalx).  Typical composition:
 *
 *	smtp_client_connect(c, sa, salen, cb1)    TCP
 *	[smtp_client_tls(c, ctx, name, cb)]       implicit TLS (RFC 8314)
 *	smtp_client_greeting(c, cb2)              read the 220
 *	smtp_client_ehlo(c, name, cb3)            EHLO, HELO on 5xx to EHLO
 *	smtp_client_starttls(c, ctx, name, cb4)   STARTTLS + handshake
 *	                                          (or _inject: + NOOP)
 *	smtp_client_ehlo(c, name, cb5)            again: RFC 3207 4.2
 *	smtp_client_command(c, "MAIL FROM:<>", 0, cb6) ...
 *	smtp_client_quit(c, cb7); smtp_client_free(c)
 *
 * Results (struct smtp_client_result):
 *   err == SMTP_CLIENT_OK   the step did what it is for:
 *        connect / tls      connected / handshake done (reply NULL)
 *        greeting           a 2xx greeting
 *        ehlo               a 2xx to EHLO, or to HELO after a 5xx to EHLO
 *                           (LMTP: a 2xx to LHLO)
 *        starttls           220 to STARTTLS and the handshake done
 *        command            ANY complete reply (the caller looks at code)
 *        quit               a reply to QUIT or the server closing
 *        auth               235
 *        send               a 2xx to the end of data (some recipients
 *                           may still have been refused: see
 *                           smtp_client_rcpt_reply); LMTP: a 2xx final
 *                           reply for at least one recipient (see
 *                           smtp_client_data_reply for each)
 *   err == SMTP_CLIENT_EREPLY  a well-formed reply that makes the step
 *        fail (greeting not 2xx, EHLO/HELO/LHLO not 2xx, STARTTLS not
 *        220, AUTH not 235, MAIL refused, no RCPT accepted, DATA or the
 *        end of data refused (LMTP: for every recipient); `step` says
 *        which); reply is set.
 *   any other err          the connection is unusable; only
 *        smtp_client_free() (and the accessors) make sense afterwards.
 *
 * Ownership and lifetimes:
 *   - The client owns its socket, bufferevents, SSL and replies; the
 *     caller owns the event_base (must outlive the client) and the
 *     SSL_CTX (may be freed after the step that used it: the SSL holds a
 *     reference).
 *   - The result and the reply it points to are borrowed: valid during
 *     the callback and until the next step completes or the client is
 *     freed (smtp_client_last_reply() gives it again meanwhile).
 *   - smtp_client_free() may be called at any time, also from inside a
 *     callback; a pending callback then never runs.
 *   - Strings given to step functions are copied.
 *
 * Threat notes (the server is untrusted):
 *   - Bounded memory: reply lines are limited to SMTP_REPLY_LINE_MAX
 *     octets and SMTP_REPLY_LINES_MAX lines (else EPROTO), and the input
 *     buffer has a high-water mark, so a server that never ends a line or
 *     a reply, or floods us between steps, cannot make us buffer without
 *     limit.
 *   - Every step has a deadline for the whole step (not per read), so a
 *     trickling server cannot hold us forever.
 *   - STARTTLS: anything the server sends after the 220 and before our
 *     ClientHello (already read, or waiting on the socket) is a protocol
 *     violation (CVE-2011-0411 class, "STARTTLS injection"): it is
 *     discarded and the step fails with EPROTO; it is never read as if it
 *     came through TLS.  All plaintext state (extensions) is forgotten
 *     after TLS starts: call smtp_client_ehlo() again.
 *   - Reply text is sanitised by smtp_reply (no control characters), so
 *     it can be printed and logged.
 *   - Command lines with CR, LF or NUL are refused (no command injection
 *     through caller-supplied strings).
 *
 * Authentication (smtp_client_auth): AUTH PLAIN with an initial
 * response (RFC 4954, 4616) or AUTH LOGIN answering the "Username:" and
 * "Password:" challenges.  OK only on 235; any other final reply is
 * EREPLY; a 334 that is not expected (or a challenge we do not know) is
 * EPROTO.  Refused (EUSAGE) without TLS unless the caller opts in.  The
 * secret and its base64 never reach result->detail; every copy we make
 * (including the bytes queued for the socket) is wiped with
 * OPENSSL_cleanse once sent.  Which mechanism to use is the caller's
 * choice (smtp_client_ehlo_info()->auth).
 *
 * Mail transaction (smtp_client_send): MAIL, one RCPT per recipient,
 * DATA, the dot-stuffed message and CRLF.CRLF.  With PIPELINING in the
 * last EHLO (RFC 2920) MAIL, all RCPTs and DATA go out in one write and
 * the replies are read in order; otherwise one command at a time.  The
 * per-recipient replies stay available (smtp_client_rcpt_reply) so the
 * caller can bounce, retry or defer each recipient on its own; the step
 * succeeds when the message was accepted for at least one recipient.
 * When MAIL or every RCPT is refused the message is not sent (with
 * PIPELINING the reply to DATA is read and dropped; should the server
 * answer it with 354 anyway, a lone "." ends the empty data) and the
 * session is left as it is (no RSET: the caller may QUIT or try again).
 * The body is written in chunks as the socket drains (the message is
 * borrowed, never copied whole), with the RFC 5321 4.5.3.2 deadlines per
 * command, per data block, and for the final reply.  Another transaction
 * on the same connection may start with RSET (smtp_client_rset_next),
 * and its commands may go out with this one's end of data
 * (smtp_client_send_next).  Not there yet:
 * BDAT/CHUNKING, BINARYMIME.
 *
 * LMTP (RFC 2033): smtp_client_set_lmtp() before the first step puts the
 * client in LMTP mode for the whole session, over TCP
 * (smtp_client_connect) or a UNIX socket the caller connected
 * (smtp_client_attach_fd).  smtp_client_ehlo() then sends LHLO (step
 * "LHLO"; no HELO fallback: any reply but 2xx is EREPLY) and its
 * extensions are parsed as for EHLO.  After the end of data
 * smtp_client_send() reads one final reply per recipient accepted at
 * RCPT, in RCPT order (RFC 2033 4.2), each bounded like any reply, all
 * within the one data_end deadline; smtp_client_data_reply() gives each
 * recipient its own.  The step is OK when at least one of them is 2xx
 * (result reply: the first 2xx one), EREPLY ("end of data", reply: the
 * last one) when none is.  On a timeout or a close part way through, the
 * replies read so far stay available: a recipient with a 2xx final reply
 * HAS been delivered and must not be sent again; the others are in doubt
 * (no reply).  Should an LMTP server answer a pipelined DATA with 354
 * although no RCPT was accepted (RFC 2033 4.2 says it MUST NOT), there is
 * no telling how many replies would follow: the step reports the RCPT
 * refusal (EREPLY) as usual, but the connection is given up (the next
 * step fails with ECLOSED).
 */
#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "smtp_reply.h"

struct event_base;
struct smtp_client;

enum smtp_client_err {
	SMTP_CLIENT_OK = 0,
	SMTP_CLIENT_EREPLY,	/* the server answered, but not as needed */
	SMTP_CLIENT_ECONNREFUSED, /* TCP RST to our SYN */
	SMTP_CLIENT_ECONNECT,	/* other connect failure (sys_errno) */
	SMTP_CLIENT_ETIMEOUT,	/* the step's deadline passed */
	SMTP_CLIENT_ETLS,	/* TLS handshake failed (detail) */
	SMTP_CLIENT_EPROTO,	/* protocol violation by the server (detail) */
	SMTP_CLIENT_ECLOSED,	/* the server closed the connection */
	SMTP_CLIENT_EIO,	/* read/write error after connect (sys_errno) */
	SMTP_CLIENT_EUSAGE	/* bad argument from the caller (detail) */
};

struct smtp_client_result {
	enum smtp_client_err	 err;
	const char		*step;	/* "connect", "TLS handshake",
					 * "greeting", "EHLO", "HELO", "LHLO",
					 * "STARTTLS", "QUIT", "AUTH", "MAIL",
					 * "RCPT", "DATA", "end of data", or
					 * the command verb */
	int			 sys_errno;	/* ECONNECT / EIO, else 0 */
	unsigned long		 tls_error;	/* ETLS: OpenSSL error code
						 * (0 = peer closed) */
	const struct smtp_reply	*reply;	/* the reply, when there is one */
	char			 detail[256];	/* why, in words, for errors */
};

typedef void (*smtp_client_cb)(struct smtp_client *,
	    const struct smtp_client_result *, void *arg);

/* Step deadlines in seconds (RFC 5321 4.5.3.2 for the SMTP ones). */
struct smtp_client_timeouts {
	double	connect;	/* default 30 */
	double	tls;		/* TLS handshake, default 120 */
	double	greeting;	/* default 300 */
	double	ehlo;		/* EHLO/HELO/STARTTLS reply, default 300 */
	double	command;	/* smtp_client_command default, 300 */
	double	quit;		/* default 10 */
	double	mail;		/* reply to MAIL, default 300 */
	double	rcpt;		/* reply to each RCPT, default 300 */
	double	data_init;	/* reply to DATA, default 120 */
	double	data_block;	/* each block of the message must be taken
				 * by the server within, default 180 */
	double	data_end;	/* reply after the final ".", default 600 */
};

/* The defaults above. */
void	smtp_client_timeouts_default(struct smtp_client_timeouts *);
/* A client on `base`; NULL timeouts = defaults. */
struct smtp_client *smtp_client_new(struct event_base *base,
	    const struct smtp_client_timeouts *);
/* Close the connection (no QUIT: use smtp_client_quit for a polite end)
 * and free everything; a pending callback never runs.  NULL is fine. */
void	smtp_client_free(struct smtp_client *);
/* Change deadlines for the steps started from now on. */
void	smtp_client_set_timeouts(struct smtp_client *,
	    const struct smtp_client_timeouts *);
/*
 * LMTP (RFC 2033) when `on` is non-zero, SMTP (the default) otherwise:
 * LHLO instead of EHLO, one final reply per accepted recipient after the
 * data (see the header comment).  Set it before the first step and leave
 * it for the session; calling it while a step runs is a programming
 * error (fatalx).
 */
void	smtp_client_set_lmtp(struct smtp_client *, int on);
/* 1 in LMTP mode, else 0. */
int	smtp_client_lmtp(const struct smtp_client *);

/* TCP connect to `sa` (any family; resolution is the caller's job). */
void	smtp_client_connect(struct smtp_client *, const struct sockaddr *sa,
	    socklen_t salen, smtp_client_cb, void *arg);
/*
 * Use an already connected socket instead (tests, socketpairs, LMTP over
 * a UNIX socket); the client owns it from now on.  The callback runs as
 * for a connect that succeeded.
 */
void	smtp_client_attach_fd(struct smtp_client *, int fd, smtp_client_cb,
	    void *arg);
/*
 * TLS handshake now, on the connected socket (implicit TLS, RFC 8314).
 * `servername` (may be NULL) is sent as SNI and, when the context
 * verifies, is the name the certificate must match
 * (tls_client_expect_host).  A verification failure is ETLS.
 */
void	smtp_client_tls(struct smtp_client *, SSL_CTX *, const char *servername,
	    smtp_client_cb, void *arg);
/* Read the greeting (220, or 554 for "go away" = EREPLY). */
void	smtp_client_greeting(struct smtp_client *, smtp_client_cb, void *arg);
/* EHLO `name`; on a 5xx, HELO `name` (then smtp_client_esmtp() is 0).
 * In LMTP mode LHLO `name`, and nothing else (smtp_client_esmtp() is 1
 * after a 2xx). */
void	smtp_client_ehlo(struct smtp_client *, const char *name,
	    smtp_client_cb, void *arg);
/* STARTTLS, then the handshake as smtp_client_tls().  Whether the server
 * advertised it is for the caller to check (smtp_client_ehlo_info). */
void	smtp_client_starttls(struct smtp_client *, SSL_CTX *,
	    const char *servername, smtp_client_cb, void *arg);
/*
 * The STARTTLS command-injection check (CVE-2011-0411 class): STARTTLS
 * and NOOP written together (one packet), then as smtp_client_starttls.
 * A correct server answers 220 and discards the NOOP it read with it; a
 * vulnerable one answers the NOOP after the handshake, inside TLS.  The
 * caller then calls smtp_client_quit() and reads the first reply in TLS:
 * 221 = the NOOP was dropped, 250 = it was executed.  A server that
 * answers the NOOP in clear, right after its 220, makes this step fail
 * with EPROTO (data after the 220), as for smtp_client_starttls.
 */
void	smtp_client_starttls_inject(struct smtp_client *, SSL_CTX *,
	    const char *servername, smtp_client_cb, void *arg);
/* Send one command line (without CRLF) and read its reply; `timeout` in
 * seconds, <= 0 = the `command` default. */
void	smtp_client_command(struct smtp_client *, const char *line,
	    double timeout, smtp_client_cb, void *arg);
/* QUIT and wait (briefly) for the reply or the close. */
void	smtp_client_quit(struct smtp_client *, smtp_client_cb, void *arg);

/*
 * AUTH `mech` ("PLAIN" or "LOGIN", case-insensitive) as `user` with
 * `password` (each 1..SMTP_CLIENT_AUTH_MAX octets).  Without an active
 * TLS session refused (EUSAGE) unless allow_plaintext is set (callers
 * pass 0 unless configured otherwise, e.g. a loopback relay).
 */
#define SMTP_CLIENT_AUTH_MAX	4096
void	smtp_client_auth(struct smtp_client *, const char *mech,
	    const char *user, const char *password, int allow_plaintext,
	    smtp_client_cb, void *arg);

/* Addresses longer than this are refused (RFC 5321 4.5.3.1.3 path). */
#define SMTP_CLIENT_PATH_MAX	512
struct smtp_client_envelope {
	const char	 *from;		/* reverse-path without <>, "" for
					 * the null reverse-path */
	const char *const *rcpts;	/* forward-paths without <> */
	size_t		  nrcpts;	/* >= 1 */
	size_t		  size;		/* message size for SIZE= (sent only
					 * when the server advertised SIZE),
					 * 0 = omit */
	int		  body_8bit;	/* add BODY=8BITMIME (the caller
					 * checked the server offers it) */
	int		  smtputf8;	/* add SMTPUTF8 (likewise) */
	const char	 *mail_params;	/* extra raw MAIL parameters or NULL
					 * (e.g. "RET=HDRS ENVID=...") */
	const char *const *rcpt_params;	/* per recipient extra parameters
					 * (NOTIFY=, ORCPT=) or NULL; an
					 * element may be NULL */
};
/*
 * One mail transaction (see the header comment).  `message` is the whole
 * RFC 5322 message with CRLF line ends; the client dot-stuffs it, adds a
 * CRLF when it does not end with one, and appends ".".  It is borrowed
 * until the callback runs (or the client is freed).  EUSAGE, with
 * nothing sent, for an address with CR, LF, '<' or '>' or longer than
 * SMTP_CLIENT_PATH_MAX, parameters with CR or LF, no recipients, or a
 * bare CR or bare LF in the message.  The envelope is copied.
 */
void	smtp_client_send(struct smtp_client *,
	    const struct smtp_client_envelope *, const char *message,
	    size_t len, smtp_client_cb, void *arg);
/*
 * Make the next smtp_client_send() start with RSET (a new transaction on
 * a used connection, RFC 5321 4.1.1.5): pipelined with MAIL under
 * PIPELINING.  A refused RSET makes that step EREPLY with step "RSET"
 * and ends the connection (the replies would be out of step).
 */
void	smtp_client_rset_next(struct smtp_client *);
/*
 * Announce the envelope of the transaction that will follow the one now
 * running (or about to start) on this connection.  Under PIPELINING its
 * RSET, MAIL, RCPTs and DATA then go out in the same write as the "."
 * that ends the running transaction's data (RFC 2920 3.1: the message
 * content may be the first "command" of a group, "the RSET/MAIL FROM
 * sequence necessary to initiate a new message transaction can be placed
 * in the same group"), which saves a round trip, and over TLS a record
 * each way, per message.  The envelope is copied.  Once they are out
 * (not before: without PIPELINING, in LMTP mode, or when the running
 * transaction ends before its data, nothing is sent early and the
 * announcement only lapses), the next step MUST be smtp_client_send()
 * with the same envelope: another envelope, or any step but
 * smtp_client_quit(), fails with EUSAGE and gives the connection up;
 * smtp_client_quit() then closes without QUIT (the server is in DATA),
 * which leaves that transaction undelivered.  Announcing again before
 * that send is a programming error (fatalx).  An envelope
 * smtp_client_send() would refuse is not announced.
 */
void	smtp_client_send_next(struct smtp_client *,
	    const struct smtp_client_envelope *);
/* The reply to RCPT number i of the last smtp_client_send, or NULL when
 * none was read (MAIL refused first, an error, i out of range).  Valid
 * until the next step starts or the client is freed. */
const struct smtp_reply *smtp_client_rcpt_reply(const struct smtp_client *,
	    size_t i);
/*
 * The final reply for recipient i of the last smtp_client_send: SMTP:
 * the one reply to the end of data, the same for every recipient
 * accepted at RCPT; LMTP: that recipient's own reply (RFC 2033 4.2).
 * NULL for a recipient not accepted at RCPT, i out of range, or when no
 * final reply was read for it (DATA refused, an error or a timeout
 * before it came).  Kept whatever the step's result; valid as long as
 * smtp_client_rcpt_reply.
 */
const struct smtp_reply *smtp_client_data_reply(const struct smtp_client *,
	    size_t i);

/* Accessors (borrowed, valid until the client is freed or, for the EHLO
 * data, until the next EHLO/HELO or TLS start). */
const struct smtp_reply *smtp_client_last_reply(const struct smtp_client *);
/* Extensions of the last successful EHLO; NULL before, after HELO, and
 * after TLS started until the next EHLO. */
const struct smtp_ehlo *smtp_client_ehlo_info(const struct smtp_client *);
int	smtp_client_esmtp(const struct smtp_client *);
/* The SSL of an established TLS session, or NULL (peer chain, protocol,
 * cipher, SSL_get_verify_result...). */
SSL	*smtp_client_ssl(const struct smtp_client *);
/* The socket, or -1 (for getsockname/getpeername). */
int	smtp_client_fd(const struct smtp_client *);
/* When the last TLS handshake began (mono_now() seconds), 0 if none:
 * after a STARTTLS step, the time to the 220 and the handshake's own
 * time can be told apart. */
double	smtp_client_tls_started(const struct smtp_client *);
/* Name of an error kind ("connection refused", "timeout", ...). */
const char *smtp_client_strerror(enum smtp_client_err);

#endif
