/*
 * fuzz_smtp_session.c - libFuzzer target for the whole inbound session
 * engine (smtp_server.c) with STARTTLS: arbitrary client bytes, fed in
 * pieces, against a session in one of the TLS modes.
 *
 * Input: byte 0 picks the policy, TLS mode, AUTH mode and whether AUTH is
 * blocked (brute force), byte 1 the piece size, the rest is what the
 * client sends.  Credential checks are answered between pieces (valid,
 * invalid or temporary failure, from the input), sender checks allow
 * addresses whose local part starts with 'a'.  The fake environment completes commits
 * and TLS handshakes between pieces (as the listener would, later).
 * Checks: every reply is a well-formed SMTP reply line; nothing is
 * answered while a handshake is pending (plaintext after STARTTLS is never
 * executed); nothing is answered while credentials are being checked;
 * nothing is answered once the session closed; a commit is only
 * asked for with a message open; MIDs are only taken inside MAIL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf.h"
#include "log.h"
#include "smtp_server.h"
#include "fuzz_check.h"

static const char fuzz_conf[] =
"hostname = \"mx.fuzz.example\";\n"
"data_dir = \"/nonexistent/postern-fuzz\";\n"
"local_domains = [ \"example.com\" ];\n"
"routes = ( { domain = \"example.com\"; maildir = \"mail/%d/%u\"; } );\n"
"sender_groups = ( { name = \"ALL\"; networks = [ \"0.0.0.0/0\" ];"
" policy = \"relayed\"; } );\n"
"policies = {\n"
"  relayed  = { action = \"relay\"; max_recipients = 3; };\n"
"  small    = { action = \"relay\"; max_message_size = 300;\n"
"               max_line_length = 1000; bare_line_ends = \"normalize\"; };\n"
"  accepted = { action = \"accept\"; };\n"
"  rejected = { action = \"reject\"; };\n"
"};\n";

static struct conf *fconf;

struct fake {
	struct smtp_session	*s;
	int			 closed_seen;	/* closing reported before */
	int			 handshake;	/* starttls asked, not done */
	int			 commit;	/* commit asked, not answered */
	int			 open;
	int			 blocked;	/* AUTH brute-force gate */
	int			 checking;	/* auth_check asked, not answered */
	size_t			 replies;
};

static void
f_reply(void *ctx, const char *d, size_t n)
{
	struct fake *f = ctx;
	size_t i, start = 0;

	CHECK(!f->closed_seen);
	CHECK(!f->handshake);
	CHECK(!f->checking);
	CHECK(n >= 5 && d[n - 2] == '\r' && d[n - 1] == '\n');
	for (i = 0; i < n; i++) {
		if (d[i] != '\n')
			continue;
		/* One line: "DDD" then ' ' or '-' (or just "DDD"). */
		CHECK(i - start >= 4);
		CHECK(d[start] >= '2' && d[start] <= '5');
		CHECK(d[start + 1] >= '0' && d[start + 1] <= '9');
		CHECK(d[start + 2] >= '0' && d[start + 2] <= '9');
		CHECK(d[start + 3] == ' ' || d[start + 3] == '-' ||
		    d[start + 3] == '\r');
		CHECK(d[i - 1] == '\r');
		start = i + 1;
	}
	f->replies++;
}

static int
f_begin(void *ctx, uint64_t mid)
{
	struct fake *f = ctx;

	CHECK(!f->open);
	f->open = 1;
	return 0;
}

static int
f_write(void *ctx, const char *d, size_t n)
{
	struct fake *f = ctx;

	CHECK(f->open);
	return 0;
}

static void
f_commit(void *ctx, const struct envelope *env)
{
	struct fake *f = ctx;

	CHECK(f->open && !f->commit);
	CHECK(env->nrcpts > 0);
	f->open = 0;
	f->commit = 1;
}

static void
f_abort(void *ctx)
{
	struct fake *f = ctx;

	CHECK(f->open);
	f->open = 0;
}

static uint64_t
f_mid(void *ctx)
{
	static uint64_t mid = 1;

	return mid++;
}

static const char *
f_local(void *ctx, const struct smtp_path *p)
{
	return p->local[0] == 'x' ? "550 5.1.1 <x@example.com>: Recipient "
	    "address rejected: User unknown" : NULL;
}

static void
f_starttls(void *ctx)
{
	struct fake *f = ctx;

	CHECK(!f->handshake);
	f->handshake = 1;
}

static int
f_blocked(void *ctx)
{
	struct fake *f = ctx;

	return f->blocked;
}

static void
f_auth_check(void *ctx, const char *user, const char *pass, size_t len)
{
	struct fake *f = ctx;

	CHECK(!f->checking && !f->blocked);
	CHECK(user[0] != '\0' && strlen(user) <= 64);
	f->checking = 1;
}

static int
f_sender_allowed(void *ctx, const char *user, const char *addr)
{
	CHECK(user[0] != '\0');
	return addr[0] == 'a' ? 1 : addr[0] == 'r' ? -1 : 0;
}

static const char *
f_send_quota(void *ctx, const char *user)
{
	return NULL;
}

/* Room unless the declared SIZE ends in 7: both paths get fuzzed. */
static int
f_spool_room(void *ctx, uint64_t size)
{
	return size % 10 != 7;
}

static const struct smtp_server_ops fops = {
	f_reply, f_begin, f_write, f_commit, f_abort, f_mid, f_local,
	f_starttls, f_blocked, f_auth_check, f_sender_allowed, f_send_quota,
	f_spool_room
};

static const struct conf_policy *
policy(const char *name)
{
	size_t i;

	for (i = 0; i < fconf->npolicies; i++)
		if (strcmp(fconf->policies[i].name, name) == 0)
			return &fconf->policies[i];
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *pols[] = { "relayed", "small", "accepted",
	    "rejected" };
	static const enum listener_tls modes[] = { LISTENER_TLS_OFF,
	    LISTENER_TLS_PREFERRED, LISTENER_TLS_REQUIRED,
	    LISTENER_TLS_IMPLICIT };
	static const enum listener_auth auths[] = { LISTENER_AUTH_OFF,
	    LISTENER_AUTH_OPTIONAL, LISTENER_AUTH_REQUIRED,
	    LISTENER_AUTH_REQUIRED };
	struct conf_errors errs = { NULL, 0 };
	struct smtp_session_params p;
	struct evbuffer *in;
	struct fake f;
	size_t piece, off, n;
	double now = 100.0;

	if (fconf == NULL) {
		if (log_open("/dev/null", 0, "fuzz") == -1)
			abort();
		fconf = conf_load_string(fuzz_conf, "fuzz.conf", "/tmp", &errs);
		CHECK(fconf != NULL && errs.n == 0);
	}
	if (size < 2)
		return 0;
	memset(&f, 0, sizeof(f));
	memset(&p, 0, sizeof(p));
	p.conf = fconf;
	p.policy = policy(pols[data[0] & 3]);
	p.tls = modes[(data[0] >> 2) & 3];
	p.auth = auths[(data[0] >> 4) & 3];
	f.blocked = (data[0] & 0x40) != 0;
	p.icid = 1;
	p.client_ip = "192.0.2.1";
	p.client_rdns = "client.example";
	piece = (size_t)data[1] % 64 + 1;
	data += 2;
	size -= 2;
	in = evbuffer_new();
	CHECK(in != NULL);
	f.s = smtp_session_new(&p, &fops, &f);
	if (p.tls == LISTENER_TLS_IMPLICIT)
		smtp_session_tls_started(f.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384",
		    now);
	smtp_session_start(f.s, now);
	for (off = 0; off < size; off += n) {
		n = size - off < piece ? size - off : piece;
		f.closed_seen = smtp_session_closing(f.s);
		evbuffer_add(in, data + off, n);
		smtp_session_input(f.s, in, now);
		/* What the listener does between reads. */
		if (f.commit) {
			f.commit = 0;
			smtp_session_committed(f.s, (data[off] & 1) == 0, now);
			f.closed_seen = 0;
			smtp_session_input(f.s, in, now);
		}
		if (f.checking) {
			CHECK(smtp_session_authenticating(f.s));
			f.checking = 0;
			smtp_session_auth_result(f.s, (int)(data[off] % 3) - 1,
			    now);
			f.closed_seen = 0;
			smtp_session_input(f.s, in, now);
		}
		if (f.handshake) {
			CHECK(smtp_session_handshaking(f.s));
			/* The handshake never sees plaintext as commands. */
			CHECK(evbuffer_get_length(in) == 0);
			f.handshake = 0;
			smtp_session_tls_started(f.s, "TLSv1.3",
			    "TLS_AES_256_GCM_SHA384", now);
		}
		now += 1.0;
	}
	if (!smtp_session_committing(f.s)) {
		smtp_session_timeout(f.s);
		f.checking = 0;		/* a timeout answers nothing then */
	}
	smtp_session_free(f.s);
	evbuffer_free(in);
	return 0;
}
