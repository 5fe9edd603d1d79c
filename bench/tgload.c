/* tgload: the benchmark's load generator, sink and plain relay in one
 * static binary (built with the project: ./build.sh bench -> out/musl/tgload).
 *
 *   tgload sink --discard P --source P --echo P
 *       epoll server: discard reads everything; source writes random bytes
 *       until the peer goes; echo sends back every byte it reads (reading
 *       again only once the last read is written back). Used as the fake DC
 *       (it never needs to understand obfuscated2: the proxy's work does not
 *       depend on what the bytes mean) and as the fronting target.
 *   tgload relay --listen P --to P [--threads N]
 *       a plain byte relay, read/write with 64 KiB buffers (what socat -b
 *       65536 does), one epoll loop per thread on SO_REUSEPORT listeners.
 *   tgload run  --to P [--tls SECRET --dc N] --streams S --bytes B
 *               --dir up|down|both [--shape full|record|mix]
 *       S streams moving B payload bytes each, one epoll loop (both: each
 *       stream's upload comes back from an echo sink); a stream ends at
 *       the EOF after its FIN, and every byte received is counted. With --tls
 *       each stream does the FakeTLS handshake and the obfuscated2 frame,
 *       then sends TLS application-data records and counts the payload of
 *       the records it receives. Records carry random bytes, not the
 *       keystream's output: obfuscated2 has no integrity, so the proxy's
 *       work is the same and the generator stays cheap (its own CPU per GB
 *       is printed: the direct row is its ceiling).
 *   tgload hs   --to P [--tls SECRET --dc N] --conns N --parallel P
 *       connections one after another (P threads): connect, handshake,
 *       first byte from a source sink, close. Prints the rate and the
 *       first-byte latency percentiles.
 *   tgload aes --bytes B
 *       AES-256-CTR twice per byte with the daemon's crypto: the floor the
 *       issue's target adds to the plain relay's cost.
 *   tgload idle --to P [--tls SECRET --dc N] --conns N
 *       opens N relayed connections, prints "ready", holds them until stdin
 *       closes.
 * Output is one line of key=value pairs for bench/bench.py. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "secret.h"

#define WIRE_LEN (8u << 20)       /* upload pattern, cycled */
#define SRC_LEN (256u << 10)
#define RELAY_BUF (64u << 10)
#define MAX_STREAMS 20000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "tgload: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* xorshift: pattern sizes, not secrets. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 16);
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int listen_on(int port, int reuseport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0)
        die("bind/listen");
    nonblock(fd);
    return fd;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- sink ------------------------------------------------------------ */

enum { SINK_DISCARD = 0, SINK_SOURCE = 1, SINK_ECHO = 2 };
static uint8_t src_buf[SRC_LEN];

/* An echo connection's bytes read and not yet written back: buf[off..len).
 * It reads again only once they are all out, so the echo is bounded and
 * passes backpressure on. Indexed by descriptor. */
#define ECHO_BUF (256u << 10)
#define ECHO_FDS 65536
typedef struct {
    uint8_t *buf;
    size_t off, len;
    uint32_t mask;
} echo_conn;
static echo_conn *echo_of[ECHO_FDS];

/* One readiness event on an echo connection; 1 when it is finished. */
static int echo_io(int ep, int fd, uint32_t events)
{
    echo_conn *e = echo_of[fd];
    if (e->len == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t r = read(fd, e->buf, ECHO_BUF);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
        if (r > 0) {
            e->off = 0;
            e->len = (size_t)r;
        }
    }
    while (e->off < e->len) {
        ssize_t w = write(fd, e->buf + e->off, e->len - e->off);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (w <= 0)
            return 1;
        e->off += (size_t)w;
    }
    if (e->off == e->len)
        e->off = e->len = 0;
    uint32_t want = e->len ? EPOLLOUT : EPOLLIN;
    if (want != e->mask) {
        struct epoll_event ev = { .events = want,
                                  .data.u64 = (uint64_t)SINK_ECHO << 32 | (uint32_t)fd };
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        e->mask = want;
    }
    return 0;
}

static int cmd_sink(int argc, char **argv)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), lfd[3] = { -1, -1, -1 };
    for (int i = 1; i + 1 < argc; i += 2) {
        int kind = !strcmp(argv[i], "--discard") ? SINK_DISCARD
                   : !strcmp(argv[i], "--source") ? SINK_SOURCE : SINK_ECHO;
        lfd[kind] = listen_on(atoi(argv[i + 1]), 0);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)kind << 32 | 0x80000000u |
                                  (uint32_t)lfd[kind] };
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd[kind], &ev);
    }
    crypto_random(src_buf, sizeof src_buf);
    static uint8_t buf[1 << 18];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            int kind = (int)(d >> 32), fd = (int)(d & 0x7fffffffu);
            if (d & 0x80000000u) {
                for (;;) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break;
                    if (kind == SINK_ECHO) {
                        echo_conn *e = c < ECHO_FDS ? calloc(1, sizeof *e) : NULL;
                        if (e && !(e->buf = malloc(ECHO_BUF))) {
                            free(e);
                            e = NULL;
                        }
                        if (!e) {
                            close(c);
                            continue;
                        }
                        e->mask = EPOLLIN;
                        echo_of[c] = e;
                    }
                    uint32_t want = EPOLLIN | (kind == SINK_SOURCE ? EPOLLOUT : 0);
                    struct epoll_event ev = { .events = want,
                                              .data.u64 = (uint64_t)kind << 32 | (uint32_t)c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            int dead = 0;
            if (kind == SINK_ECHO) {
                if (echo_io(ep, fd, evs[i].events)) {
                    free(echo_of[fd]->buf);
                    free(echo_of[fd]);
                    echo_of[fd] = NULL;
                    close(fd);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                    dead = 1;
            }
            if (!dead && (evs[i].events & EPOLLOUT)) {
                ssize_t w = write(fd, src_buf + (rnd() % 4096), SRC_LEN - 4096);
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    dead = 1;
            }
            if (dead)
                close(fd);   /* also leaves epoll */
        }
    }
    return 0;
}

/* ---- relay ----------------------------------------------------------- */

typedef struct rside {
    int fd;
    uint8_t *buf;      /* bytes read from fd, waiting for the other side */
    size_t have, off;
    int eof, shut;
    uint32_t mask;     /* registered with epoll; changed only when it differs */
    struct rside *peer;
    struct rpair *pair;
} rside;

typedef struct rpair {
    rside a, b;
    int closed;
    struct rpair *next_dead;
} rpair;

/* Closed pairs are freed after the event batch: a later event of the same
 * batch may still name the other side. */
static _Thread_local rpair *relay_dead;

static void relay_mask(int ep, rside *s)
{
    uint32_t m = 0;
    if (!s->eof && s->have == 0)
        m |= EPOLLIN;
    if (s->peer->have > s->peer->off || (s->peer->eof && !s->shut))
        m |= EPOLLOUT;
    if (m == s->mask)
        return;
    s->mask = m;
    struct epoll_event ev = { .events = m, .data.ptr = s };
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void relay_io(int ep, rside *s, uint32_t events)
{
    rside *o = s->peer;
    if (s->pair->closed)
        return;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !s->eof && s->have == 0) {
        ssize_t r = read(s->fd, s->buf, RELAY_BUF);
        if (r > 0) {
            s->have = (size_t)r;
            s->off = 0;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            s->eof = 1;
        }
    }
    /* write what s read to o, and what o read to s */
    rside *pairs[2][2] = { { s, o }, { o, s } };
    for (int k = 0; k < 2; k++) {
        rside *from = pairs[k][0], *to = pairs[k][1];
        while (from->have > from->off) {
            ssize_t w = write(to->fd, from->buf + from->off, from->have - from->off);
            if (w <= 0)
                break;
            from->off += (size_t)w;
        }
        if (from->off == from->have)
            from->have = from->off = 0;
        if (from->eof && from->have == 0 && !to->shut) {
            shutdown(to->fd, SHUT_WR);
            to->shut = 1;
        }
    }
    if (s->shut && o->shut) {
        close(s->fd);
        close(o->fd);
        s->pair->closed = 1;
        s->pair->next_dead = relay_dead;
        relay_dead = s->pair;
        return;
    }
    relay_mask(ep, s);
    relay_mask(ep, o);
}

typedef struct {
    int listen_port, to_port;
} relay_args;

static void *relay_thread(void *arg)
{
    relay_args *ra = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC), lfd = listen_on(ra->listen_port, 1);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            rside *s = evs[i].data.ptr;
            if (s) {
                relay_io(ep, s, evs[i].events);
                continue;
            }
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            int t = dial(ra->to_port);
            nonblock(c);
            nonblock(t);
            rpair *p = calloc(1, sizeof *p);
            p->a = (rside){ .fd = c, .buf = malloc(RELAY_BUF), .mask = EPOLLIN, .peer = &p->b,
                            .pair = p };
            p->b = (rside){ .fd = t, .buf = malloc(RELAY_BUF), .mask = EPOLLIN, .peer = &p->a,
                            .pair = p };
            struct epoll_event ea = { .events = EPOLLIN, .data.ptr = &p->a };
            struct epoll_event eb = { .events = EPOLLIN, .data.ptr = &p->b };
            epoll_ctl(ep, EPOLL_CTL_ADD, c, &ea);
            epoll_ctl(ep, EPOLL_CTL_ADD, t, &eb);
        }
        while (relay_dead) {
            rpair *p = relay_dead;
            relay_dead = p->next_dead;
            free(p->a.buf);
            free(p->b.buf);
            free(p);
        }
    }
    return NULL;
}

static int cmd_relay(int argc, char **argv)
{
    relay_args ra = { 0, 0 };
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen"))
            ra.listen_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--to"))
            ra.to_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, relay_thread, &ra);
    }
    relay_thread(&ra);
    return 0;
}

/* ---- client: FakeTLS and obfuscated2 --------------------------------- */

static tg_secret secret;
static int use_tls, dc_num = 2;

static uint8_t *put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

/* A one-record ClientHello in tdlib's shape, signed with the secret. */
static size_t build_hello(uint8_t *rec)
{
    uint8_t *p = rec + 9, *ext_len_at, mac[32];
    static const uint16_t ciphers[] = { 0x5a5a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f };
    *p++ = 3;
    *p++ = 3;
    memset(p, 0, 32);
    p += 32;
    *p++ = 32;
    crypto_random(p, 32);
    p += 32;
    p = put16(p, sizeof ciphers);
    for (size_t i = 0; i < sizeof ciphers / 2; i++)
        p = put16(p, ciphers[i]);
    *p++ = 1;
    *p++ = 0;
    ext_len_at = p;
    p += 2;
    p = put16(p, 0x1a1a);
    p = put16(p, 0);
    size_t hl = secret.host_len;
    p = put16(p, 0);
    p = put16(p, hl + 5);
    p = put16(p, hl + 3);
    *p++ = 0;
    p = put16(p, hl);
    memcpy(p, secret.host, hl);
    p += hl;
    p = put16(p, 0x0010); p = put16(p, 5); p = put16(p, 3);
    *p++ = 2; *p++ = 'h'; *p++ = '2';
    p = put16(p, 0x0033); p = put16(p, 38); p = put16(p, 36);   /* key_share x25519 */
    p = put16(p, 0x001d); p = put16(p, 32);
    crypto_random(p, 32);
    p += 32;
    p = put16(p, 0x0015); p = put16(p, 200);                    /* padding */
    memset(p, 0, 200);
    p += 200;
    put16(ext_len_at, (size_t)(p - ext_len_at - 2));
    size_t total = (size_t)(p - rec), l = total - 9;
    rec[0] = 0x16; rec[1] = 3; rec[2] = 1;
    put16(rec + 3, total - 5);
    rec[5] = 1; rec[6] = (uint8_t)(l >> 16);
    put16(rec + 7, l);
    crypto_hmac_sha256(secret.key, 16, rec, total, mac);
    uint32_t ts = (uint32_t)time(NULL);
    mac[28] ^= (uint8_t)ts;
    mac[29] ^= (uint8_t)(ts >> 8);
    mac[30] ^= (uint8_t)(ts >> 16);
    mac[31] ^= (uint8_t)(ts >> 24);
    memcpy(rec + 11, mac, 32);
    return total;
}

/* Reads the ServerHello flight: handshake, CCS, one application-data
 * record. Returns 0, or -1. */
static int read_server_flight(int fd)
{
    uint8_t hdr[5], body[16384 + 256];
    for (int seen_app = 0; !seen_app;) {
        if (read_all(fd, hdr, 5) < 0)
            return -1;
        size_t n = (size_t)hdr[3] << 8 | hdr[4];
        if (n > sizeof body || read_all(fd, body, n) < 0)
            return -1;
        seen_app = hdr[0] == 0x17;
    }
    return 0;
}

/* CCS + a record with the obfuscated2 init frame, as tdlib sends them. */
static size_t build_obfs2(uint8_t *out)
{
    uint8_t frame[64], k[48];
    do
        crypto_random(frame, sizeof frame);
    while (frame[0] == 0xef || !memcmp(frame, "\x16\x03\x01\x02", 4) ||
           !memcmp(frame + 4, "\0\0\0\0", 4) || !memcmp(frame, "\xdd\xdd\xdd\xdd", 4) ||
           !memcmp(frame, "\xee\xee\xee\xee", 4) || !memcmp(frame, "HEAD", 4) ||
           !memcmp(frame, "POST", 4) || !memcmp(frame, "GET ", 4) || !memcmp(frame, "OPTI", 4));
    memset(frame + 56, 0xdd, 4);
    frame[60] = (uint8_t)dc_num;
    frame[61] = (uint8_t)(dc_num >> 8);
    memcpy(k, frame + 8, 32);
    memcpy(k + 32, secret.key, 16);
    uint8_t key[32], enc[64];
    crypto_sha256(k, 48, key);
    crypto_ctr c;
    crypto_ctr_init(&c, key, frame + 40);
    memcpy(enc, frame, 64);
    crypto_ctr_apply(&c, enc, 64);
    memcpy(enc, frame, 56);
    static const uint8_t ccs[] = { 0x14, 0x03, 0x03, 0x00, 0x01, 0x01 };
    memcpy(out, ccs, 6);
    out[6] = 0x17; out[7] = 3; out[8] = 3;
    put16(out + 9, 64);
    memcpy(out + 11, enc, 64);
    return 75;
}

/* A connection ready to relay: the handshake done (with --tls). */
static int open_stream(int port)
{
    int fd = dial(port);
    if (!use_tls)
        return fd;
    uint8_t hello[1024], ob[80];
    size_t hl = build_hello(hello);
    if (write_all(fd, hello, hl) < 0 || read_server_flight(fd) < 0)
        return -1;
    size_t ol = build_obfs2(ob);
    if (write_all(fd, ob, ol) < 0)
        return -1;
    return fd;
}

/* ---- run: throughput ------------------------------------------------- */

static uint8_t wire[WIRE_LEN + 65536];
static size_t wire_len;           /* ends at a record boundary */
static uint64_t wire_payload;     /* payload bytes in wire[0..wire_len) */
static uint32_t write_sizes[4096];
enum { SHAPE_FULL, SHAPE_RECORD, SHAPE_MIX };
static int shape = SHAPE_FULL;

static size_t mix_record_size(void)
{
    uint32_t r = rnd() % 100;
    if (r < 45)
        return 16384;
    if (r < 70)
        return 1024 + rnd() % 3072;
    if (r < 90)
        return 64 + rnd() % 960;
    return 1 + rnd() % 64;
}

/* Builds the upload pattern: TLS records (with --tls) or raw bytes, and
 * the write sizes: 64 KiB (full), one record per write (record), or
 * log-uniform 1 B .. 64 KiB (mix), splitting records anywhere. */
static void build_wire(void)
{
    crypto_random(wire, sizeof wire);
    if (use_tls) {
        size_t off = 0;
        wire_payload = 0;
        for (;;) {
            size_t n = shape == SHAPE_MIX ? mix_record_size() : 16384;
            if (off + 5 + n > WIRE_LEN)
                break;
            wire[off] = 0x17; wire[off + 1] = 3; wire[off + 2] = 3;
            put16(wire + off + 3, n);
            off += 5 + n;
            wire_payload += n;
        }
        wire_len = off;
    } else {
        wire_len = WIRE_LEN;
        wire_payload = WIRE_LEN;
    }
    for (size_t i = 0; i < sizeof write_sizes / sizeof write_sizes[0]; i++) {
        if (shape == SHAPE_MIX) {
            double e = (double)(rnd() % 1000) / 1000.0 * 16.0;   /* 2^0 .. 2^16 */
            uint32_t v = (uint32_t)(1u << (unsigned)e);
            write_sizes[i] = v + rnd() % v;
            if (write_sizes[i] > 65536)
                write_sizes[i] = 65536;
        } else if (shape == SHAPE_RECORD && use_tls) {
            write_sizes[i] = 16384 + 5;
        } else {
            write_sizes[i] = 65536;
        }
    }
}

typedef struct {
    int fd;
    uint64_t up_left;       /* wire bytes still to send */
    size_t wire_off;
    uint32_t wi;            /* index into write_sizes */
    uint64_t down_want;     /* payload bytes to receive at least */
    uint64_t down_got;      /* payload bytes received */
    uint8_t hdr[5];
    int hdr_have;
    uint32_t rec_left;
    int up_done, shut, eof;
} stream;

/* Counts received payload: whole bytes (raw) or record payloads (tls). */
static uint64_t count_payload(stream *s, const uint8_t *p, size_t n)
{
    if (!use_tls)
        return n;
    uint64_t got = 0;
    while (n) {
        if (s->rec_left) {
            size_t k = n < s->rec_left ? n : s->rec_left;
            got += k;
            s->rec_left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        s->hdr[s->hdr_have++] = *p++;
        n--;
        if (s->hdr_have == 5) {
            s->rec_left = (uint32_t)s->hdr[3] << 8 | s->hdr[4];
            s->hdr_have = 0;
        }
    }
    return got;
}

/* A stream sends its FIN once it has sent its bytes (up, both) or
 * received its count (down), and ends at the EOF that follows: the sink
 * closes when it reads our FIN (echo: once it has sent back all it read),
 * so every byte the proxy moved reaches us and is counted, including what
 * a source sink sent past the count. Both ways the sink echoes: each byte
 * crosses the proxy once each way. (A source sink sending on after the
 * count, and a close with unread bytes, once had the proxy move bytes
 * nobody counted: at 64 mixed streams both ways, up to four times the
 * count.) */
static int cmd_run(int port, int streams, uint64_t bytes, const char *dir)
{
    int up = strcmp(dir, "down") != 0, down = strcmp(dir, "up") != 0;
    build_wire();
    uint64_t cycles = (bytes + wire_payload - 1) / wire_payload;
    stream *ss = calloc((size_t)streams, sizeof *ss);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < streams; i++) {
        int fd = open_stream(port);
        if (fd < 0)
            die("handshake");
        nonblock(fd);
        ss[i].fd = fd;
        ss[i].up_left = up ? cycles * wire_len : 0;
        ss[i].up_done = !up;
        ss[i].down_want = !down ? 0 : up ? cycles * wire_payload : bytes;
        ss[i].wi = (uint32_t)(rnd() % 4096);
    }
    static uint8_t buf[1 << 18];
    double cpu0 = self_cpu_s(), t0 = now_s();
    for (int i = 0; i < streams; i++) {
        struct epoll_event ev = { .events = EPOLLIN | (up ? EPOLLOUT : 0), .data.ptr = &ss[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev);
    }
    int left = streams;
    uint64_t moved = 0;
    struct epoll_event evs[256];
    while (left > 0) {
        int n = epoll_wait(ep, evs, 256, 30000);
        if (n == 0) {
            fprintf(stderr, "tgload: stalled for 30 s with %d streams left\n", left);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            stream *s = evs[i].data.ptr;
            if (s->eof)
                continue;
            if ((evs[i].events & EPOLLOUT) && !s->up_done) {
                size_t want = write_sizes[s->wi++ % 4096];
                if (want > s->up_left)
                    want = (size_t)s->up_left;
                if (s->wire_off + want > wire_len)
                    want = wire_len - s->wire_off;
                ssize_t w = write(s->fd, wire + s->wire_off, want);
                if (w > 0) {
                    s->up_left -= (uint64_t)w;
                    s->wire_off = (s->wire_off + (size_t)w) % wire_len;
                    if (s->up_left == 0) {
                        s->up_done = 1;
                        moved += cycles * wire_payload;
                        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
                        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                    }
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    die("write");
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(s->fd, buf, sizeof buf);
                if (r > 0) {
                    s->down_got += count_payload(s, buf, (size_t)r);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (!s->up_done || s->down_got < s->down_want) {
                        fprintf(stderr, "tgload: stream closed early\n");
                        return 1;
                    }
                    moved += s->down_got;
                    s->eof = 1;
                }
            }
            if (!s->shut && s->up_done && s->down_got >= (up ? 0 : s->down_want)) {
                shutdown(s->fd, SHUT_WR);
                s->shut = 1;
            }
            if (s->eof) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                close(s->fd);
                s->fd = -1;
                left--;
            }
        }
    }
    double dt = now_s() - t0, cpu = self_cpu_s() - cpu0;
    printf("bytes=%llu secs=%.4f mbps=%.1f gen_cpu_per_gb=%.3f\n", (unsigned long long)moved, dt,
           (double)moved / dt / 1e6, cpu / ((double)moved / 1e9));
    return 0;
}

/* ---- hs: handshakes and first-byte latency --------------------------- */

typedef struct {
    int port, conns;
    double *lat;
    int failed;
} hs_args;

static void *hs_thread(void *arg)
{
    hs_args *a = arg;
    uint8_t b[4096];
    for (int i = 0; i < a->conns; i++) {
        double t0 = now_s();
        int fd = open_stream(a->port);
        if (fd < 0) {
            a->failed++;
            a->lat[i] = -1;
            continue;
        }
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        ssize_t r = poll(&pf, 1, 5000) == 1 ? read(fd, b, sizeof b) : -1;
        a->lat[i] = r > 0 ? now_s() - t0 : -1;
        if (r <= 0)
            a->failed++;
        close(fd);
    }
    return NULL;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int cmd_hs(int port, int conns, int parallel)
{
    hs_args *as = calloc((size_t)parallel, sizeof *as);
    pthread_t *ts = calloc((size_t)parallel, sizeof *ts);
    double *lat = calloc((size_t)conns, sizeof *lat);
    int per = conns / parallel;
    double t0 = now_s();
    for (int i = 0; i < parallel; i++) {
        as[i] = (hs_args){ port, per, lat + i * per, 0 };
        pthread_create(&ts[i], NULL, hs_thread, &as[i]);
    }
    int failed = 0;
    for (int i = 0; i < parallel; i++) {
        pthread_join(ts[i], NULL);
        failed += as[i].failed;
    }
    double dt = now_s() - t0;
    int n = per * parallel, ok = 0;
    for (int i = 0; i < n; i++)
        if (lat[i] >= 0)
            lat[ok++] = lat[i];
    qsort(lat, (size_t)ok, sizeof *lat, cmp_double);
    double p50 = ok ? lat[ok / 2] : 0, p99 = ok ? lat[(ok * 99) / 100] : 0;
    printf("conns=%d failed=%d secs=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f\n", n, failed, dt,
           (double)ok / dt, p50 * 1e3, p99 * 1e3);
    return 0;
}

/* ---- idle ------------------------------------------------------------ */

static int cmd_idle(int port, int conns)
{
    int *fds = calloc((size_t)conns, sizeof *fds);
    for (int i = 0; i < conns; i++)
        if ((fds[i] = open_stream(port)) < 0)
            die("idle handshake");
    printf("ready %d\n", conns);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    for (int i = 0; i < conns; i++)
        close(fds[i]);
    return 0;
}

/* ---- aes: the crypto floor ------------------------------------------- */

/* AES-256-CTR twice over every byte (what a relay direction costs in
 * crypto: decrypt from one side, encrypt to the other), with the daemon's
 * own crypto_ctr, in 16 KiB pieces. */
static int cmd_aes(uint64_t bytes)
{
    static uint8_t buf[16384];
    uint8_t key[32], iv[16];
    crypto_random(key, sizeof key);
    crypto_random(iv, sizeof iv);
    crypto_ctr a, b;
    crypto_ctr_init(&a, key, iv);
    crypto_ctr_init(&b, iv[0] ? key : iv, iv);
    double cpu0 = self_cpu_s();
    for (uint64_t done = 0; done < bytes; done += sizeof buf) {
        crypto_ctr_apply(&a, buf, sizeof buf);
        crypto_ctr_apply(&b, buf, sizeof buf);
    }
    double cpu = self_cpu_s() - cpu0;
    printf("bytes=%llu aes_twice_cpu_per_gb=%.3f impl=%s\n", (unsigned long long)bytes,
           cpu / ((double)bytes / 1e9), crypto_aes_impl());
    return 0;
}

/* ---- main ------------------------------------------------------------ */

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: tgload sink|relay|run|hs|idle ... (see bench/tgload.c)\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "sink"))
        return cmd_sink(argc - 1, argv + 1);
    if (!strcmp(cmd, "relay"))
        return cmd_relay(argc - 1, argv + 1);
    int port = 0, streams = 1, conns = 100, parallel = 1;
    uint64_t bytes = 64u << 20;
    const char *dir = "up";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--to"))
            port = atoi(v);
        else if (!strcmp(k, "--tls")) {
            if (secret_parse(v, strlen(v), &secret) != SECRET_OK) {
                fprintf(stderr, "tgload: bad secret\n");
                return 2;
            }
            use_tls = 1;
        } else if (!strcmp(k, "--dc"))
            dc_num = atoi(v);
        else if (!strcmp(k, "--streams"))
            streams = atoi(v);
        else if (!strcmp(k, "--bytes"))
            bytes = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--dir"))
            dir = v;
        else if (!strcmp(k, "--shape"))
            shape = !strcmp(v, "mix") ? SHAPE_MIX : !strcmp(v, "record") ? SHAPE_RECORD : SHAPE_FULL;
        else if (!strcmp(k, "--conns"))
            conns = atoi(v);
        else if (!strcmp(k, "--parallel"))
            parallel = atoi(v);
    }
    if (streams < 1 || streams > MAX_STREAMS || parallel < 1 || conns < parallel || !bytes) {
        fprintf(stderr, "tgload: bad counts\n");
        return 2;
    }
    if (!strcmp(cmd, "run"))
        return cmd_run(port, streams, bytes, dir);
    if (!strcmp(cmd, "hs"))
        return cmd_hs(port, conns, parallel);
    if (!strcmp(cmd, "aes"))
        return cmd_aes(bytes);
    if (!strcmp(cmd, "idle"))
        return cmd_idle(port, conns);
    fprintf(stderr, "tgload: unknown command %s\n", cmd);
    return 2;
}
