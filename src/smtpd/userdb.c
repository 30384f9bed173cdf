/*
 * userdb.c - the SMTP credential store (see userdb.h): the libconfig file
 * <data_dir>/users, scrypt password hashes in PHC form, generated
 * passwords, user names and sender identities, and the "last used" marks
 * in <data_dir>/users.used/.
 *
 * Hashes are "$scrypt$ln=L,r=R,p=P$SALT$HASH" with SALT and HASH in
 * base64 without padding (base64.c; a '=' anywhere is refused).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "userdb.h"
#include "util.h"

#define SCRYPT_LN		14	/* N = 2^14 */
#define SCRYPT_R		8
#define SCRYPT_P		1
#define SALT_LEN		16
#define DK_LEN			32
/* Accepted when verifying (parameters may be raised later). */
#define SCRYPT_LN_MIN		10
#define SCRYPT_LN_MAX		20
#define SCRYPT_R_MAX		32
#define SCRYPT_P_MAX		16
#define SALT_MIN		8
#define SALT_MAX		64
#define DK_MIN			16
#define DK_MAX			64
/* Bound on scrypt's memory (OpenSSL: 128*r*p + 128*r*(N+2)). */
#define SCRYPT_MAXMEM		((uint64_t)256 * 1024 * 1024)
/* The store file is small; refuse anything absurd before parsing. */
#define USERDB_FILE_MAX		((off_t)64 * 1024 * 1024)
#define USED_SUBDIR		"users.used"

static const char alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

char *
userdb_path(const char *data_dir)
{
	size_t n = strlen(data_dir) + sizeof("/users");
	char *p = xmalloc(n);

	snprintf(p, n, "%s/users", data_dir);
	return p;
}

/* ---- names and identities ---------------------------------------- */

const char *
userdb_name_invalid(const char *name)
{
	size_t i, n;

	if (name == NULL || (n = strlen(name)) == 0)
		return "a user name must not be empty";
	if (n > USERDB_NAME_MAX)
		return "a user name has at most 64 characters";
	if (name[0] == '.')
		return "a user name must not start with '.'";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '+' || c == '-'))
			return "a user name may hold only letters, digits and "
			    "'.', '_', '@', '+', '-'";
	}
	return NULL;
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-",
	    c) != NULL);
}

/* A host name: LDH labels of 1..63, <= 255 in all, a dot or localhost. */
static const char *
domain_invalid(const char *d, size_t n)
{
	size_t i, start = 0;
	int dots = 0;

	if (n == 0)
		return "the domain is empty";
	if (n > 255)
		return "a domain has at most 255 characters";
	for (i = 0; i <= n; i++) {
		if (i == n || d[i] == '.') {
			if (i == start)
				return "a domain must not have empty labels "
				    "(leading, trailing or double dots)";
			if (i - start > 63)
				return "a domain label has at most 63 "
				    "characters";
			if (d[start] == '-' || d[i - 1] == '-')
				return "a domain label must not start or end "
				    "with '-'";
			if (i < n)
				dots++;
			start = i + 1;
		} else if (!is_alnum((unsigned char)d[i]) && d[i] != '-')
			return "a domain may hold only letters, digits, '-' "
			    "and dots";
	}
	if (dots == 0 && !(n == 9 && ascii_ncasecmp(d, "localhost", 9) == 0))
		return "a domain needs at least one dot (like example.com), "
		    "or is localhost";
	return NULL;
}

/* Dot-atom local part, 1..64. */
static const char *
local_invalid(const char *l, size_t n)
{
	size_t i;

	if (n == 0)
		return "the part before '@' is empty";
	if (n > 64)
		return "the part before '@' has at most 64 characters";
	if (l[0] == '.' || l[n - 1] == '.')
		return "the part before '@' must not start or end with '.'";
	for (i = 0; i < n; i++) {
		if (l[i] == '.') {
			if (l[i + 1] == '.')
				return "the part before '@' must not have "
				    "'..'";
		} else if (!is_atext((unsigned char)l[i]))
			return "the part before '@' may hold only letters, "
			    "digits, dots and !#$%&'*+/=?^_`{|}~-";
	}
	return NULL;
}

const char *
userdb_identity_normalize(const char *in, char *out, size_t outlen)
{
	const char *at, *why;
	size_t n, i;

	if (in == NULL || (n = strlen(in)) == 0)
		return "an identity must not be empty";
	if ((at = strchr(in, '@')) != NULL) {
		if (strchr(at + 1, '@') != NULL)
			return "an address has one '@'";
		if ((why = local_invalid(in, (size_t)(at - in))) != NULL)
			return why;
		if ((why = domain_invalid(at + 1, strlen(at + 1))) != NULL)
			return why;
	} else if (in[0] == '.') {
		if ((why = domain_invalid(in + 1, n - 1)) != NULL)
			return why;
	} else if ((why = domain_invalid(in, n)) != NULL)
		return why;
	if (n >= outlen)
		return "the identity is too long";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[n] = '\0';
	return NULL;
}

int
userdb_identity_allows(const struct userdb_user *u, const char *addr)
{
	const char *at, *dom, *id;
	size_t i, dlen, ilen;

	if (u == NULL || addr == NULL || addr[0] == '\0' ||
	    (at = strrchr(addr, '@')) == NULL || at == addr)
		return 0;
	dom = at + 1;
	dlen = strlen(dom);
	if (dlen == 0)
		return 0;
	for (i = 0; i < u->nidentities; i++) {
		id = u->identities[i];
		ilen = strlen(id);
		if (strchr(id, '@') != NULL) {
			if (ascii_casecmp(addr, id) == 0)
				return 1;
		} else if (id[0] == '.') {
			/* Strict subdomains: x.example.com, not example.com. */
			if (dlen > ilen && ascii_casecmp(dom + dlen - ilen,
			    id) == 0)
				return 1;
		} else if (ascii_casecmp(dom, id) == 0)
			return 1;
	}
	return 0;
}

int
userdb_identity_add(struct userdb_user *u, const char *identity)
{
	size_t i;

	for (i = 0; i < u->nidentities; i++)
		if (ascii_casecmp(u->identities[i], identity) == 0)
			return 1;
	if (u->nidentities >= USERDB_MAX_IDENTITIES)
		return -1;
	u->identities = xrealloc(u->identities,
	    (u->nidentities + 1) * sizeof(*u->identities));
	u->identities[u->nidentities++] = xstrdup(identity);
	return 0;
}

int
userdb_identity_remove(struct userdb_user *u, const char *identity)
{
	size_t i;

	for (i = 0; i < u->nidentities; i++) {
		if (ascii_casecmp(u->identities[i], identity) != 0)
			continue;
		free(u->identities[i]);
		memmove(&u->identities[i], &u->identities[i + 1],
		    (u->nidentities - i - 1) * sizeof(*u->identities));
		u->nidentities--;
		return 0;
	}
	return -1;
}

/* ---- passwords ----------------------------------------------------- */

int
userdb_generate_password(char *out, size_t outlen)
{
	unsigned char buf[64];
	size_t n = 0, i;

	if (outlen < USERDB_PASSWORD_LEN + 1)
		return -1;
	while (n < USERDB_PASSWORD_LEN) {
		if (RAND_bytes(buf, sizeof(buf)) != 1) {
			OPENSSL_cleanse(buf, sizeof(buf));
			OPENSSL_cleanse(out, outlen);
			return -1;
		}
		/* 248 = 4 * 62: reject the rest so every letter is equally
		 * likely (no modulo bias). */
		for (i = 0; i < sizeof(buf) && n < USERDB_PASSWORD_LEN; i++)
			if (buf[i] < 248)
				out[n++] = alnum[buf[i] % 62];
	}
	out[n] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

struct phc {
	unsigned	ln, r, p;
	unsigned char	salt[SALT_MAX];
	size_t		saltlen;
	unsigned char	dk[DK_MAX];
	size_t		dklen;
};

/* Decimal 1..max, no sign, no leading zero; advances *s. */
static int
parse_uint(const char **s, unsigned min, unsigned max, unsigned *v)
{
	const char *p = *s;
	unsigned long x = 0;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' &&
	    p[1] <= '9'))
		return -1;
	while (*p >= '0' && *p <= '9') {
		x = x * 10 + (unsigned long)(*p - '0');
		if (x > max)
			return -1;
		p++;
	}
	if (x < min)
		return -1;
	*v = (unsigned)x;
	*s = p;
	return 0;
}

static uint64_t
scrypt_mem(unsigned ln, unsigned r, unsigned p)
{
	return (uint64_t)128 * r * p + (uint64_t)128 * r *
	    (((uint64_t)1 << ln) + 2);
}

static int
phc_parse(const char *hash, struct phc *ph)
{
	const char *s = hash, *salt, *dk;
	int n;

	if (hash == NULL || strncmp(s, "$scrypt$ln=", 11) != 0)
		return -1;
	s += 11;
	if (parse_uint(&s, SCRYPT_LN_MIN, SCRYPT_LN_MAX, &ph->ln) == -1 ||
	    strncmp(s, ",r=", 3) != 0)
		return -1;
	s += 3;
	if (parse_uint(&s, 1, SCRYPT_R_MAX, &ph->r) == -1 ||
	    strncmp(s, ",p=", 3) != 0)
		return -1;
	s += 3;
	if (parse_uint(&s, 1, SCRYPT_P_MAX, &ph->p) == -1 || *s != '$')
		return -1;
	if (scrypt_mem(ph->ln, ph->r, ph->p) > SCRYPT_MAXMEM)
		return -1;
	salt = s + 1;
	if ((dk = strchr(salt, '$')) == NULL)
		return -1;
	/* PHC strings never carry base64 padding. */
	if (strchr(salt, '=') != NULL)
		return -1;
	n = base64_decode(salt, (size_t)(dk - salt), ph->salt, sizeof(ph->salt));
	if (n < SALT_MIN)
		return -1;
	ph->saltlen = (size_t)n;
	dk++;
	n = base64_decode(dk, strlen(dk), ph->dk, sizeof(ph->dk));
	if (n < DK_MIN)
		return -1;
	ph->dklen = (size_t)n;
	return 0;
}

static int
scrypt(const char *pw, size_t len, const unsigned char *salt, size_t saltlen,
    unsigned ln, unsigned r, unsigned p, unsigned char *dk, size_t dklen)
{
	return EVP_PBE_scrypt(len ? pw : "", len, salt, saltlen,
	    (uint64_t)1 << ln, r, p, SCRYPT_MAXMEM, dk, dklen) == 1 ? 0 : -1;
}

char *
userdb_hash_password(const char *password, size_t len)
{
	unsigned char salt[SALT_LEN], dk[DK_LEN];
	char s64[4 * (SALT_LEN / 3 + 1) + 1], d64[4 * (DK_LEN / 3 + 1) + 1];
	char out[128];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return NULL;
	if (scrypt(password, len, salt, sizeof(salt), SCRYPT_LN, SCRYPT_R,
	    SCRYPT_P, dk, sizeof(dk)) == -1) {
		OPENSSL_cleanse(dk, sizeof(dk));
		return NULL;
	}
	base64_encode_nopad(salt, sizeof(salt), s64);
	base64_encode_nopad(dk, sizeof(dk), d64);
	OPENSSL_cleanse(dk, sizeof(dk));
	if (bsnprintf(out, sizeof(out), "$scrypt$ln=%d,r=%d,p=%d$%s$%s",
	    SCRYPT_LN, SCRYPT_R, SCRYPT_P, s64, d64) == -1)
		return NULL;
	return xstrdup(out);
}

int
userdb_verify_password(const char *hash, const char *password, size_t len)
{
	unsigned char dk[DK_MAX];
	struct phc ph;
	int ok;

	if (phc_parse(hash, &ph) == -1) {
		OPENSSL_cleanse(&ph, sizeof(ph));
		return -1;
	}
	if (scrypt(password, len, ph.salt, ph.saltlen, ph.ln, ph.r, ph.p,
	    dk, ph.dklen) == -1) {
		OPENSSL_cleanse(dk, sizeof(dk));
		OPENSSL_cleanse(&ph, sizeof(ph));
		return -1;
	}
	ok = CRYPTO_memcmp(dk, ph.dk, ph.dklen) == 0;
	OPENSSL_cleanse(dk, sizeof(dk));
	OPENSSL_cleanse(&ph, sizeof(ph));
	return ok;
}

/* ---- records ------------------------------------------------------- */

static void
user_clear(struct userdb_user *u)
{
	free(u->name);
	free(u->hash);
	strv_free(u->identities, u->nidentities);
	memset(u, 0, sizeof(*u));
}

void
userdb_free(struct userdb *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->nusers; i++)
		user_clear(&db->users[i]);
	free(db->users);
	db->users = NULL;
	db->nusers = 0;
}

struct userdb_user *
userdb_find(const struct userdb *db, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < db->nusers; i++)
		if (strcmp(db->users[i].name, name) == 0)
			return &db->users[i];
	return NULL;
}

struct userdb_user *
userdb_add(struct userdb *db, const char *name)
{
	struct userdb_user *u;

	if (userdb_find(db, name) != NULL || db->nusers >= USERDB_MAX_USERS)
		return NULL;
	db->users = xrealloc(db->users, (db->nusers + 1) * sizeof(*db->users));
	u = &db->users[db->nusers++];
	memset(u, 0, sizeof(*u));
	u->name = xstrdup(name);
	return u;
}

int
userdb_remove(struct userdb *db, const char *name)
{
	struct userdb_user *u;
	size_t i;

	if ((u = userdb_find(db, name)) == NULL)
		return -1;
	i = (size_t)(u - db->users);
	user_clear(u);
	memmove(&db->users[i], &db->users[i + 1],
	    (db->nusers - i - 1) * sizeof(*db->users));
	db->nusers--;
	return 0;
}

/* ---- the file ------------------------------------------------------ */

static void
set_identity(struct userdb *db, const struct stat *st)
{
	if (st == NULL) {
		db->dev = 0;
		db->ino = 0;
		db->size = -1;		/* "no file" */
		db->mtime_ns = 0;
		return;
	}
	db->dev = st->st_dev;
	db->ino = st->st_ino;
	db->size = st->st_size;
	db->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
	    st->st_mtim.tv_nsec;
}

int
userdb_changed(const char *path, const struct userdb *db)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return errno == ENOENT ? db->size != -1 : 1;
	return db->size == -1 || st.st_dev != db->dev ||
	    st.st_ino != db->ino || st.st_size != db->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
	    db->mtime_ns;
}

struct loadctx {
	const char	*path;
	char		*why;
	size_t		 whylen;
};

static int
bad(struct loadctx *c, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
bad(struct loadctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->why, c->whylen, "%s:%u: %s", c->path,
	    s != NULL ? config_setting_source_line(s) : 0, msg);
	return -1;
}

static int
get_count(struct loadctx *c, const config_setting_t *s, long *v)
{
	long long x;

	if (s->type != CONFIG_TYPE_INT && s->type != CONFIG_TYPE_INT64)
		return bad(c, s, "%s must be a whole number (0 = no limit)",
		    config_setting_name(s));
	x = config_setting_get_int64(s);
	if (x < 0 || x > LONG_MAX)
		return bad(c, s, "%s must be 0 or more",
		    config_setting_name(s));
	*v = (long)x;
	return 0;
}

static int
load_user(struct loadctx *c, struct userdb *db, const config_setting_t *g)
{
	const config_setting_t *s, *e;
	const char *name = NULL, *hash = NULL, *key, *why;
	struct userdb_user *u;
	struct phc ph;
	char norm[512];
	long long created = 0;
	long rate = 0, day = 0;
	int i, n, j, m;

	if (g->type != CONFIG_TYPE_GROUP)
		return bad(c, g, "each user is a group { name = ...; hash = "
		    "...; }");
	n = config_setting_length(g);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(g, (unsigned)i);
		key = config_setting_name(s);
		if (strcmp(key, "name") == 0) {
			if (s->type != CONFIG_TYPE_STRING)
				return bad(c, s, "name must be a string");
			name = config_setting_get_string(s);
			if ((why = userdb_name_invalid(name)) != NULL)
				return bad(c, s, "user name '%s': %s", name,
				    why);
		} else if (strcmp(key, "hash") == 0) {
			if (s->type != CONFIG_TYPE_STRING)
				return bad(c, s, "hash must be a string");
			hash = config_setting_get_string(s);
			if (phc_parse(hash, &ph) == -1) {
				OPENSSL_cleanse(&ph, sizeof(ph));
				return bad(c, s, "hash is not a scrypt hash "
				    "($scrypt$ln=..,r=..,p=..$SALT$HASH)");
			}
			OPENSSL_cleanse(&ph, sizeof(ph));
		} else if (strcmp(key, "created") == 0) {
			if (s->type != CONFIG_TYPE_INT &&
			    s->type != CONFIG_TYPE_INT64)
				return bad(c, s, "created must be a whole "
				    "number (seconds since 1970)");
			created = config_setting_get_int64(s);
			if (created < 0)
				return bad(c, s, "created must be 0 or more");
		} else if (strcmp(key, "identities") == 0) {
			if (s->type != CONFIG_TYPE_ARRAY &&
			    s->type != CONFIG_TYPE_LIST)
				return bad(c, s, "identities must be a list "
				    "of strings [ \"example.com\", ... ]");
			m = config_setting_length(s);
			if (m > USERDB_MAX_IDENTITIES)
				return bad(c, s, "more than %d identities",
				    USERDB_MAX_IDENTITIES);
			for (j = 0; j < m; j++) {
				e = config_setting_get_elem(s, (unsigned)j);
				if (e->type != CONFIG_TYPE_STRING)
					return bad(c, e, "identities must be "
					    "strings");
				why = userdb_identity_normalize(
				    config_setting_get_string(e), norm,
				    sizeof(norm));
				if (why != NULL)
					return bad(c, e, "identity '%s': %s",
					    config_setting_get_string(e), why);
			}
		} else if (strcmp(key, "max_send_rate") == 0) {
			if (get_count(c, s, &rate) == -1)
				return -1;
		} else if (strcmp(key, "max_24_hour_send") == 0) {
			if (get_count(c, s, &day) == -1)
				return -1;
		} else
			return bad(c, s, "unknown key '%s' (a user has name, "
			    "hash, created, identities, max_send_rate, "
			    "max_24_hour_send)", key);
	}
	if (name == NULL)
		return bad(c, g, "a user without name");
	if (hash == NULL)
		return bad(c, g, "user '%s' has no hash", name);
	if (userdb_find(db, name) != NULL)
		return bad(c, g, "user '%s' appears twice", name);
	if ((u = userdb_add(db, name)) == NULL)
		return bad(c, g, "more than %d users", USERDB_MAX_USERS);
	u->hash = xstrdup(hash);
	u->created = created;
	u->max_send_rate = rate;
	u->max_24_hour_send = day;
	if ((s = config_setting_get_member(g, "identities")) != NULL) {
		m = config_setting_length(s);
		for (j = 0; j < m; j++) {
			e = config_setting_get_elem(s, (unsigned)j);
			userdb_identity_normalize(config_setting_get_string(e),
			    norm, sizeof(norm));
			if (userdb_identity_add(u, norm) == 1)
				return bad(c, e, "identity '%s' appears twice",
				    norm);
		}
	}
	return 0;
}

static int
load_config(struct loadctx *c, struct userdb *db, config_t *cfg)
{
	const config_setting_t *root, *s, *users = NULL;
	int i, n;

	root = config_root_setting(cfg);
	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(root, (unsigned)i);
		if (strcmp(config_setting_name(s), "users") != 0)
			return bad(c, s, "unknown key '%s' (the file holds "
			    "only users = ( ... );)", config_setting_name(s));
		users = s;
	}
	if (users == NULL)
		return 0;
	if (users->type != CONFIG_TYPE_LIST &&
	    !(users->type == CONFIG_TYPE_ARRAY &&
	    config_setting_length(users) == 0))
		return bad(c, users, "users must be a list ( { ... }, ... )");
	n = config_setting_length(users);
	if (n > USERDB_MAX_USERS)
		return bad(c, users, "more than %d users", USERDB_MAX_USERS);
	for (i = 0; i < n; i++)
		if (load_user(c, db, config_setting_get_elem(users,
		    (unsigned)i)) == -1)
			return -1;
	return 0;
}

int
userdb_load(const char *path, struct userdb *db, char *why, size_t whylen)
{
	struct loadctx c = { path, why, whylen };
	struct stat st;
	config_t cfg;
	FILE *f;
	int rc;

	memset(db, 0, sizeof(*db));
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT) {
			set_identity(db, NULL);
			return 0;
		}
		snprintf(why, whylen, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1) {
		snprintf(why, whylen, "cannot read %s: %s", path,
		    strerror(errno));
		fclose(f);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		fclose(f);
		return -1;
	}
	if (st.st_size > USERDB_FILE_MAX) {
		snprintf(why, whylen, "%s is too large (%lld bytes)", path,
		    (long long)st.st_size);
		fclose(f);
		return -1;
	}
	config_init(&cfg);
	if (config_read(&cfg, f) != CONFIG_TRUE) {
		snprintf(why, whylen, "%s:%d: %s", path,
		    config_error_line(&cfg), config_error_text(&cfg) != NULL ?
		    config_error_text(&cfg) : "cannot parse");
		config_destroy(&cfg);
		fclose(f);
		set_identity(db, &st);
		return -1;
	}
	fclose(f);
	rc = load_config(&c, db, &cfg);
	config_destroy(&cfg);
	if (rc == -1)
		userdb_free(db);
	/* Even when broken: userdb_changed() then tells when it is fixed. */
	set_identity(db, &st);
	return rc;
}

static void
add_count(config_setting_t *g, const char *key, long long v)
{
	config_setting_t *s;

	if (v > INT_MAX) {
		s = config_setting_add(g, key, CONFIG_TYPE_INT64);
		config_setting_set_int64(s, v);
	} else {
		s = config_setting_add(g, key, CONFIG_TYPE_INT);
		config_setting_set_int(s, (int)v);
	}
}

int
userdb_save(const char *path, const struct userdb *db, char *why,
    size_t whylen)
{
	config_setting_t *list, *g, *s, *a;
	const struct userdb_user *u;
	config_t cfg;
	char *buf = NULL;
	size_t len = 0, i, j;
	FILE *f;
	int rc;

	config_init(&cfg);
	config_set_options(&cfg, CONFIG_OPTION_SEMICOLON_SEPARATORS);
	list = config_setting_add(config_root_setting(&cfg), "users",
	    CONFIG_TYPE_LIST);
	for (i = 0; i < db->nusers; i++) {
		u = &db->users[i];
		g = config_setting_add(list, NULL, CONFIG_TYPE_GROUP);
		s = config_setting_add(g, "name", CONFIG_TYPE_STRING);
		config_setting_set_string(s, u->name);
		s = config_setting_add(g, "hash", CONFIG_TYPE_STRING);
		config_setting_set_string(s, u->hash != NULL ? u->hash : "");
		s = config_setting_add(g, "created", CONFIG_TYPE_INT64);
		config_setting_set_int64(s, u->created);
		a = config_setting_add(g, "identities", CONFIG_TYPE_ARRAY);
		for (j = 0; j < u->nidentities; j++)
			config_setting_set_string_elem(a, -1,
			    u->identities[j]);
		add_count(g, "max_send_rate", u->max_send_rate);
		add_count(g, "max_24_hour_send", u->max_24_hour_send);
	}
	if ((f = open_memstream(&buf, &len)) == NULL)
		fatal("open_memstream");
	fputs("# SMTP credentials, managed by `postern user` (scrypt hashes "
	    "only; no passwords).\n", f);
	config_write(&cfg, f);
	config_destroy(&cfg);
	if (fclose(f) != 0)
		fatal("open_memstream");
	rc = write_file_atomic(path, buf, len, 0600);
	if (rc == -1)
		snprintf(why, whylen, "cannot write %s: %s", path,
		    strerror(errno));
	free(buf);
	return rc;
}

/* ---- last used ----------------------------------------------------- */

static int
used_path(const char *data_dir, const char *name, char *buf, size_t len)
{
	if (userdb_name_invalid(name) != NULL)
		return -1;
	return bsnprintf(buf, len, "%s/%s/%s", data_dir, USED_SUBDIR, name);
}

int
userdb_touch_used(const char *data_dir, const char *name)
{
	char path[4096], dir[4096];
	int fd;

	if (used_path(data_dir, name, path, sizeof(path)) == -1 ||
	    bsnprintf(dir, sizeof(dir), "%s/%s", data_dir, USED_SUBDIR) == -1)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 && errno == ENOENT) {
		if (mkdir(dir, 0700) == -1 && errno != EEXIST)
			return -1;
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	}
	if (fd == -1)
		return -1;
	if (futimens(fd, NULL) == -1) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int64_t
userdb_last_used(const char *data_dir, const char *name)
{
	char path[4096];
	struct stat st;

	if (used_path(data_dir, name, path, sizeof(path)) == -1 ||
	    stat(path, &st) == -1)
		return 0;
	return (int64_t)st.st_mtime;
}

void
userdb_forget_used(const char *data_dir, const char *name)
{
	char path[4096];

	if (used_path(data_dir, name, path, sizeof(path)) == 0)
		unlink(path);
}
