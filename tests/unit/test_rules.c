/*
 * test_rules: the Lua rules host (core/rules.h) against rule files written
 * into a fresh temporary directory: values both ways, the sandbox, the
 * budget and memory cap, reload as a transaction, threads during reloads,
 * the watcher, and `rules check`.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/rules.h"
#include "core/rules_internal.h"
#include "t.h"

/* --- helpers --------------------------------------------------------------- */

static void make_dir(char *out, size_t cap)
{
    if (t_tmpdir(out, cap, "rules") < 0) exit(2);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void version_of(const char *text, char out[RULES_VERSION_LEN])
{
    unsigned char md[32];
    unsigned int n = sizeof md;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Call and print the result (malloc'd), NULL on error (diag set). */
static char *call(rules_t *r, const char *file, const char *fn, const char *args,
                  char version[RULES_VERSION_LEN])
{
    cJSON *a = args ? cJSON_Parse(args) : NULL, *res = NULL;
    char *out = NULL;
    if (rules_call(r, file, fn, a, &res, version) == 0) {
        out = cJSON_PrintUnformatted(res);
        cJSON_Delete(res);
    }
    cJSON_Delete(a);
    return out;
}

/* Expect a result printed as `want`. */
#define T_CALL(r, file, fn, args, want)                                                            \
    do {                                                                                           \
        char *got_ = call((r), (file), (fn), (args), NULL);                                        \
        if (!got_) fprintf(stderr, "  %s(): %s\n", (fn), diag_last()->message);                    \
        T_EQ_STR(got_, (want));                                                                    \
        free(got_);                                                                                \
    } while (0)

/* Expect an error of `kind` whose message contains `part`. */
#define T_CALL_FAILS(r, file, fn, args, want_kind, part)                                                \
    do {                                                                                           \
        diag_clear();                                                                              \
        char *got_ = call((r), (file), (fn), (args), NULL);                                        \
        T_CHECK(got_ == NULL);                                                                     \
        free(got_);                                                                                \
        T_EQ_INT(diag_last()->kind, (want_kind));                                                       \
        if (!strstr(diag_last()->message, (part)))                                                 \
            fprintf(stderr, "  %s(): \"%s\" lacks \"%s\"\n", (fn), diag_last()->message, (part));  \
        T_CHECK(strstr(diag_last()->message, (part)) != NULL);                                     \
    } while (0)

/* The status item of `file` (NULL when absent). */
static const cJSON *status_item(const cJSON *status, const char *file)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(status, "items"))
    {
        const cJSON *f = cJSON_GetObjectItem(it, "file");
        if (cJSON_IsString(f) && strcmp(f->valuestring, file) == 0) return it;
    }
    return NULL;
}

static const char *status_str(const cJSON *status, const char *file, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(status_item(status, file), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --- values ------------------------------------------------------------------ */

static const char calc_lua[] =
    "local function helper(x) return x * 2 end\n"
    "function big() return 999999999999999 end\n"
    "function neg() return -999999999999999 end\n"
    "function double(x) return helper(x) end\n"
    "function echo(...) return {...} end\n"
    "function nested() return {a = {1, 2, {b = 'x'}}, s = 'h\\195\\169', t = true, f = 1.5, e = {}} end\n"
    "function argtypes(o) return {type(o.n), math.type(o.n), math.type(o.f), o.arr[2] == null,\n"
    "  #o.arr, o.gone == nil} end\n"
    "function toobig() return 1000000000000000 end\n"
    "function nan() return 0/0 end\n"
    "function func() return print end\n"
    "function sparse() return {[1] = 1, [3] = 3} end\n"
    "function mixed() return {1, x = 2} end\n"
    "function nothing() end\n"
    "function nul() return 'a\\0b' end\n"
    "function boom() error('boom') end\n"
    "function boom_table() error({}) end\n"
    "function deep() local t = {} local c = t for i = 1, 40 do c.x = {} c = c.x end return t end\n"
    "function rnd() return math.random(1, 1000000000) end\n"
    "function say() print('hello', 1, nil) return 'said' end\n";

static void test_values(void)
{
    char dir[256], v[RULES_VERSION_LEN], want[RULES_VERSION_LEN];
    make_dir(dir, sizeof dir);
    write_file(dir, "calc.lua", calc_lua);
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 42), 0);
    if (!r) return;

    /* the largest exact integers (15 digits) come back exact */
    cJSON *res = NULL;
    int64_t i64 = 0;
    T_EQ_INT(rules_call(r, "calc.lua", "big", NULL, &res, v), 0);
    T_CHECK(json_is_int(res, &i64) && i64 == 999999999999999LL);
    cJSON_Delete(res);
    version_of(calc_lua, want);
    T_EQ_STR(v, want);
    T_EQ_INT(rules_call(r, "calc.lua", "neg", NULL, &res, NULL), 0);
    T_CHECK(json_is_int(res, &i64) && i64 == -999999999999999LL);
    cJSON_Delete(res);
    cJSON *big = cJSON_CreateArray();
    cJSON_AddItemToArray(big, cJSON_CreateNumber(499999999999999.0));
    T_EQ_INT(rules_call(r, "calc.lua", "double", big, &res, NULL), 0);
    T_CHECK(json_is_int(res, &i64) && i64 == 999999999999998LL);
    cJSON_Delete(res);
    cJSON_Delete(big);
    T_CALL(r, "calc.lua", "double", "[21]", "42");
    T_CALL(r, "calc.lua", "echo", "[1,\"two\",{\"k\":[true,null,3]},2.5,-7]",
           "[1,\"two\",{\"k\":[true,null,3]},2.5,-7]");
    T_CALL(r, "calc.lua", "argtypes", "[{\"n\":5,\"f\":0.5,\"arr\":[1,null,3],\"gone\":null}]",
           "[\"number\",\"integer\",\"float\",true,3,true]");
    T_CALL(r, "calc.lua", "nothing", NULL, "null");
    T_CALL(r, "calc.lua", "say", "[]", "\"said\"");

    res = NULL;
    T_EQ_INT(rules_call(r, "calc.lua", "nested", NULL, &res, NULL), 0);
    const cJSON *a = cJSON_GetObjectItem(res, "a");
    T_CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3);
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 2), "b")), "x");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(res, "s")), "h\xc3\xa9");
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(res, "t")));
    T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(res, "f")) == 1.5);
    const cJSON *e = cJSON_GetObjectItem(res, "e");
    T_CHECK(cJSON_IsObject(e) && cJSON_GetArraySize(e) == 0);
    cJSON_Delete(res);

    T_CALL_FAILS(r, "calc.lua", "toobig", NULL, DIAG_UNAVAILABLE, "15 digits");
    T_CALL_FAILS(r, "calc.lua", "nan", NULL, DIAG_UNAVAILABLE, "nan");
    T_CALL_FAILS(r, "calc.lua", "func", NULL, DIAG_UNAVAILABLE, "function");
    T_CALL_FAILS(r, "calc.lua", "sparse", NULL, DIAG_UNAVAILABLE, "cannot become JSON");
    T_CALL_FAILS(r, "calc.lua", "mixed", NULL, DIAG_UNAVAILABLE, "cannot become JSON");
    T_CALL_FAILS(r, "calc.lua", "nul", NULL, DIAG_UNAVAILABLE, "NUL");
    T_CALL_FAILS(r, "calc.lua", "deep", NULL, DIAG_UNAVAILABLE, "deeper");
    T_CALL_FAILS(r, "calc.lua", "boom", NULL, DIAG_UNAVAILABLE, "calc.lua:16: boom");
    T_CALL_FAILS(r, "calc.lua", "boom_table", NULL, DIAG_UNAVAILABLE, "calc.lua:17: (error object");
    T_CALL_FAILS(r, "calc.lua", "nope", NULL, DIAG_UNAVAILABLE, "nope");
    T_CALL_FAILS(r, "other.lua", "big", NULL, DIAG_UNAVAILABLE, "other.lua");
    T_CALL_FAILS(r, "calc.lua", "double", "{\"x\":1}", DIAG_INTERNAL, "array");
    char deep[128] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    strcat(deep, "1");
    for (int i = 0; i < 40; i++) strcat(deep, "]");
    T_CALL_FAILS(r, "calc.lua", "double", deep, DIAG_UNAVAILABLE, "nested deeper");

    /* The same seed gives the same random numbers on the first thread. */
    rules_t *r2 = NULL, *r3 = NULL;
    T_EQ_INT(rules_open(&r2, dir, 42), 0);
    T_EQ_INT(rules_open(&r3, dir, 43), 0);
    char *x1 = call(r, "calc.lua", "rnd", NULL, NULL), *x2 = call(r2, "calc.lua", "rnd", NULL, NULL);
    char *x3 = call(r3, "calc.lua", "rnd", NULL, NULL);
    T_CHECK(x1 && x2 && x3);
    T_EQ_STR(x1, x2);
    T_CHECK(x1 && x3 && strcmp(x1, x3) != 0);
    free(x1);
    free(x2);
    free(x3);
    rules_close(r3);
    rules_close(r2);
    rules_close(r);
    remove_dir(dir);
}

/* --- sandbox ----------------------------------------------------------------- */

static const char sandbox_lua[] =
    "function g_io() return io end\n"
    "function g_require() return require end\n"
    "function g_load() return load end\n"
    "function g_loadstring() return loadstring end\n"
    "function g_dofile() return dofile end\n"
    "function g_debug() return debug end\n"
    "function g_collectgarbage() return collectgarbage end\n"
    "function g_package() return package end\n"
    "function g__G() return _G end\n"
    "function g_x() return undefined_thing end\n"
    "function os_execute() return type(os.execute) end\n"
    "function os_getenv() return type(os.getenv) end\n"
    "function os_exit() return type(os.exit) end\n"
    "function os_time() return math.type(os.time()) end\n"
    "function string_dump() return type(string.dump) end\n"
    "function str_dump() return type(('').dump) end\n"
    "function str_meta() return getmetatable('') end\n"
    "function randomseed() return type(math.randomseed) end\n"
    "function gc() setmetatable({}, {__gc = function() while true do end end}) end\n"
    "function newglobal() fresh = 1 return fresh end\n"
    "function clobber() table.insert = nil string.upper = nil return 1 end\n"
    "counter = 0\n"
    "function bump() counter = counter + 1 return counter end\n"
    "function version() return _VERSION end\n";

static const char other_lua[] = "function upper(s) table.insert({}, 1) return string.upper(s) end\n";

static void test_sandbox(void)
{
    char dir[256];
    make_dir(dir, sizeof dir);
    write_file(dir, "sb.lua", sandbox_lua);
    write_file(dir, "other.lua", other_lua);
    write_file(dir, "binary.lua", "\x1bLua\x54");
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    if (!r) return;
    static const char *const hidden[] = {"io",    "require", "load",  "loadstring", "dofile",
                                         "debug", "collectgarbage", "package", "_G", "x"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        char fn[64], part[64];
        snprintf(fn, sizeof fn, "g_%s", hidden[i]);
        snprintf(part, sizeof part, "unknown global '%s", strcmp(hidden[i], "x") ? hidden[i] : "undefined_thing");
        T_CALL_FAILS(r, "sb.lua", fn, NULL, DIAG_UNAVAILABLE, part);
        T_CALL_FAILS(r, "sb.lua", fn, NULL, DIAG_UNAVAILABLE, "sb.lua:");
    }
    T_CALL(r, "sb.lua", "os_execute", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "os_getenv", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "os_exit", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "os_time", NULL, "\"integer\"");
    T_CALL(r, "sb.lua", "string_dump", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "str_dump", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "str_meta", NULL, "false");
    T_CALL(r, "sb.lua", "randomseed", NULL, "\"nil\"");
    T_CALL(r, "sb.lua", "version", NULL, "\"Lua 5.4\"");
    T_CALL_FAILS(r, "sb.lua", "gc", NULL, DIAG_UNAVAILABLE, "__gc");
    T_CALL_FAILS(r, "sb.lua", "newglobal", NULL, DIAG_UNAVAILABLE, "sb.lua:20: assignment to undeclared global 'fresh'");
    T_CALL(r, "sb.lua", "bump", NULL, "1");
    T_CALL(r, "sb.lua", "bump", NULL, "2");
    /* One file's changes to its library copies do not reach another file. */
    T_CALL(r, "sb.lua", "clobber", NULL, "1");
    T_CALL(r, "other.lua", "upper", "[\"abc\"]", "\"ABC\"");
    /* Binary chunks are refused. */
    cJSON *st = rules_status(r);
    const char *err = status_str(st, "binary.lua", "error");
    T_CHECK(err && strstr(err, "binary"));
    T_CHECK(err && strncmp(err, "binary.lua: ", 12) == 0);
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "binary.lua"), "version")));
    cJSON_Delete(st);
    T_CALL_FAILS(r, "binary.lua", "f", NULL, DIAG_UNAVAILABLE, "binary.lua");
    rules_close(r);
    remove_dir(dir);
}

/* --- budget and memory -------------------------------------------------------- */

static const char budget_lua[] =
    "function spin() while true do end end\n"
    "function spin_pcall() pcall(function() while true do end end) return 'swallowed' end\n"
    "function spin_pcall_loop() while true do pcall(function() while true do end end) end end\n"
    "function bomb() local t = {} while true do t[#t + 1] = string.rep('x', 1 << 20) .. #t end end\n"
    "function bigrep() return #string.rep('x', 1 << 30) end\n"
    "function ok() return 'fine' end\n";

static void test_budget(void)
{
    char dir[256];
    make_dir(dir, sizeof dir);
    write_file(dir, "b.lua", budget_lua);
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    if (!r) return;
    T_CALL_FAILS(r, "b.lua", "spin", NULL, DIAG_UNAVAILABLE, "budget exceeded");
    T_CALL_FAILS(r, "b.lua", "spin", NULL, DIAG_UNAVAILABLE, "b.lua:1:");
    T_CALL(r, "b.lua", "ok", NULL, "\"fine\"");
    T_CALL_FAILS(r, "b.lua", "spin_pcall", NULL, DIAG_UNAVAILABLE, "budget exceeded");
    T_CALL(r, "b.lua", "ok", NULL, "\"fine\"");
    T_CALL_FAILS(r, "b.lua", "spin_pcall_loop", NULL, DIAG_UNAVAILABLE, "budget exceeded");
    T_CALL(r, "b.lua", "ok", NULL, "\"fine\"");
    diag_clear();
    char *out = call(r, "b.lua", "bomb", NULL, NULL);
    T_CHECK(out == NULL);
    T_CHECK(strstr(diag_last()->message, "memory") || strstr(diag_last()->message, "budget"));
    free(out);
    T_CALL(r, "b.lua", "ok", NULL, "\"fine\"");
    T_CALL_FAILS(r, "b.lua", "bigrep", NULL, DIAG_UNAVAILABLE, "not enough memory");
    T_CALL(r, "b.lua", "ok", NULL, "\"fine\"");
    rules_close(r);
    remove_dir(dir);
}

/* --- reload ------------------------------------------------------------------ */

/* Write `text` as p.lua, reload, and expect `swapped` and p.lua's error. */
static void reload_with(rules_t *r, const char *dir, const char *text, int swapped, const char *error)
{
    write_file(dir, "p.lua", text);
    T_EQ_INT(rules_reload(r), swapped);
    cJSON *st = rules_status(r);
    const char *err = status_str(st, "p.lua", "error");
    if (error) {
        if (!err || !strstr(err, error)) fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err ? err : "(null)", error);
        T_CHECK(err && strstr(err, error));
    } else {
        T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "p.lua"), "error")));
    }
    cJSON_Delete(st);
}

static void test_reload(void)
{
    char dir[256], v[RULES_VERSION_LEN], want[RULES_VERSION_LEN];
    static const char v1[] = "function price() return 1 end\n";
    static const char v2[] = "function price() return 2 end\n";
    static const char v6[] = "function price() return 6 end\nfunction selftest() assert(price() == 6) end\n";
    make_dir(dir, sizeof dir);
    write_file(dir, "p.lua", v1);
    write_file(dir, "broken.lua", "x = = 1\n");
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    if (!r) return;
    T_EQ_INT(rules_require(r, "p.lua", "price"), 0);
    T_EQ_INT(rules_require(r, "absent.lua", "f"), -1);
    char *out = call(r, "p.lua", "price", NULL, v);
    T_EQ_STR(out, "1");
    free(out);
    version_of(v1, want);
    T_EQ_STR(v, want);
    uint64_t g = rules_generation(r);
    T_EQ_INT(rules_reload(r), 0); /* nothing changed */
    T_EQ_INT(rules_generation(r), g);

    cJSON *st = rules_status(r);
    const cJSON *items = cJSON_GetObjectItem(st, "items");
    T_EQ_INT(cJSON_GetArraySize(items), 2);
    T_EQ_STR(status_str(st, "broken.lua", "error"), "broken.lua:1: unexpected symbol near '='");
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "broken.lua"), "version")));
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "broken.lua"), "loaded_at")));
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "file")), "broken.lua");
    T_EQ_STR(status_str(st, "p.lua", "version"), want);
    int64_t at = 0;
    T_CHECK(status_str(st, "p.lua", "loaded_at") &&
            clock_parse_rfc3339(status_str(st, "p.lua", "loaded_at"), &at) == 0 && at > 0);
    cJSON_Delete(st);

    reload_with(r, dir, v2, 1, NULL);
    T_CHECK(rules_generation(r) > g);
    out = call(r, "p.lua", "price", NULL, v);
    T_EQ_STR(out, "2");
    free(out);
    version_of(v2, want);
    T_EQ_STR(v, want);
    g = rules_generation(r);

    /* Every failure keeps version 2 in force and shows the error. */
    reload_with(r, dir, "function price()\n  return 3 +\nend\n", 0, "p.lua:3:");
    reload_with(r, dir, "function price() return 4 end\nerror('at load')\n", 0, "p.lua:2: at load");
    reload_with(r, dir, "while true do end\n", 0, "budget exceeded");
    reload_with(r, dir,
                "function price() return 4 end\n"
                "function selftest() assert(price() == 5, 'price must be 5') end\n",
                0, "p.lua:2: price must be 5");
    reload_with(r, dir,
                "function price() return 4 end\nfunction selftest() return false, 'no good' end\n",
                0, "selftest failed: no good");
    reload_with(r, dir, "function cost() return 4 end\n", 0, "p.lua: missing required function 'price'");
    T_EQ_INT(rules_generation(r), g);
    out = call(r, "p.lua", "price", NULL, v);
    T_EQ_STR(out, "2");
    free(out);
    T_EQ_STR(v, want);
    st = rules_status(r);
    T_EQ_STR(status_str(st, "p.lua", "version"), want);
    cJSON_Delete(st);

    reload_with(r, dir, v6, 1, NULL);
    T_CALL(r, "p.lua", "price", NULL, "6");

    /* A requirement the version in force lacks: -1, and it is recorded. */
    T_EQ_INT(rules_require(r, "p.lua", "cost"), -1);
    T_CHECK(strstr(diag_last()->message, "missing required function 'cost'") != NULL);
    reload_with(r, dir, "function price() return 7 end\n", 0, "missing required function 'cost'");
    reload_with(r, dir, "function price() return 7 end\nfunction cost() return 1 end\n", 1, NULL);
    T_CALL(r, "p.lua", "price", NULL, "7");

    /* Saved with a byte order mark (as some editors write UTF-8): loads. */
    reload_with(r, dir, "\xEF\xBB\xBF-- with a BOM\nfunction price() return 8 end\nfunction cost() return 1 end\n",
                1, NULL);
    T_CALL(r, "p.lua", "price", NULL, "8");
    reload_with(r, dir, "function price() return 7 end\nfunction cost() return 1 end\n", 1, NULL);

    /* A deleted file keeps its version in force, and says so; the same
     * bytes back are taken again; a file that never loaded is dropped. */
    free(call(r, "p.lua", "price", NULL, v));
    remove_file(dir, "p.lua");
    remove_file(dir, "broken.lua");
    g = rules_generation(r);
    T_EQ_INT(rules_reload(r), 0);
    T_EQ_INT((long long)rules_generation(r), (long long)g);
    T_CALL(r, "p.lua", "price", NULL, "7");
    st = rules_status(r);
    T_EQ_STR(status_str(st, "p.lua", "version"), v);
    const char *gone = status_str(st, "p.lua", "error");
    T_CHECK(gone && strstr(gone, "the file is gone") != NULL);
    T_CHECK(status_item(st, "broken.lua") == NULL);
    cJSON_Delete(st);
    reload_with(r, dir, "function price() return 7 end\nfunction cost() return 1 end\n", 0, NULL);
    st = rules_status(r);
    T_CHECK(status_item(st, "p.lua") != NULL && status_str(st, "p.lua", "error") == NULL);
    cJSON_Delete(st);
    rules_close(r);
    remove_dir(dir);
}

/* --- threads ----------------------------------------------------------------- */

#define N_VERSIONS 12
#define N_CALLERS 4

static char thread_src[N_VERSIONS][64];
static char thread_ver[N_VERSIONS][RULES_VERSION_LEN];

typedef struct caller {
    rules_t *r;
    atomic_bool *reloading; /* keep calling while the main thread reloads */
    int calls, bad;
    bool seen[N_VERSIONS];
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;
    for (int i = 0; i < 300 || atomic_load(c->reloading); i++) {
        char v[RULES_VERSION_LEN] = "";
        cJSON *res = NULL;
        int64_t k = -1;
        if (rules_call(c->r, "t.lua", "v", NULL, &res, v) != 0 || !json_is_int(res, &k) || k < 0 ||
            k >= N_VERSIONS || strcmp(v, thread_ver[k]) != 0) {
            c->bad++;
        } else {
            c->seen[k] = true;
        }
        c->calls++;
        cJSON_Delete(res);
    }
    return NULL;
}

static void test_threads(void)
{
    char dir[256];
    make_dir(dir, sizeof dir);
    for (int k = 0; k < N_VERSIONS; k++) {
        snprintf(thread_src[k], sizeof thread_src[k], "function v() return %d end\n", k);
        version_of(thread_src[k], thread_ver[k]);
    }
    write_file(dir, "t.lua", thread_src[0]);
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 7), 0);
    if (!r) return;
    pthread_t th[N_CALLERS];
    caller_t c[N_CALLERS];
    atomic_bool reloading = true;
    for (int i = 0; i < N_CALLERS; i++) {
        c[i] = (caller_t){.r = r, .reloading = &reloading};
        pthread_create(&th[i], NULL, caller_main, &c[i]);
    }
    int swapped = 0;
    for (int round = 1; round < 4 * N_VERSIONS; round++) {
        write_file(dir, "t.lua", thread_src[round % N_VERSIONS]);
        swapped += rules_reload(r);
    }
    atomic_store(&reloading, false);
    int calls = 0, bad = 0, seen = 0;
    for (int i = 0; i < N_CALLERS; i++) {
        pthread_join(th[i], NULL);
        calls += c[i].calls;
        bad += c[i].bad;
        for (int k = 0; k < N_VERSIONS; k++) seen += c[i].seen[k];
    }
    T_CHECK(calls >= N_CALLERS * 300);
    T_EQ_INT(bad, 0);
    T_EQ_INT(swapped, 4 * N_VERSIONS - 1);
    T_CHECK(seen >= N_CALLERS); /* (how many versions each saw depends on timing) */
    rules_close(r);
    remove_dir(dir);
}

/* --- watcher ------------------------------------------------------------------ */

static bool wait_for(rules_t *r, const char *want)
{
    for (int i = 0; i < 300; i++) { /* give up after ~3 s */
        char *out = call(r, "w.lua", "f", NULL, NULL);
        bool ok = out && strcmp(out, want) == 0;
        free(out);
        if (ok) return true;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    return false;
}

static void test_watch(void)
{
    char dir[256], tmp[512], path[512];
    make_dir(dir, sizeof dir);
    write_file(dir, "w.lua", "function f() return 1 end\n");
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    if (!r) return;
    T_EQ_INT(rules_watch_start(r), 0);
    T_CALL(r, "w.lua", "f", NULL, "1");
    write_file(dir, "w.lua", "function f() return 2 end\n"); /* in place */
    T_CHECK(wait_for(r, "2"));
    write_file(dir, "w.lua.tmp", "function f() return 3 end\n"); /* rename over */
    snprintf(tmp, sizeof tmp, "%s/w.lua.tmp", dir);
    snprintf(path, sizeof path, "%s/w.lua", dir);
    T_EQ_INT(rename(tmp, path), 0);
    T_CHECK(wait_for(r, "3"));
    rules_watch_stop(r);
    rules_watch_stop(r); /* idempotent */
    rules_close(r);
    remove_dir(dir);
}

/* --- rules check --------------------------------------------------------------- */

static void test_check_dir(void)
{
    char dir[256], text[1024] = "";
    make_dir(dir, sizeof dir);
    write_file(dir, "good.lua", "function f() return 1 end\nfunction selftest() assert(f() == 1) end\n");
    write_file(dir, "bad.lua", "function f()\n  return 1\nend end\n");
    write_file(dir, "README.txt", "not a rule");
    FILE *err = tmpfile();
    T_EQ_INT(rules_check_dir(dir, NULL, NULL, 0, err), -1);
    rewind(err);
    size_t n = fread(text, 1, sizeof text - 1, err);
    text[n] = '\0';
    fclose(err);
    T_CHECK(strstr(text, "bad.lua:3:") != NULL);
    T_CHECK(strstr(text, "good.lua") == NULL);
    remove_file(dir, "bad.lua");
    err = tmpfile();
    T_EQ_INT(rules_check_dir(dir, NULL, NULL, 0, err), 0);
    T_EQ_INT(ftell(err), 0);
    fclose(err);
    remove_dir(dir);
    err = tmpfile();
    T_EQ_INT(rules_check_dir(dir, NULL, NULL, 0, err), -1); /* the directory is gone */
    fclose(err);
}

/* --- the directory --------------------------------------------------------- */

static void test_directory(void)
{
    char dir[256], missing[300];
    make_dir(dir, sizeof dir);
    snprintf(missing, sizeof missing, "%s/none", dir);
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, missing, 1), -1);
    T_CHECK(r == NULL);

    char *huge = malloc(300 * 1024 + 1);
    memset(huge, '-', 300 * 1024);
    huge[300 * 1024] = '\0';
    memcpy(huge, "function f() return 1 end\n", 26);
    write_file(dir, "huge.lua", huge);
    free(huge);
    write_file(dir, "bad name.lua", "function f() return 1 end\n");
    write_file(dir, ".hidden.lua", "function f() return 1 end\n");
    write_file(dir, "notes.lua.txt", "function f() return 1 end\n");
    write_file(dir, "ok-file_2.lua", "function f(a, b) return {a == nil, b} end\n");
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    if (!r) return;
    cJSON *st = rules_status(r);
    T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(st, "items")), 2);
    const char *err = status_str(st, "huge.lua", "error");
    T_CHECK(err && strstr(err, "huge.lua: larger than"));
    T_CHECK(status_str(st, "ok-file_2.lua", "version") != NULL);
    cJSON_Delete(st);
    T_CALL(r, "ok-file_2.lua", "f", "[null, 2]", "[true,2]");
    T_CALL_FAILS(r, "bad name.lua", "f", NULL, DIAG_UNAVAILABLE, "not loaded");
    T_EQ_INT(rules_require(r, "../x.lua", "f"), -1);
    rules_close(r);
    remove_dir(dir);
}

/* A version rejected because its selftest ran out of budget (as on a
 * machine busy at start) is tried again without any change to its file;
 * one rejected for what it says is not. */
static void test_retry(void)
{
    char dir[256];
    static const char slow[] = "function price() return 8 end\n"
                               "function selftest()\n"
                               "  local x = 0\n"
                               "  for i = 1, 1000000 do x = x + i end\n" /* some ms of CPU */
                               "  assert(price() == 8)\n"
                               "end\n";
    make_dir(dir, sizeof dir);
    write_file(dir, "p.lua", slow);
    write_file(dir, "bad.lua", "function price() return 1 end\nfunction selftest() return false end\n");
    rules_t *r = NULL;
    atomic_store(&rules__budget_ms, 1); /* the selftest cannot pass now */
    T_EQ_INT(rules_open(&r, dir, 1), 0);
    atomic_store(&rules__budget_ms, RULES_BUDGET_MS);
    cJSON *st = rules_status(r);
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "p.lua"), "version")));
    const char *err = status_str(st, "p.lua", "error");
    T_CHECK(err && strstr(err, "budget exceeded"));
    cJSON_Delete(st);

    /* no write to p.lua from here on: the rescans alone bring it in */
    bool in_force = false;
    for (int i = 0; i < 100 && !in_force; i++) {
        T_CHECK(rules_reload(r) >= 0);
        st = rules_status(r);
        in_force = status_str(st, "p.lua", "version") != NULL;
        cJSON_Delete(st);
        if (!in_force) nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    T_CHECK(in_force);
    T_CALL(r, "p.lua", "price", NULL, "8");
    st = rules_status(r);
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "p.lua"), "error")));
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(status_item(st, "bad.lua"), "version")));
    const char *bad = status_str(st, "bad.lua", "error");
    T_CHECK(bad && strstr(bad, "selftest failed"));
    cJSON_Delete(st);
    rules_close(r);
    remove_dir(dir);
}

int main(void)
{
    test_values();
    test_sandbox();
    test_budget();
    test_reload();
    test_retry();
    test_threads();
    test_watch();
    test_check_dir();
    test_directory();
    return t_done();
}
