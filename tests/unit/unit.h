/* Minimal unit-test harness: TEST(name) registers a function at load time;
 * unit_main.c runs them and prints "N passed, N failed".
 *
 * Strict on purpose, so a test cannot pass by checking nothing:
 *   - every CHECK* counts as a check, passed or not; a test that ran no
 *     check fails ("ran no check");
 *   - a filter argument that selects no test exits non-zero;
 *   - CHECK_MEM prints the offset of the first difference and both
 *     buffers in hex (as BearSSL's check_equals).
 * CHECK* record a failure and keep going so one run shows every problem.
 *
 * Failure reporting, one printf-style helper:
 *   FAIL("prefix %zu: %s", i, name)           an unconditional failure
 *   CHECK_MSG(cond, "prefix %zu: %s", i, name) a check with a message
 * unit_fail(file, line, text) is the older form, kept for existing
 * helpers that pass their caller's line: it is
 * unit_failf(file, line, "%s", text). A helper that checks on its caller's
 * behalf and can pass without calling a CHECK* calls unit_check_count()
 * once per check it made (or uses unit_check(ok, file, line, fmt, ...)). */
#ifndef TGF_UNIT_H
#define TGF_UNIT_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef void (*unit_fn)(void);
void unit_register(const char *name, unit_fn fn);

/* Records one check that ran (passed or failed). */
void unit_check_count(void);
/* Records a failure at file:line with a printf-style message; counts as a
 * check. */
void unit_failf(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Older form of unit_failf with a plain text. */
void unit_fail(const char *file, int line, const char *what);
/* One check: counts it, and on !ok records the failure. Returns ok. */
int unit_check(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Byte comparison of a[0..n) and b[0..n): on a difference records a
 * failure naming `what` and prints the first differing offset and both
 * buffers in hex. Returns 1 when equal. */
int unit_check_mem(const char *file, int line, const char *what,
                   const void *a, const void *b, size_t n);

#define TEST(name)                                                       \
    static void test_##name(void);                                       \
    __attribute__((constructor)) static void register_##name(void)       \
    { unit_register(#name, test_##name); }                               \
    static void test_##name(void)

#define FAIL(...) unit_failf(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK_MSG(cond, ...) unit_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, "%s", #cond)

#define CHECK_EQ_INT(a, b)                                               \
    do { long long a_ = (long long)(a), b_ = (long long)(b);             \
         unit_check(a_ == b_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", \
                    #a, #b, a_, b_); } while (0)

#define CHECK_MEM(a, b, n)                                               \
    unit_check_mem(__FILE__, __LINE__, "memcmp(" #a ", " #b ", " #n ")", \
                   (a), (b), (n))

#define CHECK_STR(a, b)                                                  \
    do { const char *a_ = (a), *b_ = (b);                                \
         unit_check(a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0,     \
                    __FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, \
                    #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

/* Sends stderr (fd 2) to a temporary file until unit_stderr_end(), which
 * restores it and returns what was written, NUL-terminated (a static
 * buffer, truncated to 64 KiB; NULL if the capture could not start).
 * CHECK* between the two land in the capture too: check after the end. */
void unit_stderr_begin(void);
const char *unit_stderr_end(void);

/* Hex helper for known-answer vectors: returns bytes written, or 0 on bad hex. */
size_t unit_unhex(const char *hex, unsigned char *out, size_t cap);

#endif
