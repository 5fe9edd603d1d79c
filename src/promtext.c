/* promtext: see promtext.h. */
#include "promtext.h"

#include <stdarg.h>
#include <stdio.h>

void prom_emit(prom_sink *s, const char *fmt, ...)
{
    if (s->len + 1 >= s->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->out + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s->len += (size_t)n;
    if (s->len >= s->cap)
        s->len = s->cap - 1;
}

void prom_header(prom_sink *s, const char *prefix, const char *name, const char *type,
                 const char *help)
{
    prom_emit(s, "# HELP %s_%s %s\n# TYPE %s_%s %s\n", prefix, name, help, prefix, name, type);
}

void prom_counter(prom_sink *s, const char *prefix, const char *name, const char *help)
{
    prom_emit(s, "# HELP %s_%s_total %s\n# TYPE %s_%s_total counter\n", prefix, name, help,
              prefix, name);
}
