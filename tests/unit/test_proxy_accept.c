/*
 * test_proxy_accept.c - the accept-time wait for a PROXY header, on a
 * real socket pair in a real event loop: exactly the header is consumed
 * (the client's first bytes stay in the socket), a header split over
 * several reads, a peer outside proxy_from, malformed and incomplete
 * headers, the deadline, a connect-and-close health check (debug only),
 * and closing every wait at shutdown.  Each failure's log line is checked,
 * and the metrics counts of refused and failed proxy connections.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include <event2/event.h>

#include "log.h"
#include "netaddr.h"
#include "proxy_accept.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX	"test_proxy_accept"
#include "test_tmpdir.h"
#include "metrics.h"

#define B(lit)		lit, sizeof(lit) - 1
#define V1_TCP4		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"
#define V2_LOCAL	"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
#define LOOPS_MAX	200	/* bounded event loop turns per wait */

struct fixture {
	struct event_base	*base;
	struct conf_listener	 l;
	struct conf		 conf;	/* its one listener: metrics */
	struct cidr		 from;
	int			 ours, theirs;	/* server end, proxy end */
	int			 called, got_fd;
	struct proxy_accept_info info;
	char			 logpath[300];
};

static void
done_cb(int fd, const struct proxy_accept_info *info, void *arg)
{
	struct fixture *f = arg;

	f->called++;
	f->got_fd = fd;
	f->info = *info;
}

static void
peer_addr(const char *ip, struct sockaddr_storage *ss)
{
	assert_int_equal(sockaddr_parse(ip, 40000, ss, &(socklen_t){ 0 }), 0);
}

static int
fx_setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	int sv[2];

	f->base = event_base_new();
	assert_non_null(f->base);
	assert_int_equal(cidr_parse("127.0.0.0/8", &f->from), 0);
	f->l.name = "inbound";
	f->l.proxy_protocol = 1;
	f->l.proxy_from = &f->from;
	f->l.nproxy_from = 1;
	f->conf.listeners = &f->l;
	f->conf.nlisteners = 1;
	metrics_set_slot(METRICS_SLOT_WORKER(0), &f->conf);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->ours = sv[0];
	f->theirs = sv[1];
	assert_int_equal(fcntl(f->ours, F_SETFL, O_NONBLOCK), 0);
	f->got_fd = -1;
	snprintf(f->logpath, sizeof(f->logpath), "%s/log", tmpdir);
	assert_int_equal(log_open(f->logpath, 0, "test"), 0);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fixture *f = *state;

	proxy_accept_close_all();
	if (f->got_fd != -1)
		close(f->got_fd);
	close(f->theirs);
	event_base_free(f->base);
	log_close();
	unlink(f->logpath);
	free(f);
	return 0;
}

static void
start(struct fixture *f, const char *peer_ip, double timeout)
{
	struct sockaddr_storage ss;

	peer_addr(peer_ip, &ss);
	proxy_accept_start(f->base, f->ours, (struct sockaddr *)&ss, &f->l,
	    timeout, done_cb, f);
}

/* The metrics count of outcome `o` for the fixture's listener. */
static uint64_t
counted(enum metrics_conn o)
{
	struct metrics_counts c;

	assert_int_equal(metrics_snapshot(&c), 0);
	return c.conn[0][o];
}

/* Turn the loop until the wait is over (handed over or closed). */
static void
run_until_settled(struct fixture *f)
{
	int i;

	for (i = 0; i < LOOPS_MAX && proxy_accept_pending() > 0; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(proxy_accept_pending(), 0);
}

static void
send_all(int fd, const char *data, size_t len)
{
	assert_int_equal(write(fd, data, len), (ssize_t)len);
}

/* What the session will read next from the handed-over socket. */
static void
assert_rest(int fd, const char *want)
{
	char buf[128];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
}

/* The proxy's end sees the server close the connection (a reset when
 * the server left bytes unread). */
static void
assert_closed(struct fixture *f)
{
	char buf[16];
	struct timeval tv = { 5, 0 };
	ssize_t n;

	setsockopt(f->theirs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(f->theirs, buf, sizeof(buf), 0);
	if (n != 0 && !(n == -1 && errno == ECONNRESET))
		fail_msg("recv gave %zd (%s), want end of file", n,
		    strerror(errno));
	assert_int_equal(f->called, 0);
}

static void
assert_log(struct fixture *f, const char *want)
{
	char *text;

	log_flush();
	text = read_file(f->logpath, NULL, 1 << 20);
	assert_non_null(text);
	if (strstr(text, want) == NULL)
		fail_msg("log lacks '%s':\n%s", want, text);
	free(text);
}

static void
test_header_then_client_bytes(void **state)
{
	struct fixture *f = *state;
	char ip[64];

	send_all(f->theirs, B(V1_TCP4 "EHLO client.example\r\n"));
	start(f, "127.0.0.1", 5);
	run_until_settled(f);
	assert_int_equal(f->called, 1);
	assert_int_equal(f->got_fd, f->ours);
	assert_int_equal(f->info.kind, PROXY_PROTO_RELAYED);
	assert_int_equal(f->info.version, 1);
	assert_string_equal(sockaddr_ip((struct sockaddr *)&f->info.client,
	    ip, sizeof(ip)), "192.0.2.1");
	assert_int_equal(sockaddr_port((struct sockaddr *)&f->info.client),
	    56324);
	assert_string_equal(sockaddr_ip((struct sockaddr *)&f->info.proxy,
	    ip, sizeof(ip)), "127.0.0.1");
	assert_rest(f->got_fd, "EHLO client.example\r\n");
}

/* One header in three pieces, each read in its own loop turn. */
static void
test_header_in_pieces(void **state)
{
	struct fixture *f = *state;
	static const char hdr[] = V1_TCP4;
	int i;

	start(f, "127.0.0.1", 5);
	send_all(f->theirs, hdr, 6);
	for (i = 0; i < 3; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	send_all(f->theirs, hdr + 6, 20);
	for (i = 0; i < 3; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->called, 0);
	assert_int_equal(proxy_accept_pending(), 1);
	send_all(f->theirs, hdr + 26, sizeof(hdr) - 1 - 26);
	send_all(f->theirs, B("\x16\x03\x01"));	/* a TLS ClientHello */
	run_until_settled(f);
	assert_int_equal(f->called, 1);
	assert_rest(f->got_fd, "\x16\x03\x01");
}

static void
test_local_health_check(void **state)
{
	struct fixture *f = *state;

	send_all(f->theirs, B(V2_LOCAL "EHLO haproxy\r\n"));
	start(f, "127.0.0.1", 5);
	run_until_settled(f);
	assert_int_equal(f->called, 1);
	assert_int_equal(f->info.kind, PROXY_PROTO_LOCAL);
	assert_string_equal(f->info.proto, "LOCAL");
	assert_memory_equal(&f->info.client, &f->info.proxy,
	    sizeof(f->info.client));
	assert_rest(f->got_fd, "EHLO haproxy\r\n");
}

static void
test_outside_proxy_from(void **state)
{
	struct fixture *f = *state;
	uint64_t n = counted(METRICS_CONN_PROXY_REFUSED);

	start(f, "192.0.2.77", 5);
	assert_int_equal(proxy_accept_pending(), 0);
	assert_closed(f);
	assert_int_equal(counted(METRICS_CONN_PROXY_REFUSED), n + 1);
	assert_log(f, "Warning: PROXY refused address 192.0.2.77 interface "
	    "inbound: not in proxy_from");
}

static void
test_malformed(void **state)
{
	struct fixture *f = *state;
	uint64_t n = counted(METRICS_CONN_PROXY_FAILED);

	send_all(f->theirs, B("EHLO direct.example\r\n"));
	start(f, "127.0.0.1", 5);
	run_until_settled(f);
	assert_closed(f);
	assert_int_equal(counted(METRICS_CONN_PROXY_FAILED), n + 1);
	assert_log(f, "Warning: PROXY header from 127.0.0.1 port 40000 "
	    "interface inbound rejected: not a PROXY protocol header (it "
	    "starts 'EHLO direct.exam'...");
}

static void
test_closed_mid_header(void **state)
{
	struct fixture *f = *state;

	send_all(f->theirs, B("PROXY TCP4 192.0.2.1"));
	shutdown(f->theirs, SHUT_WR);
	start(f, "127.0.0.1", 5);
	run_until_settled(f);
	assert_closed(f);
	assert_log(f, "rejected: connection closed after 20 octets of an "
	    "incomplete header");
}

static void
test_deadline(void **state)
{
	struct fixture *f = *state;

	send_all(f->theirs, B("PROXY TCP4"));
	start(f, "127.0.0.1", 0.05);
	run_until_settled(f);
	assert_closed(f);
	assert_log(f, "rejected: no complete header within 0.05 s (10 octets "
	    "received)");
}

/* Connect and close without a byte: a TCP check, no Warning. */
static void
test_tcp_check_is_quiet(void **state)
{
	struct fixture *f = *state;
	uint64_t n = counted(METRICS_CONN_PROXY_FAILED);
	char *text;

	shutdown(f->theirs, SHUT_WR);
	start(f, "127.0.0.1", 5);
	run_until_settled(f);
	assert_closed(f);
	/* nor a failure in the metrics */
	assert_int_equal(counted(METRICS_CONN_PROXY_FAILED), n);
	log_flush();
	text = read_file(f->logpath, NULL, 1 << 20);
	assert_non_null(text);
	assert_null(strstr(text, "Warning"));
	free(text);
}

static void
test_close_all(void **state)
{
	struct fixture *f = *state;

	start(f, "127.0.0.1", 5);
	assert_int_equal(proxy_accept_pending(), 1);
	proxy_accept_close_all();
	assert_int_equal(proxy_accept_pending(), 0);
	assert_closed(f);
}

int
main(void)
{
#define T(fn)	cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_header_then_client_bytes),
		T(test_header_in_pieces),
		T(test_local_health_check),
		T(test_outside_proxy_from),
		T(test_malformed),
		T(test_closed_mid_header),
		T(test_deadline),
		T(test_tcp_check_is_quiet),
		T(test_close_all),
	};

	if (metrics_init(1) == -1)	/* serve's shared counters */
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
