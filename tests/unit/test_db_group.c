/*
 * test_db_group: group commit (db_group_run, db_group_submit). Many threads insert rows
 * through shared transactions, some calls fail on purpose after writing:
 * exactly the others' rows are there, each failing call gets its own diag
 * back, the caller's trace id is in force while its work runs. Then, alone:
 * after-commit hooks (kept on success, dropped on failure), a COMMIT that
 * fails (deferred foreign key), work that ends the transaction, nesting.
 * Submitted works: each done runs once, after its row is readable from
 * another connection, with the work's rc and diag; db_close runs what is
 * still queued before it returns.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/db.h"
#include "core/diag.h"
#include "core/log.h"
#include "t.h"

#define THREADS 8
#define CALLS 2000
#define FAILS(i) ((i) % 7 == 3)

static const char *const migrations[] = {
    "CREATE TABLE rows (id INTEGER PRIMARY KEY, thread INTEGER NOT NULL);"
    "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL"
    "  REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
    NULL};

static char g_dir[512];
static db_t *g_db;

typedef struct work {
    int thread, i;
    char trace_seen[64];
} work_t;

typedef struct worker {
    int thread;
    int ok, failed, wrong_rc, wrong_diag, wrong_trace;
} worker_t;

static int insert_row(db_conn_t *tx, int64_t id, int64_t thread)
{
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO rows(id, thread) VALUES (?1, ?2)");
    if (!st || db_bind_int64(st, 1, id) < 0 || db_bind_int64(st, 2, thread) < 0) return -1;
    return db_step_done(tx, st);
}

static int work_insert(db_conn_t *tx, void *arg)
{
    work_t *w = arg;
    snprintf(w->trace_seen, sizeof(w->trace_seen), "%s", log_trace());
    if (insert_row(tx, (int64_t)w->thread * 100000 + w->i, w->thread) < 0) return -1;
    if (FAILS(w->i)) return diag_set(DIAG_CONFLICT, "fail %d/%d", w->thread, w->i);
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    char trace[64], want[64];
    snprintf(trace, sizeof(trace), "trace-%d", wk->thread);
    log_set_trace(trace);
    for (int i = 0; i < CALLS; i++) {
        work_t w = {.thread = wk->thread, .i = i};
        diag_clear();
        int rc = db_group_run(g_db, work_insert, &w);
        if (strcmp(w.trace_seen, trace) != 0) wk->wrong_trace++;
        if (rc != (FAILS(i) ? -1 : 0)) {
            wk->wrong_rc++;
            continue;
        }
        if (rc == 0) {
            wk->ok++;
            continue;
        }
        wk->failed++;
        snprintf(want, sizeof(want), "fail %d/%d", wk->thread, i);
        if (diag_last()->kind != DIAG_CONFLICT || strcmp(diag_last()->message, want) != 0)
            wk->wrong_diag++;
    }
    log_set_trace(NULL);
    return NULL;
}

static int64_t query_int(const char *sql)
{
    db_conn_t *c = db_conn(g_db);
    sqlite3_stmt *st = c ? db_stmt(c, sql) : NULL;
    if (!st) return -999;
    int64_t v = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : -998;
    sqlite3_reset(st);
    return v;
}

static void test_concurrent(void)
{
    pthread_t th[THREADS];
    worker_t wk[THREADS];
    for (int t = 0; t < THREADS; t++) {
        wk[t] = (worker_t){.thread = t + 1};
        T_EQ_INT(pthread_create(&th[t], NULL, worker_main, &wk[t]), 0);
    }
    int ok = 0, failed = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        T_EQ_INT(wk[t].wrong_rc, 0);
        T_EQ_INT(wk[t].wrong_diag, 0);
        T_EQ_INT(wk[t].wrong_trace, 0);
        ok += wk[t].ok;
        failed += wk[t].failed;
    }
    int per_thread_fails = 0;
    for (int i = 0; i < CALLS; i++) per_thread_fails += FAILS(i);
    T_EQ_INT(failed, THREADS * per_thread_fails);
    T_EQ_INT(ok, THREADS * (CALLS - per_thread_fails));
    T_EQ_INT(query_int("SELECT count(*) FROM rows"), ok);
    T_EQ_INT(query_int("SELECT count(*) FROM rows WHERE id % 100000 % 7 = 3"), 0);
    T_EQ_INT(query_int("SELECT count(DISTINCT thread) FROM rows"), THREADS);
}

/* ---- alone ------------------------------------------------------------ */

static void hook(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

typedef struct hook_work {
    atomic_int *counter;
    int64_t id;
    bool fail;
} hook_work_t;

static int work_hook(db_conn_t *tx, void *arg)
{
    hook_work_t *w = arg;
    if (db_after_commit(tx, hook, w->counter) < 0 || insert_row(tx, w->id, 0) < 0) return -1;
    return w->fail ? diag_set(DIAG_VALIDATION, "no") : 0;
}

static int work_dangling(db_conn_t *tx, void *arg)
{
    (void)arg;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO child(id, parent) VALUES (1, 42)");
    return st ? db_step_done(tx, st) : -1;
}

static int work_commits(db_conn_t *tx, void *arg)
{
    (void)arg;
    if (insert_row(tx, 999001, 0) < 0) return -1;
    return db_commit(tx);
}

static int work_nested(db_conn_t *tx, void *arg)
{
    (void)tx;
    return db_group_run(g_db, work_hook, arg);
}

static int work_silent(db_conn_t *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return -1; /* no diag */
}

static void test_alone(void)
{
    atomic_int fired = 0;
    hook_work_t w = {.counter = &fired, .id = 900001};
    T_EQ_INT(db_group_run(g_db, work_hook, &w), 0);
    T_EQ_INT(atomic_load(&fired), 1); /* ran before db_group_run returned */
    w = (hook_work_t){.counter = &fired, .id = 900002, .fail = true};
    T_EQ_INT(db_group_run(g_db, work_hook, &w), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_INT(atomic_load(&fired), 1);
    T_EQ_INT(query_int("SELECT count(*) FROM rows WHERE id IN (900001, 900002)"), 1);

    /* the COMMIT fails: -1 with that diag, nothing kept */
    diag_clear();
    T_EQ_INT(db_group_run(g_db, work_dangling, NULL), -1);
    T_CHECK(diag_last()->kind != DIAG_OK);
    T_CHECK(strstr(diag_last()->message, "FOREIGN KEY") != NULL);
    T_EQ_INT(query_int("SELECT count(*) FROM child"), 0);

    /* work may not commit the shared transaction: refused, rolled back */
    T_EQ_INT(db_group_run(g_db, work_commits, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_INTERNAL);
    T_EQ_INT(query_int("SELECT count(*) FROM rows WHERE id = 999001"), 0);
    T_CHECK(db_group_run(g_db, work_silent, NULL) == -1 && diag_last()->kind == DIAG_INTERNAL);

    /* nesting, and a call from inside a transaction, are refused */
    w = (hook_work_t){.counter = &fired, .id = 900003};
    T_EQ_INT(db_group_run(g_db, work_nested, &w), -1);
    T_EQ_INT(query_int("SELECT count(*) FROM rows WHERE id = 900003"), 0);
    db_conn_t *c = db_conn(g_db);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(db_group_run(g_db, work_hook, &w), -1);
    db_rollback(c);

    /* the connection is usable afterwards */
    w = (hook_work_t){.counter = &fired, .id = 900004};
    T_EQ_INT(db_group_run(g_db, work_hook, &w), 0);
    T_EQ_INT(atomic_load(&fired), 2);
    T_CHECK(!db_in_tx(c));
}

/* ---- submitted -------------------------------------------------------- */

#define SUBMITS 3000

typedef struct sub_work {
    int64_t id;
    bool fail;
    atomic_int *calls;   /* done calls of this work */
    atomic_int *visible; /* dones that saw their row committed */
    atomic_int *right;   /* dones with the expected rc and diag */
} sub_work_t;

static int work_sub(db_conn_t *tx, void *arg)
{
    sub_work_t *w = arg;
    if (insert_row(tx, w->id, 0) < 0) return -1;
    return w->fail ? diag_set(DIAG_CONFLICT, "sub %lld", (long long)w->id) : 0;
}

static void done_sub(void *arg, int rc)
{
    sub_work_t *w = arg;
    atomic_fetch_add(w->calls, 1);
    char want[64];
    snprintf(want, sizeof(want), "sub %lld", (long long)w->id);
    bool ok = w->fail ? rc == -1 && diag_last()->kind == DIAG_CONFLICT &&
                            strcmp(diag_last()->message, want) == 0
                      : rc == 0;
    if (ok) atomic_fetch_add(w->right, 1);
    /* another connection (this thread's own) sees the row once it is done */
    db_conn_t *c = db_conn(g_db);
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT count(*) FROM rows WHERE id = ?1") : NULL;
    if (st && db_bind_int64(st, 1, w->id) == 0 && db_step(c, st) == 1 &&
        sqlite3_column_int64(st, 0) == (w->fail ? 0 : 1))
        atomic_fetch_add(w->visible, 1);
    if (st) sqlite3_reset(st);
}

static void test_submit(db_t *db, int64_t base, bool close_at_once)
{
    static sub_work_t works[SUBMITS];
    atomic_int calls = 0, visible = 0, right = 0;
    int fails = 0;
    for (int i = 0; i < SUBMITS; i++) {
        works[i] = (sub_work_t){.id = base + i, .fail = FAILS(i), .calls = &calls,
                                .visible = &visible, .right = &right};
        fails += works[i].fail;
        T_EQ_INT(db_group_submit(db, work_sub, done_sub, &works[i]), 0);
    }
    if (close_at_once) {
        db_close(db); /* runs the queue before it returns */
    } else {
        for (int i = 0; i < 10000 && atomic_load(&calls) < SUBMITS; i++) usleep(1000);
    }
    T_EQ_INT(atomic_load(&calls), SUBMITS);
    T_EQ_INT(atomic_load(&right), SUBMITS);
    if (!close_at_once) {
        T_EQ_INT(atomic_load(&visible), SUBMITS);
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM rows WHERE id >= %lld AND id < %lld",
                 (long long)base, (long long)base + SUBMITS);
        T_EQ_INT(query_int(sql), SUBMITS - fails);
    }
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "dbgroup") < 0) return 1;
    char path[600];
    snprintf(path, sizeof(path), "%s/group.db", g_dir);
    T_EQ_INT(db_open(&g_db, "group", path, db_core_migrations, migrations), 0);
    if (g_db) {
        test_concurrent();
        test_alone();
        test_submit(g_db, 2000000, false);
        test_submit(g_db, 3000000, true); /* closes g_db */
        g_db = NULL;
        T_EQ_INT(db_open(&g_db, "group", path, db_core_migrations, migrations), 0);
        T_EQ_INT(query_int("SELECT count(*) FROM rows WHERE id >= 3000000"),
                 SUBMITS - (SUBMITS / 7 + (SUBMITS % 7 > 3)));
        db_close(g_db);
    }
    t_rmdir(g_dir);
    return t_done();
}
