/*
 * fuzz_msg_prep.c - libFuzzer target for the preparation of an untrusted
 * message (msg_prep.c: header field scanner, CRLF normalisation, Bcc
 * removal, envelope from the address fields), which `postern send` runs
 * on a given file and the gateway will run on mail from anyone.
 *
 * Checks: the scanner's fields tile the header section in order, each
 * starting with a name and ':' and within the input; on success the
 * prepared message has only CRLF line ends, no Bcc field, exactly the
 * Date and Message-ID fields it needs, its header section ends with an
 * empty line, and every envelope address is a non-empty string without
 * CR or LF and unique (case-insensitive); on failure a reason is
 * given and nothing is kept.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "msg_prep.h"
#include "util.h"

static void
check_scanner(const char *m, size_t len)
{
	struct msg_field f;
	size_t pos = 0, prev = 0;
	int r;

	while ((r = msg_field_next(m, len, &pos, &f)) == 1) {
		CHECK(f.off == prev);
		CHECK(f.len > f.name_len && f.off + f.len <= len);
		CHECK(f.name_len > 0 && m[f.off + f.name_len] == ':');
		CHECK(f.value_off == f.off + f.name_len + 1);
		CHECK(f.value_off + f.value_len <= f.off + f.len);
		CHECK(pos == f.off + f.len);
		prev = pos;
	}
	CHECK(pos == prev && pos <= len);
}

static void
check_prepared(const struct msg_prep *p)
{
	const char *m = p->msg.s;
	struct msg_field f;
	size_t pos = 0, i, j;
	int dates = 0, ids = 0, r;

	for (i = 0; i < p->msg.len; i++) {
		if (m[i] == '\n')
			CHECK(i > 0 && m[i - 1] == '\r');
		if (m[i] == '\r')
			CHECK(i + 1 < p->msg.len && m[i + 1] == '\n');
	}
	while ((r = msg_field_next(m, p->msg.len, &pos, &f)) == 1) {
		CHECK(!msg_field_is(m, &f, "Bcc"));
		dates += msg_field_is(m, &f, "Date");
		ids += msg_field_is(m, &f, "Message-ID");
	}
	CHECK(r == 0);
	CHECK(dates >= 1 && ids >= 1);
	CHECK(pos + 2 <= p->msg.len && memcmp(m + pos, "\r\n", 2) == 0);
	for (i = 0; i < p->nrcpts; i++) {
		CHECK(p->rcpts[i][0] != '\0');
		CHECK(strpbrk(p->rcpts[i], "\r\n") == NULL);
		for (j = 0; j < i; j++)
			CHECK(ascii_casecmp(p->rcpts[i], p->rcpts[j]) != 0);
	}
	CHECK(p->from == NULL || (p->from[0] != '\0' &&
	    strpbrk(p->from, "\r\n") == NULL));
	CHECK(p->hdr_from != NULL && p->hdr_to != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_prep p;
	char why[256];

	check_scanner((const char *)data, size);
	why[0] = '\0';
	if (msg_prep_run(&p, (const char *)data, size, NULL, 0, NULL,
	    1767225600, why, sizeof(why)) == 0) {
		check_prepared(&p);
		msg_prep_free(&p);
	} else {
		CHECK(why[0] != '\0');
		CHECK(p.msg.s == NULL && p.rcpts == NULL && p.from == NULL);
	}
	return 0;
}
