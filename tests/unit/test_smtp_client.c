/*
 * test_smtp_client.c - the SMTP client step machine against a scripted
 * fake server (fake_smtp_server.h) in the same process and event loop,
 * over a socketpair:
 * greeting, EHLO and its extensions, HELO fallback, STARTTLS refused,
 * STARTTLS with plaintext injected after the 220, STARTTLS with a real
 * handshake (in-memory certificate) and EHLO again, the STARTTLS
 * command-injection check (STARTTLS + NOOP in one packet; the first reply
 * in TLS), timeouts with small
 * values, closed connections, garbage and overlong replies, refused
 * connect, bad command lines, callbacks never run inside a step call.
 * AUTH PLAIN/LOGIN (exact responses, refusals, plaintext refusal,
 * unexpected 334); mail transactions with and without PIPELINING,
 * dot-stuffing, per-recipient replies, refusals at each stage, a close
 * and a timeout during the data, parameters, usage errors, 1 MiB intact.
 * The final reply per recipient (smtp_client_data_reply) in SMTP; LMTP
 * (RFC 2033): LHLO, one final reply per accepted recipient, all of them
 * refused, a server that stalls or trickles them past the deadline, a
 * 354 without recipients, and a session over a real UNIX socket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "smtp_client.h"
#include "strbuf.h"
#include "util.h"
#include "fake_smtp_server.h"

/* ---- the client driver ---------------------------------------------- */

/* A test runs a list of client steps; each result is recorded, and the
 * chain stops at the first result that is not OK (or at the end). */
enum cstep { C_GREETING, C_EHLO, C_STARTTLS, C_CMD, C_QUIT, C_AUTH, C_SEND,
	C_RSET_SEND, C_STARTTLS_INJECT, C_SEND_NEXT, C_END };

struct drv {
	struct event_base	*base;
	struct smtp_client	*c;
	const enum cstep	*steps;
	const char		*cmd;
	SSL_CTX			*cctx;
	size_t			 i;
	int			 in_call;	/* inside a step function */
	int			 cb_inside;	/* a callback ran inside */
	struct smtp_client_result last;
	int			 last_code;
	int			 have_last;
	int			 done;
	int			 freed;
	char			 peer_cn[64];
	int			 ehlo_after_tls_has_starttls;
	int			 n_ok;
	const char		*mech;		/* C_AUTH */
	const char		*user, *pass;
	int			 allow_plain;
	const struct smtp_client_envelope *env;	/* C_SEND */
	const struct smtp_client_envelope *env2; /* C_SEND_NEXT: announced */
	int			 sends;		/* C_SEND_NEXT steps so far */
	const char		*msg;
	size_t			 msglen;
};

static void drv_next(struct drv *);

static void
drv_cb(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
	struct drv *d = arg;
	SSL *ssl;
	X509 *x;

	if (d->in_call)
		d->cb_inside = 1;
	d->last = *r;
	d->have_last = 1;
	d->last_code = r->reply != NULL ? r->reply->code : 0;
	if (r->reply != NULL)
		assert_ptr_equal(r->reply, smtp_client_last_reply(c));
	if ((ssl = smtp_client_ssl(c)) != NULL &&
	    (x = SSL_get1_peer_certificate(ssl)) != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, d->peer_cn, sizeof(d->peer_cn));
		X509_free(x);
	}
	if (r->err != SMTP_CLIENT_OK || d->steps[d->i] == C_END) {
		d->done = 1;
		event_base_loopbreak(d->base);
		return;
	}
	d->n_ok++;
	drv_next(d);
}

static void
drv_next(struct drv *d)
{
	enum cstep s = d->steps[d->i++];

	d->in_call = 1;
	switch (s) {
	case C_GREETING:
		smtp_client_greeting(d->c, drv_cb, d);
		break;
	case C_EHLO:
		smtp_client_ehlo(d->c, "client.test", drv_cb, d);
		break;
	case C_STARTTLS:
		smtp_client_starttls(d->c, d->cctx, "fake.test", drv_cb, d);
		break;
	case C_STARTTLS_INJECT:
		smtp_client_starttls_inject(d->c, d->cctx, "fake.test", drv_cb,
		    d);
		break;
	case C_CMD:
		smtp_client_command(d->c, d->cmd, 0, drv_cb, d);
		break;
	case C_QUIT:
		smtp_client_quit(d->c, drv_cb, d);
		break;
	case C_AUTH:
		smtp_client_auth(d->c, d->mech, d->user, d->pass,
		    d->allow_plain, drv_cb, d);
		break;
	case C_SEND:
		smtp_client_send(d->c, d->env, d->msg, d->msglen, drv_cb, d);
		break;
	case C_RSET_SEND:
		smtp_client_rset_next(d->c);
		smtp_client_send(d->c, d->env, d->msg, d->msglen, drv_cb, d);
		break;
	case C_SEND_NEXT:
		/* this transaction (RSET first, as a caller does, when not
		 * the first), and the next one announced */
		if (d->sends++ > 0)
			smtp_client_rset_next(d->c);
		smtp_client_send(d->c, d->env, d->msg, d->msglen, drv_cb, d);
		smtp_client_send_next(d->c, d->env2 != NULL ? d->env2 : d->env);
		break;
	case C_END:
		d->done = 1;
		event_base_loopbreak(d->base);
		break;
	}
	d->in_call = 0;
}

static void
attach_cb(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct drv *d = arg;

	(void)c;
	if (d->in_call)
		d->cb_inside = 1;
	assert_int_equal(r->err, SMTP_CLIENT_OK);
	assert_null(r->reply);
	drv_next(d);
}

/* Parameters for the next run() (consumed and cleared by it). */
static struct {
	const char	*mech, *user, *pass;
	int		 allow_plain;
	const struct smtp_client_envelope *env, *env2;
	const char	*msg;
	size_t		 msglen;
	int		 lmtp;		/* smtp_client_set_lmtp(c, 1) */
	int		 have_fds;	/* use fds instead of a socketpair */
	int		 fds[2];	/* client, fake server */
} args;

/* Run `steps` against `script`; the result of the last step is in d. */
static void
run(struct drv *d, const struct sstep *script, size_t n,
    const enum cstep *steps, double timeout, SSL_CTX *sctx, SSL_CTX *cctx,
    struct fake *f)
{
	struct smtp_client_timeouts to;
	struct timeval guard = { 10, 0 };
	int sv[2], lmtp;

	memset(d, 0, sizeof(*d));
	/* parameters of C_AUTH / C_SEND, set by the test before run() */
	d->mech = args.mech;
	d->user = args.user;
	d->pass = args.pass;
	d->allow_plain = args.allow_plain;
	d->env = args.env;
	d->env2 = args.env2;
	d->msg = args.msg;
	d->msglen = args.msglen;
	lmtp = args.lmtp;
	if (args.have_fds) {
		sv[0] = args.fds[0];
		sv[1] = args.fds[1];
	} else
		assert_int_equal(socketpair(AF_UNIX,
		    SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	memset(&args, 0, sizeof(args));
	d->base = event_base_new();
	assert_non_null(d->base);
	smtp_client_timeouts_default(&to);
	if (timeout > 0)
		to.greeting = to.ehlo = to.command = to.tls = to.mail =
		    to.rcpt = to.data_init = to.data_block = to.data_end =
		    timeout;
	d->c = smtp_client_new(d->base, &to);
	if (lmtp)
		smtp_client_set_lmtp(d->c, 1);
	d->steps = steps;
	d->cctx = cctx;
	d->cmd = "NOOP";
	fake_start(f, d->base, sv[1], script, n, sctx);
	d->in_call = 1;
	smtp_client_attach_fd(d->c, sv[0], attach_cb, d);
	d->in_call = 0;
	event_base_loopexit(d->base, &guard);
	event_base_dispatch(d->base);
	assert_true(d->done);
	assert_false(d->cb_inside);
}

static void
finish_run(struct drv *d, struct fake *f)
{
	smtp_client_free(d->c);
	fake_stop(f);
	event_base_free(d->base);
}

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char EHLO_REPLY[] = "250-fake.test hello\r\n250-PIPELINING\r\n"
    "250-SIZE 1000\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n";

static void
test_greeting_ehlo_quit(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220-fake.test ESMTP\r\n220 hi\r\n" },
		{ "EHLO client.test", A_SEND, EHLO_REPLY },
		{ "QUIT", A_SEND, "221 2.0.0 bye\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_QUIT,
		C_END };
	const struct smtp_ehlo *e;
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_int_equal(d.n_ok, 2);
	assert_false(f.mismatch);
	assert_true(smtp_client_esmtp(d.c));
	e = smtp_client_ehlo_info(d.c);
	assert_non_null(e);
	assert_int_equal(e->ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	    SMTP_EXT_STARTTLS | SMTP_EXT_AUTH);
	assert_int_equal(e->size, 1000);
	assert_null(smtp_client_ssl(d.c));
	finish_run(&d, &f);
}

static void
test_helo_fallback(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 old.test SMTP\r\n" },
		{ "EHLO client.test", A_SEND, "502 unrecognized\r\n" },
		{ "HELO client.test", A_SEND, "250 old.test\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_string_equal(d.last.step, "HELO");
	assert_int_equal(d.last_code, 250);
	assert_false(smtp_client_esmtp(d.c));
	assert_null(smtp_client_ehlo_info(d.c));
	assert_false(f.mismatch);
	finish_run(&d, &f);
}

static void
test_ehlo_4xx_no_fallback(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, "421 4.3.2 shutting down\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_int_equal(d.last_code, 421);
	assert_int_equal(f.ngot, 1);
	finish_run(&d, &f);
}

static void
test_greeting_554(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "554 5.7.1 Access denied\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "greeting");
	assert_int_equal(d.last_code, 554);
	assert_string_equal(d.last.reply->enhanced, "5.7.1");
	finish_run(&d, &f);
}

static void
test_starttls_refused_then_usable(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_SEND, "454 4.7.0 TLS not available\r\n" },
		{ "NOOP", A_SEND, "250 2.0.0 Ok\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_END };
	static const enum cstep steps2[] = { C_CMD, C_END };
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;
	struct timeval guard = { 10, 0 };

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "STARTTLS");
	assert_int_equal(d.last_code, 454);
	assert_null(smtp_client_ssl(d.c));
	/* still usable: a NOOP */
	d.steps = steps2;
	d.i = 0;
	d.done = 0;
	drv_next(&d);
	event_base_loopexit(d.base, &guard);
	event_base_dispatch(d.base);
	assert_true(d.done);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 250);
	assert_string_equal(d.last.step, "NOOP");
	assert_false(f.mismatch);
	finish_run(&d, &f);
	SSL_CTX_free(cctx);
}

static void
test_starttls_injection(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_RAW, "220 2.0.0 go ahead\r\n250 injected\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_END };
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EPROTO);
	assert_non_null(strstr(d.last.detail, "after its 220"));
	assert_null(smtp_client_ssl(d.c));
	finish_run(&d, &f);
	SSL_CTX_free(cctx);
}

static void
test_starttls_handshake_and_ehlo_again(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" },
		{ "EHLO client.test", A_SEND,
		    "250-fake.test\r\n250 AUTH PLAIN\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_EHLO, C_QUIT, C_END };
	SSL_CTX *sctx = fake_server_ctx();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	const struct smtp_ehlo *e;
	struct drv d;
	struct fake f;
	SSL *ssl;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, sctx, cctx, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("step %s: %s: %s", d.last.step,
		    smtp_client_strerror(d.last.err), d.last.detail);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 4);
	assert_string_equal(d.peer_cn, "fake.test");
	ssl = smtp_client_ssl(d.c);
	assert_non_null(ssl);
	assert_non_null(SSL_get_peer_cert_chain(ssl));
	e = smtp_client_ehlo_info(d.c);
	assert_non_null(e);
	assert_int_equal(e->ext, SMTP_EXT_AUTH);	/* the new list */
	finish_run(&d, &f);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* The injection check writes STARTTLS and NOOP in one packet (the fake
 * reads both lines in one read). */
static void
test_starttls_inject_one_packet(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_SEND, "454 4.7.0 not now\r\n" },
		{ "NOOP", A_SEND, "250 2.0.0 Ok\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO,
		C_STARTTLS_INJECT, C_END };
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_int_equal(d.last_code, 454);
	assert_int_equal(f.ngot, 3);
	assert_string_equal(f.got[1], "STARTTLS");
	assert_string_equal(f.got[2], "NOOP");
	assert_int_equal(f.got_read[1], f.got_read[2]);
	finish_run(&d, &f);
	SSL_CTX_free(cctx);
}

/*
 * After the handshake the first reply inside TLS tells: 221 to our QUIT
 * (the NOOP was dropped with the plaintext) or 250 (the server ran the
 * NOOP it had read before TLS: CVE-2011-0411 class).  The handshake's
 * start time is known.
 */
static void
test_starttls_inject_verdict(void **state)
{
	static const struct sstep clean[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct sstep vulnerable[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" },
		{ "QUIT", A_SEND, "250 2.0.0 Ok\r\n221 bye\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO,
		C_STARTTLS_INJECT, C_QUIT, C_END };
	SSL_CTX *sctx = fake_server_ctx();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;
	double t0;

	(void)state;
	t0 = mono_now();
	run(&d, clean, NELEM(clean), steps, 0, sctx, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_true(smtp_client_tls_started(d.c) >= t0);
	assert_true(smtp_client_tls_started(d.c) <= mono_now());
	finish_run(&d, &f);
	run(&d, vulnerable, NELEM(vulnerable), steps, 0, sctx, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 250);
	finish_run(&d, &f);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
test_tls_handshake_garbage(void **state)
{
	/* The server answers STARTTLS with 220, then speaks plaintext after
	 * our ClientHello: the handshake fails with ETLS. */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_SEND, "220 go\r\n" },
		{ "*", A_CLOSE, "500 what is this\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_END };
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 2, NULL, cctx, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETLS);
	assert_string_equal(d.last.step, "STARTTLS");
	assert_true(d.last.detail[0] != '\0');
	finish_run(&d, &f);
	SSL_CTX_free(cctx);
}

static void
test_greeting_timeout(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SILENT, NULL },
	};
	static const enum cstep steps[] = { C_GREETING, C_END };
	struct drv d;
	struct fake f;
	double t0 = mono_now();

	(void)state;
	run(&d, script, NELEM(script), steps, 0.2, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_true(mono_now() - t0 < 3);
	assert_non_null(strstr(d.last.detail, "greeting"));
	finish_run(&d, &f);
}

static void
test_command_timeout_trickle(void **state)
{
	/* a reply that never ends: partial line, then silence */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "NOOP", A_SEND, "250-part\r\n250" },
	};
	static const enum cstep steps[] = { C_GREETING, C_CMD, C_CMD, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0.2, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_string_equal(d.last.step, "NOOP");
	assert_int_equal(d.n_ok, 1);
	finish_run(&d, &f);
}

static void
test_closed_mid_reply(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_CLOSE, "250-fake.test\r\n250-PIPE" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ECLOSED);
	assert_non_null(strstr(d.last.detail, "middle"));
	finish_run(&d, &f);
}

static void
test_closed_before_greeting(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_CLOSE, NULL },
	};
	static const enum cstep steps[] = { C_GREETING, C_END };
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ECLOSED);
	finish_run(&d, &f);
}

static void
test_garbage_and_overlong(void **state)
{
	static const struct sstep garbage[] = {
		{ NULL, A_SEND, "HTTP/1.1 400 Bad Request\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_END };
	struct sstep longl[1];
	char *big = xmalloc(20001);
	struct drv d;
	struct fake f;

	(void)state;
	run(&d, garbage, NELEM(garbage), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EPROTO);
	assert_non_null(strstr(d.last.detail, "reply code"));
	finish_run(&d, &f);

	memcpy(big, "220 ", 4);
	memset(big + 4, 'a', 19996);
	big[20000] = '\0';
	longl[0].expect = NULL;
	longl[0].act = A_SEND;
	longl[0].reply = big;
	run(&d, longl, 1, steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EPROTO);
	assert_non_null(strstr(d.last.detail, "too long"));
	finish_run(&d, &f);
	free(big);
}

static void
usage_cb(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct drv *d = arg;

	(void)c;
	if (d->in_call)
		d->cb_inside = 1;
	d->last = *r;
	d->done = 1;
}

static void
test_usage_errors(void **state)
{
	struct event_base *base = event_base_new();
	struct smtp_client *c = smtp_client_new(base, NULL);
	struct drv d;
	int sv[2];

	(void)state;
	memset(&d, 0, sizeof(d));
	/* not connected */
	d.in_call = 1;
	smtp_client_command(c, "NOOP", 0, usage_cb, &d);
	d.in_call = 0;
	assert_false(d.done);
	event_base_loop(base, EVLOOP_ONCE);
	assert_true(d.done);
	assert_false(d.cb_inside);
	assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	d.done = 0;
	smtp_client_attach_fd(c, sv[0], usage_cb, &d);
	event_base_loop(base, EVLOOP_ONCE);
	assert_true(d.done);
	/* CR LF in a command: refused, nothing sent */
	d.done = 0;
	d.in_call = 1;
	smtp_client_command(c, "NOOP\r\nQUIT", 0, usage_cb, &d);
	d.in_call = 0;
	event_base_loop(base, EVLOOP_ONCE);
	assert_true(d.done);
	assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
	d.done = 0;
	smtp_client_ehlo(c, "bad name", usage_cb, &d);
	event_base_loop(base, EVLOOP_ONCE);
	assert_true(d.done);
	assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
	assert_false(d.cb_inside);
	smtp_client_free(c);
	close(sv[1]);
	event_base_free(base);
}

static void
test_connect_refused(void **state)
{
	struct event_base *base = event_base_new();
	struct smtp_client *c = smtp_client_new(base, NULL);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct timeval guard = { 10, 0 };
	struct drv d;
	int s;

	(void)state;
	/* a port nobody listens on: bind, read the port, close */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	close(s);

	memset(&d, 0, sizeof(d));
	d.in_call = 1;
	smtp_client_connect(c, (struct sockaddr *)&sin, sizeof(sin), usage_cb,
	    &d);
	d.in_call = 0;
	event_base_loopexit(base, &guard);
	while (!d.done && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	assert_true(d.done);
	assert_false(d.cb_inside);
	assert_int_equal(d.last.err, SMTP_CLIENT_ECONNREFUSED);
	assert_string_equal(d.last.step, "connect");
	smtp_client_free(c);
	event_base_free(base);
}

/* Freeing the client from inside its callback is allowed. */
static void
free_cb(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	int *n = arg;

	(void)r;
	smtp_client_free(c);
	(*n)++;
}

static void
test_free_in_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct smtp_client *c = smtp_client_new(base, NULL);
	int sv[2], n = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	smtp_client_attach_fd(c, sv[0], free_cb, &n);
	event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(n, 1);
	close(sv[1]);
	event_base_free(base);
}

/* ---- AUTH ------------------------------------------------------------ */

static const enum cstep auth_steps[] = { C_GREETING, C_EHLO, C_AUTH, C_END };

static void
auth_args(const char *mech, int allow_plain)
{
	memset(&args, 0, sizeof(args));
	args.mech = mech;
	args.user = "user";
	args.pass = "secret";
	args.allow_plain = allow_plain;
}

/* No trace of the secret or its base64 in the result. */
static void
assert_no_secret(const struct drv *d)
{
	assert_null(strstr(d->last.detail, "secret"));
	assert_null(strstr(d->last.detail, "c2VjcmV0"));
	assert_null(strstr(d->last.detail, "AHVzZXIAc2VjcmV0"));
}

static void
test_auth_plain_ok(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "AUTH PLAIN ", A_SEND, "235 2.7.0 Authentication "
		    "successful\r\n" },
	};
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("PLAIN", 1);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_string_equal(d.last.step, "AUTH");
	assert_int_equal(d.last_code, 235);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 2);
	assert_string_equal(f.got[1], "AUTH PLAIN AHVzZXIAc2VjcmV0");
	finish_run(&d, &f);
}

static void
test_auth_login_ok(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "AUTH LOGIN", A_SEND, "334 VXNlcm5hbWU6\r\n" },
		{ "dXNlcg==", A_SEND, "334 UGFzc3dvcmQ6\r\n" },
		{ "c2VjcmV0", A_SEND, "235 2.7.0 ok\r\n" },
	};
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("login", 1);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 235);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 4);
	assert_string_equal(f.got[1], "AUTH LOGIN");
	assert_string_equal(f.got[2], "dXNlcg==");
	assert_string_equal(f.got[3], "c2VjcmV0");
	finish_run(&d, &f);
}

static void
test_auth_refused(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "AUTH PLAIN ", A_SEND, "535 5.7.8 Authentication "
		    "credentials invalid\r\n" },
		{ "NOOP", A_SEND, "250 ok\r\n" },
	};
	static const enum cstep steps2[] = { C_CMD, C_END };
	static const struct sstep script2[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "AUTH LOGIN", A_SEND, "334 VXNlcm5hbWU6\r\n" },
		{ "dXNlcg==", A_SEND, "334 UGFzc3dvcmQ6\r\n" },
		{ "c2VjcmV0", A_SEND, "454 4.7.0 try later\r\n" },
	};
	struct timeval guard = { 10, 0 };
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("PLAIN", 1);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "AUTH");
	assert_int_equal(d.last_code, 535);
	assert_no_secret(&d);
	/* the session goes on */
	d.steps = steps2;
	d.i = 0;
	d.done = 0;
	drv_next(&d);
	event_base_loopexit(d.base, &guard);
	event_base_dispatch(d.base);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 250);
	finish_run(&d, &f);

	auth_args("LOGIN", 1);
	run(&d, script2, NELEM(script2), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_int_equal(d.last_code, 454);
	assert_no_secret(&d);
	assert_false(f.mismatch);
	finish_run(&d, &f);
}

static void
test_auth_plaintext_refused(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
	};
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("PLAIN", 0);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
	assert_non_null(strstr(d.last.detail, "TLS"));
	assert_int_equal(f.ngot, 1);	/* EHLO only: nothing sent */
	finish_run(&d, &f);

	auth_args("CRAM-MD5", 1);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
	assert_int_equal(f.ngot, 1);
	finish_run(&d, &f);
}

static void
test_auth_unexpected_334(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "AUTH PLAIN ", A_SEND, "334 \r\n" },
	};
	static const struct sstep script2[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		/* "Password:" where "Username:" is due */
		{ "AUTH LOGIN", A_SEND, "334 UGFzc3dvcmQ6\r\n" },
	};
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("PLAIN", 1);
	run(&d, script, NELEM(script), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EPROTO);
	assert_int_equal(d.last_code, 334);
	assert_no_secret(&d);
	finish_run(&d, &f);

	auth_args("LOGIN", 1);
	run(&d, script2, NELEM(script2), auth_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EPROTO);
	assert_int_equal(f.ngot, 2);	/* no user name sent */
	finish_run(&d, &f);
}

static void
test_auth_plain_over_tls(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_STARTTLS, "220 2.0.0 go\r\n" },
		{ "EHLO client.test", A_SEND, "250-fake.test\r\n250 AUTH "
		    "PLAIN\r\n" },
		{ "AUTH PLAIN AHVzZXIAc2VjcmV0", A_SEND, "235 ok\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_EHLO, C_AUTH, C_END };
	SSL_CTX *sctx = fake_server_ctx();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct drv d;
	struct fake f;

	(void)state;
	auth_args("PLAIN", 0);	/* TLS is up: no opt-in needed */
	run(&d, script, NELEM(script), steps, 0, sctx, cctx, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 235);
	assert_false(f.mismatch);
	assert_non_null(smtp_client_ssl(d.c));
	finish_run(&d, &f);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* ---- mail transactions ------------------------------------------------ */

static const char EHLO_NOPIPE[] = "250-fake.test\r\n250 SIZE 1000\r\n";
static const enum cstep send_steps[] = { C_GREETING, C_EHLO, C_SEND,
	C_END };
static const char *const rcpt1[] = { "b@y" };
static const char *const rcpt2[] = { "b@y", "c@y" };
static const char *const rcpt3[] = { "b@y", "c@y", "d@y" };

static void
send_args(const struct smtp_client_envelope *env, const char *msg)
{
	memset(&args, 0, sizeof(args));
	args.env = env;
	args.msg = msg;
	args.msglen = msg != NULL ? strlen(msg) : 0;
}

static void
test_send_no_pipelining(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL FROM:<a@x>", A_SEND, "250 2.1.0 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 2.0.0 queued as X\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	/* ".line", "..", a line that is only ".", no final CRLF */
	static const char msg[] = "Subject: t\r\n\r\n.line\r\n..\r\n.\r\n"
	    "mid.dle\r\nend";
	struct drv d;
	struct fake f;
	size_t i;

	(void)state;
	send_args(&env, msg);
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(d.last_code, 250);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 6);
	assert_string_equal(f.got[1], "MAIL FROM:<a@x>");
	assert_string_equal(f.got[2], "RCPT TO:<b@y>");
	assert_string_equal(f.got[3], "RCPT TO:<c@y>");
	assert_string_equal(f.got[4], "DATA");
	assert_string_equal(f.got[5], ".");
	/* one at a time: every command came in its own read */
	for (i = 2; i < 5; i++)
		assert_true(f.got_read[i] > f.got_read[i - 1]);
	assert_string_equal(f.raw.s, "Subject: t\r\n\r\n..line\r\n...\r\n"
	    "..\r\nmid.dle\r\nend\r\n");
	assert_string_equal(f.body.s, "Subject: t\r\n\r\n.line\r\n..\r\n"
	    ".\r\nmid.dle\r\nend\r\n");
	assert_int_equal(smtp_client_rcpt_reply(d.c, 0)->code, 250);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 1)->code, 250);
	assert_null(smtp_client_rcpt_reply(d.c, 2));
	finish_run(&d, &f);
}

/* A second transaction on the connection starts with RSET: pipelined
 * with MAIL under PIPELINING, alone first without it; a refused RSET
 * ends the step (and the connection). */
static void
test_send_rset_between(void **state)
{
	static const enum cstep steps2[] = { C_GREETING, C_EHLO, C_SEND,
	    C_RSET_SEND, C_END };
	static const struct sstep piped[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 1\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 2\r\n" },
	};
	static const struct sstep lone[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 1\r\n" },
		{ "RSET", A_SEND, "421 4.3.2 shutting down\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, "Subject: t\r\n\r\nx\r\n");
	run(&d, piped, NELEM(piped), steps2, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 250);
	assert_false(f.mismatch);
	assert_string_equal(f.got[5], "RSET");
	/* RSET, MAIL, RCPT and DATA came in one read */
	assert_int_equal(f.got_read[5], f.got_read[8]);
	finish_run(&d, &f);

	send_args(&env, "Subject: t\r\n\r\nx\r\n");
	run(&d, lone, NELEM(lone), steps2, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "RSET");
	assert_int_equal(d.last_code, 421);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 6);	/* nothing after the lone RSET */
	finish_run(&d, &f);
}

static void	run_more(struct drv *, const enum cstep *);

/* The index of the first line `got` that starts with `prefix`, from i. */
static size_t
got_index(const struct fake *f, const char *prefix, size_t i)
{
	for (; i < f->ngot; i++)
		if (strncmp(f->got[i], prefix, strlen(prefix)) == 0)
			return i;
	fail_msg("no line %s after %zu", prefix, i);
	return 0;
}

/* smtp_client_send_next: under PIPELINING the next transaction's RSET,
 * MAIL, RCPT and DATA come in the same read as the "." before them (RFC
 * 2920 3.1), and the next send only reads their replies; without
 * PIPELINING the announcement lapses and RSET goes out on its own. */
static void
test_send_next(void **state)
{
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_SEND_NEXT,
	    C_SEND_NEXT, C_RSET_SEND, C_QUIT, C_END };
	static const struct sstep piped[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 1\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "554 5.7.1 refused 2\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 3\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct sstep lone[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 1\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 2\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 3\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;
	size_t dot, rset;

	(void)state;
	send_args(&env, "Subject: t\r\n\r\n.x\r\n");
	run(&d, piped, NELEM(piped), steps, 0, NULL, NULL, &f);
	/* the second message was refused at its end of data: that is the
	 * step that stopped the run */
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(d.last_code, 554);
	assert_int_equal(d.n_ok, 3);	/* greeting, EHLO, message 1 */
	assert_false(f.mismatch);
	dot = got_index(&f, ".", 0);
	rset = got_index(&f, "RSET", dot);
	assert_int_equal(rset, dot + 1);
	/* ".", RSET, MAIL, RCPT and DATA: one read */
	assert_int_equal(f.got_read[rset + 3], f.got_read[dot]);
	/* the refusal does not end the session: the third one, announced
	 * and sent behind the refused second, goes through, then QUIT */
	run_more(&d, (const enum cstep[]){ C_RSET_SEND, C_QUIT, C_END });
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	assert_string_equal(f.body.s, "Subject: t\r\n\r\n.x\r\n"
	    "Subject: t\r\n\r\n.x\r\nSubject: t\r\n\r\n.x\r\n");
	finish_run(&d, &f);

	send_args(&env, "Subject: t\r\n\r\n.x\r\n");
	run(&d, lone, NELEM(lone), steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	dot = got_index(&f, ".", 0);
	rset = got_index(&f, "RSET", dot);
	assert_true(f.got_read[rset] > f.got_read[dot]);
	assert_string_equal(f.body.s, "Subject: t\r\n\r\n.x\r\n"
	    "Subject: t\r\n\r\n.x\r\nSubject: t\r\n\r\n.x\r\n");
	finish_run(&d, &f);
}

/* After an announced transaction went out, the next step must be its
 * send: another envelope or another step is refused and the connection
 * given up; QUIT closes without writing QUIT (it would be message text
 * after the server's 354). */
static void
test_send_next_misuse(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 queued 1\r\n" },
		{ "RSET", A_SEND, "250 2.0.0 ok\r\n" },
		{ "MAIL FROM:<z@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	static const struct smtp_client_envelope other = {
		"z@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	static const struct {
		enum cstep		 second;
		enum smtp_client_err	 want;
	} cases[] = {
		{ C_SEND, SMTP_CLIENT_EUSAGE },	/* env, not the announced */
		{ C_CMD, SMTP_CLIENT_EUSAGE },
		{ C_QUIT, SMTP_CLIENT_OK },
	};
	enum cstep steps[] = { C_GREETING, C_EHLO, C_SEND_NEXT, C_SEND,
	    C_CMD, C_END };
	struct drv d;
	struct fake f;
	size_t i, k;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		steps[3] = cases[i].second;
		send_args(&env, "Subject: t\r\n\r\nx\r\n");
		args.env2 = &other;
		run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
		assert_int_equal(d.n_ok, cases[i].want == SMTP_CLIENT_OK ? 4 :
		    3);
		if (cases[i].want == SMTP_CLIENT_OK)
			/* the step after QUIT finds the connection gone */
			assert_int_equal(d.last.err, SMTP_CLIENT_ECLOSED);
		else
			assert_int_equal(d.last.err, cases[i].want);
		for (k = 0; k < f.ngot; k++) {
			assert_string_not_equal(f.got[k], "QUIT");
			assert_string_not_equal(f.got[k], "NOOP");
		}
		finish_run(&d, &f);
	}
}

/* A reply in several TLS records that arrive together: the client reads
 * ahead, so one read(2) takes all of them, and libevent passes on only
 * the first; the others must be taken from the SSL before the client
 * waits for the socket again, where no more would come (STYLE 6). */
static void
test_tls_records_read_ahead(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" },
		{ "EHLO client.test", A_SPLIT, "250-fake.test\r\n"
		    "250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n" },
		{ "NOOP", A_SPLIT, "250-one\r\n250 two\r\n" },
		{ "QUIT", A_SPLIT, "221 bye\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_STARTTLS,
		C_EHLO, C_CMD, C_QUIT, C_END };
	SSL_CTX *sctx = fake_server_ctx();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	const struct smtp_ehlo *e;
	struct drv d;
	struct fake f;

	(void)state;
	/* a lost record would be a timeout: fail fast */
	run(&d, script, NELEM(script), steps, 3, sctx, cctx, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("step %s: %s: %s", d.last.step,
		    smtp_client_strerror(d.last.err), d.last.detail);
	assert_int_equal(d.last_code, 221);
	assert_int_equal(d.n_ok, 5);
	assert_false(f.mismatch);
	e = smtp_client_ehlo_info(d.c);
	assert_non_null(e);
	assert_int_equal(e->ext, SMTP_EXT_PIPELINING | SMTP_EXT_8BITMIME |
	    SMTP_EXT_SIZE);
	finish_run(&d, &f);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
test_send_pipelining(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 2.1.0 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "550 5.1.1 no such user\r\n" },
		{ "RCPT TO:<d@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 2.0.0 queued\r\n" },
	};
	static const char *const rp[] = { NULL, "NOTIFY=NEVER", "" };
	static const struct smtp_client_envelope env = {
		"a@x", rcpt3, 3, 123, 1, 1, "RET=HDRS ENVID=e1", rp
	};
	struct drv d;
	struct fake f;
	size_t i;

	(void)state;
	send_args(&env, "Subject: p\r\n\r\nhi\r\n");
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 250);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 7);
	assert_string_equal(f.got[1], "MAIL FROM:<a@x> SIZE=123 "
	    "BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=e1");
	assert_string_equal(f.got[2], "RCPT TO:<b@y>");
	assert_string_equal(f.got[3], "RCPT TO:<c@y> NOTIFY=NEVER");
	assert_string_equal(f.got[4], "RCPT TO:<d@y>");
	/* MAIL, RCPT x3 and DATA arrived in one read */
	for (i = 2; i <= 5; i++)
		assert_int_equal(f.got_read[i], f.got_read[1]);
	assert_true(f.got_read[6] > f.got_read[5]);
	assert_string_equal(f.body.s, "Subject: p\r\n\r\nhi\r\n");
	assert_int_equal(smtp_client_rcpt_reply(d.c, 0)->code, 250);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 1)->code, 550);
	assert_string_equal(smtp_client_rcpt_reply(d.c, 1)->enhanced,
	    "5.1.1");
	assert_int_equal(smtp_client_rcpt_reply(d.c, 2)->code, 250);
	assert_null(smtp_client_rcpt_reply(d.c, 3));
	finish_run(&d, &f);
}

static void
test_send_no_rcpt_accepted(void **state)
{
	static const struct sstep pipe[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "450 4.2.1 later\r\n" },
		{ "DATA", A_SEND, "554 5.5.1 no valid recipients\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct sstep nopipe[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL FROM:<>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "450 4.2.1 later\r\n" },
	};
	/* a server that says 354 to DATA without recipients: a lone "." */
	static const struct sstep odd[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "554 no recipients\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	static const enum cstep quit_steps[] = { C_QUIT, C_END };
	struct timeval guard = { 10, 0 };
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, "Subject: x\r\n\r\nbody\r\n");
	run(&d, pipe, NELEM(pipe), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "RCPT");
	assert_int_equal(d.last_code, 450);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 0)->code, 550);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 1)->code, 450);
	assert_int_equal(f.raw.len, 0);		/* no message */
	assert_int_equal(f.ngot, 5);
	/* the DATA reply was consumed: QUIT gets its own reply */
	d.steps = quit_steps;
	d.i = 0;
	d.done = 0;
	drv_next(&d);
	event_base_loopexit(d.base, &guard);
	event_base_dispatch(d.base);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	finish_run(&d, &f);

	send_args(&env, "Subject: x\r\n\r\nbody\r\n");
	run(&d, nopipe, NELEM(nopipe), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "RCPT");
	assert_int_equal(d.last_code, 450);
	assert_int_equal(f.ngot, 4);		/* no DATA */
	assert_false(f.mismatch);
	finish_run(&d, &f);

	send_args(&env, "Subject: x\r\n\r\nbody\r\n");
	run(&d, odd, NELEM(odd), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "RCPT");
	assert_int_equal(d.last_code, 550);
	assert_int_equal(f.raw.len, 0);
	assert_false(f.mismatch);
	finish_run(&d, &f);
}

static void
test_send_mail_refused(void **state)
{
	static const struct sstep nopipe[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL FROM:<a@x>", A_SEND, "553 5.1.8 bad sender\r\n" },
	};
	static const struct sstep pipe[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "452 4.3.1 full\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "503 5.5.1 MAIL first\r\n" },
		{ "DATA", A_SEND, "503 5.5.1 MAIL first\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, "x\r\n");
	run(&d, nopipe, NELEM(nopipe), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "MAIL");
	assert_int_equal(d.last_code, 553);
	assert_int_equal(f.ngot, 2);
	assert_null(smtp_client_rcpt_reply(d.c, 0));
	finish_run(&d, &f);

	send_args(&env, "x\r\n");
	run(&d, pipe, NELEM(pipe), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "MAIL");
	assert_int_equal(d.last_code, 452);
	assert_int_equal(f.ngot, 4);
	assert_int_equal(f.raw.len, 0);
	assert_false(f.mismatch);
	finish_run(&d, &f);
}

static void
test_send_data_refused(void **state)
{
	static const struct sstep eod[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "452 4.3.1 insufficient storage\r\n" },
	};
	static const struct sstep data[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_SEND, "451 4.3.0 not now\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, "x\r\n");
	run(&d, eod, NELEM(eod), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(d.last_code, 452);
	assert_string_equal(f.body.s, "x\r\n");
	finish_run(&d, &f);

	send_args(&env, "x\r\n");
	run(&d, data, NELEM(data), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "DATA");
	assert_int_equal(d.last_code, 451);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 0)->code, 250);
	finish_run(&d, &f);
}

/* A message of `size` octets: lines of varying length, some starting with
 * "." or being "." or "..", CRLF-ended. */
static char *
big_message(size_t size)
{
	char *m = xmalloc(size + 1);
	size_t i = 0, n = 0, ll;

	while (i < size) {
		ll = 1 + (n * 37) % 150;
		if (i + ll + 2 > size)
			ll = size - i >= 3 ? size - i - 2 : 0;
		if (ll == 0) {
			while (i < size)
				m[i++] = 'z';	/* tail without CRLF */
			break;
		}
		memset(m + i, 'a' + (int)(n % 26), ll);
		if (n % 7 == 0)
			m[i] = '.';
		if (n % 11 == 0 && ll >= 2)
			m[i + 1] = '.';
		i += ll;
		m[i++] = '\r';
		m[i++] = '\n';
		n++;
	}
	m[size] = '\0';
	return m;
}

static void
test_send_closed_mid_data(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ "*", A_CLOSE, NULL },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	char *m = big_message(4 << 20);
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, m);
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ECLOSED);
	assert_string_equal(d.last.step, "DATA");
	finish_run(&d, &f);
	free(m);
}

static void
test_send_block_timeout(void **state)
{
	/* the server stops reading in the middle of the data */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ "*", A_RAW, "" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	char *m = big_message(4 << 20);
	double t0 = mono_now();
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, m);
	run(&d, script, NELEM(script), send_steps, 0.3, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_string_equal(d.last.step, "DATA");
	assert_non_null(strstr(d.last.detail, "message data"));
	assert_true(mono_now() - t0 < 3);
	finish_run(&d, &f);
	free(m);
}

static void
test_send_end_timeout(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SILENT, NULL },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	double t0 = mono_now();
	struct drv d;
	struct fake f;

	(void)state;
	send_args(&env, "x\r\n");
	run(&d, script, NELEM(script), send_steps, 0.3, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_string_equal(d.last.step, "end of data");
	assert_true(mono_now() - t0 < 3);
	assert_false(f.mismatch);
	assert_string_equal(f.body.s, "x\r\n");
	finish_run(&d, &f);
}

static void
test_send_usage(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
	};
	static const char *const badr[] = { "b@y", "c<d@y" };
	static const char *const crlf[] = { "b@y\r\nRSET" };
	char longaddr[600];
	const char *const longr[] = { longaddr };
	const struct smtp_client_envelope envs[] = {
		{ "a@x", badr, 2, 0, 0, 0, NULL, NULL },
		{ "a@x", crlf, 1, 0, 0, 0, NULL, NULL },
		{ "a>@x", rcpt1, 1, 0, 0, 0, NULL, NULL },
		{ "a@x", longr, 1, 0, 0, 0, NULL, NULL },
		{ "a@x", rcpt1, 0, 0, 0, 0, NULL, NULL },
		{ "a@x", rcpt1, 1, 0, 0, 0, "X=1\r\nRSET", NULL },
	};
	static const struct smtp_client_envelope good = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	static const char *const badmsg[] = {
		"a\nb\r\n", "a\r\nb\n", "a\rb\r\n", "a\r\nb\r", "\n"
	};
	struct drv d;
	struct fake f;
	size_t i;

	(void)state;
	memset(longaddr, 'a', sizeof(longaddr) - 3);
	memcpy(longaddr + sizeof(longaddr) - 3, "@y", 3);
	for (i = 0; i < NELEM(envs); i++) {
		send_args(&envs[i], "x\r\n");
		run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
		assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
		assert_int_equal(f.ngot, 1);
		finish_run(&d, &f);
	}
	for (i = 0; i < NELEM(badmsg); i++) {
		send_args(&good, badmsg[i]);
		run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
		assert_int_equal(d.last.err, SMTP_CLIENT_EUSAGE);
		assert_non_null(strstr(d.last.detail, "bare"));
		assert_int_equal(f.ngot, 1);
		finish_run(&d, &f);
	}
}

static void
test_send_1mib(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "250 2.0.0 queued\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt1, 1, 1 << 20, 0, 0, NULL, NULL
	};
	size_t i, size = 1 << 20;
	char *m = big_message(size);
	struct drv d;
	struct fake f;

	(void)state;
	/* ends with CRLF: the un-stuffed body is the message itself */
	m[size - 2] = '\r';
	m[size - 1] = '\n';
	send_args(&env, m);
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_false(f.mismatch);
	assert_int_equal(f.body.len, size);
	assert_memory_equal(f.body.s, m, size);
	assert_true(f.raw.len > size);		/* some lines were stuffed */
	finish_run(&d, &f);

	/* and without the final CRLF: one is added */
	m[size - 2] = 'z';
	m[size - 1] = 'z';
	send_args(&env, m);
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(f.body.len, size + 2);
	assert_memory_equal(f.body.s, m, size);
	assert_memory_equal(f.body.s + size, "\r\n", 2);
	finish_run(&d, &f);

	/* the most stuffing there can be: every line ".", over several
	 * chunks (a third more on the wire) */
	for (i = 0; i + 3 <= size; i += 3)
		memcpy(m + i, ".\r\n", 3);
	m[i] = '\0';
	send_args(&env, m);
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(f.body.len, i);
	assert_memory_equal(f.body.s, m, i);
	assert_int_equal(f.raw.len, i / 3 * 4);
	finish_run(&d, &f);
	free(m);
}

/* ---- final replies and LMTP (RFC 2033) ------------------------------- */

/* Run more steps on the session `d` is left with. */
static void
run_more(struct drv *d, const enum cstep *steps)
{
	struct timeval guard = { 10, 0 };

	d->steps = steps;
	d->i = 0;
	d->done = 0;
	drv_next(d);
	event_base_loopexit(d->base, &guard);
	event_base_dispatch(d->base);
	assert_true(d->done);
	assert_false(d->cb_inside);
}

static void
lmtp_args(const struct smtp_client_envelope *env, const char *msg)
{
	send_args(env, msg);
	args.lmtp = 1;
}

static const char LHLO_REPLY[] = "250-lmtp.test\r\n250-PIPELINING\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE 5000\r\n";
static const enum cstep quit_only[] = { C_QUIT, C_END };

static void
test_data_reply_smtp(void **state)
{
	static const struct sstep ok[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<d@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "250 2.0.0 queued as Q\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct sstep eod[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<d@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "452 4.3.1 full\r\n" },
	};
	static const struct sstep data[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "EHLO", A_SEND, EHLO_NOPIPE },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT", A_SEND, "250 ok\r\n" },
		{ "DATA", A_SEND, "451 4.3.0 not now\r\n" },
	};
	static const struct smtp_client_envelope env3 = {
		"a@x", rcpt3, 3, 0, 0, 0, NULL, NULL
	};
	static const struct smtp_client_envelope env1 = {
		"a@x", rcpt1, 1, 0, 0, 0, NULL, NULL
	};
	struct event_base *base = event_base_new();
	struct smtp_client *c = smtp_client_new(base, NULL);
	const struct smtp_reply *r;
	struct drv d;
	struct fake f;

	(void)state;
	/* no transaction yet */
	assert_null(smtp_client_data_reply(c, 0));
	assert_false(smtp_client_lmtp(c));
	smtp_client_free(c);
	event_base_free(base);

	/* the one end-of-data reply for each recipient accepted at RCPT */
	send_args(&env3, "x\r\n");
	run(&d, ok, NELEM(ok), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_false(f.mismatch);
	r = smtp_client_data_reply(d.c, 0);
	assert_non_null(r);
	assert_int_equal(r->code, 250);
	assert_string_equal(smtp_reply_text(r, 0), "queued as Q");
	assert_ptr_equal(smtp_client_data_reply(d.c, 2), r);
	assert_null(smtp_client_data_reply(d.c, 1));	/* 550 at RCPT */
	assert_null(smtp_client_data_reply(d.c, 3));
	/* valid until the next step starts */
	run_more(&d, quit_only);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_false(f.mismatch);
	assert_null(smtp_client_data_reply(d.c, 0));
	finish_run(&d, &f);

	/* refused at the end of data: the refusal for each of them */
	send_args(&env3, "x\r\n");
	run(&d, eod, NELEM(eod), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(smtp_client_data_reply(d.c, 0)->code, 452);
	assert_int_equal(smtp_client_data_reply(d.c, 2)->code, 452);
	assert_null(smtp_client_data_reply(d.c, 1));
	finish_run(&d, &f);

	/* DATA refused: no final reply at all */
	send_args(&env1, "x\r\n");
	run(&d, data, NELEM(data), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "DATA");
	assert_int_equal(smtp_client_rcpt_reply(d.c, 0)->code, 250);
	assert_null(smtp_client_data_reply(d.c, 0));
	finish_run(&d, &f);
}

static void
test_lmtp_lhlo(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 lmtp.test LMTP ready\r\n" },
		{ "LHLO client.test", A_SEND, LHLO_REPLY },
		{ "QUIT", A_SEND, "221 2.0.0 bye\r\n" },
	};
	static const struct sstep refused[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO client.test", A_SEND, "500 5.5.1 what is LHLO\r\n" },
	};
	static const struct sstep busy[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO client.test", A_SEND, "421 4.3.2 shutting down\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_QUIT,
		C_END };
	static const enum cstep steps2[] = { C_GREETING, C_EHLO, C_END };
	const struct smtp_ehlo *e;
	struct drv d;
	struct fake f;

	(void)state;
	lmtp_args(NULL, NULL);
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_int_equal(d.n_ok, 2);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 2);
	assert_string_equal(f.got[0], "LHLO client.test");
	assert_true(smtp_client_lmtp(d.c));
	assert_true(smtp_client_esmtp(d.c));
	e = smtp_client_ehlo_info(d.c);
	assert_non_null(e);
	assert_string_equal(e->domain, "lmtp.test");
	assert_int_equal(e->ext, SMTP_EXT_PIPELINING |
	    SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_8BITMIME | SMTP_EXT_SIZE);
	assert_int_equal(e->size, 5000);
	finish_run(&d, &f);

	/* a 5xx to LHLO: EREPLY, and no HELO */
	lmtp_args(NULL, NULL);
	run(&d, refused, NELEM(refused), steps2, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "LHLO");
	assert_int_equal(d.last_code, 500);
	assert_non_null(strstr(d.last.detail, "LHLO refused"));
	assert_int_equal(f.ngot, 1);
	assert_false(f.mismatch);
	assert_null(smtp_client_ehlo_info(d.c));
	assert_false(smtp_client_esmtp(d.c));
	finish_run(&d, &f);

	lmtp_args(NULL, NULL);
	run(&d, busy, NELEM(busy), steps2, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "LHLO");
	assert_int_equal(d.last_code, 421);
	assert_int_equal(f.ngot, 1);
	finish_run(&d, &f);
}

static void
test_lmtp_send(void **state)
{
	/* RCPT 2 refused; one final reply each for RCPT 1 and 3 */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, LHLO_REPLY },
		{ "MAIL FROM:<a@x> SIZE=3", A_SEND, "250 2.1.0 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "550 5.1.1 no such user\r\n" },
		{ "RCPT TO:<d@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "DATA", A_DATA, "354 go ahead\r\n" },
		{ ".", A_SEND, "250 2.0.0 <b@y> delivered\r\n"
		    "452-4.2.2 <d@y> mailbox\r\n452 4.2.2 full\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	/* no PIPELINING; the 2xx comes second: still the result's reply */
	static const struct sstep second[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, "250 lmtp.test\r\n" },
		{ "MAIL FROM:<a@x>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "451 4.3.0 <b@y> try later\r\n"
		    "250 2.0.0 <c@y> ok\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt3, 3, 3, 0, 0, NULL, NULL
	};
	static const struct smtp_client_envelope env2 = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	const struct smtp_reply *r;
	struct drv d;
	struct fake f;
	size_t i;

	(void)state;
	lmtp_args(&env, "x\r\n");
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(d.last_code, 250);
	assert_false(f.mismatch);
	assert_string_equal(f.body.s, "x\r\n");
	/* pipelined: MAIL, the RCPTs and DATA in one read */
	for (i = 2; i <= 5; i++)
		assert_int_equal(f.got_read[i], f.got_read[1]);
	assert_int_equal(smtp_client_rcpt_reply(d.c, 1)->code, 550);
	r = smtp_client_data_reply(d.c, 0);
	assert_non_null(r);
	assert_int_equal(r->code, 250);
	assert_string_equal(smtp_reply_text(r, 0), "<b@y> delivered");
	assert_null(smtp_client_data_reply(d.c, 1));
	r = smtp_client_data_reply(d.c, 2);
	assert_non_null(r);
	assert_int_equal(r->code, 452);
	assert_string_equal(r->enhanced, "4.2.2");
	assert_int_equal(r->nlines, 2);
	assert_null(smtp_client_data_reply(d.c, 3));
	/* all replies consumed: QUIT gets its own */
	run_more(&d, quit_only);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	finish_run(&d, &f);

	lmtp_args(&env2, "x\r\n");
	run(&d, second, NELEM(second), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 250);
	assert_string_equal(smtp_reply_text(d.last.reply, 0), "<c@y> ok");
	assert_false(f.mismatch);
	assert_int_equal(smtp_client_data_reply(d.c, 0)->code, 451);
	assert_int_equal(smtp_client_data_reply(d.c, 1)->code, 250);
	finish_run(&d, &f);
}

static void
test_lmtp_all_refused(void **state)
{
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, LHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "554 5.6.0 <b@y> content rejected\r\n"
		    "552 5.2.2 <c@y> over quota\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;

	(void)state;
	lmtp_args(&env, "x\r\n");
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "end of data");
	assert_int_equal(d.last_code, 552);		/* the last one */
	assert_int_equal(smtp_client_data_reply(d.c, 0)->code, 554);
	assert_int_equal(smtp_client_data_reply(d.c, 1)->code, 552);
	/* the session goes on */
	run_more(&d, quit_only);
	assert_int_equal(d.last.err, SMTP_CLIENT_OK);
	assert_int_equal(d.last_code, 221);
	assert_false(f.mismatch);
	finish_run(&d, &f);
}

static void
test_lmtp_final_timeout(void **state)
{
	/* one final reply of two, then silence */
	static const struct sstep stall[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, LHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "250 2.0.0 <b@y> delivered\r\n" },
	};
	/* each reply within the deadline of the one before, both not: the
	 * deadline is for all of them (DRIP_INTERVAL < 0.6 < 2 x it) */
	static const struct sstep drip[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, LHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_DRIP, "250 2.0.0 <b@y> delivered\r\n"
		    "250 2.0.0 <c@y> delivered\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	double t0 = mono_now();
	struct drv d;
	struct fake f;

	(void)state;
	lmtp_args(&env, "x\r\n");
	run(&d, stall, NELEM(stall), send_steps, 0.3, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_string_equal(d.last.step, "end of data");
	assert_non_null(strstr(d.last.detail, "1 of 2"));
	assert_true(mono_now() - t0 < 3);
	assert_false(f.mismatch);
	/* b@y was delivered (must not be sent again); c@y is in doubt */
	assert_int_equal(smtp_client_data_reply(d.c, 0)->code, 250);
	assert_null(smtp_client_data_reply(d.c, 1));
	finish_run(&d, &f);

	t0 = mono_now();
	lmtp_args(&env, "x\r\n");
	run(&d, drip, NELEM(drip), send_steps, 0.6, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_ETIMEOUT);
	assert_string_equal(d.last.step, "end of data");
	assert_true(mono_now() - t0 < 3);
	assert_int_equal(smtp_client_data_reply(d.c, 0)->code, 250);
	assert_null(smtp_client_data_reply(d.c, 1));
	finish_run(&d, &f);
}

static void
test_lmtp_354_without_rcpt(void **state)
{
	/* RFC 2033 4.2: DATA MUST fail when no RCPT succeeded */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 x\r\n" },
		{ "LHLO", A_SEND, LHLO_REPLY },
		{ "MAIL", A_SEND, "250 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "550 5.1.1 no\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "450 4.2.1 later\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
	};
	static const struct smtp_client_envelope env = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	struct drv d;
	struct fake f;

	(void)state;
	lmtp_args(&env, "x\r\n");
	run(&d, script, NELEM(script), send_steps, 0, NULL, NULL, &f);
	assert_int_equal(d.last.err, SMTP_CLIENT_EREPLY);
	assert_string_equal(d.last.step, "RCPT");
	assert_int_equal(d.last_code, 450);
	assert_null(smtp_client_data_reply(d.c, 0));
	assert_null(smtp_client_data_reply(d.c, 1));
	assert_int_equal(f.raw.len, 0);
	assert_int_equal(f.ngot, 5);		/* no "." */
	/* the connection was given up */
	run_more(&d, quit_only);
	assert_int_equal(d.last.err, SMTP_CLIENT_ECLOSED);
	assert_non_null(strstr(d.last.detail, "without a recipient"));
	assert_int_equal(f.ngot, 5);		/* no QUIT either */
	finish_run(&d, &f);
}

static void
test_lmtp_unix_socket(void **state)
{
	/* lmtp:/path: the caller connects a UNIX socket and attaches it */
	static const struct sstep script[] = {
		{ NULL, A_SEND, "220 lmtp.test LMTP ready\r\n" },
		{ "LHLO client.test", A_SEND, LHLO_REPLY },
		{ "MAIL FROM:<a@x>", A_SEND, "250 2.1.0 ok\r\n" },
		{ "RCPT TO:<b@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "RCPT TO:<c@y>", A_SEND, "250 2.1.5 ok\r\n" },
		{ "DATA", A_DATA, "354 go\r\n" },
		{ ".", A_SEND, "250 2.0.0 <b@y> saved\r\n"
		    "250 2.0.0 <c@y> saved\r\n" },
		{ "QUIT", A_SEND, "221 bye\r\n" },
	};
	static const enum cstep steps[] = { C_GREETING, C_EHLO, C_SEND, C_QUIT,
		C_END };
	static const struct smtp_client_envelope env = {
		"a@x", rcpt2, 2, 0, 0, 0, NULL, NULL
	};
	char dir[] = "/tmp/postern-lmtp.XXXXXX";
	struct sockaddr_un sun, peer;
	socklen_t plen = sizeof(peer);
	struct drv d;
	struct fake f;
	int ls, cs, ss;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_true((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/lmtp", dir) < sizeof(sun.sun_path));
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls != -1);
	assert_int_equal(bind(ls, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(ls, 1), 0);
	cs = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cs != -1);
	assert_int_equal(connect(cs, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	ss = accept(ls, NULL, NULL);
	assert_true(ss != -1);
	assert_int_equal(fcntl(ss, F_SETFL, fcntl(ss, F_GETFL) | O_NONBLOCK),
	    0);
	close(ls);

	lmtp_args(&env, "Subject: u\r\n\r\nover a UNIX socket\r\n");
	args.have_fds = 1;
	args.fds[0] = cs;
	args.fds[1] = ss;
	run(&d, script, NELEM(script), steps, 0, NULL, NULL, &f);
	if (d.last.err != SMTP_CLIENT_OK)
		fail_msg("%s: %s", d.last.step, d.last.detail);
	assert_int_equal(d.last_code, 221);
	assert_int_equal(d.n_ok, 3);
	assert_false(f.mismatch);
	assert_int_equal(f.ngot, 7);
	assert_string_equal(f.body.s, "Subject: u\r\n\r\nover a UNIX "
	    "socket\r\n");
	assert_int_equal(smtp_client_fd(d.c), cs);
	assert_int_equal(getpeername(cs, (struct sockaddr *)&peer, &plen), 0);
	assert_int_equal(peer.sun_family, AF_UNIX);
	assert_string_equal(peer.sun_path, sun.sun_path);
	/* the send's final replies were dropped when QUIT started */
	assert_null(smtp_client_data_reply(d.c, 0));
	finish_run(&d, &f);
	assert_int_equal(unlink(sun.sun_path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_ehlo_quit),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_ehlo_4xx_no_fallback),
		cmocka_unit_test(test_greeting_554),
		cmocka_unit_test(test_starttls_refused_then_usable),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_starttls_handshake_and_ehlo_again),
		cmocka_unit_test(test_tls_handshake_garbage),
		cmocka_unit_test(test_starttls_inject_one_packet),
		cmocka_unit_test(test_starttls_inject_verdict),
		cmocka_unit_test(test_greeting_timeout),
		cmocka_unit_test(test_command_timeout_trickle),
		cmocka_unit_test(test_closed_mid_reply),
		cmocka_unit_test(test_closed_before_greeting),
		cmocka_unit_test(test_garbage_and_overlong),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_auth_plain_ok),
		cmocka_unit_test(test_auth_login_ok),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_auth_plaintext_refused),
		cmocka_unit_test(test_auth_unexpected_334),
		cmocka_unit_test(test_auth_plain_over_tls),
		cmocka_unit_test(test_send_no_pipelining),
		cmocka_unit_test(test_send_pipelining),
		cmocka_unit_test(test_send_rset_between),
		cmocka_unit_test(test_send_next),
		cmocka_unit_test(test_send_next_misuse),
		cmocka_unit_test(test_tls_records_read_ahead),
		cmocka_unit_test(test_send_no_rcpt_accepted),
		cmocka_unit_test(test_send_mail_refused),
		cmocka_unit_test(test_send_data_refused),
		cmocka_unit_test(test_send_closed_mid_data),
		cmocka_unit_test(test_send_end_timeout),
		cmocka_unit_test(test_send_block_timeout),
		cmocka_unit_test(test_send_usage),
		cmocka_unit_test(test_send_1mib),
		cmocka_unit_test(test_data_reply_smtp),
		cmocka_unit_test(test_lmtp_lhlo),
		cmocka_unit_test(test_lmtp_send),
		cmocka_unit_test(test_lmtp_all_refused),
		cmocka_unit_test(test_lmtp_final_timeout),
		cmocka_unit_test(test_lmtp_354_without_rcpt),
		cmocka_unit_test(test_lmtp_unix_socket),
	};

	/* a write to a closed socket must be an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
