/*
 * test_smtp_server.c - the inbound session engine driven with byte buffers.
 *
 * A fake set of smtp_server_ops records every reply and keeps the "spool"
 * in memory; msg_commit records the envelope and then answers with
 * smtp_session_committed() at once (ok or failed) or later (deferred).
 *
 * The dialog table is run three ways - the whole input in one buffer, one
 * byte at a time, and in 7-byte pieces - and each run must give exactly
 * the wanted replies (postern-log(7), SMTP REPLIES), commits and stored content.
 * Other tests cover the Received: trace field and envelope, deadlines and
 * timeouts, input held back while a commit is pending, teardown, and MAIL
 * refused with 452 4.3.1 while the spool has no room (ops->spool_room).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "conf.h"
#include "envelope.h"
#include "log.h"
#include "smtp_server.h"
#include "strbuf.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

#define HOST		"mx.test.example"
#define T0		1000.0		/* session start, monotonic seconds */

/* ---- replies (postern-log(7), SMTP REPLIES) ----------------------------- */

#define BANNER		"220 " HOST " ESMTP Postern\r\n"
#define EHLO_R(size)	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE " size \
			"\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
			"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 CHUNKING\r\n"
#define SIZE_DEF	"20971520"
#define R_HELO		"250 " HOST "\r\n"
#define R_MAIL		"250 2.1.0 Ok\r\n"
#define R_RCPT		"250 2.1.5 Ok\r\n"
#define R_DATA		"354 End data with <CR><LF>.<CR><LF>\r\n"
#define R_QUEUED(mid)	"250 2.0.0 Ok: queued as " mid "\r\n"
#define R_OCTETS(n)	"250 2.0.0 Ok: " n " octets received\r\n"
#define R_OK		"250 2.0.0 Ok\r\n"
#define R_BYE		"221 2.0.0 Bye\r\n"
#define R_BARE		"550 5.5.2 Bare LF or CR not allowed in message\r\n"
#define R_TOOBIG	"552 5.3.4 Message size exceeds fixed maximum " \
			"message size\r\n"
#define R_LINELONG	"552 5.3.4 Message line too long\r\n"
#define R_CMDLONG	"500 5.5.2 Line too long\r\n"
#define R_RCPTMAX	"452 4.5.3 Too many recipients\r\n"
#define R_RELAY		"550 5.7.1 Relaying denied\r\n"
#define R_DENIED	"554 5.7.1 Access denied\r\n"
#define R_TEMPFAIL	"451 4.3.0 Error: queue file write error\r\n"
#define R_TIMEOUT	"421 4.4.2 " HOST " Error: timeout exceeded\r\n"
#define R_ERRORS	"421 4.7.0 " HOST " Error: too many errors\r\n"
#define R_UNKNOWN	"500 5.5.2 Error: command not recognized\r\n"
#define R_SYNTAX	"500 5.5.2 Error: bad syntax\r\n"
#define R_NEEDHELO	"503 5.5.1 Error: send HELO/EHLO first\r\n"
#define R_NEEDMAIL	"503 5.5.1 Error: need MAIL command\r\n"
#define R_NEEDRCPT	"503 5.5.1 Error: need RCPT command\r\n"
#define R_NESTED	"503 5.5.1 Error: nested MAIL command\r\n"
#define R_DATABDAT	"503 5.5.1 Error: DATA after BDAT\r\n"
#define R_RCPTBDAT	"503 5.5.1 Error: RCPT after message data\r\n"
#define R_BDATSYN	"501 5.5.4 Syntax: BDAT <size> [LAST]; closing " \
			"connection\r\n"
#define R_EHLOSYN	"501 5.5.4 Syntax: EHLO hostname\r\n"
#define R_HELOSYN	"501 5.5.4 Syntax: HELO hostname\r\n"
#define R_DATASYN	"501 5.5.4 Syntax: DATA\r\n"
#define R_PARAMEHLO	"555 5.5.4 MAIL parameters need EHLO\r\n"
#define R_USER		"550 5.1.1 <unknown@example.com>: Recipient address " \
			"rejected: User unknown"
#define R_STORAGE	"452 4.3.1 Insufficient system storage\r\n"

/* ---- client commands ------------------------------------------------ */

#define EHLO		"EHLO client.test\r\n"
#define MAILFROM	"MAIL FROM:<alice@example.org>\r\n"
#define RCPTTO		"RCPT TO:<bob@example.com>\r\n"
#define TX		EHLO MAILFROM RCPTTO
#define TX_R		BANNER EHLO_R(SIZE_DEF) R_MAIL R_RCPT
#define SMUGGLED	"MAIL FROM:<evil@example.net>\r\n" \
			"RCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n"
/* DATA content with `seq` (a false end of data) before smuggled commands,
 * then the real end of data and QUIT. */
#define SMUGGLE(seq)	TX "DATA\r\nSubject: s\r\n\r\nbody" seq SMUGGLED \
			"\r\n.\r\nQUIT\r\n"

static const char test_conf[] =
"hostname = \"" HOST "\";\n"
"data_dir = \"/nonexistent/postern-test\";\n"
"local_domains = [ \"example.com\" ];\n"
"routes = ( { domain = \"example.com\"; maildir = \"mail/%d/%u\"; } );\n"
"sender_groups = (\n"
"  { name = \"LOCAL\"; networks = [ \"127.0.0.0/8\" ]; policy = \"relayed\"; },\n"
"  { name = \"NORM\"; networks = [ \"10.1.0.0/16\" ]; policy = \"normal\"; },\n"
"  { name = \"SMALL\"; networks = [ \"10.2.0.0/16\" ]; policy = \"small\"; },\n"
"  { name = \"TIMERS\"; networks = [ \"10.3.0.0/16\" ]; policy = \"timers\"; },\n"
"  { name = \"BAD\"; networks = [ \"192.0.2.0/24\" ]; policy = \"rejected\"; },\n"
"  { name = \"ALL\"; networks = [ \"0.0.0.0/0\", \"::/0\" ]; policy = \"accepted\"; }\n"
");\n"
"policies = {\n"
"  relayed  = { action = \"relay\"; max_recipients = 3; };\n"
"  accepted = { action = \"accept\"; };\n"
"  rejected = { action = \"reject\"; };\n"
"  normal   = { action = \"relay\"; bare_line_ends = \"normalize\"; };\n"
"  small    = { action = \"relay\"; max_message_size = 3000;\n"
"               max_line_length = 1000; };\n"
"  timers   = { action = \"relay\"; command_timeout = 30;\n"
"               data_block_timeout = 10; data_timeout = 20; };\n"
"};\n";

static struct conf *tconf;

/* ---- the fake engine environment ------------------------------------ */

enum commit_mode { COMMIT_OK, COMMIT_FAIL, COMMIT_DEFER };

struct fake {
	struct smtp_session	*s;
	struct evbuffer		*in;
	struct strbuf		 replies;
	struct strbuf		 spool;		/* the open message */
	struct strbuf		 stored;	/* content at the last commit */
	struct envelope		 env;		/* envelope at the last commit */
	uint64_t		 next_mid;
	int			 nmids, nbegin, ncommit, nabort;
	int			 misuse;	/* ops called out of order */
	int			 open;
	int			 fail_begin, fail_write;
	enum commit_mode	 commit;
	double			 now;
	int			 nstarttls;	/* ops->starttls calls */
	size_t			 replies_at_tls;	/* replies.len then */
	/* AUTH: user "alice", password "secret", identities @example.org */
	int			 auth_blocked;
	int			 auth_defer;	/* answer auth_check later */
	int			 nauth_checks;
	char			 auth_seen[64];	/* user:password last checked */
	int			 user_removed;
	const char		*quota_reply;
	int			 nquota;	/* send_quota calls */
	/* spool_room: "full" for the first full_asks calls, then room for
	 * messages up to room_max octets */
	int			 full_asks;
	uint64_t		 room_max;
	int			 nroom;
	uint64_t		 room_sizes[8];	/* sizes asked, in order */
};

/* Listener auth of the sessions fake_start() makes (default off). */
static enum listener_auth fake_auth = LISTENER_AUTH_OFF;

/* TLS mode of the sessions fake_start() makes (default off). */
static enum listener_tls fake_tls = LISTENER_TLS_OFF;

static void
fake_reply(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	strbuf_add(&f->replies, data, len);
}

static int
fake_msg_begin(void *ctx, uint64_t mid)
{
	struct fake *f = ctx;

	f->nbegin++;
	if (f->open || mid != f->next_mid - 1)
		f->misuse++;
	if (f->fail_begin)
		return -1;
	f->open = 1;
	strbuf_reset(&f->spool);
	return 0;
}

static int
fake_msg_write(void *ctx, const char *data, size_t len)
{
	struct fake *f = ctx;

	if (!f->open)
		f->misuse++;
	if (f->fail_write)
		return -1;
	strbuf_add(&f->spool, data, len);
	return 0;
}

static void
fake_msg_commit(void *ctx, const struct envelope *env)
{
	struct fake *f = ctx;
	size_t i;

	f->ncommit++;
	if (!f->open)
		f->misuse++;
	f->open = 0;
	strbuf_reset(&f->stored);
	strbuf_add(&f->stored, f->spool.s, f->spool.len);
	envelope_clear(&f->env);
	f->env = *env;
	f->env.rcpts = NULL;
	f->env.nrcpts = 0;
	for (i = 0; i < env->nrcpts; i++)
		envelope_add_rcpt(&f->env, env->rcpts[i].addr,
		    env->rcpts[i].notify, env->rcpts[i].orcpt);
	if (f->commit != COMMIT_DEFER)
		smtp_session_committed(f->s, f->commit == COMMIT_OK, f->now);
}

static void
fake_msg_abort(void *ctx)
{
	struct fake *f = ctx;

	f->nabort++;
	if (!f->open)
		f->misuse++;
	f->open = 0;
}

static uint64_t
fake_new_mid(void *ctx)
{
	struct fake *f = ctx;

	f->nmids++;
	return f->next_mid++;
}

static const char *
fake_rcpt_local_check(void *ctx, const struct smtp_path *p)
{
	if (strcmp(p->local, "unknown") == 0)
		return R_USER;
	return NULL;
}

static void
fake_starttls(void *ctx)
{
	struct fake *f = ctx;

	f->nstarttls++;
	f->replies_at_tls = f->replies.len;
}

static int
fake_auth_blocked(void *ctx)
{
	struct fake *f = ctx;

	return f->auth_blocked;
}

static void
fake_auth_check(void *ctx, const char *user, const char *pass, size_t len)
{
	struct fake *f = ctx;

	f->nauth_checks++;
	snprintf(f->auth_seen, sizeof(f->auth_seen), "%s:%.*s", user,
	    (int)len, pass);
	if (!f->auth_defer)
		smtp_session_auth_result(f->s, strcmp(user, "alice") == 0 &&
		    len == 6 && memcmp(pass, "secret", 6) == 0, f->now);
}

static int
fake_sender_allowed(void *ctx, const char *user, const char *addr)
{
	struct fake *f = ctx;
	const char *at = strrchr(addr, '@');

	if (f->user_removed)
		return -1;
	return at != NULL && strcmp(at, "@example.org") == 0;
}

static const char *
fake_send_quota(void *ctx, const char *user)
{
	struct fake *f = ctx;

	f->nquota++;
	return f->quota_reply;
}

static int
fake_spool_room(void *ctx, uint64_t size)
{
	struct fake *f = ctx;

	if ((size_t)f->nroom < NELEM(f->room_sizes))
		f->room_sizes[f->nroom] = size;
	if (f->nroom++ < f->full_asks)
		return 0;
	return size <= f->room_max;
}

static const struct smtp_server_ops fake_ops = {
	fake_reply, fake_msg_begin, fake_msg_write, fake_msg_commit,
	fake_msg_abort, fake_new_mid, fake_rcpt_local_check, fake_starttls,
	fake_auth_blocked, fake_auth_check, fake_sender_allowed,
	fake_send_quota, fake_spool_room
};

static const struct conf_policy *
find_policy(const char *name)
{
	size_t i;

	for (i = 0; i < tconf->npolicies; i++)
		if (strcmp(tconf->policies[i].name, name) == 0)
			return &tconf->policies[i];
	fail_msg("no policy %s", name);
	return NULL;
}

/* New session with the banner sent at `now`. */
static void
fake_start(struct fake *f, const char *policy, enum commit_mode commit,
    double now)
{
	struct smtp_session_params p;

	memset(f, 0, sizeof(*f));
	strbuf_init(&f->replies);
	strbuf_init(&f->spool);
	strbuf_init(&f->stored);
	envelope_init(&f->env);
	f->next_mid = 40;
	f->room_max = UINT64_MAX;
	f->commit = commit;
	f->now = now;
	assert_non_null(f->in = evbuffer_new());
	memset(&p, 0, sizeof(p));
	p.conf = tconf;
	p.policy = find_policy(policy);
	p.icid = 12;
	p.client_ip = "127.0.0.1";
	p.client_rdns = "localhost";
	p.tls = fake_tls;
	p.auth = fake_auth;
	f->s = smtp_session_new(&p, &fake_ops, f);
	assert_non_null(f->s);
	smtp_session_start(f->s, now);
}

static void
fake_end(struct fake *f)
{
	smtp_session_free(f->s);
	evbuffer_free(f->in);
	strbuf_free(&f->replies);
	strbuf_free(&f->spool);
	strbuf_free(&f->stored);
	envelope_clear(&f->env);
}

static void
feed(struct fake *f, const char *data, size_t len, double now)
{
	assert_int_equal(evbuffer_add(f->in, data, len), 0);
	f->now = now;
	smtp_session_input(f->s, f->in, now);
}

static void
feed_str(struct fake *f, const char *data, double now)
{
	feed(f, data, strlen(data), now);
}

static const char *
str(const struct strbuf *sb)
{
	return sb->s != NULL ? sb->s : "";
}

/* Mismatches seen by check_*(): each is printed, the test fails at its
 * end (check_done), so one run shows every broken case. */
static int failures;

static void
check_done(void)
{
	int n = failures;

	failures = 0;
	assert_int_equal(n, 0);
}

/* Report a mismatch with both values shown readably (CR/LF escaped). */
static void
check_str(const char *what, const char *name, const char *got,
    const char *want)
{
	struct strbuf g = STRBUF_INIT, w = STRBUF_INIT;

	if (strcmp(got, want) == 0)
		return;
	strbuf_printable(&g, got, strlen(got));
	strbuf_printable(&w, want, strlen(want));
	print_error("%s: %s\n got: %s\nwant: %s\n", name, what, str(&g),
	    str(&w));
	strbuf_free(&g);
	strbuf_free(&w);
	failures++;
}

static void
check_int(const char *what, const char *name, long long got, long long want)
{
	if (got == want)
		return;
	print_error("%s: %s: got %lld, want %lld\n", name, what, got, want);
	failures++;
}

/*
 * Expand "{STR*N}" into N copies of STR (STR holds no '*' or '{'), so the
 * tables can say "{x*506}" or "{FOO\r\n*20}".
 */
static void
expand(const char *in, struct strbuf *out)
{
	const char *star, *end;
	long n;

	strbuf_reset(out);
	while (*in) {
		if (*in != '{' || (star = strchr(in, '*')) == NULL ||
		    (end = strchr(star, '}')) == NULL) {
			strbuf_putc(out, *in++);
			continue;
		}
		for (n = strtol(star + 1, NULL, 10); n > 0; n--)
			strbuf_add(out, in + 1, (size_t)(star - in - 1));
		in = end + 1;
	}
}

/* Length of the Received: field our engine puts first (with CRLF). */
static size_t
received_len(const char *name, const struct strbuf *content)
{
	const char *p = str(content);

	if (strncmp(p, "Received: from ", 15) != 0) {
		print_error("%s: content does not start with Received:\n",
		    name);
		fail();
	}
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (*p != ' ' && *p != '\t')
			return (size_t)(p - str(content));
	}
	print_error("%s: unterminated Received: field\n", name);
	fail();
	return 0;
}

/* CR and LF appear only as CRLF pairs. */
static int
crlf_only(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			return 0;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

/* ---- the dialog table ----------------------------------------------- */

struct dialog_case {
	const char	*name;
	const char	*policy;
	enum commit_mode commit;
	int		 fail_begin, fail_write;
	const char	*input;		/* "{STR*N}" expanded */
	const char	*want_replies;	/* "{STR*N}" expanded */
	int		 want_closing;
	int		 want_mids;	/* MAIL commands executed */
	int		 want_commits;
	int		 want_aborts;
	const char	*want_body;	/* last commit, after Received:;
					 * "{STR*N}" expanded; NULL = skip */
	const char	*want_body_has;	/* substring of it; NULL = skip */
	int		 want_nrcpts;	/* of the last commit; 0 = skip */
	const char	*want_rcpt0;	/* NULL = skip */
};

static const struct dialog_case dialog_cases[] = {
	/* greeting and simple commands */
	{ "quit", "relayed", COMMIT_OK, 0, 0, "QUIT\r\n",
	    BANNER R_BYE, 1, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "nothing is read after QUIT", "relayed", COMMIT_OK, 0, 0,
	    "QUIT\r\nNOOP\r\n" EHLO MAILFROM,
	    BANNER R_BYE, 1, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "ehlo keywords", "relayed", COMMIT_OK, 0, 0, EHLO,
	    BANNER EHLO_R(SIZE_DEF), 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "ehlo size follows the policy", "small", COMMIT_OK, 0, 0, EHLO,
	    BANNER EHLO_R("3000"), 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "helo", "relayed", COMMIT_OK, 0, 0, "HELO client.test\r\n",
	    BANNER R_HELO, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "ehlo without argument", "relayed", COMMIT_OK, 0, 0, "EHLO\r\n",
	    BANNER R_EHLOSYN, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "bad second EHLO gets one reply", "relayed", COMMIT_OK, 0, 0,
	    EHLO "EHLO\r\nNOOP\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_EHLOSYN R_OK, 0, 0, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "bad second HELO gets one reply", "relayed", COMMIT_OK, 0, 0,
	    "HELO client.test\r\nHELO\r\nNOOP\r\n",
	    BANNER R_HELO R_HELOSYN R_OK, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "MAIL before HELO", "relayed", COMMIT_OK, 0, 0, MAILFROM,
	    BANNER R_NEEDHELO, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "RCPT before MAIL", "relayed", COMMIT_OK, 0, 0, EHLO RCPTTO,
	    BANNER EHLO_R(SIZE_DEF) R_NEEDMAIL, 0, 0, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "DATA before RCPT", "relayed", COMMIT_OK, 0, 0,
	    EHLO MAILFROM "DATA\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_NEEDRCPT, 0, 1, 0, 0, NULL, NULL,
	    0, NULL },
	{ "nested MAIL", "relayed", COMMIT_OK, 0, 0, EHLO MAILFROM MAILFROM,
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_NESTED, 0, 1, 0, 0, NULL, NULL,
	    0, NULL },
	{ "MAIL parameters need EHLO", "relayed", COMMIT_OK, 0, 0,
	    "HELO client.test\r\nMAIL FROM:<a@example.org> SIZE=10\r\n",
	    BANNER R_HELO R_PARAMEHLO, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "DATA with an argument", "relayed", COMMIT_OK, 0, 0,
	    TX "DATA now\r\n", TX_R R_DATASYN, 0, 1, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "unknown command", "relayed", COMMIT_OK, 0, 0, "FOO\r\n",
	    BANNER R_UNKNOWN, 0, 0, 0, 0, NULL, NULL, 0, NULL },
	{ "bare CR inside a command", "relayed", COMMIT_OK, 0, 0,
	    "NO\rOP\r\nNOOP\r\n", BANNER R_SYNTAX R_OK, 0, 0, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "command ending in bare LF", "relayed", COMMIT_OK, 0, 0,
	    "NOOP\nQUIT\n", BANNER R_OK R_BYE, 1, 0, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "VRFY and EXPN", "relayed", COMMIT_OK, 0, 0,
	    "VRFY bob\r\nEXPN list\r\n",
	    BANNER "252 2.0.0 Cannot VRFY user, but will accept message and "
	    "attempt delivery\r\n502 5.5.1 Error: EXPN not supported\r\n", 0,
	    0, 0, 0, NULL, NULL, 0, NULL },
	{ "RCPT parameters need EHLO", "relayed", COMMIT_OK, 0, 0,
	    "HELO client.test\r\n" MAILFROM
	    "RCPT TO:<bob@example.com> NOTIFY=NEVER\r\n",
	    BANNER R_HELO R_MAIL "555 5.5.4 RCPT parameters need EHLO\r\n", 0,
	    1, 0, 0, NULL, NULL, 0, NULL },
	{ "UTF-8 recipient without SMTPUTF8", "relayed", COMMIT_OK, 0, 0,
	    TX "RCPT TO:<j\xc3\xb6rg@example.com>\r\n",
	    TX_R "553 5.6.7 SMTPUTF8 required for non-ASCII address\r\n", 0, 1,
	    0, 0, NULL, NULL, 0, NULL },
	{ "UTF-8 recipient with SMTPUTF8", "relayed", COMMIT_OK, 0, 0,
	    EHLO "MAIL FROM:<alice@example.org> SMTPUTF8\r\n"
	    "RCPT TO:<j\xc3\xb6rg@example.com>\r\nDATA\r\nx\r\n.\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_RCPT R_DATA R_QUEUED("40"), 0, 1,
	    1, 0, "x\r\n", NULL, 1, "j\xc3\xb6rg@example.com" },
	{ "RSET ends the transaction", "relayed", COMMIT_OK, 0, 0,
	    TX "RSET\r\nDATA\r\n", TX_R R_OK R_NEEDMAIL, 0, 1, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "EHLO ends the transaction", "relayed", COMMIT_OK, 0, 0,
	    TX EHLO "DATA\r\n",
	    TX_R EHLO_R(SIZE_DEF) R_NEEDMAIL, 0, 1, 0, 0, NULL, NULL, 0,
	    NULL },

	/* transactions */
	{ "full transaction with dot-stuffing", "relayed", COMMIT_OK, 0, 0,
	    TX "DATA\r\nSubject: hi\r\n\r\n..dotted\r\n..\r\n...\r\n"
	    "plain.\r\n.\r\nQUIT\r\n",
	    TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    "Subject: hi\r\n\r\n.dotted\r\n.\r\n..\r\nplain.\r\n", NULL, 1,
	    "bob@example.com" },
	{ "empty message", "relayed", COMMIT_OK, 0, 0, TX "DATA\r\n.\r\n",
	    TX_R R_DATA R_QUEUED("40"), 0, 1, 1, 0, "", NULL, 1, NULL },
	{ "dot-stuffed first line", "relayed", COMMIT_OK, 0, 0,
	    TX "DATA\r\n.x\r\n.\r\n", TX_R R_DATA R_QUEUED("40"), 0, 1, 1, 0,
	    "x\r\n", NULL, 1, NULL },
	{ "pipelined MAIL, RCPT x3, DATA; two transactions", "relayed",
	    COMMIT_OK, 0, 0,
	    EHLO MAILFROM "RCPT TO:<a@example.com>\r\n"
	    "RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n"
	    "first\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@example.com>\r\n"
	    "DATA\r\nsecond\r\n.\r\nQUIT\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_RCPT R_RCPT R_RCPT R_DATA
	    R_QUEUED("40") R_MAIL R_RCPT R_DATA R_QUEUED("41") R_BYE,
	    1, 2, 2, 0, "second\r\n", NULL, 1, "d@example.com" },
	{ "commit failure", "relayed", COMMIT_FAIL, 0, 0,
	    TX "DATA\r\nhello\r\n.\r\nNOOP\r\n" MAILFROM,
	    TX_R R_DATA R_TEMPFAIL R_OK R_MAIL, 0, 2, 1, 0, "hello\r\n", NULL,
	    1, NULL },
	{ "spool open failure at DATA", "relayed", COMMIT_OK, 1, 0,
	    TX "DATA\r\nNOOP\r\n", TX_R R_TEMPFAIL R_OK, 0, 1, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "spool write failure", "relayed", COMMIT_OK, 0, 1,
	    TX "DATA\r\nhello\r\n.\r\nNOOP\r\n",
	    TX_R R_DATA R_TEMPFAIL R_OK, 0, 1, 0, 1, NULL, NULL, 0, NULL },

	/* SMTP smuggling: only <CRLF>.<CRLF> ends DATA */
	{ "smuggling after bare LF", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\n"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL, NULL,
	    0, NULL },
	{ "smuggling after bare CR", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\r"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL, NULL,
	    0, NULL },
	{ "smuggling with \\n.\\r\\n", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\n.\r\n"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with \\r.\\r", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\r.\r"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with \\r.\\r\\n", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\r.\r\n"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with \\r\\n.\\n", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\r\n.\n"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with \\n.\\n", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\n.\n"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with \\r\\n.\\r", "relayed", COMMIT_OK, 0, 0,
	    SMUGGLE("\r\n.\r"), TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL,
	    NULL, 0, NULL },
	{ "smuggling with .\\n as the first line", "relayed", COMMIT_OK, 0,
	    0, TX "DATA\r\n.\n" SMUGGLED "\r\n.\r\nQUIT\r\n",
	    TX_R R_DATA R_BARE R_BYE, 1, 1, 0, 1, NULL, NULL, 0, NULL },
	{ "normalize: bare LF", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\n"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    "Subject: s\r\n\r\nbody\r\n" SMUGGLED "\r\n", NULL, 1, NULL },
	{ "normalize: bare CR", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\r"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    "Subject: s\r\n\r\nbody\r\n" SMUGGLED "\r\n", NULL, 1, NULL },
	{ "normalize: \\n.\\r\\n", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\n.\r\n"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    NULL, SMUGGLED, 1, NULL },
	{ "normalize: \\r.\\r", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\r.\r"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    NULL, SMUGGLED, 1, NULL },
	{ "normalize: \\r\\n.\\n", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\r\n.\n"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    NULL, SMUGGLED, 1, NULL },
	{ "normalize: \\r\\n.\\r", "normal", COMMIT_OK, 0, 0,
	    SMUGGLE("\r\n.\r"), TX_R R_DATA R_QUEUED("40") R_BYE, 1, 1, 1, 0,
	    NULL, SMUGGLED, 1, NULL },

	/* command line length (RFC 5321 4.5.3.1.4: 512 with CRLF) */
	{ "513-octet command", "relayed", COMMIT_OK, 0, 0,
	    "NOOP {x*506}\r\nNOOP\r\n", BANNER R_CMDLONG R_OK, 0, 0, 0, 0,
	    NULL, NULL, 0, NULL },
	{ "512-octet command", "relayed", COMMIT_OK, 0, 0,
	    "NOOP {x*505}\r\nNOOP\r\n", BANNER R_OK R_OK, 0, 0, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "513-octet command ending in bare LF", "relayed", COMMIT_OK, 0, 0,
	    "NOOP {x*507}\nNOOP\r\n", BANNER R_CMDLONG R_OK, 0, 0, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "2000-octet command", "relayed", COMMIT_OK, 0, 0,
	    "NOOP {x*1995}\r\n" EHLO, BANNER R_CMDLONG EHLO_R(SIZE_DEF), 0, 0,
	    0, 0, NULL, NULL, 0, NULL },
	{ "overlong line without end", "relayed", COMMIT_OK, 0, 0,
	    "{x*1500}", BANNER R_CMDLONG, 0, 0, 0, 0, NULL, NULL, 0, NULL },

	/* recipients and relaying */
	{ "too many recipients", "relayed", COMMIT_OK, 0, 0,
	    EHLO MAILFROM "RCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>"
	    "\r\nRCPT TO:<c@example.com>\r\nRCPT TO:<d@example.com>\r\n"
	    "DATA\r\nx\r\n.\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_RCPT R_RCPT R_RCPT R_RCPTMAX
	    R_DATA R_QUEUED("40"), 0, 1, 1, 0, "x\r\n", NULL, 3,
	    "a@example.com" },
	{ "relaying denied for an accept policy", "accepted", COMMIT_OK, 0,
	    0, EHLO MAILFROM "RCPT TO:<x@example.net>\r\n" RCPTTO
	    "DATA\r\nx\r\n.\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_RELAY R_RCPT R_DATA
	    R_QUEUED("40"), 0, 1, 1, 0, "x\r\n", NULL, 1, "bob@example.com" },
	{ "local recipient refused by the lookup", "accepted", COMMIT_OK, 0,
	    0, EHLO MAILFROM "RCPT TO:<unknown@example.com>\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_USER "\r\n", 0, 1, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "<postmaster> is qualified with a local domain", "accepted",
	    COMMIT_OK, 0, 0,
	    EHLO MAILFROM "RCPT TO:<postmaster>\r\nDATA\r\nx\r\n.\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_RCPT R_DATA R_QUEUED("40"), 0, 1,
	    1, 0, "x\r\n", NULL, 1, "postmaster@example.com" },

	/* reject policy */
	{ "reject policy", "rejected", COMMIT_OK, 0, 0,
	    EHLO MAILFROM "QUIT\r\nNOOP\r\n",
	    R_DENIED R_DENIED R_DENIED R_BYE, 1, 0, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "reject policy, overlong line", "rejected", COMMIT_OK, 0, 0,
	    "NOOP {x*600}\r\n" EHLO, R_DENIED R_DENIED, 1, 0, 0, 0, NULL, NULL,
	    0, NULL },
	{ "reject policy, overlong line without end", "rejected", COMMIT_OK,
	    0, 0, "{x*600}", R_DENIED R_DENIED, 1, 0, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "reject policy, too many errors", "rejected", COMMIT_OK, 0, 0,
	    "{NOOP\r\n*25}", R_DENIED "{554 5.7.1 Access denied\r\n*20}"
	    R_ERRORS, 1, 0, 0, 0, NULL, NULL, 0, NULL },

	/* BDAT (RFC 3030) */
	{ "BDAT chunks, content verbatim", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 17\r\nSubject: b\r\n\r\n.\r\n"
	    "BDAT 27 LAST\r\nMAIL FROM:<x@example.net>\r\nNOOP\r\n",
	    TX_R R_OCTETS("17") R_QUEUED("40") R_OK, 0, 1, 1, 0,
	    "Subject: b\r\n\r\n.\r\nMAIL FROM:<x@example.net>\r\n", NULL, 1,
	    NULL },
	{ "BDAT 0 LAST ends the input", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 4\r\nabcdBDAT 0 LAST\r\n",
	    TX_R R_OCTETS("4") R_QUEUED("40"), 0, 1, 1, 0, "abcd", NULL, 1,
	    NULL },
	{ "BDAT 0 LAST alone", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 0 LAST\r\n", TX_R R_QUEUED("40"), 0, 1, 1, 0, "", NULL,
	    1, NULL },
	{ "BDAT 0 ends the input", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 0\r\n", TX_R R_OCTETS("0"), 0, 1, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "BDAT CRLF split across chunks", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd",
	    TX_R R_OCTETS("3") R_QUEUED("40"), 0, 1, 1, 0, "ab\r\ncd", NULL,
	    1, NULL },
	{ "BDAT without MAIL swallows the chunk", "relayed", COMMIT_OK, 0, 0,
	    EHLO "BDAT 6\r\nQUIT\r\nNOOP\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_NEEDMAIL R_OK, 0, 0, 0, 0, NULL, NULL,
	    0, NULL },
	{ "BDAT without RCPT swallows the chunk", "relayed", COMMIT_OK, 0, 0,
	    EHLO MAILFROM "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL R_NEEDRCPT R_OK, 0, 1, 0, 0, NULL,
	    NULL, 0, NULL },
	{ "DATA after BDAT", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 4\r\nabcdDATA\r\nBDAT 0 LAST\r\n",
	    TX_R R_OCTETS("4") R_DATABDAT R_QUEUED("40"), 0, 1, 1, 0, "abcd",
	    NULL, 1, NULL },
	{ "RCPT after BDAT", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 4\r\nabcdRCPT TO:<c@example.com>\r\nBDAT 0 LAST\r\n",
	    TX_R R_OCTETS("4") R_RCPTBDAT R_QUEUED("40"), 0, 1, 1, 0, "abcd",
	    NULL, 1, NULL },
	{ "BDAT with a bad size closes", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT x\r\nNOOP\r\n", TX_R R_BDATSYN, 1, 1, 0, 0, NULL, NULL,
	    0, NULL },
	{ "BDAT with a bare LF", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 7 LAST\r\nab\ncd\r\nNOOP\r\n", TX_R R_BARE R_OK, 0, 1, 0,
	    1, NULL, NULL, 0, NULL },
	{ "BDAT ending in a lone CR", "relayed", COMMIT_OK, 0, 0,
	    TX "BDAT 3 LAST\r\nab\rNOOP\r\n", TX_R R_BARE R_OK, 0, 1, 0, 1,
	    NULL, NULL, 0, NULL },
	{ "BDAT with a spool open failure swallows the chunk", "relayed",
	    COMMIT_OK, 1, 0, TX "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
	    TX_R R_TEMPFAIL R_OK, 0, 1, 0, 0, NULL, NULL, 0, NULL },
	{ "BDAT commit failure", "relayed", COMMIT_FAIL, 0, 0,
	    TX "BDAT 2 LAST\r\nab", TX_R R_TEMPFAIL, 0, 1, 1, 0, "ab", NULL,
	    1, NULL },

	/* message size and line length */
	{ "SIZE= over the limit", "small", COMMIT_OK, 0, 0,
	    EHLO "MAIL FROM:<a@example.org> SIZE=3001\r\n"
	    "MAIL FROM:<a@example.org> SIZE=3000\r\n",
	    BANNER EHLO_R("3000") R_TOOBIG R_MAIL, 0, 1, 0, 0, NULL, NULL, 0,
	    NULL },
	{ "DATA over the size limit", "small", COMMIT_OK, 0, 0,
	    TX "DATA\r\n{a*990}\r\n{a*990}\r\n{a*990}\r\n{a*990}\r\n.\r\n"
	    "NOOP\r\n",
	    BANNER EHLO_R("3000") R_MAIL R_RCPT R_DATA R_TOOBIG R_OK, 0, 1, 0,
	    1, NULL, NULL, 0, NULL },
	{ "BDAT over the size limit", "small", COMMIT_OK, 0, 0,
	    TX "BDAT 3410 LAST\r\n{aaaaaaaaa\r\n*310}NOOP\r\n",
	    BANNER EHLO_R("3000") R_MAIL R_RCPT R_TOOBIG R_OK, 0, 1, 0, 1,
	    NULL, NULL, 0, NULL },
	{ "DATA line over max_line_length", "small", COMMIT_OK, 0, 0,
	    TX "DATA\r\nshort\r\n{a*1001}\r\n.\r\nNOOP\r\n",
	    BANNER EHLO_R("3000") R_MAIL R_RCPT R_DATA R_LINELONG R_OK, 0, 1,
	    0, 1, NULL, NULL, 0, NULL },
	{ "DATA line at max_line_length", "small", COMMIT_OK, 0, 0,
	    TX "DATA\r\n{a*1000}\r\n.{b*1000}\r\n.\r\n",
	    BANNER EHLO_R("3000") R_MAIL R_RCPT R_DATA R_QUEUED("40"), 0, 1, 1,
	    0, "{a*1000}\r\n{b*1000}\r\n", NULL, 1, NULL },
	{ "BDAT line over max_line_length", "small", COMMIT_OK, 0, 0,
	    TX "BDAT 1001 LAST\r\n{a*1001}",
	    BANNER EHLO_R("3000") R_MAIL R_RCPT R_LINELONG, 0, 1, 0, 1, NULL,
	    NULL, 0, NULL },

	/* error counting */
	{ "19 bad commands", "relayed", COMMIT_OK, 0, 0,
	    "{FOO\r\n*19}NOOP\r\n", BANNER "{" R_UNKNOWN "*19}" R_OK, 0, 0, 0,
	    0, NULL, NULL, 0, NULL },
	{ "20 bad commands", "relayed", COMMIT_OK, 0, 0,
	    "{FOO\r\n*20}NOOP\r\n", BANNER "{" R_UNKNOWN "*20}" R_ERRORS, 1,
	    0, 0, 0, NULL, NULL, 0, NULL },
	{ "relaying denials count as errors", "accepted", COMMIT_OK, 0, 0,
	    EHLO MAILFROM "{RCPT TO:<x@example.net>\r\n*21}",
	    BANNER EHLO_R(SIZE_DEF) R_MAIL "{" R_RELAY "*20}" R_ERRORS, 1, 1,
	    0, 0, NULL, NULL, 0, NULL },
};

/* Feed `input` in pieces of `piece` octets (0 = all at once). */
static void
run_dialog(const struct dialog_case *tc, const char *input, size_t len,
    size_t piece, const char *want_replies, const char *want_body)
{
	struct fake f;
	char name[256];
	size_t off, n, rl;

	snprintf(name, sizeof(name), "%s (pieces of %zu)", tc->name, piece);
	fake_start(&f, tc->policy, tc->commit, T0);
	f.fail_begin = tc->fail_begin;
	f.fail_write = tc->fail_write;
	for (off = 0; off < len || off == 0; off += n) {
		n = piece == 0 || piece > len - off ? len - off : piece;
		feed(&f, input + off, n, T0 + 1);
		if (len == 0)
			break;
	}
	check_str("replies", name, str(&f.replies), want_replies);
	check_int("closing", name, smtp_session_closing(f.s),
	    tc->want_closing);
	check_int("committing", name, smtp_session_committing(f.s), 0);
	check_int("MIDs", name, f.nmids, tc->want_mids);
	check_int("commits", name, f.ncommit, tc->want_commits);
	check_int("aborts", name, f.nabort, tc->want_aborts);
	check_int("ops misuse", name, f.misuse, 0);
	if (tc->want_commits > 0) {
		rl = received_len(name, &f.stored);
		if (want_body != NULL)
			check_str("stored body", name, str(&f.stored) + rl,
			    want_body);
		if (tc->want_body_has != NULL &&
		    strstr(str(&f.stored) + rl, tc->want_body_has) == NULL)
			check_str("stored body", name, str(&f.stored) + rl,
			    tc->want_body_has);
		check_int("CRLF only", name,
		    crlf_only(f.stored.s, f.stored.len), 1);
		check_int("envelope size", name, (long long)f.env.msg_size,
		    (long long)f.stored.len);
		check_int("envelope mid in range", name,
		    f.env.mid >= 40 && f.env.mid < 40 + (uint64_t)tc->want_mids,
		    1);
		if (tc->want_nrcpts > 0)
			check_int("recipients", name, (long long)f.env.nrcpts,
			    tc->want_nrcpts);
		if (tc->want_rcpt0 != NULL)
			check_str("first recipient", name,
			    f.env.nrcpts ? f.env.rcpts[0].addr : "",
			    tc->want_rcpt0);
	}
	fake_end(&f);
}

static void
test_dialogs(void **state)
{
	static const size_t pieces[] = { 0, 1, 7 };
	struct strbuf input = STRBUF_INIT, replies = STRBUF_INIT;
	struct strbuf body = STRBUF_INIT;
	size_t i, j;

	for (i = 0; i < NELEM(dialog_cases); i++) {
		const struct dialog_case *tc = &dialog_cases[i];

		expand(tc->input, &input);
		expand(tc->want_replies, &replies);
		if (tc->want_body != NULL)
			expand(tc->want_body, &body);
		for (j = 0; j < NELEM(pieces); j++)
			run_dialog(tc, str(&input), input.len, pieces[j],
			    str(&replies), tc->want_body ? str(&body) : NULL);
	}
	strbuf_free(&input);
	strbuf_free(&replies);
	strbuf_free(&body);
	check_done();
}

/* ---- Received: field and envelope ----------------------------------- */

struct received_case {
	const char	*name;
	const char	*input;		/* greeting to end of DATA */
	const char	*want_prefix;	/* Received: up to the date */
	const char	*want_from;
	enum smtp_body	 want_body;
	int		 want_smtputf8;
	enum smtp_ret	 want_ret;
	const char	*want_envid;
	int		 want_notify;
	const char	*want_orcpt;
	const char	*want_helo;
};

#define RCV_BY		"\r\n\tby " HOST " (Postern) with "

static const struct received_case received_cases[] = {
	{ "ESMTP, one recipient", TX "DATA\r\nx\r\n.\r\n",
	    "Received: from client.test (localhost [127.0.0.1])" RCV_BY
	    "ESMTP id 40\r\n\tfor <bob@example.com>; ",
	    "alice@example.org", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "", 0,
	    "", "client.test" },
	{ "SMTP (HELO)", "HELO client.test\r\n" MAILFROM RCPTTO
	    "DATA\r\nx\r\n.\r\n",
	    "Received: from client.test (localhost [127.0.0.1])" RCV_BY
	    "SMTP id 40\r\n\tfor <bob@example.com>; ",
	    "alice@example.org", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "", 0,
	    "", "client.test" },
	{ "SMTPUTF8, two recipients, DSN parameters",
	    "EHLO [192.0.2.7]\r\nMAIL FROM:<> SMTPUTF8 BODY=8BITMIME RET=HDRS "
	    "ENVID=abc\r\nRCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;bob@example.com\r\nRCPT TO:<carol@example.com>\r\n"
	    "DATA\r\nx\r\n.\r\n",
	    "Received: from [192.0.2.7] (localhost [127.0.0.1])" RCV_BY
	    "UTF8SMTP id 40; ",
	    "", SMTP_BODY_8BITMIME, 1, SMTP_RET_HDRS, "abc",
	    SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	    "rfc822;bob@example.com", "[192.0.2.7]" },
};

static void
test_received(void **state)
{
	const struct received_case *tc;
	struct fake f;
	struct tm tm;
	const char *p, *end;
	size_t i;

	for (i = 0; i < NELEM(received_cases); i++) {
		tc = &received_cases[i];
		fake_start(&f, "relayed", COMMIT_OK, T0);
		feed_str(&f, tc->input, T0);
		check_int("commits", tc->name, f.ncommit, 1);
		p = str(&f.stored);
		if (strncmp(p, tc->want_prefix, strlen(tc->want_prefix)) != 0)
			check_str("Received:", tc->name, p, tc->want_prefix);
		/* RFC 5322 3.3 date-time, then CRLF, then the content. */
		memset(&tm, 0, sizeof(tm));
		end = strptime(p + strlen(tc->want_prefix),
		    "%a, %d %b %Y %H:%M:%S +0000", &tm);
		assert_non_null(end);
		check_str("after Received:", tc->name, end, "\r\nx\r\n");
		check_int("mid", tc->name, (long long)f.env.mid, 40);
		check_int("icid", tc->name, (long long)f.env.icid, 12);
		assert_true(f.env.received > 1700000000);
		check_str("client", tc->name, f.env.client_ip, "127.0.0.1");
		check_str("helo", tc->name, f.env.helo, tc->want_helo);
		check_str("from", tc->name, f.env.from, tc->want_from);
		check_str("auth", tc->name, f.env.auth_user, "");
		check_int("body", tc->name, f.env.body, tc->want_body);
		check_int("smtputf8", tc->name, f.env.smtputf8,
		    tc->want_smtputf8);
		check_int("ret", tc->name, f.env.ret, tc->want_ret);
		check_str("envid", tc->name, f.env.envid, tc->want_envid);
		check_int("size", tc->name, (long long)f.env.msg_size,
		    (long long)f.stored.len);
		assert_true(f.env.nrcpts >= 1);
		check_str("rcpt", tc->name, f.env.rcpts[0].addr,
		    "bob@example.com");
		check_int("notify", tc->name, f.env.rcpts[0].notify,
		    tc->want_notify);
		check_str("orcpt", tc->name, f.env.rcpts[0].orcpt,
		    tc->want_orcpt);
		fake_end(&f);
	}
	check_done();
}

/* ---- deadlines and timeouts ----------------------------------------- */

struct deadline_step {
	double		 now;
	const char	*input;		/* NULL: call committed(ok) at now */
	const char	*want_replies;	/* new replies after this step */
	double		 want_deadline;
};

/* Policy "timers": command 30 s, DATA block 10 s, whole DATA 20 s. */
static const struct deadline_step deadline_steps[] = {
	{ 1010, "NOO", "", 1030 },	/* whole command, not per read */
	{ 1015, "P\r\n", R_OK, 1045 },
	{ 1020, TX, EHLO_R(SIZE_DEF) R_MAIL R_RCPT, 1050 },
	{ 1021, "DATA\r\n", R_DATA, 1031 },	/* block 1031, whole 1041 */
	{ 1025, "line\r\n", "", 1035 },
	{ 1034, "line\r\n", "", 1041 },		/* whole DATA caps it */
	{ 1040, ".\r\n", "", 0 },		/* committing: no deadline */
	{ 1050, NULL, R_QUEUED("40"), 1080 },
	{ 1060, "BDAT 4\r\nab", "", 1070 },	/* no MAIL: chunk swallowed */
	{ 1061, "cd", R_NEEDMAIL, 1091 },
	{ 1070, MAILFROM RCPTTO, R_MAIL R_RCPT, 1100 },
	{ 1071, "BDAT 4\r\nab", "", 1081 },	/* block 1081, whole 1091 */
	{ 1072, "cd", R_OCTETS("4"), 1102 },
	{ 1080, "BDAT 4 LAST\r\n", "", 1090 },
	{ 1085, "ab", "", 1091 },		/* whole BDAT since first */
	{ 1086, "cd", "", 0 },
	{ 1090, NULL, R_QUEUED("41"), 1120 },
};

static void
test_deadlines(void **state)
{
	const struct deadline_step *st;
	struct fake f;
	char name[64];
	size_t i, before;

	fake_start(&f, "timers", COMMIT_DEFER, T0);
	check_str("banner", "start", str(&f.replies), BANNER);
	check_int("deadline", "start", (long long)smtp_session_deadline(f.s),
	    (long long)T0 + 30);
	for (i = 0; i < NELEM(deadline_steps); i++) {
		st = &deadline_steps[i];
		snprintf(name, sizeof(name), "step %zu", i);
		before = f.replies.len;
		if (st->input != NULL)
			feed_str(&f, st->input, st->now);
		else
			smtp_session_committed(f.s, 1, st->now);
		check_str("replies", name, str(&f.replies) + before,
		    st->want_replies);
		check_int("deadline", name,
		    (long long)smtp_session_deadline(f.s),
		    (long long)st->want_deadline);
	}
	check_int("commits", "end", f.ncommit, 2);
	check_str("body", "end", str(&f.stored) + received_len("end",
	    &f.stored), "abcdabcd");
	/* The deadline passed: 421 and close, nothing read after. */
	before = f.replies.len;
	smtp_session_timeout(f.s);
	check_str("timeout", "end", str(&f.replies) + before, R_TIMEOUT);
	assert_true(smtp_session_closing(f.s));
	assert_true(smtp_session_deadline(f.s) == 0);
	feed_str(&f, "NOOP\r\n", 1200);
	smtp_session_timeout(f.s);
	check_str("after close", "end", str(&f.replies) + before, R_TIMEOUT);
	assert_int_equal(evbuffer_get_length(f.in), 0);
	fake_end(&f);
	check_done();
}

/* Where a timeout strikes: what it says and what it aborts. */
struct timeout_case {
	const char	*name;
	const char	*policy;
	const char	*input;
	const char	*want_replies;
	int		 want_aborts;
};

static const struct timeout_case timeout_cases[] = {
	{ "after the banner", "relayed", "", BANNER R_TIMEOUT, 0 },
	{ "half a command", "relayed", EHLO "MAI",
	    BANNER EHLO_R(SIZE_DEF) R_TIMEOUT, 0 },
	{ "in a transaction", "relayed", TX,
	    TX_R R_TIMEOUT, 0 },
	{ "in DATA", "relayed", TX "DATA\r\nhalf a mess",
	    TX_R R_DATA R_TIMEOUT, 1 },
	{ "in a BDAT chunk", "relayed", TX "BDAT 10\r\nhalf",
	    TX_R R_TIMEOUT, 1 },
	{ "between BDAT chunks", "relayed", TX "BDAT 4\r\nhalf",
	    TX_R R_OCTETS("4") R_TIMEOUT, 1 },
	{ "reject policy", "rejected", "", R_DENIED R_TIMEOUT, 0 },
};

static void
test_timeouts(void **state)
{
	const struct timeout_case *tc;
	struct fake f;
	size_t i;

	for (i = 0; i < NELEM(timeout_cases); i++) {
		tc = &timeout_cases[i];
		fake_start(&f, tc->policy, COMMIT_OK, T0);
		feed_str(&f, tc->input, T0 + 1);
		assert_true(smtp_session_deadline(f.s) > T0);
		smtp_session_timeout(f.s);
		feed_str(&f, "NOOP\r\nQUIT\r\n", T0 + 2);
		check_str("replies", tc->name, str(&f.replies),
		    tc->want_replies);
		check_int("closing", tc->name, smtp_session_closing(f.s), 1);
		check_int("aborts", tc->name, f.nabort, tc->want_aborts);
		check_int("commits", tc->name, f.ncommit, 0);
		check_int("misuse", tc->name, f.misuse, 0);
		fake_end(&f);
	}
	check_done();
}

/* ---- a pending commit holds the input back -------------------------- */

static void
test_commit_pending(void **state)
{
	static const int oks[] = { 1, 0 };
	static const char rest[] = "MAIL FROM:<b@example.org>\r\n" RCPTTO
	    "NOOP\r\n";
	struct fake f;
	size_t i, before;

	for (i = 0; i < NELEM(oks); i++) {
		fake_start(&f, "relayed", COMMIT_DEFER, T0);
		feed_str(&f, TX "DATA\r\nhello\r\n.\r\n", T0);
		feed_str(&f, rest, T0);
		check_str("replies", "pending", str(&f.replies), TX_R R_DATA);
		assert_true(smtp_session_committing(f.s));
		assert_int_equal(f.ncommit, 1);
		assert_true(smtp_session_deadline(f.s) == 0);
		assert_int_equal(evbuffer_get_length(f.in), strlen(rest));

		/* More input, a timeout: still nothing happens. */
		feed_str(&f, "QUIT\r\n", T0 + 1);
		smtp_session_timeout(f.s);
		check_str("replies", "still pending", str(&f.replies),
		    TX_R R_DATA);
		assert_int_equal(f.nmids, 1);

		before = f.replies.len;
		smtp_session_committed(f.s, oks[i], T0 + 2);
		check_str("committed", "answer", str(&f.replies) + before,
		    oks[i] ? R_QUEUED("40") : R_TEMPFAIL);
		assert_false(smtp_session_committing(f.s));
		/* A second answer is ignored. */
		smtp_session_committed(f.s, 1, T0 + 2);
		check_str("committed", "twice", str(&f.replies) + before,
		    oks[i] ? R_QUEUED("40") : R_TEMPFAIL);

		before = f.replies.len;
		smtp_session_input(f.s, f.in, T0 + 3);
		check_str("resumed", "pipelined input",
		    str(&f.replies) + before, R_MAIL R_RCPT R_OK R_BYE);
		assert_int_equal(f.nmids, 2);
		assert_true(smtp_session_closing(f.s));
		assert_int_equal(f.nabort, 0);
		assert_int_equal(f.misuse, 0);
		fake_end(&f);
	}
	check_done();
}

/* ---- teardown and a lost client ------------------------------------- */

struct lost_case {
	const char	*name;
	const char	*input;
	int		 use_free;	/* smtp_session_free, not _lost */
	int		 want_aborts;
};

static const struct lost_case lost_cases[] = {
	{ "lost before MAIL", EHLO, 0, 0 },
	{ "lost in a transaction", TX, 0, 0 },
	{ "lost in DATA", TX "DATA\r\nsome", 0, 1 },
	{ "lost in BDAT", TX "BDAT 9\r\nsome", 0, 1 },
	{ "freed in DATA", TX "DATA\r\nsome", 1, 1 },
	{ "freed between BDAT chunks", TX "BDAT 4\r\nsome", 1, 1 },
};

static void
test_lost(void **state)
{
	const struct lost_case *tc;
	struct fake f;
	size_t i, before;

	for (i = 0; i < NELEM(lost_cases); i++) {
		tc = &lost_cases[i];
		fake_start(&f, "relayed", COMMIT_OK, T0);
		feed_str(&f, tc->input, T0);
		before = f.replies.len;
		if (tc->use_free) {
			smtp_session_free(f.s);
			f.s = NULL;
		} else {
			smtp_session_lost(f.s);
			assert_true(smtp_session_closing(f.s));
			feed_str(&f, "NOOP\r\n", T0);
		}
		check_int("replies after", tc->name,
		    (long long)(f.replies.len - before), 0);
		check_int("aborts", tc->name, f.nabort, tc->want_aborts);
		check_int("commits", tc->name, f.ncommit, 0);
		check_int("misuse", tc->name, f.misuse, 0);
		fake_end(&f);
	}
	smtp_session_free(NULL);
	check_done();
}

/* ---- STARTTLS (RFC 3207) ------------------------------------------- */

#define EHLO_TLS_R	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE " SIZE_DEF \
			"\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
			"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-STARTTLS\r\n" \
			"250 CHUNKING\r\n"
#define R_READY		"220 2.0.0 Ready to start TLS\r\n"
#define R_NEEDTLS	"530 5.7.0 Must issue a STARTTLS command first\r\n"

/* STARTTLS offered only before TLS; plaintext pipelined after it is
 * dropped, whatever way the bytes arrive; the session is reset. */
static void
test_starttls(void **state)
{
	static const size_t steps[] = { 0, 1, 7 };
	const char *inject = EHLO "STARTTLS\r\nNOOP\r\n" MAILFROM;
	struct fake f;
	size_t k, i, n, len;

	fake_tls = LISTENER_TLS_PREFERRED;
	for (k = 0; k < NELEM(steps); k++) {
		fake_start(&f, "relayed", COMMIT_OK, T0);
		len = strlen(inject);
		n = steps[k] ? steps[k] : len;
		for (i = 0; i < len; i += n)
			feed(&f, inject + i, len - i < n ? len - i : n, T0);
		/* Exactly one reply to STARTTLS, nothing for NOOP/MAIL. */
		check_str("replies", "inject", str(&f.replies),
		    BANNER EHLO_TLS_R R_READY);
		check_int("starttls calls", "inject", f.nstarttls, 1);
		assert_true(smtp_session_handshaking(f.s));
		smtp_session_tls_started(f.s, "TLSv1.3",
		    "TLS_AES_256_GCM_SHA384", T0 + 1);
		assert_false(smtp_session_handshaking(f.s));
		/* RFC 3207 4.2: EHLO again; no STARTTLS offered now; MAIL
		 * before EHLO is refused (the earlier EHLO is forgotten). */
		f.replies.len = 0;
		feed_str(&f, MAILFROM EHLO "STARTTLS\r\n" MAILFROM RCPTTO
		    "DATA\r\nSubject: t\r\n\r\nx\r\n.\r\n", T0 + 1);
		check_str("after tls", "inject", str(&f.replies),
		    R_NEEDHELO EHLO_R(SIZE_DEF)
		    "554 5.5.1 Error: TLS already active\r\n" R_MAIL R_RCPT
		    R_DATA R_QUEUED("40"));
		check_int("mids", "inject", f.nmids, 1);
		/* The trace field says how the message came in. */
		assert_non_null(strstr(str(&f.stored), "(using TLSv1.3 with "
		    "cipher TLS_AES_256_GCM_SHA384)"));
		assert_non_null(strstr(str(&f.stored), "with ESMTPS id 40"));
		fake_end(&f);
	}
	/* Required: mail commands before TLS get 530; a BDAT chunk is
	 * swallowed (never read as commands) and then refused. */
	fake_tls = LISTENER_TLS_REQUIRED;
	fake_start(&f, "relayed", COMMIT_OK, T0);
	feed_str(&f, EHLO MAILFROM RCPTTO "DATA\r\nVRFY bob\r\n"
	    "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\nAUTH PLAIN\r\n", T0);
	check_str("required", "530", str(&f.replies), BANNER EHLO_TLS_R
	    R_NEEDTLS R_NEEDTLS R_NEEDTLS R_NEEDTLS R_NEEDTLS R_OK R_NEEDTLS);
	check_int("mids", "530", f.nmids, 0);
	fake_end(&f);
	/* Off: not advertised, STARTTLS refused, nothing switches. */
	fake_tls = LISTENER_TLS_OFF;
	fake_start(&f, "relayed", COMMIT_OK, T0);
	feed_str(&f, EHLO "STARTTLS\r\nNOOP\r\n", T0);
	check_str("off", "no tls", str(&f.replies), BANNER EHLO_R(SIZE_DEF)
	    "502 5.5.1 Error: STARTTLS not available on this listener\r\n"
	    R_OK);
	check_int("starttls calls", "off", f.nstarttls, 0);
	fake_end(&f);
	/* Implicit TLS: tls_started before the banner; no STARTTLS. */
	fake_tls = LISTENER_TLS_IMPLICIT;
	memset(&f, 0, sizeof(f));
	fake_start(&f, "relayed", COMMIT_OK, T0);
	smtp_session_tls_started(f.s, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256",
	    T0);
	feed_str(&f, EHLO "STARTTLS\r\n", T0);
	check_str("implicit", "no starttls", str(&f.replies), BANNER
	    EHLO_R(SIZE_DEF) "554 5.5.1 Error: TLS already active\r\n");
	fake_end(&f);
	/* A handshake that never finishes: deadline, closed, no reply. */
	fake_tls = LISTENER_TLS_PREFERRED;
	fake_start(&f, "relayed", COMMIT_OK, T0);
	feed_str(&f, "STARTTLS\r\n", T0);
	n = f.replies.len;
	assert_true(smtp_session_deadline(f.s) > T0);
	smtp_session_timeout(f.s);
	assert_true(smtp_session_closing(f.s));
	check_int("replies after timeout", "handshake", (long long)
	    (f.replies.len - n), 0);
	fake_end(&f);
	fake_tls = LISTENER_TLS_OFF;
	check_done();
}

/* ---- setup ------------------------------------------------------------ */

static int
setup(void **state)
{
	struct conf_errors errs = { NULL, 0 };
	size_t i;

	/* The engine writes the mail log; keep test output readable. */
	if (log_open("/dev/null", 0, "test_smtp_server") == -1)
		return -1;
	tconf = conf_load_string(test_conf, "test.conf", "/tmp", &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (tconf == NULL || errs.n > 0) {
		conf_errors_free(&errs);
		return -1;
	}
	conf_errors_free(&errs);
	return 0;
}

static int
teardown(void **state)
{
	conf_free(tconf);
	tconf = NULL;
	log_close();
	return 0;
}

/* ---- AUTH (RFC 4954) ------------------------------------------------ */

#define EHLO_AUTH_R	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE " SIZE_DEF \
			"\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
			"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n" \
			"250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n"
#define R_AUTHOK	"235 2.7.0 Authentication successful\r\n"
#define R_AUTHBAD	"535 5.7.8 Authentication credentials invalid\r\n"
#define R_NEEDAUTH	"530 5.7.0 Authentication required\r\n"
#define R_ENCRYPT	"538 5.7.11 Encryption required for requested " \
			"authentication mechanism\r\n"
#define R_NOTVERIFIED(a) "554 5.7.1 Message rejected: Email address is not " \
			"verified. The following identities failed the check: " \
			a "\r\n"
/* base64 of "\0alice\0secret", "alice", "secret", "\0alice\0wrong" */
#define PLAIN_OK	"AGFsaWNlAHNlY3JldA=="
#define B64_ALICE	"YWxpY2U="
#define B64_SECRET	"c2VjcmV0"
#define PLAIN_BAD	"AGFsaWNlAHdyb25n"

/* Start an authenticated-submission session on implicit TLS. */
static void
auth_start(struct fake *f, enum listener_auth mode, const char *policy)
{
	fake_auth = mode;
	fake_tls = LISTENER_TLS_IMPLICIT;
	memset(f, 0, sizeof(*f));
	fake_start(f, policy, COMMIT_OK, T0);
	smtp_session_tls_started(f->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", T0);
	f->replies.len = 0;
}

static void
auth_done(struct fake *f)
{
	fake_end(f);
	fake_auth = LISTENER_AUTH_OFF;
	fake_tls = LISTENER_TLS_OFF;
}

static void
test_auth_dialogs(void **state)
{
	static const size_t steps[] = { 0, 1, 7 };
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		{ "plain initial", EHLO "AUTH PLAIN " PLAIN_OK "\r\n",
		  EHLO_AUTH_R R_AUTHOK },
		{ "plain challenge", EHLO "AUTH plain\r\n" PLAIN_OK "\r\n",
		  EHLO_AUTH_R "334 \r\n" R_AUTHOK },
		{ "login", EHLO "AUTH LOGIN\r\n" B64_ALICE "\r\n" B64_SECRET
		  "\r\n", EHLO_AUTH_R "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
		  R_AUTHOK },
		{ "login initial", EHLO "AUTH LOGIN " B64_ALICE "\r\n"
		  B64_SECRET "\r\n", EHLO_AUTH_R "334 UGFzc3dvcmQ6\r\n"
		  R_AUTHOK },
		{ "bad password", EHLO "AUTH PLAIN " PLAIN_BAD "\r\n",
		  EHLO_AUTH_R R_AUTHBAD },
		{ "cancel", EHLO "AUTH LOGIN\r\n*\r\nNOOP\r\n", EHLO_AUTH_R
		  "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n"
		  R_OK },
		{ "bad base64", EHLO "AUTH PLAIN\r\n!!!!\r\n", EHLO_AUTH_R
		  "334 \r\n501 5.5.2 Cannot decode response\r\n" },
		{ "no ehlo", "AUTH PLAIN " PLAIN_OK "\r\n",
		  "503 5.5.1 Error: send EHLO first\r\n" },
		{ "mechanism", EHLO "AUTH CRAM-MD5\r\n", EHLO_AUTH_R
		  "504 5.5.4 Unrecognized authentication type\r\n" },
		{ "twice", EHLO "AUTH PLAIN " PLAIN_OK "\r\nAUTH PLAIN "
		  PLAIN_OK "\r\n", EHLO_AUTH_R R_AUTHOK
		  "503 5.5.1 Error: already authenticated\r\n" },
		{ "mail first", EHLO MAILFROM, EHLO_AUTH_R R_NEEDAUTH },
		{ "twice in tx", EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM
		  "AUTH PLAIN " PLAIN_OK "\r\n", EHLO_AUTH_R R_AUTHOK R_MAIL
		  "503 5.5.1 Error: already authenticated\r\n" },
		/* authenticated: relays, and the sender must be verified */
		{ "relay", EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM
		  "RCPT TO:<x@remote.example>\r\n", EHLO_AUTH_R R_AUTHOK R_MAIL
		  R_RCPT },
		{ "envelope", EHLO "AUTH PLAIN " PLAIN_OK "\r\n"
		  "MAIL FROM:<eve@evil.example>\r\n", EHLO_AUTH_R R_AUTHOK
		  R_NOTVERIFIED("eve@evil.example") },
		{ "header", EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM RCPTTO
		  "DATA\r\nFrom: Eve <eve@evil.example>\r\n\r\nx\r\n.\r\n",
		  EHLO_AUTH_R R_AUTHOK R_MAIL R_RCPT R_DATA
		  R_NOTVERIFIED("eve@evil.example") },
		{ "header ok", EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM
		  RCPTTO "DATA\r\nFrom: A <a@example.org>\r\n\r\nx\r\n.\r\n",
		  EHLO_AUTH_R R_AUTHOK R_MAIL R_RCPT R_DATA R_QUEUED("40") },
		{ "null sender no from", EHLO "AUTH PLAIN " PLAIN_OK "\r\n"
		  "MAIL FROM:<>\r\n" RCPTTO "DATA\r\nSubject: x\r\n\r\nx\r\n"
		  ".\r\n", EHLO_AUTH_R R_AUTHOK R_MAIL R_RCPT R_DATA
		  "554 5.6.0 Message rejected: Missing required header "
		  "'From'\r\n" },
	};
	struct fake f;
	size_t c, k, i, n, len;

	for (c = 0; c < NELEM(cases); c++)
		for (k = 0; k < NELEM(steps); k++) {
			auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
			len = strlen(cases[c].in);
			n = steps[k] ? steps[k] : len;
			for (i = 0; i < len; i += n)
				feed(&f, cases[c].in + i, len - i < n ?
				    len - i : n, T0);
			check_str(cases[c].name, "auth", str(&f.replies),
			    cases[c].want);
			auth_done(&f);
		}
	check_done();
}

static void
test_auth_policy(void **state)
{
	struct fake f;

	/* Plaintext: not offered, 538, unless the policy allows it. */
	fake_auth = LISTENER_AUTH_OPTIONAL;
	fake_tls = LISTENER_TLS_PREFERRED;
	fake_start(&f, "accepted", COMMIT_OK, T0);
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM
	    "RCPT TO:<x@remote.example>\r\n", T0);
	check_str("plaintext", "538", str(&f.replies), BANNER EHLO_TLS_R
	    R_ENCRYPT R_MAIL R_RELAY);
	assert_int_equal(f.nauth_checks, 0);
	auth_done(&f);
	/* Optional: mail flows without AUTH; no AUTH inside a transaction. */
	auth_start(&f, LISTENER_AUTH_OPTIONAL, "accepted");
	feed_str(&f, EHLO MAILFROM "AUTH PLAIN " PLAIN_OK "\r\n", T0);
	check_str("optional", "in tx", str(&f.replies), EHLO_AUTH_R R_MAIL
	    "503 5.5.1 Error: AUTH not allowed during a mail transaction\r\n");
	auth_done(&f);
	/* Off: 503. */
	auth_start(&f, LISTENER_AUTH_OFF, "accepted");
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n", T0);
	check_str("off", "503", str(&f.replies), EHLO_R(SIZE_DEF)
	    "503 5.5.1 Error: authentication not enabled\r\n");
	auth_done(&f);
	/* Blocked: no check, nothing until the delay, then 454 + close. */
	auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
	f.auth_blocked = 1;
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\nNOOP\r\n", T0);
	check_str("blocked", "wait", str(&f.replies), EHLO_AUTH_R);
	assert_int_equal(f.nauth_checks, 0);
	assert_true(smtp_session_deadline(f.s) > T0);
	smtp_session_timeout(f.s);
	check_str("blocked", "454", str(&f.replies), EHLO_AUTH_R
	    "454 4.7.0 Temporary authentication failure\r\n");
	assert_true(smtp_session_closing(f.s));
	auth_done(&f);
	/* Deferred answer: input waits, then continues in order. */
	auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
	f.auth_defer = 1;
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM, T0);
	check_str("defer", "pending", str(&f.replies), EHLO_AUTH_R);
	assert_true(smtp_session_authenticating(f.s));
	assert_string_equal(f.auth_seen, "alice:secret");
	smtp_session_auth_result(f.s, -1, T0);
	smtp_session_input(f.s, f.in, T0);
	check_str("defer", "temporary", str(&f.replies), EHLO_AUTH_R
	    "454 4.7.0 Temporary authentication failure\r\n" R_NEEDAUTH);
	auth_done(&f);
	/* Quota and a credential removed while logged in. */
	auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n", T0);
	f.quota_reply = "454 4.7.0 Throttling failure: Maximum sending rate "
	    "exceeded.";
	f.replies.len = 0;
	feed_str(&f, MAILFROM, T0);
	check_str("quota", "rate", str(&f.replies), "454 4.7.0 Throttling "
	    "failure: Maximum sending rate exceeded.\r\n");
	f.quota_reply = NULL;
	f.user_removed = 1;
	f.replies.len = 0;
	feed_str(&f, MAILFROM, T0);
	check_str("removed", "530", str(&f.replies), R_NEEDAUTH);
	assert_null(smtp_session_auth_user(f.s));
	auth_done(&f);
	/* Received: says ESMTPSA. */
	auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM RCPTTO
	    "DATA\r\nFrom: a@example.org\r\n\r\nx\r\n.\r\n", T0);
	assert_non_null(strstr(str(&f.stored), "with ESMTPSA id 40"));
	auth_done(&f);
	check_done();
}

/* ---- no room in the spool: 452 4.3.1 at MAIL ------------------------ */

static void
test_spool_room(void **state)
{
	static const struct {
		const char *name, *policy;
		int full_asks;
		uint64_t room_max;
		const char *in, *want;
		int want_asks, want_mids, want_commits;
		uint64_t want_size0, want_size1;
	} cases[] = {
		{ "full: MAIL 452, RCPT and DATA find no transaction",
		  "relayed", 99, UINT64_MAX,
		  TX "DATA\r\nQUIT\r\n", BANNER EHLO_R(SIZE_DEF) R_STORAGE
		  R_NEEDMAIL R_NEEDMAIL R_BYE, 1, 0, 0, 0, 0 },
		{ "full: a pipelined BDAT chunk is swallowed, not run",
		  "relayed", 99, UINT64_MAX,
		  TX "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", BANNER
		  EHLO_R(SIZE_DEF) R_STORAGE R_NEEDMAIL R_NEEDMAIL R_OK, 1, 0,
		  0, 0, 0 },
		{ "room again: the next MAIL is taken, no restart",
		  "relayed", 1, UINT64_MAX,
		  EHLO MAILFROM "RSET\r\n" MAILFROM RCPTTO
		  "DATA\r\nx\r\n.\r\n", BANNER EHLO_R(SIZE_DEF) R_STORAGE
		  R_OK R_MAIL R_RCPT R_DATA R_QUEUED("40"), 2, 1, 1, 0, 0 },
		{ "declared SIZE bigger than the room left",
		  "relayed", 0, 1000,
		  EHLO "MAIL FROM:<a@example.org> SIZE=5000\r\n"
		  "MAIL FROM:<a@example.org> SIZE=500\r\n", BANNER
		  EHLO_R(SIZE_DEF) R_STORAGE R_MAIL, 2, 1, 0, 5000, 500 },
		{ "SIZE over the policy maximum is 552, space not asked",
		  "small", 99, UINT64_MAX,
		  EHLO "MAIL FROM:<a@example.org> SIZE=5000\r\n", BANNER
		  EHLO_R("3000") R_TOOBIG, 0, 0, 0, 0, 0 },
		{ "MAIL before HELO: 503, space not asked",
		  "relayed", 99, UINT64_MAX, MAILFROM, BANNER R_NEEDHELO,
		  0, 0, 0, 0, 0 },
		{ "HELO session: size not declared",
		  "relayed", 99, UINT64_MAX,
		  "HELO client.test\r\n" MAILFROM, BANNER R_HELO R_STORAGE,
		  1, 0, 0, 0, 0 },
	};
	struct fake f;
	size_t c;

	(void)state;
	for (c = 0; c < NELEM(cases); c++) {
		fake_start(&f, cases[c].policy, COMMIT_OK, T0);
		f.full_asks = cases[c].full_asks;
		f.room_max = cases[c].room_max;
		feed_str(&f, cases[c].in, T0);
		check_str(cases[c].name, "replies", str(&f.replies),
		    cases[c].want);
		check_int(cases[c].name, "asks", f.nroom, cases[c].want_asks);
		check_int(cases[c].name, "MIDs", f.nmids, cases[c].want_mids);
		check_int(cases[c].name, "commits", f.ncommit,
		    cases[c].want_commits);
		check_int(cases[c].name, "misuse", f.misuse, 0);
		if (cases[c].want_asks > 0)
			check_int(cases[c].name, "size 0",
			    (long long)f.room_sizes[0],
			    (long long)cases[c].want_size0);
		if (cases[c].want_asks > 1)
			check_int(cases[c].name, "size 1",
			    (long long)f.room_sizes[1],
			    (long long)cases[c].want_size1);
		fake_end(&f);
	}
	/* Authenticated: a refusal for space does not use up the quota. */
	auth_start(&f, LISTENER_AUTH_REQUIRED, "accepted");
	f.full_asks = 99;
	feed_str(&f, EHLO "AUTH PLAIN " PLAIN_OK "\r\n" MAILFROM, T0);
	check_str("auth full", "replies", str(&f.replies), EHLO_AUTH_R
	    R_AUTHOK R_STORAGE);
	check_int("auth full", "quota checks", f.nquota, 0);
	f.full_asks = 0;
	feed_str(&f, MAILFROM, T0);
	check_int("auth room", "quota checks", f.nquota, 1);
	auth_done(&f);
	check_done();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialogs),
		cmocka_unit_test(test_received),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_commit_pending),
		cmocka_unit_test(test_lost),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_auth_dialogs),
		cmocka_unit_test(test_auth_policy),
		cmocka_unit_test(test_spool_room),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
