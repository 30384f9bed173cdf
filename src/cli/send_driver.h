/*
 * send_driver.h - the SMTP side of `postern send`: N copies of one
 * message over C connections on one libevent loop, each connection a
 * composition of smtp_client steps (connect, [implicit TLS], greeting,
 * EHLO, [STARTTLS, EHLO], [AUTH], then one transaction after another,
 * RSET between, QUIT).  One message over one connection is the plain
 * `postern send`; --count/--concurrency is bulk injection.
 *
 * The caller (cmd_send.c) owns the settings, the message and the
 * output; the driver reports the first connection's opening (for the
 * "Opened SMTP connection" line), each failure as text + cause
 * (failcause.h), and counts, latencies and failures by reply code.
 */
#ifndef POSTERN_SEND_DRIVER_H
#define POSTERN_SEND_DRIVER_H

#include <stddef.h>
#include <netdb.h>
#include <openssl/ssl.h>

#include "failcause.h"
#include "strbuf.h"

enum send_tls {
	SEND_TLS_AUTO = 0,	/* STARTTLS when offered (default) */
	SEND_TLS_STARTTLS,	/* STARTTLS or fail */
	SEND_TLS_IMPLICIT,	/* RFC 8314 */
	SEND_TLS_PLAIN		/* never TLS; AUTH allowed in clear */
};

struct send_settings {
	const char	*host;		/* as the user gave it */
	int		 port;
	struct addrinfo	*ai;		/* resolved addresses, borrowed */
	enum send_tls	 tls;
	SSL_CTX		*ctx;		/* client context, borrowed */
	int		 verify;	/* check the certificate (not
					 * --insecure) */
	const char	*servername;	/* SNI / name to verify, or NULL */
	const char	*helo;
	const char	*user;		/* NULL = no AUTH */
	const char	*password;
	const char	*from;		/* envelope */
	const char *const *rcpts;
	size_t		 nrcpts;
	const char	*msg;		/* CRLF, borrowed */
	size_t		 len;
	int		 eightbit;	/* needs 8BITMIME */
	int		 smtputf8;	/* needs SMTPUTF8 */
	size_t		 mid_digits;	/* offset of SEND_MID_DIGITS digits
					 * in msg numbered per copy (bulk),
					 * 0 = none */
	unsigned long	 count;		/* messages, >= 1 */
	unsigned long	 concurrency;	/* connections, >= 1 */
	double		 timeout;	/* per step, seconds */
	int		 progress;	/* progress line on stderr */
	/* called once, when the first connection is ready to send */
	void		(*opened)(void *arg, const char *mode);
	void		*arg;
};

#define SEND_MID_DIGITS	10

#define SEND_CODES_MAX	32
struct send_outcome {
	unsigned long	 sent, failed;
	double		 elapsed;	/* seconds, first connect to last
					 * reply */
	unsigned long	 connections;	/* opened, reconnects included */
	/* the first failure that stopped a connection's set-up (in single
	 * mode: the failure) */
	int		 setup_failed;
	struct strbuf	 reply;		/* the server's reply verbatim
					 * ("CODE text" lines, \n), or "" */
	struct strbuf	 what;		/* what failed, in words */
	enum failcause	 cause;
	struct failcause_ctx fctx;	/* strings below point into this */
	char		 issuer[256];
	char		 trust_file[160];
	char		 detail[256];
	char		 address[320];
	/* failures by reply code (0 = no reply: connection lost) */
	struct { int code; unsigned long n; } codes[SEND_CODES_MAX];
	size_t		 ncodes;
	double		*lat;		/* seconds per accepted message */
	size_t		 nlat;
	char		 last_ok[256];	/* last 2xx reply to the data */
};

/* Run to the end.  0 when every message was accepted, else 1. */
int	send_driver_run(const struct send_settings *, struct send_outcome *);
void	send_outcome_free(struct send_outcome *);
/* Latency percentile p (0..100) in seconds; 0 without data.  Sorts. */
double	send_outcome_percentile(struct send_outcome *, double p);

#endif
