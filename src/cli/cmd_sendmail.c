/*
 * cmd_sendmail.c - `postern sendmail`, the sendmail(1) interface for
 * local programs (also installed as `sendmail` with `make install
 * SENDMAIL=1`; main.c runs this when called by that name).
 *
 * It hands the message to the daemon through the pickup directory
 * (pickup.c): a file written as `.NAME.tmp`, fsynced, renamed to NAME
 * (never over another file) and flushed with syncfs(2), so exit status
 * 0 means the message is on stable storage where the daemon will take
 * it.  No network, no credentials: the directory's group is the
 * permission (docs/http-api.md "sendmail").  The envelope is written as
 * the X-Sender / X-Receiver fields pickup_parse.c reads.
 *
 * Modes: deliver (default, -bm): the message on stdin, recipients from
 * the arguments and, with -t, from To/Cc/Bcc; a line "." alone ends it
 * unless -i/-oi.  -bs: an SMTP dialogue on stdin/stdout run by the very
 * session engine of the daemon (smtp_server.c), each message written to
 * the pickup directory before its 250.
 * Exit codes: sysexits.h, as programs expect of sendmail.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "cmd.h"
#include "conf.h"
#include "deliver_local.h"
#include "log.h"
#include "msg_prep.h"
#include "route.h"
#include "sendmail_opts.h"
#include "smtp_server.h"
#include "strbuf.h"
#include "util.h"

#define SENDMAIL_RCPTS_MAX	1000

static void
usage(FILE *f)
{
	fprintf(f, "usage: postern sendmail [-t] [-i] [-f ADDR] [-F NAME] "
	    "[-bs] [-c FILE] [RCPT...]\n"
	    "  Hand a message to the daemon through its pickup directory (the\n"
	    "  sendmail(1) interface of cron, PHP mail(), git send-email...).\n"
	    "  -t         also take recipients from To:, Cc: and Bcc:\n"
	    "  -i, -oi    a line with a single \".\" does not end the message\n"
	    "  -f ADDR    envelope sender (default: From:, else USER@hostname)\n"
	    "  -F NAME    full name for the From: field added when there is "
	    "none\n"
	    "  -bs        SMTP dialogue on standard input and output\n"
	    "  -c FILE    configuration (default as for `postern serve`)\n"
	    "  Ignored: -oXXX, -B TYPE, -N DSN, -R RET, -V ENVID, -L TAG, -v.\n"
	    "  Exit status from sysexits.h: 0 the message is on stable storage,\n"
	    "  64 usage, 65 bad message, 69 no pickup directory, 73/74 cannot\n"
	    "  write, 75 try later, 77 not allowed (not in the pickup group),\n"
	    "  78 configuration.\n");
}

/* "postern: sendmail: ..." and the sysexits code. */
static int
fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("postern: sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* ------------------------------------------------- the pickup file */

/* errno of a failed write into the pickup directory -> sysexits. */
static int
write_fail(const struct conf *c, const char *what)
{
	int e = errno;

	if (e == EACCES || e == EPERM)
		return fail(EX_NOPERM, "cannot write into the pickup directory "
		    "%s: %s (only members of group %s may send mail this way: "
		    "ask the admin to add you)", c->pickup.dir, strerror(e),
		    c->pickup.group);
	if (e == ENOENT)
		return fail(EX_UNAVAILABLE, "pickup directory %s does not exist "
		    "(start postern once: `postern serve` creates it)",
		    c->pickup.dir);
	if (e == ENOSPC || e == EDQUOT)
		return fail(EX_TEMPFAIL, "%s in %s: %s (free some space, then "
		    "send again)", what, c->pickup.dir, strerror(e));
	return fail(EX_IOERR, "%s in %s: %s", what, c->pickup.dir, strerror(e));
}

/*
 * Write `data` as a new file of the pickup directory: .NAME.tmp, fsync,
 * rename to NAME without replacing anything, syncfs (the data and the
 * directory entry on stable storage).  0 or a sysexits code.
 */
static int
pickup_write(const struct conf *c, const struct strbuf *data)
{
	char name[96], tmp[112];
	unsigned char rnd[8];
	int dfd, fd, r;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return fail(EX_OSERR, "no random numbers for a file name");
	snprintf(name, sizeof(name), "%lld.%ld.%02x%02x%02x%02x%02x%02x%02x"
	    "%02x", (long long)time(NULL), (long)getpid(), rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	/* O_PATH: the group may search and write the directory, not list */
	if ((dfd = open(c->pickup.dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return write_fail(c, "cannot open the pickup directory");
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1) {
		r = write_fail(c, "cannot create a file");
		close(dfd);
		return r;
	}
	(void)fchmod(fd, 0644);	/* the daemon reads it; the directory
				 * (1730) keeps others out */
	if (write_full(fd, data->s, data->len) == -1 || fsync(fd) == -1 ||
	    renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == -1 ||
	    syncfs(fd) == -1) {
		r = write_fail(c, "cannot write the message");
		(void)unlinkat(dfd, tmp, 0);
		close(fd);
		close(dfd);
		return r;
	}
	close(fd);
	close(dfd);
	return 0;
}

/* The envelope fields, then the message. */
static void
envelope_fields(struct strbuf *out, const char *from, char *const *rcpts,
    size_t n)
{
	size_t i;

	strbuf_printf(out, "X-Sender: <%s>\r\n", from);
	for (i = 0; i < n; i++)
		strbuf_printf(out, "X-Receiver: <%s>\r\n", rcpts[i]);
}

/* ------------------------------------------------- addresses */

static int
simple_local(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    strchr("._+-", s[i]) != NULL))
			return 0;
	return 1;
}

/* "root" -> "root@hostname"; anything with '@' as given. */
static char *
qualify(const char *addr, const char *hostname)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_puts(&sb, addr);
	if (strchr(addr, '@') == NULL && addr[0] != '\0')
		strbuf_printf(&sb, "@%s", hostname);
	return strbuf_detach(&sb, NULL);
}

/*
 * One element of an address field as cron and shell scripts write them:
 * "root", "root (Cron Daemon)", "Name <root>" get "@hostname" after the
 * local part; everything else is left alone.
 */
static void
qualify_element(const char *e, size_t n, const char *hostname,
    struct strbuf *out)
{
	const char *lt, *sp;

	while (n > 0 && (*e == ' ' || *e == '\t'))
		e++, n--;
	while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t'))
		n--;
	if (memchr(e, '@', n) == NULL) {
		lt = memchr(e, '<', n);
		if (lt != NULL && e[n - 1] == '>' &&
		    simple_local(lt + 1, (size_t)(e + n - 1 - (lt + 1)))) {
			strbuf_add(out, e, n - 1);
			strbuf_printf(out, "@%s>", hostname);
			return;
		}
		sp = memchr(e, ' ', n);
		if (simple_local(e, sp ? (size_t)(sp - e) : n) &&
		    (sp == NULL || sp[1] == '(')) {
			strbuf_add(out, e, sp ? (size_t)(sp - e) : n);
			strbuf_printf(out, "@%s", hostname);
			if (sp != NULL)
				strbuf_add(out, sp, n - (size_t)(sp - e));
			return;
		}
	}
	strbuf_add(out, e, n);
}

static int
is_addr_field(const char *msg, const struct msg_field *f)
{
	static const char *const names[] = { "From", "To", "Cc", "Bcc",
	    "Reply-To", "Sender", NULL };
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (msg_field_is(msg, f, names[i]))
			return 1;
	return 0;
}

/* The header with unqualified address fields qualified; *has_from. */
static void
qualify_header(const struct strbuf *in, const char *hostname,
    struct strbuf *out, int *has_from)
{
	struct msg_field f;
	struct strbuf v = STRBUF_INIT;
	size_t pos = 0, start, i;

	*has_from = 0;
	while (msg_field_next(in->s, in->len, &pos, &f) == 1) {
		if (msg_field_is(in->s, &f, "From"))
			*has_from = 1;
		if (!is_addr_field(in->s, &f)) {
			strbuf_add(out, in->s + f.off, f.len);
			continue;
		}
		strbuf_reset(&v);
		msg_field_value(in->s, &f, &v);
		strbuf_add(out, in->s + f.off, f.name_len);
		strbuf_puts(out, ": ");
		for (start = i = 0; i <= v.len; i++)
			if (i == v.len || v.s[i] == ',') {
				if (start > 0)
					strbuf_puts(out, ", ");
				qualify_element(v.s + start, i - start, hostname,
				    out);
				start = i + 1;
			}
		strbuf_puts(out, "\r\n");
	}
	strbuf_add(out, in->s + pos, in->len - pos);
	strbuf_free(&v);
}

/* ------------------------------------------------- deliver mode */

/* stdin up to EOF (or a "." line without -i); -1 when over `max`. */
static int
read_message(int ignore_dots, size_t max, struct strbuf *out)
{
	char line[8192];
	size_t n;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		n = strlen(line);
		if (!ignore_dots && (strcmp(line, ".\n") == 0 ||
		    strcmp(line, ".\r\n") == 0))
			break;
		strbuf_add(out, line, n);
		if (out->len > max)
			return -1;
	}
	return 0;
}

static const char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw != NULL ? pw->pw_name : "nobody";
}

/* Envelope and file for deliver mode; 0 or a sysexits code. */
static int
deliver(const struct conf *c, const struct sendmail_opts *o)
{
	struct strbuf raw = STRBUF_INIT, crlf = STRBUF_INIT,
	    msg = STRBUF_INIT, file = STRBUF_INIT;
	struct msg_prep p;
	char **args, *from, why[256];
	size_t i;
	int has_from, r;

	if (read_message(o->ignore_dots, c->pickup.max_message_size, &raw) ==
	    -1)
		return fail(EX_DATAERR, "the message is bigger than "
		    "pickup.max_message_size (%zu octets)",
		    c->pickup.max_message_size);
	msg_prep_crlf(raw.s ? raw.s : "", raw.len, &crlf);
	strbuf_free(&raw);
	qualify_header(&crlf, c->hostname, &msg, &has_from);
	strbuf_free(&crlf);
	args = xcalloc(o->nrcpts + 1, sizeof(*args));
	for (i = 0; i < o->nrcpts; i++)
		args[i] = qualify(o->rcpts[i], c->hostname);
	memset(&p, 0, sizeof(p));
	if (msg_prep_run(&p, msg.s, msg.len, (const char *const *)args,
	    o->nrcpts, c->hostname, wall_now(), why, sizeof(why)) == -1) {
		r = fail(EX_DATAERR, "the message cannot be sent: %s", why);
		goto out;
	}
	from = o->from != NULL ? qualify(o->from, c->hostname) :
	    p.from != NULL ? xstrdup(p.from) : qualify(login_name(),
	    c->hostname);
	if (o->extract)
		envelope_fields(&file, from, p.rcpts, p.nrcpts);
	else
		envelope_fields(&file, from, args, o->nrcpts);
	if (!has_from)
		strbuf_printf(&file, "From: %s%s%s%s\r\n", o->fullname ?
		    o->fullname : "", o->fullname ? " <" : "", from,
		    o->fullname ? ">" : "");
	strbuf_add(&file, msg.s, msg.len);
	r = (!o->extract && o->nrcpts == 0) || p.nrcpts == 0 ?
	    fail(EX_USAGE, "no recipients (name them as arguments, or use -t "
	    "to take them from To:, Cc: and Bcc:)") : pickup_write(c, &file);
	free(from);
out:
	msg_prep_free(&p);
	strv_free(args, o->nrcpts);
	strbuf_free(&msg);
	strbuf_free(&file);
	return r;
}

/* ------------------------------------------------- -bs */

struct bs_ctx {
	const struct conf *conf;
	struct smtp_session *sess;
	struct strbuf	 msg;
	int		 commit;	/* 0 none, 1 ok, -1 failed */
};

static void
bs_reply(void *ctx, const char *data, size_t len)
{
	fwrite(data, 1, len, stdout);
}

static int
bs_begin(void *ctx, uint64_t mid)
{
	strbuf_reset(&((struct bs_ctx *)ctx)->msg);
	return 0;
}

static int
bs_write(void *ctx, const char *data, size_t len)
{
	strbuf_add(&((struct bs_ctx *)ctx)->msg, data, len);
	return 0;
}

static void
bs_commit(void *ctx, const struct envelope *env)
{
	struct bs_ctx *b = ctx;
	struct strbuf file = STRBUF_INIT;
	size_t i;

	strbuf_printf(&file, "X-Sender: <%s>\r\n", env->from);
	for (i = 0; i < env->nrcpts; i++)
		strbuf_printf(&file, "X-Receiver: <%s>\r\n",
		    env->rcpts[i].addr);
	strbuf_add(&file, b->msg.s, b->msg.len);
	b->commit = pickup_write(b->conf, &file) == 0 ? 1 : -1;
	strbuf_free(&file);
}

static void
bs_abort(void *ctx)
{
	strbuf_reset(&((struct bs_ctx *)ctx)->msg);
}

/* The 250 names the message by this number (the daemon gives the MID
 * when it takes the file). */
static uint64_t
bs_mid(void *ctx)
{
	unsigned char r[6];
	uint64_t v = 0;
	size_t i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return (uint64_t)getpid() * 1000 + (uint64_t)time(NULL) % 1000;
	for (i = 0; i < sizeof(r); i++)
		v = v << 8 | r[i];
	return v;
}

static const char *
bs_local(void *ctx, const struct smtp_path *p)
{
	struct bs_ctx *b = ctx;
	struct route_decision d;

	route_decide(b->conf, p->addr, &d);
	return deliver_local_check(&d, p->addr);
}

static void bs_starttls(void *ctx) { }
static int bs_blocked(void *ctx) { return 1; }
static void bs_auth(void *ctx, const char *u, const char *p, size_t n) { }
static int bs_allowed(void *ctx, const char *u, const char *a) { return 0; }
static const char *bs_quota(void *ctx, const char *u) { return NULL; }
static int bs_room(void *ctx, uint64_t size) { return 1; }

static const struct smtp_server_ops bs_ops = {
	bs_reply, bs_begin, bs_write, bs_commit, bs_abort, bs_mid, bs_local,
	bs_starttls, bs_blocked, bs_auth, bs_allowed, bs_quota, bs_room
};

/* -bs: the daemon's session engine on stdin/stdout; local mail relays. */
static int
smtp_dialogue(const struct conf *c)
{
	struct conf_policy pol;
	struct smtp_session_params sp;
	struct bs_ctx b;
	struct evbuffer *in = evbuffer_new();
	char buf[16384];
	ssize_t n;

	memset(&pol, 0, sizeof(pol));
	pol.name = (char *)"local";
	pol.action = POLICY_RELAY;
	pol.tls = POLICY_TLS_UNSET;
	pol.max_message_size = c->pickup.max_message_size;
	pol.max_recipients = SENDMAIL_RCPTS_MAX;
	pol.limits = c->limits;
	memset(&sp, 0, sizeof(sp));
	sp.conf = c;
	sp.policy = &pol;
	sp.client_ip = "127.0.0.1";
	sp.client_rdns = "localhost";
	sp.tls = LISTENER_TLS_OFF;
	sp.auth = LISTENER_AUTH_OFF;
	memset(&b, 0, sizeof(b));
	b.conf = c;
	(void)log_open("/dev/null", 0, "postern");	/* the daemon logs */
	b.sess = smtp_session_new(&sp, &bs_ops, &b);
	smtp_session_start(b.sess, mono_now());
	fflush(stdout);
	while (!smtp_session_closing(b.sess) &&
	    (n = read(0, buf, sizeof(buf))) > 0) {
		evbuffer_add(in, buf, (size_t)n);
		smtp_session_input(b.sess, in, mono_now());
		while (b.commit != 0) {
			int ok = b.commit == 1;

			b.commit = 0;
			smtp_session_committed(b.sess, ok, mono_now());
			smtp_session_input(b.sess, in, mono_now());
		}
		fflush(stdout);
	}
	if (!smtp_session_closing(b.sess))
		smtp_session_lost(b.sess);
	smtp_session_free(b.sess);
	strbuf_free(&b.msg);
	evbuffer_free(in);
	fflush(stdout);
	return 0;
}

/* `postern sendmail` (see the header comment). */
int
cmd_sendmail(int argc, char **argv)
{
	struct sendmail_opts o;
	struct conf *c;
	char why[256];
	int r;

	if (sendmail_opts_parse(argc, argv, &o, why, sizeof(why)) == -1)
		return fail(EX_USAGE, "%s (see `postern sendmail --help`)", why);
	if (o.mode == SENDMAIL_MODE_HELP) {
		usage(stdout);
		return 0;
	}
	if ((c = conf_load_for_command(o.config)) == NULL)
		return EX_CONFIG;
	if (c->pickup.dir == NULL) {
		r = fail(EX_UNAVAILABLE, "no pickup directory in %s (set "
		    "pickup = { dir; group; } and restart postern)", c->path);
		conf_free(c);
		return r;
	}
	r = o.mode == SENDMAIL_MODE_SMTP ? smtp_dialogue(c) : deliver(c, &o);
	conf_free(c);
	return r;
}
