/*
 * proxy_accept.h - the accept-time wait for a PROXY protocol header on a
 * listener with `proxy_protocol = true` (docs/proxy-protocol.md): refuse
 * a peer outside the listener's proxy_from, then read exactly the header
 * (bounded in time and size) and hand the socket over with the real
 * client's address.
 *
 * Callers: listener.c (accept path and shutdown);
 * tests/unit/test_proxy_accept.c.
 */
#ifndef POSTERN_PROXY_ACCEPT_H
#define POSTERN_PROXY_ACCEPT_H

#include <stddef.h>
#include <sys/socket.h>

#include "conf.h"
#include "proxy_proto.h"

/* Seconds a proxy has to send its header (it sends it with the connect). */
#define PROXY_ACCEPT_TIMEOUT	10.0

struct event_base;

struct proxy_accept_info {
	/* The real client (PROXY_PROTO_RELAYED), else the proxy itself. */
	struct sockaddr_storage	 client;
	struct sockaddr_storage	 proxy;		/* the TCP peer */
	int			 version;	/* 1 or 2 */
	enum proxy_proto_kind	 kind;
	const char		*proto;		/* static, see proxy_proto.h */
};

/* The header is in and consumed: the socket now starts with the client's
 * own bytes and belongs to the callee.  `info` is borrowed for the call. */
typedef void (*proxy_accept_fn)(int fd, const struct proxy_accept_info *info,
	    void *arg);

/* Take a just-accepted socket of listener `l`: closed at once (with a log
 * line) when `peer` is outside l->proxy_from, else watched until its
 * header is in (then `done`), malformed, or `timeout` seconds have passed
 * (then closed with a log line naming the peer and why). */
void	proxy_accept_start(struct event_base *, int fd,
	    const struct sockaddr *peer, const struct conf_listener *l,
	    double timeout, proxy_accept_fn done, void *arg);
/* Close every socket still waiting for its header (stop, reload). */
void	proxy_accept_close_all(void);
/* Sockets waiting for their header. */
size_t	proxy_accept_pending(void);

#endif
