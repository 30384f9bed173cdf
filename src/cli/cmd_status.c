/*
 * cmd_status.c - `postern status [-c FILE] [--json]`: the one screen an
 * admin reads first.  Is the daemon up (exit 0) or not (exit 1, said on
 * the first line), its version, uptime and processes, the listeners,
 * delivery paused or not, the queue by destination with the oldest age,
 * certificates by expiry, and the last delivery TLS failures.
 *
 * Sources, none of which needs the metrics listener: the pid file and
 * <data_dir>/postern.status that the daemon keeps (daemon_status.h),
 * the spool (queue_stats.h), the certificate store (cert_expiry.h) and
 * the configuration.  With the daemon stopped it still shows the queue,
 * the configured listeners and the certificates.
 *
 * Run as root it acts as the configuration's user (runas_act_as_in:
 * that user's files, also below a directory the user cannot enter), like
 * `postern queue`; as that user it works directly; anyone else cannot
 * read data_dir and is told so.  It never writes: a spool that does not
 * exist yet is reported empty, not created.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cert_expiry.h"
#include "cmd.h"
#include "conf.h"
#include "daemon_status.h"
#include "queue_stats.h"
#include "runas.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define TEXT_DESTS	10	/* destinations on the screen (JSON: all) */

/* One certificate line: a store entry and/or the listeners using it. */
struct st_cert {
	struct dstatus_cert	c;
	char			listeners[256];	/* "a, b" */
	int			in_store;
};

struct st {
	const struct conf	*conf;
	long			 pid;		/* running serve, or 0 */
	int			 have_status;	/* postern.status read */
	int			 running;
	const char		*why_down;
	struct dstatus		 ds;
	int			 paused;
	int			 have_queue;
	struct queue_stats	 q;
	char			 qwhy[512];
	struct st_cert		 certs[2 * DSTATUS_MAX_CERTS];
	size_t			 ncerts;
	int64_t			 now;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern status [-c FILE] [--json]\n"
	    "  Is the daemon running (exit 0) or not (exit 1)?  What it does:\n"
	    "    version, uptime, processes, listeners, delivery paused or not,\n"
	    "    the queue by destination (active, deferred, held, oldest),\n"
	    "    certificates by expiry, the last delivery TLS failures.\n"
	    "    Works with the daemon stopped; run it as root or as the\n"
	    "    configuration's user (data_dir must be readable).\n"
	    "  -c FILE   configuration (default as for serve)\n"
	    "  --json    the same as one JSON document\n");
}

/* ------------------------------------------------------------ gather */

static void
gather_daemon(struct st *s)
{
	char why[512];

	s->pid = daemon_status_pid(s->conf->data_dir);
	s->have_status = daemon_status_read(s->conf->data_dir, &s->ds, why,
	    sizeof(why)) == 0;
	s->running = s->pid > 0 && (!s->have_status || (s->ds.running &&
	    s->ds.b.pid == s->pid));
	if (s->running)
		return;
	if (s->have_status && s->ds.running)
		s->why_down = "it stopped without cleaning up (crashed or "
		    "killed): start it again";
	else if (s->have_status)
		s->why_down = "it was stopped";
	else
		s->why_down = "it never ran with this data_dir";
}

static void
gather_queue(struct st *s)
{
	struct queue_stats_cache *c;
	struct spool *sp;
	char path[4096];
	struct stat sb;

	if (bsnprintf(path, sizeof(path), "%s/spool", s->conf->data_dir) ||
	    stat(path, &sb) == -1) {
		bstrlcpy(s->qwhy, "no spool yet", sizeof(s->qwhy));
		return;
	}
	if ((sp = spool_open(s->conf->data_dir, s->qwhy, sizeof(s->qwhy))) ==
	    NULL)
		return;
	s->paused = s->conf->paused || spool_paused(sp);
	c = queue_stats_cache_new();
	s->have_queue = queue_stats_scan(sp, c, &s->q, s->qwhy,
	    sizeof(s->qwhy)) == 0;
	queue_stats_cache_free(c);
	spool_free(sp);
}

/* Add a listener's certificate to its store line, or a line of its own. */
static void
cert_add_listener(struct st *s, const struct dstatus_cert *c)
{
	struct st_cert *e;
	size_t i, len;

	for (i = 0; i < s->ncerts; i++)
		if (strcmp(s->certs[i].c.certificate, c->certificate) == 0)
			break;
	if (i == s->ncerts) {
		if (s->ncerts == sizeof(s->certs) / sizeof(s->certs[0]))
			return;
		e = &s->certs[s->ncerts++];
		memset(e, 0, sizeof(*e));
		e->c = *c;
	}
	e = &s->certs[i];
	len = strlen(e->listeners);
	(void)bsnprintf(e->listeners + len, sizeof(e->listeners) - len, "%s%s",
	    len ? ", " : "", c->listener);
}

static int
by_expiry(const void *a, const void *b)
{
	const struct st_cert *x = a, *y = b;

	if (x->c.not_after != y->c.not_after)
		return x->c.not_after < y->c.not_after ? -1 : 1;
	return strcmp(x->c.certificate, y->c.certificate);
}

static void
gather_certs(struct st *s)
{
	struct dstatus_cert v[DSTATUS_MAX_CERTS];
	char why[512];
	size_t i, n;
	int k;

	k = cert_expiry_store(s->conf->data_dir, v, DSTATUS_MAX_CERTS, why,
	    sizeof(why));
	for (i = 0; k > 0 && i < (size_t)k; i++) {
		memset(&s->certs[s->ncerts], 0, sizeof(s->certs[0]));
		s->certs[s->ncerts].c = v[i];
		s->certs[s->ncerts++].in_store = 1;
	}
	if (s->running && s->have_status) {
		for (i = 0; i < s->ds.b.ncerts; i++)
			cert_add_listener(s, &s->ds.b.certs[i]);
	} else {
		n = cert_expiry_listeners(s->conf, v, DSTATUS_MAX_CERTS);
		for (i = 0; i < n; i++)
			cert_add_listener(s, &v[i]);
	}
	qsort(s->certs, s->ncerts, sizeof(s->certs[0]), by_expiry);
}

/* -------------------------------------------------------------- text */

static void
fmt_time(int64_t t, int json, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, json ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S "
	    "UTC", &tm);
}

/* "45 s", "12 min", "3 h 5 min", "2 d 4 h" */
static void
fmt_age(int64_t secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		bsnprintf(buf, len, "%lld s", (long long)secs);
	else if (secs < 7200)
		bsnprintf(buf, len, "%lld min", (long long)(secs / 60));
	else if (secs < 172800)
		bsnprintf(buf, len, "%lld h %lld min", (long long)(secs / 3600),
		    (long long)(secs % 3600 / 60));
	else
		bsnprintf(buf, len, "%lld d %lld h", (long long)(secs / 86400),
		    (long long)(secs % 86400 / 3600));
}

static void
text_head(const struct st *s)
{
	char t[64], age[64];

	if (!s->running) {
		printf("postern is NOT running (%s; data_dir %s)\n",
		    s->why_down, s->conf->data_dir);
		return;
	}
	if (!s->have_status) {
		printf("postern is running: pid %ld (no status file: %s/%s "
		    "is missing)\n", s->pid, s->conf->data_dir, DSTATUS_FILE);
		return;
	}
	fmt_time(s->ds.b.started, 0, t, sizeof(t));
	fmt_age(s->now - s->ds.b.started, age, sizeof(age));
	printf("postern %s is running: pid %ld, up %s (since %s)\n",
	    s->ds.b.version, s->pid, age, t);
	printf("configuration: %s", s->ds.b.conf_path);
	if (s->ds.b.reloaded) {
		fmt_time(s->ds.b.reloaded, 0, t, sizeof(t));
		printf(", reloaded %s", t);
	}
	printf("%s\n", s->ds.b.reload_refused ? "; the last reload was "
	    "refused (see the log)" : "");
}

static void
text_processes(const struct st *s)
{
	const struct dstatus_child *c;
	struct strbuf w = STRBUF_INIT, o = STRBUF_INIT;
	size_t i, nw = 0;

	for (i = 0; i < s->ds.b.nchildren; i++) {
		c = &s->ds.b.children[i];
		if (c->generation != s->ds.b.generation)
			continue;	/* draining after a reload */
		if (c->role >= 0) {
			strbuf_printf(&w, "%s%lld", nw++ ? ", " : "",
			    (long long)c->pid);
		} else if (c->role == DSTATUS_ROLE_QMGR)
			strbuf_printf(&o, ", queue manager %lld",
			    (long long)c->pid);
		else if (c->role == DSTATUS_ROLE_METRICS)
			strbuf_printf(&o, ", metrics %lld on http://%s:%d/"
			    "metrics", (long long)c->pid,
			    s->ds.b.metrics_address, s->ds.b.metrics_port);
	}
	printf("processes: %zu worker%s (%s)%s\n", nw, nw == 1 ? "" : "s",
	    w.s ? w.s : "", o.s ? o.s : "");
	strbuf_free(&w);
	strbuf_free(&o);
}

static void
text_listeners(const struct st *s)
{
	const struct conf_listener *l;
	const struct dstatus_listener *d;
	char ep[96];
	size_t i;

	printf("listeners%s:\n", s->running ? "" : " (configured)");
	if (s->running && s->have_status) {
		for (i = 0; i < s->ds.b.nlisteners; i++) {
			d = &s->ds.b.listeners[i];
			bsnprintf(ep, sizeof(ep), "%s:%d", d->address, d->port);
			printf("  %-12s %-22s tls %-9s auth %s%s\n", d->name, ep,
			    d->tls, d->auth, d->proxy_protocol ?
			    "  proxy_protocol" : "");
		}
		return;
	}
	for (i = 0; i < s->conf->nlisteners; i++) {
		l = &s->conf->listeners[i];
		bsnprintf(ep, sizeof(ep), "%s:%d", l->address, l->port);
		printf("  %-12s %-22s tls %s\n", l->name, ep,
		    conf_listener_tls_name(l->tls));
	}
}

static void
text_queue(const struct st *s)
{
	const struct queue_dest *d;
	char age[64];
	size_t i;

	if (!s->have_queue) {
		printf("queue: unknown (%s)\n", s->qwhy);
		return;
	}
	fmt_age(s->now - s->q.oldest, age, sizeof(age));
	printf("queue: %llu active, %llu deferred, %llu held%s%s\n",
	    (unsigned long long)s->q.active, (unsigned long long)s->q.deferred,
	    (unsigned long long)s->q.held, s->q.oldest ? "; oldest " : "",
	    s->q.oldest ? age : "");
	if (s->q.ndests > 0)
		printf("  %-32s %8s %8s %6s  %s\n", "DESTINATION", "ACTIVE",
		    "DEFERRED", "HELD", "OLDEST");
	for (i = 0; i < s->q.ndests && i < TEXT_DESTS; i++) {
		d = &s->q.dests[i];
		fmt_age(s->now - d->oldest, age, sizeof(age));
		printf("  %-32s %8llu %8llu %6llu  %s\n", d->domain,
		    (unsigned long long)d->active,
		    (unsigned long long)d->deferred,
		    (unsigned long long)d->held, d->oldest ? age : "-");
	}
	if (s->q.ndests > TEXT_DESTS)
		printf("  ... and %zu more destinations (`postern status "
		    "--json` lists every one)\n", s->q.ndests - TEXT_DESTS);
	if (s->q.unreadable > 0)
		printf("  %llu messages could not be read (`postern queue "
		    "list`)\n", (unsigned long long)s->q.unreadable);
}

static void
text_certs(const struct st *s)
{
	const struct st_cert *e;
	char t[64], left[64];
	size_t i;
	int64_t d;

	printf("certificates (soonest expiry first):%s\n", s->ncerts ? "" :
	    " none");
	for (i = 0; i < s->ncerts; i++) {
		e = &s->certs[i];
		if (e->c.not_after == 0) {
			printf("  %-16s cannot be read (`postern cert check "
			    "%s`)\n", e->c.certificate, e->c.certificate);
			continue;
		}
		fmt_time(e->c.not_after, 0, t, sizeof(t));
		d = (e->c.not_after - s->now) / 86400;
		bsnprintf(left, sizeof(left), e->c.not_after < s->now ?
		    "EXPIRED" : "in %lld days", (long long)d);
		printf("  %-16s %-24s expires %.10s (%s)%s%s%s\n",
		    e->c.certificate, e->c.subject, t, left,
		    e->listeners[0] ? "  listeners " : "  store only",
		    e->listeners, e->c.self_signed ? "  self-signed" : "");
	}
}

static void
text_tls(const struct st *s)
{
	const struct dstatus_tls_failure *f;
	char t[64];
	size_t i;

	if (!s->have_status)
		return;
	printf("recent delivery TLS failures (newest first):%s\n",
	    s->ds.ntls ? "" : " none");
	for (i = 0; i < s->ds.ntls; i++) {
		f = &s->ds.tls[i];
		fmt_time(f->when, 0, t, sizeof(t));
		printf("  %s  %s  %s: %s\n", t, f->domain, f->host, f->reason);
	}
}

static void
print_text(const struct st *s)
{
	text_head(s);
	if (s->running && s->have_status)
		text_processes(s);
	printf("delivery: %s\n", s->paused ? "PAUSED (`postern queue "
	    "resume` restarts it)" : "not paused");
	text_listeners(s);
	text_queue(s);
	text_certs(s);
	text_tls(s);
}

/* -------------------------------------------------------------- JSON */

static void
jstr(struct strbuf *sb, const char *key, const char *v, int comma)
{
	strbuf_printf(sb, "%s\"%s\": ", comma ? ", " : "", key);
	strbuf_json_str(sb, v, strlen(v));
}

/* ", "key": "2026-01-01T00:00:00Z"" (null for 0); the comma first. */
static void
jtime(struct strbuf *sb, const char *key, int64_t t)
{
	char b[64];

	if (t == 0) {
		strbuf_printf(sb, ", \"%s\": null", key);
		return;
	}
	fmt_time(t, 1, b, sizeof(b));
	jstr(sb, key, b, 1);
}

static void
json_daemon(struct strbuf *sb, const struct st *s)
{
	const struct dstatus_block *b = &s->ds.b;
	const struct dstatus_child *c;
	size_t i, n = 0;

	strbuf_printf(sb, "\"running\": %s", s->running ? "true" : "false");
	if (!s->running)
		jstr(sb, "reason", s->why_down, 1);
	strbuf_printf(sb, ", \"pid\": %ld", s->pid);
	jstr(sb, "version", s->have_status ? b->version : POSTERN_VERSION, 1);
	jstr(sb, "data_dir", s->conf->data_dir, 1);
	if (!s->running || !s->have_status)
		return;
	jstr(sb, "configuration", b->conf_path, 1);
	jtime(sb, "started", b->started);
	strbuf_printf(sb, ", \"uptime_seconds\": %lld, \"generation\": %d",
	    (long long)(s->now - b->started), b->generation);
	jtime(sb, "reloaded", b->reloaded);
	strbuf_printf(sb, ", \"last_reload_refused\": %s, \"processes\": [",
	    b->reload_refused ? "true" : "false");
	for (i = 0; i < b->nchildren; i++) {
		c = &b->children[i];
		strbuf_printf(sb, "%s{\"pid\": %lld", n++ ? ", " : "",
		    (long long)c->pid);
		jstr(sb, "role", c->role == DSTATUS_ROLE_QMGR ? "queue manager" :
		    c->role == DSTATUS_ROLE_METRICS ? "metrics" : "worker", 1);
		strbuf_printf(sb, ", \"generation\": %d", c->generation);
		jtime(sb, "started", c->started);
		strbuf_putc(sb, '}');
	}
	strbuf_puts(sb, "]");
	if (b->metrics_port) {
		strbuf_puts(sb, ", \"metrics\": {");
		jstr(sb, "address", b->metrics_address, 0);
		strbuf_printf(sb, ", \"port\": %d}", b->metrics_port);
	} else
		strbuf_puts(sb, ", \"metrics\": null");
}

static void
json_listener(struct strbuf *sb, const char *name, const char *address,
    int port, const char *tls, const char *auth, int proxy, int comma)
{
	strbuf_puts(sb, comma ? ", {" : "{");
	jstr(sb, "name", name, 0);
	jstr(sb, "address", address, 1);
	strbuf_printf(sb, ", \"port\": %d", port);
	jstr(sb, "tls", tls, 1);
	jstr(sb, "auth", auth, 1);
	strbuf_printf(sb, ", \"proxy_protocol\": %s}", proxy ? "true" :
	    "false");
}

static void
json_listeners(struct strbuf *sb, const struct st *s)
{
	const struct conf_listener *l;
	const struct dstatus_listener *d;
	size_t i;

	strbuf_puts(sb, ", \"listeners\": [");
	if (s->running && s->have_status)
		for (i = 0; i < s->ds.b.nlisteners; i++) {
			d = &s->ds.b.listeners[i];
			json_listener(sb, d->name, d->address, d->port, d->tls,
			    d->auth, d->proxy_protocol, i > 0);
		}
	else
		for (i = 0; i < s->conf->nlisteners; i++) {
			l = &s->conf->listeners[i];
			json_listener(sb, l->name, l->address, l->port,
			    conf_listener_tls_name(l->tls), l->auth ==
			    LISTENER_AUTH_OFF ? "off" : l->auth ==
			    LISTENER_AUTH_OPTIONAL ? "optional" : "required",
			    l->proxy_protocol, i > 0);
		}
	strbuf_puts(sb, "]");
}

static void
json_queue(struct strbuf *sb, const struct st *s)
{
	const struct queue_dest *d;
	size_t i;

	strbuf_printf(sb, ", \"delivery_paused\": %s, \"queue\": ",
	    s->paused ? "true" : "false");
	if (!s->have_queue) {
		strbuf_puts(sb, "null");
		return;
	}
	strbuf_printf(sb, "{\"active\": %llu, \"deferred\": %llu, \"held\": "
	    "%llu, \"oldest_age_seconds\": %lld, \"unreadable\": %llu, "
	    "\"destinations\": [", (unsigned long long)s->q.active,
	    (unsigned long long)s->q.deferred, (unsigned long long)s->q.held,
	    (long long)(s->q.oldest ? s->now - s->q.oldest : 0),
	    (unsigned long long)s->q.unreadable);
	for (i = 0; i < s->q.ndests; i++) {
		d = &s->q.dests[i];
		strbuf_puts(sb, i ? ", {" : "{");
		jstr(sb, "destination", d->domain, 0);
		strbuf_printf(sb, ", \"active\": %llu, \"deferred\": %llu, "
		    "\"held\": %llu, \"oldest_age_seconds\": %lld}",
		    (unsigned long long)d->active,
		    (unsigned long long)d->deferred,
		    (unsigned long long)d->held,
		    (long long)(d->oldest ? s->now - d->oldest : 0));
	}
	strbuf_puts(sb, "]}");
}

/* ", "key": ["a", "b"]" from "a, b" (listener names have no ", "). */
static void
json_names(struct strbuf *sb, const char *key, const char *list)
{
	const char *p = list, *q;
	int n = 0;

	strbuf_printf(sb, ", \"%s\": [", key);
	while (*p != '\0') {
		q = strstr(p, ", ");
		if (q == NULL)
			q = p + strlen(p);
		strbuf_puts(sb, n++ ? ", " : "");
		strbuf_json_str(sb, p, (size_t)(q - p));
		p = *q ? q + 2 : q;
	}
	strbuf_putc(sb, ']');
}

static void
json_certs(struct strbuf *sb, const struct st *s)
{
	const struct st_cert *e;
	size_t i;

	strbuf_puts(sb, ", \"certificates\": [");
	for (i = 0; i < s->ncerts; i++) {
		e = &s->certs[i];
		strbuf_puts(sb, i ? ", {" : "{");
		jstr(sb, "certificate", e->c.certificate, 0);
		jstr(sb, "subject", e->c.subject, 1);
		jtime(sb, "not_after", e->c.not_after);
		strbuf_printf(sb, ", \"expires_in_seconds\": %lld, "
		    "\"self_signed\": %s, \"in_store\": %s",
		    (long long)(e->c.not_after ? e->c.not_after - s->now : 0),
		    e->c.self_signed ? "true" : "false",
		    e->in_store ? "true" : "false");
		json_names(sb, "listeners", e->listeners);
		strbuf_putc(sb, '}');
	}
	strbuf_puts(sb, "]");
}

static void
json_tls(struct strbuf *sb, const struct st *s)
{
	const struct dstatus_tls_failure *f;
	size_t i;

	strbuf_puts(sb, ", \"tls_failures\": [");
	for (i = 0; s->have_status && i < s->ds.ntls; i++) {
		f = &s->ds.tls[i];
		strbuf_puts(sb, i ? ", {" : "{");
		jstr(sb, "destination", f->domain, 0);
		jtime(sb, "time", f->when);
		jstr(sb, "host", f->host, 1);
		jstr(sb, "reason", f->reason, 1);
		strbuf_putc(sb, '}');
	}
	strbuf_puts(sb, "]");
}

static void
print_json(const struct st *s)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_putc(&sb, '{');
	json_daemon(&sb, s);
	json_listeners(&sb, s);
	json_queue(&sb, s);
	json_certs(&sb, s);
	json_tls(&sb, s);
	strbuf_puts(&sb, "}\n");
	fwrite(sb.s, 1, sb.len, stdout);
	strbuf_free(&sb);
}

/* ------------------------------------------------------------- entry */

/* data_dir readable?  0, or the exit status after saying why. */
static int
check_access(const struct conf *c)
{
	if (access(c->data_dir, R_OK | X_OK) == 0 || errno == ENOENT)
		return 0;
	return cmd_fail("cannot read data_dir %s: %s (run `postern status` "
	    "as root or as user %s)", c->data_dir, strerror(errno), c->user);
}

/* `postern status [-c FILE] [--json]`. */
int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct st s;
	const char *path = NULL;
	struct conf *conf;
	int c, json = 0, r;

	optind = 1;
	opterr = 0;	/* our own one-line usage errors */
	while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		case ':': return cmd_usage_error("status", NULL, "%s needs a "
			      "FILE", argv[optind - 1]);
		default: return cmd_usage_error("status", NULL, "unknown option "
			      "'%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cmd_usage_error("status", NULL, "unexpected argument "
		    "'%s'", argv[optind]);
	if ((conf = conf_load_for_command(path)) == NULL)
		return 1;
	/* as root: the user's view (below a directory it cannot enter
	 * too); a data_dir that does not exist is not made */
	if ((access(conf->data_dir, F_OK) == 0 &&
	    runas_act_as_in(conf->user, conf->data_dir) == -1) ||
	    (r = check_access(conf)) != 0) {
		conf_free(conf);
		return 1;
	}
	memset(&s, 0, sizeof(s));
	s.conf = conf;
	s.now = wall_now();
	gather_daemon(&s);
	gather_queue(&s);
	gather_certs(&s);
	if (json)
		print_json(&s);
	else
		print_text(&s);
	queue_stats_clear(&s.q);
	conf_free(conf);
	return s.running ? 0 : 1;
}
