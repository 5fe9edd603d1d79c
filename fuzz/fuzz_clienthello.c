/* Fuzzes faketls_check_client_hello with a fixed secret.
 * Input: byte 0 = flags/split, the rest = what a client sends.
 *   flags & 1: patch the random with the right digest (for a single-record
 *              hello) so the fuzzer reaches the OK path and the ServerHello.
 * Checks that the verdict on a prefix never contradicts the verdict on the
 * whole input (REJECT is final; OK only once the hello is complete), and
 * that the bytes after an accepted hello unwrap the same in two pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "faketls.h"

#define NOW 1700000000

static tg_secret fuzz_secret(void)
{
    static const uint8_t key[16] = { 0x36, 0x7a, 0x18, 0x9a, 0xee, 0x18, 0xfa, 0x31,
                                     0xc1, 0x90, 0x05, 0x4e, 0xfd, 0x4a, 0x8e, 0x95 };
    tg_secret s;
    memset(&s, 0, sizeof s);
    memcpy(s.key, key, sizeof key);
    memcpy(s.host, "example.com", 12);
    s.host_len = 11;
    return s;
}

/* Writes random = HMAC ^ LE32(NOW) over buf's first record, as a client. */
static void sign(uint8_t *buf, size_t len, const tg_secret *s)
{
    uint8_t mac[32];
    if (len < 43)
        return;
    size_t rec = 5 + (size_t)(buf[3] << 8 | buf[4]);
    if (rec > len || rec < 43)
        return;
    memset(buf + 11, 0, 32);
    crypto_hmac_sha256(s->key, 16, buf, rec, mac);
    mac[28] ^= (uint8_t)NOW;
    mac[29] ^= (uint8_t)(NOW >> 8);
    mac[30] ^= (uint8_t)(NOW >> 16);
    mac[31] ^= (uint8_t)(NOW >> 24);
    memcpy(buf + 11, mac, 32);
}

static void after_ok(const faketls_hello *h, uint8_t *rest, size_t n,
                     const tg_secret *s, size_t split)
{
    static uint8_t out[FAKETLS_RECORD_MAX + 512];
    static uint8_t a[FAKETLS_HELLO_BUF_MAX], b[FAKETLS_HELLO_BUF_MAX];
    uint8_t pub[32] = { 9 };
    size_t alen = n < FAKETLS_RECORD_MAX ? n : FAKETLS_RECORD_MAX;
    size_t sh = faketls_build_server_hello(out, sizeof out, h, s, pub, rest, alen);
    if (sh != (alen ? faketls_server_hello_len(h->session_id_len, alen) : 0))
        abort();

    /* Pipelined records: one shot vs two pieces must agree. */
    if (n > sizeof a)
        n = sizeof a;
    faketls_rx r1, r2;
    size_t o1 = 0, o2a = 0, o2b = 0;
    faketls_reason why;
    memcpy(a, rest, n);
    memcpy(b, rest, n);
    faketls_rx_init(&r1);
    faketls_rx_init(&r2);
    int e1 = faketls_rx_unwrap(&r1, a, n, &o1, &why);
    split = n ? split % (n + 1) : 0;
    int e2 = faketls_rx_unwrap(&r2, b, split, &o2a, &why);
    if (e2 == 0) {
        memmove(b + o2a, b + split, n - split);
        e2 = faketls_rx_unwrap(&r2, b + o2a, n - split, &o2b, &why);
    }
    if (e1 != e2 || o1 > n)
        abort();
    if (e1 == 0 && (o1 != o2a + o2b || memcmp(a, b, o1) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[FAKETLS_HELLO_BUF_MAX + 4096];
    tg_secret s = fuzz_secret();
    faketls_hello h;
    faketls_reason r, rp;

    if (size < 1 || size - 1 > sizeof buf)
        return 0;
    uint8_t flags = data[0];
    size_t len = size - 1;
    memcpy(buf, data + 1, len);
    if (flags & 1)
        sign(buf, len, &s);

    faketls_result res = faketls_check_client_hello(buf, len, &s, NOW, 3000, &h, &r);
    if (res == FAKETLS_OK && (h.consumed > len || h.consumed == 0 ||
                              h.session_id_len > 32 || r != FAKETLS_R_NONE))
        abort();
    if (res == FAKETLS_REJECT && (r == FAKETLS_R_NONE || r >= FAKETLS_R_COUNT))
        abort();

    /* A prefix: REJECT there means REJECT here (the reason may differ: a
     * later check can fire first once more records are in); OK there means
     * the hello ended within it. */
    size_t cut = len ? (size_t)(flags >> 1) * len / 127 : 0;
    if (cut > len)
        cut = len;
    faketls_result pres = faketls_check_client_hello(buf, cut, &s, NOW, 3000, NULL, &rp);
    if (pres == FAKETLS_REJECT && (res != FAKETLS_REJECT || rp == FAKETLS_R_NONE))
        abort();
    if (pres == FAKETLS_OK && res != FAKETLS_OK)
        abort();
    if (res == FAKETLS_OK && pres != FAKETLS_OK && cut >= h.consumed)
        abort();
    if (res == FAKETLS_OK)
        after_ok(&h, buf + h.consumed, len - h.consumed, &s, flags);
    return 0;
}
