/*
 * bus_relay: the outbox relay, one thread per service database.
 *
 * Loop: read up to RELAY_BATCH outbox rows in seq order, publish each
 * asynchronously (Nats-Msg-Id = event id, Ates-Event, Ates-Version), wait
 * for the acks, delete the acknowledged rows in one transaction. Rows not
 * acknowledged stay and are retried after a backoff (a re-publish is
 * harmless: the stream's duplicate window drops it). An empty outbox waits
 * for a commit that emitted (bus_relay_wake_db) or RELAY_IDLE_MS, which also
 * catches rows written by another process.
 *
 * Threads: the relay thread owns everything here except `acked`, which the
 * nats.c thread that delivers publish acks writes (under ack_lock).
 */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define RELAY_BATCH 512
#define RELAY_IDLE_MS 1000

typedef struct relay_row {
    int64_t seq;
    char event_id[UUID_LEN];
    bool acked; /* set by on_ack */
} relay_row_t;

typedef struct bus_relay {
    bus_worker_t w; /* first: the worker is the relay */
    db_t *db;
    jsCtx *js;                 /* this relay's context (its own pending-ack map) */
    pthread_mutex_t ack_lock;  /* guards rows[].acked, hint, ack_errors */
    relay_row_t rows[RELAY_BATCH];
    int nrows;
    int hint;                  /* where on_ack starts looking: acks come in order */
    int ack_errors;            /* negative acks in this batch */
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

/* nats.c thread: the server's answer to one publish. The row is found by
 * its Nats-Msg-Id, so a late ack for a previous batch marks a row only if
 * that very event is still pending (and then it is indeed stored). */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    bus_relay_t *r = closure;
    const char *id = NULL;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) id = NULL;
    pthread_mutex_lock(&r->ack_lock);
    if (!pa) {
        r->ack_errors++;
    } else if (id) {
        for (int k = 0; k < r->nrows; k++) {
            int i = (r->hint + k) % r->nrows;
            if (strcmp(r->rows[i].event_id, id) == 0) {
                r->rows[i].acked = true;
                r->hint = i + 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->ack_lock);
    if (!pa && pae) log_warn("publish of %s failed: %s", id ? id : "?", pae->ErrText);
    natsMsg_Destroy(msg);
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

/* Load the next batch into r->rows and msgs[]; the count, or -1. The ack
 * lock is held throughout so a late ack never sees a half-filled batch. */
static int load_batch(bus_relay_t *r, db_conn_t *c, natsMsg **msgs)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT seq, event_id, subject, name, version, body "
                                  "FROM outbox ORDER BY seq LIMIT ?1");
    if (!st || db_bind_int64(st, 1, RELAY_BATCH) < 0) return -1;
    int n = 0, rc = 0;
    pthread_mutex_lock(&r->ack_lock);
    r->nrows = 0;
    r->hint = 0;
    r->ack_errors = 0;
    while (n < RELAY_BATCH && (rc = db_step(c, st)) == 1) {
        if (!(msgs[n] = make_msg(st))) {
            rc = -1;
            break;
        }
        relay_row_t *row = &r->rows[n++];
        row->seq = sqlite3_column_int64(st, 0);
        snprintf(row->event_id, UUID_LEN, "%s", db_col_text(st, 1));
        row->acked = false;
    }
    r->nrows = n;
    pthread_mutex_unlock(&r->ack_lock);
    sqlite3_reset(st);
    return rc < 0 && n == 0 ? -1 : n; /* on a late error, publish what was read */
}

/* Publish msgs[0..n) (consumed) and wait for their acks. */
static void publish_batch(bus_relay_t *r, natsMsg **msgs, int n)
{
    for (int i = 0; i < n; i++) {
        r->published_once = true;
        natsStatus s = js_PublishMsgAsync(r->js, &msgs[i], NULL);
        if (s != NATS_OK) {
            bus_nats_error(DIAG_UNAVAILABLE, s, "publish");
            log_diag(LOG_WARN, "outbox relay");
            for (int j = i; j < n; j++) natsMsg_Destroy(msgs[j]);
            break;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = BUS_JS_WAIT_MS;
    if (js_PublishAsyncComplete(r->js, &po) == NATS_OK) return;
    /* Give up on what is still pending (its rows stay), then wait for any
     * ack callback still running so the flags are final. */
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList(&pending, r->js) == NATS_OK) {
        log_warn("outbox relay: %d publishes not acknowledged, will retry", pending.Count);
        natsMsgList_Destroy(&pending);
    }
    po.MaxWait = BUS_JS_WAIT_MS;
    js_PublishAsyncComplete(r->js, &po);
}

/* Delete the acknowledged rows in one transaction; the number deleted or -1.
 * The usual case, every row of the batch acknowledged, is one range delete
 * (the batch is a run of consecutive rows in seq order, nothing else deletes
 * them); otherwise row by row. */
static int delete_acked(bus_relay_t *r, db_conn_t *c)
{
    int n = 0, all = 1;
    if (db_begin(c) < 0) return -1;
    pthread_mutex_lock(&r->ack_lock);
    for (int i = 0; i < r->nrows; i++) all &= r->rows[i].acked;
    if (all && r->nrows > 0) {
        sqlite3_stmt *st = db_stmt(c, "DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2");
        if (!st || db_bind_int64(st, 1, r->rows[0].seq) < 0 ||
            db_bind_int64(st, 2, r->rows[r->nrows - 1].seq) < 0 || db_step_done(c, st) < 0)
            n = -1;
        else
            n = r->nrows;
    }
    for (int i = 0; !all && i < r->nrows; i++) {
        if (!r->rows[i].acked) continue;
        sqlite3_stmt *st = db_stmt(c, "DELETE FROM outbox WHERE seq = ?1");
        if (!st || db_bind_int64(st, 1, r->rows[i].seq) < 0 || db_step_done(c, st) < 0) {
            n = -1;
            break;
        }
        n++;
    }
    pthread_mutex_unlock(&r->ack_lock);
    if (n < 0 || db_commit(c) < 0) {
        db_rollback(c);
        return -1;
    }
    return n;
}

/* One round: 1 when everything loaded was published, 0 when the outbox was
 * empty, -1 when something must be retried later. */
static int relay_round(bus_relay_t *r, db_conn_t *c, int *seen_gen)
{
    natsMsg *msgs[RELAY_BATCH];
    int n = load_batch(r, c, msgs);
    if (n < 0) {
        log_diag(LOG_ERROR, "outbox relay: read outbox");
        return -1;
    }
    if (n == 0) return 0;
    if (!bus_connected(r->w.bus) || bus_ensure_known(r->w.bus, seen_gen) < 0) {
        for (int i = 0; i < n; i++) natsMsg_Destroy(msgs[i]);
        return -1;
    }
    publish_batch(r, msgs, n);
    int done = delete_acked(r, c);
    if (done < 0) {
        log_diag(LOG_ERROR, "outbox relay: delete published rows");
        return -1;
    }
    metrics_inc(r->published, (uint64_t)done);
    pthread_mutex_lock(&r->ack_lock);
    if (r->ack_errors > 0) *seen_gen = -1; /* e.g. a stream is gone: re-ensure */
    pthread_mutex_unlock(&r->ack_lock);
    return done == n ? 1 : -1;
}

static void *relay_main(void *arg)
{
    bus_relay_t *r = arg;
    log_set_service(db_name(r->db));
    db_conn_t *c = db_conn(r->db);
    int seen_gen = -1;
    int64_t backoff = 0;
    while (c && !bus_worker_stopping(&r->w)) {
        bus_worker_mark(&r->w); /* commits from here on wake the sleep below */
        int rc = relay_round(r, c, &seen_gen);
        if (rc == 0) {
            backoff = 0;
            bus_worker_sleep(&r->w, RELAY_IDLE_MS, true);
        } else if (rc < 0) {
            backoff = bus_backoff_next(backoff);
            bus_worker_sleep(&r->w, backoff, false);
        } else {
            backoff = 0;
        }
    }
    if (!c) log_diag(LOG_ERROR, "outbox relay: no database connection");
    /* Drop what is still pending; wait for ack callbacks in flight. */
    if (r->published_once) {
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, r->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = BUS_JS_WAIT_MS;
        js_PublishAsyncComplete(r->js, &po);
    }
    if (bus_connected(r->w.bus)) natsConnection_FlushTimeout(r->w.bus->nc, BUS_JS_WAIT_MS);
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
    jsCtx_Destroy(r->js);
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
    pthread_mutex_init(&r->ack_lock, NULL);
    if (!(r->js = bus_js(bus, on_ack, r))) {
        pthread_mutex_destroy(&r->ack_lock);
        free(r);
        return -1;
    }
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
