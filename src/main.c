/*
 * main.c - `postern` entry point: dispatch to a command (see cmd.h).
 * Exit status (postern(8)): 0 success, 1 the operation failed, 2 usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "util.h"

static const struct {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*summary;
} commands[] = {
	{ "serve",  cmd_serve,  "run the mail transfer agent" },
	{ "config", cmd_config, "check or show the configuration" },
	{ "queue",  cmd_queue,  "inspect and steer the spool (list, show, "
	    "retry, delete, hold, release, pause, resume)" },
	{ "cert",   cmd_cert,   "certificate store (selfsign, csr, import, "
	    "export, list, show, check, fetch)" },
	{ "trust",  cmd_trust,  "trust store of CA certificates (add, list, "
	    "remove)" },
	{ "send",   cmd_send,   "inject a message over SMTP (STARTTLS, AUTH, "
	    "S/MIME, bulk)" },
	{ "user",   cmd_user,   "SMTP credentials and their verified sender "
	    "identities (add, list, remove, passwd, modify)" },
	{ "probe",  cmd_probe,  "test an SMTP server step by step and say how "
	    "to fix what fails (the \"Test Connection\" button)" },
	{ "dkim",   cmd_dkim,   "DKIM signing keys and their DNS records "
	    "(keygen, check)" },
	{ "status", cmd_status, "is the daemon running; its queue, certificates "
	    "and recent TLS failures" },
	{ "sendmail", cmd_sendmail, "the sendmail(1) interface: hand a "
	    "message to the pickup directory" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: postern <command> [options]   (postern %s)\n\n"
	    "commands:\n", POSTERN_VERSION);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`postern help COMMAND` or `postern COMMAND --help` for "
	    "details.\n");
}

int
main(int argc, char **argv)
{
	char *help[] = { NULL, (char *)"--help", NULL };
	const char *base;
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	/* installed as `sendmail` (make install SENDMAIL=1): sendmail(1) */
	base = argv[0] != NULL ? strrchr(argv[0], '/') : NULL;
	base = base != NULL ? base + 1 : argv[0];
	if (base != NULL && strcmp(base, "sendmail") == 0)
		return cmd_sendmail(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[2], commands[i].name) == 0) {
				help[0] = argv[2];
				return commands[i].fn(2, help);
			}
		fprintf(stderr, "postern: unknown command '%s'\n", argv[2]);
		return 2;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "postern: unknown command '%s' (see `postern help`)\n",
	    argv[1]);
	return 2;
}
