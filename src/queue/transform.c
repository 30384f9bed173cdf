/*
 * transform.c - message content transformations in the queue manager
 * (see transform.h for the decision, the outcomes and how a round runs;
 * docs/spool.md "Message transformation").
 *
 * Owns: the batch of one round's rewrites, the chaining of steps (each
 * reads the previous one's output, two buffers used in turn), and the
 * per-recipient outcomes.  The file work is spool.c's: spool_rewrite_new
 * writes the new copy to incoming/<MID> (locked), spool_rewrite_commit
 * flushes the round once and renames each over queue/<MID>.
 *
 * Public: transform_steps, transform_start, transform_stop,
 * transform_batch_new, transform_batch_free, transform_message,
 * transform_commit, transform_take.  The steps themselves:
 * transform_smime.c, transform_dkim.c (transform_steps.h).
 *
 * Limits: a message is transformed in memory (the mapped spool file plus
 * one buffer per step in turn); steps are synchronous.  Threats: steps get
 * content from the network and treat it as untrusted (dkim.c and smime.c
 * say how); they run in the queue manager, where the private keys are.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "transform.h"
#include "transform_steps.h"
#include "util.h"

/* One message of the round whose new copy waits in incoming/. */
struct rewrite {
	uint64_t	  mid;
	struct spool_msg *msg;		/* NULL once taken */
	uint64_t	  size;		/* octets of the new content */
};

struct transform_batch {
	pthread_mutex_t			  lock;	/* rw: the runner's threads
						 * transform messages of one
						 * batch at once */
	struct spool			 *spool;
	const struct conf		 *conf;
	const struct transform_step *const *steps;
	size_t				  nsteps;
	struct rewrite			 *rw;
	size_t				  nrw, caprw;
	int				  committed;
};

/* The steps this configuration enables: S/MIME first, as it changes
 * the body; DKIM last, as it signs the final bytes. */
const struct transform_step *const *
transform_steps(const struct conf *conf, size_t *n)
{
	static const struct transform_step *steps[2];

	*n = 0;
	if (conf == NULL)
		return NULL;
	if (conf->smime_keys != NULL && conf->nsmime_sign > 0)
		steps[(*n)++] = &transform_smime_step;
	if (conf->ndkim > 0)
		steps[(*n)++] = &transform_dkim_step;
	return *n > 0 ? steps : NULL;
}

/* Queue-manager start: load what the steps keep (the DKIM keys). */
void
transform_start(const struct conf *conf)
{
	if (conf->ndkim > 0)
		(void)transform_dkim_start(conf);
}

void
transform_stop(void)
{
	transform_dkim_stop();
}

/* An empty batch for one round. */
struct transform_batch *
transform_batch_new(struct spool *spool, const struct conf *conf,
    const struct transform_step *const *steps, size_t nsteps)
{
	struct transform_batch *tb = xcalloc(1, sizeof(*tb));

	tb->spool = spool;
	tb->conf = conf;
	tb->steps = steps;
	tb->nsteps = nsteps;
	pthread_mutex_init(&tb->lock, NULL);
	return tb;
}

/* Free a batch; uncommitted or untaken rewrites are discarded. */
void
transform_batch_free(struct transform_batch *tb)
{
	char why[256];
	size_t i;
	int fd;

	if (tb == NULL)
		return;
	for (i = 0; i < tb->nrw; i++) {
		if (tb->rw[i].msg == NULL)
			continue;
		if (!tb->committed)
			spool_msg_abort(tb->rw[i].msg);
		else if (spool_rewrite_result(tb->rw[i].msg, &fd, why,
		    sizeof(why)) >= 0)
			close(fd);
	}
	free(tb->rw);
	pthread_mutex_destroy(&tb->lock);
	free(tb);
}

static struct rewrite *
rewrite_find(struct transform_batch *tb, uint64_t mid)
{
	size_t i;

	for (i = 0; i < tb->nrw; i++)
		if (tb->rw[i].mid == mid)
			return &tb->rw[i];
	return NULL;
}

/* Write the new copy of `mid` to incoming/ and add it to the batch. */
static int
rewrite_write(struct transform_batch *tb, uint64_t mid,
    const struct envelope *env, const char *data, size_t len, char *why,
    size_t whylen)
{
	struct spool_msg *m;
	struct envelope e;
	struct rewrite *rw;

	if ((m = spool_rewrite_new(tb->spool, mid, why, whylen)) == NULL)
		return -1;
	/* Same envelope, new size, marked: a shallow copy for encoding. */
	e = *env;
	e.msg_size = len;
	e.transformed = 1;
	if (spool_msg_write(m, data, len) == -1) {
		bsnprintf(why, whylen, "spool: cannot write the new copy of MID "
		    "%llu: %s", (unsigned long long)mid, strerror(errno));
		spool_msg_abort(m);
		return -1;
	}
	if (spool_rewrite_finish(m, &e, why, whylen) == -1) {
		spool_msg_abort(m);
		return -1;
	}
	pthread_mutex_lock(&tb->lock);
	if (tb->nrw == tb->caprw) {
		tb->caprw = tb->caprw ? tb->caprw * 2 : 16;
		tb->rw = xrealloc(tb->rw, tb->caprw * sizeof(*tb->rw));
	}
	rw = &tb->rw[tb->nrw++];
	rw->mid = mid;
	rw->msg = m;
	rw->size = len;
	pthread_mutex_unlock(&tb->lock);
	return 0;
}

/* Run every step that wants the message; the result is in *out (NULL
 * when none ran).  OK, TEMPFAIL or PERMFAIL as the steps said. */
static enum transform_outcome
run_steps(struct transform_batch *tb, struct transform_msg *in,
    struct strbuf bufs[2], struct transform_rcpt *rcpts,
    const struct strbuf **out, char *why, size_t whylen)
{
	const struct transform_step *st;
	enum transform_outcome r;
	char stepwhy[512];
	size_t i, ran = 0;

	*out = NULL;
	for (i = 0; i < tb->nsteps; i++) {
		st = tb->steps[i];
		if (!st->wants(in, tb->conf))
			continue;
		/* Step k writes buffer k % 2 and reads the other one. */
		strbuf_reset(&bufs[ran % 2]);
		stepwhy[0] = '\0';
		r = st->apply(in, tb->conf, &bufs[ran % 2], rcpts, stepwhy,
		    sizeof(stepwhy));
		if (r != TRANSFORM_OK) {
			bsnprintf(why, whylen, "%s: %s", st->name, stepwhy[0] ?
			    stepwhy : "failed");
			return r;
		}
		*out = &bufs[ran % 2];
		in->data = (*out)->s != NULL ? (*out)->s : "";
		in->len = (*out)->len;
		ran++;
	}
	return TRANSFORM_OK;
}

/* Recipients the steps did not mark fail with `why` (a step's PERMFAIL). */
static void
fail_all(struct transform_rcpt *rcpts, size_t n, const char *why)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (rcpts[i].outcome == TRANSFORM_PERMFAIL)
			continue;
		rcpts[i].outcome = TRANSFORM_PERMFAIL;
		bstrlcpy(rcpts[i].status, "5.7.0", sizeof(rcpts[i].status));
		bstrlcpy(rcpts[i].why, why, sizeof(rcpts[i].why));
	}
}

static int
any_ok(const struct transform_rcpt *rcpts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rcpts[i].outcome == TRANSFORM_OK)
			return 1;
	return 0;
}

/* Run the steps on one message and stage its new copy. */
enum transform_outcome
transform_message(struct transform_batch *tb, uint64_t mid, int fd,
    const struct envelope *env, struct transform_rcpt *rcpts, char *why,
    size_t whylen)
{
	struct strbuf bufs[2] = { STRBUF_INIT, STRBUF_INIT };
	const struct strbuf *out;
	struct transform_msg in;
	enum transform_outcome r;
	void *map = NULL;
	int busy;

	memset(rcpts, 0, env->nrcpts * sizeof(*rcpts));
	if (tb == NULL || tb->nsteps == 0 || env->transformed)
		return TRANSFORM_OK;	/* no read, no write */
	pthread_mutex_lock(&tb->lock);
	busy = rewrite_find(tb, mid) != NULL;
	pthread_mutex_unlock(&tb->lock);
	if (busy) {
		bsnprintf(why, whylen, "MID %llu is already being transformed",
		    (unsigned long long)mid);
		return TRANSFORM_TEMPFAIL;
	}
	if (env->msg_size > 0 && (map = mmap(NULL, env->msg_size, PROT_READ,
	    MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
		bsnprintf(why, whylen, "cannot map the spool file of MID %llu: "
		    "%s", (unsigned long long)mid, strerror(errno));
		return TRANSFORM_TEMPFAIL;
	}
	in.mid = mid;
	in.env = env;
	in.data = map != NULL ? map : "";
	in.len = env->msg_size;
	r = run_steps(tb, &in, bufs, rcpts, &out, why, whylen);
	if (r == TRANSFORM_PERMFAIL)
		fail_all(rcpts, env->nrcpts, why);
	if (r == TRANSFORM_OK && !any_ok(rcpts, env->nrcpts))
		r = TRANSFORM_PERMFAIL;
	if (r == TRANSFORM_OK && out != NULL && rewrite_write(tb, mid, env,
	    in.data, in.len, why, whylen) == -1)
		r = TRANSFORM_TEMPFAIL;
	if (map != NULL)
		munmap(map, env->msg_size);
	strbuf_free(&bufs[0]);
	strbuf_free(&bufs[1]);
	return r;
}

/* Flush and put in place every staged copy: one syncfs. */
void
transform_commit(struct transform_batch *tb)
{
	struct spool_msg **msgs;
	size_t i, n = 0;

	if (tb == NULL || tb->committed)
		return;
	tb->committed = 1;
	if (tb->nrw == 0)
		return;
	msgs = xcalloc(tb->nrw, sizeof(*msgs));
	for (i = 0; i < tb->nrw; i++)
		if (tb->rw[i].msg != NULL)
			msgs[n++] = tb->rw[i].msg;
	spool_rewrite_commit(tb->spool, msgs, n);
	free(msgs);
}

/* Hand over the new file of one message after the commit. */
int
transform_take(struct transform_batch *tb, uint64_t mid, int *fd,
    struct envelope *env, char *why, size_t whylen)
{
	struct rewrite *rw;
	int r, nfd = -1;

	if (tb == NULL || (rw = rewrite_find(tb, mid)) == NULL ||
	    rw->msg == NULL)
		return 0;
	if (!tb->committed) {
		bsnprintf(why, whylen, "MID %llu: transform_take before "
		    "transform_commit", (unsigned long long)mid);
		spool_msg_abort(rw->msg);
		rw->msg = NULL;
		return -1;
	}
	r = spool_rewrite_result(rw->msg, &nfd, why, whylen);
	rw->msg = NULL;
	if (r == -1)
		return -1;
	/* queue/<MID> is the new file now, whether or not its directory
	 * entry is flushed: describe that one. */
	close(*fd);
	*fd = nfd;
	log_debug("MID %llu: transformed, %llu -> %llu octets",
	    (unsigned long long)mid, (unsigned long long)env->msg_size,
	    (unsigned long long)rw->size);
	env->msg_size = rw->size;
	env->transformed = 1;
	return r == 1 ? 1 : -1;
}
