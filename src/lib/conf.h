/*
 * conf.h - the configuration (libconfig syntax, shape of SPEC.md) as a
 * validated, immutable struct.  conf_load() parses a file or the embedded
 * default, fills in defaults, resolves relative paths against the file's
 * directory and validates everything; problems are collected as
 * "FILE:LINE: message" strings so `postern config check` can print them all.
 *
 * Callers: serve (start-up and SIGHUP), every command that takes -c.
 * Lifetime: a struct conf and everything it points to is owned by the
 * struct and freed by conf_free().
 */
#ifndef POSTERN_CONF_H
#define POSTERN_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "netaddr.h"

#define CONF_DEFAULT_PATH "/etc/postern/postern.conf"

enum listener_tls { LISTENER_TLS_OFF, LISTENER_TLS_PREFERRED,
	LISTENER_TLS_REQUIRED, LISTENER_TLS_IMPLICIT };
enum listener_auth { LISTENER_AUTH_OFF, LISTENER_AUTH_OPTIONAL,
	LISTENER_AUTH_REQUIRED };
enum policy_action { POLICY_ACCEPT, POLICY_RELAY, POLICY_REJECT,
	POLICY_TCPREFUSE };
/* Policy tls tightens the listener: -1 = not set (inherit listener). */
enum policy_tls { POLICY_TLS_UNSET = -1, POLICY_TLS_OFF,
	POLICY_TLS_PREFERRED, POLICY_TLS_REQUIRED };
enum bare_line_ends { BARE_REJECT, BARE_NORMALIZE };
enum dest_tls { DEST_TLS_NONE, DEST_TLS_PREFERRED, DEST_TLS_REQUIRED,
	DEST_TLS_PREFERRED_VERIFY, DEST_TLS_REQUIRED_VERIFY };
enum route_tls { ROUTE_TLS_UNSET = -1, ROUTE_TLS_NONE, ROUTE_TLS_STARTTLS,
	ROUTE_TLS_IMPLICIT };
enum unknown_users { UNKNOWN_USERS_ACCEPT, UNKNOWN_USERS_REJECT };

/* Per-client limits: top-level `limits`, each may be overridden by a policy. */
struct conf_limits {
	size_t	max_line_length;	/* DATA text line, default 65536 */
	int	max_connections;	/* total, default 10000 (global only) */
	int	max_connections_per_client;	/* default 50 */
	int	auth_failures;		/* default 5 */
	int	auth_failure_window;	/* seconds, default 600 */
	int	auth_failure_delay;	/* seconds before the 454, default 5 */
	int	command_timeout;	/* seconds, default 300 */
	int	data_block_timeout;	/* seconds, default 180 */
	int	data_timeout;		/* seconds, default 600 */
	enum bare_line_ends bare_line_ends;	/* default BARE_REJECT */
	/* Octets kept free on the spool's file system: below that, MAIL
	 * gets 452 4.3.1 (global only; default 64 MiB, 0 = no reserve). */
	uint64_t spool_min_free;
};

/* certificate = "ID" (store) or { cert; key; chain; } (paths, resolved). */
struct conf_certref {
	char	*id;			/* NULL when paths are used */
	char	*cert, *key, *chain;	/* absolute paths or NULL */
};

struct conf_listener {
	char	*name;
	char	*address;		/* literal IPv4/IPv6 address */
	int	 port;
	enum listener_tls tls;		/* default OFF */
	enum listener_auth auth;	/* default OFF */
	struct conf_certref certificate;	/* default id "default" */
	/* certificate = [ first, more... ]: the first is `certificate`, the
	 * others are offered by SNI (server name indication) match. */
	struct conf_certref *sni_certs;
	size_t	 nsni_certs;
	/* PROXY protocol v1/v2 (docs/proxy-protocol.md): every connection
	 * starts with a proxy's header naming the real client; only peers in
	 * proxy_from may connect at all. */
	int	 proxy_protocol;	/* default 0 */
	struct cidr *proxy_from;	/* required when proxy_protocol */
	size_t	 nproxy_from;
	int	 line;			/* line in the file, for messages */
};

struct conf_sender_group {
	char	*name;
	struct cidr *networks;
	size_t	 nnetworks;
	char	*policy;		/* name of a policy */
	size_t	 policy_index;		/* resolved index into conf->policies */
	int	 line;
};

struct conf_policy {
	char	*name;
	enum policy_action action;
	enum policy_tls tls;		/* default UNSET */
	int	 allow_plaintext_auth;	/* default 0 */
	size_t	 max_message_size;	/* default 20971520 */
	int	 max_recipients;	/* default 100 */
	struct conf_limits limits;	/* top-level limits, then overrides */
	int	 line;
};

struct conf_route {
	char	*domain;		/* "*" = everything else */
	char	*maildir;		/* template with %u %d, resolved, or NULL */
	char   **hosts;			/* next hops as written, or NULL */
	size_t	 nhosts;
	enum route_tls tls;
	char	*auth_user;
	char	*auth_password_file;	/* resolved path */
	enum unknown_users unknown_users;	/* maildir routes: default ACCEPT */
	char   **users;			/* known local users (optional) */
	size_t	 nusers;
	int	 line;
};

struct conf_destination {
	char	*domain;		/* "*" = default */
	enum dest_tls tls;		/* default PREFERRED */
	int	 max_connections;	/* default 20 */
	int	 line;
};

struct conf_dkim {
	char	*domain, *selector, *key;	/* key path resolved */
	int	 subdomains;		/* also sign for subdomains (default 0) */
	int	 expire;		/* seconds for x= (0 = no x=, default) */
	int	 line;			/* in the file, for messages */
};

/* dkim_on_error: what a message from a signing domain does when one of
 * its keys cannot be used. */
enum dkim_on_error { DKIM_ON_ERROR_DEFER, DKIM_ON_ERROR_SEND_UNSIGNED };

/* smime.encrypt for the mail that smime.sign selects. */
enum smime_encrypt { SMIME_ENCRYPT_NEVER, SMIME_ENCRYPT_WHEN_POSSIBLE,
	SMIME_ENCRYPT_REQUIRED };
/* pickup = { dir; group; max_message_size; } (docs/http-api.md, "Pickup
 * directory"): files local programs (postern sendmail) drop for the
 * daemon to take. */
struct conf_pickup {
	char	*dir;			/* resolved path; NULL = no pickup */
	char	*group;			/* group whose members may drop files */
	size_t	 max_message_size;	/* default 20971520 */
};

struct conf_tls {
	char	*min_protocol;		/* default "TLSv1.2" */
	char	*ciphers;		/* default "ECDHE+AESGCM:ECDHE+CHACHA20" */
	char	*ciphersuites;		/* default SPEC's list */
	int	 system_cas;		/* default 1 */
};

struct conf {
	char	*path;			/* file read, or "(embedded default)" */
	char	*hostname;		/* default: gethostname() FQDN */
	char	*data_dir;		/* resolved absolute path */
	char	*user;			/* default "postern" */
	char	*log_file;		/* "-", "syslog" or resolved path */
	int	 log_json;		/* format = "json" */
	int	 workers;		/* extension: 0 = one per CPU (default) */

	struct conf_listener *listeners;	size_t nlisteners;
	struct conf_sender_group *sender_groups; size_t nsender_groups;
	struct conf_policy *policies;		size_t npolicies;
	char   **local_domains;			size_t nlocal_domains;
	struct conf_route *routes;		size_t nroutes;
	struct conf_destination *destinations;	size_t ndestinations;
	struct conf_dkim *dkim;			size_t ndkim;
	enum dkim_on_error dkim_on_error;	/* default DEFER */
	char   **alert_recipients;		size_t nalert_recipients;
	char	*alert_from;			/* default postern@<hostname> */
	char   **resolver_local_data;		size_t nresolver_local_data;
	char	*smime_keys;			/* resolved path or NULL */
	char   **smime_sign;			size_t nsmime_sign;
	char	*smime_encrypt;			/* "never" | "when-possible"
						 * | "required" */
	enum smime_encrypt smime_encrypt_mode;	/* the same, as a value */
	int	 smime_line;			/* of the smime group */

	struct conf_tls tls;
	struct conf_limits limits;

	/* http = { address; port; certificate; }: the HTTPS injection API
	 * (docs/http-api.md), held as a listener named "http" (tls implicit,
	 * auth required) so binding and TLS are the listeners'.  NULL when
	 * not configured. */
	struct conf_listener *http;
	struct conf_pickup pickup;

	/* delivery */
	int	 retry_min;		/* default 60 */
	int	 retry_max;		/* default 3600 */
	int	 max_queue_lifetime;	/* default 432000 */
	int	 paused;		/* default 0 */

	/* metrics = { address; port; }: Prometheus text on GET /metrics
	 * (plain HTTP).  metrics_port 0 = no metrics block: off. */
	char	*metrics_address;	/* literal IP: "127.0.0.1" */
	int	 metrics_port;		/* 9725 with a block, else 0 */
};

/* A list of "FILE:LINE: message" strings collected while loading. */
struct conf_errors {
	char   **msgs;
	size_t	 n;
};

/*
 * Load `path`, or the embedded default when path is NULL.  Returns a conf
 * (possibly with errors recorded) or NULL when the file could not be read
 * or parsed at all (the reason is then in errs).  The caller must treat
 * errs->n > 0 as failure.
 */
struct conf *conf_load(const char *path, struct conf_errors *errs);
/* Same from a string; `name` stands for the file in messages and relative
 * paths resolve against `basedir` (NULL = current directory). */
struct conf *conf_load_string(const char *text, const char *name,
	    const char *basedir, struct conf_errors *errs);
void	conf_free(struct conf *);
void	conf_errors_free(struct conf_errors *);

/* For a command's -c option (NULL = the file serve would use): load,
 * and on any problem print every "FILE:LINE: message" on stderr and
 * return NULL. */
struct conf *conf_load_for_command(const char *path);

/* The path serve would use with no -c: CONF_DEFAULT_PATH if it exists, else NULL. */
const char *conf_default_path(void);

/* The embedded default configuration text (SPEC "Embedded default"). */
const char *conf_embedded_default(void);

/* Print the effective configuration in libconfig syntax, secrets masked. */
void	conf_show(const struct conf *, FILE *);

/* Lookups used by the server and the queue manager. */
const struct conf_sender_group *conf_match_sender_group(const struct conf *,
	    const struct sockaddr *, const struct cidr **matched);
int	conf_is_local_domain(const struct conf *, const char *domain);
/* First route whose domain equals `domain` (case-insensitive), else "*", else NULL. */
const struct conf_route *conf_route_for(const struct conf *, const char *domain);

/* The listener's TLS mode for a sender group: a policy's tls only
 * tightens it (preferred on an off listener, required on off/preferred). */
enum listener_tls conf_effective_tls(const struct conf_listener *,
	    const struct conf_policy *);
/* Does this listener speak TLS for any sender group? */
int	conf_listener_needs_tls(const struct conf *, const struct conf_listener *);

/* Enum names for show/logs. */
const char *conf_listener_tls_name(enum listener_tls);
const char *conf_policy_action_name(enum policy_action);
const char *conf_dest_tls_name(enum dest_tls);

/*
 * The dkim entries that sign mail whose header From: domain is `domain`
 * (lower case): those of the longest configured domain equal to it, or
 * a parent of it with subdomains = true.  Fills idx (up to max) with
 * indexes into conf->dkim and returns how many; 0 = unsigned.
 */
size_t	conf_dkim_for(const struct conf *, const char *domain, size_t *idx,
	    size_t max);
/* An RFC 1035 host name (LDH labels, no trailing dot): what `dkim`
 * domains and selectors must be; for commands that take one. */
int	conf_valid_domain(const char *);
/* Does smime.sign select mail from `address` (its domain, or the address
 * itself, listed)? */
int	conf_smime_signs(const struct conf *, const char *address);

#endif
