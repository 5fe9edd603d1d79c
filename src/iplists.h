/* iplists: the blocklist and the allowlist ([defense.blocklist],
 * [defense.allowlist]) with their sources (FireHOL netset files and https
 * URLs) and their refresh every update-each.
 *
 * Threads: the first load runs in iplists_start (start-up); refreshes run
 * in one thread of their own, so a slow download never blocks the event
 * loop. A refreshed list is handed over through an atomic pointer and
 * swapped in by each loop in iplists_poll: a lookup sees the old list or the
 * new one, never a mix. A refresh in which any source fails keeps the
 * previous list (mtg would drop that source's entries).
 *
 * Several event loops: the first starts the lists and the thread, each
 * other one takes a handle on them (iplists_share), so every source is
 * loaded once for the process. Each loop holds a reference to the lists it
 * reads (iplist_hold) and swaps in a refresh in its own iplists_poll; the
 * old list is freed when the last loop has let go of it. */
#ifndef TGF_IPLISTS_H
#define TGF_IPLISTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "iplist.h"
#include "tlstrust.h"

#define IPLISTS_BODY_MAX (64u << 20)   /* one downloaded source */
#define IPLISTS_TIMEOUT_MS 30000       /* connect and each read of a download */

typedef enum { IPLISTS_BLOCK = 0, IPLISTS_ALLOW = 1 } iplists_which;

typedef enum {
    IPLISTS_PASS,         /* go on with the connection */
    IPLISTS_BLOCKED,      /* in the blocklist: front it */
    IPLISTS_NOT_ALLOWED   /* allowlist enabled and the address not in it: front it */
} iplists_verdict;

typedef struct {
    const config_iplist *cfg;
    iplist *current;              /* the loop's reference; NULL when the list is off */
    unsigned long gen;            /* the refresh it came from */
} iplists_one;

struct iplists_refresh;

typedef struct iplists {
    iplists_one list[2];          /* by iplists_which */
    /* The refresh thread's state and lists, on the heap and shared by
     * every loop's handle and the thread (a reference each): a stop during
     * a download leaves it to the thread, which drops it when the
     * download ends (the loops and the config may be gone by then). NULL:
     * no list is on. */
    struct iplists_refresh *refresh;
    int owner;                    /* started the thread (iplists_start) */
} iplists;

/* Loads every enabled list once (a source that fails is logged; at start-up
 * what did load is used) and starts the refresh thread when a list is on.
 * cfg is read during the call only (the thread keeps copies of what it
 * needs). Returns 0, or -1 with err set (no memory, no thread, an https
 * source without a readable CA bundle). */
int iplists_start(iplists *s, const tgf_config *cfg, char *err, size_t err_cap);
/* Another event loop's handle on owner's lists (started with
 * iplists_start, in any thread before either loop runs): the same lists
 * and refreshes, loaded once for the process; lookups on s stay on s's
 * loop. s and owner may be stopped in any order. */
void iplists_share(iplists *s, const iplists *owner);
/* On the loop: swaps in refreshed lists. Returns 1 when one changed. */
int iplists_poll(iplists *s);
/* On the loop: what to do with a client at sa. */
iplists_verdict iplists_check(const iplists *s, const struct sockaddr *sa);
/* Entries in the current list (0 when off). */
size_t iplists_size(const iplists *s, iplists_which w);
/* Gives back s's lists; the owner's also stops the thread. Safe on a
 * zeroed or stopped s. */
void iplists_stop(iplists *s);

/* Loads one list's sources into a new list (blocking). Returns the list,
 * or NULL when any source failed (failures are logged) and keep_partial is
 * 0; with keep_partial what loaded is returned. For the thread, the first
 * load and tests. */
iplist *iplists_load(const config_iplist *cfg, const char *name, const tlstrust *trust,
                     int keep_partial);

#endif
