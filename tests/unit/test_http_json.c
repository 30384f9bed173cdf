/*
 * test_http_json.c - table-driven tests for the JSON message request of
 * the HTTPS API: accepted documents and what they map to (strings or
 * arrays for to/cc/bcc, UTF-8, base64 attachments), and every refusal
 * with its reason: invalid JSON, not an object, duplicate and unknown
 * keys, wrong types, missing from / recipients / content, multi-line
 * values, bad base64, NUL in a string, too many recipients.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http_json.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct jcase {
	const char	*name;
	const char	*in;
	int		 want_rc;
	const char	*want_why;	/* substring, for refusals */
	size_t		 want_nto, want_ncc, want_nbcc, want_nattach;
};

static const struct jcase cases[] = {
	{ "minimal", "{\"from\":\"a@example.org\",\"to\":\"b@example.com\","
	    "\"text\":\"x\"}", 0, NULL, 1, 0, 0, 0 },
	{ "arrays and utf8", "{\"from\":\"Ærø <a@example.org>\",\"to\":["
	    "\"b@example.com\",\"c@example.com\"],\"cc\":[\"d@x.org\"],"
	    "\"bcc\":\"e@x.org\",\"subject\":\"Grüße\",\"html\":\"<p>é</p>\"}",
	    0, NULL, 2, 1, 1, 0 },
	{ "attachment only", "{\"from\":\"a@example.org\",\"bcc\":["
	    "\"b@example.com\"],\"attachments\":[{\"filename\":\"a.txt\","
	    "\"content\":\"aGVsbG8=\"}]}", 0, NULL, 0, 0, 1, 1 },
	{ "truncated", "{\"from\":", -1, "invalid JSON at line 1", 0, 0, 0, 0 },
	{ "trailing comma", "{\"from\":\"a@x.org\",}", -1, "invalid JSON",
	    0, 0, 0, 0 },
	{ "array", "[1]", -1, "must be a JSON object", 0, 0, 0, 0 },
	{ "duplicate", "{\"from\":\"a@x.org\",\"from\":\"b@x.org\"}", -1,
	    "invalid JSON", 0, 0, 0, 0 },
	{ "unknown key", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\",\"text\":"
	    "\"x\",\"reply_to\":\"c\"}", -1, "unknown key 'reply_to'",
	    0, 0, 0, 0 },
	{ "to number", "{\"from\":\"a@x.org\",\"to\":[1],\"text\":\"x\"}", -1,
	    "'to' must be a string or an array of strings", 0, 0, 0, 0 },
	{ "no from", "{\"to\":\"b@x.org\",\"text\":\"x\"}", -1, "'from'",
	    0, 0, 0, 0 },
	{ "no rcpt", "{\"from\":\"a@x.org\",\"text\":\"x\"}", -1,
	    "must name 1 to", 0, 0, 0, 0 },
	{ "no content", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\"}", -1,
	    "give 'text', 'html' or 'attachments'", 0, 0, 0, 0 },
	{ "multi-line address", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\\r\\n"
	    "Bcc: c@x.org\",\"text\":\"x\"}", -1, "multi-line", 0, 0, 0, 0 },
	{ "multi-line subject", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\","
	    "\"subject\":\"a\\nb\",\"text\":\"x\"}", -1, "one line", 0, 0, 0, 0 },
	{ "bad base64", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\","
	    "\"attachments\":[{\"filename\":\"a\",\"content\":\"***\"}]}", -1,
	    "not base64", 0, 0, 0, 0 },
	{ "attachment without name", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\","
	    "\"attachments\":[{\"content\":\"aGk=\"}]}", -1, "needs", 0, 0, 0, 0 },
	{ "nul in string", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\",\"text\":"
	    "\"a\\u0000b\"}", -1, "invalid JSON", 0, 0, 0, 0 },
	{ "subject type", "{\"from\":\"a@x.org\",\"to\":\"b@x.org\","
	    "\"subject\":7,\"text\":\"x\"}", -1, "'subject' must be a string",
	    0, 0, 0, 0 },
};

static void
test_table(void **state)
{
	struct http_json_msg m;
	char why[256];
	size_t i;
	int rc;

	for (i = 0; i < NELEM(cases); i++) {
		const struct jcase *c = &cases[i];

		why[0] = '\0';
		rc = http_json_parse_msg(c->in, strlen(c->in), &m, why,
		    sizeof(why));
		if (rc != c->want_rc)
			fail_msg("%s: rc %d, want %d (%s)", c->name, rc,
			    c->want_rc, why);
		if (rc == -1) {
			if (strstr(why, c->want_why) == NULL)
				fail_msg("%s: why '%s', want '%s'", c->name, why,
				    c->want_why);
			continue;
		}
		assert_int_equal(m.nto, c->want_nto);
		assert_int_equal(m.ncc, c->want_ncc);
		assert_int_equal(m.nbcc, c->want_nbcc);
		assert_int_equal(m.nattach, c->want_nattach);
		http_json_msg_free(&m);
	}
}

static void
test_values(void **state)
{
	const char *in = "{\"from\":\"A <a@x.org>\",\"to\":\"b@x.org\","
	    "\"subject\":\"Grüße\",\"text\":\"t\",\"attachments\":[{"
	    "\"filename\":\"r.bin\",\"content\":\"AAEC/w==\"}]}";
	struct http_json_msg m;
	char why[256];

	assert_int_equal(http_json_parse_msg(in, strlen(in), &m, why,
	    sizeof(why)), 0);
	assert_string_equal(m.from, "A <a@x.org>");
	assert_string_equal(m.to[0], "b@x.org");
	assert_string_equal(m.subject, "Grüße");
	assert_int_equal(m.text_len, 1);
	assert_null(m.html);
	assert_string_equal(m.attach[0].filename, "r.bin");
	assert_int_equal(m.attach[0].len, 4);
	assert_memory_equal(m.attach[0].data, "\x00\x01\x02\xff", 4);
	http_json_msg_free(&m);
	http_json_msg_free(NULL);
}

static void
test_too_many_recipients(void **state)
{
	struct http_json_msg m;
	char why[256];
	char *in = malloc(HTTP_JSON_RCPTS_MAX * 12 + 200);
	size_t i, n = 0;

	n += (size_t)sprintf(in + n, "{\"from\":\"a@x.org\",\"text\":\"x\","
	    "\"to\":[");
	for (i = 0; i <= HTTP_JSON_RCPTS_MAX; i++)
		n += (size_t)sprintf(in + n, "%s\"b%zu@x.o\"", i ? "," : "", i);
	n += (size_t)sprintf(in + n, "]}");
	assert_int_equal(http_json_parse_msg(in, n, &m, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "recipients"));
	free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_too_many_recipients),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
