/*
 * addrlist.c - RFC 5322 3.4 address-list parser (see addrlist.h).
 *
 * The input is an untrusted header field value (From:), and the result
 * decides whether an authenticated sender may use that address, so every
 * doubtful construct is an error rather than a guess.  Two layers, no
 * recursion, no allocation:
 *
 *  - a lexer that skips CFWS (WSP, CRLF folds, comments; nested comments
 *    are counted, not recursed into) and hands out atoms (atext plus
 *    RFC 6532 UTF-8), quoted strings, domain literals and the specials
 *    < > @ , ; : . - anything else (NUL, controls, a stray ")", "]" or
 *    "\") is an error;
 *  - a parser over those tokens: each list element is a run of words
 *    and dots whose meaning is fixed by the token that ends it: "<"
 *    (display name, angle-addr follows), ":" (group name) or "@" (the
 *    run was the local part of a bare addr-spec).  After a mailbox only
 *    ",", ";" (closing a group) or the end may follow, so "a@b <c@d>" and
 *    "<a@b> c" are errors.
 *
 * Accepted obsolete forms (RFC 5322 4.4): empty list elements (",,",
 * leading and trailing commas, also inside groups), routes in angle
 * addresses ("<@a,@b:x@y>", dropped), CFWS around the dots of a local
 * part or domain ("a . b @ c . d"), quoted words mixed with atoms in the
 * local part ("\"a\".b"), and dots in display names ("John Q. Public").
 * Refused on purpose: obs-qp and obs-NO-WS-CTL (control characters,
 * quoted or not), ill-formed UTF-8, nested groups, and domain literals
 * other than IPv4 or "IPv6:" addresses (no whitespace inside).
 *
 * Output: the local part in canonical form - its semantic content (quotes
 * and quoted-pairs removed, words joined by ".") bare when that content
 * is a dot-atom, else one quoted-string escaping only DQUOTE and "\" -
 * then "@" and the domain lower-cased (ASCII letters only).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "addrlist.h"
#include "util.h"

#define LOCAL_MAX	64		/* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX	255		/* RFC 5321 4.5.3.1.2 */
#define LITERAL_MAX	64		/* > "IPv6:" + longest IPv6 text */

enum tok_type { T_END, T_ATOM, T_QUOTED, T_LITERAL, T_SPECIAL };

/* One token: where it starts (after CFWS) and how long it is. */
struct token {
	enum tok_type	 type;
	int		 c;		/* the character of a T_SPECIAL */
	size_t		 start;
	size_t		 len;		/* with quotes or brackets */
};

/* Parser state: the input, the read position and where results go. */
struct parser {
	const unsigned char	*s;
	size_t			 len;
	size_t			 pos;
	struct addrlist_addr	*out;
	size_t			 max;
	size_t			 count;		/* mailboxes seen */
	const char		*why;
};

static int	is_atext(int);
static int	is_qtext(int);
static int	is_ctext(int);
static int	is_qp(int);
static int	is_word(const struct token *);
static int	is_special(const struct token *, int);
static size_t	fold_at(const struct parser *, size_t);
static int	fail(struct parser *, const char *);
static int	skip_comment(struct parser *);
static int	skip_cfws(struct parser *);
static int	lex_quoted(struct parser *, struct token *);
static int	lex_literal(struct parser *, struct token *);
static int	lex(struct parser *, struct token *);
static int	word_content(struct parser *, const struct token *, char *,
		    size_t *, size_t);
static int	is_dot_atom(const char *, size_t);
static int	parse_local(struct parser *, struct token *, char *,
		    size_t *);
static int	literal_valid(const unsigned char *, size_t);
static int	parse_domain(struct parser *, struct token *, char *,
		    size_t *);
static int	parse_addr_spec(struct parser *, struct token *);
static int	parse_route(struct parser *, struct token *);
static int	parse_angle(struct parser *, struct token *);
static int	element_end(struct parser *, struct token *);

/* RFC 5322 3.2.3 atext, extended by RFC 6532 3.2 to UTF-8 octets. */
static int
is_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 ||
	    (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 3.2.4 qtext (no obs-qtext) plus UTF-8 octets. */
static int
is_qtext(int c)
{
	return (c >= 33 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

/* RFC 5322 3.2.2 ctext (no obs-ctext) plus UTF-8 octets. */
static int
is_ctext(int c)
{
	return (c >= 33 && c <= 126 && c != '(' && c != ')' && c != '\\') ||
	    c >= 0x80;
}

/* Octet after "\" in a quoted-pair: VCHAR / WSP (no obs-qp). */
static int
is_qp(int c)
{
	return (c >= 33 && c <= 126) || c == ' ' || c == '\t' || c >= 0x80;
}

static int
is_word(const struct token *t)
{
	return t->type == T_ATOM || t->type == T_QUOTED;
}

static int
is_special(const struct token *t, int c)
{
	return t->type == T_SPECIAL && t->c == c;
}

/* RFC 5322 3.2.2 fold: CRLF followed by WSP.  Octets of CRLF, or 0. */
static size_t
fold_at(const struct parser *p, size_t i)
{
	if (p->len - i >= 3 && p->s[i] == '\r' && p->s[i + 1] == '\n' &&
	    (p->s[i + 2] == ' ' || p->s[i + 2] == '\t'))
		return 2;
	return 0;
}

static int
fail(struct parser *p, const char *why)
{
	p->why = why;
	return -1;
}

/* A comment at p->pos, nested ones included: depth is a counter. */
static int
skip_comment(struct parser *p)
{
	size_t depth = 0, n;
	int c;

	do {
		if (p->pos >= p->len)
			return fail(p, "unterminated comment");
		c = p->s[p->pos];
		if (c == '(')
			depth++;
		else if (c == ')')
			depth--;
		else if (c == '\\') {
			if (p->len - p->pos < 2)
				return fail(p, "unterminated comment");
			if (!is_qp(p->s[p->pos + 1]))
				return fail(p, "invalid quoted-pair");
			p->pos++;
		} else if ((n = fold_at(p, p->pos)) > 0)
			p->pos += n - 1;
		else if (c != ' ' && c != '\t' && !is_ctext(c))
			return fail(p, "invalid character in comment");
		p->pos++;
	} while (depth > 0);
	return 0;
}

/* RFC 5322 3.2.2 CFWS: WSP, folds and comments, any number of each. */
static int
skip_cfws(struct parser *p)
{
	size_t n;

	while (p->pos < p->len) {
		if (p->s[p->pos] == ' ' || p->s[p->pos] == '\t')
			p->pos++;
		else if ((n = fold_at(p, p->pos)) > 0)
			p->pos += n;
		else if (p->s[p->pos] == '(') {
			if (skip_comment(p) == -1)
				return -1;
		} else
			break;
	}
	return 0;
}

/* RFC 5322 3.2.4 quoted-string at p->pos (the opening DQUOTE). */
static int
lex_quoted(struct parser *p, struct token *t)
{
	size_t i = p->pos + 1, n;
	int c;

	for (;;) {
		if (i >= p->len)
			return fail(p, "unterminated quoted string");
		c = p->s[i];
		if (c == '"')
			break;
		if (c == '\\') {
			if (p->len - i < 2)
				return fail(p, "unterminated quoted string");
			if (!is_qp(p->s[i + 1]))
				return fail(p, "invalid quoted-pair");
			i += 2;
		} else if ((n = fold_at(p, i)) > 0)
			i += n;
		else if (c == ' ' || c == '\t' || is_qtext(c))
			i++;
		else
			return fail(p, "invalid character in quoted string");
	}
	t->type = T_QUOTED;
	t->len = i + 1 - p->pos;
	p->pos = i + 1;
	return 0;
}

/* RFC 5322 3.4.1 domain-literal at p->pos (the "["); checked later. */
static int
lex_literal(struct parser *p, struct token *t)
{
	size_t i = p->pos + 1;
	int c;

	for (;;) {
		if (i >= p->len)
			return fail(p, "unterminated domain literal");
		c = p->s[i];
		if (c == ']')
			break;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == ':'))
			return fail(p, "invalid domain literal");
		i++;
	}
	t->type = T_LITERAL;
	t->len = i + 1 - p->pos;
	p->pos = i + 1;
	return 0;
}

/* The next token after CFWS; T_END at the end of the input. */
static int
lex(struct parser *p, struct token *t)
{
	int c;

	if (skip_cfws(p) == -1)
		return -1;
	t->start = p->pos;
	t->c = 0;
	t->len = 0;
	if (p->pos >= p->len) {
		t->type = T_END;
		return 0;
	}
	c = p->s[p->pos];
	if (is_atext(c)) {
		while (p->pos < p->len && is_atext(p->s[p->pos]))
			p->pos++;
		t->type = T_ATOM;
		t->len = p->pos - t->start;
		return 0;
	}
	if (c == '"')
		return lex_quoted(p, t);
	if (c == '[')
		return lex_literal(p, t);
	if (c != 0 && strchr("<>@,;:.", c) != NULL) {
		p->pos++;
		t->type = T_SPECIAL;
		t->c = c;
		t->len = 1;
		return 0;
	}
	if (c == ')')
		return fail(p, "unbalanced parenthesis");
	if (c == ']')
		return fail(p, "unbalanced square bracket");
	if (c == '\0')
		return fail(p, "NUL octet");
	return fail(p, "invalid character");
}

/*
 * Append the semantic content of a word (atom as is; quoted-string without
 * its quotes, quoted-pairs and the CRLF of folds) to buf[*n], which holds
 * at most `max` octets.
 */
static int
word_content(struct parser *p, const struct token *t, char *buf, size_t *n,
    size_t max)
{
	const unsigned char *w = p->s + t->start;
	size_t i = 0, end = t->len;

	if (t->type == T_QUOTED) {
		i = 1;
		end--;
	}
	while (i < end) {
		if (t->type == T_QUOTED && w[i] == '\\')
			i++;
		else if (t->type == T_QUOTED && w[i] == '\r') {
			i += 2;		/* fold: its WSP follows */
			continue;
		}
		if (*n >= max)
			return fail(p, "local part too long");
		buf[(*n)++] = (char)w[i++];
	}
	return 0;
}

/* RFC 5322 3.2.3 dot-atom-text (with RFC 6532 UTF-8). */
static int
is_dot_atom(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return 0;
		} else if (!is_atext((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/*
 * local-part = dot-atom / quoted-string / obs-local-part (word *("."
 * word)), starting at token *t; leaves *t on the token after it.  Writes
 * the canonical form to out (LOCAL_MAX + 1 octets), NUL-terminated.
 */
static int
parse_local(struct parser *p, struct token *t, char *out, size_t *outlen)
{
	char content[LOCAL_MAX];
	size_t n = 0, i, o;
	int esc;

	if (!is_word(t))
		return fail(p, is_special(t, '@') || is_special(t, '>') ?
		    "missing local part" : "invalid local part");
	for (;;) {
		if (word_content(p, t, content, &n, sizeof(content)) == -1 ||
		    lex(p, t) == -1)
			return -1;
		if (!is_special(t, '.'))
			break;
		if (n >= sizeof(content))
			return fail(p, "local part too long");
		content[n++] = '.';
		if (lex(p, t) == -1)
			return -1;
		if (!is_word(t))
			return fail(p, "invalid local part");
	}
	if (is_dot_atom(content, n)) {
		memcpy(out, content, n);
		*outlen = n;
		out[n] = '\0';
		return 0;
	}
	o = 0;
	out[o++] = '"';
	for (i = 0; i < n; i++) {
		esc = content[i] == '"' || content[i] == '\\';
		if (o + (size_t)esc + 2 > LOCAL_MAX)	/* and DQUOTE */
			return fail(p, "local part too long");
		if (esc)
			out[o++] = '\\';
		out[o++] = content[i];
	}
	out[o++] = '"';			/* the loop left room for it */
	out[o] = '\0';
	*outlen = o;
	return 0;
}

/* Domain literal text (brackets included): IPv4 or "IPv6:" IPv6. */
static int
literal_valid(const unsigned char *s, size_t n)
{
	char text[LITERAL_MAX];
	unsigned char bin[16];

	if (n < 3 || n - 2 >= sizeof(text))
		return 0;
	memcpy(text, s + 1, n - 2);
	text[n - 2] = '\0';
	if (n - 2 > 5 && ascii_ncasecmp(text, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, text + 5, bin) == 1;
	return inet_pton(AF_INET, text, bin) == 1;
}

/*
 * domain = dot-atom / domain-literal / obs-domain, starting at token *t;
 * leaves *t on the token after it.  Writes it lower-cased to out
 * (DOMAIN_MAX + 1 octets), NUL-terminated.
 */
static int
parse_domain(struct parser *p, struct token *t, char *out, size_t *outlen)
{
	size_t n = 0;

	if (t->type == T_LITERAL) {
		if (!literal_valid(p->s + t->start, t->len))
			return fail(p, "invalid domain literal");
		memcpy(out, p->s + t->start, t->len);
		n = t->len;
		if (lex(p, t) == -1)
			return -1;
	} else if (t->type == T_ATOM) {
		for (;;) {
			if (t->len > DOMAIN_MAX - n)
				return fail(p, "domain too long");
			memcpy(out + n, p->s + t->start, t->len);
			n += t->len;
			if (lex(p, t) == -1)
				return -1;
			if (!is_special(t, '.'))
				break;
			if (n >= DOMAIN_MAX)
				return fail(p, "domain too long");
			out[n++] = '.';
			if (lex(p, t) == -1)
				return -1;
			if (t->type != T_ATOM)
				return fail(p, "invalid domain");
		}
	} else
		return fail(p, is_special(t, '.') || t->type == T_QUOTED ?
		    "invalid domain" : "missing domain");
	ascii_lower(out, n);
	out[n] = '\0';
	*outlen = n;
	return 0;
}

/* addr-spec at token *t; stores the mailbox, leaves *t after it. */
static int
parse_addr_spec(struct parser *p, struct token *t)
{
	char local[LOCAL_MAX + 1], domain[DOMAIN_MAX + 1];
	size_t llen, dlen;
	char *a;

	if (parse_local(p, t, local, &llen) == -1)
		return -1;
	if (!is_special(t, '@'))
		return fail(p, t->type == T_END || is_special(t, '>') ||
		    is_special(t, ',') || is_special(t, ';') ?
		    "missing domain" : "invalid local part");
	if (lex(p, t) == -1 || parse_domain(p, t, domain, &dlen) == -1)
		return -1;
	if (p->count >= INT_MAX)
		return fail(p, "too many addresses");
	if (p->count < p->max) {
		a = p->out[p->count].addr;
		memcpy(a, local, llen);
		a[llen] = '@';
		memcpy(a + llen + 1, domain, dlen);
		a[llen + 1 + dlen] = '\0';
	}
	p->count++;
	return 0;
}

/*
 * RFC 5322 4.4 obs-route after "<": obs-domain-list ":", where
 * obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]).
 * Checked, then dropped.
 */
static int
parse_route(struct parser *p, struct token *t)
{
	char scratch[DOMAIN_MAX + 1];
	size_t n;
	int domains = 0, need_comma = 0;

	for (;;) {
		if (is_special(t, ',')) {
			need_comma = 0;
		} else if (is_special(t, '@') && !need_comma) {
			if (lex(p, t) == -1 ||
			    parse_domain(p, t, scratch, &n) == -1)
				return -1;
			domains++;
			need_comma = 1;
			continue;
		} else if (is_special(t, ':') && domains > 0)
			return lex(p, t);
		else
			return fail(p, "invalid route");
		if (lex(p, t) == -1)
			return -1;
	}
}

/* angle-addr / obs-angle-addr at the "<" in *t; leaves *t after ">". */
static int
parse_angle(struct parser *p, struct token *t)
{
	if (lex(p, t) == -1)
		return -1;
	if ((is_special(t, '@') || is_special(t, ',')) &&
	    parse_route(p, t) == -1)
		return -1;
	if (is_special(t, '>'))
		return fail(p, "empty address");
	if (t->type == T_END || is_special(t, '<'))
		return fail(p, "unbalanced angle bracket");
	if (parse_addr_spec(p, t) == -1)
		return -1;
	if (t->type == T_END || is_special(t, '<'))
		return fail(p, "unbalanced angle bracket");
	if (!is_special(t, '>'))
		return fail(p, "unexpected text in angle address");
	return lex(p, t);
}

/* After a mailbox or a group: "," or the end (";" in a group). */
static int
element_end(struct parser *p, struct token *t)
{
	if (is_special(t, ',') || t->type == T_END || is_special(t, ';'))
		return 0;
	if (is_special(t, '<') || is_special(t, '>'))
		return fail(p, "unexpected angle bracket after address");
	return fail(p, "unexpected text after address");
}

/*
 * The list, element by element: each is empty (obs), a group opening or
 * closing, or a mailbox; the count is returned only when all of it parses.
 */
int
addrlist_parse(const char *s, size_t len, struct addrlist_addr *out,
    size_t max, const char **why)
{
	struct parser p;
	struct token t, first;
	size_t words;
	int in_group = 0, any = 0, lead_dot;

	memset(&p, 0, sizeof(p));
	p.s = (const unsigned char *)s;
	p.len = len;
	p.out = out;
	p.max = out == NULL ? 0 : max;
	if (!utf8_valid(p.s, len)) {
		p.why = "invalid UTF-8";
		goto bad;
	}
	if (lex(&p, &t) == -1)
		goto bad;
	for (;;) {
		/* At the start of a list element. */
		if (is_special(&t, ',')) {
			if (lex(&p, &t) == -1)
				goto bad;
			continue;		/* obs: empty element */
		}
		if (t.type == T_END)
			break;
		if (in_group && is_special(&t, ';')) {
			in_group = 0;
			if (lex(&p, &t) == -1)
				goto bad;
			goto end;
		}
		first = t;
		words = 0;
		lead_dot = is_special(&t, '.');
		while (is_word(&t) || is_special(&t, '.')) {
			words++;
			if (lex(&p, &t) == -1)
				goto bad;
		}
		if (is_special(&t, '<')) {
			if (lead_dot) {
				p.why = "invalid display name";
				goto bad;
			}
			if (parse_angle(&p, &t) == -1)
				goto bad;
			any = 1;
		} else if (is_special(&t, ':')) {
			if (words == 0 || lead_dot) {
				p.why = "invalid group name";
				goto bad;
			}
			if (in_group) {
				p.why = "nested group";
				goto bad;
			}
			in_group = 1;
			any = 1;
			if (lex(&p, &t) == -1)
				goto bad;
			continue;
		} else if (is_special(&t, '@')) {
			/* The words were a local part: read them again. */
			p.pos = first.start;
			if (lex(&p, &t) == -1 || parse_addr_spec(&p, &t) == -1)
				goto bad;
			any = 1;
		} else {
			if (is_special(&t, '>'))
				p.why = "unbalanced angle bracket";
			else if (words > 0 && (t.type == T_END ||
			    is_special(&t, ',') || is_special(&t, ';')))
				p.why = "missing domain";
			else
				p.why = "syntax error";
			goto bad;
		}
 end:
		/* After a mailbox or a group. */
		if (element_end(&p, &t) == -1)
			goto bad;
		if (is_special(&t, ';')) {
			if (!in_group) {
				p.why = "unexpected semicolon";
				goto bad;
			}
			in_group = 0;
			if (lex(&p, &t) == -1)
				goto bad;
			goto end;
		}
		if (is_special(&t, ','))
			if (lex(&p, &t) == -1)
				goto bad;
	}
	if (in_group) {
		p.why = "unterminated group";
		goto bad;
	}
	if (!any) {
		p.why = "no address";
		goto bad;
	}
	return (int)p.count;
 bad:
	if (why != NULL)
		*why = p.why;
	return -1;
}
