/*
 * connlimit.h - connection counts shared by all worker processes: the total
 * and one count per client address (postern.conf(5) limits max_connections and
 * max_connections_per_client).  Shared memory created before fork.  Each
 * worker counts its own connections in its own table and checks the sum
 * over all tables, so when a worker dies the master clears that worker's
 * table and no count leaks.
 */
#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

#include <sys/socket.h>

enum connlimit_result { CONNLIMIT_OK, CONNLIMIT_TOTAL, CONNLIMIT_CLIENT };

/* Create the tables for `nworkers` workers (before fork). 0 or -1. */
int	connlimit_init(int nworkers);
/* In a worker: which table is ours. */
void	connlimit_set_worker(int idx);
/* In the master, after a worker died: forget its connections. */
void	connlimit_reset_worker(int idx);
/* Take a slot for this client unless a limit is reached. */
enum connlimit_result connlimit_take(const struct sockaddr *, int max_total,
	    int max_client);
void	connlimit_release(const struct sockaddr *);

#endif
