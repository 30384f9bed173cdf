/*
 * transform_steps.h - the content transformation steps transform_steps()
 * (transform.h) can enable, in the order they run: S/MIME
 * (transform_smime.c; it changes the body) then DKIM (transform_dkim.c;
 * it signs the final bytes).  Only transform.c and the unit tests use
 * this header.
 *
 * Keys: the DKIM keys are loaded once, at queue-manager start
 * (transform_start() -> transform_dkim_start(); a reload starts a new
 * queue manager), and a key that could not be loaded is tried again
 * when a message needs it, at most once a second, so fixing the file
 * and `postern queue retry` is enough.  The S/MIME keys and certificates
 * are read from smime.keys when a message needs them (a new recipient
 * certificate needs no reload).  Only the queue manager runs this code:
 * the SMTP workers never hold these keys (docs/architecture.md
 * "Signing").
 */
#ifndef POSTERN_TRANSFORM_STEPS_H
#define POSTERN_TRANSFORM_STEPS_H

#include "conf.h"
#include "transform.h"

extern const struct transform_step transform_smime_step;
extern const struct transform_step transform_dkim_step;

/* Load every DKIM key of `conf` (borrowed until transform_dkim_stop),
 * logging each one that cannot be used.  Returns how many failed. */
size_t	transform_dkim_start(const struct conf *);
void	transform_dkim_stop(void);

#endif
