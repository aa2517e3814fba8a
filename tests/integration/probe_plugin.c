/*
 * probe: a test-only service, linked into build/ates_testhost, that
 * exercises core the way real services do: it emits events through the
 * outbox, consumes them exactly once, calls rules, and can crash on demand
 * between a commit and the publish. The integration tests drive it over HTTP.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "core/plugin.h"

static const char *const migrations[] = {
    "CREATE TABLE effects ("
    "  key TEXT PRIMARY KEY,"
    "  n INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  trace_id TEXT NOT NULL);",
    NULL,
};

static const bus_stream_t streams[] = {
    {"ATES_PROBE", "ates.probe.>"},
    {NULL, NULL},
};

/* Fails the first `fail_times` deliveries, then counts one effect per key. */
static int on_emitted(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    (void)ud;
    const char *key = NULL;
    int64_t fail_times = 0;
    if (json_get_string(ev->data, "key", true, &key) < 0 ||
        json_get_int64(ev->data, "fail_times", true, &fail_times) < 0)
        return -1;
    if (ev->delivered <= fail_times)
        return diag_set(DIAG_INTERNAL, "planned failure %d of %lld", ev->delivered,
                        (long long)fail_times);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO effects(key, n, event_id, trace_id) "
                                   "VALUES (?1, 1, ?2, ?3) "
                                   "ON CONFLICT(key) DO UPDATE SET n = n + 1");
    if (!st || db_bind_text(st, 1, key) < 0 || db_bind_text(st, 2, ev->event_id) < 0 ||
        db_bind_text(st, 3, ev->trace_id) < 0)
        return -1;
    return db_step_done(tx, st);
}

static const bus_subscription_t subscriptions[] = {
    {"ATES_PROBE", "ates.probe.emitted", on_emitted},
    {NULL, NULL, NULL},
};

/* POST /api/probe/emit {keys:[...], fail_times?, crash_after_commit?} */
static void on_emit(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    const cJSON *body = http_body_object(req);
    if (!body) return;
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(body, "keys");
    int64_t fail_times = 0;
    bool crash = false;
    if (!cJSON_IsArray(keys) || json_get_int64(body, "fail_times", false, &fail_times) < 0 ||
        json_get_bool(body, "crash_after_commit", false, &crash) < 0) {
        http_reply_error(req, DIAG_VALIDATION, "expected {keys:[string], fail_times?, crash_after_commit?}");
        return;
    }
    db_conn_t *tx = db_conn(service_db(svc));
    if (!tx || db_begin(tx) < 0) {
        http_reply_diag(req);
        return;
    }
    cJSON *ids = cJSON_CreateArray();
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        char id[64];
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "key", cJSON_IsString(k) ? k->valuestring : "");
        json_add_int64(data, "fail_times", fail_times);
        if (bus_emit(tx, "ates.probe.emitted", "ProbeEmitted", 1, data, id) < 0) {
            db_rollback(tx);
            cJSON_Delete(ids);
            http_reply_diag(req);
            return;
        }
        cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    }
    if (db_commit(tx) < 0) {
        cJSON_Delete(ids);
        http_reply_diag(req);
        return;
    }
    if (crash) raise(SIGKILL); /* committed, not yet published */
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "event_ids", ids);
    http_reply_json(req, 200, out);
}

/* GET /api/probe/effects */
static void on_effects(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT key, n, event_id, trace_id FROM effects ORDER BY key") : NULL;
    if (!st) {
        http_reply_diag(req);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    int rc;
    while ((rc = db_step(c, st)) == 1) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "key", db_col_text(st, 0));
        json_add_int64(it, "n", sqlite3_column_int64(st, 1));
        cJSON_AddStringToObject(it, "event_id", db_col_text(st, 2));
        cJSON_AddStringToObject(it, "trace_id", db_col_text(st, 3));
        cJSON_AddItemToArray(items, it);
    }
    if (rc < 0) {
        cJSON_Delete(items);
        http_reply_diag(req);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "items", items);
    json_add_int64(out, "outbox_pending", bus_outbox_pending(service_db(svc)));
    http_reply_json(req, 200, out);
}

/* POST /api/probe/rule {file, fn, args?} -> {result, version} */
static void on_rule(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    const cJSON *body = http_body_object(req);
    if (!body) return;
    const char *file = NULL, *fn = NULL;
    if (json_get_string(body, "file", true, &file) < 0 || json_get_string(body, "fn", true, &fn) < 0) {
        http_reply_diag(req);
        return;
    }
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(body, "args");
    cJSON *result = NULL;
    char version[RULES_VERSION_LEN] = "";
    if (rules_call(service_rules(svc), file, fn, cJSON_IsArray(args) ? args : NULL, &result,
                  version) < 0) {
        http_reply_error(req, DIAG_UNAVAILABLE, "%s", diag_last()->message);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "result", result ? result : cJSON_CreateNull());
    cJSON_AddStringToObject(out, "version", version);
    http_reply_json(req, 200, out);
}

/* GET /api/probe/rules: the rules status without a token (tests only). */
static void on_rules(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    http_reply_json(req, 200, rules_status(service_rules(svc)));
}

/* GET /api/probe/whoami: the caller's identity (needs a token). */
static void on_whoami(http_req_t *req, void *ud)
{
    (void)ud;
    const http_auth_t *a = http_auth(req);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "account_id", a->account_id);
    cJSON_AddStringToObject(out, "role", a->role);
    cJSON_AddStringToObject(out, "trace_id", http_trace_id(req));
    http_reply_json(req, 200, out);
}

static const http_route_t routes[] = {
    {"POST", "/api/probe/emit", on_emit, HTTP_PUBLIC, NULL},
    {"GET", "/api/probe/effects", on_effects, HTTP_PUBLIC, NULL},
    {"POST", "/api/probe/rule", on_rule, HTTP_PUBLIC, NULL},
    {"GET", "/api/probe/rules", on_rules, HTTP_PUBLIC, NULL},
    {"GET", "/api/probe/whoami", on_whoami, HTTP_AUTH, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

const plugin_t probe_plugin = {
    .name = "probe",
    .migrations = migrations,
    .streams = streams,
    .subscriptions = subscriptions,
    .routes = routes,
};
