/*
 * fuzz_check.h - shared by the libFuzzer targets: the entry point's
 * prototype and CHECK(), which aborts (a finding) when an invariant fails.
 */
#ifndef POSTERN_FUZZ_CHECK_H
#define POSTERN_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#endif
