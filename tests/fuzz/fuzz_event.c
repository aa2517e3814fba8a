/*
 * fuzz_event: a consumed message body, as a consumer reads it: JSON,
 * event id, envelope, and the schema of its event from config/schemas.
 * Also every schema of the registry against the same document, through
 * both validators, which must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/diag.h"
#include "core/schema.h"
#include "fuzz.h"

static schema_registry_t *g_reg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/config/schemas", fuzz_src_dir());
    if (schema_registry_load(&g_reg, dir) < 0) {
        fprintf(stderr, "fuzz_event: %s\n", diag_last()->message);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body = NULL;
    bus_event_t ev = {.subject = "ates.fuzz"};
    if (bus_event_parse((const char *)data, size, &body, &ev) == 0 &&
        bus_event_check(g_reg, body, &ev) == 0) {
        /* accepted: the compiled validator must accept it too */
        if (schema_validate_event(g_reg, ev.name, ev.version, body) != 0) {
            fprintf(stderr, "fuzz_event: validators disagree: %s\n", diag_last()->message);
            abort();
        }
    } else if (body && ev.name) {
        const cJSON *schema = schema_find(g_reg, ev.name, ev.version);
        if (schema) {
            int slow = schema_validate(schema, body);
            int fast = schema_validate_event(g_reg, ev.name, ev.version, body);
            if (slow != fast) {
                fprintf(stderr, "fuzz_event: validators disagree (%d vs %d)\n", slow, fast);
                abort();
            }
        }
    }
    cJSON_Delete(body);
    return 0;
}
