/*
 * cmd_dkim.c - `postern dkim`: DKIM keys and their DNS records.
 *
 *   dkim keygen --domain D --selector S [--type rsa2048|rsa3072|ed25519]
 *       writes a new private key to <data_dir>/dkim/D.S.key (0600, as the
 *       configuration's user when run as root) and prints the TXT record
 *       to publish (zone-file form, strings of at most 255 octets) and
 *       the `dkim` entry to add.  An existing file is never replaced.
 *   dkim check [--domain D] [--json]
 *       looks up S._domainkey.D TXT for every configured selector
 *       (libunbound; resolver.local_data first) and compares it with
 *       the private key.  Each problem is one line and a "fix:" line
 *       (the table below); exit 1 when a selector fails (record missing,
 *       not matching, revoked, unusable key, DNS failure), 0 when only
 *       warnings remain (t=y testing flag, RSA under 2048 bits).
 *
 * Public: cmd_dkim.  The fixes are here, not in failcause.c: that table
 * is about SMTP conversations; these are about DNS records and keys.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "cmd.h"
#include "conf.h"
#include "dkim.h"
#include "dns.h"
#include "runas.h"
#include "strbuf.h"
#include "util.h"

#define CHECK_TIMEOUT	10.0	/* seconds for all lookups */

static void
usage(FILE *f)
{
	fputs("usage: postern dkim [-c FILE] COMMAND\n"
	    "  keygen --domain D --selector S [--type rsa2048|rsa3072|ed25519]"
	    "\n"
	    "        write a new private key to <data_dir>/dkim/D.S.key (mode "
	    "0600) and\n"
	    "        print the DNS TXT record to publish and the dkim entry "
	    "to add\n"
	    "        (--type: rsa2048 is the default)\n"
	    "  check [--domain D] [--json]\n"
	    "        look up each configured selector's record in DNS and "
	    "compare it\n"
	    "        with the private key; each problem comes with a fix: "
	    "line; exit 1\n"
	    "        when a selector fails, 0 when only warnings remain\n"
	    "  -c FILE  configuration file (default " CONF_DEFAULT_PATH
	    " if it exists,\n"
	    "           else the embedded default)\n", f);
}

struct opts {
	const char	*cpath;
	const char	*domain;
	const char	*selector;
	const char	*type;
	int		 json;
};

/* Options of `sub`; -1 to go on, else the exit status. */
static int
parse(const char *sub, int argc, char **argv, int keygen, struct opts *o)
{
	static const struct option lo[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "type", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == ':' || c == '?')
			return cmd_usage_error("dkim", sub, c == ':' ? "option "
			    "%s needs a value" : "unknown option '%s'",
			    argv[optind - 1]);
		if ((c == 's' || c == 't') && !keygen)
			return cmd_usage_error("dkim", sub, "check does not "
			    "take --%s", c == 's' ? "selector" : "type");
		if (c == 'j' && keygen)
			return cmd_usage_error("dkim", sub, "keygen does not "
			    "take --json");
		if (c == 'c')
			o->cpath = optarg;
		else if (c == 'd')
			o->domain = optarg;
		else if (c == 's')
			o->selector = optarg;
		else if (c == 't')
			o->type = optarg;
		else
			o->json = 1;
	}
	if (optind < argc)
		return cmd_usage_error("dkim", sub, "unexpected argument '%s'",
		    argv[optind]);
	if (o->domain != NULL && !conf_valid_domain(o->domain))
		return cmd_usage_error("dkim", sub, "'%s' is not a domain name",
		    o->domain);
	return -1;
}

/* ---- keygen ---------------------------------------------------------- */

/* --type: algorithm and bits; -1 when unknown. */
static int
key_type(const char *t, enum dkim_alg *alg, int *bits)
{
	*alg = DKIM_RSA_SHA256;
	*bits = 2048;
	if (t == NULL || strcmp(t, "rsa2048") == 0)
		return 0;
	if (strcmp(t, "rsa3072") == 0) {
		*bits = 3072;
		return 0;
	}
	if (strcmp(t, "ed25519") == 0) {
		*alg = DKIM_ED25519_SHA256;
		*bits = 256;
		return 0;
	}
	return -1;
}

/* Write the PEM to path (0600) as the configuration's user. */
static int
write_key(const struct conf *conf, const char *dir, const char *path,
    const struct dkim_key *key)
{
	struct strbuf pem = STRBUF_INIT;
	int rc = -1;

	if (runas_act_as_in(conf->user, conf->data_dir) == -1)
		return -1;
	if (mkdir_p(dir, 0700) == -1)
		cmd_fail("dkim keygen: cannot create %s: %s (check data_dir "
		    "and its permissions)", dir, strerror(errno));
	else if (access(path, F_OK) == 0)
		cmd_fail("dkim keygen: %s exists already (a new key needs a "
		    "new selector; or remove that file first)", path);
	else if (dkim_key_pem(key, &pem) == -1)
		cmd_fail("dkim keygen: cannot encode the key (OpenSSL)");
	else if (write_file_atomic(path, pem.s, pem.len, 0600) == -1)
		cmd_fail("dkim keygen: cannot write %s: %s (check the "
		    "permissions of %s)", path, strerror(errno), dir);
	else
		rc = 0;
	if (pem.s != NULL)
		secure_free(pem.s, pem.cap);
	runas_restore();
	return rc;
}

static void
print_keygen(const struct conf *conf, const struct opts *o, const char *path,
    const struct dkim_key *key, const struct strbuf *zone)
{
	char desc[64];

	dkim_key_describe(key, desc, sizeof(desc));
	printf("wrote %s (%s, mode 0600)\n\n"
	    "Publish this TXT record in the DNS zone of %s:\n\n%s\n",
	    path, desc, o->domain, zone->s);
	if (conf->path[0] == '(')	/* the embedded default: no file */
		printf("Then add this entry to the dkim list of a configuration "
		    "file (none is in use: `postern config show > "
		    "postern.conf` writes the embedded default to start "
		    "from) and start postern with -c postern.conf:\n\n");
	else
		printf("Then add this entry to the dkim list of %s and reload "
		    "postern:\n\n", conf->path);
	printf("  { domain = \"%s\"; selector = \"%s\"; key = \"%s\"; }"
	    "\n\nOnce the record is published: postern dkim check --domain "
	    "%s\n", o->domain, o->selector, path, o->domain);
}

static int
dkim_keygen(const struct conf *conf, const struct opts *o)
{
	struct strbuf zone = STRBUF_INIT;
	char dir[4096], path[4096], why[512];
	struct dkim_key *key;
	enum dkim_alg alg;
	int bits, rc = 1;

	if (key_type(o->type, &alg, &bits) == -1)
		return cmd_usage_error("dkim", "keygen", "--type must be "
		    "rsa2048, rsa3072 or ed25519 (not '%s')", o->type);
	if (bsnprintf(dir, sizeof(dir), "%s/dkim", conf->data_dir) == -1 ||
	    bsnprintf(path, sizeof(path), "%s/%s.%s.key", dir, o->domain,
	    o->selector) == -1)
		return cmd_fail("dkim keygen: the key path is too long "
		    "(shorten data_dir)");
	if ((key = dkim_key_generate(alg, bits, why, sizeof(why))) == NULL)
		return cmd_fail("dkim keygen: %s (check the OpenSSL "
		    "installation)", why);
	if (dkim_record_zone(o->selector, o->domain, key, &zone) == -1)
		cmd_fail("dkim keygen: cannot encode the public key (OpenSSL)");
	else if (write_key(conf, dir, path, key) == 0) {
		print_keygen(conf, o, path, key, &zone);
		rc = 0;
	}
	strbuf_free(&zone);
	dkim_key_free(key);
	return rc;
}

/* ---- check ----------------------------------------------------------- */

enum problem {
	P_KEY,		/* the private key cannot be used */
	P_DNS,		/* the lookup failed */
	P_MISSING,	/* no record */
	P_NOT_DKIM,	/* TXT records, none a DKIM key record */
	P_MULTIPLE,	/* more than one DKIM record */
	P_REVOKED,	/* p= empty */
	P_MISMATCH,	/* not the public half of the private key */
	P_HASH,		/* h= without sha256 */
	P_SERVICE,	/* s= without email */
	P_TESTING,	/* t=y */
	P_WEAK,		/* RSA under 2048 bits */
	P_COUNT
};

/* One row per problem: its stable name, whether it fails the selector,
 * and the fix ({domain}, {selector}, {key}, {record} filled in). */
static const struct {
	const char	*name;
	int		 fatal;
	const char	*fix;
} problems[P_COUNT] = {
	[P_KEY] = { "key-unusable", 1, "make a key with `postern dkim keygen "
	    "--domain {domain} --selector NEW`, or point key at the right "
	    "file; the daemon's user must be able to read it" },
	[P_DNS] = { "dns-error", 1, "check that this machine's resolver "
	    "(/etc/resolv.conf) works and that the name servers of "
	    "{domain} answer; then run `postern dkim check` again" },
	[P_MISSING] = { "record-missing", 1, "publish in the zone of "
	    "{domain}: {record}" },
	[P_NOT_DKIM] = { "record-invalid", 1, "replace the TXT record at "
	    "{selector}._domainkey.{domain} with: {record}" },
	[P_MULTIPLE] = { "record-multiple", 1, "keep only one DKIM record at "
	    "{selector}._domainkey.{domain}: {record}" },
	[P_REVOKED] = { "key-revoked", 1, "this selector is retired: remove "
	    "its dkim entry and sign with a published key; or, if the key "
	    "is still meant for use, publish: {record}" },
	[P_MISMATCH] = { "key-mismatch", 1, "publish the record of {key}: "
	    "{record}; or set key to the private key whose public half is "
	    "published" },
	[P_HASH] = { "hash-excluded", 1, "remove h= from the record (or "
	    "make it h=sha256): {record}" },
	[P_SERVICE] = { "service-excluded", 1, "remove s= from the record: "
	    "{record}" },
	[P_TESTING] = { "testing-mode", 0, "remove t=y from the record once "
	    "signed mail verifies: {record}" },
	[P_WEAK] = { "rsa-weak", 0, "make a 2048-bit key with `postern dkim "
	    "keygen --domain {domain} --selector NEW`, publish and add it, "
	    "and remove this one a few days later" },
};

/* What was found for one selector. */
struct check {
	const struct conf_dkim	*d;
	char			 name[512];	/* S._domainkey.D */
	struct dkim_key		*key;
	char			 keywhy[512];
	struct dns_txt		 dns;		/* copied; txt owned */
	int			 done;
	enum problem		 p[P_COUNT];
	char			 text[P_COUNT][512];
	size_t			 np;
	struct dkim_record	 rec;		/* the one DKIM record */
};

static void
add_problem(struct check *ck, enum problem p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
add_problem(struct check *ck, enum problem p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(ck->text[ck->np], sizeof(ck->text[0]), fmt, ap);
	va_end(ap);
	ck->p[ck->np++] = p;
}

static size_t pending;

static void
txt_cb(void *arg, const struct dns_txt *res)
{
	struct check *ck = arg;
	size_t i;

	ck->dns = *res;
	for (i = 0; i < res->ntxt; i++)
		ck->dns.txt[i] = xstrndup(res->txt[i], res->len[i] <
		    DNS_TXT_MAX ? res->len[i] : DNS_TXT_MAX - 1);
	ck->done = 1;
	pending--;
}

/* The record of ck's key on one line (or a hint when there is no key). */
static void
record_line(const struct check *ck, struct strbuf *out)
{
	struct strbuf z = STRBUF_INIT;
	size_t i;

	if (ck->key == NULL || dkim_record_zone(ck->d->selector, ck->d->domain,
	    ck->key, &z) == -1) {
		strbuf_puts(out, "the record `postern dkim keygen` printed for "
		    "this key");
		strbuf_free(&z);
		return;
	}
	for (i = 0; i < z.len; i++) {
		if (z.s[i] == '\n' && i + 1 < z.len && z.s[i + 1] == '\t')
			i++, strbuf_putc(out, ' ');
		else if (z.s[i] != '\n')
			strbuf_putc(out, z.s[i]);
	}
	strbuf_free(&z);
}

/* The fix of problem p for ck, placeholders filled. */
static void
fix_text(const struct check *ck, enum problem p, struct strbuf *out)
{
	const char *t = problems[p].fix, *e;

	while (*t != '\0') {
		if (*t != '{' || (e = strchr(t, '}')) == NULL) {
			strbuf_putc(out, *t++);
			continue;
		}
		if (strncmp(t, "{domain}", 8) == 0)
			strbuf_puts(out, ck->d->domain);
		else if (strncmp(t, "{selector}", 10) == 0)
			strbuf_puts(out, ck->d->selector);
		else if (strncmp(t, "{key}", 5) == 0)
			strbuf_puts(out, ck->d->key);
		else if (strncmp(t, "{record}", 8) == 0)
			record_line(ck, out);
		t = e + 1;
	}
}

/* The DKIM key records among the TXT records: count, first kept. */
static size_t
dkim_records(struct check *ck, char *why, size_t whylen)
{
	struct dkim_record r;
	size_t i, n = 0;
	char w[256];

	why[0] = '\0';
	for (i = 0; i < ck->dns.ntxt; i++) {
		/* a TXT record that is no DKIM record at all (SPF, ...) */
		if (strncmp(ck->dns.txt[i], "v=", 2) == 0 &&
		    strncmp(ck->dns.txt[i], "v=DKIM1", 7) != 0)
			continue;
		if (dkim_record_parse(ck->dns.txt[i], strlen(ck->dns.txt[i]),
		    &r, w, sizeof(w)) == -1) {
			if (why[0] == '\0')
				bstrlcpy(why, w, whylen);
			continue;
		}
		if (n++ == 0)
			ck->rec = r;
	}
	return n;
}

/* Judge one selector from its key and its lookup. */
static void
judge(struct check *ck)
{
	char why[256];
	size_t n;

	if (ck->key == NULL)
		add_problem(ck, P_KEY, "%s", ck->keywhy);
	if (ck->dns.status == DNS_TEMPFAIL) {
		add_problem(ck, P_DNS, "cannot look up %s TXT: %s", ck->name,
		    ck->dns.why);
		return;
	}
	if (ck->dns.status == DNS_PERMFAIL) {
		add_problem(ck, P_MISSING, "no DKIM record at %s: %s", ck->name,
		    ck->dns.why);
		return;
	}
	if ((n = dkim_records(ck, why, sizeof(why))) == 0) {
		add_problem(ck, P_NOT_DKIM, "no valid DKIM record at %s%s%s",
		    ck->name, why[0] ? ": " : "", why);
		return;
	}
	if (n > 1)
		add_problem(ck, P_MULTIPLE, "%zu DKIM records at %s; verifiers "
		    "may use any of them", n, ck->name);
	if (ck->rec.revoked)
		add_problem(ck, P_REVOKED, "the record revokes the key (p= is "
		    "empty)");
	else if (ck->key != NULL && !dkim_record_matches(&ck->rec, ck->key))
		add_problem(ck, P_MISMATCH, "the key in DNS (k=%s) does not "
		    "match the private key %s", ck->rec.k, ck->d->key);
	if (!ck->rec.sha256)
		add_problem(ck, P_HASH, "the record's h= does not allow "
		    "sha256");
	if (!ck->rec.email)
		add_problem(ck, P_SERVICE, "the record's s= does not allow "
		    "email");
	if (ck->rec.testing)
		add_problem(ck, P_TESTING, "the record is in testing mode "
		    "(t=y): receivers treat signatures that fail as if there "
		    "were none");
	if (ck->key != NULL && ck->key->alg == DKIM_RSA_SHA256 &&
	    ck->key->bits < DKIM_RSA_GOOD_BITS)
		add_problem(ck, P_WEAK, "the RSA key has only %d bits; "
		    "receivers may treat its signatures as weak",
		    ck->key->bits);
}

static int
check_failed(const struct check *ck)
{
	size_t i;

	for (i = 0; i < ck->np; i++)
		if (problems[ck->p[i]].fatal)
			return 1;
	return 0;
}

static void
print_text(const struct check *ck)
{
	struct strbuf fix = STRBUF_INIT;
	char desc[64];
	size_t i;

	if (ck->np == 0) {
		dkim_key_describe(ck->key, desc, sizeof(desc));
		printf("%s: ok (%s, matches %s)\n", ck->name, desc, ck->d->key);
		return;
	}
	for (i = 0; i < ck->np; i++) {
		strbuf_reset(&fix);
		fix_text(ck, ck->p[i], &fix);
		printf("%s: %s: %s\n  fix: %s\n", ck->name,
		    problems[ck->p[i]].fatal ? "FAIL" : "warning",
		    ck->text[i], fix.s);
	}
	strbuf_free(&fix);
}

static void
json_kv(struct strbuf *sb, const char *k, const char *v, int comma)
{
	strbuf_json_str(sb, k, strlen(k));
	strbuf_putc(sb, ':');
	strbuf_json_str(sb, v, strlen(v));
	if (comma)
		strbuf_putc(sb, ',');
}

static void
json_check(const struct check *ck, struct strbuf *sb)
{
	struct strbuf fix = STRBUF_INIT;
	size_t i;

	strbuf_putc(sb, '{');
	json_kv(sb, "domain", ck->d->domain, 1);
	json_kv(sb, "selector", ck->d->selector, 1);
	json_kv(sb, "name", ck->name, 1);
	json_kv(sb, "key", ck->d->key, 1);
	json_kv(sb, "status", check_failed(ck) ? "fail" : ck->np > 0 ?
	    "warning" : "ok", 1);
	strbuf_puts(sb, "\"problems\":[");
	for (i = 0; i < ck->np; i++) {
		strbuf_reset(&fix);
		fix_text(ck, ck->p[i], &fix);
		strbuf_puts(sb, i ? ",{" : "{");
		json_kv(sb, "problem", problems[ck->p[i]].name, 1);
		strbuf_printf(sb, "\"fatal\":%s,", problems[ck->p[i]].fatal ?
		    "true" : "false");
		json_kv(sb, "text", ck->text[i], 1);
		json_kv(sb, "fix", fix.s, 0);
		strbuf_putc(sb, '}');
	}
	strbuf_puts(sb, "]}");
	strbuf_free(&fix);
}

/* Start the lookups of every check and wait (bounded) for the answers. */
static int
lookup_all(const struct conf *conf, struct check *cks, size_t n)
{
	struct event_base *base = event_base_new();
	struct timeval tv = { (time_t)CHECK_TIMEOUT + 2, 0 };
	char why[256];
	size_t i;

	if (base == NULL)
		return cmd_fail("dkim check: cannot start an event loop (out "
		    "of memory?)");
	if (dns_init(base, conf, why, sizeof(why)) == -1) {
		event_base_free(base);
		return cmd_fail("dkim check: %s (check /etc/resolv.conf)", why);
	}
	pending = n;
	for (i = 0; i < n; i++)
		(void)dns_txt(cks[i].name, CHECK_TIMEOUT, txt_cb, &cks[i]);
	event_base_loopexit(base, &tv);		/* a bound, whatever happens */
	while (pending > 0 && event_base_loop(base, EVLOOP_ONCE) == 0 &&
	    !event_base_got_exit(base))
		;
	dns_shutdown();
	event_base_free(base);
	for (i = 0; i < n; i++)
		if (!cks[i].done) {
			cks[i].dns.status = DNS_TEMPFAIL;
			bstrlcpy(cks[i].dns.why, "no answer in time",
			    sizeof(cks[i].dns.why));
		}
	return 0;
}

/* The checks for the selected entries; NULL (after a message) if none. */
static struct check *
checks_new(const struct conf *conf, const char *domain, size_t *np)
{
	struct check *cks = xcalloc(conf->ndkim + 1, sizeof(*cks));
	size_t i, n = 0;

	for (i = 0; i < conf->ndkim; i++) {
		if (domain != NULL && ascii_casecmp(domain,
		    conf->dkim[i].domain) != 0)
			continue;
		cks[n].d = &conf->dkim[i];
		(void)bsnprintf(cks[n].name, sizeof(cks[n].name),
		    "%s._domainkey.%s", conf->dkim[i].selector,
		    conf->dkim[i].domain);
		cks[n].key = dkim_key_load(conf->dkim[i].key, cks[n].keywhy,
		    sizeof(cks[n].keywhy));
		n++;
	}
	if (n == 0) {
		free(cks);
		if (domain != NULL)
			cmd_fail("dkim check: no dkim entry for %s in %s (add "
			    "one: `postern dkim keygen --domain %s --selector "
			    "S`)", domain, conf->path, domain);
		else
			cmd_fail("dkim check: %s has no dkim entries (make a "
			    "key: `postern dkim keygen --domain D --selector "
			    "S`)", conf->path);
		return NULL;
	}
	*np = n;
	return cks;
}

static void
checks_free(struct check *cks, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		dkim_key_free(cks[i].key);
		for (j = 0; j < cks[i].dns.ntxt; j++)
			free(cks[i].dns.txt[j]);
	}
	free(cks);
}

static int
dkim_check(const struct conf *conf, const struct opts *o)
{
	struct strbuf js = STRBUF_INIT;
	struct check *cks;
	size_t i, n = 0, failed = 0;

	if ((cks = checks_new(conf, o->domain, &n)) == NULL)
		return 1;
	if (lookup_all(conf, cks, n) != 0) {
		checks_free(cks, n);
		return 1;
	}
	strbuf_putc(&js, '[');
	for (i = 0; i < n; i++) {
		judge(&cks[i]);
		failed += check_failed(&cks[i]);
		if (!o->json)
			print_text(&cks[i]);
		else {
			if (i > 0)
				strbuf_putc(&js, ',');
			json_check(&cks[i], &js);
		}
	}
	if (o->json)
		printf("%s]\n", js.s);
	strbuf_free(&js);
	checks_free(cks, n);
	return failed > 0 ? 1 : 0;
}

/* ---- entry ----------------------------------------------------------- */

static int
run_sub(const char *sub, const char *path, int argc, char **argv)
{
	struct opts o;
	struct conf *conf;
	int keygen = strcmp(sub, "keygen") == 0, rc;

	memset(&o, 0, sizeof(o));
	o.cpath = path;
	if ((rc = parse(sub, argc, argv, keygen, &o)) != -1)
		return rc;
	if (keygen && (o.domain == NULL || o.selector == NULL))
		return cmd_usage_error("dkim", sub, "give --domain and "
		    "--selector");
	if (keygen && !conf_valid_domain(o.selector))
		return cmd_usage_error("dkim", sub, "selector '%s' is not "
		    "valid (letters, digits, '-' and '.')", o.selector);
	if ((conf = conf_load_for_command(o.cpath)) == NULL)
		return 1;
	rc = keygen ? dkim_keygen(conf, &o) : dkim_check(conf, &o);
	if (fflush(stdout) == EOF && rc == 0)
		rc = cmd_fail("dkim %s: cannot write the output: %s", sub,
		    strerror(errno));
	conf_free(conf);
	return rc;
}

/* `postern dkim [-c FILE] keygen|check ...`; returns the exit status. */
int
cmd_dkim(int argc, char **argv)
{
	const char *path = NULL;
	int i, rc;

	if ((rc = cmd_leading_options(argc, argv, usage, &path, &i)) != -1)
		return rc;
	if (strcmp(argv[i], "keygen") == 0 || strcmp(argv[i], "check") == 0)
		return run_sub(argv[i], path, argc - i, argv + i);
	fprintf(stderr, "postern: dkim: unknown command '%s' (see `postern "
	    "dkim --help`)\n", argv[i]);
	return 2;
}
