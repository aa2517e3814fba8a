/*
 * rules: the Lua 5.4 host of the rule files, rules/NAME.lua (CONTRACT section 4).
 *
 * Each rule file is compiled into its own sandboxed _ENV (an allow list of
 * base functions, string without dump, table, math, utf8, and os.time,
 * os.date, os.clock, os.difftime; no io, require, load, dofile, debug,
 * collectgarbage). Reading an unknown global is an error. Every call runs
 * under an instruction/time budget (a runaway rule returns an error once it
 * has used RULES_BUDGET_MS of CPU time, or RULES_WALL_FACTOR times that on
 * the wall clock) and a memory cap.
 *
 * Threads: every thread that calls rules gets its own lua_State, built from
 * the current generation of sources on its first call; a reload swaps in new
 * sources and bumps a generation counter; a thread rebuilds its state before
 * its next call. A file that fails to compile, to run its chunk, or to pass
 * its selftest() never replaces the version in force; its error is kept for
 * rules_status() and logged.
 *
 * A file's version is the first 12 hex digits of the SHA-256 of its bytes.
 * math.random in rules is seeded from the process seed (ATES_SEED) and the
 * thread, so a seeded run is repeatable.
 */
#ifndef ATES_RULES_H
#define ATES_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define RULES_VERSION_LEN 13 /* 12 hex + NUL */
#define RULES_BUDGET_MS 50   /* CPU-time budget of one call (see rules_sandbox.c) */

typedef struct rules rules_t;

/* Load every *.lua of `dir` (files that fail are recorded, not fatal).
 * `seed` seeds math.random. */
int rules_open(rules_t **out, const char *dir, uint64_t seed);
/* Keep each version that comes into force in `dir` (made 0700), and put the
 * kept one in force for every file that has none now: a rule broken or
 * missing on disk at start does not leave its services without one (its
 * error in rules_status says which version was kept). Call once, before
 * rules_watch_start. */
int rules_keep(rules_t *r, const char *dir);
void rules_close(rules_t *r);

/* Declare that `file` must define global function `fn`: a version without it
 * fails to load (checked for versions loaded after this call and for the
 * one in force now: returns -1 with a diag if that lacks it). */
int rules_require(rules_t *r, const char *file, const char *fn);

/* Start/stop the inotify watcher thread: changes are reloaded within 1 s
 * (debounced). */
int rules_watch_start(rules_t *r);
void rules_watch_stop(rules_t *r);
/* Re-read the directory now (what the watcher does); returns the number of
 * files whose version changed. */
int rules_reload(rules_t *r);
uint64_t rules_generation(const rules_t *r);
/* true when `file` has a version in force (for /ready). */
bool rules_in_force(rules_t *r, const char *file);

/*
 * Call global function `fn` of rule file `file` with the elements of `args`
 * (a JSON array; NULL for none) as arguments, converted to Lua values
 * (objects -> tables, arrays -> sequences, integral numbers -> integers).
 * The first result is converted back into *result (tables with keys 1..n ->
 * arrays, other tables -> objects; integers stay exact within +-JSON_INT_MAX (15 digits), else
 * an error). `version` (may be NULL) receives the version that ran.
 * -1 with a diag ("pricing.lua:12: attempt to ..." with traceback in the
 * log) on any error, budget exhaustion included.
 */
int rules_call(rules_t *r, const char *file, const char *fn, const cJSON *args, cJSON **result,
               char version[RULES_VERSION_LEN]);

/*
 * Bound arguments: many calls of one function where some arguments stay the
 * same (a shuffle calls pick(task, candidates) per task with the same
 * candidates). A handle holds n argument positions (n <= RULES_ARGS_MAX):
 * a position given with rules_args_set is converted at every call, like an
 * element of rules_call's `args`; one given with rules_args_bind is
 * converted into Lua once per thread state and reused by the next calls
 * (converted again after a reload rebuilt the state, or after a re-bind).
 * A NULL value (or a position never given) is nil.
 *
 * The cJSON values are borrowed: keep them alive, and a bound one
 * unchanged, while the handle is used (re-bind after a change). Budget,
 * sandbox, generation check, result, version and errors are those of
 * rules_call. A handle is used by one thread at a time; free it on the
 * thread that made the calls (else its converted copy stays in that
 * thread's state until the state is rebuilt), and before rules_close.
 *
 *   rules_args_t *a;
 *   rules_args_new(r, 2, &a);
 *   rules_args_bind(a, 1, candidates);           // converted once
 *   for each task:
 *       rules_args_set(a, 0, task);              // converted per call
 *       rules_call_args(a, "shuffle.lua", "pick", &result, version);
 *   rules_args_free(a);
 */
#define RULES_ARGS_MAX 8
typedef struct rules_args rules_args_t;
int rules_args_new(rules_t *r, int n, rules_args_t **out);
void rules_args_free(rules_args_t *a);
/* -1 (diag) when pos is outside 0..n-1. */
int rules_args_set(rules_args_t *a, int pos, const cJSON *value);
int rules_args_bind(rules_args_t *a, int pos, const cJSON *value);
int rules_call_args(rules_args_t *a, const char *file, const char *fn, cJSON **result,
                    char version[RULES_VERSION_LEN]);

/* {"items":[{"file","version","loaded_at","error"}]} for GET /api/rules. */
cJSON *rules_status(rules_t *r);

/* A function of a rule file that a service calls. */
typedef struct rules_need {
    const char *file, *fn;
} rules_need_t;

/* `ates rules check`: load every file of `dir` (or only the one named
 * `only`, when not NULL) as a reload would, with the functions `need` names
 * for it, run the selftests, print "file:line: message" lines to `err`, and
 * a line for each needed file that is not there; 0 when all pass. */
int rules_check_dir(const char *dir, const char *only, const rules_need_t *need, int nneed,
                    void *err_file);

#endif
