/*
 * fuzz_conf.c - libFuzzer target for the configuration loader: arbitrary
 * bytes go to conf_load_string(); every result is freed.  A text that loads
 * without errors must also survive the conf_show round trip: what show
 * prints must load again with no errors and show the same (the first line,
 * which names the source, aside).
 *
 * Inputs with @include are skipped: they would make libconfig read files
 * of the fuzzing host (a config file is trusted with that, fuzz input not).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fuzz_check.h"

const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5 leaks a string token when the parser fails right after it
 * (its grammar has no %destructor; e.g. `x "a";`).  Not ours to fix, and a
 * few bytes per failed load; LeakSanitizer reads this hook at start-up.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

/* conf_show into a malloc'd string without its first line. */
static char *
show(const struct conf *c)
{
	char *buf = NULL, *nl;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		abort();
	conf_show(c, fp);
	if (fclose(fp) != 0 || (nl = strchr(buf, '\n')) == NULL)
		abort();
	memmove(buf, nl + 1, strlen(nl + 1) + 1);
	return buf;
}

static void
round_trip(const struct conf *c)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *again;
	char *first, *second;
	size_t i;

	first = show(c);
	again = conf_load_string(first, "shown.conf", "/fuzz", &errs);
	if (again == NULL || errs.n != 0) {
		fprintf(stderr, "show output does not load back:\n%s\n", first);
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		abort();
	}
	second = show(again);
	if (strcmp(first, second) != 0) {
		fprintf(stderr, "show differs after reload:\n%s\n---\n%s\n",
		    first, second);
		abort();
	}
	free(first);
	free(second);
	conf_free(again);
	conf_errors_free(&errs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { NULL, 0 };
	struct conf *c;
	char *text;

	if (size > 65536)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (strstr(text, "@include") != NULL) {
		free(text);
		return 0;
	}
	c = conf_load_string(text, "fuzz.conf", "/fuzz", &errs);
	if (c != NULL && errs.n == 0)
		round_trip(c);
	conf_free(c);
	conf_errors_free(&errs);
	free(text);
	return 0;
}
