/*
 * smtp_proto.c - pure SMTP protocol parsers (see smtp_proto.h).
 *
 * Owns: command line splitting (smtp_cmd_parse), path parsing
 * (smtp_path_parse), MAIL/RCPT parameters (smtp_mail_parse,
 * smtp_rcpt_parse), BDAT and HELO arguments, the DATA/BDAT content
 * scanner (smtp_data_*) and the header scanner (msg_header_scan_*).
 *
 * Every input here comes straight from the network.  The rules:
 *  - no allocation, no I/O, bounded writes into caller-owned storage;
 *  - reply strings are static, so callers may send them as they are;
 *  - the DATA scanner is a byte-wise state machine whose result does not
 *    depend on how the input is cut into chunks.  End of data is
 *    <CRLF>.<CRLF> and nothing else (SMTP smuggling: a "." line after a
 *    bare LF or bare CR never ends the message).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "smtp_proto.h"
#include "util.h"

#define R_BAD_SENDER	"501 5.1.7 Bad sender address syntax"
#define R_BAD_RCPT	"501 5.1.3 Bad recipient address syntax"
#define R_TOO_LONG	"501 5.5.4 Path too long"
#define R_MAIL_SYNTAX	"501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX	"501 5.5.4 Syntax: RCPT TO:<address>"
#define R_PARAM_SYNTAX	"501 5.5.4 Syntax error in parameters"
#define R_NEED_UTF8	"553 5.6.7 SMTPUTF8 required for non-ASCII address"
#define R_BDAT_SYNTAX	"501 5.5.4 Syntax: BDAT <size> [LAST]"

#define BDAT_SIZE_MAX	UINT64_C(0x7fffffffffffffff)
#define HEADER_VALUE_MAX 998		/* RFC 5322 2.1.1 line limit */

/* DATA scanner states (struct smtp_data_scanner.state). */
enum data_state {
	DS_LINE_START = 0,	/* at the start of a line */
	DS_TEXT,		/* inside a line */
	DS_CR,			/* CR seen, LF may follow */
	DS_DOT,			/* "." at a line start (DATA only) */
	DS_DOT_CR		/* ".\r" seen at a line start (DATA only) */
};

/* Header scanner phases and wanted fields (struct msg_header_scan). */
enum hdr_phase { HS_NAME = 0, HS_VALUE, HS_SKIP };
#define HF_SUBJECT	0x1
#define HF_MESSAGE_ID	0x2
#define HF_FROM		0x4		/* all kept, never "seen" */

/* Cursor over an untrusted byte string, used by the path parser. */
struct cursor {
	const unsigned char	*p;
	size_t			 len;
	size_t			 pos;
	int			 utf8;
};

typedef int (*param_fn)(void *, const char *, size_t);

/* One ESMTP parameter that MAIL or RCPT understands. */
struct param_def {
	const char	*name;
	int		 takes_value;
	param_fn	 parse;
	const char	*bad;		/* reply for a malformed value */
};

/* The parameters of one command and its replies. */
struct param_set {
	const struct param_def	*defs;
	size_t			 ndefs;
	const char		*bad_path;
	const char		*unknown;
	const char		*dup;
};

static int	is_alpha(int);
static int	is_digit(int);
static int	is_hex(int);
static int	is_atext(int);
static size_t	utf8_cut_partial(const char *, size_t);
static int	xtext_valid(const char *, size_t);
static int	peek(const struct cursor *);
static int	scan_dot_atom(struct cursor *);
static int	scan_quoted(struct cursor *);
static int	scan_domain(struct cursor *);
static int	scan_addr_literal(struct cursor *);
static int	scan_route(struct cursor *);
static int	path_finish(const struct cursor *, size_t, size_t, size_t,
		    struct smtp_path *, const char **, const char *);
static int	keyword_valid(const char *, size_t);
static int	value_valid(const char *, size_t);
static int	params_parse(const struct param_set *, const char *, size_t,
		    void *, const char **);
static int	mail_size(void *, const char *, size_t);
static int	mail_body(void *, const char *, size_t);
static int	mail_smtputf8(void *, const char *, size_t);
static int	mail_ret(void *, const char *, size_t);
static int	mail_envid(void *, const char *, size_t);
static int	mail_auth(void *, const char *, size_t);
static int	rcpt_notify(void *, const char *, size_t);
static int	rcpt_orcpt(void *, const char *, size_t);
static int	word_is(const char *, size_t, const char *);
static int	data_writable(const struct smtp_data_scanner *);
static void	data_emit(struct smtp_data_scanner *, struct strbuf *,
		    const char *, size_t);
static void	data_content(struct smtp_data_scanner *, struct strbuf *,
		    const char *, size_t);
static void	data_crlf_end(struct smtp_data_scanner *, struct strbuf *);
static void	data_bare_end(struct smtp_data_scanner *, struct strbuf *);
static size_t	text_span(const unsigned char *, size_t);
static void	hdr_name_end(struct msg_header_scan *);
static void	hdr_value_byte(struct msg_header_scan *, unsigned char);
static void	hdr_byte(struct msg_header_scan *, unsigned char);
static void	hdr_add_from(struct msg_header_scan *, const char *, size_t,
		    int);
static void	hdr_flush(struct msg_header_scan *);
static void	hdr_content(struct msg_header_scan *, unsigned char);
static void	hdr_eol(struct msg_header_scan *);

static const char *const verb_names[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",
	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL",
	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",
	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",
	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_STARTTLS] = "STARTTLS",
	[SMTP_VERB_AUTH] = "AUTH",
};

/* RFC 1870, 6152, 6531, 3461 and 4954 (AUTH=, accepted and ignored). */
static const struct param_def mail_defs[] = {
	{ "SIZE", 1, mail_size, "501 5.5.4 Bad SIZE parameter" },
	{ "BODY", 1, mail_body, "501 5.5.4 Bad BODY parameter" },
	{ "SMTPUTF8", 0, mail_smtputf8, "501 5.5.4 SMTPUTF8 takes no value" },
	{ "RET", 1, mail_ret, "501 5.5.4 Bad RET parameter" },
	{ "ENVID", 1, mail_envid, "501 5.5.4 Bad ENVID parameter" },
	{ "AUTH", 1, mail_auth, "501 5.5.4 Bad AUTH parameter" },
};

static const struct param_set mail_set = {
	mail_defs, sizeof(mail_defs) / sizeof(mail_defs[0]), R_BAD_SENDER,
	"555 5.5.4 Unsupported MAIL parameter",
	"501 5.5.4 Duplicate MAIL parameter"
};

/* RFC 3461 section 4. */
static const struct param_def rcpt_defs[] = {
	{ "NOTIFY", 1, rcpt_notify, "501 5.5.4 Bad NOTIFY parameter" },
	{ "ORCPT", 1, rcpt_orcpt, "501 5.5.4 Bad ORCPT parameter" },
};

static const struct param_set rcpt_set = {
	rcpt_defs, sizeof(rcpt_defs) / sizeof(rcpt_defs[0]), R_BAD_RCPT,
	"555 5.5.4 Unsupported RCPT parameter",
	"501 5.5.4 Duplicate RCPT parameter"
};

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 3.2.3 atext, ASCII part. */
static int
is_atext(int c)
{
	return is_alpha(c) || is_digit(c) ||
	    (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of s[0..n) without a UTF-8 sequence cut short at its end. */
static size_t
utf8_cut_partial(const char *s, size_t n)
{
	size_t i = n, k = 0, need;
	unsigned char lead;

	while (i > 0 && k < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--, k++;
	if (i == 0)
		return n;
	lead = (unsigned char)s[i - 1];
	if (lead < 0xc0)
		return n;
	need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : 1;
	return k < need ? i - 1 : n;
}

/* RFC 3461 4: xtext = *( xchar / "+" 2HEXDIG ); at least one char here. */
static int
xtext_valid(const char *s, size_t n)
{
	size_t i;
	int c;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '+') {
			if (n - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
				return 0;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

/* Split a command line into verb and arguments (RFC 5321 4.1.1). */
int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t i, vlen, end;
	int v;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->args = "";
	cmd->args_len = 0;
	for (i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return -1;
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	if (vlen == 0)
		return -1;
	for (v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == vlen &&
		    ascii_ncasecmp(line, verb_names[v], vlen) == 0) {
			cmd->verb = (enum smtp_verb)v;
			break;
		}
	}
	for (i = vlen; i < len && line[i] == ' '; i++)
		;
	for (end = len; end > i && line[end - 1] == ' '; end--)
		;
	if (end > i) {
		cmd->args = line + i;
		cmd->args_len = end - i;
	}
	return 0;
}

/* Upper-case name of a verb, for logs and replies. */
const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((int)v < 0 || v >= SMTP_VERB_COUNT)
		return verb_names[SMTP_VERB_UNKNOWN];
	return verb_names[v];
}

static int
peek(const struct cursor *c)
{
	return c->pos < c->len ? c->p[c->pos] : -1;
}

/* RFC 5321 4.1.2 Dot-string, with RFC 6531 UTF-8 octets. */
static int
scan_dot_atom(struct cursor *c)
{
	size_t start;

	for (;;) {
		start = c->pos;
		while (c->pos < c->len &&
		    (is_atext(c->p[c->pos]) || c->p[c->pos] >= 0x80)) {
			if (c->p[c->pos] >= 0x80)
				c->utf8 = 1;
			c->pos++;
		}
		if (c->pos == start)
			return -1;
		if (peek(c) != '.')
			return 0;
		c->pos++;
	}
}

/* RFC 5321 4.1.2 Quoted-string: qtextSMTP / quoted-pairSMTP. */
static int
scan_quoted(struct cursor *c)
{
	int ch;

	c->pos++;			/* opening DQUOTE */
	while (c->pos < c->len) {
		ch = c->p[c->pos++];
		if (ch == '"')
			return 0;
		if (ch == '\\') {
			if (c->pos >= c->len)
				return -1;
			ch = c->p[c->pos++];
			if (ch < 32 || ch > 126)
				return -1;
		} else if (ch >= 0x80)
			c->utf8 = 1;
		else if (ch < 32 || ch == 127)
			return -1;
	}
	return -1;
}

/*
 * RFC 5321 4.1.2 Domain: sub-domain *("." sub-domain), each a letter-digit-
 * hyphen label not starting or ending with "-".  U-labels (RFC 6531) may
 * carry UTF-8 octets; ASCII labels are limited to 63 octets (RFC 1035).
 */
static int
scan_domain(struct cursor *c)
{
	size_t start;
	int ascii, ch;

	for (;;) {
		start = c->pos;
		ascii = 1;
		while (c->pos < c->len) {
			ch = c->p[c->pos];
			if (ch >= 0x80)
				ascii = 0;
			else if (!is_alpha(ch) && !is_digit(ch) && ch != '-')
				break;
			c->pos++;
		}
		if (c->pos == start || c->p[start] == '-' ||
		    c->p[c->pos - 1] == '-' || (ascii && c->pos - start > 63))
			return -1;
		if (!ascii)
			c->utf8 = 1;
		if (peek(c) != '.')
			return 0;
		c->pos++;
	}
}

/* RFC 5321 4.1.3 address literal: "[" IPv4 / "IPv6:" IPv6 "]". */
static int
scan_addr_literal(struct cursor *c)
{
	char text[64];
	unsigned char bin[16];
	size_t start, n;

	start = ++c->pos;		/* after "[" */
	while (c->pos < c->len && c->p[c->pos] != ']')
		c->pos++;
	if (c->pos >= c->len)
		return -1;
	n = c->pos - start;
	c->pos++;			/* "]" */
	if (n == 0 || n >= sizeof(text))
		return -1;
	memcpy(text, c->p + start, n);
	text[n] = '\0';
	if (strlen(text) != n)
		return -1;
	if (n > 5 && ascii_ncasecmp(text, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, text + 5, bin) == 1 ? 0 : -1;
	return inet_pton(AF_INET, text, bin) == 1 ? 0 : -1;
}

/* RFC 5321 4.1.2 A-d-l: "@" Domain *("," "@" Domain) ":" (ignored). */
static int
scan_route(struct cursor *c)
{
	for (;;) {
		if (peek(c) != '@')
			return -1;
		c->pos++;
		if (scan_domain(c) == -1)
			return -1;
		if (peek(c) == ':') {
			c->pos++;
			return 0;
		}
		if (peek(c) != ',')
			return -1;
		c->pos++;
	}
}

/* Check the limits of a parsed path and copy its parts out. */
static int
path_finish(const struct cursor *c, size_t local, size_t at, size_t gt,
    struct smtp_path *path, const char **reply, const char *bad)
{
	size_t llen = at - local, dlen = gt - at - 1;

	if (c->pos > SMTP_PATH_MAX || llen > SMTP_LOCAL_MAX ||
	    dlen > SMTP_DOMAIN_MAX) {
		*reply = R_TOO_LONG;
		return -1;
	}
	if (c->utf8 && !utf8_valid(c->p + 1, c->pos - 2)) {
		*reply = bad;
		return -1;
	}
	memcpy(path->local, c->p + local, llen);
	path->local[llen] = '\0';
	memcpy(path->addr, c->p + local, gt - local);
	path->addr[gt - local] = '\0';
	memcpy(path->domain, c->p + at + 1, dlen);
	path->domain[dlen] = '\0';
	path->utf8 = c->utf8;
	return 0;
}

/* Parse "<local@domain>", "<>" or RCPT's "<postmaster>" (RFC 5321 4.1.2). */
int
smtp_path_parse(const char *s, size_t len, int allow_null, int is_rcpt,
    struct smtp_path *path, size_t *used, const char **reply)
{
	struct cursor c = { (const unsigned char *)s, len, 0, 0 };
	const char *bad = is_rcpt ? R_BAD_RCPT : R_BAD_SENDER;
	size_t local, at;
	int route = 0, r;

	memset(path, 0, sizeof(*path));
	*used = 0;
	*reply = bad;
	if (peek(&c) != '<')
		return -1;
	c.pos++;
	if (peek(&c) == '>') {
		if (!allow_null)
			return -1;
		*used = 2;
		*reply = NULL;
		return 0;
	}
	if (peek(&c) == '@') {
		if (scan_route(&c) == -1)
			return -1;
		route = 1;
	}
	local = c.pos;
	r = peek(&c) == '"' ? scan_quoted(&c) : scan_dot_atom(&c);
	if (r == -1)
		return -1;
	at = c.pos;
	if (peek(&c) == '>' && is_rcpt && !route && at - local == 10 &&
	    ascii_ncasecmp(s + local, "postmaster", 10) == 0) {
		/* RFC 5321 4.5.1: "<Postmaster>", stored as "postmaster". */
		c.pos++;
		bstrlcpy(path->addr, "postmaster", sizeof(path->addr));
		bstrlcpy(path->local, "postmaster", sizeof(path->local));
		*used = c.pos;
		*reply = NULL;
		return 0;
	}
	if (peek(&c) != '@')
		return -1;
	c.pos++;
	r = peek(&c) == '[' ? scan_addr_literal(&c) : scan_domain(&c);
	if (r == -1 || peek(&c) != '>')
		return -1;
	c.pos++;
	if (path_finish(&c, local, at, c.pos - 1, path, reply, bad) == -1)
		return -1;
	*used = c.pos;
	*reply = NULL;
	return 0;
}

/* RFC 5321 4.1.2 esmtp-keyword. */
static int
keyword_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || (!is_alpha(s[0]) && !is_digit(s[0])))
		return 0;
	for (i = 1; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* RFC 5321 4.1.2 esmtp-value, with RFC 6531 UTF-8. */
static int
value_valid(const char *s, size_t n)
{
	size_t i;
	int c, high = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x80)
			high = 1;
		else if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return !high || utf8_valid((const unsigned char *)s, n);
}

/*
 * Parse " KEY[=VALUE] KEY[=VALUE]..." following a path.  Each keyword may
 * appear once; unknown keywords get 555 (RFC 5321 4.1.1.11).
 */
static int
params_parse(const struct param_set *set, const char *s, size_t len,
    void *arg, const char **reply)
{
	const struct param_def *def;
	size_t pos = 0, kw, kwlen, val, vlen, i;
	uint32_t seen = 0;
	int has_val;

	while (pos < len) {
		if (s[pos] != ' ') {
			*reply = set->bad_path;
			return -1;
		}
		while (pos < len && s[pos] == ' ')
			pos++;
		if (pos == len)
			break;
		kw = pos;
		while (pos < len && s[pos] != ' ' && s[pos] != '=')
			pos++;
		kwlen = pos - kw;
		has_val = pos < len && s[pos] == '=';
		val = has_val ? ++pos : pos;
		while (has_val && pos < len && s[pos] != ' ')
			pos++;
		vlen = pos - val;
		if (!keyword_valid(s + kw, kwlen) ||
		    (has_val && !value_valid(s + val, vlen))) {
			*reply = R_PARAM_SYNTAX;
			return -1;
		}
		for (i = 0; i < set->ndefs; i++)
			if (word_is(s + kw, kwlen, set->defs[i].name))
				break;
		if (i == set->ndefs) {
			*reply = set->unknown;
			return -1;
		}
		if (seen & (UINT32_C(1) << i)) {
			*reply = set->dup;
			return -1;
		}
		seen |= UINT32_C(1) << i;
		def = &set->defs[i];
		if (def->takes_value != has_val ||
		    def->parse(arg, s + val, vlen) == -1) {
			*reply = def->bad;
			return -1;
		}
	}
	return 0;
}

/* Is s[0..n) equal to word, ignoring ASCII case? */
static int
word_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && ascii_ncasecmp(s, word, n) == 0;
}

/* RFC 1870 SIZE=1*20DIGIT. */
static int
mail_size(void *arg, const char *v, size_t n)
{
	struct smtp_mail_params *mp = arg;
	uint64_t size = 0, d;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (!is_digit(v[i]))
			return -1;
		d = (uint64_t)(v[i] - '0');
		if (size > (UINT64_MAX - d) / 10)
			return -1;
		size = size * 10 + d;
	}
	mp->size = size;
	return 0;
}

/* RFC 6152 / 3030 BODY=7BIT|8BITMIME|BINARYMIME. */
static int
mail_body(void *arg, const char *v, size_t n)
{
	struct smtp_mail_params *mp = arg;

	if (word_is(v, n, "7BIT"))
		mp->body = SMTP_BODY_7BIT;
	else if (word_is(v, n, "8BITMIME"))
		mp->body = SMTP_BODY_8BITMIME;
	else if (word_is(v, n, "BINARYMIME"))
		mp->body = SMTP_BODY_BINARYMIME;
	else
		return -1;
	return 0;
}

/* RFC 6531 3.4 SMTPUTF8 (no value). */
static int
mail_smtputf8(void *arg, const char *v, size_t n)
{
	struct smtp_mail_params *mp = arg;

	mp->smtputf8 = 1;
	return 0;
}

/* RFC 3461 4.3 RET=FULL|HDRS. */
static int
mail_ret(void *arg, const char *v, size_t n)
{
	struct smtp_mail_params *mp = arg;

	if (word_is(v, n, "FULL"))
		mp->ret = SMTP_RET_FULL;
	else if (word_is(v, n, "HDRS"))
		mp->ret = SMTP_RET_HDRS;
	else
		return -1;
	return 0;
}

/* RFC 3461 4.4 ENVID=xtext, at most 100 characters. */
static int
mail_envid(void *arg, const char *v, size_t n)
{
	struct smtp_mail_params *mp = arg;

	if (n >= sizeof(mp->envid) || !xtext_valid(v, n))
		return -1;
	memcpy(mp->envid, v, n);
	mp->envid[n] = '\0';
	return 0;
}

/*
 * RFC 4954 5 AUTH=xtext: checked and dropped.  We never trust a client's
 * claim about who submitted the message, which that section allows.
 */
static int
mail_auth(void *arg, const char *v, size_t n)
{
	return xtext_valid(v, n) ? 0 : -1;
}

/* RFC 3461 4.1 NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static int
rcpt_notify(void *arg, const char *v, size_t n)
{
	struct smtp_rcpt_params *rp = arg;
	size_t start = 0, i;
	int flags = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && v[i] != ',')
			continue;
		if (word_is(v + start, i - start, "NEVER"))
			flags |= SMTP_NOTIFY_NEVER;
		else if (word_is(v + start, i - start, "SUCCESS"))
			flags |= SMTP_NOTIFY_SUCCESS;
		else if (word_is(v + start, i - start, "FAILURE"))
			flags |= SMTP_NOTIFY_FAILURE;
		else if (word_is(v + start, i - start, "DELAY"))
			flags |= SMTP_NOTIFY_DELAY;
		else
			return -1;
		start = i + 1;
	}
	if ((flags & SMTP_NOTIFY_NEVER) && flags != SMTP_NOTIFY_NEVER)
		return -1;
	rp->notify = flags;
	return 0;
}

/* RFC 3461 4.2 ORCPT=addr-type ";" xtext (RFC 6533: utf-8 may be raw). */
static int
rcpt_orcpt(void *arg, const char *v, size_t n)
{
	struct smtp_rcpt_params *rp = arg;
	size_t i;

	for (i = 0; i < n && v[i] != ';'; i++)
		if (!is_alpha(v[i]) && !is_digit(v[i]) && v[i] != '-')
			return -1;
	if (i == 0 || i + 1 >= n || n >= sizeof(rp->orcpt))
		return -1;
	if (word_is(v, i, "rfc822") && !xtext_valid(v + i + 1, n - i - 1))
		return -1;
	memcpy(rp->orcpt, v, n);
	rp->orcpt[n] = '\0';
	return 0;
}

/* Parse MAIL arguments "FROM:<path> [params]" (RFC 5321 4.1.1.2). */
int
smtp_mail_parse(const char *args, size_t len, struct smtp_path *path,
    struct smtp_mail_params *mp, const char **reply)
{
	size_t pos = 5, used;

	memset(path, 0, sizeof(*path));
	memset(mp, 0, sizeof(*mp));
	*reply = R_MAIL_SYNTAX;
	if (len < 5 || ascii_ncasecmp(args, "FROM:", 5) != 0)
		return -1;
	if (pos < len && args[pos] == ' ')
		pos++;
	if (pos == len)
		return -1;
	if (smtp_path_parse(args + pos, len - pos, 1, 0, path, &used,
	    reply) == -1)
		return -1;
	pos += used;
	if (params_parse(&mail_set, args + pos, len - pos, mp, reply) == -1)
		return -1;
	if (path->utf8 && !mp->smtputf8) {
		*reply = R_NEED_UTF8;
		return -1;
	}
	*reply = NULL;
	return 0;
}

/* Parse RCPT arguments "TO:<path> [params]" (RFC 5321 4.1.1.3). */
int
smtp_rcpt_parse(const char *args, size_t len, struct smtp_path *path,
    struct smtp_rcpt_params *rp, const char **reply)
{
	size_t pos = 3, used;

	memset(path, 0, sizeof(*path));
	memset(rp, 0, sizeof(*rp));
	*reply = R_RCPT_SYNTAX;
	if (len < 3 || ascii_ncasecmp(args, "TO:", 3) != 0)
		return -1;
	if (pos < len && args[pos] == ' ')
		pos++;
	if (pos == len)
		return -1;
	if (smtp_path_parse(args + pos, len - pos, 0, 1, path, &used,
	    reply) == -1)
		return -1;
	pos += used;
	if (params_parse(&rcpt_set, args + pos, len - pos, rp, reply) == -1)
		return -1;
	*reply = NULL;
	return 0;
}

/* Parse BDAT arguments "<size> [LAST]" (RFC 3030 2); size < 2^63. */
int
smtp_bdat_parse(const char *args, size_t len, uint64_t *size, int *last,
    const char **reply)
{
	size_t pos = 0, start;
	uint64_t v = 0, d;

	*size = 0;
	*last = 0;
	*reply = R_BDAT_SYNTAX;
	while (pos < len && args[pos] == ' ')
		pos++;
	while (len > pos && args[len - 1] == ' ')
		len--;
	for (start = pos; pos < len && is_digit(args[pos]); pos++) {
		d = (uint64_t)(args[pos] - '0');
		if (v > (BDAT_SIZE_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (pos == start)
		return -1;
	if (pos < len) {
		if (args[pos] != ' ')
			return -1;
		while (pos < len && args[pos] == ' ')
			pos++;
		if (!word_is(args + pos, len - pos, "LAST"))
			return -1;
		*last = 1;
	}
	*size = v;
	*reply = NULL;
	return 0;
}

/*
 * Check a HELO/EHLO argument.  RFC 5321 wants a domain or an address
 * literal, but many clients send odd names, so any printable token
 * (UTF-8 allowed) without spaces is accepted.
 */
int
smtp_helo_parse(const char *args, size_t len)
{
	size_t i, start = 0;
	int c, high = 0;

	while (start < len && args[start] == ' ')
		start++;
	while (len > start && args[len - 1] == ' ')
		len--;
	if (len == start || len - start > SMTP_DOMAIN_MAX)
		return -1;
	for (i = start; i < len; i++) {
		c = (unsigned char)args[i];
		if (c >= 0x80)
			high = 1;
		else if (c <= ' ' || c == 127)
			return -1;
	}
	if (high && !utf8_valid((const unsigned char *)args + start,
	    len - start))
		return -1;
	return 0;
}

/* Prepare a DATA (bdat = 0) or BDAT (bdat = 1) content scanner. */
void
smtp_data_init(struct smtp_data_scanner *ds, size_t max_line, int normalize,
    int bdat)
{
	memset(ds, 0, sizeof(*ds));
	ds->max_line = max_line;
	ds->normalize = normalize != 0;
	ds->bdat = bdat != 0;
	ds->state = DS_LINE_START;
	ds->crlf_start = 1;	/* the first line counts as after CRLF */
}

/* Content goes to out only while no flag refuses the message. */
static int
data_writable(const struct smtp_data_scanner *ds)
{
	if (ds->line_too_long)
		return 0;
	return ds->normalize || !ds->bare_seen;
}

static void
data_emit(struct smtp_data_scanner *ds, struct strbuf *out, const char *p,
    size_t n)
{
	if (n == 0 || !data_writable(ds))
		return;
	strbuf_add(out, p, n);
	ds->out_octets += n;
}

/*
 * Write n content octets (no CR or LF).  Line length counts the content
 * as stored, after unstuffing; the octet past max_line sets the flag.
 */
static void
data_content(struct smtp_data_scanner *ds, struct strbuf *out, const char *p,
    size_t n)
{
	size_t room;

	room = ds->line_len < ds->max_line ? ds->max_line - ds->line_len : 0;
	data_emit(ds, out, p, n < room ? n : room);
	if (n > room) {
		ds->line_too_long = 1;
		ds->line_len = ds->max_line + 1;	/* saturate */
	} else
		ds->line_len += n;
}

static void
data_crlf_end(struct smtp_data_scanner *ds, struct strbuf *out)
{
	data_emit(ds, out, "\r\n", 2);
	ds->line_len = 0;
	ds->crlf_start = 1;
	ds->state = DS_LINE_START;
}

/* A bare CR or LF ends the line, but a "." after it never ends data. */
static void
data_bare_end(struct smtp_data_scanner *ds, struct strbuf *out)
{
	ds->bare_seen = 1;
	if (ds->normalize)
		data_emit(ds, out, "\r\n", 2);
	ds->line_len = 0;
	ds->crlf_start = 0;
	ds->state = DS_LINE_START;
}

static size_t
text_span(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != '\r' && p[i] != '\n'; i++)
		;
	return i;
}

/*
 * Scan a chunk of DATA or BDAT content (RFC 5321 4.1.1.4, 4.5.2; RFC 3030).
 * The state kept between calls is one pending CR or line-start dot.
 */
size_t
smtp_data_feed(struct smtp_data_scanner *ds, const char *in, size_t len,
    struct strbuf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, n;

	if (ds->done)
		return 0;
	while (i < len) {
		switch (ds->state) {
		case DS_LINE_START:
			if (!ds->bdat && p[i] == '.') {
				ds->state = DS_DOT;	/* stuffing or end */
				i++;
				break;
			}
			ds->state = DS_TEXT;
			/* FALLTHROUGH */
		case DS_TEXT:
			n = text_span(p + i, len - i);
			if (n > 0) {
				data_content(ds, out, in + i, n);
				i += n;
			} else if (p[i++] == '\r')
				ds->state = DS_CR;
			else
				data_bare_end(ds, out);
			break;
		case DS_CR:
			if (p[i] == '\n') {
				data_crlf_end(ds, out);
				i++;
			} else
				data_bare_end(ds, out);	/* rescan p[i] */
			break;
		case DS_DOT:
			if (p[i] == '\r') {
				ds->state = DS_DOT_CR;
				i++;
			} else if (p[i] == '\n') {
				/* A lone "." is content, not stuffing (4.5.2). */
				data_content(ds, out, ".", 1);
				data_bare_end(ds, out);
				i++;
			} else
				ds->state = DS_TEXT;	/* it was stuffing */
			break;
		case DS_DOT_CR:
			if (p[i] != '\n') {
				data_content(ds, out, ".", 1);
				data_bare_end(ds, out);	/* rescan p[i] */
				break;
			}
			i++;
			if (ds->crlf_start) {
				ds->done = 1;
				return i;
			}
			/* "." after a bare line end: content, never the end. */
			data_content(ds, out, ".", 1);
			data_crlf_end(ds, out);
			break;
		default:
			/* Corrupt state: refuse the message, keep in sync. */
			ds->bare_seen = ds->line_too_long = 1;
			ds->state = DS_TEXT;
			break;
		}
	}
	return len;
}

/* End of a BDAT transfer (RFC 3030): a CR still waiting for LF is bare. */
void
smtp_data_finish(struct smtp_data_scanner *ds, struct strbuf *out)
{
	if (ds->done)
		return;
	/* A pending line-start "." is content: the line has no end. */
	if (ds->state == DS_DOT || ds->state == DS_DOT_CR) {
		data_content(ds, out, ".", 1);
		if (ds->state == DS_DOT)
			ds->state = DS_TEXT;
	}
	if (ds->state == DS_CR || ds->state == DS_DOT_CR)
		data_bare_end(ds, out);
}

/* Prepare a header scanner for one message. */
void
msg_header_scan_init(struct msg_header_scan *hs)
{
	memset(hs, 0, sizeof(*hs));
	hs->at_line_start = 1;
	hs->phase = HS_NAME;
}

/* The field name is complete: keep its value only if it is wanted. */
static void
hdr_name_end(struct msg_header_scan *hs)
{
	size_t n = hs->cur_len;
	int field = 0;

	while (n > 0 && (hs->cur[n - 1] == ' ' || hs->cur[n - 1] == '\t'))
		n--;		/* RFC 5322 4.5.2 obs: WSP before ":" */
	if (word_is(hs->cur, n, "Subject"))
		field = HF_SUBJECT;
	else if (word_is(hs->cur, n, "Message-ID"))
		field = HF_MESSAGE_ID;
	else if (word_is(hs->cur, n, "From"))
		field = HF_FROM;
	hs->cur_len = 0;
	hs->cur_truncated = 0;
	if (field == 0 || (hs->seen & field)) {
		hs->phase = HS_SKIP;
		return;
	}
	hs->field = field;
	hs->phase = HS_VALUE;
}

/* Value octet: HTAB becomes SP, other controls go, leading WSP goes. */
static void
hdr_value_byte(struct msg_header_scan *hs, unsigned char c)
{
	if (c == '\t')
		c = ' ';
	if (c < 0x20 || c == 0x7f || (c == ' ' && hs->cur_len == 0))
		return;
	if (hs->cur_len >= HEADER_VALUE_MAX) {
		hs->cur_truncated = 1;
		return;
	}
	hs->cur[hs->cur_len++] = (char)c;
}

static void
hdr_byte(struct msg_header_scan *hs, unsigned char c)
{
	switch (hs->phase) {
	case HS_NAME:
		if (c == ':')
			hdr_name_end(hs);
		else if (hs->cur_len < sizeof(hs->cur) - 1)
			hs->cur[hs->cur_len++] = (char)c;
		else
			hs->phase = HS_SKIP;
		break;
	case HS_VALUE:
		hdr_value_byte(hs, c);
		break;
	default:
		break;
	}
}

/*
 * One more From: value (cleaned, n octets, `cut` when it lost octets):
 * append ", " and as much of it as fits, ending on a UTF-8 boundary.
 */
static void
hdr_add_from(struct msg_header_scan *hs, const char *v, size_t n, int cut)
{
	size_t room, len = hs->from_len, k;

	if (hs->from_count < INT_MAX)
		hs->from_count++;
	if (hs->from_truncated)
		return;		/* nothing may follow a cut value */
	if (cut)
		hs->from_truncated = 1;
	if (hs->from_count > 1) {
		for (k = 0; k < 2 && len < HEADER_VALUE_MAX; k++)
			hs->from[len++] = ", "[k];
		if (k < 2)
			hs->from_truncated = 1;
	}
	room = HEADER_VALUE_MAX - len;
	if (n > room) {
		memcpy(hs->from + len, v, room);
		len = utf8_cut_partial(hs->from, len + room);
		hs->from_truncated = 1;
	} else {
		memcpy(hs->from + len, v, n);
		len += n;
	}
	hs->from[len] = '\0';
	hs->from_len = len;
}

/* A whole (unfolded) header field has been seen: store it if wanted. */
static void
hdr_flush(struct msg_header_scan *hs)
{
	char *dst;
	size_t n;

	if (hs->phase == HS_VALUE) {
		n = hs->cur_len;
		if (hs->cur_truncated)
			n = utf8_cut_partial(hs->cur, n);
		while (n > 0 && hs->cur[n - 1] == ' ')
			n--;
		if (hs->field == HF_FROM)
			hdr_add_from(hs, hs->cur, n, hs->cur_truncated);
		else {
			dst = hs->field == HF_SUBJECT ? hs->subject :
			    hs->message_id;
			memcpy(dst, hs->cur, n);
			dst[n] = '\0';
			hs->seen |= hs->field;
		}
	}
	hs->phase = HS_NAME;
	hs->field = 0;
	hs->cur_len = 0;
	hs->cur_truncated = 0;
}

/* RFC 5322 2.2.3: a line starting with WSP continues the field. */
static void
hdr_content(struct msg_header_scan *hs, unsigned char c)
{
	if (hs->at_line_start) {
		hs->at_line_start = 0;
		if (c != ' ' && c != '\t')
			hdr_flush(hs);
	}
	hdr_byte(hs, c);
}

/* End of a line; an empty line ends the header section. */
static void
hdr_eol(struct msg_header_scan *hs)
{
	if (!hs->at_line_start) {
		hs->at_line_start = 1;
		return;
	}
	hdr_flush(hs);
	hs->in_body = 1;
	hs->done = 1;
}

/* Scan a chunk of message content (any split) for the wanted fields. */
void
msg_header_scan_feed(struct msg_header_scan *hs, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i;

	for (i = 0; i < len && !hs->done; i++) {
		if (hs->pending_cr) {
			hs->pending_cr = 0;
			if (p[i] == '\n') {
				hdr_eol(hs);
				continue;
			}
			hdr_content(hs, '\r');	/* lone CR, dropped */
		}
		if (p[i] == '\r')
			hs->pending_cr = 1;
		else if (p[i] == '\n')
			hdr_eol(hs);
		else
			hdr_content(hs, p[i]);
	}
}

/* End of the message: a header still being read is complete. */
void
msg_header_scan_finish(struct msg_header_scan *hs)
{
	if (hs->done)
		return;
	if (hs->pending_cr) {
		hs->pending_cr = 0;
		hdr_content(hs, '\r');
	}
	hdr_flush(hs);
	hs->done = 1;
}
