/*
 * cmd_config.c - `postern config check [-c FILE]` and `postern config show
 * [-c FILE]` (postern(8)).
 *
 * check parses and validates the configuration and prints every problem as
 * "FILE:LINE: message" on stderr; show prints the effective configuration
 * (defaults filled in, secrets masked) in libconfig syntax.  Without -c the
 * file is the one serve would use: CONF_DEFAULT_PATH if it exists, else the
 * embedded default.  check also loads every listener's certificates with
 * the `tls` settings, as serve would, every DKIM key (refused: unreadable,
 * not RSA or Ed25519, RSA under 1024 bits; warned: RSA under 2048 bits,
 * readable by other users) and the smime keys directory (each sign
 * entry's key; warned: recipient certificates that cannot be used).
 * Public: cmd_config().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "certstore.h"
#include "cmd.h"
#include "conf.h"
#include "dkim.h"
#include "runas.h"
#include "smime.h"
#include "tls_ctx.h"
#include "truststore.h"
#include "util.h"

static void	usage(FILE *);
static int	parse_args(int, char **, const char **, const char **);
static void	print_errors(const struct conf_errors *);

static void
usage(FILE *fp)
{
	fputs("usage: postern config check [-c FILE]\n"
	    "       postern config show [-c FILE]\n"
	    "\n"
	    "  check  parse and validate; print each problem as "
	    "FILE:LINE: message\n"
	    "  show   print the effective configuration, defaults filled in\n"
	    "  -c FILE  configuration file (default " CONF_DEFAULT_PATH
	    " if it\n"
	    "           exists, else the embedded default)\n", fp);
}

/* 0 ok, 2 usage error, -1 --help was asked for. */
static int
parse_args(int argc, char **argv, const char **sub, const char **path)
{
	int i;

	*sub = NULL;
	*path = NULL;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return -1;
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc || *path != NULL)
				return 2;
			*path = argv[++i];
		} else if (strncmp(argv[i], "-c", 2) == 0) {
			if (*path != NULL)
				return 2;
			*path = argv[i] + 2;
		} else if (argv[i][0] == '-' || *sub != NULL)
			return 2;
		else
			*sub = argv[i];
	}
	if (*sub == NULL ||
	    (strcmp(*sub, "check") != 0 && strcmp(*sub, "show") != 0))
		return 2;
	return 0;
}

static void
print_errors(const struct conf_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
}

/* The SNI certificates of a listener whose default is still to be made. */
static int
check_sni_certs(const struct conf *conf, const struct conf_listener *l)
{
	X509 *leaf;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	char why[1024];
	size_t i;
	int bad = 0;

	for (i = 0; i < l->nsni_certs; i++) {
		if (certstore_load_ref(conf->data_dir, &l->sni_certs[i], &leaf,
		    &key, &chain, why, sizeof(why)) == -1) {
			fprintf(stderr, "%s:%d: listener %s: %s\n", conf->path,
			    l->line, l->name, why);
			ERR_clear_error();
			bad++;
			continue;
		}
		X509_free(leaf);
		EVP_PKEY_free(key);
		sk_X509_pop_free(chain, X509_free);
	}
	return bad;
}

/* One TLS endpoint (an SMTP listener or the HTTPS API): its
 * certificates load with the `tls` settings.  The number of problems. */
static int
check_endpoint_tls(const struct conf *conf, const struct conf_listener *l,
    int *noted)
{
	SSL_CTX *ctx;
	char why[1024];

	if (tls_demo_cert_missing(conf, l)) {
		if (!(*noted)++)
			printf("note: no certificate \"default\" yet; "
			    "`postern serve` will make a self-signed "
			    "demo certificate for %s\n", conf->hostname);
		return check_sni_certs(conf, l);
	}
	if ((ctx = tls_server_ctx_new(conf, l, why, sizeof(why))) == NULL) {
		fprintf(stderr, "%s:%d: %s %s: %s\n", conf->path, l->line,
		    l == conf->http ? "http" : "listener",
		    l == conf->http ? "certificate" : l->name, why);
		ERR_clear_error();
		return 1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

/*
 * The certificates of every listener that speaks TLS and of
 * the HTTPS API load and match their
 * keys, and the `tls` settings are accepted by OpenSSL (what serve would
 * refuse to start with).  The "default" certificate may be missing: serve
 * makes the demo certificate then.  Returns the number of problems.
 */
static int
check_tls(const struct conf *conf)
{
	SSL_CTX *ctx;
	char why[1024];
	size_t i;
	int bad = 0, noted = 0;

	/* The `tls` block alone (it also serves the client side). */
	if ((ctx = tls_client_ctx_new(conf, 0, why, sizeof(why))) == NULL) {
		fprintf(stderr, "%s: %s\n", conf->path, why);
		ERR_clear_error();
		return 1;
	}
	SSL_CTX_free(ctx);
	for (i = 0; i < conf->nlisteners; i++)
		if (conf_listener_needs_tls(conf, &conf->listeners[i]))
			bad += check_endpoint_tls(conf, &conf->listeners[i],
			    &noted);
	if (conf->http != NULL)
		bad += check_endpoint_tls(conf, conf->http, &noted);
	return bad;
}

/*
 * Outbound delivery settings that parse but cannot work as they stand:
 * said as warnings (serve still starts; the file may appear, or be
 * readable only by `user`), so the admin hears it now rather than from
 * the first deferred message.
 */
static void
check_delivery(const struct conf *conf)
{
	const struct conf_route *r;
	size_t i, n = 0;
	char **names = NULL, why[256];
	int verify = 0;

	for (i = 0; i < conf->nroutes; i++) {
		r = &conf->routes[i];
		if (r->auth_password_file != NULL &&
		    access(r->auth_password_file, R_OK) == -1)
			printf("warning: %s:%d: route %s: auth_password_file %s "
			    "cannot be read (%s); delivery through this route "
			    "will be deferred until it can\n", conf->path,
			    r->line, r->domain, r->auth_password_file,
			    strerror(errno));
	}
	for (i = 0; i < conf->ndestinations; i++)
		if (conf->destinations[i].tls == DEST_TLS_PREFERRED_VERIFY ||
		    conf->destinations[i].tls == DEST_TLS_REQUIRED_VERIFY)
			verify = 1;
	if (!verify || conf->tls.system_cas)
		return;
	if (truststore_list(conf->data_dir, &names, &n, why, sizeof(why)) == 0 &&
	    n == 0)
		printf("warning: %s: a destination verifies certificates but "
		    "the trust store is empty and tls.system_cas is false: "
		    "every verification will fail (add the CA with `postern "
		    "trust add FILE --name NAME`)\n", conf->path);
	strv_free(names, n);
}

/* Can the daemon's user read `path`?  (As root: acting as that user.) */
static int
user_can_read(const struct conf *conf, const char *path)
{
	int ok;

	if (geteuid() != 0 || strcmp(conf->user, "root") == 0)
		return 1;
	if (runas_act_as(conf->user) == -1)
		return 1;	/* said why; serve will say more */
	ok = faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == 0;
	runas_restore();
	return ok;
}

/* Every DKIM key loads as serve's queue manager would load it.
 * Returns the number of problems (warnings are printed, not counted). */
static int
check_dkim(const struct conf *conf)
{
	const struct conf_dkim *d;
	struct dkim_key *k;
	struct stat st;
	char why[512];
	size_t i;
	int bad = 0;

	for (i = 0; i < conf->ndkim; i++) {
		d = &conf->dkim[i];
		if ((k = dkim_key_load(d->key, why, sizeof(why))) == NULL) {
			fprintf(stderr, "%s:%d: dkim d=%s s=%s: %s\n",
			    conf->path, d->line, d->domain, d->selector, why);
			bad++;
			continue;
		}
		if (!user_can_read(conf, d->key)) {
			fprintf(stderr, "%s:%d: dkim d=%s s=%s: user %s cannot "
			    "read %s (chown %s %s; keep it mode 0600)\n",
			    conf->path, d->line, d->domain, d->selector,
			    conf->user, d->key, conf->user, d->key);
			bad++;
		}
		if (k->alg == DKIM_RSA_SHA256 && k->bits < DKIM_RSA_GOOD_BITS)
			printf("warning: %s:%d: dkim d=%s s=%s: the RSA key %s "
			    "has only %d bits (make a 2048-bit one with "
			    "`postern dkim keygen` and a new selector)\n",
			    conf->path, d->line, d->domain, d->selector, d->key,
			    k->bits);
		if (stat(d->key, &st) == 0 && (st.st_mode & 077) != 0)
			printf("warning: %s:%d: dkim d=%s s=%s: the private key "
			    "%s is readable by other users (chmod 600 %s)\n",
			    conf->path, d->line, d->domain, d->selector, d->key,
			    d->key);
		dkim_key_free(k);
	}
	return bad;
}

/* Recipient certificates (<address>.crt) that cannot be used: warned
 * (that mail goes unencrypted, or bounces with encrypt = required). */
static void
check_smime_certs(const struct conf *conf, time_t now)
{
	char name[512], why[1024];
	struct dirent *de;
	size_t n;
	DIR *dir;
	X509 *x;

	if ((dir = opendir(conf->smime_keys)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		n = strlen(de->d_name);
		if (n <= 4 || n >= sizeof(name) || strcmp(de->d_name + n - 4,
		    ".crt") != 0 || de->d_name[0] == '.')
			continue;
		memcpy(name, de->d_name, n - 4);
		name[n - 4] = '\0';
		if ((x = smime_recipient_load(conf->smime_keys, name, now, why,
		    sizeof(why))) == NULL)
			printf("warning: %s:%d: smime: %s\n", conf->path,
			    conf->smime_line, why);
		X509_free(x);
	}
	closedir(dir);
}

/* The smime keys directory and the key of every smime.sign entry.
 * Returns the number of problems. */
static int
check_smime(const struct conf *conf)
{
	struct smime_signer *s;
	char why[1024], path[4096];
	time_t now = time(NULL);
	struct stat st;
	size_t i;
	int bad = 0, dom;

	if (conf->smime_keys == NULL)
		return 0;
	if (stat(conf->smime_keys, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s:%d: smime: keys directory %s: %s (create "
		    "it and put <address>.pem / <domain>.pem signing keys and "
		    "<address>.crt recipient certificates in it)\n", conf->path,
		    conf->smime_line, conf->smime_keys, access(conf->smime_keys,
		    F_OK) == -1 ? strerror(errno) : "not a directory");
		return 1;
	}
	for (i = 0; i < conf->nsmime_sign; i++) {
		dom = strchr(conf->smime_sign[i], '@') == NULL;
		(void)bsnprintf(path, sizeof(path), "%s/%s.pem",
		    conf->smime_keys, conf->smime_sign[i]);
		if (dom && access(path, F_OK) == -1) {
			printf("warning: %s:%d: smime: no domain key %s: only "
			    "senders with their own <address>.pem there are "
			    "signed for; mail from other %s senders is "
			    "deferred\n", conf->path, conf->smime_line, path,
			    conf->smime_sign[i]);
			continue;
		}
		s = smime_signer_load(conf->smime_keys, conf->smime_sign[i],
		    dom ? SMIME_DOMAIN_KEY : 0, now, why, sizeof(why));
		if (s == NULL) {
			fprintf(stderr, "%s:%d: smime: %s\n", conf->path,
			    conf->smime_line, why);
			bad++;
		}
		smime_signer_free(s);
	}
	check_smime_certs(conf, now);
	return bad;
}

/* `postern config check|show [-c FILE]`; returns the exit status. */
int
cmd_config(int argc, char **argv)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *conf;
	const char *sub, *path;
	int rc;

	if ((rc = parse_args(argc, argv, &sub, &path)) != 0) {
		usage(rc == -1 ? stdout : stderr);
		return rc == -1 ? 0 : 2;
	}
	if (path == NULL)
		path = conf_default_path();
	conf = conf_load(path, &errs);
	if (conf == NULL || errs.n > 0) {
		print_errors(&errs);
		rc = 1;
	} else if (strcmp(sub, "check") == 0) {
		if (check_tls(conf) > 0) {
			fprintf(stderr, "%s: configuration has TLS problems; "
			    "`postern serve` would not start\n", conf->path);
			rc = 1;
		} else if (check_dkim(conf) + check_smime(conf) > 0) {
			fprintf(stderr, "%s: signing keys cannot be used (see "
			    "above); serve would defer or send unsigned the "
			    "mail they sign\n", conf->path);
			rc = 1;
		} else {
			check_delivery(conf);
			printf("%s: configuration OK\n", conf->path);
			rc = 0;
		}
	} else {
		conf_show(conf, stdout);
		rc = 0;
	}
	if (fflush(stdout) == EOF && rc == 0) {
		perror("postern config: stdout");
		rc = 1;
	}
	conf_free(conf);
	conf_errors_free(&errs);
	return rc;
}
