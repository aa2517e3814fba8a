/*
 * events: the consumers' handlers. Each runs inside the consumer's batch
 * transaction; the inbox makes each event count once, and the ledger's
 * UNIQUE cause makes each entry exist once even without it. Events arrive
 * in any order: whichever event of a task comes first prices it, and an
 * account first seen in a task event gets its ledger row at once and its
 * profile when its account event arrives.
 */
#include <string.h>

#include "accounting.h"
#include "core/diag.h"
#include "core/json.h"
#include "plugins/contract/contract.h"

#define ACCT_TITLE_MAX 2048 /* bytes; the schemas bound titles at 300 characters */

static int bad(const bus_event_t *ev)
{
    return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
}

/* --- accounts ------------------------------------------------------------- */

/* AccountCreated / AccountUpdated v1: the profile, newest event wins (an
 * address that arrives lets the payout mail job write the mails owed). */
int acct_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    (void)ud;
    const char *id, *email, *name, *role;
    bool active;
    int64_t at;
    if (json_get_string(ev->data, "account_id", true, &id) < 0 ||
        json_get_string(ev->data, "email", true, &email) < 0 ||
        json_get_string(ev->data, "name", true, &name) < 0 ||
        json_get_string(ev->data, "role", true, &role) < 0 ||
        json_get_bool(ev->data, "active", true, &active) < 0)
        return bad(ev);
    if (!ev->event_time || clock_parse_rfc3339(ev->event_time, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: bad event_time", ev->name);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO accounts(id, email, name, role, active, updated_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET "
                                   "email = excluded.email, name = excluded.name, "
                                   "role = excluded.role, active = excluded.active, "
                                   "updated_at = excluded.updated_at "
                                   "WHERE accounts.updated_at IS NULL "
                                   "OR excluded.updated_at >= accounts.updated_at");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, email) < 0 ||
        db_bind_text(st, 3, name) < 0 || db_bind_text(st, 4, role) < 0 ||
        db_bind_int64(st, 5, active) < 0 || db_bind_int64(st, 6, at) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return 0;
}

/* --- prices --------------------------------------------------------------- */

int acct_task_price(db_conn_t *tx, const char *id, acct_price_t *p)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT assign_fee_cents, reward_cents, rules_version "
                                   "FROM tasks WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(tx, st);
    if (rc == 1) {
        p->fee = sqlite3_column_int64(st, 0);
        p->reward = sqlite3_column_int64(st, 1);
        snprintf(p->version, sizeof(p->version), "%s", db_col_text(st, 2));
        sqlite3_reset(st);
    }
    return rc;
}

static int cents_in_range(const cJSON *res, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, key) : NULL;
    return json_is_int(v, out) && *out >= 0 && *out <= ACCT_AMOUNT_MAX ? 0 : -1;
}

/* price(task) of pricing.lua, checked. */
static int ask_price(service_t *svc, const char *id, const char *title, const char *jira,
                     const char *description, acct_price_t *p)
{
    cJSON *args = cJSON_CreateArray(), *task = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToArray(args, task);
    cJSON_AddStringToObject(task, "task_id", id);
    if (title) cJSON_AddStringToObject(task, "title", title);
    if (jira) cJSON_AddStringToObject(task, "jira_id", jira);
    if (description) cJSON_AddStringToObject(task, "description", description);
    int rc = rules_call(service_rules(svc), ACCT_PRICING, "price", args, &res, p->version);
    if (rc == 0 && (cents_in_range(res, "assign_fee_cents", &p->fee) < 0 ||
                    cents_in_range(res, "reward_cents", &p->reward) < 0))
        rc = diag_set(DIAG_UNAVAILABLE,
                      ACCT_PRICING ": price() must return {assign_fee_cents, reward_cents}, "
                                   "whole cents in 0..%lld",
                      ACCT_AMOUNT_MAX);
    cJSON_Delete(res);
    cJSON_Delete(args);
    return rc;
}

/* The price of task `id`; a task seen for the first time is priced now
 * (with what is known of it) and its TaskPriced emitted. */
static int price_of(db_conn_t *tx, service_t *svc, const char *id, const char *title,
                    const char *jira, const char *description, acct_price_t *p)
{
    int rc = acct_task_price(tx, id, p);
    if (rc != 0) return rc < 0 ? -1 : 0;
    if (ask_price(svc, id, title, jira, description, p) < 0) return -1;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO tasks(id, title, jira_id, assign_fee_cents, "
                                   "reward_cents, rules_version, priced_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
        db_bind_text(st, 3, jira) < 0 || db_bind_int64(st, 4, p->fee) < 0 ||
        db_bind_int64(st, 5, p->reward) < 0 || db_bind_text(st, 6, p->version) < 0 ||
        db_bind_int64(st, 7, clock_now_ms()) < 0 || db_step_done(tx, st) < 0)
        return -1;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "task_id", id);
    json_add_int64(d, "assign_fee_cents", p->fee);
    json_add_int64(d, "reward_cents", p->reward);
    cJSON_AddStringToObject(d, "rules_version", p->version);
    return bus_emit(tx, "ates.accounting.task_priced", "TaskPriced", 1, d, NULL);
}

/* --- tasks ---------------------------------------------------------------- */

/* TaskCreated v1 (a "[JIRA-1] Title" is split) and v2: title, jira id, and
 * the price when this is the task's first event. */
int acct_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id, *text, *description = NULL, *jira_v2 = NULL;
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_string(ev->data, "title", true, &text) < 0 ||
        json_get_string(ev->data, "description", false, &description) < 0 ||
        (ev->version >= 2 && json_get_string(ev->data, "jira_id", false, &jira_v2) < 0))
        return bad(ev);
    char title[ACCT_TITLE_MAX], jira[CONTRACT_JIRA_MAX + 1] = "";
    if (ev->version >= 2) {
        snprintf(title, sizeof(title), "%s", text);
        snprintf(jira, sizeof(jira), "%s", jira_v2 ? jira_v2 : "");
    } else {
        contract_split_v1_title(text, title, sizeof(title), jira);
    }
    acct_price_t p;
    if (price_of(tx, ud, id, title, jira[0] ? jira : NULL, description, &p) < 0) return -1;
    sqlite3_stmt *st = db_stmt(tx, "UPDATE tasks SET title = ?2, jira_id = ?3 WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
        db_bind_text(st, 3, jira[0] ? jira : NULL) < 0)
        return -1;
    return db_step_done(tx, st);
}

/* Book `kind` of the task's price on the account in the event, on the day
 * of the event's time field `when_key`. */
static int book_task_event(db_conn_t *tx, const bus_event_t *ev, service_t *svc,
                           const char *kind, const char *when_key)
{
    const char *id, *assignee, *when;
    int64_t at;
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_string(ev->data, "assignee_id", true, &assignee) < 0 ||
        json_get_string(ev->data, when_key, true, &when) < 0)
        return bad(ev);
    if (clock_parse_rfc3339(when, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: bad %s", ev->name, when_key);
    acct_price_t p;
    if (price_of(tx, svc, id, NULL, NULL, NULL, &p) < 0) return -1;
    char day[CLOCK_DAY_LEN];
    clock_day_of(at, day);
    acct_booking_t b = {
        .account_id = assignee,
        .kind = kind,
        .amount = strcmp(kind, "debit") == 0 ? p.fee : p.reward,
        .task_id = id,
        .cause = ev->event_id,
        .day = day,
        .rules_version = p.version,
    };
    return acct_book(tx, &b, NULL);
}

/* TaskAssigned: the assign fee is debited from the new assignee. */
int acct_on_task_assigned(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    return book_task_event(tx, ev, ud, "debit", "assigned_at");
}

/* TaskCompleted: the reward is credited to the assignee who completed it. */
int acct_on_task_completed(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    return book_task_event(tx, ev, ud, "credit", "completed_at");
}
