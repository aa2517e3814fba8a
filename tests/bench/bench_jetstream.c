/*
 * bench_jetstream: the raw JetStream ceilings, straight through nats.c:
 * async publish into a file-storage stream, then pulling it back the way
 * core/bus_consumer.c does (its own pull requests of 256 to an inbox, the
 * next one sent before a batch is acknowledged, "+ACK" per message; not
 * natsSubscription_Fetch, which overflows its array in libnats 3.4.1).
 * Then the same publish with what every aTES event carries: a body the size
 * of a TaskAssigned envelope and the three headers (Nats-Msg-Id unique, so
 * the stream's 2-minute duplicate window tracks each, as on ATES_TASKS;
 * Ates-Event, Ates-Version): the ceiling the outbox relays publish against.
 * Prints "name value unit" lines.
 * usage: bench_jetstream NATS_URL [COUNT]
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define EVENT_BYTES 420 /* a TaskAssigned envelope, as the tracker writes it */

#define CHECK(call)                                                                            \
    do {                                                                                       \
        natsStatus s_ = (call);                                                                \
        if (s_ != NATS_OK) {                                                                   \
            fprintf(stderr, "bench_jetstream: %s: %s\n", #call, natsStatus_GetText(s_));       \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_jetstream NATS_URL [COUNT]\n");
        return 2;
    }
    int count = argc > 2 ? atoi(argv[2]) : 200000;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    CHECK(natsConnection_ConnectTo(&nc, argv[1]));
    CHECK(jsOptions_Init(&jo));
    jo.PublishAsync.MaxPending = 8192;
    CHECK(natsConnection_JetStream(&js, nc, &jo));

    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"bench.>"};
    cfg.Name = "BENCH";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    js_DeleteStream(js, "BENCH", NULL, NULL);
    jsStreamInfo *si = NULL;
    CHECK(js_AddStream(&si, js, &cfg, NULL, NULL));
    jsStreamInfo_Destroy(si);

    char payload[200];
    for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (char)('a' + i % 26);
    int64_t t0 = clock_monotonic_ms();
    for (int i = 0; i < count; i++)
        CHECK(js_PublishAsync(js, "bench.events", payload, (int)sizeof(payload), NULL));
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    CHECK(js_PublishAsyncComplete(js, &po));
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("jetstream_publish_async %.0f msg/s\n", count / dt);

    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "bench";
    cc.AckPolicy = js_AckExplicit;
    jsConsumerInfo *ci = NULL;
    CHECK(js_AddConsumer(&ci, js, "BENCH", &cc, NULL, NULL));
    jsConsumerInfo_Destroy(ci);
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    CHECK(natsInbox_Create(&inbox));
    CHECK(natsConnection_SubscribeSync(&sub, nc, (const char *)inbox));
    const char *next = "$JS.API.CONSUMER.MSG.NEXT.BENCH.bench";
    const char *req = "{\"batch\":256,\"expires\":5000000000}";
    int got = 0, owed = 0;
    t0 = clock_monotonic_ms();
    while (got < count) {
        if (owed < 128) { /* the next batch is on its way while this one is acked */
            CHECK(natsConnection_PublishRequestString(nc, next, (const char *)inbox, req));
            owed += 256;
        }
        natsMsg *m = NULL;
        CHECK(natsSubscription_NextMsg(&m, sub, 5000));
        const char *reply = natsMsg_GetReply(m);
        if (reply && strncmp(reply, "$JS.ACK.", 8) == 0) {
            CHECK(natsConnection_PublishString(nc, reply, "+ACK"));
            got++;
            owed--;
        } else {
            owed = 0; /* a status: the request ended */
        }
        natsMsg_Destroy(m);
    }
    dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("jetstream_fetch_ack %.0f msg/s\n", got / dt);
    natsInbox_Destroy(inbox);

    natsSubscription_Destroy(sub);
    js_DeleteStream(js, "BENCH", NULL, NULL);

    const char *ev_subjects[] = {"benchev.>"};
    cfg.Name = "BENCH_EV";
    cfg.Subjects = ev_subjects;
    cfg.Duplicates = 2LL * 60 * 1000000000LL;
    js_DeleteStream(js, "BENCH_EV", NULL, NULL);
    si = NULL;
    CHECK(js_AddStream(&si, js, &cfg, NULL, NULL));
    jsStreamInfo_Destroy(si);
    char body[EVENT_BYTES + 1];
    for (size_t i = 0; i < EVENT_BYTES; i++) body[i] = (char)('a' + i % 26);
    body[EVENT_BYTES] = '\0';
    t0 = clock_monotonic_ms();
    for (int i = 0; i < count; i++) {
        natsMsg *m = NULL;
        char id[40];
        snprintf(id, sizeof(id), "01a24e83-e9b5-709b-a4ed-%012d", i);
        CHECK(natsMsg_Create(&m, "benchev.assigned", NULL, body, EVENT_BYTES));
        CHECK(natsMsgHeader_Set(m, "Nats-Msg-Id", id));
        CHECK(natsMsgHeader_Set(m, "Ates-Event", "TaskAssigned"));
        CHECK(natsMsgHeader_Set(m, "Ates-Version", "1"));
        CHECK(js_PublishMsgAsync(js, &m, NULL)); /* takes m */
    }
    CHECK(js_PublishAsyncComplete(js, &po));
    dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("jetstream_publish_async_events %.0f msg/s (%d-byte bodies, the three event headers, "
           "Nats-Msg-Id deduplicated)\n",
           count / dt, EVENT_BYTES);
    js_DeleteStream(js, "BENCH_EV", NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
