/*
 * bus: the NATS connection, streams, worker threads and bus_emit (see
 * bus.h). The outbox relay is in bus_relay.c, consumers in bus_consumer.c,
 * `events tail` in bus_tail.c.
 *
 * Library lifetime: nats.c keeps process globals (threads, pools). bus_close
 * of the last open bus calls nats_CloseAndWait so that a process (and an
 * ASan leak check) ends clean; a caller that holds its own natsConnection
 * must destroy it before that last bus_close.
 */
#include "bus_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "diag.h"
#include "json.h"
#include "log.h"
#include "uuid.h"

#define BUS_RECONNECT_WAIT_MS 250
#define BUS_CONNECT_TIMEOUT_MS 2000
#define BUS_PING_TIMEOUT_MS 1000
#define BUS_MAX_STREAMS 32
#define BUS_BODY_BUF 4096 /* envelopes up to this size print without malloc */

static _Atomic(const schema_registry_t *) g_schemas;
static atomic_int g_open; /* open buses, for nats_CloseAndWait */

int bus_nats_error(diag_kind_t kind, natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return diag_set(kind, "%s: %s%s%s", what, natsStatus_GetText(s), last ? ": " : "",
                    last ? last : "");
}

/* ---- connection ------------------------------------------------------- */

/* nats.c thread: first connect (with retry on failed connect) and reconnects. */
static void on_connected(natsConnection *nc, void *closure)
{
    bus_t *bus = closure;
    atomic_fetch_add(&bus->gen, 1);
    log_info("nats connected");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    if (natsConnection_IsClosed(nc)) return; /* bus_close */
    log_warn("nats disconnected, reconnecting in the background");
}

static natsStatus set_options(natsOptions *o, const char *urls, bus_t *bus)
{
    /* natsOptions_SetURL accepts a comma-separated list. */
    natsStatus s = natsOptions_SetURL(o, urls);
    if (s == NATS_OK) s = natsOptions_SetName(o, "ates");
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, BUS_RECONNECT_WAIT_MS);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, BUS_CONNECT_TIMEOUT_MS);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_connected, bus);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, bus);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, bus);
    return s;
}

int bus_open(bus_t **out, const char *urls, const schema_registry_t *schemas)
{
    bus_t *bus = calloc(1, sizeof(*bus));
    if (!bus) return diag_set(DIAG_INTERNAL, "out of memory");
    bus->schemas = schemas;
    bus->urls = strdup(urls && *urls ? urls : NATS_DEFAULT_URL);
    pthread_mutex_init(&bus->lock, NULL);
    atomic_fetch_add(&g_open, 1);
    natsOptions *o = NULL;
    natsStatus s = bus->urls ? natsOptions_Create(&o) : NATS_NO_MEMORY;
    if (s == NATS_OK) s = set_options(o, bus->urls, bus);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&bus->nc, o);
        if (s == NATS_NOT_YET_CONNECTED) {
            log_warn("nats at %s not reachable yet, retrying in the background", urls);
            s = NATS_OK;
        } else if (s == NATS_OK) {
            atomic_fetch_add(&bus->gen, 1);
        }
    }
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        bus_nats_error(DIAG_UNAVAILABLE, s, "nats connect");
        bus_close(bus);
        return -1;
    }
    if (schemas) bus_set_schemas(schemas);
    *out = bus;
    return 0;
}

void bus_close(bus_t *bus)
{
    if (!bus) return;
    bus_stop_all(bus);
    natsConnection_Destroy(bus->nc);
    for (int i = 0; i < bus->nstreams; i++) {
        free((void *)bus->streams[i].name);
        free((void *)bus->streams[i].subjects);
    }
    free(bus->streams);
    free(bus->urls);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
    if (atomic_fetch_sub(&g_open, 1) == 1) nats_CloseAndWait(BUS_JS_WAIT_MS);
}

bool bus_connected(bus_t *bus)
{
    return bus && bus->nc && natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
}

int bus_ping(bus_t *bus)
{
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    natsStatus s = natsConnection_FlushTimeout(bus->nc, BUS_PING_TIMEOUT_MS);
    return s == NATS_OK ? 0 : bus_nats_error(DIAG_UNAVAILABLE, s, "nats ping");
}

natsConnection *bus_connect_once(bus_t *bus, const char *name)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetURL(o, bus->urls);
    if (s == NATS_OK) s = natsOptions_SetName(o, name);
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, BUS_CONNECT_TIMEOUT_MS);
    if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        bus_nats_error(DIAG_UNAVAILABLE, s, "nats connect");
        natsConnection_Destroy(nc);
        return NULL;
    }
    return nc;
}

jsCtx *bus_js(bus_t *bus)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = BUS_JS_WAIT_MS;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream(&js, bus->nc, &o);
    if (s != NATS_OK) {
        bus_nats_error(DIAG_INTERNAL, s, "jetstream context");
        return NULL;
    }
    return js;
}

void bus_sub_destroy(bus_t *bus, natsSubscription *sub)
{
    if (!sub) return;
    natsSubscription_Unsubscribe(sub);
    if (bus_connected(bus)) natsConnection_FlushTimeout(bus->nc, BUS_PING_TIMEOUT_MS);
    natsSubscription_Destroy(sub);
}

/* ---- streams ---------------------------------------------------------- */

static int ensure_one(jsCtx *js, const char *name, const char *subjects)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK) return 0; /* existing streams are left as they are */
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return bus_nats_error(DIAG_UNAVAILABLE, s, name);

    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subj[1] = {subjects};
    cfg.Name = name;
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = BUS_DUP_WINDOW_NS;
    si = NULL;
    jerr = 0;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) {
        if (s == NATS_OK) log_info("created stream %s (%s)", name, subjects);
        return 0;
    }
    return bus_nats_error(DIAG_UNAVAILABLE, s, name);
}

static int remember_one(bus_t *bus, const char *name, const char *subjects)
{
    for (int i = 0; i < bus->nstreams; i++)
        if (strcmp(bus->streams[i].name, name) == 0) return 0;
    if (bus->nstreams >= BUS_MAX_STREAMS) return diag_set(DIAG_INTERNAL, "too many streams");
    if (!bus->streams) {
        bus->streams = calloc(BUS_MAX_STREAMS, sizeof(*bus->streams));
        if (!bus->streams) return diag_set(DIAG_INTERNAL, "out of memory");
    }
    char *n = strdup(name), *s = strdup(subjects);
    if (!n || !s) {
        free(n);
        free(s);
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
    bus->streams[bus->nstreams].name = n;
    bus->streams[bus->nstreams].subjects = s;
    bus->nstreams++;
    return 0;
}

int bus_remember_streams(bus_t *bus, const bus_stream_t *streams)
{
    int rc = 0;
    pthread_mutex_lock(&bus->lock);
    rc = remember_one(bus, BUS_DLQ_STREAM, BUS_DLQ_SUBJECTS);
    for (int i = 0; rc == 0 && streams && streams[i].name; i++)
        rc = remember_one(bus, streams[i].name, streams[i].subjects);
    pthread_mutex_unlock(&bus->lock);
    return rc;
}

/* Ensure the remembered streams, with a snapshot taken under the lock. */
static int ensure_remembered(bus_t *bus)
{
    bus_stream_t snap[BUS_MAX_STREAMS];
    char names[BUS_MAX_STREAMS][64], subjects[BUS_MAX_STREAMS][256];
    pthread_mutex_lock(&bus->lock);
    int n = bus->nstreams;
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%s", bus->streams[i].name);
        snprintf(subjects[i], sizeof(subjects[i]), "%s", bus->streams[i].subjects);
        snap[i].name = names[i];
        snap[i].subjects = subjects[i];
    }
    pthread_mutex_unlock(&bus->lock);

    jsCtx *js = bus_js(bus);
    if (!js) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = ensure_one(js, snap[i].name, snap[i].subjects);
    jsCtx_Destroy(js);
    return rc;
}

int bus_ensure_streams(bus_t *bus, const bus_stream_t *streams)
{
    if (bus_remember_streams(bus, streams) < 0) return -1;
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    return ensure_remembered(bus);
}

int bus_ensure_known(bus_t *bus, int *seen_gen)
{
    int gen = atomic_load(&bus->gen);
    if (gen == *seen_gen) return 0;
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    if (ensure_remembered(bus) < 0) return -1;
    *seen_gen = gen;
    return 0;
}

/* ---- worker threads --------------------------------------------------- */

int bus_worker_start(bus_t *bus, bus_worker_t *w, void *(*fn)(void *),
                     void (*destroy)(bus_worker_t *w))
{
    w->bus = bus;
    w->destroy = destroy;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, fn, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        return diag_set(DIAG_INTERNAL, "pthread_create failed");
    }
    pthread_mutex_lock(&bus->lock);
    w->next = bus->workers;
    bus->workers = w;
    pthread_mutex_unlock(&bus->lock);
    return 0;
}

void bus_worker_fini(bus_worker_t *w)
{
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

bool bus_worker_stopping(bus_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

void bus_worker_wake(bus_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->wakeups++;
    if (w->sleeping) pthread_cond_signal(&w->cond); /* a busy worker sees the count later */
    pthread_mutex_unlock(&w->lock);
}

void bus_worker_mark(bus_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->seen = w->wakeups;
    pthread_mutex_unlock(&w->lock);
}

void bus_worker_sleep(bus_worker_t *w, int64_t ms, bool wakeable)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    w->sleeping = true;
    while (!w->stop && !(wakeable && w->wakeups != w->seen)) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) != 0) break;
    }
    w->sleeping = false;
    pthread_mutex_unlock(&w->lock);
}

void bus_set_wake(bus_t *bus, uint64_t (*fn)(const void *ud), const void *ud)
{
    bus->wake = fn;
    bus->wake_ud = ud;
}

int64_t bus_backoff_next(int64_t prev_ms)
{
    if (prev_ms <= 0) return BUS_BACKOFF_MIN_MS;
    return prev_ms * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : prev_ms * 2;
}

void bus_stop_all(bus_t *bus)
{
    pthread_mutex_lock(&bus->lock);
    bus_worker_t *list = bus->workers;
    bus->workers = NULL;
    pthread_mutex_unlock(&bus->lock);
    for (bus_worker_t *w = list; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    while (list) {
        bus_worker_t *next = list->next;
        pthread_join(list->thread, NULL);
        list->destroy(list); /* calls bus_worker_fini */
        list = next;
    }
}

/* ---- emit ------------------------------------------------------------- */

void bus_set_schemas(const schema_registry_t *schemas) { atomic_store(&g_schemas, schemas); }

/* The envelope of a new event around `data` (consumed); NULL with a diag.
 * trace: NULL for the calling thread's log trace, "" for a new one. */
static cJSON *envelope(const char *producer, const char *trace, const char *name, int version,
                       cJSON *data, char id[UUID_LEN])
{
    cJSON *env = cJSON_CreateObject();
    if (!env) {
        cJSON_Delete(data);
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    char when[CLOCK_RFC3339_LEN], fresh[UUID_LEN];
    uuid_v7(id);
    clock_rfc3339(clock_now_ms(), when);
    const char *tr = trace ? trace : log_trace();
    if (!*tr) {
        uuid_v7(fresh);
        tr = fresh;
    }
    cJSON_AddStringToObject(env, "event_id", id);
    cJSON_AddStringToObject(env, "event_name", name);
    cJSON_AddNumberToObject(env, "event_version", version);
    cJSON_AddStringToObject(env, "event_time", when);
    cJSON_AddStringToObject(env, "producer", producer);
    cJSON_AddStringToObject(env, "trace_id", tr);
    if (!cJSON_AddItemToObject(env, "data", data)) {
        cJSON_Delete(data);
        cJSON_Delete(env);
        diag_set(DIAG_INTERNAL, "out of memory");
        return NULL;
    }
    return env;
}

/* Schema check of a whole envelope: no schema is DIAG_INTERNAL, a mismatch
 * keeps the validator's DIAG_VALIDATION (a request whose input makes the
 * event invalid answers 422; a handler's bad event is dead-lettered). */
static int check_envelope(const cJSON *env, const char *name, int version)
{
    const schema_registry_t *reg = atomic_load(&g_schemas);
    if (schema_validate_event(reg, name, version, env) < 0) {
        if (diag_last()->kind == DIAG_NOT_FOUND)
            return diag_set(DIAG_INTERNAL, "no schema for event %s v%d", name, version);
        char why[sizeof(diag_last()->message)];
        snprintf(why, sizeof(why), "%s", diag_last()->message);
        return diag_set(DIAG_VALIDATION, "event %s v%d: %s", name, version, why);
    }
    return 0;
}

static int insert_outbox(db_conn_t *tx, const char *id, const char *subject, const char *name,
                         int version, const char *body, size_t body_len)
{
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO outbox(event_id, subject, name, version, body, "
                                   "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, subject) < 0 ||
        db_bind_text(st, 3, name) < 0 || db_bind_int64(st, 4, version) < 0 ||
        db_bind_int64(st, 6, clock_now_ms()) < 0)
        return -1;
    /* the body outlives the step: bound without a copy */
    if (body_len > INT_MAX || sqlite3_bind_text(st, 5, body, (int)body_len, SQLITE_STATIC) != SQLITE_OK)
        return diag_set(DIAG_INTERNAL, "bind of a %zu byte event body failed", body_len);
    int rc = db_step_done(tx, st);
    sqlite3_clear_bindings(st); /* no pointer to the body stays behind */
    return rc;
}

/* The envelope printed into `buf` when it fits (the common case, no
 * allocation), else into a malloc'd string stored in *heap. */
static const char *print_body(const cJSON *env, char *buf, size_t cap, char **heap)
{
    if (cJSON_PrintPreallocated((cJSON *)env, buf, (int)cap, false)) return buf;
    return *heap = json_print(env);
}

/* The envelope around `data` (consumed), checked and printed into `buf`
 * when it fits, else into *heap; the body, or NULL with a diag. */
static const char *build(const char *producer, const char *trace, const char *name, int version,
                         cJSON *data, char id[UUID_LEN], char *buf, size_t cap, char **heap)
{
    *heap = NULL;
    if (!name || !*name || !cJSON_IsObject(data)) {
        cJSON_Delete(data);
        diag_set(DIAG_INTERNAL, "bus_emit: subject, name and a data object are required");
        return NULL;
    }
    const char *body = NULL;
    cJSON *env = envelope(producer, trace, name, version, data, id);
    if (env && check_envelope(env, name, version) == 0 &&
        !(body = print_body(env, buf, cap, heap)))
        diag_set(DIAG_INTERNAL, "out of memory");
    cJSON_Delete(env);
    return body;
}

/* The row of an event whose body is built, and the relay's wake-up. */
static int write_row(db_conn_t *tx, const char *subject, const char *name, int version,
                     const char *id, const char *body, size_t len, char *event_id_out)
{
    if (insert_outbox(tx, id, subject, name, version, body, len) < 0 ||
        db_after_commit(tx, bus_relay_wake_db, db_conn_db(tx)) < 0)
        return -1;
    if (event_id_out) memcpy(event_id_out, id, UUID_LEN);
    return 0;
}

static bool in_tx(db_conn_t *tx, const char *subject)
{
    if (!tx || !db_in_tx(tx)) {
        diag_set(DIAG_INTERNAL, "bus_emit outside a transaction");
        return false;
    }
    if (!subject || !*subject) {
        diag_set(DIAG_INTERNAL, "bus_emit: subject, name and a data object are required");
        return false;
    }
    return true;
}

int bus_emit(db_conn_t *tx, const char *subject, const char *name, int version, cJSON *data,
             char *event_id_out)
{
    if (!in_tx(tx, subject)) {
        cJSON_Delete(data);
        return -1;
    }
    char id[UUID_LEN];
    char buf[BUS_BODY_BUF];
    char *heap = NULL;
    const char *body =
        build(db_name(db_conn_db(tx)), NULL, name, version, data, id, buf, sizeof(buf), &heap);
    int rc = body ? write_row(tx, subject, name, version, id, body, strlen(body), event_id_out)
                  : -1;
    free(heap);
    return rc;
}

int bus_prepare(const char *producer, const char *trace, const char *name, int version,
                cJSON *data, bus_prepared_t *out)
{
    memset(out, 0, sizeof(*out));
    char buf[BUS_BODY_BUF];
    char *heap = NULL;
    const char *body = build(producer, trace ? trace : "", name, version, data, out->id, buf,
                             sizeof(buf), &heap);
    if (!body) return -1;
    out->len = strlen(body);
    out->body = heap ? heap : strdup(body);
    if (!out->body) return diag_set(DIAG_INTERNAL, "out of memory");
    out->name = name;
    out->version = version;
    return 0;
}

int bus_emit_prepared(db_conn_t *tx, const char *subject, bus_prepared_t *p, char *event_id_out)
{
    int rc = -1;
    if (!p->body)
        diag_set(DIAG_INTERNAL, "bus_emit_prepared: no body");
    else if (in_tx(tx, subject))
        rc = write_row(tx, subject, p->name, p->version, p->id, p->body, p->len, event_id_out);
    bus_prepared_free(p);
    return rc;
}

void bus_prepared_free(bus_prepared_t *p)
{
    free(p->body);
    p->body = NULL;
}

int64_t bus_outbox_pending(db_t *db)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT count(*) FROM outbox") : NULL;
    if (!st || db_step(c, st) != 1) return -1;
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}
