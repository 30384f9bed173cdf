/*
 * test_spool.c - the durable spool (spool.c, docs/spool.md) with the file
 * system failing underneath it.
 *
 * The executable is linked with -Wl,--wrap (test_fsfault.h), so open,
 * write, close, fsync, syncfs, rename and statvfs can be made to fail
 * with ENOSPC or EIO at the Nth call.  Covered:
 *  - the footer: exact format, sizes, SHA-256 over content + envelope;
 *  - damaged files (truncated, flipped bytes, bad footer, garbage after
 *    it, wrong MID): refused with EINVAL and a reason, then moved to
 *    corrupt/ as the queue manager does;
 *  - state files: round trip, defaults, junk lines, the cause of the
 *    last error (and files from before it), and failed writes that keep
 *    the previous state;
 *  - spool_inject(): every failing call gives -1 and leaves nothing in
 *    incoming/ or queue/; the next inject works (no restart);
 *  - the group commit (the SMTP path): a failed write, close, rename or
 *    syncfs gives ok = 0 (the 451 of the session engine), never ok = 1,
 *    and leaves no file behind that recovery would deliver;
 *  - spool_has_room(): reserve, declared size, inodes, the one-second
 *    cache, statvfs failure, and the once-per-episode log lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <cmocka.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "envelope.h"
#include "log.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#include "test_fsfault.h"
#define TEST_TMPDIR_PREFIX "postern-test-spool"
#include "test_tmpdir.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BIG		(3 * 65536 + 123)	/* spans several buffer flushes */

static struct spool *sp;

static int
spool_setup(void **state)
{
	char why[256];

	if (setup(state) == -1)
		return -1;
	fsfault_reset();
	sp = spool_open(tmpdir, why, sizeof(why));
	return sp == NULL ? -1 : 0;
}

static int
spool_teardown(void **state)
{
	spool_free(sp);
	sp = NULL;
	fsfault_reset();
	return teardown(state);
}

/* ---- helpers ---------------------------------------------------------- */

/* `len` octets of message content: header lines, then filler lines. */
static char *
content(size_t len)
{
	static const char head[] = "From: a@example.org\r\nSubject: t\r\n\r\n";
	char *p = xmalloc(len + 1);
	size_t i;

	for (i = 0; i < len; i++) {
		if (i < sizeof(head) - 1)
			p[i] = head[i];
		else if (i % 64 == 62)
			p[i] = '\r';
		else if (i % 64 == 63)
			p[i] = '\n';
		else
			p[i] = (char)('a' + i % 26);
	}
	p[len] = '\0';
	return p;
}

static void
make_env(struct envelope *env, uint64_t mid, const char *data, size_t len)
{
	static const char *const rcpts[] = { "bob@example.com",
	    "carol@example.net" };

	envelope_generated(env, "mx.test.example", mid, "alice@example.org",
	    rcpts, NELEM(rcpts), data, len, 1763880000);
}

static int
inject(uint64_t mid, const char *data, size_t len, char *why, size_t wl)
{
	struct envelope env;
	int r;

	make_env(&env, mid, data, len);
	r = spool_inject(sp, &env, data, len, why, wl);
	envelope_clear(&env);
	return r;
}

/* Number of entries (not . or ..) in spool/<area>. */
static size_t
count_area(const char *area)
{
	char path[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/spool/%s", tmpdir, area);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static char *
slurp(enum spool_area area, uint64_t mid, size_t *len)
{
	char path[512];
	char *buf;

	spool_path(sp, area, mid, path, sizeof(path));
	buf = read_file(path, len, 64 * 1024 * 1024);
	assert_non_null(buf);
	return buf;
}

static void
put_file(enum spool_area area, uint64_t mid, const char *data, size_t len)
{
	char path[512];

	spool_path(sp, area, mid, path, sizeof(path));
	assert_int_equal(write_file_atomic(path, data, len, 0600), 0);
}

/* The file verifies and holds `data` as its content. */
static void
assert_valid(enum spool_area area, uint64_t mid, const char *data,
    size_t len)
{
	struct envelope env;
	char why[256] = "", *got;
	ssize_t n;
	int fd;

	fd = spool_open_msg(sp, area, mid, 1, &env, why, sizeof(why));
	if (fd == -1)
		fail_msg("MID %llu: %s", (unsigned long long)mid, why);
	assert_true(env.msg_size == len);
	got = xmalloc(len + 1);
	n = pread(fd, got, len, 0);
	assert_true(n == (ssize_t)len);
	assert_memory_equal(got, data, len);
	free(got);
	close(fd);
	envelope_clear(&env);
}

/* ---- footer ----------------------------------------------------------- */

static void
test_footer(void **state)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int diglen = 0, i;
	char why[256], *data = content(1000), *file, *footer, want[160];
	struct strbuf envtext = STRBUF_INIT;
	struct envelope env;
	size_t flen, envlen;

	assert_int_equal(inject(7, data, 1000, why, sizeof(why)), 0);
	file = slurp(SPOOL_QUEUE, 7, &flen);
	/* content, then exactly the envelope encoding, then the footer */
	assert_memory_equal(file, data, 1000);
	make_env(&env, 7, data, 1000);
	envelope_encode(&env, &envtext);
	envlen = envtext.len;
	assert_memory_equal(file + 1000, envtext.s, envlen);
	EVP_Digest(file, 1000 + envlen, dig, &diglen, EVP_sha256(), NULL);
	i = (unsigned)snprintf(want, sizeof(want), "postern-spool 1 1000 %zu ",
	    envlen);
	for (unsigned int k = 0; k < diglen; k++)
		i += (unsigned)snprintf(want + i, sizeof(want) - i, "%02x",
		    dig[k]);
	snprintf(want + i, sizeof(want) - i, "\n");
	footer = file + 1000 + envlen;
	assert_int_equal(flen, 1000 + envlen + strlen(want));
	assert_string_equal(footer, want);
	assert_valid(SPOOL_QUEUE, 7, data, 1000);
	assert_int_equal(count_area("incoming"), 0);
	envelope_clear(&env);
	strbuf_free(&envtext);
	free(file);
	free(data);
}

/* ---- damaged files ---------------------------------------------------- */

enum damage { CUT_LAST, CUT_FOOTER, CUT_HALF, EMPTY, FLIP_CONTENT,
	FLIP_ENV_VALUE, FLIP_ENV_KEY, WRONG_MID, FOOTER_SIZE, APPEND,
	FOOTER_DIGEST };

static const struct {
	const char	*name;
	enum damage	 how;
	int		 found_without_verify;	/* only the digest sees it */
} damage_cases[] = {
	{ "last byte (footer newline) gone", CUT_LAST, 0 },
	{ "footer cut in half", CUT_FOOTER, 0 },
	{ "file cut in the content", CUT_HALF, 0 },
	{ "empty file", EMPTY, 0 },
	{ "content byte flipped", FLIP_CONTENT, 1 },
	{ "envelope value flipped", FLIP_ENV_VALUE, 1 },
	{ "envelope key flipped", FLIP_ENV_KEY, 0 },
	{ "envelope of another MID", WRONG_MID, 0 },
	{ "footer sizes do not add up", FOOTER_SIZE, 0 },
	{ "bytes after the footer", APPEND, 0 },
	{ "digest changed", FOOTER_DIGEST, 1 },
};

/* Apply `how` to a copy of a good file (flen octets). */
static size_t
damage(char *f, size_t flen, size_t msglen, enum damage how)
{
	char *p;

	switch (how) {
	case CUT_LAST:
		return flen - 1;
	case CUT_FOOTER:
		return flen - 40;
	case CUT_HALF:
		return msglen / 2;
	case EMPTY:
		return 0;
	case FLIP_CONTENT:
		f[msglen / 2] ^= 0x01;
		return flen;
	case FLIP_ENV_VALUE:
		p = strstr(f + msglen, "\nhelo ");
		p[6] ^= 0x01;
		return flen;
	case FLIP_ENV_KEY:
		p = strstr(f + msglen, "\nhelo ");
		p[1] ^= 0x01;
		return flen;
	case WRONG_MID:
		p = strstr(f + msglen, "\nmid 9\n");
		p[5] = '8';
		return flen;
	case FOOTER_SIZE:
		p = strstr(f + msglen, "postern-spool 1 ");
		p[16] = p[16] == '9' ? '8' : '9';
		return flen;
	case APPEND:
		memcpy(f + flen, "x\n", 2);
		return flen + 2;
	case FOOTER_DIGEST:
		f[flen - 2] = f[flen - 2] == '0' ? '1' : '0';
		return flen;
	}
	return flen;
}

static void
test_corruption(void **state)
{
	char why[256], *data = content(5000), *good, *bad;
	struct envelope env;
	size_t flen, blen, i;
	uint64_t *mids, n;
	int fd;

	assert_int_equal(inject(9, data, 5000, why, sizeof(why)), 0);
	good = slurp(SPOOL_QUEUE, 9, &flen);
	bad = xmalloc(flen + 2);
	for (i = 0; i < NELEM(damage_cases); i++) {
		memcpy(bad, good, flen);
		blen = damage(bad, flen, 5000, damage_cases[i].how);
		put_file(SPOOL_QUEUE, 9, bad, blen);
		why[0] = '\0';
		fd = spool_open_msg(sp, SPOOL_QUEUE, 9, 1, &env, why,
		    sizeof(why));
		if (fd != -1)
			fail_msg("%s: accepted", damage_cases[i].name);
		assert_int_equal(errno, EINVAL);
		assert_non_null(strstr(why, "/spool/queue/9"));
		assert_null(env.rcpts);
		fd = spool_open_msg(sp, SPOOL_QUEUE, 9, 0, &env, why,
		    sizeof(why));
		assert_int_equal(fd != -1, damage_cases[i].found_without_verify);
		if (fd != -1) {
			close(fd);
			envelope_clear(&env);
		}
	}
	/* What the queue manager does with it: keep it for inspection. */
	fsfault_reset();
	assert_int_equal(spool_move(sp, 9, SPOOL_QUEUE, SPOOL_CORRUPT), 0);
	assert_int_equal(fsfault_calls[FS_FSYNC], 2);	/* both directories */
	assert_int_equal(spool_find(sp, 9), SPOOL_CORRUPT);
	assert_int_equal(spool_list(sp, SPOOL_QUEUE, &mids, &n), 0);
	assert_int_equal(n, 0);
	free(mids);
	assert_true(spool_max_mid(sp) == 9);
	free(bad);
	free(good);
	free(data);
}

/* ---- state files ------------------------------------------------------ */

static void
test_state_round_trip(void **state)
{
	struct rcpt_state st[3], got[3];

	memset(st, 0, sizeof(st));
	st[0].status = RCPT_DELIVERED;
	st[0].attempts = 1;
	st[1].status = RCPT_PENDING;
	st[1].attempts = 3;
	st[1].next_attempt = 1763890000;
	bstrlcpy(st[1].last_error, "451 4.3.0 try\nlater\r", 512);
	st[2].status = RCPT_FAILED;
	st[2].attempts = 2;
	bstrlcpy(st[2].last_error, "550 5.1.1 unknown", 512);
	/* no file yet: all pending, zeroed */
	memset(got, 0xff, sizeof(got));
	assert_int_equal(spool_state_read(sp, 5, got, 3), 0);
	assert_int_equal(got[2].status, RCPT_PENDING);
	assert_int_equal(got[2].attempts, 0);
	assert_string_equal(got[2].last_error, "");
	assert_int_equal(spool_state_write(sp, 5, st, 3), 0);
	assert_int_equal(spool_state_read(sp, 5, got, 3), 0);
	assert_int_equal(got[0].status, RCPT_DELIVERED);
	assert_string_equal(got[0].last_error, "");
	assert_int_equal(got[1].attempts, 3);
	assert_true(got[1].next_attempt == 1763890000);
	/* control characters never reach the file as such */
	assert_string_equal(got[1].last_error, "451 4.3.0 try later ");
	assert_int_equal(got[2].status, RCPT_FAILED);
	assert_string_equal(got[2].last_error, "550 5.1.1 unknown");
	/* fewer recipients asked for than the file has: the rest ignored */
	assert_int_equal(spool_state_read(sp, 5, got, 1), 0);
	assert_int_equal(got[0].status, RCPT_DELIVERED);
}

static void
test_state_junk(void **state)
{
	static const char junk[] = "postern-state 1\n"
	    "rcpt 0 2 4 100 550 5.0.0 no\n"
	    "rcpt 1 7 1 0 -\n"		/* status out of range */
	    "rcpt 9 1 1 0 -\n"		/* index out of range */
	    "garbage line\n"
	    "rcpt 2 1 x\n";		/* too few fields */
	struct rcpt_state got[3];
	char path[512];

	snprintf(path, sizeof(path), "%s/spool/state/6", tmpdir);
	assert_int_equal(write_file_atomic(path, junk, sizeof(junk) - 1,
	    0600), 0);
	assert_int_equal(spool_state_read(sp, 6, got, 3), 0);
	assert_int_equal(got[0].status, RCPT_FAILED);
	assert_int_equal(got[0].attempts, 4);
	assert_string_equal(got[0].last_error, "550 5.0.0 no");
	assert_int_equal(got[1].status, RCPT_PENDING);
	assert_int_equal(got[2].status, RCPT_PENDING);
	assert_int_equal(got[2].attempts, 0);
}

/* The cause of a last error (a name of the table of causes, the server it
 * is about) goes on a line of its own: files written before it existed
 * read as "no cause", and a reader before it skips the line, as it
 * skips any line not starting with "rcpt ". */
static void
test_state_cause(void **state)
{
	static const char old[] = "postern-state 1\n"
	    "rcpt 0 0 2 100 451 4.7.5 TLS required\n";
	static const char bad[] = "postern-state 1\n"
	    "rcpt 0 0 2 100 x\n"
	    "cause 0 tls-untrusted 99999 h\n"	/* port out of range */
	    "cause 5 tls-untrusted 25 h\n"	/* index out of range */
	    "cause 0 tls-untrusted\n";		/* too few fields */
	struct rcpt_state st[2], got[2];
	char path[512], *text;
	size_t len;

	memset(st, 0, sizeof(st));
	bstrlcpy(st[0].last_error, "TLS required but not verified", 512);
	bstrlcpy(st[0].cause, "tls-untrusted", sizeof(st[0].cause));
	bstrlcpy(st[0].cause_host, "mx.partner.example",
	    sizeof(st[0].cause_host));
	st[0].cause_port = 2525;
	bstrlcpy(st[1].cause, "connection-refused", sizeof(st[1].cause));
	assert_int_equal(spool_state_write(sp, 9, st, 2), 0);
	memset(got, 0xff, sizeof(got));
	assert_int_equal(spool_state_read(sp, 9, got, 2), 0);
	assert_string_equal(got[0].cause, "tls-untrusted");
	assert_string_equal(got[0].cause_host, "mx.partner.example");
	assert_int_equal(got[0].cause_port, 2525);
	assert_string_equal(got[0].last_error, "TLS required but not "
	    "verified");
	assert_string_equal(got[1].cause, "connection-refused");
	assert_string_equal(got[1].cause_host, "");
	snprintf(path, sizeof(path), "%s/spool/state/9", tmpdir);
	text = read_file(path, &len, 4096);
	assert_non_null(strstr(text, "\ncause 0 tls-untrusted 2525 "
	    "mx.partner.example\n"));
	assert_non_null(strstr(text, "\ncause 1 connection-refused 0 -\n"));
	free(text);
	/* an older file: no cause */
	assert_int_equal(write_file_atomic(path, old, sizeof(old) - 1, 0600),
	    0);
	assert_int_equal(spool_state_read(sp, 9, got, 2), 0);
	assert_string_equal(got[0].last_error, "451 4.7.5 TLS required");
	assert_string_equal(got[0].cause, "");
	/* broken cause lines are skipped */
	assert_int_equal(write_file_atomic(path, bad, sizeof(bad) - 1, 0600),
	    0);
	assert_int_equal(spool_state_read(sp, 9, got, 2), 0);
	assert_string_equal(got[0].cause, "");
	assert_int_equal(got[0].attempts, 2);
}

/* A failed state write keeps the previous state (or, when only the final
 * directory flush failed, the new one): never a mix, never a tmp file. */
static void
test_state_write_failures(void **state)
{
	static const struct {
		const char *name;
		enum fs_call call;
		int nth, err;
		enum fs_kind kind;
		int want_new;
	} cases[] = {
		{ "create tmp", FS_OPEN, 1, ENOSPC, FSF_ANY, 0 },
		{ "write", FS_WRITE, 1, ENOSPC, FSF_REG, 0 },
		{ "write EIO", FS_WRITE, 1, EIO, FSF_REG, 0 },
		{ "fsync", FS_FSYNC, 1, EIO, FSF_REG, 0 },
		{ "close", FS_CLOSE, 1, EIO, FSF_REG, 0 },
		{ "rename", FS_RENAME, 1, EIO, FSF_ANY, 0 },
		{ "directory fsync", FS_FSYNC, 1, EIO, FSF_DIR, 1 },
	};
	struct rcpt_state old[1], upd[1], got[1];
	size_t i;

	memset(old, 0, sizeof(old));
	memset(upd, 0, sizeof(upd));
	old[0].attempts = 1;
	upd[0].attempts = 2;
	for (i = 0; i < NELEM(cases); i++) {
		fsfault_disarm();
		assert_int_equal(spool_state_write(sp, 8, old, 1), 0);
		fsfault_arm(cases[i].call, cases[i].nth, cases[i].err,
		    cases[i].kind, NULL);
		if (spool_state_write(sp, 8, upd, 1) != -1)
			fail_msg("%s: write succeeded", cases[i].name);
		assert_int_equal(fsfault_hits(), 1);
		fsfault_disarm();
		assert_int_equal(spool_state_read(sp, 8, got, 1), 0);
		assert_int_equal(got[0].attempts, cases[i].want_new ? 2 : 1);
		assert_int_equal(count_area("state"), 1);	/* no tmp left */
	}
}

/* ---- spool_inject: every failure leaves nothing behind ---------------- */

static const struct {
	const char	*name;
	enum fs_call	 call;
	int		 nth, err;
	enum fs_kind	 kind;
	const char	*path;
} inject_faults[] = {
	{ "create in incoming/", FS_OPEN, 1, ENOSPC, FSF_ANY, "/incoming/" },
	{ "first write", FS_WRITE, 1, ENOSPC, FSF_REG, NULL },
	{ "write in the middle", FS_WRITE, 2, ENOSPC, FSF_REG, NULL },
	{ "write of the last content", FS_WRITE, 4, EIO, FSF_REG, NULL },
	{ "write of envelope and footer", FS_WRITE, 5, ENOSPC, FSF_REG, NULL },
	{ "file fsync", FS_FSYNC, 1, EIO, FSF_REG, NULL },
	{ "file fsync ENOSPC", FS_FSYNC, 1, ENOSPC, FSF_REG, NULL },
	{ "close", FS_CLOSE, 1, EIO, FSF_REG, NULL },
	{ "rename into queue/", FS_RENAME, 1, EIO, FSF_ANY, NULL },
	{ "open queue/ to flush it", FS_OPEN, 1, EMFILE, FSF_ANY, "/queue" },
	{ "flush of queue/", FS_FSYNC, 1, EIO, FSF_DIR, NULL },
	{ "flush of incoming/", FS_FSYNC, 2, EIO, FSF_DIR, NULL },
};

static void
test_inject_failures(void **state)
{
	char why[256], *data = content(BIG);
	uint64_t mid = 100;
	size_t i;

	for (i = 0; i < NELEM(inject_faults); i++, mid++) {
		fsfault_arm(inject_faults[i].call, inject_faults[i].nth,
		    inject_faults[i].err, inject_faults[i].kind,
		    inject_faults[i].path);
		why[0] = '\0';
		if (inject(mid, data, BIG, why, sizeof(why)) != -1)
			fail_msg("%s: inject succeeded", inject_faults[i].name);
		if (fsfault_hits() != 1)
			fail_msg("%s: the fault was not hit",
			    inject_faults[i].name);
		fsfault_disarm();
		assert_true(why[0] != '\0');
		if (count_area("incoming") != 0 || count_area("queue") != 0)
			fail_msg("%s: a file was left behind",
			    inject_faults[i].name);
	}
	/* The same spool goes on working once the disk behaves. */
	assert_int_equal(inject(mid, data, BIG, why, sizeof(why)), 0);
	assert_valid(SPOOL_QUEUE, mid, data, BIG);
	/* A MID in use is refused, the queued file untouched. */
	assert_int_equal(inject(mid, "x\r\n", 3, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "already exists"));
	assert_valid(SPOOL_QUEUE, mid, data, BIG);
	free(data);
}

/* ---- group commit (what an SMTP worker does) -------------------------- */

struct commit_rec {
	int	done;
	int	ok;
	int	syncs_before;	/* syncfs calls made when the result came */
};

static void
commit_cb(void *arg, uint64_t mid, int ok)
{
	struct commit_rec *r = arg;

	r->done = 1;
	r->ok = ok;
	r->syncs_before = fsfault_calls[FS_SYNCFS];
}

/* Receive n messages like a worker and wait (bounded) for every result. */
static void
receive(struct event_base *base, uint64_t mid0, size_t n, const char *data,
    size_t len, struct commit_rec *recs)
{
	struct spool_msg *m;
	struct envelope env;
	char why[256];
	size_t i, done;
	double deadline = mono_now() + 10;

	for (i = 0; i < n; i++) {
		memset(&recs[i], 0, sizeof(recs[i]));
		m = spool_msg_new(sp, mid0 + i, why, sizeof(why));
		assert_non_null(m);
		spool_msg_write(m, data, len);	/* errors are sticky */
		make_env(&env, mid0 + i, data, len);
		spool_msg_commit(m, &env, commit_cb, &recs[i]);
		envelope_clear(&env);
	}
	do {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		for (done = 0, i = 0; i < n; i++)
			done += recs[i].done;
		if (done < n)
			usleep(1000);
	} while (done < n && mono_now() < deadline);
	assert_int_equal(done, n);
}

static void
test_commit_failures(void **state)
{
	static const struct {
		const char *name;
		enum fs_call call;
		int nth, err;
		enum fs_kind kind;
		int want_ok;		/* of the one message */
	} cases[] = {
		{ "no fault", FS_NCALLS, 0, 0, FSF_ANY, 1 },
		{ "write while receiving", FS_WRITE, 1, ENOSPC, FSF_REG, 0 },
		{ "write in the middle", FS_WRITE, 3, EIO, FSF_REG, 0 },
		{ "close", FS_CLOSE, 1, EIO, FSF_REG, 0 },
		{ "rename into queue/", FS_RENAME, 1, EIO, FSF_ANY, 0 },
		{ "syncfs", FS_SYNCFS, 1, EIO, FSF_ANY, 0 },
		{ "syncfs ENOSPC", FS_SYNCFS, 1, ENOSPC, FSF_ANY, 0 },
	};
	struct event_base *base = event_base_new();
	struct commit_rec rec[5];
	char *data = content(BIG);
	uint64_t mid = 200;
	size_t i, k;

	assert_non_null(base);
	assert_int_equal(spool_attach_loop(sp, base), 0);
	for (i = 0; i < NELEM(cases); i++, mid++) {
		if (cases[i].call != FS_NCALLS)
			fsfault_arm(cases[i].call, cases[i].nth, cases[i].err,
			    cases[i].kind, NULL);
		receive(base, mid, 1, data, BIG, rec);
		fsfault_disarm();
		if (rec[0].ok != cases[i].want_ok)
			fail_msg("%s: ok = %d", cases[i].name, rec[0].ok);
		assert_int_equal(count_area("incoming"), 0);
		assert_int_equal(count_area("queue"), (size_t)rec[0].ok);
		if (rec[0].ok) {
			assert_true(rec[0].syncs_before >= 1);
			assert_valid(SPOOL_QUEUE, mid, data, BIG);
			assert_int_equal(spool_remove(sp, SPOOL_QUEUE, mid), 0);
		}
	}
	/* A failed flush refuses every message it covered; the worker goes
	 * on without a restart. */
	fsfault_arm(FS_SYNCFS, 0, EIO, FSF_ANY, NULL);
	receive(base, 300, 5, data, 100, rec);
	fsfault_disarm();
	for (k = 0; k < 5; k++)
		assert_int_equal(rec[k].ok, 0);
	assert_int_equal(count_area("queue") + count_area("incoming"), 0);
	fsfault_reset();
	receive(base, 310, 5, data, 100, rec);
	for (k = 0; k < 5; k++) {
		assert_int_equal(rec[k].ok, 1);
		assert_valid(SPOOL_QUEUE, 310 + k, data, 100);
	}
	/* group commit: never more flushes than messages */
	assert_true(fsfault_calls[FS_SYNCFS] >= 1 &&
	    fsfault_calls[FS_SYNCFS] <= 5);
	spool_free(sp);		/* stops the thread before the loop goes */
	sp = NULL;
	event_base_free(base);
	free(data);
}

/* Opening a message's file fails: the worker answers 451 at DATA. */
static void
test_msg_new_failure(void **state)
{
	char why[256] = "";

	fsfault_arm(FS_OPEN, 1, ENOSPC, FSF_ANY, "/incoming/");
	assert_null(spool_msg_new(sp, 400, why, sizeof(why)));
	assert_non_null(strstr(why, "No space left on device"));
	assert_int_equal(count_area("incoming"), 0);
	spool_msg_abort(NULL);
}

/* ---- free space at MAIL ----------------------------------------------- */

#define MiB	(1024ULL * 1024)

static void
test_has_room(void **state)
{
	static const struct {
		const char *name;
		uint64_t bytes, inodes, files, reserve, size;
		enum spool_room want;
	} cases[] = {
		{ "plenty", 1000 * MiB, 5000, 10000, 64 * MiB, 0,
		  SPOOL_ROOM_OK },
		{ "just the reserve", 64 * MiB, 5000, 10000, 64 * MiB, 0,
		  SPOOL_ROOM_OK },
		{ "below the reserve", 64 * MiB - 4096, 5000, 10000, 64 * MiB,
		  0, SPOOL_ROOM_FULL },
		{ "nothing free", 0, 5000, 10000, 64 * MiB, 0,
		  SPOOL_ROOM_FULL },
		{ "no reserve, nothing free", 0, 5000, 10000, 0, 0,
		  SPOOL_ROOM_OK },
		{ "declared size fits", 100 * MiB, 5000, 10000, 64 * MiB,
		  36 * MiB, SPOOL_ROOM_OK },
		{ "declared size does not fit", 100 * MiB, 5000, 10000,
		  64 * MiB, 36 * MiB + 1, SPOOL_ROOM_SIZE },
		{ "no reserve, size does not fit", 1 * MiB, 5000, 10000, 0,
		  2 * MiB, SPOOL_ROOM_SIZE },
		{ "inodes running out", 1000 * MiB, 99, 10000, 64 * MiB, 0,
		  SPOOL_ROOM_FULL },
		{ "inodes not counted", 1000 * MiB, 0, 0, 64 * MiB, 0,
		  SPOOL_ROOM_OK },
	};
	double now = 1000;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		fsfault_space(cases[i].bytes, cases[i].inodes, cases[i].files);
		now += SPOOL_SPACE_TTL;		/* no cached answer */
		if (spool_has_room(sp, cases[i].size, cases[i].reserve, now) !=
		    cases[i].want)
			fail_msg("%s: wrong answer", cases[i].name);
	}
}

static void
test_has_room_cache(void **state)
{
	double t = 500;

	fsfault_space(1000 * MiB, 5000, 10000);
	assert_int_equal(spool_has_room(sp, 0, MiB, t), SPOOL_ROOM_OK);
	assert_int_equal(fsfault_calls[FS_STATVFS], 1);
	/* The disk fills: within the second the cached figure answers. */
	fsfault_space(0, 5000, 10000);
	assert_int_equal(spool_has_room(sp, 0, MiB, t + 0.5), SPOOL_ROOM_OK);
	assert_int_equal(fsfault_calls[FS_STATVFS], 1);
	assert_int_equal(spool_has_room(sp, 0, MiB, t + SPOOL_SPACE_TTL),
	    SPOOL_ROOM_FULL);
	assert_int_equal(fsfault_calls[FS_STATVFS], 2);
	/* A clock that went back does not pin an old answer. */
	fsfault_space(1000 * MiB, 5000, 10000);
	assert_int_equal(spool_has_room(sp, 0, MiB, t), SPOOL_ROOM_OK);
	assert_int_equal(fsfault_calls[FS_STATVFS], 3);
	/* statvfs failing is no reason to refuse mail. */
	fsfault_arm(FS_STATVFS, 0, EIO, FSF_ANY, NULL);
	assert_int_equal(spool_has_room(sp, 0, MiB, t + 10), SPOOL_ROOM_OK);
	assert_int_equal(spool_has_room(sp, 0, MiB, t + 10.1), SPOOL_ROOM_OK);
	assert_int_equal(fsfault_hits(), 2);	/* a failure is not cached */
}

/* One Warning when the spool fills, one line when it has room again. */
static void
test_has_room_log(void **state)
{
	char path[512], *log;
	const char *p;
	double t = 100;
	int i, n;

	snprintf(path, sizeof(path), "%s/log", tmpdir);
	assert_int_equal(log_open(path, 0, "test"), 0);
	fsfault_space(10 * MiB, 5000, 10000);
	for (i = 0; i < 3; i++, t += 1)
		assert_int_equal(spool_has_room(sp, 0, 64 * MiB, t),
		    SPOOL_ROOM_FULL);
	fsfault_space(100 * MiB, 5000, 10000);
	for (i = 0; i < 3; i++, t += 1)
		assert_int_equal(spool_has_room(sp, 0, 64 * MiB, t),
		    SPOOL_ROOM_OK);
	/* a big SIZE alone is not an episode */
	assert_int_equal(spool_has_room(sp, 50 * MiB, 64 * MiB, t + 1),
	    SPOOL_ROOM_SIZE);
	log_close();
	assert_non_null(log = read_file(path, NULL, 1 << 20));
	for (n = 0, p = log; (p = strstr(p, "nearly full")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(log, "Warning: Spool "));
	assert_non_null(strstr(log, "/spool nearly full: 10485760 bytes free "
	    "(5000 inodes), limits.spool_min_free 67108864; MAIL gets 452 "
	    "4.3.1 until space is freed\n"));
	for (n = 0, p = log; (p = strstr(p, "has room again")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(log, "/spool has room again: 104857600 bytes "
	    "free (5000 inodes)\n"));
	free(log);
	log_open("/dev/null", 0, "test_spool");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, spool_setup, spool_teardown)
		T(test_footer),
		T(test_corruption),
		T(test_state_round_trip),
		T(test_state_junk),
		T(test_state_cause),
		T(test_state_write_failures),
		T(test_inject_failures),
		T(test_commit_failures),
		T(test_msg_new_failure),
		T(test_has_room),
		T(test_has_room_cache),
		T(test_has_room_log),
#undef T
	};

	log_open("/dev/null", 0, "test_spool");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
