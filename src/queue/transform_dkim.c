/*
 * transform_dkim.c - the DKIM step of the queue manager's content
 * transformations (transform_steps.h): a message whose header From:
 * domain has `dkim` entries (conf_dkim_for: the domain, or a parent with
 * subdomains = true) is signed with every key of that domain, one
 * DKIM-Signature field each, prepended (dual signing: RSA and Ed25519,
 * or an old and a new selector during a rotation).  Other mail passes
 * unsigned and untouched.
 *
 * Public: transform_dkim_step, transform_dkim_start, transform_dkim_stop.
 *
 * The keys are loaded at queue-manager start (the slots below, one per
 * `dkim` entry); a key that cannot be used is tried again when a
 * message needs it, at most once a second.  When one of a message's keys
 * cannot be used: dkim_on_error = "defer" (default) defers the whole
 * message (TEMPFAIL; it is never sent unsigned, and is signed once the
 * key is fixed), "send-unsigned" sends it without that signature.
 * Either way a Warning says which key and why.  A message whose header
 * section cannot be split (a line that is not a field) is sent unsigned
 * with a Warning: that is no key problem, and waiting would not help.
 *
 * t= is the message's arrival (envelope), so signing it again (a crash
 * before the rewrite was committed) gives the same fields.  Log lines
 * (postern-log(7)): "MID n DKIM signed d=D s=S a=ALG" per signature,
 * "Warning: MID n DKIM not signed d=D s=S: <why>; <consequence>".
 *
 * Threats: the message is untrusted; dkim.c parses it (fuzzed).  The
 * private keys live in this process only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrlist.h"
#include "dkim.h"
#include "log.h"
#include "msg_prep.h"
#include "transform_steps.h"
#include "util.h"

#define DKIM_RETRY_GAP	1.0	/* seconds between loads of a bad key */
#define DKIM_PER_DOMAIN	16	/* keys used for one message */

/* One `dkim` entry's key, as loaded. */
struct dkim_slot {
	struct dkim_key	*key;		/* NULL: cannot be used (why) */
	char		 why[512];
	double		 tried;		/* mono_now() of the last load */
};

static struct dkim_slot	*slots;
static size_t		 nslots;
static const struct conf *sconf;	/* the one the slots belong to */
/* The runner's threads sign at once: a key is loaded again under it
 * (a usable key is only read, by any number of them). */
static pthread_mutex_t	 slots_lock = PTHREAD_MUTEX_INITIALIZER;

static void
slot_load(struct dkim_slot *s, const struct conf_dkim *d)
{
	s->tried = mono_now();
	if ((s->key = dkim_key_load(d->key, s->why, sizeof(s->why))) != NULL)
		s->why[0] = '\0';
}

/* Load every key; each one that cannot be used gets a Warning. */
size_t
transform_dkim_start(const struct conf *c)
{
	const struct conf_dkim *d;
	char desc[64];
	size_t i, bad = 0;

	transform_dkim_stop();
	sconf = c;
	nslots = c->ndkim;
	slots = xcalloc(nslots + 1, sizeof(*slots));
	for (i = 0; i < nslots; i++) {
		d = &c->dkim[i];
		slot_load(&slots[i], d);
		if (slots[i].key == NULL) {
			bad++;
			log_warnx("%s; mail from %s is %s until it is fixed",
			    slots[i].why, d->domain, c->dkim_on_error ==
			    DKIM_ON_ERROR_DEFER ? "deferred (dkim_on_error = "
			    "defer)" : "sent without this signature "
			    "(dkim_on_error = send-unsigned)");
			continue;
		}
		dkim_key_describe(slots[i].key, desc, sizeof(desc));
		log_info("DKIM key %s: d=%s s=%s %s", d->key, d->domain,
		    d->selector, desc);
		if (slots[i].key->alg == DKIM_RSA_SHA256 &&
		    slots[i].key->bits < DKIM_RSA_GOOD_BITS)
			log_warnx("DKIM key %s has only %d bits; receivers may "
			    "treat its signatures as weak (make a %d-bit key "
			    "with `postern dkim keygen` and a new selector)",
			    d->key, slots[i].key->bits, DKIM_RSA_GOOD_BITS);
	}
	return bad;
}

void
transform_dkim_stop(void)
{
	size_t i;

	for (i = 0; i < nslots; i++)
		dkim_key_free(slots[i].key);
	free(slots);
	slots = NULL;
	nslots = 0;
	sconf = NULL;
}

/* The usable key of entry i (loading it again if due); NULL: why. */
static const struct dkim_key *
slot_key(const struct conf *c, size_t i)
{
	struct dkim_slot *s;

	const struct dkim_key *k;

	if (c != sconf || i >= nslots)
		return NULL;	/* transform_dkim_start() not run for c */
	s = &slots[i];
	pthread_mutex_lock(&slots_lock);
	if (s->key == NULL && mono_now() - s->tried >= DKIM_RETRY_GAP) {
		slot_load(s, &c->dkim[i]);
		if (s->key != NULL)
			log_info("DKIM key %s: can be used again",
			    c->dkim[i].key);
	}
	k = s->key;
	pthread_mutex_unlock(&slots_lock);
	return k;
}

/* The dkim entries for the message's From: domain; 0 = unsigned. */
static size_t
entries_for(const char *data, size_t len, const struct conf *c, size_t *idx)
{
	char addr[ADDRLIST_ADDR_MAX + 1];
	const char *at;

	if (c->ndkim == 0 || msg_from_address(data, len, addr,
	    sizeof(addr)) == -1 || (at = strrchr(addr, '@')) == NULL)
		return 0;
	return conf_dkim_for(c, at + 1, idx, DKIM_PER_DOMAIN);
}

static int
transform_dkim_wants(const struct transform_msg *m, const struct conf *c)
{
	size_t idx[DKIM_PER_DOMAIN];

	return entries_for(m->data, m->len, c, idx) > 0;
}

/* What happens to a message a key did not sign. */
enum unsigned_then { THEN_DEFER, THEN_WITHOUT, THEN_UNSIGNED };

static void
log_not_signed(uint64_t mid, const struct conf_dkim *d, const char *why,
    enum unsigned_then then)
{
	static const char *const tmpl[] = {
		"MID {mid} DKIM not signed d={domain} s={selector}: {why}; "
		    "message deferred (dkim_on_error = defer)",
		"MID {mid} DKIM not signed d={domain} s={selector}: {why}; "
		    "sent without this signature (dkim_on_error = "
		    "send-unsigned)",
		"MID {mid} DKIM not signed d={domain} s={selector}: {why}; "
		    "sent unsigned"
	};
	char m[32];

	(void)bsnprintf(m, sizeof(m), "%llu", (unsigned long long)mid);
	mlog(LOG_LVL_WARNING, "dkim_failed", tmpl[then], "mid", m, "domain",
	    d->domain, "selector", d->selector, "why", why, NULL);
}

static void
log_signed(uint64_t mid, const struct conf_dkim *d,
    const struct dkim_key *k)
{
	char m[32];

	(void)bsnprintf(m, sizeof(m), "%llu", (unsigned long long)mid);
	mlog(LOG_LVL_INFO, "dkim_signed", "MID {mid} DKIM signed d={domain} "
	    "s={selector} a={alg}", "mid", m, "domain", d->domain,
	    "selector", d->selector, "alg", dkim_alg_name(k->alg), NULL);
}

/*
 * Sign with entry i: the field appended to sigs, or (the key cannot be
 * used) -1 with why.
 */
static int
sign_one(const struct transform_msg *in, const struct conf *c, size_t i,
    const struct dkim_msg *dm, struct strbuf *sigs, char *why,
    size_t whylen)
{
	const struct conf_dkim *d = &c->dkim[i];
	const struct dkim_key *k;

	if ((k = slot_key(c, i)) == NULL) {
		pthread_mutex_lock(&slots_lock);
		bstrlcpy(why, i < nslots && c == sconf ? slots[i].why :
		    "DKIM keys not loaded", whylen);
		pthread_mutex_unlock(&slots_lock);
		return -1;
	}
	if (dkim_sign(dm, k, d->domain, d->selector, in->env->received,
	    d->expire, sigs, why, whylen) == -1)
		return -1;
	log_signed(in->mid, d, k);
	return 0;
}

static enum transform_outcome
transform_dkim_apply(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *rcpts, char *why,
    size_t whylen)
{
	size_t idx[DKIM_PER_DOMAIN], n, i;
	struct strbuf sigs = STRBUF_INIT;
	struct dkim_msg *dm;
	char w[512];
	int defer = c->dkim_on_error == DKIM_ON_ERROR_DEFER;

	n = entries_for(in->data, in->len, c, idx);
	if ((dm = dkim_msg_new(in->data, in->len, w, sizeof(w))) == NULL) {
		/* not a key problem: a message we cannot sign reliably */
		for (i = 0; i < n; i++)
			log_not_signed(in->mid, &c->dkim[idx[i]], w,
			    THEN_UNSIGNED);
		strbuf_add(out, in->data, in->len);
		return TRANSFORM_OK;
	}
	for (i = 0; i < n; i++) {
		if (sign_one(in, c, idx[i], dm, &sigs, w, sizeof(w)) == 0)
			continue;
		log_not_signed(in->mid, &c->dkim[idx[i]], w, defer ?
		    THEN_DEFER : THEN_WITHOUT);
		if (defer) {
			(void)bsnprintf(why, whylen, "%s", w);
			strbuf_free(&sigs);
			dkim_msg_free(dm);
			return TRANSFORM_TEMPFAIL;
		}
	}
	strbuf_add(out, sigs.s, sigs.len);
	strbuf_add(out, in->data, in->len);
	strbuf_free(&sigs);
	dkim_msg_free(dm);
	return TRANSFORM_OK;
}

const struct transform_step transform_dkim_step = {
	"dkim", transform_dkim_wants, transform_dkim_apply
};
