/* log: one line per event on stderr: "LEVEL component: message", or a
 * JSON object per line (log_set_format).
 * Never pass secrets or keys to these functions. */
#ifndef TGF_LOG_H
#define TGF_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

/* LOG_TEXT: "2024-01-02T03:04:05.678Z info conn: message".
 * LOG_JSON: one object a line with mtg's (zerolog's) field names, for the
 * tools mtg's users already feed:
 *   {"level":"info","timestamp":1704164645678,"logger":"conn","message":"..."}
 * timestamp is Unix milliseconds, as mtg writes it. */
typedef enum { LOG_TEXT = 0, LOG_JSON = 1 } log_format;
void log_set_format(log_format f);
log_format log_get_format(void);
/* "text" or "json" -> 0, anything else -1. */
int log_format_parse(const char *text, log_format *out);

/* Messages below this level are dropped. Default LOG_INFO. */
void log_set_level(log_level level);
log_level log_get_level(void);
int log_enabled(log_level level);

/* The calling thread's worker number, shown as "component[wN]" when the
 * daemon runs several workers; -1 (the default) shows none. */
void log_set_worker(int n);

/* component is a short fixed word ("config", "conn", "main"). */
void log_msg(log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, c, __VA_ARGS__); } while (0)
#define log_info(c, ...)  log_msg(LOG_INFO, c, __VA_ARGS__)
#define log_warn(c, ...)  log_msg(LOG_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_ERROR, c, __VA_ARGS__)

#endif
