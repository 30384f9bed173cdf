/*
 * auth_check.h - the daemon side of SMTP AUTH, one per worker process: the
 * credential store (userdb.h) kept current without a restart (a stat()
 * before each use reloads it when `postern user` changed it), and
 * password checks run off the event loop.
 *
 * scrypt is slow on purpose (about 80 ms), so checks go to one helper
 * thread per worker and come back through a pipe into the event loop; a
 * bounded queue answers "temporary failure" when flooded.  A successful
 * check is remembered as HMAC-SHA256(process key, hash, password), so a
 * client that logs in for every message pays the scrypt once, while every
 * failed or new password pays it in full.  An unknown user costs the same
 * as a known one (a dummy hash is checked).
 */
#ifndef POSTERN_AUTH_CHECK_H
#define POSTERN_AUTH_CHECK_H

#include <stddef.h>

struct event_base;
struct userdb_user;
struct auth_check;
struct auth_check_req;

/* result: 1 valid, 0 invalid, -1 could not check (why says what) */
typedef void (*auth_check_cb)(void *arg, int result, const char *why);

/* In the worker, after fork.  NULL after logging why. */
struct auth_check *auth_check_new(struct event_base *, const char *data_dir);
void	auth_check_free(struct auth_check *);

/* Start a check; the callback always comes later from the event loop,
 * unless the request is cancelled first.  The password is copied. */
struct auth_check_req *auth_check_verify(struct auth_check *, const char *user,
	    const char *password, size_t len, auth_check_cb, void *arg);
void	auth_check_cancel(struct auth_check_req *);

/* The current record of `name` (NULL: no such user).  Valid until the
 * next authd call. */
const struct userdb_user *auth_check_user(struct auth_check *, const char *name);
/* A successful AUTH: remember when (users.used/NAME, rate-limited). */
void	auth_check_used(struct auth_check *, const char *name);

#endif
