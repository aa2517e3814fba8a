/*
 * test_http: a real server on 127.0.0.1 (port 0) in this process, driven
 * over real sockets by a small blocking HTTP/1.1 client: routing errors,
 * body limits, JSON errors, trace ids, keep-alive, bearer and cookie
 * authentication with real Ed25519 tokens, handlers that answer wrongly,
 * deferred answers from other threads (before and after the handler
 * returns, on keep-alive and parallel connections, through http_inject),
 * and static files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/http.h"
#include "core/jwt.h"
#include "core/metrics.h"
#include "t.h"

static int g_port;

/* --- a tiny blocking client ------------------------------------------------ */

typedef struct resp {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int cli_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Send one request; `headers` are extra "Name: value\r\n" lines or NULL. */
static int cli_send(int fd, const char *method, const char *path, const char *headers,
                    const char *body, size_t body_len)
{
    char head[4096];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%zu\r\n\r\n", method, path,
                     headers ? headers : "", "Content-Length: ", body ? body_len : 0);
    if (n < 0 || (size_t)n >= sizeof(head)) return -1;
    if (send_all(fd, head, (size_t)n) < 0) return -1;
    return body ? send_all(fd, body, body_len) : 0;
}

/* The value of header `name` in r->head copied into out, NULL when absent. */
static const char *hdr(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ') v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= cap) len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Read one response; with `head_only` no body follows (a HEAD request). */
static int cli_read(int fd, resp_t *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    size_t len = 0;
    /* byte by byte up to the blank line, so nothing of the next response is eaten */
    while (len + 1 < sizeof(r->head)) {
        ssize_t n = recv(fd, r->head + len, 1, 0);
        if (n <= 0) return -1;
        len++;
        r->head[len] = '\0';
        if (len >= 4 && memcmp(r->head + len - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1) return -1;
    char cl[32];
    size_t want = 0;
    if (hdr(r, "Content-Length", cl, sizeof(cl))) want = (size_t)strtoul(cl, NULL, 10);
    if (head_only || r->status == 204 || r->status == 304) want = 0;
    r->body = malloc(want + 1);
    if (!r->body) return -1;
    while (r->body_len < want) {
        ssize_t n = recv(fd, r->body + r->body_len, want - r->body_len, 0);
        if (n <= 0) return -1;
        r->body_len += (size_t)n;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* One request on a fresh connection. */
static int request(const char *method, const char *path, const char *headers, const char *body,
                   resp_t *r)
{
    int fd = cli_connect();
    if (fd < 0) return -1;
    int rc = cli_send(fd, method, path, headers, body, body ? strlen(body) : 0);
    if (rc == 0) rc = cli_read(fd, r, strcmp(method, "HEAD") == 0);
    close(fd);
    return rc;
}

/* The error code of an error body, "" when it is not one. */
static const char *error_code(const resp_t *r, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(code) && cJSON_IsString(msg)) snprintf(out, cap, "%s", code->valuestring);
    cJSON_Delete(j);
    return out;
}

/* A string member of the JSON body, copied; "" when absent. */
static const char *body_str(const resp_t *r, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsString(v)) snprintf(out, cap, "%s", v->valuestring);
    cJSON_Delete(j);
    return out;
}

static double body_num(const resp_t *r, const char *key)
{
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    return d;
}

/* --- handlers --------------------------------------------------------------- */

static void h_echo(http_req_t *req, void *ud)
{
    cJSON *o = cJSON_CreateObject();
    const char *id = http_param(req, "id");
    const char *q = http_query(req, "q");
    cJSON_AddStringToObject(o, "id", id ? id : "");
    cJSON_AddStringToObject(o, "q", q ? q : "");
    cJSON_AddStringToObject(o, "method", http_method(req));
    cJSON_AddStringToObject(o, "trace", http_trace_id(req));
    cJSON_AddStringToObject(o, "ud", ud ? (const char *)ud : "");
    const http_auth_t *a = http_auth(req);
    cJSON_AddBoolToObject(o, "auth", a->present);
    cJSON_AddStringToObject(o, "account", a->account_id);
    cJSON_AddStringToObject(o, "role", a->role);
    const cJSON *b = http_body(req);
    if (b) cJSON_AddItemToObject(o, "body", cJSON_Duplicate(b, 1));
    http_add_header(req, "X-Test", "yes");
    http_reply_json(req, 200, o);
}

static void h_size(http_req_t *req, void *ud)
{
    const cJSON *o = http_body_object(req);
    if (!o) return;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "s");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "len", cJSON_IsString(s) ? (double)strlen(s->valuestring) : -1);
    http_reply_json(req, 201, out);
}

static void h_silent(http_req_t *req, void *ud) { (void)req; }

static void h_twice(http_req_t *req, void *ud)
{
    http_reply_text(req, 200, "text/plain", "first");
    http_reply_json(req, 201, cJSON_CreateObject());
    http_reply_error(req, DIAG_CONFLICT, "third");
}

static void h_conflict(http_req_t *req, void *ud)
{
    diag_set(DIAG_CONFLICT, "already %s", "taken");
    http_reply_diag(req);
}

static void h_internal(http_req_t *req, void *ud)
{
    diag_set(DIAG_INTERNAL, "secret database detail");
    http_reply_diag(req);
}

static void h_page(http_req_t *req, void *ud)
{
    int limit;
    const char *after;
    if (http_page(req, &limit, &after) < 0) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "limit", limit);
    cJSON_AddStringToObject(o, "after", after ? after : "");
    http_reply_json(req, 200, o);
}

static void h_empty(http_req_t *req, void *ud) { http_reply_empty(req, 204); }

/* Deferred: answered by another thread after `delay_us` (0: at once, racing
 * the suspension of the connection), or in the handler itself ("now"). */
typedef struct later {
    http_req_t *req;
    char id[64], trace[64];
    useconds_t delay_us;
} later_t;

static void later_answer(later_t *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", l->id);
    cJSON_AddStringToObject(o, "trace", l->trace);
    http_add_header(l->req, "X-Test", "later");
    http_req_t *req = l->req;
    free(l);
    http_reply_json(req, 202, o);
}

static atomic_int g_later_live; /* answering threads not yet finished */

static void *later_main(void *arg)
{
    later_t *l = arg;
    if (l->delay_us) usleep(l->delay_us);
    later_answer(l);
    atomic_fetch_sub(&g_later_live, 1);
    return NULL;
}

static void h_later(http_req_t *req, void *ud)
{
    const char *mode = http_param(req, "mode");
    later_t *l = calloc(1, sizeof(*l));
    if (!l) {
        http_reply_error(req, DIAG_UNAVAILABLE, "out of memory");
        return;
    }
    l->req = req;
    snprintf(l->id, sizeof(l->id), "%s", mode);
    snprintf(l->trace, sizeof(l->trace), "%s", http_trace_id(req));
    http_defer(req);
    if (strncmp(mode, "now", 3) == 0) {
        later_answer(l);
        return;
    }
    l->delay_us = strncmp(mode, "race", 4) == 0 ? 0 : 20000;
    pthread_t th;
    atomic_fetch_add(&g_later_live, 1);
    if (pthread_create(&th, NULL, later_main, l) != 0) {
        atomic_fetch_sub(&g_later_live, 1);
        free(l);
        http_reply_error(req, DIAG_UNAVAILABLE, "no thread");
        return;
    }
    pthread_detach(th);
}

static const http_route_t routes[] = {
    {"GET", "/api/echo/{id}", h_echo, HTTP_PUBLIC, NULL},
    {"POST", "/api/echo", h_echo, HTTP_PUBLIC, NULL},
    {"POST", "/api/size", h_size, HTTP_PUBLIC, NULL},
    {"GET", "/api/me", h_echo, HTTP_AUTH, NULL},
    {"POST", "/api/me", h_echo, HTTP_AUTH, NULL},
    {"GET", "/api/admin", h_echo, HTTP_AUTH, "admin, manager"},
    {"GET", "/api/silent", h_silent, HTTP_PUBLIC, NULL},
    {"GET", "/api/twice", h_twice, HTTP_PUBLIC, NULL},
    {"GET", "/api/conflict", h_conflict, HTTP_PUBLIC, NULL},
    {"GET", "/api/internal", h_internal, HTTP_PUBLIC, NULL},
    {"GET", "/api/page", h_page, HTTP_PUBLIC, NULL},
    {"DELETE", "/api/empty", h_empty, HTTP_PUBLIC, NULL},
    {"GET", "/api/later/{mode}", h_later, HTTP_PUBLIC, NULL},
    {NULL, NULL, NULL, HTTP_PUBLIC, NULL},
};

/* --- tests ------------------------------------------------------------------ */

static void test_routing(void)
{
    resp_t r;
    char code[64], buf[256];
    T_EQ_INT(request("GET", "/api/nope", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 404);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "not_found");
    T_EQ_STR(hdr(&r, "Content-Type", buf, sizeof(buf)), "application/json");
    T_EQ_STR(hdr(&r, "X-Content-Type-Options", buf, sizeof(buf)), "nosniff");
    resp_free(&r);

    T_EQ_INT(request("DELETE", "/api/echo/1", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 405);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "method_not_allowed");
    T_EQ_STR(hdr(&r, "Allow", buf, sizeof(buf)), "GET, HEAD");
    resp_free(&r);

    T_EQ_INT(request("GET", "/api/echo/a%20b?q=x%26y", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(body_str(&r, "id", buf, sizeof(buf)), "a b");
    T_EQ_STR(body_str(&r, "q", buf, sizeof(buf)), "x&y");
    T_EQ_STR(body_str(&r, "ud", buf, sizeof(buf)), "the-ud");
    T_EQ_STR(hdr(&r, "X-Test", buf, sizeof(buf)), "yes");
    resp_free(&r);

    T_EQ_INT(request("HEAD", "/api/echo/x", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_INT(r.body_len, 0);
    resp_free(&r);

    T_EQ_INT(request("DELETE", "/api/empty", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 204);
    resp_free(&r);
}

static void test_bodies(void)
{
    resp_t r;
    char code[64], buf[256];
    T_EQ_INT(request("POST", "/api/echo", NULL, "{\"a\":", &r), 0);
    T_EQ_INT(r.status, 422);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "validation");
    resp_free(&r);

    T_EQ_INT(request("POST", "/api/size", NULL, "[1,2]", &r), 0);
    T_EQ_INT(r.status, 422);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "validation");
    resp_free(&r);

    T_EQ_INT(request("POST", "/api/size", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 422);
    resp_free(&r);

    T_EQ_INT(request("POST", "/api/echo", NULL, "{\"k\":\"v\"}", &r), 0);
    T_EQ_INT(r.status, 200);
    T_CHECK(strstr(r.body, "\"body\":{\"k\":\"v\"}") != NULL);
    resp_free(&r);

    /* exactly HTTP_MAX_BODY bytes: {"s":"xxx...x"} */
    size_t max = HTTP_MAX_BODY;
    char *big = malloc(max + 1);
    memcpy(big, "{\"s\":\"", 6);
    memset(big + 6, 'x', max - 8);
    memcpy(big + max - 2, "\"}", 3);
    T_EQ_INT(strlen(big), max);
    T_EQ_INT(request("POST", "/api/size", NULL, big, &r), 0);
    T_EQ_INT(r.status, 201);
    T_EQ_INT(body_num(&r, "len"), (double)(max - 8));
    resp_free(&r);
    free(big);

    /* 1 MiB: 413, then the same connection and a new one still answer */
    size_t huge_len = 1024 * 1024;
    char *huge = malloc(huge_len);
    memset(huge, ' ', huge_len);
    int fd = cli_connect();
    T_CHECK(fd >= 0);
    T_EQ_INT(cli_send(fd, "POST", "/api/echo", NULL, huge, huge_len), 0);
    T_EQ_INT(cli_read(fd, &r, false), 0);
    T_EQ_INT(r.status, 413);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "too_large");
    resp_free(&r);
    T_EQ_INT(cli_send(fd, "GET", "/api/echo/after", NULL, NULL, 0), 0);
    T_EQ_INT(cli_read(fd, &r, false), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(body_str(&r, "id", buf, sizeof(buf)), "after");
    resp_free(&r);
    close(fd);
    free(huge);
    T_EQ_INT(request("GET", "/api/echo/next", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    resp_free(&r);
}

static void test_trace_and_keepalive(void)
{
    resp_t r;
    char buf[256], buf2[256];
    T_EQ_INT(request("GET", "/api/echo/t", "X-Request-Id: req-42.A_b\r\n", NULL, &r), 0);
    T_EQ_STR(hdr(&r, "X-Request-Id", buf, sizeof(buf)), "req-42.A_b");
    T_EQ_STR(body_str(&r, "trace", buf2, sizeof(buf2)), "req-42.A_b");
    resp_free(&r);

    /* generated: a UUID (36 chars); a bad incoming id is replaced */
    T_EQ_INT(request("GET", "/api/echo/t", "X-Request-Id: bad id!\r\n", NULL, &r), 0);
    T_CHECK(hdr(&r, "X-Request-Id", buf, sizeof(buf)) != NULL);
    T_EQ_INT(strlen(buf), 36);
    T_EQ_STR(body_str(&r, "trace", buf2, sizeof(buf2)), buf);
    resp_free(&r);
    T_EQ_INT(request("GET", "/api/echo/t", NULL, NULL, &r), 0);
    T_CHECK(hdr(&r, "X-Request-Id", buf, sizeof(buf)) != NULL);
    T_EQ_INT(strlen(buf), 36);
    resp_free(&r);

    /* several requests, answers included, on one connection */
    int fd = cli_connect();
    T_CHECK(fd >= 0);
    for (int i = 0; i < 20; i++) {
        char path[64], want[16];
        snprintf(path, sizeof(path), "/api/echo/k%d", i);
        snprintf(want, sizeof(want), "k%d", i);
        if (i % 3 == 2) {
            T_EQ_INT(cli_send(fd, "GET", "/api/nope", NULL, NULL, 0), 0);
            T_EQ_INT(cli_read(fd, &r, false), 0);
            T_EQ_INT(r.status, 404);
        } else {
            T_EQ_INT(cli_send(fd, "GET", path, NULL, NULL, 0), 0);
            T_EQ_INT(cli_read(fd, &r, false), 0);
            T_EQ_INT(r.status, 200);
            T_EQ_STR(body_str(&r, "id", buf, sizeof(buf)), want);
        }
        T_CHECK(hdr(&r, "Connection", buf, sizeof(buf)) == NULL || strcasecmp(buf, "close") != 0);
        resp_free(&r);
    }
    close(fd);
}

/* One deferred request on fd, checked. */
static void later_check(int fd, const char *mode)
{
    char path[128], trace[80], buf[256];
    snprintf(path, sizeof(path), "/api/later/%s", mode);
    snprintf(trace, sizeof(trace), "X-Request-Id: t-%s\r\n", mode);
    resp_t r;
    T_EQ_INT(cli_send(fd, "GET", path, trace, NULL, 0), 0);
    T_EQ_INT(cli_read(fd, &r, false), 0);
    T_EQ_INT(r.status, 202);
    T_EQ_STR(body_str(&r, "id", buf, sizeof(buf)), mode);
    snprintf(trace, sizeof(trace), "t-%s", mode);
    T_EQ_STR(body_str(&r, "trace", buf, sizeof(buf)), trace);
    T_EQ_STR(hdr(&r, "X-Request-Id", buf, sizeof(buf)), trace);
    T_EQ_STR(hdr(&r, "X-Test", buf, sizeof(buf)), "later");
    resp_free(&r);
}

static void *later_client(void *arg)
{
    int k = (int)(intptr_t)arg;
    int fd = cli_connect();
    T_CHECK(fd >= 0);
    for (int i = 0; fd >= 0 && i < 30; i++) {
        char mode[32];
        static const char *const kinds[] = {"thread", "race", "now"};
        snprintf(mode, sizeof(mode), "%s-%d-%d", kinds[(i + k) % 3], k, i);
        later_check(fd, mode);
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void test_deferred(http_server_t *s)
{
    /* one keep-alive connection, every kind in turn */
    int fd = cli_connect();
    T_CHECK(fd >= 0);
    const char *const modes[] = {"thread-1", "now-1", "race-1", "race-2", "thread-2", "now-2"};
    for (size_t i = 0; fd >= 0 && i < sizeof(modes) / sizeof(modes[0]); i++)
        later_check(fd, modes[i]);
    if (fd >= 0) close(fd);
    /* parallel connections of 2 HTTP threads, all waiting at once */
    pthread_t th[16];
    for (int k = 0; k < 16; k++)
        T_EQ_INT(pthread_create(&th[k], NULL, later_client, (void *)(intptr_t)k), 0);
    for (int k = 0; k < 16; k++) pthread_join(th[k], NULL);
    /* without a socket: http_inject waits for the answer */
    T_EQ_INT(http_inject(s, "GET", "/api/later/thread-inject", NULL, NULL, 0), 202);
    T_EQ_INT(http_inject(s, "GET", "/api/later/race-inject", NULL, NULL, 0), 202);
    T_EQ_INT(http_inject(s, "GET", "/api/later/now-inject", NULL, NULL, 0), 202);
    /* the answering threads are past their last touch of the server */
    for (int i = 0; i < 2000 && atomic_load(&g_later_live) > 0; i++) usleep(1000);
    T_EQ_INT(atomic_load(&g_later_live), 0);
}

static void test_auth(jwt_keys_t *keys)
{
    resp_t r;
    char code[64], buf[256], h[2048];
    char tok[1024], old[1024], popug[1024];
    int64_t now = time(NULL);
    jwt_claims_t c = {.sub = "acc-1", .role = "manager", .iat = now, .exp = now + 600};
    T_EQ_INT(jwt_sign(keys, &c, tok, sizeof(tok)), 0);
    jwt_claims_t e = {.sub = "acc-2", .role = "admin", .iat = now - 7200, .exp = now - 3600};
    T_EQ_INT(jwt_sign(keys, &e, old, sizeof(old)), 0);
    jwt_claims_t p = {.sub = "acc-3", .role = "popug", .iat = now, .exp = now + 600};
    T_EQ_INT(jwt_sign(keys, &p, popug, sizeof(popug)), 0);

    T_EQ_INT(request("GET", "/api/me", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 401);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "unauthorized");
    T_CHECK(hdr(&r, "WWW-Authenticate", buf, sizeof(buf)) && strncmp(buf, "Bearer", 6) == 0);
    resp_free(&r);

    for (int i = 0; i < 2; i++) { /* the second time from the cache */
        snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", tok);
        T_EQ_INT(request("GET", "/api/me", h, NULL, &r), 0);
        T_EQ_INT(r.status, 200);
        T_EQ_STR(body_str(&r, "account", buf, sizeof(buf)), "acc-1");
        T_EQ_STR(body_str(&r, "role", buf, sizeof(buf)), "manager");
        resp_free(&r);
    }

    snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", old);
    T_EQ_INT(request("GET", "/api/me", h, NULL, &r), 0);
    T_EQ_INT(r.status, 401);
    resp_free(&r);

    /* a tampered token (last signature char changed) */
    char bad[1024];
    snprintf(bad, sizeof(bad), "%s", tok);
    size_t bl = strlen(bad);
    bad[bl - 2] = bad[bl - 2] == 'A' ? 'B' : 'A';
    snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", bad);
    T_EQ_INT(request("GET", "/api/me", h, NULL, &r), 0);
    T_EQ_INT(r.status, 401);
    resp_free(&r);

    snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", popug);
    T_EQ_INT(request("GET", "/api/admin", h, NULL, &r), 0);
    T_EQ_INT(r.status, 403);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "forbidden");
    resp_free(&r);
    snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", tok);
    T_EQ_INT(request("GET", "/api/admin", h, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    resp_free(&r);

    /* public routes still see a valid token */
    T_EQ_INT(request("GET", "/api/echo/x", h, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(body_str(&r, "account", buf, sizeof(buf)), "acc-1");
    resp_free(&r);

    /* cookie: GET fine; POST needs X-Requested-With: ates */
    snprintf(h, sizeof(h), "Cookie: theme=dark; ates_token=%s\r\n", tok);
    T_EQ_INT(request("GET", "/api/me", h, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(body_str(&r, "account", buf, sizeof(buf)), "acc-1");
    resp_free(&r);
    T_EQ_INT(request("POST", "/api/me", h, "{}", &r), 0);
    T_EQ_INT(r.status, 403);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "forbidden");
    resp_free(&r);
    snprintf(h, sizeof(h), "Cookie: ates_token=%s\r\nX-Requested-With: ates\r\n", tok);
    T_EQ_INT(request("POST", "/api/me", h, "{}", &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(body_str(&r, "role", buf, sizeof(buf)), "manager");
    resp_free(&r);
}

static void test_token_cache(http_server_t *s, jwt_keys_t *keys)
{
    char tok[1024];
    int64_t now = time(NULL);
    jwt_claims_t c = {.sub = "acc-9", .role = "popug", .iat = now, .exp = now + 600};
    T_EQ_INT(jwt_sign(keys, &c, tok, sizeof(tok)), 0);
    http_auth_t a;
    T_EQ_INT(http_verify_token(s, tok, &a), 0);
    T_EQ_STR(a.account_id, "acc-9");
    T_EQ_INT(a.exp, now + 600);
    T_EQ_INT(http_verify_token(s, tok, &a), 0); /* hit */
    T_EQ_STR(a.role, "popug");
    T_CHECK(a.present);
    T_EQ_INT(http_verify_token(s, "garbage", &a), -1);
    T_CHECK(!a.present);
    /* without keys even a cached token is refused; with them back it works */
    http_set_keys(s, NULL);
    T_EQ_INT(http_verify_token(s, tok, &a), -1);
    http_set_keys(s, keys);
    T_EQ_INT(http_verify_token(s, tok, &a), 0);
}

static void test_handlers(void)
{
    resp_t r;
    char code[64], buf[256];
    T_EQ_INT(request("GET", "/api/silent", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 500);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "internal");
    resp_free(&r);

    T_EQ_INT(request("GET", "/api/twice", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body, "first");
    T_EQ_STR(hdr(&r, "Content-Type", buf, sizeof(buf)), "text/plain");
    resp_free(&r);

    T_EQ_INT(request("GET", "/api/conflict", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 409);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "conflict");
    T_CHECK(strstr(r.body, "already taken") != NULL);
    resp_free(&r);

    T_EQ_INT(request("GET", "/api/internal", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 500);
    T_EQ_STR(error_code(&r, code, sizeof(code)), "internal");
    T_CHECK(strstr(r.body, "secret") == NULL);
    resp_free(&r);

    T_EQ_INT(request("GET", "/api/page", NULL, NULL, &r), 0);
    T_EQ_INT(body_num(&r, "limit"), 50);
    resp_free(&r);
    T_EQ_INT(request("GET", "/api/page?limit=500&after=0190f3a2-7b1c-7d4e-8f00-0123456789ab", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_INT(body_num(&r, "limit"), 500);
    T_EQ_STR(body_str(&r, "after", buf, sizeof(buf)), "0190f3a2-7b1c-7d4e-8f00-0123456789ab");
    resp_free(&r);
    const char *bad[] = {"/api/page?limit=0", "/api/page?limit=501", "/api/page?limit=x",
                         "/api/page?limit=5x", "/api/page?limit=", "/api/page?limit=+5",
                         "/api/page?after=abc" /* no id: not the end of the list */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        T_EQ_INT(request("GET", bad[i], NULL, NULL, &r), 0);
        T_EQ_INT(r.status, 422);
        resp_free(&r);
    }
}

static void test_static(void)
{
    resp_t r;
    char buf[256];
    T_EQ_INT(request("GET", "/", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body, "<h1>login</h1>");
    T_EQ_STR(hdr(&r, "Content-Type", buf, sizeof(buf)), "text/html; charset=utf-8");
    T_EQ_STR(hdr(&r, "X-Content-Type-Options", buf, sizeof(buf)), "nosniff");
    resp_free(&r);

    T_EQ_INT(request("GET", "/tracker", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body, "<h1>tracker</h1>");
    resp_free(&r);

    T_EQ_INT(request("GET", "/js/app.js", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    T_EQ_STR(r.body, "let x = 1;");
    T_EQ_STR(hdr(&r, "Content-Type", buf, sizeof(buf)), "text/javascript; charset=utf-8");
    resp_free(&r);

    T_EQ_INT(request("HEAD", "/js/app.js", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 200);
    resp_free(&r);

    const char *missing[] = {"/../outside.html", "/js/../../outside.html", "/%2e%2e/outside.html",
                             "/js/%2E%2E/%2E%2E/outside.html", "/secret.txt", "/.hidden.js",
                             "/js\\app.js", "/js%5capp.js", "/index.html%00.js", "//js/app.js",
                             "/api/index.html", "/nothing.html"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        T_EQ_INT(request("GET", missing[i], NULL, NULL, &r), 0);
        if (r.status != 404) fprintf(stderr, "static %s -> %d\n", missing[i], r.status);
        T_EQ_INT(r.status, 404);
        resp_free(&r);
    }
    /* POST never reaches a file */
    T_EQ_INT(request("POST", "/js/app.js", NULL, NULL, &r), 0);
    T_EQ_INT(r.status, 404);
    resp_free(&r);
}

static void test_metrics(void)
{
    char *text = metrics_render();
    if (getenv("HTTP_TEST_DUMP")) fputs(text, stderr);
    T_CHECK(text != NULL);
    if (!text) return;
    T_CHECK(strstr(text, "ates_http_requests_total{route=\"/api/echo/:id\",method=\"GET\","
                         "class=\"2xx\"}") != NULL);
    T_CHECK(strstr(text, "ates_http_requests_total{route=\"(none)\",method=\"-\",class=\"4xx\"}") !=
            NULL);
    T_CHECK(strstr(text, "ates_http_requests_total{route=\"(static)\",method=\"GET\","
                         "class=\"2xx\"}") != NULL);
    T_CHECK(strstr(text, "ates_http_request_duration_seconds_count{route=\"/api/me\",method=\"GET\"}") !=
            NULL);
    T_CHECK(strstr(text, "ates_metrics_dropped_total 0") != NULL);
    /* labels are patterns, never raw paths */
    T_CHECK(strstr(text, "/api/echo/k1") == NULL);
    free(text);
}

/* --- setup ------------------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char tmp[400], web[450], js[460], keydir[450];
    if (t_tmpdir(tmp, sizeof(tmp), "http") < 0) return 1;
    snprintf(web, sizeof(web), "%s/web", tmp);
    snprintf(js, sizeof(js), "%s/js", web);
    snprintf(keydir, sizeof(keydir), "%s/keys", tmp);
    mkdir(web, 0700);
    mkdir(js, 0700);
    write_file(web, "index.html", "<h1>login</h1>");
    write_file(web, "tracker.html", "<h1>tracker</h1>");
    write_file(web, "secret.txt", "secret");
    write_file(web, ".hidden.js", "hidden");
    write_file(js, "app.js", "let x = 1;");
    write_file(tmp, "outside.html", "outside");

    jwt_keys_t *keys = NULL;
    http_server_t *s = NULL;
    if (jwt_keys_open(&keys, keydir, 1) < 0) {
        fprintf(stderr, "jwt_keys_open: %s\n", diag_last()->message);
        T_CHECK(0);
        goto out;
    }
    http_options_t opts = {.host = "127.0.0.1", .port = 0, .threads = 2, .web_dir = web,
                           .keys = keys};
    T_EQ_INT(http_create(&s, &opts), 0);
    T_EQ_INT(http_add_routes(s, routes, "the-ud"), 0);
    T_EQ_INT(http_add_routes(s, routes, "the-ud"), -1); /* duplicates */
    if (http_start(s) < 0) {
        fprintf(stderr, "http_start: %s\n", diag_last()->message);
        T_CHECK(0);
        goto out;
    }
    g_port = http_port(s);
    T_CHECK(g_port > 0);

    test_routing();
    test_bodies();
    test_trace_and_keepalive();
    test_auth(keys);
    test_token_cache(s, keys);
    test_handlers();
    test_deferred(s);
    test_static();
    test_metrics();

out:
    http_free(s);
    jwt_keys_close(keys);
    t_rmdir(tmp);
    return t_done();
}
