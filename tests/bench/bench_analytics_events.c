/*
 * bench_analytics_events: publish the events of TASKS completed tasks, as
 * the tracker and accounting would (per task: TaskCreated v2, TaskAssigned,
 * TaskPriced, a debit, TaskCompleted, a credit: 6 events, CONTRACT
 * envelopes and headers), into ATES_TASKS and ATES_ACCOUNTING (created when
 * missing), spread over the 30 days before today, so that `make bench` can
 * time `ates replay analytics`. Prints the number of events.
 * usage: bench_analytics_events NATS_URL TASKS
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/uuid.h"

#define ACCOUNTS 100
#define SPREAD_DAYS 30
#define TX_FMT                                                                                  \
    "{\"transaction_id\":\"%s\",\"account_id\":\"%s\",\"kind\":\"%s\",\"amount_cents\":%lld,"      \
    "\"task_id\":\"%s\",\"day\":\"%s\",\"balance_cents\":%lld,\"created_at\":\"%s\","             \
    "\"rules_version\":\"0123456789ab\"}"

#define CHECK(call)                                                                            \
    do {                                                                                       \
        natsStatus s_ = (call);                                                                \
        if (s_ != NATS_OK) {                                                                   \
            fprintf(stderr, "bench_analytics_events: %s: %s\n", #call, natsStatus_GetText(s_)); \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static int ensure_stream(jsCtx *js, const char *name, const char *subjects)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subj[1] = {subjects};
    cfg.Name = name;
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = 2LL * 60 * 1000000000LL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return s == NATS_OK || jerr == JSStreamNameExistErr ? 0 : -1;
}

static int publish(jsCtx *js, const char *subject, const char *name, int version,
                   const char *producer, const char *at, const char *data)
{
    char id[UUID_LEN], body[2048], ver[8];
    uuid_v7(id);
    int n = snprintf(body, sizeof(body),
                     "{\"event_id\":\"%s\",\"event_name\":\"%s\",\"event_version\":%d,"
                     "\"event_time\":\"%s\",\"producer\":\"%s\",\"trace_id\":\"bench\",\"data\":%s}",
                     id, name, version, at, producer, data);
    snprintf(ver, sizeof(ver), "%d", version);
    natsMsg *m = NULL;
    CHECK(natsMsg_Create(&m, subject, NULL, body, n));
    natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    natsMsgHeader_Set(m, "Ates-Event", name);
    natsMsgHeader_Set(m, "Ates-Version", ver);
    natsStatus s = js_PublishMsgAsync(js, &m, NULL);
    natsMsg_Destroy(m); /* NULL when the library took it */
    CHECK(s);
    return 0;
}

static int task(jsCtx *js, long i, char accounts[ACCOUNTS][UUID_LEN], int64_t *balance,
                int64_t now)
{
    char tid[UUID_LEN], tx1[UUID_LEN], tx2[UUID_LEN], at[CLOCK_RFC3339_LEN], day[CLOCK_DAY_LEN];
    char data[1024];
    int a = (int)(i % ACCOUNTS);
    int64_t ms = now - (int64_t)(1 + i % SPREAD_DAYS) * 86400000LL + i % 1000;
    int64_t fee = 1000 + i % 1001, reward = 2000 + (i * 7) % 2001;
    uuid_v7(tid);
    uuid_v7(tx1);
    uuid_v7(tx2);
    clock_rfc3339(ms, at);
    clock_day_of(ms, day);
    const char *acc = accounts[a];
    snprintf(data, sizeof(data),
             "{\"task_id\":\"%s\",\"title\":\"bench task %ld\",\"jira_id\":\"BENCH-%ld\","
             "\"description\":null,\"assignee_id\":\"%s\",\"created_at\":\"%s\"}",
             tid, i, i, acc, at);
    if (publish(js, "ates.tasks.created", "TaskCreated", 2, "tracker", at, data) < 0) return -1;
    snprintf(data, sizeof(data),
             "{\"task_id\":\"%s\",\"assignee_id\":\"%s\",\"previous_assignee_id\":null,"
             "\"assigned_at\":\"%s\"}",
             tid, acc, at);
    if (publish(js, "ates.tasks.assigned", "TaskAssigned", 1, "tracker", at, data) < 0) return -1;
    snprintf(data, sizeof(data),
             "{\"task_id\":\"%s\",\"assign_fee_cents\":%lld,\"reward_cents\":%lld,"
             "\"rules_version\":\"0123456789ab\"}",
             tid, (long long)fee, (long long)reward);
    if (publish(js, "ates.accounting.task_priced", "TaskPriced", 1, "accounting", at, data) < 0)
        return -1;
    balance[a] -= fee;
    snprintf(data, sizeof(data), TX_FMT, tx1, acc, "debit", (long long)fee, tid, day,
             (long long)balance[a], at);
    if (publish(js, "ates.accounting.transaction", "TransactionApplied", 1, "accounting", at, data) < 0)
        return -1;
    snprintf(data, sizeof(data), "{\"task_id\":\"%s\",\"assignee_id\":\"%s\",\"completed_at\":\"%s\"}",
             tid, acc, at);
    if (publish(js, "ates.tasks.completed", "TaskCompleted", 1, "tracker", at, data) < 0) return -1;
    balance[a] += reward;
    snprintf(data, sizeof(data), TX_FMT, tx2, acc, "credit", (long long)reward, tid, day,
             (long long)balance[a], at);
    return publish(js, "ates.accounting.transaction", "TransactionApplied", 1, "accounting", at, data);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_analytics_events NATS_URL TASKS\n");
        return 2;
    }
    long tasks = atol(argv[2]);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    CHECK(natsConnection_ConnectTo(&nc, argv[1]));
    CHECK(jsOptions_Init(&jo));
    jo.PublishAsync.MaxPending = 8192;
    CHECK(natsConnection_JetStream(&js, nc, &jo));
    if (ensure_stream(js, "ATES_TASKS", "ates.tasks.>") < 0 ||
        ensure_stream(js, "ATES_ACCOUNTING", "ates.accounting.>") < 0) {
        fprintf(stderr, "bench_analytics_events: cannot create the streams\n");
        return 1;
    }
    static char accounts[ACCOUNTS][UUID_LEN];
    static int64_t balance[ACCOUNTS];
    for (int a = 0; a < ACCOUNTS; a++) uuid_v7(accounts[a]);
    int64_t now = clock_now_ms();
    for (long i = 0; i < tasks; i++)
        if (task(js, i, accounts, balance, now) < 0) return 1;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    CHECK(js_PublishAsyncComplete(js, &po));
    printf("%ld\n", tasks * 6);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
