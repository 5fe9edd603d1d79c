/* loop: level-triggered epoll. Level triggering plus masks recomputed from
 * buffer state gives backpressure for free: a socket we do not want to read
 * simply has no LOOP_IN registered. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

_Static_assert(LOOP_IN == EPOLLIN && LOOP_OUT == EPOLLOUT && LOOP_ERR == EPOLLERR &&
                   LOOP_HUP == EPOLLHUP,
               "LOOP_* bits are passed to epoll as they are");

uint64_t loop_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void loop_on_signalfd(loop_watch *w, uint32_t events)
{
    loop *l = w->ctx;
    (void)events;
    struct signalfd_siginfo si;
    while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (l->on_signal)
            l->on_signal(l, (int)si.ssi_signo, l->ctx);
    }
}

int loop_init(loop *l, uint32_t tick_ms) { return loop_init_signals(l, tick_ms, 1); }

int loop_init_signals(loop *l, uint32_t tick_ms, int signals)
{
    memset(l, 0, sizeof *l);
    l->sigfd = -1;
    l->tick_ms = tick_ms;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return -1;

    /* A peer closing mid-write must surface as EPIPE, never kill us. */
    signal(SIGPIPE, SIG_IGN);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        goto fail;
    if (!signals)
        goto done;
    l->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (l->sigfd < 0)
        goto fail;
    l->sig_watch.fd = l->sigfd;
    l->sig_watch.fn = loop_on_signalfd;
    l->sig_watch.ctx = l;
    if (loop_watch_set(l, &l->sig_watch, LOOP_IN) < 0)
        goto fail;
done:
    l->now_ms = loop_monotonic_ms();
    l->next_tick_ms = l->now_ms + tick_ms;
    return 0;
fail:
    loop_close(l);
    return -1;
}

void loop_close(loop *l)
{
    if (l->sigfd >= 0)
        close(l->sigfd);
    if (l->epfd >= 0)
        close(l->epfd);
    l->sigfd = l->epfd = -1;
}

int loop_watch_set(loop *l, loop_watch *w, uint32_t mask)
{
    if (w->fd < 0 || (w->registered && w->mask == mask))
        return 0;
    if (w->exclusive) {
        if (w->registered)
            loop_watch_remove(l, w);
        if (!mask)
            return 0;   /* an exclusive watch with no interest is simply off */
        struct epoll_event ev = { .events = mask | EPOLLEXCLUSIVE, .data.ptr = w };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
            return -1;
        w->mask = mask;
        w->registered = 1;
        return 0;
    }
    struct epoll_event ev = { .events = mask, .data.ptr = w };
    int op = w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(l->epfd, op, w->fd, &ev) < 0)
        return -1;
    w->mask = mask;
    w->registered = 1;
    return 0;
}

void loop_watch_remove(loop *l, loop_watch *w)
{
    if (w->fd >= 0 && w->registered)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->mask = 0;
    w->registered = 0;
}

void loop_stop(loop *l) { l->stop = 1; }

void loop_wake_at(loop *l, uint64_t at_ms)
{
    if (!l->wake_at_ms || at_ms < l->wake_at_ms)
        l->wake_at_ms = at_ms ? at_ms : 1;
}

int loop_run(loop *l)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    while (!l->stop) {
        l->now_ms = loop_monotonic_ms();
        uint64_t until = l->next_tick_ms;
        if (l->wake_at_ms && l->wake_at_ms < until)
            until = l->wake_at_ms;
        int timeout = until > l->now_ms ? (int)(until - l->now_ms) : 0;
        int n = epoll_wait(l->epfd, events, LOOP_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        l->now_ms = loop_monotonic_ms();
        for (int i = 0; i < n; i++) {
            loop_watch *w = events[i].data.ptr;
            /* A callback earlier in this batch may have removed it. */
            if (!w->registered)
                continue;
            w->fn(w, events[i].events);
        }
        if (l->now_ms >= l->next_tick_ms) {
            l->next_tick_ms = l->now_ms + l->tick_ms;
            if (l->on_tick)
                l->on_tick(l, l->ctx);
        }
        if (l->wake_at_ms && l->now_ms >= l->wake_at_ms) {
            l->wake_at_ms = 0;
            if (l->on_wake)
                l->on_wake(l, l->ctx);
        }
        if (l->after_batch)
            l->after_batch(l, l->ctx);
    }
    return 0;
}
