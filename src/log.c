/* log: formats a whole line first and writes it with one write(2), so lines
 * from several processes sharing stderr never interleave mid-line. */
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A reload sets it on worker 0 while every thread reads it. */
static _Atomic int current_level = LOG_INFO;
static log_format current_format = LOG_TEXT;

/* A flood of per-connection events (a replay storm, a DC outage) must not
 * turn into a flood of blocking writes to stderr: at most LOG_MAX_PER_SEC
 * lines a second, then one line saying how many were dropped. */
#define LOG_MAX_PER_SEC 500
#define LOG_LINE_MAX 1024
static time_t window_sec;
static unsigned window_lines;
static unsigned long dropped;
static pthread_mutex_t window_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

static _Thread_local int thread_worker = -1;

void log_set_level(log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}
void log_set_worker(int n) { thread_worker = n; }
log_level log_get_level(void)
{
    return (log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}
int log_enabled(log_level level)
{
    return (int)level >= atomic_load_explicit(&current_level, memory_order_relaxed);
}
void log_set_format(log_format f) { current_format = f; }
log_format log_get_format(void) { return current_format; }

int log_format_parse(const char *text, log_format *out)
{
    if (strcmp(text, "text") == 0)
        *out = LOG_TEXT;
    else if (strcmp(text, "json") == 0)
        *out = LOG_JSON;
    else
        return -1;
    return 0;
}

/* Replaces control characters so network-derived text cannot forge lines. */
static size_t text_line(char *line, size_t cap, const struct timespec *ts, log_level level,
                        const char *component, const char *msg)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    int n = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000L,
                     level_names[level], component);
    if (n < 0)
        return 0;
    size_t len = (size_t)n < cap - 2 ? (size_t)n : cap - 2;
    for (const char *p = msg; *p && len < cap - 2; p++)
        line[len++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
    return len;
}

/* Appends s as the body of a JSON string; stops before a character that
 * would not fit whole (keeping room for the closing bytes). */
static size_t json_escape(char *out, size_t len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[7];
        size_t n = 0;
        if (ch == '"' || ch == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        } else {
            esc[n++] = (char)ch;
        }
        if (len + n > cap)
            break;
        memcpy(out + len, esc, n);
        len += n;
    }
    return len;
}

static size_t json_line(char *line, size_t cap, const struct timespec *ts, log_level level,
                        const char *component, const char *msg)
{
    unsigned long long ms = (unsigned long long)ts->tv_sec * 1000ull +
                            (unsigned long long)(ts->tv_nsec / 1000000L);
    int n = snprintf(line, cap, "{\"level\":\"%s\",\"timestamp\":%llu,\"logger\":\"",
                     level_names[level], ms);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = json_escape(line, (size_t)n, cap - 40, component);
    memcpy(line + len, "\",\"message\":\"", 13);
    len += 13;
    /* Room for the closing "} and the newline. */
    len = json_escape(line, len, cap - 3, msg);
    line[len++] = '"';
    line[len++] = '}';
    return len;
}

void log_msg(log_level level, const char *component, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[LOG_LINE_MAX], msg[LOG_LINE_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Worker threads and the access lists' refresh thread log too: the
     * window is shared. */
    unsigned long report_dropped = 0;
    int drop;
    pthread_mutex_lock(&window_lock);
    if (ts.tv_sec != window_sec) {
        window_sec = ts.tv_sec;
        window_lines = 0;
        report_dropped = dropped;
        dropped = 0;
    }
    drop = ++window_lines > LOG_MAX_PER_SEC;
    dropped += (unsigned long)drop;
    pthread_mutex_unlock(&window_lock);
    if (report_dropped)
        log_msg(LOG_WARN, "log", "%lu lines dropped (more than %d a second)", report_dropped,
                LOG_MAX_PER_SEC);
    if (drop)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        msg[0] = '\0';
    /* With several workers, each line names its worker: conn[w1]. */
    char comp[64];
    if (thread_worker >= 0) {
        snprintf(comp, sizeof comp, "%s[w%d]", component, thread_worker);
        component = comp;
    }
    size_t len = current_format == LOG_JSON
                     ? json_line(line, sizeof line, &ts, level, component, msg)
                     : text_line(line, sizeof line, &ts, level, component, msg);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
