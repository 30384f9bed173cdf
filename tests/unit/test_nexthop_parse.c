/*
 * test_nexthop.c - table-driven tests for nexthop_parse(): every form of
 * routes.hosts (host, host:port, [host], [address], [IPv6:address],
 * lmtp:/socket, lmtp:host:port, lmtp:[address]:port), defaults, host name
 * and port limits, socket path limits, and the reasons given for bad
 * input; plus the configuration check that uses it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "nexthop_parse.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_valid(void **state)
{
	static const struct {
		const char	*spec;
		enum nexthop_kind kind;
		const char	*host;
		int		 port;
		int		 mx;
		int		 literal;
	} cases[] = {
		/* SMTP by MX */
		{ "mx.example.com", NEXTHOP_SMTP, "mx.example.com", 25, 1, 0 },
		{ "example.com:587", NEXTHOP_SMTP, "example.com", 587, 1, 0 },
		{ "email-smtp.us-east-1.amazonaws.com:587", NEXTHOP_SMTP,
		    "email-smtp.us-east-1.amazonaws.com", 587, 1, 0 },
		{ "localhost", NEXTHOP_SMTP, "localhost", 25, 1, 0 },
		{ "Mixed-Case.Example", NEXTHOP_SMTP, "Mixed-Case.Example", 25,
		    1, 0 },
		{ "example.com.", NEXTHOP_SMTP, "example.com", 25, 1, 0 },
		{ "example.com.:2525", NEXTHOP_SMTP, "example.com", 2525, 1,
		    0 },
		{ "a:1", NEXTHOP_SMTP, "a", 1, 1, 0 },
		{ "a:65535", NEXTHOP_SMTP, "a", 65535, 1, 0 },
		{ "a:0025", NEXTHOP_SMTP, "a", 25, 1, 0 },
		{ "1a.example", NEXTHOP_SMTP, "1a.example", 25, 1, 0 },
		{ "123.example", NEXTHOP_SMTP, "123.example", 25, 1, 0 },
		{ "x.1a", NEXTHOP_SMTP, "x.1a", 25, 1, 0 },
		{ "a-b.c--d.example", NEXTHOP_SMTP, "a-b.c--d.example", 25, 1,
		    0 },
		/* SMTP direct */
		{ "[mx.example.com]", NEXTHOP_SMTP, "mx.example.com", 25, 0, 0 },
		{ "[mx.example.com]:2526", NEXTHOP_SMTP, "mx.example.com", 2526,
		    0, 0 },
		{ "[mx.example.com.]", NEXTHOP_SMTP, "mx.example.com", 25, 0,
		    0 },
		{ "[10.0.0.5]:25", NEXTHOP_SMTP, "10.0.0.5", 25, 0, 1 },
		{ "[127.0.0.1]", NEXTHOP_SMTP, "127.0.0.1", 25, 0, 1 },
		{ "[::1]:2526", NEXTHOP_SMTP, "::1", 2526, 0, 1 },
		{ "[::1]", NEXTHOP_SMTP, "::1", 25, 0, 1 },
		{ "[IPv6:::1]", NEXTHOP_SMTP, "::1", 25, 0, 1 },
		{ "[ipv6:2001:db8::25]:587", NEXTHOP_SMTP, "2001:db8::25", 587,
		    0, 1 },
		{ "[::ffff:192.0.2.1]", NEXTHOP_SMTP, "::ffff:192.0.2.1", 25, 0,
		    1 },
		{ "10.0.0.5", NEXTHOP_SMTP, "10.0.0.5", 25, 0, 1 },
		{ "10.0.0.5:2525", NEXTHOP_SMTP, "10.0.0.5", 2525, 0, 1 },
		/* LMTP */
		{ "lmtp:/run/dovecot/lmtp", NEXTHOP_LMTP_UNIX,
		    "/run/dovecot/lmtp", 0, 0, 0 },
		{ "LMTP:/s", NEXTHOP_LMTP_UNIX, "/s", 0, 0, 0 },
		{ "lmtp:/a:b[c]", NEXTHOP_LMTP_UNIX, "/a:b[c]", 0, 0, 0 },
		{ "lmtp:mailstore.example", NEXTHOP_LMTP_TCP,
		    "mailstore.example", 24, 0, 0 },
		{ "lmtp:mailstore.example:2424", NEXTHOP_LMTP_TCP,
		    "mailstore.example", 2424, 0, 0 },
		{ "lmtp:[mailstore.example]:2424", NEXTHOP_LMTP_TCP,
		    "mailstore.example", 2424, 0, 0 },
		{ "lmtp:[::1]:24", NEXTHOP_LMTP_TCP, "::1", 24, 0, 1 },
		{ "lmtp:[127.0.0.1]", NEXTHOP_LMTP_TCP, "127.0.0.1", 24, 0, 1 },
		{ "lmtp:127.0.0.1:10024", NEXTHOP_LMTP_TCP, "127.0.0.1", 10024,
		    0, 1 },
		{ "lmtp:[IPv6:::1]:2424", NEXTHOP_LMTP_TCP, "::1", 2424, 0, 1 },
	};
	struct nexthop nh;
	char why[256];
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		why[0] = '\0';
		if (nexthop_parse(cases[i].spec, &nh, why, sizeof(why)) != 0)
			fail_msg("'%s' refused: %s", cases[i].spec, why);
		assert_int_equal(nh.kind, cases[i].kind);
		assert_string_equal(nh.host, cases[i].host);
		assert_int_equal(nh.port, cases[i].port);
		assert_int_equal(nh.mx, cases[i].mx);
		assert_int_equal(nh.literal, cases[i].literal);
	}
}

static void
test_invalid(void **state)
{
	static const struct {
		const char	*spec;
		const char	*why;		/* substring of the reason */
	} cases[] = {
		{ "", "empty next hop" },
		{ "lmtp:", "'lmtp:' needs a socket path or a host" },
		/* host names */
		{ "-a.example", "'-a.example' is not a valid host name" },
		{ "a-.example", "not a valid host name" },
		{ "a.-b.example", "not a valid host name" },
		{ "a..example", "not a valid host name" },
		{ ".example", "not a valid host name" },
		{ ".", "not a valid host name" },
		{ "example..", "not a valid host name" },
		{ "a_b.example", "not a valid host name" },
		{ "a b.example", "not a valid host name" },
		{ "a\tb", "'a?b' is not a valid host name" },
		{ "ex@mple.com", "not a valid host name" },
		{ "bücher.example", "not a valid host name" },
		{ "1.2.3", "'1.2.3' is not a valid host name" },
		{ "1.2.3.4.5", "not a valid host name" },
		{ "256.0.0.1", "not a valid host name" },
		{ "123", "not a valid host name" },
		{ "example.123", "not a valid host name" },
		{ ":25", "no host name before ':'" },
		/* ports */
		{ "a.example:", "port '' is not a number from 1 to 65535" },
		{ "a.example:0", "port '0' is not a number" },
		{ "a.example:65536", "port '65536' is not a number" },
		{ "a.example:99999999999999999999", "is not a number" },
		{ "a.example:-1", "port '-1' is not a number" },
		{ "a.example:+25", "is not a number" },
		{ "a.example:25 ", "port '25 ' is not a number" },
		{ "a.example:smtp", "port 'smtp' is not a number" },
		{ "[::1]:", "is not a number" },
		{ "[::1]:0", "port '0' is not a number" },
		{ "a.example:25:26", "more than one ':' outside brackets" },
		/* brackets */
		{ "[1.2.3]:25", "'1.2.3' is neither a host name nor an IP "
		    "address" },
		{ "[]", "nothing between '[' and ']'" },
		{ "[]:25", "nothing between '[' and ']'" },
		{ "[::1", "'[' without ']'" },
		{ "[::1]x", "unexpected 'x' after ']'" },
		{ "[::1]]", "unexpected ']' after ']'" },
		{ "[::1] :25", "unexpected ' :25' after ']'" },
		{ "[a b]", "neither a host name nor an IP address" },
		{ "[::g]", "'::g' is not an IPv6 address" },
		{ "[1::2::3]", "is not an IPv6 address" },
		{ "[fe80::1%eth0]", "is not an IPv6 address" },
		{ "[IPv6:1.2.3.4]", "'1.2.3.4' after 'IPv6:' is not an IPv6 "
		    "address" },
		{ "[IPv6:]", "'IPv6:' is not an IPv6 address" },
		{ "::1", "an IPv6 address needs brackets: [::1]" },
		{ "2001:db8::1", "needs brackets" },
		{ "x[::1]", "more than one ':' outside brackets" },
		{ "x[a]", "'x[a]' is not a valid host name" },
		/* LMTP */
		{ "lmtp:/", "LMTP socket path '/' does not name a socket" },
		{ "lmtp:/run/", "does not name a socket" },
		{ "lmtp:/run/a\nb", "contains a control character" },
		{ "lmtp:run/lmtp", "not a valid host name" },
		{ "lmtp:a.example:0", "port '0' is not a number" },
		{ "lmtp:[::1", "'[' without ']'" },
		{ "lmtp:25", "not a valid host name" },
		{ "smtp:a.example", "port 'a.example' is not a number" },
		{ "lmtp:::1", "an IPv6 address needs brackets: [::1]" },
	};
	struct nexthop nh;
	char why[256];
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		why[0] = '\0';
		if (nexthop_parse(cases[i].spec, &nh, why, sizeof(why)) != -1)
			fail_msg("'%s' accepted", cases[i].spec);
		if (strstr(why, cases[i].why) == NULL)
			fail_msg("'%s': reason '%s', expected '%s'",
			    cases[i].spec, why, cases[i].why);
	}
}

/* 63-character labels and 253 characters in all are the limits. */
static void
test_name_limits(void **state)
{
	char name[300], spec[320], why[256];
	struct nexthop nh;
	size_t i;

	memset(name, 'a', 63);
	strcpy(name + 63, ".example");
	assert_int_equal(nexthop_parse(name, &nh, why, sizeof(why)), 0);
	assert_string_equal(nh.host, name);
	memset(name, 'a', 64);
	strcpy(name + 64, ".example");
	assert_int_equal(nexthop_parse(name, &nh, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not a valid host name"));
	assert_non_null(strstr(why, "..."));	/* long text is cut */

	/* 4 labels of 63 + 3 dots = 255; 63+63+63+61 + 3 = 253 */
	for (i = 0; i < 4; i++) {
		memset(name + i * 64, i == 3 ? 'b' : 'a', 63);
		name[i * 64 + 63] = '.';
	}
	name[3 * 64 + 61] = '\0';
	assert_int_equal(strlen(name), 253);
	assert_int_equal(nexthop_parse(name, &nh, why, sizeof(why)), 0);
	assert_string_equal(nh.host, name);
	snprintf(spec, sizeof(spec), "[%s]:26", name);
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), 0);
	assert_string_equal(nh.host, name);
	assert_int_equal(nh.port, 26);
	/* with a trailing dot still fine */
	snprintf(spec, sizeof(spec), "%s.", name);
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), 0);
	assert_string_equal(nh.host, name);
	/* 254 */
	name[3 * 64 + 61] = 'b';
	name[3 * 64 + 62] = '\0';
	assert_int_equal(strlen(name), 254);
	assert_int_equal(nexthop_parse(name, &nh, why, sizeof(why)), -1);
	snprintf(spec, sizeof(spec), "[%s]", name);
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), -1);
	/* far too long, bracketed */
	memset(spec, 'a', 300);
	spec[0] = '[';
	spec[298] = ']';
	spec[299] = '\0';
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is too long"));
	spec[298] = '\0';
	assert_int_equal(nexthop_parse(spec + 1, &nh, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "host name"));
}

/* sun_path is 108 bytes on Linux: 107 characters and the NUL. */
static void
test_unix_path_limits(void **state)
{
	char spec[300], why[256];
	struct nexthop nh;

	strcpy(spec, "lmtp:/");
	memset(spec + 6, 'p', 106);
	spec[6 + 106] = '\0';			/* path of 107 */
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), 0);
	assert_int_equal(nh.kind, NEXTHOP_LMTP_UNIX);
	assert_int_equal(strlen(nh.host), 107);
	assert_int_equal(nh.port, 0);
	assert_int_equal(nh.mx, 0);
	spec[6 + 106] = 'p';
	spec[6 + 107] = '\0';			/* 108 */
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is too long (at most 107 bytes)"));
	memset(spec + 6, 'p', 280);
	spec[6 + 280] = '\0';
	assert_int_equal(nexthop_parse(spec, &nh, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is too long"));
}

/* A short why buffer is never overrun and stays a C string. */
static void
test_short_why(void **state)
{
	char why[8];
	struct nexthop nh;

	memset(why, 'X', sizeof(why));
	assert_int_equal(nexthop_parse("a.example:0", &nh, why, sizeof(why)),
	    -1);
	assert_int_equal(strlen(why), 7);
}

/* The configuration check uses nexthop_parse: [name] is now valid. */
static void
test_conf_hosts(void **state)
{
	static const struct {
		const char	*hosts;
		int		 ok;
	} cases[] = {
		{ "\"[mx.partner.example]:2526\"", 1 },
		{ "\"[::1]:2526\", \"lmtp:/run/lmtp\", \"lmtp:[::1]\"", 1 },
		{ "\"[IPv6:::1]\"", 1 },
		{ "\"relay.example:587\"", 1 },
		{ "\"[1.2.3]:25\"", 0 },
		{ "\"lmtp:/\"", 0 },
		{ "\"::1\"", 0 },
		{ "\"a.example:99999\"", 0 },
	};
	struct conf_errors errs;
	struct conf *c;
	char text[512];
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		snprintf(text, sizeof(text), "routes = (\n { domain = \"*\";\n"
		    "  hosts = [ %s ]; } );\n", cases[i].hosts);
		memset(&errs, 0, sizeof(errs));
		c = conf_load_string(text, "t.conf", "/tmp", &errs);
		if (cases[i].ok) {
			if (errs.n != 0)
				fail_msg("%s: %s", cases[i].hosts, errs.msgs[0]);
			assert_non_null(c);
		} else {
			assert_int_equal(errs.n, 1);
			assert_non_null(strstr(errs.msgs[0], "t.conf:3: '"));
			assert_non_null(strstr(errs.msgs[0],
			    "' in hosts is not a next hop"));
		}
		conf_free(c);
		conf_errors_free(&errs);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_name_limits),
		cmocka_unit_test(test_unix_path_limits),
		cmocka_unit_test(test_short_why),
		cmocka_unit_test(test_conf_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
