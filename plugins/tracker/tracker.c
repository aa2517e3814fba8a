/*
 * tracker: the plugin table, its schema, and its state. See tracker.h.
 */
#include <stdlib.h>

#include "core/diag.h"
#include "tracker.h"

const char *const tracker_migrations[] = {
    "CREATE TABLE accounts ("             /* the projection of ates.accounts.* */
    "  id TEXT PRIMARY KEY,"
    "  email TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  active INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"  /* event time of the newest event */
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY,"
    "  title TEXT NOT NULL,"
    "  jira_id TEXT,"
    "  description TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('open', 'done')),"
    "  assignee_id TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  completed_at INTEGER) WITHOUT ROWID;"
    "CREATE INDEX tasks_assignee ON tasks(assignee_id, id);"
    "CREATE INDEX tasks_status ON tasks(status, id);",
    NULL,
};

static int tracker_start(service_t *svc)
{
    tracker_t *t = calloc(1, sizeof(*t));
    if (!t) return diag_set(DIAG_INTERNAL, "out of memory");
    atomic_init(&t->accounts_gen, 1);
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->shuffle_lock, NULL);
    service_set_state(svc, t);
    return 0;
}

static void tracker_stop(service_t *svc)
{
    tracker_t *t = service_state(svc);
    if (!t) return;
    tracker_candidates_release(t->current);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->shuffle_lock);
    free(t);
    service_set_state(svc, NULL);
}

static const bus_stream_t streams[] = {
    {"ATES_TASKS", "ates.tasks.>"},
    {"ATES_ACCOUNTS", "ates.accounts.>"},
    {NULL, NULL},
};

static const bus_subscription_t subscriptions[] = {
    {"ATES_ACCOUNTS", "ates.accounts.created", tracker_on_account},
    {"ATES_ACCOUNTS", "ates.accounts.updated", tracker_on_account},
    {NULL, NULL, NULL},
};

static const http_route_t routes[] = {
    {"POST", "/api/tasks", tracker_on_create, HTTP_AUTH, NULL},
    {"GET", "/api/tasks", tracker_on_list, HTTP_AUTH, NULL},
    {"POST", "/api/tasks/shuffle", tracker_on_shuffle, HTTP_AUTH, "manager,admin"},
    {"GET", "/api/tasks/{id}", tracker_on_get, HTTP_AUTH, NULL},
    {"POST", "/api/tasks/{id}/complete", tracker_on_complete, HTTP_AUTH, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

static const plugin_rule_t rules[] = {
    {TRACKER_RULES, "eligible"},
    {TRACKER_RULES, "pick"},
    {NULL, NULL},
};

const plugin_t tracker_plugin = {
    .name = "tracker",
    .migrations = tracker_migrations,
    .streams = streams,
    .subscriptions = subscriptions,
    .routes = routes,
    .rules = rules,
    .start = tracker_start,
    .stop = tracker_stop,
};
