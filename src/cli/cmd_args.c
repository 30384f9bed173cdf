/*
 * cmd_args.c - option handling shared by the commands with subcommands
 * (queue, cert, trust): `postern CMD [-c FILE] [--help] SUBCOMMAND ...`,
 * the HOST[:PORT] argument and the TLS client context of the commands
 * that talk to a server (cert fetch, send, probe), and the one-line
 * failure message every command prints.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "tls_ctx.h"

int
cmd_leading_options(int argc, char **argv, void (*usage)(FILE *),
    const char **path, int *next)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			*path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "postern: %s: unknown option '%s' (see "
			    "`postern %s --help`)\n", argv[0], argv[i],
			    argv[0]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	*next = i;
	return -1;
}

int
cmd_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("postern: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int
cmd_usage_error(const char *cmd, const char *sub, const char *fmt, ...)
{
	va_list ap;

	if (sub != NULL)
		fprintf(stderr, "postern: %s %s: ", cmd, sub);
	else
		fprintf(stderr, "postern: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see `postern %s --help`)\n", cmd);
	return 2;
}

/* Split HOST[:PORT]. */
int
cmd_host_port(const char *arg, char *host, size_t hlen, int *port)
{
	const char *colon, *h = arg, *p = NULL;
	size_t n;
	char *end;
	long v;

	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');

		if (rb == NULL)
			return -1;
		h = arg + 1;
		n = (size_t)(rb - h);
		if (rb[1] == ':')
			p = rb + 2;
		else if (rb[1] != '\0')
			return -1;
	} else if ((colon = strchr(arg, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		n = (size_t)(colon - arg);
		p = colon + 1;
	} else
		n = strlen(arg);	/* a name, IPv4, or a bare IPv6 */
	if (n == 0 || n >= hlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = 0;
	if (p != NULL) {
		v = strtol(p, &end, 10);
		if (*p == '\0' || *end != '\0' || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

/* The client TLS context of a command. */
SSL_CTX *
cmd_tls_client(const struct conf *conf, int verify, int after,
    const char *trust, const char *cmd)
{
	char why[512];
	SSL_CTX *ctx;

	if ((ctx = tls_client_ctx_new(conf, verify, why, sizeof(why))) ==
	    NULL) {
		cmd_fail("%s: TLS client set-up: %s (fix the trust store with "
		    "`postern trust list`, or the tls block)", cmd, why);
		return NULL;
	}
	if (verify && after)
		tls_client_verify_after(ctx);
	if (trust != NULL && tls_client_ctx_add_trust(ctx, trust, why,
	    sizeof(why)) == -1) {
		cmd_fail("%s: --trust: %s (give a PEM file of CA "
		    "certificates)", cmd, why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* --starttls, --tls, --plain. */
int
cmd_tls_flag(const char *cmd, const char *arg, int *mode, int *set)
{
	static const char *const names[] = { "--starttls", "--tls",
	    "--plain" };
	int i;

	for (i = 0; i < 3; i++)
		if (strcmp(arg, names[i]) == 0) {
			if (*set && *mode != i + 1)
				return cmd_usage_error(cmd, NULL, "--starttls, "
				    "--tls and --plain exclude each other");
			*mode = i + 1;
			*set = 1;
			return 0;
		}
	return -1;
}
