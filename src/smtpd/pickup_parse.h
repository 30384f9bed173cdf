/*
 * pickup_parse.h - the envelope of a pickup file (docs/http-api.md,
 * "Pickup directory"), PowerMTA style: the file is an RFC 5322 message
 * whose first lines may be envelope fields
 *
 *   X-Sender: <alice@example.org>
 *   X-Receiver: <bob@example.com>
 *   X-Receiver: carol@example.net
 *
 * (any order, any case, angle brackets optional, one address each).
 * They are the envelope and are removed from the message; without any
 * X-Receiver the envelope comes from the header fields (From, To, Cc,
 * Bcc) as for `postern send`.  Only the leading block counts: such
 * fields further down are ordinary header fields.  Pure, bounded,
 * fuzzed (tests/fuzz/fuzz_pickup.c): the file comes from local users.
 */
#ifndef POSTERN_PICKUP_PARSE_H
#define POSTERN_PICKUP_PARSE_H

#include <stddef.h>

#define PICKUP_RCPTS_MAX	1000
#define PICKUP_ADDR_MAX		320

struct pickup_env {
	int	 has_sender;		/* an X-Sender field was there */
	char	 sender[PICKUP_ADDR_MAX + 1];	/* "" = null sender <> */
	char   (*rcpts)[PICKUP_ADDR_MAX + 1];	/* owned */
	size_t	 nrcpts;
	size_t	 body_off;		/* where the message starts */
};

/* Parse the leading envelope fields of data[0..len).  0, or -1 with why
 * (a field without an address, an address too long or with spaces, more
 * than one X-Sender, too many receivers, a folded envelope field). */
int	pickup_parse(const char *data, size_t len, struct pickup_env *,
	    char *why, size_t whylen);
void	pickup_env_free(struct pickup_env *);

#endif
