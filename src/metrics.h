/* metrics: counters and gauges in fixed arrays, rendered as Prometheus text
 * with mtg's metric names (prefix "mtg" by default) so existing dashboards
 * keep working. One metrics object per event loop; rendering sums them. */
#ifndef TGF_METRICS_H
#define TGF_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "close_reason.h"
#include "faketls.h"
#include "site_profile.h"

#define METRICS_MAX_DC_ADDRS 160   /* distinct (dc, telegram_ip) pairs */

typedef enum { METRICS_IPV4 = 0, METRICS_IPV6 = 1 } metrics_family;
typedef enum { METRICS_TO_CLIENT = 0, METRICS_FROM_CLIENT = 1 } metrics_direction;

const char *metrics_close_reason_name(close_reason r);

typedef struct {
    char ip[64];
    int dc;
    uint64_t connections;      /* gauge */
    uint64_t traffic[2];       /* indexed by metrics_direction */
} metrics_dc_slot;

typedef struct {
    uint64_t client_connections[2];          /* gauge, by family */
    uint64_t fronting_connections[2];        /* gauge, by family */
    uint64_t fronting_traffic[2];            /* by direction */
    uint64_t domain_fronting;                /* events */
    uint64_t concurrency_limited;
    uint64_t replay_attacks;
    uint64_t front_unreachable;              /* fronting dials that failed */
    uint64_t memory_waits;                   /* pool cap reached (set by the server) */
    uint64_t handshake_rejected[FAKETLS_R_COUNT];
    uint64_t closed[CLOSE_REASON_COUNT];
    metrics_dc_slot dc[METRICS_MAX_DC_ADDRS];
    size_t dc_count;
    site_store *site;                        /* rendered from the first object */
} metrics;

void metrics_init(metrics *m);
metrics_family metrics_family_of(const struct sockaddr *sa);
/* Finds or creates the slot for (dc, ip text); returns NULL when full. */
metrics_dc_slot *metrics_dc_slot_get(metrics *m, int dc, const char *ip);

/* Renders Prometheus text format 0.0.4 for the sum of n metrics objects.
 * Returns the length written (output truncated at cap - 1, NUL-terminated). */
size_t metrics_render(const metrics *const *ms, size_t n, const char *prefix,
                      char *out, size_t cap);

#endif
