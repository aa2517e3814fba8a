/*
 * analytics: the admin's figures (CONTRACT §2 analytics), built only from
 * events into analytics' own database: per-day totals of the ledger and of
 * completed tasks, each account's balance (now and at the end of each day it
 * moved), each completed task with its title, jira id, reward and
 * completion day. rules/analytics.lua decides management earnings, where
 * weeks and months begin, and the "most expensive" ordering as a key per
 * task that is stored and indexed (keys.c). Private to plugins/analytics.
 */
#ifndef ATES_ANALYTICS_H
#define ATES_ANALYTICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/plugin.h"
#include "core/uuid.h"

#define AN_RULES "analytics.lua"
#define AN_MAX_DAYS 366     /* longest range an answer covers */
#define AN_KEY_INTS 4       /* integers in an expense key */
#define AN_KEY_BYTES (8 * AN_KEY_INTS)
#define AN_REKEY_MS 100     /* interval of the rekey job */
#define AN_REKEY_SLICE_MS 200 /* work per run of it, so other jobs get the scheduler */
#define AN_REKEY_CHUNK 256  /* tasks per rekey transaction */

/* State of the rekey job (touched only by the scheduler thread). */
typedef struct analytics {
    uint64_t rules_gen;          /* rules generation last compared */
    char stale_after[UUID_LEN];  /* cursor of the pass over stale keys */
    int stale_failed;            /* keys that failed in the current pass */
    uint64_t stale_blocked_gen;  /* generation + 1 of rules a whole pass failed with (0 none) */
} analytics_t;

extern const char *const an_migrations[];

/* meta: small named values (key_version, rekey_from). 1 found, 0 not, -1 error. */
int an_meta_get(db_conn_t *c, const char *key, char *out, size_t cap);
int an_meta_set(db_conn_t *c, const char *key, const char *value);
int an_meta_del(db_conn_t *c, const char *key);

/* events.c: the handlers */
int an_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud);
int an_on_task_completed(db_conn_t *tx, const bus_event_t *ev, void *ud);
int an_on_task_priced(db_conn_t *tx, const bus_event_t *ev, void *ud);
int an_on_transaction(db_conn_t *tx, const bus_event_t *ev, void *ud);
int an_on_day_closed(db_conn_t *tx, const bus_event_t *ev, void *ud);
int an_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud);

/* keys.c: expense keys */
/* Recompute task `id`'s key after a change (nothing when not completed).
 * A rule failure marks the key stale for the rekey job, it does not fail. */
int an_refresh_key(db_conn_t *tx, service_t *svc, const char *id);
/* The version of analytics.lua in force into out ("" when none). */
void an_rules_version(service_t *svc, char out[RULES_VERSION_LEN]);
/* The interval job: follow a change of analytics.lua (recompute every key)
 * and recompute stale keys, a slice at a time. */
int an_rekey_job(void *ud, const char *day);

/* api.c */
void an_on_today(http_req_t *req, void *ud);
void an_on_days(http_req_t *req, void *ud);
/* best.c */
void an_on_most_expensive(http_req_t *req, void *ud);

#endif
