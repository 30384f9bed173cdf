/*
 * queue_stats.c - the queue by destination (see queue_stats.h).
 *
 * Public: queue_stats_cache_new, queue_stats_cache_free,
 * queue_stats_scan, queue_stats_clear.
 *
 * A scan lists queue/ and hold/ (sorted MIDs), walks that list and the
 * cache (sorted too) side by side, keeping the entries of messages still
 * there and reading the envelope of new ones; then reads each message's
 * state file (missing: every recipient pending, not yet tried) and adds
 * the message to the totals of every domain that has a pending
 * recipient.  Per-domain totals are found through a small hash table.
 *
 * Cost: two directory listings, one state-file read per message, and one
 * envelope read per message the first time it is seen.  Memory: the
 * cache holds, per message, its distinct recipient domains and one
 * 16-bit index per recipient (ENVELOPE_MAX_RCPTS fits).
 *
 * Threats: envelopes are parsed by envelope_decode (bounds-checked); a
 * message that cannot be read is counted in `unreadable` and skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_stats.h"
#include "route.h"
#include "util.h"

struct qs_entry {
	uint64_t	 mid;
	int64_t		 received;
	size_t		 nrcpts;
	size_t		 ndoms;
	char		**doms;		/* distinct rcpt domains */
	uint16_t	*rdom;		/* each recipient's domain */
};

struct queue_stats_cache {
	struct qs_entry	*e;
	size_t		 n;
};

struct listed {
	uint64_t	mid;
	int		held;
};

/* Per-domain totals of one scan, by a hash of the domain. */
struct agg {
	struct queue_stats	*out;
	size_t			*slot;	/* index + 1; 0 = empty */
	size_t			 cap;		/* power of two */
	size_t			 dcap;	/* room in out->dests */
};

/* An empty cache of envelope summaries. */
struct queue_stats_cache *
queue_stats_cache_new(void)
{
	return xcalloc(1, sizeof(struct queue_stats_cache));
}

static void
entry_clear(struct qs_entry *e)
{
	strv_free(e->doms, e->ndoms);
	free(e->rdom);
	memset(e, 0, sizeof(*e));
}

/* Free a cache; NULL is fine. */
void
queue_stats_cache_free(struct queue_stats_cache *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		entry_clear(&c->e[i]);
	free(c->e);
	free(c);
}

/* Free what a scan put into *s and zero it. */
void
queue_stats_clear(struct queue_stats *s)
{
	free(s->dests);
	memset(s, 0, sizeof(*s));
}

/* The domain of an address as the router keys it, or
 * QUEUE_STATS_NO_DOMAIN. */
static void
rcpt_domain(const char *addr, char *buf, size_t len)
{
	if (route_domain_of(addr, buf, len) == -1)
		bstrlcpy(buf, QUEUE_STATS_NO_DOMAIN, len);
}

/* Read a message's envelope into a cache entry.  0, or -1. */
static int
entry_load(const struct spool *sp, const struct listed *l, struct qs_entry *e)
{
	struct envelope env;
	char why[512], dom[256];
	size_t i, d;
	int fd;

	memset(e, 0, sizeof(*e));
	fd = spool_open_msg(sp, l->held ? SPOOL_HOLD : SPOOL_QUEUE, l->mid, 0,
	    &env, why, sizeof(why));
	if (fd == -1)
		return -1;
	close(fd);
	e->mid = l->mid;
	e->received = env.received;
	e->nrcpts = env.nrcpts;
	e->rdom = xcalloc(env.nrcpts ? env.nrcpts : 1, sizeof(*e->rdom));
	for (i = 0; i < env.nrcpts; i++) {
		rcpt_domain(env.rcpts[i].addr, dom, sizeof(dom));
		for (d = 0; d < e->ndoms && strcmp(e->doms[d], dom) != 0; d++)
			;
		if (d == e->ndoms) {
			e->doms = xrealloc(e->doms, (d + 1) * sizeof(*e->doms));
			e->doms[e->ndoms++] = xstrdup(dom);
		}
		e->rdom[i] = (uint16_t)d;
	}
	envelope_clear(&env);
	return 0;
}

static int
cmp_listed(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;

	return x->mid < y->mid ? -1 : x->mid > y->mid;
}

/* queue/ and hold/ as one list sorted by MID.  0 or -1 with why. */
static int
list_spool(const struct spool *sp, struct listed **out, size_t *n, char *why,
    size_t whylen)
{
	uint64_t *q = NULL, *h = NULL;
	size_t nq = 0, nh = 0, i;

	if (spool_list(sp, SPOOL_QUEUE, &q, &nq) == -1 ||
	    spool_list(sp, SPOOL_HOLD, &h, &nh) == -1) {
		bsnprintf(why, whylen, "cannot list the spool in %s/spool: %s",
		    spool_data_dir(sp), strerror(errno));
		free(q);
		return -1;
	}
	*out = xcalloc(nq + nh + 1, sizeof(**out));
	for (i = 0; i < nq; i++)
		(*out)[i].mid = q[i];
	for (i = 0; i < nh; i++) {
		(*out)[nq + i].mid = h[i];
		(*out)[nq + i].held = 1;
	}
	*n = nq + nh;
	qsort(*out, *n, sizeof(**out), cmp_listed);
	free(q);
	free(h);
	return 0;
}

/* Keep the cache entries of listed messages, load new ones, drop the
 * rest.  `ok[i]`: listed message i has an entry (at the same index). */
static void
cache_update(const struct spool *sp, struct queue_stats_cache *c,
    const struct listed *l, size_t n, char *ok, struct queue_stats *out)
{
	struct qs_entry *ne = xcalloc(n + 1, sizeof(*ne));
	size_t i, j = 0;

	for (i = 0; i < n; i++) {
		while (j < c->n && c->e[j].mid < l[i].mid)
			entry_clear(&c->e[j++]);
		if (j < c->n && c->e[j].mid == l[i].mid) {
			ne[i] = c->e[j++];
			ok[i] = 1;
		} else if (entry_load(sp, &l[i], &ne[i]) == 0)
			ok[i] = 1;
		else if (errno != ENOENT)	/* gone meanwhile: not an error */
			out->unreadable++;
	}
	while (j < c->n)
		entry_clear(&c->e[j++]);
	free(c->e);
	c->e = ne;
	c->n = n;
}

static size_t
hash_str(const char *s)
{
	size_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The totals of `domain`, made on first use. */
static struct queue_dest *
agg_dest(struct agg *a, const char *domain)
{
	struct queue_stats *o = a->out;
	size_t i, k;

	if ((o->ndests + 1) * 2 > a->cap) {
		free(a->slot);
		a->cap = a->cap ? a->cap * 2 : 64;
		a->slot = xcalloc(a->cap, sizeof(*a->slot));
		for (k = 0; k < o->ndests; k++) {
			for (i = hash_str(o->dests[k].domain) & (a->cap - 1);
			    a->slot[i]; i = (i + 1) & (a->cap - 1))
				;
			a->slot[i] = k + 1;
		}
	}
	for (i = hash_str(domain) & (a->cap - 1); a->slot[i];
	    i = (i + 1) & (a->cap - 1))
		if (strcmp(o->dests[a->slot[i] - 1].domain, domain) == 0)
			return &o->dests[a->slot[i] - 1];
	if (o->ndests == a->dcap) {
		a->dcap = a->dcap ? a->dcap * 2 : 16;
		o->dests = xrealloc(o->dests, a->dcap * sizeof(*o->dests));
	}
	a->slot[i] = o->ndests + 1;
	memset(&o->dests[o->ndests], 0, sizeof(o->dests[0]));
	bstrlcpy(o->dests[o->ndests].domain, domain, sizeof(o->dests[0].domain));
	return &o->dests[o->ndests++];
}

static void
oldest(int64_t *cur, int64_t received)
{
	if (*cur == 0 || received < *cur)
		*cur = received;
}

/* Bits per domain: 1 a pending recipient not yet tried, 2 one tried. */
#define PEND_NEW	1
#define PEND_TRIED	2

/* Add one message (its state read now) to the totals. */
static void
count_entry(const struct spool *sp, const struct qs_entry *e, int held,
    struct agg *a, struct rcpt_state *st, unsigned char *f)
{
	struct queue_stats *o = a->out;
	struct queue_dest *d;
	unsigned all = 0;
	size_t i;

	memset(f, 0, e->ndoms);
	(void)spool_state_read(sp, e->mid, st, e->nrcpts);
	for (i = 0; i < e->nrcpts; i++)
		if (st[i].status == RCPT_PENDING) {
			f[e->rdom[i]] |= st[i].attempts > 0 ? PEND_TRIED :
			    PEND_NEW;
			all |= f[e->rdom[i]];
		}
	if (all == 0)
		return;		/* finished, being removed */
	if (held)
		o->held++;
	else {
		if (all & PEND_NEW)
			o->active++;
		else
			o->deferred++;
		oldest(&o->oldest, e->received);
	}
	for (i = 0; i < e->ndoms; i++) {
		if (f[i] == 0)
			continue;
		d = agg_dest(a, e->doms[i]);
		if (held) {
			d->held++;
			continue;
		}
		if (f[i] & PEND_NEW)
			d->active++;
		else
			d->deferred++;
		oldest(&d->oldest, e->received);
	}
}

static int
by_size(const void *a, const void *b)
{
	const struct queue_dest *x = a, *y = b;
	uint64_t nx = x->active + x->deferred + x->held;
	uint64_t ny = y->active + y->deferred + y->held;

	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

/* Count the spool by destination now. */
int
queue_stats_scan(const struct spool *sp, struct queue_stats_cache *c,
    struct queue_stats *out, char *why, size_t whylen)
{
	struct agg a = { out, NULL, 0, 0 };
	struct rcpt_state *st = NULL;
	struct listed *l;
	unsigned char *f = NULL;
	size_t n, i, cap = 0;
	char *ok;

	memset(out, 0, sizeof(*out));
	if (list_spool(sp, &l, &n, why, whylen) == -1)
		return -1;
	ok = xcalloc(n + 1, 1);
	cache_update(sp, c, l, n, ok, out);
	for (i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		if (c->e[i].nrcpts > cap || c->e[i].ndoms > cap) {
			cap = c->e[i].nrcpts > c->e[i].ndoms ? c->e[i].nrcpts :
			    c->e[i].ndoms;
			st = xrealloc(st, cap * sizeof(*st));
			f = xrealloc(f, cap);
		}
		count_entry(sp, &c->e[i], l[i].held, &a, st, f);
	}
	if (out->ndests > 1)
		qsort(out->dests, out->ndests, sizeof(*out->dests), by_size);
	free(a.slot);
	free(st);
	free(f);
	free(ok);
	free(l);
	return 0;
}
