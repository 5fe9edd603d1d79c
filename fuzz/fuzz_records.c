/* Fuzzes faketls_rx_unwrap: the input is cut into pieces at points taken
 * from its first bytes; unwrapping piece by piece must give exactly what
 * one call over the whole input gives (or fail the same way). The relay's
 * zero-copy form, faketls_rx_spans with a span array of 1..4 entries (from
 * the fourth byte), must list exactly those payload bytes too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "faketls.h"

#define MAX_IN 70000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t whole[MAX_IN], piece[MAX_IN];
    faketls_rx a, b;
    faketls_reason why = FAKETLS_R_NONE;
    size_t out_whole = 0, out_pieces = 0;

    if (size < 4 || size - 4 > MAX_IN)
        return 0;
    size_t step1 = (size_t)data[0] + 1, step2 = (size_t)(data[1] << 8 | data[2]) + 1;
    size_t len = size - 4;
    data += 4;

    memcpy(whole, data, len);
    faketls_rx_init(&a);
    int ew = faketls_rx_unwrap(&a, whole, len, &out_whole, &why);
    if (out_whole > len || (ew != 0 && why != FAKETLS_R_BAD_VERSION &&
                             why != FAKETLS_R_BAD_RECORD_LEN && why != FAKETLS_R_BAD_TYPE))
        abort();

    faketls_rx_init(&b);
    int ep = 0;
    for (size_t off = 0, k = 0; off < len && ep == 0; k++) {
        size_t n = k % 2 ? step2 : step1, got = 0;
        if (n > len - off)
            n = len - off;
        memcpy(piece, data + off, n);
        ep = faketls_rx_unwrap(&b, piece, n, &got, NULL);
        if (got > n || out_pieces + got > out_whole ||
            memcmp(piece, whole + out_pieces, got) != 0)
            abort();
        out_pieces += got;
        off += n;
    }
    if (ep != ew || out_pieces != out_whole)
        abort();
    if (ew == 0 && (a.hdr_have != b.hdr_have || a.remaining != b.remaining))
        abort();

    faketls_rx c;
    faketls_span spans[4];
    size_t max = (size_t)(data[-1] & 3) + 1, out_spans = 0;
    int es = 0;
    faketls_rx_init(&c);
    for (size_t off = 0; off < len && es == 0;) {
        size_t count = 0, used = 0;
        es = faketls_rx_spans(&c, data + off, len - off, spans, max, &count, &used, NULL);
        if (count > max || used > len - off || (es == 0 && used == 0))
            abort();
        for (size_t i = 0; i < count; i++) {
            if (spans[i].off + spans[i].len > used || out_spans + spans[i].len > out_whole ||
                memcmp(data + off + spans[i].off, whole + out_spans, spans[i].len) != 0)
                abort();
            out_spans += spans[i].len;
        }
        off += used;
    }
    if (es != ew || out_spans != out_whole)
        abort();
    return 0;
}
