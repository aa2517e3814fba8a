/*
 * db: SQLite files with a connection and a statement cache per thread
 * (see db.h).
 */
#include "db.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db_vfs.h"
#include "diag.h"
#include "log.h"
#include "mail.h"

#define DB_STMT_CACHE 256 /* distinct SQL texts per connection */
#define DB_HOOKS 16       /* after-commit hooks per transaction */
#define DB_BUSY_MS 10000      /* a writer waits this long for the lock, then fails */
#define DB_BUSY_SHORT_US 100  /* first waits: a short transaction of another thread */
#define DB_BUSY_SHORT_TRIES 50
#define DB_BUSY_LONG_US 1000  /* after that: a long one (a close, a shuffle) */
#define DB_CKPT_PAGES 1000    /* new WAL pages that wake the checkpointer (SQLite's autocheckpoint) */
#define DB_CKPT_RESTART 4000  /* a WAL this long after a passive checkpoint is restarted */
#define DB_CKPT_RESTART_WAIT_MS 20 /* ... if writers and older readers let it within this */
#define DB_CKPT_IDLE_MS 5000  /* and a look this often, for commits of other processes */

typedef struct db_cached {
    const char *key; /* the caller's pointer: the slot is chosen by it */
    const char *sql; /* owned copy, compared on a hit */
    sqlite3_stmt *st;
} db_cached_t;

struct db_conn {
    db_t *db;
    sqlite3 *h;
    db_cached_t cache[DB_STMT_CACHE]; /* open addressing by the SQL's address */
    int ncache;
    bool in_tx;
    bool in_group; /* running a db_group_run work: no commit/rollback */
    int savepoints; /* depth of open savepoints */
    int64_t busy_since_ms; /* when the current wait for the lock began */
    int wait_ms;           /* how long a writer waits for the lock (db_set_wait) */
    struct {
        void (*fn)(void *);
        void *arg;
    } hooks[DB_HOOKS];
    int nhooks;
    db_conn_t *next; /* in db->conns */
};

struct db {
    char name[64];
    char path[PATH_MAX];
    pthread_key_t key;   /* this thread's db_conn_t */
    pthread_mutex_t lock;/* guards conns */
    db_conn_t *conns;
    /* Group commit: works queued for the writer thread, which runs them
     * in batches on its own connection (see db_group_submit). */
    pthread_mutex_t glock;       /* guards the queue and the writer's state */
    pthread_cond_t gcond;        /* the writer waits here for work */
    struct db_group_item *ghead, *gtail;
    bool gstarted, gstop, gidle; /* gidle: the writer waits on gcond */
    pthread_t gthread;
    db_conn_t *gconn;            /* the writer's connection */
    /* The checkpointer: a thread that copies the WAL back into the file
     * (PASSIVE, never blocking a writer) when a commit left more than
     * DB_CKPT_PAGES in it, instead of the committing thread doing it
     * inside its commit (8% of a shuffle's time, more of its p99). */
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    bool ckpt_wanted, ckpt_stop, ckpt_running;
    pthread_t ckpt_thread;
    _Atomic int ckpt_from; /* WAL pages the last checkpoint left; new ones count from here */
};

/* One queued work: malloc'd for db_group_submit (freed by the writer after
 * done), on the caller's stack for db_group_run (which waits for `done`). */
typedef struct db_group_item {
    db_work_fn fn;
    db_done_fn done_fn; /* NULL for db_group_run */
    void *arg;
    int rc;
    bool done;           /* db_group_run: set under glock */
    pthread_cond_t cond; /* db_group_run: done */
    diag_t diag;         /* the call's own failure */
    char service[32], trace[64];
    struct db_group_item *next;
} db_group_item_t;

const char *const db_core_migrations[] = {
    "CREATE TABLE outbox ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  event_id TEXT NOT NULL UNIQUE,"
    "  subject TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE inbox ("
    "  event_id TEXT PRIMARY KEY,"
    "  subject TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE sched_runs ("
    "  job TEXT PRIMARY KEY,"
    "  last_day TEXT NOT NULL,"
    "  last_run_at INTEGER NOT NULL) WITHOUT ROWID;",
    mail_core_migration, /* mail_outbox, mail_sent (core/mail_queue.c) */
    /* 3: the outbox without the unique index on event_id. No query reads
     * by it and UUIDv7 ids do not collide; every emitted event paid one
     * B-tree insert for it, and every relay delete one more removal. The
     * rows waiting are kept with their seq (and the sequence with them). */
    "CREATE TABLE outbox_v3 ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  event_id TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "INSERT INTO outbox_v3 SELECT seq, event_id, subject, name, version, body, created_at "
    "  FROM outbox ORDER BY seq;"
    "DROP TABLE outbox;"
    "ALTER TABLE outbox_v3 RENAME TO outbox;",
    /* 4: events whose handler failed, kept to be tried again after a
     * backoff (core/bus_consumer.c) while their stream goes on. */
    "CREATE TABLE inbox_retry ("
    "  event_id TEXT PRIMARY KEY,"
    "  stream TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  stream_seq INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  next_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX inbox_retry_due ON inbox_retry(stream, next_at);",
    NULL,
};

static int sql_error(sqlite3 *h, const char *what)
{
    int code = sqlite3_extended_errcode(h);
    if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
        return diag_set(DIAG_CONFLICT, "%s: %s", what, sqlite3_errmsg(h));
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return diag_set(DIAG_UNAVAILABLE, "%s: database busy", what);
    return diag_set(DIAG_INTERNAL, "%s: %s", what, sqlite3_errmsg(h));
}

static void conn_free(db_conn_t *c)
{
    for (int i = 0; i < DB_STMT_CACHE; i++) {
        if (c->cache[i].st) sqlite3_finalize(c->cache[i].st);
        free((void *)c->cache[i].sql);
    }
    sqlite3_close_v2(c->h);
    free(c);
}

/* Thread exit: drop this thread's connection. */
static void conn_destroy(void *p)
{
    db_conn_t *c = p;
    db_t *db = c->db;
    pthread_mutex_lock(&db->lock);
    for (db_conn_t **pp = &db->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&db->lock);
    conn_free(c);
}

/* Waiting for another connection's write lock. SQLite's own busy timeout
 * sleeps 1, 2, 5, 10... ms, far longer than the other side usually holds
 * the lock (a relay's delete, a consumer's batch: well under a ms), so two
 * writers of one file would take turns at a few hundred commits a second.
 * Here: 100 us naps first, then 1 ms ones, DB_BUSY_MS at most. */
static int busy_wait(void *arg, int count)
{
    db_conn_t *c = arg;
    if (c->wait_ms <= 0) return 0;
    int64_t now = clock_monotonic_ms();
    if (count == 0) c->busy_since_ms = now;
    if (now - c->busy_since_ms >= c->wait_ms) return 0;
    long us = count < DB_BUSY_SHORT_TRIES ? DB_BUSY_SHORT_US : DB_BUSY_LONG_US;
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

/* After each commit, in the committing thread: wake the checkpointer when
 * DB_CKPT_PAGES pages were added to the WAL since its last checkpoint (not
 * whenever the WAL is that long: a WAL that was not restarted stays long,
 * and every commit would start another checkpoint, each with its syncs). */
static int wal_hook(void *arg, sqlite3 *h, const char *schema, int pages)
{
    (void)h;
    (void)schema;
    db_t *db = arg;
    int from = atomic_load_explicit(&db->ckpt_from, memory_order_relaxed);
    if (pages < from) { /* the WAL was restarted: its pages count from 0 */
        atomic_store_explicit(&db->ckpt_from, 0, memory_order_relaxed);
        from = 0;
    }
    if (pages - from >= DB_CKPT_PAGES) {
        pthread_mutex_lock(&db->ckpt_lock);
        if (!db->ckpt_wanted) {
            db->ckpt_wanted = true;
            pthread_cond_signal(&db->ckpt_cond);
        }
        pthread_mutex_unlock(&db->ckpt_lock);
    }
    return SQLITE_OK;
}

/* One round: a passive checkpoint, which never waits. Under a steady
 * stream of commits it never catches up with the last one, and SQLite
 * restarts a WAL only after a checkpoint that did, so the WAL would grow
 * without end (175 MB after 30 s of creates, every page lookup walking
 * all its index blocks). Past DB_CKPT_RESTART pages, a RESTART checkpoint
 * follows: it holds new writers off while it copies what the passive one
 * left, a few frames, and waits for readers of older snapshots; the next
 * commit then writes from the WAL's start. It waits DB_CKPT_RESTART_WAIT_MS
 * at most, for the lock and for those readers: a long read must not hold
 * every writer (it holds only the restart, until a later round). */
static void checkpoint(db_t *db, db_conn_t *c)
{
    int wal = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal, &done);
    if (rc == SQLITE_OK && wal >= DB_CKPT_RESTART) {
        db_set_wait(c, DB_CKPT_RESTART_WAIT_MS);
        rc = sqlite3_wal_checkpoint_v2(c->h, NULL, SQLITE_CHECKPOINT_RESTART, &wal, &done);
        db_set_wait(c, -1);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
        log_warn("checkpoint of %s: %s", db->path, sqlite3_errmsg(c->h));
    /* after a restart, the next commit's count is below this: the hook
     * then counts from 0 */
    atomic_store_explicit(&db->ckpt_from, wal > 0 ? wal : 0, memory_order_relaxed);
}

static void *ckpt_main(void *arg)
{
    db_t *db = arg;
    log_set_service(db->name);
    char name[16]; /* for top -H and perf */
    snprintf(name, sizeof(name), "k:%.13s", db->name);
    pthread_setname_np(pthread_self(), name);
    db_conn_t *c = db_conn(db);
    pthread_mutex_lock(&db->ckpt_lock);
    while (c && !db->ckpt_stop) {
        if (!db->ckpt_wanted) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += DB_CKPT_IDLE_MS / 1000;
            pthread_cond_timedwait(&db->ckpt_cond, &db->ckpt_lock, &until);
            if (db->ckpt_stop) break;
        }
        db->ckpt_wanted = false;
        pthread_mutex_unlock(&db->ckpt_lock);
        checkpoint(db, c);
        pthread_mutex_lock(&db->ckpt_lock);
    }
    pthread_mutex_unlock(&db->ckpt_lock);
    if (!c) log_diag(LOG_WARN, "checkpointer: no connection; SQLite checkpoints in commits");
    return NULL;
}

/* A connection whose checkpoints the checkpointer thread does. */
static void leave_checkpoints(db_t *db, sqlite3 *h)
{
    sqlite3_wal_autocheckpoint(h, 0);
    sqlite3_wal_hook(h, wal_hook, db);
}

/* Process-wide SQLite settings, before its first use: no allocation
 * statistics (a global mutex taken by every malloc of every connection). */
static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    db_vfs_register(); /* a WAL commit in few writes (db_vfs.c) */
}
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static db_conn_t *conn_open(db_t *db, bool mine)
{
    db_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    c->db = db;
    c->wait_ms = DB_BUSY_MS;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(db->path, &c->h, flags, NULL) != SQLITE_OK) {
        diag_set(DIAG_UNAVAILABLE, "open %s: %s", db->path, c->h ? sqlite3_errmsg(c->h) : "?");
        sqlite3_close_v2(c->h);
        free(c);
        return NULL;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_handler(c->h, busy_wait, c);
    if (db->ckpt_running) leave_checkpoints(db, c->h); /* until then, SQLite in commits */
    /* temp_store=MEMORY: the statement journals of savepoints (one per
     * consumed event) stay off the disk; cache_size: up to 16 MiB of pages
     * per connection (SQLite's default, 2 MiB, re-reads a table of 100k
     * tasks from the page cache of the kernel at every shuffle);
     * secure_delete=FAST: Debian builds SQLite with secure delete on, which
     * zeroes every freed page and writes it, so the relay's deletes of
     * published outbox rows cost a page write each; FAST still zeroes
     * deleted cells on the pages a change writes anyway */
    if (db_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                   "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384; "
                   "PRAGMA secure_delete=FAST;") < 0) {
        conn_free(c);
        return NULL;
    }
    pthread_mutex_lock(&db->lock);
    c->next = db->conns;
    db->conns = c;
    pthread_mutex_unlock(&db->lock);
    if (mine) pthread_setspecific(db->key, c);
    return c;
}

db_conn_t *db_conn(db_t *db)
{
    db_conn_t *c = pthread_getspecific(db->key);
    return c ? c : conn_open(db, true);
}

db_t *db_conn_db(db_conn_t *c) { return c->db; }
sqlite3 *db_conn_handle(db_conn_t *c) { return c->h; }
const char *db_name(const db_t *db) { return db->name; }
const char *db_path(const db_t *db) { return db->path; }

int db_exec(db_conn_t *c, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(c->h, sql, NULL, NULL, &err) != SQLITE_OK) {
        int rc = sql_error(c->h, "exec");
        sqlite3_free(err);
        return rc;
    }
    return 0;
}

/* The slot is chosen by the text's address, not its bytes: callers pass
 * literals, so hashing a pointer finds the statement without reading the
 * SQL; a hit is still confirmed by comparing the text, so a buffer reused
 * for another statement is only a miss. */
static size_t hash_sql(const char *s)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 32);
}

sqlite3_stmt *db_stmt(db_conn_t *c, const char *sql)
{
    size_t i = hash_sql(sql) % DB_STMT_CACHE;
    for (int probe = 0; probe < DB_STMT_CACHE; probe++, i = (i + 1) % DB_STMT_CACHE) {
        db_cached_t *e = &c->cache[i];
        if (e->st && e->key == sql && strcmp(e->sql, sql) == 0) {
            sqlite3_reset(e->st);
            sqlite3_clear_bindings(e->st);
            return e->st;
        }
        if (!e->st) {
            if (c->ncache >= DB_STMT_CACHE * 3 / 4) {
                diag_set(DIAG_INTERNAL, "statement cache full (%d distinct statements)", c->ncache);
                return NULL;
            }
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
                sql_error(c->h, "prepare");
                return NULL;
            }
            char *copy = strdup(sql);
            if (!copy) {
                sqlite3_finalize(st);
                diag_set(DIAG_INTERNAL, "out of memory");
                return NULL;
            }
            e->key = sql;
            e->sql = copy;
            e->st = st;
            c->ncache++;
            return st;
        }
    }
    diag_set(DIAG_INTERNAL, "statement cache full");
    return NULL;
}

int db_step(db_conn_t *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    sql_error(c->h, "step");
    sqlite3_reset(st);
    return -1;
}

int db_step_done(db_conn_t *c, sqlite3_stmt *st)
{
    int rc = db_step(c, st);
    if (rc == 1) {
        sqlite3_reset(st);
        return 0;
    }
    return rc;
}

int db_bind_text(sqlite3_stmt *st, int idx, const char *text)
{
    int rc = text ? sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
    return rc == SQLITE_OK ? 0 : diag_set(DIAG_INTERNAL, "bind %d failed (%d)", idx, rc);
}

int db_bind_int64(sqlite3_stmt *st, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(st, idx, v);
    return rc == SQLITE_OK ? 0 : diag_set(DIAG_INTERNAL, "bind %d failed (%d)", idx, rc);
}

const char *db_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

int db_begin(db_conn_t *c)
{
    if (c->in_tx) return diag_set(DIAG_INTERNAL, "db_begin: already in a transaction");
    sqlite3_stmt *st = db_stmt(c, "BEGIN IMMEDIATE");
    if (!st || db_step_done(c, st) < 0) return -1;
    c->in_tx = true;
    c->nhooks = 0;
    c->savepoints = 0;
    return 0;
}

int db_commit(db_conn_t *c)
{
    if (!c->in_tx) return diag_set(DIAG_INTERNAL, "db_commit: no transaction");
    if (c->in_group) return diag_set(DIAG_INTERNAL, "db_commit inside db_group_run work");
    sqlite3_stmt *st = db_stmt(c, "COMMIT");
    if (!st || db_step_done(c, st) < 0) {
        db_rollback(c);
        return -1;
    }
    c->in_tx = false;
    int n = c->nhooks;
    c->nhooks = 0;
    for (int i = 0; i < n; i++) c->hooks[i].fn(c->hooks[i].arg);
    return 0;
}

void db_rollback(db_conn_t *c)
{
    if (c->in_group) { /* the shared transaction is not the work's to end */
        log_error("db_rollback inside db_group_run work ignored");
        return;
    }
    if (!sqlite3_get_autocommit(c->h)) {
        sqlite3_stmt *st = db_stmt(c, "ROLLBACK");
        if (!st || db_step_done(c, st) < 0) log_diag(LOG_ERROR, "rollback");
    }
    c->in_tx = false;
    c->nhooks = 0;
    c->savepoints = 0;
}

void db_set_wait(db_conn_t *c, int ms) { c->wait_ms = ms < 0 ? DB_BUSY_MS : ms; }

bool db_in_tx(db_conn_t *c) { return c->in_tx; }

int db_savepoint(db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "SAVEPOINT ates_sp");
    if (!st || db_step_done(c, st) < 0) return -1;
    c->savepoints++;
    return 0;
}

int db_release(db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "RELEASE ates_sp");
    if (!st || db_step_done(c, st) < 0) return -1;
    c->savepoints--;
    return 0;
}

void db_rollback_to(db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "ROLLBACK TO ates_sp");
    if (!st || db_step_done(c, st) < 0) log_diag(LOG_ERROR, "rollback to savepoint");
    st = db_stmt(c, "RELEASE ates_sp");
    if (!st || db_step_done(c, st) < 0) log_diag(LOG_ERROR, "release savepoint");
    c->savepoints--;
}

int db_after_commit(db_conn_t *c, void (*fn)(void *), void *arg)
{
    for (int i = 0; i < c->nhooks; i++)
        if (c->hooks[i].fn == fn && c->hooks[i].arg == arg) return 0;
    if (c->nhooks >= DB_HOOKS) return diag_set(DIAG_INTERNAL, "too many after-commit hooks");
    c->hooks[c->nhooks].fn = fn;
    c->hooks[c->nhooks].arg = arg;
    c->nhooks++;
    return 0;
}

int db_ping(db_t *db)
{
    db_conn_t *c = db_conn(db);
    if (!c) return -1;
    sqlite3_stmt *st = db_stmt(c, "SELECT 1");
    if (!st) return -1;
    int rc = db_step(c, st);
    sqlite3_reset(st);
    return rc == 1 ? 0 : -1;
}

/* Apply the scripts of `track` above its recorded version, one transaction each. */
static int migrate(db_conn_t *c, const char *track, const char *const *scripts)
{
    if (!scripts) return 0;
    sqlite3_stmt *st = db_stmt(c, "SELECT version FROM ates_migrations WHERE track = ?1");
    if (!st || db_bind_text(st, 1, track) < 0) return -1;
    int64_t have = 0;
    int rc = db_step(c, st);
    if (rc < 0) return -1;
    if (rc == 1) have = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);

    int64_t count = 0;
    while (scripts[count]) count++;
    if (have > count) /* never index past the list: an older binary on a newer file */
        return diag_set(DIAG_INTERNAL, "%s: %s migrations are at version %lld, this build knows %lld",
                        c->db->name, track, (long long)have, (long long)count);

    for (int64_t i = have; i < count; i++) {
        if (db_begin(c) < 0) return -1;
        if (db_exec(c, scripts[i]) < 0) {
            char cause[sizeof(diag_last()->message)]; /* diag_set must not read its own buffer */
            snprintf(cause, sizeof(cause), "%s", diag_last()->message);
            db_rollback(c);
            return diag_set(DIAG_INTERNAL, "%s migration %s #%lld: %s", c->db->name, track,
                            (long long)i + 1, cause);
        }
        st = db_stmt(c, "INSERT INTO ates_migrations(track, version) VALUES (?1, ?2) "
                        "ON CONFLICT(track) DO UPDATE SET version = excluded.version");
        if (!st || db_bind_text(st, 1, track) < 0 || db_bind_int64(st, 2, i + 1) < 0 ||
            db_step_done(c, st) < 0 || db_commit(c) < 0) {
            db_rollback(c);
            return -1;
        }
    }
    return 0;
}

int db_open(db_t **out, const char *name, const char *path, const char *const *core_migrations,
            const char *const *migrations)
{
    pthread_once(&sqlite_once, sqlite_setup);
    db_t *db = calloc(1, sizeof(*db));
    if (!db) return diag_set(DIAG_INTERNAL, "out of memory");
    snprintf(db->name, sizeof(db->name), "%s", name);
    snprintf(db->path, sizeof(db->path), "%s", path);
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->glock, NULL);
    pthread_cond_init(&db->gcond, NULL);
    pthread_mutex_init(&db->ckpt_lock, NULL);
    pthread_cond_init(&db->ckpt_cond, NULL);
    if (pthread_key_create(&db->key, conn_destroy) != 0) {
        pthread_cond_destroy(&db->ckpt_cond);
        pthread_mutex_destroy(&db->ckpt_lock);
        pthread_cond_destroy(&db->gcond);
        pthread_mutex_destroy(&db->glock);
        pthread_mutex_destroy(&db->lock);
        free(db);
        return diag_set(DIAG_INTERNAL, "pthread_key_create failed");
    }
    db_conn_t *c = db_conn(db);
    if (!c || db_exec(c, "CREATE TABLE IF NOT EXISTS ates_migrations ("
                         " track TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID") < 0 ||
        migrate(c, "core", core_migrations) < 0 || migrate(c, "service", migrations) < 0) {
        db_close(db);
        return -1;
    }
    /* Connections opened from here on leave checkpoints to the thread; the
     * migrating one (this thread's) keeps SQLite's own until it is gone. */
    db->ckpt_running = true; /* before the thread starts: it reads it in conn_open */
    if (pthread_create(&db->ckpt_thread, NULL, ckpt_main, db) != 0) db->ckpt_running = false;
    if (db->ckpt_running) leave_checkpoints(db, c->h);
    *out = db;
    return 0;
}

static void writer_stop(db_t *db);

void db_close(db_t *db)
{
    if (!db) return;
    writer_stop(db); /* runs what is queued first */
    if (db->ckpt_running) {
        pthread_mutex_lock(&db->ckpt_lock);
        db->ckpt_stop = true;
        pthread_cond_signal(&db->ckpt_cond);
        pthread_mutex_unlock(&db->ckpt_lock);
        pthread_join(db->ckpt_thread, NULL);
        db->ckpt_running = false;
    }
    pthread_mutex_lock(&db->lock);
    db_conn_t *c = db->conns;
    db->conns = NULL;
    pthread_mutex_unlock(&db->lock);
    while (c) {
        db_conn_t *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_setspecific(db->key, NULL);
    pthread_key_delete(db->key);
    pthread_cond_destroy(&db->ckpt_cond);
    pthread_mutex_destroy(&db->ckpt_lock);
    pthread_cond_destroy(&db->gcond);
    pthread_mutex_destroy(&db->glock);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

/* ---- group commit ----------------------------------------------------- */

static void item_fail(db_group_item_t *it)
{
    it->rc = -1;
    it->diag = *diag_last();
    if (it->diag.kind == DIAG_OK) {
        it->diag.kind = DIAG_INTERNAL;
        it->diag.file = __FILE__;
        it->diag.line = __LINE__;
        snprintf(it->diag.message, sizeof(it->diag.message), "group work failed without a diag");
    }
}

/* Every call of the batch fails with the calling thread's diag, except the
 * ones that already failed on their own (they keep their diag). */
static void batch_fail(db_group_item_t **items, int n)
{
    for (int i = 0; i < n; i++)
        if (items[i]->rc == 0) item_fail(items[i]);
}

/* Run one call inside its savepoint: 0, 1 when fn ended the transaction
 * (the whole batch is lost), or -1 when the call alone failed. */
static int item_run(db_conn_t *c, db_group_item_t *it)
{
    int hooks = c->nhooks;
    diag_clear();
    if (db_savepoint(c) < 0) {
        item_fail(it);
        return -1;
    }
    int depth = c->savepoints;
    log_set_service(it->service[0] ? it->service : NULL);
    log_set_trace(it->trace[0] ? it->trace : NULL);
    c->in_group = true;
    int rc = it->fn(c, it->arg);
    c->in_group = false;
    if (!c->in_tx || sqlite3_get_autocommit(c->h)) {
        if (rc == 0 || diag_last()->kind == DIAG_OK)
            diag_set(DIAG_INTERNAL, "db_group_run: the work ended the shared transaction");
        return 1;
    }
    if (rc == 0 && c->savepoints != depth)
        rc = diag_set(DIAG_INTERNAL, "db_group_run: the work left %d savepoint(s) open",
                      c->savepoints - depth);
    if (rc == 0 && db_release(c) == 0) {
        it->rc = 0;
        return 0;
    }
    item_fail(it);
    while (c->savepoints > depth) db_rollback_to(c);
    db_rollback_to(c);
    c->nhooks = hooks; /* a failed call's hooks do not run */
    return -1;
}

/* The leader's job: one transaction for `items`, committed. */
static void batch_run(db_conn_t *c, db_group_item_t **items, int n)
{
    char service[32], trace[64];
    snprintf(service, sizeof(service), "%s", log_service());
    snprintf(trace, sizeof(trace), "%s", log_trace());
    for (int i = 0; i < n; i++) items[i]->rc = 0;
    if (db_begin(c) < 0) {
        batch_fail(items, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (item_run(c, items[i]) == 1) { /* the transaction is gone */
            char why[sizeof(diag_last()->message)];
            snprintf(why, sizeof(why), "%s", diag_last()->message);
            db_rollback(c);
            diag_set(DIAG_INTERNAL, "group transaction aborted: %s", why);
            batch_fail(items, n);
            goto out;
        }
    }
    if (db_commit(c) < 0) batch_fail(items, n);
out:
    log_set_service(service[0] ? service : NULL);
    log_set_trace(trace[0] ? trace : NULL);
}

static __thread db_t *tl_leading; /* the db whose batch this thread is running */

/* A work's end, after its batch committed or failed: a db_group_submit's
 * done runs here, with the work's own diag when it failed; a
 * db_group_run's caller is woken. */
static void item_finish(db_t *db, db_group_item_t *it)
{
    if (it->done_fn) {
        if (it->rc < 0) diag_set_at(it->diag.file, it->diag.line, it->diag.kind, "%s", it->diag.message);
        else diag_clear();
        log_set_service(it->service[0] ? it->service : NULL);
        log_set_trace(it->trace[0] ? it->trace : NULL);
        it->done_fn(it->arg, it->rc);
        free(it);
        return;
    }
    pthread_mutex_lock(&db->glock);
    it->done = true;
    pthread_cond_signal(&it->cond);
    pthread_mutex_unlock(&db->glock);
}

static void *writer_main(void *arg)
{
    db_t *db = arg;
    char name[16]; /* for top -H and perf */
    snprintf(name, sizeof(name), "w:%.13s", db->name);
    pthread_setname_np(pthread_self(), name);
    db_group_item_t *items[DB_GROUP_MAX];
    pthread_mutex_lock(&db->glock);
    for (;;) {
        while (!db->ghead && !db->gstop) {
            db->gidle = true;
            pthread_cond_wait(&db->gcond, &db->glock);
            db->gidle = false;
        }
        if (!db->ghead) break; /* stopping, and nothing is left */
        int n = 0;
        while (db->ghead && n < DB_GROUP_MAX) {
            items[n++] = db->ghead;
            db->ghead = db->ghead->next;
        }
        if (!db->ghead) db->gtail = NULL;
        pthread_mutex_unlock(&db->glock);
        /* one connection for every batch: its page cache stays valid from
         * one to the next */
        if (!db->gconn) db->gconn = conn_open(db, false);
        tl_leading = db; /* a work calling db_group_run again is refused, not queued */
        if (db->gconn) batch_run(db->gconn, items, n);
        else batch_fail(items, n);
        tl_leading = NULL;
        for (int i = 0; i < n; i++) item_finish(db, items[i]);
        log_set_service(db->name);
        log_set_trace(NULL);
        pthread_mutex_lock(&db->glock);
    }
    pthread_mutex_unlock(&db->glock);
    return NULL;
}

static void writer_stop(db_t *db)
{
    pthread_mutex_lock(&db->glock);
    bool started = db->gstarted;
    db->gstop = true;
    pthread_cond_signal(&db->gcond);
    pthread_mutex_unlock(&db->glock);
    if (started) pthread_join(db->gthread, NULL);
}

/* Queue `it` for the writer (started on the first work); -1 with a diag
 * when there is no writer. */
static int enqueue(db_t *db, db_group_item_t *it)
{
    snprintf(it->service, sizeof(it->service), "%s", log_service());
    snprintf(it->trace, sizeof(it->trace), "%s", log_trace());
    pthread_mutex_lock(&db->glock);
    if (db->gstop) {
        pthread_mutex_unlock(&db->glock);
        return diag_set(DIAG_UNAVAILABLE, "%s: the database is closing", db->name);
    }
    if (!db->gstarted) {
        if (pthread_create(&db->gthread, NULL, writer_main, db) != 0) {
            pthread_mutex_unlock(&db->glock);
            return diag_set(DIAG_INTERNAL, "%s: cannot start the writer thread", db->name);
        }
        db->gstarted = true;
    }
    it->next = NULL;
    if (db->gtail) db->gtail->next = it;
    else db->ghead = it;
    db->gtail = it;
    if (db->gidle) pthread_cond_signal(&db->gcond);
    pthread_mutex_unlock(&db->glock);
    return 0;
}

int db_group_submit(db_t *db, db_work_fn fn, db_done_fn done, void *arg)
{
    if (tl_leading == db) return diag_set(DIAG_INTERNAL, "db_group_submit inside a group work");
    db_group_item_t *it = calloc(1, sizeof(*it));
    if (!it) return diag_set(DIAG_INTERNAL, "out of memory");
    it->fn = fn;
    it->done_fn = done;
    it->arg = arg;
    if (enqueue(db, it) < 0) {
        free(it);
        return -1;
    }
    return 0;
}

int db_group_run(db_t *db, db_work_fn fn, void *arg)
{
    db_conn_t *c = pthread_getspecific(db->key);
    if ((c && c->in_tx) || tl_leading == db)
        return diag_set(DIAG_INTERNAL, "db_group_run inside a transaction");
    db_group_item_t me = {.fn = fn, .arg = arg};
    pthread_cond_init(&me.cond, NULL);
    int rc = enqueue(db, &me);
    if (rc == 0) {
        pthread_mutex_lock(&db->glock);
        while (!me.done) pthread_cond_wait(&me.cond, &db->glock);
        pthread_mutex_unlock(&db->glock);
        rc = me.rc;
        if (rc < 0) diag_set_at(me.diag.file, me.diag.line, me.diag.kind, "%s", me.diag.message);
    }
    pthread_cond_destroy(&me.cond);
    return rc;
}
