/*
 * test_smtp_conn.c - the remote delivery driver (dest_queue.c) and its
 * connection driver (smtp_conn.c) against the scripted fake server of
 * fake_smtp_server.h, in one event loop: the route's next hop is
 * [127.0.0.1]:PORT of a loopback listener whose connection the fake
 * serves (an IP literal: no DNS query is ever made).
 *
 * Table-driven: delivered; a recipient refused (bounced, with the reply
 * as diagnostic); MAIL deferred; the greeting refused; the connection lost
 * during the data; and the TLS ladder on the wire: preferred with STARTTLS
 * refused before its 220 (clear, a Warning), a real STARTTLS handshake,
 * a failure after the 220 by injected plaintext or a broken handshake
 * (deferred, the "possible active attack" Warning, never MAIL in clear),
 * required without STARTTLS and required-verify with an unverifiable
 * certificate (deferred, an alert).  Then a second message on the same
 * connection after it went idle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "delivery.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "route.h"
#include "fake_smtp_server.h"

#define TEST_TMPDIR_PREFIX	"postern-test-smtp-conn"
#include "test_tmpdir.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char MESSAGE[] = "From: alice@example.com\r\n"
    "Subject: conn\r\n\r\nhello\r\n";

static const char EHLO_PLAIN[] = "250-fake.test\r\n250 8BITMIME\r\n";
static const char EHLO_TLS[] = "250-fake.test\r\n250-8BITMIME\r\n"
    "250 STARTTLS\r\n";

#define GREETING	{ NULL, A_SEND, "220 fake.test ESMTP\r\n" }
#define EHLO(r)		{ "EHLO mx.test.example", A_SEND, r }
#define TRANSACTION \
	{ "MAIL FROM:<alice@example.com>", A_SEND, "250 2.1.0 Ok\r\n" }, \
	{ "RCPT TO:<bob@relay.test>", A_SEND, "250 2.1.5 Ok\r\n" }, \
	{ "DATA", A_DATA, "354 go ahead\r\n" }, \
	{ ".", A_SEND, "250 2.0.0 Ok: queued as F1\r\n" }

static const struct sstep s_plain[] = { GREETING, EHLO(EHLO_PLAIN),
	TRANSACTION };
static const struct sstep s_rcpt_refused[] = { GREETING, EHLO(EHLO_PLAIN),
	{ "MAIL FROM:", A_SEND, "250 2.1.0 Ok\r\n" },
	{ "RCPT TO:", A_SEND, "550 5.1.1 <bob@relay.test>: no such user\r\n" },
	{ "RSET", A_SEND, "250 2.0.0 Ok\r\n" } };
static const struct sstep s_mail_deferred[] = { GREETING, EHLO(EHLO_PLAIN),
	{ "MAIL FROM:", A_SEND, "451 4.3.0 try later\r\n" },
	{ "RSET", A_SEND, "250 2.0.0 Ok\r\n" } };
static const struct sstep s_greeting_refused[] = {
	{ NULL, A_SEND, "554 5.7.1 go away\r\n" } };
static const struct sstep s_lost_in_data[] = { GREETING, EHLO(EHLO_PLAIN),
	{ "MAIL FROM:", A_SEND, "250 2.1.0 Ok\r\n" },
	{ "RCPT TO:", A_SEND, "250 2.1.5 Ok\r\n" },
	{ "DATA", A_SEND, "354 go ahead\r\n" },
	{ "From:", A_CLOSE, NULL } };
static const struct sstep s_refused_before_220[] = { GREETING,
	EHLO(EHLO_TLS),
	{ "STARTTLS", A_SEND, "454 4.7.0 TLS not available now\r\n" },
	TRANSACTION };
static const struct sstep s_starttls[] = { GREETING, EHLO(EHLO_TLS),
	{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" },
	EHLO(EHLO_PLAIN), TRANSACTION };
static const struct sstep s_injected[] = { GREETING, EHLO(EHLO_TLS),
	{ "STARTTLS", A_RAW, "220 2.0.0 Ready to start TLS\r\n"
	  "250 2.0.0 injected\r\n" } };
static const struct sstep s_broken_handshake[] = { GREETING, EHLO(EHLO_TLS),
	{ "STARTTLS", A_SEND, "220 2.0.0 Ready to start TLS\r\n" },
	{ "*", A_CLOSE, "this is not TLS\r\n" } };
static const struct sstep s_no_starttls[] = { GREETING, EHLO(EHLO_PLAIN) };
static const struct sstep s_unverified[] = { GREETING, EHLO(EHLO_TLS),
	{ "STARTTLS", A_STARTTLS, "220 2.0.0 Ready to start TLS\r\n" } };

struct conn_case {
	const char		*name;
	const char		*dest_tls;
	const struct sstep	*script;
	size_t			 nscript;
	enum delivery_outcome	 want;
	const char		*want_text;	/* prefix of the result text */
	const char		*want_status;
	const char		*want_log;	/* in the mail log, or NULL */
	const char		*not_log;	/* never in it, or NULL */
	int			 want_alerts;
	int			 want_tls;	/* a TLS success line */
};

#define S(x)	x, NELEM(x)

static const struct conn_case cases[] = {
	{ "plain", "none", S(s_plain), DELIVERY_DELIVERED,
	  "250 2.0.0 Ok: queued as F1", "2.0.0",
	  "Message done DCID ", "TLS success", 0, 0 },
	{ "rcpt refused", "none", S(s_rcpt_refused), DELIVERY_BOUNCED,
	  "550 5.1.1 <bob@relay.test>: no such user", "5.1.1",
	  "Bounced: DCID ", NULL, 0, 0 },
	{ "mail deferred", "none", S(s_mail_deferred), DELIVERY_DEFERRED,
	  "451 4.3.0 try later", "4.3.0", "Delayed: DCID ", NULL, 0, 0 },
	{ "greeting refused", "none", S(s_greeting_refused),
	  DELIVERY_DEFERRED, "127.0.0.1 [127.0.0.1] greeting: 554 5.7.1 go "
	  "away", "4.4.1", "details: greeting reason: 554 5.7.1 go away",
	  NULL, 0, 0 },
	{ "lost in data", "none", S(s_lost_in_data), DELIVERY_DEFERRED,
	  "lost connection with 127.0.0.1 [127.0.0.1] during ", "4.4.2",
	  "Connection Error: DCID ", NULL, 0, 0 },
	{ "preferred, refused before 220", "preferred",
	  S(s_refused_before_220), DELIVERY_DELIVERED,
	  "250 2.0.0 Ok: queued as F1", "2.0.0",
	  "TLS failed: STARTTLS refused by 127.0.0.1: 454 4.7.0 TLS not "
	  "available now; delivering in clear (destination relay.test tls "
	  "preferred)", "possible active attack", 0, 0 },
	{ "preferred, STARTTLS", "preferred", S(s_starttls),
	  DELIVERY_DELIVERED, "250 2.0.0 Ok: queued as F1", "2.0.0",
	  "TLS success protocol TLSv1.", "TLS failed", 0, 1 },
	{ "preferred, injection after 220", "preferred", S(s_injected),
	  DELIVERY_DEFERRED, "TLS with 127.0.0.1 failed after its 220 to "
	  "STARTTLS (possible active attack; not sent in clear): ", "4.7.5",
	  "server sent data after its 220 reply to STARTTLS (discarded); "
	  "possible active attack: the failure came after the server's 220 "
	  "to STARTTLS, so the message is deferred and never sent in clear "
	  "(destination relay.test tls preferred)", "delivering in clear", 0, 0 },
	{ "preferred-verify, broken handshake", "preferred-verify",
	  S(s_broken_handshake), DELIVERY_DEFERRED, "TLS with 127.0.0.1 "
	  "failed after its 220 to STARTTLS (possible active attack; not "
	  "sent in clear): TLS handshake with 127.0.0.1 failed", "4.7.5",
	  "possible active attack", "delivering in clear", 0, 0 },
	{ "required, no STARTTLS", "required", S(s_no_starttls),
	  DELIVERY_DEFERRED, "TLS required for relay.test (tls required) "
	  "but STARTTLS not offered by 127.0.0.1", "4.4.1",
	  "TLS failed: STARTTLS not offered by 127.0.0.1", NULL, 1, 0 },
	{ "required-verify, unverifiable", "required-verify",
	  S(s_unverified), DELIVERY_DEFERRED, "TLS required for relay.test "
	  "(tls required-verify) but certificate of 127.0.0.1 not verified",
	  "4.4.1", "TLS failed: certificate of 127.0.0.1 not verified", NULL,
	  1, 1 },
};

/* ---- one delivery through the remote driver ------------------------- */

struct run {
	struct event_base	*base;
	struct fake		 fake;
	int			 fake_on;
	int			 lfd;
	struct event		*accept_ev;
	SSL_CTX			*sctx;
	const struct sstep	*script;
	size_t			 nscript;
	struct delivery_result	 res[4];
	size_t			 nres;
	int			 done;
};

static int alerts;

static void
alert_cb(const char *domain, const char *host, const char *reason)
{
	assert_string_equal(domain, "relay.test");
	assert_string_equal(host, "127.0.0.1");
	assert_non_null(reason);
	alerts++;
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	int c = accept(fd, NULL, NULL);

	assert_true(c >= 0);
	assert_false(r->fake_on);	/* one connection per run */
	evutil_make_socket_nonblocking(c);
	fake_start(&r->fake, r->base, c, r->script, r->nscript, r->sctx);
	r->fake_on = 1;
}

static void
done_cb(void *arg, const struct delivery_result *res, size_t n)
{
	struct run *r = arg;

	assert_true(n <= NELEM(r->res));
	memcpy(r->res, res, n * sizeof(*res));
	r->nres = n;
	r->done = 1;
	event_base_loopbreak(r->base);
}

static int
listen_loopback(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct conf *
load_conf(int port, const char *dest_tls)
{
	struct conf_errors errs = { NULL, 0 };
	struct strbuf text = STRBUF_INIT;
	struct conf *c;

	strbuf_printf(&text, "hostname = \"mx.test.example\";\n"
	    "data_dir = \"%s/data\";\n"
	    "routes = ( { domain = \"relay.test\"; hosts = "
	    "[ \"[127.0.0.1]:%d\" ]; } );\n"
	    "destinations = ( { domain = \"*\"; tls = \"%s\"; } );\n"
	    "tls = { system_cas = false; };\n", tmpdir, port, dest_tls);
	c = conf_load_string(text.s, "t.conf", tmpdir, &errs);
	assert_non_null(c);
	if (errs.n > 0)
		fail_msg("%s", errs.msgs[0]);
	conf_errors_free(&errs);
	strbuf_free(&text);
	return c;
}

/* The message as a spool would hand it over: an fd and its envelope. */
static int
message_fd(struct envelope *env, uint64_t mid)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/msg", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, MESSAGE, sizeof(MESSAGE) - 1), 0);
	envelope_init(env);
	env->mid = mid;
	bstrlcpy(env->from, "alice@example.com", sizeof(env->from));
	envelope_add_rcpt(env, "bob@relay.test", 0, "");
	env->msg_size = sizeof(MESSAGE) - 1;
	return fd;
}

static void
submit(struct run *r, const struct conf *c, const struct envelope *env,
    int fd, struct route_decision *d)
{
	static const size_t rid0[] = { 0 };
	struct delivery_request rq;

	assert_int_equal(route_decide(c, env->rcpts[0].addr, d),
	    ROUTE_TO_HOSTS);
	memset(&rq, 0, sizeof(rq));
	rq.mid = env->mid;
	rq.env = env;
	rq.fd = fd;
	rq.routes = d;
	rq.rids = rid0;
	rq.nrids = 1;
	rq.done = done_cb;
	rq.arg = r;
	r->done = 0;
	delivery_remote.submit(&rq);
}

/* Dispatch until the request is answered (bounded). */
static void
wait_done(struct run *r)
{
	struct timeval guard = { 15, 0 };

	event_base_loopexit(r->base, &guard);
	if (!r->done)
		event_base_dispatch(r->base);
	assert_true(r->done);
}

/* The mail log written since `from`. */
static char *
log_since(off_t from)
{
	char path[512], *all, *copy;
	size_t len;

	log_flush();
	snprintf(path, sizeof(path), "%s/mail.log", tmpdir);
	all = read_file(path, &len, 1 << 20);
	assert_non_null(all);
	copy = xstrdup((off_t)len > from ? all + from : "");
	free(all);
	return copy;
}

static off_t
log_size(void)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail.log", tmpdir);
	return stat(path, &st) == 0 ? st.st_size : 0;
}

static void
run_setup(struct run *r, int *port, const struct sstep *script, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->base = event_base_new();
	assert_non_null(r->base);
	r->lfd = listen_loopback(port);
	r->accept_ev = event_new(r->base, r->lfd, EV_READ | EV_PERSIST,
	    accept_cb, r);
	event_add(r->accept_ev, NULL);
	r->sctx = fake_server_ctx();
	r->script = script;
	r->nscript = n;
}

static void
run_teardown(struct run *r, struct conf *c)
{
	delivery_remote.shutdown();
	if (r->fake_on)
		fake_stop(&r->fake);
	event_free(r->accept_ev);
	close(r->lfd);
	SSL_CTX_free(r->sctx);
	event_base_free(r->base);
	conf_free(c);
}

static void
check_case(const struct conn_case *k, struct run *r, const char *log)
{
	const struct delivery_result *res = &r->res[0];

	assert_int_equal(r->nres, 1);
	assert_int_equal(res->rid, 0);
	if (res->outcome != k->want ||
	    strncmp(res->text, k->want_text, strlen(k->want_text)) != 0)
		fail_msg("%s: outcome %d text '%s'", k->name, res->outcome,
		    res->text);
	assert_string_equal(res->status, k->want_status);
	if (k->want_log && strstr(log, k->want_log) == NULL)
		fail_msg("%s: log lacks '%s':\n%s", k->name, k->want_log, log);
	if (k->not_log && strstr(log, k->not_log) != NULL)
		fail_msg("%s: log has '%s':\n%s", k->name, k->not_log, log);
	assert_int_equal(alerts, k->want_alerts);
	assert_int_equal(strstr(log, "TLS success") != NULL, k->want_tls);
	/* the server never saw a line it did not expect */
	if (r->fake.mismatch)
		fail_msg("%s: unexpected line from the client", k->name);
}

static void
test_cases(void **state)
{
	struct route_decision d;
	struct envelope env;
	struct conf *c;
	struct run r;
	char why[512], *log;
	size_t i, g;
	off_t mark;
	int port, fd;

	for (i = 0; i < NELEM(cases); i++) {
		run_setup(&r, &port, cases[i].script, cases[i].nscript);
		c = load_conf(port, cases[i].dest_tls);
		alerts = 0;
		mark = log_size();
		assert_int_equal(delivery_remote.init(r.base, c, alert_cb, why,
		    sizeof(why)), 0);
		fd = message_fd(&env, 100 + i);
		submit(&r, c, &env, fd, &d);
		wait_done(&r);
		log = log_since(mark);
		check_case(&cases[i], &r, log);
		if (cases[i].want != DELIVERY_DELIVERED)
			assert_null(strstr(log, "Message done"));
		if (strstr(cases[i].name, "after 220") != NULL ||
		    strstr(cases[i].name, "handshake") != NULL)
			for (g = 0; g < r.fake.ngot; g++)
				assert_null(strstr(r.fake.got[g], "MAIL"));
		free(log);
		run_teardown(&r, c);
		close(fd);
		envelope_clear(&env);
	}
}

/* A second message while the connection idles goes over it (same DCID,
 * one connection), with its own transaction. */
static void
test_idle_reuse(void **state)
{
	static const struct sstep script[] = { GREETING, EHLO(EHLO_PLAIN),
		TRANSACTION, TRANSACTION };
	struct route_decision d1, d2;
	struct envelope e1, e2;
	struct conf *c;
	struct run r;
	char why[512], *log, *p;
	off_t mark = log_size();
	int port, fd1, fd2, starts = 0;

	run_setup(&r, &port, script, NELEM(script));
	c = load_conf(port, "none");
	alerts = 0;
	assert_int_equal(delivery_remote.init(r.base, c, alert_cb, why,
	    sizeof(why)), 0);
	fd1 = message_fd(&e1, 201);
	submit(&r, c, &e1, fd1, &d1);
	wait_done(&r);
	assert_int_equal(r.res[0].outcome, DELIVERY_DELIVERED);
	fd2 = message_fd(&e2, 202);
	submit(&r, c, &e2, fd2, &d2);
	wait_done(&r);
	assert_int_equal(r.res[0].outcome, DELIVERY_DELIVERED);
	assert_false(r.fake.mismatch);
	log = log_since(mark);
	for (p = log; (p = strstr(p, "Delivery start DCID ")) != NULL; p++)
		starts++;
	assert_int_equal(starts, 2);
	p = strstr(log, "New SMTP DCID ");
	assert_non_null(p);
	assert_null(strstr(p + 1, "New SMTP DCID "));	/* one connection */
	free(log);
	run_teardown(&r, c);
	close(fd1);
	close(fd2);
	envelope_clear(&e1);
	envelope_clear(&e2);
}

static int
group_setup(void **state)
{
	char dir[512], why[512];

	if (setup(state) == -1)
		return -1;
	snprintf(dir, sizeof(dir), "%s/data", tmpdir);
	if (mkdir_p(dir, 0700) == -1 || ids_open(dir, 0, why,
	    sizeof(why)) == -1)
		return -1;
	snprintf(dir, sizeof(dir), "%s/mail.log", tmpdir);
	return log_open(dir, 0, "test-smtp-conn");
}

static int
group_teardown(void **state)
{
	log_close();
	return teardown(state);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_idle_reuse),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
