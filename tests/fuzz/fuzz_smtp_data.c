/*
 * fuzz_smtp_data.c - libFuzzer target for the DATA/BDAT content scanner.
 *
 * Input: byte 0 = flags (normalize, bdat, finish), byte 1 = max_line,
 * bytes 2-3 = seed for the chunk cuts, the rest = content.  The content is
 * scanned three ways (one chunk, random chunks, one byte at a time) and
 * compared with a whole-buffer reference model written independently of
 * the streaming state machine.  Invariants checked:
 *  - every split gives identical output, flags and consumed count;
 *  - end of data is the first <CRLF>.<CRLF> (or ".\r\n" at the start);
 *  - out never holds a CR or LF outside a CRLF pair, nor a line longer
 *    than max_line;
 *  - clean output, dot-stuffed again, scans back to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"
#include "strbuf.h"
#include "fuzz_check.h"

struct result {
	struct strbuf	out;
	size_t		used;
	int		bare;
	int		too_long;
	int		done;
	uint64_t	out_octets;
};

struct settings {
	size_t	max_line;
	int	normalize;
	int	bdat;
	int	finish;
};

static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* chunk = 0: one chunk; 1: one byte at a time; else random sizes. */
static void
scan(const struct settings *st, const char *in, size_t len, int chunk,
    uint32_t seed, struct result *r)
{
	struct smtp_data_scanner ds;
	size_t pos = 0, n, got;

	strbuf_init(&r->out);
	r->used = 0;
	smtp_data_init(&ds, st->max_line, st->normalize, st->bdat);
	while (pos < len && !ds.done) {
		if (chunk == 0)
			n = len - pos;
		else if (chunk == 1)
			n = 1;
		else
			n = next_rand(&seed) % 9;	/* 0 is allowed */
		if (n > len - pos)
			n = len - pos;
		got = smtp_data_feed(&ds, in + pos, n, &r->out);
		CHECK(got <= n);
		CHECK(ds.done || got == n);
		r->used += got;
		pos += n;
	}
	if (ds.done)
		CHECK(smtp_data_feed(&ds, "\r\n.\r\n", 5, &r->out) == 0);
	if (st->finish)
		smtp_data_finish(&ds, &r->out);
	r->bare = ds.bare_seen;
	r->too_long = ds.line_too_long;
	r->done = ds.done;
	r->out_octets = ds.out_octets;
}

/* Reference: append one body octet under the length and refusal rules. */
static void
ref_octet(const struct settings *st, struct result *r, size_t *line_len,
    char c)
{
	if (*line_len >= st->max_line) {
		r->too_long = 1;
		return;
	}
	(*line_len)++;
	if (!r->too_long && (st->normalize || !r->bare))
		strbuf_putc(&r->out, c);
}

static void
ref_eol(const struct settings *st, struct result *r, int bare)
{
	if (bare)
		r->bare = 1;
	if (!r->too_long && (st->normalize || !r->bare))
		strbuf_add(&r->out, "\r\n", 2);
}

/*
 * The reference model works on the whole buffer: first find the end,
 * then split the content into lines at CRLF, bare CR and bare LF.
 */
static void
reference(const struct settings *st, const char *in, size_t len,
    struct result *r)
{
	const char *p;
	size_t end = len, i, j, line_len;

	memset(r, 0, sizeof(*r));
	strbuf_init(&r->out);
	if (!st->bdat) {
		if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
			r->done = 1, end = 0;
		else if ((p = memmem(in, len, "\r\n.\r\n", 5)) != NULL)
			r->done = 1, end = (size_t)(p - in) + 2;
	}
	r->used = r->done ? end + 3 : len;
	for (i = 0; i < end; i = j) {
		j = i;
		if (!st->bdat && in[j] == '.') {
			if (j + 1 >= end) {
				line_len = 0;
				if (st->finish)		/* a last lone dot */
					ref_octet(st, r, &line_len, '.');
				break;			/* or still pending */
			}
			if (in[j + 1] != '\r' && in[j + 1] != '\n')
				j++;			/* unstuff */
			else if (in[j + 1] == '\r' && j + 2 >= end &&
			    !st->finish)
				break;			/* ".\r" still pending */
			/* else a lone "." line: content, dot kept */
		}
		for (line_len = 0; j < end && in[j] != '\r' && in[j] != '\n';
		    j++)
			ref_octet(st, r, &line_len, in[j]);
		if (j == end)
			break;
		if (in[j] == '\n') {
			ref_eol(st, r, 1);
			j++;
		} else if (j + 1 < end && in[j + 1] == '\n') {
			ref_eol(st, r, 0);
			j += 2;
		} else if (j + 1 < end || st->finish) {
			ref_eol(st, r, 1);		/* bare CR */
			j++;
		} else
			break;			/* CR still pending */
	}
	r->out_octets = r->out.len;
}

static int
same(const struct result *a, const struct result *b)
{
	return a->used == b->used && a->bare == b->bare &&
	    a->too_long == b->too_long && a->done == b->done &&
	    a->out_octets == b->out_octets && a->out.len == b->out.len &&
	    (a->out.len == 0 || memcmp(a->out.s, b->out.s, a->out.len) == 0);
}

/* CR and LF only as CRLF pairs; no line over max_line. */
static void
check_output(const struct settings *st, const struct result *r)
{
	size_t i, line = 0;

	CHECK(r->out_octets == r->out.len);
	for (i = 0; i < r->out.len; i++) {
		if (r->out.s[i] == '\r') {
			CHECK(i + 1 < r->out.len && r->out.s[i + 1] == '\n');
			i++;
			line = 0;
		} else {
			CHECK(r->out.s[i] != '\n');
			line++;
			CHECK(line <= st->max_line);
		}
	}
}

/* Clean DATA output, stuffed again and terminated, scans to itself. */
static void
check_roundtrip(const struct settings *st, const struct result *r)
{
	struct settings st2 = *st;
	struct strbuf wire = STRBUF_INIT;
	struct result again;
	size_t i;

	if (r->bare || r->too_long || (!st->bdat && !r->done))
		return;
	st2.finish = 0;
	for (i = 0; i < r->out.len; i++) {
		if (!st->bdat && r->out.s[i] == '.' &&
		    (i == 0 || r->out.s[i - 1] == '\n'))
			strbuf_putc(&wire, '.');
		strbuf_putc(&wire, r->out.s[i]);
	}
	if (!st->bdat)
		strbuf_add(&wire, ".\r\n", 3);
	scan(&st2, wire.s ? wire.s : "", wire.len, 0, 1, &again);
	CHECK(again.used == wire.len);
	CHECK(again.done == !st->bdat);
	CHECK(!again.bare && !again.too_long);
	CHECK(again.out.len == r->out.len);
	CHECK(r->out.len == 0 ||
	    memcmp(again.out.s, r->out.s, r->out.len) == 0);
	strbuf_free(&again.out);
	strbuf_free(&wire);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings st;
	struct result whole, split, bytes, ref;
	const char *in;
	uint32_t seed;
	size_t len;

	if (size < 4)
		return 0;
	st.normalize = data[0] & 1;
	st.bdat = (data[0] >> 1) & 1;
	st.finish = (data[0] >> 2) & 1;
	st.max_line = (data[0] & 0x80) ? 1000 : data[1] % 64;
	seed = ((uint32_t)data[2] << 8 | data[3]) + 1;
	in = (const char *)data + 4;
	len = size - 4;

	scan(&st, in, len, 0, 0, &whole);
	scan(&st, in, len, 2, seed, &split);
	scan(&st, in, len, 1, 0, &bytes);
	reference(&st, in, len, &ref);
	CHECK(same(&whole, &split));
	CHECK(same(&whole, &bytes));
	CHECK(same(&whole, &ref));
	check_output(&st, &whole);
	check_roundtrip(&st, &whole);
	strbuf_free(&whole.out);
	strbuf_free(&split.out);
	strbuf_free(&bytes.out);
	strbuf_free(&ref.out);
	return 0;
}
