/*
 * test_msg_build.c - the message builder and the MIME encodings it uses
 * (mime_enc.c): quoted-printable lines and escapes, the choice of
 * 7bit / quoted-printable / base64, RFC 2047 encoded words (never over
 * 75 characters, never cutting UTF-8), RFC 2231 file names with
 * continuations, Content-Type by extension, and the structure of built
 * messages (single part, alternative, mixed; no line over 998 octets,
 * CRLF only, boundaries closed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mime_enc.h"
#include "msg_build.h"
#include "util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
assert_crlf_lines(const char *s, size_t len, size_t max)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n') {
			assert_true(i > 0 && s[i - 1] == '\r');
			col = 0;
			continue;
		}
		if (s[i] == '\r')
			assert_true(i + 1 < len && s[i + 1] == '\n');
		else if (++col > max)
			fail_msg("line over %zu: %.80s", max, s + i - col + 1);
	}
}

static void
test_qp(void **state)
{
	static const struct { const char *in, *want; } c[] = {
		{ "plain\r\n", "plain\r\n" },
		{ "a=b\r\n", "a=3Db\r\n" },
		{ "\xc3\xa4\r\n", "=C3=A4\r\n" },
		{ "trailing \r\nx\t\r\n", "trailing=20\r\nx=09\r\n" },
		{ "no end", "no end\r\n" },
		{ "", "\r\n" },
	};
	struct strbuf sb = STRBUF_INIT;
	char long_line[300];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++) {
		strbuf_reset(&sb);
		mime_enc_qp(c[i].in, strlen(c[i].in), &sb);
		assert_string_equal(sb.s, c[i].want);
	}
	memset(long_line, 'x', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	long_line[100] = '=';
	strbuf_reset(&sb);
	mime_enc_qp(long_line, strlen(long_line), &sb);
	assert_crlf_lines(sb.s, sb.len, 76);
	assert_non_null(strstr(sb.s, "=\r\n"));
	assert_non_null(strstr(sb.s, "=3D"));
	strbuf_free(&sb);
}

static void
test_pick(void **state)
{
	char big[2000];

	(void)state;
	assert_int_equal(mime_enc_pick("hello\r\n", 7, 1), MIME_7BIT);
	assert_int_equal(mime_enc_pick("h\xc3\xa9llo\r\n", 8, 1), MIME_QP);
	assert_int_equal(mime_enc_pick("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 1),
	    MIME_BASE64);
	assert_int_equal(mime_enc_pick("hello", 5, 0), MIME_BASE64);
	memset(big, 'a', sizeof(big));
	assert_int_equal(mime_enc_pick(big, sizeof(big), 1), MIME_QP);
	assert_int_equal(mime_enc_pick("a\0b", 3, 1), MIME_BASE64);
	assert_int_equal(mime_enc_pick("abcd\0efgh", 9, 1), MIME_QP);
}

static void
test_encoded_words(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char subj[400];
	const char *p, *q;
	size_t i;

	(void)state;
	mime_enc_header(&sb, "Subject", "plain ascii");
	assert_string_equal(sb.s, "Subject: plain ascii\r\n");
	for (i = 0; i + 2 < sizeof(subj) - 1; i += 2) {
		subj[i] = (char)0xc3;
		subj[i + 1] = (char)0xa4;
	}
	subj[i] = '\0';
	strbuf_reset(&sb);
	mime_enc_header(&sb, "Subject", subj);
	assert_crlf_lines(sb.s, sb.len, 76);
	/* every word is =?UTF-8?B?...?= of at most 75 characters */
	for (p = sb.s; (p = strstr(p, "=?UTF-8?B?")) != NULL; p = q + 2) {
		q = strstr(p + 10, "?=");
		assert_non_null(q);
		assert_true(q + 2 - p <= 75);
	}
	strbuf_free(&sb);
}

static void
test_addr_header(void **state)
{
	static const char *mb[] = { "plain@example.org",
	    "Smith, John <js@example.org>", "\"Quoted\" <q@example.org>",
	    "J\xc3\xb6rg <j@example.org>", "<bare@example.org>" };
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	mime_enc_addr_header(&sb, "To", mb, NELEM(mb));
	assert_non_null(strstr(sb.s, "plain@example.org, "));
	assert_non_null(strstr(sb.s, "\"Smith, John\" <js@example.org>"));
	assert_non_null(strstr(sb.s, "Quoted <q@example.org>"));
	assert_non_null(strstr(sb.s, "=?UTF-8?B?SsO2cmc=?= <j@example.org>"));
	assert_non_null(strstr(sb.s, "<bare@example.org>"));
	assert_crlf_lines(sb.s, sb.len, 78);
	strbuf_free(&sb);
}

static void
test_param(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char name[200];

	(void)state;
	mime_enc_param(&sb, "filename", "a \"b\".pdf");
	assert_string_equal(sb.s, ";\r\n\tfilename=\"a \\\"b\\\".pdf\"");
	strbuf_reset(&sb);
	mime_enc_param(&sb, "filename", "M\xc3\xa4rz.pdf");
	assert_string_equal(sb.s, ";\r\n\tfilename*=UTF-8''M%C3%A4rz.pdf");
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	name[58] = (char)0xc3;
	name[59] = (char)0xa4;
	strbuf_reset(&sb);
	mime_enc_param(&sb, "filename", name);
	assert_non_null(strstr(sb.s, "filename*0*=UTF-8''"));
	assert_non_null(strstr(sb.s, "filename*1*="));
	assert_null(strstr(sb.s, "%C\r"));
	assert_null(strstr(sb.s, "%\r"));
	assert_crlf_lines(sb.s, sb.len, 78);
	strbuf_free(&sb);
}

static void
test_types(void **state)
{
	(void)state;
	assert_string_equal(mime_enc_type_for_name("r.PDF"), "application/pdf");
	assert_string_equal(mime_enc_type_for_name("a.txt"), "text/plain");
	assert_string_equal(mime_enc_type_for_name("x.jpeg"), "image/jpeg");
	assert_string_equal(mime_enc_type_for_name("noext"),
	    "application/octet-stream");
	assert_string_equal(mime_enc_type_for_name("dir.d/file"),
	    "application/octet-stream");
	assert_string_equal(mime_enc_type_for_name("a.unknownext"),
	    "application/octet-stream");
}

static size_t
count(const char *s, const char *needle)
{
	size_t n = 0;

	for (; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

static void
test_build_shapes(void **state)
{
	static const char *to[] = { "b@example.net" };
	struct msg_build_part att[] = { { "data.bin", "\x01\x02\xff", 3 },
	    { "n.txt", "line\n", 5 } };
	struct msg_build b;
	struct strbuf sb = STRBUF_INIT;
	char why[100];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.from = "a@example.org";
	b.to = to;
	b.nto = 1;
	b.subject = "s";
	b.text = "hi\n";
	b.text_len = 3;
	b.hostname = "example.org";
	b.now = 1767225600;
	assert_int_equal(msg_build_run(&b, &sb, why, sizeof(why)), 0);
	assert_non_null(strstr(sb.s, "Date: Thu, 01 Jan 2026 00:00:00 +0000"
	    "\r\n"));
	assert_non_null(strstr(sb.s, "@example.org>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\nhi\r\n"));
	assert_null(strstr(sb.s, "multipart"));

	b.html = "<p>x</p>";
	b.html_len = 8;
	strbuf_reset(&sb);
	assert_int_equal(msg_build_run(&b, &sb, why, sizeof(why)), 0);
	assert_int_equal(count(sb.s, "multipart/alternative"), 1);
	assert_int_equal(count(sb.s, "Content-Type: text/html"), 1);

	b.attach = att;
	b.nattach = NELEM(att);
	strbuf_reset(&sb);
	assert_int_equal(msg_build_run(&b, &sb, why, sizeof(why)), 0);
	assert_int_equal(count(sb.s, "multipart/mixed"), 1);
	assert_int_equal(count(sb.s, "--=_postern_"), 2 + 1 + 3 + 1);
	assert_non_null(strstr(sb.s, "Content-Type: application/octet-stream;"
	    "\r\n\tname=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n\tfilename=\"data.bin\"\r\n"
	    "\r\nAQL/\r\n"));
	assert_non_null(strstr(sb.s, "Content-Type: text/plain; "
	    "charset=us-ascii;\r\n\tname=\"n.txt\""));
	assert_crlf_lines(sb.s, sb.len, 998);
	assert_null(strstr(sb.s, "Bcc"));
	strbuf_free(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_encoded_words),
		cmocka_unit_test(test_addr_header),
		cmocka_unit_test(test_param),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_build_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
