/*
 * accounts: the tracker's own copy of the accounts, built only from
 * AccountCreated / AccountUpdated events, and the set of accounts that
 * shuffle.lua calls eligible, kept as a shared snapshot that is rebuilt
 * when an account change commits or the rules reload.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "tracker.h"

static void bump_accounts(void *arg)
{
    tracker_t *t = arg;
    atomic_fetch_add(&t->accounts_gen, 1);
}

/* AccountCreated v1 / AccountUpdated v1: upsert, newest event wins. */
int tracker_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    service_t *svc = ud;
    const char *id, *email, *name, *role;
    bool active;
    int64_t at;
    if (json_get_string(ev->data, "account_id", true, &id) < 0 ||
        json_get_string(ev->data, "email", true, &email) < 0 ||
        json_get_string(ev->data, "name", true, &name) < 0 ||
        json_get_string(ev->data, "role", true, &role) < 0 ||
        json_get_bool(ev->data, "active", true, &active) < 0 ||
        clock_parse_rfc3339(ev->event_time, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO accounts(id, email, name, role, active, updated_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET "
                                   "email = excluded.email, name = excluded.name, "
                                   "role = excluded.role, active = excluded.active, "
                                   "updated_at = excluded.updated_at "
                                   "WHERE excluded.updated_at >= accounts.updated_at");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, email) < 0 ||
        db_bind_text(st, 3, name) < 0 || db_bind_text(st, 4, role) < 0 ||
        db_bind_int64(st, 5, active) < 0 || db_bind_int64(st, 6, at) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return db_after_commit(tx, bump_accounts, service_state(svc));
}

void tracker_candidates_release(tracker_candidates_t *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        cJSON_Delete(c->ids);
        free(c->sorted);
        free(c);
    }
}

int tracker_candidates_any(const tracker_candidates_t *c)
{
    if (cJSON_GetArraySize(c->ids) > 0) return 0;
    return diag_set(DIAG_CONFLICT, "no account is eligible for tasks (see rules/shuffle.lua)");
}

/* eligible(account) of shuffle.lua for one row. 1 yes, 0 no, -1 error. */
static int call_eligible(rules_t *r, sqlite3_stmt *st)
{
    cJSON *args = cJSON_CreateArray(), *acc = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToArray(args, acc);
    cJSON_AddStringToObject(acc, "id", db_col_text(st, 0));
    cJSON_AddStringToObject(acc, "email", db_col_text(st, 1));
    cJSON_AddStringToObject(acc, "name", db_col_text(st, 2));
    cJSON_AddStringToObject(acc, "role", db_col_text(st, 3));
    cJSON_AddBoolToObject(acc, "active", sqlite3_column_int(st, 4) != 0);
    int rc = rules_call(r, TRACKER_RULES, "eligible", args, &res, NULL);
    if (rc == 0) {
        if (cJSON_IsBool(res)) rc = cJSON_IsTrue(res);
        else rc = diag_set(DIAG_UNAVAILABLE, "shuffle.lua: eligible() must return a boolean");
    }
    cJSON_Delete(res);
    cJSON_Delete(args);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* c->sorted: the ids in strcmp order (the query's ORDER BY id is the
 * collation's, which for these ASCII ids is the same; sorted anyway). */
static int index_ids(tracker_candidates_t *c)
{
    c->n = (size_t)cJSON_GetArraySize(c->ids);
    c->sorted = calloc(c->n ? c->n : 1, sizeof(*c->sorted));
    if (!c->sorted) return diag_set(DIAG_INTERNAL, "out of memory");
    size_t i = 0;
    for (const cJSON *it = c->ids->child; it; it = it->next) c->sorted[i++] = it->valuestring;
    qsort(c->sorted, c->n, sizeof(*c->sorted), cmp_id);
    return 0;
}

static tracker_candidates_t *build(service_t *svc, uint64_t accounts_gen, uint64_t rules_gen)
{
    tracker_candidates_t *c = calloc(1, sizeof(*c));
    db_conn_t *conn = db_conn(service_db(svc));
    sqlite3_stmt *st =
        conn ? db_stmt(conn, "SELECT id, email, name, role, active FROM accounts ORDER BY id") : NULL;
    if (!c || !st) {
        free(c);
        if (!diag_last()->kind) diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    c->ids = cJSON_CreateArray();
    c->accounts_gen = accounts_gen;
    c->rules_gen = rules_gen;
    atomic_init(&c->refs, 1);
    int rc, yes = 0;
    while ((rc = db_step(conn, st)) == 1) {
        if ((yes = call_eligible(service_rules(svc), st)) < 0) break;
        if (yes) cJSON_AddItemToArray(c->ids, cJSON_CreateString(db_col_text(st, 0)));
    }
    sqlite3_reset(st);
    if (rc < 0 || yes < 0 || index_ids(c) < 0) {
        tracker_candidates_release(c);
        return NULL;
    }
    return c;
}

tracker_candidates_t *tracker_candidates_get(service_t *svc)
{
    tracker_t *t = service_state(svc);
    /* read the generations first: a change after this triggers another rebuild */
    uint64_t agen = atomic_load(&t->accounts_gen);
    uint64_t rgen = rules_generation(service_rules(svc));
    pthread_mutex_lock(&t->lock);
    tracker_candidates_t *c = t->current;
    if (c && c->accounts_gen == agen && c->rules_gen == rgen) {
        atomic_fetch_add(&c->refs, 1);
        pthread_mutex_unlock(&t->lock);
        return c;
    }
    pthread_mutex_unlock(&t->lock);

    c = build(svc, agen, rgen);
    if (!c) return NULL;
    pthread_mutex_lock(&t->lock);
    tracker_candidates_t *old = t->current;
    t->current = c;
    atomic_fetch_add(&c->refs, 1); /* one for t->current, one for the caller */
    pthread_mutex_unlock(&t->lock);
    tracker_candidates_release(old);
    return c;
}

static bool is_candidate(const tracker_candidates_t *c, const char *id)
{
    return c->n > 0 && bsearch(&id, c->sorted, c->n, sizeof(*c->sorted), cmp_id) != NULL;
}

int tracker_picker_open(service_t *svc, const tracker_candidates_t *c, tracker_picker_t *p)
{
    p->c = c;
    p->args = NULL;
    if (rules_args_new(service_rules(svc), 2, &p->args) < 0) return -1;
    return rules_args_bind(p->args, 1, c->ids); /* borrowed, converted once per Lua state */
}

void tracker_picker_close(tracker_picker_t *p)
{
    rules_args_free(p->args);
    p->args = NULL;
}

int tracker_pick(tracker_picker_t *p, const tracker_task_t *task, char out[UUID_LEN],
                 char version[RULES_VERSION_LEN])
{
    cJSON *t = cJSON_CreateObject(), *res = NULL;
    cJSON_AddStringToObject(t, "id", task->id);
    cJSON_AddStringToObject(t, "title", task->title);
    json_add_string_or_null(t, "jira_id", task->jira_id[0] ? task->jira_id : NULL);
    json_add_string_or_null(t, "assignee_id", task->assignee_id[0] ? task->assignee_id : NULL);
    int rc = rules_args_set(p->args, 0, t);
    if (rc == 0) rc = rules_call_args(p->args, TRACKER_RULES, "pick", &res, version);
    if (rc == 0) {
        if (!cJSON_IsString(res) || !is_candidate(p->c, res->valuestring))
            rc = diag_set(DIAG_UNAVAILABLE, "shuffle.lua: pick() must return one of the candidates");
        else
            snprintf(out, UUID_LEN, "%s", res->valuestring);
    }
    cJSON_Delete(res);
    cJSON_Delete(t);
    return rc;
}
