/*
 * test_uuid: UUIDv7 layout, ordering within the process, validation, and
 * uniqueness across threads.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/uuid.h"
#include "t.h"

#define N_SEQ 10000
#define N_THREAD 20000

static int hexval(char c) { return c >= 'a' ? c - 'a' + 10 : c - '0'; }

static void test_sequence(void)
{
    char prev[UUID_LEN] = "", cur[UUID_LEN];
    int ordered = 0, v7 = 0, variant = 0, valid = 0, lower = 0;
    for (int i = 0; i < N_SEQ; i++) {
        uuid_v7(cur);
        ordered += strcmp(cur, prev) > 0;
        v7 += cur[14] == '7';
        variant += (hexval(cur[19]) & 0xc) == 0x8;
        valid += uuid_valid(cur);
        lower += strspn(cur, "0123456789abcdef-") == 36;
        memcpy(prev, cur, UUID_LEN);
    }
    T_EQ_INT(ordered, N_SEQ);
    T_EQ_INT(v7, N_SEQ);
    T_EQ_INT(variant, N_SEQ);
    T_EQ_INT(valid, N_SEQ);
    T_EQ_INT(lower, N_SEQ);
    T_EQ_INT(strlen(cur), 36);
}

static void test_valid(void)
{
    T_CHECK(uuid_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
    T_CHECK(uuid_valid("01890A5D-AC96-774B-BCCE-B302099A8057"));
    T_CHECK(!uuid_valid(NULL));
    T_CHECK(!uuid_valid(""));
    T_CHECK(!uuid_valid("01890a5d-ac96-774b-bcce-b302099a805"));   /* short */
    T_CHECK(!uuid_valid("01890a5d-ac96-774b-bcce-b302099a80571")); /* long */
    T_CHECK(!uuid_valid("01890a5dac96-774b-bcce-b302099a8057-"));  /* dash moved */
    T_CHECK(!uuid_valid("01890a5d-ac96-774b-bcce-b302099a805g"));  /* not hex */
    T_CHECK(!uuid_valid("{1890a5d-ac96-774b-bcce-b302099a8057}"));
    T_CHECK(!uuid_valid("01890a5d ac96 774b bcce b302099a8057"));
    T_CHECK(!uuid_valid("01890a5dac96774bbcceb302099a80570000"));
}

static void *gen(void *arg)
{
    char(*out)[UUID_LEN] = arg;
    for (int i = 0; i < N_THREAD; i++) uuid_v7(out[i]);
    return NULL;
}

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

static void test_threads(void)
{
    char(*ids)[UUID_LEN] = calloc(2 * N_THREAD, UUID_LEN);
    if (!ids) {
        T_CHECK(ids != NULL);
        return;
    }
    pthread_t a, b;
    T_EQ_INT(pthread_create(&a, NULL, gen, ids), 0);
    T_EQ_INT(pthread_create(&b, NULL, gen, ids + N_THREAD), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    /* each thread's own ids are increasing too */
    int ordered = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 1; i < N_THREAD; i++) ordered += strcmp(ids[t * N_THREAD + i], ids[t * N_THREAD + i - 1]) > 0;
    T_EQ_INT(ordered, 2 * (N_THREAD - 1));
    qsort(ids, 2 * N_THREAD, UUID_LEN, cmp);
    int dups = 0;
    for (int i = 1; i < 2 * N_THREAD; i++) dups += strcmp(ids[i], ids[i - 1]) == 0;
    T_EQ_INT(dups, 0);
    free(ids);
}

int main(void)
{
    test_sequence();
    test_valid();
    test_threads();
    return t_done();
}
