/* site_doctor: doctor's "Site's TLS answer" lines: what the daemon learns
 * from the fronting target (site_probe.h), probed now. */
#include "site_doctor.h"

#include <stdio.h>

#include "server.h"
#include "site_probe.h"

int site_doctor(const tgf_config *cfg)
{
    dc_addr addrs[SERVER_MAX_FRONT_ADDRS];
    char err[512];
    if (!cfg->site_profile_enabled) {
        printf("  [skip] site-profile disabled: the FakeTLS answer keeps the default shape\n");
        return 0;
    }
    int n = server_resolve_fronting(cfg, addrs, SERVER_MAX_FRONT_ADDRS, err, sizeof err);
    if (n < 0) {
        printf("  [FAIL] %s\n", err);
        return 1;
    }
    site_target t;
    site_answer a[SITE_SHAPES];
    int learned[SITE_SHAPES];
    site_target_init(&t, cfg, addrs, (size_t)n);
    int got = site_probe_refresh(&t, a, learned, err, sizeof err);
    for (int s = 0; s < SITE_SHAPES; s++) {
        char d[256];
        if (!learned[s]) {
            printf("  [FAIL] %s hello: %s; the daemon answers with the default shape\n",
                   site_shape_name((site_shape)s), err);
            continue;
        }
        site_answer_describe(&a[s], d, sizeof d);
        printf("  [ok]   %s hello: %s (probed now, age 0 s; the daemon relearns every %u s "
               "and checks every %u s)\n",
               site_shape_name((site_shape)s), d, (unsigned)cfg->site_refresh_s,
               (unsigned)cfg->site_check_s);
    }
    return got == SITE_SHAPES ? 0 : 1;
}
