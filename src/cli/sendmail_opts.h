/*
 * sendmail_opts.h - the command line of `postern sendmail` (the
 * sendmail(1) interface programs call: cron, PHP's mail(), git
 * send-email, mutt...): -t, -i / -oi, -f ADDR / -fADDR, -F NAME /
 * -FNAME, -bs, -bm, -c FILE, recipients as arguments, and the options
 * programs pass that mean nothing here (-oXXX, -B TYPE, -N DSN, -R RET,
 * -V ENVID, -v, -U, -L TAG, -odb/-odi/-odq...), accepted and ignored.
 * Pure (argv in, struct out) so it is unit-tested.
 */
#ifndef POSTERN_SENDMAIL_OPTS_H
#define POSTERN_SENDMAIL_OPTS_H

#include <stddef.h>

enum sendmail_mode { SENDMAIL_MODE_DELIVER, SENDMAIL_MODE_SMTP,
	SENDMAIL_MODE_HELP };

struct sendmail_opts {
	enum sendmail_mode mode;
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	const char	*from;		/* -f, borrowed from argv */
	const char	*fullname;	/* -F */
	const char	*config;	/* -c */
	char *const	*rcpts;		/* the arguments left, borrowed */
	size_t		 nrcpts;
};

/* Parse argv[1..argc); 0, or -1 with why (an unknown or unsupported
 * option such as -bp, a missing value). */
int	sendmail_opts_parse(int argc, char *const *argv,
	    struct sendmail_opts *, char *why, size_t whylen);

#endif
