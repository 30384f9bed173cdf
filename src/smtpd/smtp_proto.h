/*
 * smtp_proto.h - PURE parsers for the SMTP protocol (RFC 5321, 1870, 3461,
 * 6152, 6531, 3030): command lines, paths, MAIL/RCPT parameters, and the
 * DATA content scanner (end-of-data detection, dot-unstuffing, bare CR/LF
 * and line-length checks).  No I/O, no allocation except where stated;
 * every function is safe on arbitrary untrusted bytes (fuzzed).
 *
 * Callers: smtp_server.c (inbound), smtp_client.c (reply parsing, later).
 */
#ifndef POSTERN_SMTP_PROTO_H
#define POSTERN_SMTP_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

/* RFC 5321 4.5.3.1 size limits (octets). */
#define SMTP_LINE_MAX		512	/* command line including CRLF */
#define SMTP_LOCAL_MAX		64
#define SMTP_DOMAIN_MAX		255
#define SMTP_PATH_MAX		256	/* reverse/forward path incl. <> */
#define SMTP_ADDR_MAX		(SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX)

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP,
	SMTP_VERB_QUIT, SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*args;		/* borrowed: points into the line given
					 * to smtp_cmd_parse, valid while it is;
					 * leading spaces skipped, "" if none */
	size_t		 args_len;
};

/*
 * Parse one command line (without its line ending: the caller strips the
 * final CRLF or bare LF).  Verb matched case-insensitively; "MAIL FROM:" and
 * "RCPT TO:" keep the "FROM:"/"TO:" in args.  Returns 0, or -1 when the line
 * holds a NUL, a CR or LF, or other bytes that make it unusable (the caller
 * answers 500 5.5.2 Syntax error).  An unknown verb is not an error: verb is
 * SMTP_VERB_UNKNOWN.
 */
int	smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *);
const char *smtp_verb_name(enum smtp_verb);

/* A mailbox as parsed from a path.  addr is "" for the null path <>. */
struct smtp_path {
	char	addr[SMTP_ADDR_MAX + 1];	/* local@domain, quoting kept as sent */
	char	local[SMTP_LOCAL_MAX + 3];	/* local part as sent (may be quoted) */
	char	domain[SMTP_DOMAIN_MAX + 1];	/* domain (or [address-literal]) */
	int	utf8;				/* non-ASCII octets present */
};

/* MAIL FROM parameters (RFC 1870 SIZE, 6152 BODY, 6531 SMTPUTF8, 3461). */
enum smtp_body { SMTP_BODY_UNSET, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_UNSET, SMTP_RET_FULL, SMTP_RET_HDRS };
struct smtp_mail_params {
	uint64_t	size;		/* 0 = not given */
	enum smtp_body	body;
	int		smtputf8;
	enum smtp_ret	ret;
	char		envid[101];	/* xtext as sent, "" = none */
};

/* RCPT TO parameters (RFC 3461). */
#define SMTP_NOTIFY_NEVER	0x1
#define SMTP_NOTIFY_SUCCESS	0x2
#define SMTP_NOTIFY_FAILURE	0x4
#define SMTP_NOTIFY_DELAY	0x8
struct smtp_rcpt_params {
	int	notify;			/* 0 = not given, else flags */
	char	orcpt[SMTP_PATH_MAX + 16];	/* "rfc822;addr" as sent, "" = none */
};

/*
 * Parse a path "<local@domain>" at the start of s (RFC 5321 4.1.2):
 * quoted local parts, dot-atoms, domain names and address literals,
 * optional source route "@a,@b:" (accepted and dropped, RFC 5321 C),
 * UTF-8 octets (sets utf8; the caller decides if SMTPUTF8 allows them).
 * `allow_null` accepts "<>".  `*used` = octets consumed.  Returns 0, or -1
 * with *reply set to a static reply line (e.g. "501 5.1.3 Bad recipient
 * address syntax") that the server sends as is.
 */
int	smtp_path_parse(const char *s, size_t len, int allow_null, int is_rcpt,
	    struct smtp_path *, size_t *used, const char **reply);

/*
 * Parse the args of MAIL ("FROM:<path> [params]") and RCPT ("TO:<path>
 * [params]").  "FROM:" / "TO:" is case-insensitive; one space after the
 * colon is tolerated.  Unknown or malformed parameters give -1 with
 * *reply "555 5.5.4 ..." or "501 5.5.4 ...".  Returns 0 on success.
 */
int	smtp_mail_parse(const char *args, size_t len, struct smtp_path *,
	    struct smtp_mail_params *, const char **reply);
int	smtp_rcpt_parse(const char *args, size_t len, struct smtp_path *,
	    struct smtp_rcpt_params *, const char **reply);

/* Parse "BDAT <size> [LAST]".  0 ok, -1 with *reply. */
int	smtp_bdat_parse(const char *args, size_t len, uint64_t *size,
	    int *last, const char **reply);

/* Validate a HELO/EHLO argument (domain or address literal). 0 ok, -1 bad. */
int	smtp_helo_parse(const char *args, size_t len);

/*
 * DATA content scanner.  Fed the raw bytes that follow "354", in chunks of
 * any size, it finds the end of data - <CRLF>.<CRLF> and nothing else
 * (a "." line counts only when the line before it ended in CRLF, or it is
 * the first line) - removes dot-stuffing (RFC 5321 4.5.2) and appends the
 * content to `out` with CRLF line ends.  It never buffers more than one
 * partial line ending state; `out` receives content as it is scanned.
 *
 * Flags found on the way (the message is then refused at end of data, but
 * scanning goes on to the real end so the session stays in sync):
 *   bare_seen      a LF not preceded by CR, or a CR not followed by LF.
 *                  With normalize set, each bare CR or bare LF is written
 *                  to out as CRLF instead, and the flag is still set.
 *   line_too_long  a line longer than max_line octets (excluding CRLF).
 * Once a flag that refuses the message is set, content is no longer
 * written to out (there is no point storing it).
 *
 * BDAT chunks use the same scanner with `bdat` set: no end-of-data, no
 * dot handling, only the line-end and line-length checks.
 */
struct smtp_data_scanner {
	/* settings */
	size_t	max_line;
	int	normalize;
	int	bdat;
	/* results */
	int	bare_seen;
	int	line_too_long;
	int	done;		/* end of data found */
	uint64_t out_octets;	/* bytes appended to out so far */
	/* private state */
	int	state;
	size_t	line_len;
	int	crlf_start;
};

void	smtp_data_init(struct smtp_data_scanner *, size_t max_line,
	    int normalize, int bdat);
/*
 * Scan `len` bytes.  Returns the number consumed: all of them unless the
 * end of data was found, in which case it is the count up to and including
 * the final ".\r\n" (done is then set, and the rest belongs to the next
 * command).  For BDAT, call smtp_data_finish() after the LAST chunk.
 */
size_t	smtp_data_feed(struct smtp_data_scanner *, const char *in, size_t len,
	    struct strbuf *out);
/* End of a BDAT transfer: a pending lone CR counts as bare. */
void	smtp_data_finish(struct smtp_data_scanner *, struct strbuf *out);

/*
 * Header scanner: watches the message content (as written to the spool)
 * and extracts Message-ID, Subject and From from the header section
 * (unfolded, at most 998 octets each, control characters dropped, HTAB
 * as SP, outer whitespace trimmed), stopping at the first empty line.
 * Message-ID and Subject: the first field of each wins.  From: every
 * field counts (from_count) and their values are joined with ", " into
 * from; when that does not fit in 998 octets (or one value alone did
 * not), from_truncated is set and from holds what fit, cut at a UTF-8
 * boundary.  A caller checking the From: identity needs from_count == 1
 * and !from_truncated.  Borrowed nothing; fixed-size storage.
 */
struct msg_header_scan {
	char	message_id[999];
	char	subject[999];
	char	from[999];	/* all From: values, joined with ", " */
	int	from_count;	/* From: fields seen */
	int	from_truncated;	/* from lacks some of their octets */
	int	done;
	/* private */
	size_t	from_len;
	char	cur[1000];
	size_t	cur_len;
	int	cur_truncated;
	int	at_line_start;
	int	in_body;
	int	pending_cr;
	int	phase;		/* name, wanted value, or skipped field */
	int	field;		/* which wanted field the value belongs to */
	int	seen;		/* fields already stored (first one wins) */
};
void	msg_header_scan_init(struct msg_header_scan *);
void	msg_header_scan_feed(struct msg_header_scan *, const char *, size_t);
void	msg_header_scan_finish(struct msg_header_scan *);

#endif
