/*
 * bench_seed_tasks: top up the tracker's database with open tasks, straight
 * into its SQLite file (WAL: beside a running ates), so that `make bench`
 * can time a shuffle of exactly N open tasks. Bench only: no events are
 * emitted for the seeded rows.
 * usage: bench_seed_tasks TRACKER_DB OPEN_TASKS ASSIGNEE_ID...
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/uuid.h"

#define SEED_CHUNK 50000

static int64_t open_tasks(db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT count(*) FROM tasks WHERE status = 'open'");
    if (!st || db_step(c, st) != 1) return -1;
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_seed_tasks TRACKER_DB OPEN_TASKS ASSIGNEE_ID...\n");
        return 2;
    }
    int64_t want = atoll(argv[2]);
    db_t *db;
    if (db_open(&db, "tracker", argv[1], NULL, NULL) < 0) goto fail_open;
    db_conn_t *c = db_conn(db);
    int64_t have = open_tasks(c);
    if (have < 0) goto fail;
    int64_t i = 0, now = clock_now_ms();
    while (have + i < want) {
        if (db_begin(c) < 0) goto fail;
        for (int k = 0; k < SEED_CHUNK && have + i < want; k++, i++) {
            char id[UUID_LEN], title[64];
            uuid_v7(id);
            snprintf(title, sizeof(title), "bench task %lld", (long long)i);
            sqlite3_stmt *st = db_stmt(c, "INSERT INTO tasks(id, title, jira_id, description, "
                                          "status, assignee_id, created_at, completed_at) "
                                          "VALUES (?1, ?2, NULL, NULL, 'open', ?3, ?4, NULL)");
            if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, title) < 0 ||
                db_bind_text(st, 3, argv[3 + i % (argc - 3)]) < 0 || db_bind_int64(st, 4, now) < 0 ||
                db_step_done(c, st) < 0) {
                db_rollback(c);
                goto fail;
            }
        }
        if (db_commit(c) < 0) goto fail;
    }
    printf("%lld\n", (long long)open_tasks(c));
    db_close(db);
    return 0;
fail:
    db_close(db);
fail_open:
    fprintf(stderr, "bench_seed_tasks: %s\n", diag_last()->message);
    return 1;
}
