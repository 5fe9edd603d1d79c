/* web_cap: base64, bridge capabilities and carrier tokens. */
#include "web_cap.h"

#include <string.h>

#include "crypto.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t web_b64_encode(const uint8_t *in, size_t len, int url, int pad, char *out, size_t cap)
{
    const char *a = url ? B64URL : B64;
    size_t need = pad ? (len + 2) / 3 * 4 : len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (need + 1 > cap)
        return 0;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int web_b64_decode_std(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pads = 0;
        for (int j = 0; j < 4; j++) {
            char c = in[i + j];
            if (c == '=') {
                if (i + 4 != len || j < 2)
                    return -1;
                pads++;
                v[j] = 0;
                continue;
            }
            if (pads)
                return -1;
            if ((v[j] = b64_val(c, 0)) < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        size_t n = 3 - (size_t)pads;
        /* Canonical: the bits the padding drops are zero. */
        if ((pads == 1 && (w & 0xff)) || (pads == 2 && (w & 0xffff)))
            return -1;
        if (o + n > cap)
            return -1;
        for (size_t j = 0; j < n; j++)
            out[o++] = (uint8_t)(w >> (16 - 8 * j));
    }
    *out_len = o;
    return 0;
}

int web_cap_canonical(const char *s, size_t len)
{
    if (len != WEB_CAP_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (b64_val(s[i], 1) < 0)
            return 0;
    /* 43 characters carry 258 bits for 256: the last one's low 2 are unused. */
    return (b64_val(s[len - 1], 1) & 3) == 0;
}

void web_cap_compute(const uint8_t *sec, size_t sec_len, const char *host,
                     char out[WEB_CAP_LEN + 1])
{
    static const char ctx[] = "tdesktop-web-proxy-bridge-v1\n";
    crypto_hmac h;
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_init(&h, sec, sec_len);
    crypto_hmac_update(&h, ctx, sizeof ctx - 1);
    crypto_hmac_update(&h, host, strlen(host));
    crypto_hmac_final(&h, mac);
    crypto_hmac_wipe(&h);
    web_b64_encode(mac, sizeof mac, 1, 0, out, WEB_CAP_LEN + 1);
    crypto_wipe(mac, sizeof mac);
}

int web_cap_match(const web_cap_entry *e, size_t n, const char *s, size_t len)
{
    int found = -1;
    if (len != WEB_CAP_LEN)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int eq = crypto_equal(e[i].cap, s, WEB_CAP_LEN);
        /* No early exit: the time does not say which entry matched. */
        found = eq && found < 0 ? (int)i : found;
    }
    return found;
}

void web_tokens_init(web_tokens *s)
{
    memset(s, 0, sizeof *s);
}

int web_tokens_mint(web_tokens *s, uint64_t now_ms, int cap_index, char out[WEB_TOKEN_LEN + 1])
{
    uint8_t raw[32];
    if (crypto_random(raw, sizeof raw) < 0)
        return -1;
    web_b64_encode(raw, sizeof raw, 1, 0, out, WEB_TOKEN_LEN + 1);
    crypto_wipe(raw, sizeof raw);
    /* A free or expired slot if the round-robin one is live; else the
     * round-robin one (the oldest, as slots are taken in turn). */
    size_t slot = s->next;
    for (size_t i = 0; i < WEB_TOKENS_MAX; i++) {
        size_t j = (s->next + i) % WEB_TOKENS_MAX;
        if (s->t[j].expires_ms <= now_ms) {
            slot = j;
            break;
        }
    }
    memcpy(s->t[slot].tok, out, WEB_TOKEN_LEN);
    s->t[slot].expires_ms = now_ms + WEB_TOKEN_TTL_MS;
    s->t[slot].cap_index = cap_index;
    s->next = (slot + 1) % WEB_TOKENS_MAX;
    return 0;
}

int web_tokens_take(web_tokens *s, uint64_t now_ms, const char *tok, size_t len)
{
    int found = -1;
    if (len != WEB_TOKEN_LEN)
        return -1;
    for (size_t i = 0; i < WEB_TOKENS_MAX; i++) {
        int live = s->t[i].expires_ms > now_ms;
        int eq = crypto_equal(s->t[i].tok, tok, WEB_TOKEN_LEN);
        if (live && eq && found < 0)
            found = (int)i;
    }
    if (found < 0)
        return -1;
    s->t[found].expires_ms = 0;   /* single use */
    crypto_wipe(s->t[found].tok, WEB_TOKEN_LEN);
    return s->t[found].cap_index;
}
