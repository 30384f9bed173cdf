/*
 * fuzz_addrlist.c - libFuzzer target for addrlist_parse.
 *
 * Input: byte 0 = how many output slots (0-7), the rest = the header
 * field value.  Checks: the result is -1 with a static reason or a count
 * that does not depend on the slots given; nothing is written past the
 * last slot; every address is NUL-terminated, has exactly one "@" outside
 * its quoted local part, a local part of 1-64 octets (a dot-atom or one
 * quoted-string), a lower-case domain of 1-255 octets without "@", no
 * control characters; and each address parses again, alone and in <>,
 * to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrlist.h"
#include "fuzz_check.h"

#define SLOTS	8
#define GUARD	0xa5

static void
check_why(const char *why)
{
	size_t i;

	CHECK(why != NULL && why[0] != '\0');
	for (i = 0; why[i] != '\0'; i++)
		CHECK(why[i] >= 0x20 && why[i] < 0x7f);
}

static int
is_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 ||
	    (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the local part of a; the "@" follows it. */
static size_t
local_len(const char *a)
{
	size_t i;

	if (a[0] != '"')
		return strcspn(a, "@");
	for (i = 1; a[i] != '"'; i++) {
		CHECK(a[i] != '\0');
		if (a[i] == '\\') {
			i++;
			CHECK(a[i] == '"' || a[i] == '\\');
		} else
			CHECK(a[i] != '"');
	}
	return i + 1;
}

static void
check_addr(const struct addrlist_addr *out)
{
	const char *a = out->addr, *d;
	size_t n, llen, dlen, i;

	CHECK(memchr(a, '\0', sizeof(out->addr)) != NULL);
	n = strlen(a);
	CHECK(n <= ADDRLIST_ADDR_MAX);
	for (i = 0; i < n; i++)
		CHECK(((unsigned char)a[i] >= 0x20 || a[i] == '\t') &&
		    a[i] != 0x7f);
	llen = local_len(a);
	CHECK(llen >= 1 && llen <= 64);
	CHECK(a[llen] == '@');
	if (a[0] != '"') {
		/* A dot-atom. */
		CHECK(a[0] != '.' && a[llen - 1] != '.');
		for (i = 0; i < llen; i++)
			CHECK(is_atext((unsigned char)a[i]) ||
			    (a[i] == '.' && a[i + 1] != '.'));
	}
	d = a + llen + 1;
	dlen = strlen(d);
	CHECK(dlen >= 1 && dlen <= 255);
	CHECK(strchr(d, '@') == NULL);
	for (i = 0; i < dlen; i++)
		CHECK(!(d[i] >= 'A' && d[i] <= 'Z') && d[i] != ' ' &&
		    d[i] != '\t' && d[i] != '"');
	CHECK(d[0] != '.' && d[dlen - 1] != '.');
}

/* The address alone and "<" address ">" give the address back. */
static void
check_reparse(const struct addrlist_addr *out)
{
	struct addrlist_addr again[1];
	char buf[ADDRLIST_ADDR_MAX + 3];
	const char *why = NULL;
	size_t n = strlen(out->addr);

	CHECK(addrlist_parse(out->addr, n, again, 1, &why) == 1);
	CHECK(strcmp(again[0].addr, out->addr) == 0);
	buf[0] = '<';
	memcpy(buf + 1, out->addr, n);
	buf[n + 1] = '>';
	CHECK(addrlist_parse(buf, n + 2, again, 1, &why) == 1);
	CHECK(strcmp(again[0].addr, out->addr) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct addrlist_addr out[SLOTS], full[SLOTS];
	static unsigned char guard[sizeof(out)];
	const char *s, *why;
	size_t len, max, i;
	int rc, rc2;

	if (size < 1)
		return 0;
	max = data[0] % SLOTS;
	s = (const char *)data + 1;
	len = size - 1;

	memset(out, GUARD, sizeof(out));
	memset(guard, GUARD, sizeof(guard));
	why = NULL;
	rc = addrlist_parse(s, len, out, max, &why);
	/* Slots past max are untouched, whatever the result. */
	CHECK(memcmp(&out[max], guard, (SLOTS - max) * sizeof(out[0])) == 0);
	if (rc == -1) {
		check_why(why);
		CHECK(addrlist_parse(s, len, NULL, 0, NULL) == -1);
		return 0;
	}
	CHECK(rc >= 0);
	CHECK((size_t)rc <= len / 3);		/* "a@b" is the shortest */
	CHECK(addrlist_parse(s, len, NULL, 0, &why) == rc);
	rc2 = addrlist_parse(s, len, full, SLOTS, &why);
	CHECK(rc2 == rc);
	for (i = 0; i < (size_t)rc && i < max; i++) {
		check_addr(&out[i]);
		CHECK(strcmp(out[i].addr, full[i].addr) == 0);
		check_reparse(&out[i]);
	}
	for (; i < (size_t)rc && i < SLOTS; i++) {
		check_addr(&full[i]);
		check_reparse(&full[i]);
	}
	return 0;
}
