/*
 * smtp_server.h - the inbound ESMTP session engine (RFC 5321, 1869, 1870,
 * 2034, 2920, 3030, 3461, 6152, 6531).  It works on byte buffers only:
 * input arrives in a libevent evbuffer (a plain memory buffer here, no
 * socket), replies and spool writes leave through the callbacks in
 * struct smtp_server_ops.  So it runs the same under a socket (listener.c)
 * and in unit tests fed with bytes.
 *
 * Callers: listener.c; tests/unit/test_smtp_server.c.
 */
#ifndef POSTERN_SMTP_SERVER_H
#define POSTERN_SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "conf.h"
#include "envelope.h"
#include "smtp_proto.h"

struct evbuffer;
struct smtp_session;

struct smtp_server_ops {
	/* Queue reply bytes for the client. */
	void	(*reply)(void *ctx, const char *data, size_t len);
	/* Open spool storage for a new message; 0 ok, -1 fail (451). */
	int	(*msg_begin)(void *ctx, uint64_t mid);
	/* Append message content; -1 on a write error. */
	int	(*msg_write)(void *ctx, const char *data, size_t len);
	/* Make the message durable; answer later with
	 * smtp_session_committed().  `env` is borrowed for the call. */
	void	(*msg_commit)(void *ctx, const struct envelope *env);
	/* Drop an opened message. */
	void	(*msg_abort)(void *ctx);
	/* Allocate a MID. */
	uint64_t (*new_mid)(void *ctx);
	/* Recipient in a local domain: NULL = accept, else a full reply
	 * line without CRLF (e.g. 550 5.1.1 ... User unknown). */
	const char *(*rcpt_local_check)(void *ctx, const struct smtp_path *);
	/* STARTTLS accepted: the 220 is queued; once it is sent, start the
	 * server handshake and report with smtp_session_tls_started() (or
	 * drop the session on failure).  Input is discarded meanwhile. */
	void	(*starttls)(void *ctx);

	/* ---- AUTH (RFC 4954); only called when the listener has auth. */
	/* 0: this client may try AUTH; 1: too many failures (the engine
	 * waits limits.auth_failure_delay, then 454 and close). */
	int	(*auth_blocked)(void *ctx);
	/* Check credentials; answer with smtp_session_auth_result(), later
	 * or at once.  The password is wiped after the call. */
	void	(*auth_check)(void *ctx, const char *user, const char *pass,
		    size_t passlen);
	/* May `user` send as `addr`?  1 yes, 0 not a verified identity, -1
	 * the credential no longer exists. */
	int	(*sender_allowed)(void *ctx, const char *user, const char *addr);
	/* At MAIL: NULL, or the reply line refusing it (sending quota).
	 * Counts the message when allowed. */
	const char *(*send_quota)(void *ctx, const char *user);
	/* At MAIL: room in the spool for a message of `size` octets (the
	 * SIZE parameter, 0 = not declared)?  1 yes; 0 no: 452 4.3.1. */
	int	(*spool_room)(void *ctx, uint64_t size);
};

struct smtp_session_params {
	const struct conf	  *conf;	/* borrowed for the session */
	const struct conf_policy  *policy;	/* of the matched sender group */
	uint64_t		   icid;
	const char		  *client_ip;	/* copied */
	const char		  *client_rdns;	/* copied; "unknown" if none */
	/* Effective TLS mode: the listener's, tightened by the policy.
	 * LISTENER_TLS_IMPLICIT: call smtp_session_tls_started() before
	 * smtp_session_start(). */
	enum listener_tls	   tls;
	/* The listener's auth: off | optional | required. */
	enum listener_auth	   auth;
};

struct smtp_session *smtp_session_new(const struct smtp_session_params *,
	    const struct smtp_server_ops *, void *ctx);
/* Free; an open transaction is aborted (msg_abort, log line). */
void	smtp_session_free(struct smtp_session *);
/* Send the banner (220, or 554 for a reject policy). */
void	smtp_session_start(struct smtp_session *, double now);
/* Consume as much of `in` as the state allows (stops while a commit is
 * pending or once closing). */
void	smtp_session_input(struct smtp_session *, struct evbuffer *in,
	    double now);
/* Result of msg_commit: sends 250 or 451; call input() again after. */
void	smtp_session_committed(struct smtp_session *, int ok, double now);
/* The deadline passed (postern-log(7): 421 4.4.2 and close). */
void	smtp_session_timeout(struct smtp_session *);
/* Absolute monotonic time of the current deadline (0 = none). */
double	smtp_session_deadline(const struct smtp_session *);
/* The engine has said its last word: flush replies, then close. */
int	smtp_session_closing(const struct smtp_session *);
/* A commit is in flight (the session must outlive it). */
int	smtp_session_committing(const struct smtp_session *);
/* The server is stopping: 421 and close, unless a commit is in flight
 * (call again after smtp_session_committed()). */
void	smtp_session_shutdown(struct smtp_session *);
/* The TLS handshake succeeded (after STARTTLS, or implicit TLS before
 * the banner): RFC 3207 4.2 reset, later replies go through TLS. */
void	smtp_session_tls_started(struct smtp_session *, const char *protocol,
	    const char *cipher, double now);
/* Waiting for the TLS handshake (input is not commands). */
int	smtp_session_handshaking(const struct smtp_session *);
/* Result of ops->auth_check: 1 valid, 0 invalid (535), -1 could not
 * check (454). */
void	smtp_session_auth_result(struct smtp_session *, int result,
	    double now);
/* Waiting for ops->auth_check's answer (input is kept, not read). */
int	smtp_session_authenticating(const struct smtp_session *);
/* The authenticated user, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *);
/* Client vanished: log and abort what is open (no reply). */
void	smtp_session_lost(struct smtp_session *);

#endif
