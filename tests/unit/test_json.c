/*
 * json: strict parsing of whole bodies, checked getters, exact integers.
 */
#include "core/diag.h"
#include "core/json.h"
#include "t.h"

/* as an HTTP body is taken */
static bool parses(const char *text)
{
    if (json_text_sound(text, strlen(text)) < 0) return false;
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
    /* UTF-8 only: what is not would go out as it came, in answers and events */
    T_CHECK(parses("{\"t\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x9c\"}"));
    T_CHECK(!parses("{\"t\":\"bad \xff\xfe utf8\"}"));
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_CHECK(strstr(diag_last()->message, "UTF-8 at byte 10") != NULL);
    T_CHECK(!parses("{\"t\":\"\xc0\xaf\"}"));         /* overlong '/' */
    T_CHECK(!parses("{\"t\":\"\xed\xa0\x80\"}"));     /* a surrogate, U+D800 */
    T_CHECK(!parses("{\"t\":\"\xf4\x90\x80\x80\"}")); /* past U+10FFFF */
    T_CHECK(!parses("{\"t\":\"\xe2\x82\"}"));         /* cut short */
    T_CHECK(!parses("{\"t\":\"\xe2\x82"));             /* cut short at the end */
    T_CHECK(!parses("{\"\xa9\":1}"));                    /* a lone continuation byte */
    /* U+0000 would end the C string early: "secret\u0000x" must not be "secret" */
    T_CHECK(!parses("{\"password\":\"secret\\u0000anything\"}"));
    T_CHECK(strstr(diag_last()->message, "\\u0000") != NULL);
    T_CHECK(parses("{\"t\":\"a \\u0041 \\u00e9 \\\\u0000 is text\"}")); /* an escaped backslash, then text */
    T_CHECK(parses("{\"t\":\"\\\"\\u0000\"}") == false); /* after an escaped quote, still inside */
    T_CHECK(!parses("{\"t\":\"tab\there\"}"));        /* a raw control character in a string */
    T_CHECK(parses("{\"t\":\"tab\\there\"}"));        /* escaped, fine */
    T_CHECK(parses("{\n\t\"t\": 1\r\n}"));             /* white space outside strings */
    T_CHECK(!parses("{\"a\":1} x"));
    T_CHECK(strstr(diag_last()->message, "more after") != NULL);

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
