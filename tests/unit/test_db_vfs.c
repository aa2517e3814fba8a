/*
 * test_db_vfs: the VFS that gathers a WAL commit's writes (core/db_vfs.c),
 * on real files. A commit of ~100 pages costs this thread a handful of
 * write calls, not ~200 (counted in /proc/thread-self/io); commits far over
 * the buffer and the unix VFS's 128 KiB write limit, a transaction that
 * spilled frames to the WAL and rolled back, frames rewritten in place
 * (pages changed again after a spill): every time another connection
 * reads exactly what was committed, the integrity check passes, and all
 * of it is there again after the database is closed and reopened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/db.h"
#include "core/diag.h"
#include "t.h"

static const char *const migrations[] = {
    "CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL);", NULL};

static char g_dir[512], g_path[600];

/* write system calls of this thread so far (-1 when unknown) */
static long long thread_syscw(void)
{
    FILE *f = fopen("/proc/thread-self/io", "r");
    if (!f) return -1;
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "syscw: %lld", &v) == 1) break;
    fclose(f);
    return v;
}

/* insert n rows of `size` bytes with ids from `first`, in c's transaction */
static int insert_rows(db_conn_t *c, int first, int n, int size)
{
    static unsigned char pad[8192];
    for (int i = 0; i < n; i++) {
        memset(pad, 'a' + (first + i) % 26, (size_t)size);
        sqlite3_stmt *st = db_stmt(c, "INSERT INTO t(id, pad) VALUES (?1, ?2)");
        if (!st || sqlite3_bind_int64(st, 1, first + i) != SQLITE_OK ||
            sqlite3_bind_blob(st, 2, pad, size, SQLITE_STATIC) != SQLITE_OK ||
            db_step_done(c, st) < 0)
            return -1;
    }
    return 0;
}

/* what another connection (plain SQLite, its own handle) reads */
static void check_other(long long rows, long long bytes, long long checksum)
{
    sqlite3 *h = NULL;
    T_EQ_INT(sqlite3_open_v2(g_path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    T_EQ_INT(sqlite3_prepare_v2(h,
                                "SELECT count(*), total(length(pad)), total(id * unicode(pad)) FROM t",
                                -1, &st, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int64(st, 0), rows);
    T_EQ_INT((long long)sqlite3_column_double(st, 1), bytes);
    T_EQ_INT((long long)sqlite3_column_double(st, 2), checksum);
    sqlite3_finalize(st);
    T_EQ_INT(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static long long g_rows, g_bytes, g_sum;

static void account(int first, int n, int size)
{
    for (int i = 0; i < n; i++) {
        g_rows++;
        g_bytes += size;
        g_sum += (long long)(first + i) * ('a' + (first + i) % 26);
    }
}

static void test_gathered(db_t *db)
{
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(insert_rows(c, 1, 200, 2000), 0); /* ~100 pages */
    long long before = thread_syscw();
    T_EQ_INT(db_commit(c), 0);
    long long writes = thread_syscw() - before;
    account(1, 200, 2000);
    if (before >= 0) {
        fprintf(stderr, "commit of ~100 pages: %lld write calls\n", writes);
        T_CHECK(writes >= 1 && writes <= 12); /* 4120-byte frames, 128 KiB a call */
    }
    check_other(g_rows, g_bytes, g_sum);
}

static void test_big(db_t *db)
{
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(insert_rows(c, 1000, 3000, 3000), 0); /* ~9 MB, over the buffer and the cache */
    T_EQ_INT(db_commit(c), 0);
    account(1000, 3000, 3000);
    check_other(g_rows, g_bytes, g_sum);
}

static void test_spilled_rollback(db_t *db)
{
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_exec(c, "PRAGMA cache_size=20"), 0); /* spill frames before the commit */
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(insert_rows(c, 10000, 500, 3000), 0);
    db_rollback(c);
    check_other(g_rows, g_bytes, g_sum);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(insert_rows(c, 20000, 10, 100), 0);
    T_EQ_INT(db_commit(c), 0);
    account(20000, 10, 100);
    check_other(g_rows, g_bytes, g_sum);
}

static void test_rewritten(db_t *db)
{
    db_conn_t *c = db_conn(db);
    /* pages changed again after they were spilled: frames rewritten in place */
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(insert_rows(c, 30000, 400, 3000), 0);
    T_EQ_INT(db_exec(c, "UPDATE t SET pad = zeroblob(50) WHERE id BETWEEN 30000 AND 30099"), 0);
    T_EQ_INT(db_exec(c, "DELETE FROM t WHERE id BETWEEN 30100 AND 30199"), 0);
    T_EQ_INT(db_commit(c), 0);
    for (int i = 30000; i < 30100; i++) {
        g_rows++;
        g_bytes += 50;
        g_sum += 0; /* unicode() of a zero blob is 0 */
    }
    account(30200, 200, 3000);
    T_EQ_INT(db_exec(c, "PRAGMA cache_size=-16384"), 0);
    check_other(g_rows, g_bytes, g_sum);
}

/* Commits of 100..140 pages: around the buffer's size, so that some commit
 * frame's page arrives when the buffer is full. Each is read back by
 * another connection at once. */
static void test_commit_at_full_buffer(db_t *db)
{
    db_conn_t *c = db_conn(db);
    int id = 70000;
    for (int pages = 100; pages <= 140; pages++) {
        T_EQ_INT(db_begin(c), 0);
        T_EQ_INT(insert_rows(c, id, pages, 3000), 0);
        T_EQ_INT(db_commit(c), 0);
        account(id, pages, 3000);
        id += pages;
        check_other(g_rows, g_bytes, g_sum);
    }
}

/* A transaction that spilled frames to the WAL and rolled back without
 * reading the WAL again (everything checkpointed before it), then commits
 * of another connection at the same WAL offsets, then the first writes
 * again: nothing it wrote before the rollback may reach the file. */
static void test_rollback_then_others(db_t *db)
{
    sqlite3 *a = NULL;
    T_EQ_INT(sqlite3_open(g_path, &a), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(a, "PRAGMA cache_size=10", NULL, NULL, NULL), SQLITE_OK);
    for (int round = 0; round < 4; round++) {
        T_EQ_INT(sqlite3_exec(a, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
        T_EQ_INT(sqlite3_exec(a, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                 "INSERT INTO t(id, pad) SELECT %d + i, randomblob(3000) FROM n",
                 30 + round * 7, 80000 + round * 1000);
        T_EQ_INT(sqlite3_exec(a, sql, NULL, NULL, NULL), SQLITE_OK);
        T_EQ_INT(sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        db_conn_t *c = db_conn(db); /* another connection commits where a's frames were */
        for (int k = 0; k < 3; k++) {
            int first = 90000 + round * 1000 + k * 100;
            T_EQ_INT(db_begin(c), 0);
            T_EQ_INT(insert_rows(c, first, 20, 3000), 0);
            T_EQ_INT(db_commit(c), 0);
            account(first, 20, 3000);
        }
        int id = 99000 + round;
        snprintf(sql, sizeof(sql), "INSERT INTO t(id, pad) VALUES (%d, x'%02x')", id,
                 'a' + id % 26);
        T_EQ_INT(sqlite3_exec(a, sql, NULL, NULL, NULL), SQLITE_OK);
        account(id, 1, 1);
        check_other(g_rows, g_bytes, g_sum);
    }
    sqlite3_close(a);
    check_other(g_rows, g_bytes, g_sum);
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "dbvfs") < 0) return 1;
    snprintf(g_path, sizeof(g_path), "%s/vfs.db", g_dir);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "vfs", g_path, db_core_migrations, migrations), 0);
    if (db) {
        test_gathered(db);
        test_big(db);
        test_spilled_rollback(db);
        test_rewritten(db);
        test_commit_at_full_buffer(db);
        test_rollback_then_others(db);
        db_close(db);
        db = NULL;
        /* all of it is there after a reopen */
        check_other(g_rows, g_bytes, g_sum);
        T_EQ_INT(db_open(&db, "vfs", g_path, db_core_migrations, migrations), 0);
        db_close(db);
        check_other(g_rows, g_bytes, g_sum);
    }
    t_rmdir(g_dir);
    return t_done();
}
