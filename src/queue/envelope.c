/*
 * envelope.c - versioned text encoding of the SMTP envelope (envelope.h).
 *
 * Format (one field per line, values %XX-escaped so they hold no space,
 * control or non-ASCII octet):
 *   postern-envelope 1
 *   mid 40 / icid 12 / received 1763880000 / client 127.0.0.1 / helo x
 *   auth - / from alice@example.com (or "-" for <>) / body 2 / smtputf8 0
 *   ret 0 / envid - / size 1234
 *   transformed 1        (optional: only after the queue manager rewrote
 *                         the content, see transform.h; absent = 0)
 *   rcpt bob@example.com 6 rfc822;bob@example.com     (one per recipient)
 *   end
 * Decoding is strict: unknown keys, missing keys, overlong values, bytes
 * after "end" are errors, so a damaged spool file is refused, never guessed.
 * The one optional field keeps files written before it readable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "util.h"

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void
envelope_clear(struct envelope *env)
{
	free(env->rcpts);
	envelope_init(env);
}

void
envelope_add_rcpt(struct envelope *env, const char *addr, int notify,
    const char *orcpt)
{
	struct env_rcpt *r;

	if ((env->nrcpts & (env->nrcpts - 1)) == 0 || env->nrcpts == 0)
		env->rcpts = xrealloc(env->rcpts,
		    sizeof(*r) * (env->nrcpts ? env->nrcpts * 2 : 4));
	r = &env->rcpts[env->nrcpts++];
	memset(r, 0, sizeof(*r));
	bstrlcpy(r->addr, addr, sizeof(r->addr));
	r->notify = notify;
	bstrlcpy(r->orcpt, orcpt ? orcpt : "", sizeof(r->orcpt));
}

static void
put_value(struct strbuf *sb, const char *v)
{
	const char *start = v;

	if (*v == '\0') {
		strbuf_putc(sb, '-');
		return;
	}
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		/* A lone "-" means empty, so a real "-" value is escaped. */
		if (c <= 0x20 || c >= 0x7f || c == '%' ||
		    (c == '-' && v[1] == '\0' && v == start))
			strbuf_printf(sb, "%%%02X", c);
		else
			strbuf_putc(sb, (char)c);
	}
}

static void
put_field(struct strbuf *sb, const char *key, const char *v)
{
	strbuf_puts(sb, key);
	strbuf_putc(sb, ' ');
	put_value(sb, v);
	strbuf_putc(sb, '\n');
}

void
envelope_encode(const struct envelope *env, struct strbuf *sb)
{
	size_t i;

	strbuf_printf(sb, "postern-envelope %d\n", ENVELOPE_VERSION);
	strbuf_printf(sb, "mid %llu\nicid %llu\nreceived %lld\n",
	    (unsigned long long)env->mid, (unsigned long long)env->icid,
	    (long long)env->received);
	put_field(sb, "client", env->client_ip);
	put_field(sb, "helo", env->helo);
	put_field(sb, "auth", env->auth_user);
	put_field(sb, "from", env->from);
	strbuf_printf(sb, "body %d\nsmtputf8 %d\nret %d\n", (int)env->body,
	    env->smtputf8 ? 1 : 0, (int)env->ret);
	put_field(sb, "envid", env->envid);
	strbuf_printf(sb, "size %llu\n", (unsigned long long)env->msg_size);
	if (env->transformed)
		strbuf_puts(sb, "transformed 1\n");
	for (i = 0; i < env->nrcpts; i++) {
		strbuf_puts(sb, "rcpt ");
		put_value(sb, env->rcpts[i].addr);
		strbuf_printf(sb, " %d ", env->rcpts[i].notify);
		put_value(sb, env->rcpts[i].orcpt);
		strbuf_putc(sb, '\n');
	}
	strbuf_puts(sb, "end\n");
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode one %XX-escaped token into dst (size dstlen); "-" is "". */
static int
get_value(const char *tok, size_t len, char *dst, size_t dstlen)
{
	size_t i, o = 0;

	if (len == 1 && tok[0] == '-') {
		dst[0] = '\0';
		return 0;
	}
	for (i = 0; i < len; i++) {
		int c = (unsigned char)tok[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -1;
			h = hexval(tok[i + 1]);
			l = hexval(tok[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			if (c == 0)
				return -1;
			i += 2;
		} else if (c <= 0x20 || c >= 0x7f)
			return -1;
		if (o + 1 >= dstlen)
			return -1;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

static int
get_u64(const char *tok, size_t len, uint64_t *v)
{
	uint64_t x = 0, d;
	size_t i;

	/* Up to UINT64_MAX (20 digits): what envelope_encode can write. */
	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return -1;
		d = (uint64_t)(tok[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int
get_int(const char *tok, size_t len, int max, int *v)
{
	uint64_t x;

	if (get_u64(tok, len, &x) == -1 || x > (uint64_t)max)
		return -1;
	*v = (int)x;
	return 0;
}

/* Split line into at most 4 space-separated tokens. */
static size_t
split(const char *line, size_t len, const char **tok, size_t *tlen)
{
	size_t n = 0, i = 0, start;

	while (i < len && n < 4) {
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		tok[n] = line + start;
		tlen[n] = i - start;
		n++;
		if (i < len)
			i++;
	}
	return i < len ? 5 : n;
}

#define FAIL(msg) do { bsnprintf(why, whylen, "line %zu: %s", lineno, msg); \
	goto fail; } while (0)

int
envelope_decode(const char *buf, size_t len, struct envelope *env,
    char *why, size_t whylen)
{
	const char *p = buf, *end = buf + len, *nl, *tok[4];
	size_t tlen[4], n, lineno = 0;
	unsigned seen = 0, before;
	int ended = 0, v;
	uint64_t u;

	envelope_init(env);
	while (p < end) {
		lineno++;
		if (ended)
			FAIL("data after end");
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			FAIL("unterminated line");
		n = split(p, (size_t)(nl - p), tok, tlen);
		p = nl + 1;
		if (n < 1 || n > 4)
			FAIL("bad field count");
#define KEY(k) (tlen[0] == strlen(k) && memcmp(tok[0], k, tlen[0]) == 0)
		if (lineno == 1) {
			if (!KEY("postern-envelope") || n != 2 ||
			    get_int(tok[1], tlen[1], 1000, &v) || v != ENVELOPE_VERSION)
				FAIL("not a version 1 envelope");
			continue;
		}
		if (KEY("end") && n == 1) {
			ended = 1;
			continue;
		}
		if (KEY("rcpt") && n == 4) {
			struct env_rcpt r;
			if (env->nrcpts >= ENVELOPE_MAX_RCPTS)
				FAIL("too many recipients");
			if (get_value(tok[1], tlen[1], r.addr, sizeof(r.addr)) ||
			    get_int(tok[2], tlen[2], 15, &r.notify) ||
			    get_value(tok[3], tlen[3], r.orcpt, sizeof(r.orcpt)))
				FAIL("bad rcpt");
			envelope_add_rcpt(env, r.addr, r.notify, r.orcpt);
			continue;
		}
		if (n != 2)
			FAIL("bad field count");
		before = seen;
		if (KEY("mid") && !get_u64(tok[1], tlen[1], &env->mid))
			seen |= 1;
		else if (KEY("icid") && !get_u64(tok[1], tlen[1], &env->icid))
			seen |= 2;
		else if (KEY("received") && !get_u64(tok[1], tlen[1], &u) &&
		    u <= INT64_MAX) {
			env->received = (int64_t)u;
			seen |= 4;
		} else if (KEY("client") && !get_value(tok[1], tlen[1],
		    env->client_ip, sizeof(env->client_ip)))
			seen |= 8;
		else if (KEY("helo") && !get_value(tok[1], tlen[1], env->helo,
		    sizeof(env->helo)))
			seen |= 16;
		else if (KEY("auth") && !get_value(tok[1], tlen[1],
		    env->auth_user, sizeof(env->auth_user)))
			seen |= 32;
		else if (KEY("from") && !get_value(tok[1], tlen[1], env->from,
		    sizeof(env->from)))
			seen |= 64;
		else if (KEY("body") && !get_int(tok[1], tlen[1], 3, &v)) {
			env->body = (enum smtp_body)v;
			seen |= 128;
		} else if (KEY("smtputf8") && !get_int(tok[1], tlen[1], 1, &v)) {
			env->smtputf8 = v;
			seen |= 256;
		} else if (KEY("ret") && !get_int(tok[1], tlen[1], 2, &v)) {
			env->ret = (enum smtp_ret)v;
			seen |= 512;
		} else if (KEY("envid") && !get_value(tok[1], tlen[1],
		    env->envid, sizeof(env->envid)))
			seen |= 1024;
		else if (KEY("size") && !get_u64(tok[1], tlen[1], &env->msg_size))
			seen |= 2048;
		/* Optional; only "1" is ever written, so only "1" is valid. */
		else if (KEY("transformed") && !get_int(tok[1], tlen[1], 1, &v) &&
		    v == 1) {
			env->transformed = 1;
			seen |= 4096;
		} else
			FAIL("unknown or malformed field");
#undef KEY
		/* A field given twice is damage, not a choice to guess. */
		if (seen == before)
			FAIL("duplicate field");
	}
	if (!ended || (seen & 4095) != 4095 || env->nrcpts == 0) {
		bsnprintf(why, whylen, "incomplete envelope");
		goto fail;
	}
	return 0;
fail:
	envelope_clear(env);
	return -1;
}

static int
str_8bit(const char *s)
{
	return s != NULL && mem_has_8bit(s, strlen(s));
}

void
envelope_generated(struct envelope *env, const char *hostname, uint64_t mid,
    const char *from, const char *const *rcpts, size_t nrcpts,
    const char *data, size_t len, int64_t now)
{
	size_t i, hlen;
	int complete;

	envelope_init(env);
	env->mid = mid;
	env->received = now;
	bstrlcpy(env->client_ip, "local", sizeof(env->client_ip));
	bstrlcpy(env->helo, hostname, sizeof(env->helo));
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
