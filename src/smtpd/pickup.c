/*
 * pickup.c - the pickup directory (see pickup.h).
 *
 * Who takes a file: SMTP worker 0 (files are untrusted local input; the
 * queue manager, which holds signing keys, never parses them).  It
 * learns of new names from inotify (IN_MOVED_TO, IN_CLOSE_WRITE) and, as
 * a safety net and for files already there at start, from a scan every
 * PICKUP_SCAN_INTERVAL seconds.  One claimant per file even across a
 * reload (an old and a new worker 0 may overlap): a file is claimed with
 * flock(LOCK_EX|LOCK_NB) and skipped when its link count is already 0
 * (the other claimant removed it while we waited).
 *
 * A file is taken only if it is a regular file with one link, no bigger
 * than pickup.max_message_size (+ the envelope fields), owned by root,
 * the daemon's user or a member of pickup.group.  Its envelope comes from
 * pickup_parse.c or the header fields (msg_prep.c); it is spooled with
 * inject.c and unlinked only in the commit callback, after the flush: a
 * crash in between delivers it twice (at-least-once), never zero times.
 * Anything refused is renamed into bad/ (mode 0700) with a Warning.
 *
 * Policy (docs/http-api.md): local programs are trusted like Postfix's
 * sendmail: the message may relay, its size limit is
 * pickup.max_message_size, there is no identity check (there is no
 * credential); the Received: field names the file owner's uid.
 * Names starting with '.' are files still being written (ignored).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <event2/event.h>

#include "ids.h"
#include "inject.h"
#include "log.h"
#include "msg_prep.h"
#include "pickup.h"
#include "pickup_parse.h"
#include "smtp_proto.h"
#include "strbuf.h"
#include "util.h"

#define PICKUP_NAME_MAX		255
#define PICKUP_ENVELOPE_ROOM	(PICKUP_RCPTS_MAX * (PICKUP_ADDR_MAX + 16))

struct pickup_job {
	char		 name[PICKUP_NAME_MAX + 1];
	int		 fd;		/* open, locked */
	uint64_t	 icid;
	struct msg_prep	 prep;
	char		 from[SMTP_ADDR_MAX + 1];
	char		 local[96];	/* "from userid 1000 (alice)" */
};

static struct event_base	*pbase;
static const struct conf	*pconf;
static int			 pdirfd = -1, pinotify = -1;
static struct event		*pino_ev, *pscan_ev;
static gid_t			 pgid;
static size_t			 pinflight;
static int			 pstopping;
static void			(*pdone)(void);

/* Is `uid` root, us, or in the pickup group (primary or member)? */
int
pickup_owner_allowed(uid_t uid, gid_t gid)
{
	struct passwd *pw;
	struct group *gr;
	size_t i;

	if (uid == 0 || uid == geteuid())
		return 1;
	if ((pw = getpwuid(uid)) == NULL)
		return 0;
	if (pw->pw_gid == gid)
		return 1;
	if ((gr = getgrgid(gid)) == NULL)
		return 0;
	for (i = 0; gr->gr_mem[i] != NULL; i++)
		if (strcmp(gr->gr_mem[i], pw->pw_name) == 0)
			return 1;
	return 0;
}

static void
idstr(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Refused: into bad/ (kept for the admin), with the reason. */
static void
move_bad(const char *name, uint64_t icid, const char *why)
{
	char sicid[32], to[PICKUP_NAME_MAX + 8];

	snprintf(to, sizeof(to), "bad/%s", name);
	if (renameat(pdirfd, name, pdirfd, to) == -1) {
		if (errno == ENOENT)
			return;		/* gone meanwhile */
		(void)unlinkat(pdirfd, name, 0);
	}
	(void)fsync(pdirfd);
	if (icid == 0) {
		mlog(LOG_LVL_WARNING, "pickup_bad", "pickup file {file} moved "
		    "to bad/: {why}", "file", name, "why", why, NULL);
		return;
	}
	idstr(icid, sicid, sizeof(sicid));
	mlog(LOG_LVL_WARNING, "pickup_bad", "ICID {icid} pickup file {file} "
	    "moved to bad/: {why}", "icid", sicid, "file", name, "why", why,
	    NULL);
}

static void
job_free(struct pickup_job *j)
{
	char icid[32];

	idstr(j->icid, icid, sizeof(icid));
	if (j->icid != 0)
		mlog(LOG_LVL_INFO, "close", "ICID {icid} close", "icid", icid,
		    NULL);
	if (j->fd != -1)
		close(j->fd);
	msg_prep_free(&j->prep);
	free(j);
	pinflight--;
	if (pstopping && pinflight == 0 && pdone != NULL) {
		void (*done)(void) = pdone;

		pdone = NULL;
		done();
	}
}

/* Durable in the spool: now the file may go. */
static void
committed(void *arg, uint64_t mid, int ok)
{
	struct pickup_job *j = arg;

	if (ok) {
		if (unlinkat(pdirfd, j->name, 0) == -1 && errno != ENOENT)
			log_warn("pickup: cannot remove %s after MID %llu: it "
			    "may be taken twice", j->name,
			    (unsigned long long)mid);
	} else
		log_warnx("pickup: %s could not be spooled; it stays and is "
		    "tried again", j->name);
	job_free(j);
}

/* Read the whole claimed file (size checked before). */
static char *
read_claimed(int fd, size_t size)
{
	char *buf = xmalloc(size + 1);
	size_t got = 0;
	ssize_t n;

	while (got < size && (n = pread(fd, buf + got, size - got,
	    (off_t)got)) > 0)
		got += (size_t)n;
	if (got != size) {
		free(buf);
		return NULL;
	}
	buf[size] = '\0';
	return buf;
}

/* The envelope and the normalised message, or -1 with why. */
static int
prepare(struct pickup_job *j, const char *data, size_t len, char *why,
    size_t whylen)
{
	struct pickup_env env;
	const char **extra = NULL;
	size_t i;
	int r = -1;

	if (pickup_parse(data, len, &env, why, whylen) == -1)
		return -1;
	if (env.nrcpts > 0)
		extra = xcalloc(env.nrcpts, sizeof(*extra));
	for (i = 0; i < env.nrcpts; i++)
		extra[i] = env.rcpts[i];
	if (msg_prep_run(&j->prep, data + env.body_off, len - env.body_off,
	    extra, env.nrcpts, pconf->hostname, wall_now(), why, whylen) == -1)
		goto out;
	if (env.nrcpts > 0) {	/* X-Receiver is the whole envelope */
		strv_free(j->prep.rcpts, j->prep.nrcpts);
		j->prep.rcpts = xcalloc(env.nrcpts, sizeof(char *));
		for (i = 0; i < env.nrcpts; i++)
			j->prep.rcpts[i] = xstrdup(env.rcpts[i]);
		j->prep.nrcpts = env.nrcpts;
	}
	if (env.has_sender)
		bstrlcpy(j->from, env.sender, sizeof(j->from));
	else if (j->prep.from != NULL)
		bstrlcpy(j->from, j->prep.from, sizeof(j->from));
	else {
		bsnprintf(why, whylen, "no envelope sender (no X-Sender and no "
		    "usable From:)");
		goto out;
	}
	r = 0;
out:
	free(extra);
	pickup_env_free(&env);
	return r;
}

/* Every envelope address must be a valid SMTP path; and the size. */
static int
check_message(struct pickup_job *j, int *utf8, char *why, size_t whylen)
{
	struct smtp_path p;
	char buf[SMTP_PATH_MAX + 8];
	const char *reply;
	size_t i, used;

	for (i = 0; i <= j->prep.nrcpts; i++) {
		const char *a = i == 0 ? j->from : j->prep.rcpts[i - 1];

		reply = NULL;
		if (bsnprintf(buf, sizeof(buf), "<%s>", a) == -1 ||
		    smtp_path_parse(buf, strlen(buf), i == 0, i > 0, &p, &used,
		    &reply) == -1 || used != strlen(buf)) {
			bsnprintf(why, whylen, "bad address <%s>%s%s", a,
			    reply ? ": " : "", reply ? reply : "");
			return -1;
		}
		if (p.utf8)
			*utf8 = 1;
	}
	if (j->prep.msg.len > pconf->pickup.max_message_size) {
		bsnprintf(why, whylen, "%zu octets, over pickup.max_message_size "
		    "%zu", j->prep.msg.len, pconf->pickup.max_message_size);
		return -1;
	}
	return 0;
}

static void
spool_job(struct pickup_job *j, int utf8)
{
	struct inject_msg m;
	char why[256];

	memset(&m, 0, sizeof(m));
	m.icid = j->icid;
	m.client_ip = "local";
	m.helo = "pickup";
	m.auth_user = "";
	m.from = j->from;
	m.rcpts = (const char *const *)j->prep.rcpts;
	m.nrcpts = j->prep.nrcpts;
	m.data = j->prep.msg.s;
	m.len = j->prep.msg.len;
	m.eightbit = j->prep.eightbit;
	m.smtputf8 = utf8 || j->prep.utf8_addrs;
	m.trace.local = j->local;
	if (inject_submit(&m, committed, j, why, sizeof(why)) == 0) {
		log_warnx("pickup: %s: %s; it stays and is tried again",
		    j->name, why);
		job_free(j);
	}
}

static void
log_new(const struct pickup_job *j, uid_t uid, const char *user)
{
	char icid[32], suid[32];

	idstr(j->icid, icid, sizeof(icid));
	idstr(uid, suid, sizeof(suid));
	mlog(LOG_LVL_INFO, "new_icid", "New PICKUP ICID {icid} file {file} "
	    "uid {uid} user {user}", "icid", icid, "file", j->name, "uid",
	    suid, "user", user, NULL);
}

/* Claimed and checked: parse, spool (or move to bad/). */
static void
take(struct pickup_job *j, const struct stat *st)
{
	struct passwd *pw = getpwuid(st->st_uid);
	char why[512], *data;
	int utf8 = 0;

	j->icid = ids_next(ID_ICID);
	log_new(j, st->st_uid, pw ? pw->pw_name : "?");
	snprintf(j->local, sizeof(j->local), "from userid %lu%s%.40s%s",
	    (unsigned long)st->st_uid, pw ? " (" : "", pw ? pw->pw_name : "",
	    pw ? ")" : "");
	if (!pickup_owner_allowed(st->st_uid, pgid)) {
		snprintf(why, sizeof(why), "owner uid %lu (%s) is not in group "
		    "%s", (unsigned long)st->st_uid, pw ? pw->pw_name : "?",
		    pconf->pickup.group);
		move_bad(j->name, j->icid, why);
		job_free(j);
		return;
	}
	if ((data = read_claimed(j->fd, (size_t)st->st_size)) == NULL) {
		move_bad(j->name, j->icid, "cannot be read");
		job_free(j);
		return;
	}
	if (prepare(j, data, (size_t)st->st_size, why, sizeof(why)) == -1 ||
	    check_message(j, &utf8, why, sizeof(why)) == -1) {
		free(data);
		move_bad(j->name, j->icid, why);
		job_free(j);
		return;
	}
	free(data);
	spool_job(j, utf8);
}

/* Claim one name: open, lock, still linked, a plain file, not too big. */
static void
claim(const char *name)
{
	struct pickup_job *j;
	struct stat st;
	int fd;

	if (name[0] == '.' || strcmp(name, "bad") == 0 ||
	    strlen(name) > PICKUP_NAME_MAX || pstopping ||
	    pinflight >= PICKUP_INFLIGHT_MAX)
		return;
	fd = openat(pdirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP)
			move_bad(name, 0, "a symbolic link");
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 || fstat(fd, &st) == -1 ||
	    st.st_nlink == 0) {
		close(fd);	/* another claimant has it, or had it */
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->fd = fd;
	bstrlcpy(j->name, name, sizeof(j->name));
	pinflight++;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		move_bad(name, 0, S_ISREG(st.st_mode) ? "a hard link" :
		    "not a regular file");
		job_free(j);
		return;
	}
	if ((uint64_t)st.st_size > pconf->pickup.max_message_size +
	    PICKUP_ENVELOPE_ROOM) {
		move_bad(name, 0, "bigger than pickup.max_message_size");
		job_free(j);
		return;
	}
	take(j, &st);
}

/* The whole directory (start, timer, inotify overflow). */
static void
scan(void)
{
	struct dirent *de;
	DIR *d;
	int fd = dup(pdirfd);

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL && pinflight < PICKUP_INFLIGHT_MAX)
		claim(de->d_name);
	closedir(d);
}

static void
scan_cb(evutil_socket_t fd, short what, void *arg)
{
	scan();
}

static void
inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[8192] __attribute__((aligned(8)));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	while ((n = read(pinotify, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				scan();
			else if (ev->len > 0)
				claim(ev->name);
		}
}

/* Worker 0: watch the directory (pickup.h). */
int
pickup_attach(struct event_base *base, const struct conf *conf)
{
	struct group *gr;
	struct timeval tv = { PICKUP_SCAN_INTERVAL, 0 };

	pbase = base;
	pconf = conf;
	if ((gr = getgrnam(conf->pickup.group)) == NULL) {
		log_warnx("pickup: group %s does not exist", conf->pickup.group);
		return -1;
	}
	pgid = gr->gr_gid;
	if ((pdirfd = open(conf->pickup.dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		log_warn("pickup: cannot open %s", conf->pickup.dir);
		return -1;
	}
	pinotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (pinotify != -1 && inotify_add_watch(pinotify, conf->pickup.dir,
	    IN_MOVED_TO | IN_CLOSE_WRITE) != -1) {
		pino_ev = event_new(base, pinotify, EV_READ | EV_PERSIST,
		    inotify_cb, NULL);
		event_add(pino_ev, NULL);
	} else
		log_warn("pickup: inotify on %s (files are found by the scan "
		    "every %d s)", conf->pickup.dir, PICKUP_SCAN_INTERVAL);
	pscan_ev = event_new(base, -1, EV_PERSIST, scan_cb, NULL);
	event_add(pscan_ev, &tv);
	scan();
	return 0;
}

/* Stop taking files; `done` once none is in flight (pickup.h). */
void
pickup_shutdown(void (*done)(void))
{
	pstopping = 1;
	if (pino_ev != NULL)
		event_del(pino_ev);
	if (pscan_ev != NULL)
		event_del(pscan_ev);
	if (pinflight == 0) {
		done();
		return;
	}
	pdone = done;
}

/* Create dir (1730, user:group) and bad/ (0700, user) in the master. */
int
pickup_prepare(const struct conf *c, char *why, size_t whylen)
{
	struct passwd *pw = NULL;
	struct group *gr;
	char bad[4200];
	uid_t uid = geteuid();

	if ((gr = getgrnam(c->pickup.group)) == NULL) {
		bsnprintf(why, whylen, "pickup group '%s' does not exist "
		    "(groupadd --system %s, then add the users who may send "
		    "mail with `postern sendmail`)", c->pickup.group,
		    c->pickup.group);
		return -1;
	}
	if (uid == 0 && strcmp(c->user, "root") != 0 &&
	    (pw = getpwnam(c->user)) != NULL)
		uid = pw->pw_uid;
	snprintf(bad, sizeof(bad), "%s/bad", c->pickup.dir);
	if (mkdir_p(bad, 0700) == -1 || chmod(bad, 0700) == -1 ||
	    chown(bad, uid, (gid_t)-1) == -1 ||
	    chown(c->pickup.dir, uid, gr->gr_gid) == -1 ||
	    chmod(c->pickup.dir, 01730) == -1) {
		bsnprintf(why, whylen, "pickup directory %s: %s (create it "
		    "owned by %s, group %s, mode 1730)", c->pickup.dir,
		    strerror(errno), c->user, c->pickup.group);
		return -1;
	}
	return 0;
}
