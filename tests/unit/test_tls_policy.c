/*
 * test_tls_policy.c - the outbound TLS ladder (tls_policy.h): every
 * destination tls mode with every route tls, and what each TLS event
 * leads to.  In particular Cisco's "preferred": clear text only when
 * STARTTLS is not offered or refused before its 220; a failure after the
 * 220 is a possible attack (deferred), never clear.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "tls_policy.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_ladder(void **state)
{
	static const struct {
		enum dest_tls	 dest;
		enum route_tls	 route;
		const char	*want_mode;
		int		 want_of_route, want_implicit, want_starttls,
				 want_verify, want_required;
		enum tls_action	 want_not_offered, want_refused,
				 want_no_reply, want_after_220,
				 want_unverified;
	} cases[] = {
		{ DEST_TLS_NONE, ROUTE_TLS_UNSET, "none", 0, 0, 0, 0, 0,
		  TLS_GO, TLS_GO, TLS_LOST, TLS_ATTACK, TLS_GO },
		{ DEST_TLS_PREFERRED, ROUTE_TLS_UNSET, "preferred", 0, 0, 1, 0,
		  0, TLS_CLEAR, TLS_CLEAR, TLS_LOST, TLS_ATTACK, TLS_GO },
		{ DEST_TLS_REQUIRED, ROUTE_TLS_UNSET, "required", 0, 0, 1, 0, 1,
		  TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_GO },
		{ DEST_TLS_PREFERRED_VERIFY, ROUTE_TLS_UNSET,
		  "preferred-verify", 0, 0, 1, 1, 0, TLS_CLEAR, TLS_CLEAR,
		  TLS_LOST, TLS_ATTACK, TLS_WARN },
		{ DEST_TLS_REQUIRED_VERIFY, ROUTE_TLS_UNSET, "required-verify",
		  0, 0, 1, 1, 1, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL,
		  TLS_FAIL },
		/* route tls = "none": never STARTTLS, whatever the destination */
		{ DEST_TLS_REQUIRED_VERIFY, ROUTE_TLS_NONE, "none", 1, 0, 0, 0,
		  0, TLS_GO, TLS_GO, TLS_LOST, TLS_ATTACK, TLS_GO },
		/* route tls = "starttls": TLS or nothing; verification as the
		 * destination says */
		{ DEST_TLS_PREFERRED, ROUTE_TLS_STARTTLS, "starttls", 1, 0, 1, 0,
		  1, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_GO },
		{ DEST_TLS_PREFERRED_VERIFY, ROUTE_TLS_STARTTLS, "starttls", 1,
		  0, 1, 1, 1, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL,
		  TLS_WARN },
		{ DEST_TLS_REQUIRED_VERIFY, ROUTE_TLS_STARTTLS, "starttls", 1,
		  0, 1, 1, 1, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL,
		  TLS_FAIL },
		/* route tls = "implicit": TLS before the greeting */
		{ DEST_TLS_NONE, ROUTE_TLS_IMPLICIT, "implicit", 1, 1, 0, 0, 1,
		  TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_GO },
		{ DEST_TLS_REQUIRED_VERIFY, ROUTE_TLS_IMPLICIT, "implicit", 1, 1,
		  0, 1, 1, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL, TLS_FAIL },
		/* out of range: treated as the default, preferred */
		{ (enum dest_tls)99, ROUTE_TLS_UNSET, "preferred", 0, 0, 1, 0,
		  0, TLS_CLEAR, TLS_CLEAR, TLS_LOST, TLS_ATTACK, TLS_GO },
	};
	struct tls_policy p;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		memset(&p, 0xa5, sizeof(p));
		tls_policy_get(cases[i].dest, cases[i].route, &p);
		if (strcmp(p.mode, cases[i].want_mode) != 0)
			fail_msg("case %zu: mode %s", i, p.mode);
		assert_int_equal(p.of_route, cases[i].want_of_route);
		assert_int_equal(p.implicit, cases[i].want_implicit);
		assert_int_equal(p.starttls, cases[i].want_starttls);
		assert_int_equal(p.verify, cases[i].want_verify);
		assert_int_equal(p.required, cases[i].want_required);
		assert_int_equal(p.not_offered, cases[i].want_not_offered);
		assert_int_equal(p.refused, cases[i].want_refused);
		assert_int_equal(p.no_reply, cases[i].want_no_reply);
		assert_int_equal(p.after_220, cases[i].want_after_220);
		assert_int_equal(p.unverified, cases[i].want_unverified);
	}
}

/* The rule itself, over every row: no preferred mode ever lets a failure
 * after the 220 continue in clear, and only required modes fail hard
 * before it. */
static void
test_never_clear_after_220(void **state)
{
	enum route_tls routes[] = { ROUTE_TLS_UNSET, ROUTE_TLS_NONE,
	    ROUTE_TLS_STARTTLS, ROUTE_TLS_IMPLICIT };
	struct tls_policy p;
	size_t r;
	int d;

	for (d = DEST_TLS_NONE; d <= DEST_TLS_REQUIRED_VERIFY; d++)
		for (r = 0; r < NELEM(routes); r++) {
			tls_policy_get((enum dest_tls)d, routes[r], &p);
			assert_true(p.after_220 == TLS_ATTACK ||
			    p.after_220 == TLS_FAIL);
			assert_int_equal(p.after_220 == TLS_FAIL, p.required);
			assert_int_equal(p.not_offered == TLS_FAIL, p.required);
			assert_int_equal(p.refused == TLS_FAIL, p.required);
			assert_true(!p.implicit || !p.starttls);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ladder),
		cmocka_unit_test(test_never_clear_after_220),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
