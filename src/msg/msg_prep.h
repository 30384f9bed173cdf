/*
 * msg_prep.h - an RFC 5322 message made ready to send: line ends
 * normalised to CRLF, Date and Message-ID added when missing, Bcc fields
 * removed, the envelope taken from From / To / Cc / Bcc (RFC 5322 3.6.2,
 * 3.6.3; addresses parsed by addrlist.c).  Also the header field scanner
 * that S/MIME and the bulk sender use to find fields.
 *
 * The input is untrusted (a file given to `postern send`, and later mail
 * the gateway transforms): every function is bounded and fuzzed
 * (tests/fuzz/fuzz_msg_prep.c).
 */
#ifndef POSTERN_MSG_PREP_H
#define POSTERN_MSG_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define MSG_PREP_RCPTS_MAX	1000	/* envelope recipients kept */

/* One header field of a CRLF message: offsets into the message. */
struct msg_field {
	size_t	off;		/* start of the field name */
	size_t	len;		/* whole field, continuation lines and the
				 * final CRLF included */
	size_t	name_len;	/* field name (before ':') */
	size_t	value_off;	/* after the ':' */
	size_t	value_len;	/* up to, without, the final CRLF */
};

/*
 * The next header field at *pos of msg[0..len) (CRLF line ends).
 * Returns 1 with *f filled and *pos after it; 0 at the end of the header
 * section (*pos then at the empty line, or at len when there is none);
 * -1 when the line at *pos is not a field ("name:" with printable ASCII
 * name; a leading continuation line, a line without a colon): *pos is
 * left there.
 */
int	msg_field_next(const char *msg, size_t len, size_t *pos,
	    struct msg_field *f);
/* Does field f have this name (case-insensitive)? */
int	msg_field_is(const char *msg, const struct msg_field *f,
	    const char *name);
/* Append the unfolded value of f (CRLFs of continuation lines dropped,
 * outer whitespace trimmed). */
void	msg_field_value(const char *msg, const struct msg_field *f,
	    struct strbuf *out);

/*
 * The first address of the first From: field of msg[0..len) into
 * addr[0..addrlen) (local part as written, domain lower case; see
 * addrlist.h).  0, or -1 when there is no From: field before the end of
 * the header section or its value does not parse.
 */
int	msg_from_address(const char *msg, size_t len, char *addr,
	    size_t addrlen);

/* How many line ends (LF) msg has before offset pos: a line number is
 * that plus 1. */
size_t	msg_count_lines(const char *msg, size_t pos);

/* Append in[0..len) to out with every CRLF, bare LF and bare CR as CRLF. */
void	msg_prep_crlf(const char *in, size_t len, struct strbuf *out);

struct msg_prep {
	struct strbuf	  msg;		/* the message to send, CRLF */
	char		 *from;		/* envelope sender (first From:
					 * address), NULL when none */
	char		**rcpts;	/* To, Cc, Bcc and extra, no
					 * duplicates (case-insensitive) */
	size_t		  nrcpts;
	char		 *hdr_from;	/* header From: / To: unfolded, cleaned
					 * (for messages), "" when absent */
	char		 *hdr_to;
	int		  eightbit;	/* the message has octets > 127 */
	int		  utf8_addrs;	/* an address is not ASCII (SMTPUTF8) */
};

/*
 * Prepare in[0..len): see the header comment.  `extra_rcpts` (Bcc of the
 * message builder; may be NULL) are added to the envelope.  `hostname`
 * names the Message-ID's right side (NULL: the domain of the From:
 * address), `now` is the Date.  0, or -1 with
 * why: no header section (the first line is not a field), an address
 * field that does not parse, no recipient at all, more than
 * MSG_PREP_RCPTS_MAX recipients.  A From: that does not parse only
 * leaves p->from NULL (the caller may give --env-from).
 */
int	msg_prep_run(struct msg_prep *p, const char *in, size_t len,
	    const char *const *extra_rcpts, size_t nextra,
	    const char *hostname, int64_t now, char *why, size_t whylen);
/* Release what p holds (p itself is the caller's); NULL is fine. */
void	msg_prep_free(struct msg_prep *p);

#endif
