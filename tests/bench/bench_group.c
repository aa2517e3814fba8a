/*
 * bench_group: write throughput with many concurrent writers (as many HTTP
 * connections), each call a row plus an outbox row: one transaction per
 * call (db_begin/db_commit on each thread's connection), then group commit
 * (db_group_run). Prints "name value unit" lines.
 * usage: bench_group DIR [SECONDS] [THREADS]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"

#define MAX_THREADS 256

static const char *const migrations[] = {
    "CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL);", NULL};

static db_t *g_db;
static atomic_llong g_seq, g_done, g_errors;
static atomic_bool g_stop;
static bool g_group;

static int insert_pair(db_conn_t *c, void *arg)
{
    (void)arg;
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO items(title) VALUES (?1)");
    if (!st || db_bind_text(st, 1, "a task title of typical length") < 0 || db_step_done(c, st) < 0)
        return -1;
    char id[40];
    snprintf(id, sizeof(id), "ev-%lld", (long long)atomic_fetch_add(&g_seq, 1));
    st = db_stmt(c, "INSERT INTO outbox(event_id, subject, name, version, body, created_at) "
                    "VALUES (?1, 'bench.subject', 'BenchEvent', 1, ?2, ?3)");
    if (!st || db_bind_text(st, 1, id) < 0 ||
        db_bind_text(st, 2, "{\"event_id\":\"...\",\"data\":{\"title\":\"a task\"}}") < 0 ||
        db_bind_int64(st, 3, clock_now_ms()) < 0)
        return -1;
    return db_step_done(c, st);
}

static int one_tx(void)
{
    db_conn_t *c = db_conn(g_db);
    if (!c || db_begin(c) < 0) return -1;
    if (insert_pair(c, NULL) < 0) {
        db_rollback(c);
        return -1;
    }
    return db_commit(c);
}

static void *writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        int rc = g_group ? db_group_run(g_db, insert_pair, NULL) : one_tx();
        atomic_fetch_add(rc == 0 ? &g_done : &g_errors, 1);
    }
    return NULL;
}

static double run(int threads, double seconds)
{
    pthread_t th[MAX_THREADS];
    atomic_store(&g_stop, false);
    atomic_store(&g_done, 0);
    atomic_store(&g_errors, 0);
    int64_t t0 = clock_monotonic_ms();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, writer, NULL);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&g_stop, true);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    if (atomic_load(&g_errors))
        fprintf(stderr, "bench_group: %lld failed calls\n", (long long)atomic_load(&g_errors));
    return (double)atomic_load(&g_done) / dt;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_group DIR [SECONDS] [THREADS]\n");
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    int threads = argc > 3 ? atoi(argv[3]) : 64;
    if (threads < 1 || threads > MAX_THREADS) threads = 64;
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench_group.db", argv[1]);
    if (db_open(&g_db, "bench", path, db_core_migrations, migrations) < 0) {
        fprintf(stderr, "bench_group: %s\n", diag_last()->message);
        return 1;
    }
    atomic_store(&g_seq, (long long)clock_now_ms() * 1000); /* ids unique across runs on DIR */
    g_group = false;
    printf("sqlite_tx_per_call_%dthreads %.0f tx/s\n", threads, run(threads, seconds));
    fflush(stdout);
    g_group = true;
    printf("sqlite_group_commit %.0f tx/s (%d threads)\n", run(threads, seconds), threads);
    db_close(g_db);
    return 0;
}
