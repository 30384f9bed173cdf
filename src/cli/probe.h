/*
 * probe.h - `postern probe`, the "Test Connection" button: the model its
 * files share.  One probe of one server is a list of steps (name, ok /
 * warn / FAIL, time, details, fix lines from the table of causes,
 * failcause.h); `--mx` makes one report per MX host.
 *
 *   cmd_probe.c     options, configuration, --mx, exit status
 *   probe_run.c     the steps of one server: resolve, connect, banner,
 *                   EHLO, STARTTLS, TLS, EHLO again, AUTH, MAIL, RCPT,
 *                   then the old-TLS and STARTTLS-injection checks on
 *                   connections of their own (smtp_client.h steps on one
 *                   libevent loop)
 *   probe_tls.c     what an established TLS session shows: protocol,
 *                   cipher, temporary key, the chain as sent, its
 *                   verification, the host name (certchain.h)
 *   probe_policy.c  --policy: what the destination control of the
 *                   configuration would do with what was found
 *                   (route.h, tls_policy.h - the delivery's own tables)
 *   probe_report.c  the report: steps, text output, JSON, the MX matrix
 */
#ifndef POSTERN_PROBE_H
#define POSTERN_PROBE_H

#include <stddef.h>
#include <stdio.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "failcause.h"
#include "strbuf.h"

enum probe_status { PROBE_OK, PROBE_WARN, PROBE_FAIL };

#define PROBE_FIX_MAX	6	/* fix lines per step */

struct probe_step {
	const char	*name;		/* "resolve", "connect", ... (static) */
	enum probe_status status;
	double		 ms;
	struct strbuf	 details;	/* lines, each ending in '\n' */
	size_t		 nfix;
	enum failcause	 cause[PROBE_FIX_MAX];
	char		*fix[PROBE_FIX_MAX];	/* malloc'd */
};

/* What the steps found, for --policy (-1 = not known). */
struct probe_found {
	int	 connected;
	int	 starttls_offered;
	int	 starttls_refused;	/* answered, not 220 */
	int	 tls_failed;		/* handshake failed (after the 220) */
	int	 tls_up;		/* handshake done */
	int	 chain_ok;		/* verified against the trust store */
	int	 name_ok;		/* the host name matched */
	char	 why_tls[256];		/* what failed, in words */
};

struct probe_report {
	char		 host[256];	/* the server as probed */
	int		 port;
	int		 pref;		/* --mx: MX preference, else -1 */
	struct probe_step *steps;
	size_t		 nsteps;
	struct probe_found found;
};

enum probe_tls {		/* the order of cmd_tls_flag (cmd.h) */
	PROBE_TLS_AUTO = 0,	/* STARTTLS when offered (default) */
	PROBE_TLS_STARTTLS,	/* STARTTLS or FAIL */
	PROBE_TLS_IMPLICIT,	/* RFC 8314 */
	PROBE_TLS_PLAIN		/* no TLS */
};

struct probe_settings {
	const char	*host;		/* name or address to probe */
	int		 port;
	enum probe_tls	 tls;
	const char	*servername;	/* name to verify (SNI); NULL: host
					 * (an address: no SNI) */
	const char	*helo;
	const char	*user;		/* NULL: AUTH not tried */
	const char	*password;
	const char	*from;		/* MAIL FROM (NULL: no MAIL) */
	const char *const *rcpts;
	size_t		 nrcpts;
	SSL_CTX		*ctx;		/* the configuration's client context,
					 * verify-after, trust store */
	double		 timeout;	/* per step, seconds */
	int		 extra;		/* the old-TLS and injection checks */
	int		 progress;	/* print each step as it ends */
	FILE		*out;		/* where progress goes */
};

/* ---- probe_report.c ---- */
/* A new step at the end of the report (its time and status to be set). */
struct probe_step *probe_step_add(struct probe_report *, const char *name);
/* Append one line of details (printf). */
void	probe_detail(struct probe_step *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Mark the step warn or FAIL (never lowers it) and add the fix of `fc`
 * written with ctx (who = probe is set here). */
void	probe_problem(struct probe_step *, enum probe_status, enum failcause,
	    const struct failcause_ctx *);
/* The fix context for this report's server: host, port, reader. */
void	probe_fctx(const struct probe_report *, const struct probe_settings *,
	    struct failcause_ctx *);
/* One step as text: "NAME  ok (12 ms)", details, fix lines. */
void	probe_print_step(FILE *, const struct probe_step *);
/* Counts of FAIL and warn steps. */
void	probe_counts(const struct probe_report *, size_t n, int *fails,
	    int *warns);
/* The matrix of --mx: one row per host, one column per step. */
void	probe_print_matrix(FILE *, const struct probe_report *, size_t n);
/* The reports as one JSON document; domain NULL without --mx. */
void	probe_print_json(FILE *, const char *domain,
	    const struct probe_report *, size_t n, const char *mode);
void	probe_report_free(struct probe_report *);

/* ---- probe_run.c ---- */
/* Run every step against one server on `base` (dns_init done), to the
 * end; the report is filled (and printed step by step with progress). */
struct event_base;
void	probe_run(struct event_base *, const struct probe_settings *,
	    struct probe_report *);

/* ---- probe_tls.c ---- */
/* The steps of an established TLS session: "tls", "certificate",
 * "verify", "hostname", checked against the trust store of ctx and the
 * name `name` (a host name or an address).  Fills found->chain_ok and
 * found->name_ok. */
void	probe_tls_steps(struct probe_report *, const struct probe_settings *,
	    SSL *, const char *name, double handshake_ms);
/* The "tls" step (index `step`) of a handshake that failed: what the
 * server does speak, learnt from the diagnostic handshake `diag`
 * (tls_client_ctx_diag; NULL when it failed too), decides the cause (no
 * shared protocol, DH too small, weak key, ...); then the chain it
 * presents there is checked as after a good handshake. */
void	probe_tls_failed(struct probe_report *, const struct probe_settings *,
	    size_t step, enum failcause cause, const char *reason, SSL *diag,
	    const char *name);

/* ---- probe_policy.c ---- */
/* The "policy" step: what the destination control for `domain` in conf
 * would make of what the report found, and why. */
void	probe_policy_step(struct probe_report *, const struct probe_settings *,
	    const struct conf *, const char *domain);

#endif
