/*
 * fuzz_route.c - libFuzzer target for the router (route.h): a recipient
 * address from the network (the input, NUL-terminated) against a few
 * fixed configurations (one like postern.conf(5)'s example with maildir, LMTP, mixed, tls
 * and "*" routes; one without routes but a maildir; one with no "*" route,
 * so MX).
 *
 * Checks, for every configuration: the return value is d.kind and a known
 * kind; the same input decides the same way twice; nowhere means no '@',
 * nothing after the last one, or a domain over 255 octets, with a 5.1.3
 * status; otherwise the domain is exactly the text after the last '@',
 * lower-cased, and the route is conf_route_for() of it (maildir with a
 * template, LMTP when every hop is lmtp:, hosts otherwise, MX when no
 * route has hosts); a network decision carries the destinations entry
 * route_destination() finds and its tls and max_connections (>= 1), and
 * shares a queue with itself; a maildir expansion of the address, when
 * it succeeds, never has a ".." component or a control character.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "deliver_local.h"
#include "route.h"
#include "util.h"
#include "fuzz_check.h"

static const char *const conf_texts[] = {
	"routes = (\n"
	" { domain = \"example.com\"; maildir = \"mail/%d/%u\"; },\n"
	" { domain = \"corp.example\"; hosts = [ \"[10.0.0.5]:25\", "
	"\"lmtp:/run/dovecot/lmtp\" ]; },\n"
	" { domain = \"lmtp.example\"; hosts = [ \"lmtp:/run/a\" ]; },\n"
	" { domain = \"cloud.example\"; hosts = [ \"smtp.cloud.test:587\" ]; "
	"tls = \"starttls\"; },\n"
	" { domain = \"*\"; hosts = [ \"smart.example:587\" ]; "
	"tls = \"implicit\"; }\n);\n"
	"destinations = (\n"
	" { domain = \"partner.example\"; tls = \"required-verify\"; "
	"max_connections = 10; },\n"
	" { domain = \"*\"; tls = \"preferred\"; max_connections = 20; }\n);\n",

	"local_domains = [ \"localhost\" ];\n"
	"routes = ( { domain = \"localhost\"; maildir = \"m/%d/%u\"; } );\n",

	"routes = ( { domain = \"Example.COM\"; maildir = \"/m/%u\"; "
	"unknown_users = \"reject\"; users = [ \"alice\" ]; } );\n"
	"destinations = ( { domain = \"partner.example\"; tls = \"none\"; "
	"max_connections = 1; } );\n",
};
#define NCONF	(sizeof(conf_texts) / sizeof(conf_texts[0]))

static struct conf *confs[NCONF];

static void
load_confs(void)
{
	struct conf_errors errs;
	size_t i;

	for (i = 0; i < NCONF; i++) {
		memset(&errs, 0, sizeof(errs));
		confs[i] = conf_load_string(conf_texts[i], "fuzz.conf", "/srv",
		    &errs);
		CHECK(confs[i] != NULL && errs.n == 0);
		conf_errors_free(&errs);
	}
}

static int
all_lmtp(const struct conf_route *r)
{
	size_t i;

	for (i = 0; i < r->nhosts; i++)
		if (ascii_ncasecmp(r->hosts[i], "lmtp:", 5) != 0)
			return 0;
	return r->nhosts > 0;
}

static void
check_network(const struct conf *c, const struct route_decision *d)
{
	const struct conf_destination *dest = route_destination(c, d->domain);

	CHECK(d->dest == dest);
	CHECK(d->tls == (dest ? dest->tls : DEST_TLS_PREFERRED));
	CHECK(d->max_connections >= 1);
	CHECK(d->queue_per_route == (d->route != NULL &&
	    d->route->tls != ROUTE_TLS_UNSET));
	CHECK(route_same_queue(d, d));
}

/* A maildir path made from the address stays in the configured tree. */
static void
check_maildir(const struct route_decision *d, const char *rcpt)
{
	char dir[4096];
	size_t i, n;

	if (deliver_local_maildir(d->route, rcpt, dir, sizeof(dir)) == -1)
		return;
	n = strlen(dir);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)dir[i] >= 0x20 && dir[i] != 0x7f);
	CHECK(strstr(dir, "/../") == NULL && strstr(dir, "/./") == NULL);
	CHECK(n < 3 || strcmp(dir + n - 3, "/..") != 0);
}

static void
check_one(const struct conf *c, const char *rcpt)
{
	struct route_decision d, again;
	const struct conf_route *r;
	const char *at = strrchr(rcpt, '@');
	enum route_kind k = route_decide(c, rcpt, &d);
	size_t i, len;

	CHECK(k == d.kind && k >= ROUTE_TO_NOWHERE && k <= ROUTE_TO_MX);
	CHECK(route_decide(c, rcpt, &again) == k);
	CHECK(strcmp(again.domain, d.domain) == 0 && again.route == d.route);
	if (k == ROUTE_TO_NOWHERE) {
		CHECK(at == NULL || at[1] == '\0' ||
		    strlen(at + 1) > ROUTE_DOMAIN_MAX);
		CHECK(d.why != NULL && strcmp(d.status, "5.1.3") == 0);
		CHECK(!route_same_queue(&d, &d));
		return;
	}
	CHECK(at != NULL);
	len = strlen(at + 1);
	CHECK(len > 0 && len <= ROUTE_DOMAIN_MAX && strlen(d.domain) == len);
	CHECK(ascii_ncasecmp(d.domain, at + 1, len) == 0);
	for (i = 0; i < len; i++)
		CHECK(d.domain[i] < 'A' || d.domain[i] > 'Z');
	r = conf_route_for(c, d.domain);
	if (k == ROUTE_TO_MAILDIR) {
		CHECK(d.route == r && r->maildir != NULL);
		check_maildir(&d, rcpt);
		return;
	}
	if (k == ROUTE_TO_MX)
		CHECK(d.route == NULL && (r == NULL || r->hosts == NULL));
	else
		CHECK(d.route == r && r->hosts != NULL &&
		    all_lmtp(r) == (k == ROUTE_TO_LMTP));
	check_network(c, &d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *rcpt;
	size_t i;

	if (confs[0] == NULL)
		load_confs();
	rcpt = malloc(size + 1);
	CHECK(rcpt != NULL);
	memcpy(rcpt, data, size);
	rcpt[size] = '\0';
	for (i = 0; i < NCONF; i++)
		check_one(confs[i], rcpt);
	free(rcpt);
	return 0;
}
