/*
 * sched: one thread running the interval and daily jobs of every service
 * (see sched.h), sequentially.
 *
 * Interval jobs run every interval_ms on the monotonic clock, the first
 * time one interval after sched_start; a run that overruns skips the missed
 * periods instead of bursting. Daily jobs keep the last day they ran for in
 * sched_runs of their service's database; the first time a job is seen it
 * records the day before today as its baseline without running. When a day
 * has closed the job runs for each due day, oldest first, and the day is
 * persisted after each successful run (its own BEGIN IMMEDIATE transaction).
 * A run that fails stops that job's catch-up until the retry delay has
 * passed. Delivery is at least once: a crash between a run and its write
 * runs that day again, so daily jobs must be idempotent per day.
 *
 * The thread sleeps on a CLOCK_MONOTONIC condition variable until the
 * earliest next event, at most SCHED_MAX_SLEEP_MS, so a wall clock jump is
 * noticed within that time. Only the scheduler thread touches the entries
 * once it runs; the mutex guards the stop flag.
 */
#include "sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "log.h"

#define SCHED_MAX_SLEEP_MS 60000
#define SCHED_CLOSE_MARGIN_MS 250 /* wake this long after a day closes */
#define SCHED_NAME_MAX 64

typedef struct sched_entry {
    db_t *db;
    void *ud;
    char name[SCHED_NAME_MAX];
    sched_kind_t kind;
    int interval_ms;
    int (*run)(void *ud, const char *day);
    int64_t next_mono; /* interval: next run; daily: earliest retry */
    int64_t due_wall;  /* daily: when the next day closes (0 = check now) */
} sched_entry_t;

struct sched {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stop;
    int retry_ms;
    sched_entry_t *entries;
    int n, cap;
    char days[SCHED_MAX_CATCHUP][CLOCK_DAY_LEN]; /* daily catch-up scratch */
};

int sched_due_days(const char *last, int64_t now_ms, char (*out)[CLOCK_DAY_LEN], int max,
                   int64_t *next_ms)
{
    char today[CLOCK_DAY_LEN];
    clock_day_of(now_ms, today);
    if (next_ms && clock_day_close_ms(today, next_ms) < 0) return -1;
    if (!last || !*last) return 0;
    if (clock_day_check(last) < 0) return -1;
    int n = 0;
    char day[CLOCK_DAY_LEN];
    if (clock_day_add(last, 1, day) < 0) return -1;
    while (n < max) {
        int64_t close;
        if (clock_day_close_ms(day, &close) < 0) return -1;
        if (close > now_ms) break;
        memcpy(out[n++], day, CLOCK_DAY_LEN);
        if (clock_day_add(out[n - 1], 1, day) < 0) return -1;
    }
    return n;
}

int sched_create(sched_t **out)
{
    sched_t *s = calloc(1, sizeof(*s));
    if (!s) return diag_set(DIAG_INTERNAL, "out of memory");
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&s->lock, NULL);
    s->retry_ms = SCHED_RETRY_MS;
    *out = s;
    return 0;
}

static bool name_taken(const sched_t *s, const db_t *db, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (s->entries[i].db == db && strcmp(s->entries[i].name, name) == 0) return true;
    return false;
}

static int check_job(const sched_t *s, const db_t *db, const sched_job_t *j)
{
    if (strlen(j->name) >= SCHED_NAME_MAX)
        return diag_set(DIAG_VALIDATION, "sched job name '%s' is too long", j->name);
    if (!j->run) return diag_set(DIAG_VALIDATION, "sched job '%s' has no run function", j->name);
    if (j->kind != SCHED_INTERVAL && j->kind != SCHED_DAILY)
        return diag_set(DIAG_VALIDATION, "sched job '%s' has a bad kind", j->name);
    if (j->kind == SCHED_INTERVAL && j->interval_ms < 1)
        return diag_set(DIAG_VALIDATION, "sched job '%s' needs interval_ms >= 1", j->name);
    if (name_taken(s, db, j->name))
        return diag_set(DIAG_CONFLICT, "sched job '%s' is already added", j->name);
    return 0;
}

int sched_add(sched_t *s, db_t *db, const sched_job_t *jobs, void *ud)
{
    if (s->started) return diag_set(DIAG_INTERNAL, "sched_add after sched_start");
    if (!db || !jobs) return diag_set(DIAG_VALIDATION, "sched_add: no db or jobs");
    for (const sched_job_t *j = jobs; j->name; j++) {
        if (check_job(s, db, j) < 0) return -1;
        if (s->n == s->cap) {
            int cap = s->cap > 0 ? s->cap * 2 : 8;
            sched_entry_t *e = realloc(s->entries, (size_t)cap * sizeof(*e));
            if (!e) return diag_set(DIAG_INTERNAL, "out of memory");
            s->entries = e;
            s->cap = cap;
        }
        sched_entry_t *e = &s->entries[s->n++];
        memset(e, 0, sizeof(*e));
        e->db = db;
        e->ud = ud;
        snprintf(e->name, sizeof(e->name), "%s", j->name);
        e->kind = j->kind;
        e->interval_ms = j->interval_ms;
        e->run = j->run;
    }
    return 0;
}

int sched_set_retry_ms(sched_t *s, int ms)
{
    if (s->started) return diag_set(DIAG_INTERNAL, "sched_set_retry_ms after sched_start");
    if (ms < 1) return diag_set(DIAG_VALIDATION, "sched retry %d ms is below 1", ms);
    s->retry_ms = ms;
    return 0;
}

static bool stopping(sched_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* The persisted last day of `e` into last (or "" when there is no row). */
static int read_last(db_conn_t *c, const sched_entry_t *e, char last[CLOCK_DAY_LEN])
{
    sqlite3_stmt *st = db_stmt(c, "SELECT last_day FROM sched_runs WHERE job = ?1");
    if (!st || db_bind_text(st, 1, e->name) < 0) return -1;
    int rc = db_step(c, st);
    if (rc < 0) return -1;
    last[0] = '\0';
    if (rc == 1) snprintf(last, CLOCK_DAY_LEN, "%s", db_col_text(st, 0));
    sqlite3_reset(st);
    return 0;
}

static int write_last(db_conn_t *c, const sched_entry_t *e, const char *day)
{
    if (db_begin(c) < 0) return -1;
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO sched_runs(job, last_day, last_run_at) "
                                  "VALUES (?1, ?2, ?3) ON CONFLICT(job) DO UPDATE SET "
                                  "last_day = excluded.last_day, last_run_at = excluded.last_run_at");
    if (!st || db_bind_text(st, 1, e->name) < 0 || db_bind_text(st, 2, day) < 0 ||
        db_bind_int64(st, 3, clock_now_ms()) < 0 || db_step_done(c, st) < 0 || db_commit(c) < 0) {
        if (db_in_tx(c)) db_rollback(c);
        return -1;
    }
    return 0;
}

/* Run the days due for daily job `e`; -1 when it must be retried later. */
static int daily_catch_up(sched_t *s, sched_entry_t *e, int64_t now)
{
    db_conn_t *c = db_conn(e->db);
    char last[CLOCK_DAY_LEN];
    if (!c || read_last(c, e, last) < 0) {
        log_diag(LOG_ERROR, "sched_runs read");
        return -1;
    }
    if (!last[0]) { /* first sight: yesterday is the baseline, nothing runs */
        char today[CLOCK_DAY_LEN];
        clock_day_of(now, today);
        if (clock_day_add(today, -1, last) < 0 || write_last(c, e, last) < 0) {
            log_diag(LOG_ERROR, "sched_runs baseline");
            return -1;
        }
        log_info("sched job %s: baseline day %s", e->name, last);
    }
    for (;;) {
        int64_t next;
        int n = sched_due_days(last, now, s->days, SCHED_MAX_CATCHUP, &next);
        if (n < 0) {
            log_diag(LOG_ERROR, "sched_runs last_day");
            return -1;
        }
        e->due_wall = next + SCHED_CLOSE_MARGIN_MS;
        for (int i = 0; i < n; i++) {
            if (stopping(s)) return 0;
            diag_clear();
            if (e->run(e->ud, s->days[i]) < 0) {
                log_warn("sched job %s for day %s failed: %s", e->name, s->days[i],
                         diag_last()->message);
                return -1;
            }
            if (write_last(c, e, s->days[i]) < 0) {
                log_diag(LOG_ERROR, "sched_runs write");
                return -1;
            }
            memcpy(last, s->days[i], CLOCK_DAY_LEN);
        }
        if (n < SCHED_MAX_CATCHUP) return 0;
    }
}

static void run_interval(sched_entry_t *e)
{
    diag_clear();
    if (e->run(e->ud, NULL) < 0)
        log_warn("sched job %s failed: %s", e->name, diag_last()->message);
    int64_t after = clock_monotonic_ms();
    e->next_mono += e->interval_ms;
    if (e->next_mono <= after) e->next_mono = after + e->interval_ms; /* overran: skip */
}

/* Run what is due; returns the monotonic instant of the next event. */
static int64_t tick(sched_t *s)
{
    for (int i = 0; i < s->n && !stopping(s); i++) {
        sched_entry_t *e = &s->entries[i];
        int64_t mono = clock_monotonic_ms();
        log_set_service(db_name(e->db));
        if (e->kind == SCHED_INTERVAL) {
            if (mono >= e->next_mono) run_interval(e);
        } else if (clock_now_ms() >= e->due_wall && mono >= e->next_mono) {
            if (daily_catch_up(s, e, clock_now_ms()) < 0) { /* retry then, not at the next close */
                e->due_wall = 0;
                e->next_mono = clock_monotonic_ms() + s->retry_ms;
            }
        }
        log_set_service(NULL);
    }
    int64_t mono = clock_monotonic_ms(), wall = clock_now_ms();
    int64_t wake = mono + SCHED_MAX_SLEEP_MS;
    for (int i = 0; i < s->n; i++) {
        const sched_entry_t *e = &s->entries[i];
        int64_t at = e->next_mono;
        if (e->kind == SCHED_DAILY && e->due_wall > wall && mono + (e->due_wall - wall) > at)
            at = mono + (e->due_wall - wall);
        if (at < wake) wake = at;
    }
    return wake;
}

static void *sched_main(void *arg)
{
    sched_t *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        int64_t wake = tick(s);
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000), .tv_nsec = (long)(wake % 1000) * 1000000};
        pthread_mutex_lock(&s->lock);
        while (!s->stop && clock_monotonic_ms() < wake)
            if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sched_start(sched_t *s)
{
    if (s->started) return diag_set(DIAG_INTERNAL, "sched already started");
    int64_t mono = clock_monotonic_ms();
    for (int i = 0; i < s->n; i++) {
        sched_entry_t *e = &s->entries[i];
        e->next_mono = e->kind == SCHED_INTERVAL ? mono + e->interval_ms : 0;
        e->due_wall = 0;
    }
    s->stop = false;
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0)
        return diag_set(DIAG_INTERNAL, "cannot start the scheduler thread");
    s->started = true;
    return 0;
}

void sched_stop(sched_t *s)
{
    if (!s || !s->started) return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void sched_free(sched_t *s)
{
    if (!s) return;
    sched_stop(s);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->entries);
    free(s);
}
