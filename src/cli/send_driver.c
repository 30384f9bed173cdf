/*
 * send_driver.c - the connections of `postern send` (see send_driver.h):
 * one event loop, `concurrency` connections built from smtp_client steps,
 * `count` transactions handed out one at a time to whichever connection
 * is free, RSET between transactions, a new connection after a 421 or a
 * lost one, a progress line on a terminal.
 *
 * Public: send_driver_run, send_outcome_free, send_outcome_percentile.
 *
 * Per connection the steps are:
 *   connect -> [tls] -> greeting -> EHLO -> [STARTTLS -> EHLO] -> [AUTH]
 *   -> send, send (RSET first), ... -> QUIT
 * Each message after the first is claimed while the one before it is
 * being sent, and its RSET, MAIL, RCPT and DATA go out in the same
 * write as that one's end of data (smtp_client_send_next, RFC 2920 3.1):
 * one round trip per message, and over TLS one record each way.
 * A certificate is checked right after each handshake (verify callback
 * records, we decide: nothing, credentials least of all, is sent to a
 * server that failed verification).  A failure while a connection is
 * being set up stops the whole run (a wrong password does not get
 * retried 20,000 times); a failure after that costs the message in
 * flight, and the connection is opened again when it was lost.
 *
 * Limits: count and concurrency are bounded by the caller; latencies are
 * kept for every accepted message (8 octets each).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/x509v3.h>

#include "certchain.h"
#include "cmd.h"
#include "send_driver.h"
#include "smtp_client.h"
#include "util.h"

struct driver;

struct sconn {
	struct driver		*d;
	struct smtp_client	*c;
	struct addrinfo		*ai;
	char			*buf;		/* own copy when numbered */
	unsigned long		 used;		/* transactions done */
	double			 t0;
	int			 ready;		/* set-up done */
	int			 has_next;	/* message `next` is this
						 * connection's to send */
	unsigned long		 next;
};

struct driver {
	const struct send_settings *s;
	struct send_outcome	*o;
	struct event_base	*base;
	struct smtp_client_timeouts to;
	struct sconn		*conns;
	unsigned long		 next;		/* next message to hand out */
	unsigned long		 active;	/* connections alive */
	int			 stop;
	int			 opened;
	double			 start;
	struct event		*tick;
};

static void	conn_start(struct sconn *);
static void	next_message(struct sconn *);
static void	on_connect(struct smtp_client *,
		    const struct smtp_client_result *, void *);

static const char *
mode_name(const struct sconn *sc)
{
	if (smtp_client_ssl(sc->c) == NULL)
		return "plain";
	return sc->d->s->tls == SEND_TLS_IMPLICIT ? "TLS" : "STARTTLS";
}

/* ---- failures -------------------------------------------------------- */

static void
count_code(struct send_outcome *o, int code, unsigned long n)
{
	size_t i;

	for (i = 0; i < o->ncodes; i++)
		if (o->codes[i].code == code) {
			o->codes[i].n += n;
			return;
		}
	if (o->ncodes < SEND_CODES_MAX) {
		o->codes[o->ncodes].code = code;
		o->codes[o->ncodes++].n = n;
	}
}

/* Keep the first failure of the run for the report. */
static int
first_failure(struct driver *d)
{
	struct send_outcome *o = d->o;

	if (o->what.len > 0 || o->cause != FC_NONE)
		return 0;
	o->fctx.host = d->s->host;
	o->fctx.port = d->s->port;
	o->fctx.implicit_tls = d->s->tls == SEND_TLS_IMPLICIT;
	o->fctx.user = d->s->user;
	o->fctx.issuer = o->issuer;
	o->fctx.trust_file = o->trust_file;
	o->fctx.detail = o->detail;
	o->fctx.address = o->address;
	bstrlcpy(o->address, d->s->from != NULL ? d->s->from : "",
	    sizeof(o->address));
	return 1;
}

static void
note_result(struct driver *d, const struct smtp_client_result *r,
    const char *rcpt)
{
	struct send_outcome *o = d->o;
	int implicit = d->s->tls == SEND_TLS_IMPLICIT;

	if (!first_failure(d))
		return;
	if (r->reply != NULL)
		smtp_reply_format(r->reply, &o->reply, "\n");
	if (r->err == SMTP_CLIENT_EREPLY)
		strbuf_printf(&o->what, "%s refused by %s", r->step,
		    d->s->host);
	else
		strbuf_printf(&o->what, "%s with %s port %d failed: %s",
		    r->step, d->s->host, d->s->port, r->detail[0] ?
		    r->detail : smtp_client_strerror(r->err));
	o->cause = failcause_from_result(r, implicit);
	bstrlcpy(o->detail, r->detail, sizeof(o->detail));
	if (r->reply != NULL && o->cause == FC_SIZE)
		(void)bsnprintf(o->detail, sizeof(o->detail), " (%zu octets)",
		    d->s->len);
	else if (r->reply != NULL)
		o->detail[0] = '\0';
	if (rcpt != NULL && o->cause != FC_SENDER_NOT_VERIFIED)
		bstrlcpy(o->address, rcpt, sizeof(o->address));
}

/* A failure of our own making (no reply): what + cause. */
static void
note_own(struct driver *d, enum failcause fc, const char *detail,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
note_own(struct driver *d, enum failcause fc, const char *detail,
    const char *fmt, ...)
{
	va_list ap;

	if (!first_failure(d))
		return;
	va_start(ap, fmt);
	strbuf_vprintf(&d->o->what, fmt, ap);
	va_end(ap);
	d->o->cause = fc;
	bstrlcpy(d->o->detail, detail != NULL ? detail : "",
	    sizeof(d->o->detail));
}

static void
finish_conn(struct sconn *sc)
{
	struct driver *d = sc->d;

	if (sc->has_next) {
		/* announced, never sent: the run stopped */
		sc->has_next = 0;
		d->o->failed++;
		count_code(d->o, d->o->reply.len > 0 ? atoi(d->o->reply.s) :
		    0, 1);
	}
	smtp_client_free(sc->c);
	sc->c = NULL;
	if (--d->active == 0)
		event_base_loopbreak(d->base);
}

static void
on_quit(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	(void)c;
	(void)r;
	finish_conn(arg);
}

/* Set-up failed: nothing more is sent anywhere. */
static void
setup_failed(struct sconn *sc, int polite)
{
	struct driver *d = sc->d;

	d->o->setup_failed = 1;
	d->stop = 1;
	/* the messages nobody will send count as failed */
	if (d->next < d->s->count) {
		d->o->failed += d->s->count - d->next;
		count_code(d->o, d->o->reply.len > 0 ? atoi(d->o->reply.s) :
		    0, d->s->count - d->next);
		d->next = d->s->count;
	}
	if (polite)
		smtp_client_quit(sc->c, on_quit, sc);
	else
		finish_conn(sc);
}

/* ---- certificate check ----------------------------------------------- */

/* What the chain says beyond the verify result: the CA to trust (and
 * the file `postern cert fetch` saves it as), a missing intermediate,
 * the date of an expired link, the names a mismatching leaf carries. */
static void
cert_detail(struct driver *d, SSL *ssl, X509 *leaf, long vr)
{
	struct send_outcome *o = d->o;
	struct certchain_facts f;
	struct strbuf names = STRBUF_INIT;
	enum certchain_problem p;
	char when[64];

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
	    vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		certchain_match_host(leaf, d->s->servername, &names, NULL, 0);
		(void)bsnprintf(o->detail, sizeof(o->detail), "it names %s",
		    names.s);
		strbuf_free(&names);
		return;
	}
	certchain_verify(SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), leaf,
	    SSL_get_peer_cert_chain(ssl), 1, &f);
	p = certchain_server_problem(&f, o->issuer, sizeof(o->issuer),
	    o->trust_file, sizeof(o->trust_file), when, sizeof(when));
	if (p == CERTCHAIN_MISSING_INTERMEDIATE &&
	    o->cause == FC_TLS_UNTRUSTED)
		o->cause = FC_TLS_MISSING_INTERMEDIATE;
	if (p == CERTCHAIN_EXPIRED || p == CERTCHAIN_NOT_YET_VALID)
		(void)bsnprintf(o->detail, sizeof(o->detail), "%s %s",
		    p == CERTCHAIN_EXPIRED ? "expired" : "valid from", when);
}

/* 0 when the certificate passes (or is not checked), else -1 and the
 * failure noted. */
static int
check_cert(struct sconn *sc)
{
	struct driver *d = sc->d;
	SSL *ssl = smtp_client_ssl(sc->c);
	X509 *leaf;
	long vr;

	if (!d->s->verify || ssl == NULL)
		return 0;
	leaf = SSL_get0_peer_certificate(ssl);
	vr = leaf != NULL ? SSL_get_verify_result(ssl) :
	    X509_V_ERR_UNSPECIFIED;
	if (vr == X509_V_OK)
		return 0;
	if (!first_failure(d))
		return -1;
	strbuf_printf(&d->o->what, "the certificate of %s is not trusted: "
	    "%s", d->s->host, X509_verify_cert_error_string(vr));
	d->o->cause = failcause_from_verify(vr);
	if (leaf != NULL)
		cert_detail(d, ssl, leaf, vr);
	return -1;
}

/* ---- set-up ---------------------------------------------------------- */

static void on_ehlo(struct smtp_client *, const struct smtp_client_result *,
		    void *);

static int
step_failed(struct sconn *sc, const struct smtp_client_result *r)
{
	if (r->err == SMTP_CLIENT_OK)
		return 0;
	note_result(sc->d, r, NULL);
	setup_failed(sc, r->err == SMTP_CLIENT_EREPLY);
	return 1;
}

static void
on_auth(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;
	struct driver *d = sc->d;

	(void)c;
	if (step_failed(sc, r))
		return;
	sc->ready = 1;
	if (!d->opened) {
		d->opened = 1;
		if (d->s->opened != NULL)
			d->s->opened(d->s->arg, mode_name(sc));
	}
	next_message(sc);
}

/* After the last EHLO: what the message needs, then AUTH. */
static void
ready(struct sconn *sc)
{
	struct driver *d = sc->d;
	const struct smtp_ehlo *e = smtp_client_ehlo_info(sc->c);
	unsigned ext = e != NULL ? e->ext : 0;
	static const struct smtp_client_result ok;
	const char *mech;

	if (d->s->smtputf8 && !(ext & SMTP_EXT_SMTPUTF8)) {
		note_own(d, FC_NEEDS_SMTPUTF8, NULL, "an address is not ASCII "
		    "but %s does not offer SMTPUTF8", d->s->host);
		setup_failed(sc, 1);
		return;
	}
	if (d->s->eightbit && !(ext & SMTP_EXT_8BITMIME)) {
		note_own(d, FC_NEEDS_8BITMIME, NULL, "the message has 8-bit "
		    "data but %s does not offer 8BITMIME", d->s->host);
		setup_failed(sc, 1);
		return;
	}
	if (d->s->user == NULL) {
		on_auth(sc->c, &ok, sc);
		return;
	}
	if (!(ext & SMTP_EXT_AUTH)) {
		note_own(d, FC_AUTH_NOT_OFFERED, NULL, "%s offers no AUTH%s",
		    d->s->host, smtp_client_ssl(sc->c) == NULL ?
		    " before TLS" : "");
		setup_failed(sc, 1);
		return;
	}
	mech = (e->auth & SMTP_AUTH_PLAIN) ? "PLAIN" :
	    (e->auth & SMTP_AUTH_LOGIN) ? "LOGIN" : NULL;
	if (mech == NULL) {
		note_own(d, FC_AUTH_NO_MECH, e->auth_mechs, "%s offers no "
		    "AUTH mechanism this client has (PLAIN, LOGIN)",
		    d->s->host);
		setup_failed(sc, 1);
		return;
	}
	smtp_client_auth(sc->c, mech, d->s->user, d->s->password,
	    d->s->tls == SEND_TLS_PLAIN, on_auth, sc);
}

static void
on_starttls(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;

	if (step_failed(sc, r))
		return;
	if (check_cert(sc) == -1) {
		setup_failed(sc, 1);
		return;
	}
	smtp_client_ehlo(c, sc->d->s->helo, on_ehlo, sc);
}

static void
on_ehlo(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;
	struct driver *d = sc->d;
	const struct smtp_ehlo *e;

	if (step_failed(sc, r))
		return;
	e = smtp_client_ehlo_info(c);
	if (smtp_client_ssl(c) != NULL || d->s->tls == SEND_TLS_PLAIN) {
		ready(sc);
		return;
	}
	if (e != NULL && (e->ext & SMTP_EXT_STARTTLS)) {
		smtp_client_starttls(c, d->s->ctx, d->s->servername,
		    on_starttls, sc);
		return;
	}
	if (d->s->tls == SEND_TLS_STARTTLS || d->s->user != NULL) {
		note_own(d, FC_NO_STARTTLS, NULL, "%s does not offer STARTTLS"
		    "%s", d->s->host, d->s->user != NULL && d->s->tls ==
		    SEND_TLS_AUTO ? " and credentials are never sent in "
		    "clear" : "");
		setup_failed(sc, 1);
		return;
	}
	ready(sc);	/* AUTO without STARTTLS: plain, as asked for */
}

static void
on_greeting(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;

	if (step_failed(sc, r))
		return;
	smtp_client_ehlo(c, sc->d->s->helo, on_ehlo, sc);
}

static void
on_tls(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;

	if (step_failed(sc, r))
		return;
	if (check_cert(sc) == -1) {
		setup_failed(sc, 0);
		return;
	}
	smtp_client_greeting(c, on_greeting, sc);
}

static void
on_connect(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;
	struct driver *d = sc->d;

	if (r->err != SMTP_CLIENT_OK && sc->ai->ai_next != NULL) {
		/* another address of the name may work */
		smtp_client_free(c);
		sc->ai = sc->ai->ai_next;
		sc->c = smtp_client_new(d->base, &d->to);
		smtp_client_connect(sc->c, sc->ai->ai_addr,
		    sc->ai->ai_addrlen, on_connect, sc);
		return;
	}
	if (step_failed(sc, r))
		return;
	d->o->connections++;
	if (d->s->tls == SEND_TLS_IMPLICIT)
		smtp_client_tls(c, d->s->ctx, d->s->servername, on_tls, sc);
	else
		smtp_client_greeting(c, on_greeting, sc);
}

static void
conn_start(struct sconn *sc)
{
	struct driver *d = sc->d;

	sc->ready = 0;
	sc->used = 0;
	sc->ai = d->s->ai;
	sc->c = smtp_client_new(d->base, &d->to);
	smtp_client_connect(sc->c, sc->ai->ai_addr, sc->ai->ai_addrlen,
	    on_connect, sc);
}

/* ---- transactions ---------------------------------------------------- */

static int
s_count_one(const struct driver *d)
{
	return d->s->count == 1;
}

static void
on_sent(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct sconn *sc = arg;
	struct driver *d = sc->d;
	struct send_outcome *o = d->o;
	const struct smtp_reply *rr;
	size_t i;

	sc->used++;
	if (r->err == SMTP_CLIENT_OK) {
		o->sent++;
		o->lat[o->nlat++] = mono_now() - sc->t0;
		if (s_count_one(d)) {
			struct strbuf ok = STRBUF_INIT;

			smtp_reply_format(r->reply, &ok, " ");
			bstrlcpy(o->last_ok, ok.s, sizeof(o->last_ok));
			strbuf_free(&ok);
		}
		/* accepted for some: say which recipients were refused */
		for (i = 0; i < d->s->nrcpts; i++)
			if ((rr = smtp_client_rcpt_reply(c, i)) != NULL &&
			    smtp_reply_class(rr) != 2) {
				struct smtp_client_result rr_res = *r;

				rr_res.err = SMTP_CLIENT_EREPLY;
				rr_res.step = "RCPT";
				rr_res.reply = rr;
				note_result(d, &rr_res, d->s->rcpts[i]);
				o->failed++;
				count_code(o, rr->code, 1);
				break;
			}
		next_message(sc);
		return;
	}
	o->failed++;
	count_code(o, r->reply != NULL ? r->reply->code : 0, 1);
	note_result(d, r, r->reply != NULL && strcmp(r->step, "RCPT") == 0 &&
	    d->s->nrcpts == 1 ? d->s->rcpts[0] : NULL);
	if (r->err == SMTP_CLIENT_EREPLY && r->reply->code != 421 &&
	    strcmp(r->step, "RSET") != 0) {
		next_message(sc);	/* the connection is still good */
		return;
	}
	/* lost, or 421 (the server closes): a new connection */
	smtp_client_free(c);
	sc->c = NULL;
	if (d->stop || (d->next >= d->s->count && !sc->has_next)) {
		finish_conn(sc);
		return;
	}
	conn_start(sc);
}

static void
next_message(struct sconn *sc)
{
	struct driver *d = sc->d;
	const struct send_settings *s = d->s;
	struct smtp_client_envelope env;
	char num[SEND_MID_DIGITS + 2];
	unsigned long n;

	if (sc->has_next) {
		/* claimed when announced: its commands may be out already */
		n = sc->next;
		sc->has_next = 0;
	} else if (d->stop || d->next >= s->count) {
		smtp_client_quit(sc->c, on_quit, sc);
		return;
	} else
		n = d->next++;
	if (s->mid_digits > 0) {
		(void)bsnprintf(num, sizeof(num), "%0*lu", SEND_MID_DIGITS,
		    n + 1);
		memcpy(sc->buf + s->mid_digits, num, SEND_MID_DIGITS);
	}
	memset(&env, 0, sizeof(env));
	env.from = s->from;
	env.rcpts = s->rcpts;
	env.nrcpts = s->nrcpts;
	env.size = s->len;
	env.body_8bit = s->eightbit;
	env.smtputf8 = s->smtputf8;
	if (sc->used > 0)
		smtp_client_rset_next(sc->c);
	sc->t0 = mono_now();
	smtp_client_send(sc->c, &env, sc->buf != NULL ? sc->buf : s->msg,
	    s->len, on_sent, sc);
	if (!d->stop && d->next < s->count) {
		/* the next one's RSET, MAIL, RCPT, DATA go out with this
		 * one's "." (RFC 2920 3.1): one round trip per message */
		sc->next = d->next++;
		sc->has_next = 1;
		smtp_client_send_next(sc->c, &env);
	}
}

/* ---- the run --------------------------------------------------------- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct driver *d = arg;
	double t = mono_now() - d->start;

	(void)fd;
	(void)what;
	fprintf(stderr, "\r%lu/%lu sent, %lu failed, %lu connections, "
	    "%.0f msg/s   ", d->o->sent, d->s->count, d->o->failed,
	    d->active, t > 0 ? (double)d->o->sent / t : 0.0);
	fflush(stderr);
}

int
send_driver_run(const struct send_settings *s, struct send_outcome *o)
{
	struct driver d;
	struct timeval half = { 0, 500000 };
	unsigned long i, nconn;

	memset(o, 0, sizeof(*o));
	memset(&d, 0, sizeof(d));
	d.s = s;
	d.o = o;
	o->lat = xcalloc(s->count, sizeof(double));
	if ((d.base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	smtp_client_timeouts_default(&d.to);
	d.to.connect = d.to.tls = d.to.greeting = d.to.ehlo = d.to.command =
	    d.to.mail = d.to.rcpt = d.to.data_init = d.to.data_block =
	    s->timeout;
	if (d.to.data_end > s->timeout * 4)
		d.to.data_end = s->timeout * 4;
	nconn = s->concurrency < s->count ? s->concurrency : s->count;
	d.conns = xcalloc(nconn, sizeof(*d.conns));
	d.start = mono_now();
	if (s->progress) {
		d.tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
		event_add(d.tick, &half);
	}
	for (i = 0; i < nconn; i++) {
		d.conns[i].d = &d;
		if (s->mid_digits > 0) {
			d.conns[i].buf = xmalloc(s->len);
			memcpy(d.conns[i].buf, s->msg, s->len);
		}
		d.active++;
		conn_start(&d.conns[i]);
	}
	event_base_dispatch(d.base);
	o->elapsed = mono_now() - d.start;
	if (d.tick != NULL) {
		event_free(d.tick);
		on_tick(-1, 0, &d);
		fputs("\n", stderr);
	}
	for (i = 0; i < nconn; i++) {
		smtp_client_free(d.conns[i].c);
		free(d.conns[i].buf);
	}
	free(d.conns);
	event_base_free(d.base);
	return o->sent == s->count && o->failed == 0 ? 0 : 1;
}

void
send_outcome_free(struct send_outcome *o)
{
	if (o == NULL)
		return;
	strbuf_free(&o->reply);
	strbuf_free(&o->what);
	free(o->lat);
	o->lat = NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
send_outcome_percentile(struct send_outcome *o, double p)
{
	size_t k;

	if (o->nlat == 0)
		return 0;
	qsort(o->lat, o->nlat, sizeof(double), cmp_double);
	k = (size_t)(p / 100.0 * (double)(o->nlat - 1) + 0.5);
	return o->lat[k < o->nlat ? k : o->nlat - 1];
}
