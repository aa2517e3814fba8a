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
/* Savepoints inside a transaction (for one message of a batch). */
int db_savepoint(db_conn_t *c);
int db_release(db_conn_t *c);
void db_rollback_to(db_conn_t *c);
/* Register fn(arg) to run after the current transaction commits (bounded:
 * a few distinct hooks per transaction; the same fn/arg pair is kept once). */
int db_after_commit(db_conn_t *c, void (*fn)(void *), void *arg);

/*
 * Group commit: db_group_run runs fn(tx, arg) inside a write transaction
 * shared with the other threads calling it at the same time, each call's
 * work inside its own savepoint. Returns only once that shared transaction
 * has committed (the work is durable), with fn's 0; or -1 with the diag of
 * that call alone: fn's own failure (its work is rolled back, the others
 * still commit), or the BEGIN/COMMIT failure (then every call gets -1).
 *
 * Leader/follower, no extra thread: the first waiting caller becomes the
 * leader, takes every call queued so far (up to DB_GROUP_MAX), runs them
 * in arrival order on the db's group connection (one for all leaders, so
 * its page cache stays warm between batches), commits and wakes the others; an
 * idle database runs a lone call at once. fn therefore may run on another
 * thread: it must use only `tx` (never db_conn nor a nested db_group_run;
 * db_commit there fails and db_rollback is ignored) and thread-safe state; the
 * caller's log service and trace id are set around it, so bus_emit's trace
 * is the caller's. After-commit hooks fn registers run after the shared
 * commit (those of a failed fn are dropped). fn must close the savepoints
 * it opens. The calling thread must not be inside a transaction.
 */
#define DB_GROUP_MAX 256
typedef int (*db_work_fn)(db_conn_t *tx, void *arg);
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

/* The core tables every service file gets: outbox, inbox, sched_runs,
 * mail_outbox, mail_sent. */
extern const char *const db_core_migrations[];

#endif
