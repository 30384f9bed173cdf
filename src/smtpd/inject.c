/*
 * inject.c - spool a whole, checked message from the HTTPS API or the
 * pickup directory (see inject.h).
 *
 * The content is written with spool_msg_write() behind our Received:
 * field and committed with spool_msg_commit(): the same file format,
 * the same group-commit thread and the same flush as an SMTP session, so
 * the queue manager (DKIM, S/MIME, delivery) cannot tell the ways apart.
 * Log lines are those of an SMTP transaction, written when the message is
 * handed over (the checks before are the caller's, with its own lines).
 *
 * Ownership: an in-flight commit holds a struct inject_job (copy of what
 * the log needs); the caller's `arg` must stay valid until its callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "envelope.h"
#include "ids.h"
#include "inject.h"
#include "log.h"
#include "smtp_proto.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

struct inject_job {
	inject_cb	 cb;
	void		*arg;
	char		 from[SMTP_ADDR_MAX + 1];
	uint64_t	 size;
};

static struct spool	*ispool;
static int		 inotify_fd = -1;
static const char	*ihostname;

/* Set up once per worker (the spool, the queue manager channel). */
void
inject_init(struct spool *sp, int notify_fd, const char *hostname)
{
	ispool = sp;
	inotify_fd = notify_fd;
	ihostname = hostname;
}

static void
idstr(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Our Received: field (RFC 5321 4.4), e.g. "from h ([ip]) (using ...) by
 * mx (Postern) with HTTPSA id 40 for <a>; date". */
static void
trace_field(const struct inject_msg *m, uint64_t mid, int64_t now,
    struct strbuf *out)
{
	const struct inject_trace *t = &m->trace;
	char date[64];
	struct tm tm;
	time_t tt = (time_t)now;

	gmtime_r(&tt, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	strbuf_puts(out, "Received: ");
	if (t->from != NULL) {
		strbuf_puts(out, "from ");
		strbuf_printable(out, t->from, strlen(t->from));
		strbuf_puts(out, "\r\n\t");
	}
	if (t->tls != NULL)
		strbuf_printf(out, "(using %s)\r\n\t", t->tls);
	strbuf_printf(out, "by %s (Postern", ihostname);
	if (t->local != NULL)
		strbuf_printf(out, ", %s", t->local);
	strbuf_puts(out, ")");
	if (t->with != NULL)
		strbuf_printf(out, " with %s", t->with);
	strbuf_printf(out, " id %llu", (unsigned long long)mid);
	if (m->nrcpts == 1)
		strbuf_printf(out, "\r\n\tfor <%s>", m->rcpts[0]);
	strbuf_printf(out, "; %s\r\n", date);
}

/* The lines an SMTP transaction writes from MAIL to the end of data. */
static void
log_transaction(const struct inject_msg *m, uint64_t mid)
{
	char smid[32], icid[32], rid[32];
	size_t i;

	idstr(mid, smid, sizeof(smid));
	idstr(m->icid, icid, sizeof(icid));
	mlog(LOG_LVL_INFO, "start", "Start MID {mid} ICID {icid}", "mid", smid,
	    "icid", icid, NULL);
	mlog(LOG_LVL_INFO, "from", "MID {mid} ICID {icid} From: <{from}>",
	    "mid", smid, "icid", icid, "from", m->from, NULL);
	for (i = 0; i < m->nrcpts; i++) {
		idstr(i, rid, sizeof(rid));
		mlog(LOG_LVL_INFO, "rcpt", "MID {mid} ICID {icid} RID {rid} "
		    "To: <{to}>", "mid", smid, "icid", icid, "rid", rid, "to",
		    m->rcpts[i], NULL);
	}
}

/* Message-ID and Subject of the header section, as SMTP logs them. */
static void
log_header(const struct inject_msg *m, uint64_t mid)
{
	struct msg_header_scan hdr;
	char smid[32];

	msg_header_scan_init(&hdr);
	msg_header_scan_feed(&hdr, m->data, m->len);
	msg_header_scan_finish(&hdr);
	idstr(mid, smid, sizeof(smid));
	if (hdr.message_id[0])
		mlog(LOG_LVL_INFO, "message_id", "MID {mid} Message-ID "
		    "'{msgid}'", "mid", smid, "msgid", hdr.message_id, NULL);
	if (hdr.subject[0])
		mlog(LOG_LVL_INFO, "subject", "MID {mid} Subject '{subject}'",
		    "mid", smid, "subject", hdr.subject, NULL);
}

static void
commit_cb(void *arg, uint64_t mid, int ok)
{
	struct inject_job *j = arg;
	char smid[32], size[32];
	ssize_t n;

	idstr(mid, smid, sizeof(smid));
	if (ok) {
		idstr(j->size, size, sizeof(size));
		mlog(LOG_LVL_INFO, "ready", "MID {mid} ready {size} bytes from "
		    "<{from}>", "mid", smid, "size", size, "from", j->from,
		    NULL);
		/* Best effort: the queue manager also rescans the spool. */
		if (inotify_fd != -1)
			n = send(inotify_fd, &mid, sizeof(mid), MSG_DONTWAIT);
		(void)n;
	} else {
		mlog(LOG_LVL_INFO, "rejected", "MID {mid} rejected: {reply}",
		    "mid", smid, "reply", "451 4.3.0 Error: queue file write "
		    "error", NULL);
		mlog(LOG_LVL_INFO, "message_finished", "Message finished MID "
		    "{mid} aborted", "mid", smid, NULL);
	}
	j->cb(j->arg, mid, ok);
	free(j);
}

/* Fill the envelope the spool file carries. */
static void
fill_envelope(const struct inject_msg *m, uint64_t mid, int64_t now,
    uint64_t size, struct envelope *env)
{
	size_t i;

	envelope_init(env);
	env->mid = mid;
	env->icid = m->icid;
	env->received = now;
	bstrlcpy(env->client_ip, m->client_ip, sizeof(env->client_ip));
	bstrlcpy(env->helo, m->helo, sizeof(env->helo));
	bstrlcpy(env->auth_user, m->auth_user, sizeof(env->auth_user));
	bstrlcpy(env->from, m->from, sizeof(env->from));
	env->body = m->eightbit ? SMTP_BODY_8BITMIME : SMTP_BODY_UNSET;
	env->smtputf8 = m->smtputf8;
	env->msg_size = size;
	for (i = 0; i < m->nrcpts; i++)
		envelope_add_rcpt(env, m->rcpts[i], 0, "");
}

/* Spool a message; the callback says when it is durable (inject.h). */
uint64_t
inject_submit(const struct inject_msg *m, inject_cb cb, void *arg, char *why,
    size_t whylen)
{
	struct strbuf rcv = STRBUF_INIT;
	struct spool_msg *sm;
	struct inject_job *j;
	struct envelope env;
	int64_t now = wall_now();
	uint64_t mid = ids_next(ID_MID);

	if ((sm = spool_msg_new(ispool, mid, why, whylen)) == NULL) {
		log_crit("spool: %s", why);
		return 0;
	}
	log_transaction(m, mid);
	log_header(m, mid);
	trace_field(m, mid, now, &rcv);
	(void)spool_msg_write(sm, rcv.s, rcv.len);
	(void)spool_msg_write(sm, m->data, m->len);	/* errors are sticky */
	j = xcalloc(1, sizeof(*j));
	j->cb = cb;
	j->arg = arg;
	j->size = rcv.len + m->len;
	bstrlcpy(j->from, m->from, sizeof(j->from));
	fill_envelope(m, mid, now, j->size, &env);
	spool_msg_commit(sm, &env, commit_cb, j);
	envelope_clear(&env);
	strbuf_free(&rcv);
	return mid;
}
