/*
 * facts: notify's own copy of what it needs to address a notice, built only
 * from events: accounts (email, name, active) and task titles. Each new fact
 * releases the pending notices that waited for it.
 */
#include <string.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "notify.h"
#include "plugins/contract/contract.h"

/* AccountCreated v1 / AccountUpdated v1: upsert, newest event wins. */
int notify_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id, *email, *name;
    bool active;
    int64_t at;
    if (json_get_string(ev->data, "account_id", true, &id) < 0 ||
        json_get_string(ev->data, "email", true, &email) < 0 ||
        json_get_string(ev->data, "name", true, &name) < 0 ||
        json_get_bool(ev->data, "active", true, &active) < 0 ||
        clock_parse_rfc3339(ev->event_time, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO accounts(id, email, name, active, updated_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET "
                                   "email = excluded.email, name = excluded.name, "
                                   "active = excluded.active, updated_at = excluded.updated_at "
                                   "WHERE excluded.updated_at >= accounts.updated_at");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, email) < 0 ||
        db_bind_text(st, 3, name) < 0 || db_bind_int64(st, 4, active) < 0 ||
        db_bind_int64(st, 5, at) < 0 || db_step_done(tx, st) < 0)
        return -1;
    return notify_resolve(tx, ud, id, false);
}

/* TaskCreated v1 {title} (maybe "[JIRA] title") / v2 {title, jira_id}. */
int notify_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id, *title, *jira_v2 = NULL;
    char jira[CONTRACT_JIRA_MAX + 1] = "", split[NOTIFY_TITLE_MAX];
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_string(ev->data, "title", true, &title) < 0)
        return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
    if (ev->version >= 2) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(ev->data, "jira_id");
        if (cJSON_IsString(j) && j->valuestring[0]) jira_v2 = j->valuestring;
    } else {
        contract_split_v1_title(title, split, sizeof(split), jira);
        title = split;
    }
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO tasks(id, title, jira_id) VALUES (?1, ?2, ?3) "
                                   "ON CONFLICT(id) DO UPDATE SET title = excluded.title, "
                                   "jira_id = excluded.jira_id");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
        db_bind_text(st, 3, jira_v2 ? jira_v2 : (jira[0] ? jira : NULL)) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return notify_resolve(tx, ud, id, true);
}
