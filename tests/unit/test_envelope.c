/*
 * test_envelope.c - the versioned envelope encoding (envelope.c): a fixed
 * encoding decodes to the wanted fields and encodes back to itself;
 * envelopes with awkward values (spaces, quotes, '%', UTF-8, control
 * octets, the null sender, "-" as a real value, maximum lengths and
 * numbers, many recipients) survive encode -> decode; every kind of
 * damage (missing or duplicate fields, unknown keys, bad version, bytes
 * after "end", bad %XX escapes, raw octets, overlong values, numbers out
 * of range, wrong field counts) is refused with a reason.  The optional
 * "transformed 1" field (transform.h) round-trips, is absent from files
 * that never had it, and takes no other value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "envelope.h"
#include "strbuf.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A complete, canonical encoding. */
static const char base_text[] =
	"postern-envelope 1\n"
	"mid 40\n"
	"icid 12\n"
	"received 1763880000\n"
	"client 127.0.0.1\n"
	"helo client.test\n"
	"auth -\n"
	"from alice@example.com\n"
	"body 2\n"
	"smtputf8 0\n"
	"ret 1\n"
	"envid QQ+2B1\n"
	"size 1234\n"
	"rcpt bob@example.com 6 rfc822;bob@example.com\n"
	"rcpt carol@example.com 0 -\n"
	"end\n";

/* Both envelopes hold the same values. */
static void
assert_env_equal(const struct envelope *got, const struct envelope *want)
{
	size_t i;

	assert_true(got->mid == want->mid);
	assert_true(got->icid == want->icid);
	assert_true(got->received == want->received);
	assert_string_equal(got->client_ip, want->client_ip);
	assert_string_equal(got->helo, want->helo);
	assert_string_equal(got->auth_user, want->auth_user);
	assert_string_equal(got->from, want->from);
	assert_int_equal(got->body, want->body);
	assert_int_equal(got->smtputf8, want->smtputf8);
	assert_int_equal(got->ret, want->ret);
	assert_string_equal(got->envid, want->envid);
	assert_true(got->msg_size == want->msg_size);
	assert_int_equal(got->transformed, want->transformed);
	assert_int_equal(got->nrcpts, want->nrcpts);
	for (i = 0; i < want->nrcpts; i++) {
		assert_string_equal(got->rcpts[i].addr, want->rcpts[i].addr);
		assert_int_equal(got->rcpts[i].notify, want->rcpts[i].notify);
		assert_string_equal(got->rcpts[i].orcpt, want->rcpts[i].orcpt);
	}
}

static void
test_decode_fixed(void **state)
{
	struct envelope got_env;
	struct strbuf got_text = STRBUF_INIT;
	char why[128] = "";

	assert_int_equal(envelope_decode(base_text, strlen(base_text),
	    &got_env, why, sizeof(why)), 0);
	assert_true(got_env.mid == 40);
	assert_true(got_env.icid == 12);
	assert_true(got_env.received == 1763880000);
	assert_string_equal(got_env.client_ip, "127.0.0.1");
	assert_string_equal(got_env.helo, "client.test");
	assert_string_equal(got_env.auth_user, "");
	assert_string_equal(got_env.from, "alice@example.com");
	assert_int_equal(got_env.body, SMTP_BODY_8BITMIME);
	assert_int_equal(got_env.smtputf8, 0);
	assert_int_equal(got_env.ret, SMTP_RET_FULL);
	assert_string_equal(got_env.envid, "QQ+2B1");
	assert_true(got_env.msg_size == 1234);
	assert_int_equal(got_env.transformed, 0);
	assert_int_equal(got_env.nrcpts, 2);
	assert_string_equal(got_env.rcpts[0].addr, "bob@example.com");
	assert_int_equal(got_env.rcpts[0].notify,
	    SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	assert_string_equal(got_env.rcpts[0].orcpt, "rfc822;bob@example.com");
	assert_string_equal(got_env.rcpts[1].addr, "carol@example.com");
	assert_int_equal(got_env.rcpts[1].notify, 0);
	assert_string_equal(got_env.rcpts[1].orcpt, "");

	/* The encoding is canonical: it comes back byte for byte. */
	envelope_encode(&got_env, &got_text);
	assert_string_equal(got_text.s, base_text);
	strbuf_free(&got_text);
	envelope_clear(&got_env);
	assert_null(got_env.rcpts);
	assert_int_equal(got_env.nrcpts, 0);
}

/* ---- round trips ------------------------------------------------------ */

struct rt_case {
	const char	*name;
	uint64_t	 mid, icid;
	int64_t		 received;
	const char	*client, *helo, *auth, *from;
	enum smtp_body	 body;
	int		 smtputf8;
	enum smtp_ret	 ret;
	const char	*envid;
	uint64_t	 size;
	const char	*rcpt;		/* with nrcpts > 1: "<i>." + rcpt */
	int		 notify;
	const char	*orcpt;
	size_t		 nrcpts;
	const char	*want_line;	/* in the encoding; NULL = skip */
};

static char long_from[SMTP_ADDR_MAX + 1];
static char long_helo[256];
static char long_client[64];
static char long_envid[101];
static char long_orcpt[SMTP_PATH_MAX + 16];
static char long_rcpt[SMTP_ADDR_MAX + 1];

static const struct rt_case rt_cases[] = {
	{ "plain", 40, 12, 1763880000, "127.0.0.1", "client.test", "",
	    "alice@example.com", SMTP_BODY_8BITMIME, 0, SMTP_RET_FULL, "",
	    1234, "bob@example.com", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	    "rfc822;bob@example.com", 1, "from alice@example.com\n" },
	{ "null sender", 1, 1, 1, "::1", "[IPv6:::1]", "", "",
	    SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "", 0, "postmaster@example.com",
	    SMTP_NOTIFY_NEVER, "", 1, "from -\n" },
	{ "quoted local part with spaces", 2, 3, 4, "192.0.2.1",
	    "client.test", "alice", "\"john doe\"@example.com",
	    SMTP_BODY_7BIT, 0, SMTP_RET_HDRS, "x", 5,
	    "\"a \\\" b\"@example.com", 0, "rfc822;\"a \\\" b\"@example.com", 1,
	    "from \"john%20doe\"@example.com\n" },
	{ "percent signs", 2, 3, 4, "192.0.2.1", "100%", "a%b",
	    "a%b@example.com", SMTP_BODY_7BIT, 0, SMTP_RET_HDRS, "%25",
	    5, "%41@example.com", 0, "%", 1, "from a%25b@example.com\n" },
	{ "UTF-8 octets", 7, 8, 9, "192.0.2.1", "xn--mnchen-3ya.test",
	    "j\xc3\xb6rg", "j\xc3\xb6rg@ex\xc3\xa4mple.com",
	    SMTP_BODY_8BITMIME, 1, SMTP_RET_UNSET, "", 10,
	    "\xe2\x9c\x89@example.com", 0, "utf-8;\xe2\x9c\x89@example.com", 1,
	    "from j%C3%B6rg@ex%C3%A4mple.com\n" },
	{ "\"-\" as a real value", 7, 8, 9, "-", "-", "-", "-",
	    SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "-", 10, "-", 0, "-", 1,
	    "from %2D\n" },
	{ "values starting or ending in '-'", 7, 8, 9, "--", "-a", "a-",
	    "-@example.com", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "--", 10,
	    "a-@example.com", 0, "-x", 1, "helo -a\n" },
	{ "control octets, DEL, space", 7, 8, 9, "a b", "a\tb\x7f\x01",
	    "u\r\nv", "x y@example.com", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET,
	    "e\nf", 10, "r\x1f@example.com", 0, " ", 1,
	    "helo a%09b%7F%01\n" },
	{ "many recipients", 9, 9, 9, "192.0.2.1", "client.test", "",
	    "alice@example.com", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "", 10,
	    "user@example.com", SMTP_NOTIFY_DELAY, "rfc822;x@example.com",
	    1000, "rcpt 999.user@example.com 8 rfc822;x@example.com\n" },
	{ "maximum lengths", 9, 9, 9, long_client, long_helo, long_helo,
	    long_from, SMTP_BODY_BINARYMIME, 1, SMTP_RET_HDRS, long_envid,
	    10, long_rcpt, 15, long_orcpt, 3, NULL },
	{ "maximum numbers", UINT64_MAX, UINT64_MAX, INT64_MAX, "a", "b",
	    "", "c@example.com", SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "",
	    UINT64_MAX, "d@example.com", 0, "", 1,
	    "mid 18446744073709551615\n" },
	{ "zero numbers", 0, 0, 0, "a", "b", "", "c@example.com",
	    SMTP_BODY_UNSET, 0, SMTP_RET_UNSET, "", 0, "d@example.com", 0,
	    "", 1, "received 0\n" },
};

static void
fill(char *buf, size_t size, const char *pattern)
{
	size_t i, n = strlen(pattern);

	for (i = 0; i + 1 < size; i++)
		buf[i] = pattern[i % n];
	buf[size - 1] = '\0';
}

/* Bounded copy that must fit. */
static void
copy(char *dst, size_t size, const char *src)
{
	assert_true((size_t)snprintf(dst, size, "%s", src) < size);
}

static void
build(const struct rt_case *tc, struct envelope *env)
{
	char addr[SMTP_ADDR_MAX + 32];
	size_t i;

	envelope_init(env);
	env->mid = tc->mid;
	env->icid = tc->icid;
	env->received = tc->received;
	copy(env->client_ip, sizeof(env->client_ip), tc->client);
	copy(env->helo, sizeof(env->helo), tc->helo);
	copy(env->auth_user, sizeof(env->auth_user), tc->auth);
	copy(env->from, sizeof(env->from), tc->from);
	env->body = tc->body;
	env->smtputf8 = tc->smtputf8;
	env->ret = tc->ret;
	copy(env->envid, sizeof(env->envid), tc->envid);
	env->msg_size = tc->size;
	for (i = 0; i < tc->nrcpts; i++) {
		if (tc->nrcpts > 1 && strlen(tc->rcpt) < SMTP_ADDR_MAX - 8)
			snprintf(addr, sizeof(addr), "%zu.%s", i, tc->rcpt);
		else
			snprintf(addr, sizeof(addr), "%s", tc->rcpt);
		assert_true(strlen(addr) <= SMTP_ADDR_MAX);
		envelope_add_rcpt(env, addr, tc->notify, tc->orcpt);
	}
	assert_int_equal(env->nrcpts, tc->nrcpts);
}

/* No space, control or non-ASCII octet outside the line ends. */
static void
assert_clean_text(const struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < sb->len; i++) {
		unsigned char c = (unsigned char)sb->s[i];
		assert_true(c == '\n' || (c >= 0x20 && c < 0x7f));
	}
	assert_true(sb->len > 0 && sb->s[sb->len - 1] == '\n');
}

static void
test_round_trip(void **state)
{
	const struct rt_case *tc;
	struct envelope want_env, got_env;
	struct strbuf got_text = STRBUF_INIT, again = STRBUF_INIT;
	char why[128];
	size_t i;

	fill(long_from, sizeof(long_from), "a%\"");
	long_from[SMTP_LOCAL_MAX] = '@';
	fill(long_helo, sizeof(long_helo), "\xc3\xa9%- ");
	fill(long_client, sizeof(long_client), "\x01");
	fill(long_envid, sizeof(long_envid), "+2B");
	fill(long_orcpt, sizeof(long_orcpt), "\xff");
	fill(long_rcpt, sizeof(long_rcpt), "r");
	for (i = 0; i < NELEM(rt_cases); i++) {
		tc = &rt_cases[i];
		build(tc, &want_env);
		strbuf_reset(&got_text);
		envelope_encode(&want_env, &got_text);
		assert_clean_text(&got_text);
		assert_true(strncmp(got_text.s, "postern-envelope 1\n", 19) == 0);
		if (tc->want_line != NULL && strstr(got_text.s,
		    tc->want_line) == NULL)
			fail_msg("%s: no line %s in:\n%s", tc->name,
			    tc->want_line, got_text.s);
		why[0] = '\0';
		if (envelope_decode(got_text.s, got_text.len, &got_env, why,
		    sizeof(why)) != 0)
			fail_msg("%s: decode failed: %s", tc->name, why);
		assert_env_equal(&got_env, &want_env);
		/* Encoding the decoded envelope gives the same text. */
		strbuf_reset(&again);
		envelope_encode(&got_env, &again);
		assert_string_equal(again.s, got_text.s);
		envelope_clear(&got_env);
		envelope_clear(&want_env);
	}
	strbuf_free(&got_text);
	strbuf_free(&again);
}

/* ---- decode errors ---------------------------------------------------- */

/* base_text with the first `find` replaced by `repl`. */
struct bad_case {
	const char	*name;
	const char	*find;
	const char	*repl;
	size_t		 repl_len;	/* 0 = strlen(repl) */
};

static const struct bad_case bad_cases[] = {
	/* missing fields */
	{ "no version line", "postern-envelope 1\n", "", 0 },
	{ "no mid", "mid 40\n", "", 0 },
	{ "no icid", "icid 12\n", "", 0 },
	{ "no received", "received 1763880000\n", "", 0 },
	{ "no client", "client 127.0.0.1\n", "", 0 },
	{ "no helo", "helo client.test\n", "", 0 },
	{ "no auth", "auth -\n", "", 0 },
	{ "no from", "from alice@example.com\n", "", 0 },
	{ "no body", "body 2\n", "", 0 },
	{ "no smtputf8", "smtputf8 0\n", "", 0 },
	{ "no ret", "ret 1\n", "", 0 },
	{ "no envid", "envid QQ+2B1\n", "", 0 },
	{ "no size", "size 1234\n", "", 0 },
	{ "no recipients", "rcpt bob@example.com 6 rfc822;bob@example.com\n"
	    "rcpt carol@example.com 0 -\n", "", 0 },
	{ "no end", "end\n", "", 0 },
	{ "empty value", "helo client.test\n", "helo \n", 0 },
	{ "no value", "helo client.test\n", "helo\n", 0 },
	{ "empty input", base_text, "", 0 },
	{ "empty line", "mid 40\n", "mid 40\n\n", 0 },
	/* duplicates */
	{ "duplicate mid", "mid 40\n", "mid 40\nmid 41\n", 0 },
	{ "duplicate from", "from alice@example.com\n",
	    "from alice@example.com\nfrom mallory@example.com\n", 0 },
	{ "second version line", "mid 40\n", "mid 40\npostern-envelope 1\n", 0 },
	/* unknown keys */
	{ "unknown key", "end\n", "color blue\nend\n", 0 },
	{ "key in upper case", "mid 40\n", "MID 40\n", 0 },
	{ "key with a leading space", "mid 40\n", " mid 40\n", 0 },
	/* version */
	{ "version 2", "postern-envelope 1\n", "postern-envelope 2\n", 0 },
	{ "version 0", "postern-envelope 1\n", "postern-envelope 0\n", 0 },
	{ "version missing", "postern-envelope 1\n", "postern-envelope\n", 0 },
	{ "version not a number", "postern-envelope 1\n",
	    "postern-envelope x\n", 0 },
	{ "version with extra field", "postern-envelope 1\n",
	    "postern-envelope 1 x\n", 0 },
	{ "wrong magic", "postern-envelope 1\n", "postern-envelop 1\n", 0 },
	{ "version not first", "postern-envelope 1\nmid 40\n",
	    "mid 40\npostern-envelope 1\n", 0 },
	/* after end, line ends */
	{ "byte after end", "end\n", "end\nx", 0 },
	{ "empty line after end", "end\n", "end\n\n", 0 },
	{ "field after end", "end\n", "end\nmid 40\n", 0 },
	{ "end twice", "end\n", "end\nend\n", 0 },
	{ "unterminated end", "end\n", "end", 0 },
	{ "end with a value", "end\n", "end 1\n", 0 },
	{ "CRLF line end", "mid 40\n", "mid 40\r\n", 0 },
	/* %XX escapes */
	{ "truncated escape", "helo client.test\n", "helo client%4\n", 0 },
	{ "lone percent", "helo client.test\n", "helo client%\n", 0 },
	{ "non-hex escape", "helo client.test\n", "helo client%zz\n", 0 },
	{ "half hex escape", "helo client.test\n", "helo client%4g\n", 0 },
	{ "escaped NUL", "helo client.test\n", "helo a%00b\n", 0 },
	{ "escape at the very end", "envid QQ+2B1\n", "envid %\n", 0 },
	{ "bad escape in rcpt", "rcpt carol@example.com 0 -\n",
	    "rcpt carol%G0@example.com 0 -\n", 0 },
	{ "bad escape in orcpt", "rcpt carol@example.com 0 -\n",
	    "rcpt carol@example.com 0 rfc822;%\n", 0 },
	/* raw octets that must have been escaped */
	{ "raw control octet", "helo client.test\n", "helo a\x01" "b\n", 0 },
	{ "raw NUL", "helo client.test\n", "helo a\0b\n", 9 },
	{ "raw DEL", "helo client.test\n", "helo a\x7f\n", 0 },
	{ "raw UTF-8", "helo client.test\n", "helo \xc3\xa9\n", 0 },
	{ "tab as separator", "mid 40\n", "mid\t40\n", 0 },
	{ "two spaces", "mid 40\n", "mid  40\n", 0 },
	/* overlong values */
	{ "client of 64 octets", "client 127.0.0.1\n",
	    "client 0123456789012345678901234567890123456789"
	    "012345678901234567890123\n", 0 },
	{ "client of 64 escaped octets", "client 127.0.0.1\n",
	    "client %41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41"
	    "%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41"
	    "%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41"
	    "%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41\n", 0 },
	{ "envid of 101 octets", "envid QQ+2B1\n",
	    "envid 0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"
	    "012345678901234567890\n", 0 },
	/* numbers */
	{ "mid with a letter", "mid 40\n", "mid 4x\n", 0 },
	{ "negative mid", "mid 40\n", "mid -1\n", 0 },
	{ "mid with a sign", "mid 40\n", "mid +1\n", 0 },
	{ "mid over 2^64-1", "mid 40\n", "mid 18446744073709551616\n", 0 },
	{ "mid of 21 digits", "mid 40\n", "mid 000000000000000000001\n", 0 },
	{ "received over 2^63-1", "received 1763880000\n",
	    "received 9223372036854775808\n", 0 },
	{ "received of 19 nines", "received 1763880000\n",
	    "received 9999999999999999999\n", 0 },
	{ "size over 2^64-1", "size 1234\n", "size 99999999999999999999\n", 0 },
	{ "body 4", "body 2\n", "body 4\n", 0 },
	{ "ret 3", "ret 1\n", "ret 3\n", 0 },
	{ "smtputf8 2", "smtputf8 0\n", "smtputf8 2\n", 0 },
	{ "notify 16", "rcpt carol@example.com 0 -\n",
	    "rcpt carol@example.com 16 -\n", 0 },
	{ "notify not a number", "rcpt carol@example.com 0 -\n",
	    "rcpt carol@example.com x -\n", 0 },
	/* field counts */
	{ "mid with two values", "mid 40\n", "mid 40 41\n", 0 },
	{ "rcpt with 3 fields", "rcpt carol@example.com 0 -\n",
	    "rcpt carol@example.com 0\n", 0 },
	{ "rcpt with 5 fields", "rcpt carol@example.com 0 -\n",
	    "rcpt carol@example.com 0 - x\n", 0 },
	{ "rcpt with many fields", "rcpt carol@example.com 0 -\n",
	    "rcpt a b c d e f g h\n", 0 },
	/* the optional field: only "transformed 1", once */
	{ "transformed 0", "size 1234\n", "size 1234\ntransformed 0\n", 0 },
	{ "transformed 2", "size 1234\n", "size 1234\ntransformed 2\n", 0 },
	{ "transformed yes", "size 1234\n", "size 1234\ntransformed yes\n",
	    0 },
	{ "transformed without value", "size 1234\n",
	    "size 1234\ntransformed\n", 0 },
	{ "transformed twice", "size 1234\n",
	    "size 1234\ntransformed 1\ntransformed 1\n", 0 },
	{ "transformed after end", "end\n", "end\ntransformed 1\n", 0 },
	{ "transformed instead of size", "size 1234\n", "transformed 1\n",
	    0 },
};

static void
check_refused(const char *name, const char *text, size_t len)
{
	struct envelope got_env;
	char why[128] = "";

	if (envelope_decode(text, len, &got_env, why, sizeof(why)) != -1)
		fail_msg("%s: decoded", name);
	if (why[0] == '\0')
		fail_msg("%s: no reason", name);
	assert_null(got_env.rcpts);
	assert_int_equal(got_env.nrcpts, 0);
}

static void
test_decode_errors(void **state)
{
	const struct bad_case *tc;
	struct strbuf text = STRBUF_INIT;
	const char *at;
	size_t i, flen, rlen;

	for (i = 0; i < NELEM(bad_cases); i++) {
		tc = &bad_cases[i];
		at = strstr(base_text, tc->find);
		if (at == NULL)
			fail_msg("%s: '%s' not in the base text", tc->name,
			    tc->find);
		flen = strlen(tc->find);
		rlen = tc->repl_len ? tc->repl_len : strlen(tc->repl);
		strbuf_reset(&text);
		strbuf_add(&text, base_text, (size_t)(at - base_text));
		strbuf_add(&text, tc->repl, rlen);
		strbuf_puts(&text, at + flen);
		check_refused(tc->name, text.s ? text.s : "", text.len);
	}
	strbuf_free(&text);
}

/* A rewritten message (transform.h) says so; the field sits after size. */
static void
test_transformed(void **state)
{
	struct strbuf want_text = STRBUF_INIT, got_text = STRBUF_INIT;
	struct envelope got_env;
	const char *at;
	char why[128] = "";

	at = strstr(base_text, "rcpt ");
	strbuf_add(&want_text, base_text, (size_t)(at - base_text));
	strbuf_puts(&want_text, "transformed 1\n");
	strbuf_puts(&want_text, at);
	assert_int_equal(envelope_decode(want_text.s, want_text.len, &got_env,
	    why, sizeof(why)), 0);
	assert_int_equal(got_env.transformed, 1);
	assert_true(got_env.msg_size == 1234);
	assert_int_equal(got_env.nrcpts, 2);
	envelope_encode(&got_env, &got_text);
	assert_string_equal(got_text.s, want_text.s);
	/* Clearing the flag gives back the file format of before. */
	got_env.transformed = 0;
	strbuf_reset(&got_text);
	envelope_encode(&got_env, &got_text);
	assert_string_equal(got_text.s, base_text);
	envelope_clear(&got_env);
	strbuf_free(&want_text);
	strbuf_free(&got_text);
}

/* Every proper prefix of a valid encoding is refused. */
static void
test_decode_truncated(void **state)
{
	size_t len;

	for (len = 0; len < strlen(base_text); len++)
		check_refused("truncated", base_text, len);
}

/* More than ENVELOPE_MAX_RCPTS recipients is refused; the limit is not. */
static void
test_decode_rcpt_limit(void **state)
{
	static const size_t counts[] = { ENVELOPE_MAX_RCPTS,
	    ENVELOPE_MAX_RCPTS + 1 };
	struct strbuf text = STRBUF_INIT;
	struct envelope got_env;
	char why[128];
	size_t i, j;
	const char *rcpts;

	rcpts = strstr(base_text, "rcpt ");
	assert_non_null(rcpts);
	for (i = 0; i < NELEM(counts); i++) {
		strbuf_reset(&text);
		strbuf_add(&text, base_text, (size_t)(rcpts - base_text));
		for (j = 0; j < counts[i]; j++)
			strbuf_printf(&text, "rcpt u%zu@example.com 0 -\n", j);
		strbuf_puts(&text, "end\n");
		if (i == 0) {
			assert_int_equal(envelope_decode(text.s, text.len,
			    &got_env, why, sizeof(why)), 0);
			assert_int_equal(got_env.nrcpts, ENVELOPE_MAX_RCPTS);
			assert_string_equal(got_env.rcpts[9999].addr,
			    "u9999@example.com");
			envelope_clear(&got_env);
		} else
			check_refused("too many recipients", text.s, text.len);
	}
	strbuf_free(&text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_fixed),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_transformed),
		cmocka_unit_test(test_decode_rcpt_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
