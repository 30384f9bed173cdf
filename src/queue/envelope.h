/*
 * envelope.h - the SMTP envelope of one spooled message, and its versioned
 * text encoding.  The encoding is the trailer of every spool file (see
 * docs/spool.md); decoding treats the bytes as untrusted (fuzzed): every
 * field is bounds-checked and the record must be used up exactly.
 */
#ifndef POSTERN_ENVELOPE_H
#define POSTERN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include "smtp_proto.h"
#include "strbuf.h"

#define ENVELOPE_VERSION	1
#define ENVELOPE_MAX_RCPTS	10000

struct env_rcpt {
	char	addr[SMTP_ADDR_MAX + 1];
	int	notify;				/* SMTP_NOTIFY_* flags */
	char	orcpt[SMTP_PATH_MAX + 16];
};

struct envelope {
	uint64_t	mid;
	uint64_t	icid;
	int64_t		received;		/* wall clock, seconds */
	char		client_ip[64];
	char		helo[256];
	char		auth_user[256];		/* "" = not authenticated */
	char		from[SMTP_ADDR_MAX + 1];	/* "" = null sender <> */
	enum smtp_body	body;
	int		smtputf8;
	enum smtp_ret	ret;
	char		envid[101];
	uint64_t	msg_size;		/* octets of message content */
	/* The content was rewritten by the queue manager's transformations
	 * (transform.h), once: never transform it again.  Encoded only
	 * when set ("transformed 1"), so files without it stay as before. */
	int		transformed;
	struct env_rcpt *rcpts;			/* owned */
	size_t		nrcpts;
};

void	envelope_init(struct envelope *);
void	envelope_clear(struct envelope *);	/* frees rcpts, re-inits */
/* Append a recipient (copies). */
void	envelope_add_rcpt(struct envelope *, const char *addr, int notify,
	    const char *orcpt);
/* Encode as text lines ending in "\n", starting with the version line. */
void	envelope_encode(const struct envelope *, struct strbuf *);
/* Decode exactly `len` bytes.  0 ok; -1 with a reason in why. */
int	envelope_decode(const char *buf, size_t len, struct envelope *,
	    char *why, size_t whylen);

/*
 * Fill `env` for a message Postern writes itself (bounce.c, alert.c)
 * before spool_inject(): `mid` from ids_next(ID_MID); envelope sender `from`
 * ("" for a bounce, which must never itself be bounced; conf->alert_from
 * or "" for an alert); one recipient per address with NOTIFY=NEVER;
 * received = now, client "local", HELO = `hostname`; BODY=8BITMIME when
 * `data` holds an octet > 127; SMTPUTF8 when an address or the top-level
 * header section is non-ASCII.  msg_size is set to len.  `env` may be
 * uninitialised: it is envelope_init()ed first, so a used one must be
 * envelope_clear()ed before (or it leaks); the caller clears it after.
 */
void	envelope_generated(struct envelope *env, const char *hostname,
	    uint64_t mid, const char *from, const char *const *rcpts,
	    size_t nrcpts, const char *data, size_t len, int64_t now);

#endif
