/*
 * spool_done.h - the last word on finished messages that a credential
 * sent: spool/done/<MID> keeps, after the spool file and its state are
 * gone, who sent the message and what became of each recipient, so the
 * HTTPS API's GET /v1/messages/MID (http_state.c) can still answer
 * "delivered" or "bounced" (docs/http-api.md).
 *
 * Written by the queue manager when a message with an AUTH user is
 * finished (qmgr.c job_complete), read by SMTP workers.  Not flushed to
 * disk: it is information, not mail (a crash may lose the last records;
 * GET then answers 404).  Records older than SPOOL_DONE_KEEP seconds are
 * removed by spool_done_expire() (the queue manager's rescan).
 *
 * Format (text, one record per file, written to a temporary name and
 * renamed): "postern-done 1", "user NAME", "finished SECONDS", then per
 * recipient "rcpt<TAB>STATUS<TAB>ATTEMPTS<TAB>ADDRESS<TAB>LAST-REPLY".
 * The reader treats it as untrusted: bounded, every field checked.
 */
#ifndef POSTERN_SPOOL_DONE_H
#define POSTERN_SPOOL_DONE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "spool.h"

#define SPOOL_DONE_KEEP		(7 * 86400)	/* seconds a record is kept */
#define SPOOL_DONE_MAX		(4 * 1024 * 1024)	/* octets read */

struct spool_done {
	char		  user[256];
	int64_t		  finished;
	size_t		  nrcpts;
	char		(*addrs)[SMTP_ADDR_MAX + 1];	/* owned */
	struct rcpt_state *st;				/* owned */
};

/* Record env's recipients and their final state.  0 or -1 (errno). */
int	spool_done_write(const struct spool *, const struct envelope *env,
	    const struct rcpt_state *st, int64_t now);
/* Read the record of mid: 0, or -1 (errno ENOENT: no record). */
int	spool_done_read(const struct spool *, uint64_t mid,
	    struct spool_done *out);
/* Parse a record's text (spool_done_read's decoder).  0 or -1. */
int	spool_done_decode(const char *buf, size_t len, struct spool_done *out);
void	spool_done_free(struct spool_done *);
/* Remove records finished before `before` (wall-clock seconds). */
void	spool_done_expire(const struct spool *, int64_t before);

#endif
