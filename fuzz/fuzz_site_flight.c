/* Fuzzes site_flight_parse (what the fronted site sends the prober) and
 * what is learned from it: never a read outside the input, never an
 * answer outside the bounds the ServerHello builder accepts. */
#include <stdint.h>
#include <stdlib.h>

#include "site_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    site_flight f;
    site_answer a;
    const char *why = NULL;
    site_flight_result r = site_flight_parse(data, size, &f, &why);
    if (r == SITE_FLIGHT_REJECT && why == NULL)
        abort();
    if (r != SITE_FLIGHT_OK)
        return 0;
    if (f.records == 0 || f.flight_bytes > size)
        abort();
    if (site_answer_learn(&f, 1, &a, &why) == 0) {
        size_t n = site_answer_appdata_len(&a, (uint32_t)size * 2654435761u, 16384);
        if (n == 0 || n > 16384 || !site_answer_fits(&a, &f))
            abort();
        if (faketls_shaped_len(32, &a.sh, n) == 0)
            abort();
    }
    return 0;
}
