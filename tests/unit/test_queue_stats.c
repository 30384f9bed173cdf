/*
 * test_queue_stats.c - the queue by destination, from a real spool in a
 * scratch directory: active (not tried) and deferred (tried, pending)
 * messages per recipient domain, held ones, a message counted once in
 * each of its domains, finished recipients left out, the oldest
 * received time, an unreadable file counted apart, and a second scan
 * with the same cache after a message left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "queue_stats.h"
#include "spool.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX "postern-test-qstats"
#include "test_tmpdir.h"

#define T0	1700000000

static struct spool *sp;

/* Queue a message for `rcpts` received at `when`; its MID. */
static uint64_t
queue_msg(uint64_t mid, int64_t when, const char *const *rcpts, size_t n)
{
	static const char text[] = "Subject: t\r\n\r\nbody\r\n";
	struct envelope env;
	char why[512];

	envelope_generated(&env, "mx.test.example", mid, "a@example.org", rcpts,
	    n, text, sizeof(text) - 1, when);
	if (spool_inject(sp, &env, text, sizeof(text) - 1, why,
	    sizeof(why)) == -1)
		fail_msg("spool_inject: %s", why);
	envelope_clear(&env);
	return mid;
}

/* Delivery state: one (status, attempts) pair per recipient. */
static void
set_state(uint64_t mid, const int *status, const int *attempts, size_t n)
{
	struct rcpt_state st[8];
	size_t i;

	memset(st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		st[i].status = (enum rcpt_status)status[i];
		st[i].attempts = attempts[i];
		st[i].next_attempt = T0 + 3600;
	}
	assert_int_equal(spool_state_write(sp, mid, st, n), 0);
}

static const struct queue_dest *
dest(const struct queue_stats *qs, const char *domain)
{
	size_t i;

	for (i = 0; i < qs->ndests; i++)
		if (strcmp(qs->dests[i].domain, domain) == 0)
			return &qs->dests[i];
	fail_msg("no destination %s", domain);
	return NULL;
}

static void
assert_dest(const struct queue_stats *qs, const char *domain,
    uint64_t active, uint64_t deferred, uint64_t held, int64_t oldest)
{
	const struct queue_dest *d = dest(qs, domain);

	assert_int_equal(d->active, active);
	assert_int_equal(d->deferred, deferred);
	assert_int_equal(d->held, held);
	assert_int_equal(d->oldest, oldest);
}

static void
test_scan(void **state)
{
	static const char *const m1[] = { "a@One.example", "b@two.example" };
	static const char *const m2[] = { "c@one.example" };
	static const char *const m3[] = { "d@two.example" };
	static const char *const m4[] = { "e@one.example", "f@three.example" };
	static const char *const m5[] = { "g@four.example" };
	static const char *const m6[] = { "postmaster" };
	struct queue_stats_cache *c = queue_stats_cache_new();
	struct queue_stats qs;
	char why[512], path[4096];
	int fd;

	assert_non_null(sp = spool_open(tmpdir, why, sizeof(why)));
	queue_msg(1, T0 - 100, m1, 2);				/* active */
	queue_msg(2, T0 - 500, m2, 1);				/* deferred */
	set_state(2, (const int[]){ RCPT_PENDING }, (const int[]){ 2 }, 1);
	queue_msg(3, T0 - 900, m3, 1);				/* held */
	assert_int_equal(spool_move(sp, 3, SPOOL_QUEUE, SPOOL_HOLD), 0);
	queue_msg(4, T0 - 300, m4, 2);		/* one.example done */
	set_state(4, (const int[]){ RCPT_DELIVERED, RCPT_PENDING },
	    (const int[]){ 1, 1 }, 2);
	queue_msg(5, T0 - 50, m5, 1);			/* all finished */
	set_state(5, (const int[]){ RCPT_FAILED }, (const int[]){ 1 }, 1);
	queue_msg(6, T0 - 10, m6, 1);			/* no domain */
	/* not a spool file */
	spool_path(sp, SPOOL_QUEUE, 99, path, sizeof(path));
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1);
	assert_int_equal(write(fd, "junk\n", 5), 5);
	close(fd);

	assert_int_equal(queue_stats_scan(sp, c, &qs, why, sizeof(why)), 0);
	assert_int_equal(qs.active, 2);		/* 1, 6 */
	assert_int_equal(qs.deferred, 2);	/* 2, 4 */
	assert_int_equal(qs.held, 1);
	assert_int_equal(qs.oldest, T0 - 500);
	assert_int_equal(qs.unreadable, 1);
	assert_int_equal(qs.ndests, 4);
	/* most messages first, then by name */
	assert_string_equal(qs.dests[0].domain, "one.example");
	assert_string_equal(qs.dests[1].domain, "two.example");
	assert_dest(&qs, "one.example", 1, 1, 0, T0 - 500);
	assert_dest(&qs, "two.example", 1, 0, 1, T0 - 100);
	assert_dest(&qs, "three.example", 0, 1, 0, T0 - 300);
	assert_dest(&qs, QUEUE_STATS_NO_DOMAIN, 1, 0, 0, T0 - 10);
	queue_stats_clear(&qs);

	/* message 2 delivered meanwhile, 3 released: the cache follows */
	assert_int_equal(spool_remove(sp, SPOOL_QUEUE, 2), 0);
	assert_int_equal(spool_move(sp, 3, SPOOL_HOLD, SPOOL_QUEUE), 0);
	assert_int_equal(queue_stats_scan(sp, c, &qs, why, sizeof(why)), 0);
	assert_int_equal(qs.active, 3);
	assert_int_equal(qs.deferred, 1);
	assert_int_equal(qs.held, 0);
	assert_dest(&qs, "one.example", 1, 0, 0, T0 - 100);
	assert_dest(&qs, "two.example", 2, 0, 0, T0 - 900);
	queue_stats_clear(&qs);
	queue_stats_cache_free(c);
	spool_free(sp);
}

static void
test_missing_spool(void **state)
{
	struct queue_stats_cache *c = queue_stats_cache_new();
	struct queue_stats qs;
	char why[512], dir[300];

	snprintf(dir, sizeof(dir), "%s/other", tmpdir);
	assert_non_null(sp = spool_open(dir, why, sizeof(why)));
	snprintf(dir, sizeof(dir), "%s/other/spool/hold", tmpdir);
	assert_int_equal(rmdir(dir), 0);
	why[0] = '\0';
	assert_int_equal(queue_stats_scan(sp, c, &qs, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot list the spool"));
	queue_stats_cache_free(c);
	spool_free(sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_missing_spool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
