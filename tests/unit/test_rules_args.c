/*
 * test_rules_args: bound-argument handles (rules_args_t, rules_call_args)
 * against rule files in a fresh temporary directory: positions and nil,
 * the same random stream as rules_call, a bound value converted once (and
 * again on re-bind), a reload in between, use from another thread, the
 * budget, and the errors.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/rules.h"
#include "t.h"

static char g_dir[512];

static const char rule_v1[] =
    "function pick(task, candidates)\n"
    "  return candidates[math.random(#candidates)]\n"
    "end\n"
    "function echo(a, b, c)\n"
    "  return {a = a, b = b, c = c, n = select('#', a, b, c), v = 1}\n"
    "end\n"
    "function spin(x) while true do end end\n";

static const char rule_v2[] =
    "function pick(task, candidates)\n"
    "  return task.id .. ':' .. candidates[1]\n"
    "end\n"
    "function echo(a, b, c)\n"
    "  return {a = a, b = b, c = c, v = 2}\n"
    "end\n";

static void write_rule(const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/shuffle.lua", g_dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static cJSON *parse(const char *text)
{
    cJSON *v = cJSON_Parse(text);
    if (!v) {
        fprintf(stderr, "test JSON does not parse: %s\n", text);
        exit(2);
    }
    return v;
}

/* The members a, b, c, n, v of an echo result in a fixed order ("-" when
 * absent): Lua tables have no key order. */
static void print_to(const cJSON *v, char *buf, size_t cap)
{
    static const char *const keys[] = {"a", "b", "c", "n", "v"};
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof *keys && len < cap; i++) {
        const cJSON *m = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, keys[i]) : NULL;
        char *s = m ? cJSON_PrintUnformatted(m) : NULL;
        int n = snprintf(buf + len, cap - len, "%s%s=%s", i ? ";" : "", keys[i], s ? s : "-");
        free(s);
        if (n < 0) break;
        len += (size_t)n;
    }
}

static void test_positions(rules_t *r)
{
    rules_args_t *a = NULL;
    T_EQ_INT(rules_args_new(r, 3, &a), 0);
    if (!a) return;
    cJSON *bound = parse("[1,null,{\"k\":\"v\"}]"), *x = parse("\"x\""), *res = NULL;
    char got[256], ver1[RULES_VERSION_LEN] = "", ver2[RULES_VERSION_LEN] = "";
    T_EQ_INT(rules_args_bind(a, 1, bound), 0);
    T_EQ_INT(rules_args_set(a, 0, x), 0); /* position 2 never given: nil */
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, ver1), 0);
    print_to(res, got, sizeof got);
    T_EQ_STR(got, "a=\"x\";b=[1,null,{\"k\":\"v\"}];c=-;n=3;v=1");
    cJSON_Delete(res);
    /* same call through rules_call: same result and version */
    cJSON *args = parse("[\"x\",[1,null,{\"k\":\"v\"}],null]");
    T_EQ_INT(rules_call(r, "shuffle.lua", "echo", args, &res, ver2), 0);
    print_to(res, got, sizeof got);
    T_EQ_STR(got, "a=\"x\";b=[1,null,{\"k\":\"v\"}];c=-;n=3;v=1");
    T_EQ_STR(ver1, ver2);
    cJSON_Delete(res);
    cJSON_Delete(args);

    /* a bound value is converted once: a change shows only after re-bind */
    cJSON_ReplaceItemInArray(bound, 0, cJSON_CreateNumber(7));
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0);
    T_CHECK(res && cJSON_GetArrayItem(cJSON_GetObjectItem(res, "b"), 0)->valueint == 1);
    cJSON_Delete(res);
    T_EQ_INT(rules_args_bind(a, 1, bound), 0);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0);
    T_CHECK(res && cJSON_GetArrayItem(cJSON_GetObjectItem(res, "b"), 0)->valueint == 7);
    cJSON_Delete(res);
    /* a bound position set per call again; a NULL value is nil */
    T_EQ_INT(rules_args_set(a, 1, x), 0);
    T_EQ_INT(rules_args_set(a, 0, NULL), 0);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0);
    print_to(res, got, sizeof got);
    T_EQ_STR(got, "a=-;b=\"x\";c=-;n=3;v=1");
    cJSON_Delete(res);

    /* errors */
    T_EQ_INT(rules_args_set(a, 3, x), -1);
    T_EQ_INT(rules_args_bind(a, -1, x), -1);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "nope", &res, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    T_CHECK(res == NULL);
    T_EQ_INT(rules_call_args(a, "absent.lua", "echo", &res, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "spin", &res, NULL), -1); /* the budget holds */
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    T_CHECK(strstr(diag_last()->message, "budget") != NULL);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0); /* usable after */
    cJSON_Delete(res);
    rules_args_t *big = NULL;
    T_EQ_INT(rules_args_new(r, RULES_ARGS_MAX + 1, &big), -1);
    T_CHECK(big == NULL);
    rules_args_free(a);
    cJSON_Delete(bound);
    cJSON_Delete(x);
}

/* The same seed gives the same picks through rules_call and the handle. */
static void test_same_stream(void)
{
    rules_t *r1 = NULL, *r2 = NULL;
    T_EQ_INT(rules_open(&r1, g_dir, 7), 0);
    T_EQ_INT(rules_open(&r2, g_dir, 7), 0);
    if (!r1 || !r2) goto out;
    cJSON *task = parse("{\"id\":\"t1\"}"), *cands = cJSON_CreateArray();
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%02d", i);
        cJSON_AddItemToArray(cands, cJSON_CreateString(id));
    }
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemReferenceToArray(args, task);
    cJSON_AddItemReferenceToArray(args, cands);
    rules_args_t *a = NULL;
    T_EQ_INT(rules_args_new(r2, 2, &a), 0);
    if (a) {
        rules_args_set(a, 0, task);
        rules_args_bind(a, 1, cands);
        int same = 0, distinct = 0;
        char first[16] = "";
        for (int i = 0; i < 200; i++) {
            cJSON *p1 = NULL, *p2 = NULL;
            rules_call(r1, "shuffle.lua", "pick", args, &p1, NULL);
            rules_call_args(a, "shuffle.lua", "pick", &p2, NULL);
            if (cJSON_IsString(p1) && cJSON_IsString(p2) &&
                strcmp(p1->valuestring, p2->valuestring) == 0) {
                same++;
                if (!first[0]) snprintf(first, sizeof first, "%s", p1->valuestring);
                else if (strcmp(first, p1->valuestring) != 0) distinct = 1;
            }
            cJSON_Delete(p1);
            cJSON_Delete(p2);
        }
        T_EQ_INT(same, 200);
        T_EQ_INT(distinct, 1); /* really random picks, not one constant */
        rules_args_free(a);
    }
    cJSON_Delete(args);
    cJSON_Delete(task);
    cJSON_Delete(cands);
out:
    rules_close(r1);
    rules_close(r2);
}

static void test_reload(rules_t *r)
{
    cJSON *task = parse("{\"id\":\"t9\"}"), *cands = parse("[\"only\"]"), *res = NULL;
    rules_args_t *a = NULL;
    char v1[RULES_VERSION_LEN] = "", v2[RULES_VERSION_LEN] = "";
    T_EQ_INT(rules_args_new(r, 2, &a), 0);
    if (!a) goto out;
    rules_args_set(a, 0, task);
    rules_args_bind(a, 1, cands);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "pick", &res, v1), 0);
    T_CHECK(cJSON_IsString(res) && strcmp(res->valuestring, "only") == 0);
    cJSON_Delete(res);
    write_rule(rule_v2);
    T_EQ_INT(rules_reload(r), 1);
    /* the state is rebuilt: the bound value is converted into the new one */
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "pick", &res, v2), 0);
    T_CHECK(cJSON_IsString(res) && strcmp(res->valuestring, "t9:only") == 0);
    T_CHECK(strcmp(v1, v2) != 0);
    cJSON_Delete(res);
    write_rule(rule_v1);
    T_EQ_INT(rules_reload(r), 1);
    rules_args_free(a);
out:
    cJSON_Delete(task);
    cJSON_Delete(cands);
}

typedef struct other {
    rules_args_t *a;
    int rc;
    char got[64];
} other_t;

static void *other_thread(void *arg)
{
    other_t *o = arg;
    cJSON *res = NULL;
    o->rc = rules_call_args(o->a, "shuffle.lua", "echo", &res, NULL);
    cJSON *b = res ? cJSON_GetObjectItem(res, "b") : NULL;
    snprintf(o->got, sizeof o->got, "%s", cJSON_IsString(b) ? b->valuestring : "");
    cJSON_Delete(res);
    return NULL;
}

/* A handle used by this thread, then by another (one at a time), then here. */
static void test_other_thread(rules_t *r)
{
    cJSON *b = parse("\"bound\""), *res = NULL;
    rules_args_t *a = NULL;
    T_EQ_INT(rules_args_new(r, 2, &a), 0);
    if (!a) goto out;
    rules_args_bind(a, 1, b);
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0);
    cJSON_Delete(res);
    other_t o = {.a = a, .rc = -2};
    pthread_t th;
    T_EQ_INT(pthread_create(&th, NULL, other_thread, &o), 0);
    pthread_join(th, NULL);
    T_EQ_INT(o.rc, 0);
    T_EQ_STR(o.got, "bound");
    T_EQ_INT(rules_call_args(a, "shuffle.lua", "echo", &res, NULL), 0);
    cJSON *rb = res ? cJSON_GetObjectItem(res, "b") : NULL;
    T_CHECK(cJSON_IsString(rb) && strcmp(rb->valuestring, "bound") == 0);
    cJSON_Delete(res);
    rules_args_free(a);
out:
    cJSON_Delete(b);
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof g_dir, "rulesargs") < 0) return 2;
    write_rule(rule_v1);
    rules_t *r = NULL;
    T_EQ_INT(rules_open(&r, g_dir, 1), 0);
    if (r) {
        test_positions(r);
        test_reload(r);
        test_other_thread(r);
        rules_close(r);
    }
    test_same_stream();
    char path[600];
    snprintf(path, sizeof path, "%s/shuffle.lua", g_dir);
    unlink(path);
    rmdir(g_dir);
    return t_done();
}
