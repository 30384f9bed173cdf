/*
 * http_state.h - GET /v1/messages/MID of the HTTPS API: the delivery state
 * of each recipient of a message, for the credential that sent it and
 * nobody else (docs/http-api.md).  Read from the spool (queue/ or hold/
 * with state/<MID>) while the message is there, from spool/done/<MID>
 * (spool_done.h) after.
 */
#ifndef POSTERN_HTTP_STATE_H
#define POSTERN_HTTP_STATE_H

#include <stdint.h>

#include "strbuf.h"

struct spool;

/* The JSON document for `mid` as seen by `user`: 0 (out filled), or -1
 * when there is no such message sent by that user (404: the API never
 * says whether someone else's MID exists). */
int	http_state_json(struct spool *, uint64_t mid, const char *user,
	    struct strbuf *out);

#endif
