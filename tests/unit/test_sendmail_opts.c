/*
 * test_sendmail_opts.c - table-driven tests for the sendmail(1) command
 * line: the options programs pass (cron, PHP, mutt, git send-email),
 * glued and separate values, ignored options, "--", recipients, and the
 * refusals (unsupported -b modes, unknown options, missing values).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sendmail_opts.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct ocase {
	const char	*name;
	const char	*argv[10];
	int		 want_rc;
	enum sendmail_mode want_mode;
	int		 want_t, want_i;
	const char	*want_from, *want_name, *want_config;
	size_t		 want_nrcpts;
	const char	*want_rcpt0;
	const char	*want_why;
};

static const struct ocase cases[] = {
	{ "php", { "sendmail", "-t", "-i", NULL }, 0, SENDMAIL_MODE_DELIVER,
	    1, 1, NULL, NULL, NULL, 0, NULL, NULL },
	{ "cron", { "sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem",
	    "root", NULL }, 0, SENDMAIL_MODE_DELIVER, 0, 1, NULL, "CronDaemon",
	    NULL, 1, "root", NULL },
	{ "mutt", { "sendmail", "-oem", "-oi", "--", "a@x.org", "b@x.org",
	    NULL }, 0, SENDMAIL_MODE_DELIVER, 0, 1, NULL, NULL, NULL, 2,
	    "a@x.org", NULL },
	{ "separate values", { "sendmail", "-f", "me@x.org", "-F", "Me",
	    "-c", "/etc/p.conf", "b@x.org", NULL }, 0, SENDMAIL_MODE_DELIVER,
	    0, 0, "me@x.org", "Me", "/etc/p.conf", 1, "b@x.org", NULL },
	{ "glued from", { "sendmail", "-fme@x.org", "-odb", "-N", "never",
	    "-v", "b@x.org", NULL }, 0, SENDMAIL_MODE_DELIVER, 0, 0,
	    "me@x.org", NULL, NULL, 1, "b@x.org", NULL },
	{ "bs", { "sendmail", "-bs", NULL }, 0, SENDMAIL_MODE_SMTP, 0, 0,
	    NULL, NULL, NULL, 0, NULL, NULL },
	{ "help", { "sendmail", "--help", NULL }, 0, SENDMAIL_MODE_HELP, 0, 0,
	    NULL, NULL, NULL, 0, NULL, NULL },
	{ "bp", { "sendmail", "-bp", NULL }, -1, 0, 0, 0, NULL, NULL, NULL, 0,
	    NULL, "-bp is not supported" },
	{ "unknown", { "sendmail", "-x", NULL }, -1, 0, 0, 0, NULL, NULL,
	    NULL, 0, NULL, "unknown option -x" },
	{ "missing value", { "sendmail", "-f", NULL }, -1, 0, 0, 0, NULL,
	    NULL, NULL, 0, NULL, "-f needs a value" },
	{ "tt", { "sendmail", "-tt", NULL }, -1, 0, 0, 0, NULL, NULL, NULL, 0,
	    NULL, "unknown option -tt" },
};

static void
test_table(void **state)
{
	struct sendmail_opts o;
	char why[256];
	size_t i;
	int argc, rc;

	for (i = 0; i < NELEM(cases); i++) {
		const struct ocase *c = &cases[i];

		for (argc = 0; c->argv[argc] != NULL; argc++)
			;
		why[0] = '\0';
		rc = sendmail_opts_parse(argc, (char *const *)c->argv, &o, why,
		    sizeof(why));
		if (rc != c->want_rc)
			fail_msg("%s: rc %d (%s)", c->name, rc, why);
		if (rc == -1) {
			if (strstr(why, c->want_why) == NULL)
				fail_msg("%s: why '%s'", c->name, why);
			continue;
		}
		assert_int_equal(o.mode, c->want_mode);
		if (o.mode == SENDMAIL_MODE_HELP)
			continue;
		assert_int_equal(o.extract, c->want_t);
		assert_int_equal(o.ignore_dots, c->want_i);
		if (c->want_from)
			assert_string_equal(o.from, c->want_from);
		else
			assert_null(o.from);
		if (c->want_name)
			assert_string_equal(o.fullname, c->want_name);
		if (c->want_config)
			assert_string_equal(o.config, c->want_config);
		assert_int_equal(o.nrcpts, c->want_nrcpts);
		if (c->want_rcpt0)
			assert_string_equal(o.rcpts[0], c->want_rcpt0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
