/*
 * log: JSON lines on stderr, one object per line:
 *   {"time":"2026-11-24T10:00:00.123Z","level":"info","service":"tracker",
 *    "trace_id":"...","message":"...","src":"file.c:42"}
 * The service and trace id are per-thread context set by whoever runs the
 * code (a service's threads, the HTTP layer for the request's trace id).
 */
#ifndef ATES_LOG_H
#define ATES_LOG_H

typedef enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* "error"|"warn"|"info"|"debug" -> level; -1 on an unknown name. */
int log_level_parse(const char *name, log_level_t *out);

/* Per-thread context; the strings are copied (bounded). NULL clears. */
void log_set_service(const char *service);
void log_set_trace(const char *trace_id);
const char *log_trace(void); /* "" when none */
const char *log_service(void); /* "" when none */

void log_emit(log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(...) log_emit(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

/* Log the calling thread's diag at `level`, prefixed by `what`. */
void log_diag(log_level_t level, const char *what);

#endif
