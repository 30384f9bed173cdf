/*
 * fake_smtp_server.h - a scripted SMTP server for unit tests, in the test's
 * own process and event loop, on any connected socket (a socketpair, or
 * one accepted from a loopback listener): each step expects a line prefix
 * from the client and answers (send, stay silent, close, start TLS with
 * an in-memory certificate, inject plaintext after a reply, collect the
 * message data, drip a reply slowly).  Used by test_smtp_client.c (the
 * protocol engine) and test_smtp_conn.c (the delivery connection driver).
 *
 * Header-only, static functions (like test_tmpdir.h); include it after
 * <cmocka.h>.
 */
#ifndef POSTERN_FAKE_SMTP_SERVER_H
#define POSTERN_FAKE_SMTP_SERVER_H

#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "strbuf.h"
#include "util.h"

/* ---- the fake server ----------------------------------------------- */

enum action {
	A_SEND,		/* send `reply` */
	A_SILENT,	/* say nothing (timeouts) */
	A_CLOSE,	/* close the connection */
	A_STARTTLS,	/* send `reply` then start TLS (server side) */
	A_RAW,		/* send `reply` and then stop reading (injection) */
	A_DATA,		/* send `reply` (354) and collect message lines up
			 * to "." (which is then matched as a line) */
	A_DRIP,		/* send `reply` one line every DRIP_INTERVAL */
	A_SPLIT		/* TLS only: send `reply` as one record per line, all
			 * written at once (SSL_write on the server's SSL), so
			 * they reach the client together */
};

#define DRIP_INTERVAL	0.4

struct sstep {
	const char	*expect;	/* prefix of the client's line; NULL =
					 * the greeting (sent at once) */
	enum action	 act;
	const char	*reply;
};

struct fake {
	struct event_base	*base;
	struct bufferevent	*bev;
	int			 fd;
	const struct sstep	*script;
	size_t			 n, i;
	SSL_CTX			*sctx;
	int			 mismatch;
	char			 got[20][128];
	int			 got_read[20];	/* read callback number */
	size_t			 ngot;
	int			 nread;
	int			 data_mode;
	struct strbuf		 raw;		/* data lines as received */
	struct strbuf		 body;		/* the same un-stuffed */
	struct event		*drip;		/* A_DRIP */
	const char		*drip_p;	/* what is left to send */
};

static void fake_do(struct fake *f);

static void
fake_read(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	f->nread++;
	/* "*": the next action fires on any bytes (a TLS ClientHello) */
	if (f->i < f->n && f->script[f->i].expect != NULL &&
	    strcmp(f->script[f->i].expect, "*") == 0) {
		evbuffer_drain(in, evbuffer_get_length(in));
		fake_do(f);
		return;
	}
	while ((line = evbuffer_readln(bufferevent_get_input(bev), &len,
	    EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		if (f->data_mode && strcmp(line, ".") != 0) {
			strbuf_add(&f->raw, line, len);
			strbuf_add(&f->raw, "\r\n", 2);
			/* un-stuff: a leading "." was doubled */
			strbuf_add(&f->body, line + (line[0] == '.'),
			    len - (line[0] == '.'));
			strbuf_add(&f->body, "\r\n", 2);
			free(line);
			continue;
		}
		f->data_mode = 0;
		if (f->ngot < 20) {
			f->got_read[f->ngot] = f->nread;
			bstrlcpy(f->got[f->ngot++], line, sizeof(f->got[0]));
		}
		if (f->i >= f->n || strncmp(line, f->script[f->i].expect,
		    strlen(f->script[f->i].expect)) != 0)
			f->mismatch = 1;
		free(line);
		if (f->i < f->n)
			fake_do(f);
		if (f->bev == NULL || bev != f->bev)
			return;
	}
}

static void
fake_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	(void)arg;
}

static void
fake_drip(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	struct timeval tv = { 0, (suseconds_t)(DRIP_INTERVAL * 1e6) };
	const char *nl;
	size_t n;

	(void)fd;
	(void)what;
	if (f->bev == NULL || f->drip_p == NULL || *f->drip_p == '\0')
		return;
	nl = strchr(f->drip_p, '\n');
	n = nl != NULL ? (size_t)(nl - f->drip_p) + 1 : strlen(f->drip_p);
	bufferevent_write(f->bev, f->drip_p, n);
	f->drip_p += n;
	if (*f->drip_p != '\0')
		evtimer_add(f->drip, &tv);
}

static void
fake_split(struct fake *f, const char *reply)
{
	SSL *ssl = bufferevent_openssl_get_ssl(f->bev);
	const char *p, *nl;

	assert_non_null(ssl);
	for (p = reply; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_int_equal(SSL_write(ssl, p, (int)(nl - p + 1)),
		    (int)(nl - p + 1));
	}
}

static void
fake_do(struct fake *f)
{
	const struct sstep *s = &f->script[f->i++];
	struct timeval tv = { 0, (suseconds_t)(DRIP_INTERVAL * 1e6) };
	SSL *ssl;

	switch (s->act) {
	case A_SEND:
		bufferevent_write(f->bev, s->reply, strlen(s->reply));
		break;
	case A_DATA:
		bufferevent_write(f->bev, s->reply, strlen(s->reply));
		f->data_mode = 1;
		break;
	case A_SILENT:
		break;
	case A_SPLIT:
		fake_split(f, s->reply);
		break;
	case A_DRIP:
		/* the first line after one interval too */
		f->drip = evtimer_new(f->base, fake_drip, f);
		assert_non_null(f->drip);
		f->drip_p = s->reply;
		evtimer_add(f->drip, &tv);
		break;
	case A_CLOSE:
		if (s->reply != NULL)
			assert_int_equal(write_full(f->fd, s->reply,
			    strlen(s->reply)), 0);
		bufferevent_free(f->bev);
		f->bev = NULL;
		close(f->fd);
		f->fd = -1;
		break;
	case A_RAW:
		assert_int_equal(write_full(f->fd, s->reply, strlen(s->reply)),
		    0);
		bufferevent_disable(f->bev, EV_READ);
		break;
	case A_STARTTLS:
		assert_int_equal(write_full(f->fd, s->reply, strlen(s->reply)),
		    0);
		bufferevent_free(f->bev);
		ssl = SSL_new(f->sctx);
		assert_non_null(ssl);
		f->bev = bufferevent_openssl_socket_new(f->base, f->fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		assert_non_null(f->bev);
		f->fd = -1;	/* owned by the bufferevent now */
		bufferevent_setcb(f->bev, fake_read, NULL, fake_event, f);
		bufferevent_enable(f->bev, EV_READ | EV_WRITE);
		break;
	}
}

static void
fake_start(struct fake *f, struct event_base *base, int fd,
    const struct sstep *script, size_t n, SSL_CTX *sctx)
{
	memset(f, 0, sizeof(*f));
	f->base = base;
	f->fd = fd;
	f->script = script;
	f->n = n;
	f->sctx = sctx;
	strbuf_init(&f->raw);
	strbuf_init(&f->body);
	f->bev = bufferevent_socket_new(base, fd, 0);
	assert_non_null(f->bev);
	bufferevent_setcb(f->bev, fake_read, NULL, fake_event, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	if (n > 0 && script[0].expect == NULL)
		fake_do(f);
}

static void
fake_stop(struct fake *f)
{
	if (f->drip != NULL)
		event_free(f->drip);
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	if (f->fd != -1)
		close(f->fd);
	strbuf_free(&f->raw);
	strbuf_free(&f->body);
}

/* An in-memory self-signed certificate for the fake server. */
static SSL_CTX *
fake_server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *n;

	assert_non_null(ctx);
	assert_non_null(pk);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"fake.test", -1, -1, 0);
	X509_set_issuer_name(x, n);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pk), 1);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ctx;
}

#endif
