/*
 * transform.h - the seam for message content transformations: DKIM
 * signing, S/MIME signing and encryption (the steps themselves are in
 * transform_smime.c and transform_dkim.c, see transform_steps.h), and the
 * entry points the queue manager calls.
 *
 * Decision (docs/spool.md "Message transformation"):
 *  - WHERE: in the queue manager, once per message, before its first
 *    delivery attempt.  Never in the SMTP workers: they parse untrusted
 *    input and must never hold private keys.
 *  - PERSISTED: the spool file is rewritten with the transformed content,
 *    same MID, same envelope plus "transformed 1" (envelope.h).  So a
 *    retry sends exactly the bytes that were signed, a local maildir gets
 *    the same signed copy as the next hop, and a RET=FULL bounce returns
 *    what was sent.  A transformed message is never transformed again
 *    (not even after a configuration change).
 *  - CRASH-SAFE AND GROUPED: the new file is written to incoming/<MID>;
 *    a whole round of messages is flushed with one syncfs(2), then each
 *    is renamed over queue/<MID> and queue/ is fsynced once
 *    (spool_rewrite_*, spool.h).  A crash leaves the old or the new file,
 *    never a half one; a file still untransformed after a restart is
 *    transformed again (incoming/ is emptied at start).
 *  - FREE WHEN UNUSED: with no step configured transform_message() neither
 *    reads nor writes the file, and transform_commit() does nothing.
 *
 * Outcomes (the house OK / TEMPFAIL / PERMFAIL):
 *  - TRANSFORM_OK: deliver (the content may now be the transformed one).
 *    Some recipients may still be PERMFAIL in the per-recipient outcomes.
 *  - TRANSFORM_TEMPFAIL: the whole message waits, `why` says why (e.g. a
 *    DKIM key that cannot be used under dkim_on_error = "defer", or the
 *    new copy could not be written).  Nothing was changed, and the
 *    per-recipient outcomes mean nothing.
 *  - per recipient TRANSFORM_PERMFAIL, with an RFC 3463 status (5.7.x):
 *    e.g. S/MIME encrypt = required and no certificate for that
 *    recipient.  Those recipients bounce; the others get the transformed
 *    content.  When every recipient fails, transform_message() returns
 *    TRANSFORM_PERMFAIL and nothing is written.
 *
 * How the queue manager runs one round (messages opened and locked):
 *
 *   tb = transform_batch_new(spool, conf, steps, nsteps);
 *   for each message due (never for one in remote delivery):
 *     switch (transform_message(tb, mid, fd, &env, rcpts, why, len))
 *       TEMPFAIL: defer every pending recipient with `why`; no delivery
 *       PERMFAIL: bounce every pending recipient (rcpts[i].status, .why)
 *       OK:       bounce the pending recipients marked PERMFAIL
 *     record those bounces now (DSN injected, state written), BEFORE the
 *     commit: a crash after the rename must not forget them
 *   transform_commit(tb);                  one syncfs for the round
 *   for each message of the round still going:
 *     switch (transform_take(tb, mid, &fd, &env, why, len))
 *       1:  fd and env are now those of the new file (old fd closed)
 *       0:  nothing was rewritten: deliver the file as it is
 *       -1: defer every pending recipient with `why`; no delivery
 *           (fd and env still describe queue/<MID>: close them as usual)
 *   ... deliver (local and remote) from fd / env ...
 *   transform_batch_free(tb);
 *
 * The queue manager runs these same calls off its event loop, on the
 * helper thread of a transform_runner (below): signing and the rewrite's
 * file work (new copies, the flush, the renames, closing the replaced
 * files) never stall deliveries or the workers' notifications
 * (docs/architecture.md "Signing").
 *
 * Limits: each message is transformed in memory (one copy per step).
 * Outcomes for recipients that are no longer pending must be ignored by
 * the caller.
 */
#ifndef POSTERN_TRANSFORM_H
#define POSTERN_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>
#include "conf.h"
#include "envelope.h"
#include "strbuf.h"

struct spool;
struct transform_batch;

enum transform_outcome {
	TRANSFORM_OK,
	TRANSFORM_TEMPFAIL,
	TRANSFORM_PERMFAIL
};

/* What a step sees of a message; borrowed for the call. */
struct transform_msg {
	uint64_t		 mid;
	const struct envelope	*env;	/* sender, recipients, auth user */
	const char		*data;	/* content so far (earlier steps') */
	size_t			 len;
};

/* The outcome for one recipient (index = RID); starts as OK. */
struct transform_rcpt {
	enum transform_outcome	outcome;	/* OK or PERMFAIL */
	char			status[16];	/* RFC 3463, "5.7.1" */
	char			why[256];
};

/* One transformation step; steps run in list order, each on the output
 * of the one before. */
struct transform_step {
	const char	*name;		/* for logs: "dkim", "smime-sign" */
	/* Does this message need the step under this configuration?  No
	 * side effects; 1 yes, 0 no. */
	int		(*wants)(const struct transform_msg *,
			    const struct conf *);
	/*
	 * Write the transformed message into `out` (empty on entry).
	 * Return OK (recipients it cannot serve marked PERMFAIL in
	 * `rcpts`, with status and why), TEMPFAIL with `why`, or PERMFAIL
	 * with `why` (every recipient the step did not mark fails with
	 * it, status 5.7.0).
	 */
	enum transform_outcome (*apply)(const struct transform_msg *in,
			    const struct conf *, struct strbuf *out,
			    struct transform_rcpt *rcpts, char *why,
			    size_t whylen);
};

/*
 * The steps this configuration enables, in order: S/MIME when smime.sign
 * lists something, then DKIM when `dkim` has entries.  *n = 0 and NULL
 * when there are none.
 */
const struct transform_step *const *transform_steps(const struct conf *,
	    size_t *n);
/* At queue-manager start (every reload starts a new one): load what the
 * steps keep for `conf` (the DKIM keys; each one that cannot be used
 * gets a Warning).  `conf` is borrowed until transform_stop(). */
void	transform_start(const struct conf *);
void	transform_stop(void);

/* A round's transformations, made durable together.  `steps` (nsteps
 * entries, may be 0) and `conf` are borrowed for the batch's life. */
struct transform_batch *transform_batch_new(struct spool *,
	    const struct conf *, const struct transform_step *const *steps,
	    size_t nsteps);
/* Free; rewrites not committed or not taken are discarded (the queued
 * files stay as they are).  NULL is fine. */
void	transform_batch_free(struct transform_batch *);

/*
 * Transform the queued message `mid` (fd: its open, locked spool file,
 * env: its envelope) for its first delivery attempt.  `rcpts` has
 * env->nrcpts entries and is filled.  Already transformed, no step
 * configured, or no step wanting it: OK at once, nothing written.
 * Otherwise the steps run and the new copy is written to a scratch file
 * (not yet durable, not yet in place: see transform_commit()).  Several
 * threads may transform different messages of one batch at once (the
 * runner's); the batch's other calls are one thread's.
 */
enum transform_outcome transform_message(struct transform_batch *,
	    uint64_t mid, int fd, const struct envelope *env,
	    struct transform_rcpt *rcpts, char *why, size_t whylen);

/* Make every new copy of the batch durable and put it in place: one
 * syncfs, a rename each, one fsync of queue/. */
void	transform_commit(struct transform_batch *);

/*
 * After transform_commit(): did `mid` get its new file?  Afterwards *fd
 * and *env always describe the file at queue/<MID>.  1 = rewritten: *fd
 * is closed and replaced by the new file's locked read-write descriptor
 * at offset 0; *env gets the new msg_size and transformed = 1 (all else
 * is the same).  0 = nothing
 * was rewritten for `mid`: both unchanged.  -1 = defer the message with
 * `why`: the rewrite failed and both are unchanged, or (only the final
 * directory flush failed) they are replaced as for 1 and the next
 * attempt finds the file already transformed.
 */
int	transform_take(struct transform_batch *, uint64_t mid, int *fd,
	    struct envelope *env, char *why, size_t whylen);

/* ---- off the event loop ------------------------------------------------ */

/*
 * One message of a batch handed to the runner.  The caller fills mid,
 * fd, env, rcpts (env->nrcpts entries), why/whylen and arg, and lends
 * them until its commit callback has run; the runner fills outcome (and
 * rcpts, why) in the prepare phase, the caller sets skip for messages it
 * will not deliver now (deferred, bounced), and the runner fills taken
 * (as transform_take(): 1, 0 or -1, with *fd and *env replaced) in the
 * commit phase.
 */
struct transform_job {
	uint64_t		 mid;
	int			*fd;
	struct envelope		*env;
	struct transform_rcpt	*rcpts;
	char			*why;
	size_t			 whylen;
	void			*arg;		/* the caller's */
	enum transform_outcome	 outcome;
	int			 skip;
	int			 taken;
};

struct transform_runner;
struct event_base;

/* Called in the loop when a phase has run; `arg` as given. */
typedef void (*transform_done_fn)(void *arg);

/* A helper thread and its way back into `base`.  NULL with why. */
struct transform_runner *transform_runner_new(struct event_base *,
	    char *why, size_t whylen);
/*
 * Stop the thread: the task it is running finishes, the others are
 * dropped and their callbacks never run (their owners free the
 * batches).  NULL is fine.
 */
void	transform_runner_free(struct transform_runner *);
/* Prepare phase, on the thread: transform_message() for every job of
 * tb (in order); then done(arg) in the loop. */
void	transform_runner_prepare(struct transform_runner *,
	    struct transform_batch *, struct transform_job *, size_t n,
	    transform_done_fn done, void *arg);
/* Commit phase, on the thread: transform_commit(), then
 * transform_take() for every job not skipped; then done(arg). */
void	transform_runner_commit(struct transform_runner *,
	    struct transform_batch *, struct transform_job *, size_t n,
	    transform_done_fn done, void *arg);

#endif
