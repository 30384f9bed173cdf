/*
 * qmgr.c - the queue manager's scheduler (see qmgr.h).
 *
 * Public: qmgr_new, qmgr_free, qmgr_rescan, qmgr_round, qmgr_committed,
 * qmgr_run, qmgr_backoff.
 *
 * Table: every MID in spool/queue with the time of its next attempt.
 * Sources: the spool scan at start, MIDs sent by workers after each commit,
 * a rescan on SIGUSR1 (sent by `postern queue retry/release/resume`) and
 * every QMGR_RESCAN seconds as a safety net.
 *
 * A round takes up to QMGR_BATCH due messages.  Each is opened, checked
 * and locked (flock, so `postern queue delete/hold` never races a
 * delivery) and stays so until every recipient has an answer.  Before a
 * message's first attempt it passes qmgr_prepare_message(), the one place
 * where its content may still change: the transformation steps of
 * transform.h (DKIM, S/MIME) rewrite it there, once, for good
 * (qmgr_prepare_round() runs the whole round through it, with one flush,
 * before anything is delivered).  Then
 * the router decides for every
 * pending recipient (route.h) and the scheduler hands them, grouped, to
 * the delivery drivers (delivery.h): all maildir recipients of a message
 * in one request to the local driver, the network recipients of each
 * domain in one request to the remote driver.  At the end of the round
 * every driver flushes (the local one makes its maildir copies durable).
 *
 * Results come back one per recipient: delivered, deferred (retry after
 * qmgr_backoff(), or bounced 5.4.7 once older than
 * delivery.max_queue_lifetime) or bounced.  When a message has all its
 * answers the state is written (or the spool copy removed), and the
 * recipients bounced in this attempt get one DSN to the sender (never for
 * the null sender, honouring NOTIFY).  TLS failures on destinations that
 * require TLS send an alert mail to alerts.recipients, at most one per
 * domain per hour.
 *
 * Metrics (metrics.h): every recipient's outcome, as it is decided here
 * (delivered, deferred, or bounced: by the driver, the router, a
 * transformation or expiry), counts once for its recipient domain, and
 * a delivery's latency (accepted to delivered) is observed.
 *
 * Seams for tests (tests/unit/test_qmgr.c): the drivers are passed to
 * qmgr_new(), and the clock is wall_now() (util.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "alert.h"
#include "bounce.h"
#include "delivery.h"
#include "delivery_log.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "qmgr.h"
#include "queue_stats.h"
#include "route.h"
#include "spool.h"
#include "spool_done.h"
#include "strbuf.h"
#include "transform.h"
#include "util.h"

#define QMGR_BATCH	256
#define QMGR_RESCAN	60
#define QMGR_MAX_FLIGHT	1000	/* messages in delivery at once */
#define QMGR_ALERT_GAP	3600	/* one alert per domain per hour */
#define QMGR_ALERTS	256
#define QMGR_STOP_GRACE	8	/* s for deliveries under way at SIGTERM */
#define QMGR_STATE_PEEK	64	/* recipients read to find a due time */

struct qentry {
	uint64_t	mid;
	int64_t		next;		/* wall clock of next attempt */
	int		used;
	int		busy;		/* in delivery */
};

/* A message in delivery: open, locked, waiting for its answers. */
struct qjob {
	struct qjob		*next;		/* in q->flights */
	struct qjob		**prevp;	/* what points at it there */
	struct qmgr		*q;
	uint64_t		 mid;
	int			 fd;
	struct envelope		 env;
	struct rcpt_state	*st;		/* one per recipient */
	struct route_decision	*routes;	/* one per recipient */
	struct delivery_result	*bounces;	/* bounced in this attempt */
	size_t			 nbounces;
	size_t			 inflight;	/* requests without an answer,
						 * +1 while the round runs */
	int			 held;		/* not delivered this round */
};

/* The recipients of a message that go to one driver in one request. */
struct qgroup {
	const struct delivery_driver	*driver;
	const struct route_decision	*route;	/* of the first recipient */
	size_t				*rids;
	size_t				 n;
};

struct qround;

struct qmgr {
	struct event_base	*base;
	const struct conf	*conf;
	struct spool		*spool;
	const struct delivery_driver *local, *remote;
	struct qentry		*tab;	/* open addressing by mid */
	size_t			 cap, n;
	struct event		*run_ev;
	int			 notify_fd;	/* MIDs from the workers, -1 */
	struct transform_runner	*runner;	/* signing thread, or NULL */
	struct qround		*rounds;	/* transforming on it */
	struct qjob		*flights;	/* messages in delivery */
	size_t			 nflights;
	size_t			 max_flight;	/* each holds an fd */
	int			 stopping;	/* SIGTERM: finish, start none */
	struct {
		char	domain[256];
		int64_t	when;
	}			 alerts[QMGR_ALERTS];
};

static struct qmgr *the_qmgr;	/* for the drivers' alert callback */

/* ---------------------------------------------------------- the table */

static size_t
slot_of(const struct qmgr *q, uint64_t mid)
{
	return (size_t)((mid * 11400714819323198485ull) >> 20) & (q->cap - 1);
}

static struct qentry *tab_find(struct qmgr *, uint64_t, int create);
static void	job_submit(struct qmgr *, struct qjob *);

/* Double the table (or make the first one) and re-insert everything. */
static void
tab_grow(struct qmgr *q)
{
	struct qentry *old = q->tab, *e;
	size_t oldcap = q->cap, k;

	q->cap = q->cap ? q->cap * 2 : 1024;
	q->tab = xcalloc(q->cap, sizeof(*q->tab));
	q->n = 0;
	for (k = 0; k < oldcap; k++)
		if (old[k].used) {
			e = tab_find(q, old[k].mid, 1);
			e->next = old[k].next;
			e->busy = old[k].busy;
		}
	free(old);
}

static struct qentry *
tab_find(struct qmgr *q, uint64_t mid, int create)
{
	size_t i;

	if (create && (q->n + 1) * 2 > q->cap)
		tab_grow(q);
	if (q->cap == 0)
		return NULL;
	for (i = slot_of(q, mid);; i = (i + 1) & (q->cap - 1)) {
		if (!q->tab[i].used) {
			if (!create)
				return NULL;
			memset(&q->tab[i], 0, sizeof(q->tab[i]));
			q->tab[i].used = 1;
			q->tab[i].mid = mid;
			q->n++;
			return &q->tab[i];
		}
		if (q->tab[i].mid == mid)
			return &q->tab[i];
	}
}

static void
tab_clear(struct qmgr *q)
{
	free(q->tab);
	q->tab = NULL;
	q->cap = q->n = 0;
}

/* Remove by rebuilding the probe chain after the hole. */
static void
tab_remove(struct qmgr *q, uint64_t mid)
{
	struct qentry *e = tab_find(q, mid, 0), moved;
	size_t i, j;

	if (e == NULL)
		return;
	i = (size_t)(e - q->tab);
	q->tab[i].used = 0;
	q->n--;
	for (j = (i + 1) & (q->cap - 1); q->tab[j].used;
	    j = (j + 1) & (q->cap - 1)) {
		moved = q->tab[j];
		q->tab[j].used = 0;
		q->n--;
		e = tab_find(q, moved.mid, 1);
		e->next = moved.next;
		e->busy = moved.busy;
	}
}

/* ------------------------------------------------------- scheduling */

int
qmgr_backoff(const struct conf *conf, int attempts, double rnd)
{
	double d = conf->retry_min;
	int i;

	for (i = 1; i < attempts && d < conf->retry_max; i++)
		d *= 2;
	if (d > conf->retry_max)
		d = conf->retry_max;
	d *= 0.9 + 0.2 * rnd;
	return d < 1 ? 1 : (int)d;
}

static int
paused(const struct qmgr *q)
{
	return q->conf->paused || spool_paused(q->spool);
}

static void
schedule_run(struct qmgr *q)
{
	struct timeval tv = { 0, 0 };

	event_add(q->run_ev, &tv);
}

/* Earliest pending attempt of a message from its state file. */
static int64_t
next_attempt(struct qmgr *q, uint64_t mid)
{
	struct rcpt_state st[QMGR_STATE_PEEK];
	int64_t best = INT64_MAX;
	size_t i;

	/*
	 * A state file lists recipients in order; QMGR_STATE_PEEK covers the
	 * common case and a larger message is simply tried at once.  It is
	 * written after an attempt, so every pending recipient in it has
	 * attempts > 0: a pending slot with none is past the file's end (or
	 * there is no file: due now), not a recipient due at time 0.
	 */
	if (spool_state_read(q->spool, mid, st, QMGR_STATE_PEEK) == -1)
		return 0;
	for (i = 0; i < QMGR_STATE_PEEK; i++)
		if (st[i].status == RCPT_PENDING && st[i].attempts > 0 &&
		    st[i].next_attempt < best)
			best = st[i].next_attempt;
	return best == INT64_MAX ? 0 : best;
}

void
qmgr_rescan(struct qmgr *q)
{
	struct qjob *f;
	uint64_t *mids;
	size_t n, i;

	if (spool_list(q->spool, SPOOL_QUEUE, &mids, &n) == -1) {
		log_warn("queue manager: cannot list the spool");
		return;
	}
	tab_clear(q);
	spool_done_expire(q->spool, wall_now() - SPOOL_DONE_KEEP);
	for (i = 0; i < n; i++)
		tab_find(q, mids[i], 1)->next = next_attempt(q, mids[i]);
	free(mids);
	for (f = q->flights; f; f = f->next)
		tab_find(q, f->mid, 1)->busy = 1;
	log_debug("queue manager: %zu messages in the queue", q->n);
	schedule_run(q);
}

/* ------------------------------------------------ recipients' answers */

/* Has this message been queued longer than delivery.max_queue_lifetime? */
static int
expired(const struct qmgr *q, const struct qjob *j, int64_t now)
{
	return now - j->env.received >= q->conf->max_queue_lifetime;
}

/* The cause of the result goes with last_error into the state file. */
static void
rcpt_cause(struct rcpt_state *st, const struct delivery_result *r)
{
	bstrlcpy(st->cause, r->cause != FC_NONE ? failcause_name(r->cause) :
	    "", sizeof(st->cause));
	bstrlcpy(st->cause_host, r->cause_host, sizeof(st->cause_host));
	st->cause_port = r->cause_port;
}

/* Count one recipient's outcome (destination: its domain). */
static void
count_outcome(const struct qjob *j, size_t rid, enum metrics_delivery what)
{
	char dom[ROUTE_DOMAIN_MAX + 1];

	if (!metrics_enabled())
		return;
	if (route_domain_of(j->env.rcpts[rid].addr, dom, sizeof(dom)) == -1)
		bstrlcpy(dom, QUEUE_STATS_NO_DOMAIN, sizeof(dom));
	metrics_delivery(dom, what);
	if (what == METRICS_DELIVERED)
		metrics_observe_delivery((double)(wall_now() -
		    j->env.received));
}

/* Record a permanent failure; the DSN is sent when the job completes.
 * `r` is the driver's result (or one made here); logged when `log`. */
static void
rcpt_bounce(struct qjob *j, const struct delivery_result *r, int log)
{
	struct rcpt_state *st = &j->st[r->rid];
	struct delivery_result *b;

	st->status = RCPT_FAILED;
	st->attempts++;
	count_outcome(j, r->rid, METRICS_BOUNCED);
	bstrlcpy(st->last_error, r->text, sizeof(st->last_error));
	rcpt_cause(st, r);
	if (log)
		delivery_log_results(j->mid, NULL, r, 1);
	j->bounces = xrealloc(j->bounces, (j->nbounces + 1) *
	    sizeof(*j->bounces));
	b = &j->bounces[j->nbounces++];
	*b = *r;
	if (b->status[0] != '5')
		bstrlcpy(b->status, "5.0.0", sizeof(b->status));
	b->when = wall_now();
}

/* A temporary failure: try again later, or bounce once too old. */
static void
rcpt_defer(struct qmgr *q, struct qjob *j, const struct delivery_result *r)
{
	struct rcpt_state *st = &j->st[r->rid];
	struct delivery_result b;
	int64_t now = wall_now();
	char text[700];

	if (expired(q, j, now)) {
		bsnprintf(text, sizeof(text), "message expired after %lld s in "
		    "the queue (delivery.max_queue_lifetime = %d s); last "
		    "error: %s", (long long)(now - j->env.received),
		    q->conf->max_queue_lifetime, r->text);
		/* RFC 3463 4.4.7; a DSN with Action: failed wants 5.x.x */
		memset(&b, 0, sizeof(b));
		b.rid = r->rid;
		delivery_result_set(&b, DELIVERY_BOUNCED, text, "5.4.7", NULL, 0);
		delivery_result_cause(&b, r->cause, r->cause_host,
		    r->cause_port);
		rcpt_bounce(j, &b, 1);
		return;
	}
	count_outcome(j, r->rid, METRICS_DEFERRED);
	st->attempts++;
	st->next_attempt = now + qmgr_backoff(q->conf, st->attempts,
	    (double)random() / ((double)RAND_MAX + 1));
	bstrlcpy(st->last_error, r->text, sizeof(st->last_error));
	rcpt_cause(st, r);
}

static void
rcpt_result(struct qmgr *q, struct qjob *j, const struct delivery_result *r)
{
	if (r->rid >= j->env.nrcpts)
		fatalx("delivery result for RID %zu of MID %llu, which has %zu "
		    "recipients", r->rid, (unsigned long long)j->mid,
		    j->env.nrcpts);
	switch (r->outcome) {
	case DELIVERY_DELIVERED:
		j->st[r->rid].status = RCPT_DELIVERED;
		count_outcome(j, r->rid, METRICS_DELIVERED);
		break;
	case DELIVERY_BOUNCED:
		rcpt_bounce(j, r, 0);	/* the driver logged it */
		break;
	case DELIVERY_DEFERRED:
		rcpt_defer(q, j, r);
		break;
	}
}

/* ------------------------------------------------- generated messages */

/* Put a message we generate (bounce, alert) into the queue.  Returns its
 * MID or 0. */
static uint64_t
inject(struct qmgr *q, const char *from, const char *const *rcpts, size_t n,
    const struct strbuf *msg)
{
	struct envelope env;
	char why[512];
	uint64_t mid;

	envelope_generated(&env, q->conf->hostname, ids_next(ID_MID), from,
	    rcpts, n, msg->s, msg->len, wall_now());
	if (spool_inject(q->spool, &env, msg->s, msg->len, why,
	    sizeof(why)) == -1) {
		log_crit("cannot queue a generated message: %s", why);
		envelope_clear(&env);
		return 0;
	}
	mid = env.mid;
	envelope_clear(&env);
	tab_find(q, mid, 1)->next = 0;
	schedule_run(q);
	return mid;
}

/* The bounced recipients that asked for a failure notice (RFC 3461 4.1:
 * NOTIFY without FAILURE asks for none), moved to the front; their
 * number. */
static size_t
bounces_wanted(struct qjob *j)
{
	struct delivery_result tmp;
	size_t i, n = 0;

	for (i = 0; i < j->nbounces; i++)
		if (bounce_notify_failure(j->env.rcpts[j->bounces[i].rid].
		    notify)) {
			tmp = j->bounces[n];
			j->bounces[n++] = j->bounces[i];
			j->bounces[i] = tmp;
		}
	return n;
}

/* One DSN for the recipients bounced in this attempt. */
static void
job_send_bounce(struct qmgr *q, struct qjob *j)
{
	struct strbuf sb = STRBUF_INIT;
	const char *to[1] = { j->env.from };
	char why[512];
	uint64_t mid;
	size_t n;

	if (j->nbounces == 0)
		return;
	if (j->env.from[0] == '\0') {
		log_debug("MID %llu: no bounce for the null sender",
		    (unsigned long long)j->mid);
		return;
	}
	if ((n = bounces_wanted(j)) == 0)
		return;
	if (bounce_build_bounce(&sb, q->conf, &j->env, j->fd, j->bounces, n,
	    wall_now(), why, sizeof(why)) == -1)
		log_crit("MID %llu: cannot build the bounce: %s",
		    (unsigned long long)j->mid, why);
	else if ((mid = inject(q, "", to, 1, &sb)) != 0)
		delivery_log_bounce_sent(mid, j->mid, j->env.from);
	strbuf_free(&sb);
}

/* --------------------------------------------------------------- jobs */

static void
job_free(struct qjob *j)
{
	if (j->fd != -1)
		close(j->fd);
	envelope_clear(&j->env);
	free(j->st);
	free(j->routes);
	free(j->bounces);
	free(j);
}

/* Every recipient has been tried: bounce, record, finish or reschedule. */
static void
job_complete(struct qmgr *q, struct qjob *j)
{
	int64_t next = INT64_MAX;
	struct qentry *e;
	size_t i;
	int left = 0;

	job_send_bounce(q, j);
	for (i = 0; i < j->env.nrcpts; i++)
		if (j->st[i].status == RCPT_PENDING) {
			left++;
			if (j->st[i].next_attempt < next)
				next = j->st[i].next_attempt;
		}
	if (left == 0) {
		/* who sent it may still ask (GET /v1/messages/MID) */
		if (j->env.auth_user[0] != '\0' && spool_done_write(q->spool,
		    &j->env, j->st, wall_now()) == -1)
			log_warn("MID %llu: cannot write its done record",
			    (unsigned long long)j->mid);
		spool_remove(q->spool, SPOOL_QUEUE, j->mid);
		tab_remove(q, j->mid);
		delivery_log_finished(j->mid);
		return;
	}
	if (spool_state_write(q->spool, j->mid, j->st, j->env.nrcpts) == -1)
		log_warn("MID %llu: cannot write delivery state",
		    (unsigned long long)j->mid);
	e = tab_find(q, j->mid, 1);
	e->next = next;
	e->busy = 0;
}

/* The last answer is in: complete the message and let it go. */
static void
job_release(struct qmgr *q, struct qjob *j)
{
	int was_full;

	if (--j->inflight > 0)
		return;
	job_complete(q, j);
	/* O(1): a busy queue has up to max_flight messages in flight */
	if ((*j->prevp = j->next) != NULL)
		j->next->prevp = j->prevp;
	was_full = q->nflights >= q->max_flight;
	q->nflights--;
	job_free(j);
	if (q->stopping && q->nflights == 0) {
		event_base_loopexit(q->base, NULL);
		return;
	}
	if (was_full)
		schedule_run(q);
}

/* A driver reports one request. */
static void
request_done(void *arg, const struct delivery_result *res, size_t n)
{
	struct qjob *j = arg;
	size_t i;

	for (i = 0; i < n; i++)
		rcpt_result(j->q, j, &res[i]);
	job_release(j->q, j);
}

/* Has no recipient of this message been delivered or bounced yet?  (A
 * message whose first attempt was deferred - e.g. its DKIM key could not
 * be used - is still untouched: it must not go out unsigned later.) */
static int
job_untouched(const struct qjob *j)
{
	size_t i;

	for (i = 0; i < j->env.nrcpts; i++)
		if (j->st[i].status != RCPT_PENDING)
			return 0;
	return 1;
}

/* Defer every pending recipient with why (logged, backoff, expiry). */
static void
job_defer_pending(struct qmgr *q, struct qjob *j, const char *why)
{
	struct delivery_result r;
	size_t i;

	for (i = 0; i < j->env.nrcpts; i++) {
		if (j->st[i].status != RCPT_PENDING)
			continue;
		memset(&r, 0, sizeof(r));
		r.rid = i;
		delivery_result_set(&r, DELIVERY_DEFERRED, why, NULL, NULL, 0);
		delivery_log_results(j->mid, NULL, &r, 1);
		rcpt_result(q, j, &r);
	}
}

/* Bounce pending recipient rid for a transformation (S/MIME encrypt =
 * required without a certificate, ...): status and why from the step, or
 * 5.7.0 and the message's why. */
static void
transform_bounce(struct qjob *j, size_t rid, const struct transform_rcpt *tr,
    const char *why)
{
	struct delivery_result b;

	memset(&b, 0, sizeof(b));
	b.rid = rid;
	delivery_result_set(&b, DELIVERY_BOUNCED, tr->why[0] ? tr->why : why,
	    tr->status[0] ? tr->status : "5.7.0", NULL, 0);
	rcpt_bounce(j, &b, 1);
}

/*
 * What the steps decided for a message (transform.h): TEMPFAIL defers
 * its pending recipients and holds it this round; recipients a step
 * refuses are bounced, and when others remain those bounces are made
 * durable now, before the round's rewrites are committed (a crash after
 * the rename must not forget them); PERMFAIL leaves nothing to deliver.
 */
static void
qmgr_transformed(struct qmgr *q, struct qjob *j, enum transform_outcome o,
    const struct transform_rcpt *tr, const char *why)
{
	size_t i, before = j->nbounces;

	if (o == TRANSFORM_TEMPFAIL) {
		job_defer_pending(q, j, why);
		j->held = 1;
		return;
	}
	for (i = 0; i < j->env.nrcpts; i++)
		if (j->st[i].status == RCPT_PENDING &&
		    (o == TRANSFORM_PERMFAIL ||
		    tr[i].outcome == TRANSFORM_PERMFAIL))
			transform_bounce(j, i, &tr[i], why);
	if (o == TRANSFORM_PERMFAIL)
		j->held = 1;		/* nothing left: completes at release */
	else if (j->nbounces > before) {
		job_send_bounce(q, j);
		free(j->bounces);
		j->bounces = NULL;
		j->nbounces = 0;
		if (spool_state_write(q->spool, j->mid, j->st,
		    j->env.nrcpts) == -1)
			log_warn("MID %llu: cannot write delivery state",
			    (unsigned long long)j->mid);
	}
}

/* After the commit: a rewrite that could not be taken defers. */
static void
qmgr_taken(struct qmgr *q, struct qjob *j, int taken, const char *why)
{
	if (taken == -1) {
		job_defer_pending(q, j, why);
		j->held = 1;
	}
}

/*
 * Take every MID the workers sent so far (each is due now); 1 if any.
 * Also called between the messages of a round transformed in the loop
 * (no signing thread): the channel holds only so many datagrams, and a
 * worker drops what does not fit (the message then waits for a rescan).
 */
static int
notify_drain(struct qmgr *q)
{
	uint64_t mid;
	int got = 0;

	if (q->notify_fd == -1)
		return 0;
	while (recv(q->notify_fd, &mid, sizeof(mid), MSG_DONTWAIT) ==
	    sizeof(mid)) {
		qmgr_committed(q, mid);
		got = 1;
	}
	return got;
}

void
qmgr_committed(struct qmgr *q, uint64_t mid)
{
	if (tab_find(q, mid, 0) == NULL)
		tab_find(q, mid, 1)->next = 0;
}

/*
 * The one place a message passes, open and locked, before its first
 * delivery attempt; nothing has read its content for delivery yet: its
 * content transformation (DKIM and S/MIME signing, transform.h) runs
 * here, once per message, so every next hop and every maildir gets
 * exactly the bytes that were signed, also on every retry.  This is the
 * in-loop way, for a queue manager without its signing thread (unit
 * tests, or the thread could not start): every untouched message is
 * transformed, the round's rewrites are made durable with one flush,
 * and each job takes its new fd and envelope.  With no transformation
 * configured this costs nothing.
 */
static void
qmgr_prepare_round(struct qmgr *q, struct qjob **jobs, size_t nj)
{
	const struct transform_step *const *steps;
	struct transform_batch *tb;
	struct transform_rcpt *tr;
	enum transform_outcome o;
	char why[512];
	size_t i, nsteps;

	steps = transform_steps(q->conf, &nsteps);
	if (nsteps == 0)
		return;
	tb = transform_batch_new(q->spool, q->conf, steps, nsteps);
	for (i = 0; i < nj; i++) {
		if (job_untouched(jobs[i])) {
			tr = xcalloc(jobs[i]->env.nrcpts, sizeof(*tr));
			why[0] = '\0';
			o = transform_message(tb, jobs[i]->mid, jobs[i]->fd,
			    &jobs[i]->env, tr, why, sizeof(why));
			qmgr_transformed(q, jobs[i], o, tr, why);
			free(tr);
		}
		if (notify_drain(q))
			schedule_run(q);
	}
	transform_commit(tb);
	for (i = 0; i < nj; i++)
		if (!jobs[i]->held)
			qmgr_taken(q, jobs[i], transform_take(tb, jobs[i]->mid,
			    &jobs[i]->fd, &jobs[i]->env, why, sizeof(why)), why);
	transform_batch_free(tb);
}

/* A round's untouched messages, transformed on the signing thread. */
struct qround {
	struct qround		*next;		/* in q->rounds */
	struct qmgr		*q;
	struct transform_batch	*tb;
	struct qjob		**jobs;
	struct transform_job	*tj;		/* one per job */
	char			(*why)[512];
	size_t			 n;
};

static void
qround_free(struct qround *rd)
{
	struct qround **pp;
	size_t i;

	for (pp = &rd->q->rounds; *pp; pp = &(*pp)->next)
		if (*pp == rd) {
			*pp = rd->next;
			break;
		}
	transform_batch_free(rd->tb);
	for (i = 0; i < rd->n; i++)
		free(rd->tj[i].rcpts);
	free(rd->tj);
	free(rd->why);
	free(rd->jobs);
	free(rd);
}

/* Commit phase done: deliver what was taken, end the round's hold. */
static void
qround_committed(void *arg)
{
	struct qround *rd = arg;
	struct qmgr *q = rd->q;
	size_t i;

	for (i = 0; i < rd->n; i++)
		if (!rd->jobs[i]->held)
			qmgr_taken(q, rd->jobs[i], rd->tj[i].taken, rd->why[i]);
	for (i = 0; i < rd->n; i++)
		if (!rd->jobs[i]->held)
			job_submit(q, rd->jobs[i]);
	if (q->local->flush != NULL)
		q->local->flush();
	if (q->remote->flush != NULL)
		q->remote->flush();
	for (i = 0; i < rd->n; i++)
		job_release(q, rd->jobs[i]);
	qround_free(rd);
	schedule_run(q);	/* what gathered meanwhile */
}

/* Prepare phase done: bounces and deferrals now, then the commit. */
static void
qround_prepared(void *arg)
{
	struct qround *rd = arg;
	size_t i;

	for (i = 0; i < rd->n; i++) {
		qmgr_transformed(rd->q, rd->jobs[i], rd->tj[i].outcome,
		    rd->tj[i].rcpts, rd->why[i]);
		rd->tj[i].skip = rd->jobs[i]->held;
	}
	transform_runner_commit(rd->q->runner, rd->tb, rd->tj, rd->n,
	    qround_committed, rd);
}

/*
 * Hand the round's untouched messages to the signing thread; they stay
 * in flight (the round's hold kept) until qround_committed() delivers
 * them.  The others stay in jobs[], compacted; returns how many.
 */
static size_t
qmgr_start_async(struct qmgr *q, struct qjob **jobs, size_t nj)
{
	const struct transform_step *const *steps;
	struct qround *rd;
	struct transform_job *t;
	size_t i, k = 0, nsteps;

	steps = transform_steps(q->conf, &nsteps);
	rd = xcalloc(1, sizeof(*rd));
	rd->q = q;
	rd->jobs = xcalloc(nj, sizeof(*rd->jobs));
	rd->tj = xcalloc(nj, sizeof(*rd->tj));
	rd->why = xcalloc(nj, sizeof(*rd->why));
	for (i = 0; i < nj; i++) {
		if (!job_untouched(jobs[i])) {
			jobs[k++] = jobs[i];
			continue;
		}
		t = &rd->tj[rd->n];
		t->mid = jobs[i]->mid;
		t->fd = &jobs[i]->fd;
		t->env = &jobs[i]->env;
		t->rcpts = xcalloc(jobs[i]->env.nrcpts, sizeof(*t->rcpts));
		t->why = rd->why[rd->n];
		t->whylen = sizeof(rd->why[0]);
		rd->jobs[rd->n++] = jobs[i];
	}
	if (rd->n == 0) {
		qround_free(rd);
		return k;
	}
	rd->tb = transform_batch_new(q->spool, q->conf, steps, nsteps);
	rd->next = q->rounds;
	q->rounds = rd;
	transform_runner_prepare(q->runner, rd->tb, rd->tj, rd->n,
	    qround_prepared, rd);
	return k;
}

/* Open, lock and check a due message.  NULL: skip it this round. */
static struct qjob *
job_open(struct qmgr *q, uint64_t mid)
{
	struct qjob *j = xcalloc(1, sizeof(*j));
	char why[512], path[4096];
	struct stat a, b;

	j->q = q;
	j->mid = mid;
	j->fd = spool_open_msg(q->spool, SPOOL_QUEUE, mid, 1, &j->env, why,
	    sizeof(why));
	if (j->fd == -1) {
		if (errno == EINVAL) {
			log_crit("MID %llu: %s; moved to spool/corrupt for "
			    "inspection", (unsigned long long)mid, why);
			spool_move(q->spool, mid, SPOOL_QUEUE, SPOOL_CORRUPT);
		}
		tab_remove(q, mid);
		job_free(j);
		return NULL;
	}
	/* Busy (queue command at work) or moved/deleted meanwhile: skip. */
	spool_path(q->spool, SPOOL_QUEUE, mid, path, sizeof(path));
	if (flock(j->fd, LOCK_EX | LOCK_NB) == -1 || fstat(j->fd, &a) == -1 ||
	    stat(path, &b) == -1 || a.st_ino != b.st_ino) {
		job_free(j);
		return NULL;
	}
	j->st = xcalloc(j->env.nrcpts, sizeof(*j->st));
	spool_state_read(q->spool, mid, j->st, j->env.nrcpts);
	return j;
}

/* Add recipient rid to the group of its driver and destination. */
static void
group_add(struct qgroup **gs, size_t *ng, const struct delivery_driver *drv,
    const struct route_decision *d, size_t rid)
{
	struct qgroup *g;
	size_t i;

	for (i = 0; i < *ng; i++) {
		g = &(*gs)[i];
		if (g->driver == drv && (d->kind == ROUTE_TO_MAILDIR ||
		    strcmp(g->route->domain, d->domain) == 0))
			break;
	}
	if (i == *ng) {
		*gs = xrealloc(*gs, (*ng + 1) * sizeof(**gs));
		g = &(*gs)[(*ng)++];
		memset(g, 0, sizeof(*g));
		g->driver = drv;
		g->route = d;
	}
	g = &(*gs)[i];
	g->rids = xrealloc(g->rids, (g->n + 1) * sizeof(*g->rids));
	g->rids[g->n++] = rid;
}

/* Route every pending recipient; group them by driver and destination.
 * Recipients the router sends nowhere are bounced now. */
static size_t
job_route(struct qmgr *q, struct qjob *j, struct qgroup **gs)
{
	struct delivery_result b;
	struct route_decision *d;
	size_t i, ng = 0;

	j->routes = xcalloc(j->env.nrcpts, sizeof(*j->routes));
	for (i = 0; i < j->env.nrcpts; i++) {
		if (j->st[i].status != RCPT_PENDING)
			continue;
		d = &j->routes[i];
		switch (route_decide(q->conf, j->env.rcpts[i].addr, d)) {
		case ROUTE_TO_NOWHERE:
			memset(&b, 0, sizeof(b));
			b.rid = i;
			delivery_result_set(&b, DELIVERY_BOUNCED, d->why,
			    d->status, NULL, 0);
			rcpt_bounce(j, &b, 1);
			break;
		case ROUTE_TO_MAILDIR:
			group_add(gs, &ng, q->local, d, i);
			break;
		case ROUTE_TO_LMTP:
		case ROUTE_TO_HOSTS:
		case ROUTE_TO_MX:
			group_add(gs, &ng, q->remote, d, i);
			break;
		}
	}
	return ng;
}

/* Hand the message's recipients to the drivers. */
static void
job_submit(struct qmgr *q, struct qjob *j)
{
	struct delivery_request rq;
	struct qgroup *gs = NULL;
	size_t i, ng = job_route(q, j, &gs);

	j->inflight += ng;
	for (i = 0; i < ng; i++) {
		memset(&rq, 0, sizeof(rq));
		rq.mid = j->mid;
		rq.env = &j->env;
		rq.fd = j->fd;
		rq.routes = j->routes;
		rq.rids = gs[i].rids;
		rq.nrids = gs[i].n;
		rq.done = request_done;
		rq.arg = j;
		gs[i].driver->submit(&rq);
		free(gs[i].rids);
	}
	free(gs);
}

/* ------------------------------------------------------------ a round */

/* Up to `room` due messages, not already in delivery. */
static size_t
pick_due(struct qmgr *q, uint64_t *mids, size_t room)
{
	int64_t now = wall_now();
	size_t i, n = 0;

	for (i = 0; i < q->cap && n < room; i++)
		if (q->tab[i].used && !q->tab[i].busy && q->tab[i].next <= now)
			mids[n++] = q->tab[i].mid;
	return n;
}

void
qmgr_round(struct qmgr *q)
{
	struct qjob **jobs, *j;
	uint64_t *mids;
	size_t n, nj = 0, i, room;

	if (q->stopping || paused(q) || q->n == 0 ||
	    q->nflights >= q->max_flight)
		return;
	/* One round on the signing thread at a time: what falls due
	 * meanwhile gathers into the next one (bigger batches, one flush
	 * each); qround_committed() starts it. */
	if (q->rounds != NULL)
		return;
	room = q->max_flight - q->nflights;
	if (room > QMGR_BATCH)
		room = QMGR_BATCH;
	mids = xcalloc(room, sizeof(*mids));
	jobs = xcalloc(room, sizeof(*jobs));
	n = pick_due(q, mids, room);
	for (i = 0; i < n; i++) {
		if ((j = job_open(q, mids[i])) == NULL)
			continue;
		/* in flight from here; +1 holds it until the round ends */
		tab_find(q, j->mid, 1)->busy = 1;
		if ((j->next = q->flights) != NULL)
			q->flights->prevp = &j->next;
		j->prevp = &q->flights;
		q->flights = j;
		q->nflights++;
		j->inflight = 1;
		jobs[nj++] = j;
	}
	if (q->runner != NULL)
		nj = qmgr_start_async(q, jobs, nj);	/* signing thread */
	else
		qmgr_prepare_round(q, jobs, nj);
	for (i = 0; i < nj; i++)
		if (!jobs[i]->held)
			job_submit(q, jobs[i]);
	if (q->local->flush != NULL)
		q->local->flush();
	if (q->remote->flush != NULL)
		q->remote->flush();
	for (i = 0; i < nj; i++)
		job_release(q, jobs[i]);
	free(jobs);
	free(mids);
	/* A full batch means more may be due right now. */
	if (n == room && q->nflights < q->max_flight)
		schedule_run(q);
}

/* ------------------------------------------------------------- alerts */

/* Was an alert for this domain sent within the hour?  If not, remember
 * that one goes now. */
static int
alert_recent(struct qmgr *q, const char *domain, int64_t now)
{
	size_t i, slot = 0;

	for (i = 0; i < QMGR_ALERTS; i++) {
		if (strcmp(q->alerts[i].domain, domain) == 0) {
			if (now - q->alerts[i].when < QMGR_ALERT_GAP)
				return 1;
			slot = i;
			break;
		}
		if (q->alerts[i].when < q->alerts[slot].when)
			slot = i;
	}
	bstrlcpy(q->alerts[slot].domain, domain, sizeof(q->alerts[slot].domain));
	q->alerts[slot].when = now;
	return 0;
}

static void
alert(const char *domain, const char *host, const char *reason)
{
	struct qmgr *q = the_qmgr;
	struct strbuf sb = STRBUF_INIT;
	int64_t now = wall_now();
	char why[512];
	uint64_t mid;

	if (q == NULL || alert_recent(q, domain, now))
		return;
	if (q->conf->nalert_recipients == 0) {
		delivery_log_alert(0, domain, host, reason);
		return;
	}
	if (alert_build(&sb, q->conf, domain, host, reason, now, why,
	    sizeof(why)) == -1)
		log_warnx("cannot build the TLS alert for %s: %s", domain, why);
	else if ((mid = inject(q, q->conf->alert_from,
	    (const char *const *)q->conf->alert_recipients,
	    q->conf->nalert_recipients, &sb)) != 0)
		delivery_log_alert(mid, domain, host, reason);
	strbuf_free(&sb);
}

/* ------------------------------------------------------ life and death */

static void
run_cb(evutil_socket_t fd, short what, void *arg)
{
	qmgr_round(arg);
}

static void
driver_init(struct qmgr *q, const struct delivery_driver *drv)
{
	char why[512];

	if (drv->init != NULL && drv->init(q->base, q->conf, alert, why,
	    sizeof(why)) == -1)
		log_crit("queue manager: %s delivery cannot be set up: %s; "
		    "it will fail", drv->name, why);
}

struct qmgr *
qmgr_new(struct event_base *base, const struct conf *conf,
    struct spool *spool, const struct delivery_driver *local,
    const struct delivery_driver *remote)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));
	struct rlimit rl;

	q->base = base;
	q->conf = conf;
	q->spool = spool;
	q->local = local;
	q->remote = remote;
	q->notify_fd = -1;
	/* in-flight messages hold their spool file open: leave at least
	 * half of the descriptors for connections and maildir files */
	q->max_flight = QMGR_MAX_FLIGHT;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 < q->max_flight)
		q->max_flight = rl.rlim_cur / 2 > 16 ? rl.rlim_cur / 2 : 16;
	if ((q->run_ev = evtimer_new(base, run_cb, q)) == NULL)
		fatalx("queue manager: out of memory for an event");
	the_qmgr = q;
	driver_init(q, local);
	driver_init(q, remote);
	return q;
}

void
qmgr_free(struct qmgr *q)
{
	struct qjob *j;

	if (q == NULL)
		return;
	/* messages still in delivery stay queued: their state is as it was
	 * before this attempt (at-least-once) */
	while ((j = q->flights) != NULL) {
		q->flights = j->next;
		job_free(j);
	}
	if (q->remote->shutdown != NULL)
		q->remote->shutdown();
	if (q->local->shutdown != NULL)
		q->local->shutdown();
	if (the_qmgr == q)
		the_qmgr = NULL;
	event_free(q->run_ev);
	tab_clear(q);
	free(q);
}

/* ------------------------------------------------------------ events */

struct qmgr_events {
	struct qmgr	*q;
	struct event	*tick, *notify, *usr1, *term;
	int		 ticks;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_events *ev = arg;

	if (++ev->ticks % QMGR_RESCAN == 0)
		qmgr_rescan(ev->q);
	else
		qmgr_round(ev->q);
}

/* Workers send the MID of every message they commit. */
static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_events *ev = arg;

	if (notify_drain(ev->q))
		schedule_run(ev->q);
}

static void
usr1_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_events *ev = arg;

	qmgr_rescan(ev->q);
}

static void
term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_events *ev = arg;
	struct qmgr *q = ev->q;
	struct timeval grace = { QMGR_STOP_GRACE, 0 };

	/* Start nothing new; transactions under way get a few seconds to
	 * end, so a stop or a reload rarely makes a duplicate. */
	q->stopping = 1;
	if (q->nflights == 0) {
		event_base_loopexit(q->base, NULL);
		return;
	}
	log_info("queue manager: stopping; waiting up to %d s for %zu "
	    "messages in delivery", QMGR_STOP_GRACE, q->nflights);
	event_base_loopexit(q->base, &grace);
}

static int
events_add(struct qmgr_events *ev, struct event_base *base, int notify_fd)
{
	struct timeval sec = { 1, 0 };

	ev->tick = event_new(base, -1, EV_PERSIST, tick_cb, ev);
	ev->notify = event_new(base, notify_fd, EV_READ | EV_PERSIST,
	    notify_cb, ev);
	ev->usr1 = evsignal_new(base, SIGUSR1, usr1_cb, ev);
	ev->term = evsignal_new(base, SIGTERM, term_cb, ev);
	if (!ev->tick || !ev->notify || !ev->usr1 || !ev->term)
		return -1;
	event_add(ev->tick, &sec);
	event_add(ev->notify, NULL);
	event_add(ev->usr1, NULL);
	event_add(ev->term, NULL);
	return 0;
}

static void
events_free(struct qmgr_events *ev)
{
	if (ev->tick)
		event_free(ev->tick);
	if (ev->notify)
		event_free(ev->notify);
	if (ev->usr1)
		event_free(ev->usr1);
	if (ev->term)
		event_free(ev->term);
}

/* With transformations configured, their thread (else they run in the
 * loop, slower: said once). */
static void
qmgr_start_runner(struct qmgr *q)
{
	char why[256];
	size_t n;

	(void)transform_steps(q->conf, &n);
	if (n > 0 && (q->runner = transform_runner_new(q->base, why,
	    sizeof(why))) == NULL)
		log_warnx("queue manager: %s; signing in the event loop",
		    why);
}

int
qmgr_run(struct event_base *base, const struct conf *conf,
    struct spool *spool, int notify_fd)
{
	struct qmgr_events ev;
	int r = 0;

	memset(&ev, 0, sizeof(ev));
	srandom((unsigned)getpid() ^ (unsigned)wall_now());
	transform_start(conf);	/* signing keys: loaded here, once */
	ev.q = qmgr_new(base, conf, spool, &delivery_local, &delivery_remote);
	ev.q->notify_fd = notify_fd;
	qmgr_start_runner(ev.q);
	if (events_add(&ev, base, notify_fd) == -1)
		r = -1;
	else {
		qmgr_rescan(ev.q);
		event_base_dispatch(base);
	}
	events_free(&ev);
	/* the signing thread first: nothing may still use a job */
	transform_runner_free(ev.q->runner);
	ev.q->runner = NULL;
	while (ev.q->rounds != NULL)
		qround_free(ev.q->rounds);
	qmgr_free(ev.q);
	transform_stop();
	return r;
}
