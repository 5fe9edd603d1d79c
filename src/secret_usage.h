/* secret_usage: what each named secret is using right now (open Telegram
 * connections, traffic, the current quota window) and why its clients were
 * refused, kept by name for the life of the process.
 *
 * One table per process, shared by every event loop like the replay filter:
 * counters are atomics, so a limit holds across loops, and a secret keeps
 * its numbers across reloads (a reload that keeps a name keeps its slot;
 * removed names keep theirs, so counters never go backwards). Slots are
 * only ever added, under a mutex; lookups take no lock. */
#ifndef TGF_SECRET_USAGE_H
#define TGF_SECRET_USAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Names seen over the process's life: a few reloads' worth of renames. */
#define SECRET_USAGE_MAX (4 * CONFIG_SECRETS_MAX)

/* Why a client that proved a secret was not served (a metric label). */
typedef enum {
    USAGE_EXPIRED,          /* past [secret-limits.NAME] expires */
    USAGE_MAX_CONNECTIONS,  /* max-connections relays already open */
    USAGE_QUOTA,            /* quota used up for this quota-period */
    USAGE_TIME_SKEW,        /* the HMAC proved it; the timestamp did not pass */
    USAGE_REFUSED_COUNT
} usage_refusal;

const char *secret_usage_refusal_name(usage_refusal r);

typedef struct {
    char name[CONFIG_SECRET_NAME_MAX + 1];
    _Atomic uint64_t connections;          /* open Telegram relays (gauge) */
    _Atomic uint64_t accepted;             /* served clients (counter) */
    _Atomic uint64_t traffic[2];           /* by metrics_direction */
    _Atomic uint64_t refused[USAGE_REFUSED_COUNT];
    _Atomic int64_t window_start;          /* Unix s of the current quota window */
    _Atomic uint64_t window_bytes;         /* both directions in that window */
} usage_slot;

typedef struct secret_usage secret_usage;

secret_usage *secret_usage_create(void);
void secret_usage_destroy(secret_usage *u);

/* The slot for name, created when new. NULL when the table is full. */
usage_slot *secret_usage_slot(secret_usage *u, const char *name);
/* Creates the slots of every secret of cfg. 0, or -1 when the table is
 * full (a reload that would not fit is refused). */
int secret_usage_prepare(secret_usage *u, const tgf_config *cfg);

/* Takes one connection for a client of cfg's secret i at now_unix:
 * USAGE_REFUSED_COUNT when it may be served (the connection is counted;
 * give it back with secret_usage_release), else why not (counted too). */
usage_refusal secret_usage_admit(usage_slot *slot, const config_secret *s, int64_t now_unix);
void secret_usage_release(usage_slot *slot);
/* Why a client of s would be refused at now_unix (as secret_usage_admit
 * decides), without taking a connection or counting anything: for a
 * decision before any connection exists (the WEB bridge page).
 * USAGE_REFUSED_COUNT when it would be served. */
usage_refusal secret_usage_check(usage_slot *slot, const config_secret *s, int64_t now_unix);
/* Counts a refusal decided elsewhere (the clock skew). */
void secret_usage_refuse(usage_slot *slot, usage_refusal why);
/* Bytes relayed for the secret (direction: metrics_direction). */
void secret_usage_add(usage_slot *slot, int direction, uint64_t bytes);

/* Rate limit for the clock-skew warning: 1 when a warning may be logged now
 * (at most one per interval), with *suppressed set to the skewed hellos not
 * logged since the last one; 0 when this one is only counted. Also keeps
 * the last skew seen for the metrics. */
int secret_usage_skew_warn(secret_usage *u, int64_t skew_s, uint64_t now_ms, uint64_t *suppressed);

/* Appends Prometheus text for every slot (prefix as metrics_render) to
 * out[len..cap), NUL-terminated; returns the new length. */
size_t secret_usage_render(const secret_usage *u, const char *prefix, char *out, size_t len,
                           size_t cap);

#endif
