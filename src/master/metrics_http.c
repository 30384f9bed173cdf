/*
 * metrics_http.c - the metrics process (see metrics_http.h).
 *
 * Public: metrics_http_run.
 *
 * One request: GET (or HEAD) /metrics gathers everything into a
 * struct metrics_view and formats it (metrics_text.c): the shared
 * counters added up, the queue by destination (a spool scan, with the
 * envelopes remembered between scrapes), certificate expiry (listener
 * certificates from the status file, the store read at most once every
 * STORE_TTL seconds), start time and paused state.  "/" answers with a
 * pointer to /metrics; anything else is 404, other methods 405.
 *
 * Limits and threats: plain HTTP, meant for loopback or a trusted
 * network (postern.conf(5)); request headers are capped at 8 KiB, bodies
 * refused, idle connections closed after 10 s; the process runs as the
 * unprivileged user and writes nothing.  A scrape's cost grows with the
 * queue (one state-file read per queued message).
 */
#include <signal.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cert_expiry.h"
#include "daemon_status.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_text.h"
#include "queue_stats.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define STORE_TTL	60	/* seconds the store's expiry list is kept */
#define HTTP_TIMEOUT	10
#define HTTP_MAX_HEADERS 8192

struct mh {
	const struct conf		*conf;
	const struct spool		*spool;
	struct queue_stats_cache	*qcache;
	struct dstatus_cert		 store[DSTATUS_MAX_CERTS];
	size_t				 nstore;
	double				 store_at;	/* 0: never read */
	/* the gathered view and what it points into */
	struct metrics_counts		 counts;
	struct dstatus			 status;
	struct metrics_queue_row	 queue[METRICS_MAX_DESTINATIONS + 1];
	struct metrics_cert_row		 certs[2 * DSTATUS_MAX_CERTS];
	const char			**listeners;
};

/* The queue by destination, folded into the destination labels. */
static int
gather_queue(struct mh *m)
{
	struct queue_stats qs;
	struct metrics_queue_row *r;
	int64_t now = wall_now(), age;
	char why[512];
	size_t i;

	memset(m->queue, 0, sizeof(m->queue));
	if (queue_stats_scan(m->spool, m->qcache, &qs, why, sizeof(why))
	    == -1) {
		log_warnx("metrics: %s", why);
		return -1;
	}
	for (i = 0; i < qs.ndests; i++) {
		r = &m->queue[metrics_destination_label(qs.dests[i].domain)];
		r->active += qs.dests[i].active;
		r->deferred += qs.dests[i].deferred;
		r->held += qs.dests[i].held;
		age = qs.dests[i].oldest ? now - qs.dests[i].oldest : 0;
		if (age > r->oldest_age)
			r->oldest_age = age;
	}
	queue_stats_clear(&qs);
	return 0;
}

static int
same_cert(const struct metrics_cert_row *a, const struct metrics_cert_row *b)
{
	return strcmp(a->source, b->source) == 0 &&
	    strcmp(a->listener, b->listener) == 0 &&
	    strcmp(a->certificate, b->certificate) == 0;
}

static void
add_cert(struct mh *m, size_t *n, const char *source,
    const struct dstatus_cert *c)
{
	struct metrics_cert_row r = { source, c->listener, c->certificate,
	    c->not_after };
	size_t i;

	if (c->not_after == 0)
		return;		/* unreadable: `postern status` says so */
	for (i = 0; i < *n; i++)
		if (same_cert(&m->certs[i], &r))
			return;
	m->certs[(*n)++] = r;
}

/* Listener certificates (status file) and the store (cached). */
static size_t
gather_certs(struct mh *m)
{
	char why[512];
	size_t i, n = 0;
	int k;

	if (m->store_at == 0 || mono_now() - m->store_at > STORE_TTL) {
		k = cert_expiry_store(m->conf->data_dir, m->store,
		    DSTATUS_MAX_CERTS, why, sizeof(why));
		if (k == -1)
			log_warnx("metrics: %s", why);
		m->nstore = k > 0 ? (size_t)k : 0;
		for (i = 0; i < m->nstore; i++)
			m->store[i].listener[0] = '\0';
		m->store_at = mono_now();
	}
	for (i = 0; i < m->status.b.ncerts; i++)
		add_cert(m, &n, "listener", &m->status.b.certs[i]);
	for (i = 0; i < m->nstore; i++)
		add_cert(m, &n, "store", &m->store[i]);
	return n;
}

static void
gather(struct mh *m, struct metrics_view *v)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	(void)metrics_snapshot(&m->counts);
	if (daemon_status_copy(&m->status) == -1)
		memset(&m->status, 0, sizeof(m->status));
	v->c = &m->counts;
	v->version = POSTERN_VERSION;
	v->start_time = m->status.b.started;
	v->paused = m->conf->paused || spool_paused(m->spool);
	v->listeners = m->listeners;
	v->nlisteners = m->conf->nlisteners;
	v->queue = gather_queue(m) == 0 ? m->queue : NULL;
	for (i = 0; i < METRICS_MAX_CIPHERS; i++)
		v->cipher[i] = metrics_cipher_name(i);
	for (i = 0; i < METRICS_MAX_DESTINATIONS; i++)
		v->dest[i] = metrics_destination_name(i);
	v->certs = m->certs;
	v->ncerts = gather_certs(m);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, const char *body, size_t len)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, reason, out);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	static const char index_text[] = "Postern metrics: GET /metrics\n";
	struct mh *m = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	struct strbuf sb = STRBUF_INIT;
	struct metrics_view v;

	if (path != NULL && strcmp(path, "/metrics") == 0) {
		gather(m, &v);
		metrics_text_format(&sb, &v);
		reply_text(req, HTTP_OK, "OK",
		    "text/plain; version=0.0.4; charset=utf-8", sb.s, sb.len);
		strbuf_free(&sb);
	} else if (path != NULL && strcmp(path, "/") == 0)
		reply_text(req, HTTP_OK, "OK", "text/plain; charset=utf-8",
		    index_text, sizeof(index_text) - 1);
	else
		reply_text(req, HTTP_NOTFOUND, "Not Found",
		    "text/plain; charset=utf-8", "not found\n", 10);
}

static void
term_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

/* The metrics process: serve GET /metrics until SIGTERM. */
int
metrics_http_run(struct event_base *base, const struct conf *conf,
    const struct spool *spool, int fd)
{
	static struct mh m;
	struct event *term;
	struct evhttp *http;
	size_t i;

	m.conf = conf;
	m.spool = spool;
	m.qcache = queue_stats_cache_new();
	m.listeners = xcalloc(conf->nlisteners + 1, sizeof(*m.listeners));
	for (i = 0; i < conf->nlisteners; i++)
		m.listeners[i] = conf->listeners[i].name;
	if ((http = evhttp_new(base)) == NULL ||
	    evhttp_accept_socket_with_handle(http, fd) == NULL ||
	    (term = evsignal_new(base, SIGTERM, term_cb, base)) == NULL ||
	    event_add(term, NULL) == -1)
		return -1;
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_timeout(http, HTTP_TIMEOUT);
	evhttp_set_gencb(http, request_cb, &m);
	event_base_dispatch(base);
	event_free(term);
	evhttp_free(http);
	queue_stats_cache_free(m.qcache);
	free(m.listeners);
	return 0;
}
