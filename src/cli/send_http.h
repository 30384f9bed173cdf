/*
 * send_http.h - the HTTPS API side of `postern send` (--http URL): the
 * settings and outcome of send_driver.h, the message POSTed as
 * message/rfc822 to the API (docs/http-api.md) instead of SMTP.
 */
#ifndef POSTERN_SEND_HTTP_H
#define POSTERN_SEND_HTTP_H

#include "send_driver.h"

/* Run to the end: s->count copies over s->concurrency connections to
 * s->host:s->port, POST `path`.  s->ctx verifies during the handshake
 * (unless --insecure).  0 when every message got 201, else 1. */
int	send_http_run(const struct send_settings *s, const char *path,
	    struct send_outcome *o);

#endif
