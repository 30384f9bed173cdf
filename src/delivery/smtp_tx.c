/*
 * smtp_tx.c - an outbound transaction's envelope, checked against the
 * peer's extensions and spelled in SMTP (see smtp_tx.h).
 *
 * Public: smtp_tx_build, smtp_tx_free.
 *
 * Values come from our own spool envelope (already checked and escaped
 * when received, envelope.c); the client refuses any CR or LF left in
 * them.  Limits: MAIL parameters fit 256 octets (RET plus an ENVID of at
 * most 100).
 */
#include <stdlib.h>
#include <string.h>

#include "smtp_tx.h"
#include "strbuf.h"
#include "util.h"

/* RFC 3461 NOTIFY value ("SUCCESS,FAILURE"), or "NEVER". */
static void
notify_text(int notify, struct strbuf *sb)
{
	static const struct { int bit; const char *name; } names[] = {
		{ SMTP_NOTIFY_SUCCESS, "SUCCESS" },
		{ SMTP_NOTIFY_FAILURE, "FAILURE" },
		{ SMTP_NOTIFY_DELAY, "DELAY" },
	};
	size_t i, start = sb->len;

	if (notify & SMTP_NOTIFY_NEVER) {
		strbuf_puts(sb, "NEVER");
		return;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (notify & names[i].bit)
			strbuf_printf(sb, "%s%s", sb->len > start ? "," : "",
			    names[i].name);
}

/* DSN parameters of one recipient, or NULL for none (malloc'd). */
static char *
rcpt_params(const struct env_rcpt *er)
{
	struct strbuf sb = STRBUF_INIT;

	if (!er->notify && !er->orcpt[0])
		return NULL;
	if (er->notify) {
		strbuf_puts(&sb, "NOTIFY=");
		notify_text(er->notify, &sb);
	}
	if (er->orcpt[0])
		strbuf_printf(&sb, "%sORCPT=%s", er->notify ? " " : "",
		    er->orcpt);
	return sb.s;
}

/* MAIL parameters from the envelope (RET, ENVID). */
static void
mail_params(const struct envelope *env, char *buf, size_t len)
{
	size_t l;

	buf[0] = '\0';
	if (env->ret != SMTP_RET_UNSET)
		bsnprintf(buf, len, "RET=%s", env->ret == SMTP_RET_FULL ?
		    "FULL" : "HDRS");
	if (env->envid[0]) {
		l = strlen(buf);
		bsnprintf(buf + l, len - l, "%sENVID=%s", l ? " " : "",
		    env->envid);
	}
}

/* Non-ASCII in the sender, a recipient or the header section? */
static int
needs_utf8(const struct envelope *env, const size_t *rids, size_t n,
    const char *data, size_t len)
{
	size_t i;
	int complete;

	if (mem_has_8bit(env->from, strlen(env->from)) ||
	    mem_has_8bit(data, msg_header_len(data, len, &complete)))
		return 1;
	for (i = 0; i < n; i++)
		if (mem_has_8bit(env->rcpts[rids[i]].addr,
		    strlen(env->rcpts[rids[i]].addr)))
			return 1;
	return 0;
}

/* What the peer cannot take: 0 fine (flags set), -1 with status, why. */
static int
check_peer(const struct envelope *env, const size_t *rids, size_t n,
    const char *data, size_t len, unsigned ext, const char *host,
    struct smtp_client_envelope *ev, char *status, size_t statuslen,
    char *why, size_t whylen)
{
	int eight = mem_has_8bit(data, len);

	bstrlcpy(status, "5.6.3", statuslen);
	if (env->body == SMTP_BODY_BINARYMIME) {
		bsnprintf(why, whylen, "the message is BINARYMIME and Postern "
		    "cannot send it in binary to %s", host);
		return -1;
	}
	if (env->body == SMTP_BODY_8BITMIME && eight &&
	    !(ext & SMTP_EXT_8BITMIME)) {
		bsnprintf(why, whylen, "%s does not offer 8BITMIME and the "
		    "message contains 8-bit data (RFC 6152)", host);
		return -1;
	}
	if (env->smtputf8 && needs_utf8(env, rids, n, data, len)) {
		if (!(ext & SMTP_EXT_SMTPUTF8)) {
			bstrlcpy(status, "5.6.7", statuslen);
			bsnprintf(why, whylen, "%s does not offer SMTPUTF8 and "
			    "the message needs it (RFC 6531)", host);
			return -1;
		}
		ev->smtputf8 = 1;
	}
	ev->body_8bit = eight && (ext & SMTP_EXT_8BITMIME);
	return 0;
}

int
smtp_tx_build(struct smtp_tx *tx, const struct envelope *env,
    const size_t *rids, size_t n, const char *data, size_t len,
    unsigned ext, const char *host, char *status, size_t statuslen,
    char *why, size_t whylen)
{
	int dsn = (ext & SMTP_EXT_DSN) != 0;
	size_t i;

	memset(tx, 0, sizeof(*tx));
	if (check_peer(env, rids, n, data, len, ext, host, &tx->ev, status,
	    statuslen, why, whylen) == -1)
		return -1;
	tx->rcpts = xcalloc(n, sizeof(*tx->rcpts));
	tx->rcpt_params = xcalloc(n, sizeof(*tx->rcpt_params));
	for (i = 0; i < n; i++) {
		tx->rcpts[i] = env->rcpts[rids[i]].addr;
		if (dsn)
			tx->rcpt_params[i] = rcpt_params(&env->rcpts[rids[i]]);
	}
	if (dsn)
		mail_params(env, tx->mail_params, sizeof(tx->mail_params));
	tx->ev.from = env->from;
	tx->ev.rcpts = tx->rcpts;
	tx->ev.nrcpts = n;
	tx->ev.size = len;
	tx->ev.mail_params = tx->mail_params[0] ? tx->mail_params : NULL;
	tx->ev.rcpt_params = (const char *const *)tx->rcpt_params;
	return 0;
}

void
smtp_tx_free(struct smtp_tx *tx)
{
	size_t i;

	for (i = 0; tx->rcpt_params != NULL && i < tx->ev.nrcpts; i++)
		free(tx->rcpt_params[i]);
	free(tx->rcpt_params);
	free(tx->rcpts);
	memset(tx, 0, sizeof(*tx));
}
