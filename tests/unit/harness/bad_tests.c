/* Tests that must fail, for harness/selftest.sh: each shows one way the
 * harness refuses a test that proves nothing or reports a failure. */
#include "unit.h"

#include <stdint.h>

TEST(selftest_checks_nothing)
{
}

TEST(selftest_short_mem_differs)
{
    static const uint8_t a[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17 };
    uint8_t b[sizeof a];
    memcpy(b, a, sizeof a);
    b[17] = 0xee;
    CHECK_MEM(a, b, sizeof a);
}

TEST(selftest_long_mem_differs)
{
    static uint8_t a[4096], b[4096];
    b[3000] = 0x5a;
    CHECK_MEM(a, b, sizeof a);
}

TEST(selftest_fail_formats)
{
    FAIL("case %d of %s", 7, "seven");
}

TEST(selftest_check_msg_formats)
{
    CHECK_MSG(1 + 1 == 3, "sum was %d", 1 + 1);
}

TEST(selftest_passes)
{
    CHECK_EQ_INT(1 + 1, 2);
}
