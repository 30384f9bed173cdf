/*
 * dns.h - asynchronous DNS with libunbound, joined to a libevent loop
 * (ub_fd watched by an event, ub_process on readiness).  One resolver per
 * process, created after fork.  /etc/hosts and resolver.local_data are
 * served first; loopback and private reverse zones are answered locally by
 * libunbound's default local zones.
 *
 * Three lookups: the reverse lookup of a client address with forward
 * confirmation (the "reverse dns host H verified yes|no" of the New SMTP
 * log line; listener.c), the hosts and addresses of an outbound next
 * hop (RFC 5321 5.1 MX resolution, RFC 7505 null MX; outbound delivery),
 * and the TXT records of a name (DKIM key records, `postern dkim check`).
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <sys/socket.h>
#include "conf.h"

struct event_base;

/* The answer: host is "unknown" when there is no usable PTR; borrowed for
 * the call only. */
typedef void (*dns_rdns_cb)(void *arg, const char *host, int verified);

/* Set up this process's resolver.  0 or -1 (then lookups report unknown). */
int	dns_init(struct event_base *, const struct conf *, char *why,
	    size_t whylen);
/*
 * Start a reverse lookup with forward confirmation, bounded by `timeout`
 * seconds.  The callback always runs exactly once, never from inside this
 * call.  Returns a request id for dns_cancel().
 */
unsigned long dns_rdns(const struct sockaddr *, double timeout,
	    dns_rdns_cb, void *arg);

#define DNS_MAX_HOSTS	16	/* hosts kept per next hop (lowest MX first) */
#define DNS_MAX_ADDRS	8	/* addresses kept per host */

struct dns_addr {
	struct sockaddr_storage	ss;	/* AF_INET or AF_INET6, port set */
	socklen_t		len;
};

struct dns_host {
	char		 name[256];	/* host name (no trailing dot) or IP
					 * address text */
	int		 pref;		/* MX preference; 0 for implicit MX
					 * and direct hosts */
	struct dns_addr	 addrs[DNS_MAX_ADDRS];	/* IPv6 first, then IPv4 */
	size_t		 naddrs;	/* >= 1 in a DNS_OK answer */
};

enum dns_status {
	DNS_OK,		/* hosts[0..nhosts) with nhosts >= 1 */
	DNS_TEMPFAIL,	/* try again later (timeout, SERVFAIL, no address) */
	DNS_PERMFAIL,	/* the domain or host does not exist (NXDOMAIN) */
	DNS_NULLMX	/* RFC 7505 null MX: the domain accepts no mail */
};

struct dns_hosts {
	enum dns_status	 status;
	char		 why[256];	/* not DNS_OK: admin-readable reason */
	struct dns_host	*hosts;		/* in the order to try; NULL unless
					 * DNS_OK */
	size_t		 nhosts;
};

/* The answer, borrowed for the call only. */
typedef void (*dns_hosts_cb)(void *arg, const struct dns_hosts *);

/*
 * Resolve a next hop into the hosts to try and their addresses, all
 * bounded by one deadline of `timeout` seconds.  The callback always runs
 * exactly once, never from inside this call.  Returns a request id for
 * dns_cancel().
 *
 * mx = 1 (RFC 5321 5.1): MX records of `name`, sorted by preference, in
 * random order within one preference, duplicates and "." targets dropped,
 * at most DNS_MAX_HOSTS.  No MX records: the implicit MX, `name` itself
 * with preference 0.  MX records whose targets are all "." (RFC 7505):
 * DNS_NULLMX.  NXDOMAIN: DNS_PERMFAIL.  SERVFAIL, other errors or the
 * deadline while the MX query is pending: DNS_TEMPFAIL.
 * mx = 0: `name` itself (also when it is an IPv4 or IPv6 address, which
 * is answered without a query; so is an address given with mx = 1).
 *
 * Then A and AAAA of every host, in parallel.  Hosts without an address
 * are dropped; addresses are IPv6 first, then IPv4, at most
 * DNS_MAX_ADDRS per host, each family keeping at least half of them when
 * both have more.  No host with an address: DNS_PERMFAIL when every A and
 * AAAA query answered NXDOMAIN, else DNS_TEMPFAIL (timeouts, SERVFAIL,
 * hosts with no A or AAAA record).  At the deadline, the hosts that
 * already have an address are the answer (DNS_OK), if there are any.
 * `port` (1..65535) is set in every address.
 */
unsigned long dns_hosts(const char *name, int mx, int port, double timeout,
	    dns_hosts_cb, void *arg);

/*
 * The MX hosts of `domain` as dns_hosts() with mx = 1 orders them (the
 * implicit MX when it has none; NXDOMAIN, null MX and failures the same),
 * but without their addresses: naddrs is 0 in every host of a DNS_OK
 * answer.  For `postern probe --mx`, which resolves and reports each host
 * on its own.  An address given as the domain comes back with it.
 */
unsigned long dns_mx(const char *domain, double timeout, dns_hosts_cb cb,
	    void *arg);

#define DNS_MAX_TXT	8	/* TXT records kept per answer */
#define DNS_TXT_MAX	4096	/* octets kept of one record */

struct dns_txt {
	enum dns_status	 status;	/* DNS_OK: ntxt >= 1; DNS_PERMFAIL: the
					 * name does not exist or has no TXT
					 * record (why says which);
					 * DNS_TEMPFAIL: timeout, SERVFAIL, ... */
	int		 nxdomain;	/* DNS_PERMFAIL: no such name at all */
	char		 why[256];
	char		*txt[DNS_MAX_TXT];	/* each record's strings joined,
						 * NUL-terminated */
	size_t		 len[DNS_MAX_TXT];
	size_t		 ntxt;
};

/* The answer, borrowed for the call only. */
typedef void (*dns_txt_cb)(void *arg, const struct dns_txt *);

/*
 * The TXT records of `name` (RFC 1035 3.3.14), each record's character
 * strings joined (RFC 6376 3.6.2.2), at most DNS_MAX_TXT records; of
 * each at most DNS_TXT_MAX - 1 octets are kept (len is the full length,
 * so len >= DNS_TXT_MAX says it was cut).  Bounded by `timeout` seconds.
 * Records whose rdata is malformed are skipped.  The callback
 * always runs exactly once, never from inside this call.  Returns a
 * request id for dns_cancel().
 */
unsigned long dns_txt(const char *name, double timeout, dns_txt_cb,
	    void *arg);

/* Cancel a dns_rdns(), dns_hosts(), dns_mx() or dns_txt() request: its
 * callback will not run,
 * its queries are cancelled.  Unknown or finished ids are ignored. */
void	dns_cancel(unsigned long id);
/* Cancel every request (callbacks do not run) and free the resolver; for
 * orderly exits and tests.  dns_init() may be called again afterwards. */
void	dns_shutdown(void);

/*
 * For tests and fuzzing: the parsers of answer data (untrusted), pure
 * functions.  Both return 0 or -1; out/name are NUL-terminated on 0 only.
 *
 * dns_wire_name: a wire-format name (RFC 1035 3.1) in p[0..len), ending at
 * its root label or at len, into text without the final dot; -1 for a
 * compression pointer, a label running past len, a label character <= 0x20,
 * >= 0x7f or '.', the root name alone, or no room in out[0..outlen).
 *
 * dns_parse_mx_rdata: MX rdata (RFC 1035 3.3.9), *pref the preference
 * (0..65535) and name the target as with dns_wire_name, or "" when the
 * target is the root (RFC 7505 null MX); -1 when shorter than 3 bytes or
 * the target is not a name dns_wire_name accepts.
 */
int	dns_wire_name(const unsigned char *p, size_t len, char *out,
	    size_t outlen);
int	dns_parse_mx_rdata(const unsigned char *d, size_t len, int *pref,
	    char *name, size_t namelen);
/*
 * dns_parse_txt_rdata: TXT rdata (RFC 1035 3.3.14), one or more
 * length-prefixed character strings, joined: returns the joined length
 * and puts at most outlen - 1 octets of it into out, NUL-terminated;
 * -1 when a string runs past len, len is 0 or outlen is 0.
 */
int	dns_parse_txt_rdata(const unsigned char *d, size_t len, char *out,
	    size_t outlen);

#endif
