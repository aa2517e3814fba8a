/*
 * diag: the per-thread last error (see diag.h).
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local diag_t tls_diag;

int diag_set_at(const char *file, int line, diag_kind_t kind, const char *fmt, ...)
{
    char msg[sizeof(tls_diag.message)]; /* the arguments may point into tls_diag.message */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(tls_diag.message, msg, sizeof(msg));
    tls_diag.kind = kind;
    tls_diag.file = file;
    tls_diag.line = line;
    return -1;
}

const diag_t *diag_last(void) { return &tls_diag; }

void diag_clear(void)
{
    tls_diag.kind = DIAG_OK;
    tls_diag.message[0] = '\0';
    tls_diag.file = NULL;
    tls_diag.line = 0;
}

static const struct {
    const char *code;
    int status;
} kinds[] = {
    [DIAG_OK] = {"ok", 200},
    [DIAG_UNAUTHORIZED] = {"unauthorized", 401},
    [DIAG_FORBIDDEN] = {"forbidden", 403},
    [DIAG_NOT_FOUND] = {"not_found", 404},
    [DIAG_METHOD] = {"method_not_allowed", 405},
    [DIAG_CONFLICT] = {"conflict", 409},
    [DIAG_TOO_LARGE] = {"too_large", 413},
    [DIAG_VALIDATION] = {"validation", 422},
    [DIAG_TOO_MANY] = {"too_many_requests", 429},
    [DIAG_INTERNAL] = {"internal", 500},
    [DIAG_UNAVAILABLE] = {"unavailable", 503},
};

const char *diag_kind_code(diag_kind_t kind)
{
    if ((unsigned)kind >= sizeof(kinds) / sizeof(kinds[0])) return "internal";
    return kinds[kind].code;
}

int diag_kind_status(diag_kind_t kind)
{
    if ((unsigned)kind >= sizeof(kinds) / sizeof(kinds[0])) return 500;
    return kinds[kind].status;
}
