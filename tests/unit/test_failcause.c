/*
 * test_failcause.c - the table of failure causes: every row has a name
 * and a fix whose placeholders are all filled; replies (code, enhanced
 * code, text, step) of Postern (postern-log(7)) and of AWS SES, certificate
 * verification results, handshake errors and client results map to the
 * cause whose fix applies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "failcause.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_every_row(void **state)
{
	struct failcause_ctx ctx = { "smtp.example.net", 587, 0,
	    "Example Root CA", "Example_Root_CA", "a@example.org", "alice",
	    "expired 2026-01-01", FC_FOR_SEND };
	struct strbuf sb = STRBUF_INIT;
	int fc, j;

	(void)state;
	for (fc = FC_NONE + 1; fc < FC_COUNT; fc++) {
		strbuf_reset(&sb);
		failcause_fix((enum failcause)fc, &ctx, &sb);
		assert_true(sb.len > 20);
		assert_null(strchr(sb.s, '{'));
		assert_null(strchr(sb.s, '}'));
		assert_null(strchr(sb.s, '\n'));
		assert_string_not_equal(failcause_name((enum failcause)fc), "?");
		for (j = FC_NONE; j < fc; j++)
			assert_string_not_equal(failcause_name(
			    (enum failcause)fc), failcause_name(
			    (enum failcause)j));
	}
	strbuf_reset(&sb);
	failcause_fix(FC_NONE, &ctx, &sb);
	assert_int_equal(sb.len, 0);
	strbuf_free(&sb);
}

struct fix_case {
	enum failcause	 fc;
	struct failcause_ctx ctx;
	const char	*want;		/* substring */
};

#define SEND	FC_FOR_SEND
#define PROBE	FC_FOR_PROBE
#define DELIV	FC_FOR_DELIVERY

static const struct fix_case fixes[] = {
	{ FC_TLS_UNTRUSTED, { "mx.example", 587, 0, "Corp CA", "Corp_CA",
	    NULL, NULL, NULL, SEND },
	    "`postern cert fetch mx.example:587 --starttls --out certs`" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 587, 0, "Corp CA", "Corp_CA",
	    NULL, NULL, NULL, SEND },
	    "`postern trust add certs/Corp_CA.pem --name Corp_CA`" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 465, 1, "Corp CA", "Corp_CA",
	    NULL, NULL, NULL, SEND },
	    "`postern cert fetch mx.example:465 --out certs`" },
	{ FC_TLS_UNTRUSTED, { "::1", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    SEND }, "postern cert fetch [::1]:25 --starttls" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 25, 0, "Corp CA", NULL, NULL,
	    NULL, NULL, SEND }, "issued by \"Corp CA\"" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 25, 0, "Corp CA", NULL, NULL,
	    NULL, NULL, SEND }, "`postern trust add CA.pem --name NAME` with "
	    "CA.pem the certificate of \"Corp CA\"" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 25, 0, "Corp CA", NULL, NULL,
	    NULL, NULL, SEND }, "(or pass --trust FILE with that CA)" },
	/* an issuer not known (delivery): other words, no empty quotes */
	{ FC_TLS_UNTRUSTED, { "mx.example", 25, 0, NULL, NULL, NULL, NULL,
	    NULL, DELIV }, "was issued by a CA that is not in the trust "
	    "store" },
	{ FC_TLS_UNTRUSTED, { "mx.example", 25, 0, NULL, NULL, NULL, NULL,
	    NULL, DELIV }, "with CA.pem the certificate of that CA" },
	{ FC_TLS_MISSING_INTERMEDIATE, { "mx.example", 25, 0, NULL, NULL,
	    NULL, NULL, NULL, DELIV }, "intermediate CA certificate of its "
	    "issuer:" },
	{ FC_TLS_SELF_SIGNED, { "mx.example", 25, 0, NULL, NULL, NULL, NULL,
	    NULL, DELIV }, "a self-signed certificate: if" },
	{ FC_TLS_SELF_SIGNED, { "mx.example", 25, 0, "mx.example",
	    "mx.example", NULL, NULL, NULL, SEND },
	    "`postern trust add certs/mx.example.pem --name mx.example`" },
	{ FC_SENDER_NOT_VERIFIED, { "h", 587, 0, NULL, NULL, "x@y.example",
	    "bob", NULL, SEND },
	    "`postern user modify bob --add-identity x@y.example`" },
	{ FC_SENDER_NOT_VERIFIED, { NULL, 0, 0, NULL, NULL, NULL, NULL,
	    NULL, SEND }, "--add-identity ADDRESS" },
	{ FC_AUTH_REQUIRED, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    SEND }, "SMTP_USER and SMTP_PASSWORD" },
	{ FC_CONN_REFUSED, { "h", 2525, 0, NULL, NULL, NULL, NULL, NULL,
	    SEND }, "nothing listens on h port 2525" },
	{ FC_TLS_DH_TOO_SMALL, { "h", 25, 0, NULL, NULL, NULL, NULL,
	    "1024 bits", SEND }, "(1024 bits)" },
	{ FC_TLS_DH_TOO_SMALL, { "h", 25, 0, NULL, NULL, NULL, NULL,
	    "1024 bits", PROBE }, "a cipher list without DHE" },
	{ FC_TLS_DH_TOO_SMALL, { "h", 25, 0, NULL, NULL, NULL, NULL,
	    "1024 bits", PROBE }, "tls.ciphers without DHE" },
	{ FC_TLS_PROTOCOL, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    SEND }, "(no details)" },
	{ FC_AUTH_FAILED, { "h", 25, 0, NULL, NULL, NULL, "me", NULL,
	    SEND }, "`postern user passwd me`" },
	{ FC_AUTH_FAILED, { "h", 25, 0, NULL, NULL, NULL, "me", NULL,
	    PROBE }, "per region" },
	/* the vocabulary: one row, the words of each reader */
	{ FC_AUTH_REQUIRED, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    PROBE }, "give --user NAME with --password-env VAR" },
	{ FC_AUTH_REQUIRED, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    DELIV }, "auth_user and auth_password_file" },
	{ FC_TLS_EXPIRED, { "h", 25, 0, NULL, NULL, NULL, NULL, "x",
	    SEND }, "--insecure skips" },
	{ FC_CONN_TIMEOUT, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    DELIV }, "smart host" },
	{ FC_TLS_HOST_MISMATCH, { "mx.a", 25, 0, NULL, NULL, NULL, NULL,
	    "it names b.example", PROBE }, "does not name mx.a (it names "
	    "b.example): probe a name it carries" },
	{ FC_TEMPFAIL, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL, DELIV },
	    "Postern retries by itself" },
	{ FC_NO_STARTTLS, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    DELIV }, "must enable STARTTLS" },
	{ FC_STARTTLS_INJECTION, { "h", 25, 0, NULL, NULL, NULL, NULL, NULL,
	    PROBE }, "CVE-2011-0411" },
	{ FC_TLS_OLD_PROTOCOL, { "h", 25, 0, NULL, NULL, NULL, NULL,
	    "TLSv1", PROBE }, "still accepts TLSv1," },
	{ FC_POLICY_DEFER, { "h", 25, 0, NULL, NULL, "x.example", NULL,
	    "tls required-verify", PROBE }, "defer mail for x.example (tls "
	    "required-verify)" },
};


static void
test_fix_text(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(fixes); i++) {
		strbuf_reset(&sb);
		failcause_fix(fixes[i].fc, &fixes[i].ctx, &sb);
		if (strstr(sb.s, fixes[i].want) == NULL)
			fail_msg("case %zu: %s\nwant %s", i, sb.s,
			    fixes[i].want);
	}
	strbuf_reset(&sb);
	failcause_fix(FC_AUTH_REQUIRED, NULL, &sb);
	assert_non_null(strstr(sb.s, "HOST wants"));
	strbuf_free(&sb);
}

/* Every reader gets every row without a placeholder left, and the
 * names come back (the spool keeps causes by name). */
static void
test_readers_and_names(void **state)
{
	struct failcause_ctx ctx = { "h.example", 25, 0, "CA", "CA",
	    "a@b.example", "u", "d", SEND };
	struct strbuf sb = STRBUF_INIT;
	int fc, who;

	(void)state;
	for (who = FC_FOR_SEND; who <= FC_FOR_DELIVERY; who++)
		for (fc = FC_NONE + 1; fc < FC_COUNT; fc++) {
			ctx.who = (enum failcause_for)who;
			strbuf_reset(&sb);
			failcause_fix((enum failcause)fc, &ctx, &sb);
			if (strchr(sb.s, '{') != NULL || strstr(sb.s, "v_"))
				fail_msg("%s (reader %d): %s",
				    failcause_name((enum failcause)fc), who,
				    sb.s);
		}
	for (fc = FC_NONE; fc < FC_COUNT; fc++)
		assert_int_equal(failcause_by_name(failcause_name(
		    (enum failcause)fc)), fc);
	assert_int_equal(failcause_by_name("no-such-cause"), FC_NONE);
	assert_int_equal(failcause_by_name(NULL), FC_NONE);
	strbuf_free(&sb);
}

struct reply_case {
	const char	*step;
	int		 code;
	const char	*enh;
	const char	*text;
	enum failcause	 want;
};

static const struct reply_case replies[] = {
	/* Postern (postern-log(7)) */
	{ "RCPT", 550, "5.7.1", "5.7.1 Relaying denied", FC_RELAY_DENIED },
	{ "MAIL", 530, "5.7.0", "5.7.0 Authentication required",
	    FC_AUTH_REQUIRED },
	{ "MAIL", 530, "5.7.0", "5.7.0 Must issue a STARTTLS command first",
	    FC_TLS_REQUIRED },
	{ "AUTH", 538, "5.7.11", "5.7.11 Encryption required for requested "
	    "authentication mechanism", FC_TLS_REQUIRED },
	{ "AUTH", 535, "5.7.8", "5.7.8 Authentication credentials invalid",
	    FC_AUTH_FAILED },
	{ "end of data", 554, "5.7.1", "5.7.1 Message rejected: Email "
	    "address is not verified. The following identities failed the "
	    "check: a@b.example", FC_SENDER_NOT_VERIFIED },
	{ "end of data", 552, "5.3.4", "5.3.4 Message size exceeds fixed "
	    "maximum message size", FC_SIZE },
	{ "RCPT", 452, "4.5.3", "4.5.3 Too many recipients",
	    FC_TOO_MANY_RCPTS },
	{ "greeting", 554, "5.7.1", "5.7.1 Access denied", FC_ACCESS_DENIED },
	{ "greeting", 421, "4.7.0", "4.7.0 Too many connections",
	    FC_TOO_MANY_CONNECTIONS },
	{ "MAIL", 421, "4.3.2", "4.3.2 mx Service shutting down, try again "
	    "later", FC_SHUTDOWN },
	{ "AUTH", 454, "4.7.0", "4.7.0 Temporary authentication failure",
	    FC_AUTH_TEMP },
	{ "end of data", 454, "4.7.0", "4.7.0 Throttling failure: Maximum "
	    "sending rate exceeded.", FC_THROTTLED },
	{ "end of data", 554, "5.7.0", "5.7.0 Throttling failure: Daily "
	    "message quota exceeded.", FC_THROTTLED },
	{ "STARTTLS", 454, "4.7.0", "4.7.0 TLS not available",
	    FC_STARTTLS_454 },
	{ "STARTTLS", 502, "5.5.1", "5.5.1 Error: STARTTLS not available",
	    FC_STARTTLS_REFUSED },
	{ "AUTH", 504, "5.5.4", "5.5.4 Unrecognized authentication type",
	    FC_AUTH_NO_MECH },
	{ "RCPT", 550, "5.1.1", "5.1.1 <x@y>: Recipient address rejected",
	    FC_RCPT_UNKNOWN },
	/* AWS SES */
	{ "MAIL", 530, "", "Authentication required", FC_AUTH_REQUIRED },
	{ "AUTH", 535, "", "Authentication Credentials Invalid",
	    FC_AUTH_FAILED },
	{ "end of data", 554, "", "Message rejected: Email address is not "
	    "verified. The following identities failed the check in region "
	    "US-EAST-1: x@y", FC_SENDER_NOT_VERIFIED },
	/* others */
	{ "RCPT", 554, "5.7.1", "5.7.1 <x@y>: Relay access denied",
	    FC_RELAY_DENIED },
	{ "RCPT", 450, "4.2.0", "4.2.0 greylisted", FC_TEMPFAIL },
	{ "DATA", 554, "5.6.0", "5.6.0 Message rejected: Missing required "
	    "header 'From'", FC_REJECTED },
	{ "MAIL", 250, "2.1.0", "2.1.0 Ok", FC_NONE },
	{ NULL, 550, NULL, NULL, FC_REJECTED },
};

static void
test_from_reply(void **state)
{
	size_t i;
	enum failcause got;

	(void)state;
	for (i = 0; i < NELEM(replies); i++) {
		got = failcause_from_reply(replies[i].step, replies[i].code,
		    replies[i].enh, replies[i].text);
		if (got != replies[i].want)
			fail_msg("case %zu (%d %s): got %s want %s", i,
			    replies[i].code, replies[i].text ?
			    replies[i].text : "", failcause_name(got),
			    failcause_name(replies[i].want));
	}
}

static void
test_from_verify(void **state)
{
	static const struct { long vr; enum failcause want; } c[] = {
		{ X509_V_OK, FC_NONE },
		{ X509_V_ERR_CERT_HAS_EXPIRED, FC_TLS_EXPIRED },
		{ X509_V_ERR_CERT_NOT_YET_VALID, FC_TLS_NOT_YET_VALID },
		{ X509_V_ERR_HOSTNAME_MISMATCH, FC_TLS_HOST_MISMATCH },
		{ X509_V_ERR_IP_ADDRESS_MISMATCH, FC_TLS_HOST_MISMATCH },
		{ X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, FC_TLS_SELF_SIGNED },
		{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
		    FC_TLS_UNTRUSTED },
		{ X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
		    FC_TLS_UNTRUSTED },
		{ X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, FC_TLS_UNTRUSTED },
		{ X509_V_ERR_CERT_SIGNATURE_FAILURE, FC_TLS_HANDSHAKE },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++)
		assert_int_equal(failcause_from_verify(c[i].vr), c[i].want);
}

static void
test_from_tls_error(void **state)
{
	static const struct {
		int reason, implicit;
		enum failcause want;
	} c[] = {
		{ SSL_R_DH_KEY_TOO_SMALL, 0, FC_TLS_DH_TOO_SMALL },
		{ SSL_R_EE_KEY_TOO_SMALL, 0, FC_TLS_WEAK_KEY },
		{ SSL_R_CA_MD_TOO_WEAK, 1, FC_TLS_SHA1 },
		{ SSL_R_NO_SHARED_CIPHER, 0, FC_TLS_PROTOCOL },
		{ SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, 0, FC_TLS_PROTOCOL },
		{ SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE, 1, FC_TLS_PROTOCOL },
		{ SSL_R_WRONG_VERSION_NUMBER, 1, FC_TLS_NOT_TLS },
		{ SSL_R_WRONG_VERSION_NUMBER, 0, FC_TLS_HANDSHAKE },
		{ SSL_R_CERTIFICATE_VERIFY_FAILED, 0, FC_TLS_HANDSHAKE },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(c); i++)
		assert_int_equal(failcause_from_tls_error(ERR_PACK(ERR_LIB_SSL,
		    0, c[i].reason), c[i].implicit), c[i].want);
	assert_int_equal(failcause_from_tls_error(0, 0), FC_TLS_HANDSHAKE);
}

static void
test_from_result(void **state)
{
	char *l535[] = { (char *)"5.7.8 Authentication credentials invalid" };
	struct smtp_reply rep = { 535, "5.7.8", 1, l535 };
	struct smtp_client_result r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.err = SMTP_CLIENT_ECONNREFUSED;
	r.step = "connect";
	assert_int_equal(failcause_from_result(&r, 0), FC_CONN_REFUSED);
	r.err = SMTP_CLIENT_ECONNECT;	/* connect(2) failed: which way */
	r.sys_errno = ETIMEDOUT;
	assert_int_equal(failcause_from_result(&r, 0), FC_CONN_TIMEOUT);
	r.sys_errno = ENETUNREACH;
	assert_int_equal(failcause_from_result(&r, 0), FC_NET_UNREACHABLE);
	r.sys_errno = EHOSTUNREACH;
	assert_int_equal(failcause_from_result(&r, 0), FC_NET_UNREACHABLE);
	r.sys_errno = 0;
	r.err = SMTP_CLIENT_ETIMEOUT;
	assert_int_equal(failcause_from_result(&r, 0), FC_CONN_TIMEOUT);
	r.step = "greeting";
	assert_int_equal(failcause_from_result(&r, 0), FC_NO_BANNER);
	r.step = "TLS handshake";
	assert_int_equal(failcause_from_result(&r, 1), FC_TLS_NOT_TLS);
	r.err = SMTP_CLIENT_ETLS;
	r.tls_error = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_NO_SHARED_CIPHER);
	assert_int_equal(failcause_from_result(&r, 0), FC_TLS_PROTOCOL);
	r.err = SMTP_CLIENT_EPROTO;
	assert_int_equal(failcause_from_result(&r, 0), FC_NOT_SMTP);
	r.err = SMTP_CLIENT_ECLOSED;
	assert_int_equal(failcause_from_result(&r, 0), FC_CLOSED);
	r.err = SMTP_CLIENT_EREPLY;
	r.step = "AUTH";
	r.reply = &rep;
	assert_int_equal(failcause_from_result(&r, 0), FC_AUTH_FAILED);
	r.reply = NULL;
	assert_int_equal(failcause_from_result(&r, 0), FC_REJECTED);
	r.err = SMTP_CLIENT_OK;
	assert_int_equal(failcause_from_result(&r, 0), FC_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_row),
		cmocka_unit_test(test_fix_text),
		cmocka_unit_test(test_readers_and_names),
		cmocka_unit_test(test_from_reply),
		cmocka_unit_test(test_from_verify),
		cmocka_unit_test(test_from_tls_error),
		cmocka_unit_test(test_from_result),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
