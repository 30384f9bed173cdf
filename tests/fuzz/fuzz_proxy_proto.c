/*
 * fuzz_proxy_proto.c - libFuzzer target for the PROXY protocol parser
 * (proxy_proto.h): the first bytes a proxy sends on a connection.
 *
 * Checks: the status is one of the three.  DONE: 0 < len <= size and
 * len <= PROXY_PROTO_MAX; v1 is at most 107 octets and ends in CRLF, v2
 * is at least 16; kind and proto agree, a relayed header has IPv4
 * addresses for TCP4 and IPv6 for TCP6; the header alone parses to the
 * same result (what follows it never matters), and the header less its
 * last octet is MORE (the caller's "consume on MORE" is safe).  MORE:
 * fewer than PROXY_PROTO_MAX octets and no reason.  ERROR: a non-empty,
 * terminated reason.  A small, exact-size reason buffer gives the same
 * status and stays terminated.
 */
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"
#include "fuzz_check.h"

#define WHYLEN	256

static void
check_done(const uint8_t *data, const struct proxy_proto_hdr *h)
{
	struct proxy_proto_hdr again;
	char why[WHYLEN];
	int fam = h->src.ss_family;

	CHECK(h->len > 0 && h->len <= PROXY_PROTO_MAX);
	CHECK(h->version == 1 || h->version == 2);
	if (h->version == 1)
		CHECK(h->len <= PROXY_PROTO_V1_MAX &&
		    data[h->len - 2] == '\r' && data[h->len - 1] == '\n');
	else
		CHECK(h->len >= 16);
	CHECK(h->proto != NULL);
	switch (h->kind) {
	case PROXY_PROTO_RELAYED:
		CHECK((strcmp(h->proto, "TCP4") == 0 && fam == AF_INET) ||
		    (strcmp(h->proto, "TCP6") == 0 && fam == AF_INET6));
		CHECK(h->dst.ss_family == fam);
		break;
	case PROXY_PROTO_LOCAL:
		CHECK(strcmp(h->proto, h->version == 1 ? "UNKNOWN" : "LOCAL")
		    == 0 && fam == 0);
		break;
	case PROXY_PROTO_NOADDR:
		CHECK(h->version == 2 && fam == 0);
		CHECK(strcmp(h->proto, "UNIX") == 0 ||
		    strcmp(h->proto, "UNSPEC") == 0);
		break;
	default:
		CHECK(0 && "unknown kind");
	}
	/* the header alone: same answer */
	CHECK(proxy_proto_parse(data, h->len, &again, why, sizeof(why)) ==
	    PROXY_PROTO_DONE);
	CHECK(again.len == h->len && again.kind == h->kind &&
	    again.ntlv == h->ntlv && strcmp(again.proto, h->proto) == 0);
	CHECK(memcmp(&again.src, &h->src, sizeof(h->src)) == 0);
	CHECK(memcmp(&again.dst, &h->dst, sizeof(h->dst)) == 0);
	/* one octet short: not decided yet */
	CHECK(proxy_proto_parse(data, h->len - 1, &again, why, sizeof(why)) ==
	    PROXY_PROTO_MORE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_proto_hdr h, h2;
	enum proxy_proto_status st, st2;
	char why[WHYLEN], *small;
	size_t smalllen = 1 + size % 40;

	memset(&h, 0xa5, sizeof(h));
	memset(why, 0xa5, sizeof(why));
	st = proxy_proto_parse(data, size, &h, why, sizeof(why));
	CHECK(memchr(why, '\0', sizeof(why)) != NULL);
	switch (st) {
	case PROXY_PROTO_DONE:
		CHECK(h.len <= size);
		check_done(data, &h);
		break;
	case PROXY_PROTO_MORE:
		CHECK(size < PROXY_PROTO_MAX);
		CHECK(why[0] == '\0');
		break;
	case PROXY_PROTO_ERROR:
		CHECK(why[0] != '\0');
		break;
	default:
		CHECK(0 && "unknown status");
	}

	small = malloc(smalllen);
	CHECK(small != NULL);
	memset(small, 0x5a, smalllen);
	st2 = proxy_proto_parse(data, size, &h2, small, smalllen);
	CHECK(st2 == st);
	CHECK(memchr(small, '\0', smalllen) != NULL);
	if (st == PROXY_PROTO_DONE)
		CHECK(h2.len == h.len && h2.kind == h.kind);
	free(small);
	return 0;
}
