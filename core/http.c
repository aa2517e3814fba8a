/*
 * http: the server around libmicrohttpd (see http.h).
 *
 * A request's life: MHD's URI log callback allocates its http_req_t (with a
 * copy of the raw, still-encoded path) and that becomes *con_cls; the first
 * call of the access handler only marks it started (queueing a response on
 * that call would make MHD close every keep-alive connection); the calls
 * with upload data fill a body buffer bounded by HTTP_MAX_BODY (beyond it
 * the rest is consumed and dropped, and the answer is 413); the final call
 * routes, authenticates, parses the JSON body, runs the handler and queues
 * the one response it built. MHD_OPTION_NOTIFY_COMPLETED frees the request.
 *
 * Verified tokens are cached in a direct-mapped table (slot = hash of the
 * token, a full comparison on hit) until their exp, so an authorized request
 * costs a hash and a memcmp, not an Ed25519 verification.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define CACHE_SLOTS 4096      /* power of two */
#define CACHE_SHARDS 64       /* locks; slot % CACHE_SHARDS */
#define CACHE_TOKEN_MAX 1024  /* longer tokens are verified every time */
#define PENDING_HEADERS 16    /* http_add_header calls per request */
#define CONNECTION_TIMEOUT 30 /* seconds of idleness before MHD closes */
#define FD_RESERVE 256        /* descriptors kept for everything but HTTP clients */
#define DEFER_STOP_MS 10000   /* http_stop waits this long for deferred answers */

/* A verified token and the identity it carries. */
typedef struct cache_entry {
    uint64_t hash;
    char *token; /* malloc'd copy, NULL for an empty slot */
    size_t len;
    int64_t exp; /* seconds; the entry is dead from then on */
    char sub[JWT_SUB_LEN];
    char role[JWT_ROLE_LEN];
} cache_entry_t;

struct http_server {
    char *host;
    int port;                 /* asked for; the bound one once started */
    unsigned threads;
    char *web_dir;            /* NULL: no static files */
    http_router_t router;
    struct MHD_Daemon *daemon;
    pthread_rwlock_t keys_lock; /* guards keys; held while verifying */
    const jwt_keys_t *keys;
    cache_entry_t *cache;     /* CACHE_SLOTS entries */
    pthread_mutex_t shard[CACHE_SHARDS];
    http_stats_t static_stats, other_stats;
    pthread_mutex_t defer_lock; /* guards nothing but the waits below */
    pthread_cond_t defer_cond;  /* a deferred answer came: http_inject, http_stop */
    _Atomic int deferred;       /* requests deferred and not yet answered */
};

/* A deferred request's state (http_defer). The answering thread and the
 * MHD thread that suspends the connection race; whichever comes second
 * resumes it. */
enum { DEFER_NONE, DEFER_WAITING, DEFER_SUSPENDED, DEFER_ANSWERED };

typedef struct header_kv {
    char *name, *value;
} header_kv_t;

struct http_req {
    http_server_t *srv;
    struct MHD_Connection *conn;
    const char *method;    /* owned by MHD, valid for the request */
    const char *path;      /* decoded by MHD */
    char *raw;             /* raw path without query; the router's scratch follows */
    char *scratch;
    size_t scratch_len;
    bool started;          /* the first access handler call happened */
    bool too_large;        /* the body went over HTTP_MAX_BODY */
    bool oom;              /* the body could not be stored */
    char *body;
    size_t body_len, body_cap;
    cJSON *json;           /* the parsed body, NULL when none */
    http_match_t match;
    http_stats_t *stats;   /* where this request is counted */
    http_auth_t auth;
    char trace[HTTP_TRACE_LEN];
    int64_t t0_us;         /* monotonic start */
    bool answered;
    _Atomic int defer;     /* DEFER_* */
    int status;
    struct MHD_Response *resp; /* built by the answer, queued after the handler */
    int nheaders;
    header_kv_t headers[PENDING_HEADERS];
    struct inject *inj;    /* set for http_inject: headers and query without MHD */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- metrics ---------------------------------------------------------------- */

static void stats_init(http_stats_t *st, const char *route, const char *method)
{
    char labels[512];
    st->route = route;
    st->method = method;
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", route, method);
    st->latency = metrics_histogram("ates_http_request_duration_seconds",
                                    "HTTP request handling time", labels);
}

static void stats_record(const http_req_t *req)
{
    http_stats_t *st = req->stats ? req->stats : &req->srv->other_stats;
    int c = req->status / 100 - 1;
    if (c < 0 || c >= HTTP_CLASSES) c = HTTP_CLASSES - 1;
    metrics_counter_t *ctr = __atomic_load_n(&st->count[c], __ATOMIC_ACQUIRE);
    if (!ctr) { /* get-or-create: racing threads get the same series */
        char labels[512];
        snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",class=\"%dxx\"",
                 st->route, st->method, c + 1);
        ctr = metrics_counter("ates_http_requests_total",
                              "HTTP requests by route and status class", labels);
        __atomic_store_n(&st->count[c], ctr, __ATOMIC_RELEASE);
    }
    metrics_inc(ctr, 1);
    int64_t us = now_us() - req->t0_us;
    metrics_observe_us(st->latency, us > 0 ? (uint64_t)us : 0);
}

/* --- token cache ------------------------------------------------------------ */

static uint64_t token_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void fill_auth(http_auth_t *auth, const char *sub, const char *role, int64_t exp)
{
    auth->present = true;
    snprintf(auth->account_id, sizeof(auth->account_id), "%s", sub);
    snprintf(auth->role, sizeof(auth->role), "%s", role);
    auth->exp = exp;
}

static bool cache_get(http_server_t *s, uint64_t h, const char *token, size_t len, int64_t now,
                      http_auth_t *auth)
{
    size_t slot = h & (CACHE_SLOTS - 1);
    pthread_mutex_t *lock = &s->shard[slot % CACHE_SHARDS];
    cache_entry_t *e = &s->cache[slot];
    bool hit = false;
    pthread_mutex_lock(lock);
    if (e->token && e->hash == h && e->len == len && now < e->exp &&
        memcmp(e->token, token, len) == 0) {
        fill_auth(auth, e->sub, e->role, e->exp);
        hit = true;
    }
    pthread_mutex_unlock(lock);
    return hit;
}

static void cache_put(http_server_t *s, uint64_t h, const char *token, size_t len,
                      const jwt_claims_t *c)
{
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, token, len + 1);
    size_t slot = h & (CACHE_SLOTS - 1);
    pthread_mutex_t *lock = &s->shard[slot % CACHE_SHARDS];
    cache_entry_t *e = &s->cache[slot];
    pthread_mutex_lock(lock);
    char *old = e->token;
    e->hash = h;
    e->token = copy;
    e->len = len;
    e->exp = c->exp;
    snprintf(e->sub, sizeof(e->sub), "%s", c->sub);
    snprintf(e->role, sizeof(e->role), "%s", c->role);
    pthread_mutex_unlock(lock);
    free(old);
}

static void cache_clear(http_server_t *s)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        pthread_mutex_t *lock = &s->shard[i % CACHE_SHARDS];
        pthread_mutex_lock(lock);
        char *old = s->cache[i].token;
        s->cache[i].token = NULL;
        pthread_mutex_unlock(lock);
        free(old);
    }
}

int http_verify_token(http_server_t *s, const char *token, http_auth_t *auth)
{
    memset(auth, 0, sizeof(*auth));
    size_t len = strlen(token);
    int64_t now = clock_now_ms() / 1000;
    uint64_t h = token_hash(token, len);
    bool cacheable = len <= CACHE_TOKEN_MAX;
    if (cacheable && cache_get(s, h, token, len, now, auth)) return 0;

    jwt_claims_t c = {0};
    int rc;
    pthread_rwlock_rdlock(&s->keys_lock);
    if (!s->keys) {
        rc = diag_set(DIAG_UNAUTHORIZED, "no keys to verify tokens");
    } else {
        rc = jwt_verify(s->keys, token, now, &c);
        /* inserted under the keys lock, so http_set_keys clears it after */
        if (rc == 0 && cacheable) cache_put(s, h, token, len, &c);
    }
    pthread_rwlock_unlock(&s->keys_lock);
    if (rc < 0) return -1;
    fill_auth(auth, c.sub, c.role, c.exp);
    return 0;
}

void http_set_keys(http_server_t *s, const jwt_keys_t *keys)
{
    pthread_rwlock_wrlock(&s->keys_lock);
    s->keys = keys;
    cache_clear(s);
    pthread_rwlock_unlock(&s->keys_lock);
}

/* --- answering -------------------------------------------------------------- */

/* true when this is the first answer; a second one is logged and dropped. */
static bool begin_reply(http_req_t *req)
{
    if (req->answered) {
        log_warn("http: %s %s answered twice; the second answer is ignored", req->method,
                 req->path);
        return false;
    }
    req->answered = true;
    return true;
}

static void deferred_answered(http_req_t *req);

/* The end of every answer: nothing touches req after it when deferred. */
static void set_response(http_req_t *req, int status, struct MHD_Response *r,
                         const char *content_type)
{
    if (!r) log_error("http: cannot build a response (out of memory)");
    req->resp = r;
    req->status = status;
    if (r && content_type) MHD_add_response_header(r, "Content-Type", content_type);
    if (atomic_load_explicit(&req->defer, memory_order_relaxed) != DEFER_NONE)
        deferred_answered(req);
}

static void free_json_text(void *text) { cJSON_free(text); }

void http_reply_json(http_req_t *req, int status, cJSON *body)
{
    if (!begin_reply(req)) {
        cJSON_Delete(body);
        return;
    }
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    struct MHD_Response *r;
    if (text) {
        r = MHD_create_response_from_buffer_with_free_callback(strlen(text), text,
                                                               free_json_text);
        if (!r) cJSON_free(text);
    } else {
        r = body ? NULL : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    set_response(req, status, r, "application/json");
}

void http_reply_empty(http_req_t *req, int status)
{
    if (!begin_reply(req)) return;
    set_response(req, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT),
                 NULL);
}

void http_reply_text(http_req_t *req, int status, const char *content_type, const char *text)
{
    if (!begin_reply(req)) return;
    set_response(req, status,
                 MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY),
                 content_type);
}

void http_reply_error(http_req_t *req, diag_kind_t kind, const char *fmt, ...)
{
    if (req->answered) {
        begin_reply(req); /* logs the ignored second answer */
        return;
    }
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    cJSON *body = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(body, "error");
    cJSON_AddStringToObject(err, "code", diag_kind_code(kind));
    cJSON_AddStringToObject(err, "message", message);
    if (kind == DIAG_UNAUTHORIZED) http_add_header(req, "WWW-Authenticate", "Bearer");
    http_reply_json(req, diag_kind_status(kind), body);
}

void http_reply_diag(http_req_t *req)
{
    const diag_t *d = diag_last();
    if (d->kind == DIAG_OK || d->kind == DIAG_INTERNAL || diag_kind_status(d->kind) == 500) {
        log_diag(LOG_ERROR, "http: internal error");
        http_reply_error(req, DIAG_INTERNAL, "internal error");
        return;
    }
    char message[sizeof(d->message)];
    snprintf(message, sizeof(message), "%s", d->message);
    http_reply_error(req, d->kind, "%s", message);
}

void http_defer(http_req_t *req)
{
    if (atomic_load_explicit(&req->defer, memory_order_relaxed) != DEFER_NONE) return;
    atomic_fetch_add(&req->srv->deferred, 1);
    atomic_store(&req->defer, DEFER_WAITING);
}

/* A deferred request has its answer (on the answering thread, the last
 * touch of req there): if its connection is already suspended, resume it
 * (MHD then calls on_request again, which queues the answer); if not, the
 * thread that ran the handler sees DEFER_ANSWERED and queues it itself. */
static void deferred_answered(http_req_t *req)
{
    http_server_t *s = req->srv;
    bool inject = req->inj != NULL;
    struct MHD_Connection *conn = req->conn;
    int old = atomic_exchange(&req->defer, DEFER_ANSWERED);
    /* req may be gone from here on */
    if (old == DEFER_SUSPENDED && !inject) MHD_resume_connection(conn);
    atomic_fetch_sub(&s->deferred, 1);
    pthread_mutex_lock(&s->defer_lock);
    pthread_cond_broadcast(&s->defer_cond);
    pthread_mutex_unlock(&s->defer_lock);
}

void http_add_header(http_req_t *req, const char *name, const char *value)
{
    if (req->nheaders == PENDING_HEADERS) {
        log_warn("http: too many headers added; %s dropped", name);
        return;
    }
    header_kv_t *h = &req->headers[req->nheaders];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        log_error("http: out of memory adding header %s", name);
        return;
    }
    req->nheaders++;
}

/* --- inside a handler ------------------------------------------------------- */

const char *http_method(const http_req_t *req) { return req->method; }
const char *http_path(const http_req_t *req) { return req->path; }
const http_auth_t *http_auth(const http_req_t *req) { return &req->auth; }
const char *http_trace_id(const http_req_t *req) { return req->trace; }
const cJSON *http_body(const http_req_t *req) { return req->json; }

const char *http_param(const http_req_t *req, const char *name)
{
    for (int i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.name[i], name) == 0) return req->match.value[i];
    return NULL;
}

static const char *inject_lookup(const struct inject *inj, int kind, const char *name);

const char *http_query(const http_req_t *req, const char *name)
{
    if (req->inj) return inject_lookup(req->inj, MHD_GET_ARGUMENT_KIND, name);
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_req_t *req, const char *name)
{
    if (req->inj) return inject_lookup(req->inj, MHD_HEADER_KIND, name);
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static const char *http_cookie(const http_req_t *req, const char *name)
{
    if (req->inj) return inject_lookup(req->inj, MHD_COOKIE_KIND, name);
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

const cJSON *http_body_object(http_req_t *req)
{
    if (cJSON_IsObject(req->json)) return req->json;
    http_reply_error(req, DIAG_VALIDATION, req->json ? "the body must be a JSON object"
                                                     : "a JSON object body is required");
    return NULL;
}

bool http_body_only(http_req_t *req, const char *const fields[])
{
    if (!req->json) return true;
    if (!cJSON_IsObject(req->json)) {
        http_reply_error(req, DIAG_VALIDATION, "the body must be a JSON object");
        return false;
    }
    if (json_only_fields(req->json, fields) == 0) return true;
    http_reply_diag(req);
    return false;
}

int http_page(http_req_t *req, int *limit, const char **after)
{
    const char *text = http_query(req, "limit");
    *limit = 50;
    if (text) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (text[0] < '0' || text[0] > '9' || errno || *end || v < 1 || v > 500) {
            http_reply_error(req, DIAG_VALIDATION, "limit must be an integer from 1 to 500");
            return -1;
        }
        *limit = (int)v;
    }
    *after = http_query(req, "after");
    if (*after && !uuid_valid(*after)) { /* not the end of the list: a cursor this never gave */
        http_reply_error(req, DIAG_VALIDATION, "after must be the id of an item (a UUID), as in next");
        return -1;
    }
    return 0;
}

int http_day_range(http_req_t *req, int max_days, int32_t *from, int32_t *to)
{
    const char *f = http_query(req, "from"), *t = http_query(req, "to");
    if (!t) *to = clock_today();
    else if (clock_day_number(t, to) < 0)
        return diag_set(DIAG_VALIDATION, "to must be a day YYYY-MM-DD");
    if (!f) *from = *to;
    else if (clock_day_number(f, from) < 0)
        return diag_set(DIAG_VALIDATION, "from must be a day YYYY-MM-DD");
    if (*from > *to) return diag_set(DIAG_VALIDATION, "from must not be after to");
    if (*to - *from + 1 > max_days)
        return diag_set(DIAG_VALIDATION, "a range covers at most %d days", max_days);
    return 0;
}

bool http_role_in(const http_req_t *req, const char *roles)
{
    if (!req->auth.present || !roles) return false;
    size_t rlen = strlen(req->auth.role);
    for (const char *p = roles; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && p[end - 1] == ' ') end--;
        if (end > 0 && end == rlen && memcmp(p, req->auth.role, rlen) == 0) return true;
        p += len;
    }
    return false;
}

/* --- the request's life ----------------------------------------------------- */

static http_req_t *req_new(http_server_t *s)
{
    http_req_t *req = calloc(1, sizeof(*req));
    if (!req) return NULL;
    req->srv = s;
    req->t0_us = now_us();
    return req;
}

/* Keep the raw path of `target` (up to '?' or '#') and scratch room after it. */
static int req_set_path(http_req_t *req, const char *target)
{
    size_t len = strcspn(target, "?#");
    char *raw = malloc(2 * len + 2);
    if (!raw) return -1;
    memcpy(raw, target, len);
    raw[len] = '\0';
    free(req->raw);
    req->raw = raw;
    req->scratch = raw + len + 1;
    req->scratch_len = len + 1;
    return 0;
}

static void req_free(http_req_t *req)
{
    if (!req) return;
    if (req->resp) MHD_destroy_response(req->resp);
    for (int i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    cJSON_Delete(req->json);
    free(req->body);
    free(req->raw);
    free(req);
}

static void body_append(http_req_t *req, const char *data, size_t n)
{
    if (req->too_large || req->oom) return;
    if (n > (size_t)HTTP_MAX_BODY - req->body_len) {
        req->too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    size_t need = req->body_len + n;
    if (need > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap * 2 : 1024;
        while (cap < need) cap *= 2;
        if (cap > (size_t)HTTP_MAX_BODY) cap = (size_t)HTTP_MAX_BODY;
        char *grown = realloc(req->body, cap);
        if (!grown) {
            req->oom = true;
            return;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len = need;
}

static bool trace_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* The caller's X-Request-Id when it is sane, else a new UUIDv7. */
static void take_trace(http_req_t *req)
{
    const char *in = http_header(req, "X-Request-Id");
    if (in) {
        size_t len = 0;
        while (len < HTTP_TRACE_LEN && trace_char(in[len])) len++;
        if (len > 0 && len < HTTP_TRACE_LEN && in[len] == '\0') {
            memcpy(req->trace, in, len + 1);
            return;
        }
    }
    char id[UUID_LEN];
    uuid_v7(id);
    snprintf(req->trace, sizeof(req->trace), "%s", id);
}

static bool safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

/* Fill req->auth from a bearer header or the ates_token cookie and enforce
 * the route's access; 0 to go on, -1 when answered (401/403). */
static int authenticate(http_req_t *req, const http_rroute_t *route)
{
    const char *token = NULL;
    bool from_cookie = false;
    const char *authz = http_header(req, "Authorization");
    if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        token = authz + 7;
        while (*token == ' ') token++;
    } else {
        token = http_cookie(req, "ates_token");
        from_cookie = token != NULL;
    }
    bool ok = token && *token && http_verify_token(req->srv, token, &req->auth) == 0;
    if (ok && from_cookie && !safe_method(req->method)) {
        const char *xrw = http_header(req, "X-Requested-With");
        if (!xrw || strcmp(xrw, "ates") != 0) {
            memset(&req->auth, 0, sizeof(req->auth));
            if (route->access == HTTP_PUBLIC) return 0;
            http_reply_error(req, DIAG_FORBIDDEN,
                             "cookie authentication needs the header X-Requested-With: ates");
            return -1;
        }
    }
    if (route->access == HTTP_PUBLIC) return 0;
    if (!ok) {
        http_reply_error(req, DIAG_UNAUTHORIZED, "%s",
                         token && *token ? diag_last()->message : "an access token is required");
        return -1;
    }
    if (route->roles && !http_role_in(req, route->roles)) {
        http_reply_error(req, DIAG_FORBIDDEN, "role %s may not do this", req->auth.role);
        return -1;
    }
    return 0;
}

/* Answer from the web directory; -1 when there is no such file. */
static int serve_static(http_req_t *req)
{
    int fd;
    size_t size;
    const char *type;
    if (http_static_open(req->srv->web_dir, req->raw, &fd, &size, &type) < 0) return -1;
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)size, fd);
    if (!r) close(fd);
    req->answered = true;
    req->stats = &req->srv->static_stats;
    set_response(req, 200, r, type);
    if (r) MHD_add_response_header(r, "Cache-Control", "no-cache");
    return 0;
}

static bool is_api_path(const char *p) { return strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0; }

/* Route and run the handler; always leaves an answer (or a NULL response
 * when one could not be built). */
static void dispatch(http_req_t *req)
{
    http_server_t *s = req->srv;
    if (req->too_large) {
        http_reply_error(req, DIAG_TOO_LARGE, "the body is over %d bytes", HTTP_MAX_BODY);
        return;
    }
    if (req->oom) {
        http_reply_error(req, DIAG_UNAVAILABLE, "out of memory");
        return;
    }
    http_match_result_t res =
        http_router_match(&s->router, req->method, req->raw, req->scratch, req->scratch_len,
                          &req->match);
    if (res != HTTP_MATCH_OK) {
        bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
        if (get && s->web_dir && !is_api_path(req->raw) && serve_static(req) == 0) return;
        if (res == HTTP_MATCH_METHOD) {
            http_add_header(req, "Allow", req->match.allow);
            http_reply_error(req, DIAG_METHOD, "method %s is not allowed here", req->method);
        } else {
            http_reply_error(req, DIAG_NOT_FOUND, "no such resource");
        }
        return;
    }
    http_rroute_t *route = req->match.route;
    req->stats = &route->stats;
    if (authenticate(req, route) < 0) return;
    if (req->body_len > 0) {
        if (json_text_sound(req->body, req->body_len) == 0)
            req->json = json_parse_strict(req->body, req->body_len);
        if (!req->json) {
            http_reply_error(req, DIAG_VALIDATION, "the body is not valid JSON: %s",
                             diag_last()->message);
            return;
        }
    }
    diag_clear();
    route->handler(req, route->ud);
    if (atomic_load(&req->defer) == DEFER_NONE && !req->answered) {
        log_error("http: the handler of %s %s did not answer", route->method, route->pattern);
        http_reply_error(req, DIAG_INTERNAL, "internal error");
    }
}

/* Queue the answer req holds (or close when none could be built). */
static enum MHD_Result queue_answer(http_req_t *req)
{
    log_debug("http: %s %s %d", req->method, req->path, req->status);
    struct MHD_Response *r = req->resp;
    req->resp = NULL;
    if (!r) return MHD_NO;
    if (req->inj) { /* no connection: the status is the result */
        MHD_destroy_response(r);
        stats_record(req);
        return MHD_YES;
    }
    MHD_add_response_header(r, "X-Request-Id", req->trace);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < req->nheaders; i++)
        MHD_add_response_header(r, req->headers[i].name, req->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    stats_record(req);
    return ret;
}

/* After a handler that deferred: true when the answer is already there
 * (queue it now); otherwise the connection is left suspended (or, for
 * http_inject, this thread waits) until it comes. */
static bool defer_wait(http_req_t *req)
{
    if (atomic_load(&req->defer) == DEFER_ANSWERED) return true;
    http_server_t *s = req->srv;
    if (req->inj) {
        pthread_mutex_lock(&s->defer_lock);
        int waiting = DEFER_WAITING;
        atomic_compare_exchange_strong(&req->defer, &waiting, DEFER_SUSPENDED);
        while (atomic_load(&req->defer) != DEFER_ANSWERED)
            pthread_cond_wait(&s->defer_cond, &s->defer_lock);
        pthread_mutex_unlock(&s->defer_lock);
        return true;
    }
    MHD_suspend_connection(req->conn);
    int waiting = DEFER_WAITING;
    if (!atomic_compare_exchange_strong(&req->defer, &waiting, DEFER_SUSPENDED))
        MHD_resume_connection(req->conn); /* answered meanwhile: on_request queues it */
    return false;
}

static enum MHD_Result finish(http_req_t *req)
{
    take_trace(req);
    log_set_trace(req->trace);
    dispatch(req);
    log_set_trace(NULL);
    if (atomic_load(&req->defer) != DEFER_NONE && !defer_wait(req)) return MHD_YES;
    return queue_answer(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_req_t *req = *con_cls;
    if (!req) {
        req = req_new(cls);
        if (!req) return MHD_NO;
        *con_cls = req;
    }
    if (atomic_load(&req->defer) == DEFER_ANSWERED) /* resumed after a deferred answer */
        return queue_answer(req);
    if (!req->started) {
        /* never answer on the first call: it would cost keep-alive */
        req->started = true;
        req->conn = conn;
        req->method = method;
        req->path = url;
        if ((!req->raw || req->raw[0] != '/') && req_set_path(req, url) < 0) return MHD_NO;
        return MHD_YES;
    }
    if (*upload_data_size) {
        body_append(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return finish(req);
}

/* MHD's URI log callback: runs first for every request, with the raw
 * target; its result becomes *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_req_t *req = req_new(cls);
    if (req && uri && req_set_path(req, uri) < 0) {
        req_free(req);
        return NULL;
    }
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_free(*con_cls);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt,
                                                             va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r')) msg[--len] = '\0';
    log_warn("mhd: %s", msg);
}

/* --- requests without a socket (tests, fuzzing) ---------------------------- */

#define INJECT_MAX_KV 64 /* headers + query arguments + cookies kept */

typedef struct inject_kv {
    int kind;    /* MHD_HEADER_KIND, MHD_GET_ARGUMENT_KIND or MHD_COOKIE_KIND */
    char *name;  /* malloc'd */
    char *value; /* malloc'd; NULL for an argument without '=' */
} inject_kv_t;

struct inject {
    inject_kv_t kv[INJECT_MAX_KV];
    int n;
};

static const char *inject_lookup(const struct inject *inj, int kind, const char *name)
{
    for (int i = 0; i < inj->n; i++) {
        const inject_kv_t *kv = &inj->kv[i];
        if (kv->kind != kind) continue;
        bool same = kind == MHD_HEADER_KIND ? strcasecmp(kv->name, name) == 0
                                            : strcmp(kv->name, name) == 0;
        if (same) return kv->value;
    }
    return NULL;
}

/* Keep text[0..len) as name or value: '+' is a space in arguments, then
 * percent-decoding; text that does not decode is kept as it came. */
static char *inject_dup(const char *text, size_t len, bool decode)
{
    char *out = malloc(len + 1);
    if (!out) return NULL;
    memcpy(out, text, len);
    out[len] = '\0';
    if (!decode) return out;
    for (size_t i = 0; i < len; i++)
        if (out[i] == '+') out[i] = ' ';
    char *dec = malloc(len + 1);
    if (dec && http_pct_decode(out, len, dec) >= 0) {
        free(out);
        return dec;
    }
    free(dec);
    return out;
}

static void inject_add(struct inject *inj, int kind, const char *name, size_t nlen,
                       const char *value, size_t vlen, bool has_value)
{
    if (inj->n == INJECT_MAX_KV) return;
    bool decode = kind == MHD_GET_ARGUMENT_KIND;
    inject_kv_t *kv = &inj->kv[inj->n];
    kv->kind = kind;
    kv->name = inject_dup(name, nlen, decode);
    kv->value = has_value ? inject_dup(value, vlen, decode) : NULL;
    if (!kv->name || (has_value && !kv->value)) {
        free(kv->name);
        free(kv->value);
        return;
    }
    inj->n++;
}

/* Split "a=1&b" (kind argument, sep '&') or "x=1; y=2" (kind cookie, sep ';'). */
static void inject_split(struct inject *inj, int kind, const char *text, char sep)
{
    while (*text) {
        while (kind == MHD_COOKIE_KIND && *text == ' ') text++;
        size_t len = strcspn(text, (char[]){sep, '\0'});
        const char *eq = memchr(text, '=', len);
        if (len > 0) {
            size_t nlen = eq ? (size_t)(eq - text) : len;
            inject_add(inj, kind, text, nlen, eq ? eq + 1 : "", eq ? len - nlen - 1 : 0,
                       eq != NULL);
        }
        text += len;
        if (*text) text++;
    }
}

static void inject_free(struct inject *inj)
{
    for (int i = 0; i < inj->n; i++) {
        free(inj->kv[i].name);
        free(inj->kv[i].value);
    }
    free(inj);
}

int http_inject(http_server_t *s, const char *method, const char *target,
                const char *const *headers, const char *body, size_t len)
{
    http_req_t *req = req_new(s);
    struct inject *inj = calloc(1, sizeof(*inj));
    if (!req || !inj || req_set_path(req, target) < 0) {
        free(inj);
        req_free(req);
        return 500;
    }
    req->inj = inj;
    req->method = method;
    req->path = req->raw;
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2) {
        inject_add(inj, MHD_HEADER_KIND, h[0], strlen(h[0]), h[1], strlen(h[1]), true);
        if (strcasecmp(h[0], "Cookie") == 0) inject_split(inj, MHD_COOKIE_KIND, h[1], ';');
    }
    const char *q = strchr(target, '?');
    if (q) {
        size_t qlen = strcspn(q + 1, "#");
        char *query = inject_dup(q + 1, qlen, false);
        if (query) inject_split(inj, MHD_GET_ARGUMENT_KIND, query, '&');
        free(query);
    }
    if (len) body_append(req, body, len);
    finish(req);
    int status = req->answered && req->status ? req->status : 500;
    req->inj = NULL;
    inject_free(inj);
    req_free(req);
    return status;
}

/* --- the server ------------------------------------------------------------- */

int http_create(http_server_t **out, const http_options_t *opts)
{
    *out = NULL;
    http_server_t *s = calloc(1, sizeof(*s));
    if (!s) return diag_set(DIAG_INTERNAL, "http: out of memory");
    s->host = strdup(opts->host ? opts->host : "127.0.0.1");
    s->web_dir = opts->web_dir ? strdup(opts->web_dir) : NULL;
    s->cache = calloc(CACHE_SLOTS, sizeof(*s->cache));
    if (!s->host || (opts->web_dir && !s->web_dir) || !s->cache) {
        free(s->host);
        free(s->web_dir);
        free(s->cache);
        free(s);
        return diag_set(DIAG_INTERNAL, "http: out of memory");
    }
    s->port = opts->port;
    s->threads = opts->threads;
    s->keys = opts->keys;
    http_router_init(&s->router);
    pthread_rwlock_init(&s->keys_lock, NULL);
    pthread_mutex_init(&s->defer_lock, NULL);
    pthread_cond_init(&s->defer_cond, NULL);
    for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_init(&s->shard[i], NULL);
    stats_init(&s->static_stats, "(static)", "GET");
    stats_init(&s->other_stats, "(none)", "-");
    *out = s;
    return 0;
}

int http_add_routes(http_server_t *s, const http_route_t *routes, void *ud)
{
    if (s->daemon) return diag_set(DIAG_INTERNAL, "http: routes are added before http_start");
    for (const http_route_t *r = routes; r->method; r++) {
        http_rroute_t *rr;
        if (http_router_add(&s->router, r, ud, &rr) < 0) return -1;
        stats_init(&rr->stats, rr->label, rr->method);
    }
    return 0;
}

/* Connections MHD may hold at once: what the descriptor limit allows after
 * a reserve for databases, NATS and files (MHD's default is ~1,000). */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) return 60000;
    if (rl.rlim_cur <= (rlim_t)FD_RESERVE * 2) return (unsigned)(rl.rlim_cur / 2);
    rlim_t n = rl.rlim_cur - FD_RESERVE;
    return n > 1000000 ? 1000000U : (unsigned)n;
}

static struct MHD_Daemon *start_daemon(http_server_t *s, unsigned flags, const struct sockaddr *sa,
                                       unsigned threads)
{
    /* the logger goes first so that no message reaches MHD's own */
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U,
                            MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
                            MHD_OPTION_END);
}

int http_start(http_server_t *s)
{
    if (s->daemon) return diag_set(DIAG_INTERNAL, "http: already started");
    if (s->port < 0 || s->port > 65535) return diag_set(DIAG_INTERNAL, "http: bad port %d", s->port);
    struct sockaddr_in6 sa6;
    struct sockaddr_in sa4;
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    memset(&sa6, 0, sizeof(sa6));
    memset(&sa4, 0, sizeof(sa4));
    if (inet_pton(AF_INET, s->host, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)s->port);
        sa = (const struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, s->host, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)s->port);
        sa = (const struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6;
    } else {
        return diag_set(DIAG_INTERNAL, "http: bad host address \"%s\"", s->host);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = s->threads ? s->threads : (cores > 0 ? (unsigned)cores : 1);
    bool epoll = MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES;
    s->daemon = start_daemon(s, flags | (epoll ? MHD_USE_EPOLL : MHD_USE_POLL), sa, threads);
    if (!s->daemon && epoll) s->daemon = start_daemon(s, flags | MHD_USE_POLL, sa, threads);
    if (!s->daemon)
        return diag_set(DIAG_UNAVAILABLE, "http: cannot listen on %s:%d", s->host, s->port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port) s->port = info->port;
    log_info("http: listening on %s:%d with %u threads", s->host, s->port, threads);
    return 0;
}

int http_port(const http_server_t *s) { return s->port; }

void http_stop(http_server_t *s)
{
    if (!s || !s->daemon) return;
    /* deferred requests get their answers first (their work is queued on
     * threads that run until the plugins stop), DEFER_STOP_MS at most */
    int64_t until = clock_monotonic_ms() + DEFER_STOP_MS;
    pthread_mutex_lock(&s->defer_lock);
    while (atomic_load(&s->deferred) > 0 && clock_monotonic_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->defer_cond, &s->defer_lock, &ts);
    }
    pthread_mutex_unlock(&s->defer_lock);
    if (atomic_load(&s->deferred) > 0)
        log_warn("http: stopping with %d deferred request(s) unanswered", atomic_load(&s->deferred));
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void http_free(http_server_t *s)
{
    if (!s) return;
    http_stop(s);
    cache_clear(s);
    free(s->cache);
    http_router_free(&s->router);
    for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_destroy(&s->shard[i]);
    pthread_rwlock_destroy(&s->keys_lock);
    pthread_cond_destroy(&s->defer_cond);
    pthread_mutex_destroy(&s->defer_lock);
    free(s->host);
    free(s->web_dir);
    free(s);
}
