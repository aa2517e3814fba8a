/*
 * bus_consumer: durable pull consumers, one thread per (service, stream).
 *
 * Each fetched batch is one transaction. Per message: an event already in
 * `inbox` is skipped; a body that is not JSON, has no valid event id, has no
 * schema or fails it is dead-lettered; otherwise the handler runs inside a
 * savepoint together with the inbox insert, so a failing handler leaves no
 * trace and the message is nak'ed for redelivery. A handler failing with
 * DIAG_VALIDATION, or for the BUS_MAX_DELIVER-th time, dead-letters it.
 * Dead letters go through the outbox in the same transaction and their key
 * stays in `inbox`, so each happens once. Commit, then ack (async) or nak.
 * If the commit fails nothing is acked: the whole batch comes again.
 *
 * Threads: everything here is owned by the consumer thread; the bus only
 * starts, stops and frees it.
 */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "diag.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define CONSUMER_MAX_SUBS 32
#define CONSUMER_FETCH_MS 1000
#define CONSUMER_ACK_WAIT_NS (30LL * 1000000000LL)
#define CONSUMER_DLQ_BODY_MAX 65536
#define CONSUMER_FETCH_ERRORS 3 /* fetch errors in a row before re-subscribing */

typedef enum { OUT_ACK, OUT_NAK, OUT_DEAD } outcome_t; /* DEAD: dead-lettered, acked */

typedef struct consumer_sub {
    char subject[128];
    bus_handler_fn fn;
} consumer_sub_t;

typedef struct bus_consumer {
    bus_worker_t w; /* first */
    db_t *db;
    char service[32];
    char stream[64];
    char subjects[256];
    char dlq_subject[64];  /* ates.dlq.<service> */
    void *ud;
    consumer_sub_t subs[CONSUMER_MAX_SUBS];
    int nsubs;
    jsCtx *js;
    natsSubscription *sub; /* NULL until subscribed */
    metrics_counter_t *acked;        /* ates_bus_consumed_total{service,stream} */
    metrics_counter_t *retried;      /* ates_bus_retries_total{service,stream} */
    metrics_counter_t *dead_letters; /* ates_bus_dead_letters_total{service,stream} */
} bus_consumer_t;

/* One message being handled. */
typedef struct msg_ctx {
    natsMsg *msg;
    const char *subject;
    const char *raw;
    uint64_t stream_seq;
    int raw_len;
    int delivered;
} msg_ctx_t;

static bus_handler_fn find_handler(bus_consumer_t *cs, const char *subject)
{
    for (int i = 0; i < cs->nsubs; i++)
        if (strcmp(cs->subs[i].subject, subject) == 0) return cs->subs[i].fn;
    return NULL;
}

/* INSERT OR IGNORE into inbox: 1 inserted, 0 already there, -1 error. */
static int inbox_insert(db_conn_t *c, const char *key, const char *subject)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT OR IGNORE INTO inbox(event_id, subject, received_at) "
                                  "VALUES (?1, ?2, ?3)");
    if (!st || db_bind_text(st, 1, key) < 0 || db_bind_text(st, 2, subject) < 0 ||
        db_bind_int64(st, 3, clock_now_ms()) < 0 || db_step_done(c, st) < 0)
        return -1;
    return sqlite3_changes(db_conn_handle(c)) > 0 ? 1 : 0;
}

static int inbox_has(db_conn_t *c, const char *key)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT 1 FROM inbox WHERE event_id = ?1");
    if (!st || db_bind_text(st, 1, key) < 0) return -1;
    int rc = db_step(c, st);
    sqlite3_reset(st);
    return rc;
}

/* Dead-letter the message once per `key`; -1 only on a database/emit error. */
static int dead_letter(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m, const char *key,
                       const char *reason, outcome_t *out)
{
    int fresh = inbox_insert(c, key, m->subject);
    if (fresh <= 0) return fresh;
    *out = OUT_DEAD;
    int len = m->raw_len < CONSUMER_DLQ_BODY_MAX ? m->raw_len : CONSUMER_DLQ_BODY_MAX;
    char *body = strndup(m->raw ? m->raw : "", (size_t)len);
    cJSON *data = cJSON_CreateObject();
    if (!body || !data) {
        free(body);
        cJSON_Delete(data);
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
    cJSON_AddStringToObject(data, "subject", m->subject);
    cJSON_AddStringToObject(data, "reason", reason);
    cJSON_AddStringToObject(data, "body", body);
    free(body);
    log_warn("dead letter %s (%s seq %llu): %s", key, cs->stream,
             (unsigned long long)m->stream_seq, reason);
    return bus_emit(c, cs->dlq_subject, "DeadLetter", 1, data, NULL);
}

/* The handler failed: undo its savepoint, then dead-letter or nak. */
static int after_failure(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m,
                         const bus_event_t *ev, outcome_t *out)
{
    diag_kind_t kind = diag_last()->kind;
    char reason[sizeof(diag_last()->message)];
    snprintf(reason, sizeof(reason), "%s",
             diag_last()->message[0] ? diag_last()->message : "handler failed without a diag");
    db_rollback_to(c);
    if (kind == DIAG_VALIDATION || m->delivered >= BUS_MAX_DELIVER) {
        *out = OUT_ACK;
        return dead_letter(cs, c, m, ev->event_id, reason, out);
    }
    log_warn("handler for %s %s failed (delivery %d): %s", m->subject, ev->event_id, m->delivered,
             reason);
    *out = OUT_NAK;
    return 0;
}

/* Run the handler in a savepoint with the inbox insert. */
static int apply(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m, bus_handler_fn fn,
                 bus_event_t *ev, outcome_t *out)
{
    if (db_savepoint(c) < 0) return -1;
    int fresh = inbox_insert(c, ev->event_id, m->subject);
    if (fresh <= 0) {
        if (fresh < 0) {
            db_rollback_to(c);
            return -1;
        }
        *out = OUT_ACK;
        return db_release(c);
    }
    log_set_trace(ev->trace_id ? ev->trace_id : "");
    diag_clear();
    int rc = fn(c, ev, cs->ud);
    if (rc == 0) {
        *out = OUT_ACK;
        rc = db_release(c);
    } else {
        rc = after_failure(cs, c, m, ev, out);
    }
    log_set_trace(NULL);
    return rc;
}

/* Handle one message of the batch; -1 only when the batch must be abandoned. */
static int handle_msg(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m, outcome_t *out)
{
    *out = OUT_ACK;
    bus_handler_fn fn = find_handler(cs, m->subject);
    if (!fn) return 0; /* not subscribed to this subject: ignored */
    char key[96];
    snprintf(key, sizeof(key), "%s:%llu", cs->stream, (unsigned long long)m->stream_seq);
    bus_event_t ev = {.subject = m->subject, .delivered = m->delivered};
    cJSON *body = NULL;
    int rc;
    char reason[sizeof(diag_last()->message)];
    if (bus_event_parse(m->raw, (size_t)m->raw_len, &body, &ev) < 0) {
        snprintf(reason, sizeof(reason), "%s", diag_last()->message);
        rc = dead_letter(cs, c, m, key, reason, out);
        goto out;
    }
    if ((rc = inbox_has(c, ev.event_id)) != 0) {
        rc = rc < 0 ? -1 : 0; /* already handled (or dead-lettered) */
        goto out;
    }
    if (bus_event_check(cs->w.bus->schemas, body, &ev) < 0) {
        snprintf(reason, sizeof(reason), "%s", diag_last()->message);
        rc = dead_letter(cs, c, m, ev.event_id, reason, out);
        goto out;
    }
    rc = apply(cs, c, m, fn, &ev, out);
out:
    cJSON_Delete(body);
    return rc;
}

static void msg_ctx_init(msg_ctx_t *m, natsMsg *msg)
{
    m->msg = msg;
    m->subject = natsMsg_GetSubject(msg);
    m->raw = natsMsg_GetData(msg);
    m->raw_len = natsMsg_GetDataLength(msg);
    m->delivered = 1;
    m->stream_seq = 0;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        m->delivered = meta->NumDelivered > 1000000 ? 1000000 : (int)meta->NumDelivered;
        m->stream_seq = meta->Sequence.Stream;
    }
    jsMsgMetaData_Destroy(meta);
}

/* Redelivery delay after the n-th failed delivery: 100 ms doubling, max 5 s. */
static int64_t nak_delay_ms(int delivered)
{
    int64_t d = BUS_BACKOFF_MIN_MS;
    for (int i = 1; i < delivered && d < BUS_BACKOFF_MAX_MS; i++) d *= 2;
    return d < BUS_BACKOFF_MAX_MS ? d : BUS_BACKOFF_MAX_MS;
}

/* Handle a fetched batch in one transaction, then ack/nak. */
static void handle_batch(bus_consumer_t *cs, db_conn_t *c, natsMsgList *list)
{
    outcome_t out[BUS_BATCH];
    msg_ctx_t m[BUS_BATCH];
    int n = list->Count < BUS_BATCH ? list->Count : BUS_BATCH;
    for (int i = 0; i < n; i++) msg_ctx_init(&m[i], list->Msgs[i]);
    bool ok = db_begin(c) == 0;
    for (int i = 0; ok && i < n; i++) ok = handle_msg(cs, c, &m[i], &out[i]) == 0;
    if (ok) ok = db_commit(c) == 0;
    if (!ok) {
        log_diag(LOG_ERROR, "consumer batch");
        if (db_in_tx(c)) db_rollback(c);
        for (int i = 0; i < n; i++) natsMsg_NakWithDelay(m[i].msg, BUS_BACKOFF_MAX_MS, NULL);
        return;
    }
    for (int i = 0; i < n; i++) {
        natsStatus s = out[i] != OUT_NAK
                           ? natsMsg_Ack(m[i].msg, NULL)
                           : natsMsg_NakWithDelay(m[i].msg, nak_delay_ms(m[i].delivered), NULL);
        if (s != NATS_OK) log_warn("ack of %s seq %llu: %s", cs->stream,
                                   (unsigned long long)m[i].stream_seq, natsStatus_GetText(s));
        metrics_inc(out[i] == OUT_ACK ? cs->acked : out[i] == OUT_NAK ? cs->retried : cs->dead_letters,
                    1);
    }
}

/* Create the durable consumer (an existing one is kept as it is). */
static void add_consumer(bus_consumer_t *cs)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cs->service;
    cc.FilterSubject = cs->subjects;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.MaxDeliver = -1; /* we count deliveries ourselves */
    cc.AckWait = CONSUMER_ACK_WAIT_NS;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, cs->js, cs->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) log_debug("add consumer %s on %s: %s (%d)", cs->service, cs->stream,
                                natsStatus_GetText(s), (int)jerr);
}

/* Create the durable consumer ourselves, then bind to it: a subscription
 * bound to a consumer nats.c did not create never deletes it on
 * unsubscribe, so bus_sub_destroy is safe. */
static int subscribe(bus_consumer_t *cs, int *seen_gen)
{
    if (bus_ensure_known(cs->w.bus, seen_gen) < 0) return -1;
    add_consumer(cs);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cs->stream;
    so.Consumer = cs->service;
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&cs->sub, cs->js, cs->subjects, cs->service, NULL, &so, &jerr);
    if (s != NATS_OK) {
        cs->sub = NULL;
        *seen_gen = -1; /* the stream may be missing: ensure again next time */
        return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
    }
    log_info("consuming %s as %s", cs->stream, cs->service);
    return 0;
}

static void *consumer_main(void *arg)
{
    bus_consumer_t *cs = arg;
    log_set_service(cs->service);
    char name[16]; /* for top -H and perf: "c:<service>:<stream>", cut to fit */
    const char *stream = strncmp(cs->stream, "ATES_", 5) == 0 ? cs->stream + 5 : cs->stream;
    snprintf(name, sizeof(name), "c:%.7s:%.5s", cs->service, stream);
    pthread_setname_np(pthread_self(), name);
    db_conn_t *c = db_conn(cs->db);
    int seen_gen = -1, errors = 0;
    int64_t backoff = 0;
    while (c && !bus_worker_stopping(&cs->w)) {
        if (!cs->sub && subscribe(cs, &seen_gen) < 0) {
            if (backoff == 0) log_diag(LOG_WARN, "consumer subscribe (retrying)");
            backoff = bus_backoff_next(backoff);
            bus_worker_sleep(&cs->w, backoff, false);
            continue;
        }
        backoff = 0;
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, cs->sub, BUS_BATCH, CONSUMER_FETCH_MS, NULL);
        if (s == NATS_OK) {
            errors = 0;
            handle_batch(cs, c, &list);
        } else if (s != NATS_TIMEOUT && ++errors >= CONSUMER_FETCH_ERRORS) {
            log_warn("fetch from %s: %s; subscribing again", cs->stream, natsStatus_GetText(s));
            bus_sub_destroy(cs->w.bus, cs->sub);
            cs->sub = NULL;
            errors = 0;
        } else if (s != NATS_TIMEOUT) {
            bus_worker_sleep(&cs->w, (int64_t)BUS_BACKOFF_MIN_MS * errors, false);
        }
        natsMsgList_Destroy(&list);
    }
    if (!c) log_diag(LOG_ERROR, "consumer: no database connection");
    return NULL;
}

static void consumer_destroy(bus_worker_t *w)
{
    bus_consumer_t *cs = (bus_consumer_t *)w;
    bus_sub_destroy(cs->w.bus, cs->sub);
    bus_worker_fini(&cs->w);
    jsCtx_Destroy(cs->js);
    free(cs);
}

static const bus_stream_t *find_stream(const bus_stream_t *streams, const char *name)
{
    for (int i = 0; streams && streams[i].name; i++)
        if (strcmp(streams[i].name, name) == 0) return &streams[i];
    return NULL;
}

/* A consumer for `stream` with the handlers of `subs` on it. */
static int start_one(bus_t *bus, db_t *db, const char *service, const bus_stream_t *stream,
                     const bus_subscription_t *subs, void *ud)
{
    bus_consumer_t *cs = calloc(1, sizeof(*cs));
    if (!cs) return diag_set(DIAG_INTERNAL, "out of memory");
    cs->db = db;
    cs->ud = ud;
    snprintf(cs->service, sizeof(cs->service), "%s", service);
    snprintf(cs->stream, sizeof(cs->stream), "%s", stream->name);
    snprintf(cs->subjects, sizeof(cs->subjects), "%s", stream->subjects);
    snprintf(cs->dlq_subject, sizeof(cs->dlq_subject), "ates.dlq.%s", service);
    for (int i = 0; subs[i].stream; i++) {
        if (strcmp(subs[i].stream, stream->name) != 0) continue;
        if (cs->nsubs >= CONSUMER_MAX_SUBS) {
            free(cs);
            return diag_set(DIAG_INTERNAL, "too many subscriptions on %s", stream->name);
        }
        snprintf(cs->subs[cs->nsubs].subject, sizeof(cs->subs[0].subject), "%s", subs[i].subject);
        cs->subs[cs->nsubs++].fn = subs[i].handle;
    }
    char labels[160];
    snprintf(labels, sizeof(labels), "service=\"%s\",stream=\"%s\"", service, stream->name);
    cs->acked = metrics_counter("ates_bus_consumed_total", "Events consumed and acknowledged", labels);
    cs->retried = metrics_counter("ates_bus_retries_total", "Events nak'ed for redelivery", labels);
    cs->dead_letters = metrics_counter("ates_bus_dead_letters_total", "Events dead-lettered", labels);
    if (!(cs->js = bus_js(bus, NULL, NULL))) {
        free(cs);
        return -1;
    }
    if (bus_worker_start(bus, &cs->w, consumer_main, consumer_destroy) < 0) {
        jsCtx_Destroy(cs->js);
        free(cs);
        return -1;
    }
    return 0;
}

static bool valid_service(const char *s)
{
    if (!s || !*s || strlen(s) >= 32) return false;
    for (; *s; s++)
        if (*s < 'a' || *s > 'z') return false;
    return true;
}

int bus_consume_start(bus_t *bus, db_t *db, const char *service, const bus_stream_t *streams,
                      const bus_subscription_t *subs, void *ud)
{
    if (!valid_service(service)) return diag_set(DIAG_INTERNAL, "bad service name for a consumer");
    for (int i = 0; subs && subs[i].stream; i++) {
        const bus_stream_t *st = find_stream(streams, subs[i].stream);
        if (!st) return diag_set(DIAG_INTERNAL, "subscription to unknown stream %s", subs[i].stream);
        if (!subs[i].subject || !subs[i].handle)
            return diag_set(DIAG_INTERNAL, "subscription without subject or handler");
        bool first = true; /* one consumer per distinct stream */
        for (int j = 0; j < i; j++)
            if (strcmp(subs[j].stream, subs[i].stream) == 0) first = false;
        bus_stream_t one[2] = {*st, {0}};
        if (!first) continue;
        if (bus_remember_streams(bus, one) < 0 || start_one(bus, db, service, st, subs, ud) < 0)
            return -1;
    }
    return 0;
}
