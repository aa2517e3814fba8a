/*
 * rules_json: cJSON <-> Lua values for rule calls.
 *
 * JSON -> Lua (arguments): objects -> tables, arrays -> sequences, numbers
 * integral within +-JSON_INT_MAX (15 digits) -> integers (else floats), strings, booleans. null
 * -> nil, except inside an array, where it becomes the light userdata
 * `null` (NULL) so positions keep; a null object member is simply absent.
 *
 * Lua -> JSON (the first result): nil and `null` -> null; integers -> numbers
 * (an error beyond +-JSON_INT_MAX (15 digits)); floats -> numbers (an error on nan/inf);
 * strings as they are (an error on an embedded NUL, which cJSON cannot
 * hold); booleans; a table whose keys are exactly 1..n (n > 0) -> array; an
 * empty table -> {} (an empty object: Lua cannot tell [] from {}); a table
 * with only string keys -> object; anything else (mixed or sparse keys,
 * functions, userdata, threads) -> an error. Nesting is limited to
 * RULES_JSON_DEPTH both ways. Conversion uses raw access only: no
 * metamethod runs.
 */
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "diag.h"
#include "json.h"
#include "rules_internal.h"

void rules__json_push(lua_State *L, const cJSON *item, int depth)
{
    if (depth > RULES_JSON_DEPTH) luaL_error(L, "arguments nested deeper than %d", RULES_JSON_DEPTH);
    luaL_checkstack(L, 4, "arguments nested too deep");
    int64_t i;
    const cJSON *c;
    if (cJSON_IsNull(item)) {
        lua_pushnil(L);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else if (cJSON_IsNumber(item)) {
        if (json_is_int(item, &i))
            lua_pushinteger(L, (lua_Integer)i);
        else
            lua_pushnumber(L, item->valuedouble);
    } else if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsArray(item)) {
        lua_createtable(L, cJSON_GetArraySize(item), 0); /* [t] */
        lua_Integer n = 0;
        cJSON_ArrayForEach(c, item)
        {
            if (cJSON_IsNull(c))
                lua_pushlightuserdata(L, NULL); /* [t null] */
            else
                rules__json_push(L, c, depth + 1); /* [t v] */
            lua_rawseti(L, -2, ++n);               /* [t] */
        }
    } else if (cJSON_IsObject(item)) {
        lua_createtable(L, 0, cJSON_GetArraySize(item)); /* [t] */
        cJSON_ArrayForEach(c, item)
        {
            if (cJSON_IsNull(c) || !c->string) continue;
            lua_pushstring(L, c->string);      /* [t k] */
            rules__json_push(L, c, depth + 1); /* [t k v] */
            lua_rawset(L, -3);                 /* [t] */
        }
    } else {
        luaL_error(L, "argument of an unsupported JSON type");
    }
}

static int from_lua(lua_State *L, int idx, const char *in, int depth, cJSON **out);

/* An object from the table at `idx` whose keys are all strings. */
static int object_from_lua(lua_State *L, int idx, const char *in, int depth, cJSON *obj)
{
    lua_pushnil(L); /* [.. nil] */
    while (lua_next(L, idx)) { /* [.. k v] */
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen); /* a string key: no conversion */
        cJSON *v = NULL;
        if (strlen(k) != klen) {
            lua_pop(L, 2);
            return diag_set(DIAG_INTERNAL, "%s: table key with a NUL byte", in);
        }
        if (from_lua(L, lua_gettop(L), in, depth + 1, &v) != 0) {
            cJSON_Delete(v);
            lua_pop(L, 2);
            return -1;
        }
        cJSON_AddItemToObject(obj, k, v);
        lua_pop(L, 1); /* [.. k] */
    }
    return 0;
}

static int table_from_lua(lua_State *L, int idx, const char *in, int depth, cJSON **out)
{
    if (depth > RULES_JSON_DEPTH)
        return diag_set(DIAG_INTERNAL, "%s: result nested deeper than %d", in, RULES_JSON_DEPTH);
    if (!lua_checkstack(L, 4)) return diag_set(DIAG_INTERNAL, "%s: Lua stack exhausted", in);
    lua_Integer count = 0, nint = 0, nstr = 0, max = 0;
    lua_pushnil(L); /* [.. nil] */
    while (lua_next(L, idx)) { /* [.. k v] */
        count++;
        if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k >= 1) nint++;
            if (k > max) max = k;
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            nstr++;
        }
        lua_pop(L, 1); /* [.. k] */
    }
    if (count == 0) {
        *out = cJSON_CreateObject();
        return *out ? 0 : diag_set(DIAG_INTERNAL, "%s: out of memory", in);
    }
    if (nint == count && max == count) {
        cJSON *arr = *out = cJSON_CreateArray();
        if (!arr) return diag_set(DIAG_INTERNAL, "%s: out of memory", in);
        for (lua_Integer i = 1; i <= max; i++) {
            cJSON *v = NULL;
            lua_rawgeti(L, idx, i); /* [.. v] */
            int rc = from_lua(L, lua_gettop(L), in, depth + 1, &v);
            lua_pop(L, 1); /* [..] */
            if (rc != 0) {
                cJSON_Delete(v);
                return -1;
            }
            cJSON_AddItemToArray(arr, v);
        }
        return 0;
    }
    if (nstr != count)
        return diag_set(DIAG_INTERNAL,
                        "%s: a table with keys other than 1..n or strings cannot become JSON", in);
    *out = cJSON_CreateObject();
    if (!*out) return diag_set(DIAG_INTERNAL, "%s: out of memory", in);
    return object_from_lua(L, idx, in, depth, *out);
}

/* The value at absolute `idx` -> *out (freed by the top caller on error). */
static int from_lua(lua_State *L, int idx, const char *in, int depth, cJSON **out)
{
    size_t len;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        *out = cJSON_CreateNull();
        break;
    case LUA_TBOOLEAN:
        *out = cJSON_CreateBool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            if (i > JSON_INT_MAX || i < -JSON_INT_MAX)
                return diag_set(DIAG_INTERNAL, "%s: integer %lld has more than 15 digits (not exact in JSON)", in, (long long)i);
            *out = cJSON_CreateNumber((double)i);
        } else {
            lua_Number d = lua_tonumber(L, idx);
            if (!isfinite(d)) return diag_set(DIAG_INTERNAL, "%s: number is nan or inf", in);
            *out = cJSON_CreateNumber(d);
        }
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) return diag_set(DIAG_INTERNAL, "%s: string with a NUL byte", in);
        *out = cJSON_CreateString(s);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL)
            return diag_set(DIAG_INTERNAL, "%s: cannot convert a userdata to JSON", in);
        *out = cJSON_CreateNull();
        break;
    case LUA_TTABLE:
        return table_from_lua(L, idx, in, depth, out);
    default:
        return diag_set(DIAG_INTERNAL, "%s: cannot convert a %s to JSON", in, luaL_typename(L, idx));
    }
    return *out ? 0 : diag_set(DIAG_INTERNAL, "%s: out of memory", in);
}

int rules__json_from_lua(lua_State *L, int idx, const char *in, cJSON **out)
{
    int top = lua_gettop(L);
    *out = NULL;
    int rc = from_lua(L, lua_absindex(L, idx), in, 0, out);
    if (rc != 0) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    lua_settop(L, top);
    return rc;
}
