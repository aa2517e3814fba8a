/*
 * runtime: `ates serve`, the process that hosts a set of services. It owns
 * the shared parts (keys, schemas, rules, the NATS connection, the HTTP
 * server, the scheduler), gives each selected plugin its database and
 * threads, and tears everything down in reverse order on SIGINT/SIGTERM.
 */
#ifndef ATES_RUNTIME_H
#define ATES_RUNTIME_H

#include <stdio.h>

#include "config.h"
#include "plugin.h"

#define RUNTIME_MAX_SERVICES 16

/* Resolve a comma-separated service list ("" or NULL = every linked plugin)
 * into out[0..n). -1 with a diag naming an unknown or repeated service. */
int runtime_select(const char *csv, const plugin_t **out, int max, int *n);

/* Run the services until SIGINT/SIGTERM; returns the process exit status
 * (0 clean stop, 1 failure to start, 2 bad configuration). */
int runtime_serve(const config_t *cfg, const char *services);

/*
 * Embedded: the services of `services` with their databases, rules, keys
 * and routes, but without threads or sockets (no NATS connection, relay,
 * consumers, scheduler, rules watcher, nor a listening HTTP server):
 * requests go through http_inject. Events stay in the outboxes. For
 * fuzzing and tests of whole request paths.
 */
typedef struct runtime runtime_t;
int runtime_embed_open(runtime_t **out, const config_t *cfg, const char *services);
http_server_t *runtime_embed_http(runtime_t *rt);
const jwt_keys_t *runtime_embed_keys(runtime_t *rt);
void runtime_embed_close(runtime_t *rt);

/* Create `path` and its parents with `mode` (existing directories are fine). */
int runtime_mkdirs(const char *path, unsigned mode);

/* One process at a time serves (or replays) a service of a data dir: it
 * holds an exclusive flock on DATA/<name>.lock until it exits (serve takes
 * it for each service it runs). -1 with DIAG_CONFLICT when another process
 * holds it; *fd is the descriptor to close to release it. */
int runtime_lock_service(const config_t *cfg, const char *name, int *fd);

/* A service outside `serve`, for a command that drives one plugin's
 * handlers itself: service_config/db/bus/rules answer what is given here,
 * service_keys is NULL. Free with runtime_service_free (db, bus and rules
 * stay the caller's). NULL with a diag on error. */
service_t *runtime_service_new(const config_t *cfg, const plugin_t *p, db_t *db, bus_t *bus,
                               rules_t *rules);
void runtime_service_free(service_t *svc);

/* `ates replay NAME` (replay.c): with NAME stopped (its lock taken here),
 * delete its durable consumers, empty its inbox and its projections
 * (plugin->reset) in one transaction, then consume every stream it reads
 * from the start until it has caught up with what the streams held when
 * it began, and print the count and rate to `out`. Exit status: 0 done,
 * 1 failure (NAME running, NATS down, ...), 2 bad service name. */
int runtime_replay(const config_t *cfg, const char *service, FILE *out);

#endif
