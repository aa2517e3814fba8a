/*
 * shuffle: POST /api/tasks/shuffle reassigns every open task by
 * shuffle.lua's pick(). Presses never overlap (a mutex); the work goes in
 * chunks of TRACKER_SHUFFLE_CHUNK tasks, one transaction each, so a
 * completion waits at most one chunk and a task completed meanwhile is
 * never reassigned (each chunk reads the open tasks as they are then).
 * While the thread in the transaction writes a chunk's rows, a helper
 * thread (core/ahead) runs ahead of it with shuffle.lua's pick() and each
 * TaskAssigned's JSON: the rule calls and the JSON (about two fifths of a
 * press's work) leave the thread that holds the write lock.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "core/ahead.h"
#include "tracker.h"

typedef struct chunk_row {
    char id[UUID_LEN];
    char assignee[UUID_LEN];
    char title[TRACKER_TITLE_BYTES + 1];
    char jira_id[TRACKER_JIRA_MAX + 1];
} chunk_row_t;

/* Load the next open tasks after `after` into rows; returns how many or -1. */
static int load_chunk(db_conn_t *tx, const char *after, chunk_row_t *rows)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT id, assignee_id, title, jira_id FROM tasks "
                                   "WHERE status = 'open' AND id > ?1 ORDER BY id LIMIT ?2");
    if (!st || db_bind_text(st, 1, after) < 0 || db_bind_int64(st, 2, TRACKER_SHUFFLE_CHUNK) < 0)
        return -1;
    int n = 0, rc;
    while (n < TRACKER_SHUFFLE_CHUNK && (rc = db_step(tx, st)) == 1) {
        snprintf(rows[n].id, sizeof(rows[n].id), "%s", db_col_text(st, 0));
        snprintf(rows[n].assignee, sizeof(rows[n].assignee), "%s", db_col_text(st, 1));
        snprintf(rows[n].title, sizeof(rows[n].title), "%s", db_col_text(st, 2));
        snprintf(rows[n].jira_id, sizeof(rows[n].jira_id), "%s", db_col_text(st, 3));
        n++;
    }
    sqlite3_reset(st);
    return rc < 0 ? -1 : n;
}

/* A press's helper (core/ahead) picks the next assignee of each loaded row
 * and builds its TaskAssigned (bus_prepare) while the thread in the
 * transaction writes the rows before it. */
typedef struct shuffle_prep {
    service_t *svc;
    const tracker_candidates_t *c;
    const chunk_row_t *rows;   /* the chunk loaded; read by the helper */
    char (*next)[UUID_LEN];    /* TRACKER_SHUFFLE_CHUNK: the new assignees */
    bus_prepared_t *events;    /* TRACKER_SHUFFLE_CHUNK: their TaskAssigned */
    int64_t now;               /* the chunk's assigned_at */
    const char *producer;
    char trace[128];           /* the request's */
    tracker_picker_t pk;       /* the helper's */
} shuffle_prep_t;

static int prep_setup(void *ud)
{
    shuffle_prep_t *sp = ud;
    return tracker_picker_open(sp->svc, sp->c, &sp->pk);
}

static void prep_teardown(void *ud) { tracker_picker_close(&((shuffle_prep_t *)ud)->pk); }

static int prep_one(void *ud, int i)
{
    shuffle_prep_t *sp = ud;
    const chunk_row_t *row = &sp->rows[i];
    tracker_task_t t = {0};
    memcpy(t.id, row->id, sizeof(t.id));
    memcpy(t.title, row->title, sizeof(t.title));
    memcpy(t.jira_id, row->jira_id, sizeof(t.jira_id));
    memcpy(t.assignee_id, row->assignee, sizeof(t.assignee_id));
    if (tracker_pick(&sp->pk, &t, sp->next[i], NULL) < 0) return -1;
    return bus_prepare(sp->producer, sp->trace, "TaskAssigned", 1,
                       tracker_assigned_data(t.id, sp->next[i], row->assignee, sp->now),
                       &sp->events[i]);
}

/* Reassign the loaded rows inside tx, as the helper prepares them. */
static int reassign(ahead_t *helper, shuffle_prep_t *sp, db_conn_t *tx, int n)
{
    sp->now = clock_now_ms();
    ahead_run(helper, n);
    for (int i = 0; i < n; i++) {
        if (ahead_take(helper, i) < 0) return -1;
        sqlite3_stmt *st = db_stmt(tx, "UPDATE tasks SET assignee_id = ?2 WHERE id = ?1");
        if (!st || db_bind_text(st, 1, sp->rows[i].id) < 0 || db_bind_text(st, 2, sp->next[i]) < 0 ||
            db_step_done(tx, st) < 0 ||
            bus_emit_prepared(tx, "ates.tasks.assigned", &sp->events[i], NULL) < 0)
            return -1;
    }
    return 0;
}

/* Every open task, chunk by chunk; *total counts the reassigned ones. */
static int shuffle_all(service_t *svc, const tracker_candidates_t *c, int64_t *total)
{
    shuffle_prep_t sp = {.svc = svc, .c = c};
    chunk_row_t *rows = malloc(sizeof(*rows) * TRACKER_SHUFFLE_CHUNK);
    sp.rows = rows;
    sp.next = malloc(sizeof(*sp.next) * TRACKER_SHUFFLE_CHUNK);
    sp.events = calloc(TRACKER_SHUFFLE_CHUNK, sizeof(*sp.events));
    db_conn_t *tx = db_conn(service_db(svc));
    sp.producer = db_name(service_db(svc));
    snprintf(sp.trace, sizeof(sp.trace), "%s", log_trace());
    char after[UUID_LEN] = "";
    int n = 0, rc = -1;
    ahead_t *helper = NULL;
    if (!rows || !sp.next || !sp.events || !tx) {
        if (tx) diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    if (ahead_start(&helper, TRACKER_SHUFFLE_CHUNK, prep_one, prep_setup, prep_teardown, &sp) < 0)
        goto out;
    do {
        if (db_begin(tx) < 0) goto out;
        if ((n = load_chunk(tx, after, rows)) < 0 || (n > 0 && tracker_candidates_any(c) < 0) ||
            reassign(helper, &sp, tx, n) < 0 || db_commit(tx) < 0) {
            db_rollback(tx);
            goto out;
        }
        *total += n;
        if (n > 0) memcpy(after, rows[n - 1].id, sizeof(after));
    } while (n == TRACKER_SHUFFLE_CHUNK);
    rc = 0;
out:
    ahead_stop(helper); /* before what it prepares is freed */
    for (int i = 0; sp.events && i < TRACKER_SHUFFLE_CHUNK; i++) bus_prepared_free(&sp.events[i]);
    free(sp.events);
    free(sp.next);
    free(rows);
    return rc;
}

void tracker_on_shuffle(http_req_t *req, void *ud)
{
    static const char *const none[] = {NULL};
    if (!http_body_only(req, none)) return;
    service_t *svc = ud;
    tracker_t *t = service_state(svc);
    int64_t total = 0, started = clock_monotonic_ms();
    pthread_mutex_lock(&t->shuffle_lock);
    tracker_candidates_t *c = tracker_candidates_get(svc);
    int rc = c ? shuffle_all(svc, c, &total) : -1;
    tracker_candidates_release(c);
    pthread_mutex_unlock(&t->shuffle_lock);
    if (rc < 0) {
        log_diag(LOG_WARN, "shuffle");
        http_reply_diag(req);
        return;
    }
    log_info("shuffle by %s: %lld open tasks reassigned in %lld ms", http_auth(req)->account_id,
             (long long)total, (long long)(clock_monotonic_ms() - started));
    cJSON *out = cJSON_CreateObject();
    json_add_int64(out, "reassigned", total);
    http_reply_json(req, 200, out);
}
