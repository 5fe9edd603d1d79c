/* fdlimit: the descriptor budget. Containers often start with a soft
 * RLIMIT_NOFILE of 1024 (Go programs such as Caddy and mtg raise their
 * own); we raise ours to the hard limit at start-up. */
#ifndef TGF_FDLIMIT_H
#define TGF_FDLIMIT_H

#include <stdint.h>

typedef struct {
    uint64_t soft_before, soft, hard;   /* RLIM_INFINITY is reported as UINT64_MAX */
} fdlimit_info;

/* Raises the soft limit to the hard one (or to the kernel's nr_open when the
 * hard limit is infinite). Fills out either way. Returns 0, or -1 with errno
 * when the limits cannot be read or raised (out still holds what is known). */
int fdlimit_raise(fdlimit_info *out);

#endif
