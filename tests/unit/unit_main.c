/* Runs the registered TESTs; a test passes when it ran at least one check
 * and recorded no failure. An optional argument selects the tests whose
 * name contains it; selecting none is an error (a typo must not pass). */
#include "unit.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define UNIT_MAX_TESTS 1024
/* Buffers up to this size are dumped whole; longer ones as a window
 * around the first difference. */
#define UNIT_DUMP_WHOLE 256
#define UNIT_DUMP_BEFORE 32
#define UNIT_DUMP_AFTER 96

static struct { const char *name; unit_fn fn; } tests[UNIT_MAX_TESTS];
static size_t test_count;
static int current_failures;
static long current_checks;

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

void unit_check_count(void)
{
    current_checks++;
}

static void vfail(const char *file, int line, const char *fmt, va_list ap)
{
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    current_failures++;
    current_checks++;
}

void unit_failf(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, fmt, ap);
    va_end(ap);
}

void unit_fail(const char *file, int line, const char *what)
{
    unit_failf(file, line, "%s", what);
}

int unit_check(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        current_checks++;
        return 1;
    }
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, fmt, ap);
    va_end(ap);
    return 0;
}

/* Hex lines of 16 bytes, each led by its offset, for p[from..to). */
static void dump(const char *label, const uint8_t *p, size_t from, size_t to)
{
    fprintf(stderr, "    %s:\n", label);
    for (size_t i = from; i < to; i += 16) {
        fprintf(stderr, "      %06zx ", i);
        for (size_t j = i; j < i + 16 && j < to; j++)
            fprintf(stderr, " %02x", p[j]);
        fputc('\n', stderr);
    }
}

int unit_check_mem(const char *file, int line, const char *what,
                   const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    size_t first = 0;
    while (first < n && x[first] == y[first])
        first++;
    if (first == n) {
        current_checks++;
        return 1;
    }
    unit_failf(file, line, "%s: %zu bytes differ from offset %zu", what, n, first);
    size_t from = 0, to = n;
    if (n > UNIT_DUMP_WHOLE) {
        from = first > UNIT_DUMP_BEFORE ? (first - UNIT_DUMP_BEFORE) & ~(size_t)15 : 0;
        to = n - from > UNIT_DUMP_AFTER + UNIT_DUMP_BEFORE
                 ? from + UNIT_DUMP_AFTER + UNIT_DUMP_BEFORE : n;
        fprintf(stderr, "    (bytes %zu..%zu of %zu)\n", from, to, n);
    }
    dump("got", x, from, to);
    dump("want", y, from, to);
    return 0;
}

static int capture_fd = -1, saved_stderr = -1;

void unit_stderr_begin(void)
{
    char path[] = "/tmp/tgf-unit-stderr-XXXXXX";
    capture_fd = mkstemp(path);
    if (capture_fd < 0)
        return;
    unlink(path);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(capture_fd, STDERR_FILENO);
}

const char *unit_stderr_end(void)
{
    static char text[65536];
    if (capture_fd < 0)
        return NULL;
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    ssize_t n = pread(capture_fd, text, sizeof text - 1, 0);
    close(capture_fd);
    capture_fd = saved_stderr = -1;
    text[n > 0 ? n : 0] = '\0';
    return text;
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

/* Judges one test that has run; returns 1 when it passed. */
static int judge(const char *name)
{
    if (current_failures) {
        printf("FAIL %s\n", name);
        return 0;
    }
    if (current_checks == 0) {
        printf("FAIL %s (ran no check)\n", name);
        return 0;
    }
    printf("ok   %s\n", name);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: %s [name-substring]\n", argv[0]);
        return 2;
    }
    /* Line-buffered, so a test's FAIL details (stderr) and its verdict
     * (stdout) stay in order when both go to one log. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (size_t i = 0; i < test_count; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        current_failures = 0;
        current_checks = 0;
        tests[i].fn();
        if (judge(tests[i].name))
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (passed + failed == 0) {
        fprintf(stderr, "unit: no test matches '%s'\n", filter ? filter : "");
        return 1;
    }
    return failed ? 1 : 0;
}
