/*
 * fuzz_smtp_path.c - libFuzzer target for smtp_path_parse.
 *
 * Input: byte 0 = flags (allow_null, is_rcpt), the rest = the path text.
 * Checks: replies are static 5xx lines; a parsed path stays within the
 * RFC 5321 limits, is bracketed, and addr = local "@" domain; the address
 * re-wrapped in <> parses back to the same mailbox.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"
#include "fuzz_check.h"

static void
check_reply(const char *reply)
{
	CHECK(reply != NULL);
	CHECK(strncmp(reply, "501 5.", 6) == 0);
	CHECK(strchr(reply, '\r') == NULL && strchr(reply, '\n') == NULL);
}

static void
check_path(const struct smtp_path *p, const char *s, size_t used,
    int allow_null, int is_rcpt)
{
	size_t llen = strlen(p->local), dlen = strlen(p->domain), i;
	int high = 0;

	CHECK(used >= 2 && s[0] == '<' && s[used - 1] == '>');
	CHECK(used <= SMTP_PATH_MAX);
	CHECK(llen <= SMTP_LOCAL_MAX && dlen <= SMTP_DOMAIN_MAX);
	CHECK(strlen(p->addr) <= SMTP_ADDR_MAX);
	for (i = 0; p->addr[i] != '\0'; i++)
		high |= (unsigned char)p->addr[i] >= 0x80;
	CHECK(!high || p->utf8);
	if (p->addr[0] == '\0') {
		CHECK(allow_null && used == 2 && llen == 0 && dlen == 0);
		return;
	}
	if (dlen == 0) {
		CHECK(is_rcpt && strcmp(p->addr, "postmaster") == 0);
		return;
	}
	CHECK(strlen(p->addr) == llen + 1 + dlen);
	CHECK(memcmp(p->addr, p->local, llen) == 0);
	CHECK(p->addr[llen] == '@');
	CHECK(strcmp(p->addr + llen + 1, p->domain) == 0);
}

/* "<" addr ">" must parse to the same mailbox. */
static void
check_reparse(const struct smtp_path *p, int is_rcpt)
{
	char buf[SMTP_ADDR_MAX + 3];
	struct smtp_path again;
	const char *reply;
	size_t n = strlen(p->addr), used;

	if (n == 0)
		return;
	buf[0] = '<';
	memcpy(buf + 1, p->addr, n);
	buf[n + 1] = '>';
	CHECK(smtp_path_parse(buf, n + 2, 0, is_rcpt, &again, &used,
	    &reply) == 0);
	CHECK(used == n + 2);
	CHECK(strcmp(again.addr, p->addr) == 0);
	CHECK(strcmp(again.local, p->local) == 0);
	CHECK(strcmp(again.domain, p->domain) == 0);
	CHECK(again.utf8 <= p->utf8);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path path;
	const char *s, *reply;
	size_t len, used;
	int allow_null, is_rcpt;

	if (size < 1)
		return 0;
	allow_null = data[0] & 1;
	is_rcpt = (data[0] >> 1) & 1;
	s = (const char *)data + 1;
	len = size - 1;
	reply = NULL;
	if (smtp_path_parse(s, len, allow_null, is_rcpt, &path, &used,
	    &reply) == -1) {
		check_reply(reply);
		return 0;
	}
	CHECK(used <= len);
	check_path(&path, s, used, allow_null, is_rcpt);
	check_reparse(&path, is_rcpt);
	return 0;
}
