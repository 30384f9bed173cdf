/*
 * metrics.c - the shared counters of metrics.h.
 *
 * Public: metrics_init, metrics_set_slot, metrics_enabled, the counting
 * functions (metrics_connection ... metrics_observe_delivery),
 * metrics_snapshot, the label readers and the pure helpers
 * metrics_code_index, metrics_protocol_index, metrics_tls_reason_index,
 * metrics_bucket.
 *
 * Layout: one anonymous MAP_SHARED region made by the master before
 * fork: two label tables (TLS ciphers, destinations) and one slab of
 * counters per counting process, each slab aligned to a cache line.  A
 * slab is written by its own process only, except for the moment of a
 * reload when an old and a new generation of the same worker both run:
 * so every addition is atomic (relaxed order: counts need no ordering).
 *
 * Label tables are filled without a lock: a slot goes EMPTY -> BUSY (one
 * compare-and-swap wins it) -> READY once its name is written.  A reader
 * meeting a BUSY slot waits a moment for it; one still BUSY then (its
 * writer died mid-copy) is passed over, so the same name may end up in
 * two slots; the formatter adds such slots up under one name, so no
 * series is ever written twice.
 *
 * Limits: METRICS_MAX_LISTENERS listeners (the last counts the rest),
 * METRICS_MAX_CIPHERS ciphers and METRICS_MAX_DESTINATIONS destinations
 * (then "other"); label names are cut at METRICS_LABEL_MAX - 1 octets.
 * Threats: destination names come from envelopes (untrusted): they are
 * only ever compared and copied bounded, and escaped by the formatter.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "metrics.h"
#include "util.h"

#define LABEL_EMPTY	0
#define LABEL_BUSY	1
#define LABEL_READY	2
#define LABEL_SPINS	100000	/* reads of a BUSY slot before passing */

/* A slab is a struct metrics_counts (what readers add up), written with
 * the compiler's atomic builtins: one layout for both sides. */
struct slab {
	struct metrics_counts	c;
} __attribute__((aligned(64)));

struct labels {
	_Atomic uint32_t	state[METRICS_MAX_DESTINATIONS];
	char			name[METRICS_MAX_DESTINATIONS]
				    [METRICS_LABEL_MAX];
};

struct shared {
	struct labels	ciphers;	/* METRICS_MAX_CIPHERS used */
	struct labels	dests;
	int		nslabs;
	struct slab	slabs[];
};

const char *const metrics_conn_names[METRICS_NCONN] = {
	"accepted", "tcprefuse", "max_connections",
	"max_connections_per_client", "proxy_refused", "proxy_failed"
};
const char *const metrics_stage_names[METRICS_NSTAGES] = {
	"mail", "rcpt", "data"
};
/* Every enhanced status code the SMTP engine replies with at MAIL, RCPT
 * and the message (postern-log(7)); the last slot is "other". */
const char *const metrics_code_names[METRICS_NCODES] = {
	"4.3.0", "4.3.1", "4.3.2", "4.4.2", "4.5.3", "4.7.0", "5.1.1",
	"5.1.3", "5.1.7", "5.3.4", "5.5.1", "5.5.2", "5.5.4", "5.6.0",
	"5.6.7", "5.7.0", "5.7.1", "5.7.8", "5.7.11", METRICS_OTHER
};
const char *const metrics_auth_fail_names[METRICS_NAUTH_FAIL] = {
	"invalid_credentials", "malformed", "aborted", "blocked", "temporary",
	"encryption_required", "unsupported_mechanism", "bad_sequence"
};
const char *const metrics_mech_names[METRICS_NMECH] = { "PLAIN", "LOGIN" };
const char *const metrics_dir_names[METRICS_NDIR] = {
	"inbound", "outbound"
};
const char *const metrics_protocol_names[METRICS_NPROTOCOLS] = {
	"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", METRICS_OTHER
};
const char *const metrics_delivery_names[METRICS_NDELIVERY] = {
	"delivered", "deferred", "bounced"
};
const double metrics_commit_le[METRICS_COMMIT_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
const double metrics_delivery_le[METRICS_DELIVERY_BUCKETS] = {
	1, 5, 15, 60, 300, 900, 3600, 14400, 86400, 432000
};

/*
 * TLS failure reasons: the first table entry whose text occurs in the
 * reason the log line gives (tls_ctx.c, smtp_conn.c, smtp_client.c) names
 * it; nothing matches: "other".  Order matters: a failure after the
 * server's 220 to STARTTLS, the STARTTLS and certificate cases come
 * before the handshake causes they may quote.
 */
static const struct {
	const char	*needle;
	size_t		 index;
} tls_reason_match[] = {
	{ "after its 220", 8 },
	{ "STARTTLS not offered", 0 },
	{ "STARTTLS refused", 1 },
	{ "not verified", 2 },
	{ "certificate verify failed", 2 },
	{ "no shared cipher", 3 },
	{ "unsupported protocol", 4 },
	{ "not a TLS handshake", 5 },
	{ "timeout", 6 },
	{ "not done", 6 },
	{ "timed out", 6 },
	{ "closed", 7 },
	{ "reset by peer", 7 },
	{ "out of resources", 9 },
};
const char *const metrics_tls_reason_names[METRICS_NTLS_FAIL] = {
	"starttls_not_offered", "starttls_refused", "certificate_not_verified",
	"no_shared_cipher", "unsupported_protocol", "not_tls", "timeout",
	"closed", "after_starttls", "resources", METRICS_OTHER
};

_Static_assert(sizeof(struct metrics_counts) % sizeof(uint64_t) == 0,
    "a slab is read as an array of counters");

static struct shared	*shm;
static struct slab	*mine;		/* NULL: not counting */
static const struct conf_listener *m_listeners;
static size_t		 m_nlisteners;

/* Master, before fork: the shared counters for the queue manager and workers. */
int
metrics_init(int nworkers)
{
	size_t size;
	void *p;

	size = sizeof(struct shared) + (size_t)(nworkers + 1) *
	    sizeof(struct slab);
	/* Anonymous shared memory is zero-filled: every counter starts at
	 * 0, every label slot EMPTY. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return -1;
	shm = p;
	shm->nslabs = nworkers + 1;
	return 0;
}

/* In a child: count into this slab from now on. */
void
metrics_set_slot(int slot, const struct conf *conf)
{
	if (shm == NULL || slot < 0 || slot >= shm->nslabs)
		return;
	mine = &shm->slabs[slot];
	m_listeners = conf->listeners;
	m_nlisteners = conf->nlisteners;
}

/* Is this process counting? */
int
metrics_enabled(void)
{
	return mine != NULL;
}

/* Relaxed: counts need no ordering, only no lost addition. */
static void
add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------- labels */

/* Index of `name` in a table of n slots, taken now when absent and a slot
 * is free; n when the table is full. */
static size_t
label_intern(struct labels *t, size_t n, const char *name)
{
	uint32_t st, want;
	size_t i;
	long spins;

	for (i = 0; i < n; i++) {
		st = atomic_load_explicit(&t->state[i], memory_order_acquire);
		for (spins = 0; st == LABEL_BUSY && spins < LABEL_SPINS;
		    spins++)
			st = atomic_load_explicit(&t->state[i],
			    memory_order_acquire);
		if (st == LABEL_READY) {
			if (strncmp(t->name[i], name, METRICS_LABEL_MAX - 1)
			    == 0)
				return i;
			continue;
		}
		if (st != LABEL_EMPTY)
			continue;	/* a writer died in it */
		want = LABEL_EMPTY;
		if (!atomic_compare_exchange_strong(&t->state[i], &want,
		    LABEL_BUSY)) {
			i--;	/* someone took it: look at it again */
			continue;
		}
		bstrlcpy(t->name[i], name, METRICS_LABEL_MAX);
		atomic_store_explicit(&t->state[i], LABEL_READY,
		    memory_order_release);
		return i;
	}
	return n;
}

static const char *
label_name(const struct labels *t, size_t n, size_t i)
{
	if (shm == NULL || i >= n || atomic_load_explicit(&t->state[i],
	    memory_order_acquire) != LABEL_READY)
		return "";
	return t->name[i];
}

/* Name of cipher label i ("" when unused). */
const char *
metrics_cipher_name(size_t i)
{
	return shm ? label_name(&shm->ciphers, METRICS_MAX_CIPHERS, i) : "";
}

/* Name of destination label i ("" when unused). */
const char *
metrics_destination_name(size_t i)
{
	return shm ? label_name(&shm->dests, METRICS_MAX_DESTINATIONS, i) : "";
}

/* A destination's label index (taken now if there is room), or the cap. */
size_t
metrics_destination_label(const char *destination)
{
	if (shm == NULL)
		return METRICS_MAX_DESTINATIONS;
	return label_intern(&shm->dests, METRICS_MAX_DESTINATIONS,
	    destination);
}

/* ------------------------------------------------------- pure helpers */

/* The reply's enhanced status code as an index of metrics_code_names. */
size_t
metrics_code_index(const char *reply)
{
	const char *p = reply;
	size_t i, len;

	/* "NNN X.Y.Z ..." or "NNN-X.Y.Z ..." (RFC 3463) */
	if (strlen(p) < 5 || (p[3] != ' ' && p[3] != '-'))
		return METRICS_NCODES - 1;
	p += 4;
	len = strcspn(p, " ");
	for (i = 0; i < METRICS_NCODES - 1; i++)
		if (strlen(metrics_code_names[i]) == len &&
		    strncmp(metrics_code_names[i], p, len) == 0)
			return i;
	return METRICS_NCODES - 1;
}

/* A TLS protocol name as an index of metrics_protocol_names. */
size_t
metrics_protocol_index(const char *protocol)
{
	size_t i;

	for (i = 0; protocol != NULL && i < METRICS_NPROTOCOLS - 1; i++)
		if (strcmp(metrics_protocol_names[i], protocol) == 0)
			return i;
	return METRICS_NPROTOCOLS - 1;
}

/* A TLS failure text as an index of metrics_tls_reason_names. */
size_t
metrics_tls_reason_index(const char *reason)
{
	size_t i;

	for (i = 0; reason != NULL && i < sizeof(tls_reason_match) /
	    sizeof(tls_reason_match[0]); i++)
		if (strcasestr(reason, tls_reason_match[i].needle) != NULL)
			return tls_reason_match[i].index;
	return METRICS_NTLS_FAIL - 1;
}

/* The histogram bucket of v among n upper bounds (n: +Inf). */
size_t
metrics_bucket(const double *le, size_t n, double v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v <= le[i])
			return i;
	return n;
}

/* ----------------------------------------------------------- counting */

/* Count a connection's outcome for its listener. */
void
metrics_connection(const struct conf_listener *l, enum metrics_conn what)
{
	size_t i;

	if (mine == NULL)
		return;
	/* The index in this process's configuration; a pointer from
	 * elsewhere (cannot happen) counts as the last listener. */
	i = (uintptr_t)l >= (uintptr_t)m_listeners ?
	    ((uintptr_t)l - (uintptr_t)m_listeners) / sizeof(*l) : SIZE_MAX;
	if (i >= m_nlisteners || i >= METRICS_MAX_LISTENERS)
		i = METRICS_MAX_LISTENERS - 1;
	add(&mine->c.conn[i][what], 1);
}

/* Count a message accepted (its 250). */
void
metrics_message_accepted(void)
{
	if (mine != NULL)
		add(&mine->c.accepted, 1);
}

/* Count a 4xx/5xx reply at a stage, by its status code. */
void
metrics_message_rejected(enum metrics_stage stage, const char *reply)
{
	if (mine != NULL)
		add(&mine->c.rejected[stage][metrics_code_index(reply)], 1);
}

/* Count an AUTH success by mechanism. */
void
metrics_auth_success(const char *mechanism)
{
	if (mine != NULL)
		add(&mine->c.auth_ok[strcmp(mechanism, "LOGIN") == 0 ?
		    METRICS_MECH_LOGIN : METRICS_MECH_PLAIN], 1);
}

/* Count an AUTH failure by reason. */
void
metrics_auth_failure(enum metrics_auth_fail why)
{
	if (mine != NULL)
		add(&mine->c.auth_fail[why], 1);
}

/* Count an established TLS session. */
void
metrics_tls_session(enum metrics_dir dir, const char *protocol,
    const char *cipher)
{
	size_t c;

	if (mine == NULL)
		return;
	c = label_intern(&shm->ciphers, METRICS_MAX_CIPHERS,
	    cipher != NULL ? cipher : METRICS_OTHER);
	add(&mine->c.tls_ok[dir][metrics_protocol_index(protocol)][c], 1);
}

/* Count a TLS failure, its reason classified. */
void
metrics_tls_failure(enum metrics_dir dir, const char *reason)
{
	if (mine != NULL)
		add(&mine->c.tls_fail[dir][metrics_tls_reason_index(reason)], 1);
}

/* Count one recipient's delivery outcome for its destination. */
void
metrics_delivery(const char *destination, enum metrics_delivery what)
{
	if (mine != NULL)
		add(&mine->c.deliveries[metrics_destination_label(destination)]
		    [what], 1);
}

static void
observe(struct metrics_hist_view *h, const double *le, size_t n, double v)
{
	if (v < 0)
		v = 0;
	add(&h->bucket[metrics_bucket(le, n, v)], 1);
	add(&h->count, 1);
	add(&h->sum_us, (uint64_t)(v * 1e6 + 0.5));
}

/* Observe a spool commit time (seconds). */
void
metrics_observe_commit(double seconds)
{
	if (mine != NULL)
		observe(&mine->c.commit, metrics_commit_le,
		    METRICS_COMMIT_BUCKETS, seconds);
}

/* Observe a delivery latency (seconds). */
void
metrics_observe_delivery(double seconds)
{
	if (mine != NULL)
		observe(&mine->c.delivery, metrics_delivery_le,
		    METRICS_DELIVERY_BUCKETS, seconds);
}

/* ------------------------------------------------------------ reading */

/* Add every slab up into *out. */
int
metrics_snapshot(struct metrics_counts *out)
{
	uint64_t *dst = (uint64_t *)(void *)out;
	const uint64_t *src;
	size_t i, n = sizeof(*out) / sizeof(uint64_t);
	int k;

	memset(out, 0, sizeof(*out));
	if (shm == NULL)
		return -1;
	for (k = 0; k < shm->nslabs; k++) {
		src = (const uint64_t *)(const void *)&shm->slabs[k].c;
		for (i = 0; i < n; i++)
			dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	}
	return 0;
}
