/* The shared state: its lifecycle and reset, users, the fake clock, endpoint and media names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"

const char *const ft_ep_names[FT_EP_COUNT] = {"threads",          "threads_publish", "container",
                                              "refresh",          "oauth2",          "me",
                                              "publishing_limit", "debug_token",     "other"};

const char *const ft_media_names[FT_MEDIA_COUNT] = {"TEXT", "IMAGE", "VIDEO", "CAROUSEL"};

int ft_ep_parse(const char *s)
{
    for (int i = 0; s && i < FT_EP_COUNT; i++)
        if (strcmp(s, ft_ep_names[i]) == 0)
            return i;
    return -1;
}

int ft_media_parse(const char *s)
{
    for (int i = 0; s && i < FT_MEDIA_COUNT; i++)
        if (strcmp(s, ft_media_names[i]) == 0)
            return i;
    return -1;
}

static void ft_settings_default(ft_settings_t *s)
{
    *s = (ft_settings_t){.token_error_status = 400,
                         .invalidate_on_refresh = true,
                         .oauth_rotate = true,
                         .container_ready_ms = {[FT_VIDEO] = 300},
                         .refresh_expires_in = FT_DEFAULT_EXPIRES_IN,
                         .oauth_expires_in = 3600,
                         .quota_total = 250,
                         .quota_duration = 86400};
    for (int i = 0; i < FT_EP_COUNT; i++)
        s->latency_by_ep[i] = -1;
}

ft_state_t *ft_state_new(const char *client_id, const char *client_secret)
{
    ft_state_t *st = calloc(1, sizeof *st);
    if (!st)
        ft_oom();
    pthread_condattr_t ca;

    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* hangs last real time, not fake time */
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);
    st->client_id = client_id;
    st->client_secret = client_secret;
    st->next_container_id = 17800000000000001ULL;
    st->next_media_id = 18000000000000001ULL;
    ft_state_reset(st);
    return st;
}

void ft_state_destroy(ft_state_t *st)
{
    ft_state_reset(st);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

void ft_state_stop(ft_state_t *st)
{
    pthread_mutex_lock(&st->lock);
    st->stopping = true;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->lock);
}

void ft_state_wait(ft_state_t *st, long ms)
{
    uint64_t epoch = st->epoch;
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!st->stopping && st->epoch == epoch &&
           pthread_cond_timedwait(&st->wake, &st->lock, &until) != ETIMEDOUT)
        ;
}

void ft_state_reset(ft_state_t *st)
{
    for (size_t i = 0; i < st->token_list.n; i++) {
        ft_token_t *t = st->token_list.v[i];
        free(t->value);
        free(t);
    }
    for (size_t i = 0; i < st->container_list.n; i++) {
        ft_container_t *c = st->container_list.v[i];
        free(c->text);
        free(c);
    }
    for (size_t i = 0; i < st->user_list.n; i++) {
        ft_user_t *u = st->user_list.v[i];
        free(u->tokens.v);
        free(u->pubs.v);
        free(u->quota.ms);
        free(u->username);
        free(u->id);
        free(u);
    }
    for (size_t i = 0; i < st->failures.n; i++)
        ft_failure_free(st->failures.v[i]);
    free(st->tokens.slots);
    free(st->containers.slots);
    free(st->users.slots);
    free(st->token_list.v);
    free(st->container_list.v);
    free(st->user_list.v);
    free(st->failures.v);
    memset(&st->set, 0, sizeof *st - offsetof(ft_state_t, set));
    ft_settings_default(&st->set);
    st->peak_in_flight = st->in_flight;
    st->epoch++; /* ends the hangs injected so far */
    pthread_cond_broadcast(&st->wake);
}

int64_t ft_now_ms(const ft_state_t *st)
{
    return ft_real_ms() + st->clock_offset_ms;
}

ft_user_t *ft_user_get(ft_state_t *st, const char *id)
{
    ft_user_t *u = ft_map_get(&st->users, id);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            ft_oom();
        u->id = ft_xstrdup(id);
        u->username = ft_xmalloc(strlen(id) + 6);
        strcpy(u->username, "user_");
        strcat(u->username, id);
        ft_map_put(&st->users, u->id, u);
        ft_vec_push(&st->user_list, u);
    }
    return u;
}
