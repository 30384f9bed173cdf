/*
 * cmd_user.c - `postern user`: the SMTP credentials in <data_dir>/users
 * (userdb.h) and the sender identities each may use.
 *
 *   user add NAME [--identity X]... [--max-send-rate N] [--max-24-hour-send N]
 *   user passwd NAME
 *   user modify NAME [--add-identity X]... [--remove-identity X]...
 *                    [--max-send-rate N] [--max-24-hour-send N]
 *   user remove NAME
 *   user list
 *
 * Passwords are generated here, printed once as "username: NAME" and
 * "password: SECRET" and never stored (only a scrypt hash).  The store is
 * read, changed and written under an exclusive flock on
 * <data_dir>/users.lock, while acting as the configuration's user
 * (runas.h), so concurrent commands do not lose each other's updates
 * and the daemon can read what they write.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd.h"
#include "conf.h"
#include "runas.h"
#include "strbuf.h"
#include "userdb.h"
#include "util.h"

#define COUNT_MAX	2147483647L	/* quotas: 0 = no limit */

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern user [-c FILE] COMMAND\n"
	    "  add NAME [--identity DOMAIN-OR-ADDRESS]... [--max-send-rate N] "
	    "[--max-24-hour-send N]\n"
	    "        create a credential; its generated password is printed "
	    "once\n"
	    "  passwd NAME\n"
	    "        replace NAME's password with a new generated one\n"
	    "  modify NAME [--add-identity X]... [--remove-identity X]... "
	    "[--max-send-rate N]\n"
	    "        [--max-24-hour-send N]\n"
	    "        change the identities NAME may send as, or its quotas\n"
	    "  remove NAME\n"
	    "        delete the credential\n"
	    "  list\n"
	    "        name, identities, created, last used and quotas of each "
	    "credential\n"
	    "An identity is a domain (example.com: addresses in it), a "
	    "subdomain wildcard\n(.example.com: addresses in its subdomains) "
	    "or an address (alice@example.com).\nA credential sends only as "
	    "its identities.  Quotas: messages per second and per\nrolling 24 "
	    "hours, 0 = no limit.  Passwords are printed as two lines\n"
	    "\"username: NAME\" and \"password: SECRET\" and never stored; "
	    "a running daemon\nsees changes without restart.\n");
}

enum {
	O_IDENTITY = 256, O_ADD_IDENTITY, O_REMOVE_IDENTITY, O_RATE, O_DAY
};
/* What a subcommand accepts. */
#define A_IDENTITY	0x01	/* --identity */
#define A_MODIFY	0x02	/* --add-identity, --remove-identity */
#define A_QUOTA		0x04	/* --max-send-rate, --max-24-hour-send */

struct opts {
	const char	*cpath;
	char		**add;		/* normalised identities to add */
	size_t		 nadd;
	char		**del;		/* ... and to remove */
	size_t		 ndel;
	long		 rate;		/* -1 = not given */
	long		 day;
};

static void
opts_free(struct opts *o)
{
	strv_free(o->add, o->nadd);
	strv_free(o->del, o->ndel);
}

static void
push(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

static int
parse_count(const char *s, long *v)
{
	long x = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		x = x * 10 + (*s - '0');
		if (x > COUNT_MAX)
			return -1;
	}
	*v = x;
	return 0;
}

/* Options of subcommand `sub`; returns -1 to go on, else the exit
 * status.  The NAME (and anything else) is left at argv[optind...]. */
static int
parse(const char *sub, int argc, char **argv, int allow, struct opts *o)
{
	static const struct option lo[] = {
		{ "identity", required_argument, NULL, O_IDENTITY },
		{ "add-identity", required_argument, NULL, O_ADD_IDENTITY },
		{ "remove-identity", required_argument, NULL,
		    O_REMOVE_IDENTITY },
		{ "max-send-rate", required_argument, NULL, O_RATE },
		{ "max-24-hour-send", required_argument, NULL, O_DAY },
		{ "help", no_argument, NULL, 'h' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	char norm[512];
	const char *why;
	int c, li, need;

	o->rate = o->day = -1;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", lo, &li)) != -1) {
		switch (c) {
		case 'c':
			o->cpath = optarg;
			continue;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return cmd_usage_error("user", sub, "option %s needs a value",
			    argv[optind - 1]);
		case '?':
			return cmd_usage_error("user", sub, "unknown option '%s'",
			    argv[optind - 1]);
		}
		need = c == O_IDENTITY ? A_IDENTITY : c == O_RATE ||
		    c == O_DAY ? A_QUOTA : A_MODIFY;
		if (!(allow & need))
			return cmd_usage_error("user", sub, "%s does not take --%s%s", sub,
			    lo[li].name, c == O_IDENTITY &&
			    (allow & A_MODIFY) ? " (use --add-identity)" : "");
		switch (c) {
		case O_IDENTITY:
		case O_ADD_IDENTITY:
		case O_REMOVE_IDENTITY:
			if ((why = userdb_identity_normalize(optarg, norm,
			    sizeof(norm))) != NULL)
				return cmd_usage_error("user", sub, "identity '%s' is "
				    "not a domain, .subdomain wildcard or "
				    "address: %s", optarg, why);
			if (c == O_REMOVE_IDENTITY)
				push(&o->del, &o->ndel, norm);
			else
				push(&o->add, &o->nadd, norm);
			break;
		case O_RATE:
		case O_DAY:
			if (parse_count(optarg, c == O_RATE ? &o->rate :
			    &o->day) == -1)
				return cmd_usage_error("user", sub, "%s needs a whole "
				    "number from 0 (no limit) to %ld, not "
				    "'%s'", c == O_RATE ? "--max-send-rate" :
				    "--max-24-hour-send", COUNT_MAX, optarg);
			break;
		}
	}
	return -1;
}

/* The NAME argument: exactly one, valid.  -1 to go on, else the status. */
static int
take_name(const char *sub, int argc, char **argv, const char **name)
{
	const char *why;

	if (optind >= argc)
		return cmd_usage_error("user", sub, "which user? give the user NAME");
	if (optind + 1 < argc)
		return cmd_usage_error("user", sub, "unexpected argument '%s'",
		    argv[optind + 1]);
	*name = argv[optind];
	if ((why = userdb_name_invalid(*name)) != NULL)
		return cmd_usage_error("user", sub, "'%s' is not a valid user name: %s",
		    *name, why);
	return -1;
}

/*
 * Act as the configuration's user, create data_dir if needed and take the
 * store's lock.  0 with *lockfd set, or -1 after printing why (`what` is
 * e.g. "add user alice").
 */
static int
store_begin(const struct conf *conf, const char *what, int *lockfd)
{
	char lock[4096];
	struct stat st;
	int fd;

	if (bsnprintf(lock, sizeof(lock), "%s/users.lock", conf->data_dir)) {
		cmd_fail("cannot %s: data_dir path too long (shorten "
		    "data_dir)", what);
		return -1;
	}
	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		return -1;
	if (stat(conf->data_dir, &st) == -1 &&
	    mkdir_p(conf->data_dir, 0700) == -1) {
		cmd_fail("cannot %s: cannot create %s: %s (check data_dir and "
		    "its permissions)", what, conf->data_dir, strerror(errno));
		runas_restore();
		return -1;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		cmd_fail("cannot %s: cannot open %s: %s (check the permissions "
		    "of %s)", what, lock, strerror(errno), conf->data_dir);
		runas_restore();
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		cmd_fail("cannot %s: cannot lock %s: %s (is data_dir on a "
		    "file system without locks?)", what, lock,
		    strerror(errno));
		close(fd);
		runas_restore();
		return -1;
	}
	*lockfd = fd;
	return 0;
}

static void
store_end(int lockfd)
{
	close(lockfd);
	runas_restore();
}

/* What to do about a userdb_load() failure `why`. */
static const char *
load_hint(const char *path, const char *why)
{
	size_t n = strlen(path);

	if (strncmp(why, path, n) == 0 && why[n] == ':' &&
	    why[n + 1] >= '0' && why[n + 1] <= '9')
		return "fix that line, or restore the file from a backup";
	return "check data_dir and the file's permissions; run as root or "
	    "as the configuration's user";
}

/* Load under the lock; on failure print why and end. */
static int
store_load(const char *path, struct userdb *db, const char *what, int lockfd)
{
	char why[1024];

	if (userdb_load(path, db, why, sizeof(why)) == -1) {
		store_end(lockfd);
		cmd_fail("cannot %s: %s (%s)", what, why, load_hint(path, why));
		return -1;
	}
	return 0;
}

static int
store_save(const char *path, const struct userdb *db, const char *what,
    const struct conf *conf, int lockfd)
{
	char why[1024];

	if (userdb_save(path, db, why, sizeof(why)) == -1) {
		store_end(lockfd);
		cmd_fail("cannot %s: %s (check the permissions of %s)", what,
		    why, conf->data_dir);
		return -1;
	}
	return 0;
}

/* "example.com,alice@example.org" or "(none)". */
static void
identities_str(const struct userdb_user *u, struct strbuf *sb)
{
	size_t i;

	if (u->nidentities == 0)
		strbuf_puts(sb, "(none)");
	for (i = 0; i < u->nidentities; i++)
		strbuf_printf(sb, "%s%s", i ? "," : "", u->identities[i]);
}

static void
quotas_str(const struct userdb_user *u, struct strbuf *sb)
{
	if (u->max_send_rate == 0 && u->max_24_hour_send == 0)
		strbuf_puts(sb, "unlimited");
	if (u->max_send_rate > 0)
		strbuf_printf(sb, "rate %ld/s", u->max_send_rate);
	if (u->max_24_hour_send > 0)
		strbuf_printf(sb, "%s24h %ld", u->max_send_rate > 0 ? ", " : "",
		    u->max_24_hour_send);
}

static void
iso_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len,
	    "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		bstrlcpy(buf, "-", len);
}

/* Print the two lines from a buffer that is wiped afterwards (not
 * through stdio, whose buffer would keep the secret). */
static int
print_secret(const char *name, char *password)
{
	char buf[USERDB_NAME_MAX + USERDB_PASSWORD_LEN + 32];
	int n, rc = 0;

	fflush(stdout);
	n = snprintf(buf, sizeof(buf), "username: %s\npassword: %s\n", name,
	    password);
	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    write_full(STDOUT_FILENO, buf, (size_t)n) == -1)
		rc = -1;
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(password, USERDB_PASSWORD_LEN + 1);
	return rc;
}

/* A new password and its hash; -1 after printing why. */
static int
new_secret(const char *what, char *password, char **hash)
{
	if (userdb_generate_password(password, USERDB_PASSWORD_LEN + 1) ==
	    -1 || (*hash = userdb_hash_password(password,
	    USERDB_PASSWORD_LEN)) == NULL) {
		OPENSSL_cleanse(password, USERDB_PASSWORD_LEN + 1);
		cmd_fail("cannot %s: the random generator or scrypt failed "
		    "(check the OpenSSL installation)", what);
		return -1;
	}
	return 0;
}

static void
note_no_identity(const char *name)
{
	fprintf(stderr, "note: %s cannot send mail until it has an identity: "
	    "`postern user modify %s --add-identity DOMAIN-OR-ADDRESS`\n",
	    name, name);
}

static int
u_add(const char *cpath, int argc, char **argv)
{
	struct opts o = { .cpath = NULL };
	struct conf *conf = NULL;
	struct userdb db = { 0 };
	struct userdb_user *u;
	char what[128], password[USERDB_PASSWORD_LEN + 1], *hash = NULL;
	char *path = NULL;
	const char *name;
	size_t i;
	int r, lockfd, rc = 1;

	o.cpath = cpath;
	if ((r = parse("add", argc, argv, A_IDENTITY | A_QUOTA, &o)) >= 0 ||
	    (r = take_name("add", argc, argv, &name)) >= 0) {
		opts_free(&o);
		return r;
	}
	if (o.nadd > USERDB_MAX_IDENTITIES) {
		opts_free(&o);
		return cmd_usage_error("user", "add", "more than %d identities",
		    USERDB_MAX_IDENTITIES);
	}
	snprintf(what, sizeof(what), "add user %s", name);
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		goto out;
	path = userdb_path(conf->data_dir);
	if (new_secret(what, password, &hash) == -1)
		goto out;
	if (store_begin(conf, what, &lockfd) == -1)
		goto out;
	if (store_load(path, &db, what, lockfd) == -1)
		goto out;
	if (userdb_find(&db, name) != NULL) {
		store_end(lockfd);
		cmd_fail("cannot %s: %s exists already (choose another name, "
		    "or `postern user passwd %s` for a new password)", what,
		    name, name);
		goto out;
	}
	if ((u = userdb_add(&db, name)) == NULL) {
		store_end(lockfd);
		cmd_fail("cannot %s: the store holds %d users already (remove "
		    "unused ones with `postern user remove NAME`)", what,
		    USERDB_MAX_USERS);
		goto out;
	}
	u->hash = hash;
	hash = NULL;
	u->created = wall_now();
	for (i = 0; i < o.nadd; i++)
		userdb_identity_add(u, o.add[i]);
	u->max_send_rate = o.rate > 0 ? o.rate : 0;
	u->max_24_hour_send = o.day > 0 ? o.day : 0;
	if (store_save(path, &db, what, conf, lockfd) == -1)
		goto out;
	userdb_forget_used(conf->data_dir, name);	/* a stale mark */
	store_end(lockfd);
	if (print_secret(name, password) == -1) {
		cmd_fail("cannot print the password of %s: %s (run `postern "
		    "user passwd %s` for a new one)", name, strerror(errno),
		    name);
		goto out;
	}
	fprintf(stderr, "note: the password is shown only once; store it "
	    "now (`postern user passwd %s` makes a new one)\n", name);
	if (o.nadd == 0)
		note_no_identity(name);
	rc = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	free(hash);
	free(path);
	userdb_free(&db);
	conf_free(conf);
	opts_free(&o);
	return rc;
}

static int
u_passwd(const char *cpath, int argc, char **argv)
{
	struct opts o = { .cpath = NULL };
	struct conf *conf = NULL;
	struct userdb db = { 0 };
	struct userdb_user *u;
	char what[128], password[USERDB_PASSWORD_LEN + 1], *hash = NULL;
	char *path = NULL;
	const char *name;
	int r, lockfd, rc = 1;

	o.cpath = cpath;
	if ((r = parse("passwd", argc, argv, 0, &o)) >= 0 ||
	    (r = take_name("passwd", argc, argv, &name)) >= 0) {
		opts_free(&o);
		return r;
	}
	snprintf(what, sizeof(what), "change the password of %s", name);
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		goto out;
	path = userdb_path(conf->data_dir);
	if (new_secret(what, password, &hash) == -1)
		goto out;
	if (store_begin(conf, what, &lockfd) == -1)
		goto out;
	if (store_load(path, &db, what, lockfd) == -1)
		goto out;
	if ((u = userdb_find(&db, name)) == NULL) {
		store_end(lockfd);
		cmd_fail("cannot %s: no such user (see `postern user list`, or "
		    "`postern user add %s`)", what, name);
		goto out;
	}
	free(u->hash);
	u->hash = hash;
	hash = NULL;
	if (store_save(path, &db, what, conf, lockfd) == -1)
		goto out;
	store_end(lockfd);
	if (print_secret(name, password) == -1) {
		cmd_fail("cannot print the new password of %s: %s (run "
		    "`postern user passwd %s` again)", name, strerror(errno),
		    name);
		goto out;
	}
	fprintf(stderr, "note: the password is shown only once; the old one "
	    "no longer works\n");
	rc = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	free(hash);
	free(path);
	userdb_free(&db);
	conf_free(conf);
	opts_free(&o);
	return rc;
}

static int
u_remove(const char *cpath, int argc, char **argv)
{
	struct opts o = { .cpath = NULL };
	struct conf *conf = NULL;
	struct userdb db = { 0 };
	char what[128], *path = NULL;
	const char *name;
	int r, lockfd, rc = 1;

	o.cpath = cpath;
	if ((r = parse("remove", argc, argv, 0, &o)) >= 0 ||
	    (r = take_name("remove", argc, argv, &name)) >= 0) {
		opts_free(&o);
		return r;
	}
	snprintf(what, sizeof(what), "remove user %s", name);
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		goto out;
	path = userdb_path(conf->data_dir);
	if (store_begin(conf, what, &lockfd) == -1)
		goto out;
	if (store_load(path, &db, what, lockfd) == -1)
		goto out;
	if (userdb_remove(&db, name) == -1) {
		store_end(lockfd);
		cmd_fail("cannot %s: no such user (see `postern user list`)",
		    what);
		goto out;
	}
	if (store_save(path, &db, what, conf, lockfd) == -1)
		goto out;
	userdb_forget_used(conf->data_dir, name);
	store_end(lockfd);
	printf("removed user %s\n", name);
	rc = 0;
out:
	free(path);
	userdb_free(&db);
	conf_free(conf);
	opts_free(&o);
	return rc;
}

static int
u_modify(const char *cpath, int argc, char **argv)
{
	struct strbuf ids = STRBUF_INIT, q = STRBUF_INIT;
	struct opts o = { .cpath = NULL };
	struct conf *conf = NULL;
	struct userdb db = { 0 };
	struct userdb_user *u;
	char what[128], *path = NULL;
	const char *name;
	size_t i;
	int r, lockfd, rc = 1;

	o.cpath = cpath;
	if ((r = parse("modify", argc, argv, A_MODIFY | A_QUOTA, &o)) >= 0 ||
	    (r = take_name("modify", argc, argv, &name)) >= 0) {
		opts_free(&o);
		return r;
	}
	if (o.nadd == 0 && o.ndel == 0 && o.rate < 0 && o.day < 0) {
		opts_free(&o);
		return cmd_usage_error("user", "modify", "nothing to change: give "
		    "--add-identity, --remove-identity, --max-send-rate or "
		    "--max-24-hour-send");
	}
	snprintf(what, sizeof(what), "modify user %s", name);
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		goto out;
	path = userdb_path(conf->data_dir);
	if (store_begin(conf, what, &lockfd) == -1)
		goto out;
	if (store_load(path, &db, what, lockfd) == -1)
		goto out;
	if ((u = userdb_find(&db, name)) == NULL) {
		store_end(lockfd);
		cmd_fail("cannot %s: no such user (see `postern user list`)",
		    what);
		goto out;
	}
	for (i = 0; i < o.ndel; i++) {
		if (userdb_identity_remove(u, o.del[i]) == 0)
			continue;
		store_end(lockfd);
		identities_str(u, &ids);
		cmd_fail("cannot %s: %s has no identity %s (its identities: "
		    "%s)", what, name, o.del[i], ids.s);
		goto out;
	}
	for (i = 0; i < o.nadd; i++) {
		if (userdb_identity_add(u, o.add[i]) != -1)
			continue;
		store_end(lockfd);
		cmd_fail("cannot %s: %s has %d identities already (remove "
		    "some, or use a domain instead of many addresses)", what,
		    name, USERDB_MAX_IDENTITIES);
		goto out;
	}
	if (o.rate >= 0)
		u->max_send_rate = o.rate;
	if (o.day >= 0)
		u->max_24_hour_send = o.day;
	if (store_save(path, &db, what, conf, lockfd) == -1)
		goto out;
	store_end(lockfd);
	identities_str(u, &ids);
	quotas_str(u, &q);
	printf("modified user %s: identities %s; quotas %s\n", name, ids.s,
	    q.s);
	if (u->nidentities == 0)
		note_no_identity(name);
	rc = 0;
out:
	strbuf_free(&ids);
	strbuf_free(&q);
	free(path);
	userdb_free(&db);
	conf_free(conf);
	opts_free(&o);
	return rc;
}

static int
u_list(const char *cpath, int argc, char **argv)
{
	struct strbuf *ids = NULL, *q = NULL;
	struct opts o = { .cpath = NULL };
	struct conf *conf = NULL;
	struct userdb db = { 0 };
	char why[1024], (*created)[32] = NULL, (*used)[32] = NULL;
	char *path = NULL;
	size_t i, wname = 4, wids = 10;
	int64_t t;
	int r, rc = 1;

	o.cpath = cpath;
	if ((r = parse("list", argc, argv, 0, &o)) >= 0) {
		opts_free(&o);
		return r;
	}
	if (optind < argc) {
		opts_free(&o);
		return cmd_usage_error("user", "list", "unexpected argument '%s'",
		    argv[optind]);
	}
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		goto out;
	path = userdb_path(conf->data_dir);
	if (userdb_load(path, &db, why, sizeof(why)) == -1) {
		cmd_fail("cannot list users: %s (%s)", why, load_hint(path,
		    why));
		goto out;
	}
	rc = 0;
	if (db.nusers == 0) {
		printf("no users in %s (add one with `postern user add NAME "
		    "--identity DOMAIN`)\n", path);
		goto out;
	}
	ids = xcalloc(db.nusers, sizeof(*ids));
	q = xcalloc(db.nusers, sizeof(*q));
	created = xcalloc(db.nusers, sizeof(*created));
	used = xcalloc(db.nusers, sizeof(*used));
	for (i = 0; i < db.nusers; i++) {
		const struct userdb_user *u = &db.users[i];

		identities_str(u, &ids[i]);
		quotas_str(u, &q[i]);
		if (u->created > 0)
			iso_time(u->created, created[i], sizeof(created[i]));
		else
			bstrlcpy(created[i], "-", sizeof(created[i]));
		if ((t = userdb_last_used(conf->data_dir, u->name)) > 0)
			iso_time(t, used[i], sizeof(used[i]));
		else
			bstrlcpy(used[i], "never", sizeof(used[i]));
		if (strlen(u->name) > wname)
			wname = strlen(u->name);
		if (ids[i].len > wids)
			wids = ids[i].len;
	}
	printf("%-*s  %-*s  %-20s  %-20s  %s\n", (int)wname, "NAME", (int)wids,
	    "IDENTITIES", "CREATED", "LAST-USED", "QUOTAS");
	for (i = 0; i < db.nusers; i++)
		printf("%-*s  %-*s  %-20s  %-20s  %s\n", (int)wname,
		    db.users[i].name, (int)wids, ids[i].s, created[i], used[i],
		    q[i].s);
out:
	for (i = 0; ids != NULL && i < db.nusers; i++) {
		strbuf_free(&ids[i]);
		strbuf_free(&q[i]);
	}
	free(ids);
	free(q);
	free(created);
	free(used);
	free(path);
	userdb_free(&db);
	conf_free(conf);
	opts_free(&o);
	return rc;
}

int
cmd_user(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		(*fn)(const char *, int, char **);
	} subs[] = {
		{ "add", u_add },
		{ "passwd", u_passwd },
		{ "modify", u_modify },
		{ "remove", u_remove },
		{ "list", u_list },
	};
	const char *path = NULL;
	size_t k;
	int i, rc;

	if ((rc = cmd_leading_options(argc, argv, usage, &path, &i)) != -1)
		return rc;
	for (k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(argv[i], subs[k].name) == 0)
			return subs[k].fn(path, argc - i, argv + i);
	fprintf(stderr, "postern: user: unknown command '%s' (see `postern "
	    "user --help`)\n", argv[i]);
	return 2;
}
