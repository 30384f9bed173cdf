/*
 * test_qmgr.c - the queue manager's scheduling and expiry, with a real
 * spool in a scratch directory, the real local (maildir) driver, a fake
 * remote driver that answers as each test tells it, and the clock behind
 * a seam (wall_now wrapped with -Wl,--wrap=wall_now).
 *
 * Covered: the backoff table (retry_min doubling up to retry_max, +-10%
 * jitter); due times (a deferred message is not tried before its next
 * attempt, then is, with the next interval doubled); a message still in
 * delivery is not picked again; max_queue_lifetime turns a deferral into
 * a 5.4.7 bounce with a DSN to the sender and the message leaves the
 * queue; permanent failures bounce (NOTIFY=NEVER and the null sender get
 * no DSN); local and remote recipients of one message each go to their
 * own driver and a delivered one is never delivered again; a recipient
 * without a domain is bounced (5.1.3) without any driver; a worker's late
 * notice of a message a rescan already tried does not try it again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "conf.h"
#include "delivery.h"
#include "ids.h"
#include "qmgr.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX	"postern-test-qmgr"
#include "test_tmpdir.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define T0		1764000000	/* the clock at the start of a test */
#define RETRY_MIN	60
#define RETRY_MAX	600
#define LIFETIME	3600

/* ---- the clock seam ------------------------------------------------ */

static int64_t clock_now = T0;

int64_t	__wrap_wall_now(void);

int64_t
__wrap_wall_now(void)
{
	return clock_now;
}

/* ---- the fake remote driver ---------------------------------------- */

static struct {
	enum delivery_outcome	 outcome;
	const char		*text, *status;
	int			 hold;		/* keep the request unanswered */
	int			 calls;
	size_t			 last_rids[8], last_n;
	struct delivery_request	 held;
	size_t			 held_rids[8];
} fake;

static void
fake_answer(const struct delivery_request *rq)
{
	struct delivery_result res[8];
	size_t i;

	memset(res, 0, sizeof(res));
	for (i = 0; i < rq->nrids; i++) {
		res[i].rid = rq->rids[i];
		delivery_result_set(&res[i], fake.outcome, fake.text,
		    fake.status, "mx.fake.test", 1);
	}
	rq->done(rq->arg, res, rq->nrids);
}

static void
fake_submit(const struct delivery_request *rq)
{
	assert_true(rq->nrids <= NELEM(fake.last_rids));
	fake.calls++;
	fake.last_n = rq->nrids;
	memcpy(fake.last_rids, rq->rids, rq->nrids * sizeof(*rq->rids));
	if (!fake.hold) {
		fake_answer(rq);
		return;
	}
	fake.held = *rq;
	memcpy(fake.held_rids, rq->rids, rq->nrids * sizeof(*rq->rids));
	fake.held.rids = fake.held_rids;
}

static const struct delivery_driver fake_remote = {
	"fake remote", NULL, fake_submit, NULL, NULL
};

/* ---- fixtures ------------------------------------------------------ */

struct world {
	struct conf		*conf;
	struct spool		*spool;
	struct event_base	*base;
	struct qmgr		*q;
};

static void
world_new(struct world *w)
{
	struct conf_errors errs = { NULL, 0 };
	struct strbuf text = STRBUF_INIT;
	char why[512];

	strbuf_printf(&text, "hostname = \"mx.test.example\";\n"
	    "data_dir = \"%s/data\";\n"
	    "routes = ( { domain = \"local.test\"; maildir = \"mail/%%d/%%u\"; "
	    "} );\n"
	    "delivery = { retry_min = %d; retry_max = %d; "
	    "max_queue_lifetime = %d; };\n", tmpdir, RETRY_MIN, RETRY_MAX,
	    LIFETIME);
	w->conf = conf_load_string(text.s, "t.conf", tmpdir, &errs);
	assert_non_null(w->conf);
	if (errs.n > 0)
		fail_msg("%s", errs.msgs[0]);
	conf_errors_free(&errs);
	strbuf_free(&text);
	w->spool = spool_open(w->conf->data_dir, why, sizeof(why));
	if (w->spool == NULL)
		fail_msg("spool_open: %s", why);
	w->base = event_base_new();
	assert_non_null(w->base);
	memset(&fake, 0, sizeof(fake));
	fake.outcome = DELIVERY_DEFERRED;
	fake.text = "451 4.7.1 try again later";
	fake.status = "4.7.1";
	clock_now = T0;
	w->q = qmgr_new(w->base, w->conf, w->spool, &delivery_local,
	    &fake_remote);
}

static void
world_free(struct world *w)
{
	qmgr_free(w->q);
	event_base_free(w->base);
	spool_free(w->spool);
	conf_free(w->conf);
}

static const char MESSAGE[] = "From: alice@example.com\r\n"
    "Subject: scheduling\r\n\r\nhello\r\n";

/* Queue a message from `from` to the recipients (NOTIFY flags each). */
static uint64_t
queue_message(struct world *w, const char *from, const char *const *rcpts,
    const int *notify, size_t n)
{
	struct envelope env;
	char why[512];
	uint64_t mid;
	size_t i;

	envelope_init(&env);
	env.mid = ids_next(ID_MID);
	env.received = clock_now;
	bstrlcpy(env.client_ip, "127.0.0.1", sizeof(env.client_ip));
	bstrlcpy(env.helo, "client.test", sizeof(env.helo));
	bstrlcpy(env.from, from, sizeof(env.from));
	for (i = 0; i < n; i++)
		envelope_add_rcpt(&env, rcpts[i], notify ? notify[i] : 0, "");
	if (spool_inject(w->spool, &env, MESSAGE, sizeof(MESSAGE) - 1, why,
	    sizeof(why)) == -1)
		fail_msg("spool_inject: %s", why);
	mid = env.mid;
	envelope_clear(&env);
	return mid;
}

static void
round_at(struct world *w, int64_t when)
{
	clock_now = when;
	qmgr_rescan(w->q);
	qmgr_round(w->q);
}

static void
read_state(struct world *w, uint64_t mid, struct rcpt_state *st, size_t n)
{
	memset(st, 0, n * sizeof(*st));
	assert_int_equal(spool_state_read(w->spool, mid, st, n), 0);
}

/* Text without line breaks and with single spaces (DSN lines fold). */
static void
squash(char *s)
{
	char *o = s;
	int space = 0, ws;

	for (; *s; s++) {
		ws = *s == ' ' || *s == '\r' || *s == '\n' || *s == '\t';
		if (ws && space)
			continue;
		space = ws;
		*o++ = ws ? ' ' : *s;
	}
	*o = '\0';
}

/* MIDs in the queue other than `except`. */
static size_t
queued_others(struct world *w, uint64_t except, uint64_t *out, size_t max)
{
	uint64_t *mids;
	size_t n, i, k = 0;

	assert_int_equal(spool_list(w->spool, SPOOL_QUEUE, &mids, &n), 0);
	for (i = 0; i < n; i++)
		if (mids[i] != except && k < max)
			out[k++] = mids[i];
	free(mids);
	return k;
}

/* The content and envelope of a queued message. */
static char *
read_message(struct world *w, uint64_t mid, struct envelope *env)
{
	char why[512], *buf;
	int fd = spool_open_msg(w->spool, SPOOL_QUEUE, mid, 1, env, why,
	    sizeof(why));

	if (fd == -1)
		fail_msg("spool_open_msg %llu: %s", (unsigned long long)mid,
		    why);
	buf = xcalloc(1, env->msg_size + 1);
	assert_int_equal(pread(fd, buf, env->msg_size, 0),
	    (ssize_t)env->msg_size);
	close(fd);
	return buf;
}

static void
remove_queue(struct world *w)
{
	uint64_t *mids;
	size_t n, i;

	assert_int_equal(spool_list(w->spool, SPOOL_QUEUE, &mids, &n), 0);
	for (i = 0; i < n; i++)
		spool_remove(w->spool, SPOOL_QUEUE, mids[i]);
	free(mids);
}

static int
group_setup(void **state)
{
	char dir[512], why[512];

	if (setup(state) == -1)
		return -1;
	snprintf(dir, sizeof(dir), "%s/data", tmpdir);
	if (mkdir_p(dir, 0700) == -1 || ids_open(dir, 0, why,
	    sizeof(why)) == -1)
		return -1;
	return 0;
}

/* ---- tests --------------------------------------------------------- */

static void
test_backoff_table(void **state)
{
	static const struct {
		int	attempts;
		double	rnd;
		int	want;
	} cases[] = {
		{ 1, 0.5, 60 }, { 2, 0.5, 120 }, { 3, 0.5, 240 },
		{ 4, 0.5, 480 }, { 5, 0.5, 600 }, { 20, 0.5, 600 },
		{ 1, 0.0, 54 }, { 1, 0.999999, 65 }, { 5, 0.0, 540 },
		{ 5, 0.999999, 659 }, { 0, 0.5, 60 },
	};
	struct conf c;
	size_t i;

	memset(&c, 0, sizeof(c));
	c.retry_min = RETRY_MIN;
	c.retry_max = RETRY_MAX;
	for (i = 0; i < NELEM(cases); i++)
		if (qmgr_backoff(&c, cases[i].attempts, cases[i].rnd) !=
		    cases[i].want)
			fail_msg("attempts %d rnd %f: got %d, want %d",
			    cases[i].attempts, cases[i].rnd, qmgr_backoff(&c,
			    cases[i].attempts, cases[i].rnd), cases[i].want);
	/* never below one second */
	c.retry_min = c.retry_max = 0;
	assert_int_equal(qmgr_backoff(&c, 1, 0.0), 1);
}

/* Deferred again and again: due times follow the backoff, within the
 * jitter, and nothing is tried before it is due. */
static void
test_retry_schedule(void **state)
{
	static const char *const to[] = { "bob@remote.test" };
	struct world w;
	struct rcpt_state st;
	int64_t base_interval = RETRY_MIN, want;
	uint64_t mid;
	int attempt;

	world_new(&w);
	mid = queue_message(&w, "alice@example.com", to, NULL, 1);
	round_at(&w, T0);
	assert_int_equal(fake.calls, 1);
	for (attempt = 1; attempt <= 6; attempt++) {
		read_state(&w, mid, &st, 1);
		assert_int_equal(st.status, RCPT_PENDING);
		assert_int_equal(st.attempts, attempt);
		assert_string_equal(st.last_error, "451 4.7.1 try again later");
		want = base_interval < RETRY_MAX ? base_interval : RETRY_MAX;
		if (st.next_attempt < clock_now + want * 9 / 10 ||
		    st.next_attempt > clock_now + want * 11 / 10)
			fail_msg("attempt %d: next in %lld s, want %lld +-10%%",
			    attempt, (long long)(st.next_attempt - clock_now),
			    (long long)want);
		/* not due yet: not tried */
		round_at(&w, st.next_attempt - 1);
		assert_int_equal(fake.calls, attempt);
		round_at(&w, st.next_attempt);
		assert_int_equal(fake.calls, attempt + 1);
		base_interval *= 2;
	}
	remove_queue(&w);
	world_free(&w);
}

/* Past max_queue_lifetime a deferral becomes a 5.4.7 bounce: one DSN to
 * the sender, and the message leaves the queue. */
static void
test_expiry_bounces(void **state)
{
	static const char *const to[] = { "bob@remote.test" };
	struct world w;
	struct rcpt_state st;
	struct envelope env;
	uint64_t mid, others[4];
	char *dsn;

	world_new(&w);
	mid = queue_message(&w, "alice@example.com", to, NULL, 1);
	/* one second before the end of its life: deferred as usual */
	round_at(&w, T0 + LIFETIME - 1);
	read_state(&w, mid, &st, 1);
	assert_int_equal(st.status, RCPT_PENDING);
	assert_int_equal(queued_others(&w, mid, others, 4), 0);
	/* its next attempt is past the lifetime: bounced */
	round_at(&w, st.next_attempt);
	assert_int_equal(fake.calls, 2);
	assert_int_equal(spool_find(w.spool, mid), -1);
	assert_int_equal(queued_others(&w, mid, others, 4), 1);
	envelope_init(&env);
	dsn = read_message(&w, others[0], &env);
	squash(dsn);
	assert_string_equal(env.from, "");
	assert_int_equal(env.nrcpts, 1);
	assert_string_equal(env.rcpts[0].addr, "alice@example.com");
	assert_non_null(strstr(dsn, "Status: 5.4.7"));
	assert_non_null(strstr(dsn, "message expired after"));
	assert_non_null(strstr(dsn, "451 4.7.1 try again later"));
	assert_non_null(strstr(dsn, "Final-Recipient: rfc822; bob@remote.test"));
	free(dsn);
	envelope_clear(&env);
	remove_queue(&w);
	world_free(&w);
}

/* Permanent failures: a DSN unless NOTIFY=NEVER or the null sender. */
static void
test_permanent_failures(void **state)
{
	static const char *const to[] = { "bob@remote.test",
	    "carol@remote.test" };
	static const int notify[] = { 0, SMTP_NOTIFY_NEVER };
	struct world w;
	struct rcpt_state st;
	struct envelope env;
	uint64_t mid, others[4];
	char *dsn;

	world_new(&w);
	fake.outcome = DELIVERY_BOUNCED;
	fake.text = "550 5.1.1 no such user";
	fake.status = "5.1.1";
	mid = queue_message(&w, "alice@example.com", to, notify, 2);
	round_at(&w, T0);
	assert_int_equal(spool_find(w.spool, mid), -1);
	assert_int_equal(queued_others(&w, mid, others, 4), 1);
	envelope_init(&env);
	dsn = read_message(&w, others[0], &env);
	assert_non_null(strstr(dsn, "bob@remote.test"));
	assert_null(strstr(dsn, "carol@remote.test"));	/* NOTIFY=NEVER */
	assert_non_null(strstr(dsn, "Remote-MTA: dns; mx.fake.test"));
	assert_non_null(strstr(dsn, "Diagnostic-Code: smtp; 550 5.1.1 no "
	    "such user"));
	free(dsn);
	envelope_clear(&env);
	remove_queue(&w);

	/* the null sender: no bounce at all */
	mid = queue_message(&w, "", to, NULL, 1);
	round_at(&w, T0 + 1);
	assert_int_equal(spool_find(w.spool, mid), -1);
	assert_int_equal(queued_others(&w, mid, others, 4), 0);
	(void)st;
	world_free(&w);
}

/* One local and one remote recipient: each to its driver; the delivered
 * local one is never delivered again when the remote one is retried. */
static void
test_local_and_remote(void **state)
{
	static const char *const to[] = { "dave@Local.Test",
	    "bob@remote.test", "postmaster" };
	static const int notify[] = { 0, 0, SMTP_NOTIFY_NEVER };
	struct world w;
	struct rcpt_state st[3];
	char dir[512];
	struct dirent *de;
	DIR *d;
	uint64_t mid;
	int files = 0;

	world_new(&w);
	mid = queue_message(&w, "alice@example.com", to, notify, 3);
	round_at(&w, T0);
	assert_int_equal(fake.calls, 1);
	assert_int_equal(fake.last_n, 1);
	assert_int_equal(fake.last_rids[0], 1);
	read_state(&w, mid, st, 3);
	assert_int_equal(st[0].status, RCPT_DELIVERED);
	assert_int_equal(st[1].status, RCPT_PENDING);
	assert_int_equal(st[1].attempts, 1);
	/* no domain: bounced by the router's decision, no driver involved */
	assert_int_equal(st[2].status, RCPT_FAILED);
	assert_string_equal(st[2].last_error, "recipient address has no "
	    "domain");
	round_at(&w, st[1].next_attempt);
	assert_int_equal(fake.calls, 2);
	assert_int_equal(fake.last_n, 1);
	assert_int_equal(fake.last_rids[0], 1);
	snprintf(dir, sizeof(dir), "%s/mail/local.test/dave/new", tmpdir);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		files += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 1);
	remove_queue(&w);
	world_free(&w);
}

/* A message whose request is still unanswered is not picked again; once
 * answered, it is scheduled as usual. */
static void
test_in_flight_not_picked(void **state)
{
	static const char *const to[] = { "bob@remote.test" };
	struct world w;
	struct rcpt_state st;
	uint64_t mid;

	world_new(&w);
	fake.hold = 1;
	mid = queue_message(&w, "alice@example.com", to, NULL, 1);
	clock_now = T0;
	qmgr_rescan(w.q);
	qmgr_round(w.q);
	assert_int_equal(fake.calls, 1);
	clock_now = T0 + 2 * RETRY_MAX;	/* long due, not expired */
	qmgr_round(w.q);
	qmgr_rescan(w.q);	/* a rescan keeps it busy too */
	qmgr_round(w.q);
	assert_int_equal(fake.calls, 1);
	fake_answer(&fake.held);
	read_state(&w, mid, &st, 1);
	assert_int_equal(st.attempts, 1);
	assert_true(st.next_attempt > clock_now);
	fake.hold = 0;
	round_at(&w, st.next_attempt);
	assert_int_equal(fake.calls, 2);
	remove_queue(&w);
	world_free(&w);
}

/* A worker's notice of a new message makes it due at once; one that comes
 * after a rescan already found the message (and its first attempt was
 * deferred) leaves the backoff alone: no second attempt. */
static void
test_late_notice_no_repeat(void **state)
{
	static const char *const to[] = { "bob@remote.test" };
	struct world w;
	struct rcpt_state st;
	uint64_t mid, mid2;

	world_new(&w);
	mid = queue_message(&w, "alice@example.com", to, NULL, 1);
	round_at(&w, T0);		/* the rescan finds it first */
	assert_int_equal(fake.calls, 1);
	qmgr_committed(w.q, mid);	/* then the worker's notice */
	qmgr_round(w.q);
	assert_int_equal(fake.calls, 1);
	read_state(&w, mid, &st, 1);
	assert_int_equal(st.attempts, 1);
	assert_true(st.next_attempt > clock_now);
	/* a message only the notice tells of goes at once, no rescan */
	mid2 = queue_message(&w, "alice@example.com", to, NULL, 1);
	qmgr_committed(w.q, mid2);
	qmgr_round(w.q);
	assert_int_equal(fake.calls, 2);
	read_state(&w, mid2, &st, 1);
	assert_int_equal(st.attempts, 1);
	remove_queue(&w);
	world_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_table),
		cmocka_unit_test(test_retry_schedule),
		cmocka_unit_test(test_expiry_bounces),
		cmocka_unit_test(test_permanent_failures),
		cmocka_unit_test(test_local_and_remote),
		cmocka_unit_test(test_in_flight_not_picked),
		cmocka_unit_test(test_late_notice_no_repeat),
	};

	return cmocka_run_group_tests(tests, group_setup, teardown);
}
