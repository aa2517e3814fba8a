/*
 * bench_trim_tasks: leave at most OPEN_TASKS open tasks in the tracker's
 * database by marking the newest surplus ones done, straight into its
 * SQLite file (WAL: beside a running ates), so that a later bench can time
 * a shuffle of exactly N open tasks after an earlier one seeded more
 * (bench_seed_tasks tops up to N; this trims down to it). Bench only: no
 * TaskCompleted is emitted for the trimmed rows. Prints the open tasks left.
 * usage: bench_trim_tasks TRACKER_DB OPEN_TASKS
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"

#define TRIM_CHUNK 50000

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
    char *end = NULL;
    long long want = argc == 3 ? strtoll(argv[2], &end, 10) : -1;
    if (argc != 3 || end == argv[2] || *end || want < 0) {
        fprintf(stderr, "usage: bench_trim_tasks TRACKER_DB OPEN_TASKS\n");
        return 2;
    }
    db_t *db;
    if (db_open(&db, "tracker", argv[1], NULL, NULL) < 0) goto fail_open;
    db_conn_t *c = db_conn(db);
    int64_t have = c ? open_tasks(c) : -1;
    if (have < 0) goto fail;
    while (have > want) {
        int64_t n = have - want < TRIM_CHUNK ? have - want : TRIM_CHUNK;
        if (db_begin(c) < 0) goto fail;
        sqlite3_stmt *st = db_stmt(c, "UPDATE tasks SET status = 'done', completed_at = ?1 "
                                      "WHERE id IN (SELECT id FROM tasks WHERE status = 'open' "
                                      "ORDER BY id DESC LIMIT ?2)");
        if (!st || db_bind_int64(st, 1, clock_now_ms()) < 0 || db_bind_int64(st, 2, n) < 0 ||
            db_step_done(c, st) < 0 || db_commit(c) < 0) {
            if (db_in_tx(c)) db_rollback(c);
            goto fail;
        }
        have -= n;
    }
    printf("%lld\n", (long long)open_tasks(c));
    db_close(db);
    return 0;
fail:
    db_close(db);
fail_open:
    fprintf(stderr, "bench_trim_tasks: %s\n", diag_last()->message);
    return 1;
}
