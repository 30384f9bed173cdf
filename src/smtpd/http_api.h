/*
 * http_api.h - the requests of the HTTPS injection API (docs/http-api.md):
 * POST /v1/messages (message/rfc822 or application/json) and
 * GET /v1/messages/MID, authenticated with the SMTP credentials, checked
 * like authenticated SMTP (identity, quotas, size, recipients), spooled
 * through inject.c, answered in JSON.
 *
 * Callers: http_conn.c.
 */
#ifndef POSTERN_HTTP_API_H
#define POSTERN_HTTP_API_H

#include "conf.h"

struct event_base;
struct evhttp_request;
struct http_conn;
struct spool;

/* Once per worker. 0 or -1. */
int	http_api_init(struct event_base *, const struct conf *, struct spool *);
/* evhttp's request callback. */
void	http_api_request(struct evhttp_request *, void *);
/* The connection is being freed: forget its requests in flight. */
void	http_api_conn_gone(struct http_conn *);

#endif
