/*
 * proxy_proto.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before anything else on a
 * connection it relays, naming the real client.  Pure functions: bytes in,
 * a result out; no I/O.
 *
 * Callers: proxy_accept.c (the accept-time wait on a listener with
 * proxy_protocol = true); tests/unit/test_proxy_proto.c;
 * tests/fuzz/fuzz_proxy_proto.c.
 */
#ifndef POSTERN_PROXY_PROTO_H
#define POSTERN_PROXY_PROTO_H

#include <stddef.h>
#include <sys/socket.h>

/* Version 1: one text line of at most 107 octets, CRLF included. */
#define PROXY_PROTO_V1_MAX	107
/* Version 2: 16 octets, then an address block and TLVs; we take at most
 * this much in all (a UNIX address block is 216, HAProxy's TLVs for a
 * TLS client with a certificate stay well under 1 KiB). */
#define PROXY_PROTO_V2_MAX	(16 + 2048)
/* The most a header can be: the buffer a caller needs. */
#define PROXY_PROTO_MAX		PROXY_PROTO_V2_MAX

enum proxy_proto_status {
	PROXY_PROTO_MORE,	/* a valid start: every octet given so far
				 * belongs to the header, send more */
	PROXY_PROTO_DONE,	/* a whole header of hdr->len octets */
	PROXY_PROTO_ERROR	/* not a valid header (why says what) */
};

enum proxy_proto_kind {
	/* A relayed TCP connection: src is the real client (IPv4 or IPv6,
	 * with its port), dst the address it connected to. */
	PROXY_PROTO_RELAYED,
	/* The proxy's own connection (v2 LOCAL, v1 UNKNOWN): health checks;
	 * the connection's own addresses apply. */
	PROXY_PROTO_LOCAL,
	/* v2 PROXY for a client without an IP address (AF_UNIX, AF_UNSPEC):
	 * relayed, but the connection's own addresses apply. */
	PROXY_PROTO_NOADDR
};

struct proxy_proto_hdr {
	int			 version;	/* 1 or 2 */
	enum proxy_proto_kind	 kind;
	/* What the header said, for logs: "TCP4", "TCP6", "UNKNOWN" (v1);
	 * "TCP4", "TCP6", "LOCAL", "UNIX", "UNSPEC" (v2).  Static. */
	const char		*proto;
	struct sockaddr_storage	 src, dst;	/* PROXY_PROTO_RELAYED only */
	size_t			 len;		/* octets of the header */
	size_t			 ntlv;		/* v2 TLVs skipped */
};

/*
 * Look at the first `len` octets a proxy sent.  DONE: *hdr is filled in
 * and exactly hdr->len octets (<= len) are the header; whatever follows
 * is the client's (SMTP, or a TLS handshake).  MORE: nothing is decided
 * yet and all `len` octets are part of the header, so a caller may
 * consume them.  ERROR: why holds a short reason for the log.
 */
enum proxy_proto_status proxy_proto_parse(const void *buf, size_t len,
	    struct proxy_proto_hdr *hdr, char *why, size_t whylen);

#endif
