/*
 * api: GET /api/analytics/today and /days (admin only, by route).
 *
 * management_earnings_cents of a day is analytics.lua's
 * management_earnings() of the day's totals, evaluated at every answer.
 * negative_accounts of a day is the number of accounts whose balance at the
 * end of that day (their newest entry booked on or before it) is below
 * zero; /today counts the balances as they are now.
 */
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "core/diag.h"
#include "core/json.h"

typedef struct an_totals {
    int64_t debits, credits, payouts, completed;
} an_totals_t;

/* management_earnings(totals) of analytics.lua. */
static int earnings(rules_t *r, const char *day, const an_totals_t *t, int64_t *out)
{
    cJSON *args = cJSON_CreateArray(), *o = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToArray(args, o);
    cJSON_AddStringToObject(o, "day", day);
    json_add_int64(o, "debits_cents", t->debits);
    json_add_int64(o, "credits_cents", t->credits);
    json_add_int64(o, "payouts_cents", t->payouts);
    json_add_int64(o, "completed_tasks", t->completed);
    int rc = rules_call(r, AN_RULES, "management_earnings", args, &res, NULL);
    if (rc == 0 && !json_is_int(res, out))
        rc = diag_set(DIAG_UNAVAILABLE, AN_RULES ": management_earnings() must return integer cents");
    cJSON_Delete(res);
    cJSON_Delete(args);
    return rc;
}

/* The totals of days from..to into t[0..to-from]. */
static int load_totals(db_conn_t *c, int32_t from, int32_t to, an_totals_t *t)
{
    char a[CLOCK_DAY_LEN], b[CLOCK_DAY_LEN];
    clock_day_string(from, a);
    clock_day_string(to, b);
    memset(t, 0, sizeof(*t) * (size_t)(to - from + 1));
    sqlite3_stmt *st = db_stmt(c, "SELECT day, debits_cents, credits_cents, payouts_cents, "
                                  "completed_tasks FROM days WHERE day BETWEEN ?1 AND ?2");
    if (!st || db_bind_text(st, 1, a) < 0 || db_bind_text(st, 2, b) < 0) return -1;
    int rc;
    while ((rc = db_step(c, st)) == 1) {
        int32_t n;
        if (clock_day_number(db_col_text(st, 0), &n) < 0 || n < from || n > to) continue;
        an_totals_t *x = &t[n - from];
        x->debits = sqlite3_column_int64(st, 1);
        x->credits = sqlite3_column_int64(st, 2);
        x->payouts = sqlite3_column_int64(st, 3);
        x->completed = sqlite3_column_int64(st, 4);
    }
    return rc;
}

/* --- negative accounts per day ------------------------------------------ */

typedef struct an_balance {
    char id[UUID_LEN + 27]; /* account ids are UUIDs; room for a longer one */
    int64_t cents;
} an_balance_t;

static int by_id(const void *a, const void *b)
{
    return strcmp(((const an_balance_t *)a)->id, ((const an_balance_t *)b)->id);
}

/* Every account with its balance at the end of day `before` - 1, sorted by
 * id: one statement (a correlated probe of account_days per account), not
 * a round trip per account. */
static int balances_before(db_conn_t *c, const char *before, an_balance_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 0, rc;
    sqlite3_stmt *st = db_stmt(c, "SELECT a.id, (SELECT d.balance_cents FROM account_days d "
                                  "WHERE d.account_id = a.id AND d.day < ?1 "
                                  "ORDER BY d.day DESC LIMIT 1) FROM accounts a ORDER BY a.id");
    if (!st || db_bind_text(st, 1, before) < 0) return -1;
    bool sorted = true;
    while ((rc = db_step(c, st)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            an_balance_t *grown = realloc(*out, sizeof(**out) * (size_t)cap);
            if (!grown) {
                sqlite3_reset(st);
                return diag_set(DIAG_INTERNAL, "out of memory");
            }
            *out = grown;
        }
        an_balance_t *b = &(*out)[(*n)++];
        snprintf(b->id, sizeof(b->id), "%s", db_col_text(st, 0));
        b->cents = sqlite3_column_int64(st, 1); /* 0 when NULL: no entry before that day */
        if (*n > 1 && by_id(b - 1, b) >= 0) sorted = false;
    }
    if (rc < 0) return -1;
    /* bsearch needs strcmp's order; SQLite's is memcmp's, the same for ids without NUL */
    if (!sorted) qsort(*out, (size_t)*n, sizeof(**out), by_id);
    return 0;
}

/* neg[0..to-from]: accounts below zero at the end of each day. */
static int negatives(db_conn_t *c, int32_t from, int32_t to, int64_t *neg)
{
    char a[CLOCK_DAY_LEN], b[CLOCK_DAY_LEN];
    clock_day_string(from, a);
    clock_day_string(to, b);
    an_balance_t *acc = NULL;
    int n = 0, rc = -1;
    if (balances_before(c, a, &acc, &n) < 0) goto out;
    int64_t count = 0;
    for (int i = 0; i < n; i++) count += acc[i].cents < 0;
    sqlite3_stmt *st = db_stmt(c, "SELECT day, account_id, balance_cents FROM account_days "
                                  "WHERE day BETWEEN ?1 AND ?2 ORDER BY day");
    if (!st || db_bind_text(st, 1, a) < 0 || db_bind_text(st, 2, b) < 0) goto out;
    int32_t d = from;
    while ((rc = db_step(c, st)) == 1) {
        int32_t day;
        if (clock_day_number(db_col_text(st, 0), &day) < 0) continue;
        for (; d < day && d <= to; d++) neg[d - from] = count;
        an_balance_t key = {.cents = 0}, *hit;
        snprintf(key.id, sizeof(key.id), "%s", db_col_text(st, 1));
        hit = n > 0 ? bsearch(&key, acc, (size_t)n, sizeof(*acc), by_id) : NULL;
        if (!hit) continue; /* an entry committed after the account list was read */
        int64_t cents = sqlite3_column_int64(st, 2);
        count += (cents < 0) - (hit->cents < 0);
        hit->cents = cents;
    }
    for (; d <= to; d++) neg[d - from] = count;
out:
    free(acc);
    return rc < 0 ? -1 : 0;
}

/* --- handlers ------------------------------------------------------------ */

static void reply_failed(http_req_t *req, db_conn_t *c)
{
    if (c && db_in_tx(c)) db_rollback(c);
    http_reply_diag(req);
}

void an_on_today(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    int32_t today = clock_today();
    char day[CLOCK_DAY_LEN];
    clock_day_string(today, day);
    an_totals_t t;
    int64_t earned = 0, neg = 0;
    sqlite3_stmt *st = NULL;
    if (!c || load_totals(c, today, today, &t) < 0 ||
        !(st = db_stmt(c, "SELECT count(*) FROM accounts WHERE balance_cents < 0")) ||
        db_step(c, st) != 1) {
        reply_failed(req, c);
        return;
    }
    neg = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (earnings(service_rules(svc), day, &t, &earned) < 0) {
        reply_failed(req, c);
        return;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "day", day);
    json_add_int64(body, "management_earnings_cents", earned);
    json_add_int64(body, "negative_accounts", neg);
    http_reply_json(req, 200, body);
}

void an_on_days(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    int32_t from, to;
    if (http_day_range(req, AN_MAX_DAYS, &from, &to) < 0) {
        http_reply_diag(req);
        return;
    }
    int n = to - from + 1;
    an_totals_t *t = calloc((size_t)n, sizeof(*t));
    int64_t *neg = calloc((size_t)n, sizeof(*neg));
    cJSON *body = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(body, "items");
    /* one read transaction: totals and balances from the same snapshot */
    if (!t || !neg || !items || !c || db_exec(c, "BEGIN") < 0 || load_totals(c, from, to, t) < 0 ||
        negatives(c, from, to, neg) < 0 || db_exec(c, "COMMIT") < 0) {
        if (!diag_last()->kind) diag_set(DIAG_INTERNAL, "out of memory");
        if (c && !sqlite3_get_autocommit(db_conn_handle(c))) db_exec(c, "ROLLBACK");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        char day[CLOCK_DAY_LEN];
        int64_t earned = 0;
        clock_day_string(from + i, day);
        if (earnings(service_rules(svc), day, &t[i], &earned) < 0) goto fail;
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToArray(items, it);
        cJSON_AddStringToObject(it, "day", day);
        json_add_int64(it, "management_earnings_cents", earned);
        json_add_int64(it, "negative_accounts", neg[i]);
        json_add_int64(it, "completed_tasks", t[i].completed);
    }
    free(t);
    free(neg);
    http_reply_json(req, 200, body);
    return;
fail:
    free(t);
    free(neg);
    cJSON_Delete(body);
    http_reply_diag(req);
}
