/*
 * userdb.h - the SMTP credential store: <data_dir>/users, a libconfig file
 * (mode 0600, written atomically) holding one record per credential:
 *
 *   users = ( { name = "alice"; hash = "$scrypt$ln=14,r=8,p=1$SALT$HASH";
 *               created = 1763891029L; identities = [ "example.com" ];
 *               max_send_rate = 0; max_24_hour_send = 0; } );
 *
 * Only a salted scrypt hash (PHC string, parameters inside, so they can be
 * raised later) is stored; passwords are generated here (32 characters
 * from [A-Za-z0-9], about 190 bits) and never written anywhere.  "Last
 * used" is the mtime of <data_dir>/users.used/NAME, touched by the daemon
 * on a successful AUTH (at most once a minute per user and process), so
 * worker processes never rewrite the store.
 *
 * Callers: cmd_user.c (the `user` command), auth_check.c (the daemon side).
 */
#ifndef POSTERN_USERDB_H
#define POSTERN_USERDB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define USERDB_NAME_MAX		64	/* [A-Za-z0-9._@+-], not starting with '.' */
#define USERDB_PASSWORD_LEN	32
#define USERDB_MAX_USERS	4096
#define USERDB_MAX_IDENTITIES	256

struct userdb_user {
	char	 *name;
	char	 *hash;			/* PHC string */
	int64_t	  created;		/* wall-clock seconds */
	char	**identities;		/* lower-case domains / addresses */
	size_t	  nidentities;
	long	  max_send_rate;	/* messages per second, 0 = no limit */
	long	  max_24_hour_send;	/* messages per rolling 24 h, 0 = none */
};

struct userdb {
	struct userdb_user *users;
	size_t	 nusers;
	/* identity of the file loaded (for cheap change detection) */
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	int64_t	 mtime_ns;
};

/* Paths under data_dir (caller frees). */
char	*userdb_path(const char *data_dir);

/*
 * Load the store.  A missing file is an empty store (0).  -1 with a
 * one-line reason in `why` (file:line for syntax errors); the store is then
 * empty, but when the file could be read it records the file's identity,
 * so userdb_changed() tells when it has been rewritten.
 */
int	userdb_load(const char *path, struct userdb *, char *why, size_t whylen);
/* Write atomically with mode 0600. 0 or -1 (why). */
int	userdb_save(const char *path, const struct userdb *, char *why,
	    size_t whylen);
void	userdb_free(struct userdb *);
/* 1 when the file differs from what `db` was loaded from (stat only). */
int	userdb_changed(const char *path, const struct userdb *db);

struct userdb_user *userdb_find(const struct userdb *, const char *name);
/* Append a record (takes ownership of nothing; copies): NULL when the
 * name exists or the store holds USERDB_MAX_USERS already.  The pointer
 * lives until the next add or remove. */
struct userdb_user *userdb_add(struct userdb *, const char *name);
/* Remove by name: 0, or -1 when absent. */
int	userdb_remove(struct userdb *, const char *name);

/* NULL when valid, else why not (static text). */
const char *userdb_name_invalid(const char *name);
/* Normalise an identity (domain or address) to lower case into `out`;
 * NULL when valid, else why not (static text). */
const char *userdb_identity_normalize(const char *in, char *out,
	    size_t outlen);

/* A fresh random password (USERDB_PASSWORD_LEN chars + NUL). 0 or -1. */
int	userdb_generate_password(char *out, size_t outlen);
/* Hash `password` with a new random salt: malloc'd PHC string or NULL. */
char	*userdb_hash_password(const char *password, size_t len);
/*
 * Check `password` against a PHC string, in constant time over the hash.
 * 1 match, 0 no match, -1 malformed hash.  Slow on purpose (scrypt):
 * the daemon runs it off the event loop (auth_check.c).
 */
int	userdb_verify_password(const char *hash, const char *password,
	    size_t len);

/*
 * May `user` send as `addr` (local@domain)?  An identity that is a domain
 * covers addresses in exactly that domain; ".example.com" covers its
 * subdomains; an address identity covers that address.  Case-insensitive.
 */
int	userdb_identity_allows(const struct userdb_user *, const char *addr);
/* Add a normalised identity: 0 added, 1 already there (case-insensitive),
 * -1 the user has USERDB_MAX_IDENTITIES already. */
int	userdb_identity_add(struct userdb_user *, const char *identity);
/* Remove an identity (case-insensitive): 0, or -1 when absent. */
int	userdb_identity_remove(struct userdb_user *, const char *identity);

/* Last successful AUTH: touch / read <data_dir>/users.used/NAME.
 * Read returns 0 when never used. */
int	userdb_touch_used(const char *data_dir, const char *name);
int64_t	userdb_last_used(const char *data_dir, const char *name);
/* Forget the last-used mark (user removed). */
void	userdb_forget_used(const char *data_dir, const char *name);

#endif
