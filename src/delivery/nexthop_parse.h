/*
 * nexthop_parse.h - a route's next hop (postern.conf(5), routes.hosts) parsed into
 * what outbound delivery needs: protocol, host or socket path, port, and
 * whether the host's MX records are looked up.  Pure functions.
 *
 * Accepted forms (default port 25 for SMTP, 24 for LMTP):
 *   host, host:port		SMTP to the MX hosts of host (implicit MX
 *				when it has none)
 *   [host], [host]:port	SMTP to host itself, no MX lookup
 *   [192.0.2.1]:port		SMTP to an IPv4 address
 *   [::1]:port, [IPv6:::1]	SMTP to an IPv6 address
 *   192.0.2.1:port		an unbracketed IPv4 address is taken as
 *				the literal it obviously is (no MX lookup)
 *   lmtp:/path/to/socket	LMTP over a UNIX socket (absolute path)
 *   lmtp:host[:port]		LMTP over TCP to host itself (LMTP never
 *   lmtp:[host or address][:port]	uses MX records)
 * Host names are LDH labels of 1..63 characters, 253 in all, the last label
 * not all digits; one trailing dot is allowed and dropped.  IPv6 needs the
 * brackets; scoped addresses (fe80::1%eth0) are not accepted.
 */
#ifndef POSTERN_NEXTHOP_PARSE_H
#define POSTERN_NEXTHOP_PARSE_H

#include <stddef.h>

#define NEXTHOP_SMTP_PORT	25
#define NEXTHOP_LMTP_PORT	24

enum nexthop_kind { NEXTHOP_SMTP, NEXTHOP_LMTP_TCP, NEXTHOP_LMTP_UNIX };

struct nexthop {
	enum nexthop_kind kind;
	/* Host name (no trailing dot) or IP address text without brackets
	 * or "IPv6:"; for NEXTHOP_LMTP_UNIX the socket path, which fits
	 * struct sockaddr_un's sun_path. */
	char	host[256];
	int	port;		/* 1..65535; 0 for NEXTHOP_LMTP_UNIX */
	int	mx;		/* 1: deliver to the MX hosts of host */
	int	literal;	/* host is an IPv4 or IPv6 address */
};

/*
 * Parse a next hop as written in routes.hosts.  0 with *out filled in, or
 * -1 with an admin-readable reason in why (which does not repeat the
 * whole spec) and *out unspecified.
 */
int	nexthop_parse(const char *spec, struct nexthop *out, char *why,
	    size_t whylen);

#endif
