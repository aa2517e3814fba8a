/*
 * bus_internal: what bus.c, bus_relay.c and bus_consumer.c share. Not for
 * plugins.
 *
 * Threads: the caller's threads use bus_open/bus_emit/...; each relay and
 * each consumer is a "worker" thread owned by the bus (bus->workers), started
 * by bus_relay_start / bus_consume_start and joined by bus_stop_all. nats.c
 * runs its own threads for the connection and calls the callbacks below.
 */
#ifndef ATES_BUS_INTERNAL_H
#define ATES_BUS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "diag.h"

#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 5000
#define BUS_DUP_WINDOW_NS (2LL * 60 * 1000000000LL)
#define BUS_JS_WAIT_MS 5000 /* JetStream API calls and publish acks */

/* A relay or consumer thread. Embedded first in bus_relay_t / bus_consumer_t. */
typedef struct bus_worker {
    struct bus *bus;
    pthread_t thread;
    pthread_mutex_t lock; /* guards `stop` and `wakeups` with `cond` */
    pthread_cond_t cond;
    bool stop;
    unsigned wakeups;                       /* bumped by bus_worker_wake */
    unsigned seen;                          /* wakeups when the current round began */
    bool sleeping;                          /* in bus_worker_sleep: wake must signal */
    void (*destroy)(struct bus_worker *w);  /* after join: bus_worker_fini, free */
    struct bus_worker *next;                /* in bus->workers */
} bus_worker_t;

struct bus {
    natsConnection *nc;               /* shared by all threads (nats.c is thread-safe) */
    char *urls;                       /* what it connects to (for bus_connect_once) */
    const schema_registry_t *schemas; /* not owned */
    atomic_int gen;                   /* bumped on every (re)connect */
    pthread_mutex_t lock;             /* guards streams and workers */
    bus_stream_t *streams;            /* remembered streams (owned strings) */
    int nstreams;
    bus_worker_t *workers;
    uint64_t (*wake)(const void *ud); /* bus_set_wake; NULL: none */
    const void *wake_ud;
};

/* -1 with a diag describing nats status `s` (and the library's last error). */
int bus_nats_error(diag_kind_t kind, natsStatus s, const char *what);

/* A JetStream context on bus->nc. NULL with a diag on error. */
jsCtx *bus_js(bus_t *bus);
/* A JetStream call's failure means: no such consumer or stream. */
bool bus_js_not_found(natsStatus s, jsErrCode jerr);
/* A connection of its own to the bus's servers that never reconnects and
 * buffers nothing while disconnected: once it breaks, what the server took
 * from it is a prefix of what was sent on it (an outbox relay needs that to
 * keep events in order). NULL with a diag when no server answers. */
natsConnection *bus_connect_once(bus_t *bus, const char *name);

/* Unsubscribe, let the read loop pass every message already received, then
 * free: libnats 3.4 can crash when a subscription is freed while its read
 * loop is delivering to it (nats.c #637). Never use it on a subscription
 * whose consumer nats.c created itself and that must survive: unsubscribe
 * deletes such a consumer. */
void bus_sub_destroy(bus_t *bus, natsSubscription *sub);

/* Add `streams` to the remembered list (copies, deduplicated by name). */
int bus_remember_streams(bus_t *bus, const bus_stream_t *streams);
/* Ensure every remembered stream exists, when `*seen_gen` differs from the
 * connection generation (that is, after a (re)connect). 0 when done or not
 * needed; -1 with a diag (and *seen_gen untouched) otherwise. */
int bus_ensure_known(bus_t *bus, int *seen_gen);

/* Workers. bus_worker_start links `w` into bus->workers and runs fn(w). */
int bus_worker_start(bus_t *bus, bus_worker_t *w, void *(*fn)(void *),
                     void (*destroy)(bus_worker_t *w));
/* Release the worker's lock and condition (from its destroy callback, once
 * nobody can wake it any more). */
void bus_worker_fini(bus_worker_t *w);
bool bus_worker_stopping(bus_worker_t *w);
void bus_worker_wake(bus_worker_t *w);
/* Sleep up to `ms`; returns early on stop, and on a wake when `wakeable`. */
/* Note the wakeups so far: call at the start of a round of work, so that a
 * wake that arrives during the round ends the sleep after it at once. */
void bus_worker_mark(bus_worker_t *w);
void bus_worker_sleep(bus_worker_t *w, int64_t ms, bool wakeable);
/* Exponential backoff step: 0 -> MIN, then doubling up to MAX. */
int64_t bus_backoff_next(int64_t prev_ms);

/* After-commit hook of bus_emit: wakes the relay of db `arg` (bus_relay.c). */
void bus_relay_wake_db(void *arg);

#endif
