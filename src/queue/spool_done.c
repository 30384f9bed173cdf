/*
 * spool_done.c - records of finished messages for the HTTPS API's state
 * query (see spool_done.h).
 *
 * Threats: the reader parses a file in the spool (written by us, but a
 * corrupt or hand-edited one must not crash a worker): sizes bounded,
 * every line checked, unknown lines ignored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_done.h"
#include "strbuf.h"
#include "util.h"

#define DONE_RCPTS_MAX	ENVELOPE_MAX_RCPTS

static int
done_dir(const struct spool *sp, char *buf, size_t len)
{
	return bsnprintf(buf, len, "%s/spool/done", spool_data_dir(sp));
}

/* Append s with tabs and control characters as spaces. */
static void
put_field(struct strbuf *sb, const char *s)
{
	for (; *s; s++)
		strbuf_putc(sb, (unsigned char)*s < 0x20 ? ' ' : *s);
}

/* Write the record of a finished message (see spool_done.h). */
int
spool_done_write(const struct spool *sp, const struct envelope *env,
    const struct rcpt_state *st, int64_t now)
{
	struct strbuf sb = STRBUF_INIT;
	char dir[4096], tmp[4200], path[4200];
	size_t i;
	int fd, r = -1;

	if (done_dir(sp, dir, sizeof(dir)) == -1 || mkdir_p(dir, 0700) == -1)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s/.%llu.tmp", dir,
	    (unsigned long long)env->mid);
	snprintf(path, sizeof(path), "%s/%llu", dir,
	    (unsigned long long)env->mid);
	strbuf_printf(&sb, "postern-done 1\nuser ");
	put_field(&sb, env->auth_user);
	strbuf_printf(&sb, "\nfinished %lld\n", (long long)now);
	for (i = 0; i < env->nrcpts; i++) {
		strbuf_printf(&sb, "rcpt\t%d\t%d\t", (int)st[i].status,
		    st[i].attempts);
		put_field(&sb, env->rcpts[i].addr);
		strbuf_putc(&sb, '\t');
		put_field(&sb, st[i].last_error);
		strbuf_putc(&sb, '\n');
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd != -1) {
		r = write_full(fd, sb.s, sb.len);
		if (close(fd) == -1)
			r = -1;
		if (r == 0)
			r = rename(tmp, path);
		if (r == -1)
			unlink(tmp);
	}
	strbuf_free(&sb);
	return r;
}

/* One "rcpt" line: status, attempts, address, last reply. */
static int
decode_rcpt(char *line, struct spool_done *d)
{
	char *f[5], *save = NULL, *p = line;
	long status, attempts;
	size_t i, k;

	for (i = 0; i < 5; i++) {
		f[i] = p;
		if (i < 4) {
			if ((p = strchr(p, '\t')) == NULL)
				return -1;
			*p++ = '\0';
		}
	}
	(void)save;
	status = strtol(f[1], NULL, 10);
	attempts = strtol(f[2], NULL, 10);
	if (strcmp(f[0], "rcpt") != 0 || status < RCPT_PENDING ||
	    status > RCPT_FAILED || attempts < 0 || attempts > 1000000 ||
	    d->nrcpts >= DONE_RCPTS_MAX || strlen(f[3]) > SMTP_ADDR_MAX)
		return -1;
	k = d->nrcpts++;
	d->addrs = xrealloc(d->addrs, d->nrcpts * sizeof(*d->addrs));
	d->st = xrealloc(d->st, d->nrcpts * sizeof(*d->st));
	memset(&d->st[k], 0, sizeof(d->st[k]));
	bstrlcpy(d->addrs[k], f[3], sizeof(d->addrs[k]));
	d->st[k].status = (enum rcpt_status)status;
	d->st[k].attempts = (int)attempts;
	bstrlcpy(d->st[k].last_error, f[4], sizeof(d->st[k].last_error));
	return 0;
}

/* Decode a record (see spool_done.h); the input is not trusted. */
int
spool_done_decode(const char *buf, size_t len, struct spool_done *d)
{
	char *text, *line, *save = NULL;
	int first = 1, ok = 0;
	long long fin;

	memset(d, 0, sizeof(*d));
	if (memchr(buf, '\0', len) != NULL)
		return -1;
	text = xstrndup(buf, len);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (first) {
			ok = strcmp(line, "postern-done 1") == 0;
			first = 0;
			if (!ok)
				break;
		} else if (strncmp(line, "user ", 5) == 0)
			bstrlcpy(d->user, line + 5, sizeof(d->user));
		else if (sscanf(line, "finished %lld", &fin) == 1)
			d->finished = fin;
		else if (strncmp(line, "rcpt\t", 5) == 0 &&
		    decode_rcpt(line, d) == -1)
			ok = 0;
	}
	free(text);
	if (!ok || d->user[0] == '\0') {
		spool_done_free(d);
		return -1;
	}
	return 0;
}

/* Read the record of `mid`, if there is one. */
int
spool_done_read(const struct spool *sp, uint64_t mid, struct spool_done *d)
{
	char dir[4096], path[4200], *buf;
	size_t len;
	int r;

	memset(d, 0, sizeof(*d));
	if (done_dir(sp, dir, sizeof(dir)) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/%llu", dir, (unsigned long long)mid);
	if ((buf = read_file(path, &len, SPOOL_DONE_MAX)) == NULL)
		return -1;
	r = spool_done_decode(buf, len, d);
	free(buf);
	if (r == -1)
		errno = EINVAL;
	return r;
}

/* Free what a record holds; NULL is fine. */
void
spool_done_free(struct spool_done *d)
{
	if (d == NULL)
		return;
	free(d->addrs);
	free(d->st);
	d->addrs = NULL;
	d->st = NULL;
	d->nrcpts = 0;
}

/* Remove records older than `before` (by modification time). */
void
spool_done_expire(const struct spool *sp, int64_t before)
{
	char dir[4096];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int dfd;

	if (done_dir(sp, dir, sizeof(dir)) == -1 ||
	    (d = opendir(dir)) == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (int64_t)st.st_mtime < before)
			(void)unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}
