/*
 * daemon_status.c - <data_dir>/postern.status (see daemon_status.h).
 *
 * Public: daemon_status_create, daemon_status_set_config,
 * daemon_status_set_reload, daemon_status_set_children,
 * daemon_status_stopped, daemon_status_tls_failure, daemon_status_copy,
 * daemon_status_read, daemon_status_pid.
 *
 * Layout: a header (magic, layout version, size), the master's block
 * under a sequence lock (odd while it is being written), a running flag,
 * and the TLS failure ring: a counter of failures ever recorded and
 * DSTATUS_TLS_FAILURES slots, each with its own sequence.  The file is
 * made under a temporary name and renamed into place, so a reader never
 * maps a file that is being cut to size.
 *
 * Threats: the file is written by Postern only (0600 in the 0700
 * data_dir), but a reader checks magic, layout and size before it trusts
 * the mapping, and bounds every count it copies.  Strings in it come
 * from the configuration and from remote servers (TLS failure reasons,
 * host names): the readers print them as data only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_status.h"
#include "util.h"

#define DSTATUS_MAGIC	"postern-status"
#define DSTATUS_LAYOUT	1
#define READ_TRIES	1000

struct ring_slot {
	_Atomic uint32_t		seq;
	struct dstatus_tls_failure	f;
};

struct shared {
	char			magic[16];
	uint32_t		layout;
	uint32_t		size;
	_Atomic uint32_t	seq;
	_Atomic uint32_t	running;
	struct dstatus_block	b;
	_Atomic uint64_t	tls_next;
	struct ring_slot	ring[DSTATUS_TLS_FAILURES];
};

static struct shared *st;	/* this process's mapping, or NULL */

/* ------------------------------------------------------------ writing */

static void
write_begin(void)
{
	atomic_fetch_add_explicit(&st->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void
write_end(void)
{
	atomic_fetch_add_explicit(&st->seq, 1, memory_order_release);
}

/* Master: make <data_dir>/postern.status afresh and map it. */
int
daemon_status_create(const char *data_dir, char *why, size_t whylen)
{
	char path[4096], tmp[4200];
	void *p;
	int fd;

	if (bsnprintf(path, sizeof(path), "%s/%s", data_dir, DSTATUS_FILE) ||
	    bsnprintf(tmp, sizeof(tmp), "%s.tmp", path)) {
		bsnprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 || ftruncate(fd, sizeof(*st)) == -1 ||
	    (p = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0)) == MAP_FAILED) {
		bsnprintf(why, whylen, "cannot create %s: %s", tmp,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		(void)unlink(tmp);
		return -1;
	}
	close(fd);
	st = p;		/* zero-filled by ftruncate */
	memcpy(st->magic, DSTATUS_MAGIC, sizeof(DSTATUS_MAGIC));
	st->layout = DSTATUS_LAYOUT;
	st->size = sizeof(*st);
	st->b.pid = getpid();
	st->b.started = wall_now();
	bstrlcpy(st->b.version, POSTERN_VERSION, sizeof(st->b.version));
	atomic_store(&st->running, 1);
	if (rename(tmp, path) == -1) {
		bsnprintf(why, whylen, "cannot rename %s to %s: %s", tmp, path,
		    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

static void
set_listeners(const struct conf *c)
{
	struct dstatus_listener *d;
	size_t i;

	st->b.nlisteners = c->nlisteners < DSTATUS_MAX_LISTENERS ?
	    c->nlisteners : DSTATUS_MAX_LISTENERS;
	for (i = 0; i < st->b.nlisteners; i++) {
		d = &st->b.listeners[i];
		bstrlcpy(d->name, c->listeners[i].name, sizeof(d->name));
		bstrlcpy(d->address, c->listeners[i].address,
		    sizeof(d->address));
		d->port = c->listeners[i].port;
		bstrlcpy(d->tls, conf_listener_tls_name(c->listeners[i].tls),
		    sizeof(d->tls));
		bstrlcpy(d->auth, c->listeners[i].auth == LISTENER_AUTH_OFF ?
		    "off" : c->listeners[i].auth == LISTENER_AUTH_OPTIONAL ?
		    "optional" : "required", sizeof(d->auth));
		d->proxy_protocol = c->listeners[i].proxy_protocol;
	}
}

/* Master: this generation's configuration facts. */
void
daemon_status_set_config(const struct conf *c, int workers, int generation,
    const struct dstatus_cert *certs, size_t ncerts)
{
	if (st == NULL)
		return;
	write_begin();
	bstrlcpy(st->b.conf_path, c->path, sizeof(st->b.conf_path));
	st->b.workers = workers;
	st->b.generation = generation;
	st->b.metrics_port = c->metrics_port;
	bstrlcpy(st->b.metrics_address, c->metrics_port ? c->metrics_address :
	    "", sizeof(st->b.metrics_address));
	set_listeners(c);
	st->b.ncerts = ncerts < DSTATUS_MAX_CERTS ? ncerts : DSTATUS_MAX_CERTS;
	memcpy(st->b.certs, certs, st->b.ncerts * sizeof(*certs));
	write_end();
}

/* Master: the outcome of the last SIGHUP. */
void
daemon_status_set_reload(int refused, int64_t when)
{
	if (st == NULL)
		return;
	write_begin();
	st->b.reload_refused = refused;
	if (!refused)
		st->b.reloaded = when;
	write_end();
}

/* Master: the children as they are now. */
void
daemon_status_set_children(const struct dstatus_child *v, size_t n)
{
	if (st == NULL)
		return;
	write_begin();
	st->b.nchildren = n < DSTATUS_MAX_CHILDREN ? n : DSTATUS_MAX_CHILDREN;
	memcpy(st->b.children, v, st->b.nchildren * sizeof(*v));
	write_end();
}

/* Master: a clean stop. */
void
daemon_status_stopped(void)
{
	if (st != NULL)
		atomic_store(&st->running, 0);
}

/* Queue manager: add a delivery TLS failure to the ring. */
void
daemon_status_tls_failure(const char *domain, const char *host,
    const char *reason)
{
	struct ring_slot *r;
	uint64_t k;

	if (st == NULL)
		return;
	k = atomic_fetch_add(&st->tls_next, 1);
	r = &st->ring[k % DSTATUS_TLS_FAILURES];
	atomic_fetch_add_explicit(&r->seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	r->f.when = wall_now();
	bstrlcpy(r->f.domain, domain, sizeof(r->f.domain));
	bstrlcpy(r->f.host, host, sizeof(r->f.host));
	bstrlcpy(r->f.reason, reason, sizeof(r->f.reason));
	atomic_fetch_add_explicit(&r->seq, 1, memory_order_release);
}

/* ------------------------------------------------------------ reading */

/* Copy `len` bytes guarded by *seq; 0, or -1 when a writer kept it busy. */
static int
seq_copy(const _Atomic uint32_t *seq, void *dst, const void *src, size_t len)
{
	uint32_t a, b;
	int i;

	for (i = 0; i < READ_TRIES; i++) {
		a = atomic_load_explicit(seq, memory_order_acquire);
		if (a & 1)
			continue;
		memcpy(dst, src, len);
		atomic_thread_fence(memory_order_acquire);
		b = atomic_load_explicit(seq, memory_order_relaxed);
		if (a == b)
			return 0;
	}
	return -1;
}

/* The ring, newest first. */
static void
copy_ring(const struct shared *s, struct dstatus *out)
{
	uint64_t next = atomic_load(&s->tls_next), k;
	const struct ring_slot *r;
	size_t j;

	out->ntls = 0;
	for (j = 0; j < DSTATUS_TLS_FAILURES && j < next; j++) {
		k = next - 1 - j;
		r = &s->ring[k % DSTATUS_TLS_FAILURES];
		if (seq_copy(&r->seq, &out->tls[out->ntls], &r->f,
		    sizeof(r->f)) == 0)
			out->ntls++;
	}
}

static int
copy_from(const struct shared *s, struct dstatus *out)
{
	memset(out, 0, sizeof(*out));
	if (seq_copy(&s->seq, &out->b, &s->b, sizeof(s->b)) == -1)
		return -1;
	/* bounded whatever the file says */
	if (out->b.nlisteners > DSTATUS_MAX_LISTENERS)
		out->b.nlisteners = DSTATUS_MAX_LISTENERS;
	if (out->b.ncerts > DSTATUS_MAX_CERTS)
		out->b.ncerts = DSTATUS_MAX_CERTS;
	if (out->b.nchildren > DSTATUS_MAX_CHILDREN)
		out->b.nchildren = DSTATUS_MAX_CHILDREN;
	out->running = atomic_load(&s->running) != 0;
	copy_ring(s, out);
	return 0;
}

/* Copy this process's inherited mapping. */
int
daemon_status_copy(struct dstatus *out)
{
	return st == NULL ? -1 : copy_from(st, out);
}

/* Map the status file of data_dir read-only and copy it. */
int
daemon_status_read(const char *data_dir, struct dstatus *out, char *why,
    size_t whylen)
{
	char path[4096];
	struct stat sb;
	void *p;
	int fd, r;

	if (bsnprintf(path, sizeof(path), "%s/%s", data_dir, DSTATUS_FILE)) {
		bsnprintf(why, whylen, "data_dir path too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		bsnprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || (size_t)sb.st_size < sizeof(struct shared) ||
	    (p = mmap(NULL, sizeof(struct shared), PROT_READ, MAP_SHARED, fd,
	    0)) == MAP_FAILED) {
		bsnprintf(why, whylen, "%s: not a status file of this version "
		    "of postern", path);
		close(fd);
		errno = EINVAL;
		return -1;
	}
	close(fd);
	r = -1;
	if (memcmp(((struct shared *)p)->magic, DSTATUS_MAGIC,
	    sizeof(DSTATUS_MAGIC)) != 0 ||
	    ((struct shared *)p)->layout != DSTATUS_LAYOUT) {
		bsnprintf(why, whylen, "%s: not a status file of this version "
		    "of postern", path);
		errno = EINVAL;
	} else if ((r = copy_from(p, out)) == -1) {
		bsnprintf(why, whylen, "%s: always being written", path);
		errno = EBUSY;
	}
	munmap(p, sizeof(struct shared));
	return r;
}

/* Is `pid` a running `postern serve`?  (A pid file can outlive its
 * daemon, and the number may belong to another process by now.) */
static int
is_postern_serve(long pid)
{
	char path[64], *buf, *p;
	size_t len;
	int found_bin = 0, found_serve = 0;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if ((buf = read_file(path, &len, 65536)) == NULL)
		return 0;
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		const char *base = strrchr(p, '/');
		if (strcmp(base ? base + 1 : p, "postern") == 0)
			found_bin = 1;
		else if (found_bin && strcmp(p, "serve") == 0)
			found_serve = 1;
	}
	free(buf);
	return found_bin && found_serve;
}

/* The pid of the serve running on data_dir, or 0. */
long
daemon_status_pid(const char *data_dir)
{
	char path[4096], *buf;
	long pid;

	if (bsnprintf(path, sizeof(path), "%s/postern.pid", data_dir) ||
	    (buf = read_file(path, NULL, 64)) == NULL)
		return 0;
	pid = strtol(buf, NULL, 10);
	free(buf);
	return pid > 1 && is_postern_serve(pid) ? pid : 0;
}
