/* Fuzz targets: what every target shares.
 *
 * DESIGN: each fuzz_<target>.c defines LLVMFuzzerTestOneInput() and nothing
 * else of its own. Built with clang and -DPW_FUZZ=ON it links libFuzzer's
 * main (deploy/dev fuzz); built by the normal build it links replay.c, a
 * main() that feeds it files, so the regression inputs in regressions/ run
 * under gcc and ASan with the unit tests. A target checks invariants with
 * PW_FUZZ_CHECK(), which aborts: a crash to libFuzzer, a failure to CTest. */
#ifndef PW_FUZZ_H
#define PW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw.h"
#include "request.h"

/** @brief The entry point libFuzzer and replay.c call with one input.
 *  @returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PW_FUZZ_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/** @brief The input as a NUL-terminated string (cut at its first NUL, as a
 *  C string parameter would be); caller frees. */
static inline char *pw_fuzz_cstr(const uint8_t *data, size_t size)
{
    return pw_strndup((const char *)data, size);
}

/** @brief 1 when s holds a NUL within size bytes: the callee terminated it. */
static inline int pw_fuzz_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/** @brief 1 when the NUL-terminated s is valid UTF-8 (pw_utf8_valid()). */
static inline int pw_fuzz_utf8(const char *s)
{
    return pw_utf8_valid((const unsigned char *)s, strlen(s));
}

#endif
