/* WEB proxy mode: capability vectors, frames, RFC 6455, HTTP heads, routing
 * and tokens. Vectors from webproxy-facts.md (re-derived by
 * webproxy_vectors.py); streaming parsers at every split point. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "web_cap.h"
#include "web_frame.h"
#include "web_http.h"
#include "web_page.h"
#include "web_route.h"
#include "web_ws.h"

static const uint8_t KEY[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

TEST(web_cap_vectors)
{
    char out[WEB_CAP_LEN + 1];
    uint8_t dd[17];
    dd[0] = 0xdd;
    memcpy(dd + 1, KEY, 16);
    web_cap_compute(KEY, 16, "proxy.example.com", out);
    CHECK_STR(out, "MHLEY5PmW1GWqJkSrlmJpvJUiLhBH_QKy6yKg8a0JPk");
    web_cap_compute(dd, 17, "proxy.example.com", out);
    CHECK_STR(out, "IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA");
    CHECK(web_cap_canonical(out, strlen(out)));
}

TEST(web_cap_canonical_and_match)
{
    CHECK(web_cap_canonical("MHLEY5PmW1GWqJkSrlmJpvJUiLhBH_QKy6yKg8a0JPk", 43));
    /* 'l' = 37: low bits 01, not canonical */
    CHECK(!web_cap_canonical("MHLEY5PmW1GWqJkSrlmJpvJUiLhBH_QKy6yKg8a0JPl", 43));
    CHECK(!web_cap_canonical("MHLEY5PmW1GWqJkSrlmJpvJUiLhBH_QKy6yKg8a0JP", 42));
    CHECK(!web_cap_canonical("MHLEY5PmW1GWqJkSrlmJpvJUiLhBH+QKy6yKg8a0JPk", 43));
    web_cap_entry e[2];
    memset(e, 0, sizeof e);
    strcpy(e[0].cap, "MHLEY5PmW1GWqJkSrlmJpvJUiLhBH_QKy6yKg8a0JPk");
    strcpy(e[1].cap, "IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA");
    CHECK_EQ_INT(web_cap_match(e, 2, e[1].cap, 43), 1);
    CHECK_EQ_INT(web_cap_match(e, 2, e[0].cap, 43), 0);
    CHECK_EQ_INT(web_cap_match(e, 2, "IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLB", 43), -1);
    CHECK_EQ_INT(web_cap_match(e, 2, e[0].cap, 42), -1);
}

TEST(web_b64)
{
    char out[64];
    uint8_t raw[32];
    size_t n = 0;
    CHECK_EQ_INT(web_b64_encode((const uint8_t *)"hello", 5, 0, 1, out, sizeof out), 8);
    CHECK_STR(out, "aGVsbG8=");
    CHECK_EQ_INT(web_b64_encode((const uint8_t *)"\xfb\xff", 2, 1, 0, out, sizeof out), 3);
    CHECK_STR(out, "-_8");
    CHECK_EQ_INT(web_b64_decode_std("aGVsbG8=", 8, raw, sizeof raw, &n), 0);
    CHECK_EQ_INT(n, 5);
    CHECK_MEM(raw, "hello", 5);
    CHECK_EQ_INT(web_b64_decode_std("aGVsbG9=", 8, raw, sizeof raw, &n), -1);  /* non-canonical */
    CHECK_EQ_INT(web_b64_decode_std("aGVsbG8", 7, raw, sizeof raw, &n), -1);
    CHECK_EQ_INT(web_b64_decode_std("a=Vs", 4, raw, sizeof raw, &n), -1);
}

TEST(web_frame_vectors)
{
    uint8_t h[8], want[16];
    web_frame_header(h, WF_HELLO, 0, 1);
    unit_unhex("1000000000000001", want, sizeof want);
    CHECK_MEM(h, want, 8);
    web_frame_header(h, WF_WELCOME, 0, 0);
    unit_unhex("1100000000000000", want, sizeof want);
    CHECK_MEM(h, want, 8);
    web_frame_header(h, WF_DATA, 0x123456, 5);
    unit_unhex("0212345600000005", want, sizeof want);
    CHECK_MEM(h, want, 8);
    web_frame_header(h, WF_WINDOW, 7, 4);
    unit_unhex("0400000700000004", want, sizeof want);
    CHECK_MEM(h, want, 8);
}

TEST(web_frame_check_rules)
{
    uint32_t max = 65536;
    CHECK_EQ_INT(web_frame_check_client(WF_HELLO, 0, 1, max), WF_R_NONE);
    CHECK_EQ_INT(web_frame_check_client(WF_HELLO, 0, 2, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_HELLO, 1, 1, max), WF_R_STREAM);
    CHECK_EQ_INT(web_frame_check_client(WF_OPEN, 0, 0, max), WF_R_STREAM);
    CHECK_EQ_INT(web_frame_check_client(WF_OPEN, 3, 1, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_DATA, 3, 0, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_DATA, 3, 65536, max), WF_R_NONE);
    CHECK_EQ_INT(web_frame_check_client(WF_DATA, 3, 65537, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_WINDOW, 3, 3, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_PONG, 0, 64, max), WF_R_NONE);
    CHECK_EQ_INT(web_frame_check_client(WF_PONG, 0, 65, max), WF_R_LENGTH);
    CHECK_EQ_INT(web_frame_check_client(WF_PING, 0, 8, max), WF_R_TYPE);
    CHECK_EQ_INT(web_frame_check_client(WF_WELCOME, 0, 0, max), WF_R_TYPE);
    CHECK_EQ_INT(web_frame_check_client(WF_AUTH_CHAL, 0, 0, max), WF_R_TYPE);
    CHECK_EQ_INT(web_frame_check_client(0x7f, 0, 0, max), WF_R_TYPE);
}

/* Decodes msg in two feeds split at cut; writes a trace of events into
 * out (type,stream,len per header, then payload bytes). */
static size_t frame_trace(const uint8_t *msg, size_t len, size_t cut, uint8_t *out, int *err)
{
    web_frame_rx d;
    uint8_t buf[512];
    size_t o = 0;
    memcpy(buf, msg, len);
    web_frame_rx_init(&d, 65536);
    web_frame_rx_message(&d);
    *err = 0;
    size_t parts[2][2] = { { 0, cut }, { cut, len - cut } };
    for (int p = 0; p < 2; p++) {
        size_t off = parts[p][0], left = parts[p][1];
        for (;;) {
            size_t used = 0, pl = 0;
            uint8_t *piece = NULL;
            web_frame_event e = web_frame_rx_feed(&d, buf + off, left, &used, &piece, &pl);
            off += used;
            left -= used;
            if (e == WFX_NEED_MORE)
                break;
            if (e == WFX_ERROR) {
                *err = (int)d.why;
                return o;
            }
            if (e == WFX_HEADER) {
                out[o++] = d.type;
                out[o++] = (uint8_t)d.stream;
                out[o++] = (uint8_t)d.len;
            } else {
                memcpy(out + o, piece, pl);
                o += pl;
            }
        }
    }
    if (web_frame_rx_end(&d) < 0)
        *err = (int)d.why;
    return o;
}

TEST(web_frame_decoder_every_split)
{
    uint8_t msg[64];
    size_t n = 0;
    n += unit_unhex("100000000000000101", msg + n, sizeof msg - n);            /* HELLO */
    n += unit_unhex("0100000500000000", msg + n, sizeof msg - n);              /* OPEN 5 */
    n += unit_unhex("020000050000000568656c6c6f", msg + n, sizeof msg - n);    /* DATA hello */
    n += unit_unhex("040000050000000400001000", msg + n, sizeof msg - n);      /* WINDOW */
    static const uint8_t want[] = { 0x10, 0, 1, 1, 0x01, 5, 0, 0x02, 5, 5, 'h', 'e', 'l', 'l',
                                    'o', 0x04, 5, 4, 0, 0, 0x10, 0 };
    for (size_t cut = 0; cut <= n; cut++) {
        uint8_t out[128];
        int err;
        size_t o = frame_trace(msg, n, cut, out, &err);
        CHECK_MSG(err == 0, "cut %zu: error %d", cut, err);
        CHECK_MSG(o == sizeof want && memcmp(out, want, o) == 0, "cut %zu: trace differs", cut);
    }
    /* a message that ends inside a frame, at every length */
    for (size_t len = 0; len < n; len++) {
        uint8_t out[128];
        int err;
        size_t ends[] = { 0, 9, 17, 30, n };
        int boundary = 0;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
            boundary |= ends[i] == len && len;
        frame_trace(msg, len, len / 2, out, &err);
        CHECK_MSG(boundary ? err == 0 : err == WF_R_PARTIAL, "length %zu: err %d", len, err);
    }
}

TEST(web_frame_decoder_errors)
{
    uint8_t out[64];
    int err;
    uint8_t m[16];
    unit_unhex("0200000500100001", m, sizeof m);   /* DATA of 1 MiB + 1 */
    frame_trace(m, 8, 3, out, &err);
    CHECK_EQ_INT(err, WF_R_LENGTH);
    unit_unhex("1f00000000000000", m, sizeof m);   /* BYE from the client */
    frame_trace(m, 8, 8, out, &err);
    CHECK_EQ_INT(err, WF_R_TYPE);
    /* 4097 empty OPENs in one message */
    size_t n = 4097 * 8;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < 4097; i++)
        web_frame_header(big + 8 * i, WF_OPEN, (uint32_t)i + 1, 0);
    web_frame_rx d;
    web_frame_rx_init(&d, 65536);
    web_frame_rx_message(&d);
    size_t off = 0;
    web_frame_event e = WFX_NEED_MORE;
    while (off < n) {
        size_t used, pl;
        uint8_t *p;
        e = web_frame_rx_feed(&d, big + off, n - off, &used, &p, &pl);
        off += used;
        if (e == WFX_ERROR)
            break;
    }
    CHECK_EQ_INT(e, WFX_ERROR);
    CHECK_EQ_INT(d.why, WF_R_TOO_MANY);
    CHECK_EQ_INT(off, n);
    free(big);
}

TEST(web_ws_accept_vector)
{
    char out[WS_ACCEPT_LEN + 1];
    ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24));
    CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ!=", 24));
}

TEST(web_ws_header)
{
    uint8_t h[10];
    CHECK_EQ_INT(ws_header(h, WS_OP_BINARY, 125), 2);
    CHECK(h[0] == 0x82 && h[1] == 125);
    CHECK_EQ_INT(ws_header(h, WS_OP_BINARY, 126), 4);
    CHECK(h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_EQ_INT(ws_header(h, WS_OP_BINARY, 65535), 4);
    CHECK_EQ_INT(ws_header(h, WS_OP_CLOSE, 65536), 10);
    CHECK(h[0] == 0x88 && h[1] == 127 && h[7] == 1 && h[9] == 0);
}

/* A masked client frame. */
static size_t cframe(uint8_t *out, int fin, int op, const uint8_t *p, size_t n, int rsv)
{
    static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t o = 0;
    out[o++] = (uint8_t)((fin ? 0x80 : 0) | (rsv ? 0x40 : 0) | op);
    if (n < 126) {
        out[o++] = (uint8_t)(0x80 | n);
    } else {
        out[o++] = 0x80 | 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    }
    memcpy(out + o, mask, 4);
    o += 4;
    for (size_t i = 0; i < n; i++)
        out[o + i] = p[i] ^ mask[i & 3];
    return o + n;
}

/* Feeds in[0..n) split at cut and at cut2; records a trace: 'B' begin,
 * data bytes, 'E' end, 'C'+op+len+payload for control, '!'+code. */
static size_t ws_trace(const uint8_t *in, size_t n, size_t cut, size_t cut2, uint8_t *out)
{
    ws_rx d;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, in, n);
    ws_rx_init(&d, 400);
    size_t o = 0;
    size_t bounds[4] = { 0, cut, cut2, n };
    for (int p = 0; p < 3; p++) {
        size_t off = bounds[p], left = bounds[p + 1] - bounds[p];
        for (;;) {
            size_t used = 0, pl = 0;
            uint8_t *piece = NULL;
            ws_event e = ws_rx_feed(&d, buf + off, left, &used, &piece, &pl);
            off += used;
            left -= used;
            if (e == WSX_NEED_MORE) {
                if (left)
                    out[o++] = '?';   /* must never happen */
                break;
            }
            if (e == WSX_ERROR) {
                out[o++] = '!';
                out[o++] = (uint8_t)(d.close_code - 1000);
                free(buf);
                return o;
            }
            if (e == WSX_MSG_BEGIN)
                out[o++] = 'B';
            else if (e == WSX_MSG_END)
                out[o++] = 'E';
            else if (e == WSX_MSG_DATA) {
                memcpy(out + o, piece, pl);
                o += pl;
            } else if (e == WSX_CONTROL) {
                out[o++] = 'C';
                out[o++] = (uint8_t)d.ctl_op;
                memcpy(out + o, d.ctl, d.ctl_len);
                o += d.ctl_len;
            }
        }
    }
    free(buf);
    return o;
}

TEST(web_ws_decoder_every_split)
{
    uint8_t in[512];
    size_t n = 0;
    uint8_t big[200];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    n += cframe(in + n, 1, WS_OP_BINARY, (const uint8_t *)"abc", 3, 0);
    n += cframe(in + n, 0, WS_OP_BINARY, (const uint8_t *)"de", 2, 0);   /* fragmented */
    n += cframe(in + n, 1, WS_OP_PING, (const uint8_t *)"pi", 2, 0);     /* interleaved */
    n += cframe(in + n, 0, WS_OP_CONT, NULL, 0, 0);                      /* empty fragment */
    n += cframe(in + n, 1, WS_OP_CONT, (const uint8_t *)"f", 1, 0);
    n += cframe(in + n, 1, WS_OP_BINARY, NULL, 0, 0);                    /* empty message */
    n += cframe(in + n, 1, WS_OP_BINARY, big, sizeof big, 0);            /* 16-bit length */
    n += cframe(in + n, 1, WS_OP_CLOSE, (const uint8_t *)"\x03\xe8", 2, 0);
    uint8_t want[512];
    size_t w = 0;
    static const char head[] = "BabcEBde" "C\x09pi" "fE" "BE" "B";
    memcpy(want + w, head, sizeof head - 1);
    w += sizeof head - 1;
    memcpy(want + w, big, sizeof big);
    w += sizeof big;
    memcpy(want + w, "EC\x08\x03\xe8", 5);
    w += 5;
    size_t fails = 0;
    for (size_t a = 0; a <= n; a++)
        for (size_t b = a; b <= n; b += 7) {
            uint8_t out[600];
            size_t o = ws_trace(in, n, a, b, out);
            if (o != w || memcmp(out, want, w) != 0) {
                if (!fails) {
                    fprintf(stderr, "  split %zu/%zu: got %zu bytes:", a, b, o);
                    for (size_t i = 0; i < o && i < 40; i++)
                        fprintf(stderr, " %02x", out[i]);
                    fprintf(stderr, "\n");
                }
                fails++;
            }
        }
    CHECK_MSG(fails == 0, "%zu split pairs gave another trace", fails);
}

TEST(web_ws_decoder_errors)
{
    uint8_t in[64], out[64];
    size_t n, o;
    /* unmasked */
    in[0] = 0x82;
    in[1] = 0x01;
    in[2] = 'x';
    o = ws_trace(in, 3, 1, 2, out);
    CHECK(o == 2 && out[0] == '!' && out[1] == 2);
    /* text -> 1003 */
    n = cframe(in, 1, WS_OP_TEXT, (const uint8_t *)"hi", 2, 0);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 2 && out[0] == '!' && out[1] == 3);
    /* RSV bit */
    n = cframe(in, 1, WS_OP_BINARY, (const uint8_t *)"hi", 2, 1);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 2 && out[1] == 2);
    /* continuation without a message */
    n = cframe(in, 1, WS_OP_CONT, (const uint8_t *)"hi", 2, 0);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 2 && out[1] == 2);
    /* fragmented control frame */
    n = cframe(in, 0, WS_OP_PING, (const uint8_t *)"hi", 2, 0);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 2 && out[1] == 2);
    /* non-minimal 16-bit length (5 in the 126 form) */
    uint8_t nm[] = { 0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4 };
    o = ws_trace(nm, sizeof nm, 0, 0, out);
    CHECK(o == 2 && out[1] == 2);
    /* over the message limit (400): 1009 */
    uint8_t tb[] = { 0x82, 0xfe, 0x01, 0x91, 1, 2, 3, 4 };
    o = ws_trace(tb, sizeof tb, 0, 0, out);
    CHECK(o == 2 && out[1] == 9);
    /* unknown opcode */
    n = cframe(in, 1, 0x3, (const uint8_t *)"hi", 2, 0);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 2 && out[1] == 2);
    /* a new binary message while one is open */
    n = cframe(in, 0, WS_OP_BINARY, (const uint8_t *)"a", 1, 0);
    n += cframe(in + n, 1, WS_OP_BINARY, (const uint8_t *)"b", 1, 0);
    o = ws_trace(in, n, 0, 0, out);
    CHECK(o == 4 && out[0] == 'B' && out[2] == '!' && out[3] == 2);
    CHECK_EQ_INT(ws_close_code((const uint8_t *)"\x03\xe8", 2), 1000);
    CHECK_EQ_INT(ws_close_code((const uint8_t *)"\x03", 1), 1002);
    CHECK_EQ_INT(ws_close_code(NULL, 0), 1005);
    CHECK_EQ_INT(ws_close_code((const uint8_t *)"\x03\xed", 2), 1002);   /* 1005 on the wire */
}

static const char GOOD_REQ[] =
    "GET /?bridge=IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA HTTP/1.1\r\n"
    "Host: proxy.example.com\r\n"
    "X-Forwarded-For: 10.0.0.9, 203.0.113.7\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Protocol: tproxy-v1.abc\r\n"
    "\r\n";

TEST(web_http_parse_every_split)
{
    size_t n = strlen(GOOD_REQ);
    web_http_req r;
    web_http_reason why;
    for (size_t cut = 0; cut < n; cut++)
        CHECK_MSG(web_http_parse(GOOD_REQ, cut, &r, &why) == WH_NEED_MORE, "prefix %zu", cut);
    CHECK_EQ_INT(web_http_parse(GOOD_REQ, n, &r, &why), WH_OK);
    CHECK_EQ_INT(r.head_len, n);
    CHECK(web_str_eq(r.method, "GET"));
    CHECK(web_str_eq(r.path, "/"));
    CHECK(web_str_eq(r.query, "bridge=IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA"));
    CHECK(web_str_eq(r.host, "proxy.example.com"));
    CHECK(web_str_eq(r.xff_last, "203.0.113.7"));
    CHECK(r.connection_upgrade && r.upgrade_websocket && !r.connection_close);
    CHECK_EQ_INT(r.proto_count, 1);
    CHECK(!r.has_body);
    /* a second request after the first is not part of it */
    char two[1024];
    snprintf(two, sizeof two, "%sGET / HTTP/1.1\r\n", GOOD_REQ);
    CHECK_EQ_INT(web_http_parse(two, strlen(two), &r, &why), WH_OK);
    CHECK_EQ_INT(r.head_len, n);
}

TEST(web_http_parse_refusals)
{
    static const struct { const char *req; web_http_reason why; } bad[] = {
        { "GET / HTTP/1.0\r\n\r\n", WH_R_VERSION },
        { "GET / HTTP/2.0\r\n\r\n", WH_R_VERSION },
        { "GET / HTTP/1.1\nHost: a\r\n\r\n", WH_R_LINE },
        { "GET / HTTP/1.1\r\nHost: a\n", WH_R_HEADER },
        { "get / HTTP/1.1\r\n\r\n", WH_R_LINE },
        { "GET  / HTTP/1.1\r\n\r\n", WH_R_LINE },
        { "GET * HTTP/1.1\r\n\r\n", WH_R_LINE },
        { "GET http://a/ HTTP/1.1\r\n\r\n", WH_R_LINE },
        { "GET /#x HTTP/1.1\r\n\r\n", WH_R_LINE },
        { "GET / HTTP/1.1\r\nHost : a\r\n\r\n", WH_R_HEADER },
        { "GET / HTTP/1.1\r\n Host: a\r\n\r\n", WH_R_HEADER },
        { "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", WH_R_HEADER },
        { "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", WH_R_HEADER },
        { "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", WH_R_LENGTH },
        { "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", WH_R_LENGTH },
        { "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
          WH_R_LENGTH },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        web_http_req r;
        web_http_reason why = WH_R_NONE;
        web_http_result res = web_http_parse(bad[i].req, strlen(bad[i].req), &r, &why);
        CHECK_MSG(res == WH_BAD && why == bad[i].why, "case %zu: result %d reason %s", i, res,
                  web_http_reason_name(why));
    }
    /* Content-Length: 0 is a static host's normal request */
    web_http_req r;
    web_http_reason why;
    const char *z = "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    CHECK_EQ_INT(web_http_parse(z, strlen(z), &r, &why), WH_OK);
    CHECK(!r.has_body);
    /* too long */
    char *big = malloc(WEB_HTTP_HEAD_MAX + 10);
    memset(big, 'a', WEB_HTTP_HEAD_MAX + 10);
    memcpy(big, "GET /", 5);
    CHECK_EQ_INT(web_http_parse(big, WEB_HTTP_HEAD_MAX + 10, &r, &why), WH_BAD);
    CHECK_EQ_INT(why, WH_R_TOO_LONG);
    free(big);
}

TEST(web_http_list)
{
    web_str v = { "keep-alive,  Upgrade ,x", 23 };
    CHECK(web_http_list_has(v, "upgrade"));
    CHECK(web_http_list_has(v, "x"));
    CHECK(!web_http_list_has(v, "up"));
}

static web_route_kind route(const char *req, int *ci, web_str *tok)
{
    static web_cap_entry caps[2];
    web_cap_compute(KEY, 16, "proxy.example.com", caps[0].cap);
    uint8_t dd[17] = { 0xdd };
    memcpy(dd + 1, KEY, 16);
    web_cap_compute(dd, 17, "proxy.example.com", caps[1].cap);
    web_route_cfg c = { "proxy.example.com", "/api/v1/socket", caps, 2 };
    web_http_req r;
    web_http_reason why;
    if (web_http_parse(req, strlen(req), &r, &why) != WH_OK)
        return (web_route_kind)-1;
    return web_route(&c, &r, ci, tok);
}

#define CAPDD "IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLA"
#define TOK43 "abcdefghijabcdefghijabcdefghijabcdefghij123"

TEST(web_route_decisions)
{
    int ci;
    web_str tok;
    CHECK_EQ_INT(route("GET /?bridge=" CAPDD " HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n", &ci,
                       &tok), WR_BRIDGE);
    CHECK_EQ_INT(ci, 1);
    CHECK_EQ_INT(route("GET /?bridge=" CAPDD " HTTP/1.1\r\nHost: PROXY.example.com:443\r\n\r\n",
                       &ci, &tok), WR_BRIDGE);
    CHECK_EQ_INT(route("GET /?bridge=" CAPDD " HTTP/1.1\r\nHost: other.example.com\r\n\r\n", &ci,
                       &tok), WR_NOT_FOUND);
    CHECK_EQ_INT(route("HEAD /?bridge=" CAPDD " HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n",
                       &ci, &tok), WR_NOT_FOUND);
    CHECK_EQ_INT(route("GET /?bridge=" CAPDD "&a=1 HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n",
                       &ci, &tok), WR_NOT_FOUND);
    CHECK_EQ_INT(route("GET /?bridge=" CAPDD " HTTP/1.1\r\nHost: proxy.example.com\r\n"
                       "Host: proxy.example.com\r\n\r\n", &ci, &tok), WR_NOT_FOUND);
    CHECK_EQ_INT(route("GET /?bridge=IpJrt3e7sKtzPyoXy6w-Zj6GGEvsvclN66JzQEfPYLB HTTP/1.1\r\n"
                       "Host: proxy.example.com\r\n\r\n", &ci, &tok), WR_SITE);
    CHECK_EQ_INT(route("GET / HTTP/1.1\r\nHost: proxy.example.com\r\n\r\n", &ci, &tok), WR_SITE);
    const char *ws = "GET /api/v1/socket HTTP/1.1\r\nHost: proxy.example.com\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tproxy-v1." TOK43 "\r\n"
                     "Origin: https://proxy.example.com\r\n\r\n";
    CHECK_EQ_INT(route(ws, &ci, &tok), WR_WS);
    CHECK(web_str_eq(tok, TOK43));
    char alt[1024];
    /* another origin, version or path: the site */
    snprintf(alt, sizeof alt, "%s", ws);
    memcpy(strstr(alt, "https://proxy"), "https://proxz", 13);
    CHECK_EQ_INT(route(alt, &ci, &tok), WR_SITE);
    snprintf(alt, sizeof alt, "%s", ws);
    memcpy(strstr(alt, "Version: 13"), "Version: 12", 11);
    CHECK_EQ_INT(route(alt, &ci, &tok), WR_SITE);
    snprintf(alt, sizeof alt, "%s", ws);
    memcpy(strstr(alt, "/api/v1/socket"), "/api/v1/sockex", 14);
    CHECK_EQ_INT(route(alt, &ci, &tok), WR_SITE);
}

TEST(web_tokens_single_use_and_expiry)
{
    web_tokens *s = malloc(sizeof *s);
    char t[WEB_TOKEN_LEN + 1], u[WEB_TOKEN_LEN + 1];
    web_tokens_init(s);
    CHECK_EQ_INT(web_tokens_mint(s, 1000, 1, t), 0);
    CHECK_EQ_INT(strlen(t), 43);
    CHECK_EQ_INT(web_tokens_mint(s, 1000, 0, u), 0);
    CHECK(strcmp(t, u) != 0);
    CHECK_EQ_INT(web_tokens_take(s, 2000, t, 43), 1);
    CHECK_EQ_INT(web_tokens_take(s, 2000, t, 43), -1);   /* single use */
    CHECK_EQ_INT(web_tokens_take(s, 1000 + WEB_TOKEN_TTL_MS, u, 43), -1);   /* expired */
    /* a full store gives the oldest slot away, never refuses */
    for (int i = 0; i < WEB_TOKENS_MAX + 5; i++)
        CHECK_EQ_INT(web_tokens_mint(s, 5000, 0, t), 0);
    CHECK_EQ_INT(web_tokens_take(s, 5001, t, 43), 0);
    free(s);
}

TEST(web_page_render_fits)
{
    char out[WEB_PAGE_MAX];
    size_t n = web_page_render("proxy.example.com", "/api/v1/socket", TOK43,
                               "abcdefghijklmnopqrstuvwx", out, sizeof out);
    CHECK(n > 0 && n < sizeof out);
    CHECK(strstr(out, "script-src 'nonce-abcdefghijklmnopqrstuvwx'") != NULL);
    CHECK(strstr(out, "TOK='" TOK43 "'") != NULL);
    CHECK(strstr(out, "X-Frame-Options") == NULL);
    const char *body = strstr(out, "\r\n\r\n") + 4;
    const char *cl = strstr(out, "Content-Length: ");
    CHECK(cl && (size_t)atoi(cl + 16) == strlen(body));
}
