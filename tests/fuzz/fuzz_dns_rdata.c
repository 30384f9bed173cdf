/*
 * fuzz_dns_rdata.c - libFuzzer target for the parsers of DNS answer data
 * (dns.h, "for tests and fuzzing"): what a hostile or broken DNS server
 * (through libunbound) hands the next-hop resolution and the reverse
 * lookup.
 *
 * The input is taken as a wire-format name (dns_wire_name, as for PTR
 * rdata) and as MX rdata (dns_parse_mx_rdata).  Output buffers are heap
 * blocks of exactly the size passed, so ASan sees any write past them.
 * Checks: 0 or -1 only; on 0 the text is NUL-terminated inside the buffer,
 * non-empty, bounded by the input (at most len - 1 characters), made of
 * 0x21..0x7e, labels of 1..63 characters between single dots, and encodes
 * back to a prefix of the input that ends at a root label or at the end;
 * a smaller buffer never gives a different name; the MX parser agrees
 * with the name parser on the target and takes the preference from the
 * first two bytes.  The input is also TXT rdata (dns_parse_txt_rdata, for
 * DKIM key records): -1 exactly when a string runs past the end (or the
 * input is empty); else the joined length is the input minus one length
 * octet per string, and what is kept is those octets, NUL-terminated and
 * cut to the buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "fuzz_check.h"

#define NAMEBUF	256	/* what dns.c passes (struct dns_host name) */

/* A successful name: shape, bounds, and that it re-encodes to the start
 * of p[0..len) (up to the root label or the end). */
static void
check_name(const unsigned char *p, size_t len, const char *out,
    size_t outlen)
{
	unsigned char wire[NAMEBUF + 2];
	size_t n, i, w = 0, label = 0, lenpos = 0;

	CHECK(memchr(out, '\0', outlen) != NULL);
	n = strlen(out);
	CHECK(n >= 1 && n < outlen);
	CHECK(len >= 2 && n <= len - 1);
	CHECK(out[0] != '.' && out[n - 1] != '.');
	for (i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (i == n || c == '.') {
			CHECK(label >= 1 && label <= 63);
			wire[lenpos] = (unsigned char)label;
			lenpos = ++w;
			label = 0;
			continue;
		}
		CHECK(c > 0x20 && c < 0x7f);
		CHECK(w + 1 < sizeof(wire));
		wire[++w] = c;
		label++;
	}
	/* w bytes of labels: the input starts with them, then ends or has
	 * the root label */
	CHECK(w <= len);
	CHECK(memcmp(wire, p, w) == 0);
	CHECK(w == len || p[w] == 0);
}

static void
fuzz_name(const unsigned char *p, size_t len, size_t small)
{
	char *big = malloc(NAMEBUF), *tiny = malloc(small);
	int r, rs;

	CHECK(big != NULL && tiny != NULL);
	r = dns_wire_name(p, len, big, NAMEBUF);
	CHECK(r == 0 || r == -1);
	if (r == 0)
		check_name(p, len, big, NAMEBUF);
	/* a smaller buffer: never a different name; enough room (the name,
	 * its NUL and one byte to spare) gives the same one */
	rs = dns_wire_name(p, len, tiny, small);
	CHECK(rs == 0 || rs == -1);
	if (rs == 0) {
		check_name(p, len, tiny, small);
		CHECK(r == 0 && strcmp(tiny, big) == 0);
	} else if (r == 0 && strlen(big) + 2 <= small)
		CHECK(0 && "fits but refused");
	free(big);
	free(tiny);
}

static void
fuzz_mx(const unsigned char *d, size_t len)
{
	char *name = malloc(NAMEBUF), *ref = malloc(NAMEBUF);
	int pref = -7, r, rn;

	CHECK(name != NULL && ref != NULL);
	r = dns_parse_mx_rdata(d, len, &pref, name, NAMEBUF);
	CHECK(r == 0 || r == -1);
	if (len < 3) {
		CHECK(r == -1);
		goto out;
	}
	if (d[2] == 0) {
		/* the root: null MX (RFC 7505) */
		CHECK(r == 0 && name[0] == '\0');
	} else {
		rn = dns_wire_name(d + 2, len - 2, ref, NAMEBUF);
		CHECK(r == rn);
		if (r == 0) {
			check_name(d + 2, len - 2, name, NAMEBUF);
			CHECK(strcmp(name, ref) == 0);
		}
	}
	if (r == 0)
		CHECK(pref == (d[0] << 8 | d[1]) && pref >= 0 &&
		    pref <= 65535);
out:
	free(name);
	free(ref);
}

static void
fuzz_txt(const unsigned char *d, size_t len, size_t small)
{
	char *out = malloc(small), *ref = malloc(len + 1);
	size_t i = 0, n = 0, k;
	int r, ok = len > 0;

	CHECK(out != NULL && ref != NULL);
	while (ok && i < len) {		/* the reference: walk the strings */
		k = d[i++];
		if (k > len - i) {
			ok = 0;
			break;
		}
		memcpy(ref + n, d + i, k);
		n += k;
		i += k;
	}
	r = dns_parse_txt_rdata(d, len, out, small);
	CHECK(r == (ok ? (int)n : -1));
	if (r >= 0) {
		k = n < small - 1 ? n : small - 1;
		CHECK(memcmp(out, ref, k) == 0 && out[k] == '\0');
	}
	free(out);
	free(ref);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy;
	char one;

	/* exact-size copy: a read past the end is an ASan finding */
	copy = malloc(size > 0 ? size : 1);
	CHECK(copy != NULL);
	if (size > 0)
		memcpy(copy, data, size);
	fuzz_name(copy, size, size > 0 ? (size_t)copy[size - 1] + 1 : 1);
	fuzz_mx(copy, size);
	fuzz_txt(copy, size, size > 1 ? (size_t)copy[0] % 64 + 1 : 1);
	/* degenerate buffers */
	CHECK(dns_wire_name(copy, size, &one, 1) == -1);
	CHECK(dns_parse_mx_rdata(copy, size, &(int){0}, &one, 0) == -1);
	free(copy);
	return 0;
}
