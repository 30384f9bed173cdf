/*
 * conf.c - the configuration file (libconfig syntax, SPEC.md
 * "Configuration") turned into a validated struct conf: defaults filled
 * in, relative paths resolved against the file's directory, every problem
 * collected as "FILE:LINE: message" so `postern config check` lists them
 * all at once.
 *
 * Public: conf_load, conf_load_string, conf_free, conf_errors_free,
 * conf_default_path, conf_embedded_default, conf_show and the lookups
 * conf_match_sender_group, conf_is_local_domain, conf_route_for, plus the
 * enum name helpers.
 *
 * Every section has a table of its keys and their types: an unknown key or
 * a value of the wrong type is an error with its line, wherever it is.
 * Beyond types: enums list their allowed values, numbers have ranges,
 * names are unique (listeners also by address and port, routes and
 * destinations by domain, dkim by domain and selector), route keys must fit
 * the route kind (tls/auth_* need hosts, unknown_users needs maildir).
 * Messages come out sorted by file and line.
 *
 * Keys beyond SPEC (extensions, shown by `config show` too):
 *   workers = N;   top level, 0 (default) = one worker per CPU, at most 1024
 *   limits = { max_line_length; max_connections; max_connections_per_client;
 *       auth_failures; auth_failure_window; auth_failure_delay;
 *       command_timeout;
 *       data_block_timeout; data_timeout; bare_line_ends; spool_min_free; };
 *       (SPEC "Limits and defaults"; bare_line_ends = reject | normalize;
 *       spool_min_free = octets kept free on the spool's file system,
 *       below which MAIL gets 452 4.3.1, default 64 MiB, 0 = none)
 *   policies: each policy may set the per-client limits keys (all of the
 *       above but max_connections and spool_min_free); its limits are the
 *       global ones with those overrides applied.
 *   routes: unknown_users = accept | reject (maildir routes only) and
 *       users = [ "name", ... ] (the known local users).
 *   listeners: proxy_protocol = true; proxy_from = [ CIDR, ... ];
 *       (SPEC's comment line; proxy_from is required with proxy_protocol
 *       and an error without it; docs/proxy-protocol.md)
 *
 * Limits and threats: the file comes from the admin but is parsed
 * defensively: at most CONF_MAX_SIZE bytes, every string and number is
 * checked before use, names that become file names (certificate IDs,
 * local users) cannot climb out of their directory, and messages quote
 * user text with control bytes escaped.  libconfig 1.5 silently wraps an
 * integer literal that does not fit in 32 bits unless it carries an L
 * suffix; the range checks catch most such slips.  @include works,
 * relative to the file's directory.  Maildir templates know %u, %d and
 * %% (a literal '%'); a '%' coming from the base directory is written as
 * "%%", so the expander only sees the admin's %u and %d.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "nexthop_parse.h"
#include "strbuf.h"
#include "util.h"

#define CONF_MAX_SIZE		(4 * 1024 * 1024)
#define CONF_MSG_MAX		400	/* bytes of one message body */
#define CONF_EMBEDDED_NAME	"(embedded default)"
#define CONF_STRING_NAME	"(string)"
#define CONF_INT_MAX		2147483647LL
#define CONF_SPOOL_MIN_FREE	(64ULL * 1024 * 1024)	/* 64 MiB */
#define CONF_SPOOL_MIN_FREE_MAX	(1LL << 50)		/* 1 PiB */
#define CONF_WORKERS_MAX	1024
#define CONF_IDENT_MAX		64

enum ktype {
	K_STRING, K_INT, K_BOOL, K_STRLIST, K_GROUP, K_GROUPLIST, K_CERT
};

struct keyspec {
	const char	*name;
	enum ktype	 type;
};

struct enumval {
	const char	*name;
	int		 value;
};

/* Where each message of this load came from, to sort them at the end. */
struct errpos {
	const char	*file;		/* borrowed: name or libconfig's */
	unsigned int	 line;
};

struct loadctx {
	struct conf		*conf;
	struct conf_errors	*errs;
	const char		*name;		/* file name for messages */
	const char		*basedir;	/* absolute, no trailing '/' */
	size_t			 first;		/* errs->n when we started */
	struct errpos		*pos;		/* one per message from first */
};

typedef int (*str_check_fn)(const char *);

static void	 errs_push(struct conf_errors *, char *);
static int	 errpos_after(const struct loadctx *, const struct errpos *,
		    const struct errpos *);
static void	 sort_errors(struct loadctx *);
static void	 report_vat(struct loadctx *, const char *, unsigned int,
		    const char *, va_list);
static void	 report_at(struct loadctx *, const char *, unsigned int,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 report(struct loadctx *, const config_setting_t *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static const char *type_desc(enum ktype);
static int	 type_matches(const config_setting_t *, enum ktype);
static void	 check_type(struct loadctx *, const config_setting_t *,
		    enum ktype);
static void	 check_keys(struct loadctx *, const config_setting_t *,
		    const struct keyspec *, const char *);
static const config_setting_t *get_typed(const config_setting_t *,
		    const char *, enum ktype);
static const char *get_str(const config_setting_t *, const char *,
		    const config_setting_t **);
static int	 require(struct loadctx *, const config_setting_t *,
		    const char *, const char *);
static int	 get_int(struct loadctx *, const config_setting_t *,
		    const char *, long long, long long, long long *);
static void	 set_int(struct loadctx *, const config_setting_t *,
		    const char *, long long, long long, int *);
static void	 set_bool(const config_setting_t *, const char *, int *);
static int	 get_enum(struct loadctx *, const config_setting_t *,
		    const char *, const struct enumval *, int *);
static void	 get_strlist(struct loadctx *, const config_setting_t *,
		    const char *, str_check_fn, const char *, char ***,
		    size_t *);
static const char *enum_name(const struct enumval *, int);
static void	 set_str(char **, char *);
static void	 errs_addf(struct conf_errors *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static struct conf *finish_local(struct conf *, struct conf_errors *,
		    struct conf_errors *);
static char	*join_path(const char *, const char *, int);
static char	*resolve(struct loadctx *, const char *);
static char	*make_basedir(const char *, int);
static int	 valid_domain(const char *);
static int	 valid_route_domain(const char *);
static int	 valid_ident(const char *);
static int	 valid_cert_id(const char *);
static int	 valid_local_user(const char *);
static int	 valid_address(const char *);
static int	 valid_domain_or_address(const char *);
static int	 valid_nonempty(const char *);
static int	 valid_next_hop(const char *);
static int	 valid_template(const char *, char *);
static char	*default_hostname(void);
static void	 conf_set_defaults(struct conf *);
static struct conf *load_text(const char *, const char *, char *,
		    struct conf_errors *);
static void	 parse_top(struct loadctx *, const config_setting_t *);
static void	 parse_main(struct loadctx *, const config_setting_t *);
static void	 parse_log(struct loadctx *, const config_setting_t *);
static void	 parse_limit_values(struct loadctx *,
		    const config_setting_t *, struct conf_limits *, int);
static void	 parse_limits(struct loadctx *, const config_setting_t *);
static void	 parse_certref(struct loadctx *, const config_setting_t *,
		    struct conf_certref *);
static void	 parse_listener(struct loadctx *, const config_setting_t *,
		    struct conf_listener *);
static int	 same_endpoint(const struct conf_listener *,
		    const struct conf_listener *);
static void	 check_listener_dups(struct loadctx *,
		    const config_setting_t *, size_t);
static void	 parse_listeners(struct loadctx *, const config_setting_t *);
static void	 parse_tls(struct loadctx *, const config_setting_t *);
static void	 parse_policy(struct loadctx *, const config_setting_t *,
		    struct conf_policy *);
static void	 parse_policies(struct loadctx *, const config_setting_t *);
static void	 parse_proxy_from(struct loadctx *, const config_setting_t *,
		    struct conf_listener *);
static void	 cidr_error(struct loadctx *, const config_setting_t *,
		    const char *, const char *);
static void	 parse_cidr_list(struct loadctx *, const config_setting_t *,
		    const char *, struct cidr **, size_t *);
static void	 parse_networks(struct loadctx *, const config_setting_t *,
		    struct conf_sender_group *);
static void	 resolve_policy(struct loadctx *, const config_setting_t *,
		    struct conf_sender_group *);
static void	 parse_sender_group(struct loadctx *,
		    const config_setting_t *, struct conf_sender_group *);
static void	 parse_sender_groups(struct loadctx *,
		    const config_setting_t *);
static void	 parse_route_maildir(struct loadctx *,
		    const config_setting_t *, struct conf_route *);
static void	 parse_route_hosts(struct loadctx *,
		    const config_setting_t *, struct conf_route *);
static void	 parse_route(struct loadctx *, const config_setting_t *,
		    struct conf_route *);
static void	 parse_routes(struct loadctx *, const config_setting_t *);
static void	 parse_destination(struct loadctx *,
		    const config_setting_t *, struct conf_destination *);
static void	 parse_destinations(struct loadctx *,
		    const config_setting_t *);
static void	 parse_delivery(struct loadctx *, const config_setting_t *);
static void	 parse_alerts(struct loadctx *, const config_setting_t *);
static void	 parse_dkim_entry(struct loadctx *, const config_setting_t *,
		    struct conf_dkim *);
static void	 parse_dkim(struct loadctx *, const config_setting_t *);
static void	 parse_smime(struct loadctx *, const config_setting_t *);
static void	 parse_resolver(struct loadctx *, const config_setting_t *);
static void	 parse_metrics(struct loadctx *, const config_setting_t *);
static void	 parse_http(struct loadctx *, const config_setting_t *);
static void	 parse_pickup(struct loadctx *, const config_setting_t *);
static void	 listener_free(struct conf_listener *);
static void	 show_ingress(const struct conf *, FILE *);
static void	 certref_free(struct conf_certref *);
static void	 route_free(struct conf_route *);
static void	 put_str(FILE *, const char *);
static void	 put_kstr(FILE *, const char *, const char *);
static void	 put_kint(FILE *, const char *, long long);
static void	 put_kbool(FILE *, const char *, int);
static void	 put_list(FILE *, char *const *, size_t);
static void	 put_klist(FILE *, const char *, char *const *, size_t);
static void	 show_limits(FILE *, const struct conf_limits *,
		    const struct conf_limits *);
static void	 show_listeners(const struct conf *, FILE *);
static void	 show_policies(const struct conf *, FILE *);
static void	 show_sender_groups(const struct conf *, FILE *);
static void	 show_route(const struct conf_route *, FILE *);
static void	 show_routes(const struct conf *, FILE *);
static void	 show_destinations(const struct conf *, FILE *);
static void	 show_misc(const struct conf *, FILE *);

static const struct conf_limits default_limits = {
	.max_line_length = 65536,
	.max_connections = 10000,
	.max_connections_per_client = 50,
	.auth_failures = 5,
	.auth_failure_window = 600,
	.auth_failure_delay = 5,
	.command_timeout = 300,
	.data_block_timeout = 180,
	.data_timeout = 600,
	.bare_line_ends = BARE_REJECT,
	.spool_min_free = CONF_SPOOL_MIN_FREE,
};

static const struct keyspec top_keys[] = {
	{ "hostname", K_STRING }, { "data_dir", K_STRING },
	{ "user", K_STRING }, { "workers", K_INT }, { "log", K_GROUP },
	{ "listeners", K_GROUPLIST }, { "tls", K_GROUP },
	{ "sender_groups", K_GROUPLIST }, { "policies", K_GROUP },
	{ "local_domains", K_STRLIST }, { "routes", K_GROUPLIST },
	{ "destinations", K_GROUPLIST }, { "delivery", K_GROUP },
	{ "alerts", K_GROUP }, { "dkim", K_GROUPLIST }, { "smime", K_GROUP },
	{ "dkim_on_error", K_STRING },
	{ "resolver", K_GROUP }, { "limits", K_GROUP },
	{ "metrics", K_GROUP },
	{ "http", K_GROUP }, { "pickup", K_GROUP },
	{ NULL, K_STRING }
};

static const struct keyspec http_keys[] = {
	{ "address", K_STRING }, { "port", K_INT }, { "certificate", K_CERT },
	{ NULL, K_STRING }
};

static const struct keyspec pickup_keys[] = {
	{ "dir", K_STRING }, { "group", K_STRING },
	{ "max_message_size", K_INT }, { NULL, K_STRING }
};

static const struct keyspec log_keys[] = {
	{ "file", K_STRING }, { "format", K_STRING }, { NULL, K_STRING }
};

static const struct keyspec listener_keys[] = {
	{ "name", K_STRING }, { "address", K_STRING }, { "port", K_INT },
	{ "tls", K_STRING }, { "auth", K_STRING },
	{ "certificate", K_CERT }, { "proxy_protocol", K_BOOL },
	{ "proxy_from", K_STRLIST }, { NULL, K_STRING }
};

static const struct keyspec cert_keys[] = {
	{ "cert", K_STRING }, { "key", K_STRING }, { "chain", K_STRING },
	{ NULL, K_STRING }
};

static const struct keyspec tls_keys[] = {
	{ "min_protocol", K_STRING }, { "ciphers", K_STRING },
	{ "ciphersuites", K_STRING }, { "system_cas", K_BOOL },
	{ NULL, K_STRING }
};

static const struct keyspec sender_group_keys[] = {
	{ "name", K_STRING }, { "networks", K_STRLIST },
	{ "policy", K_STRING }, { NULL, K_STRING }
};

/* The per-client limits come first so policy_keys can share them. */
#define PER_CLIENT_LIMIT_KEYS \
	{ "max_line_length", K_INT }, \
	{ "max_connections_per_client", K_INT }, \
	{ "auth_failures", K_INT }, { "auth_failure_window", K_INT }, \
	{ "auth_failure_delay", K_INT }, \
	{ "command_timeout", K_INT }, { "data_block_timeout", K_INT }, \
	{ "data_timeout", K_INT }, { "bare_line_ends", K_STRING }

static const struct keyspec limits_keys[] = {
	PER_CLIENT_LIMIT_KEYS, { "max_connections", K_INT },
	{ "spool_min_free", K_INT }, { NULL, K_STRING }
};

static const struct keyspec policy_keys[] = {
	{ "action", K_STRING }, { "tls", K_STRING },
	{ "allow_plaintext_auth", K_BOOL }, { "max_message_size", K_INT },
	{ "max_recipients", K_INT }, PER_CLIENT_LIMIT_KEYS,
	{ NULL, K_STRING }
};

static const struct keyspec route_keys[] = {
	{ "domain", K_STRING }, { "maildir", K_STRING },
	{ "hosts", K_STRLIST }, { "tls", K_STRING },
	{ "auth_user", K_STRING }, { "auth_password_file", K_STRING },
	{ "unknown_users", K_STRING }, { "users", K_STRLIST },
	{ NULL, K_STRING }
};

static const struct keyspec destination_keys[] = {
	{ "domain", K_STRING }, { "tls", K_STRING },
	{ "max_connections", K_INT }, { NULL, K_STRING }
};

static const struct keyspec delivery_keys[] = {
	{ "retry_min", K_INT }, { "retry_max", K_INT },
	{ "max_queue_lifetime", K_INT }, { "paused", K_BOOL },
	{ NULL, K_STRING }
};

static const struct keyspec alerts_keys[] = {
	{ "recipients", K_STRLIST }, { "from", K_STRING }, { NULL, K_STRING }
};

static const struct keyspec dkim_keys[] = {
	{ "domain", K_STRING }, { "selector", K_STRING }, { "key", K_STRING },
	{ "subdomains", K_BOOL }, { "expire", K_INT }, { NULL, K_STRING }
};

static const struct keyspec smime_keys[] = {
	{ "keys", K_STRING }, { "sign", K_STRLIST }, { "encrypt", K_STRING },
	{ NULL, K_STRING }
};

static const struct keyspec resolver_keys[] = {
	{ "local_data", K_STRLIST }, { NULL, K_STRING }
};

static const struct keyspec metrics_keys[] = {
	{ "address", K_STRING }, { "port", K_INT }, { NULL, K_STRING }
};

static const struct enumval listener_tls_vals[] = {
	{ "off", LISTENER_TLS_OFF }, { "preferred", LISTENER_TLS_PREFERRED },
	{ "required", LISTENER_TLS_REQUIRED },
	{ "implicit", LISTENER_TLS_IMPLICIT }, { NULL, 0 }
};

static const struct enumval listener_auth_vals[] = {
	{ "off", LISTENER_AUTH_OFF }, { "optional", LISTENER_AUTH_OPTIONAL },
	{ "required", LISTENER_AUTH_REQUIRED }, { NULL, 0 }
};

static const struct enumval policy_action_vals[] = {
	{ "accept", POLICY_ACCEPT }, { "relay", POLICY_RELAY },
	{ "reject", POLICY_REJECT }, { "tcprefuse", POLICY_TCPREFUSE },
	{ NULL, 0 }
};

static const struct enumval policy_tls_vals[] = {
	{ "off", POLICY_TLS_OFF }, { "preferred", POLICY_TLS_PREFERRED },
	{ "required", POLICY_TLS_REQUIRED }, { NULL, 0 }
};

static const struct enumval bare_vals[] = {
	{ "reject", BARE_REJECT }, { "normalize", BARE_NORMALIZE },
	{ NULL, 0 }
};

static const struct enumval dest_tls_vals[] = {
	{ "none", DEST_TLS_NONE }, { "preferred", DEST_TLS_PREFERRED },
	{ "required", DEST_TLS_REQUIRED },
	{ "preferred-verify", DEST_TLS_PREFERRED_VERIFY },
	{ "required-verify", DEST_TLS_REQUIRED_VERIFY }, { NULL, 0 }
};

static const struct enumval route_tls_vals[] = {
	{ "starttls", ROUTE_TLS_STARTTLS }, { "implicit", ROUTE_TLS_IMPLICIT },
	{ "none", ROUTE_TLS_NONE }, { NULL, 0 }
};

static const struct enumval unknown_users_vals[] = {
	{ "accept", UNKNOWN_USERS_ACCEPT }, { "reject", UNKNOWN_USERS_REJECT },
	{ NULL, 0 }
};

static const struct enumval log_format_vals[] = {
	{ "text", 0 }, { "json", 1 }, { NULL, 0 }
};

static const struct enumval min_protocol_vals[] = {
	{ "TLSv1", 0 }, { "TLSv1.1", 1 }, { "TLSv1.2", 2 }, { "TLSv1.3", 3 },
	{ NULL, 0 }
};

static const struct enumval smime_encrypt_vals[] = {
	{ "never", SMIME_ENCRYPT_NEVER },
	{ "when-possible", SMIME_ENCRYPT_WHEN_POSSIBLE },
	{ "required", SMIME_ENCRYPT_REQUIRED }, { NULL, 0 }
};

static const struct enumval dkim_on_error_vals[] = {
	{ "defer", DKIM_ON_ERROR_DEFER },
	{ "send-unsigned", DKIM_ON_ERROR_SEND_UNSIGNED }, { NULL, 0 }
};

/*
 * SPEC "Embedded default": inbound (127.0.0.1:2525, STARTTLS preferred),
 * submission (127.0.0.1:2587, tls required, auth required) and smtps
 * (127.0.0.1:2465, implicit TLS, auth required), all with the self-signed
 * demo certificate.  Loopback gets no relay right: SPEC relays everything
 * that is not local only for authenticated users.
 */
static const char embedded_default[] =
	"# Postern embedded default: loopback only, unprivileged.\n"
	"data_dir = \"postern-data\";\n"
	"log = { file = \"-\"; format = \"text\"; };\n"
	"listeners = (\n"
	"  { name = \"inbound\"; address = \"127.0.0.1\"; port = 2525;"
	" tls = \"preferred\"; },\n"
	"  { name = \"submission\"; address = \"127.0.0.1\"; port = 2587;"
	" tls = \"required\"; auth = \"required\"; },\n"
	"  { name = \"smtps\"; address = \"127.0.0.1\"; port = 2465;"
	" tls = \"implicit\"; auth = \"required\"; }\n"
	");\n"
	"sender_groups = (\n"
	"  { name = \"ALL\"; networks = [ \"0.0.0.0/0\", \"::/0\" ];"
	" policy = \"accepted\"; }\n"
	");\n"
	"policies = {\n"
	"  accepted = { action = \"accept\"; tls = \"preferred\"; };\n"
	"};\n"
	"local_domains = [ \"localhost\" ];\n"
	"routes = (\n"
	"  { domain = \"localhost\"; maildir = \"postern-data/mail/%d/%u\"; }\n"
	");\n";

/* ---- error collection -------------------------------------------------- */

static void
errs_push(struct conf_errors *errs, char *msg)
{
	errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
	errs->msgs[errs->n++] = msg;
}

static void
report_vat(struct loadctx *ctx, const char *file, unsigned int line,
    const char *fmt, va_list ap)
{
	struct strbuf raw = STRBUF_INIT, out = STRBUF_INIT;

	strbuf_vprintf(&raw, fmt, ap);
	strbuf_printf(&out, "%s:%u: ", file, line);
	if (raw.len > CONF_MSG_MAX) {
		strbuf_printable(&out, raw.s, CONF_MSG_MAX);
		strbuf_puts(&out, "...");
	} else if (raw.len > 0)
		strbuf_printable(&out, raw.s, raw.len);
	strbuf_free(&raw);
	ctx->pos = xrealloc(ctx->pos, (ctx->errs->n - ctx->first + 1) *
	    sizeof(*ctx->pos));
	ctx->pos[ctx->errs->n - ctx->first].file = file;
	ctx->pos[ctx->errs->n - ctx->first].line = line;
	errs_push(ctx->errs, strbuf_detach(&out, NULL));
}

/* Order: the main file first, then @include files by name; then line. */
static int
errpos_after(const struct loadctx *ctx, const struct errpos *a,
    const struct errpos *b)
{
	int amain = strcmp(a->file, ctx->name) == 0;
	int bmain = strcmp(b->file, ctx->name) == 0;
	int c;

	if (amain != bmain)
		return bmain;
	if ((c = strcmp(a->file, b->file)) != 0)
		return c > 0;
	return a->line > b->line;
}

/*
 * Checks run section by section, so messages come out of order; put them
 * in file order (stable: same line keeps the order found).  Insertion
 * sort: the list is short.
 */
static void
sort_errors(struct loadctx *ctx)
{
	struct errpos p;
	size_t i, j, n = ctx->errs->n - ctx->first;
	char **m, *msg;

	if (n < 2)
		return;
	m = ctx->errs->msgs + ctx->first;
	for (i = 1; i < n; i++) {
		p = ctx->pos[i];
		msg = m[i];
		for (j = i; j > 0; j--) {
			if (!errpos_after(ctx, &ctx->pos[j - 1], &p))
				break;
			ctx->pos[j] = ctx->pos[j - 1];
			m[j] = m[j - 1];
		}
		ctx->pos[j] = p;
		m[j] = msg;
	}
}

static void
report_at(struct loadctx *ctx, const char *file, unsigned int line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_vat(ctx, file, line, fmt, ap);
	va_end(ap);
}

/* An error about setting `s`: its file (an @include) and line. */
static void
report(struct loadctx *ctx, const config_setting_t *s, const char *fmt, ...)
{
	const char *file;
	va_list ap;

	file = config_setting_source_file(s);
	if (file == NULL)
		file = ctx->name;
	va_start(ap, fmt);
	report_vat(ctx, file, config_setting_source_line(s), fmt, ap);
	va_end(ap);
}

/* ---- schema checks and typed getters ----------------------------------- */

static const char *
type_desc(enum ktype t)
{
	switch (t) {
	case K_STRING:
		return "a string";
	case K_INT:
		return "an integer";
	case K_BOOL:
		return "a boolean (true or false)";
	case K_STRLIST:
		return "a list of strings ([ \"...\", ... ])";
	case K_GROUP:
		return "a group ({ ... })";
	case K_GROUPLIST:
		return "a list of groups (( { ... }, ... ))";
	case K_CERT:
		return "a certificate ID, a group { cert; key; chain; } or a "
		    "list of those (the first is the default, the others are "
		    "chosen by SNI)";
	}
	return "?";
}

/* Shape of the setting itself; list elements are checked by check_type. */
static int
type_matches(const config_setting_t *s, enum ktype t)
{
	int type = config_setting_type(s);

	switch (t) {
	case K_STRING:
		return type == CONFIG_TYPE_STRING;
	case K_INT:
		return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
	case K_BOOL:
		return type == CONFIG_TYPE_BOOL;
	case K_STRLIST:
		return type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	case K_GROUP:
		return type == CONFIG_TYPE_GROUP;
	case K_GROUPLIST:
		return type == CONFIG_TYPE_LIST;
	case K_CERT:
		return type == CONFIG_TYPE_STRING || type == CONFIG_TYPE_GROUP ||
		    type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
	}
	return 0;
}

static void
check_type(struct loadctx *ctx, const config_setting_t *s, enum ktype t)
{
	const config_setting_t *e;
	unsigned int i, n;
	int want;

	if (!type_matches(s, t)) {
		report(ctx, s, "'%s' must be %s", config_setting_name(s),
		    type_desc(t));
		return;
	}
	if (t != K_STRLIST && t != K_GROUPLIST)
		return;
	want = t == K_STRLIST ? CONFIG_TYPE_STRING : CONFIG_TYPE_GROUP;
	n = (unsigned int)config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if (config_setting_type(e) != want)
			report(ctx, e, "'%s' must be %s", config_setting_name(s),
			    type_desc(t));
	}
}

/* Report unknown keys and wrong types in group `g` (section NULL = top). */
static void
check_keys(struct loadctx *ctx, const config_setting_t *g,
    const struct keyspec *specs, const char *section)
{
	const config_setting_t *s;
	const struct keyspec *k;
	const char *name;
	unsigned int i, n;

	n = (unsigned int)config_setting_length(g);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(g, i);
		name = config_setting_name(s);
		for (k = specs; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		if (k->name != NULL)
			check_type(ctx, s, k->type);
		else if (section == NULL)
			report(ctx, s, "unknown key '%s' at top level", name);
		else if (specs == policy_keys &&
		    (strcmp(name, "max_connections") == 0 ||
		    strcmp(name, "spool_min_free") == 0))
			report(ctx, s, "unknown key '%s' in %s (it is global: "
			    "set it in limits)", name, section);
		else
			report(ctx, s, "unknown key '%s' in %s", name, section);
	}
}

/* The member `key` of `g` when it has the right shape, else NULL. */
static const config_setting_t *
get_typed(const config_setting_t *g, const char *key, enum ktype t)
{
	const config_setting_t *s;

	s = config_setting_get_member(g, key);
	if (s == NULL || !type_matches(s, t))
		return NULL;
	return s;
}

/* A string member (borrowed from libconfig, valid until config_destroy). */
static const char *
get_str(const config_setting_t *g, const char *key,
    const config_setting_t **sp)
{
	const config_setting_t *s;

	if ((s = get_typed(g, key, K_STRING)) == NULL)
		return NULL;
	if (sp != NULL)
		*sp = s;
	return config_setting_get_string(s);
}

static int
require(struct loadctx *ctx, const config_setting_t *g, const char *key,
    const char *section)
{
	if (config_setting_get_member(g, key) != NULL)
		return 1;
	report(ctx, g, "missing required key '%s' in %s", key, section);
	return 0;
}

static int
get_int(struct loadctx *ctx, const config_setting_t *g, const char *key,
    long long min, long long max, long long *out)
{
	const config_setting_t *s;
	long long v;

	if ((s = get_typed(g, key, K_INT)) == NULL)
		return 0;
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		if (max == CONF_INT_MAX && v < min)
			report(ctx, s, "'%s' must be at least %lld (got %lld)",
			    key, min, v);
		else
			report(ctx, s, "'%s' must be between %lld and %lld "
			    "(got %lld)", key, min, max, v);
		return 0;
	}
	*out = v;
	return 1;
}

static void
set_int(struct loadctx *ctx, const config_setting_t *g, const char *key,
    long long min, long long max, int *dst)
{
	long long v;

	if (get_int(ctx, g, key, min, max, &v))
		*dst = (int)v;
}

static void
set_bool(const config_setting_t *g, const char *key, int *dst)
{
	const config_setting_t *s;

	if ((s = get_typed(g, key, K_BOOL)) != NULL)
		*dst = config_setting_get_bool(s) ? 1 : 0;
}

/* 1 and *out set when present and valid, 0 when absent, -1 when bad. */
static int
get_enum(struct loadctx *ctx, const config_setting_t *g, const char *key,
    const struct enumval *vals, int *out)
{
	const config_setting_t *s;
	const struct enumval *e;
	struct strbuf allowed = STRBUF_INIT;
	const char *v;

	if ((v = get_str(g, key, &s)) == NULL)
		return 0;
	for (e = vals; e->name != NULL; e++) {
		if (ascii_casecmp(e->name, v) == 0) {
			*out = e->value;
			return 1;
		}
	}
	for (e = vals; e->name != NULL; e++)
		strbuf_printf(&allowed, "%s%s", e == vals ? "" : ", ", e->name);
	report(ctx, s, "'%s' must be one of %s (got '%s')", key, allowed.s, v);
	strbuf_free(&allowed);
	return -1;
}

/* Copy the string elements of list `key` that pass `check` into *out. */
static void
get_strlist(struct loadctx *ctx, const config_setting_t *g, const char *key,
    str_check_fn check, const char *what, char ***out, size_t *np)
{
	const config_setting_t *s, *e;
	const char *v;
	unsigned int i, n;

	if ((s = get_typed(g, key, K_STRLIST)) == NULL)
		return;
	n = (unsigned int)config_setting_length(s);
	strv_free(*out, *np);
	*out = xcalloc(n + 1, sizeof(**out));
	*np = 0;
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if ((v = config_setting_get_string(e)) == NULL)
			continue;	/* reported by check_keys */
		if (check != NULL && !check(v)) {
			report(ctx, e, "'%s' in %s is not %s", v, key, what);
			continue;
		}
		(*out)[(*np)++] = xstrdup(v);
	}
}

static const char *
enum_name(const struct enumval *vals, int v)
{
	const struct enumval *e;

	for (e = vals; e->name != NULL; e++)
		if (e->value == v)
			return e->name;
	return "?";
}

static void
set_str(char **dst, char *val)
{
	free(*dst);
	*dst = val;
}

/* ---- paths ------------------------------------------------------------- */

/* base + "/" + rel, dropping "./" prefixes; '%' in base doubled if asked. */
static char *
join_path(const char *base, const char *rel, int escape_pct)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p;

	if (rel[0] == '/')
		return xstrdup(rel);
	while (rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		while (*rel == '/')
			rel++;
	}
	if (strcmp(rel, ".") == 0)
		rel = "";
	for (p = base; *p != '\0'; p++) {
		strbuf_putc(&sb, *p);
		if (*p == '%' && escape_pct)
			strbuf_putc(&sb, '%');
	}
	if (*rel != '\0') {
		if (sb.len == 0 || sb.s[sb.len - 1] != '/')
			strbuf_putc(&sb, '/');
		strbuf_puts(&sb, rel);
	}
	return strbuf_detach(&sb, NULL);
}

static char *
resolve(struct loadctx *ctx, const char *path)
{
	return join_path(ctx->basedir, path, 0);
}

/*
 * The absolute directory that relative paths resolve against: the
 * directory part of `path` when is_file, else `path` itself; NULL or
 * relative input is taken from the current directory.  NULL when getcwd
 * fails (errno set).
 */
static char *
make_basedir(const char *path, int is_file)
{
	char cwd[PATH_MAX], *dir, *abs, *slash;

	dir = xstrdup(path != NULL ? path : "");
	if (is_file) {
		if ((slash = strrchr(dir, '/')) == NULL)
			dir[0] = '\0';
		else if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	if (dir[0] == '/')
		abs = dir;
	else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			free(dir);
			return NULL;
		}
		abs = join_path(cwd, dir, 0);
		free(dir);
	}
	/* No trailing '/' except for the root itself. */
	while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
		abs[strlen(abs) - 1] = '\0';
	return abs;
}

/* ---- value checks ------------------------------------------------------ */

/* RFC 1035 host name: LDH labels of 1..63, at most 253, no trailing dot. */
static int
valid_domain(const char *d)
{
	size_t label = 0, total = 0;
	const char *p;

	for (p = d; *p != '\0'; p++) {
		if (++total > 253)
			return 0;
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
		if (*p == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && p[-1] != '-';
}

static int
valid_route_domain(const char *d)
{
	return strcmp(d, "*") == 0 || valid_domain(d);
}

/* Names that show up in logs: letters, digits, '.', '_', '-'. */
static int
valid_ident(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= 'A' && s[n] <= 'Z') ||
		    (s[n] >= '0' && s[n] <= '9') ||
		    s[n] == '.' || s[n] == '_' || s[n] == '-'))
			return 0;
	}
	return n > 0 && n <= CONF_IDENT_MAX;
}

/* A store ID becomes a file name: no leading dot, so no "..". */
static int
valid_cert_id(const char *s)
{
	return valid_ident(s) && s[0] != '.';
}

/* A local user becomes a maildir path component. */
static int
valid_local_user(const char *s)
{
	size_t n;

	if (s[0] == '.' || s[0] == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if ((unsigned char)s[n] <= ' ' || s[n] == 0x7f ||
		    s[n] == '/' || s[n] == '@')
			return 0;
	}
	return n <= CONF_IDENT_MAX;
}

static int
valid_address(const char *s)
{
	const char *at, *p;

	if ((at = strrchr(s, '@')) == NULL || at == s)
		return 0;
	for (p = s; p < at; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' ||
		    *p == '>')
			return 0;
	return valid_domain(at + 1);
}

static int
valid_domain_or_address(const char *s)
{
	return strchr(s, '@') != NULL ? valid_address(s) : valid_domain(s);
}

static int
valid_nonempty(const char *s)
{
	return s[0] != '\0';
}

/* routes.hosts: any form nexthop_parse() takes (see nexthop_parse.h). */
static int
valid_next_hop(const char *h)
{
	struct nexthop nh;
	char why[256];

	return nexthop_parse(h, &nh, why, sizeof(why)) == 0;
}

/*
 * A maildir template needs %u; only %u, %d and %% exist.  On failure *bad
 * is the unknown escape character, or NUL (no %u, or a lone final '%').
 */
static int
valid_template(const char *t, char *bad)
{
	const char *p;
	int has_user = 0;

	*bad = '\0';
	for (p = t; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '\0')
			return 0;
		if (*p == 'u')
			has_user = 1;
		else if (*p != 'd' && *p != '%') {
			*bad = *p;
			return 0;
		}
	}
	return has_user;
}

/* ---- defaults ---------------------------------------------------------- */

/* gethostname(); a name that is not a valid domain falls back to localhost. */
static char *
default_hostname(void)
{
	char buf[256];

	if (gethostname(buf, sizeof(buf)) == -1)
		return xstrdup("localhost");
	buf[sizeof(buf) - 1] = '\0';
	if (!valid_domain(buf))
		return xstrdup("localhost");
	return xstrdup(buf);
}

static void
conf_set_defaults(struct conf *c)
{
	c->data_dir = xstrdup("/var/lib/postern");
	c->user = xstrdup("postern");
	c->log_file = xstrdup("-");
	c->smime_encrypt = xstrdup("never");
	c->tls.min_protocol = xstrdup("TLSv1.2");
	c->tls.ciphers = xstrdup("ECDHE+AESGCM:ECDHE+CHACHA20");
	c->tls.ciphersuites = xstrdup("TLS_AES_256_GCM_SHA384:"
	    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
	c->tls.system_cas = 1;
	c->limits = default_limits;
	c->retry_min = 60;
	c->retry_max = 3600;
	c->max_queue_lifetime = 432000;
	c->pickup.max_message_size = 20971520;
}


/* ---- loading ----------------------------------------------------------- */

static void
errs_addf(struct conf_errors *errs, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	errs_push(errs, strbuf_detach(&sb, NULL));
}

/* With no caller's list (errs NULL) any problem means no conf at all. */
static struct conf *
finish_local(struct conf *c, struct conf_errors *errs,
    struct conf_errors *local)
{
	if (errs == NULL && local->n > 0) {
		conf_free(c);
		c = NULL;
	}
	conf_errors_free(local);
	return c;
}

/* Parse `text`; takes ownership of basedir.  NULL on a syntax error. */
static struct conf *
load_text(const char *text, const char *name, char *basedir,
    struct conf_errors *errs)
{
	struct loadctx ctx;
	struct strbuf from = STRBUF_INIT;
	config_t cfg;
	struct conf *c;
	const char *file, *why;

	memset(&ctx, 0, sizeof(ctx));
	ctx.errs = errs;
	ctx.name = name;
	ctx.basedir = basedir;
	ctx.first = errs->n;
	config_init(&cfg);
	config_set_include_dir(&cfg, basedir);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		file = config_error_file(&cfg);
		why = config_error_text(&cfg);
		report_at(&ctx, file != NULL ? file : name,
		    (unsigned int)config_error_line(&cfg), "%s",
		    why != NULL ? why : "cannot parse");
		config_destroy(&cfg);
		free(ctx.pos);
		free(basedir);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(name);
	conf_set_defaults(c);
	ctx.conf = c;
	parse_top(&ctx, config_root_setting(&cfg));
	if (c->alert_from == NULL) {
		strbuf_printf(&from, "postern@%s", c->hostname);
		c->alert_from = strbuf_detach(&from, NULL);
	}
	sort_errors(&ctx);
	free(ctx.pos);
	config_destroy(&cfg);
	free(basedir);
	return c;
}

/* Load the configuration file `path`, or the embedded default when NULL. */
struct conf *
conf_load(const char *path, struct conf_errors *errs)
{
	struct conf_errors local = { NULL, 0 };
	struct conf_errors *e = errs != NULL ? errs : &local;
	struct conf *c = NULL;
	char *text, *basedir;
	size_t len;

	if (path == NULL)
		return conf_load_string(embedded_default, CONF_EMBEDDED_NAME,
		    NULL, errs);
	if ((text = read_file(path, &len, CONF_MAX_SIZE)) == NULL)
		errs_addf(e, "%s: cannot read configuration: %s", path,
		    errno == EFBIG ? "larger than 4 MiB" : strerror(errno));
	else if (strlen(text) != len)
		errs_addf(e, "%s: cannot read configuration: it contains "
		    "a NUL byte", path);
	else if ((basedir = make_basedir(path, 1)) == NULL)
		errs_addf(e, "%s: cannot find the current directory: %s",
		    path, strerror(errno));
	else
		c = load_text(text, path, basedir, e);
	free(text);
	return finish_local(c, errs, &local);
}

/* Load configuration text; `name` stands for the file in messages. */
struct conf *
conf_load_string(const char *text, const char *name, const char *basedir,
    struct conf_errors *errs)
{
	struct conf_errors local = { NULL, 0 };
	struct conf_errors *e = errs != NULL ? errs : &local;
	struct conf *c = NULL;
	char *dir;

	if (name == NULL)
		name = CONF_STRING_NAME;
	if ((dir = make_basedir(basedir, 0)) == NULL)
		errs_addf(e, "%s: cannot find the current directory: %s",
		    name, strerror(errno));
	else
		c = load_text(text != NULL ? text : "", name, dir, e);
	return finish_local(c, errs, &local);
}

/* ---- sections ---------------------------------------------------------- */

static void
parse_top(struct loadctx *ctx, const config_setting_t *root)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	int e;

	check_keys(ctx, root, top_keys, NULL);
	parse_main(ctx, root);
	/* limits before policies: a policy starts from the global limits. */
	if ((s = get_typed(root, "limits", K_GROUP)) != NULL)
		parse_limits(ctx, s);
	if ((s = get_typed(root, "log", K_GROUP)) != NULL)
		parse_log(ctx, s);
	if ((s = get_typed(root, "tls", K_GROUP)) != NULL)
		parse_tls(ctx, s);
	if ((s = get_typed(root, "listeners", K_GROUPLIST)) != NULL)
		parse_listeners(ctx, s);
	/* policies before sender groups, which name them. */
	if ((s = get_typed(root, "policies", K_GROUP)) != NULL)
		parse_policies(ctx, s);
	if ((s = get_typed(root, "sender_groups", K_GROUPLIST)) != NULL)
		parse_sender_groups(ctx, s);
	get_strlist(ctx, root, "local_domains", valid_domain,
	    "a valid domain name", &c->local_domains, &c->nlocal_domains);
	if ((s = get_typed(root, "routes", K_GROUPLIST)) != NULL)
		parse_routes(ctx, s);
	if ((s = get_typed(root, "destinations", K_GROUPLIST)) != NULL)
		parse_destinations(ctx, s);
	if ((s = get_typed(root, "delivery", K_GROUP)) != NULL)
		parse_delivery(ctx, s);
	if ((s = get_typed(root, "alerts", K_GROUP)) != NULL)
		parse_alerts(ctx, s);
	if ((s = get_typed(root, "dkim", K_GROUPLIST)) != NULL)
		parse_dkim(ctx, s);
	if (get_enum(ctx, root, "dkim_on_error", dkim_on_error_vals, &e) == 1)
		c->dkim_on_error = (enum dkim_on_error)e;
	if ((s = get_typed(root, "smime", K_GROUP)) != NULL)
		parse_smime(ctx, s);
	if ((s = get_typed(root, "resolver", K_GROUP)) != NULL)
		parse_resolver(ctx, s);
	if ((s = get_typed(root, "metrics", K_GROUP)) != NULL)
		parse_metrics(ctx, s);
	if ((s = get_typed(root, "http", K_GROUP)) != NULL)
		parse_http(ctx, s);
	if ((s = get_typed(root, "pickup", K_GROUP)) != NULL)
		parse_pickup(ctx, s);
}

/* hostname, data_dir, user, workers. */
static void
parse_main(struct loadctx *ctx, const config_setting_t *root)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	const char *v;

	if ((v = get_str(root, "hostname", &s)) != NULL) {
		if (valid_domain(v))
			set_str(&c->hostname, xstrdup(v));
		else
			report(ctx, s, "'hostname' is not a valid domain name: "
			    "'%s'", v);
	}
	if (c->hostname == NULL)
		c->hostname = default_hostname();
	if ((v = get_str(root, "data_dir", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'data_dir' must not be empty");
		else
			set_str(&c->data_dir, resolve(ctx, v));
	}
	if ((v = get_str(root, "user", &s)) != NULL) {
		if (!valid_ident(v) || v[0] == '-' || v[0] == '.')
			report(ctx, s, "'user' is not a valid user name: '%s'", v);
		else
			set_str(&c->user, xstrdup(v));
	}
	set_int(ctx, root, "workers", 0, CONF_WORKERS_MAX, &c->workers);
}

static void
parse_log(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	const char *v;
	int fmt;

	check_keys(ctx, g, log_keys, "log");
	if ((v = get_str(g, "file", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'file' must not be empty (\"-\" is "
			    "stderr)");
		else if (strcmp(v, "-") == 0 || strcmp(v, "syslog") == 0)
			set_str(&c->log_file, xstrdup(v));
		else
			set_str(&c->log_file, resolve(ctx, v));
	}
	if (get_enum(ctx, g, "format", log_format_vals, &fmt) == 1)
		c->log_json = fmt;
}

/* limits.spool_min_free: octets, often above 2^31, where libconfig 1.5
 * needs the L suffix or wraps the number (a negative value is that). */
static void
parse_spool_min_free(struct loadctx *ctx, const config_setting_t *g,
    struct conf_limits *l)
{
	const config_setting_t *s;
	long long v;

	s = get_typed(g, "spool_min_free", K_INT);
	if (s != NULL && config_setting_get_int64(s) < 0) {
		report(ctx, s, "'spool_min_free' must be 0 or more (got %lld; "
		    "numbers above 2147483647 need the L suffix, e.g. "
		    "10737418240L)", (long long)config_setting_get_int64(s));
		return;
	}
	if (get_int(ctx, g, "spool_min_free", 0, CONF_SPOOL_MIN_FREE_MAX, &v))
		l->spool_min_free = (uint64_t)v;
}

/* The limits keys present in `g` (a limits group or a policy). */
static void
parse_limit_values(struct loadctx *ctx, const config_setting_t *g,
    struct conf_limits *l, int global)
{
	long long v;
	int e;

	/* RFC 5322 2.1.1: lines up to 998 octets plus CRLF must pass. */
	if (get_int(ctx, g, "max_line_length", 1000, CONF_INT_MAX, &v))
		l->max_line_length = (size_t)v;
	if (global)
		set_int(ctx, g, "max_connections", 1, CONF_INT_MAX,
		    &l->max_connections);
	if (global)
		parse_spool_min_free(ctx, g, l);
	set_int(ctx, g, "max_connections_per_client", 1, CONF_INT_MAX,
	    &l->max_connections_per_client);
	set_int(ctx, g, "auth_failures", 1, 64, &l->auth_failures);
	set_int(ctx, g, "auth_failure_window", 1, 86400,
	    &l->auth_failure_window);
	set_int(ctx, g, "auth_failure_delay", 0, 60, &l->auth_failure_delay);
	set_int(ctx, g, "command_timeout", 1, CONF_INT_MAX,
	    &l->command_timeout);
	set_int(ctx, g, "data_block_timeout", 1, CONF_INT_MAX,
	    &l->data_block_timeout);
	set_int(ctx, g, "data_timeout", 1, CONF_INT_MAX, &l->data_timeout);
	if (get_enum(ctx, g, "bare_line_ends", bare_vals, &e) == 1)
		l->bare_line_ends = (enum bare_line_ends)e;
}

static void
parse_limits(struct loadctx *ctx, const config_setting_t *g)
{
	check_keys(ctx, g, limits_keys, "limits");
	parse_limit_values(ctx, g, &ctx->conf->limits, 1);
}

static void
parse_certref(struct loadctx *ctx, const config_setting_t *s,
    struct conf_certref *cr)
{
	static const char *const keys[] = { "cert", "key", "chain" };
	const config_setting_t *e;
	char **dst[3];
	const char *v;
	size_t i;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		if (valid_cert_id(v))
			set_str(&cr->id, xstrdup(v));
		else
			report(ctx, s, "certificate ID '%s' may contain only "
			    "letters, digits, '.', '_' and '-' and must not "
			    "start with '.'", v);
		return;
	}
	check_keys(ctx, s, cert_keys, "certificate");
	set_str(&cr->id, NULL);
	require(ctx, s, "cert", "certificate");
	require(ctx, s, "key", "certificate");
	dst[0] = &cr->cert;
	dst[1] = &cr->key;
	dst[2] = &cr->chain;
	for (i = 0; i < 3; i++) {
		if ((v = get_str(s, keys[i], &e)) == NULL)
			continue;
		if (*v == '\0')
			report(ctx, e, "'%s' must not be empty", keys[i]);
		else
			set_str(dst[i], resolve(ctx, v));
	}
}

/* certificate = ID | { cert; key; chain; } | [ one of those, ... ] */
static void
parse_certificates(struct loadctx *ctx, const config_setting_t *s,
    struct conf_listener *l)
{
	const config_setting_t *e;
	unsigned int i, n;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		parse_certref(ctx, s, &l->certificate);
		return;
	}
	n = (unsigned int)config_setting_length(s);
	if (n == 0) {
		report(ctx, s, "'certificate' list must not be empty");
		return;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING &&
		    config_setting_type(e) != CONFIG_TYPE_GROUP) {
			report(ctx, e, "'certificate' list elements must be "
			    "certificate IDs or groups { cert; key; chain; }");
			continue;
		}
		if (i == 0) {
			parse_certref(ctx, e, &l->certificate);
			continue;
		}
		l->sni_certs = xrealloc(l->sni_certs, (l->nsni_certs + 1) *
		    sizeof(*l->sni_certs));
		memset(&l->sni_certs[l->nsni_certs], 0,
		    sizeof(*l->sni_certs));
		parse_certref(ctx, e, &l->sni_certs[l->nsni_certs++]);
	}
}

static void
parse_listener(struct loadctx *ctx, const config_setting_t *g,
    struct conf_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const config_setting_t *s;
	const char *v;
	int e;

	l->line = (int)config_setting_source_line(g);
	l->certificate.id = xstrdup("default");
	check_keys(ctx, g, listener_keys, "listeners");
	require(ctx, g, "name", "listeners");
	require(ctx, g, "address", "listeners");
	require(ctx, g, "port", "listeners");
	if ((v = get_str(g, "name", &s)) != NULL) {
		if (!valid_ident(v))
			report(ctx, s, "listener name '%s' may contain only "
			    "letters, digits, '.', '_' and '-'", v);
		l->name = xstrdup(v);
	}
	if ((v = get_str(g, "address", &s)) != NULL) {
		if (sockaddr_parse(v, 0, &ss, &sslen) == -1)
			report(ctx, s, "listener address '%s' is not a literal "
			    "IPv4 or IPv6 address", v);
		l->address = xstrdup(v);
	}
	set_int(ctx, g, "port", 1, 65535, &l->port);
	if (get_enum(ctx, g, "tls", listener_tls_vals, &e) == 1)
		l->tls = (enum listener_tls)e;
	if (get_enum(ctx, g, "auth", listener_auth_vals, &e) == 1)
		l->auth = (enum listener_auth)e;
	if ((s = get_typed(g, "certificate", K_CERT)) != NULL)
		parse_certificates(ctx, s, l);
	parse_proxy_from(ctx, g, l);
}

/* proxy_protocol = true needs proxy_from (who may send the header);
 * proxy_from without it would silently do nothing. */
static void
parse_proxy_from(struct loadctx *ctx, const config_setting_t *g,
    struct conf_listener *l)
{
	const config_setting_t *s, *pp;
	char where[160];

	set_bool(g, "proxy_protocol", &l->proxy_protocol);
	pp = config_setting_get_member(g, "proxy_protocol");
	if (pp != NULL && config_setting_type(pp) != CONFIG_TYPE_BOOL)
		return;		/* its type is reported by check_keys */
	if ((s = config_setting_get_member(g, "proxy_from")) == NULL) {
		if (l->proxy_protocol)
			report(ctx, g, "listener '%s': proxy_protocol = true "
			    "needs proxy_from = [ ... ], the networks of the "
			    "proxies allowed to connect", l->name ? l->name : "");
		return;
	}
	if (!l->proxy_protocol)
		report(ctx, s, "listener '%s': proxy_from without "
		    "proxy_protocol = true (add it, or remove proxy_from)",
		    l->name ? l->name : "");
	if ((s = get_typed(g, "proxy_from", K_STRLIST)) == NULL)
		return;
	snprintf(where, sizeof(where), "proxy_from of listener '%s'",
	    l->name ? l->name : "");
	parse_cidr_list(ctx, s, where, &l->proxy_from, &l->nproxy_from);
}

/* Same literal address (however written) and the same port. */
static int
same_endpoint(const struct conf_listener *a, const struct conf_listener *b)
{
	struct sockaddr_storage sa, sb;
	socklen_t la, lb;

	if (a->address == NULL || b->address == NULL || a->port == 0 ||
	    a->port != b->port)
		return 0;
	if (sockaddr_parse(a->address, a->port, &sa, &la) == -1 ||
	    sockaddr_parse(b->address, b->port, &sb, &lb) == -1)
		return 0;
	return la == lb && memcmp(&sa, &sb, la) == 0;
}

static void
check_listener_dups(struct loadctx *ctx, const config_setting_t *g,
    size_t idx)
{
	const struct conf_listener *l = &ctx->conf->listeners[idx], *o;
	size_t i;

	for (i = 0; i < idx; i++) {
		o = &ctx->conf->listeners[i];
		if (l->name != NULL && o->name != NULL &&
		    strcmp(l->name, o->name) == 0) {
			report(ctx, g, "duplicate listener name '%s' (first at "
			    "line %d)", l->name, o->line);
			return;
		}
		if (same_endpoint(l, o)) {
			report(ctx, g, "duplicate listener address %s port %d "
			    "(already used by listener '%s' at line %d)",
			    l->address, l->port, o->name ? o->name : "",
			    o->line);
			return;
		}
	}
}

static void
parse_listeners(struct loadctx *ctx, const config_setting_t *list)
{
	struct conf *c = ctx->conf;
	const config_setting_t *e;
	unsigned int i, n;

	n = (unsigned int)config_setting_length(list);
	c->listeners = xcalloc(n + 1, sizeof(*c->listeners));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e))
			continue;	/* reported by check_keys */
		parse_listener(ctx, e, &c->listeners[c->nlisteners]);
		check_listener_dups(ctx, e, c->nlisteners);
		c->nlisteners++;
	}
}

static void
parse_tls(struct loadctx *ctx, const config_setting_t *g)
{
	static const char *const keys[] = { "ciphers", "ciphersuites" };
	struct conf_tls *t = &ctx->conf->tls;
	const config_setting_t *s;
	char **dst[2];
	const char *v;
	size_t i;
	int e;

	check_keys(ctx, g, tls_keys, "tls");
	if (get_enum(ctx, g, "min_protocol", min_protocol_vals, &e) == 1)
		set_str(&t->min_protocol,
		    xstrdup(enum_name(min_protocol_vals, e)));
	dst[0] = &t->ciphers;
	dst[1] = &t->ciphersuites;
	for (i = 0; i < 2; i++) {
		if ((v = get_str(g, keys[i], &s)) == NULL)
			continue;
		if (*v == '\0')
			report(ctx, s, "'%s' must not be empty", keys[i]);
		else
			set_str(dst[i], xstrdup(v));
	}
	set_bool(g, "system_cas", &t->system_cas);
}

static void
parse_policy(struct loadctx *ctx, const config_setting_t *g,
    struct conf_policy *p)
{
	struct strbuf section = STRBUF_INIT;
	long long v;
	int e;

	p->name = xstrdup(config_setting_name(g));
	p->line = (int)config_setting_source_line(g);
	p->tls = POLICY_TLS_UNSET;
	p->max_message_size = 20971520;
	p->max_recipients = 100;
	p->limits = ctx->conf->limits;
	strbuf_printf(&section, "policy '%s'", p->name);
	check_keys(ctx, g, policy_keys, section.s);
	require(ctx, g, "action", section.s);
	strbuf_free(&section);
	if (get_enum(ctx, g, "action", policy_action_vals, &e) == 1)
		p->action = (enum policy_action)e;
	if (get_enum(ctx, g, "tls", policy_tls_vals, &e) == 1)
		p->tls = (enum policy_tls)e;
	set_bool(g, "allow_plaintext_auth", &p->allow_plaintext_auth);
	if (get_int(ctx, g, "max_message_size", 1, CONF_INT_MAX, &v))
		p->max_message_size = (size_t)v;
	set_int(ctx, g, "max_recipients", 1, CONF_INT_MAX,
	    &p->max_recipients);
	parse_limit_values(ctx, g, &p->limits, 0);
}

/* policies = { NAME = { ... }; ... }; libconfig rejects duplicate names. */
static void
parse_policies(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	unsigned int i, n;

	n = (unsigned int)config_setting_length(g);
	c->policies = xcalloc(n + 1, sizeof(*c->policies));
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(g, i);
		if (!config_setting_is_group(s)) {
			report(ctx, s, "policy '%s' must be a group ({ action = "
			    "...; })", config_setting_name(s));
			continue;
		}
		parse_policy(ctx, s, &c->policies[c->npolicies++]);
	}
}

/* Say why cidr_parse refused `text`: most often host bits are set. */
static void
cidr_error(struct loadctx *ctx, const config_setting_t *e, const char *text,
    const char *where)
{
	char addr[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
	unsigned char buf[16];
	const char *slash, *p;
	size_t len;
	int af, max, prefix = 0, i, bits;

	slash = strchr(text, '/');
	len = slash != NULL ? (size_t)(slash - text) : 0;
	if (slash == NULL || len == 0 || len >= sizeof(addr))
		goto bad;
	memcpy(addr, text, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1) {
		af = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, buf) == 1) {
		af = AF_INET6;
		max = 128;
	} else
		goto bad;
	for (p = slash + 1; *p >= '0' && *p <= '9' && prefix <= max; p++)
		prefix = prefix * 10 + (*p - '0');
	if (p == slash + 1 || *p != '\0' || prefix > max) {
		report(ctx, e, "bad network '%s' in %s: the "
		    "prefix length must be 0 to %d", text, where, max);
		return;
	}
	for (i = 0; i < max / 8; i++) {
		bits = prefix - i * 8;
		buf[i] &= bits >= 8 ? 0xff : bits <= 0 ? 0 :
		    (unsigned char)(0xff << (8 - bits));
	}
	if (inet_ntop(af, buf, canon, sizeof(canon)) == NULL)
		goto bad;
	report(ctx, e, "bad network '%s' in %s: host bits must "
	    "be zero (did you mean %s/%d?)", text, where, canon, prefix);
	return;
bad:
	report(ctx, e, "bad network '%s' in %s: not an IP "
	    "address or CIDR network (like 192.0.2.0/24 or 2001:db8::/32)",
	    text, where);
}

/* A list of networks `s` (type-checked) into *out; `where` names it in
 * messages ("sender group 'G'"). */
static void
parse_cidr_list(struct loadctx *ctx, const config_setting_t *s,
    const char *where, struct cidr **out, size_t *nout)
{
	const config_setting_t *e;
	const char *v;
	unsigned int i, n;

	n = (unsigned int)config_setting_length(s);
	if (n == 0)
		report(ctx, s, "'%s' must not be empty", config_setting_name(s));
	*out = xcalloc(n + 1, sizeof(**out));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if ((v = config_setting_get_string(e)) == NULL)
			continue;	/* reported by check_keys */
		if (cidr_parse(v, &(*out)[*nout]) == 0)
			(*nout)++;
		else
			cidr_error(ctx, e, v, where);
	}
}

static void
parse_networks(struct loadctx *ctx, const config_setting_t *g,
    struct conf_sender_group *sg)
{
	const config_setting_t *s;
	char where[160];

	if ((s = get_typed(g, "networks", K_STRLIST)) == NULL)
		return;
	snprintf(where, sizeof(where), "sender group '%s'",
	    sg->name ? sg->name : "");
	parse_cidr_list(ctx, s, where, &sg->networks, &sg->nnetworks);
}

static void
resolve_policy(struct loadctx *ctx, const config_setting_t *g,
    struct conf_sender_group *sg)
{
	struct conf *c = ctx->conf;
	struct strbuf names = STRBUF_INIT;
	const config_setting_t *s;
	const char *v;
	size_t i;

	if ((v = get_str(g, "policy", &s)) == NULL)
		return;
	sg->policy = xstrdup(v);
	for (i = 0; i < c->npolicies; i++) {
		if (strcmp(c->policies[i].name, v) == 0) {
			sg->policy_index = i;
			strbuf_free(&names);
			return;
		}
		strbuf_printf(&names, "%s%s", i ? ", " : "",
		    c->policies[i].name);
	}
	report(ctx, s, "unknown policy '%s' in sender group '%s' (defined: %s)",
	    v, sg->name ? sg->name : "", names.len ? names.s : "none");
	strbuf_free(&names);
}

static void
parse_sender_group(struct loadctx *ctx, const config_setting_t *g,
    struct conf_sender_group *sg)
{
	const config_setting_t *s;
	const char *v;

	sg->line = (int)config_setting_source_line(g);
	check_keys(ctx, g, sender_group_keys, "sender_groups");
	require(ctx, g, "name", "sender_groups");
	require(ctx, g, "networks", "sender_groups");
	require(ctx, g, "policy", "sender_groups");
	if ((v = get_str(g, "name", &s)) != NULL) {
		if (!valid_ident(v))
			report(ctx, s, "sender group name '%s' may contain only "
			    "letters, digits, '.', '_' and '-'", v);
		sg->name = xstrdup(v);
	}
	parse_networks(ctx, g, sg);
	resolve_policy(ctx, g, sg);
}

static void
parse_sender_groups(struct loadctx *ctx, const config_setting_t *list)
{
	struct conf *c = ctx->conf;
	struct conf_sender_group *sg;
	const config_setting_t *e;
	unsigned int i, n;
	size_t j;

	n = (unsigned int)config_setting_length(list);
	c->sender_groups = xcalloc(n + 1, sizeof(*c->sender_groups));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e))
			continue;	/* reported by check_keys */
		sg = &c->sender_groups[c->nsender_groups];
		parse_sender_group(ctx, e, sg);
		for (j = 0; sg->name != NULL && j < c->nsender_groups; j++) {
			if (c->sender_groups[j].name != NULL &&
			    strcmp(c->sender_groups[j].name, sg->name) == 0) {
				report(ctx, e, "duplicate sender group name '%s' "
				    "(first at line %d)", sg->name,
				    c->sender_groups[j].line);
				break;
			}
		}
		c->nsender_groups++;
	}
}

static void
parse_route_maildir(struct loadctx *ctx, const config_setting_t *g,
    struct conf_route *r)
{
	const config_setting_t *s;
	const char *v;
	char bad;
	int e;

	if ((v = get_str(g, "maildir", &s)) != NULL) {
		if (valid_template(v, &bad))
			r->maildir = join_path(ctx->basedir, v, 1);
		else if (bad != '\0')
			report(ctx, s, "maildir template '%s' has an unknown "
			    "escape '%%%c' (use %%u, %%d or %%%%)", v, bad);
		else
			report(ctx, s, "maildir template '%s' must contain %%u "
			    "(the user) and no lone '%%'", v);
	}
	if (get_enum(ctx, g, "unknown_users", unknown_users_vals, &e) == 1)
		r->unknown_users = (enum unknown_users)e;
}

static void
parse_route_hosts(struct loadctx *ctx, const config_setting_t *g,
    struct conf_route *r)
{
	const config_setting_t *s;
	const char *v;
	int e;

	get_strlist(ctx, g, "hosts", valid_next_hop, "a next hop (host, "
	    "host:port, [host or address]:port or lmtp:...)", &r->hosts,
	    &r->nhosts);
	if ((s = get_typed(g, "hosts", K_STRLIST)) != NULL &&
	    config_setting_length(s) == 0)
		report(ctx, s, "'hosts' must not be empty");
	if (get_enum(ctx, g, "tls", route_tls_vals, &e) == 1)
		r->tls = (enum route_tls)e;
	if ((v = get_str(g, "auth_user", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'auth_user' must not be empty");
		else
			r->auth_user = xstrdup(v);
	}
	if ((v = get_str(g, "auth_password_file", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'auth_password_file' must not be empty");
		else
			r->auth_password_file = resolve(ctx, v);
	}
	if ((config_setting_get_member(g, "auth_user") == NULL) !=
	    (config_setting_get_member(g, "auth_password_file") == NULL))
		report(ctx, g, "a route with 'auth_user' needs "
		    "'auth_password_file' and the other way round");
}

static void
parse_route(struct loadctx *ctx, const config_setting_t *g,
    struct conf_route *r)
{
	static const char *const hosts_only[] = { "tls", "auth_user",
	    "auth_password_file" };
	const config_setting_t *s;
	const char *v;
	size_t i;
	int has_m, has_h;

	r->line = (int)config_setting_source_line(g);
	r->tls = ROUTE_TLS_UNSET;
	r->unknown_users = UNKNOWN_USERS_ACCEPT;
	check_keys(ctx, g, route_keys, "routes");
	require(ctx, g, "domain", "routes");
	if ((v = get_str(g, "domain", &s)) != NULL) {
		if (!valid_route_domain(v))
			report(ctx, s, "route domain '%s' is not a valid domain "
			    "name or \"*\"", v);
		r->domain = xstrdup(v);
	}
	has_m = config_setting_get_member(g, "maildir") != NULL;
	has_h = config_setting_get_member(g, "hosts") != NULL;
	if (has_m && has_h)
		report(ctx, g, "a route must have either 'maildir' or 'hosts', "
		    "not both");
	else if (!has_m && !has_h)
		report(ctx, g, "a route must have 'maildir' or 'hosts'");
	if (has_m)
		parse_route_maildir(ctx, g, r);
	if (has_h)
		parse_route_hosts(ctx, g, r);
	for (i = 0; has_m && !has_h && i < 3; i++)
		if ((s = config_setting_get_member(g, hosts_only[i])) != NULL)
			report(ctx, s, "'%s' applies only to routes with 'hosts'",
			    hosts_only[i]);
	if (has_h && !has_m &&
	    (s = config_setting_get_member(g, "unknown_users")) != NULL)
		report(ctx, s, "'unknown_users' applies only to maildir routes");
	get_strlist(ctx, g, "users", valid_local_user, "a valid local user "
	    "name", &r->users, &r->nusers);
}

static void
parse_routes(struct loadctx *ctx, const config_setting_t *list)
{
	struct conf *c = ctx->conf;
	struct conf_route *r;
	const config_setting_t *e;
	unsigned int i, n;
	size_t j;

	n = (unsigned int)config_setting_length(list);
	c->routes = xcalloc(n + 1, sizeof(*c->routes));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e))
			continue;	/* reported by check_keys */
		r = &c->routes[c->nroutes];
		parse_route(ctx, e, r);
		for (j = 0; r->domain != NULL && j < c->nroutes; j++) {
			if (c->routes[j].domain != NULL && ascii_casecmp(
			    c->routes[j].domain, r->domain) == 0) {
				report(ctx, e, "duplicate route for domain '%s' "
				    "(first at line %d)", r->domain,
				    c->routes[j].line);
				break;
			}
		}
		c->nroutes++;
	}
}

static void
parse_destination(struct loadctx *ctx, const config_setting_t *g,
    struct conf_destination *d)
{
	const config_setting_t *s;
	const char *v;
	int e;

	d->line = (int)config_setting_source_line(g);
	d->tls = DEST_TLS_PREFERRED;
	d->max_connections = 20;
	check_keys(ctx, g, destination_keys, "destinations");
	require(ctx, g, "domain", "destinations");
	if ((v = get_str(g, "domain", &s)) != NULL) {
		if (!valid_route_domain(v))
			report(ctx, s, "destination domain '%s' is not a valid "
			    "domain name or \"*\"", v);
		d->domain = xstrdup(v);
	}
	if (get_enum(ctx, g, "tls", dest_tls_vals, &e) == 1)
		d->tls = (enum dest_tls)e;
	set_int(ctx, g, "max_connections", 1, CONF_INT_MAX,
	    &d->max_connections);
}

static void
parse_destinations(struct loadctx *ctx, const config_setting_t *list)
{
	struct conf *c = ctx->conf;
	struct conf_destination *d;
	const config_setting_t *e;
	unsigned int i, n;
	size_t j;

	n = (unsigned int)config_setting_length(list);
	c->destinations = xcalloc(n + 1, sizeof(*c->destinations));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e))
			continue;	/* reported by check_keys */
		d = &c->destinations[c->ndestinations];
		parse_destination(ctx, e, d);
		for (j = 0; d->domain != NULL && j < c->ndestinations; j++) {
			if (c->destinations[j].domain != NULL &&
			    ascii_casecmp(c->destinations[j].domain,
			    d->domain) == 0) {
				report(ctx, e, "duplicate destination for domain "
				    "'%s' (first at line %d)", d->domain,
				    c->destinations[j].line);
				break;
			}
		}
		c->ndestinations++;
	}
}

static void
parse_delivery(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;

	check_keys(ctx, g, delivery_keys, "delivery");
	set_int(ctx, g, "retry_min", 1, CONF_INT_MAX, &c->retry_min);
	set_int(ctx, g, "retry_max", 1, CONF_INT_MAX, &c->retry_max);
	set_int(ctx, g, "max_queue_lifetime", 1, CONF_INT_MAX,
	    &c->max_queue_lifetime);
	set_bool(g, "paused", &c->paused);
	if (c->retry_min > c->retry_max) {
		if ((s = config_setting_get_member(g, "retry_min")) == NULL &&
		    (s = config_setting_get_member(g, "retry_max")) == NULL)
			s = g;
		report(ctx, s, "'retry_min' (%d) must not be greater than "
		    "'retry_max' (%d)", c->retry_min, c->retry_max);
	}
}

static void
parse_alerts(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	const char *v;

	check_keys(ctx, g, alerts_keys, "alerts");
	get_strlist(ctx, g, "recipients", valid_address, "an email address",
	    &c->alert_recipients, &c->nalert_recipients);
	if ((v = get_str(g, "from", &s)) != NULL) {
		if (valid_address(v))
			set_str(&c->alert_from, xstrdup(v));
		else
			report(ctx, s, "'from' in alerts is not an email "
			    "address: '%s'", v);
	}
}

static void
parse_dkim_entry(struct loadctx *ctx, const config_setting_t *g,
    struct conf_dkim *d)
{
	const config_setting_t *s;
	const char *v;

	check_keys(ctx, g, dkim_keys, "dkim");
	require(ctx, g, "domain", "dkim");
	require(ctx, g, "selector", "dkim");
	require(ctx, g, "key", "dkim");
	if ((v = get_str(g, "domain", &s)) != NULL) {
		if (!valid_domain(v))
			report(ctx, s, "dkim domain '%s' is not a valid domain "
			    "name", v);
		d->domain = xstrdup(v);
	}
	if ((v = get_str(g, "selector", &s)) != NULL) {
		if (!valid_domain(v))
			report(ctx, s, "dkim selector '%s' is not valid "
			    "(letters, digits, '-' and '.')", v);
		d->selector = xstrdup(v);
	}
	if ((v = get_str(g, "key", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'key' must not be empty");
		else
			d->key = resolve(ctx, v);
	}
	set_bool(g, "subdomains", &d->subdomains);
	/* x= must lie after t= (RFC 6376 3.5); a year is plenty */
	set_int(ctx, g, "expire", 0, 31536000, &d->expire);
	d->line = (int)config_setting_source_line(g);
}

static void
parse_dkim(struct loadctx *ctx, const config_setting_t *list)
{
	struct conf *c = ctx->conf;
	struct conf_dkim *d, *o;
	const config_setting_t *e;
	unsigned int i, n;
	size_t j;

	n = (unsigned int)config_setting_length(list);
	c->dkim = xcalloc(n + 1, sizeof(*c->dkim));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e))
			continue;	/* reported by check_keys */
		d = &c->dkim[c->ndkim];
		parse_dkim_entry(ctx, e, d);
		for (j = 0; d->domain && d->selector && j < c->ndkim; j++) {
			o = &c->dkim[j];
			if (o->domain && o->selector &&
			    ascii_casecmp(o->domain, d->domain) == 0 &&
			    ascii_casecmp(o->selector, d->selector) == 0) {
				report(ctx, e, "duplicate dkim selector '%s' for "
				    "domain '%s'", d->selector, d->domain);
				break;
			}
		}
		c->ndkim++;
	}
}

static void
parse_smime(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	const char *v;
	int e;

	check_keys(ctx, g, smime_keys, "smime");
	if ((v = get_str(g, "keys", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'keys' must not be empty");
		else
			set_str(&c->smime_keys, resolve(ctx, v));
	}
	get_strlist(ctx, g, "sign", valid_domain_or_address, "a domain name "
	    "or email address", &c->smime_sign, &c->nsmime_sign);
	c->smime_line = (int)config_setting_source_line(g);
	if (get_enum(ctx, g, "encrypt", smime_encrypt_vals, &e) == 1) {
		set_str(&c->smime_encrypt,
		    xstrdup(enum_name(smime_encrypt_vals, e)));
		c->smime_encrypt_mode = (enum smime_encrypt)e;
	}
	if (c->smime_keys == NULL && config_setting_get_member(g, "keys") ==
	    NULL && (c->nsmime_sign > 0 ||
	    strcmp(c->smime_encrypt, "never") != 0))
		report(ctx, g, "smime needs 'keys' (the key and certificate "
		    "directory) to sign or encrypt");
}

static void
parse_resolver(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;

	check_keys(ctx, g, resolver_keys, "resolver");
	get_strlist(ctx, g, "local_data", valid_nonempty, "a resource record",
	    &c->resolver_local_data, &c->nresolver_local_data);
}

/* metrics = { address; port; }: the block turns the listener on. */
static void
parse_metrics(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const config_setting_t *s;
	const char *v;

	check_keys(ctx, g, metrics_keys, "metrics");
	set_str(&c->metrics_address, xstrdup("127.0.0.1"));
	c->metrics_port = 9725;
	if ((v = get_str(g, "address", &s)) != NULL) {
		if (sockaddr_parse(v, 0, &ss, &sslen) == -1)
			report(ctx, s, "metrics address '%s' is not a literal "
			    "IPv4 or IPv6 address", v);
		set_str(&c->metrics_address, xstrdup(v));
	}
	set_int(ctx, g, "port", 1, 65535, &c->metrics_port);
}

/*
 * http = { address; port; certificate; }: a listener named "http" with
 * implicit TLS and AUTH required (the API never speaks plaintext).  Its
 * address and port must differ from every SMTP listener's.
 */
static void
parse_http(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	struct conf_listener *l;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const config_setting_t *s;
	const char *v;
	size_t i;

	check_keys(ctx, g, http_keys, "http");
	require(ctx, g, "address", "http");
	require(ctx, g, "port", "http");
	l = c->http = xcalloc(1, sizeof(*l));
	l->line = (int)config_setting_source_line(g);
	l->name = xstrdup("http");
	l->tls = LISTENER_TLS_IMPLICIT;
	l->auth = LISTENER_AUTH_REQUIRED;
	l->certificate.id = xstrdup("default");
	if ((v = get_str(g, "address", &s)) != NULL) {
		if (sockaddr_parse(v, 0, &ss, &sslen) == -1)
			report(ctx, s, "http address '%s' is not a literal IPv4 "
			    "or IPv6 address", v);
		l->address = xstrdup(v);
	}
	set_int(ctx, g, "port", 1, 65535, &l->port);
	if ((s = get_typed(g, "certificate", K_CERT)) != NULL)
		parse_certificates(ctx, s, l);
	for (i = 0; i < c->nlisteners; i++)
		if (same_endpoint(l, &c->listeners[i]))
			report(ctx, g, "http address %s port %d is already used "
			    "by listener '%s' (line %d)", l->address, l->port,
			    c->listeners[i].name, c->listeners[i].line);
}

/* pickup = { dir; group; max_message_size; }: dir and group together. */
static void
parse_pickup(struct loadctx *ctx, const config_setting_t *g)
{
	struct conf *c = ctx->conf;
	const config_setting_t *s;
	const char *v;
	int n;

	check_keys(ctx, g, pickup_keys, "pickup");
	require(ctx, g, "dir", "pickup");
	require(ctx, g, "group", "pickup");
	if ((v = get_str(g, "dir", &s)) != NULL) {
		if (*v == '\0')
			report(ctx, s, "'dir' must not be empty");
		else
			set_str(&c->pickup.dir, resolve(ctx, v));
	}
	if ((v = get_str(g, "group", &s)) != NULL) {
		if (!valid_ident(v) || v[0] == '-' || v[0] == '.')
			report(ctx, s, "'group' is not a valid group name: '%s'",
			    v);
		else
			set_str(&c->pickup.group, xstrdup(v));
	}
	n = (int)c->pickup.max_message_size;
	set_int(ctx, g, "max_message_size", 1024, CONF_INT_MAX, &n);
	c->pickup.max_message_size = (size_t)n;
}

/* ---- freeing ----------------------------------------------------------- */

static void
certref_free(struct conf_certref *cr)
{
	free(cr->id);
	free(cr->cert);
	free(cr->key);
	free(cr->chain);
}

static void
route_free(struct conf_route *r)
{
	free(r->domain);
	free(r->maildir);
	strv_free(r->hosts, r->nhosts);
	free(r->auth_user);
	free(r->auth_password_file);
	strv_free(r->users, r->nusers);
}

static void
listener_free(struct conf_listener *l)
{
	size_t j;

	if (l == NULL)
		return;
	free(l->name);
	free(l->address);
	certref_free(&l->certificate);
	for (j = 0; j < l->nsni_certs; j++)
		certref_free(&l->sni_certs[j]);
	free(l->sni_certs);
	free(l->proxy_from);
}

/* Free a conf and everything it owns; NULL is fine. */
void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisteners; i++)
		listener_free(&c->listeners[i]);
	free(c->listeners);
	listener_free(c->http);
	free(c->http);
	free(c->pickup.dir);
	free(c->pickup.group);
	for (i = 0; i < c->nsender_groups; i++) {
		free(c->sender_groups[i].name);
		free(c->sender_groups[i].networks);
		free(c->sender_groups[i].policy);
	}
	free(c->sender_groups);
	for (i = 0; i < c->npolicies; i++)
		free(c->policies[i].name);
	free(c->policies);
	for (i = 0; i < c->nroutes; i++)
		route_free(&c->routes[i]);
	free(c->routes);
	for (i = 0; i < c->ndestinations; i++)
		free(c->destinations[i].domain);
	free(c->destinations);
	for (i = 0; i < c->ndkim; i++) {
		free(c->dkim[i].domain);
		free(c->dkim[i].selector);
		free(c->dkim[i].key);
	}
	free(c->dkim);
	strv_free(c->local_domains, c->nlocal_domains);
	strv_free(c->alert_recipients, c->nalert_recipients);
	strv_free(c->resolver_local_data, c->nresolver_local_data);
	strv_free(c->smime_sign, c->nsmime_sign);
	free(c->alert_from);
	free(c->smime_keys);
	free(c->smime_encrypt);
	free(c->tls.min_protocol);
	free(c->tls.ciphers);
	free(c->tls.ciphersuites);
	free(c->path);
	free(c->hostname);
	free(c->data_dir);
	free(c->user);
	free(c->log_file);
	free(c->metrics_address);
	free(c);
}

/* Free the messages and reset the list to empty; NULL is fine. */
void
conf_errors_free(struct conf_errors *errs)
{
	size_t i;

	if (errs == NULL)
		return;
	for (i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

/* ---- small public helpers ---------------------------------------------- */

struct conf *
conf_load_for_command(const char *path)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	size_t k;

	if (path == NULL)
		path = conf_default_path();
	c = conf_load(path, &errs);
	if (c == NULL || errs.n > 0) {
		for (k = 0; k < errs.n; k++)
			fprintf(stderr, "%s\n", errs.msgs[k]);
		if (errs.n == 0)
			fprintf(stderr, "postern: cannot load the configuration "
			    "%s (check it with `postern config check`)\n",
			    path ? path : CONF_EMBEDDED_NAME);
		conf_errors_free(&errs);
		conf_free(c);
		return NULL;
	}
	conf_errors_free(&errs);
	return c;
}

enum listener_tls
conf_effective_tls(const struct conf_listener *l, const struct conf_policy *p)
{
	if (l->tls == LISTENER_TLS_IMPLICIT)
		return LISTENER_TLS_IMPLICIT;
	if (p->tls == POLICY_TLS_REQUIRED)
		return LISTENER_TLS_REQUIRED;
	if (p->tls == POLICY_TLS_PREFERRED && l->tls == LISTENER_TLS_OFF)
		return LISTENER_TLS_PREFERRED;
	return l->tls;
}

int
conf_listener_needs_tls(const struct conf *c, const struct conf_listener *l)
{
	size_t i;

	if (l->tls != LISTENER_TLS_OFF)
		return 1;
	for (i = 0; i < c->npolicies; i++)
		if (conf_effective_tls(l, &c->policies[i]) != LISTENER_TLS_OFF)
			return 1;
	return 0;
}

/* CONF_DEFAULT_PATH when that file exists, else NULL (embedded default). */
const char *
conf_default_path(void)
{
	return access(CONF_DEFAULT_PATH, F_OK) == 0 ? CONF_DEFAULT_PATH : NULL;
}

/* The embedded default text; static storage. */
const char *
conf_embedded_default(void)
{
	return embedded_default;
}

/* Name of a listener tls mode as written in the file (static storage). */
const char *
conf_listener_tls_name(enum listener_tls t)
{
	return enum_name(listener_tls_vals, (int)t);
}

/* Name of a policy action as written in the file (static storage). */
const char *
conf_policy_action_name(enum policy_action a)
{
	return enum_name(policy_action_vals, (int)a);
}

/* Name of a destination tls mode as written in the file (static storage). */
const char *
conf_dest_tls_name(enum dest_tls t)
{
	return enum_name(dest_tls_vals, (int)t);
}

/* ---- lookups ----------------------------------------------------------- */

/* First sender group, in file order, with a network containing `sa`. */
const struct conf_sender_group *
conf_match_sender_group(const struct conf *c, const struct sockaddr *sa,
    const struct cidr **matched)
{
	const struct conf_sender_group *sg;
	size_t i, j;

	for (i = 0; i < c->nsender_groups; i++) {
		sg = &c->sender_groups[i];
		for (j = 0; j < sg->nnetworks; j++) {
			if (cidr_match(&sg->networks[j], sa)) {
				if (matched != NULL)
					*matched = &sg->networks[j];
				return sg;
			}
		}
	}
	if (matched != NULL)
		*matched = NULL;
	return NULL;
}

/* Is `domain` one of local_domains (ASCII case-insensitive, exact)? */
int
conf_is_local_domain(const struct conf *c, const char *domain)
{
	size_t i;

	for (i = 0; i < c->nlocal_domains; i++)
		if (ascii_casecmp(c->local_domains[i], domain) == 0)
			return 1;
	return 0;
}

/* Is `domain` equal to `parent` (0) or below it (1)?  -1: neither. */
static int
domain_under(const char *domain, const char *parent)
{
	size_t dl = strlen(domain), pl = strlen(parent);

	if (ascii_casecmp(domain, parent) == 0)
		return 0;
	if (dl > pl + 1 && domain[dl - pl - 1] == '.' &&
	    ascii_casecmp(domain + dl - pl, parent) == 0)
		return 1;
	return -1;
}

/* The dkim entries that sign for `domain` (see conf.h). */
size_t
conf_dkim_for(const struct conf *c, const char *domain, size_t *idx,
    size_t max)
{
	size_t i, n = 0, best = 0, len;
	int r;

	/* the longest matching configured domain wins */
	for (i = 0; i < c->ndkim; i++) {
		if (c->dkim[i].domain == NULL)
			continue;
		r = domain_under(domain, c->dkim[i].domain);
		len = strlen(c->dkim[i].domain);
		if ((r == 0 || (r == 1 && c->dkim[i].subdomains)) && len > best)
			best = len;
	}
	for (i = 0; best > 0 && i < c->ndkim && n < max; i++) {
		if (c->dkim[i].domain == NULL ||
		    strlen(c->dkim[i].domain) != best)
			continue;
		r = domain_under(domain, c->dkim[i].domain);
		if (r == 0 || (r == 1 && c->dkim[i].subdomains))
			idx[n++] = i;
	}
	return n;
}

/* An RFC 1035 host name (see conf.h). */
int
conf_valid_domain(const char *d)
{
	return valid_domain(d);
}

/* Does smime.sign list `address` or its domain? */
int
conf_smime_signs(const struct conf *c, const char *address)
{
	const char *at = strrchr(address, '@');
	size_t i;

	for (i = 0; i < c->nsmime_sign; i++) {
		if (ascii_casecmp(c->smime_sign[i], address) == 0)
			return 1;
		if (at != NULL && strchr(c->smime_sign[i], '@') == NULL &&
		    ascii_casecmp(c->smime_sign[i], at + 1) == 0)
			return 1;
	}
	return 0;
}

/* The route for a recipient domain: exact (any case), else "*", else NULL. */
const struct conf_route *
conf_route_for(const struct conf *c, const char *domain)
{
	const struct conf_route *r, *star = NULL;
	size_t i;

	for (i = 0; i < c->nroutes; i++) {
		r = &c->routes[i];
		if (r->domain == NULL)
			continue;
		if (strcmp(r->domain, "*") == 0) {
			if (star == NULL)
				star = r;
		} else if (ascii_casecmp(r->domain, domain) == 0)
			return r;
	}
	return star;
}

/* ---- show -------------------------------------------------------------- */

/* A libconfig string literal; control bytes as \xNN. */
static void
put_str(FILE *fp, const char *s)
{
	const unsigned char *p;

	fputc('"', fp);
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\x%02x", *p);
		else
			fputc(*p, fp);
	}
	fputc('"', fp);
}

/* ` key = "value";`, masking secrets (a password, never a file name). */
static void
put_kstr(FILE *fp, const char *key, const char *val)
{
	size_t n = strlen(key);

	fprintf(fp, " %s = ", key);
	if (strstr(key, "password") != NULL &&
	    !(n >= 5 && strcmp(key + n - 5, "_file") == 0))
		put_str(fp, "****");
	else
		put_str(fp, val);
	fputc(';', fp);
}

static void
put_kint(FILE *fp, const char *key, long long v)
{
	if (v > CONF_INT_MAX || v < -CONF_INT_MAX - 1)
		fprintf(fp, " %s = %lldL;", key, v);
	else
		fprintf(fp, " %s = %lld;", key, v);
}

static void
put_kbool(FILE *fp, const char *key, int v)
{
	fprintf(fp, " %s = %s;", key, v ? "true" : "false");
}

/* [ "a", "b" ] */
static void
put_list(FILE *fp, char *const *v, size_t n)
{
	size_t i;

	fputc('[', fp);
	for (i = 0; i < n; i++) {
		fputs(i ? ", " : " ", fp);
		put_str(fp, v[i]);
	}
	fputs(" ]", fp);
}

static void
put_klist(FILE *fp, const char *key, char *const *v, size_t n)
{
	fprintf(fp, " %s = ", key);
	put_list(fp, v, n);
	fputc(';', fp);
}

/* All limits (base NULL), or only those that differ from `base`. */
static void
show_limits(FILE *fp, const struct conf_limits *l,
    const struct conf_limits *base)
{
	if (base == NULL || l->max_line_length != base->max_line_length)
		put_kint(fp, "max_line_length", (long long)l->max_line_length);
	if (base == NULL)
		put_kint(fp, "max_connections", l->max_connections);
	if (base == NULL || l->max_connections_per_client !=
	    base->max_connections_per_client)
		put_kint(fp, "max_connections_per_client",
		    l->max_connections_per_client);
	if (base == NULL || l->auth_failures != base->auth_failures)
		put_kint(fp, "auth_failures", l->auth_failures);
	if (base == NULL || l->auth_failure_window != base->auth_failure_window)
		put_kint(fp, "auth_failure_window", l->auth_failure_window);
	if (base == NULL || l->auth_failure_delay != base->auth_failure_delay)
		put_kint(fp, "auth_failure_delay", l->auth_failure_delay);
	if (base == NULL || l->command_timeout != base->command_timeout)
		put_kint(fp, "command_timeout", l->command_timeout);
	if (base == NULL || l->data_block_timeout != base->data_block_timeout)
		put_kint(fp, "data_block_timeout", l->data_block_timeout);
	if (base == NULL || l->data_timeout != base->data_timeout)
		put_kint(fp, "data_timeout", l->data_timeout);
	if (base == NULL || l->bare_line_ends != base->bare_line_ends)
		put_kstr(fp, "bare_line_ends",
		    enum_name(bare_vals, (int)l->bare_line_ends));
	if (base == NULL)
		put_kint(fp, "spool_min_free", (long long)l->spool_min_free);
}

static void
show_certref(FILE *fp, const struct conf_certref *cr)
{
	if (cr->id != NULL) {
		put_str(fp, cr->id);
		return;
	}
	fputs("{", fp);
	put_kstr(fp, "cert", cr->cert);
	put_kstr(fp, "key", cr->key);
	if (cr->chain != NULL)
		put_kstr(fp, "chain", cr->chain);
	fputs(" }", fp);
}

static void
show_listeners(const struct conf *c, FILE *fp)
{
	const struct conf_listener *l;
	const struct conf_certref *cr;
	size_t i, j;

	fputs("listeners = (\n", fp);
	for (i = 0; i < c->nlisteners; i++) {
		l = &c->listeners[i];
		cr = &l->certificate;
		fputs("\t{", fp);
		put_kstr(fp, "name", l->name);
		put_kstr(fp, "address", l->address);
		put_kint(fp, "port", l->port);
		put_kstr(fp, "tls", conf_listener_tls_name(l->tls));
		put_kstr(fp, "auth", enum_name(listener_auth_vals, l->auth));
		fputs(" certificate = ", fp);
		if (l->nsni_certs > 0)
			fputs("( ", fp);
		show_certref(fp, cr);
		for (j = 0; j < l->nsni_certs; j++) {
			fputs(", ", fp);
			show_certref(fp, &l->sni_certs[j]);
		}
		fputs(l->nsni_certs > 0 ? " );" : ";", fp);
		put_kbool(fp, "proxy_protocol", l->proxy_protocol);
		if (l->nproxy_from > 0) {
			fputs(" proxy_from = [", fp);
			for (j = 0; j < l->nproxy_from; j++) {
				fputs(j ? ", " : " ", fp);
				put_str(fp, l->proxy_from[j].text);
			}
			fputs(" ];", fp);
		}
		fprintf(fp, " }%s\n", i + 1 < c->nlisteners ? "," : "");
	}
	fputs(");\n", fp);
}

static void
show_policies(const struct conf *c, FILE *fp)
{
	const struct conf_policy *p;
	size_t i;

	fputs("policies = {\n", fp);
	for (i = 0; i < c->npolicies; i++) {
		p = &c->policies[i];
		fprintf(fp, "\t%s = {", p->name);
		put_kstr(fp, "action", conf_policy_action_name(p->action));
		if (p->tls != POLICY_TLS_UNSET)
			put_kstr(fp, "tls", enum_name(policy_tls_vals, p->tls));
		put_kbool(fp, "allow_plaintext_auth", p->allow_plaintext_auth);
		put_kint(fp, "max_message_size",
		    (long long)p->max_message_size);
		put_kint(fp, "max_recipients", p->max_recipients);
		show_limits(fp, &p->limits, &c->limits);
		fputs(" };\n", fp);
	}
	fputs("};\n", fp);
}

static void
show_sender_groups(const struct conf *c, FILE *fp)
{
	const struct conf_sender_group *sg;
	size_t i, j;

	fputs("sender_groups = (\n", fp);
	for (i = 0; i < c->nsender_groups; i++) {
		sg = &c->sender_groups[i];
		fputs("\t{", fp);
		put_kstr(fp, "name", sg->name);
		fputs(" networks = [", fp);
		for (j = 0; j < sg->nnetworks; j++) {
			fputs(j ? ", " : " ", fp);
			put_str(fp, sg->networks[j].text);
		}
		fputs(" ];", fp);
		put_kstr(fp, "policy", sg->policy);
		fprintf(fp, " }%s\n", i + 1 < c->nsender_groups ? "," : "");
	}
	fputs(");\n", fp);
}

static void
show_route(const struct conf_route *r, FILE *fp)
{
	fputs("\t{", fp);
	put_kstr(fp, "domain", r->domain);
	if (r->maildir != NULL) {
		put_kstr(fp, "maildir", r->maildir);
		put_kstr(fp, "unknown_users",
		    enum_name(unknown_users_vals, r->unknown_users));
	}
	if (r->hosts != NULL)
		put_klist(fp, "hosts", r->hosts, r->nhosts);
	if (r->tls != ROUTE_TLS_UNSET)
		put_kstr(fp, "tls", enum_name(route_tls_vals, r->tls));
	if (r->auth_user != NULL)
		put_kstr(fp, "auth_user", r->auth_user);
	if (r->auth_password_file != NULL)
		put_kstr(fp, "auth_password_file", r->auth_password_file);
	if (r->nusers > 0)
		put_klist(fp, "users", r->users, r->nusers);
	fputs(" }", fp);
}

static void
show_routes(const struct conf *c, FILE *fp)
{
	size_t i;

	fputs("routes = (\n", fp);
	for (i = 0; i < c->nroutes; i++) {
		show_route(&c->routes[i], fp);
		fputs(i + 1 < c->nroutes ? ",\n" : "\n", fp);
	}
	fputs(");\n", fp);
}

static void
show_destinations(const struct conf *c, FILE *fp)
{
	const struct conf_destination *d;
	size_t i;

	if (c->ndestinations == 0)
		fputs("# none: every domain gets tls preferred, "
		    "max_connections 20\n", fp);
	fputs("destinations = (\n", fp);
	for (i = 0; i < c->ndestinations; i++) {
		d = &c->destinations[i];
		fputs("\t{", fp);
		put_kstr(fp, "domain", d->domain);
		put_kstr(fp, "tls", enum_name(dest_tls_vals, d->tls));
		put_kint(fp, "max_connections", d->max_connections);
		fprintf(fp, " }%s\n", i + 1 < c->ndestinations ? "," : "");
	}
	fputs(");\n", fp);
}

/* delivery, alerts, dkim, smime, resolver. */
static void
show_misc(const struct conf *c, FILE *fp)
{
	size_t i;

	fputs("delivery = {", fp);
	put_kint(fp, "retry_min", c->retry_min);
	put_kint(fp, "retry_max", c->retry_max);
	put_kint(fp, "max_queue_lifetime", c->max_queue_lifetime);
	put_kbool(fp, "paused", c->paused);
	fputs(" };\nalerts = {", fp);
	put_klist(fp, "recipients", c->alert_recipients, c->nalert_recipients);
	put_kstr(fp, "from", c->alert_from);
	fputs(" };\ndkim = (\n", fp);
	for (i = 0; i < c->ndkim; i++) {
		fputs("\t{", fp);
		put_kstr(fp, "domain", c->dkim[i].domain);
		put_kstr(fp, "selector", c->dkim[i].selector);
		put_kstr(fp, "key", c->dkim[i].key);
		put_kbool(fp, "subdomains", c->dkim[i].subdomains);
		put_kint(fp, "expire", c->dkim[i].expire);
		fprintf(fp, " }%s\n", i + 1 < c->ndkim ? "," : "");
	}
	fputs(");\ndkim_on_error = ", fp);
	put_str(fp, enum_name(dkim_on_error_vals, c->dkim_on_error));
	fputs(";\nsmime = {", fp);
	if (c->smime_keys != NULL)
		put_kstr(fp, "keys", c->smime_keys);
	put_klist(fp, "sign", c->smime_sign, c->nsmime_sign);
	put_kstr(fp, "encrypt", c->smime_encrypt);
	fputs(" };\nresolver = {", fp);
	put_klist(fp, "local_data", c->resolver_local_data,
	    c->nresolver_local_data);
	fputs(" };\n", fp);
	if (c->metrics_port == 0) {
		fputs("# metrics: off (no metrics block)\n", fp);
		return;
	}
	fputs("metrics = {", fp);
	put_kstr(fp, "address", c->metrics_address);
	put_kint(fp, "port", c->metrics_port);
	fputs(" };\n", fp);
}

/* http and pickup, when configured. */
static void
show_ingress(const struct conf *c, FILE *fp)
{
	size_t j;

	if (c->http != NULL) {
		fputs("http = {", fp);
		put_kstr(fp, "address", c->http->address);
		put_kint(fp, "port", c->http->port);
		fputs(" certificate = ", fp);
		if (c->http->nsni_certs > 0)
			fputs("( ", fp);
		show_certref(fp, &c->http->certificate);
		for (j = 0; j < c->http->nsni_certs; j++) {
			fputs(", ", fp);
			show_certref(fp, &c->http->sni_certs[j]);
		}
		fputs(c->http->nsni_certs > 0 ? " ); };\n" : "; };\n", fp);
	}
	if (c->pickup.dir != NULL) {
		fputs("pickup = {", fp);
		put_kstr(fp, "dir", c->pickup.dir);
		put_kstr(fp, "group", c->pickup.group);
		put_kint(fp, "max_message_size",
		    (long long)c->pickup.max_message_size);
		fputs(" };\n", fp);
	}
}

/* Print the effective configuration; conf_load reads it back unchanged. */
void
conf_show(const struct conf *c, FILE *fp)
{
	fputs("# postern effective configuration of ", fp);
	put_str(fp, c->path);
	fputs("\n# defaults filled in, paths resolved, secrets masked\n", fp);
	fputs("hostname = ", fp);
	put_str(fp, c->hostname);
	fputs(";\ndata_dir = ", fp);
	put_str(fp, c->data_dir);
	fputs(";\nuser = ", fp);
	put_str(fp, c->user);
	fprintf(fp, ";\nworkers = %d;\nlog = {", c->workers);
	put_kstr(fp, "file", c->log_file);
	put_kstr(fp, "format", enum_name(log_format_vals, c->log_json));
	fputs(" };\nlimits = {", fp);
	show_limits(fp, &c->limits, NULL);
	fputs(" };\ntls = {", fp);
	put_kstr(fp, "min_protocol", c->tls.min_protocol);
	put_kstr(fp, "ciphers", c->tls.ciphers);
	put_kstr(fp, "ciphersuites", c->tls.ciphersuites);
	put_kbool(fp, "system_cas", c->tls.system_cas);
	fputs(" };\n", fp);
	show_listeners(c, fp);
	show_policies(c, fp);
	show_sender_groups(c, fp);
	fputs("local_domains = ", fp);
	put_list(fp, c->local_domains, c->nlocal_domains);
	fputs(";\n", fp);
	show_routes(c, fp);
	show_destinations(c, fp);
	show_misc(c, fp);
	show_ingress(c, fp);
}
