/*
 * http_json.h - the JSON body of POST /v1/messages (docs/http-api.md):
 *
 *   { "from": "Alice <alice@example.org>",
 *     "to": [ "bob@example.com" ], "cc": [...], "bcc": [...],
 *     "subject": "...", "text": "...", "html": "...",
 *     "attachments": [ { "filename": "r.pdf", "content": "<base64>" } ] }
 *
 * to/cc/bcc take one string or an array of strings.  Strict: the body must
 * be one JSON object (RFC 8259, UTF-8, no duplicate keys, no NUL in a
 * string), every key known and of its type, "from" and at least one
 * recipient present, "text" or "html" or an attachment present.  Parsed by
 * jansson; this module maps the document onto struct http_json_msg and
 * bounds it.  Pure (no I/O), fuzzed (tests/fuzz/fuzz_http_json.c).
 */
#ifndef POSTERN_HTTP_JSON_H
#define POSTERN_HTTP_JSON_H

#include <stddef.h>

#define HTTP_JSON_RCPTS_MAX	1000	/* to + cc + bcc */
#define HTTP_JSON_ATTACH_MAX	100
#define HTTP_JSON_ADDR_MAX	998	/* one mailbox as written */
#define HTTP_JSON_NAME_MAX	255	/* attachment file name */
#define HTTP_JSON_SUBJECT_MAX	998

struct http_json_attach {
	char	*filename;
	char	*data;		/* decoded content */
	size_t	 len;
};

struct http_json_msg {
	char	 *from;
	char	**to, **cc, **bcc;
	size_t	  nto, ncc, nbcc;
	char	 *subject;	/* NULL = none */
	char	 *text, *html;	/* NULL = none */
	size_t	  text_len, html_len;
	struct http_json_attach *attach;
	size_t	  nattach;
};

/* Parse body[0..len).  0, or -1 with why ("invalid JSON at line 1
 * column 7: ...", "'to' must be a string or an array of strings"). */
int	http_json_parse_msg(const char *body, size_t len,
	    struct http_json_msg *, char *why, size_t whylen);
/* Free what the message holds; NULL is fine. */
void	http_json_msg_free(struct http_json_msg *);

#endif
