/* Fuzzes the v1 frame decoder as the mux uses it: the input is cut into
 * messages (first byte: message length modulus) and each fed in pieces of
 * a second size; the frames found must be the same as in one-piece feeds,
 * payload pieces must add up to the header's length and stay inside the
 * input, and every accepted header must obey the v1 rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web_frame.h"

static size_t run(uint8_t *b, size_t n, size_t step, uint8_t *trace, size_t cap, int *errs)
{
    web_frame_rx d;
    web_frame_rx_init(&d, 65536);
    web_frame_rx_message(&d);
    size_t o = 0, off = 0;
    uint32_t got = 0;
    while (off < n) {
        size_t end = off + (n - off < step ? n - off : step);
        for (;;) {
            size_t used = 0, pl = 0;
            uint8_t *p = NULL;
            web_frame_event e = web_frame_rx_feed(&d, b + off, end - off, &used, &p, &pl);
            off += used;
            if (e == WFX_NEED_MORE) {
                if (off != end)
                    abort();
                break;
            }
            if (e == WFX_ERROR) {
                *errs = d.why;
                return o;
            }
            if (o + 16 > cap)
                abort();
            if (e == WFX_HEADER) {
                if (web_frame_check_client(d.type, d.stream, d.len, 65536) != WF_R_NONE)
                    abort();
                got = 0;
                trace[o++] = d.type;
                memcpy(trace + o, &d.len, 4);
                o += 4;
            } else {
                got += (uint32_t)pl;
                if (got > d.len || p < b || p + pl > b + n)
                    abort();
                if (d.left == 0)
                    trace[o++] = 0xee;   /* payload complete */
            }
        }
    }
    *errs = web_frame_rx_end(&d) < 0 ? (int)d.why : 0;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    memcpy(b, data + 1, n);
    size_t cap = 4 * n + 64;
    uint8_t *t1 = malloc(cap), *t2 = malloc(cap);
    int e1 = 0, e2 = 0;
    size_t a = run(b, n, n ? n : 1, t1, cap, &e1);
    size_t c = run(b, n, (size_t)(data[0] % 13) + 1, t2, cap, &e2);
    if (a != c || memcmp(t1, t2, a) != 0 || e1 != e2)
        abort();
    free(b);
    free(t1);
    free(t2);
    return 0;
}
