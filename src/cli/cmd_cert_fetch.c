/*
 * cmd_cert_fetch.c - `postern cert fetch HOST[:PORT] [--starttls] --out DIR
 * [-c FILE] [--servername NAME] [--timeout SECS]`: connect to an SMTP
 * server (implicit TLS by default, or STARTTLS), take every certificate it
 * presents - without verifying anything, that is the point - and save each
 * as <DIR>/<CN>.pem, ready for `postern trust add`.
 *
 * Called by cmd_cert.c with argv[0] = "fetch".  Exit 0 / 1 / 2 (usage).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cmd.h"
#include "conf.h"
#include "smtp_client.h"
#include "strbuf.h"
#include "tls_ctx.h"
#include "util.h"

#define DEFAULT_TIMEOUT	30.0

struct fetch {
	/* settings */
	char		 host[256];	/* as given (no brackets) */
	char		 port[8];
	char		 target[300];	/* HOST:PORT or [v6]:PORT for messages */
	const char	*servername;	/* SNI, NULL for an IP literal */
	const char	*outdir;
	const char	*helo;
	int		 starttls;
	SSL_CTX		*ctx;
	/* run */
	struct event_base *base;
	struct smtp_client *c;
	struct smtp_client_timeouts to;
	struct addrinfo	*ai_list, *ai;
	int		 rc;		/* -1 running, else the exit status */
	struct smtp_client_result lasterr;
	int		 have_lasterr;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: postern cert fetch HOST[:PORT] [--starttls] --out DIR "
	    "[-c FILE]\n"
	    "                          [--servername NAME] [--timeout SECS]\n"
	    "Save every certificate an SMTP server presents as DIR/<CN>.pem.\n"
	    "  --starttls         plain SMTP, then STARTTLS (default port 25);\n"
	    "                     without it implicit TLS (default port 465)\n"
	    "  --out DIR          where to write the PEM files (created)\n"
	    "  --servername NAME  SNI name to send (default: HOST)\n"
	    "  --timeout SECS     deadline of each step (default %g)\n"
	    "  -c FILE            configuration (TLS settings, EHLO name)\n"
	    "HOST may be a name, an IPv4 address or [IPv6]; nothing is "
	    "verified.\n", DEFAULT_TIMEOUT);
}

/* Split HOST[:PORT] / [V6]:PORT / bare IPv6.  0 or -1. */
static int
parse_target(struct fetch *f, const char *arg, int starttls)
{
	const char *colon, *host = arg, *port = NULL;
	size_t hlen;
	char *end;
	long p;

	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');

		if (rb == NULL)
			return -1;
		host = arg + 1;
		hlen = (size_t)(rb - host);
		if (rb[1] == ':')
			port = rb + 2;
		else if (rb[1] != '\0')
			return -1;
	} else if ((colon = strchr(arg, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - arg);
		port = colon + 1;
	} else
		hlen = strlen(arg);	/* a name, IPv4, or a bare IPv6 */
	if (hlen == 0 || hlen >= sizeof(f->host))
		return -1;
	memcpy(f->host, host, hlen);
	f->host[hlen] = '\0';
	if (port != NULL) {
		p = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
			return -1;
	} else
		p = starttls ? 25 : 465;
	(void)bsnprintf(f->port, sizeof(f->port), "%ld", p);
	if (strchr(f->host, ':') != NULL)
		(void)bsnprintf(f->target, sizeof(f->target), "[%s]:%s",
		    f->host, f->port);
	else
		(void)bsnprintf(f->target, sizeof(f->target), "%s:%s",
		    f->host, f->port);
	return 0;
}

static int
is_ip_literal(const char *h)
{
	unsigned char b[16];

	return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

/* ---- saving ---------------------------------------------------------- */

/* Safe file stem from a certificate: its CN with letters, digits, ". _ -"
 * kept, '*' as "_wildcard", anything else as '_'; else the subject hash. */
void
cmd_cert_fetch_stem(X509 *x, char *out, size_t outlen)
{
	X509_NAME *subj = X509_get_subject_name(x);
	unsigned char *cn = NULL;
	struct strbuf sb = STRBUF_INIT;
	int i, n = -1;
	size_t k;

	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i >= 0)
		n = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, i)));
	for (k = 0; n > 0 && k < (size_t)n && sb.len < 100; k++) {
		unsigned char ch = cn[k];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-')
			strbuf_putc(&sb, (char)ch);
		else if (ch == '*')
			strbuf_puts(&sb, "_wildcard");
		else
			strbuf_putc(&sb, '_');
	}
	OPENSSL_free(cn);
	if (sb.len > 0 && sb.s[0] == '.')
		sb.s[0] = '_';		/* no hidden files, no ".." */
	if (sb.len == 0)
		(void)bsnprintf(out, outlen, "%08lx",
		    X509_NAME_hash_ex(subj, NULL, NULL, NULL));
	else
		bstrlcpy(out, sb.s, outlen);
	strbuf_free(&sb);
}

static void
name_str(X509_NAME *name, struct strbuf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (b == NULL)
		return;
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(b, &p);
	if (n > 0)
		strbuf_printable(out, p, (size_t)n);
	BIO_free(b);
}

static void
time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		bstrlcpy(buf, "?", len);
}

static int
save_chain(struct fetch *f, SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	char (*stems)[160];
	char path[4096], na[64], stem[128];
	struct strbuf subj = STRBUF_INIT, iss = STRBUF_INIT;
	int i, j, n, dup, self_issued = 0;
	BIO *b;
	char *pem;
	long pemlen;

	n = chain != NULL ? sk_X509_num(chain) : 0;
	if (n <= 0) {
		fprintf(stderr, "postern: %s presented no certificate\n",
		    f->target);
		return 1;
	}
	if (mkdir_p(f->outdir, 0755) == -1) {
		fprintf(stderr, "postern: cannot create %s: %s\n", f->outdir,
		    strerror(errno));
		return 1;
	}
	stems = xcalloc((size_t)n, sizeof(*stems));
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);

		cmd_cert_fetch_stem(x, stem, sizeof(stem));
		bstrlcpy(stems[i], stem, sizeof(stems[i]));
		for (dup = 2;; dup++) {
			for (j = 0; j < i; j++)
				if (strcmp(stems[j], stems[i]) == 0)
					break;
			if (j == i)
				break;
			(void)bsnprintf(stems[i], sizeof(stems[i]), "%s-%d",
			    stem, dup);
		}
		if (bsnprintf(path, sizeof(path), "%s/%s.pem", f->outdir,
		    stems[i]) == -1) {
			fprintf(stderr, "postern: output path too long\n");
			free(stems);
			return 1;
		}
		if ((b = BIO_new(BIO_s_mem())) == NULL ||
		    !PEM_write_bio_X509(b, x))
			fatalx("out of memory writing a certificate");
		pemlen = BIO_get_mem_data(b, &pem);
		if (write_file_atomic(path, pem, (size_t)pemlen, 0644) == -1) {
			fprintf(stderr, "postern: cannot write %s: %s\n", path,
			    strerror(errno));
			BIO_free(b);
			free(stems);
			return 1;
		}
		BIO_free(b);
		strbuf_reset(&subj);
		strbuf_reset(&iss);
		name_str(X509_get_subject_name(x), &subj);
		name_str(X509_get_issuer_name(x), &iss);
		time_str(X509_get0_notAfter(x), na, sizeof(na));
		printf("%s subject \"%s\" issuer \"%s\" not-after %s\n", path,
		    subj.s ? subj.s : "", iss.s ? iss.s : "", na);
		if (i == n - 1)
			self_issued = X509_NAME_cmp(X509_get_subject_name(x),
			    X509_get_issuer_name(x)) == 0;
	}
	if (self_issued)
		printf("to trust the root: postern trust add %s/%s.pem "
		    "--name %s\n", f->outdir, stems[n - 1], stems[n - 1]);
	else
		printf("to trust the root: postern trust add %s/%s.pem "
		    "--name %s (the server did not send its root: better add "
		    "the certificate of \"%s\" from its CA)\n", f->outdir,
		    stems[n - 1], stems[n - 1], iss.s ? iss.s : "");
	strbuf_free(&subj);
	strbuf_free(&iss);
	free(stems);
	return 0;
}

/* ---- the conversation ------------------------------------------------ */

static void try_next(struct fetch *);

static void
done(struct fetch *f, int rc)
{
	f->rc = rc;
	event_base_loopbreak(f->base);
}

/* One line on stderr for a failed step. */
static void
report(struct fetch *f, const struct smtp_client_result *r)
{
	struct strbuf sb = STRBUF_INIT;

	if (r->reply != NULL)
		smtp_reply_format(r->reply, &sb, " / ");
	switch (r->err) {
	case SMTP_CLIENT_ECONNREFUSED:
		fprintf(stderr, "postern: %s: connection refused - nothing "
		    "listens there: check the port and that the mail service "
		    "runs (%s)\n", f->target, f->starttls ?
		    "STARTTLS is usually on port 25 or 587; port 465 is "
		    "implicit TLS, without --starttls" :
		    "implicit TLS is usually port 465; for port 25 or 587 "
		    "use --starttls");
		break;
	case SMTP_CLIENT_ECONNECT:
		fprintf(stderr, "postern: %s: cannot connect: %s - check the "
		    "address and the network\n", f->target, r->detail);
		break;
	case SMTP_CLIENT_ETIMEOUT:
		fprintf(stderr, "postern: %s: timeout: %s - check host, port "
		    "and firewalls%s, or raise --timeout\n", f->target,
		    r->detail, f->starttls ? "" : " (a plain SMTP port needs "
		    "--starttls)");
		break;
	case SMTP_CLIENT_ETLS:
		fprintf(stderr, "postern: %s: TLS handshake failed: %s%s\n",
		    f->target, r->detail, f->starttls ? "" : " (if this port "
		    "speaks plain SMTP first, use --starttls)");
		break;
	case SMTP_CLIENT_EPROTO:
		fprintf(stderr, "postern: %s: protocol error: %s%s\n",
		    f->target, r->detail, f->starttls ? " (is this an SMTP "
		    "server? for implicit TLS drop --starttls)" : "");
		break;
	case SMTP_CLIENT_ECLOSED:
		fprintf(stderr, "postern: %s: %s\n", f->target, r->detail);
		break;
	case SMTP_CLIENT_EREPLY:
		fprintf(stderr, "postern: %s: %s refused: %s\n", f->target,
		    r->step, sb.s ? sb.s : "");
		break;
	default:
		fprintf(stderr, "postern: %s: %s: %s\n", f->target,
		    smtp_client_strerror(r->err), r->detail);
		break;
	}
	strbuf_free(&sb);
}

static void
fail(struct fetch *f, const struct smtp_client_result *r)
{
	report(f, r);
	done(f, 1);
}

static void
quit_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct fetch *f = arg;

	(void)c;
	(void)r;
	/* a failed QUIT changes nothing; rc may already say 1 */
	done(f, f->rc == -1 ? 0 : f->rc);
}

static void
tls_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct fetch *f = arg;
	int rc;

	if (r->err != SMTP_CLIENT_OK) {
		fail(f, r);
		return;
	}
	rc = save_chain(f, smtp_client_ssl(c));
	if (rc != 0 || !f->starttls) {
		/* implicit TLS: the greeting may never come (a bare TLS
		 * server); we have what we came for */
		done(f, rc);
		return;
	}
	smtp_client_quit(c, quit_done, f);
}

static void
ehlo_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct fetch *f = arg;
	const struct smtp_ehlo *e;
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	if (r->err != SMTP_CLIENT_OK) {
		fail(f, r);
		return;
	}
	e = smtp_client_ehlo_info(c);
	if (e == NULL || !(e->ext & SMTP_EXT_STARTTLS)) {
		if (e == NULL)
			strbuf_puts(&sb, "it answered HELO only");
		else {
			strbuf_puts(&sb, "EHLO lists:");
			/* keywords only, bounded: one readable line */
			for (i = 1; i < r->reply->nlines; i++) {
				const char *l = r->reply->lines[i];

				if (sb.len > 200) {
					strbuf_puts(&sb, " ...");
					break;
				}
				strbuf_putc(&sb, ' ');
				strbuf_add(&sb, l, strcspn(l, " \t=") < 40 ?
				    strcspn(l, " \t=") : 40);
			}
			if (r->reply->nlines < 2)
				strbuf_puts(&sb, " nothing");
		}
		fprintf(stderr, "postern: %s does not offer STARTTLS (%s)\n",
		    f->target, sb.s);
		strbuf_free(&sb);
		smtp_client_quit(c, quit_done, f);
		f->rc = 1;
		return;
	}
	smtp_client_starttls(c, f->ctx, f->servername, tls_done, f);
}

static void
greeting_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct fetch *f = arg;

	if (r->err != SMTP_CLIENT_OK) {
		fail(f, r);
		return;
	}
	smtp_client_ehlo(c, f->helo, ehlo_done, f);
}

static void
connect_done(struct smtp_client *c, const struct smtp_client_result *r,
    void *arg)
{
	struct fetch *f = arg;

	if (r->err != SMTP_CLIENT_OK) {
		/* refused / unreachable: another address may work */
		f->lasterr = *r;
		f->have_lasterr = 1;
		smtp_client_free(c);
		f->c = NULL;
		f->ai = f->ai->ai_next;
		try_next(f);
		return;
	}
	if (f->starttls)
		smtp_client_greeting(c, greeting_done, f);
	else
		smtp_client_tls(c, f->ctx, f->servername, tls_done, f);
}

static void
try_next(struct fetch *f)
{
	if (f->ai == NULL) {
		fail(f, &f->lasterr);
		return;
	}
	f->c = smtp_client_new(f->base, &f->to);
	smtp_client_connect(f->c, f->ai->ai_addr, f->ai->ai_addrlen,
	    connect_done, f);
}

static int
run(struct fetch *f)
{
	struct addrinfo hints;
	int e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(f->host, f->port, &hints, &f->ai_list)) != 0) {
		fprintf(stderr, "postern: cannot resolve %s: %s - check the "
		    "host name\n", f->host, gai_strerror(e));
		return 1;
	}
	if ((f->base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	f->ai = f->ai_list;
	f->rc = -1;
	try_next(f);
	if (f->rc == -1)
		event_base_dispatch(f->base);
	smtp_client_free(f->c);
	f->c = NULL;
	event_base_free(f->base);
	freeaddrinfo(f->ai_list);
	return f->rc == -1 ? 1 : f->rc;
}

int
cmd_cert_fetch(int argc, char **argv)
{
	struct conf *conf;
	struct fetch f;
	const char *cpath = NULL, *target = NULL, *sni = NULL, *v;
	double timeout = DEFAULT_TIMEOUT;
	char why[256], *end;
	size_t i;
	int a, rc;

	memset(&f, 0, sizeof(f));
	for (a = 1; a < argc; a++) {
		const char *o = argv[a];

		if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(o, "--starttls") == 0) {
			f.starttls = 1;
			continue;
		}
		if (strcmp(o, "--out") == 0 || strcmp(o, "-c") == 0 ||
		    strcmp(o, "--servername") == 0 ||
		    strcmp(o, "--timeout") == 0) {
			if (a + 1 >= argc) {
				fprintf(stderr, "postern: cert fetch: %s needs "
				    "a value\n", o);
				usage(stderr);
				return 2;
			}
			v = argv[++a];
		} else if (strncmp(o, "--out=", 6) == 0 ||
		    strncmp(o, "--servername=", 13) == 0 ||
		    strncmp(o, "--timeout=", 10) == 0) {
			v = strchr(o, '=') + 1;
		} else if (o[0] == '-' && o[1] != '\0') {
			fprintf(stderr, "postern: cert fetch: unknown option "
			    "%s\n", o);
			usage(stderr);
			return 2;
		} else {
			if (target != NULL) {
				fprintf(stderr, "postern: cert fetch: one "
				    "HOST[:PORT] only\n");
				usage(stderr);
				return 2;
			}
			target = o;
			continue;
		}
		if (strncmp(o, "--out", 5) == 0)
			f.outdir = v;
		else if (strcmp(o, "-c") == 0)
			cpath = v;
		else if (strncmp(o, "--servername", 12) == 0)
			sni = v;
		else {
			timeout = strtod(v, &end);
			if (*v == '\0' || *end != '\0' || !(timeout > 0) ||
			    timeout > 86400) {
				fprintf(stderr, "postern: cert fetch: bad "
				    "--timeout '%s' (seconds, > 0)\n", v);
				return 2;
			}
		}
	}
	if (target == NULL || f.outdir == NULL || f.outdir[0] == '\0') {
		fprintf(stderr, "postern: cert fetch: %s\n", target == NULL ?
		    "HOST[:PORT] missing" : "--out DIR missing");
		usage(stderr);
		return 2;
	}
	if (parse_target(&f, target, f.starttls) == -1) {
		fprintf(stderr, "postern: cert fetch: bad target '%s' (HOST, "
		    "HOST:PORT, [IPv6]:PORT)\n", target);
		return 2;
	}
	if (sni != NULL) {
		for (i = 0; sni[i] != '\0'; i++)
			if ((unsigned char)sni[i] <= ' ' || sni[i] == 127)
				break;
		if (sni[0] == '\0' || sni[i] != '\0' || i > 253) {
			fprintf(stderr, "postern: cert fetch: bad "
			    "--servername\n");
			return 2;
		}
		f.servername = sni;
	} else if (!is_ip_literal(f.host))
		f.servername = f.host;

	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	f.ctx = tls_client_ctx_new(conf, 0, why, sizeof(why));
	if (f.ctx == NULL) {
		fprintf(stderr, "postern: TLS client setup: %s\n", why);
		conf_free(conf);
		return 1;
	}
	f.helo = conf->hostname != NULL && conf->hostname[0] != '\0' ?
	    conf->hostname : "localhost";
	smtp_client_timeouts_default(&f.to);
	f.to.connect = f.to.tls = f.to.greeting = f.to.ehlo = f.to.command =
	    timeout;
	f.to.quit = timeout < 5 ? timeout : 5;

	rc = run(&f);

	SSL_CTX_free(f.ctx);
	conf_free(conf);
	if (fflush(stdout) == EOF && rc == 0) {
		perror("postern: stdout");
		rc = 1;
	}
	return rc;
}
