/*
 * mailfmt.c - helpers for the mail Postern writes itself (bounces, alerts,
 * messages built by `postern send`): RFC 5322 dates, random tokens, text
 * cleaned of control characters, header fields and paragraphs folded so
 * that no line passes 998 octets (RFC 5322 2.1.1).  Pure functions over
 * strbuf; see mailfmt.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "mailfmt.h"
#include "util.h"

/* RFC 5322 date-time, UTC, English names whatever the locale. */
void
mailfmt_date(int64_t t, char *buf, size_t len)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* nbytes random octets as lower-case hex into buf (2 * nbytes + 1). */
int
mailfmt_rand_hex(char *buf, size_t nbytes)
{
	unsigned char r[32];
	size_t i;

	if (nbytes > sizeof(r) || RAND_bytes(r, (int)nbytes) != 1)
		return -1;
	for (i = 0; i < nbytes; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
	return 0;
}

int
mailfmt_has_8bit(const char *s)
{
	return s != NULL && mem_has_8bit(s, strlen(s));
}

/*
 * Append s[0..len) cleaned for a header or a text line: every control
 * character (CR and LF of a multi-line reply too) becomes one space, runs
 * of spaces collapse, outer spaces go; octets > 127 stay only when
 * utf8_ok and the whole text is valid UTF-8, else each becomes '?'.
 */
void
mailfmt_clean(struct strbuf *out, const char *s, size_t len, int utf8_ok)
{
	int keep8 = utf8_ok && utf8_valid((const unsigned char *)s, len);
	int space = 0, any = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = any;
			continue;
		}
		if (space)
			strbuf_putc(out, ' ');
		space = 0;
		any = 1;
		strbuf_putc(out, c >= 0x80 && !keep8 ? '?' : (char)c);
	}
}

/* mailfmt_clean() into a fresh NUL-terminated string (caller frees). */
char *
mailfmt_cleaned(const char *s, int utf8_ok)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, "");
	if (s != NULL)
		mailfmt_clean(&sb, s, strlen(s), utf8_ok);
	return strbuf_detach(&sb, NULL);
}

size_t
mailfmt_utf8_cut(const char *w, size_t max)
{
	size_t n = max;

	while (n > 0 && ((unsigned char)w[n] & 0xc0) == 0x80)
		n--;
	return n > 0 ? n : max;
}

/*
 * Write `first`, then the words of `text` (already cleaned: no control
 * characters), folding before a word that would pass column `width`: the
 * next line starts with `cont` (a header continuation needs whitespace
 * there).  A word that would pass 998 octets is split.  Ends with CRLF.
 */
void
mailfmt_folded(struct strbuf *out, const char *first, const char *cont,
    const char *text, size_t width)
{
	const char *p = text, *w;
	size_t col, wl, n, contlen = strlen(cont);
	int empty = 1;

	strbuf_puts(out, first);
	col = strlen(first);
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (w = p; *p != '\0' && *p != ' '; p++)
			;
		wl = (size_t)(p - w);
		if (!empty && col + 1 + wl > width) {
			strbuf_puts(out, "\r\n");
			strbuf_puts(out, cont);
			col = contlen;
			empty = 1;
		}
		if (!empty) {
			strbuf_putc(out, ' ');
			col++;
		}
		while (col + wl > MAILFMT_LINE_MAX) {
			n = mailfmt_utf8_cut(w, MAILFMT_LINE_MAX - col);
			strbuf_add(out, w, n);
			w += n;
			wl -= n;
			strbuf_puts(out, "\r\n");
			strbuf_puts(out, cont);
			col = contlen;
		}
		strbuf_add(out, w, wl);
		col += wl;
		empty = 0;
	}
	strbuf_puts(out, "\r\n");
}

/* A header field "Name: value" (value cleaned here), folded. */
void
mailfmt_header(struct strbuf *out, const char *name, const char *value,
    int utf8_ok)
{
	struct strbuf v = STRBUF_INIT, f = STRBUF_INIT;

	strbuf_puts(&v, "");
	mailfmt_clean(&v, value, strlen(value), utf8_ok);
	strbuf_printf(&f, "%s: ", name);
	mailfmt_folded(out, f.s, " ", v.s, MAILFMT_FOLD_AT);
	strbuf_free(&v);
	strbuf_free(&f);
}

/* A text line: label then a cleaned value, continuation lines indented
 * like the value. */
void
mailfmt_item(struct strbuf *out, const char *label, const char *value,
    int utf8_ok)
{
	struct strbuf v = STRBUF_INIT, f = STRBUF_INIT;
	char indent[64];

	strbuf_puts(&v, "");
	mailfmt_clean(&v, value, strlen(value), utf8_ok);
	strbuf_printf(&f, "    %-14s", label);
	memset(indent, ' ', sizeof(indent));
	indent[f.len < sizeof(indent) ? f.len : sizeof(indent) - 1] = '\0';
	mailfmt_folded(out, f.s, indent, v.s, 76);
	strbuf_free(&v);
	strbuf_free(&f);
}

/* A paragraph of our own text, wrapped at 72 columns. */
void
mailfmt_para(struct strbuf *out, const char *text)
{
	mailfmt_folded(out, "", "", text, 72);
}

/* "Message-ID: <random@hostname>" and CRLF. */
int
mailfmt_message_id(struct strbuf *out, const char *hostname)
{
	char hex[33];
	char *host;

	if (mailfmt_rand_hex(hex, 16) == -1)
		return -1;
	host = mailfmt_cleaned(hostname, 0);
	strbuf_printf(out, "Message-ID: <%s@%s>\r\n", hex, host);
	free(host);
	return 0;
}
