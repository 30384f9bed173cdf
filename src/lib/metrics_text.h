/*
 * metrics_text.h - the Prometheus text exposition format (version 0.0.4)
 * of Postern's metrics: counters, gauges and histograms with their HELP
 * and TYPE lines, label values escaped, no series twice.  Pure: it
 * formats what the caller gathered (struct metrics_view) into a strbuf.
 *
 * Callers: metrics_http.c; tests/unit/test_metrics.c.  The metric names
 * are listed in postern.conf(5), "metrics".
 */
#ifndef POSTERN_METRICS_TEXT_H
#define POSTERN_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "strbuf.h"

/* Queue gauges of one destination label (index as in view->dest, or
 * METRICS_MAX_DESTINATIONS for "other"). */
struct metrics_queue_row {
	uint64_t	active, deferred, held;
	int64_t		oldest_age;	/* s, active + deferred */
};

/* A certificate's expiry. */
struct metrics_cert_row {
	const char	*source;	/* "listener" or "store" */
	const char	*listener;	/* listener name, "" for the store */
	const char	*certificate;	/* store ID or certificate file */
	int64_t		 not_after;	/* Unix time */
};

struct metrics_view {
	const struct metrics_counts	*c;
	const char	*version;
	int64_t		 start_time;	/* Unix time of the master */
	int		 paused;		/* delivery paused */
	const char	*const *listeners;	/* names, by index */
	size_t		 nlisteners;
	const char	*cipher[METRICS_MAX_CIPHERS];	/* "" = unused */
	const char	*dest[METRICS_MAX_DESTINATIONS];	/* "": unused */
	/* by destination label; NULL = no queue figures */
	const struct metrics_queue_row *queue;
	const struct metrics_cert_row *certs;
	size_t		 ncerts;
};

/* Append the whole exposition. */
void	metrics_text_format(struct strbuf *, const struct metrics_view *);
/* Append a label value escaped as the format wants (\\, \", \n). */
void	metrics_text_label_value(struct strbuf *, const char *);

#endif
