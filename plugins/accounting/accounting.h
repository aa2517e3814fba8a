/*
 * accounting: where money lives (CONTRACT §2 accounting, §3 ates.accounting.*).
 *
 * What it knows comes only from events: accounts (ates.accounts.*) and
 * tasks (ates.tasks.*), in any order. A task is priced by rules/pricing.lua
 * the first time any event of it arrives, once (TaskPriced). Every
 * TaskAssigned books a debit of the task's assign fee on its assignee, every
 * TaskCompleted a credit of its reward; closing a business day asks
 * rules/payout.lua what to pay each account, books the payouts and queues
 * one mail per paid account (DayClosed).
 *
 * Invariants, held by construction (every change below is one SQLite
 * transaction with its events in the outbox and its mails in mail_outbox):
 *   - one ledger entry per cause: the event id that caused it (a UNIQUE
 *     column besides the inbox), or "payout:<day>:<account>";
 *   - an account's balance_cents is the sum of its ledger (credits minus
 *     debits and payouts), kept in the same transaction as each entry;
 *   - closed days are a prefix of the calendar: closing day D closes every
 *     earlier open day first; an entry whose own day is closed is booked
 *     on the day after the last closed day.
 * Money is int64 cents everywhere; any one price is at most ACCT_AMOUNT_MAX
 * and any balance stays within +-JSON_INT_MAX, or the change is refused.
 * Private to plugins/accounting.
 */
#ifndef ATES_ACCOUNTING_H
#define ATES_ACCOUNTING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/plugin.h"
#include "core/uuid.h"

#define ACCT_PRICING "pricing.lua"
#define ACCT_PAYOUT "payout.lua"
#define ACCT_AMOUNT_MAX 100000000000LL /* cents: one price or payout, $1e9 */
#define ACCT_MAX_DAYS 366              /* longest range of /days, and of one close */
#define ACCT_ENTRIES_MAX 500           /* entries of one answer (limit) */
#define ACCT_CAUSE_LEN 96              /* "payout:<day>:<account id>" or an event id */

/* What the close prepares of a payout entry before its transaction books it. */
typedef struct acct_ahead {
    char id[UUID_LEN];
    int64_t at, balance;
    bus_prepared_t event; /* its TransactionApplied */
} acct_ahead_t;

/* A ledger entry to book. */
typedef struct acct_booking {
    const char *account_id;
    const char *kind;          /* "debit", "credit" or "payout" */
    int64_t amount;            /* cents, 0..ACCT_AMOUNT_MAX */
    const char *task_id;       /* NULL for a payout */
    const char *cause;         /* unique: the event id, or the payout key */
    const char *day;           /* the entry's own business day */
    const char *rules_version; /* the rule version that decided the amount */
    /* Made ahead (the close, on its preparing thread), else NULL: the
     * entry's id, time and balance after it, and its TransactionApplied
     * (from acct_applied_data); a booking writes the event's row and the
     * caller frees what is left (bus_prepared_free). */
    acct_ahead_t *ahead;
} acct_booking_t;

/* What acct_book did. */
typedef struct acct_booked {
    bool booked;               /* false: the cause was booked before, nothing done */
    char id[UUID_LEN];         /* the entry (transaction id) */
    char day[CLOCK_DAY_LEN];   /* the day it was booked on */
    int64_t balance;           /* the account's balance after it */
} acct_booked_t;

/* A task's price, as stored. */
typedef struct acct_price {
    int64_t fee, reward;
    char version[RULES_VERSION_LEN];
} acct_price_t;

extern const char *const acct_migrations[];
extern const plugin_t accounting_plugin;

/* ledger.c */
/* The last closed business day into out ("" when none was ever closed). */
int acct_last_closed(db_conn_t *c, char out[CLOCK_DAY_LEN]);
/* The day an entry made now is booked on: today, or the day after the last
 * closed one when today is closed already. 0 or -1 (diag). */
int acct_booking_day(db_conn_t *c, char out[CLOCK_DAY_LEN]);
/* Book one entry inside tx: the entry, the account's balance, the day's
 * totals and its TransactionApplied. `out` may be NULL. */
int acct_book(db_conn_t *tx, const acct_booking_t *b, acct_booked_t *out);
/* acct_book for a caller that knows more (the close): b->day is open, the
 * account's balance now is `before`, and the day's totals are the caller's
 * to add (acct_add_to_day, once for all its entries). */
int acct_book_open_day(db_conn_t *tx, const acct_booking_t *b, int64_t before, acct_booked_t *out);
/* The data of the TransactionApplied of entry `id` of booking `b` on `day`,
 * the account's balance after it `balance`, booked at `at`; NULL with a diag. */
cJSON *acct_applied_data(const acct_booking_t *b, const char *id, const char *day, int64_t balance,
                         int64_t at);
/* Add `amount` of `kind` to the totals of `day`. */
int acct_add_to_day(db_conn_t *tx, const char *day, const char *kind, int64_t amount);

/* events.c: the consumers' handlers */
/* The stored price of task `id`: 1 found, 0 not priced yet, -1 error. */
int acct_task_price(db_conn_t *c, const char *id, acct_price_t *p);
int acct_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud);
int acct_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud);
int acct_on_task_assigned(db_conn_t *tx, const bus_event_t *ev, void *ud);
int acct_on_task_completed(db_conn_t *tx, const bus_event_t *ev, void *ud);

/* close.c */
/* Close business day `day` (NULL: the oldest open day, not after
 * yesterday) and every open day before it, in one transaction on `c`.
 * *answer receives {day, changed, management_earnings_cents, paid_cents,
 * paid_accounts, negative_accounts}. -1 with a diag (validation: a bad day
 * or one after today). */
int acct_close(service_t *svc, db_conn_t *c, const char *day, cJSON **answer);
/* Render and queue every pending payout mail whose account has an address,
 * ACCT_MAIL_CHUNK per transaction on `c`; how many, or -1 (those of the
 * failed chunk stay pending). acct_mail_job runs it every ACCT_MAIL_JOB_MS. */
#define ACCT_MAIL_CHUNK 1000
#define ACCT_MAIL_JOB_MS 1000
int acct_mail_flush(service_t *svc, db_conn_t *c);
int acct_mail_job(void *ud, const char *day);
int acct_close_job(void *ud, const char *day);
void acct_on_close_day(http_req_t *req, void *ud);
int acct_cmd_close_day(const config_t *cfg, int argc, char **argv);

/* api.c: the read routes */
void acct_on_me(http_req_t *req, void *ud);
void acct_on_account_view(http_req_t *req, void *ud);
void acct_on_days(http_req_t *req, void *ud);
void acct_on_today(http_req_t *req, void *ud);
void acct_on_task_price(http_req_t *req, void *ud);

#endif
