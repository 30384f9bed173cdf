/*
 * msg_build.h - the message builder of `postern send`: an RFC 5322 / MIME
 * message from --from --to --cc --subject --body/--body-file --html
 * --attach.  Structure (RFC 2046): one text/plain or text/html part;
 * multipart/alternative for text + HTML; multipart/mixed around that
 * when there are attachments.  Content-Type of attachments from their
 * file names, transfer encodings as fit (mime_enc_pick), RFC 2047 for
 * non-ASCII header text, RFC 2231 for non-ASCII file names, Date and
 * Message-ID always.  Bcc is not the builder's: it never appears in the
 * header (msg_prep adds those addresses to the envelope).
 */
#ifndef POSTERN_MSG_BUILD_H
#define POSTERN_MSG_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct msg_build_part {
	const char	*name;		/* file name shown (no directories) */
	const char	*data;		/* content, borrowed */
	size_t		 len;
};

struct msg_build {
	const char		*from;		/* mailbox as given */
	const char *const	*to;		/* mailboxes as given */
	size_t			 nto;
	const char *const	*cc;
	size_t			 ncc;
	const char		*subject;	/* NULL = no Subject field */
	const char		*text;		/* text/plain body or NULL */
	size_t			 text_len;
	const char		*html;		/* text/html body or NULL */
	size_t			 html_len;
	const struct msg_build_part *attach;
	size_t			 nattach;
	const char		*hostname;	/* Message-ID right side */
	int64_t			 now;		/* Date */
};

/* Append the message (CRLF line ends).  0, or -1 with why (no random
 * numbers for the Message-ID or a boundary). */
int	msg_build_run(const struct msg_build *, struct strbuf *out,
	    char *why, size_t whylen);

#endif
