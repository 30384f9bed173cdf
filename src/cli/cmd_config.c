/*
 * cmd_config.c - `postern config check [-c FILE]` and `postern config show
 * [-c FILE]` (postern(8)).
 *
 * check parses and validates the configuration and prints every problem as
 * "FILE:LINE: message" on stderr; show prints the effective configuration
 * (defaults filled in, secrets masked) in libconfig syntax.  Without -c the
 * file is the one serve would use: CONF_DEFAULT_PATH if it exists, else the
 * embedded default.  check also loads every listener's certificates with
 * the `tls` settings, as serve would.  Public: cmd_config().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "certstore.h"
#include "cmd.h"
#include "conf.h"
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
