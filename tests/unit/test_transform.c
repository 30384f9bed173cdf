/*
 * test_transform.c - the message transformation seam (transform.c and the
 * spool_rewrite_* API of spool.c), with test-only steps and the file
 * system failure seam of test_fsfault.h.
 *
 * Steps used here: "header" and "second" prepend a header field each,
 * "never" is never wanted, "defer" fails temporarily for senders starting
 * with "defer", "nocert" fails recipients starting with "nocert" (5.7.1),
 * "refuse" fails the whole message permanently.  Covered: no step = no
 * read and no write; the rewrite (same MID, envelope, "transformed 1",
 * verified footer, lock kept under the new name); a retry changes
 * nothing; steps chain in order; one syncfs and one directory flush for
 * a whole batch; TEMPFAIL and PERMFAIL outcomes; and every failure of the
 * rewrite (create, write, syncfs, rename, directory flush, incoming/
 * emptied by a restart, no commit) leaves a whole file in queue/ - the
 * original unless the rename was done - and a later round transforms it.
 *
 * The real steps (transform_steps.h) through the same seam: which steps
 * a configuration enables and in which order; DKIM signs mail from a
 * configured domain with every key of it (Ed25519 and RSA), t= from the
 * envelope, and leaves other mail untouched (no rewrite); a key that
 * cannot be used defers the message (dkim_on_error = defer) or lets it
 * go without that signature (send-unsigned); S/MIME defers when the
 * signing key is missing and, with encrypt = required, bounces the
 * recipients without a certificate (5.7.5).
 *
 * The runner (the queue manager's signing thread): both phases run off
 * the calling thread and call back in the event loop, in order, with the
 * outcomes, skips and takes as the synchronous calls give them; freeing
 * it with work queued drops that work without a callback.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <cmocka.h>

#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "spool.h"
#include "strbuf.h"
#include "conf.h"
#include "test_dkimkey.h"
#include "transform.h"
#include "transform_steps.h"
#include "util.h"

#include "test_fsfault.h"
#define TEST_TMPDIR_PREFIX "postern-test-transform"
#include "test_tmpdir.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define ORIG		"Received: by mx.test.example\r\nFrom: a@example.org" \
			"\r\nSubject: t\r\n\r\nbody\r\n"
#define HDR		"X-Test-Step: header\r\n"
#define HDR2		"X-Second: 1\r\n"

static struct spool *sp;
static int napplied_never;

static int
t_setup(void **state)
{
	char why[256];

	if (setup(state) == -1)
		return -1;
	fsfault_reset();
	napplied_never = 0;
	sp = spool_open(tmpdir, why, sizeof(why));
	return sp == NULL ? -1 : 0;
}

static int
t_teardown(void **state)
{
	spool_free(sp);
	sp = NULL;
	fsfault_reset();
	return teardown(state);
}

/* ---- test-only steps -------------------------------------------------- */

static int
wants_all(const struct transform_msg *m, const struct conf *c)
{
	return 1;
}

static int
wants_none(const struct transform_msg *m, const struct conf *c)
{
	return 0;
}

static int
wants_defer(const struct transform_msg *m, const struct conf *c)
{
	return strncmp(m->env->from, "defer", 5) == 0;
}

static void
prepend(const struct transform_msg *in, struct strbuf *out, const char *h)
{
	strbuf_puts(out, h);
	strbuf_add(out, in->data, in->len);
}

static enum transform_outcome
apply_header(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	prepend(in, out, HDR);
	return TRANSFORM_OK;
}

static enum transform_outcome
apply_second(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	prepend(in, out, HDR2);
	return TRANSFORM_OK;
}

static enum transform_outcome
apply_never(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	napplied_never++;
	return TRANSFORM_OK;
}

static enum transform_outcome
apply_defer(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	bsnprintf(why, wl, "key not usable");
	return TRANSFORM_TEMPFAIL;
}

static enum transform_outcome
apply_nocert(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	size_t i;

	for (i = 0; i < in->env->nrcpts; i++) {
		if (strncmp(in->env->rcpts[i].addr, "nocert", 6) != 0)
			continue;
		r[i].outcome = TRANSFORM_PERMFAIL;
		bstrlcpy(r[i].status, "5.7.1", sizeof(r[i].status));
		bsnprintf(r[i].why, sizeof(r[i].why), "no certificate for %.200s",
		    in->env->rcpts[i].addr);
	}
	prepend(in, out, "X-Encrypted: yes\r\n");
	return TRANSFORM_OK;
}

static enum transform_outcome
apply_refuse(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	bsnprintf(why, wl, "cannot sign");
	return TRANSFORM_PERMFAIL;
}

static const struct transform_step step_header = { "header", wants_all,
	apply_header };
static const struct transform_step step_second = { "second", wants_all,
	apply_second };
static const struct transform_step step_never = { "never", wants_none,
	apply_never };
static const struct transform_step step_defer = { "defer", wants_defer,
	apply_defer };
static const struct transform_step step_nocert = { "nocert", wants_all,
	apply_nocert };
static const struct transform_step step_refuse = { "refuse", wants_all,
	apply_refuse };

/* ---- helpers ---------------------------------------------------------- */

/* Queue a message (content `data`) for `rcpts`, from `from`. */
static void
queue_msg(uint64_t mid, const char *from, const char *const *rcpts,
    size_t n, const char *data)
{
	static const char *const dflt[] = { "bob@example.com",
	    "carol@example.net" };
	struct envelope env;
	char why[256];

	if (rcpts == NULL) {
		rcpts = dflt;
		n = NELEM(dflt);
	}
	envelope_generated(&env, "mx.test.example", mid, from, rcpts, n, data,
	    strlen(data), 1763880000);
	if (spool_inject(sp, &env, data, strlen(data), why, sizeof(why)) == -1)
		fail_msg("inject: %s", why);
	envelope_clear(&env);
}

/* Open and lock a queued message, as the queue manager does. */
static int
open_queued(uint64_t mid, struct envelope *env)
{
	char why[256];
	int fd;

	fd = spool_open_msg(sp, SPOOL_QUEUE, mid, 1, env, why, sizeof(why));
	if (fd == -1)
		fail_msg("open MID %llu: %s", (unsigned long long)mid, why);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	return fd;
}

static char *
file_bytes(uint64_t mid, size_t *len)
{
	char path[512], *b;

	spool_path(sp, SPOOL_QUEUE, mid, path, sizeof(path));
	assert_non_null(b = read_file(path, len, 1 << 24));
	return b;
}

static size_t
count_area(const char *area)
{
	char path[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/spool/%s", tmpdir, area);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static size_t
count_incoming(void)
{
	return count_area("incoming");
}

/* queue/<mid> verifies and holds `want` as content; returns transformed. */
static int
check_queued(uint64_t mid, const char *want)
{
	struct envelope env;
	char why[256], buf[4096];
	size_t len = strlen(want);
	int fd, tr;

	fd = spool_open_msg(sp, SPOOL_QUEUE, mid, 1, &env, why, sizeof(why));
	if (fd == -1)
		fail_msg("MID %llu: %s", (unsigned long long)mid, why);
	assert_true(env.msg_size == len);
	assert_true(pread(fd, buf, sizeof(buf), 0) >= (ssize_t)len);
	assert_memory_equal(buf, want, len);
	assert_int_equal(env.nrcpts, 2);
	assert_true(env.mid == mid);
	tr = env.transformed;
	envelope_clear(&env);
	close(fd);
	return tr;
}

/* ---- no step: no cost ------------------------------------------------- */

static void
test_no_steps(void **state)
{
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	struct envelope env;
	char why[256] = "";
	size_t n = 9;
	int fd = -1;		/* a read would fail on it */
	int i;

	assert_null(transform_steps(NULL, &n));
	assert_int_equal(n, 0);
	queue_msg(10, "a@example.org", NULL, 0, ORIG);
	fd = open_queued(10, &env);
	close(fd);
	fd = -1;
	fsfault_reset();
	tb = transform_batch_new(sp, NULL, NULL, 0);
	memset(rc, 0xff, sizeof(rc));
	assert_int_equal(transform_message(tb, 10, fd, &env, rc, why,
	    sizeof(why)), TRANSFORM_OK);
	assert_int_equal(rc[1].outcome, TRANSFORM_OK);
	transform_commit(tb);
	assert_int_equal(transform_take(tb, 10, &fd, &env, why, sizeof(why)),
	    0);
	transform_batch_free(tb);
	/* Also without a batch at all. */
	assert_int_equal(transform_message(NULL, 10, fd, &env, rc, why,
	    sizeof(why)), TRANSFORM_OK);
	transform_commit(NULL);
	transform_batch_free(NULL);
	for (i = 0; i < FS_NCALLS; i++)
		assert_int_equal(fsfault_calls[i], 0);
	assert_int_equal(fd, -1);
	assert_int_equal(check_queued(10, ORIG), 0);
	envelope_clear(&env);
}

/* ---- the rewrite ------------------------------------------------------ */

static void
test_rewrite(void **state)
{
	static const struct transform_step *const steps[] = { &step_never,
	    &step_header };
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	struct envelope env;
	char why[256] = "", path[512], buf[256], *b0;
	int fd, fd2, oldfd;
	size_t l0;

	queue_msg(11, "a@example.org", NULL, 0, ORIG);
	fd = oldfd = open_queued(11, &env);
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	assert_int_equal(transform_message(tb, 11, fd, &env, rc, why,
	    sizeof(why)), TRANSFORM_OK);
	/* Written (into a scratch file of rewrite/), not yet in place. */
	assert_int_equal(count_area("rewrite"), 1);
	assert_int_equal(count_incoming(), 0);
	assert_int_equal(check_queued(11, ORIG), 0);
	fsfault_reset();
	transform_commit(tb);
	assert_int_equal(fsfault_calls[FS_SYNCFS], 1);
	assert_int_equal(fsfault_calls[FS_RENAME], 1);
	assert_int_equal(transform_take(tb, 11, &fd, &env, why, sizeof(why)),
	    1);
	transform_batch_free(tb);
	assert_int_not_equal(fd, oldfd);
	assert_int_equal(env.transformed, 1);
	assert_true(env.msg_size == strlen(HDR ORIG));
	assert_int_equal(napplied_never, 0);
	assert_int_equal(count_incoming(), 0);
	assert_int_equal(check_queued(11, HDR ORIG), 1);
	/* the names were swapped: the scratch file holds the old copy now,
	 * for the next rewrite to overwrite (no inode made or freed) */
	snprintf(path, sizeof(path), "%s/spool/rewrite/rw.0", tmpdir);
	assert_non_null(b0 = read_file(path, &l0, 1 << 20));
	assert_true(l0 > strlen(ORIG) && memcmp(b0, ORIG, strlen(ORIG)) == 0);
	free(b0);
	/* The descriptor handed over reads the new file from the start... */
	assert_true(read(fd, buf, strlen(HDR)) == (ssize_t)strlen(HDR));
	assert_memory_equal(buf, HDR, strlen(HDR));
	/* ...and holds the lock under the queue/ name. */
	spool_path(sp, SPOOL_QUEUE, 11, path, sizeof(path));
	assert_true((fd2 = open(path, O_RDONLY)) != -1);
	assert_int_equal(flock(fd2, LOCK_EX | LOCK_NB), -1);
	close(fd2);
	/* A retry: already transformed, the same bytes, nothing written. */
	fsfault_reset();
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	assert_int_equal(transform_message(tb, 11, fd, &env, rc, why,
	    sizeof(why)), TRANSFORM_OK);
	transform_commit(tb);
	assert_int_equal(transform_take(tb, 11, &fd, &env, why, sizeof(why)),
	    0);
	transform_batch_free(tb);
	assert_int_equal(fsfault_calls[FS_OPEN] + fsfault_calls[FS_WRITE] +
	    fsfault_calls[FS_SYNCFS] + fsfault_calls[FS_RENAME], 0);
	assert_int_equal(check_queued(11, HDR ORIG), 1);
	close(fd);
	envelope_clear(&env);
}

static void
test_chain_and_batch(void **state)
{
	static const struct transform_step *const steps[] = { &step_header,
	    &step_never, &step_second };
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	struct envelope env[4];
	char why[256];
	int fd[4];
	uint64_t mid;

	for (mid = 0; mid < 4; mid++) {
		queue_msg(20 + mid, "a@example.org", NULL, 0, ORIG);
		fd[mid] = open_queued(20 + mid, &env[mid]);
	}
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	for (mid = 0; mid < 4; mid++)
		assert_int_equal(transform_message(tb, 20 + mid, fd[mid],
		    &env[mid], rc, why, sizeof(why)), TRANSFORM_OK);
	fsfault_reset();
	transform_commit(tb);
	/* one flush of the data, one of queue/, for the whole round */
	assert_int_equal(fsfault_calls[FS_SYNCFS], 1);
	assert_int_equal(fsfault_calls[FS_RENAME], 4);
	assert_int_equal(fsfault_calls[FS_FSYNC], 1);
	for (mid = 0; mid < 4; mid++) {
		assert_int_equal(transform_take(tb, 20 + mid, &fd[mid],
		    &env[mid], why, sizeof(why)), 1);
		/* the later step's field comes first: it ran last */
		assert_int_equal(check_queued(20 + mid, HDR2 HDR ORIG), 1);
		close(fd[mid]);
		envelope_clear(&env[mid]);
	}
	transform_batch_free(tb);
	assert_int_equal(napplied_never, 0);
}

/* ---- outcomes --------------------------------------------------------- */

static const struct transform_step *const steps_defer[] = { &step_header,
    &step_defer };
static const struct transform_step *const steps_nocert[] = { &step_nocert };
static const struct transform_step *const steps_refuse[] = { &step_refuse };
static const char *const rcpts_some[] = { "bob@example.com",
    "nocert@example.net" };
static const char *const rcpts_none[] = { "nocert1@example.com",
    "nocert2@example.net" };

static const struct {
	const char			 *name, *from;
	const char *const		 *rcpts;	/* NULL: bob, carol */
	const struct transform_step *const *steps;
	size_t				  nsteps;
	enum transform_outcome		  want;
	const char			 *want_why;	/* NULL = any */
	int				  want_take;
	const char			 *want_content;	/* in queue/ after */
	enum transform_outcome		  want_rc[2];
	const char			 *want_status1, *want_why1;
} outcome_cases[] = {
	{ "TEMPFAIL: the whole message waits, nothing written",
	  "defer@example.org", NULL, steps_defer, 2, TRANSFORM_TEMPFAIL,
	  "defer: key not usable", 0, ORIG,
	  { TRANSFORM_OK, TRANSFORM_OK }, "", "" },
	{ "one recipient PERMFAIL: it bounces, the other gets the copy",
	  "a@example.org", rcpts_some, steps_nocert, 1, TRANSFORM_OK, NULL, 1,
	  "X-Encrypted: yes\r\n" ORIG,
	  { TRANSFORM_OK, TRANSFORM_PERMFAIL }, "5.7.1",
	  "no certificate for nocert@example.net" },
	{ "every recipient PERMFAIL: PERMFAIL, nothing written",
	  "a@example.org", rcpts_none, steps_nocert, 1, TRANSFORM_PERMFAIL,
	  NULL, 0, ORIG, { TRANSFORM_PERMFAIL, TRANSFORM_PERMFAIL }, "5.7.1",
	  "no certificate for nocert2@example.net" },
	{ "a step's PERMFAIL: every recipient fails with its reason",
	  "a@example.org", NULL, steps_refuse, 1, TRANSFORM_PERMFAIL,
	  "refuse: cannot sign", 0, ORIG,
	  { TRANSFORM_PERMFAIL, TRANSFORM_PERMFAIL }, "5.7.0",
	  "refuse: cannot sign" },
};

static void
test_outcomes(void **state)
{
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	struct envelope env;
	char why[256], *before, *after;
	size_t blen, alen;
	uint64_t mid;
	size_t i;
	int fd;

	for (i = 0; i < NELEM(outcome_cases); i++) {
		mid = 30 + i;
		queue_msg(mid, outcome_cases[i].from, outcome_cases[i].rcpts, 2,
		    ORIG);
		before = file_bytes(mid, &blen);
		fd = open_queued(mid, &env);
		tb = transform_batch_new(sp, NULL, outcome_cases[i].steps,
		    outcome_cases[i].nsteps);
		why[0] = '\0';
		if (transform_message(tb, mid, fd, &env, rc, why, sizeof(why)) !=
		    outcome_cases[i].want)
			fail_msg("%s: outcome (%s)", outcome_cases[i].name, why);
		if (outcome_cases[i].want_why != NULL)
			assert_string_equal(why, outcome_cases[i].want_why);
		assert_int_equal(rc[0].outcome, outcome_cases[i].want_rc[0]);
		assert_int_equal(rc[1].outcome, outcome_cases[i].want_rc[1]);
		assert_string_equal(rc[1].status, outcome_cases[i].want_status1);
		assert_string_equal(rc[1].why, outcome_cases[i].want_why1);
		transform_commit(tb);
		assert_int_equal(transform_take(tb, mid, &fd, &env, why,
		    sizeof(why)), outcome_cases[i].want_take);
		transform_batch_free(tb);
		assert_int_equal(count_incoming(), 0);
		assert_int_equal(check_queued(mid, outcome_cases[i].
		    want_content), outcome_cases[i].want_take);
		/* Not rewritten: the very same bytes as before. */
		after = file_bytes(mid, &alen);
		assert_int_equal(outcome_cases[i].want_take == 0, alen == blen &&
		    memcmp(before, after, blen) == 0);
		free(before);
		free(after);
		close(fd);
		envelope_clear(&env);
	}
}

/* ---- a failed rewrite leaves a whole file and defers ------------------ */

enum rw_phase { AT_WRITE, AT_COMMIT, CLEANED, NO_COMMIT, DOUBLE };

static const struct {
	const char	*name;
	enum rw_phase	 phase;
	enum fs_call	 call;
	int		 nth, err;
	enum fs_kind	 kind;
	const char	*path;
	int		 want_new_in_place;	/* the rename was done */
} rw_faults[] = {
	{ "create the new copy", AT_WRITE, FS_OPEN, 1, ENOSPC, FSF_ANY,
	  "/rewrite/", 0 },
	{ "write the new copy", AT_WRITE, FS_WRITE, 1, ENOSPC, FSF_REG, NULL,
	  0 },
	{ "write the new copy EIO", AT_WRITE, FS_WRITE, 1, EIO, FSF_REG, NULL,
	  0 },
	{ "syncfs", AT_COMMIT, FS_SYNCFS, 1, EIO, FSF_ANY, NULL, 0 },
	{ "rename over queue/", AT_COMMIT, FS_RENAME, 1, EIO, FSF_ANY, NULL,
	  0 },
	{ "flush of queue/", AT_COMMIT, FS_FSYNC, 1, EIO, FSF_DIR, NULL, 1 },
	{ "incoming/ emptied by a restart", CLEANED, FS_NCALLS, 0, 0,
	  FSF_ANY, NULL, 0 },
	{ "batch freed without a commit", NO_COMMIT, FS_NCALLS, 0, 0,
	  FSF_ANY, NULL, 0 },
	{ "the same MID twice in a round", DOUBLE, FS_NCALLS, 0, 0, FSF_ANY,
	  NULL, 0 },
};

/* Run one faulty round on `mid`; returns what transform_take said (or
 * 2 when the round stopped before it). */
static int
faulty_round(size_t i, uint64_t mid, int *fd, struct envelope *env)
{
	static const struct transform_step *const steps[] = { &step_header };
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	enum transform_outcome want;
	char why[256] = "";
	int r = 2;

	tb = transform_batch_new(sp, NULL, steps, 1);
	if (rw_faults[i].phase == AT_WRITE)
		fsfault_arm(rw_faults[i].call, rw_faults[i].nth,
		    rw_faults[i].err, rw_faults[i].kind, rw_faults[i].path);
	want = rw_faults[i].phase == AT_WRITE ? TRANSFORM_TEMPFAIL :
	    TRANSFORM_OK;
	if (transform_message(tb, mid, *fd, env, rc, why, sizeof(why)) != want)
		fail_msg("%s: transform_message: %s", rw_faults[i].name, why);
	if (rw_faults[i].phase == DOUBLE) {
		assert_int_equal(transform_message(tb, mid, *fd, env, rc, why,
		    sizeof(why)), TRANSFORM_TEMPFAIL);
		assert_non_null(strstr(why, "already being transformed"));
	}
	if (rw_faults[i].phase == CLEANED)
		spool_clean_incoming(sp);
	if (rw_faults[i].phase == AT_COMMIT)
		fsfault_arm(rw_faults[i].call, rw_faults[i].nth,
		    rw_faults[i].err, rw_faults[i].kind, rw_faults[i].path);
	if (rw_faults[i].phase != NO_COMMIT) {
		transform_commit(tb);
		r = transform_take(tb, mid, fd, env, why, sizeof(why));
		if (r == -1 && why[0] == '\0')
			fail_msg("%s: no reason", rw_faults[i].name);
	}
	fsfault_disarm();
	transform_batch_free(tb);
	return r;
}

static void
test_rewrite_failures(void **state)
{
	static const struct transform_step *const steps[] = { &step_header };
	struct transform_rcpt rc[2];
	struct transform_batch *tb;
	struct envelope env;
	char why[256] = "";
	uint64_t mid;
	size_t i;
	int fd, r, want, was;

	for (i = 0; i < NELEM(rw_faults); i++) {
		mid = 40 + i;
		queue_msg(mid, "a@example.org", NULL, 0, ORIG);
		fd = open_queued(mid, &env);
		r = faulty_round(i, mid, &fd, &env);
		want = rw_faults[i].phase == AT_COMMIT ||
		    rw_faults[i].phase == CLEANED ? -1 :
		    rw_faults[i].phase == DOUBLE ? 1 :
		    rw_faults[i].phase == AT_WRITE ? 0 : 2;
		if (r != want)
			fail_msg("%s: take gave %d", rw_faults[i].name, r);
		if (rw_faults[i].call != FS_NCALLS && fsfault_hits() != 1)
			fail_msg("%s: fault not hit", rw_faults[i].name);
		assert_int_equal(count_incoming(), 0);
		/* queue/ holds a whole file: the old one, or the new one
		 * when the rename was done; fd/env describe that file. */
		assert_int_equal(check_queued(mid, rw_faults[i].
		    want_new_in_place || want == 1 ? HDR ORIG : ORIG),
		    rw_faults[i].want_new_in_place || want == 1);
		assert_int_equal(env.transformed,
		    rw_faults[i].want_new_in_place || want == 1);
		/* The next round transforms what is still untransformed. */
		tb = transform_batch_new(sp, NULL, steps, 1);
		assert_int_equal(transform_message(tb, mid, fd, &env, rc, why,
		    sizeof(why)), TRANSFORM_OK);
		transform_commit(tb);
		was = env.transformed;
		r = transform_take(tb, mid, &fd, &env, why, sizeof(why));
		assert_int_equal(r, was ? 0 : 1);
		transform_batch_free(tb);
		assert_int_equal(check_queued(mid, HDR ORIG), 1);
		close(fd);
		envelope_clear(&env);
	}
}

/* ---- the real steps --------------------------------------------------- */

#define DKIM_ORIG	"Received: by mx.test.example\r\n" \
			"From: Alice <alice@dkim.example>\r\n" \
			"To: bob@example.com\r\nSubject: t\r\n\r\nbody\r\n"
#define OTHER_ORIG	"Received: by mx.test.example\r\n" \
			"From: someone@else.example\r\n" \
			"Subject: t\r\n\r\nbody\r\n"

static void
write_key(const char *name, enum dkim_alg alg)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	test_dkim_key_file(path, alg);
}

/* A configuration from text (relative paths: the scratch directory). */
static struct conf *
conf_of(const char *text)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;

	c = conf_load_string(text, "t.conf", tmpdir, &errs);
	assert_non_null(c);
	if (errs.n > 0)
		fail_msg("%s", errs.msgs[0]);
	conf_errors_free(&errs);
	return c;
}

/* One round over one message with the configuration's steps: the
 * outcome, and the take (1 rewritten, 0 not). */
static enum transform_outcome
real_round(const struct conf *c, uint64_t mid, struct transform_rcpt *rc,
    char *why, size_t whylen, int *took)
{
	const struct transform_step *const *steps;
	struct transform_batch *tb;
	enum transform_outcome o;
	struct envelope env;
	size_t n;
	int fd;

	steps = transform_steps(c, &n);
	fd = open_queued(mid, &env);
	tb = transform_batch_new(sp, c, steps, n);
	o = transform_message(tb, mid, fd, &env, rc, why, whylen);
	transform_commit(tb);
	*took = o == TRANSFORM_OK ? transform_take(tb, mid, &fd, &env, why,
	    whylen) : 0;
	transform_batch_free(tb);
	close(fd);
	envelope_clear(&env);
	return o;
}

static void
test_steps_enabled(void **state)
{
	struct conf *c;
	size_t n;
	const struct transform_step *const *st;

	c = conf_of("dkim = ( { domain = \"dkim.example\"; selector = \"e\";"
	    " key = \"e.key\"; } );\n"
	    "smime = { keys = \".\"; sign = [ \"dkim.example\" ]; };\n");
	st = transform_steps(c, &n);
	assert_int_equal(n, 2);
	assert_ptr_equal(st[0], &transform_smime_step);	/* body first */
	assert_ptr_equal(st[1], &transform_dkim_step);	/* then sign it */
	conf_free(c);
	c = conf_of("smime = { keys = \".\"; };\n");
	assert_null(transform_steps(c, &n));
	assert_int_equal(n, 0);
	conf_free(c);
}

static void
test_dkim_step(void **state)
{
	struct transform_rcpt rc[2];
	struct conf *c;
	char why[512] = "", *b, *p;
	size_t len;
	int took;

	write_key("e.key", DKIM_ED25519_SHA256);
	write_key("r.key", DKIM_RSA_SHA256);
	c = conf_of("dkim = ( { domain = \"dkim.example\"; selector = \"e\";"
	    " key = \"e.key\"; },\n { domain = \"dkim.example\"; selector ="
	    " \"r\"; key = \"r.key\"; } );\n");
	assert_int_equal(transform_dkim_start(c), 0);
	queue_msg(60, "alice@dkim.example", NULL, 0, DKIM_ORIG);
	assert_int_equal(real_round(c, 60, rc, why, sizeof(why), &took),
	    TRANSFORM_OK);
	assert_int_equal(took, 1);
	b = file_bytes(60, &len);
	assert_true(strncmp(b, "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "c=relaxed/relaxed; d=dkim.example; s=e;", 68) == 0);
	assert_non_null(p = strstr(b, "\r\nDKIM-Signature: v=1; "
	    "a=rsa-sha256; c=relaxed/relaxed; d=dkim.example; s=r;"));
	assert_non_null(strstr(b, " t=1763880000;"));
	assert_non_null(strstr(p, "\r\n" DKIM_ORIG));
	free(b);
	/* another From: domain is not touched at all */
	queue_msg(61, "someone@else.example", NULL, 0, OTHER_ORIG);
	assert_int_equal(real_round(c, 61, rc, why, sizeof(why), &took),
	    TRANSFORM_OK);
	assert_int_equal(took, 0);
	assert_int_equal(check_queued(61, OTHER_ORIG), 0);
	transform_stop();
	conf_free(c);
}

static void
test_dkim_step_bad_key(void **state)
{
	struct transform_rcpt rc[2];
	struct conf *c;
	char why[512] = "";
	int took;

	c = conf_of("dkim = ( { domain = \"dkim.example\"; selector = \"m\";"
	    " key = \"missing.key\"; } );\n");
	assert_int_equal(transform_dkim_start(c), 1);
	queue_msg(62, "alice@dkim.example", NULL, 0, DKIM_ORIG);
	assert_int_equal(real_round(c, 62, rc, why, sizeof(why), &took),
	    TRANSFORM_TEMPFAIL);
	assert_non_null(strstr(why, "missing.key"));
	assert_int_equal(check_queued(62, DKIM_ORIG), 0);	/* untouched */
	transform_stop();
	conf_free(c);
	c = conf_of("dkim = ( { domain = \"dkim.example\"; selector = \"m\";"
	    " key = \"missing.key\"; } );\n"
	    "dkim_on_error = \"send-unsigned\";\n");
	transform_start(c);
	assert_int_equal(real_round(c, 62, rc, why, sizeof(why), &took),
	    TRANSFORM_OK);
	assert_int_equal(check_queued(62, DKIM_ORIG), took);	/* unsigned */
	transform_stop();
	conf_free(c);
}

static void
test_smime_step_failures(void **state)
{
	struct transform_rcpt rc[2];
	struct conf *c;
	char why[512] = "";
	int took;

	/* no signing key for the sender: deferred, never sent unsigned */
	c = conf_of("smime = { keys = \".\"; sign = [ \"dkim.example\" ]; };\n");
	queue_msg(63, "alice@dkim.example", NULL, 0, DKIM_ORIG);
	assert_int_equal(real_round(c, 63, rc, why, sizeof(why), &took),
	    TRANSFORM_TEMPFAIL);
	assert_non_null(strstr(why, "dkim.example.pem"));
	conf_free(c);
	/* encryption required, no recipient certificate: all bounce */
	c = conf_of("smime = { keys = \".\"; sign = [ \"dkim.example\" ];"
	    " encrypt = \"required\"; };\n");
	assert_int_equal(real_round(c, 63, rc, why, sizeof(why), &took),
	    TRANSFORM_PERMFAIL);
	assert_int_equal(rc[0].outcome, TRANSFORM_PERMFAIL);
	assert_string_equal(rc[0].status, "5.7.5");
	assert_non_null(strstr(rc[1].why, "carol@example.net.crt"));
	assert_int_equal(check_queued(63, DKIM_ORIG), 0);
	conf_free(c);
}

/* ---- the runner -------------------------------------------------------- */

struct runner_test {
	struct event_base	*base;
	int			 prepared, committed;
	pthread_t		 loop;
	int			 other_thread;	/* a phase ran elsewhere */
};

static enum transform_outcome
apply_where(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *r, char *why, size_t wl)
{
	prepend(in, out, HDR);
	return TRANSFORM_OK;
}

static struct runner_test *rt_now;

static int
wants_where(const struct transform_msg *m, const struct conf *c)
{
	if (!pthread_equal(pthread_self(), rt_now->loop))
		rt_now->other_thread = 1;
	return strncmp(m->env->from, "defer", 5) != 0;
}

static void
rt_prepared(void *arg)
{
	struct runner_test *rt = arg;

	rt->prepared++;
	event_base_loopbreak(rt->base);
}

static void
rt_committed(void *arg)
{
	struct runner_test *rt = arg;

	rt->committed++;
	event_base_loopbreak(rt->base);
}

/* Run the loop until `flag` is set (at most 10 s). */
static void
rt_wait(struct runner_test *rt, const int *flag)
{
	struct timeval tv = { 10, 0 };

	event_base_loopexit(rt->base, &tv);
	while (*flag == 0 && event_base_loop(rt->base, 0) == 0 &&
	    !event_base_got_exit(rt->base))
		;
	assert_int_not_equal(*flag, 0);
}

/* A runner job for queued message `mid`, opened and locked as the
 * queue manager does, what the runner fills lent from the caller. */
static void
job_lend(struct transform_job *tj, uint64_t mid, int *fd,
    struct envelope *env, struct transform_rcpt *rc, char *why,
    size_t whylen)
{
	memset(tj, 0, sizeof(*tj));
	*fd = open_queued(mid, env);
	tj->mid = mid;
	tj->fd = fd;
	tj->env = env;
	tj->rcpts = rc;
	tj->why = why;
	tj->whylen = whylen;
}

/* 40 messages in one batch through both phases: every one rewritten
 * once, whichever thread took it. */
static void
runner_many(struct transform_runner *tr, struct runner_test *rt)
{
	static const struct transform_step *const steps[] = { &step_header };
	enum { N = 40 };
	struct transform_rcpt (*rc)[2] = xcalloc(N, sizeof(*rc));
	struct transform_job *tj = xcalloc(N, sizeof(*tj));
	struct envelope *env = xcalloc(N, sizeof(*env));
	char (*why)[256] = xcalloc(N, sizeof(*why));
	int *fd = xcalloc(N, sizeof(*fd));
	struct transform_batch *tb;
	size_t i;

	for (i = 0; i < N; i++) {
		queue_msg(100 + i, "a@example.org", NULL, 0, ORIG);
		job_lend(&tj[i], 100 + i, &fd[i], &env[i], rc[i], why[i],
		    sizeof(why[i]));
	}
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	rt->prepared = rt->committed = 0;
	transform_runner_prepare(tr, tb, tj, N, rt_prepared, rt);
	rt_wait(rt, &rt->prepared);
	transform_runner_commit(tr, tb, tj, N, rt_committed, rt);
	rt_wait(rt, &rt->committed);
	for (i = 0; i < N; i++) {
		assert_int_equal(tj[i].outcome, TRANSFORM_OK);
		assert_int_equal(tj[i].taken, 1);
		assert_int_equal(check_queued(100 + i, HDR ORIG), 1);
		close(fd[i]);
		envelope_clear(&env[i]);
	}
	transform_batch_free(tb);
	free(rc);
	free(tj);
	free(env);
	free(why);
	free(fd);
}

static void
test_runner(void **state)
{
	static const struct transform_step step_where = { "where",
	    wants_where, apply_where };
	static const struct transform_step *const steps[] = { &step_defer,
	    &step_where };
	struct runner_test rt = { NULL, 0, 0, pthread_self(), 0 };
	struct transform_rcpt rc[2][2];
	struct transform_job tj[2];
	struct transform_runner *tr;
	struct transform_batch *tb;
	struct envelope env[2];
	char why[2][256], w[256];
	int fd[2], oldfd0;
	size_t i;

	rt.base = event_base_new();
	rt_now = &rt;
	tr = transform_runner_new(rt.base, w, sizeof(w));
	assert_non_null(tr);
	queue_msg(70, "a@example.org", NULL, 0, ORIG);
	queue_msg(71, "defer@example.org", NULL, 0, ORIG);
	for (i = 0; i < 2; i++)
		job_lend(&tj[i], 70 + i, &fd[i], &env[i], rc[i], why[i],
		    sizeof(why[i]));
	oldfd0 = fd[0];
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	transform_runner_prepare(tr, tb, tj, 2, rt_prepared, &rt);
	assert_int_equal(rt.prepared, 0);	/* never from inside */
	rt_wait(&rt, &rt.prepared);
	assert_int_equal(rt.other_thread, 1);
	assert_int_equal(tj[0].outcome, TRANSFORM_OK);
	assert_int_equal(tj[1].outcome, TRANSFORM_TEMPFAIL);
	assert_non_null(strstr(why[1], "key not usable"));
	assert_int_equal(check_queued(70, ORIG), 0);	/* not yet in place */
	tj[1].skip = 1;
	transform_runner_commit(tr, tb, tj, 2, rt_committed, &rt);
	rt_wait(&rt, &rt.committed);
	assert_int_equal(tj[0].taken, 1);
	assert_int_equal(tj[1].taken, 0);
	assert_int_not_equal(fd[0], oldfd0);
	assert_int_equal(env[0].transformed, 1);
	assert_int_equal(env[1].transformed, 0);
	assert_int_equal(check_queued(70, HDR ORIG), 1);
	assert_int_equal(check_queued(71, ORIG), 0);
	transform_batch_free(tb);
	/* a bigger batch: its messages are shared out among the threads */
	runner_many(tr, &rt);
	/* queued work is dropped when the runner goes: no callback */
	tb = transform_batch_new(sp, NULL, steps, NELEM(steps));
	tj[0].skip = tj[1].skip = 0;
	transform_runner_prepare(tr, tb, &tj[1], 1, rt_prepared, &rt);
	transform_runner_free(tr);
	transform_batch_free(tb);
	assert_int_equal(rt.prepared, 1);
	assert_int_equal(count_incoming(), 0);
	for (i = 0; i < 2; i++) {
		close(fd[i]);
		envelope_clear(&env[i]);
	}
	transform_runner_free(NULL);
	event_base_free(rt.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)
		T(test_no_steps),
		T(test_rewrite),
		T(test_chain_and_batch),
		T(test_outcomes),
		T(test_rewrite_failures),
		T(test_steps_enabled),
		T(test_dkim_step),
		T(test_dkim_step_bad_key),
		T(test_smime_step_failures),
		T(test_runner),
#undef T
	};

	log_open("/dev/null", 0, "test_transform");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
