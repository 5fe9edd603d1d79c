/* Runs every registered TEST; a test passes when it records no failure.
 * An optional argument selects tests whose name contains it. */
#include "unit.h"

#include <stdlib.h>

#define UNIT_MAX_TESTS 1024

static struct { const char *name; unit_fn fn; } tests[UNIT_MAX_TESTS];
static size_t test_count;
static int current_failures;

void unit_register(const char *name, unit_fn fn)
{
    if (test_count == UNIT_MAX_TESTS) {
        fprintf(stderr, "unit: too many tests (max %d)\n", UNIT_MAX_TESTS);
        exit(2);
    }
    tests[test_count].name = name;
    tests[test_count].fn = fn;
    test_count++;
}

void unit_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what);
    current_failures++;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t unit_unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (*hex) {
        if (*hex == ' ' || *hex == '\n') { hex++; continue; }
        int hi = hexval(hex[0]), lo = hex[1] ? hexval(hex[1]) : -1;
        if (hi < 0 || lo < 0 || n == cap) return 0;
        out[n++] = (unsigned char)(hi << 4 | lo);
        hex += 2;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (size_t i = 0; i < test_count; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        current_failures = 0;
        tests[i].fn();
        if (current_failures) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else {
            printf("ok   %s\n", tests[i].name);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
