/*
 * runtime: start, run and stop a set of services in one process (see
 * runtime.h). Order of start: clock, data dir, keys, schemas, rules, bus,
 * per service (database + migrations, plugin start), HTTP routes, streams,
 * relays, mail workers and consumers, jobs, then the listening socket. Stop
 * is the reverse. Signals are blocked in every thread and taken by sigwait in the
 * main thread, so no handler runs inside library code.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"
#include "fetch.h"
#include "log.h"
#include "mail.h"
#include "metrics.h"

struct service {
    const plugin_t *plugin;
    struct runtime *rt;
    db_t *db;
    void *state;   /* the plugin's own, via service_set_state */
    bool started;  /* plugin->start succeeded */
    bool locked;   /* lock_fd holds DATA/<name>.lock */
    int lock_fd;
};

struct runtime {
    config_t cfg;
    service_t svcs[RUNTIME_MAX_SERVICES];
    int nsvcs;
    jwt_keys_t *keys;
    schema_registry_t *schemas;
    rules_t *rules;
    bus_t *bus;
    http_server_t *http;
    sched_t *sched;
    bool embedded; /* runtime_embed_open: no NATS, no threads, no socket */
};

/* --- the service API plugins see --------------------------------------- */

const char *service_name(const service_t *svc) { return svc->plugin->name; }
const config_t *service_config(const service_t *svc) { return &svc->rt->cfg; }
db_t *service_db(service_t *svc) { return svc->db; }
bus_t *service_bus(service_t *svc) { return svc->rt->bus; }
rules_t *service_rules(service_t *svc) { return svc->rt->rules; }
const jwt_keys_t *service_keys(service_t *svc) { return svc->rt->keys; }
void *service_state(service_t *svc) { return svc->state; }
void service_set_state(service_t *svc, void *state) { svc->state = state; }

/* --- one service outside `serve` (ates replay) --------------------------- */

service_t *runtime_service_new(const config_t *cfg, const plugin_t *p, db_t *db, bus_t *bus,
                               rules_t *rules)
{
    runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    rt->cfg = *cfg;
    rt->bus = bus;
    rt->rules = rules;
    rt->nsvcs = 1;
    rt->svcs[0].plugin = p;
    rt->svcs[0].rt = rt;
    rt->svcs[0].db = db;
    return &rt->svcs[0];
}

void runtime_service_free(service_t *svc)
{
    if (svc) free(svc->rt);
}

int runtime_lock_service(const config_t *cfg, const char *name, int *fd)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s.lock", cfg->data_dir, name) >= (int)sizeof(path))
        return diag_set(DIAG_VALIDATION, "data dir path too long");
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) return diag_set(DIAG_UNAVAILABLE, "open %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0) return 0;
    int err = errno;
    close(*fd);
    *fd = -1;
    if (err == EWOULDBLOCK)
        return diag_set(DIAG_CONFLICT, "service %s is in use by another process (data dir %s)",
                        name, cfg->data_dir);
    return diag_set(DIAG_UNAVAILABLE, "lock %s: %s", path, strerror(err));
}

/* --- selection ---------------------------------------------------------- */

static const plugin_t *find_plugin(const char *name, size_t len)
{
    for (const plugin_t *const *p = ates_plugins; *p; p++)
        if (strlen((*p)->name) == len && strncmp((*p)->name, name, len) == 0) return *p;
    return NULL;
}

int runtime_select(const char *csv, const plugin_t **out, int max, int *n)
{
    *n = 0;
    if (!csv || !*csv) {
        for (const plugin_t *const *p = ates_plugins; *p && *n < max; p++) out[(*n)++] = *p;
        return 0;
    }
    const char *s = csv;
    while (*s) {
        size_t len = strcspn(s, ",");
        const plugin_t *p = find_plugin(s, len);
        if (!p) {
            char known[256] = "";
            for (const plugin_t *const *k = ates_plugins; *k; k++)
                snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                         k == ates_plugins ? "" : ", ", (*k)->name);
            return diag_set(DIAG_VALIDATION, "unknown service '%.*s' (services: %s)", (int)len, s, known);
        }
        for (int i = 0; i < *n; i++)
            if (out[i] == p) return diag_set(DIAG_VALIDATION, "service '%s' named twice", p->name);
        if (*n >= max) return diag_set(DIAG_VALIDATION, "too many services");
        out[(*n)++] = p;
        s += len;
        if (*s == ',') s++;
    }
    return 0;
}

int runtime_mkdirs(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return diag_set(DIAG_VALIDATION, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return diag_set(DIAG_UNAVAILABLE, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return diag_set(DIAG_UNAVAILABLE, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

/* --- operations routes -------------------------------------------------- */

static void on_health(http_req_t *req, void *ud)
{
    (void)ud;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "status", "ok");
    http_reply_json(req, 200, body);
}

static void on_ready(http_req_t *req, void *ud)
{
    runtime_t *rt = ud;
    cJSON *body = cJSON_CreateObject();
    cJSON *checks = cJSON_AddObjectToObject(body, "checks");
    bool ok = true;
    for (int i = 0; i < rt->nsvcs; i++) {
        bool up = db_ping(rt->svcs[i].db) == 0;
        cJSON_AddStringToObject(checks, rt->svcs[i].plugin->name, up ? "ok" : "down");
        ok = ok && up;
    }
    bool nats = bus_ping(rt->bus) == 0;
    cJSON_AddStringToObject(checks, "nats", nats ? "ok" : "down");
    ok = ok && nats;
    /* every rule file a service calls has a version in force */
    bool rules = true;
    for (int i = 0; rules && i < rt->nsvcs; i++)
        for (const plugin_rule_t *r = rt->svcs[i].plugin->rules; rules && r && r->file; r++)
            rules = rules_in_force(rt->rules, r->file);
    cJSON_AddStringToObject(checks, "rules", rules ? "ok" : "down");
    ok = ok && rules;
    cJSON_AddStringToObject(body, "status", ok ? "ready" : "unavailable");
    http_reply_json(req, ok ? 200 : 503, body);
}

static void on_metrics(http_req_t *req, void *ud)
{
    (void)ud;
    char *text = metrics_render();
    if (!text) {
        http_reply_error(req, DIAG_INTERNAL, "out of memory");
        return;
    }
    http_reply_text(req, 200, "text/plain; version=0.0.4", text);
    free(text);
}

static void on_rules(http_req_t *req, void *ud)
{
    runtime_t *rt = ud;
    if (!http_role_in(req, rt->cfg.ops_roles)) {
        http_reply_error(req, DIAG_FORBIDDEN, "this needs one of the roles: %s", rt->cfg.ops_roles);
        return;
    }
    http_reply_json(req, 200, rules_status(rt->rules));
}

static const http_route_t ops_routes[] = {
    {"GET", "/health", on_health, HTTP_PUBLIC, NULL},
    {"GET", "/ready", on_ready, HTTP_PUBLIC, NULL},
    {"GET", "/metrics", on_metrics, HTTP_PUBLIC, NULL},
    {"GET", "/api/rules", on_rules, HTTP_AUTH, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* --- start and stop ----------------------------------------------------- */

#define JWKS_WAIT_MS 60000 /* how long start waits for the JWKS of ATES_JWKS_URL */

/* Trust the keys auth publishes at cfg.jwks_url too (services in another
 * process with another data dir). Auth may be starting at the same time:
 * retry until it answers. Runs before the HTTP server verifies anything. */
static int add_remote_keys(runtime_t *rt)
{
    int64_t deadline = clock_monotonic_ms() + JWKS_WAIT_MS;
    for (;;) {
        cJSON *jwks = NULL;
        if (fetch_json(rt->cfg.jwks_url, 5000, &jwks) == 0) {
            int rc = jwt_keys_add_jwks(rt->keys, jwks);
            cJSON_Delete(jwks);
            if (rc == 0) log_info("trusting the token keys of %s", rt->cfg.jwks_url);
            return rc;
        }
        if (clock_monotonic_ms() > deadline) return -1;
        log_warn("waiting for %s: %s", rt->cfg.jwks_url, diag_last()->message);
        struct timespec pause = {0, 500L * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static uint64_t rules_wake(const void *rules) { return rules_generation(rules); }

static int open_shared(runtime_t *rt)
{
    char path[PATH_MAX];
    if (runtime_mkdirs(rt->cfg.data_dir, 0700) < 0) return -1;
    if (snprintf(path, sizeof(path), "%s/keys", rt->cfg.data_dir) >= (int)sizeof(path))
        return diag_set(DIAG_VALIDATION, "data dir path too long");
    if (jwt_keys_open(&rt->keys, path, 1) < 0) return -1;
    if (rt->cfg.jwks_url[0] && add_remote_keys(rt) < 0) return -1;
    if (schema_registry_load(&rt->schemas, rt->cfg.schemas_dir) < 0) return -1;
    if (runtime_mkdirs(rt->cfg.rules_dir, 0755) < 0) return -1;
    if (rules_open(&rt->rules, rt->cfg.rules_dir, rt->cfg.seed) < 0) return -1;
    /* the versions in force outlive a restart with a rule broken on disk */
    if (snprintf(path, sizeof(path), "%s/rules-in-force", rt->cfg.data_dir) >= (int)sizeof(path) ||
        rules_keep(rt->rules, path) < 0)
        return -1;
    if (rt->embedded) {
        bus_set_schemas(rt->schemas); /* bus_emit validates without a connection */
        return 0;
    }
    if (bus_open(&rt->bus, rt->cfg.nats_url, rt->schemas) < 0) return -1;
    /* an event parked on a failing rule applies as soon as the rule is fixed */
    bus_set_wake(rt->bus, rules_wake, rt->rules);
    return 0;
}

static int start_service(runtime_t *rt, service_t *svc)
{
    const plugin_t *p = svc->plugin;
    char path[PATH_MAX];
    log_set_service(p->name);
    if (runtime_lock_service(&rt->cfg, p->name, &svc->lock_fd) < 0) return -1;
    svc->locked = true;
    if (snprintf(path, sizeof(path), "%s/%s.db", rt->cfg.data_dir, p->name) >= (int)sizeof(path))
        return diag_set(DIAG_VALIDATION, "data dir path too long");
    if (db_open(&svc->db, p->name, path, db_core_migrations, p->migrations) < 0) return -1;
    for (const plugin_rule_t *r = p->rules; r && r->file; r++)
        if (rules_require(rt->rules, r->file, r->fn) < 0) log_diag(LOG_WARN, "a service needs it");
    if (p->start && p->start(svc) < 0) return -1;
    svc->started = true;
    if (p->routes && http_add_routes(rt->http, p->routes, svc) < 0) return -1;
    if (rt->embedded) {
        log_set_service(NULL);
        return 0;
    }
    if (p->streams && bus_ensure_streams(rt->bus, p->streams) < 0)
        log_diag(LOG_WARN, "streams not ensured yet (will retry)");
    if (bus_relay_start(rt->bus, svc->db) < 0) return -1;
    if (mail_start(svc->db, &rt->cfg) < 0) return -1;
    if (p->subscriptions &&
        bus_consume_start(rt->bus, svc->db, p->name, p->streams, p->subscriptions, svc) < 0)
        return -1;
    if (p->jobs && sched_add(rt->sched, svc->db, p->jobs, svc) < 0) return -1;
    log_set_service(NULL);
    return 0;
}

static void stop_all(runtime_t *rt)
{
    if (rt->http) http_stop(rt->http);
    if (rt->sched) sched_stop(rt->sched);
    if (rt->bus) bus_stop_all(rt->bus);
    mail_stop_all();
    if (rt->rules) rules_watch_stop(rt->rules);
    for (int i = rt->nsvcs - 1; i >= 0; i--) {
        service_t *svc = &rt->svcs[i];
        if (svc->started && svc->plugin->stop) svc->plugin->stop(svc);
        db_close(svc->db);
        if (svc->locked) close(svc->lock_fd);
    }
    http_free(rt->http);
    sched_free(rt->sched);
    bus_close(rt->bus);
    rules_close(rt->rules);
    schema_registry_free(rt->schemas);
    jwt_keys_close(rt->keys);
}

/* Block the signals we wait for, so every thread started after inherits it. */
/* A server holds a descriptor per client: take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) log_warn("cannot raise the descriptor limit");
    }
}

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Everything up to the threads: shared parts, the HTTP server (not
 * started) with the ops routes, and each service. */
static int open_all(runtime_t *rt, const plugin_t **plugins, int n)
{
    if (open_shared(rt) < 0) return -1;
    http_options_t hopts = {.host = rt->cfg.http_host, .port = rt->cfg.http_port,
                            .threads = (unsigned)rt->cfg.http_threads,
                            .web_dir = rt->cfg.web_dir, .keys = rt->keys};
    if (http_create(&rt->http, &hopts) < 0 || http_add_routes(rt->http, ops_routes, rt) < 0 ||
        sched_create(&rt->sched) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        rt->svcs[i].plugin = plugins[i];
        rt->svcs[i].rt = rt;
        rt->nsvcs = i + 1;
        if (start_service(rt, &rt->svcs[i]) < 0) {
            log_diag(LOG_ERROR, plugins[i]->name);
            return -1;
        }
    }
    return 0;
}

static int start_all(runtime_t *rt, const plugin_t **plugins, int n)
{
    if (open_all(rt, plugins, n) < 0) return -1;
    if (rules_watch_start(rt->rules) < 0 || sched_start(rt->sched) < 0) return -1;
    return http_start(rt->http);
}

int runtime_serve(const config_t *cfg, const char *services)
{
    static runtime_t rt; /* one per process; static keeps it off the stack */
    memset(&rt, 0, sizeof(rt));
    rt.cfg = *cfg;
    config_set_global(cfg);
    log_set_level(cfg->log_level);

    const plugin_t *plugins[RUNTIME_MAX_SERVICES];
    int n = 0;
    if (runtime_select(services, plugins, RUNTIME_MAX_SERVICES, &n) < 0 ||
        clock_configure(cfg->tz, cfg->day_close_minute) < 0) {
        fprintf(stderr, "ates: %s\n", diag_last()->message);
        return 2;
    }

    raise_fd_limit();
    sigset_t set;
    block_signals(&set);
    if (start_all(&rt, plugins, n) < 0) {
        log_diag(LOG_ERROR, "start");
        fprintf(stderr, "ates: cannot start: %s\n", diag_last()->message);
        stop_all(&rt);
        return 1;
    }
    char names[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "," : "",
                 plugins[i]->name);
    log_info("ates %s serving [%s] on http://%s:%d/ (nats %s, data %s)", ATES_VERSION, names,
             cfg->http_host, http_port(rt.http), cfg->nats_url, cfg->data_dir);

    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    log_info("signal %d: stopping", sig);
    stop_all(&rt);
    log_info("stopped");
    return 0;
}

/* --- embedded: the services without threads (fuzzing, tests) ----------- */

int runtime_embed_open(runtime_t **out, const config_t *cfg, const char *services)
{
    *out = NULL;
    const plugin_t *plugins[RUNTIME_MAX_SERVICES];
    int n = 0;
    if (runtime_select(services, plugins, RUNTIME_MAX_SERVICES, &n) < 0 ||
        clock_configure(cfg->tz, cfg->day_close_minute) < 0)
        return -1;
    runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return diag_set(DIAG_INTERNAL, "out of memory");
    rt->cfg = *cfg;
    rt->embedded = true;
    config_set_global(&rt->cfg);
    if (open_all(rt, plugins, n) < 0) {
        runtime_embed_close(rt);
        return -1;
    }
    *out = rt;
    return 0;
}

http_server_t *runtime_embed_http(runtime_t *rt) { return rt->http; }

const jwt_keys_t *runtime_embed_keys(runtime_t *rt) { return rt->keys; }

void runtime_embed_close(runtime_t *rt)
{
    if (!rt) return;
    stop_all(rt);
    bus_set_schemas(NULL);
    free(rt);
}
