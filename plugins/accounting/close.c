/*
 * close: closing business days, from the scheduler (at ATES_DAY_CLOSE, one
 * run per day that closed, missed days caught up on start), from
 * POST /api/accounting/close-day and from `ates close-day`.
 *
 * A close is one transaction: for each account whose balance at the end
 * of the day is not zero, payout.lua's payout(balance) says what to pay and
 * what to carry; a payment is a `payout` entry on that day (balance down by
 * it) and a row in mail_pending that owes its mail; then the day's summary
 * goes into closed_days and DayClosed into the outbox. A crash anywhere
 * before the commit leaves nothing; after it, the payout mail job, the mail
 * worker and the outbox relay finish the rest, each exactly once per id.
 *
 * Payout mails: the job (every ACCT_MAIL_JOB_MS, and `ates close-day`
 * before it delivers) renders payout.lua's mail() for each pending payout
 * whose account has an address, queues it in mail_outbox with the id
 * payout-<day>-<account> and deletes the pending row, in transactions of
 * ACCT_MAIL_CHUNK. Rendering outside the close keeps the close's write
 * lock short (consumers wait for it); a payout whose account has no
 * address yet stays owed until its AccountCreated brings one.
 *
 * Closing day D closes the open days before it first, oldest first, so
 * closed days stay a prefix of the calendar and a balance is never paid
 * twice.
 *
 * The balance at the end of day D is the balance now minus the entries
 * booked on later days (events of the next day that arrived before the
 * close): those are paid when their own day closes.
 *
 * Two threads share a close: while the one in the transaction books the
 * payouts in account order, a helper (core/ahead) runs ahead of it (at most
 * CLOSE_AHEAD payouts) with payout.lua's decision and each entry's id and
 * TransactionApplied, built, checked and printed (bus_prepare). Nothing it
 * makes is stored but by the booking thread, inside the transaction; a
 * failure on either side stops both and rolls the close back. The JSON
 * and the rule calls (about a quarter of a close's CPU) leave the thread
 * that holds the write lock.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "core/ahead.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mail.h"
#include "core/runtime.h"
#include "core/schema.h"

/* An account to settle at a close. */
typedef struct settle {
    char id[UUID_LEN + 27];  /* account ids are UUIDs; room for a longer one */
    int64_t end_balance;     /* its balance at the end of the day */
    int64_t balance;         /* its balance now */
    char *email, *name;      /* NULL while unknown; owned */
} settle_t;

typedef struct summary {
    int64_t earnings, paid, paid_accounts, negative;
} summary_t;

#define CLOSE_AHEAD 4096 /* payouts prepared and not yet booked, at most */

/* A payout as the preparing thread made it. */
typedef struct prepared {
    int64_t amount;                  /* payout.lua's pay_cents */
    char version[RULES_VERSION_LEN]; /* of payout.lua */
    acct_ahead_t ahead;              /* when amount > 0: entry id, time, balance, event */
} prepared_t;

/* What the two threads of a close share (the helper's side: core/ahead). */
typedef struct preparer {
    service_t *svc;
    const settle_t *s;
    prepared_t *p; /* one per settle */
    const char *day;
    const char *producer;
    char trace[128];  /* the request's, for the events' trace_id */
    rules_args_t *a;  /* the helper's */
} preparer_t;

/* --- the payout mail ------------------------------------------------------ */

/* mail(p) of payout.lua into the mail outbox; a mail to an address the
 * mail layer refuses is logged and skipped, never blocking the close. */
static int queue_mail(db_conn_t *tx, service_t *svc, const char *account, const char *email,
                      const char *name, const char *day, int64_t amount, int64_t balance)
{
    cJSON *args = cJSON_CreateArray(), *p = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToArray(args, p);
    cJSON_AddStringToObject(p, "account_id", account);
    cJSON_AddStringToObject(p, "email", email);
    json_add_string_or_null(p, "name", name);
    cJSON_AddStringToObject(p, "day", day);
    json_add_int64(p, "amount_cents", amount);
    json_add_int64(p, "balance_cents", balance);
    int rc = rules_call(service_rules(svc), ACCT_PAYOUT, "mail", args, &res, NULL);
    const cJSON *subject = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "subject") : NULL;
    const cJSON *text = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "text") : NULL;
    char id[MAIL_ID_MAX + 1];
    snprintf(id, sizeof(id), "payout-%s-%s", day, account);
    mail_msg_t m = {.id = id, .to = "postmaster@localhost"};
    if (rc == 0 && (!subject || !text || !cJSON_IsString(subject) || !cJSON_IsString(text)))
        rc = diag_set(DIAG_UNAVAILABLE, ACCT_PAYOUT ": mail() must return {subject, text} strings");
    if (rc == 0 && subject && text) {
        m.subject = subject->valuestring;
        m.text = text->valuestring;
        if (mail_check(&m) < 0) /* the rule's part: a rule error fails the close */
            rc = diag_set(DIAG_UNAVAILABLE, ACCT_PAYOUT ": mail(): %s", diag_last()->message);
    }
    if (rc == 0) {
        m.to = email;
        if (mail_check(&m) < 0)
            log_warn("accounting: no payout mail for %s (%s): %s", account, email,
                     diag_last()->message);
        else
            rc = mail_enqueue(tx, &m);
    }
    cJSON_Delete(res);
    cJSON_Delete(args);
    return rc;
}

/* A pending payout mail, read before the chunk's writes. */
typedef struct pending_mail {
    char entry[UUID_LEN], account[UUID_LEN + 27], day[CLOCK_DAY_LEN];
    int64_t amount, balance;
    char *email, *name;
} pending_mail_t;

static void pending_free(pending_mail_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p[i].email);
        free(p[i].name);
    }
}

/* Up to ACCT_MAIL_CHUNK pending mails after entry `after` whose account
 * has an address; how many, or -1. */
static int load_pending(db_conn_t *tx, const char *after, pending_mail_t *p)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT m.entry_id, m.account_id, l.day, l.amount_cents, "
                                   "l.balance_cents, a.email, a.name "
                                   "FROM mail_pending m JOIN ledger l ON l.id = m.entry_id "
                                   "JOIN accounts a ON a.id = m.account_id "
                                   "WHERE m.entry_id > ?1 AND a.email IS NOT NULL "
                                   "ORDER BY m.entry_id LIMIT ?2");
    if (!st || db_bind_text(st, 1, after) < 0 || db_bind_int64(st, 2, ACCT_MAIL_CHUNK) < 0) return -1;
    int n = 0, rc;
    while (n < ACCT_MAIL_CHUNK && (rc = db_step(tx, st)) == 1) {
        pending_mail_t *m = &p[n++];
        snprintf(m->entry, sizeof(m->entry), "%s", db_col_text(st, 0));
        snprintf(m->account, sizeof(m->account), "%s", db_col_text(st, 1));
        snprintf(m->day, sizeof(m->day), "%s", db_col_text(st, 2));
        m->amount = sqlite3_column_int64(st, 3);
        m->balance = sqlite3_column_int64(st, 4);
        m->email = strdup(db_col_text(st, 5));
        m->name = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : strdup(db_col_text(st, 6));
        if (!m->email) rc = diag_set(DIAG_INTERNAL, "out of memory");
        if (rc < 0) break;
    }
    sqlite3_reset(st);
    if (rc < 0) {
        pending_free(p, n);
        return -1;
    }
    return n;
}

/* How one flush went with mail(): rendered, and left owed because the rule
 * failed for them (the first reason kept). */
typedef struct flush_tally {
    int sent, waiting;
    char why[DIAG_MESSAGE_MAX];
} flush_tally_t;

/* A mail() that fails for one payout leaves that mail owed and goes on with
 * the others: one account's data that trips the rule does not hold back
 * everybody's mail. A rule that fails for all ends the pass early. */
#define ACCT_MAIL_FAILS_MAX 64

static int send_pending(db_conn_t *tx, service_t *svc, const pending_mail_t *p, int n,
                        flush_tally_t *tally)
{
    for (int i = 0; i < n; i++) {
        if (tally->sent == 0 && tally->waiting >= ACCT_MAIL_FAILS_MAX) return 0;
        if (queue_mail(tx, svc, p[i].account, p[i].email, p[i].name, p[i].day, p[i].amount,
                       p[i].balance) < 0) {
            if (diag_last()->kind != DIAG_UNAVAILABLE) return -1;
            if (tally->waiting++ == 0) snprintf(tally->why, sizeof(tally->why), "%s", diag_last()->message);
            continue; /* stays in mail_pending */
        }
        tally->sent++;
        sqlite3_stmt *st = db_stmt(tx, "DELETE FROM mail_pending WHERE entry_id = ?1");
        if (!st || db_bind_text(st, 1, p[i].entry) < 0 || db_step_done(tx, st) < 0) return -1;
    }
    return 0;
}

/* The payout mails mail() could not render: said once a minute while the
 * reason stays the same (the job runs every second). */
static void tell_waiting(const flush_tally_t *tally)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t told_at;
    static char told[DIAG_MESSAGE_MAX];
    if (tally->waiting == 0) return;
    int64_t now = clock_monotonic_ms();
    pthread_mutex_lock(&lock);
    bool again = told_at && now - told_at < 60000 && strcmp(told, tally->why) == 0;
    if (!again) {
        told_at = now;
        snprintf(told, sizeof(told), "%s", tally->why);
    }
    pthread_mutex_unlock(&lock);
    if (again) return;
    log_warn("accounting: %d%s payout mails stay owed until " ACCT_PAYOUT " mail() works for them: %s",
             tally->waiting, tally->sent == 0 && tally->waiting >= ACCT_MAIL_FAILS_MAX ? "+" : "",
             tally->why);
}

int acct_mail_flush(service_t *svc, db_conn_t *c)
{
    pending_mail_t *p = calloc(ACCT_MAIL_CHUNK, sizeof(*p));
    if (!p) return diag_set(DIAG_INTERNAL, "out of memory");
    char after[UUID_LEN] = "";
    int n = 0, total = 0, rc = 0;
    flush_tally_t tally = {0};
    do {
        if (db_begin(c) < 0) {
            rc = -1;
            break;
        }
        if ((n = load_pending(c, after, p)) < 0) {
            db_rollback(c);
            rc = -1;
            break;
        }
        int sent = tally.sent;
        rc = send_pending(c, svc, p, n, &tally) < 0 || db_commit(c) < 0 ? -1 : 0;
        if (rc < 0) db_rollback(c);
        if (n > 0) snprintf(after, sizeof(after), "%s", p[n - 1].entry);
        pending_free(p, n);
        total += rc == 0 ? tally.sent - sent : 0;
    } while (rc == 0 && n == ACCT_MAIL_CHUNK && !(tally.sent == 0 && tally.waiting >= ACCT_MAIL_FAILS_MAX));
    free(p);
    tell_waiting(&tally);
    if (total > 0) log_info("accounting: %d payout mails queued", total);
    return rc < 0 ? -1 : total;
}

int acct_mail_job(void *ud, const char *day)
{
    (void)day;
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    if (!c || acct_mail_flush(svc, c) < 0) {
        log_diag(LOG_ERROR, "accounting: payout mails (kept, tried again)");
        return -1;
    }
    return 0;
}

/* --- one day -------------------------------------------------------------- */

static void settle_free(settle_t *s, int n)
{
    for (int i = 0; i < n; i++) {
        free(s[i].email);
        free(s[i].name);
    }
    free(s);
}

/* Every account whose balance at the end of `day` is not zero. */
static int load_settles(db_conn_t *tx, const char *day, settle_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 0, rc;
    sqlite3_stmt *st = db_stmt(
        tx, "SELECT a.id, a.balance_cents - coalesce(l.later, 0) AS end_balance, a.email, a.name, "
            "a.balance_cents "
            "FROM accounts a LEFT JOIN (SELECT account_id, "
            "  sum(CASE kind WHEN 'credit' THEN amount_cents ELSE -amount_cents END) AS later "
            "  FROM ledger INDEXED BY ledger_day WHERE day > ?1 GROUP BY account_id) l "
            "ON l.account_id = a.id "
            "WHERE end_balance <> 0 ORDER BY a.id");
    if (!st || db_bind_text(st, 1, day) < 0) return -1;
    while ((rc = db_step(tx, st)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            settle_t *grown = realloc(*out, sizeof(**out) * (size_t)cap);
            if (!grown) {
                sqlite3_reset(st);
                return diag_set(DIAG_INTERNAL, "out of memory");
            }
            *out = grown;
        }
        settle_t *s = &(*out)[(*n)++];
        snprintf(s->id, sizeof(s->id), "%s", db_col_text(st, 0));
        s->end_balance = sqlite3_column_int64(st, 1);
        s->email = sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL : strdup(db_col_text(st, 2));
        s->name = sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : strdup(db_col_text(st, 3));
        s->balance = sqlite3_column_int64(st, 4);
    }
    return rc;
}

/* payout(balance) of payout.lua, checked: pay + carry == balance, pay >= 0,
 * and pay never more than a positive balance. */
static int ask_payout(rules_args_t *a, int64_t balance, int64_t *pay, char version[RULES_VERSION_LEN])
{
    cJSON *arg = cJSON_CreateNumber((double)balance), *res = NULL;
    *pay = 0;
    int rc = rules_args_set(a, 0, arg);
    if (rc == 0) rc = rules_call_args(a, ACCT_PAYOUT, "payout", &res, version);
    int64_t carry = 0;
    if (rc == 0) {
        const cJSON *p = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "pay_cents") : NULL;
        const cJSON *c = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "carry_cents") : NULL;
        if (!json_is_int(p, pay) || !json_is_int(c, &carry) || *pay < 0 || *pay + carry != balance ||
            *pay > (balance > 0 ? balance : 0) || *pay > ACCT_AMOUNT_MAX)
            rc = diag_set(DIAG_UNAVAILABLE,
                          ACCT_PAYOUT ": payout(%lld) must return {pay_cents, carry_cents}: "
                                      "pay_cents >= 0, at most the positive balance, and "
                                      "pay_cents + carry_cents = the balance",
                          (long long)balance);
    }
    cJSON_Delete(res);
    cJSON_Delete(arg);
    return rc;
}

/* The payout entry (the day is open: close_upto closes in order), and the
 * mail it owes. 1 booked, 0 booked before, -1 error. */
static int pay(db_conn_t *tx, const settle_t *s, const char *day, int64_t amount,
               const char *version, acct_ahead_t *ahead)
{
    char cause[ACCT_CAUSE_LEN];
    snprintf(cause, sizeof(cause), "payout:%s:%s", day, s->id);
    acct_booking_t b = {.account_id = s->id, .kind = "payout", .amount = amount, .cause = cause,
                        .day = day, .rules_version = version, .ahead = ahead};
    acct_booked_t e;
    if (acct_book_open_day(tx, &b, s->balance, &e) < 0) return -1;
    if (!e.booked) return 0;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO mail_pending(entry_id, account_id) VALUES (?1, ?2)");
    if (!st || db_bind_text(st, 1, e.id) < 0 || db_bind_text(st, 2, s->id) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return 1;
}

static int record_closed(db_conn_t *tx, const char *day, summary_t *sum)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT debits_cents - credits_cents FROM days WHERE day = ?1");
    if (!st || db_bind_text(st, 1, day) < 0) return -1;
    int rc = db_step(tx, st);
    if (rc < 0) return -1;
    sum->earnings = rc == 1 ? sqlite3_column_int64(st, 0) : 0;
    if (rc == 1) sqlite3_reset(st);
    st = db_stmt(tx, "INSERT INTO closed_days(day, management_earnings_cents, paid_cents, "
                     "paid_accounts, negative_accounts, closed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st || db_bind_text(st, 1, day) < 0 || db_bind_int64(st, 2, sum->earnings) < 0 ||
        db_bind_int64(st, 3, sum->paid) < 0 || db_bind_int64(st, 4, sum->paid_accounts) < 0 ||
        db_bind_int64(st, 5, sum->negative) < 0 || db_bind_int64(st, 6, clock_now_ms()) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "day", day);
    json_add_int64(d, "management_earnings_cents", sum->earnings);
    json_add_int64(d, "paid_cents", sum->paid);
    json_add_int64(d, "paid_accounts", sum->paid_accounts);
    json_add_int64(d, "negative_accounts", sum->negative);
    return bus_emit(tx, "ates.accounting.day_closed", "DayClosed", 1, d, NULL);
}

/* The helper's part of payout i. */
static int prepare_one(void *ud, int i)
{
    preparer_t *pr = ud;
    prepared_t *p = &pr->p[i];
    const settle_t *s = &pr->s[i];
    if (ask_payout(pr->a, s->end_balance, &p->amount, p->version) < 0) return -1;
    if (p->amount == 0) return 0;
    uuid_v7(p->ahead.id);
    p->ahead.at = clock_now_ms();
    p->ahead.balance = s->balance - p->amount; /* as the booking computes it (and checks) */
    acct_booking_t b = {.account_id = s->id, .kind = "payout", .amount = p->amount,
                        .day = pr->day, .rules_version = p->version};
    cJSON *d = acct_applied_data(&b, p->ahead.id, pr->day, p->ahead.balance, p->ahead.at);
    if (!d) return -1;
    return bus_prepare(pr->producer, pr->trace, "TransactionApplied", 1, d, &p->ahead.event);
}

static int prepare_setup(void *ud)
{
    preparer_t *pr = ud;
    return rules_args_new(service_rules(pr->svc), 1, &pr->a);
}

static void prepare_teardown(void *ud)
{
    preparer_t *pr = ud;
    rules_args_free(pr->a);
    pr->a = NULL;
}

static int close_one(db_conn_t *tx, service_t *svc, const char *day, summary_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    settle_t *s = NULL;
    int n = 0, rc = -1;
    if (load_settles(tx, day, &s, &n) < 0) {
        settle_free(s, n);
        return -1;
    }
    preparer_t pr = {.svc = svc, .s = s, .day = day, .producer = db_name(db_conn_db(tx)),
                     .p = calloc(n > 0 ? (size_t)n : 1, sizeof(prepared_t))};
    snprintf(pr.trace, sizeof(pr.trace), "%s", log_trace());
    ahead_t *helper = NULL;
    if (!pr.p) {
        diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    if (ahead_start(&helper, CLOSE_AHEAD, prepare_one, prepare_setup, prepare_teardown, &pr) < 0)
        goto out;
    ahead_run(helper, n);
    int64_t booked = 0; /* the day's payout total, added once */
    for (int i = 0; i < n; i++) {
        if (ahead_take(helper, i) < 0) goto out;
        prepared_t *p = &pr.p[i];
        if (s[i].end_balance - p->amount < 0) sum->negative++;
        if (p->amount == 0) continue;
        int paid = pay(tx, &s[i], day, p->amount, p->version, &p->ahead);
        bus_prepared_free(&p->ahead.event);
        if (paid < 0) goto out;
        if (paid) booked += p->amount;
        sum->paid += p->amount;
        sum->paid_accounts++;
    }
    if (booked > 0 && acct_add_to_day(tx, day, "payout", booked) < 0) goto out;
    rc = record_closed(tx, day, sum);
out:
    ahead_stop(helper); /* before what it prepares is freed */
    for (int i = 0; pr.p && i < n; i++) bus_prepared_free(&pr.p[i].ahead.event);
    free(pr.p);
    settle_free(s, n);
    return rc;
}

/* --- closing up to a day -------------------------------------------------- */

static cJSON *answer_json(const char *day, bool changed, const summary_t *sum)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "day", day);
    cJSON_AddBoolToObject(o, "changed", changed);
    json_add_int64(o, "management_earnings_cents", sum->earnings);
    json_add_int64(o, "paid_cents", sum->paid);
    json_add_int64(o, "paid_accounts", sum->paid_accounts);
    json_add_int64(o, "negative_accounts", sum->negative);
    return o;
}

/* What closing `day` did (zeros for a day closed only as part of the prefix). */
static int stored_summary(db_conn_t *c, const char *day, summary_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    sqlite3_stmt *st = db_stmt(c, "SELECT management_earnings_cents, paid_cents, paid_accounts, "
                                  "negative_accounts FROM closed_days WHERE day = ?1");
    if (!st || db_bind_text(st, 1, day) < 0) return -1;
    int rc = db_step(c, st);
    if (rc == 1) {
        sum->earnings = sqlite3_column_int64(st, 0);
        sum->paid = sqlite3_column_int64(st, 1);
        sum->paid_accounts = sqlite3_column_int64(st, 2);
        sum->negative = sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
    }
    return rc < 0 ? -1 : 0;
}

/* The first day to close when nothing was closed yet: the oldest day with
 * an entry, or `target` itself. */
static int first_open_day(db_conn_t *tx, const char *last, const char *target, char out[CLOCK_DAY_LEN])
{
    if (last[0]) return clock_day_add(last, 1, out);
    snprintf(out, CLOCK_DAY_LEN, "%s", target);
    sqlite3_stmt *st = db_stmt(tx, "SELECT min(day) FROM days");
    if (!st) return -1;
    int rc = db_step(tx, st);
    if (rc < 0) return -1;
    if (rc == 1) {
        const char *oldest = db_col_text(st, 0);
        if (oldest[0] && strcmp(oldest, target) < 0) snprintf(out, CLOCK_DAY_LEN, "%s", oldest);
        sqlite3_reset(st);
    }
    return 0;
}

/* Inside the transaction: close every open day up to `target`. */
static int close_upto(db_conn_t *tx, service_t *svc, const char *target, const char *last,
                      summary_t *sum)
{
    char day[CLOCK_DAY_LEN], limit[CLOCK_DAY_LEN];
    if (first_open_day(tx, last, target, day) < 0 ||
        clock_day_add(target, -(ACCT_MAX_DAYS - 1), limit) < 0)
        return -1;
    if (strcmp(day, limit) < 0) { /* older open days count as closed by this one */
        log_warn("accounting: closing %s; the open days %s..%s before it get no DayClosed of "
                 "their own (at most %d days are closed at once)",
                 target, day, limit, ACCT_MAX_DAYS);
        snprintf(day, sizeof(day), "%s", limit);
    }
    for (;;) {
        if (close_one(tx, svc, day, sum) < 0) return -1;
        log_info("accounting: closed %s: paid %lld cents to %lld accounts, %lld negative",
                 day, (long long)sum->paid, (long long)sum->paid_accounts, (long long)sum->negative);
        if (strcmp(day, target) >= 0) return 0;
        if (clock_day_add(day, 1, day) < 0) return -1;
    }
}

int acct_close(service_t *svc, db_conn_t *c, const char *day, cJSON **answer)
{
    *answer = NULL;
    char today[CLOCK_DAY_LEN], yesterday[CLOCK_DAY_LEN], target[CLOCK_DAY_LEN], last[CLOCK_DAY_LEN];
    clock_day_of(clock_now_ms(), today);
    if (clock_day_add(today, -1, yesterday) < 0) return -1;
    if (day && clock_day_check(day) < 0) return diag_set(DIAG_VALIDATION, "day must be YYYY-MM-DD");
    if (day && strcmp(day, today) > 0)
        return diag_set(DIAG_VALIDATION, "day %s has not begun yet (today is %s)", day, today);
    if (db_begin(c) < 0) return -1;
    summary_t sum;
    bool changed = false;
    if (acct_last_closed(c, last) < 0) goto fail;
    if (day) {
        snprintf(target, sizeof(target), "%s", day);
    } else { /* the oldest open day, not after yesterday */
        if (first_open_day(c, last, yesterday, target) < 0) goto fail;
        if (strcmp(target, yesterday) > 0) snprintf(target, sizeof(target), "%s", yesterday);
    }
    if (last[0] && strcmp(target, last) <= 0) {
        if (stored_summary(c, target, &sum) < 0) goto fail;
    } else {
        if (close_upto(c, svc, target, last, &sum) < 0) goto fail;
        changed = true;
    }
    if (db_commit(c) < 0) return -1;
    *answer = answer_json(target, changed, &sum);
    return 0;
fail:
    db_rollback(c);
    return -1;
}

/* --- the three ways in ---------------------------------------------------- */

int acct_close_job(void *ud, const char *day)
{
    service_t *svc = ud;
    db_conn_t *c = db_conn(service_db(svc));
    cJSON *answer = NULL;
    if (!c || acct_close(svc, c, day, &answer) < 0) {
        log_diag(LOG_ERROR, "accounting: daily close");
        return -1;
    }
    cJSON_Delete(answer);
    return 0;
}

void acct_on_close_day(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"day", NULL};
    const cJSON *body = http_body(req);
    const char *day = NULL;
    /* a misspelt "date" must not close the default day: that cannot be undone */
    if (!http_body_only(req, fields)) return;
    if (body && json_get_string(body, "day", false, &day) < 0) {
        http_reply_diag(req);
        return;
    }
    db_conn_t *c = db_conn(service_db(svc));
    cJSON *answer = NULL;
    if (!c || acct_close(svc, c, day, &answer) < 0) {
        http_reply_diag(req);
        return;
    }
    http_reply_json(req, 200, answer);
}

int acct_cmd_close_day(const config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"date", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    const char *day = NULL;
    int ch;
    optind = 0; /* argv[0] is already an option */
    while ((ch = getopt_long(argc + 1, argv - 1, "d:", opts, NULL)) != -1) {
        if (ch != 'd') return 2;
        day = optarg;
    }
    if (optind < argc + 1) {
        fprintf(stderr, "ates close-day: unexpected argument %s\n", argv[optind - 1]);
        return 2;
    }
    if (day && clock_day_check(day) < 0) {
        fprintf(stderr, "ates close-day: --date must be YYYY-MM-DD, not %s\n", day);
        return 2;
    }
    /* the business day is ATES_TZ's, as for ates serve: which day is
     * "yesterday" and when it closes */
    if (clock_configure(cfg->tz, cfg->day_close_minute) < 0) {
        fprintf(stderr, "ates close-day: %s\n", diag_last()->message);
        return 2;
    }
    char path[4200];
    schema_registry_t *schemas = NULL;
    db_t *db = NULL;
    rules_t *rules = NULL;
    service_t *svc = NULL;
    cJSON *answer = NULL;
    int rc = 1;
    snprintf(path, sizeof(path), "%s/accounting.db", cfg->data_dir);
    if (runtime_mkdirs(cfg->data_dir, 0700) < 0 ||
        schema_registry_load(&schemas, cfg->schemas_dir) < 0 ||
        db_open(&db, "accounting", path, db_core_migrations, acct_migrations) < 0 ||
        rules_open(&rules, cfg->rules_dir, cfg->seed) < 0)
        goto out;
    snprintf(path, sizeof(path), "%s/rules-in-force", cfg->data_dir);
    if (rules_keep(rules, path) < 0) goto out; /* what ates serve would have in force */
    bus_set_schemas(schemas);
    svc = runtime_service_new(cfg, &accounting_plugin, db, NULL, rules);
    db_conn_t *c = svc ? db_conn(db) : NULL;
    if (!c || acct_close(svc, c, day, &answer) < 0) goto out;
    if (acct_mail_flush(svc, c) < 0) log_diag(LOG_WARN, "close-day: payout mails (kept for ates serve)");
    if (mail_deliver_due(db, cfg) < 0) log_diag(LOG_WARN, "close-day: mail delivery");
    char *text = cJSON_PrintUnformatted(answer);
    printf("%s\n", text ? text : "");
    cJSON_free(text);
    rc = 0;
out:
    if (rc) fprintf(stderr, "ates close-day: %s\n", diag_last()->message);
    cJSON_Delete(answer);
    runtime_service_free(svc);
    bus_set_schemas(NULL);
    rules_close(rules);
    db_close(db);
    schema_registry_free(schemas);
    return rc;
}
