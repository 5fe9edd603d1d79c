/* stack_probe: checks that a function leaves no copy of a secret in the
 * dead stack frames below its caller (the frames of the function and of
 * everything it called). Included by tests that check wiping.
 *
 * probe_call runs fn from below a padding frame, so the dead frames of fn
 * lie under the area the scan itself then occupies; probe_stack_has scans
 * PROBE_DEPTH bytes below the caller's frame. Reading dead stack is outside
 * the C abstract machine, so this is a test-only, best-effort tool: a
 * reported leak is real, and the checks were seen to fail before the fixes
 * under both the musl -O2 and the ASan builds. */
#ifndef TGF_STACK_PROBE_H
#define TGF_STACK_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PROBE_DEPTH 16384
#define PROBE_PAD 512

typedef void (*probe_fn)(void *arg);

/* The padding keeps fn's frames deeper than probe_stack_has's own frame. */
__attribute__((noinline, unused))
static void probe_call(probe_fn fn, void *arg)
{
    volatile unsigned char pad[PROBE_PAD];
    pad[0] = 0;
    fn(arg);
    pad[PROBE_PAD - 1] = pad[0];
}

/* 1 when the n bytes at pat occur in the PROBE_DEPTH bytes below the
 * caller's frame. */
__attribute__((noinline, unused))
static int probe_stack_has(const void *pat, size_t n)
{
    const volatile unsigned char *top = __builtin_frame_address(0);
    const volatile unsigned char *lo = top - PROBE_DEPTH;
    const unsigned char *p = pat;
    for (const volatile unsigned char *s = lo; s + n <= top; s++) {
        size_t k = 0;
        while (k < n && s[k] == p[k])
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

/* Zeroes the stack area the probes look at, e.g. after the test itself
 * computed expected patterns with calls that leave them behind. */
__attribute__((noinline, unused))
static void probe_scrub(void)
{
    volatile unsigned char area[PROBE_DEPTH + PROBE_PAD];
    for (size_t i = 0; i < sizeof area; i++)
        area[i] = 0;
}

/* The same bytes with every aligned 4-byte group reversed: SHA-256 keeps
 * message words in host order on little-endian machines. */
__attribute__((unused))
static void probe_swap32(const void *in, void *out, size_t n)
{
    const unsigned char *i = in;
    unsigned char *o = out;
    for (size_t k = 0; k + 4 <= n; k += 4) {
        o[k] = i[k + 3];
        o[k + 1] = i[k + 2];
        o[k + 2] = i[k + 1];
        o[k + 3] = i[k];
    }
}

#endif
