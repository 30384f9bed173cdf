/*
 * metrics_hotpath.c - `make bench` (bench/bench-metrics.sh): what the
 * metrics calls of one accepted message cost in CPU, measured alone so
 * that a busy machine does not drown it.  Per message an SMTP worker
 * makes: metrics_connection (accepted), metrics_observe_commit (two
 * mono_now() calls, three additions) and metrics_message_accepted; the
 * queue manager one metrics_delivery and metrics_observe_delivery.
 *
 * Two processes (two workers) run the sequence at once for N messages
 * each, first with counting off (no slab: every call returns at its
 * first test), then on (their own slabs in the shared region, as serve
 * sets them up).  Prints nanoseconds per message, off and on.
 * usage: metrics_hotpath [N]   (default 20000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "util.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One worker's messages; `slot` -1: counting off. */
static void
messages(long n, int slot, const struct conf *c)
{
	double start;
	long i;

	if (slot >= 0)
		metrics_set_slot(slot, c);
	for (i = 0; i < n; i++) {
		/* as listener.c: the clock only when counting */
		metrics_connection(&c->listeners[0], METRICS_CONN_ACCEPTED);
		start = metrics_enabled() ? mono_now() : 0;
		if (metrics_enabled())
			metrics_observe_commit(mono_now() - start);
		metrics_message_accepted();
		metrics_delivery("example.com", METRICS_DELIVERED);
		metrics_observe_delivery(1);
	}
}

/* Two processes at once; nanoseconds per message. */
static double
run(long n, int on, const struct conf *c)
{
	double t0 = now();
	pid_t pid[2];
	int k;

	for (k = 0; k < 2; k++)
		if ((pid[k] = fork()) == 0) {
			messages(n, on ? METRICS_SLOT_WORKER(k) : -1, c);
			_exit(0);
		}
	for (k = 0; k < 2; k++)
		waitpid(pid[k], NULL, 0);
	return (now() - t0) * 1e9 / (double)n;
}

int
main(int argc, char **argv)
{
	struct conf_listener l;
	struct conf c;
	struct metrics_counts got;
	long n = argc > 1 ? atol(argv[1]) : 20000000;
	double off, on;

	memset(&l, 0, sizeof(l));
	memset(&c, 0, sizeof(c));
	l.name = (char *)"bench";
	c.listeners = &l;
	c.nlisteners = 1;
	if (n <= 0 || metrics_init(2) == -1)
		return 1;
	off = run(n, 0, &c);
	on = run(n, 1, &c);
	if (metrics_snapshot(&got) == -1 || got.accepted != 2 * (uint64_t)n)
		return 1;	/* every addition made it */
	printf("metrics hot path: %.1f ns per message with counting off, "
	    "%.1f ns on (2 processes, %ld messages each): +%.1f ns\n", off,
	    on, n, on - off);
	return 0;
}
