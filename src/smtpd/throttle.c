/*
 * throttle.c - shared AUTH failure and sending-quota counters (see
 * throttle.h).
 *
 * Failures: a table of client keys, each with the times of its last
 * THROTTLE_MAX_FAILURES failures (a ring), so "N failures within W
 * seconds" is counted exactly, sliding.  Open addressing with a short
 * probe; when every probed slot is taken, the one whose latest failure is
 * oldest is reused (an attacker flooding the table only evicts quiet
 * entries).
 *
 * Quotas: a table of credentials with the current second's count and 288
 * five-minute buckets for the rolling 24 hours.  A slot whose counts are
 * all older than a day is free again, so removed users need no clean-up.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "throttle.h"
#include "util.h"

#define FAIL_SLOTS	4096		/* power of two */
#define FAIL_PROBE	16
#define QUOTA_SLOTS	4096		/* power of two */
#define QUOTA_BUCKET	300		/* seconds */
#define QUOTA_NBUCKETS	288		/* 24 h */
#define NAME_MAX_LEN	64

struct fail_slot {
	unsigned char	key[16];
	int		used;
	int		logged;		/* episode already logged */
	unsigned	head;		/* next ring position */
	unsigned	n;		/* stored times (<= ring size) */
	double		t[THROTTLE_MAX_FAILURES];
};

struct quota_slot {
	char		name[NAME_MAX_LEN + 1];
	int64_t		sec;
	long		sec_count;
	int64_t		bucket_id[QUOTA_NBUCKETS];	/* time / QUOTA_BUCKET */
	long		bucket_n[QUOTA_NBUCKETS];
};

struct al_shared {
	pthread_mutex_t		lock;
	struct fail_slot	fail[FAIL_SLOTS];
	struct quota_slot	quota[QUOTA_SLOTS];
};

static struct al_shared *al;

int
throttle_init(void)
{
	pthread_mutexattr_t attr;

	/* Anonymous shared memory is zero-filled: no memset, so untouched
	 * pages cost nothing. */
	al = mmap(NULL, sizeof(*al), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (al == MAP_FAILED) {
		al = NULL;
		return -1;
	}
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&al->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return 0;
}

static void
lock(void)
{
	if (pthread_mutex_lock(&al->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&al->lock);
}

static void
unlock(void)
{
	pthread_mutex_unlock(&al->lock);
}

/* IPv4 as itself, IPv6 by its /64. */
static void
client_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		key[10] = key[11] = 0xff;
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
}

static uint32_t
hash_bytes(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (n-- > 0)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static double
latest(const struct fail_slot *f)
{
	return f->n == 0 ? 0 :
	    f->t[(f->head + THROTTLE_MAX_FAILURES - 1) % THROTTLE_MAX_FAILURES];
}

/* The slot of this key; with `create`, a new or reused one. */
static struct fail_slot *
fail_find(const unsigned char key[16], int create)
{
	uint32_t h = hash_bytes(key, 16);
	struct fail_slot *f, *victim = NULL;
	int i;

	for (i = 0; i < FAIL_PROBE; i++) {
		f = &al->fail[(h + (uint32_t)i) & (FAIL_SLOTS - 1)];
		if (f->used && memcmp(f->key, key, 16) == 0)
			return f;
		if (!create)
			continue;
		if (!f->used) {
			if (victim == NULL || victim->used)
				victim = f;
		} else if (victim == NULL ||
		    (victim->used && latest(f) < latest(victim)))
			victim = f;
	}
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->key, key, 16);
	victim->used = 1;
	return victim;
}

static int
in_window(const struct fail_slot *f, int window, double now)
{
	unsigned i;
	int n = 0;

	for (i = 0; i < f->n; i++)
		if (f->t[i] > now - window)
			n++;
	return n;
}

enum throttle_gate
throttle_gate(const struct sockaddr *sa, int max_failures, int window,
    double now)
{
	unsigned char key[16];
	struct fail_slot *f;
	enum throttle_gate g = THROTTLE_OPEN;

	if (al == NULL)
		return THROTTLE_OPEN;
	if (max_failures > THROTTLE_MAX_FAILURES)
		max_failures = THROTTLE_MAX_FAILURES;
	client_key(sa, key);
	lock();
	if ((f = fail_find(key, 0)) != NULL) {
		if (in_window(f, window, now) >= max_failures) {
			g = f->logged ? THROTTLE_BLOCKED :
			    THROTTLE_BLOCKED_NEW;
			f->logged = 1;
		} else
			f->logged = 0;	/* the episode is over */
	}
	unlock();
	return g;
}

int
throttle_failed(const struct sockaddr *sa, int window, double now)
{
	unsigned char key[16];
	struct fail_slot *f;
	int n = 0;

	if (al == NULL)
		return 0;
	client_key(sa, key);
	lock();
	if ((f = fail_find(key, 1)) != NULL) {
		f->t[f->head] = now;
		f->head = (f->head + 1) % THROTTLE_MAX_FAILURES;
		if (f->n < THROTTLE_MAX_FAILURES)
			f->n++;
		n = in_window(f, window, now);
	}
	unlock();
	return n;
}

/* ------------------------------------------------------------- quotas */

static long
day_count(const struct quota_slot *q, int64_t now)
{
	int64_t id = now / QUOTA_BUCKET;
	long n = 0;
	int i;

	for (i = 0; i < QUOTA_NBUCKETS; i++)
		if (q->bucket_id[i] > id - QUOTA_NBUCKETS)
			n += q->bucket_n[i];
	return n;
}

static int
quota_stale(const struct quota_slot *q, int64_t now)
{
	return q->sec != now && day_count(q, now) == 0;
}

static struct quota_slot *
quota_find(const char *user, int64_t now)
{
	uint32_t h = hash_bytes((const unsigned char *)user, strlen(user));
	struct quota_slot *q, *free_slot = NULL;
	int i;

	for (i = 0; i < QUOTA_SLOTS; i++) {
		q = &al->quota[(h + (uint32_t)i) & (QUOTA_SLOTS - 1)];
		if (q->name[0] == '\0') {
			if (free_slot == NULL)
				free_slot = q;
			break;		/* never used: the probe ends here */
		}
		if (strcmp(q->name, user) == 0)
			return q;
		if (free_slot == NULL && quota_stale(q, now))
			free_slot = q;
	}
	if (free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	bstrlcpy(free_slot->name, user, sizeof(free_slot->name));
	return free_slot;
}

enum throttle_quota
throttle_send(const char *user, long max_rate, long max_day, int64_t now)
{
	struct quota_slot *q;
	enum throttle_quota r = QUOTA_OK;
	int b;

	if (al == NULL || (max_rate <= 0 && max_day <= 0))
		return QUOTA_OK;
	lock();
	/* A full table (4096 credentials with quotas sending at once) counts
	 * nothing rather than refusing everyone. */
	if ((q = quota_find(user, now)) != NULL) {
		if (q->sec != now) {
			q->sec = now;
			q->sec_count = 0;
		}
		if (max_day > 0 && day_count(q, now) >= max_day)
			r = QUOTA_DAY;
		else if (max_rate > 0 && q->sec_count >= max_rate)
			r = QUOTA_RATE;
		else {
			q->sec_count++;
			b = (int)((now / QUOTA_BUCKET) % QUOTA_NBUCKETS);
			if (q->bucket_id[b] != now / QUOTA_BUCKET) {
				q->bucket_id[b] = now / QUOTA_BUCKET;
				q->bucket_n[b] = 0;
			}
			q->bucket_n[b]++;
		}
	}
	unlock();
	return r;
}
