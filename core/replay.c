/*
 * replay: `ates replay SERVICE` rebuilds a service's projections from
 * JetStream (CONTRACT section 1, DESIGN "flows" 4).
 *
 * The service must not be running on this data dir: replay takes its lock
 * (runtime_lock_service), so `ates serve` of that service refuses to start
 * meanwhile, and replay refuses while a server holds it. Other services may
 * run. Steps, in an order that is safe to interrupt at any point:
 *   1. delete the service's durable consumers (a crash here leaves the
 *      projections whole: a new durable redelivers, the inbox skips);
 *   2. in one transaction, plugin->reset() and empty the inbox (and the
 *      events parked in inbox_retry);
 *   3. run the service's consumers (and its outbox relay, for dead letters)
 *      in this process on new durables that start at each stream's first
 *      message, until every one has acknowledged what its stream held when
 *      step 3 began; then stop and print the count and the rate.
 * Interrupted in step 3 (Ctrl-C), the durables keep their position and the
 * next `ates serve` finishes the rebuild.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"
#include "log.h"
#include "runtime.h"

#define REPLAY_MAX_STREAMS 8
#define REPLAY_POLL_MS 100
#define REPLAY_NATS_WAIT_MS 15000
#define REPLAY_REPORT_MS 5000

typedef struct replay_stream {
    const char *name;
    uint64_t target; /* last sequence when consumption began */
    uint64_t msgs;   /* messages it held then */
} replay_stream_t;

typedef struct replay {
    const config_t *cfg;
    const plugin_t *p;
    int lock_fd;
    schema_registry_t *schemas;
    rules_t *rules;
    bus_t *bus;
    db_t *db;
    service_t *svc;
    bool started; /* p->start succeeded */
    replay_stream_t streams[REPLAY_MAX_STREAMS];
    int nstreams;
} replay_t;

static volatile sig_atomic_t replay_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    replay_interrupted = 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The distinct streams the service's subscriptions read. */
static int collect_streams(replay_t *r)
{
    for (const bus_subscription_t *s = r->p->subscriptions; s && s->stream; s++) {
        bool seen = false;
        for (int i = 0; i < r->nstreams; i++) seen = seen || strcmp(r->streams[i].name, s->stream) == 0;
        if (seen) continue;
        if (r->nstreams == REPLAY_MAX_STREAMS) return diag_set(DIAG_INTERNAL, "too many streams");
        r->streams[r->nstreams++].name = s->stream;
    }
    return 0;
}

static int open_all(replay_t *r)
{
    char path[PATH_MAX];
    if (runtime_mkdirs(r->cfg->data_dir, 0700) < 0 ||
        runtime_lock_service(r->cfg, r->p->name, &r->lock_fd) < 0)
        return -1;
    if (schema_registry_load(&r->schemas, r->cfg->schemas_dir) < 0 ||
        rules_open(&r->rules, r->cfg->rules_dir, r->cfg->seed) < 0 ||
        bus_open(&r->bus, r->cfg->nats_url, r->schemas) < 0)
        return -1;
    for (const plugin_rule_t *q = r->p->rules; q && q->file; q++)
        if (rules_require(r->rules, q->file, q->fn) < 0) log_diag(LOG_WARN, "replay needs it");
    if (snprintf(path, sizeof(path), "%s/%s.db", r->cfg->data_dir, r->p->name) >= (int)sizeof(path))
        return diag_set(DIAG_VALIDATION, "data dir path too long");
    if (db_open(&r->db, r->p->name, path, db_core_migrations, r->p->migrations) < 0) return -1;
    r->svc = runtime_service_new(r->cfg, r->p, r->db, r->bus, r->rules);
    if (!r->svc || (r->p->start && r->p->start(r->svc) < 0)) return -1;
    r->started = true;
    /* bus_open returns while still connecting: wait for the streams */
    int64_t deadline = clock_monotonic_ms() + REPLAY_NATS_WAIT_MS;
    while (bus_ensure_streams(r->bus, r->p->streams) < 0) {
        if (clock_monotonic_ms() > deadline || replay_interrupted) return -1;
        sleep_ms(REPLAY_POLL_MS);
    }
    return 0;
}

static void close_all(replay_t *r)
{
    if (r->bus) bus_stop_all(r->bus);
    if (r->started && r->p->stop) r->p->stop(r->svc);
    runtime_service_free(r->svc);
    db_close(r->db);
    bus_close(r->bus);
    rules_close(r->rules);
    schema_registry_free(r->schemas);
    if (r->lock_fd >= 0) close(r->lock_fd);
}

/* Steps 1 and 2. */
static int drop(replay_t *r)
{
    for (int i = 0; i < r->nstreams; i++)
        if (bus_consumer_delete(r->bus, r->streams[i].name, r->p->name) < 0) return -1;
    db_conn_t *c = db_conn(r->db);
    if (!c || db_begin(c) < 0) return -1;
    if (r->p->reset(c) < 0 || db_exec(c, "DELETE FROM inbox") < 0 ||
        db_exec(c, "DELETE FROM inbox_retry") < 0) {
        db_rollback(c);
        return -1;
    }
    return db_commit(c);
}

/* 1 when every durable has acknowledged its target, 0 not yet, -1 error. */
static int caught_up(replay_t *r, uint64_t *done)
{
    int all = 1;
    *done = 0;
    for (int i = 0; i < r->nstreams; i++) {
        uint64_t floor = 0;
        int64_t pending = 0;
        if (bus_consumer_progress(r->bus, r->streams[i].name, r->p->name, &floor, &pending) < 0)
            return -1;
        uint64_t upto = floor < r->streams[i].target ? floor : r->streams[i].target;
        *done += upto; /* an estimate for the progress line: sequences, not messages */
        if (floor < r->streams[i].target || pending > 0) all = 0;
    }
    return all;
}

/* Step 3. */
static int consume(replay_t *r, FILE *out)
{
    uint64_t total = 0, done = 0;
    for (int i = 0; i < r->nstreams; i++) {
        if (bus_stream_state(r->bus, r->streams[i].name, &r->streams[i].target, &r->streams[i].msgs) < 0)
            return -1;
        total += r->streams[i].msgs;
    }
    int64_t t0 = clock_monotonic_ms(), last_report = t0;
    if (bus_relay_start(r->bus, r->db) < 0 ||
        bus_consume_start(r->bus, r->db, r->p->name, r->p->streams, r->p->subscriptions, r->svc) < 0)
        return -1;
    int rc;
    while ((rc = caught_up(r, &done)) == 0 && !replay_interrupted) {
        sleep_ms(REPLAY_POLL_MS);
        if (clock_monotonic_ms() - last_report >= REPLAY_REPORT_MS) {
            last_report = clock_monotonic_ms();
            fprintf(stderr, "ates replay %s: %llu of %llu events...\n", r->p->name,
                    (unsigned long long)done, (unsigned long long)total);
        }
    }
    if (rc < 0) return -1; /* NATS went away: the durables keep their position */
    bus_stop_all(r->bus);
    double secs = (double)(clock_monotonic_ms() - t0) / 1000.0;
    if (replay_interrupted) {
        diag_clear();
        fprintf(stderr, "ates replay %s: interrupted after %.1f s; `ates serve` finishes it\n",
                r->p->name, secs);
        return -1;
    }
    fprintf(out, "replayed %s: %llu events from", r->p->name, (unsigned long long)total);
    for (int i = 0; i < r->nstreams; i++) fprintf(out, " %s", r->streams[i].name);
    fprintf(out, " in %.2f s (%.0f events/s)\n", secs, secs > 0 ? (double)total / secs : 0.0);
    return 0;
}

int runtime_replay(const config_t *cfg, const char *service, FILE *out)
{
    const plugin_t *plugins[1];
    int n = 0;
    if (!service || !*service || strchr(service, ',') ||
        runtime_select(service, plugins, 1, &n) < 0 || n != 1) {
        fprintf(stderr, "ates replay: %s\n",
                diag_last()->kind ? diag_last()->message : "name one service");
        return 2;
    }
    replay_t r = {.cfg = cfg, .p = plugins[0], .lock_fd = -1};
    if (!r.p->reset || !r.p->subscriptions) {
        fprintf(stderr, "ates replay: service %s has no projections to rebuild\n", r.p->name);
        return 2;
    }
    config_set_global(cfg);
    if (clock_configure(cfg->tz, cfg->day_close_minute) < 0) {
        fprintf(stderr, "ates replay: %s\n", diag_last()->message);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_set_service(r.p->name);
    int rc = 1;
    if (collect_streams(&r) < 0 || open_all(&r) < 0 || drop(&r) < 0 || consume(&r, out) < 0) {
        if (diag_last()->kind)
            fprintf(stderr, "ates replay %s: %s\n", r.p->name, diag_last()->message);
        goto out;
    }
    rc = 0;
out:
    close_all(&r);
    log_set_service(NULL);
    return rc;
}
