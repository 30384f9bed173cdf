/*
 * transform_runner.c - the queue manager's transformations off its event
 * loop (see transform.h "off the event loop" and docs/architecture.md
 * "Signing"): one helper thread runs the two phases of each batch -
 * prepare (the steps: S/MIME, DKIM signing; the new copies written) and
 * commit (one flush, the renames, taking the new files, which closes
 * the replaced ones) - and hands each finished phase back to the loop
 * through a pipe, where its callback runs.  The prepare phase is shared
 * out: one more thread per further CPU (at most RUNNER_THREADS in all)
 * takes messages of the batch too, so RSA signing uses every core.
 *
 * Public: transform_runner_new, transform_runner_free,
 * transform_runner_prepare, transform_runner_commit.
 *
 * Why a thread: measured on the bench machine, a round's signing and
 * rewrite (RSA signatures, file creation, syncfs, and ext4 freeing the
 * replaced files' blocks) kept the loop busy for milliseconds per
 * message, so deliveries waited and the workers' MID datagrams were
 * dropped.  One thread, tasks in order: phase 2 of a batch runs after its
 * phase 1 (the loop records the step's bounces in between, before any
 * rename); batches of later rounds may be prepared meanwhile.
 *
 * Limits: RUNNER_THREADS signing threads at most (RSA-2048 signs about
 * 1,400 messages a second on one core of the bench machine).  Threats:
 * the steps' own (transform.h); what the threads touch of a job is lent
 * to them until the phase's callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "transform.h"
#include "util.h"

#define RUNNER_THREADS	8

enum phase { PHASE_PREPARE, PHASE_COMMIT };

struct task {
	struct task		*next;
	enum phase		 phase;
	struct transform_batch	*tb;
	struct transform_job	*jobs;
	size_t			 n;
	transform_done_fn	 done;
	void			*arg;
};

struct transform_runner {
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct task		*todo, **todo_tail;	/* for the thread */
	struct task		*done, **done_tail;	/* for the loop */
	int			 stop;
	int			 wake[2];
	struct event		*wake_ev;
	/* helpers of the prepare phase (under lock) */
	pthread_t		 helpers[RUNNER_THREADS];
	int			 nhelpers;
	pthread_cond_t		 share_cond;	/* a prepare to share */
	pthread_cond_t		 done_cond;	/* a helper finished */
	struct task		*share;		/* being prepared */
	unsigned long		 gen;		/* bumped per shared prepare */
	size_t			 next;		/* its next job */
	int			 busy;		/* helpers still at it */
};

/* Transform jobs of t until none is left (each taken once, under lock). */
static void
prepare_some(struct transform_runner *tr, struct task *t)
{
	struct transform_job *j;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&tr->lock);
		i = tr->next++;
		pthread_mutex_unlock(&tr->lock);
		if (i >= t->n)
			return;
		j = &t->jobs[i];
		j->why[0] = '\0';
		j->outcome = transform_message(t->tb, j->mid, *j->fd, j->env,
		    j->rcpts, j->why, j->whylen);
	}
}

/* Phase 1: shared with the helpers; returns when every job is done. */
static void
run_prepare(struct transform_runner *tr, struct task *t)
{
	pthread_mutex_lock(&tr->lock);
	tr->share = t;
	tr->next = 0;
	tr->busy = tr->nhelpers;
	tr->gen++;
	pthread_cond_broadcast(&tr->share_cond);
	pthread_mutex_unlock(&tr->lock);
	prepare_some(tr, t);
	pthread_mutex_lock(&tr->lock);
	while (tr->busy > 0)
		pthread_cond_wait(&tr->done_cond, &tr->lock);
	tr->share = NULL;
	pthread_mutex_unlock(&tr->lock);
}

/* A helper: joins every shared prepare; ends at stop (a prepare that
 * was shared before is still finished). */
static void *
helper_main(void *arg)
{
	struct transform_runner *tr = arg;
	unsigned long seen;
	struct task *t;

	/* gen starts at 0: a helper that starts late still sees the first
	 * share, which waits for it */
	seen = 0;
	pthread_mutex_lock(&tr->lock);
	for (;;) {
		while (tr->gen == seen && !tr->stop)
			pthread_cond_wait(&tr->share_cond, &tr->lock);
		if (tr->gen == seen)
			break;
		seen = tr->gen;
		t = tr->share;
		pthread_mutex_unlock(&tr->lock);
		prepare_some(tr, t);
		pthread_mutex_lock(&tr->lock);
		if (--tr->busy == 0)
			pthread_cond_signal(&tr->done_cond);
	}
	pthread_mutex_unlock(&tr->lock);
	return NULL;
}

static void
run_commit(struct task *t)
{
	struct transform_job *j;
	size_t i;

	transform_commit(t->tb);
	for (i = 0; i < t->n; i++) {
		j = &t->jobs[i];
		j->taken = j->skip ? 0 : transform_take(t->tb, j->mid, j->fd,
		    j->env, j->why, j->whylen);
	}
}

static void *
runner_main(void *arg)
{
	struct transform_runner *tr = arg;
	struct task *t;
	char c = 1;

	pthread_mutex_lock(&tr->lock);
	for (;;) {
		while (tr->todo == NULL && !tr->stop)
			pthread_cond_wait(&tr->cond, &tr->lock);
		if (tr->stop)
			break;
		t = tr->todo;
		if ((tr->todo = t->next) == NULL)
			tr->todo_tail = &tr->todo;
		pthread_mutex_unlock(&tr->lock);
		if (t->phase == PHASE_PREPARE)
			run_prepare(tr, t);
		else
			run_commit(t);
		pthread_mutex_lock(&tr->lock);
		t->next = NULL;
		*tr->done_tail = t;
		tr->done_tail = &t->next;
		pthread_mutex_unlock(&tr->lock);
		while (write(tr->wake[1], &c, 1) == -1 && errno == EINTR)
			;
		pthread_mutex_lock(&tr->lock);
	}
	pthread_mutex_unlock(&tr->lock);
	return NULL;
}

/* Loop side: run the callbacks of the phases the thread finished. */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct transform_runner *tr = arg;
	struct task *t, *next;
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&tr->lock);
	t = tr->done;
	tr->done = NULL;
	tr->done_tail = &tr->done;
	pthread_mutex_unlock(&tr->lock);
	for (; t != NULL; t = next) {
		next = t->next;
		t->done(t->arg);
		free(t);
	}
}

/* What a runner holds besides its threads and tasks, released. */
static void
runner_release(struct transform_runner *tr)
{
	if (tr->wake_ev != NULL)
		event_free(tr->wake_ev);
	if (tr->wake[0] != -1) {
		close(tr->wake[0]);
		close(tr->wake[1]);
	}
	pthread_mutex_destroy(&tr->lock);
	pthread_cond_destroy(&tr->cond);
	pthread_cond_destroy(&tr->share_cond);
	pthread_cond_destroy(&tr->done_cond);
	free(tr);
}

/* One helper per CPU beyond the first (a helper that cannot start is
 * simply not there: the coordinator prepares alone). */
static void
start_helpers(struct transform_runner *tr)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int want = ncpu > 1 ? (int)(ncpu - 1) : 0;

	if (want > RUNNER_THREADS - 1)
		want = RUNNER_THREADS - 1;
	while (tr->nhelpers < want && pthread_create(&tr->helpers[tr->nhelpers],
	    NULL, helper_main, tr) == 0)
		tr->nhelpers++;
}

/* The helper thread and its pipe back into `base`. */
struct transform_runner *
transform_runner_new(struct event_base *base, char *why, size_t whylen)
{
	struct transform_runner *tr = xcalloc(1, sizeof(*tr));

	tr->todo_tail = &tr->todo;
	tr->done_tail = &tr->done;
	tr->wake[0] = tr->wake[1] = -1;
	pthread_mutex_init(&tr->lock, NULL);
	pthread_cond_init(&tr->cond, NULL);
	pthread_cond_init(&tr->share_cond, NULL);
	pthread_cond_init(&tr->done_cond, NULL);
	if (pipe2(tr->wake, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    (tr->wake_ev = event_new(base, tr->wake[0], EV_READ | EV_PERSIST,
	    wake_cb, tr)) == NULL || event_add(tr->wake_ev, NULL) == -1 ||
	    pthread_create(&tr->thread, NULL, runner_main, tr) != 0) {
		bsnprintf(why, whylen, "cannot start the signing thread: %s",
		    strerror(errno));
		runner_release(tr);
		return NULL;
	}
	start_helpers(tr);
	return tr;
}

static void
tasks_free(struct task *t)
{
	struct task *next;

	for (; t != NULL; t = next) {
		next = t->next;
		free(t);
	}
}

/* Stop and join the thread; tasks not run or not called back are
 * dropped (their owners free the batches). */
void
transform_runner_free(struct transform_runner *tr)
{
	int i;

	if (tr == NULL)
		return;
	pthread_mutex_lock(&tr->lock);
	tr->stop = 1;
	pthread_cond_signal(&tr->cond);
	pthread_cond_broadcast(&tr->share_cond);
	pthread_mutex_unlock(&tr->lock);
	pthread_join(tr->thread, NULL);
	for (i = 0; i < tr->nhelpers; i++)
		pthread_join(tr->helpers[i], NULL);
	tasks_free(tr->todo);
	tasks_free(tr->done);
	runner_release(tr);
}

static void
enqueue(struct transform_runner *tr, enum phase ph, struct transform_batch *tb,
    struct transform_job *jobs, size_t n, transform_done_fn done, void *arg)
{
	struct task *t = xcalloc(1, sizeof(*t));

	t->phase = ph;
	t->tb = tb;
	t->jobs = jobs;
	t->n = n;
	t->done = done;
	t->arg = arg;
	pthread_mutex_lock(&tr->lock);
	*tr->todo_tail = t;
	tr->todo_tail = &t->next;
	pthread_cond_signal(&tr->cond);
	pthread_mutex_unlock(&tr->lock);
}

/* Phase 1 of a batch on the thread (see transform.h). */
void
transform_runner_prepare(struct transform_runner *tr,
    struct transform_batch *tb, struct transform_job *jobs, size_t n,
    transform_done_fn done, void *arg)
{
	enqueue(tr, PHASE_PREPARE, tb, jobs, n, done, arg);
}

/* Phase 2 of a batch on the thread (see transform.h). */
void
transform_runner_commit(struct transform_runner *tr,
    struct transform_batch *tb, struct transform_job *jobs, size_t n,
    transform_done_fn done, void *arg)
{
	enqueue(tr, PHASE_COMMIT, tb, jobs, n, done, arg);
}
