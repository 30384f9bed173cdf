/*
 * injectsink.c - the SMTP sink of the injection section of `make bench`
 * (bench/bench-inject.sh, bench/README.md).
 *
 * Owns: accepting SMTP sessions on 127.0.0.1, in plaintext or after
 * STARTTLS, and throwing the mail away as fast as a single event loop
 * can, so that the client under test - not the sink - is the limit.
 * Postfix's smtp-sink has no TLS; this sink exists so that `postern
 * send` with and without STARTTLS is measured against the SAME peer.
 *   injectsink --port P [--cert F --key F]
 * With --cert/--key (PEM) EHLO offers STARTTLS.  It offers PIPELINING,
 * 8BITMIME, SIZE and ENHANCEDSTATUSCODES, accepts every MAIL, RCPT, RSET
 * and NOOP with 250, and any number of messages per connection.
 * Replies to pipelined commands are gathered and written once the input
 * read so far is used up (one write, one TLS record, like Postfix's
 * smtpd).  SIGUSR1 prints "messages=N sessions=N tls=N" on stdout (the
 * bench reads the count of delivered messages from it); SIGTERM/SIGINT
 * print the same line and stop.
 * Engine: one session = one state (command, data, handshake) and a table
 * of verbs; DATA ends at CRLF.CRLF found by a five-octet matcher that
 * runs across reads.  TLS: OpenSSL on the socket directly, read-ahead
 * on, and SSL_read called again while the SSL object holds more, so no
 * record ever waits there for a readable event that will not come.
 * Limits: a command line over 1000 octets, input pipelined behind
 * STARTTLS, more than 1 MiB of unsent replies, or 120 s without input
 * end the session.  Loopback only; nothing is stored.
 * Threats: none beyond the bench: the peer is our own client.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SK_LINE_MAX	1000		/* command line, CRLF included */
#define SK_OUT_MAX	(1024 * 1024)	/* unsent replies */
#define SK_READ		(64 * 1024)	/* octets per read */
#define SK_IDLE_SECS	120

enum sk_mode {
	SK_CMD,			/* reading command lines */
	SK_DATA,		/* reading message data up to CRLF.CRLF */
	SK_HANDSHAKE,		/* TLS handshake after STARTTLS */
	SK_CLOSING		/* QUIT answered: close once flushed */
};

struct sk_sink {
	struct event_base	*base;
	SSL_CTX			*tls;
	unsigned long		 messages, sessions, tls_sessions;
};

struct sk_conn {
	struct sk_sink		*sink;
	int			 fd;
	SSL			*ssl;
	enum sk_mode		 mode;
	int			 tls_active;
	int			 starttls;	/* 220 queued, switch after */
	int			 want_write;	/* SSL_read wants the socket
						 * writable */
	size_t			 match;		/* of "\r\n.\r\n" in DATA */
	char			 line[SK_LINE_MAX + 1];
	size_t			 linelen;
	char			*out;
	size_t			 outlen, outcap;
	struct event		*rev, *wev;
};

/* What a verb gets: its reply, and what happens after it. */
enum sk_act { SK_ACT_NONE, SK_ACT_EHLO, SK_ACT_DATA, SK_ACT_STARTTLS,
	SK_ACT_QUIT };

static const struct sk_verb {
	const char	*verb;
	const char	*reply;
	enum sk_act	 act;
} sk_verbs[] = {
	{ "EHLO", NULL, SK_ACT_EHLO },
	{ "HELO", "250 sink.bench\r\n", SK_ACT_NONE },
	{ "MAIL", "250 2.1.0 Ok\r\n", SK_ACT_NONE },
	{ "RCPT", "250 2.1.5 Ok\r\n", SK_ACT_NONE },
	{ "RSET", "250 2.0.0 Ok\r\n", SK_ACT_NONE },
	{ "NOOP", "250 2.0.0 Ok\r\n", SK_ACT_NONE },
	{ "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n", SK_ACT_DATA },
	{ "STARTTLS", "220 2.0.0 Ready to start TLS\r\n", SK_ACT_STARTTLS },
	{ "QUIT", "221 2.0.0 Bye\r\n", SK_ACT_QUIT },
};

static const char sk_eod[] = "\r\n.\r\n";
/* KMP fallback of the end-of-data matcher: matched k+1 octets, then a
 * mismatch, go on from sk_eod_fail[k]. */
static const size_t sk_eod_fail[] = { 0, 0, 0, 1, 2 };

static void	conn_free(struct sk_conn *);
static void	conn_io(evutil_socket_t, short, void *);
static int	conn_flush(struct sk_conn *);
static void	conn_events(struct sk_conn *);

static void
usage(void)
{
	fprintf(stderr, "usage: injectsink --port P [--cert PEM --key PEM]\n");
	exit(2);
}

static void
sink_report(struct sk_sink *s)
{
	printf("messages=%lu sessions=%lu tls=%lu\n", s->messages,
	    s->sessions, s->tls_sessions);
	fflush(stdout);
}

/* Queue reply octets; -1 when too much waits unsent. */
static int
conn_out(struct sk_conn *c, const char *p, size_t n)
{
	size_t cap;
	char *o;

	if (c->outlen + n > SK_OUT_MAX)
		return -1;
	if (c->outlen + n > c->outcap) {
		cap = c->outcap ? c->outcap : 1024;
		while (cap < c->outlen + n)
			cap *= 2;
		if ((o = realloc(c->out, cap)) == NULL)
			return -1;
		c->out = o;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

static int
conn_ehlo(struct sk_conn *c)
{
	char b[256];
	int n;

	n = snprintf(b, sizeof(b), "250-sink.bench\r\n250-PIPELINING\r\n"
	    "250-8BITMIME\r\n250-SIZE 104857600\r\n%s"
	    "250 ENHANCEDSTATUSCODES\r\n", c->sink->tls != NULL &&
	    !c->tls_active ? "250-STARTTLS\r\n" : "");
	return conn_out(c, b, (size_t)n);
}

/* One command line (CRLF stripped); -1 ends the session. */
static int
conn_command(struct sk_conn *c, const char *l, size_t n)
{
	const struct sk_verb *v;
	size_t i, k;

	for (i = 0; i < sizeof(sk_verbs) / sizeof(sk_verbs[0]); i++) {
		v = &sk_verbs[i];
		k = strlen(v->verb);
		if (n >= k && strncasecmp(l, v->verb, k) == 0 &&
		    (n == k || l[k] == ' '))
			break;
	}
	if (i == sizeof(sk_verbs) / sizeof(sk_verbs[0]))
		return conn_out(c, "502 5.5.1 Unknown command\r\n", 27);
	if (v->act == SK_ACT_STARTTLS && (c->sink->tls == NULL ||
	    c->tls_active))
		return conn_out(c, "502 5.5.1 Not offered\r\n", 23);
	if (v->act == SK_ACT_EHLO)
		return conn_ehlo(c);
	if (conn_out(c, v->reply, strlen(v->reply)) == -1)
		return -1;
	switch (v->act) {
	case SK_ACT_DATA:
		c->mode = SK_DATA;
		c->match = 2;	/* the CRLF of the DATA line */
		break;
	case SK_ACT_STARTTLS:
		c->starttls = 1;
		break;
	case SK_ACT_QUIT:
		c->mode = SK_CLOSING;
		break;
	default:
		break;
	}
	return 0;
}

/* Message data: how many of the n octets belong to it (all of them, or
 * up to and including the CRLF.CRLF). */
static size_t
conn_data(struct sk_conn *c, const char *p, size_t n)
{
	const char *q;
	size_t i = 0;

	while (i < n) {
		if (c->match == 0) {
			if ((q = memchr(p + i, '\r', n - i)) == NULL)
				return n;
			i = (size_t)(q - p);
		}
		while (c->match > 0 && p[i] != sk_eod[c->match])
			c->match = sk_eod_fail[c->match - 1];
		if (p[i] == sk_eod[c->match])
			c->match++;
		i++;
		if (c->match == sizeof(sk_eod) - 1) {
			c->match = 0;
			c->mode = SK_CMD;
			c->sink->messages++;
			if (conn_out(c, "250 2.0.0 Ok: queued\r\n", 22) == -1)
				return (size_t)-1;
			return i;
		}
	}
	return n;
}

/* Octets read from the peer; -1 ends the session. */
static int
conn_feed(struct sk_conn *c, const char *p, size_t n)
{
	const char *nl;
	size_t k, i = 0;

	while (i < n) {
		if (c->mode == SK_DATA) {
			if ((k = conn_data(c, p + i, n - i)) == (size_t)-1)
				return -1;
			i += k;
			continue;
		}
		if (c->mode != SK_CMD || c->starttls)
			return -1;	/* input after QUIT or STARTTLS */
		nl = memchr(p + i, '\n', n - i);
		k = nl != NULL ? (size_t)(nl - (p + i)) + 1 : n - i;
		if (c->linelen + k > SK_LINE_MAX)
			return -1;
		memcpy(c->line + c->linelen, p + i, k);
		c->linelen += k;
		i += k;
		if (nl == NULL)
			break;
		k = c->linelen - 1;
		if (k > 0 && c->line[k - 1] == '\r')
			k--;
		c->linelen = 0;
		if (conn_command(c, c->line, k) == -1)
			return -1;
	}
	return 0;
}

/* Start the server side of TLS after the 220 went out. */
static int
conn_starttls(struct sk_conn *c)
{
	c->starttls = 0;
	if ((c->ssl = SSL_new(c->sink->tls)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	SSL_set_accept_state(c->ssl);
	c->mode = SK_HANDSHAKE;
	return 0;
}

static int
conn_handshake(struct sk_conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		c->tls_active = 1;
		c->mode = SK_CMD;
		c->sink->tls_sessions++;
		return 0;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->want_write = 0;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = 1;
		return 0;
	default:
		return -1;
	}
}

/* Read what the socket has and the SSL object holds: 0, or -1 when the
 * session ends (EOF, error, protocol).  A read that did not fill the
 * buffer took what there was: the socket is level-triggered, so more
 * that arrives later is another readable event, and no read(2) is
 * spent to hear EAGAIN. */
static int
conn_read(struct sk_conn *c)
{
	static char buf[SK_READ];
	size_t got;
	ssize_t n;
	int e;

	for (;;) {
		if (c->mode == SK_HANDSHAKE) {
			/* done: the EHLO may already be in the SSL object */
			if (conn_handshake(c) == -1)
				return -1;
			if (c->mode == SK_HANDSHAKE)
				return 0;
		}
		if (c->mode == SK_CLOSING || c->starttls)
			return 0;
		if (c->ssl != NULL) {
			if (SSL_read_ex(c->ssl, buf, sizeof(buf), &got) == 1) {
				if (conn_feed(c, buf, got) == -1)
					return -1;
				if (!SSL_has_pending(c->ssl))
					return 0;
				continue;
			}
			e = SSL_get_error(c->ssl, 0);
			c->want_write = e == SSL_ERROR_WANT_WRITE;
			if (e == SSL_ERROR_WANT_READ || c->want_write)
				return 0;
			return -1;
		}
		n = read(c->fd, buf, sizeof(buf));
		if (n > 0) {
			if (conn_feed(c, buf, (size_t)n) == -1)
				return -1;
			if ((size_t)n < sizeof(buf))
				return 0;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -1;
	}
}

/* Write what is queued: 1 when all went out, 0 when the socket is full,
 * -1 on error. */
static int
conn_flush(struct sk_conn *c)
{
	size_t done;
	ssize_t n;
	int e;

	while (c->outlen > 0) {
		if (c->ssl != NULL && c->tls_active) {
			if (SSL_write_ex(c->ssl, c->out, c->outlen, &done) != 1) {
				e = SSL_get_error(c->ssl, 0);
				return e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ ? 0 : -1;
			}
		} else {
			n = write(c->fd, c->out, c->outlen);
			if (n == -1)
				return errno == EAGAIN || errno == EINTR ?
				    0 : -1;
			done = (size_t)n;
		}
		memmove(c->out, c->out + done, c->outlen - done);
		c->outlen -= done;
	}
	return 1;
}

/* Watch for writability only while something waits to go out. */
static void
conn_events(struct sk_conn *c)
{
	struct timeval idle = { SK_IDLE_SECS, 0 };
	int need = c->outlen > 0 || c->want_write;

	if (need && !event_pending(c->wev, EV_WRITE, NULL))
		event_add(c->wev, NULL);
	else if (!need && event_pending(c->wev, EV_WRITE, NULL))
		event_del(c->wev);
	if (!event_pending(c->rev, EV_READ, NULL))
		event_add(c->rev, &idle);
}

static void
conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct sk_conn *c = arg;
	int f;

	(void)fd;
	if (what & EV_TIMEOUT)
		goto end;
	if (conn_read(c) == -1)
		goto end;
	if ((f = conn_flush(c)) == -1)
		goto end;
	if (f == 1 && c->starttls) {
		/* the 220 is out: nothing may follow it in plaintext */
		if (conn_starttls(c) == -1 || conn_read(c) == -1 ||
		    conn_flush(c) == -1)
			goto end;
	}
	if (f == 1 && c->mode == SK_CLOSING)
		goto end;
	conn_events(c);
	return;
end:
	conn_free(c);
}

static void
conn_free(struct sk_conn *c)
{
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	SSL_free(c->ssl);
	close(c->fd);
	free(c->out);
	free(c);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct sk_sink *s = arg;
	struct sk_conn *c;
	int one = 1;

	(void)l;
	(void)sa;
	(void)salen;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->sink = s;
	c->fd = fd;
	evutil_make_socket_nonblocking(fd);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_io, c);
	c->wev = event_new(s->base, fd, EV_WRITE, conn_io, c);
	if (c->rev == NULL || c->wev == NULL ||
	    conn_out(c, "220 sink.bench ESMTP\r\n", 22) == -1) {
		conn_free(c);
		return;
	}
	s->sessions++;
	if (conn_flush(c) == -1) {
		conn_free(c);
		return;
	}
	conn_events(c);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sk_sink *s = arg;

	(void)what;
	sink_report(s);
	if (sig != SIGUSR1)
		event_base_loopexit(s->base, NULL);
}

static SSL_CTX *
tls_setup(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* whole records per read(2); conn_read drains the SSL object */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* conn_out may grow (move) the buffer between write retries */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cert = NULL, *key = NULL;
	struct event *sigs[3];
	int sigv[3] = { SIGUSR1, SIGTERM, SIGINT };
	struct evconnlistener *l;
	struct sockaddr_in sin;
	struct sk_sink s;
	long port = 0;
	int ch, i;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || port < 1 || port > 65535 ||
	    (cert == NULL) != (key == NULL))
		usage();
	signal(SIGPIPE, SIG_IGN);
	memset(&s, 0, sizeof(s));
	if ((s.base = event_base_new()) == NULL)
		return 1;
	if (cert != NULL && (s.tls = tls_setup(cert, key)) == NULL) {
		fprintf(stderr, "injectsink: cannot load %s / %s\n", cert, key);
		return 1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(s.base, on_accept, &s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL) {
		fprintf(stderr, "injectsink: cannot listen on 127.0.0.1:%ld: "
		    "%s\n", port, strerror(errno));
		return 1;
	}
	for (i = 0; i < 3; i++)
		if ((sigs[i] = evsignal_new(s.base, sigv[i], on_signal,
		    &s)) == NULL || event_add(sigs[i], NULL) == -1)
			return 1;
	event_base_dispatch(s.base);
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	evconnlistener_free(l);
	SSL_CTX_free(s.tls);
	event_base_free(s.base);
	return 0;
}
