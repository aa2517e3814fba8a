/*
 * test_schema_event: schema_validate_event (the registry's compiled
 * schemas) gives exactly what schema_validate gives on the same schema:
 * the same result, kind and message, for every keyword, nested paths,
 * patterns and items; plus the unknown-event case and the real schemas.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/schema.h"
#include "t.h"

static char g_dir[512];

static const struct pair {
    const char *schema, *doc;
    int valid; /* expected result, so a case that passes both ways by accident shows */
} cases[] = {
    {"{\"type\":\"string\"}", "\"x\"", 1},
    {"{\"type\":\"string\"}", "1", 0},
    {"{\"type\":\"integer\"}", "2.5", 0},
    {"{\"type\":\"integer\"}", "1e300", 0},
    {"{\"type\":\"number\"}", "2", 1},
    {"{\"type\":[\"string\",\"null\"]}", "null", 1},
    {"{\"type\":[\"string\",\"null\"]}", "{}", 0},
    {"{\"type\":[\"integer\",\"boolean\"]}", "true", 1},
    {"{\"type\":\"array\"}", "{}", 0},
    {"{\"const\":2}", "2.0", 1},
    {"{\"const\":\"a\"}", "\"b\"", 0},
    {"{\"enum\":[\"debit\",\"credit\"]}", "\"refund\"", 0},
    {"{\"minimum\":0}", "-1", 0},
    {"{\"maximum\":10}", "10.5", 0},
    {"{\"minLength\":2}", "\"a\"", 0},
    {"{\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", 0},
    {"{\"format\":\"uuid\"}", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7\"", 0},
    {"{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00.123Z\"", 1},
    {"{\"format\":\"date\"}", "\"2026-02-29\"", 0},
    {"{\"pattern\":\"^[A-Z]{3}-\\\\d+$\"}", "\"ABC-12\"", 1},
    {"{\"pattern\":\"^[A-Z]{3}-\\\\d+$\"}", "\"AB-12\"", 0},
    {"{\"pattern\":\"^a\"}", "5", 1},
    {"{\"type\":\"string\",\"pattern\":\"^(a)$\"}", "\"a\"", -1}, /* refused at load */
    {"{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{\"a\":{\"type\":"
     "\"integer\"},\"b\":{\"type\":\"string\"}}}",
     "{\"b\":\"x\",\"a\":1,\"extra\":true}", 1},
    {"{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{\"a\":{\"type\":"
     "\"integer\"},\"b\":{\"type\":\"string\"}}}",
     "{\"a\":1}", 0},
    {"{\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{\"a\":1,\"b\":2}", 0},
    {"{\"additionalProperties\":false}", "{\"z\":1}", 0},
    {"{\"properties\":{},\"additionalProperties\":false}", "{}", 1},
    {"{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":\"x\",\"a\":5}", 1}, /* first wins */
    {"{\"properties\":{\"data\":{\"type\":\"object\",\"required\":[\"title\"],\"properties\":{"
     "\"odd key\":{\"type\":\"null\"},\"tags\":{\"items\":{\"type\":\"object\",\"properties\":"
     "{\"n\":{\"maximum\":3}}}}}}}}",
     "{\"data\":{\"title\":\"t\",\"tags\":[{\"n\":1},{\"n\":4}]}}", 0},
    {"{\"properties\":{\"data\":{\"type\":\"object\",\"required\":[\"title\"],\"properties\":{"
     "\"odd key\":{\"type\":\"null\"}}}}}",
     "{\"data\":{\"title\":\"t\",\"odd key\":1}}", 0},
    {"{\"items\":{\"type\":\"string\",\"pattern\":\"x\"}}", "[\"ax\",\"b\"]", 0},
    {"{\"items\":{\"type\":\"string\"}}", "[\"a\",\"b\"]", 1},
    {"{\"type\":\"object\"}", "[]", 0},
    /* members out of the schema's order and repeated names: the first
     * member of a name is the one checked, as cJSON finds it */
    {"{\"properties\":{\"b\":{\"type\":\"string\"},\"a\":{\"type\":\"integer\"}}}",
     "{\"a\":1,\"b\":\"x\",\"a\":\"late\"}", 1},
    {"{\"properties\":{\"b\":{\"type\":\"string\"},\"a\":{\"type\":\"integer\"}}}",
     "{\"a\":\"first\",\"b\":\"x\",\"a\":1}", 0},
    {"{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}}}",
     "{\"a\":1,\"b\":2,\"b\":\"late\"}", 0},
    {"{\"properties\":{\"a\":{\"type\":\"integer\"},\"c\":{},\"b\":{\"type\":\"string\"}}}",
     "{\"a\":1,\"b\":\"x\"}", 1},
    {"{\"required\":[\"b\",\"a\",\"c\"]}", "{\"a\":1,\"b\":2}", 0},
    {"{\"required\":[\"b\",\"a\"]}", "{\"a\":1,\"b\":2}", 1},
    {"{\"properties\":{\"a\":{},\"b\":{}},\"additionalProperties\":false}",
     "{\"b\":1,\"a\":2,\"c\":3}", 0},
    {"{\"properties\":{\"a\":{},\"b\":{}},\"additionalProperties\":false}",
     "{\"b\":1,\"a\":2,\"b\":3}", 1},
};

static int write_schema(int i, const char *text)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/S%d.v1.json", g_dir, i);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Compare both validators on one case; `reg` holds only that schema. */
static void compare(int i, const schema_registry_t *reg)
{
    char name[16];
    snprintf(name, sizeof(name), "S%d", i);
    cJSON *doc = cJSON_Parse(cases[i].doc);
    T_CHECK(doc != NULL);
    diag_clear();
    int slow = schema_validate(schema_find(reg, name, 1), doc);
    diag_t a = *diag_last();
    diag_clear();
    int fast = schema_validate_event(reg, name, 1, doc);
    diag_t b = *diag_last();
    if (slow != fast || a.kind != b.kind || strcmp(a.message, b.message) != 0 ||
        fast != (cases[i].valid ? 0 : -1))
        fprintf(stderr, "case %d (%s / %s): schema_validate %d \"%s\", event %d \"%s\"\n", i,
                cases[i].schema, cases[i].doc, slow, a.message, fast, b.message);
    T_EQ_INT(fast, slow);
    T_EQ_INT(b.kind, a.kind);
    T_EQ_STR(b.message, a.message);
    T_EQ_INT(fast, cases[i].valid ? 0 : -1);
    cJSON_Delete(doc);
}

static void test_cases(void)
{
    for (int i = 0; i < (int)(sizeof(cases) / sizeof(*cases)); i++) {
        T_EQ_INT(write_schema(i, cases[i].schema), 0);
        schema_registry_t *reg = NULL;
        int rc = schema_registry_load(&reg, g_dir);
        T_EQ_INT(rc, cases[i].valid < 0 ? -1 : 0);
        if (reg) compare(i, reg);
        schema_registry_free(reg);
        char path[700];
        snprintf(path, sizeof(path), "%s/S%d.v1.json", g_dir, i);
        unlink(path);
    }
}

static void test_unknown_and_real(void)
{
    char dir[600];
    const char *src = getenv("ATES_SRC");
    snprintf(dir, sizeof(dir), "%s/config/schemas", src ? src : ".");
    schema_registry_t *reg = NULL;
    T_EQ_INT(schema_registry_load(&reg, dir), 0);
    if (!reg) return;
    cJSON *doc = cJSON_Parse("{}");
    T_EQ_INT(schema_validate_event(reg, "NoSuchEvent", 1, doc), -1);
    T_EQ_INT(diag_last()->kind, DIAG_NOT_FOUND);
    T_EQ_INT(schema_validate_event(reg, "TaskAssigned", 99, doc), -1);
    T_EQ_INT(diag_last()->kind, DIAG_NOT_FOUND);
    T_EQ_INT(schema_validate_event(NULL, "TaskAssigned", 1, doc), -1);
    T_EQ_INT(schema_validate_event(reg, "TaskAssigned", 1, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    cJSON_Delete(doc);

    static const char *const docs[] = {
        "{\"event_id\":\"0190a5b2-0000-7000-8000-000000000001\",\"event_name\":\"TaskAssigned\","
        "\"event_version\":1,\"event_time\":\"2026-11-24T10:00:00.500Z\",\"producer\":\"tracker\","
        "\"trace_id\":\"t\",\"data\":{\"task_id\":\"0190a5b2-0000-7000-8000-000000000002\","
        "\"assignee_id\":\"0190a5b2-0000-7000-8000-000000000003\",\"previous_assignee_id\":null,"
        "\"assigned_at\":\"2026-11-24T10:00:00.500Z\"}}",
        "{\"event_id\":\"0190a5b2-0000-7000-8000-000000000001\",\"event_name\":\"TaskAssigned\","
        "\"event_version\":1,\"event_time\":\"2026-11-24T10:00:00.500Z\",\"producer\":\"tracker\","
        "\"trace_id\":\"t\",\"data\":{\"task_id\":\"0190a5b2-0000-7000-8000-000000000002\","
        "\"assignee_id\":\"nope\",\"previous_assignee_id\":null,"
        "\"assigned_at\":\"2026-11-24T10:00:00.500Z\"}}",
        "{\"event_id\":\"0190a5b2-0000-7000-8000-000000000001\",\"event_name\":\"TaskAssigned\","
        "\"event_version\":1,\"event_time\":\"2026-11-24T10:00:00.500Z\",\"producer\":\"\","
        "\"trace_id\":\"t\",\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++) {
        doc = cJSON_Parse(docs[i]);
        T_CHECK(doc != NULL);
        diag_clear();
        int slow = schema_validate(schema_find(reg, "TaskAssigned", 1), doc);
        char a[sizeof(diag_last()->message)];
        snprintf(a, sizeof(a), "%s", diag_last()->message);
        diag_clear();
        int fast = schema_validate_event(reg, "TaskAssigned", 1, doc);
        T_EQ_INT(fast, i == 0 ? 0 : -1);
        T_EQ_INT(fast, slow);
        T_EQ_STR(diag_last()->message, a);
        cJSON_Delete(doc);
    }
    schema_registry_free(reg);
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "schemaev") < 0) return 1;
    test_cases();
    test_unknown_and_real();
    rmdir(g_dir);
    return t_done();
}
