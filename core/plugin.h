/*
 * plugin: what a service is to the runtime. A plugin is one constant struct
 * of tables and callbacks; core drives it: opens its database and applies
 * its migrations, ensures its streams, mounts its routes, starts its
 * consumers, outbox relay and jobs, and calls start/stop around them.
 *
 * Every `ud` a plugin's route, subscription or job receives is its
 * service_t. A plugin includes core headers only, never another plugin's.
 */
#ifndef ATES_PLUGIN_H
#define ATES_PLUGIN_H

#include "bus.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "jwt.h"
#include "rules.h"
#include "sched.h"

typedef struct service service_t;

/* A CLI subcommand a plugin adds, e.g. {"user add", ...}: argv[0] is the
 * first argument after the command words. Returns the exit status. */
typedef struct plugin_command {
    const char *name;    /* one or two words */
    const char *summary; /* one line for `ates --help` */
    const char *usage;   /* the text of `ates NAME --help` */
    int (*run)(const config_t *cfg, int argc, char **argv);
} plugin_command_t;

/* A rule function the service calls: loading a version of `file` that lacks
 * `fn` fails, so the version in force always has it. */
typedef struct plugin_rule {
    const char *file;
    const char *fn;
} plugin_rule_t;

typedef struct plugin {
    const char *name;                      /* service name: "auth", ... */
    const char *const *migrations;         /* NULL-terminated SQL scripts */
    const bus_stream_t *streams;           /* streams it publishes to or reads */
    const bus_subscription_t *subscriptions;
    const http_route_t *routes;
    const sched_job_t *jobs;
    const plugin_command_t *commands;
    const plugin_rule_t *rules;            /* {NULL, NULL}-terminated */
    int (*start)(service_t *svc);          /* after migrations, before threads start */
    void (*stop)(service_t *svc);          /* after threads stopped */
    /* Optional: empty the plugin's projections inside `tx`, so that `ates
     * replay NAME` rebuilds them from the streams (the inbox is emptied and
     * the durable consumers deleted by core). NULL: nothing to replay. */
    int (*reset)(db_conn_t *tx);
} plugin_t;

/* The plugins linked into this binary (NULL-terminated), from plugins/registry.c. */
extern const plugin_t *const ates_plugins[];

const char *service_name(const service_t *svc);
const config_t *service_config(const service_t *svc);
db_t *service_db(service_t *svc);
bus_t *service_bus(service_t *svc);
rules_t *service_rules(service_t *svc);
/* The token keys: the private key is there when DATA/keys has it. */
const jwt_keys_t *service_keys(service_t *svc);
void *service_state(service_t *svc);
void service_set_state(service_t *svc, void *state);

#endif
