/*
 * probe_report.c - the report of `postern probe` (see probe.h): steps
 * with their status, time, details and fix lines, and the three ways it
 * is printed: text (one line per step, details and `fix:` lines under
 * it), one JSON document (--json), and the matrix of --mx (one row per
 * MX host, one column per step, with timings).
 *
 * Public: probe_step_add, probe_detail, probe_problem, probe_fctx,
 * probe_print_step, probe_counts, probe_print_matrix, probe_print_json,
 * probe_report_free.
 *
 * Text from servers (replies, certificate names) reaches the details
 * already made printable by their producers; JSON strings are escaped by
 * strbuf_json_str.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "util.h"

/* Columns of the matrix, in the order steps run. */
static const char *const matrix_cols[] = {
	"resolve", "connect", "banner", "ehlo", "starttls", "tls",
	"certificate", "verify", "hostname", "ehlo-tls", "auth", "mail",
	"rcpt", "old-tls", "injection", "policy"
};

static const char *const status_word[] = { "ok", "warn", "FAIL" };
static const char *const status_json[] = { "ok", "warn", "fail" };

/* A new step at the end of the report. */
struct probe_step *
probe_step_add(struct probe_report *r, const char *name)
{
	struct probe_step *s;

	r->steps = xrealloc(r->steps, (r->nsteps + 1) * sizeof(*r->steps));
	s = &r->steps[r->nsteps++];
	memset(s, 0, sizeof(*s));
	s->name = name;
	strbuf_init(&s->details);
	return s;
}

/* One more line of details. */
void
probe_detail(struct probe_step *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(&s->details, fmt, ap);
	va_end(ap);
	strbuf_putc(&s->details, '\n');
}

/* Raise the status and add the fix of a cause. */
void
probe_problem(struct probe_step *s, enum probe_status st, enum failcause fc,
    const struct failcause_ctx *ctx)
{
	struct failcause_ctx x = *ctx;
	struct strbuf fix = STRBUF_INIT;

	if (st > s->status)
		s->status = st;
	if (fc == FC_NONE || s->nfix >= PROBE_FIX_MAX)
		return;
	x.who = FC_FOR_PROBE;
	failcause_fix(fc, &x, &fix);
	s->cause[s->nfix] = fc;
	s->fix[s->nfix++] = strbuf_detach(&fix, NULL);
}

/* The fix context of the report's server. */
void
probe_fctx(const struct probe_report *r, const struct probe_settings *s,
    struct failcause_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->host = r->host;
	x->port = r->port;
	x->implicit_tls = s->tls == PROBE_TLS_IMPLICIT;
	x->user = s->user;
	x->who = FC_FOR_PROBE;
}

/* One step as text. */
void
probe_print_step(FILE *fp, const struct probe_step *s)
{
	const char *p = s->details.s, *nl;
	size_t i;

	fprintf(fp, "%-12s %s (%.0f ms)\n", s->name, status_word[s->status],
	    s->ms);
	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		fprintf(fp, "    %.*s\n", (int)(nl != NULL ? nl - p :
		    (long)strlen(p)), p);
		p = nl != NULL ? nl + 1 : NULL;
	}
	for (i = 0; i < s->nfix; i++)
		fprintf(fp, "    fix: %s\n", s->fix[i]);
	fflush(fp);
}

/* How many steps failed and warned. */
void
probe_counts(const struct probe_report *r, size_t n, int *fails, int *warns)
{
	size_t i, k;

	*fails = *warns = 0;
	for (i = 0; i < n; i++)
		for (k = 0; k < r[i].nsteps; k++) {
			if (r[i].steps[k].status == PROBE_FAIL)
				(*fails)++;
			else if (r[i].steps[k].status == PROBE_WARN)
				(*warns)++;
		}
}

/* ---- the MX matrix --------------------------------------------------- */

/* The cell of one host and one column: "ok 12ms", "-" when not run; a
 * step that ran more than once shows its worst status. */
static void
matrix_cell(const struct probe_report *r, const char *col, char *buf,
    size_t len)
{
	enum probe_status worst = PROBE_OK;
	double ms = 0;
	size_t k;
	int seen = 0;

	for (k = 0; k < r->nsteps; k++)
		if (strcmp(r->steps[k].name, col) == 0) {
			if (r->steps[k].status > worst)
				worst = r->steps[k].status;
			ms += r->steps[k].ms;
			seen = 1;
		}
	if (!seen)
		bstrlcpy(buf, "-", len);
	else
		bsnprintf(buf, len, "%s %.0fms", status_word[worst], ms);
}

/* Is the column used by any host?  (Unused ones are left out.) */
static int
matrix_used(const struct probe_report *r, size_t n, const char *col)
{
	size_t i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < r[i].nsteps; k++)
			if (strcmp(r[i].steps[k].name, col) == 0)
				return 1;
	return 0;
}

/* Width of a column: its name or its widest cell. */
static size_t
matrix_width(const struct probe_report *r, size_t n, const char *col)
{
	char cell[64];
	size_t i, w = strlen(col);

	for (i = 0; i < n; i++) {
		matrix_cell(&r[i], col, cell, sizeof(cell));
		if (strlen(cell) > w)
			w = strlen(cell);
	}
	return w;
}

/* The hosts x steps matrix of --mx. */
void
probe_print_matrix(FILE *fp, const struct probe_report *r, size_t n)
{
	size_t i, c, ncol = sizeof(matrix_cols) / sizeof(matrix_cols[0]);
	size_t w[sizeof(matrix_cols) / sizeof(matrix_cols[0])], hw = 4;
	struct strbuf line = STRBUF_INIT;
	char cell[64];

	for (i = 0; i < n; i++)
		if (strlen(r[i].host) > hw)
			hw = strlen(r[i].host);
	for (c = 0; c < ncol; c++)
		w[c] = matrix_used(r, n, matrix_cols[c]) ?
		    matrix_width(r, n, matrix_cols[c]) : 0;
	for (i = 0; i <= n; i++) {
		strbuf_reset(&line);
		if (i == 0)
			strbuf_printf(&line, "%-5s %-*s", "pref", (int)hw,
			    "host");
		else
			strbuf_printf(&line, "%-5d %-*s", r[i - 1].pref,
			    (int)hw, r[i - 1].host);
		for (c = 0; c < ncol; c++) {
			if (w[c] == 0)
				continue;
			if (i > 0)
				matrix_cell(&r[i - 1], matrix_cols[c], cell,
				    sizeof(cell));
			strbuf_printf(&line, "  %-*s", (int)w[c], i == 0 ?
			    matrix_cols[c] : cell);
		}
		while (line.len > 0 && line.s[line.len - 1] == ' ')
			strbuf_truncate(&line, line.len - 1);
		fprintf(fp, "%s\n", line.s);
	}
	strbuf_free(&line);
	fflush(fp);
}

/* ---- JSON ------------------------------------------------------------ */

static void
json_str(struct strbuf *sb, const char *s)
{
	if (s == NULL)
		strbuf_puts(sb, "null");
	else
		strbuf_json_str(sb, s, strlen(s));
}

static void
json_step(struct strbuf *sb, const struct probe_step *s)
{
	const char *p = s->details.s, *nl;
	size_t i;
	int first = 1;

	strbuf_puts(sb, "{\"name\":");
	json_str(sb, s->name);
	strbuf_printf(sb, ",\"status\":\"%s\",\"time_ms\":%.0f,\"details\":[",
	    status_json[s->status], s->ms);
	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		if (!first)
			strbuf_putc(sb, ',');
		first = 0;
		strbuf_json_str(sb, p, nl != NULL ? (size_t)(nl - p) :
		    strlen(p));
		p = nl != NULL ? nl + 1 : NULL;
	}
	strbuf_puts(sb, "],\"cause\":");
	json_str(sb, s->nfix > 0 ? failcause_name(s->cause[0]) : NULL);
	strbuf_puts(sb, ",\"fix\":");
	json_str(sb, s->nfix > 0 ? s->fix[0] : NULL);
	strbuf_puts(sb, ",\"fixes\":[");
	for (i = 0; i < s->nfix; i++) {
		strbuf_puts(sb, i ? ",{\"cause\":" : "{\"cause\":");
		json_str(sb, failcause_name(s->cause[i]));
		strbuf_puts(sb, ",\"fix\":");
		json_str(sb, s->fix[i]);
		strbuf_putc(sb, '}');
	}
	strbuf_puts(sb, "]}");
}

static void
json_report(struct strbuf *sb, const struct probe_report *r)
{
	size_t k;
	int f, w;

	probe_counts(r, 1, &f, &w);
	strbuf_puts(sb, "{\"host\":");
	json_str(sb, r->host);
	strbuf_printf(sb, ",\"port\":%d", r->port);
	if (r->pref >= 0)
		strbuf_printf(sb, ",\"pref\":%d", r->pref);
	strbuf_puts(sb, ",\"steps\":[");
	for (k = 0; k < r->nsteps; k++) {
		if (k > 0)
			strbuf_putc(sb, ',');
		json_step(sb, &r->steps[k]);
	}
	strbuf_printf(sb, "],\"failed\":%d,\"warnings\":%d,\"result\":\"%s\"}",
	    f, w, f > 0 ? "fail" : "ok");
}

/* The reports as one JSON document. */
void
probe_print_json(FILE *fp, const char *domain, const struct probe_report *r,
    size_t n, const char *mode)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int f, w;

	probe_counts(r, n, &f, &w);
	if (domain == NULL) {
		json_report(&sb, &r[0]);
		/* the one server's document, with the mode added first */
		strbuf_truncate(&sb, sb.len - 1);
		strbuf_puts(&sb, ",\"mode\":");
		json_str(&sb, mode);
		strbuf_putc(&sb, '}');
	} else {
		strbuf_puts(&sb, "{\"domain\":");
		json_str(&sb, domain);
		strbuf_puts(&sb, ",\"mode\":");
		json_str(&sb, mode);
		strbuf_puts(&sb, ",\"hosts\":[");
		for (i = 0; i < n; i++) {
			if (i > 0)
				strbuf_putc(&sb, ',');
			json_report(&sb, &r[i]);
		}
		strbuf_printf(&sb, "],\"failed\":%d,\"warnings\":%d,"
		    "\"result\":\"%s\"}", f, w, f > 0 ? "fail" : "ok");
	}
	fprintf(fp, "%s\n", sb.s);
	fflush(fp);
	strbuf_free(&sb);
}

/* Free what a report holds. */
void
probe_report_free(struct probe_report *r)
{
	size_t k, i;

	if (r == NULL)
		return;
	for (k = 0; k < r->nsteps; k++) {
		strbuf_free(&r->steps[k].details);
		for (i = 0; i < r->steps[k].nfix; i++)
			free(r->steps[k].fix[i]);
	}
	free(r->steps);
	r->steps = NULL;
	r->nsteps = 0;
}
