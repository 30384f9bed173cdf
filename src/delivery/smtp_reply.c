/*
 * smtp_reply.c - parser of SMTP replies and of EHLO extension lists.
 * See smtp_reply.h.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "util.h"

void
smtp_reply_free(struct smtp_reply *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	memset(r, 0, sizeof(*r));
}

size_t
smtp_enhanced_code(const char *s, size_t len)
{
	size_t i = 0, part, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && n < 4 && s[i] >= '0' && s[i] <= '9';
		    i++)
			n++;
		if (n == 0 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ' && s[i] != '\t')
		return 0;
	return i;
}

const char *
smtp_reply_text(const struct smtp_reply *r, size_t i)
{
	const char *t;
	size_t n;

	if (i >= r->nlines)
		return "";
	t = r->lines[i];
	n = strlen(r->enhanced);
	if (n > 0 && strncmp(t, r->enhanced, n) == 0 &&
	    (t[n] == '\0' || t[n] == ' ' || t[n] == '\t')) {
		t += n;
		while (*t == ' ' || *t == '\t')
			t++;
	}
	return t;
}

void
smtp_reply_format(const struct smtp_reply *r, struct strbuf *sb,
    const char *sep)
{
	size_t i;
	int last;

	for (i = 0; i < r->nlines; i++) {
		last = i + 1 == r->nlines;
		if (i > 0)
			strbuf_puts(sb, sep);
		if (last && r->lines[i][0] == '\0')
			strbuf_printf(sb, "%03d", r->code);
		else
			strbuf_printf(sb, "%03d%c%s", r->code, last ? ' ' : '-',
			    r->lines[i]);
	}
}

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	p->len = 0;
	memset(&p->cur, 0, sizeof(p->cur));
	p->cap = 0;
	p->error = NULL;
	p->line[0] = '\0';
}

void
smtp_reply_parser_free(struct smtp_reply_parser *p)
{
	smtp_reply_free(&p->cur);
	p->cap = 0;
	p->len = 0;
}

const char *
smtp_reply_error(const struct smtp_reply_parser *p)
{
	return p->error;
}

size_t
smtp_reply_pending(const struct smtp_reply_parser *p)
{
	return p->len;
}

static int
fail(struct smtp_reply_parser *p, const char *why)
{
	p->error = why;
	return -1;
}

/* One complete line (without LF) in p->line.  1 = the reply is complete,
 * 0 = more lines follow, -1 = error. */
static int
process_line(struct smtp_reply_parser *p)
{
	const char *s = p->line;
	size_t n = p->len, tlen, i, elen;
	char *text;
	int code, last;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n < 3)
		return fail(p, n == 0 ? "empty line instead of a reply" :
		    "reply line too short for a reply code");
	if (s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' ||
	    s[2] < '0' || s[2] > '9')
		return fail(p, "reply line does not start with a valid "
		    "3-digit reply code");
	if (n > 3 && s[3] != '-' && s[3] != ' ')
		return fail(p, "reply code not followed by a space or hyphen");
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	last = n == 3 || s[3] == ' ';
	if (p->cur.nlines > 0 && code != p->cur.code)
		return fail(p, "reply code changes within a multi-line reply");
	if (p->cur.nlines >= SMTP_REPLY_LINES_MAX)
		return fail(p, "too many lines in one reply");

	tlen = n > 4 ? n - 4 : 0;
	text = xmalloc(tlen + 1);
	for (i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)s[4 + i];

		text[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	text[tlen] = '\0';
	if (p->cur.nlines == p->cap) {
		p->cap = p->cap == 0 ? 4 : p->cap * 2;
		p->cur.lines = xrealloc(p->cur.lines,
		    p->cap * sizeof(*p->cur.lines));
	}
	p->cur.lines[p->cur.nlines++] = text;
	if (p->cur.nlines == 1) {
		p->cur.code = code;
		elen = smtp_enhanced_code(text, tlen);
		if (elen > 0 && elen < sizeof(p->cur.enhanced) &&
		    text[0] == s[0]) {
			memcpy(p->cur.enhanced, text, elen);
			p->cur.enhanced[elen] = '\0';
		}
	}
	return last;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply_parser *p, const char *in, size_t len,
    size_t *used, struct smtp_reply *out)
{
	size_t i = 0, chunk;
	const char *lf;
	int r;

	*used = 0;
	if (p->error != NULL)
		return SMTP_REPLY_ERROR;
	while (i < len) {
		lf = memchr(in + i, '\n', len - i);
		chunk = lf != NULL ? (size_t)(lf - (in + i)) : len - i;
		/* A line may hold SMTP_REPLY_LINE_MAX octets with its LF. */
		if (chunk > SMTP_REPLY_LINE_MAX - 1 - p->len) {
			*used = i;
			fail(p, "reply line too long");
			return SMTP_REPLY_ERROR;
		}
		memcpy(p->line + p->len, in + i, chunk);
		p->len += chunk;
		i += chunk;
		if (lf == NULL)
			break;
		i++;		/* the LF */
		r = process_line(p);
		p->len = 0;
		if (r == -1) {
			*used = i;
			return SMTP_REPLY_ERROR;
		}
		if (r == 1) {
			*out = p->cur;
			memset(&p->cur, 0, sizeof(p->cur));
			p->cap = 0;
			*used = i;
			return SMTP_REPLY_DONE;
		}
	}
	*used = i;
	return SMTP_REPLY_MORE;
}

enum smtp_reply_status
smtp_reply_parse(const char *buf, size_t len, size_t *used,
    struct smtp_reply *out, const char **err)
{
	struct smtp_reply_parser *p = xmalloc(sizeof(*p));
	enum smtp_reply_status st;

	smtp_reply_parser_init(p);
	st = smtp_reply_feed(p, buf, len, used, out);
	if (err != NULL)
		*err = p->error;
	smtp_reply_parser_free(p);
	free(p);
	return st;
}

/* ---- EHLO ------------------------------------------------------------ */

/* Length of the ehlo-keyword at the start of s: ALPHA/DIGIT then also
 * "-" (RFC 5321 4.1.1.1).  0 if s does not start with one. */
static size_t
keyword_len(const char *s)
{
	size_t n = 0;

	while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
	    (s[n] >= '0' && s[n] <= '9') || (n > 0 && s[n] == '-'))
		n++;
	return n;
}

int
smtp_ehlo_has(const struct smtp_reply *r, const char *keyword,
    const char **params)
{
	size_t i, n, klen = strlen(keyword);
	const char *t;

	for (i = 1; i < r->nlines; i++) {
		t = r->lines[i];
		n = keyword_len(t);
		if (n == 0 || n != klen || ascii_ncasecmp(t, keyword, n) != 0)
			continue;
		if (t[n] != '\0' && t[n] != ' ' && t[n] != '\t')
			continue;
		t += n;
		while (*t == ' ' || *t == '\t')
			t++;
		if (params != NULL)
			*params = t;
		return 1;
	}
	return 0;
}

static const struct {
	const char	*name;
	unsigned	 bit;
} ext_names[] = {
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "SIZE", SMTP_EXT_SIZE },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
	{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
	{ "STARTTLS", SMTP_EXT_STARTTLS },
	{ "AUTH", SMTP_EXT_AUTH },
	{ "CHUNKING", SMTP_EXT_CHUNKING },
	{ "BINARYMIME", SMTP_EXT_BINARYMIME },
	{ "DSN", SMTP_EXT_DSN },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
	{ "REQUIRETLS", SMTP_EXT_REQUIRETLS },
};

static const struct {
	const char	*name;
	unsigned	 bit;
} auth_names[] = {
	{ "PLAIN", SMTP_AUTH_PLAIN },
	{ "LOGIN", SMTP_AUTH_LOGIN },
	{ "CRAM-MD5", SMTP_AUTH_CRAM_MD5 },
	{ "XOAUTH2", SMTP_AUTH_XOAUTH2 },
	{ "SCRAM-SHA-1", SMTP_AUTH_SCRAM_SHA_1 },
	{ "SCRAM-SHA-256", SMTP_AUTH_SCRAM_SHA_256 },
};

/* Is the mechanism m (length n, upper case) already in the list? */
static int
mech_listed(const char *list, const char *m, size_t n)
{
	const char *p = list;
	size_t wl;

	while (*p != '\0') {
		wl = strcspn(p, " ");
		if (wl == n && memcmp(p, m, n) == 0)
			return 1;
		p += wl;
		while (*p == ' ')
			p++;
	}
	return 0;
}

static void
parse_auth(struct smtp_ehlo *e, const char *params)
{
	const char *p = params;
	char m[64];
	size_t n, i, have;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 0)
			break;
		if (n < sizeof(m)) {
			for (i = 0; i < n; i++) {
				char c = p[i];

				m[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) :
				    c;
			}
			m[n] = '\0';
			for (i = 0; i < sizeof(auth_names) /
			    sizeof(auth_names[0]); i++)
				if (strcmp(m, auth_names[i].name) == 0)
					e->auth |= auth_names[i].bit;
			have = strlen(e->auth_mechs);
			if (!mech_listed(e->auth_mechs, m, n) &&
			    have + (have > 0) + n < sizeof(e->auth_mechs)) {
				if (have > 0)
					e->auth_mechs[have++] = ' ';
				memcpy(e->auth_mechs + have, m, n + 1);
			}
		}
		p += n;
	}
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	const char *t, *params;
	size_t i, k, n;
	uint64_t v;
	int ok;

	memset(e, 0, sizeof(*e));
	if (r->nlines == 0)
		return;
	t = r->lines[0];
	n = strcspn(t, " \t");
	if (n >= sizeof(e->domain))
		n = sizeof(e->domain) - 1;
	memcpy(e->domain, t, n);
	e->domain[n] = '\0';

	for (i = 1; i < r->nlines; i++) {
		t = r->lines[i];
		n = keyword_len(t);
		if (n == 0)
			continue;
		/* "AUTH=LOGIN PLAIN": pre-RFC 4954 servers (and clients) */
		if (n == 4 && t[4] == '=' && ascii_ncasecmp(t, "AUTH", 4) == 0) {
			e->ext |= SMTP_EXT_AUTH;
			parse_auth(e, t + 5);
			continue;
		}
		if (t[n] != '\0' && t[n] != ' ' && t[n] != '\t')
			continue;
		params = t + n;
		while (*params == ' ' || *params == '\t')
			params++;
		for (k = 0; k < sizeof(ext_names) / sizeof(ext_names[0]); k++) {
			if (strlen(ext_names[k].name) != n ||
			    ascii_ncasecmp(t, ext_names[k].name, n) != 0)
				continue;
			e->ext |= ext_names[k].bit;
			if (ext_names[k].bit == SMTP_EXT_AUTH)
				parse_auth(e, params);
			else if (ext_names[k].bit == SMTP_EXT_SIZE) {
				v = 0;
				ok = *params >= '0' && *params <= '9';
				for (; *params >= '0' && *params <= '9';
				    params++) {
					if (v > (UINT64_MAX - 9) / 10) {
						ok = 0;
						break;
					}
					v = v * 10 + (uint64_t)(*params - '0');
				}
				e->size = ok ? v : 0;
			}
		}
	}
}
