/*
 * keys: the "most expensive" ordering as a stored, indexed key per task.
 *
 * analytics.lua's expense_key(task) returns an integer, an array of up to
 * AN_KEY_INTS integers, or nil. Each integer is stored as 8 big-endian
 * bytes with the sign bit flipped, so the BLOB's memcmp order (SQLite's
 * BLOB order) is the key's order, and tasks_best(day, sort_key DESC, id)
 * answers a day's most expensive task with one index seek.
 *
 * A key is made when a completed task changes (an event), with the rules
 * in force on the consumer thread. After analytics.lua changes, the rekey
 * job makes every key again. The protocol, in the database:
 *   meta.key_version = V, the version every fresh key must have been made
 *     with; a handler that made a key with another version marks it stale;
 *   meta.rekey_from  = a cursor (task id) while a pass over all tasks is
 *     due, absent otherwise.
 * The job (scheduler thread) sees a new rules generation, and when the
 * version in force differs from V, sets V and starts the pass in one
 * transaction; it then walks the tasks in id order, a slice at a time, and
 * remakes keys whose key_version is not V, and remakes stale keys. A key
 * made with a version that is no longer V is caught either by the pass
 * (made before V changed) or by the stale mark (after). While a pass runs,
 * answers mix old and new keys; a million tasks take about half a minute.
 */
#include <string.h>

#include "analytics.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"

typedef struct an_key {
    unsigned char b[AN_KEY_BYTES];
    int len; /* 0: nil, not a candidate */
} an_key_t;

typedef enum { KEY_NONE = 0, KEY_MADE, KEY_RULE_FAILED } key_outcome_t;

static void put_int(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v ^ 0x8000000000000000ULL;
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

/* expense_key()'s answer -> key; -1 (diag) when it is not a key. */
static int encode(const cJSON *res, an_key_t *k)
{
    int64_t v;
    k->len = 0;
    if (!res || cJSON_IsNull(res)) return 0;
    if (json_is_int(res, &v)) {
        put_int(k->b, v);
        k->len = 8;
        return 0;
    }
    int n = cJSON_IsArray(res) ? cJSON_GetArraySize(res) : 0;
    if (n >= 1 && n <= AN_KEY_INTS) {
        const cJSON *it;
        cJSON_ArrayForEach(it, res)
        {
            if (!json_is_int(it, &v)) break;
            put_int(k->b + k->len, v);
            k->len += 8;
        }
        if (k->len == 8 * n) return 0;
    }
    k->len = 0;
    return diag_set(DIAG_UNAVAILABLE,
                    AN_RULES ": expense_key() must return an integer, an array of 1..%d integers, "
                    "or nil",
                    AN_KEY_INTS);
}

/* Task `id` as expense_key() sees it, when completed: 1 (*task set), 0 not
 * completed or unknown, -1 error. */
static int load_task(db_conn_t *c, const char *id, cJSON **task)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT title, jira_id, reward_cents, completed_at, day "
                                  "FROM tasks WHERE id = ?1 AND completed_at IS NOT NULL");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(c, st);
    if (rc != 1) return rc;
    char when[CLOCK_RFC3339_LEN];
    int64_t at = sqlite3_column_int64(st, 3);
    clock_rfc3339(at, when);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "id", id);
    json_add_string_or_null(t, "title",
                            sqlite3_column_type(st, 0) == SQLITE_NULL ? NULL : db_col_text(st, 0));
    json_add_string_or_null(t, "jira_id",
                            sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : db_col_text(st, 1));
    if (sqlite3_column_type(st, 2) != SQLITE_NULL)
        json_add_int64(t, "reward_cents", sqlite3_column_int64(st, 2));
    cJSON_AddStringToObject(t, "completed_at", when);
    json_add_int64(t, "completed_ms", at);
    cJSON_AddStringToObject(t, "day", db_col_text(st, 4));
    sqlite3_reset(st);
    *task = t;
    return 1;
}

/* Make task `id`'s key with the rules in force on this thread. */
static int make_key(db_conn_t *c, rules_t *r, const char *id, an_key_t *k,
                    char version[RULES_VERSION_LEN], key_outcome_t *out)
{
    cJSON *task = NULL, *args = NULL, *res = NULL;
    *out = KEY_NONE;
    int rc = load_task(c, id, &task);
    if (rc <= 0) return rc;
    args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, task);
    *out = KEY_MADE;
    if (rules_call(r, AN_RULES, "expense_key", args, &res, version) < 0 || encode(res, k) < 0)
        *out = KEY_RULE_FAILED;
    cJSON_Delete(res);
    cJSON_Delete(args);
    return 0;
}

static int store_key(db_conn_t *c, const char *id, const an_key_t *k, const char *version,
                     bool stale)
{
    sqlite3_stmt *st = db_stmt(c, "UPDATE tasks SET sort_key = ?2, key_version = ?3, stale = ?4 "
                                  "WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0 ||
        (k->len ? sqlite3_bind_blob(st, 2, k->b, k->len, SQLITE_TRANSIENT)
                : sqlite3_bind_null(st, 2)) != SQLITE_OK ||
        db_bind_text(st, 3, version) < 0 || db_bind_int64(st, 4, stale) < 0)
        return diag_set(DIAG_INTERNAL, "store key: %s", sqlite3_errmsg(db_conn_handle(c)));
    return db_step_done(c, st);
}

static int mark_stale(db_conn_t *c, const char *id)
{
    sqlite3_stmt *st = db_stmt(c, "UPDATE tasks SET stale = 1 WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    return db_step_done(c, st);
}

int an_refresh_key(db_conn_t *tx, service_t *svc, const char *id)
{
    an_key_t k;
    char version[RULES_VERSION_LEN] = "", want[RULES_VERSION_LEN] = "";
    key_outcome_t out;
    if (make_key(tx, service_rules(svc), id, &k, version, &out) < 0) return -1;
    if (out == KEY_NONE) return 0;
    if (out == KEY_RULE_FAILED) {
        log_warn("expense key of task %s: %s (left to the rekey job)", id, diag_last()->message);
        return mark_stale(tx, id);
    }
    int have = an_meta_get(tx, "key_version", want, sizeof(want));
    if (have < 0) return -1;
    return store_key(tx, id, &k, version, have == 0 || strcmp(want, version) != 0);
}

void an_rules_version(service_t *svc, char out[RULES_VERSION_LEN])
{
    out[0] = '\0';
    cJSON *status = rules_status(service_rules(svc));
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(status, "items"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "file");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "version");
        if (cJSON_IsString(f) && strcmp(f->valuestring, AN_RULES) == 0 && cJSON_IsString(v))
            snprintf(out, RULES_VERSION_LEN, "%s", v->valuestring);
    }
    cJSON_Delete(status);
}

/* --- the rekey job ------------------------------------------------------- */

/* A new version in force: make it V and start a pass over every task. */
static int follow_rules(db_conn_t *c, service_t *svc)
{
    char v[RULES_VERSION_LEN], have[RULES_VERSION_LEN] = "";
    an_rules_version(svc, v);
    if (!v[0]) return 0;
    int rc = an_meta_get(c, "key_version", have, sizeof(have));
    if (rc < 0) return -1;
    if (rc == 1 && strcmp(have, v) == 0) return 0;
    if (db_begin(c) < 0) return -1;
    if (an_meta_set(c, "key_version", v) < 0 || an_meta_set(c, "rekey_from", "") < 0) {
        db_rollback(c);
        return -1;
    }
    if (db_commit(c) < 0) return -1;
    log_info(AN_RULES " %s in force: making every expense key again", v);
    return 0;
}

/* Up to AN_REKEY_CHUNK ids of the query `sql` with ?1 = after and, when
 * not NULL, ?2 = want. Returns how many, -1 on error. */
static int next_ids(db_conn_t *c, const char *sql, const char *after, const char *want,
                    char (*ids)[UUID_LEN])
{
    sqlite3_stmt *st = db_stmt(c, sql);
    if (!st || db_bind_text(st, 1, after) < 0 || (want && db_bind_text(st, 2, want) < 0))
        return -1;
    int n = 0, rc;
    while (n < AN_REKEY_CHUNK && (rc = db_step(c, st)) == 1)
        snprintf(ids[n++], UUID_LEN, "%s", db_col_text(st, 0));
    sqlite3_reset(st);
    return rc < 0 ? -1 : n;
}

/* Remake the keys of `ids` with V = want. *failed counts rule failures
 * (left stale). 1 done, 0 the rules changed under us (stop), -1 error. */
static int remake(db_conn_t *c, rules_t *r, char (*ids)[UUID_LEN], int n, const char *want,
                  int *failed)
{
    for (int i = 0; i < n; i++) {
        an_key_t k;
        char version[RULES_VERSION_LEN] = "";
        key_outcome_t out;
        if (make_key(c, r, ids[i], &k, version, &out) < 0) return -1;
        if (out == KEY_RULE_FAILED) {
            ++*failed;
            log_debug("expense key of task %s: %s", ids[i], diag_last()->message);
            if (mark_stale(c, ids[i]) < 0) return -1;
        } else if (out == KEY_MADE) {
            if (strcmp(version, want) != 0) return 0;
            if (store_key(c, ids[i], &k, version, false) < 0) return -1;
        }
    }
    return 1;
}

/* One chunk of the pass over all tasks: 1 more to do, 0 none, -1 error. */
static int walk_chunk(db_conn_t *c, rules_t *r, int *failed)
{
    char ids[AN_REKEY_CHUNK][UUID_LEN];
    char from[UUID_LEN] = "", want[RULES_VERSION_LEN] = "";
    if (db_begin(c) < 0) return -1;
    int rc = an_meta_get(c, "rekey_from", from, sizeof(from));
    if (rc == 1) rc = an_meta_get(c, "key_version", want, sizeof(want));
    if (rc <= 0) goto out;
    int n = next_ids(c, "SELECT id FROM tasks WHERE id > ?1 AND completed_at IS NOT NULL "
                        "AND key_version IS NOT ?2 ORDER BY id",
                     from, want, ids);
    if (n < 0 || (rc = remake(c, r, ids, n, want, failed)) <= 0) {
        rc = n < 0 ? -1 : rc;
        goto out;
    }
    if (n < AN_REKEY_CHUNK) {
        rc = an_meta_del(c, "rekey_from") < 0 ? -1 : 0;
        if (rc == 0) log_info("expense keys made with " AN_RULES " %s", want);
    } else {
        rc = an_meta_set(c, "rekey_from", ids[n - 1]) < 0 ? -1 : 1;
    }
out:
    if (rc < 0) {
        db_rollback(c);
        return -1;
    }
    return db_commit(c) < 0 ? -1 : rc;
}

/* One chunk of the pass over stale keys (cursor a->stale_after): 1 more to
 * do, 0 the pass is over (or stopped), -1 error. */
static int stale_chunk(db_conn_t *c, rules_t *r, analytics_t *a, int *failed)
{
    char ids[AN_REKEY_CHUNK][UUID_LEN];
    char want[RULES_VERSION_LEN] = "";
    if (db_begin(c) < 0) return -1;
    int rc = an_meta_get(c, "key_version", want, sizeof(want));
    if (rc <= 0) goto out;
    int n = next_ids(c, "SELECT id FROM tasks WHERE stale = 1 AND id > ?1 ORDER BY id",
                     a->stale_after, NULL, ids);
    if (n < 0 || (rc = remake(c, r, ids, n, want, failed)) <= 0) {
        rc = n < 0 ? -1 : rc;
        goto out;
    }
    snprintf(a->stale_after, sizeof(a->stale_after), "%s", n == AN_REKEY_CHUNK ? ids[n - 1] : "");
    rc = n == AN_REKEY_CHUNK;
out:
    if (rc < 0) {
        db_rollback(c);
        return -1;
    }
    return db_commit(c) < 0 ? -1 : rc;
}

int an_rekey_job(void *ud, const char *day)
{
    (void)day;
    service_t *svc = ud;
    analytics_t *a = service_state(svc);
    rules_t *r = service_rules(svc);
    db_conn_t *c = db_conn(service_db(svc));
    if (!a || !c) return -1;
    uint64_t gen = rules_generation(r);
    if (gen != a->rules_gen) {
        if (follow_rules(c, svc) < 0) return -1;
        a->rules_gen = gen;
        a->stale_blocked_gen = 0;
        a->stale_after[0] = '\0';
        a->stale_failed = 0;
    }
    int64_t deadline = clock_monotonic_ms() + AN_REKEY_SLICE_MS;
    int rc, failed = 0;
    while ((rc = walk_chunk(c, r, &failed)) == 1 && clock_monotonic_ms() < deadline) {}
    if (rc == 0 && a->stale_blocked_gen != gen + 1) {
        int stale_failed = 0;
        while ((rc = stale_chunk(c, r, a, &stale_failed)) == 1 && clock_monotonic_ms() < deadline) {}
        a->stale_failed += stale_failed;
        failed += stale_failed;
        if (rc == 0 && a->stale_after[0] == '\0') { /* a pass ended */
            /* keys it could not make wait for the next version of the rules */
            if (a->stale_failed > 0) a->stale_blocked_gen = gen + 1;
            a->stale_failed = 0;
        }
    }
    if (failed > 0)
        log_warn("%d expense keys failed with " AN_RULES " (%s); retried after its next change",
                 failed, diag_last()->message);
    return rc < 0 ? -1 : 0;
}
