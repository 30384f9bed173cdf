/*
 * dns.h - asynchronous DNS with libunbound, joined to a libevent loop
 * (ub_fd watched by an event, ub_process on readiness).  One resolver per
 * process, created after fork.  /etc/hosts and resolver.local_data are
 * served first; loopback and private reverse zones are answered locally by
 * libunbound's default local zones.
 *
 * Now: the reverse lookup of a client address with forward confirmation
 * (the "reverse dns host H verified yes|no" of the New SMTP log line).
 * Callers: listener.c.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <sys/socket.h>
#include "conf.h"

struct event_base;

/* The answer: host is "unknown" when there is no usable PTR; borrowed for
 * the call only. */
typedef void (*dns_rdns_cb)(void *arg, const char *host, int verified);

/* Set up this process's resolver.  0 or -1 (then lookups report unknown). */
int	dns_init(struct event_base *, const struct conf *, char *why,
	    size_t whylen);
/*
 * Start a reverse lookup with forward confirmation, bounded by `timeout`
 * seconds.  The callback always runs exactly once, never from inside this
 * call.  Returns a request id for dns_cancel().
 */
unsigned long dns_rdns(const struct sockaddr *, double timeout,
	    dns_rdns_cb, void *arg);
/* Cancel: the callback will not run. */
void	dns_cancel(unsigned long id);

#endif
