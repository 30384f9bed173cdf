/*
 * identity.c - the verified-identity check of authenticated senders (see
 * identity.h).  Moved out of the SMTP engine so the HTTPS API applies the
 * very same rule with the very same reply text.
 *
 * Limits: at most IDENTITY_FROM_ADDRS_MAX mailboxes in From: are checked
 * (more is a refusal: "too many addresses"); replies are cut to
 * IDENTITY_REPLY_MAX octets so they fit one SMTP reply line.
 * Threats: the From: value is untrusted; addrlist.c parses it (fuzzed)
 * and the addresses echoed in the reply are made printable.
 */
#include <stdio.h>
#include <string.h>

#include "addrlist.h"
#include "identity.h"
#include "strbuf.h"
#include "util.h"

#define NOT_VERIFIED	"554 5.7.1 Message rejected: Email address is not " \
			"verified. The following identities failed the " \
			"check: "

/* Check one envelope sender against the user's verified identities. */
enum identity_result
identity_check_sender(const char *addr, identity_allowed_fn allowed,
    void *arg, char *buf, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	int r;

	if (addr[0] == '\0')
		return IDENTITY_OK;
	r = allowed(arg, addr);
	if (r == -1)
		return IDENTITY_USER_GONE;
	if (r == 1)
		return IDENTITY_OK;
	strbuf_printable(&sb, addr, strlen(addr));
	snprintf(buf, len > IDENTITY_REPLY_MAX ? IDENTITY_REPLY_MAX : len,
	    NOT_VERIFIED "%s", sb.s);
	strbuf_free(&sb);
	return IDENTITY_REFUSED;
}

/* The mailboxes of From:, or -1 with the 554 5.6.0 reply in buf. */
static int
from_addrs(const char *from, int count, int truncated,
    struct addrlist_addr *addrs, char *buf, size_t len)
{
	const char *why = NULL;
	int n;

	if (truncated)
		n = -1, why = "too long";
	else
		n = addrlist_parse(from, strlen(from), addrs,
		    IDENTITY_FROM_ADDRS_MAX, &why);
	if (n > IDENTITY_FROM_ADDRS_MAX)
		n = -1, why = "too many addresses";
	if (n <= 0) {
		snprintf(buf, len, "554 5.6.0 Message rejected: the From: "
		    "header cannot be checked (%s)", n == 0 ?
		    "no address in it" : why);
		return -1;
	}
	return n;
}

/* Check every mailbox of the header From: (see identity.h). */
enum identity_result
identity_check_header_from(const char *from, int count, int truncated,
    const char *env_from, identity_allowed_fn allowed, void *arg, char *buf,
    size_t len)
{
	struct addrlist_addr addrs[IDENTITY_FROM_ADDRS_MAX];
	struct strbuf bad = STRBUF_INIT;
	int n, i, r, nbad = 0;

	if (count == 0) {
		if (env_from[0] != '\0')
			return IDENTITY_OK;
		bstrlcpy(buf, "554 5.6.0 Message rejected: Missing required "
		    "header 'From'", len);
		return IDENTITY_REFUSED;
	}
	if ((n = from_addrs(from, count, truncated, addrs, buf, len)) == -1)
		return IDENTITY_REFUSED;
	for (i = 0; i < n; i++) {
		r = allowed(arg, addrs[i].addr);
		if (r == -1) {
			strbuf_free(&bad);
			return IDENTITY_USER_GONE;
		}
		if (r == 1)
			continue;
		if (nbad++ > 0)
			strbuf_puts(&bad, ", ");
		strbuf_printable(&bad, addrs[i].addr, strlen(addrs[i].addr));
	}
	if (nbad == 0) {
		strbuf_free(&bad);
		return IDENTITY_OK;
	}
	snprintf(buf, len > IDENTITY_REPLY_MAX ? IDENTITY_REPLY_MAX : len,
	    NOT_VERIFIED "%s", bad.s);
	strbuf_free(&bad);
	return IDENTITY_REFUSED;
}
