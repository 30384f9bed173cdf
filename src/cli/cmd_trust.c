/*
 * cmd_trust.c - `postern trust`: the CA certificates in <data_dir>/trust
 * (truststore.h) that Postern trusts when it verifies peers, in addition
 * to the system CAs when tls.system_cas is true.
 *
 *   trust add FILE --name NAME [--force]   PEM (any number) or DER file
 *   trust list
 *   trust remove NAME
 *
 * The admin's FILE is read with the caller's rights; the store is written
 * while acting as the configuration's user (runas.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "cmd.h"
#include "conf.h"
#include "runas.h"
#include "strbuf.h"
#include "truststore.h"
#include "util.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern trust [-c FILE] COMMAND\n"
	    "  add FILE --name NAME [--force]   trust the CA certificate(s) in "
	    "FILE (PEM or DER)\n"
	    "  list                             name, subject, not-after and "
	    "number of certificates\n"
	    "  remove NAME                      stop trusting NAME\n"
	    "The trust store is <data_dir>/trust/NAME.pem; peers are verified "
	    "against it and,\nwith tls.system_cas = true (the default), the "
	    "system CAs.\n");
}

enum { O_NAME = 256, O_FORCE };

/* Options: -c FILE, --help, and for add --name/--force.  Returns -1 to go
 * on, else the exit status. */
static int
parse(const char *sub, int argc, char **argv, const char **cpath,
    const char **name, int *force)
{
	static const struct option lo[] = {
		{ "name", required_argument, NULL, O_NAME },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			*cpath = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case O_NAME:
		case O_FORCE:
			if (name == NULL)
				return cmd_usage_error("trust", sub, "%s does not take %s",
				    sub, argv[optind - 1]);
			if (c == O_NAME)
				*name = optarg;
			else
				*force = 1;
			break;
		case ':':
			return cmd_usage_error("trust", sub, "option %s needs a value",
			    argv[optind - 1]);
		default:
			return cmd_usage_error("trust", sub, "unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	return -1;
}

static void
print_cert(X509 *x, const char *indent)
{
	char name[512], date[64];

	certstore_name(X509_get_subject_name(x), name, sizeof(name));
	certstore_date(X509_get0_notAfter(x), 0, date, sizeof(date));
	printf("%s%s (not after %s)\n", indent, name, date);
}

static int
t_add(const char *cpath, int argc, char **argv)
{
	STACK_OF(X509) *certs = NULL;
	struct conf *conf = NULL;
	const char *name = NULL, *file;
	char why[512], path[4096], dir[4096];
	struct stat st;
	BIO *bio = NULL;
	char *data;
	long len;
	int r, force = 0, rc = 1, i, n;

	if ((r = parse("add", argc, argv, &cpath, &name, &force)) >= 0)
		return r;
	if (optind >= argc)
		return cmd_usage_error("trust", "add", "which file? give the certificate "
		    "file to trust");
	if (optind + 1 < argc)
		return cmd_usage_error("trust", "add", "unexpected argument '%s'",
		    argv[optind + 1]);
	file = argv[optind];
	if (name == NULL)
		return cmd_usage_error("trust", "add", "--name NAME is required");
	if (!truststore_valid_name(name))
		return cmd_usage_error("trust", "add", "--name '%s' is not a valid name "
		    "(letters, digits, '.', '_' and '-', not starting with "
		    "'.')", name);
	if (certstore_read_certs(file, &certs, why, sizeof(why)) == -1)
		return cmd_fail("cannot add %s to the trust store: %s", file,
		    why);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		goto out;
	if (truststore_path(conf->data_dir, name, path, sizeof(path)) == -1 ||
	    bsnprintf(dir, sizeof(dir), "%s/%s", conf->data_dir,
	    TRUSTSTORE_SUBDIR) == -1) {
		cmd_fail("cannot add %s to the trust store: data_dir path too "
		    "long (shorten data_dir)", file);
		goto out;
	}
	if (!force && stat(path, &st) == 0) {
		cmd_fail("cannot add %s to the trust store: '%s' exists "
		    "already (add --force to replace it, or choose another "
		    "--name)", file, name);
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		fatalx("out of memory");
	n = sk_X509_num(certs);
	for (i = 0; i < n; i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(certs, i)))
			fatalx("out of memory");
	len = BIO_get_mem_data(bio, &data);
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		goto out;
	if (certstore_mkdir(conf->data_dir, 0700, why, sizeof(why)) == -1 ||
	    certstore_mkdir(dir, 0755, why, sizeof(why)) == -1) {
		runas_restore();
		cmd_fail("cannot add %s to the trust store: %s", file, why);
		goto out;
	}
	if (write_file_atomic(path, data, (size_t)len, 0644) == -1) {
		runas_restore();
		cmd_fail("cannot add %s to the trust store: cannot write %s: "
		    "%s (check the permissions of %s)", file, path,
		    strerror(errno), dir);
		goto out;
	}
	runas_restore();
	printf("added '%s' to the trust store: %d certificate%s\n", name, n,
	    n == 1 ? "" : "s");
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(certs, i);
		char cn[256];

		print_cert(x, "  ");
		certstore_cn(X509_get_subject_name(x), cn, sizeof(cn));
		if (X509_check_ca(x) == 0)
			printf("warn: '%s' is not a CA certificate: only this "
			    "very certificate is trusted (a pinned server "
			    "certificate)\n", cn);
		if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
			printf("warn: '%s' has expired; peers using it will "
			    "fail verification\n", cn);
	}
	rc = 0;
out:
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	conf_free(conf);
	return rc;
}

static int
t_list(const char *cpath, int argc, char **argv)
{
	struct conf *conf;
	char **names, why[512], path[4096];
	size_t n, i, wname = 4, wsubj = 7;
	struct strbuf *subj;
	char (*dates)[16];
	int *counts, r;

	if ((r = parse("list", argc, argv, &cpath, NULL, NULL)) >= 0)
		return r;
	if (optind < argc)
		return cmd_usage_error("trust", "list", "unexpected argument '%s'",
		    argv[optind]);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (truststore_list(conf->data_dir, &names, &n, why,
	    sizeof(why)) == -1) {
		conf_free(conf);
		return cmd_fail("cannot list the trust store: %s", why);
	}
	if (n == 0)
		printf("the trust store %s/%s is empty (add a CA with `postern "
		    "trust add FILE --name NAME`)\n", conf->data_dir,
		    TRUSTSTORE_SUBDIR);
	subj = xcalloc(n + 1, sizeof(*subj));
	dates = xcalloc(n + 1, sizeof(*dates));
	counts = xcalloc(n + 1, sizeof(*counts));
	for (i = 0; i < n; i++) {
		STACK_OF(X509) *certs;
		char cn[256];

		strbuf_init(&subj[i]);
		truststore_path(conf->data_dir, names[i], path, sizeof(path));
		if (certstore_read_certs(path, &certs, why, sizeof(why)) ==
		    -1) {
			strbuf_printf(&subj[i], "(unreadable: %s)", why);
			bstrlcpy(dates[i], "-", sizeof(dates[i]));
		} else {
			X509 *x = sk_X509_value(certs, 0);
			certstore_cn(X509_get_subject_name(x), cn, sizeof(cn));
			strbuf_puts(&subj[i], cn);
			certstore_date(X509_get0_notAfter(x), 0, dates[i],
			    sizeof(dates[i]));
			counts[i] = sk_X509_num(certs);
			sk_X509_pop_free(certs, X509_free);
		}
		if (strlen(names[i]) > wname)
			wname = strlen(names[i]);
		if (subj[i].len > wsubj)
			wsubj = subj[i].len;
	}
	if (n > 0) {
		printf("%-*s  %-*s  %-10s  %s\n", (int)wname, "NAME", (int)wsubj,
		    "SUBJECT", "NOT-AFTER", "CERTS");
		for (i = 0; i < n; i++)
			printf("%-*s  %-*s  %-10s  %d\n", (int)wname, names[i],
			    (int)wsubj, subj[i].s, dates[i], counts[i]);
	}
	printf("system CAs: %s (tls.system_cas = %s)\n", conf->tls.system_cas ?
	    "also used" : "not used", conf->tls.system_cas ? "true" : "false");
	for (i = 0; i < n; i++)
		strbuf_free(&subj[i]);
	free(subj);
	free(dates);
	free(counts);
	strv_free(names, n);
	conf_free(conf);
	return 0;
}

static int
t_remove(const char *cpath, int argc, char **argv)
{
	struct conf *conf;
	const char *name;
	char path[4096], dir[4096];
	int r, rc = 1;

	if ((r = parse("remove", argc, argv, &cpath, NULL, NULL)) >= 0)
		return r;
	if (optind >= argc)
		return cmd_usage_error("trust", "remove", "which entry? give its NAME");
	if (optind + 1 < argc)
		return cmd_usage_error("trust", "remove", "unexpected argument '%s'",
		    argv[optind + 1]);
	name = argv[optind];
	if (!truststore_valid_name(name))
		return cmd_usage_error("trust", "remove", "'%s' is not a valid name", name);
	if ((conf = conf_load_for_command(cpath)) == NULL)
		return 1;
	if (truststore_path(conf->data_dir, name, path, sizeof(path)) == -1 ||
	    bsnprintf(dir, sizeof(dir), "%s/%s", conf->data_dir,
	    TRUSTSTORE_SUBDIR) == -1) {
		cmd_fail("cannot remove '%s': data_dir path too long", name);
		goto out;
	}
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		goto out;
	if (unlink(path) == -1) {
		int e = errno;

		runas_restore();
		if (e == ENOENT)
			cmd_fail("cannot remove '%s' from the trust store: no "
			    "such entry (see `postern trust list`)", name);
		else
			cmd_fail("cannot remove '%s' from the trust store: %s "
			    "(check the permissions of %s)", name, strerror(e),
			    dir);
		goto out;
	}
	fsync_dir(dir);
	runas_restore();
	printf("removed '%s' from the trust store\n", name);
	rc = 0;
out:
	conf_free(conf);
	return rc;
}

int
cmd_trust(int argc, char **argv)
{
	const char *path = NULL;
	int i, rc;

	if ((rc = cmd_leading_options(argc, argv, usage, &path, &i)) != -1)
		return rc;
	if (strcmp(argv[i], "add") == 0)
		return t_add(path, argc - i, argv + i);
	if (strcmp(argv[i], "list") == 0)
		return t_list(path, argc - i, argv + i);
	if (strcmp(argv[i], "remove") == 0)
		return t_remove(path, argc - i, argv + i);
	fprintf(stderr, "postern: trust: unknown command '%s' (see `postern "
	    "trust --help`)\n", argv[i]);
	return 2;
}
