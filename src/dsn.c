/*
 * dsn.c - bounces (RFC 3464 delivery status notifications in an RFC 6522
 * multipart/report) and administrator alerts (see dsn.h).
 *
 * Fixed lines are written with CRLF directly; every line that holds
 * variable text passes through put_folded(), which writes CRLF line ends
 * only and never a line longer than 998 octets (folding at spaces near
 * 78 columns, splitting longer words at a UTF-8 boundary).  Text from outside (remote replies, the original's header
 * values, ORCPT and ENVID from the envelope) is first cleaned by clean():
 * control characters become spaces, and non-ASCII octets stay only where
 * the part may carry UTF-8 and the text is valid UTF-8 (else '?').
 * The original message is copied by put_lines() (line ends normalised,
 * over-long lines split) or, for RET=FULL, as is when fit_as_is() says it
 * already obeys those rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "dsn.h"
#include "smtp_proto.h"
#include "util.h"

#define LINE_MAX_OCTETS	998	/* RFC 5322 2.1.1, without CRLF */
#define FOLD_AT		78

/* ---------------------------------------------------------------- helpers */

/* RFC 5322 date-time, UTC, English names whatever the locale. */
static void
fmt_date(int64_t t, char *buf, size_t len)
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
static int
rand_hex(char *buf, size_t nbytes)
{
	unsigned char r[32];
	size_t i;

	if (nbytes > sizeof(r) || RAND_bytes(r, (int)nbytes) != 1)
		return -1;
	for (i = 0; i < nbytes; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
	return 0;
}

static int
str_8bit(const char *s)
{
	return s != NULL && mem_has_8bit(s, strlen(s));
}

/*
 * Append s[0..len) cleaned for a header or a text line: every control
 * character (CR and LF of a multi-line reply too) becomes one space, runs
 * of spaces collapse, outer spaces go; octets > 127 stay only when
 * utf8_ok and the whole text is valid UTF-8, else each becomes '?'.
 */
static void
clean(struct strbuf *out, const char *s, size_t len, int utf8_ok)
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

/* clean() into a fresh NUL-terminated string (caller frees). */
static char *
cleaned(const char *s, int utf8_ok)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, "");
	if (s != NULL)
		clean(&sb, s, strlen(s), utf8_ok);
	return strbuf_detach(&sb, NULL);
}

/* At most max octets of w, not cutting a UTF-8 sequence (at least 1). */
static size_t
utf8_cut(const char *w, size_t max)
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
static void
put_folded(struct strbuf *out, const char *first, const char *cont,
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
		while (col + wl > LINE_MAX_OCTETS) {
			n = utf8_cut(w, LINE_MAX_OCTETS - col);
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
static void
put_header(struct strbuf *out, const char *name, const char *value,
    int utf8_ok)
{
	struct strbuf v = STRBUF_INIT, f = STRBUF_INIT;

	strbuf_puts(&v, "");
	clean(&v, value, strlen(value), utf8_ok);
	strbuf_printf(&f, "%s: ", name);
	put_folded(out, f.s, " ", v.s, FOLD_AT);
	strbuf_free(&v);
	strbuf_free(&f);
}

/* A text line: label then a cleaned value, continuation lines indented
 * like the value. */
static void
put_item(struct strbuf *out, const char *label, const char *value,
    int utf8_ok)
{
	struct strbuf v = STRBUF_INIT, f = STRBUF_INIT;
	char indent[64];

	strbuf_puts(&v, "");
	clean(&v, value, strlen(value), utf8_ok);
	strbuf_printf(&f, "    %-14s", label);
	memset(indent, ' ', sizeof(indent));
	indent[f.len < sizeof(indent) ? f.len : sizeof(indent) - 1] = '\0';
	put_folded(out, f.s, indent, v.s, 76);
	strbuf_free(&v);
	strbuf_free(&f);
}

/* A paragraph of our own text, wrapped at 72 columns. */
static void
put_para(struct strbuf *out, const char *text)
{
	put_folded(out, "", "", text, 72);
}

/*
 * Copy text lines, normalising any bare CR or LF to CRLF, dropping NULs
 * and splitting a line longer than 998 octets with CRLF SP (a header
 * continuation).  The result ends with CRLF when len > 0.
 */
static void
put_lines(struct strbuf *out, const char *s, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			strbuf_puts(out, "\r\n");
			col = 0;
			continue;
		}
		if (c == '\0')
			continue;
		if (col == LINE_MAX_OCTETS) {
			strbuf_puts(out, "\r\n ");
			col = 1;
		}
		strbuf_putc(out, c);
		col++;
	}
	if (col > 0)
		strbuf_puts(out, "\r\n");
}

/* Can the content go into a message/rfc822 part untouched: CRLF line
 * ends only, no NUL, no line over 998 octets? */
static int
fit_as_is(const char *s, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r') {
			if (i + 1 >= len || s[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
		} else if (s[i] == '\n' || s[i] == '\0')
			return 0;
		else if (++col > LINE_MAX_OCTETS)
			return 0;
	}
	return 1;
}

/* Undo what was appended to out since `len`. */
static void
truncate_to(struct strbuf *out, size_t len)
{
	out->len = len;
	if (out->s != NULL)
		out->s[len] = '\0';
}

/* pread exactly len octets from offset 0.  0 or -1. */
static int
read_orig(int fd, char *buf, size_t len)
{
	size_t off = 0;
	ssize_t r;

	while (off < len) {
		r = pread(fd, buf + off, len - off, (off_t)off);
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* Decode xtext (RFC 3461 4): "+HH" is the octet HH.  NUL never made. */
static void
xtext_decode(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *h, *l;

	for (; *s != '\0'; s++) {
		if (s[0] == '+' && s[1] != '\0' && s[2] != '\0' &&
		    (h = strchr(hex, s[1])) != NULL &&
		    (l = strchr(hex, s[2])) != NULL && (h != hex || l != hex)) {
			strbuf_putc(out, (char)((h - hex) * 16 + (l - hex)));
			s += 2;
		} else
			strbuf_putc(out, *s);
	}
}

/* Append code point cp as UTF-8. */
static void
put_utf8(struct strbuf *out, unsigned long cp)
{
	if (cp < 0x80)
		strbuf_putc(out, (char)cp);
	else if (cp < 0x800) {
		strbuf_putc(out, (char)(0xc0 | (cp >> 6)));
		strbuf_putc(out, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		strbuf_putc(out, (char)(0xe0 | (cp >> 12)));
		strbuf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(out, (char)(0x80 | (cp & 0x3f)));
	} else {
		strbuf_putc(out, (char)(0xf0 | (cp >> 18)));
		strbuf_putc(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
		strbuf_putc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(out, (char)(0x80 | (cp & 0x3f)));
	}
}

/*
 * ORCPT "type;address" (xtext; RFC 6533 utf-8 type with \x{HHHH} too)
 * into its type and decoded address.  -1 when malformed.
 */
static int
orcpt_decode(const char *orcpt, char *type, size_t typelen, char **addr)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	const char *semi = strchr(orcpt, ';'), *p;
	size_t i, tl;

	if (semi == NULL || (tl = (size_t)(semi - orcpt)) == 0 ||
	    tl >= typelen || semi[1] == '\0')
		return -1;
	for (i = 0; i < tl; i++) {
		char c = orcpt[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return -1;
		type[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	type[tl] = '\0';
	strbuf_puts(&a, "");
	xtext_decode(&a, semi + 1);
	strbuf_puts(&b, "");
	for (p = a.s; *p != '\0'; p++) {
		char *end;
		unsigned long cp;
		if (strcmp(type, "utf-8") == 0 && p[0] == '\\' && p[1] == 'x' &&
		    p[2] == '{' && (cp = strtoul(p + 3, &end, 16)) > 0 &&
		    *end == '}' && end - (p + 3) <= 6 && cp <= 0x10ffff &&
		    !(cp >= 0xd800 && cp <= 0xdfff)) {
			put_utf8(&b, cp);
			p = end;
		} else
			strbuf_putc(&b, *p);
	}
	strbuf_free(&a);
	*addr = strbuf_detach(&b, NULL);
	return 0;
}

/* A failure status "c.s.d": c is 4 or 5, then 1-3 digits each. */
static int
status_valid(const char *s)
{
	int part, digits;

	if (s == NULL || (s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	s += 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; *s >= '0' && *s <= '9'; s++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

/* What the sender can do about a failure, by status code. */
static const char *
status_advice(const char *st)
{
	if (st[0] == '4')
		return "The receiving side could not be reached or kept "
		    "answering with temporary errors for as long as this "
		    "server keeps messages.  Check the address; if it is "
		    "right, send the message again later.";
	if (strncmp(st, "5.1.", 4) == 0)
		return "The address does not exist there, or its domain "
		    "does not accept mail.  Check it for typing errors; if it "
		    "is right, ask the recipient for a working address.";
	if (strncmp(st, "5.2.", 4) == 0)
		return "The recipient's mailbox is full, disabled or cannot "
		    "take this message.  Let the recipient know by other "
		    "means, or send it again later.";
	if (strcmp(st, "5.3.4") == 0)
		return "The message is larger than the receiving side "
		    "accepts.  Send it smaller, for example with a link "
		    "instead of a large attachment.";
	if (strncmp(st, "5.4.", 4) == 0)
		return "The recipient's domain could not be found or its mail "
		    "servers could not be reached.  Check the domain part of "
		    "the address.";
	if (strncmp(st, "5.7.", 4) == 0)
		return "The receiving side refused the message for a policy "
		    "or security reason (for example spam filtering, sender "
		    "authentication such as SPF, DKIM or DMARC, or a TLS "
		    "requirement).  The reply above says which; pass this "
		    "report to the postmaster of your domain.";
	return "Check the address and the reply above.  If the cause is "
	    "not clear, pass this report to the postmaster of your domain.";
}

/* A Message-ID fit to be repeated in References: "<x@y>" without
 * spaces or non-ASCII. */
static int
msgid_usable(const char *id)
{
	size_t len = strlen(id), i;

	if (len < 3 || len > 250 || id[0] != '<' || id[len - 1] != '>' ||
	    strchr(id, '@') == NULL)
		return 0;
	for (i = 1; i + 1 < len; i++)
		if (id[i] <= 0x20 || id[i] >= 0x7f || id[i] == '<' ||
		    id[i] == '>')
			return 0;
	return 1;
}

/*
 * One MIME body part: delimiter, headers, empty line, content ending in
 * CRLF.  The delimiter starts with its own CRLF (RFC 2046 5.1.1), so the
 * content keeps its last line end: a returned message is byte for byte
 * the original.
 */
static void
put_part(struct strbuf *out, const char *boundary, const char *desc,
    const char *ctype, const struct strbuf *content)
{
	strbuf_printf(out, "\r\n--%s\r\n", boundary);
	strbuf_printf(out, "Content-Description: %s\r\n", desc);
	strbuf_printf(out, "Content-Type: %s\r\n", ctype);
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	    mem_has_8bit(content->s, content->len) ? "8bit" : "7bit");
	strbuf_add(out, content->s, content->len);
	if (content->len < 2 || content->s[content->len - 2] != '\r' ||
	    content->s[content->len - 1] != '\n')
		strbuf_puts(out, "\r\n");
}

/* Pick a boundary that occurs in none of the parts. */
static int
pick_boundary(char *b, size_t len, const struct strbuf *const *parts,
    size_t n)
{
	char hex[33];
	size_t i;
	int tries;

	for (tries = 0; tries < 8; tries++) {
		if (rand_hex(hex, 16) == -1)
			return -1;
		snprintf(b, len, "=_postern_%s", hex);
		for (i = 0; i < n; i++)
			if (parts[i]->len > 0 && memmem(parts[i]->s,
			    parts[i]->len, b, strlen(b)) != NULL)
				break;
		if (i == n)
			return 0;
	}
	return -1;
}

/* Message-ID "<random@hostname>". */
static int
put_message_id(struct strbuf *out, const struct conf *conf)
{
	char hex[33];
	char *host;

	if (rand_hex(hex, 16) == -1)
		return -1;
	host = cleaned(conf->hostname, 0);
	strbuf_printf(out, "Message-ID: <%s@%s>\r\n", hex, host);
	free(host);
	return 0;
}

int
dsn_notify_failure(int notify)
{
	if (notify == 0)
		return 1;
	if (notify & SMTP_NOTIFY_NEVER)
		return 0;
	return (notify & SMTP_NOTIFY_FAILURE) != 0;
}

/* ---------------------------------------------------------------- bounce */

/* The original (headers only or whole) as the third part. */
struct orig_part {
	struct strbuf	content;
	const char	*ctype;
	const char	*desc;
	int		 full;		/* whole message returned */
	const char	*why_not_full;	/* RET=FULL asked but not done */
	int		 truncated;	/* header section cut at the cap */
	struct msg_header_scan hs;
};

static int
orig_load(struct orig_part *op, const struct envelope *orig, int fd,
    int global)
{
	size_t want, hlen;
	char *buf;
	int complete;

	memset(op, 0, sizeof(*op));
	strbuf_init(&op->content);
	if (orig->ret == SMTP_RET_FULL) {
		if (orig->msg_size > DSN_FULL_MAX)
			op->why_not_full = "it is larger than this server "
			    "returns";
		else if (orig->body == SMTP_BODY_BINARYMIME)
			op->why_not_full = "it was sent as binary content";
		else
			op->full = 1;
	}
	want = op->full ? (size_t)orig->msg_size :
	    (size_t)(orig->msg_size < DSN_HEADERS_MAX + 4 ? orig->msg_size :
	    DSN_HEADERS_MAX + 4);
	buf = xmalloc(want + 1);
	if (read_orig(fd, buf, want) == -1) {
		free(buf);
		return -1;
	}
	hlen = msg_header_len(buf, want, &complete);
	if (op->full && !fit_as_is(buf, want)) {
		op->full = 0;
		op->why_not_full = "it has lines longer than 998 octets or "
		    "bare line ends";
	}
	msg_header_scan_init(&op->hs);
	msg_header_scan_feed(&op->hs, buf, hlen);
	msg_header_scan_finish(&op->hs);
	if (op->full) {
		strbuf_add(&op->content, buf, want);
		op->ctype = global ? "message/global" : "message/rfc822";
		op->desc = "Undelivered message";
	} else {
		if (hlen > DSN_HEADERS_MAX || (!complete &&
		    want < orig->msg_size)) {
			/* Cut after the last whole line within the cap. */
			size_t cut = hlen > DSN_HEADERS_MAX ? DSN_HEADERS_MAX :
			    hlen;
			while (cut > 0 && buf[cut - 1] != '\n')
				cut--;
			hlen = cut;
			op->truncated = 1;
		}
		put_lines(&op->content, buf, hlen);
		op->ctype = global ? "message/global-headers" :
		    "text/rfc822-headers";
		op->desc = "Undelivered message headers";
	}
	free(buf);
	return 0;
}

/* Part 1: the explanation in words. */
static void
bounce_text(struct strbuf *t, const struct conf *conf,
    const struct envelope *orig, const struct orig_part *op,
    const struct dsn_rcpt *rc, size_t n)
{
	char date[64], buf[64];
	struct strbuf s = STRBUF_INIT;
	size_t i;

	strbuf_printf(&s, "This is the mail system at %s.", conf->hostname);
	put_para(t, s.s);
	strbuf_puts(t, "\r\n");
	put_para(t, n == 1 ?
	    "Your message could not be delivered to the recipient below. "
	    "This server has given up; the recipient has not received it." :
	    "Your message could not be delivered to the recipients below. "
	    "This server has given up; they have not received it.");
	strbuf_puts(t, "\r\n");
	strbuf_puts(t, "The message:\r\n");
	if (op->hs.subject[0] != '\0')
		put_item(t, "Subject:", op->hs.subject, 1);
	if (op->hs.message_id[0] != '\0')
		put_item(t, "Message-ID:", op->hs.message_id, 1);
	fmt_date(orig->received, date, sizeof(date));
	put_item(t, "Received:", date, 1);
	snprintf(buf, sizeof(buf), "MID %llu", (unsigned long long)orig->mid);
	put_item(t, "Queue ID:", buf, 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "<%s>", orig->from);
	put_item(t, "Sender:", s.s, 1);
	for (i = 0; i < n; i++) {
		const char *st = status_valid(rc[i].status) ? rc[i].status :
		    "5.0.0";
		strbuf_puts(t, "\r\n");
		strbuf_reset(&s);
		strbuf_puts(&s, "<");
		clean(&s, rc[i].addr, strlen(rc[i].addr), 1);
		strbuf_puts(&s, ">:");
		put_folded(t, "", "    ", s.s, 76);
		strbuf_reset(&s);
		strbuf_printf(&s, "%s (%s)", st, st[0] == '4' ?
		    "temporary failure; no more retries" : "permanent failure");
		put_item(t, "Status:", s.s, 1);
		if (rc[i].remote_mta != NULL && rc[i].remote_mta[0] != '\0')
			put_item(t, "Remote host:", rc[i].remote_mta, 1);
		if (rc[i].diagnostic != NULL && rc[i].diagnostic[0] != '\0')
			put_item(t, rc[i].smtp_diag ? "Reply:" : "Reason:",
			    rc[i].diagnostic, 1);
		if (rc[i].last_attempt > 0) {
			fmt_date(rc[i].last_attempt, date, sizeof(date));
			put_item(t, "Last attempt:", date, 1);
		}
		put_item(t, "What to do:", status_advice(st), 1);
	}
	strbuf_puts(t, "\r\n");
	if (op->full)
		put_para(t, "Attached: your whole message as it was "
		    "received, and the delivery report (for programs).");
	else {
		put_para(t, "Attached: the header section of your message, "
		    "and the delivery report (for programs).");
		if (op->why_not_full != NULL) {
			strbuf_reset(&s);
			strbuf_printf(&s, "You asked for the whole message to "
			    "be returned (RET=FULL), but only its header "
			    "section is attached: %s (%llu octets).",
			    op->why_not_full,
			    (unsigned long long)orig->msg_size);
			put_para(t, s.s);
		}
		if (op->truncated)
			put_para(t, "The header section was too long and is "
			    "cut short.");
	}
	strbuf_reset(&s);
	strbuf_printf(&s, "If you need help, forward this whole report to "
	    "your postmaster or to postmaster@%s.", conf->hostname);
	put_para(t, s.s);
	strbuf_free(&s);
}

/* "type; address" for Original-/Final-Recipient in either flavour. */
static void
put_recipient_field(struct strbuf *d, const char *name, const char *type,
    const char *addr, int global)
{
	struct strbuf v = STRBUF_INIT;

	if (global && str_8bit(addr) &&
	    utf8_valid((const unsigned char *)addr, strlen(addr)))
		type = "utf-8";
	strbuf_printf(&v, "%s; %s", type, addr);
	put_header(d, name, v.s, global);
	strbuf_free(&v);
}

/* Part 2: message/delivery-status (RFC 3464 2.2, 2.3). */
static void
bounce_status(struct strbuf *d, const struct conf *conf,
    const struct envelope *orig, const struct dsn_rcpt *rc, size_t n,
    int global)
{
	struct strbuf v = STRBUF_INIT;
	char date[64], type[32], *addr;
	size_t i;

	strbuf_printf(&v, "dns; %s", conf->hostname);
	put_header(d, "Reporting-MTA", v.s, 0);
	strbuf_reset(&v);
	strbuf_printf(&v, "%llu", (unsigned long long)orig->mid);
	put_header(d, "X-Postern-Queue-ID", v.s, 0);
	if (orig->envid[0] != '\0') {
		strbuf_reset(&v);
		xtext_decode(&v, orig->envid);
		put_header(d, "Original-Envelope-Id", v.s, 0);
	}
	strbuf_reset(&v);
	strbuf_printf(&v, "rfc822; %s", orig->from);
	put_header(d, "X-Postern-Sender", v.s, global);
	fmt_date(orig->received, date, sizeof(date));
	put_header(d, "Arrival-Date", date, 0);
	for (i = 0; i < n; i++) {
		const char *st = status_valid(rc[i].status) ? rc[i].status :
		    "5.0.0";
		strbuf_puts(d, "\r\n");
		if (rc[i].orcpt != NULL && rc[i].orcpt[0] != '\0' &&
		    orcpt_decode(rc[i].orcpt, type, sizeof(type), &addr) == 0) {
			put_recipient_field(d, "Original-Recipient", type,
			    addr, global);
			free(addr);
		}
		put_recipient_field(d, "Final-Recipient", "rfc822",
		    rc[i].addr, global);
		put_header(d, "Action", "failed", 0);
		put_header(d, "Status", st, 0);
		if (rc[i].remote_mta != NULL && rc[i].remote_mta[0] != '\0') {
			strbuf_reset(&v);
			strbuf_printf(&v, "dns; %s", rc[i].remote_mta);
			put_header(d, "Remote-MTA", v.s, global);
		}
		if (rc[i].diagnostic != NULL && rc[i].diagnostic[0] != '\0') {
			strbuf_reset(&v);
			strbuf_printf(&v, "%s; %s", rc[i].smtp_diag ? "smtp" :
			    "X-Postern", rc[i].diagnostic);
			put_header(d, "Diagnostic-Code", v.s, global);
		}
		if (rc[i].last_attempt > 0) {
			fmt_date(rc[i].last_attempt, date, sizeof(date));
			put_header(d, "Last-Attempt-Date", date, 0);
		}
	}
	strbuf_free(&v);
}

/* Needs the RFC 6533 global types: an address (or the message) is
 * internationalised. */
static int
needs_global(const struct envelope *orig, const struct dsn_rcpt *rc,
    size_t n)
{
	char type[32], *addr;
	size_t i;
	int r = orig->smtputf8 || str_8bit(orig->from);

	for (i = 0; i < n && !r; i++) {
		r = str_8bit(rc[i].addr);
		if (!r && rc[i].orcpt != NULL && rc[i].orcpt[0] != '\0' &&
		    orcpt_decode(rc[i].orcpt, type, sizeof(type), &addr) == 0) {
			r = str_8bit(addr);
			free(addr);
		}
	}
	return r;
}

int
dsn_build_bounce(struct strbuf *out, const struct conf *conf,
    const struct envelope *orig, int fd, const struct dsn_rcpt *rc,
    size_t n, int64_t now, char *why, size_t whylen)
{
	struct strbuf text = STRBUF_INIT, status = STRBUF_INIT;
	const struct strbuf *parts[3];
	struct orig_part op;
	char boundary[64], date[64];
	int global, eight, r = -1;
	size_t i, start = out->len;

	if (orig->from[0] == '\0') {
		bsnprintf(why, whylen, "MID %llu has the null sender: no "
		    "bounce is sent to <>", (unsigned long long)orig->mid);
		return -1;
	}
	if (n == 0) {
		bsnprintf(why, whylen, "no failed recipients to report");
		return -1;
	}
	global = needs_global(orig, rc, n);
	if (orig_load(&op, orig, fd, global) == -1) {
		bsnprintf(why, whylen, "cannot read MID %llu from the spool",
		    (unsigned long long)orig->mid);
		strbuf_free(&op.content);
		return -1;
	}
	bounce_text(&text, conf, orig, &op, rc, n);
	bounce_status(&status, conf, orig, rc, n, global);
	parts[0] = &text;
	parts[1] = &status;
	parts[2] = &op.content;
	if (pick_boundary(boundary, sizeof(boundary), parts, 3) == -1) {
		bsnprintf(why, whylen, "no random numbers for the boundary");
		goto out;
	}
	for (eight = 0, i = 0; i < 3; i++)
		eight |= mem_has_8bit(parts[i]->s, parts[i]->len);

	strbuf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    conf->hostname);
	{
		struct strbuf to = STRBUF_INIT;
		strbuf_puts(&to, "<");
		clean(&to, orig->from, strlen(orig->from), 1);
		strbuf_puts(&to, ">");
		put_header(out, "To", to.s, 1);
		strbuf_free(&to);
	}
	strbuf_puts(out, "Subject: Undelivered Mail Returned to Sender\r\n");
	fmt_date(now, date, sizeof(date));
	strbuf_printf(out, "Date: %s\r\n", date);
	if (put_message_id(out, conf) == -1) {
		bsnprintf(why, whylen, "no random numbers for the Message-ID");
		goto out;
	}
	if (msgid_usable(op.hs.message_id)) {
		put_header(out, "In-Reply-To", op.hs.message_id, 0);
		put_header(out, "References", op.hs.message_id, 0);
	}
	strbuf_puts(out, "Auto-Submitted: auto-replied\r\n");
	strbuf_puts(out, "MIME-Version: 1.0\r\n");
	strbuf_printf(out, "Content-Type: multipart/report; report-type=%s;\r\n"
	    "\tboundary=\"%s\"\r\n", global ? "global-delivery-status" :
	    "delivery-status", boundary);
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	    eight ? "8bit" : "7bit");
	strbuf_puts(out, "This is a MIME-encapsulated delivery status "
	    "notification.\r\n");
	put_part(out, boundary, "Notification",
	    "text/plain; charset=utf-8", &text);
	put_part(out, boundary, "Delivery report", global ?
	    "message/global-delivery-status" : "message/delivery-status",
	    &status);
	put_part(out, boundary, op.desc, op.ctype, &op.content);
	strbuf_printf(out, "\r\n--%s--\r\n", boundary);
	r = 0;
out:
	if (r == -1)
		truncate_to(out, start);
	strbuf_free(&text);
	strbuf_free(&status);
	strbuf_free(&op.content);
	return r;
}

/* ----------------------------------------------------------------- alert */

static const char *
dest_tls_name(enum dest_tls t)
{
	static const char *names[] = { "none", "preferred", "required",
	    "preferred-verify", "required-verify" };

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* The destinations entry that applies to a domain ("*" when none). */
static const struct conf_destination *
dest_for(const struct conf *conf, const char *domain)
{
	const struct conf_destination *star = NULL;
	size_t i;

	for (i = 0; i < conf->ndestinations; i++) {
		if (ascii_casecmp(conf->destinations[i].domain, domain) == 0)
			return &conf->destinations[i];
		if (strcmp(conf->destinations[i].domain, "*") == 0)
			star = &conf->destinations[i];
	}
	return star;
}

int
dsn_build_alert(struct strbuf *out, const struct conf *conf,
    const char *domain, const char *host, const char *reason, int64_t now,
    char *why, size_t whylen)
{
	const struct conf_destination *dest;
	struct strbuf s = STRBUF_INIT, body = STRBUF_INIT;
	char date[64], iso[32], *dom, *hst;
	struct tm tm;
	time_t tt = (time_t)now;
	size_t i, start = out->len;
	int r = -1;

	if (conf->nalert_recipients == 0) {
		bsnprintf(why, whylen, "no alert recipients configured "
		    "(alerts.recipients)");
		return -1;
	}
	dom = cleaned(domain != NULL ? domain : "", 0);
	/* Without a host name the commands below name the domain. */
	hst = cleaned(host != NULL && host[0] != '\0' ? host : dom, 0);
	fmt_date(now, date, sizeof(date));
	gmtime_r(&tt, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);

	strbuf_puts(&s, "Postern <");
	clean(&s, conf->alert_from, strlen(conf->alert_from), 1);
	strbuf_puts(&s, ">");
	put_header(out, "From", s.s, 1);
	strbuf_reset(&s);
	for (i = 0; i < conf->nalert_recipients; i++) {
		strbuf_puts(&s, i ? ", <" : "<");
		clean(&s, conf->alert_recipients[i],
		    strlen(conf->alert_recipients[i]), 1);
		strbuf_puts(&s, ">");
	}
	put_header(out, "To", s.s, 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "Postern alert: TLS delivery to %s failed", dom);
	put_header(out, "Subject", s.s, 0);
	strbuf_printf(out, "Date: %s\r\n", date);
	if (put_message_id(out, conf) == -1) {
		bsnprintf(why, whylen, "no random numbers for the Message-ID");
		truncate_to(out, start);
		goto done;
	}
	strbuf_puts(out, "Auto-Submitted: auto-generated\r\n");
	strbuf_puts(out, "MIME-Version: 1.0\r\n");
	strbuf_puts(out, "Content-Type: text/plain; charset=utf-8\r\n");

	strbuf_reset(&s);
	strbuf_printf(&s, "Postern on %s could not deliver mail for %s over "
	    "TLS.", conf->hostname, dom);
	put_para(&body, s.s);
	strbuf_puts(&body, "\r\n");
	put_item(&body, "Domain:", dom, 0);
	put_item(&body, "Host:", host != NULL && host[0] != '\0' ? hst :
	    "(not known)", 0);
	put_item(&body, "Reason:", reason != NULL && reason[0] != '\0' ?
	    reason : "(none given)", 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "%s (%s)", date, iso);
	put_item(&body, "Time:", s.s, 0);
	dest = dest_for(conf, dom);
	strbuf_reset(&s);
	if (dest != NULL)
		strbuf_printf(&s, "tls = \"%s\" (destinations entry \"%s\")",
		    dest_tls_name(dest->tls), dest->domain);
	else
		strbuf_printf(&s, "no entry in destinations (neither \"%s\" "
		    "nor \"*\")", dom);
	put_item(&body, "TLS policy:", s.s, 0);
	strbuf_puts(&body, "\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "Messages for %s stay in the queue and are retried "
	    "until delivery.max_queue_lifetime (%d seconds) runs out.  To see "
	    "them with each recipient's last error:", dom,
	    conf->max_queue_lifetime);
	put_para(&body, s.s);
	put_folded(&body, "       ", "       ", "postern queue list",
	    LINE_MAX_OCTETS);
	strbuf_puts(&body, "\r\nWhat to check:\r\n\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "1. The TLS policy for the domain: the tls setting "
	    "of its entry in destinations (or of the \"*\" entry) in %s.  "
	    "required-verify and preferred-verify need a certificate chain "
	    "that verifies against the trust store and names the host; "
	    "required needs the host to offer STARTTLS.", conf->path);
	put_folded(&body, "", "   ", s.s, 72);
	strbuf_puts(&body, "\r\n");
	strbuf_reset(&s);
	strbuf_printf(&s, "2. The trust store: if %s has a certificate from a "
	    "private or corporate CA, save the certificates it presents and "
	    "add its root (`postern trust list` shows what is trusted):", hst);
	put_folded(&body, "", "   ", s.s, 72);
	strbuf_reset(&s);
	strbuf_printf(&s, "postern cert fetch %s --starttls --out DIR", hst);
	put_folded(&body, "       ", "       ", s.s, LINE_MAX_OCTETS);
	put_folded(&body, "       ", "       ",
	    "postern trust add DIR/ROOT.pem --name NAME", LINE_MAX_OCTETS);
	strbuf_puts(&body, "\r\n");
	put_folded(&body, "", "   ", "3. The connection itself, step by step "
	    "(STARTTLS, protocol and cipher, certificate chain, verification, "
	    "host name), with what to fix:", 72);
	strbuf_reset(&s);
	strbuf_printf(&s, "postern probe %s --starttls", hst);
	put_folded(&body, "       ", "       ", s.s, LINE_MAX_OCTETS);
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	    mem_has_8bit(body.s, body.len) ? "8bit" : "7bit");
	strbuf_add(out, body.s, body.len);
	r = 0;
done:
	free(dom);
	free(hst);
	strbuf_free(&s);
	strbuf_free(&body);
	return r;
}

/* -------------------------------------------------------------- envelope */

void
dsn_envelope(struct envelope *env, const struct conf *conf, uint64_t mid,
    const char *from, const char *const *rcpts, size_t nrcpts,
    const char *data, size_t len, int64_t now)
{
	size_t i, hlen;
	int complete;

	envelope_init(env);
	env->mid = mid;
	env->received = now;
	bstrlcpy(env->client_ip, "local", sizeof(env->client_ip));
	bstrlcpy(env->helo, conf->hostname, sizeof(env->helo));
	bstrlcpy(env->from, from != NULL ? from : "", sizeof(env->from));
	env->smtputf8 = str_8bit(env->from);
	for (i = 0; i < nrcpts; i++) {
		envelope_add_rcpt(env, rcpts[i], SMTP_NOTIFY_NEVER, NULL);
		if (str_8bit(rcpts[i]))
			env->smtputf8 = 1;
	}
	hlen = msg_header_len(data, len, &complete);
	if (mem_has_8bit(data, hlen))
		env->smtputf8 = 1;
	env->body = mem_has_8bit(data, len) ? SMTP_BODY_8BITMIME : SMTP_BODY_7BIT;
	env->ret = SMTP_RET_UNSET;
	env->msg_size = len;
}
