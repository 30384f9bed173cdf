/*
 * strbuf.h - growable, length-tracked, always NUL-terminated byte buffer.
 * The bytes may contain NULs; s[len] is always 0.
 */
#ifndef POSTERN_STRBUF_H
#define POSTERN_STRBUF_H

#include <stddef.h>
#include <stdarg.h>

struct strbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

#define STRBUF_INIT { NULL, 0, 0 }

void	strbuf_init(struct strbuf *);
void	strbuf_free(struct strbuf *);		/* releases memory, re-inits */
void	strbuf_reset(struct strbuf *);		/* len = 0, keeps memory */
void	strbuf_grow(struct strbuf *, size_t extra);
/* Named strbuf_add, not strbuf_append: libconfig exports that symbol. */
void	strbuf_add(struct strbuf *, const void *, size_t);
void	strbuf_puts(struct strbuf *, const char *);
void	strbuf_putc(struct strbuf *, char);
void	strbuf_printf(struct strbuf *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	strbuf_vprintf(struct strbuf *, const char *fmt, va_list);
/* Append a JSON string literal (with quotes) for the given bytes. */
void	strbuf_json_str(struct strbuf *, const char *, size_t);
/* Append bytes with non-printable characters shown as \xNN (for logs). */
void	strbuf_printable(struct strbuf *, const char *, size_t);
/* Cut back to the first len octets (len <= current length). */
void	strbuf_truncate(struct strbuf *, size_t len);
/* Detach the buffer: caller owns the returned string. */
char	*strbuf_detach(struct strbuf *, size_t *lenp);

#endif
