/* cli: helpers shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

int cli_usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tgfront: %s (see 'tgfront help')\n", msg);
    return CLI_EXIT_USAGE;
}

int cli_load_config(const char *path, tgf_config *cfg)
{
    char err[512];
    if (config_load_file(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tgfront: %s\n", err);
        return -1;
    }
    return 0;
}
