/*
 * diskbench.c - the physical limit of `make bench` (bench/README.md): how
 * many durable small writes per second the file system holding DIR takes.
 *
 * Modes (one op = one record of --size bytes made durable):
 *   create  open a new file, write, fsync, close
 *   spool   write tmp/N, fsync, close, rename to new/N, fsync the new/
 *           directory: what a queue does before it may answer 250
 *   append  append to one file per writer, fdatasync (a log-structured
 *           queue's cost)
 * Each of --writers processes works in its own directory DIR/wK; each stops
 * after --ops records or --seconds seconds, whichever comes first.  The
 * files are removed afterwards (untimed).
 * Output: one line "mode= writers= ops= secs= ops_per_s= p50_us= p99_us=
 * max_us=", latencies over all writers.
 * Limits: at most 64 writers, 1,000,000 ops each, records of 1 MiB.
 * Threats: none; it writes only under DIR, which it creates.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DB_WRITERS_MAX	64
#define DB_OPS_MAX	1000000
#define DB_SIZE_MAX	(1024 * 1024)

enum db_mode { DB_CREATE, DB_SPOOL, DB_APPEND };

/* One op of a mode: make record SEQ durable in directory D. */
typedef int (*db_op_fn)(const char *, long, const char *, size_t, int *);

struct db_opts {
	const char	*dir;
	enum db_mode	 mode;
	int		 writers;
	long		 ops;
	int		 seconds;
	size_t		 size;
};

/* Shared with the writer processes (MAP_SHARED): their results. */
struct db_shared {
	long		 done[DB_WRITERS_MAX];
	int		 failed[DB_WRITERS_MAX];
	uint32_t	 lat_us[];	/* writers * ops */
};

static const char *const db_mode_names[] = { "create", "spool", "append" };

static double	now(void);
static void	usage(void);
static int	opts_parse(struct db_opts *, int, char **);
static int	write_all(int, const char *, size_t);
static int	op_create(const char *, long, const char *, size_t, int *);
static int	op_spool(const char *, long, const char *, size_t, int *);
static int	op_append(const char *, long, const char *, size_t, int *);
static void	writer(const struct db_opts *, struct db_shared *, int);
static int	mkdir_p(const char *);
static void	rm_tree(const char *);
static int	cmp_u32(const void *, const void *);
static void	report(const struct db_opts *, struct db_shared *, double);

static const db_op_fn db_ops[] = { op_create, op_spool, op_append };

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: diskbench -d DIR [-m create|spool|append] "
	    "[-w writers] [-n ops] [-t seconds] [-s size]\n");
	exit(2);
}

static int
opts_parse(struct db_opts *o, int argc, char **argv)
{
	int ch;
	size_t i;

	while ((ch = getopt(argc, argv, "d:m:w:n:t:s:")) != -1) {
		switch (ch) {
		case 'd': o->dir = optarg; break;
		case 'm':
			for (i = 0; i < 3; i++)
				if (strcmp(optarg, db_mode_names[i]) == 0)
					break;
			if (i == 3)
				usage();
			o->mode = (enum db_mode)i;
			break;
		case 'w': o->writers = atoi(optarg); break;
		case 'n': o->ops = atol(optarg); break;
		case 't': o->seconds = atoi(optarg); break;
		case 's': o->size = (size_t)atol(optarg); break;
		default: usage();
		}
	}
	if (o->dir == NULL || o->writers < 1 || o->writers > DB_WRITERS_MAX ||
	    o->ops < 1 || o->ops > DB_OPS_MAX || o->seconds < 1 ||
	    o->size < 1 || o->size > DB_SIZE_MAX)
		usage();
	return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
op_create(const char *d, long seq, const char *buf, size_t len, int *state)
{
	char path[4096];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/f%ld", d, seq);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		return -1;
	rc = write_all(fd, buf, len) == 0 && fsync(fd) == 0 ? 0 : -1;
	return close(fd) == 0 ? rc : -1;
}

static int
op_spool(const char *d, long seq, const char *buf, size_t len, int *dirfd)
{
	char tmp[4096], dst[4096];
	int fd, rc;

	if (*dirfd == -1) {
		snprintf(dst, sizeof(dst), "%s/new", d);
		if ((*dirfd = open(dst, O_RDONLY | O_DIRECTORY)) == -1)
			return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s/tmp/m%ld", d, seq);
	snprintf(dst, sizeof(dst), "%s/new/m%ld", d, seq);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		return -1;
	rc = write_all(fd, buf, len) == 0 && fsync(fd) == 0 ? 0 : -1;
	if (close(fd) != 0 || rc == -1)
		return -1;
	if (rename(tmp, dst) == -1)
		return -1;
	return fsync(*dirfd);
}

static int
op_append(const char *d, long seq, const char *buf, size_t len, int *fd)
{
	char path[4096];

	if (*fd == -1) {
		snprintf(path, sizeof(path), "%s/log", d);
		if ((*fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600)) ==
		    -1)
			return -1;
	}
	if (write_all(*fd, buf, len) == -1)
		return -1;
	return fdatasync(*fd);
}

/* One writer process: ops in DIR/wK until the count or the deadline. */
static void
writer(const struct db_opts *o, struct db_shared *sh, int k)
{
	char d[4096], sub[4200], *buf;
	uint32_t *lat = sh->lat_us + (size_t)k * (size_t)o->ops;
	double t, end = now() + o->seconds;
	long i;
	int state = -1;

	snprintf(d, sizeof(d), "%s/w%d", o->dir, k);
	snprintf(sub, sizeof(sub), "%s/tmp", d);
	if (mkdir_p(sub) == -1)
		_exit(1);
	snprintf(sub, sizeof(sub), "%s/new", d);
	if (mkdir_p(sub) == -1 || (buf = malloc(o->size)) == NULL)
		_exit(1);
	memset(buf, 'q', o->size);
	for (i = 0; i < o->ops && (t = now()) < end; i++) {
		if (db_ops[o->mode](d, i, buf, o->size, &state) == -1) {
			fprintf(stderr, "diskbench: writer %d: %s\n", k,
			    strerror(errno));
			sh->failed[k] = 1;
			break;
		}
		lat[i] = (uint32_t)((now() - t) * 1e6);
	}
	sh->done[k] = i;
	_exit(0);
}

static int
mkdir_p(const char *path)
{
	char p[4096];
	size_t i;

	snprintf(p, sizeof(p), "%s", path);
	for (i = 1; p[i] != '\0'; i++) {
		if (p[i] != '/')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0755) == -1 && errno != EEXIST)
			return -1;
		p[i] = '/';
	}
	return mkdir(p, 0755) == -1 && errno != EEXIST ? -1 : 0;
}

static void
rm_tree(const char *path)
{
	char p[4096];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_tree(p);
		}
		closedir(d);
		rmdir(path);
		return;
	}
	unlink(path);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
report(const struct db_opts *o, struct db_shared *sh, double secs)
{
	long total = 0, n, k, i;
	uint32_t *all;

	for (k = 0; k < o->writers; k++)
		total += sh->done[k];
	if ((all = calloc((size_t)total + 1, sizeof(*all))) == NULL)
		exit(1);
	for (n = 0, k = 0; k < o->writers; k++)
		for (i = 0; i < sh->done[k]; i++)
			all[n++] = sh->lat_us[(size_t)k * (size_t)o->ops +
			    (size_t)i];
	qsort(all, (size_t)n, sizeof(*all), cmp_u32);
	printf("mode=%s writers=%d size=%zu ops=%ld secs=%.3f ops_per_s=%.1f "
	    "p50_us=%u p99_us=%u max_us=%u\n", db_mode_names[o->mode],
	    o->writers, o->size, total, secs, total / secs,
	    n ? all[n / 2] : 0, n ? all[(n * 99) / 100] : 0,
	    n ? all[n - 1] : 0);
	free(all);
}

int
main(int argc, char **argv)
{
	struct db_opts o = { NULL, DB_SPOOL, 1, 30000, 10, 4096 };
	struct db_shared *sh;
	size_t len;
	double t0, t1;
	int k, status, bad = 0;

	opts_parse(&o, argc, argv);
	if (mkdir_p(o.dir) == -1) {
		fprintf(stderr, "diskbench: cannot create %s: %s\n", o.dir,
		    strerror(errno));
		return 1;
	}
	len = sizeof(*sh) + (size_t)o.writers * (size_t)o.ops *
	    sizeof(uint32_t);
	sh = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	t0 = now();
	for (k = 0; k < o.writers; k++) {
		switch (fork()) {
		case -1: return 1;
		case 0: writer(&o, sh, k); break;
		}
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	t1 = now();
	for (k = 0; k < o.writers; k++)
		bad |= sh->failed[k];
	report(&o, sh, t1 - t0);
	for (k = 0; k < o.writers; k++) {
		char d[4200];

		snprintf(d, sizeof(d), "%s/w%d", o.dir, k);
		rm_tree(d);
	}
	return bad;
}
