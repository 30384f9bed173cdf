/*
 * strbuf.c - growable, length-tracked, NUL-terminated buffer (see strbuf.h).
 * Growth is geometric; a failed allocation aborts (xrealloc).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

void
strbuf_init(struct strbuf *sb)
{
	sb->s = NULL;
	sb->len = sb->cap = 0;
}

void
strbuf_free(struct strbuf *sb)
{
	free(sb->s);
	strbuf_init(sb);
}

void
strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->s)
		sb->s[0] = '\0';
}

void
strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	if (need < sb->len)
		fatalx("strbuf size overflow");
	sb->cap = sb->cap ? sb->cap : 64;
	while (sb->cap < need)
		sb->cap *= 2;
	sb->s = xrealloc(sb->s, sb->cap);
}

void
strbuf_add(struct strbuf *sb, const void *p, size_t n)
{
	strbuf_grow(sb, n);
	if (n)
		memcpy(sb->s + sb->len, p, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

void
strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void
strbuf_putc(struct strbuf *sb, char c)
{
	strbuf_add(sb, &c, 1);
}

void
strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	size_t room;
	int n;

	/* Try in the room we have; grow and retry only if it did not fit. */
	strbuf_grow(sb, 128);
	room = sb->cap - sb->len;
	va_copy(ap2, ap);
	n = vsnprintf(sb->s + sb->len, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		sb->s[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		strbuf_grow(sb, (size_t)n);
		vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
	}
	sb->len += (size_t)n;
}

void
strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
}

void
strbuf_json_str(struct strbuf *sb, const char *s, size_t n)
{
	size_t i;

	strbuf_putc(sb, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_printf(sb, "\\u%04x", c);
		} else
			strbuf_putc(sb, (char)c);
	}
	strbuf_putc(sb, '"');
}

void
strbuf_printable(struct strbuf *sb, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '\\')
			strbuf_printf(sb, "\\x%02x", c);
		else
			strbuf_putc(sb, (char)c);
	}
}

char *
strbuf_detach(struct strbuf *sb, size_t *lenp)
{
	char *s;

	strbuf_grow(sb, 0);
	s = sb->s;
	if (lenp)
		*lenp = sb->len;
	strbuf_init(sb);
	return s;
}

void
strbuf_truncate(struct strbuf *sb, size_t len)
{
	if (len > sb->len)
		return;
	sb->len = len;
	if (sb->s != NULL)
		sb->s[len] = '\0';
}
