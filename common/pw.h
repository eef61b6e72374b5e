/* Project-wide basics: attributes, allocation that never returns NULL, time. */
#ifndef PW_H
#define PW_H

#include <stddef.h>
#include <stdint.h>

#define PW_MUSTCHECK __attribute__((warn_unused_result))
#define PW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/** @brief Ends the process on a failure nothing can mend (out of memory, a
 *  broken invariant), saying why on stderr as a JSON line: a pod restarts,
 *  and its log tells what happened. */
_Noreturn void pw_abort(const char *why);
#define PW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Out of memory aborts: a pod restarts, and call sites stay free of NULL checks. */
void *pw_malloc(size_t size);
void *pw_calloc(size_t n, size_t size);
void *pw_realloc(void *ptr, size_t size);
char *pw_strdup(const char *s);
char *pw_strndup(const char *s, size_t n);
/** @brief printf into a new string; caller frees. */
char *pw_asprintf(const char *fmt, ...) PW_PRINTF(1, 2);

/** @brief Wall-clock time in milliseconds since the epoch. */
int64_t pw_now_ms(void);
/** @brief Monotonic time in milliseconds, for timeouts and intervals. */
int64_t pw_mono_ms(void);
/** @brief Formats epoch milliseconds as RFC 3339 UTC with milliseconds
 *  ("2026-11-25T20:00:01.532Z") into buf (at least 32 bytes). */
void pw_format_time_ms(int64_t epoch_ms, char *buf, size_t buf_size);

/** @brief Copies the NUL-terminated src into dst (size > 0), cut short where
 *  it does not fit at a character boundary: text from elsewhere that is
 *  valid UTF-8 stays valid in the events it goes into (snprintf() would cut
 *  a character in two). @returns the bytes copied. */
size_t pw_utf8_copy(char *dst, size_t size, const char *src);

/** @brief Writes an errstr the way librdkafka does: always NUL-terminated. */
void pw_errstr_set(char *errstr, size_t errstr_size, const char *fmt, ...) PW_PRINTF(3, 4);

/** @brief The contract's account id: 1 to 128 of [A-Za-z0-9._:-]. */
int pw_account_id_valid(const char *account_id);
#endif
