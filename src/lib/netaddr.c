/*
 * netaddr.c - CIDR parsing and matching, socket address formatting.
 * Pure functions on untrusted text (config) and kernel addresses.
 * IPv4-mapped IPv6 clients (::ffff:a.b.c.d) match IPv4 networks.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "util.h"

static const uint8_t v4mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

int
cidr_parse(const char *text, struct cidr *c)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash;
	char *end;
	long prefix;
	size_t alen;
	int i, max;

	memset(c, 0, sizeof(*c));
	slash = strchr(text, '/');
	alen = slash ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0' || prefix < 0 || prefix > max)
			return -1;
	} else
		prefix = max;
	c->prefix = (int)prefix;
	/* Host bits must be zero: "10.0.0.1/8" is almost always a typo. */
	for (i = 0; i < max / 8; i++) {
		int bits = (int)prefix - i * 8;
		uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 :
		    (uint8_t)(0xff << (8 - bits));
		if (c->addr[i] & ~mask)
			return -1;
	}
	inet_ntop(c->family, c->addr, addr, INET6_ADDRSTRLEN);
	snprintf(c->text, sizeof(c->text), "%.46s/%d", addr, c->prefix);
	return 0;
}

static int
prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;

	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		if (c->family != AF_INET)
			return 0;
		return prefix_equal((const uint8_t *)&s4->sin_addr, c->addr,
		    c->prefix);
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)(const void *)sa;
	if (c->family == AF_INET6)
		return prefix_equal(s6->sin6_addr.s6_addr, c->addr, c->prefix);
	if (memcmp(s6->sin6_addr.s6_addr, v4mapped, 12) == 0)
		return prefix_equal(s6->sin6_addr.s6_addr + 12, c->addr,
		    c->prefix);
	return 0;
}

const char *
sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, buf, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (memcmp(s6->sin6_addr.s6_addr, v4mapped, 12) == 0)
			inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, buf,
			    (socklen_t)len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	} else
		bstrlcpy(buf, "unknown", len);
	return buf;
}

int
sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

int
sockaddr_parse(const char *addr, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (port < 0 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}
