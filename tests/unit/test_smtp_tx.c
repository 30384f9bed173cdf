/*
 * test_smtp_tx.c - an outbound transaction checked against the peer's
 * extensions and spelled in SMTP (smtp_tx.h), table-driven: BINARYMIME
 * never; 8-bit data only with 8BITMIME (RFC 6152; BODY=8BITMIME whenever
 * the peer offers it and the data is 8-bit); SMTPUTF8 only when needed
 * and offered (RFC 6531); DSN parameters (RFC 3461) only to a peer
 * offering DSN: RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "envelope.h"
#include "smtp_tx.h"
#include "util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char ASCII[] = "Subject: hi\r\n\r\nhello\r\n";
static const char BODY8[] = "Subject: hi\r\n\r\nh\xc3\xa9llo\r\n";
static const char HDR8[] = "Subject: h\xc3\xa9\r\n\r\nhello\r\n";

#define EXT_ALL	(SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN)

static void
test_peer_checks(void **state)
{
	static const struct {
		enum smtp_body	 body;
		int		 smtputf8;
		const char	*rcpt;
		const char	*data;
		unsigned	 ext;
		int		 want;		/* 0 or -1 */
		const char	*want_status;
		int		 want_8bit, want_utf8;
	} cases[] = {
		{ SMTP_BODY_7BIT, 0, "b@x.test", ASCII, 0, 0, "", 0, 0 },
		{ SMTP_BODY_BINARYMIME, 0, "b@x.test", ASCII, EXT_ALL, -1,
		  "5.6.3", 0, 0 },
		{ SMTP_BODY_8BITMIME, 0, "b@x.test", BODY8, 0, -1, "5.6.3", 0,
		  0 },
		{ SMTP_BODY_8BITMIME, 0, "b@x.test", BODY8,
		  SMTP_EXT_8BITMIME, 0, "", 1, 0 },
		/* declared 8BITMIME but all ASCII: fine anywhere, no BODY= */
		{ SMTP_BODY_8BITMIME, 0, "b@x.test", ASCII, 0, 0, "", 0, 0 },
		/* undeclared 8-bit data: BODY=8BITMIME where offered */
		{ SMTP_BODY_UNSET, 0, "b@x.test", BODY8, SMTP_EXT_8BITMIME, 0,
		  "", 1, 0 },
		{ SMTP_BODY_UNSET, 0, "b@x.test", BODY8, 0, 0, "", 0, 0 },
		/* SMTPUTF8 only when something is non-ASCII */
		{ SMTP_BODY_UNSET, 1, "b@x.test", ASCII, 0, 0, "", 0, 0 },
		{ SMTP_BODY_UNSET, 1, "b\xc3\xbc@x.test", ASCII, 0, -1,
		  "5.6.7", 0, 0 },
		{ SMTP_BODY_UNSET, 1, "b\xc3\xbc@x.test", ASCII,
		  SMTP_EXT_SMTPUTF8, 0, "", 0, 1 },
		{ SMTP_BODY_8BITMIME, 1, "b@x.test", HDR8, EXT_ALL, 0, "", 1,
		  1 },
		{ SMTP_BODY_UNSET, 1, "b@x.test", HDR8, SMTP_EXT_8BITMIME, -1,
		  "5.6.7", 0, 0 },
	};
	struct envelope env;
	struct smtp_tx tx;
	char status[16], why[256];
	size_t i, rid = 0;
	int r;

	for (i = 0; i < NELEM(cases); i++) {
		envelope_init(&env);
		bstrlcpy(env.from, "a@x.test", sizeof(env.from));
		env.body = cases[i].body;
		env.smtputf8 = cases[i].smtputf8;
		envelope_add_rcpt(&env, cases[i].rcpt, 0, "");
		status[0] = why[0] = '\0';
		r = smtp_tx_build(&tx, &env, &rid, 1, cases[i].data,
		    strlen(cases[i].data), cases[i].ext, "mx.x.test", status,
		    sizeof(status), why, sizeof(why));
		if (r != cases[i].want)
			fail_msg("case %zu: got %d (%s)", i, r, why);
		if (r == -1) {
			assert_string_equal(status, cases[i].want_status);
			assert_non_null(strstr(why, "mx.x.test"));
		} else {
			assert_int_equal(tx.ev.body_8bit, cases[i].want_8bit);
			assert_int_equal(tx.ev.smtputf8, cases[i].want_utf8);
			assert_int_equal(tx.ev.nrcpts, 1);
			assert_string_equal(tx.ev.rcpts[0], cases[i].rcpt);
			assert_int_equal(tx.ev.size, strlen(cases[i].data));
			smtp_tx_free(&tx);
		}
		envelope_clear(&env);
	}
}

static void
test_dsn_parameters(void **state)
{
	static const struct {
		enum smtp_ret	 ret;
		const char	*envid;
		int		 notify;
		const char	*orcpt;
		unsigned	 ext;
		const char	*want_mail;	/* NULL: none */
		const char	*want_rcpt;	/* NULL: none */
	} cases[] = {
		{ SMTP_RET_FULL, "QQ+2B1", SMTP_NOTIFY_SUCCESS |
		  SMTP_NOTIFY_FAILURE, "rfc822;b@x.test", SMTP_EXT_DSN,
		  "RET=FULL ENVID=QQ+2B1",
		  "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x.test" },
		{ SMTP_RET_HDRS, "", SMTP_NOTIFY_NEVER, "", SMTP_EXT_DSN,
		  "RET=HDRS", "NOTIFY=NEVER" },
		{ SMTP_RET_UNSET, "E1", SMTP_NOTIFY_DELAY, "", SMTP_EXT_DSN,
		  "ENVID=E1", "NOTIFY=DELAY" },
		{ SMTP_RET_UNSET, "", 0, "rfc822;b@x.test", SMTP_EXT_DSN, NULL,
		  "ORCPT=rfc822;b@x.test" },
		{ SMTP_RET_UNSET, "", 0, "", SMTP_EXT_DSN, NULL, NULL },
		/* a peer without DSN gets none of them */
		{ SMTP_RET_FULL, "E1", SMTP_NOTIFY_FAILURE, "rfc822;b@x.test", 0,
		  NULL, NULL },
	};
	struct envelope env;
	struct smtp_tx tx;
	char status[16], why[256];
	size_t i, rid = 0;

	for (i = 0; i < NELEM(cases); i++) {
		envelope_init(&env);
		bstrlcpy(env.from, "a@x.test", sizeof(env.from));
		env.ret = cases[i].ret;
		bstrlcpy(env.envid, cases[i].envid, sizeof(env.envid));
		envelope_add_rcpt(&env, "b@x.test", cases[i].notify,
		    cases[i].orcpt);
		assert_int_equal(smtp_tx_build(&tx, &env, &rid, 1, ASCII,
		    strlen(ASCII), cases[i].ext, "mx.x.test", status,
		    sizeof(status), why, sizeof(why)), 0);
		if (cases[i].want_mail == NULL)
			assert_null(tx.ev.mail_params);
		else
			assert_string_equal(tx.ev.mail_params,
			    cases[i].want_mail);
		if (cases[i].want_rcpt == NULL)
			assert_null(tx.ev.rcpt_params[0]);
		else
			assert_string_equal(tx.ev.rcpt_params[0],
			    cases[i].want_rcpt);
		smtp_tx_free(&tx);
		envelope_clear(&env);
	}
}

/* Several recipients: in the order given, each with its own parameters. */
static void
test_recipients_in_order(void **state)
{
	static const size_t rids[] = { 2, 0 };
	struct envelope env;
	struct smtp_tx tx;
	char status[16], why[256];

	envelope_init(&env);
	bstrlcpy(env.from, "", sizeof(env.from));
	envelope_add_rcpt(&env, "r0@x.test", SMTP_NOTIFY_NEVER, "");
	envelope_add_rcpt(&env, "r1@x.test", 0, "");
	envelope_add_rcpt(&env, "r2@x.test", 0, "");
	assert_int_equal(smtp_tx_build(&tx, &env, rids, 2, ASCII,
	    strlen(ASCII), SMTP_EXT_DSN, "mx", status, sizeof(status), why,
	    sizeof(why)), 0);
	assert_string_equal(tx.ev.from, "");
	assert_int_equal(tx.ev.nrcpts, 2);
	assert_string_equal(tx.ev.rcpts[0], "r2@x.test");
	assert_string_equal(tx.ev.rcpts[1], "r0@x.test");
	assert_null(tx.ev.rcpt_params[0]);
	assert_string_equal(tx.ev.rcpt_params[1], "NOTIFY=NEVER");
	smtp_tx_free(&tx);
	envelope_clear(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_checks),
		cmocka_unit_test(test_dsn_parameters),
		cmocka_unit_test(test_recipients_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
