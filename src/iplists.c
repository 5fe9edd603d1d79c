/* iplists: sources -> iplist, the refresh thread and the hand-over. */
#include "iplists.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "https.h"
#include "log.h"

static const char *const list_names[2] = { "blocklist", "allowlist" };

static int is_url(const char *src) { return strncmp(src, "https://", 8) == 0; }

/* Reads a whole file (at most IPLISTS_BODY_MAX bytes). */
static char *read_file(const char *path, size_t *len, char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "%s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > IPLISTS_BODY_MAX) {
        snprintf(err, cap, "not a regular file of at most %u MiB", IPLISTS_BODY_MAX >> 20);
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t have = 0;
    while (buf && have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    if (!buf) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    buf[have] = '\0';
    *len = have;
    return buf;
}

/* One source into b. 0, or -1 after logging why. */
static int load_source(iplist_builder *b, const char *src, const char *name,
                       const tlstrust *trust)
{
    char err[300];
    char *text;
    size_t len = 0;
    if (is_url(src)) {
        https_response r;
        if (!trust || trust->count == 0) {
            log_warn("iplist", "%s: %s: no CA certificates to verify it with", name, src);
            return -1;
        }
        if (https_get(src, trust, IPLISTS_TIMEOUT_MS, IPLISTS_BODY_MAX, &r, err, sizeof err)
            != HTTPS_OK) {
            log_warn("iplist", "%s: cannot download %s: %s", name, src, err);
            return -1;
        }
        text = r.body;
        len = r.body_len;
    } else {
        text = read_file(src, &len, err, sizeof err);
        if (!text) {
            log_warn("iplist", "%s: cannot read %s: %s", name, src, err);
            return -1;
        }
    }
    size_t bad = 0;
    size_t n = iplist_builder_add_netset(b, text, len, &bad);
    free(text);
    if (b->oom) {
        log_warn("iplist", "%s: %s: out of memory", name, src);
        return -1;
    }
    if (bad)
        /* mtg stops a file at its first bad line and keeps what came before. */
        log_warn("iplist", "%s: %s: line %zu is not an IP address or network; the rest of "
                 "this source is ignored", name, src, bad);
    log_debug("iplist", "%s: %s: %zu entries", name, src, n);
    return 0;
}

iplist *iplists_load(const config_iplist *cfg, const char *name, const tlstrust *trust,
                     int keep_partial)
{
    iplist_builder b;
    iplist_builder_init(&b);
    int failed = 0;
    for (size_t i = 0; i < cfg->url_count; i++)
        failed |= load_source(&b, cfg->urls[i], name, trust) < 0;
    if (failed && !keep_partial) {
        iplist_builder_free(&b);
        return NULL;
    }
    iplist *l = iplist_build(&b);
    if (!l)
        log_warn("iplist", "%s: out of memory building the list", name);
    return l;
}

/* The refreshed lists and the thread that makes them, shared by every
 * event loop's handle (iplists_share) and by the thread itself: each holds
 * a reference, and the last one out frees it. So a thread still
 * downloading when the loops stop (iplists_stop) touches nothing they
 * free: its sources are copies and the trust anchors moved here. */
typedef struct iplists_refresh {
    atomic_ulong refs;
    config_iplist cfg[2];         /* by iplists_which; copies */
    tlstrust trust;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                     /* under mu */
    int busy;                     /* under mu: loading sources */
    iplist *latest[2];            /* under mu: the newest list (a reference) */
    atomic_ulong gen[2];          /* bumped with each new latest */
    atomic_ulong refresh_ok, refresh_failed;
} iplists_refresh;

static void refresh_drop(iplists_refresh *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    for (int w = 0; w < 2; w++)
        iplist_free(r->latest[w]);
    tlstrust_free(&r->trust);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static uint64_t mono_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void *refresh_main(void *arg)
{
    iplists_refresh *r = arg;
    uint64_t next[2] = { 0, 0 };
    uint64_t t = mono_ms();
    for (int w = 0; w < 2; w++)
        if (r->cfg[w].enabled)
            next[w] = t + r->cfg[w].update_each_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        uint64_t wake = 0;
        for (int w = 0; w < 2; w++)
            if (next[w] && (!wake || next[w] < wake))
                wake = next[w];
        struct timespec until = { (time_t)(wake / 1000), (long)(wake % 1000) * 1000000L };
        int rc = pthread_cond_timedwait(&r->cv, &r->mu, &until);
        if (r->stop)
            break;
        if (rc != ETIMEDOUT)
            continue;
        t = mono_ms();
        for (int w = 0; w < 2 && !r->stop; w++) {
            if (!next[w] || t < next[w])
                continue;
            next[w] = t + r->cfg[w].update_each_ms;
            r->busy = 1;
            pthread_mutex_unlock(&r->mu);
            iplist *l = iplists_load(&r->cfg[w], list_names[w], &r->trust, 0);
            if (l) {
                atomic_fetch_add(&r->refresh_ok, 1);
            } else {
                log_warn("iplist", "%s: refresh failed; keeping the previous list",
                         list_names[w]);
                atomic_fetch_add(&r->refresh_failed, 1);
            }
            pthread_mutex_lock(&r->mu);
            r->busy = 0;
            if (l) {
                iplist *old = r->latest[w];
                r->latest[w] = l;
                atomic_fetch_add(&r->gen[w], 1);
                iplist_free(old);   /* the loops hold their own references */
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    refresh_drop(r);
    return NULL;
}

static int refresh_start(iplists *s, const tgf_config *cfg, tlstrust *trust)
{
    iplists_refresh *r = calloc(1, sizeof *r);
    if (!r) {
        tlstrust_free(trust);
        return -1;
    }
    atomic_init(&r->refs, 2);   /* s's and the thread's */
    r->cfg[IPLISTS_BLOCK] = cfg->blocklist;
    r->cfg[IPLISTS_ALLOW] = cfg->allowlist;
    r->trust = *trust;   /* moved */
    tlstrust_init(trust);
    for (int w = 0; w < 2; w++)
        r->latest[w] = iplist_hold(s->list[w].current);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* The thread inherits a mask with every signal blocked: SIGTERM and
     * SIGHUP must reach the loop's signalfd, never this thread (where their
     * default action would end the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, refresh_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store(&r->refs, 1);
        refresh_drop(r);
        return -1;
    }
    s->refresh = r;
    s->owner = 1;
    return 0;
}

int iplists_start(iplists *s, const tgf_config *cfg, char *err, size_t err_cap)
{
    memset(s, 0, sizeof *s);
    s->list[IPLISTS_BLOCK].cfg = &cfg->blocklist;
    s->list[IPLISTS_ALLOW].cfg = &cfg->allowlist;
    tlstrust trust;
    tlstrust_init(&trust);
    int any = 0, urls = 0;
    for (int w = 0; w < 2; w++) {
        const config_iplist *c = s->list[w].cfg;
        any |= c->enabled;
        for (size_t i = 0; c->enabled && i < c->url_count; i++)
            urls |= is_url(c->urls[i]);
    }
    if (!any)
        return 0;
    if (urls) {
        const char *ca = cfg->ca_file[0] ? cfg->ca_file : TLSTRUST_SYSTEM_BUNDLE;
        char why[300] = "";
        if (tlstrust_add_file(&trust, ca, why, sizeof why) <= 0) {
            snprintf(err, err_cap, "access lists: https sources need CA certificates: %s "
                     "(set [network] ca-file)", why[0] ? why : ca);
            tlstrust_free(&trust);
            return -1;
        }
    }
    for (int w = 0; w < 2; w++) {
        if (!s->list[w].cfg->enabled)
            continue;
        /* At start-up a failed source leaves the others: nothing older to keep. */
        s->list[w].current = iplists_load(s->list[w].cfg, list_names[w], &trust, 1);
        if (!s->list[w].current) {
            snprintf(err, err_cap, "%s: out of memory", list_names[w]);
            tlstrust_free(&trust);
            return -1;
        }
        log_info("iplist", "%s: %zu entries (%zu ranges) from %zu sources; refreshed every %u s",
                 list_names[w], iplist_entries(s->list[w].current),
                 iplist_ranges(s->list[w].current), s->list[w].cfg->url_count,
                 (unsigned)(s->list[w].cfg->update_each_ms / 1000));
    }
    if (refresh_start(s, cfg, &trust) < 0) {
        snprintf(err, err_cap, "access lists: cannot start the refresh thread");
        return -1;
    }
    return 0;
}

void iplists_share(iplists *s, const iplists *owner)
{
    memset(s, 0, sizeof *s);
    iplists_refresh *r = owner->refresh;
    for (int w = 0; w < 2; w++)
        s->list[w].cfg = owner->list[w].cfg;
    if (!r)
        return;   /* no list on */
    atomic_fetch_add(&r->refs, 1);
    s->refresh = r;
    pthread_mutex_lock(&r->mu);
    for (int w = 0; w < 2; w++) {
        s->list[w].current = iplist_hold(r->latest[w]);
        s->list[w].gen = atomic_load(&r->gen[w]);
    }
    pthread_mutex_unlock(&r->mu);
}

int iplists_poll(iplists *s)
{
    int changed = 0;
    iplists_refresh *r = s->refresh;
    for (int w = 0; r && w < 2; w++) {
        if (atomic_load_explicit(&r->gen[w], memory_order_relaxed) == s->list[w].gen)
            continue;
        pthread_mutex_lock(&r->mu);
        iplist *l = iplist_hold(r->latest[w]);
        s->list[w].gen = atomic_load(&r->gen[w]);
        pthread_mutex_unlock(&r->mu);
        /* Lookups through s run on this thread only, so nothing still reads
         * our old reference; other loops hold their own. */
        iplist_free(s->list[w].current);
        s->list[w].current = l;
        log_info("iplist", "%s refreshed: %zu entries", list_names[w], iplist_entries(l));
        changed = 1;
    }
    return changed;
}

iplists_verdict iplists_check(const iplists *s, const struct sockaddr *sa)
{
    /* mtg's order: the allowlist first, then the blocklist. */
    if (s->list[IPLISTS_ALLOW].current && !iplist_contains(s->list[IPLISTS_ALLOW].current, sa))
        return IPLISTS_NOT_ALLOWED;
    if (s->list[IPLISTS_BLOCK].current && iplist_contains(s->list[IPLISTS_BLOCK].current, sa))
        return IPLISTS_BLOCKED;
    return IPLISTS_PASS;
}

size_t iplists_size(const iplists *s, iplists_which w)
{
    return iplist_entries(s->list[w].current);
}

void iplists_stop(iplists *s)
{
    iplists_refresh *r = s->refresh;
    s->refresh = NULL;
    if (r && s->owner) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->cv);
        int busy = r->busy;
        pthread_t th = r->thread;
        pthread_mutex_unlock(&r->mu);
        if (busy)
            /* A download may take up to its timeout, longer than a drain
             * may last: the thread ends on its own after it and drops its
             * reference to what it uses (refresh_main); nothing of ours. */
            pthread_detach(th);
        else
            pthread_join(th, NULL);
    }
    if (r)
        refresh_drop(r);
    s->owner = 0;
    for (int w = 0; w < 2; w++) {
        iplist_free(s->list[w].current);
        s->list[w].current = NULL;
    }
}
