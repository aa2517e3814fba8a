/*
 * bus_relay: the outbox relay, one thread per service database.
 *
 * A pipeline, not stop-and-wait: rows are read in seq order (RELAY_READ at
 * a time, after the last one read) and published asynchronously
 * (Nats-Msg-Id = event id, Ates-Event, Ates-Version) while earlier ones
 * are still waiting for their acks, up to RELAY_WINDOW rows in flight. The
 * acknowledged prefix of the window leaves it at once (it is published:
 * the metric counts it); its rows are deleted from the outbox later, with
 * one range delete once RELAY_RETIRE of them wait, or when there is
 * nothing new to read. That delete never waits for the write lock: while
 * another connection holds it (a shuffle writes chunk after chunk) the
 * relay goes on publishing, and only a backlog of RELAY_DELETE_FORCE rows
 * waits for its turn. After a negative ack nothing more is published until
 * the whole window is answered; then the window is dropped and, after a
 * backoff, reading starts again after the acknowledged prefix (a
 * re-publish is harmless: the stream's duplicate window drops it). When
 * nothing is answered for BUS_JS_WAIT_MS while publishes wait, the relay's
 * connection is closed and the same happens on a new one (no per-publish
 * timers of nats.c, no taking back of its pending publishes). A new relay
 * (a restart) reads from the oldest row left.
 * An idle relay waits for a commit that emitted (bus_relay_wake_db) or
 * RELAY_IDLE_MS, which also catches rows written by another process.
 *
 * Commits are serial in SQLite and seq is AUTOINCREMENT, so a row never
 * appears behind one already read, and the window's rows are consecutive
 * rows of the outbox.
 *
 * Order: the relay publishes on a connection of its own that never
 * reconnects and buffers nothing while down (bus_connect_once). The shared
 * connection would keep what is published while it reconnects and send it
 * after the reconnect, ahead of earlier events lost with the old socket
 * and published again: a task's TaskAssigned events would reach the stream
 * out of order. On its own connection, what the server took is a prefix of
 * what was sent; when it breaks, the window is dropped and everything not
 * acknowledged goes out again, in order, on a new one.
 *
 * Threads: the relay thread owns everything here except the rows' states
 * and the counters under ack_lock, which the nats.c thread that delivers
 * publish acks writes.
 */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define RELAY_WINDOW 8192 /* rows published and not yet deleted */
#define RELAY_READ 512    /* rows read per query */
#define RELAY_RETIRE 2048 /* acknowledged rows that make a delete worth it */
#define RELAY_DELETE_FORCE 65536 /* acknowledged rows left that make a delete wait for the lock */
#define RELAY_WAKE 512    /* acks between wake-ups of the relay thread */
#define RELAY_IDLE_MS 1000

enum { ROW_PENDING, ROW_ACKED, ROW_FAILED };

typedef struct relay_row {
    int64_t seq;
    char event_id[UUID_LEN];
    int state; /* ROW_*, set by on_ack */
} relay_row_t;

typedef struct bus_relay {
    bus_worker_t w; /* first: the worker is the relay */
    db_t *db;
    natsConnection *nc;        /* its own (bus_connect_once); NULL until connected */
    jsCtx *js;                 /* on nc, with its own pending-ack map */
    char name[64];             /* of the connection */
    pthread_mutex_t ack_lock;  /* guards ring[].state, hint, resolved, failed */
    relay_row_t ring[RELAY_WINDOW];
    int head, count;           /* the window: ring[head], ... count rows */
    int hint;                  /* ring offset where on_ack starts looking: acks come in order */
    int resolved;              /* rows of the window acked or failed */
    int failed;                /* rows of the window failed */
    int64_t progress_ms;       /* last answer, or first publish after none was waiting */
    int64_t last_seq;          /* the last row read; 0: read from the oldest */
    int64_t acked_seq;         /* every row up to this one is acknowledged (0: none yet) */
    int64_t deleted_seq;       /* every row up to this one is deleted (as far as we know) */
    int64_t undeleted;         /* acknowledged rows not deleted yet */
    bool published_once;       /* js has a pending-ack map (nats.c 3.4.1 makes it on the
                                  first async publish; asking for pending before crashes) */
    metrics_counter_t *published; /* ates_bus_published_total{service} */
    struct bus_relay *next;    /* in g_relays */
} bus_relay_t;

/* Every running relay, for the after-commit wake-up by db. */
static pthread_mutex_t g_relays_lock = PTHREAD_MUTEX_INITIALIZER;
static bus_relay_t *g_relays;

void bus_relay_wake_db(void *arg)
{
    pthread_mutex_lock(&g_relays_lock);
    for (bus_relay_t *r = g_relays; r; r = r->next)
        if (r->db == arg) bus_worker_wake(&r->w);
    pthread_mutex_unlock(&g_relays_lock);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static relay_row_t *ring_at(bus_relay_t *r, int k) { return &r->ring[(r->head + k) % RELAY_WINDOW]; }

/* nats.c thread: the server's answer to one publish. The row is found by its Nats-Msg-Id, so an answer to a publish of a
 * dropped window marks a row only if that very event is in the window
 * (and then it is indeed stored). */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    bus_relay_t *r = closure;
    const char *id = NULL;
    bool wake = false;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) id = NULL;
    pthread_mutex_lock(&r->ack_lock);
    for (int k = 0; id && k < r->count; k++) {
        int off = (r->hint + k) % r->count;
        relay_row_t *row = ring_at(r, off);
        if (row->state == ROW_PENDING && strcmp(row->event_id, id) == 0) {
            row->state = pa ? ROW_ACKED : ROW_FAILED;
            r->failed += !pa;
            r->resolved++;
            r->progress_ms = mono_ms();
            r->hint = off + 1;
            wake = !pa || r->resolved == r->count || r->resolved % RELAY_WAKE == 0;
            break;
        }
    }
    pthread_mutex_unlock(&r->ack_lock);
    if (!pa && pae) log_warn("publish of %s failed: %s", id ? id : "?", pae->ErrText);
    natsMsg_Destroy(msg);
    if (wake) bus_worker_wake(&r->w);
}

static natsMsg *make_msg(sqlite3_stmt *st)
{
    natsMsg *m = NULL;
    const char *body = db_col_text(st, 5);
    char ver[16];
    snprintf(ver, sizeof(ver), "%d", sqlite3_column_int(st, 4));
    natsStatus s = natsMsg_Create(&m, db_col_text(st, 2), NULL, body, (int)strlen(body));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", db_col_text(st, 1));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Event", db_col_text(st, 3));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Version", ver);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        bus_nats_error(DIAG_INTERNAL, s, "build message");
        return NULL;
    }
    return m;
}

/* Read up to `room` rows after last_seq into the window and msgs[]; the
 * count, or -1. The rows join the window before they are published, so
 * an ack never misses its row. */
static int load_rows(bus_relay_t *r, db_conn_t *c, natsMsg **msgs, int room)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT seq, event_id, subject, name, version, body "
                                  "FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!st || db_bind_int64(st, 1, r->last_seq) < 0 || db_bind_int64(st, 2, room) < 0)
        return -1;
    int n = 0, rc = 0;
    pthread_mutex_lock(&r->ack_lock);
    if (r->resolved == r->count) r->progress_ms = mono_ms(); /* the clock starts now */
    while (n < room && (rc = db_step(c, st)) == 1) {
        if (!(msgs[n] = make_msg(st))) {
            rc = -1;
            break;
        }
        relay_row_t *row = ring_at(r, r->count);
        row->seq = sqlite3_column_int64(st, 0);
        snprintf(row->event_id, UUID_LEN, "%s", db_col_text(st, 1));
        row->state = ROW_PENDING;
        r->count++;
        r->last_seq = row->seq;
        n++;
    }
    pthread_mutex_unlock(&r->ack_lock);
    sqlite3_reset(st);
    return rc < 0 && n == 0 ? -1 : n; /* on a late error, publish what was read */
}

/* Publish msgs[0..n) (consumed). A publish that nats.c refuses at once is
 * marked failed like a negative ack. */
static void publish_rows(bus_relay_t *r, natsMsg **msgs, int n)
{
    for (int i = 0; i < n; i++) {
        r->published_once = true;
        natsStatus s = js_PublishMsgAsync(r->js, &msgs[i], NULL);
        if (s == NATS_OK) continue;
        bus_nats_error(DIAG_UNAVAILABLE, s, "publish");
        log_diag(LOG_WARN, "outbox relay");
        pthread_mutex_lock(&r->ack_lock);
        for (int j = i; j < n; j++) {
            natsMsg_Destroy(msgs[j]);
            relay_row_t *row = ring_at(r, r->count - n + j);
            if (row->state == ROW_PENDING) {
                row->state = ROW_FAILED;
                r->failed++;
                r->resolved++;
            }
        }
        pthread_mutex_unlock(&r->ack_lock);
        return;
    }
}

/* Take the acknowledged prefix off the window: those rows are published
 * and only wait to be deleted. */
static void ack_prefix(bus_relay_t *r)
{
    int k = 0;
    pthread_mutex_lock(&r->ack_lock);
    while (k < r->count && ring_at(r, k)->state == ROW_ACKED) k++;
    if (k > 0) {
        r->acked_seq = ring_at(r, k - 1)->seq;
        r->head = (r->head + k) % RELAY_WINDOW;
        r->count -= k;
        r->resolved -= k;
        r->hint = r->hint > k ? r->hint - k : 0; /* it counts from head */
    }
    pthread_mutex_unlock(&r->ack_lock);
    if (k == 0) return;
    r->undeleted += k;
    metrics_inc(r->published, (uint64_t)k);
}

/* Delete the acknowledged rows when at least `min` wait: one range delete,
 * which gives up at once when another connection holds the write lock
 * (unless `wait`, or RELAY_DELETE_FORCE rows wait). -1 only on an error. */
static int delete_acked(bus_relay_t *r, db_conn_t *c, int64_t min, bool wait)
{
    if (r->undeleted == 0 || r->undeleted < min) return 0;
    wait = wait || r->undeleted >= RELAY_DELETE_FORCE;
    sqlite3_stmt *st = db_stmt(c, "DELETE FROM outbox WHERE seq > ?1 AND seq <= ?2");
    if (!st || db_bind_int64(st, 1, r->deleted_seq) < 0 || db_bind_int64(st, 2, r->acked_seq) < 0)
        return -1;
    db_set_wait(c, wait);
    int rc = db_step_done(c, st);
    db_set_wait(c, true);
    if (rc < 0) return !wait && diag_last()->kind == DIAG_UNAVAILABLE ? 0 : -1;
    r->deleted_seq = r->acked_seq;
    r->undeleted = 0;
    return 0;
}

/* After a failure or a lost connection: drop the window (answers still
 * coming for it are ignored) and read again after the acknowledged
 * prefix. */
static void window_reset(bus_relay_t *r)
{
    pthread_mutex_lock(&r->ack_lock);
    r->head = r->count = r->hint = r->resolved = r->failed = 0;
    r->last_seq = r->acked_seq;
    pthread_mutex_unlock(&r->ack_lock);
}

/* At exit: let the answers in flight arrive (at most BUS_JS_WAIT_MS). */
static void settle_pending(bus_relay_t *r)
{
    if (!r->js || !r->published_once) return;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = BUS_JS_WAIT_MS;
    js_PublishAsyncComplete(r->js, &po);
}

static void unlink_nats(bus_relay_t *r)
{
    if (r->nc) natsConnection_Close(r->nc);
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
    r->js = NULL;
    r->nc = NULL;
    r->published_once = false;
}

/* 1 when the relay's connection is up (connecting it if need be), 0 when
 * it is not, -1 when it was lost with rows in flight (window dropped). */
static int link_nats(bus_relay_t *r)
{
    if (r->nc && natsConnection_Status(r->nc) == NATS_CONN_STATUS_CONNECTED) return 1;
    if (r->nc) { /* broken: nothing of it comes back; what it carried goes out again */
        log_warn("outbox relay: nats connection lost; publishing again what was not acknowledged");
        window_reset(r);
        unlink_nats(r);
        return -1;
    }
    if (!bus_connected(r->w.bus)) return 0; /* the shared one reconnects in the background */
    if (!(r->nc = bus_connect_once(r->w.bus, r->name))) return 0;
    if (!(r->js = bus_js_on(r->nc, on_ack, r))) {
        unlink_nats(r);
        return 0;
    }
    return 1;
}

typedef enum { STEP_IDLE, STEP_BUSY, STEP_WAIT, STEP_RETRY } step_t;

/* One turn of the pipeline. */
static step_t relay_step(bus_relay_t *r, db_conn_t *c, int *seen_gen)
{
    int up = link_nats(r);
    if (up < 0) {
        *seen_gen = -1;
        return STEP_RETRY;
    }
    pthread_mutex_lock(&r->ack_lock);
    int count = r->count, resolved = r->resolved, failed = r->failed;
    int64_t progress = r->progress_ms;
    pthread_mutex_unlock(&r->ack_lock);

    if (resolved < count && mono_ms() - progress > BUS_JS_WAIT_MS) { /* JetStream went quiet */
        log_warn("outbox relay: %d publishes without an answer for %d ms; publishing them again "
                 "on a new connection", count - resolved, BUS_JS_WAIT_MS);
        window_reset(r);
        unlink_nats(r);
        *seen_gen = -1;
        return STEP_RETRY;
    }
    if (failed > 0) { /* nothing more goes out until every answer is in */
        if (resolved < count) return STEP_WAIT;
        ack_prefix(r);
        window_reset(r);
        *seen_gen = -1; /* e.g. a stream is gone: re-ensure */
        return STEP_RETRY;
    }

    int loaded = 0;
    if (count < RELAY_WINDOW) {
        natsMsg *msgs[RELAY_READ];
        int room = RELAY_WINDOW - count < RELAY_READ ? RELAY_WINDOW - count : RELAY_READ;
        if (up == 0 || bus_ensure_known(r->w.bus, seen_gen) < 0) {
            if (count == 0) return STEP_RETRY;
        } else if ((loaded = load_rows(r, c, msgs, room)) < 0) {
            log_diag(LOG_ERROR, "outbox relay: read outbox");
            if (count == 0) return STEP_RETRY;
            loaded = 0;
        } else {
            publish_rows(r, msgs, loaded);
        }
    }
    /* under load, deletes wait for a long prefix; otherwise the next turn
     * would only wait, so take what is acknowledged now */
    ack_prefix(r);
    if (delete_acked(r, c, loaded > 0 ? RELAY_RETIRE : 1, false) < 0) {
        log_diag(LOG_ERROR, "outbox relay: delete published rows");
        return STEP_RETRY;
    }
    if (loaded > 0) return STEP_BUSY;
    pthread_mutex_lock(&r->ack_lock);
    count = r->count;
    pthread_mutex_unlock(&r->ack_lock);
    return count > 0 || r->undeleted > 0 ? STEP_WAIT : STEP_IDLE;
}

static void *relay_main(void *arg)
{
    bus_relay_t *r = arg;
    log_set_service(db_name(r->db));
    char name[16]; /* for top -H and perf */
    snprintf(name, sizeof(name), "r:%.13s", db_name(r->db));
    pthread_setname_np(pthread_self(), name);
    db_conn_t *c = db_conn(r->db);
    int seen_gen = -1;
    int64_t backoff = 0;
    while (c && !bus_worker_stopping(&r->w)) {
        bus_worker_mark(&r->w); /* commits and acks from here on wake the sleeps below */
        switch (relay_step(r, c, &seen_gen)) {
        case STEP_BUSY:
            backoff = 0;
            break;
        case STEP_WAIT: /* acks on their way: woken by on_ack or a commit */
            bus_worker_sleep(&r->w, 100, true);
            break;
        case STEP_IDLE:
            backoff = 0;
            bus_worker_sleep(&r->w, RELAY_IDLE_MS, true);
            break;
        case STEP_RETRY:
            backoff = bus_backoff_next(backoff);
            bus_worker_sleep(&r->w, backoff, false);
            break;
        }
    }
    if (!c) log_diag(LOG_ERROR, "outbox relay: no database connection");
    settle_pending(r);
    if (c) { /* what was acknowledged is not published again by the next start */
        ack_prefix(r);
        if (delete_acked(r, c, 1, true) < 0)
            log_diag(LOG_WARN, "outbox relay: delete published rows at exit");
    }
    unlink_nats(r);
    return NULL;
}

static void relay_unregister(bus_relay_t *r)
{
    pthread_mutex_lock(&g_relays_lock);
    for (bus_relay_t **pp = &g_relays; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_relays_lock);
}

static void relay_free(bus_relay_t *r)
{
    unlink_nats(r);
    pthread_mutex_destroy(&r->ack_lock);
    free(r);
}

/* After join (bus_stop_all): unregister, then nobody can wake it; free. */
static void relay_destroy(bus_worker_t *w)
{
    bus_relay_t *r = (bus_relay_t *)w;
    relay_unregister(r);
    bus_worker_fini(w);
    relay_free(r);
}

int bus_relay_start(bus_t *bus, db_t *db)
{
    bus_relay_t *r = calloc(1, sizeof(*r));
    if (!r) return diag_set(DIAG_INTERNAL, "out of memory");
    r->db = db;
    char labels[96];
    snprintf(labels, sizeof(labels), "service=\"%s\"", db_name(db));
    r->published = metrics_counter("ates_bus_published_total",
                                   "Events published from the outbox and acknowledged", labels);
    snprintf(r->name, sizeof(r->name), "ates relay %s", db_name(db));
    pthread_mutex_init(&r->ack_lock, NULL);
    if (bus_worker_start(bus, &r->w, relay_main, relay_destroy) < 0) {
        relay_free(r);
        return -1;
    }
    /* Registered once its lock exists; the first round reads the outbox
     * anyway, so no commit before this point is missed. */
    pthread_mutex_lock(&g_relays_lock);
    r->next = g_relays;
    g_relays = r;
    pthread_mutex_unlock(&g_relays_lock);
    return 0;
}
