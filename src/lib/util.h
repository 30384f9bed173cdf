/*
 * util.h - allocation that never fails, bounded string helpers, clock and
 * process-wide fatal errors.  Used by every module.
 */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define POSTERN_VERSION "0.1.0"

/* x-functions abort on failure instead of returning NULL. */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);

/* Bounded copy; returns strlen(src) so truncation is detectable (>= size). */
size_t	 bstrlcpy(char *dst, const char *src, size_t size);
/* snprintf that reports truncation: 0 on success, -1 if it did not fit. */
int	 bsnprintf(char *dst, size_t size, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Case-insensitive ASCII comparison, locale independent. */
int	 ascii_casecmp(const char *, const char *);
int	 ascii_ncasecmp(const char *, const char *, size_t);
/* Lower-case the first len octets of s in place (ASCII letters only). */
void	 ascii_lower(char *s, size_t len);

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates, or > U+10FFFF. */
int	 utf8_valid(const unsigned char *, size_t);

/* Does the buffer hold an octet > 127 (8-bit data, RFC 6152)? */
int	 mem_has_8bit(const void *, size_t);
/* Length of an RFC 5322 message's header section: up to and including
 * the CRLF of the last field, without the empty line.  *complete = 0
 * when there is no empty line (then the whole length). */
size_t	 msg_header_len(const char *, size_t, int *complete);

/* Free n strings and the array holding them; NULL is fine. */
void	 strv_free(char **v, size_t n);

/* Wipe memory that held a secret, then free it. */
void	 secure_free(void *, size_t);

/* Monotonic seconds (for deadlines) and wall-clock seconds. */
double	 mono_now(void);
int64_t	 wall_now(void);
/* Seconds (negative = 0) as a struct timeval, for event_add(). */
struct timeval;
void	 timeval_from_secs(struct timeval *, double secs);

/* Start-up and invariant failures only: print and exit(1). */
void	 fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* write(2) all of it, retrying on EINTR and short writes; 0 or -1. */
int	 write_full(int fd, const void *, size_t);
/* fsync a directory by path; 0 or -1 with errno. */
int	 fsync_dir(const char *path);
/* mkdir -p with mode; 0 or -1 with errno. */
int	 mkdir_p(const char *path, int mode);
/* Write a whole file atomically (tmp, fsync, rename, dir fsync). */
int	 write_file_atomic(const char *path, const void *data, size_t len,
	    int mode);
/* Read a whole (small) file into a malloc'd NUL-terminated buffer. */
char	*read_file(const char *path, size_t *lenp, size_t max);

#endif
