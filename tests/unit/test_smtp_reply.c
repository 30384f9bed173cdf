/*
 * test_smtp_reply.c - the SMTP reply parser and the EHLO extension parser:
 * single and multi-line replies fed with every split position (and byte
 * by byte), bad and mismatched codes, overlong lines and too many lines,
 * enhanced status codes, bare LF, sanitising, EHLO keywords.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"
#include "strbuf.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Parse `in` split at `split` (0 = one piece); returns the status and
 * sets *used to the total consumed. */
static enum smtp_reply_status
feed_split(const char *in, size_t len, size_t split, struct smtp_reply *out,
    size_t *used, const char **err)
{
	struct smtp_reply_parser p;
	enum smtp_reply_status st;
	size_t u1 = 0, u2 = 0;

	smtp_reply_parser_init(&p);
	if (split > 0 && split < len) {
		st = smtp_reply_feed(&p, in, split, &u1, out);
		if (st != SMTP_REPLY_MORE) {
			*used = u1;
			*err = smtp_reply_error(&p);
			smtp_reply_parser_free(&p);
			return st;
		}
		assert_int_equal(u1, split);
		st = smtp_reply_feed(&p, in + split, len - split, &u2, out);
	} else
		st = smtp_reply_feed(&p, in, len, &u2, out);
	*used = u1 + u2;
	*err = smtp_reply_error(&p);
	smtp_reply_parser_free(&p);
	return st;
}

struct good_case {
	const char	*in;
	int		 code;
	const char	*enhanced;
	size_t		 nlines;
	const char	*lines[4];
	size_t		 used;		/* 0 = all */
};

static const struct good_case good[] = {
	{ "220 mx.example.com ESMTP\r\n", 220, "", 1,
	    { "mx.example.com ESMTP" }, 0 },
	{ "250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 250, "",
	    3, { "mx.example.com", "PIPELINING", "STARTTLS" }, 0 },
	{ "250 2.0.0 Ok: queued as 12\r\n", 250, "2.0.0", 1,
	    { "2.0.0 Ok: queued as 12" }, 0 },
	{ "550-5.7.1 Relaying\r\n550 5.7.1 denied\r\n", 550, "5.7.1", 2,
	    { "5.7.1 Relaying", "5.7.1 denied" }, 0 },
	/* bare LF tolerated */
	{ "250-a\n250 b\n", 250, "", 2, { "a", "b" }, 0 },
	/* bare code as the last line, empty continuation text */
	{ "250-\r\n250\r\n", 250, "", 2, { "", "" }, 0 },
	{ "354 End data with <CR><LF>.<CR><LF>\r\n", 354, "", 1,
	    { "End data with <CR><LF>.<CR><LF>" }, 0 },
	/* trailing data after the reply is left for the caller */
	{ "220 ready\r\nGARBAGE", 220, "", 1, { "ready" }, 11 },
	{ "250 ok\r\n250 second\r\n", 250, "", 1, { "ok" }, 8 },
	/* enhanced code class must match; subject/detail 1-3 digits */
	{ "451 4.4.2 timeout\r\n", 451, "4.4.2", 1, { "4.4.2 timeout" }, 0 },
	{ "250 5.0.0 odd\r\n", 250, "", 1, { "5.0.0 odd" }, 0 },
	{ "250 2.1234.0 no\r\n", 250, "", 1, { "2.1234.0 no" }, 0 },
	{ "250 2.10.123\r\n", 250, "2.10.123", 1, { "2.10.123" }, 0 },
	{ "250 2.0.0x\r\n", 250, "", 1, { "2.0.0x" }, 0 },
	/* control characters are sanitised, HTAB kept, CR inside too */
	{ "250 a\tb\x01" "c\rd\x7f\r\n", 250, "", 1, { "a\tb?c?d?" }, 0 },
	{ "559 x\r\n", 559, "", 1, { "x" }, 0 },
	{ "200 \r\n", 200, "", 1, { "" }, 0 },
};

static void
test_good_every_split(void **state)
{
	size_t i, k, split, len, used, want_used;
	struct smtp_reply r;
	const char *err;
	enum smtp_reply_status st;

	(void)state;
	for (i = 0; i < NELEM(good); i++) {
		len = strlen(good[i].in);
		want_used = good[i].used ? good[i].used : len;
		for (split = 0; split <= len; split++) {
			memset(&r, 0, sizeof(r));
			st = feed_split(good[i].in, len, split, &r, &used,
			    &err);
			if (st != SMTP_REPLY_DONE)
				fail_msg("case %zu split %zu: status %d (%s)",
				    i, split, st, err ? err : "");
			assert_int_equal(used, want_used);
			assert_int_equal(r.code, good[i].code);
			assert_string_equal(r.enhanced, good[i].enhanced);
			assert_int_equal(r.nlines, good[i].nlines);
			for (k = 0; k < r.nlines; k++)
				assert_string_equal(r.lines[k],
				    good[i].lines[k]);
			smtp_reply_free(&r);
		}
	}
}

/* Byte by byte, several replies in a row through one parser. */
static void
test_bytewise_stream(void **state)
{
	static const char in[] =
	    "220-first\r\n220 second\r\n"
	    "250-x\n250-PIPELINING\r\n250 SIZE 100\r\n"
	    "421 4.4.2 bye\r\n";
	static const int codes[] = { 220, 250, 421 };
	static const size_t nl[] = { 2, 3, 1 };
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t i, used, got = 0;
	enum smtp_reply_status st;

	(void)state;
	smtp_reply_parser_init(&p);
	for (i = 0; i < sizeof(in) - 1; i++) {
		memset(&r, 0, sizeof(r));
		st = smtp_reply_feed(&p, in + i, 1, &used, &r);
		assert_int_equal(used, 1);
		if (st == SMTP_REPLY_DONE) {
			assert_true(got < 3);
			assert_int_equal(r.code, codes[got]);
			assert_int_equal(r.nlines, nl[got]);
			if (got == 2)
				assert_string_equal(r.enhanced, "4.4.2");
			got++;
			smtp_reply_free(&r);
		} else
			assert_int_equal(st, SMTP_REPLY_MORE);
	}
	assert_int_equal(got, 3);
	assert_int_equal(smtp_reply_pending(&p), 0);
	smtp_reply_parser_free(&p);
}

static const struct {
	const char	*in;
	const char	*err_part;
} bad[] = {
	{ "\r\n", "empty" },
	{ "25\r\n", "too short" },
	{ "2\n", "too short" },
	{ "abc hello\r\n", "3-digit" },
	{ "150 x\r\n", "3-digit" },
	{ "650 x\r\n", "3-digit" },
	{ "260 x\r\n", "3-digit" },
	{ "25x x\r\n", "3-digit" },
	{ "2500 x\r\n", "space or hyphen" },
	{ "250x\r\n", "space or hyphen" },
	{ "250_x\r\n", "space or hyphen" },
	{ "250-a\r\n251 b\r\n", "changes" },
	{ "250-a\r\n550-b\r\n250 c\r\n", "changes" },
	{ "250-a\r\nhello\r\n", "3-digit" },
	{ "HTTP/1.1 400 Bad Request\r\n", "3-digit" },
	{ "\x16\x03\x01\x02\x01\n", "3-digit" },
	{ " 250 x\r\n", "3-digit" },
};

static void
test_bad_every_split(void **state)
{
	size_t i, split, len, used;
	struct smtp_reply r;
	const char *err;
	enum smtp_reply_status st;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		len = strlen(bad[i].in);
		for (split = 0; split <= len; split++) {
			memset(&r, 0, sizeof(r));
			st = feed_split(bad[i].in, len, split, &r, &used,
			    &err);
			if (st != SMTP_REPLY_ERROR)
				fail_msg("bad case %zu split %zu: status %d",
				    i, split, st);
			assert_non_null(err);
			if (strstr(err, bad[i].err_part) == NULL)
				fail_msg("bad case %zu: '%s' lacks '%s'", i,
				    err, bad[i].err_part);
		}
	}
}

static void
test_error_sticky(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t used;

	(void)state;
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_feed(&p, "xyz\r\n", 5, &used, &r),
	    SMTP_REPLY_ERROR);
	assert_int_equal(smtp_reply_feed(&p, "250 ok\r\n", 8, &used, &r),
	    SMTP_REPLY_ERROR);
	assert_int_equal(used, 0);
	smtp_reply_parser_free(&p);
}

static void
test_incomplete(void **state)
{
	struct smtp_reply r;
	size_t used;
	const char *err;

	(void)state;
	assert_int_equal(smtp_reply_parse("250-a\r\n250", 10, &used, &r, &err),
	    SMTP_REPLY_MORE);
	assert_int_equal(used, 10);
	assert_int_equal(smtp_reply_parse("", 0, &used, &r, &err),
	    SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_parse("250 no end", 10, &used, &r, &err),
	    SMTP_REPLY_MORE);
}

/* Line length limit: SMTP_REPLY_LINE_MAX octets including CRLF is the
 * most accepted; one more is an error, also without any LF at all, and
 * also when the line comes in small pieces. */
static void
test_line_limit(void **state)
{
	size_t n = SMTP_REPLY_LINE_MAX + 10, i, used, total;
	char *buf = malloc(n);
	struct smtp_reply_parser p;
	struct smtp_reply r;
	const char *err;
	enum smtp_reply_status st;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, "250 ", 4);
	memset(buf + 4, 'a', n - 4);
	/* exactly at the limit: 4094 octets + CRLF */
	buf[SMTP_REPLY_LINE_MAX - 2] = '\r';
	buf[SMTP_REPLY_LINE_MAX - 1] = '\n';
	assert_int_equal(smtp_reply_parse(buf, SMTP_REPLY_LINE_MAX, &used, &r,
	    &err), SMTP_REPLY_DONE);
	assert_int_equal(strlen(r.lines[0]), SMTP_REPLY_LINE_MAX - 6);
	smtp_reply_free(&r);
	/* bare LF variant: 4095 + LF */
	buf[SMTP_REPLY_LINE_MAX - 2] = 'a';
	assert_int_equal(smtp_reply_parse(buf, SMTP_REPLY_LINE_MAX, &used, &r,
	    &err), SMTP_REPLY_DONE);
	smtp_reply_free(&r);
	/* one over */
	buf[SMTP_REPLY_LINE_MAX - 1] = '\r';
	buf[SMTP_REPLY_LINE_MAX] = '\n';
	assert_int_equal(smtp_reply_parse(buf, SMTP_REPLY_LINE_MAX + 1, &used,
	    &r, &err), SMTP_REPLY_ERROR);
	assert_non_null(strstr(err, "too long"));
	/* no LF ever, in 7-byte pieces: fails once the limit is passed */
	memset(buf + 4, 'b', n - 4);
	smtp_reply_parser_init(&p);
	st = SMTP_REPLY_MORE;
	for (total = 0, i = 0; i < n && st == SMTP_REPLY_MORE; i += 7) {
		st = smtp_reply_feed(&p, buf + i, i + 7 <= n ? 7 : n - i,
		    &used, &r);
		total += used;
		assert_true(smtp_reply_pending(&p) < SMTP_REPLY_LINE_MAX);
	}
	assert_int_equal(st, SMTP_REPLY_ERROR);
	assert_true(total <= SMTP_REPLY_LINE_MAX);
	smtp_reply_parser_free(&p);
	free(buf);
}

static void
test_lines_limit(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct smtp_reply r;
	size_t used, i;
	const char *err;

	(void)state;
	for (i = 0; i + 1 < SMTP_REPLY_LINES_MAX; i++)
		strbuf_puts(&sb, "250-x\r\n");
	strbuf_puts(&sb, "250 last\r\n");
	assert_int_equal(smtp_reply_parse(sb.s, sb.len, &used, &r, &err),
	    SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);
	smtp_reply_free(&r);
	strbuf_reset(&sb);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		strbuf_puts(&sb, "250-x\r\n");
	strbuf_puts(&sb, "250 last\r\n");
	assert_int_equal(smtp_reply_parse(sb.s, sb.len, &used, &r, &err),
	    SMTP_REPLY_ERROR);
	assert_non_null(strstr(err, "too many lines"));
	strbuf_free(&sb);
}

static void
test_enhanced_code(void **state)
{
	static const struct {
		const char	*s;
		size_t		 want;
	} c[] = {
		{ "2.0.0", 5 }, { "2.0.0 ok", 5 }, { "5.7.1\tx", 5 },
		{ "4.123.456 x", 9 }, { "3.0.0", 0 }, { "2.0", 0 },
		{ "2..0", 0 }, { "2.0.", 0 }, { "2.0.0.0", 0 }, { "2.0.0a", 0 },
		{ "2.1000.0", 0 }, { "2.0.1000", 0 }, { "x.0.0", 0 }, { "", 0 },
		{ "2.a.0", 0 }, { "22.0.0", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++)
		if (smtp_enhanced_code(c[i].s, strlen(c[i].s)) != c[i].want)
			fail_msg("'%s': want %zu", c[i].s, c[i].want);
}

static void
test_text_and_format(void **state)
{
	static const char in[] = "550-5.7.1 Relaying\r\n550-5.7.1\r\n"
	    "550 denied here\r\n";
	struct smtp_reply r;
	struct strbuf sb = STRBUF_INIT;
	size_t used;
	const char *err;

	(void)state;
	assert_int_equal(smtp_reply_parse(in, sizeof(in) - 1, &used, &r, &err),
	    SMTP_REPLY_DONE);
	assert_string_equal(smtp_reply_text(&r, 0), "Relaying");
	assert_string_equal(smtp_reply_text(&r, 1), "");
	assert_string_equal(smtp_reply_text(&r, 2), "denied here");
	assert_string_equal(smtp_reply_text(&r, 3), "");
	assert_int_equal(smtp_reply_class(&r), 5);
	smtp_reply_format(&r, &sb, "\n");
	assert_string_equal(sb.s, "550-5.7.1 Relaying\n550-5.7.1\n"
	    "550 denied here");
	smtp_reply_free(&r);
	strbuf_reset(&sb);
	assert_int_equal(smtp_reply_parse("250\r\n", 5, &used, &r, &err),
	    SMTP_REPLY_DONE);
	smtp_reply_format(&r, &sb, " / ");
	assert_string_equal(sb.s, "250");
	smtp_reply_free(&r);
	smtp_reply_free(&r);	/* twice is fine */
	strbuf_free(&sb);
}

static void
parse_ehlo(const char *in, struct smtp_reply *r, struct smtp_ehlo *e)
{
	size_t used;
	const char *err;

	memset(r, 0, sizeof(*r));
	if (smtp_reply_parse(in, strlen(in), &used, r, &err) !=
	    SMTP_REPLY_DONE)
		fail_msg("does not parse: %s", err ? err : "incomplete");
	smtp_ehlo_parse(r, e);
}

static void
test_ehlo(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo e;
	const char *params;

	(void)state;
	parse_ehlo("250-mx.example.com Hello client [127.0.0.1]\r\n"
	    "250-PIPELINING\r\n250-SIZE 20971520\r\n250-8BITMIME\r\n"
	    "250-smtputf8\r\n250-STARTTLS\r\n"
	    "250-AUTH PLAIN login CRAM-MD5 GSSAPI\r\n250-AUTH=LOGIN PLAIN\r\n"
	    "250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n"
	    "250-X-UNKNOWN-EXT a b\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250 REQUIRETLS\r\n", &r, &e);
	assert_string_equal(e.domain, "mx.example.com");
	assert_int_equal(e.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	    SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_STARTTLS |
	    SMTP_EXT_AUTH | SMTP_EXT_CHUNKING | SMTP_EXT_BINARYMIME |
	    SMTP_EXT_DSN | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_REQUIRETLS);
	assert_int_equal(e.size, 20971520);
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN |
	    SMTP_AUTH_CRAM_MD5);
	assert_string_equal(e.auth_mechs, "PLAIN LOGIN CRAM-MD5 GSSAPI");
	assert_true(smtp_ehlo_has(&r, "x-unknown-ext", &params));
	assert_string_equal(params, "a b");
	assert_true(smtp_ehlo_has(&r, "STARTTLS", &params));
	assert_string_equal(params, "");
	assert_false(smtp_ehlo_has(&r, "START", NULL));
	assert_false(smtp_ehlo_has(&r, "mx.example.com", NULL));
	smtp_reply_free(&r);

	/* minimal: only the greeting line; SIZE without a number; junk */
	parse_ehlo("250 only.example\r\n", &r, &e);
	assert_string_equal(e.domain, "only.example");
	assert_int_equal(e.ext, 0);
	smtp_reply_free(&r);
	parse_ehlo("250-h\r\n250-SIZE\r\n250-STARTTLSX\r\n250- STARTTLS\r\n"
	    "250-=AUTH\r\n250 SIZE 99999999999999999999999\r\n", &r, &e);
	assert_int_equal(e.ext, SMTP_EXT_SIZE);
	assert_int_equal(e.size, 0);
	smtp_reply_free(&r);
	parse_ehlo("250-h\r\n250 size 12x\r\n", &r, &e);
	assert_int_equal(e.ext, SMTP_EXT_SIZE);
	assert_int_equal(e.size, 12);
	smtp_reply_free(&r);
	/* an empty first line */
	parse_ehlo("250-\r\n250 STARTTLS\r\n", &r, &e);
	assert_string_equal(e.domain, "");
	assert_int_equal(e.ext, SMTP_EXT_STARTTLS);
	smtp_reply_free(&r);
}

static void
test_ehlo_auth_overflow(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct smtp_reply r;
	struct smtp_ehlo e;
	int i;

	(void)state;
	strbuf_puts(&sb, "250-h\r\n250 AUTH");
	for (i = 0; i < 100; i++)
		strbuf_printf(&sb, " MECH-%d", i);
	strbuf_puts(&sb, " PLAIN\r\n");
	parse_ehlo(sb.s, &r, &e);
	assert_true(strlen(e.auth_mechs) < sizeof(e.auth_mechs));
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN);
	/* truncated at a mechanism boundary */
	assert_true(e.auth_mechs[strlen(e.auth_mechs) - 1] != ' ');
	smtp_reply_free(&r);
	strbuf_free(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_every_split),
		cmocka_unit_test(test_bytewise_stream),
		cmocka_unit_test(test_bad_every_split),
		cmocka_unit_test(test_error_sticky),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_lines_limit),
		cmocka_unit_test(test_enhanced_code),
		cmocka_unit_test(test_text_and_format),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_ehlo_auth_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
