/*
 * test_msg_prep.c - the header field scanner and the preparation of a
 * message for sending: fields with continuation lines, malformed headers,
 * CRLF normalisation of LF / CR / CRLF, Date and Message-ID added only
 * when missing, Bcc removed (also folded), the envelope from From / To /
 * Cc / Bcc with duplicates dropped, 8-bit and UTF-8 addresses noticed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "msg_prep.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_fields(void **state)
{
	static const char m[] = "Subject: a\r\n b\r\nTo:x\r\n\r\nbody";
	struct strbuf v = STRBUF_INIT;
	struct msg_field f;
	size_t pos = 0;

	(void)state;
	assert_int_equal(msg_field_next(m, strlen(m), &pos, &f), 1);
	assert_true(msg_field_is(m, &f, "subject"));
	assert_int_equal(f.len, 16);
	msg_field_value(m, &f, &v);
	assert_string_equal(v.s, "a b");
	assert_int_equal(msg_field_next(m, strlen(m), &pos, &f), 1);
	assert_true(msg_field_is(m, &f, "To"));
	strbuf_reset(&v);
	msg_field_value(m, &f, &v);
	assert_string_equal(v.s, "x");
	assert_int_equal(msg_field_next(m, strlen(m), &pos, &f), 0);
	assert_int_equal(pos, 22);
	strbuf_free(&v);
}

static void
test_bad_fields(void **state)
{
	static const char *bad[] = { " cont: x\r\n", "no colon\r\n",
	    ": empty name\r\n", "Sp ace: x\r\n", "Na\xc3\xa9: x\r\n",
	    "Name" };
	struct msg_field f;
	size_t i, pos;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		pos = 0;
		assert_int_equal(msg_field_next(bad[i], strlen(bad[i]), &pos,
		    &f), -1);
		assert_int_equal(pos, 0);
	}
}

static void
test_crlf(void **state)
{
	static const struct { const char *in, *want; } c[] = {
		{ "a\nb\n", "a\r\nb\r\n" },
		{ "a\r\nb", "a\r\nb" },
		{ "a\rb\r", "a\r\nb\r\n" },
		{ "\n\r\n\r", "\r\n\r\n\r\n" },
	};
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++) {
		strbuf_reset(&sb);
		msg_prep_crlf(c[i].in, strlen(c[i].in), &sb);
		strbuf_puts(&sb, "");
		assert_string_equal(sb.s, c[i].want);
	}
	strbuf_free(&sb);
}

static void
test_prepare(void **state)
{
	static const char m[] = "From: A <a@example.org>\n"
	    "To: b@example.net, \"C\" <c@example.net>\n"
	    "Cc: B@example.net\nBcc: d@example.net,\n e@example.net\n"
	    "Subject: hi\n\nbody\n";
	static const char *extra[] = { "x@example.net", "d@example.net" };
	static const char *want[] = { "b@example.net", "c@example.net",
	    "d@example.net", "e@example.net", "x@example.net" };
	struct msg_prep p;
	char why[200];
	size_t i;

	(void)state;
	assert_int_equal(msg_prep_run(&p, m, strlen(m), extra, 2, NULL,
	    1767225600, why, sizeof(why)), 0);
	assert_string_equal(p.from, "a@example.org");
	assert_int_equal(p.nrcpts, NELEM(want));
	for (i = 0; i < NELEM(want); i++)
		assert_string_equal(p.rcpts[i], want[i]);
	assert_null(strstr(p.msg.s, "Bcc"));
	assert_null(strstr(p.msg.s, "e@example.net"));
	for (i = 0; i < p.msg.len; i++)
		if (p.msg.s[i] == '\n')
			assert_int_equal(p.msg.s[i - 1], '\r');
	assert_non_null(strstr(p.msg.s, "Subject: hi\r\nDate: Thu, 01 Jan "
	    "2026 00:00:00 +0000\r\nMessage-ID: <"));
	assert_non_null(strstr(p.msg.s, "@example.org>\r\n\r\nbody\r\n"));
	assert_string_equal(p.hdr_from, "A <a@example.org>");
	assert_string_equal(p.hdr_to, "b@example.net, \"C\" <c@example.net>");
	assert_false(p.eightbit);
	msg_prep_free(&p);
}

static void
test_prepare_keeps_date_and_id(void **state)
{
	static const char m[] = "Date: Mon, 1 Jan 2001 00:00:00 +0000\r\n"
	    "Message-ID: <x@y>\r\nTo: j\xc3\xb6@example.net\r\n\r\n\xc3\xa4";
	struct msg_prep p;
	char why[200];

	(void)state;
	assert_int_equal(msg_prep_run(&p, m, strlen(m), NULL, 0, "h.example",
	    0, why, sizeof(why)), 0);
	assert_string_equal(p.msg.s, m);
	assert_null(p.from);
	assert_int_equal(p.nrcpts, 1);
	assert_true(p.eightbit);
	assert_true(p.utf8_addrs);
	msg_prep_free(&p);
}

static void
test_prepare_errors(void **state)
{
	static const struct { const char *m, *why; } c[] = {
		{ "not a header\r\n\r\nbody", "does not start with a header" },
		{ "To: a@b\r\nbroken line\r\n\r\n", "line 2 of the header" },
		{ "To: <unterminated\r\n\r\n", "the To: field does not parse" },
		{ "Cc: @@\r\n\r\n", "the Cc: field does not parse" },
	};
	struct msg_prep p;
	char why[200];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++) {
		assert_int_equal(msg_prep_run(&p, c[i].m, strlen(c[i].m), NULL,
		    0, "h", 0, why, sizeof(why)), -1);
		if (strstr(why, c[i].why) == NULL)
			fail_msg("case %zu: %s", i, why);
		assert_null(p.msg.s);
	}
	/* header only: an empty body is added */
	assert_int_equal(msg_prep_run(&p, "To: a@b.example", 15, NULL, 0, "h",
	    0, why, sizeof(why)), 0);
	assert_non_null(strstr(p.msg.s, "To: a@b.example\r\nDate: "));
	assert_int_equal(memcmp(p.msg.s + p.msg.len - 5, ">\r\n\r\n", 5), 0);
	msg_prep_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_prepare_keeps_date_and_id),
		cmocka_unit_test(test_prepare_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
