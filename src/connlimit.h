/*
 * connlimit.h - connection counts shared by all worker processes: the total
 * and one count per client address (SPEC limits max_connections and
 * max_connections_per_client).  Shared memory created before fork; a
 * process-shared mutex guards an open-addressing table keyed by address.
 */
#ifndef POSTERN_CONNLIMIT_H
#define POSTERN_CONNLIMIT_H

#include <sys/socket.h>

enum connlimit_result { CONNLIMIT_OK, CONNLIMIT_TOTAL, CONNLIMIT_CLIENT };

int	connlimit_init(void);
/* Take a slot for this client unless a limit is reached. */
enum connlimit_result connlimit_take(const struct sockaddr *, int max_total,
	    int max_client);
void	connlimit_release(const struct sockaddr *);

#endif
