/*
 * diag: the one error idiom of aTES.
 *
 * Functions return 0 on success and -1 on failure; on failure they leave the
 * details here, in a per-thread slot: an error kind (which the HTTP layer
 * maps to the CONTRACT's error code and status), a message, and the file and
 * line that set it. Modeled on Tarantool's diag_set and nats.c's err.h.
 */
#ifndef ATES_DIAG_H
#define ATES_DIAG_H

typedef enum diag_kind {
    DIAG_OK = 0,
    DIAG_UNAUTHORIZED,   /* 401 unauthorized */
    DIAG_FORBIDDEN,      /* 403 forbidden */
    DIAG_NOT_FOUND,      /* 404 not_found */
    DIAG_METHOD,         /* 405 method_not_allowed */
    DIAG_CONFLICT,       /* 409 conflict */
    DIAG_TOO_LARGE,      /* 413 too_large */
    DIAG_VALIDATION,     /* 422 validation */
    DIAG_TOO_MANY,       /* 429 too_many_requests */
    DIAG_INTERNAL,       /* 500 internal */
    DIAG_UNAVAILABLE,    /* 503 unavailable */
} diag_kind_t;

#define DIAG_MESSAGE_MAX 512

typedef struct diag {
    diag_kind_t kind;
    char message[DIAG_MESSAGE_MAX];
    const char *file; /* __FILE__ of the setter (static storage) */
    int line;
} diag_t;

/* Record an error for the calling thread; always returns -1 so that
 * `return diag_set(...)` reads naturally. */
int diag_set_at(const char *file, int line, diag_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define diag_set(kind, ...) diag_set_at(__FILE__, __LINE__, (kind), __VA_ARGS__)

/* The calling thread's last error (kind DIAG_OK when none). */
const diag_t *diag_last(void);
void diag_clear(void);

/* "unauthorized", "validation", ... and the HTTP status of a kind. */
const char *diag_kind_code(diag_kind_t kind);
int diag_kind_status(diag_kind_t kind);

#endif
