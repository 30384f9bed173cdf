/*
 * cmd_queue.c - `postern queue`: inspect and steer the spool, with the
 * daemon running or stopped.  Commands work on the spool files directly;
 * a message being delivered is locked (flock) by the queue manager, so
 * delete/hold wait for it briefly or say so.  Changes that the running
 * daemon must see at once (retry, release, resume) are followed by
 * SIGUSR1 to the daemon (pid in data_dir/postern.pid), which makes the
 * queue manager rescan.  `show` prints under a recipient whose last error
 * has a known cause the fix of that cause (failcause.h, as delivery
 * words it).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "conf.h"
#include "failcause.h"
#include "route.h"
#include "daemon_status.h"
#include "runas.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

struct qctx {
	struct conf	*conf;
	struct spool	*spool;
};

static const char *area_label[] = { "incoming", "active", "held", "corrupt" };

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern queue [-c FILE] COMMAND\n"
	    "  list [--count]     one line per message: MID, age, size, state,\n"
	    "                     sender, and each recipient's delivery state\n"
	    "  show MID           envelope, delivery state and headers\n"
	    "  retry [MID]        try now (all deferred messages without MID)\n"
	    "  delete MID|--all   remove from the spool (no bounce)\n"
	    "  hold MID           keep the message, deliver nothing\n"
	    "  release MID        undo hold\n"
	    "  pause / resume     stop / restart all delivery; mail is still "
	    "accepted\n");
}

static int
parse_mid_arg(const char *s, uint64_t *mid)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || v == 0) {
		fprintf(stderr, "postern: '%s' is not a message ID (MIDs are the "
		    "numbers `postern queue list` shows)\n", s);
		return -1;
	}
	*mid = v;
	return 0;
}

/* Tell a running daemon to rescan; quiet when none runs. */
static void
poke_daemon(const struct qctx *q)
{
	long pid = daemon_status_pid(q->conf->data_dir);

	if (pid > 0)
		kill((pid_t)pid, SIGUSR1);
}

static void
fmt_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
rcpt_summary(struct strbuf *sb, const struct envelope *env,
    const struct rcpt_state *st)
{
	static const char *status[] = { "pending", "delivered", "failed" };
	char t[32];
	size_t i;

	for (i = 0; i < env->nrcpts; i++) {
		strbuf_printf(sb, "%s<%s> %s attempts %d", i ? ", " : "",
		    env->rcpts[i].addr, status[st[i].status], st[i].attempts);
		if (st[i].status == RCPT_PENDING) {
			if (st[i].next_attempt > wall_now()) {
				fmt_time(st[i].next_attempt, t, sizeof(t));
				strbuf_printf(sb, " next %s", t);
			} else
				strbuf_puts(sb, " next now");
		}
		if (st[i].last_error[0])
			strbuf_printf(sb, " last error \"%s\"", st[i].last_error);
	}
}

/*
 * One recipient's delivery state, as `list` prints it under the message
 * line and `show` after "RID n:": "<addr> pending attempts 2 next
 * 2026-12-03T18:40:00Z last error: 451 4.7.1 try later" ("next now" when
 * due; no next once delivered or bounced; no last error when none).
 */
static void
rcpt_detail(struct strbuf *sb, const struct env_rcpt *r,
    const struct rcpt_state *st, int64_t now)
{
	static const char *status[] = { "pending", "delivered", "bounced" };
	char t[32];

	strbuf_printf(sb, "<%s> %s attempts %d", r->addr, status[st->status],
	    st->attempts);
	if (st->status == RCPT_PENDING) {
		if (st->next_attempt > now) {
			fmt_time(st->next_attempt, t, sizeof(t));
			strbuf_printf(sb, " next %s", t);
		} else
			strbuf_puts(sb, " next now");
	}
	if (st->last_error[0] != '\0') {
		strbuf_puts(sb, " last error: ");
		strbuf_printable(sb, st->last_error, strlen(st->last_error));
	}
}

/* The fix of the cause of a recipient's last error (the table of causes,
 * as delivery words it), or nothing: none known, or delivered. */
static void
rcpt_fix(const struct conf *conf, struct strbuf *sb,
    const struct env_rcpt *r, const struct rcpt_state *st)
{
	struct route_decision d;
	struct failcause_ctx x;
	struct strbuf fix = STRBUF_INIT;
	enum failcause fc = failcause_by_name(st->cause);

	if (fc == FC_NONE || st->status == RCPT_DELIVERED ||
	    st->last_error[0] == '\0')
		return;
	memset(&x, 0, sizeof(x));
	x.host = st->cause_host[0] != '\0' ? st->cause_host : NULL;
	x.port = st->cause_port;
	x.address = r->addr;
	x.who = FC_FOR_DELIVERY;
	/* the credentials a route sends are its auth_user's */
	if (route_decide(conf, r->addr, &d) == ROUTE_TO_HOSTS)
		x.user = d.route->auth_user;
	failcause_fix(fc, &x, &fix);
	strbuf_printable(sb, fix.s != NULL ? fix.s : "", fix.len);
	strbuf_free(&fix);
}

static int
list_area(const struct qctx *q, enum spool_area area, int count_only,
    size_t *total)
{
	struct strbuf sb = STRBUF_INIT;
	struct rcpt_state *st;
	struct envelope env;
	uint64_t *mids;
	size_t n, i, k;
	char why[512], t[32];
	int64_t now = wall_now();
	int fd;

	if (spool_list(q->spool, area, &mids, &n) == -1)
		return -1;
	*total += n;
	for (i = 0; i < n && !count_only; i++) {
		fd = spool_open_msg(q->spool, area, mids[i], 0, &env, why,
		    sizeof(why));
		if (fd == -1) {
			if (errno != ENOENT)
				printf("%llu %s unreadable: %s\n",
				    (unsigned long long)mids[i],
				    area_label[area], why);
			continue;
		}
		close(fd);
		st = xcalloc(env.nrcpts, sizeof(*st));
		spool_state_read(q->spool, mids[i], st, env.nrcpts);
		fmt_time(env.received, t, sizeof(t));
		strbuf_reset(&sb);
		strbuf_printf(&sb, "%llu %s %s %llu bytes from <%s> to ",
		    (unsigned long long)mids[i], area_label[area], t,
		    (unsigned long long)env.msg_size, env.from);
		rcpt_summary(&sb, &env, st);
		printf("%s\n", sb.s);
		for (k = 0; k < env.nrcpts; k++) {
			strbuf_reset(&sb);
			rcpt_detail(&sb, &env.rcpts[k], &st[k], now);
			printf("    RID %zu %s\n", k, sb.s);
		}
		free(st);
		envelope_clear(&env);
	}
	free(mids);
	strbuf_free(&sb);
	return 0;
}

static int
q_list(const struct qctx *q, int argc, char **argv)
{
	size_t total = 0;
	int count_only = argc > 1 && strcmp(argv[1], "--count") == 0;

	if (argc > 2 || (argc == 2 && !count_only)) {
		usage(stderr);
		return 2;
	}
	if (list_area(q, SPOOL_QUEUE, count_only, &total) == -1 ||
	    list_area(q, SPOOL_HOLD, count_only, &total) == -1) {
		fprintf(stderr, "postern: cannot read the spool in %s/spool: "
		    "%s\n", q->conf->data_dir, strerror(errno));
		return 1;
	}
	if (count_only)
		printf("%zu\n", total);
	return 0;
}

static int
q_show(const struct qctx *q, uint64_t mid)
{
	struct rcpt_state *st;
	struct envelope env;
	char why[512], t[32], buf[8192];
	int area, fd;
	ssize_t n;
	size_t i;

	if ((area = spool_find(q->spool, mid)) == -1) {
		fprintf(stderr, "postern: MID %llu is not in the queue\n",
		    (unsigned long long)mid);
		return 1;
	}
	fd = spool_open_msg(q->spool, (enum spool_area)area, mid, 1, &env, why,
	    sizeof(why));
	if (fd == -1) {
		fprintf(stderr, "postern: MID %llu: %s\n",
		    (unsigned long long)mid, why);
		return 1;
	}
	st = xcalloc(env.nrcpts, sizeof(*st));
	spool_state_read(q->spool, mid, st, env.nrcpts);
	fmt_time(env.received, t, sizeof(t));
	printf("MID:       %llu (%s)\nICID:      %llu\nReceived:  %s from %s "
	    "(HELO %s)\nFrom:      <%s>\nSize:      %llu bytes\n",
	    (unsigned long long)mid, area_label[area],
	    (unsigned long long)env.icid, t, env.client_ip, env.helo, env.from,
	    (unsigned long long)env.msg_size);
	if (env.auth_user[0] != '\0')
		printf("AUTH:      %s\n", env.auth_user);
	for (i = 0; i < env.nrcpts; i++) {
		struct strbuf sb = STRBUF_INIT;
		rcpt_detail(&sb, &env.rcpts[i], &st[i], wall_now());
		printf("RID %zu:     %s\n", i, sb.s);
		strbuf_reset(&sb);
		rcpt_fix(q->conf, &sb, &env.rcpts[i], &st[i]);
		if (sb.len > 0)
			printf("           fix: %s\n", sb.s);
		strbuf_free(&sb);
	}
	printf("\n");
	/* The header section, as stored. */
	n = pread(fd, buf, sizeof(buf) - 1 < env.msg_size ? sizeof(buf) - 1 :
	    (size_t)env.msg_size, 0);
	if (n > 0) {
		char *end;
		buf[n] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			end[2] = '\0';
		fputs(buf, stdout);
	}
	free(st);
	envelope_clear(&env);
	close(fd);
	return 0;
}

/* Lock a message against delivery; -1 if busy or gone. */
static int
lock_msg(const struct qctx *q, enum spool_area area, uint64_t mid)
{
	char path[4096];
	int fd, i;

	spool_path(q->spool, area, mid, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (i = 0; i < 50; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		usleep(100000);
	}
	close(fd);
	errno = EBUSY;
	return -1;
}

static int
q_move_or_delete(const struct qctx *q, const char *verb, uint64_t mid)
{
	int area = spool_find(q->spool, mid), fd, r;
	enum spool_area want_from = strcmp(verb, "release") == 0 ? SPOOL_HOLD :
	    SPOOL_QUEUE;

	if (area == -1) {
		fprintf(stderr, "postern: MID %llu is not in the queue\n",
		    (unsigned long long)mid);
		return 1;
	}
	if (strcmp(verb, "delete") != 0 && area != (int)want_from) {
		fprintf(stderr, "postern: MID %llu is %s, nothing to %s\n",
		    (unsigned long long)mid, area_label[area], verb);
		return 1;
	}
	if ((fd = lock_msg(q, (enum spool_area)area, mid)) == -1) {
		fprintf(stderr, "postern: MID %llu: %s\n",
		    (unsigned long long)mid, errno == EBUSY ?
		    "being delivered right now; try again in a moment" :
		    strerror(errno));
		return 1;
	}
	if (strcmp(verb, "delete") == 0)
		r = spool_remove(q->spool, (enum spool_area)area, mid);
	else
		r = spool_move(q->spool, mid, (enum spool_area)area,
		    strcmp(verb, "hold") == 0 ? SPOOL_HOLD : SPOOL_QUEUE);
	close(fd);
	if (r == -1) {
		fprintf(stderr, "postern: %s MID %llu failed: %s\n", verb,
		    (unsigned long long)mid, strerror(errno));
		return 1;
	}
	printf("MID %llu %s\n", (unsigned long long)mid,
	    strcmp(verb, "delete") == 0 ? "deleted" :
	    strcmp(verb, "hold") == 0 ? "held" : "released");
	poke_daemon(q);
	return 0;
}

static int
q_delete_all(const struct qctx *q)
{
	uint64_t *mids;
	size_t n, i, done = 0;
	int a, fd;

	for (a = SPOOL_QUEUE; a <= SPOOL_HOLD; a++) {
		if (spool_list(q->spool, (enum spool_area)a, &mids, &n) == -1)
			continue;
		for (i = 0; i < n; i++) {
			if ((fd = lock_msg(q, (enum spool_area)a, mids[i])) == -1)
				continue;
			if (spool_remove(q->spool, (enum spool_area)a, mids[i]) == 0)
				done++;
			close(fd);
		}
		free(mids);
	}
	printf("%zu messages deleted\n", done);
	poke_daemon(q);
	return 0;
}

/* Make pending recipients due now. */
static int
retry_one(const struct qctx *q, uint64_t mid)
{
	struct rcpt_state *st;
	struct envelope env;
	char why[512];
	size_t i;
	int fd;

	fd = spool_open_msg(q->spool, SPOOL_QUEUE, mid, 0, &env, why,
	    sizeof(why));
	if (fd == -1)
		return -1;
	close(fd);
	st = xcalloc(env.nrcpts, sizeof(*st));
	spool_state_read(q->spool, mid, st, env.nrcpts);
	for (i = 0; i < env.nrcpts; i++)
		if (st[i].status == RCPT_PENDING)
			st[i].next_attempt = 0;
	spool_state_write(q->spool, mid, st, env.nrcpts);
	free(st);
	envelope_clear(&env);
	return 0;
}

static int
q_retry(const struct qctx *q, int argc, char **argv)
{
	uint64_t mid, *mids;
	size_t n, i;

	if (argc == 2) {
		if (parse_mid_arg(argv[1], &mid) == -1)
			return 2;
		if (retry_one(q, mid) == -1) {
			fprintf(stderr, "postern: MID %llu is not in the active "
			    "queue (held messages need `queue release`)\n",
			    (unsigned long long)mid);
			return 1;
		}
		printf("MID %llu scheduled for delivery now\n",
		    (unsigned long long)mid);
	} else {
		if (spool_list(q->spool, SPOOL_QUEUE, &mids, &n) == -1)
			return 1;
		for (i = 0; i < n; i++)
			retry_one(q, mids[i]);
		free(mids);
		printf("%zu messages scheduled for delivery now\n", n);
	}
	poke_daemon(q);
	return 0;
}

static int
q_pause(const struct qctx *q, int on)
{
	if (spool_set_paused(q->spool, on) == -1) {
		fprintf(stderr, "postern: cannot %s delivery: %s\n",
		    on ? "pause" : "resume", strerror(errno));
		return 1;
	}
	if (on)
		printf("delivery paused; mail is still accepted and queued\n");
	else if (q->conf->paused)
		printf("pause flag removed, but delivery stays paused: "
		    "delivery.paused = true in %s\n", q->conf->path);
	else
		printf("delivery resumed\n");
	poke_daemon(q);
	return 0;
}

static int
dispatch(const struct qctx *q, int argc, char **argv)
{
	const char *verb = argv[0];
	uint64_t mid;

	if (strcmp(verb, "list") == 0)
		return q_list(q, argc, argv);
	if (strcmp(verb, "retry") == 0 && argc <= 2)
		return q_retry(q, argc, argv);
	if ((strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0) &&
	    argc == 1)
		return q_pause(q, verb[0] == 'p');
	if (strcmp(verb, "delete") == 0 && argc == 2 &&
	    strcmp(argv[1], "--all") == 0)
		return q_delete_all(q);
	if (argc != 2 || (strcmp(verb, "show") && strcmp(verb, "delete") &&
	    strcmp(verb, "hold") && strcmp(verb, "release"))) {
		usage(stderr);
		return 2;
	}
	if (parse_mid_arg(argv[1], &mid) == -1)
		return 2;
	if (strcmp(verb, "show") == 0)
		return q_show(q, mid);
	return q_move_or_delete(q, verb, mid);
}

/*
 * The subcommand and its arguments, checked before the configuration and
 * the spool are touched (an unknown option is a usage error, exit 2, not
 * a spool permission error).  -1 to go on, else the exit status.
 */
static int
check_args(int argc, char **argv)
{
	static const char *verbs[] = { "list", "show", "retry", "delete",
	    "hold", "release", "pause", "resume" };
	const char *verb = argv[0];
	uint64_t mid;
	size_t v;
	int i, ok;

	for (v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
		if (strcmp(verb, verbs[v]) == 0)
			break;
	if (v == sizeof(verbs) / sizeof(verbs[0]))
		return cmd_usage_error("queue", verb, "unknown command");
	for (i = 1; i < argc; i++)
		if (argv[i][0] == '-' && !(v == 0 && strcmp(argv[i],
		    "--count") == 0) && !(v == 3 && strcmp(argv[i],
		    "--all") == 0))
			return cmd_usage_error("queue", verb, "unknown option "
			    "'%s'", argv[i]);
	if (v == 0)
		ok = argc <= 2;
	else if (v == 2)
		ok = argc <= 2;
	else if (v >= 6)
		ok = argc == 1;
	else
		ok = argc == 2;
	if (!ok)
		return cmd_usage_error("queue", verb, "%s", argc > 2 ?
		    "too many arguments" : "MID missing");
	if (argc == 2 && argv[1][0] != '-' && parse_mid_arg(argv[1],
	    &mid) == -1)
		return 2;
	return -1;
}

int
cmd_queue(int argc, char **argv)
{
	const char *path = NULL;
	struct qctx q;
	char why[512];
	int i, r;

	if ((r = cmd_leading_options(argc, argv, usage, &path, &i)) != -1)
		return r;
	/* "-c FILE" may also come after the subcommand. */
	for (int k = i; k + 1 < argc; k++)
		if (strcmp(argv[k], "-c") == 0) {
			path = argv[k + 1];
			memmove(&argv[k], &argv[k + 2],
			    (size_t)(argc - k - 2) * sizeof(*argv));
			argc -= 2;
			break;
		}
	if (argc - i >= 2 && strcmp(argv[i + 1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if ((r = check_args(argc - i, argv + i)) != -1)
		return r;
	if ((q.conf = conf_load_for_command(path)) == NULL)
		return 1;
	if (runas_act_as_in(q.conf->user, q.conf->data_dir) == -1) {
		conf_free(q.conf);
		return 1;
	}
	q.spool = spool_open(q.conf->data_dir, why, sizeof(why));
	if (q.spool == NULL) {
		fprintf(stderr, "postern: %s\n", why);
		conf_free(q.conf);
		return 1;
	}
	r = dispatch(&q, argc - i, argv + i);
	spool_free(q.spool);
	conf_free(q.conf);
	return r;
}
