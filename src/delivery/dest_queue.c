/*
 * dest_queue.c - destination queues and the remote delivery driver (see
 * dest_queue.h and delivery.h).
 *
 * Public: delivery_remote (init, submit, shutdown; connections work from
 * the event loop, so it has no flush) and, for
 * smtp_conn.c, dest_queue_pop, dest_queue_push_front, dest_queue_finish,
 * dest_queue_drop,
 * dest_queue_fail_all, dest_queue_conn_failed, dest_queue_delivered,
 * dest_queue_conn_gone, dest_queue_idle_put, dest_queue_idle_remove,
 * dest_queue_kick.
 *
 * A queue is made when the first request for its destination arrives and
 * freed when it has neither items nor connections; its next hops are
 * resolved when it is made, so a busy destination is resolved again
 * whenever it drains.  The spool content of a request is mapped read-only
 * for the connections (borrowed from the scheduler's open, locked file)
 * and unmapped when the request ends.
 *
 * Limits: DQ_MAX_TARGETS addresses per queue, DNS answers bounded by
 * DQ_DNS_TIMEOUT; a next hop naming our own hostname as the best MX is a
 * permanent failure (RFC 5321 5.1), so mail never loops back to us.
 */
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_log.h"
#include "dest_queue.h"
#include "dns.h"
#include "log.h"
#include "nexthop_parse.h"
#include "smtp_conn.h"
#include "util.h"

#define DQ_MAX_TARGETS	64
#define DQ_DNS_TIMEOUT	30.0

static const struct conf	*dconf;
static struct dest_queue	*dqs;

static void	resolve_next_hop(struct dest_queue *);

/* ------------------------------------------------------------- items */

struct dq_item *
dest_queue_pop(struct dest_queue *q)
{
	struct dq_item *it = q->head;

	if (it == NULL)
		return NULL;
	if ((q->head = it->next) == NULL)
		q->tailp = &q->head;
	q->nitems--;
	it->next = NULL;
	return it;
}

void
dest_queue_push_front(struct dest_queue *q, struct dq_item *it)
{
	it->next = q->head;
	q->head = it;
	if (q->tailp == &q->head)
		q->tailp = &it->next;
	q->nitems++;
}

void
dest_queue_drop(struct dq_item *it)
{
	if (it->data != NULL && it->len > 0)
		munmap((void *)it->data, it->len);
	free(it->res);
	free(it);
}

void
dest_queue_finish(struct dq_item *it, const char *dcid)
{
	delivery_log_results(it->mid, dcid, it->res, it->n);
	it->done(it->arg, it->res, it->n);
	dest_queue_drop(it);
}

static void
item_all(struct dq_item *it, enum delivery_outcome o, const char *text,
    const char *status, const struct dest_queue *q)
{
	size_t i;

	for (i = 0; i < it->n; i++) {
		delivery_result_set(&it->res[i], o, text, status, NULL, 0);
		if (q != NULL)
			delivery_result_cause(&it->res[i], q->last_cause,
			    q->last_host, q->last_port);
	}
}

void
dest_queue_fail_all(struct dest_queue *q, enum delivery_outcome o,
    const char *text, const char *status, const char *dcid)
{
	struct dq_item *it;

	while ((it = dest_queue_pop(q)) != NULL) {
		item_all(it, o, text, status, q);
		dest_queue_finish(it, dcid);
	}
}

/* ------------------------------------------------------------ queues */

static void
dq_free(struct dest_queue *q)
{
	struct dest_queue **pp;

	for (pp = &dqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->dns_id != 0)
		dns_cancel(q->dns_id);
	free(q->idle);
	free(q->targets);
	free(q);
}

/* The queue of a destination (route_same_queue), made on first use. */
static struct dest_queue *
dq_get(const struct route_decision *d)
{
	struct dest_queue *q;

	for (q = dqs; q; q = q->next)
		if (route_same_queue(&q->route, d))
			return q;
	q = xcalloc(1, sizeof(*q));
	q->route = *d;
	tls_policy_get(d->tls, d->route != NULL ? d->route->tls :
	    ROUTE_TLS_UNSET, &q->tls);
	q->window = 1;
	q->tailp = &q->head;
	q->next = dqs;
	dqs = q;
	return q;
}

void
dest_queue_conn_failed(struct dest_queue *q, const char *why)
{
	bstrlcpy(q->last_error, why, sizeof(q->last_error));
	q->window = 1;
}

/* Keep the cause of the last connection failure. */
void
dest_queue_conn_cause(struct dest_queue *q, enum failcause fc,
    const char *host, int port)
{
	q->last_cause = fc;
	bstrlcpy(q->last_host, host != NULL ? host : "", sizeof(q->last_host));
	q->last_port = port;
}

void
dest_queue_delivered(struct dest_queue *q)
{
	if (q->window < q->route.max_connections)
		q->window++;
	if (q->nconns < q->window)
		dest_queue_kick(q);
}

void
dest_queue_conn_gone(struct dest_queue *q)
{
	q->nconns--;
	dest_queue_kick(q);
}

/* ---------------------------------------------------------- idle pool */

void
dest_queue_idle_put(struct dest_queue *q, struct smtp_conn *c)
{
	q->idle = xrealloc(q->idle, (q->nidle + 1) * sizeof(*q->idle));
	q->idle[q->nidle++] = c;
}

void
dest_queue_idle_remove(struct dest_queue *q, struct smtp_conn *c)
{
	size_t i;

	for (i = 0; i < q->nidle; i++)
		if (q->idle[i] == c) {
			q->idle[i] = q->idle[--q->nidle];
			return;
		}
}

/*
 * Start connections while there is work and room.  Slow start: a new
 * destination gets one connection; every message it takes lets one more
 * open (up to max_connections), a failed connection brings it back to
 * one, so a burst for a healthy destination opens a few connections that
 * each carry many messages, and a dead one is not hammered.  Idle
 * connections are used first.
 */
void
dest_queue_kick(struct dest_queue *q)
{
	struct smtp_conn *c;

	if (!q->resolved)
		return;
	/* A connection can fail inside smtp_conn_open (a UNIX socket) and
	 * come back here through dest_queue_conn_gone: the outer call does
	 * the work. */
	if (q->kicking) {
		q->rekick = 1;
		return;
	}
	q->kicking = 1;
	do {
		q->rekick = 0;
		while (q->nitems > 0 && q->nidle > 0) {
			c = q->idle[--q->nidle];
			smtp_conn_wake(c);
		}
		while (q->nitems > 0 && q->nconns < q->route.max_connections &&
		    q->nconns < q->window && (size_t)q->nconns < q->nitems) {
			q->nconns++;
			smtp_conn_open(q);
		}
	} while (q->rekick);
	q->kicking = 0;
	if (q->nitems == 0 && q->nconns == 0)
		dq_free(q);
}

/* --------------------------------------------------------- next hops */

static void
add_target(struct dest_queue *q, const char *name, const struct sockaddr *sa,
    socklen_t len, int lmtp, const char *path)
{
	struct dq_target *t;

	if (q->ntargets >= DQ_MAX_TARGETS)
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

/* Every hop is resolved: start, or finish the items if none is usable. */
static void
resolved(struct dest_queue *q)
{
	q->resolved = 1;
	q->dns_id = 0;
	if (q->ntargets > 0) {
		dest_queue_kick(q);
		return;
	}
	if (q->last_error[0] == '\0')
		bstrlcpy(q->last_error, "no next hop", sizeof(q->last_error));
	if (q->dns_perm && q->route.route == NULL)
		dest_queue_fail_all(q, DELIVERY_BOUNCED, q->last_error,
		    q->dns_status[0] ? q->dns_status : "5.1.2", NULL);
	else
		dest_queue_fail_all(q, DELIVERY_DEFERRED, q->last_error,
		    "4.4.3", NULL);
	dest_queue_kick(q);
}

static void
dns_failed(struct dest_queue *q, const char *why, int perm,
    const char *status)
{
	bstrlcpy(q->last_error, why, sizeof(q->last_error));
	q->dns_perm = perm;
	if (status != NULL)
		bstrlcpy(q->dns_status, status, sizeof(q->dns_status));
}

/* How many of the hosts (in preference order) we may use: RFC 5321 5.1,
 * when we are an MX of the domain, only those more preferred than we. */
static size_t
usable_hosts(const struct dest_queue *q, const struct dns_hosts *h)
{
	size_t i, limit;

	if (q->route.route != NULL)
		return h->nhosts;
	for (i = 0; i < h->nhosts; i++)
		if (ascii_casecmp(h->hosts[i].name, dconf->hostname) == 0) {
			for (limit = 0; limit < h->nhosts &&
			    h->hosts[limit].pref < h->hosts[i].pref; limit++)
				;
			return limit;
		}
	return h->nhosts;
}

static void
hosts_ok(struct dest_queue *q, const struct dns_hosts *h)
{
	size_t i, k, limit = usable_hosts(q, h);
	char why[512];

	if (limit == 0) {
		bsnprintf(why, sizeof(why), "mail for %s loops back to "
		    "myself: %s is its best MX host", q->route.domain,
		    dconf->hostname);
		dns_failed(q, why, 1, "5.4.6");
	}
	for (i = 0; i < limit; i++)
		for (k = 0; k < h->hosts[i].naddrs; k++)
			add_target(q, h->hosts[i].name, (const struct sockaddr *)
			    &h->hosts[i].addrs[k].ss, h->hosts[i].addrs[k].len,
			    q->hop_lmtp, NULL);
}

/* The name the lookup that just ended was for: the recipient domain (MX)
 * or the route's next hop. */
static void
looked_up(const struct dest_queue *q, char *buf, size_t len)
{
	const struct conf_route *r = q->route.route;
	struct nexthop nh;
	char why[256];

	if (r != NULL && q->hop > 0 && nexthop_parse(r->hosts[q->hop - 1],
	    &nh, why, sizeof(why)) == 0)
		bstrlcpy(buf, nh.host, len);
	else
		bstrlcpy(buf, q->route.domain, len);
}

static void
hosts_cb(void *arg, const struct dns_hosts *h)
{
	struct dest_queue *q = arg;
	char name[256];

	q->dns_id = 0;
	if (h->status == DNS_PERMFAIL || h->status == DNS_TEMPFAIL) {
		looked_up(q, name, sizeof(name));
		dest_queue_conn_cause(q, FC_NAME_NOT_FOUND, name, 0);
	}
	switch (h->status) {
	case DNS_OK:
		hosts_ok(q, h);
		break;
	case DNS_NULLMX:
		dns_failed(q, h->why, 1, "5.1.10");
		break;
	case DNS_PERMFAIL:
		dns_failed(q, h->why, 1, "5.1.2");
		break;
	case DNS_TEMPFAIL:
		dns_failed(q, h->why, 0, NULL);
		break;
	}
	resolve_next_hop(q);
}

/* Resolve the queue's next hops one after another, then start. */
static void
resolve_next_hop(struct dest_queue *q)
{
	const struct conf_route *r = q->route.route;
	struct nexthop nh;
	char why[256];

	if (r == NULL) {
		if (q->hop++ == 0) {
			q->dns_id = dns_hosts(q->route.domain, 1, 25,
			    DQ_DNS_TIMEOUT, hosts_cb, q);
			return;
		}
		resolved(q);
		return;
	}
	while (q->hop < r->nhosts) {
		if (nexthop_parse(r->hosts[q->hop++], &nh, why,
		    sizeof(why)) == -1) {
			bsnprintf(q->last_error, sizeof(q->last_error),
			    "route next hop '%s': %s", r->hosts[q->hop - 1],
			    why);
			continue;
		}
		if (nh.kind == NEXTHOP_LMTP_UNIX) {
			add_target(q, nh.host, NULL, 0, 1, nh.host);
			continue;
		}
		q->hop_lmtp = nh.kind == NEXTHOP_LMTP_TCP;
		q->dns_id = dns_hosts(nh.host, nh.mx, nh.port, DQ_DNS_TIMEOUT,
		    hosts_cb, q);
		return;
	}
	resolved(q);
}

/* ------------------------------------------------------- the driver */

/* The resolver (MX lookups) and the client TLS contexts. */
static int
remote_init(struct event_base *base, const struct conf *conf,
    delivery_alert_cb alert, char *why, size_t whylen)
{
	char w[512];

	dconf = conf;
	if (dns_init(base, conf, w, sizeof(w)) == -1)
		log_warnx("queue manager: %s; delivery by MX will fail", w);
	return smtp_conn_init(base, conf, alert, why, whylen);
}

static struct dq_item *
item_new(const struct delivery_request *rq)
{
	struct dq_item *it = xcalloc(1, sizeof(*it));
	size_t i;

	it->mid = rq->mid;
	it->env = rq->env;
	it->n = rq->nrids;
	it->res = xcalloc(rq->nrids, sizeof(*it->res));
	for (i = 0; i < rq->nrids; i++) {
		it->res[i].rid = rq->rids[i];
		it->res[i].outcome = DELIVERY_DEFERRED;
	}
	it->done = rq->done;
	it->arg = rq->arg;
	return it;
}

/* Map the spool content for the connections.  0, or -1 when the item was
 * finished (deferred). */
static int
item_map(struct dq_item *it, int fd)
{
	void *p;

	it->len = it->env->msg_size;
	if (it->len == 0) {
		it->data = "";
		return 0;
	}
	p = mmap(NULL, it->len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		it->data = NULL;
		item_all(it, DELIVERY_DEFERRED, "cannot map the spool file",
		    NULL, NULL);
		dest_queue_finish(it, NULL);
		return -1;
	}
	it->data = p;
	return 0;
}

/* May finish the request at once (no next hop, no map): the scheduler is
 * ready for a callback from inside this call. */
static void
remote_submit(const struct delivery_request *rq)
{
	struct dq_item *it = item_new(rq);
	struct dest_queue *q;

	if (item_map(it, rq->fd) == -1)
		return;
	q = dq_get(&rq->routes[rq->rids[0]]);
	*q->tailp = it;
	q->tailp = &it->next;
	q->nitems++;
	if (!q->started) {
		q->started = 1;
		resolve_next_hop(q);
	} else
		dest_queue_kick(q);
}

/* Close every connection, free every queue and waiting item (no
 * callbacks), stop the resolver. */
static void
remote_shutdown(void)
{
	struct dq_item *it;

	smtp_conn_shutdown();
	while (dqs != NULL) {
		while ((it = dest_queue_pop(dqs)) != NULL)
			dest_queue_drop(it);
		dq_free(dqs);
	}
	dns_shutdown();
}

const struct delivery_driver delivery_remote = {
	"remote", remote_init, remote_submit, NULL, remote_shutdown
};
