/*
 * test_dsn.c - bounces (RFC 3464 / 6522 structure, per-recipient fields,
 * ORCPT and ENVID decoding, RFC 6533 global types, RET=HDRS and RET=FULL
 * with their fall-backs, sanitising of remote text, CRLF and the 998
 * octet line limit), alerts, and spool_inject() round trips through
 * spool_open_msg(verify = 1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "alert.h"
#include "bounce.h"
#include "envelope.h"
#include "spool.h"
#include "strbuf.h"
#include "util.h"

#define TEST_TMPDIR_PREFIX "postern-test-dsn"
#include "test_tmpdir.h"

#define NOW		1764000000	/* 2025-11-24T16:00:00Z */
#define RECEIVED	1763880000

static const char orig_text[] =
    "Received: from client.test (localhost [127.0.0.1])\r\n"
    "\tby mx.test.example (Postern) with ESMTP id 40; "
    "Sun, 23 Nov 2025 06:40:00 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@partner.example\r\n"
    "Subject: Quarterly report\r\n"
    "Message-ID: <q1@example.com>\r\n"
    "\r\n"
    "BODY-SECRET first line\r\n"
    "second line\r\n";

static uint64_t next_mid = 100;

static struct conf *
load(const char *text)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c = conf_load_string(text, "t.conf", tmpdir, &errs);

	assert_non_null(c);
	if (errs.n > 0)
		fail_msg("%s", errs.msgs[0]);
	conf_errors_free(&errs);
	return c;
}

static struct conf *
base_conf(void)
{
	char text[1024];

	snprintf(text, sizeof(text), "hostname = \"mx.test.example\";\n"
	    "data_dir = \"%s/data\";\n"
	    "alerts = { recipients = [ \"postmaster@example.com\", "
	    "\"ops@example.net\" ]; from = \"postern@mx.test.example\"; };\n"
	    "destinations = ( { domain = \"partner.example\"; "
	    "tls = \"required-verify\"; } );\n", tmpdir);
	return load(text);
}

/* Every line ends in CRLF, no bare CR or LF, none longer than 998. */
static void
check_lines(const char *s, size_t len)
{
	size_t i, col = 0;

	assert_true(len >= 2);
	assert_memory_equal(s + len - 2, "\r\n", 2);
	for (i = 0; i < len; i++) {
		if (s[i] == '\r') {
			if (i + 1 >= len || s[i + 1] != '\n')
				fail_msg("bare CR at %zu", i);
			i++;
			col = 0;
		} else if (s[i] == '\n')
			fail_msg("bare LF at %zu", i);
		else if (s[i] == '\0')
			fail_msg("NUL at %zu", i);
		else if (++col > 998)
			fail_msg("line longer than 998 octets at %zu", i);
	}
}

/* Control characters other than CRLF/HTAB never appear. */
static void
check_no_controls(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') ||
		    c == 0x7f)
			fail_msg("control character 0x%02x at %zu", c, i);
	}
}

/* The value of a top-level header field (first line only), malloc'd. */
static char *
header(const char *msg, const char *name)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg, *eol;
	size_t nl = strlen(name);

	assert_non_null(end);
	while (p < end) {
		eol = strstr(p, "\r\n");
		if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ')
			return xstrndup(p + nl + 2, (size_t)(eol - p - nl - 2));
		p = eol + 2;
	}
	return NULL;
}

static int
contains(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

struct part {
	const char	*s;	/* part headers and content */
	size_t		 len;
	const char	*body;	/* after the part's empty line */
	size_t		 bodylen;
};

/*
 * Split a multipart message at its boundary: checks the delimiter lines,
 * that the close delimiter ends the message, and returns the parts.
 */
static size_t
split_parts(const char *msg, size_t len, struct part *parts, size_t max)
{
	char *ct = header(msg, "Content-Type"), *b, delim[128];
	const char *p, *q, *next, *end = msg + len;
	size_t n = 0, dl;

	assert_non_null(ct);
	/* boundary="..." may be on the continuation line */
	p = strstr(msg, "boundary=\"");
	assert_non_null(p);
	b = xstrndup(p + 10, (size_t)(strchr(p + 10, '"') - (p + 10)));
	assert_true(strlen(b) >= 20 && strlen(b) <= 70);
	snprintf(delim, sizeof(delim), "\r\n--%s", b);
	dl = strlen(delim);
	p = memmem(msg, len, delim, dl);
	assert_non_null(p);
	for (;;) {
		p += dl;
		if (p + 2 <= end && memcmp(p, "--", 2) == 0) {
			/* close delimiter: the end of the message */
			assert_true(p + 4 == end);
			assert_memory_equal(p, "--\r\n", 4);
			break;
		}
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		next = memmem(p, (size_t)(end - p), delim, dl);
		assert_non_null(next);
		assert_true(n < max);
		parts[n].s = p;
		parts[n].len = (size_t)(next - p);
		q = memmem(p, parts[n].len, "\r\n\r\n", 4);
		assert_non_null(q);
		parts[n].body = q + 4;
		parts[n].bodylen = (size_t)(next - q - 4);
		n++;
		p = next;
	}
	free(b);
	free(ct);
	return n;
}

/* Put a message into the spool and open it again, as the queue manager
 * would hand it to bounce_build_bounce(). */
static int
spool_orig(struct spool *sp, struct envelope *env, const char *text,
    size_t len)
{
	struct envelope back;
	char why[512];
	int fd;

	env->mid = next_mid++;
	if (spool_inject(sp, env, text, len, why, sizeof(why)) == -1)
		fail_msg("spool_inject: %s", why);
	fd = spool_open_msg(sp, SPOOL_QUEUE, env->mid, 1, &back, why,
	    sizeof(why));
	if (fd == -1)
		fail_msg("spool_open_msg: %s", why);
	envelope_clear(&back);
	return fd;
}

/* One failed recipient as the queue manager records it. */
static void
rc_set(struct delivery_result *r, size_t rid, const char *status,
    const char *remote, const char *text, int smtp_diag, int64_t when)
{
	memset(r, 0, sizeof(*r));
	r->rid = rid;
	delivery_result_set(r, DELIVERY_BOUNCED, text, status, remote,
	    smtp_diag);
	r->when = when;
}

static void
orig_envelope(struct envelope *env, enum smtp_ret ret)
{
	envelope_init(env);
	env->icid = 12;
	env->received = RECEIVED;
	bstrlcpy(env->client_ip, "127.0.0.1", sizeof(env->client_ip));
	bstrlcpy(env->helo, "client.test", sizeof(env->helo));
	bstrlcpy(env->from, "alice@example.com", sizeof(env->from));
	env->body = SMTP_BODY_8BITMIME;
	env->ret = ret;
}

static struct spool *
open_spool(void)
{
	char dir[512], why[512];
	struct spool *sp;

	snprintf(dir, sizeof(dir), "%s/data", tmpdir);
	if ((sp = spool_open(dir, why, sizeof(why))) == NULL)
		fail_msg("spool_open: %s", why);
	return sp;
}

static void
test_bounce_hdrs(void **state)
{
	struct conf *c = base_conf();
	struct spool *sp = open_spool();
	struct envelope env;
	struct strbuf out = STRBUF_INIT;
	struct part parts[4];
	struct delivery_result rc[2];
	char why[256], *v;
	size_t n;
	int fd;

	orig_envelope(&env, SMTP_RET_HDRS);
	bstrlcpy(env.envid, "QQ+2B314", sizeof(env.envid));
	envelope_add_rcpt(&env, "bob@partner.example", SMTP_NOTIFY_FAILURE,
	    "rfc822;Bob+2Bx@partner.example");
	envelope_add_rcpt(&env, "carol@partner.example", 0, "");
	fd = spool_orig(sp, &env, orig_text, sizeof(orig_text) - 1);

	/* a multi-line reply, with a control character and an attempt to
	 * start a header of its own */
	rc_set(&rc[0], 0, "5.1.1", "mx.partner.example",
	    "550-5.1.1 <bob@partner.example>: no such user\r\n"
	    "550 5.1.1 see\x01 https://partner.example/\r\nX-Injected: yes", 1,
	    NOW - 60);
	rc_set(&rc[1], 1, "4.4.7", NULL, "message expired after 5 days in the "
	    "queue; last error: connection refused", 0, NOW - 30);

	assert_int_equal(bounce_build_bounce(&out, c, &env, fd, rc, 2, NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	check_no_controls(out.s, out.len);
	assert_false(mem_has_8bit(out.s, out.len));

	v = header(out.s, "From");
	assert_string_equal(v, "Mail Delivery System "
	    "<MAILER-DAEMON@mx.test.example>");
	free(v);
	v = header(out.s, "To");
	assert_string_equal(v, "<alice@example.com>");
	free(v);
	v = header(out.s, "Subject");
	assert_string_equal(v, "Undelivered Mail Returned to Sender");
	free(v);
	v = header(out.s, "Date");
	assert_string_equal(v, "Mon, 24 Nov 2025 16:00:00 +0000");
	free(v);
	v = header(out.s, "Message-ID");
	assert_non_null(v);
	assert_true(v[0] == '<' && strstr(v, "@mx.test.example>") != NULL);
	assert_true(strlen(v) > 20);
	free(v);
	v = header(out.s, "Auto-Submitted");
	assert_string_equal(v, "auto-replied");
	free(v);
	v = header(out.s, "MIME-Version");
	assert_string_equal(v, "1.0");
	free(v);
	v = header(out.s, "References");
	assert_string_equal(v, "<q1@example.com>");
	free(v);
	v = header(out.s, "Content-Type");
	assert_string_equal(v, "multipart/report; report-type=delivery-status;");
	free(v);
	v = header(out.s, "Content-Transfer-Encoding");
	assert_string_equal(v, "7bit");
	free(v);

	n = split_parts(out.s, out.len, parts, 4);
	assert_int_equal(n, 3);
	/* 1: the words */
	assert_true(contains(parts[0].s, parts[0].len,
	    "Content-Type: text/plain; charset=utf-8\r\n"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "Quarterly report"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "<q1@example.com>"));
	assert_true(contains(parts[0].body, parts[0].bodylen, "MID 100"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "<bob@partner.example>"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "550-5.1.1 <bob@partner.example>: no such user"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "mx.partner.example"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "connection refused"));
	assert_true(contains(parts[0].body, parts[0].bodylen, "What to do"));
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "Attached: the header section"));
	/* 2: the report */
	assert_true(contains(parts[1].s, parts[1].len,
	    "Content-Type: message/delivery-status\r\n"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Reporting-MTA: dns; mx.test.example\r\n"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Original-Envelope-Id: QQ+314\r\n"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Arrival-Date: Sun, 23 Nov 2025 06:40:00 +0000\r\n"));
	/* per-message fields, empty line, first recipient in order */
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "\r\n\r\nOriginal-Recipient: rfc822; Bob+x@partner.example\r\n"
	    "Final-Recipient: rfc822; bob@partner.example\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.partner.example\r\n"
	    "Diagnostic-Code: smtp; 550-5.1.1 <bob@partner.example>: no such"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Last-Attempt-Date: Mon, 24 Nov 2025 15:59:00 +0000\r\n"));
	/* the second recipient: no ORCPT, no remote MTA, a local reason */
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "\r\n\r\nFinal-Recipient: rfc822; carol@partner.example\r\n"
	    "Action: failed\r\nStatus: 4.4.7\r\n"
	    "Diagnostic-Code: X-Postern; message expired"));
	assert_false(contains(out.s, out.len, "\r\nX-Injected"));
	assert_false(contains(out.s, out.len, "Original-Recipient: rfc822; "
	    "carol"));
	/* 3: the original header section and nothing after it */
	assert_true(contains(parts[2].s, parts[2].len,
	    "Content-Type: text/rfc822-headers\r\n"));
	assert_int_equal(parts[2].bodylen, strstr(orig_text, "\r\n\r\n") + 2 -
	    orig_text);
	assert_memory_equal(parts[2].body, orig_text, parts[2].bodylen);
	assert_false(contains(out.s, out.len, "BODY-SECRET"));

	/* out is appended to, and a failure leaves it as it was */
	{
		size_t before = out.len;
		env.from[0] = '\0';
		assert_int_equal(bounce_build_bounce(&out, c, &env, fd, rc, 2,
		    NOW, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "null sender"));
		assert_int_equal(out.len, before);
		bstrlcpy(env.from, "alice@example.com", sizeof(env.from));
		assert_int_equal(bounce_build_bounce(&out, c, &env, fd, rc, 0,
		    NOW, why, sizeof(why)), -1);
		assert_int_equal(out.len, before);
		/* a RID that is not a recipient of the message */
		rc[1].rid = 2;
		assert_int_equal(bounce_build_bounce(&out, c, &env, fd, rc, 2,
		    NOW, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "RID 2"));
		assert_int_equal(out.len, before);
	}
	close(fd);
	strbuf_free(&out);
	envelope_clear(&env);
	spool_free(sp);
	conf_free(c);
}

/* RET=FULL with a non-ASCII recipient: global types, the whole original. */
static void
test_bounce_full_global(void **state)
{
	struct conf *c = base_conf();
	struct spool *sp = open_spool();
	struct envelope env;
	struct strbuf out = STRBUF_INIT;
	struct part parts[4];
	struct delivery_result rc[2];
	char why[256], *v;
	int fd;

	orig_envelope(&env, SMTP_RET_FULL);
	env.smtputf8 = 1;
	envelope_add_rcpt(&env, "bob@partner.example", 0,
	    "rfc822;bob@partner.example");
	envelope_add_rcpt(&env, "d\xc3\xb6rte@b\xc3\xbc" "cher.example", 0,
	    "utf-8;d\\x{F6}rte@b\\x{FC}cher.example");
	fd = spool_orig(sp, &env, orig_text, sizeof(orig_text) - 1);

	rc_set(&rc[0], 0, "5.7.1", "mx.partner.example",
	    "554 5.7.1 rejected by policy", 1, 0);
	/* "bogus" becomes 5.0.0 */
	rc_set(&rc[1], 1, "bogus", NULL, "550 5.1.1 unknown \xff\xfe user", 1,
	    0);

	assert_int_equal(bounce_build_bounce(&out, c, &env, fd, rc, 2, NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	check_no_controls(out.s, out.len);
	v = header(out.s, "Content-Type");
	assert_string_equal(v,
	    "multipart/report; report-type=global-delivery-status;");
	free(v);
	v = header(out.s, "Content-Transfer-Encoding");
	assert_string_equal(v, "8bit");
	free(v);
	assert_int_equal(split_parts(out.s, out.len, parts, 4), 3);
	assert_true(contains(parts[1].s, parts[1].len,
	    "Content-Type: message/global-delivery-status\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Original-Recipient: rfc822; bob@partner.example\r\n"
	    "Final-Recipient: rfc822; bob@partner.example\r\n"));
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Original-Recipient: utf-8; d\xc3\xb6rte@b\xc3\xbc" "cher.example\r\n"
	    "Final-Recipient: utf-8; d\xc3\xb6rte@b\xc3\xbc" "cher.example\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n"));
	/* invalid UTF-8 from the remote side never passes */
	assert_true(contains(parts[1].body, parts[1].bodylen,
	    "Diagnostic-Code: smtp; 550 5.1.1 unknown ?? user\r\n"));
	assert_false(contains(out.s, out.len, "\xff"));
	/* the whole original as message/global, byte for byte */
	assert_true(contains(parts[2].s, parts[2].len,
	    "Content-Type: message/global\r\n"));
	assert_int_equal(parts[2].bodylen, sizeof(orig_text) - 1);
	assert_memory_equal(parts[2].body, orig_text, sizeof(orig_text) - 1);
	assert_true(contains(parts[0].body, parts[0].bodylen,
	    "Attached: your whole message"));
	close(fd);
	strbuf_free(&out);
	envelope_clear(&env);
	spool_free(sp);
	conf_free(c);
}

/* RET=FULL cannot return a message with an over-long line as is: the
 * header section goes back instead, with a note; a header line longer
 * than 998 octets is split; a header section over the cap is cut. */
static void
test_bounce_full_fallback_and_caps(void **state)
{
	struct conf *c = base_conf();
	struct spool *sp = open_spool();
	struct strbuf msg = STRBUF_INIT, out = STRBUF_INIT;
	struct envelope env;
	struct part parts[4];
	struct delivery_result rc;
	char why[256], longword[3001];
	size_t i;
	int fd;

	for (i = 0; i < sizeof(longword) - 1; i++)
		longword[i] = 'a' + (char)(i % 26);
	longword[i] = '\0';
	strbuf_puts(&msg, "Subject: long\r\nX-Long: ");
	strbuf_puts(&msg, longword);
	strbuf_puts(&msg, "\r\n\r\nBODY-SECRET ");
	for (i = 0; i < 5000; i++)
		strbuf_putc(&msg, 'x');
	strbuf_puts(&msg, "\r\n");
	orig_envelope(&env, SMTP_RET_FULL);
	envelope_add_rcpt(&env, "bob@partner.example", 0, "");
	fd = spool_orig(sp, &env, msg.s, msg.len);
	/* the longest word a reply text holds: folded, never a line longer
	 * than 998 */
	rc_set(&rc, 0, "5.3.4", NULL, longword, 1, 0);
	assert_int_equal(bounce_build_bounce(&out, c, &env, fd, &rc, 1, NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	assert_int_equal(split_parts(out.s, out.len, parts, 4), 3);
	assert_true(contains(parts[2].s, parts[2].len,
	    "Content-Type: text/rfc822-headers\r\n"));
	assert_false(contains(out.s, out.len, "BODY-SECRET"));
	assert_true(contains(parts[0].body, parts[0].bodylen, "RET=FULL"));
	assert_true(contains(parts[0].body, parts[0].bodylen, "998"));
	/* the split X-Long: continues on a line starting with a space */
	assert_true(contains(parts[2].body, parts[2].bodylen, "\r\n "));
	close(fd);
	envelope_clear(&env);

	/* a header section of ~100 KiB: cut at a line end within 64 KiB */
	strbuf_reset(&msg);
	for (i = 0; msg.len < 100 * 1024; i++)
		strbuf_printf(&msg, "X-Filler-%zu: %s\r\n", i,
		    "0123456789012345678901234567890123456789");
	strbuf_puts(&msg, "\r\nBODY-SECRET\r\n");
	orig_envelope(&env, SMTP_RET_HDRS);
	envelope_add_rcpt(&env, "bob@partner.example", 0, "");
	fd = spool_orig(sp, &env, msg.s, msg.len);
	strbuf_reset(&out);
	rc_set(&rc, 0, "5.1.1", NULL, "550 5.1.1 no", 1, 0);
	assert_int_equal(bounce_build_bounce(&out, c, &env, fd, &rc, 1, NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	assert_int_equal(split_parts(out.s, out.len, parts, 4), 3);
	assert_true(parts[2].bodylen <= BOUNCE_HEADERS_MAX);
	assert_true(parts[2].bodylen > BOUNCE_HEADERS_MAX - 100);
	assert_memory_equal(parts[2].body, msg.s, parts[2].bodylen);
	assert_memory_equal(parts[2].body + parts[2].bodylen - 2, "\r\n", 2);
	assert_true(contains(parts[0].body, parts[0].bodylen, "cut short"));
	assert_false(contains(out.s, out.len, "BODY-SECRET"));
	close(fd);
	envelope_clear(&env);

	/* RET=FULL over the size cap: headers, and the text says why */
	strbuf_reset(&msg);
	strbuf_puts(&msg, "Subject: big\r\n\r\n");
	while (msg.len <= BOUNCE_FULL_MAX)
		strbuf_puts(&msg, "BODY-SECRET 0123456789012345678901234567890"
		    "1234567890123456789012345678901234567890\r\n");
	orig_envelope(&env, SMTP_RET_FULL);
	envelope_add_rcpt(&env, "bob@partner.example", 0, "");
	fd = spool_orig(sp, &env, msg.s, msg.len);
	strbuf_reset(&out);
	assert_int_equal(bounce_build_bounce(&out, c, &env, fd, &rc, 1, NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	assert_true(out.len < 64 * 1024);
	assert_true(contains(out.s, out.len, "larger than this server"));
	assert_false(contains(out.s, out.len, "BODY-SECRET"));
	close(fd);
	envelope_clear(&env);

	strbuf_free(&out);
	strbuf_free(&msg);
	spool_free(sp);
	conf_free(c);
}

static void
test_alert(void **state)
{
	struct conf *c = base_conf();
	struct strbuf out = STRBUF_INIT;
	char why[256], *v, *body;

	assert_int_equal(alert_build(&out, c, "partner.example",
	    "mx.partner.example", "certificate verify failed: unable to get "
	    "local issuer certificate\r\nX-Injected: 1", NOW, why,
	    sizeof(why)), 0);
	check_lines(out.s, out.len);
	check_no_controls(out.s, out.len);
	v = header(out.s, "From");
	assert_string_equal(v, "Postern <postern@mx.test.example>");
	free(v);
	v = header(out.s, "To");
	assert_string_equal(v, "<postmaster@example.com>, <ops@example.net>");
	free(v);
	v = header(out.s, "Subject");
	assert_string_equal(v, "Postern alert: TLS delivery to partner.example "
	    "failed");
	free(v);
	v = header(out.s, "Auto-Submitted");
	assert_string_equal(v, "auto-generated");
	free(v);
	v = header(out.s, "Date");
	assert_string_equal(v, "Mon, 24 Nov 2025 16:00:00 +0000");
	free(v);
	v = header(out.s, "Message-ID");
	assert_non_null(v);
	free(v);
	v = header(out.s, "Content-Type");
	assert_string_equal(v, "text/plain; charset=utf-8");
	free(v);
	assert_false(contains(out.s, out.len, "\r\nX-Injected"));
	body = strstr(out.s, "\r\n\r\n");
	assert_non_null(body);
	assert_non_null(strstr(body, "partner.example"));
	assert_non_null(strstr(body, "mx.partner.example"));
	assert_non_null(strstr(body, "certificate verify failed"));
	assert_non_null(strstr(body, "2025-11-24T16:00:00Z"));
	assert_non_null(strstr(body, "destinations"));
	assert_non_null(strstr(body, "required-verify"));
	assert_non_null(strstr(body, "postern trust add"));
	assert_non_null(strstr(body, "postern probe mx.partner.example "
	    "--starttls"));
	strbuf_free(&out);
	conf_free(c);

	/* no recipients configured: nothing built */
	c = load("hostname = \"mx.test.example\";");
	assert_int_equal(alert_build(&out, c, "partner.example", "h",
	    "r", NOW, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "alerts.recipients"));
	assert_int_equal(out.len, 0);
	strbuf_free(&out);
	conf_free(c);
}

static void
test_notify(void **state)
{
	assert_true(bounce_notify_failure(0));
	assert_true(bounce_notify_failure(SMTP_NOTIFY_FAILURE));
	assert_true(bounce_notify_failure(SMTP_NOTIFY_FAILURE |
	    SMTP_NOTIFY_DELAY));
	assert_false(bounce_notify_failure(SMTP_NOTIFY_NEVER));
	assert_false(bounce_notify_failure(SMTP_NOTIFY_SUCCESS));
	assert_false(bounce_notify_failure(SMTP_NOTIFY_DELAY));
}

/* A bounce injected into the spool reads back verified, envelope and
 * content intact; a damaged file does not verify. */
static void
test_inject_roundtrip(void **state)
{
	struct conf *c = base_conf();
	struct spool *sp = open_spool();
	struct envelope orig, env, back;
	struct strbuf out = STRBUF_INIT;
	struct delivery_result rc;
	struct rcpt_state st[1];
	const char *to[1];
	char why[256], path[4096], *buf;
	uint64_t *mids, mid;
	size_t n, i;
	int fd, found = 0;

	orig_envelope(&orig, SMTP_RET_HDRS);
	envelope_add_rcpt(&orig, "bob@partner.example", 0, "");
	fd = spool_orig(sp, &orig, orig_text, sizeof(orig_text) - 1);
	rc_set(&rc, 0, "5.1.1", NULL, "550 5.1.1 no such user", 1, 0);
	assert_int_equal(bounce_build_bounce(&out, c, &orig, fd, &rc, 1, NOW, why,
	    sizeof(why)), 0);
	close(fd);

	mid = next_mid++;
	to[0] = orig.from;
	envelope_generated(&env, c->hostname, mid, "", to, 1, out.s, out.len, NOW);
	assert_int_equal(env.mid, mid);
	assert_string_equal(env.from, "");
	assert_int_equal(env.nrcpts, 1);
	assert_string_equal(env.rcpts[0].addr, "alice@example.com");
	assert_int_equal(env.rcpts[0].notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(env.body, SMTP_BODY_7BIT);
	assert_int_equal(env.smtputf8, 0);
	assert_int_equal(env.msg_size, out.len);
	env.msg_size = 0;	/* spool_inject sets it */
	if (spool_inject(sp, &env, out.s, out.len, why, sizeof(why)) == -1)
		fail_msg("spool_inject: %s", why);
	assert_int_equal(env.msg_size, out.len);

	fd = spool_open_msg(sp, SPOOL_QUEUE, mid, 1, &back, why, sizeof(why));
	if (fd == -1)
		fail_msg("spool_open_msg: %s", why);
	assert_int_equal(back.mid, mid);
	assert_int_equal(back.received, NOW);
	assert_string_equal(back.from, "");
	assert_string_equal(back.client_ip, "local");
	assert_string_equal(back.helo, "mx.test.example");
	assert_int_equal(back.nrcpts, 1);
	assert_string_equal(back.rcpts[0].addr, "alice@example.com");
	assert_int_equal(back.msg_size, out.len);
	buf = xmalloc(out.len);
	assert_int_equal(pread(fd, buf, out.len, 0), (ssize_t)out.len);
	assert_memory_equal(buf, out.s, out.len);
	free(buf);
	close(fd);
	envelope_clear(&back);
	/* listed, all pending, nothing left in incoming/ */
	assert_int_equal(spool_list(sp, SPOOL_QUEUE, &mids, &n), 0);
	for (i = 0; i < n; i++)
		found |= mids[i] == mid;
	free(mids);
	assert_true(found);
	assert_int_equal(spool_find(sp, mid), SPOOL_QUEUE);
	assert_int_equal(spool_state_read(sp, mid, st, 1), 0);
	assert_int_equal(st[0].status, RCPT_PENDING);
	assert_int_equal(st[0].attempts, 0);
	assert_int_equal(spool_list(sp, SPOOL_INCOMING, &mids, &n), 0);
	free(mids);
	assert_int_equal(n, 0);

	/* the same MID twice is refused and the first copy stays intact */
	assert_int_equal(spool_inject(sp, &env, "x\r\n", 3, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "already exists"));
	fd = spool_open_msg(sp, SPOOL_QUEUE, mid, 1, &back, why, sizeof(why));
	assert_true(fd != -1);
	close(fd);
	envelope_clear(&back);
	/* no MID: refused */
	env.mid = 0;
	assert_int_equal(spool_inject(sp, &env, "x\r\n", 3, why,
	    sizeof(why)), -1);

	/* one flipped octet of content: verify = 1 refuses it */
	spool_path(sp, SPOOL_QUEUE, mid, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "Z", 1, 10), 1);
	close(fd);
	assert_int_equal(spool_open_msg(sp, SPOOL_QUEUE, mid, 1, &back, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "checksum"));
	fd = spool_open_msg(sp, SPOOL_QUEUE, mid, 0, &back, why, sizeof(why));
	assert_true(fd != -1);
	close(fd);
	envelope_clear(&back);

	envelope_clear(&env);
	envelope_clear(&orig);
	strbuf_free(&out);
	spool_free(sp);
	conf_free(c);
}

/* An alert to a non-ASCII address, and 8-bit content: the envelope
 * asks for SMTPUTF8 and 8BITMIME. */
static void
test_envelope_flags(void **state)
{
	struct conf *c = base_conf();
	struct envelope env;
	const char *to[2] = { "ops@example.net", "b\xc3\xb6" "b@example.org" };
	const char plain[] = "Subject: x\r\n\r\nhi\r\n";
	const char body8[] = "Subject: x\r\n\r\nh\xc3\xa9\r\n";

	/* garbage in: envelope_generated() initialises, never frees */
	memset(&env, 0xa5, sizeof(env));
	envelope_generated(&env, c->hostname, 7, c->alert_from, to, 1, plain,
	    sizeof(plain) - 1, NOW);
	assert_string_equal(env.from, "postern@mx.test.example");
	assert_int_equal(env.smtputf8, 0);
	assert_int_equal(env.body, SMTP_BODY_7BIT);
	assert_int_equal(env.ret, SMTP_RET_UNSET);
	assert_string_equal(env.envid, "");
	assert_string_equal(env.auth_user, "");
	envelope_clear(&env);
	envelope_generated(&env, c->hostname, 8, "", to, 2, body8, sizeof(body8) - 1, NOW);
	assert_int_equal(env.nrcpts, 2);
	assert_int_equal(env.smtputf8, 1);
	assert_int_equal(env.body, SMTP_BODY_8BITMIME);
	envelope_clear(&env);
	envelope_generated(&env, c->hostname, 9, "", to, 1, body8, sizeof(body8) - 1, NOW);
	assert_int_equal(env.smtputf8, 0);
	assert_int_equal(env.body, SMTP_BODY_8BITMIME);
	envelope_clear(&env);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce_hdrs),
		cmocka_unit_test(test_bounce_full_global),
		cmocka_unit_test(test_bounce_full_fallback_and_caps),
		cmocka_unit_test(test_alert),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_inject_roundtrip),
		cmocka_unit_test(test_envelope_flags),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
