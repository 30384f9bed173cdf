/*
 * smtp_tx.h - one outbound mail transaction as SMTP spells it, for the
 * connection driver (smtp_conn.c): whether the peer can take the message
 * at all (no BINARYMIME; RFC 6152: 8-bit data only to a peer offering
 * 8BITMIME; RFC 6531: SMTPUTF8 only to a peer offering it), and the
 * envelope for smtp_client_send() with the BODY=/SMTPUTF8 flags and the
 * RFC 3461 DSN parameters (RET, ENVID on MAIL; NOTIFY, ORCPT on RCPT)
 * when the peer offers DSN.
 *
 * Pure: no I/O; the envelope and the message are borrowed.
 */
#ifndef POSTERN_SMTP_TX_H
#define POSTERN_SMTP_TX_H

#include <stddef.h>

#include "envelope.h"
#include "smtp_client.h"

struct smtp_tx {
	struct smtp_client_envelope	 ev;	/* for smtp_client_send */
	const char			**rcpts;
	char				**rcpt_params;
	char				  mail_params[256];
};

/*
 * Build the transaction of recipients `rids` (n >= 1) of env, whose
 * content is data/len, to a peer with EHLO extensions `ext`
 * (SMTP_EXT_*, 0 after HELO).  0: tx is ready (free it with
 * smtp_tx_free after smtp_client_send, which copies it); -1: the peer
 * cannot take this message (a permanent failure): status (5.6.3, 5.6.7)
 * and why are set, naming `host`, and nothing is allocated.  tx borrows
 * env until freed.
 */
int	smtp_tx_build(struct smtp_tx *, const struct envelope *env,
	    const size_t *rids, size_t n, const char *data, size_t len,
	    unsigned ext, const char *host, char *status, size_t statuslen,
	    char *why, size_t whylen);
void	smtp_tx_free(struct smtp_tx *);

#endif
