/* Fuzzes the RFC 6455 decoder: the input (a flag byte, then client bytes)
 * is fed whole and again in pieces of the sizes the flag byte picks; both
 * runs must give the same events and the same unmasked bytes, stop at the
 * same error, and respect the message limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web_ws.h"

#define LIMIT 4096

static size_t run(const uint8_t *in, size_t n, size_t step, uint8_t *trace, size_t cap)
{
    ws_rx d;
    uint8_t *b = malloc(n ? n : 1);
    memcpy(b, in, n);
    ws_rx_init(&d, LIMIT);
    size_t o = 0, off = 0;
    uint64_t msg = 0;
    int last_data = 0;   /* consecutive data events merge: splits differ */
    while (off < n) {
        size_t left = n - off < step ? n - off : step;
        size_t end = off + left;
        for (;;) {
            size_t used = 0, pl = 0;
            uint8_t *p = NULL;
            ws_event e = ws_rx_feed(&d, b + off, end - off, &used, &p, &pl);
            off += used;
            if (off > end)
                abort();
            if (o + 2 + pl + WS_CONTROL_MAX > cap)
                abort();
            if (e == WSX_NEED_MORE) {
                if (off != end)
                    abort();
                break;
            }
            if (e != WSX_MSG_DATA || !last_data)
                trace[o++] = (uint8_t)e;
            last_data = e == WSX_MSG_DATA;
            if (e == WSX_ERROR) {
                trace[o++] = (uint8_t)d.close_code;
                free(b);
                return o;
            }
            if (e == WSX_MSG_BEGIN)
                msg = 0;
            if (e == WSX_MSG_DATA) {
                msg += pl;
                if (msg > LIMIT || p < b || p + pl > b + n)
                    abort();
                memcpy(trace + o, p, pl);
                o += pl;
            }
            if (e == WSX_CONTROL) {
                if (d.ctl_len > WS_CONTROL_MAX)
                    abort();
                memcpy(trace + o, d.ctl, d.ctl_len);
                o += d.ctl_len;
            }
        }
    }
    free(b);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t cap = 4 * size + 4096;
    uint8_t *t1 = malloc(cap), *t2 = malloc(cap);
    size_t a = run(data + 1, size - 1, size, t1, cap);
    size_t b = run(data + 1, size - 1, (size_t)(data[0] % 17) + 1, t2, cap);
    if (a != b || memcmp(t1, t2, a) != 0)
        abort();
    free(t1);
    free(t2);
    return 0;
}
