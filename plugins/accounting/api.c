/*
 * api: the read routes of accounting (CONTRACT §2 accounting). Roles are
 * enforced by the route table; a popug sees only its own ledger (/me).
 * Management earnings of a day = its debits - its credits, over the
 * entries booked on that day.
 */
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "core/diag.h"
#include "core/json.h"

#define ENTRY_COLS \
    "l.id, l.kind, l.amount_cents, l.task_id, l.created_at, l.rules_version, l.balance_cents, " \
    "l.late_from, l.day, t.title"

static cJSON *entry_json(sqlite3_stmt *st)
{
    const char *kind = db_col_text(st, 1), *task = db_col_text(st, 3);
    char created[CLOCK_RFC3339_LEN], what[512], text[1024];
    clock_rfc3339(sqlite3_column_int64(st, 4), created);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL)
        snprintf(what, sizeof(what), "%s", db_col_text(st, 9));
    else
        snprintf(what, sizeof(what), "task %s", task);
    if (strcmp(kind, "payout") == 0)
        snprintf(text, sizeof(text), "payout for %s", db_col_text(st, 8));
    else
        snprintf(text, sizeof(text), "%s: %s", strcmp(kind, "debit") == 0 ? "assigned" : "completed",
                 what);
    if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof(text) - n, " (late: %s was closed)", db_col_text(st, 7));
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", db_col_text(st, 0));
    cJSON_AddStringToObject(o, "kind", kind);
    json_add_int64(o, "amount_cents", sqlite3_column_int64(st, 2));
    json_add_string_or_null(o, "task_id", sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : task);
    cJSON_AddStringToObject(o, "description", text);
    cJSON_AddStringToObject(o, "created_at", created);
    cJSON_AddStringToObject(o, "rules_version", db_col_text(st, 5));
    json_add_int64(o, "balance_cents", sqlite3_column_int64(st, 6));
    return o;
}

/* The balance of `account`: 1 known, 0 unknown to accounting, -1 error. */
static int balance(db_conn_t *c, const char *account, int64_t *out)
{
    *out = 0;
    sqlite3_stmt *st = db_stmt(c, "SELECT balance_cents FROM accounts WHERE id = ?1");
    if (!st || db_bind_text(st, 1, account) < 0) return -1;
    int rc = db_step(c, st);
    if (rc == 1) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return rc;
}

/* The entries of `account` booked on `day`, a page at a time. */
static int entries(db_conn_t *c, const char *account, const char *day, const char *after,
                   int limit, cJSON *out)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT " ENTRY_COLS " FROM ledger l "
                                  "LEFT JOIN tasks t ON t.id = l.task_id "
                                  "WHERE l.account_id = ?1 AND l.day = ?2 "
                                  "AND (?3 IS NULL OR l.id > ?3) ORDER BY l.id LIMIT ?4");
    if (!st || db_bind_text(st, 1, account) < 0 || db_bind_text(st, 2, day) < 0 ||
        db_bind_text(st, 3, after) < 0 || db_bind_int64(st, 4, limit + 1) < 0)
        return -1;
    cJSON *items = cJSON_AddArrayToObject(out, "entries");
    char last[UUID_LEN + 27] = "";
    int n = 0, rc;
    while ((rc = db_step(c, st)) == 1) {
        if (n++ == limit) break;
        snprintf(last, sizeof(last), "%s", db_col_text(st, 0));
        cJSON_AddItemToArray(items, entry_json(st));
    }
    sqlite3_reset(st);
    json_add_string_or_null(out, "next", n > limit ? last : NULL);
    return rc < 0 ? -1 : 0;
}

/* {account_id, day, balance_cents, entries, next} of `account`; an account
 * accounting never heard of is 404 when `must_exist`, else all zero. */
static void view(http_req_t *req, service_t *svc, const char *account, bool must_exist)
{
    int limit;
    const char *after, *day = http_query(req, "day");
    char today[CLOCK_DAY_LEN];
    if (http_page(req, &limit, &after) < 0) return;
    if (!http_query(req, "limit")) limit = ACCT_ENTRIES_MAX; /* a whole day's log by default */
    if (day && clock_day_check(day) < 0) {
        http_reply_error(req, DIAG_VALIDATION, "day must be YYYY-MM-DD");
        return;
    }
    db_conn_t *c = db_conn(service_db(svc));
    if (!day) { /* the day what happens now is booked on: its entries match the balance */
        if (!c || acct_booking_day(c, today) < 0) {
            http_reply_diag(req);
            return;
        }
        day = today;
    }
    int64_t cents;
    int known = c ? balance(c, account, &cents) : -1;
    if (known < 0) {
        http_reply_diag(req);
        return;
    }
    if (known == 0 && must_exist) {
        http_reply_error(req, DIAG_NOT_FOUND, "accounting knows no account %s", account);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "account_id", account);
    cJSON_AddStringToObject(o, "day", day);
    json_add_int64(o, "balance_cents", cents);
    if (entries(c, account, day, after, limit, o) < 0) {
        cJSON_Delete(o);
        http_reply_diag(req);
        return;
    }
    http_reply_json(req, 200, o);
}

void acct_on_me(http_req_t *req, void *ud) { view(req, ud, http_auth(req)->account_id, false); }

void acct_on_account_view(http_req_t *req, void *ud)
{
    const char *id = http_param(req, "id");
    if (!uuid_valid(id)) {
        http_reply_error(req, DIAG_VALIDATION, "an account id is a UUID");
        return;
    }
    view(req, ud, id, true);
}

/* --- days ------------------------------------------------------------------ */

typedef struct day_totals {
    int64_t debits, credits, payouts;
} day_totals_t;

static cJSON *day_json(const char *day, const day_totals_t *t, bool closed)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "day", day);
    json_add_int64(o, "management_earnings_cents", t->debits - t->credits);
    json_add_int64(o, "debits_cents", t->debits);
    json_add_int64(o, "credits_cents", t->credits);
    json_add_int64(o, "payouts_cents", t->payouts);
    cJSON_AddBoolToObject(o, "closed", closed);
    return o;
}

/* Totals of days from..to into t[0..to-from] (zeros for days without entries). */
static int load_days(db_conn_t *c, int32_t from, int32_t to, day_totals_t *t)
{
    char a[CLOCK_DAY_LEN], b[CLOCK_DAY_LEN];
    clock_day_string(from, a);
    clock_day_string(to, b);
    sqlite3_stmt *st = db_stmt(c, "SELECT day, debits_cents, credits_cents, payouts_cents "
                                  "FROM days WHERE day BETWEEN ?1 AND ?2");
    if (!st || db_bind_text(st, 1, a) < 0 || db_bind_text(st, 2, b) < 0) return -1;
    int rc;
    while ((rc = db_step(c, st)) == 1) {
        int32_t n;
        if (clock_day_number(db_col_text(st, 0), &n) < 0 || n < from || n > to) continue;
        t[n - from] = (day_totals_t){sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                                     sqlite3_column_int64(st, 3)};
    }
    return rc;
}

void acct_on_days(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    int32_t from, to;
    if (http_day_range(req, ACCT_MAX_DAYS, &from, &to) < 0) {
        http_reply_diag(req);
        return;
    }
    day_totals_t t[ACCT_MAX_DAYS] = {{0}};
    char last[CLOCK_DAY_LEN], day[CLOCK_DAY_LEN];
    db_conn_t *c = db_conn(service_db(svc));
    if (!c || load_days(c, from, to, t) < 0 || acct_last_closed(c, last) < 0) {
        http_reply_diag(req);
        return;
    }
    cJSON *o = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(o, "items");
    for (int32_t n = from; n <= to; n++) {
        clock_day_string(n, day);
        cJSON_AddItemToArray(items, day_json(day, &t[n - from], last[0] && strcmp(day, last) <= 0));
    }
    http_reply_json(req, 200, o);
}

void acct_on_today(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    int32_t today = clock_today();
    day_totals_t t = {0};
    char day[CLOCK_DAY_LEN];
    db_conn_t *c = db_conn(service_db(svc));
    if (!c || load_days(c, today, today, &t) < 0) {
        http_reply_diag(req);
        return;
    }
    clock_day_string(today, day);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "day", day);
    json_add_int64(o, "management_earnings_cents", t.debits - t.credits);
    http_reply_json(req, 200, o);
}

/* --- a task's price -------------------------------------------------------- */

void acct_on_task_price(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    const char *id = http_param(req, "id");
    if (!uuid_valid(id)) {
        http_reply_error(req, DIAG_VALIDATION, "a task id is a UUID");
        return;
    }
    db_conn_t *c = db_conn(service_db(svc));
    acct_price_t p;
    int rc = c ? acct_task_price(c, id, &p) : -1;
    if (rc < 0) {
        http_reply_diag(req);
        return;
    }
    if (rc == 0) {
        http_reply_error(req, DIAG_NOT_FOUND, "task %s has no price yet", id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_id", id);
    json_add_int64(o, "assign_fee_cents", p.fee);
    json_add_int64(o, "reward_cents", p.reward);
    cJSON_AddStringToObject(o, "rules_version", p.version);
    http_reply_json(req, 200, o);
}
