/*
 * test_netaddr.c - table-driven tests for CIDR parsing and matching
 * (host bits, IPv4-mapped IPv6, /0, malformed text) and for the socket
 * address helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "netaddr.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_cidr_parse(void **state)
{
	static const struct {
		const char	*text;
		int		 want_rc;
		int		 want_family;
		int		 want_prefix;
		const char	*want_text;
	} cases[] = {
		{ "10.0.0.0/8", 0, AF_INET, 8, "10.0.0.0/8" },
		{ "127.0.0.0/8", 0, AF_INET, 8, "127.0.0.0/8" },
		{ "192.168.1.0/24", 0, AF_INET, 24, "192.168.1.0/24" },
		{ "192.168.1.128/25", 0, AF_INET, 25, "192.168.1.128/25" },
		{ "192.0.2.7", 0, AF_INET, 32, "192.0.2.7/32" },
		{ "192.0.2.7/32", 0, AF_INET, 32, "192.0.2.7/32" },
		{ "0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0/0" },
		{ "::/0", 0, AF_INET6, 0, "::/0" },
		{ "::1/128", 0, AF_INET6, 128, "::1/128" },
		{ "::1", 0, AF_INET6, 128, "::1/128" },
		{ "2001:DB8::/32", 0, AF_INET6, 32, "2001:db8::/32" },
		{ "2001:db8:0:0:0:0:0:0/48", 0, AF_INET6, 48, "2001:db8::/48" },
		{ "::ffff:0:0/96", 0, AF_INET6, 96, "::ffff:0.0.0.0/96" },
		{ "fe80::/10", 0, AF_INET6, 10, "fe80::/10" },
		/* host bits set */
		{ "10.0.0.1/8", -1, 0, 0, NULL },
		{ "192.168.1.128/24", -1, 0, 0, NULL },
		{ "192.168.1.1/31", -1, 0, 0, NULL },
		{ "1.0.0.0/0", -1, 0, 0, NULL },
		{ "::1/64", -1, 0, 0, NULL },
		{ "2001:db8::/16", -1, 0, 0, NULL },
		{ "fec0::/9", -1, 0, 0, NULL },
		/* bad text */
		{ "", -1, 0, 0, NULL },
		{ "/8", -1, 0, 0, NULL },
		{ "10.0.0.0/", -1, 0, 0, NULL },
		{ "10.0.0.0/33", -1, 0, 0, NULL },
		{ "10.0.0.0/-1", -1, 0, 0, NULL },
		{ "10.0.0.0/+8", -1, 0, 0, NULL },
		{ "10.0.0.0/ 8", -1, 0, 0, NULL },
		{ "10.0.0.0/8x", -1, 0, 0, NULL },
		{ "10.0.0.0/8/8", -1, 0, 0, NULL },
		{ "10.0.0/8", -1, 0, 0, NULL },
		{ "256.0.0.0/8", -1, 0, 0, NULL },
		{ " 10.0.0.0/8", -1, 0, 0, NULL },
		{ "::/129", -1, 0, 0, NULL },
		{ "::1::2/128", -1, 0, 0, NULL },
		{ "example.com/8", -1, 0, 0, NULL },
		{ "localhost", -1, 0, 0, NULL },
		{ "10.0.0.0/99999999999999999999", -1, 0, 0, NULL },
		{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc"
		    ":dddd:eeee/128", -1, 0, 0, NULL },
	};
	struct cidr got;
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(cases); i++) {
		got_rc = cidr_parse(cases[i].text, &got);
		if (got_rc != cases[i].want_rc)
			fail_msg("cidr case %zu (%s): rc %d want %d", i,
			    cases[i].text, got_rc, cases[i].want_rc);
		if (got_rc != 0)
			continue;
		assert_int_equal(got.family, cases[i].want_family);
		assert_int_equal(got.prefix, cases[i].want_prefix);
		assert_string_equal(got.text, cases[i].want_text);
	}
}

/* Build a sockaddr for a literal address (no netaddr code involved). */
static void
make_sa(const char *ip, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	s6->sin6_family = AF_INET6;
}

static void
test_cidr_match(void **state)
{
	static const struct {
		const char	*net;
		const char	*addr;
		int		 want;
	} cases[] = {
		{ "10.0.0.0/8", "10.1.2.3", 1 },
		{ "10.0.0.0/8", "10.255.255.255", 1 },
		{ "10.0.0.0/8", "11.0.0.0", 0 },
		{ "10.0.0.0/8", "9.255.255.255", 0 },
		{ "192.168.1.128/25", "192.168.1.128", 1 },
		{ "192.168.1.128/25", "192.168.1.255", 1 },
		{ "192.168.1.128/25", "192.168.1.127", 0 },
		{ "192.0.2.7", "192.0.2.7", 1 },
		{ "192.0.2.7", "192.0.2.6", 0 },
		{ "172.16.0.0/12", "172.31.255.1", 1 },
		{ "172.16.0.0/12", "172.32.0.1", 0 },
		/* /0 matches its whole family */
		{ "0.0.0.0/0", "1.2.3.4", 1 },
		{ "0.0.0.0/0", "255.255.255.255", 1 },
		{ "0.0.0.0/0", "::ffff:1.2.3.4", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		{ "::/0", "2001:db8::1", 1 },
		{ "::/0", "::", 1 },
		{ "::/0", "1.2.3.4", 0 },
		/* IPv4-mapped IPv6 clients match IPv4 networks */
		{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },
		{ "10.0.0.0/8", "::ffff:10.9.8.7", 1 },
		{ "10.0.0.0/8", "::ffff:11.9.8.7", 0 },
		{ "192.0.2.7", "::ffff:192.0.2.7", 1 },
		/* ...but other embeddings do not */
		{ "10.0.0.0/8", "::10.9.8.7", 0 },
		{ "10.0.0.0/8", "64:ff9b::10.9.8.7", 0 },
		{ "10.0.0.0/8", "::fffe:10.9.8.7", 0 },
		/* IPv6 networks */
		{ "::1/128", "::1", 1 },
		{ "::1/128", "::2", 0 },
		{ "::1/128", "127.0.0.1", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "fe80::/10", "febf::1", 1 },
		{ "fe80::/10", "fec0::1", 0 },
		{ "::ffff:0:0/96", "::ffff:10.0.0.1", 1 },
	};
	struct sockaddr_storage ss;
	struct cidr net;
	size_t i;
	int got;

	for (i = 0; i < NELEM(cases); i++) {
		assert_int_equal(cidr_parse(cases[i].net, &net), 0);
		make_sa(cases[i].addr, &ss);
		got = cidr_match(&net, (struct sockaddr *)&ss);
		if (got != cases[i].want)
			fail_msg("match case %zu: %s in %s = %d want %d", i,
			    cases[i].addr, cases[i].net, got, cases[i].want);
	}
}

static void
test_cidr_match_other_family(void **state)
{
	struct sockaddr_storage ss;
	struct cidr net;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(cidr_parse("0.0.0.0/0", &net), 0);
	assert_int_equal(cidr_match(&net, (struct sockaddr *)&ss), 0);
	assert_int_equal(cidr_parse("::/0", &net), 0);
	assert_int_equal(cidr_match(&net, (struct sockaddr *)&ss), 0);
}

static void
test_sockaddr(void **state)
{
	static const struct {
		const char	*addr;
		int		 port;
		int		 want_rc;
		const char	*want_ip;
	} cases[] = {
		{ "127.0.0.1", 25, 0, "127.0.0.1" },
		{ "::1", 587, 0, "::1" },
		{ "::ffff:192.0.2.1", 465, 0, "192.0.2.1" },
		{ "2001:DB8::1", 0, 0, "2001:db8::1" },
		{ "0.0.0.0", 65535, 0, "0.0.0.0" },
		{ "127.0.0.1", 65536, -1, NULL },
		{ "127.0.0.1", -1, -1, NULL },
		{ "localhost", 25, -1, NULL },
		{ "", 25, -1, NULL },
		{ "1.2.3.4:25", 25, -1, NULL },
	};
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[64], tiny[4];
	size_t i;
	int got_rc;

	for (i = 0; i < NELEM(cases); i++) {
		got_rc = sockaddr_parse(cases[i].addr, cases[i].port, &ss,
		    &len);
		if (got_rc != cases[i].want_rc)
			fail_msg("sockaddr case %zu (%s): rc %d", i,
			    cases[i].addr, got_rc);
		if (got_rc != 0)
			continue;
		assert_string_equal(sockaddr_ip((struct sockaddr *)&ss, buf,
		    sizeof(buf)), cases[i].want_ip);
		assert_int_equal(sockaddr_port((struct sockaddr *)&ss),
		    cases[i].port);
		assert_int_equal(len, ss.ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	/* A buffer too small still gives a terminated string. */
	assert_int_equal(sockaddr_parse("::1", 1, &ss, &len), 0);
	memset(tiny, 'z', sizeof(tiny));
	sockaddr_ip((struct sockaddr *)&ss, tiny, sizeof(tiny));
	assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
	ss.ss_family = AF_UNIX;
	assert_string_equal(sockaddr_ip((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "unknown");
	assert_int_equal(sockaddr_port((struct sockaddr *)&ss), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_cidr_match_other_family),
		cmocka_unit_test(test_sockaddr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
