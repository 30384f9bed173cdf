/*
 * fuzz_nexthop.c - libFuzzer target for the next-hop parser (nexthop_parse.h):
 * routes.hosts entries from the configuration.
 *
 * The input, NUL-terminated, is the spec.  Checks: 0 or -1 only.  On 0:
 * a valid kind; port 1..65535, or 0 exactly for an LMTP socket; host
 * NUL-terminated and non-empty; for a socket, an absolute path without
 * control characters that fits sun_path and is the spec after "lmtp:";
 * otherwise no brackets, no control characters, `literal` set exactly
 * when inet_pton takes the host, a non-literal host an LDH name of at
 * most 253 characters without a trailing dot, MX lookup only for SMTP to
 * a name; the result written back as a canonical spec parses to the same
 * result.  On -1: why NUL-terminated inside its buffer and non-empty.
 * Either way a second parse with a small, exact-size why buffer gives the
 * same answer.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nexthop_parse.h"
#include "fuzz_check.h"

#define WHYLEN	256

static int
is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

static void
check_ok(const char *spec, const struct nexthop *h)
{
	struct sockaddr_un sun;
	unsigned char a[16];
	size_t n, i, label = 0;
	int v4, v6;

	CHECK(h->kind == NEXTHOP_SMTP || h->kind == NEXTHOP_LMTP_TCP ||
	    h->kind == NEXTHOP_LMTP_UNIX);
	CHECK(memchr(h->host, '\0', sizeof(h->host)) != NULL);
	n = strlen(h->host);
	CHECK(n > 0);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)h->host[i] >= 0x20 &&
		    h->host[i] != 0x7f);
	if (h->kind == NEXTHOP_LMTP_UNIX) {
		CHECK(h->port == 0 && h->mx == 0 && h->literal == 0);
		CHECK(h->host[0] == '/' && h->host[n - 1] != '/');
		CHECK(n < sizeof(sun.sun_path));
		CHECK(strlen(spec) > 5 && strcmp(spec + 5, h->host) == 0);
		return;
	}
	CHECK(h->port >= 1 && h->port <= 65535);
	CHECK(strchr(h->host, '[') == NULL && strchr(h->host, ']') == NULL);
	v4 = inet_pton(AF_INET, h->host, a) == 1;
	v6 = inet_pton(AF_INET6, h->host, a) == 1;
	CHECK(h->literal == (v4 || v6));
	CHECK(h->literal == 0 || h->literal == 1);
	CHECK(h->mx == 0 || h->mx == 1);
	if (h->mx)
		CHECK(h->kind == NEXTHOP_SMTP && !h->literal);
	if (!h->literal) {
		CHECK(n <= 253);
		CHECK(h->host[0] != '.' && h->host[n - 1] != '.');
		CHECK(h->host[0] != '-' && h->host[n - 1] != '-');
		for (i = 0; i <= n; i++) {
			if (i == n || h->host[i] == '.') {
				CHECK(label >= 1 && label <= 63);
				CHECK(h->host[i - 1] != '-');
				label = 0;
				continue;
			}
			CHECK(is_ldh(h->host[i]));
			CHECK(label > 0 || h->host[i] != '-');
			label++;
		}
	}
	/* no ':' after the host part: the default port */
	if (strchr(spec, ':') == NULL)
		CHECK(h->port == NEXTHOP_SMTP_PORT);
}

/* The result as a spec in canonical form; it must parse back the same. */
static void
check_roundtrip(const struct nexthop *h)
{
	struct nexthop again;
	char spec[300 + 16], why[WHYLEN], port[16] = "";
	int bracket, dflt;

	if (h->kind == NEXTHOP_LMTP_UNIX) {
		snprintf(spec, sizeof(spec), "lmtp:%s", h->host);
	} else {
		dflt = h->kind == NEXTHOP_SMTP ? NEXTHOP_SMTP_PORT :
		    NEXTHOP_LMTP_PORT;
		/*
		 * Not expressible: SMTP with MX lookup to the host "lmtp" on
		 * another port ("lmtp:2525" is LMTP to the host "2525"; the
		 * brackets would turn the MX lookup off).
		 */
		if (h->kind == NEXTHOP_SMTP && h->mx && h->port != dflt &&
		    strcasecmp(h->host, "lmtp") == 0)
			return;
		if (h->port != dflt)
			snprintf(port, sizeof(port), ":%d", h->port);
		/* brackets for IPv6 and for an SMTP name without MX lookup */
		bracket = strchr(h->host, ':') != NULL ||
		    (h->kind == NEXTHOP_SMTP && !h->mx && !h->literal);
		snprintf(spec, sizeof(spec), "%s%s%s%s%s",
		    h->kind == NEXTHOP_LMTP_TCP ? "lmtp:" : "",
		    bracket ? "[" : "", h->host, bracket ? "]" : "", port);
	}
	memset(&again, 0x5a, sizeof(again));
	why[0] = '\0';
	if (nexthop_parse(spec, &again, why, sizeof(why)) != 0) {
		fprintf(stderr, "canonical '%s' refused: %s\n", spec, why);
		CHECK(0 && "canonical form refused");
	}
	CHECK(again.kind == h->kind);
	CHECK(strcmp(again.host, h->host) == 0);
	CHECK(again.port == h->port);
	CHECK(again.mx == h->mx);
	CHECK(again.literal == h->literal);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nexthop h, h2;
	char *spec, why[WHYLEN], *small;
	size_t smalllen = 1 + size % 40;
	int r, r2;

	spec = malloc(size + 1);
	small = malloc(smalllen);
	CHECK(spec != NULL && small != NULL);
	memcpy(spec, data, size);
	spec[size] = '\0';

	memset(&h, 0xa5, sizeof(h));
	memset(why, 0xa5, sizeof(why));
	r = nexthop_parse(spec, &h, why, sizeof(why));
	CHECK(r == 0 || r == -1);
	if (r == 0) {
		check_ok(spec, &h);
		check_roundtrip(&h);
	} else {
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		CHECK(why[0] != '\0');
	}

	/* same answer with a small why buffer (exact size for ASan) */
	memset(&h2, 0x5a, sizeof(h2));
	memset(small, 0x5a, smalllen);
	r2 = nexthop_parse(spec, &h2, small, smalllen);
	CHECK(r2 == r);
	if (r == 0) {
		CHECK(h2.kind == h.kind && h2.port == h.port &&
		    h2.mx == h.mx && h2.literal == h.literal);
		CHECK(strcmp(h2.host, h.host) == 0);
	} else
		CHECK(memchr(small, '\0', smalllen) != NULL);

	free(small);
	free(spec);
	return 0;
}
