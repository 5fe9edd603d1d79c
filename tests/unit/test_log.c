/* log: the rate limit drops lines beyond LOG_MAX_PER_SEC in a second and
 * reports how many it dropped. */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "log.h"

TEST(log_rate_limit_drops_and_reports)
{
    char path[] = "/tmp/tgf-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    log_level old = log_get_level();
    log_set_level(LOG_INFO);
    for (int i = 0; i < 3000; i++)
        log_info("test", "line %d", i);
    sleep(1);
    log_info("test", "after the window");
    log_set_level(old);
    dup2(saved, STDERR_FILENO);
    close(saved);

    FILE *f = fopen(path, "r");
    char buf[1200];
    int lines = 0, reported = 0, after = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        lines++;
        if (strstr(buf, "lines dropped"))
            reported = 1;
        if (strstr(buf, "after the window"))
            after = 1;
    }
    if (f)
        fclose(f);
    close(fd);
    unlink(path);
    CHECK(lines < 3000);      /* the flood was cut */
    CHECK(lines > 100);       /* but not silenced */
    CHECK(reported);
    CHECK(after);
}
