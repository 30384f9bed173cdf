/*
 * fuzz_msg_header.c - libFuzzer target for the header scanner.
 *
 * Input: byte 0 = flags (call finish or not), bytes 1-2 = seed for the
 * chunk cuts, the rest = message content.  Checks: one chunk, random
 * chunks and single bytes give the same result; stored values are at most
 * 998 octets, free of control characters and of outer whitespace; without
 * finish, done is set exactly when the content has an empty line.  From:
 * joined values are NUL-terminated within 998 octets, free of control
 * characters, and hold at least the ", " separators unless truncated;
 * no From field means an empty, untruncated value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"
#include "fuzz_check.h"

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
scan(const char *in, size_t len, int chunk, uint32_t seed, int finish,
    struct msg_header_scan *hs)
{
	size_t pos = 0, n;

	msg_header_scan_init(hs);
	while (pos < len) {
		if (chunk == 0)
			n = len - pos;
		else if (chunk == 1)
			n = 1;
		else
			n = next_rand(&seed) % 17;
		if (n > len - pos)
			n = len - pos;
		msg_header_scan_feed(hs, in + pos, n);
		pos += n;
	}
	if (finish)
		msg_header_scan_finish(hs);
}

static void
check_value(const char *v)
{
	size_t n = strlen(v), i;

	CHECK(n <= 998);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)v[i] >= 0x20 && v[i] != 0x7f);
	if (n > 0)
		CHECK(v[0] != ' ' && v[n - 1] != ' ');
}

/* Is there an empty line (LF or CRLF right after a line start)? */
static int
has_empty_line(const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (i > 0 && in[i - 1] != '\n')
			continue;
		if (in[i] == '\n' ||
		    (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
			return 1;
	}
	return 0;
}

static void
check_from(const struct msg_header_scan *hs)
{
	size_t n, i;

	CHECK(memchr(hs->from, '\0', sizeof(hs->from)) != NULL);
	n = strlen(hs->from);
	CHECK(n <= 998);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)hs->from[i] >= 0x20 &&
		    hs->from[i] != 0x7f);
	CHECK(hs->from_count >= 0);
	CHECK(hs->from_truncated == 0 || hs->from_truncated == 1);
	if (hs->from_count == 0)
		CHECK(n == 0 && !hs->from_truncated);
	else if (!hs->from_truncated)
		CHECK(n >= 2 * ((size_t)hs->from_count - 1));
	if (n > 0)
		CHECK(hs->from[0] != ' ');
}

static int
same(const struct msg_header_scan *a, const struct msg_header_scan *b)
{
	return a->done == b->done &&
	    strcmp(a->message_id, b->message_id) == 0 &&
	    strcmp(a->subject, b->subject) == 0 &&
	    strcmp(a->from, b->from) == 0 &&
	    a->from_count == b->from_count &&
	    a->from_truncated == b->from_truncated;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct msg_header_scan whole, split, bytes;
	const char *in;
	size_t len;
	uint32_t seed;
	int finish;

	if (size < 3)
		return 0;
	finish = data[0] & 1;
	seed = ((uint32_t)data[1] << 8 | data[2]) + 1;
	in = (const char *)data + 3;
	len = size - 3;
	scan(in, len, 0, 0, finish, &whole);
	scan(in, len, 2, seed, finish, &split);
	scan(in, len, 1, 0, finish, &bytes);
	CHECK(same(&whole, &split));
	CHECK(same(&whole, &bytes));
	check_value(whole.message_id);
	check_value(whole.subject);
	check_from(&whole);
	if (finish)
		CHECK(whole.done);
	else
		CHECK(whole.done == has_empty_line(in, len));
	return 0;
}
