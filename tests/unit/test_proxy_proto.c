/*
 * test_proxy_proto.c - table-driven tests for the PROXY protocol parser:
 * v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL over IPv4, IPv6, AF_UNIX and
 * AF_UNSPEC, TLVs, truncated input (MORE), oversized and malformed
 * headers, bad signatures and lengths; that every strict prefix of a
 * whole header is MORE (so a caller may consume what it has), and that
 * the reason buffer is always terminated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "netaddr.h"
#include "proxy_proto.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
/* A byte string literal and its length (it may hold NUL octets). */
#define B(lit)		lit, sizeof(lit) - 1
#define V2SIG		"\r\n\r\n\0\r\nQUIT\n"
#define V2_TCP4_BLOCK	"\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x00\x19"

#define V1_MAX_UNKNOWN	"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:" \
	"ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
#define V1_MAX_TCP6	"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:" \
	"ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"

struct pcase {
	const char		*name;
	const char		*in;
	size_t			 inlen;
	enum proxy_proto_status	 want_st;
	enum proxy_proto_kind	 want_kind;
	const char		*want_proto;
	size_t			 want_len;
	const char		*want_src;	/* "ip port" or NULL */
	const char		*want_dst;
	size_t			 want_ntlv;
	const char		*want_why;	/* substring, errors only */
};

#define DONE(n, in, k, proto, len, src, dst, ntlv) \
	{ n, B(in), PROXY_PROTO_DONE, k, proto, len, src, dst, ntlv, NULL }
#define MORE(n, in) \
	{ n, B(in), PROXY_PROTO_MORE, 0, NULL, 0, NULL, NULL, 0, NULL }
#define ERR(n, in, why) \
	{ n, B(in), PROXY_PROTO_ERROR, 0, NULL, 0, NULL, NULL, 0, why }

static const struct pcase cases[] = {
	/* ---- version 1 */
	DONE("v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
	    PROXY_PROTO_RELAYED, "TCP4", 44, "192.0.2.1 56324",
	    "198.51.100.2 25", 0),
	DONE("v1 tcp4 then smtp",
	    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO x\r\n",
	    PROXY_PROTO_RELAYED, "TCP4", 44, "192.0.2.1 56324",
	    "198.51.100.2 25", 0),
	DONE("v1 tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
	    PROXY_PROTO_RELAYED, "TCP6", 44, "2001:db8::1 1",
	    "2001:db8::2 65535", 0),
	DONE("v1 tcp6 mapped", "PROXY TCP6 ::ffff:192.0.2.9 ::1 0 25\r\n",
	    PROXY_PROTO_RELAYED, "TCP6", 38, "192.0.2.9 0", "::1 25", 0),
	DONE("v1 unknown", "PROXY UNKNOWN\r\n", PROXY_PROTO_LOCAL, "UNKNOWN",
	    15, NULL, NULL, 0),
	DONE("v1 unknown, rest ignored", V1_MAX_UNKNOWN, PROXY_PROTO_LOCAL,
	    "UNKNOWN", 107, NULL, NULL, 0),
	DONE("v1 longest tcp6", V1_MAX_TCP6, PROXY_PROTO_RELAYED, "TCP6", 104,
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535", 0),
	MORE("nothing", ""),
	MORE("v1 P", "P"),
	MORE("v1 PROXY", "PROXY"),
	MORE("v1 half", "PROXY TCP4 192.0.2.1"),
	MORE("v1 up to CR", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r"),
	ERR("v1 bare LF", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
	    "bare LF"),
	ERR("v1 CR inside", "PROXY TCP4 192.0.2.1\r198.51.100.2 1 2\r\n",
	    "CR inside"),
	ERR("v1 control", "PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
	    "control"),
	ERR("v1 8-bit", "PROXY TCP4 \xc3\xa9", "8-bit"),
	ERR("v1 double space", "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
	    "empty field"),
	ERR("v1 trailing space", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
	    "empty field"),
	ERR("v1 no fields", "PROXY \r\n", "empty field"),
	ERR("v1 port missing", "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
	    "needs source"),
	ERR("v1 too many", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
	    "too many"),
	ERR("v1 tcp4 with v6", "PROXY TCP4 ::1 ::2 1 2\r\n", "bad address"),
	ERR("v1 tcp6 with v4", "PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n",
	    "bad address"),
	ERR("v1 bad octet", "PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
	    "bad address"),
	ERR("v1 port too big", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
	    "bad address or port"),
	ERR("v1 port leading zero", "PROXY TCP4 192.0.2.1 192.0.2.2 025 2\r\n",
	    "bad address or port"),
	ERR("v1 port sign", "PROXY TCP4 192.0.2.1 192.0.2.2 +25 2\r\n",
	    "bad address or port"),
	ERR("v1 udp", "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
	    "unknown protocol 'UDP4'"),
	ERR("v1 UNKNOWNX", "PROXY UNKNOWNX\r\n", "unknown protocol"),
	ERR("v1 lower case", "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
	    "not a PROXY protocol header"),
	ERR("v1 PROXX", "PROXX", "not a PROXY protocol header"),
	ERR("smtp client", "EHLO client.example\r\n",
	    "it starts 'EHLO client.exam'..."),
	ERR("v1 no CRLF in 107", "PROXY UNKNOWN "
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4567890123456789012345678901234567890123456789", "107"),
	ERR("v1 CRLF at 108", "PROXY UNKNOWN "
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4567890123456789012345678901\r\n", "107"),

	/* ---- version 2 */
	DONE("v2 tcp4", V2SIG "\x21\x11\x00\x0c" V2_TCP4_BLOCK,
	    PROXY_PROTO_RELAYED, "TCP4", 28, "192.0.2.1 56324",
	    "198.51.100.2 25", 0),
	DONE("v2 tcp4 then tls", V2SIG "\x21\x11\x00\x0c" V2_TCP4_BLOCK
	    "\x16\x03\x01\x02\x00", PROXY_PROTO_RELAYED, "TCP4", 28,
	    "192.0.2.1 56324", "198.51.100.2 25", 0),
	DONE("v2 tcp6", V2SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02" "\x01\xbb\x02\x4b",
	    PROXY_PROTO_RELAYED, "TCP6", 52, "2001:db8::1 443",
	    "2001:db8::2 587", 0),
	DONE("v2 local", V2SIG "\x20\x00\x00\x00", PROXY_PROTO_LOCAL, "LOCAL",
	    16, NULL, NULL, 0),
	DONE("v2 local ignores its block", V2SIG "\x20\x12\x00\x05" "\xff\xff"
	    "\xff\xff\xff" "EHLO", PROXY_PROTO_LOCAL, "LOCAL", 21, NULL, NULL,
	    0),
	DONE("v2 unspec", V2SIG "\x21\x00\x00\x03" "abc", PROXY_PROTO_NOADDR,
	    "UNSPEC", 19, NULL, NULL, 0),
	DONE("v2 tlvs", V2SIG "\x21\x11\x00\x1c" V2_TCP4_BLOCK
	    "\x04\x00\x03" "pad" "\x01\x00\x04" "smtp" "\x05\x00\x00",
	    PROXY_PROTO_RELAYED, "TCP4", 44, "192.0.2.1 56324",
	    "198.51.100.2 25", 3),
	MORE("v2 first octet", "\r"),
	MORE("v2 signature", V2SIG),
	MORE("v2 15 octets", V2SIG "\x21\x11\x00"),
	MORE("v2 address half", V2SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x01"),
	ERR("v2 bad signature", "\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c",
	    "not a PROXY protocol header"),
	ERR("v2 bad signature early", "\r\n\r\r", "not a PROXY"),
	ERR("v2 version 1", V2SIG "\x11\x11\x00\x0c", "version 1"),
	ERR("v2 command 2 (swaks LOCAL)", V2SIG "\x22\x00\x00\x00",
	    "unknown command 2"),
	ERR("v2 udp4", V2SIG "\x21\x12\x00\x0c" V2_TCP4_BLOCK, "datagram"),
	ERR("v2 unix dgram", V2SIG "\x21\x32\x00\x00", "datagram"),
	ERR("v2 family 4", V2SIG "\x21\x41\x00\x00", "unknown address family"),
	ERR("v2 inet unspec transport", V2SIG "\x21\x10\x00\x0c" V2_TCP4_BLOCK,
	    "unknown address family"),
	ERR("v2 tcp4 block short", V2SIG "\x21\x11\x00\x08"
	    "\xc0\x00\x02\x01\xc6\x33\x64\x02", "8 octets (12 needed)"),
	ERR("v2 tcp6 block short", V2SIG "\x21\x21\x00\x0c" V2_TCP4_BLOCK,
	    "(36 needed)"),
	ERR("v2 stray octets", V2SIG "\x21\x11\x00\x0e" V2_TCP4_BLOCK
	    "\x04\x00", "2 stray octets"),
	ERR("v2 tlv overrun", V2SIG "\x21\x11\x00\x12" V2_TCP4_BLOCK
	    "\x04\x00\x04" "abc", "TLV type 0x04 of 4 octets overruns"),
	ERR("v2 oversized", V2SIG "\x21\x11\xff\xff", "65551 octets is over"),
	ERR("v2 just over", V2SIG "\x21\x11\x08\x01", "2065 octets is over"),
};

static void
endpoint(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[64];

	sockaddr_ip((const struct sockaddr *)ss, ip, sizeof(ip));
	snprintf(buf, len, "%s %d", ip,
	    sockaddr_port((const struct sockaddr *)ss));
}

static void
check_case(const struct pcase *c)
{
	struct proxy_proto_hdr got;
	enum proxy_proto_status got_st;
	char why[256], ep[128];

	got_st = proxy_proto_parse(c->in, c->inlen, &got, why, sizeof(why));
	if (got_st != c->want_st)
		fail_msg("%s: status %d want %d (%s)", c->name, got_st,
		    c->want_st, why);
	if (got_st == PROXY_PROTO_ERROR) {
		if (strstr(why, c->want_why) == NULL)
			fail_msg("%s: why '%s' lacks '%s'", c->name, why,
			    c->want_why);
		return;
	}
	assert_string_equal(why, "");
	if (got_st == PROXY_PROTO_MORE)
		return;
	if (got.kind != c->want_kind || got.len != c->want_len ||
	    got.ntlv != c->want_ntlv || strcmp(got.proto, c->want_proto))
		fail_msg("%s: kind %d len %zu ntlv %zu proto %s", c->name,
		    got.kind, got.len, got.ntlv, got.proto);
	assert_int_equal(got.version, c->in[0] == 'P' ? 1 : 2);
	if (c->want_src == NULL) {
		assert_int_equal(got.src.ss_family, 0);
		return;
	}
	endpoint(&got.src, ep, sizeof(ep));
	assert_string_equal(ep, c->want_src);
	endpoint(&got.dst, ep, sizeof(ep));
	assert_string_equal(ep, c->want_dst);
}

static void
test_table(void **state)
{
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		check_case(&cases[i]);
}

/* Every strict prefix of a whole header is MORE: a caller that consumes
 * what it has on MORE never eats the client's first bytes. */
static void
test_prefixes_are_more(void **state)
{
	struct proxy_proto_hdr whole, got;
	enum proxy_proto_status st;
	char why[256];
	size_t i, k;

	for (i = 0; i < NELEM(cases); i++) {
		if (cases[i].want_st != PROXY_PROTO_DONE)
			continue;
		assert_int_equal(proxy_proto_parse(cases[i].in,
		    cases[i].inlen, &whole, why, sizeof(why)),
		    PROXY_PROTO_DONE);
		for (k = 0; k < whole.len; k++) {
			st = proxy_proto_parse(cases[i].in, k, &got, why,
			    sizeof(why));
			if (st != PROXY_PROTO_MORE)
				fail_msg("%s: prefix %zu of %zu gave %d (%s)",
				    cases[i].name, k, whole.len, st, why);
		}
	}
}

/* v2 over AF_UNIX: 216 octets of addresses, then a TLV. */
static void
test_v2_unix(void **state)
{
	unsigned char in[16 + 216 + 3 + 2 + 4];
	struct proxy_proto_hdr got;
	char why[128];

	memset(in, 'u', sizeof(in));
	memcpy(in, V2SIG, 12);
	in[12] = 0x21;
	in[13] = 0x31;
	in[14] = 0;
	in[15] = 216 + 5;
	memcpy(in + 16 + 216, "\x02\x00\x02" "mx", 5);
	memcpy(in + 16 + 216 + 5, "EHLO", 4);
	assert_int_equal(proxy_proto_parse(in, sizeof(in), &got, why,
	    sizeof(why)), PROXY_PROTO_DONE);
	assert_int_equal(got.kind, PROXY_PROTO_NOADDR);
	assert_string_equal(got.proto, "UNIX");
	assert_int_equal(got.len, 16 + 216 + 5);
	assert_int_equal(got.ntlv, 1);
	in[15] = 200;		/* shorter than a UNIX block */
	assert_int_equal(proxy_proto_parse(in, sizeof(in), &got, why,
	    sizeof(why)), PROXY_PROTO_ERROR);
	assert_non_null(strstr(why, "UNIX address block of 200 octets"));
}

/* The largest v2 header we take, with TLVs filling it. */
static void
test_v2_limit(void **state)
{
	size_t blen = PROXY_PROTO_V2_MAX - 16, off;
	unsigned char *in = calloc(1, PROXY_PROTO_V2_MAX);
	struct proxy_proto_hdr got;
	char why[128];

	assert_non_null(in);
	memcpy(in, V2SIG, 12);
	in[12] = 0x21;
	in[13] = 0x11;
	in[14] = (unsigned char)(blen >> 8);
	in[15] = (unsigned char)blen;
	memcpy(in + 16, V2_TCP4_BLOCK, 12);
	off = 28;
	in[off] = 0x04;		/* one NOOP TLV to the end */
	in[off + 1] = (unsigned char)((PROXY_PROTO_V2_MAX - off - 3) >> 8);
	in[off + 2] = (unsigned char)(PROXY_PROTO_V2_MAX - off - 3);
	assert_int_equal(proxy_proto_parse(in, PROXY_PROTO_V2_MAX, &got, why,
	    sizeof(why)), PROXY_PROTO_DONE);
	assert_int_equal(got.len, PROXY_PROTO_V2_MAX);
	assert_int_equal(got.ntlv, 1);
	free(in);
}

/* A reason that does not fit is cut, still terminated; no buffer at all
 * is fine too. */
static void
test_small_why(void **state)
{
	struct proxy_proto_hdr got;
	char why[8];

	memset(why, 'x', sizeof(why));
	assert_int_equal(proxy_proto_parse(B("EHLO there\r\n"), &got, why,
	    sizeof(why)), PROXY_PROTO_ERROR);
	assert_non_null(memchr(why, '\0', sizeof(why)));
	assert_int_equal(proxy_proto_parse(B("EHLO there\r\n"), &got, NULL, 0),
	    PROXY_PROTO_ERROR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_prefixes_are_more),
		cmocka_unit_test(test_v2_unix),
		cmocka_unit_test(test_v2_limit),
		cmocka_unit_test(test_small_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
