/*
 * runtime: `ates serve`, the process that hosts a set of services. It owns
 * the shared parts (keys, schemas, rules, the NATS connection, the HTTP
 * server, the scheduler), gives each selected plugin its database and
 * threads, and tears everything down in reverse order on SIGINT/SIGTERM.
 */
#ifndef ATES_RUNTIME_H
#define ATES_RUNTIME_H

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

#endif
