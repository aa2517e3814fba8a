/*
 * rules_sandbox: one sandboxed lua_State (rules_vm_t) and everything that
 * runs Lua code in it.
 *
 * - Memory: a counting lua_Alloc refuses to grow past RULES_MEM_LIMIT, so a
 *   memory bomb ends in a Lua memory error, never in the OOM killer.
 * - Budget: a count hook checks the thread's CPU time against the budget
 *   (RULES_BUDGET_MS of CPU, so a call that was merely descheduled on a busy
 *   machine is not cut short), a wall-clock bound of RULES_WALL_FACTOR
 *   budgets, and an instruction ceiling, every RULES_HOOK_EVERY instructions. Once exceeded it re-arms
 *   itself to fire on every instruction and raises each time, so a rule's own
 *   pcall cannot swallow it (Redis' luaMaskCountHook). __gc metamethods are
 *   refused by setmetatable because Lua runs finalizers with hooks off.
 * - Sandbox: only base, string, table, math, utf8 and os are opened; each
 *   rule file gets a fresh _ENV holding copies of the allowed functions and
 *   library tables (string without dump, math without randomseed, os with
 *   time/date/clock/difftime), print routed to the log, and `null` (the
 *   light userdata NULL, JSON null inside arrays). Reading an unknown global
 *   raises "unknown global 'x'"; new globals can only be created while the
 *   file's chunk runs (its top level), not later by calls.
 * - Every C->Lua call goes through vm_pcall: a C message handler that puts
 *   "file:line:" in front and appends a traceback; the first line becomes the
 *   diag, the whole text goes to log_warn. Everything that may allocate Lua
 *   memory runs inside it (a memory error outside protected mode would
 *   panic), so callers only push light values before calling.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "clock.h"
#include "diag.h"
#include "log.h"
#include "rules_internal.h"

#define RULES_ENVS "ates.rules.envs"   /* registry: file name -> _ENV */
#define RULES_PROTO "ates.rules.proto" /* registry: the allowed globals */

_Atomic int rules__budget_ms = RULES_BUDGET_MS;

static const char *const base_allow[] = {
    "assert", "error",    "ipairs",   "next",   "pairs",  "pcall",        "select",
    "tonumber", "tostring", "type",   "xpcall", "rawequal", "rawget",     "rawlen",
    "rawset", "getmetatable", "_VERSION", NULL,
};
static const char *const libs_copied[] = {"string", "table", "math", "utf8", NULL};
static const char *const os_allow[] = {"time", "date", "clock", "difftime", NULL};

/* --- allocator, panic, hook ---------------------------------------------- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rules_vm_t *vm = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->mem_used - old + nsize > vm->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_error("rules: Lua panic: %s", msg ? msg : "?");
    abort();
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    rules_vm_t *vm = ud;
    if (!vm->tripped) {
        vm->instr += RULES_HOOK_EVERY;
        int64_t cpu = clock_thread_cpu_us(); /* a syscall: read here, never per call */
        if (vm->cpu_deadline_us == 0)
            vm->cpu_deadline_us = cpu + (int64_t)atomic_load(&rules__budget_ms) * 1000;
        if (vm->instr < RULES_MAX_INSTR && cpu < vm->cpu_deadline_us &&
            clock_monotonic_ms() < vm->deadline_ms)
            return;
        vm->tripped = true;
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1); /* from now on: every instruction */
    }
    lua_pushfstring(L, "budget exceeded (%d ms)", atomic_load(&rules__budget_ms));
    lua_error(L);
}

/* --- the one pcall ---------------------------------------------------------- */

/* Message handler: [err] -> ["file:line: msg\nstack traceback:..."] */
static int vm_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline <= 0) continue;
        size_t n = strlen(ar.short_src);
        if (strncmp(msg, ar.short_src, n) != 0 || msg[n] != ':')
            msg = lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
        break;
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* [.. f args(nargs)] -> [.. results(nres)] and 0, or [..] and -1 with the
 * diag "file:line: message" (traceback in the log). */
static int vm_pcall(rules_vm_t *vm, int nargs, int nres, const char *file)
{
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs - 1;
    assert(base >= 0 && nres >= 0);
    lua_pushcfunction(L, vm_msgh); /* [.. f args h] */
    lua_insert(L, base + 1);       /* [.. h f args] */
    vm->cpu_deadline_us = 0; /* set by the first hook: the CPU budget starts there */
    vm->deadline_ms =
        clock_monotonic_ms() + (int64_t)atomic_load(&rules__budget_ms) * RULES_WALL_FACTOR;
    vm->instr = 0;
    vm->tripped = false;
    lua_sethook(L, vm_hook, LUA_MASKCOUNT, RULES_HOOK_EVERY);
    int status = lua_pcall(L, nargs, nres, base + 1); /* [.. h results] | [.. h err] */
    lua_remove(L, base + 1);                          /* [.. results] | [.. err] */
    if (status == LUA_OK) {
        assert(lua_gettop(L) == base + nres);
        return 0;
    }
    const char *msg = lua_tostring(L, -1);
    if (status == LUA_ERRMEM) {
        diag_set(DIAG_INTERNAL, "%s: not enough memory (limit %u MiB)", file,
                 (unsigned)(RULES_MEM_LIMIT >> 20));
    } else if (status == LUA_ERRERR || !msg) {
        diag_set(DIAG_INTERNAL, "%s: error in error handling", file);
    } else {
        const char *nl = strchr(msg, '\n');
        int first = nl ? (int)(nl - msg) : (int)strlen(msg);
        size_t n = strlen(file);
        bool named = strncmp(msg, file, n) == 0 && msg[n] == ':';
        diag_set(DIAG_INTERNAL, "%s%s%.*s", named ? "" : file, named ? "" : ": ", first, msg);
    }
    const char *trace = msg && status != LUA_ERRMEM ? strchr(msg, '\n') : NULL;
    /* the caller says what failed (an answer, a parked event, the mail job
     * once a minute); the traceback is for whoever looks closer */
    log_debug("rules: %s%s", diag_last()->message, trace ? trace : "");
    lua_settop(L, base); /* [..] */
    assert(lua_gettop(L) == base);
    return -1;
}

/* --- sandbox functions ------------------------------------------------------ */

/* print(...) -> log_info, tagged with the file (upvalue 1). */
static int vm_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_info("rules: %s: %s", lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, -1));
    return 0;
}

/* setmetatable without __gc (finalizers run with hooks off: no budget). */
static int vm_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed");
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static const char *key_text(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : luaL_typename(L, idx);
}

/* _ENV.__index: [env key] -> error */
static int vm_unknown_global(lua_State *L)
{
    return luaL_error(L, "unknown global '%s'", key_text(L, 2));
}

/* _ENV.__newindex once the chunk has run: [env key value] -> error */
static int vm_frozen_global(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s' (define globals at the top level)",
                      key_text(L, 2));
}

/* [t] -> [t copy] (shallow) */
static void copy_table(lua_State *L)
{
    lua_newtable(L); /* [t c] */
    lua_pushnil(L);  /* [t c nil] */
    while (lua_next(L, -3)) { /* [t c k v] */
        lua_pushvalue(L, -2); /* [t c k v k] */
        lua_insert(L, -2);    /* [t c k k v] */
        lua_rawset(L, -4);    /* [t c k] */
    }
    lua_remove(L, -2); /* [c] */
}

/* [] -> [] ; protected. Args: seed, stream (integers). */
static int vm_init_k(lua_State *L)
{
    lua_Integer seed = lua_tointeger(L, 1), stream = lua_tointeger(L, 2);
    lua_settop(L, 0);
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},     {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    /* string.dump goes from the real table (also reached as ("").dump), and
     * the string metatable is hidden from getmetatable(""). */
    lua_getglobal(L, "string"); /* [string] */
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pushliteral(L, "");     /* [string ""] */
    lua_getmetatable(L, -1);    /* [string "" mt] */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 3); /* [] */
    lua_getglobal(L, "math");   /* [math] */
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, seed);
    lua_pushinteger(L, stream);
    lua_call(L, 2, 0);
    lua_pop(L, 1); /* [] */

    lua_newtable(L); /* [proto] */
    for (int i = 0; base_allow[i]; i++) {
        lua_getglobal(L, base_allow[i]);
        lua_setfield(L, -2, base_allow[i]);
    }
    lua_pushcfunction(L, vm_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    for (int i = 0; libs_copied[i]; i++) {
        lua_getglobal(L, libs_copied[i]);
        lua_setfield(L, -2, libs_copied[i]);
    }
    lua_newtable(L);          /* [proto os] */
    lua_getglobal(L, "os");   /* [proto os realos] */
    for (int i = 0; os_allow[i]; i++) {
        lua_getfield(L, -1, os_allow[i]);
        lua_setfield(L, -3, os_allow[i]);
    }
    lua_pop(L, 1);                                 /* [proto os] */
    lua_setfield(L, -2, "os");                     /* [proto] */
    lua_setfield(L, LUA_REGISTRYINDEX, RULES_PROTO); /* [] */
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, RULES_ENVS);
    assert(lua_gettop(L) == 0);
    return 0;
}

/* [] -> [env] : a fresh _ENV for file `name` (protected context). */
static void new_env(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RULES_PROTO); /* [proto] */
    copy_table(L);                                   /* [env] */
    for (int i = 0; libs_copied[i]; i++) {
        lua_getfield(L, -1, libs_copied[i]); /* [env lib] */
        copy_table(L);                       /* [env copy] */
        lua_setfield(L, -2, libs_copied[i]); /* [env] */
    }
    lua_getfield(L, -1, "math"); /* [env math] */
    lua_pushnil(L);
    lua_setfield(L, -2, "randomseed");
    lua_pop(L, 1);
    lua_getfield(L, -1, "os"); /* [env os] */
    copy_table(L);
    lua_setfield(L, -2, "os"); /* [env] */
    lua_pushstring(L, name);
    lua_pushcclosure(L, vm_print, 1);
    lua_setfield(L, -2, "print");
    lua_createtable(L, 0, 2); /* [env mt] */
    lua_pushcfunction(L, vm_unknown_global);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2); /* [env] */
}

/* [name src len] -> [] ; protected: compile, set _ENV, run the chunk. */
static int vm_load_k(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);
    const char *src = lua_touserdata(L, 2);
    size_t len = (size_t)lua_tointeger(L, 3);
    lua_settop(L, 0);
    /* a byte order mark, as some editors save UTF-8 (lua(1) skips it too) */
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0) {
        src += 3;
        len -= 3;
    }
    lua_pushfstring(L, "@%s", name); /* [chunkname] */
    if (luaL_loadbufferx(L, src, len, lua_tostring(L, 1), "t") != LUA_OK) return lua_error(L);
    /* [chunkname chunk] */
    new_env(L, name);        /* [chunkname chunk env] */
    lua_pushvalue(L, -1);    /* [chunkname chunk env env] */
    lua_insert(L, 2);        /* [chunkname env chunk env] */
    if (!lua_setupvalue(L, -2, 1)) return luaL_error(L, "%s: chunk without _ENV", name);
    lua_call(L, 0, 0);       /* [chunkname env] */
    lua_getmetatable(L, 2);  /* [chunkname env mt] */
    lua_pushcfunction(L, vm_frozen_global);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);                                 /* [chunkname env] */
    lua_getfield(L, LUA_REGISTRYINDEX, RULES_ENVS); /* [chunkname env envs] */
    lua_insert(L, 2);                              /* [chunkname envs env] */
    lua_setfield(L, 2, name);                      /* [chunkname envs] */
    return 0;
}

/* [.. f] -> [.. f args...]: the arguments of a handle; bound ones from its
 * table (pushed below f by the caller, at index `tbl`). Returns n. */
static int push_handle_args(lua_State *L, const rules_args_t *a, int tbl)
{
    luaL_checkstack(L, a->n + LUA_MINSTACK, "too many arguments");
    for (int pos = 0; pos < a->n; pos++) {
        if (a->bound[pos])
            lua_rawgeti(L, tbl, pos + 1);
        else if (a->val[pos])
            rules__json_push(L, a->val[pos], 0);
        else
            lua_pushnil(L);
    }
    return a->n;
}

/* [name fn args mode] -> [found r1 r2] ; protected. mode 0 only looks fn
 * up; mode 1 calls it with the JSON array `args` spread as arguments; mode
 * 2 with the arguments of the handle `args`. */
static int vm_call_k(lua_State *L)
{
    const char *name = lua_touserdata(L, 1), *fn = lua_touserdata(L, 2);
    const void *args = lua_touserdata(L, 3);
    int mode = (int)lua_tointeger(L, 4);
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, RULES_ENVS); /* [envs] */
    if (lua_getfield(L, 1, name) != LUA_TTABLE) return 0; /* [envs env|nil] */
    lua_pushstring(L, fn);                                /* [envs env fn] */
    if (lua_rawget(L, 2) != LUA_TFUNCTION) return 0;      /* [envs env f] */
    if (mode == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int n = 0;
    if (mode == 2) {
        const rules_args_t *a = args;
        if (a->any_bound)
            lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref); /* [envs env f tbl] */
        else
            lua_pushnil(L);
        lua_insert(L, 3);                              /* [envs env tbl f] */
        n = push_handle_args(L, a, 3);                 /* [envs env tbl f args...] */
    } else {
        const cJSON *arr = args;
        n = arr ? cJSON_GetArraySize(arr) : 0;
        luaL_checkstack(L, n + LUA_MINSTACK, "too many arguments");
        for (const cJSON *el = arr ? arr->child : NULL; el; el = el->next)
            rules__json_push(L, el, 0); /* [envs env f args...] */
    }
    lua_call(L, n, 2);     /* [envs env (tbl) r1 r2] */
    lua_pushboolean(L, 1); /* [.. r1 r2 true] */
    lua_insert(L, -3);     /* [.. true r1 r2] */
    return 3;
}

/* [a] -> [ref] ; protected: the bound values of handle `a` into a table
 * kept in the registry. */
static int vm_bind_k(lua_State *L)
{
    const rules_args_t *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_createtable(L, a->n, 0); /* [tbl] */
    for (int pos = 0; pos < a->n; pos++) {
        if (!a->bound[pos] || !a->val[pos]) continue;
        rules__json_push(L, a->val[pos], 0); /* [tbl v] */
        lua_rawseti(L, 1, pos + 1);         /* [tbl] */
    }
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX)); /* [ref] */
    return 1;
}

/* --- the internal API ------------------------------------------------------- */

static _Atomic uint64_t g_serial;

int rules__vm_open(rules_vm_t *vm, uint64_t seed, uint64_t stream)
{
    memset(vm, 0, sizeof *vm);
    vm->serial = atomic_fetch_add(&g_serial, 1) + 1;
    vm->mem_limit = RULES_MEM_LIMIT;
    vm->L = lua_newstate(vm_alloc, vm);
    if (!vm->L) return diag_set(DIAG_INTERNAL, "rules: cannot create a Lua state");
    lua_atpanic(vm->L, vm_panic);
    lua_pushcfunction(vm->L, vm_init_k);           /* [init] */
    lua_pushinteger(vm->L, (lua_Integer)seed);     /* [init seed] */
    lua_pushinteger(vm->L, (lua_Integer)stream);   /* [init seed stream] */
    if (vm_pcall(vm, 2, 0, "rules") != 0) {
        rules__vm_close(vm);
        return -1;
    }
    assert(lua_gettop(vm->L) == 0);
    return 0;
}

void rules__vm_close(rules_vm_t *vm)
{
    if (vm->L) lua_close(vm->L);
    vm->L = NULL;
}

int rules__vm_load(rules_vm_t *vm, const char *name, const char *src, size_t len)
{
    lua_State *L = vm->L;
    assert(lua_gettop(L) == 0);
    lua_pushcfunction(L, vm_load_k);           /* [load] */
    lua_pushlightuserdata(L, (void *)name);    /* [load name] */
    lua_pushlightuserdata(L, (void *)src);     /* [load name src] */
    lua_pushinteger(L, (lua_Integer)len);      /* [load name src len] */
    int rc = vm_pcall(vm, 3, 0, name);         /* [] */
    assert(lua_gettop(L) == 0);
    return rc;
}

/* [] -> [found r1 r2] and 0, or [] and -1 (diag). */
static int vm_invoke(rules_vm_t *vm, const char *name, const char *fn, const cJSON *args, int mode)
{
    lua_State *L = vm->L;
    assert(lua_gettop(L) == 0);
    lua_pushcfunction(L, vm_call_k);         /* [k] */
    lua_pushlightuserdata(L, (void *)name);  /* [k name] */
    lua_pushlightuserdata(L, (void *)fn);    /* [k name fn] */
    lua_pushlightuserdata(L, (void *)args);  /* [k name fn args] */
    lua_pushinteger(L, mode);                /* [k name fn args mode] */
    return vm_pcall(vm, 4, 3, name);
}

bool rules__vm_has_fn(rules_vm_t *vm, const char *name, const char *fn)
{
    if (vm_invoke(vm, name, fn, NULL, 0) != 0) return false; /* [] */
    bool found = lua_toboolean(vm->L, 1);                     /* [found nil nil] */
    lua_settop(vm->L, 0);
    return found;
}

/* [found r1 r2] -> []: the first result of a call into *result. */
static int call_result(rules_vm_t *vm, const char *name, const char *fn, cJSON **result)
{
    lua_State *L = vm->L;
    int rc;
    if (!lua_toboolean(L, 1)) {
        rc = diag_set(DIAG_UNAVAILABLE, "%s: no function '%s'", name, fn);
    } else {
        char in[2 * RULES_NAME_MAX + 16];
        snprintf(in, sizeof in, "%s: %s()", name, fn);
        rc = rules__json_from_lua(L, 2, in, result);
    }
    lua_settop(L, 0); /* [] */
    return rc;
}

int rules__vm_call(rules_vm_t *vm, const char *name, const char *fn, const cJSON *args,
                   cJSON **result)
{
    *result = NULL;
    if (vm_invoke(vm, name, fn, args, 1) != 0) return -1; /* [found r1 r2] */
    return call_result(vm, name, fn, result);
}

int rules__vm_call_args(rules_vm_t *vm, const char *name, const char *fn, const rules_args_t *a,
                        cJSON **result)
{
    *result = NULL;
    assert(!a->any_bound || a->vm_serial == vm->serial);
    lua_State *L = vm->L;
    assert(lua_gettop(L) == 0);
    lua_pushcfunction(L, vm_call_k);        /* [k] */
    lua_pushlightuserdata(L, (void *)name); /* [k name] */
    lua_pushlightuserdata(L, (void *)fn);   /* [k name fn] */
    lua_pushlightuserdata(L, (void *)a);    /* [k name fn a] */
    lua_pushinteger(L, 2);                  /* [k name fn a 2] */
    if (vm_pcall(vm, 4, 3, name) != 0) return -1; /* [found r1 r2] */
    return call_result(vm, name, fn, result);
}

int rules__vm_bind(rules_vm_t *vm, rules_args_t *a)
{
    lua_State *L = vm->L;
    assert(lua_gettop(L) == 0);
    lua_pushcfunction(L, vm_bind_k);     /* [k] */
    lua_pushlightuserdata(L, (void *)a); /* [k a] */
    if (vm_pcall(vm, 1, 1, "rules") != 0) return -1; /* [ref] */
    a->ref = (int)lua_tointeger(L, 1);
    a->vm_serial = vm->serial;
    lua_settop(L, 0);
    return 0;
}

void rules__vm_unbind(rules_vm_t *vm, rules_args_t *a)
{
    if (vm->L && a->vm_serial == vm->serial) /* reuses a slot: no allocation */
        luaL_unref(vm->L, LUA_REGISTRYINDEX, a->ref);
    a->vm_serial = 0;
}

int rules__vm_selftest(rules_vm_t *vm, const char *name)
{
    lua_State *L = vm->L;
    if (vm_invoke(vm, name, "selftest", NULL, 1) != 0) return -1; /* [found r1 r2] */
    int rc = 0;
    if (lua_toboolean(L, 1) && lua_type(L, 2) == LUA_TBOOLEAN && !lua_toboolean(L, 2)) {
        const char *why = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "returned false";
        rc = diag_set(DIAG_INTERNAL, "%s: selftest failed: %s", name, why);
        log_warn("rules: %s", diag_last()->message);
    }
    lua_settop(L, 0); /* [] */
    return rc;
}

int rules__verify(const char *name, const char *src, size_t len, const char *const *fns, int nfns,
                  bool *transient)
{
    rules_vm_t vm;
    if (transient) *transient = true;
    if (rules__vm_open(&vm, 0, 0) != 0) return -1;
    int rc = rules__vm_load(&vm, name, src, len);
    for (int i = 0; rc == 0 && i < nfns; i++)
        if (!rules__vm_has_fn(&vm, name, fns[i]))
            rc = diag_set(DIAG_VALIDATION, "%s: missing required function '%s'", name, fns[i]);
    if (rc == 0) rc = rules__vm_selftest(&vm, name);
    if (transient) *transient = rc != 0 && vm.tripped;
    rules__vm_close(&vm);
    return rc;
}
