/*
 * route.c - the router (see route.h): recipient address -> maildir, LMTP,
 * a route's next hops or MX, with the destination control that applies.
 *
 * Public: route_decide, route_destination, route_same_queue,
 * route_kind_name.
 *
 * Input is untrusted (an envelope address from the network, fuzzed by
 * tests/fuzz/fuzz_route.c): the domain is the text after the last '@',
 * copied bounded and lower-cased; an address without one, or with a
 * domain longer than RFC 5321 allows, is routed nowhere (bounced 5.1.3),
 * never truncated into some other domain.  Whether a maildir recipient
 * exists is not a routing question: deliver_local_check() answers it.
 */
#include <string.h>

#include "route.h"
#include "util.h"

static enum route_kind
route_nowhere(struct route_decision *d, const char *why)
{
	d->kind = ROUTE_TO_NOWHERE;
	d->why = why;
	d->status = "5.1.3";	/* RFC 3463: bad destination address */
	return d->kind;
}

/* Every next hop of the route is "lmtp:..." (nexthop_parse.h syntax). */
static int
all_lmtp(const struct conf_route *r)
{
	size_t i;

	for (i = 0; i < r->nhosts; i++)
		if (ascii_ncasecmp(r->hosts[i], "lmtp:", 5) != 0)
			return 0;
	return r->nhosts > 0;
}

/* The destination control of a network decision. */
static void
route_control(const struct conf *conf, struct route_decision *d)
{
	d->dest = route_destination(conf, d->domain);
	d->tls = d->dest != NULL ? d->dest->tls : DEST_TLS_PREFERRED;
	d->max_connections = d->dest != NULL ? d->dest->max_connections :
	    ROUTE_MAX_CONNECTIONS;
	if (d->max_connections < 1)
		d->max_connections = 1;
	/* SPEC "routes": a route with its own tls is one queue. */
	d->queue_per_route = d->route != NULL &&
	    d->route->tls != ROUTE_TLS_UNSET;
}

int
route_domain_of(const char *rcpt, char *buf, size_t len)
{
	const char *at = strrchr(rcpt, '@');
	size_t n;

	buf[0] = '\0';
	if (at == NULL || at[1] == '\0')
		return -1;
	n = strlen(at + 1);
	if (n > ROUTE_DOMAIN_MAX || n >= len)
		return -1;
	memcpy(buf, at + 1, n + 1);
	ascii_lower(buf, n);
	return 0;
}

enum route_kind
route_decide(const struct conf *conf, const char *rcpt,
    struct route_decision *d)
{
	const char *at = strrchr(rcpt, '@');

	memset(d, 0, sizeof(*d));
	if (at == NULL || at[1] == '\0')
		return route_nowhere(d, "recipient address has no domain");
	if (route_domain_of(rcpt, d->domain, sizeof(d->domain)) == -1)
		return route_nowhere(d, "recipient domain is too long");
	d->route = conf_route_for(conf, d->domain);
	if (d->route != NULL && d->route->maildir != NULL) {
		d->kind = ROUTE_TO_MAILDIR;
		return d->kind;
	}
	if (d->route != NULL && d->route->hosts == NULL)
		d->route = NULL;	/* neither maildir nor hosts: MX */
	if (d->route == NULL)
		d->kind = ROUTE_TO_MX;
	else
		d->kind = all_lmtp(d->route) ? ROUTE_TO_LMTP : ROUTE_TO_HOSTS;
	route_control(conf, d);
	return d->kind;
}

const struct conf_destination *
route_destination(const struct conf *conf, const char *domain)
{
	const struct conf_destination *star = NULL;
	size_t i;

	for (i = 0; i < conf->ndestinations; i++) {
		if (ascii_casecmp(conf->destinations[i].domain, domain) == 0)
			return &conf->destinations[i];
		if (star == NULL && strcmp(conf->destinations[i].domain,
		    "*") == 0)
			star = &conf->destinations[i];
	}
	return star;
}

int
route_same_queue(const struct route_decision *a,
    const struct route_decision *b)
{
	if (a->kind < ROUTE_TO_LMTP || b->kind < ROUTE_TO_LMTP)
		return 0;
	if (a->route != b->route)
		return 0;
	return a->queue_per_route || strcmp(a->domain, b->domain) == 0;
}

const char *
route_kind_name(enum route_kind k)
{
	static const char *const names[] = { "nowhere", "maildir", "lmtp",
	    "hosts", "mx" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] :
	    "?";
}
