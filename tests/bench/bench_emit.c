/*
 * bench_emit: bus_emit in bulk, as a shuffle does it: N TaskAssigned events
 * in chunks of 5000 per transaction, validated against the real schemas
 * (config/schemas) and written to the outbox (no relay, no NATS). Also times
 * the validation alone. Prints "name value unit" lines.
 * usage: bench_emit DIR [EVENTS] [SCHEMA_DIR]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/bus.h"
#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/schema.h"
#include "core/uuid.h"

#define CHUNK 5000

static cJSON *assigned_data(const char *task, const char *who, const char *when)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "task_id", task);
    cJSON_AddStringToObject(d, "assignee_id", who);
    cJSON_AddNullToObject(d, "previous_assignee_id");
    cJSON_AddStringToObject(d, "assigned_at", when);
    return d;
}

static double validate_only(const schema_registry_t *reg, long n, bool compiled)
{
    const cJSON *schema = schema_find(reg, "TaskAssigned", 1);
    cJSON *env = cJSON_CreateObject();
    char id[UUID_LEN], when[CLOCK_RFC3339_LEN];
    uuid_v7(id);
    clock_rfc3339(clock_now_ms(), when);
    cJSON_AddStringToObject(env, "event_id", id);
    cJSON_AddStringToObject(env, "event_name", "TaskAssigned");
    cJSON_AddNumberToObject(env, "event_version", 1);
    cJSON_AddStringToObject(env, "event_time", when);
    cJSON_AddStringToObject(env, "producer", "tracker");
    cJSON_AddStringToObject(env, "trace_id", id);
    cJSON_AddItemToObject(env, "data", assigned_data(id, id, when));
    int64_t t0 = clock_monotonic_ms();
    long bad = 0;
    for (long i = 0; i < n; i++)
        bad += (compiled ? schema_validate_event(reg, "TaskAssigned", 1, env)
                         : schema_validate(schema, env)) < 0;
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    cJSON_Delete(env);
    if (bad) fprintf(stderr, "bench_emit: %ld invalid\n", bad);
    return (double)n / (dt > 0 ? dt : 1e-3);
}

/* The SQLite floor: the same rows with a ready body and ids, no envelope. */
static double insert_only(db_conn_t *c, long n)
{
    static const char body[] =
        "{\"event_id\":\"0190f7a2-3c4d-7e5f-8a6b-7c8d9e0f1a2b\",\"event_name\":\"TaskAssigned\","
        "\"event_version\":1,\"event_time\":\"2026-01-01T00:00:00.000Z\",\"producer\":\"tracker\","
        "\"trace_id\":\"0190f7a2-3c4d-7e5f-8a6b-7c8d9e0f1a2b\",\"data\":{\"task_id\":"
        "\"0190f7a2-3c4d-7e5f-8a6b-7c8d9e0f1a2b\",\"assignee_id\":\"0190f7a2-3c4d-7e5f-8a6b-"
        "7c8d9e0f1a2b\",\"previous_assignee_id\":null,\"assigned_at\":\"2026-01-01T00:00:00.000Z\"}}";
    char id[UUID_LEN];
    int64_t t0 = clock_monotonic_ms();
    for (long done = 0; done < n;) {
        if (db_begin(c) < 0) return -1;
        for (long i = 0; i < CHUNK && done < n; i++, done++) {
            uuid_v7(id);
            sqlite3_stmt *st = db_stmt(c, "INSERT INTO outbox(event_id, subject, name, version, "
                                          "body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
            if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, "ates.x") < 0 ||
                db_bind_text(st, 3, "TaskAssigned") < 0 || db_bind_int64(st, 4, 1) < 0 ||
                db_bind_text(st, 5, body) < 0 || db_bind_int64(st, 6, clock_now_ms()) < 0 ||
                db_step_done(c, st) < 0) {
                db_rollback(c);
                return -1;
            }
        }
        if (db_commit(c) < 0) return -1;
    }
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    return (double)n / (dt > 0 ? dt : 1e-3);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_emit DIR [EVENTS] [SCHEMA_DIR]\n");
        return 2;
    }
    long total = argc > 2 ? atol(argv[2]) : 100000;
    const char *schemas = argc > 3 ? argv[3] : "config/schemas";
    schema_registry_t *reg = NULL;
    db_t *db = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench_emit.db", argv[1]);
    if (schema_registry_load(&reg, schemas) < 0 ||
        db_open(&db, "tracker", path, db_core_migrations, NULL) < 0)
        goto fail;
    bus_set_schemas(reg);
    printf("schema_validate_task_assigned %.0f docs/s\n", validate_only(reg, total, false));
    printf("schema_validate_event_task_assigned %.0f docs/s\n", validate_only(reg, total, true));

    db_conn_t *c = db_conn(db);
    char task[UUID_LEN], who[UUID_LEN], when[CLOCK_RFC3339_LEN];
    uuid_v7(who);
    uuid_v7(task); /* the data is built per event, as a shuffle does */
    clock_rfc3339(clock_now_ms(), when);
    int64_t t0 = clock_monotonic_ms();
    for (long done = 0; done < total;) {
        if (db_begin(c) < 0) goto fail;
        for (long i = 0; i < CHUNK && done < total; i++, done++) {
            if (bus_emit(c, "ates.tracker.task_assigned", "TaskAssigned", 1,
                         assigned_data(task, who, when), NULL) < 0) {
                db_rollback(c);
                goto fail;
            }
        }
        if (db_commit(c) < 0) goto fail;
    }
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    printf("bus_emit_chunked %.0f events/s (%ld events, chunks of %d)\n",
           (double)total / (dt > 0 ? dt : 1e-3), total, CHUNK);
    double floor_rate = insert_only(c, total);
    if (floor_rate < 0) goto fail;
    printf("outbox_insert_only %.0f rows/s (ready body, the SQLite floor)\n", floor_rate);
    printf("outbox_rows %lld\n", (long long)bus_outbox_pending(db));
    bus_set_schemas(NULL);
    db_close(db);
    schema_registry_free(reg);
    return 0;
fail:
    fprintf(stderr, "bench_emit: %s\n", diag_last()->message);
    bus_set_schemas(NULL);
    db_close(db);
    schema_registry_free(reg);
    return 1;
}
