/*
 * db: one SQLite file per service under DATA ("DATA/<name>.db"), in WAL mode
 * with synchronous=NORMAL, a busy wait of up to 10 s (short naps first) and
 * foreign keys on. WAL checkpoints run on a thread of each db_t (PASSIVE,
 * woken by a commit that left 1,000 pages in the WAL), never in a commit.
 *
 * A db_t is shared by all threads; each thread gets its own connection
 * (db_conn) on first use, with its own cache of prepared statements keyed by
 * the SQL's address (callers pass literals) and checked by its text. Writes go in transactions begun with BEGIN IMMEDIATE. Every
 * statement is prepared, values are bound: there is no API that splices
 * text into SQL.
 *
 * Migrations: a NULL-terminated array of SQL scripts; script i is migration
 * i+1; the ones above the file's `ates_migrations` version are applied in
 * order at open, each in its own transaction.
 */
#ifndef ATES_DB_H
#define ATES_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

typedef struct db db_t;
typedef struct db_conn db_conn_t;

/* Open (create) `path`, apply `core_migrations` then `migrations` (either may
 * be NULL). The two lists are tracked separately ("core" and "service"). */
int db_open(db_t **out, const char *name, const char *path,
            const char *const *core_migrations, const char *const *migrations);
/* Close every thread's connection. No thread may use `db` after this. */
void db_close(db_t *db);
const char *db_name(const db_t *db); /* the owner (service) name given to db_open */
const char *db_path(const db_t *db);

/* The calling thread's connection to `db` (opened on first use); NULL with
 * a diag when it cannot be opened. */
db_conn_t *db_conn(db_t *db);
db_t *db_conn_db(db_conn_t *c);
sqlite3 *db_conn_handle(db_conn_t *c);

/* Transactions. db_begin is BEGIN IMMEDIATE (waits up to 10 s for the
 * writer lock). db_commit runs the after-commit hooks registered during the
 * transaction, once it has committed; db_rollback drops them. */
int db_begin(db_conn_t *c);
int db_commit(db_conn_t *c);
void db_rollback(db_conn_t *c);
bool db_in_tx(db_conn_t *c);
/* How long a statement on c that needs the write lock held by another
 * connection waits for it: ms (0: not at all, for work that can as well be
 * done later), or -1 for the default, DB_BUSY_MS. Then it fails with
 * DIAG_UNAVAILABLE. */
void db_set_wait(db_conn_t *c, int ms);
/* Savepoints inside a transaction (for one message of a batch). */
int db_savepoint(db_conn_t *c);
int db_release(db_conn_t *c);
void db_rollback_to(db_conn_t *c);
/* Register fn(arg) to run after the current transaction commits (bounded:
 * a few distinct hooks per transaction; the same fn/arg pair is kept once). */
int db_after_commit(db_conn_t *c, void (*fn)(void *), void *arg);

/*
 * Group commit: works queued by any thread run on the db's writer thread
 * (started with the first work, stopped by db_close after the queue is
 * empty). It takes everything queued (up to DB_GROUP_MAX works), runs the
 * works in arrival order in one write transaction on its own connection
 * (whose page cache stays warm between batches), each work in a savepoint
 * of its own, and commits. A work that fails alone is rolled back alone;
 * a BEGIN or COMMIT failure fails every work of the batch.
 *
 * fn(tx, arg) runs on the writer thread: it must use only `tx` (never
 * db_conn, db_group_run or db_group_submit of this db; db_commit there
 * fails and db_rollback is ignored) and thread-safe state, and close the
 * savepoints it opens. The submitter's log service and trace id are set
 * around it, so bus_emit's trace is the submitter's. After-commit hooks it
 * registers run after the shared commit (those of a failed work are
 * dropped).
 *
 * db_group_submit returns at once: done(arg, rc) runs later on the writer
 * thread, after the commit: rc 0 when the work is durable, or -1 with that
 * thread's diag set to why (the work's own failure, or the batch's). done
 * must be quick: the next batch waits for it. -1 (and done never runs)
 * when the work could not be queued.
 *
 * db_group_run queues the work and waits: fn's 0 once it is durable, or -1
 * with the diag as above. Not from inside a transaction.
 */
#define DB_GROUP_MAX 256
typedef int (*db_work_fn)(db_conn_t *tx, void *arg);
typedef void (*db_done_fn)(void *arg, int rc);
int db_group_submit(db_t *db, db_work_fn fn, db_done_fn done, void *arg);
int db_group_run(db_t *db, db_work_fn fn, void *arg);

/* The cached prepared statement for `sql` on this connection, reset and with
 * bindings cleared; NULL with a diag on a prepare error. Do not finalize it. */
sqlite3_stmt *db_stmt(db_conn_t *c, const char *sql);
/* Step a statement that returns no rows (then reset it): 0, or -1 with diag
 * (a UNIQUE violation is DIAG_CONFLICT, anything else DIAG_INTERNAL). */
int db_step_done(db_conn_t *c, sqlite3_stmt *st);
/* sqlite3_step, mapping errors to diag: SQLITE_ROW -> 1, SQLITE_DONE -> 0
 * (statement reset), error -> -1. */
int db_step(db_conn_t *c, sqlite3_stmt *st);
/* Run a script with no parameters (DDL in migrations, pragmas). */
int db_exec(db_conn_t *c, const char *sql);

/* Binding helpers: text NULL binds NULL; all copy (SQLITE_TRANSIENT). */
int db_bind_text(sqlite3_stmt *st, int idx, const char *text);
int db_bind_int64(sqlite3_stmt *st, int idx, int64_t v);
/* Column text as "" when NULL. */
const char *db_col_text(sqlite3_stmt *st, int col);

/* SELECT 1 on this thread's connection: 0 when the file answers. */
int db_ping(db_t *db);

/* The core tables every service file gets: outbox, inbox, inbox_retry,
 * sched_runs, mail_outbox, mail_sent. */
extern const char *const db_core_migrations[];

#endif
