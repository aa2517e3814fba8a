/*
 * json: checked access to cJSON values from hostile input, and exact
 * integers. cJSON keeps numbers as doubles and prints them with 15
 * significant digits (cJSON 1.7.15 prints 2^53-1 as 9.00719925474099e+15),
 * so an integer is accepted only when it is integral and has at most 15
 * digits (|v| <= JSON_INT_MAX): every such value is exact both in memory
 * and in print. Money in int64 cents stays exact or is refused, never
 * rounded.
 */
#ifndef ATES_JSON_H
#define ATES_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define JSON_INT_MAX 999999999999999LL /* 15 digits: exact as a double and in cJSON text */

/* Each getter: the member `key` of object `obj`. Missing: 0 and *out
 * untouched when !required, else -1. Present with the wrong type (or
 * non-integral / beyond JSON_INT_MAX): -1. Errors set a DIAG_VALIDATION
 * diag naming the field. */
int json_get_string(const cJSON *obj, const char *key, bool required, const char **out);
int json_get_int64(const cJSON *obj, const char *key, bool required, int64_t *out);
int json_get_bool(const cJSON *obj, const char *key, bool required, bool *out);
int json_get_object(const cJSON *obj, const char *key, bool required, const cJSON **out);

/* 0 when every member of object `obj` is named in `fields` (NULL-ended);
 * else -1 with a DIAG_VALIDATION diag naming the first other one and the
 * fields taken: a misspelt field is refused, not ignored. */
int json_only_fields(const cJSON *obj, const char *const fields[]);

/* true when `item` is a number holding an exact integer in range. */
bool json_is_int(const cJSON *item, int64_t *out);
/* Add an int64 member; -1 (diag) when beyond +-JSON_INT_MAX. */
int json_add_int64(cJSON *obj, const char *key, int64_t v);
/* Add a string member, or null when `s` is NULL. */
cJSON *json_add_string_or_null(cJSON *obj, const char *key, const char *s);

/* Parse exactly buf[0..len): one JSON value and nothing after it but white
 * space (cJSON alone accepts `{} trailing garbage`). NULL with a
 * DIAG_VALIDATION diag saying why when not so. */
cJSON *json_parse_strict(const char *buf, size_t len);
/* What cJSON lets through and a C string or a strict JSON reader
 * downstream would not: bytes that are not UTF-8 (RFC 3629: no overlong
 * forms, no surrogates), control characters inside a string, and the
 * escape \u0000, which would cut the C string short (a password
 * "secret\u0000anything" would be "secret"). Checked on what enters from
 * outside (HTTP bodies); events are not refused for it, so that one
 * written by an older version is still applied. 0, or -1 with a
 * DIAG_VALIDATION diag naming the byte. */
int json_text_sound(const char *buf, size_t len);

/* cJSON_PrintUnformatted into a malloc'd string (NULL on OOM). */
char *json_print(const cJSON *item);

#endif
