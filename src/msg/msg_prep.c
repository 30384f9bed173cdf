/*
 * msg_prep.c - header field scanner and message preparation for sending
 * (see msg_prep.h): CRLF normalisation, Date / Message-ID when missing,
 * Bcc removed, envelope from From / To / Cc / Bcc.
 *
 * Public: msg_field_next, msg_field_is, msg_field_value, msg_from_address,
 * msg_count_lines, msg_prep_crlf, msg_prep_run, msg_prep_free.
 *
 * Threats: the message is untrusted.  The scanner only moves forward
 * over the buffer and never reads past len; values are unfolded into a
 * strbuf (bounded by the input); address lists go to addrlist_parse with
 * at most MSG_PREP_RCPTS_MAX addresses kept.  Fuzzed by
 * tests/fuzz/fuzz_msg_prep.c.
 */
#include <stdlib.h>
#include <string.h>

#include "addrlist.h"
#include "mailfmt.h"
#include "msg_prep.h"
#include "util.h"

/* End of the line at p (index after its CRLF, or len). */
static size_t
line_end(const char *m, size_t len, size_t p)
{
	const char *nl = memchr(m + p, '\n', len - p);

	return nl != NULL ? (size_t)(nl - m) + 1 : len;
}

int
msg_field_next(const char *m, size_t len, size_t *pos, struct msg_field *f)
{
	size_t p = *pos, i, e;
	unsigned char ch;

	if (p >= len || (len - p >= 2 && m[p] == '\r' && m[p + 1] == '\n') ||
	    m[p] == '\n')
		return 0;
	for (i = p; i < len; i++) {
		ch = (unsigned char)m[i];
		if (ch == ':' || ch <= 32 || ch >= 127)
			break;
	}
	if (i == p || i >= len || m[i] != ':')
		return -1;
	f->off = p;
	f->name_len = i - p;
	f->value_off = i + 1;
	e = line_end(m, len, i);
	while (e < len && (m[e] == ' ' || m[e] == '\t'))
		e = line_end(m, len, e);
	f->len = e - p;
	f->value_len = e - f->value_off;
	if (f->value_len >= 2 && m[e - 2] == '\r' && m[e - 1] == '\n')
		f->value_len -= 2;
	else if (f->value_len >= 1 && m[e - 1] == '\n')
		f->value_len -= 1;
	*pos = e;
	return 1;
}

int
msg_field_is(const char *m, const struct msg_field *f, const char *name)
{
	return strlen(name) == f->name_len &&
	    ascii_ncasecmp(m + f->off, name, f->name_len) == 0;
}

void
msg_field_value(const char *m, const struct msg_field *f, struct strbuf *out)
{
	const char *v = m + f->value_off;
	size_t n = f->value_len, i, start = out->len;

	for (i = 0; i < n; i++)
		if (v[i] != '\r' && v[i] != '\n')
			strbuf_putc(out, v[i]);
	strbuf_puts(out, "");
	while (out->len > start && (out->s[out->len - 1] == ' ' ||
	    out->s[out->len - 1] == '\t'))
		strbuf_truncate(out, out->len - 1);
	for (i = start; i < out->len && (out->s[i] == ' ' ||
	    out->s[i] == '\t'); i++)
		;
	if (i > start) {
		memmove(out->s + start, out->s + i, out->len - i);
		strbuf_truncate(out, out->len - (i - start));
	}
}

/* The first address of the first From: field. */
int
msg_from_address(const char *m, size_t len, char *addr, size_t addrlen)
{
	struct strbuf v = STRBUF_INIT;
	struct addrlist_addr a;
	struct msg_field f;
	const char *err;
	size_t pos = 0;
	int rc = -1;

	while (msg_field_next(m, len, &pos, &f) == 1) {
		if (!msg_field_is(m, &f, "From"))
			continue;
		msg_field_value(m, &f, &v);
		if (addrlist_parse(v.s, v.len, &a, 1, &err) >= 1 &&
		    strlen(a.addr) < addrlen) {
			bstrlcpy(addr, a.addr, addrlen);
			rc = 0;
		}
		break;
	}
	strbuf_free(&v);
	return rc;
}

void
msg_prep_crlf(const char *in, size_t len, struct strbuf *out)
{
	size_t i, run = 0;

	strbuf_grow(out, len + len / 32 + 2);
	for (i = 0; i < len; i++) {
		if (in[i] != '\r' && in[i] != '\n')
			continue;
		strbuf_add(out, in + run, i - run);
		strbuf_puts(out, "\r\n");
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			i++;
		run = i + 1;
	}
	strbuf_add(out, in + run, len - run);
}

/* How many line ends come before offset pos. */
size_t
msg_count_lines(const char *m, size_t pos)
{
	size_t i, n = 0;

	for (i = 0; i < pos; i++)
		n += m[i] == '\n';
	return n;
}

/* Add each address of an address-list field to the envelope. */
static int
add_addrs(struct msg_prep *p, const char *value, const char *field,
    char *why, size_t whylen)
{
	struct addrlist_addr *a;
	const char *err = NULL;
	size_t j, k;
	int n;

	a = xcalloc(MSG_PREP_RCPTS_MAX, sizeof(*a));
	n = addrlist_parse(value, strlen(value), a, MSG_PREP_RCPTS_MAX, &err);
	if (n < 0 || (size_t)n > MSG_PREP_RCPTS_MAX) {
		if (n < 0)
			(void)bsnprintf(why, whylen, "the %s: field does not "
			    "parse (%s)", field, err);
		else
			(void)bsnprintf(why, whylen, "the %s: field has more "
			    "than %d addresses", field, MSG_PREP_RCPTS_MAX);
		free(a);
		return -1;
	}
	for (j = 0; j < (size_t)n; j++) {
		for (k = 0; k < p->nrcpts; k++)
			if (ascii_casecmp(p->rcpts[k], a[j].addr) == 0)
				break;
		if (k < p->nrcpts)
			continue;
		if (p->nrcpts >= MSG_PREP_RCPTS_MAX) {
			(void)bsnprintf(why, whylen, "more than %d recipients",
			    MSG_PREP_RCPTS_MAX);
			free(a);
			return -1;
		}
		p->rcpts = xrealloc(p->rcpts, (p->nrcpts + 1) * sizeof(char *));
		p->rcpts[p->nrcpts++] = xstrdup(a[j].addr);
		if (mem_has_8bit(a[j].addr, strlen(a[j].addr)))
			p->utf8_addrs = 1;
	}
	free(a);
	return 0;
}

/* The first address of From: as the envelope sender. */
static void
take_from(struct msg_prep *p, const char *value)
{
	struct addrlist_addr a;
	const char *err;

	if (p->from != NULL || addrlist_parse(value, strlen(value), &a, 1,
	    &err) < 1)
		return;
	p->from = xstrdup(a.addr);
	if (mem_has_8bit(a.addr, strlen(a.addr)))
		p->utf8_addrs = 1;
}

/* Walk the header: copy every field but Bcc, note Date / Message-ID,
 * collect addresses.  Returns the offset of the body's empty line. */
static int
scan_header(struct msg_prep *p, const char *m, size_t len, int *has_date,
    int *has_mid, size_t *hend, char *why, size_t whylen)
{
	struct strbuf v = STRBUF_INIT;
	struct msg_field f;
	size_t pos = 0;
	int r, rc = 0;

	while ((r = msg_field_next(m, len, &pos, &f)) == 1) {
		strbuf_reset(&v);
		msg_field_value(m, &f, &v);
		if (msg_field_is(m, &f, "Date"))
			*has_date = 1;
		else if (msg_field_is(m, &f, "Message-ID"))
			*has_mid = 1;
		else if (msg_field_is(m, &f, "From")) {
			take_from(p, v.s);
			if (p->hdr_from == NULL)
				p->hdr_from = mailfmt_cleaned(v.s, 1);
		} else if (msg_field_is(m, &f, "To") && p->hdr_to == NULL)
			p->hdr_to = mailfmt_cleaned(v.s, 1);
		if ((msg_field_is(m, &f, "To") || msg_field_is(m, &f, "Cc") ||
		    msg_field_is(m, &f, "Bcc")) && v.len > 0 &&
		    add_addrs(p, v.s, msg_field_is(m, &f, "To") ? "To" :
		    msg_field_is(m, &f, "Cc") ? "Cc" : "Bcc", why,
		    whylen) == -1) {
			rc = -1;
			break;
		}
		if (!msg_field_is(m, &f, "Bcc")) {
			strbuf_add(&p->msg, m + f.off, f.len);
			if (m[f.off + f.len - 1] != '\n')
				strbuf_puts(&p->msg, "\r\n");	/* last line */
		}
	}
	if (rc == 0 && r == -1) {
		if (pos == 0)
			(void)bsnprintf(why, whylen, "the message does not "
			    "start with a header field (\"Name: value\")");
		else
			(void)bsnprintf(why, whylen, "line %zu of the header "
			    "is not a field (\"Name: value\") nor an empty "
			    "line before the body", msg_count_lines(m, pos) + 1);
		rc = -1;
	}
	*hend = pos;
	strbuf_free(&v);
	return rc;
}

int
msg_prep_run(struct msg_prep *p, const char *in, size_t len,
    const char *const *extra, size_t nextra, const char *hostname,
    int64_t now, char *why, size_t whylen)
{
	struct strbuf m = STRBUF_INIT;
	int has_date = 0, has_mid = 0;
	char date[64];
	size_t hend, i;

	memset(p, 0, sizeof(*p));
	msg_prep_crlf(in, len, &m);
	strbuf_puts(&m, "");
	if (scan_header(p, m.s, m.len, &has_date, &has_mid, &hend, why,
	    whylen) == -1)
		goto fail;
	for (i = 0; i < nextra; i++)
		if (add_addrs(p, extra[i], "Bcc", why, whylen) == -1)
			goto fail;
	if (!has_date) {
		mailfmt_date(now, date, sizeof(date));
		strbuf_printf(&p->msg, "Date: %s\r\n", date);
	}
	if (hostname == NULL)
		hostname = p->from != NULL && strrchr(p->from, '@') != NULL ?
		    strrchr(p->from, '@') + 1 : "localhost";
	if (!has_mid && mailfmt_message_id(&p->msg, hostname) == -1) {
		(void)bsnprintf(why, whylen, "no random numbers for the "
		    "Message-ID");
		goto fail;
	}
	if (hend >= m.len)
		strbuf_puts(&p->msg, "\r\n");	/* header only: empty body */
	else
		strbuf_add(&p->msg, m.s + hend, m.len - hend);
	p->eightbit = mem_has_8bit(p->msg.s, p->msg.len);
	if (p->hdr_from == NULL)
		p->hdr_from = xstrdup("");
	if (p->hdr_to == NULL)
		p->hdr_to = xstrdup("");
	strbuf_free(&m);
	return 0;
fail:
	strbuf_free(&m);
	msg_prep_free(p);
	return -1;
}

void
msg_prep_free(struct msg_prep *p)
{
	if (p == NULL)
		return;
	strbuf_free(&p->msg);
	free(p->from);
	strv_free(p->rcpts, p->nrcpts);
	free(p->hdr_from);
	free(p->hdr_to);
	memset(p, 0, sizeof(*p));
}
