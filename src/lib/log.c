/*
 * log.c - mail log and diagnostics sink (see log.h).  Each record is built
 * in memory and written with a single write(2) so lines from several
 * worker processes sharing one file (O_APPEND) never interleave.
 * Threats: peer-supplied values (addresses, Subject) are cleaned of
 * control characters before they reach the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/time.h>

#include <event2/event.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

static int	 log_fd = 2;
static int	 log_json;
static int	 log_syslog;
static int	 log_debug_on;
static char	*log_path;

/* With a loop attached, lines written from the loop thread are collected
 * and written together at the end of the loop iteration (one write for a
 * whole burst of events); other threads write at once. */
static struct event	*flush_ev;
static pthread_t	 loop_thread;
static struct strbuf	 pending;
#define LOG_PENDING_MAX	65536

static const char *level_names[] = { "Debug", "Info", "Warning", "Critical" };

int
log_open(const char *target, int json, const char *ident)
{
	int fd;

	log_close();
	log_json = json;
	if (target == NULL || strcmp(target, "-") == 0) {
		log_fd = 2;
		return 0;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog = 1;
		return 0;
	}
	fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		return -1;
	log_fd = fd;
	log_path = xstrdup(target);
	return 0;
}

void
log_close(void)
{
	log_flush();
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	if (log_syslog)
		closelog();
	log_syslog = 0;
	free(log_path);
	log_path = NULL;
}

void
log_reopen(void)
{
	int fd;

	if (log_path == NULL)
		return;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		return;
	dup2(fd, log_fd);
	close(fd);
}

void
log_set_debug(int on)
{
	log_debug_on = on;
}

static void
put_time(struct strbuf *sb)
{
	struct timeval tv;
	struct tm tm;
	char buf[64];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_printf(sb, "%s.%03dZ", buf, (int)(tv.tv_usec / 1000));
}

/* Write what the loop collected. */
void
log_flush(void)
{
	if (pending.len == 0)
		return;
	(void)write_full(log_fd, pending.s, pending.len);
	strbuf_reset(&pending);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	log_flush();
}

int
log_attach_loop(struct event_base *base)
{
	flush_ev = event_new(base, -1, 0, flush_cb, NULL);
	if (flush_ev == NULL)
		return -1;
	loop_thread = pthread_self();
	atexit(log_flush);
	return 0;
}

static void
emit(enum log_level lvl, struct strbuf *line)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_CRIT };
	int in_loop;

	if (log_syslog) {
		syslog(prio[lvl], "%s", line->s);
		return;
	}
	strbuf_putc(line, '\n');
	in_loop = flush_ev != NULL && pthread_equal(pthread_self(), loop_thread);
	if (!in_loop || lvl >= LOG_LVL_CRITICAL) {
		if (in_loop)
			log_flush();	/* keep the order of this thread's lines */
		(void)write_full(log_fd, line->s, line->len);
		return;
	}
	if (pending.len == 0)
		event_active(flush_ev, EV_TIMEOUT, 0);
	strbuf_add(&pending, line->s, line->len);
	if (pending.len >= LOG_PENDING_MAX)
		log_flush();
}

/* Append a value with control characters replaced, as logs must not carry
 * peer-controlled line breaks. */
static void
put_clean(struct strbuf *sb, const char *v)
{
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		strbuf_putc(sb, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
}

static const char *
lookup(const char *key, size_t klen, const char **kv, size_t nkv)
{
	size_t i;

	for (i = 0; i + 1 < nkv; i += 2)
		if (strlen(kv[i]) == klen && memcmp(kv[i], key, klen) == 0)
			return kv[i + 1];
	return NULL;
}

static void
render_text(struct strbuf *sb, const char *tmpl, const char **kv, size_t nkv)
{
	const char *p, *end, *v;

	for (p = tmpl; *p; p++) {
		if (*p == '{' && (end = strchr(p, '}')) != NULL &&
		    (v = lookup(p + 1, (size_t)(end - p - 1), kv, nkv)) != NULL) {
			put_clean(sb, v);
			p = end;
		} else
			strbuf_putc(sb, *p);
	}
}

static int
all_digits(const char *s)
{
	if (*s == '\0' || strlen(s) > 18)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

void
mlog(enum log_level lvl, const char *event, const char *tmpl, ...)
{
	struct strbuf sb = STRBUF_INIT, text = STRBUF_INIT;
	const char *kv[64];
	size_t nkv = 0, i;
	va_list ap;
	const char *s;

	va_start(ap, tmpl);
	while (nkv < 64 && (s = va_arg(ap, const char *)) != NULL)
		kv[nkv++] = s;
	va_end(ap);
	render_text(&text, tmpl, kv, nkv);
	if (!log_json) {
		if (!log_syslog) {
			put_time(&sb);
			strbuf_printf(&sb, " %s: ", level_names[lvl]);
		}
		strbuf_add(&sb, text.s, text.len);
	} else {
		strbuf_puts(&sb, "{\"time\":\"");
		put_time(&sb);
		strbuf_printf(&sb, "\",\"level\":\"%s\",\"event\":", level_names[lvl]);
		strbuf_json_str(&sb, event, strlen(event));
		for (i = 0; i + 1 < nkv; i += 2) {
			strbuf_putc(&sb, ',');
			strbuf_json_str(&sb, kv[i], strlen(kv[i]));
			strbuf_putc(&sb, ':');
			if (all_digits(kv[i + 1]) && strcmp(kv[i], "rids") != 0)
				strbuf_puts(&sb, kv[i + 1]);
			else
				strbuf_json_str(&sb, kv[i + 1], strlen(kv[i + 1]));
		}
		strbuf_puts(&sb, ",\"text\":");
		strbuf_json_str(&sb, text.s, text.len);
		strbuf_putc(&sb, '}');
	}
	emit(lvl, &sb);
	strbuf_free(&sb);
	strbuf_free(&text);
}

static void
vlog_free(enum log_level lvl, int with_errno, const char *fmt, va_list ap)
{
	struct strbuf msg = STRBUF_INIT;
	int saved = errno;

	strbuf_vprintf(&msg, fmt, ap);
	if (with_errno)
		strbuf_printf(&msg, ": %s", strerror(saved));
	mlog(lvl, "diagnostic", "{text}", "text", msg.s ? msg.s : "", NULL);
	strbuf_free(&msg);
	errno = saved;
}

#define DEFINE_LOGFN(name, lvl, err, guard)			\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
								\
	if (guard)						\
		return;						\
	va_start(ap, fmt);					\
	vlog_free(lvl, err, fmt, ap);				\
	va_end(ap);						\
}

DEFINE_LOGFN(log_info, LOG_LVL_INFO, 0, 0)
DEFINE_LOGFN(log_warnx, LOG_LVL_WARNING, 0, 0)
DEFINE_LOGFN(log_warn, LOG_LVL_WARNING, 1, 0)
DEFINE_LOGFN(log_crit, LOG_LVL_CRITICAL, 0, 0)
DEFINE_LOGFN(log_debug, LOG_LVL_DEBUG, 0, !log_debug_on)
