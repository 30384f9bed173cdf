/*
 * smtp_client.c - asynchronous SMTP client step machine.  See
 * smtp_client.h for the model, ownership and threat notes.
 *
 * Internals: one `step` at a time.  Each step arms `timer` (its whole
 * deadline) and completes through finish(), which disarms it, stores the
 * result in c->res and calls the callback last - nothing touches `c`
 * after a callback returns, since the callback may have freed it.
 * Failures known when a step starts go through `kick` (an event made
 * active at once) so callbacks never run inside a step function.
 *
 * The connection is a plain socket bufferevent, replaced by an OpenSSL
 * socket bufferevent on the same fd when TLS starts; the plain one is
 * freed first, and whatever it had buffered is checked (STARTTLS).  The
 * SSL reads ahead (whole records, several at once), so it can hold
 * records that libevent, which reads on only while SSL_pending() is
 * non-zero, would leave there with no readable event to come:
 * tls_pending() has libevent read them before any wait for input
 * (STYLE 6; Redis's tls.c does the same with tlsProcessPendingData).
 *
 * STEP_SEND keeps a small queue: the command lines of the transaction
 * (MAIL, the RCPTs, DATA, in one buffer kept from one transaction to the
 * next), how many were written and how many replies read; with
 * PIPELINING all are written at once.  The body goes out from the write
 * callback, TX_CHUNK stuffed octets at a time, whenever the output
 * buffer has drained; the last block carries the "." and, when the
 * caller announced the next transaction (smtp_client_send_next), that
 * one's lines (c->ahead).  Every group of lines and every block is
 * queued with one add or commit into one buffer chain, so it leaves
 * in one write: under TLS one record (libevent's OpenSSL bufferevent
 * writes a record per chain).  Secrets (AUTH) are queued as evbuffer
 * references whose cleanup wipes them, so no unwiped copy is left in
 * libevent's buffers.  After the ".", SMTP keeps the one final reply
 * (tx.eod); LMTP reads tx.accepted final replies and files each under
 * the next recipient with a 2xx to RCPT (tx.final[], cursor tx.fnext).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>	/* ev_read: see tls_pending() */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base64.h"
#include "smtp_client.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"

/* Input kept buffered at most (libevent stops reading above it). */
#define INPUT_HIGH_WATER	(16 * SMTP_REPLY_LINE_MAX)
/* Longest command line we send (RFC 4954 4: AUTH lines up to 12288). */
#define CMD_LINE_MAX		12288
/* Message octets queued per write callback. */
#define TX_CHUNK		(64 * 1024)

enum step {
	STEP_NONE = 0,
	STEP_CONNECT,
	STEP_TLS,		/* handshake (implicit, or after STARTTLS) */
	STEP_GREETING,
	STEP_EHLO,
	STEP_HELO,
	STEP_STARTTLS,		/* waiting for the 220 */
	STEP_COMMAND,
	STEP_QUIT,
	STEP_AUTH,
	STEP_SEND
};

enum auth_state {
	AUTH_PLAIN_SENT,	/* AUTH PLAIN <ir>: 235 or a refusal */
	AUTH_LOGIN_SENT,	/* AUTH LOGIN: 334 Username: */
	AUTH_LOGIN_USER,	/* username sent: 334 Password: */
	AUTH_LOGIN_PASS		/* password sent: 235 or a refusal */
};

enum ahead_state {
	AHEAD_NONE,
	AHEAD_PENDING,		/* announced, not written yet */
	AHEAD_WRITTEN		/* on the wire behind the last "." */
};

enum tx_phase {
	TX_CMDS,		/* reading replies to MAIL/RCPT/DATA */
	TX_BODY,		/* writing the message */
	TX_END,			/* "." queued, waiting for the reply */
	TX_ABORT		/* lone "." after a 354 we did not want */
};

struct tx {
	size_t			  ncmds;	/* MAIL, RCPT..., DATA: lines in
						 * c->cmds */
	size_t			  nsent;	/* lines written */
	size_t			  nrecv;	/* replies read */
	size_t			  nrcpts;
	struct smtp_reply	 *rcpt;	/* reply per recipient */
	size_t			  accepted;	/* 2xx to RCPT */
	struct smtp_reply	  fail;		/* MAIL refusal, kept */
	const char		 *fail_step; /* NULL, "MAIL", "RCPT" */
	enum tx_phase		  phase;
	int			  rset;		/* a reply to RSET comes first */
	const char		 *msg;		/* borrowed */
	size_t			  len, pos;
	int			  bol;	/* pos is at a line start */
	int			  end_armed;
	int			  lmtp;		/* the mode at the start */
	struct smtp_reply	  eod;		/* SMTP: end-of-data reply */
	struct smtp_reply	 *final;	/* LMTP: per recipient */
	size_t			  nfinal;	/* LMTP: final replies read */
	size_t			  fnext;	/* LMTP: next recipient */
};

struct smtp_client {
	struct event_base	*base;
	struct smtp_client_timeouts to;
	int			 fd;
	struct bufferevent	*bev;
	int			 bev_owns_fd;	/* the TLS bufferevent does */
	int			 tls_up;
	double			 tls_t0;	/* last handshake began (mono) */
	struct event		*connev;	/* connect in progress */
	struct event		*timer;
	struct event		*kick;

	struct smtp_reply_parser parser;
	struct smtp_reply	 last;
	int			 have_last;
	struct smtp_ehlo	 ehlo;
	int			 have_ehlo;
	int			 esmtp;
	int			 lmtp;		/* RFC 2033 mode */
	char			 helo_name[256];

	int			 eof;		/* peer closed */
	int			 dead;		/* unusable after an error */
	char			 dead_why[200];

	enum step		 step;
	const char		*step_name;
	int			 starttls;	/* STEP_TLS after STARTTLS */
	double			 step_timeout;
	smtp_client_cb		 cb;
	void			*arg;
	char			 verb[16];
	SSL_CTX			*st_ctx;	/* STARTTLS pending */
	char			 st_name[256];

	enum auth_state		 auth_state;
	char			*auth_user;	/* LOGIN, wiped */
	char			*auth_pass;
	struct tx		 tx;
	int			 rset_next;	/* smtp_client_rset_next */
	/* The transaction's lines, "RSET\r\n" first, then MAIL, RCPT...,
	 * DATA; line i starts at cmdoff[i] (the RSET is not counted); kept
	 * for the next transaction, so bulk sending does not allocate. */
	struct strbuf		 cmds;
	size_t			*cmdoff;	/* ncmds + 1 entries */
	size_t			 cmdoff_cap;
	/* smtp_client_send_next: the next transaction's lines, as in cmds,
	 * written behind the "." of the running one (RFC 2920 3.1). */
	struct strbuf		 ahead;
	enum ahead_state	 ahead_state;

	struct smtp_client_result res;		/* of the last step */
	struct smtp_client_result dres;		/* pending, via kick */
	int			 dres_pending;
};

static void	readcb(struct bufferevent *, void *);
static void	writecb(struct bufferevent *, void *);
static void	auth_clear(struct smtp_client *);
static void	tx_clear(struct smtp_client *);
static void	tx_release(struct smtp_client *);
static void	eventcb(struct bufferevent *, short, void *);
static int	process_input(struct smtp_client *);
static void	tls_pending(struct smtp_client *);

const char *
smtp_client_strerror(enum smtp_client_err e)
{
	switch (e) {
	case SMTP_CLIENT_OK:		return "ok";
	case SMTP_CLIENT_EREPLY:	return "unexpected reply";
	case SMTP_CLIENT_ECONNREFUSED:	return "connection refused";
	case SMTP_CLIENT_ECONNECT:	return "connection failed";
	case SMTP_CLIENT_ETIMEOUT:	return "timeout";
	case SMTP_CLIENT_ETLS:		return "TLS handshake failed";
	case SMTP_CLIENT_EPROTO:	return "protocol error";
	case SMTP_CLIENT_ECLOSED:	return "connection closed";
	case SMTP_CLIENT_EIO:		return "I/O error";
	case SMTP_CLIENT_EUSAGE:	return "usage error";
	}
	return "unknown error";
}

void
smtp_client_timeouts_default(struct smtp_client_timeouts *t)
{
	t->connect = 30;
	t->tls = 120;
	t->greeting = 300;
	t->ehlo = 300;
	t->command = 300;
	t->quit = 10;
	t->mail = 300;
	t->rcpt = 300;
	t->data_init = 120;
	t->data_block = 180;
	t->data_end = 600;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg);
static void
kick_cb(evutil_socket_t fd, short what, void *arg);

struct smtp_client *
smtp_client_new(struct event_base *base, const struct smtp_client_timeouts *t)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->fd = -1;
	if (t != NULL)
		c->to = *t;
	else
		smtp_client_timeouts_default(&c->to);
	if ((c->timer = evtimer_new(base, timer_cb, c)) == NULL ||
	    (c->kick = event_new(base, -1, 0, kick_cb, c)) == NULL)
		fatalx("smtp_client: out of memory for events");
	smtp_reply_parser_init(&c->parser);
	return c;
}

void
smtp_client_set_timeouts(struct smtp_client *c,
    const struct smtp_client_timeouts *t)
{
	c->to = *t;
}

void
smtp_client_set_lmtp(struct smtp_client *c, int on)
{
	if (c->step != STEP_NONE || c->dres_pending)
		fatalx("smtp_client: LMTP mode changed while %s is running",
		    c->step_name ? c->step_name : "a step");
	c->lmtp = on != 0;
}

int
smtp_client_lmtp(const struct smtp_client *c)
{
	return c->lmtp;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->connev != NULL)
		event_free(c->connev);
	event_free(c->timer);
	event_free(c->kick);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->fd != -1 && !c->bev_owns_fd)
		close(c->fd);
	smtp_reply_parser_free(&c->parser);
	smtp_reply_free(&c->last);
	if (c->st_ctx != NULL)
		SSL_CTX_free(c->st_ctx);
	auth_clear(c);
	tx_clear(c);
	strbuf_free(&c->cmds);
	free(c->cmdoff);
	strbuf_free(&c->ahead);
	free(c);
}

/* ---- completing steps ------------------------------------------------ */

static void
mark_dead(struct smtp_client *c, const struct smtp_client_result *r)
{
	if (r->err == SMTP_CLIENT_OK || r->err == SMTP_CLIENT_EREPLY ||
	    r->err == SMTP_CLIENT_EUSAGE || c->dead)
		return;
	c->dead = 1;
	bsnprintf(c->dead_why, sizeof(c->dead_why), "%s%s%s",
	    smtp_client_strerror(r->err), r->detail[0] ? ": " : "", r->detail);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

/* Deliver c->res (already filled in) and end the step.  The caller must
 * return right after: the callback may have freed c. */
static void
deliver(struct smtp_client *c)
{
	smtp_client_cb cb = c->cb;
	void *arg = c->arg;

	evtimer_del(c->timer);
	if (c->step == STEP_AUTH)
		auth_clear(c);
	if (c->step == STEP_SEND)
		tx_release(c);
	c->step = STEP_NONE;
	c->cb = NULL;
	c->arg = NULL;
	mark_dead(c, &c->res);
	if (cb != NULL)
		cb(c, &c->res, arg);
}

static void
fill(struct smtp_client_result *r, struct smtp_client *c,
    enum smtp_client_err err, int with_reply, const char *fmt, va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->err = err;
	r->step = c->step_name;
	r->reply = with_reply && c->have_last ? &c->last : NULL;
	if (fmt != NULL)
		vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
}

/* Finish the running step now (from an event callback). */
static void
finish(struct smtp_client *c, enum smtp_client_err err, int with_reply,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
finish(struct smtp_client *c, enum smtp_client_err err, int with_reply,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fill(&c->res, c, err, with_reply, fmt, ap);
	va_end(ap);
	deliver(c);
}

static void
finish_errno(struct smtp_client *c, enum smtp_client_err err, int e,
    const char *what)
{
	finish(c, err, 0, "%s: %s", what, strerror(e));
	/* c may be gone */
}

/* Finish the step that is being started, from the loop (kick). */
static void
defer(struct smtp_client *c, enum smtp_client_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
defer(struct smtp_client *c, enum smtp_client_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fill(&c->dres, c, err, 0, fmt, ap);
	va_end(ap);
	c->dres_pending = 1;
	event_active(c->kick, EV_TIMEOUT, 1);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	(void)fd;
	(void)what;
	if (c->dres_pending) {
		c->dres_pending = 0;
		c->res = c->dres;
		deliver(c);
		return;
	}
	if (c->step != STEP_NONE && process_input(c) == 0)
		tls_pending(c);		/* c is still there */
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	(void)fd;
	(void)what;
	if (c->step == STEP_NONE)
		return;
	if (c->step == STEP_QUIT) {
		/* no answer to QUIT: we are done anyway */
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "no reply to QUIT within "
		    "%g s", c->step_timeout);
		return;
	}
	if (c->step == STEP_CONNECT)
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "no connection within %g s",
		    c->step_timeout);
	else if (c->step == STEP_TLS)
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "TLS handshake not done "
		    "within %g s", c->step_timeout);
	else if (c->step == STEP_GREETING)
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "no greeting within %g s",
		    c->step_timeout);
	else if (c->step == STEP_SEND && c->tx.phase == TX_BODY)
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "message data not taken "
		    "by the server within %g s", c->step_timeout);
	else if (c->step == STEP_SEND && c->tx.phase == TX_END && c->tx.lmtp)
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "not all final replies to "
		    "end of data within %g s (LMTP: %zu of %zu read)",
		    c->step_timeout, c->tx.nfinal, c->tx.accepted);
	else
		finish(c, SMTP_CLIENT_ETIMEOUT, 0, "no reply to %s within %g s",
		    c->step_name, c->step_timeout);
}

/* (Re)arm the step deadline; <= 0 = none. */
static void
arm(struct smtp_client *c, double timeout)
{
	struct timeval tv;

	c->step_timeout = timeout;
	evtimer_del(c->timer);
	if (timeout <= 0)
		return;
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(c->timer, &tv);
}

/* The connection can no longer be used (the replies would be out of
 * step): every later step fails with ECLOSED and `why`. */
static void
give_up(struct smtp_client *c, const char *why)
{
	c->dead = 1;
	c->ahead_state = AHEAD_NONE;
	bstrlcpy(c->dead_why, why, sizeof(c->dead_why));
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

/*
 * Common start of every step.  Returns 0 when the step may proceed, -1
 * when it has already been finished (deferred) - the caller returns.
 */
static int
begin(struct smtp_client *c, enum step step, const char *name,
    double timeout, smtp_client_cb cb, void *arg, int needs_conn)
{
	if (c->step != STEP_NONE || c->dres_pending)
		fatalx("smtp_client: step %s started while %s is running",
		    name, c->step_name ? c->step_name : "another");
	c->step = step;
	c->step_name = name;
	c->step_timeout = timeout;
	c->cb = cb;
	c->arg = arg;
	tx_clear(c);
	if (needs_conn) {
		if (c->dead) {
			defer(c, SMTP_CLIENT_ECLOSED, "connection no longer "
			    "usable (%s)", c->dead_why);
			return -1;
		}
		if (c->bev == NULL) {
			defer(c, SMTP_CLIENT_EUSAGE, "not connected");
			return -1;
		}
		if (c->ahead_state == AHEAD_WRITTEN && step != STEP_SEND &&
		    step != STEP_QUIT) {
			give_up(c, "a transaction announced with "
			    "smtp_client_send_next was pending");
			defer(c, SMTP_CLIENT_EUSAGE, "%s", c->dead_why);
			return -1;
		}
	}
	arm(c, timeout);
	return 0;
}

/* ---- connection setup ------------------------------------------------ */

static void
setup_bev(struct smtp_client *c)
{
	bufferevent_setcb(c->bev, readcb, writecb, eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static int
make_plain_bev(struct smtp_client *c)
{
	c->bev = bufferevent_socket_new(c->base, c->fd,
	    BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		return -1;
	setup_bev(c);
	return 0;
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	event_free(c->connev);
	c->connev = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == ECONNREFUSED) {
		finish(c, SMTP_CLIENT_ECONNREFUSED, 0, "connection refused");
		return;
	}
	if (err != 0) {
		finish_errno(c, SMTP_CLIENT_ECONNECT, err, "connect");
		return;
	}
	if (make_plain_bev(c) == -1) {
		finish(c, SMTP_CLIENT_ECONNECT, 0, "out of memory");
		return;
	}
	finish(c, SMTP_CLIENT_OK, 0, NULL);
}

void
smtp_client_connect(struct smtp_client *c, const struct sockaddr *sa,
    socklen_t salen, smtp_client_cb cb, void *arg)
{
	int fd, e, one = 1;

	if (begin(c, STEP_CONNECT, "connect", c->to.connect, cb, arg, 0) == -1)
		return;
	if (c->fd != -1) {
		defer(c, SMTP_CLIENT_EUSAGE, "already connected");
		return;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		defer(c, SMTP_CLIENT_ECONNECT, "socket: %s", strerror(errno));
		return;
	}
	c->fd = fd;
	/* Every write is a whole command group or message block, never a
	 * fragment to coalesce: Nagle could only hold the tail of one back
	 * for an ACK. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, salen) == 0) {
		if (make_plain_bev(c) == -1)
			defer(c, SMTP_CLIENT_ECONNECT, "out of memory");
		else
			defer(c, SMTP_CLIENT_OK, NULL);
		return;
	}
	e = errno;
	if (e != EINPROGRESS && e != EINTR) {
		if (e == ECONNREFUSED)
			defer(c, SMTP_CLIENT_ECONNREFUSED,
			    "connection refused");
		else
			defer(c, SMTP_CLIENT_ECONNECT, "connect: %s",
			    strerror(e));
		return;
	}
	c->connev = event_new(c->base, fd, EV_WRITE, connect_cb, c);
	if (c->connev == NULL || event_add(c->connev, NULL) == -1)
		fatalx("smtp_client: cannot watch the connecting socket");
}

void
smtp_client_attach_fd(struct smtp_client *c, int fd, smtp_client_cb cb,
    void *arg)
{
	int fl;

	if (begin(c, STEP_CONNECT, "connect", 0, cb, arg, 0) == -1)
		return;
	if (c->fd != -1) {
		close(fd);
		defer(c, SMTP_CLIENT_EUSAGE, "already connected");
		return;
	}
	c->fd = fd;
	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (make_plain_bev(c) == -1)
		defer(c, SMTP_CLIENT_ECONNECT, "out of memory");
	else
		defer(c, SMTP_CLIENT_OK, NULL);
}

/*
 * Replace the plain bufferevent with a TLS one on the same fd and start
 * the handshake (STEP_TLS must be set).  -1 with why on failure; then the
 * plain bufferevent is still there.
 */
static int
start_tls(struct smtp_client *c, SSL_CTX *ctx, const char *servername,
    char *why, size_t whylen)
{
	struct bufferevent *tb;
	SSL *ssl;

	if (c->tls_up) {
		bsnprintf(why, whylen, "TLS is already active");
		return -1;
	}
	if ((ssl = SSL_new(ctx)) == NULL) {
		bsnprintf(why, whylen, "cannot create a TLS session");
		return -1;
	}
	if (servername != NULL && servername[0] != '\0' &&
	    tls_client_expect_host(ssl, servername) == -1) {
		SSL_free(ssl);
		bsnprintf(why, whylen, "cannot use server name '%s'",
		    servername);
		return -1;
	}
	/* Bytes the plain bufferevent holds are dropped with it: callers
	 * have checked there are none (STARTTLS) or it is fresh. */
	bufferevent_free(c->bev);
	c->bev = NULL;
	/* Read-ahead: a record and whatever follows it in one read(2), not
	 * a read for its header and one for its body.  What OpenSSL then
	 * holds beyond the record it returned is taken before we wait again
	 * (tls_pending). */
	SSL_set_read_ahead(ssl, 1);
	tb = bufferevent_openssl_socket_new(c->base, c->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		/* the SSL went with the failed bufferevent */
		bsnprintf(why, whylen, "cannot start TLS on the connection");
		c->dead = 1;
		bstrlcpy(c->dead_why, "TLS start failed", sizeof(c->dead_why));
		return -1;
	}
	c->bev = tb;
	c->bev_owns_fd = 1;
	c->tls_t0 = mono_now();
	/* A peer that closes without close_notify after QUIT is common. */
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	/* Plaintext state is void once TLS starts (RFC 3207 4.2). */
	c->have_ehlo = 0;
	c->esmtp = 0;
	smtp_reply_parser_free(&c->parser);
	smtp_reply_parser_init(&c->parser);
	setup_bev(c);
	return 0;
}

void
smtp_client_tls(struct smtp_client *c, SSL_CTX *ctx, const char *servername,
    smtp_client_cb cb, void *arg)
{
	char why[200];

	if (begin(c, STEP_TLS, "TLS handshake", c->to.tls, cb, arg, 1) == -1)
		return;
	c->starttls = 0;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		defer(c, SMTP_CLIENT_EPROTO, "server sent data before the "
		    "TLS handshake");
		return;
	}
	if (start_tls(c, ctx, servername, why, sizeof(why)) == -1)
		defer(c, SMTP_CLIENT_ETLS, "%s", why);
}

/* ---- reading replies ------------------------------------------------- */

static int
step_wants_reply(enum step s)
{
	return s == STEP_GREETING || s == STEP_EHLO || s == STEP_HELO ||
	    s == STEP_STARTTLS || s == STEP_COMMAND || s == STEP_QUIT ||
	    s == STEP_AUTH || s == STEP_SEND;
}

/* Queue `verb` [SP arg] CRLF in one piece: under TLS one record, not
 * one per fragment. */
static void
send_line2(struct smtp_client *c, const char *verb, const char *arg)
{
	if (evbuffer_add_printf(bufferevent_get_output(c->bev), "%s%s%s\r\n",
	    verb, arg != NULL ? " " : "", arg != NULL ? arg : "") < 0)
		fatalx("smtp_client: out of memory for a command");
}

static void
send_line(struct smtp_client *c, const char *line)
{
	send_line2(c, line, NULL);
}

static int
got_reply(struct smtp_client *c, struct smtp_reply *r);

static int
process_input(struct smtp_client *c)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	struct smtp_reply r;
	enum smtp_reply_status st;
	size_t used;

	if (c->bev == NULL || !step_wants_reply(c->step))
		return 0;
	in = bufferevent_get_input(c->bev);
	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		memset(&r, 0, sizeof(r));
		st = smtp_reply_feed(&c->parser, v.iov_base, v.iov_len, &used,
		    &r);
		evbuffer_drain(in, used);
		if (st == SMTP_REPLY_ERROR) {
			finish(c, SMTP_CLIENT_EPROTO, 0, "bad reply to %s: %s",
			    c->step == STEP_GREETING ? "connect" :
			    c->step_name, smtp_reply_error(&c->parser));
			return 1;
		}
		if (st == SMTP_REPLY_DONE) {
			if (got_reply(c, &r))
				return 1;
			continue;	/* pipelined replies: read on */
		}
	}
	if (c->eof) {
		if (c->step == STEP_QUIT) {
			finish(c, SMTP_CLIENT_OK, 0, NULL);
			return 1;
		}
		if (c->step == STEP_SEND && c->tx.phase == TX_BODY) {
			finish(c, SMTP_CLIENT_ECLOSED, 0, "server closed the "
			    "connection during the message data");
			return 1;
		}
		if (c->step == STEP_SEND && c->tx.phase == TX_END &&
		    c->tx.lmtp && c->tx.nfinal > 0) {
			finish(c, SMTP_CLIENT_ECLOSED, 0, "server closed the "
			    "connection after %zu of %zu final replies (LMTP)",
			    c->tx.nfinal, c->tx.accepted);
			return 1;
		}
		finish(c, SMTP_CLIENT_ECLOSED, 0, "server closed the "
		    "connection %s %s", smtp_reply_pending(&c->parser) > 0 ||
		    c->parser.cur.nlines > 0 ? "in the middle of the reply to" :
		    "instead of answering", c->step == STEP_GREETING ?
		    "the connect (no greeting)" : c->step_name);
		return 1;
	}
	return 0;
}

/*
 * Records the SSL read ahead and holds, beyond the one libevent took:
 * the socket is empty, so no readable event will come for them; run
 * the bufferevent's read handler now, as a readable socket would.
 * (bev->ev_read is the handler libevent uses for its socket; it reads
 * only while reading is enabled and under the high-water mark, so this
 * is also called after input was consumed.)
 */
static void
tls_pending(struct smtp_client *c)
{
	SSL *ssl;

	if (c->tls_up && c->bev != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(c->bev)) != NULL &&
	    SSL_has_pending(ssl))
		event_active(&c->bev->ev_read, EV_READ, 1);
}

static void
readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	(void)bev;
	if (process_input(c) == 0)
		tls_pending(c);		/* c is still there */
}

/* After the 220 to STARTTLS: nothing may follow it before our ClientHello
 * (RFC 3207 5 / the STARTTLS command injection problem). */
static void
starttls_handshake(struct smtp_client *c)
{
	char why[200], b;
	SSL_CTX *ctx = c->st_ctx;
	ssize_t n;

	c->st_ctx = NULL;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		SSL_CTX_free(ctx);
		finish(c, SMTP_CLIENT_EPROTO, 1, "server sent data after its "
		    "220 reply to STARTTLS (discarded)");
		return;
	}
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || n == 0) {
		SSL_CTX_free(ctx);
		if (n > 0)
			finish(c, SMTP_CLIENT_EPROTO, 1, "server sent data "
			    "after its 220 reply to STARTTLS (discarded)");
		else
			finish(c, SMTP_CLIENT_ECLOSED, 1, "server closed the "
			    "connection after its 220 reply to STARTTLS");
		return;
	}
	c->step = STEP_TLS;
	c->starttls = 1;
	arm(c, c->to.tls);
	if (start_tls(c, ctx, c->st_name, why, sizeof(why)) == -1) {
		SSL_CTX_free(ctx);
		finish(c, SMTP_CLIENT_ETLS, 1, "%s", why);
		return;
	}
	SSL_CTX_free(ctx);	/* the SSL holds its own reference */
}

static int	auth_reply(struct smtp_client *);
static int	tx_reply(struct smtp_client *);

/* Returns 1 when the step ended or waits for a later event (c may be
 * gone), 0 when more replies in the input belong to this step. */
static int
got_reply(struct smtp_client *c, struct smtp_reply *r)
{
	int cls = r->code / 100;

	smtp_reply_free(&c->last);
	c->last = *r;
	c->have_last = 1;
	switch (c->step) {
	case STEP_GREETING:
		if (cls == 2)
			finish(c, SMTP_CLIENT_OK, 1, NULL);
		else
			finish(c, SMTP_CLIENT_EREPLY, 1, "greeting is not 220");
		return 1;
	case STEP_EHLO:
		if (cls == 2) {
			smtp_ehlo_parse(&c->last, &c->ehlo);
			c->have_ehlo = 1;
			c->esmtp = 1;
			finish(c, SMTP_CLIENT_OK, 1, NULL);
		} else if (cls == 5 && !c->lmtp) {
			/* RFC 5321 3.2: fall back to HELO (not LMTP) */
			c->step = STEP_HELO;
			c->step_name = "HELO";
			send_line2(c, "HELO", c->helo_name);
		} else
			finish(c, SMTP_CLIENT_EREPLY, 1, "%s refused",
			    c->step_name);
		return 1;
	case STEP_HELO:
		if (cls == 2) {
			c->esmtp = 0;
			finish(c, SMTP_CLIENT_OK, 1, NULL);
		} else
			finish(c, SMTP_CLIENT_EREPLY, 1, "EHLO and HELO "
			    "refused");
		return 1;
	case STEP_STARTTLS:
		if (r->code == 220) {
			starttls_handshake(c);
			return 1;
		}
		SSL_CTX_free(c->st_ctx);
		c->st_ctx = NULL;
		finish(c, SMTP_CLIENT_EREPLY, 1, "STARTTLS refused");
		return 1;
	case STEP_COMMAND:
	case STEP_QUIT:
		finish(c, SMTP_CLIENT_OK, 1, NULL);
		return 1;
	case STEP_AUTH:
		return auth_reply(c);
	case STEP_SEND:
		return tx_reply(c);
	default:
		return 1;
	}
}

/* The OpenSSL error that explains a failed handshake: libevent keeps up
 * to three, the SSL_get_error() code first; we want the first real one. */
static unsigned long
tls_failure_code(struct bufferevent *bev)
{
	unsigned long e, best = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (ERR_GET_LIB(e) != 0)
			best = e;	/* popped last to first */
	return best;
}

static void
eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	char reason[200];
	unsigned long tlserr;
	long vr;
	SSL *ssl;
	int e = errno;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->step != STEP_TLS)
			return;
		c->tls_up = 1;
		finish(c, SMTP_CLIENT_OK, c->starttls, NULL);
		return;
	}
	if (c->step == STEP_TLS) {
		tlserr = (what & BEV_EVENT_ERROR) ? tls_failure_code(bev) : 0;
		tls_error_reason(tlserr, reason, sizeof(reason));
		ssl = bufferevent_openssl_get_ssl(bev);
		vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
		if (vr != X509_V_OK && SSL_get_verify_mode(ssl) !=
		    SSL_VERIFY_NONE)
			bsnprintf(reason, sizeof(reason), "certificate verify "
			    "failed: %s", X509_verify_cert_error_string(vr));
		else if (tlserr == 0 && (what & BEV_EVENT_ERROR) && e != 0)
			bsnprintf(reason, sizeof(reason), "%s", strerror(e));
		finish(c, SMTP_CLIENT_ETLS, c->starttls, "%s", reason);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		if (c->step != STEP_NONE)
			process_input(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		tlserr = c->tls_up ? tls_failure_code(bev) : 0;
		if (tlserr != 0)
			ERR_error_string_n(tlserr, reason, sizeof(reason));
		else
			bstrlcpy(reason, strerror(e), sizeof(reason));
		if (c->step == STEP_NONE) {
			c->dead = 1;
			bsnprintf(c->dead_why, sizeof(c->dead_why),
			    "I/O error: %s", reason);
			bufferevent_disable(bev, EV_READ | EV_WRITE);
			return;
		}
		if (c->step == STEP_QUIT)
			finish(c, SMTP_CLIENT_OK, 0, NULL);
		else if (tlserr == 0 && (e == EPIPE || e == ECONNRESET))
			finish(c, SMTP_CLIENT_ECLOSED, 0, "server closed the "
			    "connection during %s (%s)", c->step_name, reason);
		else
			finish(c, SMTP_CLIENT_EIO, 0, "%s", reason);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		return;		/* we use our own deadlines */
}

/* ---- SMTP steps ------------------------------------------------------ */

/* Start a step that reads a reply; input already buffered is handled
 * from the loop. */
static void
await_reply(struct smtp_client *c)
{
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 || c->eof)
		event_active(c->kick, EV_TIMEOUT, 1);
	else
		tls_pending(c);
}

static int
bad_line(const char *s)
{
	size_t n = strlen(s);

	return n == 0 || n > CMD_LINE_MAX || strpbrk(s, "\r\n") != NULL;
}

void
smtp_client_greeting(struct smtp_client *c, smtp_client_cb cb, void *arg)
{
	if (begin(c, STEP_GREETING, "greeting", c->to.greeting, cb, arg, 1) ==
	    -1)
		return;
	await_reply(c);
}

void
smtp_client_ehlo(struct smtp_client *c, const char *name, smtp_client_cb cb,
    void *arg)
{
	if (begin(c, STEP_EHLO, c->lmtp ? "LHLO" : "EHLO", c->to.ehlo, cb,
	    arg, 1) == -1)
		return;
	if (bad_line(name) || strchr(name, ' ') != NULL ||
	    strlen(name) >= sizeof(c->helo_name)) {
		defer(c, SMTP_CLIENT_EUSAGE, "bad %s name", c->step_name);
		return;
	}
	bstrlcpy(c->helo_name, name, sizeof(c->helo_name));
	c->have_ehlo = 0;
	c->esmtp = 0;
	send_line2(c, c->lmtp ? "LHLO" : "EHLO", name);
	await_reply(c);
}

/* STARTTLS, or with `lines` (complete CRLF-ended lines) written in the
 * same buffer right after it: one packet (the injection check). */
static void
starttls_start(struct smtp_client *c, SSL_CTX *ctx, const char *servername,
    const char *lines, smtp_client_cb cb, void *arg)
{
	if (begin(c, STEP_STARTTLS, "STARTTLS", c->to.ehlo, cb, arg, 1) == -1)
		return;
	if (c->tls_up) {
		defer(c, SMTP_CLIENT_EUSAGE, "TLS is already active");
		return;
	}
	if (servername != NULL && strlen(servername) >= sizeof(c->st_name)) {
		defer(c, SMTP_CLIENT_EUSAGE, "server name too long");
		return;
	}
	bstrlcpy(c->st_name, servername != NULL ? servername : "",
	    sizeof(c->st_name));
	SSL_CTX_up_ref(ctx);
	c->st_ctx = ctx;
	if (lines != NULL) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "STARTTLS\r\n%s", lines);
		bufferevent_write(c->bev, sb.s, sb.len);
		strbuf_free(&sb);
	} else
		send_line(c, "STARTTLS");
	await_reply(c);
}

void
smtp_client_starttls(struct smtp_client *c, SSL_CTX *ctx,
    const char *servername, smtp_client_cb cb, void *arg)
{
	starttls_start(c, ctx, servername, NULL, cb, arg);
}

/* STARTTLS with NOOP in the same packet. */
void
smtp_client_starttls_inject(struct smtp_client *c, SSL_CTX *ctx,
    const char *servername, smtp_client_cb cb, void *arg)
{
	starttls_start(c, ctx, servername, "NOOP\r\n", cb, arg);
}

void
smtp_client_command(struct smtp_client *c, const char *line, double timeout,
    smtp_client_cb cb, void *arg)
{
	size_t n;

	n = strcspn(line, " ");
	if (n >= sizeof(c->verb))
		n = sizeof(c->verb) - 1;
	memcpy(c->verb, line, n);
	c->verb[n] = '\0';
	if (begin(c, STEP_COMMAND, c->verb, timeout > 0 ? timeout :
	    c->to.command, cb, arg, 1) == -1)
		return;
	if (bad_line(line)) {
		defer(c, SMTP_CLIENT_EUSAGE, "bad command line");
		return;
	}
	send_line(c, line);
	await_reply(c);
}

void
smtp_client_quit(struct smtp_client *c, smtp_client_cb cb, void *arg)
{
	if (begin(c, STEP_QUIT, "QUIT", c->to.quit, cb, arg, 1) == -1)
		return;
	if (c->ahead_state == AHEAD_WRITTEN) {
		/* the server has answered DATA with 354 by now: QUIT would
		 * be message text; the close ends that transaction unsent */
		give_up(c, "closed with an announced transaction pending");
		defer(c, SMTP_CLIENT_OK, NULL);
		return;
	}
	send_line(c, "QUIT");
	await_reply(c);
}

/* ---- AUTH (RFC 4954, 4616) ------------------------------------------ */

static void
wipe_free(const void *data, size_t len, void *extra)
{
	(void)extra;
	OPENSSL_cleanse((void *)data, len);
	free((void *)data);
}

/*
 * Queue `prefix`, base64 of in[0..n) (padded, as SASL wants) and CRLF.
 * The bytes are handed to libevent by reference and wiped when written
 * or dropped: no unwiped copy of a secret stays behind.
 */
static void
send_secret_b64(struct smtp_client *c, const char *prefix,
    const unsigned char *in, size_t n)
{
	size_t plen = strlen(prefix), cap = plen + 4 * ((n + 2) / 3) + 3;
	char *buf = xmalloc(cap);
	int k;

	memcpy(buf, prefix, plen);
	k = EVP_EncodeBlock((unsigned char *)buf + plen, in, (int)n);
	memcpy(buf + plen + k, "\r\n", 2);
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), buf,
	    plen + (size_t)k + 2, wipe_free, NULL) == -1) {
		wipe_free(buf, cap, NULL);
		fatalx("smtp_client: out of memory for a command");
	}
}

static void
auth_clear(struct smtp_client *c)
{
	if (c->auth_user != NULL) {
		OPENSSL_cleanse(c->auth_user, strlen(c->auth_user));
		free(c->auth_user);
		c->auth_user = NULL;
	}
	if (c->auth_pass != NULL) {
		OPENSSL_cleanse(c->auth_pass, strlen(c->auth_pass));
		free(c->auth_pass);
		c->auth_pass = NULL;
	}
}

void
smtp_client_auth(struct smtp_client *c, const char *mech, const char *user,
    const char *password, int allow_plaintext, smtp_client_cb cb, void *arg)
{
	unsigned char *ir;
	size_t ul, pl;

	if (begin(c, STEP_AUTH, "AUTH", c->to.command, cb, arg, 1) == -1)
		return;
	ul = strlen(user);
	pl = strlen(password);
	if (ul == 0 || ul > SMTP_CLIENT_AUTH_MAX || pl == 0 ||
	    pl > SMTP_CLIENT_AUTH_MAX) {
		defer(c, SMTP_CLIENT_EUSAGE, "user name or password empty or "
		    "too long");
		return;
	}
	if (!c->tls_up && !allow_plaintext) {
		defer(c, SMTP_CLIENT_EUSAGE, "refusing to send credentials "
		    "without TLS");
		return;
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		/* RFC 4616: [authzid] NUL authcid NUL passwd */
		ir = xmalloc(ul + pl + 2);
		ir[0] = '\0';
		memcpy(ir + 1, user, ul);
		ir[ul + 1] = '\0';
		memcpy(ir + ul + 2, password, pl);
		send_secret_b64(c, "AUTH PLAIN ", ir, ul + pl + 2);
		OPENSSL_cleanse(ir, ul + pl + 2);
		free(ir);
		c->auth_state = AUTH_PLAIN_SENT;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		c->auth_user = xstrdup(user);
		c->auth_pass = xstrdup(password);
		send_line(c, "AUTH LOGIN");
		c->auth_state = AUTH_LOGIN_SENT;
	} else {
		defer(c, SMTP_CLIENT_EUSAGE, "unsupported SASL mechanism");
		return;
	}
	await_reply(c);
}

static int
auth_reply(struct smtp_client *c)
{
	const struct smtp_reply *r = &c->last;
	const char *want, *t;
	unsigned char ch[64];
	size_t n;
	int k;

	if (r->code == 235) {
		finish(c, SMTP_CLIENT_OK, 1, NULL);
		return 1;
	}
	if (r->code != 334) {
		finish(c, SMTP_CLIENT_EREPLY, 1, "authentication refused");
		return 1;
	}
	if (c->auth_state == AUTH_PLAIN_SENT ||
	    c->auth_state == AUTH_LOGIN_PASS) {
		finish(c, SMTP_CLIENT_EPROTO, 1, "unexpected 334 "
		    "continuation to AUTH");
		return 1;
	}
	want = c->auth_state == AUTH_LOGIN_SENT ? "Username:" : "Password:";
	t = r->lines[0];
	n = strlen(t);
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	k = r->nlines == 1 ? base64_decode(t, n, ch, sizeof(ch) - 1) : -1;
	if (k >= 0)
		ch[k] = '\0';
	if (k < 0 || strcasecmp((char *)ch, want) != 0) {
		finish(c, SMTP_CLIENT_EPROTO, 1, "unexpected AUTH LOGIN "
		    "challenge (expected %s)", want);
		return 1;
	}
	if (c->auth_state == AUTH_LOGIN_SENT) {
		send_secret_b64(c, "", (unsigned char *)c->auth_user,
		    strlen(c->auth_user));
		c->auth_state = AUTH_LOGIN_USER;
	} else {
		send_secret_b64(c, "", (unsigned char *)c->auth_pass,
		    strlen(c->auth_pass));
		c->auth_state = AUTH_LOGIN_PASS;
	}
	return 1;
}

/* ---- mail transaction (RFC 5321 3.3, RFC 2920) ----------------------- */

/* End of the step: forget the borrowed message and the command lines;
 * the per-recipient replies stay until the next step. */
static void
tx_release(struct smtp_client *c)
{
	struct tx *t = &c->tx;

	t->ncmds = 0;
	t->msg = NULL;
	t->len = t->pos = 0;
	smtp_reply_free(&t->fail);
}

static void
tx_clear(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	size_t i;

	tx_release(c);
	for (i = 0; i < t->nrcpts; i++) {
		smtp_reply_free(&t->rcpt[i]);
		if (t->final != NULL)
			smtp_reply_free(&t->final[i]);
	}
	free(t->rcpt);
	free(t->final);
	smtp_reply_free(&t->eod);
	memset(t, 0, sizeof(*t));
}

static void
reply_dup(struct smtp_reply *dst, const struct smtp_reply *src)
{
	size_t i;

	*dst = *src;
	dst->lines = xcalloc(src->nlines > 0 ? src->nlines : 1,
	    sizeof(char *));
	for (i = 0; i < src->nlines; i++)
		dst->lines[i] = xstrdup(src->lines[i]);
}

static int
bad_path(const char *a, int may_be_empty)
{
	size_t n;

	if (a == NULL)
		return 1;
	n = strlen(a);
	return (n == 0 && !may_be_empty) || n > SMTP_CLIENT_PATH_MAX ||
	    strpbrk(a, "\r\n<>") != NULL;
}

/* A CR not followed by LF, or an LF not preceded by CR. */
static int
bare_cr_lf(const char *m, size_t len)
{
	const char *p, *q, *end = m + len;

	for (p = m; (q = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p = q + 1)
		if (q == m || q[-1] != '\r')
			return 1;
	for (p = m; (q = memchr(p, '\r', (size_t)(end - p))) != NULL;
	    p = q + 1)
		if (q + 1 == end || q[1] != '\n')
			return 1;
	return 0;
}

static double
tx_timeout(struct smtp_client *c, size_t k)
{
	if (k == 0)
		return c->to.mail;
	if (k <= c->tx.nrcpts)
		return c->to.rcpt;
	return c->to.data_init;
}

static const char *
tx_name(struct smtp_client *c, size_t k)
{
	if (k == 0)
		return "MAIL";
	if (k <= c->tx.nrcpts)
		return "RCPT";
	return "DATA";
}

static void
tx_add(struct smtp_client *c, const void *p, size_t n)
{
	if (evbuffer_add(bufferevent_get_output(c->bev), p, n) == -1)
		fatalx("smtp_client: out of memory for the message");
}

/* Queue command line k of the transaction (0 = MAIL). */
static void
tx_add_cmd(struct smtp_client *c, size_t k)
{
	tx_add(c, c->cmds.s + c->cmdoff[k], c->cmdoff[k + 1] - c->cmdoff[k]);
}

/* May the next transaction's commands follow this one's "."?  Only with
 * PIPELINING (RFC 2920 3.1), and not in LMTP (a reply per recipient). */
static int
tx_may_pipeline(const struct smtp_client *c)
{
	return c->have_ehlo && (c->ehlo.ext & SMTP_EXT_PIPELINING) &&
	    !c->lmtp;
}

/*
 * Copy message octets from t->pos, dot-stuffed (RFC 5321 4.5.2: a line
 * starting with "." gets another), into p, taking at most `want`
 * octets of the message; returns the octets written (at most want +
 * want / 3 + 1: one "." per line of at least three octets, ".\r\n").
 * Runs of lines go in one memcpy; only a line starting with "." splits
 * a run.
 */
static size_t
tx_stuff(struct tx *t, char *p, size_t want)
{
	size_t used = 0, start, end = t->pos + want;
	const char *nl;

	while (t->pos < end) {
		if (t->bol && t->msg[t->pos] == '.')
			p[used++] = '.';
		start = t->pos;
		t->bol = 0;
		while (t->pos < end) {
			nl = memchr(t->msg + t->pos, '\n', end - t->pos);
			if (nl == NULL) {
				t->pos = end;
				break;
			}
			t->pos = (size_t)(nl - t->msg) + 1;
			t->bol = 1;
			if (t->pos < t->len && t->msg[t->pos] == '.')
				break;
		}
		memcpy(p + used, t->msg + start, t->pos - start);
		used += t->pos - start;
	}
	return used;
}

/*
 * Queue up to TX_CHUNK octets of the message, dot-stuffed, and after the
 * last one the CRLF it may lack, ".", and the next transaction's lines
 * when they were announced (smtp_client_send_next; RFC 2920 3.1: message
 * content may be the first "command" of a group).  All of it is written
 * into one reserved region and committed at once: one write, one TLS
 * record, where adding piece by piece could make one of each per piece.
 */
static void
tx_write(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	size_t want, tail, used;
	int ahead;

	want = t->len - t->pos > TX_CHUNK ? TX_CHUNK : t->len - t->pos;
	ahead = t->pos + want == t->len && c->ahead_state == AHEAD_PENDING &&
	    tx_may_pipeline(c);
	tail = 5 + (ahead ? c->ahead.len : 0);
	if (evbuffer_reserve_space(out, (ev_ssize_t)(want + want / 3 + 1 +
	    tail), &v, 1) != 1)
		fatalx("smtp_client: out of memory for the message");
	used = tx_stuff(t, v.iov_base, want);
	if (t->pos == t->len) {
		if (t->len > 0 && (t->len < 2 ||
		    memcmp(t->msg + t->len - 2, "\r\n", 2) != 0)) {
			memcpy((char *)v.iov_base + used, "\r\n", 2);
			used += 2;
		}
		memcpy((char *)v.iov_base + used, ".\r\n", 3);
		used += 3;
		if (ahead) {
			memcpy((char *)v.iov_base + used, c->ahead.s,
			    c->ahead.len);
			used += c->ahead.len;
			c->ahead_state = AHEAD_WRITTEN;
		}
		t->phase = TX_END;
		c->step_name = "end of data";
	}
	v.iov_len = used;
	if (evbuffer_commit_space(out, &v, 1) == -1)
		fatalx("smtp_client: cannot queue the message");
}

/* The output buffer drained: the next block of the message, or, once
 * "." is out, the wait for the final reply starts. */
static void
writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	(void)bev;
	if (c->step != STEP_SEND)
		return;
	if (c->tx.phase == TX_BODY) {
		arm(c, c->to.data_block);
		tx_write(c);
	} else if (c->tx.phase == TX_END && !c->tx.end_armed) {
		c->tx.end_armed = 1;
		arm(c, c->to.data_end);
	}
}

/* Report the refusal kept for the end (MAIL, or every RCPT). */
static int
tx_fail(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	int mail = strcmp(t->fail_step, "MAIL") == 0;

	smtp_reply_free(&c->last);
	reply_dup(&c->last, &t->fail);
	c->step_name = t->fail_step;
	finish(c, SMTP_CLIENT_EREPLY, 1, mail ? "MAIL refused" :
	    "no recipient accepted");
	return 1;
}

/*
 * LMTP (RFC 2033 4.2): after the ".", one reply per recipient accepted at
 * RCPT, in RCPT order.  File c->last under the next such recipient; once
 * all are in, OK when one of them is 2xx (its reply, the first, is the
 * result's), else EREPLY with the last.
 */
static int
tx_lmtp_final(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	size_t i;

	for (i = t->fnext; i < t->nrcpts &&
	    smtp_reply_class(&t->rcpt[i]) != 2; i++)
		;
	if (i >= t->nrcpts) {
		/* cannot happen: we stop after t->accepted replies */
		finish(c, SMTP_CLIENT_EPROTO, 1, "more final replies than "
		    "accepted recipients");
		return 1;
	}
	reply_dup(&t->final[i], &c->last);
	t->fnext = i + 1;
	if (++t->nfinal < t->accepted)
		return 0;	/* the next one may be buffered already */
	for (i = 0; i < t->nrcpts; i++)
		if (smtp_reply_class(&t->final[i]) == 2)
			break;
	if (i == t->nrcpts) {
		finish(c, SMTP_CLIENT_EREPLY, 1, "message refused at the end "
		    "of data for every recipient");
		return 1;
	}
	smtp_reply_free(&c->last);
	reply_dup(&c->last, &t->final[i]);
	finish(c, SMTP_CLIENT_OK, 1, NULL);
	return 1;
}

static int
tx_reply(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	const struct smtp_reply *r = &c->last;
	int ok = smtp_reply_class(r) == 2;
	size_t k;

	switch (t->phase) {
	case TX_BODY:
		finish(c, SMTP_CLIENT_EPROTO, 1, "server replied before the "
		    "end of the message data");
		return 1;
	case TX_END:
		if (t->lmtp)
			return tx_lmtp_final(c);
		reply_dup(&t->eod, r);
		if (ok)
			finish(c, SMTP_CLIENT_OK, 1, NULL);
		else
			finish(c, SMTP_CLIENT_EREPLY, 1, "message refused at "
			    "the end of data");
		return 1;
	case TX_ABORT:
		return tx_fail(c);
	case TX_CMDS:
		break;
	}
	if (t->rset) {
		t->rset = 0;
		if (!ok) {
			/* the replies to a pipelined MAIL... would follow:
			 * the connection is out of step, give it up */
			c->dead = 1;
			bstrlcpy(c->dead_why, "RSET refused",
			    sizeof(c->dead_why));
			bufferevent_disable(c->bev, EV_READ | EV_WRITE);
			c->step_name = "RSET";
			finish(c, SMTP_CLIENT_EREPLY, 1, "RSET refused");
			return 1;
		}
		if (t->nsent == 0)
			tx_add_cmd(c, t->nsent++);
		c->step_name = "MAIL";
		arm(c, c->to.mail);
		return 0;
	}
	k = t->nrecv++;
	if (k == 0) {
		if (!ok) {
			reply_dup(&t->fail, r);
			t->fail_step = "MAIL";
			if (t->nsent == 1) {
				finish(c, SMTP_CLIENT_EREPLY, 1,
				    "MAIL refused");
				return 1;
			}
		}
	} else if (k <= t->nrcpts) {
		reply_dup(&t->rcpt[k - 1], r);
		if (ok)
			t->accepted++;
		if (k == t->nrcpts && t->accepted == 0 &&
		    t->fail_step == NULL) {
			reply_dup(&t->fail, r);
			t->fail_step = "RCPT";
		}
		if (t->nsent == t->nrecv && t->fail_step != NULL &&
		    k == t->nrcpts) {
			/* one at a time: no DATA without a recipient */
			c->step_name = "RCPT";
			finish(c, SMTP_CLIENT_EREPLY, 1,
			    "no recipient accepted");
			return 1;
		}
	} else {
		c->step_name = "DATA";
		if (t->fail_step != NULL) {
			/* pipelined DATA after a refused MAIL or no RCPT:
			 * the 503/554 is dropped; a 354 gets an empty
			 * message, ended at once */
			if (r->code != 354)
				return tx_fail(c);
			if (t->lmtp) {
				/* RFC 2033 4.2 forbids this 354: how many
				 * replies would follow the "."?  None, one?
				 * Give the connection up. */
				c->dead = 1;
				bstrlcpy(c->dead_why, "LMTP server accepted "
				    "DATA without a recipient",
				    sizeof(c->dead_why));
				bufferevent_disable(c->bev, EV_READ | EV_WRITE);
				return tx_fail(c);
			}
			tx_add(c, ".\r\n", 3);
			t->phase = TX_ABORT;
			arm(c, c->to.data_end);
			return 1;
		}
		if (r->code != 354) {
			finish(c, SMTP_CLIENT_EREPLY, 1, "DATA refused");
			return 1;
		}
		t->phase = TX_BODY;
		arm(c, c->to.data_block);
		tx_write(c);
		return 1;
	}
	if (t->nsent == t->nrecv) {
		/* no PIPELINING: the next command now */
		tx_add_cmd(c, t->nsent++);
	}
	c->step_name = tx_name(c, t->nrecv);
	arm(c, tx_timeout(c, t->nrecv));
	return 0;
}

/* NULL when the envelope may be sent, else why not (in why). */
static const char *
tx_check(const struct smtp_client_envelope *env, char *why, size_t whylen)
{
	size_t i, n = env->nrcpts;

	if (n == 0 || env->rcpts == NULL)
		return "no recipients";
	if (bad_path(env->from, 1))
		return "bad reverse-path";
	for (i = 0; i < n; i++)
		if (bad_path(env->rcpts[i], 0)) {
			bsnprintf(why, whylen, "bad forward-path (recipient "
			    "%zu)", i);
			return why;
		}
	if (env->mail_params != NULL &&
	    strpbrk(env->mail_params, "\r\n") != NULL)
		return "bad MAIL parameters";
	for (i = 0; env->rcpt_params != NULL && i < n; i++)
		if (env->rcpt_params[i] != NULL &&
		    strpbrk(env->rcpt_params[i], "\r\n") != NULL) {
			bsnprintf(why, whylen, "bad RCPT parameters "
			    "(recipient %zu)", i);
			return why;
		}
	return NULL;
}

/* Append one command line: the parts, then CRLF; -1 when too long. */
static int
tx_line(struct strbuf *sb, const char *const *parts, size_t nparts)
{
	size_t i, start = sb->len;

	for (i = 0; i < nparts; i++)
		if (parts[i] != NULL)
			strbuf_puts(sb, parts[i]);
	strbuf_add(sb, "\r\n", 2);
	return sb->len - start > CMD_LINE_MAX + 2 ? -1 : 0;
}

/*
 * The transaction's lines for a checked envelope into sb (reset first):
 * "RSET\r\n", MAIL, one RCPT per recipient, DATA; off (when not NULL,
 * nrcpts + 3 entries) gets where MAIL, each RCPT and DATA start and where
 * DATA ends.  -1 when a line is too long.
 */
static int
tx_compose(const struct smtp_client *c, const struct smtp_client_envelope *env,
    struct strbuf *sb, size_t *off)
{
	char size[40] = "";
	const char *p;
	size_t i;
	int bad = 0;

	strbuf_reset(sb);
	strbuf_add(sb, "RSET\r\n", 6);
	if (env->size > 0 && c->have_ehlo && (c->ehlo.ext & SMTP_EXT_SIZE))
		bsnprintf(size, sizeof(size), " SIZE=%zu", env->size);
	p = env->mail_params;
	if (off != NULL)
		off[0] = sb->len;
	bad |= tx_line(sb, (const char *const []){ "MAIL FROM:<", env->from,
	    ">", size, env->body_8bit ? " BODY=8BITMIME" : NULL,
	    env->smtputf8 ? " SMTPUTF8" : NULL, p != NULL && p[0] != '\0' ?
	    " " : NULL, p }, 8);
	for (i = 0; i < env->nrcpts; i++) {
		p = env->rcpt_params != NULL ? env->rcpt_params[i] : NULL;
		if (off != NULL)
			off[i + 1] = sb->len;
		bad |= tx_line(sb, (const char *const []){ "RCPT TO:<",
		    env->rcpts[i], ">", p != NULL && p[0] != '\0' ? " " : NULL,
		    p }, 5);
	}
	if (off != NULL) {
		off[i + 1] = sb->len;
		off[i + 2] = sb->len + 6;
	}
	strbuf_add(sb, "DATA\r\n", 6);
	return bad ? -1 : 0;
}

/* Room for the line offsets of a transaction with n recipients. */
static void
tx_offsets(struct smtp_client *c, size_t n)
{
	if (c->cmdoff_cap >= n + 3)
		return;
	free(c->cmdoff);
	c->cmdoff_cap = n + 3;
	c->cmdoff = xcalloc(c->cmdoff_cap, sizeof(*c->cmdoff));
}

/* Queue the first lines of the transaction: all of them under
 * PIPELINING (RFC 2920 3.1), else RSET or MAIL alone; or, when they went
 * out behind the last "." already, nothing. */
static void
tx_start(struct smtp_client *c)
{
	struct tx *t = &c->tx;
	int ahead = c->ahead_state == AHEAD_WRITTEN;

	c->ahead_state = AHEAD_NONE;
	if (c->rset_next || ahead) {
		/* RFC 2920 3.1: RSET may be pipelined like MAIL */
		c->rset_next = 0;
		t->rset = 1;
		c->step_name = "RSET";
	}
	if (ahead)
		t->nsent = t->ncmds;
	else if (c->have_ehlo && (c->ehlo.ext & SMTP_EXT_PIPELINING)) {
		/* one write: under TLS one record */
		tx_add(c, c->cmds.s + (t->rset ? 0 : 6), c->cmds.len -
		    (t->rset ? 0 : 6));
		t->nsent = t->ncmds;
	} else if (t->rset)
		tx_add(c, c->cmds.s, 6);
	else
		tx_add_cmd(c, t->nsent++);
	await_reply(c);
}

void
smtp_client_send(struct smtp_client *c, const struct smtp_client_envelope *env,
    const char *message, size_t len, smtp_client_cb cb, void *arg)
{
	struct tx *t = &c->tx;
	const char *bad;
	char why[80];

	if (begin(c, STEP_SEND, "MAIL", c->to.mail, cb, arg, 1) == -1)
		return;
	if ((bad = tx_check(env, why, sizeof(why))) != NULL) {
		defer(c, SMTP_CLIENT_EUSAGE, "%s", bad);
		return;
	}
	if ((message == NULL && len > 0) ||
	    (message != NULL && bare_cr_lf(message, len))) {
		defer(c, SMTP_CLIENT_EUSAGE, "bare CR or LF in the message");
		return;
	}
	tx_offsets(c, env->nrcpts);
	if (tx_compose(c, env, &c->cmds, c->cmdoff) == -1) {
		defer(c, SMTP_CLIENT_EUSAGE, "command line too long");
		return;
	}
	if (c->ahead_state == AHEAD_WRITTEN && (c->ahead.len != c->cmds.len ||
	    memcmp(c->ahead.s, c->cmds.s, c->cmds.len) != 0)) {
		/* the server has a DATA of the announced envelope pending */
		give_up(c, "the envelope differs from the one announced with "
		    "smtp_client_send_next");
		defer(c, SMTP_CLIENT_EUSAGE, "%s", c->dead_why);
		return;
	}
	t->ncmds = env->nrcpts + 2;
	t->nrcpts = env->nrcpts;
	t->rcpt = xcalloc(env->nrcpts, sizeof(*t->rcpt));
	t->lmtp = c->lmtp;
	if (t->lmtp)
		t->final = xcalloc(env->nrcpts, sizeof(*t->final));
	t->msg = message;
	t->len = len;
	t->bol = 1;
	t->phase = TX_CMDS;
	tx_start(c);
}

void
smtp_client_send_next(struct smtp_client *c,
    const struct smtp_client_envelope *env)
{
	char why[80];

	if (c->ahead_state == AHEAD_WRITTEN)
		fatalx("smtp_client: smtp_client_send_next again before the "
		    "announced transaction was started");
	c->ahead_state = AHEAD_NONE;
	if (c->lmtp || tx_check(env, why, sizeof(why)) != NULL ||
	    tx_compose(c, env, &c->ahead, NULL) == -1)
		return;		/* smtp_client_send will say why */
	c->ahead_state = AHEAD_PENDING;
}

void
smtp_client_rset_next(struct smtp_client *c)
{
	c->rset_next = 1;
}

/* ---- accessors ------------------------------------------------------- */

const struct smtp_reply *
smtp_client_rcpt_reply(const struct smtp_client *c, size_t i)
{
	if (c->tx.rcpt == NULL || i >= c->tx.nrcpts ||
	    c->tx.rcpt[i].code == 0)
		return NULL;
	return &c->tx.rcpt[i];
}

const struct smtp_reply *
smtp_client_data_reply(const struct smtp_client *c, size_t i)
{
	const struct tx *t = &c->tx;

	if (t->rcpt == NULL || i >= t->nrcpts ||
	    smtp_reply_class(&t->rcpt[i]) != 2)
		return NULL;
	if (t->lmtp)
		return t->final[i].code != 0 ? &t->final[i] : NULL;
	return t->eod.code != 0 ? &t->eod : NULL;
}

const struct smtp_reply *
smtp_client_last_reply(const struct smtp_client *c)
{
	return c->have_last ? &c->last : NULL;
}

const struct smtp_ehlo *
smtp_client_ehlo_info(const struct smtp_client *c)
{
	return c->have_ehlo ? &c->ehlo : NULL;
}

int
smtp_client_esmtp(const struct smtp_client *c)
{
	return c->esmtp;
}

SSL *
smtp_client_ssl(const struct smtp_client *c)
{
	return c->tls_up && c->bev != NULL ?
	    bufferevent_openssl_get_ssl(c->bev) : NULL;
}

int
smtp_client_fd(const struct smtp_client *c)
{
	return c->fd;
}

/* When the last handshake began. */
double
smtp_client_tls_started(const struct smtp_client *c)
{
	return c->tls_t0;
}
