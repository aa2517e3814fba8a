/*
 * json: checked getters over cJSON and exact integers (see json.h).
 */
#include "json.h"

#include <math.h>

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

cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(obj, key, s) : cJSON_AddNullToObject(obj, key);
}

cJSON *json_parse_strict(const char *buf, size_t len)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!doc) return NULL;
    for (const char *p = end; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(doc);
            return NULL;
        }
    }
    return doc;
}

char *json_print(const cJSON *item) { return cJSON_PrintUnformatted(item); }
