/*
 * test_conf.c - configuration loading: the SPEC example, every error class
 * with its exact "FILE:LINE: message", defaults, the embedded default,
 * relative path resolution, the conf_show round trip, sender group and
 * route lookups, and `postern config check|show` exit codes and output.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd.h"
#include "conf.h"
#include "test_dkimkey.h"
#include "util.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define NAME		"t.conf"
#define BASE		"/base"

/* SPEC.md "Configuration", verbatim. */
static const char spec_example[] =
"hostname  = \"mx.example.com\";          # banner, EHLO name, certificate default CN\n"
"data_dir  = \"/var/lib/postern\";        # spool/, certs/, trust/, users, dkim/ live here\n"
"user      = \"postern\";                 # privileges dropped to this user after binding, when started as root\n"
"log       = { file = \"-\"; format = \"text\"; };   # \"-\" = stderr; \"syslog\"; a path. format text|json\n"
"\n"
"listeners = (\n"
"  { name = \"inbound\";    address = \"0.0.0.0\"; port = 25;  tls = \"preferred\"; certificate = \"default\"; },\n"
"  { name = \"submission\"; address = \"0.0.0.0\"; port = 587; tls = \"required\";  certificate = \"default\"; auth = \"required\"; },\n"
"  { name = \"smtps\";      address = \"0.0.0.0\"; port = 465; tls = \"implicit\";  certificate = \"default\"; auth = \"required\"; }\n"
");                                     # tls: off | preferred | required | implicit ; auth: off | optional | required\n"
"\n"
"# certificate = an ID in the certificate store (`postern cert`), or inline paths:\n"
"#   certificate = { cert = \"mx.pem\"; key = \"mx.key\"; chain = \"intermediate.pem\"; };\n"
"tls = {                                # applies to server and client side unless overridden\n"
"  min_protocol = \"TLSv1.2\";\n"
"  ciphers      = \"ECDHE+AESGCM:ECDHE+CHACHA20\";   # TLS <= 1.2 cipher list (OpenSSL syntax); no DHE by default\n"
"  ciphersuites = \"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256\";\n"
"  system_cas   = true;                 # also trust the system CA bundle, besides the trust store\n"
"};\n"
"\n"
"sender_groups = (                      # host access table: first match on the client address wins\n"
"  { name = \"RELAYLIST\"; networks = [ \"127.0.0.0/8\", \"::1/128\" ]; policy = \"relayed\"; },\n"
"  { name = \"ALL\";       networks = [ \"0.0.0.0/0\", \"::/0\" ];      policy = \"accepted\"; }\n"
");\n"
"policies = {                           # mail flow policies; action: accept | relay | reject | tcprefuse\n"
"  relayed  = { action = \"relay\";  tls = \"preferred\"; max_message_size = 20971520; max_recipients = 100; };\n"
"  accepted = { action = \"accept\"; tls = \"preferred\"; max_message_size = 20971520; max_recipients = 100; };\n"
"};\n"
"# policy tls (off|preferred|required) tightens the listener's setting for that sender group.\n"
"# policy allow_plaintext_auth (default false) lets AUTH be offered before TLS for that group.\n"
"# \"accept\" takes mail only for local_domains; \"relay\" may also relay; an authenticated session may relay.\n"
"\n"
"local_domains = [ \"example.com\" ];     # recipient domains accepted from anyone allowed to connect\n"
"\n"
"routes = (                             # SMTP routes; first match on recipient domain; \"*\" = everything else\n"
"  { domain = \"example.com\"; maildir = \"mail/%d/%u\"; },                  # local delivery (%u user, %d domain)\n"
"  { domain = \"corp.example\"; hosts = [ \"[10.0.0.5]:25\", \"lmtp:/run/dovecot/lmtp\" ]; },\n"
"  { domain = \"*\"; hosts = [ \"email-smtp.us-east-1.amazonaws.com:587\" ]; tls = \"starttls\";\n"
"    auth_user = \"AKIA...\"; auth_password_file = \"ses.pass\"; }\n"
");                                     # no \"*\" route: deliver by MX.\n"
"# route tls: starttls (STARTTLS mandatory, never plaintext) | implicit | none; a route without tls\n"
"# follows the destination control of the recipient domain, as MX delivery does.\n"
"\n"
"destinations = (                       # destination controls, by recipient domain; \"*\" = default\n"
"  { domain = \"partner.example\"; tls = \"required-verify\"; max_connections = 10; },\n"
"  { domain = \"*\"; tls = \"preferred\"; max_connections = 20; }\n"
");                                     # tls: none | preferred | required | preferred-verify | required-verify\n"
"\n"
"delivery = { retry_min = 60; retry_max = 3600; max_queue_lifetime = 432000; paused = false; };   # seconds; paused: accept and queue, deliver nothing\n"
"alerts   = { recipients = [ \"postmaster@example.com\" ]; from = \"postern@mx.example.com\"; };\n"
"dkim     = ( { domain = \"example.com\"; selector = \"s2026\"; key = \"dkim/example.com.s2026.key\"; } );\n"
"smime    = { keys = \"smime\"; sign = [ \"example.com\" ]; encrypt = \"when-possible\"; };   # encrypt: never | when-possible\n"
"resolver = { local_data = [ \"partner.example. MX 10 mx.partner.example.\", \"mx.partner.example. A 127.0.0.2\" ]; };\n";

/* Every extension and odd value, for the show round trip. */
static const char extended[] =
"hostname = \"mail.example.org\";\n"
"data_dir = \"./data dir/\\\"quoted\\\" \\\\ back\";\n"
"user = \"mail\";\n"
"workers = 4;\n"
"log = { file = \"logs/postern.log\"; format = \"json\"; };\n"
"limits = { max_line_length = 2000; max_connections = 500;\n"
"  max_connections_per_client = 7; auth_failures = 3;\n"
"  auth_failure_window = 60; command_timeout = 100;\n"
"  data_block_timeout = 50; data_timeout = 200;\n"
"  bare_line_ends = \"normalize\"; spool_min_free = 10737418240L; };\n"
"listeners = (\n"
"  { name = \"v6\"; address = \"::1\"; port = 2525; auth = \"optional\";\n"
"    certificate = { cert = \"c/mx.pem\"; key = \"/abs/mx.key\"; };\n"
"    proxy_protocol = true; proxy_from = [ \"::1\", \"10.0.0.0/8\" ]; },\n"
"  { name = \"v4\"; address = \"127.0.0.1\"; port = 2465; tls = \"implicit\";\n"
"    certificate = { cert = \"mx.pem\"; key = \"mx.key\"; chain = \"ca.pem\"; }; }\n"
");\n"
"policies = {\n"
"  strict = { action = \"reject\"; };\n"
"  open = { action = \"relay\"; tls = \"required\"; allow_plaintext_auth = true;\n"
"    max_message_size = 1000L; max_recipients = 5; command_timeout = 30;\n"
"    max_line_length = 1000; bare_line_ends = \"reject\"; };\n"
"  refuse = { action = \"tcprefuse\"; tls = \"off\"; };\n"
"};\n"
"sender_groups = (\n"
"  { name = \"LAN\"; networks = [ \"192.168.0.0/16\", \"fd00::/8\" ]; policy = \"open\"; },\n"
"  { name = \"BAD\"; networks = ( \"203.0.113.7\" ); policy = \"refuse\"; }\n"
");\n"
"local_domains = [ \"example.org\", \"Example.NET\" ];\n"
"routes = (\n"
"  { domain = \"example.org\"; maildir = \"/var/mail/%d/%u\"; unknown_users = \"reject\";\n"
"    users = [ \"alice\", \"bob\" ]; },\n"
"  { domain = \"example.net\"; hosts = [ \"mx.example.net\" ]; tls = \"implicit\"; },\n"
"  { domain = \"example.com\"; hosts = [ \"lmtp:[::1]:24\" ]; tls = \"none\";\n"
"    users = [ \"carol\" ]; }\n"
");\n"
"destinations = ( { domain = \"example.net\"; tls = \"none\"; } );\n"
"delivery = { retry_min = 10; retry_max = 10; max_queue_lifetime = 99; paused = true; };\n"
"alerts = { recipients = [ \"a@example.org\", \"b@example.org\" ]; };\n"
"dkim = ( { domain = \"example.org\"; selector = \"a\"; key = \"k1\"; },\n"
"  { domain = \"example.org\"; selector = \"b\"; key = \"/k2\"; } );\n"
"smime = { keys = \"smime\"; sign = [ \"a@example.org\" ]; };\n"
"resolver = { local_data = [ \"x. A 127.0.0.1\" ]; };\n"
"tls = { min_protocol = \"tlsv1.3\"; system_cas = false; ciphers = \"HIGH\";\n"
"  ciphersuites = \"TLS_AES_128_GCM_SHA256\"; };\n";

static struct conf *
load(const char *text, struct conf_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	return conf_load_string(text, NAME, BASE, errs);
}

static void
dump_errors(const struct conf_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		print_message("  error: %s\n", errs->msgs[i]);
}

static void
assert_no_errors(const struct conf *c, const struct conf_errors *errs)
{
	if (errs->n > 0)
		dump_errors(errs);
	assert_int_equal(errs->n, 0);
	assert_non_null(c);
}

/* ---- the SPEC example -------------------------------------------------- */

static void
test_spec_example(void **state)
{
	struct conf_errors errs;
	struct conf *c;

	(void)state;
	c = load(spec_example, &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->path, NAME);
	assert_string_equal(c->hostname, "mx.example.com");
	assert_string_equal(c->data_dir, "/var/lib/postern");
	assert_int_equal(c->nlisteners, 3);
	assert_string_equal(c->listeners[1].name, "submission");
	assert_int_equal(c->listeners[1].port, 587);
	assert_int_equal(c->listeners[1].tls, LISTENER_TLS_REQUIRED);
	assert_int_equal(c->listeners[1].auth, LISTENER_AUTH_REQUIRED);
	assert_int_equal(c->listeners[2].tls, LISTENER_TLS_IMPLICIT);
	assert_int_equal(c->listeners[0].line, 7);
	assert_string_equal(c->listeners[0].certificate.id, "default");
	assert_int_equal(c->nsender_groups, 2);
	assert_int_equal(c->sender_groups[0].nnetworks, 2);
	assert_string_equal(c->sender_groups[0].networks[1].text, "::1/128");
	assert_int_equal(c->npolicies, 2);
	assert_string_equal(
	    c->policies[c->sender_groups[0].policy_index].name, "relayed");
	assert_string_equal(
	    c->policies[c->sender_groups[1].policy_index].name, "accepted");
	assert_int_equal(c->policies[0].action, POLICY_RELAY);
	assert_int_equal(c->policies[1].tls, POLICY_TLS_PREFERRED);
	assert_int_equal(c->nroutes, 3);
	assert_string_equal(c->routes[0].maildir, BASE "/mail/%d/%u");
	assert_int_equal(c->routes[1].nhosts, 2);
	assert_string_equal(c->routes[1].hosts[1], "lmtp:/run/dovecot/lmtp");
	assert_int_equal(c->routes[1].tls, ROUTE_TLS_UNSET);
	assert_int_equal(c->routes[2].tls, ROUTE_TLS_STARTTLS);
	assert_string_equal(c->routes[2].auth_user, "AKIA...");
	assert_string_equal(c->routes[2].auth_password_file,
	    BASE "/ses.pass");
	assert_int_equal(c->ndestinations, 2);
	assert_int_equal(c->destinations[0].tls, DEST_TLS_REQUIRED_VERIFY);
	assert_int_equal(c->destinations[0].max_connections, 10);
	assert_int_equal(c->ndkim, 1);
	assert_string_equal(c->dkim[0].key, BASE "/dkim/example.com.s2026.key");
	assert_string_equal(c->smime_keys, BASE "/smime");
	assert_string_equal(c->smime_encrypt, "when-possible");
	assert_int_equal(c->nresolver_local_data, 2);
	assert_string_equal(c->alert_from, "postern@mx.example.com");
	assert_int_equal(c->nalert_recipients, 1);
	conf_free(c);
	conf_errors_free(&errs);
}

/* ---- error classes ----------------------------------------------------- */

struct err_case {
	const char	*text;
	int		 want_line;
	const char	*want_msg;	/* substring of the message */
};

#define POL	"policies = { p = { action = \"accept\"; }; };\n"
#define LST(x)	"listeners = (\n  { name = \"a\"; address = \"127.0.0.1\"; " \
		x " }\n);\n"

static const struct err_case err_cases[] = {
	/* unknown keys, one per section */
	{ "hostname = \"a.example\";\nbogus = 1;\n", 2,
	    "unknown key 'bogus' at top level" },
	{ "listeners = (\n  { name = \"a\"; address = \"127.0.0.1\"; port = 25;\n"
	    "    colour = \"red\"; }\n);\n", 3,
	    "unknown key 'colour' in listeners" },
	{ POL "sender_groups = ( { name = \"G\"; networks = [ \"::/0\" ];\n"
	    "  policy = \"p\"; x = 1; } );\n", 3,
	    "unknown key 'x' in sender_groups" },
	{ "policies = {\n  p = { action = \"accept\"; speed = 9; };\n};\n", 2,
	    "unknown key 'speed' in policy 'p'" },
	{ "policies = { p = { action = \"accept\";\n"
	    "  max_connections = 9; }; };\n", 2,
	    "unknown key 'max_connections' in policy 'p' (it is global" },
	{ "policies = { p = { action = \"accept\";\n"
	    "  spool_min_free = 9; }; };\n", 2,
	    "unknown key 'spool_min_free' in policy 'p' (it is global" },
	{ "routes = ( { domain = \"*\"; hosts = [ \"a.example\" ];\n"
	    "  via = \"x\"; } );\n", 2, "unknown key 'via' in routes" },
	{ "destinations = (\n { domain = \"*\"; retries = 1; } );\n", 2,
	    "unknown key 'retries' in destinations" },
	{ "tls = {\n min_protocol = \"TLSv1.2\";\n dhparams = \"x\"; };\n", 3,
	    "unknown key 'dhparams' in tls" },
	{ "log = { level = \"debug\"; };\n", 1, "unknown key 'level' in log" },
	{ "delivery = { retry_min = 60;\n retry = 1; };\n", 2,
	    "unknown key 'retry' in delivery" },
	{ "alerts = { to = [ \"a@example.com\" ]; };\n", 1,
	    "unknown key 'to' in alerts" },
	{ "dkim = ( { domain = \"example.com\"; selector = \"s\"; key = \"k\";\n"
	    " algo = \"rsa\"; } );\n", 2, "unknown key 'algo' in dkim" },
	{ "smime = { keys = \"k\"; cert = \"c\"; };\n", 1,
	    "unknown key 'cert' in smime" },
	{ "resolver = {\n forwarders = [ ]; };\n", 2,
	    "unknown key 'forwarders' in resolver" },
	{ "limits = { max_line_length = 2000;\n max_size = 1; };\n", 2,
	    "unknown key 'max_size' in limits" },
	{ LST("port = 25; certificate = { cert = \"c\"; key = \"k\";\n pass = \"x\"; };"),
	    3, "unknown key 'pass' in certificate" },
	{ LST("port = 25;\n certificate = [ ];"), 3,
	    "'certificate' list must not be empty" },
	{ LST("port = 25; certificate = ( \"a\",\n 5 );"), 3,
	    "'certificate' list elements must be certificate IDs or groups" },
	{ LST("port = 25; certificate = ( \"a\",\n \".hidden\" );"), 3,
	    "certificate ID '.hidden' may contain only" },
	/* types */
	{ LST("\n port = \"25\";"), 3, "'port' must be an integer" },
	{ "hostname = 5;\n", 1, "'hostname' must be a string" },
	{ "tls = { system_cas = \"yes\"; };\n", 1,
	    "'system_cas' must be a boolean" },
	{ "log = \"-\";\n", 1, "'log' must be a group" },
	{ "listeners = { name = \"a\"; };\n", 1,
	    "'listeners' must be a list of groups" },
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = ( \"10.0.0.0/8\",\n 5 ); } );\n", 4,
	    "'networks' must be a list of strings" },
	{ "local_domains = \"example.com\";\n", 1,
	    "'local_domains' must be a list of strings" },
	{ "policies = { p = 5; };\n", 1, "policy 'p' must be a group" },
	{ "workers = 1.5;\n", 1, "'workers' must be an integer" },
	/* ranges */
	{ LST("\n port = 70000;"), 3,
	    "'port' must be between 1 and 65535 (got 70000)" },
	{ "listeners = ( { name = \"a\"; address = \"::\"; port = 0; } );\n",
	    1, "'port' must be between 1 and 65535 (got 0)" },
	{ "workers = -1;\n", 1, "'workers' must be between 0 and 1024" },
	{ "policies = { p = { action = \"accept\";\n"
	    "  max_message_size = 3000000000L; }; };\n", 2,
	    "'max_message_size' must be between 1 and 2147483647" },
	{ "policies = { p = { action = \"accept\";\n"
	    "  max_recipients = 0; }; };\n", 2,
	    "'max_recipients' must be at least 1 (got 0)" },
	{ "limits = {\n command_timeout = 0; };\n", 2,
	    "'command_timeout' must be at least 1 (got 0)" },
	{ "limits = { data_timeout = -5; };\n", 1,
	    "'data_timeout' must be at least 1" },
	{ "limits = { max_line_length = 998; };\n", 1,
	    "'max_line_length' must be at least 1000" },
	{ "delivery = { retry_min = 0; };\n", 1,
	    "'retry_min' must be at least 1 (got 0)" },
	{ "delivery = {\n retry_min = 7200; };\n", 2,
	    "'retry_min' (7200) must not be greater than 'retry_max' (3600)" },
	{ "destinations = ( { domain = \"*\";\n max_connections = 0; } );\n", 2,
	    "'max_connections' must be at least 1" },
	/* enums */
	{ LST("port = 25; \n tls = \"maybe\";"), 3, "'tls' must be one of off, "
	    "preferred, required, implicit (got 'maybe')" },
	{ LST("port = 25; auth = \"yes\";"), 2,
	    "'auth' must be one of off, optional, required (got 'yes')" },
	{ "policies = { p = {\n action = \"allow\"; }; };\n", 2,
	    "'action' must be one of accept, relay, reject, tcprefuse" },
	{ "policies = { p = { action = \"relay\";\n tls = \"implicit\"; }; };\n",
	    2, "'tls' must be one of off, preferred, required (got" },
	{ "destinations = ( { domain = \"*\";\n tls = \"verify\"; } );\n", 2,
	    "'tls' must be one of none, preferred, required, "
	    "preferred-verify, required-verify (got 'verify')" },
	{ "routes = ( { domain = \"*\"; hosts = [ \"a.example\" ];\n"
	    " tls = \"tls\"; } );\n", 2,
	    "'tls' must be one of starttls, implicit, none" },
	{ "log = { format = \"xml\"; };\n", 1,
	    "'format' must be one of text, json (got 'xml')" },
	{ "limits = {\n spool_min_free = -1; };\n", 2,
	    "'spool_min_free' must be 0 or more (got -1; numbers above "
	    "2147483647 need the L suffix, e.g. 10737418240L)" },
	{ "limits = { spool_min_free = 2251799813685248L; };\n", 1,
	    "'spool_min_free' must be between 0 and 1125899906842624" },
	{ "limits = { spool_min_free = \"1G\"; };\n", 1,
	    "'spool_min_free' must be an integer" },
	{ "limits = { bare_line_ends = \"strip\"; };\n", 1,
	    "'bare_line_ends' must be one of reject, normalize" },
	{ "tls = { min_protocol = \"SSLv3\"; };\n", 1,
	    "'min_protocol' must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3" },
	{ "smime = { keys = \"k\"; encrypt = \"always\"; };\n", 1,
	    "'encrypt' must be one of never, when-possible" },
	/* CIDRs and sender groups */
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = [ \"10.0.0.1/8\" ]; } );\n", 3,
	    "bad network '10.0.0.1/8' in sender group 'G': host bits must be "
	    "zero (did you mean 10.0.0.0/8?)" },
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = [ \"2001:db8::1/32\" ]; } );\n", 3,
	    "host bits must be zero (did you mean 2001:db8::/32?)" },
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = [ \"10.0.0/8\" ]; } );\n", 3,
	    "bad network '10.0.0/8' in sender group 'G': not an IP address" },
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = [ \"10.0.0.0/33\" ]; } );\n", 3,
	    "the prefix length must be 0 to 32" },
	{ POL "sender_groups = ( { name = \"G\"; policy = \"p\";\n"
	    "  networks = [ ]; } );\n", 3, "'networks' must not be empty" },
	{ POL "sender_groups = ( { name = \"G\"; networks = [ \"::/0\" ];\n"
	    "  policy = \"nope\"; } );\n", 3,
	    "unknown policy 'nope' in sender group 'G' (defined: p)" },
	{ POL "sender_groups = (\n { name = \"G\"; networks = [ \"::/0\" ]; "
	    "policy = \"p\"; },\n { name = \"G\"; networks = [ \"::/0\" ]; "
	    "policy = \"p\"; } );\n", 4,
	    "duplicate sender group name 'G' (first at line 3)" },
	{ POL "sender_groups = (\n { name = \"G\"; policy = \"p\"; } );\n", 3,
	    "missing required key 'networks' in sender_groups" },
	{ POL "sender_groups = (\n { name = \"G\"; networks = [ \"::/0\" ]; "
	    "} );\n", 3, "missing required key 'policy' in sender_groups" },
	{ POL "sender_groups = (\n { name = \"G H\"; networks = [ \"::/0\" ]; "
	    "policy = \"p\"; } );\n", 3, "sender group name 'G H' may contain" },
	{ "policies = {\n p = { tls = \"off\"; };\n};\n", 2,
	    "missing required key 'action' in policy 'p'" },
	/* listeners */
	{ "listeners = (\n { name = \"a\"; address = \"127.0.0.1\"; port = 25; },"
	    "\n { name = \"a\"; address = \"127.0.0.1\"; port = 26; } );\n", 3,
	    "duplicate listener name 'a' (first at line 2)" },
	{ "listeners = (\n { name = \"a\"; address = \"::1\"; port = 25; },"
	    "\n { name = \"b\"; address = \"0::1\"; port = 25; } );\n", 3,
	    "duplicate listener address 0::1 port 25 (already used by "
	    "listener 'a' at line 2)" },
	{ "listeners = (\n { name = \"a\";\n address = \"localhost\"; "
	    "port = 25; } );\n", 3, "listener address 'localhost' is not a "
	    "literal IPv4 or IPv6 address" },
	{ "listeners = (\n { name = \"a\"; address = \"::1\"; } );\n", 2,
	    "missing required key 'port' in listeners" },
	{ "listeners = (\n { address = \"::1\"; port = 25; } );\n", 2,
	    "missing required key 'name' in listeners" },
	{ LST("port = 25; certificate = \"../etc/x\";"), 2,
	    "certificate ID '../etc/x' may contain only" },
	{ LST("port = 25; certificate = {\n key = \"k\"; };"), 2,
	    "missing required key 'cert' in certificate" },
	/* PROXY protocol */
	{ LST("port = 25;\n proxy_protocol = true;"), 2,
	    "listener 'a': proxy_protocol = true needs proxy_from = [ ... ]" },
	{ LST("port = 25;\n proxy_from = [ \"127.0.0.1\" ];"), 3,
	    "listener 'a': proxy_from without proxy_protocol = true (add it, "
	    "or remove proxy_from)" },
	{ LST("port = 25; proxy_protocol = false;\n proxy_from = [ "
	    "\"127.0.0.1\" ];"), 3, "proxy_from without proxy_protocol" },
	{ LST("port = 25; proxy_protocol = true;\n proxy_from = [ ];"), 3,
	    "'proxy_from' must not be empty" },
	{ LST("port = 25; proxy_protocol = true;\n proxy_from = [ "
	    "\"10.1.0.0/8\" ];"), 3, "bad network '10.1.0.0/8' in proxy_from "
	    "of listener 'a': host bits must be zero (did you mean "
	    "10.0.0.0/8?)" },
	{ LST("port = 25; proxy_protocol = true;\n proxy_from = [ "
	    "\"haproxy\" ];"), 3, "bad network 'haproxy' in proxy_from of "
	    "listener 'a': not an IP address" },
	{ LST("port = 25;\n proxy_protocol = \"yes\"; proxy_from = [ \"::1\" ];"),
	    3, "'proxy_protocol' must be a boolean" },
	{ LST("port = 25; proxy_protocol = true;\n proxy_from = \"::1\";"), 3,
	    "'proxy_from' must be a list of strings" },
	/* routes, destinations */
	{ "routes = (\n { domain = \"a.example\"; maildir = \"m/%u\";\n"
	    "   hosts = [ \"b.example\" ]; } );\n", 2,
	    "a route must have either 'maildir' or 'hosts', not both" },
	{ "routes = (\n { domain = \"a.example\"; } );\n", 2,
	    "a route must have 'maildir' or 'hosts'" },
	{ "routes = ( { domain = \"a.example\";\n maildir = \"m/%d\"; } );\n", 2,
	    "maildir template 'm/%d' must contain %u" },
	{ "routes = ( { domain = \"a.example\";\n maildir = \"m/%u/%x\"; } );\n",
	    2, "maildir template 'm/%u/%x' has an unknown escape '%x'" },
	{ "routes = ( { domain = \"a.example\";\n maildir = \"m/%u%\"; } );\n",
	    2, "must contain %u (the user) and no lone '%'" },
	{ "routes = ( { domain = \"a example\"; maildir = \"%u\"; } );\n", 1,
	    "route domain 'a example' is not a valid domain name or \"*\"" },
	{ "routes = ( { domain = \"*\";\n hosts = [ \"[1.2.3]:25\" ]; } );\n", 2,
	    "'[1.2.3]:25' in hosts is not a next hop" },
	{ "routes = ( { domain = \"*\";\n hosts = [ \"a.example:0\" ]; } );\n",
	    2, "'a.example:0' in hosts is not a next hop" },
	{ "routes = ( { domain = \"*\";\n hosts = [ ]; } );\n", 2,
	    "'hosts' must not be empty" },
	{ "routes = ( { domain = \"*\"; hosts = [ \"a.example\" ];\n"
	    " unknown_users = \"reject\"; } );\n", 2,
	    "'unknown_users' applies only to maildir routes" },
	{ "routes = ( { domain = \"x.example\"; maildir = \"m/%u\";\n"
	    " tls = \"starttls\"; } );\n", 2,
	    "'tls' applies only to routes with 'hosts'" },
	{ "routes = (\n { domain = \"*\"; hosts = [ \"a.example\" ];"
	    " auth_user = \"u\"; } );\n", 2,
	    "'auth_user' needs 'auth_password_file'" },
	{ "routes = ( { domain = \"x.example\"; maildir = \"m/%u\";\n"
	    " users = [ \"../root\" ]; } );\n", 2,
	    "'../root' in users is not a valid local user name" },
	{ "routes = ( { domain = \"A.example\"; maildir = \"m/%u\"; },\n"
	    " { domain = \"a.EXAMPLE\"; maildir = \"n/%u\"; } );\n", 2,
	    "duplicate route for domain 'a.EXAMPLE' (first at line 1)" },
	{ "destinations = ( { domain = \"*\"; },\n { domain = \"*\"; } );\n", 2,
	    "duplicate destination for domain '*' (first at line 1)" },
	{ "destinations = (\n { tls = \"none\"; } );\n", 2,
	    "missing required key 'domain' in destinations" },
	/* the rest */
	{ "hostname = \"bad_host!\";\n", 1,
	    "'hostname' is not a valid domain name: 'bad_host!'" },
	{ "\nhostname = \"-a.example\";\n", 2,
	    "'hostname' is not a valid domain name" },
	{ "local_domains = [ \"example.com\",\n \"bad domain\" ];\n", 2,
	    "'bad domain' in local_domains is not a valid domain name" },
	{ "alerts = { from = \"postmaster\"; };\n", 1,
	    "'from' in alerts is not an email address: 'postmaster'" },
	{ "alerts = { recipients = [\n \"nobody\" ]; };\n", 2,
	    "'nobody' in recipients is not an email address" },
	{ "dkim = (\n { domain = \"example.com\"; key = \"k\"; } );\n", 2,
	    "missing required key 'selector' in dkim" },
	{ "dkim = ( { domain = \"example.com\"; selector = \"s\"; key = \"k\"; },"
	    "\n { domain = \"example.com\"; selector = \"s\"; key = \"j\"; } );\n",
	    2, "duplicate dkim selector 's' for domain 'example.com'" },
	{ "smime = {\n sign = [ \"example.com\" ]; };\n", 1,
	    "smime needs 'keys'" },
	{ "smime = { keys = \"k\";\n encrypt = \"always\"; };\n", 2,
	    "'encrypt' must be one of never, when-possible, required" },
	{ "dkim_on_error = \"drop\";\n", 1,
	    "'dkim_on_error' must be one of defer, send-unsigned" },
	{ "dkim = ( { domain = \"example.com\"; selector = \"s\"; key = \"k\";"
	    "\n expire = -1; } );\n", 2, "'expire' must be between 0 and" },
	{ "dkim = ( { domain = \"example.com\"; selector = \"s\"; key = \"k\";"
	    "\n subdomains = \"yes\"; } );\n", 2, "subdomains" },
	{ "data_dir = \"\";\n", 1, "'data_dir' must not be empty" },
	{ "user = \"root user\";\n", 1, "'user' is not a valid user name" },
	{ "log = { file = \"\"; };\n", 1, "'file' must not be empty" },
	{ "tls = { ciphers = \"\"; };\n", 1, "'ciphers' must not be empty" },
	{ "hostname = \"a\x01.example\";\n", 1, "'a\\x01.example'" },
};

/* 1 when the case gives exactly its one expected message. */
static int
check_err_case(const struct err_case *tc)
{
	struct conf_errors errs;
	struct conf *c;
	char want_prefix[64];
	int ok;

	c = load(tc->text, &errs);
	snprintf(want_prefix, sizeof(want_prefix), NAME ":%d: ",
	    tc->want_line);
	ok = c != NULL && errs.n == 1 && strncmp(errs.msgs[0], want_prefix,
	    strlen(want_prefix)) == 0 && strstr(errs.msgs[0],
	    tc->want_msg) != NULL;
	if (!ok) {
		print_message("case:\n%s\nwant: %s...%s\n", tc->text,
		    want_prefix, tc->want_msg);
		dump_errors(&errs);
	}
	conf_free(c);
	conf_errors_free(&errs);
	return ok;
}

static void
test_errors(void **state)
{
	size_t i, failed = 0;

	(void)state;
	for (i = 0; i < NELEM(err_cases); i++)
		if (!check_err_case(&err_cases[i]))
			failed++;
	assert_int_equal(failed, 0);
}

/* Syntax errors give one message and no conf at all. */
static void
test_syntax_errors(void **state)
{
	static const struct {
		const char	*text;
		const char	*want;
	} cases[] = {
		{ "hostname = \"a.example\";\nlisteners = ( { name = } );\n",
		    NAME ":2: syntax error" },
		{ "a = 1;\n\n\n\n\nb = ;\n", NAME ":6: syntax error" },
		{ "policies = {\n p = { action = \"accept\"; };\n"
		    " p = { action = \"relay\"; };\n};\n",
		    NAME ":3: duplicate setting name" },
		{ "x = [ 1, \"a\" ];\n", NAME ":1: mismatched element type" },
		{ "hostname = \"unterminated;\n", NAME ":" },
	};
	struct conf_errors errs;
	struct conf *c;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		c = load(cases[i].text, &errs);
		assert_null(c);
		assert_int_equal(errs.n, 1);
		if (strncmp(errs.msgs[0], cases[i].want,
		    strlen(cases[i].want)) != 0)
			fail_msg("got '%s' want '%s'", errs.msgs[0],
			    cases[i].want);
		conf_errors_free(&errs);
	}
}

/* All problems are collected, in file order. */
static void
test_many_errors(void **state)
{
	static const char text[] =
	    "bogus = 1;\n"
	    "listeners = ( { name = \"a\"; address = \"x\"; port = 0; } );\n"
	    "delivery = { retry_min = 10; retry_max = 5; };\n";
	static const char *const want[] = {
		NAME ":1: unknown key 'bogus' at top level",
		NAME ":2: listener address 'x' is not",
		NAME ":2: 'port' must be between 1 and 65535",
		NAME ":3: 'retry_min' (10) must not be greater than 'retry_max' (5)",
	};
	struct conf_errors errs;
	struct conf *c;
	size_t i;

	(void)state;
	c = load(text, &errs);
	assert_non_null(c);
	assert_int_equal(errs.n, NELEM(want));
	for (i = 0; i < NELEM(want); i++)
		if (strncmp(errs.msgs[i], want[i], strlen(want[i])) != 0)
			fail_msg("got '%s' want '%s'", errs.msgs[i], want[i]);
	conf_free(c);
	conf_errors_free(&errs);
	/* Without an error list, a problem means no conf. */
	assert_null(conf_load_string(text, NAME, BASE, NULL));
	c = conf_load_string(spec_example, NAME, BASE, NULL);
	assert_non_null(c);
	conf_free(c);
}

/* ---- defaults ---------------------------------------------------------- */

static void
test_defaults(void **state)
{
	struct conf_errors errs;
	struct conf *c;
	char want_from[300];

	(void)state;
	c = load("", &errs);
	assert_no_errors(c, &errs);
	assert_non_null(c->hostname);
	assert_true(strlen(c->hostname) > 0);
	snprintf(want_from, sizeof(want_from), "postern@%s", c->hostname);
	assert_string_equal(c->alert_from, want_from);
	assert_string_equal(c->data_dir, "/var/lib/postern");
	assert_string_equal(c->user, "postern");
	assert_string_equal(c->log_file, "-");
	assert_int_equal(c->log_json, 0);
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->nlisteners, 0);
	assert_int_equal(c->nsender_groups, 0);
	assert_int_equal(c->npolicies, 0);
	assert_int_equal(c->nroutes, 0);
	assert_int_equal(c->ndestinations, 0);
	assert_int_equal(c->nlocal_domains, 0);
	assert_string_equal(c->tls.min_protocol, "TLSv1.2");
	assert_string_equal(c->tls.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	assert_string_equal(c->tls.ciphersuites, "TLS_AES_256_GCM_SHA384:"
	    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
	assert_int_equal(c->tls.system_cas, 1);
	assert_int_equal(c->limits.max_line_length, 65536);
	assert_int_equal(c->limits.max_connections, 10000);
	assert_int_equal(c->limits.max_connections_per_client, 50);
	assert_int_equal(c->limits.auth_failures, 5);
	assert_int_equal(c->limits.auth_failure_window, 600);
	assert_int_equal(c->limits.command_timeout, 300);
	assert_int_equal(c->limits.data_block_timeout, 180);
	assert_int_equal(c->limits.data_timeout, 600);
	assert_int_equal(c->limits.bare_line_ends, BARE_REJECT);
	assert_int_equal(c->limits.spool_min_free, 64 * 1024 * 1024);
	assert_int_equal(c->retry_min, 60);
	assert_int_equal(c->retry_max, 3600);
	assert_int_equal(c->max_queue_lifetime, 432000);
	assert_int_equal(c->paused, 0);
	assert_null(c->smime_keys);
	assert_string_equal(c->smime_encrypt, "never");
	assert_int_equal(c->smime_encrypt_mode, SMIME_ENCRYPT_NEVER);
	assert_int_equal(c->dkim_on_error, DKIM_ON_ERROR_DEFER);
	conf_free(c);
	conf_errors_free(&errs);
}

static void
test_entry_defaults(void **state)
{
	static const char text[] =
	    "limits = { command_timeout = 100; max_connections_per_client = 7;"
	    " max_connections = 9; };\n"
	    "listeners = ( { name = \"a\"; address = \"::1\"; port = 25; } );\n"
	    "policies = { p = { action = \"accept\"; };\n"
	    "  q = { action = \"relay\"; command_timeout = 30;\n"
	    "    bare_line_ends = \"normalize\"; max_message_size = 5000L; }; };\n"
	    "routes = ( { domain = \"x.example\"; maildir = \"m/%u\"; } );\n"
	    "destinations = ( { domain = \"x.example\"; } );\n";
	struct conf_errors errs;
	struct conf *c;
	const struct conf_policy *p, *q;

	(void)state;
	c = load(text, &errs);
	assert_no_errors(c, &errs);
	assert_int_equal(c->listeners[0].tls, LISTENER_TLS_OFF);
	assert_int_equal(c->listeners[0].auth, LISTENER_AUTH_OFF);
	assert_string_equal(c->listeners[0].certificate.id, "default");
	assert_null(c->listeners[0].certificate.cert);
	assert_int_equal(c->listeners[0].proxy_protocol, 0);
	assert_int_equal(c->listeners[0].nproxy_from, 0);
	p = &c->policies[0];
	q = &c->policies[1];
	assert_int_equal(p->tls, POLICY_TLS_UNSET);
	assert_int_equal(p->allow_plaintext_auth, 0);
	assert_int_equal(p->max_message_size, 20971520);
	assert_int_equal(p->max_recipients, 100);
	assert_int_equal(p->limits.command_timeout, 100);
	assert_int_equal(p->limits.max_connections_per_client, 7);
	assert_int_equal(p->limits.max_connections, 9);
	assert_int_equal(q->limits.command_timeout, 30);
	assert_int_equal(q->limits.max_connections_per_client, 7);
	assert_int_equal(q->limits.bare_line_ends, BARE_NORMALIZE);
	assert_int_equal(q->limits.data_timeout, 600);
	assert_int_equal(q->max_message_size, 5000);
	assert_int_equal(c->limits.command_timeout, 100);
	assert_int_equal(c->limits.bare_line_ends, BARE_REJECT);
	assert_int_equal(c->routes[0].tls, ROUTE_TLS_UNSET);
	assert_int_equal(c->routes[0].unknown_users, UNKNOWN_USERS_ACCEPT);
	assert_int_equal(c->routes[0].nusers, 0);
	assert_int_equal(c->destinations[0].tls, DEST_TLS_PREFERRED);
	assert_int_equal(c->destinations[0].max_connections, 20);
	conf_free(c);
	conf_errors_free(&errs);
}

/* ---- the embedded default ---------------------------------------------- */

static void
test_embedded_default(void **state)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	const struct conf_route *r;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	c = conf_load(NULL, &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->path, "(embedded default)");
	snprintf(want, sizeof(want), "%s/postern-data", cwd);
	assert_string_equal(c->data_dir, want);
	assert_string_equal(c->log_file, "-");
	assert_int_equal(c->log_json, 0);
	assert_true(c->nlisteners >= 1);
	assert_string_equal(c->listeners[0].name, "inbound");
	assert_string_equal(c->listeners[0].address, "127.0.0.1");
	assert_int_equal(c->listeners[0].port, 2525);
	assert_int_equal(c->listeners[0].tls, LISTENER_TLS_PREFERRED);
	assert_true(conf_is_local_domain(c, "localhost"));
	assert_false(conf_is_local_domain(c, "example.com"));
	r = conf_route_for(c, "localhost");
	assert_non_null(r);
	snprintf(want, sizeof(want), "%s/postern-data/mail/%%d/%%u", cwd);
	assert_string_equal(r->maildir, want);
	assert_null(conf_route_for(c, "example.com"));
	assert_int_equal(c->nsender_groups, 1);
	assert_int_equal(c->policies[c->sender_groups[0].policy_index].action,
	    POLICY_ACCEPT);
	conf_free(c);
	conf_errors_free(&errs);
	/* The text itself, with no base directory given. */
	c = conf_load_string(conf_embedded_default(), NULL, NULL, &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->path, "(string)");
	conf_free(c);
	conf_errors_free(&errs);
}

/* ---- paths ------------------------------------------------------------- */

static void
test_relative_paths(void **state)
{
	static const struct {
		const char	*basedir;
		const char	*text;
		const char	*want_data_dir;
		const char	*want_maildir;
	} cases[] = {
		{ "/base", "data_dir = \"d\";", "/base/d", NULL },
		{ "/base/", "data_dir = \"./d/\";", "/base/d/", NULL },
		{ "/base", "data_dir = \".\";", "/base", NULL },
		{ "/base", "data_dir = \"/abs\";", "/abs", NULL },
		{ "/", "data_dir = \"d\";", "/d", NULL },
		{ "/b%x", "routes = ( { domain = \"*\"; maildir = \"m/%u\"; } );",
		    "/var/lib/postern", "/b%%x/m/%u" },
		{ "/base", "routes = ( { domain = \"*\"; maildir = \"/m/%u\"; } );",
		    "/var/lib/postern", "/m/%u" },
	};
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		c = conf_load_string(cases[i].text, NAME, cases[i].basedir,
		    &errs);
		assert_no_errors(c, &errs);
		assert_string_equal(c->data_dir, cases[i].want_data_dir);
		if (cases[i].want_maildir != NULL)
			assert_string_equal(c->routes[0].maildir,
			    cases[i].want_maildir);
		conf_free(c);
	}
	c = load("log = { file = \"log/p.log\"; };\n"
	    "listeners = ( { name = \"a\"; address = \"::1\"; port = 1;\n"
	    "  certificate = { cert = \"c.pem\"; key = \"/k.pem\";"
	    " chain = \"../ca.pem\"; }; } );\n", &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->log_file, BASE "/log/p.log");
	assert_null(c->listeners[0].certificate.id);
	assert_string_equal(c->listeners[0].certificate.cert, BASE "/c.pem");
	assert_string_equal(c->listeners[0].certificate.key, "/k.pem");
	assert_string_equal(c->listeners[0].certificate.chain,
	    BASE "/../ca.pem");
	conf_free(c);
	c = load("log = { file = \"syslog\"; format = \"JSON\"; };\n", &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->log_file, "syslog");
	assert_int_equal(c->log_json, 1);
	conf_free(c);
}

static char *
write_temp(const char *dir, const char *name, const char *text)
{
	char *path;
	size_t len = strlen(dir) + strlen(name) + 2;
	FILE *fp;

	path = xmalloc(len);
	snprintf(path, len, "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* conf_load resolves against the file's own directory. */
static void
test_load_file(void **state)
{
	char dir[] = "/tmp/test_conf.XXXXXX", want[PATH_MAX];
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	char *path, *bad;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = write_temp(dir, "p.conf", spec_example);
	c = conf_load(path, &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->path, path);
	snprintf(want, sizeof(want), "%s/mail/%%d/%%u", dir);
	assert_string_equal(c->routes[0].maildir, want);
	snprintf(want, sizeof(want), "%s/ses.pass", dir);
	assert_string_equal(c->routes[2].auth_password_file, want);
	conf_free(c);

	bad = write_temp(dir, "bad.conf", "x = 1;\n");
	c = conf_load(bad, &errs);
	assert_int_equal(errs.n, 1);
	snprintf(want, sizeof(want), "%s:1: unknown key 'x' at top level", bad);
	assert_string_equal(errs.msgs[0], want);
	conf_free(c);
	conf_errors_free(&errs);

	snprintf(want, sizeof(want), "%s/missing.conf", dir);
	assert_null(conf_load(want, &errs));
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.msgs[0], "missing.conf: cannot read "
	    "configuration: No such file or directory"));
	conf_errors_free(&errs);

	unlink(path);
	unlink(bad);
	rmdir(dir);
	free(path);
	free(bad);
}

/* @include is relative to the including file; its lines name that file. */
static void
test_include(void **state)
{
	char dir[] = "/tmp/test_conf.XXXXXX", want[PATH_MAX];
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	char *main_path, *inc_path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	main_path = write_temp(dir, "main.conf", "hostname = \"a.example\";\n"
	    "@include \"inc.conf\"\n"
	    "zzz = 1;\n");
	inc_path = write_temp(dir, "inc.conf", "local_domains = [ \"x.example\" ];"
	    "\n\nbogus = 2;\n");
	c = conf_load(main_path, &errs);
	assert_non_null(c);
	assert_int_equal(errs.n, 2);
	snprintf(want, sizeof(want), "%s:3: unknown key 'zzz' at top level",
	    main_path);
	assert_string_equal(errs.msgs[0], want);
	assert_non_null(strstr(errs.msgs[1], "inc.conf:3: unknown key 'bogus' "
	    "at top level"));
	assert_true(conf_is_local_domain(c, "x.example"));
	conf_free(c);
	conf_errors_free(&errs);
	unlink(main_path);
	unlink(inc_path);
	rmdir(dir);
	free(main_path);
	free(inc_path);
}

/* ---- show round trip --------------------------------------------------- */

static char *
show(const struct conf *c)
{
	char *buf = NULL, *nl;
	size_t len = 0;
	FILE *fp;

	assert_non_null(fp = open_memstream(&buf, &len));
	conf_show(c, fp);
	assert_int_equal(fclose(fp), 0);
	/* The first line names the source file; drop it for comparisons. */
	assert_non_null(nl = strchr(buf, '\n'));
	memmove(buf, nl + 1, strlen(nl + 1) + 1);
	return buf;
}

static void
check_round_trip(const char *text)
{
	struct conf_errors errs;
	struct conf *a, *b;
	char *sa, *sb;

	a = load(text, &errs);
	assert_no_errors(a, &errs);
	sa = show(a);
	b = conf_load_string(sa, "shown.conf", "/elsewhere", &errs);
	if (errs.n > 0)
		print_message("%s", sa);
	assert_no_errors(b, &errs);
	sb = show(b);
	assert_string_equal(sa, sb);
	assert_int_equal(a->nlisteners, b->nlisteners);
	assert_int_equal(a->npolicies, b->npolicies);
	assert_int_equal(a->nroutes, b->nroutes);
	assert_string_equal(a->data_dir, b->data_dir);
	free(sa);
	free(sb);
	conf_free(a);
	conf_free(b);
}

static void
test_show_round_trip(void **state)
{
	struct conf_errors errs;
	struct conf *c;
	char *s;

	(void)state;
	check_round_trip(spec_example);
	check_round_trip(extended);
	check_round_trip(conf_embedded_default());
	check_round_trip("");
	/* SNI: several certificates, the first is the default. */
	check_round_trip("listeners = ( { name = \"a\"; address = \"127.0.0.1\";"
	    " port = 25; tls = \"preferred\"; certificate = ( \"default\","
	    " { cert = \"b.pem\"; key = \"b.key\"; }, \"c\" ); } );\n");
	c = load("listeners = ( { name = \"a\"; address = \"127.0.0.1\";"
	    " port = 25; certificate = [ \"one\", \"two\" ]; } );\n", &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->listeners[0].certificate.id, "one");
	assert_int_equal(c->listeners[0].nsni_certs, 1);
	assert_string_equal(c->listeners[0].sni_certs[0].id, "two");
	conf_free(c);

	c = load(extended, &errs);
	assert_no_errors(c, &errs);
	assert_string_equal(c->data_dir, BASE "/data dir/\"quoted\" \\ back");
	assert_int_equal(c->policies[1].limits.max_line_length, 1000);
	assert_int_equal(c->policies[1].limits.auth_failures, 3);
	/* 64-bit value with libconfig's L suffix; shown back with it */
	assert_true(c->limits.spool_min_free == 10737418240ULL);
	assert_true(c->policies[1].limits.spool_min_free == 10737418240ULL);
	assert_string_equal(c->tls.min_protocol, "TLSv1.3");
	assert_int_equal(c->routes[0].unknown_users, UNKNOWN_USERS_REJECT);
	assert_int_equal(c->routes[0].nusers, 2);
	assert_string_equal(c->alert_from, "postern@mail.example.org");
	assert_int_equal(c->listeners[0].proxy_protocol, 1);
	assert_int_equal(c->listeners[0].nproxy_from, 2);
	assert_string_equal(c->listeners[0].proxy_from[1].text, "10.0.0.0/8");
	assert_int_equal(c->listeners[1].proxy_protocol, 0);
	s = show(c);
	assert_non_null(strstr(s, " proxy_protocol = true; proxy_from = "
	    "[ \"::1/128\", \"10.0.0.0/8\" ];"));
	/* A password file is a path, not a secret: shown as is. */
	assert_null(strstr(s, "****"));
	assert_non_null(strstr(s, "data_dir = \"/base/data dir/\\\"quoted\\\" "
	    "\\\\ back\";"));
	free(s);
	conf_free(c);
}

/* ---- lookups ----------------------------------------------------------- */

static void
make_addr(const char *text, struct sockaddr_storage *ss)
{
	socklen_t len;

	assert_int_equal(sockaddr_parse(text, 25, ss, &len), 0);
}

static void
test_sender_group_match(void **state)
{
	static const struct {
		const char	*addr;
		const char	*want_group;	/* NULL: no match */
		const char	*want_cidr;
	} cases[] = {
		{ "127.0.0.1", "RELAYLIST", "127.0.0.0/8" },
		{ "127.255.0.9", "RELAYLIST", "127.0.0.0/8" },
		{ "::1", "RELAYLIST", "::1/128" },
		{ "::ffff:127.0.0.1", "RELAYLIST", "127.0.0.0/8" },
		{ "192.0.2.1", "ALL", "0.0.0.0/0" },
		{ "2001:db8::1", "ALL", "::/0" },
	};
	static const char text[] =
	    "policies = { p = { action = \"accept\"; }; };\n"
	    "sender_groups = (\n"
	    " { name = \"RELAYLIST\"; networks = [ \"127.0.0.0/8\", \"::1/128\" ];"
	    " policy = \"p\"; },\n"
	    " { name = \"ALL\"; networks = [ \"0.0.0.0/0\", \"::/0\" ];"
	    " policy = \"p\"; },\n"
	    " { name = \"NEVER\"; networks = [ \"127.0.0.1\" ]; policy = \"p\"; }"
	    " );\n";
	struct sockaddr_storage ss;
	struct conf_errors errs;
	const struct conf_sender_group *sg;
	const struct cidr *got_cidr;
	struct conf *c;
	size_t i;

	(void)state;
	c = load(text, &errs);
	assert_no_errors(c, &errs);
	for (i = 0; i < NELEM(cases); i++) {
		make_addr(cases[i].addr, &ss);
		got_cidr = NULL;
		sg = conf_match_sender_group(c, (struct sockaddr *)&ss,
		    &got_cidr);
		assert_non_null(sg);
		assert_string_equal(sg->name, cases[i].want_group);
		assert_non_null(got_cidr);
		assert_string_equal(got_cidr->text, cases[i].want_cidr);
	}
	conf_free(c);

	c = load(POL "sender_groups = ( { name = \"LAN\"; "
	    "networks = [ \"10.0.0.0/8\" ]; policy = \"p\"; } );\n", &errs);
	assert_no_errors(c, &errs);
	make_addr("192.0.2.1", &ss);
	got_cidr = (const struct cidr *)&ss;
	assert_null(conf_match_sender_group(c, (struct sockaddr *)&ss,
	    &got_cidr));
	assert_null(got_cidr);
	assert_null(conf_match_sender_group(c, (struct sockaddr *)&ss, NULL));
	conf_free(c);
}

static void
test_route_for(void **state)
{
	static const struct {
		const char	*domain;
		int		 want_index;	/* -1: NULL */
	} with_star[] = {
		{ "example.com", 1 }, { "EXAMPLE.com", 1 }, { "corp.example", 2 },
		{ "other.example", 0 }, { "sub.example.com", 0 }, { "", 0 },
	}, without_star[] = {
		{ "example.com", 0 }, { "Example.Com", 0 }, { "x.example", -1 },
	};
	struct conf_errors errs;
	struct conf *c;
	const struct conf_route *r;
	size_t i;

	(void)state;
	/* "*" first in the file still only catches what nothing else does. */
	c = load("routes = (\n"
	    " { domain = \"*\"; hosts = [ \"smart.example:587\" ]; },\n"
	    " { domain = \"example.com\"; maildir = \"m/%u\"; },\n"
	    " { domain = \"corp.example\"; hosts = [ \"lmtp:/run/l\" ]; } );\n",
	    &errs);
	assert_no_errors(c, &errs);
	for (i = 0; i < NELEM(with_star); i++) {
		r = conf_route_for(c, with_star[i].domain);
		assert_ptr_equal(r, &c->routes[with_star[i].want_index]);
	}
	conf_free(c);

	c = load("routes = ( { domain = \"example.com\"; maildir = \"m/%u\"; } );\n",
	    &errs);
	assert_no_errors(c, &errs);
	for (i = 0; i < NELEM(without_star); i++) {
		r = conf_route_for(c, without_star[i].domain);
		if (without_star[i].want_index < 0)
			assert_null(r);
		else
			assert_ptr_equal(r,
			    &c->routes[without_star[i].want_index]);
	}
	conf_free(c);
}

static void
test_local_domain(void **state)
{
	static const struct {
		const char	*domain;
		int		 want;
	} cases[] = {
		{ "example.com", 1 }, { "EXAMPLE.COM", 1 }, { "example.net", 1 },
		{ "sub.example.com", 0 }, { "example", 0 }, { "", 0 },
	};
	struct conf_errors errs;
	struct conf *c;
	size_t i;

	(void)state;
	c = load("local_domains = [ \"example.com\", \"Example.NET\" ];\n",
	    &errs);
	assert_no_errors(c, &errs);
	for (i = 0; i < NELEM(cases); i++)
		assert_int_equal(conf_is_local_domain(c, cases[i].domain),
		    cases[i].want);
	conf_free(c);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(conf_listener_tls_name(LISTENER_TLS_IMPLICIT),
	    "implicit");
	assert_string_equal(conf_listener_tls_name(LISTENER_TLS_OFF), "off");
	assert_string_equal(conf_policy_action_name(POLICY_TCPREFUSE),
	    "tcprefuse");
	assert_string_equal(conf_policy_action_name(POLICY_RELAY), "relay");
	if (access(CONF_DEFAULT_PATH, F_OK) == 0)
		assert_string_equal(conf_default_path(), CONF_DEFAULT_PATH);
	else
		assert_null(conf_default_path());
}

/* ---- postern config ---------------------------------------------------- */

/* Run cmd_config with stdout and stderr captured into *out and *errout. */
static int
run_config(char **out, char **errout, int argc, ...)
{
	char *argv[8], tmpl_o[] = "/tmp/test_conf_o.XXXXXX",
	    tmpl_e[] = "/tmp/test_conf_e.XXXXXX";
	int fo, fe, save_o, save_e, rc, i;
	va_list ap;

	assert_true(argc < 8);
	va_start(ap, argc);
	for (i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	assert_true((fo = mkstemp(tmpl_o)) != -1);
	assert_true((fe = mkstemp(tmpl_e)) != -1);
	fflush(stdout);
	fflush(stderr);
	save_o = dup(1);
	save_e = dup(2);
	dup2(fo, 1);
	dup2(fe, 2);
	rc = cmd_config(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(save_o, 1);
	dup2(save_e, 2);
	close(save_o);
	close(save_e);
	close(fo);
	close(fe);
	*out = read_file(tmpl_o, NULL, 1 << 20);
	*errout = read_file(tmpl_e, NULL, 1 << 20);
	unlink(tmpl_o);
	unlink(tmpl_e);
	assert_non_null(*out);
	assert_non_null(*errout);
	return rc;
}

/* The SPEC example with `user = "root"` (a static buffer). */
static const char *
spec_as_root(void)
{
	static char buf[sizeof(spec_example)];
	static const char u[] = "user      = \"postern\";";
	static const char r[] = "user      = \"root\";   ";	/* as long */
	char *at;

	memcpy(buf, spec_example, sizeof(buf));
	assert_non_null(at = strstr(buf, u));
	memcpy(at, r, sizeof(r) - 1);
	return buf;
}

/* A DKIM key (Ed25519, as keygen writes it) at dir/rel. */
static void
write_dkim_key(const char *dir, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/dkim", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	test_dkim_key_file(path, DKIM_ED25519_SHA256);
}

static void
test_cmd_config(void **state)
{
	char dir[] = "/tmp/test_conf.XXXXXX", want[PATH_MAX + 64];
	char *good, *bad, *pass, *out, *errout;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* the example with user root: whether a `postern` system user
	 * exists (it may not read this root-owned scratch directory) must
	 * not change what config check says */
	good = write_temp(dir, "good.conf", spec_as_root());
	bad = write_temp(dir, "bad.conf", "hostname = \"a.example\";\n"
	    "listeners = ( { name = \"a\"; address = \"::1\"; port = 99999; } );\n"
	    "bogus = true;\n");

	/* config check loads the SPEC example's DKIM key and looks at its
	 * S/MIME keys directory: give it both */
	write_dkim_key(dir, "dkim/example.com.s2026.key");
	snprintf(want, sizeof(want), "%s/smime", dir);
	assert_int_equal(mkdir(want, 0700), 0);

	/* The SPEC example's smart host has auth_password_file "ses.pass":
	 * missing, a warning (not an error). */
	assert_int_equal(run_config(&out, &errout, 4, "config", "check", "-c",
	    good), 0);
	snprintf(want, sizeof(want), "\nwarning: %s:", good);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), ": route *: auth_password_file %s/"
	    "ses.pass cannot be read (No such file or directory)", dir);
	assert_non_null(strstr(out, want));
	free(out);
	free(errout);
	pass = write_temp(dir, "ses.pass", "secret\n");
	assert_int_equal(run_config(&out, &errout, 4, "config", "check", "-c",
	    good), 0);
	/* The SPEC example's listeners use certificate "default", which
	 * serve would make (the demo certificate); its smime.sign domain
	 * has no domain key (a warning). */
	assert_true(strncmp(out, "note: no certificate \"default\" yet; "
	    "`postern serve` will make a self-signed demo certificate for "
	    "mx.example.com\n", 99) == 0);
	snprintf(want, sizeof(want), "\nwarning: %s:52: smime: no domain key "
	    "%s/smime/example.com.pem: only senders with their own "
	    "<address>.pem there are signed for", good, dir);
	if (strstr(out, want) == NULL)
		fail_msg("%s", out);
	snprintf(want, sizeof(want), "\n%s: configuration OK\n", good);
	assert_int_equal(strcmp(out + strlen(out) - strlen(want), want), 0);
	assert_string_equal(errout, "");
	free(out);
	free(errout);

	assert_int_equal(run_config(&out, &errout, 4, "config", "check", "-c",
	    bad), 1);
	assert_string_equal(out, "");
	snprintf(want, sizeof(want), "%s:2: 'port' must be between 1 and "
	    "65535 (got 99999)\n%s:3: unknown key 'bogus' at top level\n",
	    bad, bad);
	assert_string_equal(errout, want);
	free(out);
	free(errout);

	assert_int_equal(run_config(&out, &errout, 3, "config", "show",
	    "-c" "/nonexistent/p.conf"), 1);
	assert_non_null(strstr(errout, "/nonexistent/p.conf: cannot read"));
	free(out);
	free(errout);

	assert_int_equal(run_config(&out, &errout, 4, "config", "show", "-c",
	    good), 0);
	assert_non_null(strstr(out, "hostname = \"mx.example.com\";"));
	assert_non_null(strstr(out, "max_connections_per_client = 50;"));
	assert_string_equal(errout, "");
	free(out);
	free(errout);

	assert_int_equal(run_config(&out, &errout, 2, "config", "--help"), 0);
	assert_non_null(strstr(out, "usage: postern config check"));
	free(out);
	free(errout);
	assert_int_equal(run_config(&out, &errout, 3, "config", "show",
	    "--help"), 0);
	free(out);
	free(errout);

	/* Usage errors. */
	assert_int_equal(run_config(&out, &errout, 1, "config"), 2);
	assert_non_null(strstr(errout, "usage:"));
	free(out);
	free(errout);
	assert_int_equal(run_config(&out, &errout, 2, "config", "lint"), 2);
	free(out);
	free(errout);
	assert_int_equal(run_config(&out, &errout, 3, "config", "check",
	    "-c"), 2);
	free(out);
	free(errout);
	assert_int_equal(run_config(&out, &errout, 3, "config", "check",
	    "-x"), 2);
	free(out);
	free(errout);
	assert_int_equal(run_config(&out, &errout, 4, "config", "check",
	    "show", "extra"), 2);
	free(out);
	free(errout);

	unlink(good);
	unlink(bad);
	unlink(pass);
	rmdir(dir);
	free(good);
	free(bad);
	free(pass);
}

/* The signing keys: which dkim entries sign for a From: domain (the
 * longest configured domain wins; subdomains only when asked), and which
 * senders smime.sign selects. */
static void
test_signing(void **state)
{
	static const char text[] =
	    "dkim = ( { domain = \"example.com\"; selector = \"r\"; key = \"r\"; },\n"
	    " { domain = \"Example.com\"; selector = \"e\"; key = \"e\";"
	    " subdomains = true; expire = 604800; },\n"
	    " { domain = \"eu.example.com\"; selector = \"x\"; key = \"x\"; },\n"
	    " { domain = \"other.org\"; selector = \"o\"; key = \"o\"; } );\n"
	    "dkim_on_error = \"send-unsigned\";\n"
	    "smime = { keys = \"sm\"; sign = [ \"example.com\", "
	    "\"boss@example.org\" ]; encrypt = \"required\"; };\n";
	static const struct {
		const char *domain;
		size_t n, first, second;
	} t[] = {
		{ "example.com", 2, 0, 1 },
		{ "EXAMPLE.COM", 2, 0, 1 },
		{ "a.example.com", 1, 1, 0 },	/* only subdomains = true */
		{ "b.a.example.com", 1, 1, 0 },
		{ "eu.example.com", 1, 2, 0 },	/* the longer domain wins */
		{ "x.eu.example.com", 1, 1, 0 },	/* x has no subdomains */
		{ "other.org", 1, 3, 0 },
		{ "sub.other.org", 0, 0, 0 },
		{ "xexample.com", 0, 0, 0 },
		{ "com", 0, 0, 0 },
	};
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	size_t idx[8], i, n;

	c = conf_load_string(text, "t.conf", "/base", &errs);
	assert_non_null(c);
	assert_int_equal(errs.n, 0);
	assert_int_equal(c->dkim_on_error, DKIM_ON_ERROR_SEND_UNSIGNED);
	assert_int_equal(c->smime_encrypt_mode, SMIME_ENCRYPT_REQUIRED);
	assert_string_equal(c->smime_encrypt, "required");
	assert_int_equal(c->dkim[1].subdomains, 1);
	assert_int_equal(c->dkim[1].expire, 604800);
	assert_int_equal(c->dkim[0].subdomains, 0);
	assert_int_equal(c->dkim[0].expire, 0);
	for (i = 0; i < NELEM(t); i++) {
		n = conf_dkim_for(c, t[i].domain, idx, NELEM(idx));
		if (n != t[i].n)
			fail_msg("%s: %zu entries, wanted %zu", t[i].domain, n,
			    t[i].n);
		if (n > 0)
			assert_int_equal(idx[0], t[i].first);
		if (n > 1)
			assert_int_equal(idx[1], t[i].second);
	}
	assert_int_equal(conf_dkim_for(c, "example.com", idx, 1), 1);
	assert_true(conf_smime_signs(c, "alice@example.com"));
	assert_true(conf_smime_signs(c, "Alice@EXAMPLE.com"));
	assert_false(conf_smime_signs(c, "alice@sub.example.com"));
	assert_true(conf_smime_signs(c, "boss@example.org"));
	assert_false(conf_smime_signs(c, "other@example.org"));
	assert_true(conf_valid_domain("s2026.example.com"));
	assert_false(conf_valid_domain("s 2026"));
	conf_free(c);
	conf_errors_free(&errs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_entry_defaults),
		cmocka_unit_test(test_embedded_default),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_show_round_trip),
		cmocka_unit_test(test_sender_group_match),
		cmocka_unit_test(test_route_for),
		cmocka_unit_test(test_local_domain),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_cmd_config),
		cmocka_unit_test(test_signing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
