/*
 * analytics: the plugin table, its schema, its state and its reset for
 * `ates replay analytics`. See analytics.h.
 */
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "core/diag.h"
#include "core/log.h"

const char *const an_migrations[] = {
    /* Every task analytics has heard of; a row appears with whichever of
     * TaskCreated, TaskPriced, TaskCompleted arrives first. */
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY,"
    "  title TEXT,"             /* NULL until TaskCreated (v1 titles split) */
    "  jira_id TEXT,"
    "  reward_cents INTEGER,"   /* NULL until TaskPriced */
    "  completed_at INTEGER,"   /* ms; NULL until TaskCompleted (the earliest one) */
    "  day TEXT,"               /* business day of completed_at */
    "  sort_key BLOB,"          /* expense_key() encoded; NULL: not a candidate */
    "  key_version TEXT,"       /* analytics.lua version that made sort_key */
    "  stale INTEGER NOT NULL DEFAULT 0" /* 1: sort_key to be made again */
    ") WITHOUT ROWID;"
    "CREATE INDEX tasks_best ON tasks(day, sort_key DESC, id) WHERE sort_key IS NOT NULL;"
    "CREATE INDEX tasks_stale ON tasks(stale) WHERE stale = 1;"
    /* Sums of the entries booked on each day (TransactionApplied.day) and
     * the tasks completed that day. */
    "CREATE TABLE days ("
    "  day TEXT PRIMARY KEY,"
    "  debits_cents INTEGER NOT NULL DEFAULT 0,"
    "  credits_cents INTEGER NOT NULL DEFAULT 0,"
    "  payouts_cents INTEGER NOT NULL DEFAULT 0,"
    "  completed_tasks INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* Balance = that of the newest entry by (created_at, transaction id). */
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY,"
    "  role TEXT,"              /* from AccountCreated/Updated, NULL until one */
    "  active INTEGER,"
    "  updated_at INTEGER,"     /* event time of the newest account event */
    "  balance_cents INTEGER NOT NULL DEFAULT 0,"
    "  balance_at INTEGER,"     /* created_at (ms) of the entry behind balance_cents */
    "  balance_tx TEXT) WITHOUT ROWID;"
    /* The balance at the end of each day an account had an entry booked. */
    "CREATE TABLE account_days ("
    "  account_id TEXT NOT NULL,"
    "  day TEXT NOT NULL,"
    "  balance_cents INTEGER NOT NULL,"
    "  balance_at INTEGER NOT NULL,"
    "  balance_tx TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, day)) WITHOUT ROWID;"
    "CREATE INDEX account_days_day ON account_days(day, account_id, balance_cents);"
    "CREATE TABLE closed_days ("  /* DayClosed as accounting reported it */
    "  day TEXT PRIMARY KEY,"
    "  management_earnings_cents INTEGER NOT NULL,"
    "  paid_cents INTEGER NOT NULL,"
    "  paid_accounts INTEGER NOT NULL,"
    "  negative_accounts INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    /* 2: the accounts in the red, so that /today counts them without a
     * scan of every account. */
    "CREATE INDEX accounts_red ON accounts(id) WHERE balance_cents < 0;",
    NULL,
};

int an_meta_get(db_conn_t *c, const char *key, char *out, size_t cap)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT value FROM meta WHERE key = ?1");
    if (!st || db_bind_text(st, 1, key) < 0) return -1;
    int rc = db_step(c, st);
    if (rc == 1) {
        snprintf(out, cap, "%s", db_col_text(st, 0));
        sqlite3_reset(st);
    }
    return rc;
}

int an_meta_set(db_conn_t *c, const char *key, const char *value)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                  "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st || db_bind_text(st, 1, key) < 0 || db_bind_text(st, 2, value) < 0) return -1;
    return db_step_done(c, st);
}

int an_meta_del(db_conn_t *c, const char *key)
{
    sqlite3_stmt *st = db_stmt(c, "DELETE FROM meta WHERE key = ?1");
    if (!st || db_bind_text(st, 1, key) < 0) return -1;
    return db_step_done(c, st);
}

/* A new database takes the keys' version from the rules in force, so the
 * first events need no rekey pass. */
static int an_start(service_t *svc)
{
    analytics_t *a = calloc(1, sizeof(*a));
    if (!a) return diag_set(DIAG_INTERNAL, "out of memory");
    service_set_state(svc, a);
    char v[RULES_VERSION_LEN], have[RULES_VERSION_LEN];
    an_rules_version(svc, v);
    db_conn_t *c = db_conn(service_db(svc));
    if (!c) return -1;
    int rc = an_meta_get(c, "key_version", have, sizeof(have));
    if (rc != 0 || !v[0]) return rc < 0 ? -1 : 0;
    if (db_begin(c) < 0) return -1;
    if (an_meta_set(c, "key_version", v) < 0) {
        db_rollback(c);
        return -1;
    }
    return db_commit(c);
}

static void an_stop(service_t *svc)
{
    free(service_state(svc));
    service_set_state(svc, NULL);
}

/* `ates replay analytics`: every projection goes; key_version stays (it
 * names the rules, not the data). */
static int an_reset(db_conn_t *tx)
{
    return db_exec(tx, "DELETE FROM tasks; DELETE FROM days; DELETE FROM accounts;"
                       "DELETE FROM account_days; DELETE FROM closed_days;"
                       "DELETE FROM meta WHERE key <> 'key_version';");
}

static const bus_stream_t streams[] = {
    {"ATES_TASKS", "ates.tasks.>"},
    {"ATES_ACCOUNTING", "ates.accounting.>"},
    {"ATES_ACCOUNTS", "ates.accounts.>"},
    {NULL, NULL},
};

static const bus_subscription_t subscriptions[] = {
    {"ATES_TASKS", "ates.tasks.created", an_on_task_created},
    {"ATES_TASKS", "ates.tasks.completed", an_on_task_completed},
    {"ATES_ACCOUNTING", "ates.accounting.task_priced", an_on_task_priced},
    {"ATES_ACCOUNTING", "ates.accounting.transaction", an_on_transaction},
    {"ATES_ACCOUNTING", "ates.accounting.day_closed", an_on_day_closed},
    {"ATES_ACCOUNTS", "ates.accounts.created", an_on_account},
    {"ATES_ACCOUNTS", "ates.accounts.updated", an_on_account},
    {NULL, NULL, NULL},
};

static const http_route_t routes[] = {
    {"GET", "/api/analytics/today", an_on_today, HTTP_AUTH, "admin"},
    {"GET", "/api/analytics/days", an_on_days, HTTP_AUTH, "admin"},
    {"GET", "/api/analytics/most-expensive", an_on_most_expensive, HTTP_AUTH, "admin"},
    {NULL, NULL, NULL, 0, NULL},
};

static const sched_job_t jobs[] = {
    {"analytics-rekey", SCHED_INTERVAL, AN_REKEY_MS, an_rekey_job},
    {NULL, 0, 0, NULL},
};

static const plugin_rule_t rules[] = {
    {AN_RULES, "management_earnings"},
    {AN_RULES, "first_day_of_week"},
    {AN_RULES, "first_day_of_month"},
    {AN_RULES, "expense_key"},
    {NULL, NULL},
};

const plugin_t analytics_plugin = {
    .name = "analytics",
    .migrations = an_migrations,
    .streams = streams,
    .subscriptions = subscriptions,
    .routes = routes,
    .jobs = jobs,
    .rules = rules,
    .start = an_start,
    .stop = an_stop,
    .reset = an_reset,
};
