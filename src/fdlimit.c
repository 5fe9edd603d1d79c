#include "fdlimit.h"

#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

/* The most descriptors a process may have: setrlimit refuses more. */
static rlim_t nr_open(void)
{
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v ? (rlim_t)v : 1048576;
}

static uint64_t as_u64(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v; }

int fdlimit_raise(fdlimit_info *out)
{
    struct rlimit rl;
    *out = (fdlimit_info){ 0, 0, 0 };
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    out->soft_before = out->soft = as_u64(rl.rlim_cur);
    out->hard = as_u64(rl.rlim_max);
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? nr_open() : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return 0;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    out->soft = as_u64(want);
    return 0;
}
