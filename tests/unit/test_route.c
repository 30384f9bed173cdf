/*
 * test_route.c - the router (route.h), table-driven: maildir, LMTP-only,
 * mixed and SMTP route hosts, MX without a route, "*" routes and
 * destinations, case-insensitive domains, the destination control that
 * applies (tls, max_connections, the built-in default), which recipients
 * share a destination queue (a route with its own tls is one queue for
 * all its domains), and addresses routed nowhere (no domain, a domain too
 * long) - never truncated into another domain.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "route.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* routes[0..5] and destinations[0..1] in this order */
static const char CONF_STAR[] =
    "routes = (\n"
    " { domain = \"example.com\"; maildir = \"mail/%d/%u\"; },\n"
    " { domain = \"corp.example\"; hosts = [ \"[10.0.0.5]:25\", "
    "\"lmtp:/run/dovecot/lmtp\" ]; },\n"
    " { domain = \"lmtp.example\"; hosts = [ \"lmtp:/run/a\", "
    "\"LMTP:[10.0.0.6]:24\" ]; },\n"
    " { domain = \"cloud.example\"; hosts = [ \"smtp.cloud.test:587\" ]; "
    "tls = \"starttls\"; },\n"
    " { domain = \"plain.example\"; hosts = [ \"[10.0.0.7]\" ]; "
    "tls = \"none\"; },\n"
    " { domain = \"*\"; hosts = [ \"smart.example:587\" ]; "
    "tls = \"implicit\"; }\n"
    ");\n"
    "destinations = (\n"
    " { domain = \"partner.example\"; tls = \"required-verify\"; "
    "max_connections = 10; },\n"
    " { domain = \"*\"; tls = \"required\"; max_connections = 3; }\n"
    ");\n";

/* no "*" route (MX), a destination without "*" (built-in default) */
static const char CONF_MX[] =
    "routes = ( { domain = \"Example.COM\"; maildir = \"m/%u\"; } );\n"
    "destinations = ( { domain = \"partner.example\"; tls = \"none\"; "
    "max_connections = 1; } );\n";

static struct conf *
load(const char *text)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c = conf_load_string(text, "t.conf", "/srv", &errs);

	assert_non_null(c);
	if (errs.n > 0)
		fail_msg("%s", errs.msgs[0]);
	conf_errors_free(&errs);
	return c;
}

struct rcase {
	const char	*rcpt;
	enum route_kind	 want_kind;
	int		 want_route;	/* index in conf->routes, -1 none */
	const char	*want_domain;
	int		 want_dest;	/* index in destinations, -1 none */
	enum dest_tls	 want_tls;
	int		 want_max;
	int		 want_per_route;
};

static void
check_cases(const struct conf *c, const struct rcase *cases, size_t n)
{
	struct route_decision d;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct rcase *k = &cases[i];
		enum route_kind got = route_decide(c, k->rcpt, &d);

		if (got != k->want_kind || d.kind != got)
			fail_msg("%s: kind %s, want %s", k->rcpt,
			    route_kind_name(got), route_kind_name(k->want_kind));
		assert_string_equal(d.domain, k->want_domain);
		if (k->want_route < 0)
			assert_null(d.route);
		else
			assert_ptr_equal(d.route, &c->routes[k->want_route]);
		if (got == ROUTE_TO_NOWHERE || got == ROUTE_TO_MAILDIR)
			continue;
		if (k->want_dest < 0)
			assert_null(d.dest);
		else
			assert_ptr_equal(d.dest,
			    &c->destinations[k->want_dest]);
		assert_int_equal(d.tls, k->want_tls);
		assert_int_equal(d.max_connections, k->want_max);
		assert_int_equal(d.queue_per_route, k->want_per_route);
	}
}

static void
test_routes_with_star(void **state)
{
	static const struct rcase cases[] = {
		{ "bob@example.com", ROUTE_TO_MAILDIR, 0, "example.com", -1, 0, 0, 0 },
		{ "Bob@EXAMPLE.Com", ROUTE_TO_MAILDIR, 0, "example.com", -1, 0, 0, 0 },
		{ "a@corp.example", ROUTE_TO_HOSTS, 1, "corp.example", 1,
		  DEST_TLS_REQUIRED, 3, 0 },
		{ "a@lmtp.example", ROUTE_TO_LMTP, 2, "lmtp.example", 1,
		  DEST_TLS_REQUIRED, 3, 0 },
		{ "a@cloud.example", ROUTE_TO_HOSTS, 3, "cloud.example", 1,
		  DEST_TLS_REQUIRED, 3, 1 },
		{ "a@plain.example", ROUTE_TO_HOSTS, 4, "plain.example", 1,
		  DEST_TLS_REQUIRED, 3, 1 },
		/* the "*" route, and the partner's own destination entry */
		{ "a@Partner.Example", ROUTE_TO_HOSTS, 5, "partner.example", 0,
		  DEST_TLS_REQUIRED_VERIFY, 10, 1 },
		{ "\"a@b\"@other.example", ROUTE_TO_HOSTS, 5, "other.example",
		  1, DEST_TLS_REQUIRED, 3, 1 },
		{ "a@sub.example.com", ROUTE_TO_HOSTS, 5, "sub.example.com", 1,
		  DEST_TLS_REQUIRED, 3, 1 },
		{ "postmaster", ROUTE_TO_NOWHERE, -1, "", -1, 0, 0, 0 },
		{ "bob@", ROUTE_TO_NOWHERE, -1, "", -1, 0, 0, 0 },
	};
	struct conf *c = load(CONF_STAR);

	check_cases(c, cases, NELEM(cases));
	conf_free(c);
}

static void
test_mx_without_route(void **state)
{
	static const struct rcase cases[] = {
		{ "bob@example.com", ROUTE_TO_MAILDIR, 0, "example.com", -1, 0, 0, 0 },
		{ "bob@partner.example", ROUTE_TO_MX, -1, "partner.example", 0,
		  DEST_TLS_NONE, 1, 0 },
		/* no destinations entry: preferred, 20 connections */
		{ "bob@Elsewhere.TEST", ROUTE_TO_MX, -1, "elsewhere.test", -1,
		  DEST_TLS_PREFERRED, ROUTE_MAX_CONNECTIONS, 0 },
		{ "bob@[127.0.0.1]", ROUTE_TO_MX, -1, "[127.0.0.1]", -1,
		  DEST_TLS_PREFERRED, ROUTE_MAX_CONNECTIONS, 0 },
	};
	struct conf *c = load(CONF_MX);

	check_cases(c, cases, NELEM(cases));
	conf_free(c);
}

/* A domain longer than RFC 5321 allows is refused, not truncated. */
static void
test_nowhere(void **state)
{
	struct conf *c = load(CONF_STAR);
	struct route_decision d;
	char addr[600];

	memset(addr, 'a', sizeof(addr));
	addr[0] = 'x';
	addr[1] = '@';
	addr[2 + ROUTE_DOMAIN_MAX] = '\0';	/* exactly 255: fine */
	assert_int_equal(route_decide(c, addr, &d), ROUTE_TO_HOSTS);
	assert_int_equal(strlen(d.domain), ROUTE_DOMAIN_MAX);
	addr[2 + ROUTE_DOMAIN_MAX] = 'a';
	addr[3 + ROUTE_DOMAIN_MAX] = '\0';	/* 256 */
	assert_int_equal(route_decide(c, addr, &d), ROUTE_TO_NOWHERE);
	assert_string_equal(d.status, "5.1.3");
	assert_string_equal(d.why, "recipient domain is too long");
	assert_int_equal(route_decide(c, "nobody", &d), ROUTE_TO_NOWHERE);
	assert_string_equal(d.status, "5.1.3");
	assert_string_equal(d.why, "recipient address has no domain");
	conf_free(c);
}

static void
test_same_queue(void **state)
{
	static const struct {
		const char	*a, *b;
		int		 want;
	} cases[] = {
		/* MX: one queue per domain */
		{ "x@one.test", "y@ONE.test", 1 },
		{ "x@one.test", "y@two.test", 0 },
		/* a route without tls: one queue per domain */
		{ "x@corp.example", "y@corp.example", 1 },
		/* a route with tls: one queue for all its domains */
		{ "x@partner.example", "y@other.example", 1 },
		{ "x@cloud.example", "y@cloud.example", 1 },
		{ "x@cloud.example", "y@other.example", 0 },
		/* maildir recipients never share a network queue */
		{ "x@example.com", "y@example.com", 0 },
		{ "nobody", "nobody", 0 },
	};
	struct conf *star = load(CONF_STAR), *mx = load(CONF_MX);
	struct route_decision a, b;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		const struct conf *c = strstr(cases[i].a, ".test") ? mx : star;
		route_decide(c, cases[i].a, &a);
		route_decide(c, cases[i].b, &b);
		if (route_same_queue(&a, &b) != cases[i].want ||
		    route_same_queue(&b, &a) != cases[i].want)
			fail_msg("%s / %s: want %d", cases[i].a, cases[i].b,
			    cases[i].want);
	}
	conf_free(star);
	conf_free(mx);
}

static void
test_destination_and_names(void **state)
{
	struct conf *c = load(CONF_STAR), *mx = load(CONF_MX);

	assert_ptr_equal(route_destination(c, "PARTNER.example"),
	    &c->destinations[0]);
	assert_ptr_equal(route_destination(c, "x.test"), &c->destinations[1]);
	assert_null(route_destination(mx, "x.test"));
	assert_string_equal(route_kind_name(ROUTE_TO_MAILDIR), "maildir");
	assert_string_equal(route_kind_name(ROUTE_TO_LMTP), "lmtp");
	assert_string_equal(route_kind_name(ROUTE_TO_HOSTS), "hosts");
	assert_string_equal(route_kind_name(ROUTE_TO_MX), "mx");
	assert_string_equal(route_kind_name(ROUTE_TO_NOWHERE), "nowhere");
	assert_string_equal(route_kind_name((enum route_kind)42), "?");
	conf_free(c);
	conf_free(mx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_with_star),
		cmocka_unit_test(test_mx_without_route),
		cmocka_unit_test(test_nowhere),
		cmocka_unit_test(test_same_queue),
		cmocka_unit_test(test_destination_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
