/*
 * log: JSON lines on stderr (see log.h). One fprintf-free write(2) per line
 * so that lines from different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"

static atomic_int g_level = LOG_INFO;
static _Thread_local char tls_service[32];
static _Thread_local char tls_trace[64];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(log_level_t level) { atomic_store(&g_level, (int)level); }
log_level_t log_get_level(void) { return (log_level_t)atomic_load(&g_level); }

int log_level_parse(const char *name, log_level_t *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    if (!src) src = "";
    snprintf(dst, cap, "%s", src);
}

void log_set_service(const char *service) { copy_bounded(tls_service, sizeof(tls_service), service); }
void log_set_trace(const char *trace_id) { copy_bounded(tls_trace, sizeof(tls_trace), trace_id); }
const char *log_trace(void) { return tls_trace; }
const char *log_service(void) { return tls_service; }

/* Append `s` JSON-escaped to buf[*len..cap), keeping room for the tail. */
static void put_escaped(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p && *len + 7 < cap; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)c;
        } else if (c == '\n') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = 'n';
        } else if (c < 0x20) {
            buf[(*len)++] = '\\';
            buf[(*len)++] = 'u';
            buf[(*len)++] = '0';
            buf[(*len)++] = '0';
            buf[(*len)++] = hex[c >> 4];
            buf[(*len)++] = hex[c & 15];
        } else {
            buf[(*len)++] = (char)c;
        }
    }
}

static void put_raw(char *buf, size_t cap, size_t *len, const char *s)
{
    while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
}

void log_emit(log_level_t level, const char *file, int line, const char *fmt, ...)
{
    if ((int)level > atomic_load(&g_level)) return;

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(clock_now_ms(), when);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char src[96];
    snprintf(src, sizeof(src), "%s:%d", base, line);

    char buf[4096];
    size_t len = 0;
    const size_t cap = sizeof(buf) - 4; /* room for "}\n" */
    put_raw(buf, cap, &len, "{\"time\":\"");
    put_raw(buf, cap, &len, when);
    put_raw(buf, cap, &len, "\",\"level\":\"");
    put_raw(buf, cap, &len, level_names[level]);
    put_raw(buf, cap, &len, "\",\"service\":\"");
    put_escaped(buf, cap, &len, tls_service);
    put_raw(buf, cap, &len, "\",\"trace_id\":\"");
    put_escaped(buf, cap, &len, tls_trace);
    put_raw(buf, cap, &len, "\",\"message\":\"");
    put_escaped(buf, cap, &len, msg);
    put_raw(buf, cap, &len, "\",\"src\":\"");
    put_escaped(buf, cap, &len, src);
    put_raw(buf, cap, &len, "\"");
    buf[len++] = '}';
    buf[len++] = '\n';
    ssize_t off = 0;
    while ((size_t)off < len) {
        ssize_t n = write(STDERR_FILENO, buf + off, len - (size_t)off);
        if (n <= 0) break;
        off += n;
    }
}

void log_diag(log_level_t level, const char *what)
{
    const diag_t *d = diag_last();
    log_emit(level, d->file ? d->file : "?", d->line, "%s: %s (%s)", what, d->message,
             diag_kind_code(d->kind));
}
