/*
 * ids.c - shared, persistent ID sequences (see ids.h).
 * File format of data_dir/ids: "icid N\nmid N\ndcid N\n", the ceilings.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ids.h"
#include "log.h"
#include "util.h"

struct ids_shared {
	_Atomic uint64_t next[ID_KINDS];
	_Atomic uint64_t ceiling[ID_KINDS];
	pthread_mutex_t	 lock;		/* process-shared: persisting */
	char		 path[4096];
};

static struct ids_shared *ids;
static const char *kind_names[ID_KINDS] = { "icid", "mid", "dcid" };

static int
persist(void)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf), "icid %llu\nmid %llu\ndcid %llu\n",
	    (unsigned long long)atomic_load(&ids->ceiling[ID_ICID]),
	    (unsigned long long)atomic_load(&ids->ceiling[ID_MID]),
	    (unsigned long long)atomic_load(&ids->ceiling[ID_DCID]));
	return write_file_atomic(ids->path, buf, (size_t)n, 0600);
}

int
ids_open(const char *data_dir, uint64_t min_mid, char *why, size_t whylen)
{
	pthread_mutexattr_t attr;
	unsigned long long v;
	char *buf, *line, *save = NULL, name[16];
	int k;

	ids = mmap(NULL, sizeof(*ids), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ids == MAP_FAILED) {
		bsnprintf(why, whylen, "mmap: %s", strerror(errno));
		return -1;
	}
	memset(ids, 0, sizeof(*ids));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	/* A process that dies holding the lock must not stop the others. */
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&ids->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (bsnprintf(ids->path, sizeof(ids->path), "%s/ids", data_dir)) {
		bsnprintf(why, whylen, "data_dir path too long");
		return -1;
	}
	for (k = 0; k < ID_KINDS; k++)
		atomic_store(&ids->next[k], 1);
	if ((buf = read_file(ids->path, NULL, 4096)) != NULL) {
		for (line = strtok_r(buf, "\n", &save); line;
		    line = strtok_r(NULL, "\n", &save)) {
			if (sscanf(line, "%15s %llu", name, &v) != 2)
				continue;
			for (k = 0; k < ID_KINDS; k++)
				if (strcmp(name, kind_names[k]) == 0 && v > 0)
					atomic_store(&ids->next[k], v);
		}
		free(buf);
	} else if (errno != ENOENT) {
		bsnprintf(why, whylen, "cannot read %s: %s", ids->path,
		    strerror(errno));
		return -1;
	}
	/* A lost or stale ids file must never lead to a reused MID. */
	if (atomic_load(&ids->next[ID_MID]) <= min_mid)
		atomic_store(&ids->next[ID_MID], min_mid + 1);
	for (k = 0; k < ID_KINDS; k++)
		atomic_store(&ids->ceiling[k],
		    atomic_load(&ids->next[k]) + IDS_BLOCK);
	if (persist() == -1) {
		bsnprintf(why, whylen, "cannot write %s: %s", ids->path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

uint64_t
ids_next(enum id_kind k)
{
	uint64_t v = atomic_fetch_add(&ids->next[k], 1);

	if (v < atomic_load(&ids->ceiling[k]))
		return v;
	if (pthread_mutex_lock(&ids->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&ids->lock);
	if (v >= atomic_load(&ids->ceiling[k])) {
		atomic_store(&ids->ceiling[k], v + IDS_BLOCK);
		if (persist() == -1)
			log_warn("cannot persist ID ceiling to %s", ids->path);
	}
	pthread_mutex_unlock(&ids->lock);
	return v;
}
