/* secret: parse/format mtg's FakeTLS secret (0xee || key || hostname).
 * mtg accepts hex or unpadded base64url; we also accept standard base64 and
 * padded forms because users paste secrets from other tools. */
#include "secret.h"

#include <string.h>

#include "crypto.h"

#define SECRET_PREFIX 0xee
/* Largest binary secret we keep; anything longer is reported as too long. */
#define SECRET_BIN_MAX (1 + SECRET_KEY_LEN + SECRET_HOST_MAX)

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex into out (at most cap bytes kept). Returns the full decoded
 * length, or -1 when text is not even-length hex. */
static long decode_hex(const char *text, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_digit(text[i]), lo = hex_digit(text[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        if (i / 2 < cap)
            out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

/* Value of a base64 character in either alphabet; *alpha records which
 * alphabet-specific characters were seen (1 url, 2 standard) so a mix of
 * both can be rejected. */
static int b64_value(char c, int *alpha)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '_') { *alpha |= 1; return c == '-' ? 62 : 63; }
    if (c == '+' || c == '/') { *alpha |= 2; return c == '+' ? 62 : 63; }
    return -1;
}

/* Decodes base64 (url or standard alphabet, padded or not). Returns the full
 * decoded length, or -1 when text is not valid base64. */
static long decode_base64(const char *text, size_t len, uint8_t *out, size_t cap)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && text[len - 1 - pad] == '=')
        pad++;
    if (pad > 0 && len % 4 != 0)
        return -1;               /* padding only makes sense on whole quads */
    size_t n = len - pad;
    if (n % 4 == 1)
        return -1;               /* a lone 6-bit group cannot carry a byte */

    int alpha = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t outlen = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(text[i], &alpha);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (outlen < cap)
                out[outlen] = (uint8_t)(acc >> bits);
            outlen++;
        }
    }
    if (alpha == 3)
        return -1;               /* mixed alphabets: not something any encoder emits */
    return (long)outlen;
}

static secret_status check_host(const uint8_t *host, size_t len)
{
    if (len == 0)
        return SECRET_ERR_NO_HOST;
    if (len > SECRET_HOST_MAX)
        return SECRET_ERR_HOST_TOO_LONG;
    for (size_t i = 0; i < len; i++)
        if (host[i] < 0x21 || host[i] > 0x7e)
            return SECRET_ERR_HOST_CHARS;
    return SECRET_OK;
}

/* Key bytes are read and copied one at a time through volatile pointers so
 * the compiler keeps no whole key in a vector register: on aarch64 a later
 * variadic call (printf, a log line) stores q0-q7 to the stack in its
 * prologue, which left the key in dead stack (test_secret.c's probe found it
 * under qemu-aarch64). */
static int key_is_zero(const uint8_t *key)
{
    const volatile uint8_t *k = key;
    uint8_t acc = 0;
    for (size_t i = 0; i < SECRET_KEY_LEN; i++)
        acc |= k[i];
    return acc == 0;
}

static void key_copy(uint8_t *dst, const uint8_t *src)
{
    volatile uint8_t *d = dst;
    const volatile uint8_t *s = src;
    for (size_t i = 0; i < SECRET_KEY_LEN; i++)
        d[i] = s[i];
}

/* Validates a decoded binary secret of full length n (bin holds the first
 * min(n, SECRET_BIN_MAX + 1) bytes) and fills out. */
static secret_status from_binary(const uint8_t *bin, size_t n, tg_secret *out)
{
    if (bin[0] != SECRET_PREFIX)
        return SECRET_ERR_PREFIX;
    if (n < 1 + SECRET_KEY_LEN)
        return SECRET_ERR_SHORT;
    if (key_is_zero(bin + 1))
        return SECRET_ERR_ZERO_KEY;
    size_t host_len = n - 1 - SECRET_KEY_LEN;
    secret_status st = check_host(bin + 1 + SECRET_KEY_LEN,
                                  host_len > SECRET_HOST_MAX ? SECRET_HOST_MAX + 1 : host_len);
    if (st != SECRET_OK)
        return st;
    key_copy(out->key, bin + 1);
    memcpy(out->host, bin + 1 + SECRET_KEY_LEN, host_len);
    out->host[host_len] = '\0';
    out->host_len = host_len;
    return SECRET_OK;
}

secret_status secret_parse(const char *text, size_t len, tg_secret *out)
{
    /* One byte beyond the maximum so an over-long host is seen as such. */
    uint8_t bin[SECRET_BIN_MAX + 1];
    secret_status st;

    if (len == 0)
        return SECRET_ERR_EMPTY;
    /* Hex first, as mtg does: a string of even length made of hex digits is
     * also valid base64, and hex is the meaning users intend. */
    long n = decode_hex(text, len, bin, sizeof bin);
    if (n < 0)
        n = decode_base64(text, len, bin, sizeof bin);
    /* Both decoders write as they go, so bin may hold key bytes even when
     * decoding failed: every path below ends in the wipe. */
    if (n < 0)
        st = SECRET_ERR_ENCODING;
    else if (n == 0)
        st = SECRET_ERR_EMPTY;
    else
        st = from_binary(bin, (size_t)n, out);
    crypto_wipe(bin, sizeof bin);
    return st;
}

const char *secret_status_str(secret_status st)
{
    switch (st) {
    case SECRET_OK: return "ok";
    case SECRET_ERR_EMPTY: return "secret is empty";
    case SECRET_ERR_ENCODING: return "secret is neither hex nor base64";
    case SECRET_ERR_PREFIX:
        return "secret must start with ee (FakeTLS); dd and plain 16-byte secrets are not supported";
    case SECRET_ERR_SHORT: return "secret is too short: need ee, a 16-byte key and a hostname";
    case SECRET_ERR_ZERO_KEY: return "secret key is all zeros";
    case SECRET_ERR_NO_HOST: return "secret has no hostname after the key";
    case SECRET_ERR_HOST_TOO_LONG: return "secret hostname is longer than 255 bytes";
    case SECRET_ERR_HOST_CHARS: return "secret hostname has bytes outside printable ASCII";
    }
    return "unknown secret error";
}

/* Writes the binary form into bin; returns its length. */
static size_t to_binary(const tg_secret *s, uint8_t *bin)
{
    bin[0] = SECRET_PREFIX;
    memcpy(bin + 1, s->key, SECRET_KEY_LEN);
    memcpy(bin + 1 + SECRET_KEY_LEN, s->host, s->host_len);
    return 1 + SECRET_KEY_LEN + s->host_len;
}

size_t secret_format_hex(const tg_secret *s, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t bin[SECRET_BIN_MAX];

    if (s->host_len > SECRET_HOST_MAX)
        return 0;
    size_t n = to_binary(s, bin);
    if (cap < 2 * n + 1) {
        crypto_wipe(bin, sizeof bin);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * n] = '\0';
    crypto_wipe(bin, sizeof bin);
    return 2 * n;
}

size_t secret_format_base64url(const tg_secret *s, char *out, size_t cap)
{
    uint8_t bin[SECRET_BIN_MAX];

    if (s->host_len > SECRET_HOST_MAX)
        return 0;
    size_t n = to_binary(s, bin);
    size_t olen = (n * 4 + 2) / 3;    /* unpadded */
    if (cap < olen + 1) {
        crypto_wipe(bin, sizeof bin);
        return 0;
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | bin[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64url_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    crypto_wipe(bin, sizeof bin);
    return o;
}

int secret_generate(const char *host, tg_secret *out)
{
    size_t len = strlen(host);
    if (check_host((const uint8_t *)host, len) != SECRET_OK)
        return -1;
    do {
        if (crypto_random(out->key, SECRET_KEY_LEN) != 0)
            return -1;
    } while (key_is_zero(out->key));   /* 2^-128, but the parser rejects it */
    memcpy(out->host, host, len);
    out->host[len] = '\0';
    out->host_len = len;
    return 0;
}

void secret_wipe(tg_secret *s)
{
    crypto_wipe(s->key, sizeof s->key);
}
