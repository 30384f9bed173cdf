/*
 * bounce.c - bounces (RFC 3464 delivery status notifications in an RFC 6522
 * multipart/report); see bounce.h.  Alerts: alert.c; the text helpers
 * (folding, cleaning, dates): mailfmt.c.
 *
 * Fixed lines are written with CRLF directly; every line that holds
 * variable text passes through mailfmt_folded(), which writes CRLF line ends
 * only and never a line longer than 998 octets (folding at spaces near
 * 78 columns, splitting longer words at a UTF-8 boundary).  Text from outside (remote replies, the original's header
 * values, ORCPT and ENVID from the envelope) is first cleaned by mailfmt_clean():
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

#include "bounce.h"
#include "mailfmt.h"
#include "smtp_proto.h"
#include "util.h"


/* ---------------------------------------------------------------- helpers */


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
		if (col == MAILFMT_LINE_MAX) {
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
		else if (++col > MAILFMT_LINE_MAX)
			return 0;
	}
	return 1;
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
		if (mailfmt_rand_hex(hex, 16) == -1)
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


int
bounce_notify_failure(int notify)
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
		if (orig->msg_size > BOUNCE_FULL_MAX)
			op->why_not_full = "it is larger than this server "
			    "returns";
		else if (orig->body == SMTP_BODY_BINARYMIME)
			op->why_not_full = "it was sent as binary content";
		else
			op->full = 1;
	}
	want = op->full ? (size_t)orig->msg_size :
	    (size_t)(orig->msg_size < BOUNCE_HEADERS_MAX + 4 ? orig->msg_size :
	    BOUNCE_HEADERS_MAX + 4);
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
		if (hlen > BOUNCE_HEADERS_MAX || (!complete &&
		    want < orig->msg_size)) {
			/* Cut after the last whole line within the cap. */
			size_t cut = hlen > BOUNCE_HEADERS_MAX ? BOUNCE_HEADERS_MAX :
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
    const struct delivery_result *rc, size_t n)
{
	char date[64], buf[64];
	struct strbuf s = STRBUF_INIT;
	size_t i;

	strbuf_printf(&s, "This is the mail system at %s.", conf->hostname);
	mailfmt_para(t, s.s);
	strbuf_puts(t, "\r\n");
	mailfmt_para(t, n == 1 ?
	    "Your message could not be delivered to the recipient below. "
	    "This server has given up; the recipient has not received it." :
	    "Your message could not be delivered to the recipients below. "
	    "This server has given up; they have not received it.");
	strbuf_puts(t, "\r\n");
	strbuf_puts(t, "The message:\r\n");
	if (op->hs.subject[0] != '\0')
		mailfmt_item(t, "Subject:", op->hs.subject, 1);
	if (op->hs.message_id[0] != '\0')
		mailfmt_item(t, "Message-ID:", op->hs.message_id, 1);
	mailfmt_date(orig->received, date, sizeof(date));
	mailfmt_item(t, "Received:", date, 1);
	snprintf(buf, sizeof(buf), "MID %llu", (unsigned long long)orig->mid);
	mailfmt_item(t, "Queue ID:", buf, 1);
	strbuf_reset(&s);
	strbuf_printf(&s, "<%s>", orig->from);
	mailfmt_item(t, "Sender:", s.s, 1);
	for (i = 0; i < n; i++) {
		const char *st = status_valid(rc[i].status) ? rc[i].status :
		    "5.0.0";
		const char *addr = orig->rcpts[rc[i].rid].addr;
		strbuf_puts(t, "\r\n");
		strbuf_reset(&s);
		strbuf_puts(&s, "<");
		mailfmt_clean(&s, addr, strlen(addr), 1);
		strbuf_puts(&s, ">:");
		mailfmt_folded(t, "", "    ", s.s, 76);
		strbuf_reset(&s);
		strbuf_printf(&s, "%s (%s)", st, st[0] == '4' ?
		    "temporary failure; no more retries" : "permanent failure");
		mailfmt_item(t, "Status:", s.s, 1);
		if (rc[i].remote[0] != '\0')
			mailfmt_item(t, "Remote host:", rc[i].remote, 1);
		if (rc[i].text[0] != '\0')
			mailfmt_item(t, rc[i].smtp_diag ? "Reply:" : "Reason:",
			    rc[i].text, 1);
		if (rc[i].when > 0) {
			mailfmt_date(rc[i].when, date, sizeof(date));
			mailfmt_item(t, "Last attempt:", date, 1);
		}
		mailfmt_item(t, "What to do:", status_advice(st), 1);
	}
	strbuf_puts(t, "\r\n");
	if (op->full)
		mailfmt_para(t, "Attached: your whole message as it was "
		    "received, and the delivery report (for programs).");
	else {
		mailfmt_para(t, "Attached: the header section of your message, "
		    "and the delivery report (for programs).");
		if (op->why_not_full != NULL) {
			strbuf_reset(&s);
			strbuf_printf(&s, "You asked for the whole message to "
			    "be returned (RET=FULL), but only its header "
			    "section is attached: %s (%llu octets).",
			    op->why_not_full,
			    (unsigned long long)orig->msg_size);
			mailfmt_para(t, s.s);
		}
		if (op->truncated)
			mailfmt_para(t, "The header section was too long and is "
			    "cut short.");
	}
	strbuf_reset(&s);
	strbuf_printf(&s, "If you need help, forward this whole report to "
	    "your postmaster or to postmaster@%s.", conf->hostname);
	mailfmt_para(t, s.s);
	strbuf_free(&s);
}

/* "type; address" for Original-/Final-Recipient in either flavour. */
static void
put_recipient_field(struct strbuf *d, const char *name, const char *type,
    const char *addr, int global)
{
	struct strbuf v = STRBUF_INIT;

	if (global && mailfmt_has_8bit(addr) &&
	    utf8_valid((const unsigned char *)addr, strlen(addr)))
		type = "utf-8";
	strbuf_printf(&v, "%s; %s", type, addr);
	mailfmt_header(d, name, v.s, global);
	strbuf_free(&v);
}

/* Part 2: message/delivery-status (RFC 3464 2.2, 2.3). */
static void
bounce_status(struct strbuf *d, const struct conf *conf,
    const struct envelope *orig, const struct delivery_result *rc, size_t n,
    int global)
{
	struct strbuf v = STRBUF_INIT;
	char date[64], type[32], *addr;
	size_t i;

	strbuf_printf(&v, "dns; %s", conf->hostname);
	mailfmt_header(d, "Reporting-MTA", v.s, 0);
	strbuf_reset(&v);
	strbuf_printf(&v, "%llu", (unsigned long long)orig->mid);
	mailfmt_header(d, "X-Postern-Queue-ID", v.s, 0);
	if (orig->envid[0] != '\0') {
		strbuf_reset(&v);
		xtext_decode(&v, orig->envid);
		mailfmt_header(d, "Original-Envelope-Id", v.s, 0);
	}
	strbuf_reset(&v);
	strbuf_printf(&v, "rfc822; %s", orig->from);
	mailfmt_header(d, "X-Postern-Sender", v.s, global);
	mailfmt_date(orig->received, date, sizeof(date));
	mailfmt_header(d, "Arrival-Date", date, 0);
	for (i = 0; i < n; i++) {
		const char *st = status_valid(rc[i].status) ? rc[i].status :
		    "5.0.0";
		const struct env_rcpt *er = &orig->rcpts[rc[i].rid];
		strbuf_puts(d, "\r\n");
		if (er->orcpt[0] != '\0' &&
		    orcpt_decode(er->orcpt, type, sizeof(type), &addr) == 0) {
			put_recipient_field(d, "Original-Recipient", type,
			    addr, global);
			free(addr);
		}
		put_recipient_field(d, "Final-Recipient", "rfc822", er->addr,
		    global);
		mailfmt_header(d, "Action", "failed", 0);
		mailfmt_header(d, "Status", st, 0);
		if (rc[i].remote[0] != '\0') {
			strbuf_reset(&v);
			strbuf_printf(&v, "dns; %s", rc[i].remote);
			mailfmt_header(d, "Remote-MTA", v.s, global);
		}
		if (rc[i].text[0] != '\0') {
			strbuf_reset(&v);
			strbuf_printf(&v, "%s; %s", rc[i].smtp_diag ? "smtp" :
			    "X-Postern", rc[i].text);
			mailfmt_header(d, "Diagnostic-Code", v.s, global);
		}
		if (rc[i].when > 0) {
			mailfmt_date(rc[i].when, date, sizeof(date));
			mailfmt_header(d, "Last-Attempt-Date", date, 0);
		}
	}
	strbuf_free(&v);
}

/* Needs the RFC 6533 global types: an address (or the message) is
 * internationalised. */
static int
needs_global(const struct envelope *orig, const struct delivery_result *rc,
    size_t n)
{
	char type[32], *addr;
	size_t i;
	int r = orig->smtputf8 || mailfmt_has_8bit(orig->from);

	for (i = 0; i < n && !r; i++) {
		const struct env_rcpt *er = &orig->rcpts[rc[i].rid];
		r = mailfmt_has_8bit(er->addr);
		if (!r && er->orcpt[0] != '\0' &&
		    orcpt_decode(er->orcpt, type, sizeof(type), &addr) == 0) {
			r = mailfmt_has_8bit(addr);
			free(addr);
		}
	}
	return r;
}

int
bounce_build_bounce(struct strbuf *out, const struct conf *conf,
    const struct envelope *orig, int fd, const struct delivery_result *rc,
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
	for (i = 0; i < n; i++)
		if (rc[i].rid >= orig->nrcpts) {
			bsnprintf(why, whylen, "RID %zu is not a recipient of "
			    "MID %llu", rc[i].rid,
			    (unsigned long long)orig->mid);
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
		mailfmt_clean(&to, orig->from, strlen(orig->from), 1);
		strbuf_puts(&to, ">");
		mailfmt_header(out, "To", to.s, 1);
		strbuf_free(&to);
	}
	strbuf_puts(out, "Subject: Undelivered Mail Returned to Sender\r\n");
	mailfmt_date(now, date, sizeof(date));
	strbuf_printf(out, "Date: %s\r\n", date);
	if (mailfmt_message_id(out, conf->hostname) == -1) {
		bsnprintf(why, whylen, "no random numbers for the Message-ID");
		goto out;
	}
	if (msgid_usable(op.hs.message_id)) {
		mailfmt_header(out, "In-Reply-To", op.hs.message_id, 0);
		mailfmt_header(out, "References", op.hs.message_id, 0);
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
		strbuf_truncate(out, start);
	strbuf_free(&text);
	strbuf_free(&status);
	strbuf_free(&op.content);
	return r;
}
