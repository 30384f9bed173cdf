/*
 * fuzz_http_json.c - libFuzzer target for http_json_parse_msg, the JSON
 * body of POST /v1/messages (untrusted client input).
 *
 * Checks: the result is 0 or -1; on -1 the reason is a printable,
 * terminated string and nothing is left allocated; on 0 the bounds of
 * http_json.h hold (1 to HTTP_JSON_RCPTS_MAX recipients, at most
 * HTTP_JSON_ATTACH_MAX attachments, from present and one line, every
 * address non-empty, bounded and without CR/LF, each attachment named).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "http_json.h"

static void
check_addrs(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		CHECK(v[i] != NULL && v[i][0] != '\0');
		CHECK(strlen(v[i]) <= HTTP_JSON_ADDR_MAX);
		CHECK(strpbrk(v[i], "\r\n") == NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_json_msg m;
	char why[256];
	size_t i, n;

	memset(why, 'x', sizeof(why));
	if (http_json_parse_msg((const char *)data, size, &m, why,
	    sizeof(why)) == -1) {
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		for (i = 0; why[i] != '\0'; i++)
			CHECK((unsigned char)why[i] >= 0x20);
		CHECK(m.from == NULL && m.to == NULL && m.attach == NULL);
		return 0;
	}
	n = m.nto + m.ncc + m.nbcc;
	CHECK(n >= 1 && n <= HTTP_JSON_RCPTS_MAX);
	CHECK(m.nattach <= HTTP_JSON_ATTACH_MAX);
	CHECK(m.from != NULL && strpbrk(m.from, "\r\n") == NULL);
	CHECK(m.text != NULL || m.html != NULL || m.nattach > 0);
	check_addrs(m.to, m.nto);
	check_addrs(m.cc, m.ncc);
	check_addrs(m.bcc, m.nbcc);
	for (i = 0; i < m.nattach; i++)
		CHECK(m.attach[i].filename != NULL &&
		    m.attach[i].filename[0] != '\0');
	http_json_msg_free(&m);
	return 0;
}
