/*
 * base64.h - RFC 4648 base64 on top of OpenSSL's EVP_EncodeBlock /
 * EVP_DecodeBlock, with the two things they leave to the caller: padding
 * (PHC hash strings omit it, SASL responses carry it) and strictness
 * (only canonical text decodes, so one value has one spelling).
 *
 * Callers: userdb.c (password hashes), smtp_server.c (AUTH responses),
 * the message builder and S/MIME (src/msg: MIME bodies), DKIM (dkim.c:
 * keys and signatures in tags).
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

#include "strbuf.h"

/* Encode without '=' padding into out (room for 4 * ceil(n / 3) + 1). */
void	base64_encode_nopad(const unsigned char *in, size_t n, char *out);
/* Append the padded base64 of in[0..n) on one line (DKIM tags). */
void	base64_append(const unsigned char *in, size_t n, struct strbuf *out);
/* Append the RFC 2045 6.8 body encoding of in[0..n): padded base64 in
 * lines of 76 characters, each ending in CRLF (nothing for n = 0). */
void	base64_mime(const unsigned char *in, size_t n, struct strbuf *out);
/*
 * Decode `n` characters, padded or not, into out (room for maxout
 * bytes).  Returns the byte count, or -1 for anything but canonical
 * base64 (other characters, misplaced padding, bad length, stray bits, or
 * more than maxout bytes).  Temporary copies are wiped (secrets pass).
 */
int	base64_decode(const char *in, size_t n, unsigned char *out,
	    size_t maxout);

#endif
