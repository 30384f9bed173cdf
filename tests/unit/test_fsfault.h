/*
 * test_fsfault.h - a file-system failure seam for unit tests: the test
 * executable is linked with -Wl,--wrap for open64, write, close, fsync,
 * syncfs, rename and fstatvfs64 (tests/unit/meson.build), so every call
 * the spool and util.c make goes through the wrappers below first
 * (renameat2 too, counted and failed as FS_RENAME).
 *
 *   fsfault_arm(FS_WRITE, 2, ENOSPC, FSF_REG, NULL)
 *       the 2nd write(2) to a regular file from now on fails with ENOSPC
 *       (nth 0 = every matching call); FSF_DIR / FSF_REG / FSF_ANY say on
 *       what kind of file descriptor (fsync of a directory vs a file);
 *       `path` (open, rename: the source) must contain that text.
 *   fsfault_calls[FS_SYNCFS]   calls made since fsfault_reset()
 *   fsfault_space(bytes, inodes, files)   fake statvfs figures
 *
 * Writes to pipes, sockets (the commit thread's wake-up) and fds 0-2 are
 * never failed nor counted as matches.  The wrappers take a mutex: the spool's commit thread calls
 * them too.  Include in exactly one .c file.
 */
#ifndef POSTERN_TEST_FSFAULT_H
#define POSTERN_TEST_FSFAULT_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum fs_call { FS_OPEN, FS_WRITE, FS_CLOSE, FS_FSYNC, FS_SYNCFS, FS_RENAME,
	FS_STATVFS, FS_NCALLS };
enum fs_kind { FSF_ANY, FSF_REG, FSF_DIR };

static struct {
	int		 armed;
	enum fs_call	 call;
	int		 nth;		/* 0 = every match */
	int		 err;
	enum fs_kind	 kind;
	const char	*path;
	int		 seen;		/* matching calls since armed */
	int		 hits;		/* calls failed */
	int		 fake_space;
	struct statvfs	 space;
} fsf;
static int fsfault_calls[FS_NCALLS];
static pthread_mutex_t fsf_lock = PTHREAD_MUTEX_INITIALIZER;

int	__real_open64(const char *, int, ...);
ssize_t	__real_write(int, const void *, size_t);
int	__real_close(int);
int	__real_fsync(int);
int	__real_syncfs(int);
int	__real_rename(const char *, const char *);
int	__real_renameat2(int, const char *, int, const char *, unsigned int);
int	__real_fstatvfs64(int, struct statvfs64 *);

static void __attribute__((unused))
fsfault_reset(void)
{
	pthread_mutex_lock(&fsf_lock);
	memset(&fsf, 0, sizeof(fsf));
	memset(fsfault_calls, 0, sizeof(fsfault_calls));
	pthread_mutex_unlock(&fsf_lock);
}

static void __attribute__((unused))
fsfault_arm(enum fs_call call, int nth, int err, enum fs_kind kind,
    const char *path)
{
	pthread_mutex_lock(&fsf_lock);
	fsf.armed = 1;
	fsf.call = call;
	fsf.nth = nth;
	fsf.err = err;
	fsf.kind = kind;
	fsf.path = path;
	fsf.seen = fsf.hits = 0;
	pthread_mutex_unlock(&fsf_lock);
}

static void __attribute__((unused))
fsfault_disarm(void)
{
	pthread_mutex_lock(&fsf_lock);
	fsf.armed = 0;
	pthread_mutex_unlock(&fsf_lock);
}

static int __attribute__((unused))
fsfault_hits(void)
{
	int n;

	pthread_mutex_lock(&fsf_lock);
	n = fsf.hits;
	pthread_mutex_unlock(&fsf_lock);
	return n;
}

/* statvfs answers: `bytes` available, `inodes` free of `files` (0 =
 * the file system does not count inodes). */
static void __attribute__((unused))
fsfault_space(uint64_t bytes, uint64_t inodes, uint64_t files)
{
	pthread_mutex_lock(&fsf_lock);
	fsf.fake_space = 1;
	memset(&fsf.space, 0, sizeof(fsf.space));
	fsf.space.f_frsize = fsf.space.f_bsize = 4096;
	fsf.space.f_bavail = fsf.space.f_bfree = bytes / 4096;
	fsf.space.f_blocks = fsf.space.f_bavail + 1000;
	fsf.space.f_favail = fsf.space.f_ffree = inodes;
	fsf.space.f_files = files;
	pthread_mutex_unlock(&fsf_lock);
}

static int
fsf_kind_ok(int fd)
{
	struct stat st;

	if (fsf.kind == FSF_ANY)
		return 1;
	if (fd < 0 || fstat(fd, &st) == -1)
		return 0;
	return fsf.kind == FSF_DIR ? S_ISDIR(st.st_mode) :
	    S_ISREG(st.st_mode);
}

/* Count the call; 1 when it must fail (errno set). */
static int
fsf_check(enum fs_call call, int fd, const char *path)
{
	int fail = 0, err = 0;

	pthread_mutex_lock(&fsf_lock);
	fsfault_calls[call]++;
	if (fsf.armed && fsf.call == call && fsf_kind_ok(fd) &&
	    (fsf.path == NULL || (path != NULL &&
	    strstr(path, fsf.path) != NULL))) {
		fsf.seen++;
		if (fsf.nth == 0 || fsf.seen == fsf.nth) {
			fail = 1;
			err = fsf.err;
			fsf.hits++;
		}
	}
	pthread_mutex_unlock(&fsf_lock);
	if (fail)
		errno = err;
	return fail;
}

int
__wrap_open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fsf_check(FS_OPEN, -1, path))
		return -1;
	return __real_open64(path, flags, mode);
}

ssize_t
__wrap_write(int fd, const void *buf, size_t len)
{
	struct stat st;

	/* Pipes, sockets and stdio (a log going there) are never failed:
	 * only the files the code under test writes. */
	if (fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    fsf_check(FS_WRITE, fd, NULL))
		return -1;
	return __real_write(fd, buf, len);
}

int
__wrap_close(int fd)
{
	if (fsf_check(FS_CLOSE, fd, NULL)) {
		(void)__real_close(fd);		/* as Linux: the fd is gone */
		return -1;
	}
	return __real_close(fd);
}

int
__wrap_fsync(int fd)
{
	if (fsf_check(FS_FSYNC, fd, NULL))
		return -1;
	return __real_fsync(fd);
}

int
__wrap_syncfs(int fd)
{
	if (fsf_check(FS_SYNCFS, fd, NULL))
		return -1;
	return __real_syncfs(fd);
}

int
__wrap_rename(const char *from, const char *to)
{
	if (fsf_check(FS_RENAME, -1, from))
		return -1;
	return __real_rename(from, to);
}

int
__wrap_renameat2(int fromfd, const char *from, int tofd, const char *to,
    unsigned int flags)
{
	if (fsf_check(FS_RENAME, -1, from))
		return -1;
	return __real_renameat2(fromfd, from, tofd, to, flags);
}

_Static_assert(sizeof(struct statvfs) == sizeof(struct statvfs64),
    "statvfs and statvfs64 differ");

int
__wrap_fstatvfs64(int fd, struct statvfs64 *buf)
{
	int fake;

	if (fsf_check(FS_STATVFS, fd, NULL))
		return -1;
	pthread_mutex_lock(&fsf_lock);
	fake = fsf.fake_space;
	if (fake)
		memcpy(buf, &fsf.space, sizeof(*buf));
	pthread_mutex_unlock(&fsf_lock);
	return fake ? 0 : __real_fstatvfs64(fd, buf);
}

#endif
