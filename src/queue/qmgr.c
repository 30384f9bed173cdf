/*
 * qmgr.c - queue manager (see qmgr.h).
 *
 * Table: every MID in spool/queue with the time of its next attempt.
 * Sources: the spool scan at start, MIDs sent by workers after each commit,
 * a rescan on SIGUSR1 (sent by `postern queue retry/release/resume`) and
 * every QMGR_RESCAN seconds as a safety net.
 *
 * A delivery round takes up to QMGR_BATCH due messages.  For each it locks
 * the spool file (flock, so `postern queue delete/hold` never races a
 * delivery), writes every local recipient's copy into the maildir's tmp/,
 * then: one syncfs per file system, rename all copies into new/, one more
 * syncfs, and only then records the recipients as delivered and removes
 * spool copies that have nothing left to do.  A crash at any point leaves
 * the spool copy in place: at-least-once, never lost.
 *
 * Remote recipients (a route with hosts, or no route: MX) are grouped by
 * domain and handed to deliver_smtp; the message stays open (locked,
 * mapped) and marked busy in the table until every group has reported.
 * Then the state is written (or the spool copy removed), bounced
 * recipients get one DSN to the sender (never for the null sender), and
 * a recipient deferred past delivery.max_queue_lifetime is bounced.
 * TLS failures on destinations that require TLS send an alert mail to
 * alerts.recipients, at most one per domain per hour.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "deliver_local.h"
#include "deliver_smtp.h"
#include "dns.h"
#include "alert.h"
#include "bounce.h"
#include "ids.h"
#include "log.h"
#include "qmgr.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define QMGR_BATCH	256
#define QMGR_RESCAN	60
#define QMGR_MAXDEV	16
#define QMGR_MAX_FLIGHT	1000	/* messages in remote delivery at once */
#define QMGR_ALERT_GAP	3600	/* one alert per domain per hour */
#define QMGR_ALERTS	256
#define QMGR_STOP_GRACE	8	/* s for deliveries under way at SIGTERM */

struct qentry {
	uint64_t	mid;
	int64_t		next;		/* wall clock of next attempt */
	int		used;
	int		busy;		/* in remote delivery */
};

/* A recipient bounced in this attempt, for the DSN. */
struct qbounce {
	size_t	rid;
	char	text[512];	/* reply or reason */
	char	remote[256];	/* host that answered, "" = none */
	char	status[16];	/* 5.x.x */
	int	smtp_diag;	/* text is a remote reply */
	int64_t	when;
};

/* Recipients of one domain that go out by SMTP. */
struct rgroup {
	char	 domain[256];
	size_t	*rids;
	size_t	 n;
};

struct job {
	struct job		*next;		/* in q->flights */
	struct qmgr		*q;
	uint64_t		 mid;
	int			 fd;
	struct envelope		 env;
	struct rcpt_state	*st;
	struct local_copy	*copies;	/* one per local recipient */
	size_t			*copy_rid;
	size_t			 ncopies;
	struct rgroup		*groups;	/* remote recipients */
	size_t			 ngroups;
	size_t			 inflight;	/* groups not reported yet */
	char			*map;		/* content (env.msg_size), mapped */
	struct qbounce		*bounces;	/* recipients bounced now */
	size_t			 nbounces;
};


struct qmgr {
	struct event_base	*base;
	const struct conf	*conf;
	struct spool		*spool;
	struct qentry		*tab;	/* open addressing by mid */
	size_t			 cap, n;
	struct event		*run_ev, *tick_ev, *notify_ev, *usr1_ev;
	struct event		*term_ev;
	struct job		*flights;	/* in remote delivery */
	size_t			 nflights;
	size_t			 max_flight;	/* each holds an fd */
	int			 stopping;	/* SIGTERM: finish, start none */
	struct {
		char	domain[256];
		int64_t	when;
	}			 alerts[QMGR_ALERTS];
};

static struct qmgr *the_qmgr;	/* for deliver_smtp's alert callback */

/* ---------------------------------------------------------- the table */

static size_t
slot_of(const struct qmgr *q, uint64_t mid)
{
	return (size_t)((mid * 11400714819323198485ull) >> 20) & (q->cap - 1);
}

static struct qentry *
tab_find(struct qmgr *q, uint64_t mid, int create)
{
	size_t i, k;

	if (create && (q->n + 1) * 2 > q->cap) {
		struct qentry *old = q->tab;
		size_t oldcap = q->cap;
		q->cap = q->cap ? q->cap * 2 : 1024;
		q->tab = xcalloc(q->cap, sizeof(*q->tab));
		q->n = 0;
		for (k = 0; k < oldcap; k++)
			if (old[k].used) {
				struct qentry *e = tab_find(q, old[k].mid, 1);
				e->next = old[k].next;
				e->busy = old[k].busy;
			}
		free(old);
	}
	if (q->cap == 0)
		return NULL;
	for (i = slot_of(q, mid);; i = (i + 1) & (q->cap - 1)) {
		if (!q->tab[i].used) {
			if (!create)
				return NULL;
			q->tab[i].used = 1;
			q->tab[i].mid = mid;
			q->tab[i].next = 0;
			q->tab[i].busy = 0;
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
	struct rcpt_state st[64];
	int64_t best = INT64_MAX;
	size_t i;

	/* A state file lists recipients in order; 64 covers the common case
	 * and a larger message is simply tried at once. */
	if (spool_state_read(q->spool, mid, st, 64) == -1)
		return 0;
	for (i = 0; i < 64; i++)
		if (st[i].status == RCPT_PENDING && st[i].next_attempt < best)
			best = st[i].next_attempt;
	return best == INT64_MAX ? 0 : best;
}

static void
rescan(struct qmgr *q)
{
	struct job *f;
	uint64_t *mids;
	size_t n, i;

	if (spool_list(q->spool, SPOOL_QUEUE, &mids, &n) == -1) {
		log_warn("queue manager: cannot list the spool");
		return;
	}
	tab_clear(q);
	for (i = 0; i < n; i++)
		tab_find(q, mids[i], 1)->next = next_attempt(q, mids[i]);
	free(mids);
	for (f = q->flights; f; f = f->next)
		tab_find(q, f->mid, 1)->busy = 1;
	log_debug("queue manager: %zu messages in the queue", q->n);
	schedule_run(q);
}

/* ---------------------------------------------------- a delivery round */

struct devsync {
	dev_t	dev;
	int	fd;
};

static void
rid_list(struct strbuf *sb, const size_t *rids, size_t n)
{
	size_t i;

	strbuf_putc(sb, '[');
	for (i = 0; i < n; i++)
		strbuf_printf(sb, "%s%zu", i ? ", " : "", rids[i]);
	strbuf_putc(sb, ']');
}

static void
log_rids(const char *event, const char *tmpl, uint64_t mid, const size_t *rids,
    size_t n, const char *extra)
{
	struct strbuf sb = STRBUF_INIT;
	char m[32];

	snprintf(m, sizeof(m), "%llu", (unsigned long long)mid);
	rid_list(&sb, rids, n);
	mlog(strcmp(event, "delayed") == 0 || strcmp(event, "bounced") == 0 ?
	    LOG_LVL_WARNING : LOG_LVL_INFO, event, tmpl, "mid", m, "rids",
	    sb.s, "text", extra ? extra : "", NULL);
	strbuf_free(&sb);
}

/* Remember the file system of a path, to flush it once per round. */
static void
note_dev(struct devsync *ds, size_t *nds, const char *path)
{
	char dir[4096], *slash;
	struct stat st;
	size_t i;
	int fd;

	bstrlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (stat(dir, &st) == -1)
		return;
	for (i = 0; i < *nds; i++)
		if (ds[i].dev == st.st_dev)
			return;
	if (*nds >= QMGR_MAXDEV)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	ds[*nds].dev = st.st_dev;
	ds[(*nds)++].fd = fd;
}

static int
sync_devs(struct devsync *ds, size_t nds)
{
	size_t i;
	int ok = 1;

	for (i = 0; i < nds; i++)
		if (syncfs(ds[i].fd) == -1)
			ok = 0;
	return ok ? 0 : -1;
}

/* Open, lock and check a due message.  0 ok, -1 skip. */
static int
job_open(struct qmgr *q, struct job *j)
{
	char why[512], path[4096];
	struct stat a, b;

	j->q = q;
	j->fd = spool_open_msg(q->spool, SPOOL_QUEUE, j->mid, 1, &j->env, why,
	    sizeof(why));
	if (j->fd == -1) {
		if (errno == EINVAL) {
			log_crit("MID %llu: %s; moved to spool/corrupt for "
			    "inspection", (unsigned long long)j->mid, why);
			spool_move(q->spool, j->mid, SPOOL_QUEUE, SPOOL_CORRUPT);
		}
		tab_remove(q, j->mid);
		return -1;
	}
	/* Busy (queue command at work) or moved/deleted meanwhile: skip. */
	spool_path(q->spool, SPOOL_QUEUE, j->mid, path, sizeof(path));
	if (flock(j->fd, LOCK_EX | LOCK_NB) == -1 || fstat(j->fd, &a) == -1 ||
	    stat(path, &b) == -1 || a.st_ino != b.st_ino) {
		close(j->fd);
		envelope_clear(&j->env);
		j->fd = -1;
		return -1;
	}
	j->st = xcalloc(j->env.nrcpts, sizeof(*j->st));
	spool_state_read(q->spool, j->mid, j->st, j->env.nrcpts);
	j->copies = xcalloc(j->env.nrcpts, sizeof(*j->copies));
	j->copy_rid = xcalloc(j->env.nrcpts, sizeof(*j->copy_rid));
	return 0;
}

static void
job_close(struct job *j)
{
	size_t i;

	if (j->map != NULL)
		munmap(j->map, j->env.msg_size);
	if (j->fd != -1)
		close(j->fd);
	envelope_clear(&j->env);
	free(j->st);
	free(j->copies);
	free(j->copy_rid);
	for (i = 0; i < j->ngroups; i++)
		free(j->groups[i].rids);
	free(j->groups);
	free(j->bounces);
	j->map = NULL;
	j->fd = -1;
	j->groups = NULL;
	j->ngroups = j->nbounces = 0;
	j->bounces = NULL;
}

/* Has this message been queued longer than delivery.max_queue_lifetime? */
static int
expired(const struct qmgr *q, const struct job *j)
{
	return wall_now() - j->env.received >= q->conf->max_queue_lifetime;
}

/* Record a permanent failure; the DSN is sent when the job completes. */
static void
rcpt_bounce(struct qmgr *q, struct job *j, size_t rid, const char *why,
    const char *status, const char *remote, int smtp_diag, int log)
{
	struct rcpt_state *st = &j->st[rid];
	struct qbounce *b;

	st->status = RCPT_FAILED;
	st->attempts++;
	bstrlcpy(st->last_error, why, sizeof(st->last_error));
	if (log)
		log_rids("bounced", "Bounced: MID {mid} to RID {rids} - {text}",
		    j->mid, &rid, 1, why);
	j->bounces = xrealloc(j->bounces, (j->nbounces + 1) *
	    sizeof(*j->bounces));
	b = &j->bounces[j->nbounces++];
	memset(b, 0, sizeof(*b));
	b->rid = rid;
	bstrlcpy(b->text, why, sizeof(b->text));
	bstrlcpy(b->remote, remote ? remote : "", sizeof(b->remote));
	bstrlcpy(b->status, status && status[0] == '5' ? status : "5.0.0",
	    sizeof(b->status));
	b->smtp_diag = smtp_diag;
	b->when = wall_now();
}

/* A temporary failure: try again later, or bounce once too old. */
static void
rcpt_defer(struct qmgr *q, struct job *j, size_t rid, const char *why,
    int log)
{
	struct rcpt_state *st = &j->st[rid];
	char text[700];

	if (expired(q, j)) {
		snprintf(text, sizeof(text), "message expired after %lld s in "
		    "the queue (delivery.max_queue_lifetime = %d s); last "
		    "error: %s", (long long)(wall_now() - j->env.received),
		    q->conf->max_queue_lifetime, why);
		/* RFC 3463 4.4.7; a DSN with Action: failed wants 5.x.x */
		rcpt_bounce(q, j, rid, text, "5.4.7", NULL, 0, 1);
		return;
	}
	st->attempts++;
	st->next_attempt = wall_now() + qmgr_backoff(q->conf, st->attempts,
	    (double)random() / ((double)RAND_MAX + 1));
	bstrlcpy(st->last_error, why, sizeof(st->last_error));
	if (log)
		log_rids("delayed", "Delayed: MID {mid} to RID {rids} - {text}",
		    j->mid, &rid, 1, why);
}

static void
rcpt_delay(struct qmgr *q, struct job *j, size_t rid, const char *why)
{
	rcpt_defer(q, j, rid, why, 1);
}

/* Lower-cased domain of an address, "" when it has none. */
static void
addr_domain(const char *addr, char *buf, size_t len)
{
	const char *at = strrchr(addr, '@');

	bstrlcpy(buf, at ? at + 1 : "", len);
	ascii_lower(buf, strlen(buf));
}

static void
group_add(struct job *j, const char *domain, size_t rid)
{
	struct rgroup *g;
	size_t i;

	for (i = 0; i < j->ngroups; i++)
		if (strcmp(j->groups[i].domain, domain) == 0)
			break;
	if (i == j->ngroups) {
		j->groups = xrealloc(j->groups, (j->ngroups + 1) *
		    sizeof(*j->groups));
		g = &j->groups[j->ngroups++];
		memset(g, 0, sizeof(*g));
		bstrlcpy(g->domain, domain, sizeof(g->domain));
	}
	g = &j->groups[i];
	g->rids = xrealloc(g->rids, (g->n + 1) * sizeof(*g->rids));
	g->rids[g->n++] = rid;
}

/* Phase 1: write local copies into tmp/, group remote recipients, delay
 * what cannot go now. */
static void
job_write(struct qmgr *q, struct job *j, struct devsync *ds, size_t *nds)
{
	const struct conf_route *r;
	char dir[4096], why[512], dom[256];
	size_t i;

	for (i = 0; i < j->env.nrcpts; i++) {
		if (j->st[i].status != RCPT_PENDING)
			continue;
		addr_domain(j->env.rcpts[i].addr, dom, sizeof(dom));
		r = conf_route_for(q->conf, dom);
		if (r == NULL || r->maildir == NULL) {
			if (dom[0] == '\0') {
				rcpt_bounce(q, j, i, "recipient address has "
				    "no domain", "5.1.3", NULL, 0, 1);
				continue;
			}
			group_add(j, dom, i);
			continue;
		}
		if (deliver_local_maildir(r, j->env.rcpts[i].addr, dir,
		    sizeof(dir)) == -1) {
			rcpt_delay(q, j, i, "mailbox name not allowed");
			continue;
		}
		if (deliver_local_write(dir, q->conf->hostname, j->mid, i,
		    j->env.from, j->fd, j->env.msg_size,
		    &j->copies[j->ncopies], why, sizeof(why)) == -1) {
			rcpt_delay(q, j, i, why);
			continue;
		}
		note_dev(ds, nds, j->copies[j->ncopies].tmp_path);
		j->copy_rid[j->ncopies++] = i;
	}
	if (j->ncopies > 0)
		log_rids("delivery_start", "Delivery start MID {mid} to RID "
		    "{rids} local", j->mid, j->copy_rid, j->ncopies, NULL);
}

/* Phase 2 (after the flush): publish copies into new/. */
static void
job_publish(struct qmgr *q, struct job *j, int flushed)
{
	char why[512];
	size_t i, k = 0;

	for (i = 0; i < j->ncopies; i++) {
		if (!flushed) {
			deliver_local_discard(&j->copies[i]);
			rcpt_delay(q, j, j->copy_rid[i], "cannot flush the "
			    "maildir to disk");
			continue;
		}
		if (deliver_local_publish(&j->copies[i], why, sizeof(why))) {
			deliver_local_discard(&j->copies[i]);
			rcpt_delay(q, j, j->copy_rid[i], why);
			continue;
		}
		j->copy_rid[k++] = j->copy_rid[i];
	}
	j->ncopies = k;
}

/* Phase 3 (after the second flush): the local copies are delivered. */
static void
job_local_done(struct job *j)
{
	size_t i;

	for (i = 0; i < j->ncopies; i++)
		j->st[j->copy_rid[i]].status = RCPT_DELIVERED;
	if (j->ncopies > 0)
		log_rids("message_done", "Message done MID {mid} to RID {rids} "
		    "local response 'delivered to maildir'", j->mid,
		    j->copy_rid, j->ncopies, NULL);
	j->ncopies = 0;
}

/* Put a message we generate (bounce, alert) into the queue.  Returns its
 * MID or 0. */
static uint64_t
inject(struct qmgr *q, const char *from, const char *const *rcpts, size_t n,
    const struct strbuf *msg)
{
	struct envelope env;
	char why[512];
	uint64_t mid;

	envelope_generated(&env, q->conf->hostname, ids_next(ID_MID), from, rcpts, n,
	    msg->s, msg->len, wall_now());
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

/* One DSN for the recipients bounced in this attempt. */
static void
job_send_bounce(struct qmgr *q, struct job *j)
{
	struct strbuf sb = STRBUF_INIT;
	struct dsn_rcpt *want;
	char why[512], m[32], nm[32];
	const char *to[1];
	size_t i, n = 0;
	uint64_t mid;

	if (j->nbounces == 0)
		return;
	if (j->env.from[0] == '\0') {
		log_debug("MID %llu: no bounce for the null sender",
		    (unsigned long long)j->mid);
		return;
	}
	want = xcalloc(j->nbounces, sizeof(*want));
	for (i = 0; i < j->nbounces; i++) {
		const struct qbounce *b = &j->bounces[i];
		const struct env_rcpt *er = &j->env.rcpts[b->rid];
		/* RFC 3461 4.1: NOTIFY without FAILURE asks for none. */
		if (!bounce_notify_failure(er->notify))
			continue;
		want[n].addr = er->addr;
		want[n].orcpt = er->orcpt;
		want[n].status = b->status;
		want[n].remote_mta = b->remote[0] ? b->remote : NULL;
		want[n].diagnostic = b->text;
		want[n].smtp_diag = b->smtp_diag;
		want[n++].last_attempt = b->when;
	}
	if (n == 0) {
		free(want);
		return;
	}
	if (bounce_build_bounce(&sb, q->conf, &j->env, j->fd, want, n,
	    wall_now(), why, sizeof(why)) == -1) {
		log_crit("MID %llu: cannot build the bounce: %s",
		    (unsigned long long)j->mid, why);
		goto out;
	}
	to[0] = j->env.from;
	if ((mid = inject(q, "", to, 1, &sb)) != 0) {
		snprintf(m, sizeof(m), "%llu", (unsigned long long)j->mid);
		snprintf(nm, sizeof(nm), "%llu", (unsigned long long)mid);
		mlog(LOG_LVL_INFO, "bounce", "Bounce MID {bmid} for MID {mid} "
		    "to <{to}>", "bmid", nm, "mid", m, "to", j->env.from, NULL);
	}
out:
	strbuf_free(&sb);
	free(want);
}

/* Every recipient has been tried: bounce, record, finish or reschedule. */
static void
job_complete(struct qmgr *q, struct job *j)
{
	char m[32];
	size_t i;
	int left = 0;
	int64_t next = INT64_MAX;
	struct qentry *e;

	job_send_bounce(q, j);
	for (i = 0; i < j->env.nrcpts; i++)
		if (j->st[i].status == RCPT_PENDING) {
			left++;
			if (j->st[i].next_attempt < next)
				next = j->st[i].next_attempt;
		}
	if (left == 0) {
		spool_remove(q->spool, SPOOL_QUEUE, j->mid);
		tab_remove(q, j->mid);
		snprintf(m, sizeof(m), "%llu", (unsigned long long)j->mid);
		mlog(LOG_LVL_INFO, "message_finished",
		    "Message finished MID {mid} done", "mid", m, NULL);
		return;
	}
	if (spool_state_write(q->spool, j->mid, j->st, j->env.nrcpts) == -1)
		log_warn("MID %llu: cannot write delivery state",
		    (unsigned long long)j->mid);
	e = tab_find(q, j->mid, 1);
	e->next = next;
	e->busy = 0;
}

/* deliver_smtp reports one group. */
static void
group_done(void *arg, const struct dsmtp_result *res, size_t n)
{
	struct job *j = arg, **pp;
	struct qmgr *q = j->q;
	size_t i;
	int was_full;

	for (i = 0; i < n; i++) {
		const struct dsmtp_result *r = &res[i];
		switch (r->outcome) {
		case DSMTP_DELIVERED:
			j->st[r->rid].status = RCPT_DELIVERED;
			break;
		case DSMTP_BOUNCED:
			rcpt_bounce(q, j, r->rid, r->text, r->status, r->remote,
			    r->smtp_diag, 0);
			break;
		case DSMTP_DEFERRED:
			rcpt_defer(q, j, r->rid, r->text, 0);
			break;
		}
	}
	if (--j->inflight > 0)
		return;
	job_complete(q, j);
	for (pp = &q->flights; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	was_full = q->nflights >= q->max_flight;
	q->nflights--;
	job_close(j);
	free(j);
	if (q->stopping && q->nflights == 0) {
		event_base_loopexit(q->base, NULL);
		return;
	}
	if (was_full)
		schedule_run(q);
}

/* Hand the remote groups of a message to deliver_smtp.  The job then
 * belongs to the flight list until the last group reports. */
static void
job_send_remote(struct qmgr *q, struct job *j)
{
	struct job *fj = xmalloc(sizeof(*fj));
	size_t i;

	*fj = *j;
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	if (fj->env.msg_size > 0) {
		fj->map = mmap(NULL, fj->env.msg_size, PROT_READ, MAP_PRIVATE,
		    fj->fd, 0);
		if (fj->map == MAP_FAILED) {
			fj->map = NULL;
			for (i = 0; i < fj->ngroups; i++) {
				size_t k;
				for (k = 0; k < fj->groups[i].n; k++)
					rcpt_delay(q, fj, fj->groups[i].rids[k],
					    "cannot map the spool file");
			}
			job_complete(q, fj);
			job_close(fj);
			free(fj);
			return;
		}
	}
	tab_find(q, fj->mid, 1)->busy = 1;
	fj->next = q->flights;
	q->flights = fj;
	q->nflights++;
	/* +1: the callbacks may run from inside submit */
	fj->inflight = fj->ngroups + 1;
	for (i = 0; i < fj->ngroups; i++)
		deliver_smtp_submit(fj->groups[i].domain, fj->mid, &fj->env,
		    fj->map ? fj->map : "", fj->env.msg_size, fj->groups[i].rids,
		    fj->groups[i].n, group_done, fj);
	group_done(fj, NULL, 0);
}

static void
run_round(struct qmgr *q)
{
	struct job *jobs;
	struct devsync ds[QMGR_MAXDEV];
	size_t nj = 0, nds = 0, i, room;
	int64_t now = wall_now();
	int flushed;

	if (q->stopping || paused(q) || q->n == 0 ||
	    q->nflights >= q->max_flight)
		return;
	room = q->max_flight - q->nflights;
	if (room > QMGR_BATCH)
		room = QMGR_BATCH;
	jobs = xcalloc(room, sizeof(*jobs));
	for (i = 0; i < q->cap && nj < room; i++)
		if (q->tab[i].used && !q->tab[i].busy && q->tab[i].next <= now)
			jobs[nj++].mid = q->tab[i].mid;
	for (i = 0; i < nj; i++) {
		jobs[i].fd = -1;
		if (job_open(q, &jobs[i]) == -1)
			continue;
		job_write(q, &jobs[i], ds, &nds);
	}
	flushed = sync_devs(ds, nds) == 0;
	for (i = 0; i < nj; i++)
		if (jobs[i].fd != -1)
			job_publish(q, &jobs[i], flushed);
	if (sync_devs(ds, nds) == -1)
		log_warn("queue manager: flushing maildirs failed");
	for (i = 0; i < nj; i++) {
		if (jobs[i].fd != -1) {
			job_local_done(&jobs[i]);
			if (jobs[i].ngroups > 0) {
				job_send_remote(q, &jobs[i]);
				continue;
			}
			job_complete(q, &jobs[i]);
		}
		job_close(&jobs[i]);
	}
	for (i = 0; i < nds; i++)
		close(ds[i].fd);
	free(jobs);
	/* A full batch means more may be due right now. */
	if (nj == room && q->nflights < q->max_flight)
		schedule_run(q);
}

/* ------------------------------------------------------------- alerts */

static void
alert(const char *domain, const char *host, const char *reason)
{
	struct qmgr *q = the_qmgr;
	struct strbuf sb = STRBUF_INIT;
	int64_t now = wall_now();
	size_t i, slot = 0;
	char nm[32], why[512];
	uint64_t mid;

	if (q == NULL)
		return;
	for (i = 0; i < QMGR_ALERTS; i++) {
		if (strcmp(q->alerts[i].domain, domain) == 0) {
			if (now - q->alerts[i].when < QMGR_ALERT_GAP)
				return;
			slot = i;
			break;
		}
		if (q->alerts[i].when < q->alerts[slot].when)
			slot = i;
	}
	bstrlcpy(q->alerts[slot].domain, domain, sizeof(q->alerts[slot].domain));
	q->alerts[slot].when = now;
	if (q->conf->nalert_recipients == 0) {
		mlog(LOG_LVL_WARNING, "alert", "Alert not sent (no "
		    "alerts.recipients): TLS failure domain {domain} host "
		    "{host}: {reason}", "domain", domain, "host", host,
		    "reason", reason, NULL);
		return;
	}
	if (alert_build(&sb, q->conf, domain, host, reason, now, why,
	    sizeof(why)) == -1) {
		log_warnx("cannot build the TLS alert for %s: %s", domain, why);
		strbuf_free(&sb);
		return;
	}
	if ((mid = inject(q, q->conf->alert_from,
	    (const char *const *)q->conf->alert_recipients,
	    q->conf->nalert_recipients, &sb)) == 0) {
		strbuf_free(&sb);
		return;
	}
	strbuf_free(&sb);
	snprintf(nm, sizeof(nm), "%llu", (unsigned long long)mid);
	mlog(LOG_LVL_WARNING, "alert", "Alert MID {mid} TLS failure domain "
	    "{domain} host {host}: {reason}", "mid", nm, "domain", domain,
	    "host", host, "reason", reason, NULL);
}

/* ------------------------------------------------------------- events */

static void
run_cb(evutil_socket_t fd, short what, void *arg)
{
	run_round(arg);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	static int ticks;
	struct qmgr *q = arg;

	if (++ticks % QMGR_RESCAN == 0)
		rescan(q);
	else
		run_round(q);
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	uint64_t mid;
	int got = 0;

	while (recv(fd, &mid, sizeof(mid), MSG_DONTWAIT) == sizeof(mid)) {
		tab_find(q, mid, 1)->next = 0;
		got = 1;
	}
	if (got)
		schedule_run(q);
}

static void
usr1_cb(evutil_socket_t fd, short what, void *arg)
{
	rescan(arg);
}

static void
term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
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

int
qmgr_run(struct event_base *base, const struct conf *conf,
    struct spool *spool, int notify_fd)
{
	struct qmgr q;
	struct timeval sec = { 1, 0 };
	struct rlimit rl;
	char why[512];

	memset(&q, 0, sizeof(q));
	q.base = base;
	q.conf = conf;
	q.spool = spool;
	srandom((unsigned)getpid() ^ (unsigned)wall_now());
	/* in-flight messages hold their spool file open: leave at least
	 * half of the descriptors for connections and maildir files */
	q.max_flight = QMGR_MAX_FLIGHT;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 < q.max_flight)
		q.max_flight = rl.rlim_cur / 2 > 16 ? rl.rlim_cur / 2 : 16;
	q.run_ev = evtimer_new(base, run_cb, &q);
	q.tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, &q);
	q.notify_ev = event_new(base, notify_fd, EV_READ | EV_PERSIST,
	    notify_cb, &q);
	q.usr1_ev = evsignal_new(base, SIGUSR1, usr1_cb, &q);
	q.term_ev = evsignal_new(base, SIGTERM, term_cb, &q);
	if (!q.run_ev || !q.tick_ev || !q.notify_ev || !q.usr1_ev || !q.term_ev)
		return -1;
	event_add(q.tick_ev, &sec);
	event_add(q.notify_ev, NULL);
	event_add(q.usr1_ev, NULL);
	event_add(q.term_ev, NULL);
	if (dns_init(base, conf, why, sizeof(why)) == -1)
		log_warnx("queue manager: %s; delivery by MX will fail", why);
	if (deliver_smtp_init(base, conf, alert, why, sizeof(why)) == -1)
		log_crit("queue manager: outbound TLS cannot be set up: %s; "
		    "remote delivery will fail", why);
	the_qmgr = &q;
	rescan(&q);
	event_base_dispatch(base);
	the_qmgr = NULL;
	deliver_smtp_shutdown();
	event_free(q.run_ev);
	event_free(q.tick_ev);
	event_free(q.notify_ev);
	event_free(q.usr1_ev);
	event_free(q.term_ev);
	tab_clear(&q);
	return 0;
}
