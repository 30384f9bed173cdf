/*
 * smtp_conn.h - remote delivery, part 2: the connection driver.  One
 * outbound SMTP or LMTP connection of a destination queue (dest_queue.h):
 * connect, greeting, EHLO/LHLO, TLS as the destination's TLS ladder says
 * (tls_policy.h), AUTH for routes with auth_user, then the queue's
 * messages one after another (several per connection), idle for a moment
 * when the queue is empty, QUIT.  The protocol itself is the shared
 * client (smtp_client.h); this driver decides what comes next.
 *
 * The connection's state is one enum, changed only by one enter-state
 * function (OpenSMTPD's mta_session.c shape); every step of the client
 * reports to one callback that dispatches on that state.
 *
 * Callers: dest_queue.c (open, wake) and the remote driver's init and
 * shutdown.
 */
#ifndef POSTERN_SMTP_CONN_H
#define POSTERN_SMTP_CONN_H

#include <stddef.h>

#include "conf.h"
#include "delivery.h"

struct event_base;
struct dest_queue;
struct smtp_conn;

/* Client TLS contexts (trust store for the -verify modes).  0, or -1 with
 * why; without a trust store the -verify modes fail verification. */
int	smtp_conn_init(struct event_base *, const struct conf *,
	    delivery_alert_cb, char *why, size_t whylen);
/* Close every connection without a callback (a message under way is
 * dropped, not reported) and free the TLS contexts. */
void	smtp_conn_shutdown(void);
/* A new connection for the queue (it counts it in q->nconns first). */
void	smtp_conn_open(struct dest_queue *);
/* An idle connection (already out of the idle pool) takes the next
 * waiting message. */
void	smtp_conn_wake(struct smtp_conn *);

#endif
