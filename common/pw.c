/* Project-wide basics: allocation that aborts on failure, clocks, error strings. */
#include "pw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pw_abort(const char *why)
{
    /* No allocation here: it may be what failed. why is ours, never input. */
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"aborting\",\"reason\":\"%s\"}\n", why);
    fflush(stderr);
    abort();
}

static void pw_oom(size_t size)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"size\":%zu}\n", size);
    pw_abort("out of memory");
}

void *pw_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        pw_oom(size);
    return p;
}

void *pw_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        pw_oom(n * size);
    return p;
}

void *pw_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        pw_oom(size);
    return p;
}

char *pw_strdup(const char *s)
{
    return pw_strndup(s, strlen(s));
}

char *pw_strndup(const char *s, size_t n)
{
    char *p = pw_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pw_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = pw_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int64_t pw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pw_format_time_ms(int64_t epoch_ms, char *buf, size_t buf_size)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, buf_size, "%s.%03dZ", date, (int)(epoch_ms % 1000));
}

size_t pw_utf8_copy(char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size);
    if (len == size) {
        /* src[len - 1] is the first byte that does not fit: back up to the
         * start of its character (a UTF-8 character has at most 4 bytes). */
        len--;
        for (int k = 0; k < 3 && len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80; k++)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return len;
}

void pw_errstr_set(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (!errstr || errstr_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

int pw_account_id_valid(const char *account_id)
{
    size_t len = strlen(account_id);
    if (len < 1 || len > 128)
        return 0;
    return strspn(account_id,
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == len;
}
