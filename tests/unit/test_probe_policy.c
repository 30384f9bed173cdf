/*
 * test_probe_policy.c - `postern probe --policy`: for every destination
 * tls (none ... required-verify), a route's own tls, a local domain, and
 * what a probe can find (verified TLS, TLS not verified, no STARTTLS,
 * STARTTLS refused, a handshake that failed after the 220, a server that
 * cannot be reached), the verdict the "policy" step gives and its status
 * (a defer is a FAIL with the policy-defer fix, clear text where TLS was
 * meant a warn with policy-clear).  The verdicts come from the delivery's
 * own router and ladder, so this table is also what delivery does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "probe.h"
#include "util.h"

static const char POLICY_CONF[] =
    "local_domains = [ \"local.test\" ];\n"
    "routes = (\n"
    " { domain = \"local.test\"; maildir = \"m/%d/%u\"; },\n"
    " { domain = \"viaroute.test\"; hosts = [ \"[192.0.2.1]:587\" ]; "
    "tls = \"starttls\"; },\n"
    " { domain = \"implicit.test\"; hosts = [ \"[192.0.2.1]:465\" ]; "
    "tls = \"implicit\"; }\n"
    ");\n"
    "destinations = (\n"
    " { domain = \"none.test\"; tls = \"none\"; },\n"
    " { domain = \"preferred.test\"; tls = \"preferred\"; },\n"
    " { domain = \"required.test\"; tls = \"required\"; },\n"
    " { domain = \"pverify.test\"; tls = \"preferred-verify\"; },\n"
    " { domain = \"rverify.test\"; tls = \"required-verify\"; },\n"
    " { domain = \"viaroute.test\"; tls = \"none\"; }\n"
    ");\n";

enum found { F_VERIFIED, F_UNVERIFIED, F_NO_STARTTLS, F_REFUSED,
	F_AFTER_220, F_DOWN, F_PLAIN };

#define VER	"deliver encrypted and verified"
#define UNV	"deliver encrypted, unverified"
#define CLR	"deliver in clear"
#define DEF	"defer (the mail waits in the queue)"

struct pcase {
	const char	*domain;
	enum found	 found;
	enum probe_tls	 mode;
	const char	*want;		/* verdict, NULL = no verdict line */
	enum probe_status want_status;
};

static const struct pcase cases[] = {
	/* verified TLS */
	{ "none.test", F_VERIFIED, PROBE_TLS_AUTO, CLR, PROBE_OK },
	{ "preferred.test", F_VERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	{ "required.test", F_VERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	{ "pverify.test", F_VERIFIED, PROBE_TLS_AUTO, VER, PROBE_OK },
	{ "rverify.test", F_VERIFIED, PROBE_TLS_AUTO, VER, PROBE_OK },
	{ "unlisted.test", F_VERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	/* TLS, certificate not verified */
	{ "preferred.test", F_UNVERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	{ "required.test", F_UNVERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	{ "pverify.test", F_UNVERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	{ "rverify.test", F_UNVERIFIED, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	/* no STARTTLS */
	{ "none.test", F_NO_STARTTLS, PROBE_TLS_AUTO, CLR, PROBE_OK },
	{ "preferred.test", F_NO_STARTTLS, PROBE_TLS_AUTO, CLR, PROBE_WARN },
	{ "required.test", F_NO_STARTTLS, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	{ "pverify.test", F_NO_STARTTLS, PROBE_TLS_AUTO, CLR, PROBE_WARN },
	{ "rverify.test", F_NO_STARTTLS, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	/* STARTTLS refused before its 220 */
	{ "preferred.test", F_REFUSED, PROBE_TLS_AUTO, CLR, PROBE_WARN },
	{ "required.test", F_REFUSED, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	/* failed after the 220: never clear text, even when preferred */
	{ "none.test", F_AFTER_220, PROBE_TLS_AUTO, CLR, PROBE_OK },
	{ "preferred.test", F_AFTER_220, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	{ "pverify.test", F_AFTER_220, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	{ "required.test", F_AFTER_220, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	/* not reachable */
	{ "preferred.test", F_DOWN, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	/* a route's own tls (starttls) over the destination's none */
	{ "viaroute.test", F_NO_STARTTLS, PROBE_TLS_AUTO, DEF, PROBE_FAIL },
	{ "viaroute.test", F_UNVERIFIED, PROBE_TLS_AUTO, UNV, PROBE_OK },
	/* an implicit-TLS route probed with STARTTLS, and with --tls */
	{ "implicit.test", F_VERIFIED, PROBE_TLS_AUTO, "not judged",
	    PROBE_OK },
	{ "implicit.test", F_VERIFIED, PROBE_TLS_IMPLICIT, UNV, PROBE_OK },
	/* --plain: STARTTLS not tried, nothing to judge */
	{ "preferred.test", F_PLAIN, PROBE_TLS_PLAIN, "not judged",
	    PROBE_OK },
	/* a local domain: no SMTP */
	{ "local.test", F_VERIFIED, PROBE_TLS_AUTO, NULL, PROBE_OK },
};

static void
fill_found(struct probe_found *f, enum found what)
{
	memset(f, 0, sizeof(*f));
	f->connected = what != F_DOWN;
	f->starttls_offered = what == F_NO_STARTTLS ? 0 : what == F_PLAIN ?
	    -1 : 1;
	f->starttls_refused = what == F_REFUSED;
	f->tls_failed = what == F_AFTER_220;
	f->tls_up = what == F_VERIFIED || what == F_UNVERIFIED;
	f->chain_ok = what == F_VERIFIED;
	f->name_ok = f->tls_up;
}

static void
test_verdicts(void **state)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c = conf_load_string(POLICY_CONF, "t.conf", "/srv", &errs);
	struct probe_settings set;
	struct probe_report r;
	const struct probe_step *st;
	char want[200];
	size_t i;

	(void)state;
	assert_non_null(c);
	assert_int_equal(errs.n, 0);
	memset(&set, 0, sizeof(set));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&r, 0, sizeof(r));
		bstrlcpy(r.host, "mx.test", sizeof(r.host));
		r.port = 25;
		set.tls = cases[i].mode;
		fill_found(&r.found, cases[i].found);
		probe_policy_step(&r, &set, c, cases[i].domain);
		assert_int_equal(r.nsteps, 1);
		st = &r.steps[0];
		assert_string_equal(st->name, "policy");
		if (cases[i].want != NULL) {
			bsnprintf(want, sizeof(want), "\nverdict: %s\n",
			    cases[i].want);
			if (strstr(st->details.s, want) == NULL)
				fail_msg("case %zu (%s): %s", i,
				    cases[i].domain, st->details.s);
		} else
			assert_null(strstr(st->details.s, "verdict"));
		if (st->status != cases[i].want_status)
			fail_msg("case %zu (%s): status %d, want %d", i,
			    cases[i].domain, (int)st->status,
			    (int)cases[i].want_status);
		/* a FAIL or warn has its fix, an ok none */
		assert_int_equal(st->nfix > 0, st->status != PROBE_OK);
		if (st->status == PROBE_FAIL)
			assert_int_equal(st->cause[0], FC_POLICY_DEFER);
		if (st->status == PROBE_WARN)
			assert_int_equal(st->cause[0], FC_POLICY_CLEAR);
		probe_report_free(&r);
	}
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
