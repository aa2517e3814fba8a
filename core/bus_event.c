/*
 * bus_event: reading a consumed event. The body of a message from the
 * network is hostile: it must be a JSON object with a valid event_id, an
 * envelope of the CONTRACT (event_name, event_version, data, ...) and data
 * that its registered schema accepts. Split in two steps so the consumer
 * can skip an already handled event before paying for validation.
 */
#include "bus.h"

#include "diag.h"
#include "json.h"
#include "uuid.h"

int bus_event_parse(const char *raw, size_t len, cJSON **body_out, bus_event_t *ev)
{
    *body_out = NULL;
    cJSON *body = json_parse_strict(raw, len);
    if (!body) return diag_set(DIAG_VALIDATION, "body is not JSON: %s", diag_last()->message);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return diag_set(DIAG_VALIDATION, "body is not a JSON object");
    }
    ev->body = body;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "event_id");
    *body_out = body;
    if (!cJSON_IsString(id) || !uuid_valid(id->valuestring))
        return diag_set(DIAG_VALIDATION, "missing or invalid event_id");
    ev->event_id = id->valuestring;
    return 0;
}

/* Envelope fields into `ev`; -1 with a DIAG_VALIDATION diag when absent. */
static int read_envelope(const cJSON *body, bus_event_t *ev)
{
    int64_t version = 0;
    const cJSON *data = NULL;
    if (json_get_string(body, "event_name", true, &ev->name) < 0 ||
        json_get_int64(body, "event_version", true, &version) < 0 ||
        json_get_string(body, "event_time", false, &ev->event_time) < 0 ||
        json_get_string(body, "producer", false, &ev->producer) < 0 ||
        json_get_string(body, "trace_id", false, &ev->trace_id) < 0 ||
        json_get_object(body, "data", true, &data) < 0)
        return -1;
    if (version < 1 || version > 1000000) return diag_set(DIAG_VALIDATION, "bad event_version");
    ev->version = (int)version;
    ev->data = data;
    return 0;
}

int bus_event_check(const schema_registry_t *reg, const cJSON *body, bus_event_t *ev)
{
    if (read_envelope(body, ev) < 0) return -1;
    if (!schema_find(reg, ev->name, ev->version))
        return diag_set(DIAG_VALIDATION, "unknown event %s v%d", ev->name, ev->version);
    return schema_validate_event(reg, ev->name, ev->version, body);
}
