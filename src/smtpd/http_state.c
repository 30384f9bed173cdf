/*
 * http_state.c - per-recipient delivery state for GET /v1/messages/MID
 * (see http_state.h).
 *
 * Document: {"mid":40,"state":"queued"|"held"|"finished",
 * "recipients":[{"rid":0,"to":"bob@example.com","status":"pending"|
 * "delivered"|"failed","attempts":1,"next_attempt":"2026-01-01T00:00:00Z",
 * "last_reply":"..."}]}.  next_attempt only for pending recipients with
 * an attempt behind them; last_reply only when there is one.
 *
 * Threats: the MID comes from the client; only the owner's messages are
 * shown, and unknown / foreign MIDs look the same (404).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "http_state.h"
#include "spool.h"
#include "spool_done.h"
#include "util.h"

static const char *
status_word(enum rcpt_status s)
{
	return s == RCPT_DELIVERED ? "delivered" : s == RCPT_FAILED ?
	    "failed" : "pending";
}

static void
put_rcpt(struct strbuf *out, size_t i, const char *addr,
    const struct rcpt_state *st)
{
	char when[32];
	time_t t;
	struct tm tm;

	strbuf_printf(out, "%s{\"rid\":%zu,\"to\":", i ? "," : "", i);
	strbuf_json_str(out, addr, strlen(addr));
	strbuf_printf(out, ",\"status\":\"%s\",\"attempts\":%d",
	    status_word(st->status), st->attempts);
	if (st->status == RCPT_PENDING && st->attempts > 0 &&
	    st->next_attempt > 0) {
		t = (time_t)st->next_attempt;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strbuf_printf(out, ",\"next_attempt\":\"%s\"", when);
	}
	if (st->last_error[0] != '\0') {
		strbuf_puts(out, ",\"last_reply\":");
		strbuf_json_str(out, st->last_error, strlen(st->last_error));
	}
	strbuf_putc(out, '}');
}

/* Still in the spool: envelope from the file, state from state/. */
static int
from_spool(struct spool *sp, int area, uint64_t mid, const char *user,
    struct strbuf *out)
{
	struct envelope env;
	struct rcpt_state *st;
	char why[256];
	size_t i;
	int fd;

	envelope_init(&env);
	fd = spool_open_msg(sp, (enum spool_area)area, mid, 0, &env, why,
	    sizeof(why));
	if (fd == -1)
		return -1;
	close(fd);
	if (strcmp(env.auth_user, user) != 0 || env.nrcpts == 0) {
		envelope_clear(&env);
		return -1;
	}
	st = xcalloc(env.nrcpts, sizeof(*st));
	(void)spool_state_read(sp, mid, st, env.nrcpts);
	strbuf_printf(out, "{\"mid\":%llu,\"state\":\"%s\",\"recipients\":[",
	    (unsigned long long)mid, area == SPOOL_HOLD ? "held" : "queued");
	for (i = 0; i < env.nrcpts; i++)
		put_rcpt(out, i, env.rcpts[i].addr, &st[i]);
	strbuf_puts(out, "]}");
	free(st);
	envelope_clear(&env);
	return 0;
}

/* Finished: the queue manager's record. */
static int
from_done(struct spool *sp, uint64_t mid, const char *user,
    struct strbuf *out)
{
	struct spool_done d;
	size_t i;

	if (spool_done_read(sp, mid, &d) == -1)
		return -1;
	if (strcmp(d.user, user) != 0) {
		spool_done_free(&d);
		return -1;
	}
	strbuf_printf(out, "{\"mid\":%llu,\"state\":\"finished\","
	    "\"recipients\":[", (unsigned long long)mid);
	for (i = 0; i < d.nrcpts; i++)
		put_rcpt(out, i, d.addrs[i], &d.st[i]);
	strbuf_puts(out, "]}");
	spool_done_free(&d);
	return 0;
}

/* The state document of `mid` for `user` (http_state.h). */
int
http_state_json(struct spool *sp, uint64_t mid, const char *user,
    struct strbuf *out)
{
	int area = spool_find(sp, mid);

	if ((area == SPOOL_QUEUE || area == SPOOL_HOLD) &&
	    from_spool(sp, area, mid, user, out) == 0)
		return 0;
	strbuf_reset(out);
	return from_done(sp, mid, user, out);
}
