/*
 * bench_jetstream: the raw JetStream ceilings, straight through nats.c:
 * async publish into a file-storage stream, then batched pull with async
 * acks. Prints "name value unit" lines.
 * usage: bench_jetstream NATS_URL [COUNT]
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"

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

    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "BENCH";
    CHECK(js_PullSubscribe(&sub, js, "bench.events", "bench", &jo, &so, NULL));
    int got = 0;
    t0 = clock_monotonic_ms();
    while (got < count) {
        natsMsgList list = {0};
        CHECK(natsSubscription_Fetch(&list, sub, 256, 5000, NULL));
        for (int i = 0; i < list.Count; i++) natsMsg_Ack(list.Msgs[i], NULL);
        got += list.Count;
        natsMsgList_Destroy(&list);
    }
    dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("jetstream_fetch_ack %.0f msg/s\n", got / dt);

    natsSubscription_Destroy(sub);
    js_DeleteStream(js, "BENCH", NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
