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

/* log-format = "json": one object a line with mtg's field names; quotes,
 * backslashes and control characters from the network are escaped. */
TEST(log_json_lines)
{
    log_level old = log_get_level();
    log_set_level(LOG_INFO);
    sleep(1);   /* a fresh rate-limit window */
    log_set_format(LOG_JSON);
    unit_stderr_begin();
    log_warn("conn", "bad \"sni\" \\ here\nforged {\x01}");
    log_debug("conn", "not shown");
    const char *text = unit_stderr_end();
    log_set_format(LOG_TEXT);
    log_set_level(old);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    CHECK_MSG(strncmp(text, "{\"level\":\"warn\",\"timestamp\":", 28) == 0, "got %s", text);
    CHECK_MSG(strstr(text, "\"logger\":\"conn\",\"message\":\"bad \\\"sni\\\" \\\\ here\\u000aforged "
                           "{\\u0001}\"}\n") != NULL, "got %s", text);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    CHECK_EQ_INT(lines, 1);
    log_format f;
    CHECK(log_format_parse("json", &f) == 0 && f == LOG_JSON);
    CHECK(log_format_parse("JSON", &f) < 0);
}
