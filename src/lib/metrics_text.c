/*
 * metrics_text.c - Prometheus text exposition of the metrics (see
 * metrics_text.h).
 *
 * Public: metrics_text_format, metrics_text_label_value.
 *
 * Every family gets "# HELP" and "# TYPE" once, before its series.
 * Counters end in _total; durations are in seconds, histograms are
 * cumulative with an le="+Inf" bucket equal to _count.  Series of fixed
 * label tables (connection outcomes, AUTH and TLS failure reasons) are
 * always written, zeros included, so rate() works from the first
 * failure on; sparse ones (rejections by status code, TLS sessions by
 * cipher) only once they are non-zero.  Shared label slots that hold the
 * same name (a lost race, see metrics.c) are added up under that name.
 *
 * Threats: label values (destinations come from envelopes, certificate
 * names from the configuration) are escaped; nothing is a format string.
 */
#include <stdarg.h>
#include <string.h>

#include "metrics_text.h"
#include "util.h"

static void
head(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* Append a label value, escaped. */
void
metrics_text_label_value(struct strbuf *sb, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			strbuf_puts(sb, "\\\\");
		else if (*v == '"')
			strbuf_puts(sb, "\\\"");
		else if (*v == '\n')
			strbuf_puts(sb, "\\n");
		else
			strbuf_putc(sb, *v);
	}
}

/* name{k="v",...} value: label pairs up to a NULL key. */
static void
series(struct strbuf *sb, const char *name, const char *value, ...)
{
	const char *k, *v;
	va_list ap;
	int n = 0;

	strbuf_puts(sb, name);
	va_start(ap, value);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		strbuf_printf(sb, "%s%s=\"", n++ ? "," : "{", k);
		metrics_text_label_value(sb, v);
		strbuf_putc(sb, '"');
	}
	va_end(ap);
	strbuf_printf(sb, "%s %s\n", n ? "}" : "", value);
}

static const char *
u64(char *buf, size_t len, uint64_t v)
{
	(void)bsnprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

static const char *
i64(char *buf, size_t len, int64_t v)
{
	(void)bsnprintf(buf, len, "%lld", (long long)v);
	return buf;
}

/* canon[i]: the first slot holding the same name as slot i, or n when
 * slot i is unused. */
static void
canonical(const char *const *names, size_t n, size_t *canon)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		canon[i] = names[i] == NULL || names[i][0] == '\0' ? n : i;
		for (j = 0; j < i && canon[i] == i; j++)
			if (canon[j] == j && strcmp(names[j], names[i]) == 0)
				canon[i] = j;
	}
}

static void
format_info(struct strbuf *sb, const struct metrics_view *v)
{
	char b[32];

	head(sb, "postern_build_info", "gauge", "Postern version (always 1).");
	series(sb, "postern_build_info", "1", "version", v->version, NULL);
	head(sb, "postern_start_time_seconds", "gauge",
	    "Unix time the daemon (its master process) started.");
	series(sb, "postern_start_time_seconds", i64(b, sizeof(b),
	    v->start_time), NULL);
	head(sb, "postern_delivery_paused", "gauge",
	    "1 while outbound delivery is paused (delivery.paused or "
	    "`postern queue pause`).");
	series(sb, "postern_delivery_paused", v->paused ? "1" : "0", NULL);
}

static void
format_connections(struct strbuf *sb, const struct metrics_view *v)
{
	const char *name;
	size_t l, o, n = v->nlisteners;
	char b[32];

	if (n > METRICS_MAX_LISTENERS)
		n = METRICS_MAX_LISTENERS;
	head(sb, "postern_connections_total", "counter", "SMTP connections "
	    "by listener and outcome (accepted, or why refused).");
	for (l = 0; l < n; l++) {
		name = l == METRICS_MAX_LISTENERS - 1 && v->nlisteners >
		    METRICS_MAX_LISTENERS ? METRICS_OTHER : v->listeners[l];
		for (o = 0; o < METRICS_NCONN; o++)
			series(sb, "postern_connections_total", u64(b,
			    sizeof(b), v->c->conn[l][o]), "listener", name,
			    "outcome", metrics_conn_names[o], NULL);
	}
}

static void
format_messages(struct strbuf *sb, const struct metrics_view *v)
{
	size_t s, k;
	char b[32];

	head(sb, "postern_messages_accepted_total", "counter", "Messages "
	    "accepted (250 2.0.0 after the spool commit).");
	series(sb, "postern_messages_accepted_total", u64(b, sizeof(b),
	    v->c->accepted), NULL);
	head(sb, "postern_messages_rejected_total", "counter", "4xx/5xx "
	    "replies to MAIL, RCPT and the message, by stage and enhanced "
	    "status code.");
	for (s = 0; s < METRICS_NSTAGES; s++)
		for (k = 0; k < METRICS_NCODES; k++)
			if (v->c->rejected[s][k] > 0)
				series(sb, "postern_messages_rejected_total",
				    u64(b, sizeof(b), v->c->rejected[s][k]),
				    "stage", metrics_stage_names[s], "status",
				    metrics_code_names[k], NULL);
}

static void
format_auth(struct strbuf *sb, const struct metrics_view *v)
{
	size_t i;
	char b[32];

	head(sb, "postern_auth_successes_total", "counter",
	    "Successful SMTP AUTH by mechanism.");
	for (i = 0; i < METRICS_NMECH; i++)
		series(sb, "postern_auth_successes_total", u64(b, sizeof(b),
		    v->c->auth_ok[i]), "mechanism", metrics_mech_names[i],
		    NULL);
	head(sb, "postern_auth_failures_total", "counter",
	    "Failed SMTP AUTH by reason.");
	for (i = 0; i < METRICS_NAUTH_FAIL; i++)
		series(sb, "postern_auth_failures_total", u64(b, sizeof(b),
		    v->c->auth_fail[i]), "reason", metrics_auth_fail_names[i],
		    NULL);
}

/* Sessions of cipher column c (n: "other") and of the later columns
 * that hold the same name. */
static uint64_t
cipher_sum(const struct metrics_view *v, const size_t *canon, size_t d,
    size_t p, size_t c)
{
	const size_t n = METRICS_MAX_CIPHERS;
	uint64_t sum = v->c->tls_ok[d][p][c];
	size_t o;

	for (o = c + 1; c < n && o < n; o++)
		if (canon[o] == c)
			sum += v->c->tls_ok[d][p][o];
	return sum;
}

static void
format_tls(struct strbuf *sb, const struct metrics_view *v)
{
	size_t d, p, c, canon[METRICS_MAX_CIPHERS], n = METRICS_MAX_CIPHERS;
	uint64_t sum;
	char b[32];

	canonical(v->cipher, n, canon);
	head(sb, "postern_tls_sessions_total", "counter", "TLS sessions "
	    "established, by direction, protocol and cipher.");
	for (d = 0; d < METRICS_NDIR; d++)
		for (p = 0; p < METRICS_NPROTOCOLS; p++)
			for (c = 0; c <= n; c++) {
				if ((c < n && canon[c] != c) ||
				    (sum = cipher_sum(v, canon, d, p, c)) == 0)
					continue;
				series(sb, "postern_tls_sessions_total", u64(b,
				    sizeof(b), sum), "direction",
				    metrics_dir_names[d], "protocol",
				    metrics_protocol_names[p], "cipher", c < n ?
				    v->cipher[c] : METRICS_OTHER, NULL);
			}
	head(sb, "postern_tls_failures_total", "counter", "TLS failures "
	    "(handshake, STARTTLS, certificate) by direction and reason.");
	for (d = 0; d < METRICS_NDIR; d++)
		for (p = 0; p < METRICS_NTLS_FAIL; p++)
			series(sb, "postern_tls_failures_total", u64(b,
			    sizeof(b), v->c->tls_fail[d][p]), "direction",
			    metrics_dir_names[d], "reason",
			    metrics_tls_reason_names[p], NULL);
}

/* Per-destination figures merged under their canonical label. */
struct dest_sums {
	uint64_t			deliveries[METRICS_NDELIVERY];
	struct metrics_queue_row	q;
};

static void
dest_sum(const struct metrics_view *v, const size_t *canon, size_t d,
    struct dest_sums *out)
{
	const size_t n = METRICS_MAX_DESTINATIONS;
	size_t i, o;

	memset(out, 0, sizeof(*out));
	for (i = 0; i <= n; i++) {
		if (i != d && (i == n || d == n || canon[i] != d))
			continue;
		for (o = 0; o < METRICS_NDELIVERY; o++)
			out->deliveries[o] += v->c->deliveries[i][o];
		if (v->queue == NULL)
			continue;
		out->q.active += v->queue[i].active;
		out->q.deferred += v->queue[i].deferred;
		out->q.held += v->queue[i].held;
		if (v->queue[i].oldest_age > out->q.oldest_age)
			out->q.oldest_age = v->queue[i].oldest_age;
	}
}

/* One family, every used destination label and "other" (row n). */
static void
format_dest_family(struct strbuf *sb, const struct metrics_view *v,
    const struct dest_sums *rows, const size_t *canon, int family)
{
	const size_t n = METRICS_MAX_DESTINATIONS;
	const struct dest_sums *s;
	const char *dest;
	char b[32];
	size_t d, o;

	for (d = 0; d <= n; d++) {
		if (d < n && canon[d] != d)
			continue;
		s = &rows[d];
		dest = d < n ? v->dest[d] : METRICS_OTHER;
		if (family == 0)
			for (o = 0; o < METRICS_NDELIVERY; o++)
				series(sb, "postern_deliveries_total", u64(b,
				    sizeof(b), s->deliveries[o]), "destination",
				    dest, "outcome", metrics_delivery_names[o],
				    NULL);
		else if (family == 1) {
			series(sb, "postern_queue_messages", u64(b, sizeof(b),
			    s->q.active), "destination", dest, "state",
			    "active", NULL);
			series(sb, "postern_queue_messages", u64(b, sizeof(b),
			    s->q.deferred), "destination", dest, "state",
			    "deferred", NULL);
			series(sb, "postern_queue_messages", u64(b, sizeof(b),
			    s->q.held), "destination", dest, "state", "held",
			    NULL);
		} else
			series(sb, "postern_queue_oldest_message_age_seconds",
			    i64(b, sizeof(b), s->q.oldest_age), "destination",
			    dest, NULL);
	}
}

static void
format_destinations(struct strbuf *sb, const struct metrics_view *v)
{
	const size_t n = METRICS_MAX_DESTINATIONS;
	struct dest_sums rows[METRICS_MAX_DESTINATIONS + 1];
	size_t canon[METRICS_MAX_DESTINATIONS], d;

	canonical(v->dest, n, canon);
	for (d = 0; d <= n; d++)
		if (d == n || canon[d] == d)
			dest_sum(v, canon, d, &rows[d]);
	head(sb, "postern_deliveries_total", "counter", "Recipient delivery "
	    "attempts by destination (recipient domain) and outcome.");
	format_dest_family(sb, v, rows, canon, 0);
	if (v->queue == NULL)
		return;
	head(sb, "postern_queue_messages", "gauge", "Messages in the queue by "
	    "destination and state (active, deferred, held).");
	format_dest_family(sb, v, rows, canon, 1);
	head(sb, "postern_queue_oldest_message_age_seconds", "gauge", "Age of "
	    "the oldest active or deferred message, by destination (0: "
	    "none).");
	format_dest_family(sb, v, rows, canon, 2);
}

static void
format_hist(struct strbuf *sb, const char *name, const char *help,
    const struct metrics_hist_view *h, const double *le, size_t n)
{
	char bucket[96], b[32], bound[32];
	uint64_t cum = 0;
	size_t i;

	head(sb, name, "histogram", help);
	(void)bsnprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (i = 0; i <= n; i++) {
		cum += h->bucket[i];
		if (i < n)
			(void)bsnprintf(bound, sizeof(bound), "%g", le[i]);
		series(sb, bucket, u64(b, sizeof(b), cum), "le", i < n ?
		    bound : "+Inf", NULL);
	}
	strbuf_printf(sb, "%s_sum %llu.%06llu\n", name,
	    (unsigned long long)(h->sum_us / 1000000),
	    (unsigned long long)(h->sum_us % 1000000));
	strbuf_printf(sb, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void
format_certs(struct strbuf *sb, const struct metrics_view *v)
{
	const struct metrics_cert_row *r;
	char b[32];
	size_t i;

	head(sb, "postern_certificate_expiry_timestamp_seconds", "gauge",
	    "Unix time a certificate expires (notAfter): listener "
	    "certificates and the certificate store.");
	for (i = 0; i < v->ncerts; i++) {
		r = &v->certs[i];
		if (r->listener != NULL && r->listener[0] != '\0')
			series(sb, "postern_certificate_expiry_timestamp_seconds",
			    i64(b, sizeof(b), r->not_after), "source", r->source,
			    "listener", r->listener, "certificate",
			    r->certificate, NULL);
		else
			series(sb, "postern_certificate_expiry_timestamp_seconds",
			    i64(b, sizeof(b), r->not_after), "source", r->source,
			    "certificate", r->certificate, NULL);
	}
}

/* Append every family of the view in the text exposition format. */
void
metrics_text_format(struct strbuf *sb, const struct metrics_view *v)
{
	format_info(sb, v);
	format_connections(sb, v);
	format_messages(sb, v);
	format_auth(sb, v);
	format_tls(sb, v);
	format_destinations(sb, v);
	format_hist(sb, "postern_spool_commit_duration_seconds", "Time from "
	    "the end of a message to its durable commit in the spool (the "
	    "250 waits for it).", &v->c->commit, metrics_commit_le,
	    METRICS_COMMIT_BUCKETS);
	format_hist(sb, "postern_delivery_latency_seconds", "Time from "
	    "acceptance to delivery, per delivered recipient.",
	    &v->c->delivery, metrics_delivery_le, METRICS_DELIVERY_BUCKETS);
	format_certs(sb, v);
}
