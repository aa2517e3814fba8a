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
 * connection is closed and the same happens on a new one. A new relay (a
 * restart) reads from the oldest row left.
 *
 * Publishes are plain NATS publishes with a reply subject "<inbox>.<seq>";
 * JetStream answers each on it, and the relay thread itself takes the
 * answers from a synchronous subscription on "<inbox>.*", finding the row by
 * the seq in the subject. nats.c's JetStream publish would keep a map of
 * pending publishes, parse every answer as JSON and hand it to a callback
 * on another thread: a third of the relay's CPU, and locks shared with it.
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
 * Threads: the relay thread owns everything here.
 */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define RELAY_WINDOW 8192 /* rows published and not yet acknowledged, with all before them */
#define RELAY_READ 512    /* rows read per query */
#define RELAY_RETIRE 2048 /* acknowledged rows that make a delete worth it */
#define RELAY_DELETE_FORCE 65536 /* acknowledged rows left that make a delete wait for the lock */
#define RELAY_ACK_WAIT_MS 100 /* a relay with publishes in flight waits this long for an answer */
#define RELAY_IDLE_MS 1000

enum { ROW_PENDING, ROW_ACKED, ROW_FAILED };

typedef struct relay_row {
    int64_t seq;
    char event_id[UUID_LEN];
    int state; /* ROW_* */
} relay_row_t;

typedef struct bus_relay {
    bus_worker_t w; /* first: the worker is the relay */
    db_t *db;
    natsConnection *nc;        /* its own (bus_connect_once); NULL until connected */
    natsSubscription *acks;    /* sync, on "<inbox>.*": the answers to publishes */
    char inbox[96];            /* the answers' subject prefix, with its '.' */
    char name[64];             /* of the connection */
    relay_row_t ring[RELAY_WINDOW];
    int head, count;           /* the window: ring[head], ... count rows */
    int resolved;              /* rows of the window acked or failed */
    int failed;                /* rows of the window failed */
    int64_t progress_ms;       /* last answer, or first publish after none was waiting */
    int64_t last_seq;          /* the last row read; 0: read from the oldest */
    int64_t acked_seq;         /* every row up to this one is acknowledged (0: none yet) */
    int64_t deleted_seq;       /* every row up to this one is deleted (as far as we know) */
    int64_t undeleted;         /* acknowledged rows not deleted yet */
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

/* The window's row of `seq` (seqs grow along the window), NULL if none. */
static relay_row_t *find_row(bus_relay_t *r, int64_t seq)
{
    int lo = 0, hi = r->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        relay_row_t *row = ring_at(r, mid);
        if (row->seq == seq) return row;
        if (row->seq < seq) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* One answer of JetStream (or of the server: no stream for the subject).
 * An answer to a publish of a dropped window marks a row only if that
 * very row is in the window again (and then it is indeed stored). */
static void on_answer(bus_relay_t *r, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subject, '.');
    char *end = NULL;
    int64_t seq = dot ? strtoll(dot + 1, &end, 10) : 0;
    relay_row_t *row = end && *end == '\0' ? find_row(r, seq) : NULL;
    if (!row || row->state != ROW_PENDING) return;
    /* a PubAck names the stream and the seq; an error or a status does not */
    const char *data = natsMsg_GetData(msg);
    bool ok = data && strstr(data, "\"seq\"") && !strstr(data, "\"error\"");
    row->state = ok ? ROW_ACKED : ROW_FAILED;
    r->failed += !ok;
    r->resolved++;
    r->progress_ms = mono_ms();
    if (!ok)
        log_warn("publish of %s failed: %.200s", row->event_id,
                 data && *data ? data : "no stream took it");
}

/* Take the answers that came, waiting up to wait_ms for the first one. */
static void take_answers(bus_relay_t *r, int64_t wait_ms)
{
    natsMsg *msg = NULL;
    while (r->acks && natsSubscription_NextMsg(&msg, r->acks, wait_ms) == NATS_OK) {
        on_answer(r, msg);
        natsMsg_Destroy(msg);
        msg = NULL;
        wait_ms = 0;
    }
}

/* Publish one row: subject, body, the three headers and the reply subject
 * that brings its answer. */
static natsStatus publish_row(bus_relay_t *r, sqlite3_stmt *st, int64_t seq)
{
    natsMsg *m = NULL;
    char reply[128], ver[16];
    snprintf(reply, sizeof(reply), "%s%lld", r->inbox, (long long)seq);
    snprintf(ver, sizeof(ver), "%d", sqlite3_column_int(st, 4));
    const char *body = db_col_text(st, 5);
    natsStatus s = natsMsg_Create(&m, db_col_text(st, 2), reply, body, sqlite3_column_bytes(st, 5));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", db_col_text(st, 1));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Event", db_col_text(st, 3));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Version", ver);
    if (s == NATS_OK) s = natsConnection_PublishMsg(r->nc, m);
    natsMsg_Destroy(m);
    return s;
}

/* Read up to `room` rows after last_seq, put them in the window and
 * publish them; the count, or -1. A publish that nats.c refuses at once
 * fails its row (and the rest of the read) like a negative answer. */
static int publish_rows(bus_relay_t *r, db_conn_t *c, int room)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT seq, event_id, subject, name, version, body "
                                  "FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!st || db_bind_int64(st, 1, r->last_seq) < 0 || db_bind_int64(st, 2, room) < 0)
        return -1;
    int n = 0, rc = 0;
    if (r->resolved == r->count) r->progress_ms = mono_ms(); /* the clock starts now */
    natsStatus s = NATS_OK;
    while (n < room && (rc = db_step(c, st)) == 1) {
        relay_row_t *row = ring_at(r, r->count);
        row->seq = sqlite3_column_int64(st, 0);
        snprintf(row->event_id, UUID_LEN, "%s", db_col_text(st, 1));
        row->state = ROW_PENDING;
        r->count++;
        r->last_seq = row->seq;
        n++;
        if (s == NATS_OK) s = publish_row(r, st, row->seq);
        if (s != NATS_OK) { /* this row and the rest of the read fail */
            row->state = ROW_FAILED;
            r->failed++;
            r->resolved++;
        }
    }
    sqlite3_reset(st);
    if (s != NATS_OK) {
        bus_nats_error(DIAG_UNAVAILABLE, s, "publish");
        log_diag(LOG_WARN, "outbox relay");
    }
    return rc < 0 && n == 0 ? -1 : n; /* on a late error, what was read is out */
}

/* Take the acknowledged prefix off the window: those rows are published
 * and only wait to be deleted. */
static void ack_prefix(bus_relay_t *r)
{
    int k = 0;
    while (k < r->count && ring_at(r, k)->state == ROW_ACKED) k++;
    if (k == 0) return;
    r->acked_seq = ring_at(r, k - 1)->seq;
    r->head = (r->head + k) % RELAY_WINDOW;
    r->count -= k;
    r->resolved -= k;
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
    db_set_wait(c, wait ? -1 : 0);
    int rc = db_step_done(c, st);
    db_set_wait(c, -1);
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
    r->head = r->count = r->resolved = r->failed = 0;
    r->last_seq = r->acked_seq;
}

/* At exit: let the answers in flight arrive (at most BUS_JS_WAIT_MS). */
static void settle_pending(bus_relay_t *r)
{
    int64_t until = mono_ms() + BUS_JS_WAIT_MS;
    while (r->acks && r->resolved < r->count && mono_ms() < until)
        take_answers(r, RELAY_ACK_WAIT_MS);
}

static void unlink_nats(bus_relay_t *r)
{
    if (r->nc) natsConnection_Close(r->nc);
    natsSubscription_Destroy(r->acks);
    natsConnection_Destroy(r->nc);
    r->acks = NULL;
    r->nc = NULL;
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
    natsInbox *inbox = NULL;
    char filter[128];
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(r->inbox, sizeof(r->inbox), "%s.", (const char *)inbox);
        snprintf(filter, sizeof(filter), "%s*", r->inbox);
        s = natsConnection_SubscribeSync(&r->acks, r->nc, filter);
    }
    natsInbox_Destroy(inbox);
    /* a window of answers never hits the subscription's limits */
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(r->acks, 4 * RELAY_WINDOW, 64 * 1024 * 1024);
    if (s != NATS_OK) {
        bus_nats_error(DIAG_UNAVAILABLE, s, "subscribe to publish answers");
        log_diag(LOG_WARN, "outbox relay");
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
    take_answers(r, 0);
    int count = r->count, resolved = r->resolved, failed = r->failed;
    int64_t progress = r->progress_ms;

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
        int room = RELAY_WINDOW - count < RELAY_READ ? RELAY_WINDOW - count : RELAY_READ;
        if (up == 0 || bus_ensure_known(r->w.bus, seen_gen) < 0) {
            if (count == 0) return STEP_RETRY;
        } else if ((loaded = publish_rows(r, c, room)) < 0) {
            log_diag(LOG_ERROR, "outbox relay: read outbox");
            if (count == 0) return STEP_RETRY;
            loaded = 0;
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
    return r->count > 0 || r->undeleted > 0 ? STEP_WAIT : STEP_IDLE;
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
        case STEP_WAIT: /* answers on their way (or rows to delete) */
            if (r->count > 0) take_answers(r, RELAY_ACK_WAIT_MS);
            else bus_worker_sleep(&r->w, RELAY_ACK_WAIT_MS, true);
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
    if (bus_worker_start(bus, &r->w, relay_main, relay_destroy) < 0) {
        relay_free(r);
        return -1;
    }
    /* Registered once started; the first round reads the outbox anyway,
     * so no commit before this point is missed. */
    pthread_mutex_lock(&g_relays_lock);
    r->next = g_relays;
    g_relays = r;
    pthread_mutex_unlock(&g_relays_lock);
    return 0;
}
