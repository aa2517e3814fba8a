/*
 * notify: the plugin table, its schema and its state. See notify.h.
 */
#include <stdlib.h>

#include "core/diag.h"
#include "core/log.h"
#include "notify.h"

const char *const notify_migrations[] = {
    "CREATE TABLE accounts ("            /* the projection of ates.accounts.* */
    "  id TEXT PRIMARY KEY,"
    "  email TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  active INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;" /* event time of the newest event, ms */
    "CREATE TABLE tasks ("               /* titles, from TaskCreated v1/v2 */
    "  id TEXT PRIMARY KEY,"
    "  title TEXT NOT NULL,"
    "  jira_id TEXT) WITHOUT ROWID;"
    "CREATE TABLE notices ("             /* one per TaskAssigned */
    "  event_id TEXT PRIMARY KEY,"       /* the TaskAssigned event */
    "  task_id TEXT NOT NULL,"
    "  account_id TEXT NOT NULL,"        /* the new assignee */
    "  assigned_at TEXT NOT NULL,"       /* as in the event */
    "  event_time INTEGER NOT NULL,"     /* ms */
    "  status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'skipped')),"
    "  reason TEXT,"                     /* skipped: 'stale', 'inactive', 'unchanged' */
    "  mail_id TEXT,"                    /* the queued mail, when mail is on */
    "  handled_at INTEGER NOT NULL,"     /* ms, when the TaskAssigned was handled */
    "  done_at INTEGER) WITHOUT ROWID;"  /* ms, when sent or skipped */
    "CREATE INDEX notices_pending_task ON notices(task_id) WHERE status = 'pending';"
    "CREATE INDEX notices_pending_account ON notices(account_id) WHERE status = 'pending';",
    NULL,
};

static int notify_start(service_t *svc)
{
    notify_t *n = calloc(1, sizeof(*n));
    if (!n) return diag_set(DIAG_INTERNAL, "out of memory");
    n->mail = service_config(svc)->notify_mail;
    pthread_mutex_init(&n->lock, NULL);
    service_set_state(svc, n);
    log_info("notify: notices to the log%s", n->mail ? " and by mail" : " (mail off: notify_mail)");
    return 0;
}

static void notify_stop(service_t *svc)
{
    notify_t *n = service_state(svc);
    if (!n) return;
    notify_lines_free(n);
    pthread_mutex_destroy(&n->lock);
    free(n);
    service_set_state(svc, NULL);
}

static const bus_stream_t streams[] = {
    {"ATES_TASKS", "ates.tasks.>"},
    {"ATES_ACCOUNTS", "ates.accounts.>"},
    {NULL, NULL},
};

static const bus_subscription_t subscriptions[] = {
    {"ATES_ACCOUNTS", "ates.accounts.created", notify_on_account},
    {"ATES_ACCOUNTS", "ates.accounts.updated", notify_on_account},
    {"ATES_TASKS", "ates.tasks.created", notify_on_task_created},
    {"ATES_TASKS", "ates.tasks.assigned", notify_on_assigned},
    {NULL, NULL, NULL},
};

const plugin_t notify_plugin = {
    .name = "notify",
    .migrations = notify_migrations,
    .streams = streams,
    .subscriptions = subscriptions,
    .start = notify_start,
    .stop = notify_stop,
};
