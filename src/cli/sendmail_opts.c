/*
 * sendmail_opts.c - the sendmail(1) command line (see sendmail_opts.h).
 * Options are parsed by hand, as sendmail does, not with getopt: values
 * may be glued (-fADDR, -oi, -odb) or separate (-f ADDR), and "--"
 * ends the options.
 */
#include <string.h>

#include "sendmail_opts.h"
#include "util.h"

/* The value of -xVALUE or -x VALUE; NULL when missing. */
static const char *
opt_value(int argc, char *const *argv, int *i)
{
	if (argv[*i][2] != '\0')
		return argv[*i] + 2;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/* -b modes: -bm (default) and -bs; the others are not for us. */
static int
mode_opt(const char *arg, struct sendmail_opts *o, char *why, size_t whylen)
{
	if (strcmp(arg, "-bm") == 0)
		o->mode = SENDMAIL_MODE_DELIVER;
	else if (strcmp(arg, "-bs") == 0)
		o->mode = SENDMAIL_MODE_SMTP;
	else {
		bsnprintf(why, whylen, "%s is not supported (only -bm and -bs; "
		    "see `postern queue` for the queue)", arg);
		return -1;
	}
	return 0;
}

/* One option at argv[*i]; 0, or -1 with why. */
static int
one_opt(int argc, char *const *argv, int *i, struct sendmail_opts *o,
    char *why, size_t whylen)
{
	const char *a = argv[*i], *v;

	if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
		o->mode = SENDMAIL_MODE_HELP;
		return 0;
	}
	switch (a[1]) {
	case 't': if (a[2]) break; o->extract = 1; return 0;
	case 'i': if (a[2]) break; o->ignore_dots = 1; return 0;
	case 'v': case 'U': if (a[2]) break; return 0;
	case 'o':	/* -oi; -oem, -odb, -oQ... mean nothing here */
		if (strcmp(a, "-oi") == 0)
			o->ignore_dots = 1;
		return 0;
	case 'b':
		return mode_opt(a, o, why, whylen);
	case 'f': case 'F': case 'c': case 'B': case 'N': case 'R':
	case 'V': case 'L': case 'r':
		if ((v = opt_value(argc, argv, i)) == NULL) {
			bsnprintf(why, whylen, "%.2s needs a value", a);
			return -1;
		}
		if (a[1] == 'f' || a[1] == 'r')
			o->from = v;
		else if (a[1] == 'F')
			o->fullname = v;
		else if (a[1] == 'c')
			o->config = v;
		return 0;
	default:
		break;
	}
	bsnprintf(why, whylen, "unknown option %.32s", a);
	return -1;
}

/* Parse the command line (sendmail_opts.h). */
int
sendmail_opts_parse(int argc, char *const *argv, struct sendmail_opts *o,
    char *why, size_t whylen)
{
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-' || argv[i][1] == '\0')
			break;
		if (one_opt(argc, argv, &i, o, why, whylen) == -1)
			return -1;
		if (o->mode == SENDMAIL_MODE_HELP)
			return 0;
	}
	o->rcpts = argv + i;
	o->nrcpts = (size_t)(argc - i);
	return 0;
}
