/*
 * probe_policy.c - `postern probe --policy` (see probe.h): what Postern's
 * own delivery would do with the server the probe found, for mail to a
 * domain - deliver encrypted and verified, deliver encrypted unverified,
 * deliver in clear, or defer - and why.  The decision is the delivery's:
 * route_decide() says which route and destinations entry apply, and
 * tls_policy_get() gives the ladder row (none ... required-verify, a
 * route's own tls on top) whose rungs say what happens at each TLS
 * event.  This file only reads the rungs against what the probe found;
 * it decides nothing of its own.
 *
 * Public: probe_policy_step.
 */
#include <string.h>

#include "probe.h"
#include "route.h"
#include "tls_policy.h"
#include "util.h"

enum verdict { V_VERIFIED, V_UNVERIFIED, V_CLEAR, V_DEFER, V_NONE };

static const char *const verdict_text[] = {
	"deliver encrypted and verified",
	"deliver encrypted, unverified",
	"deliver in clear",
	"defer (the mail waits in the queue)",
	"not judged"
};

/* A rung of the ladder for an event that did not go well. */
static enum verdict
rung(enum tls_action a, const char **why)
{
	switch (a) {
	case TLS_GO:
	case TLS_CLEAR:
		*why = "the destination's tls lets it go on in clear";
		return V_CLEAR;
	case TLS_WARN:
		*why = "the destination's tls delivers anyway, with a Warning "
		    "in the log";
		return V_UNVERIFIED;
	case TLS_FAIL:
		*why = "the destination's tls requires it: the next host is "
		    "tried, then the mail waits and an alert goes to "
		    "alerts.recipients";
		return V_DEFER;
	case TLS_ATTACK:
		*why = "a failure after the server's 220 to STARTTLS is taken "
		    "for a possible active attack: never in clear";
		return V_DEFER;
	case TLS_LOST:
		*why = "the connection is lost: the next host is tried, then "
		    "the mail waits";
		return V_DEFER;
	}
	*why = "";
	return V_DEFER;
}

/* What the ladder makes of a session that came up in TLS. */
static enum verdict
judge_tls(const struct probe_report *r, const struct tls_policy *p,
    const char **why)
{
	if (r->found.chain_ok == 1 && r->found.name_ok == 1) {
		*why = p->verify ? "the certificate verifies and names the "
		    "host" : "the certificate would verify, though this tls "
		    "mode does not check it";
		return p->verify ? V_VERIFIED : V_UNVERIFIED;
	}
	if (!p->verify) {
		*why = "this tls mode does not check the certificate (here it "
		    "would fail)";
		return V_UNVERIFIED;
	}
	return rung(p->unverified, why);
}

static enum verdict
judge(const struct probe_report *r, const struct probe_settings *s,
    const struct tls_policy *p, const char **why)
{
	const struct probe_found *f = &r->found;

	if (!f->connected) {
		*why = "the server cannot be reached: the next host is tried, "
		    "then the mail waits";
		return V_DEFER;
	}
	if (!p->starttls && !p->implicit) {
		*why = "tls none: TLS is never started";
		return V_CLEAR;
	}
	if (p->implicit != (s->tls == PROBE_TLS_IMPLICIT)) {
		*why = p->implicit ? "the route uses implicit TLS: probe it "
		    "with --tls" : "the destination uses STARTTLS: probe it "
		    "without --tls";
		return V_NONE;
	}
	if (f->tls_up)
		return judge_tls(r, p, why);
	if (f->tls_failed)
		return rung(p->implicit ? TLS_FAIL : p->after_220, why);
	if (f->starttls_refused)
		return rung(p->refused, why);
	if (f->starttls_offered == 0)
		return rung(p->not_offered, why);
	*why = s->tls == PROBE_TLS_PLAIN ? "the probe ran with --plain: no "
	    "TLS was tried" : "the probe did not get as far as TLS";
	return V_NONE;
}

/* Where mail for the domain goes, in words. */
static void
route_details(struct probe_step *st, const struct route_decision *d,
    const struct tls_policy *p)
{
	struct tls_policy own;

	/* the destination's own row, for its name under a route's tls */
	tls_policy_get(d->tls, ROUTE_TLS_UNSET, &own);
	if (d->dest != NULL)
		probe_detail(st, "destinations entry \"%s\" (line %d): tls %s",
		    d->dest->domain, d->dest->line, own.mode);
	else
		probe_detail(st, "no destinations entry: the built-in "
		    "default, tls preferred");
	if (d->kind == ROUTE_TO_HOSTS)
		probe_detail(st, "route \"%s\" (line %d) to its hosts%s%s",
		    d->route->domain, d->route->line, p->of_route ?
		    ", its own tls " : "", p->of_route ? p->mode : "");
	else
		probe_detail(st, "delivered to its MX hosts");
}

/* The "policy" step: the delivery's verdict for a domain. */
void
probe_policy_step(struct probe_report *r, const struct probe_settings *s,
    const struct conf *conf, const char *domain)
{
	struct probe_step *st = probe_step_add(r, "policy");
	struct route_decision d;
	struct tls_policy p;
	struct failcause_ctx x;
	enum verdict v;
	char rcpt[300], det[128];
	const char *why = "";

	probe_fctx(r, s, &x);
	x.address = domain;
	bsnprintf(rcpt, sizeof(rcpt), "postmaster@%s", domain);
	route_decide(conf, rcpt, &d);
	probe_detail(st, "mail for %s:", domain);
	if (d.kind != ROUTE_TO_HOSTS && d.kind != ROUTE_TO_MX) {
		probe_detail(st, "%s (route kind %s): no SMTP delivery, no "
		    "destination control", d.kind == ROUTE_TO_NOWHERE ?
		    d.why : "delivered locally", route_kind_name(d.kind));
		return;
	}
	tls_policy_get(d.tls, d.route != NULL ? d.route->tls :
	    ROUTE_TLS_UNSET, &p);
	route_details(st, &d, &p);
	v = judge(r, s, &p, &why);
	probe_detail(st, "verdict: %s", verdict_text[v]);
	probe_detail(st, "why: %s", why);
	if (r->found.why_tls[0] != '\0' && v != V_VERIFIED)
		probe_detail(st, "found: %s", r->found.why_tls);
	bsnprintf(det, sizeof(det), "tls %s%s", p.mode, p.of_route ?
	    " of the route" : "");
	x.detail = det;
	if (v == V_DEFER)
		probe_problem(st, PROBE_FAIL, FC_POLICY_DEFER, &x);
	else if (v == V_CLEAR && (p.starttls || p.implicit))
		probe_problem(st, PROBE_WARN, FC_POLICY_CLEAR, &x);
}
