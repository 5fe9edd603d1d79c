/* web_ws: RFC 6455 accept key, server frame headers and the client frame
 * decoder. */
#include "web_ws.h"

#include <string.h>

#include <bearssl.h>

#include "web_cap.h"

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    br_sha1_context h;
    uint8_t d[br_sha1_SIZE];
    br_sha1_init(&h);
    br_sha1_update(&h, key, key_len);
    br_sha1_update(&h, WS_GUID, sizeof WS_GUID - 1);
    br_sha1_out(&h, d);
    web_b64_encode(d, sizeof d, 0, 1, out, WS_ACCEPT_LEN + 1);
}

int ws_key_valid(const char *key, size_t len)
{
    uint8_t raw[18];
    size_t n = 0;
    if (len != WS_KEY_TEXT_LEN)
        return 0;
    return web_b64_decode_std(key, len, raw, sizeof raw, &n) == 0 && n == 16;
}

size_t ws_header(uint8_t out[WS_HEADER_MAX], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

void ws_rx_init(ws_rx *d, uint64_t max_message)
{
    memset(d, 0, sizeof *d);
    d->hdr_need = 2;
    d->max_message = max_message;
}

static ws_event fail(ws_rx *d, uint16_t code)
{
    d->close_code = code;
    return WSX_ERROR;
}

static int is_control(int op) { return op >= 8; }

/* The header is complete: check it and set up the payload. */
static ws_event header_done(ws_rx *d)
{
    const uint8_t *h = d->hdr;
    d->fin = h[0] >> 7;
    d->opcode = h[0] & 0x0f;
    size_t off = 2;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        off = 4;
        if (len < 126)
            return fail(d, WS_CLOSE_PROTOCOL);   /* not minimal */
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        off = 10;
        if (len >> 63 || len <= 0xffff)
            return fail(d, WS_CLOSE_PROTOCOL);
    }
    memcpy(d->mask, h + off, 4);
    d->mask_pos = 0;
    d->left = len;
    d->hdr_have = 0;
    d->hdr_need = 2;

    switch (d->opcode) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!d->fin || len > WS_CONTROL_MAX)
            return fail(d, WS_CLOSE_PROTOCOL);
        d->ctl_op = d->opcode;
        d->ctl_len = 0;
        return WSX_NEED_MORE;
    case WS_OP_TEXT:
        return fail(d, d->in_message ? WS_CLOSE_PROTOCOL : WS_CLOSE_UNSUPPORTED);
    case WS_OP_BINARY:
        if (d->in_message)
            return fail(d, WS_CLOSE_PROTOCOL);
        d->in_message = 1;
        d->msg_begun = 0;
        d->msg_len = 0;
        break;
    case WS_OP_CONT:
        if (!d->in_message)
            return fail(d, WS_CLOSE_PROTOCOL);
        break;
    default:
        return fail(d, WS_CLOSE_PROTOCOL);
    }
    if (len > d->max_message - d->msg_len)
        return fail(d, WS_CLOSE_TOO_BIG);
    d->msg_len += len;
    return WSX_NEED_MORE;
}

/* Unmasks in place: byte-wise to a word boundary of the mask, then eight
 * bytes at a time (the carrier's whole upload passes through here). */
static void unmask(ws_rx *d, uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i < n && (d->mask_pos & 3); i++)
        p[i] ^= d->mask[d->mask_pos++ & 3];
    if (n - i >= 8) {
        uint8_t m8[8];
        for (int k = 0; k < 8; k++)
            m8[k] = d->mask[k & 3];
        uint64_t m;
        memcpy(&m, m8, 8);
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= d->mask[d->mask_pos++ & 3];
}

/* The current frame's payload is complete. */
static ws_event frame_done(ws_rx *d)
{
    d->reading_payload = 0;
    if (is_control(d->opcode))
        return WSX_CONTROL;
    if (!d->msg_begun) {
        d->msg_begun = 1;
        d->pend_end = d->fin;
        return WSX_MSG_BEGIN;
    }
    if (d->fin) {
        d->in_message = 0;
        return WSX_MSG_END;
    }
    return WSX_NEED_MORE;
}

ws_event ws_rx_feed(ws_rx *d, uint8_t *in, size_t len, size_t *used, uint8_t **piece,
                    size_t *piece_len)
{
    *used = 0;
    *piece = NULL;
    *piece_len = 0;
    if (d->close_code)
        return WSX_ERROR;
    if (d->pend_end) {
        d->pend_end = 0;
        d->in_message = 0;
        return WSX_MSG_END;
    }
    for (;;) {
        if (!d->reading_payload) {
            while (d->hdr_have < d->hdr_need) {
                if (*used == len)
                    return WSX_NEED_MORE;
                d->hdr[d->hdr_have++] = in[(*used)++];
                if (d->hdr_have == 2) {
                    if (d->hdr[0] & 0x70)
                        return fail(d, WS_CLOSE_PROTOCOL);   /* no extensions */
                    if (!(d->hdr[1] & 0x80))
                        return fail(d, WS_CLOSE_PROTOCOL);   /* clients must mask */
                    unsigned l7 = d->hdr[1] & 0x7f;
                    d->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
                }
            }
            if (header_done(d) == WSX_ERROR)
                return WSX_ERROR;
            d->reading_payload = 1;
            if (d->left == 0) {
                ws_event e = frame_done(d);
                if (e != WSX_NEED_MORE)
                    return e;
                continue;
            }
            if (!is_control(d->opcode) && !d->msg_begun) {
                d->msg_begun = 1;
                return WSX_MSG_BEGIN;
            }
        }
        size_t n = len - *used;
        if (n > d->left)
            n = (size_t)d->left;
        if (n == 0)
            return WSX_NEED_MORE;
        uint8_t *p = in + *used;
        unmask(d, p, n);
        d->left -= n;
        *used += n;
        if (is_control(d->opcode)) {
            memcpy(d->ctl + d->ctl_len, p, n);
            d->ctl_len += n;
            if (d->left == 0)
                return frame_done(d);
            continue;
        }
        *piece = p;
        *piece_len = n;
        if (d->left == 0) {
            d->reading_payload = 0;
            d->pend_end = d->fin;
        }
        return WSX_MSG_DATA;
    }
}

uint16_t ws_close_code(const uint8_t *p, size_t len)
{
    if (len == 0)
        return 1005;
    if (len == 1)
        return WS_CLOSE_PROTOCOL;
    uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
    if (code < 1000 || code == 1004 || code == 1005 || code == 1006 || code == 1015 ||
        (code > 1015 && code < 3000) || code >= 5000)
        return WS_CLOSE_PROTOCOL;
    return code;
}
