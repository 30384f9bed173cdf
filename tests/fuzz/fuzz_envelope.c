/*
 * fuzz_envelope.c - libFuzzer target for envelope_decode (envelope.c), the
 * parser of the untrusted envelope trailer of every spool file.
 *
 * Input: arbitrary bytes, decoded as one envelope.  Invariants checked:
 *  - decode never crashes, reads out of bounds or leaks, whatever the bytes;
 *  - a refusal leaves a reason and an empty envelope (no recipients);
 *  - an accepted envelope encodes to clean text (printable ASCII lines),
 *    that text decodes again to an equal envelope, and encoding that one
 *    gives the very same text (the encoding is a fixed point).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "strbuf.h"
#include "fuzz_check.h"

static int
same(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	if (a->mid != b->mid || a->icid != b->icid ||
	    a->received != b->received || a->body != b->body ||
	    a->smtputf8 != b->smtputf8 || a->ret != b->ret ||
	    a->msg_size != b->msg_size || a->nrcpts != b->nrcpts ||
	    a->transformed != b->transformed ||
	    strcmp(a->client_ip, b->client_ip) != 0 ||
	    strcmp(a->helo, b->helo) != 0 ||
	    strcmp(a->auth_user, b->auth_user) != 0 ||
	    strcmp(a->from, b->from) != 0 || strcmp(a->envid, b->envid) != 0)
		return 0;
	for (i = 0; i < a->nrcpts; i++)
		if (strcmp(a->rcpts[i].addr, b->rcpts[i].addr) != 0 ||
		    a->rcpts[i].notify != b->rcpts[i].notify ||
		    strcmp(a->rcpts[i].orcpt, b->rcpts[i].orcpt) != 0)
			return 0;
	return 1;
}

static void
check_clean(const struct strbuf *sb)
{
	size_t i;

	CHECK(sb->len > 0 && sb->s[sb->len - 1] == '\n');
	for (i = 0; i < sb->len; i++)
		CHECK(sb->s[i] == '\n' ||
		    (sb->s[i] >= 0x20 && sb->s[i] < 0x7f));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope first, second;
	struct strbuf text = STRBUF_INIT, again = STRBUF_INIT;
	char why[128] = "";

	if (envelope_decode((const char *)data, size, &first, why,
	    sizeof(why)) == -1) {
		CHECK(why[0] != '\0');
		CHECK(first.rcpts == NULL && first.nrcpts == 0);
		return 0;
	}
	CHECK(first.nrcpts > 0 && first.nrcpts <= ENVELOPE_MAX_RCPTS);
	envelope_encode(&first, &text);
	check_clean(&text);
	why[0] = '\0';
	if (envelope_decode(text.s, text.len, &second, why, sizeof(why)) != 0) {
		fprintf(stderr, "re-decode failed: %s\n%s", why, text.s);
		abort();
	}
	CHECK(same(&first, &second));
	envelope_encode(&second, &again);
	CHECK(again.len == text.len && memcmp(again.s, text.s, text.len) == 0);
	envelope_clear(&first);
	envelope_clear(&second);
	strbuf_free(&text);
	strbuf_free(&again);
	return 0;
}
