/* promtext: Prometheus text format (0.0.4) into a caller's buffer, for
 * every part of a scrape (metrics.c, secret_usage.c, site_profile.c,
 * web_metrics.c). Output past the buffer is cut, never overrun: len stays
 * below cap and out stays terminated. */
#ifndef TGF_PROMTEXT_H
#define TGF_PROMTEXT_H

#include <stddef.h>

typedef struct {
    char *out;
    size_t cap, len;
} prom_sink;

void prom_emit(prom_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* # HELP and # TYPE lines of prefix_name. */
void prom_header(prom_sink *s, const char *prefix, const char *name, const char *type,
                 const char *help);
/* The same for a counter, named prefix_name_total (promtool's rule). */
void prom_counter(prom_sink *s, const char *prefix, const char *name, const char *help);

#endif
