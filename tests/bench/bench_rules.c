/*
 * bench_rules: the cost of one rule call as a shuffle makes it, per task:
 * pick(task, candidates) with a small task object and 50 candidate uuids,
 * returning candidates[math.random(#candidates)]. rules_call converts both
 * arguments every call; with a bound argument (rules_args_t) the candidates
 * are converted once. Prints "name value unit" lines.
 * usage: bench_rules DIR [CALLS]   (DIR: a scratch directory for the rule)
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/diag.h"
#include "core/rules.h"
#include "core/uuid.h"

#define CANDIDATES 50

static const char rule[] =
    "function pick(task, candidates)\n"
    "  return candidates[math.random(#candidates)]\n"
    "end\n";

static cJSON *make_task(void)
{
    char id[UUID_LEN];
    uuid_v7(id);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "task_id", id);
    cJSON_AddStringToObject(t, "title", "a task title of typical length");
    cJSON_AddStringToObject(t, "assignee_id", id);
    return t;
}

static cJSON *make_candidates(void)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < CANDIDATES; i++) {
        char id[UUID_LEN];
        uuid_v7(id);
        cJSON_AddItemToArray(a, cJSON_CreateString(id));
    }
    return a;
}

static double rate(long n, int64_t t0)
{
    double dt = (double)(clock_monotonic_ms() - t0) / 1000.0;
    return (double)n / (dt > 0 ? dt : 1e-3);
}

/* rules_call with [task, candidates] converted every call. */
static int plain(rules_t *r, long n)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, make_task());
    cJSON_AddItemToArray(args, make_candidates());
    int64_t t0 = clock_monotonic_ms();
    for (long i = 0; i < n; i++) {
        cJSON *res = NULL;
        if (rules_call(r, "shuffle.lua", "pick", args, &res, NULL) < 0 || !cJSON_IsString(res)) {
            cJSON_Delete(res);
            cJSON_Delete(args);
            return -1;
        }
        cJSON_Delete(res);
    }
    printf("rules_call_pick %.0f calls/s\n", rate(n, t0));
    cJSON_Delete(args);
    return 0;
}

/* The candidates bound once; per call only the task is converted. */
static int bound(rules_t *r, long n)
{
    cJSON *cands = make_candidates(), *task = make_task();
    rules_args_t *a = NULL;
    int rc = -1;
    if (rules_args_new(r, 2, &a) < 0 || rules_args_bind(a, 1, cands) < 0) goto out;
    int64_t t0 = clock_monotonic_ms();
    for (long i = 0; i < n; i++) {
        cJSON *res = NULL;
        rules_args_set(a, 0, task);
        if (rules_call_args(a, "shuffle.lua", "pick", &res, NULL) < 0 || !cJSON_IsString(res)) {
            cJSON_Delete(res);
            goto out;
        }
        cJSON_Delete(res);
    }
    printf("rules_call_args_pick %.0f calls/s (candidates bound once)\n", rate(n, t0));
    rc = 0;
out:
    rules_args_free(a);
    cJSON_Delete(cands);
    cJSON_Delete(task);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_rules DIR [CALLS]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    char path[4096];
    snprintf(path, sizeof(path), "%s/shuffle.lua", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f || fputs(rule, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "bench_rules: cannot write %s\n", path);
        return 1;
    }
    rules_t *r = NULL;
    int rc = rules_open(&r, argv[1], 42);
    if (rc == 0) rc = plain(r, n);
    if (rc == 0) rc = bound(r, n);
    if (rc < 0) fprintf(stderr, "bench_rules: %s\n", diag_last()->message);
    rules_close(r);
    remove(path);
    return rc < 0 ? 1 : 0;
}
