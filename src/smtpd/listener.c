/*
 * listener.c - accept loop and per-connection glue (see listener.h).
 *
 * Each accepted socket gets: the shared connection caps (connlimit.c), a
 * sender group from the host access table (first CIDR match), an ICID and
 * the SPEC "New SMTP" / "SG" log lines, then a bufferevent whose input is
 * fed to the session engine and a single timer armed at the engine's
 * current deadline (deadlines are per whole command, not per read).
 *
 * Ownership: a struct conn owns its bufferevent, timer and session.  A
 * message handed to the spool holds the conn alive: if the client goes
 * away meanwhile the conn is only marked dead and freed by the commit
 * callback, so that callback never touches freed memory.
 *
 * Limits: read high-watermark SMTP_READ_MAX bounds what one client can
 * make us buffer; the engine bounds everything else.
 *
 * PROXY protocol (listener proxy_protocol, docs/proxy-protocol.md): the
 * accepted socket first waits for its header in proxy_accept.c, and only
 * then is admitted as above, with the real client's address in c->peer
 * (so sender groups, connlimit, throttle, rDNS, the log and Received all
 * see the client, not the proxy).  The proxy's own connections (v2 LOCAL,
 * v1 UNKNOWN: health checks) are served with the proxy's address but
 * stay quiet: no New SMTP, TLS or close line, one debug line, until the
 * session does more than a check would (MAIL, STARTTLS, AUTH), when the
 * lines held back are written.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth_check.h"
#include "throttle.h"
#include "connlimit.h"
#include "deliver_local.h"
#include "route.h"
#include "dns.h"
#include "ids.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "proxy_accept.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls_ctx.h"
#include "userdb.h"
#include "util.h"

#define SMTP_READ_MAX		(256 * 1024)
#define SMTP_OUT_MAX		(64 * 1024)
#define RDNS_TIMEOUT		5.0	/* seconds the banner may wait */
#define SMTP_FLUSH_TIMEOUT	10	/* seconds to deliver the last reply */

struct conn {
	struct bufferevent	*bev;
	struct evbuffer		*out;		/* replies not yet sent */
	struct event		*timer;
	struct smtp_session	*sess;
	struct spool_msg	*msg;
	const struct conf_listener *lconf;
	struct sockaddr_storage	 peer;
	uint64_t		 icid;
	double			 armed;		/* deadline the timer is set to */
	double			 commit_start;	/* given to the spool */
	int			 dead;		/* client gone, commit pending */
	int			 throttled;	/* reading paused: output full */
	int			 dns_pending;	/* no session before rDNS is known */
	const struct conf_policy *policy;
	const struct conf_sender_group *sg;
	const struct cidr	*match;
	enum listener_tls	 tls_mode;	/* effective (policy applied) */
	int			 starttls;	/* 220 queued: switch when sent */
	int			 handshaking;	/* TLS handshake in progress */
	SSL			*ssl;		/* owned by the bufferevent */
	struct auth_check_req	*auth_req;	/* password check in flight */
	struct conn_proxy	*proxy;		/* came through a proxy, or NULL */
	struct conn		*prev, *next;
};

/* What the PROXY header said, and the lines a health check holds back. */
struct conn_proxy {
	struct proxy_accept_info info;
	int			 quiet;		/* New SMTP not logged yet */
	char			 rdns[256];	/* for that line, written late */
	int			 verified;
};

static struct event_base	*lbase;
static const struct conf	*lconf_all;
static struct spool		*lspool;
static int			 lnotify = -1;
static struct evconnlistener	**lev;
static size_t			 nlev;
static SSL_CTX			**ltls;	/* per listener, may be NULL */
static struct conn		*conns;
static size_t			 nconns;
static int			 stopping;	/* 1 drain, 2 also say 421 */
static void			(*stopped_cb)(void);
static struct event		*grace_ev;
static struct auth_check		*lauthd;	/* when a listener has AUTH */

static void conn_free(struct conn *);
static void conn_after_io(struct conn *);
static void conn_event_cb(struct bufferevent *, short, void *);
static void tls_begin(struct conn *);
static void conn_unquiet(struct conn *);

int
listener_bind(const struct conf_listener *l, int reuseport, char *why,
    size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	if (sockaddr_parse(l->address, l->port, &ss, &len) == -1) {
		bsnprintf(why, whylen, "listener %s: bad address %s", l->name,
		    l->address);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		bsnprintf(why, whylen, "listener %s: socket: %s", l->name,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	/* One socket per worker: the kernel spreads connections evenly. */
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, 4096) == -1) {
		bsnprintf(why, whylen, "listener %s: cannot listen on %s port "
		    "%d: %s%s", l->name, l->address, l->port, strerror(errno),
		    errno == EADDRINUSE ? " (another server is using it: stop "
		    "it or change the port)" : errno == EACCES ? " (ports "
		    "below 1024 need root)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* ---------------------------------------------------- engine callbacks */

static void
op_reply(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;

	if (c->bev)
		evbuffer_add(c->out, data, len);
}

/*
 * Send queued replies.  When nothing is waiting in the bufferevent we write
 * straight to the socket: SMTP replies are small and nearly always go at
 * once, which saves arming and disarming a write event per reply.  What
 * does not fit goes through the bufferevent, keeping the order.
 */
static void
conn_flush(struct conn *c)
{
	struct evbuffer *bout;

	if (c->bev == NULL || evbuffer_get_length(c->out) == 0)
		return;
	bout = bufferevent_get_output(c->bev);
	if (c->ssl == NULL && evbuffer_get_length(bout) == 0)
		(void)evbuffer_write(c->out, bufferevent_getfd(c->bev));
	if (evbuffer_get_length(c->out) > 0)
		bufferevent_write_buffer(c->bev, c->out);
}

static int
op_msg_begin(void *ctx, uint64_t mid)
{
	struct conn *c = ctx;
	char why[512];

	c->msg = spool_msg_new(lspool, mid, why, sizeof(why));
	if (c->msg == NULL) {
		log_crit("spool: %s", why);
		return -1;
	}
	return 0;
}

static int
op_msg_write(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;

	return spool_msg_write(c->msg, data, len);
}

static void
commit_cb(void *arg, uint64_t mid, int ok)
{
	struct conn *c = arg;
	ssize_t n;

	if (metrics_enabled())
		metrics_observe_commit(mono_now() - c->commit_start);
	/* Log "ready" (and queue the 250) before the queue manager hears of
	 * the message, so the log never shows its delivery first. */
	smtp_session_committed(c->sess, ok, mono_now());
	if (ok && lnotify != -1) {
		/* Best effort: the queue manager also rescans the spool. */
		n = send(lnotify, &mid, sizeof(mid), MSG_DONTWAIT);
		(void)n;
	}
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (stopping == 2)	/* SIGTERM came during the commit */
		smtp_session_shutdown(c->sess);
	smtp_session_input(c->sess, bufferevent_get_input(c->bev), mono_now());
	conn_after_io(c);
}

static void
op_msg_commit(void *ctx, const struct envelope *env)
{
	struct conn *c = ctx;

	c->commit_start = metrics_enabled() ? mono_now() : 0;
	spool_msg_commit(c->msg, env, commit_cb, c);
	c->msg = NULL;
}

static void
op_msg_abort(void *ctx)
{
	struct conn *c = ctx;

	spool_msg_abort(c->msg);
	c->msg = NULL;
}

static uint64_t
op_new_mid(void *ctx)
{
	conn_unquiet(ctx);	/* MAIL: not a health check after all */
	return ids_next(ID_MID);
}

/* RCPT for a local domain: where the router sends it decides whether a
 * mailbox must exist here. */
static const char *
op_rcpt_local_check(void *ctx, const struct smtp_path *p)
{
	struct route_decision d;

	route_decide(lconf_all, p->addr, &d);
	return deliver_local_check(&d, p->addr);
}

static void
op_starttls(void *ctx)
{
	struct conn *c = ctx;

	conn_unquiet(c);
	/* Switch once the 220 is on its way (conn_after_io); read nothing
	 * more in plaintext meanwhile. */
	c->starttls = 1;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ);
}

static void
icid_str(const struct conn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)c->icid);
}

static int
op_auth_blocked(void *ctx)
{
	struct conn *c = ctx;
	const struct conf_limits *l = &c->policy->limits;
	char icid[32], ip[64], n[16], w[16], d[16];

	conn_unquiet(c);
	switch (throttle_gate((struct sockaddr *)&c->peer, l->auth_failures,
	    l->auth_failure_window, mono_now())) {
	case THROTTLE_OPEN:
		return 0;
	case THROTTLE_BLOCKED_NEW:
		/* Once per episode, not once per attempt. */
		icid_str(c, icid, sizeof(icid));
		sockaddr_ip((struct sockaddr *)&c->peer, ip, sizeof(ip));
		snprintf(n, sizeof(n), "%d", l->auth_failures);
		snprintf(w, sizeof(w), "%d", l->auth_failure_window);
		snprintf(d, sizeof(d), "%d", l->auth_failure_delay);
		mlog(LOG_LVL_WARNING, "auth_blocked", "ICID {icid} AUTH "
		    "blocked: address {ip} had {failures} failed AUTH attempts "
		    "within {window} s; its AUTH commands get 454 4.7.0 after "
		    "{delay} s until the oldest failure is {window} s old "
		    "(limits auth_failures, auth_failure_window)", "icid", icid,
		    "ip", ip, "failures", n, "window", w, "delay", d, NULL);
		return 1;
	default:
		return 1;
	}
}

static void
auth_done_cb(void *arg, int result, const char *why)
{
	struct conn *c = arg;
	const char *user;
	char icid[32];

	c->auth_req = NULL;
	if (result == 0)
		(void)throttle_failed((struct sockaddr *)&c->peer,
		    c->policy->limits.auth_failure_window, mono_now());
	else if (result == -1) {
		icid_str(c, icid, sizeof(icid));
		mlog(LOG_LVL_WARNING, "auth_error", "ICID {icid} AUTH could "
		    "not be checked: {why}", "icid", icid, "why", why, NULL);
	}
	smtp_session_auth_result(c->sess, result, mono_now());
	if (result == 1 && (user = smtp_session_auth_user(c->sess)) != NULL)
		auth_check_used(lauthd, user);
	if (stopping == 2)
		smtp_session_shutdown(c->sess);
	smtp_session_input(c->sess, bufferevent_get_input(c->bev), mono_now());
	conn_after_io(c);
}

static void
op_auth_check(void *ctx, const char *user, const char *pass, size_t len)
{
	struct conn *c = ctx;

	c->auth_req = auth_check_verify(lauthd, user, pass, len, auth_done_cb, c);
}

static int
op_sender_allowed(void *ctx, const char *user, const char *addr)
{
	const struct userdb_user *u = auth_check_user(lauthd, user);

	if (u == NULL)
		return -1;
	return userdb_identity_allows(u, addr);
}

static const char *
op_send_quota(void *ctx, const char *user)
{
	struct conn *c = ctx;
	const struct userdb_user *u = auth_check_user(lauthd, user);
	const char *line;
	char icid[32];

	if (u == NULL)
		return NULL;
	switch (throttle_send(user, u->max_send_rate, u->max_24_hour_send,
	    wall_now())) {
	case QUOTA_RATE:
		line = "454 4.7.0 Throttling failure: Maximum sending rate "
		    "exceeded.";
		break;
	case QUOTA_DAY:
		line = "554 5.7.0 Throttling failure: Daily message quota "
		    "exceeded.";
		break;
	default:
		return NULL;
	}
	icid_str(c, icid, sizeof(icid));
	mlog(LOG_LVL_INFO, "throttled", "ICID {icid} user {user} refused: "
	    "{reply}", "icid", icid, "user", user, "reply", line, NULL);
	return line;
}

/* Cheap on the hot path: spool.c caches statvfs for about a second. */
static int
op_spool_room(void *ctx, uint64_t size)
{
	return spool_has_room(lspool, size, lconf_all->limits.spool_min_free,
	    mono_now()) == SPOOL_ROOM_OK;
}

static const struct smtp_server_ops conn_ops = {
	op_reply, op_msg_begin, op_msg_write, op_msg_commit, op_msg_abort,
	op_new_mid, op_rcpt_local_check, op_starttls, op_auth_blocked,
	op_auth_check, op_sender_allowed, op_send_quota, op_spool_room
};

/* --------------------------------------------------------- connection */

/* Close the client socket (a TLS session says close_notify first). */
static void
conn_release_socket(struct conn *c)
{
	if (c->bev == NULL)
		return;
	if (c->ssl != NULL && !c->handshaking)
		(void)SSL_shutdown(c->ssl);	/* best effort, non-blocking */
	ERR_clear_error();
	bufferevent_free(c->bev);	/* closes the fd, frees the SSL */
	c->bev = NULL;
	c->ssl = NULL;
}

static void
conn_free(struct conn *c)
{
	char icid[32];

	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)c->icid);
	if (c->proxy == NULL || !c->proxy->quiet)
		mlog(LOG_LVL_INFO, "close", "ICID {icid} close", "icid", icid,
		    NULL);
	free(c->proxy);
	auth_check_cancel(c->auth_req);
	smtp_session_free(c->sess);
	if (c->msg)
		spool_msg_abort(c->msg);
	if (c->timer)
		event_free(c->timer);
	conn_release_socket(c);
	evbuffer_free(c->out);
	connlimit_release((struct sockaddr *)&c->peer);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	free(c);
	if (stopping && nconns == 0 && stopped_cb)
		stopped_cb();
}

/* The client is gone (EOF, error) or we are done with it. */
static void
conn_drop(struct conn *c)
{
	if (smtp_session_committing(c->sess)) {
		/* Keep the conn for the commit callback; release the socket. */
		c->dead = 1;
		conn_release_socket(c);
		event_del(c->timer);
		return;
	}
	smtp_session_lost(c->sess);
	conn_free(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	size_t out = evbuffer_get_length(bufferevent_get_output(bev));

	/* The TLS bufferevent may call this once after the handshake, with
	 * output still waiting: act only on a drained buffer. */
	if (c->starttls) {
		conn_after_io(c);	/* the 220 is out: switch to TLS */
		return;
	}
	if (smtp_session_closing(c->sess)) {
		if (out == 0)
			conn_drop(c);
		return;
	}
	if (c->throttled && out <= SMTP_OUT_MAX / 2) {
		/* The client read its replies: take its commands again. */
		c->throttled = 0;
		bufferevent_enable(c->bev, EV_READ);
		smtp_session_input(c->sess, bufferevent_get_input(bev),
		    mono_now());
		conn_after_io(c);
	}
}

static void
conn_after_io(struct conn *c)
{
	double dl;
	struct timeval tv;

	conn_flush(c);
	if (c->starttls && !smtp_session_closing(c->sess)) {
		/* The 220 must be sent in plaintext before the switch. */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			tls_begin(c);
		return;
	}
	if (smtp_session_closing(c->sess)) {
		/* Flush the last reply, but never wait on a client that does
		 * not read: SMTP_FLUSH_TIMEOUT, then drop. */
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			conn_drop(c);
			return;
		}
		if (c->armed != -1) {
			tv.tv_sec = SMTP_FLUSH_TIMEOUT;
			tv.tv_usec = 0;
			c->armed = -1;
			event_add(c->timer, &tv);
		}
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > SMTP_OUT_MAX) {
		/* A client that pipelines without reading our replies is not
		 * served faster than it reads (bounded output buffer). */
		c->throttled = 1;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE, SMTP_OUT_MAX / 2, 0);
	}
	dl = smtp_session_deadline(c->sess);
	if (dl == c->armed)
		return;
	c->armed = dl;
	if (dl == 0) {
		event_del(c->timer);
		return;
	}
	dl -= mono_now();
	if (dl < 0)
		dl = 0;
	tv.tv_sec = (time_t)dl;
	tv.tv_usec = (suseconds_t)((dl - (double)tv.tv_sec) * 1e6);
	event_add(c->timer, &tv);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	smtp_session_input(c->sess, bufferevent_get_input(bev), mono_now());
	conn_after_io(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->ssl != NULL)
		while (bufferevent_get_openssl_error(bev) != 0)
			;	/* a TLS session's end: nothing to say */
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_drop(c);
}

/* ----------------------------------------------------------------- TLS */

static void
log_tls_failed(struct conn *c, const char *reason)
{
	char icid[32];

	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)c->icid);
	if (c->proxy != NULL && c->proxy->quiet)
		return;	/* a TCP check on an implicit-TLS port: no line */
	metrics_tls_failure(METRICS_INBOUND, reason);
	mlog(LOG_LVL_INFO, "tls_failed", "ICID {icid} TLS failed: {reason}",
	    "icid", icid, "reason", reason, NULL);
}

static void
log_tls_success(struct conn *c)
{
	char icid[32];

	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)c->icid);
	mlog(LOG_LVL_INFO, "tls", "ICID {icid} TLS success protocol "
	    "{protocol} cipher {cipher}", "icid", icid, "protocol",
	    tls_protocol(c->ssl), "cipher", tls_cipher(c->ssl), NULL);
}

/* Handshake finished or failed. */
static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	unsigned long err, e;
	char reason[256];

	if (what & BEV_EVENT_CONNECTED) {
		c->handshaking = 0;
		metrics_tls_session(METRICS_INBOUND, tls_protocol(c->ssl),
		    tls_cipher(c->ssl));
		if (c->proxy == NULL || !c->proxy->quiet)
			log_tls_success(c);	/* else when it goes on */
		bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb,
		    conn_event_cb, c);
		smtp_session_tls_started(c->sess, tls_protocol(c->ssl),
		    tls_cipher(c->ssl), mono_now());
		if (c->tls_mode == LISTENER_TLS_IMPLICIT) {
			smtp_session_start(c->sess, mono_now());
			if (stopping == 2)
				smtp_session_shutdown(c->sess);
		}
		/* The client may already have sent its EHLO (encrypted). */
		smtp_session_input(c->sess, bufferevent_get_input(c->bev),
		    mono_now());
		conn_after_io(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* The first error names the cause; drain the rest. */
	err = 0;
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (err == 0)
			err = e;
	if (err == 0 && (what & BEV_EVENT_ERROR) && errno != 0)
		bsnprintf(reason, sizeof(reason), "%s", strerror(errno));
	else
		tls_handshake_reason(err, c->tls_mode == LISTENER_TLS_IMPLICIT ?
		    TLS_START_IMPLICIT : TLS_START_STARTTLS, reason,
		    sizeof(reason));
	log_tls_failed(c, reason);
	smtp_session_lost(c->sess);
	conn_free(c);
}

/*
 * Start the server handshake on the client socket: after the 220 to
 * STARTTLS, or at once on an implicit-TLS listener.  The plaintext
 * bufferevent goes, and with it anything it had read: bytes the client
 * sent before the handshake are never taken as commands.
 */
static void
tls_begin(struct conn *c)
{
	struct timeval tv;
	int fd;

	c->starttls = 0;
	fd = dup(bufferevent_getfd(c->bev));
	c->ssl = fd == -1 ? NULL :
	    SSL_new(ltls[c->lconf - lconf_all->listeners]);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->ssl == NULL) {
		if (fd != -1)
			close(fd);
		log_tls_failed(c, "out of resources (file descriptors or "
		    "memory)");
		smtp_session_lost(c->sess);
		conn_free(c);
		return;
	}
	c->bev = bufferevent_openssl_socket_new(lbase, fd, c->ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("out of memory for a TLS connection");
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setwatermark(c->bev, EV_READ, 0, SMTP_READ_MAX);
	bufferevent_setcb(c->bev, NULL, NULL, tls_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->handshaking = 1;
	/* The handshake has the command deadline. */
	c->armed = -2;
	tv.tv_sec = c->policy->limits.command_timeout;
	tv.tv_usec = 0;
	event_add(c->timer, &tv);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->handshaking) {
		log_tls_failed(c, "handshake timeout");
		smtp_session_timeout(c->sess);	/* closed, no reply */
		conn_drop(c);
		return;
	}
	if (smtp_session_closing(c->sess)) {
		conn_drop(c);	/* the client did not take our last reply */
		return;
	}
	c->armed = 0;
	if (smtp_session_deadline(c->sess) > mono_now() + 0.001) {
		conn_after_io(c);
		return;
	}
	smtp_session_timeout(c->sess);
	conn_after_io(c);
}

static const char *
action_word(enum policy_action a)
{
	static const char *w[] = { "ACCEPT", "RELAY", "REJECT", "TCPREFUSE" };

	return w[a];
}

/* Which proxy relayed the connection, and the client's port. */
static void
conn_log_proxy(const struct conn *c, const char *icid)
{
	const struct proxy_accept_info *pi = &c->proxy->info;
	char ver[8], pip[64], pport[16], cip[64], cport[16];

	snprintf(ver, sizeof(ver), "%d", pi->version);
	sockaddr_ip((const struct sockaddr *)&pi->proxy, pip, sizeof(pip));
	snprintf(pport, sizeof(pport), "%d",
	    sockaddr_port((const struct sockaddr *)&pi->proxy));
	if (pi->kind != PROXY_PROTO_RELAYED) {
		mlog(LOG_LVL_INFO, "proxy", "ICID {icid} PROXY v{version} "
		    "{proto} from {proxy} port {proxy_port}", "icid", icid,
		    "version", ver, "proto", pi->proto, "proxy", pip,
		    "proxy_port", pport, NULL);
		return;
	}
	sockaddr_ip((const struct sockaddr *)&pi->client, cip, sizeof(cip));
	snprintf(cport, sizeof(cport), "%d",
	    sockaddr_port((const struct sockaddr *)&pi->client));
	mlog(LOG_LVL_INFO, "proxy", "ICID {icid} PROXY v{version} {proto} "
	    "from {proxy} port {proxy_port} client {ip} port {port}", "icid",
	    icid, "version", ver, "proto", pi->proto, "proxy", pip,
	    "proxy_port", pport, "ip", cip, "port", cport, NULL);
}

/* The lines that open a connection: New SMTP, SG, and its proxy. */
static void
conn_log_new(const struct conn *c, const char *host, int verified)
{
	char ip[64], icid[32], port[16];

	sockaddr_ip((const struct sockaddr *)&c->peer, ip, sizeof(ip));
	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)c->icid);
	snprintf(port, sizeof(port), "%d", c->lconf->port);
	mlog(LOG_LVL_INFO, "new_icid", "New SMTP ICID {icid} interface "
	    "{listener} ({laddr}:{lport}) address {ip} reverse dns host "
	    "{rdns} verified {verified}", "icid", icid, "listener",
	    c->lconf->name, "laddr", c->lconf->address, "lport", port, "ip", ip,
	    "rdns", host, "verified", verified ? "yes" : "no", NULL);
	mlog(LOG_LVL_INFO, "sg", "ICID {icid} {action} SG {sg} match {cidr}",
	    "icid", icid, "action", action_word(c->policy->action), "sg",
	    c->sg->name, "cidr", c->match ? c->match->text : "", NULL);
	if (c->proxy != NULL)
		conn_log_proxy(c, icid);
}

/* A proxy health check keeps its lines back (one debug line instead). */
static void
conn_log_quiet(struct conn *c, const char *host, int verified)
{
	char ip[64];

	bstrlcpy(c->proxy->rdns, host, sizeof(c->proxy->rdns));
	c->proxy->verified = verified;
	sockaddr_ip((const struct sockaddr *)&c->peer, ip, sizeof(ip));
	log_debug("ICID %llu PROXY v%d %s from %s port %d on %s: a health "
	    "check, logged only if it goes on to MAIL, STARTTLS or AUTH",
	    (unsigned long long)c->icid, c->proxy->info.version,
	    c->proxy->info.proto, ip,
	    sockaddr_port((const struct sockaddr *)&c->peer), c->lconf->name);
}

/* The quiet session does more than a health check: write its lines. */
static void
conn_unquiet(struct conn *c)
{
	if (c->proxy == NULL || !c->proxy->quiet)
		return;
	c->proxy->quiet = 0;
	conn_log_new(c, c->proxy->rdns, c->proxy->verified);
	if (c->ssl != NULL && !c->handshaking)
		log_tls_success(c);
}

/* Reverse DNS known: log the connection and greet the client. */
static void
conn_rdns_cb(void *arg, const char *host, int verified)
{
	struct conn *c = arg;
	struct smtp_session_params p;
	char ip[64];

	c->dns_pending = 0;
	sockaddr_ip((struct sockaddr *)&c->peer, ip, sizeof(ip));
	if (c->proxy != NULL && c->proxy->quiet)
		conn_log_quiet(c, host, verified);
	else
		conn_log_new(c, host, verified);
	memset(&p, 0, sizeof(p));
	p.conf = lconf_all;
	p.policy = c->policy;
	p.icid = c->icid;
	p.client_ip = ip;
	p.client_rdns = verified ? host : "unknown";
	p.tls = c->tls_mode;
	p.auth = c->lconf->auth;
	c->sess = smtp_session_new(&p, &conn_ops, c);
	if (c->tls_mode == LISTENER_TLS_IMPLICIT) {
		tls_begin(c);	/* the banner comes after the handshake */
		return;
	}
	bufferevent_setwatermark(c->bev, EV_READ, 0, SMTP_READ_MAX);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	smtp_session_start(c->sess, mono_now());
	if (stopping == 2)
		smtp_session_shutdown(c->sess);
	bufferevent_enable(c->bev, EV_READ);
	conn_after_io(c);
}

static void
refuse(int fd, const char *line)
{
	ssize_t n = write(fd, line, strlen(line));

	(void)n;
	close(fd);
}

static void
log_too_many(const struct conf_listener *l, const char *ip, const char *why)
{
	mlog(LOG_LVL_WARNING, "too_many", "Connection refused address {ip} "
	    "interface {listener}: {why}", "ip", ip, "listener", l->name, "why",
	    why, NULL);
}

/* A connection's socket, buffers and timer, linked in; nothing logged. */
static struct conn *
conn_new(const struct conf_listener *l, int fd, const struct sockaddr *sa,
    size_t salen)
{
	struct conn *c;
	int on = 1;

	c = xcalloc(1, sizeof(*c));
	memcpy(&c->peer, sa, salen < sizeof(c->peer) ? salen :
	    sizeof(c->peer));
	c->lconf = l;
	c->icid = ids_next(ID_ICID);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->bev = bufferevent_socket_new(lbase, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(lbase, conn_timer_cb, c);
	c->out = evbuffer_new();
	if (c->bev == NULL || c->timer == NULL || c->out == NULL)
		fatalx("out of memory for a connection");
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	return c;
}

/*
 * Admit a client: sender group, connection caps, then the session after
 * reverse DNS.  `sa` is the client (from a PROXY header when pi != NULL,
 * which is then kept for the log).
 */
static void
conn_admit(const struct conf_listener *l, int fd, const struct sockaddr *sa,
    size_t salen, const struct proxy_accept_info *pi)
{
	const struct conf_sender_group *sg;
	const struct conf_policy *pol;
	const struct cidr *match = NULL;
	char ip[64];
	enum connlimit_result lim;
	struct conn *c;

	sockaddr_ip(sa, ip, sizeof(ip));
	sg = conf_match_sender_group(lconf_all, sa, &match);
	if (sg == NULL ||
	    lconf_all->policies[sg->policy_index].action == POLICY_TCPREFUSE) {
		mlog(LOG_LVL_INFO, "tcprefuse", "TCP refused address {ip} "
		    "interface {listener} SG {sg}", "ip", ip, "listener",
		    l->name, "sg", sg ? sg->name : "(none)", NULL);
		metrics_connection(l, METRICS_CONN_TCPREFUSE);
		close(fd);
		return;
	}
	pol = &lconf_all->policies[sg->policy_index];
	lim = connlimit_take(sa, lconf_all->limits.max_connections,
	    pol->limits.max_connections_per_client);
	if (lim != CONNLIMIT_OK) {
		log_too_many(l, ip, lim == CONNLIMIT_TOTAL ?
		    "max_connections reached" :
		    "max_connections_per_client reached");
		metrics_connection(l, lim == CONNLIMIT_TOTAL ?
		    METRICS_CONN_MAX_CONNECTIONS : METRICS_CONN_MAX_PER_CLIENT);
		refuse(fd, "421 4.7.0 Too many connections\r\n");
		return;
	}
	metrics_connection(l, METRICS_CONN_ACCEPTED);
	c = conn_new(l, fd, sa, salen);
	c->policy = pol;
	c->sg = sg;
	c->match = match;
	c->tls_mode = conf_effective_tls(l, pol);
	if (pi != NULL) {
		c->proxy = xcalloc(1, sizeof(*c->proxy));
		c->proxy->info = *pi;
		c->proxy->quiet = pi->kind == PROXY_PROTO_LOCAL;
	}
	/* The banner waits for the reverse lookup (bounded), so the log
	 * names the client before anything else happens. */
	c->dns_pending = 1;
	dns_rdns((struct sockaddr *)&c->peer, RDNS_TIMEOUT, conn_rdns_cb, c);
}

/* The PROXY header is in: admit the client it names. */
static void
proxy_done_cb(int fd, const struct proxy_accept_info *pi, void *arg)
{
	conn_admit(arg, fd, (const struct sockaddr *)&pi->client,
	    sizeof(pi->client), pi);
}

static void
accept_cb(struct evconnlistener *el, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	const struct conf_listener *l = arg;
	char ip[64];

	if (!l->proxy_protocol) {
		conn_admit(l, fd, sa, (size_t)salen, NULL);
		return;
	}
	/* Sockets without their header yet are bounded too (a proxy that
	 * connects and sends nothing cannot pile them up). */
	if (proxy_accept_pending() >= (size_t)lconf_all->limits.max_connections) {
		log_too_many(l, sockaddr_ip(sa, ip, sizeof(ip)),
		    "max_connections reached (waiting for PROXY headers)");
		metrics_connection(l, METRICS_CONN_MAX_CONNECTIONS);
		close(fd);
		return;
	}
	proxy_accept_start(lbase, fd, sa, l, PROXY_ACCEPT_TIMEOUT,
	    proxy_done_cb, arg);
}

static void
accept_error_cb(struct evconnlistener *el, void *arg)
{
	const struct conf_listener *l = arg;

	/* EMFILE and friends: log, keep serving the sessions we have. */
	log_warn("listener %s: accept failed", l->name);
}

int
listener_attach(struct event_base *base, const struct conf *conf,
    struct spool *spool, const int *fds, int notify_fd, SSL_CTX **tls)
{
	size_t i;

	ltls = tls;
	lbase = base;
	lconf_all = conf;
	lspool = spool;
	lnotify = notify_fd;
	lev = xcalloc(conf->nlisteners, sizeof(*lev));
	nlev = conf->nlisteners;
	for (i = 0; i < conf->nlisteners; i++)
		if (fds[i] != -1 && conf->listeners[i].auth != LISTENER_AUTH_OFF &&
		    lauthd == NULL && (lauthd = auth_check_new(base,
		    conf->data_dir)) == NULL)
			return -1;
	for (i = 0; i < conf->nlisteners; i++) {
		if (fds[i] == -1)
			continue;
		lev[i] = evconnlistener_new(base, accept_cb,
		    &conf->listeners[i], LEV_OPT_CLOSE_ON_FREE, -1, fds[i]);
		if (lev[i] == NULL)
			return -1;
		evconnlistener_set_error_cb(lev[i], accept_error_cb);
	}
	return 0;
}

void
listener_detach(void)
{
	size_t i;

	for (i = 0; i < nlev; i++)
		if (lev[i])
			evconnlistener_free(lev[i]);
	free(lev);
	lev = NULL;
	nlev = 0;
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	log_warnx("stopping with %zu sessions still open", nconns);
	if (stopped_cb)
		stopped_cb();
}

void
listener_shutdown(double grace, int goodbye, void (*done)(void))
{
	struct conn *c, *next;
	struct timeval tv;

	listener_detach();
	proxy_accept_close_all();	/* no header yet: not a session */
	stopping = goodbye ? 2 : 1;
	stopped_cb = done;
	if (nconns == 0) {
		done();
		return;
	}
	if (!goodbye)
		return;		/* sessions end by themselves (QUIT, deadlines) */
	tv.tv_sec = (time_t)grace;
	tv.tv_usec = 0;
	grace_ev = evtimer_new(lbase, grace_cb, NULL);
	if (grace_ev)
		event_add(grace_ev, &tv);
	for (c = conns; c; c = next) {
		next = c->next;		/* conn_after_io may free c */
		if (c->sess == NULL || c->dead)
			continue;	/* greeted (and told) once rDNS is in */
		smtp_session_shutdown(c->sess);
		conn_after_io(c);
	}
}

size_t
listener_sessions(void)
{
	return nconns;
}
