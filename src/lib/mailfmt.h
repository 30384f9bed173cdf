/*
 * mailfmt.h - formatting helpers for mail that Postern writes itself
 * (bounce.c, alert.c, the message builder of `postern send`).  Every line
 * written ends in CRLF and is at most MAILFMT_LINE_MAX octets.
 */
#ifndef POSTERN_MAILFMT_H
#define POSTERN_MAILFMT_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define MAILFMT_LINE_MAX	998	/* RFC 5322 2.1.1, without CRLF */
#define MAILFMT_FOLD_AT		78	/* RFC 5322 2.1.1 SHOULD */

/* RFC 5322 date-time of wall-clock second t, UTC, English names
 * whatever the locale ("Mon, 07 Dec 2026 10:00:00 +0000"). */
void	mailfmt_date(int64_t t, char *buf, size_t len);
/* nbytes (<= 32) random octets as lower-case hex into buf (2 * nbytes + 1
 * octets).  0, or -1 when the RNG fails. */
int	mailfmt_rand_hex(char *buf, size_t nbytes);
/* At most max octets of w (which has more than max), not cutting a
 * UTF-8 sequence; at least 1. */
size_t	mailfmt_utf8_cut(const char *w, size_t max);
/* s is not NULL and holds an octet > 127. */
int	mailfmt_has_8bit(const char *s);
/*
 * Append s[0..len) cleaned for a header or a text line: every control
 * character (CR and LF of a multi-line reply too) becomes one space, runs
 * of spaces collapse, outer spaces go; octets > 127 stay only when
 * utf8_ok and the whole text is valid UTF-8, else each becomes '?'.
 */
void	mailfmt_clean(struct strbuf *out, const char *s, size_t len,
	    int utf8_ok);
/* mailfmt_clean() into a new string (caller frees); NULL gives "". */
char	*mailfmt_cleaned(const char *s, int utf8_ok);
/*
 * Write `first`, then the words of `text` (already cleaned: no control
 * characters), folding before a word that would pass column `width`: the
 * next line starts with `cont` (a header continuation needs whitespace
 * there).  A word that would pass 998 octets is split at a UTF-8
 * boundary.  Ends with CRLF.
 */
void	mailfmt_folded(struct strbuf *out, const char *first, const char *cont,
	    const char *text, size_t width);
/* A header field "Name: value" (value cleaned here), folded at 78. */
void	mailfmt_header(struct strbuf *out, const char *name, const char *value,
	    int utf8_ok);
/* A report line: "    label" padded to 18 columns, then the cleaned
 * value; continuation lines are indented like the value. */
void	mailfmt_item(struct strbuf *out, const char *label, const char *value,
	    int utf8_ok);
/* A paragraph of our own text, wrapped at 72 columns. */
void	mailfmt_para(struct strbuf *out, const char *text);
/* "Message-ID: <random@hostname>" and CRLF.  0, or -1 when the RNG
 * fails (nothing appended). */
int	mailfmt_message_id(struct strbuf *out, const char *hostname);

#endif
