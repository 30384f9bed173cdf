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
int	cmd_probe(int argc, char **argv);	/* probe HOST[:PORT] | --mx DOMAIN */
int	cmd_dkim(int argc, char **argv);	/* dkim keygen|check */
int	cmd_status(int argc, char **argv);	/* status [-c FILE] [--json] */
int	cmd_sendmail(int argc, char **argv);	/* sendmail(1): -t -i -f -F -bs RCPT... */

/* `postern CMD [-c FILE] [--help] SUBCOMMAND ...` (cmd_args.c): sets *path
 * (when -c is given) and *next (index of SUBCOMMAND) and returns -1 to go
 * on, or the exit status after --help / `help` (0) or a usage error (2). */
int	cmd_leading_options(int argc, char **argv, void (*usage)(FILE *),
	    const char **path, int *next);

/* HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address (cmd_args.c): the
 * host without brackets into host[hlen], *port = the port or 0 when none
 * is given.  0, or -1 when it is none of these. */
int	cmd_host_port(const char *arg, char *host, size_t hlen, int *port);

/* --starttls, --tls or --plain (cmd_args.c) into *mode as 1, 2, 3 (the
 * commands' TLS enums keep that order after their default 0), *set = 1:
 * 0; -1 when arg is none of them; 2 after a usage error (two of them). */
int	cmd_tls_flag(const char *cmd, const char *arg, int *mode, int *set);

/* The client context of a command that talks to a server (cmd_args.c):
 * the `tls` settings of conf; with verify, the trust store (+ system CAs),
 * checked in the handshake, or with `after` after it
 * (tls_client_verify_after: the command decides, knowing why); plus the
 * CA certificates of `trust` (--trust, may be NULL).  NULL after telling
 * why (cmd_fail, "postern: CMD: ..."). */
struct conf;
struct ssl_ctx_st;
struct ssl_ctx_st *cmd_tls_client(const struct conf *, int verify,
	    int after, const char *trust, const char *cmd);

/* postern(8), EXIT STATUS: one line "postern: <what failed>: <why> (<what to do>)" on
 * stderr; returns 1, the exit status of a failed operation. */
int	cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error of `postern CMD SUB`: one line "postern: CMD SUB: <what>
 * (see `postern CMD --help`)" on stderr (sub NULL: "postern: CMD: ...");
 * returns 2. */
int	cmd_usage_error(const char *cmd, const char *sub, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
