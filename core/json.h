/*
 * json: checked access to cJSON values from hostile input, and exact
 * integers. cJSON keeps numbers as doubles, so an integer is accepted only
 * when it is integral and within +-2^53 (every such value is exact); money
 * in int64 cents stays exact or is refused, never rounded.
 */
#ifndef ATES_JSON_H
#define ATES_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define JSON_INT_MAX 9007199254740992LL /* 2^53 */

/* Each getter: the member `key` of object `obj`. Missing: 0 and *out
 * untouched when !required, else -1. Present with the wrong type (or
 * non-integral / out of range for int64): -1. Errors set a DIAG_VALIDATION
 * diag naming the field. */
int json_get_string(const cJSON *obj, const char *key, bool required, const char **out);
int json_get_int64(const cJSON *obj, const char *key, bool required, int64_t *out);
int json_get_bool(const cJSON *obj, const char *key, bool required, bool *out);
int json_get_object(const cJSON *obj, const char *key, bool required, const cJSON **out);

/* true when `item` is a number holding an exact integer in range. */
bool json_is_int(const cJSON *item, int64_t *out);
/* Add an int64 member; -1 (diag) when outside +-2^53. */
int json_add_int64(cJSON *obj, const char *key, int64_t v);
/* Add a string member, or null when `s` is NULL. */
cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s);

/* cJSON_PrintUnformatted into a malloc'd string (NULL on OOM). */
char *json_print(const cJSON *item);

#endif
