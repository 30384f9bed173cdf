/*
 * base64.c - canonical base64 with or without padding (see base64.h).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base64.h"
#include "util.h"

void
base64_encode_nopad(const unsigned char *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
}

static int
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

void
base64_append(const unsigned char *in, size_t n, struct strbuf *out)
{
	unsigned char buf[4 * 48 / 3 + 1];
	size_t k;
	int len;

	/* whole groups of 3 octets until the last piece */
	for (; n > 0; in += k, n -= k) {
		k = n > 48 ? 48 : n;
		len = EVP_EncodeBlock(buf, in, (int)k);
		strbuf_add(out, buf, (size_t)len);
	}
}

void
base64_mime(const unsigned char *in, size_t n, struct strbuf *out)
{
	unsigned char line[80];
	size_t k;
	int len;

	/* 57 octets make exactly 76 characters */
	for (; n > 0; in += k, n -= k) {
		k = n > 57 ? 57 : n;
		len = EVP_EncodeBlock(line, in, (int)k);
		strbuf_add(out, line, (size_t)len);
		strbuf_puts(out, "\r\n");
	}
}

int
base64_decode(const char *in, size_t n, unsigned char *out, size_t maxout)
{
	size_t i, plen, olen, orig = n;
	char *padded, *check;
	unsigned char *tmp;
	int r, ok;

	/* Padding: only at the end, at most two, making a multiple of 4. */
	while (n > 0 && orig - n < 2 && in[n - 1] == '=')
		n--;
	if (n != orig && orig % 4 != 0)
		return -1;
	if (n == 0 || n % 4 == 1 || n > (size_t)1 << 20)
		return -1;
	for (i = 0; i < n; i++)
		if (!b64_char((unsigned char)in[i]))
			return -1;
	olen = n * 3 / 4;	/* what the padding leaves out */
	if (olen > maxout)
		return -1;
	plen = (n + 3) / 4 * 4;
	padded = xmalloc(plen + 1);
	check = xmalloc(plen + 1);
	tmp = xmalloc(plen);
	memcpy(padded, in, n);
	for (i = n; i < plen; i++)
		padded[i] = '=';
	padded[plen] = '\0';
	r = EVP_DecodeBlock(tmp, (const unsigned char *)padded, (int)plen);
	/* Canonical: encoding the bytes again gives the same text. */
	ok = r >= 0 && (size_t)r >= olen;
	if (ok) {
		base64_encode_nopad(tmp, olen, check);
		ok = strlen(check) == n && memcmp(check, in, n) == 0;
	}
	if (ok)
		memcpy(out, tmp, olen);
	secure_free(padded, plen + 1);
	secure_free(check, plen + 1);
	secure_free(tmp, plen);
	return ok ? (int)olen : -1;
}
