/*
 * http: the HTTP server (libmicrohttpd, internal thread pool with epoll,
 * one thread per core, keep-alive kept), a router with path parameters,
 * JSON bodies up to HTTP_MAX_BODY, the CONTRACT's error body, a per-request
 * trace id, bearer/cookie authentication with a verified-token cache, and
 * static files for the dashboards.
 *
 * A handler runs on an MHD thread and must answer exactly once with one of
 * the http_reply_* calls; a handler that does not (and did not defer, see
 * http_defer) is answered 500. The request and everything it hands out
 * live until the handler returns, or until a deferred answer.
 */
#ifndef ATES_HTTP_H
#define ATES_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "diag.h"
#include "jwt.h"

#define HTTP_MAX_BODY (64 * 1024)
#define HTTP_TRACE_LEN 64

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

typedef enum http_access {
    HTTP_AUTH = 0,   /* a valid access token (any role unless `roles` says) */
    HTTP_PUBLIC,     /* no token needed (one is still read when present) */
} http_access_t;

typedef void (*http_handler_fn)(http_req_t *req, void *ud);

typedef struct http_route {
    const char *method;   /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *pattern;  /* "/api/tasks/{id}/complete": {name} matches one segment */
    http_handler_fn handler;
    http_access_t access;
    const char *roles;    /* comma-separated roles allowed, NULL = any role */
} http_route_t;

/* The caller's identity, from a verified token. */
typedef struct http_auth {
    bool present;
    char account_id[JWT_SUB_LEN];
    char role[JWT_ROLE_LEN];
    int64_t exp;
} http_auth_t;

typedef struct http_options {
    const char *host;      /* "127.0.0.1" */
    int port;              /* 0 = any free port (see http_port) */
    unsigned threads;      /* 0 = number of cores */
    const char *web_dir;   /* static files, NULL for none */
    const jwt_keys_t *keys;/* verifies tokens; NULL = every HTTP_AUTH route answers 401 */
} http_options_t;

int http_create(http_server_t **out, const http_options_t *opts);
/* Add routes (terminated by an entry with method NULL); `ud` reaches their
 * handlers. Before http_start. A duplicate method+pattern is an error. */
int http_add_routes(http_server_t *s, const http_route_t *routes, void *ud);
int http_start(http_server_t *s);
int http_port(const http_server_t *s); /* the bound port */
void http_stop(http_server_t *s);      /* stop accepting, finish in-flight, join */
void http_free(http_server_t *s);
/* Replace the verifying keys (e.g. after fetching a JWKS); thread-safe. */
void http_set_keys(http_server_t *s, const jwt_keys_t *keys);

/* --- inside a handler ---------------------------------------------------- */
const char *http_method(const http_req_t *req);
const char *http_path(const http_req_t *req);
/* Path parameter `{name}` of the matched pattern (URL-decoded), NULL if none. */
const char *http_param(const http_req_t *req, const char *name);
/* Query argument (decoded), NULL when absent. */
const char *http_query(const http_req_t *req, const char *name);
const char *http_header(const http_req_t *req, const char *name);
const http_auth_t *http_auth(const http_req_t *req);
const char *http_trace_id(const http_req_t *req);
/* The parsed JSON body; NULL when the request had none. A body that is not
 * JSON never reaches a handler (answered 422 by the server). */
const cJSON *http_body(const http_req_t *req);
/* The body as an object, answering 422 itself (and returning NULL) when it
 * is missing or not an object. */
const cJSON *http_body_object(http_req_t *req);
/* true when the body, if there is one, is an object with no member but
 * `fields` (NULL-ended); otherwise answers 422 naming the stranger and
 * returns false. */
bool http_body_only(http_req_t *req, const char *const fields[]);
/* `limit` (default 50, 1..500) and `after` of list endpoints; answers 422
 * and returns -1 on a bad value. */
int http_page(http_req_t *req, int *limit, const char **after);
/* `from` and `to` of a query over business days, as day numbers (see
 * clock.h): `to` defaults to today, `from` to `to`. -1 with a validation
 * diag (nothing answered) on a bad day, from after to, or a range of more
 * than max_days days. */
int http_day_range(http_req_t *req, int max_days, int32_t *from, int32_t *to);
/* true when the caller's role is one of the comma-separated `roles`. */
bool http_role_in(const http_req_t *req, const char *roles);

/* --- answering ----------------------------------------------------------- */
/* Answer later: the handler returns without answering and the request
 * (everything it hands out, its connection suspended meanwhile) waits for
 * one http_reply_* call, which may come from any thread, even before the
 * handler returns. That call is the last touch of req: it may be freed
 * while the call returns, so once req is handed to the answering side the
 * handler leaves it alone. For work that waits on something else (a group
 * commit), so that the MHD thread serves other connections meanwhile. */
void http_defer(http_req_t *req);
void http_add_header(http_req_t *req, const char *name, const char *value);
/* Answer with `body` (taken: freed by the server; NULL = no body). */
void http_reply_json(http_req_t *req, int status, cJSON *body);
void http_reply_empty(http_req_t *req, int status);
void http_reply_text(http_req_t *req, int status, const char *content_type, const char *text);
/* {"error":{"code","message"}} with the status of `kind`. */
void http_reply_error(http_req_t *req, diag_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answer the calling thread's diag as an error (internal when none is set;
 * an internal error's details go to the log, not to the client). */
void http_reply_diag(http_req_t *req);

/* --- token cache, exposed for tests -------------------------------------- */
/* Verify `token` (cached until it expires); 0 and *auth filled, or -1. */
int http_verify_token(http_server_t *s, const char *token, http_auth_t *auth);

/* Run one request through routing, authentication, body parsing and the
 * handler without a socket (tests and fuzzing): `target` is the raw request
 * target ("/api/x?a=1"), `headers` name, value pairs ending with NULL (a
 * Cookie header is split into cookies). Returns the answer's status, 500
 * when none could be built. Works on a server that was never started. */
int http_inject(http_server_t *s, const char *method, const char *target,
                const char *const *headers, const char *body, size_t len);

#endif
