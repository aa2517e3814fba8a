/*
 * bench_sqlite: the SQLite ceilings of this machine through core/db: one
 * transaction per request (a row and an outbox row), and many row pairs
 * batched in one transaction. Prints "name value unit" lines.
 * usage: bench_sqlite DIR [SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"

static const char *const migrations[] = {
    "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL);", NULL};

static int insert_pair(db_conn_t *c, int64_t i)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO items(title) VALUES (?1)");
    if (!st || db_bind_text(st, 1, "a task title of typical length") < 0 || db_step_done(c, st) < 0)
        return -1;
    char id[40];
    snprintf(id, sizeof(id), "ev-%lld", (long long)i);
    st = db_stmt(c, "INSERT INTO outbox(event_id, subject, name, version, body, created_at) "
                    "VALUES (?1, 'bench.subject', 'BenchEvent', 1, ?2, ?3)");
    if (!st || db_bind_text(st, 1, id) < 0 ||
        db_bind_text(st, 2, "{\"event_id\":\"...\",\"data\":{\"title\":\"a task\"}}") < 0 ||
        db_bind_int64(st, 3, clock_now_ms()) < 0)
        return -1;
    return db_step_done(c, st);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_sqlite DIR [SECONDS]\n");
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench.db", argv[1]);
    db_t *db;
    if (db_open(&db, "bench", path, db_core_migrations, migrations) < 0) {
        fprintf(stderr, "bench_sqlite: %s\n", diag_last()->message);
        return 1;
    }
    db_conn_t *c = db_conn(db);
    int64_t n = 0, t0 = clock_monotonic_ms(), limit = (int64_t)(seconds * 1000);
    while (clock_monotonic_ms() - t0 < limit) {
        if (db_begin(c) < 0 || insert_pair(c, n) < 0 || db_commit(c) < 0) goto fail;
        n++;
    }
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("sqlite_tx_per_request %.0f tx/s\n", (double)n / dt);

    int64_t batch = 200000, base = n;
    t0 = clock_monotonic_ms();
    if (db_begin(c) < 0) goto fail;
    for (int64_t i = 0; i < batch; i++)
        if (insert_pair(c, base + i) < 0) goto fail;
    if (db_commit(c) < 0) goto fail;
    dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("sqlite_batched_row_pairs %.0f pairs/s\n", (double)batch / dt);
    db_close(db);
    return 0;
fail:
    fprintf(stderr, "bench_sqlite: %s\n", diag_last()->message);
    db_close(db);
    return 1;
}
