/*
 * cmd_send.c - `postern send`: the injection client.  Options and the
 * environment (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD), the
 * message (an RFC 5322 file or stdin, or built from --from --to ...,
 * prepared by msg_prep, signed / encrypted by smime), --dry-run, and the
 * output: SPEC's three lines, or on a refusal the server's reply verbatim
 * then one `fix:` line from the table of causes (failcause.h), and for
 * --count/--concurrency a summary (messages/second, failures by reply
 * code, latency p50/p99).  The connections are send_driver.c's.
 *
 * Order (SPEC: options before anything else): every option is parsed and
 * checked, then the message is made, then -c's configuration is read
 * (TLS settings, trust store), then the server is contacted.
 * Secrets: the password comes from the environment, --password-env or
 * --password-file, never argv; it is shown as "****" and wiped at exit.
 */
#include <sys/socket.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "cmd.h"
#include "conf.h"
#include "failcause.h"
#include "mailfmt.h"
#include "msg_build.h"
#include "msg_prep.h"
#include "send_driver.h"
#include "send_http.h"
#include "smime.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"

#define SEND_MSG_MAX		(100UL * 1024 * 1024)
#define SEND_LIST_MAX		1000
#define SEND_COUNT_MAX		10000000UL
#define SEND_CONC_MAX		1000UL
#define SEND_TIMEOUT		30.0
#define USAGE(...)		cmd_usage_error("send", NULL, __VA_ARGS__)

struct strlist {
	const char	*v[SEND_LIST_MAX];
	size_t		 n;
};

struct send_opts {
	const char	*file;		/* FILE or "-" */
	const char	*host, *user, *pw_env, *pw_file, *cpath;
	const char	*trust, *servername, *keys, *output;
	const char	*from, *subject, *body, *body_file, *html, *env_from;
	const char	*http;		/* --http URL */
	char		 http_host[256], http_path[512];
	struct strlist	 to, cc, bcc, attach, env_to;
	int		 port;
	enum send_tls	 tls;
	int		 tls_set, insecure, sign, encrypt, dry_run, quiet;
	enum smime_cipher cipher;
	unsigned long	 count, concurrency;
	int		 bulk;
	double		 timeout;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: postern send [FILE|-] [options]\n"
"Inject one message (or --count copies) over SMTP.\n"
"Target (defaults from the environment):\n"
"  --host HOST           server (SMTP_HOST; required)\n"
"  --port PORT           port (SMTP_PORT; default 25)\n"
"  --user NAME           AUTH user (SMTP_USER); password from SMTP_PASSWORD,\n"
"  --password-env VAR    or from the variable VAR,\n"
"  --password-file F     or from the first line of F (never in argv)\n"
"  --starttls            STARTTLS required (default: used when offered)\n"
"  --tls                 implicit TLS (RFC 8314, port 465)\n"
"  --plain               no TLS; credentials may then go in clear\n"
"  --trust FILE          also trust this CA (PEM) besides the trust store\n"
"  --servername NAME     SNI and the name the certificate must carry\n"
"  --insecure            do not verify the server certificate\n"
"  --http URL            through Postern's HTTPS API instead of SMTP\n"
"                        (https://HOST[:PORT][/PATH]; no SMTP_HOST needed)\n"
"  -c FILE               configuration: TLS settings, trust store of its\n"
"                        data_dir (default as for serve)\n"
"  --timeout SECS        deadline of each step (default %g)\n"
"Message: FILE (RFC 5322; - = stdin), or built from\n"
"  --from ADDR --to ADDR... --cc ADDR... --bcc ADDR... --subject TEXT\n"
"  --body TEXT | --body-file F   --html F   --attach F...\n"
"  --env-from ADDR --env-to ADDR...   envelope (default: From:, To:+Cc:+Bcc:)\n"
"S/MIME (RFC 8551):\n"
"  --sign --encrypt      sign, encrypt, or both (sign first)\n"
"  --keys DIR            <from-address>.pem = key + certificate (+ chain),\n"
"                        <to-address>.crt = recipient certificate\n"
"  --cipher aes-256-cbc|aes-256-gcm   (default aes-256-cbc)\n"
"Output and bulk:\n"
"  --dry-run [--output F]  write the final message, send nothing\n"
"  --quiet               print nothing but errors\n"
"  --count N --concurrency C   N copies over C connections; prints a summary\n",
	    SEND_TIMEOUT);
}

static int
parse_ulong(const char *v, unsigned long lo, unsigned long hi,
    unsigned long *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || v[0] == '-' ||
	    n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* Options that take a value: where it goes. */
static const char **
value_slot(struct send_opts *o, const char *name, struct strlist **list)
{
	static const struct { const char *name; size_t off; int list; } t[] = {
#define S(n, f)	{ n, offsetof(struct send_opts, f), 0 }
#define L(n, f)	{ n, offsetof(struct send_opts, f), 1 }
		S("--host", host), S("--user", user),
		S("--password-env", pw_env), S("--password-file", pw_file),
		S("-c", cpath), S("--trust", trust),
		S("--servername", servername), S("--keys", keys),
		S("--output", output), S("--from", from),
		S("--subject", subject), S("--body", body),
		S("--body-file", body_file), S("--html", html),
		S("--env-from", env_from), S("--http", http),
		L("--to", to), L("--cc", cc),
		L("--bcc", bcc), L("--attach", attach), L("--env-to", env_to),
#undef S
#undef L
	};
	size_t i;

	*list = NULL;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (strcmp(name, t[i].name) != 0)
			continue;
		if (!t[i].list)
			return (const char **)((char *)o + t[i].off);
		*list = (struct strlist *)((char *)o + t[i].off);
		return NULL;
	}
	return NULL;
}

static int
is_numeric(const char *name)
{
	return strcmp(name, "--port") == 0 || strcmp(name, "--cipher") == 0 ||
	    strcmp(name, "--count") == 0 ||
	    strcmp(name, "--concurrency") == 0 ||
	    strcmp(name, "--timeout") == 0;
}

/* --port, --cipher, --count, --concurrency, --timeout. */
static int
numeric_option(struct send_opts *o, const char *name, const char *v)
{
	unsigned long n;
	char *end;

	if (strcmp(name, "--port") == 0) {
		if (parse_ulong(v, 1, 65535, &n) == -1)
			return USAGE("bad --port '%s' (1-65535)", v);
		o->port = (int)n;
	} else if (strcmp(name, "--cipher") == 0) {
		if (strcmp(v, "aes-256-cbc") == 0)
			o->cipher = SMIME_AES256_CBC;
		else if (strcmp(v, "aes-256-gcm") == 0)
			o->cipher = SMIME_AES256_GCM;
		else
			return USAGE("bad --cipher '%s' (aes-256-cbc or "
			    "aes-256-gcm)", v);
	} else if (strcmp(name, "--count") == 0) {
		if (parse_ulong(v, 1, SEND_COUNT_MAX, &o->count) == -1)
			return USAGE("bad --count '%s' (1-%lu)", v,
			    SEND_COUNT_MAX);
		o->bulk = 1;
	} else if (strcmp(name, "--concurrency") == 0) {
		if (parse_ulong(v, 1, SEND_CONC_MAX, &o->concurrency) == -1)
			return USAGE("bad --concurrency '%s' (1-%lu)", v,
			    SEND_CONC_MAX);
		o->bulk = 1;
	} else {
		o->timeout = strtod(v, &end);
		if (*v == '\0' || *end != '\0' || !(o->timeout > 0) ||
		    o->timeout > 86400)
			return USAGE("bad --timeout '%s' (seconds, > 0)",
			    v);
	}
	return 0;
}

static int
flag_option(struct send_opts *o, const char *a)
{
	static const char *tls[] = { "--starttls", "--tls", "--plain" };
	static const enum send_tls mode[] = { SEND_TLS_STARTTLS,
	    SEND_TLS_IMPLICIT, SEND_TLS_PLAIN };
	size_t i;

	for (i = 0; i < 3; i++)
		if (strcmp(a, tls[i]) == 0) {
			if (o->tls_set && o->tls != mode[i])
				return USAGE("--starttls, --tls and "
				    "--plain exclude each other");
			o->tls = mode[i];
			o->tls_set = 1;
			return 0;
		}
	if (strcmp(a, "--insecure") == 0)
		o->insecure = 1;
	else if (strcmp(a, "--sign") == 0)
		o->sign = 1;
	else if (strcmp(a, "--encrypt") == 0)
		o->encrypt = 1;
	else if (strcmp(a, "--dry-run") == 0)
		o->dry_run = 1;
	else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
		o->quiet = 1;
	else
		return -1;
	return 0;
}

static int
parse_args(struct send_opts *o, int argc, char **argv)
{
	struct strlist *list;
	const char **slot, *a, *v;
	char name[32];
	int i, rc;

	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (o->file != NULL)
				return USAGE("one message FILE only "
				    "('%s' and '%s')", o->file, a);
			o->file = a;
			continue;
		}
		if ((rc = flag_option(o, a)) != -1) {
			if (rc != 0)
				return rc;
			continue;
		}
		v = strchr(a, '=');
		(void)bsnprintf(name, sizeof(name), "%.*s", v != NULL && a[1] ==
		    '-' ? (int)(v - a) : (int)strlen(a), a);
		slot = value_slot(o, name, &list);
		if (slot == NULL && list == NULL && !is_numeric(name))
			return USAGE("unknown option '%s'", a);
		if (v != NULL && a[1] == '-')
			v++;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return USAGE("%s needs a value", name);
		if (list != NULL) {
			if (list->n >= SEND_LIST_MAX)
				return USAGE("too many %s", name);
			list->v[list->n++] = v;
		} else if (slot != NULL)
			*slot = v;
		else if ((rc = numeric_option(o, name, v)) != 0)
			return rc;
	}
	return 0;
}

/* Combinations, after every option is known. */
static int
check_args(struct send_opts *o)
{
	int build = o->from != NULL || o->to.n > 0 || o->cc.n > 0 ||
	    o->bcc.n > 0 || o->subject != NULL || o->body != NULL ||
	    o->body_file != NULL || o->html != NULL || o->attach.n > 0;

	if (o->file != NULL && build)
		return USAGE("give a message FILE or build one with "
		    "--from/--to/..., not both");
	if (o->file == NULL && !build)
		return USAGE("no message: give FILE, - for stdin, or "
		    "--from ADDR --to ADDR [--subject --body ...]");
	if (build && o->from == NULL && o->env_from == NULL)
		return USAGE("--from ADDR is missing");
	if (build && o->to.n + o->cc.n + o->bcc.n + o->env_to.n == 0)
		return USAGE("no recipient: --to, --cc or --bcc");
	if (o->body != NULL && o->body_file != NULL)
		return USAGE("--body and --body-file exclude each other");
	if ((o->sign || o->encrypt) && o->keys == NULL)
		return USAGE("--sign and --encrypt need --keys DIR");
	if (o->output != NULL && !o->dry_run)
		return USAGE("--output goes with --dry-run");
	if (o->pw_env != NULL && o->pw_file != NULL)
		return USAGE("--password-env and --password-file exclude "
		    "each other");
	if (o->insecure && o->trust != NULL)
		return USAGE("--insecure and --trust exclude each other");
	if (o->tls == SEND_TLS_PLAIN && (o->trust || o->servername ||
	    o->insecure))
		return USAGE("--plain uses no TLS: --trust, --servername "
		    "and --insecure do not apply");
	if (o->http != NULL && o->tls_set)
		return USAGE("--http is always TLS: --starttls, --tls and "
		    "--plain do not apply");
	if (o->count == 0)
		o->count = 1;
	if (o->concurrency == 0)
		o->concurrency = 1;
	return -1;
}

/* ---- target and credentials ----------------------------------------- */

struct target {
	const char	*host;
	int		 port;
	const char	*user;
	char		*password;	/* malloc'd, wiped */
};

/* --http https://HOST[:PORT][/PATH]: the API's host, port and path. */
static int
target_from_url(struct send_opts *o, struct target *t)
{
	struct evhttp_uri *u = evhttp_uri_parse(o->http);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path = u ? evhttp_uri_get_path(u) : NULL;

	if (scheme == NULL || ascii_casecmp(scheme, "https") != 0 ||
	    host == NULL || host[0] == '\0' ||
	    bstrlcpy(o->http_host, host, sizeof(o->http_host)) >=
	    sizeof(o->http_host)) {
		evhttp_uri_free(u);
		return USAGE("--http wants https://HOST[:PORT][/PATH] (the API "
		    "speaks TLS only)");
	}
	bstrlcpy(o->http_path, path != NULL && path[0] != '\0' &&
	    strcmp(path, "/") != 0 ? path : "/v1/messages",
	    sizeof(o->http_path));
	t->host = o->http_host;
	t->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 443;
	evhttp_uri_free(u);
	t->user = o->user != NULL ? o->user : getenv("SMTP_USER");
	if (t->user != NULL && t->user[0] == '\0')
		t->user = NULL;
	return -1;
}

static int
target_from_env(struct send_opts *o, struct target *t)
{
	const char *v;
	unsigned long n;

	if (o->http != NULL)
		return target_from_url(o, t);
	t->host = o->host != NULL ? o->host : getenv("SMTP_HOST");
	if (t->host == NULL || t->host[0] == '\0') {
		/* SPEC's exact words */
		fprintf(stderr, "Environment var SMTP_HOST not set - "
		    "stopping\n");
		return 2;
	}
	t->port = o->port;
	if (t->port == 0 && (v = getenv("SMTP_PORT")) != NULL && v[0]) {
		if (parse_ulong(v, 1, 65535, &n) == -1)
			return USAGE("SMTP_PORT '%s' is not a port "
			    "(1-65535)", v);
		t->port = (int)n;
	}
	if (t->port == 0)
		t->port = o->tls == SEND_TLS_IMPLICIT ? 465 : 25;
	t->user = o->user != NULL ? o->user : getenv("SMTP_USER");
	if (t->user != NULL && t->user[0] == '\0')
		t->user = NULL;
	return -1;
}

static int
load_password(struct send_opts *o, struct target *t)
{
	const char *v;
	size_t len;

	if (t->user == NULL) {
		if (o->pw_env != NULL || o->pw_file != NULL)
			return USAGE("a password needs a user (--user or "
			    "SMTP_USER)");
		return -1;
	}
	if (o->pw_file != NULL) {
		if ((t->password = read_file(o->pw_file, &len, 4096)) == NULL)
			return cmd_fail("send: cannot read --password-file "
			    "%s: %s (check the path and its permissions)",
			    o->pw_file, strerror(errno));
		t->password[strcspn(t->password, "\r\n")] = '\0';
	} else {
		v = getenv(o->pw_env != NULL ? o->pw_env : "SMTP_PASSWORD");
		if (v != NULL)
			t->password = xstrdup(v);
	}
	if (t->password == NULL || t->password[0] == '\0')
		return USAGE("no password for user \"%s\": set %s, or "
		    "give --password-env VAR or --password-file F", t->user,
		    o->pw_env != NULL ? o->pw_env : "SMTP_PASSWORD");
	return -1;
}

/* ---- the message ----------------------------------------------------- */

struct message {
	struct msg_prep	 prep;
	struct strbuf	 final;		/* after S/MIME */
	const char	*label;		/* for the Sending line */
	const char	*from;		/* envelope */
	const char	**rcpts;
	size_t		 nrcpts;
	size_t		 mid_digits;
};

static char *
slurp(const char *path, size_t *len, const char *what)
{
	char *data = read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path,
	    len, SEND_MSG_MAX);

	if (data == NULL)
		cmd_fail("send: cannot read %s %s: %s (%s)", what, path,
		    errno == EFBIG ? "bigger than 100 MiB" : strerror(errno),
		    errno == EFBIG ? "send it some other way" :
		    "check the path and its permissions");
	return data;
}

static void
free_parts(struct msg_build_part *p, size_t n, char *body, char *html)
{
	size_t i;

	for (i = 0; i < n; i++)
		free((char *)p[i].data);
	free(p);
	free(body);
	free(html);
}

static int
build_message(struct send_opts *o, struct strbuf *out)
{
	struct msg_build b;
	struct msg_build_part *parts;
	char *body = NULL, *html = NULL, why[256], dom[256] = "localhost";
	const char *slash, *at;
	size_t i, blen = 0, hlen = 0;
	int rc = -1;

	parts = xcalloc(o->attach.n + 1, sizeof(*parts));
	if ((o->body_file != NULL && (body = slurp(o->body_file, &blen,
	    "--body-file")) == NULL) || (o->html != NULL &&
	    (html = slurp(o->html, &hlen, "--html")) == NULL))
		goto done;
	for (i = 0; i < o->attach.n; i++) {
		slash = strrchr(o->attach.v[i], '/');
		parts[i].name = slash != NULL ? slash + 1 : o->attach.v[i];
		if ((parts[i].data = slurp(o->attach.v[i], &parts[i].len,
		    "--attach")) == NULL)
			goto done;
	}
	memset(&b, 0, sizeof(b));
	b.from = o->from;
	b.to = o->to.v;
	b.nto = o->to.n;
	b.cc = o->cc.v;
	b.ncc = o->cc.n;
	b.subject = o->subject;
	b.text = o->body != NULL ? o->body : body;
	b.text_len = o->body != NULL ? strlen(o->body) : blen;
	b.html = html;
	b.html_len = hlen;
	b.attach = parts;
	b.nattach = o->attach.n;
	/* the Message-ID's right side: the sender's domain */
	if ((at = strrchr(o->from != NULL ? o->from : o->env_from, '@')) !=
	    NULL && at[1] != '\0' && at[1] != '>')
		(void)bsnprintf(dom, sizeof(dom), "%.*s", (int)strcspn(at + 1,
		    "> \t"), at + 1);
	b.hostname = dom;
	b.now = wall_now();
	if (msg_build_run(&b, out, why, sizeof(why)) == -1)
		rc = cmd_fail("send: cannot build the message: %s (try "
		    "again)", why);
	else
		rc = 0;
done:
	free_parts(parts, o->attach.n, body, html);
	return rc;
}

/* The Message-ID of a bulk copy: SEND_MID_DIGITS digits numbered per
 * copy, in place, so each copy has its own. */
static void
number_message_id(struct message *m)
{
	struct strbuf *s = &m->final, out = STRBUF_INIT;
	struct msg_field f;
	char hex[17];
	size_t pos = 0, head = 0, tail = 0;
	const char *dom = m->from != NULL ? strrchr(m->from, '@') : NULL;

	if (mailfmt_rand_hex(hex, 8) == -1)
		bstrlcpy(hex, "postern", sizeof(hex));
	while (msg_field_next(s->s, s->len, &pos, &f) == 1)
		if (msg_field_is(s->s, &f, "Message-ID")) {
			head = f.off;
			tail = f.off + f.len;
			break;
		}
	strbuf_add(&out, s->s, head);
	strbuf_printf(&out, "Message-ID: <%s.", hex);
	m->mid_digits = out.len;
	strbuf_printf(&out, "%0*d@%s>\r\n", SEND_MID_DIGITS, 0,
	    dom != NULL && dom[1] != '\0' ? dom + 1 : "localhost");
	strbuf_add(&out, s->s + tail, s->len - tail);
	strbuf_free(s);
	*s = out;
}

/* Sign and/or encrypt for the header's sender and recipients (the
 * envelope's when the header names none).  0 or -1 (said). */
static int
apply_smime(struct send_opts *o, struct message *m)
{
	struct smime_request rq;
	char why[512];

	memset(&rq, 0, sizeof(rq));
	rq.ops = (o->sign ? SMIME_SIGN : 0) | (o->encrypt ? SMIME_ENCRYPT : 0);
	rq.cipher = o->cipher;
	rq.keys_dir = o->keys;
	rq.signer = m->prep.from != NULL ? m->prep.from : m->from;
	rq.rcpts = m->prep.nrcpts > 0 ? (const char *const *)m->prep.rcpts :
	    m->rcpts;
	rq.nrcpts = m->prep.nrcpts > 0 ? m->prep.nrcpts : m->nrcpts;
	if (smime_apply(&rq, m->prep.msg.s, m->prep.msg.len, &m->final, why,
	    sizeof(why)) == -1) {
		cmd_fail("send: %s", why);
		return -1;
	}
	return 0;
}

/* Read or build, prepare, S/MIME.  -1 to go on, else the exit status. */
static int
make_message(struct send_opts *o, struct message *m)
{
	struct strbuf raw = STRBUF_INIT;
	char *data = NULL, why[512];
	size_t len = 0;
	int rc = 1;

	if (o->file != NULL) {
		if ((data = slurp(o->file, &len, "message")) == NULL)
			return 1;
		m->label = strcmp(o->file, "-") == 0 ? "stdin" : o->file;
	} else {
		if (build_message(o, &raw) == -1)
			return 1;
		data = strbuf_detach(&raw, &len);
		m->label = "message";
	}
	if (msg_prep_run(&m->prep, data, len, o->bcc.v, o->bcc.n, NULL,
	    wall_now(), why, sizeof(why)) == -1) {
		cmd_fail("send: %s: %s (fix the message)", m->label, why);
		goto done;
	}
	m->from = o->env_from != NULL ? o->env_from : m->prep.from;
	if (o->env_to.n > 0) {
		m->rcpts = o->env_to.v;
		m->nrcpts = o->env_to.n;
	} else {
		m->rcpts = (const char **)m->prep.rcpts;
		m->nrcpts = m->prep.nrcpts;
	}
	if (m->from == NULL) {
		rc = USAGE("no sender: the message has no usable From: "
		    "(give --env-from ADDR)");
		goto done;
	}
	if (m->nrcpts == 0) {
		rc = USAGE("no recipient: the message has no To:, Cc: or "
		    "Bcc: (give --env-to ADDR)");
		goto done;
	}
	if (o->sign || o->encrypt) {
		if (apply_smime(o, m) == -1)
			goto done;
	} else
		strbuf_add(&m->final, m->prep.msg.s, m->prep.msg.len);
	if (o->bulk && o->count > 1)
		number_message_id(m);
	rc = -1;
done:
	free(data);
	return rc;
}

static int
dry_run(struct send_opts *o, struct message *m)
{
	FILE *fp = stdout;

	if (o->output != NULL && (fp = fopen(o->output, "w")) == NULL)
		return cmd_fail("send: cannot write %s: %s (check the path)",
		    o->output, strerror(errno));
	if (fwrite(m->final.s, 1, m->final.len, fp) != m->final.len ||
	    (fp != stdout ? fclose(fp) : fflush(fp)) == EOF)
		return cmd_fail("send: cannot write %s: %s (check the disk)",
		    o->output != NULL ? o->output : "stdout", strerror(errno));
	return 0;
}

/* ---- talking to the server ------------------------------------------ */

struct run {
	struct send_opts *o;
	struct target	*t;
	struct message	*m;
};

/* The first connection is ready: SPEC's first two lines. */
static void
opened(void *arg, const char *mode)
{
	struct run *r = arg;

	if (r->o->quiet)
		return;
	if (r->o->http != NULL)
		printf("Opened HTTPS connection to %s, port %d", r->t->host,
		    r->t->port);
	else
		printf("Opened SMTP connection (%s) to %s, port %d", mode,
		    r->t->host, r->t->port);
	if (r->t->user != NULL)
		printf(", user=\"%s\", password=\"****\"", r->t->user);
	printf("\nSending %s From: %s To: %s", r->m->label,
	    r->m->prep.hdr_from, r->m->prep.hdr_to);
	if (r->o->bulk)
		printf(" (%lu copies over %lu connections)", r->o->count,
		    r->o->concurrency < r->o->count ? r->o->concurrency :
		    r->o->count);
	printf("\n");
	fflush(stdout);
}

/* The refusal verbatim, then what failed and the fix. */
static void
report_failure(struct send_outcome *out)
{
	struct strbuf fix = STRBUF_INIT;

	if (out->reply.len > 0)
		fprintf(stderr, "%s\n", out->reply.s);
	if (out->what.len > 0)
		fprintf(stderr, "postern: send: %s\n", out->what.s);
	failcause_fix(out->cause, &out->fctx, &fix);
	if (fix.len > 0)
		fprintf(stderr, "fix: %s\n", fix.s);
	strbuf_free(&fix);
}

static void
report_bulk(struct send_opts *o, struct send_outcome *out)
{
	size_t i;

	printf("Sent %lu of %lu messages in %.3f seconds over %lu "
	    "connections: %.1f messages/second\n", out->sent, o->count,
	    out->elapsed, out->connections, out->elapsed > 0 ?
	    (double)out->sent / out->elapsed : 0.0);
	printf("Failures by reply code:");
	if (out->ncodes == 0)
		printf(" none");
	for (i = 0; i < out->ncodes; i++) {
		if (out->codes[i].code == 0)
			printf("%s no reply %lu", i ? "," : "",
			    out->codes[i].n);
		else
			printf("%s %d %lu", i ? "," : "", out->codes[i].code,
			    out->codes[i].n);
	}
	printf("\nLatency p50 %.1f ms, p99 %.1f ms\n",
	    send_outcome_percentile(out, 50) * 1000,
	    send_outcome_percentile(out, 99) * 1000);
}

static int
resolve(struct target *t, struct addrinfo **ai)
{
	struct addrinfo hints;
	char port[8];
	int e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	(void)bsnprintf(port, sizeof(port), "%d", t->port);
	if ((e = getaddrinfo(t->host, port, &hints, ai)) == 0)
		return 0;
	return e;
}

static SSL_CTX *
client_ctx(struct send_opts *o, const char **helo, struct conf **confp)
{
	struct conf *conf;
	char why[512];
	SSL_CTX *ctx;

	if ((conf = conf_load_for_command(o->cpath)) == NULL)
		return NULL;
	*confp = conf;
	*helo = conf->hostname != NULL && conf->hostname[0] != '\0' ?
	    conf->hostname : "localhost";
	if ((ctx = tls_client_ctx_new(conf, !o->insecure, why,
	    sizeof(why))) == NULL) {
		cmd_fail("send: TLS client set-up: %s (fix the trust store "
		    "with `postern trust list`, or the tls block)", why);
		return NULL;
	}
	if (!o->insecure && o->http == NULL)	/* evhttp: verify in the
						 * handshake */
		tls_client_verify_after(ctx);
	if (o->trust != NULL && tls_client_ctx_add_trust(ctx, o->trust, why,
	    sizeof(why)) == -1) {
		cmd_fail("send: --trust: %s (give a PEM file of CA "
		    "certificates)", why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The driver's settings from the options, target and message. */
static void
fill_settings(struct send_settings *s, struct send_opts *o, struct target *t,
    struct message *m)
{
	s->host = t->host;
	s->port = t->port;
	s->tls = o->tls;
	s->verify = !o->insecure;
	s->servername = o->servername != NULL ? o->servername : t->host;
	s->user = t->user;
	s->password = t->password;
	s->from = m->from;
	s->rcpts = m->rcpts;
	s->nrcpts = m->nrcpts;
	s->msg = m->final.s;
	s->len = m->final.len;
	s->eightbit = mem_has_8bit(m->final.s, m->final.len);
	s->smtputf8 = m->prep.utf8_addrs || mem_has_8bit(m->from,
	    strlen(m->from));
	s->mid_digits = m->mid_digits;
	s->count = o->count;
	s->concurrency = o->concurrency;
	s->timeout = o->timeout > 0 ? o->timeout : SEND_TIMEOUT;
	s->progress = o->bulk && !o->quiet && isatty(STDERR_FILENO);
	s->opened = opened;
}

static int
deliver(struct send_opts *o, struct target *t, struct message *m)
{
	struct run r = { o, t, m };
	struct send_settings s;
	struct send_outcome out;
	struct conf *conf = NULL;
	struct addrinfo *ai = NULL;
	struct strbuf fix = STRBUF_INIT;
	struct failcause_ctx fc = { t->host, t->port, 0, NULL, NULL, NULL,
	    NULL, NULL };
	SSL_CTX *ctx;
	int e, rc;

	memset(&s, 0, sizeof(s));
	if ((ctx = client_ctx(o, &s.helo, &conf)) == NULL) {
		conf_free(conf);
		return 1;
	}
	if (o->insecure && !o->quiet)
		fprintf(stderr, "postern: send: --insecure: the certificate "
		    "of %s is not verified\n", t->host);
	if ((e = resolve(t, &ai)) != 0) {
		fc.detail = gai_strerror(e);
		failcause_fix(FC_NAME_NOT_FOUND, &fc, &fix);
		fprintf(stderr, "postern: send: cannot resolve %s: %s\nfix: "
		    "%s\n", t->host, gai_strerror(e), fix.s);
		strbuf_free(&fix);
		SSL_CTX_free(ctx);
		conf_free(conf);
		return 1;
	}
	fill_settings(&s, o, t, m);
	s.ai = ai;
	s.ctx = ctx;
	s.arg = &r;

	rc = o->http != NULL ? send_http_run(&s, o->http_path, &out) :
	    send_driver_run(&s, &out);
	if (o->bulk && !o->quiet)
		report_bulk(o, &out);
	else if (rc == 0 && !o->quiet)
		printf("OK - in %.3f seconds\n", out.elapsed);
	if (rc != 0)
		report_failure(&out);
	send_outcome_free(&out);
	freeaddrinfo(ai);
	SSL_CTX_free(ctx);
	conf_free(conf);
	return rc;
}

int
cmd_send(int argc, char **argv)
{
	struct send_opts o;
	struct target t;
	struct message m;
	int i, rc;

	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	memset(&m, 0, sizeof(m));
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
	if ((rc = parse_args(&o, argc, argv)) != 0 ||
	    (rc = check_args(&o)) != -1)
		return rc;
	if (!o.dry_run && ((rc = target_from_env(&o, &t)) != -1 ||
	    (rc = load_password(&o, &t)) != -1))
		goto done;
	if ((rc = make_message(&o, &m)) != -1)
		goto done;
	if (o.dry_run)
		rc = dry_run(&o, &m);
	else
		rc = deliver(&o, &t, &m);
	if (fflush(stdout) == EOF && rc == 0)
		rc = cmd_fail("send: stdout: %s (check where the output goes)",
		    strerror(errno));
done:
	if (t.password != NULL)
		secure_free(t.password, strlen(t.password));
	msg_prep_free(&m.prep);
	strbuf_free(&m.final);
	return rc;
}
