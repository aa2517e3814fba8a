/*
 * tracker: tasks, their assignment by rules/shuffle.lua, completion, the
 * shuffle, and the task events (CONTRACT §2 tracker, §3 ates.tasks.*).
 * Accounts are known only from AccountCreated/AccountUpdated events.
 * Private to plugins/tracker.
 */
#ifndef ATES_TRACKER_H
#define ATES_TRACKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/plugin.h"
#include "core/uuid.h"

#define TRACKER_TITLE_MAX 200   /* characters */
#define TRACKER_TITLE_BYTES 800 /* UTF-8: at most 4 bytes per character */
#define TRACKER_JIRA_MAX 32
#define TRACKER_DESCRIPTION_MAX 4000
#define TRACKER_SHUFFLE_CHUNK 5000 /* tasks per shuffle transaction */
#define TRACKER_RULES "shuffle.lua"

/* The eligible accounts, as an immutable shared snapshot. */
typedef struct tracker_candidates {
    atomic_int refs;
    cJSON *ids;            /* array of account id strings, in id order */
    const char **sorted;   /* the same strings, for bsearch */
    size_t n;
    uint64_t accounts_gen; /* what it was built from */
    uint64_t rules_gen;
} tracker_candidates_t;

typedef struct tracker {
    atomic_uint_fast64_t accounts_gen; /* bumped after each committed account change */
    pthread_mutex_t lock;              /* guards `current` */
    tracker_candidates_t *current;
    pthread_mutex_t shuffle_lock;      /* presses never overlap */
} tracker_t;

typedef struct tracker_task {
    char id[UUID_LEN];
    char title[TRACKER_TITLE_BYTES + 1];
    char jira_id[TRACKER_JIRA_MAX + 1];    /* "" = none */
    char *description;                     /* NULL = none; owned */
    bool done;
    char assignee_id[UUID_LEN];
    int64_t created_at, completed_at;      /* ms; completed_at 0 = not done */
} tracker_task_t;

extern const char *const tracker_migrations[];

/* accounts.c: the projection and the eligible set */
int tracker_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud);
/* The current eligible accounts (rebuilt when accounts or rules changed);
 * release with tracker_candidates_release. NULL with a diag on error. */
tracker_candidates_t *tracker_candidates_get(service_t *svc);
void tracker_candidates_release(tracker_candidates_t *c);
/* 0 when someone is eligible; -1 with DIAG_CONFLICT when nobody is. */
int tracker_candidates_any(const tracker_candidates_t *c);
/* pick(task, candidates) of shuffle.lua. A picker binds the candidates
 * to the calling thread's Lua state once (a shuffle asks for every open
 * task with the same list); each tracker_pick converts only the task and
 * checks the answer with a binary search. One thread per picker. */
typedef struct tracker_picker {
    rules_args_t *args;
    const tracker_candidates_t *c;
} tracker_picker_t;
int tracker_picker_open(service_t *svc, const tracker_candidates_t *c, tracker_picker_t *p);
void tracker_picker_close(tracker_picker_t *p);
/* The chosen id into out. */
int tracker_pick(tracker_picker_t *p, const tracker_task_t *task, char out[UUID_LEN],
                 char version[RULES_VERSION_LEN]);

/* tasks.c */
cJSON *tracker_task_json(const tracker_task_t *t);
/* The data of a TaskAssigned (previous NULL on creation). */
cJSON *tracker_assigned_data(const char *task_id, const char *assignee, const char *previous,
                             int64_t at);
void tracker_on_create(http_req_t *req, void *ud);
void tracker_on_list(http_req_t *req, void *ud);
void tracker_on_get(http_req_t *req, void *ud);
void tracker_on_complete(http_req_t *req, void *ud);

/* shuffle.c */
void tracker_on_shuffle(http_req_t *req, void *ud);

#endif
