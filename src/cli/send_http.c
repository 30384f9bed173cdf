/*
 * send_http.c - `postern send --http URL`: the same message, options and
 * output as the SMTP side (send_driver.c), injected through Postern's
 * HTTPS API instead (docs/http-api.md): POST /v1/messages with the
 * prepared message as message/rfc822 and the envelope as ?from=&to=,
 * HTTP Basic with SMTP_USER / the password, N copies over C keep-alive
 * connections on one libevent loop (evhttp over bufferevent_openssl).
 *
 * The certificate is verified during the handshake (trust store + system
 * CAs + --trust, host name = --servername or the URL's host) unless
 * --insecure; nothing is sent to a server that failed.  A refusal is
 * reported with the server's SMTP-equivalent reply ("reply" of the JSON
 * answer) and the fix of failcause.c, as for SMTP.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "failcause.h"
#include "send_http.h"
#include "tls_ctx.h"
#include "util.h"

struct hdriver;

struct hconn {
	struct hdriver		*d;
	struct evhttp_connection *evcon;
	SSL			*ssl;
	char			*buf;		/* this connection's copy */
	double			 started;	/* of the request in flight */
	int			 busy;
};

struct hdriver {
	const struct send_settings *s;
	struct send_outcome	*o;
	struct event_base	*base;
	struct hconn		*conns;
	size_t			 nconns;
	unsigned long		 next, done;
	char			*target;	/* path?query */
	char			 auth[1400];	/* Authorization value */
	int			 stop, opened;
	double			 t0;
};

static void send_next(struct hconn *);

static void
count_code(struct send_outcome *o, int code)
{
	size_t i;

	for (i = 0; i < o->ncodes; i++)
		if (o->codes[i].code == code) {
			o->codes[i].n++;
			return;
		}
	if (o->ncodes < SEND_CODES_MAX) {
		o->codes[o->ncodes].code = code;
		o->codes[o->ncodes++].n = 1;
	}
}

/* The fields of a JSON answer we need: "reply" (a string). */
static void
json_reply(const char *body, size_t len, struct strbuf *out)
{
	const char *p = memmem(body, len, "\"reply\":\"", 9), *e;

	if (p == NULL)
		return;
	p += 9;
	e = memchr(p, '"', len - (size_t)(p - body));
	if (e != NULL)
		strbuf_add(out, p, (size_t)(e - p));
}

/* The first failure: the reply verbatim, its cause and what failed. */
static void
note_failure(struct hdriver *d, int status, const char *reply,
    enum failcause cause, const char *what)
{
	struct send_outcome *o = d->o;
	char enh[16] = "";

	if (o->what.len > 0 || o->cause != FC_NONE)
		return;
	o->fctx.host = d->s->host;
	o->fctx.port = d->s->port;
	o->fctx.user = d->s->user;
	o->fctx.detail = o->detail;
	o->fctx.address = o->address;
	bstrlcpy(o->address, d->s->from ? d->s->from : "", sizeof(o->address));
	if (reply != NULL && reply[0] != '\0') {
		strbuf_puts(&o->reply, reply);
		(void)sscanf(reply, "%*d %15s", enh);
		cause = failcause_from_reply("end of data", atoi(reply), enh,
		    reply);
	}
	o->cause = cause;
	if (what != NULL)
		strbuf_puts(&o->what, what);
	else
		strbuf_printf(&o->what, "HTTP %d from %s", status, d->s->host);
}

/* A connection-level failure (TCP, TLS): what OpenSSL or errno said. */
static void
conn_failure(struct hconn *hc)
{
	struct hdriver *d = hc->d;
	long vr = hc->ssl ? SSL_get_verify_result(hc->ssl) : X509_V_OK;
	unsigned long e = 0, x;
	char what[512];

	while ((x = bufferevent_get_openssl_error(
	    evhttp_connection_get_bufferevent(hc->evcon))) != 0)
		e = e ? e : x;
	if (d->s->verify && vr != X509_V_OK) {
		snprintf(d->o->detail, sizeof(d->o->detail), "%s",
		    X509_verify_cert_error_string(vr));
		snprintf(what, sizeof(what), "the certificate of %s was not "
		    "verified: %s", d->s->host, d->o->detail);
		note_failure(d, 0, NULL, failcause_from_verify(vr), what);
	} else if (e != 0) {
		snprintf(what, sizeof(what), "TLS with %s failed: %s",
		    d->s->host, ERR_reason_error_string(e) ?
		    ERR_reason_error_string(e) : "handshake failure");
		note_failure(d, 0, NULL, failcause_from_tls_error(e, 1), what);
	} else {
		snprintf(what, sizeof(what), "no answer from %s port %d "
		    "(connection refused, closed or timed out)", d->s->host,
		    d->s->port);
		note_failure(d, 0, NULL, FC_CLOSED, what);
	}
	d->o->setup_failed = 1;
}

static void
finish_one(struct hdriver *d)
{
	if (++d->done >= d->s->count || (d->stop && d->done >= d->next))
		event_base_loopexit(d->base, NULL);
}

/* The answer to one POST. */
static void
response_cb(struct evhttp_request *req, void *arg)
{
	struct hconn *hc = arg;
	struct hdriver *d = hc->d;
	struct evbuffer *in;
	struct strbuf reply = STRBUF_INIT;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	size_t len;

	hc->busy = 0;
	if (req == NULL || status == 0) {
		conn_failure(hc);
		d->o->failed++;
		count_code(d->o, 0);
		d->stop = 1;
		finish_one(d);
		return;
	}
	if (!d->opened && d->s->opened != NULL) {
		d->opened = 1;
		d->s->opened(d->s->arg, "HTTPS");
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	json_reply((const char *)evbuffer_pullup(in, -1), len, &reply);
	if (status == 201) {
		d->o->sent++;
		d->o->lat = xrealloc(d->o->lat, (d->o->nlat + 1) *
		    sizeof(*d->o->lat));
		d->o->lat[d->o->nlat++] = mono_now() - hc->started;
		bstrlcpy(d->o->last_ok, reply.s ? reply.s : "",
		    sizeof(d->o->last_ok));
	} else {
		d->o->failed++;
		count_code(d->o, reply.len ? atoi(reply.s) : status);
		note_failure(d, status, reply.s, FC_REJECTED, NULL);
		if (status == 401 || d->s->count == 1)
			d->stop = 1;	/* credentials: every copy would fail */
	}
	strbuf_free(&reply);
	finish_one(d);
	send_next(hc);
}

/* The next copy on this connection (keep-alive), if any is left. */
static void
send_next(struct hconn *hc)
{
	struct hdriver *d = hc->d;
	const struct send_settings *s = d->s;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	char num[SEND_MID_DIGITS + 2], port[300];
	unsigned long n;
	int fd, on = 1;

	if (d->stop || d->next >= s->count || hc->busy)
		return;
	n = d->next++;
	if (s->mid_digits > 0) {
		(void)bsnprintf(num, sizeof(num), "%0*lu", SEND_MID_DIGITS,
		    n + 1);
		memcpy(hc->buf + s->mid_digits, num, SEND_MID_DIGITS);
	}
	if ((req = evhttp_request_new(response_cb, hc)) == NULL)
		fatalx("out of memory for an HTTP request");
	h = evhttp_request_get_output_headers(req);
	snprintf(port, sizeof(port), "%s:%d", s->host, s->port);
	evhttp_add_header(h, "Host", port);
	evhttp_add_header(h, "Content-Type", "message/rfc822");
	if (d->auth[0] != '\0')
		evhttp_add_header(h, "Authorization", d->auth);
	evbuffer_add(evhttp_request_get_output_buffer(req), hc->buf, s->len);
	/* headers and body leave as separate TLS records: no Nagle wait
	 * between them (the socket exists once the first request ran) */
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(hc->evcon));
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	hc->busy = 1;
	hc->started = mono_now();
	if (evhttp_make_request(hc->evcon, req, EVHTTP_REQ_POST,
	    d->target) == -1)
		fatalx("cannot start an HTTP request");
}

/* "path?from=...&to=..." with the envelope. */
static char *
make_target(const struct send_settings *s, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	char *v;
	size_t i;

	strbuf_puts(&sb, path);
	v = evhttp_uriencode(s->from ? s->from : "", -1, 0);
	strbuf_printf(&sb, "?from=%s", v ? v : "");
	free(v);
	for (i = 0; i < s->nrcpts; i++) {
		v = evhttp_uriencode(s->rcpts[i], -1, 0);
		strbuf_printf(&sb, "&to=%s", v ? v : "");
		free(v);
	}
	return strbuf_detach(&sb, NULL);
}

/* "Basic base64(user:password)" (RFC 7617). */
static void
make_auth(struct hdriver *d)
{
	struct strbuf up = STRBUF_INIT;
	unsigned char b64[1300];

	if (d->s->user == NULL)
		return;
	strbuf_printf(&up, "%s:%s", d->s->user, d->s->password ?
	    d->s->password : "");
	if (up.len * 4 / 3 + 8 < sizeof(b64)) {
		EVP_EncodeBlock(b64, (const unsigned char *)up.s, (int)up.len);
		snprintf(d->auth, sizeof(d->auth), "Basic %s", b64);
	}
	OPENSSL_cleanse(up.s, up.len);
	OPENSSL_cleanse(b64, sizeof(b64));
	strbuf_free(&up);
}

static int
open_conn(struct hdriver *d, struct hconn *hc)
{
	const struct send_settings *s = d->s;
	struct bufferevent *bev;

	hc->d = d;
	hc->buf = xmalloc(s->len + 1);
	memcpy(hc->buf, s->msg, s->len);
	if ((hc->ssl = SSL_new(s->ctx)) == NULL ||
	    tls_client_expect_host(hc->ssl, s->servername ? s->servername :
	    s->host) == -1)
		return -1;
	bev = bufferevent_openssl_socket_new(d->base, -1, hc->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		return -1;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	hc->evcon = evhttp_connection_base_bufferevent_new(d->base, NULL, bev,
	    s->host, (unsigned short)s->port);
	if (hc->evcon == NULL)
		return -1;
	evhttp_connection_set_timeout(hc->evcon, (int)(s->timeout + 0.5));
	evhttp_connection_set_retries(hc->evcon, 0);
	d->o->connections++;
	return 0;
}

/* Inject s->count copies through the HTTPS API (send_http.h). */
int
send_http_run(const struct send_settings *s, const char *path,
    struct send_outcome *o)
{
	struct hdriver d;
	size_t i;

	memset(o, 0, sizeof(*o));
	memset(&d, 0, sizeof(d));
	d.s = s;
	d.o = o;
	if ((d.base = event_base_new()) == NULL)
		fatalx("out of memory for the event loop");
	d.target = make_target(s, path);
	make_auth(&d);
	d.nconns = s->concurrency < s->count ? s->concurrency : s->count;
	d.conns = xcalloc(d.nconns, sizeof(*d.conns));
	d.t0 = mono_now();
	for (i = 0; i < d.nconns; i++)
		if (open_conn(&d, &d.conns[i]) == -1)
			fatalx("cannot set up an HTTPS connection");
	for (i = 0; i < d.nconns; i++)
		send_next(&d.conns[i]);
	event_base_dispatch(d.base);
	o->elapsed = mono_now() - d.t0;
	for (i = 0; i < d.nconns; i++) {
		if (d.conns[i].evcon != NULL)
			evhttp_connection_free(d.conns[i].evcon);
		free(d.conns[i].buf);
	}
	free(d.conns);
	free(d.target);
	OPENSSL_cleanse(d.auth, sizeof(d.auth));
	event_base_free(d.base);
	return o->sent == s->count ? 0 : 1;
}
