/*
 * sdnotify.c - the service manager's notification protocol (sd_notify(3),
 * systemd's Type=notify) for the master of `postern serve`.
 *
 * What is sent, and when (serve.c decides the moments):
 *   READY=1 + STATUS=   every listener bound, the spool recovered, the
 *                       children started; again at the end of a reload
 *   RELOADING=1         a SIGHUP reload starts (with MONOTONIC_USEC=, which
 *                       systemd 253's Type=notify-reload asks for)
 *   STATUS=             refreshed once a minute ("accepting on 3
 *                       listeners, 12 messages queued")
 *   WATCHDOG=1          every half WatchdogSec= (WATCHDOG_USEC), from the
 *                       master's signal loop, so a master that hangs is
 *                       restarted by the service manager
 *   STOPPING=1          SIGTERM/SIGINT: shutdown has begun
 *
 * Public: sdnotify_init, sdnotify_active, sdnotify_wait_ms, sdnotify_tick,
 * sdnotify_ready, sdnotify_status, sdnotify_reloading, sdnotify_stopping.
 *
 * Limits: without NOTIFY_SOCKET nothing is sent and sdnotify_wait_ms()
 * says "wait forever", so a daemon started by hand runs exactly as before.
 * A failed send is ignored (the manager may be gone; nothing to do).
 * Threats: none from the network; STATUS text is built by serve.c from
 * counts, never from peer data.
 */
#include <stdint.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "sdnotify.h"
#include "util.h"

#define SDNOTIFY_STATUS_PERIOD	60.0	/* seconds between STATUS refreshes */

static int	 sd_on;			/* NOTIFY_SOCKET is set */
static double	 wd_period;		/* seconds between WATCHDOG=1, 0 = off */
static double	 wd_last;		/* mono_now() of the last WATCHDOG=1 */
static double	 status_last;		/* mono_now() of the last STATUS= */

/* Read the environment the service manager gave us. */
void
sdnotify_init(void)
{
	uint64_t usec = 0;
	const char *s = getenv("NOTIFY_SOCKET");

	sd_on = s != NULL && *s != '\0';
	/* sd_watchdog_enabled() also checks WATCHDOG_PID against our pid. */
	if (sd_on && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		wd_period = (double)usec / 2e6;
	wd_last = status_last = mono_now();
}

/* NOTIFY_SOCKET was set at sdnotify_init(). */
int
sdnotify_active(void)
{
	return sd_on;
}

/* How long the master's signal wait may last. */
long
sdnotify_wait_ms(void)
{
	double now, next;

	if (!sd_on)
		return -1;
	now = mono_now();
	next = status_last + SDNOTIFY_STATUS_PERIOD;
	if (wd_period > 0 && wd_last + wd_period < next)
		next = wd_last + wd_period;
	if (next <= now)
		return 0;
	return (long)((next - now) * 1000.0) + 1;
}

/* Keep-alive, and whether a STATUS refresh is due. */
int
sdnotify_tick(void)
{
	double now;

	if (!sd_on)
		return 0;
	now = mono_now();
	if (wd_period > 0 && now - wd_last >= wd_period) {
		(void)sd_notify(0, "WATCHDOG=1");
		wd_last = now;
	}
	return now - status_last >= SDNOTIFY_STATUS_PERIOD;
}

/* READY=1 with a STATUS line. */
void
sdnotify_ready(const char *status)
{
	if (!sd_on)
		return;
	(void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
	status_last = mono_now();
}

/* A STATUS line only. */
void
sdnotify_status(const char *status)
{
	if (!sd_on)
		return;
	(void)sd_notifyf(0, "STATUS=%s", status);
	status_last = mono_now();
}

/* RELOADING=1: the manager shows "reloading" until the next READY=1. */
void
sdnotify_reloading(void)
{
	if (!sd_on)
		return;
	(void)sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the configuration\n"
	    "MONOTONIC_USEC=%llu",
	    (unsigned long long)(mono_now() * 1e6));
}

/* STOPPING=1 with a STATUS line. */
void
sdnotify_stopping(const char *status)
{
	if (!sd_on)
		return;
	(void)sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}
