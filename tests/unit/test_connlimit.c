/*
 * test_connlimit.c - the shared connection counters: per-client and total
 * limits summed over workers, IPv4 and IPv4-mapped IPv6 counted as one
 * client, release, and a dead worker's counts cleared by reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "connlimit.h"

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

#define SA(x)	((struct sockaddr *)&(x))

static void
test_per_client_and_total(void **state)
{
	struct sockaddr_storage a = addr("192.0.2.1"), b = addr("192.0.2.2"),
	    mapped = addr("::ffff:192.0.2.1"), c = addr("2001:db8::1");

	assert_int_equal(connlimit_init(2), 0);
	connlimit_set_worker(0);
	assert_int_equal(connlimit_take(SA(a), 5, 2), CONNLIMIT_OK);
	/* the same client seen by another worker counts too */
	connlimit_set_worker(1);
	assert_int_equal(connlimit_take(SA(mapped), 5, 2), CONNLIMIT_OK);
	assert_int_equal(connlimit_take(SA(a), 5, 2), CONNLIMIT_CLIENT);
	assert_int_equal(connlimit_take(SA(b), 5, 2), CONNLIMIT_OK);
	assert_int_equal(connlimit_take(SA(c), 5, 2), CONNLIMIT_OK);
	assert_int_equal(connlimit_take(SA(c), 5, 2), CONNLIMIT_OK);
	/* 5 in total now */
	assert_int_equal(connlimit_take(SA(b), 5, 2), CONNLIMIT_TOTAL);
	connlimit_release(SA(c));
	assert_int_equal(connlimit_take(SA(b), 5, 2), CONNLIMIT_OK);
	/* worker 0 died: its connection from a is forgotten */
	connlimit_reset_worker(0);
	assert_int_equal(connlimit_take(SA(a), 10, 2), CONNLIMIT_OK);
	assert_int_equal(connlimit_take(SA(a), 10, 2), CONNLIMIT_CLIENT);
}

static void
test_release_keeps_other_clients(void **state)
{
	struct sockaddr_storage s[200];
	char text[64];
	int i;

	/* many clients in one table, released in another order: every
	 * remaining one must still be found (backward-shift deletion) */
	assert_int_equal(connlimit_init(1), 0);
	connlimit_set_worker(0);
	for (i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "10.0.%d.%d", i / 250, i % 250);
		s[i] = addr(text);
		assert_int_equal(connlimit_take(SA(s[i]), 1000, 1), CONNLIMIT_OK);
	}
	for (i = 0; i < 200; i += 2)
		connlimit_release(SA(s[i]));
	for (i = 0; i < 200; i++)
		assert_int_equal(connlimit_take(SA(s[i]), 1000, 1),
		    i % 2 ? CONNLIMIT_CLIENT : CONNLIMIT_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_client_and_total),
		cmocka_unit_test(test_release_keeps_other_clients),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
