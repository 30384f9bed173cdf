/*
 * test_deliver_local.c - maildir path expansion (never outside the
 * configured tree), RCPT-time checks for unknown users, the maildir copy
 * (Return-Path, CRLF to LF, tmp -> new) and the retry backoff.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "deliver_local.h"
#include "qmgr.h"
#include "route.h"
#include "util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static struct conf *
load(const char *text)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c = conf_load_string(text, "t.conf", "/srv", &errs);

	assert_non_null(c);
	assert_int_equal(errs.n, 0);
	conf_errors_free(&errs);
	return c;
}

static void
test_maildir_expansion(void **state)
{
	static const struct {
		const char	*addr;
		const char	*want;	/* NULL = refused */
	} cases[] = {
		{ "bob@example.com", "/srv/mail/example.com/bob" },
		{ "Bob.Smith@Example.COM", "/srv/mail/example.com/bob.smith" },
		{ "bob+tag@example.com", "/srv/mail/example.com/bob+tag" },
		{ "a=b_c-d@example.com", "/srv/mail/example.com/a=b_c-d" },
		{ "../etc@example.com", NULL },
		{ "..@example.com", NULL },
		{ ".hidden@example.com", NULL },
		{ "a/b@example.com", NULL },
		{ "\"a b\"@example.com", NULL },
		{ "bob@../../etc", NULL },
		{ "bob@.example.com", NULL },
		{ "@example.com", NULL },
		{ "bob", NULL },
		{ "a\\b@example.com", NULL },
	};
	struct conf *c = load("routes = ( { domain = \"example.com\"; "
	    "maildir = \"mail/%d/%u\"; } );");
	const struct conf_route *r = conf_route_for(c, "example.com");
	char got[4096];
	size_t i;

	assert_non_null(r);
	for (i = 0; i < NELEM(cases); i++) {
		int rc = deliver_local_maildir(r, cases[i].addr, got, sizeof(got));
		if (cases[i].want == NULL) {
			if (rc != -1)
				fail_msg("%s expanded to %s", cases[i].addr, got);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(got, cases[i].want);
		}
	}
	conf_free(c);
}

static void
test_percent_escape(void **state)
{
	struct conf *c = load("routes = ( { domain = \"example.com\"; "
	    "maildir = \"/m/100%%/%u\"; } );");
	char got[256];

	assert_int_equal(deliver_local_maildir(conf_route_for(c, "example.com"),
	    "bob@example.com", got, sizeof(got)), 0);
	assert_string_equal(got, "/m/100%/bob");
	/* too small a buffer is a refusal, never a truncated path */
	assert_int_equal(deliver_local_maildir(conf_route_for(c, "example.com"),
	    "bob@example.com", got, 8), -1);
	conf_free(c);
}

static void
test_unknown_users(void **state)
{
	struct conf *c = load("local_domains = [ \"example.com\" ];\n"
	    "routes = ( { domain = \"example.com\"; maildir = \"/nonexistent/%u\";"
	    " unknown_users = \"reject\"; users = [ \"alice\" ]; } );");
	struct route_decision d;
	const char *why;

	assert_int_equal(route_decide(c, "Alice@example.com", &d),
	    ROUTE_TO_MAILDIR);
	assert_null(deliver_local_check(&d, "Alice@example.com"));
	route_decide(c, "mallory@example.com", &d);
	why = deliver_local_check(&d, "mallory@example.com");
	assert_non_null(why);
	assert_string_equal(why, "550 5.1.1 Recipient address rejected: User "
	    "unknown");
	route_decide(c, "../x@example.com", &d);
	why = deliver_local_check(&d, "../x@example.com");
	assert_non_null(why);
	assert_memory_equal(why, "550 5.1.1 ", 10);
	/* a recipient routed onwards is not checked here */
	assert_int_equal(route_decide(c, "mallory@other.example", &d),
	    ROUTE_TO_MX);
	assert_null(deliver_local_check(&d, "mallory@other.example"));
	conf_free(c);
}

static void
test_maildir_copy(void **state)
{
	char dir[] = "/tmp/postern-unit-XXXXXX", src[4096], got[4096], why[512];
	static const char content[] = "Received: x\r\n\r\nline 1\r\nline\r2\r\n";
	static const char want[] = "Return-Path: <a@example.com>\n"
	    "Received: x\n\nline 1\nline\r2\n";
	struct local_copy lc;
	struct stat st;
	int fd, n;

	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/src", dir);
	fd = open(src, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, sizeof(content) - 1),
	    (int)sizeof(content) - 1);
	snprintf(got, sizeof(got), "%s/box", dir);
	assert_int_equal(deliver_local_write(got, "mx.test", 7, 0,
	    "a@example.com", fd, sizeof(content) - 1, &lc, why, sizeof(why)), 0);
	assert_int_equal(stat(lc.new_path, &st), -1);	/* not visible yet */
	assert_int_equal(deliver_local_publish(&lc, why, sizeof(why)), 0);
	assert_int_equal(stat(lc.new_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	close(fd);
	fd = open(lc.new_path, O_RDONLY);
	n = (int)read(fd, got, sizeof(got));
	close(fd);
	assert_int_equal(n, (int)sizeof(want) - 1);
	assert_memory_equal(got, want, sizeof(want) - 1);
	snprintf(got, sizeof(got), "rm -rf %s", dir);
	assert_int_equal(system(got), 0);
}

static void
test_backoff(void **state)
{
	static const struct {
		int	attempts;
		double	rnd;
		int	want;
	} cases[] = {
		{ 1, 0.5, 60 }, { 2, 0.5, 120 }, { 3, 0.5, 240 }, { 6, 0.5, 1920 },
		{ 7, 0.5, 3600 }, { 50, 0.5, 3600 }, { 1, 0.0, 54 },
		{ 1, 0.999999, 65 }, { 7, 0.0, 3240 },
	};
	struct conf *c = load("delivery = { retry_min = 60; retry_max = 3600; };");
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		assert_int_equal(qmgr_backoff(c, cases[i].attempts, cases[i].rnd),
		    cases[i].want);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maildir_expansion),
		cmocka_unit_test(test_percent_escape),
		cmocka_unit_test(test_unknown_users),
		cmocka_unit_test(test_maildir_copy),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
