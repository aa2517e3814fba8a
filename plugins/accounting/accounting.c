/*
 * accounting: the plugin table and its schema. See accounting.h.
 */
#include "accounting.h"

const char *const acct_migrations[] = {
    /* The accounts it has heard of, from account events or from a task
     * event naming them first (then the profile columns stay NULL). */
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY,"
    "  email TEXT,"
    "  name TEXT,"
    "  role TEXT,"
    "  active INTEGER,"
    "  updated_at INTEGER,"        /* event time (ms) of the newest account event */
    "  balance_cents INTEGER NOT NULL DEFAULT 0"
    "    CHECK (typeof(balance_cents) = 'integer' AND abs(balance_cents) <= 999999999999999)"
    ") WITHOUT ROWID;"
    /* A task's price, fixed the first time the task was seen. */
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY,"
    "  title TEXT,"                /* NULL until TaskCreated */
    "  jira_id TEXT,"
    "  assign_fee_cents INTEGER NOT NULL CHECK (assign_fee_cents >= 0),"
    "  reward_cents INTEGER NOT NULL CHECK (reward_cents >= 0),"
    "  rules_version TEXT NOT NULL,"
    "  priced_at INTEGER NOT NULL) WITHOUT ROWID;"
    /* The ledger: append-only. id is a UUIDv7, so id order is booking order. */
    "CREATE TABLE ledger ("
    "  id TEXT PRIMARY KEY,"
    "  cause TEXT NOT NULL UNIQUE,"  /* event id, or payout:<day>:<account> */
    "  account_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('debit', 'credit', 'payout')),"
    "  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),"
    "  task_id TEXT,"
    "  day TEXT NOT NULL,"           /* the business day it is booked on */
    "  late_from TEXT,"              /* its own day, when that was closed */
    "  balance_cents INTEGER NOT NULL," /* the account's balance after it */
    "  created_at INTEGER NOT NULL,"
    "  rules_version TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX ledger_account_day ON ledger(account_id, day, id);"
    "CREATE INDEX ledger_day ON ledger(day);"
    /* Sums of the entries booked on each day. */
    "CREATE TABLE days ("
    "  day TEXT PRIMARY KEY,"
    "  debits_cents INTEGER NOT NULL DEFAULT 0,"
    "  credits_cents INTEGER NOT NULL DEFAULT 0,"
    "  payouts_cents INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* Each closed day and what closing it did; every day up to the newest
     * one here is closed. */
    "CREATE TABLE closed_days ("
    "  day TEXT PRIMARY KEY,"
    "  management_earnings_cents INTEGER NOT NULL,"
    "  paid_cents INTEGER NOT NULL,"
    "  paid_accounts INTEGER NOT NULL,"
    "  negative_accounts INTEGER NOT NULL,"
    "  closed_at INTEGER NOT NULL) WITHOUT ROWID;"
    /* Payouts whose mail is owed (written by the payout mail job once the
     * account has an address). */
    "CREATE TABLE mail_pending ("
    "  entry_id TEXT PRIMARY KEY,"
    "  account_id TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX mail_pending_account ON mail_pending(account_id);",
    /* 2: no query reads mail_pending by account; a close paid for the
     * index with one more B-tree insert per payout. */
    "DROP INDEX mail_pending_account;",
    NULL,
};

static const bus_stream_t streams[] = {
    {"ATES_ACCOUNTING", "ates.accounting.>"},
    {"ATES_TASKS", "ates.tasks.>"},
    {"ATES_ACCOUNTS", "ates.accounts.>"},
    {NULL, NULL},
};

static const bus_subscription_t subscriptions[] = {
    {"ATES_ACCOUNTS", "ates.accounts.created", acct_on_account},
    {"ATES_ACCOUNTS", "ates.accounts.updated", acct_on_account},
    {"ATES_TASKS", "ates.tasks.created", acct_on_task_created},
    {"ATES_TASKS", "ates.tasks.assigned", acct_on_task_assigned},
    {"ATES_TASKS", "ates.tasks.completed", acct_on_task_completed},
    {NULL, NULL, NULL},
};

static const http_route_t routes[] = {
    {"GET", "/api/accounting/me", acct_on_me, HTTP_AUTH, NULL},
    {"GET", "/api/accounting/accounts/{id}", acct_on_account_view, HTTP_AUTH, "admin,accountant"},
    {"GET", "/api/accounting/days", acct_on_days, HTTP_AUTH, "admin,accountant"},
    {"GET", "/api/accounting/today", acct_on_today, HTTP_AUTH, "admin,accountant"},
    {"POST", "/api/accounting/close-day", acct_on_close_day, HTTP_AUTH, "admin"},
    {"GET", "/api/accounting/tasks/{id}", acct_on_task_price, HTTP_AUTH, "admin,accountant"},
    {NULL, NULL, NULL, 0, NULL},
};

static const sched_job_t jobs[] = {
    {"accounting-close-day", SCHED_DAILY, 0, acct_close_job},
    {"accounting-payout-mails", SCHED_INTERVAL, ACCT_MAIL_JOB_MS, acct_mail_job},
    {NULL, 0, 0, NULL},
};

static const plugin_command_t commands[] = {
    {"close-day", "close a business day: payouts, mails, DayClosed",
     "usage: ates close-day [--date YYYY-MM-DD]\n\n"
     "Closes the business day (default: the oldest open day, not after yesterday)\n"
     "and every open day before it, in accounting's database under ATES_DATA_DIR:\n"
     "each positive balance is paid out as payout.lua decides (a payout entry and\n"
     "one mail), negative balances carry over, and DayClosed is queued for\n"
     "publishing. Closing a closed day changes nothing. Prints the result as JSON.\n",
     acct_cmd_close_day},
    {NULL, NULL, NULL, NULL},
};

static const plugin_rule_t rules[] = {
    {ACCT_PRICING, "price"},
    {ACCT_PAYOUT, "payout"},
    {ACCT_PAYOUT, "mail"},
    {NULL, NULL},
};

const plugin_t accounting_plugin = {
    .name = "accounting",
    .migrations = acct_migrations,
    .streams = streams,
    .subscriptions = subscriptions,
    .routes = routes,
    .jobs = jobs,
    .commands = commands,
    .rules = rules,
};
