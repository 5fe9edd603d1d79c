/* loop: an epoll wrapper, a periodic tick and signal delivery via signalfd.
 * It knows nothing about protocols: callers register watches with a callback
 * and recompute interest masks themselves. */
#ifndef TGF_LOOP_H
#define TGF_LOOP_H

#include <stdint.h>

typedef struct loop loop;
typedef struct loop_watch loop_watch;

/* Interest and event bits; callers never see epoll's own names. A watch
 * registered with no interest still reports LOOP_ERR and LOOP_HUP, which is
 * how a reset arrives while neither direction is wanted. */
#define LOOP_IN  0x001u    /* equal to epoll's bits: loop.c checks */
#define LOOP_OUT 0x004u
#define LOOP_ERR 0x008u
#define LOOP_HUP 0x010u

/* Called with the events that fired (LOOP_* bits). */
typedef void (*loop_io_fn)(loop_watch *w, uint32_t events);

struct loop_watch {
    int fd;
    uint32_t mask;      /* interest currently registered */
    unsigned registered : 1;
    /* A listener several loops share: registered with EPOLLEXCLUSIVE, so a
     * new connection wakes one of them, not all (no thundering herd). Such
     * a watch is removed and added again to change interest (epoll refuses
     * EPOLL_CTL_MOD on it). Set before the first loop_watch_set. */
    unsigned exclusive : 1;
    loop_io_fn fn;
    void *ctx;          /* owner; the callback finds its object through it */
};

typedef void (*loop_tick_fn)(loop *l, void *ctx);
typedef void (*loop_signal_fn)(loop *l, int signo, void *ctx);
/* Runs after every event batch: the place where closed objects are freed, so
 * none is freed while a later event of the same batch still points at it. */
typedef void (*loop_after_batch_fn)(loop *l, void *ctx);
/* Runs once the time asked for with loop_wake_at has come. */
typedef void (*loop_wake_fn)(loop *l, void *ctx);

struct loop {
    int epfd;
    int sigfd;
    loop_watch sig_watch;
    int stop;
    uint64_t now_ms;          /* monotonic clock, updated after each wait */
    uint32_t tick_ms;
    uint64_t next_tick_ms;
    uint64_t wake_at_ms;      /* 0 = no early wake asked for */
    loop_tick_fn on_tick;
    loop_wake_fn on_wake;
    loop_signal_fn on_signal;
    loop_after_batch_fn after_batch;
    void *ctx;
};

/* Blocks SIGTERM, SIGINT and SIGHUP (delivered via signalfd) and ignores
 * SIGPIPE. Returns 0, or -1 with errno set. */
int loop_init(loop *l, uint32_t tick_ms);
/* As loop_init, but with signals = 0 the loop opens no signalfd: one loop
 * (worker 0) hears the process's signals and tells the others. Signals
 * are blocked in the calling thread either way, so threads it starts
 * later inherit the mask. */
int loop_init_signals(loop *l, uint32_t tick_ms, int signals);
void loop_close(loop *l);

/* Registers the watch or changes its interest (LOOP_IN | LOOP_OUT, or 0 to
 * hear only errors and hangups). Only issues a syscall when something
 * changes. Returns 0, or -1 with errno set. */
int loop_watch_set(loop *l, loop_watch *w, uint32_t mask);
/* Removes the watch from epoll (call before closing its fd, or once a
 * socket has nothing more to report). */
void loop_watch_remove(loop *l, loop_watch *w);

/* Runs until loop_stop. Returns 0, or -1 if epoll_wait fails hard. */
int loop_run(loop *l);
/* Asks for on_wake at (or soon after) at_ms, before the next tick if that
 * is earlier: for the few waits shorter than a tick. */
void loop_wake_at(loop *l, uint64_t at_ms);
void loop_stop(loop *l);

uint64_t loop_monotonic_ms(void);

#endif
