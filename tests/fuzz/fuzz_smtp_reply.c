/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP reply parser and the
 * EHLO extension parser (smtp_reply.h): what a hostile server sends us.
 *
 * The input is a byte stream of replies.  It is parsed as a stream, once
 * in one piece per feed call and once in pieces whose sizes come from the
 * input itself; both runs must give the same replies and the same end
 * state (split independence).  Checks: codes in 200..559 and equal on all
 * lines, line and count limits, text free of control characters but HTAB,
 * enhanced code well formed and of the reply's class, EHLO fields bounded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "strbuf.h"
#include "fuzz_check.h"

#define MAX_REPLIES	64

struct run {
	int	codes[MAX_REPLIES];
	size_t	nlines[MAX_REPLIES];
	size_t	textlen[MAX_REPLIES];
	size_t	n;
	int	status;		/* final */
	size_t	consumed;
};

static void
check_reply(const struct smtp_reply *r)
{
	struct smtp_ehlo e;
	struct strbuf sb = STRBUF_INIT;
	const char *params;
	size_t i, k, elen;

	CHECK(r->code >= 200 && r->code <= 559);
	CHECK(r->code % 100 / 10 <= 5);
	CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX);
	for (i = 0; i < r->nlines; i++) {
		CHECK(strlen(r->lines[i]) <= SMTP_REPLY_LINE_MAX - 5);
		for (k = 0; r->lines[i][k] != '\0'; k++)
			CHECK((unsigned char)r->lines[i][k] >= 0x20 ?
			    r->lines[i][k] != 0x7f : r->lines[i][k] == '\t');
		(void)smtp_reply_text(r, i);
	}
	elen = strlen(r->enhanced);
	if (elen > 0) {
		CHECK(smtp_enhanced_code(r->enhanced, elen) == elen);
		CHECK(r->enhanced[0] - '0' == r->code / 100);
		CHECK(strncmp(r->lines[0], r->enhanced, elen) == 0);
	}
	smtp_reply_format(r, &sb, "\n");
	CHECK(sb.len >= 3 * r->nlines);
	strbuf_free(&sb);

	smtp_ehlo_parse(r, &e);
	CHECK(strlen(e.domain) < sizeof(e.domain));
	CHECK(strlen(e.auth_mechs) < sizeof(e.auth_mechs));
	CHECK((e.auth != 0) <= ((e.ext & SMTP_EXT_AUTH) != 0));
	CHECK(e.size == 0 || (e.ext & SMTP_EXT_SIZE));
	CHECK(((e.ext & SMTP_EXT_STARTTLS) != 0) ==
	    smtp_ehlo_has(r, "STARTTLS", NULL));
	if (smtp_ehlo_has(r, "SIZE", &params))
		CHECK(params != NULL);
}

/* Parse data[0..len) as a stream; piece sizes from `sizes` (cycled), or
 * everything at once when nsizes == 0. */
static void
parse_stream(const uint8_t *data, size_t len, const uint8_t *sizes,
    size_t nsizes, struct run *out)
{
	struct smtp_reply_parser p;
	struct smtp_reply r;
	size_t off = 0, piece, used, si = 0;
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	memset(out, 0, sizeof(*out));
	smtp_reply_parser_init(&p);
	while (off < len) {
		piece = len - off;
		if (nsizes > 0) {
			size_t want = (size_t)sizes[si++ % nsizes] % 17 + 1;

			if (want < piece)
				piece = want;
		}
		memset(&r, 0, sizeof(r));
		st = smtp_reply_feed(&p, (const char *)data + off, piece,
		    &used, &r);
		CHECK(used <= piece);
		if (st == SMTP_REPLY_ERROR) {
			CHECK(smtp_reply_error(&p) != NULL);
			off += used;
			break;
		}
		CHECK(smtp_reply_error(&p) == NULL);
		CHECK(smtp_reply_pending(&p) < SMTP_REPLY_LINE_MAX);
		if (st == SMTP_REPLY_MORE)
			CHECK(used == piece);
		else {
			CHECK(used > 0 && data[off + used - 1] == '\n');
			check_reply(&r);
			if (out->n < MAX_REPLIES) {
				out->codes[out->n] = r.code;
				out->nlines[out->n] = r.nlines;
				out->textlen[out->n] = strlen(r.lines[0]);
			}
			out->n++;
			smtp_reply_free(&r);
		}
		off += used;
	}
	out->status = st;
	/* an error is sticky */
	if (st == SMTP_REPLY_ERROR)
		CHECK(smtp_reply_feed(&p, "250 ok\r\n", 8, &used, &r) ==
		    SMTP_REPLY_ERROR);
	smtp_reply_parser_free(&p);
	out->consumed = off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a, b;
	struct smtp_reply r;
	size_t used, nsizes;
	const char *err;
	size_t i, m;

	/* up to 8 leading bytes give the piece sizes for the second run */
	nsizes = size > 0 ? data[0] % 9 : 0;
	if (nsizes + 1 > size)
		nsizes = 0;
	parse_stream(data, size, NULL, 0, &a);
	parse_stream(data, size, nsizes ? data + 1 : NULL, nsizes, &b);
	CHECK(a.n == b.n);
	CHECK(a.status == b.status);
	m = a.n < MAX_REPLIES ? a.n : MAX_REPLIES;
	for (i = 0; i < m; i++) {
		CHECK(a.codes[i] == b.codes[i]);
		CHECK(a.nlines[i] == b.nlines[i]);
		CHECK(a.textlen[i] == b.textlen[i]);
	}
	/* one-shot agrees with the first reply of the stream */
	memset(&r, 0, sizeof(r));
	if (smtp_reply_parse((const char *)data, size, &used, &r, &err) ==
	    SMTP_REPLY_DONE) {
		CHECK(a.n >= 1 && r.code == a.codes[0]);
		smtp_reply_free(&r);
	} else
		CHECK(a.n == 0);
	return 0;
}
