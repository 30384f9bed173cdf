/*
 * tls_policy.c - the outbound TLS ladder (see tls_policy.h).
 *
 * Public: tls_policy_get.
 *
 * One row per destination tls mode; a route's own tls replaces the
 * "required" columns (starttls, implicit) or the whole row (none), and
 * keeps the destination's verification columns, as postern.conf(5) says of routes: a
 * route without tls follows the destination control of the recipient
 * domain.  Changing what a mode means is changing one row here.
 */
#include "tls_policy.h"

static const struct tls_policy ladder[] = {
	/* mode, of_route, implicit, starttls, verify, required,
	 * not_offered, refused, no_reply, after_220, unverified */
	[DEST_TLS_NONE] = { "none", 0, 0, 0, 0, 0,
	    TLS_GO, TLS_GO, TLS_LOST, TLS_ATTACK, TLS_GO },
	[DEST_TLS_PREFERRED] = { "preferred", 0, 0, 1, 0, 0,
	    TLS_CLEAR, TLS_CLEAR, TLS_LOST, TLS_ATTACK, TLS_GO },
	[DEST_TLS_REQUIRED] = { "required", 0, 0, 1, 0, 1,
	    TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_GO },
	[DEST_TLS_PREFERRED_VERIFY] = { "preferred-verify", 0, 0, 1, 1, 0,
	    TLS_CLEAR, TLS_CLEAR, TLS_LOST, TLS_ATTACK, TLS_WARN },
	[DEST_TLS_REQUIRED_VERIFY] = { "required-verify", 0, 0, 1, 1, 1,
	    TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL },
};

/* A route with tls = "starttls" or "implicit": TLS or nothing. */
static void
route_requires(struct tls_policy *p, int implicit)
{
	p->mode = implicit ? "implicit" : "starttls";
	p->of_route = 1;
	p->implicit = implicit;
	p->starttls = !implicit;
	p->required = 1;
	p->not_offered = p->refused = p->no_reply = p->after_220 = TLS_FAIL;
}

void
tls_policy_get(enum dest_tls dest, enum route_tls route,
    struct tls_policy *p)
{
	if ((unsigned)dest >= sizeof(ladder) / sizeof(ladder[0]))
		dest = DEST_TLS_PREFERRED;
	*p = ladder[route == ROUTE_TLS_NONE ? DEST_TLS_NONE : dest];
	switch (route) {
	case ROUTE_TLS_NONE:
		p->mode = "none";
		p->of_route = 1;
		break;
	case ROUTE_TLS_STARTTLS:
		route_requires(p, 0);
		break;
	case ROUTE_TLS_IMPLICIT:
		route_requires(p, 1);
		break;
	case ROUTE_TLS_UNSET:
		break;
	}
}
