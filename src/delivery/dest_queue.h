/*
 * dest_queue.h - remote delivery, part 1: destination queues.  The remote
 * driver (delivery_remote, delivery.h) puts every request into the queue
 * of its destination (one per route with its own tls, else one per
 * recipient domain: route_same_queue); a queue resolves its next hops
 * once per life (route hosts or MX, dns.h), opens connections with slow
 * start up to the destination's max_connections, and keeps connections
 * that ran out of work in an idle pool for a moment.  The connections
 * themselves are smtp_conn.h.
 *
 * This header is shared by dest_queue.c and smtp_conn.c only: the
 * connection driver takes items from its queue and reports back through
 * the functions below.  Everything runs in the queue manager's event loop.
 */
#ifndef POSTERN_DEST_QUEUE_H
#define POSTERN_DEST_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "delivery.h"
#include "route.h"
#include "tls_policy.h"

struct smtp_conn;

/* One message's recipients for one destination. */
struct dq_item {
	struct dq_item		*next;
	uint64_t		 mid;
	const struct envelope	*env;		/* borrowed until done */
	const char		*data;		/* spool content, mapped */
	size_t			 len;
	struct delivery_result	*res;		/* one per recipient */
	size_t			 n;
	delivery_done_cb	 done;
	void			*arg;
};

/* One address to connect to. */
struct dq_target {
	char			name[256];	/* host name to verify and log */
	struct sockaddr_storage	ss;
	socklen_t		sslen;
	int			lmtp;
	char			path[108];	/* LMTP over a UNIX socket */
};

struct dest_queue {
	struct dest_queue	*next;
	struct route_decision	 route;		/* of the first request */
	struct tls_policy	 tls;		/* the ladder row that applies */
	int			 window;	/* connections allowed now */
	struct dq_item		*head, **tailp;
	size_t			 nitems;
	int			 nconns;
	struct smtp_conn	**idle;		/* the idle pool */
	size_t			 nidle;
	/* next hops, resolved once per queue life */
	int			 started, resolved;
	size_t			 hop;		/* next route hop to resolve */
	unsigned long		 dns_id;
	int			 hop_lmtp;	/* the hop being resolved */
	int			 dns_perm;	/* every lookup failed for good */
	char			 dns_status[8];
	struct dq_target	*targets;
	size_t			 ntargets;
	char			 last_error[512];
	enum failcause		 last_cause;	/* of last_error (failcause.h) */
	char			 last_host[256];	/* the server it names */
	int			 last_port;
	int			 kicking, rekick;	/* kick re-entry */
};

/* Next waiting item, or NULL. */
struct dq_item *dest_queue_pop(struct dest_queue *);
/* Put an item back first (its connection died before it was tried). */
void	dest_queue_push_front(struct dest_queue *, struct dq_item *);
/* Log the item's results (DCID dcid, NULL = no connection), report them
 * to the scheduler and free the item. */
void	dest_queue_finish(struct dq_item *, const char *dcid);
/* Free an item without reporting it (shutdown). */
void	dest_queue_drop(struct dq_item *);
/* Finish every waiting item with one outcome. */
void	dest_queue_fail_all(struct dest_queue *, enum delivery_outcome,
	    const char *text, const char *status, const char *dcid);
/* A connection failed (why, for later items): back to one connection. */
void	dest_queue_conn_failed(struct dest_queue *, const char *why);
/* The cause of the failure just given to dest_queue_conn_failed, and the
 * server it is about; the items failed afterwards carry it. */
void	dest_queue_conn_cause(struct dest_queue *, enum failcause,
	    const char *host, int port);
/* A message went through: one more connection may open (slow start). */
void	dest_queue_delivered(struct dest_queue *);
/* A connection of the queue ended (freed).  The queue may be freed. */
void	dest_queue_conn_gone(struct dest_queue *);
/* Idle pool: park a connection that ran out of work, or take it out. */
void	dest_queue_idle_put(struct dest_queue *, struct smtp_conn *);
void	dest_queue_idle_remove(struct dest_queue *, struct smtp_conn *);
/* Start connections while there is work and room. */
void	dest_queue_kick(struct dest_queue *);

#endif
