/*
 * best: GET /api/analytics/most-expensive?period=day|week|month&from&to.
 *
 * One item per period that holds a day of from..to, in order, labelled by
 * the period's first day; a period counts all of its days (the first week
 * may begin before `from`, the last month may end after `to`). `overall` is
 * the best of the items, with its period. A period without a completed,
 * counted task has null task fields.
 *
 * A day's most expensive task is one seek in tasks_best (the greatest
 * sort_key, then the smallest id: see keys.c); a week or month is the best
 * of its days, compared the same way. Weeks and months are what
 * first_day_of_week() / first_day_of_month() of analytics.lua say, asked
 * for each day, and checked: a day's period begins on or before it, every
 * day of a period gives the same first day, and a new period begins on its
 * own first day.
 */
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "core/diag.h"
#include "core/json.h"

#define AN_MAX_PERIOD 366 /* days a week or month may span */

/* The best task of a day or period. */
typedef struct an_best {
    cJSON *task;                     /* {task_id, title, jira_id, reward_cents}; NULL: none */
    unsigned char key[AN_KEY_BYTES]; /* its sort_key */
    int key_len;
    char id[UUID_LEN + 27];
} an_best_t;

/* true when a is more expensive than b (a greater key, then a smaller id). */
static bool better(const an_best_t *a, const an_best_t *b)
{
    if (!a->task) return false;
    if (!b->task) return true;
    int len = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, (size_t)len);
    if (c == 0) c = a->key_len - b->key_len;
    if (c == 0) c = -strcmp(a->id, b->id);
    return c > 0;
}

static int day_best(db_conn_t *c, int32_t day, an_best_t *out)
{
    char d[CLOCK_DAY_LEN];
    clock_day_string(day, d);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_stmt(c, "SELECT id, title, jira_id, reward_cents, sort_key FROM tasks "
                                  "WHERE day = ?1 AND sort_key IS NOT NULL "
                                  "ORDER BY sort_key DESC, id LIMIT 1");
    if (!st || db_bind_text(st, 1, d) < 0) return -1;
    int rc = db_step(c, st);
    if (rc != 1) return rc;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "task_id", db_col_text(st, 0));
    json_add_string_or_null(t, "title",
                            sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : db_col_text(st, 1));
    json_add_string_or_null(t, "jira_id",
                            sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL : db_col_text(st, 2));
    if (sqlite3_column_type(st, 3) == SQLITE_NULL) cJSON_AddNullToObject(t, "reward_cents");
    else json_add_int64(t, "reward_cents", sqlite3_column_int64(st, 3));
    snprintf(out->id, sizeof(out->id), "%s", db_col_text(st, 0));
    int len = sqlite3_column_bytes(st, 4);
    out->key_len = len < AN_KEY_BYTES ? len : AN_KEY_BYTES;
    memcpy(out->key, sqlite3_column_blob(st, 4), (size_t)out->key_len);
    out->task = t;
    sqlite3_reset(st);
    return 0;
}

/* The first day of `day`'s week or month, by the rule `fn`. */
static int period_start(rules_t *r, const char *fn, int32_t day, int32_t *out)
{
    char d[CLOCK_DAY_LEN];
    clock_day_string(day, d);
    cJSON *args = cJSON_CreateArray(), *res = NULL;
    cJSON_AddItemToArray(args, cJSON_CreateString(d));
    int rc = rules_call(r, AN_RULES, fn, args, &res, NULL);
    if (rc == 0 && (!cJSON_IsString(res) || clock_day_number(res->valuestring, out) < 0 ||
                    *out > day || day - *out >= AN_MAX_PERIOD))
        rc = diag_set(DIAG_UNAVAILABLE, AN_RULES ": %s(\"%s\") must return a day on or before it",
                      fn, d);
    cJSON_Delete(res);
    cJSON_Delete(args);
    return rc;
}

/* A period: its first day and its last. */
typedef struct an_period {
    int32_t first, last;
} an_period_t;

/* The periods of from..to (at most AN_MAX_DAYS of them) into p[], *n. */
static int periods(rules_t *r, const char *period, int32_t from, int32_t to, an_period_t *p, int *n)
{
    *n = 0;
    if (strcmp(period, "day") == 0) {
        for (int32_t d = from; d <= to; d++) p[(*n)++] = (an_period_t){d, d};
        return 0;
    }
    const char *fn = strcmp(period, "week") == 0 ? "first_day_of_week" : "first_day_of_month";
    int32_t start = 0, prev = 0;
    for (int32_t d = from;; d++) {
        if (d - from > AN_MAX_DAYS + AN_MAX_PERIOD)
            return diag_set(DIAG_UNAVAILABLE, AN_RULES ": %s() gives a period too long", fn);
        if (period_start(r, fn, d, &start) < 0) return -1;
        bool same = d > from && start == prev;
        if (d > from && !same && start != d)
            return diag_set(DIAG_UNAVAILABLE, AN_RULES ": %s() must begin a new period on its "
                            "own first day", fn);
        if (!same && d > to) break;  /* the last period ended the day before */
        if (same) p[*n - 1].last = d;
        else p[(*n)++] = (an_period_t){start, d};
        prev = start;
    }
    return 0;
}

static cJSON *item(int32_t first, const an_best_t *b)
{
    char d[CLOCK_DAY_LEN];
    clock_day_string(first, d);
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "period", d);
    const char *fields[] = {"task_id", "title", "jira_id", "reward_cents"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const cJSON *v = b->task ? cJSON_GetObjectItemCaseSensitive(b->task, fields[i]) : NULL;
        cJSON_AddItemToObject(it, fields[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    return it;
}

/* Best of each period into items, the best of all into *overall. */
static int answer(db_conn_t *c, const an_period_t *p, int n, cJSON *items, cJSON **overall)
{
    an_best_t top = {0};
    int32_t top_first = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        an_best_t best = {0};
        for (int32_t d = p[i].first; d <= p[i].last; d++) {
            an_best_t b;
            if ((rc = day_best(c, d, &b)) < 0) break;
            if (better(&b, &best)) {
                cJSON_Delete(best.task);
                best = b;
            } else {
                cJSON_Delete(b.task);
            }
        }
        cJSON_AddItemToArray(items, item(p[i].first, &best));
        if (better(&best, &top)) {
            cJSON_Delete(top.task);
            top = best;
            top_first = p[i].first;
        } else {
            cJSON_Delete(best.task);
        }
    }
    *overall = item(top_first, &top);
    if (!top.task) cJSON_ReplaceItemInObject(*overall, "period", cJSON_CreateNull());
    cJSON_Delete(top.task);
    return rc;
}

void an_on_most_expensive(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    const char *period = http_query(req, "period");
    int32_t from, to;
    if (!period) period = "day";
    if (strcmp(period, "day") != 0 && strcmp(period, "week") != 0 && strcmp(period, "month") != 0) {
        http_reply_error(req, DIAG_VALIDATION, "period must be day, week or month");
        return;
    }
    if (http_day_range(req, AN_MAX_DAYS, &from, &to) < 0) {
        http_reply_diag(req);
        return;
    }
    an_period_t *p = calloc(AN_MAX_DAYS, sizeof(*p));
    cJSON *body = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(body, "items");
    cJSON *overall = NULL;
    int n = 0;
    if (!p || !items || !c) {
        if (!diag_last()->kind) diag_set(DIAG_INTERNAL, "out of memory");
        goto fail;
    }
    if (periods(service_rules(svc), period, from, to, p, &n) < 0) goto fail;
    /* one read transaction: every day seen in the same snapshot */
    if (db_exec(c, "BEGIN") < 0) goto fail;
    int rc = answer(c, p, n, items, &overall);
    db_exec(c, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (rc < 0) goto fail;
    cJSON_AddItemToObject(body, "overall", overall);
    free(p);
    http_reply_json(req, 200, body);
    return;
fail:
    cJSON_Delete(overall);
    free(p);
    cJSON_Delete(body);
    http_reply_diag(req);
}
