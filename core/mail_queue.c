/*
 * mail_queue: the mail outbox of a service's database and the worker thread
 * that empties it (see mail.h).
 *
 * Tables (a core migration, in every service file):
 *   mail_outbox  the mails to deliver, in seq order, each with its retry
 *                state (attempts, next_at, last_error);
 *   mail_sent    the ids delivered, so queuing one again is a no-op.
 *
 * Worker loop: take the first MAIL_BATCH_MAX due rows in (next_at, seq)
 * order, which is the index's (new rows have next_at 0, so they go in seq
 * order and a row waiting for a retry does not hold them up), format them
 * (Date = created_at, so every delivery of a row is the same bytes),
 * deliver them outside any transaction as one batch (one sync of the spool,
 * or one SMTP connection), then in one transaction delete the delivered
 * ones and note their ids as sent. A failed delivery pushes its row's
 * next_at back (exponential, up to MAIL_BACKOFF_MAX_MS) and the worker
 * moves on to other due rows; an unreachable SMTP server backs the worker
 * itself off. With nothing due it sleeps until the next retry, a wake from
 * a commit that queued mail (after-commit hook of mail_enqueue), or
 * MAIL_IDLE_MS, which also catches rows another process (e.g. a CLI
 * command) wrote.
 *
 * A crash between delivery and the delete delivers the row again: the same
 * spool file is rewritten, an SMTP server sees the same Message-ID again.
 */
#include "mail.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "diag.h"
#include "log.h"
#include "metrics.h"

#define MAIL_IDLE_MS 1000
#define MAIL_BACKOFF_MIN_MS 1000
#define MAIL_BACKOFF_MAX_MS (5LL * 60 * 1000)

const char mail_core_migration[] =
    "CREATE TABLE mail_outbox ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"         /* mail_msg.id */
    "  to_addr TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"     /* ms; the Date header */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL DEFAULT 0," /* ms; not retried before */
    "  last_error TEXT);"
    "CREATE INDEX mail_outbox_due ON mail_outbox(next_at, seq);"
    "CREATE TABLE mail_sent ("
    "  id TEXT PRIMARY KEY,"
    "  sent_at INTEGER NOT NULL) WITHOUT ROWID;";

typedef struct mail_worker {
    db_t *db;
    char spool[PATH_MAX];              /* DATA/mail */
    char smtp_url[CONFIG_STR];         /* "" = spool */
    char from[MAIL_FROM_MAX + 1];
    char from_addr[MAIL_ADDR_MAX + 1];
    pthread_t thread;
    pthread_mutex_t lock;              /* guards wakeups and `stop` changes, with cond */
    pthread_cond_t cond;
    unsigned wakeups;                  /* bumped by a wake */
    atomic_int stop;                   /* set under lock; read unlocked by the loop and SMTP */
    metrics_counter_t *delivered;      /* ates_mail_delivered_total{service} */
    metrics_counter_t *failures;       /* ates_mail_failures_total{service} */
    struct mail_worker *next;          /* in g_workers */
} mail_worker_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* guards g_workers */
static mail_worker_t *g_workers;

/* After-commit hook of mail_enqueue: wake the worker of db `arg`, if any
 * runs in this process. */
static void mail_wake_db(void *arg)
{
    pthread_mutex_lock(&g_lock);
    for (mail_worker_t *w = g_workers; w; w = w->next) {
        if (w->db != arg) continue;
        pthread_mutex_lock(&w->lock);
        w->wakeups++;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_unlock(&g_lock);
}

/* 1 when `id` is queued or sent already, 0 when not, -1 on error. */
static int known_id(db_conn_t *tx, const char *id)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT 1 FROM mail_sent WHERE id = ?1 UNION ALL "
                                   "SELECT 1 FROM mail_outbox WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(tx, st);
    sqlite3_reset(st);
    return rc;
}

int mail_enqueue(db_conn_t *tx, const mail_msg_t *m)
{
    if (mail_check(m) < 0) return -1;
    if (!db_in_tx(tx)) return diag_set(DIAG_INTERNAL, "mail_enqueue outside a transaction");
    int known = known_id(tx, m->id);
    if (known != 0) return known < 0 ? -1 : 0;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO mail_outbox(id, to_addr, subject, body, created_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st || db_bind_text(st, 1, m->id) < 0 || db_bind_text(st, 2, m->to) < 0 ||
        db_bind_text(st, 3, m->subject) < 0 || db_bind_text(st, 4, m->text) < 0 ||
        db_bind_int64(st, 5, clock_now_ms()) < 0 || db_step_done(tx, st) < 0)
        return -1;
    return db_after_commit(tx, mail_wake_db, db_conn_db(tx));
}

int64_t mail_pending(db_t *db)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT count(*) FROM mail_outbox") : NULL;
    if (!st) return -1;
    int64_t n = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

/* --- the worker ---------------------------------------------------------- */

/* One row of mail_outbox, copied out of the statement. */
typedef struct mail_row {
    int64_t seq, created_at, attempts;
    char id[MAIL_ID_MAX + 1];
    char to[MAIL_ADDR_MAX + 1];
    char *subject, *body; /* owned */
} mail_row_t;

static void row_free(mail_row_t *r)
{
    free(r->subject);
    free(r->body);
    r->subject = r->body = NULL;
}

/* Up to `cap` rows due at `now`, by the mail_outbox_due index (ORDER BY
 * seq alone would sort every due row: milliseconds per look at 100k
 * queued): how many, or -1. */
static int load_due(db_conn_t *c, int64_t now, mail_row_t *rows, int cap)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT seq, id, to_addr, subject, body, created_at, attempts "
                                  "FROM mail_outbox WHERE next_at <= ?1 ORDER BY next_at, seq "
                                  "LIMIT ?2");
    if (!st || db_bind_int64(st, 1, now) < 0 || db_bind_int64(st, 2, cap) < 0) return -1;
    int n = 0, rc;
    while (n < cap && (rc = db_step(c, st)) == 1) {
        mail_row_t *r = &rows[n++];
        r->seq = sqlite3_column_int64(st, 0);
        snprintf(r->id, sizeof(r->id), "%s", db_col_text(st, 1));
        snprintf(r->to, sizeof(r->to), "%s", db_col_text(st, 2));
        r->subject = strdup(db_col_text(st, 3));
        r->body = strdup(db_col_text(st, 4));
        r->created_at = sqlite3_column_int64(st, 5);
        r->attempts = sqlite3_column_int64(st, 6);
        if (!r->subject || !r->body) {
            rc = diag_set(DIAG_INTERNAL, "out of memory");
            break;
        }
    }
    sqlite3_reset(st);
    if (rc < 0) {
        for (int i = 0; i < n; i++) row_free(&rows[i]);
        return -1;
    }
    return n;
}

/* The earliest next_at of any row (INT64_MAX when the outbox is empty). */
static int64_t earliest_due(db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT min(next_at) FROM mail_outbox");
    if (!st) return INT64_MAX;
    int64_t at = INT64_MAX;
    if (db_step(c, st) == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL)
        at = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return at;
}

/* Format rows[0..n) into out[] and deliver them, outside any transaction.
 * A delivery aborted by a stop is left untried. */
static void deliver(mail_worker_t *w, const mail_row_t *rows, mail_out_t *out, int n)
{
    mail_out_t batch[MAIL_BATCH_MAX]; /* the formatted ones: batch[j] is out[of[j]] */
    int of[MAIL_BATCH_MAX], k = 0;
    for (int i = 0; i < n; i++) {
        mail_msg_t m = {rows[i].id, rows[i].to, rows[i].subject, rows[i].body};
        char *msg = NULL;
        size_t len = 0;
        out[i] = (mail_out_t){.id = rows[i].id, .to = rows[i].to, .rc = -1};
        if (mail_format(&msg, &len, &m, w->from, rows[i].created_at) < 0) {
            snprintf(out[i].why, sizeof(out[i].why), "%s", diag_last()->message);
            continue;
        }
        batch[k] = out[i];
        batch[k].msg = msg;
        batch[k].len = len;
        of[k++] = i;
    }
    int sent = k == 0 ? 0
               : w->smtp_url[0] ? mail_smtp_send_batch(w->smtp_url, w->from_addr, batch, k, &w->stop)
                                : mail_spool_write_batch(w->spool, batch, k);
    for (int j = 0; j < k; j++) {
        if (sent < 0) {
            batch[j].rc = -1;
            snprintf(batch[j].why, sizeof(batch[j].why), "%s", diag_last()->message);
        }
        if (batch[j].rc < 0 && atomic_load(&w->stop)) batch[j].rc = 1;
        free((char *)batch[j].msg);
        batch[j].msg = NULL;
        out[of[j]] = batch[j];
    }
}

/* In one transaction: each delivered row deleted and its id noted as
 * sent; each failed one pushed back (exponential, up to
 * MAIL_BACKOFF_MAX_MS); untried ones left as they are. */
static int settle(db_conn_t *c, const mail_row_t *rows, const mail_out_t *out, int n)
{
    if (db_begin(c) < 0) return -1;
    int64_t now = clock_now_ms();
    for (int i = 0; i < n; i++) {
        const mail_row_t *r = &rows[i];
        sqlite3_stmt *st = NULL;
        if (out[i].rc == 0) {
            st = db_stmt(c, "DELETE FROM mail_outbox WHERE seq = ?1");
            if (!st || db_bind_int64(st, 1, r->seq) < 0 || db_step_done(c, st) < 0) goto fail;
            st = db_stmt(c, "INSERT OR IGNORE INTO mail_sent(id, sent_at) VALUES (?1, ?2)");
            if (!st || db_bind_text(st, 1, r->id) < 0 || db_bind_int64(st, 2, now) < 0 ||
                db_step_done(c, st) < 0)
                goto fail;
        } else if (out[i].rc < 0) {
            int64_t delay = MAIL_BACKOFF_MIN_MS;
            for (int64_t a = 0; a < r->attempts && delay < MAIL_BACKOFF_MAX_MS; a++) delay *= 2;
            if (delay > MAIL_BACKOFF_MAX_MS) delay = MAIL_BACKOFF_MAX_MS;
            st = db_stmt(c, "UPDATE mail_outbox SET attempts = attempts + 1, next_at = ?2, "
                            "last_error = ?3 WHERE seq = ?1");
            if (!st || db_bind_int64(st, 1, r->seq) < 0 || db_bind_int64(st, 2, now + delay) < 0 ||
                db_bind_text(st, 3, out[i].why) < 0 || db_step_done(c, st) < 0)
                goto fail;
        }
    }
    return db_commit(c);
fail:
    db_rollback(c);
    return -1;
}

/* Deliver up to MAIL_BATCH_MAX due rows: how many were tried (delivered or
 * failed; look again), 0 nothing due, -1 error. *unreachable when the SMTP
 * server could not be reached. */
static int mail_round(mail_worker_t *w, db_conn_t *c, bool *unreachable)
{
    *unreachable = false;
    mail_row_t rows[MAIL_BATCH_MAX];
    mail_out_t out[MAIL_BATCH_MAX];
    memset(rows, 0, sizeof(rows));
    int n = load_due(c, clock_now_ms(), rows, MAIL_BATCH_MAX);
    if (n <= 0) return n;
    deliver(w, rows, out, n);
    int rc = settle(c, rows, out, n), tried = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const mail_row_t *r = &rows[i];
        if (out[i].rc == 0) {
            metrics_inc(w->delivered, 1);
            log_info("mail %s to %s delivered%s", r->id, r->to, w->smtp_url[0] ? " (smtp)" : "");
        } else if (out[i].rc < 0) {
            metrics_inc(w->failures, 1);
            log_warn("mail %s to %s not delivered (attempt %lld): %s", r->id, r->to,
                     (long long)r->attempts + 1, out[i].why);
        }
        tried += out[i].rc != 1;
        *unreachable |= out[i].unreachable;
    }
    for (int i = 0; i < n; i++) row_free(&rows[i]);
    return rc < 0 ? -1 : tried;
}

/* Sleep until `ms` pass, a wake after *seen (NULL: none counts), or stop. */
static void worker_sleep(mail_worker_t *w, const unsigned *seen, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->stop) && (!seen || w->wakeups == *seen))
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) != 0) break;
    pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
    mail_worker_t *w = arg;
    log_set_service(db_name(w->db));
    db_conn_t *c = db_conn(w->db);
    if (!c) log_diag(LOG_ERROR, "mail worker: no database connection");
    int64_t backoff = 0;
    while (c && !atomic_load(&w->stop)) {
        pthread_mutex_lock(&w->lock);
        unsigned seen = w->wakeups; /* a commit from here on ends the sleep below */
        pthread_mutex_unlock(&w->lock);
        bool unreachable = false;
        int rc = mail_round(w, c, &unreachable);
        if (rc > 0 && !unreachable) {
            backoff = 0;
            continue;
        }
        if (rc < 0 || unreachable) { /* the rest wait for the server, not a row each */
            if (rc < 0) log_diag(LOG_ERROR, "mail worker");
            backoff = backoff ? (backoff * 2 > MAIL_BACKOFF_MAX_MS ? MAIL_BACKOFF_MAX_MS : backoff * 2)
                              : MAIL_BACKOFF_MIN_MS;
            worker_sleep(w, unreachable ? NULL : &seen, backoff); /* commits do not revive a server */
            continue;
        }
        backoff = 0;
        int64_t wait = earliest_due(c) - clock_now_ms();
        if (wait > MAIL_IDLE_MS) wait = MAIL_IDLE_MS;
        if (wait < 1) wait = 1;
        worker_sleep(w, &seen, wait);
    }
    return NULL;
}

/* A worker for db with cfg's delivery settings, its thread not started. */
static mail_worker_t *worker_new(db_t *db, const config_t *cfg)
{
    mail_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    w->db = db;
    const char *from = cfg->mail_from[0] ? cfg->mail_from : MAIL_FROM_DEFAULT;
    if (snprintf(w->spool, sizeof(w->spool), "%s/mail", cfg->data_dir) >= (int)sizeof(w->spool)) {
        free(w);
        diag_set(DIAG_VALIDATION, "data dir path too long");
        return NULL;
    }
    if (mail_from_addr(from, w->from_addr) < 0) {
        free(w);
        return NULL;
    }
    snprintf(w->from, sizeof(w->from), "%s", from);
    snprintf(w->smtp_url, sizeof(w->smtp_url), "%s", cfg->smtp_url);
    char labels[96];
    snprintf(labels, sizeof(labels), "service=\"%s\"", db_name(db));
    w->delivered = metrics_counter("ates_mail_delivered_total", "Mails delivered (spool or SMTP)",
                                   labels);
    w->failures = metrics_counter("ates_mail_failures_total", "Mail delivery attempts that failed",
                                  labels);
    return w;
}

int mail_deliver_due(db_t *db, const config_t *cfg)
{
    mail_worker_t *w = worker_new(db, cfg);
    db_conn_t *c = w ? db_conn(db) : NULL;
    if (!c) {
        free(w);
        return -1;
    }
    int rc = 0, n = 0;
    bool unreachable = false;
    /* a failed row is not due again at once */
    while (!unreachable && (rc = mail_round(w, c, &unreachable)) > 0) n += rc;
    if (unreachable)
        log_warn("mail: the SMTP server is unreachable; %lld mails stay queued for the service",
                 (long long)mail_pending(db));
    free(w);
    return rc < 0 ? -1 : n;
}

int mail_start(db_t *db, const config_t *cfg)
{
    mail_worker_t *w = worker_new(db, cfg);
    if (!w) return -1;
    if (!w->smtp_url[0] && mail_spool_sweep(w->spool, MAIL_TEMP_STALE_MS) < 0)
        log_diag(LOG_WARN, "mail: spool sweep");
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return diag_set(DIAG_INTERNAL, "cannot start the mail worker");
    }
    pthread_mutex_lock(&g_lock);
    w->next = g_workers;
    g_workers = w;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void mail_stop_all(void)
{
    pthread_mutex_lock(&g_lock);
    mail_worker_t *list = g_workers;
    g_workers = NULL; /* no wake reaches them any more */
    pthread_mutex_unlock(&g_lock);
    for (mail_worker_t *w = list; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        atomic_store(&w->stop, 1);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    while (list) {
        mail_worker_t *w = list;
        list = w->next;
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
    }
}
