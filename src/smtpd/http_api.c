/*
 * http_api.c - the requests of the HTTPS injection API (see http_api.h,
 * docs/http-api.md).
 *
 * A request runs as explicit steps: route (method and path), credentials
 * (Authorization: Basic or Bearer, the SMTP users of `postern user`,
 * checked by auth_check.c on its helper thread, the brute-force counters
 * of throttle.c), the message (message/rfc822 as sent, or built from
 * JSON by the MIME builder of `postern send`; msg_prep.c normalises it
 * and finds the envelope), the checks of authenticated SMTP in the same
 * order and with the same replies (size 552, recipients 452, identity
 * 554 5.7.1 of identity.c, local recipients, quota 454/554, spool room
 * 452), then inject.c, whose callback answers 201 only once the message
 * is durable.  Every refusal is JSON: the HTTP status plus the SMTP reply
 * that would have been given ("reply", "code", "enhanced", "text").
 *
 * Ownership: a struct http_req lives from the request until its reply;
 * if the connection goes first (http_api_conn_gone) the request is
 * orphaned: its commit still completes, nothing is sent.
 * Threats: every header, parameter and body is untrusted; the body size
 * is capped by evhttp (http_conn.c) and again by the policy; passwords
 * are wiped and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth_check.h"
#include "base64.h"
#include "deliver_local.h"
#include "http_api.h"
#include "http_conn.h"
#include "http_json.h"
#include "http_state.h"
#include "identity.h"
#include "inject.h"
#include "log.h"
#include "msg_build.h"
#include "msg_prep.h"
#include "route.h"
#include "smtp_proto.h"
#include "spool.h"
#include "strbuf.h"
#include "throttle.h"
#include "userdb.h"
#include "util.h"

#define HTTP_PASS_MAX	1024
#define HTTP_PATH_LOG	200

enum http_route { ROUTE_NONE, ROUTE_POST, ROUTE_GET };

struct http_req {
	struct evhttp_request	*req;
	struct http_conn	*c;		/* NULL: connection gone */
	enum http_route		 route;
	uint64_t		 get_mid;
	char			 method[8];
	char			 path[HTTP_PATH_LOG + 1];
	char			 user[USERDB_NAME_MAX + 1];
	const char		*mech;		/* "Basic" / "Bearer" */
	unsigned char		 digest[32];	/* of the Authorization value */
	struct auth_check_req	*check;
	struct msg_prep		 prep;
	int			 prep_used;
	uint64_t		 mid;
	struct http_req		*next;		/* on its connection */
};

static struct event_base	*abase;
static const struct conf	*aconf;
static struct spool		*aspool;
static struct auth_check	*aauth;

/* Once per worker (http_api.h). */
int
http_api_init(struct event_base *base, const struct conf *conf,
    struct spool *sp)
{
	abase = base;
	aconf = conf;
	aspool = sp;
	if (aauth == NULL && (aauth = auth_check_new(base, conf->data_dir)) ==
	    NULL)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ replies */

static void
req_unlink(struct http_req *r)
{
	struct http_req **pp;

	if (r->c == NULL)
		return;
	for (pp = &r->c->reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->c = NULL;
}

static void
req_free(struct http_req *r)
{
	req_unlink(r);
	auth_check_cancel(r->check);
	if (r->prep_used)
		msg_prep_free(&r->prep);
	free(r);
	http_conn_request_done();
}

/* The access line: "ICID 12 HTTP POST /v1/messages 201 MID 40". */
static void
log_access(const struct http_req *r, int status, const char *what)
{
	char icid[32], code[8];

	if (r->c == NULL)
		return;
	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)r->c->icid);
	snprintf(code, sizeof(code), "%d", status);
	if (what[0] == '\0')
		mlog(LOG_LVL_INFO, "http", "ICID {icid} HTTP {method} {path} "
		    "{status}", "icid", icid, "method", r->method, "path",
		    r->path, "status", code, NULL);
	else
		mlog(LOG_LVL_INFO, "http", "ICID {icid} HTTP {method} {path} "
		    "{status} {what}", "icid", icid, "method", r->method,
		    "path", r->path, "status", code, "what", what, NULL);
}

/* Send `body` (JSON) with `status`; frees the request. */
static void
reply_json(struct http_req *r, int status, const char *reason,
    struct strbuf *body, int close_after)
{
	struct evkeyvalq *h;
	struct evbuffer *b;

	if (r->c != NULL) {
		h = evhttp_request_get_output_headers(r->req);
		evhttp_add_header(h, "Content-Type", "application/json");
		if (close_after)
			evhttp_add_header(h, "Connection", "close");
		b = evbuffer_new();
		if (b == NULL)
			fatalx("out of memory for an HTTP reply");
		evbuffer_add(b, body->s, body->len);
		evbuffer_add(b, "\n", 1);
		evhttp_send_reply(r->req, status, reason, b);
		evbuffer_free(b);
	}
	req_free(r);
}

/* An SMTP reply line as JSON: reply, code, enhanced, text. */
static void
error_body(const char *line, struct strbuf *out)
{
	const char *p = line;
	size_t elen = 0;
	int code = atoi(line);

	if (strlen(p) > 4)
		p += 4;
	while (p[elen] && p[elen] != ' ')
		elen++;
	strbuf_puts(out, "{\"reply\":");
	strbuf_json_str(out, line, strlen(line));
	strbuf_printf(out, ",\"code\":%d,\"enhanced\":", code);
	strbuf_json_str(out, p, elen);
	strbuf_puts(out, ",\"text\":");
	p += elen;
	while (*p == ' ')
		p++;
	strbuf_json_str(out, p, strlen(p));
	strbuf_putc(out, '}');
}

static const char *
status_reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	default: return "Error";
	}
}

/* Refuse with `status` and the SMTP reply `line`; frees the request. */
static void
reply_error(struct http_req *r, int status, const char *line)
{
	struct strbuf body = STRBUF_INIT;
	int close_after = status == 429 || status == 503;

	error_body(line, &body);
	log_access(r, status, line);
	if (status == 401 && r->c != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "WWW-Authenticate", "Basic realm=\"postern\"");
	if (status == 429 && r->c != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Retry-After", "60");
	reply_json(r, status, status_reason(status), &body, close_after);
	strbuf_free(&body);
}

/* ------------------------------------------------------------- routing */

/* POST /v1/messages, GET /v1/messages/<MID>; else 404 or 405. */
static int
route_request(struct http_req *r)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(r->req);
	char *end;

	bstrlcpy(r->method, cmd == EVHTTP_REQ_POST ? "POST" : "GET",
	    sizeof(r->method));
	bstrlcpy(r->path, path ? path : "?", sizeof(r->path));
	if (path != NULL && strcmp(path, "/v1/messages") == 0) {
		if (cmd != EVHTTP_REQ_POST)
			return 405;
		r->route = ROUTE_POST;
		return 0;
	}
	if (path != NULL && strncmp(path, "/v1/messages/", 13) == 0 &&
	    path[13] >= '1' && path[13] <= '9') {
		r->get_mid = strtoull(path + 13, &end, 10);
		if (*end != '\0' || strlen(path + 13) > 19)
			return 404;
		if (cmd != EVHTTP_REQ_GET)
			return 405;
		r->route = ROUTE_GET;
		return 0;
	}
	return 404;
}

/* -------------------------------------------------------- credentials */

/* "Basic base64(user:pass)" or "Bearer user:pass" (or its base64). */
static int
parse_authorization(struct http_req *r, const char *h, char *pass,
    size_t passmax, size_t *passlen)
{
	char buf[USERDB_NAME_MAX + HTTP_PASS_MAX + 2], *colon;
	const char *tok;
	int n;

	if (ascii_ncasecmp(h, "Basic ", 6) == 0)
		r->mech = "Basic", tok = h + 6;
	else if (ascii_ncasecmp(h, "Bearer ", 7) == 0)
		r->mech = "Bearer", tok = h + 7;
	else
		return -1;
	while (*tok == ' ')
		tok++;
	if (r->mech[1] == 'e' && strchr(tok, ':') != NULL) {
		if (bstrlcpy(buf, tok, sizeof(buf)) >= sizeof(buf))
			return -1;
		n = (int)strlen(buf);
	} else if ((n = base64_decode(tok, strlen(tok), (unsigned char *)buf,
	    sizeof(buf) - 1)) < 0)
		return -1;
	buf[n] = '\0';
	if ((colon = memchr(buf, ':', (size_t)n)) == NULL ||
	    (size_t)(colon - buf) > USERDB_NAME_MAX || colon == buf ||
	    memchr(buf, '\0', (size_t)n) != NULL) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	*colon = '\0';
	bstrlcpy(r->user, buf, sizeof(r->user));
	*passlen = (size_t)(n - (colon + 1 - buf));
	if (*passlen >= passmax) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	memcpy(pass, colon + 1, *passlen + 1);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static void
log_auth(const struct http_req *r, int ok)
{
	char icid[32];

	if (r->c == NULL)
		return;
	snprintf(icid, sizeof(icid), "%llu", (unsigned long long)r->c->icid);
	mlog(LOG_LVL_INFO, ok ? "auth" : "auth_failed", ok ? "ICID {icid} AUTH "
	    "success user {user} mechanism {mech}" : "ICID {icid} AUTH failed "
	    "user {user} mechanism {mech}", "icid", icid, "user", r->user,
	    "mech", r->mech, NULL);
}

/* Too many failures from this address: once per episode a Warning. */
static int
auth_blocked(struct http_req *r)
{
	const struct conf_limits *l = &r->c->policy->limits;
	char icid[32], n[16], w[16];

	switch (throttle_gate((struct sockaddr *)&r->c->peer, l->auth_failures,
	    l->auth_failure_window, mono_now())) {
	case THROTTLE_OPEN:
		return 0;
	case THROTTLE_BLOCKED_NEW:
		snprintf(icid, sizeof(icid), "%llu",
		    (unsigned long long)r->c->icid);
		snprintf(n, sizeof(n), "%d", l->auth_failures);
		snprintf(w, sizeof(w), "%d", l->auth_failure_window);
		mlog(LOG_LVL_WARNING, "auth_blocked", "ICID {icid} AUTH "
		    "blocked: address {ip} had {failures} failed AUTH attempts "
		    "within {window} s; its requests get 429 until the oldest "
		    "failure is {window} s old (limits auth_failures, "
		    "auth_failure_window)", "icid", icid, "ip", r->c->ip,
		    "failures", n, "window", w, NULL);
		return 1;
	default:
		return 1;
	}
}

static void serve_request(struct http_req *);

static void
auth_done(void *arg, int result, const char *why)
{
	struct http_req *r = arg;

	r->check = NULL;
	if (r->c == NULL) {
		req_free(r);
		return;
	}
	if (result == -1) {
		log_warnx("ICID %llu AUTH could not be checked: %s",
		    (unsigned long long)r->c->icid, why);
		reply_error(r, 503, "454 4.7.0 Temporary authentication failure");
		return;
	}
	log_auth(r, result == 1);
	if (result == 0) {
		(void)throttle_failed((struct sockaddr *)&r->c->peer,
		    r->c->policy->limits.auth_failure_window, mono_now());
		r->c->authed = 0;
		reply_error(r, 401, "535 5.7.8 Authentication credentials "
		    "invalid");
		return;
	}
	auth_check_used(aauth, r->user);
	r->c->authed = 1;
	bstrlcpy(r->c->auth_user, r->user, sizeof(r->c->auth_user));
	memcpy(r->c->auth_digest, r->digest, sizeof(r->digest));
	serve_request(r);
}

/* Who is asking?  Checked once per connection and header value. */
static void
authenticate(struct http_req *r)
{
	const char *h = evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "Authorization");
	char pass[HTTP_PASS_MAX];
	size_t plen = 0;

	if (h == NULL) {
		reply_error(r, 401, "530 5.7.0 Authentication required");
		return;
	}
	EVP_Digest(h, strlen(h), r->digest, NULL, EVP_sha256(), NULL);
	if (r->c->authed && CRYPTO_memcmp(r->digest, r->c->auth_digest,
	    sizeof(r->digest)) == 0) {
		bstrlcpy(r->user, r->c->auth_user, sizeof(r->user));
		serve_request(r);
		return;
	}
	if (auth_blocked(r)) {
		reply_error(r, 429, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (parse_authorization(r, h, pass, sizeof(pass), &plen) == -1) {
		reply_error(r, 401, "501 5.5.2 Cannot decode response");
		return;
	}
	r->check = auth_check_verify(aauth, r->user, pass, plen, auth_done, r);
	OPENSSL_cleanse(pass, sizeof(pass));
}

/* ------------------------------------------------------ the message */

/* The media type of Content-Type, lower case, without parameters. */
static void
media_type(struct http_req *r, char *buf, size_t len)
{
	const char *h = evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "Content-Type");
	size_t n = 0;

	buf[0] = '\0';
	if (h == NULL)
		return;
	while (h[n] && h[n] != ';' && h[n] != ' ' && n + 1 < len) {
		buf[n] = h[n];
		n++;
	}
	buf[n] = '\0';
	ascii_lower(buf, n);
}

/* message/rfc822: envelope from ?from= and ?to= (else the header). */
static int
prepare_raw(struct http_req *r, const char *body, size_t len, char *why,
    size_t whylen)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->req);
	const char *q = u ? evhttp_uri_get_query(u) : NULL;
	struct evkeyvalq params;
	struct evkeyval *kv;
	const char **to = NULL, *from = NULL;
	char pwhy[256];
	size_t nto = 0, i;
	int rc;

	TAILQ_INIT(&params);
	if (q != NULL && evhttp_parse_query_str(q, &params) == -1) {
		bsnprintf(why, whylen, "501 5.5.4 Bad request: query string "
		    "does not parse");
		return -1;
	}
	TAILQ_FOREACH(kv, &params, next) {
		if (strcmp(kv->key, "to") == 0 && nto < MSG_PREP_RCPTS_MAX) {
			to = xrealloc(to, (nto + 1) * sizeof(*to));
			to[nto++] = kv->value;
		} else if (strcmp(kv->key, "from") == 0)
			from = kv->value;
	}
	rc = msg_prep_run(&r->prep, body, len, to, nto, aconf->hostname,
	    wall_now(), pwhy, sizeof(pwhy));
	r->prep_used = 1;
	if (rc == -1)
		bsnprintf(why, whylen, "554 5.6.0 Message rejected: %s", pwhy);
	if (rc == 0 && nto > 0) {	/* ?to= is the whole envelope */
		strv_free(r->prep.rcpts, r->prep.nrcpts);
		r->prep.rcpts = xcalloc(nto, sizeof(char *));
		for (i = 0; i < nto; i++)
			r->prep.rcpts[i] = xstrdup(to[i]);
		r->prep.nrcpts = nto;
	}
	if (rc == 0 && from != NULL) {
		free(r->prep.from);
		r->prep.from = xstrdup(from);
	}
	free(to);
	evhttp_clear_headers(&params);
	return rc;
}

/* application/json: the MIME builder of `postern send`, then msg_prep. */
static int
prepare_json(struct http_req *r, const char *body, size_t len, char *why,
    size_t whylen)
{
	struct http_json_msg m;
	struct msg_build_part *parts;
	struct msg_build b;
	struct strbuf out = STRBUF_INIT;
	char jwhy[256];
	size_t i;
	int rc = -1;

	if (http_json_parse_msg(body, len, &m, jwhy, sizeof(jwhy)) == -1) {
		bsnprintf(why, whylen, "501 5.5.4 Bad request: %s", jwhy);
		return -1;
	}
	parts = xcalloc(m.nattach + 1, sizeof(*parts));
	for (i = 0; i < m.nattach; i++) {
		parts[i].name = m.attach[i].filename;
		parts[i].data = m.attach[i].data;
		parts[i].len = m.attach[i].len;
	}
	memset(&b, 0, sizeof(b));
	b.from = m.from;
	b.to = (const char *const *)m.to;
	b.nto = m.nto;
	b.cc = (const char *const *)m.cc;
	b.ncc = m.ncc;
	b.subject = m.subject;
	b.text = m.text;
	b.text_len = m.text_len;
	b.html = m.html;
	b.html_len = m.html_len;
	b.attach = parts;
	b.nattach = m.nattach;
	b.hostname = aconf->hostname;
	b.now = wall_now();
	if (msg_build_run(&b, &out, jwhy, sizeof(jwhy)) == -1)
		bsnprintf(why, whylen, "451 4.3.0 Cannot build the message: %s",
		    jwhy);
	else if ((rc = msg_prep_run(&r->prep, out.s, out.len,
	    (const char *const *)m.bcc, m.nbcc, aconf->hostname, wall_now(),
	    jwhy, sizeof(jwhy))) == -1)
		bsnprintf(why, whylen, "501 5.5.4 Bad request: %s", jwhy);
	r->prep_used = 1;
	strbuf_free(&out);
	free(parts);
	http_json_msg_free(&m);
	return rc;
}

/* An envelope address must be a valid SMTP path (it is spooled as one). */
static const char *
check_address(const char *addr, int is_rcpt, int *utf8)
{
	struct smtp_path p;
	char buf[SMTP_PATH_MAX + 8];
	const char *reply = NULL;
	size_t used;

	if (bsnprintf(buf, sizeof(buf), "<%s>", addr) == -1)
		return is_rcpt ? "501 5.1.3 Bad recipient address syntax" :
		    "501 5.1.7 Bad sender address syntax";
	if (smtp_path_parse(buf, strlen(buf), !is_rcpt, is_rcpt, &p, &used,
	    &reply) == -1 || used != strlen(buf))
		return reply ? reply : "501 5.1.3 Bad recipient address syntax";
	if (p.utf8)
		*utf8 = 1;
	return NULL;
}

static int
user_allowed(void *arg, const char *addr)
{
	const struct userdb_user *u = auth_check_user(aauth, arg);

	if (u == NULL)
		return -1;
	return userdb_identity_allows(u, addr);
}

/* The identity check of identity.c on the envelope and header From:. */
static int
identity_refused(struct http_req *r, char *buf, size_t len)
{
	struct msg_header_scan hdr;
	enum identity_result ir;

	ir = identity_check_sender(r->prep.from, user_allowed, r->user, buf,
	    len);
	if (ir == IDENTITY_OK) {
		msg_header_scan_init(&hdr);
		msg_header_scan_feed(&hdr, r->prep.msg.s, r->prep.msg.len);
		msg_header_scan_finish(&hdr);
		ir = identity_check_header_from(hdr.from, hdr.from_count,
		    hdr.from_truncated, r->prep.from, user_allowed, r->user,
		    buf, len);
	}
	if (ir == IDENTITY_USER_GONE)
		bstrlcpy(buf, "535 5.7.8 Authentication credentials invalid",
		    len);
	return ir == IDENTITY_OK ? 0 : ir == IDENTITY_REFUSED ? 403 : 401;
}

/* Addresses, size, recipients, local mailboxes: 0 or the status. */
static int
envelope_refused(struct http_req *r, int *utf8, char *buf, size_t len)
{
	const struct conf_policy *pol = r->c->policy;
	struct route_decision d;
	const char *why, *at;
	size_t i;

	if ((why = check_address(r->prep.from, 0, utf8)) != NULL) {
		bstrlcpy(buf, why, len);
		return 400;
	}
	if (r->prep.msg.len > pol->max_message_size) {
		bstrlcpy(buf, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size", len);
		return 413;
	}
	if (r->prep.nrcpts > (size_t)pol->max_recipients) {
		bstrlcpy(buf, "452 4.5.3 Too many recipients", len);
		return 400;
	}
	for (i = 0; i < r->prep.nrcpts; i++) {
		if ((why = check_address(r->prep.rcpts[i], 1, utf8)) != NULL) {
			bstrlcpy(buf, why, len);
			return 400;
		}
		at = strrchr(r->prep.rcpts[i], '@');
		if (at == NULL || !conf_is_local_domain(aconf, at + 1))
			continue;
		route_decide(aconf, r->prep.rcpts[i], &d);
		if ((why = deliver_local_check(&d, r->prep.rcpts[i])) != NULL) {
			bstrlcpy(buf, why, len);
			return why[0] == '4' ? 503 : 400;
		}
	}
	return 0;
}

/* Quota and spool room, the last checks before spooling. */
static int
resources_refused(struct http_req *r, char *buf, size_t len)
{
	const struct userdb_user *u = auth_check_user(aauth, r->user);

	if (u != NULL) {
		switch (throttle_send(r->user, u->max_send_rate,
		    u->max_24_hour_send, wall_now())) {
		case QUOTA_RATE:
			bstrlcpy(buf, "454 4.7.0 Throttling failure: Maximum "
			    "sending rate exceeded.", len);
			return 429;
		case QUOTA_DAY:
			bstrlcpy(buf, "554 5.7.0 Throttling failure: Daily "
			    "message quota exceeded.", len);
			return 429;
		default:
			break;
		}
	}
	if (spool_has_room(aspool, r->prep.msg.len,
	    aconf->limits.spool_min_free, mono_now()) != SPOOL_ROOM_OK) {
		bstrlcpy(buf, "452 4.3.1 Insufficient system storage", len);
		return 507;
	}
	return 0;
}

static void
committed(void *arg, uint64_t mid, int ok)
{
	struct http_req *r = arg;
	struct strbuf body = STRBUF_INIT;
	char what[64];

	if (!ok) {
		reply_error(r, 503, "451 4.3.0 Error: queue file write error");
		return;
	}
	snprintf(what, sizeof(what), "MID %llu", (unsigned long long)mid);
	log_access(r, 201, what);
	strbuf_printf(&body, "{\"mid\":%llu,\"reply\":\"250 2.0.0 Ok: queued "
	    "as %llu\"}", (unsigned long long)mid, (unsigned long long)mid);
	reply_json(r, 201, "Created", &body, 0);
	strbuf_free(&body);
}

/* Spool it; the reply comes from committed(). */
static void
spool_message(struct http_req *r, int utf8)
{
	struct inject_msg m;
	char from[128], why[256];

	memset(&m, 0, sizeof(m));
	snprintf(from, sizeof(from), "[%s]", r->c->ip);
	m.icid = r->c->icid;
	m.client_ip = r->c->ip;
	m.helo = "http";
	m.auth_user = r->user;
	m.from = r->prep.from;
	m.rcpts = (const char *const *)r->prep.rcpts;
	m.nrcpts = r->prep.nrcpts;
	m.data = r->prep.msg.s;
	m.len = r->prep.msg.len;
	m.eightbit = r->prep.eightbit;
	m.smtputf8 = utf8 || r->prep.utf8_addrs;
	m.trace.from = from;
	m.trace.tls = r->c->tls_info[0] ? r->c->tls_info : NULL;
	m.trace.with = "HTTPSA";
	if ((r->mid = inject_submit(&m, committed, r, why, sizeof(why))) == 0)
		reply_error(r, 503, "451 4.3.0 Error: queue file write error");
}

/* POST /v1/messages, authenticated. */
static void
post_message(struct http_req *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	char type[64], why[512];
	int status, utf8 = 0, rc;

	media_type(r, type, sizeof(type));
	if (strcmp(type, "message/rfc822") == 0)
		rc = prepare_raw(r, body ? body : "", len, why, sizeof(why));
	else if (strcmp(type, "application/json") == 0)
		rc = prepare_json(r, body ? body : "", len, why, sizeof(why));
	else {
		reply_error(r, 415, "554 5.6.0 Message rejected: Content-Type "
		    "must be message/rfc822 or application/json");
		return;
	}
	if (rc == -1) {
		reply_error(r, 400, why);
		return;
	}
	if (r->prep.from == NULL) {
		reply_error(r, 400, "554 5.6.0 Message rejected: Missing "
		    "required header 'From'");
		return;
	}
	if ((status = envelope_refused(r, &utf8, why, sizeof(why))) != 0 ||
	    (status = identity_refused(r, why, sizeof(why))) != 0 ||
	    (status = resources_refused(r, why, sizeof(why))) != 0) {
		reply_error(r, status, why);
		return;
	}
	spool_message(r, utf8);
}

/* GET /v1/messages/MID, authenticated. */
static void
get_state(struct http_req *r)
{
	struct strbuf body = STRBUF_INIT;

	if (http_state_json(aspool, r->get_mid, r->user, &body) == -1) {
		reply_error(r, 404, "550 5.1.0 No such message sent by this "
		    "user");
		strbuf_free(&body);
		return;
	}
	log_access(r, 200, "");
	reply_json(r, 200, "OK", &body, 0);
	strbuf_free(&body);
}

static void
serve_request(struct http_req *r)
{
	if (r->route == ROUTE_POST)
		post_message(r);
	else
		get_state(r);
}

/* evhttp's callback for every request (http_api.h). */
void
http_api_request(struct evhttp_request *req, void *arg)
{
	struct http_conn *c = http_conn_of(req);
	struct http_req *r;
	int status;

	if (c == NULL || !c->admitted) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	http_conn_request_begin();
	r = xcalloc(1, sizeof(*r));
	r->req = req;
	r->c = c;
	r->next = c->reqs;
	c->reqs = r;
	if ((status = route_request(r)) != 0)
		reply_error(r, status, status == 405 ? "502 5.5.1 Method not "
		    "allowed for this resource" : "500 5.5.1 Unknown resource "
		    "(POST /v1/messages, GET /v1/messages/MID)");
	else if (http_conn_stopping())
		reply_error(r, 503, "421 4.3.2 Service shutting down, try "
		    "again later");
	else if (c->rejected)
		reply_error(r, 403, "554 5.7.1 Access denied");
	else
		authenticate(r);
}

/* The connection is being freed (http_api.h): orphan its requests. */
void
http_api_conn_gone(struct http_conn *c)
{
	struct http_req *r;

	while ((r = c->reqs) != NULL) {
		c->reqs = r->next;
		r->c = NULL;
	}
}
