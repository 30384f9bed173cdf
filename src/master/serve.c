/*
 * serve.c - `postern serve`: start-up and supervision.
 *
 * Order: load and validate the configuration; create the data directory
 * and spool, recover it (drop unfinished receptions, find the highest MID);
 * bind every listener (one SO_REUSEPORT socket per worker); drop
 * privileges when started as root; then fork one queue manager, one
 * SMTP worker per CPU and, with a `metrics` block, the metrics process
 * (metrics_http.h says why it is a process of its own).  The master
 * only supervises: it restarts a child
 * that dies, forwards SIGUSR1 to the queue manager, reloads on SIGHUP,
 * reopens the log files on SIGUSR2 (logrotate), and on SIGTERM/SIGINT
 * stops the children and exits.  Workers share nothing hot: each has its
 * own event loop, spool writer and commit thread.
 *
 * Under a service manager (systemd Type=notify, see sdnotify.c) the master
 * says READY=1 once every listener is bound, the spool recovered and the
 * children started; RELOADING=1 / READY=1 around a reload; STATUS= lines;
 * WATCHDOG=1 from its signal loop; STOPPING=1 at shutdown.
 *
 * For `postern status` the master keeps <data_dir>/postern.status
 * (daemon_status.h) up to date: written at start, at each reload and
 * when a child starts, never per message.  The metrics counters
 * (metrics.h) live in memory it shares with its children before the
 * first fork, so they outlive any child.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cert_expiry.h"
#include "certstore.h"
#include "cmd.h"
#include "conf.h"
#include "throttle.h"
#include "connlimit.h"
#include "daemon_status.h"
#include "dns.h"
#include "http_conn.h"
#include "inject.h"
#include "pickup.h"
#include "ids.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "qmgr.h"
#include "runas.h"
#include "sdnotify.h"
#include "spool.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"
#include "workdir.h"

#define MAX_WORKERS	64
#define WORKER_GRACE	10	/* seconds sessions get to end at SIGTERM */

struct child {
	pid_t	pid;
	int	role;		/* DSTATUS_ROLE_QMGR, _METRICS, or
				 * the worker index */
	int	gen;		/* configuration generation it runs */
	double	started;
	int64_t	since;		/* wall clock of its start */
};

static struct conf	*sconf;
static const char	*sconf_path;	/* NULL = embedded default */
static char		*sdata_dir;	/* data_dir, absolute (we work in
					 * it: workdir.h) */
static char		 sstart_dir[4096]; /* cwd at start: the embedded
					 * default's relative paths */
static int		 generation;
static struct spool	*sspool;
static int		*sfds;		/* [worker][listener] */
static SSL_CTX		**stls;		/* [listener]: server TLS, or NULL */
static int		*shttp_fds;	/* [worker]: the HTTPS API, or NULL */
static SSL_CTX		*shttp_tls;	/* its server context */
/* "message committed" datagrams from the workers to the queue manager:
 * one socketpair per generation, so a queue manager that a reload is
 * stopping never reads (and delivers under the old configuration) a MID
 * a new-generation worker committed. */
static int		 snotify[2] = { -1, -1 };
static int		 snworkers;
/* two generations meet during a reload */
static struct child	 children[2 * (MAX_WORKERS + 2)];
static int		 nchildren;
static int		 stopping;	/* SIGTERM seen: do not restart */
static const char	*snote;		/* appended to STATUS= (reload refused) */
static int		 smetrics = -1;	/* the metrics listener, or -1 */

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern serve [-c FILE] [--foreground] [--debug]\n"
	    "  Run the mail transfer agent.\n"
	    "  -c FILE        configuration (default %s if it exists, else the\n"
	    "                 embedded default: loopback ports 2525..., data in\n"
	    "                 ./postern-data)\n"
	    "  --foreground   stay attached to the terminal (default: detach)\n"
	    "  --debug        also log debug lines\n", CONF_DEFAULT_PATH);
}

static void	start_child(int role);

static struct event_base *wbase;
static int		 wparts;	/* SMTP, HTTP still finishing */

static void
worker_stopped(void)
{
	if (--wparts <= 0)
		event_base_loopexit(wbase, NULL);
}

/* SIGTERM: finish in-flight commits, 421 to everyone, then exit. */
static void
worker_term_cb(evutil_socket_t fd, short what, void *arg)
{
	if (wparts > 0)
		return;
	wparts = 3;
	http_conn_shutdown(worker_stopped);
	pickup_shutdown(worker_stopped);
	listener_shutdown(WORKER_GRACE, 1, worker_stopped);
}

/* SIGUSR2 (a reload started a new generation): accept no more, let the
 * sessions we have finish, then exit. */
static void
worker_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	if (wparts > 0)
		return;
	wparts = 3;
	http_conn_shutdown(worker_stopped);
	pickup_shutdown(worker_stopped);
	listener_shutdown(0, 0, worker_stopped);
}

/* SIGHUP: reopen the log file (after rotation). */
static void
hup_cb(evutil_socket_t fd, short what, void *arg)
{
	log_reopen();
}

static void
watch_hup(struct event_base *base)
{
	struct event *ev = evsignal_new(base, SIGHUP, hup_cb, NULL);

	if (ev == NULL || event_add(ev, NULL) == -1)
		log_warnx("cannot watch SIGHUP");
}

/* A worker: accept and serve SMTP sessions until SIGTERM. */
static int
worker_main(int idx)
{
	struct event_base *base = event_base_new();
	struct event *ev;
	char why[256];

	if (base == NULL || spool_attach_loop(sspool, base) == -1)
		fatalx("worker %d: cannot start its event loop", idx);
	close(snotify[0]);
	if (dns_init(base, sconf, why, sizeof(why)) == -1)
		log_warnx("worker %d: %s; client host names will be unknown",
		    idx, why);
	if (listener_attach(base, sconf, sspool,
	    &sfds[(size_t)idx * sconf->nlisteners], snotify[1], stls) == -1)
		fatalx("worker %d: cannot attach listeners", idx);
	inject_init(sspool, snotify[1], sconf->hostname);
	if (shttp_fds != NULL && shttp_tls != NULL && http_conn_attach(base,
	    sconf, sspool, shttp_fds[idx], shttp_tls) == -1)
		fatalx("worker %d: cannot attach the HTTPS API", idx);
	/* One taker of pickup files per generation: worker 0. */
	if (idx == 0 && sconf->pickup.dir != NULL &&
	    pickup_attach(base, sconf) == -1)
		log_warnx("worker %d: the pickup directory is not watched", idx);
	wbase = base;
	log_attach_loop(base);
	connlimit_set_worker(idx);
	metrics_set_slot(METRICS_SLOT_WORKER(idx), sconf);
	ev = evsignal_new(base, SIGTERM, worker_term_cb, base);
	if (ev == NULL || event_add(ev, NULL) == -1)
		fatalx("worker %d: cannot watch signals", idx);
	ev = evsignal_new(base, SIGUSR2, worker_drain_cb, base);
	if (ev == NULL || event_add(ev, NULL) == -1)
		fatalx("worker %d: cannot watch signals", idx);
	watch_hup(base);
	event_base_dispatch(base);
	log_flush();
	return 0;
}

/* The queue manager process. */
static int
qmgr_main(void)
{
	struct event_base *base = event_base_new();
	int r;

	if (base == NULL)
		fatalx("queue manager: cannot start its event loop");
	close(snotify[1]);
	watch_hup(base);
	log_attach_loop(base);
	metrics_set_slot(METRICS_SLOT_QMGR, sconf);
	r = qmgr_run(base, sconf, sspool, snotify[0]);
	log_flush();
	return r;
}

/* The metrics process: GET /metrics on the socket the master bound. */
static int
metrics_main(void)
{
	struct event_base *base = event_base_new();
	int r;

	if (base == NULL)
		fatalx("metrics: cannot start its event loop");
	close(snotify[0]);
	close(snotify[1]);
	watch_hup(base);
	log_attach_loop(base);
	if ((r = metrics_http_run(base, sconf, sspool, smetrics)) == -1)
		log_crit("metrics: cannot serve on %s port %d",
		    sconf->metrics_address, sconf->metrics_port);
	log_flush();
	return r;
}

static int
child_main(int role)
{
	if (role == DSTATUS_ROLE_QMGR)
		return qmgr_main();
	if (role == DSTATUS_ROLE_METRICS)
		return metrics_main();
	return worker_main(role);
}

static const char *
role_name(int role)
{
	return role == DSTATUS_ROLE_QMGR ? "queue manager" :
	    role == DSTATUS_ROLE_METRICS ? "metrics process" : "worker";
}

static pid_t
spawn(int role)
{
	sigset_t none;
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* Dispositions first, then unblock: a SIGHUP the master got while
	 * forking must not kill the child before its loop watches it. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);	/* watched in the loop (log reopen) */
	signal(SIGUSR1, SIG_IGN);	/* the queue manager watches it (rescan)
					 * and rescans at start anyway */
	signal(SIGUSR2, SIG_IGN);	/* workers watch it in their loop */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	_exit(child_main(role) == 0 ? 0 : 1);
}

/*
 * Connections, spool files in delivery and maildir files all take file
 * descriptors: use the hard limit (a service manager's soft default of
 * 1024 is too small for an MTA), up to 1 << 20.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20))
		rl.rlim_max = 1 << 20;
	if (rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fprintf(stderr, "postern: cannot raise the open file limit to "
		    "%lu: %s\n", (unsigned long)rl.rlim_cur, strerror(errno));
}

/* Make data_dir belong to the unprivileged user (created as root). */
static int
prepare_data_dir(const char *user, const char *data_dir)
{
	struct passwd *pw;

	if (mkdir_p(data_dir, 0700) == -1) {
		fprintf(stderr, "postern: cannot create data_dir %s: %s\n",
		    data_dir, strerror(errno));
		return -1;
	}
	if (geteuid() != 0 || strcmp(user, "root") == 0)
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		fprintf(stderr, "postern: user '%s' does not exist: create it "
		    "(adduser --system --group %s) or set `user` in the "
		    "configuration\n", user, user);
		return -1;
	}
	if (chown(data_dir, pw->pw_uid, pw->pw_gid) == -1) {
		fprintf(stderr, "postern: cannot give %s to user %s: %s\n",
		    data_dir, user, strerror(errno));
		return -1;
	}
	return 0;
}

/* After binding: setgroups, setresgid, setresuid, in that order. */
static int
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (strcmp(user, "root") == 0) {
		log_warnx("running as root because user = \"root\": set `user` "
		    "to an unprivileged account");
		return 0;
	}
	if ((pw = getpwnam(user)) == NULL)
		return -1;
	if (runas_become_user(user) == -1)
		return -1;
	log_info("running as user %s", user);
	return 0;
}

static int
bind_all(void)
{
	char why[512];
	size_t l;
	int w, bound = 0;

	sfds = xcalloc((size_t)snworkers * sconf->nlisteners, sizeof(*sfds));
	for (l = 0; l < sconf->nlisteners; l++) {
		const struct conf_listener *cl = &sconf->listeners[l];
		for (w = 0; w < snworkers; w++) {
			int *fd = &sfds[(size_t)w * sconf->nlisteners + l];
			*fd = listener_bind(cl, 1, why, sizeof(why));
			if (*fd == -1) {
				fprintf(stderr, "postern: %s\n", why);
				return -1;
			}
		}
		log_info("listener %s on %s port %d", cl->name, cl->address,
		    cl->port);
		bound++;
	}
	if (sconf->http != NULL) {
		shttp_fds = xcalloc((size_t)snworkers, sizeof(*shttp_fds));
		for (w = 0; w < snworkers; w++)
			if ((shttp_fds[w] = listener_bind(sconf->http, 1, why,
			    sizeof(why))) == -1) {
				fprintf(stderr, "postern: %s\n", why);
				return -1;
			}
		log_info("HTTPS API on %s port %d", sconf->http->address,
		    sconf->http->port);
		bound++;
	}
	if (bound == 0) {
		fprintf(stderr, "postern: no listener could be started\n");
		return -1;
	}
	return 0;
}

/* The metrics listener, bound with the SMTP ones (before the privilege
 * drop, so a port below 1024 works too). */
static int
bind_metrics(void)
{
	struct conf_listener l;
	char why[512];

	if (sconf->metrics_port == 0)
		return 0;
	memset(&l, 0, sizeof(l));
	l.name = (char *)"metrics";
	l.address = sconf->metrics_address;
	l.port = sconf->metrics_port;
	if ((smetrics = listener_bind(&l, 0, why, sizeof(why))) == -1) {
		fprintf(stderr, "postern: %s\n", why);
		return -1;
	}
	log_info("metrics on %s port %d (GET /metrics)",
	    sconf->metrics_address, sconf->metrics_port);
	return 0;
}

/* ------------------------------------------------------------------ TLS */

/* SPEC: a listener that needs TLS and has no certificate gets a
 * self-signed demo certificate for the host name, made once and kept.
 * 1 made now (and said so), 0 nothing to do, -1 failed (why). */
static int
ensure_demo_cert(const struct conf *c, const struct conf_listener *l,
    char *why, size_t whylen)
{
	if (!tls_demo_cert_missing(c, l))
		return 0;
	if (certstore_selfsign(c->data_dir, TLS_DEMO_CERT_ID, c->hostname,
	    NULL, 0, 365, "rsa2048", why, whylen) == -1)
		return -1;
	log_warnx("listener %s: no certificate \"default\" in %s/certs, so a "
	    "self-signed demo certificate for %s was generated (valid 365 "
	    "days); peers cannot verify it.  Install a CA-signed one: "
	    "`postern cert csr --cn %s --name default`, then `postern cert "
	    "import --name default --cert SIGNED.pem`", l->name,
	    sdata_dir != NULL ? sdata_dir : c->data_dir,
	    c->hostname, c->hostname);
	return 1;
}

/* Say so when peers cannot verify the listener's certificate or it is
 * about to expire. */
static void
tls_warn_cert(const struct conf_listener *l, SSL_CTX *ctx)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	int days = 0, secs = 0;
	const char *name = l->certificate.id ? l->certificate.id :
	    l->certificate.cert;

	if (leaf == NULL)
		return;
	if (certstore_is_self_signed(leaf))
		log_warnx("certificate %s (listener %s) is self-signed: peers "
		    "cannot verify it (see `postern cert csr` and `postern "
		    "cert import`)", name, l->name);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)) &&
	    days < 30)
		log_warnx("certificate %s (listener %s) %s (`postern cert "
		    "check %s`)", name, l->name, days < 0 || (days == 0 &&
		    secs <= 0) ? "has expired" : "expires within 30 days",
		    name);
	ERR_clear_error();
}

/* Does an earlier TLS listener use the same default certificate?  (Say
 * things about a certificate once, not once per listener.) */
static int
same_cert_before(const struct conf *c, size_t i)
{
	const struct conf_certref *a = &c->listeners[i].certificate, *b;
	size_t j;

	for (j = 0; j < i; j++) {
		if (!conf_listener_needs_tls(c, &c->listeners[j]))
			continue;
		b = &c->listeners[j].certificate;
		if (a->id != NULL && b->id != NULL && strcmp(a->id, b->id) == 0)
			return 1;
		if (a->cert != NULL && b->cert != NULL &&
		    strcmp(a->cert, b->cert) == 0)
			return 1;
	}
	return 0;
}

static void
tls_free_all(SSL_CTX **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		SSL_CTX_free(v[i]);
	free(v);
}

/*
 * Server contexts for every listener that needs TLS.  At start a broken
 * certificate stops us (exit 1, said on stderr and in the log); on reload
 * (old != NULL) the listener keeps its previous context and the log says
 * why.
 */
static SSL_CTX **
tls_build(const struct conf *c, const struct conf *oldc, SSL_CTX **old)
{
	SSL_CTX **v = xcalloc(c->nlisteners, sizeof(*v));
	char why[1024];
	size_t i, j;
	int made;

	for (i = 0; i < c->nlisteners; i++) {
		const struct conf_listener *l = &c->listeners[i];

		if (!conf_listener_needs_tls(c, l))
			continue;
		if ((made = ensure_demo_cert(c, l, why, sizeof(why))) != -1 &&
		    (v[i] = tls_server_ctx_new(c, l, why, sizeof(why))) != NULL) {
			if (!made && !same_cert_before(c, i))
				tls_warn_cert(l, v[i]);
			continue;
		}
		ERR_clear_error();
		for (j = 0; old != NULL && j < oldc->nlisteners; j++)
			if (strcmp(oldc->listeners[j].name, l->name) == 0 &&
			    old[j] != NULL) {
				SSL_CTX_up_ref(old[j]);
				v[i] = old[j];
				break;
			}
		if (v[i] != NULL) {
			log_crit("reload: listener %s: %s; it keeps its previous "
			    "certificate and TLS settings", l->name, why);
			continue;
		}
		log_crit("listener %s: %s", l->name, why);
		fprintf(stderr, "postern: listener %s: %s\n", l->name, why);
		tls_free_all(v, c->nlisteners);
		return NULL;
	}
	return v;
}

/*
 * The HTTPS API's server context (NULL without `http`).  At start a
 * broken certificate stops us; on reload (old != NULL) the API keeps its
 * previous context and the log says why.  *failed is set on a failure
 * at start.
 */
static SSL_CTX *
http_tls_build(const struct conf *c, SSL_CTX *old, int *failed)
{
	SSL_CTX *ctx = NULL;
	char why[1024];

	*failed = 0;
	if (c->http == NULL)
		return NULL;
	if (ensure_demo_cert(c, c->http, why, sizeof(why)) != -1 &&
	    (ctx = tls_server_ctx_new(c, c->http, why, sizeof(why))) != NULL)
		return ctx;
	ERR_clear_error();
	if (old != NULL) {
		log_crit("reload: http: %s; it keeps its previous certificate "
		    "and TLS settings", why);
		SSL_CTX_up_ref(old);
		return old;
	}
	log_crit("http: %s", why);
	fprintf(stderr, "postern: http: %s\n", why);
	*failed = 1;
	return NULL;
}

/* A fresh worker -> queue manager channel for a new generation (the
 * old one stays open in the old generation's processes only). */
static int
notify_channel_new(void)
{
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) == -1)
		return -1;
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	if (snotify[0] != -1)
		close(snotify[0]);
	if (snotify[1] != -1)
		close(snotify[1]);
	snotify[0] = fds[0];
	snotify[1] = fds[1];
	return 0;
}

/* Ask the current generation's queue manager to rescan the spool. */
static void
poke_qmgr(void)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].role == -1 && children[i].gen == generation)
			kill(children[i].pid, SIGUSR1);
}

/* The children as `postern status` shows them. */
static void
publish_children(void)
{
	struct dstatus_child v[sizeof(children) / sizeof(children[0])];
	int i;

	for (i = 0; i < nchildren; i++) {
		v[i].pid = children[i].pid;
		v[i].role = children[i].role;
		v[i].generation = children[i].gen;
		v[i].started = children[i].since;
	}
	daemon_status_set_children(v, (size_t)nchildren);
}

/* Listeners, their certificates and the worker count of this
 * generation, for `postern status` and the metrics. */
static void
publish_config(void)
{
	struct dstatus_cert certs[DSTATUS_MAX_CERTS];
	size_t n;

	n = cert_expiry_listeners(sconf, certs, DSTATUS_MAX_CERTS);
	daemon_status_set_config(sconf, snworkers, generation, certs, n);
}

/* This generation's queue manager, workers and metrics process. */
static void
start_generation(void)
{
	int i;

	start_child(DSTATUS_ROLE_QMGR);
	for (i = 0; i < snworkers; i++)
		start_child(i);
	if (smetrics != -1)
		start_child(DSTATUS_ROLE_METRICS);
	publish_children();
}

static void
start_child(int role)
{
	pid_t pid = spawn(role);

	if (pid == -1) {
		log_warn("fork");
		return;
	}
	children[nchildren].pid = pid;
	children[nchildren].role = role;
	children[nchildren].gen = generation;
	children[nchildren].started = mono_now();
	children[nchildren].since = wall_now();
	nchildren++;
}

static void
reap(void)
{
	pid_t pid;
	int status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < nchildren; i++)
			if (children[i].pid == pid)
				break;
		if (i == nchildren)
			continue;
		if (stopping || children[i].gen != generation) {
			/* stopping, or an old generation done draining: what
			 * an old worker committed after the new queue
			 * manager's first scan went to the old channel */
			int old_worker = !stopping && children[i].role >= 0;

			children[i] = children[--nchildren];
			publish_children();
			if (old_worker)
				poke_qmgr();
			continue;
		}
		log_crit("%s %d exited (%s %d); restarting it",
		    role_name(children[i].role), (int)pid,
		    WIFSIGNALED(status) ? "signal" : "status",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		{
			int role = children[i].role;
			double age = mono_now() - children[i].started;
			children[i] = children[--nchildren];
			if (role >= 0)
				connlimit_reset_worker(role);
			if (age < 1)
				sleep(1);	/* no tight crash loop */
			start_child(role);
			publish_children();
		}
	}
}

/* The signals the master waits for with sigwaitinfo(). */
static void
master_sigmask(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGCHLD);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGUSR1);
	sigaddset(mask, SIGUSR2);
	sigaddset(mask, SIGHUP);
}

/* What a new configuration changes that only a restart can apply. */
static const char *
reload_blocker(const struct conf *a, const struct conf *b)
{
	const struct conf_listener *x, *y;
	size_t i;

	if (strcmp(a->data_dir, b->data_dir) != 0)
		return "data_dir";
	if (strcmp(a->user, b->user) != 0)
		return "user";
	if (a->workers != b->workers)
		return "workers";
	if (strcmp(a->log_file, b->log_file) != 0 || a->log_json != b->log_json)
		return "log";
	if (a->metrics_port != b->metrics_port || (a->metrics_port &&
	    strcmp(a->metrics_address, b->metrics_address) != 0))
		return "metrics";
	if ((a->pickup.dir == NULL) != (b->pickup.dir == NULL) ||
	    (a->pickup.dir != NULL && (strcmp(a->pickup.dir, b->pickup.dir) ||
	    strcmp(a->pickup.group, b->pickup.group))))
		return "pickup";
	if (a->nlisteners != b->nlisteners)
		return "listeners";
	if ((a->http == NULL) != (b->http == NULL) || (a->http != NULL &&
	    (strcmp(a->http->address, b->http->address) != 0 ||
	    a->http->port != b->http->port)))
		return "http";
	for (i = 0; i < a->nlisteners; i++) {
		x = &a->listeners[i];
		y = &b->listeners[i];
		if (strcmp(x->name, y->name) || strcmp(x->address, y->address) ||
		    x->port != y->port)
			return "listeners";
	}
	return NULL;
}

/* Children reopen their log too (a refused reload keeps them running). */
static void
reopen_children(void)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].gen == generation)
			kill(children[i].pid, SIGHUP);
}

/*
 * SIGHUP: reopen the log, read the configuration again and, if it is valid
 * and needs no new sockets, start a new generation of processes with it.
 * The old generation stops accepting at once and finishes its sessions
 * (SIGTERM); the listening sockets never close, so no connection is
 * refused meanwhile.  A bad file changes nothing and says why.
 */
static int
reload(void)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *nc, *old;
	SSL_CTX **ntls, **old_tls, *nhttp, *old_http;
	int failed;
	const char *what;
	size_t k;
	int i, old_gen;

	log_reopen();
	nc = sconf_path != NULL ? conf_load(sconf_path, &errs) :
	    conf_load_string(conf_embedded_default(), "(embedded default)",
	    sstart_dir, &errs);
	if (nc != NULL && errs.n == 0 && strcmp(nc->data_dir, sdata_dir)) {
		log_crit("reload refused: data_dir changed in %s; restart "
		    "postern to apply it", nc->path);
		conf_free(nc);
		reopen_children();
		return -1;
	}
	if (nc != NULL)
		workdir_rebase(nc);
	if (nc == NULL || errs.n > 0) {
		for (k = 0; k < errs.n; k++)
			log_crit("reload refused: %s", errs.msgs[k]);
		log_crit("reload refused: the running configuration stays; "
		    "check with `postern config check`");
		conf_errors_free(&errs);
		conf_free(nc);
		reopen_children();
		return -1;
	}
	if ((what = reload_blocker(sconf, nc)) != NULL) {
		log_crit("reload refused: %s changed in %s; restart postern to "
		    "apply it", what, nc->path);
		conf_free(nc);
		reopen_children();
		return -1;
	}
	if ((ntls = tls_build(nc, sconf, stls)) == NULL) {
		log_crit("reload refused: the running configuration stays");
		conf_free(nc);
		reopen_children();
		return -1;
	}
	nhttp = http_tls_build(nc, shttp_tls, &failed);
	old = sconf;
	old_tls = stls;
	old_http = shttp_tls;
	sconf = nc;
	stls = ntls;
	shttp_tls = nhttp;
	if (notify_channel_new() == -1) {
		log_warn("reload refused: socketpair");
		tls_free_all(ntls, nc->nlisteners);
		SSL_CTX_free(nhttp);
		sconf = old;
		stls = old_tls;
		shttp_tls = old_http;
		conf_free(nc);
		reopen_children();
		return -1;
	}
	old_gen = generation++;
	/* Old queue manager first, so the new one's first scan sees all;
	 * old workers drain: their sessions finish with the old settings,
	 * and the messages they commit meanwhile reach the new queue
	 * manager by a rescan when each of them exits (reap). */
	for (i = 0; i < nchildren; i++)
		if (children[i].gen == old_gen)
			kill(children[i].pid, children[i].role < 0 ? SIGTERM :
			    SIGUSR2);
	publish_config();
	start_generation();
	tls_free_all(old_tls, old->nlisteners);
	SSL_CTX_free(old_http);
	conf_free(old);
	log_info("configuration reloaded from %s", sconf->path);
	return 0;
}

/*
 * The STATUS= line `systemctl status` shows, e.g. "accepting on 3
 * listeners with 2 workers, 12 messages queued, 1 held, delivery paused".
 * The counts are a directory listing of the spool (cheap; once a minute).
 */
static void
service_status(struct strbuf *sb)
{
	uint64_t *mids = NULL;
	size_t nq = 0, nh = 0;

	strbuf_printf(sb, "accepting on %zu listener%s with %d worker%s",
	    sconf->nlisteners, sconf->nlisteners == 1 ? "" : "s", snworkers,
	    snworkers == 1 ? "" : "s");
	if (spool_list(sspool, SPOOL_QUEUE, &mids, &nq) == 0)
		strbuf_printf(sb, ", %zu message%s queued", nq,
		    nq == 1 ? "" : "s");
	else
		strbuf_puts(sb, ", queue unreadable");
	free(mids);
	mids = NULL;
	if (spool_list(sspool, SPOOL_HOLD, &mids, &nh) == 0 && nh > 0)
		strbuf_printf(sb, ", %zu held", nh);
	free(mids);
	if (sconf->paused || spool_paused(sspool))
		strbuf_puts(sb, ", delivery paused");
	if (snote != NULL)
		strbuf_printf(sb, ", %s", snote);
}

/* READY=1 (at start, after a reload) or a STATUS refresh. */
static void
notify_state(int ready)
{
	struct strbuf status = STRBUF_INIT;

	if (!sdnotify_active())
		return;		/* no service manager: not even the listing */
	service_status(&status);
	if (ready)
		sdnotify_ready(status.s);
	else
		sdnotify_status(status.s);
	strbuf_free(&status);
}

/* STOPPING=1: SIGTERM/SIGINT seen, the children are told next. */
static void
notify_stopping(void)
{
	char status[64];

	(void)bsnprintf(status, sizeof(status), "stopping %d processes",
	    nchildren);
	sdnotify_stopping(status);
}

/* Wait for one of the master's signals; with a service manager, no longer
 * than its watchdog and STATUS refresh allow (-1 then, errno EAGAIN). */
static int
master_wait(const sigset_t *mask, siginfo_t *si)
{
	long ms = sdnotify_wait_ms();
	struct timespec ts;

	if (ms < 0)
		return sigwaitinfo(mask, si);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	return sigtimedwait(mask, si, &ts);
}

static void
supervise(void)
{
	sigset_t mask;
	int i;

	master_sigmask(&mask);
	for (;;) {
		siginfo_t si;
		int sig = master_wait(&mask, &si);
		if (sdnotify_tick())
			notify_state(0);
		if (sig == SIGTERM || sig == SIGINT) {
			stopping = 1;
			break;
		}
		if (sig == SIGCHLD)
			reap();
		else if (sig == SIGUSR1)
			poke_qmgr();
		else if (sig == SIGUSR2) {
			/* logrotate: reopen the log files, nothing else */
			log_reopen();
			reopen_children();
			log_info("log reopened (SIGUSR2)");
		} else if (sig == SIGHUP) {
			sdnotify_reloading();
			snote = reload() == 0 ? NULL :
			    "last reload refused (see the log)";
			daemon_status_set_reload(snote != NULL, wall_now());
			notify_state(1);
		}
	}
	log_info("stopping: %d processes", nchildren);
	notify_stopping();
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);
	for (i = 0; i < (WORKER_GRACE + 2) * 20 && nchildren > 0; i++) {
		(void)sdnotify_tick();
		reap();
		if (nchildren > 0)
			usleep(50000);
	}
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGKILL);
}

/* Become a daemon; `logpath` (may be NULL) is where the log goes. */
static int
detach(const char *logpath)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	if ((pid = fork()) == -1)
		return -1;
	if (pid > 0) {
		if (logpath)
			printf("postern: running in the background (pid %d); "
			    "log in %s\n", (int)pid, logpath);
		else
			printf("postern: running in the background (pid %d)\n",
			    (int)pid);
		fflush(stdout);
		_exit(0);
	}
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

static int
write_pidfile(const char *data_dir)
{
	char path[4096], buf[32];
	int n;

	if (bsnprintf(path, sizeof(path), "%s/postern.pid", data_dir))
		return -1;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	return write_file_atomic(path, buf, (size_t)n, 0644);
}

int
cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct conf_errors errs = { NULL, 0 };
	const char *path = NULL;
	int c, foreground = 0, debug = 0, http_failed;
	char why[512], logpath[4096], confpath[4096];
	sigset_t mask;
	long ncpu;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:fdh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'f': foreground = 1; break;
		case 'd': debug = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Block the signals the master waits for right away: one that comes
	 * while starting (a SIGHUP, say) waits instead of killing us.  The
	 * children unblock what they use. */
	master_sigmask(&mask);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (path == NULL)
		path = conf_default_path();
	if (getcwd(sstart_dir, sizeof(sstart_dir)) == NULL) {
		fprintf(stderr, "postern: cannot find the current directory: "
		    "%s (start postern from a directory you can read)\n",
		    strerror(errno));
		return 1;
	}
	/* absolute: the daemon works in data_dir, reloads read it again */
	if (path != NULL && path[0] != '/') {
		if (bsnprintf(confpath, sizeof(confpath), "%s/%s", sstart_dir,
		    path) == -1) {
			fprintf(stderr, "postern: configuration path too long "
			    "(give a shorter -c path)\n");
			return 1;
		}
		path = confpath;
	}
	sconf_path = path;
	sconf = conf_load(path, &errs);
	if (sconf == NULL || errs.n > 0) {
		for (size_t k = 0; k < errs.n; k++)
			fprintf(stderr, "%s\n", errs.msgs[k]);
		fprintf(stderr, "postern: configuration has errors; nothing "
		    "started (check with `postern config check`)\n");
		conf_errors_free(&errs);
		conf_free(sconf);
		return 1;
	}
	if (prepare_data_dir(sconf->user, sconf->data_dir) == -1)
		return 1;
	/* Work inside data_dir from now on (entered as root: its parents
	 * need not be open to the daemon user), and make sure what lies
	 * outside it is reachable before anything is bound. */
	sdata_dir = xstrdup(sconf->data_dir);
	if (workdir_enter(sconf, why, sizeof(why)) == -1) {
		fprintf(stderr, "postern: %s\n", why);
		return 1;
	}
	workdir_rebase(sconf);
	if (workdir_check_reach(sconf, why, sizeof(why)) == -1) {
		fprintf(stderr, "postern: %s\n", why);
		return 1;
	}
	raise_fd_limit();
	/* Detached with log "-": the log goes to data_dir/postern.log. */
	if (!foreground && strcmp(sconf->log_file, "-") == 0) {
		snprintf(logpath, sizeof(logpath), "%s/postern.log",
		    sconf->data_dir);
		if (log_open(logpath, sconf->log_json, "postern") == -1) {
			fprintf(stderr, "postern: cannot open %s: %s\n", logpath,
			    strerror(errno));
			return 1;
		}
	} else if (log_open(sconf->log_file, sconf->log_json, "postern") == -1) {
		fprintf(stderr, "postern: cannot open log %s: %s\n",
		    sconf->log_file, strerror(errno));
		return 1;
	}
	log_set_debug(debug);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	snworkers = sconf->workers > 0 ? sconf->workers :
	    (ncpu > 0 ? (int)ncpu : 1);
	if (snworkers > MAX_WORKERS)
		snworkers = MAX_WORKERS;
	if (bind_all() == -1 || bind_metrics() == -1)
		return 1;
	if (sconf->pickup.dir != NULL && pickup_prepare(sconf, why,
	    sizeof(why)) == -1) {
		fprintf(stderr, "postern: %s\n", why);
		return 1;
	}
	if (drop_privileges(sconf->user) == -1)
		return 1;
	/* From here on, everything runs as the unprivileged user. */
	if ((sspool = spool_open(sconf->data_dir, why, sizeof(why))) == NULL) {
		fprintf(stderr, "postern: spool: %s\n", why);
		return 1;
	}
	spool_clean_incoming(sspool);
	if (ids_open(sconf->data_dir, spool_max_mid(sspool), why,
	    sizeof(why)) == -1) {
		fprintf(stderr, "postern: %s\n", why);
		return 1;
	}
	if (connlimit_init(snworkers) == -1)
		fatal("connlimit_init");
	if (throttle_init() == -1)
		fatal("throttle_init");
	if (sconf->metrics_port != 0 && metrics_init(snworkers) == -1)
		fatal("metrics_init");

	/* Certificates are read as the unprivileged user, at start as at
	 * every reload, so a key it cannot read fails now, not later. */
	if ((stls = tls_build(sconf, NULL, NULL)) == NULL)
		return 1;
	shttp_tls = http_tls_build(sconf, NULL, &http_failed);
	if (http_failed)
		return 1;
	if (!foreground && detach(strcmp(sconf->log_file, "-") == 0 ? logpath :
	    strcmp(sconf->log_file, "syslog") == 0 ? NULL : sconf->log_file) ==
	    -1)
		fatal("detach");
	if (write_pidfile(sconf->data_dir) == -1)
		log_warn("cannot write %s/postern.pid", sconf->data_dir);
	/* after detach: it records our pid */
	if (daemon_status_create(sconf->data_dir, why, sizeof(why)) == -1)
		log_warnx("%s; `postern status` will not see this daemon", why);
	if (notify_channel_new() == -1)
		fatal("socketpair");
	log_info("postern %s starting: hostname %s, data_dir %s, %d workers, "
	    "configuration %s", POSTERN_VERSION, sconf->hostname,
	    sdata_dir, snworkers, sconf->path);
	publish_config();
	start_generation();
	/* Every listener is bound (the kernel queues connections until a
	 * worker accepts them) and the spool recovered: ready. */
	sdnotify_init();
	notify_state(1);
	supervise();
	/* A stale pid file could make `postern queue` signal a stranger. */
	snprintf(logpath, sizeof(logpath), "%s/postern.pid", sconf->data_dir);
	unlink(logpath);
	daemon_status_stopped();
	log_info("stopped");
	return 0;
}
