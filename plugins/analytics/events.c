/*
 * events: the handlers that build analytics' projections. Each runs inside
 * the consumer's batch transaction; the inbox makes each event count once.
 * Events arrive in any order across subjects, so each one fills in only the
 * columns it knows and leaves the rest to the others: a task row is made by
 * whichever of TaskCreated, TaskPriced, TaskCompleted comes first, and
 * balances keep the newest entry by (created_at, transaction id) whatever
 * order the entries arrive in.
 */
#include <string.h>

#include "analytics.h"
#include "core/diag.h"
#include "core/json.h"
#include "plugins/contract/contract.h"

#define AN_TEXT_MAX 2048 /* v1 title buffer: the schema bounds titles at 300 characters */

static int bad(const bus_event_t *ev)
{
    return diag_set(DIAG_VALIDATION, "%s: %s", ev->name, diag_last()->message);
}

/* --- tasks ------------------------------------------------------------------ */

int an_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id, *text, *jira_v2 = NULL;
    char title[AN_TEXT_MAX], jira[CONTRACT_JIRA_MAX + 1];
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_string(ev->data, "title", true, &text) < 0)
        return bad(ev);
    if (ev->version >= 2) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(ev->data, "jira_id");
        if (cJSON_IsString(j) && j->valuestring[0]) jira_v2 = j->valuestring;
        snprintf(title, sizeof(title), "%s", text);
        snprintf(jira, sizeof(jira), "%s", jira_v2 ? jira_v2 : "");
    } else {
        contract_split_v1_title(text, title, sizeof(title), jira);
    }
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO tasks(id, title, jira_id) VALUES (?1, ?2, ?3) "
                                   "ON CONFLICT(id) DO UPDATE SET title = excluded.title, "
                                   "jira_id = excluded.jira_id");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
        db_bind_text(st, 3, jira[0] ? jira : NULL) < 0 || db_step_done(tx, st) < 0)
        return -1;
    return an_refresh_key(tx, ud, id);
}

int an_on_task_priced(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id;
    int64_t reward;
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_int64(ev->data, "reward_cents", true, &reward) < 0)
        return bad(ev);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO tasks(id, reward_cents) VALUES (?1, ?2) "
                                   "ON CONFLICT(id) DO UPDATE SET reward_cents = excluded.reward_cents");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_int64(st, 2, reward) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return an_refresh_key(tx, ud, id);
}

static int add_completed(db_conn_t *tx, const char *day, int delta)
{
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO days(day, completed_tasks) VALUES (?1, ?2) "
                                   "ON CONFLICT(day) DO UPDATE SET "
                                   "completed_tasks = completed_tasks + excluded.completed_tasks");
    if (!st || db_bind_text(st, 1, day) < 0 || db_bind_int64(st, 2, delta) < 0) return -1;
    return db_step_done(tx, st);
}

/* The earliest completion counts (a task completes once; a second
 * TaskCompleted for it, if one ever came, would not count it twice). */
int an_on_task_completed(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    const char *id, *when;
    int64_t at;
    if (json_get_string(ev->data, "task_id", true, &id) < 0 ||
        json_get_string(ev->data, "completed_at", true, &when) < 0)
        return bad(ev);
    if (clock_parse_rfc3339(when, &at) < 0)
        return diag_set(DIAG_VALIDATION, "TaskCompleted: bad completed_at");
    char day[CLOCK_DAY_LEN], old_day[CLOCK_DAY_LEN] = "";
    clock_day_of(at, day);
    sqlite3_stmt *st = db_stmt(tx, "SELECT completed_at, day FROM tasks WHERE id = ?1 "
                                   "AND completed_at IS NOT NULL");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(tx, st);
    if (rc < 0) return -1;
    if (rc == 1) {
        int64_t old = sqlite3_column_int64(st, 0);
        snprintf(old_day, sizeof(old_day), "%s", db_col_text(st, 1));
        sqlite3_reset(st);
        if (old <= at) return 0;
    }
    st = db_stmt(tx, "INSERT INTO tasks(id, completed_at, day) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT(id) DO UPDATE SET completed_at = excluded.completed_at, "
                     "day = excluded.day");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_int64(st, 2, at) < 0 ||
        db_bind_text(st, 3, day) < 0 || db_step_done(tx, st) < 0)
        return -1;
    if ((old_day[0] && add_completed(tx, old_day, -1) < 0) || add_completed(tx, day, 1) < 0)
        return -1;
    return an_refresh_key(tx, ud, id);
}

/* --- the ledger ------------------------------------------------------------ */

typedef struct an_entry {
    const char *tx_id, *account, *kind, *day;
    int64_t amount, balance, at;
} an_entry_t;

static int read_entry(const bus_event_t *ev, an_entry_t *e)
{
    const char *created;
    if (json_get_string(ev->data, "transaction_id", true, &e->tx_id) < 0 ||
        json_get_string(ev->data, "account_id", true, &e->account) < 0 ||
        json_get_string(ev->data, "kind", true, &e->kind) < 0 ||
        json_get_string(ev->data, "day", true, &e->day) < 0 ||
        json_get_int64(ev->data, "amount_cents", true, &e->amount) < 0 ||
        json_get_int64(ev->data, "balance_cents", true, &e->balance) < 0 ||
        json_get_string(ev->data, "created_at", true, &created) < 0)
        return bad(ev);
    if (clock_parse_rfc3339(created, &e->at) < 0 || clock_day_check(e->day) < 0)
        return diag_set(DIAG_VALIDATION, "TransactionApplied: bad created_at or day");
    if (strcmp(e->kind, "debit") != 0 && strcmp(e->kind, "credit") != 0 &&
        strcmp(e->kind, "payout") != 0)
        return diag_set(DIAG_VALIDATION, "TransactionApplied: unknown kind %s", e->kind);
    return 0;
}

int an_on_transaction(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    (void)ud;
    an_entry_t e;
    if (read_entry(ev, &e) < 0) return -1;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO days(day, debits_cents, credits_cents, payouts_cents) "
                                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(day) DO UPDATE SET "
                                   "debits_cents = debits_cents + excluded.debits_cents, "
                                   "credits_cents = credits_cents + excluded.credits_cents, "
                                   "payouts_cents = payouts_cents + excluded.payouts_cents");
    if (!st || db_bind_text(st, 1, e.day) < 0 ||
        db_bind_int64(st, 2, strcmp(e.kind, "debit") == 0 ? e.amount : 0) < 0 ||
        db_bind_int64(st, 3, strcmp(e.kind, "credit") == 0 ? e.amount : 0) < 0 ||
        db_bind_int64(st, 4, strcmp(e.kind, "payout") == 0 ? e.amount : 0) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    /* the newest entry wins, by (created_at, transaction id): UUIDv7 ids
     * made by one accounting process sort in the order they were made */
    st = db_stmt(tx, "INSERT INTO accounts(id, balance_cents, balance_at, balance_tx) "
                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET "
                     "balance_cents = excluded.balance_cents, balance_at = excluded.balance_at, "
                     "balance_tx = excluded.balance_tx WHERE accounts.balance_at IS NULL "
                     "OR (excluded.balance_at, excluded.balance_tx) > "
                     "(accounts.balance_at, accounts.balance_tx)");
    if (!st || db_bind_text(st, 1, e.account) < 0 || db_bind_int64(st, 2, e.balance) < 0 ||
        db_bind_int64(st, 3, e.at) < 0 || db_bind_text(st, 4, e.tx_id) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    st = db_stmt(tx, "INSERT INTO account_days(account_id, day, balance_cents, balance_at, balance_tx) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(account_id, day) DO UPDATE SET "
                     "balance_cents = excluded.balance_cents, balance_at = excluded.balance_at, "
                     "balance_tx = excluded.balance_tx WHERE (excluded.balance_at, excluded.balance_tx) > "
                     "(account_days.balance_at, account_days.balance_tx)");
    if (!st || db_bind_text(st, 1, e.account) < 0 || db_bind_text(st, 2, e.day) < 0 ||
        db_bind_int64(st, 3, e.balance) < 0 || db_bind_int64(st, 4, e.at) < 0 ||
        db_bind_text(st, 5, e.tx_id) < 0)
        return -1;
    return db_step_done(tx, st);
}

int an_on_day_closed(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    (void)ud;
    const char *day;
    int64_t earnings, paid, paid_accounts, negative;
    if (json_get_string(ev->data, "day", true, &day) < 0 ||
        json_get_int64(ev->data, "management_earnings_cents", true, &earnings) < 0 ||
        json_get_int64(ev->data, "paid_cents", true, &paid) < 0 ||
        json_get_int64(ev->data, "paid_accounts", true, &paid_accounts) < 0 ||
        json_get_int64(ev->data, "negative_accounts", true, &negative) < 0)
        return bad(ev);
    sqlite3_stmt *st = db_stmt(tx, "INSERT OR REPLACE INTO closed_days(day, management_earnings_cents, "
                                   "paid_cents, paid_accounts, negative_accounts) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st || db_bind_text(st, 1, day) < 0 || db_bind_int64(st, 2, earnings) < 0 ||
        db_bind_int64(st, 3, paid) < 0 || db_bind_int64(st, 4, paid_accounts) < 0 ||
        db_bind_int64(st, 5, negative) < 0)
        return -1;
    return db_step_done(tx, st);
}

/* --- accounts --------------------------------------------------------------- */

/* AccountCreated / AccountUpdated v1: role and active, newest event wins;
 * the balance is left to the ledger. */
int an_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    (void)ud;
    const char *id, *role;
    bool active;
    int64_t at;
    if (json_get_string(ev->data, "account_id", true, &id) < 0 ||
        json_get_string(ev->data, "role", true, &role) < 0 ||
        json_get_bool(ev->data, "active", true, &active) < 0)
        return bad(ev);
    if (!ev->event_time || clock_parse_rfc3339(ev->event_time, &at) < 0)
        return diag_set(DIAG_VALIDATION, "%s: bad event_time", ev->name);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO accounts(id, role, active, updated_at) "
                                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET "
                                   "role = excluded.role, active = excluded.active, "
                                   "updated_at = excluded.updated_at WHERE accounts.updated_at IS NULL "
                                   "OR excluded.updated_at >= accounts.updated_at");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, role) < 0 ||
        db_bind_int64(st, 3, active) < 0 || db_bind_int64(st, 4, at) < 0)
        return -1;
    return db_step_done(tx, st);
}
