/*
 * log.h - the mail log (postern-log(7): text or JSON lines, an API that
 * admins grep) and the debug/diagnostic log, on one sink: stderr, syslog
 * or a file.
 *
 * Mail log events are written with mlog(): a template with {key}
 * placeholders and a NULL-terminated list of key/value string pairs.
 * The text format substitutes the values into the template; the JSON
 * format writes {"time":..,"level":..,"event":..,<key>:<value>...,"text":..}
 * so both carry the same fields.  Values are cleaned of control characters.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING,
	LOG_LVL_CRITICAL };

/* Open the sink: "-" = stderr, "syslog", or a file path (appended). */
int	log_open(const char *target, int json, const char *ident);
void	log_close(void);
/* Re-open a file sink (after rotation, on SIGHUP). */
void	log_reopen(void);
void	log_set_debug(int on);
/* Collect lines written from this (the loop's) thread and write them in
 * one go at the end of each loop iteration.  0 or -1. */
struct event_base;
int	log_attach_loop(struct event_base *);
/* Write collected lines now (before exit, or a Critical line). */
void	log_flush(void);

/* Mail log event: mlog(LOG_LVL_INFO, "start", "Start MID {mid} ICID {icid}",
 *     "mid", buf1, "icid", buf2, NULL); */
void	mlog(enum log_level, const char *event, const char *tmpl, ...)
	    __attribute__((sentinel));

/* Diagnostics (free text, printf style). */
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_crit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
