/*
 * bus_consumer: durable pull consumers, one thread per (service, stream).
 *
 * Pulling is done here, not by nats.c's natsSubscription_Fetch: libnats 3.4.1
 * writes past the end of its message array when a fetch starts with
 * messages of an earlier, timed-out request still queued (it asks the server
 * for batch - queued and then waits for that count, which it has passed), so
 * a consumer that fell behind its deadline once could corrupt the heap. Here a
 * plain subscription on an inbox of our own receives what pull requests to
 * $JS.API.CONSUMER.MSG.NEXT bring; every batch is bounded by BUS_BATCH, and
 * whatever a stale request still delivers is taken in the next batch. The
 * next request goes out before a batch is handled, so the server sends while
 * we work.
 *
 * Each batch is one transaction. Per message: an event already in
 * `inbox` is skipped; a body that is not JSON, has no valid event id, has no
 * schema or fails it is dead-lettered; otherwise the handler runs inside a
 * savepoint together with the inbox insert, so a failing handler leaves no
 * trace, and the message is parked in `inbox_retry` to be tried again after
 * a backoff, while the stream goes on. A handler failing with
 * DIAG_VALIDATION, or for the BUS_MAX_DELIVER-th time, dead-letters it;
 * one failing with DIAG_UNAVAILABLE stays parked until it applies.
 * Dead letters go through the outbox in the same transaction and their key
 * stays in `inbox`, so each happens once.
 *
 * Acknowledging: every message of a committed batch is settled (applied,
 * skipped, parked or dead-lettered), so the durable acknowledges all
 * (AckAll) and one "+ACK" on the batch's highest stream sequence settles it
 * whole: half of the server's work per event, next to an ack per message.
 * That is only sound while every delivery the server made since the last
 * ack was received. Deliveries are numbered without gaps (redeliveries
 * too), so a missing number - lost in a reconnect, or taken by a stale pull
 * request of an earlier inbox - stops the batch there and the consumer
 * starts again, as it does on a delivery below the floor already
 * acknowledged (which no AckAll can settle): a durable with deliveries unacknowledged (or one that still
 * acknowledges one by one, as before) is recreated from its ack floor, and
 * what comes again that was applied is skipped by `inbox`. A batch whose
 * commit fails starts again the same way, after a backoff.
 *
 * Threads: everything here is owned by the consumer thread; the bus only
 * starts, stops and frees it.
 */
#include "bus_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "uuid.h"

#define CONSUMER_MAX_SUBS 32
#define CONSUMER_EXPIRES_MS 1000 /* a pull request waits this long on the server */
#define CONSUMER_SILENCE_MS 2500 /* no answer at all this long: the request is presumed lost */
#define CONSUMER_ACK_WAIT_NS (30LL * 1000000000LL)
#define CONSUMER_DLQ_BODY_MAX 65536
#define CONSUMER_PULL_ERRORS 3 /* pull errors in a row before subscribing again */
#define CONSUMER_ACK_PREFIX "$JS.ACK."
/* A consumer with a backlog (a batch this full) yields the CPU to those
 * answering requests and publishing: it runs this much nicer than the
 * process until a batch comes in smaller, and catches up when they are done. */
#define CONSUMER_BACKLOG_BATCH (BUS_BATCH / 4)
#define CONSUMER_BACKLOG_NICE 10

/* What became of a message in its batch; all three are settled by the commit. */
typedef enum { OUT_ACK, OUT_PARKED, OUT_DEAD } outcome_t; /* PARKED: in inbox_retry */

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
    natsSubscription *sub; /* on `inbox`; NULL until subscribed */
    char inbox[128];       /* where pull requests are answered */
    char next_subject[192]; /* $JS.API.CONSUMER.MSG.NEXT.<stream>.<service> */
    int owed; /* messages the open pull requests may still bring; 0: none is open */
    uint64_t next_dseq;  /* the delivery sequence the next delivery must carry */
    uint64_t acked_sseq; /* the stream sequence acknowledged last (all up to it) */
    bool restart;        /* a delivery went missing or a batch failed: subscribe again */
    int64_t retry_at;    /* wall ms when a parked event is due; 0: none parked */
    uint64_t woken;      /* the bus's wake counter when last looked at */
    int base_nice;       /* the thread's nice value at start */
    int nice;            /* now: base_nice, or nicer by CONSUMER_BACKLOG_NICE */
    bool pacing;         /* it may go back to base_nice after a backlog */
    metrics_counter_t *acked;        /* ates_bus_consumed_total{service,stream} */
    metrics_counter_t *retried;      /* ates_bus_retries_total{service,stream} */
    metrics_counter_t *dead_letters; /* ates_bus_dead_letters_total{service,stream} */
} bus_consumer_t;

/* One message being handled. */
typedef struct msg_ctx {
    natsMsg *msg;        /* NULL for a parked event tried again */
    const char *subject;
    const char *raw;
    uint64_t stream_seq;
    uint64_t dseq;       /* the delivery's sequence on the consumer */
    int raw_len;
    int delivered;       /* the attempt: JetStream's delivery count, or parked tries + 1 */
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

/* Delay after the n-th failed attempt: the bus's backoff, n steps in. */
static int64_t retry_delay_ms(int attempt)
{
    int64_t d = 0;
    for (int i = 0; i < attempt; i++) d = bus_backoff_next(d);
    return d;
}

/* How many times the event parked under `event_id` was tried: 0 when it is
 * not parked, -1 on error. */
static int parked_attempts(db_conn_t *c, const char *event_id)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT attempts FROM inbox_retry WHERE event_id = ?1");
    if (!st || db_bind_text(st, 1, event_id) < 0) return -1;
    int rc = db_step(c, st);
    int attempts = rc == 1 ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    return rc < 0 ? -1 : attempts;
}

static int unpark(db_conn_t *c, const char *event_id)
{
    sqlite3_stmt *st = db_stmt(c, "DELETE FROM inbox_retry WHERE event_id = ?1");
    if (!st || db_bind_text(st, 1, event_id) < 0) return -1;
    return db_step_done(c, st);
}

/* Keep the message to try it again at `at` (wall ms), its `attempt`-th try done. */
static int park(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m, const char *event_id,
                int attempt, int64_t at)
{
    sqlite3_stmt *st = db_stmt(c, "INSERT INTO inbox_retry(event_id, stream, subject, body, "
                                  "stream_seq, attempts, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                                  "ON CONFLICT(event_id) DO UPDATE SET attempts = excluded.attempts, "
                                  "next_at = excluded.next_at");
    if (!st || db_bind_text(st, 1, event_id) < 0 || db_bind_text(st, 2, cs->stream) < 0 ||
        db_bind_text(st, 3, m->subject) < 0 ||
        sqlite3_bind_text(st, 4, m->raw ? m->raw : "", m->raw_len, SQLITE_TRANSIENT) != SQLITE_OK ||
        db_bind_int64(st, 5, (int64_t)m->stream_seq) < 0 || db_bind_int64(st, 6, attempt) < 0 ||
        db_bind_int64(st, 7, at) < 0)
        return -1;
    if (db_step_done(c, st) < 0) return -1;
    if (cs->retry_at == 0 || at < cs->retry_at) cs->retry_at = at;
    return 0;
}

/* The handler failed: undo its savepoint, then dead-letter or park. */
static int after_failure(bus_consumer_t *cs, db_conn_t *c, const msg_ctx_t *m,
                         const bus_event_t *ev, outcome_t *out)
{
    diag_kind_t kind = diag_last()->kind;
    char reason[sizeof(diag_last()->message)];
    snprintf(reason, sizeof(reason), "%s",
             diag_last()->message[0] ? diag_last()->message : "handler failed without a diag");
    db_rollback_to(c);
    int parked = parked_attempts(c, ev->event_id);
    if (parked < 0) return -1;
    int attempt = parked + 1 > m->delivered ? parked + 1 : m->delivered;
    /* unavailable (a rule that fails or is missing, say): the operator's to
     * fix, and the event may carry money, so it waits for that for good */
    bool waits = kind == DIAG_UNAVAILABLE;
    if (kind == DIAG_VALIDATION || (attempt >= BUS_MAX_DELIVER && !waits)) {
        *out = OUT_ACK;
        if (parked > 0 && unpark(c, ev->event_id) < 0) return -1;
        return dead_letter(cs, c, m, ev->event_id, reason, out);
    }
    int64_t delay = attempt < BUS_MAX_DELIVER ? retry_delay_ms(attempt) : BUS_WAIT_RETRY_MS;
    if (attempt <= BUS_MAX_DELIVER || attempt % 10 == 0)
        log_warn("handler for %s %s failed (attempt %d, again in %lld ms%s): %s", m->subject,
                 ev->event_id, attempt, (long long)delay,
                 waits ? "; kept until it works" : "", reason);
    *out = OUT_PARKED;
    return park(cs, c, m, ev->event_id, attempt, clock_now_ms() + delay);
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
    m->dseq = 0;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        m->delivered = meta->NumDelivered > 1000000 ? 1000000 : (int)meta->NumDelivered;
        m->stream_seq = meta->Sequence.Stream;
        m->dseq = meta->Sequence.Consumer;
    }
    jsMsgMetaData_Destroy(meta);
}

/* How many of the batch's messages follow on from the deliveries before
 * them; a gap means some were lost, and the consumer must start again. */
static int in_order(bus_consumer_t *cs, const msg_ctx_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        if (m[i].dseq > cs->next_dseq) {
            log_warn("%s as %s: deliveries %llu..%llu never arrived; starting again from the "
                     "ack floor", cs->stream, cs->service, (unsigned long long)cs->next_dseq,
                     (unsigned long long)m[i].dseq - 1);
            cs->restart = true;
            return i;
        }
        if (m[i].dseq == cs->next_dseq) cs->next_dseq++;
    }
    return n;
}

/* A delivery at or below the stream sequence already acknowledged stays
 * pending for good: an ack of it, or of anything, does not lower the floor.
 * A broker that comes back from a kill -9 can hold such deliveries (its
 * restored ack floor ahead of where it delivers from). Then the durable is
 * made again from its floor: the consumer starts again. (Those events were
 * applied: the floor went past them on our own ack.) */
static void below_floor(bus_consumer_t *cs, const msg_ctx_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        if (m[i].stream_seq == 0 || m[i].stream_seq > cs->acked_sseq) continue;
        log_info("%s as %s: seq %llu delivered (%d) below the ack floor %llu; starting again",
                 cs->stream, cs->service, (unsigned long long)m[i].stream_seq, m[i].delivered,
                 (unsigned long long)cs->acked_sseq);
        cs->restart = true;
        return;
    }
}

/* Acknowledge everything up to the batch's highest stream sequence (the
 * durable acknowledges all below what it is told). */
static void ack_batch(bus_consumer_t *cs, const msg_ctx_t *m, int n)
{
    int top = -1;
    for (int i = 0; i < n; i++)
        if (m[i].stream_seq > cs->acked_sseq && (top < 0 || m[i].stream_seq > m[top].stream_seq))
            top = i;
    if (top < 0) return;
    natsStatus s = natsConnection_PublishString(cs->w.bus->nc, natsMsg_GetReply(m[top].msg), "+ACK");
    if (s != NATS_OK) {
        /* the next batch's ack covers these; without one they come again */
        log_warn("ack of %s up to seq %llu: %s", cs->stream,
                 (unsigned long long)m[top].stream_seq, natsStatus_GetText(s));
        return;
    }
    cs->acked_sseq = m[top].stream_seq;
}

static void count(bus_consumer_t *cs, const outcome_t *out, int n)
{
    for (int i = 0; i < n; i++)
        metrics_inc(out[i] == OUT_ACK      ? cs->acked
                    : out[i] == OUT_PARKED ? cs->retried
                                           : cs->dead_letters,
                    1);
}

/* Handle a batch in one transaction, then acknowledge it. False when the
 * transaction failed (the consumer starts again from its ack floor). */
static bool handle_batch(bus_consumer_t *cs, db_conn_t *c, natsMsg **msgs, int n)
{
    outcome_t out[BUS_BATCH];
    msg_ctx_t m[BUS_BATCH] = {{0}};
    if (n > BUS_BATCH) n = BUS_BATCH;
    for (int i = 0; i < n; i++) msg_ctx_init(&m[i], msgs[i]);
    n = in_order(cs, m, n);
    below_floor(cs, m, n);
    if (n == 0) return true;
    bool ok = db_begin(c) == 0;
    for (int i = 0; ok && i < n; i++) ok = handle_msg(cs, c, &m[i], &out[i]) == 0;
    if (ok) ok = db_commit(c) == 0;
    if (!ok) {
        log_diag(LOG_ERROR, "consumer batch (it comes again)");
        if (db_in_tx(c)) db_rollback(c);
        cs->restart = true;
        return false;
    }
    ack_batch(cs, m, n);
    count(cs, out, n);
    return true;
}

/* A parked event read back from inbox_retry. */
typedef struct parked {
    char *event_id, *subject, *body;
    int64_t stream_seq;
    int attempts;
} parked_t;

/* The earliest time a parked event of this stream is due, 0 if none. */
static int64_t next_retry(bus_consumer_t *cs, db_conn_t *c)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT min(next_at) FROM inbox_retry WHERE stream = ?1");
    if (!st || db_bind_text(st, 1, cs->stream) < 0) return clock_now_ms() + BUS_BACKOFF_MAX_MS;
    int rc = db_step(c, st);
    int64_t at = rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc < 0 ? clock_now_ms() + BUS_BACKOFF_MAX_MS : at;
}

static void parked_free(parked_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p[i].event_id);
        free(p[i].subject);
        free(p[i].body);
    }
}

/* Up to BUS_BATCH parked events due by `now`, copied out (the caller frees
 * them with parked_free); -1 with nothing to free on error. */
static int read_due(bus_consumer_t *cs, db_conn_t *c, int64_t now, parked_t *p)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT event_id, subject, body, stream_seq, attempts "
                                  "FROM inbox_retry WHERE stream = ?1 AND next_at <= ?2 "
                                  "ORDER BY stream_seq LIMIT ?3"); /* as they came */
    if (!st || db_bind_text(st, 1, cs->stream) < 0 || db_bind_int64(st, 2, now) < 0 ||
        db_bind_int64(st, 3, BUS_BATCH) < 0)
        return -1;
    int n = 0, rc = 0;
    while (n < BUS_BATCH && (rc = db_step(c, st)) == 1) {
        const char *id = db_col_text(st, 0), *subject = db_col_text(st, 1);
        const char *body = db_col_text(st, 2);
        p[n] = (parked_t){.event_id = strdup(id ? id : ""), .subject = strdup(subject ? subject : ""),
                          .body = strdup(body ? body : ""),
                          .stream_seq = sqlite3_column_int64(st, 3),
                          .attempts = sqlite3_column_int(st, 4)};
        n++;
        if (!p[n - 1].event_id || !p[n - 1].subject || !p[n - 1].body) {
            rc = diag_set(DIAG_INTERNAL, "out of memory");
            break;
        }
    }
    sqlite3_reset(st);
    if (rc >= 0) return n;
    parked_free(p, n);
    return -1;
}

/* The wake counter moved (a rule changed): every parked event is due now. */
static void wake_parked(bus_consumer_t *cs, db_conn_t *c, int64_t now)
{
    bus_t *bus = cs->w.bus;
    uint64_t w = bus->wake ? bus->wake(bus->wake_ud) : 0;
    if (w == cs->woken) return;
    cs->woken = w;
    if (cs->retry_at == 0 || cs->retry_at <= now) return;
    sqlite3_stmt *st = db_stmt(c, "UPDATE inbox_retry SET next_at = ?2 WHERE stream = ?1 AND next_at > ?2");
    if (!st || db_bind_text(st, 1, cs->stream) < 0 || db_bind_int64(st, 2, now) < 0 ||
        db_step_done(c, st) < 0) {
        log_diag(LOG_WARN, "consumer: parked events stay at their time");
        return;
    }
    log_info("%s as %s: what changed may let parked events apply; trying them now", cs->stream,
             cs->service);
    cs->retry_at = now;
}

/* Try the parked events that are due again, in one transaction. */
static void retry_parked(bus_consumer_t *cs, db_conn_t *c)
{
    int64_t now = clock_now_ms();
    wake_parked(cs, c, now);
    if (cs->retry_at == 0 || cs->retry_at > now) return;
    parked_t p[BUS_BATCH];
    outcome_t out[BUS_BATCH];
    int n = 0;
    bool ok = db_begin(c) == 0 && (n = read_due(cs, c, now, p)) >= 0;
    for (int i = 0; ok && i < n; i++) {
        msg_ctx_t m = {.subject = p[i].subject, .raw = p[i].body, .raw_len = (int)strlen(p[i].body),
                       .stream_seq = (uint64_t)p[i].stream_seq, .delivered = p[i].attempts + 1};
        ok = handle_msg(cs, c, &m, &out[i]) == 0 &&
             (out[i] == OUT_PARKED || unpark(c, p[i].event_id) == 0);
    }
    if (ok) ok = db_commit(c) == 0;
    if (ok) count(cs, out, n);
    else {
        log_diag(LOG_ERROR, "consumer: parked events (tried again later)");
        if (db_in_tx(c)) db_rollback(c);
    }
    parked_free(p, n);
    cs->retry_at = ok ? next_retry(cs, c) : now + BUS_BACKOFF_MAX_MS;
}

/* Make sure the durable acknowledges all and has nothing unacknowledged
 * delivered: keep it as it is, or create it (from the stream's start), or
 * recreate it from its ack floor. Sets where deliveries and acks stand. */
static int ensure_consumer(bus_consumer_t *cs)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, cs->js, cs->stream, cs->service, NULL, &jerr);
    uint64_t start = 0;
    if (s == NATS_OK) {
        bool all = ci->Config && ci->Config->AckPolicy == js_AckAll;
        if (all && ci->NumAckPending == 0) {
            cs->next_dseq = ci->Delivered.Consumer + 1;
            cs->acked_sseq = ci->AckFloor.Stream;
            jsConsumerInfo_Destroy(ci);
            return 0;
        }
        start = ci->AckFloor.Stream + 1;
        if (all)
            log_info("consumer %s on %s: %lld deliveries unacknowledged; starting again at "
                     "stream seq %llu", cs->service, cs->stream, (long long)ci->NumAckPending,
                     (unsigned long long)start);
        else
            log_info("consumer %s on %s acknowledged one by one; recreated to acknowledge "
                     "batches, from stream seq %llu", cs->service, cs->stream,
                     (unsigned long long)start);
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        s = js_DeleteConsumer(cs->js, cs->stream, cs->service, NULL, &jerr);
        if (s != NATS_OK && !bus_js_not_found(s, jerr)) return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
    } else if (!bus_js_not_found(s, jerr)) {
        return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cs->service;
    cc.FilterSubject = cs->subjects;
    cc.AckPolicy = js_AckAll;
    cc.DeliverPolicy = start > 1 ? js_DeliverByStartSequence : js_DeliverAll;
    cc.OptStartSeq = start > 1 ? start : 0;
    cc.MaxDeliver = -1; /* attempts are counted here (inbox_retry) */
    cc.AckWait = CONSUMER_ACK_WAIT_NS;
    jerr = 0;
    s = js_AddConsumer(&ci, cs->js, cs->stream, &cc, NULL, &jerr);
    if (s == NATS_OK) {
        cs->next_dseq = ci->Delivered.Consumer + 1;
        cs->acked_sseq = ci->AckFloor.Stream;
    }
    jsConsumerInfo_Destroy(ci);
    if (s == NATS_OK) return 0;
    log_debug("add consumer %s on %s: %s (%d)", cs->service, cs->stream, natsStatus_GetText(s),
              (int)jerr);
    return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
}

/* Ensure the stream and the durable consumer, then subscribe to an inbox of
 * our own, where the server answers our pull requests. */
static int subscribe(bus_consumer_t *cs, int *seen_gen)
{
    if (bus_ensure_known(cs->w.bus, seen_gen) < 0) return -1;
    if (ensure_consumer(cs) < 0) {
        *seen_gen = -1; /* the stream may be missing: ensure again next time */
        return -1;
    }
    natsInbox *inbox = NULL;
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(cs->inbox, sizeof(cs->inbox), "%s", (const char *)inbox);
        natsInbox_Destroy(inbox);
        s = natsConnection_SubscribeSync(&cs->sub, cs->w.bus->nc, cs->inbox);
    }
    if (s != NATS_OK) {
        cs->sub = NULL;
        return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
    }
    cs->owed = 0;
    cs->restart = false;
    log_info("consuming %s as %s", cs->stream, cs->service);
    return 0;
}

/* Ask the server for up to BUS_BATCH more messages, waiting up to
 * CONSUMER_EXPIRES_MS for them. */
static int pull(bus_consumer_t *cs)
{
    char body[96];
    int len = snprintf(body, sizeof(body), "{\"batch\":%d,\"expires\":%lld}", BUS_BATCH,
                       (long long)CONSUMER_EXPIRES_MS * 1000000LL);
    natsStatus s = natsConnection_PublishRequest(cs->w.bus->nc, cs->next_subject, cs->inbox, body,
                                                 len);
    if (s != NATS_OK) return bus_nats_error(DIAG_UNAVAILABLE, s, cs->stream);
    cs->owed += BUS_BATCH;
    return 0;
}

typedef enum {
    PULLED_MSG,   /* a message of the stream */
    PULLED_END,   /* a request ended: no messages (404), expired (408), or 409 */
    PULLED_GONE,  /* the consumer is gone or was never there: subscribe again */
    PULLED_OTHER, /* a heartbeat or anything else: ignored */
} pulled_t;

static pulled_t classify(const bus_consumer_t *cs, natsMsg *msg)
{
    const char *reply = natsMsg_GetReply(msg);
    if (reply && strncmp(reply, CONSUMER_ACK_PREFIX, sizeof(CONSUMER_ACK_PREFIX) - 1) == 0)
        return PULLED_MSG;
    const char *status = NULL, *desc = NULL;
    if (natsMsgHeader_Get(msg, "Status", &status) != NATS_OK || !status) return PULLED_OTHER;
    if (strcmp(status, "100") == 0) return PULLED_OTHER;
    if (strcmp(status, "404") == 0 || strcmp(status, "408") == 0) return PULLED_END;
    natsMsgHeader_Get(msg, "Description", &desc);
    bool gone = strcmp(status, "409") != 0 ||
                (desc && (strstr(desc, "Deleted") || strstr(desc, "deleted") || strstr(desc, "push")));
    log_warn("pull from %s as %s: status %s %s", cs->stream, cs->service, status, desc ? desc : "");
    return gone ? PULLED_GONE : PULLED_END;
}

/* Up to BUS_BATCH messages into msgs (count in *n): waits for the first, then takes
 * only what is already there. 0, also when nothing came (*n == 0); -1 with a
 * diag (and nothing collected) when the server does not answer as it should. */
static int collect(bus_consumer_t *cs, natsMsg **msgs, int *n)
{
    *n = 0;
    int64_t wait = CONSUMER_SILENCE_MS;
    int64_t due = cs->retry_at != 0 ? cs->retry_at - clock_now_ms() : wait;
    bool parked_due = due < wait; /* the wait ends when a parked event is due */
    if (parked_due) wait = due < 1 ? 1 : due;
    while (*n < BUS_BATCH) {
        if (*n == 0 && cs->owed <= 0 && pull(cs) < 0) return -1;
        natsMsg *msg = NULL;
        natsStatus s = natsSubscription_NextMsg(&msg, cs->sub, *n == 0 ? wait : 0);
        if (s == NATS_TIMEOUT) {
            /* not even an expiry came back: the request is presumed lost */
            if (*n == 0 && !parked_due && cs->owed > 0)
                log_info("pull from %s as %s: no answer in %d ms (a busy broker?); asking again",
                         cs->stream, cs->service, CONSUMER_SILENCE_MS);
            if (*n == 0 && !parked_due) cs->owed = 0;
            return 0;
        }
        if (s != NATS_OK) break; /* closed, or no responders: no consumer behind the subject */
        pulled_t kind = classify(cs, msg);
        if (kind == PULLED_MSG) {
            msgs[(*n)++] = msg;
            cs->owed--;
            continue;
        }
        natsMsg_Destroy(msg);
        if (kind == PULLED_GONE) break;
        if (kind == PULLED_END) {
            cs->owed = 0;
            if (*n == 0) return 0; /* back to the loop, which may be stopping */
        }
    }
    if (*n > 0) return 0; /* what came is handled; the trouble shows again next time */
    return diag_set(DIAG_UNAVAILABLE, "pull from %s as %s: the consumer does not answer",
                    cs->stream, cs->service);
}

/* A thread's own nice value (Linux keeps one per thread). */
static int thread_nice(int nice)
{
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

/* Pace only a thread that may go back: an unprivileged one may not lower
 * its nice value below 20 - RLIMIT_NICE. */
static void pace_init(bus_consumer_t *cs)
{
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    struct rlimit rl;
    cs->base_nice = cs->nice = base;
    cs->pacing = errno == 0 && base + CONSUMER_BACKLOG_NICE <= 19 &&
                 (geteuid() == 0 ||
                  (getrlimit(RLIMIT_NICE, &rl) == 0 &&
                   (rl.rlim_cur == RLIM_INFINITY || 20 - (long long)rl.rlim_cur <= base)));
}

/* Yield to the foreground while a backlog lasts (see CONSUMER_BACKLOG_NICE). */
static void pace(bus_consumer_t *cs, int batch)
{
    int nice = cs->base_nice + (batch >= CONSUMER_BACKLOG_BATCH ? CONSUMER_BACKLOG_NICE : 0);
    if (!cs->pacing || nice == cs->nice) return;
    if (thread_nice(nice) == 0) cs->nice = nice;
    else cs->pacing = false; /* not allowed after all: stays as it is */
}

static void *consumer_main(void *arg)
{
    bus_consumer_t *cs = arg;
    log_set_service(cs->service);
    char name[16]; /* for top -H and perf: "c:<service>:<stream>", cut to fit */
    const char *stream = strncmp(cs->stream, "ATES_", 5) == 0 ? cs->stream + 5 : cs->stream;
    size_t len = strlen(stream);
    if (len <= 5) snprintf(name, sizeof(name), "c:%.7s:%.5s", cs->service, stream);
    else /* its first three and last two letters: ACCOUNTS is ACCTS, ACCOUNTING ACCNG */
        snprintf(name, sizeof(name), "c:%.7s:%.3s%.2s", cs->service, stream, stream + len - 2);
    pthread_setname_np(pthread_self(), name);
    db_conn_t *c = db_conn(cs->db);
    int seen_gen = -1, errors = 0;
    int64_t backoff = 0, failed = 0;
    natsMsg *msgs[BUS_BATCH];
    if (c) cs->retry_at = next_retry(cs, c);
    if (cs->w.bus->wake) cs->woken = cs->w.bus->wake(cs->w.bus->wake_ud);
    pace_init(cs);
    while (c && !bus_worker_stopping(&cs->w)) {
        if (cs->sub && cs->restart) {
            bus_sub_destroy(cs->w.bus, cs->sub);
            cs->sub = NULL;
        }
        if (!cs->sub && subscribe(cs, &seen_gen) < 0) {
            if (backoff == 0) log_diag(LOG_WARN, "consumer subscribe (retrying)");
            backoff = bus_backoff_next(backoff);
            bus_worker_sleep(&cs->w, backoff, false);
            continue;
        }
        backoff = 0;
        int gen = seen_gen;
        if (bus_ensure_known(cs->w.bus, &seen_gen) == 0 && seen_gen != gen) {
            cs->restart = true; /* a new connection: what was delivered meanwhile is lost */
            continue;
        }
        retry_parked(cs, c);
        int n = 0;
        if (collect(cs, msgs, &n) == 0) {
            errors = 0;
            if (n == 0) continue;
            /* the server sends the next batch while this one is handled */
            if (cs->owed < BUS_BATCH / 2) pull(cs);
            pace(cs, n);
            bool ok = handle_batch(cs, c, msgs, n);
            for (int i = 0; i < n; i++) natsMsg_Destroy(msgs[i]);
            failed = ok ? 0 : bus_backoff_next(failed);
            if (!ok) bus_worker_sleep(&cs->w, failed, false); /* before it comes again */
        } else if (++errors >= CONSUMER_PULL_ERRORS) {
            log_diag(LOG_WARN, "consumer (subscribing again)");
            cs->restart = true;
            seen_gen = -1;
            errors = 0;
        } else {
            bus_worker_sleep(&cs->w, (int64_t)BUS_BACKOFF_MIN_MS * errors, false);
        }
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
    snprintf(cs->next_subject, sizeof(cs->next_subject), "$JS.API.CONSUMER.MSG.NEXT.%s.%s",
             stream->name, service);
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
    cs->retried = metrics_counter("ates_bus_retries_total", "Events whose handler failed, parked to be tried again", labels);
    cs->dead_letters = metrics_counter("ates_bus_dead_letters_total", "Events dead-lettered", labels);
    if (!(cs->js = bus_js(bus))) {
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
