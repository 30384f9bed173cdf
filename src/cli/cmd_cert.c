/*
 * cmd_cert.c - `postern cert`: the certificate store in <data_dir>/certs
 * (selfsign, csr, import, export, list, show, check; fetch lives in
 * cmd_cert_fetch.c).  Store layout and helpers: certstore.h.
 *
 * Files the admin names (--cert, --key, --pkcs12, export's output) are
 * read and written with the caller's rights; the store itself is written
 * while acting as the configuration's user (runas.h), so it stays the
 * daemon's.  Secrets come from --password-env / --password-file or a
 * prompt, never from argv, and are never printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certchain.h"
#include "certstore.h"
#include "cmd.h"
#include "conf.h"
#include "runas.h"
#include "strbuf.h"
#include "truststore.h"
#include "util.h"

#define MAX_SANS	100
#define EXPIRY_WARN_DAYS 30

struct sub {
	const char	*name;
	int		(*fn)(const struct sub *, const char *, int, char **);
	const char	*synopsis;
	const char	*help;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern cert [-c FILE] COMMAND [options]\n"
	    "  selfsign --cn NAME [--san NAME]... [--days N] "
	    "[--key rsa2048|rsa3072|ec256] --name ID [--force]\n"
	    "  csr --cn NAME [--san NAME]... [--org O] [--ou U] [--country C] "
	    "[--state S]\n"
	    "      [--locality L] [--email E] [--key TYPE] --name ID "
	    "[--out FILE] [--force]\n"
	    "  import --name ID (--cert FILE [--chain FILE] [--key FILE] |\n"
	    "      --pkcs12 FILE (--password-env VAR | --password-file FILE)) "
	    "[--force]\n"
	    "  export ID --pkcs12 FILE (--password-env VAR | --password-file "
	    "FILE) [--force]\n"
	    "  list\n"
	    "  show ID\n"
	    "  check ID [--hostname H]\n"
	    "  check --cert FILE [--chain FILE] [--key FILE] [--hostname H]\n"
	    "  fetch HOST[:PORT] [--starttls] --out DIR\n"
	    "The store is <data_dir>/certs: ID.key (private key, mode 0600), "
	    "ID.pem\n(certificate and intermediates in chain order), ID.csr "
	    "(pending request).\n`postern cert COMMAND --help` for details.\n");
}

static void
sub_usage(const struct sub *s, FILE *f)
{
	fprintf(f, "usage: postern cert %s\n%s", s->synopsis, s->help);
}

static int
usage_error(const struct sub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int
usage_error(const struct sub *s, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "postern: cert %s: ", s->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see `postern cert %s --help`)\n", s->name);
	return 2;
}

/* getopt_long returned ':' or '?'. */
static int
bad_option(const struct sub *s, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return usage_error(s, "option %s needs a value", arg);
	if (optopt != 0 && optopt != '?')
		return usage_error(s, "unknown option '-%c'", optopt);
	return usage_error(s, "unknown option '%s'", arg);
}

static int
parse_days(const char *s, int *days)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || v < 1 || v > 36500)
		return -1;
	*days = (int)v;
	return 0;
}

/* ---- display ---------------------------------------------------------- */

static GENERAL_NAMES *
cert_sans(const X509 *x)
{
	return X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
}

static GENERAL_NAMES *
req_sans(X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *gens = NULL;
	int i;

	if (exts == NULL)
		return NULL;
	i = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
	if (i >= 0)
		gens = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, i));
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return gens;
}

static void
fingerprint(const X509 *x, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *hex;

	if (!X509_digest(x, EVP_sha256(), md, &n) ||
	    (hex = OPENSSL_buf2hexstr(md, n)) == NULL) {
		bstrlcpy(buf, "?", len);
		return;
	}
	bstrlcpy(buf, hex, len);
	OPENSSL_free(hex);
}

static void
serial_hex(const X509 *x, char *buf, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	bstrlcpy(buf, hex ? hex : "?", len);
	OPENSSL_free(hex);
	BN_free(bn);
}

static void
issuer_cn(X509 *x, char *buf, size_t len)
{
	if (certstore_is_self_signed(x))
		bstrlcpy(buf, "self-signed", len);
	else
		certstore_cn(X509_get_issuer_name(x), buf, len);
}

/* "in 364 days" / "expired 3 days ago" / "today" */
static void
days_text(const X509 *x, char *buf, size_t len)
{
	int d = certstore_days_until(X509_get0_notAfter(x));

	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		snprintf(buf, len, "expired %d day%s ago", -d, d == -1 ? "" :
		    "s");
	else
		snprintf(buf, len, "%d day%s left", d, d == 1 ? "" : "s");
}

/* ---- passwords -------------------------------------------------------- */

/*
 * The password from an environment variable, a file (first line) or a
 * prompt on the terminal.  NULL with *rc = 1 (failed) or 2 (usage).
 */
static char *
get_password(const struct sub *s, const char *env, const char *file,
    int confirm, int *rc)
{
	char *pw = NULL, *buf;
	size_t len;

	*rc = 1;
	if (env != NULL && file != NULL) {
		*rc = usage_error(s, "give either --password-env or "
		    "--password-file, not both");
		return NULL;
	}
	if (env != NULL) {
		const char *v = getenv(env);
		if (v == NULL) {
			cmd_fail("cannot read the password: environment "
			    "variable %s is not set (export it before running "
			    "postern)", env);
			return NULL;
		}
		pw = xstrdup(v);
	} else if (file != NULL) {
		if ((buf = read_file(file, &len, 4096)) == NULL) {
			cmd_fail("cannot read the password file %s: %s (give a "
			    "readable file holding the password on its first "
			    "line)", file, errno == EFBIG ?
			    "file too large" : strerror(errno));
			return NULL;
		}
		buf[strcspn(buf, "\r\n")] = '\0';
		pw = xstrdup(buf);
		secure_free(buf, len);
	} else if (isatty(STDIN_FILENO)) {
		char tmp[1024];

		if (EVP_read_pw_string(tmp, sizeof(tmp), "PKCS#12 password: ",
		    confirm) != 0) {
			explicit_bzero(tmp, sizeof(tmp));
			cmd_fail("cannot read the password: no password "
			    "entered (or the two entries differ)");
			return NULL;
		}
		pw = xstrdup(tmp);
		explicit_bzero(tmp, sizeof(tmp));
	} else {
		*rc = usage_error(s, "the PKCS#12 password is needed: give "
		    "--password-env VAR or --password-file FILE");
		return NULL;
	}
	if (pw[0] == '\0') {
		free(pw);
		cmd_fail("cannot use the password: it is empty (a PKCS#12 file "
		    "needs a non-empty password)");
		return NULL;
	}
	return pw;
}

static void
free_password(char *pw)
{
	if (pw != NULL)
		secure_free(pw, strlen(pw));
}

/* ---- checks ----------------------------------------------------------- */

struct checkreq {
	X509		*leaf;
	STACK_OF(X509)	*chain;		/* as stored / given */
	EVP_PKEY	*key;		/* NULL: none found */
	const char	*keywhere;	/* where the key came from */
	const char	*host;		/* NULL/"": no host check */
	const char	*id;		/* NULL: files (check --cert) */
	const char	*certfile, *chainfile, *keyfile;
	int		 only_problems;	/* print warn/FAIL lines only */
};

struct checkout {
	int	fails, warns;
	int	only_problems;
};

static void
line_ok(struct checkout *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
line_ok(struct checkout *o, const char *fmt, ...)
{
	va_list ap;

	if (o->only_problems)
		return;
	fputs("ok: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static void
line_warn(struct checkout *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
line_warn(struct checkout *o, const char *fmt, ...)
{
	va_list ap;

	o->warns++;
	fputs("warn: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* A FAIL line and its fix line. */
static void
line_fail(struct checkout *o, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
line_fail(struct checkout *o, const char *fix, const char *fmt, ...)
{
	va_list ap;

	o->fails++;
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\nfix: %s\n", fix);
}

/* `s` as one shell word (single-quoted unless harmless), for fix lines
 * an admin may paste. */
static const char *
shq(const char *s, struct strbuf *sb)
{
	const char *p;

	strbuf_reset(sb);
	if (s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789._/:@%+=,-") == strlen(s)) {
		strbuf_puts(sb, s);
		return sb->s;
	}
	strbuf_putc(sb, '\'');
	for (p = s; *p; p++)
		if (*p == '\'')
			strbuf_puts(sb, "'\\''");
		else
			strbuf_putc(sb, *p);
	strbuf_putc(sb, '\'');
	return sb->s;
}

/* The command that stores the certificate again, in order. */
static void
reimport_cmd(const struct conf *conf, const struct checkreq *r,
    struct strbuf *sb)
{
	if (r->id != NULL) {
		strbuf_printf(sb, "postern cert import --name %s --cert "
		    "%s/%s/%s.pem --force", r->id, conf->data_dir,
		    CERTSTORE_SUBDIR, r->id);
		return;
	}
	struct strbuf q = STRBUF_INIT;

	strbuf_printf(sb, "postern cert import --name ID --cert %s",
	    shq(r->certfile, &q));
	if (r->chainfile)
		strbuf_printf(sb, " --chain %s", shq(r->chainfile, &q));
	if (r->keyfile)
		strbuf_printf(sb, " --key %s", shq(r->keyfile, &q));
	strbuf_free(&q);
}

static void
check_validity(struct checkout *o, X509 *x, const char *what, int is_leaf,
    const struct checkreq *r)
{
	const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
	struct strbuf fix = STRBUF_INIT, q = STRBUF_INIT;
	char cn[256], date[64];
	int days;

	certstore_cn(X509_get_subject_name(x), cn, sizeof(cn));
	if (is_leaf) {
		shq(cn, &q);
		strbuf_printf(&fix, "renew it: `postern cert csr --name %s-new "
		    "--cn %s` and import the signed certificate with `postern "
		    "cert import --name %s --cert FILE --force` (or `postern "
		    "cert selfsign --name %s --cn %s --force`)",
		    r->id ? r->id : "ID", q.s, r->id ? r->id : "ID",
		    r->id ? r->id : "ID", q.s);
	}
	else
		strbuf_puts(&fix, "get the current intermediate certificate "
		    "from your CA and import it with --chain FILE");
	if (X509_cmp_current_time(nb) > 0) {
		certstore_date(nb, 1, date, sizeof(date));
		strbuf_reset(&fix);
		strbuf_puts(&fix, "check this machine's clock (`date -u`); "
		    "otherwise wait until the certificate becomes valid");
		line_fail(o, fix.s, "%s '%s' is not valid yet (not before %s)",
		    what, cn, date);
	} else if (X509_cmp_current_time(na) < 0) {
		certstore_date(na, 1, date, sizeof(date));
		line_fail(o, fix.s, "%s '%s' expired on %s", what, cn, date);
	} else if ((days = certstore_days_until(na)) < EXPIRY_WARN_DAYS) {
		certstore_date(na, 1, date, sizeof(date));
		line_fail(o, fix.s, "%s '%s' expires in %d day%s (%s)", what, cn,
		    days, days == 1 ? "" : "s", date);
	} else {
		certstore_date(na, 0, date, sizeof(date));
		line_ok(o, "%s '%s' valid until %s (%d days)", what, cn, date,
		    days);
	}
	strbuf_free(&fix);
	strbuf_free(&q);
}

static void
check_chain(struct checkout *o, const struct conf *conf,
    const struct checkreq *r)
{
	struct certstore_chainfix fix;
	struct strbuf cmd = STRBUF_INIT, fx = STRBUF_INIT;
	STACK_OF(X509) *ordered;
	struct certchain_facts facts;
	X509_STORE *store = NULL;
	char why[512], cn[256], icn[256];
	long err;
	int i, n, ntrust, gap = 0;

	ordered = certstore_order_chain(r->leaf, r->chain, &fix);
	reimport_cmd(conf, r, &cmd);
	strbuf_printf(&fx, "%s (it drops duplicates and puts the chain in "
	    "order)", cmd.s);
	if (fix.duplicates)
		line_fail(o, fx.s, "%d duplicate certificate%s in the chain",
		    fix.duplicates, fix.duplicates == 1 ? "" : "s");
	if (fix.reordered)
		line_fail(o, fx.s, "wrong order: the intermediates are not in "
		    "issuer order (each certificate must be followed by the one "
		    "that issued it)");
	if (fix.roots)
		line_warn(o, "the chain includes a self-signed root "
		    "certificate; peers ignore it (import leaves it out)");
	n = sk_X509_num(ordered);
	if (!fix.duplicates && !fix.reordered && !fix.unrelated && n > 0)
		line_ok(o, "chain in order, no duplicates (%d intermediate%s)",
		    n, n == 1 ? "" : "s");

	if (certstore_is_self_signed(r->leaf)) {
		line_warn(o, "self-signed — peers cannot verify it unless "
		    "they trust it");
		goto out;
	}
	if ((store = X509_STORE_new()) == NULL)
		fatalx("out of memory");
	ntrust = truststore_load(store, conf->data_dir, conf->tls.system_cas,
	    why, sizeof(why));
	if (ntrust == -1)
		line_warn(o, "trust store: %s", why);
	/* the input as given: certchain_verify spots its untrusted root */
	certchain_verify(store, r->leaf, r->chain, 0, &facts);
	err = facts.error;
	if (err == X509_V_OK) {
		line_ok(o, "chain complete up to the trusted root '%s'",
		    facts.anchor);
	} else if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	    err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
		X509 *last = facts.root_sent != NULL && facts.top ==
		    facts.root_sent ? sk_X509_value(ordered, n - 1) : facts.top;
		X509 *root = facts.root_sent;
		struct strbuf q = STRBUF_INIT, p = STRBUF_INIT;

		if (last == NULL)
			last = r->leaf;
		certstore_cn(X509_get_subject_name(last), cn, sizeof(cn));
		certstore_cn(X509_get_issuer_name(last), icn, sizeof(icn));
		strbuf_reset(&fx);
		if (root != NULL) {
			strbuf_printf(&fx, "if '%s' is your organisation's own "
			    "CA, trust it here and on the peers: postern trust "
			    "add ROOT.pem --name NAME; otherwise get a "
			    "certificate from a CA the peers trust", icn);
			line_fail(o, fx.s, "untrusted root: the chain ends at "
			    "the root '%s', which is neither in the trust store "
			    "nor among the system CAs", icn);
		} else {
			if (r->id)
				strbuf_printf(&p, "%s/%s/%s.pem", conf->data_dir,
				    CERTSTORE_SUBDIR, r->id);
			else
				strbuf_puts(&p, r->certfile);
			strbuf_printf(&fx, "ask your CA for the intermediate "
			    "certificate '%s' that issued '%s' and add it: "
			    "postern cert import --name %s --cert %s --chain "
			    "intermediate.pem%s (if '%s' is your own root CA, "
			    "trust it: postern trust add root.pem --name NAME)",
			    icn, cn, r->id ? r->id : "ID", shq(p.s, &q),
			    r->id ? " --force" : "", icn);
			line_fail(o, fx.s, "missing intermediate: '%s' (the "
			    "issuer of '%s') is neither in the chain nor in the "
			    "trust store or the system CAs%s", icn, cn,
			    fix.unrelated ? "; the chain's other certificates "
			    "do not connect without it" : "");
			gap = 1;
		}
		strbuf_free(&q);
		strbuf_free(&p);
	} else if (err == X509_V_ERR_INVALID_PURPOSE) {
		line_fail(o, "get a certificate whose extendedKeyUsage includes "
		    "serverAuth (TLS Web Server Authentication)",
		    "the certificate is not meant for TLS servers (its key "
		    "usage or extended key usage excludes serverAuth)");
	} else {
		X509 *bad = facts.at;

		certstore_cn(bad ? X509_get_subject_name(bad) :
		    X509_get_subject_name(r->leaf), cn, sizeof(cn));
		line_fail(o, "check that the intermediates are the ones your CA "
		    "issued with this certificate", "the chain does not verify "
		    "at '%s': %s", cn, X509_verify_cert_error_string(err));
	}
	if (fix.unrelated && !gap) {
		strbuf_reset(&fx);
		strbuf_printf(&fx, "remove it from the chain file; %s keeps "
		    "only the certificates of this chain", cmd.s);
		line_fail(o, fx.s, "%d certificate%s in the chain do%s not "
		    "belong to this certificate's chain", fix.unrelated,
		    fix.unrelated == 1 ? "" : "s", fix.unrelated == 1 ? "es" :
		    "");
	}
out:
	check_validity(o, r->leaf, "certificate", 1, r);
	for (i = 0; i < n; i++)
		check_validity(o, sk_X509_value(ordered, i), "intermediate", 0,
		    r);
	X509_STORE_free(store);
	sk_X509_pop_free(ordered, X509_free);
	strbuf_free(&cmd);
	strbuf_free(&fx);
}

static int
run_checks(const struct conf *conf, const struct checkreq *r)
{
	struct checkout o = { 0, 0, r->only_problems };
	struct strbuf sb = STRBUF_INIT, fx = STRBUF_INIT;
	char kd[64], cn[256];

	/* key */
	if (r->key == NULL) {
		line_fail(&o, "give the key with --key FILE (the one the "
		    "certificate request was made with)", "no private key for "
		    "this certificate: none given and none in the store "
		    "matches it");
	} else if (!certstore_key_matches(r->leaf, r->key)) {
		if (r->id)
			strbuf_printf(&fx, "import the certificate again "
			    "together with its own key: postern cert import "
			    "--name %s --cert CERT.pem --key KEY.pem --force",
			    r->id);
		else
			strbuf_puts(&fx, "use the key the certificate request "
			    "was made with (`postern cert list` shows pending "
			    "requests; import finds their keys by itself)");
		line_fail(&o, fx.s, "the private key (%s) does not match the "
		    "certificate", r->keywhere);
	} else {
		certstore_key_desc(r->key, kd, sizeof(kd));
		line_ok(&o, "private key matches the certificate (%s, %s)", kd,
		    r->keywhere);
	}

	check_chain(&o, conf, r);

	/* host name */
	if (r->host != NULL && r->host[0] != '\0') {
		ASN1_OCTET_STRING *ip;
		int m;

		ERR_set_mark();
		if ((ip = a2i_IPADDRESS(r->host)) != NULL) {
			ASN1_OCTET_STRING_free(ip);
			m = X509_check_ip_asc(r->leaf, r->host, 0);
		} else
			m = X509_check_host(r->leaf, r->host, 0, 0, NULL);
		ERR_pop_to_mark();
		if (m == 1)
			line_ok(&o, "certificate is valid for %s", r->host);
		else {
			certchain_sans(cert_sans(r->leaf), ", ", &sb);
			certstore_cn(X509_get_subject_name(r->leaf), cn,
			    sizeof(cn));
			strbuf_reset(&fx);
			struct strbuf q = STRBUF_INIT;

			shq(r->host, &q);
			strbuf_printf(&fx, "get a certificate that names %s: "
			    "postern cert csr --name %s-new --cn %s (or "
			    "selfsign --cn %s --name %s --force); or check "
			    "--hostname / the configuration's hostname",
			    r->host, r->id ? r->id : "ID", q.s, q.s,
			    r->id ? r->id : "ID");
			strbuf_free(&q);
			line_fail(&o, fx.s, "host name mismatch: the "
			    "certificate is not valid for %s (CN '%s', SANs %s)",
			    r->host, cn, sb.s);
		}
	}
	strbuf_free(&sb);
	strbuf_free(&fx);
	return o.fails;
}

/* ---- summaries -------------------------------------------------------- */

static void
print_summary(const char *id, X509 *leaf, EVP_PKEY *key,
    STACK_OF(X509) *chain)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[512], kd[64];
	int i;

	certstore_name(X509_get_subject_name(leaf), buf, sizeof(buf));
	printf("  id:         %s\n  subject:    %s\n", id, buf);
	certchain_sans(cert_sans(leaf), ", ", &sb);
	printf("  SANs:       %s\n", sb.s);
	if (certstore_is_self_signed(leaf))
		printf("  issuer:     (self-signed)\n");
	else {
		certstore_name(X509_get_issuer_name(leaf), buf, sizeof(buf));
		printf("  issuer:     %s\n", buf);
	}
	certstore_date(X509_get0_notAfter(leaf), 1, buf, sizeof(buf));
	days_text(leaf, kd, sizeof(kd));
	printf("  not after:  %s (%s)\n", buf, kd);
	certstore_key_desc(key ? key : X509_get0_pubkey(leaf), kd, sizeof(kd));
	printf("  key:        %s\n", kd);
	fingerprint(leaf, buf, sizeof(buf));
	printf("  sha256:     %s\n", buf);
	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		char icn[256];

		certstore_cn(X509_get_subject_name(c), buf, sizeof(buf));
		certstore_cn(X509_get_issuer_name(c), icn, sizeof(icn));
		printf("  chain %d:    %s -> %s\n", i + 1, buf, icn);
	}
	strbuf_free(&sb);
}

/* ---- subcommands ------------------------------------------------------ */

enum { O_CN = 256, O_SAN, O_DAYS, O_KEY, O_NAME, O_FORCE, O_ORG, O_OU,
	O_COUNTRY, O_STATE, O_LOCALITY, O_EMAIL, O_OUT, O_CERT, O_CHAIN,
	O_PKCS12, O_PWENV, O_PWFILE, O_HOSTNAME };

#define COMMON_LONGOPTS \
	{ "help", no_argument, NULL, 'h' }, \
	{ "config", required_argument, NULL, 'c' }

/* Does any file of the entry exist? */
static int
entry_any(const char *data_dir, const char *id, const char **which)
{
	static const char *exts[] = { ".pem", ".key", ".csr" };
	char path[4096];
	struct stat st;
	size_t i;

	for (i = 0; i < 3; i++)
		if (certstore_path(data_dir, id, exts[i], path,
		    sizeof(path)) == 0 && stat(path, &st) == 0) {
			if (which)
				*which = exts[i];
			return 1;
		}
	return 0;
}

static int
entry_file(const char *data_dir, const char *id, const char *ext)
{
	char path[4096];
	struct stat st;

	return certstore_path(data_dir, id, ext, path, sizeof(path)) == 0 &&
	    stat(path, &st) == 0;
}

static int
c_selfsign(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cn", required_argument, NULL, O_CN },
		{ "san", required_argument, NULL, O_SAN },
		{ "days", required_argument, NULL, O_DAYS },
		{ "key", required_argument, NULL, O_KEY },
		{ "name", required_argument, NULL, O_NAME },
		{ "force", no_argument, NULL, O_FORCE },
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	const char *sans[MAX_SANS], *cn = NULL, *id = NULL, *keytype = NULL;
	size_t nsans = 0;
	int c, days = 365, force = 0, rc = 1;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	struct conf *conf;
	char why[512];

	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_CN: cn = optarg; break;
		case O_SAN:
			if (nsans == MAX_SANS)
				return usage_error(s, "at most %d --san", MAX_SANS);
			if (!certstore_valid_san(optarg))
				return usage_error(s, "--san '%s' is neither a DNS "
				    "name nor an IP address", optarg);
			sans[nsans++] = optarg;
			break;
		case O_DAYS:
			if (parse_days(optarg, &days) == -1)
				return usage_error(s, "--days '%s' must be a "
				    "number of days from 1 to 36500", optarg);
			break;
		case O_KEY: keytype = optarg; break;
		case O_NAME: id = optarg; break;
		case O_FORCE: force = 1; break;
		case 'c': cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	if (optind < argc)
		return usage_error(s, "unexpected argument '%s'", argv[optind]);
	if (cn == NULL || cn[0] == '\0')
		return usage_error(s, "--cn NAME is required");
	if (id == NULL)
		return usage_error(s, "--name ID is required");
	if (!certstore_valid_id(id))
		return usage_error(s, "--name '%s' is not a valid ID (letters, "
		    "digits, '.', '_' and '-', not starting with '.')", id);
	if (keytype && !certstore_valid_keytype(keytype))
		return usage_error(s, "--key '%s': use rsa2048, rsa3072 or "
		    "ec256", keytype);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (!force && entry_any(conf->data_dir, id, NULL)) {
		cmd_fail("cannot create certificate '%s': it exists already in "
		    "%s/%s (add --force to replace it, or choose another "
		    "--name)", id, conf->data_dir, CERTSTORE_SUBDIR);
		goto out;
	}
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		goto out;
	if (certstore_selfsign(conf->data_dir, id, cn, sans, nsans, days,
	    keytype, why, sizeof(why)) == -1) {
		runas_restore();
		cmd_fail("cannot create certificate '%s': %s", id, why);
		goto out;
	}
	if (certstore_load(conf->data_dir, id, &leaf, &key, &chain, why,
	    sizeof(why)) == -1) {
		runas_restore();
		cmd_fail("cannot read back certificate '%s': %s", id, why);
		goto out;
	}
	runas_restore();
	printf("created self-signed certificate '%s'\n", id);
	print_summary(id, leaf, key, chain);
	printf("  files:      %s/%s/%s.pem, %s.key (mode 0600)\n",
	    conf->data_dir, CERTSTORE_SUBDIR, id, id);
	rc = 0;
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	conf_free(conf);
	return rc;
}

static int
c_csr(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cn", required_argument, NULL, O_CN },
		{ "san", required_argument, NULL, O_SAN },
		{ "org", required_argument, NULL, O_ORG },
		{ "ou", required_argument, NULL, O_OU },
		{ "country", required_argument, NULL, O_COUNTRY },
		{ "state", required_argument, NULL, O_STATE },
		{ "locality", required_argument, NULL, O_LOCALITY },
		{ "email", required_argument, NULL, O_EMAIL },
		{ "key", required_argument, NULL, O_KEY },
		{ "name", required_argument, NULL, O_NAME },
		{ "out", required_argument, NULL, O_OUT },
		{ "force", no_argument, NULL, O_FORCE },
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	struct certstore_subject subj;
	const char *sans[MAX_SANS], *id = NULL, *keytype = NULL, *out = NULL;
	const char *which = NULL;
	size_t nsans = 0;
	int c, force = 0, rc = 1;
	X509_REQ *req = NULL;
	struct conf *conf;
	struct strbuf sb = STRBUF_INIT;
	char why[512], kd[64];
	BIO *bio = NULL;
	char *pem;
	long pemlen;

	memset(&subj, 0, sizeof(subj));
	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_CN: subj.cn = optarg; break;
		case O_SAN:
			if (nsans == MAX_SANS)
				return usage_error(s, "at most %d --san", MAX_SANS);
			if (!certstore_valid_san(optarg))
				return usage_error(s, "--san '%s' is neither a DNS "
				    "name nor an IP address", optarg);
			sans[nsans++] = optarg;
			break;
		case O_ORG: subj.org = optarg; break;
		case O_OU: subj.ou = optarg; break;
		case O_COUNTRY:
			if (strlen(optarg) != 2)
				return usage_error(s, "--country '%s' must be a "
				    "two-letter code such as DE or US", optarg);
			subj.country = optarg;
			break;
		case O_STATE: subj.state = optarg; break;
		case O_LOCALITY: subj.locality = optarg; break;
		case O_EMAIL: subj.email = optarg; break;
		case O_KEY: keytype = optarg; break;
		case O_NAME: id = optarg; break;
		case O_OUT: out = optarg; break;
		case O_FORCE: force = 1; break;
		case 'c': cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	if (optind < argc)
		return usage_error(s, "unexpected argument '%s'", argv[optind]);
	if (subj.cn == NULL || subj.cn[0] == '\0')
		return usage_error(s, "--cn NAME is required");
	if (id == NULL)
		return usage_error(s, "--name ID is required");
	if (!certstore_valid_id(id))
		return usage_error(s, "--name '%s' is not a valid ID (letters, "
		    "digits, '.', '_' and '-', not starting with '.')", id);
	if (keytype && !certstore_valid_keytype(keytype))
		return usage_error(s, "--key '%s': use rsa2048, rsa3072 or "
		    "ec256", keytype);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (!force && entry_any(conf->data_dir, id, &which)) {
		cmd_fail("cannot create request '%s': %s '%s' exists already "
		    "(choose another --name such as %s-new: `postern cert "
		    "import` finds the key by itself; or add --force to "
		    "replace it)", id, strcmp(which, ".csr") == 0 ?
		    "a request" : "a certificate", id, id);
		goto out;
	}
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		goto out;
	if (certstore_make_csr(conf->data_dir, id, &subj, sans, nsans,
	    keytype, &req, why, sizeof(why)) == -1) {
		runas_restore();
		cmd_fail("cannot create request '%s': %s", id, why);
		goto out;
	}
	runas_restore();
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(bio, req))
		fatalx("out of memory");
	pemlen = BIO_get_mem_data(bio, &pem);
	certstore_key_desc(X509_REQ_get0_pubkey(req), kd, sizeof(kd));
	certchain_sans(req_sans(req), ", ", &sb);
	if (out != NULL) {
		if (write_file_atomic(out, pem, (size_t)pemlen, 0644) == -1) {
			cmd_fail("cannot write the request to %s: %s (it is "
			    "also in %s/%s/%s.csr)", out, strerror(errno),
			    conf->data_dir, CERTSTORE_SUBDIR, id);
			goto out;
		}
		printf("created request '%s' (CN %s, SANs %s, key %s)\n"
		    "  request:  %s (and %s/%s/%s.csr)\n"
		    "  key:      %s/%s/%s.key (mode 0600, stays here)\n"
		    "next: send the request to your CA, then `postern cert "
		    "import --name %s --cert SIGNED.pem [--chain "
		    "INTERMEDIATES.pem]`\n", id, subj.cn, sb.s, kd, out,
		    conf->data_dir, CERTSTORE_SUBDIR, id, conf->data_dir,
		    CERTSTORE_SUBDIR, id, id);
	} else {
		fwrite(pem, 1, (size_t)pemlen, stdout);
		fprintf(stderr, "created request '%s' (CN %s, SANs %s, key %s); "
		    "key in %s/%s/%s.key (mode 0600), request also in "
		    "%s.csr\nnext: send the request to your CA, then `postern "
		    "cert import --name %s --cert SIGNED.pem`\n", id, subj.cn,
		    sb.s, kd, conf->data_dir, CERTSTORE_SUBDIR, id, id, id);
	}
	rc = 0;
out:
	BIO_free(bio);
	X509_REQ_free(req);
	strbuf_free(&sb);
	conf_free(conf);
	return rc;
}

/* Read a PKCS#12 file: key, certificate and CA certificates. */
static int
read_pkcs12(const char *file, const char *pass, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **ca)
{
	PKCS12 *p12 = NULL;
	char e[256];
	BIO *bio;
	int rc = -1, ok;

	*key = NULL;
	*cert = NULL;
	*ca = NULL;
	if ((bio = BIO_new_file(file, "rb")) == NULL) {
		ERR_clear_error();
		return cmd_fail("cannot read %s: %s (give a readable PKCS#12 "
		    "file)", file, strerror(errno)), -1;
	}
	ERR_set_mark();
	p12 = d2i_PKCS12_bio(bio, NULL);
	BIO_free(bio);
	if (p12 == NULL) {
		ERR_pop_to_mark();
		return cmd_fail("cannot import %s: it is not a PKCS#12 file "
		    "(give a .p12/.pfx file, or use --cert/--key for PEM "
		    "files)", file), -1;
	}
	ERR_pop_to_mark();
	if (PKCS12_mac_present(p12) && !PKCS12_verify_mac(p12, pass, -1)) {
		ERR_clear_error();
		cmd_fail("cannot import %s: wrong password (or a damaged file) "
		    "(give the password the file was exported with)", file);
		goto out;
	}
	ok = PKCS12_parse(p12, pass, key, cert, ca);
	if (!ok) {
		/* old files: RC2/3DES need OpenSSL's legacy provider */
		ERR_clear_error();
		if (OSSL_PROVIDER_try_load(NULL, "legacy", 1) != NULL)
			ok = PKCS12_parse(p12, pass, key, cert, ca);
	}
	if (!ok) {
		cmd_fail("cannot import %s: %s (re-export it with current "
		    "algorithms, or convert it to PEM with `openssl pkcs12`)",
		    file, certstore_ssl_error(e, sizeof(e)));
		goto out;
	}
	if (*key == NULL) {
		cmd_fail("cannot import %s: it holds no private key (export it "
		    "together with the key)", file);
		goto out;
	}
	if (*cert == NULL) {
		cmd_fail("cannot import %s: it holds no certificate for its "
		    "key (export the certificate together with the key)", file);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		sk_X509_pop_free(*ca, X509_free);
		*key = NULL;
		*cert = NULL;
		*ca = NULL;
	}
	PKCS12_free(p12);
	return rc;
}

static int
c_import(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "name", required_argument, NULL, O_NAME },
		{ "cert", required_argument, NULL, O_CERT },
		{ "chain", required_argument, NULL, O_CHAIN },
		{ "key", required_argument, NULL, O_KEY },
		{ "pkcs12", required_argument, NULL, O_PKCS12 },
		{ "password-env", required_argument, NULL, O_PWENV },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "force", no_argument, NULL, O_FORCE },
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	const char *id = NULL, *certf = NULL, *chainf = NULL, *keyf = NULL;
	const char *p12f = NULL, *pwenv = NULL, *pwfile = NULL;
	STACK_OF(X509) *certs = NULL, *more = NULL, *ordered = NULL;
	struct certstore_chainfix fix;
	struct conf *conf = NULL;
	struct checkreq cr;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	char why[512], found[256] = "", cn[256], keywhere[600];
	int c, force = 0, rc = 1, r, i, leafpos = 0, ncerts;
	int from_pending = 0;

	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_NAME: id = optarg; break;
		case O_CERT: certf = optarg; break;
		case O_CHAIN: chainf = optarg; break;
		case O_KEY: keyf = optarg; break;
		case O_PKCS12: p12f = optarg; break;
		case O_PWENV: pwenv = optarg; break;
		case O_PWFILE: pwfile = optarg; break;
		case O_FORCE: force = 1; break;
		case 'c': cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	if (optind < argc)
		return usage_error(s, "unexpected argument '%s'", argv[optind]);
	if (id == NULL)
		return usage_error(s, "--name ID is required");
	if (!certstore_valid_id(id))
		return usage_error(s, "--name '%s' is not a valid ID (letters, "
		    "digits, '.', '_' and '-', not starting with '.')", id);
	if ((certf == NULL) == (p12f == NULL))
		return usage_error(s, "give either --cert FILE or --pkcs12 "
		    "FILE");
	if (p12f && (chainf || keyf))
		return usage_error(s, "--chain and --key go with --cert, not "
		    "with --pkcs12");
	if (certf && (pwenv || pwfile))
		return usage_error(s, "--password-env/--password-file go with "
		    "--pkcs12");

	/* read the admin's files first, with the caller's rights */
	if (p12f != NULL) {
		char *pw = get_password(s, pwenv, pwfile, 0, &r);
		X509 *x = NULL;

		if (pw == NULL)
			return r;
		r = read_pkcs12(p12f, pw, &key, &x, &more);
		free_password(pw);
		if (r == -1)
			return 1;
		if ((certs = sk_X509_new_null()) == NULL)
			fatalx("out of memory");
		sk_X509_push(certs, x);
		while (more && sk_X509_num(more) > 0)
			sk_X509_push(certs, sk_X509_shift(more));
		sk_X509_free(more);
		more = NULL;
	} else {
		if (certstore_read_certs(certf, &certs, why, sizeof(why)) == -1)
			return cmd_fail("cannot import: %s", why);
		if (chainf != NULL) {
			if (certstore_read_certs(chainf, &more, why,
			    sizeof(why)) == -1) {
				cmd_fail("cannot import: %s", why);
				goto out;
			}
			while (sk_X509_num(more) > 0)
				sk_X509_push(certs, sk_X509_shift(more));
			sk_X509_free(more);
			more = NULL;
		}
		r = certstore_read_key(keyf ? keyf : certf, &key, why,
		    sizeof(why));
		if (r == -1) {
			cmd_fail("cannot import: %s", why);
			goto out;
		}
		if (r == 0 && keyf != NULL) {
			cmd_fail("cannot import: %s holds no private key (name "
			    "the key file of the certificate, or leave --key "
			    "out for a request made here)", keyf);
			goto out;
		}
		if (key != NULL)
			snprintf(keywhere, sizeof(keywhere), "%s", keyf ? keyf :
			    certf);
	}
	ncerts = sk_X509_num(certs);

	/* which certificate is the leaf */
	if (key != NULL && p12f == NULL) {
		leafpos = -1;
		for (i = 0; i < ncerts && leafpos == -1; i++)
			if (certstore_key_matches(sk_X509_value(certs, i), key))
				leafpos = i;
		if (leafpos == -1) {
			cmd_fail("cannot import: the key in %s does not match "
			    "%s (give the key the certificate request was made "
			    "with, or leave --key out for a request made "
			    "here)", keyf ? keyf : certf, ncerts == 1 ?
			    "the certificate" : "any of the certificates");
			goto out;
		}
	} else if (p12f == NULL && X509_check_ca(sk_X509_value(certs, 0))) {
		for (i = 0; i < ncerts; i++)
			if (!X509_check_ca(sk_X509_value(certs, i))) {
				leafpos = i;
				break;
			}
	}
	leaf = sk_X509_delete(certs, leafpos);
	if (key != NULL && !certstore_key_matches(leaf, key)) {
		cmd_fail("cannot import: the key in %s does not match its "
		    "certificate (export the certificate together with its own "
		    "key)", p12f ? p12f : certf);
		goto out;
	}

	if ((conf = conf_load_for_command(cpath)) == NULL)
		goto out;
	if (!force && entry_file(conf->data_dir, id, ".pem")) {
		cmd_fail("cannot import certificate '%s': it exists already "
		    "(add --force to replace it, or choose another --name)",
		    id);
		goto out;
	}
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		goto out;
	if (key == NULL) {
		r = certstore_find_key(conf->data_dir, leaf, id, &key, found,
		    sizeof(found), why, sizeof(why));
		if (r == -1) {
			runas_restore();
			cmd_fail("cannot import certificate '%s': %s", id, why);
			goto out;
		}
		if (r == 0) {
			runas_restore();
			certstore_cn(X509_get_subject_name(leaf), cn, sizeof(cn));
			cmd_fail("cannot import certificate '%s': no private "
			    "key matches it (CN %s): none in %s and none in "
			    "the store (give it with --key FILE; a certificate "
			    "requested elsewhere needs that machine's key)",
			    id, cn, certf ? certf : p12f);
			goto out;
		}
		from_pending = !entry_file(conf->data_dir, found, ".pem");
		snprintf(keywhere, sizeof(keywhere), "%s/%s/%s.key",
		    conf->data_dir, CERTSTORE_SUBDIR, id);
	} else if (p12f != NULL)
		snprintf(keywhere, sizeof(keywhere), "%s", p12f);

	ordered = certstore_order_chain(leaf, certs, &fix);
	if (certstore_save(conf->data_dir, id, leaf, key, ordered, why,
	    sizeof(why)) == -1) {
		runas_restore();
		cmd_fail("cannot import certificate '%s': %s", id, why);
		goto out;
	}
	{
		char path[4096];

		if (certstore_path(conf->data_dir, id, ".csr", path,
		    sizeof(path)) == 0)
			unlink(path);
		if (found[0] && strcmp(found, id) != 0 && from_pending) {
			if (certstore_path(conf->data_dir, found, ".key", path,
			    sizeof(path)) == 0)
				unlink(path);
			if (certstore_path(conf->data_dir, found, ".csr", path,
			    sizeof(path)) == 0)
				unlink(path);
		}
	}
	runas_restore();

	printf("imported certificate '%s'\n", id);
	if (found[0] && strcmp(found, id) == 0)
		printf("  paired with the stored key %s.key\n", id);
	else if (found[0] && from_pending)
		printf("  paired with the key of pending request '%s' (moved "
		    "to '%s')\n", found, id);
	else if (found[0])
		printf("  paired with the key of certificate '%s' (copied)\n",
		    found);
	if (leafpos != 0)
		printf("  changed: put the server certificate first (it was "
		    "certificate %d of the input)\n", leafpos + 1);
	if (fix.reordered)
		printf("  changed: put the intermediates in issuer order\n");
	if (fix.duplicates)
		printf("  changed: dropped %d duplicate certificate%s\n",
		    fix.duplicates, fix.duplicates == 1 ? "" : "s");
	if (fix.roots)
		printf("  changed: left out %d self-signed root certificate%s "
		    "(peers must have it already; it does not belong in the "
		    "chain)\n", fix.roots, fix.roots == 1 ? "" : "s");
	if (fix.unrelated)
		printf("  changed: left out %d certificate%s that do%s not "
		    "belong to this certificate's chain\n", fix.unrelated,
		    fix.unrelated == 1 ? "" : "s", fix.unrelated == 1 ? "es" :
		    "");
	print_summary(id, leaf, key, ordered);

	memset(&cr, 0, sizeof(cr));
	cr.leaf = leaf;
	cr.chain = ordered;
	cr.key = key;
	cr.keywhere = keywhere;
	cr.host = conf->hostname;
	cr.id = id;
	cr.only_problems = 1;
	run_checks(conf, &cr);
	rc = 0;
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(more, X509_free);
	sk_X509_pop_free(ordered, X509_free);
	conf_free(conf);
	return rc;
}

static int
c_export(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pkcs12", required_argument, NULL, O_PKCS12 },
		{ "password-env", required_argument, NULL, O_PWENV },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "force", no_argument, NULL, O_FORCE },
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	const char *id, *outf = NULL, *pwenv = NULL, *pwfile = NULL;
	STACK_OF(X509) *chain = NULL;
	struct conf *conf = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	PKCS12 *p12 = NULL;
	BIO *bio = NULL;
	char why[512], e[256], *pw = NULL, *data;
	struct stat st;
	int c, force = 0, rc = 1, r;
	long len;

	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_PKCS12: outf = optarg; break;
		case O_PWENV: pwenv = optarg; break;
		case O_PWFILE: pwfile = optarg; break;
		case O_FORCE: force = 1; break;
		case 'c': cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	if (optind >= argc)
		return usage_error(s, "which certificate? give its ID");
	if (optind + 1 < argc)
		return usage_error(s, "unexpected argument '%s'",
		    argv[optind + 1]);
	id = argv[optind];
	if (outf == NULL)
		return usage_error(s, "--pkcs12 FILE is required");
	if (!force && stat(outf, &st) == 0)
		return cmd_fail("cannot export to %s: the file exists (add "
		    "--force to replace it)", outf);
	if ((pw = get_password(s, pwenv, pwfile, 1, &r)) == NULL)
		return r;
	if ((conf = conf_load_for_command(cpath)) == NULL)
		goto out;
	if (certstore_load(conf->data_dir, id, &leaf, &key, &chain, why,
	    sizeof(why)) == -1) {
		cmd_fail("cannot export '%s': %s", id, why);
		goto out;
	}
	/* OpenSSL 3 defaults: AES-256-CBC with PBKDF2, HMAC-SHA256 MAC */
	p12 = PKCS12_create(pw, id, key, leaf, chain, 0, 0, 0, 0, 0);
	if (p12 == NULL) {
		cmd_fail("cannot export '%s': %s", id, certstore_ssl_error(e,
		    sizeof(e)));
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL || !i2d_PKCS12_bio(bio, p12))
		fatalx("out of memory");
	len = BIO_get_mem_data(bio, &data);
	if (write_file_atomic(outf, data, (size_t)len, 0600) == -1) {
		cmd_fail("cannot export '%s': cannot write %s: %s (choose a "
		    "writable place)", id, outf, strerror(errno));
		goto out;
	}
	printf("exported '%s' to %s (PKCS#12: key, certificate and %d "
	    "intermediate%s; mode 0600; password ****)\n", id, outf,
	    sk_X509_num(chain), sk_X509_num(chain) == 1 ? "" : "s");
	rc = 0;
out:
	free_password(pw);
	BIO_free(bio);
	PKCS12_free(p12);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	conf_free(conf);
	return rc;
}

/* Parse the options of commands that take nothing but -c. */
static int
simple_opts(const struct sub *s, const char **cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case 'c': *cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	return -1;
}

struct row {
	char	*f[8];
};

static X509_REQ *
read_csr(const char *path)
{
	X509_REQ *req = NULL;
	BIO *bio;

	if ((bio = BIO_new_file(path, "r")) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return req;
}

static void
fill_row(const char *data_dir, const char *id, struct row *row)
{
	STACK_OF(X509) *certs = NULL;
	struct strbuf sb = STRBUF_INIT;
	char path[4096], why[512], buf[256];
	X509 *x;

	row->f[0] = xstrdup(id);
	certstore_path(data_dir, id, ".pem", path, sizeof(path));
	if (entry_file(data_dir, id, ".pem")) {
		if (certstore_read_certs(path, &certs, why, sizeof(why)) ==
		    -1) {
			row->f[1] = xstrdup("(unreadable)");
			for (int k = 2; k < 7; k++)
				row->f[k] = xstrdup("-");
			row->f[7] = xstrdup(why);
			return;
		}
		x = sk_X509_value(certs, 0);
		certstore_cn(X509_get_subject_name(x), buf, sizeof(buf));
		row->f[1] = xstrdup(buf);
		certchain_sans(cert_sans(x), ",", &sb);
		row->f[2] = strbuf_detach(&sb, NULL);
		issuer_cn(x, buf, sizeof(buf));
		row->f[3] = xstrdup(buf);
		certstore_date(X509_get0_notAfter(x), 0, buf, sizeof(buf));
		row->f[4] = xstrdup(buf);
		if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
			row->f[5] = xstrdup("expired");
		else {
			snprintf(buf, sizeof(buf), "%d",
			    certstore_days_until(X509_get0_notAfter(x)));
			row->f[5] = xstrdup(buf);
		}
		certstore_key_desc(X509_get0_pubkey(x), buf, sizeof(buf));
		row->f[6] = xstrdup(buf);
		row->f[7] = xstrdup(entry_file(data_dir, id, ".key") ? "" :
		    "no key");
		sk_X509_pop_free(certs, X509_free);
		return;
	}
	certstore_path(data_dir, id, ".csr", path, sizeof(path));
	if (entry_file(data_dir, id, ".csr")) {
		X509_REQ *req = read_csr(path);

		if (req != NULL) {
			certstore_cn(X509_REQ_get_subject_name(req), buf,
			    sizeof(buf));
			row->f[1] = xstrdup(buf);
			certchain_sans(req_sans(req), ",", &sb);
			row->f[2] = strbuf_detach(&sb, NULL);
			certstore_key_desc(X509_REQ_get0_pubkey(req), buf,
			    sizeof(buf));
			row->f[6] = xstrdup(buf);
			X509_REQ_free(req);
		} else {
			row->f[1] = xstrdup("(unreadable request)");
			row->f[2] = xstrdup("-");
			row->f[6] = xstrdup("-");
		}
		row->f[3] = xstrdup("-");
		row->f[4] = xstrdup("-");
		row->f[5] = xstrdup("-");
		row->f[7] = xstrdup(entry_file(data_dir, id, ".key") ?
		    "csr pending" : "csr pending, key missing");
		return;
	}
	row->f[1] = xstrdup("-");
	row->f[2] = xstrdup("-");
	row->f[3] = xstrdup("-");
	row->f[4] = xstrdup("-");
	row->f[5] = xstrdup("-");
	row->f[6] = xstrdup("-");
	row->f[7] = xstrdup("key only");
}

static int
c_list(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const char *hdr[8] = { "ID", "SUBJECT", "SANS", "ISSUER",
	    "NOT-AFTER", "DAYS", "KEY", "" };
	struct conf *conf;
	struct row *rows;
	char **ids, why[512];
	size_t n, i, w[8];
	int r, k;

	if ((r = simple_opts(s, &cpath, argc, argv)) >= 0)
		return r;
	if (optind < argc)
		return usage_error(s, "unexpected argument '%s'", argv[optind]);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (certstore_list_ids(conf->data_dir, &ids, &n, why,
	    sizeof(why)) == -1) {
		cmd_fail("cannot list certificates: %s", why);
		conf_free(conf);
		return 1;
	}
	if (n == 0) {
		printf("no certificates in %s/%s (create one with `postern cert "
		    "selfsign` or `postern cert csr`)\n", conf->data_dir,
		    CERTSTORE_SUBDIR);
		conf_free(conf);
		return 0;
	}
	rows = xcalloc(n, sizeof(*rows));
	for (k = 0; k < 8; k++)
		w[k] = strlen(hdr[k]);
	for (i = 0; i < n; i++) {
		fill_row(conf->data_dir, ids[i], &rows[i]);
		for (k = 0; k < 8; k++)
			if (strlen(rows[i].f[k]) > w[k])
				w[k] = strlen(rows[i].f[k]);
	}
	for (i = 0; i <= n; i++) {
		struct strbuf sb = STRBUF_INIT;
		for (k = 0; k < 8; k++) {
			const char *f = i == 0 ? hdr[k] : rows[i - 1].f[k];
			if (k < 7 && k > 0)
				strbuf_puts(&sb, "  ");
			if (k == 7) {
				if (f[0])
					strbuf_printf(&sb, "  %s", f);
			} else
				strbuf_printf(&sb, "%-*s", (int)w[k], f);
		}
		while (sb.len > 0 && sb.s[sb.len - 1] == ' ')
			sb.s[--sb.len] = '\0';
		printf("%s\n", sb.s);
		strbuf_free(&sb);
	}
	for (i = 0; i < n; i++)
		for (k = 0; k < 8; k++)
			free(rows[i].f[k]);
	free(rows);
	strv_free(ids, n);
	conf_free(conf);
	return 0;
}

static void
show_cert(X509 *x, const char *indent)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[512], d[64];

	certstore_name(X509_get_subject_name(x), buf, sizeof(buf));
	printf("%ssubject:     %s\n", indent, buf);
	certstore_name(X509_get_issuer_name(x), buf, sizeof(buf));
	printf("%sissuer:      %s%s\n", indent, buf,
	    certstore_is_self_signed(x) ? " (self-signed)" : "");
	serial_hex(x, buf, sizeof(buf));
	printf("%sserial:      %s\n", indent, buf);
	certstore_date(X509_get0_notBefore(x), 1, buf, sizeof(buf));
	printf("%snot before:  %s\n", indent, buf);
	certstore_date(X509_get0_notAfter(x), 1, buf, sizeof(buf));
	days_text(x, d, sizeof(d));
	printf("%snot after:   %s (%s)\n", indent, buf, d);
	certchain_sans(cert_sans(x), ", ", &sb);
	printf("%sSANs:        %s\n", indent, sb.s);
	strbuf_free(&sb);
}

static int
c_show(const struct sub *s, const char *cpath, int argc, char **argv)
{
	STACK_OF(X509) *certs = NULL;
	struct strbuf sb = STRBUF_INIT;
	struct conf *conf;
	char path[4096], why[512], buf[512], kd[64], icn[256];
	const char *id;
	EVP_PKEY *key = NULL;
	X509 *x;
	int r, i, rc = 1;

	if ((r = simple_opts(s, &cpath, argc, argv)) >= 0)
		return r;
	if (optind >= argc)
		return usage_error(s, "which certificate? give its ID");
	if (optind + 1 < argc)
		return usage_error(s, "unexpected argument '%s'",
		    argv[optind + 1]);
	id = argv[optind];
	if (!certstore_valid_id(id))
		return usage_error(s, "'%s' is not a valid ID", id);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (!entry_file(conf->data_dir, id, ".pem")) {
		X509_REQ *req;

		certstore_path(conf->data_dir, id, ".csr", path, sizeof(path));
		if (!entry_file(conf->data_dir, id, ".csr") ||
		    (req = read_csr(path)) == NULL) {
			cmd_fail("cannot show '%s': no such certificate in "
			    "%s/%s (see `postern cert list`)", id,
			    conf->data_dir, CERTSTORE_SUBDIR);
			goto out;
		}
		certstore_name(X509_REQ_get_subject_name(req), buf,
		    sizeof(buf));
		certchain_sans(req_sans(req), ", ", &sb);
		certstore_key_desc(X509_REQ_get0_pubkey(req), kd, sizeof(kd));
		printf("id:          %s (certificate request pending)\n"
		    "subject:     %s\nSANs:        %s\nkey:         %s\n"
		    "request:     %s\n"
		    "next:        send the request to your CA, then `postern "
		    "cert import --name %s --cert SIGNED.pem`\n", id, buf, sb.s,
		    kd, path, id);
		X509_REQ_free(req);
		rc = 0;
		goto out;
	}
	certstore_path(conf->data_dir, id, ".pem", path, sizeof(path));
	if (certstore_read_certs(path, &certs, why, sizeof(why)) == -1) {
		cmd_fail("cannot show '%s': %s", id, why);
		goto out;
	}
	x = sk_X509_value(certs, 0);
	printf("id:          %s\n", id);
	show_cert(x, "");
	certstore_path(conf->data_dir, id, ".key", path, sizeof(path));
	certstore_key_desc(X509_get0_pubkey(x), kd, sizeof(kd));
	r = certstore_read_key(path, &key, why, sizeof(why));
	printf("key:         %s (%s)\n", kd, r == 1 ?
	    (certstore_key_matches(x, key) ? "private key stored, matches" :
	    "stored private key does NOT match; see `postern cert check`") :
	    r == 0 ? "no private key stored" : why);
	fingerprint(x, buf, sizeof(buf));
	printf("sha256:      %s\n", buf);
	if (sk_X509_num(certs) == 1)
		printf("chain:       (none)\n");
	else
		printf("chain:\n");
	for (i = 1; i < sk_X509_num(certs); i++) {
		char a[64], b[64];
		X509 *c = sk_X509_value(certs, i);

		certstore_name(X509_get_subject_name(c), buf, sizeof(buf));
		certstore_cn(X509_get_issuer_name(c), icn, sizeof(icn));
		certstore_date(X509_get0_notBefore(c), 0, a, sizeof(a));
		certstore_date(X509_get0_notAfter(c), 0, b, sizeof(b));
		printf("  %d. %s -> %s (%s .. %s)\n", i, buf, icn, a, b);
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	strbuf_free(&sb);
	conf_free(conf);
	return rc;
}

static int
c_check(const struct sub *s, const char *cpath, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "hostname", required_argument, NULL, O_HOSTNAME },
		{ "cert", required_argument, NULL, O_CERT },
		{ "chain", required_argument, NULL, O_CHAIN },
		{ "key", required_argument, NULL, O_KEY },
		COMMON_LONGOPTS, { NULL, 0, NULL, 0 }
	};
	const char *id = NULL, *host = NULL, *certf = NULL, *chainf = NULL;
	const char *keyf = NULL;
	STACK_OF(X509) *certs = NULL, *more = NULL;
	struct conf *conf = NULL;
	struct checkreq cr;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	char why[512], path[4096], keywhere[600] = "", found[256];
	int c, r, rc = 1, fails;

	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_HOSTNAME: host = optarg; break;
		case O_CERT: certf = optarg; break;
		case O_CHAIN: chainf = optarg; break;
		case O_KEY: keyf = optarg; break;
		case 'c': cpath = optarg; break;
		case 'h': sub_usage(s, stdout); return 0;
		default: return bad_option(s, c, argv);
		}
	}
	if (optind < argc)
		id = argv[optind++];
	if (optind < argc)
		return usage_error(s, "unexpected argument '%s'", argv[optind]);
	if ((id == NULL) == (certf == NULL))
		return usage_error(s, "give either an ID or --cert FILE");
	if (id != NULL && (chainf || keyf))
		return usage_error(s, "--chain and --key go with --cert");
	if (id != NULL && !certstore_valid_id(id))
		return usage_error(s, "'%s' is not a valid ID", id);

	if (certf != NULL) {
		if (certstore_read_certs(certf, &certs, why, sizeof(why)) == -1)
			return cmd_fail("cannot check: %s", why);
		if (chainf && certstore_read_certs(chainf, &more, why,
		    sizeof(why)) == -1) {
			cmd_fail("cannot check: %s", why);
			goto out;
		}
		while (more && sk_X509_num(more) > 0)
			sk_X509_push(certs, sk_X509_shift(more));
		r = certstore_read_key(keyf ? keyf : certf, &key, why,
		    sizeof(why));
		if (r == -1) {
			cmd_fail("cannot check: %s", why);
			goto out;
		}
		if (r == 0 && keyf) {
			cmd_fail("cannot check: %s holds no private key (name "
			    "the key file of the certificate)", keyf);
			goto out;
		}
		if (r == 1)
			bstrlcpy(keywhere, keyf ? keyf : certf,
			    sizeof(keywhere));
	}
	if ((conf = conf_load_for_command(cpath)) == NULL)
		goto out;
	if (id != NULL) {
		if (!entry_file(conf->data_dir, id, ".pem")) {
			if (entry_file(conf->data_dir, id, ".csr"))
				cmd_fail("cannot check '%s': it is a pending "
				    "request (import the CA-signed certificate "
				    "with `postern cert import --name %s "
				    "--cert FILE`)", id, id);
			else
				cmd_fail("cannot check '%s': no such "
				    "certificate in %s/%s (see `postern cert "
				    "list`)", id, conf->data_dir,
				    CERTSTORE_SUBDIR);
			goto out;
		}
		certstore_path(conf->data_dir, id, ".pem", path, sizeof(path));
		if (certstore_read_certs(path, &certs, why, sizeof(why)) ==
		    -1) {
			cmd_fail("cannot check '%s': %s", id, why);
			goto out;
		}
		certstore_path(conf->data_dir, id, ".key", path, sizeof(path));
		r = certstore_read_key(path, &key, why, sizeof(why));
		if (r == -1) {
			cmd_fail("cannot check '%s': %s", id, why);
			goto out;
		}
		bstrlcpy(keywhere, path, sizeof(keywhere));
	}
	leaf = sk_X509_shift(certs);
	if (key == NULL && certf != NULL) {
		r = certstore_find_key(conf->data_dir, leaf, NULL, &key, found,
		    sizeof(found), why, sizeof(why));
		if (r == 1)
			snprintf(keywhere, sizeof(keywhere), "stored key of '%s'",
			    found);
	}
	memset(&cr, 0, sizeof(cr));
	cr.leaf = leaf;
	cr.chain = certs;
	cr.key = key;
	cr.keywhere = keywhere;
	cr.host = host ? host : conf->hostname;
	cr.id = id;
	cr.certfile = certf;
	cr.chainfile = chainf;
	cr.keyfile = keyf;
	fails = run_checks(conf, &cr);
	if (fails)
		printf("%d problem%s found\n", fails, fails == 1 ? "" : "s");
	else
		printf("no problems found\n");
	rc = fails ? 1 : 0;
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(more, X509_free);
	conf_free(conf);
	return rc;
}

static const struct sub subs[] = {
	{ "selfsign", c_selfsign,
	  "selfsign --cn NAME [--san NAME]... [--days N] "
	  "[--key rsa2048|rsa3072|ec256] --name ID [--force] [-c FILE]",
	  "A new key and a self-signed certificate (SHA-256, random serial, "
	  "SANs: the CN and\neach --san; IP addresses become IP SANs), valid "
	  "--days days (default 365),\nstored as ID.  An existing ID is kept "
	  "unless --force.\n" },
	{ "csr", c_csr,
	  "csr --cn NAME [--san NAME]... [--org O] [--ou U] [--country C] "
	  "[--state S]\n    [--locality L] [--email E] [--key TYPE] --name ID "
	  "[--out FILE] [--force] [-c FILE]",
	  "A new key (stored as ID.key, mode 0600; it never leaves the store) "
	  "and a\ncertificate request with the SANs, stored as ID.csr and "
	  "printed (or written\nto --out FILE).  Send it to your CA, then "
	  "`postern cert import --name ID --cert FILE`.\n" },
	{ "import", c_import,
	  "import --name ID (--cert FILE [--chain FILE] [--key FILE] |\n"
	  "    --pkcs12 FILE (--password-env VAR | --password-file FILE)) "
	  "[--force] [-c FILE]",
	  "Store a certificate with its key and intermediates.  FILE may hold "
	  "the\ncertificate, its intermediates and even its key.  Without a "
	  "key, the key of a\nrequest made here (`cert csr`) is found by "
	  "itself.  The intermediates are put\nin chain order, duplicates and "
	  "the root are left out, and every change is\nreported.  An existing "
	  "ID is kept unless --force.\n" },
	{ "export", c_export,
	  "export ID --pkcs12 FILE (--password-env VAR | --password-file "
	  "FILE) [--force] [-c FILE]",
	  "Write key, certificate and chain as PKCS#12 (AES-256, PBKDF2, "
	  "SHA-256 MAC),\nmode 0600, friendly name ID.  Without a password "
	  "option the password is asked\nfor on the terminal.\n" },
	{ "list", c_list, "list [-c FILE]",
	  "One line per entry: ID, subject CN, SANs, issuer CN, not-after, "
	  "days left, key;\nentries with only a key and a request say `csr "
	  "pending`.\n" },
	{ "show", c_show, "show ID [-c FILE]",
	  "Subject, issuer, serial, validity, SANs, key, SHA-256 fingerprint "
	  "and each\ncertificate of the chain.\n" },
	{ "check", c_check,
	  "check ID [--hostname H] [-c FILE]\n"
	  "       postern cert check --cert FILE [--chain FILE] [--key FILE] "
	  "[--hostname H] [-c FILE]",
	  "Check a stored certificate, or files before importing them: key "
	  "matches, chain\ncomplete (against the trust store and, with "
	  "tls.system_cas, the system CAs),\nin order, without duplicates; "
	  "not expired or expiring within 30 days; valid\nfor the host name "
	  "(--hostname, default the configuration's hostname).\nEach problem "
	  "is a `FAIL:` line followed by a `fix:` line.  Exit 0 when nothing\n"
	  "failed, 1 otherwise.\n" },
	{ NULL, NULL, NULL, NULL }
};

int
cmd_cert(int argc, char **argv)
{
	const char *path = NULL;
	const struct sub *s;
	int i, rc;

	if ((rc = cmd_leading_options(argc, argv, usage, &path, &i)) != -1)
		return rc;
	if (strcmp(argv[i], "fetch") == 0) {
		char **nargv;
		int nargc = 0, k, r;

		nargv = xcalloc((size_t)argc + 3, sizeof(*nargv));
		nargv[nargc++] = argv[i];
		if (path != NULL) {
			nargv[nargc++] = (char *)"-c";
			nargv[nargc++] = (char *)path;
		}
		for (k = i + 1; k < argc; k++)
			nargv[nargc++] = argv[k];
		r = cmd_cert_fetch(nargc, nargv);
		free(nargv);
		return r;
	}
	for (s = subs; s->name != NULL; s++)
		if (strcmp(argv[i], s->name) == 0)
			break;
	if (s->name == NULL) {
		fprintf(stderr, "postern: cert: unknown command '%s' (see "
		    "`postern cert --help`)\n", argv[i]);
		return 2;
	}
	optind = 0;		/* glibc: full re-initialisation */
	opterr = 0;
	return s->fn(s, path, argc - i, argv + i);
}
