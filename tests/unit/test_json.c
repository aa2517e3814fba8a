/*
 * json: strict parsing of whole bodies, checked getters, exact integers.
 */
#include "core/diag.h"
#include "core/json.h"
#include "t.h"

static bool parses(const char *text)
{
    cJSON *doc = json_parse_strict(text, strlen(text));
    cJSON_Delete(doc);
    return doc != NULL;
}

int main(void)
{
    T_CHECK(parses("{\"a\":1}"));
    T_CHECK(parses("  {\"a\":1} \r\n\t"));
    T_CHECK(parses("[1,2]"));
    T_CHECK(!parses("{\"a\":1} x"));
    T_CHECK(!parses("{\"a\":1}{}"));
    T_CHECK(!parses("{\"a\":"));
    T_CHECK(!parses(""));
    /* a NUL inside the length ends nothing: the rest must still be blank */
    T_CHECK(json_parse_strict("{}\0zz", 5) == NULL);

    cJSON *o = cJSON_Parse("{\"s\":\"x\",\"n\":42,\"f\":2.5,\"big\":1e15,\"b\":true,\"z\":null}");
    const char *s = NULL;
    int64_t n = 0;
    bool b = false;
    T_EQ_INT(json_get_string(o, "s", true, &s), 0);
    T_EQ_STR(s, "x");
    T_EQ_INT(json_get_string(o, "n", true, &s), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_INT(json_get_int64(o, "n", true, &n), 0);
    T_EQ_INT(n, 42);
    T_EQ_INT(json_get_int64(o, "f", true, &n), -1);   /* not integral */
    T_EQ_INT(json_get_int64(o, "big", true, &n), -1); /* 16 digits: not exact in print */
    T_EQ_INT(json_get_bool(o, "b", true, &b), 0);
    T_CHECK(b);
    s = "kept";
    T_EQ_INT(json_get_string(o, "z", false, &s), 0); /* null = absent */
    T_EQ_STR(s, "kept");
    T_EQ_INT(json_get_string(o, "missing", true, &s), -1);
    T_CHECK(strstr(diag_last()->message, "missing") != NULL);
    cJSON_Delete(o);

    o = cJSON_CreateObject();
    T_EQ_INT(json_add_int64(o, "max", JSON_INT_MAX), 0);
    T_EQ_INT(json_add_int64(o, "over", JSON_INT_MAX + 1), -1);
    char *text = json_print(o);
    T_EQ_STR(text, "{\"max\":999999999999999}");
    cJSON_free(text);
    cJSON_Delete(o);
    return t_done();
}
