/*
 * test_dns.c - next-hop resolution (dns_hosts, and dns_mx: the MX names
 * alone) against resolver.local_data
 * on a real libunbound and libevent loop: MX order and randomisation
 * within a preference, implicit MX, null MX (RFC 7505), IP literals,
 * direct hosts, IPv6 before IPv4, the per-host limits, hosts without an
 * address, NXDOMAIN (answered locally under the default "invalid." zone),
 * SERVFAIL, the one deadline, cancelling and shutting down with requests
 * pending; and the reverse lookup still working beside it.  TXT lookups
 * (dns_txt, for DKIM key records): strings joined, several records,
 * NODATA, NXDOMAIN, SERVFAIL, the deadline, cancel; and the TXT rdata
 * parser.
 *
 * No network is needed or used.  dns_init() takes its forwarders from
 * ub_ctx_resolvconf(); this executable defines that function itself, so
 * the resolver forwards every query it cannot answer locally to a fake
 * server on loopback run by the test, which counts the queries and
 * either never answers (as on a machine without a network) or answers
 * SERVFAIL.  Lookups answered from local data must not reach it, which
 * shows that types missing from local data get NODATA locally.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <unbound.h>

#include "conf.h"
#include "dns.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

enum fake_mode { FAKE_SILENT, FAKE_SERVFAIL };

static struct event_base *base;
static struct conf	*conf;
static int		 fake_fd = -1;
static int		 fake_port;
static enum fake_mode	 fake_mode;
static int		 fake_queries;
static struct event	*fake_ev;
static struct event	*limit_ev;
static double		 t0;
static double		 slowest;	/* the slowest local answer seen */
static double		 test_start;

/* See the file comment: the forwarder is the test's fake server. */
int
ub_ctx_resolvconf(struct ub_ctx *ctx, const char *fname)
{
	char fwd[64];
	int r;

	(void)fname;
	if ((r = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0)
		return r;
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", fake_port);
	return ub_ctx_set_fwd(ctx, fwd);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The fake upstream: count, and maybe answer SERVFAIL (header flags QR,
 * RD copied, RA; no records but the question). */
static void
fake_cb(evutil_socket_t fd, short what, void *arg)
{
	unsigned char buf[4096];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
		    &fromlen);
		if (n < 12)
			return;
		fake_queries++;
		if (fake_mode != FAKE_SERVFAIL)
			continue;
		buf[2] = (unsigned char)(0x80 | (buf[2] & 0x01));
		buf[3] = 0x80 | 2;
		buf[6] = buf[7] = buf[8] = buf[9] = buf[10] = buf[11] = 0;
		/* keep the question only: QNAME, QTYPE, QCLASS */
		{
			size_t i = 12;
			while (i < (size_t)n && buf[i] != 0)
				i += (size_t)buf[i] + 1;
			n = (ssize_t)(i + 5 <= (size_t)n ? i + 5 : (size_t)n);
		}
		(void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from,
		    fromlen);
	}
}

static void
limit_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

/* Run the loop for at most `secs` (or until a callback breaks it). */
static void
run_loop(double secs)
{
	struct timeval tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	evtimer_add(limit_ev, &tv);
	event_base_dispatch(base);
	evtimer_del(limit_ev);
}

/* ---- resolver data ------------------------------------------------------ */

static const char *const local_data[] = {
	/* two hosts at 10, one at 20 */
	"partner.example. MX 20 backup.partner.example.",
	"partner.example. MX 10 mx1.partner.example.",
	"partner.example. MX 10 mx2.partner.example.",
	"mx1.partner.example. A 127.0.0.2",
	"mx2.partner.example. A 127.0.0.3",
	"backup.partner.example. A 127.0.0.4",
	"backup.partner.example. AAAA 2001:db8::4",
	"implicit.example. A 127.0.0.5",
	"nomail.example. TXT \\\"v=spf1 -all\\\"",
	"nullmx.example. MX 0 .",
	"mixed.example. MX 0 .",
	"mixed.example. MX 10 mx1.partner.example.",
	"both.example. A 127.0.0.6",
	"both.example. AAAA ::1",
	"v6only.example. AAAA 2001:db8::25",
	/* an MX host with a record, but no address */
	"noaddr.example. MX 10 host.noaddr.example.",
	"host.noaddr.example. MX 10 elsewhere.example.",
	/* an MX host that does not exist (the default zone "invalid.") */
	"nxhost.example. MX 10 mx.nxhost.invalid.",
	/* one MX host answered, one that needs the (fake) network */
	"slow.example. MX 10 mx1.partner.example.",
	"slow.example. MX 20 unknown.upstream.example.",
	"deadhost.example. MX 10 unknown.upstream.example.",
	"servfailhost.example. MX 10 unknown.upstream.example.",
	"dup.example. MX 20 a.dup.example.",
	"dup.example. MX 10 A.Dup.Example.",
	"dup.example. MX 30 b.dup.example.",
	"a.dup.example. A 127.0.0.7",
	"b.dup.example. A 127.0.0.8",
	/* two MX hosts, only the less preferred one has an address */
	"half.example. MX 10 host.noaddr.example.",
	"half.example. MX 20 mx2.partner.example.",
	/* DKIM key records: one record of two strings, as a zone file
	 * gives it; a name with two TXT records */
	"s1._domainkey.dkim.example. IN TXT ( \\\"v=DKIM1; k=rsa; \\\" "
	    "\\\"p=MIIB\\\" )",
	"two.example. TXT \\\"first\\\"",
	"two.example. TXT \\\"second\\\"",
};

/* 20 MX hosts (preferences 20 down to 1), each with an address; one
 * host with 10 IPv4 and 10 IPv6 addresses; one with 3 IPv6 and 10 IPv4. */
static void
add_generated(FILE *fp)
{
	int i;

	for (i = 1; i <= 20; i++) {
		fprintf(fp, "  \"many.example. MX %d m%d.many.example.\",\n",
		    21 - i, i);
		fprintf(fp, "  \"m%d.many.example. A 127.0.1.%d\",\n", i, i);
	}
	for (i = 1; i <= 10; i++) {
		fprintf(fp, "  \"lots.example. A 127.0.2.%d\",\n", i);
		fprintf(fp, "  \"lots.example. AAAA 2001:db8::%d\",\n", i);
		fprintf(fp, "  \"few6.example. A 127.0.3.%d\",\n", i);
	}
	for (i = 1; i <= 3; i++)
		fprintf(fp, "  \"few6.example. AAAA 2001:db8:6::%d\",\n", i);
}

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct conf_errors errs;
	char *text = NULL, why[256];
	size_t textlen = 0, i;
	FILE *fp;

	base = event_base_new();
	assert_non_null(base);
	fake_fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fake_fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fake_fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(getsockname(fake_fd, (struct sockaddr *)&sin, &len),
	    0);
	fake_port = ntohs(sin.sin_port);
	fcntl(fake_fd, F_SETFL, fcntl(fake_fd, F_GETFL) | O_NONBLOCK);
	fake_queries = 0;
	fake_mode = FAKE_SILENT;
	fake_ev = event_new(base, fake_fd, EV_READ | EV_PERSIST, fake_cb, NULL);
	event_add(fake_ev, NULL);
	limit_ev = evtimer_new(base, limit_cb, NULL);

	fp = open_memstream(&text, &textlen);
	fputs("resolver = { local_data = [\n", fp);
	add_generated(fp);
	for (i = 0; i < NELEM(local_data); i++)
		fprintf(fp, "  \"%s\"%s\n", local_data[i],
		    i + 1 < NELEM(local_data) ? "," : "");
	fputs("]; };\n", fp);
	fclose(fp);
	memset(&errs, 0, sizeof(errs));
	conf = conf_load_string(text, "t.conf", "/tmp", &errs);
	free(text);
	assert_non_null(conf);
	assert_int_equal(errs.n, 0);
	conf_errors_free(&errs);
	assert_int_equal(dns_init(base, conf, why, sizeof(why)), 0);
	test_start = now();
	return 0;
}

static int
teardown(void **state)
{
	print_message("  %.1f ms\n", (now() - test_start) * 1000);
	dns_shutdown();
	event_free(limit_ev);
	event_free(fake_ev);
	close(fake_fd);
	fake_fd = -1;
	conf_free(conf);
	event_base_free(base);
	return 0;
}

/* ---- running a lookup --------------------------------------------------- */

struct outcome {
	int		 called;
	enum dns_status	 status;
	char		 why[256];
	struct dns_host	 hosts[DNS_MAX_HOSTS];
	size_t		 nhosts;
	double		 elapsed;
};

static void
hosts_cb(void *arg, const struct dns_hosts *h)
{
	struct outcome *o = arg;

	o->called++;
	o->elapsed = now() - t0;
	o->status = h->status;
	snprintf(o->why, sizeof(o->why), "%s", h->why);
	o->nhosts = h->nhosts;
	if (h->status == DNS_OK) {
		assert_true(h->nhosts >= 1 && h->nhosts <= DNS_MAX_HOSTS);
		memcpy(o->hosts, h->hosts, h->nhosts * sizeof(h->hosts[0]));
	} else {
		assert_int_equal(h->nhosts, 0);
		assert_true(h->why[0] != '\0');
	}
	event_base_loopbreak(base);
}

static void
lookup(struct outcome *o, const char *name, int mx, int port, double timeout)
{
	unsigned long id;

	memset(o, 0, sizeof(*o));
	t0 = now();
	id = dns_hosts(name, mx, port, timeout, hosts_cb, o);
	assert_true(id != 0);
	assert_int_equal(o->called, 0);		/* never from inside */
	run_loop(5.0);
	if (o->called != 1)
		fail_msg("no answer for %s within 5 s", name);
}

/* dns_mx: the MX names only, answered from local data. */
static void
mx_lookup(struct outcome *o, const char *name)
{
	int before = fake_queries;

	memset(o, 0, sizeof(*o));
	t0 = now();
	assert_true(dns_mx(name, 2.0, hosts_cb, o) != 0);
	assert_int_equal(o->called, 0);		/* never from inside */
	run_loop(5.0);
	if (o->called != 1)
		fail_msg("no MX answer for %s within 5 s", name);
	assert_int_equal(fake_queries, before);
}

/* A lookup answered from local data: quick, and nothing sent upstream. */
static void
local_lookup(struct outcome *o, const char *name, int mx, int port)
{
	int before = fake_queries;

	lookup(o, name, mx, port, 2.0);
	if (fake_queries != before)
		fail_msg("%s: %d queries left the resolver", name,
		    fake_queries - before);
	if (o->elapsed > slowest)
		slowest = o->elapsed;
	assert_true(o->elapsed < 0.5);
}

static void
assert_addr(const struct dns_addr *a, const char *ip, int port)
{
	char text[INET6_ADDRSTRLEN];
	const struct sockaddr_in *sin = (const void *)&a->ss;
	const struct sockaddr_in6 *sin6 = (const void *)&a->ss;

	if (a->ss.ss_family == AF_INET) {
		assert_int_equal(a->len, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		assert_int_equal(a->ss.ss_family, AF_INET6);
		assert_int_equal(a->len, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(text, ip);
}

/* ---- tests ---------------------------------------------------------- */

static void
test_mx_order(void **state)
{
	struct outcome o;
	int first1 = 0, first2 = 0, i;

	for (i = 0; i < 50; i++) {
		local_lookup(&o, "partner.example", 1, 25);
		assert_int_equal(o.status, DNS_OK);
		assert_int_equal(o.nhosts, 3);
		assert_int_equal(o.hosts[0].pref, 10);
		assert_int_equal(o.hosts[1].pref, 10);
		assert_int_equal(o.hosts[2].pref, 20);
		assert_string_equal(o.hosts[2].name, "backup.partner.example");
		assert_int_equal(o.hosts[2].naddrs, 2);
		assert_addr(&o.hosts[2].addrs[0], "2001:db8::4", 25);
		assert_addr(&o.hosts[2].addrs[1], "127.0.0.4", 25);
		if (strcmp(o.hosts[0].name, "mx1.partner.example") == 0) {
			first1++;
			assert_string_equal(o.hosts[1].name,
			    "mx2.partner.example");
			assert_addr(&o.hosts[0].addrs[0], "127.0.0.2", 25);
		} else {
			first2++;
			assert_string_equal(o.hosts[0].name,
			    "mx2.partner.example");
			assert_string_equal(o.hosts[1].name,
			    "mx1.partner.example");
			assert_addr(&o.hosts[0].addrs[0], "127.0.0.3", 25);
		}
		assert_int_equal(o.hosts[0].naddrs, 1);
		assert_int_equal(o.hosts[1].naddrs, 1);
	}
	print_message("partner.example: mx1 first %d, mx2 first %d of 50\n",
	    first1, first2);
	assert_true(first1 > 0 && first2 > 0);
	/* a trailing dot is fine */
	local_lookup(&o, "partner.example.", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 3);
}

/* dns_mx keeps every MX host, with or without an address, in order. */
static void
test_mx_only(void **state)
{
	struct outcome o;

	mx_lookup(&o, "half.example");
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 2);
	assert_string_equal(o.hosts[0].name, "host.noaddr.example");
	assert_int_equal(o.hosts[0].pref, 10);
	assert_int_equal(o.hosts[0].naddrs, 0);
	assert_string_equal(o.hosts[1].name, "mx2.partner.example");
	assert_int_equal(o.hosts[1].naddrs, 0);
	mx_lookup(&o, "nxhost.example");
	assert_int_equal(o.status, DNS_OK);
	assert_string_equal(o.hosts[0].name, "mx.nxhost.invalid");
	mx_lookup(&o, "implicit.example");
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "implicit.example");
	assert_int_equal(o.hosts[0].pref, 0);
	mx_lookup(&o, "nullmx.example");
	assert_int_equal(o.status, DNS_NULLMX);
	mx_lookup(&o, "nothing.invalid");
	assert_int_equal(o.status, DNS_PERMFAIL);
	mx_lookup(&o, "127.0.0.9");
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].naddrs, 1);
	assert_addr(&o.hosts[0].addrs[0], "127.0.0.9", 25);
}

static void
test_implicit_mx(void **state)
{
	struct outcome o;

	local_lookup(&o, "implicit.example", 1, 2525);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "implicit.example");
	assert_int_equal(o.hosts[0].pref, 0);
	assert_int_equal(o.hosts[0].naddrs, 1);
	assert_addr(&o.hosts[0].addrs[0], "127.0.0.5", 2525);
	/* only an AAAA */
	local_lookup(&o, "v6only.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].naddrs, 1);
	assert_addr(&o.hosts[0].addrs[0], "2001:db8::25", 25);
}

static void
test_null_mx(void **state)
{
	struct outcome o;

	local_lookup(&o, "nullmx.example", 1, 25);
	assert_int_equal(o.status, DNS_NULLMX);
	assert_string_equal(o.why, "nullmx.example publishes a null MX "
	    "(RFC 7505): it accepts no mail");
	/* "." among real MX records is ignored */
	local_lookup(&o, "mixed.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "mx1.partner.example");
	assert_int_equal(o.hosts[0].pref, 10);
}

static void
test_literals(void **state)
{
	static const struct {
		const char	*name;
		int		 mx;
		const char	*host;
		const char	*addr;
	} cases[] = {
		{ "127.0.0.1", 0, "127.0.0.1", "127.0.0.1" },
		{ "192.0.2.1", 1, "192.0.2.1", "192.0.2.1" },
		{ "::1", 0, "::1", "::1" },
		{ "2001:db8::1", 1, "2001:db8::1", "2001:db8::1" },
		{ "[192.0.2.2]", 1, "192.0.2.2", "192.0.2.2" },
		{ "[IPv6:::1]", 1, "::1", "::1" },
		{ "[::1]", 0, "::1", "::1" },
	};
	struct outcome o;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		local_lookup(&o, cases[i].name, cases[i].mx, 2526);
		assert_int_equal(o.status, DNS_OK);
		assert_int_equal(o.nhosts, 1);
		assert_string_equal(o.hosts[0].name, cases[i].host);
		assert_int_equal(o.hosts[0].pref, 0);
		assert_int_equal(o.hosts[0].naddrs, 1);
		assert_addr(&o.hosts[0].addrs[0], cases[i].addr, 2526);
	}
}

static void
test_direct(void **state)
{
	struct outcome o;

	local_lookup(&o, "mx2.partner.example", 0, 2526);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "mx2.partner.example");
	assert_int_equal(o.hosts[0].pref, 0);
	assert_addr(&o.hosts[0].addrs[0], "127.0.0.3", 2526);
	/* no MX lookup: the domain itself has no address */
	local_lookup(&o, "partner.example", 0, 25);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "no A or AAAA record for partner.example");
	/* libunbound's default localhost zone */
	local_lookup(&o, "localhost", 0, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].naddrs, 2);
	assert_addr(&o.hosts[0].addrs[0], "::1", 25);
	assert_addr(&o.hosts[0].addrs[1], "127.0.0.1", 25);
}

static void
test_both_families(void **state)
{
	struct outcome o;
	size_t i;

	local_lookup(&o, "both.example", 0, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].naddrs, 2);
	assert_addr(&o.hosts[0].addrs[0], "::1", 25);
	assert_addr(&o.hosts[0].addrs[1], "127.0.0.6", 25);
	/* 10 + 10 addresses: 4 of each, IPv6 first */
	local_lookup(&o, "lots.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].naddrs, DNS_MAX_ADDRS);
	for (i = 0; i < DNS_MAX_ADDRS; i++)
		assert_int_equal(o.hosts[0].addrs[i].ss.ss_family,
		    i < DNS_MAX_ADDRS / 2 ? AF_INET6 : AF_INET);
	/* 3 IPv6 + 10 IPv4: all 3 IPv6, 5 IPv4 */
	local_lookup(&o, "few6.example", 1, 25);
	assert_int_equal(o.hosts[0].naddrs, DNS_MAX_ADDRS);
	for (i = 0; i < DNS_MAX_ADDRS; i++)
		assert_int_equal(o.hosts[0].addrs[i].ss.ss_family,
		    i < 3 ? AF_INET6 : AF_INET);
}

static void
test_many_and_duplicate_mx(void **state)
{
	struct outcome o;
	size_t i;

	local_lookup(&o, "many.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, DNS_MAX_HOSTS);
	for (i = 0; i < DNS_MAX_HOSTS; i++) {
		char want[64];

		assert_int_equal(o.hosts[i].pref, (int)i + 1);
		snprintf(want, sizeof(want), "m%zu.many.example", 20 - i);
		assert_string_equal(o.hosts[i].name, want);
	}
	/* the same host twice (any case) is kept once, at its best */
	local_lookup(&o, "dup.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 2);
	assert_int_equal(o.hosts[0].pref, 10);
	assert_int_equal(o.hosts[1].pref, 30);
	assert_string_equal(o.hosts[1].name, "b.dup.example");
	assert_addr(&o.hosts[0].addrs[0], "127.0.0.7", 25);
}

static void
test_no_address(void **state)
{
	struct outcome o;

	local_lookup(&o, "noaddr.example", 1, 25);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "no MX host of noaddr.example has an "
	    "address (host.noaddr.example: no A or AAAA record)");
	/* the host without an address is dropped, the other one kept */
	local_lookup(&o, "half.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "mx2.partner.example");
	assert_int_equal(o.hosts[0].pref, 20);
	/* no MX and no address: a name with only a TXT record */
	local_lookup(&o, "nomail.example", 1, 25);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "no MX, A or AAAA record for "
	    "nomail.example");
	local_lookup(&o, "host.noaddr.example", 0, 25);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "no A or AAAA record for "
	    "host.noaddr.example");
}

static void
test_nxdomain(void **state)
{
	struct outcome o;

	local_lookup(&o, "nosuch.invalid", 1, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_string_equal(o.why, "domain nosuch.invalid does not exist "
	    "(NXDOMAIN)");
	local_lookup(&o, "nosuch.invalid", 0, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_string_equal(o.why, "host nosuch.invalid does not exist "
	    "(NXDOMAIN)");
	local_lookup(&o, "nxhost.example", 1, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_string_equal(o.why, "no MX host of nxhost.example has an "
	    "address (mx.nxhost.invalid: NXDOMAIN)");
}

static void
test_bad_names(void **state)
{
	struct outcome o;
	char longname[300];

	local_lookup(&o, "", 1, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	local_lookup(&o, "a b.example", 1, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	local_lookup(&o, longname, 0, 25);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_string_equal(o.why, "not a host name");
}

static void
test_servfail(void **state)
{
	struct outcome o;

	fake_mode = FAKE_SERVFAIL;
	lookup(&o, "unknown.upstream.example", 1, 25, 3.0);
	print_message("SERVFAIL of the MX query after %.3f s\n", o.elapsed);
	assert_true(fake_queries > 0);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "DNS lookup of MX for "
	    "unknown.upstream.example failed (SERVFAIL)");
	lookup(&o, "servfailhost.example", 1, 25, 3.0);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "no MX host of servfailhost.example has "
	    "an address (unknown.upstream.example: SERVFAIL)");
	lookup(&o, "unknown.upstream.example", 0, 25, 3.0);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "DNS lookup of the address of "
	    "unknown.upstream.example failed (SERVFAIL)");
}

static void
test_deadline(void **state)
{
	struct outcome o;

	/* the MX query itself is never answered */
	lookup(&o, "unknown.upstream.example", 1, 25, 0.2);
	print_message("MX deadline 0.2 s: answer after %.3f s\n", o.elapsed);
	assert_true(fake_queries > 0);
	assert_true(o.elapsed >= 0.18 && o.elapsed < 0.6);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "DNS lookup of MX for "
	    "unknown.upstream.example timed out");
	/* the only MX host's addresses never come */
	lookup(&o, "deadhost.example", 1, 25, 0.2);
	assert_true(o.elapsed >= 0.18 && o.elapsed < 0.6);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "DNS lookup of the MX hosts of "
	    "deadhost.example timed out (unknown.upstream.example: timed "
	    "out)");
	lookup(&o, "unknown.upstream.example", 0, 25, 0.2);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "DNS lookup of the address of "
	    "unknown.upstream.example timed out");
	/* one host answered by the deadline: that one */
	lookup(&o, "slow.example", 1, 25, 0.3);
	print_message("partial answer at the 0.3 s deadline after %.3f s\n",
	    o.elapsed);
	assert_true(o.elapsed >= 0.28 && o.elapsed < 0.7);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.nhosts, 1);
	assert_string_equal(o.hosts[0].name, "mx1.partner.example");
	assert_addr(&o.hosts[0].addrs[0], "127.0.0.2", 25);
}

static void
test_cancel(void **state)
{
	struct outcome a, b, c;
	unsigned long id;

	/* at once, before anything was answered */
	memset(&a, 0, sizeof(a));
	id = dns_hosts("partner.example", 1, 25, 1.0, hosts_cb, &a);
	dns_cancel(id);
	dns_cancel(id);				/* twice is harmless */
	/* a literal, whose answer is already decided */
	memset(&b, 0, sizeof(b));
	dns_cancel(dns_hosts("127.0.0.1", 0, 25, 1.0, hosts_cb, &b));
	/* half way: MX answered, one host's addresses pending upstream */
	memset(&c, 0, sizeof(c));
	id = dns_hosts("slow.example", 1, 25, 0.3, hosts_cb, &c);
	run_loop(0.1);
	dns_cancel(id);
	run_loop(0.5);				/* past every deadline */
	assert_int_equal(a.called, 0);
	assert_int_equal(b.called, 0);
	assert_int_equal(c.called, 0);
	dns_cancel(0);
	dns_cancel(999999);
}

/* Shutting down with requests pending: no callback, nothing leaked; the
 * resolver can be started again. */
static void
test_shutdown_pending(void **state)
{
	struct outcome a, b, o;
	char why[256];

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	(void)dns_hosts("slow.example", 1, 25, 1.0, hosts_cb, &a);
	(void)dns_hosts("partner.example", 1, 25, 1.0, hosts_cb, &b);
	run_loop(0.05);
	dns_shutdown();
	assert_int_equal(dns_init(base, conf, why, sizeof(why)), 0);
	run_loop(0.2);
	assert_int_equal(a.called, 0);
	local_lookup(&o, "implicit.example", 1, 25);
	assert_int_equal(o.status, DNS_OK);
}

/* Several lookups at once each get their own answer. */
static void
test_concurrent(void **state)
{
	static const char *const names[] = { "partner.example",
	    "implicit.example", "nullmx.example", "nosuch.invalid",
	    "127.0.0.1", "many.example" };
	static const enum dns_status want[] = { DNS_OK, DNS_OK, DNS_NULLMX,
	    DNS_PERMFAIL, DNS_OK, DNS_OK };
	struct outcome o[NELEM(names)];
	size_t i;
	int total, k;

	for (i = 0; i < NELEM(names); i++) {
		memset(&o[i], 0, sizeof(o[i]));
		(void)dns_hosts(names[i], 1, 25, 2.0, hosts_cb, &o[i]);
	}
	t0 = now();
	for (k = 0; k < 100; k++) {
		run_loop(0.5);
		for (total = 0, i = 0; i < NELEM(names); i++)
			total += o[i].called;
		if (total == (int)NELEM(names))
			break;
	}
	for (i = 0; i < NELEM(names); i++) {
		assert_int_equal(o[i].called, 1);
		assert_int_equal(o[i].status, want[i]);
	}
	assert_int_equal(fake_queries, 0);
}

/* ---- TXT ---------------------------------------------------------- */

struct txt_outcome {
	int		 called;
	enum dns_status	 status;
	int		 nxdomain;
	char		 why[256];
	char		 txt[DNS_MAX_TXT][256];
	size_t		 ntxt;
};

static void
txt_cb(void *arg, const struct dns_txt *t)
{
	struct txt_outcome *o = arg;
	size_t i;

	o->called++;
	o->status = t->status;
	o->nxdomain = t->nxdomain;
	snprintf(o->why, sizeof(o->why), "%s", t->why);
	o->ntxt = t->ntxt;
	for (i = 0; i < t->ntxt; i++) {
		assert_int_equal(strlen(t->txt[i]), t->len[i]);
		snprintf(o->txt[i], sizeof(o->txt[i]), "%s", t->txt[i]);
	}
	event_base_loopbreak(base);
}

static void
txt_lookup(struct txt_outcome *o, const char *name, double timeout)
{
	memset(o, 0, sizeof(*o));
	(void)dns_txt(name, timeout, txt_cb, o);
	assert_int_equal(o->called, 0);		/* never from inside */
	run_loop(5.0);
	if (o->called != 1)
		fail_msg("no TXT answer for %s within 5 s", name);
}

static void
test_txt_local(void **state)
{
	struct txt_outcome o;

	txt_lookup(&o, "s1._domainkey.dkim.example", 2.0);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.ntxt, 1);
	assert_string_equal(o.txt[0], "v=DKIM1; k=rsa; p=MIIB");
	txt_lookup(&o, "two.example", 2.0);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.ntxt, 2);
	assert_true((strcmp(o.txt[0], "first") == 0 &&
	    strcmp(o.txt[1], "second") == 0) || (strcmp(o.txt[1], "first") ==
	    0 && strcmp(o.txt[0], "second") == 0));
	/* a name with an A record only: NODATA, answered locally */
	txt_lookup(&o, "implicit.example", 2.0);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_int_equal(o.nxdomain, 0);
	assert_string_equal(o.why, "the name has no TXT record");
	txt_lookup(&o, "k._domainkey.nosuch.invalid", 2.0);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_int_equal(o.nxdomain, 1);
	assert_string_equal(o.why, "the name does not exist (NXDOMAIN)");
	txt_lookup(&o, "bad name.example", 2.0);
	assert_int_equal(o.status, DNS_PERMFAIL);
	assert_int_equal(fake_queries, 0);
}

static void
test_txt_failures(void **state)
{
	struct txt_outcome o;
	unsigned long id;

	txt_lookup(&o, "k._domainkey.unknown.upstream.example", 0.2);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "the DNS lookup timed out");
	fake_mode = FAKE_SERVFAIL;
	txt_lookup(&o, "k._domainkey.unknown.upstream.example", 3.0);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.why, "the DNS lookup failed (SERVFAIL)");
	/* cancelled: no callback */
	memset(&o, 0, sizeof(o));
	id = dns_txt("k._domainkey.unknown.upstream.example", 0.2, txt_cb, &o);
	dns_cancel(id);
	run_loop(0.4);
	assert_int_equal(o.called, 0);
}

static void
test_txt_rdata(void **state)
{
	static const struct {
		const char	*rdata;
		size_t		 len;
		int		 want;
		const char	*text;
	} t[] = {
		{ "\005hello", 6, 5, "hello" },
		{ "\003abc\000\002de", 9, 5, "abcde" },
		{ "\000", 1, 0, "" },
		{ "\005abc", 4, -1, NULL },		/* runs past the end */
		{ "", 0, -1, NULL },
		{ "\012abcdefghij", 11, 10, "abcdefg" },	/* cut at 8 */
	};
	char out[8];
	size_t i;
	int got;

	for (i = 0; i < NELEM(t); i++) {
		got = dns_parse_txt_rdata((const unsigned char *)t[i].rdata,
		    t[i].len, out, sizeof(out));
		assert_int_equal(got, t[i].want);
		if (got >= 0)
			assert_string_equal(out, t[i].text);
	}
}

static void
rdns_cb(void *arg, const char *host, int verified)
{
	int *v = arg;

	*v = verified ? 2 : 1;
	assert_string_not_equal(host, "unknown");
	event_base_loopbreak(base);
}

/* The reverse lookup beside the new code: 127.0.0.1 is localhost. */
static void
test_rdns_still_works(void **state)
{
	struct sockaddr_in sin;
	int v = 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)dns_rdns((struct sockaddr *)&sin, 2.0, rdns_cb, &v);
	assert_int_equal(v, 0);
	run_loop(3.0);
	assert_int_equal(v, 2);
}

static void
test_report_timing(void **state)
{
	print_message("slowest local answer: %.1f ms\n", slowest * 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mx_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_implicit_mx, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_null_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_both_families, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_and_duplicate_mx,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_servfail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rdns_still_works, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_txt_local, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_txt_failures, setup,
		    teardown),
		cmocka_unit_test(test_txt_rdata),
		cmocka_unit_test(test_report_timing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
