/* site_probe: probing the fronted site's TLS answer (header says why and
 * when). Blocking sockets with poll timeouts, in the prober's own thread. */
#include "site_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "mlkem_shape.h"
#include "netutil.h"
#include "proxyproto.h"

#define PROBE_TIMEOUT_MS 3000
/* Go writes its whole first flight at once; once a record has arrived,
 * this much silence means the flight is over. */
#define PROBE_QUIET_MS 150
#define PROBE_BUF (64 * 1024)
/* Nothing learned yet: the next tries come after 2, 4, 8 ... s (at most
 * the check interval). */
#define RETRY_FIRST_MS 2000
#define HELLO_MAX 4096

/* ---- the probe hello: tdlib's (td/mtproto/TlsInit.cpp), both vintages.
 * Extensions that change nothing in a server's answer without them being
 * configured (ECH, whose outer form a server without ECH keys ignores) are
 * left out; everything that does (ALPN, groups, key shares, signature
 * algorithms, status_request, SCT) is as tdlib sends it. */

typedef struct {
    uint8_t *p, *end;
    int fail;
} wbuf;

static void put(wbuf *w, const void *data, size_t n)
{
    if (w->fail || (size_t)(w->end - w->p) < n) {
        w->fail = 1;
        return;
    }
    memcpy(w->p, data, n);
    w->p += n;
}

static void put16(wbuf *w, size_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    put(w, b, 2);
}

static uint8_t *open16(wbuf *w)
{
    uint8_t *at = w->p;
    put16(w, 0);
    return at;
}

static void close16(wbuf *w, uint8_t *at)
{
    if (w->fail)
        return;
    size_t n = (size_t)(w->p - at - 2);
    at[0] = (uint8_t)(n >> 8);
    at[1] = (uint8_t)n;
}

static void put_hex(wbuf *w, const char *hex)
{
    while (hex[0] && hex[1]) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        uint8_t b = (uint8_t)v;
        put(w, &b, 1);
        hex += 2;
    }
}

static int put_x25519(wbuf *w)
{
    uint8_t scalar[32], pub[32];
    if (crypto_random(scalar, sizeof scalar) < 0)
        return -1;
    crypto_x25519_public(scalar, pub);
    crypto_wipe(scalar, sizeof scalar);
    put(w, pub, sizeof pub);
    return 0;
}

size_t site_probe_hello(site_shape shape, const char *sni, uint8_t *out, size_t cap)
{
    uint8_t grease[7], rnd[64];
    wbuf w = { out, out + cap, 0 };
    size_t sni_len = strlen(sni);
    if (crypto_random(grease, sizeof grease) < 0 || crypto_random(rnd, sizeof rnd) < 0)
        return 0;
    for (size_t i = 0; i < sizeof grease; i++)
        grease[i] = (uint8_t)((grease[i] & 0xf0) | 0x0a);
    for (size_t i = 1; i < sizeof grease; i += 2)
        if (grease[i] == grease[i - 1])
            grease[i] ^= 0x10;
#define GREASE(i) put16(&w, (size_t)grease[i] << 8 | grease[i])

    put_hex(&w, "160301");
    uint8_t *rec = open16(&w);
    put_hex(&w, "01");
    uint8_t *hs24 = w.p;
    put_hex(&w, "000000");
    put_hex(&w, "0303");
    put(&w, rnd, 32);
    put_hex(&w, "20");
    put(&w, rnd + 32, 32);
    put_hex(&w, "0020");
    GREASE(0);
    put_hex(&w, "130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f0035" "0100");
    uint8_t *exts = open16(&w);
    GREASE(2);
    put_hex(&w, "0000");
    /* server_name */
    put_hex(&w, "0000");
    uint8_t *e = open16(&w), *l = open16(&w);
    put_hex(&w, "00");
    put16(&w, sni_len);
    put(&w, sni, sni_len);
    close16(&w, l);
    close16(&w, e);
    put_hex(&w, "000500050100000000");                    /* status_request */
    if (shape == SITE_SHAPE_MLKEM) {
        put_hex(&w, "000a000c000a");
        GREASE(4);
        put_hex(&w, "11ec001d00170018");
    } else {
        put_hex(&w, "000a000a0008");
        GREASE(4);
        put_hex(&w, "001d00170018");
    }
    put_hex(&w, "000b00020100");                          /* ec_point_formats */
    put_hex(&w, "000d0012001004030804040105030805050108060601");
    put_hex(&w, "0010000e000c02683208687474702f312e31");  /* ALPN h2, http/1.1 */
    put_hex(&w, "00120000" "00170000" "001b0003020002" "00230000");
    put_hex(&w, "002b000706");
    GREASE(6);
    put_hex(&w, "03040303" "002d00020101");
    put_hex(&w, "0033");
    e = open16(&w);
    l = open16(&w);
    GREASE(4);
    put_hex(&w, "000100");
    if (shape == SITE_SHAPE_MLKEM) {
        uint8_t ek[MLKEM768_EK_LEN];
        put_hex(&w, "11ec04c0");
        /* The hybrid share is the ML-KEM key, then an X25519 key. */
        if (mlkem_shape_ek(ek) < 0)
            return 0;
        put(&w, ek, sizeof ek);
        if (put_x25519(&w) < 0)
            return 0;
    }
    put_hex(&w, "001d0020");
    if (put_x25519(&w) < 0)
        return 0;
    close16(&w, l);
    close16(&w, e);
    /* application_settings (ALPS), new and old code point */
    put_hex(&w, shape == SITE_SHAPE_MLKEM ? "44cd00050003026832" : "446900050003026832");
    put_hex(&w, "ff01000100");
    GREASE(3);
    put_hex(&w, "000100");
    /* tdlib pads a hello shorter than 513 bytes to exactly 517. */
    size_t sofar = (size_t)(w.p - out);
    if (!w.fail && sofar < 513) {
        size_t pad = 517 - sofar - 4;
        put_hex(&w, "0015");
        put16(&w, pad);
        for (size_t i = 0; i < pad; i++)
            put(&w, "", 1);
    }
    close16(&w, exts);
    close16(&w, rec);
    if (w.fail)
        return 0;
    size_t hs = (size_t)(w.p - hs24 - 3);
    hs24[0] = (uint8_t)(hs >> 16);
    hs24[1] = (uint8_t)(hs >> 8);
    hs24[2] = (uint8_t)hs;
#undef GREASE
    return (size_t)(w.p - out);
}

/* ---- one probe ---- */

void site_target_init(site_target *t, const tgf_config *cfg, const dc_addr *addrs, size_t n)
{
    memset(t, 0, sizeof *t);
    snprintf(t->host, sizeof t->host, "%s", cfg->secret.host);
    t->proxy_protocol = cfg->fronting_proxy_protocol;
    t->count = n < SITE_PROBE_MAX_ADDRS ? n : SITE_PROBE_MAX_ADDRS;
    memcpy(t->addrs, addrs, t->count * sizeof *addrs);
    t->timeout_ms = PROBE_TIMEOUT_MS;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for events on fd (and the stop descriptor, when >= 0) until
 * deadline. Returns 1 ready, 0 timeout, -1 stopped or failed. */
static int wait_fd(int fd, short ev, int stop_fd, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p[2] = { { fd, ev, 0 }, { stop_fd, POLLIN, 0 } };
        int n = poll(p, stop_fd >= 0 ? 2 : 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (stop_fd >= 0 && p[1].revents))
            return -1;
        if (n > 0)
            return 1;
    }
}

static int send_all(int fd, const uint8_t *b, size_t n, int stop_fd, uint64_t deadline)
{
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, stop_fd, deadline) != 1)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

static int connect_target(const site_target *t, int stop_fd, uint64_t deadline, char *err,
                          size_t err_cap)
{
    snprintf(err, err_cap, "cannot connect to the fronting target");
    for (size_t i = 0; i < t->count; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&t->addrs[i].addr;
        int fd = net_connect_start(sa, t->addrs[i].len);
        if (fd < 0)
            continue;
        if (wait_fd(fd, POLLOUT, stop_fd, deadline) == 1 && net_connect_error(fd) == 0)
            return fd;
        close(fd);
    }
    if (t->count == 0)
        snprintf(err, err_cap, "no fronting address");
    return -1;
}

static int probe_with_stop(const site_target *t, site_shape shape, site_flight *out, int stop_fd,
                           char *err, size_t err_cap)
{
    uint8_t hello[HELLO_MAX];
    uint64_t deadline = mono_ms() + t->timeout_ms;
    size_t hlen = site_probe_hello(shape, t->host, hello, sizeof hello);
    if (hlen == 0) {
        snprintf(err, err_cap, "cannot build the probe hello");
        return -1;
    }
    snprintf(err, err_cap, "the site's answer ended early or timed out");
    /* A probe runs a few times an hour: its buffer is taken for it. */
    uint8_t *buf = malloc(PROBE_BUF);
    if (!buf) {
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    int fd = connect_target(t, stop_fd, deadline, err, err_cap);
    if (fd < 0) {
        free(buf);
        return -1;
    }
    int rc = -1;
    if (t->proxy_protocol) {
        struct sockaddr_storage self, peer;
        socklen_t sl = sizeof self, pl = sizeof peer;
        uint8_t hdr[PROXYPROTO_V2_MAX_LEN];
        size_t n = 0;
        if (getsockname(fd, (struct sockaddr *)&self, &sl) == 0 &&
            getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
            n = proxyproto_v2_build(hdr, sizeof hdr, (struct sockaddr *)&self,
                                    (struct sockaddr *)&peer);
        if (n == 0 || send_all(fd, hdr, n, stop_fd, deadline) < 0)
            goto out;
    }
    if (send_all(fd, hello, hlen, stop_fd, deadline) < 0)
        goto out;
    size_t have = 0;
    site_flight_result r = SITE_FLIGHT_NEED_MORE;
    for (;;) {
        uint64_t until = deadline;
        if (r == SITE_FLIGHT_OK && mono_ms() + PROBE_QUIET_MS < until)
            until = mono_ms() + PROBE_QUIET_MS;
        int w = wait_fd(fd, POLLIN, stop_fd, until);
        if (w < 0)
            goto out;
        if (w == 0)
            break;   /* quiet (done if r is OK) or out of time */
        ssize_t n = recv(fd, buf + have, PROBE_BUF - have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        const char *why = NULL;
        r = site_flight_parse(buf, have, out, &why);
        if (r == SITE_FLIGHT_REJECT) {
            snprintf(err, err_cap, "%s", why ? why : "unusable answer");
            goto out;
        }
        if (have == PROBE_BUF)
            break;
    }
    if (r == SITE_FLIGHT_OK)
        rc = 0;
out:
    close(fd);   /* the site logs a handshake that ended: nothing at info level */
    free(buf);
    return rc;
}

int site_probe_once(const site_target *t, site_shape shape, site_flight *out, char *err,
                    size_t err_cap)
{
    return probe_with_stop(t, shape, out, -1, err, err_cap);
}

static int refresh_with_stop(const site_target *t, site_answer answers[SITE_SHAPES],
                             int learned[SITE_SHAPES], int stop_fd, char *err, size_t err_cap)
{
    int got = 0;
    for (int s = 0; s < SITE_SHAPES; s++) {
        site_flight f[SITE_PROBES_PER_SHAPE];
        size_t n = 0;
        const char *why = NULL;
        learned[s] = 0;
        for (int i = 0; i < SITE_PROBES_PER_SHAPE; i++)
            if (probe_with_stop(t, (site_shape)s, &f[n], stop_fd, err, err_cap) == 0)
                n++;
        if (n == 0)
            continue;
        if (site_answer_learn(f, n, &answers[s], &why) < 0) {
            snprintf(err, err_cap, "%s", why);
            continue;
        }
        learned[s] = 1;
        got++;
    }
    return got;
}

int site_probe_refresh(const site_target *t, site_answer answers[SITE_SHAPES],
                       int learned[SITE_SHAPES], char *err, size_t err_cap)
{
    return refresh_with_stop(t, answers, learned, -1, err, err_cap);
}

/* ---- the prober thread ---- */

static void log_answers(const site_answer *a, const int *learned)
{
    for (int s = 0; s < SITE_SHAPES; s++) {
        char d[256];
        if (!learned[s])
            continue;
        site_answer_describe(&a[s], d, sizeof d);
        log_info("site", "%s hello: the site answers %s", site_shape_name((site_shape)s), d);
    }
}

/* A refresh; logs a failure only when the previous one succeeded.
 * Returns the number of hello kinds learned. */
static int do_refresh(site_prober *p, int *failing)
{
    site_answer a[SITE_SHAPES];
    int learned[SITE_SHAPES];
    char err[200] = "";
    int got = refresh_with_stop(&p->target, a, learned, p->stop_fd[0], err, sizeof err);
    if (got > 0) {
        site_store_update(p->store, a, learned, (int64_t)time(NULL));
        log_answers(a, learned);
        if (*failing)
            log_info("site", "the site's TLS answer is known again");
        *failing = 0;
    }
    if (got < SITE_SHAPES) {
        site_store_failed(p->store);
        if (!*failing)
            log_warn("site", "cannot learn the site's TLS answer (%s); %s", err,
                     got ? "keeping the previous answer for the rest"
                         : "keeping the previous answer (or the default, sized for a Let's "
                           "Encrypt ECDSA chain)");
        *failing = 1;
    }
    return got;
}

/* One connection: does the site still answer as the store says? 1 yes,
 * 0 no, -1 nothing learned yet (the caller retries the refresh). */
static int still_same(site_prober *p)
{
    site_flight f;
    char err[200];
    int shape = SITE_SHAPE_MLKEM;
    site_answer a;
    pthread_mutex_lock(&p->store->lock);
    int known = p->store->learned[shape];
    a = p->store->answer[shape];
    if (!known) {
        shape = SITE_SHAPE_X25519;
        known = p->store->learned[shape];
        a = p->store->answer[shape];
    }
    pthread_mutex_unlock(&p->store->lock);
    if (!known)
        return -1;
    if (probe_with_stop(&p->target, (site_shape)shape, &f, p->stop_fd[0], err, sizeof err) < 0)
        return 1;   /* a failed check is not a change: the next one retries */
    return site_answer_fits(&a, &f);
}

static void *prober_main(void *arg)
{
    site_prober *p = arg;
    int failing = 0;
    uint64_t next_refresh = 0, next_check = 0, retry_ms = RETRY_FIRST_MS;
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= next_refresh) {
            int got = do_refresh(p, &failing);
            now = mono_ms();
            next_refresh = now + (uint64_t)p->refresh_s * 1000;
            next_check = now + (uint64_t)p->check_s * 1000;
            /* The site may still be starting (the image starts both at
             * once) or waiting for its certificate: retry sooner. */
            if (got == 0 && now + retry_ms < next_check) {
                next_check = now + retry_ms;
                retry_ms *= 2;
            } else if (got) {
                retry_ms = RETRY_FIRST_MS;
            }
        } else if (now >= next_check) {
            int same = still_same(p);
            if (same <= 0) {
                if (same == 0)
                    log_info("site", "the site's TLS answer changed (a new certificate?): "
                                     "learning it again");
                next_refresh = now;
                continue;
            }
            next_check = mono_ms() + (uint64_t)p->check_s * 1000;
        }
        uint64_t wake = next_check < next_refresh ? next_check : next_refresh;
        now = mono_ms();
        struct pollfd s = { p->stop_fd[0], POLLIN, 0 };
        int n = poll(&s, 1, wake > now ? (int)(wake - now) : 0);
        if (n > 0)
            break;
    }
    return NULL;
}

int site_prober_start(site_prober *p, site_store *store, const site_target *t,
                      unsigned refresh_s, unsigned check_s)
{
    memset(p, 0, sizeof *p);
    p->store = store;
    p->target = *t;
    p->refresh_s = refresh_s ? refresh_s : 1;
    p->check_s = check_s ? check_s : 1;
    if (pipe2(p->stop_fd, O_CLOEXEC) < 0)
        return -1;
    int e = pthread_create(&p->thread, NULL, prober_main, p);
    if (e != 0) {
        close(p->stop_fd[0]);
        close(p->stop_fd[1]);
        errno = e;
        return -1;
    }
    p->started = 1;
    return 0;
}

void site_prober_stop(site_prober *p)
{
    if (!p->started)
        return;
    ssize_t n;
    do
        n = write(p->stop_fd[1], "", 1);
    while (n < 0 && errno == EINTR);
    pthread_join(p->thread, NULL);
    close(p->stop_fd[0]);
    close(p->stop_fd[1]);
    p->started = 0;
}
