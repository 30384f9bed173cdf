/*
 * loadgen.c - the SMTP load client of `make bench` (bench/README.md).
 *
 * Owns: keeping N SMTP sessions busy against one server and reporting
 * what the server acknowledged, as one "key=value ..." line on stdout.
 *   loadgen send  N sessions at once.  Each connects, reads the banner,
 *                 EHLO [STARTTLS, EHLO], then MAIL, RCPT, DATA and a
 *                 message of --size body bytes, --per-session times, then
 *                 QUIT; a finished session is replaced by a new one until
 *                 --count messages were handed out.  Counts the 250s after
 *                 the final dot, measures each message's latency (MAIL
 *                 written to the 250 after the dot) and each session's
 *                 (connect to the reply to QUIT).
 *   loadgen idle  opens --conns connections (at most --connect-burst being
 *                 set up at a time), EHLO on each, writes --ready-file
 *                 once all are idle, holds them --hold seconds (or until
 *                 SIGTERM/SIGINT), then QUIT on each.
 * Engine: one explicit state per session, a table of what each state
 * writes and which reply class it expects; session_enter() is the only
 * place a state changes.  No pipelining: one command, one reply, like
 * smtp-source.
 * Limits: a run ends after its count or after --max-seconds (the line then
 * says timeout=1), or after --max-failures failed sessions.  At most
 * 100,000 connections, 1,000,000 messages, 16 MiB per message; a reply
 * line over 4 KiB ends its session.
 * Threats: a misbehaving server can only fail its own sessions (bounded
 * replies, read timeouts); bytes buffered after the 220 to STARTTLS end
 * the session (RFC 3207 section 4.2).  The server's certificate is not
 * verified: the bench servers use self-signed ones on loopback.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define LG_REPLY_MAX	4096		/* bytes in one reply line */
#define LG_CONNS_MAX	100000
#define LG_COUNT_MAX	1000000
#define LG_SIZE_MAX	(16 * 1024 * 1024)
#define LG_HELO		"loadgen.bench.example.org"

enum lg_state {
	LG_CONNECT,		/* TCP connect in progress */
	LG_BANNER,		/* waiting for the 220 */
	LG_EHLO,
	LG_STARTTLS,
	LG_HANDSHAKE,		/* TLS handshake in progress */
	LG_EHLO_TLS,
	LG_MAIL,
	LG_RCPT,
	LG_DATA,
	LG_BODY,		/* message written, waiting for its 250 */
	LG_HOLD,		/* idle mode: connection held after EHLO */
	LG_QUIT,
	LG_CLOSED,
	LG_NSTATES
};

/* What a state writes when entered and which reply class it expects. */
struct lg_step {
	const char	*name;
	const char	*cmd;		/* NULL: nothing, or special */
	int		 want;		/* expected reply class, 0: none */
};

static const struct lg_step lg_steps[LG_NSTATES] = {
	[LG_CONNECT] =	 { "connect", NULL, 0 },
	[LG_BANNER] =	 { "banner", NULL, 2 },
	[LG_EHLO] =	 { "ehlo", "EHLO " LG_HELO "\r\n", 2 },
	[LG_STARTTLS] =	 { "starttls", "STARTTLS\r\n", 2 },
	[LG_HANDSHAKE] = { "handshake", NULL, 0 },
	[LG_EHLO_TLS] =	 { "ehlo-tls", "EHLO " LG_HELO "\r\n", 2 },
	[LG_MAIL] =	 { "mail", "MAIL FROM:<bench@example.org>\r\n", 2 },
	[LG_RCPT] =	 { "rcpt", "RCPT TO:<sink@example.com>\r\n", 2 },
	[LG_DATA] =	 { "data", "DATA\r\n", 3 },
	[LG_BODY] =	 { "body", NULL, 2 },
	[LG_HOLD] =	 { "hold", NULL, 0 },
	[LG_QUIT] =	 { "quit", "QUIT\r\n", 2 },
	[LG_CLOSED] =	 { "closed", NULL, 0 },
};

struct lg_opts {
	int		 idle;		/* mode: 0 send, 1 idle */
	const char	*host;
	int		 port;
	int		 sessions;	/* send: sessions at once */
	int		 count;		/* send: messages in all */
	int		 per_session;
	int		 size;		/* body bytes */
	int		 starttls;
	int		 conns;		/* idle: connections */
	int		 burst;		/* idle: set up at once */
	int		 hold;		/* idle: seconds */
	const char	*ready_file;
	int		 max_seconds;
	int		 timeout;	/* seconds per reply */
	int		 max_failures;
	const char	*label;
};

struct lg_session;

/* The run: options, counters and every session. */
struct lg_run {
	struct lg_opts		 o;
	struct event_base	*base;
	SSL_CTX			*tls;
	struct sockaddr_in	 addr;
	char			*body;		/* shared by every message */
	size_t			 body_len;
	struct lg_session	*sess;		/* o.sessions or o.conns */
	int			 nsess;
	int			 active;	/* sessions not LG_CLOSED */
	int			 claimed;	/* messages handed out */
	int			 msgno;		/* Message-ID serial */
	int			 ok;		/* 250 after the dot */
	int			 failed;	/* messages not acknowledged */
	int			 sess_failed;
	int			 sessions_done;	/* reached the reply to QUIT */
	int			 opened;	/* idle: reached LG_HOLD */
	int			 launched;	/* idle: sessions started */
	int			 setting_up;	/* idle: started, not yet held */
	int			 quit_ok;
	int			 timed_out;
	int			 stopping;	/* no new sessions or messages */
	int			 releasing;	/* idle: hold is over */
	int			 ready;		/* idle: all set up */
	int			 in_launch;
	double			 t0, t_ready, t_end;
	float			*lat;		/* per message, ms */
	int			 nlat;
	float			*slat;		/* per session, ms */
	int			 nslat, slat_cap;
	char			 first_error[160];
	char			 tls_info[128];
	struct event		*deadline, *hold_timer, *sig_term, *sig_int;
};

struct lg_session {
	struct lg_run		*run;
	int			 id;
	int			 fd;
	struct bufferevent	*bev;
	SSL			*ssl;
	enum lg_state		 state;
	int			 sent;		/* messages in this session */
	int			 holding_msg;	/* claimed, no final reply */
	double			 t_conn, t_msg;
};

static double	 now(void);
static void	 usage(void);
static int	 opts_parse(struct lg_opts *, int, char **);
static int	 num_arg(const char *, const char *, long, long, long *);
static int	 run_setup(struct lg_run *);
static void	 run_free(struct lg_run *);
static void	 run_maybe_done(struct lg_run *);
static void	 run_report(struct lg_run *);
static void	 run_launch_idle(struct lg_run *);
static void	 run_ready(struct lg_run *);
static void	 run_release(struct lg_run *);
static int	 run_start(struct lg_run *);
static void	 dashes(char *);
static void	 run_note_error(struct lg_run *, struct lg_session *,
		    const char *);
static char	*body_build(int, size_t *);
static void	 session_start(struct lg_session *, int);
static void	 session_enter(struct lg_session *, enum lg_state);
static void	 session_reply(struct lg_session *, int);
static void	 session_after_ok(struct lg_session *);
static void	 session_next_message(struct lg_session *);
static void	 session_fail(struct lg_session *, const char *);
static void	 session_close(struct lg_session *);
static int	 session_tls(struct lg_session *);
static void	 session_setcb(struct lg_session *);
static void	 on_read(struct bufferevent *, void *);
static void	 on_event(struct bufferevent *, short, void *);
static void	 on_deadline(evutil_socket_t, short, void *);
static void	 on_hold_over(evutil_socket_t, short, void *);
static void	 on_signal(evutil_socket_t, short, void *);
static int	 cmp_float(const void *, const void *);
static double	 pct(float *, int, double);

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen send --port P [--host A] [--sessions N] "
	    "[--count M]\n"
	    "           [--per-session K] [--size BYTES] [--starttls]\n"
	    "       loadgen idle --port P [--host A] --conns N [--hold S] "
	    "[--ready-file F]\n"
	    "           [--connect-burst B]\n"
	    "  common: [--max-seconds S] [--timeout S] [--max-failures N] "
	    "[--label L]\n");
	exit(2);
}

/* A number in [lo, hi] for option NAME, or -1 with a message. */
static int
num_arg(const char *name, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "loadgen: --%s %s: not a number from %ld "
		    "to %ld\n", name, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}


/* The numeric options: where each goes and its range. */
static const struct lg_numopt {
	const char	*name;
	size_t		 off;
	long		 lo, hi;
} lg_numopts[] = {
	{ "port", offsetof(struct lg_opts, port), 1, 65535 },
	{ "sessions", offsetof(struct lg_opts, sessions), 1, 10000 },
	{ "count", offsetof(struct lg_opts, count), 1, LG_COUNT_MAX },
	{ "per-session", offsetof(struct lg_opts, per_session), 1,
	    LG_COUNT_MAX },
	{ "size", offsetof(struct lg_opts, size), 0, LG_SIZE_MAX },
	{ "conns", offsetof(struct lg_opts, conns), 1, LG_CONNS_MAX },
	{ "connect-burst", offsetof(struct lg_opts, burst), 1, 10000 },
	{ "hold", offsetof(struct lg_opts, hold), 0, 86400 },
	{ "max-seconds", offsetof(struct lg_opts, max_seconds), 1, 86400 },
	{ "timeout", offsetof(struct lg_opts, timeout), 1, 3600 },
	{ "max-failures", offsetof(struct lg_opts, max_failures), 1,
	    LG_COUNT_MAX },
};
#define LG_NNUMOPTS	(sizeof(lg_numopts) / sizeof(lg_numopts[0]))

static int
opts_parse(struct lg_opts *o, int argc, char **argv)
{
	struct option longopts[LG_NNUMOPTS + 5];
	const struct lg_numopt *n;
	size_t i;
	long v;
	int ch, bad = 0;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "idle") == 0)
		o->idle = 1;
	else if (strcmp(argv[1], "send") != 0)
		usage();
	/* long options 0..LG_NNUMOPTS-1 are the numbers, by index */
	for (i = 0; i < LG_NNUMOPTS; i++)
		longopts[i] = (struct option){ lg_numopts[i].name,
		    required_argument, NULL, (int)i };
	longopts[i++] = (struct option){ "host", required_argument, NULL,
	    'H' };
	longopts[i++] = (struct option){ "starttls", no_argument, NULL, 'S' };
	longopts[i++] = (struct option){ "ready-file", required_argument,
	    NULL, 'R' };
	longopts[i++] = (struct option){ "label", required_argument, NULL,
	    'L' };
	longopts[i] = (struct option){ NULL, 0, NULL, 0 };
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch >= 0 && (size_t)ch < LG_NNUMOPTS) {
			n = &lg_numopts[ch];
			if (num_arg(n->name, optarg, n->lo, n->hi, &v) == -1)
				bad = 1;
			else
				*(int *)(void *)((char *)o + n->off) = (int)v;
			continue;
		}
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'S': o->starttls = 1; break;
		case 'R': o->ready_file = optarg; break;
		case 'L': o->label = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || o->port == 0)
		usage();
	return bad ? -1 : 0;
}

/* Body of --size bytes: 78-octet lines, CRLF, never a leading dot. */
static char *
body_build(int size, size_t *lenp)
{
	static const char line[] = "abcdefghijklmnopqrstuvwxyz0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n";
	size_t ll = sizeof(line) - 1, off = 0, n;
	char *b;

	if ((b = malloc((size_t)size + ll + 8)) == NULL)
		return NULL;
	while (off + ll <= (size_t)size) {
		memcpy(b + off, line, ll);
		off += ll;
	}
	if (off < (size_t)size) {
		/* a last short line of 'x's; with its CRLF it fills size */
		n = (size_t)size - off;
		memset(b + off, 'x', n > 2 ? n - 2 : 0);
		off += n > 2 ? n - 2 : 0;
		memcpy(b + off, "\r\n", 2);
		off += 2;
	}
	memcpy(b + off, ".\r\n", 3);
	*lenp = off + 3;
	return b;
}

static int
run_setup(struct lg_run *r)
{
	struct lg_opts *o = &r->o;
	int i;

	memset(&r->addr, 0, sizeof(r->addr));
	r->addr.sin_family = AF_INET;
	r->addr.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host, &r->addr.sin_addr) != 1) {
		fprintf(stderr, "loadgen: --host %s: not an IPv4 address\n",
		    o->host);
		return -1;
	}
	if ((r->base = event_base_new()) == NULL)
		return -1;
	if (o->starttls) {
		if ((r->tls = SSL_CTX_new(TLS_client_method())) == NULL)
			return -1;
		SSL_CTX_set_min_proto_version(r->tls, TLS1_2_VERSION);
		SSL_CTX_set_verify(r->tls, SSL_VERIFY_NONE, NULL);
		/* every session a full handshake: what a new client costs */
		SSL_CTX_set_session_cache_mode(r->tls, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(r->tls, SSL_OP_NO_TICKET);
	}
	if ((r->body = body_build(o->size, &r->body_len)) == NULL)
		return -1;
	r->nsess = o->idle ? o->conns : o->sessions;
	r->sess = calloc((size_t)r->nsess, sizeof(*r->sess));
	r->lat = calloc(o->idle ? 1 : (size_t)o->count, sizeof(float));
	r->slat_cap = o->idle ? 1 : o->count + o->sessions;
	r->slat = calloc((size_t)r->slat_cap, sizeof(float));
	if (r->sess == NULL || r->lat == NULL || r->slat == NULL)
		return -1;
	for (i = 0; i < r->nsess; i++) {
		r->sess[i].run = r;
		r->sess[i].id = i;
		r->sess[i].fd = -1;
		r->sess[i].state = LG_CLOSED;
	}
	return 0;
}

static void
run_free(struct lg_run *r)
{
	int i;

	for (i = 0; r->sess != NULL && i < r->nsess; i++)
		if (r->sess[i].fd != -1)
			session_close(&r->sess[i]);
	if (r->deadline != NULL)
		event_free(r->deadline);
	if (r->hold_timer != NULL)
		event_free(r->hold_timer);
	if (r->sig_term != NULL)
		event_free(r->sig_term);
	if (r->sig_int != NULL)
		event_free(r->sig_int);
	free(r->sess);
	free(r->lat);
	free(r->slat);
	free(r->body);
	SSL_CTX_free(r->tls);
	if (r->base != NULL)
		event_base_free(r->base);
}

static void
run_note_error(struct lg_run *r, struct lg_session *s, const char *why)
{
	if (r->first_error[0] == '\0')
		snprintf(r->first_error, sizeof(r->first_error), "%s:%s",
		    lg_steps[s->state].name, why);
}

/* Connect a fresh session in a LG_CLOSED slot; CLAIM: it owns the next
 * message (send mode), so no more sessions start than messages remain. */
static void
session_start(struct lg_session *s, int claim)
{
	struct lg_run *r = s->run;
	int one = 1;

	s->sent = 0;
	s->holding_msg = claim;
	r->claimed += claim;
	if (r->o.idle) {
		r->launched++;
		r->setting_up++;
	}
	s->t_conn = now();
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		s->state = LG_CONNECT;
		r->active++;
		session_fail(s, strerror(errno));
		return;
	}
	/* replies and commands go out at once (no Nagle delay) */
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->bev = bufferevent_socket_new(r->base, s->fd, 0);
	s->state = LG_CONNECT;
	r->active++;
	if (s->bev == NULL) {
		session_fail(s, "bufferevent_socket_new");
		return;
	}
	session_setcb(s);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&r->addr,
	    sizeof(r->addr)) == -1)
		session_fail(s, strerror(errno));
}

static void
session_setcb(struct lg_session *s)
{
	struct timeval tv = { s->run->o.timeout, 0 };

	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* The one place a session changes state: write what the state sends. */
static void
session_enter(struct lg_session *s, enum lg_state st)
{
	struct lg_run *r = s->run;
	struct evbuffer *out;

	s->state = st;
	if (st == LG_HOLD) {
		/* an idle connection may stay silent as long as it likes */
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		r->opened++;
		r->setting_up--;
		run_launch_idle(r);
		run_maybe_done(r);
		return;
	}
	if (st == LG_HANDSHAKE) {
		if (session_tls(s) == -1)
			session_fail(s, "cannot start TLS");
		return;
	}
	out = bufferevent_get_output(s->bev);
	if (st == LG_MAIL)
		s->t_msg = now();
	if (lg_steps[st].cmd != NULL)
		evbuffer_add(out, lg_steps[st].cmd, strlen(lg_steps[st].cmd));
	if (st == LG_BODY) {
		evbuffer_add_printf(out, "From: <bench@example.org>\r\n"
		    "To: <sink@example.com>\r\nSubject: bench\r\n"
		    "Message-ID: <%ld.%d@loadgen.bench.example.org>\r\n\r\n",
		    (long)getpid(), r->msgno++);
		evbuffer_add_reference(out, r->body, r->body_len, NULL, NULL);
	}
}

/* STARTTLS got its 220: the same fd continues under TLS. */
static int
session_tls(struct lg_session *s)
{
	struct lg_run *r = s->run;

	if (evbuffer_get_length(bufferevent_get_input(s->bev)) != 0) {
		run_note_error(r, s, "data-after-starttls-220");
		return -1;
	}
	if ((s->ssl = SSL_new(r->tls)) == NULL)
		return -1;
	bufferevent_free(s->bev);
	s->bev = bufferevent_openssl_socket_new(r->base, s->fd, s->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL)
		return -1;
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	session_setcb(s);
	return 0;
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct lg_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;
	int code;

	while (s->state != LG_CLOSED && s->bev == bev &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (n < 3 || n > LG_REPLY_MAX || line[0] < '1' ||
		    line[0] > '5' || (n > 3 && line[3] != ' ' &&
		    line[3] != '-')) {
			free(line);
			session_fail(s, "malformed-reply");
			return;
		}
		code = atoi(line);
		if (n > 3 && line[3] == '-') {
			free(line);
			continue;	/* more lines of this reply */
		}
		free(line);
		session_reply(s, code);
	}
	if (s->state != LG_CLOSED && s->bev == bev &&
	    evbuffer_get_length(in) > LG_REPLY_MAX)
		session_fail(s, "reply-line-too-long");
}

/* A complete reply with CODE arrived in the session's state. */
static void
session_reply(struct lg_session *s, int code)
{
	struct lg_run *r = s->run;
	const struct lg_step *st = &lg_steps[s->state];
	char why[32];

	if (st->want == 0) {
		session_fail(s, "unexpected-reply");
		return;
	}
	if (code / 100 != st->want) {
		snprintf(why, sizeof(why), "reply-%d", code);
		session_fail(s, why);
		return;
	}
	if (s->state == LG_BODY) {
		if (r->nlat < r->o.count)
			r->lat[r->nlat++] = (float)((now() - s->t_msg) * 1e3);
		r->ok++;
		s->holding_msg = 0;
		s->sent++;
	}
	session_after_ok(s);
}

/* The next state after a good reply: the engine's transitions. */
static void
session_after_ok(struct lg_session *s)
{
	struct lg_run *r = s->run;

	switch (s->state) {
	case LG_BANNER:
		session_enter(s, LG_EHLO);
		break;
	case LG_EHLO:
		if (r->o.starttls)
			session_enter(s, LG_STARTTLS);
		else if (r->o.idle)
			session_enter(s, LG_HOLD);
		else
			session_next_message(s);
		break;
	case LG_STARTTLS:
		session_enter(s, LG_HANDSHAKE);
		break;
	case LG_EHLO_TLS:
		if (r->o.idle)
			session_enter(s, LG_HOLD);
		else
			session_next_message(s);
		break;
	case LG_MAIL:
		session_enter(s, LG_RCPT);
		break;
	case LG_RCPT:
		session_enter(s, LG_DATA);
		break;
	case LG_DATA:
		session_enter(s, LG_BODY);
		break;
	case LG_BODY:
		session_next_message(s);
		break;
	case LG_QUIT:
		if (r->nslat < r->slat_cap)
			r->slat[r->nslat++] =
			    (float)((now() - s->t_conn) * 1e3);
		r->sessions_done++;
		if (r->releasing)
			r->quit_ok++;
		session_close(s);
		break;
	default:
		session_fail(s, "no-transition");
	}
}

/* Claim the next message for this session, or QUIT. */
static void
session_next_message(struct lg_session *s)
{
	struct lg_run *r = s->run;

	if (r->stopping) {
		session_enter(s, LG_QUIT);
		return;
	}
	if (s->holding_msg) {
		session_enter(s, LG_MAIL);	/* claimed at session start */
		return;
	}
	if (s->sent >= r->o.per_session || r->claimed >= r->o.count) {
		session_enter(s, LG_QUIT);
		return;
	}
	r->claimed++;
	s->holding_msg = 1;
	session_enter(s, LG_MAIL);
}

/* The session failed: count it and close it. */
static void
session_fail(struct lg_session *s, const char *why)
{
	struct lg_run *r = s->run;

	/* a server that closes right after its 221 is not a failure */
	if (s->state == LG_QUIT && strcmp(why, "eof") == 0) {
		session_close(s);
		return;
	}
	run_note_error(r, s, why);
	r->sess_failed++;
	if (r->o.idle && s->state != LG_HOLD && s->state != LG_QUIT)
		r->setting_up--;
	if (r->o.max_failures > 0 && r->sess_failed >= r->o.max_failures &&
	    !r->stopping) {
		fprintf(stderr, "loadgen: %d sessions failed (first: %s): "
		    "stopping\n", r->sess_failed, r->first_error);
		r->stopping = 1;
	}
	session_close(s);
}

/* Free the session's connection; in send mode start the next one. */
static void
session_close(struct lg_session *s)
{
	struct lg_run *r = s->run;

	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	if (s->ssl != NULL)
		SSL_free(s->ssl);
	s->ssl = NULL;
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	if (s->holding_msg)
		r->failed++;	/* claimed, never acknowledged */
	s->holding_msg = 0;
	if (s->state == LG_CLOSED)
		return;
	s->state = LG_CLOSED;
	r->active--;
	if (!r->o.idle && !r->stopping && r->claimed < r->o.count)
		session_start(s, 1);
	else if (r->o.idle && !r->releasing && !r->stopping)
		run_launch_idle(r);
	run_maybe_done(r);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct lg_session *s = arg;

	if (s->bev != bev)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == LG_CONNECT) {
			s->state = LG_BANNER;
			return;
		}
		if (s->state == LG_HANDSHAKE) {
			if (s->run->tls_info[0] == '\0')
				snprintf(s->run->tls_info,
				    sizeof(s->run->tls_info),
				    " tls_version=%s cipher=%s",
				    SSL_get_version(s->ssl),
				    SSL_get_cipher_name(s->ssl));
			session_enter(s, LG_EHLO_TLS);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		session_fail(s, "timeout");
	else if (what & BEV_EVENT_EOF)
		session_fail(s, "eof");
	else if (what & BEV_EVENT_ERROR)
		session_fail(s, s->ssl != NULL && ERR_peek_error() != 0 ?
		    "tls-error" : evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
	ERR_clear_error();
}

/* Idle mode: start sessions while fewer than --connect-burst are being
 * set up (a burst of thousands of SYNs overflows listen backlogs). */
static void
run_launch_idle(struct lg_run *r)
{
	if (r->in_launch)
		return;		/* a synchronous failure inside the loop */
	r->in_launch = 1;
	while (!r->releasing && !r->stopping && r->launched < r->o.conns &&
	    r->setting_up < r->o.burst)
		session_start(&r->sess[r->launched], 0);
	r->in_launch = 0;
}

/* Idle mode: every connection set up; tell the waiting script. */
static void
run_ready(struct lg_run *r)
{
	struct timeval tv = { r->o.hold, 0 };
	FILE *f;

	r->ready = 1;
	r->t_ready = now();
	fprintf(stderr, "loadgen: ready conns=%d failed=%d open_secs=%.3f\n",
	    r->opened, r->sess_failed, r->t_ready - r->t0);
	if (r->o.ready_file != NULL) {
		if ((f = fopen(r->o.ready_file, "w")) == NULL ||
		    fprintf(f, "%d\n", r->opened) < 0 || fclose(f) != 0)
			fprintf(stderr, "loadgen: cannot write %s: %s\n",
			    r->o.ready_file, strerror(errno));
	}
	r->hold_timer = evtimer_new(r->base, on_hold_over, r);
	if (r->hold_timer != NULL)
		evtimer_add(r->hold_timer, &tv);
}

/* Idle mode: the hold is over (or a signal came): QUIT everywhere. */
static void
run_release(struct lg_run *r)
{
	struct timeval tv = { r->o.timeout, 0 };
	int i;

	if (r->releasing)
		return;
	r->releasing = 1;
	r->t_end = now();
	for (i = 0; i < r->nsess; i++) {
		if (r->sess[i].state == LG_HOLD) {
			bufferevent_set_timeouts(r->sess[i].bev, &tv, &tv);
			session_enter(&r->sess[i], LG_QUIT);
		} else if (r->sess[i].state != LG_CLOSED) {
			session_close(&r->sess[i]);	/* still setting up */
		}
	}
	run_maybe_done(r);
}

static void
run_maybe_done(struct lg_run *r)
{
	if (r->o.idle) {
		if (!r->ready && !r->releasing &&
		    (r->launched == r->o.conns || r->stopping) &&
		    r->setting_up == 0)
			run_ready(r);
		if (r->releasing && r->active == 0)
			event_base_loopexit(r->base, NULL);
		return;
	}
	if (r->active == 0 && (r->claimed >= r->o.count || r->stopping)) {
		r->t_end = now();
		event_base_loopexit(r->base, NULL);
	}
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct lg_run *r = arg;

	fprintf(stderr, "loadgen: --max-seconds %d reached: stopping\n",
	    r->o.max_seconds);
	r->timed_out = 1;
	r->stopping = 1;
	if (r->t_end == 0)
		r->t_end = now();
	event_base_loopbreak(r->base);
}

static void
on_hold_over(evutil_socket_t fd, short what, void *arg)
{
	run_release(arg);
}

static void
on_signal(evutil_socket_t fd, short what, void *arg)
{
	struct lg_run *r = arg;

	if (r->o.idle) {
		run_release(r);
		return;
	}
	r->stopping = 1;	/* sessions finish their message, then QUIT */
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

/* The P-th percentile of N sorted values (nearest rank). */
static double
pct(float *v, int n, double p)
{
	int k;

	if (n == 0)
		return 0;
	k = (int)(p / 100.0 * n + 0.999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

/* Spaces would split the key=value line: make them dashes. */
static void
dashes(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == ' ' || *s == '\t')
			*s = '-';
}

static void
run_report(struct lg_run *r)
{
	struct lg_opts *o = &r->o;
	double secs = (r->t_end > r->t0 ? r->t_end : now()) - r->t0;

	dashes(r->first_error);
	if (o->idle) {
		printf("label=%s port=%d mode=idle conns=%d opened=%d "
		    "failed=%d quit_ok=%d open_secs=%.3f held_secs=%.3f "
		    "timeout=%d%s%s\n", o->label, o->port, o->conns, r->opened,
		    r->sess_failed, r->quit_ok,
		    r->ready ? r->t_ready - r->t0 : secs,
		    r->ready && r->releasing ? r->t_end - r->t_ready : 0.0,
		    r->timed_out, r->first_error[0] ? " error=" : "",
		    r->first_error);
		return;
	}
	qsort(r->lat, (size_t)r->nlat, sizeof(float), cmp_float);
	qsort(r->slat, (size_t)r->nslat, sizeof(float), cmp_float);
	printf("label=%s port=%d mode=send sessions=%d per_session=%d size=%d "
	    "tls=%d count=%d ok=%d failed=%d unsent=%d session_failures=%d "
	    "secs=%.3f msgs_per_s=%.1f sessions_per_s=%.1f lat_p50_ms=%.3f "
	    "lat_p90_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f "
	    "sess_p50_ms=%.3f sess_p99_ms=%.3f timeout=%d%s%s%s\n",
	    o->label, o->port, o->sessions, o->per_session, o->size,
	    o->starttls, o->count, r->ok, r->failed,
	    o->count - r->ok - r->failed, r->sess_failed, secs,
	    r->ok / secs, r->sessions_done / secs, pct(r->lat, r->nlat, 50),
	    pct(r->lat, r->nlat, 90), pct(r->lat, r->nlat, 99),
	    pct(r->lat, r->nlat, 100), pct(r->slat, r->nslat, 50),
	    pct(r->slat, r->nslat, 99), r->timed_out, r->tls_info,
	    r->first_error[0] ? " error=" : "", r->first_error);
}

static int
run_start(struct lg_run *r)
{
	struct timeval tv = { r->o.max_seconds, 0 };
	int i;

	r->deadline = evtimer_new(r->base, on_deadline, r);
	r->sig_term = evsignal_new(r->base, SIGTERM, on_signal, r);
	r->sig_int = evsignal_new(r->base, SIGINT, on_signal, r);
	if (r->deadline == NULL || r->sig_term == NULL || r->sig_int == NULL)
		return -1;
	evtimer_add(r->deadline, &tv);
	evsignal_add(r->sig_term, NULL);
	evsignal_add(r->sig_int, NULL);
	r->t0 = now();
	if (r->o.idle) {
		run_launch_idle(r);
		return 0;
	}
	for (i = 0; i < r->nsess && r->claimed < r->o.count; i++)
		session_start(&r->sess[i], 1);
	return 0;
}

int
main(int argc, char **argv)
{
	struct lg_run r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.o = (struct lg_opts){ .host = "127.0.0.1", .sessions = 10,
	    .count = 1000, .per_session = 1, .size = 4096, .conns = 100,
	    .burst = 200, .hold = 10, .max_seconds = 300, .timeout = 60,
	    .max_failures = 100, .label = "run" };
	if (opts_parse(&r.o, argc, argv) == -1)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (run_setup(&r) == -1 || run_start(&r) == -1) {
		fprintf(stderr, "loadgen: cannot set up the run: %s\n",
		    strerror(errno));
		run_free(&r);
		return 1;
	}
	event_base_dispatch(r.base);
	run_report(&r);
	fflush(stdout);
	if (r.o.idle)
		rc = r.opened == r.o.conns && !r.timed_out ? 0 : 1;
	else
		rc = r.ok == r.o.count && !r.timed_out ? 0 : 1;
	r.stopping = 1;
	r.releasing = 1;
	run_free(&r);
	return rc;
}
