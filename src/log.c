/* log: formats a whole line first and writes it with one write(2), so lines
 * from several processes sharing stderr never interleave mid-line. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static log_level current_level = LOG_INFO;

/* A flood of per-connection events (a replay storm, a DC outage) must not
 * turn into a flood of blocking writes to stderr: at most LOG_MAX_PER_SEC
 * lines a second, then one line saying how many were dropped. */
#define LOG_MAX_PER_SEC 500
static time_t window_sec;
static unsigned window_lines;
static unsigned long dropped;
static pthread_mutex_t window_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

static _Thread_local int thread_worker = -1;

void log_set_level(log_level level) { current_level = level; }
void log_set_worker(int n) { thread_worker = n; }
log_level log_get_level(void) { return current_level; }
int log_enabled(log_level level) { return level >= current_level; }

void log_msg(log_level level, const char *component, const char *fmt, ...)
{
    if (level < current_level)
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Worker threads share the window. */
    unsigned long report = 0;
    int admit;
    pthread_mutex_lock(&window_lock);
    if (ts.tv_sec != window_sec) {
        window_sec = ts.tv_sec;
        window_lines = 0;
        report = dropped;
        dropped = 0;
    }
    admit = ++window_lines <= LOG_MAX_PER_SEC;
    if (!admit)
        dropped++;
    pthread_mutex_unlock(&window_lock);
    if (report)
        log_msg(LOG_WARN, "log", "%lu lines dropped (more than %d a second)", report,
                LOG_MAX_PER_SEC);
    if (!admit)
        return;
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[level], component);
    if (n > 0 && thread_worker >= 0 && (size_t)n < sizeof line - 16)
        n += snprintf(line + n - 2, 16, "[w%d]: ", thread_worker) - 2;
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* Replace control characters so network-derived text cannot forge lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
