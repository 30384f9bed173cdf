/*
 * deliver_local.c - maildir delivery and the local delivery driver (see
 * deliver_local.h).
 *
 * Public: deliver_local_check, deliver_local_maildir, deliver_local_write,
 * deliver_local_publish, deliver_local_discard, and the driver
 * delivery_local (init, submit, flush; nothing outlives a round, so it
 * has no shutdown).
 *
 * The driver keeps the requests of one scheduler round in a batch: every
 * copy is written into tmp/ at submit(); flush() runs one syncfs per file
 * system (at most LOCAL_MAXDEV of them per round), renames every copy
 * into new/, flushes again and only then reports.  A crash at any point
 * leaves the spool copy in place: at-least-once, never lost.
 *
 * Threats: the mailbox name comes from the network, so %u and %d are only
 * expanded from a strict character set (no "/", no leading ".", no control
 * characters) and the result can never leave the configured tree.
 * Maildir file names follow the maildir convention
 * <time>.M<usec>P<pid>Q<mid>R<rid>.<host>, unique per delivery.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deliver_local.h"
#include "delivery_log.h"
#include "log.h"
#include "smtp_proto.h"
#include "strbuf.h"
#include "util.h"

#define LOCAL_MAXDEV	16	/* file systems flushed per round */

/* A name part safe to become one path component. */
static int
safe_component(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 255 || s[0] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80)
			continue;	/* UTF-8 (SMTPUTF8) */
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (strchr("._+-=", c) == NULL)
			return 0;
	}
	return 1;
}

static void
lower_copy(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
	ascii_lower(dst, len);
	dst[len] = '\0';
}

int
deliver_local_maildir(const struct conf_route *r, const char *addr,
    char *buf, size_t len)
{
	char user[SMTP_LOCAL_MAX + 1], dom[SMTP_DOMAIN_MAX + 1];
	const char *at = strrchr(addr, '@'), *p;
	size_t ulen, dlen, o = 0, add;
	const char *val;

	if (r->maildir == NULL || at == NULL)
		return -1;
	ulen = (size_t)(at - addr);
	dlen = strlen(at + 1);
	if (ulen > SMTP_LOCAL_MAX || dlen > SMTP_DOMAIN_MAX ||
	    !safe_component(addr, ulen) || !safe_component(at + 1, dlen))
		return -1;
	lower_copy(user, addr, ulen);
	lower_copy(dom, at + 1, dlen);
	for (p = r->maildir; *p; p++) {
		val = NULL;
		if (p[0] == '%' && p[1] == 'u')
			val = user;
		else if (p[0] == '%' && p[1] == 'd')
			val = dom;
		else if (p[0] == '%' && p[1] == '%')
			val = "%";	/* conf.c writes a literal % as %% */
		if (val != NULL) {
			add = strlen(val);
			p++;
		} else {
			val = p;
			add = 1;
		}
		if (o + add + 1 > len)
			return -1;
		memcpy(buf + o, val, add);
		o += add;
	}
	buf[o] = '\0';
	return 0;
}

static int
known_user(const struct conf_route *r, const char *addr, const char *dir)
{
	const char *at = strrchr(addr, '@');
	size_t i, ulen = at ? (size_t)(at - addr) : strlen(addr);
	struct stat st;

	for (i = 0; i < r->nusers; i++)
		if (strlen(r->users[i]) == ulen &&
		    ascii_ncasecmp(r->users[i], addr, ulen) == 0)
			return 1;
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *
deliver_local_check(const struct route_decision *d, const char *addr)
{
	const struct conf_route *r = d->route;
	char dir[4096];

	if (d->kind != ROUTE_TO_MAILDIR)
		return NULL;	/* routed onwards, not a mailbox here */
	if (deliver_local_maildir(r, addr, dir, sizeof(dir)) == -1)
		return "550 5.1.1 Recipient address rejected: mailbox name "
		    "not allowed here";
	if (r->unknown_users == UNKNOWN_USERS_REJECT &&
	    !known_user(r, addr, dir))
		return "550 5.1.1 Recipient address rejected: User unknown";
	return NULL;
}

static int
ensure_maildir(const char *dir, char *why, size_t whylen)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	char path[4096];
	size_t i;

	for (i = 0; i < 3; i++) {
		if (bsnprintf(path, sizeof(path), "%s/%s", dir, subs[i]) ||
		    mkdir_p(path, 0700) == -1) {
			bsnprintf(why, whylen, "cannot create maildir %s: %s",
			    path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Copy size octets from in to out, CRLF -> LF. */
static int
copy_lf(int in, int out, uint64_t size)
{
	char buf[65536], obuf[65536];
	uint64_t off = 0;
	int pending_cr = 0;
	ssize_t n, i;
	size_t o;

	while (off < size) {
		size_t want = size - off > sizeof(buf) ? sizeof(buf) :
		    (size_t)(size - off);
		n = pread(in, buf, want, (off_t)off);
		if (n <= 0)
			return -1;
		off += (uint64_t)n;
		for (i = 0, o = 0; i < n; i++) {
			if (pending_cr && buf[i] != '\n')
				obuf[o++] = '\r';
			pending_cr = buf[i] == '\r';
			if (!pending_cr)
				obuf[o++] = buf[i];
			if (o >= sizeof(obuf) - 1) {
				if (write_full(out, obuf, o) == -1)
					return -1;
				o = 0;
			}
		}
		if (o > 0 && write_full(out, obuf, o) == -1)
			return -1;
	}
	if (pending_cr && write_full(out, "\r", 1) == -1)
		return -1;
	return 0;
}

int
deliver_local_write(const char *maildir, const char *hostname, uint64_t mid,
    size_t rid, const char *return_path, int fd, uint64_t size,
    struct local_copy *lc, char *why, size_t whylen)
{
	struct strbuf hdr = STRBUF_INIT;
	struct timeval tv;
	char name[512];
	int out;

	if (ensure_maildir(maildir, why, whylen) == -1)
		return -1;
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%lluR%zu.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	    (unsigned long long)mid, rid, hostname);
	if (bsnprintf(lc->tmp_path, sizeof(lc->tmp_path), "%s/tmp/%s",
	    maildir, name) || bsnprintf(lc->new_path, sizeof(lc->new_path),
	    "%s/new/%s", maildir, name)) {
		bsnprintf(why, whylen, "maildir path too long");
		return -1;
	}
	out = open(lc->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out == -1) {
		bsnprintf(why, whylen, "cannot create %s: %s", lc->tmp_path,
		    strerror(errno));
		return -1;
	}
	strbuf_printf(&hdr, "Return-Path: <%s>\n", return_path);
	if (write_full(out, hdr.s, hdr.len) == -1 || copy_lf(fd, out, size) == -1) {
		bsnprintf(why, whylen, "cannot write %s: %s", lc->tmp_path,
		    strerror(errno));
		close(out);
		unlink(lc->tmp_path);
		strbuf_free(&hdr);
		return -1;
	}
	strbuf_free(&hdr);
	if (close(out) == -1) {
		bsnprintf(why, whylen, "cannot write %s: %s", lc->tmp_path,
		    strerror(errno));
		unlink(lc->tmp_path);
		return -1;
	}
	return 0;
}

int
deliver_local_publish(const struct local_copy *lc, char *why, size_t whylen)
{
	if (rename(lc->tmp_path, lc->new_path) == -1) {
		bsnprintf(why, whylen, "cannot move %s to new/: %s",
		    lc->tmp_path, strerror(errno));
		return -1;
	}
	return 0;
}

void
deliver_local_discard(const struct local_copy *lc)
{
	unlink(lc->tmp_path);
}

/* ------------------------------------------------------- the driver */

/* One request of this round: its results and the copies in tmp/. */
struct local_req {
	struct local_req	*next;
	uint64_t		 mid;
	struct delivery_result	*res;		/* one per recipient */
	size_t			 n;
	struct local_copy	*copies;	/* written, not yet published */
	size_t			*copy_res;	/* index in res of each copy */
	size_t			 ncopies;
	delivery_done_cb	 done;
	void			*arg;
};

struct devsync {
	dev_t	dev;
	int	fd;
};

static struct local_req	*batch, **batch_tail = &batch;
static struct devsync	 devs[LOCAL_MAXDEV];
static size_t		 ndevs;

/* Remember the file system of a path, to flush it once per round. */
static void
note_dev(const char *path)
{
	char dir[4096], *slash;
	struct stat st;
	size_t i;
	int fd;

	bstrlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (stat(dir, &st) == -1)
		return;
	for (i = 0; i < ndevs; i++)
		if (devs[i].dev == st.st_dev)
			return;
	if (ndevs >= LOCAL_MAXDEV)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	devs[ndevs].dev = st.st_dev;
	devs[ndevs++].fd = fd;
}

static int
sync_devs(void)
{
	size_t i;
	int ok = 1;

	for (i = 0; i < ndevs; i++)
		if (syncfs(devs[i].fd) == -1)
			ok = 0;
	return ok ? 0 : -1;
}

/* A recipient that cannot be delivered now: logged at once. */
static void
local_defer(struct local_req *lr, size_t k, const char *why)
{
	delivery_result_set(&lr->res[k], DELIVERY_DEFERRED, why, NULL, NULL,
	    0);
	delivery_log_results(lr->mid, NULL, &lr->res[k], 1);
}

/* Write one recipient's copy into tmp/. */
static void
local_write(struct local_req *lr, const struct delivery_request *rq,
    size_t k, const char *hostname)
{
	const struct route_decision *d = &rq->routes[rq->rids[k]];
	const char *addr = rq->env->rcpts[rq->rids[k]].addr;
	struct local_copy *lc = &lr->copies[lr->ncopies];
	char dir[4096], why[512];

	if (deliver_local_maildir(d->route, addr, dir, sizeof(dir)) == -1) {
		local_defer(lr, k, "mailbox name not allowed");
		return;
	}
	if (deliver_local_write(dir, hostname, rq->mid, rq->rids[k],
	    rq->env->from, rq->fd, rq->env->msg_size, lc, why,
	    sizeof(why)) == -1) {
		local_defer(lr, k, why);
		return;
	}
	note_dev(lc->tmp_path);
	lr->copy_res[lr->ncopies++] = k;
}

static const struct conf	*lconf;

static int
local_init(struct event_base *base, const struct conf *conf,
    delivery_alert_cb alert, char *why, size_t whylen)
{
	lconf = conf;
	return 0;
}

static void
local_submit(const struct delivery_request *rq)
{
	struct local_req *lr = xcalloc(1, sizeof(*lr));
	size_t k, *rids;

	lr->mid = rq->mid;
	lr->n = rq->nrids;
	lr->res = xcalloc(rq->nrids, sizeof(*lr->res));
	lr->copies = xcalloc(rq->nrids, sizeof(*lr->copies));
	lr->copy_res = xcalloc(rq->nrids, sizeof(*lr->copy_res));
	lr->done = rq->done;
	lr->arg = rq->arg;
	for (k = 0; k < rq->nrids; k++) {
		lr->res[k].rid = rq->rids[k];
		local_write(lr, rq, k, lconf->hostname);
	}
	if (lr->ncopies > 0) {
		rids = xcalloc(lr->ncopies, sizeof(*rids));
		for (k = 0; k < lr->ncopies; k++)
			rids[k] = rq->rids[lr->copy_res[k]];
		delivery_log_start(rq->mid, NULL, rids, lr->ncopies);
		free(rids);
	}
	*batch_tail = lr;
	batch_tail = &lr->next;
}

/* After the first flush: move the copies into new/ (or give them up). */
static void
local_publish(struct local_req *lr, int flushed)
{
	char why[512];
	size_t i, k = 0;

	for (i = 0; i < lr->ncopies; i++) {
		if (!flushed) {
			deliver_local_discard(&lr->copies[i]);
			local_defer(lr, lr->copy_res[i], "cannot flush the "
			    "maildir to disk");
			continue;
		}
		if (deliver_local_publish(&lr->copies[i], why, sizeof(why))) {
			deliver_local_discard(&lr->copies[i]);
			local_defer(lr, lr->copy_res[i], why);
			continue;
		}
		lr->copy_res[k++] = lr->copy_res[i];
	}
	lr->ncopies = k;
}

/* After the second flush: the published copies are delivered. */
static void
local_report(struct local_req *lr)
{
	struct delivery_result *ok;
	size_t i;

	if (lr->ncopies > 0) {
		ok = xcalloc(lr->ncopies, sizeof(*ok));
		for (i = 0; i < lr->ncopies; i++) {
			delivery_result_set(&lr->res[lr->copy_res[i]],
			    DELIVERY_DELIVERED, "delivered to maildir", NULL,
			    NULL, 0);
			ok[i] = lr->res[lr->copy_res[i]];
		}
		delivery_log_results(lr->mid, NULL, ok, lr->ncopies);
		free(ok);
	}
	lr->done(lr->arg, lr->res, lr->n);
	free(lr->res);
	free(lr->copies);
	free(lr->copy_res);
	free(lr);
}

static void
local_flush(void)
{
	struct local_req *lr, *next;
	int flushed = sync_devs() == 0;
	size_t i;

	for (lr = batch; lr; lr = lr->next)
		local_publish(lr, flushed);
	if (sync_devs() == -1)
		log_warn("queue manager: flushing maildirs failed");
	for (i = 0; i < ndevs; i++)
		close(devs[i].fd);
	ndevs = 0;
	lr = batch;
	batch = NULL;
	batch_tail = &batch;
	for (; lr; lr = next) {
		next = lr->next;
		local_report(lr);
	}
}

const struct delivery_driver delivery_local = {
	"local", local_init, local_submit, local_flush, NULL
};
