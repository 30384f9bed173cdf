/*
 * http_conn.c - connections of the HTTPS injection API (see
 * http_conn.h).
 *
 * evhttp accepts on the worker's socket and asks us (bevcb) for each
 * connection's bufferevent: we give it an OpenSSL one in the accepting
 * state, so the first byte is TLS and plaintext HTTP never reaches a
 * request handler (the handshake fails, the connection closes).  evhttp
 * sets the socket on it after the callback, so admission - sender group,
 * tcprefuse, the shared connection caps of connlimit.c, the New HTTP
 * line - runs from a zero timer right after.  The connection's state
 * hangs off its SSL object (ex_data) and is freed with it, whenever
 * evhttp frees the connection: that is where "close" is logged and the
 * connlimit slot released.
 *
 * Limits: headers HTTP_HEADERS_MAX octets in all; body the largest
 * policy max_message_size plus HTTP_BODY_HEADROOM (base64 attachments in
 * JSON, the fields); read/write/idle timeout limits.command_timeout;
 * methods GET and POST only.
 * Threats: slow or idle clients (timeouts, caps), plaintext on the TLS
 * port (refused by the handshake), handshake failures (logged with the
 * reason OpenSSL gave, from the info callback).
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "connlimit.h"
#include "http_api.h"
#include "http_conn.h"
#include "ids.h"
#include "log.h"
#include "netaddr.h"
#include "tls_ctx.h"
#include "util.h"

#define HTTP_HEADERS_MAX	(32 * 1024)
#define HTTP_BODY_HEADROOM	(1024 * 1024)

static struct event_base	*hbase;
static const struct conf	*hconf;
static struct evhttp		*hhttp;
static struct evhttp_bound_socket *hbound;
static SSL_CTX			*hctx;
static int			 hex_idx = -1;
static int			 hstopping;
static size_t			 hinflight;
static void			(*hdone)(void);
static struct http_conn		*hconns;

static void
idstr(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static const char *
action_word(enum policy_action a)
{
	static const char *w[] = { "ACCEPT", "RELAY", "REJECT", "TCPREFUSE" };

	return w[a];
}

/* Freed with its SSL (evhttp frees the bufferevent, which frees it). */
static void
conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct http_conn *c = ptr;
	char icid[32];

	if (c == NULL)
		return;
	idstr(c->icid, icid, sizeof(icid));
	if (c->admitted && !c->tls_logged)
		mlog(LOG_LVL_INFO, "tls_failed", "ICID {icid} TLS failed: "
		    "{reason}", "icid", icid, "reason", c->tls_fail[0] ?
		    c->tls_fail : "the client closed the connection during "
		    "the handshake", NULL);
	if (c->admitted) {
		mlog(LOG_LVL_INFO, "close", "ICID {icid} close", "icid", icid,
		    NULL);
		connlimit_release((struct sockaddr *)&c->peer);
	}
	http_api_conn_gone(c);
	if (c->admit_ev != NULL)
		event_free(c->admit_ev);
	if (c->prev)
		c->prev->next = c->next;
	else if (hconns == c)
		hconns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* Handshake done (log it once) or failed (keep OpenSSL's reason). */
static void admit_cb(evutil_socket_t, short, void *);

static void
tls_info_cb(const SSL *ssl, int where, int ret)
{
	struct http_conn *c = SSL_get_ex_data(ssl, hex_idx);
	unsigned long e;
	char icid[32];

	if (c == NULL)
		return;
	/* bytes came before the admission timer ran: admit now, so the
	 * connection is counted and its lines are written in order */
	if (!c->admit_done)
		admit_cb(-1, 0, c);
	if (!c->admitted)
		return;
	if ((where & SSL_CB_HANDSHAKE_DONE) && !c->tls_logged) {
		c->tls_logged = 1;
		idstr(c->icid, icid, sizeof(icid));
		snprintf(c->tls_info, sizeof(c->tls_info), "%s with cipher %s",
		    tls_protocol(ssl), tls_cipher(ssl));
		mlog(LOG_LVL_INFO, "tls", "ICID {icid} TLS success protocol "
		    "{protocol} cipher {cipher}", "icid", icid, "protocol",
		    tls_protocol(ssl), "cipher", tls_cipher(ssl), NULL);
		return;
	}
	if ((where & SSL_CB_EXIT) && ret <= 0 && c->tls_fail[0] == '\0' &&
	    (e = ERR_peek_error()) != 0)
		tls_handshake_reason(e, TLS_START_IMPLICIT, c->tls_fail,
		    sizeof(c->tls_fail));
}

/* Close at once: the TLS bufferevent sees EOF and evhttp frees it. */
static void
conn_refuse(struct http_conn *c, int fd)
{
	c->refused = 1;
	(void)shutdown(fd, SHUT_RDWR);
}

static void
log_new(const struct http_conn *c, const struct cidr *match)
{
	char icid[32], port[16];

	idstr(c->icid, icid, sizeof(icid));
	snprintf(port, sizeof(port), "%d", hconf->http->port);
	mlog(LOG_LVL_INFO, "new_icid", "New HTTP ICID {icid} interface http "
	    "({laddr}:{lport}) address {ip}", "icid", icid, "laddr",
	    hconf->http->address, "lport", port, "ip", c->ip, NULL);
	mlog(LOG_LVL_INFO, "sg", "ICID {icid} {action} SG {sg} match {cidr}",
	    "icid", icid, "action", action_word(c->policy->action), "sg",
	    c->sg->name, "cidr", match ? match->text : "", NULL);
}

/* Right after accept: who is it, may it connect at all? */
static void
admit_cb(evutil_socket_t unused, short what, void *arg)
{
	struct http_conn *c = arg;
	const struct cidr *match = NULL;
	socklen_t len = sizeof(c->peer);
	enum connlimit_result lim;
	int fd = bufferevent_getfd(c->bev), on = 1;

	if (c->admit_done)
		return;
	c->admit_done = 1;
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&c->peer, &len) == -1)
		return;		/* evhttp failed it already */
	sockaddr_ip((struct sockaddr *)&c->peer, c->ip, sizeof(c->ip));
	c->sg = conf_match_sender_group(hconf, (struct sockaddr *)&c->peer,
	    &match);
	if (c->sg == NULL || hconf->policies[c->sg->policy_index].action ==
	    POLICY_TCPREFUSE) {
		mlog(LOG_LVL_INFO, "tcprefuse", "TCP refused address {ip} "
		    "interface http SG {sg}", "ip", c->ip, "sg", c->sg ?
		    c->sg->name : "(none)", NULL);
		conn_refuse(c, fd);
		return;
	}
	c->policy = &hconf->policies[c->sg->policy_index];
	lim = connlimit_take((struct sockaddr *)&c->peer,
	    hconf->limits.max_connections,
	    c->policy->limits.max_connections_per_client);
	if (lim != CONNLIMIT_OK) {
		mlog(LOG_LVL_WARNING, "too_many", "Connection refused address "
		    "{ip} interface http: {why}", "ip", c->ip, "why",
		    lim == CONNLIMIT_TOTAL ? "max_connections reached" :
		    "max_connections_per_client reached", NULL);
		conn_refuse(c, fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->admitted = 1;
	c->icid = ids_next(ID_ICID);
	c->rejected = c->policy->action == POLICY_REJECT;
	log_new(c, match);
}

/* evhttp's new connection: an OpenSSL bufferevent, socket set later. */
static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct http_conn *c = xcalloc(1, sizeof(*c));
	struct timeval now = { 0, 0 };

	c->ssl = SSL_new(hctx);
	if (c->ssl == NULL)
		fatalx("out of memory for an HTTPS connection");
	SSL_set_ex_data(c->ssl, hex_idx, c);
	SSL_set_info_callback(c->ssl, tls_info_cb);
	c->bev = bufferevent_openssl_socket_new(base, -1, c->ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	c->admit_ev = evtimer_new(base, admit_cb, c);
	if (c->bev == NULL || c->admit_ev == NULL)
		fatalx("out of memory for an HTTPS connection");
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	event_add(c->admit_ev, &now);
	c->next = hconns;
	if (hconns)
		hconns->prev = c;
	hconns = c;
	return c->bev;
}

/* The connection state of a request (NULL once it is gone). */
struct http_conn *
http_conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	SSL *ssl;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return NULL;
	return SSL_get_ex_data(ssl, hex_idx);
}

static size_t
body_limit(const struct conf *conf)
{
	size_t i, max = conf->pickup.max_message_size;

	for (i = 0; i < conf->npolicies; i++)
		if (conf->policies[i].max_message_size > max)
			max = conf->policies[i].max_message_size;
	/* JSON carries attachments in base64: 4 octets for 3 */
	return max / 3 * 4 + HTTP_BODY_HEADROOM;
}

/* Serve the API on the worker's socket (http_conn.h). */
int
http_conn_attach(struct event_base *base, const struct conf *conf,
    struct spool *sp, int fd, SSL_CTX *tls)
{
	struct timeval tv;

	hbase = base;
	hconf = conf;
	hctx = tls;
	if (hex_idx == -1 && (hex_idx = SSL_get_ex_new_index(0, NULL, NULL,
	    NULL, conn_free_cb)) == -1)
		return -1;
	if ((hhttp = evhttp_new(base)) == NULL ||
	    http_api_init(base, conf, sp) == -1)
		return -1;
	evhttp_set_allowed_methods(hhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(hhttp, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(hhttp, (ev_ssize_t)body_limit(conf));
	tv.tv_sec = conf->limits.command_timeout;
	tv.tv_usec = 0;
	evhttp_set_timeout_tv(hhttp, &tv);
	evhttp_set_default_content_type(hhttp, "application/json");
	evhttp_set_bevcb(hhttp, bev_cb, NULL);
	evhttp_set_gencb(hhttp, http_api_request, NULL);
	if ((hbound = evhttp_accept_socket_with_handle(hhttp, fd)) == NULL)
		return -1;
	return 0;
}

static void
maybe_done(void)
{
	void (*done)(void) = hdone;

	if (hstopping && hinflight == 0 && done != NULL) {
		hdone = NULL;
		done();
	}
}

/* Stop accepting; `done` once nothing is in flight (http_conn.h). */
void
http_conn_shutdown(void (*done)(void))
{
	if (hhttp == NULL) {
		done();
		return;
	}
	if (hbound != NULL) {
		evhttp_del_accept_socket(hhttp, hbound);
		hbound = NULL;
	}
	hstopping = 1;
	hdone = done;
	maybe_done();
}

int
http_conn_stopping(void)
{
	return hstopping;
}

/* One more request being processed. */
void
http_conn_request_begin(void)
{
	hinflight++;
}

/* A request was answered. */
void
http_conn_request_done(void)
{
	if (hinflight > 0)
		hinflight--;
	maybe_done();
}
