/*
 * dns.c - libunbound wrapper (see dns.h).
 *
 * A reverse lookup is two steps: PTR of the address, then A or AAAA of the
 * first name, "verified" when that name maps back to the address (the
 * forward-confirmed reverse DNS Postfix and Cisco report).  Each request
 * has a deadline timer; at the deadline its query is cancelled
 * (ub_cancel) and the answer is "unknown".  Requests are found by id, never
 * through a pointer handed to libunbound.
 *
 * A next-hop lookup (dns_hosts) is one MX query (unless the hop is direct),
 * (dns_mx stops there: the names of the MX hosts, for `postern probe`),
 * then A and AAAA of every host at once, each query with its own id as
 * libunbound's cookie.  It finishes when nothing is pending or at its one
 * deadline; whatever is still pending then is cancelled and counts as
 * timed out.  Memory per request: the request and at most DNS_MAX_HOSTS
 * hosts; of an MX answer the first MX_MAX_RRS records are read.
 *
 * A TXT lookup (dns_txt) is one query with its deadline; its answer
 * keeps at most DNS_MAX_TXT records.
 *
 * Local answers: resolver.local_data goes in with ub_ctx_data_add(),
 * which puts each owner name in a transparent local zone (its own, or an
 * enclosing one from an earlier record), so a type the name has no data
 * for (AAAA of a host given only an A, MX of a name given only an A) is
 * answered NODATA locally, never asked of the network (libunbound 1.17,
 * checked with no forwarder and no network).  Names under libunbound's
 * default local zones (localhost, test, invalid, onion, ...) are
 * answered locally too (NXDOMAIN unless local data says otherwise).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define RR_A		1
#define RR_PTR		12
#define RR_MX		15
#define RR_AAAA		28
#define RR_TXT		16
#define CLASS_IN	1
#define RCODE_NXDOMAIN	3

/* Answers are kept RDNS_CACHE_TTL seconds (direct-mapped by address), so
 * a client that connects again and again costs no lookup; timeouts are
 * not kept. */
#define RDNS_CACHE	1024
#define RDNS_CACHE_TTL	60.0

struct rdns_cached {
	int		family;		/* 0 = empty */
	unsigned char	addr[16];
	char		host[256];
	int		verified;
	double		expires;
};

struct rdns_req {
	unsigned long	 id;
	int		 family;
	unsigned char	 addr[16];
	int		 ub_id;		/* pending query, -1 none */
	int		 step;		/* 0 PTR, 1 forward */
	char		 host[256];
	struct event	*timer;
	struct event	*done_ev;	/* deferred callback */
	int		 verified;
	int		 uncacheable;
	dns_rdns_cb	 cb;
	void		*arg;
	struct rdns_req	*next;
};

/* Next-hop lookups: the two address queries of one host. */
#define FAM_V6		0	/* AAAA */
#define FAM_V4		1	/* A */
#define MX_MAX_RRS	256

enum lookup { LK_PENDING, LK_DATA, LK_NODATA, LK_NXDOMAIN, LK_FAIL };

struct host_q {
	unsigned long	 qid[2];	/* cookies, by FAM_* */
	int		 ub_id[2];	/* pending query, -1 none */
	enum lookup	 st[2];
	const char	*err[2];	/* LK_FAIL: static text */
	size_t		 n6;		/* IPv6 addresses at the front */
};

struct hosts_req {
	unsigned long	 id;
	char		 name[256];
	int		 port;
	int		 explicit_mx;	/* hosts come from MX records */
	int		 mx_only;	/* dns_mx: no address lookups */
	int		 implicit_mx;	/* the host is the implicit MX */
	unsigned long	 mx_qid;
	int		 ub_mx;		/* pending MX query, -1 none */
	struct dns_host	*hosts;		/* nhosts, in the order to try */
	struct host_q	*q;		/* their queries */
	size_t		 nhosts;
	int		 decided;	/* res.status and why are final */
	int		 finished;
	struct dns_hosts res;
	struct event	*timer;
	struct event	*done_ev;	/* deferred callback */
	dns_hosts_cb	 cb;
	void		*arg;
	struct hosts_req *next;
};

/* One MX record while sorting. */
struct mx_rr {
	char		 name[256];
	int		 pref;
	long		 key;		/* random order within a preference */
};

static struct ub_ctx	*ub;
static struct event	*ub_ev;
static struct event_base *dbase;
static struct rdns_req	*reqs;
static unsigned long	 next_id = 1;
static struct rdns_cached *rcache;
static struct hosts_req	*hreqs;

/* A TXT lookup: one query under one deadline. */
struct txt_req {
	unsigned long	 id;
	int		 ub_id;		/* pending query, -1 none */
	struct dns_txt	 res;
	struct event	*timer;
	struct event	*done_ev;	/* deferred callback */
	dns_txt_cb	 cb;
	void		*arg;
	struct txt_req	*next;
};

static struct txt_req	*treqs;

static struct rdns_cached *
cache_slot(int family, const unsigned char *addr)
{
	unsigned h = 2166136261u;
	int i;

	if (rcache == NULL)
		rcache = xcalloc(RDNS_CACHE, sizeof(*rcache));
	for (i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	(void)family;
	return &rcache[h % RDNS_CACHE];
}

static void
ub_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	if (ub_process(ub) != 0)
		log_warnx("dns: ub_process failed");
}

int
dns_init(struct event_base *base, const struct conf *conf, char *why,
    size_t whylen)
{
	size_t i;
	int r;

	dbase = base;
	if ((ub = ub_ctx_create()) == NULL) {
		bsnprintf(why, whylen, "cannot create the resolver");
		return -1;
	}
	/* Threads, not a forked helper: we are already a worker process. */
	ub_ctx_async(ub, 1);
	if ((r = ub_ctx_hosts(ub, NULL)) != 0)
		log_warnx("dns: /etc/hosts not used: %s", ub_strerror(r));
	if ((r = ub_ctx_resolvconf(ub, NULL)) != 0)
		log_warnx("dns: /etc/resolv.conf not used (%s); resolving from "
		    "the root servers", ub_strerror(r));
	for (i = 0; i < conf->nresolver_local_data; i++)
		if ((r = ub_ctx_data_add(ub, conf->resolver_local_data[i])) != 0)
			log_warnx("dns: resolver.local_data '%s' refused: %s",
			    conf->resolver_local_data[i], ub_strerror(r));
	ub_ev = event_new(base, ub_fd(ub), EV_READ | EV_PERSIST, ub_ready_cb,
	    NULL);
	if (ub_ev == NULL || event_add(ub_ev, NULL) == -1) {
		bsnprintf(why, whylen, "cannot watch the resolver");
		return -1;
	}
	return 0;
}

static struct rdns_req *
find_req(unsigned long id)
{
	struct rdns_req *r;

	for (r = reqs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void
req_free(struct rdns_req *r)
{
	struct rdns_req **pp;

	for (pp = &reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->ub_id != -1 && ub)
		ub_cancel(ub, r->ub_id);
	if (r->timer)
		event_free(r->timer);
	if (r->done_ev)
		event_free(r->done_ev);
	free(r);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rdns_req *r = find_req((unsigned long)(uintptr_t)arg);
	char host[256];
	dns_rdns_cb cb;
	void *cbarg;
	int verified;

	if (r == NULL)
		return;
	bstrlcpy(host, r->host[0] ? r->host : "unknown", sizeof(host));
	verified = r->verified;
	if (!r->uncacheable) {
		struct rdns_cached *c = cache_slot(r->family, r->addr);
		c->family = r->family;
		memcpy(c->addr, r->addr, 16);
		bstrlcpy(c->host, r->host, sizeof(c->host));
		c->verified = r->verified;
		c->expires = mono_now() + RDNS_CACHE_TTL;
	}
	cb = r->cb;
	cbarg = r->arg;
	req_free(r);
	cb(cbarg, host, verified);
}

/* Finish a request from the event loop (never inside the caller). */
static void
finish(struct rdns_req *r)
{
	if (r->ub_id != -1) {
		ub_cancel(ub, r->ub_id);
		r->ub_id = -1;
	}
	event_del(r->timer);
	event_active(r->done_ev, EV_TIMEOUT, 0);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rdns_req *r = find_req((unsigned long)(uintptr_t)arg);

	if (r == NULL)
		return;
	log_debug("dns: reverse lookup timed out");
	r->uncacheable = 1;
	r->host[0] = '\0';
	r->verified = 0;
	finish(r);
}

/* Wire-format name (RFC 1035 3.1) to text without the final dot (see
 * dns.h). */
int
dns_wire_name(const unsigned char *p, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	while (i < len && p[i] != 0) {
		size_t l = p[i++];
		if (l > 63 || i + l > len || o + l + 2 > outlen)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (; l > 0; l--, i++) {
			unsigned char c = p[i];
			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -1;	/* not a host name we log */
			out[o++] = (char)c;
		}
	}
	if (o == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* MX rdata (RFC 1035 3.3.9): preference, then the target's wire-format
 * name; "" for the root (RFC 7505 null MX) (see dns.h). */
int
dns_parse_mx_rdata(const unsigned char *d, size_t len, int *pref, char *name,
    size_t namelen)
{
	if (len < 3 || namelen == 0)
		return -1;
	if (d[2] == 0) {
		*pref = d[0] << 8 | d[1];
		name[0] = '\0';
		return 0;
	}
	if (dns_wire_name(d + 2, len - 2, name, namelen) == -1)
		return -1;
	*pref = d[0] << 8 | d[1];
	return 0;
}

static void query_forward(struct rdns_req *);

static void
answer_cb(void *arg, int err, struct ub_result *res)
{
	struct rdns_req *r = find_req((unsigned long)(uintptr_t)arg);
	int i;

	if (r == NULL) {
		if (res)
			ub_resolve_free(res);
		return;
	}
	r->ub_id = -1;
	if (err != 0 || res == NULL || !res->havedata) {
		if (r->step == 0)
			r->host[0] = '\0';
		goto out;
	}
	if (r->step == 0) {
		if (dns_wire_name((unsigned char *)res->data[0],
		    (size_t)res->len[0], r->host, sizeof(r->host)) == -1)
			r->host[0] = '\0';
		else {
			r->step = 1;
			ub_resolve_free(res);
			query_forward(r);
			return;
		}
	} else {
		size_t alen = r->family == AF_INET ? 4 : 16;
		for (i = 0; res->data[i]; i++)
			if ((size_t)res->len[i] == alen &&
			    memcmp(res->data[i], r->addr, alen) == 0)
				r->verified = 1;
	}
out:
	if (res)
		ub_resolve_free(res);
	finish(r);
}

static void
query_forward(struct rdns_req *r)
{
	if (ub_resolve_async(ub, r->host, r->family == AF_INET ? RR_A : RR_AAAA,
	    CLASS_IN, (void *)(uintptr_t)r->id, answer_cb, &r->ub_id) != 0) {
		r->ub_id = -1;
		finish(r);
	}
}

static void
ptr_name(const struct rdns_req *r, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	int i;

	if (r->family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa.", r->addr[3],
		    r->addr[2], r->addr[1], r->addr[0]);
		return;
	}
	for (i = 15; i >= 0 && o + 4 < len; i--) {
		buf[o++] = hex[r->addr[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = hex[r->addr[i] >> 4];
		buf[o++] = '.';
	}
	buf[o] = '\0';
	strncat(buf, "ip6.arpa.", len - o - 1);
}

unsigned long
dns_rdns(const struct sockaddr *sa, double timeout, dns_rdns_cb cb,
    void *arg)
{
	struct rdns_req *r = xcalloc(1, sizeof(*r));
	const struct sockaddr_in6 *s6;
	struct rdns_cached *c;
	struct timeval tv;
	char name[128];

	r->id = next_id++;
	r->ub_id = -1;
	r->cb = cb;
	r->arg = arg;
	r->timer = evtimer_new(dbase, timeout_cb, (void *)(uintptr_t)r->id);
	r->done_ev = event_new(dbase, -1, 0, done_cb, (void *)(uintptr_t)r->id);
	if (r->timer == NULL || r->done_ev == NULL)
		fatalx("out of memory for a DNS request");
	r->next = reqs;
	reqs = r;
	if (sa->sa_family == AF_INET) {
		r->family = AF_INET;
		memcpy(r->addr, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
	} else {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			r->family = AF_INET;
			memcpy(r->addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			r->family = AF_INET6;
			memcpy(r->addr, s6->sin6_addr.s6_addr, 16);
		}
	}
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	event_add(r->timer, &tv);
	c = cache_slot(r->family, r->addr);
	if (c->family == r->family && memcmp(c->addr, r->addr, 16) == 0 &&
	    c->expires > mono_now()) {
		bstrlcpy(r->host, c->host, sizeof(r->host));
		r->verified = c->verified;
		r->uncacheable = 1;	/* nothing new to cache */
		finish(r);
		return r->id;
	}
	ptr_name(r, name, sizeof(name));
	if (ub == NULL || ub_resolve_async(ub, name, RR_PTR, CLASS_IN,
	    (void *)(uintptr_t)r->id, answer_cb, &r->ub_id) != 0) {
		r->ub_id = -1;
		finish(r);
	}
	return r->id;
}

/* ---- next-hop hosts --------------------------------------------------- */

static struct hosts_req *
find_hreq(unsigned long id)
{
	struct hosts_req *r;

	for (r = hreqs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* The request and host (-1 for the MX query) a query cookie belongs to. */
static struct hosts_req *
find_query(unsigned long qid, size_t *hostp, int *famp)
{
	struct hosts_req *r;
	size_t i;
	int f;

	for (r = hreqs; r; r = r->next) {
		if (r->mx_qid == qid && r->ub_mx != -1) {
			*famp = -1;
			return r;
		}
		for (i = 0; i < r->nhosts; i++)
			for (f = 0; f < 2; f++)
				if (r->q[i].qid[f] == qid &&
				    r->q[i].ub_id[f] != -1) {
					*hostp = i;
					*famp = f;
					return r;
				}
	}
	return NULL;
}

static void
hreq_cancel_queries(struct hosts_req *r)
{
	size_t i;
	int f;

	if (r->ub_mx != -1) {
		if (ub)
			ub_cancel(ub, r->ub_mx);
		r->ub_mx = -1;
	}
	for (i = 0; i < r->nhosts; i++)
		for (f = 0; f < 2; f++)
			if (r->q[i].ub_id[f] != -1) {
				if (ub)
					ub_cancel(ub, r->q[i].ub_id[f]);
				r->q[i].ub_id[f] = -1;
			}
}

/* Unlink (if linked), cancel what is pending and free. */
static void
hreq_free(struct hosts_req *r)
{
	struct hosts_req **pp;

	for (pp = &hreqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	hreq_cancel_queries(r);
	if (r->timer)
		event_free(r->timer);
	if (r->done_ev)
		event_free(r->done_ev);
	free(r->hosts);
	free(r->q);
	free(r);
}

static void
hosts_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hosts_req *r = find_hreq((unsigned long)(uintptr_t)arg);
	struct hosts_req **pp;

	if (r == NULL)
		return;
	/* Unlinked first: dns_cancel(id) from the callback is a no-op. */
	for (pp = &hreqs; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	r->next = NULL;
	r->cb(r->arg, &r->res);
	hreq_free(r);
}

/* The final answer, unless already decided: see dns.h. */
static void
hosts_decide(struct hosts_req *r, enum dns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
hosts_decide(struct hosts_req *r, enum dns_status st, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->decided)
		return;
	r->decided = 1;
	r->res.status = st;
	va_start(ap, fmt);
	n = vsnprintf(r->res.why, sizeof(r->res.why), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(r->res.why))
		memcpy(r->res.why + sizeof(r->res.why) - 4, "...", 4);
}

/* Short state of a host that has no address, for the list in a why. */
static const char *
host_state(const struct host_q *q)
{
	if (q->st[FAM_V4] == LK_PENDING || q->st[FAM_V6] == LK_PENDING)
		return "timed out";
	if (q->st[FAM_V4] == LK_NXDOMAIN && q->st[FAM_V6] == LK_NXDOMAIN)
		return "NXDOMAIN";
	if (q->st[FAM_V4] == LK_FAIL)
		return q->err[FAM_V4];
	if (q->st[FAM_V6] == LK_FAIL)
		return q->err[FAM_V6];
	return "no A or AAAA record";
}

/* No host has an address: say why, host by host. */
static void
hosts_why_none(struct hosts_req *r)
{
	struct strbuf sb = STRBUF_INIT;
	enum dns_status st = DNS_PERMFAIL;
	const struct host_q *q;
	const char *what, *name = r->name;
	size_t i;
	int f, pending = 0;

	for (i = 0; i < r->nhosts; i++)
		for (f = 0; f < 2; f++) {
			if (r->q[i].st[f] != LK_NXDOMAIN)
				st = DNS_TEMPFAIL;
			if (r->q[i].st[f] == LK_PENDING)
				pending = 1;
		}
	if (r->nhosts == 0) {
		hosts_decide(r, DNS_TEMPFAIL, "no usable host for %s", name);
		return;
	}
	if (r->explicit_mx) {
		strbuf_printf(&sb, pending ? "DNS lookup of the MX hosts of %s "
		    "timed out (" : "no MX host of %s has an address (", name);
		for (i = 0; i < r->nhosts; i++)
			strbuf_printf(&sb, "%s%s: %s", i ? "; " : "",
			    r->hosts[i].name, host_state(&r->q[i]));
		strbuf_putc(&sb, ')');
		hosts_decide(r, st, "%s", sb.s);
		strbuf_free(&sb);
		return;
	}
	q = &r->q[0];
	what = host_state(q);
	if (q->st[FAM_V4] == LK_PENDING || q->st[FAM_V6] == LK_PENDING)
		hosts_decide(r, st, "DNS lookup of the address of %s timed out",
		    name);
	else if (strcmp(what, "NXDOMAIN") == 0)
		hosts_decide(r, st, "%s %s does not exist (NXDOMAIN)",
		    r->implicit_mx ? "domain" : "host", name);
	else if (q->st[FAM_V4] == LK_FAIL || q->st[FAM_V6] == LK_FAIL)
		hosts_decide(r, st, "DNS lookup of the address of %s failed "
		    "(%s)", name, what);
	else
		hosts_decide(r, st, "no %sA or AAAA record for %s",
		    r->implicit_mx ? "MX, " : "", name);
}

/* Drop the hosts without an address; decide. */
static void
hosts_result(struct hosts_req *r)
{
	size_t i, n = 0;

	if (r->decided)
		return;
	if (r->mx_only && r->nhosts > 0) {	/* dns_mx: names only */
		r->decided = 1;
		r->res.status = DNS_OK;
		r->res.hosts = r->hosts;
		r->res.nhosts = r->nhosts;
		return;
	}
	for (i = 0; i < r->nhosts; i++)
		if (r->hosts[i].naddrs > 0)
			n++;
	if (n == 0) {
		hosts_why_none(r);
		return;
	}
	for (i = 0, n = 0; i < r->nhosts; i++)
		if (r->hosts[i].naddrs > 0) {
			if (n != i)
				r->hosts[n] = r->hosts[i];
			n++;
		}
	r->decided = 1;
	r->res.status = DNS_OK;
	r->res.hosts = r->hosts;
	r->res.nhosts = n;
}

/* Finish from the event loop: cancel what is pending, decide, deliver. */
static void
hosts_finish(struct hosts_req *r)
{
	if (r->finished)
		return;
	r->finished = 1;
	hreq_cancel_queries(r);
	event_del(r->timer);
	hosts_result(r);
	if (r->res.status != DNS_OK)
		r->res.nhosts = 0;
	log_debug("dns: hosts of %s: %s%s%s", r->name,
	    r->res.status == DNS_OK ? "ok" : r->res.status == DNS_NULLMX ?
	    "null MX" : r->res.status == DNS_PERMFAIL ? "permanent failure" :
	    "temporary failure", r->res.status == DNS_OK ? "" : ": ",
	    r->res.status == DNS_OK ? "" : r->res.why);
	event_active(r->done_ev, EV_TIMEOUT, 0);
}

static int
hosts_pending(const struct hosts_req *r)
{
	size_t i;

	if (r->ub_mx != -1)
		return 1;
	for (i = 0; i < r->nhosts; i++)
		if (r->q[i].ub_id[0] != -1 || r->q[i].ub_id[1] != -1)
			return 1;
	return 0;
}

static void
hosts_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hosts_req *r = find_hreq((unsigned long)(uintptr_t)arg);

	if (r == NULL || r->finished)
		return;
	if (r->ub_mx != -1)
		hosts_decide(r, DNS_TEMPFAIL, "DNS lookup of MX for %s timed "
		    "out", r->name);
	hosts_finish(r);
}

static void
set_addr(struct dns_addr *a, int family, const void *raw, int port)
{
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;

	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		sin = (struct sockaddr_in *)(void *)&a->ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, raw, 4);
		a->len = sizeof(*sin);
	} else {
		sin6 = (struct sockaddr_in6 *)(void *)&a->ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, raw, 16);
		a->len = sizeof(*sin6);
	}
}

/*
 * Merge the addresses of one family's answer into the host: IPv6 first,
 * at most DNS_MAX_ADDRS in all, each family keeping
 * min(its count, DNS_MAX_ADDRS / 2) places when the other has more.
 */
static void
host_add_addrs(struct hosts_req *r, size_t hi, int fam,
    const struct ub_result *res)
{
	struct dns_host *h = &r->hosts[hi];
	struct host_q *q = &r->q[hi];
	struct dns_addr fresh[DNS_MAX_ADDRS], merged[DNS_MAX_ADDRS];
	size_t alen = fam == FAM_V6 ? 16 : 4, k = 0, m, keep, take, n = 0, i;
	int family = fam == FAM_V6 ? AF_INET6 : AF_INET;

	for (i = 0; res->data[i] != NULL && k < DNS_MAX_ADDRS; i++)
		if ((size_t)res->len[i] == alen)
			set_addr(&fresh[k++], family, res->data[i], r->port);
	if (k == 0)
		return;
	m = fam == FAM_V6 ? h->naddrs - q->n6 : q->n6;	/* the other family */
	keep = DNS_MAX_ADDRS - k > DNS_MAX_ADDRS / 2 ? DNS_MAX_ADDRS - k :
	    DNS_MAX_ADDRS / 2;
	if (keep > m)
		keep = m;
	take = k < DNS_MAX_ADDRS - keep ? k : DNS_MAX_ADDRS - keep;
	if (fam == FAM_V6) {
		for (i = 0; i < take; i++)
			merged[n++] = fresh[i];
		for (i = 0; i < keep; i++)
			merged[n++] = h->addrs[q->n6 + i];
		q->n6 = take;
	} else {
		for (i = 0; i < keep; i++)
			merged[n++] = h->addrs[i];
		for (i = 0; i < take; i++)
			merged[n++] = fresh[i];
		q->n6 = keep;
	}
	memcpy(h->addrs, merged, n * sizeof(merged[0]));
	h->naddrs = n;
}

static const char *
rcode_text(int rcode)
{
	static const char *const names[] = { "NOERROR", "FORMERR",
	    "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED" };

	if (rcode >= 0 && rcode < (int)(sizeof(names) / sizeof(names[0])))
		return names[rcode];
	return "DNS error";
}

/* How a query ended; *err is static text for LK_FAIL. */
static enum lookup
classify(int err, const struct ub_result *res, const char **errp)
{
	if (err != 0) {
		*errp = ub_strerror(err);
		return LK_FAIL;
	}
	if (res == NULL) {
		*errp = "no answer";
		return LK_FAIL;
	}
	if (res->rcode == RCODE_NXDOMAIN)
		return LK_NXDOMAIN;
	if (res->rcode != 0) {
		*errp = rcode_text(res->rcode);
		return LK_FAIL;
	}
	if (res->bogus) {
		*errp = "DNSSEC validation failed";
		return LK_FAIL;
	}
	return res->havedata ? LK_DATA : LK_NODATA;
}

static void
addr_cb(void *arg, int err, struct ub_result *res)
{
	struct hosts_req *r;
	struct host_q *q;
	size_t hi = 0;
	int fam = -1;

	r = find_query((unsigned long)(uintptr_t)arg, &hi, &fam);
	if (r == NULL || fam < 0) {
		if (res)
			ub_resolve_free(res);
		return;
	}
	q = &r->q[hi];
	q->ub_id[fam] = -1;
	q->st[fam] = classify(err, res, &q->err[fam]);
	if (q->st[fam] == LK_DATA)
		host_add_addrs(r, hi, fam, res);
	if (res)
		ub_resolve_free(res);
	if (!hosts_pending(r))
		hosts_finish(r);
}

/* A and AAAA of every host, all at once. */
static void
hosts_start_addrs(struct hosts_req *r)
{
	struct host_q *q;
	size_t i;
	int f;

	for (i = 0; i < r->nhosts; i++) {
		q = &r->q[i];
		for (f = 0; f < 2; f++) {
			q->qid[f] = next_id++;
			q->st[f] = LK_PENDING;
			if (ub_resolve_async(ub, r->hosts[i].name,
			    f == FAM_V6 ? RR_AAAA : RR_A, CLASS_IN,
			    (void *)(uintptr_t)q->qid[f], addr_cb,
			    &q->ub_id[f]) != 0) {
				q->ub_id[f] = -1;
				q->st[f] = LK_FAIL;
				q->err[f] = "the resolver refused the query";
			}
		}
	}
	if (!hosts_pending(r))
		hosts_finish(r);
}

/* Room for n hosts, their queries not started. */
static void
hosts_alloc(struct hosts_req *r, size_t n)
{
	size_t i;

	r->hosts = xcalloc(n, sizeof(*r->hosts));
	r->q = xcalloc(n, sizeof(*r->q));
	r->nhosts = n;
	for (i = 0; i < n; i++)
		r->q[i].ub_id[0] = r->q[i].ub_id[1] = -1;
}

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_rr *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/*
 * The MX answer into hosts: RFC 5321 5.1 order, duplicates (same target)
 * kept once at their best preference, "." targets ignored unless they are
 * all there is (RFC 7505 null MX).  0, or -1 when decided otherwise.
 */
static int
mx_hosts(struct hosts_req *r, const struct ub_result *res)
{
	struct mx_rr *rr;
	size_t n = 0, i, j, nrr;
	int nroot = 0, pref;
	char name[256];

	for (nrr = 0; res->data[nrr] != NULL && nrr < MX_MAX_RRS; nrr++)
		;
	rr = xcalloc(nrr, sizeof(*rr));
	for (i = 0; i < nrr; i++) {
		if (res->len[i] < 0 || dns_parse_mx_rdata((const unsigned char *)
		    res->data[i], (size_t)res->len[i], &pref, name,
		    sizeof(name)) == -1)
			continue;
		if (name[0] == '\0') {
			nroot++;
			continue;
		}
		for (j = 0; j < n; j++)
			if (ascii_casecmp(rr[j].name, name) == 0)
				break;
		if (j < n) {
			if (pref < rr[j].pref)
				rr[j].pref = pref;
			continue;
		}
		bstrlcpy(rr[n].name, name, sizeof(rr[n].name));
		rr[n].pref = pref;
		rr[n].key = random();
		n++;
	}
	if (n == 0) {
		free(rr);
		if (nroot > 0)
			hosts_decide(r, DNS_NULLMX, "%s publishes a null MX "
			    "(RFC 7505): it accepts no mail", r->name);
		else
			hosts_decide(r, DNS_TEMPFAIL, "the MX records of %s "
			    "are malformed", r->name);
		return -1;
	}
	qsort(rr, n, sizeof(*rr), mx_cmp);
	if (n > DNS_MAX_HOSTS)
		n = DNS_MAX_HOSTS;
	hosts_alloc(r, n);
	for (i = 0; i < n; i++) {
		bstrlcpy(r->hosts[i].name, rr[i].name,
		    sizeof(r->hosts[i].name));
		r->hosts[i].pref = rr[i].pref;
	}
	free(rr);
	r->explicit_mx = 1;
	return 0;
}

static void
mx_cb(void *arg, int err, struct ub_result *res)
{
	struct hosts_req *r;
	const char *why = NULL;
	size_t hi;
	int fam = 0;

	r = find_query((unsigned long)(uintptr_t)arg, &hi, &fam);
	if (r == NULL || fam != -1) {
		if (res)
			ub_resolve_free(res);
		return;
	}
	r->ub_mx = -1;
	switch (classify(err, res, &why)) {
	case LK_NXDOMAIN:
		hosts_decide(r, DNS_PERMFAIL, "domain %s does not exist "
		    "(NXDOMAIN)", r->name);
		break;
	case LK_FAIL:
		hosts_decide(r, DNS_TEMPFAIL, "DNS lookup of MX for %s failed "
		    "(%s)", r->name, why);
		break;
	case LK_NODATA:
		hosts_alloc(r, 1);
		bstrlcpy(r->hosts[0].name, r->name, sizeof(r->hosts[0].name));
		r->implicit_mx = 1;
		break;
	default:
		(void)mx_hosts(r, res);
		break;
	}
	if (res)
		ub_resolve_free(res);
	if (r->decided || r->mx_only)
		hosts_finish(r);
	else
		hosts_start_addrs(r);
}

/* An IPv4 or IPv6 address, maybe as a domain literal ("[...]",
 * "[IPv6:...]"): the one host, with its address.  0, or -1 if not one. */
static int
hosts_literal(struct hosts_req *r)
{
	unsigned char a[16];
	char text[256];
	const char *s = r->name;
	size_t len = strlen(s);
	int family;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len > 5 && ascii_ncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
		}
	}
	if (len >= sizeof(text))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, text, a) == 1)
		family = AF_INET6;
	else
		return -1;
	hosts_alloc(r, 1);
	bstrlcpy(r->hosts[0].name, text, sizeof(r->hosts[0].name));
	set_addr(&r->hosts[0].addrs[0], family, a, r->port);
	r->hosts[0].naddrs = 1;
	r->q[0].st[0] = r->q[0].st[1] = LK_DATA;
	return 0;
}

/* Something we may put in a query and in a message. */
static int
plausible_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

unsigned long
dns_hosts(const char *name, int mx, int port, double timeout,
    dns_hosts_cb cb, void *arg)
{
	struct hosts_req *r = xcalloc(1, sizeof(*r));
	struct timeval tv;
	size_t len;

	r->id = next_id++;
	r->ub_mx = -1;
	r->port = port;
	r->cb = cb;
	r->arg = arg;
	r->timer = evtimer_new(dbase, hosts_timeout_cb,
	    (void *)(uintptr_t)r->id);
	r->done_ev = event_new(dbase, -1, 0, hosts_done_cb,
	    (void *)(uintptr_t)r->id);
	if (r->timer == NULL || r->done_ev == NULL)
		fatalx("out of memory for a DNS request");
	r->next = hreqs;
	hreqs = r;
	if (timeout < 0)
		timeout = 0;
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	event_add(r->timer, &tv);

	len = bstrlcpy(r->name, name, sizeof(r->name));
	if (len > 1 && len < sizeof(r->name) && r->name[len - 1] == '.')
		r->name[len - 1] = '\0';
	if (len >= sizeof(r->name) || !plausible_name(r->name)) {
		bsnprintf(r->name, sizeof(r->name), "(invalid)");
		hosts_decide(r, DNS_PERMFAIL, "not a host name");
	} else if (hosts_literal(r) == 0)
		;
	else if (ub == NULL)
		hosts_decide(r, DNS_TEMPFAIL, "cannot look up %s: the DNS "
		    "resolver did not start", r->name);
	else if (!mx) {
		hosts_alloc(r, 1);
		bstrlcpy(r->hosts[0].name, r->name, sizeof(r->hosts[0].name));
		hosts_start_addrs(r);
		return r->id;
	} else {
		r->mx_qid = next_id++;
		if (ub_resolve_async(ub, r->name, RR_MX, CLASS_IN,
		    (void *)(uintptr_t)r->mx_qid, mx_cb, &r->ub_mx) == 0)
			return r->id;
		r->ub_mx = -1;
		hosts_decide(r, DNS_TEMPFAIL, "DNS lookup of MX for %s failed "
		    "(the resolver refused the query)", r->name);
	}
	hosts_finish(r);
	return r->id;
}

/* The MX names of a domain, without addresses. */
unsigned long
dns_mx(const char *domain, double timeout, dns_hosts_cb cb, void *arg)
{
	unsigned long id;
	struct hosts_req *r;

	/* the MX query of dns_hosts, stopped before the addresses: mark the
	 * request before its first answer can come (answers come from the
	 * loop, never from inside dns_hosts) */
	id = dns_hosts(domain, 1, 25, timeout, cb, arg);
	if ((r = find_hreq(id)) != NULL)
		r->mx_only = 1;
	return id;
}

/* ---- TXT ---------------------------------------------------------- */

/* TXT rdata: length-prefixed strings, joined (see dns.h). */
int
dns_parse_txt_rdata(const unsigned char *d, size_t len, char *out,
    size_t outlen)
{
	size_t i = 0, o = 0, n, k;

	if (len == 0 || outlen == 0)
		return -1;
	while (i < len) {
		n = d[i++];
		if (n > len - i)
			return -1;
		for (k = 0; k < n; k++, o++)
			if (o + 1 < outlen)
				out[o] = (char)d[i + k];
		i += n;
	}
	out[o + 1 < outlen ? o : outlen - 1] = '\0';
	return o > (size_t)0x7fffffff ? -1 : (int)o;
}

static struct txt_req *
find_treq(unsigned long id)
{
	struct txt_req *t;

	for (t = treqs; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static void
treq_free(struct txt_req *t)
{
	struct txt_req **pp;
	size_t i;

	for (pp = &treqs; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->ub_id != -1 && ub)
		ub_cancel(ub, t->ub_id);
	if (t->timer)
		event_free(t->timer);
	if (t->done_ev)
		event_free(t->done_ev);
	for (i = 0; i < t->res.ntxt; i++)
		free(t->res.txt[i]);
	free(t);
}

static void
txt_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct txt_req *t = find_treq((unsigned long)(uintptr_t)arg);

	if (t == NULL)
		return;
	t->cb(t->arg, &t->res);
	treq_free(t);
}

/* Settle the answer and run the callback from the loop. */
static void
txt_finish(struct txt_req *t, enum dns_status st, const char *fmt, ...)
{
	va_list ap;

	if (t->ub_id != -1) {
		ub_cancel(ub, t->ub_id);
		t->ub_id = -1;
	}
	t->res.status = st;
	if (fmt != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(t->res.why, sizeof(t->res.why), fmt, ap);
		va_end(ap);
	}
	event_del(t->timer);
	event_active(t->done_ev, EV_TIMEOUT, 0);
}

static void
txt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct txt_req *t = find_treq((unsigned long)(uintptr_t)arg);

	if (t != NULL)
		txt_finish(t, DNS_TEMPFAIL, "the DNS lookup timed out");
}

static void
txt_answer_cb(void *arg, int err, struct ub_result *res)
{
	struct txt_req *t = find_treq((unsigned long)(uintptr_t)arg);
	const char *why = NULL;
	char *buf;
	int i, n;

	if (t == NULL) {
		if (res)
			ub_resolve_free(res);
		return;
	}
	t->ub_id = -1;
	switch (classify(err, res, &why)) {
	case LK_NXDOMAIN:
		t->res.nxdomain = 1;
		txt_finish(t, DNS_PERMFAIL, "the name does not exist "
		    "(NXDOMAIN)");
		break;
	case LK_NODATA:
		txt_finish(t, DNS_PERMFAIL, "the name has no TXT record");
		break;
	case LK_FAIL:
		txt_finish(t, DNS_TEMPFAIL, "the DNS lookup failed (%s)", why);
		break;
	default:
		for (i = 0; res->data[i] && t->res.ntxt < DNS_MAX_TXT; i++) {
			buf = xmalloc(DNS_TXT_MAX);
			n = dns_parse_txt_rdata((unsigned char *)res->data[i],
			    (size_t)res->len[i], buf, DNS_TXT_MAX);
			if (n < 0) {
				free(buf);
				continue;
			}
			t->res.txt[t->res.ntxt] = buf;
			t->res.len[t->res.ntxt++] = (size_t)n;
		}
		if (t->res.ntxt > 0)
			txt_finish(t, DNS_OK, NULL);
		else
			txt_finish(t, DNS_TEMPFAIL, "the TXT answer is "
			    "malformed");
		break;
	}
	if (res)
		ub_resolve_free(res);
}

unsigned long
dns_txt(const char *name, double timeout, dns_txt_cb cb, void *arg)
{
	struct txt_req *t = xcalloc(1, sizeof(*t));
	struct timeval tv;

	t->id = next_id++;
	t->ub_id = -1;
	t->cb = cb;
	t->arg = arg;
	t->timer = evtimer_new(dbase, txt_timeout_cb,
	    (void *)(uintptr_t)t->id);
	t->done_ev = event_new(dbase, -1, 0, txt_done_cb,
	    (void *)(uintptr_t)t->id);
	if (t->timer == NULL || t->done_ev == NULL)
		fatalx("out of memory for a DNS request");
	t->next = treqs;
	treqs = t;
	if (timeout < 0)
		timeout = 0;
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	event_add(t->timer, &tv);
	if (!plausible_name(name))
		txt_finish(t, DNS_PERMFAIL, "not a domain name");
	else if (ub == NULL)
		txt_finish(t, DNS_TEMPFAIL, "the DNS resolver did not start");
	else if (ub_resolve_async(ub, name, RR_TXT, CLASS_IN,
	    (void *)(uintptr_t)t->id, txt_answer_cb, &t->ub_id) != 0) {
		t->ub_id = -1;
		txt_finish(t, DNS_TEMPFAIL, "the resolver refused the query");
	}
	return t->id;
}

void
dns_cancel(unsigned long id)
{
	struct rdns_req *r = find_req(id);
	struct hosts_req *h;

	struct txt_req *t;

	if (r)
		req_free(r);
	else if ((h = find_hreq(id)) != NULL)
		hreq_free(h);
	else if ((t = find_treq(id)) != NULL)
		treq_free(t);
}

void
dns_shutdown(void)
{
	while (reqs)
		req_free(reqs);
	while (hreqs)
		hreq_free(hreqs);
	while (treqs)
		treq_free(treqs);
	if (ub_ev) {
		event_free(ub_ev);
		ub_ev = NULL;
	}
	if (ub) {
		ub_ctx_delete(ub);
		ub = NULL;
	}
	free(rcache);
	rcache = NULL;
	dbase = NULL;
}
