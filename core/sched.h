/*
 * sched: a scheduler thread running interval jobs and daily jobs.
 *
 * A daily job runs once per business day, when that day closes (at
 * ATES_DAY_CLOSE local time in ATES_TZ, see clock.h). The last day it ran
 * for is persisted in the owning service's database (table sched_runs), so
 * days that closed while the process was down are run on start, once each,
 * oldest first (at most SCHED_MAX_CATCHUP of them).
 */
#ifndef ATES_SCHED_H
#define ATES_SCHED_H

#include <stdint.h>

#include "clock.h"
#include "db.h"

#define SCHED_MAX_CATCHUP 366
#define SCHED_RETRY_MS 30000

typedef enum sched_kind { SCHED_INTERVAL, SCHED_DAILY } sched_kind_t;

typedef struct sched_job {
    const char *name;     /* unique within its service; key in sched_runs */
    sched_kind_t kind;
    int interval_ms;      /* SCHED_INTERVAL: period */
    /* The work: `day` is the business day that closed (SCHED_DAILY) or NULL.
     * Return 0, or -1 (diag) to have a daily day retried at the next tick. */
    int (*run)(void *ud, const char *day);
} sched_job_t;

typedef struct sched sched_t;

int sched_create(sched_t **out);
/* Add `jobs` (terminated by an entry with name NULL) of one service; `db`
 * holds their sched_runs rows; `ud` is passed to run. Before sched_start.
 * The job entries are copied; `db` and `ud` must outlive the scheduler
 * (sched_stop before db_close). A daily day is persisted after its run, so a
 * crash in between runs it again: daily jobs must be idempotent per day. */
int sched_add(sched_t *s, db_t *db, const sched_job_t *jobs, void *ud);
/* How long a daily job whose run (or whose sched_runs write) failed waits
 * before it is tried again; default SCHED_RETRY_MS. Before sched_start
 * (tests use a short one). -1 (diag) when ms < 1. */
int sched_set_retry_ms(sched_t *s, int ms);
int sched_start(sched_t *s);
void sched_stop(sched_t *s);  /* joins the thread; waits for a running job */
void sched_free(sched_t *s);

/*
 * Pure arithmetic, exposed for tests: given the last day a daily job ran for
 * (`last`, "" for never) and the instant `now_ms`, the days that have closed
 * since and are due, oldest first, into out[0..max); returns how many. When
 * `last` is "" nothing is due (a new install does not replay history; the
 * caller records the day before today as its baseline). *next_ms receives
 * when the current business day closes. When more than `max` days are due
 * (`last` far in the past) the OLDEST `max` are returned, so that a caller
 * running them and persisting the last one catches up in order over several
 * calls. -1 (diag validation) when `last` is neither "" nor a valid day.
 */
int sched_due_days(const char *last, int64_t now_ms, char (*out)[CLOCK_DAY_LEN], int max,
                   int64_t *next_ms);

#endif
