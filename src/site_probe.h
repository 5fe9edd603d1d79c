/* site_probe: asks the fronted site what its TLS answer looks like.
 *
 * A probe is one TCP connection to the fronting target (with our PROXY v2
 * header first when the target expects one) carrying a ClientHello shaped
 * like a Telegram client's, of one site_shape; it reads the site's first
 * flight until the site goes quiet, then closes. A refresh is two probes
 * per shape (four connections) and yields the answers for the store.
 *
 * The prober runs in its own thread with blocking sockets and short
 * timeouts, so no event loop ever waits for it; it writes the store under
 * its lock, which the loops hold only to copy an answer. Why a thread and
 * not the event loop: a probe is a strict request/response with timeouts
 * and a quiet-gap rule, trivially written as blocking code, and it runs a
 * few times an hour; as loop callbacks it would add a state machine to
 * every loop (and, with several loops, a question of which one owns it).
 * Why not only a blocking probe at start-up: the site's certificate
 * changes while we run (renewals, a new chain), and a stale size is a tell.
 *
 * Schedule: a refresh at start, then a one-connection check every
 * check_s seconds (a changed certificate shows as a changed flight: a
 * full refresh follows at once), and a full refresh every refresh_s. A
 * failed refresh keeps the previous answers and is logged once until one
 * succeeds again. */
#ifndef TGF_SITE_PROBE_H
#define TGF_SITE_PROBE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dc.h"
#include "site_profile.h"

#define SITE_PROBES_PER_SHAPE 2
#define SITE_PROBE_MAX_ADDRS 8

/* Builds a Telegram-like ClientHello of the given shape for sni into out
 * (random, session id, keys and GREASE freshly drawn; an ML-KEM-768 key
 * that passes the site's checks). Returns its length, or 0 if cap is too
 * small or the RNG failed. */
size_t site_probe_hello(site_shape shape, const char *sni, uint8_t *out, size_t cap);

typedef struct {
    /* Copies, not a pointer to the config: the prober thread outlives the
     * server's configs (a reload drops them; shutdown frees the start-up one
     * before the prober is stopped). */
    char host[SECRET_HOST_MAX + 1];   /* the SNI of the probe hellos */
    int proxy_protocol;               /* [domain-fronting] proxy-protocol */
    dc_addr addrs[SITE_PROBE_MAX_ADDRS];
    size_t count;
    unsigned timeout_ms;           /* per probe connection */
} site_target;

/* Fills t from the configuration and the resolved fronting addresses; t
 * keeps no pointer into cfg. */
void site_target_init(site_target *t, const tgf_config *cfg, const dc_addr *addrs, size_t n);

/* One probe: *out gets the flight. Returns 0, or -1 with a reason in err. */
int site_probe_once(const site_target *t, site_shape shape, site_flight *out, char *err,
                    size_t err_cap);

/* A refresh: answers[i] / learned[i] for each shape. Returns the number of
 * shapes learned (0 with err set when none). */
int site_probe_refresh(const site_target *t, site_answer answers[SITE_SHAPES],
                       int learned[SITE_SHAPES], char *err, size_t err_cap);

typedef struct {
    site_store *store;
    site_target target;
    unsigned refresh_s, check_s;
    pthread_t thread;
    int started;
    int stop_fd[2];                /* a byte on [1] wakes and stops the thread */
} site_prober;

/* Starts the prober thread (the first refresh runs at once). Returns 0, or
 * -1 with errno (the proxy then keeps the default answer). */
int site_prober_start(site_prober *p, site_store *store, const site_target *t,
                      unsigned refresh_s, unsigned check_s);
/* Stops it (a probe in progress is abandoned at once) and joins. */
void site_prober_stop(site_prober *p);

#endif
