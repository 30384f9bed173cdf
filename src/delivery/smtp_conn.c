/*
 * smtp_conn.c - the connection driver of remote delivery (see
 * smtp_conn.h).
 *
 * Public: smtp_conn_init, smtp_conn_shutdown, smtp_conn_open,
 * smtp_conn_wake.
 *
 * States (enum conn_state) and what follows each on success:
 *   CONNECT  -> TLS (route tls implicit) | GREETING
 *   TLS      -> GREETING                  implicit TLS (RFC 8314)
 *   GREETING -> EHLO | EHLO_TLS
 *   EHLO     -> STARTTLS | AUTH           per the TLS ladder
 *   STARTTLS -> EHLO_TLS | AUTH           RFC 3207 4.2: EHLO again;
 *                                         AUTH: refused before its 220
 *                                         and the ladder allows clear
 *   EHLO_TLS -> AUTH
 *   AUTH     -> READY                     only for routes with auth_user
 *   READY    -> MAIL | IDLE | QUIT        picks the next message
 *   MAIL     -> READY | RSET              one transaction
 *   MAIL_AFTER_IDLE                       the same, first after an idle
 *                                         wait: a server that closed
 *                                         meanwhile is not the message's
 *                                         fault (it goes back first)
 *   RSET     -> READY | QUIT              after a failed transaction
 *   IDLE     -> MAIL_AFTER_IDLE | QUIT    in the queue's idle pool
 *   QUIT     -> (freed)
 * A failure before READY tries the queue's next target on a new
 * connection (a new DCID); after the last one the queue's waiting
 * messages are deferred.  What a transaction sends (and whether the peer
 * can take the message at all) is smtp_tx.c's; what TLS requires is
 * tls_policy.c's; the log lines are delivery_log.c's.
 *
 * Threats: the server is untrusted.  Credentials are only sent under TLS;
 * TLS decisions come from the ladder (tls_policy.h), so a server, or
 * someone in between, can make us defer but never make us send in clear
 * where the destination's mode forbids it; replies reach the log only as
 * values (cleaned by mlog).
 *
 * Every TLS session and every TLS trouble (a failure that stops the
 * attempt, STARTTLS refused under a preferred mode, an unverified
 * certificate delivered to anyway) is counted (metrics.h); the troubles
 * also go into the status file's ring of recent failures
 * (daemon_status.h) that `postern status` shows.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "daemon_status.h"
#include "delivery_log.h"
#include "dest_queue.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "smtp_client.h"
#include "smtp_conn.h"
#include "smtp_tx.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"

#define CONN_MSGS_MAX		100	/* then QUIT and a fresh connection */
#define CONN_IDLE_HOLD		2	/* seconds an idle connection waits
					 * for the next message */
#define CONN_PASSWORD_MAX	1024

enum conn_state {
	CONN_CONNECT,
	CONN_TLS,
	CONN_GREETING,
	CONN_EHLO,
	CONN_STARTTLS,
	CONN_EHLO_TLS,
	CONN_AUTH,
	CONN_READY,
	CONN_MAIL,
	CONN_MAIL_AFTER_IDLE,
	CONN_RSET,
	CONN_IDLE,
	CONN_QUIT
};

struct smtp_conn {
	struct smtp_conn	*next, *prev;	/* every connection */
	struct dest_queue	*q;
	struct smtp_client	*c;
	enum conn_state		 state;
	char			 dcid[32];
	size_t			 ti;		/* current target */
	int			 nmsgs;		/* transactions begun */
	struct dq_item		*cur;		/* in MAIL */
	struct event		*idle_ev;
	char			 peer_ip[64];
	char			 port_s[16];
};

static struct event_base	*cbase;
static const struct conf	*cconf;
static SSL_CTX			*ctx_plain, *ctx_verify;
static delivery_alert_cb	 alert_cb;
static struct smtp_conn		*conns;	/* for smtp_conn_shutdown */

static void	conn_enter_state(struct smtp_conn *, enum conn_state);
static void	conn_step_done(struct smtp_client *,
		    const struct smtp_client_result *, void *);

/* ------------------------------------------------------------ helpers */

static const struct dq_target *
cur_target(const struct smtp_conn *sc)
{
	return &sc->q->targets[sc->ti];
}

static const char *
host(const struct smtp_conn *sc)
{
	return cur_target(sc)->name;
}

/* Log-safe one-line form of a reply ("250 2.0.0 Ok: queued as 12"). */
static void
reply_line(const struct smtp_reply *r, char *buf, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	if (r == NULL) {
		bstrlcpy(buf, "(no reply)", len);
		return;
	}
	smtp_reply_format(r, &sb, " / ");
	bstrlcpy(buf, sb.s ? sb.s : "", len);
	strbuf_free(&sb);
}

/* The enhanced code of a reply, or x.0.0 from its class. */
static void
reply_status(const struct smtp_reply *r, char *buf, size_t len)
{
	if (r != NULL && r->enhanced[0] != '\0')
		bstrlcpy(buf, r->enhanced, len);
	else
		bsnprintf(buf, len, "%d.0.0", r ? r->code / 100 : 4);
}

static void
result_text(const struct smtp_client_result *r, char *buf, size_t len)
{
	if (r->err == SMTP_CLIENT_EREPLY)
		reply_line(r->reply, buf, len);
	else
		bsnprintf(buf, len, "%s%s%s", smtp_client_strerror(r->err),
		    r->detail[0] ? ": " : "", r->detail);
}

static void
conn_error(struct smtp_conn *sc, const char *details, const char *reason)
{
	delivery_log_conn_error(sc->dcid, sc->q->route.domain, sc->peer_ip,
	    sc->port_s, details, reason);
}

/* ------------------------------------------------------ end of a conn */

static void
conn_unlink(struct smtp_conn *sc)
{
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		conns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
}

static void
conn_free(struct smtp_conn *sc)
{
	struct dest_queue *q = sc->q;
	size_t i;

	if (sc->state == CONN_IDLE)
		dest_queue_idle_remove(q, sc);
	if (sc->idle_ev != NULL)
		event_free(sc->idle_ev);
	smtp_client_free(sc->c);
	if (sc->cur != NULL) {
		/* Should not happen: every path finishes its item first. */
		for (i = 0; i < sc->cur->n; i++)
			delivery_result_set(&sc->cur->res[i],
			    DELIVERY_DEFERRED, "delivery interrupted", "4.4.2",
			    NULL, 0);
		dest_queue_finish(sc->cur, sc->dcid);
	}
	conn_unlink(sc);
	free(sc);
	dest_queue_conn_gone(q);
}

/* Defer every waiting message of the queue with why, and end. */
static void
conn_give_up(struct smtp_conn *sc, const char *why, const char *status)
{
	struct dest_queue *q = sc->q;

	dest_queue_conn_failed(q, why);
	dest_queue_fail_all(q, DELIVERY_DEFERRED, why, status,
	    sc->dcid[0] ? sc->dcid : NULL);
	conn_free(sc);
}

/* The current target failed: remember why, try the next one. */
static void
conn_next_target(struct smtp_conn *sc, const char *why)
{
	dest_queue_conn_failed(sc->q, why);
	smtp_client_free(sc->c);
	sc->c = NULL;
	sc->ti++;
	conn_enter_state(sc, CONN_CONNECT);
}

/* A step failed: log it as a connection error (details: the step) and
 * try the next target; `what` says what went wrong, for the queue. */
static void
conn_step_failed(struct smtp_conn *sc, const char *step, const char *what,
    const struct smtp_client_result *r)
{
	char why[400], w2[600];

	result_text(r, why, sizeof(why));
	conn_error(sc, step, why);
	bsnprintf(w2, sizeof(w2), "%s [%s] %s%s: %s", host(sc), sc->peer_ip,
	    what, step, why);
	conn_next_target(sc, w2);
}

/* ---------------------------------------------------------------- TLS */

static SSL_CTX *
conn_ctx(const struct smtp_conn *sc)
{
	return sc->q->tls.verify && ctx_verify ? ctx_verify : ctx_plain;
}

/* A TLS trouble with this connection's next hop: counted, remembered. */
static void
tls_trouble(struct smtp_conn *sc, const char *reason)
{
	metrics_tls_failure(METRICS_OUTBOUND, reason);
	daemon_status_tls_failure(sc->q->route.domain, host(sc), reason);
}

/* TLS failure where TLS is required: log, alert, next target. */
static void
tls_fail(struct smtp_conn *sc, const char *reason)
{
	const struct tls_policy *p = &sc->q->tls;
	char why[600];

	delivery_log_tls_failed(sc->dcid, reason);
	tls_trouble(sc, reason);
	if (alert_cb != NULL)
		alert_cb(sc->q->route.domain, host(sc), reason);
	bsnprintf(why, sizeof(why), "TLS required for %s (tls %s%s) but %s",
	    sc->q->route.domain, p->mode, p->of_route ? " of the route" : "",
	    reason);
	conn_next_target(sc, why);
}

/* A failure after the server's 220 to STARTTLS under a preferred mode:
 * never clear text; the destination's messages wait for the next try. */
static void
tls_attack(struct smtp_conn *sc, const char *reason)
{
	char why[700];

	delivery_log_tls_attack(sc->dcid, reason, sc->q->route.domain,
	    sc->q->tls.mode);
	bsnprintf(why, sizeof(why), "TLS with %s failed after its 220 to "
	    "STARTTLS (possible active attack; not sent in clear): %s",
	    host(sc), reason);
	tls_trouble(sc, why);
	conn_give_up(sc, why, "4.7.5");
}

/* Act on one rung of the ladder for a TLS event that did not go well;
 * TLS_CLEAR and TLS_GO carry on (return 0), anything else ended this
 * attempt (-1). */
static int
tls_event(struct smtp_conn *sc, enum tls_action a, const char *reason,
    const struct smtp_client_result *r)
{
	switch (a) {
	case TLS_GO:
	case TLS_CLEAR:
	case TLS_WARN:
		return 0;
	case TLS_FAIL:
		tls_fail(sc, reason);
		return -1;
	case TLS_ATTACK:
		tls_attack(sc, reason);
		return -1;
	case TLS_LOST:
		conn_step_failed(sc, "STARTTLS", "", r);
		return -1;
	}
	return -1;
}

static const char *
verify_reason(long vr)
{
	if (ctx_verify == NULL)
		return "the trust store could not be loaded";
	if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		return "host name mismatch (the certificate names neither this "
		    "host in its SAN nor its CN)";
	return X509_verify_cert_error_string(vr);
}

/* After a handshake: log it and check the certificate per policy.  0 go
 * on, -1 the attempt was given up. */
static int
tls_established(struct smtp_conn *sc)
{
	const struct tls_policy *p = &sc->q->tls;
	SSL *ssl = smtp_client_ssl(sc->c);
	char reason[600];
	long vr;

	delivery_log_tls_success(sc->dcid, tls_protocol(ssl), tls_cipher(ssl));
	metrics_tls_session(METRICS_OUTBOUND, tls_protocol(ssl),
	    tls_cipher(ssl));
	if (!p->verify)
		return 0;
	vr = ssl ? SSL_get_verify_result(ssl) : X509_V_ERR_UNSPECIFIED;
	if (ssl != NULL && SSL_get0_peer_certificate(ssl) == NULL)
		vr = X509_V_ERR_UNSPECIFIED;
	if (vr == X509_V_OK && ctx_verify != NULL)
		return 0;
	if (p->unverified == TLS_WARN) {
		delivery_log_tls_unverified(sc->dcid, host(sc),
		    verify_reason(vr), sc->q->route.domain);
		bsnprintf(reason, sizeof(reason), "certificate of %s not "
		    "verified: %s; delivered anyway (preferred-verify)",
		    host(sc), verify_reason(vr));
		tls_trouble(sc, reason);
		return 0;
	}
	bsnprintf(reason, sizeof(reason), "certificate of %s not verified: "
	    "%s", host(sc), verify_reason(vr));
	return tls_event(sc, p->unverified, reason, NULL);
}

static void
handshake_reason(struct smtp_conn *sc, const struct smtp_client_result *r,
    char *buf, size_t len)
{
	bsnprintf(buf, len, "TLS handshake with %s failed: %s", host(sc),
	    r->detail[0] ? r->detail : smtp_client_strerror(r->err));
}

/* ------------------------------------------------------ state entries */

static void
conn_set_peer(struct smtp_conn *sc, const struct dq_target *t)
{
	const void *addr;
	unsigned port;

	if (t->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&t->ss;
		addr = &s6->sin6_addr;
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)&t->ss;
		addr = &s4->sin_addr;
		port = ntohs(s4->sin_port);
	}
	inet_ntop(t->ss.ss_family == AF_INET6 ? AF_INET6 : AF_INET, addr,
	    sc->peer_ip, sizeof(sc->peer_ip));
	bsnprintf(sc->port_s, sizeof(sc->port_s), "%u", port);
}

/* LMTP over a UNIX socket: connect now (local, never blocks long). */
static void
conn_connect_unix(struct smtp_conn *sc, const struct dq_target *t)
{
	struct sockaddr_un sun;
	char why[400];
	int fd, e;

	bstrlcpy(sc->peer_ip, t->path, sizeof(sc->peer_ip));
	bstrlcpy(sc->port_s, "0", sizeof(sc->port_s));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	bstrlcpy(sun.sun_path, t->path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 && connect(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0) {
		smtp_client_attach_fd(sc->c, fd, conn_step_done, sc);
		return;
	}
	e = errno;
	if (fd != -1)
		close(fd);
	bsnprintf(why, sizeof(why), "cannot connect to LMTP socket %s: %s",
	    t->path, strerror(e));
	conn_error(sc, "connect", strerror(e));
	conn_next_target(sc, why);
}

static void
conn_connect(struct smtp_conn *sc)
{
	struct dest_queue *q = sc->q;
	const struct dq_target *t;
	const char *why;

	if (sc->ti >= q->ntargets) {
		/* every target failed: the waiting messages cannot go now */
		why = q->last_error[0] ? q->last_error :
		    "no next hop could be reached";
		dest_queue_fail_all(q, DELIVERY_DEFERRED, why, "4.4.1",
		    sc->dcid[0] ? sc->dcid : NULL);
		conn_free(sc);
		return;
	}
	t = cur_target(sc);
	bsnprintf(sc->dcid, sizeof(sc->dcid), "%llu",
	    (unsigned long long)ids_next(ID_DCID));
	sc->nmsgs = 0;
	sc->c = smtp_client_new(cbase, NULL);
	if (t->lmtp)
		smtp_client_set_lmtp(sc->c, 1);
	if (t->path[0] != '\0') {
		conn_connect_unix(sc, t);
		return;
	}
	conn_set_peer(sc, t);
	smtp_client_connect(sc->c, (const struct sockaddr *)&t->ss, t->sslen,
	    conn_step_done, sc);
}

/* AUTH with the route's secret (read now: it may change on disk). */
static void
auth_send(struct smtp_conn *sc, const struct conf_route *r, const char *mech)
{
	char *pw, why[600];
	size_t len;

	pw = r->auth_password_file ? read_file(r->auth_password_file, &len,
	    CONN_PASSWORD_MAX) : NULL;
	if (pw == NULL) {
		/* the same for every target: give up on all of them */
		bsnprintf(why, sizeof(why), "cannot read auth_password_file %s "
		    "of the route for %s: %s", r->auth_password_file ?
		    r->auth_password_file : "(none)", sc->q->route.domain,
		    strerror(errno));
		log_warnx("%s", why);
		conn_give_up(sc, why, "4.4.1");
		return;
	}
	while (len > 0 && (pw[len - 1] == '\n' || pw[len - 1] == '\r'))
		pw[--len] = '\0';
	smtp_client_auth(sc->c, mech, r->auth_user, pw, 0, conn_step_done, sc);
	secure_free(pw, len);
}

/* Routes with auth_user: only under TLS, only PLAIN or LOGIN. */
static void
conn_auth(struct smtp_conn *sc)
{
	const struct conf_route *r = sc->q->route.route;
	const struct smtp_ehlo *e = smtp_client_ehlo_info(sc->c);
	char why[600];

	if (r == NULL || r->auth_user == NULL) {
		conn_enter_state(sc, CONN_READY);
		return;
	}
	if (smtp_client_ssl(sc->c) == NULL) {
		bsnprintf(why, sizeof(why), "route for %s has auth_user but the "
		    "connection to %s is not encrypted: credentials not sent "
		    "(set the route's tls = \"starttls\" or \"implicit\")",
		    sc->q->route.domain, host(sc));
		conn_error(sc, "AUTH", "no TLS; credentials not sent");
		conn_next_target(sc, why);
		return;
	}
	if (e == NULL || !(e->ext & SMTP_EXT_AUTH) ||
	    !(e->auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		bsnprintf(why, sizeof(why), "%s offers no AUTH PLAIN or LOGIN "
		    "(offered: %s); the route needs auth_user %s", host(sc),
		    e && e->auth_mechs[0] ? e->auth_mechs : "none",
		    r->auth_user);
		conn_error(sc, "AUTH", "no usable mechanism");
		conn_next_target(sc, why);
		return;
	}
	auth_send(sc, r, e->auth & SMTP_AUTH_PLAIN ? "PLAIN" : "LOGIN");
}

static void
idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *sc = arg;

	dest_queue_idle_remove(sc->q, sc);
	conn_enter_state(sc, CONN_QUIT);
}

/* No message waits: keep the connection a moment for the next one. */
static void
conn_idle(struct smtp_conn *sc)
{
	struct timeval tv = { CONN_IDLE_HOLD, 0 };

	if (sc->idle_ev == NULL)
		sc->idle_ev = evtimer_new(cbase, idle_timeout_cb, sc);
	if (sc->idle_ev == NULL) {
		conn_enter_state(sc, CONN_QUIT);
		return;
	}
	dest_queue_idle_put(sc->q, sc);
	event_add(sc->idle_ev, &tv);
}

static void
conn_ready(struct smtp_conn *sc)
{
	if (sc->nmsgs >= CONN_MSGS_MAX)
		conn_enter_state(sc, CONN_QUIT);
	else if (sc->q->nitems == 0)
		conn_enter_state(sc, CONN_IDLE);
	else
		conn_enter_state(sc, CONN_MAIL);
}

/* One transaction: the next waiting message. */
static void
conn_mail(struct smtp_conn *sc)
{
	struct dq_item *it = dest_queue_pop(sc->q);
	const struct smtp_ehlo *e;
	struct smtp_tx tx;
	char status[16], why[512];
	size_t i, *rids;
	int r;

	if (it == NULL) {
		conn_enter_state(sc, CONN_READY);
		return;
	}
	sc->nmsgs++;
	rids = xcalloc(it->n, sizeof(*rids));
	for (i = 0; i < it->n; i++)
		rids[i] = it->res[i].rid;
	delivery_log_start(it->mid, sc->dcid, rids, it->n);
	e = smtp_client_ehlo_info(sc->c);
	r = smtp_tx_build(&tx, it->env, rids, it->n, it->data, it->len,
	    e ? e->ext : 0, host(sc), status, sizeof(status), why, sizeof(why));
	free(rids);
	if (r == -1) {
		for (i = 0; i < it->n; i++)
			delivery_result_set(&it->res[i], DELIVERY_BOUNCED, why,
			    status, host(sc), 0);
		dest_queue_finish(it, sc->dcid);
		conn_enter_state(sc, CONN_READY);
		return;
	}
	sc->cur = it;
	smtp_client_send(sc->c, &tx.ev, it->data, it->len, conn_step_done, sc);
	smtp_tx_free(&tx);
}

/* The one place the state changes: set it and start what it does. */
static void
conn_enter_state(struct smtp_conn *sc, enum conn_state s)
{
	sc->state = s;
	switch (s) {
	case CONN_CONNECT:
		conn_connect(sc);
		break;
	case CONN_TLS:
		smtp_client_tls(sc->c, conn_ctx(sc), host(sc), conn_step_done,
		    sc);
		break;
	case CONN_GREETING:
		smtp_client_greeting(sc->c, conn_step_done, sc);
		break;
	case CONN_EHLO:
	case CONN_EHLO_TLS:
		smtp_client_ehlo(sc->c, cconf->hostname, conn_step_done, sc);
		break;
	case CONN_STARTTLS:
		smtp_client_starttls(sc->c, conn_ctx(sc), host(sc),
		    conn_step_done, sc);
		break;
	case CONN_AUTH:
		conn_auth(sc);
		break;
	case CONN_READY:
		conn_ready(sc);
		break;
	case CONN_MAIL:
	case CONN_MAIL_AFTER_IDLE:
		conn_mail(sc);
		break;
	case CONN_RSET:
		smtp_client_command(sc->c, "RSET", 0, conn_step_done, sc);
		break;
	case CONN_IDLE:
		conn_idle(sc);
		break;
	case CONN_QUIT:
		smtp_client_quit(sc->c, conn_step_done, sc);
		break;
	}
}

/* ---------------------------------------------------- step responses */

static void
on_connect(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char local[64] = "local", why[400], w2[600];

	if (r->err != SMTP_CLIENT_OK) {
		result_text(r, why, sizeof(why));
		conn_error(sc, "connect", why);
		bsnprintf(w2, sizeof(w2), "cannot connect to %s [%s]:%s: %s",
		    host(sc), sc->peer_ip, sc->port_s, why);
		conn_next_target(sc, w2);
		return;
	}
	if (getsockname(smtp_client_fd(sc->c), (struct sockaddr *)&ss,
	    &len) == 0 && (ss.ss_family == AF_INET ||
	    ss.ss_family == AF_INET6))
		inet_ntop(ss.ss_family, ss.ss_family == AF_INET ?
		    (void *)&((struct sockaddr_in *)&ss)->sin_addr :
		    (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr, local,
		    sizeof(local));
	delivery_log_connected(sc->dcid, local, sc->peer_ip, sc->port_s);
	conn_enter_state(sc, sc->q->tls.implicit ? CONN_TLS : CONN_GREETING);
}

static void
on_implicit_tls(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	char why[400];

	if (r->err != SMTP_CLIENT_OK) {
		handshake_reason(sc, r, why, sizeof(why));
		tls_fail(sc, why);
		return;
	}
	if (tls_established(sc) == 0)
		conn_enter_state(sc, CONN_GREETING);
}

static void
on_greeting(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	if (r->err != SMTP_CLIENT_OK) {
		conn_step_failed(sc, "greeting", "", r);
		return;
	}
	conn_enter_state(sc, smtp_client_ssl(sc->c) ? CONN_EHLO_TLS :
	    CONN_EHLO);
}

static void
on_ehlo(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	const struct tls_policy *p = &sc->q->tls;
	const struct smtp_ehlo *e;
	char why[400];

	if (r->err != SMTP_CLIENT_OK) {
		conn_step_failed(sc, r->step ? r->step : "EHLO", "refused ",
		    r);
		return;
	}
	if (sc->state == CONN_EHLO_TLS || !p->starttls) {
		conn_enter_state(sc, CONN_AUTH);
		return;
	}
	e = smtp_client_ehlo_info(sc->c);
	if (e != NULL && (e->ext & SMTP_EXT_STARTTLS)) {
		conn_enter_state(sc, CONN_STARTTLS);
		return;
	}
	bsnprintf(why, sizeof(why), "STARTTLS not offered by %s", host(sc));
	if (tls_event(sc, p->not_offered, why, r) == -1)
		return;
	log_debug("DCID %s: %s offers no STARTTLS; delivering in clear "
	    "(destination %s tls %s)", sc->dcid, host(sc),
	    sc->q->route.domain, p->mode);
	conn_enter_state(sc, CONN_AUTH);
}

/* Did the server say 220 to our STARTTLS?  (The greeting's 220 is past:
 * an EHLO reply came in between.) */
static int
starttls_accepted(const struct smtp_conn *sc)
{
	const struct smtp_reply *last = smtp_client_last_reply(sc->c);

	return last != NULL && last->code == 220;
}

static void
on_starttls(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	const struct tls_policy *p = &sc->q->tls;
	char why[400], w2[600];

	if (r->err == SMTP_CLIENT_OK) {
		if (tls_established(sc) == 0)
			conn_enter_state(sc, CONN_EHLO_TLS);
		return;
	}
	if (r->err == SMTP_CLIENT_EREPLY) {	/* refused before any 220 */
		result_text(r, why, sizeof(why));
		bsnprintf(w2, sizeof(w2), "STARTTLS refused by %s: %s",
		    host(sc), why);
		if (tls_event(sc, p->refused, w2, r) == -1)
			return;
		delivery_log_tls_clear(sc->dcid, w2, sc->q->route.domain,
		    p->mode);
		tls_trouble(sc, w2);
		conn_enter_state(sc, CONN_AUTH);
		return;
	}
	handshake_reason(sc, r, w2, sizeof(w2));
	tls_event(sc, starttls_accepted(sc) ? p->after_220 : p->no_reply, w2,
	    r);
}

static void
on_auth(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	char why[400], w2[700];

	if (r->err == SMTP_CLIENT_OK) {
		conn_enter_state(sc, CONN_READY);
		return;
	}
	result_text(r, why, sizeof(why));
	bsnprintf(w2, sizeof(w2), "authentication to %s as %s failed: %s",
	    host(sc), sc->q->route.route->auth_user, why);
	conn_error(sc, "AUTH", why);
	conn_next_target(sc, w2);
}

/* Classify one recipient from its RCPT reply and its final reply. */
static void
rcpt_outcome(struct smtp_conn *sc, struct delivery_result *res,
    const struct smtp_reply *rr, const struct smtp_reply *fr)
{
	const struct smtp_reply *use = rr;
	char text[512], status[16];

	if (rr != NULL && smtp_reply_class(rr) == 2)
		use = fr;
	if (use == NULL) {
		delivery_result_set(res, DELIVERY_DEFERRED, "no reply from the "
		    "server", "4.4.2", host(sc), 0);
		return;
	}
	reply_line(use, text, sizeof(text));
	reply_status(use, status, sizeof(status));
	delivery_result_set(res, smtp_reply_class(use) == 2 ?
	    DELIVERY_DELIVERED : smtp_reply_class(use) == 5 ?
	    DELIVERY_BOUNCED : DELIVERY_DEFERRED, text, status, host(sc), 1);
}

/* The server dropped a connection while it idled: not the message's
 * fault; it goes first on a fresh connection. */
static int
closed_while_idle(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	if (sc->state != CONN_MAIL_AFTER_IDLE ||
	    (r->err != SMTP_CLIENT_ECLOSED && r->err != SMTP_CLIENT_EIO) ||
	    smtp_client_rcpt_reply(sc->c, 0) != NULL ||
	    (r->step != NULL && strcmp(r->step, "MAIL") != 0))
		return 0;
	log_debug("DCID %s: idle connection was closed by the server",
	    sc->dcid);
	dest_queue_push_front(sc->q, sc->cur);
	sc->cur = NULL;
	conn_free(sc);
	return 1;
}

/* After a transaction: RSET when it failed part way (unless the
 * connection is done anyway), else the next message. */
static void
tx_next(struct smtp_conn *sc, int failed)
{
	conn_enter_state(sc, failed && sc->nmsgs < CONN_MSGS_MAX ? CONN_RSET :
	    CONN_READY);
}

/* The connection broke during the transaction. */
static void
tx_lost(struct smtp_conn *sc, struct dq_item *it,
    const struct smtp_client_result *r)
{
	const struct smtp_reply *lr = smtp_client_last_reply(sc->c), *fr;
	const char *step = r->step ? r->step : "the transaction";
	char text[400], why[600];
	size_t i;

	result_text(r, text, sizeof(text));
	/* A server that says 421 to a pipelined MAIL and closes: the reply is
	 * the reason, not the close that follows it. */
	if (lr != NULL && smtp_reply_class(lr) >= 4)
		reply_line(lr, text, sizeof(text));
	bsnprintf(why, sizeof(why), "lost connection with %s [%s] during %s: "
	    "%s", host(sc), sc->peer_ip, step, text);
	conn_error(sc, r->step ? r->step : "transaction", text);
	for (i = 0; i < it->n; i++) {
		delivery_result_set(&it->res[i], DELIVERY_DEFERRED, why,
		    "4.4.2", host(sc), 0);
		/* LMTP: recipients whose own final 2xx arrived are delivered */
		fr = smtp_client_data_reply(sc->c, i);
		if (smtp_client_lmtp(sc->c) && fr != NULL &&
		    smtp_reply_class(fr) == 2)
			rcpt_outcome(sc, &it->res[i],
			    smtp_client_rcpt_reply(sc->c, i), fr);
	}
	dest_queue_finish(it, sc->dcid);
	conn_free(sc);
}

static void
on_sent(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	struct dq_item *it = sc->cur;
	const struct smtp_reply *fr;
	char text[512], status[16], why[600];
	size_t i;

	if (closed_while_idle(sc, r))
		return;
	sc->cur = NULL;
	if (r->err == SMTP_CLIENT_OK || (r->err == SMTP_CLIENT_EREPLY &&
	    r->step != NULL && strcmp(r->step, "MAIL") != 0)) {
		for (i = 0; i < it->n; i++) {
			fr = smtp_client_data_reply(sc->c, i);
			if (fr == NULL && r->err == SMTP_CLIENT_EREPLY)
				fr = r->reply;	/* DATA itself refused */
			rcpt_outcome(sc, &it->res[i],
			    smtp_client_rcpt_reply(sc->c, i), fr);
		}
		dest_queue_finish(it, sc->dcid);
		if (r->err == SMTP_CLIENT_OK)
			dest_queue_delivered(sc->q);
		tx_next(sc, r->err != SMTP_CLIENT_OK);
		return;
	}
	if (r->err == SMTP_CLIENT_EREPLY) {	/* MAIL refused */
		reply_line(r->reply, text, sizeof(text));
		reply_status(r->reply, status, sizeof(status));
		for (i = 0; i < it->n; i++)
			delivery_result_set(&it->res[i],
			    smtp_reply_class(r->reply) == 5 ? DELIVERY_BOUNCED :
			    DELIVERY_DEFERRED, text, status, host(sc), 1);
		dest_queue_finish(it, sc->dcid);
		tx_next(sc, 1);
		return;
	}
	if (r->err == SMTP_CLIENT_EUSAGE) {	/* nothing was sent */
		bsnprintf(why, sizeof(why), "cannot be sent: %s", r->detail);
		for (i = 0; i < it->n; i++)
			delivery_result_set(&it->res[i], DELIVERY_BOUNCED, why,
			    "5.6.0", host(sc), 0);
		dest_queue_finish(it, sc->dcid);
		conn_enter_state(sc, CONN_READY);
		return;
	}
	tx_lost(sc, it, r);
}

static void
on_rset(struct smtp_conn *sc, const struct smtp_client_result *r)
{
	if (r->err != SMTP_CLIENT_OK || smtp_reply_class(r->reply) != 2)
		conn_enter_state(sc, CONN_QUIT);
	else
		conn_enter_state(sc, CONN_READY);
}

/* Every client step reports here; what it means depends on the state. */
static void
conn_step_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct smtp_conn *sc = arg;

	switch (sc->state) {
	case CONN_CONNECT:
		on_connect(sc, r);
		break;
	case CONN_TLS:
		on_implicit_tls(sc, r);
		break;
	case CONN_GREETING:
		on_greeting(sc, r);
		break;
	case CONN_EHLO:
	case CONN_EHLO_TLS:
		on_ehlo(sc, r);
		break;
	case CONN_STARTTLS:
		on_starttls(sc, r);
		break;
	case CONN_AUTH:
		on_auth(sc, r);
		break;
	case CONN_MAIL:
	case CONN_MAIL_AFTER_IDLE:
		on_sent(sc, r);
		break;
	case CONN_RSET:
		on_rset(sc, r);
		break;
	case CONN_QUIT:
		conn_free(sc);
		break;
	case CONN_READY:
	case CONN_IDLE:
		fatalx("delivery connection: a step ended in a state that "
		    "runs none (%d)", (int)sc->state);
	}
}

/* ------------------------------------------------------------- public */

void
smtp_conn_open(struct dest_queue *q)
{
	struct smtp_conn *sc = xcalloc(1, sizeof(*sc));

	sc->q = q;
	if ((sc->next = conns) != NULL)
		conns->prev = sc;
	conns = sc;
	conn_enter_state(sc, CONN_CONNECT);
}

void
smtp_conn_wake(struct smtp_conn *sc)
{
	event_del(sc->idle_ev);
	conn_enter_state(sc, CONN_MAIL_AFTER_IDLE);
}

static int
verify_report_cb(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;	/* record the error, decide after the handshake */
}

int
smtp_conn_init(struct event_base *base, const struct conf *conf,
    delivery_alert_cb acb, char *why, size_t whylen)
{
	char w2[512];

	cbase = base;
	cconf = conf;
	alert_cb = acb;
	if ((ctx_plain = tls_client_ctx_new(conf, 0, why, whylen)) == NULL)
		return -1;
	if ((ctx_verify = tls_client_ctx_new(conf, 1, w2, sizeof(w2))) == NULL)
		log_warnx("outbound TLS: cannot load the trust store (%s); "
		    "destinations with a -verify tls mode will fail "
		    "verification", w2);
	else
		SSL_CTX_set_verify(ctx_verify, SSL_VERIFY_PEER,
		    verify_report_cb);
	return 0;
}

void
smtp_conn_shutdown(void)
{
	struct smtp_conn *sc;

	/* no callbacks: a message under way stays queued as it was */
	while ((sc = conns) != NULL) {
		conns = sc->next;
		smtp_client_free(sc->c);
		if (sc->idle_ev != NULL)
			event_free(sc->idle_ev);
		if (sc->cur != NULL)
			dest_queue_drop(sc->cur);
		free(sc);
	}
	SSL_CTX_free(ctx_plain);
	SSL_CTX_free(ctx_verify);
	ctx_plain = ctx_verify = NULL;
}
