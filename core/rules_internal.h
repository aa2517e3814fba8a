/*
 * rules_internal: what rules.c (the library, reload, per-thread states),
 * rules_sandbox.c (one sandboxed lua_State: allocator, budget hook, pcall
 * wrapper, loading and calling rule files), rules_json.c (cJSON <-> Lua) and
 * rules_watch.c (the inotify watcher) share. Not for use outside core/rules*.
 */
#ifndef ATES_RULES_INTERNAL_H
#define ATES_RULES_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <lua.h>
#include <cjson/cJSON.h>

#include "rules.h"

#define RULES_MAX_FILES 64
#define RULES_NAME_MAX 64              /* "name.lua" + NUL */
#define RULES_MAX_BYTES (256 * 1024)   /* cap of one rule file */
#define RULES_MAX_REQ 64               /* rules_require entries */
#define RULES_MEM_LIMIT (32u << 20)    /* bytes per lua_State */
#define RULES_HOOK_EVERY 10000         /* instructions between budget checks */
#define RULES_MAX_INSTR 50000000ULL    /* instruction ceiling of one call */
#define RULES_WALL_FACTOR 20           /* wall-clock bound: this many budgets */
#define RULES_JSON_DEPTH 32            /* nesting limit both ways */

/* One sandboxed lua_State and its accounting; the struct is the allocator's
 * ud, so the hook finds it with lua_getallocf. Single-threaded. */
typedef struct rules_vm {
    lua_State *L;
    size_t mem_used;     /* bytes allocated by Lua now */
    size_t mem_limit;    /* allocation beyond this fails (memory error) */
    int64_t cpu_deadline_us; /* thread CPU time at which the call's budget ends (0: not read yet) */
    int64_t deadline_ms; /* monotonic; a call descheduled this long ends too */
    uint64_t instr;      /* instructions counted (in hook steps) this call */
    bool tripped;        /* budget exceeded: the hook now fires every instruction */
    uint64_t serial;     /* unique per state ever opened in the process (never 0) */
} rules_vm_t;

/* A bound-argument handle (rules.h). The converted bound values live in one
 * state's registry as a table (positions 1..n), under `ref`. */
struct rules_args {
    rules_t *r;
    int n;
    const cJSON *val[RULES_ARGS_MAX];
    bool bound[RULES_ARGS_MAX];
    bool any_bound;
    bool dirty;         /* a bound value changed since the conversion */
    uint64_t vm_serial; /* the state holding the conversion; 0: none */
    int ref;
};

/* --- rules_sandbox.c ------------------------------------------------------ */

/* A fresh state with the sandbox prototype; math.random seeded from
 * (seed, stream). -1 (diag) on failure. */
int rules__vm_open(rules_vm_t *vm, uint64_t seed, uint64_t stream);
void rules__vm_close(rules_vm_t *vm);
/* Compile `src` as text chunk "@name", give it a fresh _ENV and run it under
 * the budget; on success the env is kept under `name`. -1 with the diag
 * message "name:line: message" on failure. */
int rules__vm_load(rules_vm_t *vm, const char *name, const char *src, size_t len);
/* true when the loaded file `name` defines global function `fn`. */
bool rules__vm_has_fn(rules_vm_t *vm, const char *name, const char *fn);
/* Run selftest() of `name` if it defines one: fails if it raises or
 * returns false. */
int rules__vm_selftest(rules_vm_t *vm, const char *name);
/* Call fn of loaded file `name` with the elements of `args` (array or
 * NULL); the first result converted into *result. */
int rules__vm_call(rules_vm_t *vm, const char *name, const char *fn, const cJSON *args,
                   cJSON **result);
/* The same with the arguments of a handle (per-call values converted now,
 * bound ones taken from the handle's table, which must be in this vm). */
int rules__vm_call_args(rules_vm_t *vm, const char *name, const char *fn, const rules_args_t *a,
                        cJSON **result);
/* Convert the bound values of `a` into this vm (a->ref, a->vm_serial). */
int rules__vm_bind(rules_vm_t *vm, rules_args_t *a);
/* Drop the conversion of `a` if it lives in this vm. */
void rules__vm_unbind(rules_vm_t *vm, rules_args_t *a);
/* What a reload does to a candidate: scratch state, load, check that each of
 * fns[0..nfns) is defined, selftest. -1 with the diag on failure; then
 * *transient (if not NULL) says whether the same bytes may pass later: the
 * budget ran out (a busy machine stretches the wall-clock bound) or no
 * state could be made. */
int rules__verify(const char *name, const char *src, size_t len, const char *const *fns,
                  int nfns, bool *transient);
/* The CPU budget of one call in ms: RULES_BUDGET_MS (a unit test lowers it). */
extern _Atomic int rules__budget_ms;

/* --- rules_json.c --------------------------------------------------------- */

/* Push `item` as a Lua value (may raise: call in protected mode only).
 * JSON null inside an array becomes the light userdata `null` (NULL). */
void rules__json_push(lua_State *L, const cJSON *item, int depth);
/* Convert the value at `idx` into a new cJSON; -1 (diag, "in" names the
 * file and function) on what JSON cannot hold. Raises no Lua error. */
int rules__json_from_lua(lua_State *L, int idx, const char *in, cJSON **out);

/* --- rules.c for rules_watch.c -------------------------------------------- */

/* The directory of a rules_t, and the watcher's slot in it. */
typedef struct rules_watch rules_watch_t;
const char *rules__dir(const rules_t *r);
rules_watch_t **rules__watch_slot(rules_t *r);

#endif
