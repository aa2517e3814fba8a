/*
 * bus: events over NATS JetStream (CONTRACT section 3).
 *
 * Producing: bus_emit() validates an event against its schema and writes it
 * into the service's `outbox` table inside the caller's transaction. A relay
 * thread per service publishes outbox rows in order, asynchronously, with
 * the Nats-Msg-Id header set to the event id (the stream's duplicate window
 * makes a re-publish after a crash harmless), and deletes rows only once
 * JetStream has acknowledged them. It wakes at once after a commit that
 * emitted and backs off while NATS is down.
 *
 * Consuming: one consumer thread per (service, stream), on a durable pull
 * consumer named after the service. Each fetched batch is handled in one
 * transaction: per message, the event id goes into `inbox` (already there:
 * skip), the body is validated, and the handler runs inside a savepoint.
 * Commit, then one ack for the batch. An event whose handler fails is parked
 * in `inbox_retry` and tried again after a backoff while the stream goes on.
 * A message that fails validation, or whose handler reports DIAG_VALIDATION,
 * or that fails BUS_MAX_DELIVER times, becomes a
 * DeadLetter event on ates.dlq.<service> (through the outbox, in the same
 * transaction) and is acked: one poison event never blocks the stream.
 * A handler failing with DIAG_UNAVAILABLE (a rule that fails or is not
 * loaded) is never dead-lettered: its event stays parked, tried every
 * BUS_WAIT_RETRY_MS after the first BUS_MAX_DELIVER attempts, until it
 * applies; an event that books money is not lost to an operator's typo.
 */
#ifndef ATES_BUS_H
#define ATES_BUS_H

#include <stdbool.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#include "db.h"
#include "uuid.h"
#include "schema.h"

#define BUS_MAX_DELIVER 5
#define BUS_WAIT_RETRY_MS 30000
#define BUS_BATCH 256
#define BUS_DLQ_STREAM "ATES_DLQ"
#define BUS_DLQ_SUBJECTS "ates.dlq.>"

typedef struct bus bus_t;

/* A JetStream stream a service publishes to or reads from. Lists of them
 * end with an entry whose name is NULL. */
typedef struct bus_stream {
    const char *name;     /* "ATES_EXAMPLE" */
    const char *subjects; /* "ates.example.>" */
} bus_stream_t;

/* One event handed to a handler. All pointers live until the handler returns. */
typedef struct bus_event {
    const char *subject;
    const char *event_id;
    const char *name;       /* event_name */
    int version;            /* event_version */
    const char *event_time;
    const char *producer;
    const char *trace_id;
    const cJSON *data;      /* the "data" object */
    const cJSON *body;      /* the whole envelope */
    int delivered;          /* JetStream delivery count, 1 on first delivery */
} bus_event_t;

/* Apply one event inside the batch transaction `tx`. Return 0, or -1 with a
 * diag: DIAG_VALIDATION dead-letters it at once, anything else is retried. */
typedef int (*bus_handler_fn)(db_conn_t *tx, const bus_event_t *ev, void *ud);

typedef struct bus_subscription {
    const char *stream;     /* the stream holding the subject */
    const char *subject;    /* exact subject, e.g. "ates.example.created" */
    bus_handler_fn handle;
} bus_subscription_t;

/* Parse a consumed message body: a JSON object with a valid event_id.
 * Fills ev->body and ev->event_id; *body_out receives the parsed document
 * (the caller frees it, also on failure). -1 with DIAG_VALIDATION. */
int bus_event_parse(const char *raw, size_t len, cJSON **body_out, bus_event_t *ev);
/* Check the envelope of a parsed body and validate it against its schema in
 * `reg`; fills the envelope fields of `ev`. -1 with DIAG_VALIDATION. */
int bus_event_check(const schema_registry_t *reg, const cJSON *body, bus_event_t *ev);

/* Connect to `urls` (comma-separated), reconnecting forever in the
 * background; returns even while NATS is down (the relay and consumers wait
 * for it). `schemas` validates everything emitted and consumed. */
int bus_open(bus_t **out, const char *urls, const schema_registry_t *schemas);
/* A counter that moves when what parked events wait for may have changed
 * (the runtime gives the rules' generation): when it moves, every parked
 * event is tried again at once rather than at its time. Set before the
 * consumers start; fn is called from their threads. */
void bus_set_wake(bus_t *bus, uint64_t (*fn)(const void *ud), const void *ud);
void bus_close(bus_t *bus);
bool bus_connected(bus_t *bus);
/* Round trip to the server (for /ready): 0 when NATS answers. */
int bus_ping(bus_t *bus);

/* Create the streams that do not exist (file storage, 2 min duplicate
 * window), plus ATES_DLQ. -1 (diag unavailable) while NATS is down. */
int bus_ensure_streams(bus_t *bus, const bus_stream_t *streams);

/*
 * Write an event into the outbox of tx's database, inside tx (which must be
 * in a transaction). Builds the envelope: a new UUIDv7 event_id, event_time
 * now, producer = the database's owner name, trace_id = the calling
 * thread's log trace (a new one when none). `data` is always consumed.
 * -1 with a diag when the event has no schema or does not match it.
 * `event_id_out` (may be NULL) receives the event id.
 */
int bus_emit(db_conn_t *tx, const char *subject, const char *name, int version, cJSON *data,
             char *event_id_out);
/*
 * bus_emit in two steps, for a producer of many events in one transaction
 * (the daily close) that builds them on another thread while its own
 * writes the rows. bus_prepare does everything before the outbox row on
 * any thread, outside any transaction: the envelope (as bus_emit; the
 * producer and trace id given, trace NULL for a new one), the schema check
 * and the printed body. bus_emit_prepared writes the row inside tx and
 * always takes the body (freed, NULL after). bus_prepared_free frees what
 * a prepared event holds (NULL-safe, idempotent).
 */
typedef struct bus_prepared {
    char id[UUID_LEN];
    const char *name; /* static: the caller's */
    int version;
    char *body;       /* malloc'd JSON */
    size_t len;
} bus_prepared_t;
int bus_prepare(const char *producer, const char *trace, const char *name, int version,
                cJSON *data, bus_prepared_t *out);
int bus_emit_prepared(db_conn_t *tx, const char *subject, bus_prepared_t *p, char *event_id_out);
void bus_prepared_free(bus_prepared_t *p);
/* Schemas used by bus_emit (set by bus_open; settable alone for tests). */
void bus_set_schemas(const schema_registry_t *schemas);

/* Start the outbox relay of `db` (one per service). */
int bus_relay_start(bus_t *bus, db_t *db);
/* Start consumer threads for `subs` (name-NULL-terminated list): one per
 * distinct stream, durable `service`, filter = that stream's subjects from
 * `streams`. `ud` is passed to handlers. */
int bus_consume_start(bus_t *bus, db_t *db, const char *service, const bus_stream_t *streams,
                      const bus_subscription_t *subs, void *ud);
/* Stop every relay and consumer thread (in-flight batches finish). */
void bus_stop_all(bus_t *bus);

/* Number of rows waiting in db's outbox (for metrics and tests). */
int64_t bus_outbox_pending(db_t *db);

/* `ates events tail`: print every message on `subject` (default "ates.>")
 * as one JSON line {"subject","headers":{...},"event":{...}} to `out` until
 * *stop becomes true or `max` messages (0 = no limit). With `from_start`,
 * replay what the streams hold first. */
int bus_tail(bus_t *bus, const char *subject, bool from_start, long max, FILE *out,
             volatile bool *stop);

/* --- durable consumers, for `ates replay` (bus_admin.c) ------------------ */

/* Delete the durable consumer `durable` of `stream`; 0 also when it does
 * not exist. -1 (diag unavailable) while NATS is down. */
int bus_consumer_delete(bus_t *bus, const char *stream, const char *durable);
/* The stream's last sequence and message count (0 and 0 when it does not
 * exist). */
int bus_stream_state(bus_t *bus, const char *stream, uint64_t *last_seq, uint64_t *msgs);
/* How far `durable` has got on `stream`: *ack_floor = the stream sequence
 * up to which every message is acked, *ack_pending = messages delivered and
 * not yet acked. 0 and zeros when the consumer does not exist. */
int bus_consumer_progress(bus_t *bus, const char *stream, const char *durable,
                          uint64_t *ack_floor, int64_t *ack_pending);

#endif
