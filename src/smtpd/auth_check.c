/*
 * auth_check.c - credential checks for the SMTP server (see auth_check.h).
 *
 * Threads: the event loop thread owns everything here except the request
 * queue (mutex + condition) and the body of a request while the helper
 * thread computes its scrypt.  Finished requests come back as pointers
 * written to a pipe that the loop reads; a cancelled request is freed
 * there without calling back, so a client that went away is never
 * touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth_check.h"
#include "log.h"
#include "userdb.h"
#include "util.h"

#define AUTH_CHECK_QUEUE_MAX		256	/* checks waiting or running */
#define AUTH_CHECK_CACHE_MAX		1024	/* remembered successful logins */
#define AUTH_CHECK_USED_EVERY	60	/* seconds between last-used marks */

struct auth_check_req {
	struct auth_check	*ad;
	auth_check_cb	 cb;
	void		*arg;
	int		 cancelled;
	int		 result;
	int		 cached;	/* answered without the thread */
	const char	*why;		/* result -1: what went wrong */
	char		 user[USERDB_NAME_MAX + 1];
	char		*hash;		/* NULL: unknown user, dummy check */
	char		*pass;
	size_t		 len;
	struct auth_check_req *next;
};

struct cache_entry {
	char		 name[USERDB_NAME_MAX + 1];
	char		*hash;		/* the stored hash it was valid for */
	unsigned char	 mac[32];
	int		 valid;
	double		 used_mark;	/* last users.used touch (monotonic) */
};

struct auth_check {
	struct event_base *base;
	char		*data_dir;
	char		*path;
	struct userdb	 db;
	int		 load_failed;	/* logged once per failure */
	pthread_t	 thread;
	int		 thread_ok;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct auth_check_req *head, *tail;
	int		 stop;
	int		 outstanding;
	int		 fds[2];	/* finished requests: pointers */
	struct event	*ev;
	unsigned char	 key[32];
	struct cache_entry *cache;
	size_t		 ncache;
};

static void
req_free(struct auth_check_req *r)
{
	if (r->pass != NULL)
		secure_free(r->pass, r->len + 1);
	free(r->hash);
	free(r);
}

/* Helper thread: run the slow checks in order. */
static void *
worker(void *arg)
{
	struct auth_check *ad = arg;
	struct auth_check_req *r;
	char *dummy = NULL;
	ssize_t n;
	int v;

	for (;;) {
		pthread_mutex_lock(&ad->mu);
		while (ad->head == NULL && !ad->stop)
			pthread_cond_wait(&ad->cv, &ad->mu);
		if (ad->stop) {
			pthread_mutex_unlock(&ad->mu);
			break;
		}
		r = ad->head;
		ad->head = r->next;
		if (ad->head == NULL)
			ad->tail = NULL;
		pthread_mutex_unlock(&ad->mu);
		if (r->hash == NULL) {
			/* Unknown user: the same work, never a success. */
			if (dummy == NULL)
				dummy = userdb_hash_password("dummy", 5);
			if (dummy != NULL)
				(void)userdb_verify_password(dummy, r->pass,
				    r->len);
			r->result = 0;
		} else {
			v = userdb_verify_password(r->hash, r->pass, r->len);
			r->result = v == 1 ? 1 : v == 0 ? 0 : -1;
		}
		do
			n = write(ad->fds[1], &r, sizeof(r));
		while (n == -1 && errno == EINTR);
	}
	free(dummy);
	return NULL;
}

/* HMAC-SHA256(process key, hash NUL password). */
static void
mac_of(const struct auth_check *ad, const char *hash, const char *pass,
    size_t len, unsigned char out[32])
{
	size_t hl = strlen(hash);
	unsigned char *buf = xmalloc(hl + 1 + len);
	unsigned int olen = 32;

	memcpy(buf, hash, hl + 1);
	memcpy(buf + hl + 1, pass, len);
	if (HMAC(EVP_sha256(), ad->key, sizeof(ad->key), buf, hl + 1 + len,
	    out, &olen) == NULL)
		RAND_bytes(out, 32);	/* matches nothing */
	secure_free(buf, hl + 1 + len);
}

static struct cache_entry *
cache_find(struct auth_check *ad, const char *name, int create)
{
	size_t i;

	for (i = 0; i < ad->ncache; i++)
		if (strcmp(ad->cache[i].name, name) == 0)
			return &ad->cache[i];
	if (!create)
		return NULL;
	if (ad->ncache == AUTH_CHECK_CACHE_MAX) {
		/* Full: forget one at random. */
		i = (size_t)random() % AUTH_CHECK_CACHE_MAX;
		free(ad->cache[i].hash);
		memset(&ad->cache[i], 0, sizeof(ad->cache[i]));
	} else {
		ad->cache = xrealloc(ad->cache, (ad->ncache + 1) *
		    sizeof(*ad->cache));
		i = ad->ncache++;
		memset(&ad->cache[i], 0, sizeof(ad->cache[i]));
	}
	bstrlcpy(ad->cache[i].name, name, sizeof(ad->cache[i].name));
	return &ad->cache[i];
}

/* Finished requests, in the event loop. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_check *ad = arg;
	struct auth_check_req *r;
	struct cache_entry *ce;
	ssize_t n;

	while ((n = read(fd, &r, sizeof(r))) == (ssize_t)sizeof(r)) {
		ad->outstanding--;
		if (!r->cancelled && r->result == 1 && !r->cached &&
		    r->hash != NULL) {
			ce = cache_find(ad, r->user, 1);
			free(ce->hash);
			ce->hash = xstrdup(r->hash);
			mac_of(ad, r->hash, r->pass, r->len, ce->mac);
			ce->valid = 1;
		}
		if (!r->cancelled)
			r->cb(r->arg, r->result, r->why != NULL ? r->why :
			    r->result == -1 ? "the stored password hash of "
			    "this user is malformed (set a new one with "
			    "`postern user passwd`)" : NULL);
		req_free(r);
	}
}

struct auth_check *
auth_check_new(struct event_base *base, const char *data_dir)
{
	struct auth_check *ad = xcalloc(1, sizeof(*ad));
	char why[512];

	ad->base = base;
	ad->data_dir = xstrdup(data_dir);
	ad->path = userdb_path(data_dir);
	ad->fds[0] = ad->fds[1] = -1;
	if (userdb_load(ad->path, &ad->db, why, sizeof(why)) == -1) {
		log_crit("SMTP credentials: %s; AUTH fails until it is fixed "
		    "(see `postern user list`)", why);
		ad->load_failed = 1;
	}
	if (RAND_bytes(ad->key, sizeof(ad->key)) != 1 ||
	    pipe2(ad->fds, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_crit("AUTH: cannot set up the password checker");
		auth_check_free(ad);
		return NULL;
	}
	/* The helper writes blocking-free in practice (bounded queue). */
	fcntl(ad->fds[1], F_SETFL, 0);
	pthread_mutex_init(&ad->mu, NULL);
	pthread_cond_init(&ad->cv, NULL);
	ad->ev = event_new(base, ad->fds[0], EV_READ | EV_PERSIST, done_cb, ad);
	if (ad->ev == NULL || event_add(ad->ev, NULL) == -1 ||
	    pthread_create(&ad->thread, NULL, worker, ad) != 0) {
		log_crit("AUTH: cannot start the password checker thread");
		auth_check_free(ad);
		return NULL;
	}
	ad->thread_ok = 1;
	return ad;
}

void
auth_check_free(struct auth_check *ad)
{
	struct auth_check_req *r;
	size_t i;

	if (ad == NULL)
		return;
	if (ad->thread_ok) {
		pthread_mutex_lock(&ad->mu);
		ad->stop = 1;
		pthread_cond_signal(&ad->cv);
		pthread_mutex_unlock(&ad->mu);
		pthread_join(ad->thread, NULL);
		while ((r = ad->head) != NULL) {
			ad->head = r->next;
			req_free(r);
		}
	}
	if (ad->ev)
		event_free(ad->ev);
	if (ad->fds[0] != -1) {
		/* Finished but never collected. */
		while (read(ad->fds[0], &r, sizeof(r)) == (ssize_t)sizeof(r))
			req_free(r);
		close(ad->fds[0]);
		close(ad->fds[1]);
	}
	for (i = 0; i < ad->ncache; i++)
		free(ad->cache[i].hash);
	free(ad->cache);
	OPENSSL_cleanse(ad->key, sizeof(ad->key));
	userdb_free(&ad->db);
	free(ad->path);
	free(ad->data_dir);
	free(ad);
}

/* Reload the store when `postern user` changed it. */
static void
refresh(struct auth_check *ad)
{
	struct userdb ndb;
	char why[512];

	if (!userdb_changed(ad->path, &ad->db))
		return;
	memset(&ndb, 0, sizeof(ndb));
	if (userdb_load(ad->path, &ndb, why, sizeof(why)) == -1) {
		if (!ad->load_failed)
			log_crit("SMTP credentials: %s; the previous "
			    "credentials stay in use until it is fixed", why);
		ad->load_failed = 1;
		/* Not again until the file changes once more. */
		ad->db.dev = ndb.dev;
		ad->db.ino = ndb.ino;
		ad->db.size = ndb.size;
		ad->db.mtime_ns = ndb.mtime_ns;
		userdb_free(&ndb);
		return;
	}
	if (ad->load_failed)
		log_info("SMTP credentials: %s loaded again", ad->path);
	ad->load_failed = 0;
	userdb_free(&ad->db);
	ad->db = ndb;
}

const struct userdb_user *
auth_check_user(struct auth_check *ad, const char *name)
{
	refresh(ad);
	return userdb_find(&ad->db, name);
}

static void
finish_now(struct auth_check *ad, struct auth_check_req *r, int result, const char *why)
{
	ssize_t n;

	r->result = result;
	r->why = why;
	r->cached = 1;
	n = write(ad->fds[1], &r, sizeof(r));
	if (n != (ssize_t)sizeof(r))
		fatalx("AUTH: completion pipe full");
}

struct auth_check_req *
auth_check_verify(struct auth_check *ad, const char *user, const char *password,
    size_t len, auth_check_cb cb, void *arg)
{
	const struct userdb_user *u = auth_check_user(ad, user);
	struct auth_check_req *r = xcalloc(1, sizeof(*r));
	struct cache_entry *ce;
	unsigned char mac[32];

	r->ad = ad;
	r->cb = cb;
	r->arg = arg;
	bstrlcpy(r->user, user, sizeof(r->user));
	r->pass = xmalloc(len + 1);
	memcpy(r->pass, password, len);
	r->pass[len] = '\0';
	r->len = len;
	if (u != NULL)
		r->hash = xstrdup(u->hash);
	ad->outstanding++;
	if (u != NULL && (ce = cache_find(ad, user, 0)) != NULL &&
	    ce->valid && strcmp(ce->hash, u->hash) == 0) {
		mac_of(ad, u->hash, password, len, mac);
		if (CRYPTO_memcmp(mac, ce->mac, sizeof(mac)) == 0) {
			finish_now(ad, r, 1, NULL);
			return r;
		}
	}
	if (ad->outstanding > AUTH_CHECK_QUEUE_MAX) {
		log_warnx("AUTH: %d password checks waiting; answering "
		    "\"temporary failure\" until they are done",
		    AUTH_CHECK_QUEUE_MAX);
		finish_now(ad, r, -1, "too many password checks waiting");
		return r;
	}
	pthread_mutex_lock(&ad->mu);
	if (ad->tail)
		ad->tail->next = r;
	else
		ad->head = r;
	ad->tail = r;
	pthread_cond_signal(&ad->cv);
	pthread_mutex_unlock(&ad->mu);
	return r;
}

void
auth_check_cancel(struct auth_check_req *r)
{
	if (r != NULL)
		r->cancelled = 1;
}

void
auth_check_used(struct auth_check *ad, const char *name)
{
	struct cache_entry *ce = cache_find(ad, name, 1);
	double now = mono_now();

	if (ce->used_mark != 0 && now - ce->used_mark < AUTH_CHECK_USED_EVERY)
		return;
	ce->used_mark = now;
	if (userdb_touch_used(ad->data_dir, name) == -1)
		log_warn("cannot record the last use of user %s", name);
}
