/*
 * ledger: booking one entry. The entry, the account's balance, the day's
 * totals and the TransactionApplied event change together inside the
 * caller's transaction, so the balance is always the sum of the ledger.
 */
#include <string.h>

#include "accounting.h"
#include "core/diag.h"
#include "core/json.h"

int acct_last_closed(db_conn_t *c, char out[CLOCK_DAY_LEN])
{
    out[0] = '\0';
    sqlite3_stmt *st = db_stmt(c, "SELECT max(day) FROM closed_days");
    if (!st) return -1;
    int rc = db_step(c, st);
    if (rc < 0) return -1;
    if (rc == 1) {
        snprintf(out, CLOCK_DAY_LEN, "%s", db_col_text(st, 0));
        sqlite3_reset(st);
    }
    return 0;
}

/* The signed effect of an entry on its account's balance. */
static int64_t signed_amount(const char *kind, int64_t amount)
{
    return strcmp(kind, "credit") == 0 ? amount : -amount;
}

/* The account's balance now (0 when unknown). */
static int balance_of(db_conn_t *tx, const char *account, int64_t *out)
{
    *out = 0;
    sqlite3_stmt *st = db_stmt(tx, "SELECT balance_cents FROM accounts WHERE id = ?1");
    if (!st || db_bind_text(st, 1, account) < 0) return -1;
    int rc = db_step(tx, st);
    if (rc == 1) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    return rc < 0 ? -1 : 0;
}

int acct_add_to_day(db_conn_t *tx, const char *day, const char *kind, int64_t amount)
{
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO days(day, debits_cents, credits_cents, payouts_cents) "
                                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(day) DO UPDATE SET "
                                   "debits_cents = debits_cents + excluded.debits_cents, "
                                   "credits_cents = credits_cents + excluded.credits_cents, "
                                   "payouts_cents = payouts_cents + excluded.payouts_cents");
    if (!st || db_bind_text(st, 1, day) < 0 ||
        db_bind_int64(st, 2, strcmp(kind, "debit") == 0 ? amount : 0) < 0 ||
        db_bind_int64(st, 3, strcmp(kind, "credit") == 0 ? amount : 0) < 0 ||
        db_bind_int64(st, 4, strcmp(kind, "payout") == 0 ? amount : 0) < 0)
        return -1;
    return db_step_done(tx, st);
}

/* The account's balance, its row made when only a task event named it so
 * far (an UPDATE first: a known account costs one B-tree seek, not the
 * two of an upsert). */
static int set_balance(db_conn_t *tx, const char *account, int64_t balance)
{
    sqlite3_stmt *st = db_stmt(tx, "UPDATE accounts SET balance_cents = ?2 WHERE id = ?1");
    if (!st || db_bind_text(st, 1, account) < 0 || db_bind_int64(st, 2, balance) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    if (sqlite3_changes(db_conn_handle(tx)) > 0) return 0;
    st = db_stmt(tx, "INSERT INTO accounts(id, balance_cents) VALUES (?1, ?2)");
    if (!st || db_bind_text(st, 1, account) < 0 || db_bind_int64(st, 2, balance) < 0)
        return -1;
    return db_step_done(tx, st);
}

cJSON *acct_applied_data(const acct_booking_t *b, const char *id, const char *day, int64_t balance,
                         int64_t at)
{
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(at, when);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "transaction_id", id);
    cJSON_AddStringToObject(d, "account_id", b->account_id);
    cJSON_AddStringToObject(d, "kind", b->kind);
    json_add_int64(d, "amount_cents", b->amount);
    json_add_string_or_null(d, "task_id", b->task_id);
    cJSON_AddStringToObject(d, "day", day);
    if (json_add_int64(d, "balance_cents", balance) < 0) {
        cJSON_Delete(d);
        return NULL;
    }
    cJSON_AddStringToObject(d, "created_at", when);
    cJSON_AddStringToObject(d, "rules_version", b->rules_version);
    return d;
}

#define ACCT_APPLIED_SUBJECT "ates.accounting.transaction"

static int emit_applied(db_conn_t *tx, const acct_booking_t *b, const acct_booked_t *e,
                        int64_t at)
{
    if (b->ahead) {
        if (b->ahead->balance != e->balance) /* prepared from the same numbers: never */
            return diag_set(DIAG_INTERNAL, "payout of %s: prepared balance %lld, booked %lld",
                            b->account_id, (long long)b->ahead->balance, (long long)e->balance);
        return bus_emit_prepared(tx, ACCT_APPLIED_SUBJECT, &b->ahead->event, NULL);
    }
    cJSON *d = acct_applied_data(b, e->id, e->day, e->balance, at);
    if (!d) return -1;
    return bus_emit(tx, ACCT_APPLIED_SUBJECT, "TransactionApplied", 1, d, NULL);
}

/* The entry on day e->day (late_from: its own closed day, or NULL) with
 * the account's balance `before` it; the day's totals too unless the
 * caller adds them up itself. */
static int book_entry(db_conn_t *tx, const acct_booking_t *b, const char *late_from,
                      int64_t before, bool day_totals, acct_booked_t *e)
{
    e->booked = false;
    if (__builtin_add_overflow(before, signed_amount(b->kind, b->amount), &e->balance) ||
        e->balance > JSON_INT_MAX || e->balance < -JSON_INT_MAX)
        return diag_set(DIAG_VALIDATION, "the balance of %s would leave the range of cents",
                        b->account_id);
    int64_t now;
    if (b->ahead) {
        memcpy(e->id, b->ahead->id, UUID_LEN);
        now = b->ahead->at;
    } else {
        uuid_v7(e->id);
        now = clock_now_ms();
    }
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO ledger(id, cause, account_id, kind, amount_cents, "
                                   "task_id, day, late_from, balance_cents, created_at, rules_version) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                                   "ON CONFLICT(cause) DO NOTHING");
    if (!st || db_bind_text(st, 1, e->id) < 0 || db_bind_text(st, 2, b->cause) < 0 ||
        db_bind_text(st, 3, b->account_id) < 0 || db_bind_text(st, 4, b->kind) < 0 ||
        db_bind_int64(st, 5, b->amount) < 0 || db_bind_text(st, 6, b->task_id) < 0 ||
        db_bind_text(st, 7, e->day) < 0 || db_bind_text(st, 8, late_from) < 0 ||
        db_bind_int64(st, 9, e->balance) < 0 || db_bind_int64(st, 10, now) < 0 ||
        db_bind_text(st, 11, b->rules_version) < 0 || db_step_done(tx, st) < 0)
        return -1;
    if (sqlite3_changes(db_conn_handle(tx)) == 0) return 0; /* this cause was booked before */
    e->booked = true;
    if (set_balance(tx, b->account_id, e->balance) < 0 ||
        (day_totals && acct_add_to_day(tx, e->day, b->kind, b->amount) < 0) ||
        emit_applied(tx, b, e, now) < 0)
        return -1;
    return 0;
}

static int check_amount(const acct_booking_t *b)
{
    if (b->amount < 0 || b->amount > ACCT_AMOUNT_MAX)
        return diag_set(DIAG_VALIDATION, "amount %lld cents is out of range", (long long)b->amount);
    return 0;
}

/* The day an entry of `day` is booked on: `day`, or the first open day
 * when `day` is closed. 1 when it moved, 0 when not, -1 (diag). */
static int open_day(db_conn_t *c, const char *day, char out[CLOCK_DAY_LEN])
{
    char last[CLOCK_DAY_LEN];
    if (acct_last_closed(c, last) < 0) return -1;
    if (last[0] && strcmp(day, last) <= 0) return clock_day_add(last, 1, out) < 0 ? -1 : 1;
    snprintf(out, CLOCK_DAY_LEN, "%s", day);
    return 0;
}

int acct_booking_day(db_conn_t *c, char out[CLOCK_DAY_LEN])
{
    char today[CLOCK_DAY_LEN];
    clock_day_of(clock_now_ms(), today);
    return open_day(c, today, out) < 0 ? -1 : 0;
}

int acct_book(db_conn_t *tx, const acct_booking_t *b, acct_booked_t *out)
{
    acct_booked_t e = {.booked = false};
    if (check_amount(b) < 0) return -1;
    /* an entry whose day is closed goes to the first open day */
    int moved = open_day(tx, b->day, e.day);
    if (moved < 0) return -1;
    const char *late_from = moved ? b->day : NULL;
    int64_t before;
    if (balance_of(tx, b->account_id, &before) < 0 || book_entry(tx, b, late_from, before, true, &e) < 0)
        return -1;
    if (out) *out = e;
    return 0;
}

int acct_book_open_day(db_conn_t *tx, const acct_booking_t *b, int64_t before, acct_booked_t *out)
{
    memset(out, 0, sizeof(*out));
    if (check_amount(b) < 0) return -1;
    snprintf(out->day, sizeof(out->day), "%s", b->day);
    return book_entry(tx, b, NULL, before, false, out);
}
