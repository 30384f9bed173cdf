/*
 * test_metrics.c - the shared counters and the Prometheus text:
 * classification tables (status codes, TLS protocols and failure
 * reasons, histogram buckets), counting off until a slot is set, sums
 * over slabs including one written by a process that has exited (a
 * worker's counts outlive it), destination labels folded into "other"
 * past the cap, and the formatter: HELP/TYPE once per family, fixed
 * tables with zeros, sparse ones without, cumulative histograms, escaped
 * label values, duplicate label slots merged, no series twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "metrics.h"
#include "metrics_text.h"

static size_t
code(const char *name)
{
	size_t i;

	for (i = 0; i < METRICS_NCODES; i++)
		if (strcmp(metrics_code_names[i], name) == 0)
			return i;
	fail_msg("no code %s", name);
	return 0;
}

static void
test_code_index(void **state)
{
	static const struct {
		const char *reply, *want;
	} cases[] = {
		{ "550 5.7.1 Relaying denied", "5.7.1" },
		{ "538 5.7.11 Encryption required for requested authentication "
		  "mechanism", "5.7.11" },
		{ "452 4.5.3 Too many recipients", "4.5.3" },
		{ "421-4.7.0 mx Error: too many errors", "4.7.0" },
		{ "552 5.3.4 Message size exceeds fixed maximum message size",
		  "5.3.4" },
		{ "554 5.9.9 something new", "other" },
		{ "250 2.0.0 Ok", "other" },
		{ "550 Relaying denied", "other" },
		{ "55", "other" },
		{ "", "other" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(metrics_code_names[metrics_code_index(
		    cases[i].reply)], cases[i].want);
}

static void
test_protocol_and_tls_reason(void **state)
{
	static const struct {
		const char *reason, *want;
	} cases[] = {
		{ "no shared cipher", "no_shared_cipher" },
		{ "unsupported protocol", "unsupported_protocol" },
		{ "handshake timeout", "timeout" },
		{ "connection closed during the handshake", "closed" },
		{ "not a TLS handshake (plaintext sent to an implicit-TLS "
		  "port?)", "not_tls" },
		{ "STARTTLS not offered by mx.example", "starttls_not_offered" },
		{ "STARTTLS refused by mx.example: 454 4.7.0 TLS not "
		  "available", "starttls_refused" },
		{ "certificate of mx.example not verified: certificate has "
		  "expired", "certificate_not_verified" },
		{ "TLS with mx.example failed after its 220 to STARTTLS "
		  "(possible active attack; not sent in clear): TLS handshake "
		  "with mx.example failed: no shared cipher", "after_starttls" },
		{ "out of resources (file descriptors or memory)", "resources" },
		{ "Connection reset by peer", "closed" },
		{ "wrong curve", "other" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(metrics_tls_reason_names[
		    metrics_tls_reason_index(cases[i].reason)], cases[i].want);
	assert_string_equal(metrics_tls_reason_names[
	    metrics_tls_reason_index(NULL)], "other");
	assert_string_equal(metrics_protocol_names[metrics_protocol_index(
	    "TLSv1.3")], "TLSv1.3");
	assert_string_equal(metrics_protocol_names[metrics_protocol_index(
	    "TLSv1.2")], "TLSv1.2");
	assert_string_equal(metrics_protocol_names[metrics_protocol_index(
	    "SSLv3")], "other");
	assert_string_equal(metrics_protocol_names[metrics_protocol_index(
	    NULL)], "other");
}

static void
test_bucket(void **state)
{
	static const double le[] = { 0.1, 1, 10 };

	assert_int_equal(metrics_bucket(le, 3, 0), 0);
	assert_int_equal(metrics_bucket(le, 3, 0.1), 0);	/* le is <= */
	assert_int_equal(metrics_bucket(le, 3, 0.11), 1);
	assert_int_equal(metrics_bucket(le, 3, 10), 2);
	assert_int_equal(metrics_bucket(le, 3, 10.5), 3);	/* +Inf */
}

/* One shared region for the rest of the file (metrics_init once, as
 * serve.c does). */
static int
group_setup(void **state)
{
	return metrics_init(2);
}

static void
test_counts_sum_over_slabs_and_outlive_a_process(void **state)
{
	struct conf c;
	struct conf_listener ls[2];
	struct metrics_counts got;
	pid_t pid;
	int st;

	memset(&c, 0, sizeof(c));
	memset(ls, 0, sizeof(ls));
	ls[0].name = (char *)"inbound";
	ls[1].name = (char *)"submission";
	c.listeners = ls;
	c.nlisteners = 2;
	/* before a slot is set nothing counts (the master, no metrics) */
	metrics_message_accepted();
	assert_int_equal(metrics_snapshot(&got), 0);
	assert_int_equal(got.accepted, 0);
	assert_false(metrics_enabled());
	/* worker 1 counts in a child that then exits, as a killed worker */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		metrics_set_slot(METRICS_SLOT_WORKER(1), &c);
		metrics_connection(&ls[1], METRICS_CONN_ACCEPTED);
		metrics_message_accepted();
		metrics_message_rejected(METRICS_STAGE_RCPT,
		    "550 5.7.1 Relaying denied");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	metrics_set_slot(METRICS_SLOT_WORKER(0), &c);
	assert_true(metrics_enabled());
	metrics_connection(&ls[0], METRICS_CONN_ACCEPTED);
	metrics_connection(&ls[1], METRICS_CONN_ACCEPTED);
	metrics_connection(&ls[0], METRICS_CONN_TCPREFUSE);
	metrics_message_accepted();
	metrics_auth_success("LOGIN");
	metrics_auth_failure(METRICS_AUTH_INVALID_CREDENTIALS);
	metrics_observe_commit(0.003);
	metrics_observe_commit(20);
	assert_int_equal(metrics_snapshot(&got), 0);
	assert_int_equal(got.accepted, 2);
	assert_int_equal(got.conn[0][METRICS_CONN_ACCEPTED], 1);
	assert_int_equal(got.conn[1][METRICS_CONN_ACCEPTED], 2);
	assert_int_equal(got.conn[0][METRICS_CONN_TCPREFUSE], 1);
	assert_int_equal(got.rejected[METRICS_STAGE_RCPT][code("5.7.1")], 1);
	assert_int_equal(got.auth_ok[METRICS_MECH_LOGIN], 1);
	assert_int_equal(got.auth_fail[METRICS_AUTH_INVALID_CREDENTIALS], 1);
	assert_int_equal(got.commit.count, 2);
	assert_int_equal(got.commit.bucket[2], 1);	/* <= 0.005 */
	assert_int_equal(got.commit.bucket[METRICS_COMMIT_BUCKETS], 1);
	assert_int_equal(got.commit.sum_us, 20003000);
}

static void
test_destinations_fold_into_other_past_the_cap(void **state)
{
	struct metrics_counts got;
	char name[64];
	size_t i;

	for (i = 0; i < METRICS_MAX_DESTINATIONS + 10; i++) {
		snprintf(name, sizeof(name), "d%zu.example", i);
		metrics_delivery(name, METRICS_DELIVERED);
	}
	metrics_delivery("d3.example", METRICS_DEFERRED);
	assert_int_equal(metrics_snapshot(&got), 0);
	for (i = 0; i < METRICS_MAX_DESTINATIONS; i++) {
		snprintf(name, sizeof(name), "d%zu.example", i);
		assert_string_equal(metrics_destination_name(i), name);
		assert_int_equal(got.deliveries[i][METRICS_DELIVERED], 1);
	}
	assert_int_equal(got.deliveries[3][METRICS_DEFERRED], 1);
	/* the ten after the cap share "other" */
	assert_int_equal(got.deliveries[METRICS_MAX_DESTINATIONS]
	    [METRICS_DELIVERED], 10);
	assert_int_equal(metrics_destination_label("d7.example"), 7);
	assert_int_equal(metrics_destination_label("new.example"),
	    METRICS_MAX_DESTINATIONS);
}

static void
test_tls_cipher_labels(void **state)
{
	struct metrics_counts got;

	metrics_tls_session(METRICS_INBOUND, "TLSv1.3",
	    "TLS_AES_256_GCM_SHA384");
	metrics_tls_session(METRICS_OUTBOUND, "TLSv1.2",
	    "ECDHE-RSA-AES256-GCM-SHA384");
	metrics_tls_session(METRICS_INBOUND, "TLSv1.3",
	    "TLS_AES_256_GCM_SHA384");
	metrics_tls_failure(METRICS_OUTBOUND, "STARTTLS not offered by x");
	assert_int_equal(metrics_snapshot(&got), 0);
	assert_string_equal(metrics_cipher_name(0), "TLS_AES_256_GCM_SHA384");
	assert_string_equal(metrics_cipher_name(1),
	    "ECDHE-RSA-AES256-GCM-SHA384");
	assert_int_equal(got.tls_ok[METRICS_INBOUND][3][0], 2);
	assert_int_equal(got.tls_ok[METRICS_OUTBOUND][2][1], 1);
	assert_int_equal(got.tls_fail[METRICS_OUTBOUND][0], 1);
}

/* ------------------------------------------------------------ formatter */

static int
count_lines(const char *text, const char *prefix)
{
	const char *p = text;
	int n = 0;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return n;
}

/* Every series (name and labels) appears once; every family has one
 * HELP and one TYPE line before its first series. */
static void
assert_well_formed(const char *text)
{
	char *copy = strdup(text), *line, *save = NULL, *sp;
	char *seen[4096];
	size_t n = 0, i;

	for (line = strtok_r(copy, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		sp = strrchr(line, ' ');
		assert_non_null(sp);
		*sp = '\0';
		for (i = 0; i < n; i++)
			if (strcmp(seen[i], line) == 0)
				fail_msg("series twice: %s", line);
		assert_true(n < 4096);
		seen[n++] = line;
	}
	free(copy);
	assert_int_equal(count_lines(text, "# TYPE "), count_lines(text,
	    "# HELP "));
}

/* An empty view on counts c: no labels, no queue, no certificates. */
static void
view_init(struct metrics_view *v, const struct metrics_counts *c)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < METRICS_MAX_CIPHERS; i++)
		v->cipher[i] = "";
	for (i = 0; i < METRICS_MAX_DESTINATIONS; i++)
		v->dest[i] = "";
	v->c = c;
}

/* What test_format's view must give, line by line. */
static const char *const want_lines[] = {
	"# TYPE postern_connections_total counter\n",
	"postern_build_info{version=\"9.9\"} 1\n",
	"postern_connections_total{listener=\"sub\\\"mission\",outcome="
	    "\"max_connections_per_client\"} 4\n",
	/* fixed tables: zeros too */
	"postern_connections_total{listener=\"inbound\",outcome=\"accepted\"}"
	    " 0\n",
	"postern_auth_failures_total{reason=\"blocked\"} 0\n",
	"postern_messages_accepted_total 7\n",
	"postern_messages_rejected_total{stage=\"rcpt\",status=\"5.7.1\"} "
	    "3\n",
	/* one name in two slots: one series, the sum */
	"postern_tls_sessions_total{direction=\"inbound\",protocol=\"TLSv1.3\""
	    ",cipher=\"TLS_AES_128_GCM_SHA256\"} 7\n",
	/* escaped: quote, backslash, newline */
	"postern_deliveries_total{destination=\"evil\\\"\\\\\\nexample\","
	    "outcome=\"deferred\"} 1\n",
	"postern_deliveries_total{destination=\"other\",outcome=\"delivered\"} "
	    "6\n",
	"postern_queue_messages{destination=\"other\",state=\"held\"} 2\n",
	"postern_queue_oldest_message_age_seconds{destination=\"evil\\\"\\\\"
	    "\\nexample\"} 42\n",
	/* cumulative buckets; +Inf = count */
	"postern_spool_commit_duration_seconds_bucket{le=\"0.001\"} 1\n",
	"postern_spool_commit_duration_seconds_bucket{le=\"0.025\"} 3\n",
	"postern_spool_commit_duration_seconds_bucket{le=\"+Inf\"} 4\n",
	"postern_spool_commit_duration_seconds_sum 12.500000\n",
	"postern_spool_commit_duration_seconds_count 4\n",
	"postern_certificate_expiry_timestamp_seconds{source=\"listener\","
	    "listener=\"inbound\",certificate=\"default\"} 1800000000\n",
	"postern_certificate_expiry_timestamp_seconds{source=\"store\","
	    "certificate=\"default\"} 1800000000\n",
};

static void
test_format(void **state)
{
	static struct metrics_counts c;
	static struct metrics_queue_row q[METRICS_MAX_DESTINATIONS + 1];
	static const char *const listeners[] = { "inbound", "sub\"mission" };
	static const struct metrics_cert_row certs[] = {
		{ "listener", "inbound", "default", 1800000000 },
		{ "store", "", "default", 1800000000 },
	};
	struct metrics_view v;
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	view_init(&v, &c);
	v.version = "9.9";
	v.start_time = 1700000000;
	v.listeners = listeners;
	v.nlisteners = 2;
	c.conn[1][METRICS_CONN_MAX_PER_CLIENT] = 4;
	c.accepted = 7;
	c.rejected[METRICS_STAGE_RCPT][code("5.7.1")] = 3;
	/* a name a race put in two slots: one series, the sum */
	v.cipher[0] = "TLS_AES_128_GCM_SHA256";
	v.cipher[2] = "TLS_AES_128_GCM_SHA256";
	c.tls_ok[METRICS_INBOUND][3][0] = 2;
	c.tls_ok[METRICS_INBOUND][3][2] = 5;
	v.dest[0] = "evil\"\\\nexample";
	c.deliveries[0][METRICS_DEFERRED] = 1;
	c.deliveries[METRICS_MAX_DESTINATIONS][METRICS_DELIVERED] = 6;
	q[0].deferred = 1;
	q[0].oldest_age = 42;
	q[METRICS_MAX_DESTINATIONS].held = 2;
	v.queue = q;
	c.commit.bucket[0] = 1;
	c.commit.bucket[4] = 2;
	c.commit.bucket[METRICS_COMMIT_BUCKETS] = 1;
	c.commit.count = 4;
	c.commit.sum_us = 12500000;
	v.certs = certs;
	v.ncerts = 2;
	metrics_text_format(&sb, &v);
	assert_well_formed(sb.s);
	for (i = 0; i < sizeof(want_lines) / sizeof(want_lines[0]); i++)
		if (strstr(sb.s, want_lines[i]) == NULL)
			fail_msg("no line %s in:\n%s", want_lines[i], sb.s);
	/* sparse families: no zeros */
	assert_int_equal(count_lines(sb.s, "postern_messages_rejected_total{"),
	    1);
	assert_int_equal(count_lines(sb.s, "postern_tls_sessions_total{"), 1);
	strbuf_free(&sb);
}

static void
test_format_without_queue(void **state)
{
	static struct metrics_counts c;
	struct metrics_view v;
	struct strbuf sb = STRBUF_INIT;

	view_init(&v, &c);
	v.version = "1";
	metrics_text_format(&sb, &v);
	assert_well_formed(sb.s);
	/* a failed spool scan: no queue family at all, never zeros */
	assert_null(strstr(sb.s, "postern_queue_messages"));
	assert_non_null(strstr(sb.s, "postern_deliveries_total{destination="
	    "\"other\",outcome=\"bounced\"} 0\n"));
	strbuf_free(&sb);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_code_index),
		cmocka_unit_test(test_protocol_and_tls_reason),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_without_queue),
	};
	const struct CMUnitTest shared[] = {
		cmocka_unit_test(test_counts_sum_over_slabs_and_outlive_a_process),
		cmocka_unit_test(test_destinations_fold_into_other_past_the_cap),
		cmocka_unit_test(test_tls_cipher_labels),
	};
	int r;

	r = cmocka_run_group_tests_name("pure", pure, NULL, NULL);
	return r + cmocka_run_group_tests_name("shared", shared, group_setup,
	    NULL);
}
