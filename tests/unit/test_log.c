/* log: the rate limit drops lines beyond LOG_MAX_PER_SEC in a second and
 * reports how many it dropped. */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "log.h"

TEST(log_rate_limit_drops_and_reports)
{
    log_level old = log_get_level();
    log_set_level(LOG_INFO);
    unit_stderr_begin();
    for (int i = 0; i < 3000; i++)
        log_info("test", "line %d", i);
    sleep(1);
    log_info("test", "after the window");
    const char *text = unit_stderr_end();
    log_set_level(old);

    CHECK(text != NULL);
    if (text == NULL)
        return;
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    CHECK_MSG(lines < 3000, "%d lines: the flood was not cut", lines);
    CHECK_MSG(lines > 100, "%d lines: the log was silenced", lines);
    CHECK(strstr(text, "lines dropped") != NULL);
    CHECK(strstr(text, "after the window") != NULL);
}
