/*
 * mime_enc.h - MIME encodings for messages Postern writes (the message
 * builder of `postern send`, S/MIME): body transfer encodings (RFC 2045
 * 6.7 quoted-printable, 6.8 base64 via base64_mime), RFC 2047 encoded
 * words for non-ASCII header text, RFC 2231 parameter values for
 * non-ASCII file names, the Content-Type of a file name, and boundaries.
 * Every line written ends in CRLF and stays within 998 octets (76 for
 * encoded bodies).  Pure functions over memory.
 */
#ifndef POSTERN_MIME_ENC_H
#define POSTERN_MIME_ENC_H

#include <stddef.h>

#include "strbuf.h"

enum mime_cte {
	MIME_7BIT = 0,		/* ASCII, lines <= 998: as is */
	MIME_QP,		/* quoted-printable: mostly ASCII text */
	MIME_BASE64		/* binary, or text that is mostly 8-bit */
};

/* "7bit", "quoted-printable", "base64". */
const char *mime_enc_cte_name(enum mime_cte);
/*
 * The encoding that fits data[0..len): for text (CRLF line ends), 7bit
 * when ASCII without NUL and no line passes 998 octets, quoted-printable
 * when at most a quarter of the octets need escaping, else base64; for
 * anything else base64.
 */
enum mime_cte mime_enc_pick(const char *data, size_t len, int text);
/* Append data encoded with `cte` (7bit: as is, plus a final CRLF when it
 * lacks one). */
void	mime_enc_body(enum mime_cte cte, const char *data, size_t len,
	    struct strbuf *out);
/* RFC 2045 6.7 quoted-printable of CRLF text: line breaks kept, lines of
 * at most 76 characters with soft breaks, trailing blanks escaped. */
void	mime_enc_qp(const char *in, size_t len, struct strbuf *out);

/* An unstructured header field "Name: value" (Subject...), folded; any
 * non-ASCII value is written as RFC 2047 "B" encoded words of UTF-8. */
void	mime_enc_header(struct strbuf *out, const char *name,
	    const char *value);
/*
 * An address header "Name: a, b" from mailboxes as the user wrote them
 * ("addr", "<addr>", "Display Name <addr>"): a non-ASCII display name
 * becomes encoded words, an ASCII one is quoted when it needs it.
 * Folded between mailboxes.  Mailboxes are trusted input (options).
 */
void	mime_enc_addr_header(struct strbuf *out, const char *name,
	    const char *const *mailboxes, size_t n);
/*
 * Append ";" CRLF SP `param`="value" to a Content-Type or
 * Content-Disposition value: quoted when ASCII (quotes and backslashes
 * escaped), RFC 2231 param*=UTF-8''%XX (split into param*0*, param*1*
 * ... continuations when long) otherwise.
 */
void	mime_enc_param(struct strbuf *out, const char *param,
	    const char *value);
/* Content-Type for a file name by its extension (case-insensitive);
 * "application/octet-stream" when unknown.  Static string. */
const char *mime_enc_type_for_name(const char *filename);
/* A fresh multipart boundary ("=_postern_" + 24 hex digits; "=_" never
 * occurs in quoted-printable or base64 text).  0 or -1 (RNG). */
int	mime_enc_boundary(char *buf, size_t len);

#endif
