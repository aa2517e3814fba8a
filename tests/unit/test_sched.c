/*
 * test_sched: the due-day arithmetic (also across DST changes) and the
 * scheduler thread against a real SQLite file: catch-up after downtime,
 * no rerun after a restart, the baseline of a new job, retry of a failed
 * day, interval jobs.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/sched.h"
#include "t.h"

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    if (clock_parse_rfc3339(rfc3339, &ms) < 0) fprintf(stderr, "bad time %s\n", rfc3339);
    return ms;
}

static int64_t close_of(const char *day)
{
    int64_t ms = -1;
    T_EQ_INT(clock_day_close_ms(day, &ms), 0);
    return ms;
}

static const char *day_of(int64_t ms)
{
    static char d[CLOCK_DAY_LEN];
    clock_day_of(ms, d);
    return d;
}

static void test_due_utc(void)
{
    T_EQ_INT(clock_configure("UTC", 0), 0);
    char out[SCHED_MAX_CATCHUP][CLOCK_DAY_LEN];
    int64_t now = at("2026-05-10T12:00:00Z"), next = 0;

    T_EQ_INT(sched_due_days("2026-05-09", now, out, SCHED_MAX_CATCHUP, &next), 0);
    T_EQ_INT(next, at("2026-05-11T00:00:00Z"));

    T_EQ_INT(sched_due_days("2026-05-07", now, out, SCHED_MAX_CATCHUP, &next), 2);
    T_EQ_STR(out[0], "2026-05-08");
    T_EQ_STR(out[1], "2026-05-09");

    next = 0;
    T_EQ_INT(sched_due_days("", now, out, SCHED_MAX_CATCHUP, &next), 0);
    T_EQ_INT(next, at("2026-05-11T00:00:00Z"));

    /* today or a future last: nothing */
    T_EQ_INT(sched_due_days("2026-05-10", now, out, SCHED_MAX_CATCHUP, &next), 0);
    T_EQ_INT(sched_due_days("2026-06-01", now, out, SCHED_MAX_CATCHUP, &next), 0);

    /* exactly at the close the day is due; a millisecond before it is not */
    T_EQ_INT(sched_due_days("2026-05-08", at("2026-05-10T00:00:00Z"), out, 8, &next), 1);
    T_EQ_STR(out[0], "2026-05-09");
    T_EQ_INT(sched_due_days("2026-05-08", at("2026-05-10T00:00:00Z") - 1, out, 8, &next), 0);

    /* cap: the oldest max days, in order, across a year end */
    T_EQ_INT(sched_due_days("2025-12-30", now, out, 4, &next), 4);
    T_EQ_STR(out[0], "2025-12-31");
    T_EQ_STR(out[1], "2026-01-01");
    T_EQ_STR(out[3], "2026-01-03");
    T_EQ_INT(sched_due_days("2020-01-01", now, out, SCHED_MAX_CATCHUP, &next), SCHED_MAX_CATCHUP);
    T_EQ_STR(out[0], "2020-01-02");
    T_EQ_STR(out[SCHED_MAX_CATCHUP - 1], "2021-01-01"); /* 2020 is a leap year */

    T_EQ_INT(sched_due_days("2026-02-30", now, out, 8, &next), -1);
    T_EQ_INT(sched_due_days("yesterday", now, out, 8, &next), -1);
}

/* Walk `now` from `from` to `to` in steps of `step_ms`, running due days as
 * the scheduler would; every day after `last` up to the last closed one must
 * come exactly once, in order, at the first step at or after its close. */
static void walk(const char *last0, const char *from, const char *to, int64_t step_ms,
                 const char *expect_first, int expect_n)
{
    char last[CLOCK_DAY_LEN], out[8][CLOCK_DAY_LEN], want[CLOCK_DAY_LEN];
    snprintf(last, sizeof(last), "%s", last0);
    snprintf(want, sizeof(want), "%s", expect_first);
    int got = 0;
    for (int64_t now = at(from); now <= at(to); now += step_ms) {
        int64_t next = 0;
        int n = sched_due_days(last, now, out, 8, &next);
        T_CHECK(n >= 0 && n <= 1); /* a 15 min walk never sees two closes at once */
        T_CHECK(next > now);
        char today[CLOCK_DAY_LEN];
        clock_day_of(now, today);
        T_EQ_STR(day_of(next - 1), today); /* next is the close of today */
        T_CHECK(strcmp(day_of(next), today) > 0);
        for (int i = 0; i < n; i++) {
            T_EQ_STR(out[i], want);
            int64_t c = close_of(out[i]);
            T_CHECK(c <= now && c > now - step_ms);
            memcpy(last, out[i], CLOCK_DAY_LEN);
            clock_day_add(want, 1, want);
            got++;
        }
    }
    T_EQ_INT(got, expect_n);
}

static void test_dst_berlin(void)
{
    T_EQ_INT(clock_configure("Europe/Berlin", 0), 0);
    T_EQ_INT(close_of("2026-03-28"), at("2026-03-28T23:00:00Z"));
    T_EQ_INT(close_of("2026-03-29"), at("2026-03-29T22:00:00Z"));
    T_EQ_INT(close_of("2026-10-24"), at("2026-10-24T22:00:00Z"));
    T_EQ_INT(close_of("2026-10-25"), at("2026-10-25T23:00:00Z"));
    walk("2026-03-27", "2026-03-27T12:00:00Z", "2026-04-01T12:00:00Z", 15 * 60000, "2026-03-28", 4);
    walk("2026-10-23", "2026-10-23T12:00:00Z", "2026-10-28T12:00:00Z", 15 * 60000, "2026-10-24", 4);

    T_EQ_INT(clock_configure("Europe/Berlin", 2 * 60 + 30), 0);
    T_EQ_INT(close_of("2026-03-28"), at("2026-03-28T01:30:00Z"));
    T_EQ_INT(close_of("2026-03-29"), at("2026-03-29T01:00:00Z")); /* 02:30 does not exist: 03:00 */
    T_EQ_INT(close_of("2026-03-30"), at("2026-03-30T00:30:00Z"));
    T_EQ_INT(close_of("2026-10-24"), at("2026-10-24T00:30:00Z"));
    T_EQ_INT(close_of("2026-10-25"), at("2026-10-25T00:30:00Z")); /* the first 02:30 */
    T_EQ_INT(close_of("2026-10-26"), at("2026-10-26T01:30:00Z"));
    T_EQ_STR(day_of(at("2026-03-29T00:59:59Z")), "2026-03-29");
    T_EQ_STR(day_of(at("2026-03-29T01:00:00Z")), "2026-03-30");
    T_EQ_STR(day_of(at("2026-10-25T00:29:59Z")), "2026-10-25");
    T_EQ_STR(day_of(at("2026-10-25T00:30:00Z")), "2026-10-26");
    /* 02:00..02:30 CET, the second time round: already the next day */
    T_EQ_STR(day_of(at("2026-10-25T01:10:00Z")), "2026-10-26");
    T_EQ_STR(day_of(at("2026-10-25T01:30:00Z")), "2026-10-26");
    walk("2026-03-27", "2026-03-27T12:00:00Z", "2026-04-01T12:00:00Z", 15 * 60000, "2026-03-28", 5);
    walk("2026-10-23", "2026-10-23T12:00:00Z", "2026-10-28T12:00:00Z", 15 * 60000, "2026-10-24", 5);
}

static void test_dst_new_york(void)
{
    T_EQ_INT(clock_configure("America/New_York", 0), 0);
    T_EQ_INT(close_of("2026-03-07"), at("2026-03-08T05:00:00Z"));
    T_EQ_INT(close_of("2026-03-08"), at("2026-03-09T04:00:00Z"));
    T_EQ_INT(close_of("2026-10-31"), at("2026-11-01T04:00:00Z"));
    T_EQ_INT(close_of("2026-11-01"), at("2026-11-02T05:00:00Z"));
    walk("2026-03-05", "2026-03-05T12:00:00Z", "2026-03-11T12:00:00Z", 15 * 60000, "2026-03-06", 5);
    walk("2026-10-29", "2026-10-29T12:00:00Z", "2026-11-04T12:00:00Z", 15 * 60000, "2026-10-30", 5);

    T_EQ_INT(clock_configure("America/New_York", 2 * 60 + 30), 0);
    T_EQ_INT(close_of("2026-03-08"), at("2026-03-08T07:00:00Z")); /* 03:00 EDT */
    T_EQ_INT(close_of("2026-11-01"), at("2026-11-01T07:30:00Z")); /* 02:30 EST, only once */
    walk("2026-03-05", "2026-03-05T12:00:00Z", "2026-03-11T12:00:00Z", 15 * 60000, "2026-03-06", 6);
    walk("2026-10-29", "2026-10-29T12:00:00Z", "2026-11-04T12:00:00Z", 15 * 60000, "2026-10-30", 6);

    T_EQ_INT(clock_configure("America/New_York", 60 + 30), 0);
    T_EQ_INT(close_of("2026-11-01"), at("2026-11-01T05:30:00Z")); /* the first 01:30 (EDT) */
    T_EQ_STR(day_of(at("2026-11-01T05:29:59Z")), "2026-11-01");
    T_EQ_STR(day_of(at("2026-11-01T06:00:00Z")), "2026-11-02"); /* 01:00 EST */
    walk("2026-10-29", "2026-10-29T12:00:00Z", "2026-11-04T12:00:00Z", 15 * 60000, "2026-10-30", 6);
}

static void test_close_evening(void)
{
    T_EQ_INT(clock_configure("Europe/Berlin", 18 * 60), 0);
    T_EQ_STR(day_of(at("2026-06-15T15:59:59.999Z")), "2026-06-15"); /* 17:59 CEST */
    T_EQ_STR(day_of(at("2026-06-15T16:00:00Z")), "2026-06-16");     /* 18:00 CEST */
    T_EQ_INT(close_of("2026-06-15"), at("2026-06-15T16:00:00Z"));
    T_EQ_STR(day_of(at("2026-12-31T16:59:00Z")), "2026-12-31");
    T_EQ_STR(day_of(at("2026-12-31T17:00:00Z")), "2027-01-01");
    T_EQ_INT(clock_configure("UTC", 18 * 60), 0);
    T_EQ_STR(day_of(at("2026-06-15T17:59:00Z")), "2026-06-15");
    T_EQ_STR(day_of(at("2026-06-15T18:00:00Z")), "2026-06-16");
    char out[4][CLOCK_DAY_LEN];
    int64_t next;
    T_EQ_INT(sched_due_days("2026-06-13", at("2026-06-15T18:00:00Z"), out, 4, &next), 2);
    T_EQ_STR(out[1], "2026-06-15");
    T_EQ_INT(next, at("2026-06-16T18:00:00Z"));
}

/* ---- the running scheduler ---------------------------------------------- */

#define MAX_CALLS 32

typedef struct probe {
    pthread_mutex_t lock;
    db_t *db;
    int calls, ok, fail_first;
    char days[MAX_CALLS][CLOCK_DAY_LEN];
    char persisted[MAX_CALLS][CLOCK_DAY_LEN]; /* sched_runs.last_day at each call */
    int interval_runs;
} probe_t;

static void persisted_day(db_t *db, const char *job, char out[CLOCK_DAY_LEN])
{
    out[0] = '\0';
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT last_day FROM sched_runs WHERE job = ?1") : NULL;
    if (!st || db_bind_text(st, 1, job) < 0) return;
    if (db_step(c, st) == 1) snprintf(out, CLOCK_DAY_LEN, "%s", db_col_text(st, 0));
    sqlite3_reset(st);
}

static int daily_run(void *ud, const char *day, const char *job)
{
    probe_t *p = ud;
    char before[CLOCK_DAY_LEN];
    persisted_day(p->db, job, before);
    pthread_mutex_lock(&p->lock);
    int i = p->calls++, fail = i < p->fail_first;
    if (i < MAX_CALLS) {
        snprintf(p->days[i], CLOCK_DAY_LEN, "%s", day ? day : "(null)");
        snprintf(p->persisted[i], CLOCK_DAY_LEN, "%s", before);
    }
    if (!fail) p->ok++;
    pthread_mutex_unlock(&p->lock);
    return fail ? diag_set(DIAG_UNAVAILABLE, "probe failure %d", i) : 0;
}

static int run_daily(void *ud, const char *day) { return daily_run(ud, day, "daily"); }
static int run_flaky(void *ud, const char *day) { return daily_run(ud, day, "flaky"); }

static int run_tick(void *ud, const char *day)
{
    probe_t *p = ud;
    pthread_mutex_lock(&p->lock);
    p->interval_runs += day == NULL;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static int snapshot(probe_t *p, int *calls, int *ok, int *ticks)
{
    pthread_mutex_lock(&p->lock);
    *calls = p->calls;
    *ok = p->ok;
    *ticks = p->interval_runs;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Wait (up to 20 s) until the probe has `ok` successful daily runs and
 * `ticks` interval runs; true when it got there. */
static bool wait_for(probe_t *p, int ok, int ticks)
{
    for (int i = 0; i < 2000; i++) {
        int c, o, t;
        snapshot(p, &c, &o, &t);
        if (o >= ok && t >= ticks) return true;
        usleep(10000);
    }
    return false;
}

static void set_last(db_t *db, const char *job, const char *day)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = db_stmt(c, "INSERT OR REPLACE INTO sched_runs(job, last_day, last_run_at) "
                                  "VALUES (?1, ?2, 0)");
    T_CHECK(st && db_bind_text(st, 1, job) == 0 && db_bind_text(st, 2, day) == 0 &&
            db_step_done(c, st) == 0);
}

static void probe_init(probe_t *p, db_t *db)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->db = db;
}

static void test_running(const char *dir)
{
    T_EQ_INT(clock_configure("UTC", 0), 0);
    char path[1024];
    snprintf(path, sizeof(path), "%s/svc.db", dir);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "svc", path, db_core_migrations, NULL), 0);
    if (!db) return;

    char today[CLOCK_DAY_LEN], d1[CLOCK_DAY_LEN], d2[CLOCK_DAY_LEN], d3[CLOCK_DAY_LEN];
    clock_day_of(clock_now_ms(), today);
    clock_day_add(today, -1, d1);
    clock_day_add(today, -2, d2);
    clock_day_add(today, -3, d3);
    set_last(db, "daily", d3);

    /* catch-up: the two missed days, in order, once each */
    probe_t p;
    probe_init(&p, db);
    const sched_job_t jobs[] = {
        {.name = "daily", .kind = SCHED_DAILY, .run = run_daily},
        {.name = "tick", .kind = SCHED_INTERVAL, .interval_ms = 50, .run = run_tick},
        {.name = NULL},
    };
    sched_t *s = NULL;
    T_EQ_INT(sched_create(&s), 0);
    T_EQ_INT(sched_add(s, db, jobs, &p), 0);
    T_EQ_INT(sched_add(s, db, jobs, &p), -1); /* the same names again */
    T_EQ_INT(diag_last()->kind, DIAG_CONFLICT);
    T_EQ_INT(sched_start(s), 0);
    T_EQ_INT(sched_add(s, db, jobs + 1, &p), -1); /* after start */
    T_CHECK(wait_for(&p, 2, 3));
    sched_free(s);
    char now_day[CLOCK_DAY_LEN];
    clock_day_of(clock_now_ms(), now_day);
    bool same_day = strcmp(now_day, today) == 0; /* the test did not straddle a close */
    if (same_day) {
        T_EQ_INT(p.calls, 2);
        T_EQ_STR(p.days[0], d2);
        T_EQ_STR(p.days[1], d1);
        T_EQ_STR(p.persisted[0], d3);
        T_EQ_STR(p.persisted[1], d2);
    }
    T_CHECK(p.interval_runs >= 3);
    char last[CLOCK_DAY_LEN];
    persisted_day(db, "daily", last);
    if (same_day) T_EQ_STR(last, d1);

    /* restart: nothing is due again; a new job gets yesterday as baseline */
    probe_t q;
    probe_init(&q, db);
    const sched_job_t jobs2[] = {
        {.name = "daily", .kind = SCHED_DAILY, .run = run_daily},
        {.name = "fresh", .kind = SCHED_DAILY, .run = run_daily},
        {.name = "tick", .kind = SCHED_INTERVAL, .interval_ms = 50, .run = run_tick},
        {.name = NULL},
    };
    T_EQ_INT(sched_create(&s), 0);
    T_EQ_INT(sched_add(s, db, jobs2, &q), 0);
    T_EQ_INT(sched_start(s), 0);
    T_CHECK(wait_for(&q, 0, 2)); /* the daily jobs are looked at before the first tick */
    sched_stop(s);
    sched_free(s);
    if (same_day) T_EQ_INT(q.calls, 0);
    persisted_day(db, "fresh", last);
    char base[CLOCK_DAY_LEN];
    clock_day_of(clock_now_ms(), now_day);
    clock_day_add(now_day, -1, base);
    T_EQ_STR(last, base);

    /* a failing day is not persisted and is retried, then the catch-up goes on */
    set_last(db, "flaky", d3);
    probe_t r;
    probe_init(&r, db);
    r.fail_first = 2;
    const sched_job_t jobs3[] = {
        {.name = "flaky", .kind = SCHED_DAILY, .run = run_flaky},
        {.name = NULL},
    };
    T_EQ_INT(sched_create(&s), 0);
    T_EQ_INT(sched_set_retry_ms(s, 0), -1);
    T_EQ_INT(sched_set_retry_ms(s, 20), 0);
    T_EQ_INT(sched_add(s, db, jobs3, &r), 0);
    T_EQ_INT(sched_start(s), 0);
    T_CHECK(wait_for(&r, 2, 0));
    sched_free(s);
    clock_day_of(clock_now_ms(), now_day);
    if (strcmp(now_day, today) == 0) {
        T_EQ_INT(r.calls, 4);
        T_EQ_STR(r.days[0], d2);
        T_EQ_STR(r.days[1], d2);
        T_EQ_STR(r.days[2], d2);
        T_EQ_STR(r.days[3], d1);
        T_EQ_STR(r.persisted[1], d3); /* the failure left last_day alone */
        T_EQ_STR(r.persisted[2], d3);
        T_EQ_STR(r.persisted[3], d2);
        persisted_day(db, "flaky", last);
        T_EQ_STR(last, d1);
    }

    pthread_mutex_destroy(&p.lock);
    pthread_mutex_destroy(&q.lock);
    pthread_mutex_destroy(&r.lock);
    db_close(db);
}

static void test_bad_jobs(void)
{
    sched_t *s = NULL;
    T_EQ_INT(sched_create(&s), 0);
    db_t *fake = (db_t *)&s; /* never dereferenced: sched_add only keeps it */
    const sched_job_t zero[] = {{.name = "z", .kind = SCHED_INTERVAL, .interval_ms = 0, .run = run_tick},
                                {.name = NULL}};
    const sched_job_t norun[] = {{.name = "n", .kind = SCHED_DAILY}, {.name = NULL}};
    T_EQ_INT(sched_add(s, fake, zero, NULL), -1);
    T_EQ_INT(sched_add(s, fake, norun, NULL), -1);
    T_EQ_INT(sched_add(s, NULL, zero, NULL), -1);
    sched_stop(s); /* not started: a no-op */
    sched_free(s);
}

int main(void)
{
    test_due_utc();
    test_dst_berlin();
    test_dst_new_york();
    test_close_evening();
    test_bad_jobs();

    char dir[512];
    if (t_tmpdir(dir, sizeof(dir), "sched") < 0) return 1;
    test_running(dir);
    T_EQ_INT(t_rmdir(dir), 0);
    return t_done();
}
