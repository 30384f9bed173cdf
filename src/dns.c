/*
 * dns.c - libunbound wrapper (see dns.h).
 *
 * A reverse lookup is two steps: PTR of the address, then A or AAAA of the
 * first name, "verified" when that name maps back to the address (the
 * forward-confirmed reverse DNS Postfix and Cisco report).  Each request
 * has a deadline timer; at the deadline its query is cancelled
 * (ub_cancel) and the answer is "unknown".  Requests are found by id, never
 * through a pointer handed to libunbound.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns.h"
#include "log.h"
#include "util.h"

#define RR_A		1
#define RR_PTR		12
#define RR_AAAA		28
#define CLASS_IN	1

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

static struct ub_ctx	*ub;
static struct event	*ub_ev;
static struct event_base *dbase;
static struct rdns_req	*reqs;
static unsigned long	 next_id = 1;
static struct rdns_cached *rcache;

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

/* Wire-format name (RFC 1035 3.1) to text without the final dot. */
static int
wire_name(const unsigned char *p, size_t len, char *out, size_t outlen)
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
		if (wire_name((unsigned char *)res->data[0], (size_t)res->len[0],
		    r->host, sizeof(r->host)) == -1)
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

void
dns_cancel(unsigned long id)
{
	struct rdns_req *r = find_req(id);

	if (r)
		req_free(r);
}
