/*
 * fuzz_pickup.c - libFuzzer target for pickup_parse, the envelope fields
 * of a pickup file (written by local users: untrusted).
 *
 * Checks: 0 or -1; on -1 a terminated, printable reason and no
 * receivers left; on 0 body_off within the input and at a line start,
 * at most PICKUP_RCPTS_MAX receivers, every address terminated, bounded,
 * without spaces, control characters or angle brackets, receivers
 * non-empty, and the message after body_off does not start with an
 * envelope field.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "pickup_parse.h"
#include "util.h"

static void
check_addr(const char *a, int may_be_empty)
{
	size_t i, n = strnlen(a, PICKUP_ADDR_MAX + 1);

	CHECK(n <= PICKUP_ADDR_MAX);
	CHECK(may_be_empty || n > 0);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)a[i] > ' ' && a[i] != 0x7f &&
		    a[i] != '<' && a[i] != '>');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct pickup_env env;
	char why[128];
	size_t i, rest;

	if (pickup_parse(in, size, &env, why, sizeof(why)) == -1) {
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		CHECK(env.rcpts == NULL && env.nrcpts == 0);
		return 0;
	}
	CHECK(env.body_off <= size);
	CHECK(env.body_off == 0 || in[env.body_off - 1] == '\n' ||
	    env.body_off == size);
	CHECK(env.nrcpts <= PICKUP_RCPTS_MAX);
	if (env.has_sender)
		check_addr(env.sender, 1);
	for (i = 0; i < env.nrcpts; i++)
		check_addr(env.rcpts[i], 0);
	rest = size - env.body_off;
	CHECK(!(rest >= 9 && ascii_ncasecmp(in + env.body_off, "X-Sender:",
	    9) == 0));
	CHECK(!(rest >= 11 && ascii_ncasecmp(in + env.body_off,
	    "X-Receiver:", 11) == 0));
	pickup_env_free(&env);
	return 0;
}
