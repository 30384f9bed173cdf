/*
 * pickup_parse.c - the leading X-Sender / X-Receiver fields of a pickup
 * file (see pickup_parse.h).  Lines may end in CRLF or LF (the message
 * is normalised later by msg_prep.c).
 *
 * Threats: the file is written by a local user; every length is capped,
 * addresses may not hold spaces, control characters or brackets inside,
 * and nothing is read past `len`.
 */
#include <stdlib.h>
#include <string.h>

#include "pickup_parse.h"
#include "util.h"

/* The value of "name:" at line start, trimmed and without <>. */
static int
field_value(const char *line, size_t len, size_t namelen, char *out,
    size_t outmax)
{
	size_t i = namelen + 1, j;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	j = len;
	while (j > i && (line[j - 1] == ' ' || line[j - 1] == '\t'))
		j--;
	if (j > i && line[i] == '<' && line[j - 1] == '>') {
		i++;
		j--;
	}
	if (j - i > outmax)
		return -1;
	for (size_t k = i; k < j; k++) {
		unsigned char c = (unsigned char)line[k];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>')
			return -1;
	}
	memcpy(out, line + i, j - i);
	out[j - i] = '\0';
	return 0;
}

/* Which envelope field is this line: 1 sender, 2 receiver, 0 neither. */
static int
field_kind(const char *line, size_t len)
{
	if (len >= 9 && ascii_ncasecmp(line, "X-Sender:", 9) == 0)
		return 1;
	if (len >= 11 && ascii_ncasecmp(line, "X-Receiver:", 11) == 0)
		return 2;
	return 0;
}

static int
take_field(struct pickup_env *env, int kind, const char *line, size_t len,
    char *why, size_t whylen)
{
	char addr[PICKUP_ADDR_MAX + 1];

	if (field_value(line, len, kind == 1 ? 8 : 10, addr, sizeof(addr) - 1)
	    == -1) {
		bsnprintf(why, whylen, "%s field holds no single address",
		    kind == 1 ? "X-Sender" : "X-Receiver");
		return -1;
	}
	if (kind == 1) {
		if (env->has_sender) {
			bsnprintf(why, whylen, "more than one X-Sender field");
			return -1;
		}
		env->has_sender = 1;
		bstrlcpy(env->sender, addr, sizeof(env->sender));
		return 0;
	}
	if (addr[0] == '\0' || env->nrcpts >= PICKUP_RCPTS_MAX) {
		bsnprintf(why, whylen, addr[0] ? "more than %d X-Receiver "
		    "fields" : "an empty X-Receiver field", PICKUP_RCPTS_MAX);
		return -1;
	}
	env->rcpts = xrealloc(env->rcpts, (env->nrcpts + 1) *
	    sizeof(*env->rcpts));
	bstrlcpy(env->rcpts[env->nrcpts++], addr, sizeof(*env->rcpts));
	return 0;
}

/* Parse the leading envelope block (pickup_parse.h). */
int
pickup_parse(const char *data, size_t len, struct pickup_env *env,
    char *why, size_t whylen)
{
	size_t pos = 0, end, next;
	int kind;

	memset(env, 0, sizeof(*env));
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);

		next = nl ? (size_t)(nl - data) + 1 : len;
		end = nl ? (size_t)(nl - data) : len;
		if (end > pos && data[end - 1] == '\r')
			end--;
		if ((kind = field_kind(data + pos, end - pos)) == 0)
			break;
		if (next < len && (data[next] == ' ' || data[next] == '\t')) {
			bsnprintf(why, whylen, "a folded X-Sender or X-Receiver "
			    "field");
			pickup_env_free(env);
			return -1;
		}
		if (take_field(env, kind, data + pos, end - pos, why,
		    whylen) == -1) {
			pickup_env_free(env);
			return -1;
		}
		pos = next;
	}
	env->body_off = pos;
	return 0;
}

/* Free the receivers; NULL is fine. */
void
pickup_env_free(struct pickup_env *env)
{
	if (env == NULL)
		return;
	free(env->rcpts);
	env->rcpts = NULL;
	env->nrcpts = 0;
}
