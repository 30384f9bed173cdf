/*
 * test_pickup_parse.c - table-driven tests for the envelope fields of a
 * pickup file: X-Sender / X-Receiver in any case and order, with or
 * without <>, CRLF or LF; only the leading block counts; and the
 * refusals (two senders, an empty or spaced address, a folded field).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pickup_parse.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct pcase {
	const char	*name;
	const char	*in;
	int		 want_rc;
	int		 want_has_sender;
	const char	*want_sender;
	size_t		 want_nrcpts;
	const char	*want_rcpt0;
	const char	*want_rest;	/* the message after the block */
	const char	*want_why;
};

static const struct pcase cases[] = {
	{ "full", "X-Sender: <a@x.org>\r\nX-Receiver: <b@y.org>\r\n"
	    "x-receiver: c@y.org\r\nFrom: a\r\n\r\nbody\r\n", 0, 1, "a@x.org",
	    2, "b@y.org", "From: a\r\n\r\nbody\r\n", NULL },
	{ "lf and order", "X-RECEIVER:b@y.org\nX-Sender:a@x.org\nSubject: s\n",
	    0, 1, "a@x.org", 1, "b@y.org", "Subject: s\n", NULL },
	{ "null sender", "X-Sender: <>\nX-Receiver: b@y.org\n\nx\n", 0, 1, "",
	    1, "b@y.org", "\nx\n", NULL },
	{ "none", "From: a@x.org\nX-Receiver: b@y.org\n\nx\n", 0, 0, "", 0,
	    NULL, "From: a@x.org\nX-Receiver: b@y.org\n\nx\n", NULL },
	{ "only fields", "X-Receiver: b@y.org", 0, 0, "", 1, "b@y.org", "",
	    NULL },
	{ "two senders", "X-Sender: a@x.org\nX-Sender: b@x.org\n", -1, 0, "",
	    0, NULL, NULL, "more than one X-Sender" },
	{ "empty receiver", "X-Receiver: <>\n", -1, 0, "", 0, NULL, NULL,
	    "empty X-Receiver" },
	{ "two words", "X-Sender: a b\n", -1, 0, "", 0, NULL, NULL,
	    "no single address" },
	{ "folded", "X-Receiver: b@y.org\n c@y.org\n", -1, 0, "", 0, NULL,
	    NULL, "folded" },
	{ "control", "X-Receiver: b\x01@y.org\n", -1, 0, "", 0, NULL, NULL,
	    "no single address" },
};

static void
test_table(void **state)
{
	struct pickup_env env;
	char why[256];
	size_t i;
	int rc;

	for (i = 0; i < NELEM(cases); i++) {
		const struct pcase *c = &cases[i];

		why[0] = '\0';
		rc = pickup_parse(c->in, strlen(c->in), &env, why, sizeof(why));
		if (rc != c->want_rc)
			fail_msg("%s: rc %d (%s)", c->name, rc, why);
		if (rc == -1) {
			if (strstr(why, c->want_why) == NULL)
				fail_msg("%s: why '%s'", c->name, why);
			assert_null(env.rcpts);
			continue;
		}
		assert_int_equal(env.has_sender, c->want_has_sender);
		assert_string_equal(env.sender, c->want_sender);
		assert_int_equal(env.nrcpts, c->want_nrcpts);
		if (c->want_rcpt0 != NULL)
			assert_string_equal(env.rcpts[0], c->want_rcpt0);
		assert_string_equal(c->in + env.body_off, c->want_rest);
		pickup_env_free(&env);
	}
}

static void
test_too_many(void **state)
{
	struct pickup_env env;
	char why[256], *in = malloc((PICKUP_RCPTS_MAX + 1) * 24 + 1);
	size_t i, n = 0;

	for (i = 0; i <= PICKUP_RCPTS_MAX; i++)
		n += (size_t)sprintf(in + n, "X-Receiver: b%zu@y.org\n", i);
	assert_int_equal(pickup_parse(in, n, &env, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "X-Receiver fields"));
	free(in);
	pickup_env_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_too_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
