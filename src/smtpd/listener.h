/*
 * listener.h - listening sockets, accept, connection caps, the host access
 * table, and the glue between a client socket (libevent bufferevent) and
 * the socket-free session engine in smtp_server.c.
 *
 * Callers: serve.c (bind before dropping privileges, then one
 * listener_attach per worker process).
 */
#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "conf.h"

struct event_base;
struct spool;

/* Bind and listen (SO_REUSEPORT when asked, so each worker can have its
 * own socket on the same address); returns the fd or -1 with why. */
int	listener_bind(const struct conf_listener *, int reuseport, char *why,
	    size_t whylen);

/* Serve connections on the given fds (one per conf listener, -1 = not
 * bound) in this process's event loop.  notify_fd: datagram socket on
 * which the MID of every committed message is sent to the queue manager.
 * tls: one server context per conf listener (NULL = no TLS there; a
 * listener or policy that needs TLS always has one, see serve.c). */
int	listener_attach(struct event_base *, const struct conf *,
	    struct spool *, const int *fds, int notify_fd, SSL_CTX **tls);
/* Stop accepting; established sessions continue. */
void	listener_detach(void);
/* Stop: no new connections; with `goodbye`, every session ends with 421
 * at its next safe point (never in the middle of a commit) and `done` runs
 * when the last one is gone or after `grace` seconds; without, sessions
 * end by themselves (QUIT or their deadlines) and then `done` runs. */
void	listener_shutdown(double grace, int goodbye, void (*done)(void));
/* Sessions still open in this process. */
size_t	listener_sessions(void);

#endif
