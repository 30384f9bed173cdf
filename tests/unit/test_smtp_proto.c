/*
 * test_smtp_proto.c - table-driven tests for the pure SMTP parsers:
 * command lines, paths, MAIL/RCPT/BDAT/HELO arguments, the DATA/BDAT
 * content scanner (end of data, dot-stuffing, SMTP smuggling cases, line
 * length, chunk-split independence) and the header scanner.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_proto.h"
#include "strbuf.h"

#define B(s)	(s), (sizeof(s) - 1)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

#define R_SENDER	"501 5.1.7 Bad sender address syntax"
#define R_RCPT		"501 5.1.3 Bad recipient address syntax"
#define R_LONG		"501 5.5.4 Path too long"
#define R_MAILSYN	"501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPTSYN	"501 5.5.4 Syntax: RCPT TO:<address>"
#define R_PARAMSYN	"501 5.5.4 Syntax error in parameters"
#define R_UTF8	"553 5.6.7 SMTPUTF8 required for non-ASCII address"
#define R_BDAT		"501 5.5.4 Syntax: BDAT <size> [LAST]"

/* ---- command lines ------------------------------------------------- */

struct cmd_case {
	const char	*line;
	size_t		 len;
	int		 want_rc;
	enum smtp_verb	 want_verb;
	const char	*want_args;
};

static const struct cmd_case cmd_cases[] = {
	{ B("MAIL FROM:<a@b>"), 0, SMTP_VERB_MAIL, "FROM:<a@b>" },
	{ B("mail from:<a@b>"), 0, SMTP_VERB_MAIL, "from:<a@b>" },
	{ B("rCpT TO:<a@b>  "), 0, SMTP_VERB_RCPT, "TO:<a@b>" },
	{ B("EHLO   client.example"), 0, SMTP_VERB_EHLO, "client.example" },
	{ B("HELO x"), 0, SMTP_VERB_HELO, "x" },
	{ B("DATA"), 0, SMTP_VERB_DATA, "" },
	{ B("data   "), 0, SMTP_VERB_DATA, "" },
	{ B("BDAT 10 LAST"), 0, SMTP_VERB_BDAT, "10 LAST" },
	{ B("RSET"), 0, SMTP_VERB_RSET, "" },
	{ B("NOOP hello there"), 0, SMTP_VERB_NOOP, "hello there" },
	{ B("QUIT"), 0, SMTP_VERB_QUIT, "" },
	{ B("VRFY bob"), 0, SMTP_VERB_VRFY, "bob" },
	{ B("EXPN list"), 0, SMTP_VERB_EXPN, "list" },
	{ B("HELP"), 0, SMTP_VERB_HELP, "" },
	{ B("StartTLS"), 0, SMTP_VERB_STARTTLS, "" },
	{ B("AUTH PLAIN AGJvYgBzZWNyZXQ="), 0, SMTP_VERB_AUTH,
	    "PLAIN AGJvYgBzZWNyZXQ=" },
	{ B("FOO bar"), 0, SMTP_VERB_UNKNOWN, "bar" },
	{ B("MAILFROM:<a@b>"), 0, SMTP_VERB_UNKNOWN, "" },
	{ B("MAI"), 0, SMTP_VERB_UNKNOWN, "" },
	{ B("STARTTLSX"), 0, SMTP_VERB_UNKNOWN, "" },
	{ B("MAIL\tFROM:<a@b>"), 0, SMTP_VERB_UNKNOWN, "" },
	{ B(""), -1, SMTP_VERB_UNKNOWN, "" },
	{ B(" MAIL FROM:<a@b>"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("MAIL FROM:<a@b>\r"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("MAIL FROM:<a\r@b>"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("MAIL FROM:<a@b>\n"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("RCPT TO:<a@b>\nDATA"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("NOOP a\0b"), -1, SMTP_VERB_UNKNOWN, "" },
	{ B("\0"), -1, SMTP_VERB_UNKNOWN, "" },
};

static void
test_cmd_parse(void **state)
{
	const struct cmd_case *tc;
	struct smtp_cmd cmd;
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(cmd_cases); i++) {
		tc = &cmd_cases[i];
		memset(&cmd, 0xa5, sizeof(cmd));
		got_rc = smtp_cmd_parse(tc->line, tc->len, &cmd);
		if (got_rc != tc->want_rc)
			fail_msg("case %zu: rc %d want %d", i, got_rc,
			    tc->want_rc);
		if (got_rc != 0)
			continue;
		if (cmd.verb != tc->want_verb)
			fail_msg("case %zu: verb %d want %d", i, cmd.verb,
			    tc->want_verb);
		assert_int_equal(cmd.args_len, strlen(tc->want_args));
		assert_memory_equal(cmd.args, tc->want_args, cmd.args_len);
		/* args is borrowed from the line unless empty */
		if (cmd.args_len > 0)
			assert_true(cmd.args >= tc->line &&
			    cmd.args + cmd.args_len <= tc->line + tc->len);
	}
}

static void
test_verb_name(void **state)
{
	static const struct {
		enum smtp_verb	 verb;
		const char	*want;
	} cases[] = {
		{ SMTP_VERB_MAIL, "MAIL" },
		{ SMTP_VERB_STARTTLS, "STARTTLS" },
		{ SMTP_VERB_AUTH, "AUTH" },
		{ SMTP_VERB_UNKNOWN, "UNKNOWN" },
		{ SMTP_VERB_COUNT, "UNKNOWN" },
	};
	struct smtp_cmd cmd;
	size_t i;
	int v;

	for (i = 0; i < NELEM(cases); i++)
		assert_string_equal(smtp_verb_name(cases[i].verb),
		    cases[i].want);
	/* Every name parses back to its own verb. */
	for (v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		const char *got_name = smtp_verb_name((enum smtp_verb)v);

		assert_int_equal(smtp_cmd_parse(got_name, strlen(got_name),
		    &cmd), 0);
		assert_int_equal(cmd.verb, v);
	}
}

/* ---- paths --------------------------------------------------------- */

struct path_case {
	const char	*in;
	size_t		 len;
	int		 allow_null;
	int		 is_rcpt;
	int		 want_rc;
	const char	*want_reply;	/* on error */
	const char	*want_addr;
	const char	*want_local;
	const char	*want_domain;
	int		 want_utf8;
	size_t		 want_used;
};

static const struct path_case path_cases[] = {
	{ B("<alice@example.com>"), 0, 0, 0, NULL,
	    "alice@example.com", "alice", "example.com", 0, 19 },
	{ B("<a.b+c@sub.example.org> SIZE=10"), 0, 1, 0, NULL,
	    "a.b+c@sub.example.org", "a.b+c", "sub.example.org", 0, 23 },
	{ B("<!#$%&'*+-/=?^_`{|}~@x>"), 0, 0, 0, NULL,
	    "!#$%&'*+-/=?^_`{|}~@x", "!#$%&'*+-/=?^_`{|}~", "x", 0, 23 },
	{ B("<\"a b\"@x.example>"), 0, 1, 0, NULL,
	    "\"a b\"@x.example", "\"a b\"", "x.example", 0, 17 },
	{ B("<\"a\\\"b\"@x>"), 0, 0, 0, NULL,
	    "\"a\\\"b\"@x", "\"a\\\"b\"", "x", 0, 10 },
	{ B("<\"a>b\"@x>"), 0, 0, 0, NULL,
	    "\"a>b\"@x", "\"a>b\"", "x", 0, 9 },
	{ B("<\"\"@x>"), 0, 0, 0, NULL, "\"\"@x", "\"\"", "x", 0, 6 },
	{ B("<a@[192.0.2.1]>"), 0, 0, 0, NULL,
	    "a@[192.0.2.1]", "a", "[192.0.2.1]", 0, 15 },
	{ B("<a@[IPv6:2001:db8::1]>"), 0, 0, 0, NULL,
	    "a@[IPv6:2001:db8::1]", "a", "[IPv6:2001:db8::1]", 0, 22 },
	{ B("<a@[ipv6:::1]>"), 0, 0, 0, NULL,
	    "a@[ipv6:::1]", "a", "[ipv6:::1]", 0, 14 },
	{ B("<@a.example,@b.example:c@d.example>"), 0, 1, 0, NULL,
	    "c@d.example", "c", "d.example", 0, 35 },
	{ B("<@a.example:c@d.example>"), 0, 0, 0, NULL,
	    "c@d.example", "c", "d.example", 0, 24 },
	{ B("<>"), 1, 0, 0, NULL, "", "", "", 0, 2 },
	{ B("<> SIZE=1"), 1, 0, 0, NULL, "", "", "", 0, 2 },
	{ B("<postmaster>"), 0, 1, 0, NULL,
	    "postmaster", "postmaster", "", 0, 12 },
	{ B("<PostMaster>"), 0, 1, 0, NULL,
	    "postmaster", "postmaster", "", 0, 12 },
	{ B("<Postmaster@example.com>"), 0, 1, 0, NULL,
	    "Postmaster@example.com", "Postmaster", "example.com", 0, 24 },
	{ B("<1.2.3.4@10.0.0.1>"), 0, 0, 0, NULL,
	    "1.2.3.4@10.0.0.1", "1.2.3.4", "10.0.0.1", 0, 18 },
	{ B("<a@a-b.c-d>"), 0, 0, 0, NULL, "a@a-b.c-d", "a", "a-b.c-d",
	    0, 11 },
	{ B("<j\xc3\xb6rg@b\xc3\xbc" "cher.example>"), 0, 0, 0, NULL,
	    "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "j\xc3\xb6rg",
	    "b\xc3\xbc" "cher.example", 1, 23 },
	{ B("<\"\xe2\x82\xac\"@x>"), 0, 1, 0, NULL,
	    "\"\xe2\x82\xac\"@x", "\"\xe2\x82\xac\"", "x", 1, 9 },
	/* errors */
	{ B("<>"), 0, 1, -1, R_RCPT, NULL, NULL, NULL, 0, 0 },
	{ B("<>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<postmaster>"), 1, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@a.example:postmaster>"), 0, 1, -1, R_RCPT,
	    NULL, NULL, NULL, 0, 0 },
	{ B("<postmasterx>"), 0, 1, -1, R_RCPT, NULL, NULL, NULL, 0, 0 },
	{ B("alice@example.com"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B(""), 1, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<"), 1, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@>"), 0, 1, -1, R_RCPT, NULL, NULL, NULL, 0, 0 },
	{ B("< a@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a @b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b >"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a b@c>"), 0, 1, -1, R_RCPT, NULL, NULL, NULL, 0, 0 },
	{ B("<.a@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a.@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a..b@c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b..c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b.>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@.b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@-b.c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b-.c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b_c.d>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b@c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a(b)@c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<\"a@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<\"a\\\x01\"@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<\"a\x01\"@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<\"a\"b@c>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a\0@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[1.2.3]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[1.2.3.256]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[2001:db8::1]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[IPv6:1.2.3.4]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[IPv6:]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[1.2.3.4>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[x-tag:foo]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@[1.2.3.4\0]>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@a.example c@d>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@a.example,c@d>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@:c@d>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<@[1.2.3.4]:c@d>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a\xff@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a@b\xc3>"), 0, 1, -1, R_RCPT, NULL, NULL, NULL, 0, 0 },
	{ B("<a\xc0\xaf@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL, 0, 0 },
	{ B("<a\xed\xa0\x80@b>"), 0, 0, -1, R_SENDER, NULL, NULL, NULL,
	    0, 0 },
};

static void
check_path_case(size_t i, const struct path_case *tc)
{
	struct smtp_path got;
	const char *got_reply = NULL;
	size_t got_used = 99;
	int got_rc;

	got_rc = smtp_path_parse(tc->in, tc->len, tc->allow_null, tc->is_rcpt,
	    &got, &got_used, &got_reply);
	if (got_rc != tc->want_rc)
		fail_msg("path case %zu (%s): rc %d want %d", i, tc->in, got_rc,
		    tc->want_rc);
	if (got_rc != 0) {
		assert_non_null(got_reply);
		assert_string_equal(got_reply, tc->want_reply);
		return;
	}
	assert_string_equal(got.addr, tc->want_addr);
	assert_string_equal(got.local, tc->want_local);
	assert_string_equal(got.domain, tc->want_domain);
	assert_int_equal(got.utf8, tc->want_utf8);
	assert_int_equal(got_used, tc->want_used);
}

static void
test_path_parse(void **state)
{
	size_t i;

	for (i = 0; i < NELEM(path_cases); i++)
		check_path_case(i, &path_cases[i]);
}

/* Fill buf with an n-octet domain made of labels of at most 32. */
static void
fill_domain(char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (i % 32 == 31 && i + 1 < n) ? '.' : 'd';
}

/* Build "<" local(llen) "@" domain(dlen) ">" and parse it. */
static int
parse_sized(size_t llen, size_t dlen, int quoted, const char **reply,
    struct smtp_path *p)
{
	char buf[1024];
	size_t pos = 0, used;

	buf[pos++] = '<';
	memset(buf + pos, 'l', llen);
	if (quoted) {
		buf[pos] = '"';
		buf[pos + llen - 1] = '"';
	}
	pos += llen;
	buf[pos++] = '@';
	fill_domain(buf + pos, dlen);
	pos += dlen;
	buf[pos++] = '>';
	return smtp_path_parse(buf, pos, 0, 1, p, &used, reply);
}

static void
test_path_lengths(void **state)
{
	static const struct {
		size_t		 llen, dlen;
		int		 quoted;
		int		 want_rc;
		const char	*want_reply;
	} cases[] = {
		{ 64, 10, 0, 0, NULL },
		{ 65, 10, 0, -1, R_LONG },
		{ 64, 10, 1, 0, NULL },		/* quotes count */
		{ 65, 10, 1, -1, R_LONG },
		{ 64, 189, 0, 0, NULL },	/* path exactly 256 */
		{ 64, 190, 0, -1, R_LONG },	/* 257 */
		{ 1, 252, 0, 0, NULL },		/* 256 */
		{ 1, 253, 0, -1, R_LONG },
		{ 1, 300, 0, -1, R_LONG },
		{ 300, 300, 0, -1, R_LONG },
	};
	struct smtp_path got;
	const char *got_reply;
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(cases); i++) {
		got_reply = NULL;
		got_rc = parse_sized(cases[i].llen, cases[i].dlen,
		    cases[i].quoted, &got_reply, &got);
		if (got_rc != cases[i].want_rc)
			fail_msg("length case %zu: rc %d want %d", i, got_rc,
			    cases[i].want_rc);
		if (got_rc == 0) {
			assert_int_equal(strlen(got.local), cases[i].llen);
			assert_int_equal(strlen(got.domain), cases[i].dlen);
			assert_int_equal(strlen(got.addr),
			    cases[i].llen + 1 + cases[i].dlen);
		} else
			assert_string_equal(got_reply, cases[i].want_reply);
	}
}

static void
test_path_label_length(void **state)
{
	char buf[128];
	struct smtp_path got;
	const char *got_reply;
	size_t used, n;

	/* A 63-octet label is fine, 64 is not (RFC 1035 2.3.4). */
	for (n = 63; n <= 64; n++) {
		buf[0] = '<';
		buf[1] = 'a';
		buf[2] = '@';
		memset(buf + 3, 'x', n);
		memcpy(buf + 3 + n, ".com>", 5);
		assert_int_equal(smtp_path_parse(buf, n + 8, 0, 0, &got, &used,
		    &got_reply), n == 63 ? 0 : -1);
	}
}

/* ---- MAIL ---------------------------------------------------------- */

struct mail_case {
	const char	*args;
	int		 want_rc;
	const char	*want_reply;
	const char	*want_addr;
	uint64_t	 want_size;
	enum smtp_body	 want_body;
	int		 want_smtputf8;
	enum smtp_ret	 want_ret;
	const char	*want_envid;
};

static const struct mail_case mail_cases[] = {
	{ "FROM:<a@b>", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_UNSET, "" },
	{ "from:<a@b>", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_UNSET, "" },
	{ "FROM: <a@b>", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_UNSET, "" },
	{ "FROM:<>", 0, NULL, "", 0, SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "" },
	{ "FROM:<a@b> SIZE=12345 BODY=8BITMIME", 0, NULL, "a@b", 12345,
	    SMTP_BODY_8BITMIME, 0, SMTP_RET_UNSET, "" },
	{ "FROM:<a@b>   size=18446744073709551615  body=binarymime  ", 0,
	    NULL, "a@b", UINT64_MAX, SMTP_BODY_BINARYMIME, 0,
	    SMTP_RET_UNSET, "" },
	{ "FROM:<a@b> BODY=7BIT RET=HDRS ENVID=QQ+2Bx+3D1", 0, NULL, "a@b",
	    0, SMTP_BODY_7BIT, 0, SMTP_RET_HDRS, "QQ+2Bx+3D1" },
	{ "FROM:<a@b> RET=full", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_FULL, "" },
	{ "FROM:<a@b> SMTPUTF8", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 1,
	    SMTP_RET_UNSET, "" },
	{ "FROM:<j\xc3\xb6rg@b> SMTPUTF8", 0, NULL, "j\xc3\xb6rg@b", 0,
	    SMTP_BODY_UNSET, 1, SMTP_RET_UNSET, "" },
	{ "FROM:<a@b> AUTH=<>", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_UNSET, "" },
	{ "FROM:<a@b> AUTH=alice+40example.com", 0, NULL, "a@b", 0,
	    SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "" },
	{ "FROM:<@r.example:a@b>", 0, NULL, "a@b", 0, SMTP_BODY_UNSET, 0,
	    SMTP_RET_UNSET, "" },
	/* errors */
	{ "", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM: ", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "TO:<a@b>", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM <a@b>", -1, R_MAILSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:  <a@b>", -1, R_SENDER, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:a@b", -1, R_SENDER, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b>x", -1, R_SENDER, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b>SIZE=1", -1, R_SENDER, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<j\xc3\xb6rg@b>", -1, R_UTF8, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b\xc3\xbc.example>", -1, R_UTF8, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=abc", -1, "501 5.5.4 Bad SIZE parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=-1", -1, "501 5.5.4 Bad SIZE parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=18446744073709551616", -1,
	    "501 5.5.4 Bad SIZE parameter", NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=99999999999999999999999", -1,
	    "501 5.5.4 Bad SIZE parameter", NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE", -1, "501 5.5.4 Bad SIZE parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=1 SIZE=2", -1, "501 5.5.4 Duplicate MAIL parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SMTPUTF8 smtputf8", -1,
	    "501 5.5.4 Duplicate MAIL parameter", NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> BODY=9BIT", -1, "501 5.5.4 Bad BODY parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SMTPUTF8=yes", -1, "501 5.5.4 SMTPUTF8 takes no value",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> RET=ALL", -1, "501 5.5.4 Bad RET parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> ENVID=a+4", -1, "501 5.5.4 Bad ENVID parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> ENVID=a+ZZ", -1, "501 5.5.4 Bad ENVID parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> ENVID=a=b", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> ENVID=\xc3\xa9", -1, "501 5.5.4 Bad ENVID parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> AUTH=a+", -1, "501 5.5.4 Bad AUTH parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> FOO=bar", -1, "555 5.5.4 Unsupported MAIL parameter",
	    NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> NOTIFY=NEVER", -1,
	    "555 5.5.4 Unsupported MAIL parameter", NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> -X=1", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> =1", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> X_Y", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> SIZE=1\x01", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
	{ "FROM:<a@b> X=\xff", -1, R_PARAMSYN, NULL, 0, 0, 0, 0, NULL },
};

static void
test_mail_parse(void **state)
{
	const struct mail_case *tc;
	struct smtp_path got_path;
	struct smtp_mail_params got;
	const char *got_reply;
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(mail_cases); i++) {
		tc = &mail_cases[i];
		got_reply = NULL;
		got_rc = smtp_mail_parse(tc->args, strlen(tc->args), &got_path,
		    &got, &got_reply);
		if (got_rc != tc->want_rc)
			fail_msg("mail case %zu (%s): rc %d want %d (%s)", i,
			    tc->args, got_rc, tc->want_rc,
			    got_reply ? got_reply : "-");
		if (got_rc != 0) {
			assert_non_null(got_reply);
			if (strcmp(got_reply, tc->want_reply) != 0)
				fail_msg("mail case %zu: reply '%s' want '%s'",
				    i, got_reply, tc->want_reply);
			continue;
		}
		assert_string_equal(got_path.addr, tc->want_addr);
		assert_true(got.size == tc->want_size);
		assert_int_equal(got.body, tc->want_body);
		assert_int_equal(got.smtputf8, tc->want_smtputf8);
		assert_int_equal(got.ret, tc->want_ret);
		assert_string_equal(got.envid, tc->want_envid);
	}
}

static void
test_mail_envid_length(void **state)
{
	char args[256];
	struct smtp_path path;
	struct smtp_mail_params got;
	const char *reply;
	size_t n;
	int pos;

	for (n = 99; n <= 101; n++) {
		pos = snprintf(args, sizeof(args), "FROM:<a@b> ENVID=");
		memset(args + pos, 'e', n);
		assert_int_equal(smtp_mail_parse(args, (size_t)pos + n, &path,
		    &got, &reply), n <= 100 ? 0 : -1);
		if (n <= 100)
			assert_int_equal(strlen(got.envid), n);
	}
}

/* ---- RCPT ---------------------------------------------------------- */

struct rcpt_case {
	const char	*args;
	int		 want_rc;
	const char	*want_reply;
	const char	*want_addr;
	int		 want_utf8;
	int		 want_notify;
	const char	*want_orcpt;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "TO:<bob@example.com>", 0, NULL, "bob@example.com", 0, 0, "" },
	{ "to: <bob@example.com>", 0, NULL, "bob@example.com", 0, 0, "" },
	{ "TO:<postmaster>", 0, NULL, "postmaster", 0, 0, "" },
	{ "TO:<b\xc3\xb6" "b@example.com>", 0, NULL,
	    "b\xc3\xb6" "b@example.com", 1, 0, "" },
	{ "TO:<b@x> NOTIFY=NEVER", 0, NULL, "b@x", 0, SMTP_NOTIFY_NEVER, "" },
	{ "TO:<b@x> NOTIFY=success,Failure,DELAY", 0, NULL, "b@x", 0,
	    SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
	    "" },
	{ "TO:<b@x> NOTIFY=DELAY ORCPT=rfc822;bob@example.com", 0, NULL,
	    "b@x", 0, SMTP_NOTIFY_DELAY, "rfc822;bob@example.com" },
	{ "TO:<b@x> ORCPT=rfc822;b+2Bc@x", 0, NULL, "b@x", 0, 0,
	    "rfc822;b+2Bc@x" },
	{ "TO:<b@x> ORCPT=utf-8;b\xc3\xb6" "b@x", 0, NULL, "b@x", 0, 0,
	    "utf-8;b\xc3\xb6" "b@x" },
	/* errors */
	{ "TO:<>", -1, R_RCPT, NULL, 0, 0, NULL },
	{ "TO:", -1, R_RCPTSYN, NULL, 0, 0, NULL },
	{ "FROM:<b@x>", -1, R_RCPTSYN, NULL, 0, 0, NULL },
	{ "T", -1, R_RCPTSYN, NULL, 0, 0, NULL },
	{ "TO:b@x", -1, R_RCPT, NULL, 0, 0, NULL },
	{ "TO:<b@x> NOTIFY=NEVER,DELAY", -1, "501 5.5.4 Bad NOTIFY parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> NOTIFY=SUCCESS,,DELAY", -1,
	    "501 5.5.4 Bad NOTIFY parameter", NULL, 0, 0, NULL },
	{ "TO:<b@x> NOTIFY=SUCCESS,", -1, "501 5.5.4 Bad NOTIFY parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> NOTIFY=SOMETIMES", -1, "501 5.5.4 Bad NOTIFY parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> NOTIFY=DELAY NOTIFY=DELAY", -1,
	    "501 5.5.4 Duplicate RCPT parameter", NULL, 0, 0, NULL },
	{ "TO:<b@x> ORCPT=bob@example.com", -1,
	    "501 5.5.4 Bad ORCPT parameter", NULL, 0, 0, NULL },
	{ "TO:<b@x> ORCPT=rfc822;", -1, "501 5.5.4 Bad ORCPT parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> ORCPT=;b@x", -1, "501 5.5.4 Bad ORCPT parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> ORCPT=rfc822;b+2", -1, "501 5.5.4 Bad ORCPT parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x> ORCPT=rfc822;b\xc3\xb6", -1,
	    "501 5.5.4 Bad ORCPT parameter", NULL, 0, 0, NULL },
	{ "TO:<b@x> SIZE=10", -1, "555 5.5.4 Unsupported RCPT parameter",
	    NULL, 0, 0, NULL },
	{ "TO:<b@x>,<c@y>", -1, R_RCPT, NULL, 0, 0, NULL },
};

static void
test_rcpt_parse(void **state)
{
	const struct rcpt_case *tc;
	struct smtp_path got_path;
	struct smtp_rcpt_params got;
	const char *got_reply;
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(rcpt_cases); i++) {
		tc = &rcpt_cases[i];
		got_reply = NULL;
		got_rc = smtp_rcpt_parse(tc->args, strlen(tc->args), &got_path,
		    &got, &got_reply);
		if (got_rc != tc->want_rc)
			fail_msg("rcpt case %zu (%s): rc %d want %d", i,
			    tc->args, got_rc, tc->want_rc);
		if (got_rc != 0) {
			assert_non_null(got_reply);
			if (strcmp(got_reply, tc->want_reply) != 0)
				fail_msg("rcpt case %zu: reply '%s' want '%s'",
				    i, got_reply, tc->want_reply);
			continue;
		}
		assert_string_equal(got_path.addr, tc->want_addr);
		assert_int_equal(got_path.utf8, tc->want_utf8);
		assert_int_equal(got.notify, tc->want_notify);
		assert_string_equal(got.orcpt, tc->want_orcpt);
	}
}

static void
test_rcpt_orcpt_length(void **state)
{
	char args[600];
	struct smtp_path path;
	struct smtp_rcpt_params got;
	const char *reply;
	size_t n, cap = sizeof(got.orcpt) - 1;
	int pos;

	for (n = cap - 1; n <= cap + 1; n++) {
		pos = snprintf(args, sizeof(args), "TO:<b@x> ORCPT=rfc822;");
		memset(args + pos, 'o', n - 7);	/* "rfc822;" is 7 */
		assert_int_equal(smtp_rcpt_parse(args, (size_t)pos + n - 7,
		    &path, &got, &reply), n <= cap ? 0 : -1);
		if (n <= cap)
			assert_int_equal(strlen(got.orcpt), n);
	}
}

/* ---- BDAT and HELO ------------------------------------------------- */

static void
test_bdat_parse(void **state)
{
	static const struct {
		const char	*args;
		int		 want_rc;
		uint64_t	 want_size;
		int		 want_last;
	} cases[] = {
		{ "0", 0, 0, 0 },
		{ "1000", 0, 1000, 0 },
		{ "1000 LAST", 0, 1000, 1 },
		{ "  42   last  ", 0, 42, 1 },
		{ "007 Last", 0, 7, 1 },
		{ "9223372036854775807 LAST", 0, UINT64_C(9223372036854775807),
		    1 },
		{ "9223372036854775808", -1, 0, 0 },
		{ "18446744073709551616", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ "LAST", -1, 0, 0 },
		{ "-1", -1, 0, 0 },
		{ "+1", -1, 0, 0 },
		{ "10LAST", -1, 0, 0 },
		{ "10 LAS", -1, 0, 0 },
		{ "10 LAST LAST", -1, 0, 0 },
		{ "10 FIRST", -1, 0, 0 },
		{ "1 0", -1, 0, 0 },
		{ "0x10", -1, 0, 0 },
	};
	const char *got_reply;
	uint64_t got_size;
	size_t i;
	int got_rc, got_last;

	for (i = 0; i < NELEM(cases); i++) {
		got_reply = NULL;
		got_rc = smtp_bdat_parse(cases[i].args, strlen(cases[i].args),
		    &got_size, &got_last, &got_reply);
		if (got_rc != cases[i].want_rc)
			fail_msg("bdat case %zu (%s): rc %d", i, cases[i].args,
			    got_rc);
		if (got_rc != 0) {
			assert_string_equal(got_reply, R_BDAT);
			continue;
		}
		assert_true(got_size == cases[i].want_size);
		assert_int_equal(got_last, cases[i].want_last);
	}
}

static void
test_helo_parse(void **state)
{
	static const struct {
		const char	*args;
		size_t		 len;
		int		 want_rc;
	} cases[] = {
		{ B("mail.example.com"), 0 },
		{ B("[192.0.2.1]"), 0 },
		{ B("[IPv6:2001:db8::1]"), 0 },
		{ B("localhost"), 0 },
		{ B("my_odd-host.local"), 0 },
		{ B("x"), 0 },
		{ B("b\xc3\xbc" "cher.example"), 0 },
		{ B("host.example  "), 0 },
		{ B(""), -1 },
		{ B("   "), -1 },
		{ B("two words"), -1 },
		{ B("tab\there"), -1 },
		{ B("nul\0here"), -1 },
		{ B("del\x7f"), -1 },
		{ B("esc\x1b[0m"), -1 },
		{ B("bad\xff"), -1 },
	};
	char long_name[300];
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		if (smtp_helo_parse(cases[i].args, cases[i].len) !=
		    cases[i].want_rc)
			fail_msg("helo case %zu (%s)", i, cases[i].args);
	memset(long_name, 'h', sizeof(long_name));
	assert_int_equal(smtp_helo_parse(long_name, 255), 0);
	assert_int_equal(smtp_helo_parse(long_name, 256), -1);
}

/* ---- DATA / BDAT scanner ------------------------------------------ */

struct data_case {
	const char	*in;
	size_t		 len;
	size_t		 max_line;
	int		 normalize;
	int		 bdat;
	int		 finish;	/* call smtp_data_finish at end */
	size_t		 want_used;
	const char	*want_out;
	size_t		 want_out_len;
	int		 want_bare;
	int		 want_long;
	int		 want_done;
};

#define ALL	((size_t)-1)	/* want_used: every input byte */

static const struct data_case data_cases[] = {
	/* ordinary messages */
	{ B("Subject: x\r\n\r\nbody\r\n.\r\n"), 1000, 0, 0, 0, ALL,
	    B("Subject: x\r\n\r\nbody\r\n"), 0, 0, 1 },
	{ B("a\r\n.\r\nQUIT\r\n"), 1000, 0, 0, 0, 6, B("a\r\n"), 0, 0, 1 },
	{ B(".\r\n"), 1000, 0, 0, 0, ALL, B(""), 0, 0, 1 },
	{ B(".\r\nMAIL FROM:<a@b>\r\n"), 1000, 0, 0, 0, 3, B(""), 0, 0, 1 },
	{ B("\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("\r\n"), 0, 0, 1 },
	{ B("\r\n\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("\r\n\r\n"), 0, 0, 1 },
	{ B("a.\r\n.b\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a.\r\nb\r\n"),
	    0, 0, 1 },
	/* dot-stuffing (RFC 5321 4.5.2) */
	{ B("..a\r\n...\r\n..\r\n.\r\n"), 1000, 0, 0, 0, ALL,
	    B(".a\r\n..\r\n.\r\n"), 0, 0, 1 },
	{ B("x\r\n..\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("x\r\n.\r\n"), 0, 0, 1 },
	/* not finished yet: a pending CR is not written */
	{ B("abc\r\n"), 1000, 0, 0, 0, ALL, B("abc\r\n"), 0, 0, 0 },
	{ B("abc\r"), 1000, 0, 0, 0, ALL, B("abc"), 0, 0, 0 },
	{ B("abc\r\n."), 1000, 0, 0, 0, ALL, B("abc\r\n"), 0, 0, 0 },
	{ B("abc\r\n.\r"), 1000, 0, 0, 0, ALL, B("abc\r\n"), 0, 0, 0 },
	/* SMTP smuggling: none of these end the data */
	{ B("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"), 1000, 0, 0, 0, ALL,
	    B("a"), 1, 0, 1 },
	{ B("a\r.\r\nX\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 1 },
	{ B("a\r.\rX\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 1 },
	{ B("a\r\n.\nX\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a\r\n."), 1, 0, 1 },
	{ B("a\n.\nX\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 1 },
	{ B("a\rb\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 1 },
	{ B("a\r\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 1 },
	{ B("a\n.\r\n"), 1000, 0, 0, 0, ALL, B("a"), 1, 0, 0 },
	{ B(".\n"), 1000, 0, 0, 0, ALL, B("."), 1, 0, 0 },
	{ B(".\r.\r\n"), 1000, 0, 0, 0, ALL, B("."), 1, 0, 0 },
	/* ... but the real <CRLF>.<CRLF> after them does */
	{ B("a\n.\r\n.\r\nQUIT\r\n"), 1000, 0, 0, 0, 8, B("a"), 1, 0, 1 },
	/* normalize: bare CR / LF become CRLF, flag still set; a lone "."
	 * after a bare line end is content and keeps its dot (RFC 5321
	 * 4.5.2 unstuffs only lines with other characters) */
	{ B("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"), 1000, 1, 0, 0, ALL,
	    B("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), 1, 0, 1 },
	{ B("a\r.\r\nX\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n.\r\nX\r\n"),
	    1, 0, 1 },
	{ B("a\r.\rX\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n.\r\nX\r\n"),
	    1, 0, 1 },
	{ B("a\r\n.\nX\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n.\r\nX\r\n"),
	    1, 0, 1 },
	{ B("a\n..b\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n.b\r\n.\r\n"),
	    1, 0, 0 },
	{ B("a\rb\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\nb\r\n"), 1, 0, 1 },
	{ B("a\r\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n\r\n"), 1, 0, 1 },
	{ B("a\n\nb\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("a\r\n\r\nb\r\n"),
	    1, 0, 1 },
	{ B("clean\r\n.\r\n"), 1000, 1, 0, 0, ALL, B("clean\r\n"), 0, 0, 1 },
	/* line length: content after unstuffing, CRLF excluded */
	{ B("abcd\r\n.\r\n"), 4, 0, 0, 0, ALL, B("abcd\r\n"), 0, 0, 1 },
	{ B("abcde\r\nf\r\n.\r\n"), 4, 0, 0, 0, ALL, B("abcd"), 0, 1, 1 },
	{ B("..abc\r\n.\r\n"), 4, 0, 0, 0, ALL, B(".abc\r\n"), 0, 0, 1 },
	{ B("..abcd\r\n.\r\n"), 4, 0, 0, 0, ALL, B(".abc"), 0, 1, 1 },
	{ B("abcde\r\n.\r\n"), 4, 1, 0, 0, ALL, B("abcd"), 0, 1, 1 },
	{ B("a\nabcde\r\n.\r\n"), 4, 0, 0, 0, ALL, B("a"), 1, 1, 1 },
	{ B(".\r\n"), 0, 0, 0, 0, ALL, B(""), 0, 0, 1 },
	{ B("\r\n\r\n.\r\n"), 0, 0, 0, 0, ALL, B("\r\n\r\n"), 0, 0, 1 },
	{ B("x\r\n.\r\n"), 0, 0, 0, 0, ALL, B(""), 0, 1, 1 },
	/* BDAT: no end of data, no dot handling */
	{ B("a\r\n.\r\nb"), 1000, 0, 1, 0, ALL, B("a\r\n.\r\nb"), 0, 0, 0 },
	{ B("..\r\n"), 1000, 0, 1, 0, ALL, B("..\r\n"), 0, 0, 0 },
	{ B("a\nb"), 1000, 0, 1, 0, ALL, B("a"), 1, 0, 0 },
	{ B("a\nb"), 1000, 1, 1, 0, ALL, B("a\r\nb"), 1, 0, 0 },
	{ B("a\rb"), 1000, 1, 1, 0, ALL, B("a\r\nb"), 1, 0, 0 },
	{ B("a\r"), 1000, 0, 1, 0, ALL, B("a"), 0, 0, 0 },
	{ B("a\r"), 1000, 0, 1, 1, ALL, B("a"), 1, 0, 0 },
	{ B("a\r"), 1000, 1, 1, 1, ALL, B("a\r\n"), 1, 0, 0 },
	{ B("a\r\n"), 1000, 1, 1, 1, ALL, B("a\r\n"), 0, 0, 0 },
	{ B("abcde\r\n"), 4, 0, 1, 1, ALL, B("abcd"), 0, 1, 0 },
	{ B("abcd\r\nabcd"), 4, 0, 1, 1, ALL, B("abcd\r\nabcd"), 0, 0, 0 },
	/* binary octets pass (BINARYMIME), NUL included */
	{ B("\0\xff\x80\r\n.\r\n"), 1000, 0, 0, 0, ALL, B("\0\xff\x80\r\n"),
	    0, 0, 1 },
};

struct data_result {
	struct strbuf	 out;
	size_t		 used;
	int		 bare;
	int		 too_long;
	int		 done;
	uint64_t	 out_octets;
};

/* Feed tc->in cut at the given offsets (ascending); stop once done. */
static void
run_data(const struct data_case *tc, const size_t *cuts, size_t ncuts,
    struct data_result *r)
{
	struct smtp_data_scanner ds;
	size_t start = 0, end, k, got;

	strbuf_init(&r->out);
	r->used = 0;
	smtp_data_init(&ds, tc->max_line, tc->normalize, tc->bdat);
	for (k = 0; k <= ncuts && !ds.done; k++) {
		end = k < ncuts ? cuts[k] : tc->len;
		got = smtp_data_feed(&ds, tc->in + start, end - start, &r->out);
		assert_true(got <= end - start);
		if (!ds.done)
			assert_int_equal(got, end - start);
		r->used += got;
		start = end;
	}
	if (ds.done)	/* after the end, nothing more is taken */
		assert_int_equal(smtp_data_feed(&ds, "x\r\n", 3, &r->out), 0);
	if (tc->finish)
		smtp_data_finish(&ds, &r->out);
	r->bare = ds.bare_seen;
	r->too_long = ds.line_too_long;
	r->done = ds.done;
	r->out_octets = ds.out_octets;
}

static void
check_data_result(size_t i, const char *how, const struct data_case *tc,
    const struct data_result *r)
{
	size_t want_used = tc->want_used == ALL ? tc->len : tc->want_used;

	if (r->used != want_used || r->done != tc->want_done ||
	    r->bare != tc->want_bare || r->too_long != tc->want_long ||
	    r->out.len != tc->want_out_len ||
	    memcmp(r->out.s ? r->out.s : "", tc->want_out,
	    tc->want_out_len) != 0)
		fail_msg("data case %zu (%s): used %zu/%zu done %d/%d "
		    "bare %d/%d long %d/%d out %zu/%zu bytes", i, how,
		    r->used, want_used, r->done, tc->want_done, r->bare,
		    tc->want_bare, r->too_long, tc->want_long, r->out.len,
		    tc->want_out_len);
	assert_true(r->out_octets == r->out.len);
}

static void
test_data_scanner(void **state)
{
	struct data_result got;
	size_t i;

	for (i = 0; i < NELEM(data_cases); i++) {
		run_data(&data_cases[i], NULL, 0, &got);
		check_data_result(i, "one chunk", &data_cases[i], &got);
		strbuf_free(&got.out);
	}
}

/* Every single cut position, and one byte at a time, give the same. */
static void
test_data_every_split(void **state)
{
	const struct data_case *tc;
	struct data_result got;
	size_t cuts[64], i, k;
	char how[32];

	for (i = 0; i < NELEM(data_cases); i++) {
		tc = &data_cases[i];
		assert_true(tc->len < NELEM(cuts));
		for (k = 0; k <= tc->len; k++) {
			cuts[0] = k;
			run_data(tc, cuts, 1, &got);
			snprintf(how, sizeof(how), "cut at %zu", k);
			check_data_result(i, how, tc, &got);
			strbuf_free(&got.out);
		}
		for (k = 1; k < tc->len; k++)
			cuts[k - 1] = k;
		run_data(tc, cuts, tc->len > 0 ? tc->len - 1 : 0, &got);
		check_data_result(i, "bytewise", tc, &got);
		strbuf_free(&got.out);
	}
}

/* Lines of exactly max_line and max_line + 1 octets, in any cut. */
static void
test_data_line_limit(void **state)
{
	static const size_t max_line = 1000;
	struct data_case tc;
	struct data_result got;
	char *buf;
	size_t extra, n, cut;
	int bdat;

	buf = malloc(max_line + 16);
	assert_non_null(buf);
	for (bdat = 0; bdat <= 1; bdat++) {
		for (extra = 0; extra <= 1; extra++) {
			n = max_line + extra;
			memset(buf, 'x', n);
			memcpy(buf + n, "\r\n.\r\n", 5);
			memset(&tc, 0, sizeof(tc));
			tc.in = buf;
			tc.len = n + 5;
			tc.max_line = max_line;
			tc.bdat = bdat;
			tc.want_used = ALL;
			tc.want_out = buf;
			tc.want_out_len = extra ? max_line : (bdat ? n + 5 :
			    n + 2);
			tc.want_long = (int)extra;
			tc.want_done = !bdat;
			for (cut = 0; cut <= tc.len; cut += 7) {
				run_data(&tc, &cut, 1, &got);
				check_data_result(extra, "line limit", &tc,
				    &got);
				strbuf_free(&got.out);
			}
		}
	}
	free(buf);
}

/* ---- header scanner ----------------------------------------------- */

struct hdr_case {
	const char	*in;
	size_t		 len;
	int		 finish;
	const char	*want_mid;
	const char	*want_subject;
	int		 want_done;
};

static const struct hdr_case hdr_cases[] = {
	{ B("Subject: Hello\r\nMessage-ID: <a@b>\r\n\r\nbody"), 0,
	    "<a@b>", "Hello", 1 },
	{ B("From: x\r\nSubject: Hello\r\n world\r\n\tagain\r\n"
	    "To: y\r\n\r\n"), 0, "", "Hello world again", 1 },
	{ B("SUBJECT: up\r\nmessage-id: <m@x>\r\n\r\n"), 0, "<m@x>", "up", 1 },
	{ B("Subject: one\r\nSubject: two\r\n\r\n"), 0, "", "one", 1 },
	{ B("Subject:\r\nSubject: two\r\n\r\n"), 0, "", "", 1 },
	{ B("Subject: a\x01" "b\x7f" "c\r\n\r\n"), 0, "", "abc", 1 },
	{ B("Subject:   spaced  out \t \r\n\r\n"), 0, "", "spaced  out", 1 },
	{ B("From: x\r\n\r\nSubject: not a header\r\n"), 0, "", "", 1 },
	{ B("\r\nSubject: body\r\n"), 0, "", "", 1 },
	{ B("Subject: tail"), 1, "", "tail", 1 },
	{ B("Subject: tail"), 0, "", "", 0 },
	{ B("Subject: tail\r"), 1, "", "tail", 1 },
	{ B("Subject : obs\r\n\r\n"), 0, "", "obs", 1 },
	{ B("X-Subject: no\r\nSubjects: no\r\nMessage-IDs: no\r\n\r\n"), 0,
	    "", "", 1 },
	{ B("Subject: lf\nMessage-ID: <m>\n\nbody"), 0, "<m>", "lf", 1 },
	{ B("Subject: a\rb\r\n\r\n"), 0, "", "ab", 1 },
	{ B("Message-ID:\r\n <id@x>\r\n\r\n"), 0, "<id@x>", "", 1 },
	{ B("Subject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\n"), 0, "",
	    "=?UTF-8?Q?caf=C3=A9?=", 1 },
	{ B("Subject: caf\xc3\xa9\r\n\r\n"), 0, "", "caf\xc3\xa9", 1 },
	{ B("no colon line\r\nSubject: after\r\n\r\n"), 0, "", "after", 1 },
	{ B(" leading fold\r\nSubject: s\r\n\r\n"), 0, "", "s", 1 },
};

static void
run_hdr(const char *in, size_t len, size_t cut, int finish,
    struct msg_header_scan *hs)
{
	msg_header_scan_init(hs);
	msg_header_scan_feed(hs, in, cut);
	msg_header_scan_feed(hs, in + cut, len - cut);
	if (finish)
		msg_header_scan_finish(hs);
}

static void
test_header_scan(void **state)
{
	const struct hdr_case *tc;
	struct msg_header_scan got;
	size_t i, cut;

	for (i = 0; i < NELEM(hdr_cases); i++) {
		tc = &hdr_cases[i];
		for (cut = 0; cut <= tc->len; cut++) {
			run_hdr(tc->in, tc->len, cut, tc->finish, &got);
			if (strcmp(got.message_id, tc->want_mid) != 0 ||
			    strcmp(got.subject, tc->want_subject) != 0 ||
			    got.done != tc->want_done)
				fail_msg("header case %zu cut %zu: mid '%s' "
				    "subject '%s' done %d", i, cut,
				    got.message_id, got.subject, got.done);
		}
	}
}

static void
test_header_truncation(void **state)
{
	static const struct {
		const char	*tail;		/* after the 'x' run */
		size_t		 run;
		size_t		 want_len;
	} cases[] = {
		{ "", 2000, 998 },
		{ "", 998, 998 },
		{ "", 997, 997 },
		{ "\xc3\xa9", 997, 997 },	/* é would be cut in half */
		{ "\xc3\xa9", 996, 998 },	/* é fits exactly */
		{ "\xe2\x82\xac", 996, 996 },	/* € cut after 2 of 3 */
		{ "  ", 997, 997 },		/* trailing space trimmed */
	};
	struct msg_header_scan got;
	char *buf;
	size_t i, n;

	buf = malloc(4096);
	assert_non_null(buf);
	for (i = 0; i < NELEM(cases); i++) {
		n = (size_t)snprintf(buf, 4096, "Subject: ");
		memset(buf + n, 'x', cases[i].run);
		n += cases[i].run;
		n += (size_t)snprintf(buf + n, 4096 - n, "%s\r\n\r\n",
		    cases[i].tail);
		run_hdr(buf, n, n / 2, 0, &got);
		assert_int_equal(got.done, 1);
		if (strlen(got.subject) != cases[i].want_len)
			fail_msg("truncation case %zu: %zu want %zu", i,
			    strlen(got.subject), cases[i].want_len);
		assert_memory_equal(got.subject, buf + 9,
		    cases[i].want_len < cases[i].run ? cases[i].want_len :
		    cases[i].run);
	}
	free(buf);
}

/* ---- header scanner: From ------------------------------------------ */

struct from_case {
	const char	*in;
	size_t		 len;
	int		 finish;
	const char	*want_from;
	int		 want_count;
};

static const struct from_case from_cases[] = {
	{ B("From: a@b.com\r\n\r\n"), 0, "a@b.com", 1 },
	{ B("From: John\r\n Doe\r\n\t<jd@x>\r\nTo: y\r\n\r\n"), 0,
	    "John Doe <jd@x>", 1 },
	{ B("From: a@b\r\nSubject: s\r\nFrom: c@d\r\n\r\n"), 0,
	    "a@b, c@d", 2 },
	{ B("From: a@b\r\nFrom: c@d\r\nFrom: \"e\" <f@g>\r\n\r\n"), 0,
	    "a@b, c@d, \"e\" <f@g>", 3 },
	{ B("from: a@b\r\nFROM : c@d\r\nfRoM:e@f\r\n\r\n"), 0,
	    "a@b, c@d, e@f", 3 },
	{ B("Subject: s\r\n\r\nFrom: a@b\r\n"), 0, "", 0 },
	{ B("From: a@b\r\n\r\nFrom: c@d\r\n"), 1, "a@b", 1 },
	{ B("\r\nFrom: a@b\r\n\r\n"), 0, "", 0 },
	{ B("From:\r\nFrom: a@b\r\n\r\n"), 0, ", a@b", 2 },
	{ B("From:   a@b  \t \r\n\r\n"), 0, "a@b", 1 },
	{ B("From: a\x01@b\x7f\r\n\r\n"), 0, "a@b", 1 },
	{ B("Resent-From: x\r\nFromage: y\r\nX-From: z\r\n\r\n"), 0, "", 0 },
	{ B("From: a@b\nFrom: c@d\n\nbody"), 0, "a@b, c@d", 2 },
	{ B("From: tail@x"), 1, "tail@x", 1 },
	{ B("From: tail@x"), 0, "", 0 },
	{ B("From: j\xc3\xb6@x\r\n\r\n"), 0, "j\xc3\xb6@x", 1 },
	{ B(" From: folded@x\r\n\r\n"), 0, "", 0 },
};

static void
check_from(size_t i, const char *how, const struct from_case *tc,
    const struct msg_header_scan *got)
{
	if (strcmp(got->from, tc->want_from) != 0 ||
	    got->from_count != tc->want_count || got->from_truncated != 0)
		fail_msg("from case %zu %s: from '%s' count %d truncated %d",
		    i, how, got->from, got->from_count, got->from_truncated);
}

static void
test_header_from(void **state)
{
	const struct from_case *tc;
	struct msg_header_scan got;
	size_t i, cut;

	for (i = 0; i < NELEM(from_cases); i++) {
		tc = &from_cases[i];
		for (cut = 0; cut <= tc->len; cut++) {
			run_hdr(tc->in, tc->len, cut, tc->finish, &got);
			check_from(i, "cut", tc, &got);
		}
	}
}

/* Byte by byte gives what one chunk gives, From, Subject and all. */
static void
test_header_from_bytes(void **state)
{
	static const char in[] = "Subject: s\r\n t\r\nFrom: A\r\n <a@b>\r"
	    "\nMessage-ID: <m@x>\r\nfrom: c@d\r\nSubject: no\r\n\r\n"
	    "From: body@x\r\n";
	struct msg_header_scan whole, bytes;
	size_t i;

	run_hdr(B(in), 0, 0, &whole);
	msg_header_scan_init(&bytes);
	for (i = 0; i < sizeof(in) - 1; i++)
		msg_header_scan_feed(&bytes, in + i, 1);
	assert_string_equal(whole.from, "A <a@b>, c@d");
	assert_int_equal(whole.from_count, 2);
	assert_int_equal(whole.from_truncated, 0);
	assert_string_equal(whole.subject, "s t");
	assert_string_equal(whole.message_id, "<m@x>");
	assert_int_equal(whole.done, 1);
	assert_string_equal(bytes.from, whole.from);
	assert_int_equal(bytes.from_count, whole.from_count);
	assert_int_equal(bytes.from_truncated, whole.from_truncated);
	assert_string_equal(bytes.subject, whole.subject);
	assert_string_equal(bytes.message_id, whole.message_id);
	assert_int_equal(bytes.done, whole.done);
}

/* From values that do not fit in 998 octets together. */
static void
test_header_from_truncation(void **state)
{
	static const struct {
		size_t		 run1;		/* From 1: run1 x */
		const char	*from2;		/* NULL: none */
		const char	*from3;
		size_t		 want_len;
		const char	*want_tail;	/* last octets of from */
		int		 want_count;
		int		 want_trunc;
	} cases[] = {
		{ 2000, NULL, NULL, 998, "xx", 1, 1 },
		{ 999, NULL, NULL, 998, "xx", 1, 1 },
		{ 998, NULL, NULL, 998, "xx", 1, 0 },
		{ 500, "yyy", NULL, 505, "x, yyy", 2, 0 },
		{ 996, "", NULL, 998, "x, ", 2, 0 },
		{ 993, "abc", NULL, 998, "x, abc", 2, 0 },
		{ 990, "abcdefghij", NULL, 998, "x, abcdef", 2, 1 },
		{ 997, "a", NULL, 998, "x,", 2, 1 },
		{ 998, "a", NULL, 998, "xx", 2, 1 },
		{ 994, "\xe2\x82\xac", NULL, 996, "x, ", 2, 1 },
		{ 993, "\xe2\x82\xac", NULL, 998, "x, \xe2\x82\xac", 2, 0 },
		{ 995, "\xc3\xa9", NULL, 997, "x, ", 2, 1 },
		{ 990, "abcdefghij", "c@d", 998, "x, abcdef", 3, 1 },
		{ 2000, "c@d", "e@f", 998, "xx", 3, 1 },
		{ 100, "c@d", "e@f", 110, "x, c@d, e@f", 3, 0 },
	};
	struct msg_header_scan got;
	char *buf;
	size_t i, n, tail, len;

	buf = malloc(8192);
	assert_non_null(buf);
	for (i = 0; i < NELEM(cases); i++) {
		n = (size_t)snprintf(buf, 8192, "From: ");
		memset(buf + n, 'x', cases[i].run1);
		n += cases[i].run1;
		n += (size_t)snprintf(buf + n, 8192 - n, "\r\n");
		if (cases[i].from2 != NULL)
			n += (size_t)snprintf(buf + n, 8192 - n,
			    "Subject: s\r\nFrom: %s\r\n", cases[i].from2);
		if (cases[i].from3 != NULL)
			n += (size_t)snprintf(buf + n, 8192 - n,
			    "From: %s\r\n", cases[i].from3);
		n += (size_t)snprintf(buf + n, 8192 - n, "\r\n");
		run_hdr(buf, n, n / 3, 0, &got);
		len = strlen(got.from);
		tail = strlen(cases[i].want_tail);
		if (len != cases[i].want_len ||
		    got.from_count != cases[i].want_count ||
		    got.from_truncated != cases[i].want_trunc ||
		    memcmp(got.from + len - tail, cases[i].want_tail,
		    tail) != 0)
			fail_msg("from truncation case %zu: len %zu count %d "
			    "truncated %d", i, len, got.from_count,
			    got.from_truncated);
		assert_string_equal(got.subject,
		    cases[i].from2 != NULL ? "s" : "");
	}
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_parse),
		cmocka_unit_test(test_verb_name),
		cmocka_unit_test(test_path_parse),
		cmocka_unit_test(test_path_lengths),
		cmocka_unit_test(test_path_label_length),
		cmocka_unit_test(test_mail_parse),
		cmocka_unit_test(test_mail_envid_length),
		cmocka_unit_test(test_rcpt_parse),
		cmocka_unit_test(test_rcpt_orcpt_length),
		cmocka_unit_test(test_bdat_parse),
		cmocka_unit_test(test_helo_parse),
		cmocka_unit_test(test_data_scanner),
		cmocka_unit_test(test_data_every_split),
		cmocka_unit_test(test_data_line_limit),
		cmocka_unit_test(test_header_scan),
		cmocka_unit_test(test_header_truncation),
		cmocka_unit_test(test_header_from),
		cmocka_unit_test(test_header_from_bytes),
		cmocka_unit_test(test_header_from_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
