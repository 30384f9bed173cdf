/*
 * delivery.c - the per-recipient result shared by the delivery drivers,
 * the scheduler and the bounce builder (see delivery.h).
 *
 * Public: delivery_result_set, delivery_result_cause.  The driver objects themselves are defined
 * with their code: delivery_local in deliver_local.c, delivery_remote in
 * dest_queue.c.
 */
#include "delivery.h"
#include "util.h"

void
delivery_result_set(struct delivery_result *r, enum delivery_outcome o,
    const char *text, const char *status, const char *remote, int smtp_diag)
{
	static const char *const dflt[] = { "2.0.0", "4.0.0", "5.0.0" };

	r->outcome = o;
	bstrlcpy(r->text, text != NULL ? text : "", sizeof(r->text));
	bstrlcpy(r->status, status != NULL ? status : dflt[o],
	    sizeof(r->status));
	bstrlcpy(r->remote, remote != NULL ? remote : "", sizeof(r->remote));
	r->smtp_diag = smtp_diag;
	delivery_result_cause(r, FC_NONE, NULL, 0);
}

/* Name the cause of a failed result. */
void
delivery_result_cause(struct delivery_result *r, enum failcause fc,
    const char *host, int port)
{
	r->cause = fc;
	bstrlcpy(r->cause_host, host != NULL ? host : "",
	    sizeof(r->cause_host));
	r->cause_port = port;
}
