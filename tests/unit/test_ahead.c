/*
 * test_ahead: the helper that prepares items ahead of their taker
 * (core/ahead.c), with real threads. Runs one after another on one helper:
 * every item prepared once, in order, before it is taken, never more than
 * the window ahead; setup and teardown once each, on the helper; a
 * failing prepare reaches the taker as its diag at the item it failed on,
 * and not before; a failing setup at the first take; stopping mid-run.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ahead.h"
#include "core/diag.h"
#include "t.h"

#define WINDOW 256
#define MAXN 5000

typedef struct probe {
    int run;                 /* which run (helper side) */
    int values[MAXN];        /* prepare writes run * 100000 + i */
    atomic_int prepared;     /* prepare calls in this run */
    atomic_int taken;        /* the taker's position, mirrored */
    atomic_int max_ahead;    /* prepared - taken, at most */
    atomic_int order_errors; /* prepare called out of order */
    int fail_at;             /* prepare fails at this item (-1: never) */
    bool setup_fails;
    atomic_int setups, teardowns;
    atomic_int *run_no;      /* the taker's run number */
    int slow_every;          /* sleep in prepare every this many items (0: never) */
} probe_t;

static int prepare(void *ud, int i)
{
    probe_t *p = ud;
    int before = atomic_fetch_add(&p->prepared, 1);
    if (before != i) atomic_fetch_add(&p->order_errors, 1);
    int ahead = i + 1 - atomic_load(&p->taken);
    if (ahead > atomic_load(&p->max_ahead)) atomic_store(&p->max_ahead, ahead);
    if (i == p->fail_at) return diag_set(DIAG_VALIDATION, "item %d refused", i);
    if (p->slow_every && i % p->slow_every == 0) usleep(200);
    p->values[i] = atomic_load(p->run_no) * 100000 + i;
    return 0;
}

static int setup(void *ud)
{
    probe_t *p = ud;
    atomic_fetch_add(&p->setups, 1);
    return p->setup_fails ? diag_set(DIAG_UNAVAILABLE, "no state for the helper") : 0;
}

static void teardown(void *ud) { atomic_fetch_add(&((probe_t *)ud)->teardowns, 1); }

static void test_runs(void)
{
    static probe_t p;
    atomic_int run_no = 0;
    memset(&p, 0, sizeof(p));
    p.fail_at = -1;
    p.run_no = &run_no;
    p.slow_every = 97;
    ahead_t *a = NULL;
    T_EQ_INT(ahead_start(&a, WINDOW, prepare, setup, teardown, &p), 0);
    if (!a) return;
    const int sizes[] = {MAXN, 1, 0, 700, MAXN};
    int bad = 0;
    for (int r = 0; r < 5; r++) {
        atomic_store(&run_no, r + 1);
        atomic_store(&p.prepared, 0);
        atomic_store(&p.taken, 0);
        ahead_run(a, sizes[r]);
        for (int i = 0; i < sizes[r]; i++) {
            if (ahead_take(a, i) < 0) {
                bad++;
                break;
            }
            if (p.values[i] != (r + 1) * 100000 + i) bad++;
            atomic_store(&p.taken, i + 1);
            if (i % 500 == 0) usleep(300); /* a slow taker: the helper must wait */
        }
        while (atomic_load(&p.prepared) < sizes[r]) usleep(100);
        T_EQ_INT(atomic_load(&p.prepared), sizes[r]);
    }
    T_EQ_INT(bad, 0);
    T_EQ_INT(atomic_load(&p.order_errors), 0);
    T_CHECK(atomic_load(&p.max_ahead) <= WINDOW);
    T_CHECK(atomic_load(&p.max_ahead) > AHEAD_WAKE); /* it did run ahead */
    ahead_stop(a);
    T_EQ_INT(atomic_load(&p.setups), 1);
    T_EQ_INT(atomic_load(&p.teardowns), 1);
}

static void test_failure(void)
{
    static probe_t p;
    atomic_int run_no = 1;
    memset(&p, 0, sizeof(p));
    p.fail_at = 1234;
    p.run_no = &run_no;
    ahead_t *a = NULL;
    T_EQ_INT(ahead_start(&a, WINDOW, prepare, setup, teardown, &p), 0);
    if (!a) return;
    ahead_run(a, MAXN);
    int i = 0;
    while (i < MAXN && ahead_take(a, i) == 0) i++;
    T_EQ_INT(i, 1234); /* every item before it was there */
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_STR(diag_last()->message, "item 1234 refused");
    ahead_stop(a);
    T_EQ_INT(atomic_load(&p.teardowns), 1);

    /* a setup that fails: the first take says why */
    memset(&p, 0, sizeof(p));
    p.fail_at = -1;
    p.run_no = &run_no;
    p.setup_fails = true;
    T_EQ_INT(ahead_start(&a, WINDOW, prepare, setup, teardown, &p), 0);
    if (!a) return;
    ahead_run(a, 10);
    T_EQ_INT(ahead_take(a, 0), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);
    T_EQ_INT(atomic_load(&p.prepared), 0);
    ahead_stop(a);

    /* stopped in the middle of a run whose taker went away */
    memset(&p, 0, sizeof(p));
    p.fail_at = -1;
    p.run_no = &run_no;
    T_EQ_INT(ahead_start(&a, WINDOW, prepare, NULL, NULL, &p), 0);
    if (!a) return;
    ahead_run(a, MAXN);
    T_EQ_INT(ahead_take(a, 0), 0);
    T_EQ_INT(ahead_take(a, MAXN), -1); /* past the run */
    ahead_stop(a); /* the helper waits for room: stop ends it */
    T_CHECK(atomic_load(&p.prepared) <= WINDOW + 1);
    T_EQ_INT(ahead_start(&a, 10, prepare, NULL, NULL, &p), -1); /* window too small */
}

int main(void)
{
    test_runs();
    test_failure();
    return t_done();
}
