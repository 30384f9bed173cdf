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
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "deliver_local.h"
#include "log.h"
#include "qmgr.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define QMGR_BATCH	256
#define QMGR_RESCAN	60
#define QMGR_MAXDEV	16

struct qentry {
	uint64_t	mid;
	int64_t		next;		/* wall clock of next attempt */
	int		used;
};

struct qmgr {
	struct event_base	*base;
	const struct conf	*conf;
	struct spool		*spool;
	struct qentry		*tab;	/* open addressing by mid */
	size_t			 cap, n;
	struct event		*run_ev, *tick_ev, *notify_ev, *usr1_ev;
	struct event		*term_ev;
};

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
	log_debug("queue manager: %zu messages in the queue", q->n);
	schedule_run(q);
}

/* ---------------------------------------------------- a delivery round */

struct job {
	uint64_t		 mid;
	int			 fd;
	struct envelope		 env;
	struct rcpt_state	*st;
	struct local_copy	*copies;	/* one per local recipient */
	size_t			*copy_rid;
	size_t			 ncopies;
};

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
	mlog(strcmp(event, "delayed") == 0 ? LOG_LVL_WARNING : LOG_LVL_INFO,
	    event, tmpl, "mid", m, "rids", sb.s, "text", extra ? extra : "",
	    NULL);
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
	if (j->fd != -1)
		close(j->fd);
	envelope_clear(&j->env);
	free(j->st);
	free(j->copies);
	free(j->copy_rid);
}

static void
rcpt_delay(struct qmgr *q, struct job *j, size_t rid, const char *why)
{
	struct rcpt_state *st = &j->st[rid];

	st->attempts++;
	st->next_attempt = wall_now() + qmgr_backoff(q->conf, st->attempts,
	    (double)random() / ((double)RAND_MAX + 1));
	bstrlcpy(st->last_error, why, sizeof(st->last_error));
	log_rids("delayed", "Delayed: MID {mid} to RID {rids} - {text}",
	    j->mid, &rid, 1, why);
}

/* Phase 1: write local copies into tmp/, delay what cannot go now. */
static void
job_write(struct qmgr *q, struct job *j, struct devsync *ds, size_t *nds)
{
	const struct conf_route *r;
	const char *dom;
	char dir[4096], why[512];
	size_t i;

	for (i = 0; i < j->env.nrcpts; i++) {
		if (j->st[i].status != RCPT_PENDING)
			continue;
		dom = strrchr(j->env.rcpts[i].addr, '@');
		r = conf_route_for(q->conf, dom ? dom + 1 : "");
		if (r == NULL || r->maildir == NULL) {
			rcpt_delay(q, j, i, "no local route; delivery by SMTP "
			    "is not available in this version");
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

/* Phase 3 (after the second flush): record and finish. */
static void
job_finish(struct qmgr *q, struct job *j)
{
	char m[32];
	size_t i;
	int left = 0;
	int64_t next = INT64_MAX;

	for (i = 0; i < j->ncopies; i++)
		j->st[j->copy_rid[i]].status = RCPT_DELIVERED;
	if (j->ncopies > 0)
		log_rids("message_done", "Message done MID {mid} to RID {rids} "
		    "local response 'delivered to maildir'", j->mid,
		    j->copy_rid, j->ncopies, NULL);
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
	tab_find(q, j->mid, 1)->next = next;
}

static void
run_round(struct qmgr *q)
{
	struct job *jobs;
	struct devsync ds[QMGR_MAXDEV];
	size_t nj = 0, nds = 0, i;
	int64_t now = wall_now();
	int flushed;

	if (paused(q) || q->n == 0)
		return;
	jobs = xcalloc(QMGR_BATCH, sizeof(*jobs));
	for (i = 0; i < q->cap && nj < QMGR_BATCH; i++)
		if (q->tab[i].used && q->tab[i].next <= now)
			jobs[nj++].mid = q->tab[i].mid;
	for (i = 0; i < nj; i++) {
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
		if (jobs[i].fd != -1)
			job_finish(q, &jobs[i]);
		job_close(&jobs[i]);
	}
	for (i = 0; i < nds; i++)
		close(ds[i].fd);
	free(jobs);
	/* A full batch means more may be due right now. */
	if (nj == QMGR_BATCH)
		schedule_run(q);
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

	event_base_loopexit(q->base, NULL);
}

int
qmgr_run(struct event_base *base, const struct conf *conf,
    struct spool *spool, int notify_fd)
{
	struct qmgr q;
	struct timeval sec = { 1, 0 };

	memset(&q, 0, sizeof(q));
	q.base = base;
	q.conf = conf;
	q.spool = spool;
	srandom((unsigned)getpid() ^ (unsigned)wall_now());
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
	rescan(&q);
	event_base_dispatch(base);
	event_free(q.run_ev);
	event_free(q.tick_ev);
	event_free(q.notify_ev);
	event_free(q.usr1_ev);
	event_free(q.term_ev);
	tab_clear(&q);
	return 0;
}
