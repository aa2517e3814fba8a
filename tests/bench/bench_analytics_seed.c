/*
 * bench_analytics_seed: fill analytics' database with completed, priced
 * tasks spread evenly over DAYS days ending LAST_DAY, straight into its
 * SQLite file (WAL: beside a running ates, whose migrations made it), so
 * that `make bench` can time /api/analytics/most-expensive over a year of
 * a million tasks. Each key is made by expense_key() of RULES_DIR's
 * analytics.lua and stored with its version, as the service would. Bench
 * only: no events exist for the seeded rows.
 * usage: bench_analytics_seed ANALYTICS_DB RULES_DIR TASKS DAYS LAST_DAY
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/rules.h"
#include "core/uuid.h"

#define SEED_CHUNK 20000
#define SEED_KEY_INTS 4

/* The key encoding of plugins/analytics/keys.c. */
static void put_int(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v ^ 0x8000000000000000ULL;
    for (int i = 7; i >= 0; i--, u >>= 8) p[i] = (unsigned char)(u & 0xff);
}

static int encode(const cJSON *res, unsigned char *b, int *len)
{
    int64_t v;
    const cJSON *it;
    *len = 0;
    if (json_is_int(res, &v)) {
        put_int(b, v);
        *len = 8;
        return 0;
    }
    cJSON_ArrayForEach(it, res)
    {
        if (*len == 8 * SEED_KEY_INTS || !json_is_int(it, &v)) return -1;
        put_int(b + *len, v);
        *len += 8;
    }
    return 0;
}

static int insert(db_conn_t *c, rules_t *r, int64_t i, const char *day, int64_t ms,
                  int64_t *completed)
{
    char id[UUID_LEN], title[64], jira[32], when[CLOCK_RFC3339_LEN], version[RULES_VERSION_LEN];
    uuid_v7(id);
    snprintf(title, sizeof(title), "bench task %lld", (long long)i);
    snprintf(jira, sizeof(jira), "BENCH-%lld", (long long)i);
    clock_rfc3339(ms, when);
    int64_t reward = 2000 + (int64_t)(((uint64_t)i * 2654435761u) % 2001);
    cJSON *args = cJSON_CreateArray(), *t = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToArray(args, t);
    cJSON_AddStringToObject(t, "id", id);
    cJSON_AddStringToObject(t, "title", title);
    cJSON_AddStringToObject(t, "jira_id", jira);
    json_add_int64(t, "reward_cents", reward);
    cJSON_AddStringToObject(t, "completed_at", when);
    json_add_int64(t, "completed_ms", ms);
    cJSON_AddStringToObject(t, "day", day);
    unsigned char key[8 * SEED_KEY_INTS];
    int len = 0;
    int rc = rules_call(r, "analytics.lua", "expense_key", args, &res, version);
    if (rc == 0 && encode(res, key, &len) < 0) rc = diag_set(DIAG_VALIDATION, "bad key");
    cJSON_Delete(res);
    cJSON_Delete(args);
    if (rc < 0) return -1;
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO tasks(id, title, jira_id, reward_cents, completed_at, "
                                  "day, sort_key, key_version, stale) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
        db_bind_text(st, 3, jira) < 0 || db_bind_int64(st, 4, reward) < 0 ||
        db_bind_int64(st, 5, ms) < 0 || db_bind_text(st, 6, day) < 0 ||
        (len ? sqlite3_bind_blob(st, 7, key, len, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 7)) ||
        db_bind_text(st, 8, version) < 0 || db_step_done(c, st) < 0)
        return -1;
    ++*completed;
    return 0;
}

static int add_day(db_conn_t *c, const char *day, int64_t n)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO days(day, completed_tasks) VALUES (?1, ?2) "
                                  "ON CONFLICT(day) DO UPDATE SET "
                                  "completed_tasks = completed_tasks + excluded.completed_tasks");
    if (!st || db_bind_text(st, 1, day) < 0 || db_bind_int64(st, 2, n) < 0) return -1;
    return db_step_done(c, st);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_analytics_seed ANALYTICS_DB RULES_DIR TASKS DAYS LAST_DAY\n");
        return 2;
    }
    int64_t tasks = atoll(argv[3]);
    int days = atoi(argv[4]);
    db_t *db = NULL;
    rules_t *r = NULL;
    if (days < 1 || clock_day_check(argv[5]) < 0 ||
        db_open(&db, "analytics", argv[1], NULL, NULL) < 0 || rules_open(&r, argv[2], 1) < 0)
        goto fail;
    db_conn_t *c = db_conn(db);
    int64_t t0 = clock_monotonic_ms();
    for (int d = 0; d < days; d++) {
        char day[CLOCK_DAY_LEN], noon[40];
        int64_t ms, done = 0;
        clock_day_add(argv[5], d - days + 1, day);
        snprintf(noon, sizeof(noon), "%sT12:00:00Z", day);
        clock_parse_rfc3339(noon, &ms);
        int64_t first = tasks * d / days, last = tasks * (d + 1) / days;
        for (int64_t i = first; i < last;) {
            if (db_begin(c) < 0) goto fail;
            for (int k = 0; k < SEED_CHUNK && i < last; k++, i++)
                if (insert(c, r, i, day, ms + i - first, &done) < 0) {
                    db_rollback(c);
                    goto fail;
                }
            if (db_commit(c) < 0) goto fail;
        }
        if (db_begin(c) < 0) goto fail;
        if (add_day(c, day, done) < 0) {
            db_rollback(c);
            goto fail;
        }
        if (db_commit(c) < 0) goto fail;
    }
    printf("seeded %lld completed tasks over %d days in %.1f s\n", (long long)tasks, days,
           (double)(clock_monotonic_ms() - t0) / 1000.0);
    rules_close(r);
    db_close(db);
    return 0;
fail:
    fprintf(stderr, "bench_analytics_seed: %s\n", diag_last()->message);
    rules_close(r);
    if (db) db_close(db);
    return 1;
}
