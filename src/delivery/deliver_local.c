/*
 * deliver_local.c - maildir delivery (see deliver_local.h).
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
#include "strbuf.h"
#include "util.h"

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
deliver_local_check(const struct conf *conf, const struct smtp_path *p)
{
	const struct conf_route *r = conf_route_for(conf, p->domain);
	char dir[4096];

	if (r == NULL || r->maildir == NULL)
		return NULL;	/* routed onwards, not a mailbox here */
	if (deliver_local_maildir(r, p->addr, dir, sizeof(dir)) == -1)
		return "550 5.1.1 Recipient address rejected: mailbox name "
		    "not allowed here";
	if (r->unknown_users == UNKNOWN_USERS_REJECT &&
	    !known_user(r, p->addr, dir))
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
