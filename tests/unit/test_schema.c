/*
 * test_schema: the JSON Schema subset (every keyword valid and invalid, the
 * messages with their paths, the pattern engine and its step budget, the
 * checker), the registry loader on bad directories, and the real schemas of
 * config/schemas against a valid and broken example of every event.
 */
#include "t.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/schema.h"

/* Validate doc against schema (both JSON text). want NULL: must be valid;
 * otherwise the exact diag message expected. */
static void expect_at(int line, const char *schema_text, const char *doc_text, const char *want)
{
    cJSON *schema = cJSON_Parse(schema_text), *doc = cJSON_Parse(doc_text);
    if (!schema || !doc) {
        fprintf(stderr, "line %d: test JSON does not parse\n", line);
        T_CHECK(0);
        goto out;
    }
    if (schema_check(schema) < 0) {
        fprintf(stderr, "line %d: schema_check: %s\n", line, diag_last()->message);
        T_CHECK(0);
        goto out;
    }
    diag_clear();
    int rc = schema_validate(schema, doc);
    const char *got = rc < 0 ? diag_last()->message : NULL;
    bool ok = want ? (rc == -1 && strcmp(got, want) == 0 && diag_last()->kind == DIAG_VALIDATION)
                   : rc == 0;
    if (!ok)
        fprintf(stderr, "line %d: %s against %s: want %s, got %s\n", line, doc_text, schema_text,
                want ? want : "valid", got ? got : "valid");
    T_CHECK(ok);
out:
    cJSON_Delete(schema);
    cJSON_Delete(doc);
}
#define OK(s, d) expect_at(__LINE__, (s), (d), NULL)
#define BAD(s, d, msg) expect_at(__LINE__, (s), (d), (msg))

/* schema_check of `schema_text`: want NULL must pass, else exact message. */
static void check_at(int line, const char *schema_text, const char *want)
{
    cJSON *schema = cJSON_Parse(schema_text);
    int rc = schema ? schema_check(schema) : -2;
    const char *got = rc == -1 ? diag_last()->message : NULL;
    bool ok = want ? rc == -1 && strcmp(got, want) == 0 : rc == 0;
    if (!ok)
        fprintf(stderr, "line %d: schema_check(%s): want %s, got %s\n", line, schema_text,
                want ? want : "ok",
                got       ? got
                : rc == 0 ? "ok"
                          : "no parse");
    T_CHECK(ok);
    cJSON_Delete(schema);
}
#define CHECK_OK(s) check_at(__LINE__, (s), NULL)
#define CHECK_BAD(s, msg) check_at(__LINE__, (s), (msg))

static void test_type(void)
{
    OK("{\"type\":\"string\"}", "\"x\"");
    BAD("{\"type\":\"string\"}", "1", "$: expected type string, got integer");
    OK("{\"type\":\"integer\"}", "2");
    OK("{\"type\":\"integer\"}", "2.0"); /* integral double: an integer */
    OK("{\"type\":\"integer\"}", "-999999999999999");
    BAD("{\"type\":\"integer\"}", "1000000000000000",
        "$: 1e+15 is outside the exact integer range (at most 15 digits)");
    BAD("{\"type\":\"integer\"}", "2.5", "$: 2.5 is not an integer");
    BAD("{\"type\":\"integer\"}", "1e300", "$: 1e+300 is outside the exact integer range (at most 15 digits)");
    BAD("{\"type\":\"integer\"}", "\"2\"", "$: expected type integer, got string");
    OK("{\"type\":\"number\"}", "2.5");
    OK("{\"type\":\"number\"}", "2");
    BAD("{\"type\":\"number\"}", "true", "$: expected type number, got boolean");
    OK("{\"type\":\"boolean\"}", "false");
    BAD("{\"type\":\"boolean\"}", "0", "$: expected type boolean, got integer");
    OK("{\"type\":\"object\"}", "{}");
    BAD("{\"type\":\"object\"}", "[]", "$: expected type object, got array");
    OK("{\"type\":\"array\"}", "[1]");
    BAD("{\"type\":\"array\"}", "{}", "$: expected type array, got object");
    OK("{\"type\":\"null\"}", "null");
    BAD("{\"type\":\"null\"}", "\"\"", "$: expected type null, got string");
    /* arrays of types */
    OK("{\"type\":[\"string\",\"null\"]}", "null");
    OK("{\"type\":[\"string\",\"null\"]}", "\"a\"");
    BAD("{\"type\":[\"string\",\"null\"]}", "3", "$: expected type string or null, got integer");
    OK("{\"type\":[\"integer\",\"null\"]}", "null");
    BAD("{\"type\":[\"integer\",\"null\"]}", "0.5", "$: 0.5 is not an integer");
    OK("{\"type\":[\"integer\",\"number\"]}", "0.5");
}

static void test_scalars(void)
{
    OK("{\"const\":\"TaskCreated\"}", "\"TaskCreated\"");
    BAD("{\"const\":\"TaskCreated\"}", "\"TaskCreatedX\"",
        "$: does not equal const \"TaskCreated\"");
    BAD("{\"const\":2}", "\"2\"", "$: does not equal const 2");
    OK("{\"const\":2}", "2.0");
    OK("{\"enum\":[\"debit\",\"credit\",null]}", "null");
    OK("{\"enum\":[\"debit\",\"credit\"]}", "\"credit\"");
    BAD("{\"enum\":[\"debit\",\"credit\"]}", "\"refund\"",
        "$: \"refund\" is not one of the enum values");
    BAD("{\"enum\":[\"debit\",\"credit\"]}", "\"Debit\"",
        "$: \"Debit\" is not one of the enum values");
    OK("{\"minimum\":0}", "0");
    OK("{\"minimum\":0}", "\"not a number: ignored\"");
    BAD("{\"minimum\":0}", "-1", "$: -1 is less than minimum 0");
    BAD("{\"minimum\":0.5}", "0.25", "$: 0.25 is less than minimum 0.5");
    OK("{\"maximum\":10}", "10");
    BAD("{\"maximum\":10}", "10.5", "$: 10.5 is greater than maximum 10");
    OK("{\"minLength\":2}", "\"ab\"");
    BAD("{\"minLength\":2}", "\"a\"", "$: length 1 is less than minLength 2");
    OK("{\"minLength\":2}", "5"); /* not a string: does not apply */
    OK("{\"maxLength\":3}", "\"abc\"");
    BAD("{\"maxLength\":3}", "\"abcd\"", "$: length 4 is greater than maxLength 3");
    /* code points, not bytes: three two-byte letters and one 4-byte emoji */
    OK("{\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
    OK("{\"maxLength\":1,\"minLength\":1}", "\"\xf0\x9f\x90\xa6\"");
    BAD("{\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"",
        "$: length 3 is greater than maxLength 2");
    OK("{\"format\":\"uuid\"}", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\"");
    BAD("{\"format\":\"uuid\"}", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7\"",
        "$: does not match format uuid");
    OK("{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00.123Z\"");
    OK("{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00+03:00\"");
    BAD("{\"format\":\"date-time\"}", "\"2026-11-24 10:00:00\"",
        "$: does not match format date-time");
    BAD("{\"format\":\"date-time\"}", "\"2026-11-24T10:00:00\"",
        "$: does not match format date-time");
    OK("{\"format\":\"date\"}", "\"2024-02-29\"");
    BAD("{\"format\":\"date\"}", "\"2026-02-29\"", "$: does not match format date");
    OK("{\"format\":\"date\"}", "42"); /* formats apply to strings only */
}

static void test_objects(void)
{
    const char *s = "{\"type\":\"object\",\"required\":[\"a\",\"b\"],"
                    "\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}}}";
    OK(s, "{\"a\":1,\"b\":\"x\"}");
    OK(s, "{\"a\":1,\"b\":\"x\",\"extra\":true}"); /* additionalProperties defaults to true */
    BAD(s, "{\"a\":1}", "$: missing required property 'b'");
    BAD(s, "{\"a\":\"1\",\"b\":\"x\"}", "$.a: expected type integer, got string");
    const char *closed = "{\"properties\":{\"a\":{}},\"additionalProperties\":false}";
    OK(closed, "{\"a\":[1,2]}");
    OK(closed, "{}");
    BAD(closed, "{\"a\":1,\"b\":2}", "$: unexpected property 'b' (additionalProperties is false)");
    BAD("{\"additionalProperties\":false}", "{\"z\":1}",
        "$: unexpected property 'z' (additionalProperties is false)");
    OK("{\"additionalProperties\":true}", "{\"z\":1}");
    /* nested paths */
    const char *env = "{\"properties\":{\"data\":{\"type\":\"object\",\"required\":[\"title\"],"
                      "\"properties\":{\"task_id\":{\"format\":\"uuid\"},"
                      "\"reward_cents\":{\"type\":\"integer\"},"
                      "\"odd key\":{\"type\":\"null\"},"
                      "\"tags\":{\"items\":{\"type\":\"object\",\"properties\":"
                      "{\"n\":{\"maximum\":3}}}}}}}}";
    BAD(env, "{\"data\":{}}", "$.data: missing required property 'title'");
    BAD(env, "{\"data\":{\"title\":\"t\",\"task_id\":\"x\"}}",
        "$.data.task_id: does not match format uuid");
    BAD(env, "{\"data\":{\"title\":\"t\",\"reward_cents\":2.5}}",
        "$.data.reward_cents: 2.5 is not an integer");
    BAD(env, "{\"data\":{\"title\":\"t\",\"odd key\":1}}",
        "$.data[\"odd key\"]: expected type null, got integer");
    BAD(env, "{\"data\":{\"title\":\"t\",\"tags\":[{\"n\":1},{\"n\":2},{\"n\":4}]}}",
        "$.data.tags[2].n: 4 is greater than maximum 3");
    OK(env, "{\"data\":{\"title\":\"t\",\"tags\":[{\"n\":1},{\"m\":9}]}}");
    BAD(env, "{\"data\":{\"title\":\"t\",\"tags\":[\"x\"]}}",
        "$.data.tags[0]: expected type object, got string");
    /* items */
    OK("{\"items\":{\"type\":\"string\"}}", "[]");
    OK("{\"items\":{\"type\":\"string\"}}", "[\"a\",\"b\"]");
    BAD("{\"items\":{\"type\":\"string\"}}", "[\"a\",null]",
        "$[1]: expected type string, got null");
}

/* pattern: valid subjects, invalid subjects. */
static void pat_ok(int line, const char *pattern, const char *subject, bool match)
{
    cJSON *schema = cJSON_CreateObject(), *doc = cJSON_CreateString(subject);
    cJSON_AddStringToObject(schema, "pattern", pattern);
    int crc = schema_check(schema);
    int rc = schema_validate(schema, doc);
    bool ok = crc == 0 && rc == (match ? 0 : -1);
    if (!ok)
        fprintf(stderr, "line %d: /%s/ on \"%s\": want %s (%s)\n", line, pattern, subject,
                match ? "match" : "no match", diag_last()->message);
    T_CHECK(ok);
    cJSON_Delete(schema);
    cJSON_Delete(doc);
}
#define MATCH(p, s) pat_ok(__LINE__, (p), (s), true)
#define NOMATCH(p, s) pat_ok(__LINE__, (p), (s), false)

static void test_pattern(void)
{
    BAD("{\"pattern\":\"^[a-z_]+$\"}", "\"Popug\"", "$: does not match pattern ^[a-z_]+$");
    OK("{\"pattern\":\"^[a-z_]+$\"}", "7"); /* applies to strings only */
    /* anchors and the unanchored search */
    MATCH("abc", "xxabcxx");
    NOMATCH("abc", "xxabxcx");
    MATCH("^abc", "abcxx");
    NOMATCH("^abc", "xabc");
    MATCH("abc$", "xxabc");
    NOMATCH("abc$", "abcx");
    MATCH("^$", "");
    NOMATCH("^$", "a");
    MATCH("", "anything");
    /* classes */
    MATCH("^[a-c]+$", "abcabc");
    NOMATCH("^[a-c]+$", "abcd");
    MATCH("^[^\\[\\]]*$", "Fix the popug");
    NOMATCH("^[^\\[\\]]*$", "[UP-1] Fix");
    NOMATCH("^[^\\[\\]]*$", "Fix ]");
    MATCH("^[^\\[\\]]*$", "caf\xc3\xa9 \xf0\x9f\x90\xa6"); /* a negated class takes a code point */
    MATCH("^[0-9a-f]{12}$", "0123456789ab");
    NOMATCH("^[0-9a-f]{12}$", "0123456789a");
    NOMATCH("^[0-9a-f]{12}$", "0123456789abc");
    NOMATCH("^[0-9a-f]{12}$", "0123456789aB");
    MATCH("^[-a]+$", "-a-");
    MATCH("^[a-]+$", "a-");
    MATCH("^[\\d_]+$", "1_2");
    NOMATCH("^[\\d_]+$", "1a");
    MATCH("^[\xc3\xa0-\xc3\xbf]$", "\xc3\xa9"); /* a range of non-ASCII code points */
    /* shorthands, dot and escapes */
    MATCH("^\\d\\d-\\w+\\s\\S$", "42-ab_9 x");
    NOMATCH("^\\d$", "a");
    NOMATCH("^\\D$", "5");
    MATCH("^\\W$", "-");
    NOMATCH("^\\s$", "x");
    MATCH("^a.c$", "abc");
    MATCH("^a.c$", "a\xc3\xa9"
                   "c"); /* . is one code point */
    NOMATCH("^a.c$", "a\nc");
    NOMATCH("^a.c$", "ac");
    MATCH("^a\\.c$", "a.c");
    NOMATCH("^a\\.c$", "abc");
    MATCH("^\\$\\^\\*\\+\\?\\{\\}\\(\\)\\|\\\\$", "$^*+?{}()|\\");
    MATCH("^a\\tb$", "a\tb");
    /* quantifiers */
    MATCH("^ab*c$", "ac");
    MATCH("^ab*c$", "abbbc");
    NOMATCH("^ab+c$", "ac");
    MATCH("^ab+c$", "abc");
    MATCH("^ab?c$", "ac");
    MATCH("^ab?c$", "abc");
    NOMATCH("^ab?c$", "abbc");
    MATCH("^a{3}$", "aaa");
    NOMATCH("^a{3}$", "aa");
    NOMATCH("^a{3}$", "aaaa");
    MATCH("^a{2,3}$", "aa");
    MATCH("^a{2,3}$", "aaa");
    NOMATCH("^a{2,3}$", "aaaa");
    MATCH("^a{2,}$", "aaaaaa");
    NOMATCH("^a{2,}$", "a");
    MATCH("^a*ab$", "aaaab"); /* greedy star gives back */
    MATCH("^[^@\\s]+@[^@\\s]+$", "lin@uberpopug.inc");
    NOMATCH("^[^@\\s]+@[^@\\s]+$", "lin@@uberpopug.inc");
    NOMATCH("^[^@\\s]+@[^@\\s]+$", "lin uberpopug.inc");
}

static void test_pattern_budget(void)
{
    /* Polynomial blow-up: 12 stars over 40 a's never finding the 'c'. It
     * must end (by the step budget) and count as a failure. */
    char subject[64];
    memset(subject, 'a', 40);
    subject[40] = '\0';
    const char *evil = "a*a*a*a*a*a*a*a*a*a*a*a*c";
    cJSON *schema = cJSON_CreateObject(), *doc = cJSON_CreateString(subject);
    cJSON_AddStringToObject(schema, "pattern", evil);
    T_EQ_INT(schema_check(schema), 0);
    T_EQ_INT(schema_validate(schema, doc), -1);
    T_CHECK(strstr(diag_last()->message, "needs too many steps") != NULL);
    cJSON_Delete(schema);
    /* the same shape, anchored */
    schema = cJSON_CreateObject();
    cJSON_AddStringToObject(schema, "pattern", "^a*a*a*a*a*a*a*a*a*a*a*a*a*a*$");
    cJSON *doc2 = cJSON_CreateString("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    T_EQ_INT(schema_validate(schema, doc2), -1);
    cJSON_Delete(doc2);
    cJSON_Delete(schema);
    cJSON_Delete(doc);
    /* a long subject with a cheap pattern is fine */
    char *big = malloc(200001);
    memset(big, 'x', 200000);
    big[200000] = '\0';
    schema = cJSON_CreateObject();
    cJSON_AddStringToObject(schema, "pattern", "^[^\\[\\]]*$");
    doc = cJSON_CreateString(big);
    T_EQ_INT(schema_validate(schema, doc), 0);
    cJSON_Delete(schema);
    cJSON_Delete(doc);
    /* an unanchored search through it finds a match at the very end */
    big[199999] = '@';
    schema = cJSON_CreateObject();
    cJSON_AddStringToObject(schema, "pattern", "x@");
    doc = cJSON_CreateString(big);
    T_EQ_INT(schema_validate(schema, doc), 0);
    cJSON_Delete(schema);
    cJSON_Delete(doc);
    free(big);
}

static void test_check(void)
{
    CHECK_OK("{}");
    CHECK_OK("{\"$schema\":\"x\",\"$id\":\"y\",\"title\":\"t\",\"description\":\"d\","
             "\"examples\":[1],\"type\":[\"string\",\"null\"]}");
    CHECK_BAD("{\"typo\":1}", "#: unknown keyword 'typo'");
    CHECK_BAD("{\"type\":\"string\",\"type\":\"null\"}", "#: keyword 'type' given twice");
    CHECK_BAD("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"oneOf\":[]}}}}}",
              "#/properties/a/properties/b: unknown keyword 'oneOf'");
    CHECK_BAD("{\"items\":{\"minItems\":1}}", "#/items: unknown keyword 'minItems'");
    CHECK_BAD("{\"type\":\"text\"}", "#/type: unknown type 'text'");
    CHECK_BAD("{\"type\":[]}", "#/type: must be a type name or a non-empty array of them");
    CHECK_BAD("{\"type\":[\"string\",\"string\"]}", "#/type: names type 'string' twice");
    CHECK_BAD("{\"format\":\"email\"}", "#/format: unknown format (known: uuid, date-time, date)");
    CHECK_BAD("{\"minLength\":-1}", "#/minLength: must be a non-negative integer");
    CHECK_BAD("{\"maxLength\":1.5}", "#/maxLength: must be a non-negative integer");
    CHECK_BAD("{\"minimum\":\"0\"}", "#/minimum: must be a number");
    CHECK_BAD("{\"enum\":[]}", "#/enum: must be a non-empty array");
    CHECK_BAD("{\"required\":[1]}", "#/required: must be an array of names");
    CHECK_BAD("{\"additionalProperties\":{}}",
              "#/additionalProperties: must be a boolean (schemas are not supported)");
    CHECK_BAD("{\"properties\":{\"a\":true}}", "#/properties/a: a schema must be an object");
    CHECK_BAD("[]", "#: a schema must be an object");
    /* patterns outside the subset are refused, not half-checked */
    CHECK_BAD("{\"pattern\":\"(ab)+\"}",
              "#/pattern: unsupported pattern: groups and alternation are not supported at "
              "offset 0");
    CHECK_BAD("{\"pattern\":\"a|b\"}",
              "#/pattern: unsupported pattern: groups and alternation are not supported at "
              "offset 1");
    CHECK_BAD("{\"pattern\":\"*a\"}",
              "#/pattern: unsupported pattern: nothing to repeat at offset 0");
    CHECK_BAD("{\"pattern\":\"a**\"}",
              "#/pattern: unsupported pattern: nothing to repeat at offset 2");
    CHECK_BAD("{\"pattern\":\"a*?\"}",
              "#/pattern: unsupported pattern: lazy quantifiers are not supported at offset 2");
    CHECK_BAD("{\"pattern\":\"[abc\"}",
              "#/pattern: unsupported pattern: unterminated class at offset 4");
    CHECK_BAD("{\"pattern\":\"[]\"}", "#/pattern: unsupported pattern: empty class at offset 1");
    CHECK_BAD("{\"pattern\":\"[z-a]\"}",
              "#/pattern: unsupported pattern: range out of order at offset 4");
    CHECK_BAD("{\"pattern\":\"a{3,2}\"}",
              "#/pattern: unsupported pattern: {n,m} with m < n at offset 6");
    CHECK_BAD("{\"pattern\":\"a{x}\"}",
              "#/pattern: unsupported pattern: bad {n,m} quantifier at offset 2");
    CHECK_BAD("{\"pattern\":\"a{5000}\"}",
              "#/pattern: unsupported pattern: repeat count over 1000 at offset 6");
    CHECK_BAD("{\"pattern\":\"\\\\bword\"}",
              "#/pattern: unsupported pattern: unsupported escape at offset 1");
    CHECK_BAD("{\"pattern\":\"a\\\\\"}",
              "#/pattern: unsupported pattern: trailing backslash at offset 2");
    CHECK_BAD("{\"pattern\":\"^*\"}",
              "#/pattern: unsupported pattern: quantified anchor at offset 2");
    /* nesting is bounded */
    char deep[2048] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    cJSON *d = cJSON_Parse(deep);
    T_EQ_INT(schema_check(d), -1);
    T_CHECK(strstr(diag_last()->message, "nesting deeper than 32") != NULL);
    /* validate refuses too, without schema_check */
    cJSON *doc = cJSON_CreateNumber(1);
    for (int i = 0; i < 41; i++) {
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, doc);
        doc = arr;
    }
    T_EQ_INT(schema_validate(d, doc), -1);
    T_CHECK(strstr(diag_last()->message, "nesting deeper than 32") != NULL);
    cJSON_Delete(doc);
    cJSON_Delete(d);
    /* a malformed keyword in an unchecked schema fails rather than passes */
    cJSON *bad = cJSON_Parse("{\"minimum\":\"0\"}"), *num = cJSON_CreateNumber(-5);
    T_EQ_INT(schema_validate(bad, num), -1);
    cJSON_Delete(bad);
    cJSON_Delete(num);
}

/* ---------------------------------------------------------------- registry */

static char tmpdir[512];

static void write_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    T_CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
}

/* Load tmpdir; want NULL: must load, else the message must contain it. */
static void load_expect(int line, const char *want, size_t want_n)
{
    schema_registry_t *reg = (schema_registry_t *)1;
    int rc = schema_registry_load(&reg, tmpdir);
    bool ok = want ? rc == -1 && reg == NULL && strstr(diag_last()->message, want) != NULL
                   : rc == 0 && reg != NULL;
    if (!ok)
        fprintf(stderr, "line %d: load: want %s, got rc %d: %s\n", line, want ? want : "ok", rc,
                rc ? diag_last()->message : "");
    T_CHECK(ok);
    if (rc == 0 && want_n) T_CHECK(schema_latest(reg, "Ev") == (int)want_n);
    schema_registry_free(reg);
}

static void test_registry_errors(void)
{
    T_CHECK(t_tmpdir(tmpdir, sizeof(tmpdir), "schema") == 0);

    schema_registry_t *reg = NULL;
    T_EQ_INT(schema_registry_load(&reg, "/nonexistent/schemas"), -1);
    T_CHECK(strstr(diag_last()->message, "/nonexistent/schemas") != NULL);
    T_CHECK(reg == NULL);

    load_expect(__LINE__, NULL, 0); /* empty: loads, knows nothing */
    write_file("README.md", "not json, ignored");
    write_file("Ev.v1.json", "{\"type\":\"object\"}");
    write_file("Ev.v2.json", "{\"properties\":{\"event_name\":{\"const\":\"Ev\"},"
                             "\"event_version\":{\"const\":2}}}");
    load_expect(__LINE__, NULL, 2);

    write_file("Ev.v3.json", "{\"type\":\"object\", \"oneOf\":[]}");
    load_expect(__LINE__, "Ev.v3.json: #: unknown keyword 'oneOf'", 0);
    write_file("Ev.v3.json", "{\"type\":");
    load_expect(__LINE__, "Ev.v3.json: not valid JSON", 0);
    write_file("Ev.v3.json", "{\"properties\":{\"event_name\":{\"const\":\"Other\"}}}");
    load_expect(__LINE__, "Ev.v3.json: event_name const is not \"Ev\"", 0);
    write_file("Ev.v3.json", "{\"properties\":{\"event_version\":{\"const\":2}}}");
    load_expect(__LINE__, "Ev.v3.json: event_version const is not 3", 0);
    remove_file("Ev.v3.json");
    write_file("Ev.v1024.json", "{\"properties\":{\"event_version\":{\"const\":2}}}");
    load_expect(__LINE__, "Ev.v1024.json: event_version const is not 1024", 0);
    write_file("Ev.v1024.json", "{\"type\":\"object\"}");
    load_expect(__LINE__, NULL, 1024);
    remove_file("Ev.v1024.json");

    static const char *const bad_names[] = {"Ev.json",     "Ev.v0.json",      "Ev.v01.json",
                                            "Ev.vx.json",  "Ev.v1.JSON.json", ".v1.json",
                                            "1Ev.v1.json", "E-v.v1.json",     "Ev.v12345.json"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
        write_file(bad_names[i], "{}");
        char want[128];
        snprintf(want, sizeof(want), "%s: file name is not <EventName>.v<N>.json", bad_names[i]);
        load_expect(__LINE__, want, 0);
        remove_file(bad_names[i]);
    }
    load_expect(__LINE__, NULL, 2);
    remove_file("README.md");
    remove_file("Ev.v1.json");
    remove_file("Ev.v2.json");
    T_EQ_INT(rmdir(tmpdir), 0);
}

/* ------------------------------------------------------------ real schemas */

#define U1 "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\""
#define U2 "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7c\""
#define U3 "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7d\""
#define T1 "\"2026-11-24T10:00:00.123Z\""

static const struct example {
    const char *name;
    int version;
    const char *data;
} examples[] = {
    {"AccountCreated", 1,
     "{\"account_id\":" U1 ",\"email\":\"lin@uberpopug.inc\",\"name\":\"Lin\","
     "\"role\":\"popug\",\"active\":true}"},
    {"AccountUpdated", 1,
     "{\"account_id\":" U1 ",\"email\":\"lin@uberpopug.inc\",\"name\":\"Lin Q\","
     "\"role\":\"accountant\",\"active\":false}"},
    {"TaskCreated", 1,
     "{\"task_id\":" U1 ",\"title\":\"[UP-42] Feed the popug\",\"description\":null,"
     "\"assignee_id\":" U2 ",\"created_at\":" T1 "}"},
    {"TaskCreated", 2,
     "{\"task_id\":" U1 ",\"title\":\"Feed the popug\",\"jira_id\":\"UP-42\","
     "\"description\":\"twice a day\",\"assignee_id\":" U2 ",\"created_at\":" T1 "}"},
    {"TaskAssigned", 1,
     "{\"task_id\":" U1 ",\"assignee_id\":" U2 ",\"previous_assignee_id\":null,"
     "\"assigned_at\":" T1 "}"},
    {"TaskCompleted", 1, "{\"task_id\":" U1 ",\"assignee_id\":" U2 ",\"completed_at\":" T1 "}"},
    {"TaskPriced", 1,
     "{\"task_id\":" U1 ",\"assign_fee_cents\":1500,\"reward_cents\":3000,"
     "\"rules_version\":\"0123456789ab\"}"},
    {"TransactionApplied", 1,
     "{\"transaction_id\":" U3 ",\"account_id\":" U2 ",\"kind\":\"debit\","
     "\"amount_cents\":1500,\"task_id\":" U1 ",\"day\":\"2026-11-24\","
     "\"balance_cents\":-1500,\"created_at\":" T1 ",\"rules_version\":\"0123456789ab\"}"},
    {"DayClosed", 1,
     "{\"day\":\"2026-11-24\",\"management_earnings_cents\":-250,\"paid_cents\":4000,"
     "\"paid_accounts\":2,\"negative_accounts\":1}"},
    {"DeadLetter", 1,
     "{\"subject\":\"ates.tasks.created\",\"reason\":\"$.data: missing required property "
     "'title'\",\"body\":\"{\\\"event_id\\\":1}\"}"},
};

static cJSON *make_event(const char *name, int version, const char *data)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "event_id", "0190a5b2-0000-7000-8000-000000000001");
    cJSON_AddStringToObject(ev, "event_name", name);
    cJSON_AddNumberToObject(ev, "event_version", version);
    cJSON_AddStringToObject(ev, "event_time", "2026-11-24T10:00:00.500Z");
    cJSON_AddStringToObject(ev, "producer", "tracker");
    cJSON_AddStringToObject(ev, "trace_id", "req-1");
    cJSON_AddItemToObject(ev, "data", cJSON_Parse(data));
    return ev;
}

/* Validate `ev` against its registered schema. */
static int validate_event(const schema_registry_t *reg, const cJSON *ev)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "event_name");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(ev, "event_version");
    const cJSON *schema = schema_find(reg, name->valuestring, ver->valueint);
    if (!schema) return -2;
    return schema_validate(schema, ev);
}

/* The example `name` v`version` with data member `key` replaced by the JSON
 * `value`, validated: want NULL valid, else the exact message. */
static void variant_at(int line, const schema_registry_t *reg, const char *name, int version,
                       const char *key, const char *value, const char *want)
{
    const char *data = NULL;
    for (size_t i = 0; i < sizeof(examples) / sizeof(*examples); i++)
        if (strcmp(examples[i].name, name) == 0 && examples[i].version == version)
            data = examples[i].data;
    T_CHECK(data != NULL);
    if (!data) return;
    cJSON *ev = make_event(name, version, data);
    cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "data");
    cJSON_ReplaceItemInObjectCaseSensitive(d, key, cJSON_Parse(value));
    int rc = validate_event(reg, ev);
    const char *got = rc == -1 ? diag_last()->message : NULL;
    bool ok = want ? rc == -1 && strcmp(got, want) == 0 : rc == 0;
    if (!ok)
        fprintf(stderr, "line %d: %s v%d %s=%s: want %s, got %s (rc %d)\n", line, name, version,
                key, value, want ? want : "valid", got ? got : "valid", rc);
    T_CHECK(ok);
    cJSON_Delete(ev);
}
#define VARIANT(reg, n, v, k, val, want) variant_at(__LINE__, (reg), (n), (v), (k), (val), (want))

static void test_real_examples(const schema_registry_t *reg)
{
    for (size_t i = 0; i < sizeof(examples) / sizeof(*examples); i++) {
        const struct example *ex = &examples[i];
        cJSON *ev = make_event(ex->name, ex->version, ex->data);
        int rc = validate_event(reg, ev);
        if (rc != 0)
            fprintf(stderr, "%s v%d: %s\n", ex->name, ex->version,
                    rc == -2 ? "no schema" : diag_last()->message);
        T_EQ_INT(rc, 0);

        /* every data field is required */
        cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
        int fields = cJSON_GetArraySize(data);
        T_CHECK(fields > 0);
        for (int f = 0; f < fields; f++) {
            cJSON *copy = cJSON_Duplicate(ev, true);
            cJSON *cd = cJSON_GetObjectItemCaseSensitive(copy, "data");
            char key[64], want[128];
            snprintf(key, sizeof(key), "%s", cJSON_GetArrayItem(cd, f)->string);
            cJSON_DeleteItemFromObjectCaseSensitive(cd, key);
            snprintf(want, sizeof(want), "$.data: missing required property '%s'", key);
            T_EQ_INT(validate_event(reg, copy), -1);
            T_EQ_STR(diag_last()->message, want);
            cJSON_Delete(copy);
        }
        /* data may not leak fields; the envelope may not either */
        cJSON *copy = cJSON_Duplicate(ev, true);
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(copy, "data"), "secret", "x");
        T_EQ_INT(validate_event(reg, copy), -1);
        T_EQ_STR(diag_last()->message,
                 "$.data: unexpected property 'secret' (additionalProperties is false)");
        cJSON_Delete(copy);
        copy = cJSON_Duplicate(ev, true);
        cJSON_AddStringToObject(copy, "extra", "x");
        T_EQ_INT(validate_event(reg, copy), -1);
        cJSON_Delete(copy);
        /* envelope fields are required and checked */
        copy = cJSON_Duplicate(ev, true);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "trace_id");
        T_EQ_INT(validate_event(reg, copy), -1);
        T_EQ_STR(diag_last()->message, "$: missing required property 'trace_id'");
        cJSON_Delete(copy);
        copy = cJSON_Duplicate(ev, true);
        cJSON_ReplaceItemInObjectCaseSensitive(copy, "event_id", cJSON_CreateString("nope"));
        T_EQ_INT(validate_event(reg, copy), -1);
        T_EQ_STR(diag_last()->message, "$.event_id: does not match format uuid");
        cJSON_Delete(copy);
        /* the schema of another version or event does not take this body */
        const cJSON *other = schema_find(reg, ex->name, ex->version + 1);
        if (!other)
            other = schema_find(reg, strcmp(ex->name, "DayClosed") ? "DayClosed" : "DeadLetter", 1);
        T_EQ_INT(schema_validate(other, ev), -1);
        cJSON_Delete(ev);
    }
}

static void test_real_rules(const schema_registry_t *reg)
{
    T_CHECK(schema_find(reg, "Nope", 1) == NULL);
    T_CHECK(schema_find(reg, "TaskCreated", 3) == NULL);
    T_CHECK(schema_find(reg, "TaskCreated", 1) != NULL);
    T_EQ_INT(schema_latest(reg, "TaskCreated"), 2);
    T_EQ_INT(schema_latest(reg, "TransactionApplied"), 1);
    T_EQ_INT(schema_latest(reg, "Nope"), 0);

    const char *pat = "$.data.title: does not match pattern ^[^\\[\\]]*$";
    VARIANT(reg, "TaskCreated", 2, "title", "\"[UP-42] Feed\"", pat);
    VARIANT(reg, "TaskCreated", 2, "title", "\"Feed ]\"", pat);
    VARIANT(reg, "TaskCreated", 2, "title", "\"\"",
            "$.data.title: length 0 is less than minLength 1");
    VARIANT(reg, "TaskCreated", 1, "title", "\"[UP-42] Feed\"", NULL);
    VARIANT(reg, "TaskCreated", 2, "jira_id", "null", NULL);
    VARIANT(reg, "TaskCreated", 2, "jira_id", "42",
            "$.data.jira_id: expected type string or null, got integer");
    VARIANT(reg, "TaskCreated", 2, "description", "null", NULL);
    VARIANT(reg, "TaskCreated", 2, "assignee_id", "null",
            "$.data.assignee_id: expected type string, got null");
    VARIANT(reg, "TaskCreated", 2, "created_at", "\"yesterday\"",
            "$.data.created_at: does not match format date-time");
    VARIANT(reg, "TaskAssigned", 1, "previous_assignee_id", U3, NULL);
    VARIANT(reg, "TaskAssigned", 1, "previous_assignee_id", "\"nobody\"",
            "$.data.previous_assignee_id: does not match format uuid");
    VARIANT(reg, "TaskPriced", 1, "reward_cents", "2.5",
            "$.data.reward_cents: 2.5 is not an integer");
    VARIANT(reg, "TaskPriced", 1, "reward_cents", "2.0", NULL);
    VARIANT(reg, "TaskPriced", 1, "assign_fee_cents", "-1",
            "$.data.assign_fee_cents: -1 is less than minimum 0");
    VARIANT(reg, "TaskPriced", 1, "rules_version", "\"0123456789AB\"",
            "$.data.rules_version: does not match pattern ^[0-9a-f]{12}$");
    VARIANT(reg, "AccountCreated", 1, "role", "\"new_role\"", NULL); /* roles may grow */
    VARIANT(reg, "AccountCreated", 1, "role", "\"Popug\"",
            "$.data.role: does not match pattern ^[a-z_]+$");
    VARIANT(reg, "AccountCreated", 1, "email", "\"lin.uberpopug.inc\"",
            "$.data.email: does not match pattern ^[^@\\s]+@[^@\\s]+$");
    VARIANT(reg, "AccountUpdated", 1, "active", "1",
            "$.data.active: expected type boolean, got integer");
    VARIANT(reg, "TransactionApplied", 1, "kind", "\"refund\"",
            "$.data.kind: \"refund\" is not one of the enum values");
    VARIANT(reg, "TransactionApplied", 1, "task_id", "null", NULL);
    VARIANT(reg, "TransactionApplied", 1, "day", "\"2026-02-30\"",
            "$.data.day: does not match format date");
    VARIANT(reg, "DayClosed", 1, "management_earnings_cents", "-99999", NULL);
    VARIANT(reg, "DayClosed", 1, "paid_accounts", "-1",
            "$.data.paid_accounts: -1 is less than minimum 0");
    VARIANT(reg, "DeadLetter", 1, "body", "{}", "$.data.body: expected type string, got object");

    /* the envelope pins name and version */
    cJSON *ev = make_event("TaskCreated", 2, examples[3].data);
    cJSON_ReplaceItemInObjectCaseSensitive(ev, "event_version", cJSON_CreateNumber(1));
    T_EQ_INT(schema_validate(schema_find(reg, "TaskCreated", 2), ev), -1);
    T_EQ_STR(diag_last()->message, "$.event_version: does not equal const 2");
    cJSON_ReplaceItemInObjectCaseSensitive(ev, "event_version", cJSON_CreateNumber(2));
    cJSON_ReplaceItemInObjectCaseSensitive(ev, "producer", cJSON_CreateString(""));
    T_EQ_INT(schema_validate(schema_find(reg, "TaskCreated", 2), ev), -1);
    T_EQ_STR(diag_last()->message, "$.producer: length 0 is less than minLength 1");
    cJSON_Delete(ev);
}

static void test_real_registry(void)
{
    const char *src = getenv("ATES_SRC");
    T_CHECK(src != NULL);
    if (!src) return;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/config/schemas", src);
    schema_registry_t *reg = NULL;
    int rc = schema_registry_load(&reg, dir);
    if (rc != 0) fprintf(stderr, "load %s: %s\n", dir, diag_last()->message);
    T_EQ_INT(rc, 0);
    if (rc != 0) return;
    /* one schema per example, and an example per schema */
    size_t n = sizeof(examples) / sizeof(*examples);
    for (size_t i = 0; i < n; i++)
        T_CHECK(schema_find(reg, examples[i].name, examples[i].version) != NULL);
    size_t files = 0;
    DIR *d = opendir(dir);
    T_CHECK(d != NULL);
    for (const struct dirent *de; d && (de = readdir(d));)
        files +=
            strlen(de->d_name) > 5 && strcmp(de->d_name + strlen(de->d_name) - 5, ".json") == 0;
    if (d) closedir(d);
    T_EQ_INT(files, n);
    test_real_examples(reg);
    test_real_rules(reg);
    schema_registry_free(reg);
}

int main(void)
{
    test_type();
    test_scalars();
    test_objects();
    test_pattern();
    test_pattern_budget();
    test_check();
    test_registry_errors();
    test_real_registry();
    return t_done();
}
