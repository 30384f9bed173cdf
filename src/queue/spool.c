/*
 * spool.c - durable spool on disk with group commit (see spool.h and
 * docs/spool.md).
 *
 * A spool file is: message content, then the encoded envelope, then one
 * footer line "postern-spool 1 <content-octets> <envelope-octets> <sha256>\n"
 * where the digest covers content and envelope.  A file whose footer does
 * not parse is incomplete and was never acknowledged.
 *
 * Group commit: the event loop appends finished messages to `pending`; the
 * commit thread takes the whole list, renames each file into queue/, calls
 * syncfs(2) once for the batch (data, inodes and directory entries of every
 * file in it), then passes the batch back through a pipe.  While one batch
 * syncs the next one gathers, so concurrent sessions share fsyncs and no
 * reply is sent before its own file is covered.
 *
 * spool_inject() is the synchronous path for messages the queue manager
 * makes itself: the same writer (spool_msg_*, finish_file), then fsync,
 * rename and directory fsyncs in the caller's thread.
 *
 * spool_rewrite_*() replace a queued message with transformed content
 * (transform.c): the same writer into a scratch file rewrite/rw.<slot>
 * (locked), one syncfs for a batch, then each scratch file and
 * queue/<MID> swap names in one atomic renameat2(RENAME_EXCHANGE), and
 * one fsync of queue/.  The replaced copy becomes the slot's next
 * scratch file: a rewrite creates and frees no inode (ext4 scans past
 * recently freed inodes to allocate one, and frees blocks synchronously
 * when mounted with discard: that had cost more than the signing).  A
 * file system without RENAME_EXCHANGE, or no free slot, gets the plain
 * way: a new incoming/<MID> renamed over queue/<MID>.
 *
 * spool_has_room() answers the SMTP workers' free-space question at MAIL
 * from a statvfs result cached per spool (per worker) for about a second.
 *
 * Failure of any write, flush or rename (ENOSPC, EIO, ...) makes the
 * message fail as a whole: its file is removed from incoming/ and nothing
 * that recovery would deliver is left behind.  tests/unit/test_spool.c
 * injects such failures through -Wl,--wrap.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "log.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define SPOOL_WBUF	65536
#define FOOTER_MAX	256
#define SPOOL_RW_SLOTS	512	/* scratch files of a rewrite batch */

static const char *area_names[] = { "incoming", "queue", "hold", "corrupt" };

struct spool_msg {
	struct spool	*spool;
	uint64_t	 mid;
	int		 fd;
	int		 error;
	uint64_t	 size;
	EVP_MD_CTX	*md;
	char		*wbuf;
	size_t		 wlen;
	spool_commit_cb	 cb;
	void		*cb_arg;
	int		 ok;
	int		 err;		/* rewrite: errno of what failed */
	const char	*failed;	/* rewrite: what failed, or NULL */
	int		 renamed;	/* rewrite: now at queue/<MID> */
	int		 slot;		/* rewrite: rewrite/rw.<slot>, or -1
					 * for incoming/<MID> */
	struct spool_msg *next;
};

struct spool {
	char		*data_dir;
	char		*dir;		/* data_dir/spool */
	char		*show;		/* dir as an absolute path, for
					 * messages (serve works in data_dir
					 * with relative paths: workdir.h) */
	int		 dirfd;
	/* group commit */
	pthread_t	 thread;
	int		 thread_started;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct spool_msg *pending, **pending_tail;
	struct spool_msg *done, **done_tail;
	int		 stop;
	int		 wake[2];
	struct event	*wake_ev;
	/* free space (spool_has_room), this process's view */
	double		 space_at;	/* monotonic time of the statvfs */
	int		 space_valid;
	uint64_t	 space_bytes;	/* available to unprivileged users */
	uint64_t	 space_inodes;	/* UINT64_MAX when not counted */
	int		 space_full;	/* last answer was FULL (logged) */
	/* rewrites (under lock): scratch slots in use, and whether the
	 * file system swaps names (RENAME_EXCHANGE) */
	unsigned char	 rw_busy[SPOOL_RW_SLOTS];
	int		 rw_plain;	/* 1 once an exchange was refused */
};

/* "./spool" -> "<cwd>/spool" (getcwd needs no access to the parents). */
static char *
show_path(const char *dir)
{
	char cwd[4096], buf[4200];

	if (dir[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL ||
	    bsnprintf(buf, sizeof(buf), "%s/%s", cwd, strncmp(dir, "./", 2) ==
	    0 ? dir + 2 : dir) == -1)
		return xstrdup(dir);
	return xstrdup(buf);
}

struct spool *
spool_open(const char *data_dir, char *why, size_t whylen)
{
	struct spool *sp;
	char path[4096];
	size_t i;

	sp = xcalloc(1, sizeof(*sp));
	sp->data_dir = xstrdup(data_dir);
	sp->dirfd = -1;
	sp->wake[0] = sp->wake[1] = -1;
	if (bsnprintf(path, sizeof(path), "%s/spool", data_dir)) {
		bsnprintf(why, whylen, "data_dir path too long");
		goto fail;
	}
	sp->dir = xstrdup(path);
	sp->show = show_path(sp->dir);
	for (i = 0; i < sizeof(area_names) / sizeof(area_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", sp->dir, area_names[i]);
		if (mkdir_p(path, 0700) == -1) {
			bsnprintf(why, whylen, "cannot create %s: %s", path,
			    strerror(errno));
			goto fail;
		}
	}
	snprintf(path, sizeof(path), "%s/rewrite", sp->dir);
	if (mkdir_p(path, 0700) == -1) {
		bsnprintf(why, whylen, "cannot create %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/state", sp->dir);
	if (mkdir_p(path, 0700) == -1) {
		bsnprintf(why, whylen, "cannot create %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd == -1) {
		bsnprintf(why, whylen, "cannot open %s: %s", sp->dir,
		    strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	sp->pending_tail = &sp->pending;
	sp->done_tail = &sp->done;
	return sp;
fail:
	free(sp->dir);
	free(sp->show);
	free(sp->data_dir);
	free(sp);
	return NULL;
}

void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->lock);
		sp->stop = 1;
		pthread_cond_signal(&sp->cond);
		pthread_mutex_unlock(&sp->lock);
		pthread_join(sp->thread, NULL);
	}
	if (sp->wake_ev)
		event_free(sp->wake_ev);
	if (sp->wake[0] != -1) {
		close(sp->wake[0]);
		close(sp->wake[1]);
	}
	if (sp->dirfd != -1)
		close(sp->dirfd);
	free(sp->dir);
	free(sp->show);
	free(sp->data_dir);
	free(sp);
}

const char *
spool_data_dir(const struct spool *sp)
{
	return sp->data_dir;
}

void
spool_path(const struct spool *sp, enum spool_area area, uint64_t mid,
    char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/%llu", sp->dir, area_names[area],
	    (unsigned long long)mid);
}

static void
state_path(const struct spool *sp, uint64_t mid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/state/%llu", sp->dir, (unsigned long long)mid);
}

/* ---------------------------------------------------------------- writing */

static struct spool_msg *msg_open(struct spool *, uint64_t, const char *,
		    int, char *, size_t);

/* Create incoming/<mid> with `flags` and set up the writer. */
static struct spool_msg *
msg_create(struct spool *sp, uint64_t mid, int flags, char *why,
    size_t whylen)
{
	char path[4096];

	spool_path(sp, SPOOL_INCOMING, mid, path, sizeof(path));
	return msg_open(sp, mid, path, flags | O_CREAT | O_TRUNC, why, whylen);
}

/* A writer on `path` (opened with oflags | O_CLOEXEC, 0600). */
static struct spool_msg *
msg_open(struct spool *sp, uint64_t mid, const char *path, int oflags,
    char *why, size_t whylen)
{
	struct spool_msg *m;

	m = xcalloc(1, sizeof(*m));
	m->spool = sp;
	m->mid = mid;
	m->slot = -1;
	m->fd = open(path, oflags | O_CLOEXEC, 0600);
	if (m->fd == -1) {
		bsnprintf(why, whylen, "cannot create %s: %s", path,
		    strerror(errno));
		free(m);
		return NULL;
	}
	m->md = EVP_MD_CTX_new();
	if (m->md == NULL || !EVP_DigestInit_ex(m->md, EVP_sha256(), NULL)) {
		bsnprintf(why, whylen, "cannot initialise SHA-256");
		close(m->fd);
		if (oflags & O_TRUNC)
			unlink(path);
		EVP_MD_CTX_free(m->md);
		free(m);
		return NULL;
	}
	m->wbuf = xmalloc(SPOOL_WBUF);
	return m;
}

/* Start receiving a message into incoming/<mid>. */
struct spool_msg *
spool_msg_new(struct spool *sp, uint64_t mid, char *why, size_t whylen)
{
	return msg_create(sp, mid, O_WRONLY, why, whylen);
}

static int
flush_wbuf(struct spool_msg *m)
{
	if (!m->error && m->wlen > 0 && write_full(m->fd, m->wbuf, m->wlen) == -1) {
		log_warn("spool: write of MID %llu failed",
		    (unsigned long long)m->mid);
		m->error = 1;
	}
	m->wlen = 0;
	return m->error ? -1 : 0;
}

/* Append bytes to file and digest (no size accounting). */
static int
append_raw(struct spool_msg *m, const void *p, size_t len)
{
	const char *s = p;

	if (m->error)
		return -1;
	if (!EVP_DigestUpdate(m->md, p, len)) {
		m->error = 1;
		return -1;
	}
	while (len > 0) {
		size_t room = SPOOL_WBUF - m->wlen, n = len < room ? len : room;
		memcpy(m->wbuf + m->wlen, s, n);
		m->wlen += n;
		s += n;
		len -= n;
		if (m->wlen == SPOOL_WBUF && flush_wbuf(m) == -1)
			return -1;
	}
	return 0;
}

int
spool_msg_write(struct spool_msg *m, const void *p, size_t len)
{
	m->size += len;
	return append_raw(m, p, len);
}

static void
msg_free(struct spool_msg *m)
{
	if (m->slot != -1) {
		pthread_mutex_lock(&m->spool->lock);
		m->spool->rw_busy[m->slot] = 0;
		pthread_mutex_unlock(&m->spool->lock);
	}
	if (m->fd != -1)
		close(m->fd);
	EVP_MD_CTX_free(m->md);
	free(m->wbuf);
	free(m);
}

void
spool_msg_abort(struct spool_msg *m)
{
	char path[4096];

	if (m == NULL)
		return;
	/* a scratch slot stays for the next rewrite (whatever it holds) */
	if (m->slot == -1) {
		spool_path(m->spool, SPOOL_INCOMING, m->mid, path, sizeof(path));
		unlink(path);
	}
	msg_free(m);
}

/* Write envelope and footer; leaves the file complete but not yet durable. */
static int
finish_file(struct spool_msg *m, const struct envelope *env)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int diglen = 0, i;
	char footer[FOOTER_MAX];
	size_t envlen;
	int r = -1;

	envelope_encode(env, &sb);
	envlen = sb.len;
	if (append_raw(m, sb.s, sb.len) == -1)
		goto out;
	if (!EVP_DigestFinal_ex(m->md, dig, &diglen))
		goto out;
	i = (unsigned)snprintf(footer, sizeof(footer),
	    "postern-spool 1 %llu %zu ", (unsigned long long)m->size, envlen);
	for (unsigned int k = 0; k < diglen && i + 3 < sizeof(footer); k++)
		i += (unsigned)snprintf(footer + i, sizeof(footer) - i, "%02x",
		    dig[k]);
	footer[i++] = '\n';
	/* The footer is not part of the digest: write it past the hash. */
	if (m->wlen + i > SPOOL_WBUF && flush_wbuf(m) == -1)
		goto out;
	memcpy(m->wbuf + m->wlen, footer, i);
	m->wlen += i;
	r = flush_wbuf(m);
out:
	strbuf_free(&sb);
	return r;
}

/* Commit thread: rename each file of a batch into queue/, one syncfs. */
static void
commit_batch(struct spool *sp, struct spool_msg *batch)
{
	struct spool_msg *m;
	char from[4096], to[4096];
	size_t n;
	int synced;

	for (m = batch; m; m = m->next) {
		m->ok = 0;
		if (m->error)
			continue;
		spool_path(sp, SPOOL_INCOMING, m->mid, from, sizeof(from));
		spool_path(sp, SPOOL_QUEUE, m->mid, to, sizeof(to));
		if (close(m->fd) == -1) {
			m->fd = -1;
			continue;
		}
		m->fd = -1;
		if (rename(from, to) == 0)
			m->ok = 1;
	}
	/* One flush covers data, inodes and directory entries of the batch. */
	synced = syncfs(sp->dirfd) == 0;
	if (!synced)
		log_warn("spool: flushing %s failed; the batch is refused",
		    sp->dir);
	for (n = 0, m = batch; m; m = m->next)
		n++;
	log_debug("spool: group commit of %zu messages in one flush", n);
	for (m = batch; m; m = m->next) {
		if (m->ok && synced)
			continue;
		spool_path(sp, SPOOL_INCOMING, m->mid, from, sizeof(from));
		spool_path(sp, SPOOL_QUEUE, m->mid, to, sizeof(to));
		unlink(m->ok ? to : from);
		m->ok = 0;
	}
}

static void *
commit_thread(void *arg)
{
	struct spool *sp = arg;
	struct spool_msg *batch, *last;
	char c = 1;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (sp->pending == NULL && !sp->stop)
			pthread_cond_wait(&sp->cond, &sp->lock);
		if (sp->pending == NULL && sp->stop)
			break;
		batch = sp->pending;
		sp->pending = NULL;
		sp->pending_tail = &sp->pending;
		pthread_mutex_unlock(&sp->lock);
		commit_batch(sp, batch);
		for (last = batch; last->next; last = last->next)
			;
		pthread_mutex_lock(&sp->lock);
		*sp->done_tail = batch;
		sp->done_tail = &last->next;
		pthread_mutex_unlock(&sp->lock);
		while (write(sp->wake[1], &c, 1) == -1 && errno == EINTR)
			;
		pthread_mutex_lock(&sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

/* Event loop side: run the callbacks of committed batches. */
static void
commit_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	struct spool_msg *m, *next;
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&sp->lock);
	m = sp->done;
	sp->done = NULL;
	sp->done_tail = &sp->done;
	pthread_mutex_unlock(&sp->lock);
	for (; m; m = next) {
		next = m->next;
		m->cb(m->cb_arg, m->mid, m->ok);
		msg_free(m);
	}
}

int
spool_attach_loop(struct spool *sp, struct event_base *base)
{
	if (pipe2(sp->wake, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	sp->wake_ev = event_new(base, sp->wake[0], EV_READ | EV_PERSIST,
	    commit_done_cb, sp);
	if (sp->wake_ev == NULL || event_add(sp->wake_ev, NULL) == -1)
		return -1;
	if (pthread_create(&sp->thread, NULL, commit_thread, sp) != 0)
		return -1;
	sp->thread_started = 1;
	return 0;
}

void
spool_msg_commit(struct spool_msg *m, const struct envelope *env,
    spool_commit_cb cb, void *arg)
{
	struct spool *sp = m->spool;

	m->cb = cb;
	m->cb_arg = arg;
	if (!m->error && (m->wlen > 0 && flush_wbuf(m) == -1))
		m->error = 1;
	if (!m->error && finish_file(m, env) == -1)
		m->error = 1;
	pthread_mutex_lock(&sp->lock);
	*sp->pending_tail = m;
	sp->pending_tail = &m->next;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
}

int
spool_inject(struct spool *sp, struct envelope *env, const char *data,
    size_t len, char *why, size_t whylen)
{
	struct spool_msg *m;
	char from[4096], to[4096];
	struct stat st;
	int fd, r, e;

	if (env->mid == 0) {
		bsnprintf(why, whylen, "spool: inject without a MID");
		return -1;
	}
	spool_path(sp, SPOOL_QUEUE, env->mid, to, sizeof(to));
	if (lstat(to, &st) == 0) {
		bsnprintf(why, whylen, "spool: MID %llu already exists",
		    (unsigned long long)env->mid);
		return -1;
	}
	if ((m = spool_msg_new(sp, env->mid, why, whylen)) == NULL)
		return -1;
	env->msg_size = len;
	spool_msg_write(m, data, len);
	if (flush_wbuf(m) == -1 || finish_file(m, env) == -1) {
		bsnprintf(why, whylen, "spool: cannot write MID %llu into %s",
		    (unsigned long long)env->mid, sp->dir);
		spool_msg_abort(m);
		return -1;
	}
	fd = m->fd;
	m->fd = -1;
	r = fsync(fd);
	e = errno;
	if (close(fd) == -1 && r == 0) {
		r = -1;
		e = errno;
	}
	if (r == -1) {
		bsnprintf(why, whylen, "spool: cannot flush MID %llu: %s",
		    (unsigned long long)env->mid, strerror(e));
		spool_msg_abort(m);
		return -1;
	}
	spool_path(sp, SPOOL_INCOMING, env->mid, from, sizeof(from));
	if (rename(from, to) == -1) {
		bsnprintf(why, whylen, "spool: cannot move MID %llu into the "
		    "queue: %s", (unsigned long long)env->mid, strerror(errno));
		spool_msg_abort(m);
		return -1;
	}
	msg_free(m);
	/* The new entry in queue/ and the old one gone from incoming/. */
	snprintf(from, sizeof(from), "%s/%s", sp->dir,
	    area_names[SPOOL_QUEUE]);
	snprintf(to, sizeof(to), "%s/%s", sp->dir, area_names[SPOOL_INCOMING]);
	if (fsync_dir(from) == -1 || fsync_dir(to) == -1) {
		bsnprintf(why, whylen, "spool: cannot flush %s: %s", from,
		    strerror(errno));
		spool_path(sp, SPOOL_QUEUE, env->mid, to, sizeof(to));
		unlink(to);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ rewriting */

/* A free scratch slot, taken; -1 when none (or no exchange). */
static int
rw_slot_take(struct spool *sp)
{
	int k;

	pthread_mutex_lock(&sp->lock);
	for (k = 0; k < SPOOL_RW_SLOTS && (sp->rw_plain || sp->rw_busy[k]); k++)
		;
	if (k < SPOOL_RW_SLOTS)
		sp->rw_busy[k] = 1;
	pthread_mutex_unlock(&sp->lock);
	return k < SPOOL_RW_SLOTS ? k : -1;
}

static void
rw_slot_path(const struct spool *sp, int k, char *buf, size_t len)
{
	snprintf(buf, len, "%s/rewrite/rw.%d", sp->dir, k);
}

/*
 * The new copy in scratch slot k: the file is reused as it is (its
 * blocks overwritten from the start, cut to size at the end), locked.
 * NULL with why when it cannot be opened; NULL with *busy set when it
 * is still locked (a job has not let go of the copy it replaced: the
 * caller takes the plain way).
 */
static struct spool_msg *
rw_slot_open(struct spool *sp, uint64_t mid, int k, int *busy, char *why,
    size_t whylen)
{
	struct spool_msg *m;
	char path[4096];

	*busy = 0;
	rw_slot_path(sp, k, path, sizeof(path));
	if ((m = msg_open(sp, mid, path, O_RDWR | O_CREAT, why,
	    whylen)) == NULL) {
		pthread_mutex_lock(&sp->lock);
		sp->rw_busy[k] = 0;
		pthread_mutex_unlock(&sp->lock);
		return NULL;
	}
	m->slot = k;
	if (flock(m->fd, LOCK_EX | LOCK_NB) == -1) {
		*busy = 1;
		msg_free(m);
		return NULL;
	}
	return m;
}

/* Start the new copy of a queued message, locked: in a scratch slot,
 * else in incoming/<MID>. */
struct spool_msg *
spool_rewrite_new(struct spool *sp, uint64_t mid, char *why, size_t whylen)
{
	struct spool_msg *m;
	int k, busy;

	if ((k = rw_slot_take(sp)) != -1) {
		m = rw_slot_open(sp, mid, k, &busy, why, whylen);
		if (m != NULL || !busy)
			return m;
	}
	if ((m = msg_create(sp, mid, O_RDWR, why, whylen)) == NULL)
		return NULL;
	/* Locked before it has its queue/ name: `postern queue delete`
	 * never sees it unlocked while the queue manager holds it. */
	if (flock(m->fd, LOCK_EX | LOCK_NB) == -1) {
		bsnprintf(why, whylen, "cannot lock the new copy of MID %llu: "
		    "%s", (unsigned long long)mid, strerror(errno));
		spool_msg_abort(m);
		return NULL;
	}
	return m;
}

/* Append envelope and footer to a new copy. */
int
spool_rewrite_finish(struct spool_msg *m, const struct envelope *env,
    char *why, size_t whylen)
{
	if (env->mid != m->mid || env->msg_size != m->size) {
		bsnprintf(why, whylen, "spool: the envelope of MID %llu does "
		    "not match its new content", (unsigned long long)m->mid);
		return -1;
	}
	/* a reused scratch file is cut to what was written */
	if (flush_wbuf(m) == -1 || finish_file(m, env) == -1 ||
	    (m->slot != -1 && ftruncate(m->fd, lseek(m->fd, 0, SEEK_CUR)) ==
	    -1)) {
		bsnprintf(why, whylen, "spool: cannot write the new copy of MID "
		    "%llu into %s/%s: %s", (unsigned long long)m->mid,
		    m->spool->dir, m->slot != -1 ? "rewrite" : "incoming",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Put the new copy at queue/<MID>: swap names with the old one (which
 * stays as the slot's scratch file), or rename it over. 0 or -1. */
static int
rw_put(struct spool *sp, struct spool_msg *m, const char *to)
{
	char from[4096];

	if (m->slot == -1) {
		spool_path(sp, SPOOL_INCOMING, m->mid, from, sizeof(from));
		return rename(from, to);
	}
	rw_slot_path(sp, m->slot, from, sizeof(from));
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return -1;
	pthread_mutex_lock(&sp->lock);
	sp->rw_plain = 1;	/* this file system cannot swap names */
	pthread_mutex_unlock(&sp->lock);
	return rename(from, to);
}

static void
rewrite_failed(struct spool_msg *m, const char *what, int err)
{
	m->ok = 0;
	m->failed = what;
	m->err = err;
}

/* One syncfs, a rename each, one fsync of queue/ for a batch. */
void
spool_rewrite_commit(struct spool *sp, struct spool_msg **msgs, size_t n)
{
	char to[4096];
	size_t i, renamed = 0;
	int e;

	if (n == 0)
		return;
	/* The data of every new copy is on disk before any replaces its
	 * original: one flush for the whole batch. */
	if (syncfs(sp->dirfd) == -1) {
		e = errno;
		log_warn("spool: flushing %s failed; %zu rewritten messages "
		    "keep their original", sp->dir, n);
		for (i = 0; i < n; i++)
			rewrite_failed(msgs[i], "flushing the spool", e);
		return;
	}
	for (i = 0; i < n; i++) {
		if (msgs[i]->error) {
			rewrite_failed(msgs[i], "writing", EIO);
			continue;
		}
		spool_path(sp, SPOOL_QUEUE, msgs[i]->mid, to, sizeof(to));
		if (rw_put(sp, msgs[i], to) == -1) {
			rewrite_failed(msgs[i], "renaming into the queue", errno);
			continue;
		}
		msgs[i]->ok = msgs[i]->renamed = 1;
		renamed++;
	}
	if (renamed == 0)
		return;
	/* One flush of queue/ covers every rename into it. */
	snprintf(to, sizeof(to), "%s/%s", sp->dir, area_names[SPOOL_QUEUE]);
	if (fsync_dir(to) == -1) {
		e = errno;
		log_warn("spool: flushing %s failed", to);
		for (i = 0; i < n; i++)
			if (msgs[i]->ok)
				rewrite_failed(msgs[i], "flushing the queue "
				    "directory", e);
	}
}

/* Outcome of one committed rewrite; hands over its descriptor. */
int
spool_rewrite_result(struct spool_msg *m, int *fd, char *why, size_t whylen)
{
	int durable = m->ok;

	if (m->renamed) {
		(void)lseek(m->fd, 0, SEEK_SET);
		*fd = m->fd;
		m->fd = -1;
		if (!durable)
			bsnprintf(why, whylen, "spool: MID %llu was rewritten "
			    "but %s failed: %s", (unsigned long long)m->mid,
			    m->failed, strerror(m->err));
		msg_free(m);
		return durable ? 1 : 0;
	}
	bsnprintf(why, whylen, "spool: cannot replace MID %llu: %s failed: %s",
	    (unsigned long long)m->mid, m->failed ? m->failed : "commit",
	    strerror(m->failed ? m->err : EINVAL));
	/* Only incoming/<MID> goes: queue/<MID> is the old file, whole. */
	spool_msg_abort(m);
	return -1;
}

/* ---------------------------------------------------------- free space */

/* Refresh the cached statvfs result when older than SPOOL_SPACE_TTL. */
static int
space_refresh(struct spool *sp, double now)
{
	struct statvfs vfs;

	if (sp->space_valid && now >= sp->space_at &&
	    now - sp->space_at < SPOOL_SPACE_TTL)
		return 0;
	if (fstatvfs(sp->dirfd, &vfs) == -1) {
		sp->space_valid = 0;
		log_debug("spool: statvfs of %s failed: %s", sp->dir,
		    strerror(errno));
		return -1;
	}
	sp->space_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	/* Some file systems (btrfs) do not count inodes: f_files is 0. */
	sp->space_inodes = vfs.f_files > 0 ? (uint64_t)vfs.f_favail :
	    UINT64_MAX;
	sp->space_at = now;
	sp->space_valid = 1;
	return 0;
}

/* Log the start and the end of a FULL episode, once each. */
static void
space_episode(struct spool *sp, int full, uint64_t reserve)
{
	char bytes[32], inodes[32], min[32];

	if (full == sp->space_full)
		return;
	sp->space_full = full;
	snprintf(bytes, sizeof(bytes), "%llu",
	    (unsigned long long)sp->space_bytes);
	snprintf(min, sizeof(min), "%llu", (unsigned long long)reserve);
	if (sp->space_inodes == UINT64_MAX)
		bstrlcpy(inodes, "uncounted", sizeof(inodes));
	else
		snprintf(inodes, sizeof(inodes), "%llu",
		    (unsigned long long)sp->space_inodes);
	if (full)
		mlog(LOG_LVL_WARNING, "spool_full", "Spool {dir} nearly full: "
		    "{bytes} bytes free ({inodes} inodes), limits."
		    "spool_min_free {min}; MAIL gets 452 4.3.1 until space is "
		    "freed", "dir", sp->show, "bytes", bytes, "inodes", inodes,
		    "min", min, NULL);
	else
		mlog(LOG_LVL_INFO, "spool_room", "Spool {dir} has room again: "
		    "{bytes} bytes free ({inodes} inodes)", "dir", sp->show,
		    "bytes", bytes, "inodes", inodes, NULL);
}

/* Room at MAIL for `size` octets above the reserve? (cached statvfs) */
enum spool_room
spool_has_room(struct spool *sp, uint64_t size, uint64_t reserve, double now)
{
	int full;

	if (space_refresh(sp, now) == -1)
		return SPOOL_ROOM_OK;
	full = sp->space_bytes < reserve ||
	    sp->space_inodes < SPOOL_MIN_INODES;
	space_episode(sp, full, reserve);
	if (full)
		return SPOOL_ROOM_FULL;
	if (size > sp->space_bytes - reserve)
		return SPOOL_ROOM_SIZE;
	return SPOOL_ROOM_OK;
}

/* ---------------------------------------------------------------- reading */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
parse_mid(const char *name, uint64_t *mid)
{
	uint64_t v = 0;
	const char *p;

	if (*name == '\0' || strlen(name) > 19)
		return -1;
	for (p = name; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*mid = v;
	return 0;
}

int
spool_list(const struct spool *sp, enum spool_area area, uint64_t **mids,
    size_t *n)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	size_t cap = 0;
	uint64_t mid;

	*mids = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/%s", sp->dir, area_names[area]);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (parse_mid(de->d_name, &mid) == -1)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*mids = xrealloc(*mids, cap * sizeof(**mids));
		}
		(*mids)[(*n)++] = mid;
	}
	closedir(d);
	if (*n > 1)
		qsort(*mids, *n, sizeof(**mids), cmp_u64);
	return 0;
}

/* Parse the footer at the end of an open spool file. */
static int
read_footer(int fd, off_t fsize, uint64_t *msglen, size_t *envlen,
    char *hex, size_t hexlen)
{
	char buf[FOOTER_MAX + 1], *line;
	unsigned long long ml;
	size_t el;
	off_t off;
	ssize_t n;

	off = fsize > FOOTER_MAX ? fsize - FOOTER_MAX : 0;
	n = pread(fd, buf, (size_t)(fsize - off), off);
	if (n <= 0 || n != fsize - off || buf[n - 1] != '\n')
		return -1;
	buf[n - 1] = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (sscanf(line, "postern-spool 1 %llu %zu %64s", &ml, &el, hex) != 3 ||
	    strlen(hex) != 64 || hexlen < 65)
		return -1;
	if ((uint64_t)fsize != ml + el + strlen(line) + 1)
		return -1;
	*msglen = ml;
	*envlen = el;
	return 0;
}

static int
verify_digest(int fd, uint64_t len, const char *hex)
{
	unsigned char dig[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int diglen = 0, i;
	char got[2 * EVP_MAX_MD_SIZE + 1];
	EVP_MD_CTX *md;
	uint64_t off = 0;
	ssize_t n;
	int r = -1;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		goto out;
	while (off < len) {
		size_t want = len - off > sizeof(buf) ? sizeof(buf) :
		    (size_t)(len - off);
		n = pread(fd, buf, want, (off_t)off);
		if (n <= 0)
			goto out;
		EVP_DigestUpdate(md, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (!EVP_DigestFinal_ex(md, dig, &diglen))
		goto out;
	for (i = 0; i < diglen; i++)
		snprintf(got + 2 * i, 3, "%02x", dig[i]);
	r = strcmp(got, hex) == 0 ? 0 : -1;
out:
	EVP_MD_CTX_free(md);
	return r;
}

int
spool_open_msg(const struct spool *sp, enum spool_area area, uint64_t mid,
    int verify, struct envelope *env, char *why, size_t whylen)
{
	char path[4096], hex[65], ewhy[128], *envbuf = NULL;
	uint64_t msglen;
	size_t envlen;
	struct stat st;
	int fd;

	envelope_init(env);
	spool_path(sp, area, mid, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		bsnprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 ||
	    read_footer(fd, st.st_size, &msglen, &envlen, hex, sizeof(hex))) {
		bsnprintf(why, whylen, "%s: incomplete spool file (no footer)",
		    path);
		goto fail;
	}
	if (envlen > 16 * 1024 * 1024) {
		bsnprintf(why, whylen, "%s: envelope too large", path);
		goto fail;
	}
	envbuf = xmalloc(envlen + 1);
	if (pread(fd, envbuf, envlen, (off_t)msglen) != (ssize_t)envlen) {
		bsnprintf(why, whylen, "%s: short read", path);
		goto fail;
	}
	if (envelope_decode(envbuf, envlen, env, ewhy, sizeof(ewhy)) == -1) {
		bsnprintf(why, whylen, "%s: bad envelope: %s", path, ewhy);
		goto fail;
	}
	if (env->mid != mid || env->msg_size != msglen) {
		bsnprintf(why, whylen, "%s: envelope does not match file", path);
		goto fail;
	}
	if (verify && verify_digest(fd, msglen + envlen, hex) == -1) {
		bsnprintf(why, whylen, "%s: checksum mismatch", path);
		goto fail;
	}
	free(envbuf);
	return fd;
fail:
	envelope_clear(env);
	free(envbuf);
	close(fd);
	errno = EINVAL;
	return -1;
}

int
spool_move(const struct spool *sp, uint64_t mid, enum spool_area from,
    enum spool_area to)
{
	char a[4096], b[4096];

	spool_path(sp, from, mid, a, sizeof(a));
	spool_path(sp, to, mid, b, sizeof(b));
	if (rename(a, b) == -1)
		return -1;
	/* Both directory entries must be durable: the old one gone, the new
	 * one present. */
	snprintf(a, sizeof(a), "%s/%s", sp->dir, area_names[from]);
	snprintf(b, sizeof(b), "%s/%s", sp->dir, area_names[to]);
	return fsync_dir(a) == 0 && fsync_dir(b) == 0 ? 0 : -1;
}

int
spool_remove(const struct spool *sp, enum spool_area area, uint64_t mid)
{
	char path[4096];
	int r;

	spool_path(sp, area, mid, path, sizeof(path));
	r = unlink(path);
	state_path(sp, mid, path, sizeof(path));
	unlink(path);
	return r;
}

int
spool_find(const struct spool *sp, uint64_t mid)
{
	static const enum spool_area order[] = { SPOOL_QUEUE, SPOOL_HOLD,
	    SPOOL_CORRUPT };
	char path[4096];
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		spool_path(sp, order[i], mid, path, sizeof(path));
		if (access(path, F_OK) == 0)
			return (int)order[i];
	}
	return -1;
}

uint64_t
spool_max_mid(const struct spool *sp)
{
	uint64_t max = 0, *mids;
	size_t n, i;
	int a;

	for (a = SPOOL_INCOMING; a <= SPOOL_CORRUPT; a++) {
		if (spool_list(sp, (enum spool_area)a, &mids, &n) == -1)
			continue;
		for (i = 0; i < n; i++)
			if (mids[i] > max)
				max = mids[i];
		free(mids);
	}
	return max;
}

void
spool_clean_incoming(const struct spool *sp)
{
	char path[4096];
	uint64_t *mids;
	size_t n, i;
	int k;

	/* the rewrite scratch files too: they hold nothing to keep */
	for (k = 0; k < SPOOL_RW_SLOTS; k++) {
		rw_slot_path(sp, k, path, sizeof(path));
		(void)unlink(path);
	}
	if (spool_list(sp, SPOOL_INCOMING, &mids, &n) == -1)
		return;
	for (i = 0; i < n; i++) {
		spool_path(sp, SPOOL_INCOMING, mids[i], path, sizeof(path));
		unlink(path);
	}
	free(mids);
}

/* ------------------------------------------------------ delivery state */

/* A word a state line can carry: printable, no space, not empty. */
static int
state_word(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return i > 0;
}

/* "cause IDX NAME PORT HOST" (written after the recipient's rcpt line;
 * readers before it skip such lines). */
static void
state_cause(const char *line, struct rcpt_state *st, size_t n)
{
	unsigned long long idx;
	char name[40], host[256];
	int port;

	if (sscanf(line, "cause %llu %39s %d %255s", &idx, name, &port,
	    host) != 4 || idx >= n || port < 0 || port > 65535)
		return;
	bstrlcpy(st[idx].cause, name, sizeof(st[idx].cause));
	bstrlcpy(st[idx].cause_host, strcmp(host, "-") ? host : "",
	    sizeof(st[idx].cause_host));
	st[idx].cause_port = port;
}

int
spool_state_read(const struct spool *sp, uint64_t mid, struct rcpt_state *st,
    size_t n)
{
	char path[4096], *buf, *line, *save = NULL, err[512];
	unsigned long long idx;
	long long next;
	int status, attempts;
	size_t len;

	memset(st, 0, n * sizeof(*st));
	state_path(sp, mid, path, sizeof(path));
	if ((buf = read_file(path, &len, 16 * 1024 * 1024)) == NULL)
		return errno == ENOENT ? 0 : -1;
	for (line = strtok_r(buf, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "cause ", 6) == 0) {
			state_cause(line, st, n);
			continue;
		}
		err[0] = '\0';
		if (sscanf(line, "rcpt %llu %d %d %lld %511[^\n]", &idx, &status,
		    &attempts, &next, err) < 4 || idx >= n || status < 0 ||
		    status > RCPT_FAILED)
			continue;
		st[idx].status = (enum rcpt_status)status;
		st[idx].attempts = attempts;
		st[idx].next_attempt = next;
		bstrlcpy(st[idx].last_error, strcmp(err, "-") ? err : "",
		    sizeof(st[idx].last_error));
	}
	free(buf);
	return 0;
}

int
spool_state_write(const struct spool *sp, uint64_t mid,
    const struct rcpt_state *st, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	char path[4096];
	size_t i, k;
	int r;

	strbuf_puts(&sb, "postern-state 1\n");
	for (i = 0; i < n; i++) {
		strbuf_printf(&sb, "rcpt %zu %d %d %lld ", i, (int)st[i].status,
		    st[i].attempts, (long long)st[i].next_attempt);
		if (st[i].last_error[0] == '\0')
			strbuf_putc(&sb, '-');
		for (k = 0; st[i].last_error[k]; k++) {
			unsigned char c = (unsigned char)st[i].last_error[k];
			strbuf_putc(&sb, c < 0x20 ? ' ' : (char)c);
		}
		strbuf_putc(&sb, '\n');
		if (state_word(st[i].cause) && (st[i].cause_host[0] == '\0' ||
		    state_word(st[i].cause_host)))
			strbuf_printf(&sb, "cause %zu %s %d %s\n", i, st[i].cause,
			    st[i].cause_port, st[i].cause_host[0] ?
			    st[i].cause_host : "-");
	}
	state_path(sp, mid, path, sizeof(path));
	r = write_file_atomic(path, sb.s, sb.len, 0600);
	strbuf_free(&sb);
	return r;
}

/* ---------------------------------------------------------- pause flag */

int
spool_paused(const struct spool *sp)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/paused", sp->dir);
	return access(path, F_OK) == 0;
}

int
spool_set_paused(const struct spool *sp, int on)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/paused", sp->dir);
	if (on)
		return write_file_atomic(path, "paused\n", 7, 0600);
	if (unlink(path) == -1 && errno != ENOENT)
		return -1;
	return fsync(sp->dirfd);
}
