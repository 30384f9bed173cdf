/*
 * connlimit.c - shared connection counters (see connlimit.h).
 * Linear probing with backward-shift deletion, so no tombstones pile up.
 * The table holds more slots than the largest total the config accepts
 * would need for distinct addresses; when full, new clients are refused
 * as over the total limit rather than miscounted.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "connlimit.h"

#define CL_SLOTS	32768		/* power of two */

struct cl_slot {
	unsigned char	key[16];
	int		count;		/* 0 = empty */
};

struct cl_table {
	pthread_mutex_t	lock;
	int		total;
	struct cl_slot	slots[CL_SLOTS];
};

static struct cl_table *cl;

int
connlimit_init(void)
{
	pthread_mutexattr_t attr;

	cl = mmap(NULL, sizeof(*cl), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cl == MAP_FAILED)
		return -1;
	memset(cl, 0, sizeof(*cl));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&cl->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return 0;
}

/* IPv4 as IPv4-mapped IPv6, so both families share one key space. */
static void
make_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)
		    sa)->sin6_addr, 16);
}

static unsigned
hash_key(const unsigned char key[16])
{
	unsigned h = 2166136261u;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (CL_SLOTS - 1);
}

static struct cl_slot *
find(const unsigned char key[16], int create)
{
	unsigned i = hash_key(key), n;

	for (n = 0; n < CL_SLOTS; n++, i = (i + 1) & (CL_SLOTS - 1)) {
		struct cl_slot *s = &cl->slots[i];
		if (s->count == 0)
			return create ? s : NULL;
		if (memcmp(s->key, key, 16) == 0)
			return s;
	}
	return NULL;
}

enum connlimit_result
connlimit_take(const struct sockaddr *sa, int max_total, int max_client)
{
	enum connlimit_result r = CONNLIMIT_OK;
	unsigned char key[16];
	struct cl_slot *s;

	make_key(sa, key);
	pthread_mutex_lock(&cl->lock);
	if (cl->total >= max_total)
		r = CONNLIMIT_TOTAL;
	else if ((s = find(key, 1)) == NULL)
		r = CONNLIMIT_TOTAL;
	else if (s->count >= max_client)
		r = CONNLIMIT_CLIENT;
	else {
		if (s->count == 0)
			memcpy(s->key, key, 16);
		s->count++;
		cl->total++;
	}
	pthread_mutex_unlock(&cl->lock);
	return r;
}

void
connlimit_release(const struct sockaddr *sa)
{
	unsigned char key[16];
	struct cl_slot *s;
	unsigned i, j, home;

	make_key(sa, key);
	pthread_mutex_lock(&cl->lock);
	if ((s = find(key, 0)) != NULL && s->count > 0) {
		cl->total--;
		if (--s->count == 0) {
			/* Backward-shift deletion keeps probe chains intact. */
			i = (unsigned)(s - cl->slots);
			for (j = (i + 1) & (CL_SLOTS - 1); cl->slots[j].count;
			    j = (j + 1) & (CL_SLOTS - 1)) {
				home = hash_key(cl->slots[j].key);
				if (((j - home) & (CL_SLOTS - 1)) >=
				    ((j - i) & (CL_SLOTS - 1))) {
					cl->slots[i] = cl->slots[j];
					cl->slots[j].count = 0;
					i = j;
				}
			}
		}
	}
	pthread_mutex_unlock(&cl->lock);
}
