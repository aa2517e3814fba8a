/*
 * tasks: create (assigned at once by shuffle.lua), list, get, complete.
 * Every write commits the task row and its events in one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "tracker.h"

#define TASK_COLS "id, title, jira_id, description, status, assignee_id, created_at, completed_at"

cJSON *tracker_task_json(const tracker_task_t *t)
{
    char created[CLOCK_RFC3339_LEN], completed[CLOCK_RFC3339_LEN];
    clock_rfc3339(t->created_at, created);
    clock_rfc3339(t->completed_at, completed);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "title", t->title);
    json_add_string_or_null(o, "jira_id", t->jira_id[0] ? t->jira_id : NULL);
    json_add_string_or_null(o, "description", t->description);
    cJSON_AddStringToObject(o, "status", t->done ? "done" : "open");
    cJSON_AddStringToObject(o, "assignee_id", t->assignee_id);
    cJSON_AddStringToObject(o, "created_at", created);
    json_add_string_or_null(o, "completed_at", t->done ? completed : NULL);
    return o;
}

static void read_row(sqlite3_stmt *st, tracker_task_t *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", db_col_text(st, 0));
    snprintf(t->title, sizeof(t->title), "%s", db_col_text(st, 1));
    snprintf(t->jira_id, sizeof(t->jira_id), "%s", db_col_text(st, 2));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) t->description = strdup(db_col_text(st, 3));
    t->done = strcmp(db_col_text(st, 4), "done") == 0;
    snprintf(t->assignee_id, sizeof(t->assignee_id), "%s", db_col_text(st, 5));
    t->created_at = sqlite3_column_int64(st, 6);
    t->completed_at = sqlite3_column_int64(st, 7);
}

/* 1 found, 0 not found, -1 error. */
static int task_get(db_conn_t *c, const char *id, tracker_task_t *t)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT " TASK_COLS " FROM tasks WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(c, st);
    if (rc != 1) return rc < 0 ? -1 : 0;
    read_row(st, t);
    sqlite3_reset(st);
    return 1;
}

cJSON *tracker_assigned_data(const char *task_id, const char *assignee, const char *previous,
                             int64_t at)
{
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(at, when);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "task_id", task_id);
    cJSON_AddStringToObject(d, "assignee_id", assignee);
    json_add_string_or_null(d, "previous_assignee_id", previous);
    cJSON_AddStringToObject(d, "assigned_at", when);
    return d;
}

/* --- create -------------------------------------------------------------- */

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool jira_valid(const char *s)
{
    size_t len = strlen(s);
    const char *dash = strchr(s, '-');
    if (len > TRACKER_JIRA_MAX || !dash || dash == s || !dash[1] || s[0] < 'A' || s[0] > 'Z')
        return false;
    for (const char *p = s; p < dash; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return false;
    for (const char *p = dash + 1; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

/* Read and check the body of POST /api/tasks into t (borrowing strings). */
static int read_new_task(const cJSON *body, const char **title, const char **jira,
                         const char **description)
{
    if (json_get_string(body, "title", true, title) < 0 ||
        json_get_string(body, "jira_id", false, jira) < 0 ||
        json_get_string(body, "description", false, description) < 0)
        return -1;
    size_t n = utf8_len(*title);
    if (n < 1 || n > TRACKER_TITLE_MAX || strlen(*title) > TRACKER_TITLE_BYTES)
        return diag_set(DIAG_VALIDATION, "title must have 1..%d characters", TRACKER_TITLE_MAX);
    if (strpbrk(*title, "[]"))
        return diag_set(DIAG_VALIDATION,
                        "title must not hold '[' or ']': the jira id goes in jira_id");
    bool blank = true;
    for (const char *p = *title; *p; p++) {
        if ((unsigned char)*p < ' ')
            return diag_set(DIAG_VALIDATION, "title must not contain control characters");
        blank = blank && *p == ' ';
    }
    if (blank) return diag_set(DIAG_VALIDATION, "title must not be blank");
    if (*jira && !jira_valid(*jira)) /* given, even empty: checked; absent or null: none */
        return diag_set(DIAG_VALIDATION, "jira_id must look like UBERPOP-42 (at most %d characters)",
                        TRACKER_JIRA_MAX);
    if (*description && utf8_len(*description) > TRACKER_DESCRIPTION_MAX)
        return diag_set(DIAG_VALIDATION, "description must have at most %d characters",
                        TRACKER_DESCRIPTION_MAX);
    return 0;
}

/* A create on its way through the group commit: the task, and its two
 * events built on the HTTP thread, so that the writer thread only writes
 * rows. */
typedef struct create_call {
    http_req_t *req; /* deferred; answered by create_done */
    tracker_task_t t; /* description borrowed from the request's body */
    bus_prepared_t created, assigned;
} create_call_t;

static int create_prepare(create_call_t *cc, const char *producer, const char *trace)
{
    const tracker_task_t *t = &cc->t;
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(t->created_at, when);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "task_id", t->id);
    cJSON_AddStringToObject(d, "title", t->title);
    json_add_string_or_null(d, "jira_id", t->jira_id[0] ? t->jira_id : NULL);
    json_add_string_or_null(d, "description", t->description);
    cJSON_AddStringToObject(d, "assignee_id", t->assignee_id);
    cJSON_AddStringToObject(d, "created_at", when);
    if (bus_prepare(producer, trace, "TaskCreated", 2, d, &cc->created) < 0) return -1;
    return bus_prepare(producer, trace, "TaskAssigned", 1,
                       tracker_assigned_data(t->id, t->assignee_id, NULL, t->created_at), &cc->assigned);
}

static int create_work(db_conn_t *tx, void *arg)
{
    create_call_t *cc = arg;
    const tracker_task_t *t = &cc->t;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO tasks(" TASK_COLS ") "
                                   "VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, NULL)");
    if (!st || db_bind_text(st, 1, t->id) < 0 || db_bind_text(st, 2, t->title) < 0 ||
        db_bind_text(st, 3, t->jira_id[0] ? t->jira_id : NULL) < 0 ||
        db_bind_text(st, 4, t->description) < 0 || db_bind_text(st, 5, t->assignee_id) < 0 ||
        db_bind_int64(st, 6, t->created_at) < 0 || db_step_done(tx, st) < 0 ||
        bus_emit_prepared(tx, "ates.tasks.created", &cc->created, NULL) < 0)
        return -1;
    return bus_emit_prepared(tx, "ates.tasks.assigned", &cc->assigned, NULL);
}

static void create_free(create_call_t *cc)
{
    bus_prepared_free(&cc->created);
    bus_prepared_free(&cc->assigned);
    free(cc);
}

/* On the writer thread, after the commit: the answer. */
static void create_done(void *arg, int rc)
{
    create_call_t *cc = arg;
    http_req_t *req = cc->req;
    cJSON *task = rc == 0 ? tracker_task_json(&cc->t) : NULL;
    create_free(cc);
    if (rc < 0) http_reply_diag(req);
    else http_reply_json(req, 201, task);
}

/* Choose the assignee (shuffle.lua's pick over the eligible accounts). */
static int assign_new(service_t *svc, tracker_task_t *t)
{
    tracker_candidates_t *c = tracker_candidates_get(svc);
    int rc = -1;
    if (c && tracker_candidates_any(c) == 0) {
        tracker_picker_t pk;
        rc = tracker_picker_open(svc, c, &pk);
        if (rc == 0) rc = tracker_pick(&pk, t, t->assignee_id, NULL);
        tracker_picker_close(&pk);
    }
    tracker_candidates_release(c);
    return rc;
}

/* The row and both events commit in a group transaction shared with the
 * creates of other connections; the request waits deferred, so its HTTP
 * thread serves other connections meanwhile and the batches grow with
 * the load. */
void tracker_on_create(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"title", "jira_id", "description", NULL};
    const cJSON *body = http_body_object(req);
    if (!body || !http_body_only(req, fields)) return;
    const char *title = NULL, *jira = NULL, *description = NULL;
    if (read_new_task(body, &title, &jira, &description) < 0) {
        http_reply_diag(req);
        return;
    }
    create_call_t *cc = calloc(1, sizeof(*cc));
    if (!cc) {
        http_reply_error(req, DIAG_UNAVAILABLE, "out of memory");
        return;
    }
    cc->req = req;
    tracker_task_t *t = &cc->t;
    t->created_at = clock_now_ms();
    uuid_v7(t->id);
    snprintf(t->title, sizeof(t->title), "%s", title);
    snprintf(t->jira_id, sizeof(t->jira_id), "%s", jira ? jira : "");
    t->description = (char *)description;
    db_t *db = service_db(svc);
    if (assign_new(svc, t) < 0 || create_prepare(cc, db_name(db), http_trace_id(req)) < 0) {
        create_free(cc);
        http_reply_diag(req);
        return;
    }
    http_defer(req);
    if (db_group_submit(db, create_work, create_done, cc) < 0) {
        create_free(cc);
        http_reply_diag(req); /* answers the deferred request */
    }
}

/* --- read ---------------------------------------------------------------- */

void tracker_on_get(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    tracker_task_t t;
    db_conn_t *c = db_conn(service_db(svc));
    int rc = c ? task_get(c, http_param(req, "id"), &t) : -1;
    if (rc < 0) {
        http_reply_diag(req);
        return;
    }
    if (rc == 0) {
        http_reply_error(req, DIAG_NOT_FOUND, "no task %s", http_param(req, "id"));
        return;
    }
    http_reply_json(req, 200, tracker_task_json(&t));
    free(t.description);
}

/* ?assignee=me|all (default me), ?status=open|done (default both). */
static int read_filters(http_req_t *req, const char **assignee, const char **status)
{
    const char *a = http_query(req, "assignee"), *s = http_query(req, "status");
    if (a && strcmp(a, "me") != 0 && strcmp(a, "all") != 0)
        return diag_set(DIAG_VALIDATION, "assignee must be me or all");
    if (s && strcmp(s, "open") != 0 && strcmp(s, "done") != 0)
        return diag_set(DIAG_VALIDATION, "status must be open or done");
    *assignee = a && strcmp(a, "all") == 0 ? NULL : http_auth(req)->account_id;
    *status = s;
    return 0;
}

void tracker_on_list(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    int limit;
    const char *after = NULL, *assignee = NULL, *status = NULL;
    if (read_filters(req, &assignee, &status) < 0) {
        http_reply_diag(req);
        return;
    }
    if (http_page(req, &limit, &after) < 0) return;
    db_conn_t *c = db_conn(service_db(svc));
    /* two statements so that each uses its index */
    sqlite3_stmt *st =
        !c ? NULL
        : assignee
            ? db_stmt(c, "SELECT " TASK_COLS " FROM tasks WHERE assignee_id = ?1 "
                         "AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id > ?3) "
                         "ORDER BY id LIMIT ?4")
            : db_stmt(c, "SELECT " TASK_COLS " FROM tasks WHERE ?1 IS NULL "
                         "AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id > ?3) "
                         "ORDER BY id LIMIT ?4");
    if (!st || db_bind_text(st, 1, assignee) < 0 || db_bind_text(st, 2, status) < 0 ||
        db_bind_text(st, 3, after) < 0 || db_bind_int64(st, 4, limit + 1) < 0) {
        http_reply_diag(req);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    tracker_task_t t;
    int n = 0, rc;
    char last[UUID_LEN] = "";
    while ((rc = db_step(c, st)) == 1) {
        if (n++ == limit) break;
        read_row(st, &t);
        snprintf(last, sizeof(last), "%s", t.id);
        cJSON_AddItemToArray(items, tracker_task_json(&t));
        free(t.description);
    }
    sqlite3_reset(st);
    if (rc < 0) {
        cJSON_Delete(items);
        http_reply_diag(req);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "items", items);
    json_add_string_or_null(out, "next", n > limit ? last : NULL);
    http_reply_json(req, 200, out);
}

/* --- complete ------------------------------------------------------------ */

static int complete(db_conn_t *tx, const char *id, const char *caller, tracker_task_t *t)
{
    int rc = task_get(tx, id, t);
    if (rc <= 0) return rc < 0 ? -1 : diag_set(DIAG_NOT_FOUND, "no task %s", id);
    if (strcmp(t->assignee_id, caller) != 0)
        return diag_set(DIAG_FORBIDDEN, "only the assignee completes a task");
    if (t->done) return diag_set(DIAG_CONFLICT, "the task is already done");
    t->done = true;
    t->completed_at = clock_now_ms();
    sqlite3_stmt *st = db_stmt(tx, "UPDATE tasks SET status = 'done', completed_at = ?2 "
                                   "WHERE id = ?1 AND status = 'open'");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_int64(st, 2, t->completed_at) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(t->completed_at, when);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "task_id", id);
    cJSON_AddStringToObject(d, "assignee_id", t->assignee_id);
    cJSON_AddStringToObject(d, "completed_at", when);
    return bus_emit(tx, "ates.tasks.completed", "TaskCompleted", 1, d, NULL);
}

typedef struct complete_call {
    http_req_t *req; /* deferred; answered by complete_done */
    const char *id, *caller; /* the request's */
    tracker_task_t task;
} complete_call_t;

static int complete_work(db_conn_t *tx, void *arg)
{
    complete_call_t *c = arg;
    return complete(tx, c->id, c->caller, &c->task);
}

static void complete_done(void *arg, int rc)
{
    complete_call_t *c = arg;
    http_req_t *req = c->req;
    cJSON *task = rc == 0 ? tracker_task_json(&c->task) : NULL;
    free(c->task.description);
    free(c);
    if (rc < 0) http_reply_diag(req);
    else http_reply_json(req, 200, task);
}

/* Deferred through the group commit, as a create. */
void tracker_on_complete(http_req_t *req, void *ud)
{
    static const char *const none[] = {NULL};
    if (!http_body_only(req, none)) return;
    service_t *svc = ud;
    complete_call_t *c = calloc(1, sizeof(*c));
    if (!c) {
        http_reply_error(req, DIAG_UNAVAILABLE, "out of memory");
        return;
    }
    *c = (complete_call_t){.req = req, .id = http_param(req, "id"),
                           .caller = http_auth(req)->account_id};
    http_defer(req);
    if (db_group_submit(service_db(svc), complete_work, complete_done, c) < 0) {
        free(c);
        http_reply_diag(req);
    }
}
