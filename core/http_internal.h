/*
 * http_internal: what the pieces of the HTTP layer share and nothing else
 * may use: the router (http_router.c: patterns split into segments once at
 * add time, matched against the raw request path) and the static file
 * lookup (http_static.c).
 */
#ifndef ATES_HTTP_INTERNAL_H
#define ATES_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "metrics.h"

#define HTTP_MAX_SEGS 16  /* path segments of a pattern or a routable path */
#define HTTP_MAX_PARAMS 8 /* {name} segments in one pattern */
#define HTTP_ALLOW_LEN 64 /* "GET, HEAD, POST, ..." of a 405 */

/* Status classes counted per route: 1xx..5xx -> 0..4. */
#define HTTP_CLASSES 5

/* Request counters and latency of one label set (a route, the static
 * files, or the requests that matched nothing). A counter is registered
 * the first time its status class occurs, so unused classes cost no series. */
typedef struct http_stats {
    const char *route, *method;             /* label values (static storage or the route's) */
    metrics_counter_t *count[HTTP_CLASSES]; /* by status class; atomic, NULL until used */
    metrics_histogram_t *latency;           /* request duration */
} http_stats_t;

/* One segment of a pattern: a literal to compare or a {param} to capture. */
typedef struct http_seg {
    char *text;  /* the literal, or the parameter's name (malloc'd) */
    size_t len;  /* strlen(text) */
    bool param;  /* true for {name} */
} http_seg_t;

/* A route as added: a copy of http_route_t plus its split pattern. */
typedef struct http_rroute {
    char *method;          /* "GET", ... (malloc'd) */
    char *pattern;         /* the pattern text (malloc'd) */
    char *label;           /* the pattern as a metrics label, {id} -> :id (malloc'd) */
    char *roles;           /* comma list or NULL (malloc'd) */
    http_handler_fn handler;
    http_access_t access;
    void *ud;              /* reaches the handler */
    int nseg;              /* number of segments; "/" has 0 */
    http_seg_t seg[HTTP_MAX_SEGS];
    http_stats_t stats;    /* filled by http.c */
} http_rroute_t;

typedef struct http_router {
    http_rroute_t **routes; /* in the order added */
    size_t n, cap;
} http_router_t;

typedef enum http_match_result {
    HTTP_MATCH_OK = 0,
    HTTP_MATCH_NOT_FOUND, /* no pattern fits the path */
    HTTP_MATCH_METHOD,    /* some pattern fits, none with this method */
} http_match_result_t;

/* The outcome of a match: the route and its decoded parameters. */
typedef struct http_match {
    http_rroute_t *route;              /* NULL unless HTTP_MATCH_OK */
    int nparams;
    const char *name[HTTP_MAX_PARAMS]; /* owned by the route */
    const char *value[HTTP_MAX_PARAMS];/* decoded, in the caller's scratch */
    char allow[HTTP_ALLOW_LEN];        /* methods that fit, for HTTP_MATCH_METHOD */
} http_match_t;

void http_router_init(http_router_t *r);
void http_router_free(http_router_t *r);
/* Add one route (pattern validated and split); -1 (diag) on a bad pattern,
 * a duplicate method + pattern shape, or OOM. *out gets the stored route. */
int http_router_add(http_router_t *r, const http_route_t *route, void *ud, http_rroute_t **out);
/* Match `path` (raw, still percent-encoded, no query) for `method` (HEAD
 * also matches GET routes). The most specific pattern wins: at the first
 * position where two differ, a literal beats a parameter. Parameter values
 * are decoded into `scratch` (needs strlen(path) + 1 bytes). */
http_match_result_t http_router_match(const http_router_t *r, const char *method,
                                      const char *path, char *scratch, size_t scratch_len,
                                      http_match_t *m);
/* Percent-decode src[0..len) into dst (room for len + 1); -1 on a bad
 * escape or a decoded NUL. Returns the decoded length. */
long http_pct_decode(const char *src, size_t len, char *dst);

/* Find the static file for `path` (raw request path) under `web_dir`:
 * "/" -> index.html, "/name" -> name.html when it exists, else the path
 * itself when its extension is allowed. Unsafe paths never resolve.
 * 0 with an open fd, its size and content type; -1 when there is none. */
int http_static_open(const char *web_dir, const char *path, int *fd, size_t *size,
                     const char **content_type);

#endif
