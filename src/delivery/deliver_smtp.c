/*
 * deliver_smtp.c - remote delivery (see deliver_smtp.h).
 *
 * Objects:
 *   struct ditem   one message's recipients for one destination; waits in
 *                  its destination queue, then is sent by one connection
 *   struct dq      a destination queue: the items, the next-hop targets
 *                  (resolved once per queue life), the policy, the
 *                  connections working on it
 *   struct dconn   one outbound connection: connect, greeting, EHLO,
 *                  TLS per policy, AUTH, then items one after another
 *
 * A dq is created when its first item arrives and freed when it has no
 * item and no connection left; its targets are resolved when it is made,
 * so a long-lived busy destination is re-resolved whenever it drains.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "deliver_smtp.h"
#include "dns.h"
#include "ids.h"
#include "log.h"
#include "nexthop_parse.h"
#include "smtp_client.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"

#define DSMTP_MSGS_PER_CONN	100	/* then QUIT and a fresh connection */
#define DSMTP_MAX_TARGETS	64
#define DSMTP_DNS_TIMEOUT	30.0
#define DSMTP_PASSWORD_MAX	1024
#define DSMTP_IDLE_HOLD		2	/* seconds an idle connection waits
					 * for the next message */

struct ditem {
	struct ditem		*next;
	uint64_t		 mid;
	const struct envelope	*env;
	const char		*data;
	size_t			 len;
	struct dsmtp_result	*res;		/* one per rid */
	size_t			 n;
	dsmtp_done_cb		 cb;
	void			*arg;
};

struct target {
	char			name[256];	/* host name to verify / log */
	struct sockaddr_storage	ss;
	socklen_t		sslen;
	int			lmtp;
	char			path[108];	/* LMTP over a UNIX socket */
};

struct dq {
	struct dq		*next;
	char			 key[320];
	char			 domain[256];
	const struct conf_route	*route;		/* NULL = MX delivery */
	enum dest_tls		 tls;
	int			 max_conns;
	int			 window;	/* connections allowed now */
	struct ditem		*head, **tailp;
	size_t			 nitems;
	int			 nconns;
	struct dconn		*idle;		/* connections waiting for work */
	/* resolution */
	int			 resolved;	/* targets ready */
	size_t			 hop;		/* next route hop to resolve */
	unsigned long		 dns_id;
	int			 hop_lmtp;	/* the hop being resolved is LMTP */
	int			 dns_perm;	/* every lookup failed for good */
	char			 dns_status[8];
	struct target		*targets;
	size_t			 ntargets;
	char			 last_error[512];
	int			 started;	/* resolution begun */
	int			 kicking, rekick;	/* dq_kick re-entry */
};

struct dconn {
	struct dq		*dq;
	struct smtp_client	*c;
	uint64_t		 dcid;
	char			 dcid_s[32];
	size_t			 ti;		/* current target */
	int			 clear_only;	/* TLS failed under preferred */
	int			 tls_active;
	int			 need_rset;
	int			 nmsgs;
	struct ditem		*cur;
	struct dconn		*next_idle;
	struct event		*idle_ev;
	int			 idle;		/* in dq->idle */
	int			 reused;	/* this message after an idle
						 * wait */
	char			 peer_ip[64];
	char			 port_s[16];
	int			 target_fatal;	/* error applies to all targets */
};

static struct event_base	*dbase;
static const struct conf	*dconf;
static SSL_CTX			*ctx_plain, *ctx_verify;
static dsmtp_alert_cb		 alert_cb;
static struct dq		*dqs;
static size_t			 npending;

static void	conn_try(struct dconn *);
static void	conn_next_target(struct dconn *, const char *why);
static void	conn_next_msg(struct dconn *);
static void	dq_kick(struct dq *);
static void	idle_leave(struct dconn *);
static void	on_quit(struct smtp_client *,
		    const struct smtp_client_result *, void *);
static void	resolve_next_hop(struct dq *);

/* ------------------------------------------------------------ helpers */

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

static const char *
dest_tls_name(enum dest_tls t)
{
	switch (t) {
	case DEST_TLS_NONE:		return "none";
	case DEST_TLS_PREFERRED:	return "preferred";
	case DEST_TLS_REQUIRED:		return "required";
	case DEST_TLS_PREFERRED_VERIFY:	return "preferred-verify";
	case DEST_TLS_REQUIRED_VERIFY:	return "required-verify";
	}
	return "?";
}

static const struct conf_destination *
destination_for(const char *domain)
{
	const struct conf_destination *def = NULL;
	size_t i;

	for (i = 0; i < dconf->ndestinations; i++) {
		if (ascii_casecmp(dconf->destinations[i].domain, domain) == 0)
			return &dconf->destinations[i];
		if (strcmp(dconf->destinations[i].domain, "*") == 0)
			def = &dconf->destinations[i];
	}
	return def;
}

/* Must this connection use TLS (never clear)? */
static int
tls_required(const struct dq *q)
{
	if (q->route != NULL && q->route->tls != ROUTE_TLS_UNSET &&
	    q->route->tls != ROUTE_TLS_NONE)
		return 1;
	return q->tls == DEST_TLS_REQUIRED || q->tls == DEST_TLS_REQUIRED_VERIFY;
}

static int
tls_verify(const struct dq *q)
{
	return q->tls == DEST_TLS_PREFERRED_VERIFY ||
	    q->tls == DEST_TLS_REQUIRED_VERIFY;
}

static int
tls_wanted(const struct dq *q)
{
	if (q->route != NULL && q->route->tls == ROUTE_TLS_NONE)
		return 0;
	return tls_required(q) || q->tls != DEST_TLS_NONE;
}

static int
route_implicit(const struct dq *q)
{
	return q->route != NULL && q->route->tls == ROUTE_TLS_IMPLICIT;
}

/* ------------------------------------------------------------- items */

/* Log the item's results, grouped by outcome and text, then report. */
static void
item_finish(struct ditem *it, const char *dcid)
{
	static const char *const tmpl[2][2] = {
		{ "Delayed: MID {mid} to RID {rids} - {text}",
		  "Delayed: DCID {dcid} MID {mid} to RID {rids} - {text}" },
		{ "Bounced: MID {mid} to RID {rids} - {text}",
		  "Bounced: DCID {dcid} MID {mid} to RID {rids} - {text}" },
	};
	struct strbuf sb = STRBUF_INIT;
	char mid[32];
	size_t i, j;
	int *done = xcalloc(it->n, sizeof(*done)), b;

	bsnprintf(mid, sizeof(mid), "%llu", (unsigned long long)it->mid);
	for (i = 0; i < it->n; i++) {
		const struct dsmtp_result *r = &it->res[i];
		if (done[i])
			continue;
		strbuf_reset(&sb);
		strbuf_putc(&sb, '[');
		for (j = i; j < it->n; j++)
			if (!done[j] && it->res[j].outcome == r->outcome &&
			    strcmp(it->res[j].text, r->text) == 0) {
				strbuf_printf(&sb, "%s%zu", j == i ? "" : ", ",
				    it->res[j].rid);
				done[j] = 1;
			}
		strbuf_putc(&sb, ']');
		switch (r->outcome) {
		case DSMTP_DELIVERED:
			mlog(LOG_LVL_INFO, "message_done", "Message done DCID "
			    "{dcid} MID {mid} to RID {rids} response '{text}'",
			    "dcid", dcid, "mid", mid, "rids", sb.s, "text",
			    r->text, NULL);
			break;
		case DSMTP_DEFERRED:
		case DSMTP_BOUNCED:
			b = r->outcome == DSMTP_BOUNCED;
			/* no DCID when no connection was made; the list of
			 * pairs ends early then */
			mlog(LOG_LVL_WARNING, b ? "bounced" : "delayed",
			    tmpl[b][dcid != NULL], "mid", mid, "rids", sb.s,
			    "text", r->text, dcid ? "dcid" : NULL, dcid, NULL);
			break;
		}
	}
	free(done);
	strbuf_free(&sb);
	npending--;
	it->cb(it->arg, it->res, it->n);
	free(it->res);
	free(it);
}

static void
item_set(struct ditem *it, size_t i, enum dsmtp_outcome o, const char *text,
    const char *status, const char *remote, int smtp_diag)
{
	struct dsmtp_result *r = &it->res[i];

	r->outcome = o;
	bstrlcpy(r->text, text, sizeof(r->text));
	bstrlcpy(r->status, status ? status : (o == DSMTP_BOUNCED ? "5.0.0" :
	    "4.0.0"), sizeof(r->status));
	bstrlcpy(r->remote, remote ? remote : "", sizeof(r->remote));
	r->smtp_diag = smtp_diag;
}

static void
item_all(struct ditem *it, enum dsmtp_outcome o, const char *text,
    const char *status, const char *remote, int smtp_diag)
{
	size_t i;

	for (i = 0; i < it->n; i++)
		item_set(it, i, o, text, status, remote, smtp_diag);
}

static struct ditem *
dq_pop(struct dq *q)
{
	struct ditem *it = q->head;

	if (it == NULL)
		return NULL;
	if ((q->head = it->next) == NULL)
		q->tailp = &q->head;
	q->nitems--;
	it->next = NULL;
	return it;
}

/* Finish every waiting item of a queue the same way. */
static void
dq_fail_all(struct dq *q, enum dsmtp_outcome o, const char *text,
    const char *status, const char *dcid)
{
	struct ditem *it;

	while ((it = dq_pop(q)) != NULL) {
		item_all(it, o, text, status, NULL, 0);
		item_finish(it, dcid);
	}
}

/* ------------------------------------------------------ destinations */

static void
dq_free(struct dq *q)
{
	struct dq **pp;

	for (pp = &dqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->dns_id != 0)
		dns_cancel(q->dns_id);
	free(q->targets);
	free(q);
}

/* A queue per next-hop set and TLS policy: the route (and for routes
 * without their own tls, the recipient domain, whose destination control
 * applies), or the domain for MX delivery. */
static struct dq *
dq_get(const char *domain)
{
	const struct conf_route *r = conf_route_for(dconf, domain);
	const struct conf_destination *d;
	char key[320];
	struct dq *q;

	if (r != NULL && r->hosts == NULL)
		r = NULL;	/* maildir routes never come here */
	if (r != NULL && r->tls != ROUTE_TLS_UNSET)
		bsnprintf(key, sizeof(key), "route %d", r->line);
	else if (r != NULL)
		bsnprintf(key, sizeof(key), "route %d %s", r->line, domain);
	else
		bsnprintf(key, sizeof(key), "mx %s", domain);
	for (q = dqs; q; q = q->next)
		if (strcmp(q->key, key) == 0)
			return q;
	q = xcalloc(1, sizeof(*q));
	bstrlcpy(q->key, key, sizeof(q->key));
	bstrlcpy(q->domain, domain, sizeof(q->domain));
	q->route = r;
	d = destination_for(domain);
	q->tls = d ? d->tls : DEST_TLS_PREFERRED;
	q->max_conns = d ? d->max_connections : 20;
	if (q->max_conns < 1)
		q->max_conns = 1;
	q->window = 1;
	q->tailp = &q->head;
	q->next = dqs;
	dqs = q;
	return q;
}

static void
add_target(struct dq *q, const char *name, const struct sockaddr *sa,
    socklen_t len, int lmtp, const char *path)
{
	struct target *t;

	if (q->ntargets >= DSMTP_MAX_TARGETS)
		return;
	q->targets = xrealloc(q->targets, (q->ntargets + 1) * sizeof(*t));
	t = &q->targets[q->ntargets++];
	memset(t, 0, sizeof(*t));
	bstrlcpy(t->name, name, sizeof(t->name));
	if (sa != NULL && len <= sizeof(t->ss)) {
		memcpy(&t->ss, sa, len);
		t->sslen = len;
	}
	t->lmtp = lmtp;
	if (path)
		bstrlcpy(t->path, path, sizeof(t->path));
}

static void
resolved(struct dq *q)
{
	char why[600];

	q->resolved = 1;
	q->dns_id = 0;
	if (q->ntargets > 0) {
		dq_kick(q);
		return;
	}
	if (q->last_error[0] == '\0')
		bstrlcpy(q->last_error, "no next hop", sizeof(q->last_error));
	if (q->dns_perm && q->route == NULL) {
		bsnprintf(why, sizeof(why), "%s", q->last_error);
		dq_fail_all(q, DSMTP_BOUNCED, why, q->dns_status[0] ?
		    q->dns_status : "5.1.2", NULL);
	} else
		dq_fail_all(q, DSMTP_DEFERRED, q->last_error, "4.4.3", NULL);
	dq_kick(q);
}

static void
hosts_cb(void *arg, const struct dns_hosts *h)
{
	struct dq *q = arg;
	size_t i, k, limit;

	q->dns_id = 0;
	switch (h->status) {
	case DNS_OK:
		limit = h->nhosts;
		if (q->route == NULL)
			for (i = 0; i < h->nhosts; i++)
				/* RFC 5321 5.1: we are an MX of this domain:
				 * only hosts more preferred than we are. */
				if (ascii_casecmp(h->hosts[i].name,
				    dconf->hostname) == 0) {
					for (limit = 0; limit < h->nhosts &&
					    h->hosts[limit].pref <
					    h->hosts[i].pref; limit++)
						;
					break;
				}
		if (limit == 0) {
			bsnprintf(q->last_error, sizeof(q->last_error),
			    "mail for %s loops back to myself: %s is its "
			    "best MX host", q->domain, dconf->hostname);
			q->dns_perm = 1;
			bstrlcpy(q->dns_status, "5.4.6",
			    sizeof(q->dns_status));
		}
		for (i = 0; i < limit; i++)
			for (k = 0; k < h->hosts[i].naddrs; k++)
				add_target(q, h->hosts[i].name,
				    (const struct sockaddr *)&h->hosts[i].
				    addrs[k].ss, h->hosts[i].addrs[k].len,
				    q->hop_lmtp, NULL);
		break;
	case DNS_NULLMX:
		bstrlcpy(q->last_error, h->why, sizeof(q->last_error));
		q->dns_perm = 1;
		bstrlcpy(q->dns_status, "5.1.10", sizeof(q->dns_status));
		break;
	case DNS_PERMFAIL:
		bstrlcpy(q->last_error, h->why, sizeof(q->last_error));
		q->dns_perm = 1;
		bstrlcpy(q->dns_status, "5.1.2", sizeof(q->dns_status));
		break;
	case DNS_TEMPFAIL:
		bstrlcpy(q->last_error, h->why, sizeof(q->last_error));
		q->dns_perm = 0;
		break;
	}
	resolve_next_hop(q);
}

/* Resolve the queue's next hops one after another, then start. */
static void
resolve_next_hop(struct dq *q)
{
	struct nexthop nh;
	char why[256];

	if (q->route == NULL) {
		if (q->hop++ == 0) {
			q->dns_id = dns_hosts(q->domain, 1, 25,
			    DSMTP_DNS_TIMEOUT, hosts_cb, q);
			return;
		}
		resolved(q);
		return;
	}
	while (q->hop < q->route->nhosts) {
		if (nexthop_parse(q->route->hosts[q->hop++], &nh, why,
		    sizeof(why)) == -1) {
			bsnprintf(q->last_error, sizeof(q->last_error),
			    "route next hop '%s': %s",
			    q->route->hosts[q->hop - 1], why);
			continue;
		}
		if (nh.kind == NEXTHOP_LMTP_UNIX) {
			add_target(q, nh.host, NULL, 0, 1, nh.host);
			continue;
		}
		q->hop_lmtp = nh.kind == NEXTHOP_LMTP_TCP;
		q->dns_id = dns_hosts(nh.host, nh.mx, nh.port,
		    DSMTP_DNS_TIMEOUT, hosts_cb, q);
		return;
	}
	resolved(q);
}

/*
 * Start connections while there is work and room.  Slow start: a new
 * destination gets one connection; every message it takes lets one more
 * open (up to max_connections), a failed connection brings it back to
 * one, so a burst for a healthy destination opens a few connections that
 * each carry many messages, and a dead one is not hammered.
 */
static void
dq_kick(struct dq *q)
{
	struct dconn *dc;

	if (!q->resolved)
		return;
	/* A connection can fail inside conn_try (a UNIX socket) and come
	 * back here through conn_free: the outer call does the work. */
	if (q->kicking) {
		q->rekick = 1;
		return;
	}
	q->kicking = 1;
	do {
		q->rekick = 0;
		while (q->nitems > 0 && q->idle != NULL) {
			dc = q->idle;
			idle_leave(dc);
			dc->reused = 1;
			conn_next_msg(dc);
		}
		while (q->nitems > 0 && q->nconns < q->max_conns &&
		    q->nconns < q->window && (size_t)q->nconns < q->nitems) {
			dc = xcalloc(1, sizeof(*dc));
			dc->dq = q;
			q->nconns++;
			conn_try(dc);
		}
	} while (q->rekick);
	q->kicking = 0;
	if (q->nitems == 0 && q->nconns == 0)
		dq_free(q);
}

/* ------------------------------------------------------- connections */

static void
idle_leave(struct dconn *dc)
{
	struct dconn **pp;

	if (!dc->idle)
		return;
	for (pp = &dc->dq->idle; *pp; pp = &(*pp)->next_idle)
		if (*pp == dc) {
			*pp = dc->next_idle;
			break;
		}
	dc->idle = 0;
	dc->next_idle = NULL;
	event_del(dc->idle_ev);
}

static void
idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dconn *dc = arg;

	idle_leave(dc);
	smtp_client_quit(dc->c, on_quit, dc);
}

/* No message waits: keep the connection a moment for the next one. */
static void
idle_enter(struct dconn *dc)
{
	struct timeval tv = { DSMTP_IDLE_HOLD, 0 };

	if (dc->idle_ev == NULL)
		dc->idle_ev = evtimer_new(dbase, idle_timeout_cb, dc);
	if (dc->idle_ev == NULL) {
		smtp_client_quit(dc->c, on_quit, dc);
		return;
	}
	dc->idle = 1;
	dc->next_idle = dc->dq->idle;
	dc->dq->idle = dc;
	event_add(dc->idle_ev, &tv);
}

static void
conn_free(struct dconn *dc)
{
	struct dq *q = dc->dq;

	idle_leave(dc);
	if (dc->idle_ev != NULL)
		event_free(dc->idle_ev);
	smtp_client_free(dc->c);
	if (dc->cur != NULL) {
		/* Should not happen: every path finishes its item first. */
		item_all(dc->cur, DSMTP_DEFERRED, "delivery interrupted",
		    "4.4.2", NULL, 0);
		item_finish(dc->cur, dc->dcid_s);
	}
	q->nconns--;
	free(dc);
	dq_kick(q);
}

static const struct target *
cur_target(const struct dconn *dc)
{
	return &dc->dq->targets[dc->ti];
}

static void
log_conn_error(struct dconn *dc, const char *details, const char *reason)
{
	mlog(LOG_LVL_WARNING, "connection_error", "Connection Error: DCID "
	    "{dcid} domain: {domain} IP: {ip} port: {port} details: {details} "
	    "reason: {reason}", "dcid", dc->dcid_s, "domain", dc->dq->domain,
	    "ip", dc->peer_ip, "port", dc->port_s, "details", details,
	    "reason", reason, NULL);
}

/* The step failed on the current target: remember why, try the next. */
static void
conn_next_target(struct dconn *dc, const char *why)
{
	bstrlcpy(dc->dq->last_error, why, sizeof(dc->dq->last_error));
	dc->dq->window = 1;
	smtp_client_free(dc->c);
	dc->c = NULL;
	dc->ti = dc->target_fatal ? dc->dq->ntargets : dc->ti + 1;
	dc->clear_only = 0;
	conn_try(dc);
}

/* Every target failed: the waiting items cannot go now. */
static void
conn_exhausted(struct dconn *dc)
{
	struct dq *q = dc->dq;
	const char *why = q->last_error[0] ? q->last_error :
	    "no next hop could be reached";

	dq_fail_all(q, DSMTP_DEFERRED, why, "4.4.1", dc->dcid_s[0] ?
	    dc->dcid_s : NULL);
	conn_free(dc);
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

static void on_connect(struct smtp_client *, const struct smtp_client_result *,
	    void *);

static void
conn_try(struct dconn *dc)
{
	struct dq *q = dc->dq;
	const struct target *t;
	struct sockaddr_un sun;
	int fd;

	if (dc->ti >= q->ntargets) {
		conn_exhausted(dc);
		return;
	}
	t = cur_target(dc);
	dc->dcid = ids_next(ID_DCID);
	bsnprintf(dc->dcid_s, sizeof(dc->dcid_s), "%llu",
	    (unsigned long long)dc->dcid);
	dc->tls_active = dc->need_rset = dc->nmsgs = 0;
	dc->c = smtp_client_new(dbase, NULL);
	if (t->lmtp)
		smtp_client_set_lmtp(dc->c, 1);
	if (t->path[0] != '\0') {
		bstrlcpy(dc->peer_ip, t->path, sizeof(dc->peer_ip));
		bstrlcpy(dc->port_s, "0", sizeof(dc->port_s));
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		bstrlcpy(sun.sun_path, t->path, sizeof(sun.sun_path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1 || connect(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1) {
			char why[400];
			bsnprintf(why, sizeof(why), "cannot connect to LMTP "
			    "socket %s: %s", t->path, strerror(errno));
			if (fd != -1)
				close(fd);
			log_conn_error(dc, "connect", strerror(errno));
			conn_next_target(dc, why);
			return;
		}
		smtp_client_attach_fd(dc->c, fd, on_connect, dc);
		return;
	}
	if (t->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&t->ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, dc->peer_ip,
		    sizeof(dc->peer_ip));
		bsnprintf(dc->port_s, sizeof(dc->port_s), "%u",
		    ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)&t->ss;
		inet_ntop(AF_INET, &s4->sin_addr, dc->peer_ip,
		    sizeof(dc->peer_ip));
		bsnprintf(dc->port_s, sizeof(dc->port_s), "%u",
		    ntohs(s4->sin_port));
	}
	smtp_client_connect(dc->c, (const struct sockaddr *)&t->ss, t->sslen,
	    on_connect, dc);
}

static void on_greeting(struct smtp_client *,
	    const struct smtp_client_result *, void *);
static void on_ehlo(struct smtp_client *, const struct smtp_client_result *,
	    void *);

static void
log_tls_success(struct dconn *dc)
{
	SSL *ssl = smtp_client_ssl(dc->c);

	dc->tls_active = 1;
	mlog(LOG_LVL_INFO, "tls_success", "DCID {dcid} TLS success protocol "
	    "{protocol} cipher {cipher}", "dcid", dc->dcid_s, "protocol",
	    tls_protocol(ssl), "cipher", tls_cipher(ssl), NULL);
}

/* A TLS problem on a destination that needs TLS: log, alert, next host. */
static void
tls_failed(struct dconn *dc, const char *reason)
{
	struct dq *q = dc->dq;
	char why[600];

	mlog(LOG_LVL_WARNING, "tls_failed", "DCID {dcid} TLS failed: {reason}",
	    "dcid", dc->dcid_s, "reason", reason, NULL);
	if (tls_required(q) && alert_cb != NULL)
		alert_cb(q->domain, cur_target(dc)->name, reason);
	bsnprintf(why, sizeof(why), "TLS required for %s (tls %s%s) but %s",
	    q->domain, q->route && q->route->tls == ROUTE_TLS_STARTTLS ?
	    "starttls" : q->route && q->route->tls == ROUTE_TLS_IMPLICIT ?
	    "implicit" : dest_tls_name(q->tls), q->route && q->route->tls !=
	    ROUTE_TLS_UNSET ? " of the route" : "", reason);
	conn_next_target(dc, why);
}

/* After a handshake: check the certificate per policy.  0 go on, -1 the
 * connection was given up. */
static int
check_peer(struct dconn *dc)
{
	struct dq *q = dc->dq;
	SSL *ssl = smtp_client_ssl(dc->c);
	const char *host = cur_target(dc)->name;
	char reason[400];
	long vr;

	if (!tls_verify(q))
		return 0;
	vr = ssl ? SSL_get_verify_result(ssl) : X509_V_ERR_UNSPECIFIED;
	if (ssl != NULL && SSL_get0_peer_certificate(ssl) == NULL)
		vr = X509_V_ERR_UNSPECIFIED;
	if (vr == X509_V_OK && ctx_verify != NULL)
		return 0;
	bsnprintf(reason, sizeof(reason), "%s", ctx_verify == NULL ?
	    "the trust store could not be loaded" :
	    vr == X509_V_ERR_HOSTNAME_MISMATCH ? "host name mismatch (the "
	    "certificate names neither this host in its SAN nor its CN)" :
	    X509_verify_cert_error_string(vr));
	if (q->tls == DEST_TLS_PREFERRED_VERIFY) {
		mlog(LOG_LVL_WARNING, "tls_unverified", "DCID {dcid} TLS "
		    "certificate of {host} not verified: {reason}; delivering "
		    "anyway (destination {domain} tls preferred-verify)",
		    "dcid", dc->dcid_s, "host", host, "reason", reason,
		    "domain", q->domain, NULL);
		return 0;
	}
	{
		char r2[600];
		bsnprintf(r2, sizeof(r2), "certificate of %s not verified: %s",
		    host, reason);
		tls_failed(dc, r2);
	}
	return -1;
}

static SSL_CTX *
conn_ctx(const struct dconn *dc)
{
	return tls_verify(dc->dq) && ctx_verify ? ctx_verify : ctx_plain;
}

static void
on_implicit_tls(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct dconn *dc = arg;
	char why[400];

	if (r->err != SMTP_CLIENT_OK) {
		bsnprintf(why, sizeof(why), "TLS handshake with %s failed: %s",
		    cur_target(dc)->name, r->detail[0] ? r->detail :
		    smtp_client_strerror(r->err));
		tls_failed(dc, why);
		return;
	}
	log_tls_success(dc);
	if (check_peer(dc) == -1)
		return;
	smtp_client_greeting(dc->c, on_greeting, dc);
}

static void
on_connect(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct dconn *dc = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char local[64] = "local", why[400];

	if (r->err != SMTP_CLIENT_OK) {
		result_text(r, why, sizeof(why));
		log_conn_error(dc, "connect", why);
		{
			char w2[600];
			bsnprintf(w2, sizeof(w2), "cannot connect to %s [%s]:%s: "
			    "%s", cur_target(dc)->name, dc->peer_ip, dc->port_s,
			    why);
			conn_next_target(dc, w2);
		}
		return;
	}
	if (getsockname(smtp_client_fd(c), (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
			    local, sizeof(local));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
			    sin6_addr, local, sizeof(local));
	}
	mlog(LOG_LVL_INFO, "new_dcid", "New SMTP DCID {dcid} interface "
	    "{interface} address {address} port {port}", "dcid", dc->dcid_s,
	    "interface", local, "address", dc->peer_ip, "port", dc->port_s,
	    NULL);
	if (route_implicit(dc->dq)) {
		smtp_client_tls(c, conn_ctx(dc), cur_target(dc)->name,
		    on_implicit_tls, dc);
		return;
	}
	smtp_client_greeting(c, on_greeting, dc);
}

static void
on_greeting(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct dconn *dc = arg;
	char why[400], w2[600];

	if (r->err != SMTP_CLIENT_OK) {
		result_text(r, why, sizeof(why));
		log_conn_error(dc, "greeting", why);
		bsnprintf(w2, sizeof(w2), "%s [%s] greeting: %s",
		    cur_target(dc)->name, dc->peer_ip, why);
		conn_next_target(dc, w2);
		return;
	}
	smtp_client_ehlo(c, dconf->hostname, on_ehlo, dc);
}

static void on_starttls(struct smtp_client *,
	    const struct smtp_client_result *, void *);
static void conn_auth(struct dconn *);

static void
on_ehlo(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	struct dconn *dc = arg;
	struct dq *q = dc->dq;
	const struct smtp_ehlo *e;
	char why[400], w2[600];

	if (r->err != SMTP_CLIENT_OK) {
		result_text(r, why, sizeof(why));
		log_conn_error(dc, r->step ? r->step : "EHLO", why);
		bsnprintf(w2, sizeof(w2), "%s [%s] refused %s: %s",
		    cur_target(dc)->name, dc->peer_ip, r->step ? r->step :
		    "EHLO", why);
		conn_next_target(dc, w2);
		return;
	}
	if (dc->tls_active || !tls_wanted(q) || dc->clear_only) {
		conn_auth(dc);
		return;
	}
	e = smtp_client_ehlo_info(c);
	if (e == NULL || !(e->ext & SMTP_EXT_STARTTLS)) {
		if (tls_required(q)) {
			bsnprintf(why, sizeof(why), "STARTTLS not offered by %s",
			    cur_target(dc)->name);
			tls_failed(dc, why);
			return;
		}
		log_debug("DCID %s: %s offers no STARTTLS; delivering in clear "
		    "(destination %s tls %s)", dc->dcid_s, cur_target(dc)->name,
		    q->domain, dest_tls_name(q->tls));
		conn_auth(dc);
		return;
	}
	smtp_client_starttls(c, conn_ctx(dc), cur_target(dc)->name,
	    on_starttls, dc);
}

static void
on_starttls(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct dconn *dc = arg;
	struct dq *q = dc->dq;
	char why[400], w2[600];

	if (r->err == SMTP_CLIENT_EREPLY) {
		result_text(r, why, sizeof(why));
		bsnprintf(w2, sizeof(w2), "STARTTLS refused by %s: %s",
		    cur_target(dc)->name, why);
		if (tls_required(q)) {
			tls_failed(dc, w2);
			return;
		}
		mlog(LOG_LVL_WARNING, "tls_failed", "DCID {dcid} TLS failed: "
		    "{reason}; delivering in clear (destination {domain} tls "
		    "{mode})", "dcid", dc->dcid_s, "reason", w2, "domain",
		    q->domain, "mode", dest_tls_name(q->tls), NULL);
		conn_auth(dc);
		return;
	}
	if (r->err != SMTP_CLIENT_OK) {
		bsnprintf(w2, sizeof(w2), "TLS handshake with %s failed: %s",
		    cur_target(dc)->name, r->detail[0] ? r->detail :
		    smtp_client_strerror(r->err));
		if (tls_required(q)) {
			tls_failed(dc, w2);
			return;
		}
		/* preferred: never clear on this connection; a new one. */
		mlog(LOG_LVL_WARNING, "tls_failed", "DCID {dcid} TLS failed: "
		    "{reason}; connecting again to deliver in clear "
		    "(destination {domain} tls {mode})", "dcid", dc->dcid_s,
		    "reason", w2, "domain", q->domain, "mode",
		    dest_tls_name(q->tls), NULL);
		smtp_client_free(dc->c);
		dc->c = NULL;
		dc->clear_only = 1;
		conn_try(dc);
		return;
	}
	log_tls_success(dc);
	if (check_peer(dc) == -1)
		return;
	smtp_client_ehlo(c, dconf->hostname, on_ehlo, dc);
}

static void on_auth(struct smtp_client *, const struct smtp_client_result *,
	    void *);

static void
conn_auth(struct dconn *dc)
{
	struct dq *q = dc->dq;
	const struct smtp_ehlo *e = smtp_client_ehlo_info(dc->c);
	const char *mech;
	char *pw, why[600];
	size_t len;

	if (q->route == NULL || q->route->auth_user == NULL) {
		conn_next_msg(dc);
		return;
	}
	if (!dc->tls_active) {
		bsnprintf(why, sizeof(why), "route for %s has auth_user but the "
		    "connection to %s is not encrypted: credentials not sent "
		    "(set the route's tls = \"starttls\" or \"implicit\")",
		    q->domain, cur_target(dc)->name);
		log_conn_error(dc, "AUTH", "no TLS; credentials not sent");
		conn_next_target(dc, why);
		return;
	}
	if (e == NULL || !(e->ext & SMTP_EXT_AUTH) ||
	    !(e->auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		bsnprintf(why, sizeof(why), "%s offers no AUTH PLAIN or LOGIN "
		    "(offered: %s); the route needs auth_user %s",
		    cur_target(dc)->name, e && e->auth_mechs[0] ?
		    e->auth_mechs : "none", q->route->auth_user);
		log_conn_error(dc, "AUTH", "no usable mechanism");
		conn_next_target(dc, why);
		return;
	}
	mech = e->auth & SMTP_AUTH_PLAIN ? "PLAIN" : "LOGIN";
	pw = q->route->auth_password_file ? read_file(q->route->
	    auth_password_file, &len, DSMTP_PASSWORD_MAX) : NULL;
	if (pw == NULL) {
		bsnprintf(why, sizeof(why), "cannot read auth_password_file %s "
		    "of the route for %s: %s", q->route->auth_password_file ?
		    q->route->auth_password_file : "(none)", q->domain,
		    strerror(errno));
		log_warnx("%s", why);
		dc->target_fatal = 1;
		conn_next_target(dc, why);
		return;
	}
	while (len > 0 && (pw[len - 1] == '\n' || pw[len - 1] == '\r'))
		pw[--len] = '\0';
	smtp_client_auth(dc->c, mech, q->route->auth_user, pw, 0, on_auth, dc);
	secure_free(pw, len);
}

static void
on_auth(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	struct dconn *dc = arg;
	struct dq *q = dc->dq;
	char why[400], w2[700];

	if (r->err == SMTP_CLIENT_OK) {
		conn_next_msg(dc);
		return;
	}
	result_text(r, why, sizeof(why));
	bsnprintf(w2, sizeof(w2), "authentication to %s as %s failed: %s",
	    cur_target(dc)->name, q->route->auth_user, why);
	log_conn_error(dc, "AUTH", why);
	conn_next_target(dc, w2);
}

/* ------------------------------------------------------ transactions */

static void on_sent(struct smtp_client *, const struct smtp_client_result *,
	    void *);
static void on_rset(struct smtp_client *, const struct smtp_client_result *,
	    void *);
static void on_quit(struct smtp_client *, const struct smtp_client_result *,
	    void *);

static void
notify_text(int notify, char *buf, size_t len)
{
	buf[0] = '\0';
	if (notify & SMTP_NOTIFY_NEVER) {
		bstrlcpy(buf, "NEVER", len);
		return;
	}
	if (notify & SMTP_NOTIFY_SUCCESS)
		strncat(buf, "SUCCESS,", len - strlen(buf) - 1);
	if (notify & SMTP_NOTIFY_FAILURE)
		strncat(buf, "FAILURE,", len - strlen(buf) - 1);
	if (notify & SMTP_NOTIFY_DELAY)
		strncat(buf, "DELAY,", len - strlen(buf) - 1);
	if (buf[0] != '\0')
		buf[strlen(buf) - 1] = '\0';
}

/* Things the peer cannot take: 0 go, -1 the item was finished. */
static int
check_capabilities(struct dconn *dc, struct ditem *it, int *body8,
    int *utf8)
{
	const struct smtp_ehlo *e = smtp_client_ehlo_info(dc->c);
	unsigned ext = e ? e->ext : 0;
	const char *host = cur_target(dc)->name;
	char why[512];
	size_t i;
	int nonascii = 0, complete;

	*body8 = *utf8 = 0;
	if (it->env->body == SMTP_BODY_BINARYMIME) {
		bsnprintf(why, sizeof(why), "the message is BINARYMIME and "
		    "Postern cannot send it in binary to %s", host);
		item_all(it, DSMTP_BOUNCED, why, "5.6.3", host, 0);
		return -1;
	}
	if (it->env->body == SMTP_BODY_8BITMIME && mem_has_8bit(it->data,
	    it->len)) {
		if (!(ext & SMTP_EXT_8BITMIME)) {
			/* RFC 6152 3: no 8-bit data to a 7-bit peer. */
			bsnprintf(why, sizeof(why), "%s does not offer 8BITMIME "
			    "and the message contains 8-bit data (RFC 6152)",
			    host);
			item_all(it, DSMTP_BOUNCED, why, "5.6.3", host, 0);
			return -1;
		}
		*body8 = 1;
	}
	if (it->env->smtputf8) {
		nonascii = mem_has_8bit(it->env->from, strlen(it->env->from)) ||
		    mem_has_8bit(it->data, msg_header_len(it->data, it->len,
		    &complete));
		for (i = 0; i < it->n && !nonascii; i++)
			nonascii = mem_has_8bit(it->env->rcpts[it->res[i].rid].addr,
			    strlen(it->env->rcpts[it->res[i].rid].addr));
		if (nonascii && !(ext & SMTP_EXT_SMTPUTF8)) {
			bsnprintf(why, sizeof(why), "%s does not offer SMTPUTF8 "
			    "and the message needs it (RFC 6531)", host);
			item_all(it, DSMTP_BOUNCED, why, "5.6.7", host, 0);
			return -1;
		}
		*utf8 = nonascii && (ext & SMTP_EXT_SMTPUTF8);
	}
	if (*body8 == 0 && mem_has_8bit(it->data, it->len) &&
	    (ext & SMTP_EXT_8BITMIME))
		*body8 = 1;
	return 0;
}

static void
conn_send(struct dconn *dc, struct ditem *it)
{
	const struct smtp_ehlo *e = smtp_client_ehlo_info(dc->c);
	struct smtp_client_envelope ev;
	const char **rcpts, **rparams;
	char **rp, mparams[256], notify[64], mid[32];
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int dsn = e && (e->ext & SMTP_EXT_DSN), body8, utf8;

	dc->cur = it;
	dc->nmsgs++;
	bsnprintf(mid, sizeof(mid), "%llu", (unsigned long long)it->mid);
	{
		struct strbuf rl = STRBUF_INIT;
		strbuf_putc(&rl, '[');
		for (i = 0; i < it->n; i++)
			strbuf_printf(&rl, "%s%zu", i ? ", " : "",
			    it->res[i].rid);
		strbuf_putc(&rl, ']');
		mlog(LOG_LVL_INFO, "delivery_start", "Delivery start DCID "
		    "{dcid} MID {mid} to RID {rids}", "dcid", dc->dcid_s,
		    "mid", mid, "rids", rl.s, NULL);
		strbuf_free(&rl);
	}
	if (check_capabilities(dc, it, &body8, &utf8) == -1) {
		dc->cur = NULL;
		item_finish(it, dc->dcid_s);
		conn_next_msg(dc);
		return;
	}
	rcpts = xcalloc(it->n, sizeof(*rcpts));
	rparams = xcalloc(it->n, sizeof(*rparams));
	rp = xcalloc(it->n, sizeof(*rp));
	for (i = 0; i < it->n; i++) {
		const struct env_rcpt *er = &it->env->rcpts[it->res[i].rid];
		rcpts[i] = er->addr;
		if (dsn && (er->notify || er->orcpt[0])) {
			strbuf_reset(&sb);
			if (er->notify) {
				notify_text(er->notify, notify, sizeof(notify));
				strbuf_printf(&sb, "NOTIFY=%s", notify);
			}
			if (er->orcpt[0])
				strbuf_printf(&sb, "%sORCPT=%s", er->notify ?
				    " " : "", er->orcpt);
			rp[i] = xstrdup(sb.s);
			rparams[i] = rp[i];
		}
	}
	mparams[0] = '\0';
	if (dsn && it->env->ret != SMTP_RET_UNSET)
		bsnprintf(mparams, sizeof(mparams), "RET=%s", it->env->ret ==
		    SMTP_RET_FULL ? "FULL" : "HDRS");
	if (dsn && it->env->envid[0]) {
		size_t l = strlen(mparams);
		bsnprintf(mparams + l, sizeof(mparams) - l, "%sENVID=%s",
		    l ? " " : "", it->env->envid);
	}
	memset(&ev, 0, sizeof(ev));
	ev.from = it->env->from;
	ev.rcpts = rcpts;
	ev.nrcpts = it->n;
	ev.size = it->len;
	ev.body_8bit = body8;
	ev.smtputf8 = utf8;
	ev.mail_params = mparams[0] ? mparams : NULL;
	ev.rcpt_params = rparams;
	smtp_client_send(dc->c, &ev, it->data, it->len, on_sent, dc);
	for (i = 0; i < it->n; i++)
		free(rp[i]);
	free(rp);
	free(rcpts);
	free(rparams);
	strbuf_free(&sb);
}

static void
conn_next_msg(struct dconn *dc)
{
	struct dq *q = dc->dq;
	struct ditem *it;

	if (dc->nmsgs >= DSMTP_MSGS_PER_CONN) {
		smtp_client_quit(dc->c, on_quit, dc);
		return;
	}
	if (q->nitems == 0) {
		idle_enter(dc);
		return;
	}
	if (dc->need_rset) {
		dc->need_rset = 0;
		smtp_client_command(dc->c, "RSET", 0, on_rset, dc);
		return;
	}
	it = dq_pop(q);
	conn_send(dc, it);
}

static void
on_rset(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	struct dconn *dc = arg;

	if (r->err != SMTP_CLIENT_OK || smtp_reply_class(r->reply) != 2) {
		smtp_client_quit(c, on_quit, dc);
		return;
	}
	conn_next_msg(dc);
}

static void
on_quit(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	conn_free(arg);
}

/* Classify one recipient from its RCPT reply and its final reply. */
static void
rcpt_outcome(struct dconn *dc, struct ditem *it, size_t i,
    const struct smtp_reply *rr, const struct smtp_reply *fr)
{
	const char *host = cur_target(dc)->name;
	const struct smtp_reply *use = rr;
	char text[512], status[16];

	if (rr != NULL && smtp_reply_class(rr) == 2)
		use = fr;
	if (use == NULL) {
		item_set(it, i, DSMTP_DEFERRED, "no reply from the server",
		    "4.4.2", host, 0);
		return;
	}
	reply_line(use, text, sizeof(text));
	reply_status(use, status, sizeof(status));
	switch (smtp_reply_class(use)) {
	case 2:
		item_set(it, i, DSMTP_DELIVERED, text, status, host, 1);
		break;
	case 5:
		item_set(it, i, DSMTP_BOUNCED, text, status, host, 1);
		break;
	default:
		item_set(it, i, DSMTP_DEFERRED, text, status, host, 1);
		break;
	}
}

static void
on_sent(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	struct dconn *dc = arg;
	struct ditem *it = dc->cur;
	struct dq *q = dc->dq;
	const char *host = cur_target(dc)->name;
	char why[600], text[400];
	size_t i;

	dc->cur = NULL;
	if (dc->reused && (r->err == SMTP_CLIENT_ECLOSED ||
	    r->err == SMTP_CLIENT_EIO) && smtp_client_rcpt_reply(c, 0) ==
	    NULL && (r->step == NULL || strcmp(r->step, "MAIL") == 0)) {
		/* The server dropped the connection while it idled: not the
		 * message's fault; it goes first on a fresh connection. */
		log_debug("DCID %s: idle connection was closed by the server",
		    dc->dcid_s);
		it->next = q->head;
		q->head = it;
		if (q->tailp == &q->head)
			q->tailp = &it->next;
		q->nitems++;
		conn_free(dc);
		return;
	}
	dc->reused = 0;
	if (r->err == SMTP_CLIENT_OK || (r->err == SMTP_CLIENT_EREPLY &&
	    r->step != NULL && strcmp(r->step, "MAIL") != 0)) {
		for (i = 0; i < it->n; i++) {
			const struct smtp_reply *fr = smtp_client_data_reply(c,
			    i);
			if (fr == NULL && r->err == SMTP_CLIENT_EREPLY)
				fr = r->reply;	/* DATA itself refused */
			rcpt_outcome(dc, it, i, smtp_client_rcpt_reply(c, i),
			    fr);
		}
		if (r->err != SMTP_CLIENT_OK)
			dc->need_rset = 1;
		else if (dc->dq->window < dc->dq->max_conns)
			dc->dq->window++;
		item_finish(it, dc->dcid_s);
		if (dc->dq->nconns < dc->dq->window)
			dq_kick(dc->dq);
		conn_next_msg(dc);
		return;
	}
	if (r->err == SMTP_CLIENT_EREPLY) {	/* MAIL refused */
		char status[16];
		reply_line(r->reply, text, sizeof(text));
		reply_status(r->reply, status, sizeof(status));
		item_all(it, smtp_reply_class(r->reply) == 5 ? DSMTP_BOUNCED :
		    DSMTP_DEFERRED, text, status, host, 1);
		dc->need_rset = 1;
		item_finish(it, dc->dcid_s);
		conn_next_msg(dc);
		return;
	}
	if (r->err == SMTP_CLIENT_EUSAGE) {
		bsnprintf(why, sizeof(why), "cannot be sent: %s", r->detail);
		item_all(it, DSMTP_BOUNCED, why, "5.6.0", host, 0);
		item_finish(it, dc->dcid_s);
		conn_next_msg(dc);
		return;
	}
	result_text(r, text, sizeof(text));
	{
		/* A server that says 421 to a pipelined MAIL and closes: the
		 * reply is the reason, not the close that follows it. */
		const struct smtp_reply *lr = smtp_client_last_reply(c);
		if (lr != NULL && smtp_reply_class(lr) >= 4)
			reply_line(lr, text, sizeof(text));
	}
	bsnprintf(why, sizeof(why), "lost connection with %s [%s] during %s: %s",
	    host, dc->peer_ip, r->step ? r->step : "the transaction", text);
	log_conn_error(dc, r->step ? r->step : "transaction", text);
	item_all(it, DSMTP_DEFERRED, why, "4.4.2", host, 0);
	/* LMTP: recipients whose own final 2xx arrived are delivered. */
	for (i = 0; i < it->n; i++) {
		const struct smtp_reply *fr = smtp_client_data_reply(c, i);
		if (smtp_client_lmtp(c) && fr != NULL &&
		    smtp_reply_class(fr) == 2)
			rcpt_outcome(dc, it, i, smtp_client_rcpt_reply(c, i),
			    fr);
	}
	item_finish(it, dc->dcid_s);
	conn_free(dc);
}

/* ------------------------------------------------------------ public */

static int
verify_report_cb(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;	/* record the error, decide after the handshake */
}

int
deliver_smtp_init(struct event_base *base, const struct conf *conf,
    dsmtp_alert_cb acb, char *why, size_t whylen)
{
	char w2[512];

	dbase = base;
	dconf = conf;
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
deliver_smtp_shutdown(void)
{
	while (dqs != NULL) {
		struct dq *q = dqs;
		struct ditem *it;
		while ((it = dq_pop(q)) != NULL) {
			free(it->res);
			free(it);
		}
		dq_free(q);
	}
	SSL_CTX_free(ctx_plain);
	SSL_CTX_free(ctx_verify);
	ctx_plain = ctx_verify = NULL;
}

void
deliver_smtp_submit(const char *domain, uint64_t mid,
    const struct envelope *env, const char *data, size_t len,
    const size_t *rids, size_t nrids, dsmtp_done_cb cb, void *arg)
{
	struct ditem *it = xcalloc(1, sizeof(*it));
	struct dq *q;
	size_t i;

	it->mid = mid;
	it->env = env;
	it->data = data;
	it->len = len;
	it->n = nrids;
	it->res = xcalloc(nrids, sizeof(*it->res));
	for (i = 0; i < nrids; i++) {
		it->res[i].rid = rids[i];
		it->res[i].outcome = DSMTP_DEFERRED;
	}
	it->cb = cb;
	it->arg = arg;
	npending++;
	q = dq_get(domain);
	*q->tailp = it;
	q->tailp = &it->next;
	q->nitems++;
	if (!q->started) {
		/* may finish the item at once (no next hop): callers are
		 * ready for a callback from inside this call */
		q->started = 1;
		resolve_next_hop(q);
	} else
		dq_kick(q);
}

size_t
deliver_smtp_pending(void)
{
	return npending;
}
