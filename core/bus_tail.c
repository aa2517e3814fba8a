/*
 * bus_tail: `ates events tail`. Live: a core NATS subscription (JetStream
 * publishes are ordinary messages to core subscribers). With from_start: an
 * ordered (ephemeral, no-ack) JetStream consumer with DeliverAll on every
 * stream whose subjects overlap the requested subject; those continue with
 * new messages once the history is replayed.
 *
 * Each message is one line: {"subject":..,"headers":{..},"event":<body as
 * JSON, or the raw text when it is not JSON>}.
 */
#include "bus_internal.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "json.h"
#include "log.h"

#define TAIL_MAX_SUBS 32
#define TAIL_POLL_MS 100

/* Next token of a subject (up to '.'); advances *p. */
static size_t token(const char **p, const char **tok)
{
    *tok = *p;
    const char *dot = strchr(*p, '.');
    size_t len = dot ? (size_t)(dot - *p) : strlen(*p);
    *p = dot ? dot + 1 : *p + len;
    return len;
}

/* true when some subject matches both patterns (NATS wildcards * and >). */
static bool subjects_overlap(const char *a, const char *b)
{
    for (;;) {
        bool enda = !*a, endb = !*b;
        if (enda || endb) return enda && endb;
        const char *ta, *tb;
        size_t la = token(&a, &ta), lb = token(&b, &tb);
        if ((la == 1 && *ta == '>') || (lb == 1 && *tb == '>')) return true;
        bool wild = (la == 1 && *ta == '*') || (lb == 1 && *tb == '*');
        if (!wild && (la != lb || memcmp(ta, tb, la) != 0)) return false;
    }
}

/* true when every subject matching `inner` matches `outer`. */
static bool subject_within(const char *inner, const char *outer)
{
    for (;;) {
        if (!*outer || !*inner) return !*outer && !*inner;
        const char *ti, *to;
        size_t li = token(&inner, &ti), lo = token(&outer, &to);
        if (lo == 1 && *to == '>') return true;
        if (li == 1 && *ti == '>') return false;
        if (lo == 1 && *to == '*') continue;
        if (li != lo || memcmp(ti, to, li) != 0) return false;
    }
}

static int print_msg(natsMsg *msg, FILE *out)
{
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "subject", natsMsg_GetSubject(msg));
    cJSON *headers = cJSON_AddObjectToObject(line, "headers");
    const char **keys = NULL;
    int nkeys = 0;
    if (natsMsgHeader_Keys(msg, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char *v = NULL;
            if (natsMsgHeader_Get(msg, keys[i], &v) == NATS_OK && v)
                cJSON_AddStringToObject(headers, keys[i], v);
        }
        free((void *)keys);
    }
    int len = natsMsg_GetDataLength(msg);
    const char *data = natsMsg_GetData(msg);
    cJSON *ev = cJSON_ParseWithLength(data ? data : "", (size_t)len);
    if (!ev) {
        char *raw = strndup(data ? data : "", (size_t)len);
        ev = cJSON_CreateString(raw ? raw : "");
        free(raw);
    }
    cJSON_AddItemToObject(line, "event", ev);
    char *text = json_print(line);
    cJSON_Delete(line);
    if (!text) return diag_set(DIAG_INTERNAL, "out of memory");
    fprintf(out, "%s\n", text);
    fflush(out);
    free(text);
    return 0;
}

/* Ordered consumers on the streams overlapping `subject`; the count or -1. */
static int replay_subs(bus_t *bus, jsCtx *js, const char *subject, natsSubscription **subs)
{
    jsStreamInfoList *list = NULL;
    natsStatus s = js_Streams(&list, js, NULL, NULL);
    if (s == NATS_NOT_FOUND) return 0;
    if (s != NATS_OK) return bus_nats_error(DIAG_UNAVAILABLE, s, "list streams");
    int n = 0;
    for (int i = 0; i < list->Count && n < TAIL_MAX_SUBS; i++) {
        jsStreamConfig *cfg = list->List[i]->Config;
        for (int k = 0; k < cfg->SubjectsLen && n < TAIL_MAX_SUBS; k++) {
            const char *ss = cfg->Subjects[k];
            if (!subjects_overlap(subject, ss)) continue;
            jsSubOptions so;
            jsSubOptions_Init(&so);
            so.Stream = cfg->Name;
            so.Ordered = true;
            so.Config.DeliverPolicy = js_DeliverAll;
            const char *filter = subject_within(subject, ss) ? subject : ss;
            s = js_SubscribeSync(&subs[n], js, filter, NULL, &so, NULL);
            if (s != NATS_OK) {
                bus_nats_error(DIAG_UNAVAILABLE, s, cfg->Name);
                log_diag(LOG_WARN, "tail");
                continue;
            }
            n++;
        }
    }
    jsStreamInfoList_Destroy(list);
    return n;
}

/* Poll every subscription until max messages or *stop. */
static int pump(natsSubscription **subs, int n, long max, FILE *out, volatile bool *stop)
{
    long seen = 0;
    int64_t wait = n > 0 ? TAIL_POLL_MS / n + 1 : TAIL_POLL_MS;
    while (!(stop && *stop) && (max <= 0 || seen < max)) {
        for (int i = 0; i < n && (max <= 0 || seen < max); i++) {
            natsMsg *msg = NULL;
            natsStatus s = natsSubscription_NextMsg(&msg, subs[i], wait);
            if (s == NATS_OK) {
                int rc = print_msg(msg, out);
                natsMsg_Destroy(msg);
                if (rc < 0) return -1;
                seen++;
            }
        }
    }
    return 0;
}

int bus_tail(bus_t *bus, const char *subject, bool from_start, long max, FILE *out,
             volatile bool *stop)
{
    if (!subject || !*subject) subject = "ates.>";
    natsSubscription *subs[TAIL_MAX_SUBS] = {0};
    jsCtx *js = NULL;
    int n = 0, rc = -1;
    if (from_start) {
        if (!bus_connected(bus)) return diag_set(DIAG_UNAVAILABLE, "nats not connected");
        if (!(js = bus_js(bus))) return -1;
        if ((n = replay_subs(bus, js, subject, subs)) < 0) goto out;
        if (n == 0) {
            diag_set(DIAG_NOT_FOUND, "no stream holds %s", subject);
            goto out;
        }
    } else {
        natsStatus s = natsConnection_SubscribeSync(&subs[0], bus->nc, subject);
        if (s != NATS_OK) {
            bus_nats_error(DIAG_UNAVAILABLE, s, "subscribe");
            goto out;
        }
        n = 1;
    }
    rc = pump(subs, n, max, out, stop);
out:
    for (int i = 0; i < n; i++) bus_sub_destroy(bus, subs[i]); /* also drops the ephemerals */
    jsCtx_Destroy(js);
    return rc;
}
