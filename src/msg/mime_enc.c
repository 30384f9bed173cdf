/*
 * mime_enc.c - MIME encodings of the message builder and S/MIME (see
 * mime_enc.h): quoted-printable (RFC 2045 6.7), the choice between 7bit,
 * quoted-printable and base64, RFC 2047 encoded words, RFC 2231
 * parameters, Content-Type by file extension, boundaries.
 *
 * Public: mime_enc_cte_name, mime_enc_pick, mime_enc_body, mime_enc_qp,
 * mime_enc_header, mime_enc_addr_header, mime_enc_param,
 * mime_enc_type_for_name, mime_enc_boundary.
 *
 * Limits: header text is what the user gave on the command line (trusted
 * but cleaned of control characters by mailfmt_clean); encoded words hold
 * at most 39 octets of UTF-8 each (52 base64 characters, RFC 2047 2: at
 * most 75 per word), never cutting a UTF-8 sequence.
 */
#include <string.h>

#include "base64.h"
#include "mailfmt.h"
#include "mime_enc.h"
#include "util.h"

#define QP_LINE		76	/* RFC 2045 6.7 (5) */
#define EW_OCTETS	39	/* UTF-8 octets per encoded word: 52
				 * base64 characters, a line of 76
				 * with the field name */
#define RFC2231_SEG	50	/* characters per continuation: a line
				 * of 78 with "filename*12*=" */

const char *
mime_enc_cte_name(enum mime_cte c)
{
	switch (c) {
	case MIME_7BIT:
		return "7bit";
	case MIME_QP:
		return "quoted-printable";
	case MIME_BASE64:
		return "base64";
	}
	return "7bit";
}

enum mime_cte
mime_enc_pick(const char *data, size_t len, int text)
{
	size_t i, col = 0, escapes = 0, longest = 0;
	unsigned char ch;

	if (!text)
		return MIME_BASE64;
	for (i = 0; i < len; i++) {
		ch = (unsigned char)data[i];
		if (ch == '\n') {
			col = 0;
			continue;
		}
		if (ch != '\r' && ++col > longest)
			longest = col;
		if (ch > 126 || ch == 0 || ch == '=' ||
		    (ch < 32 && ch != '\t' && ch != '\r'))
			escapes += ch == '=' ? 0 : 1;
	}
	if (escapes == 0 && longest <= MAILFMT_LINE_MAX)
		return MIME_7BIT;
	return escapes <= len / 4 ? MIME_QP : MIME_BASE64;
}

static void
qp_put(struct strbuf *out, size_t *col, const char *s, size_t n)
{
	if (*col + n > QP_LINE - 1) {
		strbuf_puts(out, "=\r\n");
		*col = 0;
	}
	strbuf_add(out, s, n);
	*col += n;
}

void
mime_enc_qp(const char *in, size_t len, struct strbuf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, col = 0;
	unsigned char ch;
	char esc[3];
	int eol;

	for (i = 0; i < len; i++) {
		ch = (unsigned char)in[i];
		if (ch == '\r' && i + 1 < len && in[i + 1] == '\n') {
			strbuf_puts(out, "\r\n");
			col = 0;
			i++;
			continue;
		}
		/* a blank before a line end (or the end) is escaped: RFC
		 * 2045 6.7 (3), transports may strip it */
		eol = i + 1 == len || (in[i + 1] == '\r' && i + 2 < len &&
		    in[i + 2] == '\n');
		if ((ch >= 33 && ch <= 126 && ch != '=') ||
		    ((ch == ' ' || ch == '\t') && !eol))
			qp_put(out, &col, (const char *)&in[i], 1);
		else {
			esc[0] = '=';
			esc[1] = hex[ch >> 4];
			esc[2] = hex[ch & 15];
			qp_put(out, &col, esc, 3);
		}
	}
	if (len == 0 || col > 0)
		strbuf_puts(out, "\r\n");
}

void
mime_enc_body(enum mime_cte cte, const char *data, size_t len,
    struct strbuf *out)
{
	switch (cte) {
	case MIME_QP:
		mime_enc_qp(data, len, out);
		break;
	case MIME_BASE64:
		base64_mime((const unsigned char *)data, len, out);
		break;
	case MIME_7BIT:
		strbuf_add(out, data, len);
		if (len < 2 || memcmp(data + len - 2, "\r\n", 2) != 0)
			strbuf_puts(out, "\r\n");
		break;
	}
}

/* Append text as RFC 2047 "B" encoded words separated by one space (the
 * folding of mailfmt_folded breaks lines there). */
static void
encoded_words(struct strbuf *out, const char *s, size_t len)
{
	char b64[4 * ((EW_OCTETS + 2) / 3) + 1];
	size_t n;
	int first = 1;

	while (len > 0) {
		n = len > EW_OCTETS ? mailfmt_utf8_cut(s, EW_OCTETS) : len;
		base64_encode_nopad((const unsigned char *)s, n, b64);
		/* padded: RFC 2047 4.1 needs the "=" */
		while (strlen(b64) % 4 != 0)
			bstrlcpy(b64 + strlen(b64), "=", 2);
		strbuf_printf(out, "%s=?UTF-8?B?%s?=", first ? "" : " ", b64);
		first = 0;
		s += n;
		len -= n;
	}
}

void
mime_enc_header(struct strbuf *out, const char *name, const char *value)
{
	struct strbuf v = STRBUF_INIT, e = STRBUF_INIT, f = STRBUF_INIT;

	mailfmt_clean(&v, value, strlen(value), 1);
	strbuf_printf(&f, "%s: ", name);
	if (v.s != NULL && mem_has_8bit(v.s, v.len)) {
		encoded_words(&e, v.s, v.len);
		mailfmt_folded(out, f.s, " ", e.s, MAILFMT_FOLD_AT);
	} else
		mailfmt_folded(out, f.s, " ", v.s != NULL ? v.s : "",
		    MAILFMT_FOLD_AT);
	strbuf_free(&v);
	strbuf_free(&e);
	strbuf_free(&f);
}

/* One mailbox: "addr" | "<addr>" | "name <addr>" | "\"name\" <addr>". */
static void
put_mailbox(struct strbuf *out, const char *mb)
{
	struct strbuf c = STRBUF_INIT;
	const char *lt, *name, *end;
	size_t i;

	mailfmt_clean(&c, mb, strlen(mb), 1);
	if (c.s == NULL || (lt = strrchr(c.s, '<')) == NULL) {
		strbuf_puts(out, c.s != NULL ? c.s : "");
		strbuf_free(&c);
		return;
	}
	name = c.s;
	end = lt;
	while (end > name && end[-1] == ' ')
		end--;
	if (end - name >= 2 && name[0] == '"' && end[-1] == '"') {
		name++;
		end--;
	}
	if (end > name) {
		if (mem_has_8bit(name, (size_t)(end - name)))
			encoded_words(out, name, (size_t)(end - name));
		else if (strcspn(name, "()<>[]:;@\\,.\"") < (size_t)(end -
		    name)) {
			strbuf_putc(out, '"');
			for (i = 0; name + i < end; i++) {
				if (name[i] == '"' || name[i] == '\\')
					strbuf_putc(out, '\\');
				strbuf_putc(out, name[i]);
			}
			strbuf_putc(out, '"');
		} else
			strbuf_add(out, name, (size_t)(end - name));
		strbuf_putc(out, ' ');
	}
	strbuf_puts(out, lt);
	strbuf_free(&c);
}

void
mime_enc_addr_header(struct strbuf *out, const char *name,
    const char *const *mb, size_t n)
{
	struct strbuf v = STRBUF_INIT, f = STRBUF_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			strbuf_puts(&v, ", ");
		put_mailbox(&v, mb[i]);
	}
	strbuf_printf(&f, "%s: ", name);
	mailfmt_folded(out, f.s, " ", v.s != NULL ? v.s : "",
	    MAILFMT_FOLD_AT);
	strbuf_free(&v);
	strbuf_free(&f);
}

/* RFC 2231 attribute-char: ASCII letters, digits and !#$&+-.^_`|~ */
static int
attr_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("!#$&+-.^_`|~", ch) != NULL;
}

void
mime_enc_param(struct strbuf *out, const char *param, const char *value)
{
	struct strbuf c = STRBUF_INIT, enc = STRBUF_INIT;
	size_t i, k, n, seg;

	mailfmt_clean(&c, value, strlen(value), 1);
	if (c.s == NULL)
		strbuf_puts(&c, "");
	if (!mem_has_8bit(c.s, c.len) && c.len <= 60) {
		strbuf_printf(out, ";\r\n\t%s=\"", param);
		for (i = 0; i < c.len; i++) {
			if (c.s[i] == '"' || c.s[i] == '\\')
				strbuf_putc(out, '\\');
			strbuf_putc(out, c.s[i]);
		}
		strbuf_putc(out, '"');
		strbuf_free(&c);
		return;
	}
	for (i = 0; i < c.len; i++) {
		unsigned char ch = (unsigned char)c.s[i];

		if (attr_char(ch))
			strbuf_putc(&enc, (char)ch);
		else
			strbuf_printf(&enc, "%%%02X", ch);
	}
	if (enc.len <= RFC2231_SEG) {
		strbuf_printf(out, ";\r\n\t%s*=UTF-8''%s", param, enc.s);
	} else {
		/* continuations, never cutting a %XX */
		for (i = 0, k = 0; i < enc.len; i += seg, k++) {
			seg = enc.len - i > RFC2231_SEG ? RFC2231_SEG :
			    enc.len - i;
			for (n = 1; n <= 2 && i + seg < enc.len; n++)
				if (enc.s[i + seg - n] == '%')
					seg -= n;
			strbuf_printf(out, ";\r\n\t%s*%zu*=%s", param, k,
			    k == 0 ? "UTF-8''" : "");
			strbuf_add(out, enc.s + i, seg);
		}
	}
	strbuf_free(&c);
	strbuf_free(&enc);
}

const char *
mime_enc_type_for_name(const char *filename)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "txt", "text/plain" }, { "text", "text/plain" },
		{ "log", "text/plain" }, { "csv", "text/csv" },
		{ "htm", "text/html" }, { "html", "text/html" },
		{ "ics", "text/calendar" }, { "md", "text/markdown" },
		{ "xml", "application/xml" }, { "json", "application/json" },
		{ "pdf", "application/pdf" }, { "zip", "application/zip" },
		{ "gz", "application/gzip" }, { "tar", "application/x-tar" },
		{ "png", "image/png" }, { "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" }, { "gif", "image/gif" },
		{ "svg", "image/svg+xml" }, { "webp", "image/webp" },
		{ "mp3", "audio/mpeg" }, { "mp4", "video/mp4" },
		{ "doc", "application/msword" },
		{ "docx", "application/vnd.openxmlformats-officedocument."
		    "wordprocessingml.document" },
		{ "xls", "application/vnd.ms-excel" },
		{ "xlsx", "application/vnd.openxmlformats-officedocument."
		    "spreadsheetml.sheet" },
		{ "odt", "application/vnd.oasis.opendocument.text" },
		{ "pem", "application/x-pem-file" },
		{ "p7s", "application/pkcs7-signature" },
	};
	const char *dot = strrchr(filename, '.'), *slash;
	size_t i;

	slash = strrchr(filename, '/');
	if (dot == NULL || (slash != NULL && dot < slash))
		return "application/octet-stream";
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (ascii_casecmp(dot + 1, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

int
mime_enc_boundary(char *buf, size_t len)
{
	char hex[25];

	if (mailfmt_rand_hex(hex, 12) == -1)
		return -1;
	return bsnprintf(buf, len, "=_postern_%s", hex);
}
