/*
 * http_conn.h - the connections of the HTTPS injection API in an SMTP
 * worker (docs/http-api.md): evhttp (libevent) on the socket the master
 * bound, TLS only (bufferevent_openssl, implicit TLS from the first byte),
 * each connection admitted like an SMTP one (sender group, tcprefuse,
 * connlimit caps), logged (New HTTP ICID, TLS success/failed, close) and
 * bounded (headers, body, timeouts).  Requests go to http_api.c.
 *
 * Callers: serve.c (attach, shutdown), http_api.c (the connection of a
 * request).
 */
#ifndef POSTERN_HTTP_CONN_H
#define POSTERN_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "conf.h"

struct event_base;
struct evhttp_request;
struct spool;

/* One client connection (owned by its SSL object: freed with it). */
struct http_conn {
	SSL			*ssl;
	struct bufferevent	*bev;		/* evhttp's */
	struct event		*admit_ev;
	struct sockaddr_storage	 peer;
	char			 ip[64];
	uint64_t		 icid;
	const struct conf_policy *policy;
	const struct conf_sender_group *sg;
	int			 admit_done;	/* admission ran */
	int			 admitted;	/* logged, counted */
	int			 refused;	/* closed at admission */
	int			 rejected;	/* policy reject: 403 to all */
	int			 tls_logged;
	char			 tls_fail[256];
	char			 tls_info[160];	/* for Received: */
	/* AUTH already checked on this connection (keep-alive) */
	int			 authed;
	char			 auth_user[65];
	unsigned char		 auth_digest[32];	/* of the header */
	struct http_req		*reqs;		/* in flight */
	struct http_conn	*prev, *next;
};

/* Serve the API on `fd` (bound by the master) with server context `tls`.
 * 0 or -1. */
int	http_conn_attach(struct event_base *, const struct conf *,
	    struct spool *, int fd, SSL_CTX *tls);
/* Stop accepting; `done` runs once no request is in flight (idle
 * keep-alive connections end with the process). */
void	http_conn_shutdown(void (*done)(void));
/* Stopping: new requests get 503 and the connection closes. */
int	http_conn_stopping(void);
/* The connection a request came on (NULL if it is gone). */
struct http_conn *http_conn_of(struct evhttp_request *);
/* A request started processing / finished (replied): the shutdown
 * completes once none is in flight. */
void	http_conn_request_begin(void);
void	http_conn_request_done(void);

#endif
