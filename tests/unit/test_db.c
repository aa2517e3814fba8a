/*
 * test_db: migrations (once, in order, atomically), the statement cache,
 * conflict mapping, after-commit hooks, savepoints and per-thread
 * connections, on real SQLite files in a temp dir.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/db.h"
#include "core/diag.h"
#include "t.h"

static char g_dir[512];

static int64_t query_int(db_t *db, const char *sql)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, sql) : NULL;
    if (!st) return -999;
    int64_t v = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : -998;
    sqlite3_reset(st);
    return v;
}

static int64_t version(db_t *db, const char *track)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = db_stmt(c, "SELECT version FROM ates_migrations WHERE track = ?1");
    if (!st || db_bind_text(st, 1, track) < 0) return -999;
    int64_t v = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return v;
}

static int exec_text(db_conn_t *c, const char *sql, const char *text)
{
    sqlite3_stmt *st = db_stmt(c, sql);
    if (!st || db_bind_text(st, 1, text) < 0) return -1;
    return db_step_done(c, st);
}

static void test_migrations(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/mig.db", g_dir);
    /* m2 needs m1's table: applied out of order it fails */
    const char *v2[] = {"CREATE TABLE a (x INTEGER NOT NULL)", "INSERT INTO a VALUES (2)", NULL};
    const char *v3[] = {v2[0], v2[1], "INSERT INTO a VALUES (3)", NULL};
    const char *v4[] = {v2[0], v2[1], v3[2], "CREATE TABLE c (z); INSERT INTO nope VALUES (1)", NULL};

    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v2), 0);
    if (!db) return;
    T_EQ_STR(db_name(db), "mig");
    T_EQ_STR(db_path(db), path);
    T_EQ_INT(db_ping(db), 0);
    int64_t ncore = 0;
    while (db_core_migrations[ncore]) ncore++;
    T_EQ_INT(version(db, "core"), ncore);
    T_EQ_INT(version(db, "service"), 2);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM a"), 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM sched_runs"), 0);
    db_close(db);

    /* reopen: nothing applied again (m1 would fail, m2 would add a row) */
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v2), 0);
    if (!db) return;
    T_EQ_INT(query_int(db, "SELECT count(*) FROM a"), 1);
    db_close(db);

    /* one more migration: only it is applied */
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v3), 0);
    if (!db) return;
    T_EQ_INT(version(db, "service"), 3);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM a"), 2);
    T_EQ_INT(query_int(db, "SELECT sum(x) FROM a"), 5);
    db_close(db);

    /* a failing migration: open fails, the version and the schema stay */
    db = NULL;
    diag_clear();
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v4), -1);
    T_CHECK(db == NULL);
    T_EQ_INT(diag_last()->kind, DIAG_INTERNAL);
    T_CHECK(strstr(diag_last()->message, "#4") != NULL);
    T_CHECK(strstr(diag_last()->message, "nope") != NULL);
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v3), 0);
    if (!db) return;
    T_EQ_INT(version(db, "service"), 3);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'c'"), 0);
    db_close(db);

    /* a file newer than the binary: refused, not read past the list */
    db = NULL;
    T_EQ_INT(db_open(&db, "mig", path, db_core_migrations, v2), -1);
    T_CHECK(db == NULL);
    T_CHECK(strstr(diag_last()->message, "version 3") != NULL);
}

static int g_hook_runs;
static int g_hook_in_tx; /* the hook saw the transaction still open */
static db_conn_t *g_hook_conn;

static void hook(void *arg)
{
    g_hook_runs += *(int *)arg;
    if (db_in_tx(g_hook_conn)) g_hook_in_tx++;
}

static void test_statements(db_t *db)
{
    db_conn_t *c = db_conn(db);
    T_CHECK(c != NULL);
    if (!c) return;
    T_CHECK(db_conn_db(c) == db);
    T_CHECK(db_conn(db) == c);
    T_CHECK(db_conn_handle(c) != NULL);
    T_EQ_INT(db_exec(c, "CREATE TABLE u (k TEXT PRIMARY KEY, v TEXT UNIQUE)"), 0);

    sqlite3_stmt *a = db_stmt(c, "SELECT ?1");
    sqlite3_stmt *b = db_stmt(c, "SELECT ?1");
    sqlite3_stmt *other = db_stmt(c, "SELECT ?1, 2");
    T_CHECK(a != NULL && a == b);
    T_CHECK(other != NULL && other != a);
    /* handed back reset, bindings cleared */
    T_EQ_INT(db_bind_int64(a, 1, 7), 0);
    T_EQ_INT(db_step(c, a), 1);
    T_EQ_INT(sqlite3_column_int64(a, 0), 7);
    a = db_stmt(c, "SELECT ?1");
    T_EQ_INT(db_step(c, a), 1);
    T_EQ_INT(sqlite3_column_type(a, 0), SQLITE_NULL);
    T_EQ_STR(db_col_text(a, 0), "");
    sqlite3_reset(a);
    diag_clear();
    T_CHECK(db_stmt(c, "SELEKT nonsense") == NULL);
    T_EQ_INT(diag_last()->kind, DIAG_INTERNAL);

    T_EQ_INT(exec_text(c, "INSERT INTO u (k, v) VALUES (?1, ?1)", "one"), 0);
    diag_clear();
    T_EQ_INT(exec_text(c, "INSERT INTO u (k, v) VALUES (?1, ?1)", "one"), -1);
    T_EQ_INT(diag_last()->kind, DIAG_CONFLICT);
    diag_clear();
    T_EQ_INT(exec_text(c, "INSERT INTO u (k, v) VALUES (?1 || 'x', 'one')", "one"), -1);
    T_EQ_INT(diag_last()->kind, DIAG_CONFLICT); /* a UNIQUE column, not the key */
    diag_clear();
    T_EQ_INT(exec_text(c, "INSERT INTO u (k, v) VALUES (NULL, ?1)", "two"), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO nowhere VALUES (?1)", "x"), -1);
    T_EQ_INT(diag_last()->kind, DIAG_INTERNAL);
}

static void test_transactions(db_t *db)
{
    db_conn_t *c = db_conn(db);
    g_hook_conn = c;
    int one = 1, ten = 10;
    T_EQ_INT(db_exec(c, "CREATE TABLE t (v TEXT)"), 0);

    T_EQ_INT(db_begin(c), 0);
    T_CHECK(db_in_tx(c));
    T_EQ_INT(db_begin(c), -1); /* no nesting */
    T_EQ_INT(db_after_commit(c, hook, &one), 0);
    T_EQ_INT(db_after_commit(c, hook, &one), 0); /* kept once */
    T_EQ_INT(db_after_commit(c, hook, &ten), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO t VALUES (?1)", "committed"), 0);
    T_EQ_INT(g_hook_runs, 0);
    T_EQ_INT(db_commit(c), 0);
    T_EQ_INT(g_hook_runs, 11);
    T_EQ_INT(g_hook_in_tx, 0);
    T_CHECK(!db_in_tx(c));

    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(db_after_commit(c, hook, &one), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO t VALUES (?1)", "rolled back"), 0);
    db_rollback(c);
    T_EQ_INT(g_hook_runs, 11);
    T_EQ_INT(db_begin(c), 0); /* the dropped hook does not come back */
    T_EQ_INT(db_commit(c), 0);
    T_EQ_INT(g_hook_runs, 11);
    T_EQ_INT(db_commit(c), -1); /* no transaction */

    /* a savepoint rolled back keeps the outer work */
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO t VALUES (?1)", "outer"), 0);
    T_EQ_INT(db_savepoint(c), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO t VALUES (?1)", "inner dropped"), 0);
    db_rollback_to(c);
    T_CHECK(db_in_tx(c));
    T_EQ_INT(db_savepoint(c), 0);
    T_EQ_INT(exec_text(c, "INSERT INTO t VALUES (?1)", "inner kept"), 0);
    T_EQ_INT(db_release(c), 0);
    T_EQ_INT(db_commit(c), 0);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM t"), 3);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM t WHERE v IN ('committed', 'outer', 'inner kept')"), 3);
}

/* Both threads hold their connections at once (the barrier), so distinct
 * pointers really are distinct connections, not one address reused. */
static pthread_barrier_t both_open;

typedef struct thread_arg {
    db_t *db;
    db_conn_t *conn;
    int insert_rc;
} thread_arg_t;

static void *in_thread(void *p)
{
    thread_arg_t *a = p;
    a->conn = db_conn(a->db);
    pthread_barrier_wait(&both_open);
    a->insert_rc = -1;
    if (a->conn && db_begin(a->conn) == 0) {
        a->insert_rc = exec_text(a->conn, "INSERT INTO t VALUES (?1)", "from thread");
        if (db_commit(a->conn) < 0) a->insert_rc = -1;
    }
    return NULL;
}

static void test_threads(db_t *db)
{
    thread_arg_t a = {.db = db}, b = {.db = db};
    pthread_t ta, tb;
    pthread_barrier_init(&both_open, NULL, 2);
    T_EQ_INT(pthread_create(&ta, NULL, in_thread, &a), 0);
    T_EQ_INT(pthread_create(&tb, NULL, in_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&both_open);
    T_CHECK(a.conn != NULL && b.conn != NULL);
    T_CHECK(a.conn != b.conn);
    T_CHECK(a.conn != db_conn(db) && b.conn != db_conn(db));
    T_EQ_INT(a.insert_rc, 0);
    T_EQ_INT(b.insert_rc, 0);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM t WHERE v = 'from thread'"), 2);
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "db") < 0) return 1;
    test_migrations();

    char path[600];
    snprintf(path, sizeof(path), "%s/work.db", g_dir);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "work", path, db_core_migrations, NULL), 0);
    if (db) {
        test_statements(db);
        test_transactions(db);
        test_threads(db);
        db_close(db);
    }

    T_EQ_INT(t_rmdir(g_dir), 0);
    return t_done();
}
