/*
 * netaddr.h - CIDR networks and socket address formatting.  Pure functions.
 */
#ifndef POSTERN_NETADDR_H
#define POSTERN_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int	 family;		/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];		/* network address, host bits zero */
	int	 prefix;		/* 0..32 or 0..128 */
	char	 text[64];		/* canonical "a.b.c.d/n" for logs */
};

/* Parse "10.0.0.0/8", "::1/128" or a bare address (full prefix).
 * Host bits set (e.g. "10.0.0.1/8") are an error.  0 ok, -1 error. */
int	cidr_parse(const char *, struct cidr *);
/* Does the address fall in the network?  IPv4-mapped IPv6 matches IPv4. */
int	cidr_match(const struct cidr *, const struct sockaddr *);
/* "1.2.3.4" / "::1" (IPv4-mapped shown as IPv4) into buf. */
const char *sockaddr_ip(const struct sockaddr *, char *buf, size_t len);
int	sockaddr_port(const struct sockaddr *);
/* Parse a literal address + port into a sockaddr_storage. 0 ok, -1 error. */
int	sockaddr_parse(const char *addr, int port, struct sockaddr_storage *,
	    socklen_t *);

#endif
