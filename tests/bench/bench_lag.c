/*
 * bench_lag: the lag from tracker to accounting at a steady rate. Publishes
 * TaskAssigned v1 events (CONTRACT envelope and headers, fresh task ids,
 * one assignee) to ates.tasks.assigned at RATE per second for SECONDS
 * seconds, and listens (core NATS) on ates.accounting.transaction; the lag
 * of an event is the arrival of the debit TransactionApplied of its task
 * minus the moment it was published. The JetStream ack of each publish is
 * timed too (the part of the lag that is the broker storing the event).
 * Waits at most LAG_GRACE_MS after the last publish for the stragglers,
 * then prints one line:
 *   accounting_lag_p99 P99 ms (p50 .., max ..; ...)
 * Exit 0 when every event was answered, 1 otherwise (the line still comes).
 * usage: bench_lag NATS_URL RATE SECONDS ASSIGNEE_ID
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/json.h"
#include "core/uuid.h"

#define LAG_MAX_EVENTS 1000000
#define LAG_GRACE_MS 10000
#define LAG_BODY_MAX 1024
#define LAG_INDEX_HEX 12 /* the last group of a task id holds the event's index */

typedef struct lag_state {
    pthread_mutex_t lock;
    int n;
    char (*task_ids)[UUID_LEN];
    int64_t *sent_ns; /* 0 until published */
    int64_t *lag_ns;  /* -1 until answered */
    int64_t *ack_ns;  /* -1 until JetStream acknowledged the publish */
    int answered, acked, nacked;
    int foreign; /* TransactionApplied of other tasks (background activity) */
} lag_state_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until_ns(int64_t at)
{
    for (;;) {
        int64_t now = mono_ns();
        if (now >= at) return;
        struct timespec d = {(time_t)((at - now) / 1000000000LL),
                             (long)((at - now) % 1000000000LL)};
        nanosleep(&d, NULL);
    }
}

/* Event index of a bench task id, or -1 when it is not one of ours. */
static int task_index(const lag_state_t *s, const char *task_id)
{
    if (!task_id || strlen(task_id) != UUID_LEN - 1) return -1;
    char *end = NULL;
    unsigned long long i = strtoull(task_id + (UUID_LEN - 1 - LAG_INDEX_HEX), &end, 16);
    if (!end || *end || i >= (unsigned long long)s->n) return -1;
    return strcmp(s->task_ids[i], task_id) == 0 ? (int)i : -1;
}

/* The JetStream ack of a publish; its event id ends in the event's index
 * like the task id. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    int64_t now = mono_ns();
    lag_state_t *s = closure;
    const char *id = NULL;
    int i = -1;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id && strlen(id) == UUID_LEN - 1) {
        char *end = NULL;
        unsigned long long k = strtoull(id + (UUID_LEN - 1 - LAG_INDEX_HEX), &end, 16);
        if (end && !*end && k < (unsigned long long)s->n) i = (int)k;
    }
    pthread_mutex_lock(&s->lock);
    if (!pa) {
        s->nacked++;
    } else if (i >= 0 && s->sent_ns[i] > 0 && s->ack_ns[i] < 0) {
        s->ack_ns[i] = now - s->sent_ns[i];
        s->acked++;
    }
    pthread_mutex_unlock(&s->lock);
    natsMsg_Destroy(msg);
}

static void on_transaction(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    int64_t now = mono_ns();
    lag_state_t *s = closure;
    cJSON *body = cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    const cJSON *data = body ? cJSON_GetObjectItemCaseSensitive(body, "data") : NULL;
    const char *task_id = NULL, *kind = NULL;
    if (json_get_string(data, "task_id", false, &task_id) < 0 ||
        json_get_string(data, "kind", false, &kind) < 0)
        task_id = kind = NULL;
    int i = kind && strcmp(kind, "debit") == 0 ? task_index(s, task_id) : -1;
    pthread_mutex_lock(&s->lock);
    if (i >= 0 && s->sent_ns[i] > 0 && s->lag_ns[i] < 0) {
        s->lag_ns[i] = now - s->sent_ns[i];
        s->answered++;
    } else if (i < 0) {
        s->foreign++;
    }
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(body);
    natsMsg_Destroy(msg);
}

static int publish(jsCtx *js, int i, const char *task_id, const char *assignee)
{
    char id[UUID_LEN], at[CLOCK_RFC3339_LEN], body[LAG_BODY_MAX];
    uuid_v7(id);
    snprintf(id + (UUID_LEN - 1 - LAG_INDEX_HEX), LAG_INDEX_HEX + 1, "%012x", i);
    clock_rfc3339(clock_now_ms(), at);
    int n = snprintf(body, sizeof(body),
                     "{\"event_id\":\"%s\",\"event_name\":\"TaskAssigned\",\"event_version\":1,"
                     "\"event_time\":\"%s\",\"producer\":\"bench\",\"trace_id\":\"bench-lag\","
                     "\"data\":{\"task_id\":\"%s\",\"assignee_id\":\"%s\","
                     "\"previous_assignee_id\":null,\"assigned_at\":\"%s\"}}",
                     id, at, task_id, assignee, at);
    if (n < 0 || n >= (int)sizeof(body)) return -1;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, "ates.tasks.assigned", NULL, body, n);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Event", "TaskAssigned");
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Ates-Version", "1");
    if (s == NATS_OK) s = js_PublishMsgAsync(js, &m, NULL);
    natsMsg_Destroy(m); /* NULL when the library took it */
    if (s != NATS_OK) fprintf(stderr, "bench_lag: publish: %s\n", natsStatus_GetText(s));
    return s == NATS_OK ? 0 : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (nearest rank) of sorted v[0..n), in ms. */
static double quantile_ms(const int64_t *v, int n, double q)
{
    if (n == 0) return 0;
    int k = (int)(q * n + 0.999999) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return (double)v[k] / 1e6;
}

/* A whole number in 1..max from text, or -1. */
static long parse_count(const char *text, long max)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    return end != text && !*end && v >= 1 && v <= max ? v : -1;
}

/* Percentiles of what arrived, one line on stdout. */
static int report(lag_state_t *s, int64_t sent_for, int64_t late)
{
    int64_t *lags = malloc(sizeof(*lags) * (size_t)s->n);
    int64_t *acks = malloc(sizeof(*acks) * (size_t)s->n);
    if (!lags || !acks) {
        free(lags);
        free(acks);
        fprintf(stderr, "bench_lag: out of memory\n");
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    int m = 0, a = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->lag_ns[i] >= 0) lags[m++] = s->lag_ns[i];
        if (s->ack_ns[i] >= 0) acks[a++] = s->ack_ns[i];
    }
    int foreign = s->foreign, nacked = s->nacked;
    pthread_mutex_unlock(&s->lock);
    qsort(lags, (size_t)m, sizeof(*lags), cmp_i64);
    qsort(acks, (size_t)a, sizeof(*acks), cmp_i64);
    printf(
        "accounting_lag_p99 %.1f ms (p50 %.1f ms, max %.1f ms; %d TaskAssigned at %.0f/s over "
        "%.1f s, %d debits seen, %d missing after %d s; JetStream ack of the publish p50 %.1f ms, "
        "p99 %.1f ms (%d acks, %d errors); %d other transactions; publisher at most %.1f ms "
        "behind schedule; target p99 <= 20 ms)\n",
        quantile_ms(lags, m, 0.99), quantile_ms(lags, m, 0.50), m ? (double)lags[m - 1] / 1e6 : 0,
        s->n, (double)s->n * 1e9 / (double)(sent_for > 0 ? sent_for : 1), (double)sent_for / 1e9, m,
        s->n - m, LAG_GRACE_MS / 1000, quantile_ms(acks, a, 0.50), quantile_ms(acks, a, 0.99), a,
        nacked, foreign, (double)late / 1e6);
    free(lags);
    free(acks);
    return m == s->n ? 0 : -1;
}

/* Subscribe, publish at `rate` per second, wait for the answers, report. */
static int run(lag_state_t *s, const char *url, const char *assignee, long rate)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    natsStatus st = natsConnection_ConnectTo(&nc, url);
    if (st == NATS_OK)
        st = natsConnection_Subscribe(&sub, nc, "ates.accounting.transaction", on_transaction, s);
    if (st == NATS_OK) st = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (st == NATS_OK) st = natsConnection_Flush(nc); /* the server knows the subscription */
    if (st == NATS_OK) st = jsOptions_Init(&jo);
    if (st == NATS_OK) {
        jo.PublishAsync.MaxPending = 4096;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = s;
        st = natsConnection_JetStream(&js, nc, &jo);
    }
    int rc = 0;
    if (st != NATS_OK) {
        fprintf(stderr, "bench_lag: connect to %s: %s\n", url, natsStatus_GetText(st));
        rc = -1;
        goto out;
    }
    int64_t period = 1000000000LL / rate, start = mono_ns(), late = 0;
    for (int i = 0; i < s->n && rc == 0; i++) {
        int64_t due = start + (int64_t)i * period;
        sleep_until_ns(due);
        int64_t now = mono_ns();
        if (now - due > late) late = now - due;
        pthread_mutex_lock(&s->lock);
        s->sent_ns[i] = now;
        pthread_mutex_unlock(&s->lock);
        rc = publish(js, i, s->task_ids[i], assignee);
    }
    int64_t sent_for = mono_ns() - start;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = LAG_GRACE_MS;
    if (rc == 0 && js_PublishAsyncComplete(js, &po) != NATS_OK) {
        fprintf(stderr, "bench_lag: publish acks did not all come\n");
        rc = -1;
    }
    int64_t until = mono_ns() + (int64_t)LAG_GRACE_MS * 1000000LL;
    while (mono_ns() < until) {
        pthread_mutex_lock(&s->lock);
        int answered = s->answered;
        pthread_mutex_unlock(&s->lock);
        if (answered >= s->n) break;
        struct timespec d = {0, 10000000L};
        nanosleep(&d, NULL);
    }
    natsSubscription_Unsubscribe(sub);
    if (report(s, sent_for, late) < 0) rc = -1;
out:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_lag NATS_URL RATE SECONDS ASSIGNEE_ID\n");
        return 2;
    }
    long rate = parse_count(argv[2], LAG_MAX_EVENTS), secs = parse_count(argv[3], LAG_MAX_EVENTS);
    const char *assignee = argv[4];
    if (rate < 0 || secs < 0 || rate * secs > LAG_MAX_EVENTS || !uuid_valid(assignee)) {
        fprintf(stderr, "bench_lag: RATE*SECONDS must be 1..%d and ASSIGNEE_ID a UUID\n",
                LAG_MAX_EVENTS);
        return 2;
    }
    lag_state_t s = {.n = (int)(rate * secs)};
    pthread_mutex_init(&s.lock, NULL);
    s.task_ids = calloc((size_t)s.n, sizeof(*s.task_ids));
    s.sent_ns = calloc((size_t)s.n, sizeof(*s.sent_ns));
    s.lag_ns = malloc(sizeof(*s.lag_ns) * (size_t)s.n);
    s.ack_ns = malloc(sizeof(*s.ack_ns) * (size_t)s.n);
    int rc = -1;
    if (!s.task_ids || !s.sent_ns || !s.lag_ns || !s.ack_ns) {
        fprintf(stderr, "bench_lag: out of memory\n");
    } else {
        for (int i = 0; i < s.n; i++) {
            uuid_v7(s.task_ids[i]);
            snprintf(s.task_ids[i] + (UUID_LEN - 1 - LAG_INDEX_HEX), LAG_INDEX_HEX + 1, "%012x", i);
            s.lag_ns[i] = s.ack_ns[i] = -1;
        }
        rc = run(&s, argv[1], assignee, rate);
    }
    free(s.task_ids);
    free(s.sent_ns);
    free(s.lag_ns);
    free(s.ack_ns);
    pthread_mutex_destroy(&s.lock);
    return rc == 0 ? 0 : 1;
}
