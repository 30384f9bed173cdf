/*
 * msg_build.c - builds an RFC 5322 / MIME message from the options of
 * `postern send` (see msg_build.h).
 *
 * Public: msg_build_run.
 *
 * Text bodies are taken as the user's text: line ends become CRLF, a
 * final CRLF is added, UTF-8 is declared (charset=utf-8) when the text is
 * valid UTF-8 with 8-bit octets, us-ascii when it is ASCII, and
 * unknown-8bit (RFC 1428) otherwise.  Attachments are bytes: text/any
 * attachments are normalised like bodies, everything else is base64.
 * Every part's content ends in CRLF and is followed by another CRLF
 * before the delimiter: that one belongs to the delimiter (RFC 2046
 * 5.1.1), so a text part keeps its last line end.
 * Limits: whole message in memory (the caller bounds the input sizes).
 */
#include <string.h>

#include "mailfmt.h"
#include "mime_enc.h"
#include "msg_build.h"
#include "msg_prep.h"
#include "util.h"

static const char *
charset_of(const char *s, size_t len)
{
	if (!mem_has_8bit(s, len))
		return "us-ascii";
	return utf8_valid((const unsigned char *)s, len) ? "utf-8" :
	    "unknown-8bit";
}

/* One leaf entity: Content-Type (+ params), CTE, optional disposition,
 * empty line, encoded content. */
static void
leaf(struct strbuf *out, const char *type, const char *data, size_t len,
    const char *filename)
{
	struct strbuf crlf = STRBUF_INIT;
	enum mime_cte cte;
	int text = strncmp(type, "text/", 5) == 0;

	if (text) {
		msg_prep_crlf(data, len, &crlf);
		strbuf_puts(&crlf, "");
		data = crlf.s;
		len = crlf.len;
	}
	cte = mime_enc_pick(data, len, text);
	strbuf_printf(out, "Content-Type: %s", type);
	if (text)
		strbuf_printf(out, "; charset=%s", charset_of(data, len));
	if (filename != NULL)
		mime_enc_param(out, "name", filename);
	strbuf_printf(out, "\r\nContent-Transfer-Encoding: %s\r\n",
	    mime_enc_cte_name(cte));
	if (filename != NULL) {
		strbuf_puts(out, "Content-Disposition: attachment");
		mime_enc_param(out, "filename", filename);
		strbuf_puts(out, "\r\n");
	}
	strbuf_puts(out, "\r\n");
	mime_enc_body(cte, data, len, out);
	strbuf_free(&crlf);
}

/* The body entity: text, HTML, or multipart/alternative of both. */
static int
body(const struct msg_build *b, struct strbuf *out)
{
	char bd[64];

	if (b->html == NULL) {
		leaf(out, "text/plain", b->text != NULL ? b->text : "",
		    b->text != NULL ? b->text_len : 0, NULL);
		return 0;
	}
	if (b->text == NULL) {
		leaf(out, "text/html", b->html, b->html_len, NULL);
		return 0;
	}
	if (mime_enc_boundary(bd, sizeof(bd)) == -1)
		return -1;
	strbuf_printf(out, "Content-Type: multipart/alternative;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n--%s\r\n", bd, bd);
	leaf(out, "text/plain", b->text, b->text_len, NULL);
	strbuf_printf(out, "\r\n--%s\r\n", bd);
	leaf(out, "text/html", b->html, b->html_len, NULL);
	strbuf_printf(out, "\r\n--%s--\r\n", bd);
	return 0;
}

static int
entity(const struct msg_build *b, struct strbuf *out)
{
	char bd[64];
	size_t i;

	if (b->nattach == 0)
		return body(b, out);
	if (mime_enc_boundary(bd, sizeof(bd)) == -1)
		return -1;
	strbuf_printf(out, "Content-Type: multipart/mixed;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n"
	    "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
	    bd, bd);
	if (body(b, out) == -1)
		return -1;
	for (i = 0; i < b->nattach; i++) {
		strbuf_printf(out, "\r\n--%s\r\n", bd);
		leaf(out, mime_enc_type_for_name(b->attach[i].name),
		    b->attach[i].data, b->attach[i].len, b->attach[i].name);
	}
	strbuf_printf(out, "\r\n--%s--\r\n", bd);
	return 0;
}

int
msg_build_run(const struct msg_build *b, struct strbuf *out, char *why,
    size_t whylen)
{
	char date[64];

	mailfmt_date(b->now, date, sizeof(date));
	strbuf_printf(out, "Date: %s\r\n", date);
	if (b->from != NULL)
		mime_enc_addr_header(out, "From", &b->from, 1);
	if (b->nto > 0)
		mime_enc_addr_header(out, "To", b->to, b->nto);
	if (b->ncc > 0)
		mime_enc_addr_header(out, "Cc", b->cc, b->ncc);
	if (b->subject != NULL)
		mime_enc_header(out, "Subject", b->subject);
	if (mailfmt_message_id(out, b->hostname) == -1) {
		(void)bsnprintf(why, whylen, "no random numbers for the "
		    "Message-ID");
		return -1;
	}
	strbuf_puts(out, "MIME-Version: 1.0\r\n");
	if (entity(b, out) == -1) {
		(void)bsnprintf(why, whylen, "no random numbers for a MIME "
		    "boundary");
		return -1;
	}
	return 0;
}
