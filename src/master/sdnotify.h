/*
 * sdnotify.h - tell a service manager (systemd, Type=notify) how serve
 * is doing: READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1.
 *
 * Callers: the master process of `postern serve` only (the unit has
 * NotifyAccess=main).  Without NOTIFY_SOCKET every call does nothing.
 */
#ifndef POSTERN_SDNOTIFY_H
#define POSTERN_SDNOTIFY_H

/* Read NOTIFY_SOCKET and WATCHDOG_USEC; call once before the first other
 * call. */
void	sdnotify_init(void);
/* Is there a service manager to tell (NOTIFY_SOCKET set)? */
int	sdnotify_active(void);
/* Milliseconds the master may wait before it must call sdnotify_tick(),
 * or -1 (no service manager: wait for signals only). */
long	sdnotify_wait_ms(void);
/* Send WATCHDOG=1 when half the watchdog interval has gone by.  Returns 1
 * when the STATUS line is due for a refresh (once a minute), else 0. */
int	sdnotify_tick(void);
/* Every listener is bound and the spool recovered (at start, and again
 * when a reload is over): READY=1 with this STATUS line. */
void	sdnotify_ready(const char *status);
/* A new STATUS line only. */
void	sdnotify_status(const char *status);
/* A SIGHUP reload starts (sdnotify_ready() ends it). */
void	sdnotify_reloading(void);
/* Shutdown has begun. */
void	sdnotify_stopping(const char *status);

#endif
