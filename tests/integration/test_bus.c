/*
 * test_bus: the bus against a real nats-server (started here on a free
 * 127.0.0.1 port with its own store), a real SQLite file and test schemas.
 *
 * 1. 1000 events through outbox -> relay -> stream -> consumer, each applied
 *    once; Nats-Msg-Id = event_id in the stream; outbox ends empty.
 * 2. emitting while nats-server is down keeps rows; they arrive after restart.
 *    Then, more rows than the relay keeps in flight, while another
 *    connection holds the write lock: all of them are published (the
 *    deletes wait, nothing else does), and deleted once the lock is free.
 * 3. a handler failing twice is retried and applies once; the same event
 *    stored twice in the stream applies once.
 * 4. bodies that fail their schema (or are not JSON) become DeadLetters on
 *    ates.dlq.probe; the stream goes on.
 * 5. a handler that always fails is dead-lettered after BUS_MAX_DELIVER.
 * 6. a handler that stalls longer than a pull request lives, with more than two
 *    batches queued behind it: what the expired requests delivered meanwhile
 *    is applied, every event once, and the stalled one is not redelivered.
 * 7. a durable that acknowledges one by one, with deliveries never
 *    acknowledged (what an older version that died leaves): a consumer of a
 *    second service ("heir") takes it over, recreated from its ack floor; what the
 *    floor covers is not applied, everything after it is, once.
 *    While it catches up with that backlog, its thread runs nicer.
 * 8. deliveries that never reach that consumer (another client's pull
 *    request takes one): it sees the gap and starts again from its ack
 *    floor; every event is applied once. Its batches are small again, and
 *    so its thread is back at the process's priority.
 * 9. events parked by a process that stopped are tried again by the next:
 *    one applies, one at its last attempt is dead-lettered.
 * Plus bus_emit's errors and bus_tail.
 *
 * Waits are generous upper bounds; nothing asserts on durations.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include "core/bus.h"
#include "core/clock.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/uuid.h"
#include "t.h"

#define STREAM "ATES_PROBE"
#define SUBJECT "ates.probe.created"
#define N_EVENTS 1000
#define WAIT_MS 60000

static char g_dir[512];
static char g_store[600];
static int g_port;
static pid_t g_server = -1;
static char g_url[64];

/* ---- process and file helpers ---------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int server_start(void)
{
    char port[16], log[700];
    snprintf(port, sizeof(port), "%d", g_port);
    snprintf(log, sizeof(log), "%s/nats.log", g_dir);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        FILE *f = freopen(log, "a", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", port, "-js", "-sd", g_store,
               (char *)NULL);
        _exit(127);
    }
    g_server = pid;
    for (int i = 0; i < 200; i++) {
        if (port_open(g_port)) return 0;
        sleep_ms(50);
    }
    return -1;
}

static void server_stop(void)
{
    if (g_server <= 0) return;
    kill(g_server, SIGTERM);
    waitpid(g_server, NULL, 0);
    g_server = -1;
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *from, const char *dir, const char *name)
{
    FILE *f = fopen(from, "r");
    if (!f) return -1;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return write_file(dir, name, buf);
}

#define ENVELOPE_PROPS                                                                         \
    "\"event_id\":{\"type\":\"string\",\"format\":\"uuid\"},"                                  \
    "\"event_time\":{\"type\":\"string\",\"format\":\"date-time\"},"                           \
    "\"producer\":{\"type\":\"string\"},\"trace_id\":{\"type\":\"string\"},"
#define ENVELOPE_REQUIRED                                                                      \
    "\"required\":[\"event_id\",\"event_name\",\"event_version\",\"event_time\",\"producer\"," \
    "\"trace_id\",\"data\"],"

static const char probe_schema[] =
    "{\"type\":\"object\"," ENVELOPE_REQUIRED "\"additionalProperties\":false,\"properties\":{"
    ENVELOPE_PROPS "\"event_name\":{\"const\":\"Probe\"},\"event_version\":{\"const\":1},"
    "\"data\":{\"type\":\"object\",\"required\":[\"n\"],\"additionalProperties\":false,"
    "\"properties\":{\"n\":{\"type\":\"integer\"}}}}}";

static const char dead_letter_schema[] =
    "{\"type\":\"object\"," ENVELOPE_REQUIRED "\"additionalProperties\":false,\"properties\":{"
    ENVELOPE_PROPS "\"event_name\":{\"const\":\"DeadLetter\"},\"event_version\":{\"const\":1},"
    "\"data\":{\"type\":\"object\",\"required\":[\"subject\",\"reason\",\"body\"],"
    "\"additionalProperties\":false,\"properties\":{\"subject\":{\"type\":\"string\"},"
    "\"reason\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"}}}}}";

/* Test schemas; the real DeadLetter.v1 when the tree has it. */
static int write_schemas(const char *dir)
{
    mkdir(dir, 0700);
    const char *src = getenv("ATES_SRC");
    char real[700];
    snprintf(real, sizeof(real), "%s/config/schemas/DeadLetter.v1.json", src ? src : ".");
    if (access(real, R_OK) == 0) {
        if (copy_file(real, dir, "DeadLetter.v1.json") < 0) return -1;
    } else if (write_file(dir, "DeadLetter.v1.json", dead_letter_schema) < 0) {
        return -1;
    }
    return write_file(dir, "Probe.v1.json", probe_schema);
}

/* ---- the probe service ------------------------------------------------ */

typedef struct probe {
    atomic_int calls_retry;   /* n == 2001: fails on deliveries 1 and 2 */
    atomic_int calls_dup;     /* n == 3001: stored twice in the stream */
    atomic_int calls_poison;  /* n == 5001: always fails */
    atomic_int calls_stall;   /* n == 7000: stalls STALL_MS */
} probe_t;

#define STALL_MS 2500 /* well past a pull request's expiry on the server */
#define STALL_BEHIND (3 * BUS_BATCH)

static int probe_handle(db_conn_t *tx, const bus_event_t *ev, void *ud)
{
    probe_t *p = ud;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(ev->data, "n");
    if (!cJSON_IsNumber(n)) return diag_set(DIAG_VALIDATION, "no n");
    int v = n->valueint;
    if (v == 2001 && atomic_fetch_add(&p->calls_retry, 1) < 2)
        return diag_set(DIAG_INTERNAL, "transient failure %d", ev->delivered);
    if (v == 3001) atomic_fetch_add(&p->calls_dup, 1);
    if (v == 5001) {
        atomic_fetch_add(&p->calls_poison, 1);
        return diag_set(DIAG_INTERNAL, "always failing");
    }
    if (v == 7000 && atomic_fetch_add(&p->calls_stall, 1) == 0) sleep_ms(STALL_MS);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO effects(event_id, n, applied) VALUES (?1, ?2, 1) "
                                   "ON CONFLICT(event_id) DO UPDATE SET applied = applied + 1");
    if (!st || db_bind_text(st, 1, ev->event_id) < 0 || db_bind_int64(st, 2, v) < 0) return -1;
    return db_step_done(tx, st);
}

static const char *const probe_migrations[] = {
    "CREATE TABLE effects (event_id TEXT PRIMARY KEY, n INTEGER NOT NULL,"
    " applied INTEGER NOT NULL)",
    NULL,
};

static const bus_stream_t streams[] = {{STREAM, "ates.probe.>"}, {NULL, NULL}};
static const bus_subscription_t subs[] = {{STREAM, SUBJECT, probe_handle}, {NULL, NULL, NULL}};

/* ---- queries ------------------------------------------------------------ */

static int64_t query_int(db_t *db, const char *sql, const char *arg)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, sql) : NULL;
    if (!st || (arg && db_bind_text(st, 1, arg) < 0)) return -1;
    int64_t v = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return v;
}

static int64_t effects_count(db_t *db) { return query_int(db, "SELECT count(*) FROM effects", NULL); }

static int64_t effect_of(db_t *db, int n)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(applied), 0) FROM effects WHERE n = %d", n);
    return query_int(db, sql, NULL);
}

#define WAIT_UNTIL(cond)                                                                       \
    do {                                                                                       \
        for (int w_ = 0; w_ < WAIT_MS / 50 && !(cond); w_++) sleep_ms(50);                     \
    } while (0)

static uint64_t stream_msgs(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    uint64_t n = 0;
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/* The durable has nothing pending and nothing unacknowledged. */
static bool durable_idle(jsCtx *js, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    bool idle = false;
    if (js_GetConsumerInfo(&ci, js, STREAM, durable, NULL, NULL) == NATS_OK)
        idle = ci->NumPending == 0 && ci->NumAckPending == 0;
    jsConsumerInfo_Destroy(ci);
    return idle;
}

static bool consumer_idle(jsCtx *js) { return durable_idle(js, "probe"); }

/* The nice value of this process's thread named `name`, or -100 when none. */
static int thread_nice_of(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    int nice = -100;
    struct dirent *e;
    while (d && nice == -100 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], buf[1024] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        bool match = fgets(buf, sizeof(buf), f) && strncmp(buf, name, strlen(name)) == 0 &&
                     (buf[strlen(name)] == '\n' || buf[strlen(name)] == '\0');
        fclose(f);
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if (!match || !(f = fopen(path, "r"))) continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')'); /* then: state is field 3, nice field 19 */
        for (int field = 2; p && field < 19; field++) p = strchr(p + 1, ' ');
        if (p) nice = atoi(p + 1);
    }
    if (d) closedir(d);
    return nice;
}

/* ---- emitting ----------------------------------------------------------- */

static int emit_n(db_t *db, int n, char *id_out)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "n", n);
    return bus_emit(db_conn(db), SUBJECT, "Probe", 1, data, id_out);
}

/* Emit values from..to-1 in transactions of `per_tx`. */
static int emit_range(db_t *db, int from, int to, int per_tx, char (*ids)[UUID_LEN])
{
    db_conn_t *c = db_conn(db);
    for (int i = from; i < to;) {
        if (db_begin(c) < 0) return -1;
        for (int k = 0; k < per_tx && i < to; k++, i++) {
            if (emit_n(db, i, ids ? ids[i - from] : NULL) < 0) {
                db_rollback(c);
                return -1;
            }
        }
        if (db_commit(c) < 0) return -1;
    }
    return 0;
}

/* A raw publish of `body` with a chosen Nats-Msg-Id (bypassing the outbox). */
static int raw_publish(jsCtx *js, const char *body, const char *msg_id)
{
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    natsStatus s = natsMsg_Create(&m, SUBJECT, NULL, body, (int)strlen(body));
    if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    if (s == NATS_OK) s = js_PublishMsg(&pa, js, m, NULL, NULL);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : -1;
}

static char *probe_body(const char *id, const char *data)
{
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(clock_now_ms(), when);
    char *out = NULL;
    if (asprintf(&out,
                 "{\"event_id\":\"%s\",\"event_name\":\"Probe\",\"event_version\":1,"
                 "\"event_time\":\"%s\",\"producer\":\"test\",\"trace_id\":\"t\",\"data\":%s}",
                 id, when, data) < 0)
        return NULL;
    return out;
}

/* ---- the cases ------------------------------------------------------------ */

static void test_emit_errors(db_t *db)
{
    db_conn_t *c = db_conn(db);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "n", 1);
    T_EQ_INT(bus_emit(c, SUBJECT, "Probe", 1, data, NULL), -1); /* not in a transaction */
    T_CHECK(db_begin(c) == 0);
    data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "n", "one");
    T_EQ_INT(bus_emit(c, SUBJECT, "Probe", 1, data, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_CHECK(strstr(diag_last()->message, "$.data.n") != NULL);
    data = cJSON_CreateObject();
    T_EQ_INT(bus_emit(c, SUBJECT, "Probe", 7, data, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_INTERNAL);
    char id[UUID_LEN] = "";
    T_EQ_INT(emit_n(db, 42, id), 0);
    T_CHECK(uuid_valid(id));
    db_rollback(c);
    T_EQ_INT(bus_outbox_pending(db), 0);
}

static void test_flow(db_t *db, jsCtx *js)
{
    static char ids[N_EVENTS][UUID_LEN];
    T_EQ_INT(emit_range(db, 0, N_EVENTS, N_EVENTS / 4, ids), 0);
    WAIT_UNTIL(effects_count(db) >= N_EVENTS && bus_outbox_pending(db) == 0);
    T_EQ_INT(effects_count(db), N_EVENTS);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM effects WHERE applied != 1", NULL), 0);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM effects WHERE event_id = ?1", ids[0]), 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM effects WHERE event_id = ?1", ids[N_EVENTS - 1]), 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox", NULL), N_EVENTS);
    T_EQ_INT(bus_outbox_pending(db), 0);
    T_EQ_INT(stream_msgs(js, STREAM), N_EVENTS);
    /* Stored messages carry the headers, and Nats-Msg-Id is the event id. */
    int checked = 0;
    for (uint64_t seq = 1; seq <= N_EVENTS; seq += 333) {
        natsMsg *m = NULL;
        const char *hid = NULL, *hname = NULL, *hver = NULL;
        if (js_GetMsg(&m, js, STREAM, seq, NULL, NULL) != NATS_OK) continue;
        natsMsgHeader_Get(m, "Nats-Msg-Id", &hid);
        natsMsgHeader_Get(m, "Ates-Event", &hname);
        natsMsgHeader_Get(m, "Ates-Version", &hver);
        cJSON *body = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "event_id");
        T_CHECK(cJSON_IsString(id) && hid && strcmp(id->valuestring, hid) == 0);
        T_CHECK(hid && strcmp(hid, ids[seq - 1]) == 0); /* published in seq order */
        T_EQ_STR(hname, "Probe");
        T_EQ_STR(hver, "1");
        const cJSON *producer = cJSON_GetObjectItemCaseSensitive(body, "producer");
        T_CHECK(cJSON_IsString(producer) && strcmp(producer->valuestring, "probe") == 0);
        cJSON_Delete(body);
        natsMsg_Destroy(m);
        checked++;
    }
    T_EQ_INT(checked, 4);
}

static void test_server_down(bus_t *bus, db_t *db)
{
    int64_t before = effects_count(db);
    server_stop();
    WAIT_UNTIL(!bus_connected(bus));
    T_CHECK(!bus_connected(bus));
    T_EQ_INT(bus_ping(bus), -1);
    T_EQ_INT(bus_ensure_streams(bus, streams), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    T_EQ_INT(emit_range(db, 10000, 10010, 5, NULL), 0);
    sleep_ms(500); /* give the relay a chance to (wrongly) drop rows */
    T_EQ_INT(bus_outbox_pending(db), 10);
    T_EQ_INT(server_start(), 0);
    WAIT_UNTIL(effects_count(db) >= before + 10 && bus_outbox_pending(db) == 0);
    T_EQ_INT(effects_count(db), before + 10);
    T_EQ_INT(bus_outbox_pending(db), 0);
    T_CHECK(bus_connected(bus));
    T_EQ_INT(bus_ping(bus), 0);
}

#define N_LOCKED 12000 /* over RELAY_WINDOW */

static void test_lock_held(db_t *db, jsCtx *js)
{
    int64_t before = effects_count(db);
    uint64_t in_stream = stream_msgs(js, STREAM);
    server_stop(); /* the rows wait in the outbox until the lock is taken */
    T_EQ_INT(emit_range(db, 20000, 20000 + N_LOCKED, 2000, NULL), 0);
    sqlite3 *h = NULL;
    T_EQ_INT(sqlite3_open(db_path(db), &h), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    T_EQ_INT(server_start(), 0);
    WAIT_UNTIL(stream_msgs(js, STREAM) >= in_stream + N_LOCKED);
    T_EQ_INT(stream_msgs(js, STREAM), in_stream + N_LOCKED);
    T_EQ_INT(bus_outbox_pending(db), N_LOCKED); /* published, not deleted yet */
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(h);
    WAIT_UNTIL(bus_outbox_pending(db) == 0 && effects_count(db) >= before + N_LOCKED);
    T_EQ_INT(bus_outbox_pending(db), 0);
    T_EQ_INT(effects_count(db), before + N_LOCKED);
    T_EQ_INT(stream_msgs(js, STREAM), in_stream + N_LOCKED); /* nothing went out twice */
}

static void test_redelivery(db_t *db, jsCtx *js, probe_t *p)
{
    db_conn_t *c = db_conn(db);
    T_CHECK(db_begin(c) == 0 && emit_n(db, 2001, NULL) == 0 && db_commit(c) == 0);
    WAIT_UNTIL(effect_of(db, 2001) >= 1);
    T_EQ_INT(effect_of(db, 2001), 1);
    T_EQ_INT(atomic_load(&p->calls_retry), 3);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox_retry", NULL), 0);

    /* The same event stored twice (different Nats-Msg-Id): applied once. */
    char id[UUID_LEN];
    uuid_v7(id);
    char *body = probe_body(id, "{\"n\":3001}");
    T_EQ_INT(raw_publish(js, body, "dup-a"), 0);
    T_EQ_INT(raw_publish(js, body, "dup-b"), 0);
    free(body);
    WAIT_UNTIL(effect_of(db, 3001) >= 1 && consumer_idle(js));
    T_CHECK(consumer_idle(js));
    T_EQ_INT(effect_of(db, 3001), 1);
    T_EQ_INT(atomic_load(&p->calls_dup), 1);
}

/* The DeadLetters on ates.dlq.probe, as parsed bodies in `out` (up to max). */
static int read_dlq(jsCtx *js, cJSON **out, int max)
{
    int n = 0;
    uint64_t total = stream_msgs(js, BUS_DLQ_STREAM);
    for (uint64_t seq = 1; seq <= total + 16 && n < max; seq++) {
        natsMsg *m = NULL;
        if (js_GetMsg(&m, js, BUS_DLQ_STREAM, seq, NULL, NULL) != NATS_OK) continue;
        if (strcmp(natsMsg_GetSubject(m), "ates.dlq.probe") == 0)
            out[n++] = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        natsMsg_Destroy(m);
    }
    return n;
}

static const char *dl_field(const cJSON *ev, const char *key)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_schema_dead_letter(db_t *db, jsCtx *js)
{
    char id[UUID_LEN];
    uuid_v7(id);
    char *bad = probe_body(id, "{\"n\":\"four\"}");
    T_EQ_INT(raw_publish(js, bad, "bad-1"), 0);
    T_EQ_INT(raw_publish(js, "this is not json", "bad-2"), 0);
    db_conn_t *c = db_conn(db);
    T_CHECK(db_begin(c) == 0 && emit_n(db, 4001, NULL) == 0 && db_commit(c) == 0);
    WAIT_UNTIL(effect_of(db, 4001) >= 1 && stream_msgs(js, BUS_DLQ_STREAM) >= 2);
    T_EQ_INT(effect_of(db, 4001), 1);
    cJSON *dl[8] = {0};
    int n = read_dlq(js, dl, 8);
    T_EQ_INT(n, 2);
    bool saw_schema = false, saw_json = false;
    for (int i = 0; i < n; i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(dl[i], "event_name");
        T_CHECK(cJSON_IsString(name) && strcmp(name->valuestring, "DeadLetter") == 0);
        T_EQ_STR(dl_field(dl[i], "subject"), SUBJECT);
        const char *reason = dl_field(dl[i], "reason"), *body = dl_field(dl[i], "body");
        T_CHECK(reason && *reason);
        if (body && strcmp(body, bad) == 0) saw_schema = strstr(reason, "$.data.n") != NULL;
        if (body && strcmp(body, "this is not json") == 0) saw_json = true;
        cJSON_Delete(dl[i]);
    }
    T_CHECK(saw_schema);
    T_CHECK(saw_json);
    free(bad);
}

static void test_poison(db_t *db, jsCtx *js, probe_t *p)
{
    uint64_t dl_before = stream_msgs(js, BUS_DLQ_STREAM);
    db_conn_t *c = db_conn(db);
    T_CHECK(db_begin(c) == 0 && emit_n(db, 5001, NULL) == 0 && emit_n(db, 5002, NULL) == 0 &&
            db_commit(c) == 0);
    WAIT_UNTIL(effect_of(db, 5002) >= 1 && stream_msgs(js, BUS_DLQ_STREAM) > dl_before &&
               consumer_idle(js) && bus_outbox_pending(db) == 0);
    T_EQ_INT(effect_of(db, 5002), 1);
    T_EQ_INT(effect_of(db, 5001), 0);
    T_EQ_INT(atomic_load(&p->calls_poison), BUS_MAX_DELIVER);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox_retry", NULL), 0);
    T_EQ_INT(stream_msgs(js, BUS_DLQ_STREAM), dl_before + 1);
    cJSON *dl[8] = {0};
    int n = read_dlq(js, dl, 8);
    T_EQ_INT(n, 3);
    if (n == 3) T_CHECK(strstr(dl_field(dl[2], "reason"), "always failing") != NULL);
    for (int i = 0; i < n; i++) cJSON_Delete(dl[i]);
}

static void test_stall(db_t *db, jsCtx *js, probe_t *p)
{
    static const char applied[] = "SELECT count(*) FROM effects WHERE n BETWEEN 7000 AND 9999";
    T_EQ_INT(emit_range(db, 7000, 7001 + STALL_BEHIND, 64, NULL), 0);
    WAIT_UNTIL(query_int(db, applied, NULL) >= STALL_BEHIND + 1 && consumer_idle(js) &&
               bus_outbox_pending(db) == 0);
    T_EQ_INT(query_int(db, applied, NULL), STALL_BEHIND + 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM effects WHERE n BETWEEN 7000 AND 9999 AND applied != 1",
                       NULL),
             0);
    T_EQ_INT(atomic_load(&p->calls_stall), 1);
    T_CHECK(consumer_idle(js));
}

static void test_tail(bus_t *bus)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/tail.out", g_dir);
    FILE *f = fopen(path, "w+");
    volatile bool stop = false;
    T_EQ_INT(bus_tail(bus, "ates.probe.>", true, 3, f, &stop), 0);
    rewind(f);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *subj = cJSON_GetObjectItemCaseSensitive(j, "subject");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "headers");
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(h, "Nats-Msg-Id");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
        const cJSON *eid = cJSON_GetObjectItemCaseSensitive(ev, "event_id");
        T_CHECK(cJSON_IsString(subj) && strcmp(subj->valuestring, SUBJECT) == 0);
        T_CHECK(cJSON_IsString(mid) && cJSON_IsString(eid) &&
                strcmp(mid->valuestring, eid->valuestring) == 0);
        cJSON_Delete(j);
        lines++;
    }
    T_EQ_INT(lines, 3);
    fclose(f);
}

#define TAKEN 10 /* delivered to the dead process of test_takeover */
#define TAKEN_ACKED 5

/* Pull up to `batch` messages of durable heir into `sub` (its inbox). */
static int steal_request(natsConnection *nc, natsSubscription *sub, int batch)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"batch\":%d,\"expires\":%lld}", batch, 10LL * 1000000000LL);
    return natsConnection_PublishRequestString(nc, "$JS.API.CONSUMER.MSG.NEXT." STREAM ".heir",
                                               natsSubscription_GetSubject(sub), body) == NATS_OK
               ? 0
               : -1;
}

/* A subscription on a new inbox of the test's own; NULL on failure. */
static natsSubscription *inbox_sub(natsConnection *nc)
{
    natsSubscription *sub = NULL;
    natsInbox *inbox = NULL;
    T_CHECK(natsInbox_Create(&inbox) == NATS_OK &&
            natsConnection_SubscribeSync(&sub, nc, (const char *)inbox) == NATS_OK);
    natsInbox_Destroy(inbox);
    return sub;
}

static bool is_delivery(natsMsg *m)
{
    const char *reply = natsMsg_GetReply(m);
    return reply && strncmp(reply, "$JS.ACK.", 8) == 0;
}

static void test_takeover(bus_t *bus, jsCtx *js, natsConnection *nc, db_t *db, db_t *db2,
                          probe_t *p2)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "heir";
    cc.FilterSubject = "ates.probe.>";
    cc.AckPolicy = js_AckExplicit;
    T_CHECK(js_AddConsumer(NULL, js, STREAM, &cc, NULL, NULL) == NATS_OK);
    natsSubscription *sub = inbox_sub(nc);
    if (!sub) return;
    T_EQ_INT(steal_request(nc, sub, TAKEN), 0);
    int got = 0;
    natsMsg *m = NULL;
    while (got < TAKEN && natsSubscription_NextMsg(&m, sub, 5000) == NATS_OK) {
        if (is_delivery(m) && got++ < TAKEN_ACKED)
            natsConnection_PublishString(nc, natsMsg_GetReply(m), "+ACK");
        natsMsg_Destroy(m);
    }
    T_EQ_INT(got, TAKEN);
    natsConnection_Flush(nc);
    natsSubscription_Destroy(sub);

    /* test_flow's events are the stream's first: n = 0..4 were acknowledged */
    int64_t want = effects_count(db) - TAKEN_ACKED;
    int base = getpriority(PRIO_PROCESS, 0), nicest = -100;
    T_EQ_INT(bus_consume_start(bus, db2, "heir", streams, subs, p2), 0);
    /* a backlog of thousands of events: it yields while it catches up */
    for (int i = 0; i < WAIT_MS && effects_count(db2) < want - BUS_BATCH; i++) {
        int nice = thread_nice_of("c:heir:PROBE");
        if (nice > nicest) nicest = nice;
        sleep_ms(1);
    }
    T_CHECK(nicest > base);
    WAIT_UNTIL(effects_count(db2) >= want && durable_idle(js, "heir"));
    T_EQ_INT(effects_count(db2), want);
    T_EQ_INT(query_int(db2, "SELECT count(*) FROM effects WHERE applied != 1", NULL), 0);
    T_EQ_INT(query_int(db2, "SELECT count(*) FROM effects WHERE n < 5", NULL), 0);
    T_EQ_INT(query_int(db2, "SELECT count(*) FROM effects WHERE n BETWEEN 5 AND 9", NULL), 5);
    jsConsumerInfo *ci = NULL;
    T_CHECK(js_GetConsumerInfo(&ci, js, STREAM, "heir", NULL, NULL) == NATS_OK);
    T_CHECK(ci && ci->Config && ci->Config->AckPolicy == js_AckAll);
    jsConsumerInfo_Destroy(ci);
}

static void test_gap(db_t *db, db_t *db2, jsCtx *js, natsConnection *nc)
{
    natsSubscription *sub = inbox_sub(nc);
    if (!sub) return;
    int64_t before = effects_count(db2);
    db_conn_t *c = db_conn(db);
    int emitted = 0, stolen_n = -1;
    T_EQ_INT(steal_request(nc, sub, 1), 0);
    /* the server serves pull requests in turn: one of these events is
     * delivered to this request rather than to the consumer's */
    for (int i = 0; i < 200 && stolen_n < 0; i++) {
        T_CHECK(db_begin(c) == 0 && emit_n(db, 40000 + i, NULL) == 0 && db_commit(c) == 0);
        emitted++;
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 100) != NATS_OK) continue;
        if (is_delivery(m)) {
            cJSON *body = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(body, "data"), "n");
            stolen_n = cJSON_IsNumber(n) ? n->valueint : 0;
            cJSON_Delete(body);
        } else {
            T_EQ_INT(steal_request(nc, sub, 1), 0); /* it expired: ask again */
        }
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    T_CHECK(stolen_n >= 40000);
    /* one more after it, so that the gap shows */
    T_CHECK(db_begin(c) == 0 && emit_n(db, 40000 + emitted, NULL) == 0 && db_commit(c) == 0);
    emitted++;
    WAIT_UNTIL(effects_count(db2) >= before + emitted && durable_idle(js, "heir"));
    T_EQ_INT(effects_count(db2), before + emitted);
    T_EQ_INT(effect_of(db2, stolen_n), 1);
    T_EQ_INT(query_int(db2, "SELECT count(*) FROM effects WHERE applied != 1", NULL), 0);
    /* its last batches were single events: back at the process's priority */
    T_EQ_INT(thread_nice_of("c:heir:PROBE"), getpriority(PRIO_PROCESS, 0));
}

/* Park an event as a process that stopped would have left it: due now,
 * tried `attempts` times. */
static int park_row(db_t *db, int n, int attempts, char id[UUID_LEN])
{
    uuid_v7(id);
    char data[32];
    snprintf(data, sizeof(data), "{\"n\":%d}", n);
    char *body = probe_body(id, data);
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = body ? db_stmt(c, "INSERT INTO inbox_retry(event_id, stream, subject, body, "
                                         "stream_seq, attempts, next_at) "
                                         "VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)")
                            : NULL;
    int rc = !st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, STREAM) < 0 ||
                     db_bind_text(st, 3, SUBJECT) < 0 || db_bind_text(st, 4, body) < 0 ||
                     db_bind_int64(st, 5, attempts) < 0 || db_bind_int64(st, 6, clock_now_ms()) < 0
                 ? -1
                 : db_step_done(c, st);
    free(body);
    return rc;
}

/* 9. Events parked by a process that stopped are tried again by the next
 * one: one applies; one at its last attempt is dead-lettered. */
static void test_parked_restart(bus_t *bus, db_t *db, probe_t *p)
{
    bus_stop_all(bus);
    char ok_id[UUID_LEN], poison_id[UUID_LEN];
    T_EQ_INT(park_row(db, 50001, 1, ok_id), 0);
    T_EQ_INT(park_row(db, 5001, BUS_MAX_DELIVER - 1, poison_id), 0);
    int poison_calls = atomic_load(&p->calls_poison);
    T_EQ_INT(bus_consume_start(bus, db, "probe", streams, subs, p), 0);
    WAIT_UNTIL(query_int(db, "SELECT count(*) FROM inbox_retry", NULL) == 0);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox_retry", NULL), 0);
    T_EQ_INT(effect_of(db, 50001), 1);
    T_EQ_INT(atomic_load(&p->calls_poison), poison_calls + 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox WHERE event_id = ?1", ok_id), 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM inbox WHERE event_id = ?1", poison_id), 1);
    T_EQ_INT(query_int(db, "SELECT count(*) FROM outbox WHERE name = 'DeadLetter' AND body LIKE "
                           "'%' || ?1 || '%'",
                       poison_id),
             1);
}

/* ---- main ----------------------------------------------------------------- */

static int setup_dirs(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "bus") < 0) return -1;
    snprintf(g_store, sizeof(g_store), "%s/js", g_dir);
    return 0;
}

int main(void)
{
    log_set_level(LOG_WARN);
    if (setup_dirs() < 0 || (g_port = free_port()) < 0) return 1;
    snprintf(g_url, sizeof(g_url), "nats://127.0.0.1:%d", g_port);
    char schemas_dir[700], db_file[700], db2_file[700];
    snprintf(schemas_dir, sizeof(schemas_dir), "%s/schemas", g_dir);
    snprintf(db_file, sizeof(db_file), "%s/probe.db", g_dir);
    snprintf(db2_file, sizeof(db2_file), "%s/heir.db", g_dir);

    schema_registry_t *reg = NULL;
    db_t *db = NULL, *db2 = NULL;
    bus_t *bus = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    probe_t probe = {0}, heir = {0};
    T_EQ_INT(write_schemas(schemas_dir), 0);
    T_EQ_INT(schema_registry_load(&reg, schemas_dir), 0);
    T_EQ_INT(db_open(&db, "probe", db_file, db_core_migrations, probe_migrations), 0);
    T_EQ_INT(db_open(&db2, "heir", db2_file, db_core_migrations, probe_migrations), 0);
    T_EQ_INT(server_start(), 0);
    if (!reg || !db || !db2 || g_server <= 0) goto out;

    /* Connecting to a port where nothing listens returns at once. */
    char dead_url[64];
    snprintf(dead_url, sizeof(dead_url), "nats://127.0.0.1:%d", free_port());
    bus_t *dead = NULL;
    T_EQ_INT(bus_open(&dead, dead_url, reg), 0);
    T_CHECK(dead && !bus_connected(dead));
    T_EQ_INT(bus_ping(dead), -1);
    T_EQ_INT(bus_ensure_streams(dead, streams), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    bus_close(dead);

    T_EQ_INT(bus_open(&bus, g_url, reg), 0);
    if (!bus) goto out;
    WAIT_UNTIL(bus_connected(bus));
    T_EQ_INT(bus_ping(bus), 0);
    T_EQ_INT(bus_ensure_streams(bus, streams), 0);
    T_EQ_INT(bus_ensure_streams(bus, streams), 0); /* existing streams are fine */
    T_EQ_INT(bus_relay_start(bus, db), 0);
    T_EQ_INT(bus_consume_start(bus, db, "probe", streams, subs, &probe), 0);
    T_CHECK(natsConnection_ConnectTo(&nc, g_url) == NATS_OK);
    T_CHECK(nc && natsConnection_JetStream(&js, nc, NULL) == NATS_OK);
    if (!js) goto out;

    test_emit_errors(db);
    test_flow(db, js);
    test_server_down(bus, db);
    test_lock_held(db, js);
    test_redelivery(db, js, &probe);
    test_schema_dead_letter(db, js);
    test_poison(db, js, &probe);
    test_stall(db, js, &probe);
    test_tail(bus);
    test_takeover(bus, js, nc, db, db2, &heir);
    test_gap(db, db2, js, nc);
    test_parked_restart(bus, db, &probe);
out:
    if (bus) bus_stop_all(bus);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc); /* before the last bus_close (nats_CloseAndWait) */
    bus_close(bus);
    db_close(db);
    db_close(db2);
    schema_registry_free(reg);
    server_stop();
    t_rmdir(g_dir);
    return t_done();
}
