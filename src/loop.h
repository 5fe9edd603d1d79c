/* loop: an epoll wrapper, a periodic tick and signal delivery via signalfd.
 * It knows nothing about protocols: callers register watches with a callback
 * and recompute interest masks themselves. */
#ifndef TGF_LOOP_H
#define TGF_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef struct loop loop;
typedef struct loop_watch loop_watch;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...). */
typedef void (*loop_io_fn)(loop_watch *w, uint32_t events);

struct loop_watch {
    int fd;
    uint32_t mask;      /* interest currently registered; 0 = not registered */
    loop_io_fn fn;
    void *ctx;          /* owner; the callback finds its object through it */
};

typedef void (*loop_tick_fn)(loop *l, void *ctx);
typedef void (*loop_signal_fn)(loop *l, int signo, void *ctx);
/* Runs after every event batch: the place where closed objects are freed, so
 * none is freed while a later event of the same batch still points at it. */
typedef void (*loop_after_batch_fn)(loop *l, void *ctx);

struct loop {
    int epfd;
    int sigfd;
    loop_watch sig_watch;
    int stop;
    uint64_t now_ms;          /* monotonic clock, updated after each wait */
    uint32_t tick_ms;
    uint64_t next_tick_ms;
    loop_tick_fn on_tick;
    loop_signal_fn on_signal;
    loop_after_batch_fn after_batch;
    void *ctx;
};

/* Blocks SIGTERM, SIGINT and SIGHUP (delivered via signalfd) and ignores
 * SIGPIPE. Returns 0, or -1 with errno set. */
int loop_init(loop *l, uint32_t tick_ms);
void loop_close(loop *l);

/* Registers, changes or removes (mask 0) interest for a watch. Only issues a
 * syscall when the mask changes. Returns 0, or -1 with errno set. */
int loop_watch_set(loop *l, loop_watch *w, uint32_t mask);
/* Removes the watch from epoll (call before closing its fd). */
void loop_watch_remove(loop *l, loop_watch *w);

/* Runs until loop_stop. Returns 0, or -1 if epoll_wait fails hard. */
int loop_run(loop *l);
void loop_stop(loop *l);

uint64_t loop_monotonic_ms(void);

#endif
