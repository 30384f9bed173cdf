/*
 * smtp_server.c - inbound ESMTP session engine (see smtp_server.h).
 *
 * Shape: explicit states plus a command table; each table entry names the
 * verb and its handler.  Input is taken from an evbuffer line by line
 * (command state) or in raw chunks (DATA/BDAT content), so pipelined
 * commands (RFC 2920) are answered in order and content is streamed to the
 * spool without being held in memory.
 *
 * Limits (RFC 5321 4.5.3, SPEC "Limits and defaults"): command line 512
 * octets including CRLF; DATA lines up to limits.max_line_length; message
 * size and recipients per policy; deadlines per whole command, per DATA
 * block and per whole DATA; at most SMTP_MAX_ERRORS bad commands.
 *
 * Threats: SMTP smuggling (only <CRLF>.<CRLF> ends DATA, bare CR/LF are
 * refused or normalised by the scanner in smtp_proto.c), unbounded input
 * (every wait is capped), log injection (values are cleaned by log.c).
 *
 * Metrics (metrics.h): a 4xx/5xx reply while a MAIL, RCPT, DATA or BDAT
 * command or the message itself is being answered (s->stage) counts as
 * a rejection with its enhanced status code; the 250 after the commit
 * as an accepted message; every AUTH outcome by mechanism or reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base64.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "smtp_server.h"
#include "strbuf.h"
#include "util.h"

#define SMTP_MAX_ERRORS		20
#define SMTP_DATA_CHUNK		65536
#define SASL_LINE_MAX		12288	/* RFC 4954 4 */
#define AUTH_USER_MAX		64
#define AUTH_PASS_MAX		1024

enum smtp_state {
	SMTP_STATE_CMD,		/* waiting for a command line */
	SMTP_STATE_SKIPLINE,	/* discarding the rest of an overlong line */
	SMTP_STATE_DATA,	/* DATA content until <CRLF>.<CRLF> */
	SMTP_STATE_BDAT,	/* BDAT chunk octets */
	SMTP_STATE_COMMIT,	/* message handed to the spool, no input */
	SMTP_STATE_TLS,		/* 220 to STARTTLS sent: handshake, no input */
	SMTP_STATE_SASL,	/* 334 sent: a SASL response line comes next */
	SMTP_STATE_AUTH_WAIT,	/* credentials being checked, no input */
	SMTP_STATE_AUTH_BLOCKED,	/* too many failures: delay, 454, close */
	SMTP_STATE_REJECTED,	/* access denied: only QUIT is useful */
	SMTP_STATE_CLOSED	/* last reply sent */
};

struct smtp_session {
	const struct conf		*conf;
	const struct conf_policy	*policy;
	const struct smtp_server_ops	*ops;
	void				*ctx;
	uint64_t			 icid;
	char				 client_ip[64];
	char				 client_rdns[256];
	enum smtp_state			 state;
	int				 errors;

	/* TLS (RFC 3207, RFC 8314) */
	enum listener_tls		 tls_mode;
	int				 tls_active;
	char				 tls_info[128];	/* for Received: */
	uint64_t			 discarded;	/* plaintext after STARTTLS */

	/* AUTH (RFC 4954) */
	enum listener_auth		 auth_mode;
	int				 authed;
	char				 auth_user[AUTH_USER_MAX + 1];
	const char			*sasl_mech;	/* "PLAIN" / "LOGIN" */
	int				 sasl_step;	/* LOGIN: 0 user, 1 pass */
	char				 sasl_login[AUTH_USER_MAX + 1];
	char				 try_user[AUTH_USER_MAX + 1];
	double				 block_until;

	/* greeting */
	int				 helo_done;
	int				 esmtp;
	char				 helo[256];

	/* transaction */
	int				 in_tx;		/* MAIL accepted */
	struct envelope			 env;
	int				 msg_open;
	int				 used_bdat;
	int				 bdat_last;
	int				 bdat_refuse;	/* chunk to swallow, 503 */
	uint64_t			 bdat_left;
	uint64_t			 bdat_octets;	/* chunk octets taken */
	uint64_t			 trace_len;	/* our Received: field */
	uint64_t			 content;	/* octets stored */
	int				 too_big;
	int				 write_error;
	struct smtp_data_scanner	 scan;
	struct msg_header_scan		 hdr;
	struct strbuf			 out;		/* scanner output */

	/* metrics: the enum metrics_stage being answered, -1 none */
	int				 stage;

	/* deadlines (monotonic seconds) */
	double				 cmd_deadline;
	double				 data_deadline;
	double				 block_deadline;
};

typedef void (*smtp_cmd_fn)(struct smtp_session *, const struct smtp_cmd *,
    double now);

static void cmd_helo(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_ehlo(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_mail(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_rcpt(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_data(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_bdat(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_rset(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_noop(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_quit(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_vrfy(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_expn(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_help(struct smtp_session *, const struct smtp_cmd *, double);
static void cmd_starttls(struct smtp_session *, const struct smtp_cmd *,
    double);
static void cmd_auth(struct smtp_session *, const struct smtp_cmd *, double);

/* The command table (RFC 5321 4.1): verb -> handler. */
static const struct {
	enum smtp_verb	verb;
	smtp_cmd_fn	fn;
} smtp_commands[] = {
	{ SMTP_VERB_HELO,	cmd_helo },
	{ SMTP_VERB_EHLO,	cmd_ehlo },
	{ SMTP_VERB_MAIL,	cmd_mail },
	{ SMTP_VERB_RCPT,	cmd_rcpt },
	{ SMTP_VERB_DATA,	cmd_data },
	{ SMTP_VERB_BDAT,	cmd_bdat },
	{ SMTP_VERB_RSET,	cmd_rset },
	{ SMTP_VERB_NOOP,	cmd_noop },
	{ SMTP_VERB_QUIT,	cmd_quit },
	{ SMTP_VERB_VRFY,	cmd_vrfy },
	{ SMTP_VERB_EXPN,	cmd_expn },
	{ SMTP_VERB_HELP,	cmd_help },
	{ SMTP_VERB_STARTTLS,	cmd_starttls },
	{ SMTP_VERB_AUTH,	cmd_auth },
};

static void
reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct smtp_session *s, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	if (s->stage >= 0 && (sb.s[0] == '4' || sb.s[0] == '5'))
		metrics_message_rejected((enum metrics_stage)s->stage, sb.s);
	strbuf_add(&sb, "\r\n", 2);
	s->ops->reply(s->ctx, sb.s, sb.len);
	strbuf_free(&sb);
}

static void
idstr(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void
close_with(struct smtp_session *s, const char *line)
{
	reply(s, "%s", line);
	s->state = SMTP_STATE_CLOSED;
}

/* Count a protocol error; too many and the session ends (anti-abuse). */
static int
count_error(struct smtp_session *s)
{
	if (++s->errors < SMTP_MAX_ERRORS)
		return 0;
	reply(s, "421 4.7.0 %s Error: too many errors", s->conf->hostname);
	s->state = SMTP_STATE_CLOSED;
	return 1;
}

static void
error_reply(struct smtp_session *s, const char *line)
{
	reply(s, "%s", line);
	count_error(s);
}

struct smtp_session *
smtp_session_new(const struct smtp_session_params *p,
    const struct smtp_server_ops *ops, void *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->conf = p->conf;
	s->policy = p->policy;
	s->ops = ops;
	s->ctx = ctx;
	s->icid = p->icid;
	s->tls_mode = p->tls;
	s->auth_mode = p->auth;
	s->stage = -1;
	bstrlcpy(s->client_ip, p->client_ip, sizeof(s->client_ip));
	bstrlcpy(s->client_rdns, p->client_rdns ? p->client_rdns : "unknown",
	    sizeof(s->client_rdns));
	envelope_init(&s->env);
	strbuf_init(&s->out);
	return s;
}

/* End the transaction: abort an open message, log, clear the envelope. */
static void
tx_reset(struct smtp_session *s, int log_abort)
{
	char mid[32];

	if (s->msg_open) {
		s->ops->msg_abort(s->ctx);
		s->msg_open = 0;
	}
	if (s->in_tx && log_abort) {
		idstr(s->env.mid, mid, sizeof(mid));
		mlog(LOG_LVL_INFO, "message_finished",
		    "Message finished MID {mid} aborted", "mid", mid, NULL);
	}
	s->in_tx = 0;
	s->used_bdat = s->bdat_last = s->bdat_refuse = 0;
	s->bdat_left = s->bdat_octets = s->content = s->trace_len = 0;
	s->too_big = s->write_error = 0;
	envelope_clear(&s->env);
	strbuf_reset(&s->out);
}

void
smtp_session_free(struct smtp_session *s)
{
	if (s == NULL)
		return;
	tx_reset(s, 1);
	strbuf_free(&s->out);
	free(s);
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_COMMIT || s->state == SMTP_STATE_CLOSED)
		return;
	if (s->state == SMTP_STATE_TLS) {
		/* Mid-handshake: no reply can be sent in plaintext. */
		s->state = SMTP_STATE_CLOSED;
		return;
	}
	tx_reset(s, 1);
	reply(s, "421 4.3.2 %s Service shutting down, try again later",
	    s->conf->hostname);
	s->state = SMTP_STATE_CLOSED;
}

void
smtp_session_lost(struct smtp_session *s)
{
	if (s->state != SMTP_STATE_COMMIT)
		tx_reset(s, 1);
	s->state = SMTP_STATE_CLOSED;
}

void
smtp_session_start(struct smtp_session *s, double now)
{
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (s->policy->action == POLICY_REJECT) {
		reply(s, "554 5.7.1 Access denied");
		s->state = SMTP_STATE_REJECTED;
		return;
	}
	reply(s, "220 %s ESMTP Postern", s->conf->hostname);
	s->state = SMTP_STATE_CMD;
}

double
smtp_session_deadline(const struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
		return s->block_deadline < s->data_deadline ?
		    s->block_deadline : s->data_deadline;
	case SMTP_STATE_COMMIT:
	case SMTP_STATE_CLOSED:
	case SMTP_STATE_AUTH_WAIT:
		return 0;
	case SMTP_STATE_AUTH_BLOCKED:
		return s->block_until;
	default:
		return s->cmd_deadline;
	}
}

void
smtp_session_timeout(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_CLOSED || s->state == SMTP_STATE_COMMIT)
		return;
	if (s->state == SMTP_STATE_TLS) {
		s->state = SMTP_STATE_CLOSED;
		return;
	}
	if (s->state == SMTP_STATE_AUTH_BLOCKED) {
		/* The brute-force delay is over: refuse and close. */
		close_with(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (s->state == SMTP_STATE_AUTH_WAIT)
		return;		/* no deadline while checking */
	tx_reset(s, 1);
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
	s->state = SMTP_STATE_CLOSED;
}

int
smtp_session_closing(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_CLOSED;
}

int
smtp_session_committing(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_COMMIT;
}

int
smtp_session_handshaking(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_TLS;
}

void
smtp_session_tls_started(struct smtp_session *s, const char *protocol,
    const char *cipher, double now)
{
	/* RFC 3207 4.2: forget everything the client said before TLS. */
	tx_reset(s, 1);
	s->helo_done = s->esmtp = 0;
	s->helo[0] = '\0';
	s->authed = 0;
	s->auth_user[0] = '\0';
	s->tls_active = 1;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s with cipher %s",
	    protocol, cipher);
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (s->state == SMTP_STATE_TLS)
		s->state = SMTP_STATE_CMD;
}

/* STARTTLS is offered (advertised and accepted) on this session now. */
static int
tls_offered(const struct smtp_session *s)
{
	return !s->tls_active && (s->tls_mode == LISTENER_TLS_PREFERRED ||
	    s->tls_mode == LISTENER_TLS_REQUIRED);
}

/* TLS is required and not yet active: the command gets 530. */
static int
need_tls(struct smtp_session *s)
{
	if (s->tls_active || s->tls_mode != LISTENER_TLS_REQUIRED)
		return 0;
	error_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
	return 1;
}

/* AUTH is advertised and accepted on this session now: the listener has
 * it, and TLS is active or this sender group may AUTH in plaintext (never
 * before TLS on a listener that requires TLS). */
static int
auth_offered(const struct smtp_session *s)
{
	if (s->auth_mode == LISTENER_AUTH_OFF)
		return 0;
	if (s->tls_active)
		return 1;
	return s->policy->allow_plaintext_auth &&
	    s->tls_mode != LISTENER_TLS_REQUIRED;
}

/* The listener requires AUTH and the client has not: 530. */
static int
need_auth(struct smtp_session *s)
{
	if (s->authed || s->auth_mode != LISTENER_AUTH_REQUIRED)
		return 0;
	error_reply(s, "530 5.7.0 Authentication required");
	return 1;
}

/* ------------------------------------------------------------ commands */

/* 0 ok; -1 when refused (the 501 is the command's only reply). */
static int
greet(struct smtp_session *s, const struct smtp_cmd *c, int esmtp)
{
	if (smtp_helo_parse(c->args, c->args_len) == -1) {
		error_reply(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname" :
		    "501 5.5.4 Syntax: HELO hostname");
		return -1;
	}
	/* RFC 5321 4.1.4: EHLO/HELO resets any transaction. */
	tx_reset(s, 1);
	s->helo_done = 1;
	s->esmtp = esmtp;
	if (c->args_len >= sizeof(s->helo))
		bstrlcpy(s->helo, "(too long)", sizeof(s->helo));
	else {
		memcpy(s->helo, c->args, c->args_len);
		s->helo[c->args_len] = '\0';
	}
	return 0;
}

static void
cmd_helo(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	if (greet(s, c, 0) == 0)
		reply(s, "250 %s", s->conf->hostname);
}

static void
cmd_ehlo(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	if (greet(s, c, 1) == -1)
		return;
	reply(s, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n%s%s"
	    "250 CHUNKING", s->conf->hostname, s->policy->max_message_size,
	    tls_offered(s) ? "250-STARTTLS\r\n" : "",
	    auth_offered(s) ? "250-AUTH PLAIN LOGIN\r\n" : "");
}

static void
auth_lost(struct smtp_session *s)
{
	char icid[32];

	idstr(s->icid, icid, sizeof(icid));
	mlog(LOG_LVL_WARNING, "auth_removed", "ICID {icid} AUTH user {user} "
	    "no longer exists; the session is unauthenticated again", "icid",
	    icid, "user", s->auth_user, NULL);
	s->authed = 0;
	s->auth_user[0] = '\0';
}

/* Authenticated MAIL: the sender must be one of the user's verified
 * identities (the null sender is left to the header From: check), and
 * the user's sending quota must allow one more message.  1 = refused
 * (the reply is sent). */
static int
ops_sender_allowed(void *arg, const char *addr)
{
	struct smtp_session *s = arg;

	return s->ops->sender_allowed(s->ctx, s->auth_user, addr);
}

static int
sender_refused(struct smtp_session *s, const char *addr)
{
	const char *why;
	char buf[IDENTITY_REPLY_MAX];

	switch (identity_check_sender(addr, ops_sender_allowed, s, buf,
	    sizeof(buf))) {
	case IDENTITY_USER_GONE:
		auth_lost(s);
		error_reply(s, "530 5.7.0 Authentication required");
		return 1;
	case IDENTITY_REFUSED:
		reply(s, "%s", buf);
		count_error(s);
		return 1;
	case IDENTITY_OK:
		break;
	}
	if ((why = s->ops->send_quota(s->ctx, s->auth_user)) != NULL) {
		reply(s, "%s", why);
		return 1;
	}
	return 0;
}

/* MAIL refused for want of spool space: 452 "insufficient system
 * storage" (RFC 5321 4.2.2, RFC 1870 6 for a declared SIZE; RFC 3463
 * X.3.1).  The client keeps its message and tries later instead of
 * learning after the whole DATA; 1 = refused (reply sent). */
static int
spool_full(struct smtp_session *s, const struct smtp_path *path,
    uint64_t size)
{
	static const char line[] = "452 4.3.1 Insufficient system storage";
	char icid[32];

	if (s->ops->spool_room(s->ctx, size))
		return 0;
	idstr(s->icid, icid, sizeof(icid));
	mlog(LOG_LVL_INFO, "mail_rejected",
	    "ICID {icid} From: <{from}> rejected: {reply}", "icid", icid,
	    "from", path->addr, "reply", line, NULL);
	reply(s, "%s", line);
	return 1;
}

static void
cmd_mail(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	struct smtp_mail_params mp;
	struct smtp_path path;
	const char *why = NULL;
	char mid[32], icid[32], from[SMTP_ADDR_MAX + 3];

	if (need_tls(s))
		return;
	if (!s->helo_done) {
		error_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_tx) {
		error_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtp_mail_parse(c->args, c->args_len, &path, &mp, &why) == -1) {
		error_reply(s, why);
		return;
	}
	if (!s->esmtp && (mp.size || mp.body || mp.smtputf8 || mp.ret ||
	    mp.envid[0])) {
		error_reply(s, "555 5.5.4 MAIL parameters need EHLO");
		return;
	}
	if (mp.size > s->policy->max_message_size) {
		error_reply(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		return;
	}
	/* Space before the sender checks: a refusal here must not count
	 * against the user's sending quota. */
	if (need_auth(s) || spool_full(s, &path, mp.size) ||
	    (s->authed && sender_refused(s, path.addr)))
		return;
	envelope_init(&s->env);
	s->env.mid = s->ops->new_mid(s->ctx);
	s->env.icid = s->icid;
	s->env.received = wall_now();
	bstrlcpy(s->env.client_ip, s->client_ip, sizeof(s->env.client_ip));
	bstrlcpy(s->env.helo, s->helo, sizeof(s->env.helo));
	if (s->authed)
		bstrlcpy(s->env.auth_user, s->auth_user,
		    sizeof(s->env.auth_user));
	bstrlcpy(s->env.from, path.addr, sizeof(s->env.from));
	s->env.body = mp.body;
	s->env.smtputf8 = mp.smtputf8;
	s->env.ret = mp.ret;
	bstrlcpy(s->env.envid, mp.envid, sizeof(s->env.envid));
	s->in_tx = 1;
	idstr(s->env.mid, mid, sizeof(mid));
	idstr(s->icid, icid, sizeof(icid));
	snprintf(from, sizeof(from), "%s", path.addr);
	mlog(LOG_LVL_INFO, "start", "Start MID {mid} ICID {icid}", "mid", mid,
	    "icid", icid, NULL);
	mlog(LOG_LVL_INFO, "from", "MID {mid} ICID {icid} From: <{from}>",
	    "mid", mid, "icid", icid, "from", from, NULL);
	reply(s, "250 2.1.0 Ok");
}

/* RFC 5321 4.5.1: <postmaster> without a domain is always accepted. */
static void
qualify_postmaster(struct smtp_session *s, struct smtp_path *p)
{
	const char *dom;

	if (p->domain[0] != '\0')
		return;
	dom = conf_is_local_domain(s->conf, s->conf->hostname) ||
	    s->conf->nlocal_domains == 0 ? s->conf->hostname :
	    s->conf->local_domains[0];
	snprintf(p->addr, sizeof(p->addr), "postmaster@%s", dom);
	bstrlcpy(p->domain, dom, sizeof(p->domain));
}

static void
rcpt_reject(struct smtp_session *s, const struct smtp_path *p,
    const char *line)
{
	char mid[32], icid[32];

	idstr(s->env.mid, mid, sizeof(mid));
	idstr(s->icid, icid, sizeof(icid));
	mlog(LOG_LVL_INFO, "rcpt_rejected",
	    "MID {mid} ICID {icid} To: <{to}> rejected: {reply}", "mid", mid,
	    "icid", icid, "to", p->addr, "reply", line, NULL);
	error_reply(s, line);
}

static void
cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	struct smtp_rcpt_params rp;
	struct smtp_path path;
	const char *why = NULL;
	char mid[32], icid[32], rid[32];
	int local;

	if (need_tls(s))
		return;
	if (!s->in_tx) {
		error_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->used_bdat || s->msg_open) {
		error_reply(s, "503 5.5.1 Error: RCPT after message data");
		return;
	}
	if (smtp_rcpt_parse(c->args, c->args_len, &path, &rp, &why) == -1) {
		error_reply(s, why);
		return;
	}
	if (path.utf8 && !s->env.smtputf8) {
		rcpt_reject(s, &path, "553 5.6.7 SMTPUTF8 required for "
		    "non-ASCII address");
		return;
	}
	if (!s->esmtp && (rp.notify || rp.orcpt[0])) {
		error_reply(s, "555 5.5.4 RCPT parameters need EHLO");
		return;
	}
	if ((int)s->env.nrcpts >= s->policy->max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	qualify_postmaster(s, &path);
	local = conf_is_local_domain(s->conf, path.domain);
	if (!local && s->policy->action != POLICY_RELAY && !s->authed) {
		rcpt_reject(s, &path, "550 5.7.1 Relaying denied");
		return;
	}
	if (local && (why = s->ops->rcpt_local_check(s->ctx, &path)) != NULL) {
		rcpt_reject(s, &path, why);
		return;
	}
	envelope_add_rcpt(&s->env, path.addr, rp.notify, rp.orcpt);
	idstr(s->env.mid, mid, sizeof(mid));
	idstr(s->icid, icid, sizeof(icid));
	idstr(s->env.nrcpts - 1, rid, sizeof(rid));
	mlog(LOG_LVL_INFO, "rcpt", "MID {mid} ICID {icid} RID {rid} To: <{to}>",
	    "mid", mid, "icid", icid, "rid", rid, "to", path.addr, NULL);
	reply(s, "250 2.1.5 Ok");
}

/* Open the spool file and write our Received: trace field (RFC 5321 4.4). */
static int
msg_open(struct smtp_session *s)
{
	struct strbuf rcv = STRBUF_INIT;
	char date[64];
	struct tm tm;
	time_t t = (time_t)s->env.received;
	const char *proto;

	if (s->ops->msg_begin(s->ctx, s->env.mid) == -1)
		return -1;
	s->msg_open = 1;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 3848 / 6531 transmission types. */
	if (s->tls_active)
		proto = s->env.smtputf8 ? (s->authed ? "UTF8SMTPSA" :
		    "UTF8SMTPS") : s->authed ? "ESMTPSA" : s->esmtp ?
		    "ESMTPS" : "SMTPS";
	else
		proto = s->env.smtputf8 ? (s->authed ? "UTF8SMTPA" :
		    "UTF8SMTP") : s->authed ? "ESMTPA" : s->esmtp ? "ESMTP" :
		    "SMTP";
	strbuf_puts(&rcv, "Received: from ");
	strbuf_printable(&rcv, s->helo, strlen(s->helo));
	strbuf_printf(&rcv, " (%s [%s])\r\n", s->client_rdns, s->client_ip);
	if (s->tls_active)
		strbuf_printf(&rcv, "\t(using %s)\r\n", s->tls_info);
	strbuf_printf(&rcv, "\tby %s (Postern) with %s id %llu",
	    s->conf->hostname, proto, (unsigned long long)s->env.mid);
	if (s->env.nrcpts == 1)
		strbuf_printf(&rcv, "\r\n\tfor <%s>", s->env.rcpts[0].addr);
	strbuf_printf(&rcv, "; %s\r\n", date);
	s->content = s->trace_len = rcv.len;
	if (s->ops->msg_write(s->ctx, rcv.s, rcv.len) == -1)
		s->write_error = 1;
	strbuf_free(&rcv);
	return 0;
}

static void
begin_content(struct smtp_session *s, int bdat, double now)
{
	smtp_data_init(&s->scan, s->policy->limits.max_line_length,
	    s->policy->limits.bare_line_ends == BARE_NORMALIZE, bdat);
	msg_header_scan_init(&s->hdr);
	s->data_deadline = now + s->policy->limits.data_timeout;
	s->block_deadline = now + s->policy->limits.data_block_timeout;
}

static void
cmd_data(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	if (c->args_len > 0) {
		error_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (need_tls(s))
		return;
	if (!s->in_tx) {
		error_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->used_bdat) {
		error_reply(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (s->env.nrcpts == 0) {
		error_reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (msg_open(s) == -1) {
		reply(s, "451 4.3.0 Error: queue file write error");
		tx_reset(s, 1);
		return;
	}
	begin_content(s, 0, now);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->state = SMTP_STATE_DATA;
}

static void
cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	const char *why = NULL;
	uint64_t size;
	int last;

	if (smtp_bdat_parse(c->args, c->args_len, &size, &last, &why) == -1) {
		/* Without a valid size we cannot find the next command. */
		tx_reset(s, 1);
		close_with(s, "501 5.5.4 Syntax: BDAT <size> [LAST]; closing "
		    "connection");
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_refuse = !s->in_tx || s->env.nrcpts == 0;
	if (!s->tls_active && s->tls_mode == LISTENER_TLS_REQUIRED)
		s->bdat_refuse = 3;	/* swallow the chunk, then 530 */
	if (!s->bdat_refuse && !s->used_bdat) {
		if (msg_open(s) == -1) {
			reply(s, "451 4.3.0 Error: queue file write error");
			tx_reset(s, 1);
			/* Still swallow the chunk: it is not commands. */
			s->bdat_left = size;
			s->bdat_refuse = 2;
		} else {
			s->used_bdat = 1;
			begin_content(s, 1, now);
		}
	}
	s->block_deadline = now + s->policy->limits.data_block_timeout;
	if (!s->used_bdat)
		s->data_deadline = now + s->policy->limits.data_timeout;
	s->state = SMTP_STATE_BDAT;
}

static void
cmd_rset(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	tx_reset(s, 1);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	tx_reset(s, 1);
	close_with(s, "221 2.0.0 Bye");
}

static void
cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	if (need_tls(s))
		return;
	/* RFC 5321 3.5.3: 252 rather than disclosing users. */
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and "
	    "attempt delivery");
}

static void
cmd_expn(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	error_reply(s, "502 5.5.1 Error: EXPN not supported");
}

static void
cmd_help(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP "
	    "QUIT VRFY HELP");
}

static void
cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	if (c->args_len > 0) {
		error_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls_active) {
		error_reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (!tls_offered(s)) {
		/* Not advertised: this listener has no TLS. */
		error_reply(s, "502 5.5.1 Error: STARTTLS not available on "
		    "this listener");
		return;
	}
	tx_reset(s, 1);
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Whatever follows in the input was sent in plaintext before the
	 * handshake: smtp_session_input() discards it (RFC 3207 5, the
	 * STARTTLS command injection attack). */
	s->state = SMTP_STATE_TLS;
	s->discarded = 0;
	s->ops->starttls(s->ctx);
}

/* A SASL response: base64 (RFC 4648), or "=" for an empty one (RFC 4954
 * 4).  Length or -1. */
static int
sasl_decode(const char *in, size_t len, unsigned char *out, size_t outmax)
{
	if (len == 1 && in[0] == '=')
		return 0;
	return base64_decode(in, len, out, outmax);
}

static void
log_auth(struct smtp_session *s, const char *user, int ok)
{
	char icid[32];

	idstr(s->icid, icid, sizeof(icid));
	mlog(LOG_LVL_INFO, ok ? "auth_success" : "auth_failed", ok ?
	    "ICID {icid} AUTH success user {user} mechanism {mechanism}" :
	    "ICID {icid} AUTH failed user {user} mechanism {mechanism}",
	    "icid", icid, "user", user, "mechanism", s->sasl_mech, NULL);
}

/* AUTH refused before any exchange: counted, then the reply. */
static void
auth_refuse(struct smtp_session *s, enum metrics_auth_fail why,
    const char *line)
{
	metrics_auth_failure(why);
	error_reply(s, line);
}

/* A failed exchange before any check: 535, logged. */
static void
auth_fail_now(struct smtp_session *s, const char *user)
{
	metrics_auth_failure(METRICS_AUTH_MALFORMED);
	log_auth(s, user, 0);
	s->state = SMTP_STATE_CMD;
	error_reply(s, "535 5.7.8 Authentication credentials invalid");
}

/* Hand user and password to the checker; the answer may come at once. */
static void
auth_submit(struct smtp_session *s, const char *user, size_t ulen,
    char *pass, size_t plen)
{
	size_t i;

	if (ulen == 0 || ulen > AUTH_USER_MAX || plen > AUTH_PASS_MAX) {
		auth_fail_now(s, ulen == 0 ? "(empty)" : "(too long)");
		return;
	}
	for (i = 0; i < ulen; i++)
		if ((unsigned char)user[i] < 0x21 || user[i] == 0x7f) {
			auth_fail_now(s, "(invalid)");
			return;
		}
	memcpy(s->try_user, user, ulen);
	s->try_user[ulen] = '\0';
	s->state = SMTP_STATE_AUTH_WAIT;
	s->ops->auth_check(s->ctx, s->try_user, pass, plen);
}

/* RFC 4616: authzid NUL authcid NUL passwd. */
static void
sasl_plain(struct smtp_session *s, unsigned char *buf, size_t n)
{
	unsigned char *a, *b;

	a = memchr(buf, '\0', n);
	b = a ? memchr(a + 1, '\0', n - (size_t)(a + 1 - buf)) : NULL;
	if (a == NULL || b == NULL) {
		auth_fail_now(s, "(malformed PLAIN response)");
		return;
	}
	/* Acting for someone else (authzid) is not offered. */
	if (a != buf && ((size_t)(a - buf) != (size_t)(b - a - 1) ||
	    memcmp(buf, a + 1, (size_t)(a - buf)) != 0)) {
		auth_fail_now(s, "(authorization identity differs)");
		return;
	}
	auth_submit(s, (const char *)a + 1, (size_t)(b - a - 1), (char *)b + 1,
	    n - (size_t)(b + 1 - buf));
}

/* One decoded SASL response (initial or after a 334). */
static void
sasl_response(struct smtp_session *s, const char *line, size_t len)
{
	unsigned char buf[SASL_LINE_MAX];
	int n;

	if (len == 1 && line[0] == '*') {
		s->state = SMTP_STATE_CMD;
		auth_refuse(s, METRICS_AUTH_ABORTED,
		    "501 5.7.0 Authentication aborted");
		return;
	}
	if ((n = sasl_decode(line, len, buf, sizeof(buf))) < 0) {
		s->state = SMTP_STATE_CMD;
		auth_refuse(s, METRICS_AUTH_MALFORMED,
		    "501 5.5.2 Cannot decode response");
		return;
	}
	if (strcmp(s->sasl_mech, "PLAIN") == 0)
		sasl_plain(s, buf, (size_t)n);
	else if (s->sasl_step == 0) {
		if (n == 0 || n > AUTH_USER_MAX) {
			auth_fail_now(s, n == 0 ? "(empty)" : "(too long)");
		} else {
			memcpy(s->sasl_login, buf, (size_t)n);
			s->sasl_login[n] = '\0';
			s->sasl_step = 1;
			s->state = SMTP_STATE_SASL;
			reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		}
	} else
		auth_submit(s, s->sasl_login, strlen(s->sasl_login),
		    (char *)buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
}

static void
cmd_auth(struct smtp_session *s, const struct smtp_cmd *c, double now)
{
	const char *sp;
	size_t mlen;

	if (need_tls(s)) {
		metrics_auth_failure(METRICS_AUTH_ENCRYPTION_REQUIRED);
		return;
	}
	if (s->auth_mode == LISTENER_AUTH_OFF) {
		auth_refuse(s, METRICS_AUTH_BAD_SEQUENCE,
		    "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!auth_offered(s)) {
		auth_refuse(s, METRICS_AUTH_ENCRYPTION_REQUIRED, "538 5.7.11 "
		    "Encryption required for requested authentication "
		    "mechanism");
		return;
	}
	if (!s->helo_done || !s->esmtp) {
		auth_refuse(s, METRICS_AUTH_BAD_SEQUENCE,
		    "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authed) {
		auth_refuse(s, METRICS_AUTH_BAD_SEQUENCE,
		    "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_tx) {
		auth_refuse(s, METRICS_AUTH_BAD_SEQUENCE, "503 5.5.1 Error: "
		    "AUTH not allowed during a mail transaction");
		return;
	}
	sp = memchr(c->args, ' ', c->args_len);
	mlen = sp ? (size_t)(sp - c->args) : c->args_len;
	if (mlen == 5 && ascii_ncasecmp(c->args, "PLAIN", 5) == 0)
		s->sasl_mech = "PLAIN";
	else if (mlen == 5 && ascii_ncasecmp(c->args, "LOGIN", 5) == 0)
		s->sasl_mech = "LOGIN";
	else {
		auth_refuse(s, METRICS_AUTH_UNSUPPORTED_MECHANISM, mlen == 0 ?
		    "501 5.5.4 Syntax: AUTH mechanism" :
		    "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->sasl_step = 0;
	if (s->ops->auth_blocked(s->ctx)) {
		metrics_auth_failure(METRICS_AUTH_BLOCKED);
		/* Brute force: no check, a delay, then 454 and close. */
		s->state = SMTP_STATE_AUTH_BLOCKED;
		s->block_until = now + s->policy->limits.auth_failure_delay;
		return;
	}
	if (sp != NULL) {
		sasl_response(s, sp + 1, c->args_len - mlen - 1);
		return;
	}
	s->state = SMTP_STATE_SASL;
	/* PLAIN: empty challenge; LOGIN: "Username:". */
	reply(s, "%s", strcmp(s->sasl_mech, "PLAIN") == 0 ? "334 " :
	    "334 VXNlcm5hbWU6");
}

void
smtp_session_auth_result(struct smtp_session *s, int result, double now)
{
	if (s->state != SMTP_STATE_AUTH_WAIT)
		return;
	s->state = SMTP_STATE_CMD;
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (result == 1) {
		s->authed = 1;
		bstrlcpy(s->auth_user, s->try_user, sizeof(s->auth_user));
		metrics_auth_success(s->sasl_mech);
		log_auth(s, s->try_user, 1);
		reply(s, "235 2.7.0 Authentication successful");
	} else if (result == 0) {
		metrics_auth_failure(METRICS_AUTH_INVALID_CREDENTIALS);
		log_auth(s, s->try_user, 0);
		error_reply(s, "535 5.7.8 Authentication credentials invalid");
	} else {
		metrics_auth_failure(METRICS_AUTH_TEMPORARY);
		reply(s, "454 4.7.0 Temporary authentication failure");
	}
}

int
smtp_session_authenticating(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_AUTH_WAIT;
}

const char *
smtp_session_auth_user(const struct smtp_session *s)
{
	return s->authed ? s->auth_user : NULL;
}

/* ------------------------------------------------------------- content */

/* Pass scanner output to the spool unless the message is already lost. */
static void
store_out(struct smtp_session *s)
{
	if (s->out.len == 0)
		return;
	msg_header_scan_feed(&s->hdr, s->out.s, s->out.len);
	s->content += s->out.len;
	/* The limit (RFC 1870 SIZE) is on the client's message, not on our
	 * Received: field. */
	if (s->content - s->trace_len > s->policy->max_message_size)
		s->too_big = 1;
	if (!s->too_big && !s->write_error &&
	    s->ops->msg_write(s->ctx, s->out.s, s->out.len) == -1)
		s->write_error = 1;
	strbuf_reset(&s->out);
}

static void
log_rejected(struct smtp_session *s, const char *line)
{
	char mid[32];

	idstr(s->env.mid, mid, sizeof(mid));
	mlog(LOG_LVL_INFO, "rejected", "MID {mid} rejected: {reply}",
	    "mid", mid, "reply", line, NULL);
}

/* At the end of data a removed credential counts as "not verified". */
static int
ops_from_allowed(void *arg, const char *addr)
{
	return ops_sender_allowed(arg, addr) == 1;
}

/* Authenticated sender, end of the message: the header From: check of
 * identity.c.  NULL = fine, else the reply (in buf). */
static const char *
header_from_refused(struct smtp_session *s, char *buf, size_t len)
{
	if (identity_check_header_from(s->hdr.from, s->hdr.from_count,
	    s->hdr.from_truncated, s->env.from, ops_from_allowed, s, buf,
	    len) == IDENTITY_OK)
		return NULL;
	return buf;
}

/* End of DATA or of the LAST chunk: refuse, or hand over for commit. */
static void
finish_content(struct smtp_session *s, double now)
{
	const char *why = NULL;
	char mid[32], fromwhy[512];

	msg_header_scan_finish(&s->hdr);
	if (s->scan.bare_seen && !s->scan.normalize)
		why = "550 5.5.2 Bare LF or CR not allowed in message";
	else if (s->scan.line_too_long)
		why = "552 5.3.4 Message line too long";
	else if (s->too_big)
		why = "552 5.3.4 Message size exceeds fixed maximum message size";
	else if (s->write_error)
		why = "451 4.3.0 Error: queue file write error";
	else if (s->authed)
		why = header_from_refused(s, fromwhy, sizeof(fromwhy));
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (why != NULL) {
		log_rejected(s, why);
		reply(s, "%s", why);
		idstr(s->env.mid, mid, sizeof(mid));
		s->in_tx = 0;	/* logged as rejected, not "aborted" */
		tx_reset(s, 0);
		mlog(LOG_LVL_INFO, "message_finished",
		    "Message finished MID {mid} aborted", "mid", mid, NULL);
		s->state = SMTP_STATE_CMD;
		return;
	}
	s->env.msg_size = s->content;
	idstr(s->env.mid, mid, sizeof(mid));
	if (s->hdr.message_id[0])
		mlog(LOG_LVL_INFO, "message_id", "MID {mid} Message-ID '{msgid}'",
		    "mid", mid, "msgid", s->hdr.message_id, NULL);
	if (s->hdr.subject[0])
		mlog(LOG_LVL_INFO, "subject", "MID {mid} Subject '{subject}'",
		    "mid", mid, "subject", s->hdr.subject, NULL);
	s->msg_open = 0;	/* the spool owns it now */
	s->state = SMTP_STATE_COMMIT;
	s->ops->msg_commit(s->ctx, &s->env);
}

void
smtp_session_committed(struct smtp_session *s, int ok, double now)
{
	char mid[32], size[32];

	if (s->state != SMTP_STATE_COMMIT)
		return;
	idstr(s->env.mid, mid, sizeof(mid));
	s->stage = METRICS_STAGE_DATA;
	if (ok) {
		metrics_message_accepted();
		idstr(s->env.msg_size, size, sizeof(size));
		mlog(LOG_LVL_INFO, "ready", "MID {mid} ready {size} bytes from "
		    "<{from}>", "mid", mid, "size", size, "from", s->env.from,
		    NULL);
		reply(s, "250 2.0.0 Ok: queued as %s", mid);
	} else {
		log_rejected(s, "451 4.3.0 Error: queue file write error");
		reply(s, "451 4.3.0 Error: queue file write error");
		mlog(LOG_LVL_INFO, "message_finished",
		    "Message finished MID {mid} aborted", "mid", mid, NULL);
	}
	s->stage = -1;
	s->in_tx = 0;
	tx_reset(s, 0);
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	s->state = SMTP_STATE_CMD;
}

/* DATA: scan contiguous pieces of the buffer until end of data. */
static void
input_data(struct smtp_session *s, struct evbuffer *in, double now)
{
	struct evbuffer_iovec v;
	size_t used;

	s->block_deadline = now + s->policy->limits.data_block_timeout;
	while (s->state == SMTP_STATE_DATA && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = smtp_data_feed(&s->scan, v.iov_base, v.iov_len, &s->out);
		evbuffer_drain(in, used);
		store_out(s);
		if (s->scan.done)
			finish_content(s, now);
	}
}

/* BDAT: take exactly the announced octets (RFC 3030 2). */
static void
input_bdat(struct smtp_session *s, struct evbuffer *in, double now)
{
	struct evbuffer_iovec v;
	size_t n;

	s->block_deadline = now + s->policy->limits.data_block_timeout;
	while (s->bdat_left > 0 && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < s->bdat_left ? v.iov_len : (size_t)s->bdat_left;
		if (!s->bdat_refuse)
			smtp_data_feed(&s->scan, v.iov_base, n, &s->out);
		evbuffer_drain(in, n);
		s->bdat_left -= n;
		if (!s->bdat_refuse) {
			s->bdat_octets += n;
			store_out(s);
		}
	}
	if (s->bdat_left > 0)
		return;
	s->state = SMTP_STATE_CMD;
	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (s->bdat_refuse) {
		if (s->bdat_refuse == 3)
			need_tls(s);
		else if (s->bdat_refuse == 1)
			error_reply(s, s->in_tx ?
			    "503 5.5.1 Error: need RCPT command" :
			    "503 5.5.1 Error: need MAIL command");
		s->bdat_refuse = 0;
		return;
	}
	if (!s->bdat_last) {
		/* The client's octets so far (as in the RFC 3030 examples),
		 * not counting our Received: field. */
		reply(s, "250 2.0.0 Ok: %llu octets received",
		    (unsigned long long)s->bdat_octets);
		return;
	}
	smtp_data_finish(&s->scan, &s->out);
	store_out(s);
	finish_content(s, now);
}

/* The metrics stage a verb's refusals count in (-1: none). */
static int
stage_of(enum smtp_verb v)
{
	switch (v) {
	case SMTP_VERB_MAIL:
		return METRICS_STAGE_MAIL;
	case SMTP_VERB_RCPT:
		return METRICS_STAGE_RCPT;
	case SMTP_VERB_DATA:
	case SMTP_VERB_BDAT:
		return METRICS_STAGE_DATA;
	default:
		return -1;
	}
}

/* One command line (line ending already stripped). */
static void
dispatch(struct smtp_session *s, const char *line, size_t len, double now)
{
	struct smtp_cmd c;
	size_t i;

	s->cmd_deadline = now + s->policy->limits.command_timeout;
	if (smtp_cmd_parse(line, len, &c) == -1) {
		error_reply(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	if (s->state == SMTP_STATE_REJECTED) {
		if (c.verb == SMTP_VERB_QUIT)
			close_with(s, "221 2.0.0 Bye");
		else
			error_reply(s, "554 5.7.1 Access denied");
		return;
	}
	for (i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++)
		if (smtp_commands[i].verb == c.verb) {
			s->stage = stage_of(c.verb);
			smtp_commands[i].fn(s, &c, now);
			s->stage = -1;
			return;
		}
	error_reply(s, "500 5.5.2 Error: command not recognized");
}

/* Command state: take one line, enforcing the 512-octet limit. */
static int
input_line(struct smtp_session *s, struct evbuffer *in, double now)
{
	struct evbuffer_ptr eol;
	char line[SASL_LINE_MAX + 1], head[5];
	size_t eol_len = 0, len, max = SMTP_LINE_MAX;

	/* RFC 4954 4: AUTH lines and SASL responses may be 12288 octets. */
	if (s->state == SMTP_STATE_SASL || (evbuffer_copyout(in, head, 5) == 5 &&
	    ascii_ncasecmp(head, "AUTH ", 5) == 0))
		max = SASL_LINE_MAX;
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) < max)
			return 0;
		/* No end of line within the limit: refuse, skip the rest. */
		evbuffer_drain(in, evbuffer_get_length(in));
		if (s->state == SMTP_STATE_SKIPLINE)
			return 0;
		if (s->state == SMTP_STATE_REJECTED) {
			close_with(s, "554 5.7.1 Access denied");
			return 0;
		}
		if (s->state == SMTP_STATE_SASL)
			s->state = SMTP_STATE_CMD;
		error_reply(s, "500 5.5.2 Line too long");
		if (s->state != SMTP_STATE_CLOSED)
			s->state = SMTP_STATE_SKIPLINE;
		return 0;
	}
	len = (size_t)eol.pos;
	if (s->state == SMTP_STATE_SKIPLINE) {
		evbuffer_drain(in, len + eol_len);
		s->state = SMTP_STATE_CMD;
		return 1;
	}
	if (len + 1 > max) {
		evbuffer_drain(in, len + eol_len);
		if (s->state == SMTP_STATE_SASL)
			s->state = SMTP_STATE_CMD;
		/* Same answer as without an end of line (above), whatever
		 * way the bytes were split. */
		if (s->state == SMTP_STATE_REJECTED) {
			close_with(s, "554 5.7.1 Access denied");
			return 1;
		}
		error_reply(s, "500 5.5.2 Line too long");
		return 1;
	}
	evbuffer_remove(in, line, len + eol_len);
	/* Strip CRLF or a bare LF (old scripts); a CR left inside is an error
	 * for smtp_cmd_parse. */
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (s->state == SMTP_STATE_SASL) {
		/* A response to our 334, never a command. */
		s->cmd_deadline = now + s->policy->limits.command_timeout;
		sasl_response(s, line, len);
		OPENSSL_cleanse(line, len);
		return 1;
	}
	dispatch(s, line, len, now);
	if (len > 5 && ascii_ncasecmp(line, "AUTH ", 5) == 0)
		OPENSSL_cleanse(line, len);	/* initial response */
	return 1;
}

/* Octets pipelined after STARTTLS, before the handshake: never commands. */
static void
discard_plaintext(struct smtp_session *s, struct evbuffer *in)
{
	char icid[32], n[32];
	size_t len = evbuffer_get_length(in);

	evbuffer_drain(in, len);
	if (s->discarded == 0) {
		idstr(s->icid, icid, sizeof(icid));
		idstr(len, n, sizeof(n));
		mlog(LOG_LVL_WARNING, "starttls_discard", "ICID {icid} STARTTLS: "
		    "discarded {octets} octets sent in plaintext after STARTTLS "
		    "(never executed; a client bug or a command injection "
		    "attempt)", "icid", icid, "octets", n, NULL);
	}
	s->discarded += len;
}

void
smtp_session_input(struct smtp_session *s, struct evbuffer *in, double now)
{
	/* A chunk of size 0 ("BDAT 0 LAST", RFC 3030 2) is complete at once. */
	while (evbuffer_get_length(in) > 0 ||
	    (s->state == SMTP_STATE_BDAT && s->bdat_left == 0)) {
		switch (s->state) {
		case SMTP_STATE_CMD:
		case SMTP_STATE_SKIPLINE:
		case SMTP_STATE_REJECTED:
		case SMTP_STATE_SASL:
			if (!input_line(s, in, now))
				return;
			break;
		case SMTP_STATE_AUTH_WAIT:
		case SMTP_STATE_AUTH_BLOCKED:
			return;		/* kept until the answer */
		case SMTP_STATE_DATA:
			s->stage = METRICS_STAGE_DATA;
			input_data(s, in, now);
			s->stage = -1;
			break;
		case SMTP_STATE_BDAT:
			s->stage = METRICS_STAGE_DATA;
			input_bdat(s, in, now);
			s->stage = -1;
			break;
		case SMTP_STATE_COMMIT:
			return;
		case SMTP_STATE_TLS:
			discard_plaintext(s, in);
			return;
		case SMTP_STATE_CLOSED:
			/* Nothing after QUIT or 421 is read (RFC 5321 4.1.1.10). */
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
	}
}
