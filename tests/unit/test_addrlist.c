/*
 * test_addrlist.c - tests for the RFC 5322 address-list parser: mailbox,
 * name-addr and group forms, CFWS and nested comments, quoted local parts
 * and their canonical form, domain literals, the RFC 5322 4.4 obsolete
 * forms, RFC 6532 UTF-8, ambiguous inputs that must be refused, length
 * limits, and that output never goes past `max`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "addrlist.h"

#define B(s)	(s), (sizeof(s) - 1)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define MAXOUT	4

/* A valid list: how many mailboxes and the first MAXOUT of them. */
struct ok_case {
	const char	*in;
	size_t		 len;
	int		 want;
	const char	*addr[MAXOUT];
};

/* An invalid list and the reason wanted (NULL: any reason). */
struct bad_case {
	const char	*in;
	size_t		 len;
	const char	*why;
};

static void
run_ok(const struct ok_case *cases, size_t n)
{
	struct addrlist_addr out[MAXOUT];
	const char *why;
	size_t i, k;
	int rc;

	for (i = 0; i < n; i++) {
		why = NULL;
		memset(out, 0, sizeof(out));
		rc = addrlist_parse(cases[i].in, cases[i].len, out, MAXOUT,
		    &why);
		if (rc != cases[i].want)
			fail_msg("case %zu '%s': rc %d want %d (%s)", i,
			    cases[i].in, rc, cases[i].want,
			    why ? why : "-");
		for (k = 0; k < (size_t)rc && k < MAXOUT; k++)
			if (strcmp(out[k].addr, cases[i].addr[k]) != 0)
				fail_msg("case %zu '%s': addr %zu '%s' want "
				    "'%s'", i, cases[i].in, k, out[k].addr,
				    cases[i].addr[k]);
	}
}

static void
run_bad(const struct bad_case *cases, size_t n)
{
	struct addrlist_addr out[MAXOUT];
	const char *why;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		why = NULL;
		rc = addrlist_parse(cases[i].in, cases[i].len, out, MAXOUT,
		    &why);
		if (rc != -1)
			fail_msg("case %zu '%s': rc %d, want -1 (first '%s')",
			    i, cases[i].in, rc, rc > 0 ? out[0].addr : "");
		if (why == NULL)
			fail_msg("case %zu '%s': no reason", i, cases[i].in);
		if (cases[i].why != NULL && strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu '%s': why '%s' want '%s'", i,
			    cases[i].in, why, cases[i].why);
	}
}

static void
test_addr_spec(void **state)
{
	static const struct ok_case cases[] = {
		{ B("a@b.com"), 1, { "a@b.com" } },
		{ B("  a@b.com \t"), 1, { "a@b.com" } },
		{ B("John.Doe@Example.COM"), 1, { "John.Doe@example.com" } },
		{ B("x+tag!#$%&'*/=?^_`{|}~-@d"), 1,
		    { "x+tag!#$%&'*/=?^_`{|}~-@d" } },
		{ B("a@localhost"), 1, { "a@localhost" } },
		{ B("a@b.com, c@d.com"), 2, { "a@b.com", "c@d.com" } },
	};

	run_ok(cases, NELEM(cases));
}

static void
test_name_addr(void **state)
{
	static const struct ok_case cases[] = {
		{ B("<a@b.com>"), 1, { "a@b.com" } },
		{ B("John Doe <jd@X.org>"), 1, { "jd@x.org" } },
		{ B("\"Doe, John\" <jd@x.org>"), 1, { "jd@x.org" } },
		{ B("John Q. Public <jqp@x.org>"), 1, { "jqp@x.org" } },
		{ B("\"a\" b \"c\" <d@e>"), 1, { "d@e" } },
		{ B("Name<n@x>,Other<o@y>"), 2, { "n@x", "o@y" } },
		{ B("\"\" <e@x>"), 1, { "e@x" } },
	};

	run_ok(cases, NELEM(cases));
}

/* A quoted display name that looks like an address is only a name. */
static void
test_display_name_looks_like_addr(void **state)
{
	static const struct ok_case cases[] = {
		{ B("\"x@y.com\" <real@z.com>"), 1, { "real@z.com" } },
		{ B("\"<x@y.com>\" <real@z.com>"), 1, { "real@z.com" } },
		{ B("\"x@y.com, w@v.com\" <real@z.com>"), 1,
		    { "real@z.com" } },
		{ B("(x@y.com) <real@z.com>"), 1, { "real@z.com" } },
		{ B("real@z.com (x@y.com)"), 1, { "real@z.com" } },
	};

	run_ok(cases, NELEM(cases));
}

static void
test_comments(void **state)
{
	static const struct ok_case cases[] = {
		{ B("(c) a (x) @ (y) b.com (z)"), 1, { "a@b.com" } },
		{ B("(outer (inner) more) a@b.com"), 1, { "a@b.com" } },
		{ B("a@b.com (\\( \\) (x\\)y) \\\\)"), 1, { "a@b.com" } },
		{ B("Name (c) <(c)a(c)@(c)b(c)>(c)"), 1, { "a@b" } },
		{ B("a@b(c),(d)c@d"), 2, { "a@b", "c@d" } },
		{ B("a@b.com (\"unbalanced quote)"), 1, { "a@b.com" } },
		{ B("a@b.com (<a@b.com)"), 1, { "a@b.com" } },
	};
	static const struct bad_case bad[] = {
		{ B("(a@b.com"), "unterminated comment" },
		{ B("a@b.com (x (y)"), "unterminated comment" },
		{ B("a@b.com (x \\"), "unterminated comment" },
		{ B("a@b.com)"), "unbalanced parenthesis" },
		{ B("a@b.com (x) )"), "unbalanced parenthesis" },
		{ B("a@b.com (x\x01y)"), "invalid character in comment" },
		{ B("a@b.com (x\\\x01y)"), "invalid quoted-pair" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* Nesting is counted, not recursed into: depth costs nothing. */
static void
test_deep_comments(void **state)
{
	struct addrlist_addr out[1];
	const char *why = NULL;
	size_t depth = 200000, n, i;
	char *buf;

	buf = malloc(2 * depth + 32);
	assert_non_null(buf);
	n = 0;
	for (i = 0; i < depth; i++)
		buf[n++] = '(';
	for (i = 0; i < depth; i++)
		buf[n++] = ')';
	memcpy(buf + n, "a@b.com", 7);
	n += 7;
	assert_int_equal(addrlist_parse(buf, n, out, 1, &why), 1);
	assert_string_equal(out[0].addr, "a@b.com");

	/* One closing parenthesis short. */
	memmove(buf + depth, buf + depth + 1, n - depth - 1);
	assert_int_equal(addrlist_parse(buf, n - 1, out, 1, &why), -1);
	assert_string_equal(why, "unterminated comment");
	free(buf);
}

/* Quotes stay only when the content is not a dot-atom. */
static void
test_quoted_local(void **state)
{
	static const struct ok_case cases[] = {
		{ B("\"john doe\"@x.org"), 1, { "\"john doe\"@x.org" } },
		{ B("\"john.doe\"@x.org"), 1, { "john.doe@x.org" } },
		{ B("\"jd\"@x"), 1, { "jd@x" } },
		{ B("\"a\\b\"@x"), 1, { "ab@x" } },
		{ B("\"a\\\"b\"@x"), 1, { "\"a\\\"b\"@x" } },
		{ B("\"a\\\\b\"@x"), 1, { "\"a\\\\b\"@x" } },
		{ B("\"a\\ b\"@x"), 1, { "\"a b\"@x" } },
		{ B("\"\"@x"), 1, { "\"\"@x" } },
		{ B("\".a\"@x"), 1, { "\".a\"@x" } },
		{ B("\"a..b\"@x"), 1, { "\"a..b\"@x" } },
		{ B("\"x@y.com\"@evil.com"), 1, { "\"x@y.com\"@evil.com" } },
		{ B("\"a\tb\"@x"), 1, { "\"a\tb\"@x" } },
		{ B("N <\"q u\"@X>"), 1, { "\"q u\"@x" } },
	};
	static const struct bad_case bad[] = {
		{ B("\"abc@x.com"), "unterminated quoted string" },
		{ B("\"abc\\"), "unterminated quoted string" },
		{ B("\"a\x01\"@x"), "invalid character in quoted string" },
		{ B("\"a\\\x01\"@x"), "invalid quoted-pair" },
		{ B("\"a\x7f\"@x"), "invalid character in quoted string" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* RFC 5322 4.4 obs-local-part: words joined by dots, CFWS around them. */
static void
test_obs_local_part(void **state)
{
	static const struct ok_case cases[] = {
		{ B("a . b@c"), 1, { "a.b@c" } },
		{ B("a (x) . (y) b @ c"), 1, { "a.b@c" } },
		{ B("\"a\".b@c"), 1, { "a.b@c" } },
		{ B("\"a b\".c@d"), 1, { "\"a b.c\"@d" } },
		{ B("a.\"\".b@c"), 1, { "\"a..b\"@c" } },
	};
	static const struct bad_case bad[] = {
		{ B("a b@c"), "invalid local part" },
		{ B(".a@c"), "invalid local part" },
		{ B("a.@c"), "invalid local part" },
		{ B("a..b@c"), "invalid local part" },
		{ B("\"a\" \"b\"@c"), "invalid local part" },
		{ B("@c.com"), "missing local part" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

static void
test_domains(void **state)
{
	static const struct ok_case cases[] = {
		{ B("a@B . Example . COM"), 1, { "a@b.example.com" } },
		{ B("a@[192.0.2.1]"), 1, { "a@[192.0.2.1]" } },
		{ B("a@[IPv6:2001:DB8::1]"), 1, { "a@[ipv6:2001:db8::1]" } },
		{ B("<a@[192.0.2.1]>"), 1, { "a@[192.0.2.1]" } },
		{ B("a@ (c) [192.0.2.1] (d)"), 1, { "a@[192.0.2.1]" } },
	};
	static const struct bad_case bad[] = {
		{ B("a@b..com"), "invalid domain" },
		{ B("a@b.com."), "invalid domain" },
		{ B("a@.b.com"), "invalid domain" },
		{ B("a@\"b\".com"), "invalid domain" },
		{ B("a@[192.0.2]"), "invalid domain literal" },
		{ B("a@[192.0.2.1 ]"), "invalid domain literal" },
		{ B("a@[x@y.com]"), "invalid domain literal" },
		{ B("a@[]"), "invalid domain literal" },
		{ B("a@[IPv6:1.2.3.4]"), "invalid domain literal" },
		{ B("a@[tag:text]"), "invalid domain literal" },
		{ B("a@[192.0.2.1"), "unterminated domain literal" },
		{ B("a@b.[192.0.2.1]"), "invalid domain" },
		{ B("a@[192.0.2.1].com"), "unexpected text after address" },
		{ B("a@b]"), "unbalanced square bracket" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

static void
test_groups(void **state)
{
	static const struct ok_case cases[] = {
		{ B("g: a@b.com, c@d.com;"), 2, { "a@b.com", "c@d.com" } },
		{ B("Undisclosed:;"), 0, { NULL } },
		{ B("undisclosed-recipients: ;"), 0, { NULL } },
		{ B("g: (nobody) ;"), 0, { NULL } },
		{ B("g:,,;"), 0, { NULL } },
		{ B("g: <a@b>, N <c@d>;, e@f"), 3, { "a@b", "c@d", "e@f" } },
		{ B("a@b, \"my group\": c@d; , h:;"), 2, { "a@b", "c@d" } },
		{ B("g.x: a@b;"), 1, { "a@b" } },
		{ B("g:a@b;,h:c@d;"), 2, { "a@b", "c@d" } },
		{ B("g: a@b, ;"), 1, { "a@b" } },
	};
	static const struct bad_case bad[] = {
		{ B("g: a@b.com"), "unterminated group" },
		{ B("g:"), "unterminated group" },
		{ B("g: h: a@b;;"), "nested group" },
		{ B(": a@b;"), "invalid group name" },
		{ B(".g: a@b;"), "invalid group name" },
		{ B("a@b;"), "unexpected semicolon" },
		{ B("g:;;"), "unexpected semicolon" },
		{ B(";"), "syntax error" },
		{ B("g: a@b; c@d"), "unexpected text after address" },
		{ B("g:a@b;h:c@d;"), "unexpected text after address" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* RFC 5322 4.4 obs-route: checked and dropped. */
static void
test_obs_route(void **state)
{
	static const struct ok_case cases[] = {
		{ B("<@a,@b:x@y>"), 1, { "x@y" } },
		{ B("Name <@a.com:x@Y.com>"), 1, { "x@y.com" } },
		{ B("< , @a , , @b , : x@y >"), 1, { "x@y" } },
		{ B("<@[192.0.2.1]:x@y>"), 1, { "x@y" } },
	};
	static const struct bad_case bad[] = {
		{ B("<@a@b:x@y>"), "invalid route" },
		{ B("<@:x@y>"), "missing domain" },
		{ B("<,:x@y>"), "invalid route" },
		{ B("<@a x@y>"), "invalid route" },
		{ B("<@a:>"), "empty address" },
		{ B("<@a.:x@y>"), "invalid domain" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* RFC 5322 4.4 obs-addr-list: empty elements. */
static void
test_empty_elements(void **state)
{
	static const struct ok_case cases[] = {
		{ B(",a@b,,c@d,"), 2, { "a@b", "c@d" } },
		{ B(" , (x) , a@b , , "), 1, { "a@b" } },
	};
	static const struct bad_case bad[] = {
		{ B(""), "no address" },
		{ B("   "), "no address" },
		{ B(","), "no address" },
		{ B(" , (c) ,"), "no address" },
		{ B("(only a comment)"), "no address" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* Whatever could be read two ways is refused. */
static void
test_ambiguous(void **state)
{
	static const struct bad_case bad[] = {
		{ B("a@b.com <c@d.com>"), "unexpected angle bracket after "
		    "address" },
		{ B("<a@b.com> c@d.com"), "unexpected text after address" },
		{ B("<a@b.com> <c@d.com>"), "unexpected angle bracket after "
		    "address" },
		{ B("N <a@b.com> <c@d.com>"), "unexpected angle bracket "
		    "after address" },
		{ B("John a@b.com"), "invalid local part" },
		{ B("a@b.com@c.com"), "unexpected text after address" },
		{ B("a@b.com c@d.com"), "unexpected text after address" },
		{ B("a@b.com \"c@d.com\""), "unexpected text after address" },
		{ B("=?utf-8?q?a@b.com?= <c@d.com>"), "unexpected angle "
		    "bracket after address" },
		{ B("<a@b.com c@d.com>"), "unexpected text in angle address" },
		{ B("<a@b.com, c@d.com>"), "unexpected text in angle address" },
		{ B("a@b.com: c@d.com;"), "unexpected text after address" },
		{ B("<a@b.com>: c@d.com;"), "unexpected text after address" },
		{ B("N <a@b.com>.x"), "unexpected text after address" },
		{ B("\"a\"@b.com <c@d.com>"), "unexpected angle bracket after "
		    "address" },
		{ B(". <a@b>"), "invalid display name" },
	};

	run_bad(bad, NELEM(bad));
}

static void
test_missing_domain(void **state)
{
	static const struct bad_case bad[] = {
		{ B("<user>"), "missing domain" },
		{ B("user"), "missing domain" },
		{ B("user, a@b"), "missing domain" },
		{ B("a@b, user"), "missing domain" },
		{ B("user@"), "missing domain" },
		{ B("<user@>"), "missing domain" },
		{ B("user@, a@b"), "missing domain" },
		{ B("\"user\""), "missing domain" },
	};

	run_bad(bad, NELEM(bad));
}

static void
test_angle_brackets(void **state)
{
	static const struct bad_case bad[] = {
		{ B("<a@b"), "unbalanced angle bracket" },
		{ B("N <a@b"), "unbalanced angle bracket" },
		{ B("a@b>"), "unexpected angle bracket after address" },
		{ B(">"), "unbalanced angle bracket" },
		{ B("N > <a@b>"), "unbalanced angle bracket" },
		{ B("<<a@b>>"), "unbalanced angle bracket" },
		{ B("<a@b<c@d>"), "unbalanced angle bracket" },
		{ B("<a@b>>"), "unexpected angle bracket after address" },
		{ B("<>"), "empty address" },
		{ B("N <>"), "empty address" },
	};

	run_bad(bad, NELEM(bad));
}

static void
test_utf8(void **state)
{
	static const struct ok_case cases[] = {
		{ B("j\xc3\xb6s\xc3\xa9@ex\xc3\xa4mple.COM"), 1,
		    { "j\xc3\xb6s\xc3\xa9@ex\xc3\xa4mple.com" } },
		{ B("\xc3\x96@\xc3\x96.DE"), 1, { "\xc3\x96@\xc3\x96.de" } },
		{ B("J\xc3\xbcrgen M\xc3\xbcller <jm@x.de>"), 1,
		    { "jm@x.de" } },
		{ B("a@b (\xe2\x82\xac)"), 1, { "a@b" } },
		{ B("\"j\xc3\xb6 s\"@x"), 1, { "\"j\xc3\xb6 s\"@x" } },
		{ B("\"j\xc3\xb6\"@x"), 1, { "j\xc3\xb6@x" } },
		{ B("\xf0\x9f\x98\x80@x"), 1, { "\xf0\x9f\x98\x80@x" } },
	};
	static const struct bad_case bad[] = {
		{ B("a\xff@b"), "invalid UTF-8" },
		{ B("a\xc3@b"), "invalid UTF-8" },
		{ B("\xc0\xaf@b"), "invalid UTF-8" },	/* overlong */
		{ B("\xed\xa0\x80@b"), "invalid UTF-8" },	/* surrogate */
		{ B("a@b (\xe2\x82)"), "invalid UTF-8" },
		{ B("a@b\xc3"), "invalid UTF-8" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

/* NUL is an octet like any other (invalid), never a terminator. */
static void
test_nul_and_controls(void **state)
{
	static const struct bad_case bad[] = {
		{ B("a@b\0.com"), "NUL octet" },
		{ B("a@b.com\0"), "NUL octet" },
		{ B("\0a@b.com"), "NUL octet" },
		{ B("\"a\0\"@b.com"), "invalid character in quoted string" },
		{ B("a@b.com (\0)"), "invalid character in comment" },
		{ B("a\x01@b"), "invalid character" },
		{ B("a@b\x7f"), "invalid character" },
		{ B("a\\@b"), "invalid character" },
		{ B("a@b\r\n"), "invalid character" },
		{ B("a@b\nc"), "invalid character" },
		{ B("a@b,\rc@d"), "invalid character" },
	};
	struct addrlist_addr out[1];
	const char *why;

	run_bad(bad, NELEM(bad));
	/* Only `len` octets count: what follows them is not read. */
	assert_int_equal(addrlist_parse("a@b.comXY", 7, out, 1, &why), 1);
	assert_string_equal(out[0].addr, "a@b.com");
	assert_int_equal(addrlist_parse("a@b.com\0", 7, out, 1, &why), 1);
}

/* RFC 5322 FWS may still hold a fold: CRLF followed by WSP. */
static void
test_folding(void **state)
{
	static const struct ok_case cases[] = {
		{ B("a@b.com,\r\n c@d.com"), 2, { "a@b.com", "c@d.com" } },
		{ B("Name\r\n\t<a@b>"), 1, { "a@b" } },
		{ B("\"a\r\n b\"@x"), 1, { "\"a b\"@x" } },
		{ B("a@b (x\r\n y)"), 1, { "a@b" } },
	};
	static const struct bad_case bad[] = {
		{ B("a@b,\r\nc@d"), "invalid character" },
		{ B("\"a\r\nb\"@x"), "invalid character in quoted string" },
		{ B("a@b (x\r\n"), "invalid character in comment" },
	};

	run_ok(cases, NELEM(cases));
	run_bad(bad, NELEM(bad));
}

static void
test_local_length(void **state)
{
	struct addrlist_addr out[1];
	const char *why = NULL;
	char buf[256];
	size_t n;

	/* dot-atom: 64 octets fit, 65 do not. */
	memset(buf, 'l', 64);
	memcpy(buf + 64, "@d", 2);
	assert_int_equal(addrlist_parse(buf, 66, out, 1, &why), 1);
	assert_int_equal(strlen(out[0].addr), 66);
	memset(buf, 'l', 65);
	memcpy(buf + 65, "@d", 2);
	assert_int_equal(addrlist_parse(buf, 67, out, 1, &why), -1);
	assert_string_equal(why, "local part too long");

	/* Quoted: the limit counts the quotes and escapes as written out. */
	buf[0] = '"';
	memset(buf + 1, ' ', 62);
	memcpy(buf + 63, "\"@d", 3);
	assert_int_equal(addrlist_parse(buf, 66, out, 1, &why), 1);
	assert_int_equal(strlen(out[0].addr), 66);
	memset(buf + 1, ' ', 63);
	memcpy(buf + 64, "\"@d", 3);
	assert_int_equal(addrlist_parse(buf, 67, out, 1, &why), -1);
	assert_string_equal(why, "local part too long");
	memset(buf + 1, ' ', 61);
	memcpy(buf + 62, "\\\"\"@d", 5);	/* 61 + \" = 63 + 2 quotes */
	assert_int_equal(addrlist_parse(buf, 67, out, 1, &why), -1);
	assert_string_equal(why, "local part too long");
	memcpy(buf + 61, "\\\"\"@d", 5);	/* 60 + \" + quotes = 64 */
	assert_int_equal(addrlist_parse(buf, 66, out, 1, &why), 1);
	assert_int_equal(strlen(out[0].addr), 66);

	/* Quoted-pairs that vanish make a long written form short. */
	n = 0;
	buf[n++] = '"';
	while (n < 129) {
		buf[n++] = '\\';
		buf[n++] = 'q';
	}
	memcpy(buf + n, "\"@d", 3);
	assert_int_equal(addrlist_parse(buf, n + 3, out, 1, &why), 1);
	assert_int_equal(strlen(out[0].addr), 64 + 2);
}

static void
test_domain_length(void **state)
{
	struct addrlist_addr out[1];
	const char *why = NULL;
	char buf[600];
	size_t n, i;

	/* 64-octet local part and 255-octet domain: the longest address. */
	memset(buf, 'l', 64);
	buf[64] = '@';
	n = 65;
	for (i = 0; i < 4; i++) {	/* 4 * 63 + 3 dots = 255 */
		memset(buf + n, 'D', 63);
		n += 63;
		if (i < 3)
			buf[n++] = '.';
	}
	assert_int_equal(addrlist_parse(buf, n, out, 1, &why), 1);
	assert_int_equal(strlen(out[0].addr), ADDRLIST_ADDR_MAX);
	assert_int_equal(out[0].addr[ADDRLIST_ADDR_MAX - 1], 'd');

	buf[n++] = 'x';			/* 256 */
	assert_int_equal(addrlist_parse(buf, n, out, 1, &why), -1);
	assert_string_equal(why, "domain too long");
	buf[n - 1] = '.';		/* 255 + a dot with nothing after */
	assert_int_equal(addrlist_parse(buf, n, out, 1, &why), -1);
	assert_string_equal(why, "domain too long");

	/* One long label, and obs CFWS does not count. */
	memcpy(buf, "a@", 2);
	memset(buf + 2, 'x', 300);
	assert_int_equal(addrlist_parse(buf, 302, out, 1, &why), -1);
	assert_string_equal(why, "domain too long");
	memcpy(buf, "a@ b (c) . d", 12);
	assert_int_equal(addrlist_parse(buf, 12, out, 1, &why), 1);
	assert_string_equal(out[0].addr, "a@b.d");
}

/* More mailboxes than slots: counted, never written past out[max - 1]. */
static void
test_more_than_max(void **state)
{
	static const char in[] = "a@1, g: b@2, c@3;, <d@4>, e@5";
	struct addrlist_addr out[4], guard;
	const char *why = NULL;
	size_t i;

	memset(out, 0x5a, sizeof(out));
	memset(&guard, 0x5a, sizeof(guard));
	assert_int_equal(addrlist_parse(B(in), out, 2, &why), 5);
	assert_string_equal(out[0].addr, "a@1");
	assert_string_equal(out[1].addr, "b@2");
	for (i = 2; i < NELEM(out); i++)
		assert_memory_equal(&out[i], &guard, sizeof(guard));

	memset(out, 0x5a, sizeof(out));
	assert_int_equal(addrlist_parse(B(in), out, 0, &why), 5);
	for (i = 0; i < NELEM(out); i++)
		assert_memory_equal(&out[i], &guard, sizeof(guard));
	assert_int_equal(addrlist_parse(B(in), NULL, 0, &why), 5);
	assert_int_equal(addrlist_parse(B(in), NULL, 3, &why), 5);

	memset(out, 0x5a, sizeof(out));
	assert_int_equal(addrlist_parse(B(in), out, 4, &why), 5);
	assert_string_equal(out[3].addr, "d@4");
}

/* Many empty elements and groups: linear, and the count is right. */
static void
test_many(void **state)
{
	struct addrlist_addr out[1];
	const char *why = NULL;
	size_t n = 0, i;
	char *buf;

	buf = malloc(400000);
	assert_non_null(buf);
	for (i = 0; i < 50000; i++) {
		memcpy(buf + n, "a@b,g:;,", 8);
		n += 8;
	}
	assert_int_equal(addrlist_parse(buf, n, out, 1, &why), 50000);
	memset(buf, ',', 400000);
	assert_int_equal(addrlist_parse(buf, 400000, out, 1, &why), -1);
	assert_string_equal(why, "no address");
	free(buf);
}

/* The output parses again, alone or in <>, to the same address. */
static void
test_output_reparses(void **state)
{
	static const char *const in[] = {
		"\"a\\\"b\"@x", "\"a\\\\b\"@x", "\"a b\".c@D", "a@[IPv6:::1]",
		"\"\"@x", "\"x@y\"@z", "j\xc3\xb6@X", "\"a\tb\"@x",
	};
	struct addrlist_addr out[1], again[1];
	const char *why = NULL;
	char buf[ADDRLIST_ADDR_MAX + 3];
	size_t i, n;

	for (i = 0; i < NELEM(in); i++) {
		assert_int_equal(addrlist_parse(in[i], strlen(in[i]), out, 1,
		    &why), 1);
		n = strlen(out[0].addr);
		assert_int_equal(addrlist_parse(out[0].addr, n, again, 1,
		    &why), 1);
		assert_string_equal(again[0].addr, out[0].addr);
		buf[0] = '<';
		memcpy(buf + 1, out[0].addr, n);
		buf[n + 1] = '>';
		assert_int_equal(addrlist_parse(buf, n + 2, again, 1, &why),
		    1);
		assert_string_equal(again[0].addr, out[0].addr);
	}
}

/* why may be NULL, and is left alone on success. */
static void
test_why(void **state)
{
	struct addrlist_addr out[1];
	const char *why = "untouched";

	assert_int_equal(addrlist_parse(B("<a@b"), out, 1, NULL), -1);
	assert_int_equal(addrlist_parse(B("a@b"), out, 1, &why), 1);
	assert_string_equal(why, "untouched");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_spec),
		cmocka_unit_test(test_name_addr),
		cmocka_unit_test(test_display_name_looks_like_addr),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_deep_comments),
		cmocka_unit_test(test_quoted_local),
		cmocka_unit_test(test_obs_local_part),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_obs_route),
		cmocka_unit_test(test_empty_elements),
		cmocka_unit_test(test_ambiguous),
		cmocka_unit_test(test_missing_domain),
		cmocka_unit_test(test_angle_brackets),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_nul_and_controls),
		cmocka_unit_test(test_folding),
		cmocka_unit_test(test_local_length),
		cmocka_unit_test(test_domain_length),
		cmocka_unit_test(test_more_than_max),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_output_reparses),
		cmocka_unit_test(test_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
