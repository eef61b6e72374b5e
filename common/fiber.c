/* Fibers on event loops: epoll, timers, cross-thread wake-ups, ucontext. */
#include "fiber.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* ASan must be told when the stack changes under it, or it may report
 * errors that are not there. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define pw_asan_switch_begin(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define pw_asan_switch_end(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define pw_asan_switch_begin(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define pw_asan_switch_end(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

struct pw_fiber_s {
    ucontext_t ctx;
    void *mapping; /* stack with a guard page below it */
    size_t mapping_size;
    pw_loop_t *loop;
    void (*fn)(void *arg);
    void *arg;
    bool finished; /* loop thread only */
    void *asan_fake_stack;

    /* Guarded by the loop's lock. */
    bool waiting; /* suspended in pw_fiber_wait() */
    bool woken;   /* a wake-up its next wait consumes */
    bool queued;  /* on the run list */
    pw_fiber_t *next_run;
};

typedef struct pw_exit_hook_s {
    void (*hook)(void *arg);
    void *arg;
    struct pw_exit_hook_s *next;
} pw_exit_hook_t;

struct pw_loop_s {
    int index;
    pthread_t thread;
    int epfd;
    int wakefd; /* eventfd: other threads wake a sleeping loop through it */
    pw_loop_watch_t wake_watch;

    pthread_mutex_t lock;
    pw_fiber_t *run_head, *run_tail;
    int fibers;    /* spawned and not returned */
    bool joining;  /* leave once no fiber is left */
    bool sleeping; /* in epoll_wait: a wake-up must write wakefd */

    /* Loop thread only. */
    ucontext_t main_ctx;
    const void *main_stack_bottom; /* for ASan */
    size_t main_stack_size;
    void *asan_fake_stack;
    pw_fiber_t *current;
    pw_loop_timer_t **timers; /* armed ones: a min-heap on deadline */
    int timer_count, timer_cap;
    pw_loop_watch_t **watch_by_fd;
    int watch_cap;
    pw_exit_hook_t *exit_hooks;
    atomic_int_least64_t last_turn_ms; /* read by other threads (liveness) */
};

static atomic_bool pw_waits_cancelled_flag;

void pw_waits_cancel(void)
{
    atomic_store(&pw_waits_cancelled_flag, true);
}

bool pw_waits_cancelled(void)
{
    return atomic_load(&pw_waits_cancelled_flag);
}

int64_t pw_loop_idle_ms(const pw_loop_t *loop)
{
    return pw_mono_ms() - atomic_load(&loop->last_turn_ms);
}

static _Thread_local pw_loop_t *pw_loop_this_thread;

pw_loop_t *pw_loop_current(void)
{
    return pw_loop_this_thread;
}

int pw_loop_index(const pw_loop_t *loop)
{
    return loop->index;
}

pw_fiber_t *pw_fiber_current(void)
{
    return pw_loop_this_thread ? pw_loop_this_thread->current : NULL;
}

/* ---- run list and wake-ups ---- */

/* Queues f to run; returns true when the loop sleeps and needs a signal.
 * Caller holds loop->lock. */
static bool pw_loop_queue_locked(pw_loop_t *loop, pw_fiber_t *f)
{
    f->queued = true;
    f->next_run = NULL;
    if (loop->run_tail)
        loop->run_tail->next_run = f;
    else
        loop->run_head = f;
    loop->run_tail = f;
    bool signal = loop->sleeping;
    loop->sleeping = false;
    return signal;
}

static void pw_loop_signal(pw_loop_t *loop)
{
    uint64_t one = 1;
    while (write(loop->wakefd, &one, sizeof(one)) == -1 && errno == EINTR)
        ;
}

void pw_fiber_wake(pw_fiber_t *f)
{
    pw_loop_t *loop = f->loop;
    pthread_mutex_lock(&loop->lock);
    if (f->waiting && !f->queued) {
        /* Signalled under the lock: the loop cannot end (and be freed)
         * before the write, since it takes the lock to leave. */
        if (pw_loop_queue_locked(loop, f))
            pw_loop_signal(loop);
    } else if (!f->waiting) {
        f->woken = true;
    }
    pthread_mutex_unlock(&loop->lock);
}

void pw_fiber_wait(void)
{
    pw_loop_t *loop = pw_loop_this_thread;
    pw_fiber_t *f = loop->current;
    pthread_mutex_lock(&loop->lock);
    if (f->woken) {
        f->woken = false;
        pthread_mutex_unlock(&loop->lock);
        return;
    }
    f->waiting = true;
    pthread_mutex_unlock(&loop->lock);
    /* Only this thread resumes f, so a wake-up between the unlock and the
     * switch just queues it for the loop's next pass. */
    pw_asan_switch_begin(&f->asan_fake_stack, loop->main_stack_bottom, loop->main_stack_size);
    swapcontext(&f->ctx, &loop->main_ctx);
    pw_asan_switch_end(f->asan_fake_stack, &loop->main_stack_bottom, &loop->main_stack_size);
}

static void pw_fiber_main(void)
{
    pw_loop_t *loop = pw_loop_this_thread;
    pw_fiber_t *f = loop->current;
    pw_asan_switch_end(NULL, &loop->main_stack_bottom, &loop->main_stack_size);
    f->fn(f->arg);
    f->finished = true;
    pw_asan_switch_begin(NULL, loop->main_stack_bottom, loop->main_stack_size); /* dies */
    swapcontext(&f->ctx, &loop->main_ctx);                                      /* never resumed */
}

void pw_fiber_spawn(pw_loop_t *loop, size_t stack_size, void (*fn)(void *arg), void *arg)
{
    long page = sysconf(_SC_PAGESIZE);
    stack_size = (stack_size + (size_t)page - 1) & ~((size_t)page - 1);
    pw_fiber_t *f = pw_calloc(1, sizeof(*f));
    f->mapping_size = stack_size + (size_t)page;
    /* Untouched stack pages cost no memory; the guard turns an overflow
     * into a crash instead of silent corruption. */
    f->mapping = mmap(NULL, f->mapping_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (f->mapping == MAP_FAILED || mprotect(f->mapping, (size_t)page, PROT_NONE) == -1)
        pw_abort("cannot map a fiber stack (mmap/mprotect): out of memory or vm.max_map_count");
    f->loop = loop;
    f->fn = fn;
    f->arg = arg;
    if (getcontext(&f->ctx) == -1)
        pw_abort("getcontext failed for a new fiber");
    f->ctx.uc_stack.ss_sp = (char *)f->mapping + page;
    f->ctx.uc_stack.ss_size = stack_size;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, pw_fiber_main, 0);

    pthread_mutex_lock(&loop->lock);
    loop->fibers++;
    f->waiting = true;
    if (pw_loop_queue_locked(loop, f))
        pw_loop_signal(loop);
    pthread_mutex_unlock(&loop->lock);
}

/* ---- watches and timers ---- */

void pw_loop_watch_set(pw_loop_t *loop, pw_loop_watch_t *w, uint32_t events)
{
    if (events == w->events)
        return;
    struct epoll_event ev = {.events = events, .data.fd = w->fd};
    if (w->events == 0) {
        if (w->fd >= loop->watch_cap) {
            int cap = loop->watch_cap ? loop->watch_cap : 64;
            while (cap <= w->fd)
                cap *= 2;
            loop->watch_by_fd =
                pw_realloc(loop->watch_by_fd, sizeof(*loop->watch_by_fd) * (size_t)cap);
            memset(loop->watch_by_fd + loop->watch_cap, 0,
                   sizeof(*loop->watch_by_fd) * (size_t)(cap - loop->watch_cap));
            loop->watch_cap = cap;
        }
        /* EEXIST: a library closed an fd without telling, and the number
         * came back; take it over. */
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) == -1 &&
            (errno != EEXIST || epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) == -1))
            pw_abort("epoll_ctl ADD failed: a bad fd or out of memory (a bug)");
        loop->watch_by_fd[w->fd] = w;
    } else if (events == 0) {
        /* The fd may already be closed (EBADF), which removed it too. */
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, &ev);
        if (w->fd < loop->watch_cap && loop->watch_by_fd[w->fd] == w)
            loop->watch_by_fd[w->fd] = NULL;
    } else if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) == -1 &&
               (errno != ENOENT || epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) == -1)) {
        pw_abort("epoll_ctl MOD failed: a bad fd or out of memory (a bug)");
    }
    w->events = events;
}

/* ---- timers: a binary min-heap on deadline ---- */

static void pw_heap_place(pw_loop_t *loop, pw_loop_timer_t *t, int i)
{
    loop->timers[i] = t;
    t->heap_index = i;
}

static void pw_heap_sift(pw_loop_t *loop, int i)
{
    pw_loop_timer_t *t = loop->timers[i];
    while (i > 0 && loop->timers[(i - 1) / 2]->deadline_ms > t->deadline_ms) {
        pw_heap_place(loop, loop->timers[(i - 1) / 2], i);
        i = (i - 1) / 2;
    }
    for (;;) {
        int child = 2 * i + 1;
        if (child >= loop->timer_count)
            break;
        if (child + 1 < loop->timer_count &&
            loop->timers[child + 1]->deadline_ms < loop->timers[child]->deadline_ms)
            child++;
        if (loop->timers[child]->deadline_ms >= t->deadline_ms)
            break;
        pw_heap_place(loop, loop->timers[child], i);
        i = child;
    }
    pw_heap_place(loop, t, i);
}

void pw_loop_timer_arm(pw_loop_t *loop, pw_loop_timer_t *t, int64_t deadline_ms)
{
    t->deadline_ms = deadline_ms;
    if (!t->armed) {
        if (loop->timer_count == loop->timer_cap) {
            loop->timer_cap = loop->timer_cap ? loop->timer_cap * 2 : 64;
            loop->timers =
                pw_realloc(loop->timers, sizeof(*loop->timers) * (size_t)loop->timer_cap);
        }
        t->armed = true;
        pw_heap_place(loop, t, loop->timer_count++);
    }
    pw_heap_sift(loop, t->heap_index);
}

void pw_loop_timer_disarm(pw_loop_t *loop, pw_loop_timer_t *t)
{
    if (!t->armed)
        return;
    t->armed = false;
    pw_loop_timer_t *last = loop->timers[--loop->timer_count];
    if (last != t) {
        pw_heap_place(loop, last, t->heap_index);
        pw_heap_sift(loop, last->heap_index);
    }
}

/* Fires expired timers; a callback may arm or disarm any timer. */
static void pw_loop_fire_timers(pw_loop_t *loop)
{
    int64_t now = pw_mono_ms();
    while (loop->timer_count > 0 && loop->timers[0]->deadline_ms <= now) {
        pw_loop_timer_t *t = loop->timers[0];
        pw_loop_timer_disarm(loop, t);
        t->on_expiry(t->arg);
    }
}

static int pw_loop_timeout(pw_loop_t *loop)
{
    if (loop->timer_count == 0)
        return 1000; /* nothing due; wake-ups come through the eventfd */
    int64_t left = loop->timers[0]->deadline_ms - pw_mono_ms();
    return left <= 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

static void pw_loop_on_wakefd(void *arg, uint32_t revents)
{
    (void)revents;
    pw_loop_t *loop = arg;
    uint64_t count;
    while (read(loop->wakefd, &count, sizeof(count)) == -1 && errno == EINTR)
        ;
}

void pw_loop_at_exit(pw_loop_t *loop, void (*hook)(void *arg), void *arg)
{
    pw_exit_hook_t *h = pw_calloc(1, sizeof(*h));
    h->hook = hook;
    h->arg = arg;
    h->next = loop->exit_hooks;
    loop->exit_hooks = h;
}

/* ---- the loop ---- */

/* Runs every queued fiber once. */
static void pw_loop_run_fibers(pw_loop_t *loop)
{
    pthread_mutex_lock(&loop->lock);
    pw_fiber_t *batch = loop->run_head;
    loop->run_head = loop->run_tail = NULL;
    for (pw_fiber_t *f = batch; f; f = f->next_run) {
        f->queued = false;
        f->waiting = false;
    }
    pthread_mutex_unlock(&loop->lock);
    for (pw_fiber_t *f = batch, *next; f; f = next) {
        next = f->next_run;
        loop->current = f;
        pw_asan_switch_begin(&loop->asan_fake_stack, f->ctx.uc_stack.ss_sp,
                             f->ctx.uc_stack.ss_size);
        swapcontext(&loop->main_ctx, &f->ctx);
        pw_asan_switch_end(loop->asan_fake_stack, NULL, NULL);
        loop->current = NULL;
        if (f->finished) {
            munmap(f->mapping, f->mapping_size);
            free(f);
            pthread_mutex_lock(&loop->lock);
            loop->fibers--;
            pthread_mutex_unlock(&loop->lock);
        }
    }
}

static void *pw_loop_thread(void *arg)
{
    pw_loop_t *loop = arg;
    pw_loop_this_thread = loop;
    struct epoll_event events[64];
    for (;;) {
        atomic_store(&loop->last_turn_ms, pw_mono_ms());
        pw_loop_run_fibers(loop);
        atomic_store(&loop->last_turn_ms, pw_mono_ms()); /* the fibers let go */
        pthread_mutex_lock(&loop->lock);
        bool runnable = loop->run_head != NULL;
        if (!runnable && loop->joining && loop->fibers == 0) {
            pthread_mutex_unlock(&loop->lock);
            break;
        }
        loop->sleeping = !runnable;
        pthread_mutex_unlock(&loop->lock);

        int n = epoll_wait(loop->epfd, events, 64, runnable ? 0 : pw_loop_timeout(loop));
        pthread_mutex_lock(&loop->lock);
        loop->sleeping = false;
        pthread_mutex_unlock(&loop->lock);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            /* Looked up by fd: an earlier callback may have dropped it. */
            pw_loop_watch_t *w = fd < loop->watch_cap ? loop->watch_by_fd[fd] : NULL;
            if (w)
                w->on_ready(w->arg, events[i].events);
        }
        pw_loop_fire_timers(loop);
    }
    for (pw_exit_hook_t *h = loop->exit_hooks, *next; h; h = next) {
        next = h->next;
        h->hook(h->arg);
        free(h);
    }
    loop->exit_hooks = NULL;
    pw_loop_watch_set(loop, &loop->wake_watch, 0);
    pw_loop_this_thread = NULL;
    return NULL;
}

pw_loop_t *pw_loop_start(int index)
{
    pw_loop_t *loop = pw_calloc(1, sizeof(*loop));
    loop->index = index;
    atomic_init(&loop->last_turn_ms, pw_mono_ms());
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->epfd == -1 || loop->wakefd == -1)
        pw_abort("epoll_create1 or eventfd failed: out of file descriptors?");
    pthread_mutex_init(&loop->lock, NULL);
    loop->wake_watch =
        (pw_loop_watch_t){.fd = loop->wakefd, .on_ready = pw_loop_on_wakefd, .arg = loop};
    pw_loop_watch_set(loop, &loop->wake_watch, EPOLLIN);
    if (pthread_create(&loop->thread, NULL, pw_loop_thread, loop) != 0)
        pw_abort("cannot start a loop thread (pthread_create)");
    return loop;
}

void pw_loop_join(pw_loop_t *loop)
{
    if (!loop)
        return;
    pthread_mutex_lock(&loop->lock);
    loop->joining = true;
    pthread_mutex_unlock(&loop->lock);
    pw_loop_signal(loop);
    pthread_join(loop->thread, NULL);
    close(loop->epfd);
    close(loop->wakefd);
    free(loop->watch_by_fd);
    free(loop->timers);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

/* ---- sleeping ---- */

typedef struct {
    pw_loop_timer_t timer;
    pw_fiber_t *fiber;
    bool fired;
} pw_sleep_t;

static void pw_sleep_on_expiry(void *arg)
{
    pw_sleep_t *s = arg;
    s->fired = true;
    pw_fiber_wake(s->fiber);
}

void pw_sleep_ms(long ms)
{
    pw_fiber_t *f = pw_fiber_current();
    if (!f) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
        return;
    }
    pw_sleep_t s = {.timer = {.on_expiry = pw_sleep_on_expiry}, .fiber = f};
    s.timer.arg = &s;
    pw_loop_timer_arm(f->loop, &s.timer, pw_mono_ms() + ms);
    while (!s.fired)
        pw_fiber_wait();
}

typedef struct {
    void (*fn)(void *arg);
    void *arg;
    pw_fiber_t *fiber;
    atomic_bool done;
} pw_offload_t;

static void *pw_offload_thread(void *arg)
{
    pw_offload_t *o = arg;
    o->fn(o->arg);
    atomic_store(&o->done, true);
    pw_fiber_wake(o->fiber);
    return NULL;
}

void pw_fiber_offload(void (*fn)(void *arg), void *arg)
{
    pw_fiber_t *f = pw_fiber_current();
    pw_offload_t o = {.fn = fn, .arg = arg, .fiber = f};
    pthread_t thread;
    if (!f || pthread_create(&thread, NULL, pw_offload_thread, &o) != 0) {
        fn(arg);
        return;
    }
    while (!atomic_load(&o.done))
        pw_fiber_wait();
    pthread_join(thread, NULL); /* it is past o's last use, or about to be */
}
