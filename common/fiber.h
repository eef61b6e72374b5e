/* Fibers on event loops: hundreds of posts in flight on a few threads.
 *
 * DESIGN: a loop is one thread running an epoll loop and the fibers spawned
 * on it (ucontext stacks). A fiber runs until it waits, for a socket event
 * seen by a watch, a timer, or a wake-up from any thread, and the loop resumes
 * it once that happened. A thread per post in flight cost about fifteen
 * context switches per post; on a loop, replies that arrive together are
 * served in one pass without any.
 *
 * Blocking helpers (http.c, redis.c, pw_sleep_ms()) ask pw_fiber_current():
 * inside a fiber they wait on the loop, elsewhere they block as before. A
 * fiber must not wait while it holds a mutex: another fiber of the same loop
 * could need it. Wake-ups may be spurious, so every wait is a loop around a
 * condition. */
#ifndef PW_FIBER_H
#define PW_FIBER_H

#include <stdbool.h>
#include <stdint.h>

#include "pw.h"

typedef struct pw_loop_s pw_loop_t;
typedef struct pw_fiber_s pw_fiber_t;

/* A socket's readiness callback; owned by the module that watches. */
typedef struct pw_loop_watch_s {
    int fd;
    uint32_t events; /* EPOLLIN/EPOLLOUT now watched; 0: none */
    void (*on_ready)(void *arg, uint32_t revents);
    void *arg;
} pw_loop_watch_t;

/* A one-shot timer; owned by the module that arms it. */
typedef struct pw_loop_timer_s {
    int64_t deadline_ms; /* pw_mono_ms() clock */
    void (*on_expiry)(void *arg);
    void *arg;
    bool armed;
    int heap_index; /* the loop's, while armed */
} pw_loop_timer_t;

/** @brief Starts a loop thread with no fibers; `index` tells loops apart
 *  (0..PW_LOOP_MAX-1). Fibers are added with pw_fiber_spawn().
 *  @returns the loop; pw_loop_join() waits for it and frees it. */
pw_loop_t *pw_loop_start(int index);
/** @brief Waits until every fiber of the loop has returned, then stops the
 *  thread, runs its exit hooks and frees the loop. */
void pw_loop_join(pw_loop_t *loop);
/** @brief The loop running on this thread, or NULL. */
pw_loop_t *pw_loop_current(void);
int pw_loop_index(const pw_loop_t *loop);
#define PW_LOOP_MAX 64

/** @brief Runs hook(arg) on the loop thread after its last fiber returned:
 *  for per-loop state of other modules. @locality the loop's thread */
void pw_loop_at_exit(pw_loop_t *loop, void (*hook)(void *arg), void *arg);
/** @brief Watches w->fd for `events` (0 stops watching); w must stay valid
 *  while watched. @locality the loop's thread */
void pw_loop_watch_set(pw_loop_t *loop, pw_loop_watch_t *w, uint32_t events);
/** @brief Arms t at deadline_ms (re-arms an armed one). @locality the loop's thread */
void pw_loop_timer_arm(pw_loop_t *loop, pw_loop_timer_t *t, int64_t deadline_ms);
void pw_loop_timer_disarm(pw_loop_t *loop, pw_loop_timer_t *t);

/** @brief Starts fn(arg) as a fiber with a stack of stack_size bytes on
 *  loop. @locality any thread */
void pw_fiber_spawn(pw_loop_t *loop, size_t stack_size, void (*fn)(void *arg), void *arg);
/** @brief The fiber running on this thread, or NULL outside fibers. */
pw_fiber_t *pw_fiber_current(void);
/** @brief Suspends the current fiber until pw_fiber_wake(); returns at once
 *  when a wake-up came since the last wait. */
void pw_fiber_wait(void);
/** @brief Makes fiber runnable (or its next wait return at once).
 *  @locality any thread */
void pw_fiber_wake(pw_fiber_t *fiber);

/** @brief Milliseconds since the loop last went round (it goes round at
 *  least once a second, idle or not): a loop stuck in one fiber shows here.
 *  @locality any thread */
int64_t pw_loop_idle_ms(const pw_loop_t *loop);

/** @brief From now on, waits that can be given up give up: HTTP transfers
 *  abort, refresh waits return. Shutdown calls it once its deadline passed.
 *  @locality any thread */
void pw_waits_cancel(void);
bool pw_waits_cancelled(void);

/** @brief Sleeps ms milliseconds: a fiber waits on its loop, any other
 *  thread blocks. */
void pw_sleep_ms(long ms);
/** @brief Runs fn(arg), which may block (a DNS lookup), on a thread of its
 *  own while the current fiber waits; outside fibers it just calls it. */
void pw_fiber_offload(void (*fn)(void *arg), void *arg);

#endif
