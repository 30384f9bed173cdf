/*
 * probe_run.c - the steps of `postern probe` against one server (see
 * probe.h), as one explicit phase machine over smtp_client steps on the
 * caller's event loop:
 *
 *   RESOLVE   A/AAAA with libunbound (dns_hosts; resolver.local_data and
 *             /etc/hosts first)
 *   CONNECT   each address in turn; refused, timed out and unreachable
 *             told apart
 *   TLS       implicit TLS (--tls): the handshake, then probe_tls.c
 *   BANNER    the greeting: none, 4xx/5xx, slow
 *   EHLO      with the HELO fallback; the extensions offered
 *   STARTTLS  offered?  accepted?  then the handshake and probe_tls.c
 *   EHLO_TLS  again after TLS (RFC 3207 4.2)
 *   AUTH      the mechanisms; offered before TLS is a warn; with --user
 *             the result
 *   MAIL      with --from (or --to): MAIL, then
 *   RCPT      each --to; then RSET and QUIT: nothing is ever sent
 *   OLD_TLS   a connection of its own whose handshake allows TLS 1.0 and
 *             1.1 only: accepted is a warn
 *   INJECT    a connection of its own that sends STARTTLS and NOOP in one
 *             packet: a NOOP answered inside TLS is the CVE-2011-0411
 *             class
 * A handshake that fails is followed by a diagnostic one (tls_ctx's
 * diagnostic context, on a connection of its own) to learn what the
 * server does speak (protocol, cipher, DH size).
 *
 * Public: probe_run.
 *
 * Limits: every smtp_client step has the --timeout deadline, the DNS
 * lookup too, so a probe ends within a bounded time.  Threats: the server
 * is untrusted; credentials go out only under TLS (or with --plain), and
 * only PLAIN or LOGIN; reply text is sanitised by smtp_reply.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "dns.h"
#include "probe.h"
#include "smtp_client.h"
#include "tls_ctx.h"
#include "util.h"

#define BANNER_SLOW_MS	2000.0	/* a later banner is a warn */

enum phase {
	PH_RESOLVE, PH_CONNECT, PH_TLS, PH_BANNER, PH_EHLO, PH_STARTTLS,
	PH_EHLO_TLS, PH_AUTH, PH_MAIL, PH_RCPT, PH_QUIT, PH_OLD_TLS,
	PH_INJECT, PH_DONE
};

/* The connections of their own: why each is made. */
enum side_kind { SIDE_DIAG, SIDE_OLD, SIDE_INJECT };

struct run {
	const struct probe_settings *s;
	struct probe_report	*rep;
	struct event_base	*base;
	struct smtp_client_timeouts to;
	struct failcause_ctx	 fx;
	const char		*name;		/* to verify, SNI */
	enum phase		 ph;
	size_t			 printed;	/* steps printed so far */
	size_t			 cur;		/* index of the timed step */
	double			 t0;
	/* the main connection */
	struct smtp_client	*c;
	struct dns_host		 host;		/* resolved */
	size_t			 ai;		/* address in use */
	struct strbuf		 tried;		/* addresses that failed */
	char			 auth0[256];	/* AUTH offered before TLS */
	int			 tls_up;
	size_t			 rcpt_i;
	/* a connection of its own */
	struct smtp_client	*side;
	enum side_kind		 side_kind;
	SSL_CTX			*side_ctx;
	enum failcause		 tls_cause;	/* of the failed handshake */
	char			 tls_reason[256];
	int			 done;
};

static void	go(struct run *, enum phase);
static void	side_start(struct run *, enum side_kind);

/* ---- helpers --------------------------------------------------------- */

static double
since(const struct run *r)
{
	return (mono_now() - r->t0) * 1000.0;
}

/* Start timing a new step; its index is r->cur. */
static struct probe_step *
begin_step(struct run *r, const char *name)
{
	struct probe_step *st = probe_step_add(r->rep, name);

	r->cur = r->rep->nsteps - 1;
	r->t0 = mono_now();
	return st;
}

static struct probe_step *
cur_step(struct run *r)
{
	return &r->rep->steps[r->cur];
}

/* End the timed step now. */
static struct probe_step *
end_step(struct run *r)
{
	struct probe_step *st = cur_step(r);

	st->ms = since(r);
	return st;
}

static void
print_new(struct run *r)
{
	while (r->printed < r->rep->nsteps) {
		if (r->s->progress)
			probe_print_step(r->s->out, &r->rep->steps[r->printed]);
		r->printed++;
	}
}

static void
addr_text(const struct dns_addr *a, char *buf, size_t len)
{
	const struct sockaddr_in *s4 = (const void *)&a->ss;
	const struct sockaddr_in6 *s6 = (const void *)&a->ss;

	if (a->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
}

/* The reply of a result as detail lines ("250-..." one per line). */
static void
detail_reply(struct probe_step *st, const struct smtp_reply *rep)
{
	struct strbuf sb = STRBUF_INIT;

	if (rep == NULL)
		return;
	smtp_reply_format(rep, &sb, "\n");
	probe_detail(st, "%s", sb.s);
	strbuf_free(&sb);
}

/* A failed step: the reply or what went wrong, and the cause's fix. */
static void
fail_result(struct run *r, struct probe_step *st,
    const struct smtp_client_result *res, const char *address)
{
	struct failcause_ctx x = r->fx;
	enum failcause fc = failcause_from_result(res,
	    r->s->tls == PROBE_TLS_IMPLICIT);

	if (res->reply != NULL && res->err == SMTP_CLIENT_EREPLY)
		detail_reply(st, res->reply);
	else
		probe_detail(st, "%s: %s", smtp_client_strerror(res->err),
		    res->detail[0] ? res->detail : "no detail");
	x.address = address;
	x.detail = res->err == SMTP_CLIENT_EREPLY ? NULL : res->detail;
	probe_problem(st, PROBE_FAIL, fc == FC_NONE ? FC_REJECTED : fc, &x);
}

/* The main connection is over (lost, or refused us): the checks on
 * connections of their own may still run. */
static void
main_over(struct run *r)
{
	smtp_client_free(r->c);
	r->c = NULL;
	go(r, PH_OLD_TLS);
}

static SSL_CTX *
diag_ctx(int max_version)
{
	char why[256];
	SSL_CTX *ctx = tls_client_ctx_diag(max_version, why, sizeof(why));

	if (ctx == NULL)
		fprintf(stderr, "postern: probe: %s\n", why);
	return ctx;
}

/* ---- resolve, connect ------------------------------------------------ */

static void
on_resolved(void *arg, const struct dns_hosts *h)
{
	struct run *r = arg;
	struct probe_step *st = end_step(r);
	struct failcause_ctx x = r->fx;
	char a[INET6_ADDRSTRLEN];
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	if (h->status != DNS_OK) {
		probe_detail(st, "%s", h->why);
		x.detail = h->why;
		probe_problem(st, PROBE_FAIL, FC_NAME_NOT_FOUND, &x);
		go(r, PH_DONE);
		return;
	}
	r->host = h->hosts[0];
	for (i = 0; i < r->host.naddrs; i++) {
		addr_text(&r->host.addrs[i], a, sizeof(a));
		strbuf_printf(&sb, "%s%s", i ? ", " : "", a);
	}
	if (strcmp(r->host.name, sb.s) == 0)
		probe_detail(st, "%s is an address: nothing to resolve", sb.s);
	else
		probe_detail(st, "%s: %s", r->host.name, sb.s);
	strbuf_free(&sb);
	go(r, PH_CONNECT);
}

static void
start_resolve(struct run *r)
{
	begin_step(r, "resolve");
	(void)dns_hosts(r->s->host, 0, r->s->port, r->s->timeout, on_resolved,
	    r);
}

static void	connect_next(struct run *);

/* Every address failed: refused, timed out or unreachable, and why. */
static void
connect_failed(struct run *r, const struct smtp_client_result *res)
{
	struct probe_step *st = end_step(r);
	struct failcause_ctx x = r->fx;
	enum failcause fc = failcause_from_result(res, 0);

	probe_detail(st, "%s", r->tried.s);
	if (fc == FC_CONN_REFUSED)
		probe_detail(st, "refused: the host answered, but nothing "
		    "listens on port %d", r->s->port);
	else if (fc == FC_CONN_TIMEOUT)
		probe_detail(st, "timed out: no answer within %g s (packets "
		    "dropped on the way, or the host is down)",
		    r->s->timeout);
	else
		probe_detail(st, "unreachable: no route to the host");
	x.detail = res->detail;
	probe_problem(st, PROBE_FAIL, fc, &x);
	go(r, PH_DONE);
}

static void
on_connect(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct smtp_client_result copy;
	char a[INET6_ADDRSTRLEN];

	(void)c;
	addr_text(&r->host.addrs[r->ai], a, sizeof(a));
	if (res->err != SMTP_CLIENT_OK) {
		strbuf_printf(&r->tried, "%s%s port %d: %s",
		    r->tried.len ? "\n" : "", a, r->s->port, res->detail[0] ?
		    res->detail : smtp_client_strerror(res->err));
		copy = *res;		/* the client's: it is freed now */
		copy.reply = NULL;
		smtp_client_free(r->c);
		r->c = NULL;
		if (++r->ai < r->host.naddrs) {
			connect_next(r);
			return;
		}
		connect_failed(r, &copy);
		return;
	}
	if (r->tried.len > 0)
		probe_detail(cur_step(r), "%s", r->tried.s);
	probe_detail(end_step(r), "connected to %s port %d", a, r->s->port);
	r->rep->found.connected = 1;
	go(r, r->s->tls == PROBE_TLS_IMPLICIT ? PH_TLS : PH_BANNER);
}

static void
connect_next(struct run *r)
{
	const struct dns_addr *a = &r->host.addrs[r->ai];

	r->c = smtp_client_new(r->base, &r->to);
	smtp_client_connect(r->c, (const struct sockaddr *)&a->ss, a->len,
	    on_connect, r);
}

static void
start_connect(struct run *r)
{
	begin_step(r, "connect");
	r->ai = 0;
	connect_next(r);
}

/* ---- TLS ------------------------------------------------------------- */

/* A handshake failed at step `cur` (a "tls" step): find out what the
 * server speaks on a connection of its own, then stop. */
static void
tls_failed(struct run *r, const struct smtp_client_result *res)
{
	r->tls_cause = failcause_from_result(res,
	    r->s->tls == PROBE_TLS_IMPLICIT);
	bstrlcpy(r->tls_reason, res->detail[0] ? res->detail :
	    smtp_client_strerror(res->err), sizeof(r->tls_reason));
	r->rep->found.tls_failed = 1;
	bsnprintf(r->rep->found.why_tls, sizeof(r->rep->found.why_tls),
	    "TLS handshake failed: %s", r->tls_reason);
	smtp_client_free(r->c);
	r->c = NULL;
	side_start(r, SIDE_DIAG);
}

static void
on_implicit_tls(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	double ms = since(r);

	if (res->err != SMTP_CLIENT_OK) {
		begin_step(r, "tls")->ms = ms;
		tls_failed(r, res);
		return;
	}
	r->tls_up = r->rep->found.tls_up = 1;
	probe_tls_steps(r->rep, r->s, smtp_client_ssl(c), r->name, ms);
	go(r, PH_BANNER);
}

static void
start_tls(struct run *r)
{
	r->t0 = mono_now();	/* the "tls" step comes with the result */
	smtp_client_tls(r->c, r->s->ctx, r->name, on_implicit_tls, r);
}

/* ---- banner, EHLO ---------------------------------------------------- */

static void
on_banner(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct probe_step *st = end_step(r);
	struct failcause_ctx x = r->fx;
	char det[64];

	(void)c;
	if (res->err != SMTP_CLIENT_OK) {
		fail_result(r, st, res, NULL);
		main_over(r);
		return;
	}
	detail_reply(st, res->reply);
	if (st->ms > BANNER_SLOW_MS) {
		bsnprintf(det, sizeof(det), "%.1f s", st->ms / 1000.0);
		x.detail = det;
		probe_detail(st, res->reply->nlines > 1 ? "a deliberate "
		    "delay: the banner came in parts, \"220-\" first (a "
		    "pregreet test: clients that talk before its end are "
		    "refused)" : "slow: a deliberate greeting delay, or the "
		    "server's reverse DNS lookup of this client");
		probe_problem(st, PROBE_WARN, FC_SLOW_BANNER, &x);
	}
	go(r, PH_EHLO);
}

static void
start_banner(struct run *r)
{
	begin_step(r, "banner");
	smtp_client_greeting(r->c, on_banner, r);
}

/* The keywords of an EHLO reply, one line. */
static void
detail_ext(struct probe_step *st, const struct smtp_reply *rep)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 1; i < rep->nlines; i++)
		strbuf_printf(&sb, "%s%s", i > 1 ? ", " : "", rep->lines[i]);
	probe_detail(st, "%s %s", rep->lines[0], rep->nlines > 1 ?
	    "offers:" : "offers no extension");
	if (sb.len > 0)
		probe_detail(st, "%s", sb.s);
	strbuf_free(&sb);
}

static void
on_ehlo(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct probe_step *st = end_step(r);
	const struct smtp_ehlo *e;

	if (res->err != SMTP_CLIENT_OK) {
		fail_result(r, st, res, NULL);
		main_over(r);
		return;
	}
	if (!smtp_client_esmtp(c)) {
		probe_detail(st, "EHLO refused; HELO accepted: %s",
		    res->reply->lines[0]);
		probe_problem(st, PROBE_WARN, FC_NO_ESMTP, &r->fx);
	} else {
		detail_ext(st, res->reply);
		e = smtp_client_ehlo_info(c);
		if (e != NULL && (e->ext & SMTP_EXT_AUTH) && !r->tls_up)
			bsnprintf(r->auth0, sizeof(r->auth0), "%s",
			    e->auth_mechs[0] ? e->auth_mechs : "(none named)");
	}
	go(r, r->s->tls == PROBE_TLS_AUTO || r->s->tls ==
	    PROBE_TLS_STARTTLS ? PH_STARTTLS : PH_AUTH);
}

static void
start_ehlo(struct run *r)
{
	begin_step(r, "ehlo");
	smtp_client_ehlo(r->c, r->s->helo, on_ehlo, r);
}

/* ---- STARTTLS -------------------------------------------------------- */

static void
on_starttls(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	double hs = smtp_client_tls_started(c);
	struct probe_step *st = cur_step(r);

	if (res->err == SMTP_CLIENT_OK || hs >= r->t0) {
		/* the 220 came and the handshake began: it is the "tls" step
		 * (a timeout in it keeps no reply: the 220 is not shown) */
		st->ms = (hs - r->t0) * 1000.0;
		if (res->reply != NULL)
			detail_reply(st, res->reply);
		else
			probe_detail(st, "220 (accepted)");
		if (res->err != SMTP_CLIENT_OK) {
			begin_step(r, "tls")->ms = (mono_now() - hs) * 1000.0;
			tls_failed(r, res);
			return;
		}
		r->tls_up = r->rep->found.tls_up = 1;
		probe_tls_steps(r->rep, r->s, smtp_client_ssl(c), r->name,
		    (mono_now() - hs) * 1000.0);
		go(r, PH_EHLO_TLS);
		return;
	}
	end_step(r);
	if (res->err == SMTP_CLIENT_EREPLY) {
		r->rep->found.starttls_refused = 1;
		bsnprintf(r->rep->found.why_tls, sizeof(r->rep->found.why_tls),
		    "STARTTLS refused: %d", res->reply->code);
	} else if (res->reply != NULL && res->reply->code == 220) {
		r->rep->found.tls_failed = 1;
		bsnprintf(r->rep->found.why_tls, sizeof(r->rep->found.why_tls),
		    "after the 220 to STARTTLS: %s", res->detail);
	}
	fail_result(r, st, res, NULL);
	if (res->err == SMTP_CLIENT_EREPLY && r->s->tls == PROBE_TLS_AUTO)
		go(r, PH_AUTH);		/* still usable, in clear */
	else
		main_over(r);
}

static void
start_starttls(struct run *r)
{
	const struct smtp_ehlo *e = smtp_client_ehlo_info(r->c);
	struct probe_step *st = begin_step(r, "starttls");

	r->rep->found.starttls_offered = e != NULL &&
	    (e->ext & SMTP_EXT_STARTTLS);
	if (r->rep->found.starttls_offered) {
		smtp_client_starttls(r->c, r->s->ctx, r->name, on_starttls, r);
		return;
	}
	end_step(r);
	probe_detail(st, "not offered: the EHLO reply does not list "
	    "STARTTLS%s", r->s->tls == PROBE_TLS_AUTO ? "; going on in "
	    "clear" : "");
	bsnprintf(r->rep->found.why_tls, sizeof(r->rep->found.why_tls),
	    "STARTTLS not offered");
	probe_problem(st, r->s->tls == PROBE_TLS_AUTO ? PROBE_WARN :
	    PROBE_FAIL, FC_NO_STARTTLS, &r->fx);
	if (r->s->tls == PROBE_TLS_AUTO)
		go(r, PH_AUTH);
	else
		main_over(r);
}

static void
on_ehlo_tls(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct probe_step *st = end_step(r);

	(void)c;
	if (res->err != SMTP_CLIENT_OK) {
		fail_result(r, st, res, NULL);
		main_over(r);
		return;
	}
	if (smtp_client_esmtp(c))
		detail_ext(st, res->reply);
	else
		detail_reply(st, res->reply);
	go(r, PH_AUTH);
}

static void
start_ehlo_tls(struct run *r)
{
	begin_step(r, "ehlo-tls");
	smtp_client_ehlo(r->c, r->s->helo, on_ehlo_tls, r);
}

/* ---- AUTH ------------------------------------------------------------ */

static void
on_auth(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct probe_step *st = end_step(r);

	(void)c;
	if (res->err == SMTP_CLIENT_OK) {
		detail_reply(st, res->reply);
		probe_detail(st, "authenticated as \"%s\"", r->s->user);
	} else {
		fail_result(r, st, res, NULL);
		if (res->err != SMTP_CLIENT_EREPLY) {
			main_over(r);
			return;
		}
	}
	go(r, PH_MAIL);
}

/* With --user: which mechanism, or why none is tried.  NULL = not
 * tried (the step is complete). */
static const char *
auth_mech(struct run *r, struct probe_step *st, const struct smtp_ehlo *e)
{
	struct failcause_ctx x = r->fx;

	if (e == NULL || !(e->ext & SMTP_EXT_AUTH)) {
		probe_problem(st, PROBE_FAIL, FC_AUTH_NOT_OFFERED, &x);
		return NULL;
	}
	if (!r->tls_up && r->s->tls != PROBE_TLS_PLAIN) {
		probe_detail(st, "not tried: the session is not encrypted");
		probe_problem(st, PROBE_FAIL, FC_AUTH_PLAINTEXT, &x);
		return NULL;
	}
	if (e->auth & SMTP_AUTH_PLAIN)
		return "PLAIN";
	if (e->auth & SMTP_AUTH_LOGIN)
		return "LOGIN";
	x.detail = e->auth_mechs;
	probe_problem(st, PROBE_FAIL, FC_AUTH_NO_MECH, &x);
	return NULL;
}

static void
start_auth(struct run *r)
{
	const struct smtp_ehlo *e = smtp_client_ehlo_info(r->c);
	struct probe_step *st = begin_step(r, "auth");
	const char *mech;

	if (e != NULL && (e->ext & SMTP_EXT_AUTH))
		probe_detail(st, "offered%s: %s", r->tls_up ? " under TLS" :
		    " in clear", e->auth_mechs[0] ? e->auth_mechs : "(none)");
	else
		probe_detail(st, "not offered%s", r->tls_up ? " under TLS" :
		    "");
	if (r->auth0[0] != '\0' && r->s->tls != PROBE_TLS_PLAIN) {
		probe_detail(st, "offered before TLS: %s", r->auth0);
		probe_problem(st, PROBE_WARN, FC_AUTH_BEFORE_TLS, &r->fx);
	}
	if (r->s->user == NULL) {
		if (e != NULL && (e->ext & SMTP_EXT_AUTH))
			probe_detail(st, "not tried (no --user)");
		end_step(r);
		go(r, PH_MAIL);
		return;
	}
	if ((mech = auth_mech(r, st, e)) == NULL) {
		end_step(r);
		go(r, PH_MAIL);
		return;
	}
	probe_detail(st, "AUTH %s as \"%s\", password ****", mech, r->s->user);
	smtp_client_auth(r->c, mech, r->s->user, r->s->password,
	    r->s->tls == PROBE_TLS_PLAIN, on_auth, r);
}

/* ---- MAIL, RCPT, RSET, QUIT ------------------------------------------ */

/* The reply to MAIL or RCPT into the step: 1 for a 2xx, 0 for a
 * refusal (FAIL and its fix), -1 when the connection is over (then the
 * run has moved on). */
static int
tx_reply(struct run *r, struct probe_step *st,
    const struct smtp_client_result *res, const char *step,
    const char *address)
{
	struct smtp_client_result rr = *res;

	if (res->err == SMTP_CLIENT_OK && smtp_reply_class(res->reply) == 2) {
		detail_reply(st, res->reply);
		return 1;
	}
	if (res->err == SMTP_CLIENT_OK) {
		rr.err = SMTP_CLIENT_EREPLY;
		rr.step = step;
	}
	fail_result(r, st, &rr, address);
	if (rr.err == SMTP_CLIENT_EREPLY)
		return 0;
	main_over(r);
	return -1;
}

static void
on_mail(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;

	(void)c;
	switch (tx_reply(r, end_step(r), res, "MAIL", r->s->from)) {
	case 0:
		r->rcpt_i = r->s->nrcpts;	/* no RCPT after a refusal */
		/* FALLTHROUGH */
	case 1:
		go(r, PH_RCPT);
		break;
	}
}

static void
start_mail(struct run *r)
{
	struct strbuf line = STRBUF_INIT;

	if (r->s->from == NULL) {
		go(r, PH_QUIT);
		return;
	}
	probe_detail(begin_step(r, "mail"), "MAIL FROM:<%s>", r->s->from);
	strbuf_printf(&line, "MAIL FROM:<%s>", r->s->from);
	smtp_client_command(r->c, line.s, 0, on_mail, r);
	strbuf_free(&line);
}

static void	rcpt_next(struct run *);

static void
on_rcpt(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	struct probe_step *st = cur_step(r);
	const char *to = r->s->rcpts[r->rcpt_i];

	(void)c;
	st->ms = since(r);
	probe_detail(st, "RCPT TO:<%s>", to);
	if (tx_reply(r, st, res, "RCPT", to) == -1)
		return;
	r->rcpt_i++;
	rcpt_next(r);
}

static void
on_rset(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	(void)c;
	(void)res;
	go(arg, PH_QUIT);
}

static void
rcpt_next(struct run *r)
{
	struct strbuf line = STRBUF_INIT;

	if (r->rcpt_i >= r->s->nrcpts) {
		/* nothing is sent: the transaction is dropped */
		smtp_client_command(r->c, "RSET", 0, on_rset, r);
		return;
	}
	strbuf_printf(&line, "RCPT TO:<%s>", r->s->rcpts[r->rcpt_i]);
	smtp_client_command(r->c, line.s, 0, on_rcpt, r);
	strbuf_free(&line);
}

static void
start_rcpt(struct run *r)
{
	if (r->rcpt_i < r->s->nrcpts)
		begin_step(r, "rcpt");
	rcpt_next(r);
}

static void
on_quit(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	(void)c;
	(void)res;
	main_over(arg);
}

static void
start_quit(struct run *r)
{
	smtp_client_quit(r->c, on_quit, r);
}

/* ---- connections of their own ----------------------------------------- */

/*
 * Each: connect to the address that worked, then implicit TLS, or
 * greeting, EHLO and STARTTLS (the injection check: with NOOP, then
 * QUIT); side_done() gets the result of the last step.
 */
static void	side_done(struct run *, const struct smtp_client_result *);

static void
side_on_quit(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	(void)c;
	side_done(arg, res);
}

static void
side_on_tls(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;

	if (res->err == SMTP_CLIENT_OK && r->side_kind == SIDE_INJECT) {
		smtp_client_quit(c, side_on_quit, r);
		return;
	}
	side_done(r, res);
}

static void
side_on_ehlo(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;
	const struct smtp_ehlo *e = smtp_client_ehlo_info(c);
	struct smtp_client_result nr;

	if (res->err != SMTP_CLIENT_OK) {
		side_done(r, res);
		return;
	}
	if (e == NULL || !(e->ext & SMTP_EXT_STARTTLS)) {
		nr = *res;
		nr.err = SMTP_CLIENT_EREPLY;
		nr.step = "EHLO";
		bstrlcpy(nr.detail, "STARTTLS not offered this time",
		    sizeof(nr.detail));
		side_done(r, &nr);
		return;
	}
	if (r->side_kind == SIDE_INJECT)
		smtp_client_starttls_inject(c, r->side_ctx, r->name,
		    side_on_tls, r);
	else
		smtp_client_starttls(c, r->side_ctx, r->name, side_on_tls, r);
}

static void
side_on_greeting(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;

	if (res->err != SMTP_CLIENT_OK)
		side_done(r, res);
	else
		smtp_client_ehlo(c, r->s->helo, side_on_ehlo, r);
}

static void
side_on_connect(struct smtp_client *c, const struct smtp_client_result *res,
    void *arg)
{
	struct run *r = arg;

	if (res->err != SMTP_CLIENT_OK)
		side_done(r, res);
	else if (r->s->tls == PROBE_TLS_IMPLICIT)
		smtp_client_tls(c, r->side_ctx, r->name, side_on_tls, r);
	else
		smtp_client_greeting(c, side_on_greeting, r);
}

static void
side_start(struct run *r, enum side_kind kind)
{
	const struct dns_addr *a = &r->host.addrs[r->ai];
	struct smtp_client_result none;

	r->side_kind = kind;
	r->side_ctx = diag_ctx(kind == SIDE_OLD ? TLS1_1_VERSION : 0);
	r->side = smtp_client_new(r->base, &r->to);
	if (r->side_ctx == NULL) {
		memset(&none, 0, sizeof(none));
		none.err = SMTP_CLIENT_EUSAGE;
		bstrlcpy(none.detail, "no diagnostic TLS context",
		    sizeof(none.detail));
		side_done(r, &none);
		return;
	}
	smtp_client_connect(r->side, (const struct sockaddr *)&a->ss, a->len,
	    side_on_connect, r);
}

/* What the diagnostic handshake says about the one that failed. */
static void
diag_done(struct run *r, const struct smtp_client_result *res, SSL *ssl)
{
	probe_tls_failed(r->rep, r->s, r->cur, r->tls_cause, r->tls_reason,
	    res->err == SMTP_CLIENT_OK ? ssl : NULL, r->name);
	go(r, PH_DONE);
}

static void
old_done(struct run *r, const struct smtp_client_result *res, SSL *ssl)
{
	struct probe_step *st = end_step(r);
	struct failcause_ctx x = r->fx;
	char det[128];

	if (res->err == SMTP_CLIENT_OK && ssl != NULL) {
		bsnprintf(det, sizeof(det), "%s", tls_protocol(ssl));
		probe_detail(st, "a handshake limited to TLS 1.0 and 1.1 "
		    "succeeded: %s, cipher %s", tls_protocol(ssl),
		    tls_cipher(ssl));
		x.detail = det;
		probe_problem(st, PROBE_WARN, FC_TLS_OLD_PROTOCOL, &x);
	} else if (res->err == SMTP_CLIENT_ETLS)
		probe_detail(st, "TLS 1.0 and 1.1 refused (%s)", res->detail);
	else
		probe_detail(st, "not checked: %s%s%s",
		    smtp_client_strerror(res->err), res->detail[0] ? ": " : "",
		    res->detail);
	go(r, PH_INJECT);
}

static void
inject_done(struct run *r, const struct smtp_client_result *res)
{
	struct probe_step *st = end_step(r);
	struct failcause_ctx x = r->fx;

	if (res->err == SMTP_CLIENT_OK && res->reply != NULL &&
	    res->reply->code != 221) {
		probe_detail(st, "STARTTLS and NOOP sent in one packet: the "
		    "NOOP was answered inside TLS:");
		detail_reply(st, res->reply);
		probe_problem(st, PROBE_FAIL, FC_STARTTLS_INJECTION, &x);
	} else if (res->err == SMTP_CLIENT_OK)
		probe_detail(st, "STARTTLS and NOOP sent in one packet: the "
		    "NOOP was discarded (not executed inside TLS)");
	else if (res->err == SMTP_CLIENT_EPROTO && res->reply != NULL &&
	    res->reply->code == 220)
		probe_detail(st, "it answered the NOOP in clear, right after "
		    "its 220 (not what RFC 3207 4.2 asks, but nothing reaches "
		    "the TLS session)");
	else
		probe_detail(st, "not checked: %s%s%s",
		    smtp_client_strerror(res->err), res->detail[0] ? ": " : "",
		    res->detail);
	go(r, PH_DONE);
}

static void
side_done(struct run *r, const struct smtp_client_result *res)
{
	struct smtp_client *c = r->side;
	SSL_CTX *ctx = r->side_ctx;
	SSL *ssl = c != NULL ? smtp_client_ssl(c) : NULL;

	/* the handler may start the next connection of its own; this one,
	 * whose result it reads, is freed after it */
	r->side = NULL;
	r->side_ctx = NULL;
	switch (r->side_kind) {
	case SIDE_DIAG:
		diag_done(r, res, ssl);
		break;
	case SIDE_OLD:
		old_done(r, res, ssl);
		break;
	case SIDE_INJECT:
		inject_done(r, res);
		break;
	}
	smtp_client_free(c);
	SSL_CTX_free(ctx);
}

static void
start_old_tls(struct run *r)
{
	if (!r->s->extra || !r->rep->found.tls_up) {
		go(r, PH_INJECT);
		return;
	}
	begin_step(r, "old-tls");
	side_start(r, SIDE_OLD);
}

static void
start_inject(struct run *r)
{
	if (!r->s->extra || !r->rep->found.tls_up ||
	    r->s->tls == PROBE_TLS_IMPLICIT) {
		go(r, PH_DONE);
		return;
	}
	begin_step(r, "injection");
	side_start(r, SIDE_INJECT);
}

/* ---- the machine ----------------------------------------------------- */

static void
finish(struct run *r)
{
	r->done = 1;
	event_base_loopbreak(r->base);
}

static const struct {
	enum phase	 ph;
	void		(*start)(struct run *);
} phases[] = {
	{ PH_RESOLVE, start_resolve },
	{ PH_CONNECT, start_connect },
	{ PH_TLS, start_tls },
	{ PH_BANNER, start_banner },
	{ PH_EHLO, start_ehlo },
	{ PH_STARTTLS, start_starttls },
	{ PH_EHLO_TLS, start_ehlo_tls },
	{ PH_AUTH, start_auth },
	{ PH_MAIL, start_mail },
	{ PH_RCPT, start_rcpt },
	{ PH_QUIT, start_quit },
	{ PH_OLD_TLS, start_old_tls },
	{ PH_INJECT, start_inject },
	{ PH_DONE, finish },
};

/* Enter a phase: print the steps that ended, start the phase's step. */
static void
go(struct run *r, enum phase ph)
{
	size_t i;

	print_new(r);
	r->ph = ph;
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		if (phases[i].ph == ph) {
			phases[i].start(r);
			return;
		}
	fatalx("probe: no phase %d", (int)ph);
}

/* Every step against one server, to the end. */
void
probe_run(struct event_base *base, const struct probe_settings *s,
    struct probe_report *rep)
{
	struct run r;
	double t = s->timeout;

	memset(&r, 0, sizeof(r));
	r.s = s;
	r.rep = rep;
	r.base = base;
	memset(&rep->found, 0, sizeof(rep->found));
	rep->found.starttls_offered = -1;
	r.name = s->servername != NULL ? s->servername : s->host;
	strbuf_init(&r.tried);
	probe_fctx(rep, s, &r.fx);
	smtp_client_timeouts_default(&r.to);
	r.to.connect = r.to.tls = r.to.greeting = r.to.ehlo = r.to.command =
	    r.to.mail = r.to.rcpt = t;
	r.to.quit = t < 5 ? t : 5;
	go(&r, PH_RESOLVE);
	if (!r.done)
		event_base_dispatch(base);
	print_new(&r);
	smtp_client_free(r.c);
	smtp_client_free(r.side);
	SSL_CTX_free(r.side_ctx);
	strbuf_free(&r.tried);
}
