/*
 * http_router: method + path -> route, with {name} parameters (see
 * http_internal.h). Patterns are split once when added; a match walks the
 * routes linearly (a service has tens of them) comparing raw segments, and
 * decodes only the parameters of the winner.
 */
#include "http_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A segment of a request path: a slice of the raw path. */
typedef struct span {
    const char *p;
    size_t len;
} span_t;

void http_router_init(http_router_t *r) { memset(r, 0, sizeof(*r)); }

static void rroute_free(http_rroute_t *rr)
{
    if (!rr) return;
    for (int i = 0; i < rr->nseg; i++) free(rr->seg[i].text);
    free(rr->method);
    free(rr->pattern);
    free(rr->label);
    free(rr->roles);
    free(rr);
}

void http_router_free(http_router_t *r)
{
    for (size_t i = 0; i < r->n; i++) rroute_free(r->routes[i]);
    free(r->routes);
    memset(r, 0, sizeof(*r));
}

/* Split "/a/b/c" into spans; -1 when it does not start with '/' or has more
 * than HTTP_MAX_SEGS segments. "/" has none; "/a/" has "a" and "". */
static int split_path(const char *path, span_t *segs, int *nseg)
{
    if (path[0] != '/') return -1;
    int n = 0;
    const char *p = path + 1;
    if (*p == '\0') {
        *nseg = 0;
        return 0;
    }
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == HTTP_MAX_SEGS) return -1;
        segs[n].p = p;
        segs[n].len = len;
        n++;
        if (!slash) break;
        p = slash + 1;
    }
    *nseg = n;
    return 0;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Fill rr->seg from rr->pattern; -1 (diag) on a malformed pattern. */
static int parse_pattern(http_rroute_t *rr)
{
    span_t segs[HTTP_MAX_SEGS];
    int n, params = 0;
    if (split_path(rr->pattern, segs, &n) < 0)
        return diag_set(DIAG_INTERNAL, "http: bad pattern \"%s\"", rr->pattern);
    for (int i = 0; i < n; i++) {
        const char *s = segs[i].p;
        size_t len = segs[i].len;
        bool param = len >= 3 && s[0] == '{' && s[len - 1] == '}';
        if (param) {
            s++;
            len -= 2;
            for (size_t k = 0; k < len; k++)
                if (!name_char(s[k]))
                    return diag_set(DIAG_INTERNAL, "http: bad parameter in \"%s\"", rr->pattern);
            if (++params > HTTP_MAX_PARAMS)
                return diag_set(DIAG_INTERNAL, "http: too many parameters in \"%s\"", rr->pattern);
        } else if (len == 0 || memchr(s, '{', len) || memchr(s, '}', len) || memchr(s, '%', len) ||
                   memchr(s, '"', len) || memchr(s, '\\', len)) {
            return diag_set(DIAG_INTERNAL, "http: bad segment in \"%s\"", rr->pattern);
        }
        rr->seg[i].text = strndup(s, len);
        if (!rr->seg[i].text) return diag_set(DIAG_INTERNAL, "http: out of memory");
        rr->seg[i].len = len;
        rr->seg[i].param = param;
        rr->nseg = i + 1;
    }
    return 0;
}

/* "/api/tasks/{id}" -> "/api/tasks/:id": braces are not label-safe. */
static int make_label(http_rroute_t *rr)
{
    size_t len = strlen(rr->pattern);
    rr->label = malloc(len + 1);
    if (!rr->label) return diag_set(DIAG_INTERNAL, "http: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (rr->pattern[i] == '{') rr->label[o++] = ':';
        else if (rr->pattern[i] != '}') rr->label[o++] = rr->pattern[i];
    }
    rr->label[o] = '\0';
    return 0;
}

/* Same method and the same shape (parameter names do not matter). */
static bool same_route(const http_rroute_t *a, const http_rroute_t *b)
{
    if (strcmp(a->method, b->method) != 0 || a->nseg != b->nseg) return false;
    for (int i = 0; i < a->nseg; i++) {
        if (a->seg[i].param != b->seg[i].param) return false;
        if (!a->seg[i].param && strcmp(a->seg[i].text, b->seg[i].text) != 0) return false;
    }
    return true;
}

int http_router_add(http_router_t *r, const http_route_t *route, void *ud, http_rroute_t **out)
{
    if (!route->method || !route->pattern || !route->handler)
        return diag_set(DIAG_INTERNAL, "http: route needs method, pattern and handler");
    http_rroute_t *rr = calloc(1, sizeof(*rr));
    if (!rr) return diag_set(DIAG_INTERNAL, "http: out of memory");
    rr->method = strdup(route->method);
    rr->pattern = strdup(route->pattern);
    rr->roles = route->roles ? strdup(route->roles) : NULL;
    rr->handler = route->handler;
    rr->access = route->access;
    rr->ud = ud;
    if (!rr->method || !rr->pattern || (route->roles && !rr->roles)) {
        diag_set(DIAG_INTERNAL, "http: out of memory");
        goto fail;
    }
    if (parse_pattern(rr) < 0) goto fail;
    if (make_label(rr) < 0) goto fail;
    for (size_t i = 0; i < r->n; i++) {
        if (same_route(r->routes[i], rr)) {
            diag_set(DIAG_INTERNAL, "http: duplicate route %s %s", rr->method, rr->pattern);
            goto fail;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        /* An array of pointers: sizeof(*grown) is a pointer's size on purpose. */
        /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
        http_rroute_t **grown = realloc(r->routes, cap * sizeof(*grown));
        if (!grown) {
            diag_set(DIAG_INTERNAL, "http: out of memory");
            goto fail;
        }
        r->routes = grown;
        r->cap = cap;
    }
    r->routes[r->n++] = rr;
    if (out) *out = rr;
    return 0;
fail:
    rroute_free(rr);
    return -1;
}

/* The specificity of `rr` for the path, or -1 when it does not fit: one bit
 * per position, the first position highest, set for a literal. */
static long fit(const http_rroute_t *rr, const span_t *segs, int nseg)
{
    if (rr->nseg != nseg) return -1;
    long score = 0;
    for (int i = 0; i < nseg; i++) {
        const http_seg_t *sg = &rr->seg[i];
        if (sg->param) {
            if (segs[i].len == 0) return -1;
        } else {
            if (sg->len != segs[i].len || memcmp(sg->text, segs[i].p, sg->len) != 0) return -1;
            score |= 1L << (HTTP_MAX_SEGS - 1 - i);
        }
    }
    return score;
}

/* Append `method` to the Allow list unless already there. */
static void allow_add(char *allow, const char *method)
{
    size_t mlen = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen) {
        bool start = p == allow || p[-1] == ' ';
        bool end = p[mlen] == '\0' || p[mlen] == ',';
        if (start && end) return;
    }
    size_t len = strlen(allow);
    size_t need = (len ? 2 : 0) + mlen + 1;
    if (len + need > HTTP_ALLOW_LEN) return;
    if (len) {
        allow[len++] = ',';
        allow[len++] = ' ';
    }
    memcpy(allow + len, method, mlen + 1);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long http_pct_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

http_match_result_t http_router_match(const http_router_t *r, const char *method,
                                      const char *path, char *scratch, size_t scratch_len,
                                      http_match_t *m)
{
    span_t segs[HTTP_MAX_SEGS];
    int nseg;
    memset(m, 0, offsetof(http_match_t, allow));
    m->allow[0] = '\0';
    if (split_path(path, segs, &nseg) < 0) return HTTP_MATCH_NOT_FOUND;
    bool head = strcmp(method, "HEAD") == 0;
    /* the path belongs to its most specific pattern, whatever the method:
     * GET /api/tasks/shuffle is a wrong method on the shuffle, not the task
     * "shuffle" */
    long top = -1;
    http_rroute_t *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        http_rroute_t *rr = r->routes[i];
        long score = fit(rr, segs, nseg);
        if (score < 0 || score < top) continue;
        if (score > top) { /* a more specific pattern: what the others allowed is not its */
            top = score;
            best = NULL;
            m->allow[0] = '\0';
        }
        bool same = strcmp(rr->method, method) == 0 || (head && strcmp(rr->method, "GET") == 0);
        if (same) best = rr;
        allow_add(m->allow, rr->method);
        if (strcmp(rr->method, "GET") == 0) allow_add(m->allow, "HEAD");
    }
    if (!best) return top >= 0 ? HTTP_MATCH_METHOD : HTTP_MATCH_NOT_FOUND;
    size_t used = 0;
    for (int i = 0; i < nseg; i++) {
        if (!best->seg[i].param) continue;
        if (used + segs[i].len + 1 > scratch_len) return HTTP_MATCH_NOT_FOUND;
        long n = http_pct_decode(segs[i].p, segs[i].len, scratch + used);
        if (n <= 0) return HTTP_MATCH_NOT_FOUND;
        m->name[m->nparams] = best->seg[i].text;
        m->value[m->nparams] = scratch + used;
        m->nparams++;
        used += (size_t)n + 1;
    }
    m->route = best;
    return HTTP_MATCH_OK;
}
