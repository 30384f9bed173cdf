/*
 * cmd_probe.c - `postern probe HOST[:PORT]` and `postern probe --mx
 * DOMAIN`: the "Test Connection" button.  Options, the configuration of
 * -c (TLS settings, trust store, EHLO name, resolver.local_data, and the
 * destinations --policy judges by), the MX list of --mx, the output
 * (text step by step, the MX matrix, or one JSON document) and the exit
 * status: 0 when no step failed (a warn does not fail), 1 otherwise, 2
 * for a usage error.  The steps are probe_run.c's (see probe.h).
 *
 * Order (postern(8): options before anything else): every option is parsed and
 * checked, then the password read, then -c loaded, then the network.
 * Secrets: the password comes from --password-env or --password-file,
 * never argv; it is shown as "****" and wiped at exit.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cmd.h"
#include "conf.h"
#include "dns.h"
#include "probe.h"
#include "tls_ctx.h"
#include "util.h"

#define PROBE_TIMEOUT	30.0
#define PROBE_RCPTS_MAX	100
#define USAGE(...)	cmd_usage_error("probe", NULL, __VA_ARGS__)

struct probe_opts {
	const char	*target, *mx, *cpath, *trust, *servername;
	const char	*user, *pw_env, *pw_file, *from, *domain;
	const char	*rcpts[PROBE_RCPTS_MAX];
	size_t		 nrcpts;
	char		 host[256];
	int		 port;
	enum probe_tls	 tls;
	int		 tls_set, policy, json, quick;
	double		 timeout;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: postern probe HOST[:PORT] [options]\n"
"       postern probe --mx DOMAIN [options]\n"
"Test an SMTP server step by step, the way Postern would talk to it, and\n"
"say after every FAIL and warn what to do.  Nothing is ever sent: MAIL and\n"
"RCPT are followed by RSET and QUIT.  Exit 0 when no step failed.\n"
"  --starttls            STARTTLS required (default: used when offered)\n"
"  --tls                 implicit TLS (RFC 8314; default port 465)\n"
"  --plain               no TLS\n"
"  --port PORT           the port (default 25, with --tls 465)\n"
"  --servername NAME     SNI and the name the certificate must carry\n"
"                        (default HOST; with --mx each MX host)\n"
"  --trust FILE          also trust the CA certificates of FILE (PEM)\n"
"  --user NAME           try AUTH as NAME, the password from\n"
"  --password-env VAR    the environment variable VAR, or from\n"
"  --password-file F     the first line of F (never in argv)\n"
"  --from ADDR           try MAIL FROM:<ADDR>\n"
"  --to ADDR             try RCPT TO:<ADDR> (repeat for more; MAIL FROM:<>\n"
"                        when there is no --from)\n"
"  --mx DOMAIN           probe every MX host of DOMAIN in preference order\n"
"                        and print a matrix of hosts x steps\n"
"  --policy              say what the destination control of -c FILE would\n"
"                        do with what was found (needs -c)\n"
"  --domain DOMAIN       the recipient domain --policy judges (default the\n"
"                        --mx DOMAIN, else the domain of --to, else HOST)\n"
"  --quick               skip the checks on connections of their own (TLS\n"
"                        1.0/1.1 accepted?  STARTTLS command injection?)\n"
"  --timeout SECS        deadline of each step (default %g)\n"
"  --json                one JSON document (steps: name, status, time_ms,\n"
"                        details, cause, fix) instead of text\n"
"  -c FILE               configuration: tls settings, trust store (+ system\n"
"                        CAs), hostname for EHLO, resolver.local_data,\n"
"                        destinations (default as for serve)\n",
	    PROBE_TIMEOUT);
}

/* ---- options --------------------------------------------------------- */

static int
tls_flag(struct probe_opts *o, const char *a)
{
	int mode = (int)o->tls, rc;

	if ((rc = cmd_tls_flag("probe", a, &mode, &o->tls_set)) != -1) {
		o->tls = (enum probe_tls)mode;
		return rc;
	}
	if (strcmp(a, "--policy") == 0)
		o->policy = 1;
	else if (strcmp(a, "--json") == 0)
		o->json = 1;
	else if (strcmp(a, "--quick") == 0)
		o->quick = 1;
	else
		return -1;
	return 0;
}

/* Where an option's value goes; NULL for --to, --port and --timeout
 * (set in value_option). */
static const char **
value_slot(struct probe_opts *o, const char *name)
{
	static const struct { const char *name; size_t off; } t[] = {
#define S(n, f)	{ n, offsetof(struct probe_opts, f) }
		S("--mx", mx), S("-c", cpath), S("--trust", trust),
		S("--servername", servername), S("--user", user),
		S("--password-env", pw_env), S("--password-file", pw_file),
		S("--from", from), S("--domain", domain),
#undef S
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(name, t[i].name) == 0)
			return (const char **)((char *)o + t[i].off);
	return NULL;
}

static int
value_option(struct probe_opts *o, const char *name, const char *v)
{
	const char **slot = value_slot(o, name);
	char *end;
	long n;

	if (slot != NULL) {
		*slot = v;
		return 0;
	}
	if (strcmp(name, "--to") == 0) {
		if (o->nrcpts >= PROBE_RCPTS_MAX)
			return USAGE("too many --to (at most %d)",
			    PROBE_RCPTS_MAX);
		o->rcpts[o->nrcpts++] = v;
	} else if (strcmp(name, "--port") == 0) {
		n = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 1 || n > 65535)
			return USAGE("bad --port '%s' (1-65535)", v);
		o->port = (int)n;
	} else {
		o->timeout = strtod(v, &end);
		if (*v == '\0' || *end != '\0' || !(o->timeout > 0) ||
		    o->timeout > 3600)
			return USAGE("bad --timeout '%s' (seconds, > 0)", v);
	}
	return 0;
}

static int
is_value_option(const char *name)
{
	struct probe_opts dummy;

	return value_slot(&dummy, name) != NULL || strcmp(name, "--to") == 0 ||
	    strcmp(name, "--port") == 0 || strcmp(name, "--timeout") == 0;
}

static int
parse_args(struct probe_opts *o, int argc, char **argv)
{
	const char *a, *v;
	char name[32];
	int i, rc;

	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (a[0] != '-') {
			if (o->target != NULL)
				return USAGE("one HOST[:PORT] only ('%s' and "
				    "'%s')", o->target, a);
			o->target = a;
			continue;
		}
		if ((rc = tls_flag(o, a)) != -1) {
			if (rc != 0)
				return rc;
			continue;
		}
		v = a[1] == '-' ? strchr(a, '=') : NULL;
		(void)bsnprintf(name, sizeof(name), "%.*s", v != NULL ?
		    (int)(v - a) : (int)strlen(a), a);
		if (!is_value_option(name))
			return USAGE("unknown option '%s'", a);
		if (v != NULL)
			v++;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return USAGE("%s needs a value", name);
		if ((rc = value_option(o, name, v)) != 0)
			return rc;
	}
	return 0;
}

/* A value that goes into a command line or a query: printable, no
 * spaces, no angle brackets. */
static int
bad_word(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f ||
		    s[i] == '<' || s[i] == '>')
			return 1;
	return i == 0 || i > 255;
}

static int
check_addresses(struct probe_opts *o)
{
	size_t i;

	if (o->from != NULL && o->from[0] != '\0' && bad_word(o->from))
		return USAGE("bad --from '%s'", o->from);
	for (i = 0; i < o->nrcpts; i++)
		if (bad_word(o->rcpts[i]) || strchr(o->rcpts[i], '@') == NULL)
			return USAGE("bad --to '%s' (an address)",
			    o->rcpts[i]);
	if (o->from != NULL && o->nrcpts == 0)
		return USAGE("--from goes with --to ADDR (the RCPT to try)");
	if (o->from == NULL && o->nrcpts > 0)
		o->from = "";		/* MAIL FROM:<> */
	return -1;
}

/* Combinations, after every option is known. */
static int
check_args(struct probe_opts *o)
{
	if ((o->target == NULL) == (o->mx == NULL))
		return USAGE(o->target == NULL ? "HOST[:PORT] or --mx DOMAIN "
		    "is missing" : "give HOST[:PORT] or --mx DOMAIN, not "
		    "both");
	if (o->target != NULL && cmd_host_port(o->target, o->host,
	    sizeof(o->host), &o->port) == -1)
		return USAGE("bad HOST[:PORT] '%s'", o->target);
	if (o->mx != NULL && bad_word(o->mx))
		return USAGE("bad --mx '%s'", o->mx);
	if (o->servername != NULL && bad_word(o->servername))
		return USAGE("bad --servername '%s'", o->servername);
	if (o->domain != NULL && bad_word(o->domain))
		return USAGE("bad --domain '%s'", o->domain);
	if (o->policy && o->cpath == NULL)
		return USAGE("--policy needs -c FILE (the configuration whose "
		    "destinations it judges by)");
	if (o->domain != NULL && !o->policy)
		return USAGE("--domain goes with --policy");
	if (o->pw_env != NULL && o->pw_file != NULL)
		return USAGE("--password-env and --password-file exclude each "
		    "other");
	if ((o->pw_env != NULL || o->pw_file != NULL) && o->user == NULL)
		return USAGE("a password needs --user NAME");
	if (o->user != NULL && o->pw_env == NULL && o->pw_file == NULL)
		return USAGE("--user needs --password-env VAR or "
		    "--password-file F");
	if (o->user != NULL && bad_word(o->user))
		return USAGE("bad --user");
	if (o->tls == PROBE_TLS_PLAIN && (o->trust || o->servername))
		return USAGE("--plain uses no TLS: --trust and --servername "
		    "do not apply");
	if (o->port == 0)
		o->port = o->tls == PROBE_TLS_IMPLICIT ? 465 : 25;
	if (o->timeout == 0)
		o->timeout = PROBE_TIMEOUT;
	return check_addresses(o);
}

static int
load_password(const struct probe_opts *o, char **pw)
{
	const char *v;
	size_t len;

	*pw = NULL;
	if (o->user == NULL)
		return -1;
	if (o->pw_file != NULL) {
		if ((*pw = read_file(o->pw_file, &len, 4096)) == NULL)
			return cmd_fail("probe: cannot read --password-file "
			    "%s: %s (check the path and its permissions)",
			    o->pw_file, strerror(errno));
		(*pw)[strcspn(*pw, "\r\n")] = '\0';
	} else if ((v = getenv(o->pw_env)) != NULL)
		*pw = xstrdup(v);
	if (*pw == NULL || (*pw)[0] == '\0')
		return USAGE("no password for \"%s\": %s is %s", o->user,
		    o->pw_file != NULL ? o->pw_file : o->pw_env,
		    o->pw_file != NULL ? "empty" : "not set or empty");
	return -1;
}

/* ---- the run --------------------------------------------------------- */

struct probe_cmd {
	struct probe_opts	*o;
	struct conf		*conf;
	struct probe_settings	 set;
	struct event_base	*base;
	struct probe_report	*reps;
	size_t			 nreps;
	/* --mx: the hosts, filled from the loop */
	struct dns_hosts	 mx;
	struct dns_host		*mxhosts;
	int			 mx_done;
};

static const char *
mode_name(enum probe_tls t)
{
	static const char *const n[] = { "STARTTLS when offered",
	    "STARTTLS required", "implicit TLS", "plain, no TLS" };

	return n[t];
}

/* The recipient domain --policy judges. */
static const char *
policy_domain(const struct probe_opts *o)
{
	const char *at;

	if (o->domain != NULL)
		return o->domain;
	if (o->mx != NULL)
		return o->mx;
	if (o->nrcpts > 0 && (at = strrchr(o->rcpts[0], '@')) != NULL)
		return at + 1;
	return o->host;
}

static void
one_host(struct probe_cmd *p, const char *host, int pref)
{
	struct probe_opts *o = p->o;
	struct probe_report *r;

	p->reps = xrealloc(p->reps, (p->nreps + 1) * sizeof(*p->reps));
	r = &p->reps[p->nreps++];
	memset(r, 0, sizeof(*r));
	bstrlcpy(r->host, host, sizeof(r->host));
	r->port = o->port;
	r->pref = pref;
	p->set.host = host;
	if (!o->json && o->mx != NULL)
		printf("\n== %s (MX %d) port %d\n", host, pref, o->port);
	probe_run(p->base, &p->set, r);
	if (o->policy) {
		probe_policy_step(r, &p->set, p->conf, policy_domain(o));
		if (!o->json)
			probe_print_step(stdout, &r->steps[r->nsteps - 1]);
	}
}

static void
mx_cb(void *arg, const struct dns_hosts *h)
{
	struct probe_cmd *p = arg;

	p->mx = *h;
	if (h->status == DNS_OK) {
		p->mxhosts = xcalloc(h->nhosts, sizeof(*h->hosts));
		memcpy(p->mxhosts, h->hosts, h->nhosts * sizeof(*h->hosts));
	}
	p->mx_done = 1;
	event_base_loopbreak(p->base);
}

/* The MX list failed: a report of its own with one "mx" step. */
static void
mx_failed(struct probe_cmd *p, double ms)
{
	struct probe_report *r;
	struct probe_step *st;
	struct failcause_ctx x;

	p->reps = xcalloc(1, sizeof(*p->reps));
	p->nreps = 1;
	r = &p->reps[0];
	bstrlcpy(r->host, p->o->mx, sizeof(r->host));
	r->port = p->o->port;
	r->pref = -1;
	st = probe_step_add(r, "mx");
	st->ms = ms;
	st->status = PROBE_FAIL;
	probe_detail(st, "%s", p->mx.why);
	probe_fctx(r, &p->set, &x);
	x.detail = p->mx.why;
	probe_problem(st, PROBE_FAIL, p->mx.status == DNS_NULLMX ?
	    FC_REJECTED : FC_NAME_NOT_FOUND, &x);
	if (!p->o->json)
		probe_print_step(stdout, st);
}

static void
run_mx(struct probe_cmd *p)
{
	double t0 = mono_now();
	size_t i;

	(void)dns_mx(p->o->mx, p->o->timeout, mx_cb, p);
	if (!p->mx_done)
		event_base_dispatch(p->base);
	if (p->mx.status != DNS_OK) {
		mx_failed(p, (mono_now() - t0) * 1000.0);
		return;
	}
	if (!p->o->json) {
		printf("MX hosts of %s:", p->o->mx);
		for (i = 0; i < p->mx.nhosts; i++)
			printf(" %d %s%s", p->mxhosts[i].pref,
			    p->mxhosts[i].name, i + 1 < p->mx.nhosts ? "," :
			    "");
		printf(" (%.0f ms)\n", (mono_now() - t0) * 1000.0);
	}
	for (i = 0; i < p->mx.nhosts; i++)
		one_host(p, p->mxhosts[i].name, p->mxhosts[i].pref);
}

static void
print_end(struct probe_cmd *p)
{
	int fails, warns;

	probe_counts(p->reps, p->nreps, &fails, &warns);
	if (p->o->json) {
		probe_print_json(stdout, p->o->mx, p->reps, p->nreps,
		    mode_name(p->o->tls));
		return;
	}
	if (p->o->mx != NULL && p->mx.status == DNS_OK) {
		printf("\n");
		probe_print_matrix(stdout, p->reps, p->nreps);
	}
	printf("\nresult: %s (%d step%s failed, %d warning%s)\n",
	    fails > 0 ? "FAIL" : "ok", fails, fails == 1 ? "" : "s", warns,
	    warns == 1 ? "" : "s");
}

static void
fill_settings(struct probe_cmd *p, SSL_CTX *ctx, const char *password)
{
	struct probe_opts *o = p->o;
	struct probe_settings *s = &p->set;

	s->port = o->port;
	s->tls = o->tls;
	s->servername = o->servername;
	s->helo = p->conf->hostname != NULL && p->conf->hostname[0] != '\0' ?
	    p->conf->hostname : "localhost";
	s->user = o->user;
	s->password = password;
	s->from = o->from;
	s->rcpts = o->rcpts;
	s->nrcpts = o->nrcpts;
	s->ctx = ctx;
	s->timeout = o->timeout;
	s->extra = !o->quick;
	s->progress = !o->json;
	s->out = stdout;
}

static int
probe_all(struct probe_cmd *p, const char *password)
{
	struct probe_opts *o = p->o;
	SSL_CTX *ctx;
	char why[512];
	int fails, warns;
	size_t i;

	if ((ctx = cmd_tls_client(p->conf, 1, 1, o->trust, "probe")) == NULL)
		return 1;
	if ((p->base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	if (dns_init(p->base, p->conf, why, sizeof(why)) == -1)
		fprintf(stderr, "postern: probe: DNS resolver: %s (names will "
		    "not resolve; addresses still work)\n", why);
	fill_settings(p, ctx, password);
	if (o->mx != NULL)
		run_mx(p);
	else {
		if (!o->json)
			printf("probe %s port %d (%s), EHLO %s\n", o->host,
			    o->port, mode_name(o->tls), p->set.helo);
		one_host(p, o->host, -1);
	}
	print_end(p);
	probe_counts(p->reps, p->nreps, &fails, &warns);
	for (i = 0; i < p->nreps; i++)
		probe_report_free(&p->reps[i]);
	free(p->reps);
	free(p->mxhosts);
	dns_shutdown();
	event_base_free(p->base);
	SSL_CTX_free(ctx);
	return fails > 0 ? 1 : 0;
}

/* `postern probe`: options, configuration, run, exit status. */
int
cmd_probe(int argc, char **argv)
{
	struct probe_opts o;
	struct probe_cmd p;
	char *password = NULL;
	int i, rc;

	memset(&o, 0, sizeof(o));
	memset(&p, 0, sizeof(p));
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
	if ((rc = parse_args(&o, argc, argv)) != 0 ||
	    (rc = check_args(&o)) != -1 ||
	    (rc = load_password(&o, &password)) != -1)
		goto done;
	p.o = &o;
	if ((p.conf = conf_load_for_command(o.cpath)) == NULL) {
		rc = 1;
		goto done;
	}
	rc = probe_all(&p, password);
	if (fflush(stdout) == EOF && rc == 0)
		rc = cmd_fail("probe: stdout: %s (check where the output goes)",
		    strerror(errno));
done:
	if (password != NULL)
		secure_free(password, strlen(password));
	conf_free(p.conf);
	return rc;
}
