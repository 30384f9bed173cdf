/*
 * smtp_reply.h - PURE parser of SMTP server replies (RFC 5321 4.2) and of
 * the EHLO extension list (RFC 5321 4.1.1.1 and the extension RFCs).
 * No I/O; every function is safe on arbitrary untrusted bytes (fuzzed).
 *
 * A reply is one or more lines "CODE-text" ... "CODE text" (or a bare
 * "CODE" as last line), each ending in CRLF (a bare LF is tolerated).
 * Every line must carry the same 3-digit code, [2-5][0-5][0-9].  The
 * parser is fed bytes in chunks of any size (incremental: the result does
 * not depend on how the input is split) and keeps at most one line of
 * SMTP_REPLY_LINE_MAX octets and SMTP_REPLY_LINES_MAX lines, so a peer
 * that never ends a line or a reply cannot make it buffer without bound.
 *
 * The text of each line is kept with control characters other than HTAB
 * (including NUL and a CR that is not part of the line end) replaced by
 * '?', so it can be printed and logged as is.
 *
 * Callers: smtp_client.c (the protocol engine), smtp_conn.c (reply text
 * and status codes for the delivery log and the DSN), cmd_cert_fetch.c.
 */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

/* RFC 5321 4.5.3.1.5 says 512 octets per reply line including CRLF; real
 * servers exceed it, so we accept up to this (bounded) length. */
#define SMTP_REPLY_LINE_MAX	4096	/* octets per line, incl. CRLF */
#define SMTP_REPLY_LINES_MAX	256	/* lines per reply */

struct smtp_reply {
	int	  code;		/* 200..559 */
	char	  enhanced[16];	/* RFC 3463 "x.y.z" of the first line, or
				 * "" when it has none */
	size_t	  nlines;	/* >= 1 */
	char	**lines;	/* text after "CODE-" / "CODE ", NUL-terminated
				 * ("" for a bare "CODE"); malloc'd, owned */
};

/* Release what a reply owns and zero it (safe on a zeroed reply). */
void	smtp_reply_free(struct smtp_reply *);
/* Text of line i without the enhanced status code prefix (when the reply
 * has one and the line starts with it). */
const char *smtp_reply_text(const struct smtp_reply *, size_t i);
/* Append the reply as the server sent it, lines "CODE-text" / "CODE text"
 * joined by `sep` (e.g. "\n", or " / " for a one-line message). */
void	smtp_reply_format(const struct smtp_reply *, struct strbuf *,
	    const char *sep);
/* Class of the reply: 2, 3, 4 or 5. */
#define smtp_reply_class(r)	((r)->code / 100)

/* Incremental parser.  Treat the fields as private. */
struct smtp_reply_parser {
	char		  line[SMTP_REPLY_LINE_MAX + 1];
	size_t		  len;		/* bytes in line (without LF) */
	struct smtp_reply cur;		/* lines gathered so far */
	size_t		  cap;		/* allocated slots in cur.lines */
	const char	 *error;	/* sticky once set */
};

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,	/* all input consumed, reply incomplete */
	SMTP_REPLY_DONE = 1,	/* a whole reply is in *out */
	SMTP_REPLY_ERROR = -1	/* malformed; smtp_reply_error() says why */
};

void	smtp_reply_parser_init(struct smtp_reply_parser *);
/* Free the partial reply; the parser can be init'ed again. */
void	smtp_reply_parser_free(struct smtp_reply_parser *);
/*
 * Feed `len` bytes.  *used is set to the number consumed: all of them with
 * MORE; up to and including the LF that ended the reply with DONE (the
 * rest belongs to what follows - the caller decides whether bytes after a
 * reply are allowed); unspecified with ERROR.  With DONE the reply is
 * moved to *out (the caller frees it with smtp_reply_free) and the parser
 * is ready for the next reply.  ERROR is sticky: the stream is out of sync
 * and the connection should be dropped.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *,
	    const char *in, size_t len, size_t *used, struct smtp_reply *out);
/* Why the parser failed (a static string), or NULL. */
const char *smtp_reply_error(const struct smtp_reply_parser *);
/* Octets of an incomplete line currently buffered (0 at a line start). */
size_t	smtp_reply_pending(const struct smtp_reply_parser *);

/* One-shot: parse exactly one reply at the start of buf.  Returns DONE
 * (with *used), MORE (input ends inside the reply) or ERROR (*err set). */
enum smtp_reply_status smtp_reply_parse(const char *buf, size_t len,
	    size_t *used, struct smtp_reply *out, const char **err);

/*
 * Parse an RFC 3463 enhanced status code "class.subject.detail" at the
 * start of s (class 2|4|5, then 1-3 digits, ".", 1-3 digits), followed by
 * SP, HTAB or the end of s.  Returns its length (5..9) or 0.
 */
size_t	smtp_enhanced_code(const char *s, size_t len);

/* EHLO extensions (RFC 5321 4.1.1.1; keywords case-insensitive). */
#define SMTP_EXT_PIPELINING	0x0001	/* RFC 2920 */
#define SMTP_EXT_SIZE		0x0002	/* RFC 1870 */
#define SMTP_EXT_8BITMIME	0x0004	/* RFC 6152 */
#define SMTP_EXT_SMTPUTF8	0x0008	/* RFC 6531 */
#define SMTP_EXT_STARTTLS	0x0010	/* RFC 3207 */
#define SMTP_EXT_AUTH		0x0020	/* RFC 4954 (also "AUTH=..." of old) */
#define SMTP_EXT_CHUNKING	0x0040	/* RFC 3030 */
#define SMTP_EXT_BINARYMIME	0x0080	/* RFC 3030 */
#define SMTP_EXT_DSN		0x0100	/* RFC 3461 */
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x0200	/* RFC 2034 */
#define SMTP_EXT_REQUIRETLS	0x0400	/* RFC 8689 */

#define SMTP_AUTH_PLAIN		0x01
#define SMTP_AUTH_LOGIN		0x02
#define SMTP_AUTH_CRAM_MD5	0x04
#define SMTP_AUTH_XOAUTH2	0x08
#define SMTP_AUTH_SCRAM_SHA_1	0x10
#define SMTP_AUTH_SCRAM_SHA_256	0x20

struct smtp_ehlo {
	char	  domain[256];	/* first word of the first line, "" if none */
	unsigned  ext;		/* SMTP_EXT_* */
	uint64_t  size;		/* SIZE limit; 0 = none stated (or no SIZE) */
	unsigned  auth;		/* SMTP_AUTH_* of the mechanisms we know */
	char	  auth_mechs[256]; /* mechanisms as listed, upper-cased,
				 * single-space separated, truncated at a
				 * mechanism boundary if very long */
};

/* Fill *e from the lines of a 250 reply to EHLO (never fails; lines that
 * are not keyword lines are skipped). */
void	smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);
/*
 * Look up any keyword in an EHLO reply (lines after the first).  Returns 1
 * and, when params is not NULL, points *params at the parameters of that
 * line (after the keyword and its separator, "" if none), else 0.
 */
int	smtp_ehlo_has(const struct smtp_reply *, const char *keyword,
	    const char **params);

#endif
