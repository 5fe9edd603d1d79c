/* Fuzzes the WEB proxy's frame mux through a real session: a carrier on one
 * end of a socketpair (the HTTP exchange skipped), fed WebSocket messages
 * built from the input: each chunk is [len byte][flags byte][payload],
 * flags bit 0 = text instead of binary, bit 1 = split into two fragments,
 * bit 2 = unmasked, bit 3 = a ping instead; the payload (v1 frames, or
 * noise) is masked with a zero key. The first message is prefixed with a
 * valid HELLO when the input's first byte is odd, so the fuzzer reaches
 * OPEN/DATA/WINDOW/CLOSE quickly; DATA carrying a valid obfuscated2 init
 * dials 127.0.0.1:9 (refused: no traffic leaves the machine).
 * The secret allows 3 connections and the daemon 2 or 5 (input bit 2;
 * web_limits.h), so OPENs over either take the refusal path.
 * Invariants: no crash or leak (ASan/LSan), memory gauge back to 0, the
 * session counted out, every stream's connection and concurrency slot
 * given back. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "secret_usage.h"
#include "web_cap.h"
#include "web_limits.h"
#include "web_session.h"

static loop lp;
static tgf_config cfg;
static metrics mx;
static web_tokens tokens;
static web_cap_entry caps[2];
static size_t carriers;
static void *graves[4096];
static size_t ngraves;
static web_env env;
static atomic_size_t inspected;
static web_limits limits;
static usage_slot *slot;

static void defer_free(void *owner, void *mem)
{
    (void)owner;
    if (ngraves < sizeof graves / sizeof graves[0])
        graves[ngraves++] = mem;
    else
        abort();
}

static void on_closed(void *owner, web_session *s)
{
    (void)owner;
    (void)s;
}

static const char CONFIG[] =
    "secret = \"ee000102030405060708090a0b0c0d0e0f70726f78792e6578616d706c652e636f6d\"\n"
    "bind-to = \"127.0.0.1:443\"\n"
        "[secret-limits.default]\nmax-connections = 3\n"
    "[web]\nenabled = true\nmax-streams = 8\n"
    "[datacenters]\n1 = [\"127.0.0.1:9\"]\n2 = [\"127.0.0.1:9\"]\n3 = [\"127.0.0.1:9\"]\n"
    "4 = [\"127.0.0.1:9\"]\n5 = [\"127.0.0.1:9\"]\n";

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    log_set_level(LOG_ERROR);
    char err[256];
    if (config_load_string(CONFIG, sizeof CONFIG - 1, "fuzz", &cfg, err, sizeof err) < 0)
        abort();
    if (loop_init(&lp, 200) < 0)
        abort();
    metrics_init(&mx);
    web_tokens_init(&tokens);
    limits.usage = secret_usage_create();
    limits.inspected = &inspected;
    if (!limits.usage || !(slot = secret_usage_slot(limits.usage, "default")))
        abort();
    uint8_t sec[17] = { 0xdd };
    memcpy(sec + 1, cfg.secret.key, 16);
    web_cap_compute(sec + 1, 16, "proxy.example.com", caps[0].cap);
    web_cap_compute(sec, 17, "proxy.example.com", caps[1].cap);
    memcpy(caps[0].key, cfg.secret.key, 16);
    memcpy(caps[1].key, cfg.secret.key, 16);
    caps[0].kind = WEB_CAP_PLAIN;
    caps[1].kind = WEB_CAP_PADDED;
    env = (web_env){ .loop = &lp, .metrics = &mx, .cfg = &cfg, .tokens = &tokens,
                     .caps = caps, .ncaps = 2, .host = "proxy.example.com",
                     .carriers = &carriers, .limits = &limits, .defer_free = defer_free, .on_closed = on_closed,
                     .owner = NULL };
}

static size_t ws_frame(uint8_t *out, int fin, int op, const uint8_t *p, size_t n, int masked)
{
    size_t o = 0;
    out[o++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t mbit = masked ? 0x80 : 0;
    if (n < 126) {
        out[o++] = (uint8_t)(mbit | n);
    } else {
        out[o++] = mbit | 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    }
    if (masked) {
        memset(out + o, 0, 4);
        o += 4;
    }
    memcpy(out + o, p, n);
    return o + n;
}

static void drain(int fd)
{
    uint8_t b[65536];
    while (read(fd, b, sizeof b) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1 || size > 65536)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    web_session *s = web_session_start(&env, sv[0], (struct sockaddr *)&peer, sizeof peer);
    if (!s) {
        close(sv[1]);
        return 0;
    }
    cfg.concurrency = data[0] & 4 ? 2 : 5;
    web_session_run(s);
    if (web_session_force_carrier(s, data[0] & 2 ? 0 : 1) < 0)
        abort();
    uint8_t *buf = malloc(2 * 65536 + 64);
    size_t off = 1;
    if (data[0] & 1) {
        static const uint8_t hello[] = { 0x10, 0, 0, 0, 0, 0, 0, 1, 1 };
        size_t n = ws_frame(buf, 1, 2, hello, sizeof hello, 1);
        web_session_feed(s, buf, n);
        drain(sv[1]);
    }
    while (off + 2 <= size && web_session_carrier_open(s)) {
        size_t len = (size_t)data[off] * 4 + (data[off] >> 6) * 4096;
        uint8_t flags = data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        const uint8_t *p = data + off;
        off += len;
        size_t n = 0;
        int op = flags & 8 ? 9 : flags & 1 ? 1 : 2;
        int masked = !(flags & 4);
        if (len > 125 && op == 9)
            len = 125;
        if ((flags & 2) && op != 9 && len > 1) {
            n = ws_frame(buf, 0, op, p, len / 2, masked);
            n += ws_frame(buf + n, 1, 0, p + len / 2, len - len / 2, masked);
        } else {
            n = ws_frame(buf, 1, op, p, len, masked);
        }
        web_session_feed(s, buf, n);
        drain(sv[1]);
        if (flags & 16) {
            /* Time passes: streams meet their handshake and idle timeouts
             * (their slots must come back, checked below). */
            lp.now_ms += (uint64_t)(flags >> 5) * 2500;
            web_session_tick(s, lp.now_ms);
            drain(sv[1]);
        }
    }
    web_session_end(s, WEB_END_SHUTDOWN);
    web_session_end(s, WEB_END_SHUTDOWN);
    close(sv[1]);
    free(buf);
    for (size_t i = 0; i < ngraves; i++)
        free(graves[i]);
    ngraves = 0;
    if (mx.web.memory_bytes != 0 || mx.web.sessions != 0 || mx.web.streams != 0 || carriers)
        abort();
    if (atomic_load(&slot->connections) != 0 || atomic_load(&inspected) != 0)
        abort();
    return 0;
}
