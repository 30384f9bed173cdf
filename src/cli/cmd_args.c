/*
 * cmd_args.c - option handling shared by the commands with subcommands
 * (queue, cert, trust): `postern CMD [-c FILE] [--help] SUBCOMMAND ...`,
 * and the one-line failure message every command prints.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

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
