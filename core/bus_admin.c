/*
 * bus_admin: JetStream management calls that `ates replay` needs: delete a
 * durable consumer, read a stream's last sequence, and read how far a
 * durable has acknowledged (see bus.h); and telling a "not found" of such
 * a call apart (the consumers use it too).
 */
#include "bus_internal.h"

bool bus_js_not_found(natsStatus s, jsErrCode jerr)
{
    return s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr;
}

int bus_consumer_delete(bus_t *bus, const char *stream, const char *durable)
{
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    jsCtx *js = bus_js(bus);
    if (!js) return -1;
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteConsumer(js, stream, durable, NULL, &jerr);
    jsCtx_Destroy(js);
    if (s == NATS_OK || bus_js_not_found(s, jerr)) return 0;
    return bus_nats_error(DIAG_UNAVAILABLE, s, stream);
}

int bus_stream_state(bus_t *bus, const char *stream, uint64_t *last_seq, uint64_t *msgs)
{
    *last_seq = 0;
    *msgs = 0;
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    jsCtx *js = bus_js(bus);
    if (!js) return -1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
    jsCtx_Destroy(js);
    if (s == NATS_OK) {
        *last_seq = si->State.LastSeq;
        *msgs = si->State.Msgs;
    }
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || bus_js_not_found(s, jerr)) return 0;
    return bus_nats_error(DIAG_UNAVAILABLE, s, stream);
}

int bus_consumer_progress(bus_t *bus, const char *stream, const char *durable,
                          uint64_t *ack_floor, int64_t *ack_pending)
{
    *ack_floor = 0;
    *ack_pending = 0;
    if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
    jsCtx *js = bus_js(bus);
    if (!js) return -1;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr);
    jsCtx_Destroy(js);
    if (s == NATS_OK) {
        *ack_floor = ci->AckFloor.Stream;
        *ack_pending = ci->NumAckPending;
    }
    jsConsumerInfo_Destroy(ci);
    if (s == NATS_OK || bus_js_not_found(s, jerr)) return 0;
    return bus_nats_error(DIAG_UNAVAILABLE, s, stream);
}
