/*
 * cmd.h - entry points of the `postern` commands, one per src/cmd_*.c.
 * main.c calls them with argv[0] set to the command name; each returns the
 * exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#ifndef POSTERN_CMD_H
#define POSTERN_CMD_H

#include <stdio.h>

int	cmd_config(int argc, char **argv);	/* config check|show [-c FILE] */
int	cmd_serve(int argc, char **argv);	/* serve [-c FILE] [--foreground] */
int	cmd_queue(int argc, char **argv);	/* queue list|show|delete|... */
int	cmd_cert(int argc, char **argv);	/* cert selfsign|csr|import|... */
int	cmd_cert_fetch(int argc, char **argv);	/* cert fetch HOST[:PORT] (argv[0] = "fetch") */
int	cmd_send(int argc, char **argv);	/* send [FILE|-] ... */
int	cmd_trust(int argc, char **argv);	/* trust add|list|remove */
int	cmd_user(int argc, char **argv);	/* user add|list|remove|passwd|modify */
int	cmd_dkim(int argc, char **argv);	/* dkim keygen|check */
int	cmd_status(int argc, char **argv);	/* status [-c FILE] [--json] */
int	cmd_sendmail(int argc, char **argv);	/* sendmail(1): -t -i -f -F -bs RCPT... */

/* The file stem `postern cert fetch` saves a certificate under (<CN>,
 * made safe), so other commands can name that file. */
struct x509_st;
void	cmd_cert_fetch_stem(struct x509_st *, char *out, size_t outlen);

/* `postern CMD [-c FILE] [--help] SUBCOMMAND ...` (cmd_args.c): sets *path
 * (when -c is given) and *next (index of SUBCOMMAND) and returns -1 to go
 * on, or the exit status after --help / `help` (0) or a usage error (2). */
int	cmd_leading_options(int argc, char **argv, void (*usage)(FILE *),
	    const char **path, int *next);

/* SPEC: one line "postern: <what failed>: <why> (<what to do>)" on
 * stderr; returns 1, the exit status of a failed operation. */
int	cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error of `postern CMD SUB`: one line "postern: CMD SUB: <what>
 * (see `postern CMD --help`)" on stderr (sub NULL: "postern: CMD: ...");
 * returns 2. */
int	cmd_usage_error(const char *cmd, const char *sub, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
