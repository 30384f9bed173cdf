/*
 * transform_smime.c - the S/MIME step of the queue manager's content
 * transformations (transform_steps.h), the gateway side of smime.c: mail
 * whose header From: address (or its domain) is listed in smime.sign is
 * signed with the sender's key from smime.keys (<address>.pem, else the
 * domain key <domain>.pem), and encrypted by smime.encrypt:
 *   never          signed only;
 *   when-possible  encrypted when every recipient has a usable
 *                  certificate (<address>.crt), else signed only;
 *   required       encrypted for the recipients with a certificate; the
 *                  others bounce (5.7.5: the key they need is missing).
 * It runs before DKIM, which then signs the S/MIME message.
 *
 * Public: transform_smime_step.
 *
 * A signing key that cannot be used defers the message (TEMPFAIL, with a
 * Warning): the policy says this mail is signed, so it is never sent
 * unsigned.  Keys and certificates are read from smime.keys for each
 * message (smime.c checks each one: validity, emailProtection, the
 * address), so a new recipient certificate needs no reload.
 *
 * Log lines (postern-log(7)): "MID n S/MIME signed by A encrypted for N
 * recipients", "MID n S/MIME signed by A not encrypted: <why>",
 * "Warning: MID n S/MIME failed: <why>; message deferred".
 *
 * Limits: one encrypted copy for all recipients (one RecipientInfo each:
 * every recipient can see which certificates it was encrypted for).
 * Threats: the message is untrusted; smime.c only splits it at its
 * header end.  The signing keys live in this process only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "addrlist.h"
#include "log.h"
#include "msg_prep.h"
#include "smime.h"
#include "transform_steps.h"
#include "util.h"

/* Who each recipient is and what the step decided. */
struct enc_plan {
	STACK_OF(X509)	*certs;		/* of the recipients that have one */
	size_t		 missing;	/* recipients without one */
	char		 why[512];	/* the first one's reason */
};

static int
transform_smime_wants(const struct transform_msg *m, const struct conf *c)
{
	char addr[ADDRLIST_ADDR_MAX + 1];

	return c->smime_keys != NULL && c->nsmime_sign > 0 &&
	    msg_from_address(m->data, m->len, addr, sizeof(addr)) == 0 &&
	    conf_smime_signs(c, addr);
}

/* Look up every recipient's certificate; mark the missing ones PERMFAIL
 * when encryption is required. */
static void
plan_encryption(const struct transform_msg *in, const struct conf *c,
    struct transform_rcpt *rcpts, struct enc_plan *p)
{
	char w[512];
	size_t i;
	X509 *x;

	p->certs = sk_X509_new_null();
	for (i = 0; i < in->env->nrcpts; i++) {
		x = smime_recipient_load(c->smime_keys, in->env->rcpts[i].addr,
		    (time_t)wall_now(), w, sizeof(w));
		if (x != NULL && sk_X509_push(p->certs, x) > 0)
			continue;
		X509_free(x);
		if (p->missing++ == 0)
			bstrlcpy(p->why, w, sizeof(p->why));
		if (c->smime_encrypt_mode != SMIME_ENCRYPT_REQUIRED)
			continue;
		rcpts[i].outcome = TRANSFORM_PERMFAIL;
		bstrlcpy(rcpts[i].status, "5.7.5", sizeof(rcpts[i].status));
		(void)bsnprintf(rcpts[i].why, sizeof(rcpts[i].why), "no usable "
		    "S/MIME certificate and smime.encrypt is required: %s", w);
	}
}

static void
log_result(uint64_t mid, const char *signer, const struct enc_plan *p,
    int encrypted, enum smime_encrypt mode)
{
	char m[32], n[32];

	(void)bsnprintf(m, sizeof(m), "%llu", (unsigned long long)mid);
	(void)bsnprintf(n, sizeof(n), "%d", encrypted ? sk_X509_num(p->certs) :
	    0);
	if (encrypted)
		mlog(LOG_LVL_INFO, "smime", "MID {mid} S/MIME signed by "
		    "{signer} encrypted for {count} recipients", "mid", m,
		    "signer", signer, "count", n, NULL);
	else
		mlog(LOG_LVL_INFO, "smime", "MID {mid} S/MIME signed by "
		    "{signer} not encrypted: {why}", "mid", m, "signer", signer,
		    "why", mode == SMIME_ENCRYPT_NEVER ?
		    "smime.encrypt is never" : p->why, NULL);
}

static enum transform_outcome
transform_smime_apply(const struct transform_msg *in, const struct conf *c,
    struct strbuf *out, struct transform_rcpt *rcpts, char *why,
    size_t whylen)
{
	char addr[ADDRLIST_ADDR_MAX + 1], m[32];
	struct enc_plan p = { NULL, 0, "" };
	struct smime_request rq;
	int enc = 0;

	if (msg_from_address(in->data, in->len, addr, sizeof(addr)) == -1) {
		bstrlcpy(why, "S/MIME: the From: field is gone", whylen);
		return TRANSFORM_TEMPFAIL;	/* wants() saw it: cannot be */
	}
	memset(&rq, 0, sizeof(rq));
	rq.ops = SMIME_SIGN | SMIME_DOMAIN_KEY;
	rq.keys_dir = c->smime_keys;
	rq.signer = addr;
	rq.now = (time_t)wall_now();
	if (c->smime_encrypt_mode != SMIME_ENCRYPT_NEVER) {
		plan_encryption(in, c, rcpts, &p);
		enc = sk_X509_num(p.certs) > 0 && (p.missing == 0 ||
		    c->smime_encrypt_mode == SMIME_ENCRYPT_REQUIRED);
	}
	if (c->smime_encrypt_mode == SMIME_ENCRYPT_REQUIRED && !enc) {
		(void)bsnprintf(why, whylen, "S/MIME encryption is required "
		    "and no recipient has a usable certificate: %s", p.why);
		sk_X509_pop_free(p.certs, X509_free);
		return TRANSFORM_PERMFAIL;
	}
	if (enc) {
		rq.ops |= SMIME_ENCRYPT;
		rq.rcpt_certs = p.certs;
	}
	if (smime_apply(&rq, in->data, in->len, out, why, whylen) == -1) {
		(void)bsnprintf(m, sizeof(m), "%llu",
		    (unsigned long long)in->mid);
		mlog(LOG_LVL_WARNING, "smime_failed", "MID {mid} S/MIME "
		    "failed: {why}; message deferred", "mid", m, "why", why,
		    NULL);
		sk_X509_pop_free(p.certs, X509_free);
		return TRANSFORM_TEMPFAIL;
	}
	log_result(in->mid, addr, &p, enc, c->smime_encrypt_mode);
	sk_X509_pop_free(p.certs, X509_free);
	return TRANSFORM_OK;
}

const struct transform_step transform_smime_step = {
	"smime", transform_smime_wants, transform_smime_apply
};
