/*
 * connlimit.c - shared connection counters (see connlimit.h).
 *
 * One open-addressing table per worker (linear probing, backward-shift
 * deletion so no tombstones pile up), all under one process-shared robust
 * mutex: if a worker dies holding it, the next locker repairs the state.
 * A table holds more slots than distinct addresses a worker can have under
 * the largest max_connections; when full, a new client is refused as over
 * the total rather than miscounted.
 */
#include <errno.h>
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
	int		total;
	struct cl_slot	slots[CL_SLOTS];
};

struct cl_shared {
	pthread_mutex_t	lock;
	int		nworkers;
	struct cl_table	tables[];	/* one per worker */
};

static struct cl_shared	*cl;
static int		 cl_self;

int
connlimit_init(int nworkers)
{
	pthread_mutexattr_t attr;
	size_t size = sizeof(*cl) + (size_t)nworkers * sizeof(struct cl_table);

	cl = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (cl == MAP_FAILED)
		return -1;
	memset(cl, 0, size);
	cl->nworkers = nworkers;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&cl->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return 0;
}

void
connlimit_set_worker(int idx)
{
	cl_self = idx;
}

/* A holder that died left the tables as they were between two whole
 * updates of its own table at worst: counts stay usable. */
static void
lock(void)
{
	if (pthread_mutex_lock(&cl->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&cl->lock);
}

void
connlimit_reset_worker(int idx)
{
	lock();
	memset(&cl->tables[idx], 0, sizeof(cl->tables[idx]));
	pthread_mutex_unlock(&cl->lock);
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
find(struct cl_table *t, const unsigned char key[16], int create)
{
	unsigned i = hash_key(key), n;

	for (n = 0; n < CL_SLOTS; n++, i = (i + 1) & (CL_SLOTS - 1)) {
		struct cl_slot *s = &t->slots[i];
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
	struct cl_slot *s, *mine;
	int total = 0, client = 0, w;

	make_key(sa, key);
	lock();
	for (w = 0; w < cl->nworkers; w++) {
		total += cl->tables[w].total;
		if ((s = find(&cl->tables[w], key, 0)) != NULL)
			client += s->count;
	}
	mine = find(&cl->tables[cl_self], key, 1);
	if (total >= max_total || mine == NULL)
		r = CONNLIMIT_TOTAL;
	else if (client >= max_client)
		r = CONNLIMIT_CLIENT;
	else {
		if (mine->count == 0)
			memcpy(mine->key, key, 16);
		mine->count++;
		cl->tables[cl_self].total++;
	}
	pthread_mutex_unlock(&cl->lock);
	return r;
}

void
connlimit_release(const struct sockaddr *sa)
{
	struct cl_table *t;
	unsigned char key[16];
	struct cl_slot *s;
	unsigned i, j, home;

	make_key(sa, key);
	lock();
	t = &cl->tables[cl_self];
	if ((s = find(t, key, 0)) != NULL && s->count > 0) {
		t->total--;
		if (--s->count == 0) {
			/* Backward-shift deletion keeps probe chains intact. */
			i = (unsigned)(s - t->slots);
			for (j = (i + 1) & (CL_SLOTS - 1); t->slots[j].count;
			    j = (j + 1) & (CL_SLOTS - 1)) {
				home = hash_key(t->slots[j].key);
				if (((j - home) & (CL_SLOTS - 1)) >=
				    ((j - i) & (CL_SLOTS - 1))) {
					t->slots[i] = t->slots[j];
					t->slots[j].count = 0;
					i = j;
				}
			}
		}
	}
	pthread_mutex_unlock(&cl->lock);
}
