/*
 * nexthop_parse.c - parse a route's next hop (see nexthop_parse.h for the forms).
 *
 * Used by conf.c to validate routes.hosts and by outbound delivery to know
 * where to connect.  The text comes from the admin's configuration; it is
 * checked strictly (no guessing at typos) and every failure says what is
 * wrong with which part, quoting at most a short, printable excerpt.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "nexthop_parse.h"
#include "util.h"

#define QUOTE_MAX	64

/* At most QUOTE_MAX bytes of s[0..n) for a message, controls shown as '?'. */
static const char *
quote(const char *s, size_t n, char *buf, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 4 < len && i < QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (i < n && o + 4 <= len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * RFC 1123 host name: LDH labels of 1..63 characters, no label starting
 * or ending with '-', 253 characters in all, the last label not all
 * digits (RFC 3696 2: no all-numeric top-level domain, which also keeps
 * "10.0.0" from passing as a name).  One trailing dot is dropped (*lenp is
 * shortened).
 */
static int
valid_host_name(const char *s, size_t *lenp)
{
	size_t i, label = 0, len = *lenp;
	int digits = 1;

	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			digits = 1;
			continue;
		}
		if (c >= '0' && c <= '9')
			;
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			digits = 0;
		else if (c == '-' && label > 0)
			digits = 0;
		else
			return 0;
		if (++label > 63)
			return 0;
	}
	if (label == 0 || s[len - 1] == '-' || digits)
		return 0;
	*lenp = len;
	return 1;
}

/* "1".."65535", digits only. */
static int
parse_port(const char *s, int *port)
{
	long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return -1;
	}
	if (v < 1)
		return -1;
	*port = (int)v;
	return 0;
}

static int
parse_unix(const char *path, struct nexthop *out, char *why, size_t whylen)
{
	struct sockaddr_un sun;
	size_t i, len = strlen(path);
	char q[QUOTE_MAX + 8];

	for (i = 0; i < len; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f) {
			bsnprintf(why, whylen, "LMTP socket path '%s' contains "
			    "a control character", quote(path, len, q,
			    sizeof(q)));
			return -1;
		}
	if (len < 2 || path[len - 1] == '/') {
		bsnprintf(why, whylen, "LMTP socket path '%s' does not name "
		    "a socket", quote(path, len, q, sizeof(q)));
		return -1;
	}
	if (len >= sizeof(sun.sun_path) || len >= sizeof(out->host)) {
		bsnprintf(why, whylen, "LMTP socket path '%s' is too long "
		    "(at most %zu bytes)", quote(path, len, q, sizeof(q)),
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	out->kind = NEXTHOP_LMTP_UNIX;
	out->port = 0;
	out->mx = 0;
	out->literal = 0;
	memcpy(out->host, path, len + 1);
	return 0;
}

/* The inside of [...]: an address, "IPv6:" address, or a host name. */
static int
parse_bracketed(const char *s, size_t len, struct nexthop *out, char *why,
    size_t whylen)
{
	unsigned char a[16];
	char q[QUOTE_MAX + 8];

	if (len == 0) {
		bsnprintf(why, whylen, "nothing between '[' and ']'");
		return -1;
	}
	if (len >= sizeof(out->host)) {
		bsnprintf(why, whylen, "'[%s]' is too long",
		    quote(s, len, q, sizeof(q)));
		return -1;
	}
	if (len > 5 && ascii_ncasecmp(s, "IPv6:", 5) == 0) {
		memcpy(out->host, s + 5, len - 5);
		out->host[len - 5] = '\0';
		if (inet_pton(AF_INET6, out->host, a) != 1) {
			bsnprintf(why, whylen, "'%s' after 'IPv6:' is not an "
			    "IPv6 address", quote(s + 5, len - 5, q,
			    sizeof(q)));
			return -1;
		}
		out->literal = 1;
		return 0;
	}
	memcpy(out->host, s, len);
	out->host[len] = '\0';
	if (inet_pton(AF_INET, out->host, a) == 1 ||
	    inet_pton(AF_INET6, out->host, a) == 1) {
		out->literal = 1;
		return 0;
	}
	if (memchr(s, ':', len) != NULL) {
		bsnprintf(why, whylen, "'%s' is not an IPv6 address",
		    quote(s, len, q, sizeof(q)));
		return -1;
	}
	if (!valid_host_name(s, &len)) {
		bsnprintf(why, whylen, "'%s' is neither a host name nor an IP "
		    "address", quote(s, len, q, sizeof(q)));
		return -1;
	}
	out->host[len] = '\0';
	return 0;
}

/* host[:port] or [inner][:port]; out->kind and the default port are set. */
static int
parse_hostport(const char *s, struct nexthop *out, char *why, size_t whylen)
{
	unsigned char a[16];
	const char *end, *rest;
	char q[QUOTE_MAX + 8];
	size_t len;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			bsnprintf(why, whylen, "'[' without ']'");
			return -1;
		}
		if (parse_bracketed(s + 1, (size_t)(end - s - 1), out, why,
		    whylen) == -1)
			return -1;
		out->mx = 0;
		rest = end + 1;
		if (*rest != '\0' && *rest != ':') {
			bsnprintf(why, whylen, "unexpected '%s' after ']'",
			    quote(rest, strlen(rest), q, sizeof(q)));
			return -1;
		}
	} else {
		if ((end = strchr(s, ':')) == NULL)
			end = s + strlen(s);
		else if (strchr(end + 1, ':') != NULL) {
			if (inet_pton(AF_INET6, s, a) == 1)
				bsnprintf(why, whylen, "an IPv6 address needs "
				    "brackets: [%s]", quote(s, strlen(s), q,
				    sizeof(q)));
			else
				bsnprintf(why, whylen, "more than one ':' "
				    "outside brackets");
			return -1;
		}
		len = (size_t)(end - s);
		if (len == 0) {
			bsnprintf(why, whylen, "no host name before ':'");
			return -1;
		}
		if (len >= sizeof(out->host)) {
			bsnprintf(why, whylen, "host name '%s' is too long",
			    quote(s, len, q, sizeof(q)));
			return -1;
		}
		memcpy(out->host, s, len);
		out->host[len] = '\0';
		if (inet_pton(AF_INET, out->host, a) == 1) {
			out->literal = 1;
			out->mx = 0;
		} else if (valid_host_name(s, &len)) {
			out->host[len] = '\0';
			out->mx = out->kind == NEXTHOP_SMTP;
		} else {
			bsnprintf(why, whylen, "'%s' is not a valid host name "
			    "(letters, digits and '-' in dot-separated labels)",
			    quote(s, len, q, sizeof(q)));
			return -1;
		}
		rest = end;
	}
	if (*rest == ':' && parse_port(rest + 1, &out->port) == -1) {
		bsnprintf(why, whylen, "port '%s' is not a number from 1 to "
		    "65535", quote(rest + 1, strlen(rest + 1), q, sizeof(q)));
		return -1;
	}
	return 0;
}

int
nexthop_parse(const char *spec, struct nexthop *out, char *why,
    size_t whylen)
{
	const char *p = spec;

	memset(out, 0, sizeof(*out));
	out->kind = NEXTHOP_SMTP;
	out->port = NEXTHOP_SMTP_PORT;
	if (ascii_ncasecmp(p, "lmtp:", 5) == 0) {
		p += 5;
		if (*p == '/')
			return parse_unix(p, out, why, whylen);
		out->kind = NEXTHOP_LMTP_TCP;
		out->port = NEXTHOP_LMTP_PORT;
	}
	if (*p == '\0') {
		bsnprintf(why, whylen, p == spec ? "empty next hop" :
		    "'lmtp:' needs a socket path or a host");
		return -1;
	}
	return parse_hostport(p, out, why, whylen);
}
