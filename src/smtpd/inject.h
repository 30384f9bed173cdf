/*
 * inject.h - a whole message, already checked, into the spool the way an
 * SMTP session puts one there: a MID, our Received: field, the SPEC log
 * lines (Start MID, From:, To:, Message-ID, Subject, ready), streaming
 * write to spool/incoming, the worker's group commit, and the MID sent
 * to the queue manager.  The caller hears of the result only once the
 * message is on stable storage (or is not), so it answers "201" / removes
 * a pickup file exactly when SMTP would answer 250.
 *
 * Callers: http_api.c (HTTPS API), pickup.c (pickup directory), both in
 * an SMTP worker.  Not for the queue manager's own mail (spool_inject).
 */
#ifndef POSTERN_INJECT_H
#define POSTERN_INJECT_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* How the message reached us, for the Received: field (RFC 5321 4.4). */
struct inject_trace {
	const char	*from;		/* "host ([ip])", or NULL (local) */
	const char	*tls;		/* "TLSv1.3 with cipher C", or NULL */
	const char	*with;		/* "HTTPSA", or NULL */
	const char	*local;		/* "from userid 1000 (alice)", or NULL */
};

struct inject_msg {
	uint64_t	  icid;
	const char	 *client_ip;	/* envelope: "127.0.0.1", "local" */
	const char	 *helo;		/* envelope HELO field */
	const char	 *auth_user;	/* "" = none */
	const char	 *from;		/* envelope sender, "" = <> */
	const char *const *rcpts;
	size_t		  nrcpts;
	const char	 *data;		/* message, CRLF line ends, borrowed
					 * until the callback */
	size_t		  len;
	int		  eightbit;	/* BODY=8BITMIME */
	int		  smtputf8;
	struct inject_trace trace;
};

/* ok = 1: durable in spool/queue under `mid`; ok = 0: nothing kept (451). */
typedef void (*inject_cb)(void *arg, uint64_t mid, int ok);

/* Once per worker: where messages go and where MIDs are announced. */
void	inject_init(struct spool *, int notify_fd, const char *hostname);

/*
 * Spool `m`: the callback runs later from the event loop (never before
 * this returns).  Returns the MID given to it, or 0 when not even the
 * spool file could be opened (why says so; no callback then).
 */
uint64_t inject_submit(const struct inject_msg *m, inject_cb cb, void *arg,
	    char *why, size_t whylen);

#endif
