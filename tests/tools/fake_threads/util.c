/* Memory, randomness, time, a vector and a string-keyed hash table. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fake.h"

void ft_oom(void)
{
    fputs("fake-threads: out of memory\n", stderr);
    abort();
}

/* Out of memory aborts, so call sites carry no NULL checks (cJSON too, via its hooks). */
void *ft_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ft_oom();
    return p;
}

void *ft_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        ft_oom();
    return p;
}

char *ft_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ft_xmalloc(n), s, n);
}

/* Fills out[0..n) with random letters and digits and terminates it. */
void ft_random_chars(char *out, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    size_t done = 0;

    while (done < n) {
        size_t chunk = n - done < sizeof raw ? n - done : sizeof raw;
        ssize_t got = getrandom(raw, chunk, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            abort(); /* getrandom only fails on a broken kernel */
        for (ssize_t i = 0; i < got; i++)
            out[done++] = alphabet[raw[i] % (sizeof alphabet - 1)];
    }
    out[n] = '\0';
}

int64_t ft_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ft_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* "Tuesday, 24-Nov-26 20:00:00 UTC", the shape of Meta's expiry messages. */
void ft_format_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%A, %d-%b-%y %H:%M:%S UTC", &tm);
}

void ft_vec_push(ft_vec_t *vec, void *p)
{
    if (vec->n == vec->cap) {
        vec->cap = vec->cap ? vec->cap * 2 : 16;
        vec->v = ft_xrealloc(vec->v, vec->cap * sizeof *vec->v);
    }
    vec->v[vec->n++] = p;
}

static uint64_t ft_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static struct ft_slot *ft_map_slot(const ft_map_t *m, const char *key)
{
    size_t i = (size_t)ft_hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

void *ft_map_get(const ft_map_t *m, const char *key)
{
    return key && m->cap ? ft_map_slot(m, key)->val : NULL;
}

void ft_map_put(ft_map_t *m, const char *key, void *val)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        ft_map_t grown = {calloc(m->cap ? m->cap * 2 : 64, sizeof *m->slots),
                          m->cap ? m->cap * 2 : 64, m->n};
        if (!grown.slots)
            ft_oom();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                *ft_map_slot(&grown, m->slots[i].key) = m->slots[i];
        free(m->slots);
        *m = grown;
    }
    struct ft_slot *s = ft_map_slot(m, key);
    if (!s->key)
        m->n++;
    s->key = key;
    s->val = val;
}

/* An integral JSON number within [lo, hi]. */
int ft_json_long(const cJSON *it, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        it->valuedouble < (double)lo || it->valuedouble > (double)hi)
        return -1;
    *out = (long)it->valuedouble;
    return 0;
}
