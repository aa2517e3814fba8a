/*
 * json: checked getters over cJSON and exact integers (see json.h).
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* Missing or null counts as absent. */
static int absent(const cJSON *item, const char *key, bool required)
{
    if (required) return diag_set(DIAG_VALIDATION, "field '%s' is required", key);
    (void)item;
    return 0;
}

int json_get_string(const cJSON *obj, const char *key, bool required, const char **out)
{
    const cJSON *it = member(obj, key);
    if (!it || cJSON_IsNull(it)) return absent(it, key, required);
    if (!cJSON_IsString(it) || !it->valuestring)
        return diag_set(DIAG_VALIDATION, "field '%s' must be a string", key);
    *out = it->valuestring;
    return 0;
}

bool json_is_int(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    if (!isfinite(d) || d != floor(d) || d > (double)JSON_INT_MAX || d < -(double)JSON_INT_MAX)
        return false;
    if (out) *out = (int64_t)d;
    return true;
}

int json_get_int64(const cJSON *obj, const char *key, bool required, int64_t *out)
{
    const cJSON *it = member(obj, key);
    if (!it || cJSON_IsNull(it)) return absent(it, key, required);
    if (!json_is_int(it, out))
        return diag_set(DIAG_VALIDATION, "field '%s' must be a whole number of at most 15 digits", key);
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, bool required, bool *out)
{
    const cJSON *it = member(obj, key);
    if (!it || cJSON_IsNull(it)) return absent(it, key, required);
    if (!cJSON_IsBool(it)) return diag_set(DIAG_VALIDATION, "field '%s' must be a boolean", key);
    *out = cJSON_IsTrue(it);
    return 0;
}

int json_get_object(const cJSON *obj, const char *key, bool required, const cJSON **out)
{
    const cJSON *it = member(obj, key);
    if (!it || cJSON_IsNull(it)) return absent(it, key, required);
    if (!cJSON_IsObject(it)) return diag_set(DIAG_VALIDATION, "field '%s' must be an object", key);
    *out = it;
    return 0;
}

int json_add_int64(cJSON *obj, const char *key, int64_t v)
{
    if (v > JSON_INT_MAX || v < -JSON_INT_MAX)
        return diag_set(DIAG_INTERNAL, "integer %lld of '%s' has more than 15 digits", (long long)v, key);
    if (!cJSON_AddNumberToObject(obj, key, (double)v))
        return diag_set(DIAG_INTERNAL, "out of memory");
    return 0;
}

int json_only_fields(const cJSON *obj, const char *const fields[])
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool known = false;
        for (int i = 0; fields[i] && !known; i++) known = strcmp(it->string, fields[i]) == 0;
        if (known) continue;
        char taken[256] = "";
        size_t used = 0;
        for (int i = 0; fields[i] && used < sizeof(taken); i++) {
            int n = snprintf(taken + used, sizeof(taken) - used, "%s%s", i ? ", " : "", fields[i]);
            if (n < 0) break;
            used += (size_t)n;
        }
        return diag_set(DIAG_VALIDATION, "unknown field '%s' (%s)", it->string,
                        fields[0] ? taken : "this request takes none");
    }
    return 0;
}

cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(obj, key, s) : cJSON_AddNullToObject(obj, key);
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 when it is not
 * one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* the bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* U+D800..DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

int json_text_sound(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    bool in_string = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) return diag_set(DIAG_VALIDATION, "not UTF-8 at byte %zu", i);
            i += n;
            continue;
        }
        if (in_string && c < 0x20)
            return diag_set(DIAG_VALIDATION, "a control character inside a string at byte %zu", i);
        if (c == '"') {
            in_string = !in_string;
        } else if (in_string && c == '\\' && i + 1 < len) {
            if (p[i + 1] == 'u' && i + 5 < len && memcmp(p + i + 2, "0000", 4) == 0)
                return diag_set(DIAG_VALIDATION, "\\u0000 inside a string at byte %zu", i);
            i += 2; /* the escaped character is not a quote that ends the string */
            continue;
        }
        i++;
    }
    return 0;
}

cJSON *json_parse_strict(const char *buf, size_t len)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!doc) {
        diag_set(DIAG_VALIDATION, "not JSON");
        return NULL;
    }
    for (const char *p = end; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(doc);
            diag_set(DIAG_VALIDATION, "more after the JSON value at byte %zu", (size_t)(p - buf));
            return NULL;
        }
    }
    return doc;
}

char *json_print(const cJSON *item) { return cJSON_PrintUnformatted(item); }
