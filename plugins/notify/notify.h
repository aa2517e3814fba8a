/*
 * notify: tells a popug that a task was assigned to it (issue 5).
 *
 * On every TaskAssigned, one notice to the new assignee: an info log line
 * with the account's email, the task's title and id, and, when the config
 * asks for it (notify_mail / ATES_NOTIFY_MAIL), a mail through the core
 * mail outbox with the stable id "notify-<TaskAssigned event id>".
 *
 * What it knows comes only from events: its own projection of accounts
 * (ates.accounts.created/updated: email, name, active) and of task titles
 * (ates.tasks.created v1 and v2; a v1 title "[UBERPOP-42] Title" is split
 * into jira id and title). Events come in any order: a TaskAssigned whose
 * task or account is not known yet leaves a pending notice, sent when the
 * missing fact arrives.
 *
 * Notices are keyed by the TaskAssigned event id (besides the inbox), so a
 * redelivered or republished event never notifies twice. A notice whose
 * TaskAssigned is older than NOTIFY_STALE_MS when it would be sent (old
 * events replayed after downtime, or facts that arrived that late) is
 * recorded as skipped, as is one for an inactive account, and one for a
 * shuffle that left the task with the same account (nothing new to tell:
 * previous_assignee_id = assignee_id). The log line is
 * written after the transaction that recorded the notice commits, so a
 * rolled-back batch never logs one (at most once; the mail is the durable
 * channel). Private to plugins/notify.
 */
#ifndef ATES_NOTIFY_H
#define ATES_NOTIFY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/plugin.h"

#define NOTIFY_STALE_MS (5LL * 60 * 1000)
#define NOTIFY_TITLE_MAX 2048 /* bytes of a v1 title; the schema bounds it at 300 characters */

/* A notice line waiting for its transaction to commit. */
typedef struct notify_line {
    pthread_t owner;          /* the thread whose transaction recorded it */
    char *event_id;           /* the notice (TaskAssigned event id) */
    char *trace_id;
    char *text;
    struct notify_line *next;
} notify_line_t;

typedef struct notify {
    bool mail;             /* notify_mail: also mail each notice */
    pthread_mutex_t lock;  /* guards lines */
    notify_line_t *lines;
} notify_t;

extern const char *const notify_migrations[];

/* facts.c: the projections */
int notify_on_account(db_conn_t *tx, const bus_event_t *ev, void *ud);
int notify_on_task_created(db_conn_t *tx, const bus_event_t *ev, void *ud);

/* notices.c */
int notify_on_assigned(db_conn_t *tx, const bus_event_t *ev, void *ud);
/* Send every pending notice whose facts are now known, for one task
 * (`by_task`) or one account. */
int notify_resolve(db_conn_t *tx, service_t *svc, const char *id, bool by_task);
/* Free the lines of notices never committed (plugin stop). */
void notify_lines_free(notify_t *n);

#endif
