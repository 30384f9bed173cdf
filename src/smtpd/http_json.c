/*
 * http_json.c - the JSON message request of the HTTPS API (see
 * http_json.h).
 *
 * Why jansson (Debian libjansson): it is a strict RFC 8259 parser by
 * default (no comments, trailing commas, NaN; UTF-8 validated; "\u0000"
 * refused unless asked), rejects duplicate keys on request and is
 * fuzzed upstream; a hand-written parser would be one more parser of
 * untrusted input to keep correct.  What jansson does not bound we bound
 * here: the caller caps the body size (so depth and element counts are
 * capped too), and this module caps recipients, attachments and string
 * sizes, and decodes attachments as canonical base64 only.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "http_json.h"
#include "util.h"

static void	printable_why(char *, size_t);

/* A string member: NULL when absent; -1 when of the wrong type or size. */
static int
get_string(json_t *o, const char *key, size_t max, char **dst, size_t *lenp,
    char *why, size_t whylen)
{
	json_t *v = json_object_get(o, key);

	*dst = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		bsnprintf(why, whylen, "'%s' must be a string", key);
		return -1;
	}
	if (json_string_length(v) > max) {
		bsnprintf(why, whylen, "'%s' is longer than %zu octets", key,
		    max);
		return -1;
	}
	*dst = xstrndup(json_string_value(v), json_string_length(v));
	if (lenp != NULL)
		*lenp = json_string_length(v);
	return 0;
}

/* One address string: bounded, no line breaks (it becomes a header). */
static int
add_addr(json_t *v, const char *key, char ***list, size_t *n, char *why,
    size_t whylen)
{
	const char *s;
	size_t len;

	if (!json_is_string(v)) {
		bsnprintf(why, whylen, "'%s' must be a string or an array of "
		    "strings", key);
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 || len > HTTP_JSON_ADDR_MAX || strpbrk(s, "\r\n") != NULL) {
		bsnprintf(why, whylen, "'%s' holds an empty, overlong or "
		    "multi-line address", key);
		return -1;
	}
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrndup(s, len);
	return 0;
}

/* to / cc / bcc: one string or an array of strings. */
static int
get_addrs(json_t *o, const char *key, char ***list, size_t *n, char *why,
    size_t whylen)
{
	json_t *v = json_object_get(o, key), *e;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return add_addr(v, key, list, n, why, whylen);
	if (json_array_size(v) > HTTP_JSON_RCPTS_MAX) {
		bsnprintf(why, whylen, "more than %d recipients",
		    HTTP_JSON_RCPTS_MAX);
		return -1;
	}
	json_array_foreach(v, i, e)
		if (add_addr(e, key, list, n, why, whylen) == -1)
			return -1;
	return 0;
}

/* Only the keys the document may hold. */
static int
known_keys(json_t *o, const char *const *keys, const char *where, char *why,
    size_t whylen)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL) {
			bsnprintf(why, whylen, "unknown key '%.64s'%s", k, where);
			return -1;
		}
	}
	return 0;
}

/* One attachment { "filename": "...", "content": "<base64>" }. */
static int
get_attachment(json_t *a, struct http_json_attach *at, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "filename", "content", NULL };
	json_t *c;
	size_t clen;
	int n;

	if (!json_is_object(a)) {
		bsnprintf(why, whylen, "each attachment must be an object "
		    "{ \"filename\", \"content\" }");
		return -1;
	}
	if (known_keys(a, keys, " in an attachment", why, whylen) == -1 ||
	    get_string(a, "filename", HTTP_JSON_NAME_MAX, &at->filename, NULL,
	    why, whylen) == -1)
		return -1;
	c = json_object_get(a, "content");
	if (at->filename == NULL || at->filename[0] == '\0' || c == NULL ||
	    !json_is_string(c)) {
		bsnprintf(why, whylen, "an attachment needs \"filename\" and "
		    "\"content\" (base64) strings");
		return -1;
	}
	clen = json_string_length(c);
	at->data = xmalloc(clen / 4 * 3 + 3);
	n = base64_decode(json_string_value(c), clen,
	    (unsigned char *)at->data, clen / 4 * 3 + 3);
	if (n < 0) {
		bsnprintf(why, whylen, "attachment '%.64s': \"content\" is not "
		    "base64", at->filename);
		return -1;
	}
	at->len = (size_t)n;
	return 0;
}

static int
get_attachments(json_t *o, struct http_json_msg *m, char *why, size_t whylen)
{
	json_t *v = json_object_get(o, "attachments"), *a;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) > HTTP_JSON_ATTACH_MAX) {
		bsnprintf(why, whylen, "'attachments' must be an array of at "
		    "most %d objects", HTTP_JSON_ATTACH_MAX);
		return -1;
	}
	m->attach = xcalloc(json_array_size(v) + 1, sizeof(*m->attach));
	json_array_foreach(v, i, a) {
		if (get_attachment(a, &m->attach[i], why, whylen) == -1) {
			m->nattach = i + 1;	/* freed by the caller */
			return -1;
		}
		m->nattach = i + 1;
	}
	return 0;
}

/* The members of the top-level object. */
static int
map_message(json_t *o, struct http_json_msg *m, char *why, size_t whylen)
{
	static const char *const keys[] = { "from", "to", "cc", "bcc",
	    "subject", "text", "html", "attachments", NULL };

	if (known_keys(o, keys, "", why, whylen) == -1 ||
	    get_string(o, "from", HTTP_JSON_ADDR_MAX, &m->from, NULL, why,
	    whylen) == -1 ||
	    get_string(o, "subject", HTTP_JSON_SUBJECT_MAX, &m->subject, NULL,
	    why, whylen) == -1 ||
	    get_string(o, "text", SIZE_MAX, &m->text, &m->text_len, why,
	    whylen) == -1 ||
	    get_string(o, "html", SIZE_MAX, &m->html, &m->html_len, why,
	    whylen) == -1 ||
	    get_addrs(o, "to", &m->to, &m->nto, why, whylen) == -1 ||
	    get_addrs(o, "cc", &m->cc, &m->ncc, why, whylen) == -1 ||
	    get_addrs(o, "bcc", &m->bcc, &m->nbcc, why, whylen) == -1 ||
	    get_attachments(o, m, why, whylen) == -1)
		return -1;
	if (m->from == NULL || strpbrk(m->from, "\r\n") != NULL) {
		bsnprintf(why, whylen, "'from' (one mailbox) is required");
		return -1;
	}
	if (m->nto + m->ncc + m->nbcc == 0 ||
	    m->nto + m->ncc + m->nbcc > HTTP_JSON_RCPTS_MAX) {
		bsnprintf(why, whylen, "'to', 'cc' and 'bcc' must name 1 to %d "
		    "recipients", HTTP_JSON_RCPTS_MAX);
		return -1;
	}
	if (m->subject != NULL && strpbrk(m->subject, "\r\n") != NULL) {
		bsnprintf(why, whylen, "'subject' must be one line");
		return -1;
	}
	if (m->text == NULL && m->html == NULL && m->nattach == 0) {
		bsnprintf(why, whylen, "give 'text', 'html' or 'attachments'");
		return -1;
	}
	return 0;
}

/* Parse and check a JSON message request (http_json.h). */
int
http_json_parse_msg(const char *body, size_t len, struct http_json_msg *m,
    char *why, size_t whylen)
{
	json_error_t err;
	json_t *o;
	int r;

	memset(m, 0, sizeof(*m));
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (o == NULL) {
		bsnprintf(why, whylen, "invalid JSON at line %d column %d: %s",
		    err.line, err.column, err.text);
		printable_why(why, whylen);
		return -1;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		bsnprintf(why, whylen, "the body must be a JSON object");
		return -1;
	}
	r = map_message(o, m, why, whylen);
	json_decref(o);
	if (r == -1) {
		http_json_msg_free(m);
		printable_why(why, whylen);
	}
	return r;
}

/* A reason may quote the client's bytes: keep it printable. */
static void
printable_why(char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < whylen && why[i] != '\0'; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
			why[i] = '?';
}

/* Free what a parsed request holds; NULL is fine. */
void
http_json_msg_free(struct http_json_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	free(m->from);
	strv_free(m->to, m->nto);
	strv_free(m->cc, m->ncc);
	strv_free(m->bcc, m->nbcc);
	free(m->subject);
	free(m->text);
	free(m->html);
	for (i = 0; i < m->nattach; i++) {
		free(m->attach[i].filename);
		free(m->attach[i].data);
	}
	free(m->attach);
	memset(m, 0, sizeof(*m));
}
