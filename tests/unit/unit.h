/* Minimal unit-test harness: TEST(name) registers a function at load time;
 * unit_main.c runs them all and prints "N passed, N failed".
 * CHECK* record a failure and keep going so one run shows every problem. */
#ifndef TGF_UNIT_H
#define TGF_UNIT_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef void (*unit_fn)(void);
void unit_register(const char *name, unit_fn fn);
void unit_fail(const char *file, int line, const char *what);

#define TEST(name)                                                       \
    static void test_##name(void);                                       \
    __attribute__((constructor)) static void register_##name(void)       \
    { unit_register(#name, test_##name); }                               \
    static void test_##name(void)

#define CHECK(cond)                                                      \
    do { if (!(cond)) unit_fail(__FILE__, __LINE__, #cond); } while (0)

#define CHECK_EQ_INT(a, b)                                               \
    do { long long a_ = (long long)(a), b_ = (long long)(b);             \
         if (a_ != b_) { char m_[256];                                   \
             snprintf(m_, sizeof m_, "%s == %s (%lld vs %lld)", #a, #b,  \
                      a_, b_);                                           \
             unit_fail(__FILE__, __LINE__, m_); } } while (0)

#define CHECK_MEM(a, b, n)                                               \
    do { if (memcmp((a), (b), (n)) != 0)                                 \
         unit_fail(__FILE__, __LINE__, "memcmp(" #a ", " #b ")"); } while (0)

#define CHECK_STR(a, b)                                                  \
    do { const char *a_ = (a), *b_ = (b);                                \
         if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {          \
             char m_[512];                                               \
             snprintf(m_, sizeof m_, "%s == %s (\"%s\" vs \"%s\")", #a,  \
                      #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
             unit_fail(__FILE__, __LINE__, m_); } } while (0)

/* Hex helper for known-answer vectors: returns bytes written, or 0 on bad hex. */
size_t unit_unhex(const char *hex, unsigned char *out, size_t cap);

#endif
