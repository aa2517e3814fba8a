/*
 * notices: one notice per TaskAssigned (see notify.h): recorded, then sent
 * at once when its task and account are known, or left pending until they
 * are; skipped when stale or for an inactive account. Sending = queuing the
 * mail (when on) in the same transaction, and the log line after commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mail.h"
#include "notify.h"

/* A notice with the facts it needs, as read from the database. */
typedef struct notice {
    char *event_id, *task_id, *account_id, *assigned_at;
    int64_t event_time;
    char *title, *jira_id, *email, *name; /* jira_id "" = none */
    bool active;
} notice_t;

static void line_free(notify_line_t *l)
{
    if (!l) return;
    free(l->event_id);
    free(l->trace_id);
    free(l->text);
    free(l);
}

static void notice_free(notice_t *n)
{
    free(n->event_id);
    free(n->task_id);
    free(n->account_id);
    free(n->assigned_at);
    free(n->title);
    free(n->jira_id);
    free(n->email);
    free(n->name);
    memset(n, 0, sizeof(*n));
}

/* --- the log line, after commit ------------------------------------------ */

void notify_lines_free(notify_t *n)
{
    pthread_mutex_lock(&n->lock);
    notify_line_t *l = n->lines;
    n->lines = NULL;
    pthread_mutex_unlock(&n->lock);
    while (l) {
        notify_line_t *next = l->next;
        line_free(l);
        l = next;
    }
}

/* 1 when the notice is recorded as sent (committed), 0 not, -1 error. */
static int committed_sent(db_conn_t *c, const char *event_id)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT 1 FROM notices WHERE event_id = ?1 AND status = 'sent'");
    if (!st || db_bind_text(st, 1, event_id) < 0) return -1;
    int rc = db_step(c, st);
    sqlite3_reset(st);
    return rc;
}

/* After-commit hook: log this thread's lines whose notice is committed as
 * sent, once each. Lines of a rolled-back transaction find no such row and
 * are dropped (or, once a redelivery committed the notice, logged once). */
static void flush_lines(void *arg)
{
    service_t *svc = arg;
    notify_t *n = service_state(svc);
    pthread_t self = pthread_self();
    notify_line_t *mine = NULL; /* n->lines is newest first: prepending puts mine in order */
    pthread_mutex_lock(&n->lock);
    for (notify_line_t **pp = &n->lines; *pp;) {
        notify_line_t *l = *pp;
        if (pthread_equal(l->owner, self)) {
            *pp = l->next;
            l->next = mine;
            mine = l;
        } else {
            pp = &l->next;
        }
    }
    pthread_mutex_unlock(&n->lock);
    db_conn_t *c = db_conn(service_db(svc));
    char saved[64];
    snprintf(saved, sizeof(saved), "%s", log_trace());
    for (notify_line_t *l = mine; l; l = l->next) {
        bool dup = false;
        for (const notify_line_t *e = mine; e != l && !dup; e = e->next)
            dup = strcmp(e->event_id, l->event_id) == 0;
        if (!dup && c && committed_sent(c, l->event_id) == 1) {
            log_set_trace(l->trace_id);
            log_info("%s", l->text);
        }
    }
    while (mine) {
        notify_line_t *next = mine->next;
        line_free(mine);
        mine = next;
    }
    log_set_trace(saved[0] ? saved : NULL);
}

static int queue_line(db_conn_t *tx, service_t *svc, const notice_t *x, const char *mail_state)
{
    notify_t *n = service_state(svc);
    notify_line_t *l = calloc(1, sizeof(*l));
    char *text = NULL;
    int len = asprintf(&text, "notice %s: task %s %s%s%s\"%s\" assigned to %s <%s>%s",
                       x->event_id, x->task_id, x->jira_id[0] ? "[" : "", x->jira_id,
                       x->jira_id[0] ? "] " : "", x->title, x->name, x->email, mail_state);
    if (l) l->text = len >= 0 ? text : NULL;
    if (!l || !l->text || !(l->event_id = strdup(x->event_id)) ||
        !(l->trace_id = strdup(log_trace()))) {
        if (!l && len >= 0) free(text);
        line_free(l);
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
    l->owner = pthread_self();
    pthread_mutex_lock(&n->lock);
    l->next = n->lines;
    n->lines = l;
    pthread_mutex_unlock(&n->lock);
    return db_after_commit(tx, flush_lines, svc);
}

/* --- sending --------------------------------------------------------------- */

/* Control characters of a title become spaces (a subject is one line). */
static void one_line(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F) *p = ' ';
}

/* Queue the mail of notice x: 0 queued (id in mail_id), 1 refused (the
 * notice still goes to the log), -1 on a database error. */
static int queue_mail(db_conn_t *tx, const notice_t *x, char mail_id[96])
{
    char *subject = NULL, *text = NULL;
    int rc = -1;
    snprintf(mail_id, 96, "notify-%s", x->event_id);
    const char *jl = x->jira_id[0] ? "[" : "", *jr = x->jira_id[0] ? "] " : "";
    if (asprintf(&subject, "Task assigned: %s%s%s%s", jl, x->jira_id, jr, x->title) < 0) {
        subject = NULL;
        diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    one_line(subject);
    if (asprintf(&text,
                 "Hello %s,\n\n"
                 "a task was assigned to you:\n\n"
                 "  %s%s%s%s\n"
                 "  task id: %s\n"
                 "  assigned at: %s\n\n"
                 "-- \n"
                 "aTES, the Awesome Task Exchange System\n",
                 x->name, jl, x->jira_id, jr, x->title, x->task_id, x->assigned_at) < 0) {
        text = NULL;
        diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    mail_msg_t m = {mail_id, x->email, subject, text};
    rc = mail_enqueue(tx, &m);
    if (rc < 0 && diag_last()->kind == DIAG_VALIDATION) {
        log_warn("notice %s: no mail to %s: %s", x->event_id, x->email, diag_last()->message);
        rc = 1;
    }
out:
    free(subject);
    free(text);
    return rc;
}

static int set_status(db_conn_t *tx, const char *event_id, const char *status, const char *reason,
                      const char *mail_id)
{
    sqlite3_stmt *st = db_stmt(tx, "UPDATE notices SET status = ?2, reason = ?3, mail_id = ?4, "
                                   "done_at = ?5 WHERE event_id = ?1 AND status = 'pending'");
    if (!st || db_bind_text(st, 1, event_id) < 0 || db_bind_text(st, 2, status) < 0 ||
        db_bind_text(st, 3, reason) < 0 || db_bind_text(st, 4, mail_id) < 0 ||
        db_bind_int64(st, 5, clock_now_ms()) < 0)
        return -1;
    return db_step_done(tx, st);
}

/* Send (or skip) a notice whose facts are known. */
static int notice_send(db_conn_t *tx, service_t *svc, const notice_t *x)
{
    int64_t age = clock_now_ms() - x->event_time;
    if (age > NOTIFY_STALE_MS) {
        log_debug("notice %s skipped: its TaskAssigned is %lld s old", x->event_id,
                  (long long)(age / 1000));
        return set_status(tx, x->event_id, "skipped", "stale", NULL);
    }
    if (!x->active) {
        log_debug("notice %s skipped: account %s is inactive", x->event_id, x->account_id);
        return set_status(tx, x->event_id, "skipped", "inactive", NULL);
    }
    char mail_id[96] = "";
    const char *state = "";
    if (((notify_t *)service_state(svc))->mail) {
        int rc = queue_mail(tx, x, mail_id);
        if (rc < 0) return -1;
        state = rc == 0 ? " (mail queued)" : " (mail refused)";
        if (rc == 1) mail_id[0] = '\0';
    }
    if (set_status(tx, x->event_id, "sent", NULL, mail_id[0] ? mail_id : NULL) < 0) return -1;
    /* the notice's log line is at info: below that level nothing is built */
    return log_get_level() >= LOG_INFO ? queue_line(tx, svc, x, state) : 0;
}

/* --- resolving -------------------------------------------------------------- */

#define NOTICE_COLS                                                                             \
    "SELECT n.event_id, n.task_id, n.account_id, n.assigned_at, n.event_time, t.title, "      \
    "coalesce(t.jira_id, ''), a.email, a.name, a.active FROM notices n "                       \
    "JOIN tasks t ON t.id = n.task_id JOIN accounts a ON a.id = n.account_id "

static int read_notice(sqlite3_stmt *st, notice_t *x)
{
    x->event_id = strdup(db_col_text(st, 0));
    x->task_id = strdup(db_col_text(st, 1));
    x->account_id = strdup(db_col_text(st, 2));
    x->assigned_at = strdup(db_col_text(st, 3));
    x->event_time = sqlite3_column_int64(st, 4);
    x->title = strdup(db_col_text(st, 5));
    x->jira_id = strdup(db_col_text(st, 6));
    x->email = strdup(db_col_text(st, 7));
    x->name = strdup(db_col_text(st, 8));
    x->active = sqlite3_column_int(st, 9) != 0;
    if (!x->event_id || !x->task_id || !x->account_id || !x->assigned_at || !x->title ||
        !x->jira_id || !x->email || !x->name) {
        notice_free(x);
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
    return 0;
}

int notify_resolve(db_conn_t *tx, service_t *svc, const char *id, bool by_task)
{
    const char *sql = by_task ? NOTICE_COLS "WHERE n.status = 'pending' AND n.task_id = ?1"
                              : NOTICE_COLS "WHERE n.status = 'pending' AND n.account_id = ?1";
    /* read them all first: sending updates the rows the query walks */
    notice_t *list = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    sqlite3_stmt *st = db_stmt(tx, sql);
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    while ((rc = db_step(tx, st)) == 1) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            notice_t *grown = realloc(list, cap * sizeof(*list));
            if (!grown) {
                rc = diag_set(DIAG_INTERNAL, "out of memory");
                break;
            }
            list = grown;
        }
        if ((rc = read_notice(st, &list[count])) < 0) break;
        count++;
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < count; i++) {
        if (rc == 0 && notice_send(tx, svc, &list[i]) < 0) rc = -1;
        notice_free(&list[i]);
    }
    free(list);
    return rc;
}

/* TaskAssigned v1: record the notice, then send it if its facts are known. */
int notify_on_assigned(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    service_t *svc = ud;
    const char *task_id, *account_id, *assigned_at;
    int64_t at;
    if (json_get_string(ev->data, "task_id", true, &task_id) < 0 ||
        json_get_string(ev->data, "assignee_id", true, &account_id) < 0 ||
        json_get_string(ev->data, "assigned_at", true, &assigned_at) < 0 ||
        clock_parse_rfc3339(ev->event_time, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
    sqlite3_stmt *st = db_stmt(tx, "INSERT OR IGNORE INTO notices(event_id, task_id, account_id, "
                                   "assigned_at, event_time, status, handled_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)");
    if (!st || db_bind_text(st, 1, ev->event_id) < 0 || db_bind_text(st, 2, task_id) < 0 ||
        db_bind_text(st, 3, account_id) < 0 || db_bind_text(st, 4, assigned_at) < 0 ||
        db_bind_int64(st, 5, at) < 0 || db_bind_int64(st, 6, clock_now_ms()) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    if (sqlite3_changes(db_conn_handle(tx)) == 0) return 0; /* this notice exists already */
    int64_t age = clock_now_ms() - at;
    if (age > NOTIFY_STALE_MS) {
        log_debug("notice %s skipped: its TaskAssigned is %lld s old", ev->event_id,
                  (long long)(age / 1000));
        return set_status(tx, ev->event_id, "skipped", "stale", NULL);
    }
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(ev->data, "previous_assignee_id");
    if (cJSON_IsString(prev) && strcmp(prev->valuestring, account_id) == 0) {
        log_debug("notice %s skipped: task %s stays with %s", ev->event_id, task_id, account_id);
        return set_status(tx, ev->event_id, "skipped", "unchanged", NULL);
    }
    if (notify_resolve(tx, svc, task_id, true) < 0) return -1;
    st = db_stmt(tx, "SELECT 1 FROM notices WHERE event_id = ?1 AND status = 'pending'");
    if (!st || db_bind_text(st, 1, ev->event_id) < 0) return -1;
    int pending = db_step(tx, st);
    sqlite3_reset(st);
    if (pending == 1)
        log_debug("notice %s pending: task %s or account %s not known yet", ev->event_id, task_id,
                  account_id);
    return pending < 0 ? -1 : 0;
}
