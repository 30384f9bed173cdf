/*
 * proxy_proto.c - parse the PROXY protocol header, versions 1 and 2
 * (HAProxy's proxy-protocol.txt; see proxy_proto.h for the results).
 *
 * Public: proxy_proto_parse.
 *
 * Version 1 is one line, "PROXY TCP4|TCP6 src dst sport dport" or
 * "PROXY UNKNOWN ..." ending in CRLF, at most 107 octets in all.  Fields
 * are separated by exactly one space; addresses are what inet_pton takes
 * for the family named, ports decimal 0..65535 without leading zeros.
 * Version 2 is the 12-octet signature, version/command, family/transport,
 * a 16-bit length, then that many octets: the address block (12 octets
 * for IPv4, 36 for IPv6, 216 for UNIX) and TLVs (type, 16-bit length,
 * value), which are walked to check their bounds and otherwise skipped.
 * LOCAL ignores the family and the whole block, as the specification asks.
 *
 * Limits and threats: the input is the first bytes of a connection from
 * a trusted proxy, but it is parsed as hostile: nothing is read beyond
 * `len`, every length is checked before use, a v2 header longer than
 * PROXY_PROTO_V2_MAX is refused as soon as its length field is in, and a
 * datagram (UDP) transport is refused on our stream listeners.  MORE is
 * only answered while every octet seen can still be part of a header,
 * so the caller may consume them without eating the client's first bytes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"
#include "util.h"

#define V1_PREFIX	"PROXY "
#define V1_FIELDS_MAX	6	/* PROXY proto src dst sport dport */
#define V2_HEAD		16
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* v2 family/transport octets: address block size, kind, name. */
static const struct v2_family {
	unsigned char		 fam;
	size_t			 need;
	enum proxy_proto_kind	 kind;
	const char		*proto;
} v2_families[] = {
	{ 0x11, 12, PROXY_PROTO_RELAYED, "TCP4" },
	{ 0x21, 36, PROXY_PROTO_RELAYED, "TCP6" },
	{ 0x31, 216, PROXY_PROTO_NOADDR, "UNIX" },
	{ 0x00, 0, PROXY_PROTO_NOADDR, "UNSPEC" },
};

static enum proxy_proto_status
fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum proxy_proto_status
fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return PROXY_PROTO_ERROR;
}

/* ---------------------------------------------------------- version 1 */

/* Split `line` in place at single spaces; -1 on an empty field or more
 * than `max` fields. */
static int
v1_split(char *line, char **f, int max)
{
	int n = 0;
	char *sp;

	for (;;) {
		if (*line == '\0' || *line == ' ' || n == max)
			return -1;
		f[n++] = line;
		if ((sp = strchr(line, ' ')) == NULL)
			return n;
		*sp = '\0';
		line = sp + 1;
	}
}

/* Decimal 0..65535, no sign, no leading zero. */
static int
v1_port(const char *s)
{
	long v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535 ? (int)v : -1;
}

/* One address and port of a TCP4/TCP6 line into `ss`. */
static int
v1_endpoint(int family, const char *addr, const char *port,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	int p = v1_port(port);

	if (p == -1)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? 0 : -1;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)p);
	return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? 0 : -1;
}

/* The line without its CRLF: `n` printable octets. */
static enum proxy_proto_status
v1_line(const char *p, size_t n, struct proxy_proto_hdr *hdr, char *why,
    size_t whylen)
{
	char line[PROXY_PROTO_V1_MAX], *f[V1_FIELDS_MAX];
	int nf, family;

	memcpy(line, p, n);
	line[n] = '\0';
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
	    (line[13] == '\0' || line[13] == ' ')) {
		/* Whatever follows UNKNOWN is to be ignored. */
		hdr->kind = PROXY_PROTO_LOCAL;
		hdr->proto = "UNKNOWN";
		return PROXY_PROTO_DONE;
	}
	nf = v1_split(line, f, V1_FIELDS_MAX);
	if (nf < 2)
		return fail(why, whylen, "v1 header with an empty field or "
		    "too many fields");
	if (strcmp(f[1], "TCP4") == 0) {
		family = AF_INET;
		hdr->proto = "TCP4";
	} else if (strcmp(f[1], "TCP6") == 0) {
		family = AF_INET6;
		hdr->proto = "TCP6";
	} else
		return fail(why, whylen, "v1 header with unknown protocol "
		    "'%.16s' (TCP4, TCP6 or UNKNOWN)", f[1]);
	if (nf != V1_FIELDS_MAX)
		return fail(why, whylen, "v1 %s header needs source, "
		    "destination and both ports, separated by one space",
		    hdr->proto);
	if (v1_endpoint(family, f[2], f[4], &hdr->src) == -1 ||
	    v1_endpoint(family, f[3], f[5], &hdr->dst) == -1)
		return fail(why, whylen, "v1 %s header with a bad address or "
		    "port ('%.46s' '%.46s' '%.6s' '%.6s')", hdr->proto, f[2],
		    f[3], f[4], f[5]);
	hdr->kind = PROXY_PROTO_RELAYED;
	return PROXY_PROTO_DONE;
}

static enum proxy_proto_status
parse_v1(const unsigned char *p, size_t len, struct proxy_proto_hdr *hdr,
    char *why, size_t whylen)
{
	size_t n = len < PROXY_PROTO_V1_MAX ? len : PROXY_PROTO_V1_MAX, i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n')
			break;
		if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n')
			return fail(why, whylen, "v1 header with a CR inside");
		if (p[i] != '\r' && (p[i] < 0x20 || p[i] >= 0x7f))
			return fail(why, whylen, "v1 header with control or "
			    "8-bit octet 0x%02x", p[i]);
	}
	if (i == n) {
		if (n == PROXY_PROTO_V1_MAX)
			return fail(why, whylen, "v1 header without CRLF in "
			    "its first %d octets", PROXY_PROTO_V1_MAX);
		return PROXY_PROTO_MORE;
	}
	if (p[i - 1] != '\r')
		return fail(why, whylen, "v1 header ending in a bare LF");
	hdr->version = 1;
	hdr->len = i + 1;
	return v1_line((const char *)p, i - 1, hdr, why, whylen);
}

/* ---------------------------------------------------------- version 2 */

/* Check that the TLVs fill [off, end) exactly; count them. */
static enum proxy_proto_status
v2_tlvs(const unsigned char *p, size_t off, size_t end,
    struct proxy_proto_hdr *hdr, char *why, size_t whylen)
{
	size_t vlen;

	while (off < end) {
		if (end - off < 3)
			return fail(why, whylen, "v2 header with %zu stray "
			    "octets after its last TLV", end - off);
		vlen = (size_t)p[off + 1] << 8 | p[off + 2];
		if (vlen > end - off - 3)
			return fail(why, whylen, "v2 TLV type 0x%02x of %zu "
			    "octets overruns the header", p[off], vlen);
		off += 3 + vlen;
		hdr->ntlv++;
	}
	return PROXY_PROTO_DONE;
}

/* The address block of a PROXY command into src and dst. */
static void
v2_addresses(const unsigned char *a, unsigned char fam,
    struct proxy_proto_hdr *hdr)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&hdr->src;
	struct sockaddr_in *d4 = (struct sockaddr_in *)&hdr->dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&hdr->src;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&hdr->dst;

	if (fam == 0x11) {
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);	/* network order */
		memcpy(&d4->sin_port, a + 10, 2);
		return;
	}
	s6->sin6_family = d6->sin6_family = AF_INET6;
	memcpy(&s6->sin6_addr, a, 16);
	memcpy(&d6->sin6_addr, a + 16, 16);
	memcpy(&s6->sin6_port, a + 32, 2);
	memcpy(&d6->sin6_port, a + 34, 2);
}

static enum proxy_proto_status
parse_v2(const unsigned char *p, size_t len, struct proxy_proto_hdr *hdr,
    char *why, size_t whylen)
{
	const struct v2_family *f = NULL;
	size_t total, i, blen;

	if ((p[12] >> 4) != 2)
		return fail(why, whylen, "v2 signature with version %d",
		    p[12] >> 4);
	if ((p[12] & 0x0f) > V2_CMD_PROXY)
		return fail(why, whylen, "v2 header with unknown command %d",
		    p[12] & 0x0f);
	blen = (size_t)p[14] << 8 | p[15];
	total = V2_HEAD + blen;
	if (total > PROXY_PROTO_V2_MAX)
		return fail(why, whylen, "v2 header of %zu octets is over the "
		    "limit of %d", total, PROXY_PROTO_V2_MAX);
	if (len < total)
		return PROXY_PROTO_MORE;
	hdr->version = 2;
	hdr->len = total;
	if ((p[12] & 0x0f) == V2_CMD_LOCAL) {
		hdr->kind = PROXY_PROTO_LOCAL;
		hdr->proto = "LOCAL";
		return PROXY_PROTO_DONE;
	}
	for (i = 0; i < sizeof(v2_families) / sizeof(v2_families[0]); i++)
		if (v2_families[i].fam == p[13])
			f = &v2_families[i];
	if (f == NULL)
		return fail(why, whylen, "v2 header with %s 0x%02x",
		    (p[13] & 0x0f) == 2 ? "a datagram (UDP) transport" :
		    "unknown address family/transport", p[13]);
	if (blen < f->need)
		return fail(why, whylen, "v2 %s address block of %zu octets "
		    "(%zu needed)", f->proto, blen, f->need);
	hdr->kind = f->kind;
	hdr->proto = f->proto;
	if (f->kind == PROXY_PROTO_RELAYED)
		v2_addresses(p + V2_HEAD, f->fam, hdr);
	if (f->fam == 0x00)
		return PROXY_PROTO_DONE;	/* UNSPEC: the block is opaque */
	return v2_tlvs(p, V2_HEAD + f->need, total, hdr, why, whylen);
}

/* ------------------------------------------------------------- public */

/* Neither signature: quote the start (printable, at most 16 octets). */
static enum proxy_proto_status
not_proxy(const unsigned char *p, size_t len, char *why, size_t whylen)
{
	char q[17];
	size_t i, n = len < sizeof(q) - 1 ? len : sizeof(q) - 1;

	for (i = 0; i < n; i++)
		q[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	q[n] = '\0';
	return fail(why, whylen, "not a PROXY protocol header (it starts "
	    "'%s'%s; a client bypassing the proxy?)", q, len > n ? "..." : "");
}

/* Parse the start of a proxied connection (see proxy_proto.h). */
enum proxy_proto_status
proxy_proto_parse(const void *buf, size_t len, struct proxy_proto_hdr *hdr,
    char *why, size_t whylen)
{
	const unsigned char *p = buf;
	size_t n;

	memset(hdr, 0, sizeof(*hdr));
	if (whylen > 0)
		why[0] = '\0';
	if (len == 0)
		return PROXY_PROTO_MORE;
	if (p[0] == 'P') {
		n = len < sizeof(V1_PREFIX) - 1 ? len : sizeof(V1_PREFIX) - 1;
		if (memcmp(p, V1_PREFIX, n) != 0)
			return not_proxy(p, len, why, whylen);
		if (n < sizeof(V1_PREFIX) - 1)
			return PROXY_PROTO_MORE;
		return parse_v1(p, len, hdr, why, whylen);
	}
	n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	if (memcmp(p, v2_sig, n) != 0)
		return not_proxy(p, len, why, whylen);
	if (len < V2_HEAD)
		return PROXY_PROTO_MORE;
	return parse_v2(p, len, hdr, why, whylen);
}
