/*
 * proxy_accept.c - wait for the PROXY protocol header on an accepted
 * socket (see proxy_accept.h), before the SMTP server says anything: the
 * server speaks first in SMTP, so the header must be complete before the
 * connection is admitted (sender group, connection caps, banner).
 *
 * Public: proxy_accept_start, proxy_accept_close_all,
 * proxy_accept_pending.
 *
 * Exactly the header is consumed, never a byte more: each read first
 * peeks at what the kernel holds, lets proxy_proto_parse() decide, then
 * takes only the octets that belong to the header.  So the client's
 * first bytes (an EHLO, or the TLS ClientHello of implicit TLS) stay in
 * the socket for the session that follows, whatever buffering it uses.
 *
 * Limits and threats: only peers in proxy_from get here at all; each
 * waits at most `timeout` seconds (one deadline for the whole header, not
 * per read) and holds at most PROXY_PROTO_MAX octets.  A peer that
 * connects and closes without a byte (a TCP health check) gets a debug
 * line only; every other failure gets one Warning naming the peer and
 * why, and the socket is closed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "proxy_accept.h"
#include "util.h"

struct proxy_wait {
	int			 fd;
	const struct conf_listener *l;
	struct sockaddr_storage	 peer;
	struct event		*ev;
	double			 deadline;	/* monotonic */
	double			 timeout;	/* as given, for the log */
	size_t			 have;		/* header octets consumed */
	proxy_accept_fn		 done;
	void			*arg;
	struct proxy_wait	*prev, *next;
	unsigned char		 buf[PROXY_PROTO_MAX];
};

static struct proxy_wait	*waits;
static size_t			 nwaits;

static void	wait_read_cb(evutil_socket_t, short, void *);

static int
in_proxy_from(const struct conf_listener *l, const struct sockaddr *sa)
{
	size_t i;

	for (i = 0; i < l->nproxy_from; i++)
		if (cidr_match(&l->proxy_from[i], sa))
			return 1;
	return 0;
}

/* Unlink and free; the socket is closed unless handed over (fd = -1). */
static void
wait_free(struct proxy_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	nwaits--;
	event_free(w->ev);
	if (w->fd != -1)
		close(w->fd);
	free(w);
}

/* Give up on this peer: one Warning, then close. */
static void
wait_fail(struct proxy_wait *w, const char *why)
{
	char ip[64], port[16];

	sockaddr_ip((struct sockaddr *)&w->peer, ip, sizeof(ip));
	snprintf(port, sizeof(port), "%d",
	    sockaddr_port((struct sockaddr *)&w->peer));
	mlog(LOG_LVL_WARNING, "proxy_failed", "PROXY header from {ip} port "
	    "{port} interface {listener} rejected: {why}", "ip", ip, "port",
	    port, "listener", w->l->name, "why", why, NULL);
	metrics_connection(w->l, METRICS_CONN_PROXY_FAILED);
	wait_free(w);
}

/* Closed or reset before the first octet: a TCP health check, quietly. */
static void
wait_gone(struct proxy_wait *w, int err)
{
	char ip[64], why[160];

	if (w->have > 0) {
		bsnprintf(why, sizeof(why), "connection %s after %zu octets "
		    "of an incomplete header", err ? strerror(err) : "closed",
		    w->have);
		wait_fail(w, why);
		return;
	}
	sockaddr_ip((struct sockaddr *)&w->peer, ip, sizeof(ip));
	log_debug("listener %s: %s port %d closed before sending a PROXY "
	    "header (a TCP health check?)", w->l->name, ip,
	    sockaddr_port((struct sockaddr *)&w->peer));
	wait_free(w);
}

static void
wait_arm(struct proxy_wait *w)
{
	struct timeval tv;

	timeval_from_secs(&tv, w->deadline - mono_now());
	event_add(w->ev, &tv);
}

/* The whole header is consumed: hand the socket over. */
static void
wait_done(struct proxy_wait *w, const struct proxy_proto_hdr *hdr)
{
	struct proxy_accept_info info;
	proxy_accept_fn done = w->done;
	void *arg = w->arg;
	int fd = w->fd;

	memset(&info, 0, sizeof(info));
	info.proxy = w->peer;
	info.client = hdr->kind == PROXY_PROTO_RELAYED ? hdr->src : w->peer;
	info.version = hdr->version;
	info.kind = hdr->kind;
	info.proto = hdr->proto;
	w->fd = -1;
	wait_free(w);
	done(fd, &info, arg);
}

/*
 * Peek, parse, then consume only header octets: all of them on MORE (the
 * parser guarantees they belong to the header), exactly the rest of the
 * header on DONE.
 */
static void
wait_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_wait *w = arg;
	struct proxy_proto_hdr hdr;
	enum proxy_proto_status st;
	char why[256];
	ssize_t n, got;
	size_t take;

	if (what & EV_TIMEOUT) {
		bsnprintf(why, sizeof(why), "no complete header within %g s "
		    "(%zu octets received)", w->timeout, w->have);
		wait_fail(w, why);
		return;
	}
	n = recv(fd, w->buf + w->have, sizeof(w->buf) - w->have, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)) {
		wait_arm(w);
		return;
	}
	if (n <= 0) {
		wait_gone(w, n == 0 ? 0 : errno);
		return;
	}
	st = proxy_proto_parse(w->buf, w->have + (size_t)n, &hdr, why,
	    sizeof(why));
	if (st == PROXY_PROTO_ERROR) {
		wait_fail(w, why);
		return;
	}
	take = st == PROXY_PROTO_DONE ? hdr.len - w->have : (size_t)n;
	got = recv(fd, w->buf + w->have, take, 0);
	if (got != (ssize_t)take) {
		wait_fail(w, got == -1 ? strerror(errno) : "short read");
		return;
	}
	w->have += take;
	if (st == PROXY_PROTO_DONE) {
		wait_done(w, &hdr);
		return;
	}
	if (w->have == sizeof(w->buf)) {	/* the parser refuses first */
		wait_fail(w, "header too long");
		return;
	}
	wait_arm(w);
}

/* Refuse a peer outside proxy_from, else wait for its header. */
void
proxy_accept_start(struct event_base *base, int fd,
    const struct sockaddr *peer, const struct conf_listener *l,
    double timeout, proxy_accept_fn done, void *arg)
{
	struct proxy_wait *w;
	char ip[64];

	if (!in_proxy_from(l, peer)) {
		sockaddr_ip(peer, ip, sizeof(ip));
		mlog(LOG_LVL_WARNING, "proxy_refused", "PROXY refused address "
		    "{ip} interface {listener}: not in proxy_from", "ip", ip,
		    "listener", l->name, NULL);
		metrics_connection(l, METRICS_CONN_PROXY_REFUSED);
		close(fd);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->l = l;
	memcpy(&w->peer, peer, peer->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	w->timeout = timeout;
	w->deadline = mono_now() + timeout;
	w->done = done;
	w->arg = arg;
	w->ev = event_new(base, fd, EV_READ, wait_read_cb, w);
	if (w->ev == NULL)
		fatalx("out of memory for a PROXY connection");
	w->next = waits;
	if (waits)
		waits->prev = w;
	waits = w;
	nwaits++;
	wait_arm(w);
}

/* Close every socket still waiting for its header. */
void
proxy_accept_close_all(void)
{
	while (waits != NULL)
		wait_free(waits);
}

/* Sockets waiting for their header. */
size_t
proxy_accept_pending(void)
{
	return nwaits;
}
