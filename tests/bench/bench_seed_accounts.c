/*
 * bench_seed_accounts: add N accounts with a positive balance to
 * accounting's database, straight into its SQLite file (WAL: beside a
 * running ates, whose migrations made it), so that `make bench` can time
 * the close of a day with N payouts. Each account gets a profile (email
 * and name, so its payout mail is queued at once) and one credit entry on
 * DAY whose amount is its balance, and DAY's credits grow by the same sum:
 * balance == sum of the ledger and the day totals hold as the service
 * keeps them. Bench only: no events exist for the seeded rows.
 * Prints "ACCOUNTS CENTS" (accounts added, sum of their balances).
 * With --drop-mail instead, deletes the mails to seeded accounts still
 * queued in mail_outbox (so that the mail worker spooling 100k payout mails
 * does not load the benches that follow) and prints how many.
 * usage: bench_seed_accounts ACCOUNTING_DB ACCOUNTS DAY
 *        bench_seed_accounts ACCOUNTING_DB --drop-mail
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/uuid.h"

#define SEED_CHUNK 20000
#define SEED_MAX 10000000
#define SEED_DOMAIN "@bench.uberpopug.inc"

static int seed_one(db_conn_t *c, int64_t i, const char *day, int64_t now, int64_t *sum)
{
    char id[UUID_LEN], entry[UUID_LEN], task[UUID_LEN], cause[64], email[64], name[64];
    uuid_v7(id);
    uuid_v7(entry);
    uuid_v7(task);
    snprintf(cause, sizeof(cause), "bench-seed:%s", id);
    snprintf(email, sizeof(email), "seed%lld" SEED_DOMAIN, (long long)i);
    snprintf(name, sizeof(name), "Seed %lld", (long long)i);
    int64_t amount = 1000 + (int64_t)(((uint64_t)i * 2654435761u) % 99001); /* $10 .. $1000 */
    *sum += amount;
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO accounts(id, email, name, role, active, updated_at, "
                                  "balance_cents) VALUES (?1, ?2, ?3, 'popug', 1, ?4, ?5)");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, email) < 0 ||
        db_bind_text(st, 3, name) < 0 || db_bind_int64(st, 4, now) < 0 ||
        db_bind_int64(st, 5, amount) < 0 || db_step_done(c, st) < 0)
        return -1;
    st = db_stmt(c, "INSERT INTO ledger(id, cause, account_id, kind, amount_cents, task_id, day, "
                    "late_from, balance_cents, created_at, rules_version) "
                    "VALUES (?1, ?2, ?3, 'credit', ?4, ?5, ?6, NULL, ?4, ?7, 'bench-seed')");
    if (!st || db_bind_text(st, 1, entry) < 0 || db_bind_text(st, 2, cause) < 0 ||
        db_bind_text(st, 3, id) < 0 || db_bind_int64(st, 4, amount) < 0 ||
        db_bind_text(st, 5, task) < 0 || db_bind_text(st, 6, day) < 0 ||
        db_bind_int64(st, 7, now) < 0)
        return -1;
    return db_step_done(c, st);
}

static int add_to_day(db_conn_t *c, const char *day, int64_t credits)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO days(day, credits_cents) VALUES (?1, ?2) "
                                  "ON CONFLICT(day) DO UPDATE SET "
                                  "credits_cents = credits_cents + excluded.credits_cents");
    if (!st || db_bind_text(st, 1, day) < 0 || db_bind_int64(st, 2, credits) < 0) return -1;
    return db_step_done(c, st);
}

static int drop_mail(db_conn_t *c)
{
    if (db_begin(c) < 0) return -1;
    sqlite3_stmt *st = db_stmt(c, "DELETE FROM mail_outbox WHERE to_addr LIKE ?1");
    if (!st || db_bind_text(st, 1, "%" SEED_DOMAIN) < 0 || db_step_done(c, st) < 0) {
        db_rollback(c);
        return -1;
    }
    int n = sqlite3_changes(db_conn_handle(c));
    if (db_commit(c) < 0) return -1;
    printf("%d\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    db_t *db = NULL;
    if (argc == 3 && strcmp(argv[2], "--drop-mail") == 0) {
        if (db_open(&db, "accounting", argv[1], NULL, NULL) < 0) goto fail_open;
        db_conn_t *c = db_conn(db);
        if (!c || drop_mail(c) < 0) goto fail;
        db_close(db);
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: bench_seed_accounts ACCOUNTING_DB ACCOUNTS DAY\n"
                        "       bench_seed_accounts ACCOUNTING_DB --drop-mail\n");
        return 2;
    }
    char *end = NULL;
    long long want = strtoll(argv[2], &end, 10);
    const char *day = argv[3];
    if (end == argv[2] || *end || want < 1 || want > SEED_MAX || clock_day_check(day) < 0) {
        fprintf(stderr, "bench_seed_accounts: ACCOUNTS must be 1..%d and DAY a YYYY-MM-DD\n",
                SEED_MAX);
        return 2;
    }
    if (db_open(&db, "accounting", argv[1], NULL, NULL) < 0) goto fail_open;
    db_conn_t *c = db_conn(db);
    if (!c) goto fail;
    int64_t i = 0, total = 0, now = clock_now_ms();
    while (i < want) {
        int64_t sum = 0;
        if (db_begin(c) < 0) goto fail;
        for (int k = 0; k < SEED_CHUNK && i < want; k++, i++)
            if (seed_one(c, i, day, now, &sum) < 0) {
                db_rollback(c);
                goto fail;
            }
        if (add_to_day(c, day, sum) < 0 || db_commit(c) < 0) {
            if (db_in_tx(c)) db_rollback(c);
            goto fail;
        }
        total += sum;
    }
    printf("%lld %lld\n", (long long)i, (long long)total);
    db_close(db);
    return 0;
fail:
    db_close(db);
fail_open:
    fprintf(stderr, "bench_seed_accounts: %s\n", diag_last()->message);
    return 1;
}
